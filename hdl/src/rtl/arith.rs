//! Combinational arithmetic blocks of the datapath: the signed 16x16 multiplier, the 32-bit
//! saturating accumulate with a constant binary-point change, and the rounding/saturating
//! rescale. Each is exactly one `thermo_sim::qformat` operation.

use rust_hdl::prelude::*;

/// Signed 16x16 -> 32 multiply built on rust-hdl's unsigned `*`.
///
/// **Computes** `p = a * b` for two's-complement `a`, `b` (the unsigned product minus
/// `b << 16` when `a < 0` and minus `a << 16` when `b < 0`, modulo 2^32 — exact, since the
/// signed product fits 32 bits); the Verilog is a signed multiply (one hard multiplier, no
/// LUTs). **Ports** `a`, `b` in, `p` out. **Latency** 0 (combinational).
/// Proven by `arith::tests::mul16s_exhaustive_corners` and by every lane test.
#[derive(LogicBlock, Default)]
pub struct Mul16s {
    /// Multiplicand (two's complement).
    pub a: Signal<In, Bits<16>>,
    /// Multiplier (two's complement).
    pub b: Signal<In, Bits<16>>,
    /// Product (two's complement).
    pub p: Signal<Out, Bits<32>>,
    pu: Signal<Local, Bits<32>>,
    ca: Signal<Local, Bits<32>>,
    cb: Signal<Local, Bits<32>>,
}

impl Logic for Mul16s {
    fn update(&mut self) {
        self.pu.next = self.a.val() * self.b.val();
        self.ca.next = 0.into();
        if self.a.val().get_bit(15) {
            self.ca.next = bit_cast::<32, 16>(self.b.val()) << 16;
        }
        self.cb.next = 0.into();
        if self.b.val().get_bit(15) {
            self.cb.next = bit_cast::<32, 16>(self.a.val()) << 16;
        }
        self.p.next = self.pu.val() - self.ca.val() - self.cb.val();
    }
    fn connect(&mut self) {
        self.p.connect();
        self.pu.connect();
        self.ca.connect();
        self.cb.connect();
    }
    /// A signed Verilog multiply: yosys maps it to one MULT18X18D / SB_MAC16 with signed
    /// operands and no correction logic (the simulation model above corrects the unsigned
    /// product instead; Verilator runs this text, so the substrate tests compare the two).
    fn hdl(&self) -> Verilog {
        Verilog::Custom(
            "wire signed [31:0] ps = $signed(a) * $signed(b);
always @(*) p = ps;"
                .into(),
        )
    }
}

/// Constants of a binary-point change `align(v, from, to)` (docs/fixed-point.md §2) of a 32-bit
/// operand in [`W_BITS`]-bit arithmetic: left shift `lsh`, or add `half` and shift right
/// arithmetically by `rsh` (capped at 33: `(x + 2^(r-1)) >> r = 0` for every 32-bit `x` once
/// `r >= 33`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlignK {
    /// Left shift (capped; see the users).
    pub lsh: u32,
    /// Right shift.
    pub rsh: u32,
}

impl AlignK {
    /// `align(v, from, to)` with the left shift capped at `cap` (a larger shift saturates the
    /// same way for every operand the caller can see).
    pub fn new(from: u32, to: u32, cap: u32) -> Self {
        if to >= from {
            AlignK {
                lsh: (to - from).min(cap),
                rsh: 0,
            }
        } else {
            AlignK {
                lsh: 0,
                rsh: (from - to).min(33),
            }
        }
    }
    fn half(&self) -> u64 {
        if self.rsh == 0 {
            0
        } else {
            1u64 << (self.rsh - 1)
        }
    }
    fn fill(&self) -> u64 {
        if self.rsh == 0 {
            0
        } else {
            !(W_MASK >> self.rsh) & W_MASK
        }
    }
    /// Bits `[34 - lsh, 31]` of a 32-bit `x`: `x << lsh` fits 35 signed bits iff they all equal
    /// the sign (empty for `lsh <= 2`).
    fn ovf_mask(&self) -> u64 {
        if self.lsh <= 2 {
            0
        } else {
            0xFFFF_FFFFu64 & !((1u64 << (34 - self.lsh.min(34))) - 1)
        }
    }
}

