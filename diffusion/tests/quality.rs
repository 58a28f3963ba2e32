//! Honest metrics: the committed classifier's accuracy, the Wiener filter and the
//! Frechet distance against an independent NumPy computation
//! (`diffusion/scripts/reference_quality.py`; NumPy: `scripts/install-test-deps.sh`), the FD
//! of real and of noise images, the ordering of the denoising baselines, and bad classifier
//! files.

use std::path::{Path, PathBuf};
use std::process::Command;
use thermo_diffusion::classifier::{Classifier, ClassifierReport, ClassifierTrainConfig};
use thermo_diffusion::data::{default_data_path, Digits, Split, PIXELS};
use thermo_diffusion::rng::Rng;
use thermo_diffusion::{io, quality, DiffusionError};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn digits_split() -> (Digits, Split) {
    let d = Digits::load(&default_data_path()).expect("data");
    let s = Split::standard(d.len()).expect("split");
    (d, s)
}

fn committed_classifier() -> Classifier {
    Classifier::load(&root().join("models/digits-classifier.safetensors"))
        .expect("committed classifier")
}

fn labels(d: &Digits, idx: &[usize]) -> Vec<u8> {
    idx.iter().map(|&i| d.labels[i]).collect()
}

#[test]
fn committed_classifier_accuracy_is_pinned() {
    let (d, s) = digits_split();
    assert_eq!(s.test.len(), 359);
    let clf = committed_classifier();
    let acc = clf.accuracy(&d.unit_matrix(&s.test), &labels(&d, &s.test));
    assert!(acc >= 0.98, "test accuracy {acc} < 0.98");
    // The sidecar records the figure `thermo train-classifier` printed.
    let text = std::fs::read_to_string(root().join("models/digits-classifier.json")).unwrap();
    let rep: ClassifierReport = serde_json::from_str(&text).unwrap();
    // (JSON float parsing may differ in the last bit.)
    assert!(
        (rep.acc_test.unwrap() - acc).abs() < 1e-12,
        "sidecar test accuracy {:?} vs {acc}",
        rep.acc_test
    );
    assert_eq!(rep.n_test, 359);
    let (fit, val) =
        thermo_diffusion::data::carve_validation(&s.train, rep.val_fraction, rep.val_seed);
    assert_eq!((fit.len(), val.len()), (rep.n_fit, rep.n_val));
    let fitted = if rep.refit { s.train.clone() } else { fit };
    let acc_train = clf.accuracy(&d.unit_matrix(&fitted), &labels(&d, &fitted));
    assert!((acc_train - rep.acc_train).abs() < 1e-12);
}

#[test]
fn classifier_training_is_seeded_and_round_trips() {
    let (d, s) = digits_split();
    let idx = &s.train[..300];
    let x = d.unit_matrix(idx);
    let y = labels(&d, idx);
    let tc = ClassifierTrainConfig {
        epochs: 3,
        ..ClassifierTrainConfig::default()
    };
    let (a, _) = Classifier::train(&tc, &x, &y, |_, _| {}).unwrap();
    let (b, _) = Classifier::train(&tc, &x, &y, |_, _| {}).unwrap();
    assert_eq!(a, b, "same seed, same weights");
    let bytes = a.to_bytes(&[]).unwrap();
    assert_eq!(bytes, b.to_bytes(&[]).unwrap());
    let c = Classifier::from_bytes(&bytes).unwrap();
    assert_eq!(a, c);
    assert_eq!(c.features(&x).len(), 300 * c.feature_dim());
    let p = c.probs(&x);
    assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-5));
}

/// Run the NumPy reference on a JSON input; `None` if python3/NumPy is missing is an error.
fn numpy_reference(input: &serde_json::Value) -> serde_json::Value {
    let tmp = std::env::temp_dir().join(format!("thermo-quality-ref-{}.json", std::process::id()));
    std::fs::write(&tmp, input.to_string()).expect("write inputs");
    let out = Command::new("python3")
        .arg(root().join("diffusion/scripts/reference_quality.py"))
        .arg(&tmp)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&tmp);
    assert!(
        out.status.success(),
        "reference failed (is NumPy installed? run scripts/install-test-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference output")
}

