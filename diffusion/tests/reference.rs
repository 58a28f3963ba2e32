//! The committed model, run by an independent NumPy implementation of the architecture
//! documented in `diffusion/README.md` (`scripts/reference_forward.py`), gives the same denoised
//! images as the Rust forward pass. NumPy: `scripts/install-test-deps.sh`.

use std::path::PathBuf;
use std::process::Command;
use thermo_diffusion::data::{default_data_path, Digits};
use thermo_diffusion::io;
use thermo_diffusion::rng::Rng;

#[test]
fn numpy_reference_matches_rust_forward() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let model_path = root.join("../models/digits-unet.safetensors");
    let model = io::load(&model_path).expect("committed model");
    let d = Digits::load(&default_data_path()).expect("data");
    let mut rng = Rng::new(42);
    let sigmas = [0.02f32, 0.1, 0.5, 1.0, 3.0, 10.0];
    let mut xs = Vec::new();
    let mut ss = Vec::new();
    let mut want = Vec::new();
    for (i, &s) in sigmas.iter().enumerate() {
        let x0 = d.unit_image(i * 100);
        let x: Vec<f32> = x0.iter().map(|v| v + s * rng.normal() as f32).collect();
        want.push(model.denoise(&x, s));
        xs.push(x);
        ss.push(s);
    }
    let inputs = serde_json::json!({ "x": xs, "sigma": ss });
    let tmp = std::env::temp_dir().join(format!("thermo-ref-{}.json", std::process::id()));
    std::fs::write(&tmp, inputs.to_string()).expect("write inputs");
    let out = Command::new("python3")
        .arg(root.join("scripts/reference_forward.py"))
        .arg(&model_path)
        .arg(&tmp)
        .output()
        .expect("python3 runs");
    let _ = std::fs::remove_file(&tmp);
    assert!(
        out.status.success(),
        "reference failed (is NumPy installed? run scripts/install-test-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).expect("reference output");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        for (a, b) in g.iter().zip(w) {
            assert!((a - *b as f64).abs() < 1e-4, "numpy {a} vs rust {b}");
        }
    }
}
