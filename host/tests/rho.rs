//! The host's `infer_with` and `RUN_RHO` against the board model in memory: the means of
//! `rho(x)` it returns are bit for bit the batched fixed engine's activation averages (what the
//! clamped sampler's fixed path uses), for the readout units and for every unit; a board
//! without `FEATURE_RHO` is refused before anything runs, naming the flag.

use thermo_host::client::Client;
use thermo_host::inference::{infer_with, InferOptions};
use thermo_host::memboard::MemoryBoard;
use thermo_proto::device::Board;
use thermo_proto::{FEATURES_ALL, FEATURE_RHO, RUN_ALL_UNITS, RUN_RHO};
use thermo_sim::engine::{Fixed, Observe};
use thermo_sim::example::saturating_config;
use thermo_sim::{BatchEngine, Substrate};

fn inputs(s: &Substrate, n: usize) -> Vec<Vec<f64>> {
    (0..n)
        .map(|c| {
            s.bias
                .iter()
                .enumerate()
                .map(|(i, &b)| b + 0.07 * (((i * 5 + c * 3) % 9) as f64 - 4.0))
                .collect()
        })
        .collect()
}

#[test]
fn rho_means_equal_the_batched_engine() {
    let s = Substrate::from_config(&saturating_config(1)).expect("valid");
    let b = inputs(&s, 5);
    let opts = InferOptions {
        sweeps: 45,
        burn_in: 6,
        seed: 77,
    };
    let seeds: Vec<u64> = (0..b.len() as u64).map(|c| opts.seed + c).collect();
    let mut e = BatchEngine::new(&s, Fixed::new(&s), &seeds, 1);
    let want = e.relax_average(&s, &b, 6, 45, Observe::Activation);
    assert!(want.iter().map(|(_, sat)| sat.total()).sum::<u64>() > 0);
    let ro = thermo_proto::readout_units(&s);
    for (flags, units) in [
        (RUN_RHO, ro.clone()),
        (RUN_RHO | RUN_ALL_UNITS, (0..s.units()).collect::<Vec<_>>()),
    ] {
        let mut c = Client::new(MemoryBoard::new(s.clone()));
        let r = infer_with(&mut c, &s, &b, opts, flags, |_, _, _| {}).expect("infer");
        for (i, (m, (w, _))) in r.means.iter().zip(&want).enumerate() {
            let w: Vec<f64> = units.iter().map(|&u| w[u]).collect();
            assert_eq!(m.len(), w.len());
            for (k, (g, w)) in m.iter().zip(&w).enumerate() {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "flags {flags}, input {i}, unit {k}"
                );
            }
        }
    }
    // without the flag the means are of x, which the clamp makes differ
    let mut c = Client::new(MemoryBoard::new(s.clone()));
    let x = infer_with(&mut c, &s, &b, opts, RUN_ALL_UNITS, |_, _, _| {}).expect("infer");
    assert!(x.means.iter().zip(&want).any(|(m, (w, _))| m != w));
}

#[test]
fn a_board_without_the_rho_feature_is_refused() {
    let s = Substrate::from_config(&saturating_config(1)).expect("valid");
    let mut mb = MemoryBoard::new(s.clone());
    mb.board = Board::with_features(s.clone(), FEATURES_ALL & !FEATURE_RHO);
    let mut c = Client::new(mb);
    let opts = InferOptions {
        sweeps: 5,
        burn_in: 0,
        seed: 1,
    };
    let e =
        infer_with(&mut c, &s, &inputs(&s, 1), opts, RUN_RHO, |_, _, _| {}).expect_err("refused");
    assert!(e.contains("RUN_RHO"), "{e}");
    assert!(e.contains("features"), "{e}");
    let e = infer_with(&mut c, &s, &inputs(&s, 1), opts, 8, |_, _, _| {}).expect_err("refused");
    assert!(e.contains("RUN flags"), "{e}");
}
