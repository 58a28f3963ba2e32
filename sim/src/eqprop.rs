//! Equilibrium propagation (EqProp) on the substrate's own energy: gradients of a readout loss
//! from equilibria of the substrate itself, the exact gradient beside them, and a training loop.
//!
//! # The quantities
//!
//! A task gives examples `(c, y)`: a conditioning vector `c` (energy units, one value per unit,
//! added to the substrate's bias `b`) and a target `y` for the readout units `o`
//! ([`readout_units`]: every decoder unit). The loss of an example is
//! `L = 1/2 |x_o - y|^2` at the substrate's equilibrium; for identity units that is the mean
//! `m = A^-1 (b + c)` of the stationary law.
//!
//! The energy's derivatives in the parameters, at a state `x` ([`Grad::energy`]):
//!
//! | parameter | `dE/dtheta` |
//! |---|---|
//! | stiffness `a_i` | `x_i^2 / 2` |
//! | bias `b_i` | `-x_i` |
//! | coupling `A_ij = A_ji` (one parameter per pair) | `x_i x_j` |
//! | bus gain `sigma_r` | `-l_e l_d` |
//! | bus factor `u_rj` (encoder unit `j`) | `-sigma_r x_j l_d` |
//! | bus factor `v_rj` (decoder unit `j`) | `-sigma_r x_j l_e` |
//!
//! with the bus sums `l_e = u_r . x_enc`, `l_d = v_r . x_dec`: every estimate is local to the
//! units a parameter joins, and a bus's estimate uses only its own `k` sums (the dense block is
//! never formed, the rank stays `k`).
//!
//! # Phases and estimators
//!
//! A *free* phase relaxes with bias `b + c`. A *nudged* phase with strength `beta` either
//!
//! - **bias nudge** ([`Nudge::Bias`]): bias `b + c - beta P^T g` with `g = x_o(free) - y`, the
//!   loss gradient at the free readout: just another conditioning vector, which a board runs as
//!   it runs any input; or
//! - **energy nudge** ([`Nudge::Energy`]): the energy `E + beta/2 |x_o - y|^2`, i.e. stiffness
//!   `+beta` and bias `+beta y` on the readout units.
//!
//! The one-sided estimate is `(dE/dtheta(x_{+beta}) - dE/dtheta(x_free)) / beta`, the symmetric
//! one `(dE/dtheta(x_{+beta}) - dE/dtheta(x_{-beta})) / (2 beta)`; both tend to `dL/dtheta` as
//! `beta -> 0`. For identity units the bias-nudged equilibria are affine in `beta` and the energy
//! derivatives quadratic in `x`, so the symmetric bias-nudge estimate is exact for every `beta`;
//! the one-sided error is linear in `beta`, the symmetric energy-nudge error quadratic.
//!
//! # Protocols (how a chain runs the phases; [`Protocol`])
//!
//! - [`Protocol::SameKey`]: every phase is a board RUN ([`Fixed::run_codes`]) from state 0 with
//!   the same noise key, so the noise largely cancels between phases;
//! - [`Protocol::Carried`]: one chain carried from phase to phase and from example to example,
//!   its noise running on;
//! - [`Protocol::Independent`]: every phase from state 0 with its own key.
//!
//! A phase's readout is the state averaged over `sweeps` sweeps after `burn_in` (what READOUT
//! returns), so the products in the table above are products of averaged states: what a board
//! that reads out only time-averaged units can provide.
//!
//! # The exact gradient ([`Exact`])
//!
//! For identity units, with `q = A^-1 P^T g` (`g = m_o - y`): `dL/db = q`, `dL/da_i = -q_i m_i`,
//! `dL/dA_ij = -(q_i m_j + q_j m_i)`, `dL/dsigma_r = (u.q_e)(v.m_d) + (u.m_e)(v.q_d)`,
//! `dL/du_rj = sigma_r (q_j (v.m_d) + m_j (v.q_d))`, `dL/dv_rj = sigma_r (q_j (u.m_e) + m_j (u.q_e))`.
//! The tests check it against finite differences of the loss.

use crate::engine::{Fixed, FixedEngine, Observe};
use crate::mismatch::Mismatch;
use crate::model::{readout_units, Activation, Substrate};
use crate::noise::{run_key, splitmix64};
use crate::qformat::QFormat;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

/// One training or evaluation example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Example {
    /// Conditioning added to the substrate's bias, one value per unit (energy units).
    pub cond: Vec<f64>,
    /// Target of the readout units ([`readout_units`]).
    pub target: Vec<f64>,
}

/// How the nudged phases pull the readout towards the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Nudge {
    /// Bias `b_o - beta g` with `g` the loss gradient at the free readout.
    Bias,
    /// Energy `+ beta/2 |x_o - y|^2` (stiffness and bias of the readout units).
    Energy,
}

/// Which phases an estimate uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Estimator {
    /// Free and `+beta`.
    OneSided,
    /// `+beta` and `-beta`.
    Symmetric,
}

/// How a chain runs the phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// Every phase a RUN from state 0 with the same noise key (per example).
    SameKey,
    /// One chain carried through the phases and from example to example.
    Carried,
    /// Every phase from state 0 with its own noise key.
    Independent,
}

/// Sweeps of one phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Sweeps discarded before the readout.
    pub burn_in: u32,
    /// Sweeps averaged by the readout (at least 1).
    pub sweeps: u32,
}

/// Which parameter groups a gradient covers (and training updates).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// Unit stiffness `a_i` (the self coefficients `1 - eta a_i`).
    pub stiffness: bool,
    /// Biases `b_i`.
    pub bias: bool,
    /// Local couplings `A_ij`.
    pub couplings: bool,
    /// Bus gains and factors `sigma`, `u`, `v`.
    pub buses: bool,
}

impl Groups {
    /// Every group.
    pub const ALL: Groups = Groups {
        stiffness: true,
        bias: true,
        couplings: true,
        buses: true,
    };
    /// Couplings, bus factors and biases (the stiffness fixed).
    pub const WEIGHTS: Groups = Groups {
        stiffness: false,
        bias: true,
        couplings: true,
        buses: true,
    };
}

/// A gradient (or an energy derivative) over every parameter of a substrate, laid out as the
/// substrate stores them. A coupling pair's value is stored at both of its CSR entries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Grad {
    /// Per unit, stiffness.
    pub stiffness: Vec<f64>,
    /// Per unit, bias.
    pub bias: Vec<f64>,
    /// Per CSR entry, the pair's coupling.
    pub couplings: Vec<f64>,
    /// Per bus and rank, the gain.
    pub sigma: Vec<Vec<f64>>,
    /// Per bus and rank, the encoder factor.
    pub u: Vec<Vec<Vec<f64>>>,
    /// Per bus and rank, the decoder factor.
    pub v: Vec<Vec<Vec<f64>>>,
}

