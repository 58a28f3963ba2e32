//! Equilibrium propagation on the clamped substrate (`thermo train-substrate --method eqprop`,
//! `thermo check-substrate-eqprop`).
//!
//! The clamped substrate's fixed point `y = clamp(J y + b, lo, hi)` ([`crate::clamped`]) is the
//! minimiser over the box `[lo, hi]^n` of the Hopfield-style energy
//!
//! ```text
//! E(y) = 1/2 |y|^2 - 1/2 y^T J y - b^T y,
//! ```
//!
//! (strictly convex while `||J||_2 < 1`), whose derivatives are local: `dE/dJ_ij = -y_i y_j` for
//! a coupling pair (a block `W = J[to, from]`: `-y_to y_from^T`), `dE/db = -y`, and for a rank-k
//! bus `J[dec, enc] = sum_r s_r v_r u_r^T` only its own sums `l_e = u_r . y_enc`,
//! `l_d = v_r . y_dec`: `dE/ds_r = -l_e l_d`, `dE/du_r = -s_r y_enc l_d`,
//! `dE/dv_r = -s_r y_dec l_e` (the dense block is never formed).
//!
//! Phases, all exact (`f64` projected fixed points, [`PHASE_RELAX`]): the **free** phase with the
//! per-call biases `b`; the **nudged** phases with the bias nudge on the readout (last module)
//! units, `b_dec0 -/+ beta' g`, where `g = dL/dy_dec0` goes through the digital head at the free
//! point. `beta` is given relative: `beta' = beta max|b_dec0| / max|g|`, so the largest nudge is
//! `beta` times the largest readout bias of the batch (the gradient's own scale, about `1e-4`
//! per unit here, says nothing about the states'). The nudged phases start from the free point.
//! Estimates: one-sided `(dE/dtheta(y_+) - dE/dtheta(y_free)) / beta'`, symmetric
//! `(dE/dtheta(y_+) - dE/dtheta(y_-)) / (2 beta')`.
//!
//! The digital periphery: the head's gradients come directly from the free point (as in
//! [`crate::clamped_train::loss_and_grad`]); the sources of the biases (the bias vector, the
//! noise-level table, the input drives) get `dL/db` per call estimated as the difference of
//! `-dE/db = y` between the phases, pushed through the same chain rule as the implicit gradient
//! ([`crate::clamped_train::bias_grads`]).
//!
//! Where no unit changes its clamp state between the phases, the fixed point is affine in the
//! nudge, so the symmetric bias-nudge estimate is exact (its error is the phases' solver
//! tolerance over `beta'`) and the one-sided one is off by a term linear in `beta` (the
//! couplings' `beta' a a^T`). Units that cross `lo` or `hi` inside the nudge make both
//! estimates approximate; [`Phases::switched`] counts them.

use crate::clamped::{relax_exact_from, ClampedModel, RelaxOptions};
use crate::clamped_train::{
    bias_grads, head_grads, output_loss, tensor_names, tensors_mut, train_with, zeros_like,
    TrainOptions, TrainReport, ValPoint,
};
use crate::rng::Rng;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
pub use thermo_sim::eqprop::{cosine, relative_error, Estimator};

/// The phases' relaxation: tight enough that the difference of two phases (a nudge of order
/// `beta` times the readout biases) is not the solver's tolerance.
pub const PHASE_RELAX: RelaxOptions = RelaxOptions {
    tol: 1e-14,
    max_iter: 20000,
};

/// Settings of the EqProp gradient.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct EqpropOptions {
    /// Nudge size relative to the largest readout bias of the batch (> 0).
    pub beta: f64,
    /// One-sided (free and `+beta`) or symmetric (`+beta` and `-beta`).
    pub estimator: Estimator,
}

impl Default for EqpropOptions {
    fn default() -> Self {
        EqpropOptions {
            beta: 0.01,
            estimator: Estimator::Symmetric,
        }
    }
}

impl EqpropOptions {
    /// A clear error for a nudge that cannot be one.
    pub fn check(&self) -> Result<(), String> {
        if !(self.beta.is_finite() && self.beta > 0.0) {
            return Err(format!(
                "beta = {}: the nudge size must be a finite number > 0",
                self.beta
            ));
        }
        Ok(())
    }
}

