//! Training is seeded, reproducible and reduces the loss; sampling and PNG output work.

use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::sample;
use thermo_diffusion::train::{eval_losses, train, TrainConfig};
use thermo_diffusion::{Unet, UnetConfig};

fn setup() -> (Digits, Split) {
    let d = Digits::load(&default_data_path()).expect("data");
    let s = Split::new(d.len(), 0.2, 1).expect("split");
    (d, s)
}

#[test]
fn short_training_reduces_loss_and_is_reproducible() {
    let (d, s) = setup();
    let c = UnetConfig::default();
    let tc = TrainConfig {
        epochs: 12,
        seed: 3,
        ..TrainConfig::default()
    };
    let (m, losses) = train(&c, &tc, &d, &s, |_, _| {}).expect("train");
    assert_eq!(losses.len(), 12);
    let (first, last) = (losses[0], losses[losses.len() - 1]);
    assert!(last < 0.8 * first, "epoch losses {losses:?}");
    // held-out denoising error falls against the untrained model at mid noise levels
    let test = d.unit_matrix(&s.test);
    let init = Unet::new(&c, 3).expect("model");
    let sig = [0.5f32, 1.0];
    let before = eval_losses(&init, &test, &sig, 1, 9);
    let after = eval_losses(&m, &test, &sig, 1, 9);
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a.x0_mse < 0.7 * b.x0_mse,
            "sigma {}: {} -> {}",
            a.sigma,
            b.x0_mse,
            a.x0_mse
        );
    }
    // same seed, same weights
    let tc2 = TrainConfig {
        epochs: 2,
        ..tc.clone()
    };
    let (a, _) = train(&c, &tc2, &d, &s, |_, _| {}).expect("train");
    let (b, _) = train(&c, &tc2, &d, &s, |_, _| {}).expect("train");
    assert_eq!(a, b);
    let (c3, _) = train(&c, &TrainConfig { seed: 4, ..tc2 }, &d, &s, |_, _| {}).expect("train");
    assert_ne!(a, c3);
}

#[test]
fn sampler_and_png_grid() {
    let c = UnetConfig::default();
    let m = Unet::new(&c, 1).expect("model");
    let sig = sample::karras_sigmas(10, c.sigma_min, c.sigma_max, 7.0);
    assert_eq!(sig.len(), 11);
    assert!((sig[0] - c.sigma_max).abs() < 1e-4 && (sig[9] - c.sigma_min).abs() < 1e-6);
    assert!(sig.windows(2).all(|w| w[0] > w[1]) && sig[10] == 0.0);
    let imgs = sample::sample(&m, 3, 10, 2);
    assert_eq!(imgs.len(), 3);
    assert!(imgs
        .iter()
        .all(|i| i.len() == 64 && i.iter().all(|v| (-1.0..=1.0).contains(v))));
    assert_eq!(imgs, sample::sample(&m, 3, 10, 2));
    let path = std::env::temp_dir().join(format!("thermo-grid-{}.png", std::process::id()));
    sample::write_png_grid(&imgs, 2, 3, &path).expect("png");
    let bytes = std::fs::read(&path).expect("read png");
    assert_eq!(&bytes[1..4], b"PNG");
    let _ = std::fs::remove_file(path);
}

#[test]
fn skip_rank_training_keeps_skips_exactly_rank_k() {
    use thermo_diffusion::gram::{
        collect_activations, gram, gram_weighted, relative_error, skip_matrix,
    };
    let (d, s) = setup();
    let c = UnetConfig::default();
    let tc = TrainConfig {
        epochs: 2,
        seed: 5,
        skip_rank: Some(4),
        ..TrainConfig::default()
    };
    let (m, _) = train(&c, &tc, &d, &s, |_, _| {}).expect("train");
    let acts = collect_activations(&m, &d.unit_matrix(&s.test[..100]), 1, 3);
    for level in 0..2 {
        let w = skip_matrix(&m, level).expect("skip");
        let sv = w.clone().singular_values();
        let mut sv: Vec<f64> = sv.iter().copied().collect();
        sv.sort_by(|a, b| b.total_cmp(a));
        assert!(
            sv[4] < 1e-4 * sv[0],
            "skip{level} singular values {:?}",
            &sv[..6]
        );
        let e = acts.module(&format!("enc{level}")).expect("enc");
        let f = gram_weighted(&w, &gram(e), 4).expect("factor");
        assert!(relative_error(&w, &f.matrix(), e) < 1e-6);
    }
}