fn rows_f64(data: &[f32], dim: usize) -> Vec<Vec<f64>> {
    data.chunks_exact(dim)
        .map(|r| r.iter().map(|&v| v as f64).collect())
        .collect()
}

#[test]
fn wiener_and_fd_match_numpy() {
    let (d, s) = digits_split();
    let train = d.unit_matrix(&s.train);
    let w = quality::Wiener::fit(&train).unwrap();
    let mut rng = Rng::new(7);
    let sigmas = [0.05f64, 0.2, 0.5, 1.0, 2.0, 5.0];
    let mut xs: Vec<Vec<f64>> = Vec::new();
    let mut want: Vec<Vec<f64>> = Vec::new();
    for (k, &sg) in sigmas.iter().enumerate() {
        let x0 = d.unit_image(s.test[k * 37]);
        let x: Vec<f64> = x0.iter().map(|&v| v as f64 + sg * rng.normal()).collect();
        want.push(w.denoise_f64(&x, sg));
        xs.push(x);
    }
    // FD of the committed classifier's features: test split vs training split.
    let clf = committed_classifier();
    let fa = clf.features(&d.unit_matrix(&s.test));
    let fb = clf.features(&train);
    let dim = clf.feature_dim();
    let fd = quality::frechet_distance(
        &quality::GaussianFit::from_rows(&fa, dim).unwrap(),
        &quality::GaussianFit::from_rows(&fb, dim).unwrap(),
    );
    let input = serde_json::json!({
        "train": rows_f64(&train, PIXELS),
        "x": xs,
        "sigma": sigmas,
        "feat_a": rows_f64(&fa, dim),
        "feat_b": rows_f64(&fb, dim),
    });
    let got = numpy_reference(&input);
    let got_w: Vec<Vec<f64>> = serde_json::from_value(got["wiener"].clone()).unwrap();
    assert_eq!(got_w.len(), want.len());
    for ((g, r), sg) in got_w.iter().zip(&want).zip(sigmas) {
        let num: f64 = g
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = g.iter().map(|a| a * a).sum::<f64>().sqrt();
        assert!(
            num / den < 1e-9,
            "sigma {sg}: Wiener relative error {} (numpy vs rust)",
            num / den
        );
    }
    let fd_np = got["fd"].as_f64().unwrap();
    assert!(
        (fd - fd_np).abs() < 1e-6 * fd_np.abs().max(1.0),
        "FD rust {fd} vs numpy {fd_np}"
    );
}

#[test]
fn fd_separates_real_digits_from_noise() {
    let (d, s) = digits_split();
    let clf = committed_classifier();
    let reference = quality::QualityReference::new(&clf, &d.unit_matrix(&s.train)).unwrap();
    let real = quality::sample_quality_with(&clf, &d.unit_matrix(&s.test), &reference).unwrap();
    // FD is in the committed classifier's feature scale: real test images 4.4, U-Net samples
    // 26-31, uniform noise 236 (docs/results/baselines.md).
    assert!(real.fd < 6.0, "test split FD {}", real.fd);
    assert!(real.conf90 > 0.9, "test split conf90 {}", real.conf90);
    assert!(
        real.class_entropy_bits > 3.2,
        "entropy {}",
        real.class_entropy_bits
    );
    let mut rng = Rng::new(11);
    let noise: Vec<f32> = (0..256 * PIXELS)
        .map(|_| (2.0 * rng.uniform() - 1.0) as f32)
        .collect();
    let bad = quality::sample_quality_with(&clf, &noise, &reference).unwrap();
    assert!(bad.fd > 20.0, "noise FD {}", bad.fd);
    assert!(bad.nearest_train_dist > 2.0 * real.nearest_train_dist);
    // A copy of the training set is found by the copying check.
    let copies = d.unit_matrix(&s.train[..50]);
    let c = quality::sample_quality_with(&clf, &copies, &reference).unwrap();
    assert_eq!(c.nearest_train_dist, 0.0);
}

