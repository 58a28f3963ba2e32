//! The update rule, written once and instantiated for `f64` ([`Golden`]) and for the hardware's
//! fixed point ([`Fixed`]).
//!
//! One sweep (Jacobi Euler–Maruyama, `docs/design.md` §1, every unit reads the previous state):
//!
//! 1. **Bus lines.** For every bus and rank `r`, from the previous state:
//!    `S_r = sum_j u_rj rho(x_j)` over the encoder module (units in ascending order), then
//!    `line_enc_r = gain(S_r, eta sigma_r)`; likewise `T_r = sum_j v_rj rho(x_j)` over the decoder
//!    and `line_dec_r`.
//! 2. **Noise.** Unit `i` takes the next draw of lane `i mod P` (lanes draw for their units in
//!    ascending unit order).
//! 3. **Units.** For unit `i` with gate `g = rho'(x_i)`:
//!    `acc = d_i x_i`; if `g`: `acc += c_ij rho(x_j)` for the row's off-diagonal entries in
//!    ascending `j`; then for each bus side the unit's module sits on, in bus order, for `r = 0..k`:
//!    `acc += w_ri line_r` (decoder units use `v` with the encoder's lines, encoder units use `u`
//!    with the decoder's lines); then `acc += h_i`. Finally `acc += gn * z_i` and
//!    `x_i' = finish(acc)`.
//!
//! Constants: `d_i = 1 - eta a_i`, `c_ij = -eta A_ij`, `h_i = eta b_i`, `gn = sqrt(2 eta T)`.
//! In [`Fixed`] every step is the integer operation documented in `docs/fixed-point.md`.

use crate::model::{Activation, Formats, Substrate};
use crate::noise::{gaussian_f64, gaussian_fixed, NoiseLane, NOISE_FORMAT};
use crate::pool::{for_each_mut, Pool};
use crate::qformat::{acc_add, align, QFormat};
use serde::Serialize;

/// Saturation events, by where they happened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Saturation {
    /// Accumulator additions that clipped at 32 bits.
    pub acc: u64,
    /// New states clipped to the state format.
    pub state: u64,
    /// Bus line values clipped to the bus format.
    pub bus: u64,
}

impl Saturation {
    /// Sum of all counters.
    pub fn total(&self) -> u64 {
        self.acc + self.state + self.bus
    }
    /// Add another set of counters.
    pub fn add(&mut self, o: &Saturation) {
        self.acc += o.acc;
        self.state += o.state;
        self.bus += o.bus;
    }
}

/// The arithmetic an engine runs the update rule in.
pub trait Arith: Clone + Send + Sync {
    /// A unit state.
    type State: Copy + Default + Send + Sync + PartialEq + std::fmt::Debug;
    /// A stored coefficient (coupling or gain).
    type Coef: Copy + Send + Sync + std::fmt::Debug;
    /// The accumulator.
    type Acc: Copy + Send + Sync + std::fmt::Debug;
    /// A stored bias.
    type Bias: Copy + Send + Sync + std::fmt::Debug;
    /// A bus line value.
    type Line: Copy + Default + Send + Sync + std::fmt::Debug;
    /// A noise sample.
    type Noise: Copy + Default + Send + Sync + std::fmt::Debug;