/// Most alignment classes of a [`SatAdd::classes`] (and modules of a build with state shifts).
pub const MAX_CLASSES: usize = 8;

/// Width of the internal alignment arithmetic of [`SatAdd`] and [`Rescale`]. A left-shifted
/// addend whose magnitude would reach `2^34` is replaced by `+-2^34` (every such value
/// saturates a 32-bit accumulator or a narrow format exactly as the true one does, since
/// `|acc| <= 2^31`), and a right shift beyond 33 gives 0 for every 32-bit operand (so it is
/// capped at 33): sums stay below `2^35 + 2^31` in magnitude and 37 bits are exact.
pub const W_BITS: u32 = 37;
const W_MASK: u64 = (1u64 << W_BITS) - 1;
/// The replacement of an overflowing left shift: `2^34`.
const W_BIG: u64 = 1u64 << 34;

/// 32-bit saturating accumulate with a binary-point change of the addend.
///
/// **Computes** `y = sat32(acc + align(x, from, to))` and `sat` = whether it clipped, when `en`;
/// otherwise `y = acc`, `sat = 0` — `thermo_sim::qformat::{align, acc_add}` — for every 32-bit
/// two's-complement `x` and shift, in [`W_BITS`]-bit arithmetic (a left shift capped at 32 and
/// an aligned addend beyond `+-2^34` saturate exactly like the true ones). Built with
/// [`SatAdd::dual`], `alt` selects a second source format `from_alt` (one adder serves two
/// exclusive accumulations, e.g. a lane's coupling and bus-line products); with
/// [`SatAdd::new`] `alt` is ignored. **Ports** `acc`, `x`, `en`, `alt` in; `y`, `sat` out.
/// **Latency** 0. Proven by `arith::tests` (including `satadd_rescale_full_range` and
/// `satadd_dual_selects_alignment`), `lane::tests` and every substrate test.
#[derive(LogicBlock)]
pub struct SatAdd {
    /// Accumulator in.
    pub acc: Signal<In, Bits<32>>,
    /// Addend before alignment.
    pub x: Signal<In, Bits<32>>,
    /// Perform the addition.
    pub en: Signal<In, Bit>,
    /// Align `x` from the second source format (a [`SatAdd::dual`] only).
    pub alt: Signal<In, Bit>,
    /// The class whose alignment the second source format takes (a [`SatAdd::classes`] only;
    /// 0 otherwise).
    pub cls: Signal<In, Bits<4>>,
    /// Result.
    pub y: Signal<Out, Bits<32>>,
    /// The addition saturated.
    pub sat: Signal<Out, Bit>,
    lk0: Constant<Bits<8>>,
    lk1: Constant<Bits<8>>,
    lk2: Constant<Bits<8>>,
    lk3: Constant<Bits<8>>,
    lk4: Constant<Bits<8>>,
    lk5: Constant<Bits<8>>,
    lk6: Constant<Bits<8>>,
    lk7: Constant<Bits<8>>,
    rk0: Constant<Bits<8>>,
    rk1: Constant<Bits<8>>,
    rk2: Constant<Bits<8>>,
    rk3: Constant<Bits<8>>,
    rk4: Constant<Bits<8>>,
    rk5: Constant<Bits<8>>,
    rk6: Constant<Bits<8>>,
    rk7: Constant<Bits<8>>,
    one37: Constant<Bits<37>>,
    wmask: Constant<Bits<37>>,
    ones32: Constant<Bits<32>>,
    c34: Constant<Bits<8>>,
    lsh_b: Signal<Local, Bits<8>>,
    rsh_b: Signal<Local, Bits<8>>,
    half_b: Signal<Local, Bits<37>>,
    fill_b: Signal<Local, Bits<37>>,
    omask_b: Signal<Local, Bits<32>>,
    xmb: Signal<Local, Bits<32>>,
    t1b: Signal<Local, Bits<37>>,
    t2b: Signal<Local, Bits<37>>,
    tb: Signal<Local, Bits<37>>,
    lsh: Constant<Bits<8>>,
    rsh: Constant<Bits<8>>,
    half: Constant<Bits<37>>,
    fill: Constant<Bits<37>>,
    sext: Constant<Bits<37>>,
    hmask: Constant<Bits<37>>,
    omask: Constant<Bits<32>>,
    big: Constant<Bits<37>>,
    nbig: Constant<Bits<37>>,
    xm: Signal<Local, Bits<32>>,
    pmax: Constant<Bits<32>>,
    nmin: Constant<Bits<32>>,
    xe: Signal<Local, Bits<37>>,
    ae: Signal<Local, Bits<37>>,
    t1: Signal<Local, Bits<37>>,
    t2: Signal<Local, Bits<37>>,
    t: Signal<Local, Bits<37>>,
    s: Signal<Local, Bits<37>>,
    u: Signal<Local, Bits<37>>,
}

