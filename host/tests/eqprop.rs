//! EqProp through the emulated board (engine backend, over a pseudo-terminal): the phases of
//! `thermo_host::eqprop::BoardPhases` equal `thermo_sim::eqprop::PhaseRunner` (same-key protocol,
//! bias nudge) on the fixed engine bit for bit, for two training steps whose update is written
//! to the board's weights between them.

use std::path::Path;
use std::time::Duration;
use thermo_host::client::Client;
use thermo_host::emulator::spawn_emulator;
use thermo_host::eqprop::BoardPhases;
use thermo_host::transport::SerialTransport;
use thermo_proto::{weight_checksum, Weights};
use thermo_sim::eqprop::{
    apply_step, teacher_task, Budget, Estimator, Grad, Groups, Nudge, PhaseRunner, Protocol,
    Rounding,
};
use thermo_sim::Substrate;

fn shipped() -> Substrate {
    Substrate::from_file(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/three-module.toml"),
    )
    .unwrap()
}

#[test]
fn training_steps_through_the_board_equal_the_fixed_engine_bit_for_bit() {
    let mut s = shipped();
    let set = teacher_task(&s, 3, 0.3, 0.2, 1.0, 5).unwrap();
    let budget = Budget {
        burn_in: 10,
        sweeps: 30,
    };
    let (beta, seed, lr) = (0.05, 41, 0.05);
    let (path, h) = spawn_emulator(s.clone(), None, Duration::from_secs(3)).unwrap();
    let mut c = Client::new(SerialTransport::open(Path::new(&path), 3_000_000).unwrap());
    let mut board = BoardPhases::attach(&mut c, &s, budget, seed).unwrap();
    let mut runner = PhaseRunner::new(&s, Protocol::SameKey, budget, Nudge::Bias, seed);
    let (mut rng_a, mut rng_b) = (9u64, 9u64);
    let mut compiled = true;
    for step in 0..2 {
        let (mut ga, mut gb) = (Grad::zeros(&s), Grad::zeros(&s));
        for e in &set {
            let a = runner.phases(&s, e, beta, Estimator::Symmetric).unwrap();
            let b = board
                .phases(&mut c, &s, e, beta, Estimator::Symmetric)
                .unwrap();
            assert_eq!(a, b, "step {step}: phases differ");
            assert_eq!(a.free.len(), s.units());
            ga.add_scaled(&a.estimate(&s, beta, Estimator::Symmetric), 1.0);
            gb.add_scaled(&b.estimate(&s, beta, Estimator::Symmetric), 1.0);
        }
        assert_eq!(ga, gb);
        // the board holds the weights the phases ran with
        let id = c.identify().unwrap();
        assert_eq!(
            id.weight_checksum,
            weight_checksum(&Weights::of_substrate(&s))
        );
        if !compiled {
            assert_ne!(
                id.weight_checksum,
                weight_checksum(&Weights::of_substrate(&shipped()))
            );
        }
        let mut s2 = s.clone();
        apply_step(
            &mut s,
            &ga,
            lr,
            Groups::WEIGHTS,
            Rounding::Stochastic,
            &mut rng_a,
        );
        apply_step(
            &mut s2,
            &gb,
            lr,
            Groups::WEIGHTS,
            Rounding::Stochastic,
            &mut rng_b,
        );
        assert_eq!(
            Weights::of_substrate(&s),
            Weights::of_substrate(&s2),
            "step {step}: updates differ"
        );
        assert_ne!(
            Weights::of_substrate(&s),
            Weights::of_substrate(&shipped()),
            "the step changed no weight code"
        );
        compiled = false;
    }
    assert_eq!(board.phases_run, runner.phases_run);
    drop(c);
    h.join().unwrap().unwrap();
}

/// A board with the model's structure but other weights: `attach_model` (what `thermo infer`
/// does) refuses it naming both checksums; after `write_weights` the board reports the model's
/// checksum and `attach_model` accepts it.
#[test]
fn other_weights_are_refused_until_written() {
    let s = shipped();
    let mut model = s.clone();
    for a in &mut model.val {
        *a *= 0.5;
    }
    let want = Weights::of_substrate(&model);
    let (path, h) = spawn_emulator(s.clone(), None, Duration::from_secs(3)).unwrap();
    let mut c = Client::new(SerialTransport::open(Path::new(&path), 3_000_000).unwrap());
    let err = thermo_host::inference::attach_model(&mut c, &model)
        .unwrap_err()
        .to_string();
    let (hb, hm) = (
        weight_checksum(&Weights::of_substrate(&s)),
        weight_checksum(&want),
    );
    assert!(
        err.contains("weight mismatch")
            && err.contains(&format!("{hb:#018x}"))
            && err.contains(&format!("{hm:#018x}")),
        "{err}"
    );
    let id = c.identify().unwrap();
    let id = thermo_host::eqprop::write_weights(&mut c, &id, &want).unwrap();
    assert_eq!(id.weight_checksum, hm);
    thermo_host::inference::attach_model(&mut c, &model).unwrap();
    drop(c);
    h.join().unwrap().unwrap();
}

