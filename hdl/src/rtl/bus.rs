//! The coupling bus: one bus side's MAC and line registers' feed.

use crate::rtl::arith::{Mul16s, Rescale, SatAdd};
use crate::rtl::mem::Mem;
use crate::rtl::program::{clog2, Datapath, SideProgram};
use rust_hdl::prelude::*;

/// One side of a rank-k coupling bus (docs/fixed-point.md §3, step 1).
///
/// **Computes**, for `r = 0..k`, `S_r = sat32(... sat32(0 + w_r0 rho(x_0)) ...)` over the
/// side's module in ascending unit order, then `pre = sat_bus(align(S_r, fa, bus.frac))` and
/// `L_r = sat_bus(align(pre G_r, bus.frac + gain.frac, bus.frac))` — exactly
/// `Program::<Fixed>::bus_lines`. The line is delivered on `line_we`/`line_idx`/`line_val`;
/// the substrate top shifts it into the line registers the partner module's lanes read (lines
/// come in rank order, `line_idx` = rank is for the RTL trace).
/// MAC saturations count in `cnt_acc`, line saturations (both steps) in `cnt_bus` — the
/// engine's `bus_saturation.acc` / `.bus`.
///
/// **Ports**: `issue` (one MAC per cycle), `rewind` (rewind); state read `rd_q` (stage 1)
/// / `rd_bank` (stage 2) / `rd_data` (stage 2); configuration writes `cfg_addr`, `cfg_data`,
/// `word_we` (MAC words `first | last | operand | w`), `gain_we` (gains); `clear`; counters.
///
/// **Latency**: a MAC issued in cycle `t` reads its state in `t+1..t+2` (the activation is
/// applied and registered in `t+2`), multiplies and accumulates in `t+3`; the line of a rank
/// whose last MAC issued in `t` is rounded into the bus format in `t+4`, multiplied by its gain
/// in `t+5` and rounded again and delivered in `t+6` (latched at its end), i.e.
/// `BUS_GAIN_LATENCY = 6` after the last issue (`thermo_sim::schedule`) — the lanes read it
/// from then on (one lane: from the first cycle of the unit phase). With `Datapath::fetch_reg` (more than one lane) the
/// fetched word is registered first and every later step is one cycle later
/// (`thermo_sim::schedule::banked::crossbar_latency`, counted in `lines_ready`). The side
/// issues while its `issue` input is high: for its words' count from the sweep's first cycle
/// (one lane: waits are [`crate::rtl::program::WAIT_WORD`]s), or where its issue map says
/// (beside the lanes: `SideProgram::issue_map`). Saturations
/// are counted one cycle after they happen.
///
/// **Proof**: the substrate equivalence tests (`hdl/tests/equivalence.rs`) compare every
/// sweep's states and the bus saturation counts with the engine.
#[derive(LogicBlock)]
pub struct BusSide {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Issue the next MAC.
    pub issue: Signal<In, Bit>,
    /// Rewind the MAC program and the rank counter.
    pub rewind: Signal<In, Bit>,
    /// State word for the MAC in stage 2.
    pub rd_data: Signal<In, Bits<16>>,
    /// Configuration address.
    pub cfg_addr: Signal<In, Bits<16>>,
    /// Configuration data.
    pub cfg_data: Signal<In, Bits<32>>,
    /// Write a MAC word.
    pub word_we: Signal<In, Bit>,
    /// Write a gain.
    pub gain_we: Signal<In, Bit>,
    /// Clear the counters.
    pub clear: Signal<In, Bit>,
    /// Lane-local state address (stage 1).
    pub rd_q: Signal<Out, Bits<16>>,
    /// The word in stage 1 reads a state (a valid MAC word, not a wait): the crossbar routes
    /// `rd_q` to bank `rd_b1`.
    pub rd_en: Signal<Out, Bit>,
    /// Bank of the state (stage 1).
    pub rd_b1: Signal<Out, Bits<16>>,
    /// Bank of the state (stage 2).
    pub rd_bank: Signal<Out, Bits<16>>,
    /// A line is delivered this cycle.
    pub line_we: Signal<Out, Bit>,
    /// Rank of the delivered line.
    pub line_idx: Signal<Out, Bits<16>>,
    /// The delivered line value.
    pub line_val: Signal<Out, Bits<16>>,
    /// Saturating MAC additions.
    pub cnt_acc: Signal<Out, Bits<32>>,
    /// Saturated line steps.
    pub cnt_bus: Signal<Out, Bits<32>>,
    words: Mem,
    gains: Mem,
    mul: Mul16s,
    mulg: Mul16s,
    sa: SatAdd,
    pre: Rescale,
    line: Rescale,
    pc: DFF<Bits<16>>,
    v1: DFF<Bit>,
    /// The fetched MAC word and its valid bit, registered (`Datapath::fetch_reg`).
    wq: DFF<Bits<32>>,
    v1q: DFF<Bit>,
    v2: DFF<Bit>,
    first2: DFF<Bit>,
    last2: DFF<Bit>,
    coef2: DFF<Bits<16>>,
    bank2: DFF<Bits<16>>,
    v3: DFF<Bit>,
    first3: DFF<Bit>,
    last3: DFF<Bit>,
    coef3: DFF<Bits<16>>,
    rho3: DFF<Bits<16>>,
    r: DFF<Bits<16>>,
    acc: DFF<Bits<32>>,
    v4: DFF<Bit>,
    r4: DFF<Bits<16>>,
    pre5: DFF<Bits<16>>,
    v5: DFF<Bit>,
    r5: DFF<Bits<16>>,
    g6: DFF<Bits<32>>,
    v6: DFF<Bit>,
    r6: DFF<Bits<16>>,
    sat_m: DFF<Bit>,
    sat_p: DFF<Bit>,
    sat_l: DFF<Bit>,
    nacc: DFF<Bits<32>>,
    nbus: DFF<Bits<32>>,
    bsh: Constant<Bits<16>>,
    pmask: Constant<Bits<16>>,
    rmask: Constant<Bits<16>>,
    bmask: Constant<Bits<16>>,
    kwait: Constant<Bits<16>>,
    freg: Constant<Bit>,
    lo: Constant<Bits<16>>,
    hi: Constant<Bits<16>>,
    lob: Constant<Bits<16>>,
    hib: Constant<Bits<16>>,
    w: Signal<Local, Bits<32>>,
    vw: Signal<Local, Bit>,
    xb: Signal<Local, Bits<16>>,
    rho: Signal<Local, Bits<16>>,
    j1: Signal<Local, Bits<2>>,
    j2: Signal<Local, Bits<2>>,
    jj: Signal<Local, Bits<2>>,
}

