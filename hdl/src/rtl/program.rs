//! The substrate compiled for the hardware: per-lane instruction streams, biases, bus-side
//! coefficient streams, datapath constants and the schedule. The constants are taken from
//! `thermo_sim::engine::Program<Fixed>`, so they are the engine's codes, bit for bit.

use crate::rtl::arith::MAX_CLASSES;
use crate::rtl::top::region;
use crate::Error;
use thermo_sim::engine::{Fixed, Program, Side};
use thermo_sim::model::Formats;
use thermo_sim::noise::NOISE_FORMAT;
use thermo_sim::schedule::banked::{
    crossbar_latency, Banked, BusMode, Issue, Options as BankedOptions, PARK_LATENCY,
};
use thermo_sim::schedule::{Schedule, BUS_GAIN_LATENCY, PIPELINE_DRAIN};
use thermo_sim::Substrate;

/// Opcode of a lane instruction (bits 31..30).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `acc = d_i * x_i`; latch the gate of `x_i`.
    SelfTerm = 0,
    /// `acc += c_ij * rho(x_j)` (gated).
    Coupling = 1,
    /// `acc += align(w_ri * L_r)` (gated).
    Line = 2,
    /// `acc += h_i` (gated), `acc += align(gn * z)`, round, saturate, write back.
    Finish = 3,
}

/// Operand bit 13 of a lane instruction: on a SELF or COUPLING, *park* (the unit's last
/// first-pass MAC: its accumulator, gate and class go to the lane's park memory after it); on a
/// LINE or FINISH, *resume* (the accumulator, gate and class come back from the park memory for
/// this instruction). Only builds whose bus sides run beside the lanes
/// (`thermo_sim::schedule::banked::BusMode::Beside`) set it; state operands and line indices
/// keep the 13 bits below it.
pub const PASS_FLAG: u32 = 1 << 13;

/// Encode an instruction: `op << 30 | operand << 16 | coef`.
pub fn encode(op: Op, operand: u32, coef: i16) -> u32 {
    assert!(operand < (1 << 14), "operand {operand} exceeds 14 bits");
    ((op as u32) << 30) | (operand << 16) | coef as u16 as u32
}

/// `ceil(log2(n))`, at least 1.
pub fn clog2(n: usize) -> usize {
    let mut b = 1;
    while (1usize << b) < n {
        b += 1;
    }
    b
}

/// Datapath constants shared by every lane and bus side.
#[derive(Clone, Debug, PartialEq)]
pub struct Datapath {
    /// Formats.
    pub formats: Formats,
    /// Accumulator fractional bits `fa`.
    pub fa: u32,
    /// Noise amplitude code `gn`.
    pub noise_amp: i16,
    /// Activation clamp codes `(lo, hi)`; identity = the full 16-bit range.
    pub clamp: (i16, i16),
    /// Bank-select bits `clog2(P)` of a state operand (`operand = q << bbits | bank`).
    pub bbits: u32,
    /// Lanes and bus sides register their instruction / MAC word after its block RAM
    /// (`thermo_sim::schedule::banked::crossbar_latency`: with more than one lane).
    pub fetch_reg: bool,
    /// The module classes (`docs/fixed-point.md` §1): one per module of a substrate with
    /// state shifts (at most [`MAX_CLASSES`]), one for all without.
    pub classes: Vec<ModuleClass>,
    /// Operand code (`q << bbits | bank`) of the first unit of classes `1..`: an operand's
    /// class is the number of bounds it reaches (operands grow with the unit index).
    pub class_bounds: Vec<u32>,
    /// The first unit (global index) of classes `1..`, for the class of a resumed unit.
    pub class_first: Vec<usize>,
    /// The bus sides run beside the lanes, which park and resume their units ([`PASS_FLAG`];
    /// `thermo_sim::schedule::banked::Options::hardware`).
    pub beside: bool,
}