impl SatAdd {
    /// An accumulate whose addend has `from` fractional bits and the accumulator `to`.
    pub fn new(from: u32, to: u32) -> Self {
        Self::dual(from, from, to)
    }
    /// An accumulate whose addend has `from` fractional bits (`from_alt` while `alt`) and the
    /// accumulator `to`.
    pub fn dual(from: u32, from_alt: u32, to: u32) -> Self {
        Self::classes(from, from_alt, to, &[0])
    }
    /// [`SatAdd::dual`] whose second alignment depends on a class: while `alt`, `x` aligns
    /// from `from_alt` to `to + extra[cls]` (at most [`MAX_CLASSES`] classes; a module's state
    /// shift, `docs/fixed-point.md` §1). With one class the alignment is a constant.
    pub fn classes(from: u32, from_alt: u32, to: u32, extra: &[u32]) -> Self {
        assert!(
            !extra.is_empty() && extra.len() <= MAX_CLASSES,
            "{} alignment classes (1 to {MAX_CLASSES})",
            extra.len()
        );
        let k = AlignK::new(from, to, 32);
        let kb: Vec<AlignK> = (0..MAX_CLASSES)
            .map(|c| AlignK::new(from_alt, to + extra.get(c).copied().unwrap_or(extra[0]), 32))
            .collect();
        let l = |c: usize| Constant::new((kb[c].lsh as u64).to_bits());
        let r = |c: usize| Constant::new((kb[c].rsh as u64).to_bits());
        SatAdd {
            acc: Default::default(),
            x: Default::default(),
            en: Default::default(),
            alt: Default::default(),
            cls: Default::default(),
            y: Default::default(),
            sat: Default::default(),
            lk0: l(0),
            lk1: l(1),
            lk2: l(2),
            lk3: l(3),
            lk4: l(4),
            lk5: l(5),
            lk6: l(6),
            lk7: l(7),
            rk0: r(0),
            rk1: r(1),
            rk2: r(2),
            rk3: r(3),
            rk4: r(4),
            rk5: r(5),
            rk6: r(6),
            rk7: r(7),
            one37: Constant::new(1u64.to_bits()),
            wmask: Constant::new(W_MASK.to_bits()),
            ones32: Constant::new(0xFFFF_FFFFu64.to_bits()),
            c34: Constant::new(34u64.to_bits()),
            lsh_b: Default::default(),
            rsh_b: Default::default(),
            half_b: Default::default(),
            fill_b: Default::default(),
            omask_b: Default::default(),
            xmb: Default::default(),
            t1b: Default::default(),
            t2b: Default::default(),
            tb: Default::default(),
            lsh: Constant::new((k.lsh as u64).to_bits()),
            rsh: Constant::new((k.rsh as u64).to_bits()),
            half: Constant::new(k.half().to_bits()),
            fill: Constant::new(k.fill().to_bits()),
            sext: Constant::new((W_MASK & !0xFFFF_FFFFu64).to_bits()),
            omask: Constant::new(k.ovf_mask().to_bits()),
            big: Constant::new(W_BIG.to_bits()),
            nbig: Constant::new((W_BIG.wrapping_neg() & W_MASK).to_bits()),
            xm: Default::default(),
            hmask: Constant::new((W_MASK & !((1u64 << 31) - 1)).to_bits()),
            pmax: Constant::new(0x7FFF_FFFFu64.to_bits()),
            nmin: Constant::new(0x8000_0000u64.to_bits()),
            xe: Default::default(),
            ae: Default::default(),
            t1: Default::default(),
            t2: Default::default(),
            t: Default::default(),
            s: Default::default(),
            u: Default::default(),
        }
    }
}

