//! The `thermo` command end to end: examples, simulate (report, VCD, GTKWave file, state dump),
//! export and noise dumps checked independently in NumPy, and bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

fn thermo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_thermo"))
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("thermo-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn shipped() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/three-module.toml")
}

fn ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("thermo runs");
    assert!(
        out.status.success(),
        "thermo failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a NumPy script; NumPy is installed by scripts/install-test-deps.sh.
fn numpy(script: &str) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "numpy check failed (is NumPy installed? run scripts/install-test-deps.sh):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn simulate_writes_report_vcd_gtkw_and_states() {
    let d = tmpdir("simulate");
    let (vcd, report, states) = (d.join("run.vcd"), d.join("run.json"), d.join("states.npy"));
    let text = ok(thermo()
        .args([
            "simulate",
            "--engine",
            "fixed",
            "--sweeps",
            "400",
            "--burn-in",
            "50",
            "--seed",
            "7",
            "--thin",
            "2",
        ])
        .arg("--config")
        .arg(shipped())
        .arg("--vcd")
        .arg(&vcd)
        .arg("--report")
        .arg(&report)
        .arg("--dump-states")
        .arg(&states));
    assert!(
        text.contains("enc0") && text.contains("cycles/sweep"),
        "{text}"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["units"], 64);
    assert_eq!(r["sweeps"], 400);
    assert_eq!(r["modules"].as_array().unwrap().len(), 3);
    assert!(r["cycles"].as_u64().unwrap() == r["cycles_per_sweep"].as_u64().unwrap() * 450);
    assert!(r["unit_updates_per_second"].as_f64().unwrap() > 0.0);
    // VCD: module scopes, signed vectors for the fixed engine.
    let v = std::fs::read_to_string(&vcd).unwrap();
    assert!(
        v.contains("$scope module enc0 $end") && v.contains("$var wire 16"),
        "VCD header"
    );
    assert_eq!(
        v.matches("\n#").count(),
        451,
        "one timestamp per sweep plus the initial state"
    );
    // GTKWave save file: groups per module, fixed-point shift of the state format.
    let g = std::fs::read_to_string(vcd.with_extension("gtkw")).unwrap();
    assert!(
        g.contains("-enc0")
            && g.contains("[fpshift_count] 10")
            && g.contains("substrate.dec0.x23[15:0]")
    );
    // It opens on the whole run (450 sweeps + the initial state, zoomed out so that
    // 4.2 * 2^-zoom time units cover the last timestamp), with the sweep counter on top and the
    // states as analog step traces (flag 1 << 15) three rows high.
    let end = r["cycles"].as_u64().unwrap() as f64;
    let zoom: f64 = g
        .lines()
        .find_map(|l| l.strip_prefix('*'))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|z| z.parse().ok())
        .expect("a zoom line");
    let span = 4.2 * 2f64.powf(-zoom);
    assert!(
        span >= end && span < 2.0 * end,
        "zoom {zoom}: span {span} for a run of {end}"
    );
    let first_signal = g.lines().find(|l| l.starts_with("substrate.")).unwrap();
    assert_eq!(first_signal, "substrate.sweep");
    let flags = u64::from_str_radix(
        g.lines()
            .rev()
            .skip_while(|l| !l.starts_with("substrate.dec0.x23"))
            .nth(2)
            .unwrap()
            .trim_start_matches('@'),
        16,
    )
    .unwrap();
    assert!(flags & (1 << 15) != 0, "analog step: {flags:x}");
    // The state dump agrees with the report's readout (independently, in NumPy).
    let means: Vec<f64> = r["modules"][0]["unit_means"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let out = numpy(&format!(
        "import numpy as np; a = np.load('{}'); print(a.shape[0], a.shape[1]); print(a[:, 0].mean(), a[:, 5].mean())",
        states.display()
    ));
    let mut it = out.split_whitespace();
    assert_eq!(it.next(), Some("200"));
    assert_eq!(it.next(), Some("64"));
    // Thinned by 2, so close to (not equal to) the full readout.
    let m0: f64 = it.next().unwrap().parse().unwrap();
    assert!((m0 - means[0]).abs() < 0.05, "{m0} vs {}", means[0]);
}

#[test]
fn golden_vcd_uses_reals() {
    let d = tmpdir("golden");
    let vcd = d.join("g.vcd");
    ok(thermo()
        .args([
            "simulate",
            "--engine",
            "golden",
            "--sweeps",
            "5",
            "--burn-in",
            "0",
        ])
        .arg("--config")
        .arg(shipped())
        .arg("--vcd")
        .arg(&vcd));
    let v = std::fs::read_to_string(&vcd).unwrap();
    assert!(v.contains("$var real 64"));
}