impl Grad {
    /// All zeros, shaped as `s`.
    pub fn zeros(s: &Substrate) -> Grad {
        Grad {
            stiffness: vec![0.0; s.units()],
            bias: vec![0.0; s.units()],
            couplings: vec![0.0; s.nnz()],
            sigma: s.buses.iter().map(|b| vec![0.0; b.rank()]).collect(),
            u: s.buses
                .iter()
                .map(|b| b.u.iter().map(|r| vec![0.0; r.len()]).collect())
                .collect(),
            v: s.buses
                .iter()
                .map(|b| b.v.iter().map(|r| vec![0.0; r.len()]).collect())
                .collect(),
        }
    }

    /// `dE/dtheta` at the state `x` (the table of the module documentation).
    pub fn energy(s: &Substrate, x: &[f64]) -> Grad {
        let mut g = Grad::zeros(s);
        for i in 0..s.units() {
            g.stiffness[i] = 0.5 * x[i] * x[i];
            g.bias[i] = -x[i];
            for p in s.row_ptr[i]..s.row_ptr[i + 1] {
                g.couplings[p] = x[i] * x[s.col[p]];
            }
        }
        for (bi, bus) in s.buses.iter().enumerate() {
            let xe = &x[s.modules[bus.enc].range()];
            let xd = &x[s.modules[bus.dec].range()];
            for r in 0..bus.rank() {
                let le = dot(&bus.u[r], xe);
                let ld = dot(&bus.v[r], xd);
                g.sigma[bi][r] = -le * ld;
                for (o, &xj) in g.u[bi][r].iter_mut().zip(xe) {
                    *o = -bus.sigma[r] * xj * ld;
                }
                for (o, &xj) in g.v[bi][r].iter_mut().zip(xd) {
                    *o = -bus.sigma[r] * xj * le;
                }
            }
        }
        g
    }

    fn zip_mut(&mut self, o: &Grad, f: impl Fn(f64, f64) -> f64) {
        let pairs = [
            (&mut self.stiffness, &o.stiffness),
            (&mut self.bias, &o.bias),
            (&mut self.couplings, &o.couplings),
        ];
        for (a, b) in pairs {
            for (x, &y) in a.iter_mut().zip(b) {
                *x = f(*x, y);
            }
        }
        for (a, b) in self.sigma.iter_mut().zip(&o.sigma) {
            for (x, &y) in a.iter_mut().zip(b) {
                *x = f(*x, y);
            }
        }
        for (a, b) in self
            .u
            .iter_mut()
            .chain(self.v.iter_mut())
            .zip(o.u.iter().chain(&o.v))
        {
            for (ra, rb) in a.iter_mut().zip(b) {
                for (x, &y) in ra.iter_mut().zip(rb) {
                    *x = f(*x, y);
                }
            }
        }
    }

    /// `self += w * o`.
    pub fn add_scaled(&mut self, o: &Grad, w: f64) {
        self.zip_mut(o, |a, b| a + w * b);
    }

    /// `(self - o) / d`, element by element, into `self`.
    fn diff_over(&mut self, o: &Grad, d: f64) {
        self.zip_mut(o, |a, b| (a - b) / d);
    }

    /// The groups' parameters as one vector: stiffness, biases, couplings (each pair once, at
    /// its entry `i < j`), then per bus `sigma`, `u`, `v`.
    pub fn flat(&self, s: &Substrate, groups: Groups) -> Vec<f64> {
        let mut out = Vec::new();
        if groups.stiffness {
            out.extend(&self.stiffness);
        }
        if groups.bias {
            out.extend(&self.bias);
        }
        if groups.couplings {
            for i in 0..s.units() {
                for p in s.row_ptr[i]..s.row_ptr[i + 1] {
                    if i < s.col[p] {
                        out.push(self.couplings[p]);
                    }
                }
            }
        }
        if groups.buses {
            for b in 0..self.sigma.len() {
                out.extend(&self.sigma[b]);
                for r in &self.u[b] {
                    out.extend(r);
                }
                for r in &self.v[b] {
                    out.extend(r);
                }
            }
        }
        out
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Cosine of two vectors (0 when either is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let (na, nb) = (dot(a, a).sqrt(), dot(b, b).sqrt());
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot(a, b) / (na * nb)
    }
}

/// `|a - b| / |b|`.
pub fn relative_error(a: &[f64], b: &[f64]) -> f64 {
    let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    (d / dot(b, b).max(f64::MIN_POSITIVE)).sqrt()
}

/// Check an example against a substrate: widths and finite values. Errors say which field.
pub fn check_example(s: &Substrate, e: &Example) -> Result<(), String> {
    let out = readout_units(s).len();
    if e.cond.len() != s.units() {
        return Err(format!(
            "cond has {} values, the substrate has {} units",
            e.cond.len(),
            s.units()
        ));
    }
    if e.target.len() != out {
        return Err(format!(
            "target has {} values, the substrate has {out} readout (decoder) units",
            e.target.len()
        ));
    }
    if let Some(i) = e.cond.iter().position(|v| !v.is_finite()) {
        return Err(format!("cond[{i}] = {} is not finite", e.cond[i]));
    }
    if let Some(i) = e.target.iter().position(|v| !v.is_finite()) {
        return Err(format!("target[{i}] = {} is not finite", e.target[i]));
    }
    Ok(())
}

fn check_beta(beta: f64) -> Result<(), String> {
    if !(beta.is_finite() && beta > 0.0) {
        return Err(format!("beta = {beta}: must be finite and > 0"));
    }
    Ok(())
}

/// The exact equilibria and gradient of an identity-unit substrate (dense Cholesky of `A`).
pub struct Exact {
    chol: nalgebra::Cholesky<f64, nalgebra::Dyn>,
    a: DMatrix<f64>,
    out: Vec<usize>,
}

impl Exact {
    /// Factor `A`. Errors for clamp units (their equilibrium is a projected fixed point, not
    /// `A^-1 b`) and when `A` is not positive definite.
    pub fn new(s: &Substrate) -> Result<Exact, String> {
        if s.activation != Activation::Identity {
            return Err(
                "the exact equilibrium A^-1 b needs identity units; this substrate clamps".into(),
            );
        }
        let a = s.dense_a();
        let chol = a
            .clone()
            .cholesky()
            .ok_or("A is not positive definite (Cholesky failed)")?;
        Ok(Exact {
            chol,
            a,
            out: readout_units(s),
        })
    }

    /// The equilibrium (stationary mean) `A^-1 (b + cond)`.
    pub fn mean(&self, s: &Substrate, cond: &[f64]) -> Vec<f64> {
        let rhs = DVector::from_iterator(s.units(), s.bias.iter().zip(cond).map(|(b, c)| b + c));
        self.chol.solve(&rhs).iter().copied().collect()
    }

