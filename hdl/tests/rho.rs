//! The substrate's `rho` readout (`READOUT_ON | READOUT_RHO`): every unit's readout word sums
//! `rho(x)` of its written states, equal in rust-hdl's simulation of the substrate top and in
//! Verilator to the fixed engine's `Observe::Activation.of` of its states (the definition the
//! engines' `relax_average` uses), on clamped configurations whose states leave the clamp range.

use thermo_hdl::harness::verify::{verify_readout_observed, Sims};
use thermo_sim::engine::{Arith, FixedEngine, Observe};
use thermo_sim::example::{saturating_config, shifted_config};
use thermo_sim::model::Activation;
use thermo_sim::Substrate;

/// States outside the clamp range over `burn_in + sweeps` sweeps of the engine (seed `seed`),
/// counted in the summed sweeps: where `rho(x)` and `x` differ.
fn clamped_states(s: &Substrate, burn_in: u64, sweeps: u64, seed: u64) -> usize {
    let mut e = FixedEngine::fixed(s, seed);
    for _ in 0..burn_in {
        e.sweep();
    }
    let mut n = 0;
    for _ in 0..sweeps {
        e.sweep();
        n +=
            e.x.iter()
                .enumerate()
                .filter(|&(u, &x)| e.prog.arith.rho(e.prog.module_of(u), x) != x)
                .count();
    }
    n
}

#[test]
fn hdl_rho_readout_three_way() {
    for (n, cfg) in [
        (1u64, saturating_config(1)),
        (3, saturating_config(3)),
        (1, shifted_config(1)),
    ] {
        let s = Substrate::from_config(&cfg).expect("valid");
        assert!(matches!(s.activation, Activation::Clamp { .. }));
        let (burn_in, sweeps, seed) = (7, 40, 3 + n);
        let clamped = clamped_states(&s, burn_in, sweeps, seed);
        assert!(clamped > 0, "{}: should leave the clamp range", s.name);
        let units = verify_readout_observed(
            &s,
            burn_in,
            sweeps,
            seed,
            Sims::default(),
            Observe::Activation,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", s.name));
        eprintln!(
            "{} (config {n}): rho readout of {units} units over {sweeps} sweeps ({clamped} clamped states summed) equal to the engine in rust-hdl and Verilator",
            s.name
        );
    }
}