impl Logic for SatAdd {
    #[hdl_gen]
    fn update(&mut self) {
        self.xe.next = bit_cast::<37, 32>(self.x.val());
        if self.x.val().get_bit(31) {
            self.xe.next = bit_cast::<37, 32>(self.x.val()) | self.sext.val();
        }
        self.ae.next = bit_cast::<37, 32>(self.acc.val());
        if self.acc.val().get_bit(31) {
            self.ae.next = bit_cast::<37, 32>(self.acc.val()) | self.sext.val();
        }
        self.t1.next = (self.xe.val() << self.lsh.val()) + self.half.val();
        self.t2.next = self.t1.val() >> self.rsh.val();
        self.t.next = self.t2.val();
        if self.t1.val().get_bit(36) {
            self.t.next = self.t2.val() | self.fill.val();
        }
        // a left shift that would leave 35 signed bits saturates like +-2^34
        self.xm.next = self.x.val() & self.omask.val();
        if self.xm.val() != self.omask.val() {
            if self.xm.val().any() {
                self.t.next = self.big.val();
                if self.x.val().get_bit(31) {
                    self.t.next = self.nbig.val();
                }
            }
        }
        // the second alignment (identical to the first unless built with `dual`), its shifts
        // chosen by class and its rounding half, sign fill and overflow mask derived from them
        // (AlignK's, for every class)
        self.lsh_b.next = self.lk0.val();
        self.rsh_b.next = self.rk0.val();
        if self.cls.val() == 1 {
            self.lsh_b.next = self.lk1.val();
            self.rsh_b.next = self.rk1.val();
        }
        if self.cls.val() == 2 {
            self.lsh_b.next = self.lk2.val();
            self.rsh_b.next = self.rk2.val();
        }
        if self.cls.val() == 3 {
            self.lsh_b.next = self.lk3.val();
            self.rsh_b.next = self.rk3.val();
        }
        if self.cls.val() == 4 {
            self.lsh_b.next = self.lk4.val();
            self.rsh_b.next = self.rk4.val();
        }
        if self.cls.val() == 5 {
            self.lsh_b.next = self.lk5.val();
            self.rsh_b.next = self.rk5.val();
        }
        if self.cls.val() == 6 {
            self.lsh_b.next = self.lk6.val();
            self.rsh_b.next = self.rk6.val();
        }
        if self.cls.val() == 7 {
            self.lsh_b.next = self.lk7.val();
            self.rsh_b.next = self.rk7.val();
        }
        self.half_b.next = (self.one37.val() << self.rsh_b.val()) >> 1;
        self.fill_b.next = !(self.wmask.val() >> self.rsh_b.val()) & self.wmask.val();
        self.omask_b.next = 0.into();
        if self.lsh_b.val() > 2 {
            self.omask_b.next = self.ones32.val() << (self.c34.val() - self.lsh_b.val());
        }
        self.t1b.next = (self.xe.val() << self.lsh_b.val()) + self.half_b.val();
        self.t2b.next = self.t1b.val() >> self.rsh_b.val();
        self.tb.next = self.t2b.val();
        if self.t1b.val().get_bit(36) {
            self.tb.next = self.t2b.val() | self.fill_b.val();
        }
        self.xmb.next = self.x.val() & self.omask_b.val();
        if self.xmb.val() != self.omask_b.val() {
            if self.xmb.val().any() {
                self.tb.next = self.big.val();
                if self.x.val().get_bit(31) {
                    self.tb.next = self.nbig.val();
                }
            }
        }
        if self.alt.val() {
            self.t.next = self.tb.val();
        }
        self.s.next = self.ae.val() + self.t.val();
        // in range iff bits 36..31 of the sum all equal its sign (no add-and-compare)
        self.u.next = self.s.val() & self.hmask.val();
        self.y.next = self.acc.val();
        self.sat.next = false;
        if self.en.val() {
            if (self.u.val() == 0) | (self.u.val() == self.hmask.val()) {
                self.y.next = self.s.val().get_bits::<32>(0);
            } else {
                self.sat.next = true;
                if self.s.val().get_bit(36) {
                    self.y.next = self.nmin.val();
                } else {
                    self.y.next = self.pmax.val();
                }
            }
        }
    }
}