    /// Store a coupling-format constant.
    fn coef(&self, x: f64) -> Self::Coef;
    /// Store a gain-format constant.
    fn gain(&self, x: f64) -> Self::Coef;
    /// Store a coupling `x` of a unit of module `mi` from a unit of module `mj` (in the fixed
    /// arithmetic scaled into module `mi`'s state frame, `2^(k_mi - k_mj)`).
    fn coupling(&self, x: f64, mi: usize, mj: usize) -> Self::Coef {
        let _ = (mi, mj);
        self.coef(x)
    }
    /// Store a bias (`eta b`) of a unit of module `m`.
    fn bias(&self, m: usize, x: f64) -> Self::Bias;
    /// Empty accumulator.
    fn zero(&self) -> Self::Acc;
    /// `acc + c x`. With `CHECK = false` the caller guarantees that no partial sum can leave the
    /// accumulator's range (see [`Arith::unit_is_safe`]), so saturation checks can be skipped
    /// without changing a bit.
    fn mac<const CHECK: bool>(
        &self,
        acc: Self::Acc,
        c: Self::Coef,
        x: Self::State,
        sat: &mut Saturation,
    ) -> Self::Acc;
    /// `acc + c line` for a unit of module `m`.
    fn mac_line<const CHECK: bool>(
        &self,
        m: usize,
        acc: Self::Acc,
        c: Self::Coef,
        line: Self::Line,
        sat: &mut Saturation,
    ) -> Self::Acc;
    /// `acc + h`.
    fn add_bias<const CHECK: bool>(
        &self,
        acc: Self::Acc,
        h: Self::Bias,
        sat: &mut Saturation,
    ) -> Self::Acc;
    /// `acc + gn z` for a unit of module `m`.
    fn add_noise<const CHECK: bool>(
        &self,
        m: usize,
        acc: Self::Acc,
        z: Self::Noise,
        sat: &mut Saturation,
    ) -> Self::Acc;
    /// The new state from the accumulator.
    fn finish(&self, acc: Self::Acc, sat: &mut Saturation) -> Self::State;
    /// A bus line from its sum over the states of module `m` and its gain.
    fn line(&self, m: usize, sum: Self::Acc, gain: Self::Coef, sat: &mut Saturation) -> Self::Line;
    /// `out[c] = line(m, sums[c], gain)` for every `c`, the saturations of `out[c]` added to
    /// `cnt[c]` (as [`Saturation::bus`]): the bus lines of many chains at once.
    fn lines_into(
        &self,
        m: usize,
        sums: &[Self::Acc],
        gain: Self::Coef,
        out: &mut [Self::Line],
        cnt: &mut [u64],
    ) {
        for ((o, &sum), c) in out.iter_mut().zip(sums).zip(cnt) {
            let mut s = Saturation::default();
            *o = self.line(m, sum, gain, &mut s);
            *c += s.bus;
        }
    }
    /// Activation `rho` of a state of module `m`.
    fn rho(&self, m: usize, x: Self::State) -> Self::State;
    /// `out[n] = rho(x[n])` for states `x` of module `m` (the clamp's constants looked up once).
    fn rho_into(&self, m: usize, x: &[Self::State], out: &mut [Self::State]) {
        for (o, &v) in out.iter_mut().zip(x) {
            *o = self.rho(m, v);
        }
    }
    /// Whether `rho` is the identity (then `rho(x)` is a copy of `x`).
    fn rho_is_identity(&self) -> bool;
    /// Activation slope `rho'(x) != 0` of a state of module `m`.
    fn gate(&self, m: usize, x: Self::State) -> bool;
    /// Noise sample from a draw's two words.
    fn noise(&self, w0: u32, w1: u32) -> Self::Noise;
    /// Step 2 for many lanes, their generators stored by component (`state[c][lane]`): `out` is
    /// taken in rounds of `width` samples, round `r` drawing from the lanes
    /// `(r mod period) * width ..` (a short last round from the first lanes of its block); each
    /// sample is [`Arith::noise`] of the next draw (two [`crate::noise::taus88_step`] words) of its lane. A
    /// single chain is `width = P, period = 1`; a batch, chain-minor, `width = B, period = P`.
    /// An arithmetic may compute them together (the same samples).
    fn noise_rounds(
        &self,
        state: &mut [Vec<u32>; 3],
        width: usize,
        period: usize,
        out: &mut [Self::Noise],
    ) {
        crate::noise::rounds_scalar(state, width, period, out, |w0, w1| self.noise(w0, w1))
    }
    /// A state of module `m` as a real number.
    fn to_f64(&self, m: usize, x: Self::State) -> f64;
    /// A real number as a state of module `m` (rounded, saturated).
    #[allow(clippy::wrong_self_convention)]
    fn from_f64(&self, m: usize, x: f64) -> Self::State;
    /// The state's integer code, for arithmetics that have one.
    fn code(&self, x: Self::State) -> Option<i16>;
    /// Whether this arithmetic saturates at all (fixed) or never (golden).
    const SATURATES: bool;
    /// Per-unit constants of the accumulator bound (see [`Arith::unit_is_safe`]).
    type UnitBound: Copy + Default + Send + Sync + std::fmt::Debug;
    /// `|h|` of a bias in the units [`Arith::unit_bound`] uses; the bound grows with it, so the
    /// bound of a unit's largest bias covers every smaller one.
    fn bias_magnitude(&self, h: Self::Bias) -> f64;
    /// Summarise the constants of a unit of module `m` for [`Arith::unit_is_safe`].
    fn unit_bound(
        &self,
        m: usize,
        diag: Self::Coef,
        row: &[Self::Coef],
        bus: &[Self::Coef],
        bias: Self::Bias,
    ) -> Self::UnitBound;
    /// `|x|` in the units [`Arith::unit_is_safe`] expects.
    fn state_magnitude(&self, x: Self::State) -> f64;
    /// `|line|` in the units [`Arith::unit_is_safe`] expects.
    fn line_magnitude(&self, l: Self::Line) -> f64;
    /// Whether a unit can saturate no partial sum of its accumulator this sweep, given the
    /// largest magnitude `xmax` of a state or its activation anywhere and the largest line magnitude `lmax` its module
    /// receives. Then its update runs without saturation checks, bit for bit the same.
    fn unit_is_safe(&self, b: &Self::UnitBound, xmax: f64, lmax: f64) -> bool;
    /// A bound that covers both `a` and `b`: safe ([`Arith::unit_is_safe`]) only where both are.
    fn bound_cover(&self, a: &Self::UnitBound, b: &Self::UnitBound) -> Self::UnitBound;
    /// The largest [`Arith::state_magnitude`] of `x` and of `rho(x)` over `x` (zero if empty),
    /// for [`Arith::unit_is_safe`].
    fn max_magnitude(&self, x: &[Self::State]) -> f64;
    /// Constants of a vectorised form of step 3, built once per program (`()` if none).
    type Kernel: Clone + Send + Sync + std::fmt::Debug;
    /// The vectorised form's constants for `prog`, if this arithmetic has one.
    fn kernel(prog: &Program<Self>) -> Option<Self::Kernel>;
    /// Step 3 for units `range` of module `m`, as [`Program::update_units`] (the same bits);
    /// `rx` is `rho(x)` of every unit followed by at least one padding element.
    #[allow(clippy::too_many_arguments)]
    fn update_module(
        prog: &Program<Self>,
        m: usize,
        range: std::ops::Range<usize>,
        x: &[Self::State],
        rx: &[Self::State],
        z: &[Self::Noise],
        lines: &[Self::Line],
        xmax: f64,
        out: &mut [Self::State],
        sat: &mut Saturation,
    ) {
        prog.update_units(m, range, x, rx, z, lines, xmax, out, sat)
    }
    /// Step 3 for units `units` (of module `m`) of `b` chains stored chain-minor
    /// (`x[unit * b + chain]`; `w` the units' bus weights in turn, `lines` the module's lines
    /// `[line * b + chain]`), every unit proven safe for every chain ([`Arith::unit_is_safe`]):
    /// the new states into `out` (`b` per unit), clipped states counted per chain in
    /// `state_cnt`, bit for bit the scalar update. `offsets[q] = col[q] * b` for every coupling
    /// `q` of the program. Returns `false`, writing nothing, when this
    /// arithmetic has no vector form for it.
    #[allow(clippy::too_many_arguments)]
    fn batch_units_unchecked(
        prog: &Program<Self>,
        m: usize,
        units: std::ops::Range<usize>,
        b: usize,
        w: &[Self::Coef],
        lines: &[Self::Line],
        x: &[Self::State],
        rx: &[Self::State],
        z: &[Self::Noise],
        bias: &[Self::Bias],
        offsets: &[u32],
        out: &mut [Self::State],
        state_cnt: &mut [u64],
    ) -> bool {
        let _ = (
            prog, m, units, b, w, lines, x, rx, z, bias, offsets, out, state_cnt,
        );
        false
    }
    /// `acc[r * b + c] = sum_n rows[r][n] rx[(start + n) * b + c]` for every row of a bus side
    /// and the `b` chains of a batch, every sum proven not to saturate: the vector form that takes
    /// the rows together if this arithmetic has one (else `false`, nothing written).
    fn batch_bus_sums_unchecked(
        rows: &[Vec<Self::Coef>],
        start: usize,
        b: usize,
        rx: &[Self::State],
        acc: &mut [Self::Acc],
    ) -> bool {
        let _ = (rows, start, b, rx, acc);
        false
    }
    /// `acc[c] = sum_n row[n] rx[(start + n) * b + c]` for the `b` chains of a batch, the sum
    /// proven not to saturate: the vector form if this arithmetic has one (else `false`, nothing
    /// written).
    fn batch_bus_sum_unchecked(
        row: &[Self::Coef],
        start: usize,
        b: usize,
        rx: &[Self::State],
        acc: &mut [Self::Acc],
    ) -> bool {
        let _ = (row, start, b, rx, acc);
        false
    }
}

/// The float golden model's arithmetic.
#[derive(Clone, Debug)]
pub struct Golden {
    noise_amp: f64,
    clamp: Option<(f64, f64)>,
}

impl Golden {
    /// Golden arithmetic for a substrate.
    pub fn new(s: &Substrate) -> Self {
        Golden {
            noise_amp: s.noise_amplitude(),
            clamp: match s.activation {
                Activation::Identity => None,
                Activation::Clamp { lo, hi } => Some((lo, hi)),
            },
        }
    }
}

impl Arith for Golden {
    type State = f64;
    type Coef = f64;
    type Acc = f64;
    type Bias = f64;
    type Line = f64;
    type Noise = f64;
    fn coef(&self, x: f64) -> f64 {
        x
    }
    fn gain(&self, x: f64) -> f64 {
        x
    }
    fn bias(&self, _: usize, x: f64) -> f64 {
        x
    }
    #[inline(always)]
    fn zero(&self) -> f64 {
        0.0
    }
    #[inline(always)]
    fn mac<const CHECK: bool>(&self, acc: f64, c: f64, x: f64, _: &mut Saturation) -> f64 {
        acc + c * x
    }
    #[inline(always)]
    fn mac_line<const CHECK: bool>(
        &self,
        _: usize,
        acc: f64,
        c: f64,
        line: f64,
        _: &mut Saturation,
    ) -> f64 {
        acc + c * line
    }
    #[inline(always)]
    fn add_bias<const CHECK: bool>(&self, acc: f64, h: f64, _: &mut Saturation) -> f64 {
        acc + h
    }
    #[inline(always)]
    fn add_noise<const CHECK: bool>(&self, _: usize, acc: f64, z: f64, _: &mut Saturation) -> f64 {
        acc + self.noise_amp * z
    }
    #[inline(always)]
    fn finish(&self, acc: f64, _: &mut Saturation) -> f64 {
        acc
    }
    fn line(&self, _: usize, sum: f64, gain: f64, _: &mut Saturation) -> f64 {
        sum * gain
    }
    fn rho_is_identity(&self) -> bool {
        self.clamp.is_none()
    }
    #[inline(always)]
    fn rho(&self, _: usize, x: f64) -> f64 {
        match self.clamp {
            None => x,
            Some((lo, hi)) => x.clamp(lo, hi),
        }
    }
    #[inline(always)]
    fn gate(&self, _: usize, x: f64) -> bool {
        match self.clamp {
            None => true,
            Some((lo, hi)) => (lo..=hi).contains(&x),
        }
    }
    #[inline(always)]
    fn noise(&self, w0: u32, w1: u32) -> f64 {
        gaussian_f64(w0, w1)
    }
    fn to_f64(&self, _: usize, x: f64) -> f64 {
        x
    }
    fn from_f64(&self, _: usize, x: f64) -> f64 {
        x
    }
    fn code(&self, _: f64) -> Option<i16> {
        None
    }
    const SATURATES: bool = false;
    type UnitBound = ();
    fn bias_magnitude(&self, _: f64) -> f64 {
        0.0
    }
    fn unit_bound(&self, _: usize, _: f64, _: &[f64], _: &[f64], _: f64) {}
    fn state_magnitude(&self, _: f64) -> f64 {
        0.0
    }
    fn line_magnitude(&self, _: f64) -> f64 {
        0.0
    }
    fn bound_cover(&self, _: &(), _: &()) {}
    fn unit_is_safe(&self, _: &(), _: f64, _: f64) -> bool {
        true
    }
    fn max_magnitude(&self, _: &[f64]) -> f64 {
        0.0
    }
    type Kernel = ();
    fn kernel(_: &Program<Self>) -> Option<()> {
        None
    }
}

