//! Distillation: a teacher's denoised output as the training target of a clamped substrate.

use std::path::PathBuf;
use thermo_diffusion::clamped::{ClampOptions, ClampedModel};
use thermo_diffusion::clamped_train::{self, Teacher, TrainOptions};
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::rng::Rng;
use thermo_diffusion::{gram, io};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn train_images() -> Vec<Vec<f32>> {
    let d = Digits::load(&default_data_path()).expect("data");
    let s = Split::standard(d.len()).expect("split");
    s.train.iter().map(|&i| d.unit_image(i).to_vec()).collect()
}

fn dense_compile(images: &[Vec<f32>]) -> ClampedModel {
    let m = io::load(&root().join("models/digits-unet.safetensors")).expect("committed model");
    let flat: Vec<f32> = images.iter().take(300).flatten().copied().collect();
    let acts = gram::collect_activations(&m, &flat, 1, 7);
    ClampedModel::compile(&m, &acts, &ClampOptions::default()).expect("compile")
}

fn noisy(x0s: &[Vec<f32>], sigmas: &[f32], seed: u64) -> Vec<Vec<f32>> {
    let mut rng = Rng::new(seed);
    x0s.iter()
        .zip(sigmas)
        .map(|(x, s)| x.iter().map(|v| v + s * rng.normal() as f32).collect())
        .collect()
}

fn sq_dist(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    let n: usize = a.iter().map(|v| v.len()).sum();
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / n as f64
}

/// `targets(w)` is the clean image at w = 0, the teacher's exact denoiser at w = 1 (checked
/// against `ClampedModel::denoise_exact`, one noise level at a time) and the blend between.
#[test]
fn targets_blend_the_clean_image_and_the_teachers_output() {
    let imgs = train_images();
    let c = dense_compile(&imgs);
    let j = c.coupling_matrix();
    let t = Teacher::new(c.clone()).expect("teacher");
    let x0s = imgs[..32].to_vec();
    let sigmas = vec![0.5f32; 32];
    let xs = noisy(&x0s, &sigmas, 5);
    assert_eq!(t.targets(0.0, &x0s, &xs, &sigmas).unwrap(), x0s);
    let full = t.targets(1.0, &x0s, &xs, &sigmas).unwrap();
    let reference = c.denoise_exact(&j, &xs, 0.5).expect("denoise");
    assert!(sq_dist(&full, &reference) < 1e-12);
    // The teacher denoises: clipped to the data's range, closer to the clean images than the
    // noisy inputs are.
    let clip = |v: &[Vec<f32>]| -> Vec<Vec<f32>> {
        v.iter()
            .map(|x| x.iter().map(|p| p.clamp(-1.0, 1.0)).collect())
            .collect()
    };
    let (dn, nn) = (sq_dist(&clip(&full), &x0s), sq_dist(&xs, &x0s));
    assert!(dn < 0.5 * nn, "denoised {dn:.4}, noisy {nn:.4}");
    let quarter = t.targets(0.25, &x0s, &xs, &sigmas).unwrap();
    for ((q, x0), f) in quarter
        .iter()
        .flatten()
        .zip(x0s.iter().flatten())
        .zip(full.iter().flatten())
    {
        assert!((q - (0.75 * x0 + 0.25 * f)).abs() < 1e-6);
    }
}

/// Distilling a perturbed copy of the teacher brings its denoised output towards the teacher's
/// on images it did not train on.
#[test]
fn distillation_moves_the_student_towards_the_teacher() {
    let imgs = train_images();
    let teacher = dense_compile(&imgs);
    let mut student = teacher.clone();
    let mut r = Rng::new(9);
    for b in student.blocks.iter_mut() {
        b.w.iter_mut().for_each(|w| *w *= 0.8);
    }
    student
        .bias
        .iter_mut()
        .for_each(|b| *b += 0.05 * r.normal());
    let t = Teacher::new(teacher).expect("teacher");
    let held: Vec<Vec<f32>> = imgs[1000..1032].to_vec();
    let sigmas: Vec<f32> = (0..held.len()).map(|i| [0.3f32, 1.0, 2.5][i % 3]).collect();
    let xs = noisy(&held, &sigmas, 77);
    let dist = |c: &ClampedModel| {
        let j = c.coupling_matrix();
        let b = c.biases(&xs, &sigmas);
        let r = thermo_diffusion::clamped::relax_exact(&j, &b, c.lo, c.hi, &Default::default())
            .expect("relax");
        let d = c.denoised(&xs, &sigmas, &c.head(&r.y, &xs, &sigmas));
        sq_dist(&d, &t.denoise(&xs, &sigmas).unwrap())
    };
    let before = dist(&student);
    let o = TrainOptions {
        steps: 40,
        batch: 16,
        lr: 3e-3,
        val_every: 10,
        distill: 1.0,
        ..Default::default()
    };
    let report = clamped_train::train_with(
        &mut student,
        &imgs[..900],
        &imgs[900..964],
        &o,
        Some(&t),
        clamped_train::loss_and_grad,
        |_, _, _| {},
    )
    .expect("train");
    let after = dist(&student);
    assert!(report.best_step > 0, "kept step {}", report.best_step);
    assert!(
        after < 0.5 * before,
        "distance to the teacher {before:.3e} -> {after:.3e}"
    );
}

/// A distillation weight outside [0, 1], one without a teacher, and a teacher of another image
/// size are clear errors.
#[test]
fn bad_distillation_settings_are_clear_errors() {
    let imgs = train_images();
    let c = dense_compile(&imgs);
    let t = Teacher::new(c.clone()).expect("teacher");
    let run = |o: &TrainOptions, t: Option<&Teacher>| {
        let mut s = c.clone();
        clamped_train::train_with(
            &mut s,
            &imgs[..8],
            &imgs[8..10],
            o,
            t,
            clamped_train::loss_and_grad,
            |_, _, _| {},
        )
        .map(|_| ())
        .unwrap_err()
    };
    let base = TrainOptions {
        steps: 1,
        batch: 2,
        ..Default::default()
    };
    let e = run(
        &TrainOptions {
            distill: 1.5,
            ..base.clone()
        },
        Some(&t),
    );
    assert!(e.contains("1.5") && e.contains("[0, 1]"), "{e}");
    let e = run(
        &TrainOptions {
            distill: 0.5,
            ..base.clone()
        },
        None,
    );
    assert!(e.contains("needs a teacher"), "{e}");
    let mut other = c.clone();
    other.unet.sigma_data = 0.5;
    let t2 = Teacher::new(other).expect("teacher");
    let e = run(
        &TrainOptions {
            distill: 1.0,
            ..base.clone()
        },
        Some(&t2),
    );
    assert!(
        e.contains("sigma_data 0.5") && e.contains("sigma_data 0.75"),
        "{e}"
    );
}
