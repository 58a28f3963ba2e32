//! `thermo sample-substrate --engine board` on the committed clamped digits substrate against
//! `thermo emulate --backend engine` (two processes and a pseudo-terminal): every denoiser
//! call's relaxation is a RUN with `RUN_RHO` on the board, and the samples are byte for byte
//! those of `--engine fixed`; a board holding another substrate is refused by name.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SUBSTRATE: &str = "models/digits-clamped-rank8.json";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `thermo emulate --backend engine --config <config>` behind `dir/ttyBOARD`.
fn emulate(config: &str, dir: &Path) -> (Child, PathBuf) {
    let link = dir.join("ttyBOARD");
    let _ = std::fs::remove_file(&link);
    let mut emu = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args([
            "emulate",
            "--backend",
            "engine",
            "--idle-exit",
            "5",
            "--config",
        ])
        .arg(root().join(config))
        .arg("--link")
        .arg(&link)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !link.exists() && t.elapsed() < Duration::from_secs(60) {
        if let Ok(Some(st)) = emu.try_wait() {
            panic!("thermo emulate exited ({st})");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (emu, link)
}

fn sample(engine: &[&str], png: &Path, npy: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_thermo"))
        .arg("sample-substrate")
        .arg("--substrate")
        .arg(root().join(SUBSTRATE))
        .args(["--samples", "6", "--steps", "3", "--seed", "4"])
        .args(["--burn-in", "20", "--sweeps", "50"])
        .args(engine)
        .arg("--png")
        .arg(png)
        .arg("--npy")
        .arg(npy)
        .output()
        .unwrap()
}

#[test]
fn clamped_samples_on_the_emulated_board_equal_the_fixed_engine() {
    let dir = std::env::temp_dir().join(format!("thermo-cli-rho-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut emu, link) = emulate(&format!("{SUBSTRATE}.sim.json"), &dir);
    let (bpng, bnpy) = (dir.join("board.png"), dir.join("board.npy"));
    let port = link.to_str().unwrap().to_string();
    let o = sample(&["--engine", "board", "--port", &port], &bpng, &bnpy);
    let _ = emu.kill();
    let _ = emu.wait();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("0 time-outs, 0 retransmissions") && text.contains("RUN flags 0x4"),
        "{text}"
    );
    let (fpng, fnpy) = (dir.join("fixed.png"), dir.join("fixed.npy"));
    let f = sample(&["--engine", "fixed"], &fpng, &fnpy);
    assert!(f.status.success(), "{}", String::from_utf8_lossy(&f.stderr));
    let (b, x) = (std::fs::read(&bnpy).unwrap(), std::fs::read(&fnpy).unwrap());
    assert_eq!(
        b.len(),
        128 + 6 * 64 * 4,
        "6 samples of 64 float32 after the header"
    );
    assert!(b == x, "board and fixed-engine samples differ");
    assert!(std::fs::read(&bpng).unwrap() == std::fs::read(&fpng).unwrap());
    // the saturation count the board's STATUS gave is the fixed engine's
    let sat = |t: &str| {
        t.split("; ")
            .find(|s| s.ends_with("saturation events"))
            .map(str::to_string)
    };
    let ftext = String::from_utf8_lossy(&f.stdout).into_owned();
    assert!(sat(&text).is_some(), "{text}");
    assert_eq!(sat(&text), sat(&ftext), "{text}\n{ftext}");
    eprintln!("{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A board holding another substrate (the shipped example) is refused before anything runs.
#[test]
fn a_board_with_another_substrate_is_refused() {
    let dir = std::env::temp_dir().join(format!("thermo-cli-rho-other-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mut emu, link) = emulate("examples/three-module.toml", &dir);
    let port = link.to_str().unwrap().to_string();
    let o = sample(
        &["--engine", "board", "--port", &port],
        &dir.join("b.png"),
        &dir.join("b.npy"),
    );
    let _ = emu.kill();
    let _ = emu.wait();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("design mismatch"), "{err}");
    assert!(!dir.join("b.png").exists());
    let _ = std::fs::remove_dir_all(&dir);
}
