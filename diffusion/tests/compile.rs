//! The compiler, the conditioning interface and the exact evaluation on the committed model.

use nalgebra::{DMatrix, DVector};
use std::path::PathBuf;
use thermo_diffusion::compile::{self, CompileOptions, EmitOptions, Stiffness};
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::eval::{self, Prepared};
use thermo_diffusion::gram::{self, Factorisation};
use thermo_diffusion::interface::{Interface, ParamCount, TrainOptions, BUDGET};
use thermo_diffusion::{io, Unet};

fn model() -> Unet {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/digits-unet.safetensors");
    io::load(&path).expect("committed model loads")
}

/// A small pipeline: 150 training images (1 draw), 40 held-out images at 3 noise levels.
fn small(model: &Unet) -> Prepared {
    let d = Digits::load(&default_data_path()).expect("data");
    let split = Split::standard(d.len()).expect("split");
    let train = d.unit_matrix(&split.train[..150]);
    let test = d.unit_matrix(&split.test[..40]);
    eval::prepare(model, &train, &test, 1, &[0.1, 0.5, 2.0]).expect("prepare")
}

#[test]
fn parameter_count_is_within_the_budget_and_adds_up() {
    let p = ParamCount::of(64, 128);
    assert_eq!(p.encoder, 65 * 4 + 4);
    assert_eq!(p.transfer, 5 * 16 + 16);
    assert_eq!(p.output, 16 * 128 + 128);
    assert_eq!(p.total, 2536);
    assert!(p.total <= BUDGET);
    // One more injected unit would break the budget.
    assert!(ParamCount::of(64, 130).total > BUDGET);
    // A 16-d code into 16 units (the narrow-decoder headline, docs/compiler.md §9).
    let w = ParamCount::with_code(64, 16, 16);
    assert_eq!(
        (w.encoder, w.transfer, w.output),
        (65 * 16 + 16, 17 * 16 + 16, 16 * 16 + 16)
    );
    assert_eq!(w.total, 1616);
    assert_eq!(ParamCount::of(64, 128), ParamCount::with_code(64, 4, 128));
}

#[test]
fn compiled_energy_oracle_interface_and_emitted_description() {
    let model = model();
    let p = small(&model);
    let opts = CompileOptions {
        rank: Some(8),
        method: Factorisation::GramWeighted,
        gain: 1.0,
        margin: 1.0,
        stiffness: Stiffness::Gershgorin,
    };
    let c = compile::compile(&model, &p.gram, &opts).expect("compile");
    assert_eq!(c.units(), 128 + 64 + 32 + 64 + 128);
    // Positive definite with the Gershgorin margin; A symmetric.
    assert!(c.lambda_min >= opts.margin - 1e-9, "{}", c.lambda_min);
    assert!((&c.a - c.a.transpose()).amax() < 1e-12);
    // The skip blocks of A are -gamma W_k of the Gram-weighted factorisation.
    let w0 = gram::skip_matrix(&model, 0).expect("skip0");
    let f0 = gram::gram_weighted(&w0, &gram::gram(p.gram.module("enc0").expect("enc0")), 8)
        .expect("factor");
    let (e0, d0) = (
        c.module("enc0").expect("enc0"),
        c.module("dec0").expect("dec0"),
    );
    let blk = c.block(
        &c.range(d0).collect::<Vec<_>>(),
        &c.range(e0).collect::<Vec<_>>(),
    );
    assert!((blk + f0.matrix()).amax() < 1e-9);
    assert_eq!(c.connections[0], (256 * 8, 128 * 128));

    // Oracle: b* = A a_true relaxes to a_true, decoder cosine 1.
    let rows = eval::evaluate(&c, None, &p.test, &p.levels).expect("evaluate");
    for r in &rows {
        assert!(r.oracle.dec0.cosine > 1.0 - 1e-9, "{:?}", r.oracle);
        assert!(r.oracle.decoder.r2 > 1.0 - 1e-9);
    }
    let t0 = DVector::from_iterator(c.units(), p.test.truth.row(0).iter().copied());
    let mu = c.mean(&c.oracle_bias(&t0));
    assert!((mu - &t0).amax() < 1e-9);

    // Interface: exact map, parameter count, better than couplings only on held-out inputs.
    let topts = TrainOptions {
        steps: 600,
        ..TrainOptions::default()
    };
    let (iface, rep) = eval::train_interface(&model, &c, &p.train, "dec0", &topts).expect("train");
    assert_eq!(iface.param_count().total, 2536);
    assert!(rep.train_mse >= rep.capacity_mse - 1e-9);
    let rows = eval::evaluate(&c, Some(&iface), &p.test, &p.levels).expect("evaluate");
    let pooled = rows.last().expect("pooled");
    let ic = pooled.interface.as_ref().expect("interface").dec0.cosine;
    eprintln!(
        "small pipeline: interface dec0 cosine {ic:.4}, couplings only {:.4}, train mse {:.4} (capacity {:.4})",
        pooled.couplings.dec0.cosine, rep.train_mse, rep.capacity_mse
    );
    assert!(ic > 0.8 && ic > pooled.couplings.dec0.cosine + 0.2);
    // The side file round-trips and validates; a wrong shape is named.
    let json = serde_json::to_string(&iface).expect("json");
    let back: Interface = serde_json::from_str(&json).expect("parse");
    back.validate().expect("valid");
    let mut bad = back.clone();
    bad.tr_w.pop();
    assert!(bad.validate().unwrap_err().contains("tr_w"));

    // The emitted description validates and has the same A and equilibrium mean.
    let emit = EmitOptions {
        temperature: 1e-4,
        eta_fraction: 0.5,
        lanes: 16,
        bits: 16,
        state_max: p.test.truth.amax(),
        bus_max: 100.0,
        bias_max: 0.0,
    };
    let cfg = compile::to_config(&c, &model, "test", &emit).expect("config");
    let sub = thermo_sim::Substrate::from_config(&cfg).expect("validates");
    let a: DMatrix<f64> = sub.dense_a();
    assert!((&a - &c.a).amax() < 1e-9 * c.a.amax());
    assert!(sub.eta * sub.lambda_max < 2.0);
    assert!(cfg.formats.state.fits(1.5 * p.test.truth.amax()));

    // The golden engine relaxes to the exact mean with the interface's biases (time average).
    let b = eval::interface_bias(&c, &iface, &p.test).expect("bias");
    let row: Vec<f64> = b.row(0).iter().copied().collect();
    let exact = c.mean(&DVector::from_vec(row.clone()));
    let mut e = thermo_sim::GoldenEngine::golden(&sub, 7);
    e.prog.set_bias(&sub, &row);
    for _ in 0..300 {
        e.sweep();
    }
    let mut avg = vec![0.0; c.units()];
    for _ in 0..300 {
        e.sweep();
        for (s, x) in avg.iter_mut().zip(e.state_f64()) {
            *s += x / 300.0;
        }
    }
    let err = avg
        .iter()
        .zip(exact.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 0.01, "golden engine vs exact mean: {err}");
}

