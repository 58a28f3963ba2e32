//! The substrate top: sweep controller, Langevin lanes, their noise pairs, bus sides,
//! double-buffered state banks read through a crossbar, bus line registers and the
//! configuration/readout port.

use crate::rtl::bus::BusSide;
use crate::rtl::ctrl::SweepCtrl;
use crate::rtl::lane::LangevinLane;
use crate::rtl::mem::Mem;
use crate::rtl::noise::NoisePairHw;
use crate::rtl::port::ConfigTarget;
use crate::rtl::program::HwProgram;
use rust_hdl::prelude::*;
use std::fmt::Write;

/// Configuration port regions (`cfg.addr[23:20]`).
pub mod region {
    /// Control and status registers.
    pub const CTRL: u32 = 0;
    /// taus88 seeds: `lane << 8 | component`.
    pub const SEED: u32 = 1;
    /// Unit states (current buffer): the state operand `q << bbits | bank`.
    pub const STATE: u32 = 2;
    /// Lane instruction memories: `lane << ib | index`, `ib` the build's
    /// [`super::HwProgram::index_bits`] (16 up to 16 lanes and sides: every word; at least
    /// 12). Use [`super::HwProgram::mem_addr`].
    pub const INSTR: u32 = 3;
    /// Lane bias memories: `lane << ib | index`.
    pub const BIAS: u32 = 4;
    /// Bus-side MAC words: `side << ib | index`.
    pub const BUSW: u32 = 5;
    /// Bus-side gains: `side << ib | rank`.
    pub const GAIN: u32 = 6;
    /// Readout accumulators (sum of the unit's written states while accumulation is on; 32-bit
    /// wrapping; writable while idle, e.g. to zero them): the state operand.
    pub const READOUT: u32 = 7;
}

/// Control register bits (write `CTRL` offset 0).
pub mod ctrl_bits {
    /// Start a run of `n_sweeps` sweeps.
    pub const START: u32 = 1;
    /// Load every noise lane from its seed registers. Written together with `START`, the run
    /// starts one cycle later than `START` alone (the noise lanes' start-up: the first sample
    /// of lane `2k + 1` is valid 4 cycles after the load, see `NoisePairHw`).
    pub const NOISE_LOAD: u32 = 2;
    /// Clear the saturation counters.
    pub const CLEAR: u32 = 4;
    /// Switch readout accumulation on (every written state is added to its unit's readout word).
    pub const READOUT_ON: u32 = 8;
    /// Switch readout accumulation off.
    pub const READOUT_OFF: u32 = 16;
    /// Written with `READOUT_ON`: accumulate `rho` of every written state (the activation)
    /// instead of the state, until the next `READOUT_ON` (a top built without it,
    /// [`super::SubstrateTop::with_rho`], ignores the bit and sums states).
    pub const READOUT_RHO: u32 = 32;
}

/// The bits of a lane's `line_sel` that select a line register: `n_lines` rounded up to a power
/// of two, minus one (a LINE operand is taken modulo that; `HwProgram` emits only operands
/// below `n_lines`).
fn line_mask(n_lines: usize) -> usize {
    n_lines.next_power_of_two().max(1) - 1
}

/// Does the substrate top hold `prog`'s lanes and bus sides? Its read port's 8-bit source
/// index ([`read_source`]) numbers `5 + 4P + 2S` sources: at most 61 lanes with 2 bus sides.
pub fn check_size(prog: &HwProgram) -> Result<(), crate::Error> {
    let (p, s) = (prog.p, prog.sides.len());
    if 5 + 4 * p + 2 * s > 255 {
        return Err(crate::Error::Config(format!(
            "{p} lanes and {s} bus sides: the substrate top's read port numbers 5 + 4 P + 2 S \
             sources in 8 bits (at most 255; {} lanes with {s} sides)",
            (250 - 2 * s) / 4
        )));
    }
    Ok(())
}

/// The read port's source index of configuration address `a` (registered in the port's first
/// cycle, selected in the second): 0 none (reads 0), 1..=4 the control offsets 0..=3,
/// `5 + 2l (+1)` lane `l`'s saturation counters, `5 + 2P + 2s (+1)` side `s`'s, `5 + 2P + 2S + b`
/// the state of bank `b`, `5 + 3P + 2S + l` lane `l`'s readout accumulator.
fn read_source(p: usize, s: usize, bbits: usize, a: u64) -> usize {
    let reg = a >> 20;
    let bank = (a & ((1u64 << bbits) - 1)) as usize;
    let off = a & 0xF_FFFF;
    match reg {
        0 if off < 4 => 1 + off as usize,
        0 if (0x100..0x100 + 2 * p as u64).contains(&off) => 5 + (off - 0x100) as usize,
        0 if (0x200..0x200 + 2 * s as u64).contains(&off) => 5 + 2 * p + (off - 0x200) as usize,
        2 if bank < p => 5 + 2 * p + 2 * s + bank,
        7 if bank < p => 5 + 3 * p + 2 * s + bank,
        _ => 0,
    }
}