/// The energy's derivatives `dE/dtheta` at the states `y` (`[units, batch]`), summed over the
/// batch, for the couplings (blocks, bus gains and factors) and the bias vector; every digital
/// tensor is 0.
pub fn energy_grad(c: &ClampedModel, y: &DMatrix<f64>) -> ClampedModel {
    let mut e = zeros_like(c);
    for (bi, blk) in c.blocks.iter().enumerate() {
        let (rt, rf) = (c.range(blk.to), c.range(blk.from));
        let p = y.rows(rt.start, rt.len()) * y.rows(rf.start, rf.len()).transpose();
        let cols = rf.len();
        for (k, v) in e.blocks[bi].w.iter_mut().enumerate() {
            *v = -p[(k / cols, k % cols)];
        }
    }
    for (bi, bus) in c.buses.iter().enumerate() {
        let (re, rd) = (c.range(bus.enc), c.range(bus.dec));
        let (ye, yd) = (y.rows(re.start, re.len()), y.rows(rd.start, rd.len()));
        for k in 0..bus.sigma.len() {
            let u = DVector::from_column_slice(&bus.u[k]);
            let v = DVector::from_column_slice(&bus.v[k]);
            // The bus sums of every call: l_e = y_enc^T u, l_d = y_dec^T v (one per column).
            let le = ye.transpose() * &u;
            let ld = yd.transpose() * &v;
            let s = bus.sigma[k];
            e.buses[bi].sigma[k] = -le.dot(&ld);
            e.buses[bi].u[k] = (ye * &ld * -s).iter().copied().collect();
            e.buses[bi].v[k] = (yd * &le * -s).iter().copied().collect();
        }
    }
    for (i, v) in e.bias.iter_mut().enumerate() {
        *v = -y.row(i).sum();
    }
    e
}

/// The free and nudged phases of a batch.
#[derive(Clone, Debug)]
pub struct Phases {
    /// Loss of the free phase (the batch's loss).
    pub loss: f64,
    /// Free fixed point `[units, batch]`.
    pub free: DMatrix<f64>,
    /// Fixed point with `b_dec0 - beta' g`.
    pub plus: DMatrix<f64>,
    /// Fixed point with `b_dec0 + beta' g` (symmetric estimator only).
    pub minus: Option<DMatrix<f64>>,
    /// The absolute nudge step `beta'` (0 when `g = 0`: nothing to learn from the substrate).
    pub step: f64,
    /// Unit-calls whose clamp state (below, inside, above) differs between the free phase and a
    /// nudged one.
    pub switched: usize,
    /// The head's gradients (`out_w`, `out_b`, `out_x`) at the free point; every other tensor 0.
    pub head: ClampedModel,
}

fn clamp_state(p: f64, lo: f64, hi: f64) -> i8 {
    if p <= lo {
        -1
    } else if p >= hi {
        1
    } else {
        0
    }
}

/// Run the phases of a batch (`x0s` clean, `xs` noisy at `sigmas`) on the couplings `j`
/// (`c.coupling_matrix()`).
pub fn phases(
    c: &ClampedModel,
    j: &DMatrix<f64>,
    x0s: &[Vec<f32>],
    xs: &[Vec<f32>],
    sigmas: &[f32],
    o: &EqpropOptions,
) -> Result<Phases, String> {
    o.check()?;
    if xs.is_empty() || x0s.len() != xs.len() || sigmas.len() != xs.len() {
        return Err(format!(
            "a batch needs as many clean images ({}), noisy images ({}) and noise levels ({}), at least one",
            x0s.len(),
            xs.len(),
            sigmas.len()
        ));
    }
    let b = c.biases(xs, sigmas);
    let free = relax_exact_from(
        j,
        &b,
        c.lo,
        c.hi,
        &PHASE_RELAX,
        b.map(|v| v.clamp(c.lo, c.hi)),
    )?;
    let f = c.head(&free.y, xs, sigmas);
    let (loss, gf) = output_loss(c, &f, x0s, xs, sigmas);
    let mut head = zeros_like(c);
    let g = head_grads(c, &gf, &free.y, xs, sigmas, &mut head);
    let lr = c.range(c.out_module());
    let gmax = g.rows(lr.start, lr.len()).abs().max();
    let bmax = b.rows(lr.start, lr.len()).abs().max();
    let step = if gmax > 0.0 {
        o.beta * bmax.max(f64::MIN_POSITIVE) / gmax
    } else {
        0.0
    };
    let nudged = |sign: f64| -> Result<(DMatrix<f64>, DMatrix<f64>), String> {
        let bn = &b + &g * (sign * step);
        let r = relax_exact_from(j, &bn, c.lo, c.hi, &PHASE_RELAX, free.y.clone())?;
        Ok((r.y, r.p))
    };
    let (plus, pp) = nudged(-1.0)?;
    let minus = match o.estimator {
        Estimator::Symmetric => Some(nudged(1.0)?),
        Estimator::OneSided => None,
    };
    let mut switched = 0;
    for (k, &p0) in free.p.iter().enumerate() {
        let s0 = clamp_state(p0, c.lo, c.hi);
        let sp = clamp_state(pp[k], c.lo, c.hi);
        let sm = minus
            .as_ref()
            .map(|(_, pm)| clamp_state(pm[k], c.lo, c.hi))
            .unwrap_or(s0);
        if sp != s0 || sm != s0 {
            switched += 1;
        }
    }
    Ok(Phases {
        loss,
        free: free.y,
        plus,
        minus: minus.map(|m| m.0),
        step,
        switched,
        head,
    })
}

