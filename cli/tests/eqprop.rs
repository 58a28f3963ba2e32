//! `thermo eqprop-check` and `thermo train-eqprop` end to end: the tables, the files, a run
//! stopped and resumed equal to one run, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn thermo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thermo"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thermo-eqprop-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = thermo().args(args).output().expect("thermo runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (good, out, err) = run(args);
    assert!(good, "thermo {args:?} failed:\n{out}\n{err}");
    out
}

fn is_png(p: &Path) -> bool {
    std::fs::read(p)
        .map(|b| b.len() > 1000 && b.starts_with(b"\x89PNG"))
        .unwrap_or(false)
}

#[test]
fn eqprop_check_prints_the_tables_and_writes_the_report() {
    let d = tmpdir("check");
    let out = ok(&[
        "eqprop-check",
        "--examples",
        "8",
        "--budgets",
        "20+20,100+400",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert!(out.contains("bias     one-sided"), "{out}");
    assert!(out.contains("same-key"), "{out}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
    let slopes = r["slopes"].as_array().unwrap();
    assert_eq!(slopes.len(), 4);
    let one = &slopes[0];
    assert_eq!(one["nudge"], "bias");
    assert!((one["slope"].as_f64().unwrap() - 1.0).abs() < 0.02);
    // 3 protocols x 2 budgets x 2 estimators.
    assert_eq!(r["cosines"].as_array().unwrap().len(), 12);
    assert!(is_png(&d.join("eqprop-slopes.png")));
    assert!(is_png(&d.join("eqprop-cosines.png")));
}

#[test]
fn train_eqprop_stopped_and_resumed_equals_one_run() {
    let (a, b) = (tmpdir("whole"), tmpdir("split"));
    let common = [
        "train-eqprop",
        "--steps",
        "30",
        "--batch",
        "4",
        "--burn-in",
        "20",
        "--sweeps",
        "40",
        "--train",
        "16",
        "--val",
        "16",
        "--checkpoint-every",
        "7",
    ];
    let mut whole = common.to_vec();
    whole.extend(["--out", a.to_str().unwrap()]);
    let out = ok(&whole);
    assert!(out.contains("train loss"), "{out}");
    let mut first = common.to_vec();
    first.extend(["--out", b.to_str().unwrap(), "--stop-after", "12"]);
    let out = ok(&first);
    assert!(out.contains("stopped at step 12 of 30"), "{out}");
    let mut rest = common.to_vec();
    rest.extend(["--out", b.to_str().unwrap(), "--resume"]);
    let out = ok(&rest);
    assert!(out.contains("resuming at step 12"), "{out}");
    for f in ["trained.substrate.json", "curve.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f} differs between the whole run and the resumed one"
        );
    }
    assert!(is_png(&b.join("curve.png")));

    // Resuming with other options is refused, naming the checkpoint.
    let mut other = common.to_vec();
    other.extend(["--out", b.to_str().unwrap(), "--resume", "--lr", "0.1"]);
    let (good, _, err) = run(&other);
    assert!(
        !good && err.contains("checkpoint.json") && err.contains("other options"),
        "{err}"
    );
}

#[test]
fn train_eqprop_refuses_bad_input() {
    let d = tmpdir("bad");
    let o = d.to_str().unwrap();
    for (args, want) in [
        (vec!["--beta", "0"], "beta = 0"),
        (vec!["--beta=-0.1"], "beta = -0.1"),
        (vec!["--coupling-frac", "20"], "--coupling-frac 20"),
        (vec!["--batch", "0"], "batch"),
        (vec!["--mismatch-gain", "0.9"], "mismatch gain"),
        (vec!["--resume"], "--resume"),
        (vec!["--config", "no/such/file.toml"], "no/such/file.toml"),
    ] {
        let mut a = vec!["train-eqprop", "--out", o, "--steps", "2"];
        a.extend(args.iter().copied());
        let (good, _, err) = run(&a);
        assert!(!good, "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `train-eqprop --port` against `thermo emulate` (engine backend, a second process behind a
/// pseudo-terminal): the trained substrate and the curve equal the same run on the fixed
/// engine byte for byte; a run stopped on the board resumes on the fixed engine to the same
/// result; the options the board cannot run and a missing port are refused.
#[test]
fn train_eqprop_through_an_emulated_board_equals_the_fixed_engine() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let (a, b, c) = (tmpdir("fixed"), tmpdir("board"), tmpdir("board-split"));
    let common = [
        "train-eqprop",
        "--steps",
        "6",
        "--batch",
        "3",
        "--burn-in",
        "10",
        "--sweeps",
        "30",
        "--train",
        "6",
        "--val",
        "6",
        "--eval-every",
        "2",
    ];
    fn with<'a>(common: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = common.to_vec();
        v.extend(extra);
        v
    }
    let out = ok(&with(&common, &["--out", a.to_str().unwrap()]));
    assert!(out.contains("train loss"), "{out}");
    let link = b.join("ttyBOARD");
    let mut emu = thermo()
        .args([
            "emulate",
            "--idle-exit",
            "20",
            "--config",
            "examples/three-module.toml",
            "--link",
        ])
        .arg(&link)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !link.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let l = link.to_str().unwrap();
    let out = ok(&with(&common, &["--out", b.to_str().unwrap(), "--port", l]));
    assert!(out.contains("phases through the board at"), "{out}");
    // stopped on the board, resumed on the fixed engine
    let out = ok(&with(
        &common,
        &[
            "--out",
            c.to_str().unwrap(),
            "--port",
            l,
            "--stop-after",
            "3",
        ],
    ));
    assert!(out.contains("stopped at step 3 of 6"), "{out}");
    ok(&with(&common, &["--out", c.to_str().unwrap(), "--resume"]));
    // options a board cannot run, and a port that is not there
    let (good, _, err) = run(&with(
        &common,
        &[
            "--out",
            c.to_str().unwrap(),
            "--port",
            l,
            "--protocol",
            "independent",
        ],
    ));
    assert!(
        !good && err.contains("--port runs the fixed engine's"),
        "{err}"
    );
    let (good, _, err) = run(&with(
        &common,
        &["--out", c.to_str().unwrap(), "--port", "/no/such/tty"],
    ));
    assert!(!good && err.contains("/no/such/tty"), "{err}");
    let _ = emu.kill();
    let _ = emu.wait();
    for f in ["trained.substrate.json", "curve.csv"] {
        let fixed = std::fs::read(a.join(f)).unwrap();
        assert_eq!(fixed, std::fs::read(b.join(f)).unwrap(), "{f}: board run");
        assert_eq!(fixed, std::fs::read(c.join(f)).unwrap(), "{f}: resumed run");
    }
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["phases_through_board"], l);
}

/// The board vanishes mid-training (the emulator is killed): `train-eqprop --port` stops with an
/// error naming the port, the checkpoint holds the last step finished on the board, and
/// `--resume` (on the fixed engine) ends with the same trained substrate and curve as a run that
/// never left the fixed engine: no step is lost.
#[test]
fn train_eqprop_survives_a_board_that_vanishes() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let (a, b) = (tmpdir("vanish-fixed"), tmpdir("vanish-board"));
    let common = [
        "train-eqprop",
        "--steps",
        "40",
        "--batch",
        "3",
        "--burn-in",
        "10",
        "--sweeps",
        "30",
        "--train",
        "6",
        "--val",
        "6",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "1",
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let args_a = with(&["--out", a.to_str().unwrap()]);
    ok(&args_a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let link = b.join("ttyBOARD");
    let mut emu = thermo()
        .args([
            "emulate",
            "--idle-exit",
            "20",
            "--config",
            "examples/three-module.toml",
            "--link",
        ])
        .arg(&link)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !link.exists() && t.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let l = link.to_str().unwrap();
    let train = thermo()
        .args(with(&["--out", b.to_str().unwrap(), "--port", l]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the board once a few steps are checkpointed.
    let ck = b.join("checkpoint.json");
    let step_of = |p: &Path| -> u64 {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["state"]["step"].as_u64())
            .unwrap_or(0)
    };
    let t = Instant::now();
    while step_of(&ck) < 3 && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(10));
    }
    emu.kill().unwrap();
    let _ = emu.wait();
    let out = train.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "training went on without its board");
    assert!(err.contains(l), "the error names the port: {err}");
    let done = step_of(&ck);
    assert!((3..40).contains(&done), "checkpoint at step {done}");
    let out = ok(&with(&["--out", b.to_str().unwrap(), "--resume"])
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>());
    assert!(out.contains("train loss"), "{out}");
    for f in ["trained.substrate.json", "curve.csv"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}: resumed after the board vanished at step {done}"
        );
    }
}
