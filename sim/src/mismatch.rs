//! Analog non-idealities: the substrate a physical implementation would realise for a given
//! description, with seeded component mismatch and slow drift.
//!
//! A physical coupling is one element shared by both units it joins, so mismatch keeps `A`
//! symmetric (the energy exists, and EqProp's estimates stay readout-only); what changes is that
//! the realised values are not the written ones. Per element, with `N` independent standard
//! normal draws fixed by the seed:
//!
//! - unit gain: stiffness `a_i (1 + gain N)` (the unit's leak);
//! - unit offset: bias `b_i + offset N` (energy units);
//! - coupling: `A_ij (1 + coupling N)` per pair, bus gains `sigma_r (1 + coupling N)` and bus
//!   factors `u, v (1 + coupling N)` element by element;
//! - drift: every relative factor above moves further by `drift N' t` at training step `t` (a
//!   slow linear drift along a seeded direction `N'`).
//!
//! [`Mismatch::realise`] maps the written substrate to the realised one; the engines run the
//! realised substrate.

use crate::model::Substrate;
use crate::noise::SplitDraws;
use serde::{Deserialize, Serialize};

/// A seeded mismatch model (all magnitudes relative, except `offset`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Relative spread of the units' gains (stiffness).
    pub gain: f64,
    /// Spread of the units' bias offsets (energy units).
    pub offset: f64,
    /// Relative spread of couplings, bus gains and bus factors.
    pub coupling: f64,
    /// Relative drift per training step.
    pub drift: f64,
    /// Seed of the draws.
    pub seed: u64,
}

impl Mismatch {
    /// Check the magnitudes: finite, non-negative, relative spreads below 0.5.
    pub fn check(&self) -> Result<(), String> {
        for (name, v, max) in [
            ("gain", self.gain, 0.5),
            ("offset", self.offset, f64::INFINITY),
            ("coupling", self.coupling, 0.5),
            ("drift", self.drift, 0.01),
        ] {
            if !(v.is_finite() && v >= 0.0 && v < max) {
                return Err(format!(
                    "mismatch {name} = {v}: must be finite, >= 0 and < {max}"
                ));
            }
        }
        Ok(())
    }

    /// Whether the model changes anything.
    pub fn is_ideal(&self) -> bool {
        self.gain == 0.0 && self.offset == 0.0 && self.coupling == 0.0 && self.drift == 0.0
    }

    /// The substrate realised for the written `s` at training step `step`. The draws depend
    /// only on the seed and the element's position, not on the written values.
    pub fn realise(&self, s: &Substrate, step: usize) -> Substrate {
        let mut r = s.clone();
        let t = step as f64;
        // Static and drift draws from separate streams, element by element in a fixed order.
        let mut st = SplitDraws(self.seed ^ 0x6d69_736d_6174_6368);
        let mut dr = SplitDraws(self.seed ^ 0x0064_7269_6674);
        let mut rel = |spread: f64| -> f64 {
            let (a, b) = (st.normal(), dr.normal());
            1.0 + spread * a + self.drift * t * b
        };
        for a in &mut r.stiffness {
            *a *= rel(self.gain);
        }
        let mut off = SplitDraws(self.seed ^ 0x6f66_6673_6574);
        for b in &mut r.bias {
            *b += self.offset * off.normal();
        }
        for i in 0..r.units() {
            for p in r.row_ptr[i]..r.row_ptr[i + 1] {
                let j = r.col[p];
                if i < j {
                    let f = rel(self.coupling);
                    r.val[p] *= f;
                    let q = r.mirror(i, p);
                    r.val[q] = r.val[p];
                }
            }
        }
        for bus in &mut r.buses {
            for k in 0..bus.sigma.len() {
                bus.sigma[k] *= rel(self.coupling);
                for x in bus.u[k].iter_mut() {
                    *x *= rel(self.coupling);
                }
                for x in bus.v[k].iter_mut() {
                    *x *= rel(self.coupling);
                }
            }
        }
        r
    }
}
