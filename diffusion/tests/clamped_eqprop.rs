//! EqProp on the clamped substrate: against the implicit gradient, against finite differences,
//! the estimators' behaviour in beta, bad input.

mod common;
use common::Pick;
use thermo_diffusion::clamped::{ClampOptions, ClampedModel};
use thermo_diffusion::clamped_eqprop::{
    self, compare, relative_error, Batch, EqpropOptions, Estimator,
};
use thermo_diffusion::clamped_train::{self, tensors_mut};
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::rng::Rng;
use thermo_diffusion::{gram, io, Unet};

fn model() -> Unet {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    io::load(&root.join("models/digits-unet.safetensors")).expect("committed model loads")
}

fn train_images() -> Vec<Vec<f32>> {
    let d = Digits::load(&default_data_path()).expect("data");
    let s = Split::standard(d.len()).expect("split");
    s.train.iter().map(|&i| d.unit_image(i).to_vec()).collect()
}

fn compile(images: &[Vec<f32>]) -> ClampedModel {
    let flat: Vec<f32> = images.iter().take(300).flatten().copied().collect();
    let acts = gram::collect_activations(&model(), &flat, 1, 7);
    let o = ClampOptions {
        rank: Some(4),
        layer_scale: 0.2,
        ..Default::default()
    };
    ClampedModel::compile(&model(), &acts, &o).expect("compile")
}

fn batch(c: &ClampedModel, images: &[Vec<f32>], n: usize, seed: u64) -> Batch {
    let mut rng = Rng::new(seed);
    clamped_eqprop::draw_batch(c, images, n, -0.6, 1.2, &mut rng)
}

fn flat(c: &ClampedModel) -> Vec<f64> {
    let mut c = c.clone();
    tensors_mut(&mut c)
        .into_iter()
        .flat_map(|t| t.clone())
        .collect()
}

/// On training-like batches (held-out seeds) the symmetric EqProp gradient points where the
/// implicit-differentiation gradient does, per tensor group and overall.
#[test]
fn eqprop_gradient_aligns_with_implicit_gradient() {
    let images = train_images();
    let c = compile(&images);
    let batches: Vec<Batch> = (0..2).map(|s| batch(&c, &images, 32, 100 + s)).collect();
    let rows = compare(&c, &batches, &[0.01], &[Estimator::Symmetric]).expect("compare");
    let r = &rows[0];
    for (name, cos) in &r.per_group {
        println!("{name}: {cos:.5}");
    }
    println!(
        "overall {:.6}, substrate {:.6}, rel error {:.3e}, switched {:.2e}",
        r.overall, r.substrate, r.rel_error, r.switched
    );
    assert!(r.overall > 0.99, "overall cosine {}", r.overall);
    assert!(r.substrate > 0.99, "substrate cosine {}", r.substrate);
    for (name, cos) in &r.per_group {
        assert!(*cos > 0.95, "{name}: cosine {cos}");
    }
}

/// The EqProp gradient against central finite differences of the loss on a tiny batch, for the
/// entries with the largest gradients of every kind of tensor.
#[test]
fn eqprop_gradient_matches_finite_differences() {
    let images = train_images();
    let c = compile(&images);
    let (x0s, xs, sigmas) = batch(&c, &images, 3, 7);
    let j = c.coupling_matrix();
    let o = EqpropOptions {
        beta: 1e-3,
        estimator: Estimator::Symmetric,
    };
    let ph = clamped_eqprop::phases(&c, &j, &x0s, &xs, &sigmas, &o).expect("phases");
    let grad = ph.estimate(&c, &xs, &sigmas);
    let loss_of = |c: &ClampedModel| -> f64 {
        clamped_eqprop::phases(c, &c.coupling_matrix(), &x0s, &xs, &sigmas, &o)
            .expect("loss")
            .loss
    };
    let picks: Vec<(&str, Pick)> = vec![
        ("blocks[0].w", |c| &mut c.blocks[0].w),
        ("blocks[3].w", |c| &mut c.blocks[3].w),
        ("buses[0].sigma", |c| &mut c.buses[0].sigma),
        ("buses[0].u[0]", |c| &mut c.buses[0].u[0]),
        ("buses[1].v[1]", |c| &mut c.buses[1].v[1]),
        ("bias", |c| &mut c.bias),
        ("emb", |c| &mut c.emb),
        ("input", |c| &mut c.input),
        ("out_w", |c| &mut c.out_w),
    ];
    let checked = common::check_finite_differences(&c, &grad, &picks, loss_of, "eqprop");
    assert_eq!(checked, 27);
}

