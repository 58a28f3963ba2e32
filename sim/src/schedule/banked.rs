//! The banked-state schedule: the state kept once, in one bank per lane, read through a crossbar
//! on a static, conflict-free schedule computed here from the fixed sparsity.
//!
//! The per-reader replicas of the present RTL ([`super::Schedule`]) cost `(P + S) P` block RAMs
//! for `P` lanes and `S` bus sides; this layout costs `2 P`:
//!
//! * **Banks.** Unit `i` lives in bank `i mod P` at word `i / P` (the lane that updates it owns
//!   the bank and is its only writer). A bank is a pair of block RAMs written together by its
//!   lane (the new buffer) and read independently, so it serves [`BANK_READ_PORTS`] reads of the
//!   old buffer per cycle; readers of the *same* word in the same cycle share one port (the
//!   port's address is the OR of the addresses its readers present, so equal addresses
//!   broadcast).
//! * **Bus phase.** Each bus side reads its module's states `k` times in the order of the
//!   specification (rank, then ascending unit), one read a cycle when its bank's port allows,
//!   then [`super::BUS_GAIN_LATENCY`] cycles.
//! * **Unit phase.** Lane `l` updates units `l, l + P, ...` in ascending order, as in the
//!   replicated design. A unit issues its MACs (self term, row, bus lines), one a cycle, then
//!   one finish cycle; a MAC whose bank has no port free waits ([`Issue::Wait`]).
//!   * [`Order::Ascending`] issues them in the specification's order (self, row ascending, lines):
//!     the fixed engine's arithmetic is unchanged and only the cycle count depends on the banks.
//!   * [`Order::Free`] lets a lane issue, among its current unit's row entries and lines, any one
//!     whose port is free (self term first, finish last). The accumulation order becomes the
//!     program order [`Banked::row_order`], which the engines would have to follow.
//!
//! Arbitration is computed here, not in hardware: every cycle's issue of every reader is part of
//! the schedule, and [`verify`] checks a schedule against the substrate without using the
//! generator (every unit's MACs issued exactly once, in the order the schedule claims, at most
//! one address per bank port per cycle).

use crate::model::Substrate;
use serde::Serialize;
use std::collections::HashMap;

/// Reads of the old state buffer a bank serves per cycle (two block RAMs per bank, one read port
/// each; a third reader of another word waits).
pub const BANK_READ_PORTS: usize = 2;

/// Cycles a crossbar read adds to the datapath of `p` lanes, drained at the end of each phase:
/// one with several lanes (a lane's instruction word and a bus side's MAC word are registered
/// after their block RAM, so the crossbar's port address starts from a register, not from a
/// cascade of block RAMs: the 50 MHz of a model whose instruction memories take 12 DP16KD
/// each), none with one lane (its one bank needs no crossbar; the iCE40 build keeps its
/// logic cells).
pub fn crossbar_latency(p: usize) -> u64 {
    u64::from(p > 1)
}

/// What a reader issues in one cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Issue {
    /// A MAC reading the old state of `unit` through `port` of bank `unit mod P`.
    State {
        /// Global unit index.
        unit: u32,
        /// Read port of the bank.
        port: u8,
    },
    /// A lane's MAC of a bus sum's partial: the old state of `unit`, one of the lane's own
    /// units, times a bus factor ([`BusMode::Lanes`]).
    BusPartial {
        /// Global unit index.
        unit: u32,
        /// Read port of the bank.
        port: u8,
    },
    /// A lane's MAC with a bus line register (no bank read).
    Line,
    /// A lane's finish step of its current unit (bias, noise, round, write to the new buffer).
    Finish,
    /// Nothing: the reader waits for a port.
    Wait,
}

/// How a lane may order its unit's MACs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Order {
    /// The specification's order (self term, row ascending, bus lines): only waits are added.
    Ascending,
    /// Self term first, then the row entries and lines in any order the ports allow.
    Free,
}

/// Who computes the bus lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum BusMode {
    /// Each bus side's own MAC reads its module `k` times before the unit phase (the present
    /// RTL's bus phase).
    Sides,
    /// Each lane first computes, for every bus side and rank, the partial sum over its own units
    /// of the side's module (reads of its own bank), an adder tree of depth `ceil(log2 P)` sums
    /// the lanes' partials, then the gain; a lane's line MACs wait until the lines are latched
    /// ([`BusMode::line_latency`] cycles after the last partial MAC). There is no separate bus
    /// phase: lanes begin their units as soon as their partials are issued.
    Lanes,
    /// Each bus side's own MAC reads its module `k` times as in [`BusMode::Sides`], but from the
    /// sweep's first cycle, beside the lanes, which make two passes over their units. The first
    /// pass issues every unit's self term and row (the specification's order) and parks the
    /// unit's accumulator (and its gate) in a per-lane memory; the second pass resumes each
    /// parked accumulator, issues the unit's line MACs (not before the lines are latched) and its
    /// finish. A unit's additions keep the order of `docs/fixed-point.md` §3, so the engines'
    /// arithmetic is unchanged; the bus phase hides behind the first pass. A unit's first
    /// second-pass issue comes at least [`PARK_LATENCY`] cycles after its last first-pass issue,
    /// and a finish never in the cycle after another (a unit without lines waits a cycle before
    /// its finish, so a unit costs at least two cycles in each pass, as in the first: the lane's
    /// bias read and noise sample keep their pace).
    Beside,
}