/// What the datapath needs of a module with a state shift: its clamp codes (identity: the full
/// 16-bit range) and the shift.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModuleClass {
    /// Clamp codes `(lo, hi)` in the module's state format.
    pub clamp: (i16, i16),
    /// State shift `k`.
    pub shift: u32,
}

impl Datapath {
    /// Constants of `s`.
    pub fn new(s: &Substrate) -> Self {
        let f = s.formats;
        let fx = Fixed::new(s);
        let clamp = fx.clamp_codes().unwrap_or((i16::MIN, i16::MAX));
        let p = s.lanes as usize;
        let bbits = if p <= 1 { 0 } else { clog2(p) as u32 };
        let class_first: Vec<usize> = if s.shifted() {
            s.modules[1..].iter().map(|m| m.offset).collect()
        } else {
            Vec::new()
        };
        let classes = if s.shifted() {
            let full = (i16::MIN, i16::MAX);
            (0..s.modules.len())
                .map(|m| ModuleClass {
                    clamp: fx.module_clamp_codes(m).unwrap_or(full),
                    shift: s.modules[m].shift,
                })
                .collect()
        } else {
            vec![ModuleClass { clamp, shift: 0 }]
        };
        // the same bounds as operand codes
        let class_bounds = class_first
            .iter()
            .map(|&i| (((i / p) << bbits) | (i % p)) as u32)
            .collect();
        Datapath {
            formats: f,
            fa: f.acc().frac,
            noise_amp: fx.noise_amp,
            clamp,
            bbits,
            fetch_reg: crossbar_latency(p) == 1,
            classes,
            class_bounds,
            class_first,
            beside: BankedOptions::hardware(s).bus == BusMode::Beside,
        }
    }
    /// The class of module `m`'s units (0 without state shifts).
    pub fn class_of_module(&self, m: usize) -> usize {
        if self.classes.len() == 1 {
            0
        } else {
            m
        }
    }
    /// Each class's state shift, for [`crate::rtl::arith::SatAdd::classes`].
    pub fn class_shifts(&self) -> Vec<u32> {
        self.classes.iter().map(|c| c.shift).collect()
    }
    /// Fractional bits of a line product `w * L`.
    pub fn line_frac(&self) -> u32 {
        self.formats.coupling.frac + self.formats.bus.frac
    }
    /// Fractional bits of a noise product `z * gn`.
    pub fn noise_frac(&self) -> u32 {
        NOISE_FORMAT.frac + self.formats.noise_gain.frac
    }
}

/// One lane's memories.
#[derive(Clone, Debug, Default)]
pub struct LaneProgram {
    /// Instructions of one sweep, in issue order.
    pub instr: Vec<u32>,
    /// Bias `h_i` of each of the lane's units (lane order), as 32-bit words.
    pub bias: Vec<u32>,
    /// Global unit index of each of the lane's units.
    pub units: Vec<usize>,
}

/// One bus side's memory: per MAC `first << 31 | last << 30 | operand << 16 | coef`.
#[derive(Clone, Debug, Default)]
pub struct SideProgram {
    /// Bus index.
    pub bus: usize,
    /// Encoder side (sums with `u`) or decoder side (`v`).
    pub encoder: bool,
    /// Class of the side's module ([`Datapath::classes`]).
    pub class: usize,
    /// Rank k.
    pub k: usize,
    /// Units of the side's module.
    pub n: usize,
    /// MAC words, rank-major.
    pub words: Vec<u32>,
    /// Gains `eta sigma_r` (gain format codes).
    pub gains: Vec<i16>,
    /// Index of this side's line 0 among all lines.
    pub line_base: usize,
    /// Beside the lanes ([`HwProgram::beside`]): per cycle of the sweep from its first, 1 where
    /// the side issues its next MAC word, 0 where it waits for a bank port (the waits are not
    /// words: the side's memory holds its `k n` MACs only). Empty otherwise (the waits are
    /// [`WAIT_WORD`]s).
    pub issue_map: Vec<u32>,
}

