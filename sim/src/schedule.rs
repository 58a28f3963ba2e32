//! The sweep schedule: which lane updates which unit on which cycle, and the exact cycle count of
//! a sweep. This is the contract the RTL's sweep controller meets (`docs/fixed-point.md` §4).
//!
//! The state is kept once, in one bank per lane, read through a crossbar on the static schedule
//! of [`banked`] with the hardware's [`banked::Options::hardware`] (two read ports per bank, a
//! fixed port per reader, the specification's MAC order, bus sides with their own MACs):
//!
//! * **Bus sides.** Each bus side has its own bus MAC. It reads its module's states once per
//!   rank, one MAC per cycle (`k * n_side` reads), waiting a cycle where its bank port is taken,
//!   then [`BUS_GAIN_LATENCY`] cycles to finish the last MAC, round, apply the gain and latch the
//!   line. All bus sides run in parallel.
//! * **Lanes.** Lane `l` updates units `l, l+P, l+2P, ...` in ascending order. A unit costs
//!   one issue cycle per MAC (`1` self term + its off-diagonal row + the ranks of every bus side it
//!   sits on) plus one finish cycle (the noise multiply; the bias add, noise add, rounding and
//!   write back follow in the pipeline, overlapping the next unit's issue), plus the cycles it
//!   waits for a bank port. The sweep ends when the busiest lane has issued its last unit, plus
//!   [`PIPELINE_DRAIN`] cycles for the datapath to drain.
//! * **On more than one lane, with buses,** the bus sides run beside the lanes from the sweep's first cycle
//!   ([`banked::BusMode::Beside`]): each lane first issues every unit's self term and row and
//!   parks its accumulator, then resumes each unit for its line MACs (once the lines are
//!   latched) and its finish. **On one lane** (the iCE40 build) the bus sides run first, in a
//!   bus phase that lasts as long as the slowest side (0 cycles without buses), and the lane
//!   issues each unit's MACs and finish in one go ([`banked::BusMode::Sides`]). Either way each
//!   unit's additions are those of `docs/fixed-point.md` §3, in its order.
//!
//! [`Schedule::replicated`] is the schedule of per-reader state replicas (no waits), for
//! comparison.

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
    /// Issue cycles of each unit, without waits (its MACs and the finish).
    pub unit_cycles: Vec<u32>,
    /// Issue cycles of each lane, waits included.
    pub lane_cycles: Vec<u64>,
    /// Cycles of the bus phase.
    pub bus_phase: u64,
    /// Cycles of one sweep.
    pub cycles_per_sweep: u64,
    /// MACs per sweep (units' and buses').
    pub macs_per_sweep: u64,
    /// The lanes' MACs per sweep.
    pub lane_macs: u64,
}

impl Schedule {
    /// The hardware's schedule of `s`: banked state, [`banked::Options::hardware`] of its
    /// lanes.
    pub fn new(s: &Substrate) -> Self {
        let o = banked::Options::hardware(s);
        Schedule::of_banked(s, &banked::Banked::new(s, &o))
    }

    /// The schedule that a banked schedule `b` of `s` gives.
    pub fn of_banked(s: &Substrate, b: &banked::Banked) -> Self {
        let r = Schedule::replicated(s);
        Schedule {
            lane_cycles: b.lane_issues.iter().map(|v| v.len() as u64).collect(),
            bus_phase: b.bus_phase,
            cycles_per_sweep: b.cycles_per_sweep,
            lane_macs: b.lane_macs,
            ..r
        }
    }

    /// The schedule with a state replica per reader (every read served at once, no waits).
    pub fn replicated(s: &Substrate) -> Self {
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
            lane_macs: unit_macs,
        }
    }

    /// Sustained MACs per cycle over the lanes' multipliers (1.0 = every lane busy every cycle).
    pub fn mac_efficiency(&self) -> f64 {
        self.lane_macs as f64 / (self.lanes as f64 * self.cycles_per_sweep as f64)
    }
}