/// The whole substrate (docs/design.md §4).
///
/// **Computes** `n` Jacobi sweeps of `Engine::<Fixed>::sweep` per run: every [`BusSide`] forms
/// its `k` lines from the current state buffer while (more than one lane, with buses) or before
/// (one lane: a bus phase) every [`LangevinLane`] updates its units `l, l+P, ...` into the other
/// buffer (beside the sides a lane parks each unit after its row and resumes it for its lines,
/// which it reads only once they are latched; `docs/fixed-point.md` §4); the buffers swap at
/// the end of each sweep. The state is kept once: lane `l`'s units in bank `l`
/// (`2 * 2^qbits` words, two buffers), two memories written together by the lane and read
/// independently, so a bank serves two reads a cycle — `2P` block RAMs (docs/banked-state.md).
/// Reader `r` (lane `r`, or bus side `r`) reads through port `r mod 2`: the
/// port's address is the OR of the addresses its readers present for the bank (`rd_en`,
/// `rd_b1`, `rd_q` in their stage 1), and the reader selects the bank's port output by its
/// stage-2 `rd_bank`. The compiled streams hold the waits of
/// `thermo_sim::schedule::banked::Banked` (`Options::hardware`), so no port ever carries two
/// words in a cycle. Bus lines
/// live in registers read by the lanes through a multiplexer; a side's `k` lines arrive in rank
/// order and shift through its `k` registers (so rank `r` sits in register `r` once the lines
/// are latched, before the lanes' first read; the registers are not visible on the port). Lanes
/// `2k` and `2k + 1` draw their noise from [`NoisePairHw`] `k` (one inverse-CDF ROM per pair).
///
/// **Ports**: `clock`; `cfg`, the configuration/readout port ([`ConfigTarget`], protocol in
/// [`crate::rtl::port::ConfigPort`]: `addr` with the region in bits 23..20, see [`region`],
/// `wdata`, `we`, `rdata` the word at the address presented two cycles earlier, `running`).
/// Control offsets: 0 = control ([`ctrl_bits`]) / status (bit 0 running, bit 1 noise error),
/// 1 = sweeps done, 2 = cycles run, 3 = `n_sweeps` (write it at offset 1); `0x100 + 2l (+1)`
/// lane `l` accumulator (state) saturations, `0x200 + 2s (+1)` side `s` accumulator (line)
/// saturations. Memories are initialised with the compiled program and may be rewritten
/// through the port while idle.
///
/// **Latency**: a run of `n` sweeps takes exactly `n * Schedule::cycles_per_sweep` cycles
/// (each lane one instruction per cycle, waits included, from the sweep's first cycle beside
/// the bus sides or, on one lane, after a bus phase of the longest side's words, waits
/// included, `+ BUS_GAIN_LATENCY`; then `PIPELINE_DRAIN` cycles until the last lane's last
/// write, in the sweep's last cycle).
///
/// **Proof**: `hdl/tests/equivalence.rs` — rust-hdl simulation and Verilator equal the fixed
/// engine state for state, sweep for sweep, with equal saturation counts and cycle counts;
/// the readout accumulators and multi-sweep runs in
/// `hdl_readout_accumulators_and_back_to_back_runs`; negative controls in
/// `verify::negative`.
#[derive(LogicBlock)]
pub struct SubstrateTop {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The configuration/readout port.
    pub cfg: ConfigTarget,
    ctrl: SweepCtrl,
    lanes: Vec<LangevinLane>,
    noise: Vec<NoisePairHw>,
    sides: Vec<BusSide>,
    banks: Vec<Mem>,
    /// Beside the lanes: each bus side's issue map (`SideProgram::issue_map`).
    gaps: Vec<Mem>,
    lines: Vec<DFF<Bits<16>>>,
    nsw: DFF<Bits<32>>,
    rdo_en: DFF<Bit>,
    rdo_rho: DFF<Bit>,
    rsel: DFF<Bits<8>>,
    rdata: DFF<Bits<32>>,
    start_late: DFF<Bit>,
    _p: usize,
    _qbits: usize,
    _bbits: usize,
    _bus_phase: u64,
    _lane_len: Vec<u64>,
    _side_len: Vec<u64>,
    /// Cycles of a sweep.
    _cps: u64,
    /// The port's memory-region index bits ([`HwProgram::index_bits`]).
    _ib: usize,
    _line_base: Vec<usize>,
    _k: Vec<usize>,
    _rho: bool,
}

impl SubstrateTop {
    /// The top of a compiled substrate, with `rho` readout ([`ctrl_bits::READOUT_RHO`]).
    pub fn new(prog: &HwProgram) -> Self {
        SubstrateTop::with_rho(prog, true)
    }

