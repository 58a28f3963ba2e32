//! The Langevin lane: one multiply-accumulate datapath with its instruction, bias and readout
//! memories (its noise comes from a `NoisePairHw` of the substrate top).

use crate::rtl::arith::{Mul16s, Rescale, SatAdd, MAX_CLASSES};
use crate::rtl::mem::Mem;
use crate::rtl::program::{clog2, Datapath, LaneProgram};
use rust_hdl::prelude::*;

/// One Langevin lane (docs/fixed-point.md §3, step 3; docs/design.md §4).
///
/// **Computes**, for each of its units in turn, exactly `Program::<Fixed>::update_units`:
/// `acc = d_i x_i`; if the gate of `x_i` is open, `acc = sat32(acc + c_ij rho(x_j))` over the
/// row, `acc = sat32(acc + align(w_ri L_r))` over its bus lines and `acc = sat32(acc + h_i)`;
/// then `acc = sat32(acc + align(gn z_i))` with `z_i` the head sample of its noise lane (ports
/// `nz`, `nvalid`, `npop`; a lane of a `crate::rtl::noise::NoisePairHw`; `z_i` comes in
/// sign-magnitude form and the product is `|z_i| (+-gn)`, the same integer), and
/// `x_i' = sat_state(align(acc, fa, state.frac))`. Saturations are counted (`cnt_acc`:
/// accumulator additions, `cnt_state`: final clamps). The unit program is a stream of
/// instructions `op | operand | coef` (see `program::Op`) read from the lane's instruction
/// memory; biases come from the bias memory indexed by the lane-local unit counter.
///
/// **Ports**: `issue` (fetch the next instruction this cycle), `rewind` (rewind the
/// program, unit and write counters); state read `rd_q` (lane-local address, stage 1) / `rd_bank`
/// (bank select, stage 2) / `rd_data` (the bank's word, stage 2), and for the crossbar `rd_en`
/// (a valid self term or coupling) / `rd_b1` (the bank, stage 1); bus line read `line_sel` /
/// `line_val` (stage 2); write back `wr_en`, `wr_q`, `wr_data` (F3, from registers); configuration
/// writes `cfg_addr`, `cfg_data`, `instr_we`, `bias_we`; noise `nz`, `nvalid` in, `npop` out
/// (pulsed in stage 2 of each finish instruction); readout accumulation `rdo_en` (each written
/// state, or with `rdo_rho` its activation `rho`, is added to the unit's readout word in F3),
/// port access while idle `rdo_sel`/`rdo_addr`/`rdo_data`/`rdo_we`; counters `cnt_acc`,
/// `cnt_state` (cleared by `clear`), sticky `noise_err` (a sample was needed but the noise lane
/// was empty — never happens in a correct schedule).
///
/// **Module classes** (state shifts, `docs/fixed-point.md` §1): the operand's class (how many of
/// the constants `bd1..bd7` its code reaches) picks the clamp codes `lo*`/`hi*` of stage 3; the
/// class of a unit's SELF operand stays in `ucls` for its LINE terms (the accumulate's second
/// alignment) and goes down F1..F3 (`fc1..fc3`) for its noise alignment and its `rho` readout.
/// Without shifts every class holds the same constants.
///
/// **Two passes** (`Datapath::beside`: more than one lane, with buses; the bus sides then run
/// beside the lanes, `thermo_sim::schedule::banked::BusMode::Beside`): a SELF or COUPLING with
/// the pass flag (`program::PASS_FLAG`, operand bit 13) is its unit's last first-pass MAC, and
/// its accumulate result and the unit's gate are written to the park memories (`park`,
/// `pgate`, at the park counter `wc`) in the stage after its accumulate; a LINE or FINISH with
/// the flag resumes the next parked unit (the resume counter `rc`): its stage 2 reads the park
/// memories, its stage 3 restores the gate and the unit's class (from `rc` and the lane-local
/// class bounds `rb1..rb7`), its stage 4 adds to the parked accumulator instead of the running
/// one. The schedule resumes a unit at least `PARK_LATENCY` cycles after it parked it, so the
/// read never meets its write. Without the flag (one lane) the constant `bsd` folds all of it
/// away.
///
/// **Latency**: an instruction issued in cycle `t` (stage 0, instruction fetch) decodes and
/// addresses its operand in `t+1`, registers the operand in `t+2`, applies the activation and
/// multiplies in `t+3` and accumulates in `t+4`. A finish instruction's stage 4 is F0 (bias,
/// through the accumulate adder); its F1 (`t+5`: noise), F2 (`t+6`: rescale and saturate into
/// the state format) and F3 (`t+7`: write back and readout accumulation) run while the lane
/// already issues the next unit's instructions (a Jacobi sweep writes the other buffer, so there
/// is no hazard; units take at least 2 cycles, so each F stage holds at most one unit). So the
/// last write of a sweep lands 7 cycles after the last issue, `PIPELINE_DRAIN = 7` in
/// `thermo_sim::schedule`, and one instruction issues per cycle: a unit costs `1 + nnz + ranks
/// + 1` cycles, as the schedule counts. With `Datapath::fetch_reg` (more than one lane) the
/// fetched word is registered first and every later stage is one cycle later
/// (`thermo_sim::schedule::banked::crossbar_latency`).
///
/// **Proof**: `lane::tests::lane_matches_fixed_arith` (random operands including each
/// format's extremes, several format sets, with and without clamp activation) and the
/// substrate equivalence tests `hdl/tests/equivalence.rs`.
#[derive(LogicBlock)]
pub struct LangevinLane {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Issue the instruction at the program counter this cycle.
    pub issue: Signal<In, Bit>,
    /// Rewind the program counter and the unit counter.
    pub rewind: Signal<In, Bit>,
    /// State word read for the instruction in stage 2.
    pub rd_data: Signal<In, Bits<16>>,
    /// Bus line value for the instruction in stage 2.
    pub line_val: Signal<In, Bits<16>>,
    /// Configuration address (lane-local memory index).
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<32>>,
    /// Write `cfg_data` into the instruction memory at `cfg_addr`.
    pub instr_we: Signal<In, Bit>,
    /// Write `cfg_data` into the bias memory at `cfg_addr`.
    pub bias_we: Signal<In, Bit>,
    /// Head sample of the lane's noise stream (Q3.12, sign-magnitude: bit 15 the sign).
    pub nz: Signal<In, Bits<16>>,
    /// `nz` holds a sample.
    pub nvalid: Signal<In, Bit>,
    /// Clear the saturation counters and `noise_err`.
    pub clear: Signal<In, Bit>,
    /// Accumulate written states into the readout memory.
    pub rdo_en: Signal<In, Bit>,
    /// Accumulate `rho` of each written state (the activation's clamp) instead of the state.
    pub rdo_rho: Signal<In, Bit>,
    /// Readout memory read address comes from `rdo_addr` (idle) instead of the unit counter.
    pub rdo_sel: Signal<In, Bit>,
    /// Readout memory read/write address when `rdo_sel`.
    pub rdo_addr: Signal<In, Bits<16>>,
    /// Write `cfg_data` into the readout memory at `rdo_addr` (when `rdo_sel`).
    pub rdo_we: Signal<In, Bit>,
    /// Readout memory word (one cycle after the address).
    pub rdo_data: Signal<Out, Bits<32>>,
    /// Lane-local state address of the operand (stage 1).
    pub rd_q: Signal<Out, Bits<16>>,
    /// The instruction in stage 1 reads a state (a valid self term or coupling): the crossbar
    /// routes `rd_q` to bank `rd_b1`.
    pub rd_en: Signal<Out, Bit>,
    /// Bank of the operand (stage 1).
    pub rd_b1: Signal<Out, Bits<16>>,
    /// Bank (writer lane) of the operand (stage 2).
    pub rd_bank: Signal<Out, Bits<16>>,
    /// Line index of the operand (stage 2).
    pub line_sel: Signal<Out, Bits<16>>,
    /// Write back a new state.
    pub wr_en: Signal<Out, Bit>,
    /// Lane-local address of the new state.
    pub wr_q: Signal<Out, Bits<16>>,
    /// The new state.
    pub wr_data: Signal<Out, Bits<16>>,
    /// Saturating accumulator additions.
    pub cnt_acc: Signal<Out, Bits<32>>,
    /// Saturated state write-backs.
    pub cnt_state: Signal<Out, Bits<32>>,
    /// A sample was needed while the noise lane was empty (sticky).
    pub noise_err: Signal<Out, Bit>,
    /// Consume the noise sample.
    pub npop: Signal<Out, Bit>,
    // memories and sub-blocks
    instr: Mem,
    bias: Mem,
    rdo: Mem,
    /// Park memories ([`crate::rtl::program::PASS_FLAG`]): each unit's accumulator after its
    /// first pass, and its gate.
    park: Mem,
    pgate: Mem,
    mul: Mul16s,
    sa_mac: SatAdd,
    sa_noise: SatAdd,
    fin: Rescale,
    // registers
    pc: DFF<Bits<16>>,
    v1: DFF<Bit>,
    /// The fetched instruction and its valid bit, registered (`Datapath::fetch_reg`).
    insq: DFF<Bits<32>>,
    v1q: DFF<Bit>,
    op2: DFF<Bits<2>>,
    coef2: DFF<Bits<16>>,
    opnd2: DFF<Bits<16>>,
    v2: DFF<Bit>,
    a3: DFF<Bits<16>>,
    b3: DFF<Bits<16>>,
    op3: DFF<Bits<2>>,
    v3: DFF<Bit>,
    p4: DFF<Bits<32>>,
    op4: DFF<Bits<2>>,
    v4: DFF<Bit>,
    acc: DFF<Bits<32>>,
    gate: DFF<Bit>,
    uc: DFF<Bits<16>>,
    np: DFF<Bits<32>>,
    f1: DFF<Bit>,
    fnz: DFF<Bits<32>>,
    f2: DFF<Bit>,
    wd: DFF<Bits<16>>,
    wsat: DFF<Bit>,
    f3: DFF<Bit>,
    uw: DFF<Bits<16>>,
    sat_a: DFF<Bit>,
    sat_n: DFF<Bit>,
    nacc: DFF<Bits<32>>,
    nstate: DFF<Bits<32>>,
    nerr: DFF<Bit>,
    /// Module class of the operand (stage 3), of the unit (from its SELF term's stage 3), and
    /// of the finishing unit in F1, F2, F3 (`docs/fixed-point.md` §1; always 0 without state
    /// shifts).
    cls3: DFF<Bits<4>>,
    ucls: DFF<Bits<4>>,
    fc1: DFF<Bits<4>>,
    fc2: DFF<Bits<4>>,
    fc3: DFF<Bits<4>>,
    /// The pass flag in stages 2, 3, 4; the park write pending (stage 5) and its gate; the park
    /// write and resume counters; the resumed unit's class (stage 3) and accumulator (stage 4).
    fl2: DFF<Bit>,
    fl3: DFF<Bit>,
    fl4: DFF<Bit>,
    pk5: DFF<Bit>,
    pkg5: DFF<Bit>,
    wc: DFF<Bits<16>>,
    rc: DFF<Bits<16>>,
    rcls3: DFF<Bits<4>>,
    pacc: DFF<Bits<32>>,
    // constants
    /// The bus sides run beside the lanes (the pass flags are live).
    bsd: Constant<Bit>,
    /// Class bounds in the lane's own unit count (`0xFFFF`, never reached, for unused classes).
    rb1: Constant<Bits<16>>,
    rb2: Constant<Bits<16>>,
    rb3: Constant<Bits<16>>,
    rb4: Constant<Bits<16>>,
    rb5: Constant<Bits<16>>,
    rb6: Constant<Bits<16>>,
    rb7: Constant<Bits<16>>,
    bsh: Constant<Bits<16>>,
    freg: Constant<Bit>,
    pmask: Constant<Bits<16>>,
    umask: Constant<Bits<16>>,
    bmask: Constant<Bits<16>>,
    /// Class bounds (operand codes; `0xFFFF`, never reached, for unused classes).
    bd1: Constant<Bits<16>>,
    bd2: Constant<Bits<16>>,
    bd3: Constant<Bits<16>>,
    bd4: Constant<Bits<16>>,
    bd5: Constant<Bits<16>>,
    bd6: Constant<Bits<16>>,
    bd7: Constant<Bits<16>>,
    /// Clamp codes per class.
    lo0: Constant<Bits<16>>,
    lo1: Constant<Bits<16>>,
    lo2: Constant<Bits<16>>,
    lo3: Constant<Bits<16>>,
    lo4: Constant<Bits<16>>,
    lo5: Constant<Bits<16>>,
    lo6: Constant<Bits<16>>,
    lo7: Constant<Bits<16>>,
    hi0: Constant<Bits<16>>,
    hi1: Constant<Bits<16>>,
    hi2: Constant<Bits<16>>,
    hi3: Constant<Bits<16>>,
    hi4: Constant<Bits<16>>,
    hi5: Constant<Bits<16>>,
    hi6: Constant<Bits<16>>,
    hi7: Constant<Bits<16>>,
    sx32: Constant<Bits<32>>,
    gn: Constant<Bits<16>>,
    ngn: Constant<Bits<16>>,
    // combinational
    ocls: Signal<Local, Bits<4>>,
    rcls: Signal<Local, Bits<4>>,
    lo: Signal<Local, Bits<16>>,
    hi: Signal<Local, Bits<16>>,
    lob: Signal<Local, Bits<16>>,
    hib: Signal<Local, Bits<16>>,
    rlo: Signal<Local, Bits<16>>,
    rhi: Signal<Local, Bits<16>>,
    rlo32: Signal<Local, Bits<32>>,
    rhi32: Signal<Local, Bits<32>>,
    ins: Signal<Local, Bits<32>>,
    vins: Signal<Local, Bit>,
    xb: Signal<Local, Bits<16>>,
    rho: Signal<Local, Bits<16>>,
    in_range: Signal<Local, Bit>,
    below: Signal<Local, Bit>,
    above: Signal<Local, Bit>,
    inc: Signal<Local, Bits<2>>,
    fin_now: Signal<Local, Bit>,
    fyb: Signal<Local, Bits<16>>,
    rdo_x: Signal<Local, Bits<32>>,
}

