//! `thermo emulate` and `thermo infer` as a user runs them: two processes and a pseudo-terminal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn emulate_then_infer_from_the_command_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("thermo-cli-link-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("ttyBOARD");
    let mut emu = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args(["emulate", "--idle-exit", "5", "--config"])
        .arg(root.join("examples/three-module.toml"))
        .arg("--link")
        .arg(&link)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !link.exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = dir.join("out.npy");
    let o = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args([
            "infer",
            "--sweeps",
            "120",
            "--burn-in",
            "20",
            "--seed",
            "5",
            "--port",
        ])
        .arg(&link)
        .arg("--model")
        .arg(root.join("examples/three-module.toml"))
        .arg("--inputs")
        .arg(root.join("examples/three-module-inputs.csv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let _ = emu.kill();
    let _ = emu.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("8 inferences") && text.contains("utilisation"),
        "{text}"
    );
    // Same numbers as the engine computes directly.
    let rows = thermo_sim::io::read_npy_rows(&out).unwrap();
    let sub = thermo_sim::Substrate::from_file(&root.join("examples/three-module.toml")).unwrap();
    let inputs =
        thermo_host::inference::read_inputs(&root.join("examples/three-module-inputs.csv"))
            .unwrap();
    let ro = thermo_proto::readout_units(&sub);
    for (i, b) in inputs.iter().enumerate() {
        let codes = thermo_host::emulator::conditioning_codes(&sub, b).unwrap();
        let run = thermo_proto::RunRequest {
            slot: 0,
            sweeps: 120,
            burn_in: 20,
            key: thermo_sim::noise::run_key(5 + i as u64),
        };
        let (sums, _, _) = thermo_host::emulator::run_inference(&sub, &codes, &run, &ro);
        let means: Vec<f64> = sums
            .iter()
            .map(|&s| s as f64 * sub.formats.state.lsb() / 120.0)
            .collect();
        assert_eq!(rows[i], means, "inference {i}");
    }
}
