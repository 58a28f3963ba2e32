//! Three-way equivalence of the substrate: the fixed engine, rust-hdl's simulation of the
//! substrate top and Verilator running the generated Verilog agree on every unit's state after
//! every sweep, on the cycles of every sweep (= `Schedule::cycles_per_sweep`) and on the
//! saturation counters — on the shipped example and 10 random configurations: the six shapes of
//! `random_config` (sizes 24..72, P 1..8, k 0..3, 1..5 modules) and four saturating variants
//! (narrow state format, large biases, two with the clamp activation).

use thermo_hdl::harness::verify::{verify, verify_readout, Sims, VerifyReport};
use thermo_sim::example::{family_config, saturating_config, shifted_config, shipped};
use thermo_sim::Substrate;

/// rust-hdl sweeps (slow simulator) and Verilator sweeps per configuration.
const RUSTHDL_SWEEPS: u64 = 12;
const VERILATOR_SWEEPS: u64 = 300;

fn three_way(name: &str, s: &Substrate, seed: u64) -> (VerifyReport, VerifyReport) {
    let both = verify(s, RUSTHDL_SWEEPS, seed, Sims::default(), None)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let long = verify(
        s,
        VERILATOR_SWEEPS,
        seed,
        Sims {
            rusthdl: false,
            verilator: true,
        },
        None,
    )
    .unwrap_or_else(|e| panic!("{name} (Verilator, {VERILATOR_SWEEPS} sweeps): {e}"));
    eprintln!(
        "{name}: D={} P={} {} cycles/sweep; rust-hdl+Verilator {} sweeps, Verilator {} sweeps equal to the engine; saturations acc/state/bus {}/{}/{}",
        both.units,
        both.lanes,
        both.cycles_per_sweep,
        both.sweeps,
        long.sweeps,
        long.saturation.acc,
        long.saturation.state,
        long.saturation.bus
    );
    (both, long)
}

#[test]
fn hdl_equivalence_shipped_example() {
    three_way("three-module", &shipped(), 1);
}

fn random_range(range: std::ops::Range<u64>) {
    for n in range {
        let s = Substrate::from_config(&family_config(n)).expect("valid");
        three_way(&format!("random {n}"), &s, 100 + n);
    }
}

#[test]
fn hdl_equivalence_random_0_to_2() {
    random_range(0..3);
}

#[test]
fn hdl_equivalence_random_3_to_5() {
    random_range(3..6);
}

#[test]
fn hdl_equivalence_saturating() {
    let mut sat = 0;
    for n in 0..4 {
        let s = Substrate::from_config(&saturating_config(n)).expect("valid");
        let (_, long) = three_way(&format!("saturating {n}"), &s, 7 + n);
        assert!(long.saturation.state > 0, "saturating {n} must saturate");
        if n == 0 {
            assert!(
                long.saturation.bus > 0,
                "saturating 0 must saturate its bus lines"
            );
        }
        sat += long.saturation.total();
    }
    assert!(sat > 0);
}

/// Module state shifts (`docs/fixed-point.md` §1): every module its own state format, clamp
/// codes and line and noise alignments; configurations 1 and 3 saturate under the clamp.
#[test]
fn hdl_equivalence_state_shifts() {
    let mut sat = 0;
    for n in [0u64, 1, 3] {
        let s = Substrate::from_config(&shifted_config(n)).expect("valid");
        assert!(
            s.modules.iter().any(|m| m.shift > 0),
            "shifted {n} has no shift"
        );
        let (_, long) = three_way(&format!("shifted {n}"), &s, 21 + n);
        sat += long.saturation.total();
    }
    assert!(sat > 0, "no shifted configuration saturated");
}

#[test]
fn hdl_readout_accumulators_and_back_to_back_runs() {
    for (name, s) in [
        ("three-module", shipped()),
        (
            "saturating 1",
            Substrate::from_config(&saturating_config(1)).expect("valid"),
        ),
    ] {
        let n =
            verify_readout(&s, 7, 40, 3, Sims::default()).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!(
            "{name}: readout sums of {n} units over 40 sweeps (after 7 burn-in sweeps, one run each) equal to the engine in rust-hdl and Verilator"
        );
    }
}

/// Extended sweep over more random configurations (plain and saturating), for manual runs:
/// `cargo test --release -p thermo-hdl --test equivalence -- --ignored --nocapture`.
#[test]
#[ignore = "extended: 40 more configurations, several minutes"]
fn hdl_equivalence_extended() {
    for n in 6..26 {
        for (kind, cfg) in [
            ("random", family_config(n)),
            ("saturating", saturating_config(n)),
        ] {
            let s = Substrate::from_config(&cfg).expect("valid");
            let sims = Sims {
                rusthdl: true,
                verilator: true,
            };
            let r =
                verify(&s, 4, 1000 + n, sims, None).unwrap_or_else(|e| panic!("{kind} {n}: {e}"));
            let v = verify(
                &s,
                100,
                1000 + n,
                Sims {
                    rusthdl: false,
                    verilator: true,
                },
                None,
            )
            .unwrap_or_else(|e| panic!("{kind} {n} (Verilator): {e}"));
            eprintln!(
                "{kind} {n}: D={} P={} equal ({} + {} sweeps), saturations {:?}",
                r.units, r.lanes, r.sweeps, v.sweeps, v.saturation
            );
        }
    }
}

/// The banked state's crossbar under load: held-out random configurations of 16, 33 and 48
/// lanes whose schedules make the lanes and the bus sides (beside them) wait, one of them saturating (narrow state format, large
/// biases, clamp activation): the three-way equivalence holds on each.
#[test]
fn hdl_equivalence_banked_waits() {
    use thermo_sim::example::{random_substrate, ExampleSpec};
    use thermo_sim::model::Activation;
    use thermo_sim::qformat::QFormat;
    use thermo_sim::schedule::banked::{Banked, Options};
    let mut cases = Vec::new();
    for (n, (units, modules, rank, degree, lanes)) in
        [(160, 5, 3, 10, 16), (140, 4, 2, 6, 33), (128, 3, 2, 12, 48)]
            .into_iter()
            .enumerate()
    {
        let mut cfg = random_substrate(&ExampleSpec {
            units,
            modules,
            rank,
            degree,
            lanes,
            seed: 9100 + n as u64,
            bias_scale: if n == 1 { 40.0 } else { 0.5 },
            ..ExampleSpec::default()
        });
        if n == 1 {
            // saturating: a narrow state format and the clamp
            cfg.formats.state = QFormat::new(8, 6);
            cfg.activation = Activation::Clamp { lo: -0.9, hi: 0.9 };
        }
        cases.push((format!("banked {units} units, {lanes} lanes"), cfg));
    }
    let mut saturated = 0;
    let mut bus_waits = 0;
    for (k, (name, cfg)) in cases.into_iter().enumerate() {
        let s = Substrate::from_config(&cfg).unwrap_or_else(|e| panic!("{name}: {e}"));
        let b = Banked::new(&s, &Options::hardware(&s));
        assert!(
            b.lane_waits > 0,
            "{name}: the schedule must make lanes wait"
        );
        bus_waits += b.bus_waits;
        let (_, long) = three_way(&name, &s, 300 + k as u64);
        saturated += long.saturation.total();
    }
    assert!(saturated > 0, "one configuration saturates");
    assert!(
        bus_waits > 0,
        "the bus sides beside the lanes wait in some configuration"
    );
}