impl LangevinLane {
    /// A lane with datapath constants `dp` and memories holding `prog`.
    pub fn new(dp: &Datapath, prog: &LaneProgram) -> Self {
        let f = dp.formats;
        let ib = clog2(prog.instr.len().max(2));
        let ub = clog2(prog.units.len().max(2));
        let b16 = |v: i64| -> Bits<16> { ((v as u16) as u64).to_bits() };
        assert!(dp.classes.len() <= MAX_CLASSES && dp.class_bounds.len() + 1 == dp.classes.len());
        // class c's clamp codes (the last class's for unused ones) and bound c (unreachable
        // beyond the last)
        let cl = |c: usize| dp.classes[c.min(dp.classes.len() - 1)].clamp;
        let lo_c = |c: usize| Constant::new(b16(cl(c).0 as i64));
        let hi_c = |c: usize| Constant::new(b16(cl(c).1 as i64));
        let bd = |c: usize| {
            Constant::new(
                ((dp.class_bounds.get(c - 1).copied().unwrap_or(0xFFFF)) as u64).to_bits(),
            )
        };
        let shifts = dp.class_shifts();
        // class c's first unit among this lane's units, counted in the lane
        let rb = |c: usize| {
            let n = dp
                .class_first
                .get(c - 1)
                .map(|&first| prog.units.iter().filter(|&&i| i < first).count() as u64)
                .unwrap_or(0xFFFF);
            Constant::new(n.to_bits())
        };
        // the noise product is |z| (+-gn): -gn must be a 16-bit code (the amplitude is >= 0)
        assert!(
            dp.noise_amp > i16::MIN,
            "noise amplitude code {} has no 16-bit negation",
            dp.noise_amp
        );
        LangevinLane {
            clock: Default::default(),
            issue: Default::default(),
            rewind: Default::default(),
            rd_data: Default::default(),
            line_val: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            instr_we: Default::default(),
            bias_we: Default::default(),
            nz: Default::default(),
            nvalid: Default::default(),
            clear: Default::default(),
            rdo_en: Default::default(),
            rdo_rho: Default::default(),
            rdo_sel: Default::default(),
            rdo_addr: Default::default(),
            rdo_we: Default::default(),
            rdo_data: Default::default(),
            rd_q: Default::default(),
            rd_en: Default::default(),
            rd_b1: Default::default(),
            rd_bank: Default::default(),
            line_sel: Default::default(),
            wr_en: Default::default(),
            wr_q: Default::default(),
            wr_data: Default::default(),
            cnt_acc: Default::default(),
            cnt_state: Default::default(),
            noise_err: Default::default(),
            npop: Default::default(),
            instr: Mem::exact(32, &prog.instr),
            bias: Mem::new(ub, 32, &prog.bias),
            rdo: Mem::new(ub, 32, &[]),
            // (one word a unit beside the bus sides; otherwise two, unused: flip-flops that
            // synthesis drops with the constant `bsd`, and no block RAM in the estimate)
            park: Mem::new(if dp.beside { ub } else { 1 }, 32, &[]).state(),
            pgate: Mem::new(if dp.beside { ub } else { 1 }, 1, &[]).logic(),
            mul: Mul16s::default(),
            // SELF and COUP products and the bias have `fa` fractional bits, LINE products
            // the line format's (`alt`)
            sa_mac: SatAdd::classes(dp.fa, dp.line_frac(), dp.fa, &shifts),
            sa_noise: SatAdd::classes(dp.noise_frac(), dp.noise_frac(), dp.fa, &shifts),
            fin: Rescale::new(dp.fa, f.state.frac, f.state.bits),
            pc: Default::default(),
            v1: Default::default(),
            insq: Default::default(),
            v1q: Default::default(),
            op2: Default::default(),
            coef2: Default::default(),
            opnd2: Default::default(),
            v2: Default::default(),
            a3: Default::default(),
            b3: Default::default(),
            op3: Default::default(),
            v3: Default::default(),
            p4: Default::default(),
            op4: Default::default(),
            v4: Default::default(),
            acc: Default::default(),
            gate: Default::default(),
            uc: Default::default(),
            np: Default::default(),
            f1: Default::default(),
            fnz: Default::default(),
            f2: Default::default(),
            wd: Default::default(),
            wsat: Default::default(),
            f3: Default::default(),
            uw: Default::default(),
            sat_a: Default::default(),
            sat_n: Default::default(),
            nacc: Default::default(),
            nstate: Default::default(),
            nerr: Default::default(),
            cls3: Default::default(),
            ucls: Default::default(),
            fc1: Default::default(),
            fc2: Default::default(),
            fc3: Default::default(),
            fl2: Default::default(),
            fl3: Default::default(),
            fl4: Default::default(),
            pk5: Default::default(),
            pkg5: Default::default(),
            wc: Default::default(),
            rc: Default::default(),
            rcls3: Default::default(),
            pacc: Default::default(),
            bsd: Constant::new(dp.beside),
            rb1: rb(1),
            rb2: rb(2),
            rb3: rb(3),
            rb4: rb(4),
            rb5: rb(5),
            rb6: rb(6),
            rb7: rb(7),
            bsh: Constant::new((dp.bbits as u64).to_bits()),
            freg: Constant::new(dp.fetch_reg),
            // the program and unit counters at their memories' address widths (yosys keeps
            // a counter's unread upper bits otherwise)
            pmask: Constant::new(((1u64 << ib) - 1).to_bits()),
            umask: Constant::new(((1u64 << ub) - 1).to_bits()),
            bmask: Constant::new(((1u64 << dp.bbits) - 1).to_bits()),
            bd1: bd(1),
            bd2: bd(2),
            bd3: bd(3),
            bd4: bd(4),
            bd5: bd(5),
            bd6: bd(6),
            bd7: bd(7),
            lo0: lo_c(0),
            lo1: lo_c(1),
            lo2: lo_c(2),
            lo3: lo_c(3),
            lo4: lo_c(4),
            lo5: lo_c(5),
            lo6: lo_c(6),
            lo7: lo_c(7),
            hi0: hi_c(0),
            hi1: hi_c(1),
            hi2: hi_c(2),
            hi3: hi_c(3),
            hi4: hi_c(4),
            hi5: hi_c(5),
            hi6: hi_c(6),
            hi7: hi_c(7),
            sx32: Constant::new(0xFFFF_0000u64.to_bits()),
            gn: Constant::new(b16(dp.noise_amp as i64)),
            ngn: Constant::new(b16(-(dp.noise_amp as i64))),
            ocls: Default::default(),
            rcls: Default::default(),
            lo: Default::default(),
            hi: Default::default(),
            lob: Default::default(),
            hib: Default::default(),
            rlo: Default::default(),
            rhi: Default::default(),
            rlo32: Default::default(),
            rhi32: Default::default(),
            ins: Default::default(),
            vins: Default::default(),
            xb: Default::default(),
            rho: Default::default(),
            in_range: Default::default(),
            below: Default::default(),
            above: Default::default(),
            inc: Default::default(),
            fin_now: Default::default(),
            fyb: Default::default(),
            rdo_x: Default::default(),
        }
    }
}

