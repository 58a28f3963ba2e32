//! The noise lanes: taus88 + inverse-CDF Gaussian transform, bit-exact with
//! `thermo_sim::noise::NoiseLane::next_fixed`. Two lanes share one transform front end and one
//! ROM ([`NoisePairHw`]).

use crate::rtl::rom::IcdfRom;
use rust_hdl::prelude::*;
use thermo_sim::noise::Taus88;

/// The taus88 generator of one noise lane, with its seed registers.
///
/// **Computes** L'Ecuyer's taus88 word stream in pairs `(w0, w1)`, exactly like
/// `Taus88::next_pair`: one step per clock while a draw is being formed. After `load` (or after
/// a draw is taken) it steps once and latches the first word `w0`, then raises `ready`; while
/// `ready`, `x` is the second word (the combinational next word) and `take` consumes the draw
/// (one more step). So a draw can be taken every other clock.
///
/// **Ports**: `clock`; seed registers `seed_we`, `seed_sel` (component 0..2), `seed_data`;
/// `load` (load the state from the seed registers, drop the pending draw); `take`; outputs `w0`,
/// `x`, `ready`. **Latency**: `ready` 1 cycle after `load` or `take`.
///
/// **Proof**: the noise pair tests (`noise::tests`, `hdl/tests/noise.rs`) compare every draw
/// with the engine.
#[derive(LogicBlock)]
pub struct TausGen {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Write `seed_data` into seed register `seed_sel`.
    pub seed_we: Signal<In, Bit>,
    /// Seed component (0..2).
    pub seed_sel: Signal<In, Bits<2>>,
    /// Seed word.
    pub seed_data: Signal<In, Bits<32>>,
    /// Load the state from the seed registers.
    pub load: Signal<In, Bit>,
    /// The draw `(w0, x)` is taken this cycle.
    pub take: Signal<In, Bit>,
    /// First word of the pending draw.
    pub w0: Signal<Out, Bits<32>>,
    /// Second word of the pending draw (while `ready`).
    pub x: Signal<Out, Bits<32>>,
    /// A draw is pending.
    pub ready: Signal<Out, Bit>,
    sd1: DFF<Bits<32>>,
    sd2: DFF<Bits<32>>,
    sd3: DFF<Bits<32>>,
    s1: DFF<Bits<32>>,
    s2: DFF<Bits<32>>,
    s3: DFF<Bits<32>>,
    w0r: DFF<Bits<32>>,
    ph: DFF<Bit>,
    m1: Constant<Bits<32>>,
    m2: Constant<Bits<32>>,
    m3: Constant<Bits<32>>,
    a1: Signal<Local, Bits<32>>,
    a2: Signal<Local, Bits<32>>,
    a3: Signal<Local, Bits<32>>,
}

impl Default for TausGen {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            seed_we: Default::default(),
            seed_sel: Default::default(),
            seed_data: Default::default(),
            load: Default::default(),
            take: Default::default(),
            w0: Default::default(),
            x: Default::default(),
            ready: Default::default(),
            sd1: Default::default(),
            sd2: Default::default(),
            sd3: Default::default(),
            s1: Default::default(),
            s2: Default::default(),
            s3: Default::default(),
            w0r: Default::default(),
            ph: Default::default(),
            m1: Constant::new(0xFFFF_FFFEu64.to_bits()),
            m2: Constant::new(0xFFFF_FFF8u64.to_bits()),
            m3: Constant::new(0xFFFF_FFF0u64.to_bits()),
            a1: Default::default(),
            a2: Default::default(),
            a3: Default::default(),
        }
    }
}

impl Logic for TausGen {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, sd1, sd2, sd3, s1, s2, s3, w0r, ph);
        if self.seed_we.val() {
            if self.seed_sel.val() == 0 {
                self.sd1.d.next = self.seed_data.val();
            }
            if self.seed_sel.val() == 1 {
                self.sd2.d.next = self.seed_data.val();
            }
            if self.seed_sel.val() == 2 {
                self.sd3.d.next = self.seed_data.val();
            }
        }
        // one taus88 step: next state a*, next word x
        self.a1.next = ((self.s1.q.val() & self.m1.val()) << 12)
            ^ (((self.s1.q.val() << 13) ^ self.s1.q.val()) >> 19);
        self.a2.next = ((self.s2.q.val() & self.m2.val()) << 4)
            ^ (((self.s2.q.val() << 2) ^ self.s2.q.val()) >> 25);
        self.a3.next = ((self.s3.q.val() & self.m3.val()) << 17)
            ^ (((self.s3.q.val() << 3) ^ self.s3.q.val()) >> 11);
        self.x.next = self.a1.val() ^ self.a2.val() ^ self.a3.val();
        // step for the first word of a draw, and for the second one when the draw is taken
        if !self.ph.q.val() | self.take.val() {
            self.s1.d.next = self.a1.val();
            self.s2.d.next = self.a2.val();
            self.s3.d.next = self.a3.val();
        }
        if !self.ph.q.val() {
            self.w0r.d.next = self.x.val();
            self.ph.d.next = true;
        }
        if self.take.val() {
            self.ph.d.next = false;
        }
        if self.load.val() {
            self.s1.d.next = self.sd1.q.val();
            self.s2.d.next = self.sd2.q.val();
            self.s3.d.next = self.sd3.q.val();
            self.ph.d.next = false;
        }
        self.w0.next = self.w0r.q.val();
        self.ready.next = self.ph.q.val();
    }
}