/// [`BusMode::Beside`]: cycles from a unit's last first-pass issue to its first second-pass
/// issue (the parked accumulator is written at the last MAC's accumulate stage and read back in
/// the second pass's operand stage).
pub const PARK_LATENCY: u64 = 5;

impl BusMode {
    /// Cycles from the last partial MAC issue to latched lines in [`BusMode::Lanes`]: the
    /// crossbar read, the adder tree over `p` lanes, then the gain's rounding and multiply.
    pub fn line_latency(p: usize) -> u64 {
        crossbar_latency(p)
            + (p.next_power_of_two().trailing_zeros() as u64)
            + super::BUS_GAIN_LATENCY
    }
}

/// Which port of a bank a reader may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PortRule {
    /// Any free port (the schedule's port index goes into the instruction).
    Any,
    /// Reader `r` (lane `l`, or bus side `q`) always uses port `r mod ports`: no port bit in
    /// the instruction, and each port's address is the OR over half the readers.
    ByReader,
}

/// The choices of a banked schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Options {
    /// Read ports per bank (at least 1).
    pub ports: usize,
    /// The MAC order rule.
    pub order: Order,
    /// Who computes the bus lines.
    pub bus: BusMode,
    /// Which port a reader may use.
    pub port_rule: PortRule,
}

impl Options {
    /// The bus phase the RTL builds before the lanes (one lane: the iCE40 build, whose block RAM
    /// and logic cells have no room for the park memory), with two read ports per bank, the port
    /// fixed per reader (even readers port 0, odd readers port 1), the specification's MAC
    /// order and bus sides with their own MACs.
    pub const HARDWARE: Options = Options {
        ports: BANK_READ_PORTS,
        order: Order::Ascending,
        bus: BusMode::Sides,
        port_rule: PortRule::ByReader,
    };

    /// What the RTL builds for `s` on its lanes: [`Options::HARDWARE`] with the bus sides beside
    /// the lanes ([`BusMode::Beside`]) on more than one lane; their bus phase first on one lane
    /// or without buses (where the second pass would only cost a cycle a unit).
    pub fn hardware(s: &Substrate) -> Options {
        Options {
            bus: if s.lanes > 1 && !s.buses.is_empty() {
                BusMode::Beside
            } else {
                BusMode::Sides
            },
            ..Options::HARDWARE
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            ports: BANK_READ_PORTS,
            order: Order::Ascending,
            bus: BusMode::Lanes,
            port_rule: PortRule::Any,
        }
    }
}

/// A static schedule of one sweep on banked state.
#[derive(Clone, Debug, Serialize)]
pub struct Banked {
    /// Lanes (= banks) P.
    pub lanes: usize,
    /// Read ports per bank.
    pub ports: usize,
    /// The MAC order rule.
    pub order: Order,
    /// Who computes the bus lines.
    pub bus: BusMode,
    /// Which port a reader may use.
    pub port_rule: PortRule,
    /// [`BusMode::Lanes`]: the unit-phase cycle from which line MACs may issue (0 otherwise).
    pub lines_ready: u64,
    /// Bus phase: per bus side (bus order, encoder side then decoder side), one issue per cycle.
    pub bus_issues: Vec<Vec<Issue>>,
    /// Unit phase: per lane, one issue per cycle.
    pub lane_issues: Vec<Vec<Issue>>,
    /// Per unit, the columns of its row in the order the lane issues them.
    pub row_order: Vec<Vec<u32>>,
    /// Cycles of the bus phase (0 without buses).
    pub bus_phase: u64,
    /// Cycles of the unit phase.
    pub unit_phase: u64,
    /// Cycles of one sweep.
    pub cycles_per_sweep: u64,
    /// MACs per sweep (units' and buses').
    pub macs_per_sweep: u64,
    /// Lane MACs per sweep (self terms, couplings and lines).
    pub lane_macs: u64,
    /// Cycles in which a lane waited.
    pub lane_waits: u64,
    /// Cycles in which a bus side waited.
    pub bus_waits: u64,
}

/// The bank and word of unit `j` on `p` lanes.
pub fn bank_of(j: usize, p: usize) -> (usize, usize) {
    (j % p, j / p)
}

/// The bus sides of `s` in schedule order: (module, rank) for every bus, encoder then decoder.
fn sides(s: &Substrate) -> Vec<(usize, usize)> {
    s.buses
        .iter()
        .flat_map(|b| [(b.enc, b.rank()), (b.dec, b.rank())])
        .collect()
}

/// The module of unit `i` (for the generators; [`verify`] finds it by itself).
fn module_of(s: &Substrate, i: usize) -> usize {
    s.modules
        .iter()
        .position(|m| m.range().contains(&i))
        .expect("unit of the substrate")
}

/// Bus line MACs of a unit of each module (the ranks of every bus side it sits on).
fn line_macs(s: &Substrate) -> Vec<usize> {
    let mut r = vec![0; s.modules.len()];
    for (m, k) in sides(s) {
        r[m] += k;
    }
    r
}

/// The ports of every bank in one cycle: the word each port reads, if any.
struct Ports {
    word: Vec<Option<usize>>,
    ports: usize,
    rule: PortRule,
}