/// The whole substrate for the hardware.
#[derive(Clone, Debug)]
pub struct HwProgram {
    /// Lanes P.
    pub p: usize,
    /// Units D.
    pub d: usize,
    /// Address bits of a lane-local unit index `q = i / P`.
    pub qbits: usize,
    /// Datapath constants.
    pub dp: Datapath,
    /// Lanes.
    pub lanes: Vec<LaneProgram>,
    /// Bus sides (`2b` encoder side of bus `b`, `2b+1` its decoder side).
    pub sides: Vec<SideProgram>,
    /// Total bus lines.
    pub n_lines: usize,
    /// The engine's schedule.
    pub schedule: Schedule,
    /// Cycle at which the lanes start issuing (0 when the bus sides run beside them).
    pub bus_phase: u64,
    /// The bus sides run beside the lanes, which park and resume their units
    /// ([`PASS_FLAG`]).
    pub beside: bool,
    /// Cycles of one sweep.
    pub cycles_per_sweep: u64,
    /// The off-diagonal couplings in CSR order (the engine's `coef`, as the board model
    /// `thermo_proto::device::Board` reports them): the protocol's memory space 2.
    pub couplings: Vec<i16>,
    /// The compiled weight codes of the protocol's weight spaces 2, 3, 4, 5 concatenated
    /// (`thermo_proto::Weights`: couplings in CSR order, self coefficients, bus factors, bus
    /// gains), and where each code sits in the substrate's memories: [`WeightLoc`]s, one for a
    /// coupling or a self coefficient (its lane instruction), two for a bus factor (the bus
    /// side's MAC word and the partner lane's LINE instruction) and for a gain (both sides).
    pub weights: Vec<i16>,
    /// Number of codes of spaces 2, 3, 4, 5 in [`HwProgram::weights`].
    pub weight_spaces: [usize; 4],
    /// The locations of each code of [`HwProgram::weights`].
    pub weight_locs: Vec<Vec<WeightLoc>>,
}

/// Where a weight code sits: the configuration-port address of a memory word
/// (`crate::rtl::top::region::INSTR`, `BUSW` or `GAIN`) whose low 16 bits are the code, and the
/// word's upper 16 bits (opcode and operand of an instruction, `first | last | operand` of a
/// MAC word, zero for a gain), so a new code is written as `hi << 16 | code`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeightLoc {
    /// Configuration-port address (region in bits 23..20, then memory and word as
    /// [`HwProgram::mem_addr`] splits them).
    pub addr: u32,
    /// Bits 31..16 of the word.
    pub hi: u16,
}

/// The configuration port's split of a memory region's 20 offset bits (regions `INSTR`, `BIAS`,
/// `BUSW`, `GAIN` of [`crate::rtl::top::region`]) for a build of `p` lanes and `s` bus sides:
/// the memory (lane or side) in the upper `20 - index_bits`, the word in the lower
/// `index_bits`. The memory field takes `clog2(max(p, s))` bits but at least 4, so up to 16
/// lanes and sides the port reaches all 65,536 words a memory can have (16 index bits), and at
/// 256 it still reaches 4,096.
pub fn port_index_bits(p: usize, s: usize) -> usize {
    20 - clog2(p.max(s)).max(4)
}