#[test]
fn dense_skips_compile_exactly_and_plain_svd_differs() {
    let model = model();
    let p = small(&model);
    let mut opts = CompileOptions {
        rank: None,
        ..CompileOptions::default()
    };
    let c = compile::compile(&model, &p.gram, &opts).expect("dense");
    assert!(c.buses.is_empty());
    let w1 = gram::skip_matrix(&model, 1).expect("skip1");
    let (e1, d1) = (
        c.module("enc1").expect("enc1"),
        c.module("dec1").expect("dec1"),
    );
    let blk = c.block(
        &c.range(d1).collect::<Vec<_>>(),
        &c.range(e1).collect::<Vec<_>>(),
    );
    assert!((blk + &w1).amax() < 1e-6);
    opts.rank = Some(4);
    opts.method = Factorisation::PlainSvd;
    opts.stiffness = Stiffness::Spectral;
    let c = compile::compile(&model, &p.gram, &opts).expect("plain");
    assert_eq!(c.buses.len(), 2);
    assert!(c.lambda_min >= opts.margin - 1e-6);
    // The interface ceiling grows with the dimension and is exact with all 128.
    let c16 = eval::capacity_ceiling(&c, &p, 16).expect("ceiling");
    let c64 = eval::capacity_ceiling(&c, &p, 64).expect("ceiling");
    let call = eval::capacity_ceiling(&c, &p, 128).expect("ceiling");
    assert!(
        c16.r2 < c64.r2 && call.cosine > 1.0 - 1e-9,
        "{c16:?} {c64:?} {call:?}"
    );
    for b in &c.buses {
        for r in 0..4 {
            let mu = b.u[r].iter().fold(0.0f64, |m, x| m.max(x.abs()));
            assert!((mu - 1.0).abs() < 1e-12);
        }
    }
}

/// The code width is an option: a 6-d code trains, counts its parameters and validates; the
/// side file records it (older side files without it read as the paper's 4).
#[test]
fn interface_code_width_is_an_option() {
    let model = model();
    let p = small(&model);
    let c = compile::compile(&model, &p.gram, &CompileOptions::default()).expect("compile");
    let topts = TrainOptions {
        steps: 50,
        code: 6,
        ..TrainOptions::default()
    };
    let (iface, _) = eval::train_interface(&model, &c, &p.train, "dec0", &topts).expect("train");
    assert_eq!(iface.code, 6);
    assert_eq!(iface.param_count(), ParamCount::with_code(64, 6, 128));
    iface.validate().expect("valid");
    let mut json: serde_json::Value = serde_json::to_value(&iface).expect("json");
    json.as_object_mut().expect("object").remove("code");
    let back: Interface = serde_json::from_value(json).expect("parse");
    assert_eq!(back.code, 4);
    assert!(back.validate().unwrap_err().contains("enc_w"));
    let bad = TrainOptions { code: 0, ..topts };
    assert!(eval::train_interface(&model, &c, &p.train, "dec0", &bad).is_err());
}