/// The hardware's fixed-point arithmetic (the specification of the RTL).
#[derive(Clone, Debug)]
pub struct Fixed {
    /// Formats in use.
    pub formats: Formats,
    /// Noise amplitude code in `formats.noise_gain`.
    pub noise_amp: i16,
    clamp: Option<(i16, i16)>,
    acc_frac: u32,
    /// Per module, its state shift `k` (`docs/fixed-point.md` §1); empty when every module's
    /// is zero.
    shifts: Vec<u32>,
    /// Per module, its clamp codes (with a clamp activation; else empty).
    clamps: Vec<(i16, i16)>,
    /// Per module, the real value of one state code.
    lsb: Vec<f64>,
}

impl Fixed {
    /// Fixed arithmetic for a substrate (constants quantised; validation guarantees they fit).
    pub fn new(s: &Substrate) -> Self {
        let f = s.formats;
        let shifts: Vec<u32> = if s.shifted() {
            s.modules.iter().map(|m| m.shift).collect()
        } else {
            Vec::new()
        };
        let clamp_in = |q: QFormat| match s.activation {
            Activation::Identity => None,
            Activation::Clamp { lo, hi } => {
                Some((q.quantize(lo).0 as i16, q.quantize(hi).0 as i16))
            }
        };
        Fixed {
            formats: f,
            noise_amp: f.noise_gain.quantize(s.noise_amplitude()).0 as i16,
            clamp: clamp_in(f.state),
            acc_frac: f.acc().frac,
            clamps: s
                .modules
                .iter()
                .filter_map(|m| clamp_in(f.module_state(m.shift)))
                .collect(),
            lsb: s
                .modules
                .iter()
                .map(|m| f.module_state(m.shift).lsb())
                .collect(),
            shifts,
        }
    }
    /// The clamp bounds `(lo, hi)` as state codes (`None`: identity activation) of a module
    /// without state shift.
    pub fn clamp_codes(&self) -> Option<(i16, i16)> {
        self.clamp
    }
    /// The clamp bounds of module `m`'s state codes: the bounds quantised into its state
    /// format, saturated to its range (`None`: identity activation).
    #[inline(always)]
    pub fn module_clamp_codes(&self, m: usize) -> Option<(i16, i16)> {
        self.clamps.get(m).copied()
    }
    /// Module `m`'s state shift.
    #[inline(always)]
    pub fn shift(&self, m: usize) -> u32 {
        self.shifts.get(m).copied().unwrap_or(0)
    }
    /// Whether any module has a state shift (then every update takes the checked path).
    pub fn shifted(&self) -> bool {
        !self.shifts.is_empty()
    }
    /// Module `m`'s state format.
    pub fn state_format(&self, m: usize) -> QFormat {
        self.formats.module_state(self.shift(m))
    }
    /// The accumulator addition: saturating and counted when `CHECK`, plain otherwise (exact,
    /// because the caller proved the sum stays in range).
    #[inline(always)]
    fn acc_add<const CHECK: bool>(&self, acc: i32, term: i64, sat: &mut Saturation) -> i32 {
        if CHECK {
            let (a, s) = acc_add(acc, term);
            sat.acc += s as u64;
            a
        } else {
            acc.wrapping_add(term as i32)
        }
    }
    #[inline(always)]
    fn sat16(q: QFormat, v: i64, flag: &mut u64) -> i16 {
        let (c, s) = q.saturate(v);
        *flag += s as u64;
        c as i16
    }

    /// A bus line of module `m` from its sum and gain (`docs/fixed-point.md` §3): the sum
    /// aligned to the bus format and saturated, times the gain, aligned and saturated again;
    /// with the number of saturations. No branch on the data, so a loop over many chains
    /// vectorises ([`Arith::lines_into`]).
    #[inline(always)]
    fn line_code(&self, m: usize, sum: i32, gain: i16) -> (i16, u64) {
        let f = &self.formats;
        let (lo, hi) = (f.bus.min_code(), f.bus.max_code());
        let v = align(sum as i64, self.acc_frac + self.shift(m), f.bus.frac);
        let pre = v.clamp(lo, hi);
        let w = align(pre * gain as i64, f.bus.frac + f.gain.frac, f.bus.frac);
        let r = w.clamp(lo, hi);
        (r as i16, (pre != v) as u64 + (r != w) as u64)
    }
}

/// What one RUN computed ([`Fixed::run_codes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunSums {
    /// Per readout unit, its state codes summed over the `sweeps` readout sweeps (wrapping to
    /// 32 bits, as the hardware's accumulators).
    pub sums: Vec<i32>,
    /// Saturation events of the whole run (burn-in included).
    pub saturation: Saturation,
    /// Sweeps run (burn-in included).
    pub sweeps: u64,
}

impl Fixed {
    /// One inference on the fixed engine: state from zero, lane `l` started at
    /// `Taus88::from_key(key, l)`, biases `cond` (accumulator codes, one per unit), `burn_in`
    /// sweeps discarded, then the state codes of the `readout` units summed over `sweeps` sweeps.
    ///
    /// This is the board's definition of RUN: the emulated board answers RUN with it, the RTL's
    /// run sequencer performs it through the substrate's port, and the tests compare both with
    /// it bit for bit.
    pub fn run_codes(
        s: &Substrate,
        cond: &[i32],
        key: [u32; 3],
        burn_in: u32,
        sweeps: u32,
        readout: &[usize],
    ) -> RunSums {
        let prog = Program::new(s, Fixed::new(s));
        Fixed::run_program(&prog, cond, key, burn_in, sweeps, readout)
    }

    /// [`Fixed::run_codes`] on a compiled program (whose weights may have been written as codes,
    /// as a board's are over the link): the same inference, bit for bit, as `run_codes` on a
    /// substrate that compiles to `prog`.
    pub fn run_program(
        prog: &Program<Fixed>,
        cond: &[i32],
        key: [u32; 3],
        burn_in: u32,
        sweeps: u32,
        readout: &[usize],
    ) -> RunSums {
        Fixed::run_observed(prog, cond, key, burn_in, sweeps, readout, Observe::State)
    }

