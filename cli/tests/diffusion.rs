//! Diffusion commands end to end: the substrate as a denoiser through the emulated board (equal
//! to the fixed engine run directly), and `thermo demo` at small sizes.

use std::path::{Path, PathBuf};
use std::time::Duration;
use thermo_diffusion::substrate::{self, board_run};
use thermo_host::client::Client;
use thermo_host::emulator::spawn_emulator;
use thermo_host::inference::{infer, InferOptions};
use thermo_host::transport::SerialTransport;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The denoiser of `thermo sample-substrate --engine board`: biases of noisy digits through the
/// link to an emulated board and back give the same dec0 readout, bit for bit, and so the same
/// denoised images, as the fixed engine run directly (`--engine fixed`). 4 inputs, about 1 s
/// plus the emulator's 1 s idle exit.
#[test]
fn board_denoiser_equals_the_fixed_engine() {
    let l = substrate::load(&root().join("models/digits-unet-rank8.substrate.json")).unwrap();
    let d =
        thermo_diffusion::data::Digits::load(&thermo_diffusion::data::default_data_path()).unwrap();
    let sigmas = [0.1f32, 0.5, 1.0, 3.0];
    let xs: Vec<Vec<f32>> = sigmas
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let mut r = thermo_diffusion::rng::Rng::stream(5, i as u64);
            d.unit_image(i)
                .iter()
                .map(|v| v + s * r.normal() as f32)
                .collect()
        })
        .collect();
    let biases: Vec<Vec<f64>> = xs
        .iter()
        .zip(&sigmas)
        .map(|(x, &s)| l.bias_of(x, s).unwrap().0)
        .collect();
    let opts = InferOptions {
        sweeps: 80,
        burn_in: 40,
        seed: 900,
    };
    let (path, h) = spawn_emulator(l.sub.clone(), None, Duration::from_secs(1)).unwrap();
    let mut c = Client::new(SerialTransport::open(Path::new(&path), 3_000_000).unwrap());
    let res = infer(&mut c, &l.sub, &biases, opts, |_, _, _| {}).unwrap();
    drop(c);
    h.join().unwrap().unwrap();
    let ro = thermo_proto::readout_units(&l.sub);
    for (i, b) in biases.iter().enumerate() {
        let (direct, sat) = board_run(&l.sub, b, 40, 80, 900 + i as u64);
        assert_eq!(sat.total(), 0);
        let board: Vec<f64> = l
            .dec0
            .iter()
            .map(|u| res.means[i][ro.iter().position(|r| r == u).unwrap()])
            .collect();
        let direct: Vec<f64> = l.dec0.iter().map(|&u| direct[u]).collect();
        assert_eq!(board, direct, "input {i}");
        assert_eq!(
            l.denoised_from_dec0(&xs[i], sigmas[i], &board),
            l.denoised_from_dec0(&xs[i], sigmas[i], &direct)
        );
        // And the readout is a denoiser: closer to the clean digit than the noisy input at the
        // larger noise levels.
        if sigmas[i] >= 1.0 {
            let clean = d.unit_image(i);
            let err =
                |v: &[f32]| -> f32 { v.iter().zip(clean).map(|(a, b)| (a - b).powi(2)).sum() };
            let den = l.denoised_from_dec0(&xs[i], sigmas[i], &direct);
            assert!(err(&den) < err(&xs[i]), "input {i}");
        }
    }
}

/// `thermo demo --interface --quick` with a missing model file: trains one (3 epochs), compiles it with
/// rank-8 buses and the interface, evaluates exactly and on the engines, quantises, and prints
/// the table. About 3 s.
#[test]
fn demo_trains_compiles_evaluates_and_quantises_at_small_sizes() {
    let dir = std::env::temp_dir().join(format!("thermo-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let model = dir.join("m.safetensors");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args(["demo", "--interface", "--quick", "--model"])
        .arg(&model)
        .arg("--out-dir")
        .arg(dir.join("out"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("is missing: training a U-Net (3 epochs"),
        "{text}"
    );
    assert!(model.exists());
    assert!(dir.join("out/m-rank8.substrate.json").exists());
    assert!(dir.join("out/m-rank8.substrate.interface.json").exists());
    assert!(
        text.contains("interface 2536 parameters (budget 2560)"),
        "{text}"
    );
    // The oracle row is exact; the 16/16 fixed row matches golden to 5 decimals.
    let line = |key: &str| {
        text.lines()
            .find(|l| l.contains(key))
            .unwrap_or_else(|| panic!("no `{key}` in\n{text}"))
            .to_string()
    };
    assert!(line("oracle biases, exact").contains("1.0000 / 1.0000 / 1.0000"));
    let wide = line("fixed 16-bit couplings, 16-bit states");
    let g: f64 = wide
        .split("vs golden ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{wide}"));
    assert!(g > 0.9999, "{wide}");
    assert!(text.contains("denoised-image MSE per pixel"));
    let _ = std::fs::remove_dir_all(&dir);
}