    /// The top of a compiled substrate; `rho`: whether `READOUT_RHO` is built (without it the
    /// register that selects it is constant zero and synthesis drops the lanes' readout clamp).
    pub fn with_rho(prog: &HwProgram, rho: bool) -> Self {
        let p = prog.p;
        if let Err(e) = check_size(prog) {
            panic!("{e}");
        }
        SubstrateTop {
            clock: Default::default(),
            cfg: Default::default(),
            ctrl: SweepCtrl::new(prog.cycles_per_sweep),
            lanes: prog
                .lanes
                .iter()
                .map(|l| LangevinLane::new(&prog.dp, l))
                .collect(),
            // several lanes: the noise queues hold raw draws (the ROM output reaches only
            // registers; the ECP5's 50 MHz); one lane (the iCE40 build, at its logic-cell limit):
            // finished samples, 68 flip-flops fewer
            noise: (0..p.div_ceil(2))
                .map(|k| NoisePairHw::with_queue(2 * k + 1 < p, p > 1))
                .collect(),
            sides: prog
                .sides
                .iter()
                .map(|sd| BusSide::new(&prog.dp, sd))
                .collect(),
            banks: (0..READ_PORTS * p)
                .map(|_| Mem::new(prog.qbits + 1, 16, &[]).state())
                .collect(),
            // beside the lanes, each bus side issues where its issue map (one bit per cycle of
            // the sweep) says
            gaps: prog
                .sides
                .iter()
                .filter(|_| prog.beside)
                .map(|sd| {
                    let mut m = sd.issue_map.clone();
                    m.resize(prog.cycles_per_sweep as usize, 0);
                    Mem::exact(1, &m)
                })
                .collect(),
            lines: (0..prog.n_lines).map(|_| DFF::default()).collect(),
            nsw: Default::default(),
            rdo_en: Default::default(),
            rdo_rho: Default::default(),
            rsel: Default::default(),
            rdata: Default::default(),
            start_late: Default::default(),
            _rho: rho,
            _p: p,
            _qbits: prog.qbits,
            _bbits: prog.dp.bbits as usize,
            _bus_phase: prog.bus_phase,
            _lane_len: prog.lanes.iter().map(|l| l.instr.len() as u64).collect(),
            _side_len: prog.sides.iter().map(|sd| sd.words.len() as u64).collect(),
            _cps: prog.cycles_per_sweep,
            _ib: prog.index_bits(),
            _line_base: prog.sides.iter().map(|sd| sd.line_base).collect(),
            _k: prog.sides.iter().map(|sd| sd.k).collect(),
        }
    }

    /// The state word of unit with operand `opnd` in buffer `buf` (simulation only).
    pub fn peek_state(&self, opnd: usize, buf: bool) -> u16 {
        let bank = opnd & ((1 << self._bbits) - 1);
        let q = opnd >> self._bbits;
        self.banks[READ_PORTS * bank].peek((usize::from(buf) << self._qbits) | q) as u16
    }
}

/// Read ports of a state bank (`thermo_sim::schedule::banked::BANK_READ_PORTS`).
const READ_PORTS: usize = thermo_sim::schedule::banked::BANK_READ_PORTS;

fn b(v: u64) -> u64 {
    v
}