    /// [`Fixed::run_program`] summing what `observe` reads of each readout unit's state code:
    /// the code itself ([`Observe::State`], RUN), or `rho` of it ([`Observe::Activation`], RUN
    /// with `RUN_RHO`: the sums whose mean over `sweeps` is, in reals, what
    /// [`Engine::relax_average`] and the batched engine return for a clamped substrate).
    pub fn run_observed(
        prog: &Program<Fixed>,
        cond: &[i32],
        key: [u32; 3],
        burn_in: u32,
        sweeps: u32,
        readout: &[usize],
        observe: Observe,
    ) -> RunSums {
        let mut e = FixedEngine::from_program(prog.clone(), 0);
        for (l, lane) in e.lanes.iter_mut().enumerate() {
            lane.rng = crate::noise::Taus88::from_key(key, l as u32);
        }
        e.prog.bias = cond.to_vec();
        e.prog.refresh_bounds();
        for _ in 0..burn_in {
            e.sweep();
        }
        let mut sums = vec![0i64; readout.len()];
        let modules: Vec<usize> = readout.iter().map(|&u| e.prog.module_of(u)).collect();
        for _ in 0..sweeps {
            e.sweep();
            for ((acc, &u), &m) in sums.iter_mut().zip(readout).zip(&modules) {
                *acc += observe.of(&e.prog.arith, m, e.x[u]) as i64;
            }
        }
        RunSums {
            sums: sums.into_iter().map(|v| v as i32).collect(),
            saturation: e.saturation_total(),
            sweeps: e.sweeps,
        }
    }

    /// Bias codes of a conditioning vector `b` (energy units, one value per unit): `eta b` in
    /// the accumulator format, as RUN takes them. Errors name the unit and the limit.
    pub fn bias_codes(s: &Substrate, b: &[f64]) -> Result<Vec<i32>, String> {
        if b.len() != s.units() {
            return Err(format!(
                "conditioning vector has {} values, the substrate has {} units",
                b.len(),
                s.units()
            ));
        }
        b.iter()
            .enumerate()
            .map(|(i, &v)| {
                let q = s.formats.module_acc(s.modules[s.module_of(i)].shift);
                if !v.is_finite() {
                    return Err(format!("unit {i}: value {v} is not finite"));
                }
                let (c, sat) = q.quantize(s.eta * v);
                if sat {
                    return Err(format!(
                        "unit {i}: bias {v} gives eta*b = {} outside the accumulator format {} ({} .. {})",
                        s.eta * v,
                        q.name(),
                        q.min_value() / s.eta,
                        q.max_value() / s.eta
                    ));
                }
                Ok(c as i32)
            })
            .collect()
    }
}

impl Arith for Fixed {
    type State = i16;
    type Coef = i16;
    type Acc = i32;
    type Bias = i32;
    type Line = i16;
    type Noise = i16;
    fn coef(&self, x: f64) -> i16 {
        self.formats.coupling.quantize(x).0 as i16
    }
    fn gain(&self, x: f64) -> i16 {
        self.formats.gain.quantize(x).0 as i16
    }
    fn coupling(&self, x: f64, mi: usize, mj: usize) -> i16 {
        let d = self.shift(mi) as i32 - self.shift(mj) as i32;
        self.formats.coupling.quantize(x * 2f64.powi(d)).0 as i16
    }
    fn bias(&self, m: usize, x: f64) -> i32 {
        self.formats.module_acc(self.shift(m)).quantize(x).0 as i32
    }
    #[inline(always)]
    fn zero(&self) -> i32 {
        0
    }
    #[inline(always)]
    fn mac<const CHECK: bool>(&self, acc: i32, c: i16, x: i16, sat: &mut Saturation) -> i32 {
        self.acc_add::<CHECK>(acc, c as i64 * x as i64, sat)
    }
    #[inline(always)]
    fn mac_line<const CHECK: bool>(
        &self,
        m: usize,
        acc: i32,
        c: i16,
        line: i16,
        sat: &mut Saturation,
    ) -> i32 {
        let f = &self.formats;
        let p = align(
            c as i64 * line as i64,
            f.coupling.frac + f.bus.frac,
            self.acc_frac + self.shift(m),
        );
        self.acc_add::<CHECK>(acc, p, sat)
    }
    #[inline(always)]
    fn add_bias<const CHECK: bool>(&self, acc: i32, h: i32, sat: &mut Saturation) -> i32 {
        self.acc_add::<CHECK>(acc, h as i64, sat)
    }
    #[inline(always)]
    fn add_noise<const CHECK: bool>(
        &self,
        m: usize,
        acc: i32,
        z: i16,
        sat: &mut Saturation,
    ) -> i32 {
        let p = align(
            z as i64 * self.noise_amp as i64,
            NOISE_FORMAT.frac + self.formats.noise_gain.frac,
            self.acc_frac + self.shift(m),
        );
        self.acc_add::<CHECK>(acc, p, sat)
    }
    #[inline(always)]
    fn finish(&self, acc: i32, sat: &mut Saturation) -> i16 {
        Self::sat16(
            self.formats.state,
            align(acc as i64, self.acc_frac, self.formats.state.frac),
            &mut sat.state,
        )
    }
    fn line(&self, m: usize, sum: i32, gain: i16, sat: &mut Saturation) -> i16 {
        let (code, n) = self.line_code(m, sum, gain);
        sat.bus += n;
        code
    }
    #[inline(always)]
    fn lines_into(&self, m: usize, sums: &[i32], gain: i16, out: &mut [i16], cnt: &mut [u64]) {
        for ((o, &sum), c) in out.iter_mut().zip(sums).zip(cnt) {
            let (code, n) = self.line_code(m, sum, gain);
            *o = code;
            *c += n;
        }
    }
    fn rho_is_identity(&self) -> bool {
        self.clamp.is_none()
    }
    #[inline(always)]
    fn rho(&self, m: usize, x: i16) -> i16 {
        match self.module_clamp_codes(m) {
            None => x,
            Some((lo, hi)) => x.clamp(lo, hi),
        }
    }
    fn rho_into(&self, m: usize, x: &[i16], out: &mut [i16]) {
        match self.module_clamp_codes(m) {
            None => out.copy_from_slice(x),
            Some((lo, hi)) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = v.clamp(lo, hi);
                }
            }
        }
    }
    #[inline(always)]
    fn gate(&self, m: usize, x: i16) -> bool {
        match self.module_clamp_codes(m) {
            None => true,
            Some((lo, hi)) => (lo..=hi).contains(&x),
        }
    }
    #[inline(always)]
    fn noise(&self, w0: u32, w1: u32) -> i16 {
        gaussian_fixed(w0, w1)
    }
    fn noise_rounds(
        &self,
        state: &mut [Vec<u32>; 3],
        width: usize,
        period: usize,
        out: &mut [i16],
    ) {
        crate::noise::gaussian_fixed_rounds(state, width, period, out)
    }
    #[inline(always)]
    fn to_f64(&self, m: usize, x: i16) -> f64 {
        // `state_format(m).to_f64(x)`, the code's weight computed once per module
        x as f64 * self.lsb[m]
    }
    fn from_f64(&self, m: usize, x: f64) -> i16 {
        self.state_format(m).quantize(x).0 as i16
    }
    fn code(&self, x: i16) -> Option<i16> {
        Some(x)
    }
    const SATURATES: bool = true;
    /// `[|d| + sum |c|, sum |w| * 2^(fa - coupling.frac - bus.frac), |h| + max |noise term| + slack]`
    /// in accumulator codes per unit of state / line code.
    type UnitBound = [f64; 3];
    fn bias_magnitude(&self, h: i32) -> f64 {
        (h as f64).abs()
    }
    fn unit_bound(&self, m: usize, diag: i16, row: &[i16], bus: &[i16], bias: i32) -> [f64; 3] {
        let f = &self.formats;
        // the unit's frame: line and noise terms align to `fa + k_m`
        let acc_frac = (self.acc_frac + self.shift(m)) as f64;
        let a = (diag as f64).abs() + row.iter().map(|&c| (c as f64).abs()).sum::<f64>();
        let scale = (acc_frac - (f.coupling.frac + f.bus.frac) as f64).exp2();
        let b = bus.iter().map(|&w| (w as f64).abs()).sum::<f64>() * scale;
        let noise_scale = (acc_frac - (NOISE_FORMAT.frac + f.noise_gain.frac) as f64).exp2();
        // Slack: each aligned term may round up by one code.
        let e = (bias as f64).abs()
            + (self.noise_amp as f64).abs() * 32768.0 * noise_scale
            + bus.len() as f64
            + 4.0;
        [a, b, e]
    }
    #[inline(always)]
    fn state_magnitude(&self, x: i16) -> f64 {
        (x as f64).abs()
    }
    #[inline(always)]
    fn line_magnitude(&self, l: i16) -> f64 {
        (l as f64).abs()
    }
    #[inline(always)]
    fn unit_is_safe(&self, b: &[f64; 3], xmax: f64, lmax: f64) -> bool {
        // Every partial sum is bounded by the sum of the magnitudes of all its terms (the terms
        // in codes; a module's state shift is in its bound's line and noise scales).
        b[0] * xmax + b[1] * lmax + b[2] < i32::MAX as f64 * 0.999_999
    }
    fn bound_cover(&self, a: &[f64; 3], b: &[f64; 3]) -> [f64; 3] {
        // The bound grows with every component.
        [a[0].max(b[0]), a[1].max(b[1]), a[2].max(b[2])]
    }
    #[inline(always)]
    fn max_magnitude(&self, x: &[i16]) -> f64 {
        // |v| and |rho(v)| (rho a clamp, monotone) are largest at the smallest or largest state.
        let (lo, hi) = x
            .iter()
            .fold((i16::MAX, i16::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if x.is_empty() {
            return 0.0;
        }
        // every module's clamp (each is monotone, so its extremes over [lo, hi] are at the ends)
        let classes = self.shifts.len().max(1);
        (0..classes)
            .flat_map(|m| [lo, hi, self.rho(m, lo), self.rho(m, hi)])
            .map(|v| (v as i32).abs())
            .max()
            .unwrap_or(0) as f64
    }
    type Kernel = crate::kernel::FixedKernel;
    fn kernel(prog: &Program<Self>) -> Option<crate::kernel::FixedKernel> {
        crate::kernel::FixedKernel::new(prog)
    }
    fn update_module(
        prog: &Program<Self>,
        m: usize,
        range: std::ops::Range<usize>,
        x: &[i16],
        rx: &[i16],
        z: &[i16],
        lines: &[i16],
        xmax: f64,
        out: &mut [i16],
        sat: &mut Saturation,
    ) {
        match &prog.kernel {
            Some(k) => {
                crate::kernel::update_units(prog, k, m, range, x, rx, z, lines, xmax, out, sat)
            }
            None => prog.update_units(m, range, x, rx, z, lines, xmax, out, sat),
        }
    }
    #[inline]
    fn batch_units_unchecked(
        prog: &Program<Self>,
        m: usize,
        units: std::ops::Range<usize>,
        b: usize,
        w: &[i16],
        lines: &[i16],
        x: &[i16],
        rx: &[i16],
        z: &[i16],
        bias: &[i32],
        offsets: &[u32],
        out: &mut [i16],
        state_cnt: &mut [u64],
    ) -> bool {
        let u = crate::kernel_batch::UnitsInputs {
            m,
            units,
            b,
            w,
            lines,
            x,
            rx,
            z,
            bias,
            offsets,
        };
        crate::kernel_batch::units_unchecked(prog, &u, out, state_cnt)
    }
    #[inline]
    fn batch_bus_sums_unchecked(
        rows: &[Vec<i16>],
        start: usize,
        b: usize,
        rx: &[i16],
        acc: &mut [i32],
    ) -> bool {
        crate::kernel_batch::bus_sums_unchecked(rows, start, b, rx, acc)
    }
    #[inline]
    fn batch_bus_sum_unchecked(
        row: &[i16],
        start: usize,
        b: usize,
        rx: &[i16],
        acc: &mut [i32],
    ) -> bool {
        crate::kernel_batch::bus_sum_unchecked(row, start, b, rx, acc)
    }
}

/// What [`Engine::relax_average`] averages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Observe {
    /// The state `x` (the board's readout).
    State,
    /// The activation `rho(x)` (a clamped substrate's readout).
    Activation,
}

