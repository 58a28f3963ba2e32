//! Forward-pass structure and the backward pass against finite differences.

use thermo_diffusion::rng::Rng;
use thermo_diffusion::{Activations, Unet, UnetConfig};

fn small_config() -> UnetConfig {
    UnetConfig {
        input: 7,
        enc: vec![6, 5],
        bottleneck: 4,
        emb: 3,
        ..UnetConfig::default()
    }
}

fn loss(m: &Unet, x: &[f32], sigma: f32, t: &[f32]) -> (f64, Activations) {
    let (y, a) = m.forward(x, sigma);
    let l = y
        .iter()
        .zip(t)
        .map(|(a, b)| 0.5 * ((a - b) as f64).powi(2))
        .sum();
    (l, a)
}

fn pattern(a: &Activations) -> Vec<bool> {
    a.layers
        .iter()
        .flat_map(|l| l.pre().into_iter().map(|p| p > 0.0))
        .collect()
}

/// Check every parameter (and the input) of `m` against central differences, skipping those
/// whose perturbation flips a ReLU (the loss is piecewise quadratic in any single parameter,
/// so the central difference is exact up to rounding away from kinks).
fn gradcheck(m: &Unet, seed: u64, max_per_tensor: usize) {
    let mut rng = Rng::new(seed);
    let n = m.config.input;
    let x: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let t: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
    let sigma = 0.7f32;
    let (l0, acts) = loss(m, &x, sigma, &t);
    let base = pattern(&acts);
    let g_out: Vec<f32> = acts.output.iter().zip(&t).map(|(a, b)| a - b).collect();
    let mut grad = Unet::zeros(&m.config);
    let g_in = m.backward(&acts, &g_out, &mut grad);
    assert!(l0.is_finite());
    let h = 1e-2f32;
    let mut checked = 0;
    let mut worst = 0.0f64;
    let names: Vec<String> = m.tensors().into_iter().map(|(n, _)| n).collect();
    let grads: Vec<Vec<f32>> = grad
        .tensors()
        .into_iter()
        .map(|(_, g)| g.to_vec())
        .collect();
    for (ti, name) in names.iter().enumerate() {
        let len = grads[ti].len();
        let step = (len / max_per_tensor).max(1);
        for k in (0..len).step_by(step) {
            let mut mp = m.clone();
            mp.tensors_mut()[ti][k] += h;
            let (lp, ap) = loss(&mp, &x, sigma, &t);
            let mut mm = m.clone();
            mm.tensors_mut()[ti][k] -= h;
            let (lm, am) = loss(&mm, &x, sigma, &t);
            if pattern(&ap) != base || pattern(&am) != base {
                continue;
            }
            let fd = (lp - lm) / (2.0 * h as f64);
            let an = grads[ti][k] as f64;
            let err = (fd - an).abs() / (1e-2 + an.abs().max(fd.abs()));
            worst = worst.max(err);
            assert!(
                err < 2e-2,
                "{name}[{k}]: analytic {an}, finite difference {fd}"
            );
            checked += 1;
        }
    }
    // input gradient
    for k in 0..n {
        let mut xp = x.clone();
        xp[k] += h;
        let mut xm = x.clone();
        xm[k] -= h;
        let (lp, ap) = loss(m, &xp, sigma, &t);
        let (lm, am) = loss(m, &xm, sigma, &t);
        if pattern(&ap) != base || pattern(&am) != base {
            continue;
        }
        let fd = (lp - lm) / (2.0 * h as f64);
        let an = g_in[k] as f64;
        let err = (fd - an).abs() / (1e-2 + an.abs().max(fd.abs()));
        assert!(
            err < 2e-2,
            "input[{k}]: analytic {an}, finite difference {fd}"
        );
        checked += 1;
    }
    assert!(checked > 20, "only {checked} parameters checked");
    eprintln!("gradcheck: {checked} values, worst relative error {worst:.2e}");
}

#[test]
fn backward_matches_finite_differences_small() {
    for seed in 0..3 {
        let m = Unet::new(&small_config(), seed).expect("model");
        gradcheck(&m, 100 + seed, 1000);
    }
}

#[test]
fn backward_matches_finite_differences_default_architecture() {
    let m = Unet::new(&UnetConfig::default(), 5).expect("model");
    gradcheck(&m, 9, 12);
}

#[test]
fn activations_decompose_pre_activations() {
    let c = UnetConfig::default();
    let m = Unet::new(&c, 3).expect("model");
    let mut rng = Rng::new(4);
    let x: Vec<f32> = (0..64).map(|_| rng.normal() as f32).collect();
    let (out, a) = m.forward(&x, 0.5);
    let names: Vec<&str> = a.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["enc0", "enc1", "bottleneck", "dec1", "dec0"]);
    assert_eq!(c.module_names(), names);
    for (name, width) in [
        ("enc0", 128),
        ("enc1", 64),
        ("bottleneck", 32),
        ("dec1", 64),
        ("dec0", 128),
    ] {
        let post = a.get(name).expect("module");
        assert_eq!(post.len(), width);
        assert!(post.iter().all(|v| *v >= 0.0));
        let l = a.layer(name).expect("layer");
        for (p, q) in l.pre().iter().zip(post) {
            assert_eq!(p.max(0.0), *q);
        }
        assert_eq!(l.skip.is_some(), name.starts_with("dec"));
    }
    // the skip contribution is the skip block applied to the encoder activations
    for lvl in 0..2 {
        let s = m.skip_block(lvl).expect("skip block");
        let want = s.apply(a.get(&format!("enc{lvl}")).expect("enc"));
        let got = a
            .layer(&format!("dec{lvl}"))
            .and_then(|l| l.skip.clone())
            .expect("skip");
        assert_eq!(want, got);
    }
    assert_eq!(out, a.output);
    assert!(a.get("nonexistent").is_none());
    // the denoiser is c_skip x + c_out F
    let d = m.denoise(&x, 0.5);
    let (cs, co) = (c.c_skip(0.5), c.c_out(0.5));
    for k in 0..64 {
        assert!((d[k] - (cs * x[k] + co * out[k])).abs() < 1e-6);
    }
    assert_eq!(c.param_count(), 64_480);
}

#[test]
fn macs_per_call_count_every_weight_once() {
    // the default architecture by hand: layers, skip blocks and noise-level tables, then
    // c_in x and c_skip x + c_out F per pixel
    let c = UnetConfig::default();
    let by_hand = 128 * 64 + 128 * 16 // enc0, its table
        + 64 * 128 + 64 * 16 // enc1
        + 32 * 64 + 32 * 16 // bottleneck
        + 64 * 32 + 64 * 64 + 64 * 16 // dec1, skip1, table
        + 128 * 64 + 128 * 128 + 128 * 16 // dec0, skip0, table
        + 64 * 128 // out
        + 3 * 64;
    assert_eq!(c.macs_per_call(), by_hand);
    // and for any architecture: the model's weight tensors (not its biases)
    for cfg in [small_config(), c] {
        let m = Unet::new(&cfg, 1).unwrap();
        let weights: usize = m
            .tensors()
            .iter()
            .filter(|(n, _)| n.ends_with(".weight"))
            .map(|(_, t)| t.len())
            .sum();
        assert_eq!(cfg.macs_per_call(), weights + 3 * cfg.input);
        assert_eq!(
            cfg.macs_per_call()
                + m.tensors()
                    .iter()
                    .filter(|(n, _)| n.ends_with(".bias"))
                    .map(|(_, t)| t.len())
                    .sum::<usize>(),
            cfg.param_count() + 3 * cfg.input
        );
    }
}
