//! Combinational arithmetic blocks of the datapath: the signed 16x16 multiplier, the 32-bit
//! saturating accumulate with a constant binary-point change, and the rounding/saturating
//! rescale. Each is exactly one `thermo_sim::qformat` operation.

use rust_hdl::prelude::*;

/// Signed 16x16 -> 32 multiply built on rust-hdl's unsigned `*`.
///
/// **Computes** `p = a * b` for two's-complement `a`, `b` (the unsigned product minus
/// `b << 16` when `a < 0` and minus `a << 16` when `b < 0`, modulo 2^32 — exact, since the
/// signed product fits 32 bits). **Ports** `a`, `b` in, `p` out. **Latency** 0 (combinational).
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
    #[hdl_gen]
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
}

/// Constants of a binary-point change `align(v, from, to)` (docs/fixed-point.md §2) in 64-bit
/// arithmetic: left shift `lsh`, or add `half` and shift right arithmetically by `rsh`.
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
                rsh: from - to,
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
            !(u64::MAX >> self.rsh)
        }
    }
}

/// 32-bit saturating accumulate with a binary-point change of the addend.
///
/// **Computes** `y = sat32(acc + align(x, from, to))` and `sat` = whether it clipped, when `en`;
/// otherwise `y = acc`, `sat = 0` — `thermo_sim::qformat::{align, acc_add}`. `x` is a 32-bit
/// two's-complement value; when the left shift is non-zero, `|x| <= 2^30` (a 16x16 product), so a
/// shift capped at 32 saturates exactly like the true one. **Ports** `acc`, `x`, `en` in; `y`,
/// `sat` out. **Latency** 0. Proven by `lane::tests` and every substrate test.
#[derive(LogicBlock)]
pub struct SatAdd {
    /// Accumulator in.
    pub acc: Signal<In, Bits<32>>,
    /// Addend before alignment.
    pub x: Signal<In, Bits<32>>,
    /// Perform the addition.
    pub en: Signal<In, Bit>,
    /// Result.
    pub y: Signal<Out, Bits<32>>,
    /// The addition saturated.
    pub sat: Signal<Out, Bit>,
    lsh: Constant<Bits<8>>,
    rsh: Constant<Bits<8>>,
    half: Constant<Bits<64>>,
    fill: Constant<Bits<64>>,
    sext: Constant<Bits<64>>,
    off: Constant<Bits<64>>,
    lim: Constant<Bits<64>>,
    pmax: Constant<Bits<32>>,
    nmin: Constant<Bits<32>>,
    xe: Signal<Local, Bits<64>>,
    ae: Signal<Local, Bits<64>>,
    t1: Signal<Local, Bits<64>>,
    t2: Signal<Local, Bits<64>>,
    t: Signal<Local, Bits<64>>,
    s: Signal<Local, Bits<64>>,
    u: Signal<Local, Bits<64>>,
}

impl SatAdd {
    /// An accumulate whose addend has `from` fractional bits and the accumulator `to`.
    pub fn new(from: u32, to: u32) -> Self {
        let k = AlignK::new(from, to, 32);
        SatAdd {
            acc: Default::default(),
            x: Default::default(),
            en: Default::default(),
            y: Default::default(),
            sat: Default::default(),
            lsh: Constant::new((k.lsh as u64).to_bits()),
            rsh: Constant::new((k.rsh as u64).to_bits()),
            half: Constant::new(k.half().to_bits()),
            fill: Constant::new(k.fill().to_bits()),
            sext: Constant::new(0xFFFF_FFFF_0000_0000u64.to_bits()),
            off: Constant::new((1u64 << 31).to_bits()),
            lim: Constant::new((1u64 << 32).to_bits()),
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
        self.xe.next = bit_cast::<64, 32>(self.x.val());
        if self.x.val().get_bit(31) {
            self.xe.next = bit_cast::<64, 32>(self.x.val()) | self.sext.val();
        }
        self.ae.next = bit_cast::<64, 32>(self.acc.val());
        if self.acc.val().get_bit(31) {
            self.ae.next = bit_cast::<64, 32>(self.acc.val()) | self.sext.val();
        }
        self.t1.next = (self.xe.val() << self.lsh.val()) + self.half.val();
        self.t2.next = self.t1.val() >> self.rsh.val();
        self.t.next = self.t2.val();
        if self.t1.val().get_bit(63) {
            self.t.next = self.t2.val() | self.fill.val();
        }
        self.s.next = self.ae.val() + self.t.val();
        self.u.next = self.s.val() + self.off.val();
        self.y.next = self.acc.val();
        self.sat.next = false;
        if self.en.val() {
            if self.u.val() < self.lim.val() {
                self.y.next = self.s.val().get_bits::<32>(0);
            } else {
                self.sat.next = true;
                if self.s.val().get_bit(63) {
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
    half: Constant<Bits<64>>,
    fill: Constant<Bits<64>>,
    sext: Constant<Bits<64>>,
    off: Constant<Bits<64>>,
    lim: Constant<Bits<64>>,
    pmax: Constant<Bits<32>>,
    nmin: Constant<Bits<32>>,
    xe: Signal<Local, Bits<64>>,
    t1: Signal<Local, Bits<64>>,
    t2: Signal<Local, Bits<64>>,
    t: Signal<Local, Bits<64>>,
    u: Signal<Local, Bits<64>>,
}

impl Rescale {
    /// Rescale from `from` to `to` fractional bits into a `bits`-bit format.
    pub fn new(from: u32, to: u32, bits: u32) -> Self {
        // |x| <= 2^31: a left shift beyond 20 saturates every non-zero value of a <= 16-bit
        // format exactly as the true shift does.
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
            sext: Constant::new(0xFFFF_FFFF_0000_0000u64.to_bits()),
            off: Constant::new((1u64 << (bits - 1)).to_bits()),
            lim: Constant::new((1u64 << bits).to_bits()),
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
        self.xe.next = bit_cast::<64, 32>(self.x.val());
        if self.x.val().get_bit(31) {
            self.xe.next = bit_cast::<64, 32>(self.x.val()) | self.sext.val();
        }
        self.t1.next = (self.xe.val() << self.lsh.val()) + self.half.val();
        self.t2.next = self.t1.val() >> self.rsh.val();
        self.t.next = self.t2.val();
        if self.t1.val().get_bit(63) {
            self.t.next = self.t2.val() | self.fill.val();
        }
        self.u.next = self.t.val() + self.off.val();
        self.sat.next = false;
        self.y.next = self.t.val().get_bits::<32>(0);
        if self.u.val() >= self.lim.val() {
            self.sat.next = true;
            if self.t.val().get_bit(63) {
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
    use crate::simx::settle;
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
}