    /// The loss `1/2 |m_o - y|^2` of one example.
    pub fn loss(&self, s: &Substrate, e: &Example) -> f64 {
        let m = self.mean(s, &e.cond);
        self.out
            .iter()
            .zip(&e.target)
            .map(|(&o, y)| 0.5 * (m[o] - y) * (m[o] - y))
            .sum()
    }

    /// The mean loss over examples.
    pub fn mean_loss(&self, s: &Substrate, set: &[Example]) -> f64 {
        set.iter().map(|e| self.loss(s, e)).sum::<f64>() / set.len().max(1) as f64
    }

    /// The exact gradient `dL/dtheta` of one example (closed form through `A^-1`).
    pub fn grad(&self, s: &Substrate, e: &Example) -> Grad {
        let m = self.mean(s, &e.cond);
        let mut g = DVector::zeros(s.units());
        for (&o, y) in self.out.iter().zip(&e.target) {
            g[o] = m[o] - y;
        }
        let q: Vec<f64> = self.chol.solve(&g).iter().copied().collect();
        let mut out = Grad::zeros(s);
        for i in 0..s.units() {
            out.stiffness[i] = -q[i] * m[i];
            out.bias[i] = q[i];
            for p in s.row_ptr[i]..s.row_ptr[i + 1] {
                let j = s.col[p];
                out.couplings[p] = -(q[i] * m[j] + q[j] * m[i]);
            }
        }
        for (bi, bus) in s.buses.iter().enumerate() {
            let (re, rd) = (s.modules[bus.enc].range(), s.modules[bus.dec].range());
            let (me, md, qe, qd) = (&m[re.clone()], &m[rd.clone()], &q[re], &q[rd]);
            for r in 0..bus.rank() {
                let (ume, uqe) = (dot(&bus.u[r], me), dot(&bus.u[r], qe));
                let (vmd, vqd) = (dot(&bus.v[r], md), dot(&bus.v[r], qd));
                out.sigma[bi][r] = uqe * vmd + ume * vqd;
                for j in 0..me.len() {
                    out.u[bi][r][j] = bus.sigma[r] * (qe[j] * vmd + me[j] * vqd);
                }
                for j in 0..md.len() {
                    out.v[bi][r][j] = bus.sigma[r] * (qd[j] * ume + md[j] * uqe);
                }
            }
        }
        out
    }

    /// Noise-free phases of one example: the exact equilibria of the free, `+beta` and
    /// `-beta` energies.
    pub fn phases(&self, s: &Substrate, e: &Example, beta: f64, nudge: Nudge) -> Phases {
        let free = self.mean(s, &e.cond);
        let nudged = |b: f64| -> Vec<f64> {
            match nudge {
                Nudge::Bias => self.mean(s, &bias_nudged(&self.out, &free, e, b)),
                Nudge::Energy => {
                    let mut a = self.a.clone();
                    let mut rhs: Vec<f64> =
                        s.bias.iter().zip(&e.cond).map(|(b, c)| b + c).collect();
                    for (&o, y) in self.out.iter().zip(&e.target) {
                        a[(o, o)] += b;
                        rhs[o] += b * y;
                    }
                    let rhs = DVector::from_vec(rhs);
                    a.lu()
                        .solve(&rhs)
                        .map(|v| v.iter().copied().collect())
                        .unwrap_or_else(|| vec![f64::NAN; s.units()])
                }
            }
        };
        Phases {
            plus: nudged(beta),
            minus: nudged(-beta),
            free,
        }
    }
}

/// The bias-nudged conditioning `cond - beta P^T (x_o(free) - y)`.
pub fn bias_nudged(out: &[usize], free: &[f64], e: &Example, beta: f64) -> Vec<f64> {
    let mut c = e.cond.clone();
    for (&o, y) in out.iter().zip(&e.target) {
        c[o] -= beta * (free[o] - y);
    }
    c
}

/// The energy-nudged substrate and conditioning: stiffness `+beta` and bias `+beta y` on the
/// readout units.
fn energy_nudged(s: &Substrate, out: &[usize], e: &Example, beta: f64) -> (Substrate, Vec<f64>) {
    let mut sn = s.clone();
    let mut c = e.cond.clone();
    for (&o, y) in out.iter().zip(&e.target) {
        sn.stiffness[o] += beta;
        c[o] += beta * y;
    }
    (sn, c)
}

/// The readouts of the three phases of one example.
#[derive(Clone, Debug, PartialEq)]
pub struct Phases {
    /// Free phase.
    pub free: Vec<f64>,
    /// `+beta`.
    pub plus: Vec<f64>,
    /// `-beta`.
    pub minus: Vec<f64>,
}

impl Phases {
    /// The EqProp estimate of `dL/dtheta` from these phases.
    pub fn estimate(&self, s: &Substrate, beta: f64, est: Estimator) -> Grad {
        let mut g = Grad::energy(s, &self.plus);
        match est {
            Estimator::OneSided => g.diff_over(&Grad::energy(s, &self.free), beta),
            Estimator::Symmetric => g.diff_over(&Grad::energy(s, &self.minus), 2.0 * beta),
        }
        g
    }
}

/// Readout sweeps below which a RUN's 32-bit sums of 16-bit state codes cannot wrap.
const NO_WRAP_SWEEPS: u32 = 1 << 16;

/// Runs EqProp phases on the bit-exact fixed engine under a protocol.
pub struct PhaseRunner {
    /// Protocol.
    pub protocol: Protocol,
    /// Sweeps per phase.
    pub budget: Budget,
    /// Nudge.
    pub nudge: Nudge,
    /// Seed of the noise keys.
    pub seed: u64,
    out: Vec<usize>,
    counter: u64,
    chain: Option<FixedEngine>,
    /// Saturation events over every phase run so far.
    pub saturation: u64,
    /// Phases run so far.
    pub phases_run: u64,
}

impl PhaseRunner {
    /// A runner for `s`.
    pub fn new(s: &Substrate, protocol: Protocol, budget: Budget, nudge: Nudge, seed: u64) -> Self {
        PhaseRunner {
            protocol,
            budget: Budget {
                burn_in: budget.burn_in,
                sweeps: budget.sweeps.max(1),
            },
            nudge,
            seed,
            out: readout_units(s),
            counter: 0,
            chain: None,
            saturation: 0,
            phases_run: 0,
        }
    }