/// The per-lane back end of a noise pair: interpolation, tail clamp, sign and a two-entry
/// output queue.
///
/// **Computes**, for the draw at the head of its queue (the shared ROM word `c0 | -c1` of the
/// draw was read the cycle after `issue` and queued with `t`, `neg` and `clamp`),
/// `|z| = c0 - ((-c1 t + 2^19 - 1) >> 20)` (equal to `c0 + ((c1 t + 2^19) >> 20)`, one 16x16
/// hard multiplier; computed as `c0 - prod[31:20] - (prod[19:0] > 2^19)` with `prod = -c1 t`,
/// exact since `-c1 <= 2^15` keeps `prod + 2^19 - 1` below `2^31`), or the tail code when
/// `clamp`, in sign-magnitude form with the sign `neg` (every magnitude code is below 2^15; the
/// lane applies the sign to its gain, which is exact and saves the negation). The arithmetic
/// sits after the queue, so the block RAM's slow output only reaches a register and the
/// multiplier starts from one (the ECP5 build's 50 MHz).
///
/// **Ports**: `clock`; `load` (empties it); `issue` with the draw's `t`, `neg`, `clamp`;
/// `rom_word`; `pop`; outputs `z` (head sample, sign-magnitude: bit 15 the sign, bits 14..0
/// the magnitude; [`sign_magnitude_code`] gives the Q3.12 code), `valid`, and `room` (a draw issued now finds a
/// free queue entry: at most one sample is left after this cycle's pop and the one in flight).
/// **Latency**: a sample issued in cycle `t` is queued (and `valid` if the queue was empty or
/// popped) in `t+2`.
///
/// **Proof**: `noise::tests` and `hdl/tests/noise.rs`.
#[derive(LogicBlock)]
pub struct NoiseOut {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Empty the stage and the queue.
    pub load: Signal<In, Bit>,
    /// A draw of this lane is read from the ROM this cycle.
    pub issue: Signal<In, Bit>,
    /// Its interpolation fraction.
    pub t: Signal<In, Bits<16>>,
    /// Its sign.
    pub neg: Signal<In, Bit>,
    /// It lies beyond the last octave.
    pub clamp: Signal<In, Bit>,
    /// The ROM output.
    pub rom_word: Signal<In, Bits<32>>,
    /// Consume the head sample.
    pub pop: Signal<In, Bit>,
    /// Head sample, Q3.12 sign-magnitude.
    pub z: Signal<Out, Bits<16>>,
    /// `z` holds a sample.
    pub valid: Signal<Out, Bit>,
    /// A draw issued now will find room.
    pub room: Signal<Out, Bit>,
    t2: DFF<Bits<16>>,
    neg2: DFF<Bit>,
    clamp2: DFF<Bit>,
    v2: DFF<Bit>,
    zr: DFF<Bits<50>>,
    vo: DFF<Bit>,
    zh: DFF<Bits<50>>,
    vh: DFF<Bit>,
    tail: Constant<Bits<16>>,
    raw: Constant<Bit>,
    negbit: Constant<Bits<50>>,
    clampbit: Constant<Bits<50>>,
    sm: Signal<Local, Bits<16>>,
    st: Signal<Local, Bits<16>>,
    sc0: Signal<Local, Bits<16>>,
    scl: Signal<Local, Bit>,
    sng: Signal<Local, Bit>,
    prod: Signal<Local, Bits<32>>,
    pz: Signal<Local, Bits<16>>,
    cin: Signal<Local, Bits<16>>,
    mag: Signal<Local, Bits<16>>,
    zs: Signal<Local, Bits<16>>,
    zv: Signal<Local, Bits<50>>,
    two: Signal<Local, Bit>,
    three: Signal<Local, Bit>,
}

impl Default for NoiseOut {
    fn default() -> Self {
        NoiseOut::new(true)
    }
}

