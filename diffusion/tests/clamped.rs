//! The clamped substrate: compile, exact fixed point, engines, training gradient, bad input.

mod common;
use common::Pick;
use nalgebra::DMatrix;
use std::path::PathBuf;
use thermo_diffusion::clamped::{
    contraction_of, relax_exact, ClampOptions, ClampedModel, EngineRun, EngineSettings, Path,
    RelaxOptions,
};
use thermo_diffusion::clamped_train::loss_and_grad;
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::rng::Rng;
use thermo_diffusion::{gram, io, Unet};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn model() -> Unet {
    io::load(&root().join("models/digits-unet.safetensors")).expect("committed model loads")
}

struct Data {
    train: Vec<Vec<f32>>,
    test: Vec<Vec<f32>>,
}

fn data() -> Data {
    let d = Digits::load(&default_data_path()).expect("data");
    let s = Split::standard(d.len()).expect("split");
    Data {
        train: s.train.iter().map(|&i| d.unit_image(i).to_vec()).collect(),
        test: s.test.iter().map(|&i| d.unit_image(i).to_vec()).collect(),
    }
}

fn compile(model: &Unet, d: &Data, rank: Option<usize>, g: f64) -> ClampedModel {
    let flat: Vec<f32> = d.train.iter().take(300).flatten().copied().collect();
    let acts = gram::collect_activations(model, &flat, 1, 7);
    let o = ClampOptions {
        rank,
        layer_scale: g,
        ..Default::default()
    };
    ClampedModel::compile(model, &acts, &o).expect("compile")
}

fn noisy(images: &[Vec<f32>], sigma: f32, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    images
        .iter()
        .map(|x| x.iter().map(|v| v + sigma * rng.normal() as f32).collect())
        .collect()
}

/// The implicit gradient through the fixed point against central differences, on every kind
/// of trainable tensor (block, bus sigma/u/v, bias, table, input drive, head, pixel path and
/// decoder drive with their noise-level gates).
#[test]
fn implicit_gradient_matches_finite_differences() {
    let m = model();
    let d = data();
    let mut c = compile(&m, &d, Some(4), 0.2);
    let mut r = Rng::new(11);
    c.out_x = (0..64 * 64).map(|_| 0.05 * r.normal()).collect();
    c.input_out = (0..64 * 128).map(|_| 0.001 * r.normal()).collect();
    c.out_x_gate = (0..c.unet.emb).map(|_| 0.3 * r.normal()).collect();
    c.input_out_gate = (0..c.unet.emb).map(|_| 0.3 * r.normal()).collect();
    let x0s: Vec<Vec<f32>> = d.train[..6].to_vec();
    let sigmas = vec![0.3f32, 0.7, 1.5, 0.3, 2.5, 0.1];
    let mut rng = Rng::new(3);
    let xs: Vec<Vec<f32>> = x0s
        .iter()
        .zip(&sigmas)
        .map(|(x, s)| x.iter().map(|v| v + s * rng.normal() as f32).collect())
        .collect();
    let j = c.coupling_matrix();
    let (_, grad) = loss_and_grad(&c, &j, &x0s, &xs, &sigmas).expect("grad");
    let loss_of = |c: &ClampedModel| -> f64 {
        loss_and_grad(c, &c.coupling_matrix(), &x0s, &xs, &sigmas)
            .expect("loss")
            .0
    };
    let picks: Vec<(&str, Pick)> = vec![
        ("blocks[1].w", |c| &mut c.blocks[1].w),
        ("blocks[3].w", |c| &mut c.blocks[3].w),
        ("buses[0].sigma", |c| &mut c.buses[0].sigma),
        ("buses[0].u[1]", |c| &mut c.buses[0].u[1]),
        ("buses[1].v[0]", |c| &mut c.buses[1].v[0]),
        ("bias", |c| &mut c.bias),
        ("emb", |c| &mut c.emb),
        ("input", |c| &mut c.input),
        ("out_w", |c| &mut c.out_w),
        ("out_x", |c| &mut c.out_x),
        ("input_out", |c| &mut c.input_out),
        ("out_x_gate", |c| &mut c.out_x_gate),
        ("input_out_gate", |c| &mut c.input_out_gate),
    ];
    let checked = common::check_finite_differences(&c, &grad, &picks, loss_of, "implicit");
    assert_eq!(checked, 39);
}