impl Observe {
    /// What this observes of one state `x`: `x` itself, or `rho(x)`.
    #[inline(always)]
    pub fn of<A: Arith>(self, a: &A, m: usize, x: A::State) -> A::State {
        match self {
            Observe::State => x,
            Observe::Activation => a.rho(m, x),
        }
    }

    /// Add what this observes of the states `x` (reals; `modules` their unit ranges) to `sum`,
    /// element by element.
    #[inline]
    pub fn accumulate<A: Arith>(
        self,
        a: &A,
        modules: &[std::ops::Range<usize>],
        sum: &mut [f64],
        x: &[A::State],
    ) {
        for (m, r) in modules.iter().enumerate() {
            let (sum, x) = (&mut sum[r.clone()], &x[r.clone()]);
            match self {
                Observe::State => {
                    for (acc, &v) in sum.iter_mut().zip(x) {
                        *acc += a.to_f64(m, v);
                    }
                }
                Observe::Activation => {
                    for (acc, &v) in sum.iter_mut().zip(x) {
                        *acc += a.to_f64(m, a.rho(m, v));
                    }
                }
            }
        }
    }
}

/// `f(module, v)` of every unit's value `v` (`modules`: the modules' unit ranges, in order).
pub fn per_unit<T: Copy, U>(
    modules: &[std::ops::Range<usize>],
    v: &[T],
    f: impl Fn(usize, T) -> U,
) -> Vec<U> {
    let mut out = Vec::with_capacity(v.len());
    for (m, r) in modules.iter().enumerate() {
        out.extend(v[r.clone()].iter().map(|&x| f(m, x)));
    }
    out
}

/// Every bus's `(encoder lines, decoder lines)`.
pub type BusLines<L> = Vec<(Vec<L>, Vec<L>)>;

/// Which factor a module's units use on a bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Encoder side: sums with `u`, receives the decoder's lines through `u`.
    Encoder,
    /// Decoder side: sums with `v`, receives the encoder's lines through `v`.
    Decoder,
}

/// One bus in engine form.
#[derive(Clone, Debug)]
pub struct BusProgram<A: Arith> {
    /// Encoder unit range.
    pub enc: std::ops::Range<usize>,
    /// Decoder unit range.
    pub dec: std::ops::Range<usize>,
    /// Encoder and decoder module indices.
    pub modules: (usize, usize),
    /// `u`, rank-major.
    pub u: Vec<Vec<A::Coef>>,
    /// `v`, rank-major.
    pub v: Vec<Vec<A::Coef>>,
    /// `eta sigma_r`.
    pub gain: Vec<A::Coef>,
}