impl NoiseOut {
    /// A back end whose queue holds raw draws (`raw`, the arithmetic after the queue) or
    /// finished samples (the arithmetic between the ROM and the queue: 34 flip-flops fewer per
    /// queue entry, a longer path from the ROM).
    pub fn new(raw: bool) -> Self {
        let tail = thermo_sim::noise::gaussian_fixed(0, 0).unsigned_abs() as u64;
        Self {
            clock: Default::default(),
            load: Default::default(),
            issue: Default::default(),
            t: Default::default(),
            neg: Default::default(),
            clamp: Default::default(),
            rom_word: Default::default(),
            pop: Default::default(),
            z: Default::default(),
            valid: Default::default(),
            room: Default::default(),
            t2: Default::default(),
            neg2: Default::default(),
            clamp2: Default::default(),
            v2: Default::default(),
            zr: Default::default(),
            vo: Default::default(),
            zh: Default::default(),
            vh: Default::default(),
            tail: Constant::new(tail.to_bits()),
            raw: Constant::new(raw),
            negbit: Constant::new((1u64 << 48).to_bits()),
            clampbit: Constant::new((1u64 << 49).to_bits()),
            sm: Default::default(),
            st: Default::default(),
            sc0: Default::default(),
            scl: Default::default(),
            sng: Default::default(),
            prod: Default::default(),
            pz: Default::default(),
            cin: Default::default(),
            mag: Default::default(),
            zs: Default::default(),
            zv: Default::default(),
            two: Default::default(),
            three: Default::default(),
        }
    }
}

impl Logic for NoiseOut {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, t2, neg2, clamp2, v2, zr, vo, zh, vh);
        self.v2.d.next = self.issue.val();
        if self.issue.val() {
            self.t2.d.next = self.t.val();
            self.neg2.d.next = self.neg.val();
            self.clamp2.d.next = self.clamp.val();
        }
        // the draw the arithmetic works on: the queue's head (`raw`) or the one read from the
        // ROM in stage 2
        self.sm.next = self.zr.q.val().get_bits::<16>(0);
        self.sc0.next = self.zr.q.val().get_bits::<16>(16);
        self.st.next = self.zr.q.val().get_bits::<16>(32);
        self.sng.next = self.zr.q.val().get_bit(48);
        self.scl.next = self.zr.q.val().get_bit(49);
        if !self.raw.val() {
            self.sm.next = self.rom_word.val().get_bits::<16>(0);
            self.sc0.next = self.rom_word.val().get_bits::<16>(16);
            self.st.next = self.t2.q.val();
            self.sng.next = self.neg2.q.val();
            self.scl.next = self.clamp2.q.val();
        }
        // |z| = c0 - ((-c1 t + 2^19 - 1) >> 20) with -c1 <= 2^15, so the sum stays below 2^31:
        // the shifted sum is prod[31:20] plus the carry out of prod[19:0] + 2^19 - 1, i.e.
        // (prod[19:0] > 2^19), the borrow of one subtraction
        self.prod.next = self.sm.val() * self.st.val();
        self.pz.next = bit_cast::<16, 12>(self.prod.val().get_bits::<12>(20));
        self.cin.next = 1.into();
        if self.prod.val().get_bit(19) & self.prod.val().get_bits::<19>(0).any() {
            self.cin.next = 0.into();
        }
        self.mag.next = self.sc0.val() + !self.pz.val() + self.cin.val();
        if self.scl.val() {
            self.mag.next = self.tail.val();
        }
        self.zs.next = self.mag.val();
        if self.sng.val() {
            self.zs.next = self.mag.val() | 0x8000;
        }
        // what joins the queue: the raw draw (ROM word, fraction, sign, clamp flag) or the sample
        self.zv.next = bit_cast::<50, 16>(self.zs.val());
        if self.raw.val() {
            self.zv.next = bit_cast::<50, 32>(self.rom_word.val())
                | (bit_cast::<50, 16>(self.t2.q.val()) << 32);
            if self.neg2.q.val() {
                self.zv.next = self.zv.val() | self.negbit.val();
            }
            if self.clamp2.q.val() {
                self.zv.next = self.zv.val() | self.clampbit.val();
            }
        }
        // the queue zr (head), zh; the sample in stage 2 joins it
        if self.pop.val() & self.vo.q.val() {
            if self.vh.q.val() {
                self.zr.d.next = self.zh.q.val();
                if self.v2.q.val() {
                    self.zh.d.next = self.zv.val();
                } else {
                    self.vh.d.next = false;
                }
            } else {
                self.zr.d.next = self.zv.val();
                self.vo.d.next = self.v2.q.val();
            }
        } else if !self.vo.q.val() {
            self.zr.d.next = self.zv.val();
            self.vo.d.next = self.v2.q.val();
        } else if self.v2.q.val() {
            self.zh.d.next = self.zv.val();
            self.vh.d.next = true;
        }
        if self.load.val() {
            self.v2.d.next = false;
            self.vo.d.next = false;
            self.vh.d.next = false;
        }
        // room: at most one sample left after this cycle's pop, counting the one in stage 2
        self.two.next = (self.vo.q.val() & self.vh.q.val())
            | (self.vo.q.val() & self.v2.q.val())
            | (self.vh.q.val() & self.v2.q.val());
        self.three.next = self.vo.q.val() & self.vh.q.val() & self.v2.q.val();
        self.room.next = !self.two.val() | (self.pop.val() & self.vo.q.val() & !self.three.val());
        self.z.next = self.zr.q.val().get_bits::<16>(0);
        if self.raw.val() {
            self.z.next = self.zs.val();
        }
        self.valid.next = self.vo.q.val();
    }
}