impl Logic for SubstrateTop {
    fn update(&mut self) {
        let p = self._p;
        let s = self.sides.len();
        let clk = self.clock.val();
        self.ctrl.clock.next = clk;
        for l in self.lanes.iter_mut() {
            l.clock.next = clk;
        }
        for n in self.noise.iter_mut() {
            n.clock.next = clk;
        }
        for sd in self.sides.iter_mut() {
            sd.clock.next = clk;
        }
        for m in self.banks.iter_mut() {
            m.clock.next = clk;
        }
        for m in self.gaps.iter_mut() {
            m.clock.next = clk;
        }
        for d in self.lines.iter_mut() {
            d.clock.next = clk;
        }
        self.nsw.clock.next = clk;
        self.rdo_en.clock.next = clk;
        self.rdo_rho.clock.next = clk;
        self.rsel.clock.next = clk;
        self.rdata.clock.next = clk;
        self.start_late.clock.next = clk;

        let running = self.ctrl.running.val();
        let c = self.ctrl.c.val().to_u64();
        let buf = self.ctrl.rbuf.val() as u64;
        let rewind = self.ctrl.rewind.val();
        let a = self.cfg.addr.val().to_u64();
        let reg = a >> 20;
        let we = self.cfg.we.val();
        let wd = self.cfg.wdata.val().to_u64();
        let ctrl_we = we && a == 0;
        let qmask = (1u64 << self._qbits) - 1;
        let bmask = (1u64 << self._bbits) - 1;
        let a_q = (a & 0xFFFF) >> self._bbits;
        let a_bank = a & bmask;
        let ib = self._ib;
        let sel = (a & 0xF_FFFF) >> ib;
        let idx = a & ((1 << ib) - 1);

        self.nsw.d.next = if we && a == 1 {
            wd.to_bits()
        } else {
            self.nsw.q.val()
        };
        self.rdo_en.d.next = if ctrl_we && wd & 8 != 0 {
            true
        } else if ctrl_we && wd & 16 != 0 {
            false
        } else {
            self.rdo_en.q.val()
        };
        self.rdo_rho.d.next = if !self._rho {
            false
        } else if ctrl_we && wd & 8 != 0 {
            wd & 32 != 0
        } else {
            self.rdo_rho.q.val()
        };
        // START with NOISE_LOAD: one cycle later
        self.start_late.d.next = ctrl_we && wd & 1 != 0 && wd & 2 != 0;
        self.ctrl.start.next = (ctrl_we && wd & 1 != 0 && wd & 2 == 0) || self.start_late.q.val();
        self.ctrl.n_sweeps.next = self.nsw.q.val();

        for l in 0..p {
            let len = self._lane_len[l];
            let bp = self._bus_phase;
            let bank = self.lanes[l].rd_bank.val().to_u64();
            let rd = if bank < p as u64 {
                self.banks[READ_PORTS * bank as usize + l % READ_PORTS]
                    .read_data
                    .val()
                    .to_u64()
                    & 0xFFFF
            } else {
                0
            };
            // the line operand modulo the line registers' power of two (compiled programs
            // never exceed it): a 2-bit select for 4 lines, not a 16-bit compare per line
            let ls = self.lanes[l].line_sel.val().to_u64() as usize & line_mask(self.lines.len());
            let lv = if ls < self.lines.len() {
                self.lines[ls].q.val().to_u64()
            } else {
                0
            };
            let lane = &mut self.lanes[l];
            lane.issue.next = running && c >= bp && c < bp + len;
            lane.rewind.next = rewind;
            lane.rd_data.next = b(rd).to_bits();
            lane.line_val.next = lv.to_bits();
            lane.cfg_addr.next = idx.to_bits();
            lane.cfg_data.next = wd.to_bits();
            lane.instr_we.next = we && reg == 3 && sel == l as u64;
            lane.bias_we.next = we && reg == 4 && sel == l as u64;
            lane.clear.next = ctrl_we && wd & 4 != 0;
            lane.rdo_en.next = self.rdo_en.q.val();
            lane.rdo_rho.next = self.rdo_rho.q.val();
            lane.rdo_sel.next = !running;
            lane.rdo_addr.next = a_q.to_bits();
            lane.rdo_we.next = we && reg == 7 && a_bank == l as u64;
        }
        // noise pairs: lanes 2k (a) and 2k + 1 (b)
        for k in 0..self.noise.len() {
            let (la, lb) = (2 * k, 2 * k + 1);
            let pop_a = self.lanes[la].npop.val();
            let pop_b = lb < p && self.lanes[lb].npop.val();
            let n = &mut self.noise[k];
            n.load.next = ctrl_we && wd & 2 != 0;
            n.seed_sel.next = (a & 3).to_bits();
            n.seed_data.next = wd.to_bits();
            n.seed_we_a.next = we && reg == 1 && ((a >> 8) & 0xFFF) == la as u64;
            n.seed_we_b.next = we && reg == 1 && ((a >> 8) & 0xFFF) == lb as u64 && lb < p;
            n.pop_a.next = pop_a;
            n.pop_b.next = pop_b;
            let (za, va, zb, vb) = (n.z_a.val(), n.valid_a.val(), n.z_b.val(), n.valid_b.val());
            self.lanes[la].nz.next = za;
            self.lanes[la].nvalid.next = va;
            if lb < p {
                self.lanes[lb].nz.next = zb;
                self.lanes[lb].nvalid.next = vb;
            }
        }
        for si in 0..s {
            let len = self._side_len[si];
            let bank = self.sides[si].rd_bank.val().to_u64();
            let rd = if bank < p as u64 {
                self.banks[READ_PORTS * bank as usize + si % READ_PORTS]
                    .read_data
                    .val()
                    .to_u64()
                    & 0xFFFF
            } else {
                0
            };
            let issue = if self.gaps.is_empty() {
                running && c < len
            } else {
                running && self.gaps[si].read_data.val().get_bit(0)
            };
            // the map's next bit: the next cycle's (0 after the sweep's last and while idle)
            if let Some(m) = self.gaps.get_mut(si) {
                let next = if running && c + 1 < self._cps {
                    c + 1
                } else {
                    0
                };
                m.read_address.next = next.to_bits();
                m.write_address.next = 0.into();
                m.write_data.next = 0.into();
                m.write_enable.next = false;
            }
            let sd = &mut self.sides[si];
            sd.issue.next = issue;
            sd.rewind.next = rewind;
            sd.rd_data.next = rd.to_bits();
            sd.cfg_addr.next = idx.to_bits();
            sd.cfg_data.next = wd.to_bits();
            sd.word_we.next = we && reg == 5 && sel == si as u64;
            sd.gain_we.next = we && reg == 6 && sel == si as u64;
            sd.clear.next = ctrl_we && wd & 4 != 0;
        }
        // state banks: bank `bk` is two memories written together by lane `bk` (or the port)
        // and read through port `r mod 2` by reader `r` (lanes and bus sides); a port's address is the OR of the addresses its readers present for the bank
        // (the schedule lets at most one word per port per cycle); while idle port 0 reads the
        // configuration port's address
        // each reader ORs its address into the one port it may use: one pass over the readers
        let mut port_q = vec![0u64; READ_PORTS * p];
        let lane_reads = self.lanes.iter().enumerate().map(|(l, ln)| {
            (
                l,
                ln.rd_en.val(),
                ln.rd_b1.val().to_u64(),
                ln.rd_q.val().to_u64(),
            )
        });
        let side_reads = self.sides.iter().enumerate().map(|(si, sd)| {
            (
                si,
                sd.rd_en.val(),
                sd.rd_b1.val().to_u64(),
                sd.rd_q.val().to_u64(),
            )
        });
        for (r, en, bk, q) in lane_reads.chain(side_reads) {
            if en && bk < p as u64 {
                port_q[READ_PORTS * bk as usize + r % READ_PORTS] |= q;
            }
        }
        for bk in 0..p {
            let (wa, wdat, wen) = if running {
                let ln = &self.lanes[bk];
                (
                    ((1 - buf) << self._qbits) | (ln.wr_q.val().to_u64() & qmask),
                    ln.wr_data.val().to_u64(),
                    ln.wr_en.val(),
                )
            } else {
                (
                    (buf << self._qbits) | (a_q & qmask),
                    wd & 0xFFFF,
                    we && reg == 2 && a_bank == bk as u64,
                )
            };
            for port in 0..READ_PORTS {
                let mut rq = port_q[READ_PORTS * bk + port];
                if port == 0 && !running {
                    rq = a_q;
                }
                let m = &mut self.banks[READ_PORTS * bk + port];
                m.read_address.next = ((buf << self._qbits) | (rq & qmask)).to_bits();
                m.write_address.next = wa.to_bits();
                m.write_data.next = wdat.to_bits();
                m.write_enable.next = wen;
            }
        }
        // bus lines
        for li in 0..self.lines.len() {
            let q = self.lines[li].q.val();
            self.lines[li].d.next = q;
        }
        // a side delivers its lines in rank order, k per sweep: they shift in from the top, so
        // once the lines are latched line `base + r` holds rank r (only the last register takes the
        // side's output, the others copy their neighbour: no rank decode, no fan-out of the
        // line value)
        for si in 0..s {
            if self.sides[si].line_we.val() {
                let (base, k) = (self._line_base[si], self._k[si]);
                for r in 0..k.saturating_sub(1) {
                    self.lines[base + r].d.next = self.lines[base + r + 1].q.val();
                }
                if k > 0 {
                    self.lines[base + k - 1].d.next = self.sides[si].line_val.val();
                }
            }
        }
        // read port: the first cycle decodes the address into a source index (`read_source`;
        // 8 bits are registered, not the 24-bit address), the second selects the source
        self.rsel.d.next = (read_source(p, s, self._bbits, a) as u64).to_bits();
        let ri = self.rsel.q.val().to_u64() as usize;
        let (c_side, c_repl, c_rdo) = (5 + 2 * p, 5 + 2 * p + 2 * s, 5 + 3 * p + 2 * s);
        let nerr = self.lanes.iter().any(|l| l.noise_err.val());
        let rv: u64 = match ri {
            1 => running as u64 | ((nerr as u64) << 1),
            2 => self.ctrl.sweeps.val().to_u64(),
            3 => self.ctrl.cycles.val().to_u64(),
            4 => self.nsw.q.val().to_u64(),
            i if (5..c_side).contains(&i) && (i - 5) % 2 == 0 => {
                self.lanes[(i - 5) / 2].cnt_acc.val().to_u64()
            }
            i if (5..c_side).contains(&i) => self.lanes[(i - 5) / 2].cnt_state.val().to_u64(),
            i if (c_side..c_repl).contains(&i) && (i - c_side) % 2 == 0 => {
                self.sides[(i - c_side) / 2].cnt_acc.val().to_u64()
            }
            i if (c_side..c_repl).contains(&i) => {
                self.sides[(i - c_side) / 2].cnt_bus.val().to_u64()
            }
            i if (c_repl..c_rdo).contains(&i) => {
                self.banks[READ_PORTS * (i - c_repl)]
                    .read_data
                    .val()
                    .to_u64()
                    & 0xFFFF
            }
            i if (c_rdo..c_rdo + p).contains(&i) => self.lanes[i - c_rdo].rdo_data.val().to_u64(),
            _ => 0,
        };
        self.rdata.d.next = rv.to_bits();
        self.cfg.rdata.next = self.rdata.q.val();
        self.cfg.running.next = running;
    }