    /// One RUN (from state 0, keyed) returning the averaged state of every unit.
    fn run(&mut self, s: &Substrate, cond: &[f64], key: [u32; 3]) -> Result<Vec<f64>, String> {
        let codes = Fixed::bias_codes(s, &sum(&s.bias, cond))?;
        let all: Vec<usize> = (0..s.units()).collect();
        let r = Fixed::run_codes(
            s,
            &codes,
            key,
            self.budget.burn_in,
            self.budget.sweeps,
            &all,
        );
        self.saturation += r.saturation.total();
        self.phases_run += 1;
        let n = self.budget.sweeps as f64;
        Ok(r.sums
            .iter()
            .enumerate()
            .map(|(u, &c)| c as f64 * s.state_lsb(u) / n)
            .collect())
    }

    /// Many RUNs of `s` at once on the batched engine ([`crate::batch::BatchEngine`], `threads`
    /// workers): chain `c` starts from state 0 with lanes keyed by `keys[c]` and biases
    /// `s.bias + conds[c]`; each average is bit for bit the one [`Fixed::run_codes`] gives
    /// (its 32-bit sums cannot wrap: callers keep `sweeps <= NO_WRAP_SWEEPS`).
    fn run_many(
        &mut self,
        s: &Substrate,
        conds: &[Vec<f64>],
        keys: &[[u32; 3]],
        threads: usize,
    ) -> Result<Vec<Vec<f64>>, String> {
        let n = conds.len();
        let mut b = crate::batch::FixedBatch::fixed(s, &vec![0; n], threads);
        let mut biases = Vec::with_capacity(n);
        for (c, (cond, key)) in conds.iter().zip(keys).enumerate() {
            let bias = sum(&s.bias, cond);
            Fixed::bias_codes(s, &bias)?; // the same codes, with RUN's range error
            biases.push(bias);
            for l in 0..s.lanes {
                let rng = crate::noise::Taus88::from_key(*key, l);
                b.set_lane(c, l as usize, crate::noise::NoiseLane { rng });
            }
        }
        let out = b.relax_average(
            s,
            &biases,
            self.budget.burn_in as u64,
            self.budget.sweeps as u64,
            Observe::State,
        );
        self.phases_run += n as u64;
        Ok(out
            .into_iter()
            .map(|(avg, sat)| {
                self.saturation += sat.total();
                avg
            })
            .collect())
    }

    /// The phases of several examples at once on the batched engine: the free phases of all of
    /// them in one batch, then every nudged phase in a second. Equal bit for bit to calling
    /// [`PhaseRunner::phases`] on each in turn (same keys, same counter). Runs the examples one
    /// by one where a batch does not apply (the carried chain, the energy nudge, readouts long
    /// enough for RUN's 32-bit sums to wrap).
    pub fn phases_many(
        &mut self,
        s: &Substrate,
        examples: &[&Example],
        beta: f64,
        est: Estimator,
        threads: usize,
    ) -> Result<Vec<Phases>, String> {
        if self.protocol == Protocol::Carried
            || self.nudge == Nudge::Energy
            || self.budget.sweeps > NO_WRAP_SWEEPS
        {
            return examples
                .iter()
                .map(|e| self.phases(s, e, beta, est))
                .collect();
        }
        check_beta(beta)?;
        for e in examples {
            check_example(s, e)?;
        }
        let first = self.counter;
        self.counter += examples.len() as u64;
        let (independent, seed) = (self.protocol == Protocol::Independent, self.seed);
        let key = move |k: usize, phase: u64| {
            phase_key(seed, first + k as u64, if independent { phase } else { 0 })
        };
        let conds: Vec<Vec<f64>> = examples.iter().map(|e| e.cond.clone()).collect();
        let keys: Vec<[u32; 3]> = (0..examples.len()).map(|k| key(k, 0)).collect();
        let free = self.run_many(s, &conds, &keys, threads)?;
        let signs: &[(f64, u64)] = match est {
            Estimator::Symmetric => &[(1.0, 1), (-1.0, 2)],
            Estimator::OneSided => &[(1.0, 1)],
        };
        let mut conds = Vec::new();
        let mut keys = Vec::new();
        for (k, e) in examples.iter().enumerate() {
            for &(sign, phase) in signs {
                conds.push(bias_nudged(&self.out, &free[k], e, sign * beta));
                keys.push(key(k, phase));
            }
        }
        let mut nudged = self.run_many(s, &conds, &keys, threads)?.into_iter();
        Ok(free
            .into_iter()
            .map(|free| {
                let plus = nudged.next().unwrap_or_default();
                let minus = match est {
                    Estimator::Symmetric => nudged.next().unwrap_or_default(),
                    Estimator::OneSided => Vec::new(),
                };
                Phases { free, plus, minus }
            })
            .collect())
    }

    /// One phase of the carried chain: the engine of `s` continues from the chain's state and
    /// noise.
    fn carry(&mut self, s: &Substrate, cond: &[f64]) -> Result<Vec<f64>, String> {
        let b = sum(&s.bias, cond);
        Fixed::bias_codes(s, &b)?;
        let mut e = FixedEngine::fixed(s, self.seed);
        if let Some(prev) = self.chain.take() {
            e.x = prev.x;
            e.lanes = prev.lanes;
        }
        let before = e.saturation_total().total();
        let (avg, sat) = e.relax_average(
            s,
            &b,
            self.budget.burn_in as u64,
            self.budget.sweeps as u64,
            Observe::State,
        );
        self.saturation += sat.total() - before;
        self.phases_run += 1;
        self.chain = Some(e);
        Ok(avg)
    }

    fn phase(&mut self, s: &Substrate, cond: &[f64], key: [u32; 3]) -> Result<Vec<f64>, String> {
        match self.protocol {
            Protocol::Carried => self.carry(s, cond),
            _ => self.run(s, cond, key),
        }
    }

