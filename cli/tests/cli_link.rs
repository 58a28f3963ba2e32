//! `thermo emulate` and `thermo infer` as a user runs them: two processes and a pseudo-terminal.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn emulate_then_infer_from_the_command_line() {
    emulate_then_infer(SHIPPED, "engine", &[], Duration::from_secs(10), 120, 20);
}

/// The same with the board's RTL (UART pins, link, substrate) in Verilator behind the
/// pseudo-terminal: the host's bytes go through the RTL UART at 25 MHz / 3 Mbaud, and the results
/// are again those of `Fixed::run_codes`, bit for bit. (The model's build is shared with the RTL link
/// tests' and cached; a cold build takes about a minute.)
#[test]
fn emulate_verilator_then_infer_from_the_command_line() {
    emulate_then_infer(
        SHIPPED,
        "verilator",
        &[
            "--backend",
            "verilator",
            "--clock-mhz",
            "25",
            "--baud",
            "3000000",
        ],
        Duration::from_secs(900),
        50,
        10,
    );
}

/// The same RTL built for a 100 MHz clock at 3 Mbaud (33 clocks a bit): the simulated board moves
/// bytes about 50 times slower than its line rate. `thermo infer` measures that time scale and
/// completes without a time-out or a retransmission, results bit for bit `Fixed::run_codes`.
#[test]
fn emulate_slow_verilator_board_then_infer_without_time_outs() {
    let text = emulate_then_infer(
        SHIPPED,
        "verilator-100mhz",
        &[
            "--backend",
            "verilator",
            "--clock-mhz",
            "100",
            "--baud",
            "3000000",
        ],
        Duration::from_secs(900),
        50,
        10,
    );
    assert!(
        text.contains(" 0 time-outs, 0 retransmissions"),
        "the link timed out: {text}"
    );
}

/// The iCEBreaker build's RTL (its small link: 2 slots, 508-byte payloads) at 12 MHz with the
/// substrate of the reference bitstream (`bitstreams/icebreaker`: the shipped example on one
/// lane): the host follows its IDENTIFY.
#[test]
fn emulate_icebreaker_rtl_then_infer_from_the_command_line() {
    emulate_then_infer(
        (
            "bitstreams/icebreaker/substrate.toml",
            "examples/three-module-inputs.csv",
        ),
        "verilator-icebreaker",
        &[
            "--backend",
            "verilator",
            "--board",
            "icebreaker",
            "--clock-mhz",
            "12",
            "--baud",
            "3000000",
        ],
        Duration::from_secs(900),
        40,
        5,
    );
}

