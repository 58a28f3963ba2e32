//! RUN with `RUN_RHO` on the board model: the sums of `rho(x)`, whose means are bit for bit
//! what the batched fixed engine's `relax_average(.., Observe::Activation)` returns (the
//! clamped substrate's denoiser readout), on clamped configurations that saturate.

use thermo_proto::device::Board;
use thermo_proto::{
    ErrorCode, Frame, FrameDecoder, Opcode, Readout, Request, RunRequest, SlotState, ERROR_KIND,
    FEATURES_ALL, FEATURE_RHO, RUN_ALL_UNITS, RUN_RHO,
};
use thermo_sim::engine::{Fixed, Observe};
use thermo_sim::example::saturating_config;
use thermo_sim::model::{readout_units, Activation};
use thermo_sim::noise::run_key;
use thermo_sim::{BatchEngine, Substrate};

fn send(b: &mut Board, seq: u8, r: &Request) -> Frame {
    let (kind, payload) = r.encode();
    let w = b.handle(&Frame { seq, kind, payload }).expect("a reply");
    FrameDecoder::new().push(&w).remove(0).expect("valid reply")
}

/// Biases of chain `c`: the substrate's, moved per unit so that the chains differ.
fn biases(s: &Substrate, c: usize) -> Vec<f64> {
    s.bias
        .iter()
        .enumerate()
        .map(|(i, &b)| b + 0.05 * (((i * 7 + c * 13) % 11) as f64 - 5.0))
        .collect()
}

/// Board (RUN_RHO, every unit and the readout units) against the batched fixed engine's
/// activation averages for `chains` seeds: bit for bit in reals, and the rho sums are not the
/// state sums (the clamp acts).
fn case(s: &Substrate, chains: usize, burn_in: u32, sweeps: u32) {
    let Activation::Clamp { .. } = s.activation else {
        panic!("a clamped configuration")
    };
    let seeds: Vec<u64> = (0..chains as u64).map(|c| 1000 + c).collect();
    let bs: Vec<Vec<f64>> = (0..chains).map(|c| biases(s, c)).collect();
    let mut e = BatchEngine::new(s, Fixed::new(s), &seeds, 2);
    let want = e.relax_average(s, &bs, burn_in as u64, sweeps as u64, Observe::Activation);
    let lsb = s.formats.state.lsb();
    let ro = readout_units(s);
    let mut b = Board::new(s.clone());
    let mut seq = 0u8;
    let mut saturated = 0;
    let mut differs = false;
    for (c, (mean, sat)) in want.iter().enumerate() {
        let cond = Fixed::bias_codes(s, &bs[c]).expect("in range");
        saturated += sat.total();
        for (flags, units) in [
            (RUN_RHO | RUN_ALL_UNITS, (0..s.units()).collect::<Vec<_>>()),
            (RUN_RHO, ro.clone()),
            (RUN_ALL_UNITS, (0..s.units()).collect()),
        ] {
            let mut next = || {
                seq = seq.wrapping_add(1);
                seq
            };
            let mut got = Vec::new();
            for (k, chunk) in cond.chunks(200).enumerate() {
                send(
                    &mut b,
                    next(),
                    &Request::SetConditioning {
                        slot: 0,
                        offset: (200 * k) as u16,
                        codes: chunk.to_vec(),
                    },
                );
            }
            let run = RunRequest {
                slot: 0,
                sweeps,
                burn_in,
                key: run_key(seeds[c]),
                flags,
            };
            send(&mut b, next(), &Request::Run(run));
            b.run_queued();
            for off in (0..units.len()).step_by(200) {
                let n = (units.len() - off).min(200);
                let f = send(
                    &mut b,
                    next(),
                    &Request::Readout {
                        slot: 0,
                        offset: off as u16,
                        count: n as u16,
                    },
                );
                let r = Readout::decode(&f.payload).expect("readout");
                assert_eq!(r.state, SlotState::Done);
                got.extend(r.sums);
            }
            let means: Vec<f64> = got
                .iter()
                .map(|&v| v as f64 * lsb / sweeps as f64)
                .collect();
            let engine: Vec<f64> = units.iter().map(|&u| mean[u]).collect();
            if flags & RUN_RHO != 0 {
                for (k, (g, w)) in means.iter().zip(&engine).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "chain {c}, flags {flags}, unit {}: board {g}, engine {w}",
                        units[k]
                    );
                }
            } else {
                differs |= means != engine;
            }
        }
    }
    assert!(saturated > 0, "the configuration should saturate");
    assert!(differs, "rho(x) and x averages should differ somewhere");
}

#[test]
fn rho_runs_equal_the_batched_engines_activation_average() {
    for n in [1, 3] {
        let s = Substrate::from_config(&saturating_config(n)).expect("valid");
        case(&s, 3, 7, 60);
    }
}

/// A board without `FEATURE_RHO` refuses `RUN_RHO` with bad parameter; with it, flag bits
/// outside `RUN_ALL_UNITS | RUN_RHO` are still bad parameters; IDENTIFY reports the feature.
#[test]
fn rho_flag_needs_the_feature() {
    let s = Substrate::from_config(&saturating_config(1)).expect("valid");
    for (features, flags, ok) in [
        (FEATURES_ALL & !FEATURE_RHO, RUN_RHO, false),
        (FEATURES_ALL, RUN_RHO, true),
        (FEATURES_ALL, RUN_RHO | 8, false),
        (FEATURES_ALL, RUN_RHO | RUN_ALL_UNITS, true),
    ] {
        let mut b = Board::with_features(s.clone(), features);
        assert_eq!(b.identity().features & FEATURE_RHO, features & FEATURE_RHO);
        let f = send(
            &mut b,
            1,
            &Request::Run(RunRequest {
                slot: 1,
                sweeps: 3,
                burn_in: 0,
                key: [1, 2, 3],
                flags,
            }),
        );
        if ok {
            assert_ne!(f.kind, ERROR_KIND, "features {features}, flags {flags}");
        } else {
            assert_eq!(f.kind, ERROR_KIND);
            assert_eq!(
                f.payload,
                vec![Opcode::Run as u8, ErrorCode::BadParameter as u8]
            );
        }
    }
}