    /// The three phases of one example (the `-beta` phase is run only for `Symmetric`).
    pub fn phases(
        &mut self,
        s: &Substrate,
        e: &Example,
        beta: f64,
        est: Estimator,
    ) -> Result<Phases, String> {
        check_beta(beta)?;
        check_example(s, e)?;
        let (seed, counter) = (self.seed, self.counter);
        self.counter += 1;
        let key_of = |phase: u64| -> [u32; 3] { phase_key(seed, counter, phase) };
        let independent = self.protocol == Protocol::Independent;
        let k = |phase: u64| {
            if independent {
                key_of(phase)
            } else {
                key_of(0)
            }
        };
        let free = self.phase(s, &e.cond, k(0))?;
        let mut nudged = |b: f64, phase: u64| -> Result<Vec<f64>, String> {
            match self.nudge {
                Nudge::Bias => {
                    let c = bias_nudged(&self.out, &free, e, b);
                    self.phase(s, &c, k(phase))
                }
                Nudge::Energy => {
                    let (sn, c) = energy_nudged(s, &self.out, e, b);
                    self.phase(&sn, &c, k(phase))
                }
            }
        };
        let plus = nudged(beta, 1)?;
        let minus = match est {
            Estimator::Symmetric => nudged(-beta, 2)?,
            Estimator::OneSided => Vec::new(),
        };
        Ok(Phases { free, plus, minus })
    }
}

/// The noise key of phase `phase` (0 free, 1 `+beta`, 2 `-beta`) of the `example`-th example a
/// [`PhaseRunner`] with `seed` runs (counting from 0 over every call of
/// [`PhaseRunner::phases`]); under [`Protocol::SameKey`] every phase uses phase 0's key. A board
/// running the phases as RUNs uses these keys to reproduce the runner bit for bit.
pub fn phase_key(seed: u64, example: u64, phase: u64) -> [u32; 3] {
    let base = seed ^ example.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    run_key(base.wrapping_add(phase))
}

fn sum(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// A regression task for a substrate: a teacher substrate with the same wiring, its couplings
/// and bus gains scaled by `1 + perturbation * N(0,1)`, its bus factors moved by
/// `perturbation * N(0,1) / sqrt(n)` and its biases by `bias_perturbation * N(0,1)` (stiffness
/// kept), maps seeded random inputs (on the first module's units) to targets (its exact
/// equilibrium on the readout units). Returns `n` examples; `seed` fixes teacher and inputs.
pub fn teacher_task(
    s: &Substrate,
    n: usize,
    perturbation: f64,
    bias_perturbation: f64,
    input_scale: f64,
    seed: u64,
) -> Result<Vec<Example>, String> {
    let mut draws = crate::noise::SplitDraws(seed ^ 0x6571_7072_6f70);
    let mut normal = move || draws.normal();
    let mut t = s.clone();
    for i in 0..t.units() {
        for p in t.row_ptr[i]..t.row_ptr[i + 1] {
            let j = t.col[p];
            if i < j {
                let f = 1.0 + perturbation * normal();
                t.val[p] *= f;
                let q = t.mirror(i, p);
                t.val[q] = t.val[p];
            }
        }
    }
    for b in &mut t.bias {
        if bias_perturbation != 0.0 {
            *b += bias_perturbation * normal();
        }
    }
    for bus in &mut t.buses {
        for r in 0..bus.rank() {
            bus.sigma[r] *= 1.0 + perturbation * normal();
            let (ne, nd) = (bus.u[r].len() as f64, bus.v[r].len() as f64);
            for x in bus.u[r].iter_mut() {
                *x += perturbation * normal() / ne.sqrt();
            }
            for x in bus.v[r].iter_mut() {
                *x += perturbation * normal() / nd.sqrt();
            }
        }
    }
    t.revalidate()
        .map_err(|e| format!("the perturbed teacher is not a valid substrate: {e}"))?;
    let ex = Exact::new(&t)?;
    let out = readout_units(s);
    let inputs = s.modules[0].range();
    Ok((0..n)
        .map(|_| {
            let mut cond = vec![0.0; s.units()];
            for i in inputs.clone() {
                cond[i] = input_scale * normal();
            }
            let m = ex.mean(&t, &cond);
            Example {
                target: out.iter().map(|&o| m[o]).collect(),
                cond,
            }
        })
        .collect())
}

/// How parameter updates are rounded onto the stored codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rounding {
    /// No codes: parameters stay `f64` (a float reference).
    Float,
    /// Round to the nearest code (updates below half an LSB are lost).
    Nearest,
    /// Round up with probability equal to the fraction (unbiased; seeded).
    Stochastic,
}

/// A parameter's stored code: `value * scale + offset` in format `q`.
#[derive(Clone, Copy)]
struct Stored {
    q: QFormat,
    scale: f64,
    offset: f64,
}

impl Stored {
    fn code(self, v: f64) -> f64 {
        ((v * self.scale + self.offset) / self.q.lsb()).round()
    }
    fn value(self, code: f64) -> f64 {
        (code * self.q.lsb() - self.offset) / self.scale
    }
    /// The value after a step `dv`, rounded onto the codes; counts a saturation.
    fn step(self, v: f64, dv: f64, rounding: Rounding, rng: &mut u64, sat: &mut u64) -> f64 {
        if rounding == Rounding::Float {
            return v + dv;
        }
        let d = dv * self.scale / self.q.lsb();
        let d = match rounding {
            Rounding::Nearest => d.round(),
            _ => {
                let u = (splitmix64(rng) >> 11) as f64 * (-53f64).exp2();
                (d + u).floor()
            }
        };
        let c = self.code(v) + d;
        let (c2, s) = self.q.saturate(c as i64);
        *sat += s as u64;
        self.value(c2 as f64)
    }
}

/// The stored forms of the parameter groups (see the Q formats in `docs/fixed-point.md`).
fn stored(s: &Substrate) -> [Stored; 5] {
    let f = s.formats;
    let eta = s.eta;
    [
        // stiffness: self coefficient 1 - eta a
        Stored {
            q: f.coupling,
            scale: -eta,
            offset: 1.0,
        },
        // bias: eta b in the accumulator format
        Stored {
            q: f.acc(),
            scale: eta,
            offset: 0.0,
        },
        // coupling: -eta A_ij
        Stored {
            q: f.coupling,
            scale: -eta,
            offset: 0.0,
        },
        // gain: eta sigma
        Stored {
            q: f.gain,
            scale: eta,
            offset: 0.0,
        },
        // bus factors u, v
        Stored {
            q: f.coupling,
            scale: 1.0,
            offset: 0.0,
        },
    ]
}

/// Snap every parameter onto its stored code (round to nearest): the values a board holds.
pub fn snap_to_codes(s: &mut Substrate) {
    let st = stored(s);
    for a in &mut s.stiffness {
        *a = st[0].value(st[0].code(*a));
    }
    for b in &mut s.bias {
        *b = st[1].value(st[1].code(*b));
    }
    for a in &mut s.val {
        *a = st[2].value(st[2].code(*a));
    }
    for bus in &mut s.buses {
        for x in &mut bus.sigma {
            *x = st[3].value(st[3].code(*x));
        }
        for x in bus.u.iter_mut().chain(bus.v.iter_mut()).flatten() {
            *x = st[4].value(st[4].code(*x));
        }
    }
}

/// Apply `theta -= lr * g` to the groups' parameters, rounded as `rounding` says (`rng` drives
/// stochastic rounding). Coupling pairs stay symmetric. Returns the number of codes that
/// saturated. The substrate is not revalidated (see [`guard`]).
pub fn apply_step(
    s: &mut Substrate,
    g: &Grad,
    lr: f64,
    groups: Groups,
    rounding: Rounding,
    rng: &mut u64,
) -> u64 {
    let st = stored(s);
    let mut sat = 0;
    if groups.stiffness {
        for (a, d) in s.stiffness.iter_mut().zip(&g.stiffness) {
            *a = st[0].step(*a, -lr * d, rounding, rng, &mut sat);
        }
    }
    if groups.bias {
        for (b, d) in s.bias.iter_mut().zip(&g.bias) {
            *b = st[1].step(*b, -lr * d, rounding, rng, &mut sat);
        }
    }
    if groups.couplings {
        for i in 0..s.units() {
            for p in s.row_ptr[i]..s.row_ptr[i + 1] {
                let j = s.col[p];
                if i < j {
                    let v = st[2].step(s.val[p], -lr * g.couplings[p], rounding, rng, &mut sat);
                    s.val[p] = v;
                    let q = s.mirror(i, p);
                    s.val[q] = v;
                }
            }
        }
    }
    if groups.buses {
        for (bi, bus) in s.buses.iter_mut().enumerate() {
            for r in 0..bus.sigma.len() {
                bus.sigma[r] =
                    st[3].step(bus.sigma[r], -lr * g.sigma[bi][r], rounding, rng, &mut sat);
                for (x, d) in bus.u[r].iter_mut().zip(&g.u[bi][r]) {
                    *x = st[4].step(*x, -lr * d, rounding, rng, &mut sat);
                }
                for (x, d) in bus.v[r].iter_mut().zip(&g.v[bi][r]) {
                    *x = st[4].step(*x, -lr * d, rounding, rng, &mut sat);
                }
            }
        }
    }
    sat
}

/// The guard every update passes: `A` positive definite with its smallest eigenvalue at least
/// `min_eig`, `eta lambda_max(A) <= max_eta_lambda` (below 2, where the discretised dynamics
/// diverge), and every constant inside its Q format. Refreshes the substrate's spectrum.
pub fn guard(s: &mut Substrate, min_eig: f64, max_eta_lambda: f64) -> Result<(), String> {
    s.revalidate().map_err(|e| e.to_string())?;
    let (lo, hi) = s.spectrum();
    if lo < min_eig {
        return Err(format!(
            "smallest eigenvalue of A would be {lo:.4e} < {min_eig:.4e}: the update is refused"
        ));
    }
    if s.eta * hi > max_eta_lambda {
        return Err(format!(
            "eta lambda_max(A) would be {:.4} > {max_eta_lambda}: the update is refused",
            s.eta * hi
        ));
    }
    Ok(())
}

/// Where a training step's gradient comes from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradientSource {
    /// The exact gradient ([`Exact::grad`]).
    Exact,
    /// EqProp on the noise-free exact equilibria.
    EqPropExact,
    /// EqProp on the bit-exact fixed engine.
    EqPropFixed,
}