/// Two hardware noise lanes sharing one transform front end and one inverse-CDF ROM
/// (docs/fixed-point.md §5).
///
/// **Computes** for each lane `X` in `{a, b}` the stream of `thermo_sim::noise::gaussian_fixed`
/// codes (Q3.12) of its taus88 generator ([`TausGen`]), two words per draw, exactly like
/// `NoiseLane::next_fixed`. A pair built with `has_b = false` serves one lane (lane `b`'s
/// outputs stay idle and synthesis removes its logic).
///
/// **Ports**
/// * `clock`; `seed_sel` (component), `seed_data`, `seed_we_a` / `seed_we_b` — the lanes' seed
///   registers (the host computes them with `Taus88::for_lane`); `load` — both generators load
///   their seeds and both pipelines are emptied.
/// * `pop_a` / `pop_b` — consume the head sample; `z_a` / `z_b` — head sample (Q3.12 in
///   sign-magnitude form, see [`NoiseOut`] and [`sign_magnitude_code`]), `valid_a` / `valid_b` —
///   it holds a sample.
///
/// **Structure and latency.** The lanes take turns (a in the cycles after `load` numbered
/// 1, 3, 5, ..., b in 2, 4, ...). In its turn a lane whose generator has a draw ready and whose
/// [`NoiseOut`] has room issues it: the 63-bit magnitude word `w0[30:0] | w1` is normalised by a
/// 5-level left shifter (16, 8, 4, 2, 1: the shift bits are the octave `lz`, the 20 bits below
/// the leading one the segment and the fraction `t`) into the synchronous ROM read (`IcdfRom`,
/// 512 x 32 bits: `c0 | -c1`, one read per cycle, so one ROM serves both lanes); the next cycle
/// the lane's own multiplier interpolates and its queue takes the sample. After `load` the first
/// sample of lane a is `valid` 3 cycles later, of lane b 4 cycles later; then, while samples are
/// popped, a lane gets a new one every 2 cycles, and up to two wait in its queue when they are
/// not. This suffices for a lane: a unit costs at least 2 instructions and pops once, so pops
/// are at least 2 cycles apart, and the first pop of a run comes at least 4 cycles after
/// `NOISE_LOAD` (`SubstrateTop` starts a run requested in the same write one cycle later).
///
/// **Proof of equality with the engine:** `noise::tests::noise_pair_matches_engine` (rust-hdl
/// simulation, several seeds, lanes and pop rates), `noise::tests::lane_like_pops_never_wait`
/// (the start-up contract and random pop schedules with gaps of 2 or more),
/// `noise::tests::transform_edge_cases_match_engine` (chosen draws forced into the generator:
/// the tail clamp, every leading-zero count, both signs, the rounding ties of every ROM entry)
/// and `hdl/tests/noise.rs` (rust-hdl simulation and Verilator, both lanes of a pair).
#[derive(LogicBlock)]
pub struct NoisePairHw {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Load both generators from their seed registers (clears the pipelines).
    pub load: Signal<In, Bit>,
    /// Seed component (0..2) of a seed write.
    pub seed_sel: Signal<In, Bits<2>>,
    /// Seed word of a seed write.
    pub seed_data: Signal<In, Bits<32>>,
    /// Write lane a's seed register `seed_sel`.
    pub seed_we_a: Signal<In, Bit>,
    /// Write lane b's seed register `seed_sel`.
    pub seed_we_b: Signal<In, Bit>,
    /// Consume lane a's sample.
    pub pop_a: Signal<In, Bit>,
    /// Consume lane b's sample.
    pub pop_b: Signal<In, Bit>,
    /// Lane a's sample, Q3.12 sign-magnitude.
    pub z_a: Signal<Out, Bits<16>>,
    /// Lane b's sample, Q3.12 sign-magnitude.
    pub z_b: Signal<Out, Bits<16>>,
    /// `z_a` holds a sample.
    pub valid_a: Signal<Out, Bit>,
    /// `z_b` holds a sample.
    pub valid_b: Signal<Out, Bit>,
    ga: TausGen,
    gb: TausGen,
    oa: NoiseOut,
    ob: NoiseOut,
    rom: IcdfRom,
    turn: DFF<Bit>,
    has_b: Constant<Bit>,
    bsel: Signal<Local, Bit>,
    iss_a: Signal<Local, Bit>,
    iss_b: Signal<Local, Bit>,
    w0: Signal<Local, Bits<32>>,
    x: Signal<Local, Bits<32>>,
    y0: Signal<Local, Bits<64>>,
    y1: Signal<Local, Bits<64>>,
    y2: Signal<Local, Bits<64>>,
    y3: Signal<Local, Bits<64>>,
    y4: Signal<Local, Bits<64>>,
    y5: Signal<Local, Bits<64>>,
    lz: Signal<Local, Bits<9>>,
}

impl NoisePairHw {
    /// A pair; with `has_b = false` only lane a is served.
    pub fn new(has_b: bool) -> Self {
        NoisePairHw::with_queue(has_b, true)
    }