    fn connect(&mut self) {
        self.cfg.rdata.connect();
        self.cfg.running.connect();
        self.ctrl.clock.connect();
        self.ctrl.start.connect();
        self.ctrl.n_sweeps.connect();
        for l in self.lanes.iter_mut() {
            l.clock.connect();
            l.issue.connect();
            l.rewind.connect();
            l.rd_data.connect();
            l.line_val.connect();
            l.cfg_addr.connect();
            l.cfg_data.connect();
            l.instr_we.connect();
            l.bias_we.connect();
            l.nz.connect();
            l.nvalid.connect();
            l.clear.connect();
            l.rdo_en.connect();
            l.rdo_rho.connect();
            l.rdo_sel.connect();
            l.rdo_addr.connect();
            l.rdo_we.connect();
        }
        for n in self.noise.iter_mut() {
            n.clock.connect();
            n.load.connect();
            n.seed_sel.connect();
            n.seed_data.connect();
            n.seed_we_a.connect();
            n.seed_we_b.connect();
            n.pop_a.connect();
            n.pop_b.connect();
        }
        for sd in self.sides.iter_mut() {
            sd.clock.connect();
            sd.issue.connect();
            sd.rewind.connect();
            sd.rd_data.connect();
            sd.cfg_addr.connect();
            sd.cfg_data.connect();
            sd.word_we.connect();
            sd.gain_we.connect();
            sd.clear.connect();
        }
        for m in self.banks.iter_mut().chain(self.gaps.iter_mut()) {
            m.clock.connect();
            m.read_address.connect();
            m.write_address.connect();
            m.write_data.connect();
            m.write_enable.connect();
        }
        for d in self.lines.iter_mut() {
            d.clock.connect();
            d.d.connect();
        }
        for d in [
            &mut self.nsw.clock,
            &mut self.rsel.clock,
            &mut self.rdata.clock,
        ] {
            d.connect();
        }
        self.rdo_en.clock.connect();
        self.rdo_rho.clock.connect();
        self.rdo_rho.d.connect();
        self.start_late.clock.connect();
        self.start_late.d.connect();
        self.nsw.d.connect();
        self.rdo_en.d.connect();
        self.rsel.d.connect();
        self.rdata.d.connect();
    }