/// The digits substrate (`models/digits-unet-rank8.substrate.json`: 416 units, 16 lanes, two
/// rank-8 buses) as RTL in Verilator behind the pseudo-terminal, simulated far slower than a board
/// runs: `thermo infer` measures the link's time scale and completes without a time-out or a
/// retransmission, results bit for bit `Fixed::run_codes`. Ignored in `cargo test`: the cold
/// Verilator build takes about 4 minutes; `scripts/rtl-end-to-end.sh` runs it.
#[test]
#[ignore]
fn emulate_verilator_digits_then_infer_without_time_outs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let model = "models/digits-unet-rank8.substrate.json";
    let sub = thermo_sim::Substrate::from_file(&root.join(model)).unwrap();
    // four conditioning rows: the substrate's biases, each perturbed differently
    let dir = std::env::temp_dir().join(format!("thermo-cli-digits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let inputs = dir.join("inputs.csv");
    let rows: Vec<String> = (0..4)
        .map(|r| {
            sub.bias
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{}", b + 0.4 * ((i * 7 + r * 13) as f64 * 0.37).sin()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    std::fs::write(&inputs, rows.join("\n")).unwrap();
    let text = emulate_then_infer(
        (model, inputs.to_str().unwrap()),
        "verilator-digits",
        &[
            "--backend",
            "verilator",
            "--clock-mhz",
            "25",
            "--baud",
            "3000000",
        ],
        Duration::from_secs(1800),
        50,
        10,
    );
    eprintln!("{text}");
    assert!(
        text.contains(" 0 time-outs, 0 retransmissions"),
        "the link timed out: {text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const SHIPPED: (&str, &str) = (
    "examples/three-module.toml",
    "examples/three-module-inputs.csv",
);

fn emulate_then_infer(
    (model, inputs_file): (&str, &str),
    name: &str,
    backend: &[&str],
    wait: Duration,
    sweeps: u32,
    burn_in: u32,
) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("thermo-cli-link-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("ttyBOARD");
    let _ = std::fs::remove_file(&link);
    let mut emu = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args(["emulate", "--idle-exit", "5", "--config"])
        .arg(root.join(model))
        .args(backend)
        .arg("--link")
        .arg(&link)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !link.exists() && t.elapsed() < wait {
        if let Ok(Some(st)) = emu.try_wait() {
            let mut e = String::new();
            let _ = std::io::Read::read_to_string(&mut emu.stderr.take().unwrap(), &mut e);
            panic!("thermo emulate {backend:?} exited ({st}): {e}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = dir.join("out.npy");
    let t_infer = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .arg("infer")
        .args([
            "--sweeps",
            &sweeps.to_string(),
            "--burn-in",
            &burn_in.to_string(),
        ])
        .args(["--seed", "5", "--port"])
        .arg(&link)
        .arg("--model")
        .arg(root.join(model))
        .arg("--inputs")
        .arg(root.join(inputs_file))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let infer_s = t_infer.elapsed().as_secs_f64();
    let _ = emu.kill();
    let _ = emu.wait();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains(" inferences") && text.contains("utilisation"),
        "{text}"
    );
    // Same numbers as the engine computes directly.
    let rows = thermo_sim::io::read_npy_rows(&out).unwrap();
    let sub = thermo_sim::Substrate::from_file(&root.join(model)).unwrap();
    let inputs = thermo_host::inference::read_inputs(&root.join(inputs_file)).unwrap();
    assert_eq!(rows.len(), inputs.len());
    let ro = thermo_proto::readout_units(&sub);
    for (i, b) in inputs.iter().enumerate() {
        let codes = thermo_sim::Fixed::bias_codes(&sub, b).unwrap();
        let key = thermo_sim::noise::run_key(5 + i as u64);
        let run = thermo_sim::Fixed::run_codes(&sub, &codes, key, burn_in, sweeps, &ro);
        let means: Vec<f64> = run
            .sums
            .iter()
            .map(|&s| s as f64 * sub.formats.state.lsb() / sweeps as f64)
            .collect();
        assert_eq!(rows[i], means, "{name}: inference {i}");
    }
    eprintln!(
        "{name} board behind a pty: {} inferences of {sweeps} sweeps by thermo infer in {infer_s:.2} s equal Fixed::run_codes bit for bit",
        inputs.len()
    );
    text.into_owned()
}

/// Bad input rows are reported with the file and a 1-based row before the port is opened (the
/// port here does not exist: the error must be about the inputs, not the port).
#[test]
fn bad_input_rows_are_reported_before_the_port_opens() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("thermo-infer-rows-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = std::fs::read_to_string(root.join("examples/three-module-inputs.csv")).unwrap();
    let first = good
        .lines()
        .find(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .unwrap()
        .to_string();
    // Row 2 is one value short.
    let short: Vec<&str> = first.split(',').collect();
    let bad = format!(
        "# comment\n{first}\n{}\n",
        short[..short.len() - 1].join(",")
    );
    let inputs = dir.join("bad.csv");
    std::fs::write(&inputs, bad).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args(["infer", "--port", "/dev/does-not-exist-thermo", "--model"])
        .arg(root.join("examples/three-module.toml"))
        .arg("--inputs")
        .arg(&inputs)
        .arg("--out")
        .arg(dir.join("o.csv"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("bad.csv: row 2"), "{err}");
    assert!(!err.contains("does-not-exist"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
