//! Noise lane: the rust-hdl simulation and the Verilator build of the generated Verilog both
//! produce exactly `NoiseLane::next_fixed` (10^5 draws per lane in Verilator).

use thermo_hdl::noise::{rusthdl_noise_stream, verilator_noise_stream};
use thermo_sim::noise::NoiseLane;

fn engine(seed: u64, lane: u32, n: usize) -> Vec<i16> {
    let mut l = NoiseLane::new(seed, lane);
    (0..n).map(|_| l.next_fixed()).collect()
}

#[test]
fn hdl_noise_lane_rusthdl_equals_engine() {
    let mut total = 0;
    for (seed, lane, every) in [(1u64, 0u32, 1usize), (42, 5, 2), (u64::MAX, 63, 3)] {
        let n = 20_000;
        let hw = rusthdl_noise_stream(seed, lane, n, every);
        let e = engine(seed, lane, n);
        for k in 0..n {
            assert_eq!(hw[k], e[k], "rust-hdl: seed {seed} lane {lane} draw {k}");
        }
        total += n;
    }
    eprintln!("rust-hdl noise lane: {total} draws equal to the engine");
}

#[test]
fn hdl_noise_lane_verilator_equals_engine() {
    let mut total = 0;
    for (seed, lane, every) in [(1u64, 0u32, 1usize), (42, 5, 2), (u64::MAX, 63, 3)] {
        let n = 100_000;
        let hw = verilator_noise_stream(seed, lane, n, every).expect("verilator");
        assert_eq!(hw.len(), n);
        let e = engine(seed, lane, n);
        for k in 0..n {
            assert_eq!(hw[k], e[k], "verilator: seed {seed} lane {lane} draw {k}");
        }
        total += n;
    }
    eprintln!("verilator noise lane: {total} draws equal to the engine");
}
