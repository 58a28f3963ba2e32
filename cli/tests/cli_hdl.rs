//! The hardware commands as a user runs them: `thermo verilog`, `thermo verify --vcd` and
//! `thermo vcd-diff` against the engine's dump from `thermo simulate --vcd`.

use std::path::Path;
use std::process::Command;

fn thermo(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .args(args)
        .output()
        .expect("thermo runs");
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn verilog_verify_and_vcd_diff_from_the_command_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cfg = root.join("examples/three-module.toml");
    let cfg = cfg.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("thermo-cli-hdl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |n: &str| dir.join(n).to_string_lossy().into_owned();

    let (ok, out) = thermo(&["verilog", "--config", cfg, "-o", &p("top.v")]);
    assert!(ok, "{out}");
    let v = std::fs::read_to_string(p("top.v")).unwrap();
    assert!(v.contains("module top"), "no top module in the Verilog");

    let (ok, out) = thermo(&[
        "verify",
        "--config",
        cfg,
        "--sweeps",
        "12",
        "--seed",
        "5",
        "--vcd",
        &p("hw.vcd"),
    ]);
    assert!(ok, "{out}");
    let cycles = thermo_sim::schedule::Schedule::new(
        &thermo_sim::Substrate::from_file(Path::new(cfg)).unwrap(),
    )
    .cycles_per_sweep;
    assert!(
        out.contains("equal to the fixed engine, bit for bit")
            && out.contains(&format!("{cycles} cycles every sweep")),
        "{out}"
    );
    assert!(
        Path::new(&p("hw.gtkw")).exists()
            || Path::new(&p("hw.vcd.gtkw")).exists()
            || out.contains(".gtkw"),
        "{out}"
    );

    // The engine's trace of the same 12 sweeps for a seed.
    let simulate_vcd = |seed: &str, file: &str| {
        let (ok, out) = thermo(&[
            "simulate",
            "--config",
            cfg,
            "--sweeps",
            "12",
            "--burn-in",
            "0",
            "--seed",
            seed,
            "--vcd",
            &p(file),
        ]);
        assert!(ok, "{out}");
    };
    simulate_vcd("5", "eng.vcd");
    let (ok, out) = thermo(&["vcd-diff", &p("eng.vcd"), &p("hw.vcd")]);
    assert!(ok && out.contains("no divergence"), "{out}");
    // Another seed diverges, and vcd-diff says where.
    simulate_vcd("6", "eng6.vcd");
    let (ok, out) = thermo(&["vcd-diff", &p("eng6.vcd"), &p("hw.vcd")]);
    assert!(
        !ok && out.contains(&format!("first divergence at time {cycles}")),
        "{out}"
    );
}

#[test]
fn schedule_prints_the_replicated_and_banked_rows_and_refuses_bad_arguments() {
    let ex = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/three-module.toml");
    let json = std::env::temp_dir().join(format!("thermo-schedule-{}.json", std::process::id()));
    let (ok, out) = thermo(&[
        "schedule",
        "--config",
        ex,
        "--lanes",
        "4,16",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    // the replicated row is Schedule::replicated's, the RTL's row Schedule::new's
    let shipped = thermo_sim::Substrate::from_file(Path::new(ex)).unwrap();
    let rep = thermo_sim::schedule::Schedule::replicated(&shipped);
    assert!(
        out.contains(&format!("| 4 | replicated | {} |", rep.cycles_per_sweep)),
        "{out}"
    );
    // (on 4 lanes the bus sides run beside the lanes)
    let hw = thermo_sim::schedule::Schedule::new(&shipped);
    assert!(
        out.contains(&format!(
            "| 4 | banked, spec order, bus sides beside the lanes' first pass, port by reader (the RTL's) | {} |",
            hw.cycles_per_sweep
        )),
        "{out}"
    );
    // ... and on one lane the bus phase comes first
    let (ok, one) = thermo(&["schedule", "--config", ex, "--lanes", "1"]);
    let mut s1 = shipped.clone();
    s1.lanes = 1;
    let hw1 = thermo_sim::schedule::Schedule::new(&s1);
    assert!(
        ok && one.contains(&format!(
            "| 1 | banked, spec order, port by reader (the RTL's) | {} |",
            hw1.cycles_per_sweep
        )),
        "{one}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(&json).ok();
    assert_eq!(rows.len(), 2 * 9, "{out}");
    let cycles = |lanes: u64, state: &str| {
        rows.iter()
            .find(|r| r["lanes"] == lanes && r["state"] == state)
            .and_then(|r| r["cycles_per_sweep"].as_u64())
            .unwrap()
    };
    for p in [4, 16] {
        assert!(
            cycles(p, "banked, spec order, lanes sum the buses") < cycles(p, "replicated"),
            "{out}"
        );
    }
    // 2 RAMs per bank against (P + S) P replicas
    assert!(
        out.contains("| 16 | replicated") && out.contains("| 288 |"),
        "{out}"
    );
    assert!(
        out.contains("| 16 | banked, spec order |") && out.contains("| 32 |"),
        "{out}"
    );

    let (ok, out) = thermo(&["schedule", "--config", ex, "--lanes", "0"]);
    assert!(!ok && out.contains("--lanes 0: must be in 1..=64"), "{out}");
    let (ok, out) = thermo(&["schedule", "--config", ex, "--ports", "0"]);
    assert!(!ok && out.contains("--ports"), "{out}");
    let (ok, out) = thermo(&["schedule", "--config", "/nonexistent/x.toml"]);
    assert!(!ok && out.contains("/nonexistent/x.toml"), "{out}");
}