impl Ports {
    fn new(p: usize, ports: usize, rule: PortRule) -> Self {
        Ports {
            word: vec![None; p * ports],
            ports,
            rule,
        }
    }
    fn clear(&mut self) {
        self.word.iter_mut().for_each(|w| *w = None);
    }
    /// The port that serves reader `r`'s read of word `w` of bank `b` this cycle: one already
    /// reading it, else a free one (not yet claimed); under [`PortRule::ByReader`] only port
    /// `r mod ports`.
    fn find(&self, r: usize, b: usize, w: usize) -> Option<usize> {
        let ps = &self.word[b * self.ports..(b + 1) * self.ports];
        if self.rule == PortRule::ByReader {
            let x = r % self.ports;
            return (ps[x].is_none() || ps[x] == Some(w)).then_some(x);
        }
        ps.iter()
            .position(|&x| x == Some(w))
            .or_else(|| ps.iter().position(|x| x.is_none()))
    }
    fn claim(&mut self, b: usize, w: usize, port: usize) {
        self.word[b * self.ports + port] = Some(w);
    }
    /// Reader `r`'s read of unit `j` on `p` lanes this cycle: the port it gets (claimed), if any.
    fn read(&mut self, r: usize, j: usize, p: usize) -> Option<u8> {
        let (b, w) = bank_of(j, p);
        self.find(r, b, w).map(|port| {
            self.claim(b, w, port);
            port as u8
        })
    }
    /// Bus side `q`'s next read (its module `m`'s units, ascending, `k` times over; `pos` reads
    /// done): the issue this cycle, `pos` advanced when it reads.
    fn side_read(&mut self, s: &Substrate, q: usize, m: usize, pos: &mut usize) -> Issue {
        let m = &s.modules[m];
        let j = m.offset + *pos % m.size;
        match self.read(q, j, s.lanes as usize) {
            Some(port) => {
                *pos += 1;
                Issue::State {
                    unit: j as u32,
                    port,
                }
            }
            None => Issue::Wait,
        }
    }
}

/// One lane's work: its bus partials, then its units, each with its row (columns, ascending)
/// and its line MACs.
struct LaneWork {
    /// Bus partial reads not yet issued ([`BusMode::Lanes`]), in order.
    partials: std::collections::VecDeque<usize>,
    units: Vec<usize>,
    /// Index of the current unit in `units`.
    cur: usize,
    /// Self term issued for the current unit.
    self_done: bool,
    /// Row columns not yet issued (ascending).
    row_left: Vec<usize>,
    /// Line MACs not yet issued.
    lines_left: usize,
    /// Columns issued, in order.
    issued: Vec<u32>,
}

/// The partial-sum reads of lane `l` in [`BusMode::Lanes`]: for every bus side and rank, the
/// lane's own units of the side's module, ascending.
fn lane_partials(s: &Substrate, l: usize) -> Vec<usize> {
    let p = s.lanes as usize;
    sides(s)
        .into_iter()
        .flat_map(|(m, k)| {
            let r = s.modules[m].range();
            (0..k).flat_map(move |_| r.clone().filter(move |j| j % p == l))
        })
        .collect()
}

