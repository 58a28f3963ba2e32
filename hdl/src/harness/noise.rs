//! The Verilator stream test of the noise pair: a build of [`noise_pair_verilog`] driven by
//! `noise.cpp` (seeds, load, pops at a given rate per lane).

use crate::rtl::noise::noise_pair_verilog;
use thermo_sim::noise::Taus88;

/// C++ harness of the noise pair (`noise.cpp`): arguments the six seed words, the number of
/// draws and each lane's pop period; prints `a z` / `b z` per draw.
const NOISE_HARNESS: &str = include_str!("noise.cpp");

/// `n` samples of each lane of a Verilator build of a noise pair: lane a is lane `lane` of seed
/// `seed`, lane b lane `lane + 1`; lane a pops every `every_a` cycles (when valid), b every
/// `every_b`.
pub fn verilator_noise_streams(
    seed: u64,
    lane: u32,
    n: usize,
    every_a: usize,
    every_b: usize,
) -> Result<(Vec<i16>, Vec<i16>), crate::Error> {
    let exe = crate::harness::verilog::verilator_build(
        &noise_pair_verilog()?,
        NOISE_HARNESS,
        false,
        false,
    )?;
    let (ga, gb) = (
        Taus88::for_lane(seed, lane),
        Taus88::for_lane(seed, lane + 1),
    );
    let mut args: Vec<String> =
        ga.s.iter()
            .chain(gb.s.iter())
            .map(|w| w.to_string())
            .collect();
    args.extend([n, every_a.max(1), every_b.max(1)].map(|v| v.to_string()));
    let out = crate::harness::verilog::run_harness(&exe, &args, "")?;
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for l in out.lines() {
        let bad = |e: String| crate::Error::Tool(format!("bad harness output {l:?}: {e}"));
        let (lane, v) = l
            .trim()
            .split_once(' ')
            .ok_or_else(|| bad("no lane".into()))?;
        let v = v.parse::<i16>().map_err(|e| bad(e.to_string()))?;
        match lane {
            "a" => a.push(v),
            "b" => b.push(v),
            _ => return Err(bad("unknown lane".into())),
        }
    }
    Ok((a, b))
}