impl Phases {
    /// The EqProp gradient of every trainable tensor (a [`ClampedModel`] of gradients, as
    /// [`crate::clamped_train::loss_and_grad`] returns).
    pub fn estimate(&self, c: &ClampedModel, xs: &[Vec<f32>], sigmas: &[f32]) -> ClampedModel {
        let mut grad = self.head.clone();
        if self.step == 0.0 {
            return grad;
        }
        let (a, b, den) = match &self.minus {
            Some(m) => (&self.plus, m, 2.0 * self.step),
            None => (&self.plus, &self.free, self.step),
        };
        let (ea, eb) = (energy_grad(c, a), energy_grad(c, b));
        let ncoup = crate::clamped_train::coupling_tensors(c);
        let mut ea = ea;
        let mut eb = eb;
        for (ti, ((gt, ta), tb)) in tensors_mut(&mut grad)
            .into_iter()
            .zip(tensors_mut(&mut ea))
            .zip(tensors_mut(&mut eb))
            .enumerate()
        {
            if ti >= ncoup {
                break;
            }
            for ((g, va), vb) in gt.iter_mut().zip(ta.iter()).zip(tb.iter()) {
                *g = (va - vb) / den;
            }
        }
        // dL/db per call: the difference of -dE/db = y between the phases.
        let q = (a - b) * (-1.0 / den);
        bias_grads(c, &q, xs, sigmas, &mut grad);
        grad
    }
}

/// The batch's loss and its EqProp gradient ([`phases`], then [`Phases::estimate`]): a drop-in
/// for [`crate::clamped_train::loss_and_grad`].
pub fn loss_and_grad(
    c: &ClampedModel,
    j: &DMatrix<f64>,
    x0s: &[Vec<f32>],
    xs: &[Vec<f32>],
    sigmas: &[f32],
    o: &EqpropOptions,
) -> Result<(f64, ClampedModel), String> {
    let ph = phases(c, j, x0s, xs, sigmas, o)?;
    Ok((ph.loss, ph.estimate(c, xs, sigmas)))
}

/// Train by EqProp: [`crate::clamped_train::train`]'s batches, noise, optimiser, guard,
/// schedule and validation, with the gradient of [`loss_and_grad`].
pub fn train(
    c: &mut ClampedModel,
    train_images: &[Vec<f32>],
    val_images: &[Vec<f32>],
    o: &TrainOptions,
    e: &EqpropOptions,
    progress: impl FnMut(usize, f64, Option<&ValPoint>),
) -> Result<TrainReport, String> {
    e.check()?;
    let e = *e;
    let mut report = train_with(
        c,
        train_images,
        val_images,
        o,
        None,
        move |c, j, x0s, xs, s| loss_and_grad(c, j, x0s, xs, s, &e),
        progress,
    )?;
    report.eqprop = Some(e);
    Ok(report)
}

/// The tensor groups of a comparison: every block, each bus's gains, encoder factors and
/// decoder factors, then the biases and the digital periphery (`tensor_names` with the rank
/// index dropped).
pub fn groups(c: &ClampedModel) -> Vec<String> {
    let mut g: Vec<String> = Vec::new();
    for n in tensor_names(c) {
        let n = match n.rfind('[') {
            Some(i) if n.ends_with(']') && (n[..i].ends_with(".u") || n[..i].ends_with(".v")) => {
                n[..i].to_string()
            }
            _ => n,
        };
        if g.last() != Some(&n) {
            g.push(n);
        }
    }
    g
}

/// Flatten a gradient model by [`groups`].
fn grouped(c: &ClampedModel, grad: &ClampedModel) -> Vec<(String, Vec<f64>)> {
    let names = tensor_names(c);
    let mut gr = grad.clone();
    let mut out: Vec<(String, Vec<f64>)> = Vec::new();
    let gnames = groups(c);
    let mut gi = 0;
    for (n, t) in names.iter().zip(tensors_mut(&mut gr)) {
        while !(n == &gnames[gi] || n.starts_with(&format!("{}[", gnames[gi]))) {
            gi += 1;
        }
        match out.last_mut() {
            Some((name, v)) if *name == gnames[gi] => v.extend_from_slice(t),
            _ => out.push((gnames[gi].clone(), t.clone())),
        }
    }
    out
}