impl Banked {
    /// The schedule of `s` on its `s.lanes` lanes.
    pub fn new(s: &Substrate, o: &Options) -> Self {
        if o.bus == BusMode::Beside {
            return Banked::beside(s, o);
        }
        let (order, bus) = (o.order, o.bus);
        let p = s.lanes as usize;
        let ports = o.ports.max(1);
        let d = s.units();
        let mut bank = Ports::new(p, ports, o.port_rule);
        let sides = sides(s);
        let side_len: Vec<usize> = sides.iter().map(|&(m, k)| k * s.modules[m].size).collect();

        // bus phase (BusMode::Sides): side q reads its module's units k times, ascending
        let mut bus_issues: Vec<Vec<Issue>> = vec![Vec::new(); sides.len()];
        let mut t = 0usize;
        if bus == BusMode::Sides {
            let mut pos = vec![0usize; sides.len()];
            while (0..sides.len()).any(|q| pos[q] < side_len[q]) {
                bank.clear();
                for r in 0..sides.len() {
                    let q = (r + t) % sides.len();
                    if pos[q] >= side_len[q] {
                        continue;
                    }
                    let issue = bank.side_read(s, q, sides[q].0, &mut pos[q]);
                    bus_issues[q].push(issue);
                }
                t += 1;
            }
        }
        let bus_waits = bus_issues
            .iter()
            .flatten()
            .filter(|&&i| i == Issue::Wait)
            .count() as u64;
        let bus_phase = if sides.is_empty() || bus == BusMode::Lanes {
            0
        } else {
            t as u64 + super::BUS_GAIN_LATENCY + crossbar_latency(p)
        };

        // unit phase
        let lines = line_macs(s);
        let module_of = |i: usize| module_of(s, i);
        let mut work: Vec<LaneWork> = (0..p)
            .map(|l| LaneWork {
                partials: match bus {
                    BusMode::Lanes => lane_partials(s, l).into(),
                    BusMode::Sides | BusMode::Beside => Default::default(),
                },
                units: (l..d).step_by(p).collect(),
                cur: 0,
                self_done: false,
                row_left: Vec::new(),
                lines_left: 0,
                issued: Vec::new(),
            })
            .collect();
        let start = |w: &mut LaneWork| {
            if let Some(&i) = w.units.get(w.cur) {
                w.self_done = false;
                w.row_left = s.col[s.row_ptr[i]..s.row_ptr[i + 1]].to_vec();
                w.lines_left = lines[module_of(i)];
                w.issued.clear();
            }
        };
        work.iter_mut().for_each(start);
        // lines latched from this cycle on (BusMode::Lanes: known once every partial is issued)
        let mut lines_ready: Option<u64> = match bus {
            BusMode::Sides | BusMode::Beside => Some(0),
            BusMode::Lanes if work.iter().all(|w| w.partials.is_empty()) => Some(0),
            BusMode::Lanes => None,
        };
        let mut row_order = vec![Vec::new(); d];
        let mut lane_issues: Vec<Vec<Issue>> = vec![Vec::new(); p];
        let mut t = 0usize;
        while work.iter().any(|w| w.cur < w.units.len()) {
            bank.clear();
            let lines_now = lines_ready.is_some_and(|r| t as u64 >= r);
            for r in 0..p {
                let l = (r + t) % p;
                let w = &mut work[l];
                if w.cur >= w.units.len() {
                    continue;
                }
                let i = w.units[w.cur];
                let issue = if let Some(&j) = w.partials.front() {
                    match bank.read(l, j, p) {
                        Some(port) => {
                            w.partials.pop_front();
                            Issue::BusPartial {
                                unit: j as u32,
                                port,
                            }
                        }
                        None => Issue::Wait,
                    }
                } else if !w.self_done {
                    match bank.read(l, i, p) {
                        Some(port) => {
                            w.self_done = true;
                            Issue::State {
                                unit: i as u32,
                                port,
                            }
                        }
                        None => Issue::Wait,
                    }
                } else if !w.row_left.is_empty() || w.lines_left > 0 {
                    let cand: &[usize] = match order {
                        Order::Ascending => &w.row_left[..w.row_left.len().min(1)],
                        Order::Free => &w.row_left,
                    };
                    let mut got = None;
                    for (k, &j) in cand.iter().enumerate() {
                        if let Some(port) = bank.read(l, j, p) {
                            w.row_left.remove(k);
                            w.issued.push(j as u32);
                            got = Some(Issue::State {
                                unit: j as u32,
                                port,
                            });
                            break;
                        }
                    }
                    match got {
                        Some(is) => is,
                        None if lines_now
                            && w.lines_left > 0
                            && (w.row_left.is_empty() || order == Order::Free) =>
                        {
                            w.lines_left -= 1;
                            Issue::Line
                        }
                        None => Issue::Wait,
                    }
                } else {
                    row_order[i] = std::mem::take(&mut w.issued);
                    w.cur += 1;
                    start(w);
                    Issue::Finish
                };
                lane_issues[l].push(issue);
            }
            if lines_ready.is_none() && work.iter().all(|w| w.partials.is_empty()) {
                lines_ready = Some(t as u64 + 1 + BusMode::line_latency(p));
            }
            t += 1;
        }
        let unit_phase = t as u64 + super::PIPELINE_DRAIN + crossbar_latency(p);
        let lane_waits = lane_issues
            .iter()
            .flatten()
            .filter(|&&i| i == Issue::Wait)
            .count() as u64;
        let lane_macs = lane_issues
            .iter()
            .flatten()
            .filter(|i| {
                matches!(
                    i,
                    Issue::State { .. } | Issue::Line | Issue::BusPartial { .. }
                )
            })
            .count() as u64;
        let bus_macs: u64 = side_len.iter().map(|&n| n as u64).sum();
        Banked {
            lanes: p,
            ports,
            order,
            bus,
            port_rule: o.port_rule,
            lines_ready: lines_ready.unwrap_or(0),
            bus_issues,
            lane_issues,
            row_order,
            bus_phase,
            unit_phase,
            cycles_per_sweep: bus_phase + unit_phase,
            macs_per_sweep: lane_macs + bus_macs,
            lane_macs,
            lane_waits,
            bus_waits,
        }
    }