#[test]
fn denoising_baselines_are_ordered() {
    let (d, s) = digits_split();
    let train = d.unit_matrix(&s.train);
    let wiener = quality::Wiener::fit(&train).unwrap();
    let mean = quality::MeanBaseline::fit(&train).unwrap();
    let unet = io::load(&root().join("models/digits-unet.safetensors")).unwrap();
    let set = quality::noisy_set(
        &d.unit_matrix(&s.test),
        &quality::EVAL_SIGMAS,
        quality::EVAL_SEED,
    )
    .unwrap();
    let f_unet = |x: &[f32], sg: f32| unet.denoise(x, sg);
    let f_wiener = |x: &[f32], sg: f32| wiener.denoise(x, sg);
    let f_mean = |x: &[f32], sg: f32| mean.denoise(x, sg);
    let t = quality::denoise_table(
        &set,
        &[("U-Net", &f_unet), ("Wiener", &f_wiener), ("mean", &f_mean)],
    );
    for &sg in &quality::EVAL_SIGMAS {
        let (w, m) = (t.mse("Wiener", sg).unwrap(), t.mse("mean", sg).unwrap());
        assert!(w < m, "sigma {sg}: Wiener {w} !< mean {m}");
    }
    let (u, w) = (t.mse("U-Net", 0.5).unwrap(), t.mse("Wiener", 0.5).unwrap());
    assert!(u < w, "sigma 0.5: U-Net {u} !< Wiener {w}");
    let md = t.to_markdown();
    assert!(md.starts_with("| sigma | U-Net | Wiener | mean |"), "{md}");
    assert_eq!(md.lines().count(), 2 + quality::EVAL_SIGMAS.len());
}

fn error_text(r: Result<Classifier, DiffusionError>) -> String {
    match r {
        Ok(_) => panic!("bad classifier file accepted"),
        Err(e) => e.to_string(),
    }
}

/// Rewrite the safetensors file of `model` with one tensor replaced.
fn with_tensor(model: &Classifier, name: &str, shape: Vec<usize>, vals: &[f32]) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let bytes = model.to_bytes(&[]).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let replaced: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut views = Vec::new();
    for (n, t) in st.tensors() {
        if n == name {
            views.push((
                n,
                TensorView::new(Dtype::F32, shape.clone(), &replaced).unwrap(),
            ));
        } else {
            views.push((n, t));
        }
    }
    safetensors::serialize(views, header.metadata().clone()).unwrap()
}

#[test]
fn bad_classifier_files_are_clear_errors() {
    let clf = Classifier::new(&[64, 16, 8, 10], 3).unwrap();
    // Wrong shape.
    let bytes = with_tensor(&clf, "fc1.weight", vec![8, 15], &[0.0; 120]);
    let e = error_text(Classifier::from_bytes(&bytes));
    assert!(e.contains("fc1.weight") && e.contains("shape"), "{e}");
    // NaN weight.
    let mut w = clf.layers[2].w.clone();
    w[5] = f32::NAN;
    let bytes = with_tensor(&clf, "fc2.weight", vec![10, 8], &w);
    let e = error_text(Classifier::from_bytes(&bytes));
    assert!(e.contains("fc2.weight") && e.contains("non-finite"), "{e}");
    // Through a file: the message names the file too.
    let dir = std::env::temp_dir().join(format!("thermo-quality-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("nan.safetensors");
    std::fs::write(&p, &bytes).unwrap();
    let e = error_text(Classifier::load(&p));
    assert!(
        e.contains("fc2.weight") && e.contains("nan.safetensors"),
        "{e}"
    );
    // A U-Net file is not a classifier.
    let e = error_text(Classifier::load(Path::new(
        &root().join("models/digits-unet.safetensors"),
    )));
    assert!(
        e.contains("format") && e.contains("thermo-digits-classifier/1"),
        "{e}"
    );
    // Truncated file.
    let full = clf.to_bytes(&[]).unwrap();
    let p = dir.join("short.safetensors");
    std::fs::write(&p, &full[..full.len() / 2]).unwrap();
    let e = error_text(Classifier::load(&p));
    assert!(e.contains("short.safetensors"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    // Images of the wrong width are an error for the metrics.
    assert!(quality::GaussianFit::from_rows(&[0.0; 65], 64).is_err());
    let e = quality::sample_quality(&clf, &[f32::NAN; 128], &[0.0; 128]).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}