    /// A pair whose back ends queue raw draws (`raw`) or finished samples ([`NoiseOut::new`]).
    pub fn with_queue(has_b: bool, raw: bool) -> Self {
        Self {
            clock: Default::default(),
            load: Default::default(),
            seed_sel: Default::default(),
            seed_data: Default::default(),
            seed_we_a: Default::default(),
            seed_we_b: Default::default(),
            pop_a: Default::default(),
            pop_b: Default::default(),
            z_a: Default::default(),
            z_b: Default::default(),
            valid_a: Default::default(),
            valid_b: Default::default(),
            ga: Default::default(),
            gb: Default::default(),
            oa: NoiseOut::new(raw),
            ob: NoiseOut::new(raw),
            rom: crate::rtl::rom::new_icdf_rom(),
            turn: Default::default(),
            has_b: Constant::new(has_b),
            bsel: Default::default(),
            iss_a: Default::default(),
            iss_b: Default::default(),
            w0: Default::default(),
            x: Default::default(),
            y0: Default::default(),
            y1: Default::default(),
            y2: Default::default(),
            y3: Default::default(),
            y4: Default::default(),
            y5: Default::default(),
            lz: Default::default(),
        }
    }
}

impl Logic for NoisePairHw {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, turn);
        self.ga.clock.next = self.clock.val();
        self.gb.clock.next = self.clock.val();
        self.oa.clock.next = self.clock.val();
        self.ob.clock.next = self.clock.val();
        self.rom.clock.next = self.clock.val();
        // seeds and load
        self.ga.seed_sel.next = self.seed_sel.val();
        self.gb.seed_sel.next = self.seed_sel.val();
        self.ga.seed_data.next = self.seed_data.val();
        self.gb.seed_data.next = self.seed_data.val();
        self.ga.seed_we.next = self.seed_we_a.val();
        self.gb.seed_we.next = self.seed_we_b.val();
        self.ga.load.next = self.load.val();
        self.gb.load.next = self.load.val();
        self.oa.load.next = self.load.val();
        self.ob.load.next = self.load.val();
        // turns: a when `turn` is low
        self.turn.d.next = !self.turn.q.val();
        if self.load.val() {
            self.turn.d.next = true;
        }
        self.bsel.next = self.turn.q.val() & self.has_b.val();
        self.iss_a.next = !self.turn.q.val() & self.ga.ready.val() & self.oa.room.val();
        self.iss_b.next = self.bsel.val() & self.gb.ready.val() & self.ob.room.val();
        self.ga.take.next = self.iss_a.val();
        self.gb.take.next = self.iss_b.val();
        self.oa.issue.next = self.iss_a.val();
        self.ob.issue.next = self.iss_b.val();
        // the draw of the lane in turn: normalise m = w0[30:0] | x (63 bits) held as y0 = m << 1
        self.w0.next = self.ga.w0.val();
        self.x.next = self.ga.x.val();
        if self.bsel.val() {
            self.w0.next = self.gb.w0.val();
            self.x.next = self.gb.x.val();
        }
        self.y0.next =
            (bit_cast::<64, 32>(self.w0.val()) << 33) | (bit_cast::<64, 32>(self.x.val()) << 1);
        self.lz.next = 0.into();
        self.y1.next = self.y0.val();
        if self.y0.val().get_bits::<16>(48) == 0 {
            self.lz.next = 16.into();
            self.y1.next = self.y0.val() << 16;
        }
        self.y2.next = self.y1.val();
        if self.y1.val().get_bits::<8>(56) == 0 {
            self.lz.next = self.lz.val() | 8;
            self.y2.next = self.y1.val() << 8;
        }
        self.y3.next = self.y2.val();
        if self.y2.val().get_bits::<4>(60) == 0 {
            self.lz.next = self.lz.val() | 4;
            self.y3.next = self.y2.val() << 4;
        }
        self.y4.next = self.y3.val();
        if self.y3.val().get_bits::<2>(62) == 0 {
            self.lz.next = self.lz.val() | 2;
            self.y4.next = self.y3.val() << 2;
        }
        self.y5.next = self.y4.val();
        if !self.y4.val().get_bit(63) {
            self.lz.next = self.lz.val() | 1;
            self.y5.next = self.y4.val() << 1;
        }
        // y5 = m << lz (lz <= 31) with the leading one in bit 63, unless m < 2^31 (the clamp)
        self.rom.address.next =
            (self.lz.val() << 4) | bit_cast::<9, 4>(self.y5.val().get_bits::<4>(59));
        self.oa.t.next = self.y5.val().get_bits::<16>(43);
        self.ob.t.next = self.y5.val().get_bits::<16>(43);
        self.oa.neg.next = self.w0.val().get_bit(31);
        self.ob.neg.next = self.w0.val().get_bit(31);
        self.oa.clamp.next = !self.y5.val().get_bit(63);
        self.ob.clamp.next = !self.y5.val().get_bit(63);
        self.oa.rom_word.next = self.rom.data.val();
        self.ob.rom_word.next = self.rom.data.val();
        // outputs
        self.oa.pop.next = self.pop_a.val();
        self.ob.pop.next = self.pop_b.val();
        self.z_a.next = self.oa.z.val();
        self.valid_a.next = self.oa.valid.val();
        self.z_b.next = self.ob.z.val();
        self.valid_b.next = self.ob.valid.val();
    }
}