/// Rounding, saturating rescale of a 32-bit value into a narrow format.
///
/// **Computes** `y = sat_bits(align(x, from, to))` (sign-extended to 32 bits) and `sat` —
/// the state write-back (`finish`) and both steps of a bus line (`line`) of
/// `thermo_sim::engine::Fixed`. **Ports** `x` in; `y`, `sat` out. **Latency** 0. Proven by
/// `lane::tests`, `bus::tests` and every substrate test.
#[derive(LogicBlock)]
pub struct Rescale {
    /// Value in (two's complement, `from` fractional bits).
    pub x: Signal<In, Bits<32>>,
    /// Result, `bits` wide, sign-extended to 32.
    pub y: Signal<Out, Bits<32>>,
    /// The result was clipped.
    pub sat: Signal<Out, Bit>,
    lsh: Constant<Bits<8>>,
    rsh: Constant<Bits<8>>,
    half: Constant<Bits<37>>,
    fill: Constant<Bits<37>>,
    sext: Constant<Bits<37>>,
    hmask: Constant<Bits<37>>,
    omask: Constant<Bits<32>>,
    big: Constant<Bits<37>>,
    nbig: Constant<Bits<37>>,
    xm: Signal<Local, Bits<32>>,
    pmax: Constant<Bits<32>>,
    nmin: Constant<Bits<32>>,
    xe: Signal<Local, Bits<37>>,
    t1: Signal<Local, Bits<37>>,
    t2: Signal<Local, Bits<37>>,
    t: Signal<Local, Bits<37>>,
    u: Signal<Local, Bits<37>>,
}

impl Rescale {
    /// Rescale from `from` to `to` fractional bits into a `bits`-bit format.
    pub fn new(from: u32, to: u32, bits: u32) -> Self {
        // |x| <= 2^31: a left shift beyond 20 saturates every non-zero value of a <= 16-bit
        // format exactly as the true shift does (and the W_BITS-bit datapath clamps at +-2^34).
        let k = AlignK::new(from, to, 20);
        let maxc = (1i64 << (bits - 1)) - 1;
        let minc = -(1i64 << (bits - 1));
        Rescale {
            x: Default::default(),
            y: Default::default(),
            sat: Default::default(),
            lsh: Constant::new((k.lsh as u64).to_bits()),
            rsh: Constant::new((k.rsh as u64).to_bits()),
            half: Constant::new(k.half().to_bits()),
            fill: Constant::new(k.fill().to_bits()),
            sext: Constant::new((W_MASK & !0xFFFF_FFFFu64).to_bits()),
            omask: Constant::new(k.ovf_mask().to_bits()),
            big: Constant::new(W_BIG.to_bits()),
            nbig: Constant::new((W_BIG.wrapping_neg() & W_MASK).to_bits()),
            xm: Default::default(),
            hmask: Constant::new((W_MASK & !((1u64 << (bits - 1)) - 1)).to_bits()),
            pmax: Constant::new((maxc as u32 as u64).to_bits()),
            nmin: Constant::new((minc as u32 as u64).to_bits()),
            xe: Default::default(),
            t1: Default::default(),
            t2: Default::default(),
            t: Default::default(),
            u: Default::default(),
        }
    }
}