/// Training options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Steps.
    pub steps: usize,
    /// Examples per step.
    pub batch: usize,
    /// Learning rate at step 0.
    pub lr: f64,
    /// The learning rate falls linearly to `lr * lr_final` at the last step (1: constant).
    pub lr_final: f64,
    /// Nudge strength.
    pub beta: f64,
    /// Nudge.
    pub nudge: Nudge,
    /// Estimator.
    pub estimator: Estimator,
    /// Protocol (for [`GradientSource::EqPropFixed`]).
    pub protocol: Protocol,
    /// Sweeps per phase (for [`GradientSource::EqPropFixed`]).
    pub budget: Budget,
    /// Gradient source.
    pub source: GradientSource,
    /// Rounding of the updates onto the codes.
    pub rounding: Rounding,
    /// Groups trained.
    pub groups: Groups,
    /// Guard: smallest eigenvalue of `A` allowed.
    pub min_eig: f64,
    /// Guard: largest `eta lambda_max` allowed.
    pub max_eta_lambda: f64,
    /// Seed (example order, noise keys, stochastic rounding).
    pub seed: u64,
    /// Record the loss every this many steps.
    pub eval_every: usize,
    /// Worker threads of the batched engine running the fixed engine's phases (results do not
    /// depend on it).
    #[serde(default = "one")]
    pub threads: usize,
    /// Train a mismatched substrate: phases, gradients and losses on the realised substrate
    /// ([`Mismatch::realise`]), updates written to the description's values.
    pub mismatch: Option<Mismatch>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 300,
            batch: 8,
            lr: 0.05,
            lr_final: 1.0,
            beta: 0.05,
            nudge: Nudge::Bias,
            estimator: Estimator::Symmetric,
            protocol: Protocol::SameKey,
            budget: Budget {
                burn_in: 10,
                sweeps: 20,
            },
            source: GradientSource::EqPropFixed,
            rounding: Rounding::Stochastic,
            groups: Groups::WEIGHTS,
            min_eig: 0.05,
            max_eta_lambda: 1.9,
            seed: 1,
            eval_every: 10,
            mismatch: None,
            threads: 1,
        }
    }
}

fn one() -> usize {
    1
}

impl TrainOptions {
    /// Check the options; errors name the option.
    pub fn check(&self) -> Result<(), String> {
        check_beta(self.beta)?;
        if self.batch == 0 {
            return Err("batch must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("lr = {}: must be finite and > 0", self.lr));
        }
        if !(self.lr_final.is_finite() && self.lr_final > 0.0 && self.lr_final <= 1.0) {
            return Err(format!("lr_final = {}: must be in (0, 1]", self.lr_final));
        }
        if let Some(m) = &self.mismatch {
            m.check()?;
        }
        if !(self.max_eta_lambda > 0.0 && self.max_eta_lambda < 2.0) {
            return Err(format!(
                "max_eta_lambda = {}: must be in (0, 2)",
                self.max_eta_lambda
            ));
        }
        Ok(())
    }
}

/// A point of the training curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Steps done.
    pub step: usize,
    /// Mean exact loss on the training set.
    pub train_loss: f64,
    /// Mean exact loss on the validation set.
    pub val_loss: f64,
    /// Mean cosine of the steps' gradients to the exact batch gradient since the last point
    /// (`None` at step 0).
    pub alignment: Option<f64>,
}

/// A training run's state: everything needed to resume it exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    /// The substrate being trained, as a description.
    pub substrate: crate::model::SubstrateConfig,
    /// Steps done.
    pub step: usize,
    /// Stochastic-rounding generator.
    pub round_rng: u64,
    /// Phase runner's example counter (noise keys).
    pub phase_counter: u64,
    /// Updates the guard refused.
    pub refused: usize,
    /// Codes that saturated.
    pub saturated: u64,
    /// Curve so far.
    pub curve: Vec<CurvePoint>,
    /// Alignment samples since the last curve point.
    pub pending_alignment: Vec<f64>,
}