impl BusSide {
    /// A bus side with datapath constants `dp` and memories holding `prog`.
    pub fn new(dp: &Datapath, prog: &SideProgram) -> Self {
        let f = dp.formats;
        // the side's module: its clamp codes and state shift (its sums have `fa + shift`
        // fractional bits)
        let class = dp.classes[prog.class];
        let (lo, hi) = class.clamp;
        let b16 = |v: i64| -> Bits<16> { ((v as u16) as u64).to_bits() };
        let gains: Vec<u32> = prog.gains.iter().map(|&g| g as u16 as u32).collect();
        BusSide {
            clock: Default::default(),
            issue: Default::default(),
            rewind: Default::default(),
            rd_data: Default::default(),
            cfg_addr: Default::default(),
            cfg_data: Default::default(),
            word_we: Default::default(),
            gain_we: Default::default(),
            clear: Default::default(),
            rd_q: Default::default(),
            rd_en: Default::default(),
            rd_b1: Default::default(),
            rd_bank: Default::default(),
            line_we: Default::default(),
            line_idx: Default::default(),
            line_val: Default::default(),
            cnt_acc: Default::default(),
            cnt_bus: Default::default(),
            words: Mem::exact(32, &prog.words),
            gains: Mem::new(clog2(gains.len().max(2)), 16, &gains).state(),
            // the word and rank counters at their memories' address widths
            pmask: Constant::new(((1u64 << clog2(prog.words.len().max(2))) - 1).to_bits()),
            rmask: Constant::new(((1u64 << clog2(gains.len().max(2))) - 1).to_bits()),
            mul: Default::default(),
            mulg: Default::default(),
            sa: SatAdd::new(dp.fa, dp.fa),
            pre: Rescale::new(dp.fa + class.shift, f.bus.frac, f.bus.bits),
            line: Rescale::new(f.bus.frac + f.gain.frac, f.bus.frac, f.bus.bits),
            pc: Default::default(),
            v1: Default::default(),
            wq: Default::default(),
            v1q: Default::default(),
            v2: Default::default(),
            first2: Default::default(),
            last2: Default::default(),
            coef2: Default::default(),
            bank2: Default::default(),
            v3: Default::default(),
            first3: Default::default(),
            last3: Default::default(),
            coef3: Default::default(),
            rho3: Default::default(),
            r: Default::default(),
            acc: Default::default(),
            v4: Default::default(),
            r4: Default::default(),
            pre5: Default::default(),
            v5: Default::default(),
            r5: Default::default(),
            g6: Default::default(),
            v6: Default::default(),
            r6: Default::default(),
            sat_m: Default::default(),
            sat_p: Default::default(),
            sat_l: Default::default(),
            nacc: Default::default(),
            nbus: Default::default(),
            bsh: Constant::new((dp.bbits as u64).to_bits()),
            bmask: Constant::new(((1u64 << dp.bbits) - 1).to_bits()),
            kwait: Constant::new((crate::rtl::program::WAIT_OPERAND as u64).to_bits()),
            freg: Constant::new(dp.fetch_reg),
            lo: Constant::new(b16(lo as i64)),
            hi: Constant::new(b16(hi as i64)),
            lob: Constant::new(b16(lo as i64 ^ 0x8000)),
            hib: Constant::new(b16(hi as i64 ^ 0x8000)),
            w: Default::default(),
            vw: Default::default(),
            xb: Default::default(),
            rho: Default::default(),
            j1: Default::default(),
            j2: Default::default(),
            jj: Default::default(),
        }
    }
}