impl Logic for LangevinLane {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, pc, v1, insq, v1q, op2, coef2, opnd2, v2, a3, b3, op3, v3, p4, op4, v4,
            acc, gate, uc, np, f1, fnz, f2, wd, wsat, f3, uw, sat_a, sat_n, nacc, nstate, nerr,
            cls3, ucls, fc1, fc2, fc3, fl2, fl3, fl4, pk5, pkg5, wc, rc, rcls3, pacc
        );
        self.instr.clock.next = self.clock.val();
        self.bias.clock.next = self.clock.val();
        self.rdo.clock.next = self.clock.val();
        self.park.clock.next = self.clock.val();
        self.pgate.clock.next = self.clock.val();
        // configuration writes
        self.instr.write_address.next = self.cfg_addr.val();
        self.instr.write_data.next = self.cfg_data.val();
        self.instr.write_enable.next = self.instr_we.val();
        self.bias.write_address.next = self.cfg_addr.val();
        self.bias.write_data.next = self.cfg_data.val();
        self.bias.write_enable.next = self.bias_we.val();
        // stage 0: fetch
        self.instr.read_address.next = self.pc.q.val();
        self.v1.d.next = self.issue.val();
        if self.issue.val() {
            self.pc.d.next = (self.pc.q.val() + 1) & self.pmask.val();
        }
        if self.rewind.val() {
            self.pc.d.next = 0.into();
        }
        // stage 1: decode, state address (from the fetch register with several lanes, so the
        // crossbar's port address does not start at the block RAM's output)
        self.insq.d.next = self.instr.read_data.val();
        self.v1q.d.next = self.v1.q.val();
        self.ins.next = self.instr.read_data.val();
        self.vins.next = self.v1.q.val();
        if self.freg.val() {
            self.ins.next = self.insq.q.val();
            self.vins.next = self.v1q.q.val();
        }
        self.rd_q.next = self.ins.val().get_bits::<16>(16) >> self.bsh.val();
        self.rd_b1.next = self.ins.val().get_bits::<16>(16) & self.bmask.val();
        self.rd_en.next = self.vins.val() & !self.ins.val().get_bit(31);
        self.op2.d.next = self.ins.val().get_bits::<2>(30);
        self.coef2.d.next = self.ins.val().get_bits::<16>(0);
        self.opnd2.d.next = bit_cast::<16, 13>(self.ins.val().get_bits::<13>(16));
        self.fl2.d.next = self.ins.val().get_bit(29) & self.bsd.val();
        self.v2.d.next = self.vins.val();
        // stage 2: operand (state word, bus line or noise magnitude) and coefficient, registered
        self.rd_bank.next = self.opnd2.q.val() & self.bmask.val();
        self.line_sel.next = self.opnd2.q.val();
        self.npop.next = false;
        self.a3.d.next = self.rd_data.val();
        self.b3.d.next = self.coef2.q.val();
        if self.op2.q.val() == 2 {
            self.a3.d.next = self.line_val.val();
        }
        if self.op2.q.val() == 3 {
            self.a3.d.next = self.nz.val() & 0x7FFF;
            self.b3.d.next = self.gn.val();
            if self.nz.val().get_bit(15) {
                self.b3.d.next = self.ngn.val();
            }
            self.npop.next = self.v2.q.val();
        }
        self.op3.d.next = self.op2.q.val();
        self.v3.d.next = self.v2.q.val();
        self.fl3.d.next = self.fl2.q.val();
        // resume (a LINE or FINISH with the pass flag): read the unit's parked accumulator and
        // gate (at the resume counter, which then advances) and its class, for stage 3
        self.park.read_address.next = self.rc.q.val();
        self.pgate.read_address.next = self.rc.q.val();
        if self.v2.q.val() & self.fl2.q.val() & self.op2.q.val().get_bit(1) {
            self.rc.d.next = (self.rc.q.val() + 1) & self.umask.val();
        }
        self.rcls.next = 0.into();
        if self.rc.q.val() >= self.rb1.val() {
            self.rcls.next = 1.into();
        }
        if self.rc.q.val() >= self.rb2.val() {
            self.rcls.next = 2.into();
        }
        if self.rc.q.val() >= self.rb3.val() {
            self.rcls.next = 3.into();
        }
        if self.rc.q.val() >= self.rb4.val() {
            self.rcls.next = 4.into();
        }
        if self.rc.q.val() >= self.rb5.val() {
            self.rcls.next = 5.into();
        }
        if self.rc.q.val() >= self.rb6.val() {
            self.rcls.next = 6.into();
        }
        if self.rc.q.val() >= self.rb7.val() {
            self.rcls.next = 7.into();
        }
        self.rcls3.d.next = self.rcls.val();
        // the operand's module class: how many class bounds its code reaches
        self.ocls.next = 0.into();
        if self.opnd2.q.val() >= self.bd1.val() {
            self.ocls.next = 1.into();
        }
        if self.opnd2.q.val() >= self.bd2.val() {
            self.ocls.next = 2.into();
        }
        if self.opnd2.q.val() >= self.bd3.val() {
            self.ocls.next = 3.into();
        }
        if self.opnd2.q.val() >= self.bd4.val() {
            self.ocls.next = 4.into();
        }
        if self.opnd2.q.val() >= self.bd5.val() {
            self.ocls.next = 5.into();
        }
        if self.opnd2.q.val() >= self.bd6.val() {
            self.ocls.next = 6.into();
        }
        if self.opnd2.q.val() >= self.bd7.val() {
            self.ocls.next = 7.into();
        }
        self.cls3.d.next = self.ocls.val();
        // stage 3: activation, gate, multiply (the clamp codes of the operand's class)
        self.lo.next = self.lo0.val();
        self.hi.next = self.hi0.val();
        if self.cls3.q.val() == 1 {
            self.lo.next = self.lo1.val();
            self.hi.next = self.hi1.val();
        }
        if self.cls3.q.val() == 2 {
            self.lo.next = self.lo2.val();
            self.hi.next = self.hi2.val();
        }
        if self.cls3.q.val() == 3 {
            self.lo.next = self.lo3.val();
            self.hi.next = self.hi3.val();
        }
        if self.cls3.q.val() == 4 {
            self.lo.next = self.lo4.val();
            self.hi.next = self.hi4.val();
        }
        if self.cls3.q.val() == 5 {
            self.lo.next = self.lo5.val();
            self.hi.next = self.hi5.val();
        }
        if self.cls3.q.val() == 6 {
            self.lo.next = self.lo6.val();
            self.hi.next = self.hi6.val();
        }
        if self.cls3.q.val() == 7 {
            self.lo.next = self.lo7.val();
            self.hi.next = self.hi7.val();
        }
        self.lob.next = self.lo.val() ^ 0x8000;
        self.hib.next = self.hi.val() ^ 0x8000;
        self.xb.next = self.a3.q.val() ^ 0x8000;
        self.below.next = self.xb.val() < self.lob.val();
        self.above.next = self.xb.val() > self.hib.val();
        self.in_range.next = !self.below.val() & !self.above.val();
        self.rho.next = self.a3.q.val();
        if self.below.val() {
            self.rho.next = self.lo.val();
        }
        if self.above.val() {
            self.rho.next = self.hi.val();
        }
        self.mul.a.next = self.a3.q.val();
        if self.op3.q.val() == 1 {
            self.mul.a.next = self.rho.val();
        }
        self.mul.b.next = self.b3.q.val();
        if self.v3.q.val() & (self.op3.q.val() == 0) {
            self.gate.d.next = self.in_range.val();
            self.ucls.d.next = self.cls3.q.val();
        }
        self.pacc.d.next = self.park.read_data.val();
        if self.v3.q.val() & self.fl3.q.val() & self.op3.q.val().get_bit(1) {
            self.gate.d.next = self.pgate.read_data.val().get_bit(0);
            self.ucls.d.next = self.rcls3.q.val();
        }
        self.p4.d.next = self.mul.p.val();
        self.op4.d.next = self.op3.q.val();
        self.v4.d.next = self.v3.q.val();
        self.fl4.d.next = self.fl3.q.val();
        // stage 4: accumulate. SELF, COUP and LINE products and, for FINISH (F0), the bias
        // share one adder (LINE aligns from the line format); the noise product waits in `np`
        self.fin_now.next = self.v4.q.val() & (self.op4.q.val() == 3);
        self.sa_mac.acc.next = self.acc.q.val();
        if self.op4.q.val() == 0 {
            self.sa_mac.acc.next = 0.into();
        }
        if self.fl4.q.val() & self.op4.q.val().get_bit(1) {
            self.sa_mac.acc.next = self.pacc.q.val();
        }
        // park (a SELF or COUPLING with the pass flag): the accumulator this stage writes and
        // the unit's gate go to the park memories in the next cycle, at the park counter
        self.pk5.d.next = self.v4.q.val() & self.fl4.q.val() & !self.op4.q.val().get_bit(1);
        self.pkg5.d.next = self.gate.q.val();
        self.park.write_address.next = self.wc.q.val();
        self.park.write_data.next = self.acc.q.val();
        self.park.write_enable.next = self.pk5.q.val();
        self.pgate.write_address.next = self.wc.q.val();
        self.pgate.write_data.next = bit_cast::<32, 1>(self.pkg5.q.val().into());
        self.pgate.write_enable.next = self.pk5.q.val();
        if self.pk5.q.val() {
            self.wc.d.next = (self.wc.q.val() + 1) & self.umask.val();
        }
        self.sa_mac.x.next = self.p4.q.val();
        if self.op4.q.val() == 3 {
            self.sa_mac.x.next = self.bias.read_data.val();
        }
        self.sa_mac.alt.next = self.op4.q.val() == 2;
        self.sa_mac.cls.next = self.ucls.q.val();
        self.sa_mac.en.next = self.v4.q.val() & ((self.op4.q.val() == 0) | self.gate.q.val());
        if self.v4.q.val() {
            self.acc.d.next = self.sa_mac.y.val();
        }
        self.np.d.next = self.p4.q.val();
        self.f1.d.next = self.fin_now.val();
        if self.fin_now.val() {
            self.fc1.d.next = self.ucls.q.val();
        }
        self.fc2.d.next = self.fc1.q.val();
        self.fc3.d.next = self.fc2.q.val();
        if self.fin_now.val() {
            self.uc.d.next = (self.uc.q.val() + 1) & self.umask.val();
        }
        // F1: noise (`acc` holds the biased sum for this one cycle: the next unit's SELF term
        // replaces it at its end)
        self.sa_noise.acc.next = self.acc.q.val();
        self.sa_noise.x.next = self.np.q.val();
        self.sa_noise.en.next = self.f1.q.val();
        self.sa_noise.alt.next = true;
        self.sa_noise.cls.next = self.fc1.q.val();
        self.fnz.d.next = self.sa_noise.y.val();
        self.f2.d.next = self.f1.q.val();
        // F2: rescale and saturate into the state format
        self.fin.x.next = self.fnz.q.val();
        self.wd.d.next = self.fin.y.val().get_bits::<16>(0);
        self.wsat.d.next = self.f2.q.val() & self.fin.sat.val();
        self.f3.d.next = self.f2.q.val();
        // F3: write back, readout accumulation, state saturation count
        self.wr_en.next = self.f3.q.val();
        self.wr_q.next = self.uw.q.val();
        self.wr_data.next = self.wd.q.val();
        if self.f3.q.val() {
            self.uw.d.next = (self.uw.q.val() + 1) & self.umask.val();
        }
        if self.wsat.q.val() {
            self.nstate.d.next = self.nstate.q.val() + 1;
        }
        // accumulator saturations, counted one cycle late: the adder of stage 4 and the noise
        // adder of F1 may both saturate in one cycle (for two different units)
        self.sat_a.d.next = self.sa_mac.sat.val();
        self.sat_n.d.next = self.sa_noise.sat.val();
        self.inc.next = 0.into();
        if self.sat_a.q.val() | self.sat_n.q.val() {
            self.inc.next = 1.into();
        }
        if self.sat_a.q.val() & self.sat_n.q.val() {
            self.inc.next = 2.into();
        }
        self.nacc.d.next = self.nacc.q.val() + bit_cast::<32, 2>(self.inc.val());
        if self.npop.val() & !self.nvalid.val() {
            self.nerr.d.next = true;
        }
        if self.rewind.val() {
            self.uc.d.next = 0.into();
            self.uw.d.next = 0.into();
            self.wc.d.next = 0.into();
            self.rc.d.next = 0.into();
        }
        if self.clear.val() {
            self.nacc.d.next = 0.into();
            self.nstate.d.next = 0.into();
            self.nerr.d.next = false;
        }
        // the bias memory is addressed by the unit counter of stage 4, the readout memory by
        // the write counter of F3 (read in F2, written in F3)
        self.bias.read_address.next = self.uc.q.val();
        self.rdo.read_address.next = self.uw.q.val();
        if self.rdo_sel.val() {
            self.rdo.read_address.next = self.rdo_addr.val();
        }
        self.rdo.write_address.next = self.uw.q.val();
        // what is summed: the new state, or (rdo_rho) its activation rho, the clamp of the
        // operand path above applied to the written state
        // (with the clamp codes of the written unit's class)
        self.rlo.next = self.lo0.val();
        self.rhi.next = self.hi0.val();
        if self.fc3.q.val() == 1 {
            self.rlo.next = self.lo1.val();
            self.rhi.next = self.hi1.val();
        }
        if self.fc3.q.val() == 2 {
            self.rlo.next = self.lo2.val();
            self.rhi.next = self.hi2.val();
        }
        if self.fc3.q.val() == 3 {
            self.rlo.next = self.lo3.val();
            self.rhi.next = self.hi3.val();
        }
        if self.fc3.q.val() == 4 {
            self.rlo.next = self.lo4.val();
            self.rhi.next = self.hi4.val();
        }
        if self.fc3.q.val() == 5 {
            self.rlo.next = self.lo5.val();
            self.rhi.next = self.hi5.val();
        }
        if self.fc3.q.val() == 6 {
            self.rlo.next = self.lo6.val();
            self.rhi.next = self.hi6.val();
        }
        if self.fc3.q.val() == 7 {
            self.rlo.next = self.lo7.val();
            self.rhi.next = self.hi7.val();
        }
        self.rlo32.next = bit_cast::<32, 16>(self.rlo.val());
        if self.rlo.val().get_bit(15) {
            self.rlo32.next = bit_cast::<32, 16>(self.rlo.val()) | self.sx32.val();
        }
        self.rhi32.next = bit_cast::<32, 16>(self.rhi.val());
        if self.rhi.val().get_bit(15) {
            self.rhi32.next = bit_cast::<32, 16>(self.rhi.val()) | self.sx32.val();
        }
        self.fyb.next = self.wd.q.val() ^ 0x8000;
        self.rdo_x.next = bit_cast::<32, 16>(self.wd.q.val());
        if self.wd.q.val().get_bit(15) {
            self.rdo_x.next = bit_cast::<32, 16>(self.wd.q.val()) | self.sx32.val();
        }
        if self.rdo_rho.val() & (self.fyb.val() < (self.rlo.val() ^ 0x8000)) {
            self.rdo_x.next = self.rlo32.val();
        }
        if self.rdo_rho.val() & (self.fyb.val() > (self.rhi.val() ^ 0x8000)) {
            self.rdo_x.next = self.rhi32.val();
        }
        self.rdo.write_data.next = self.rdo.read_data.val() + self.rdo_x.val();
        self.rdo.write_enable.next = self.f3.q.val() & self.rdo_en.val();
        if self.rdo_sel.val() {
            self.rdo.write_address.next = self.rdo_addr.val();
            self.rdo.write_data.next = self.cfg_data.val();
            self.rdo.write_enable.next = self.rdo_we.val();
        }
        self.rdo_data.next = self.rdo.read_data.val();
        self.cnt_acc.next = self.nacc.q.val();
        self.cnt_state.next = self.nstate.q.val();
        self.noise_err.next = self.nerr.q.val();
    }
}