/// A substrate's constants in an engine's arithmetic.
#[derive(Clone, Debug)]
pub struct Program<A: Arith> {
    /// The arithmetic.
    pub arith: A,
    /// Lanes P.
    pub lanes: usize,
    /// Self coefficients `1 - eta a_i`.
    pub diag: Vec<A::Coef>,
    /// CSR row pointers.
    pub row_ptr: Vec<u32>,
    /// CSR columns.
    pub col: Vec<u32>,
    /// `-eta A_ij`.
    pub coef: Vec<A::Coef>,
    /// `eta b_i`.
    pub bias: Vec<A::Bias>,
    /// Buses.
    pub buses: Vec<BusProgram<A>>,
    /// Unit range of each module.
    pub modules: Vec<std::ops::Range<usize>>,
    /// Bus sides each module sits on, in bus order.
    pub sides: Vec<Vec<(usize, Side)>>,
    /// Per module, the bus weights its units apply, unit-major: unit `n` of the module uses
    /// `bus_w[m][n * K_m .. (n+1) * K_m]` against the module's line vector (the lines of its sides
    /// in bus order, ranks in order; `K_m` = sum of those ranks).
    pub bus_w: Vec<Vec<A::Coef>>,
    /// Per unit, the constants of its accumulator bound ([`Arith::unit_bound`]).
    pub bounds: Vec<A::UnitBound>,
    /// Per module, a bound covering every unit's ([`Arith::bound_cover`]): when it is safe, the
    /// whole module is, without a check per unit.
    pub module_bounds: Vec<A::UnitBound>,
    /// Run every unit (and, in the batched engine, every bus sum) through the saturation-checked
    /// path (for tests of the fast path).
    pub force_checks: bool,
    /// Per bus, side (encoder, decoder) and rank, the bound of its sum (as a unit's: the first
    /// weight as the self coefficient, no bus, zero bias), or `None` for an empty side.
    pub bus_bounds: Vec<Option<A::UnitBound>>,
    /// The vectorised step 3's constants ([`Arith::kernel`]), built from the couplings, self
    /// coefficients and bus weights at construction (biases are read as they are).
    pub kernel: Option<A::Kernel>,
}

impl<A: Arith> Program<A> {
    /// Compile a substrate's constants into `arith`.
    pub fn new(s: &Substrate, arith: A) -> Self {
        let eta = s.eta;
        let modules: Vec<_> = s.modules.iter().map(|m| m.range()).collect();
        let mut sides = vec![Vec::new(); modules.len()];
        let buses = s
            .buses
            .iter()
            .enumerate()
            .map(|(b, bus)| {
                sides[bus.enc].push((b, Side::Encoder));
                sides[bus.dec].push((b, Side::Decoder));
                BusProgram {
                    enc: modules[bus.enc].clone(),
                    dec: modules[bus.dec].clone(),
                    modules: (bus.enc, bus.dec),
                    u: bus
                        .u
                        .iter()
                        .map(|r| r.iter().map(|&x| arith.coef(x)).collect())
                        .collect(),
                    v: bus
                        .v
                        .iter()
                        .map(|r| r.iter().map(|&x| arith.coef(x)).collect())
                        .collect(),
                    gain: bus.sigma.iter().map(|&x| arith.gain(eta * x)).collect(),
                }
            })
            .collect();
        let mut p = Program {
            lanes: s.lanes as usize,
            diag: s
                .stiffness
                .iter()
                .map(|&a| arith.coef(crate::model::self_coefficient(eta, a)))
                .collect(),
            row_ptr: s.row_ptr.iter().map(|&p| p as u32).collect(),
            col: s.col.iter().map(|&c| c as u32).collect(),
            coef: (0..s.units())
                .flat_map(|i| {
                    let mi = s.module_of(i);
                    let arith = &arith;
                    (s.row_ptr[i]..s.row_ptr[i + 1])
                        .map(move |p| arith.coupling(-eta * s.val[p], mi, s.module_of(s.col[p])))
                })
                .collect(),
            bias: per_unit(&modules, &s.bias, |m, b| arith.bias(m, eta * b)),
            bus_w: Vec::new(),
            bounds: Vec::new(),
            module_bounds: Vec::new(),
            force_checks: false,
            bus_bounds: Vec::new(),
            kernel: None,
            buses,
            modules,
            sides,
            arith,
        };
        p.recompile();
        p
    }

    /// Recompute everything derived from the codes (the per-module bus weights, the bounds and
    /// the vectorised kernel) after [`Program::diag`], [`Program::coef`], the buses' factors or
    /// gains, or [`Program::bias`] changed: a board whose weights were written over the link
    /// runs exactly the program [`Program::new`] builds from a substrate with those codes.
    pub fn recompile(&mut self) {
        let p = self;
        p.bus_w = (0..p.modules.len())
            .map(|m| {
                let n = p.modules[m].len();
                let mut w = Vec::new();
                for unit in 0..n {
                    for &(b, side) in &p.sides[m] {
                        let f = match side {
                            Side::Decoder => &p.buses[b].v,
                            Side::Encoder => &p.buses[b].u,
                        };
                        w.extend(f.iter().map(|row| row[unit]));
                    }
                }
                w
            })
            .collect();
        p.refresh_bounds();
        let a = &p.arith;
        p.bus_bounds = p
            .buses
            .iter()
            .flat_map(|bus| bus.u.iter().chain(&bus.v))
            .map(|row| {
                row.split_first()
                    .map(|(&first, rest)| a.unit_bound(0, first, rest, &[], a.bias(0, 0.0)))
            })
            .collect();
        p.kernel = A::kernel(p);
    }

    /// Recompute [`Program::bounds`] and [`Program::module_bounds`] (after the constants
    /// changed).
    pub fn refresh_bounds(&mut self) {
        let a = &self.arith;
        let mut bounds = vec![A::UnitBound::default(); self.units()];
        let mut module_bounds = Vec::with_capacity(self.modules.len());
        for (m, range) in self.modules.iter().enumerate() {
            let k = self.lines_of_module(m);
            let mut cover: Option<A::UnitBound> = None;
            for (n, i) in range.clone().enumerate() {
                let row = &self.coef[self.row_ptr[i] as usize..self.row_ptr[i + 1] as usize];
                let w = &self.bus_w[m][n * k..(n + 1) * k];
                bounds[i] = a.unit_bound(m, self.diag[i], row, w, self.bias[i]);
                cover = Some(match cover {
                    Some(c) => a.bound_cover(&c, &bounds[i]),
                    None => bounds[i],
                });
            }
            module_bounds.push(cover.unwrap_or_default());
        }
        self.bounds = bounds;
        self.module_bounds = module_bounds;
    }

    /// `K_m`: how many bus lines module `m` receives.
    pub fn lines_of_module(&self, m: usize) -> usize {
        self.sides[m]
            .iter()
            .map(|&(b, _)| self.buses[b].gain.len())
            .sum()
    }

    /// The line vector module `m` receives, from every bus's `(encoder lines, decoder lines)`.
    pub fn module_lines(&self, m: usize, lines: &BusLines<A::Line>) -> Vec<A::Line> {
        let mut out = Vec::new();
        for &(b, side) in &self.sides[m] {
            out.extend_from_slice(match side {
                Side::Decoder => &lines[b].0,
                Side::Encoder => &lines[b].1,
            });
        }
        out
    }

    /// Number of units.
    pub fn units(&self) -> usize {
        self.diag.len()
    }

    /// The module of unit `i`.
    #[inline]
    pub fn module_of(&self, i: usize) -> usize {
        if self.modules.len() == 1 {
            return 0;
        }
        self.modules.partition_point(|r| r.end <= i)
    }

    /// Replace the biases `b` (conditioning); `b` in energy units, scaled by `eta` here.
    pub fn set_bias(&mut self, s: &Substrate, b: &[f64]) {
        self.bias = self.bias_values(s, b);
        self.refresh_bounds();
    }

    /// Stored biases `eta b` of a conditioning vector `b` (energy units) in this arithmetic.
    pub fn bias_values(&self, s: &Substrate, b: &[f64]) -> Vec<A::Bias> {
        per_unit(&self.modules, b, |m, x| self.arith.bias(m, s.eta * x))
    }

    /// `rho(x)` of every unit's state.
    pub fn activations(&self, x: &[A::State]) -> Vec<A::State> {
        per_unit(&self.modules, x, |m, v| self.arith.rho(m, v))
    }