impl Logic for BusSide {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, pc, v1, wq, v1q, v2, first2, last2, coef2, bank2, v3, first3, last3,
            coef3, rho3, r, acc, v4, r4, pre5, v5, r5, g6, v6, r6, sat_m, sat_p, sat_l, nacc, nbus
        );
        self.words.clock.next = self.clock.val();
        self.gains.clock.next = self.clock.val();
        self.words.write_address.next = self.cfg_addr.val();
        self.words.write_data.next = self.cfg_data.val();
        self.words.write_enable.next = self.word_we.val();
        self.gains.write_address.next = self.cfg_addr.val();
        self.gains.write_data.next = self.cfg_data.val();
        self.gains.write_enable.next = self.gain_we.val();
        // stage 0
        self.words.read_address.next = self.pc.q.val();
        self.v1.d.next = self.issue.val();
        if self.issue.val() {
            self.pc.d.next = (self.pc.q.val() + 1) & self.pmask.val();
        }
        // stage 1 (from the fetch register with several lanes)
        self.wq.d.next = self.words.read_data.val();
        self.v1q.d.next = self.v1.q.val();
        self.w.next = self.words.read_data.val();
        self.vw.next = self.v1.q.val();
        if self.freg.val() {
            self.w.next = self.wq.q.val();
            self.vw.next = self.v1q.q.val();
        }
        self.rd_q.next = bit_cast::<16, 14>(self.w.val().get_bits::<14>(16)) >> self.bsh.val();
        self.bank2.d.next = bit_cast::<16, 14>(self.w.val().get_bits::<14>(16)) & self.bmask.val();
        self.rd_b1.next = bit_cast::<16, 14>(self.w.val().get_bits::<14>(16)) & self.bmask.val();
        self.rd_en.next = self.vw.val()
            & (bit_cast::<16, 14>(self.w.val().get_bits::<14>(16)) != self.kwait.val());
        self.first2.d.next = self.w.val().get_bit(31);
        self.last2.d.next = self.w.val().get_bit(30);
        self.coef2.d.next = self.w.val().get_bits::<16>(0);
        self.v2.d.next = self.vw.val();
        // stage 2: operand, activation (registered)
        self.rd_bank.next = self.bank2.q.val();
        self.xb.next = self.rd_data.val() ^ 0x8000;
        self.rho.next = self.rd_data.val();
        if self.xb.val() < self.lob.val() {
            self.rho.next = self.lo.val();
        }
        if self.xb.val() > self.hib.val() {
            self.rho.next = self.hi.val();
        }
        self.rho3.d.next = self.rho.val();
        self.coef3.d.next = self.coef2.q.val();
        self.first3.d.next = self.first2.q.val();
        self.last3.d.next = self.last2.q.val();
        self.v3.d.next = self.v2.q.val();
        // stage 3: MAC
        self.mul.a.next = self.coef3.q.val();
        self.mul.b.next = self.rho3.q.val();
        self.sa.acc.next = self.acc.q.val();
        if self.first3.q.val() {
            self.sa.acc.next = 0.into();
        }
        self.sa.x.next = self.mul.p.val();
        self.sa.en.next = self.v3.q.val();
        self.sa.alt.next = false;
        self.sa.cls.next = 0.into();
        if self.v3.q.val() {
            self.acc.d.next = self.sa.y.val();
        }
        self.sat_m.d.next = self.sa.sat.val();
        self.v4.d.next = self.v3.q.val() & self.last3.q.val();
        self.r4.d.next = self.r.q.val();
        if self.v3.q.val() & self.last3.q.val() {
            self.r.d.next = (self.r.q.val() + 1) & self.rmask.val();
        }
        // stage 4: round the rank's sum into the bus format (`acc` holds it for this one cycle)
        self.pre.x.next = self.acc.q.val();
        self.pre5.d.next = self.pre.y.val().get_bits::<16>(0);
        self.sat_p.d.next = self.v4.q.val() & self.pre.sat.val();
        self.v5.d.next = self.v4.q.val();
        self.r5.d.next = self.r4.q.val();
        self.gains.read_address.next = self.r4.q.val();
        // stage 5: gain
        self.mulg.a.next = self.pre5.q.val();
        self.mulg.b.next = self.gains.read_data.val().get_bits::<16>(0);
        self.g6.d.next = self.mulg.p.val();
        self.v6.d.next = self.v5.q.val();
        self.r6.d.next = self.r5.q.val();
        // stage 6: round into the bus format, deliver
        self.line.x.next = self.g6.q.val();
        self.line_we.next = self.v6.q.val();
        self.line_idx.next = self.r6.q.val();
        self.line_val.next = self.line.y.val().get_bits::<16>(0);
        self.sat_l.d.next = self.v6.q.val() & self.line.sat.val();
        // both line steps may saturate in one cycle (for two ranks): a 2-bit increment
        self.j1.next = 0.into();
        if self.sat_p.q.val() {
            self.j1.next = 1.into();
        }
        self.j2.next = 0.into();
        if self.sat_l.q.val() {
            self.j2.next = 1.into();
        }
        self.jj.next = self.j1.val() + self.j2.val();
        self.nbus.d.next = self.nbus.q.val() + bit_cast::<32, 2>(self.jj.val());
        if self.sat_m.q.val() {
            self.nacc.d.next = self.nacc.q.val() + 1;
        }
        if self.rewind.val() {
            self.pc.d.next = 0.into();
            self.r.d.next = 0.into();
        }
        if self.clear.val() {
            self.nacc.d.next = 0.into();
            self.nbus.d.next = 0.into();
        }
        self.cnt_acc.next = self.nacc.q.val();
        self.cnt_bus.next = self.nbus.q.val();
    }
}