impl HwProgram {
    /// This build's [`port_index_bits`].
    pub fn index_bits(&self) -> usize {
        port_index_bits(self.p, self.sides.len())
    }
    /// Words of a lane or bus-side memory the configuration port reaches.
    pub fn port_reach(&self) -> usize {
        1 << self.index_bits()
    }
    /// The configuration-port address of word `index` of memory `mem` (a lane or bus side) in
    /// `region` (`INSTR`, `BIAS`, `BUSW` or `GAIN`). Panics if either is out of the port's
    /// reach.
    pub fn mem_addr(&self, region: u32, mem: usize, index: usize) -> u32 {
        let ib = self.index_bits();
        assert!(
            mem < 1 << (20 - ib) && index < 1 << ib,
            "memory {mem} word {index} is beyond the configuration port ({} index bits)",
            ib
        );
        (region << 20) | ((mem as u32) << ib) | index as u32
    }
    /// Does the configuration port reach every word that holds a weight code: at most 256 lanes
    /// and bus sides, each memory within [`HwProgram::port_reach`] words? (Otherwise the
    /// [`WeightLoc`] addresses are not the words' and must not be used.)
    pub fn port_reaches_weights(&self) -> bool {
        let reach = self.port_reach();
        self.p <= 256
            && self.sides.len() <= 256
            && self.lanes.iter().all(|l| l.instr.len() <= reach)
            && self.sides.iter().all(|s| s.words.len() <= reach)
    }
}

/// Largest operand (14 bits).
const OPERAND_LIMIT: usize = 1 << 14;
/// Largest state operand of a lane instruction and line index (13 bits: [`PASS_FLAG`] above).
const LANE_OPERAND_LIMIT: usize = PASS_FLAG as usize;

/// The operand of a bus side's wait word (no state read; `HwProgram::new` refuses builds whose
/// state operands reach it).
pub const WAIT_OPERAND: u32 = (OPERAND_LIMIT - 1) as u32;

/// Longest sweep of a build whose bus sides run beside the lanes: their issue maps
/// ([`SideProgram::issue_map`]) are memories of one bit per cycle, at most 16 address bits.
pub const ISSUE_MAP_LIMIT: u64 = 1 << 16;

/// A lane's wait: a LINE instruction with coefficient 0 (adds `align(0 * L) = 0`, which never
/// saturates, and reads no state).
pub fn wait_instruction() -> u32 {
    encode(Op::Line, 0, 0)
}

/// A bus side's wait word: not first, not last, operand [`WAIT_OPERAND`], coefficient 0.
pub const WAIT_WORD: u32 = WAIT_OPERAND << 16;