/// The projected fixed point is a fixed point, and with dense skips at g = 0.2 it denoises as
/// the U-Net does (the first row, float).
#[test]
fn dense_clamp_compile_denoises_like_the_unet() {
    let m = model();
    let d = data();
    let c = compile(&m, &d, None, 0.2);
    let j = c.coupling_matrix();
    let ct = contraction_of(&j);
    assert!(ct.proven && ct.norm2 < 0.9, "||J||_2 = {}", ct.norm2);
    for (sigma, bound) in [(0.5f32, 0.065), (1.0, 0.14)] {
        let xs = noisy(&d.test, sigma, 99);
        let b = c.biases(&xs, &vec![sigma; xs.len()]);
        let r = relax_exact(&j, &b, c.lo, c.hi, &RelaxOptions::default()).expect("relax");
        let fp = (&j * &r.y + &b).map(|v| v.clamp(c.lo, c.hi));
        assert!((&fp - &r.y).abs().max() < 1e-8);
        let den = c.denoise_exact(&j, &xs, sigma).expect("denoise");
        let ms = mse(&den, &d.test);
        let unet: Vec<Vec<f32>> = xs.iter().map(|x| m.denoise(x, sigma)).collect();
        let mu = mse(&unet, &d.test);
        assert!(ms <= bound, "sigma {sigma}: MSE {ms:.4} > {bound}");
        assert!(
            ms <= 1.05 * mu,
            "sigma {sigma}: MSE {ms:.4} vs U-Net {mu:.4}"
        );
    }
}

fn mse(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let mut se = 0.0;
    for (x, y) in a.iter().zip(b) {
        for (p, q) in x.iter().zip(y) {
            se += ((p.clamp(-1.0, 1.0) - q) as f64).powi(2);
        }
    }
    se / (64 * a.len()) as f64
}

/// Couplings too strong for the relaxation: the compile's layer scale makes it not contract,
/// and the exact path and the engines refuse with errors that say so.
#[test]
fn non_contracting_substrate_is_a_clear_error() {
    let m = model();
    let d = data();
    let c = compile(&m, &d, None, 0.6);
    let j = c.coupling_matrix();
    assert!(!contraction_of(&j).proven);
    let xs = noisy(&d.test[..8], 1.0, 1);
    let e = c.denoise_exact(&j, &xs, 1.0).unwrap_err();
    assert!(e.contains("contract"), "{e}");
    let e = c
        .to_config(
            "x",
            &EngineSettings::default(),
            &thermo_diffusion::compile::Ranges {
                state_max: 10.0,
                module_state_max: Vec::new(),
                bus_max: 1.0,
                bias_max: 1.0,
            },
        )
        .unwrap_err();
    assert!(e.contains("||J||_2") && e.contains("layer scale"), "{e}");
}

/// NaN weights in the U-Net and a wrong-shaped substrate file name the field.
#[test]
fn bad_weights_and_shapes_name_the_field() {
    let mut m = model();
    let d = data();
    m.dec[0].w[5] = f32::NAN;
    let flat: Vec<f32> = d.train.iter().take(50).flatten().copied().collect();
    let acts = gram::collect_activations(&model(), &flat, 1, 7);
    let e = ClampedModel::compile(&m, &acts, &ClampOptions::default()).unwrap_err();
    assert!(e.contains("dec0.w") || e.contains("`dec"), "{e}");
    let mut c = compile(&model(), &d, Some(8), 0.2);
    c.out_w.pop();
    let e = c.validate().unwrap_err();
    assert!(e.starts_with("out_w"), "{e}");
    let mut c = compile(&model(), &d, Some(8), 0.2);
    c.buses[0].u[3][2] = f64::INFINITY;
    let e = c.validate().unwrap_err();
    assert!(e.contains("buses[0].u[3]"), "{e}");
    // Noise-level gates: one without its path, one of the wrong length, a NaN in one.
    let mut c = compile(&model(), &d, Some(8), 0.2);
    c.out_x_gate = vec![0.0; c.unet.emb];
    let e = c.validate().unwrap_err();
    assert!(
        e.contains("out_x_gate") && e.contains("without its path"),
        "{e}"
    );
    c.out_x = vec![0.0; 64 * 64];
    c.out_x_gate.pop();
    let e = c.validate().unwrap_err();
    assert!(e.contains("out_x_gate: 15 values, expected 16"), "{e}");
    c.out_x_gate.push(f64::NAN);
    let e = c.validate().unwrap_err();
    assert!(e.contains("out_x_gate"), "{e}");
    let _ = (
        DMatrix::<f64>::zeros(1, 1),
        Path::Exact,
        EngineRun {
            burn_in: 0,
            sweeps: 1,
        },
    );
}
