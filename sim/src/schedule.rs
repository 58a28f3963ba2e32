//! The sweep schedule: which lane updates which unit on which cycle, and the exact cycle count of
//! a sweep. This is the contract the RTL's sweep controller meets (`docs/fixed-point.md` §4).
//!
//! * **Bus phase.** Each bus side has its own bus MAC. It reads its module's states once per rank,
//!   one MAC per cycle: `k * n_side` cycles, then [`BUS_GAIN_LATENCY`] cycles to finish the last
//!   MAC, round, apply the gain and latch the line. All bus sides run in parallel; the phase lasts as long as the
//!   slowest side (0 cycles without buses).
//! * **Unit phase.** Lane `l` updates units `l, l+P, l+2P, ...` in ascending order. A unit costs
//!   one issue cycle per MAC (`1` self term + its off-diagonal row + the ranks of every bus side it
//!   sits on) plus one finish cycle (the noise multiply; the bias add, noise add, rounding and
//!   write back follow in the pipeline, overlapping the next unit's issue). Lanes run
//!   independently and the phase ends when the busiest lane has issued its last unit, plus
//!   [`PIPELINE_DRAIN`] cycles for the datapath to drain.

pub mod banked;

use crate::model::Substrate;
use serde::Serialize;

/// Cycles from the last bus MAC issue to the latched line (operand read, activation,
/// multiply-accumulate, round, gain multiply, round and latch: one pipeline stage each after the
/// read).
pub const BUS_GAIN_LATENCY: u64 = 6;
/// Datapath latency drained at the end of the unit phase: from the last issue, operand read (2),
/// activation and multiply, accumulate and bias, noise, rounding, then the write in the sweep's
/// last cycle.
pub const PIPELINE_DRAIN: u64 = 7;

/// The static schedule of one sweep.
#[derive(Clone, Debug, Serialize)]
pub struct Schedule {
    /// Lanes P.
    pub lanes: usize,
    /// Issue cycles of each unit.
    pub unit_cycles: Vec<u32>,
    /// Issue cycles of each lane.
    pub lane_cycles: Vec<u64>,
    /// Cycles of the bus phase.
    pub bus_phase: u64,
    /// Cycles of one sweep.
    pub cycles_per_sweep: u64,
    /// MACs per sweep (units' and buses').
    pub macs_per_sweep: u64,
}

impl Schedule {
    /// The schedule of `s`.
    pub fn new(s: &Substrate) -> Self {
        let p = s.lanes as usize;
        let d = s.units();
        let mut bus_ranks = vec![0u32; s.modules.len()];
        let mut bus_phase = 0u64;
        let mut bus_macs = 0u64;
        for bus in &s.buses {
            let k = bus.rank() as u64;
            bus_ranks[bus.enc] += k as u32;
            bus_ranks[bus.dec] += k as u32;
            for m in [bus.enc, bus.dec] {
                let n = s.modules[m].size as u64;
                bus_phase = bus_phase.max(k * n + BUS_GAIN_LATENCY);
                bus_macs += k * n;
            }
        }
        let mut unit_cycles = vec![0u32; d];
        let mut unit_macs = 0u64;
        for (m, module) in s.modules.iter().enumerate() {
            for i in module.range() {
                let macs = 1 + (s.row_ptr[i + 1] - s.row_ptr[i]) as u32 + bus_ranks[m];
                unit_macs += macs as u64;
                unit_cycles[i] = macs + 1;
            }
        }
        let mut lane_cycles = vec![0u64; p];
        for (i, &c) in unit_cycles.iter().enumerate() {
            lane_cycles[i % p] += c as u64;
        }
        let busiest = lane_cycles.iter().copied().max().unwrap_or(0);
        Schedule {
            lanes: p,
            unit_cycles,
            lane_cycles,
            bus_phase,
            cycles_per_sweep: bus_phase + busiest + PIPELINE_DRAIN,
            macs_per_sweep: unit_macs + bus_macs,
        }
    }

    /// Sustained MACs per cycle over the lanes' multipliers (1.0 = every lane busy every cycle).
    pub fn mac_efficiency(&self) -> f64 {
        let lane_macs: u64 = self.lane_cycles.iter().sum::<u64>() - self.unit_cycles.len() as u64;
        lane_macs as f64 / (self.lanes as f64 * self.cycles_per_sweep as f64)
    }
}