    /// Step 1: the bus lines `(encoder lines, decoder lines)` of every bus from state `x`.
    pub fn bus_lines(&self, x: &[A::State], sat: &mut Saturation) -> BusLines<A::Line> {
        let rx = self.activations(x);
        let mut out = Vec::new();
        self.bus_lines_into(&rx, &mut out, sat);
        out
    }

    /// [`Program::bus_lines`] from the activations `rx = rho(x)`, into `out` (its vectors
    /// reused). A sum whose partial sums provably stay in range ([`Program::bus_bounds`]) skips
    /// the saturation checks: the same bits, nothing to count.
    pub fn bus_lines_into(
        &self,
        rx: &[A::State],
        out: &mut BusLines<A::Line>,
        sat: &mut Saturation,
    ) {
        let a = &self.arith;
        let fast = !(A::SATURATES && self.force_checks);
        out.resize_with(self.buses.len(), Default::default);
        let mut bounds = self.bus_bounds.iter();
        for (bus, o) in self.buses.iter().zip(out.iter_mut()) {
            for side in 0..2 {
                let (w, range, dst, m) = if side == 0 {
                    (&bus.u, &bus.enc, &mut o.0, bus.modules.0)
                } else {
                    (&bus.v, &bus.dec, &mut o.1, bus.modules.1)
                };
                let xs = &rx[range.clone()];
                let xmax = if A::SATURATES && fast {
                    a.max_magnitude(xs)
                } else {
                    0.0
                };
                dst.clear();
                for (row, &g) in w.iter().zip(&bus.gain) {
                    let bound = bounds.next();
                    let safe =
                        fast && matches!(bound, Some(Some(bd)) if a.unit_is_safe(bd, xmax, 0.0));
                    let mut acc = a.zero();
                    if safe {
                        let mut one = [a.zero()];
                        if A::batch_bus_sum_unchecked(row, range.start, 1, rx, &mut one) {
                            acc = one[0];
                        } else {
                            for (&c, &xj) in row.iter().zip(xs) {
                                acc = a.mac::<false>(acc, c, xj, sat);
                            }
                        }
                    } else {
                        for (&c, &xj) in row.iter().zip(xs) {
                            acc = a.mac::<true>(acc, c, xj, sat);
                        }
                    }
                    dst.push(a.line(m, acc, g, sat));
                }
            }
        }
    }

    /// Step 3 for units `range` of module `m`: write new states into `out` (indexed from
    /// `range.start`). `rx` is `rho(x)` of every unit (each in its module's clamp: the sweep
    /// computes it once); `lines` is the module's line vector ([`Program::module_lines`]); `xmax`
    /// the largest state magnitude of `x` ([`Arith::state_magnitude`]).
    #[allow(clippy::too_many_arguments)]
    pub fn update_units(
        &self,
        m: usize,
        range: std::ops::Range<usize>,
        x: &[A::State],
        rx: &[A::State],
        z: &[A::Noise],
        lines: &[A::Line],
        xmax: f64,
        out: &mut [A::State],
        sat: &mut Saturation,
    ) {
        let a = &self.arith;
        let module_start = self.modules[m].start;
        let k = lines.len();
        let w = &self.bus_w[m];
        let lmax = lines
            .iter()
            .map(|&l| a.line_magnitude(l))
            .fold(0.0, f64::max);
        let fast = !(A::SATURATES && self.force_checks);
        for (o, i) in out.iter_mut().zip(range) {
            let n = i - module_start;
            let wi = &w[n * k..(n + 1) * k];
            *o = if fast && a.unit_is_safe(&self.bounds[i], xmax, lmax) {
                self.update_unit::<false>(m, i, x, rx, z[i], wi, lines, sat)
            } else {
                self.update_unit::<true>(m, i, x, rx, z[i], wi, lines, sat)
            };
        }
    }

    /// The update of one unit (section 3 of `docs/fixed-point.md`).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn update_unit<const CHECK: bool>(
        &self,
        m: usize,
        i: usize,
        x: &[A::State],
        rx: &[A::State],
        z: A::Noise,
        w: &[A::Coef],
        lines: &[A::Line],
        sat: &mut Saturation,
    ) -> A::State {
        let a = &self.arith;
        let xi = x[i];
        let mut acc = a.mac::<CHECK>(a.zero(), self.diag[i], xi, sat);
        if a.gate(m, xi) {
            let (p0, p1) = (self.row_ptr[i] as usize, self.row_ptr[i + 1] as usize);
            for (&c, &j) in self.coef[p0..p1].iter().zip(&self.col[p0..p1]) {
                acc = a.mac::<CHECK>(acc, c, rx[j as usize], sat);
            }
            for (&c, &l) in w.iter().zip(lines) {
                acc = a.mac_line::<CHECK>(m, acc, c, l, sat);
            }
            acc = a.add_bias::<CHECK>(acc, self.bias[i], sat);
        }
        acc = a.add_noise::<CHECK>(m, acc, z, sat);
        a.finish(acc, sat)
    }
}

/// A running substrate in arithmetic `A`.
#[derive(Clone, Debug)]
pub struct Engine<A: Arith> {
    /// Constants.
    pub prog: Program<A>,
    /// Current state.
    pub x: Vec<A::State>,
    next: Vec<A::State>,
    z: Vec<A::Noise>,
    /// `rho(x)` and one padding element (scratch).
    rx: Vec<A::State>,
    /// Bus lines per bus and the line vector of every module (scratch).
    lines: BusLines<A::Line>,
    module_lines: Vec<Vec<A::Line>>,
    /// The noise lanes' generator states by component (scratch).
    lane_state: [Vec<u32>; 3],
    /// One noise lane per hardware lane.
    pub lanes: Vec<NoiseLane>,
    /// Saturation counters per module (unit updates).
    pub saturation: Vec<Saturation>,
    /// Saturation counters of the bus lines.
    pub bus_saturation: Saturation,
    /// Sweeps done.
    pub sweeps: u64,
    /// Worker threads for the unit updates (results do not depend on it).
    pub threads: usize,
    /// Fewest units per worker thread: below that a sweep is too short to pay for handing work
    /// to other threads, and fewer are used (results do not depend on it).
    pub min_units_per_thread: usize,
    /// The worker threads, started by the first sweep that uses them and kept (restarted only
    /// when the thread count in use changes).
    pool: Option<std::sync::Arc<Pool>>,
}

/// The golden model.
pub type GoldenEngine = Engine<Golden>;
/// The bit-exact fixed-point engine.
pub type FixedEngine = Engine<Fixed>;

impl GoldenEngine {
    /// Golden model of `s`, noise seeded with `seed`, state zero.
    pub fn golden(s: &Substrate, seed: u64) -> Self {
        Engine::new(s, Golden::new(s), seed)
    }
}

impl FixedEngine {
    /// Fixed engine of `s`, noise seeded with `seed`, state zero.
    pub fn fixed(s: &Substrate, seed: u64) -> Self {
        Engine::new(s, Fixed::new(s), seed)
    }
}

impl<A: Arith> Engine<A> {
    /// An engine with state zero.
    pub fn new(s: &Substrate, arith: A, seed: u64) -> Self {
        Engine::from_program(Program::new(s, arith), seed)
    }

    /// An engine with state zero running `prog` (see [`Program::recompile`] after changing
    /// its codes).
    pub fn from_program(prog: Program<A>, seed: u64) -> Self {
        let d = prog.units();
        Engine {
            x: vec![A::State::default(); d],
            next: vec![A::State::default(); d],
            z: vec![A::Noise::default(); d],
            rx: Vec::new(),
            lines: Vec::new(),
            module_lines: Vec::new(),
            lane_state: Default::default(),
            lanes: (0..prog.lanes as u32)
                .map(|l| NoiseLane::new(seed, l))
                .collect(),
            saturation: vec![Saturation::default(); prog.modules.len()],
            bus_saturation: Saturation::default(),
            sweeps: 0,
            threads: 1,
            min_units_per_thread: 8192,
            pool: None,
            prog,
        }
    }

