//! The single-chain engine on any number of threads, and its vectorised unit updates against the
//! scalar checked path: every state bit and every saturation counter after every sweep.

use thermo_sim::example::{family_config, random_substrate, saturating_config, ExampleSpec};
use thermo_sim::model::Activation;
use thermo_sim::{FixedEngine, GoldenEngine, Substrate, SubstrateConfig};

fn configs() -> Vec<(String, SubstrateConfig)> {
    let mut v = Vec::new();
    for n in 0..3 {
        v.push((format!("family {n}"), family_config(n)));
        v.push((format!("saturating {n}"), saturating_config(n)));
    }
    // Modules whose sizes are not multiples of the vector block, a clamp, and enough units for
    // several blocks per thread.
    for (seed, clamp) in [(3u64, false), (4, true)] {
        let mut cfg = random_substrate(&ExampleSpec {
            units: 301,
            modules: 4,
            rank: 3,
            seed,
            bias_scale: 2.0,
            ..Default::default()
        });
        if clamp {
            cfg.activation = Activation::Clamp { lo: -0.5, hi: 0.75 };
        }
        v.push((format!("random {seed}, clamp {clamp}"), cfg));
    }
    v
}

#[test]
fn fixed_engine_bits_do_not_depend_on_threads_or_vector_path() {
    for (what, cfg) in configs() {
        let s = Substrate::from_config(&cfg).expect("example validates");
        let mut reference = FixedEngine::fixed(&s, 9);
        // Every unit through the scalar, saturation-checked path.
        reference.prog.force_checks = true;
        let mut engines: Vec<FixedEngine> = [1usize, 2, 3]
            .into_iter()
            .map(|t| {
                let mut e = FixedEngine::fixed(&s, 9);
                e.threads = t;
                e.min_units_per_thread = 1;
                e
            })
            .collect();
        // The gather form of the vector kernel (substrates above 2^16 units), on 1 and 2 threads.
        for t in [1usize, 2] {
            let mut e = FixedEngine::fixed(&s, 9);
            e.prog.kernel = thermo_sim::kernel::FixedKernel::with_gathers(&e.prog);
            assert!(e.prog.kernel.is_some(), "{what}: a vector kernel");
            e.threads = t;
            e.min_units_per_thread = 1;
            engines.push(e);
        }
        let mut saturated = 0;
        for sweep in 1..=60 {
            reference.sweep();
            for e in &mut engines {
                e.sweep();
                assert_eq!(
                    e.x, reference.x,
                    "{what}: {} threads, sweep {sweep}",
                    e.threads
                );
                assert_eq!(
                    e.saturation, reference.saturation,
                    "{what}: {} threads, sweep {sweep}: unit counters",
                    e.threads
                );
                assert_eq!(
                    e.bus_saturation, reference.bus_saturation,
                    "{what}: {} threads, sweep {sweep}: bus counters",
                    e.threads
                );
            }
            saturated = reference.saturation_total().total();
        }
        if what.starts_with("saturating") {
            assert!(
                saturated > 0,
                "{what}: the saturating case did not saturate"
            );
        }
    }
}

#[test]
fn golden_engine_bits_do_not_depend_on_threads() {
    for (what, cfg) in configs() {
        let s = Substrate::from_config(&cfg).expect("example validates");
        let mut one = GoldenEngine::golden(&s, 4);
        let mut three = GoldenEngine::golden(&s, 4);
        three.threads = 3;
        three.min_units_per_thread = 1;
        for sweep in 1..=30 {
            one.sweep();
            three.sweep();
            let bits = |e: &GoldenEngine| e.x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one), bits(&three), "{what}: sweep {sweep}");
        }
    }
}
