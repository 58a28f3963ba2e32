//! Signed fixed-point formats and the two primitive operations of the hardware arithmetic:
//! rounding right-shift (round half up) and saturation (counted, never wrapped).
//!
//! This module is the single definition of the Q-format rules. The fixed engine
//! ([`crate::engine::Fixed`]), the RTL generator and the quantisation sweeps all call it.

use serde::{Deserialize, Serialize};

/// A signed two's-complement fixed-point format: `bits` total bits including sign,
/// `frac` of them after the binary point. A stored integer `v` means `v * 2^-frac`.
///
/// Every format used by the datapath has `bits <= 16` (the hardware multiplier is 16x16->32),
/// except the accumulator ([`ACC_BITS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QFormat {
    /// Total width in bits, sign included (2..=16 for stored values).
    pub bits: u32,
    /// Bits after the binary point (may exceed `bits` for small-magnitude constants).
    pub frac: u32,
}

/// Width of every MAC accumulator, in bits. Products and sums are saturated to this width.
pub const ACC_BITS: u32 = 32;

impl QFormat {
    /// A format with `bits` total bits and `frac` fractional bits.
    pub const fn new(bits: u32, frac: u32) -> Self {
        QFormat { bits, frac }
    }
    /// Largest representable integer code, `2^(bits-1) - 1`.
    pub fn max_code(self) -> i64 {
        (1i64 << (self.bits - 1)) - 1
    }
    /// Smallest representable integer code, `-2^(bits-1)`.
    pub fn min_code(self) -> i64 {
        -(1i64 << (self.bits - 1))
    }
    /// Weight of one LSB, `2^-frac`.
    pub fn lsb(self) -> f64 {
        (-(self.frac as f64)).exp2()
    }
    /// Largest representable real value.
    pub fn max_value(self) -> f64 {
        self.max_code() as f64 * self.lsb()
    }
    /// Smallest (most negative) representable real value.
    pub fn min_value(self) -> f64 {
        self.min_code() as f64 * self.lsb()
    }
    /// Real value of an integer code.
    pub fn to_f64(self, code: i64) -> f64 {
        code as f64 * self.lsb()
    }
    /// Nearest code to `x` (ties rounded up, towards +inf), before saturation.
    pub fn round_code(self, x: f64) -> i64 {
        (x * (self.frac as f64).exp2() + 0.5).floor() as i64
    }
    /// Quantise `x`: nearest code, ties up, saturated to the format. Returns the code and whether
    /// it saturated.
    pub fn quantize(self, x: f64) -> (i64, bool) {
        let c = self.round_code(x);
        if c > self.max_code() {
            (self.max_code(), true)
        } else if c < self.min_code() {
            (self.min_code(), true)
        } else {
            (c, false)
        }
    }
    /// Whether `x` is inside the representable range after rounding.
    pub fn fits(self, x: f64) -> bool {
        !self.quantize(x).1
    }
    /// Clamp a code to the format; returns the code and whether it saturated.
    #[inline(always)]
    pub fn saturate(self, v: i64) -> (i64, bool) {
        let hi = self.max_code();
        let lo = self.min_code();
        if v > hi {
            (hi, true)
        } else if v < lo {
            (lo, true)
        } else {
            (v, false)
        }
    }
    /// `Q<int>.<frac>` notation (integer bits exclude the sign), e.g. `Q5.10` for 16 bits.
    pub fn name(self) -> String {
        format!(
            "Q{}.{} ({} bits)",
            self.bits as i64 - 1 - self.frac as i64,
            self.frac,
            self.bits
        )
    }
}

/// Change the binary point of an integer `v` from `from_frac` to `to_frac` fractional bits.
///
/// Moving the point left (more fractional bits) is an exact left shift. Moving it right is the
/// hardware's only rounding: add half an LSB of the result, then arithmetic shift right — *round
/// half up* (ties towards +inf). No saturation here; callers saturate the result.
#[inline(always)]
pub fn align(v: i64, from_frac: u32, to_frac: u32) -> i64 {
    if to_frac >= from_frac {
        v << (to_frac - from_frac)
    } else {
        let s = from_frac - to_frac;
        (v + (1i64 << (s - 1))) >> s
    }
}

/// Saturating add into the 32-bit accumulator. Returns the new value and whether it saturated.
#[inline(always)]
pub fn acc_add(acc: i32, term: i64) -> (i32, bool) {
    let s = acc as i64 + term;
    if s > i32::MAX as i64 {
        (i32::MAX, true)
    } else if s < i32::MIN as i64 {
        (i32::MIN, true)
    } else {
        (s as i32, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up_and_saturation_clamps() {
        let q = QFormat::new(16, 10);
        assert_eq!(q.quantize(0.5 / 1024.0), (1, false));
        assert_eq!(q.quantize(-0.5 / 1024.0), (0, false));
        assert_eq!(q.quantize(100.0), (32767, true));
        assert_eq!(q.quantize(-100.0), (-32768, true));
        assert_eq!(align(3, 2, 0), 1); // 0.75 -> 1
        assert_eq!(align(2, 2, 0), 1); // 0.5 -> 1 (tie up)
        assert_eq!(align(-2, 2, 0), 0); // -0.5 -> 0 (tie up)
        assert_eq!(align(-3, 2, 0), -1); // -0.75 -> -1
        assert_eq!(align(5, 0, 3), 40);
        assert_eq!(acc_add(i32::MAX - 1, 5), (i32::MAX, true));
        assert_eq!(acc_add(i32::MIN + 1, -5), (i32::MIN, true));
    }
}
