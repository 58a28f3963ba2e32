//! `thermo energy` end to end: the report's counts and rows on the shipped example, the random
//! substrate and the clamped digits substrate, the Markdown and JSON files, and bad flags.

use std::path::{Path, PathBuf};
use std::process::Command;

fn thermo() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thermo"));
    c.current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    c
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thermo-energy-{name}-{}", std::process::id()));
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

const SMALL: [&str; 8] = [
    "--burn-in",
    "2",
    "--sweeps",
    "3",
    "--batch",
    "2",
    "--reps",
    "1",
];

#[test]
fn energy_report_files_and_counts() {
    let d = tmpdir("report");
    for (name, sub, units, nrows) in [
        (
            "shipped",
            vec!["--config", "examples/three-module.toml"],
            64,
            8,
        ),
        ("random", vec!["--random"], 64, 8),
        (
            "digits",
            vec!["--config", "models/digits-clamped-rank8.json.sim.json"],
            416,
            7, // clamp units: no exact-gradient step
        ),
    ] {
        let (j, m) = (d.join(format!("{name}.json")), d.join(format!("{name}.md")));
        let mut args: Vec<&str> = vec!["energy"];
        args.extend(&sub);
        args.extend(SMALL);
        let (js, ms) = (j.to_str().unwrap(), m.to_str().unwrap());
        args.extend(["--json", js, "--md", ms]);
        let (ok, out, err) = run(&args);
        assert!(ok, "{name}: {out}\n{err}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        let r = &v["report"];
        assert_eq!(r["units"], units, "{name}");
        let c = &r["counts"];
        // 2 examples x 3 phases x 5 sweeps
        assert_eq!(c["phases"], 6);
        assert_eq!(c["sweeps"], 30);
        assert_eq!(c["unit_updates"].as_u64().unwrap(), 30 * units);
        assert_eq!(c["readouts"].as_u64().unwrap(), 6 * units);
        assert!(c["link_bytes"].as_u64().unwrap() > 0);
        let rows = r["rows"].as_array().unwrap();
        assert_eq!(rows.len(), nrows, "{name}");
        let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "measured").count(),
            nrows - 6
        );
        assert_eq!(kinds.iter().filter(|k| **k == "derived").count(), 1);
        for row in rows {
            let e = row["joules"].as_f64().unwrap();
            assert!(e.is_finite() && e > 0.0, "{name}: {row}");
        }
        let md = std::fs::read_to_string(&m).unwrap();
        assert!(md.contains("## Energy per step") && md.contains("## Sensitivity"));
        assert!(out.contains("analog substrate"));
        assert!(v["sensitivity"].as_array().unwrap().len() >= 10);
    }
}

#[test]
fn bad_flags_are_refused_by_name() {
    for (flags, what) in [
        (vec!["--board-watts", "0"], "--board-watts"),
        (vec!["--gpu-utilisation", "NaN"], "--gpu-utilisation"),
        (vec!["--node-capacitance=-1e-15"], "--node-capacitance"),
        (vec!["--cpu-watts-per-core", "inf"], "--cpu-watts-per-core"),
        (vec!["--gpu-utilisation", "2"], "--gpu-utilisation"),
        (vec!["--batch", "0"], "batch must be at least 1"),
        (vec!["--sweeps", "0"], "sweeps per phase must be at least 1"),
        (vec!["--beta", "0"], "--beta"),
        (
            vec!["--fpga-report", "no/such/report.json"],
            "no/such/report.json",
        ),
    ] {
        let mut args = vec!["energy", "--reps", "1"];
        args.extend(&flags);
        let (ok, out, err) = run(&args);
        assert!(!ok, "{flags:?} was accepted: {out}");
        assert!(err.contains(what), "{flags:?}: {err}");
    }
}

const SMALL_SAMPLE: [&str; 10] = [
    "--steps",
    "3",
    "--burn-in",
    "2",
    "--sweeps",
    "3",
    "--batch",
    "2",
    "--reps",
    "1",
];