/// Verilog of one lane of substrate `s` (lane 0), wrapped as top module `top`, for the
/// per-lane resource count.
pub fn lane_verilog(s: &thermo_sim::Substrate) -> Result<String, crate::Error> {
    let prog = crate::rtl::program::HwProgram::new(s)?;
    let mut lane = LangevinLane::new(&prog.dp, &prog.lanes[0]);
    lane.connect_all();
    crate::rtl::block_verilog(&lane)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::noise::NoisePairHw;
    use crate::rtl::program::{encode, Op};
    use crate::rtl::simx::{settle, tick};
    use thermo_sim::engine::{Arith, Fixed, Saturation};
    use thermo_sim::example::{random_substrate, ExampleSpec};
    use thermo_sim::model::{Activation, Formats};
    use thermo_sim::noise::{splitmix64, NoiseLane};
    use thermo_sim::qformat::QFormat;
    use thermo_sim::schedule::PIPELINE_DRAIN;
    use thermo_sim::Substrate;

    struct Rng(u64);
    impl Rng {
        fn u(&mut self) -> u64 {
            splitmix64(&mut self.0)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.u() % n
        }
        /// A code of `q` biased to the extremes.
        fn code(&mut self, q: QFormat) -> i16 {
            match self.below(8) {
                0 => q.max_code() as i16,
                1 => q.min_code() as i16,
                2 => 0,
                _ => (q.min_code() + (self.u() % (1u64 << q.bits)) as i64) as i16,
            }
        }
    }

    fn substrate(formats: Formats, clamp: bool) -> Substrate {
        let mut cfg = random_substrate(&ExampleSpec {
            units: 16,
            modules: 3,
            rank: 1,
            lanes: 1,
            formats,
            ..Default::default()
        });
        cfg.formats = formats;
        cfg.temperature = 0.3;
        if clamp {
            cfg.activation = Activation::Clamp { lo: -1.5, hi: 2.0 };
        }
        Substrate::from_config(&cfg).expect("test substrate validates")
    }

    fn run_case(formats: Formats, clamp: bool, seed: u64, units: usize) -> usize {
        let s = substrate(formats, clamp);
        let fx = Fixed::new(&s);
        let mut dp = Datapath::new(&s);
        dp.bbits = 0;
        let f = s.formats;
        let mut rng = Rng(seed);
        // operands: 64 states, 16 lines
        let mut states: Vec<i16> = (0..64).map(|_| rng.code(f.state)).collect();
        states[0] = dp.clamp.0;
        states[1] = dp.clamp.1;
        states[2] = dp.clamp.0.saturating_sub(1);
        states[3] = dp.clamp.1.saturating_add(1).min(f.state.max_code() as i16);
        let lines: Vec<i16> = (0..16).map(|_| rng.code(f.bus)).collect();
        let mut prog = LaneProgram::default();
        let mut expect = Vec::new();
        let mut sat = Saturation::default();
        let mut noise = NoiseLane::new(seed, 3);
        for u in 0..units {
            let i = rng.below(64) as usize;
            let d = rng.code(f.coupling);
            prog.units.push(u);
            prog.instr.push(encode(Op::SelfTerm, i as u32, d));
            let xi = states[i];
            let mut acc: i32 = fx.mac::<true>(0i32, d, xi, &mut sat);
            let g = fx.gate(0, xi);
            for _ in 0..rng.below(5) {
                let j = rng.below(64) as usize;
                let c = rng.code(f.coupling);
                prog.instr.push(encode(Op::Coupling, j as u32, c));
                if g {
                    acc = fx.mac::<true>(acc, c, fx.rho(0, states[j]), &mut sat);
                }
            }
            for _ in 0..rng.below(4) {
                let l = rng.below(16) as usize;
                let w = rng.code(f.coupling);
                prog.instr.push(encode(Op::Line, l as u32, w));
                if g {
                    acc = fx.mac_line::<true>(0, acc, w, lines[l], &mut sat);
                }
            }
            let h = match rng.below(6) {
                0 => i32::MAX,
                1 => i32::MIN,
                2 => rng.u() as i32,
                _ => (rng.u() as i32) >> 8,
            };
            prog.bias.push(h as u32);
            prog.instr.push(encode(Op::Finish, 0, 0));
            if g {
                acc = fx.add_bias::<true>(acc, h, &mut sat);
            }
            acc = fx.add_noise::<true>(0, acc, noise.next_fixed(), &mut sat);
            expect.push(fx.finish(acc, &mut sat));
        }
        let mut lane = LangevinLane::new(&dp, &prog);
        lane.connect_all();
        // the lane's noise: lane a of a one-lane noise pair, simulated alongside
        let mut noise = NoisePairHw::new(false);
        noise.connect_all();
        noise.seed_and_load(seed, 3).unwrap();
        fn link(l: &mut LangevinLane, n: &mut NoisePairHw) {
            settle(n).unwrap();
            l.nz.next = n.z_a.val();
            l.nvalid.next = n.valid_a.val();
            settle(l).unwrap();
            n.pop_a.next = l.npop.val();
            settle(n).unwrap();
        }
        fn tick2(l: &mut LangevinLane, n: &mut NoisePairHw) {
            tick(l, |l| &mut l.clock).unwrap();
            tick(n, |n| &mut n.clock).unwrap();
        }
        lane.clear.next = true;
        link(&mut lane, &mut noise);
        tick2(&mut lane, &mut noise);
        lane.clear.next = false;
        lane.rewind.next = true;
        link(&mut lane, &mut noise);
        tick2(&mut lane, &mut noise);
        lane.rewind.next = false;
        let n = prog.instr.len();
        let mut got = Vec::new();
        for cyc in 0..n + PIPELINE_DRAIN as usize {
            lane.issue.next = cyc < n;
            link(&mut lane, &mut noise);
            if lane.wr_en.val() {
                assert_eq!(lane.wr_q.val().to_u64() as usize, got.len());
                got.push(lane.wr_data.val().to_u64() as u16 as i16);
            }
            let q = lane.rd_q.val().to_u64() as usize;
            tick2(&mut lane, &mut noise);
            lane.rd_data.next = ((states[q % 64] as u16) as u64).to_bits();
            let l = lane.line_sel.val().to_u64() as usize;
            lane.line_val.next = ((lines[l % 16] as u16) as u64).to_bits();
        }
        settle(&mut lane).unwrap();
        assert_eq!(got.len(), units);
        for (u, (a, b)) in got.iter().zip(&expect).enumerate() {
            assert_eq!(
                a, b,
                "unit {u}: lane {a} vs engine {b} (formats {f:?}, clamp {clamp})"
            );
        }
        assert_eq!(lane.cnt_acc.val().to_u64(), sat.acc, "acc saturations");
        assert_eq!(
            lane.cnt_state.val().to_u64(),
            sat.state,
            "state saturations"
        );
        assert!(!lane.noise_err.val());
        (sat.acc + sat.state) as usize
    }

    #[test]
    fn lane_matches_fixed_arith() {
        let q = QFormat::new;
        let sets = [
            Formats::default(),
            Formats {
                state: q(12, 6),
                coupling: q(14, 12),
                bus: q(12, 4),
                gain: q(10, 8),
                noise_gain: q(16, 15),
            },
            Formats {
                state: q(16, 13),
                coupling: q(16, 14),
                bus: q(16, 12),
                gain: q(16, 14),
                noise_gain: q(12, 11),
            },
            Formats {
                state: q(8, 3),
                coupling: q(16, 14),
                bus: q(16, 2),
                gain: q(16, 14),
                noise_gain: q(16, 14),
            },
        ];
        let mut sats = 0;
        for (n, f) in sets.iter().enumerate() {
            for clamp in [false, true] {
                sats += run_case(*f, clamp, 1000 + n as u64 * 7 + clamp as u64, 300);
            }
        }
        assert!(
            sats > 100,
            "the operands should exercise saturation ({sats})"
        );
    }
}
