//! `thermo compile --rank dense --out F && thermo eval --substrate F [--engine fixed]` through the
//! library alone: the same calls the commands make give the figures the README records for that
//! command line (dense clamp compile, test split, sigma 0.5 and 1).

use std::path::PathBuf;
use thermo_diffusion::clamped::{self, ClampOptions, ClampedModel, EngineRun, EngineSettings};
use thermo_diffusion::clamped_eval::{self, EvalOptions};
use thermo_diffusion::data::{default_data_path, Digits, Split};
use thermo_diffusion::{io, quality};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn compile_and_eval_reproduce_the_recorded_dense_figures() {
    let model = io::load(&root().join("models/digits-unet.safetensors")).expect("committed model");
    let d = Digits::load(&default_data_path()).expect("data");
    let split = Split::standard(d.len()).expect("split");
    let images = |idx: &[usize]| -> Vec<Vec<f32>> {
        idx.iter().map(|&i| d.unit_image(i).to_vec()).collect()
    };
    let (train, test) = (images(&split.train), images(&split.test));

    // thermo compile --unet models/digits-unet.safetensors --rank dense --out F
    let c = ClampedModel::compile_calibrated(
        &model,
        &train,
        &ClampOptions {
            rank: None,
            ..Default::default()
        },
        EngineSettings::default(),
        EngineRun::default(),
    )
    .expect("compile");
    let contraction = c.contraction();
    assert!(contraction.proven, "{contraction:?}");
    let cal = c.engine.as_ref().expect("calibrated");
    let cfg = c
        .to_config("dense", &cal.settings, &cal.ranges)
        .expect("engine description");
    assert_eq!(cfg.formats.state.name(), "Q6.9 (16 bits)");

    // thermo eval --substrate F [--engine fixed] --sigmas 0.5,1 (all 359 test images)
    let eval = |path: clamped::Path| {
        clamped_eval::evaluate(
            &c,
            &model,
            &train,
            &test,
            &EvalOptions {
                path,
                run: cal.run,
                seed: 1,
                threads: 2,
                sigmas: vec![0.5, 1.0],
                noise_seed: quality::EVAL_SEED,
                convergence_images: 0,
            },
        )
        .expect("eval")
    };
    // The README's figures, printed to 4 decimals: exact 0.0566 / 0.1271, fixed 0.0599 /
    // 0.1357 with no saturation; the U-Net 0.0559 / 0.1243.
    let (exact, fixed) = (eval(clamped::Path::Exact), eval(clamped::Path::Fixed));
    for (k, (e, f, u)) in [(0.0566, 0.0599, 0.0559), (0.1271, 0.1357, 0.1243)]
        .into_iter()
        .enumerate()
    {
        let (re, rf) = (&exact.rows[k], &fixed.rows[k]);
        assert!((re.substrate - e).abs() <= 5e-5, "exact {re:?}");
        assert!((rf.substrate - f).abs() <= 5e-5, "fixed {rf:?}");
        assert!((re.unet - u).abs() <= 5e-5, "U-Net {re:?}");
        assert_eq!(rf.saturation, 0, "{rf:?}");
    }
}