    /// Number of units.
    pub fn units(&self) -> usize {
        self.x.len()
    }

    /// Back to a fresh run: state zero, lane `l` seeded as [`NoiseLane::new`]`(seed, l)` (the
    /// board's keying of a RUN), counters cleared. The same engine as [`Engine::new`] with
    /// `seed` gives, without rebuilding the program (biases stay as set).
    pub fn restart(&mut self, seed: u64) {
        self.x.fill(A::State::default());
        for (l, lane) in self.lanes.iter_mut().enumerate() {
            *lane = NoiseLane::new(seed, l as u32);
        }
        self.saturation.fill(Saturation::default());
        self.bus_saturation = Saturation::default();
        self.sweeps = 0;
    }

    /// One Jacobi sweep.
    pub fn sweep(&mut self) {
        let threads = self
            .threads
            .min(self.x.len() / self.min_units_per_thread.max(1))
            .max(1);
        if threads > 1 && !matches!(&self.pool, Some(p) if p.threads() == threads) {
            self.pool = Some(std::sync::Arc::new(Pool::new(threads)));
        }
        let prog = &self.prog;
        let a = &prog.arith;
        let d = self.x.len();
        // rho(x), and one padding element for the vector kernel's gathers (its gather form).
        self.rx.clear();
        if a.rho_is_identity() {
            self.rx.extend_from_slice(&self.x);
        } else {
            self.rx.resize(d, A::State::default());
            for (m, r) in prog.modules.iter().enumerate() {
                a.rho_into(m, &self.x[r.clone()], &mut self.rx[r.clone()]);
            }
        }
        self.rx.push(A::State::default());
        // Step 1: bus lines (counted against the module of the bus's decoder side).
        let mut bus_sat = Saturation::default();
        prog.bus_lines_into(&self.rx[..d], &mut self.lines, &mut bus_sat);
        self.module_lines
            .resize_with(prog.modules.len(), Default::default);
        for (m, ml) in self.module_lines.iter_mut().enumerate() {
            ml.clear();
            for &(b, side) in &prog.sides[m] {
                ml.extend_from_slice(match side {
                    Side::Decoder => &self.lines[b].0,
                    Side::Encoder => &self.lines[b].1,
                });
            }
        }
        // The largest |x| and |rho(x)| (with a clamp above zero, |rho(x)| can exceed |x|).
        let xmax = if A::SATURATES {
            a.max_magnitude(&self.x)
        } else {
            0.0
        };
        // Step 2: noise, lane i mod P, ascending units: every lane steps together, one round
        // of P units at a time, on their states copied out by component.
        let p = self.lanes.len();
        if p > 0 {
            for (c, comp) in self.lane_state.iter_mut().enumerate() {
                comp.clear();
                comp.extend(self.lanes.iter().map(|l| l.rng.s[c]));
            }
            a.noise_rounds(&mut self.lane_state, p, 1, &mut self.z);
            let [s1, s2, s3] = &self.lane_state;
            for (l, lane) in self.lanes.iter_mut().enumerate() {
                lane.rng.s = [s1[l], s2[l], s3[l]];
            }
        }
        // Step 3: units, module by module; optionally split across threads.
        let x = &self.x;
        let rx = &self.rx;
        let z = &self.z;
        let module_lines = &self.module_lines;
        if threads <= 1 {
            let mut rest = &mut self.next[..];
            for (m, range) in prog.modules.iter().enumerate() {
                let (out, r) = rest.split_at_mut(range.len());
                rest = r;
                A::update_module(
                    prog,
                    m,
                    range.clone(),
                    x,
                    rx,
                    z,
                    &module_lines[m],
                    xmax,
                    out,
                    &mut self.saturation[m],
                );
            }
        } else {
            let mut tasks = Vec::new();
            let mut rest = &mut self.next[..];
            for (m, range) in prog.modules.iter().enumerate() {
                let (mut out, r) = rest.split_at_mut(range.len());
                rest = r;
                // Chunks start on the vector kernel's blocks.
                let chunk = range.len().div_ceil(threads).max(64).next_multiple_of(64);
                let mut start = range.start;
                while start < range.end {
                    let end = (start + chunk).min(range.end);
                    let (o, r2) = out.split_at_mut(end - start);
                    out = r2;
                    tasks.push((m, start..end, o));
                    start = end;
                }
            }
            let nsat = self.saturation.len();
            let mut buckets: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
            for (t, task) in tasks.into_iter().enumerate() {
                buckets[t % threads].push(task);
            }
            let pool = self.pool.as_ref().expect("started above");
            let per_thread = for_each_mut(pool, &mut buckets, |_, bucket| {
                let mut sat = vec![Saturation::default(); nsat];
                for (m, range, out) in bucket.drain(..) {
                    A::update_module(
                        prog,
                        m,
                        range,
                        x,
                        rx,
                        z,
                        &module_lines[m],
                        xmax,
                        out,
                        &mut sat[m],
                    );
                }
                sat
            });
            for sat in per_thread {
                for (a, b) in self.saturation.iter_mut().zip(&sat) {
                    a.add(b);
                }
            }
        }
        self.bus_saturation.add(&bus_sat);
        std::mem::swap(&mut self.x, &mut self.next);
        self.sweeps += 1;
    }

    /// Current state as reals.
    pub fn state_f64(&self) -> Vec<f64> {
        let a = &self.prog.arith;
        per_unit(&self.prog.modules, &self.x, |m, v| a.to_f64(m, v))
    }

    /// Set the state from reals (rounded and saturated in the fixed engine).
    pub fn set_state_f64(&mut self, x: &[f64]) {
        let a = &self.prog.arith;
        self.x = per_unit(&self.prog.modules, x, |m, v| a.from_f64(m, v));
    }

    /// How many units the next sweep will update on the unchecked fast path (a proof that none of
    /// their partial sums can saturate).
    pub fn fast_path_units(&self) -> usize {
        let prog = &self.prog;
        if !A::SATURATES {
            return self.units();
        }
        let mut sat = Saturation::default();
        let lines = prog.bus_lines(&self.x, &mut sat);
        let a = &prog.arith;
        let xmax = a.max_magnitude(&self.x);
        let mut n = 0;
        for (m, range) in prog.modules.iter().enumerate() {
            let l = prog.module_lines(m, &lines);
            let lmax = l.iter().map(|&v| a.line_magnitude(v)).fold(0.0, f64::max);
            n += range
                .clone()
                .filter(|&i| a.unit_is_safe(&prog.bounds[i], xmax, lmax))
                .count();
        }
        n
    }

    /// One relaxation with per-run biases `b` (energy units): set the biases, run `burn_in`
    /// sweeps from the current state, then average what `observe` reads of every unit over
    /// `sweeps` sweeps (at least one). Returns the averages and the saturation counters
    /// ([`Engine::saturation_total`]).
    pub fn relax_average(
        &mut self,
        s: &Substrate,
        b: &[f64],
        burn_in: u64,
        sweeps: u64,
        observe: Observe,
    ) -> (Vec<f64>, Saturation) {
        self.prog.set_bias(s, b);
        for _ in 0..burn_in {
            self.sweep();
        }
        let n = sweeps.max(1);
        let mut sum = vec![0.0; self.units()];
        for _ in 0..n {
            self.sweep();
            observe.accumulate(&self.prog.arith, &self.prog.modules, &mut sum, &self.x);
        }
        let n = n as f64;
        (sum.iter().map(|v| v / n).collect(), self.saturation_total())
    }

    /// Total saturation events.
    pub fn saturation_total(&self) -> Saturation {
        let mut t = self.bus_saturation;
        for s in &self.saturation {
            t.add(s);
        }
        t
    }
}