#[test]
fn same_seed_same_result_from_the_command_line() {
    let d = tmpdir("determinism");
    let run = |name: &str, threads: &str| {
        let p = d.join(name);
        ok(thermo()
            .args([
                "simulate",
                "--sweeps",
                "300",
                "--seed",
                "3",
                "--threads",
                threads,
            ])
            .arg("--config")
            .arg(shipped())
            .arg("--report")
            .arg(&p));
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        r["modules"].to_string()
    };
    let a = run("a.json", "1");
    assert_eq!(a, run("b.json", "1"));
    assert_eq!(a, run("c.json", "2"));
}

#[test]
fn export_matches_numpy_linear_algebra() {
    let d = tmpdir("export");
    let npz = d.join("e.npz");
    ok(thermo()
        .arg("export")
        .arg("--config")
        .arg(shipped())
        .arg("--npz")
        .arg(&npz));
    let s = thermo_sim::Substrate::from_file(&shipped()).unwrap();
    let (mean, cov) = s.stationary_law();
    let out = numpy(&format!(
        "import numpy as np; z = np.load('{}'); A = z['A']; b = z['b']; eta = float(z['eta']); T = float(z['T'])\n\
         assert np.allclose(A, A.T)\n\
         m = np.linalg.solve(A, b); C = T * np.linalg.inv(A - eta / 2 * A @ A)\n\
         print(m[0], m[63], C[0, 0], C[10, 50]); print(list(z['module_names']), z['module_ranges'].tolist(), z['bus0_u'].shape)",
        npz.display()
    ));
    let nums: Vec<f64> = out
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    for (got, want) in nums
        .iter()
        .zip([mean[0], mean[63], cov[(0, 0)], cov[(10, 50)]])
    {
        assert!(
            (got - want).abs() < 1e-10 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
    let second = out.lines().nth(1).unwrap();
    assert!(
        second.contains("'enc0'")
            && second.contains("[[0, 24], [24, 40], [40, 64]]")
            && second.contains("(2, 24)"),
        "{second}"
    );
}

#[test]
fn noise_dump_is_readable_and_report_prints_figures() {
    let d = tmpdir("noise");
    let npy = d.join("z.npy");
    let text = ok(thermo()
        .args(["noise", "--samples", "20000", "--lanes", "3", "--seed", "4"])
        .arg("--dump")
        .arg(&npy));
    for key in [
        "Anderson-Darling",
        "kurtosis",
        "tails",
        "lag-1",
        "cross-lane",
        "period",
    ] {
        assert!(text.contains(key), "missing {key}: {text}");
    }
    let out = numpy(&format!(
        "import numpy as np; z = np.load('{}'); print(z.shape, round(float(z.std()), 2))",
        npy.display()
    ));
    assert!(out.starts_with("(3, 20000) 1.0"), "{out}");
}

#[test]
fn example_command_writes_valid_substrates() {
    let d = tmpdir("example");
    for (units, modules, rank, ext) in [(100, 5, 3, "toml"), (33, 2, 1, "json"), (10, 1, 0, "toml")]
    {
        let p = d.join(format!("ex-{units}.{ext}"));
        ok(thermo()
            .args([
                "example",
                "--units",
                &units.to_string(),
                "--modules",
                &modules.to_string(),
                "--rank",
                &rank.to_string(),
                "--seed",
                "2",
                "-o",
            ])
            .arg(&p));
        let s = thermo_sim::Substrate::from_file(&p).unwrap();
        assert_eq!(s.units(), units);
        assert_eq!(s.modules.len(), modules);
        assert_eq!(s.buses.len(), if rank > 0 { modules / 2 } else { 0 });
    }
}

#[test]
fn bad_configuration_fails_with_file_and_field() {
    let d = tmpdir("bad");
    let p = d.join("bad.toml");
    let text = std::fs::read_to_string(shipped())
        .unwrap()
        .replace("eta = 0.25", "eta = 1.5");
    std::fs::write(&p, text).unwrap();
    let out = thermo()
        .args(["simulate", "--sweeps", "10"])
        .arg("--config")
        .arg(&p)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("eta"), "{err}");
    let out = thermo()
        .args(["simulate", "--config", "/nonexistent/x.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

/// Arguments the commands cannot run with are clear errors naming the flag, not panics and not
/// silently accepted.
#[test]
fn bad_arguments_are_clear_errors() {
    let config = shipped();
    let c = config.to_str().unwrap();
    for (args, want) in [
        (vec!["bench", "--units", "4"], "--units"),
        (
            vec!["bench", "--memory-only", "--memory-units", "3"],
            "--memory-units",
        ),
        (vec!["link-bench", "--inferences", "2"], "--inferences 2"),
        (
            vec!["simulate", "--config", c, "--sweeps", "0"],
            "--sweeps 0",
        ),
        (
            vec!["simulate", "--config", c, "--sweeps", "5", "--thin", "0"],
            "--thin 0",
        ),
        (
            vec!["simulate", "--config", c, "--sweeps", "5", "--threads", "0"],
            "--threads 0",
        ),
    ] {
        let out = thermo().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains(want) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}