/// The Q3.12 code (two's complement) of a sign-magnitude noise sample `z` (bit 15 the sign).
pub fn sign_magnitude_code(z: u64) -> i16 {
    let m = (z & 0x7FFF) as i16;
    if z & 0x8000 != 0 {
        -m
    } else {
        m
    }
}

impl NoisePairHw {
    /// Write the seed registers of lane a (`b = false`) or b with the state of `g` (3 clocks;
    /// rust-hdl simulation).
    pub fn write_seeds(&mut self, b: bool, g: &Taus88) -> Result<(), String> {
        use crate::rtl::simx::{settle, tick};
        for c in 0..3 {
            self.seed_we_a.next = !b;
            self.seed_we_b.next = b;
            self.seed_sel.next = (c as u64).to_bits();
            self.seed_data.next = (g.s[c] as u64).to_bits();
            settle(self)?;
            tick(self, |u| &mut u.clock)?;
        }
        self.seed_we_a.next = false;
        self.seed_we_b.next = false;
        Ok(())
    }

    /// Seed lanes a and b with lanes `lane`, `lane + 1` of run seed `seed` and pulse `load`
    /// (rust-hdl simulation; afterwards the pair is in cycle 0 after the load).
    pub fn seed_and_load(&mut self, seed: u64, lane: u32) -> Result<(), String> {
        use crate::rtl::simx::{settle, tick};
        self.pop_a.next = false;
        self.pop_b.next = false;
        self.write_seeds(false, &Taus88::for_lane(seed, lane))?;
        self.write_seeds(true, &Taus88::for_lane(seed, lane + 1))?;
        self.load.next = true;
        settle(self)?;
        tick(self, |u| &mut u.clock)?;
        self.load.next = false;
        Ok(())
    }
}

/// Verilog of a noise pair (for the Verilator stream test).
pub fn noise_pair_verilog() -> Result<String, crate::Error> {
    let mut uut = NoisePairHw::new(true);
    uut.connect_all();
    crate::rtl::block_verilog(&uut)
}