impl HwProgram {
    /// Compile `s`.
    pub fn new(s: &Substrate) -> Result<Self, Error> {
        if s.shifted() && s.modules.len() > MAX_CLASSES {
            return Err(Error::Config(format!(
                "{} modules with state shifts: the RTL lanes tell at most {MAX_CLASSES} module \
                 classes apart (docs/fixed-point.md §1)",
                s.modules.len()
            )));
        }
        let prog = Program::new(s, Fixed::new(s));
        let dp = Datapath::new(s);
        let p = s.lanes as usize;
        let d = s.units();
        let qn = d.div_ceil(p);
        let qbits = clog2(qn);
        let opnd = |j: usize| -> u32 { (((j / p) << dp.bbits) | (j % p)) as u32 };
        if ((qn << dp.bbits) | p) >= LANE_OPERAND_LIMIT || qbits + 1 > 16 {
            return Err(Error::Config(format!(
                "{d} units on {p} lanes exceed the 13-bit state operand of this build \
                 (at most {} units a lane)",
                (LANE_OPERAND_LIMIT >> dp.bbits) - 1
            )));
        }
        // lines
        let mut sides = Vec::new();
        let mut line_base = 0;
        for (b, bus) in prog.buses.iter().enumerate() {
            for (enc, w, range) in [(true, &bus.u, &bus.enc), (false, &bus.v, &bus.dec)] {
                let k = w.len();
                let mut words = Vec::new();
                for row in w.iter() {
                    for (jj, &c) in row.iter().enumerate() {
                        let j = range.start + jj;
                        let first = (jj == 0) as u32;
                        let last = (jj + 1 == row.len()) as u32;
                        words
                            .push((first << 31) | (last << 30) | (opnd(j) << 16) | c as u16 as u32);
                    }
                }
                sides.push(SideProgram {
                    bus: b,
                    encoder: enc,
                    class: dp.class_of_module(if enc { bus.modules.0 } else { bus.modules.1 }),
                    k,
                    n: range.len(),
                    words,
                    gains: bus.gain.clone(),
                    line_base,
                    issue_map: Vec::new(),
                });
                line_base += k;
            }
        }
        let n_lines = line_base;
        if n_lines >= LANE_OPERAND_LIMIT {
            return Err(Error::Config(format!(
                "{n_lines} bus lines exceed the 13-bit line operand"
            )));
        }
        // lanes
        let mut lanes = vec![LaneProgram::default(); p];
        let mut module_of = vec![0usize; d];
        for (m, r) in prog.modules.iter().enumerate() {
            for i in r.clone() {
                module_of[i] = m;
            }
        }
        // weight locations: (lane, instruction index) of every coupling and self coefficient,
        // and of the LINE instruction of every bus factor, keyed (bus, encoder side, rank, n)
        // (rows are visited in order, so the couplings in CSR order)
        let mut coup_at = Vec::with_capacity(prog.coef.len());
        let mut self_at = Vec::with_capacity(d);
        let mut line_at = std::collections::HashMap::new();
        // per lane, each unit's (first instruction, first-pass length, instructions)
        let mut unit_words: Vec<Vec<(usize, usize, usize)>> = vec![Vec::new(); p];
        for i in 0..d {
            let lp = &mut lanes[i % p];
            let m = module_of[i];
            let first = lp.instr.len();
            lp.units.push(i);
            lp.bias.push(prog.bias[i] as u32);
            self_at.push((i % p, lp.instr.len()));
            lp.instr.push(encode(Op::SelfTerm, opnd(i), prog.diag[i]));
            for q in prog.row_ptr[i] as usize..prog.row_ptr[i + 1] as usize {
                coup_at.push((i % p, lp.instr.len()));
                lp.instr.push(encode(
                    Op::Coupling,
                    opnd(prog.col[q] as usize),
                    prog.coef[q],
                ));
            }
            let n = i - prog.modules[m].start;
            for &(b, side) in &prog.sides[m] {
                let bus = &prog.buses[b];
                // decoder units use v with the encoder's lines (side 2b), encoder units use u
                // with the decoder's lines (side 2b+1)
                let (w, src) = match side {
                    Side::Decoder => (&bus.v, 2 * b),
                    Side::Encoder => (&bus.u, 2 * b + 1),
                };
                for (r, row) in w.iter().enumerate() {
                    let line = sides[src].line_base + r;
                    line_at.insert((b, side == Side::Encoder, r, n), (i % p, lp.instr.len()));
                    lp.instr.push(encode(Op::Line, line as u32, row[n]));
                }
            }
            lp.instr.push(encode(Op::Finish, 0, 0));
            let row = (prog.row_ptr[i + 1] - prog.row_ptr[i]) as usize;
            unit_words[i % p].push((first, 1 + row, lp.instr.len() - first));
        }
        // the banked state's schedule: every wait the crossbar needs becomes an instruction
        // (lanes) or a word (bus sides); map[old index] = index with the waits
        let beside = dp.beside;
        let banked = Banked::new(s, &BankedOptions::hardware(s));
        let disagree = |who: String| {
            Error::Other(format!(
                "{who}: the banked schedule and the program disagree"
            ))
        };
        let mut lane_map = Vec::with_capacity(p);
        for (l, lp) in lanes.iter_mut().enumerate() {
            let old = std::mem::take(&mut lp.instr);
            // the old instructions in issue order: unit by unit, or (beside) every unit's first
            // pass, then every unit's second pass
            let order: Vec<usize> = if beside {
                let units = &unit_words[l];
                let pass1 = units.iter().flat_map(|&(f, n1, _)| f..f + n1);
                let pass2 = units.iter().flat_map(|&(f, n1, n)| f + n1..f + n);
                pass1.chain(pass2).collect()
            } else {
                (0..old.len()).collect()
            };
            let mut it = order.iter().copied();
            let mut map = vec![usize::MAX; old.len()];
            for is in &banked.lane_issues[l] {
                let x = match *is {
                    Issue::Wait => {
                        lp.instr.push(wait_instruction());
                        continue;
                    }
                    _ => it.next().ok_or_else(|| disagree(format!("lane {l}")))?,
                };
                let w = old[x];
                let (op, operand) = (w >> 30, (w >> 16) & 0x3FFF);
                let ok = match *is {
                    Issue::State { unit, .. } => op <= 1 && operand == opnd(unit as usize),
                    Issue::Line => op == Op::Line as u32,
                    Issue::Finish => op == Op::Finish as u32,
                    Issue::Wait | Issue::BusPartial { .. } => false,
                };
                if !ok {
                    return Err(disagree(format!("lane {l}, word {x}")));
                }
                map[x] = lp.instr.len();
                lp.instr.push(w);
            }
            if it.next().is_some() {
                return Err(disagree(format!("lane {l}")));
            }
            if beside {
                // park after each unit's last first-pass MAC; resume on the first instruction
                // of its second pass at least PARK_LATENCY cycles later (a wait, a line or its
                // finish: the schedule issues none of the unit's lines or finish before)
                let units = &unit_words[l];
                // the first cycle of the second pass, then the cycle after each finish
                let mut after = units.last().map_or(0, |&(f, n1, _)| map[f + n1 - 1] + 1);
                for &(f, n1, n) in units {
                    let parked = map[f + n1 - 1];
                    lp.instr[parked] |= PASS_FLAG << 16;
                    let first2 = map[f + n1];
                    let at = after.max(parked + PARK_LATENCY as usize);
                    if at > first2 {
                        return Err(disagree(format!(
                            "lane {l}, word {first2}: resumed too early"
                        )));
                    }
                    lp.instr[at] |= PASS_FLAG << 16;
                    after = map[f + n - 1] + 1;
                }
            }
            lane_map.push(map);
        }
        let mut side_map = Vec::with_capacity(sides.len());
        for (si, sd) in sides.iter_mut().enumerate() {
            let old = std::mem::take(&mut sd.words);
            let mut it = old.iter().copied();
            let mut map = Vec::with_capacity(old.len());
            for is in &banked.bus_issues[si] {
                if beside {
                    sd.issue_map.push(u32::from(*is != Issue::Wait));
                }
                match *is {
                    Issue::Wait if beside => {}
                    Issue::Wait => sd.words.push(WAIT_WORD),
                    Issue::State { unit, .. } => {
                        let w = it
                            .next()
                            .ok_or_else(|| disagree(format!("bus side {si}")))?;
                        if (w >> 16) & 0x3FFF != opnd(unit as usize) {
                            return Err(disagree(format!("bus side {si}, word {}", map.len())));
                        }
                        map.push(sd.words.len());
                        sd.words.push(w);
                    }
                    _ => return Err(disagree(format!("bus side {si}"))),
                }
            }
            if it.next().is_some() {
                return Err(disagree(format!("bus side {si}")));
            }
            side_map.push(map);
        }
        // `Schedule::new(s)` is this banked schedule; derive it from the one computed above
        let schedule = Schedule::of_banked(s, &banked);
        // the hardware's own count of the schedule: the lines latched after the slowest side,
        // the lanes issuing after them or (beside) from the sweep's first cycle
        let lines_ready = sides
            .iter()
            .map(|sd| {
                let run = if beside {
                    sd.issue_map.len()
                } else {
                    sd.words.len()
                };
                run as u64 + BUS_GAIN_LATENCY + crossbar_latency(p)
            })
            .max()
            .unwrap_or(0);
        let bus_phase = if beside { 0 } else { lines_ready };
        let busiest = lanes
            .iter()
            .map(|l| l.instr.len() as u64)
            .max()
            .unwrap_or(0);
        let mut cycles_per_sweep = bus_phase + busiest + PIPELINE_DRAIN + crossbar_latency(p);
        if beside {
            cycles_per_sweep = cycles_per_sweep.max(lines_ready);
            if cycles_per_sweep > ISSUE_MAP_LIMIT {
                return Err(Error::Config(format!(
                    "{d} units on {p} lanes take {cycles_per_sweep} cycles a sweep: the bus \
                     sides' issue maps reach {ISSUE_MAP_LIMIT} (more lanes shorten the sweep)"
                )));
            }
        }
        if cycles_per_sweep != schedule.cycles_per_sweep || bus_phase != schedule.bus_phase {
            return Err(Error::Other(format!(
                "hardware schedule {cycles_per_sweep} cycles (bus {bus_phase}) differs from the engine's {} (bus {})",
                schedule.cycles_per_sweep, schedule.bus_phase
            )));
        }
        // the weight codes (thermo_proto's spaces 2..=5, in their order) and their locations
        let ib = port_index_bits(p, sides.len());
        let word_at = |rg: u32, mem: usize, idx: usize, word: u32| WeightLoc {
            // beyond the port's reach the address is not the word's: `port_reaches_weights`
            // then turns the weights feature off
            addr: (rg << 20) | ((mem as u32) << ib) | (idx as u32 & ((1 << ib) - 1)),
            hi: (word >> 16) as u16,
        };
        let lane_loc = |(l, x): (usize, usize)| {
            let x = lane_map[l][x];
            word_at(region::INSTR, l, x, lanes[l].instr[x])
        };
        let mut weights = Vec::new();
        let mut weight_locs = Vec::new();
        for (q, &c) in prog.coef.iter().enumerate() {
            weights.push(c);
            weight_locs.push(vec![lane_loc(coup_at[q])]);
        }
        for (i, &c) in prog.diag.iter().enumerate() {
            weights.push(c);
            weight_locs.push(vec![lane_loc(self_at[i])]);
        }
        for (b, bus) in prog.buses.iter().enumerate() {
            for (enc, w) in [(true, &bus.u), (false, &bus.v)] {
                let si = 2 * b + usize::from(!enc);
                let n_side = sides[si].n;
                for (r, row) in w.iter().enumerate() {
                    for (n, &c) in row.iter().enumerate() {
                        let x = side_map[si][r * n_side + n];
                        weights.push(c);
                        let side = if enc { Side::Encoder } else { Side::Decoder };
                        let mut locs = vec![word_at(region::BUSW, si, x, sides[si].words[x])];
                        if let Some(&at) = line_at.get(&(b, side == Side::Encoder, r, n)) {
                            locs.push(lane_loc(at));
                        }
                        weight_locs.push(locs);
                    }
                }
            }
        }
        for (b, bus) in prog.buses.iter().enumerate() {
            for (r, &g) in bus.gain.iter().enumerate() {
                weights.push(g);
                weight_locs.push(vec![
                    word_at(region::GAIN, 2 * b, r, 0),
                    word_at(region::GAIN, 2 * b + 1, r, 0),
                ]);
            }
        }
        let nbf: usize = prog
            .buses
            .iter()
            .map(|b| b.u.iter().chain(&b.v).map(Vec::len).sum::<usize>())
            .sum();
        let weight_spaces = [
            prog.coef.len(),
            d,
            nbf,
            prog.buses.iter().map(|b| b.gain.len()).sum(),
        ];
        debug_assert_eq!(weights.len(), weight_spaces.iter().sum::<usize>());
        Ok(HwProgram {
            p,
            d,
            qbits,
            dp,
            lanes,
            sides,
            n_lines,
            schedule,
            bus_phase,
            beside,
            cycles_per_sweep,
            couplings: prog.coef,
            weights,
            weight_spaces,
            weight_locs,
        })
    }
}