#[test]
fn inference_report_files_and_counts() {
    let d = tmpdir("inference");
    for (name, sub, units, readout, periphery, nrows) in [
        (
            "shipped",
            vec!["--config", "examples/three-module.toml"],
            64u64,
            24u64, // the decoder module
            0u64,
            6,
        ),
        (
            "digits",
            vec!["--substrate", "models/digits-clamped-rank8.json"],
            416,
            64 + 128, // dec1 and dec0
            // input drive 128 x 64, noise table 416 x 16, head 64 x 128, pixel path 64 x 64,
            // decoder drive 128 x 64, their noise-level gates 2 x 16, output scalars 2 x 64
            (128 * 64 + 416 * 16 + 64 * 128 + 64 * 64 + 128 * 64 + 2 * 16 + 2 * 64) as u64,
            7, // and the U-Net measured
        ),
    ] {
        let (j, m) = (d.join(format!("{name}.json")), d.join(format!("{name}.md")));
        let mut args: Vec<&str> = vec!["energy", "--inference"];
        args.extend(&sub);
        args.extend(SMALL_SAMPLE);
        let (js, ms) = (j.to_str().unwrap(), m.to_str().unwrap());
        args.extend(["--json", js, "--md", ms]);
        let (ok, out, err) = run(&args);
        assert!(ok, "{name}: {out}\n{err}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        let r = &v["report"];
        assert_eq!(r["units"], units, "{name}");
        let c = &r["counts"];
        // 3 calls x 5 sweeps
        assert_eq!(c["calls"], 3);
        assert_eq!(c["sweeps"], 15);
        assert_eq!(c["unit_updates"].as_u64().unwrap(), 15 * units);
        assert_eq!(c["readouts"].as_u64().unwrap(), 3 * readout, "{name}");
        assert_eq!(c["conditioning_writes"].as_u64().unwrap(), 3 * units);
        assert_eq!(
            c["periphery_macs"].as_u64().unwrap(),
            3 * periphery,
            "{name}"
        );
        assert!(c["link_bytes"].as_u64().unwrap() > 0);
        assert!(v["link_bytes_per_call"].as_f64().unwrap() > 0.0);
        let rows = r["rows"].as_array().unwrap();
        assert_eq!(rows.len(), nrows, "{name}");
        let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "measured").count(),
            nrows - 5
        );
        assert_eq!(kinds.iter().filter(|k| **k == "derived").count(), 2);
        assert_eq!(kinds.iter().filter(|k| **k == "projected").count(), 3);
        for row in rows {
            let e = row["joules"].as_f64().unwrap();
            assert!(e.is_finite() && e > 0.0, "{name}: {row}");
        }
        let md = std::fs::read_to_string(&m).unwrap();
        assert!(md.contains("## Energy per sample") && md.contains("## Sensitivity"));
        assert!(out.contains("analog substrate"));
    }
}

#[test]
fn bad_inference_flags_are_refused_by_name() {
    for (flags, what) in [
        (
            vec!["--substrate", "models/digits-clamped-rank8.json"],
            "only with --inference",
        ),
        (vec!["--inference", "--steps", "0"], "steps"),
        (vec!["--inference", "--sweeps", "0"], "sweeps per call"),
        (vec!["--inference", "--batch", "0"], "batch"),
        (
            vec!["--inference", "--substrate", "no/such/clamped.json"],
            "no/such/clamped.json",
        ),
        (
            vec![
                "--inference",
                "--substrate",
                "models/digits-clamped-rank8.json",
                "--unet",
                "models/digits-unet-w16.safetensors",
            ],
            "--unet models/digits-unet-w16.safetensors",
        ),
        (
            vec![
                "--inference",
                "--random",
                "--substrate",
                "models/digits-clamped-rank8.json",
            ],
            "--random and --substrate",
        ),
        (vec!["--inference", "--board-watts=-1"], "--board-watts"),
    ] {
        let mut args = vec!["energy", "--reps", "1"];
        args.extend(&flags);
        let (ok, out, err) = run(&args);
        assert!(!ok, "{flags:?} was accepted: {out}");
        assert!(err.contains(what), "{flags:?}: {err}");
    }
}

/// A reference build of the substrate on fewer lanes than its description (`thermo bitstream
/// --lanes 4`, the committed digits build) is taken as its own build on those lanes: the cycle
/// model counts 4 lanes and the report says so; the shipped example's build is another
/// substrate's.
#[test]
fn inference_takes_the_substrates_own_build_on_its_lanes() {
    let d = tmpdir("own-build");
    for (report, own, lanes) in [
        ("bitstreams/ulx3s-85f-digits/report.json", true, 4),
        ("bitstreams/ulx3s-85f/report.json", false, 16),
    ] {
        let j = d.join("r.json");
        let mut args: Vec<&str> = vec!["energy", "--inference"];
        args.extend(["--substrate", "models/digits-clamped-rank8.json"]);
        args.extend(SMALL_SAMPLE);
        args.extend(["--fpga-report", report, "--json", j.to_str().unwrap()]);
        let (ok, out, err) = run(&args);
        assert!(ok, "{report}: {out}\n{err}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        let note = v["fpga_reference"].as_str().unwrap();
        assert_eq!(note.contains("this substrate's own build"), own, "{note}");
        assert!(
            out.contains(&format!("416 units, {lanes} lanes")),
            "{report}: {out}"
        );
    }
}