    /// [`BusMode::Beside`]: the bus sides and the lanes' two passes, from the sweep's first cycle
    /// (bus side `q` is reader `q` for the port rule, as in the bus phase of [`BusMode::Sides`];
    /// lane `l` reader `l`). Each cycle the urgent sides go first (those whose reads left reach
    /// the first-pass reads left of the lane nearest the end of its first pass), then the lanes,
    /// then the other sides, each group in rotating order.
    fn beside(s: &Substrate, o: &Options) -> Self {
        let p = s.lanes as usize;
        let ports = o.ports.max(1);
        let d = s.units();
        let mut bank = Ports::new(p, ports, o.port_rule);
        let sides = sides(s);
        let side_len: Vec<usize> = sides.iter().map(|&(m, k)| k * s.modules[m].size).collect();
        let lines = line_macs(s);
        let module_of = |i: usize| module_of(s, i);
        struct Lane {
            units: Vec<usize>,
            /// First pass: the current unit, its self term issued, its row columns left.
            cur: usize,
            self_done: bool,
            row_left: Vec<usize>,
            issued: Vec<u32>,
            /// Cycle of each unit's last first-pass issue.
            parked_at: Vec<u64>,
            /// Second pass: the current unit and its line MACs left (None: not begun).
            cur2: usize,
            lines_left: Option<usize>,
            /// First-pass reads left.
            left: usize,
        }
        let mut lanes: Vec<Lane> = (0..p)
            .map(|l| {
                let units: Vec<usize> = (l..d).step_by(p).collect();
                let row_left = units
                    .first()
                    .map(|&i| s.col[s.row_ptr[i]..s.row_ptr[i + 1]].to_vec())
                    .unwrap_or_default();
                Lane {
                    left: units
                        .iter()
                        .map(|&i| 1 + s.row_ptr[i + 1] - s.row_ptr[i])
                        .sum(),
                    parked_at: vec![0; units.len()],
                    units,
                    cur: 0,
                    self_done: false,
                    row_left,
                    issued: Vec::new(),
                    cur2: 0,
                    lines_left: None,
                }
            })
            .collect();
        let mut row_order = vec![Vec::new(); d];
        let mut bus_issues: Vec<Vec<Issue>> = vec![Vec::new(); sides.len()];
        let mut lane_issues: Vec<Vec<Issue>> = vec![Vec::new(); p];
        let mut pos = vec![0usize; sides.len()];
        let mut lines_ready: Option<u64> = sides.is_empty().then_some(0);
        let readers = sides.len() + p;
        let mut t = 0usize;
        while lanes.iter().any(|w| w.cur2 < w.units.len())
            || (0..sides.len()).any(|q| pos[q] < side_len[q])
        {
            bank.clear();
            let lines_now = lines_ready.is_some_and(|r| t as u64 >= r);
            // A side whose reads left reach the first pass left of the lane nearest its end is
            // urgent and goes first; then the lanes (rotating); then the other sides.
            let lane_left = lanes
                .iter()
                .filter(|w| w.cur < w.units.len())
                .map(|w| w.left)
                .min()
                .unwrap_or(0);
            let urgent = |q: usize| side_len[q] - pos[q] >= lane_left;
            let mut order: Vec<usize> = Vec::with_capacity(readers);
            order.extend(
                (0..sides.len())
                    .map(|k| (k + t) % sides.len())
                    .filter(|&q| urgent(q)),
            );
            order.extend((0..p).map(|k| sides.len() + (k + t) % p));
            order.extend(
                (0..sides.len())
                    .map(|k| (k + t) % sides.len())
                    .filter(|&q| !urgent(q)),
            );
            for r in order {
                if r < sides.len() {
                    let q = r;
                    if pos[q] >= side_len[q] {
                        continue;
                    }
                    let issue = bank.side_read(s, q, sides[q].0, &mut pos[q]);
                    bus_issues[q].push(issue);
                    continue;
                }
                let l = r - sides.len();
                let w = &mut lanes[l];
                let issue = if w.cur < w.units.len() {
                    let i = w.units[w.cur];
                    let got = if !w.self_done {
                        bank.read(l, i, p).map(|port| {
                            w.self_done = true;
                            Issue::State {
                                unit: i as u32,
                                port,
                            }
                        })
                    } else {
                        let cand = match o.order {
                            Order::Ascending => w.row_left.len().min(1),
                            Order::Free => w.row_left.len(),
                        };
                        (0..cand).find_map(|k| {
                            let j = w.row_left[k];
                            bank.read(l, j, p).map(|port| {
                                w.row_left.remove(k);
                                w.issued.push(j as u32);
                                Issue::State {
                                    unit: j as u32,
                                    port,
                                }
                            })
                        })
                    };
                    if got.is_some() {
                        w.left -= 1;
                    }
                    if got.is_some() && w.self_done && w.row_left.is_empty() {
                        // the unit's first pass is issued: park it
                        w.parked_at[w.cur] = t as u64;
                        row_order[i] = std::mem::take(&mut w.issued);
                        w.cur += 1;
                        w.self_done = false;
                        if let Some(&n) = w.units.get(w.cur) {
                            w.row_left = s.col[s.row_ptr[n]..s.row_ptr[n + 1]].to_vec();
                        }
                    }
                    got.unwrap_or(Issue::Wait)
                } else if w.cur2 < w.units.len() {
                    let i = w.units[w.cur2];
                    let left = *w.lines_left.get_or_insert(lines[module_of(i)]);
                    if (t as u64) < w.parked_at[w.cur2] + PARK_LATENCY {
                        Issue::Wait
                    } else if left > 0 {
                        if lines_now {
                            w.lines_left = Some(left - 1);
                            Issue::Line
                        } else {
                            Issue::Wait
                        }
                    } else if lane_issues[l].last() == Some(&Issue::Finish) {
                        // two finishes at least two cycles apart (the bias read and the noise
                        // sample of one finish per two cycles, as a unit costs in the first pass)
                        Issue::Wait
                    } else {
                        w.cur2 += 1;
                        w.lines_left = None;
                        Issue::Finish
                    }
                } else {
                    continue;
                };
                lane_issues[l].push(issue);
            }
            if lines_ready.is_none() && (0..sides.len()).all(|q| pos[q] >= side_len[q]) {
                lines_ready = Some(t as u64 + 1 + super::BUS_GAIN_LATENCY + crossbar_latency(p));
            }
            t += 1;
        }
        let lines_ready = lines_ready.unwrap_or(0);
        let unit_len = lane_issues.iter().map(Vec::len).max().unwrap_or(0) as u64;
        let unit_phase = (unit_len + super::PIPELINE_DRAIN + crossbar_latency(p)).max(lines_ready);
        let count = |v: &[Vec<Issue>], f: fn(&Issue) -> bool| {
            v.iter().flatten().filter(|i| f(i)).count() as u64
        };
        let lane_macs = count(&lane_issues, |i| {
            matches!(i, Issue::State { .. } | Issue::Line)
        });
        let bus_macs: u64 = side_len.iter().map(|&n| n as u64).sum();
        Banked {
            lanes: p,
            ports,
            order: o.order,
            bus: BusMode::Beside,
            port_rule: o.port_rule,
            lines_ready,
            lane_waits: count(&lane_issues, |i| *i == Issue::Wait),
            bus_waits: count(&bus_issues, |i| *i == Issue::Wait),
            bus_issues,
            lane_issues,
            row_order,
            bus_phase: 0,
            unit_phase,
            cycles_per_sweep: unit_phase,
            macs_per_sweep: lane_macs + bus_macs,
            lane_macs,
        }
    }