/// One row of [`compare`]: the EqProp gradient against the implicit one at one `beta`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CompareRow {
    /// Relative nudge.
    pub beta: f64,
    /// Estimator.
    pub estimator: Estimator,
    /// Cosine of the concatenated gradients (every tensor), mean over the batches.
    pub overall: f64,
    /// Cosine of the substrate's tensors only (couplings and bias vector), mean over the batches.
    pub substrate: f64,
    /// `|eqprop - implicit| / |implicit|` over every tensor, mean over the batches.
    pub rel_error: f64,
    /// Per tensor group ([`groups`]): cosine, mean over the batches.
    pub per_group: Vec<(String, f64)>,
    /// Share of unit-calls that switched clamp state between the phases.
    pub switched: f64,
}

/// A batch: clean images, noisy images, noise levels.
pub type Batch = (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<f32>);

/// A training-like batch: `batch` images drawn from `images` and noise levels `ln sigma ~
/// N(p_mean, p_std^2)` clamped to the model's range, noised (all from `rng`).
pub fn draw_batch(
    c: &ClampedModel,
    images: &[Vec<f32>],
    batch: usize,
    p_mean: f64,
    p_std: f64,
    rng: &mut Rng,
) -> Batch {
    let (smin, smax) = (c.unet.sigma_min as f64, c.unet.sigma_max as f64);
    let x0s: Vec<Vec<f32>> = (0..batch)
        .map(|_| images[rng.below(images.len())].clone())
        .collect();
    let sigmas: Vec<f32> = (0..batch)
        .map(|_| (p_mean + p_std * rng.normal()).exp().clamp(smin, smax) as f32)
        .collect();
    let xs = x0s
        .iter()
        .zip(&sigmas)
        .map(|(x0, &s)| x0.iter().map(|v| v + s * rng.normal() as f32).collect())
        .collect();
    (x0s, xs, sigmas)
}

/// Compare the EqProp gradient with the implicit-differentiation gradient
/// ([`crate::clamped_train::loss_and_grad`]) on `batches` (clean, noisy, sigmas) at each beta
/// and estimator.
pub fn compare(
    c: &ClampedModel,
    batches: &[Batch],
    betas: &[f64],
    estimators: &[Estimator],
) -> Result<Vec<CompareRow>, String> {
    let j = c.coupling_matrix();
    let exact: Vec<Vec<(String, Vec<f64>)>> = batches
        .iter()
        .map(|(x0s, xs, s)| {
            crate::clamped_train::loss_and_grad(c, &j, x0s, xs, s).map(|(_, g)| grouped(c, &g))
        })
        .collect::<Result<_, _>>()?;
    let nsub = c.blocks.len() + 3 * c.buses.len() + 1;
    let mut rows = Vec::new();
    for &est in estimators {
        for &beta in betas {
            let o = EqpropOptions {
                beta,
                estimator: est,
            };
            let mut overall = 0.0;
            let mut substrate = 0.0;
            let mut rel = 0.0;
            let mut switched = 0.0;
            let mut per: Vec<(String, f64)> = Vec::new();
            for ((x0s, xs, s), ex) in batches.iter().zip(&exact) {
                let ph = phases(c, &j, x0s, xs, s, &o)?;
                switched += ph.switched as f64 / (ph.free.len()) as f64;
                let g = grouped(c, &ph.estimate(c, xs, s));
                let flat = |v: &[(String, Vec<f64>)], k: usize| -> Vec<f64> {
                    v[..k].iter().flat_map(|(_, t)| t.iter().copied()).collect()
                };
                let (fa, fb) = (flat(&g, g.len()), flat(ex, ex.len()));
                overall += cosine(&fa, &fb);
                rel += relative_error(&fa, &fb);
                substrate += cosine(&flat(&g, nsub), &flat(ex, nsub));
                for (k, ((n, a), (_, b))) in g.iter().zip(ex).enumerate() {
                    if per.len() <= k {
                        per.push((n.clone(), 0.0));
                    }
                    per[k].1 += cosine(a, b);
                }
            }
            let nb = batches.len().max(1) as f64;
            per.iter_mut().for_each(|p| p.1 /= nb);
            rows.push(CompareRow {
                beta,
                estimator: est,
                overall: overall / nb,
                substrate: substrate / nb,
                rel_error: rel / nb,
                per_group: per,
                switched: switched / nb,
            });
        }
    }
    Ok(rows)
}