    fn hdl(&self) -> Verilog {
        Verilog::Custom(self.glue_verilog())
    }
}

impl SubstrateTop {
    /// The top's glue logic in Verilog: the same combinational decode and multiplexing as
    /// `update`, statement for statement.
    fn glue_verilog(&self) -> String {
        let p = self._p;
        let s = self.sides.len();
        let qb = self._qbits;
        let bb = self._bbits;
        let nl = self.lines.len();
        let mut v = String::new();
        let w = &mut v;
        writeln!(w, "wire running_w = ctrl$running;").unwrap();
        writeln!(w, "wire [31:0] c_w = ctrl$c;").unwrap();
        writeln!(w, "wire buf_w = ctrl$rbuf;").unwrap();
        writeln!(w, "wire [3:0] reg_w = cfg$addr[23:20];").unwrap();
        writeln!(w, "wire ctrl_we = cfg$we && (cfg$addr == 24'd0);").unwrap();
        writeln!(w, "wire [15:0] a_q = cfg$addr[15:0] >> {bb};").unwrap();
        writeln!(
            w,
            "wire [15:0] a_bank = cfg$addr[15:0] & 16'd{};",
            (1u32 << bb) - 1
        )
        .unwrap();
        let ib = self._ib;
        let mb = 20 - ib;
        writeln!(w, "wire [{}:0] sel_w = cfg$addr[19:{ib}];", mb - 1).unwrap();
        let idx_w = if ib == 16 {
            "cfg$addr[15:0]".to_string()
        } else {
            format!("{{{}'d0, cfg$addr[{}:0]}}", 16 - ib, ib - 1)
        };
        writeln!(w, "always @(*) begin").unwrap();
        // clocks
        writeln!(w, "  ctrl$clock = clock;").unwrap();
        for l in 0..p {
            writeln!(w, "  lanes${l}$clock = clock;").unwrap();
        }
        for k in 0..self.noise.len() {
            writeln!(w, "  noise${k}$clock = clock;").unwrap();
        }
        for si in 0..s {
            writeln!(w, "  sides${si}$clock = clock;").unwrap();
        }
        for m in 0..self.banks.len() {
            writeln!(w, "  banks${m}$clock = clock;").unwrap();
        }
        for m in 0..self.gaps.len() {
            writeln!(w, "  gaps${m}$clock = clock;").unwrap();
        }
        for li in 0..nl {
            writeln!(w, "  lines${li}$clock = clock;").unwrap();
        }
        for d in ["nsw", "rdo_en", "rdo_rho", "rsel", "rdata", "start_late"] {
            writeln!(w, "  {d}$clock = clock;").unwrap();
        }
        writeln!(
            w,
            "  nsw$d = (cfg$we && cfg$addr == 24'd1) ? cfg$wdata : nsw$q;
  rdo_en$d = (ctrl_we && cfg$wdata[3]) ? 1'b1 : ((ctrl_we && cfg$wdata[4]) ? 1'b0 : rdo_en$q);
  rdo_rho$d = {rho_d};
  start_late$d = ctrl_we && cfg$wdata[0] && cfg$wdata[1];
  ctrl$start = (ctrl_we && cfg$wdata[0] && !cfg$wdata[1]) || start_late$q;
  ctrl$n_sweeps = nsw$q;",
            rho_d = if self._rho {
                "(ctrl_we && cfg$wdata[3]) ? cfg$wdata[5] : rdo_rho$q"
            } else {
                "1'b0"
            }
        )
        .unwrap();
        for l in 0..p {
            let len = self._lane_len[l];
            let bp = self._bus_phase;
            writeln!(w, "  case (lanes${l}$rd_bank)").unwrap();
            for bk in 0..p {
                writeln!(
                    w,
                    "    16'd{bk}: lanes${l}$rd_data = banks${}$read_data[15:0];",
                    READ_PORTS * bk + l % READ_PORTS
                )
                .unwrap();
            }
            writeln!(w, "    default: lanes${l}$rd_data = 16'd0;\n  endcase").unwrap();
            writeln!(w, "  case (lanes${l}$line_sel & 16'd{})", line_mask(nl)).unwrap();
            for li in 0..nl {
                writeln!(w, "    16'd{li}: lanes${l}$line_val = lines${li}$q;").unwrap();
            }
            writeln!(w, "    default: lanes${l}$line_val = 16'd0;\n  endcase").unwrap();
            writeln!(
                w,
                "  lanes${l}$issue = running_w && (c_w >= 32'd{bp}) && (c_w < 32'd{end});
  lanes${l}$rewind = ctrl$rewind;
  lanes${l}$cfg_addr = {idx_w};
  lanes${l}$cfg_data = cfg$wdata;
  lanes${l}$instr_we = cfg$we && (reg_w == 4'd3) && (sel_w == {mb}'d{l});
  lanes${l}$bias_we = cfg$we && (reg_w == 4'd4) && (sel_w == {mb}'d{l});
  lanes${l}$clear = ctrl_we && cfg$wdata[2];
  lanes${l}$rdo_en = rdo_en$q;
  lanes${l}$rdo_rho = rdo_rho$q;
  lanes${l}$rdo_sel = !running_w;
  lanes${l}$rdo_addr = a_q;
  lanes${l}$rdo_we = cfg$we && (reg_w == 4'd7) && (a_bank == 16'd{l});",
                end = bp + len
            )
            .unwrap();
        }
        for k in 0..self.noise.len() {
            let (la, lb) = (2 * k, 2 * k + 1);
            writeln!(
                w,
                "  noise${k}$load = ctrl_we && cfg$wdata[1];
  noise${k}$seed_sel = cfg$addr[1:0];
  noise${k}$seed_data = cfg$wdata;
  noise${k}$seed_we_a = cfg$we && (reg_w == 4'd1) && (cfg$addr[19:8] == 12'd{la});
  noise${k}$pop_a = lanes${la}$npop;
  lanes${la}$nz = noise${k}$z_a;
  lanes${la}$nvalid = noise${k}$valid_a;"
            )
            .unwrap();
            if lb < p {
                writeln!(
                    w,
                    "  noise${k}$seed_we_b = cfg$we && (reg_w == 4'd1) && (cfg$addr[19:8] == 12'd{lb});
  noise${k}$pop_b = lanes${lb}$npop;
  lanes${lb}$nz = noise${k}$z_b;
  lanes${lb}$nvalid = noise${k}$valid_b;"
                )
                .unwrap();
            } else {
                writeln!(
                    w,
                    "  noise${k}$seed_we_b = 1'b0;\n  noise${k}$pop_b = 1'b0;"
                )
                .unwrap();
            }
        }
        for si in 0..s {
            let len = self._side_len[si];
            writeln!(w, "  case (sides${si}$rd_bank)").unwrap();
            for bk in 0..p {
                writeln!(
                    w,
                    "    16'd{bk}: sides${si}$rd_data = banks${}$read_data[15:0];",
                    READ_PORTS * bk + si % READ_PORTS
                )
                .unwrap();
            }
            writeln!(w, "    default: sides${si}$rd_data = 16'd0;\n  endcase").unwrap();
            let issue = if self.gaps.is_empty() {
                format!("running_w && (c_w < 32'd{len})")
            } else {
                let last = self._cps - 1;
                writeln!(
                    w,
                    "  gaps${si}$read_address = (running_w && (c_w != 32'd{last})) ? (c_w[15:0] + 16'd1) : 16'd0;
  gaps${si}$write_address = 16'd0;
  gaps${si}$write_data = 32'd0;
  gaps${si}$write_enable = 1'b0;"
                )
                .unwrap();
                format!("running_w && gaps${si}$read_data[0]")
            };
            writeln!(
                w,
                "  sides${si}$issue = {issue};
  sides${si}$rewind = ctrl$rewind;
  sides${si}$cfg_addr = {idx_w};
  sides${si}$cfg_data = cfg$wdata;
  sides${si}$word_we = cfg$we && (reg_w == 4'd5) && (sel_w == {mb}'d{si});
  sides${si}$gain_we = cfg$we && (reg_w == 4'd6) && (sel_w == {mb}'d{si});
  sides${si}$clear = ctrl_we && cfg$wdata[2];"
            )
            .unwrap();
        }
        let qmask = (1u64 << qb) - 1;
        for bk in 0..p {
            for port in 0..READ_PORTS {
                let mut terms: Vec<String> = (port..p)
                    .step_by(READ_PORTS)
                    .map(|l| {
                        format!("((lanes${l}$rd_en && lanes${l}$rd_b1 == 16'd{bk}) ? lanes${l}$rd_q : 16'd0)")
                    })
                    .chain((port..s).step_by(READ_PORTS).map(|si| {
                        format!("((sides${si}$rd_en && sides${si}$rd_b1 == 16'd{bk}) ? sides${si}$rd_q : 16'd0)")
                    }))
                    .collect();
                if terms.is_empty() {
                    terms.push("16'd0".into());
                }
                let or = terms.join(" | ");
                let rq = if port == 0 {
                    format!("(running_w ? ({or}) : a_q)")
                } else {
                    format!("({or})")
                };
                let m = READ_PORTS * bk + port;
                writeln!(
                    w,
                    "  banks${m}$read_address = ({{15'd0, buf_w}} << {qb}) | ({rq} & 16'd{qmask});
  if (running_w) begin
    banks${m}$write_address = ({{15'd0, !buf_w}} << {qb}) | (lanes${bk}$wr_q & 16'd{qmask});
    banks${m}$write_data = {{16'd0, lanes${bk}$wr_data}};
    banks${m}$write_enable = lanes${bk}$wr_en;
  end else begin
    banks${m}$write_address = ({{15'd0, buf_w}} << {qb}) | (a_q & 16'd{qmask});
    banks${m}$write_data = {{16'd0, cfg$wdata[15:0]}};
    banks${m}$write_enable = cfg$we && (reg_w == 4'd2) && (a_bank == 16'd{bk});
  end"
                )
                .unwrap();
            }
        }
        for li in 0..nl {
            writeln!(w, "  lines${li}$d = lines${li}$q;").unwrap();
        }
        for si in 0..s {
            let (base, k) = (self._line_base[si], self._k[si]);
            if k == 0 {
                continue;
            }
            writeln!(w, "  if (sides${si}$line_we) begin").unwrap();
            for r in 0..k - 1 {
                writeln!(w, "    lines${}$d = lines${}$q;", base + r, base + r + 1).unwrap();
            }
            writeln!(
                w,
                "    lines${}$d = sides${si}$line_val;\n  end",
                base + k - 1
            )
            .unwrap();
        }
        // read port
        // the address's source index (`read_source`), registered; then the source
        writeln!(w, "  rsel$d = 8'd0;\n  rdata$d = 32'd0;").unwrap();
        let (c_side, c_repl, c_rdo) = (5 + 2 * p, 5 + 2 * p + 2 * s, 5 + 3 * p + 2 * s);
        writeln!(
            w,
            "  if (cfg$addr[23:20] == 4'd0) begin\n    case (cfg$addr[19:0])"
        )
        .unwrap();
        for off in 0..4 {
            writeln!(w, "      20'd{off}: rsel$d = 8'd{};", 1 + off).unwrap();
        }
        for l in 0..p {
            writeln!(
                w,
                "      20'd{}: rsel$d = 8'd{};\n      20'd{}: rsel$d = 8'd{};",
                0x100 + 2 * l,
                5 + 2 * l,
                0x101 + 2 * l,
                6 + 2 * l
            )
            .unwrap();
        }
        for si in 0..s {
            writeln!(
                w,
                "      20'd{}: rsel$d = 8'd{};\n      20'd{}: rsel$d = 8'd{};",
                0x200 + 2 * si,
                c_side + 2 * si,
                0x201 + 2 * si,
                c_side + 2 * si + 1
            )
            .unwrap();
        }
        writeln!(w, "      default: rsel$d = 8'd0;\n    endcase").unwrap();
        for (region, first) in [(2, c_repl), (7, c_rdo)] {
            writeln!(
                w,
                "  end else if (cfg$addr[23:20] == 4'd{region}) begin\n    case (cfg$addr[15:0] & 16'd{})",
                (1u32 << bb) - 1
            )
            .unwrap();
            for bk in 0..p {
                writeln!(w, "      16'd{bk}: rsel$d = 8'd{};", first + bk).unwrap();
            }
            writeln!(w, "      default: rsel$d = 8'd0;\n    endcase").unwrap();
        }
        writeln!(w, "  end").unwrap();
        let nerr = if p == 0 {
            "1'b0".to_string()
        } else {
            (0..p)
                .map(|l| format!("lanes${l}$noise_err"))
                .collect::<Vec<_>>()
                .join(" | ")
        };
        writeln!(
            w,
            "  case (rsel$q)
    8'd1: rdata$d = {{30'd0, ({nerr}), running_w}};
    8'd2: rdata$d = ctrl$sweeps;
    8'd3: rdata$d = ctrl$cycles;
    8'd4: rdata$d = nsw$q;"
        )
        .unwrap();
        for l in 0..p {
            writeln!(
                w,
                "    8'd{}: rdata$d = lanes${l}$cnt_acc;\n    8'd{}: rdata$d = lanes${l}$cnt_state;",
                5 + 2 * l,
                6 + 2 * l
            )
            .unwrap();
        }
        for si in 0..s {
            writeln!(
                w,
                "    8'd{}: rdata$d = sides${si}$cnt_acc;\n    8'd{}: rdata$d = sides${si}$cnt_bus;",
                c_side + 2 * si,
                c_side + 2 * si + 1
            )
            .unwrap();
        }
        for bk in 0..p {
            writeln!(
                w,
                "    8'd{}: rdata$d = {{16'd0, banks${}$read_data[15:0]}};",
                c_repl + bk,
                READ_PORTS * bk
            )
            .unwrap();
        }
        for l in 0..p {
            writeln!(w, "    8'd{}: rdata$d = lanes${l}$rdo_data;", c_rdo + l).unwrap();
        }
        writeln!(w, "    default: rdata$d = 32'd0;\n  endcase").unwrap();
        writeln!(w, "  cfg$rdata = rdata$q;\n  cfg$running = running_w;\nend").unwrap();
        v
    }
}

/// Verilog of the substrate top for `s` (rust-hdl checks first).
pub fn substrate_verilog(s: &thermo_sim::Substrate) -> Result<String, crate::Error> {
    let prog = crate::rtl::program::HwProgram::new(s)?;
    let mut top = SubstrateTop::new(&prog);
    top.connect_all();
    crate::rtl::block_verilog(&top)
}