    /// Sustained lane MACs per cycle over the lanes' multipliers (1.0 = every lane busy every
    /// cycle of the sweep), as [`super::Schedule::mac_efficiency`].
    pub fn mac_efficiency(&self) -> f64 {
        self.lane_macs as f64 / (self.lanes as f64 * self.cycles_per_sweep as f64)
    }

    /// Block RAM words of state: `P` banks x 2 copies x 2 buffers x `ceil(D / P)` words.
    pub fn state_words(&self, units: usize) -> usize {
        self.lanes * self.ports * 2 * units.div_ceil(self.lanes)
    }
}

/// Check `b` against `s` without the generator: every lane updates its units `l, l + P, ...` in
/// ascending order, each with its self term first, every column of its row exactly once and its
/// bus lines, then a finish; in [`Order::Ascending`] the row in ascending order; the row order
/// recorded in `b.row_order` is the one issued; every bus side reads its module `k` times
/// ascending; in every cycle, every bank port carries at most one word and the port index is
/// below the bank's ports; the cycle counts add up.
pub fn verify(s: &Substrate, b: &Banked) -> Result<(), String> {
    let p = s.lanes as usize;
    let d = s.units();
    if b.lanes != p {
        return Err(format!("schedule for {} lanes, substrate has {p}", b.lanes));
    }
    // per cycle, (bank, port) -> word
    let mut used: Vec<HashMap<(usize, u8), usize>> = Vec::new();
    let claim = |used: &mut Vec<HashMap<(usize, u8), usize>>,
                 reader: usize,
                 t: usize,
                 j: u32,
                 port: u8,
                 who: &str|
     -> Result<(), String> {
        if j as usize >= d {
            return Err(format!("{who}, cycle {t}: unit {j} out of range"));
        }
        if port as usize >= b.ports {
            return Err(format!("{who}, cycle {t}: port {port} of {}", b.ports));
        }
        if b.port_rule == PortRule::ByReader && port as usize != reader % b.ports {
            return Err(format!(
                "{who}, cycle {t}: port {port}, its reader's port is {}",
                reader % b.ports
            ));
        }
        if used.len() <= t {
            used.resize_with(t + 1, Default::default);
        }
        let (bank, word) = (j as usize % p, j as usize / p);
        match used[t].insert((bank, port), word) {
            Some(w) if w != word => Err(format!(
                "{who}, cycle {t}: bank {bank} port {port} reads words {w} and {word}"
            )),
            _ => Ok(()),
        }
    };
    // bus phase
    let mut want_sides = Vec::new();
    for bus in &s.buses {
        want_sides.push((bus.enc, bus.rank()));
        want_sides.push((bus.dec, bus.rank()));
    }
    if b.bus == BusMode::Lanes && b.bus_issues.iter().any(|v| !v.is_empty()) {
        return Err("bus sides issue reads although the lanes compute the bus sums".into());
    }
    if b.bus_issues.len() != want_sides.len() {
        return Err(format!(
            "{} bus sides scheduled, substrate has {}",
            b.bus_issues.len(),
            want_sides.len()
        ));
    }
    let mut bus_len = 0;
    for (q, (&(m, k), iss)) in want_sides.iter().zip(&b.bus_issues).enumerate() {
        let r = s.modules[m].range();
        let want: Vec<u32> = match b.bus {
            BusMode::Sides | BusMode::Beside => {
                (0..k).flat_map(|_| r.clone()).map(|j| j as u32).collect()
            }
            BusMode::Lanes => Vec::new(),
        };
        let mut got = Vec::new();
        for (t, is) in iss.iter().enumerate() {
            match *is {
                Issue::State { unit, port } => {
                    claim(&mut used, q, t, unit, port, &format!("bus side {q}"))?;
                    got.push(unit);
                }
                Issue::Wait => {}
                other => return Err(format!("bus side {q}, cycle {t}: {other:?}")),
            }
        }
        if got != want {
            return Err(format!(
                "bus side {q} reads {} states, not its module's {} ascending {k} times",
                got.len(),
                r.len()
            ));
        }
        bus_len = bus_len.max(iss.len());
    }
    if b.bus == BusMode::Beside {
        // the lanes run beside the bus sides, in the same cycles
        return verify_beside(s, b, &want_sides, bus_len, &mut used, claim);
    }
    // unit phase (cycles restart at 0: the phases do not overlap)
    used.clear();
    let mut lines = vec![0usize; s.modules.len()];
    for &(m, k) in &want_sides {
        lines[m] += k;
    }
    let mut unit_len = 0;
    let mut last_partial: Option<usize> = None;
    let mut first_line: Option<(usize, usize)> = None;
    for (l, iss) in b.lane_issues.iter().enumerate() {
        let mut partials = Vec::new();
        let mut want_partials = Vec::new();
        if b.bus == BusMode::Lanes {
            for &(m, k) in &want_sides {
                for _ in 0..k {
                    for j in s.modules[m].range() {
                        if j % p == l {
                            want_partials.push(j as u32);
                        }
                    }
                }
            }
        }
        let mut units = (l..d).step_by(p);
        let mut begun = false;
        let mut cur: Option<usize> = None;
        let mut reads: Vec<u32> = Vec::new();
        let mut n_lines = 0;
        let who = format!("lane {l}");
        for (t, is) in iss.iter().enumerate() {
            match *is {
                Issue::BusPartial { unit, port } => {
                    claim(&mut used, l, t, unit, port, &who)?;
                    if begun {
                        return Err(format!("{who}, cycle {t}: bus partial after a unit began"));
                    }
                    partials.push(unit);
                    last_partial = last_partial.max(Some(t));
                }
                Issue::State { unit, port } => {
                    claim(&mut used, l, t, unit, port, &who)?;
                    begun = true;
                    if cur.is_none() {
                        cur = units.next();
                    }
                    reads.push(unit);
                }
                Issue::Line => {
                    begun = true;
                    if cur.is_none() {
                        cur = units.next();
                    }
                    n_lines += 1;
                    if first_line.map_or(true, |(t0, _)| t < t0) {
                        first_line = Some((t, l));
                    }
                }
                Issue::Finish => {
                    let i = cur
                        .take()
                        .ok_or(format!("{who}, cycle {t}: finish of no unit"))?;
                    let m = s
                        .modules
                        .iter()
                        .position(|m| m.range().contains(&i))
                        .unwrap();
                    let row = &s.col[s.row_ptr[i]..s.row_ptr[i + 1]];
                    if reads.first() != Some(&(i as u32)) {
                        return Err(format!("{who}: unit {i} does not start with its self term"));
                    }
                    let issued = &reads[1..];
                    let mut sorted: Vec<u32> = issued.to_vec();
                    sorted.sort_unstable();
                    let want: Vec<u32> = row.iter().map(|&j| j as u32).collect();
                    if sorted != want {
                        return Err(format!(
                            "{who}: unit {i} reads {} row states, its row has {} (or other columns)",
                            issued.len(),
                            row.len()
                        ));
                    }
                    if b.order == Order::Ascending && issued != want.as_slice() {
                        return Err(format!("{who}: unit {i}'s row not in ascending order"));
                    }
                    if b.row_order.get(i).map(|v| v.as_slice()) != Some(issued) {
                        return Err(format!(
                            "{who}: unit {i}'s recorded row order is not the issued one"
                        ));
                    }
                    if n_lines != lines[m] {
                        return Err(format!(
                            "{who}: unit {i} issues {n_lines} line MACs, its module needs {}",
                            lines[m]
                        ));
                    }
                    reads.clear();
                    n_lines = 0;
                }
                Issue::Wait => {}
            }
        }
        if cur.is_some() || units.next().is_some() {
            return Err(format!("{who}: not every unit of the lane is finished"));
        }
        if partials != want_partials {
            return Err(format!(
                "{who}: {} bus partial reads, not its {} own units of each side's module, ascending, once per rank",
                partials.len(),
                want_partials.len()
            ));
        }
        unit_len = unit_len.max(iss.len());
    }
    let bus_phase = if want_sides.is_empty() || b.bus == BusMode::Lanes {
        0
    } else {
        bus_len as u64 + super::BUS_GAIN_LATENCY + crossbar_latency(p)
    };
    let ready = match (b.bus, last_partial) {
        (BusMode::Lanes, Some(t)) => t as u64 + 1 + BusMode::line_latency(p),
        _ => 0,
    };
    if b.lines_ready != ready {
        return Err(format!(
            "lines claimed latched at cycle {}, the partials give {ready}",
            b.lines_ready
        ));
    }
    if let Some((t, l)) = first_line.filter(|&(t, _)| (t as u64) < ready) {
        return Err(format!(
            "lane {l}, cycle {t}: line MAC before the lines are latched at {ready}"
        ));
    }
    let unit_phase = unit_len as u64 + super::PIPELINE_DRAIN + crossbar_latency(p);
    if (b.bus_phase, b.unit_phase, b.cycles_per_sweep)
        != (bus_phase, unit_phase, bus_phase + unit_phase)
    {
        return Err(format!(
            "cycle counts {} + {} = {} do not match the issues' {bus_phase} + {unit_phase}",
            b.bus_phase, b.unit_phase, b.cycles_per_sweep
        ));
    }
    Ok(())
}

