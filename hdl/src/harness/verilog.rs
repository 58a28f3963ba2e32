//! The substrate's Verilog ([`generate`]) and the cached Verilator build of a design with its
//! C++ harness.

use crate::Error;
use std::path::{Path, PathBuf};
use std::process::Command;

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
/// Verilator (`--cc --exe`, then its makefile; optional `--trace` for VCD; `fast` = `-O2` C++,
/// otherwise `-O0` for a quick build). Builds are cached by content hash under [`cache_dir`],
/// and the Verilator runtime objects are compiled once and reused.
pub fn verilator_build(
    verilog: &str,
    cpp: &str,
    trace: bool,
    fast: bool,
) -> Result<PathBuf, Error> {
    let flags = format!(
        "{}{}",
        if trace { "trace" } else { "" },
        if fast { "fast" } else { "" }
    );
    let key = fnv(&[verilog, cpp, &flags, "rw-poison"]);
    let final_dir = cache_dir().join(format!("{key:016x}"));
    let final_exe = final_dir.join("obj_dir").join("vsim");
    if final_exe.exists() {
        return Ok(final_exe);
    }
    // build in a private directory, then move it into place (concurrent builds of the same
    // design, e.g. parallel tests, must not trample each other)
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = cache_dir().join(format!("{key:016x}.tmp{}.{n}", std::process::id()));
    let exe = dir.join("obj_dir").join("vsim");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| Error::Io(dir.clone(), e.to_string()))?;
    write(&dir.join("top.v"), verilog)?;
    write(&dir.join("harness.cpp"), cpp)?;
    let mut cmd = Command::new("verilator");
    cmd.current_dir(&dir).args([
        "--cc",
        "--exe",
        "-O2",
        "--x-assign",
        "0",
        "--x-initial",
        "0",
        "-DTHERMO_RW_POISON",
        "-Wno-fatal",
        "-Wno-lint",
        "-Wno-style",
        "--top-module",
        "top",
        "-o",
        "vsim",
    ]);
    if trace {
        cmd.arg("--trace");
    }
    cmd.args(["top.v", "harness.cpp"]);
    let out = cmd
        .output()
        .map_err(|e| Error::Tool(format!("cannot run verilator: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "verilator failed in {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    // reuse the runtime objects of an earlier build with the same flags
    let obj = dir.join("obj_dir");
    let rt = cache_dir().join(format!("runtime-{flags}"));
    let runtime = ["verilated.o", "verilated_threads.o", "verilated_vcd_c.o"];
    if rt.is_dir() {
        for f in runtime {
            let src = rt.join(f);
            if src.exists() {
                let _ = std::fs::copy(&src, obj.join(f));
            }
        }
    }
    let opt = if fast { "-O2" } else { "-O0" };
    let out = Command::new("make")
        .current_dir(&obj)
        .args([
            "-s",
            "-f",
            "Vtop.mk",
            "-j2",
            "vsim",
            &format!("OPT_FAST={opt}"),
            &format!("OPT_SLOW={opt}"),
            &format!("OPT_GLOBAL={opt}"),
        ])
        .output()
        .map_err(|e| Error::Tool(format!("cannot run make: {e}")))?;
    if !out.status.success() || !exe.exists() {
        return Err(Error::Tool(format!(
            "building the Verilator model failed in {}:\n{}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    if !rt.is_dir() {
        let tmp = cache_dir().join(format!("runtime-{flags}.{}.{n}", std::process::id()));
        let _ = std::fs::create_dir_all(&tmp);
        for f in runtime {
            let _ = std::fs::copy(obj.join(f), tmp.join(f));
        }
        let _ = std::fs::rename(&tmp, &rt);
        let _ = std::fs::remove_dir_all(&tmp);
    }
    if std::fs::rename(&dir, &final_dir).is_ok() {
        Ok(final_exe)
    } else if final_exe.exists() {
        // another build of the same design won the race
        let _ = std::fs::remove_dir_all(&dir);
        Ok(final_exe)
    } else {
        Ok(exe)
    }
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

/// The Verilog of the substrate top for `s` (top module `top`, memory contents inline):
/// rust-hdl's checks first, their failures as errors naming the signals.
pub fn generate(s: &thermo_sim::Substrate) -> Result<String, Error> {
    crate::rtl::top::substrate_verilog(s)
}