impl TrainState {
    /// A fresh run on `s` (snapped onto its codes unless the rounding is `Float`).
    pub fn new(s: &Substrate, o: &TrainOptions) -> TrainState {
        let mut s = s.clone();
        if o.rounding != Rounding::Float {
            snap_to_codes(&mut s);
        }
        TrainState {
            substrate: s.to_config(),
            step: 0,
            round_rng: o.seed ^ 0x0072_6f75_6e64,
            phase_counter: 0,
            refused: 0,
            saturated: 0,
            curve: Vec::new(),
            pending_alignment: Vec::new(),
        }
    }
}

/// The batch of step `step`: `batch` examples from a seeded permutation of the training set,
/// one permutation per epoch.
pub fn batch_indices(n: usize, batch: usize, step: usize, seed: u64) -> Vec<usize> {
    let per_epoch = n.div_ceil(batch).max(1);
    let epoch = step / per_epoch;
    let mut perm: Vec<usize> = (0..n).collect();
    let mut r = seed ^ (epoch as u64).wrapping_mul(0xD1B5_4A32_D192_ED03);
    for i in (1..n).rev() {
        let j = (splitmix64(&mut r) % (i as u64 + 1)) as usize;
        perm.swap(i, j);
    }
    let start = (step % per_epoch) * batch;
    (0..batch).map(|k| perm[(start + k) % n]).collect()
}

/// Run training from `state` until `o.steps` steps are done, calling `progress` after every
/// step (it may stop the run early by returning `false`, e.g. to checkpoint). The gradient of
/// each step is the mean over its batch; every update passes [`guard`], retried at half the
/// step up to 4 times and otherwise refused.
pub fn train(
    state: &mut TrainState,
    train_set: &[Example],
    val_set: &[Example],
    o: &TrainOptions,
    progress: impl FnMut(&TrainState) -> bool,
) -> Result<(), String> {
    train_with_phases(state, train_set, val_set, o, None, progress)
}

/// Where [`train_with_phases`] gets a batch's phases for [`GradientSource::EqPropFixed`]: called
/// with the substrate the phases run on, the batch, and the phase counter (the key index of the
/// batch's first example under `Protocol::SameKey`, advanced by the examples run); returns one
/// [`Phases`] per example, as [`PhaseRunner::phases_many`] computes them (e.g. a board running
/// the same phases, `thermo_host::eqprop::BoardPhases`).
pub type PhaseSource<'a> =
    dyn FnMut(&Substrate, &[&Example], &mut u64) -> Result<Vec<Phases>, String> + 'a;

/// [`train`], with the fixed engine's phases taken from `source` when given.
pub fn train_with_phases(
    state: &mut TrainState,
    train_set: &[Example],
    val_set: &[Example],
    o: &TrainOptions,
    mut source: Option<&mut PhaseSource<'_>>,
    mut progress: impl FnMut(&TrainState) -> bool,
) -> Result<(), String> {
    o.check()?;
    if train_set.is_empty() {
        return Err("the training set is empty".into());
    }
    let mut s = Substrate::from_config(&state.substrate).map_err(|e| e.to_string())?;
    for e in train_set.iter().chain(val_set) {
        check_example(&s, e)?;
    }
    // The substrate the phases run on at a step: the written one, or its realisation.
    let realise = |s: &Substrate, step: usize| -> Result<Substrate, String> {
        match &o.mismatch {
            None => Ok(s.clone()),
            Some(m) => {
                let mut r = m.realise(s, step);
                r.revalidate()
                    .map_err(|e| format!("the mismatched substrate at step {step}: {e}"))?;
                Ok(r)
            }
        }
    };
    let mut runner = PhaseRunner::new(&s, o.protocol, o.budget, o.nudge, o.seed);
    runner.counter = state.phase_counter;
    let record = |state: &mut TrainState, s: &Substrate| -> Result<(), String> {
        let ex = Exact::new(s)?;
        let a = &state.pending_alignment;
        let alignment = (!a.is_empty()).then(|| a.iter().sum::<f64>() / a.len() as f64);
        state.curve.push(CurvePoint {
            step: state.step,
            train_loss: ex.mean_loss(s, train_set),
            val_loss: ex.mean_loss(s, val_set),
            alignment,
        });
        state.pending_alignment.clear();
        Ok(())
    };
    if state.curve.is_empty() {
        record(state, &realise(&s, state.step)?)?;
    }
    while state.step < o.steps {
        let phys = realise(&s, state.step)?;
        let ex = Exact::new(&phys)?;
        let idx = batch_indices(train_set.len(), o.batch, state.step, o.seed);
        let mut g = Grad::zeros(&s);
        let mut exact = Grad::zeros(&s);
        let w = 1.0 / idx.len() as f64;
        // The fixed engine's phases of the whole batch at once (bit for bit the same as one by
        // one).
        let mut fixed = match o.source {
            GradientSource::EqPropFixed => {
                let batch: Vec<&Example> = idx.iter().map(|&k| &train_set[k]).collect();
                match source.as_mut() {
                    Some(f) => {
                        let v = f(&phys, &batch, &mut runner.counter)?;
                        if v.len() != batch.len() {
                            return Err(format!(
                                "the phase source returned {} phases for {} examples",
                                v.len(),
                                batch.len()
                            ));
                        }
                        v.into_iter()
                    }
                    None => runner
                        .phases_many(&phys, &batch, o.beta, o.estimator, o.threads.max(1))?
                        .into_iter(),
                }
            }
            _ => Vec::new().into_iter(),
        };
        for &k in &idx {
            let e = &train_set[k];
            exact.add_scaled(&ex.grad(&phys, e), w);
            let gi = match o.source {
                GradientSource::Exact => continue,
                GradientSource::EqPropExact => {
                    ex.phases(&phys, e, o.beta, o.nudge)
                        .estimate(&phys, o.beta, o.estimator)
                }
                GradientSource::EqPropFixed => fixed
                    .next()
                    .ok_or("a batch phase is missing")?
                    .estimate(&phys, o.beta, o.estimator),
            };
            g.add_scaled(&gi, w);
        }
        if o.source == GradientSource::Exact {
            g = exact.clone();
        }
        state
            .pending_alignment
            .push(cosine(&g.flat(&s, o.groups), &exact.flat(&s, o.groups)));
        let frac = state.step as f64 / o.steps.max(1) as f64;
        let mut lr = o.lr * (1.0 - (1.0 - o.lr_final) * frac);
        let mut accepted = false;
        for _ in 0..5 {
            let mut cand = s.clone();
            let mut rng = state.round_rng;
            let sat = apply_step(&mut cand, &g, lr, o.groups, o.rounding, &mut rng);
            let ok = guard(&mut cand, o.min_eig, o.max_eta_lambda).is_ok()
                && (o.mismatch.is_none()
                    || realise(&cand, state.step + 1)
                        .and_then(|mut r| guard(&mut r, o.min_eig, o.max_eta_lambda))
                        .is_ok());
            if ok {
                s = cand;
                state.round_rng = rng;
                state.saturated += sat;
                accepted = true;
                break;
            }
            lr *= 0.5;
        }
        if !accepted {
            state.refused += 1;
        }
        state.step += 1;
        state.phase_counter = runner.counter;
        state.substrate = s.to_config();
        if state.step % o.eval_every.max(1) == 0 || state.step == o.steps {
            record(state, &realise(&s, state.step)?)?;
        }
        if !progress(state) {
            break;
        }
    }
    Ok(())
}