/// The lanes of a [`BusMode::Beside`] schedule (the bus sides' reads are in `used` already):
/// lane `l`'s first pass issues the self term and the row of each of its units `l, l + P, ...` in
/// turn, its second pass (no state read after it began) the units' line MACs and finishes in the
/// same order; a unit's second pass begins at least [`PARK_LATENCY`] cycles after its first pass
/// ends; no finish in the cycle after another; no line MAC before the lines are latched; the
/// cycle counts add up.
fn verify_beside<F>(
    s: &Substrate,
    b: &Banked,
    want_sides: &[(usize, usize)],
    bus_len: usize,
    used: &mut Vec<HashMap<(usize, u8), usize>>,
    claim: F,
) -> Result<(), String>
where
    F: Fn(&mut Vec<HashMap<(usize, u8), usize>>, usize, usize, u32, u8, &str) -> Result<(), String>,
{
    let p = s.lanes as usize;
    let d = s.units();
    let mut lines = vec![0usize; s.modules.len()];
    for &(m, k) in want_sides {
        lines[m] += k;
    }
    let ready = if want_sides.is_empty() {
        0
    } else {
        bus_len as u64 + super::BUS_GAIN_LATENCY + crossbar_latency(p)
    };
    if b.lines_ready != ready {
        return Err(format!(
            "lines claimed latched at cycle {}, the bus sides give {ready}",
            b.lines_ready
        ));
    }
    let module_of = |i: usize| {
        s.modules
            .iter()
            .position(|m| m.range().contains(&i))
            .unwrap()
    };
    let mut unit_len = 0;
    for (l, iss) in b.lane_issues.iter().enumerate() {
        let who = format!("lane {l}");
        let units: Vec<usize> = (l..d).step_by(p).collect();
        // first pass: (cycle, unit read) of every state read
        let mut reads: Vec<(usize, u32)> = Vec::new();
        let mut second: Vec<(usize, Issue)> = Vec::new();
        for (t, is) in iss.iter().enumerate() {
            match *is {
                Issue::State { unit, port } => {
                    claim(used, l, t, unit, port, &who)?;
                    if !second.is_empty() {
                        return Err(format!("{who}, cycle {t}: a state read in the second pass"));
                    }
                    reads.push((t, unit));
                }
                Issue::Line | Issue::Finish => second.push((t, *is)),
                Issue::Wait => {}
                Issue::BusPartial { .. } => {
                    return Err(format!(
                        "{who}, cycle {t}: a bus partial beside the bus sides"
                    ))
                }
            }
        }
        let mut at = 0;
        let mut parked = Vec::with_capacity(units.len());
        for &i in &units {
            let row: Vec<u32> = s.col[s.row_ptr[i]..s.row_ptr[i + 1]]
                .iter()
                .map(|&j| j as u32)
                .collect();
            let mine = reads.get(at..at + 1 + row.len()).ok_or(format!(
                "{who}: unit {i}'s first pass is incomplete ({} reads left, it needs {})",
                reads.len() - at.min(reads.len()),
                1 + row.len()
            ))?;
            if mine[0].1 != i as u32 {
                return Err(format!("{who}: unit {i} does not start with its self term"));
            }
            let issued: Vec<u32> = mine[1..].iter().map(|&(_, j)| j).collect();
            let mut sorted = issued.clone();
            sorted.sort_unstable();
            if sorted != row {
                return Err(format!(
                    "{who}: unit {i}'s first pass reads other columns than its row"
                ));
            }
            if b.order == Order::Ascending && issued != row {
                return Err(format!("{who}: unit {i}'s row not in ascending order"));
            }
            if b.row_order.get(i) != Some(&issued) {
                return Err(format!(
                    "{who}: unit {i}'s recorded row order is not the issued one"
                ));
            }
            parked.push(mine[row.len()].0);
            at += 1 + row.len();
        }
        if at != reads.len() {
            return Err(format!(
                "{who}: {} state reads past its units' rows",
                reads.len() - at
            ));
        }
        if let Some(w) = second
            .windows(2)
            .find(|w| w[0].1 == Issue::Finish && w[1].1 == Issue::Finish && w[1].0 == w[0].0 + 1)
        {
            return Err(format!(
                "{who}, cycle {}: a finish right after a finish",
                w[1].0
            ));
        }
        let mut it = second.into_iter();
        for (n, &i) in units.iter().enumerate() {
            let mut n_lines = 0;
            let mut first = None;
            loop {
                let (t, is) = it
                    .next()
                    .ok_or(format!("{who}: unit {i} is never finished"))?;
                first.get_or_insert(t);
                if is == Issue::Finish {
                    break;
                }
                if (t as u64) < ready {
                    return Err(format!(
                        "{who}, cycle {t}: line MAC before the lines are latched at {ready}"
                    ));
                }
                n_lines += 1;
            }
            let t0 = first.unwrap_or(0) as u64;
            if t0 < parked[n] as u64 + PARK_LATENCY {
                return Err(format!(
                    "{who}: unit {i} resumed at cycle {t0}, {} after it was parked (at least {PARK_LATENCY})",
                    t0 as i64 - parked[n] as i64
                ));
            }
            if n_lines != lines[module_of(i)] {
                return Err(format!(
                    "{who}: unit {i} issues {n_lines} line MACs, its module needs {}",
                    lines[module_of(i)]
                ));
            }
        }
        if let Some((t, is)) = it.next() {
            return Err(format!(
                "{who}, cycle {t}: {is:?} after its last unit's finish"
            ));
        }
        unit_len = unit_len.max(iss.len());
    }
    let unit_phase = (unit_len as u64 + super::PIPELINE_DRAIN + crossbar_latency(p)).max(ready);
    if (b.bus_phase, b.unit_phase, b.cycles_per_sweep) != (0, unit_phase, unit_phase) {
        return Err(format!(
            "cycle counts {} + {} = {} do not match the issues' 0 + {unit_phase}",
            b.bus_phase, b.unit_phase, b.cycles_per_sweep
        ));
    }
    Ok(())
}