/// Where no unit changes its clamp state between the phases (beta up to 1e-3 on this batch; at
/// 2e-3 one does), halving beta halves the one-sided error (ratios 1.9-2.1) while the
/// symmetric bias-nudge estimate is exact up to the phases' solver tolerance (the fixed point is
/// affine in the nudge there), against the implicit gradient solved as tightly.
#[test]
fn estimator_errors_in_beta_without_clamp_switches() {
    let images = train_images();
    let c = compile(&images);
    let (x0s, xs, sigmas) = batch(&c, &images, 4, 21);
    let j = c.coupling_matrix();
    // The reference: the implicit gradient solved as tightly as the phases.
    let (_, exact) = clamped_train::loss_and_grad_with(
        &c,
        &j,
        &x0s,
        &xs,
        &sigmas,
        &clamped_eqprop::PHASE_RELAX,
        1e-14,
    )
    .expect("implicit");
    let exact = flat(&exact);
    let betas = [1e-3, 5e-4, 2.5e-4, 1.25e-4];
    let err = |beta: f64, estimator: Estimator| -> f64 {
        let o = EqpropOptions { beta, estimator };
        let ph = clamped_eqprop::phases(&c, &j, &x0s, &xs, &sigmas, &o).expect("phases");
        assert_eq!(
            ph.switched, 0,
            "beta {beta}: a unit switched its clamp state"
        );
        relative_error(&flat(&ph.estimate(&c, &xs, &sigmas)), &exact)
    };
    let one: Vec<f64> = betas.iter().map(|&b| err(b, Estimator::OneSided)).collect();
    let sym: Vec<f64> = betas
        .iter()
        .map(|&b| err(b, Estimator::Symmetric))
        .collect();
    println!("one-sided {one:?}\nsymmetric {sym:?}");
    for w in one.windows(2) {
        let ratio = w[0] / w[1];
        assert!(
            (1.9..=2.1).contains(&ratio),
            "one-sided ratio {ratio} ({one:?})"
        );
    }
    // The symmetric error is the phases' tolerance over beta (it grows as beta shrinks), far
    // below the one-sided error at the largest beta.
    for s in &sym {
        assert!(*s < 5e-8, "symmetric error {s:e} ({sym:?})");
    }
    assert!(
        sym[0] < 1e-2 * one[0],
        "symmetric {sym:?} vs one-sided {one:?}"
    );
}

/// A nudge that is not one, and a batch whose parts disagree, are clear errors.
#[test]
fn bad_beta_and_batch_are_errors() {
    let images = train_images();
    let c = compile(&images);
    let (x0s, xs, sigmas) = batch(&c, &images, 2, 1);
    let j = c.coupling_matrix();
    for beta in [0.0, -0.1, f64::NAN, f64::INFINITY] {
        let o = EqpropOptions {
            beta,
            estimator: Estimator::Symmetric,
        };
        let e = clamped_eqprop::loss_and_grad(&c, &j, &x0s, &xs, &sigmas, &o).unwrap_err();
        assert!(e.contains("beta") && e.contains("> 0"), "{e}");
    }
    let o = EqpropOptions::default();
    let e = clamped_eqprop::loss_and_grad(&c, &j, &x0s, &xs, &sigmas[..1], &o).unwrap_err();
    assert!(e.contains("noise levels (1)"), "{e}");
    let mut cv = c.clone();
    let to = clamped_train::TrainOptions {
        steps: 1,
        batch: 2,
        ..Default::default()
    };
    let bad = EqpropOptions {
        beta: 0.0,
        estimator: Estimator::OneSided,
    };
    let e = clamped_eqprop::train(
        &mut cv,
        &images[..4],
        &images[4..6],
        &to,
        &bad,
        |_, _, _| {},
    )
    .unwrap_err();
    assert!(e.contains("beta = 0"), "{e}");
}
