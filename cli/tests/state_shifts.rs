//! `thermo compile --state-shifts` on the committed U-Net: the engine description carries a
//! state shift per module, the fixed engine evaluates it within 2% of the exact fixed point's
//! MSE (without shifts 1.05x / 1.04x at sigma 0.5 / 1 on 64 images:
//! `docs/results/quantize-clamped-8.md`), and `thermo verilog` writes its RTL (the lanes'
//! module classes; three-way equivalence on shifted configurations: `hdl/tests/equivalence.rs`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn thermo(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_thermo"))
        .current_dir(root())
        .args(args)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    (o.status.success(), text)
}

/// The MSE column of the `sigma` row of `thermo eval`'s table.
fn mse(table: &str, sigma: &str) -> f64 {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {sigma} |")))
        .unwrap_or_else(|| panic!("no sigma {sigma} row in:\n{table}"));
    row.split('|').nth(2).unwrap().trim().parse().unwrap()
}

#[test]
fn compile_with_state_shifts_evaluates_and_builds_rtl() {
    let dir = std::env::temp_dir().join(format!("thermo-cli-shifts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("s.json");
    let out_s = out.to_str().unwrap();
    let (ok, text) = thermo(&[
        "compile",
        "--unet",
        "models/digits-unet.safetensors",
        "--rank",
        "8",
        "--state-shifts",
        "--out",
        out_s,
    ]);
    assert!(ok, "{text}");
    assert!(
        text.contains("state shifts") && text.contains("dec0"),
        "{text}"
    );
    let sim = format!("{out_s}.sim.json");
    let cfg = thermo_sim::SubstrateConfig::load(Path::new(&sim)).unwrap();
    let shifts: Vec<u32> = cfg.modules.iter().map(|m| m.shift).collect();
    // dec0 holds the U-Net's activation at g^4 of enc0's scale: several bits more
    assert!(
        shifts.last().unwrap() >= &(shifts[0] + 6),
        "shifts {shifts:?}"
    );
    let eval = |engine: &str| {
        let (ok, t) = thermo(&[
            "eval",
            "--substrate",
            out_s,
            "--engine",
            engine,
            "--sigmas",
            "1",
            "--inputs",
            "16",
        ]);
        assert!(ok, "{t}");
        t
    };
    let (exact, fixed) = (mse(&eval("exact"), "1"), mse(&eval("fixed"), "1"));
    assert!(
        fixed < 1.02 * exact,
        "fixed engine with shifts: MSE {fixed} against exact {exact}"
    );
    let v = dir.join("s.v");
    let (ok, text) = thermo(&["verilog", "--config", &sim, "--output", v.to_str().unwrap()]);
    assert!(ok, "{text}");
    let verilog = std::fs::read_to_string(&v).unwrap();
    assert!(
        verilog.contains("module top"),
        "no top module in {}",
        v.display()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