impl Logic for Rescale {
    #[hdl_gen]
    fn update(&mut self) {
        self.xe.next = bit_cast::<37, 32>(self.x.val());
        if self.x.val().get_bit(31) {
            self.xe.next = bit_cast::<37, 32>(self.x.val()) | self.sext.val();
        }
        self.t1.next = (self.xe.val() << self.lsh.val()) + self.half.val();
        self.t2.next = self.t1.val() >> self.rsh.val();
        self.t.next = self.t2.val();
        if self.t1.val().get_bit(36) {
            self.t.next = self.t2.val() | self.fill.val();
        }
        // a left shift that would leave 35 signed bits saturates like +-2^34
        self.xm.next = self.x.val() & self.omask.val();
        if self.xm.val() != self.omask.val() {
            if self.xm.val().any() {
                self.t.next = self.big.val();
                if self.x.val().get_bit(31) {
                    self.t.next = self.nbig.val();
                }
            }
        }
        // in range iff bits 36..bits-1 all equal the sign (no add-and-compare)
        self.u.next = self.t.val() & self.hmask.val();
        self.sat.next = false;
        self.y.next = self.t.val().get_bits::<32>(0);
        if (self.u.val() != 0) & (self.u.val() != self.hmask.val()) {
            self.sat.next = true;
            if self.t.val().get_bit(36) {
                self.y.next = self.nmin.val();
            } else {
                self.y.next = self.pmax.val();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtl::simx::settle;
    use thermo_sim::qformat::{acc_add, align, QFormat};

    fn b32(v: i64) -> Bits<32> {
        (v as u32 as u64).to_bits()
    }
    fn i32of(b: Bits<32>) -> i64 {
        b.to_u64() as u32 as i32 as i64
    }

    #[test]
    fn mul16s_exhaustive_corners() {
        let mut m = Mul16s::default();
        m.connect_all();
        let vals = [-32768i64, -32767, -1, 0, 1, 2, 12345, -12345, 32767];
        for &a in &vals {
            for &b in &vals {
                m.a.next = ((a as u16) as u64).to_bits();
                m.b.next = ((b as u16) as u64).to_bits();
                settle(&mut m).unwrap();
                assert_eq!(m.p.val().to_u64() as u32 as i32 as i64, a * b, "{a}*{b}");
            }
        }
    }

    #[test]
    fn satadd_and_rescale_match_qformat() {
        let mut rng = 0x1234_5678u64;
        let mut next = || thermo_sim::noise::splitmix64(&mut rng);
        for (from, to) in [(24u32, 24u32), (22, 24), (26, 24), (10, 30), (40, 2)] {
            let mut sa = SatAdd::new(from, to);
            sa.connect_all();
            for n in 0..400 {
                let acc = match n % 4 {
                    0 => i32::MAX as i64,
                    1 => i32::MIN as i64,
                    _ => next() as i32 as i64,
                };
                let x = if from == to {
                    next() as i32 as i64
                } else {
                    (next() as i32 as i64) >> 1
                };
                let x = match n % 7 {
                    0 => 1 << 30,
                    1 => -(1 << 30),
                    _ => x,
                };
                sa.acc.next = b32(acc);
                sa.x.next = b32(x);
                sa.en.next = true;
                settle(&mut sa).unwrap();
                let (e, s) = acc_add(acc as i32, align(x, from, to));
                assert_eq!(i32of(sa.y.val()), e as i64, "{from}->{to} acc {acc} x {x}");
                assert_eq!(sa.sat.val(), s);
            }
        }
        for (from, to, bits) in [(24u32, 10u32, 16u32), (24, 8, 12), (8, 24, 16), (20, 20, 8)] {
            let mut r = Rescale::new(from, to, bits);
            r.connect_all();
            let q = QFormat::new(bits, to);
            for n in 0..400 {
                let x = match n % 5 {
                    0 => i32::MAX as i64,
                    1 => i32::MIN as i64,
                    2 => (next() as i32 as i64) >> 12,
                    _ => next() as i32 as i64,
                };
                r.x.next = b32(x);
                settle(&mut r).unwrap();
                let (e, s) = q.saturate(align(x, from, to));
                assert_eq!(i32of(r.y.val()), e, "{from}->{to}/{bits} x {x}");
                assert_eq!(r.sat.val(), s);
            }
        }
    }

    /// A dual accumulate aligns from `from` while `alt` is low and from `from_alt` while it is
    /// high (random operands with the extremes, shift pairs in both directions).
    #[test]
    fn satadd_dual_selects_alignment() {
        let mut rng = 0x5eed_0d0du64;
        let mut next = || thermo_sim::noise::splitmix64(&mut rng);
        for (from, from_alt, to) in [(24u32, 22u32, 24u32), (24, 30, 24), (10, 40, 20), (8, 0, 8)] {
            let mut sa = SatAdd::dual(from, from_alt, to);
            sa.connect_all();
            for n in 0..600 {
                let acc = match n % 5 {
                    0 => i32::MAX as i64,
                    1 => i32::MIN as i64,
                    _ => next() as i32 as i64,
                };
                let x = match n % 7 {
                    0 => i32::MIN as i64,
                    1 => i32::MAX as i64,
                    2 => (next() as i32 as i64) >> (next() % 32),
                    _ => next() as i32 as i64,
                };
                let alt = n % 2 == 1;
                let f = if alt { from_alt } else { from };
                sa.acc.next = b32(acc);
                sa.x.next = b32(x);
                sa.en.next = true;
                sa.alt.next = alt;
                settle(&mut sa).unwrap();
                let (e, s) = acc_add(acc as i32, align(x, f, to));
                assert_eq!(i32of(sa.y.val()), e as i64, "{f}->{to} acc {acc} x {x}");
                assert_eq!(sa.sat.val(), s, "{f}->{to} acc {acc} x {x}");
            }
        }
    }

    /// The W_BITS-bit alignment is exact over the whole operand range: every 32-bit `x` (not only
    /// products), every left shift up to the cap and right shifts beyond 33.
    #[test]
    fn satadd_rescale_full_range() {
        let mut rng = 0x9e37_79b9u64;
        let mut next = || thermo_sim::noise::splitmix64(&mut rng);
        let pairs = [
            (0u32, 32u32),
            (0, 31),
            (4, 12),
            (0, 3),
            (0, 2),
            (30, 32),
            (60, 2),
            (45, 10),
            (34, 0),
        ];
        for (from, to) in pairs {
            let mut sa = SatAdd::new(from, to);
            sa.connect_all();
            for n in 0..600 {
                let acc = match n % 5 {
                    0 => i32::MAX as i64,
                    1 => i32::MIN as i64,
                    2 => 0,
                    _ => next() as i32 as i64,
                };
                let sh = (next() % 33) as u32;
                let x = match n % 6 {
                    0 => i32::MIN as i64,
                    1 => i32::MAX as i64,
                    2 => (next() as i32 as i64) >> sh,
                    3 => -((next() as i32 as i64).abs() >> sh) - 1,
                    _ => next() as i32 as i64,
                };
                sa.acc.next = b32(acc);
                sa.x.next = b32(x);
                sa.en.next = true;
                settle(&mut sa).unwrap();
                // the exact value in i128 (align's i64 shift would wrap for x << 32)
                let t = if to >= from {
                    (x as i128) << (to - from)
                } else {
                    align(x, from, to) as i128
                };
                let sum = acc as i128 + t;
                let (e, s) = if sum > i32::MAX as i128 {
                    (i32::MAX as i64, true)
                } else if sum < i32::MIN as i128 {
                    (i32::MIN as i64, true)
                } else {
                    (sum as i64, false)
                };
                assert_eq!(i32of(sa.y.val()), e, "{from}->{to} acc {acc} x {x}");
                assert_eq!(sa.sat.val(), s, "{from}->{to} acc {acc} x {x}");
            }
        }
        for (from, to, bits) in [
            (0u32, 20u32, 16u32),
            (4, 24, 2),
            (0, 3, 16),
            (50, 2, 16),
            (34, 0, 8),
        ] {
            let mut r = Rescale::new(from, to, bits);
            r.connect_all();
            let q = QFormat::new(bits, to);
            for n in 0..600 {
                let sh = (next() % 33) as u32;
                let x = match n % 5 {
                    0 => i32::MAX as i64,
                    1 => i32::MIN as i64,
                    2 => (next() as i32 as i64) >> sh,
                    _ => next() as i32 as i64,
                };
                r.x.next = b32(x);
                settle(&mut r).unwrap();
                let (e, s) = q.saturate(align(x, from, to));
                assert_eq!(i32of(r.y.val()), e, "{from}->{to}/{bits} x {x}");
                assert_eq!(r.sat.val(), s);
            }
        }
    }
}
