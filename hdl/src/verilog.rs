//! Verilog generation (rust-hdl's checks first, failures as errors) and the Verilator build.

use crate::Error;
use rust_hdl::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run rust-hdl's checks (open signals, logic loops, writes to inputs) on `uut` and return its
/// Verilog (top module `top`). A failed check is an error naming the offending signals.
pub fn block_verilog<B: Block>(uut: &B) -> Result<String, Error> {
    check_all(uut).map_err(|e| Error::Check(format!("{e:?}")))?;
    Ok(generate_verilog_unchecked(uut))
}

fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Where Verilator builds go: `$THERMO_VERILATOR_CACHE`, else `<tmp>/thermo-verilator`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("THERMO_VERILATOR_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("thermo-verilator"))
}

/// Build `verilog` (top module `top`) with the C++ harness `cpp` into an executable with
/// Verilator (`--cc --exe --build`, optional `--trace` for VCD). Builds are cached by content
/// hash under [`cache_dir`], so identical designs are built once.
pub fn verilator_build(verilog: &str, cpp: &str, trace: bool) -> Result<PathBuf, Error> {
    let key = fnv(&[verilog, cpp, if trace { "trace" } else { "" }]);
    let dir = cache_dir().join(format!("{key:016x}"));
    let exe = dir.join("obj_dir").join("vsim");
    if exe.exists() {
        return Ok(exe);
    }
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e.to_string()))?;
    write(&dir.join("top.v"), verilog)?;
    write(&dir.join("harness.cpp"), cpp)?;
    let mut cmd = Command::new("verilator");
    cmd.current_dir(&dir).args([
        "--cc",
        "--exe",
        "--build",
        "-O2",
        "--x-assign",
        "0",
        "--x-initial",
        "0",
        "-Wno-fatal",
        "-Wno-lint",
        "-Wno-style",
        "--top-module",
        "top",
        "-o",
        "vsim",
        "-MAKEFLAGS",
        "-j2",
        "-CFLAGS",
        "-O1",
    ]);
    if trace {
        cmd.arg("--trace");
    }
    cmd.args(["top.v", "harness.cpp"]);
    let out = cmd
        .output()
        .map_err(|e| Error::Tool(format!("cannot run verilator: {e}")))?;
    if !out.status.success() || !exe.exists() {
        return Err(Error::Tool(format!(
            "verilator failed in {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(exe)
}

fn write(p: &Path, s: &str) -> Result<(), Error> {
    std::fs::write(p, s).map_err(|e| Error::Io(p.to_path_buf(), e.to_string()))
}

/// Run a built harness with `args` and stdin `input`; returns stdout.
pub fn run_harness(exe: &Path, args: &[String], input: &str) -> Result<String, Error> {
    use std::io::Write;
    let mut child = Command::new(exe)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| Error::Tool(format!("cannot run {}: {e}", exe.display())))?;
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_string();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child
        .wait_with_output()
        .map_err(|e| Error::Tool(e.to_string()))?;
    let _ = writer.join();
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "{} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