/// The mean exact loss of `s` on `set`, realised through `mismatch` at `step` when given (what
/// deploying the written weights on that substrate gives).
pub fn deployed_loss(
    s: &Substrate,
    set: &[Example],
    mismatch: Option<&Mismatch>,
    step: usize,
) -> Result<f64, String> {
    let r = match mismatch {
        None => s.clone(),
        Some(m) => {
            let mut r = m.realise(s, step);
            r.revalidate()
                .map_err(|e| format!("the mismatched substrate: {e}"))?;
            r
        }
    };
    Ok(Exact::new(&r)?.mean_loss(&r, set))
}

/// One row of the bias-against-beta table: an estimator's error on the exact equilibria.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlopeRow {
    /// Nudge.
    pub nudge: Nudge,
    /// Estimator.
    pub estimator: Estimator,
    /// The betas, largest first, each half the one before.
    pub betas: Vec<f64>,
    /// Mean over the examples of `|estimate - exact| / |exact|` at each beta.
    pub errors: Vec<f64>,
    /// Least-squares slope of `log error` against `log beta`.
    pub slope: f64,
}

impl SlopeRow {
    /// `error(beta) / error(beta / 2)` for each consecutive pair.
    pub fn ratios(&self) -> Vec<f64> {
        self.errors.windows(2).map(|w| w[0] / w[1]).collect()
    }
}

/// Least-squares slope of `log y` against `log x`.
pub fn log_log_slope(x: &[f64], y: &[f64]) -> f64 {
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.max(f64::MIN_POSITIVE).ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let sxy: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = lx.iter().map(|a| (a - mx) * (a - mx)).sum();
    sxy / sxx
}

/// The estimators' error against beta on the noise-free equilibria (identity units): one row
/// per nudge and estimator, `levels` betas from `beta0` down by halves.
pub fn slope_table(
    s: &Substrate,
    examples: &[Example],
    beta0: f64,
    levels: usize,
    groups: Groups,
) -> Result<Vec<SlopeRow>, String> {
    check_beta(beta0)?;
    let ex = Exact::new(s)?;
    for e in examples {
        check_example(s, e)?;
    }
    let betas: Vec<f64> = (0..levels).map(|k| beta0 * 0.5f64.powi(k as i32)).collect();
    let exact: Vec<Vec<f64>> = examples
        .iter()
        .map(|e| ex.grad(s, e).flat(s, groups))
        .collect();
    let mut rows = Vec::new();
    for nudge in [Nudge::Bias, Nudge::Energy] {
        let phases: Vec<Vec<Phases>> = betas
            .iter()
            .map(|&b| examples.iter().map(|e| ex.phases(s, e, b, nudge)).collect())
            .collect();
        for estimator in [Estimator::OneSided, Estimator::Symmetric] {
            let errors: Vec<f64> = betas
                .iter()
                .zip(&phases)
                .map(|(&b, ph)| {
                    ph.iter()
                        .zip(&exact)
                        .map(|(p, g)| {
                            relative_error(&p.estimate(s, b, estimator).flat(s, groups), g)
                        })
                        .sum::<f64>()
                        / examples.len() as f64
                })
                .collect();
            rows.push(SlopeRow {
                nudge,
                estimator,
                slope: log_log_slope(&betas, &errors),
                betas: betas.clone(),
                errors,
            });
        }
    }
    Ok(rows)
}

/// One row of the cosine table: an estimator under a protocol and a sweep budget on the fixed
/// engine, against the exact gradient, per example.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CosineRow {
    /// Protocol.
    pub protocol: Protocol,
    /// Estimator.
    pub estimator: Estimator,
    /// Nudge.
    pub nudge: Nudge,
    /// Sweeps per phase.
    pub budget: Budget,
    /// Beta.
    pub beta: f64,
    /// Mean cosine over the examples.
    pub mean: f64,
    /// Smallest cosine.
    pub min: f64,
    /// Share of negative cosines.
    pub negative: f64,
    /// Cosine of the estimates' mean over the examples to the exact gradient's mean (a batch
    /// gradient: the noise of the examples' estimates partly averages out).
    pub batch: f64,
    /// Saturation events over all phases.
    pub saturation: u64,
}

/// Cosines of the fixed engine's EqProp estimates to the exact gradient, per example, for each
/// protocol, estimator and budget (the examples run in order; the carried chain runs on through
/// them).
#[allow(clippy::too_many_arguments)]
pub fn cosine_table(
    s: &Substrate,
    examples: &[Example],
    beta: f64,
    nudge: Nudge,
    protocols: &[Protocol],
    budgets: &[Budget],
    groups: Groups,
    seed: u64,
) -> Result<Vec<CosineRow>, String> {
    check_beta(beta)?;
    let ex = Exact::new(s)?;
    let exact: Vec<Vec<f64>> = examples
        .iter()
        .map(|e| ex.grad(s, e).flat(s, groups))
        .collect();
    let mut rows = Vec::new();
    for &protocol in protocols {
        for &budget in budgets {
            for estimator in [Estimator::OneSided, Estimator::Symmetric] {
                let mut runner = PhaseRunner::new(s, protocol, budget, nudge, seed);
                let mut cos = Vec::with_capacity(examples.len());
                let mut sum_est = vec![0.0; exact.first().map_or(0, |g| g.len())];
                let mut sum_exact = sum_est.clone();
                for (e, g) in examples.iter().zip(&exact) {
                    let est = runner
                        .phases(s, e, beta, estimator)?
                        .estimate(s, beta, estimator)
                        .flat(s, groups);
                    cos.push(cosine(&est, g));
                    for ((a, b), (x, y)) in sum_est
                        .iter_mut()
                        .zip(sum_exact.iter_mut())
                        .zip(est.iter().zip(g))
                    {
                        *a += x;
                        *b += y;
                    }
                }
                let n = cos.len().max(1) as f64;
                rows.push(CosineRow {
                    protocol,
                    estimator,
                    nudge,
                    budget,
                    beta,
                    mean: cos.iter().sum::<f64>() / n,
                    min: cos.iter().copied().fold(f64::INFINITY, f64::min),
                    negative: cos.iter().filter(|&&c| c < 0.0).count() as f64 / n,
                    batch: cosine(&sum_est, &sum_exact),
                    saturation: runner.saturation,
                });
            }
        }
    }
    Ok(rows)
}