/// rust-hdl simulation of a noise pair: `n` samples of each lane, lane a is lane `lane` of seed
/// `seed`, lane b lane `lane + 1`; lane a pops every `every_a` cycles (when valid), b every
/// `every_b` (the Verilator stream harness runs the same protocol).
pub fn rusthdl_noise_streams(
    seed: u64,
    lane: u32,
    n: usize,
    every_a: usize,
    every_b: usize,
) -> (Vec<i16>, Vec<i16>) {
    use crate::rtl::simx::{settle, tick};
    let mut uut = NoisePairHw::new(true);
    uut.connect_all();
    uut.seed_and_load(seed, lane).expect("load");
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let mut cyc = 0usize;
    while a.len() < n || b.len() < n {
        let fa = uut.valid_a.val() && a.len() < n && cyc % every_a.max(1) == 0;
        let fb = uut.valid_b.val() && b.len() < n && cyc % every_b.max(1) == 0;
        if fa {
            a.push(sign_magnitude_code(uut.z_a.val().to_u64()));
        }
        if fb {
            b.push(sign_magnitude_code(uut.z_b.val().to_u64()));
        }
        uut.pop_a.next = fa;
        uut.pop_b.next = fb;
        settle(&mut uut).expect("settle");
        tick(&mut uut, |u| &mut u.clock).expect("tick");
        cyc += 1;
        assert!(cyc < 10 * n + 100, "noise pair stalled");
    }
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::simx::{settle, tick};
    use thermo_sim::noise::NoiseLane;

    fn clk(u: &mut NoisePairHw) -> &mut Signal<In, Clock> {
        &mut u.clock
    }

    /// The transform on chosen draws: the tail clamp (`lz >= 32`, probability 2^-32),
    /// `lz = 31`, `lz = 30`, every leading-zero count, the sign and the rounding ties, forced
    /// into lane a's generator (its first word and a state whose next word is the second).
    #[test]
    fn transform_edge_cases_match_engine() {
        use thermo_sim::noise::{gaussian_fixed, splitmix64};
        let mut cases: Vec<(u32, u32)> = vec![
            (0, 0),
            (0x8000_0000, 0),
            (0, 0x7FFF_FFFF),
            (0x8000_0000, 0x7FFF_FFFF),
            (0, 0x8000_0000),
            (0x8000_0000, 0xFFFF_FFFF),
            (1, 0),
            (0x8000_0001, 0x1234_5678),
            (0x7FFF_FFFF, 0xFFFF_FFFF),
            (0xFFFF_FFFF, 0xFFFF_FFFF),
            (0x4000_0000, 0),
        ];
        let mut x = 99u64;
        for lz in 0..34u32 {
            for _ in 0..20 {
                let r = splitmix64(&mut x);
                // m = 63-bit word with exactly `lz` leading zeros (lz < 63)
                let m = ((r >> 1) | (1u64 << 62)) >> lz;
                let neg = (r & 1) as u32;
                cases.push((((m >> 32) as u32) | (neg << 31), m as u32));
            }
        }
        // rounding: for every ROM entry, the first fraction `t` whose product `-c1 t` has low
        // 20 bits 2^19 - 1, 2^19 or 2^19 + 1 (where one exists), as a draw
        let mut ties = 0;
        for (addr, e) in thermo_sim::noise::icdf_rom().iter().enumerate() {
            let (lz, seg) = ((addr >> 4) as u32, (addr & 15) as u64);
            for low in [(1u64 << 19) - 1, 1 << 19, (1 << 19) + 1] {
                if let Some(t) =
                    (0..1u64 << 16).find(|t| (t * (-e.c1 as i64) as u64) % (1 << 20) == low)
                {
                    ties += (low == 1 << 19) as usize;
                    let r = splitmix64(&mut x);
                    let m = (1u64 << (62 - lz))
                        | (seg << (58 - lz))
                        | (t << (42 - lz))
                        | (r & ((1 << (42 - lz)) - 1));
                    cases.push((((m >> 32) as u32) | (((r >> 63) as u32) << 31), m as u32));
                }
            }
        }
        assert!(ties > 0, "no ROM entry can produce a rounding tie");
        let mut uut = NoisePairHw::new(true);
        uut.connect_all();
        let solve = preimage_solver();
        for (w0, w1) in cases {
            let s = solve(w1);
            assert_eq!(Taus88 { s }.next_u32(), w1);
            uut.pop_a.next = true;
            uut.turn.q.next = false;
            uut.ga.ph.q.next = true;
            uut.ga.w0r.q.next = (w0 as u64).to_bits();
            uut.ga.s1.q.next = (s[0] as u64).to_bits();
            uut.ga.s2.q.next = (s[1] as u64).to_bits();
            uut.ga.s3.q.next = (s[2] as u64).to_bits();
            settle(&mut uut).unwrap();
            assert!(uut.iss_a.val(), "the forced draw issues");
            tick(&mut uut, clk).unwrap();
            tick(&mut uut, clk).unwrap();
            settle(&mut uut).unwrap();
            assert!(uut.valid_a.val());
            let z = sign_magnitude_code(uut.z_a.val().to_u64());
            assert_eq!(z, gaussian_fixed(w0, w1), "draw ({w0:#x}, {w1:#x})");
        }
    }

    fn preimage_solver() -> impl Fn(u32) -> [u32; 3] {
        let mut basis: Vec<Option<(u32, [u32; 3])>> = vec![None; 32];
        for j in 0..96 {
            let mut comb = [0u32; 3];
            comb[j / 32] = 1 << (j % 32);
            let mut img = Taus88 { s: comb }.next_u32();
            for b in (0..32).rev() {
                if (img >> b) & 1 == 0 {
                    continue;
                }
                match basis[b] {
                    Some((bi, bc)) => {
                        img ^= bi;
                        for c in 0..3 {
                            comb[c] ^= bc[c];
                        }
                    }
                    None => {
                        basis[b] = Some((img, comb));
                        break;
                    }
                }
            }
        }
        move |w| {
            let (mut t, mut s) = (w, [0u32; 3]);
            for b in (0..32).rev() {
                if (t >> b) & 1 == 1 {
                    let (bi, bc) = basis[b].expect("the next-word map has full rank");
                    t ^= bi;
                    for c in 0..3 {
                        s[c] ^= bc[c];
                    }
                }
            }
            s
        }
    }

    /// The start-up contract and lane-like pop schedules: lane a's first sample is valid 3
    /// cycles after `load`, lane b's 4 (not earlier); then with pops of both lanes from cycle 4
    /// on, at least 2 cycles apart (every parity, fixed and random gaps), every pop finds a
    /// sample equal to the engine's — also after a reload over full queues.
    #[test]
    fn lane_like_pops_never_wait() {
        use thermo_sim::noise::splitmix64;
        let mut rng = 7u64;
        for case in 0..12u64 {
            let (seed, lane) = (case * 1_000_003 + 5, (case % 5) as u32 * 2);
            let mut uut = NoisePairHw::new(true);
            uut.connect_all();
            for reload in 0..2 {
                uut.seed_and_load(seed, lane).unwrap();
                let mut eng = [NoiseLane::new(seed, lane), NoiseLane::new(seed, lane + 1)];
                // per lane: next pop cycle and the gap rule
                let mut next = [0usize; 2];
                for (l, nx) in next.iter_mut().enumerate() {
                    *nx = match case {
                        0 => 4,
                        1 => 4 + l,
                        2 => 5 - l,
                        _ => 4 + (splitmix64(&mut rng) % 4) as usize,
                    };
                }
                for cyc in 0..600 {
                    let mut fire = [false; 2];
                    for l in 0..2 {
                        fire[l] = cyc == next[l];
                        if fire[l] {
                            let gap = if case < 3 {
                                2
                            } else {
                                [2, 2, 2, 3, 4, 7][(splitmix64(&mut rng) % 6) as usize]
                            };
                            next[l] += gap;
                        }
                    }
                    uut.pop_a.next = fire[0];
                    uut.pop_b.next = fire[1];
                    settle(&mut uut).unwrap();
                    if cyc == 2 {
                        assert!(!uut.valid_a.val() && !uut.valid_b.val(), "valid too early");
                    }
                    if cyc == 3 {
                        assert!(uut.valid_a.val() && !uut.valid_b.val(), "lane a at 3 only");
                    }
                    let heads = [
                        (uut.valid_a.val(), uut.z_a.val()),
                        (uut.valid_b.val(), uut.z_b.val()),
                    ];
                    for l in 0..2 {
                        if fire[l] {
                            let (v, z) = heads[l];
                            assert!(
                                v,
                                "case {case} reload {reload}: lane {l} empty in cycle {cyc}"
                            );
                            let z = sign_magnitude_code(z.to_u64());
                            assert_eq!(z, eng[l].next_fixed(), "case {case} lane {l} cycle {cyc}");
                        }
                    }
                    tick(&mut uut, clk).unwrap();
                }
                // fill the queues before the reload
                uut.pop_a.next = false;
                uut.pop_b.next = false;
                for _ in 0..8 {
                    settle(&mut uut).unwrap();
                    tick(&mut uut, clk).unwrap();
                }
            }
        }
    }

    /// Both queue forms (raw draws, finished samples) give the engine's streams with the same
    /// timing: lane a valid 3 cycles after `load`, lane b 4, and the same cycles of every sample.
    #[test]
    fn queue_forms_agree() {
        let mut u = [
            NoisePairHw::with_queue(true, true),
            NoisePairHw::with_queue(true, false),
        ];
        let mut eng = [NoiseLane::new(11, 6), NoiseLane::new(11, 7)];
        let mut rng = 3u64;
        for x in u.iter_mut() {
            x.connect_all();
            x.seed_and_load(11, 6).unwrap();
        }
        let mut got = 0;
        for cyc in 0..3000 {
            let r = thermo_sim::noise::splitmix64(&mut rng);
            for x in u.iter_mut() {
                x.pop_a.next = x.valid_a.val() && r & 1 != 0;
                x.pop_b.next = x.valid_b.val() && r & 2 != 0;
                settle(x).unwrap();
            }
            let heads: Vec<_> = u
                .iter()
                .map(|x| (x.valid_a.val(), x.z_a.val(), x.valid_b.val(), x.z_b.val()))
                .collect();
            assert_eq!(heads[0], heads[1], "cycle {cyc}");
            if cyc == 3 {
                assert!(heads[0].0 && !heads[0].2, "lane a at 3 only");
            }
            let (va, za, vb, zb) = heads[0];
            if va && r & 1 != 0 {
                assert_eq!(sign_magnitude_code(za.to_u64()), eng[0].next_fixed());
                got += 1;
            }
            if vb && r & 2 != 0 {
                assert_eq!(sign_magnitude_code(zb.to_u64()), eng[1].next_fixed());
                got += 1;
            }
            for x in u.iter_mut() {
                tick(x, clk).unwrap();
            }
        }
        assert!(got > 1000, "{got} samples");
    }

    /// A pair serving one lane (`has_b = false`) is lane a of a full pair.
    #[test]
    fn single_lane_pair_matches_engine() {
        let mut uut = NoisePairHw::new(false);
        uut.connect_all();
        uut.seed_and_load(3, 4).unwrap();
        let mut eng = NoiseLane::new(3, 4);
        let mut got = 0;
        for _ in 0..2000 {
            uut.pop_a.next = uut.valid_a.val();
            settle(&mut uut).unwrap();
            assert!(!uut.valid_b.val());
            if uut.valid_a.val() {
                assert_eq!(
                    sign_magnitude_code(uut.z_a.val().to_u64()),
                    eng.next_fixed()
                );
                got += 1;
            }
            tick(&mut uut, clk).unwrap();
        }
        assert!(got >= 990, "one sample per 2 cycles ({got})");
    }

    #[test]
    fn noise_pair_matches_engine() {
        for (seed, lane, ea, eb) in [
            (1u64, 0u32, 1usize, 1usize),
            (7, 3, 2, 3),
            (0xDEAD_BEEF, 11, 3, 1),
        ] {
            let n = 2000;
            let (a, b) = rusthdl_noise_streams(seed, lane, n, ea, eb);
            for (l, hw) in [(lane, a), (lane + 1, b)] {
                let mut eng = NoiseLane::new(seed, l);
                for (k, &z) in hw.iter().enumerate() {
                    assert_eq!(z, eng.next_fixed(), "seed {seed} lane {l} draw {k}");
                }
            }
        }
    }
}
