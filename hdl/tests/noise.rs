//! Noise pair: the rust-hdl simulation and the Verilator build of the generated Verilog both
//! produce exactly `NoiseLane::next_fixed` on both lanes of a pair (10^5 draws per lane in
//! Verilator), at several pop rates per lane.

use thermo_hdl::harness::noise::verilator_noise_streams;
use thermo_hdl::rtl::noise::rusthdl_noise_streams;
use thermo_sim::noise::NoiseLane;

fn engine(seed: u64, lane: u32, n: usize) -> Vec<i16> {
    let mut l = NoiseLane::new(seed, lane);
    (0..n).map(|_| l.next_fixed()).collect()
}

const CASES: [(u64, u32, usize, usize); 3] = [(1, 0, 1, 2), (42, 5, 2, 1), (u64::MAX, 62, 3, 5)];

fn check(what: &str, seed: u64, lane: u32, n: usize, a: &[i16], b: &[i16]) {
    for (l, hw) in [(lane, a), (lane + 1, b)] {
        assert_eq!(hw.len(), n);
        let e = engine(seed, l, n);
        for k in 0..n {
            assert_eq!(hw[k], e[k], "{what}: seed {seed} lane {l} draw {k}");
        }
    }
}

#[test]
fn hdl_noise_lane_rusthdl_equals_engine() {
    let mut total = 0;
    for (seed, lane, ea, eb) in CASES {
        let n = 20_000;
        let (a, b) = rusthdl_noise_streams(seed, lane, n, ea, eb);
        check("rust-hdl", seed, lane, n, &a, &b);
        total += 2 * n;
    }
    eprintln!("rust-hdl noise pair: {total} draws equal to the engine");
}

#[test]
fn hdl_noise_lane_verilator_equals_engine() {
    let mut total = 0;
    for (seed, lane, ea, eb) in CASES {
        let n = 100_000;
        let (a, b) = verilator_noise_streams(seed, lane, n, ea, eb).expect("verilator");
        check("verilator", seed, lane, n, &a, &b);
        total += 2 * n;
    }
    eprintln!("verilator noise pair: {total} draws equal to the engine");
}