/// The same two training steps through three boards: the RTL link in Verilator (`thermo
/// emulate --backend verilator`: `LinkTop` at 25 MHz / 3 Mbaud behind a pseudo-terminal), the
/// board model (`thermo emulate --backend engine`) and `PhaseRunner` on the fixed engine; the
/// phases, gradients, updated weight codes and the checksums the boards report are equal bit for
/// bit.
#[test]
fn training_steps_through_the_rtl_equal_the_board_model_and_the_fixed_engine() {
    use thermo_host::emulator::spawn_verilator_emulator;
    use thermo_proto::{FEATURE_ALL_UNITS, FEATURE_READ_COUPLINGS, FEATURE_RHO, FEATURE_WEIGHTS};
    let mut s = shipped();
    let set = teacher_task(&s, 3, 0.3, 0.2, 1.0, 5).unwrap();
    let budget = Budget {
        burn_in: 10,
        sweeps: 30,
    };
    let (beta, seed, lr) = (0.05, 41, 0.05);
    let link = thermo_hdl::link::command::LinkOptions::default();
    let (rtl_path, rtl_h) =
        spawn_verilator_emulator(&s, &link, 25_000_000, 3_000_000, Duration::from_secs(20))
            .unwrap();
    let mut rtl = Client::new(SerialTransport::open(Path::new(&rtl_path), 3_000_000).unwrap());
    let (emu_path, emu_h) = spawn_emulator(s.clone(), None, Duration::from_secs(20)).unwrap();
    let mut emu = Client::new(SerialTransport::open(Path::new(&emu_path), 3_000_000).unwrap());
    let id = rtl.identify().unwrap();
    assert_eq!(
        id.features,
        FEATURE_WEIGHTS | FEATURE_ALL_UNITS | FEATURE_RHO | FEATURE_READ_COUPLINGS
    );
    let mut on_rtl = BoardPhases::attach(&mut rtl, &s, budget, seed).unwrap();
    let mut on_emu = BoardPhases::attach(&mut emu, &s, budget, seed).unwrap();
    let mut runner = PhaseRunner::new(&s, Protocol::SameKey, budget, Nudge::Bias, seed);
    let (mut rng_a, mut rng_b, mut rng_c) = (9u64, 9u64, 9u64);
    for step in 0..2 {
        let (mut ga, mut gb, mut gc) = (Grad::zeros(&s), Grad::zeros(&s), Grad::zeros(&s));
        for e in &set {
            let a = runner.phases(&s, e, beta, Estimator::Symmetric).unwrap();
            let b = on_emu
                .phases(&mut emu, &s, e, beta, Estimator::Symmetric)
                .unwrap();
            let c = on_rtl
                .phases(&mut rtl, &s, e, beta, Estimator::Symmetric)
                .unwrap();
            assert_eq!(a, b, "step {step}: board model phases differ");
            assert_eq!(a, c, "step {step}: RTL phases differ");
            ga.add_scaled(&a.estimate(&s, beta, Estimator::Symmetric), 1.0);
            gb.add_scaled(&b.estimate(&s, beta, Estimator::Symmetric), 1.0);
            gc.add_scaled(&c.estimate(&s, beta, Estimator::Symmetric), 1.0);
        }
        assert_eq!(ga, gb, "step {step}: gradients");
        assert_eq!(ga, gc, "step {step}: gradients");
        // both boards hold the weights the phases ran with
        let want = weight_checksum(&Weights::of_substrate(&s));
        assert_eq!(rtl.identify().unwrap().weight_checksum, want);
        assert_eq!(emu.identify().unwrap().weight_checksum, want);
        let (mut s2, mut s3) = (s.clone(), s.clone());
        for (sub, g, rng) in [
            (&mut s, &ga, &mut rng_a),
            (&mut s2, &gb, &mut rng_b),
            (&mut s3, &gc, &mut rng_c),
        ] {
            apply_step(sub, g, lr, Groups::WEIGHTS, Rounding::Stochastic, rng);
        }
        let w = Weights::of_substrate(&s);
        assert_eq!(w, Weights::of_substrate(&s2), "step {step}: updates differ");
        assert_eq!(w, Weights::of_substrate(&s3), "step {step}: updates differ");
        assert_ne!(
            w,
            Weights::of_substrate(&shipped()),
            "the step changed no code"
        );
    }
    assert_eq!(on_rtl.phases_run, runner.phases_run);
    assert_eq!(on_emu.phases_run, runner.phases_run);
    // the updated weights written to the RTL: its checksum follows
    let w = Weights::of_substrate(&s);
    let id = thermo_host::eqprop::write_weights(&mut rtl, &id, &w).unwrap();
    assert_eq!(id.weight_checksum, weight_checksum(&w));
    drop(rtl);
    drop(emu);
    let st = rtl_h.join().unwrap().unwrap();
    assert_eq!(st.crc_errors, 0);
    eprintln!(
        "2 EqProp steps x 3 examples x 3 phases through the RTL (Verilator, {} simulated cycles, {} bytes in, {} out) equal the board model and PhaseRunner bit for bit",
        st.cycles, st.bytes_in, st.bytes_out
    );
    emu_h.join().unwrap().unwrap();
}
