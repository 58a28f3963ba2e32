//! Training a clamped substrate through its own fixed point (`thermo train-substrate`).
//!
//! The substrate's output is a function of its projected fixed point `y = clamp(J y + b)`
//! ([`crate::clamped`]); its gradient comes from implicit differentiation there. With `D` the
//! diagonal mask of units strictly inside `(lo, hi)` at the fixed point and `g = dL/dy`, the
//! adjoint `q` solves `q = D (g + J q)` (the same contracting iteration as the forward pass,
//! since `||D J||_2 <= ||J||_2 < 1`), and then
//!
//! - `dL/db = q` (biases, the noise-level table `E phi`, the input drive `W_in c_in x`);
//! - a local block `J[to, from] = W` (and `W^T` back): `dL/dW = q_to y_from^T + y_to q_from^T`;
//! - a bus `J[dec, enc] = sum_r s_r v_r u_r^T`: with `G = q_dec y_enc^T + y_dec q_enc^T`,
//!   `dL/ds_r = v_r^T G u_r`, `dL/du_r = s_r G^T v_r`, `dL/dv_r = s_r G u_r`, computed from the
//!   batch without forming `G`: the rank stays what it is.
//!
//! The loss is the U-Net's own (EDM): `|F - (x0 - c_skip x) / c_out|^2` per pixel, noise levels
//! drawn log-normally. After every step a guard rescales the couplings if `||J||_2` passes a cap
//! below 1, so the relaxation keeps contracting (and the engines' `eta lambda_max < 2` holds
//! with `lambda_max(I - J) < 2`).

use crate::clamped::{contraction_of, relax_exact, ClampedModel, RelaxOptions};
use crate::rng::Rng;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// Hyper-parameters of [`train`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainOptions {
    /// Adam steps.
    pub steps: usize,
    /// Images per step.
    pub batch: usize,
    /// Peak learning rate, relative to each tensor's RMS at the start (cosine-decayed to
    /// `lr_final_frac * lr`).
    pub lr: f64,
    /// Final learning rate as a fraction of `lr`.
    pub lr_final_frac: f64,
    /// `ln sigma ~ N(p_mean, p_std^2)`, clamped to the model's `[sigma_min, sigma_max]`.
    pub p_mean: f64,
    /// See `p_mean`.
    pub p_std: f64,
    /// Seed of batches and noise.
    pub seed: u64,
    /// Largest `||J||_2` the guard allows.
    pub norm_cap: f64,
    /// Validate (and keep the best model) every this many steps.
    pub val_every: usize,
    /// Also train the digital periphery (input drive, noise-level table, output head).
    pub train_digital: bool,
    /// Noise levels of the validation loss (the kept model has the smallest sum of MSEs).
    #[serde(default = "default_val_sigmas")]
    pub val_sigmas: Vec<f32>,
    /// Weight of a teacher's denoised output in the regression target (0: the clean image
    /// alone, the EDM objective; 1: the teacher alone, distillation). Needs a [`Teacher`].
    #[serde(default)]
    pub distill: f64,
    /// Where the teacher came from (reported only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
}

fn default_val_sigmas() -> Vec<f32> {
    VAL_SIGMAS.to_vec()
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            steps: 1500,
            batch: 128,
            lr: 1e-3,
            lr_final_frac: 0.05,
            p_mean: -0.6,
            p_std: 1.2,
            seed: 1,
            norm_cap: 0.95,
            val_every: 100,
            train_digital: true,
            val_sigmas: VAL_SIGMAS.to_vec(),
            distill: 0.0,
            teacher: None,
        }
    }
}

/// A denoiser whose output the training target leans on (distillation, `TrainOptions::distill`):
/// the target image of a noisy `x` becomes `(1 - w) x0 + w D_teacher(x)`. A teacher's output
/// is an estimate of `E[x0 | x]`, the quantity the EDM loss regresses on; it has no sampling noise
/// in the target, which matters most at large sigma where `x0` given `x` is widely spread.
pub struct Teacher {
    model: ClampedModel,
    j: DMatrix<f64>,
}

impl Teacher {
    /// A teacher from a clamped substrate; it must denoise the same images as the student
    /// (same pixels and noise-level preconditioning).
    pub fn new(model: ClampedModel) -> Result<Self, String> {
        model.validate()?;
        let j = model.coupling_matrix();
        Ok(Teacher { model, j })
    }

    /// The teacher's denoised images (not clipped) of noisy `xs` at `sigmas`.
    pub fn denoise(&self, xs: &[Vec<f32>], sigmas: &[f32]) -> Result<Vec<Vec<f32>>, String> {
        let b = self.model.biases(xs, sigmas);
        let r = relax_exact(
            &self.j,
            &b,
            self.model.lo,
            self.model.hi,
            &RelaxOptions::default(),
        )
        .map_err(|e| format!("teacher: {e}"))?;
        Ok(self
            .model
            .denoised(xs, sigmas, &self.model.head(&r.y, xs, sigmas)))
    }

    /// The targets `(1 - w) x0 + w D_teacher(x)` of a batch.
    pub fn targets(
        &self,
        w: f64,
        x0s: &[Vec<f32>],
        xs: &[Vec<f32>],
        sigmas: &[f32],
    ) -> Result<Vec<Vec<f32>>, String> {
        let d = self.denoise(xs, sigmas)?;
        let w = w as f32;
        Ok(x0s
            .iter()
            .zip(&d)
            .map(|(x0, dt)| {
                x0.iter()
                    .zip(dt)
                    .map(|(a, b)| (1.0 - w) * a + w * b)
                    .collect()
            })
            .collect())
    }

    /// Check that the teacher denoises what `student` denoises.
    pub fn check_matches(&self, student: &ClampedModel) -> Result<(), String> {
        let (t, s) = (&self.model.unet, &student.unet);
        if t.input != s.input
            || t.sigma_data != s.sigma_data
            || t.sigma_min != s.sigma_min
            || t.sigma_max != s.sigma_max
        {
            return Err(format!(
                "teacher denoises {} pixels (sigma_data {}, sigma in [{}, {}]), the student {} (sigma_data {}, sigma in [{}, {}])",
                t.input, t.sigma_data, t.sigma_min, t.sigma_max, s.input, s.sigma_data, s.sigma_min, s.sigma_max
            ));
        }
        Ok(())
    }
}

/// Step scale of a tensor that starts at zero.
pub const ZERO_INIT_STEP: f64 = 0.5;

/// Default noise levels of the validation loss.
pub const VAL_SIGMAS: [f32; 4] = [0.2, 0.5, 1.0, 2.0];

/// One validation point.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ValPoint {
    /// Step.
    pub step: usize,
    /// Mean training loss since the previous point.
    pub train_loss: f64,
    /// Denoised-image MSE per pixel on the validation images at `val_sigmas` (clipped).
    pub val_mse: Vec<f64>,
    /// `||J||_2` after the step.
    pub norm2: f64,
}

/// What a training run did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainReport {
    /// Hyper-parameters.
    pub options: TrainOptions,
    /// Training and validation images.
    pub n_train: usize,
    /// See `n_train`.
    pub n_val: usize,
    /// Validation curve.
    pub curve: Vec<ValPoint>,
    /// Step of the kept (best validation) model.
    pub best_step: usize,
    /// Times the guard rescaled the couplings.
    pub guard_rescales: usize,
    /// The EqProp settings when the gradient was EqProp's (`crate::clamped_eqprop::train`);
    /// absent for implicit differentiation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eqprop: Option<crate::clamped_eqprop::EqpropOptions>,
}

/// The trainable tensors of a model, in a fixed order (couplings first, then biases, then the
/// digital periphery); [`tensor_names`] names them in the same order.
pub fn tensors_mut(c: &mut ClampedModel) -> Vec<&mut Vec<f64>> {
    let mut v: Vec<&mut Vec<f64>> = Vec::new();
    for b in c.blocks.iter_mut() {
        v.push(&mut b.w);
    }
    for b in c.buses.iter_mut() {
        v.push(&mut b.sigma);
        for u in b.u.iter_mut() {
            v.push(u);
        }
        for w in b.v.iter_mut() {
            v.push(w);
        }
    }
    v.push(&mut c.bias);
    v.push(&mut c.emb);
    v.push(&mut c.input);
    v.push(&mut c.out_w);
    v.push(&mut c.out_b);
    if !c.out_x.is_empty() {
        v.push(&mut c.out_x);
    }
    if !c.input_out.is_empty() {
        v.push(&mut c.input_out);
    }
    if !c.out_x_gate.is_empty() {
        v.push(&mut c.out_x_gate);
    }
    if !c.input_out_gate.is_empty() {
        v.push(&mut c.input_out_gate);
    }
    v
}

/// Names of [`tensors_mut`]'s tensors, in its order (`blocks[i].w`, `buses[i].u[r]`, `bias`, ...).
pub fn tensor_names(c: &ClampedModel) -> Vec<String> {
    let mut v = Vec::new();
    for i in 0..c.blocks.len() {
        v.push(format!("blocks[{i}].w"));
    }
    for (i, b) in c.buses.iter().enumerate() {
        v.push(format!("buses[{i}].sigma"));
        for r in 0..b.u.len() {
            v.push(format!("buses[{i}].u[{r}]"));
        }
        for r in 0..b.v.len() {
            v.push(format!("buses[{i}].v[{r}]"));
        }
    }
    for n in ["bias", "emb", "input", "out_w", "out_b"] {
        v.push(n.to_string());
    }
    if !c.out_x.is_empty() {
        v.push("out_x".into());
    }
    if !c.input_out.is_empty() {
        v.push("input_out".into());
    }
    if !c.out_x_gate.is_empty() {
        v.push("out_x_gate".into());
    }
    if !c.input_out_gate.is_empty() {
        v.push("input_out_gate".into());
    }
    v
}

/// How many of [`tensors_mut`] are couplings.
pub fn coupling_tensors(c: &ClampedModel) -> usize {
    c.blocks.len() + c.buses.iter().map(|b| 1 + 2 * b.sigma.len()).sum::<usize>()
}

/// A model of the same shape with every trainable value 0 (gradient accumulator).
pub fn zeros_like(c: &ClampedModel) -> ClampedModel {
    let mut z = c.clone();
    for t in tensors_mut(&mut z) {
        t.iter_mut().for_each(|v| *v = 0.0);
    }
    z
}

/// The loss `mean |F - target|^2` of a batch whose network output is `f` (`[pixels, batch]`;
/// `x0s` clean, `xs` noisy at `sigmas`; target `(x0 - c_skip x) / c_out`) and `dL/dF`.
pub fn output_loss(
    c: &ClampedModel,
    f: &DMatrix<f64>,
    x0s: &[Vec<f32>],
    xs: &[Vec<f32>],
    sigmas: &[f32],
) -> (f64, DMatrix<f64>) {
    let n = xs.len();
    let px = c.unet.input;
    let scale = 1.0 / (n * px) as f64;
    let mut gf = DMatrix::zeros(px, n);
    let mut loss = 0.0;
    for col in 0..n {
        let s = sigmas[col];
        let (cs, co) = (c.unet.c_skip(s) as f64, c.unet.c_out(s) as f64);
        for p in 0..px {
            let t = (x0s[col][p] as f64 - cs * xs[col][p] as f64) / co;
            let e = f[(p, col)] - t;
            loss += e * e * scale;
            gf[(p, col)] = 2.0 * e * scale;
        }
    }
    (loss, gf)
}

/// The head's gradients (`out_w`, `out_b`, `out_x`) into `grad`, from `dL/dF` (`gf`) and the
/// substrate states `y` the head read; returns `dL/dy` (`[units, batch]`, nonzero on the last
/// module only).
pub fn head_grads(
    c: &ClampedModel,
    gf: &DMatrix<f64>,
    y: &DMatrix<f64>,
    xs: &[Vec<f32>],
    sigmas: &[f32],
    grad: &mut ClampedModel,
) -> DMatrix<f64> {
    let px = c.unet.input;
    let last = c.out_module();
    let lr = c.range(last);
    let w_out = DMatrix::from_row_slice(px, lr.len(), &c.out_w);
    let y_last = y.rows(lr.start, lr.len());
    let g_wout = gf * y_last.transpose();
    grad.out_w.copy_from_slice(
        &(0..px)
            .flat_map(|p| (0..lr.len()).map(move |u| (p, u)))
            .map(|(p, u)| g_wout[(p, u)])
            .collect::<Vec<_>>(),
    );
    for p in 0..px {
        grad.out_b[p] = gf.row(p).sum();
    }
    if !c.out_x.is_empty() {
        let gp = gf * c.pixel_path_inputs(xs, sigmas).transpose();
        for (k, v) in grad.out_x.iter_mut().enumerate() {
            *v = gp[(k / px, k % px)];
        }
        if !c.out_x_gate.is_empty() {
            // dL/da per call = gf . (P c_in x); a = 1 + gate . phi.
            let p = DMatrix::from_row_slice(px, px, &c.out_x);
            let pu = p * c.scaled_inputs(xs, sigmas);
            for (col, &s) in sigmas.iter().enumerate() {
                let da = gf.column(col).dot(&pu.column(col));
                for (g, ph) in grad.out_x_gate.iter_mut().zip(c.unet.embedding(s)) {
                    *g += da * ph as f64;
                }
            }
        }
    }
    let mut g = DMatrix::zeros(c.units(), xs.len());
    g.rows_mut(lr.start, lr.len())
        .copy_from(&(w_out.transpose() * gf));
    g
}

/// The gradients of the per-call biases' sources (`bias`, the noise-level table `emb`, the
/// input drives `input` and `input_out`) into `grad`, from `dL/db` per call (`q`, `[units,
/// batch]`).
pub fn bias_grads(
    c: &ClampedModel,
    q: &DMatrix<f64>,
    xs: &[Vec<f32>],
    sigmas: &[f32],
    grad: &mut ClampedModel,
) {
    let d = c.units();
    let px = c.unet.input;
    let ne = c.unet.emb;
    let lr = c.range(c.out_module());
    for i in 0..d {
        grad.bias[i] = q.row(i).sum();
    }
    for (col, &s) in sigmas.iter().enumerate() {
        let phi = c.unet.embedding(s);
        for i in 0..d {
            let qi = q[(i, col)];
            if qi != 0.0 {
                for (e, p) in grad.emb[i * ne..(i + 1) * ne].iter_mut().zip(&phi) {
                    *e += qi * *p as f64;
                }
            }
        }
        let cin = c.unet.c_in(s) as f64;
        if !c.input_out.is_empty() {
            let a = crate::clamped::gate_at(&c.input_out_gate, &phi);
            let mut da = 0.0;
            for (k, i) in lr.clone().enumerate() {
                let qi = q[(i, col)] * cin;
                if qi != 0.0 {
                    let w = &c.input_out[k * px..(k + 1) * px];
                    da += qi
                        * w.iter()
                            .zip(&xs[col])
                            .map(|(w, x)| w * *x as f64)
                            .sum::<f64>();
                    for (w, x) in grad.input_out[k * px..(k + 1) * px]
                        .iter_mut()
                        .zip(&xs[col])
                    {
                        *w += a * qi * *x as f64;
                    }
                }
            }
            for (g, p) in grad.input_out_gate.iter_mut().zip(&phi) {
                *g += da * *p as f64;
            }
        }
        for i in 0..c.sizes[0] {
            let qi = q[(i, col)] * cin;
            if qi != 0.0 {
                for (w, x) in grad.input[i * px..(i + 1) * px].iter_mut().zip(&xs[col]) {
                    *w += qi * *x as f64;
                }
            }
        }
    }
}

/// The loss `mean |F - target|^2` of a batch (`x0s` clean, `xs` noisy at `sigmas`) and its
/// gradient in every trainable tensor (a [`ClampedModel`] of gradients).
pub fn loss_and_grad(
    c: &ClampedModel,
    j: &DMatrix<f64>,
    x0s: &[Vec<f32>],
    xs: &[Vec<f32>],
    sigmas: &[f32],
) -> Result<(f64, ClampedModel), String> {
    loss_and_grad_with(c, j, x0s, xs, sigmas, &RelaxOptions::default(), ADJOINT_TOL)
}

/// Relative tolerance of [`loss_and_grad`]'s adjoint iteration (largest change against the
/// largest `|dL/dy|`).
pub const ADJOINT_TOL: f64 = 1e-10;

/// [`loss_and_grad`] with the forward relaxation's settings `relax` and the adjoint's relative
/// tolerance `adjoint_tol` (tighter ones give a reference gradient for estimators).
pub fn loss_and_grad_with(
    c: &ClampedModel,
    j: &DMatrix<f64>,
    x0s: &[Vec<f32>],
    xs: &[Vec<f32>],
    sigmas: &[f32],
    relax: &RelaxOptions,
    adjoint_tol: f64,
) -> Result<(f64, ClampedModel), String> {
    let n = xs.len();
    let b = c.biases(xs, sigmas);
    let r = relax_exact(j, &b, c.lo, c.hi, relax)?;
    let f = c.head(&r.y, xs, sigmas);
    let (loss, gf) = output_loss(c, &f, x0s, xs, sigmas);
    let mut grad = zeros_like(c);
    // Head gradients and dL/dy.
    let g = head_grads(c, &gf, &r.y, xs, sigmas, &mut grad);
    // The adjoint q = D (g + J q).
    let d = c.units();
    let mask = r.p.map(|v| if v > c.lo && v < c.hi { 1.0 } else { 0.0 });
    let mut q = g.component_mul(&mask);
    let mut t = DMatrix::zeros(d, n);
    let gnorm = g.abs().max().max(1e-300);
    let mut converged = false;
    for _ in 0..relax.max_iter {
        t.copy_from(&g);
        t.gemm(1.0, j, &q, 1.0);
        let qn = t.component_mul(&mask);
        let change = (&qn - &q).abs().max();
        q = qn;
        if !change.is_finite() {
            break;
        }
        if change <= adjoint_tol * gnorm {
            converged = true;
            break;
        }
    }
    if !converged {
        return Err(
            "the adjoint iteration does not converge (the couplings do not contract)".into(),
        );
    }
    // Biases and what feeds them.
    bias_grads(c, &q, xs, sigmas, &mut grad);
    // Couplings.
    for (bi, blk) in c.blocks.iter().enumerate() {
        let (rt, rf) = (c.range(blk.to), c.range(blk.from));
        let gw = q.rows(rt.start, rt.len()) * r.y.rows(rf.start, rf.len()).transpose()
            + r.y.rows(rt.start, rt.len()) * q.rows(rf.start, rf.len()).transpose();
        let cols = rf.len();
        for (k, v) in grad.blocks[bi].w.iter_mut().enumerate() {
            *v = gw[(k / cols, k % cols)];
        }
    }
    for (bi, bus) in c.buses.iter().enumerate() {
        let (re, rd) = (c.range(bus.enc), c.range(bus.dec));
        let (qe, ye) = (q.rows(re.start, re.len()), r.y.rows(re.start, re.len()));
        let (qd, yd) = (q.rows(rd.start, rd.len()), r.y.rows(rd.start, rd.len()));
        for k in 0..bus.sigma.len() {
            let u = nalgebra::DVector::from_column_slice(&bus.u[k]);
            let v = nalgebra::DVector::from_column_slice(&bus.v[k]);
            // G u = qd (ye^T u) + yd (qe^T u);  G^T v = ye (qd^T v) + qe (yd^T v).
            let gu = &qd * (ye.transpose() * &u) + &yd * (qe.transpose() * &u);
            let gtv = &ye * (qd.transpose() * &v) + &qe * (yd.transpose() * &v);
            let s = bus.sigma[k];
            grad.buses[bi].sigma[k] = v.dot(&gu);
            grad.buses[bi].u[k] = (gtv * s).iter().copied().collect();
            grad.buses[bi].v[k] = (gu * s).iter().copied().collect();
        }
    }
    Ok((loss, grad))
}

/// Denoised-image MSE per pixel (outputs clipped to [-1, 1]) of the exact path on `images`
/// noised at each of `sigmas` (noise from `seed`).
pub fn denoise_mse_exact(
    c: &ClampedModel,
    j: &DMatrix<f64>,
    images: &[Vec<f32>],
    sigmas: &[f32],
    seed: u64,
) -> Result<Vec<f64>, String> {
    sigmas
        .iter()
        .map(|&s| {
            let mut rng = Rng::stream(seed, s.to_bits() as u64);
            let xs: Vec<Vec<f32>> = images
                .iter()
                .map(|x0| x0.iter().map(|v| v + s * rng.normal() as f32).collect())
                .collect();
            let d = c.denoise_exact(j, &xs, s)?;
            let mut se = 0.0;
            for (a, b) in d.iter().zip(images) {
                for (p, q) in a.iter().zip(b) {
                    se += ((p.clamp(-1.0, 1.0) - q) as f64).powi(2);
                }
            }
            Ok(se / (images.len() * c.unet.input).max(1) as f64)
        })
        .collect()
}

/// Rescale the couplings so that `||J||_2 <= cap`; returns the norm before and whether it
/// rescaled.
pub fn guard(c: &mut ClampedModel, cap: f64) -> (f64, bool) {
    let n = contraction_of(&c.coupling_matrix()).norm2;
    if n <= cap {
        return (n, false);
    }
    let f = cap / n;
    for b in c.blocks.iter_mut() {
        b.w.iter_mut().for_each(|v| *v *= f);
    }
    for b in c.buses.iter_mut() {
        b.sigma.iter_mut().for_each(|v| *v *= f);
    }
    (n, true)
}

/// Bring every bus factor back to largest magnitude 1 (the scale moves into `sigma`), as the
/// compiler emits them.
pub fn normalise_buses(c: &mut ClampedModel) {
    for b in c.buses.iter_mut() {
        for k in 0..b.sigma.len() {
            let mu = b.u[k]
                .iter()
                .fold(0.0f64, |m, x| m.max(x.abs()))
                .max(1e-300);
            let mv = b.v[k]
                .iter()
                .fold(0.0f64, |m, x| m.max(x.abs()))
                .max(1e-300);
            b.u[k].iter_mut().for_each(|x| *x /= mu);
            b.v[k].iter_mut().for_each(|x| *x /= mv);
            b.sigma[k] *= mu * mv;
        }
    }
}

/// Train `c` on `train` images (data scale) by Adam through the fixed point; validate on `val`
/// every `o.val_every` steps and keep the best model (by the mean validation MSE). `progress`
/// sees each step's loss and every validation point. The engines' calibration is dropped (the
/// ranges change): calibrate again.
pub fn train(
    c: &mut ClampedModel,
    train_images: &[Vec<f32>],
    val_images: &[Vec<f32>],
    o: &TrainOptions,
    progress: impl FnMut(usize, f64, Option<&ValPoint>),
) -> Result<TrainReport, String> {
    train_with(
        c,
        train_images,
        val_images,
        o,
        None,
        loss_and_grad,
        progress,
    )
}

/// [`train`] with another gradient: `grad_of(c, J, x0s, xs, sigmas)` returns a batch's loss and
/// gradient as [`loss_and_grad`] does (batches, noise, optimiser, guard, schedule and
/// validation are [`train`]'s).
pub fn train_with(
    c: &mut ClampedModel,
    train_images: &[Vec<f32>],
    val_images: &[Vec<f32>],
    o: &TrainOptions,
    teacher: Option<&Teacher>,
    mut grad_of: impl FnMut(
        &ClampedModel,
        &DMatrix<f64>,
        &[Vec<f32>],
        &[Vec<f32>],
        &[f32],
    ) -> Result<(f64, ClampedModel), String>,
    mut progress: impl FnMut(usize, f64, Option<&ValPoint>),
) -> Result<TrainReport, String> {
    if train_images.is_empty() || val_images.is_empty() || o.batch == 0 || o.steps == 0 {
        return Err("training needs images, a validation split, batch >= 1 and steps >= 1".into());
    }
    if !(o.norm_cap > 0.0 && o.norm_cap < 1.0) {
        return Err(format!("norm cap {} must lie in (0, 1)", o.norm_cap));
    }
    if !(0.0..=1.0).contains(&o.distill) {
        return Err(format!(
            "distillation weight {} must lie in [0, 1]",
            o.distill
        ));
    }
    let teacher = match teacher {
        Some(t) if o.distill > 0.0 => {
            t.check_matches(c)?;
            Some(t)
        }
        None if o.distill > 0.0 => {
            return Err(format!("distillation weight {} needs a teacher", o.distill))
        }
        _ => None,
    };
    c.engine = None;
    let mut guard_rescales = 0;
    if guard(c, o.norm_cap).1 {
        guard_rescales += 1;
    }
    let ncoup = coupling_tensors(c);
    let sizes: Vec<usize> = tensors_mut(c).iter().map(|t| t.len()).collect();
    // Steps relative to each tensor's size: the model's tensors live at very different scales
    // (module m at g^m, the head at g^-m), and Adam's step is absolute.
    let step_scale: Vec<f64> = tensors_mut(c)
        .iter()
        .map(|t| {
            let rms = (t.iter().map(|v| v * v).sum::<f64>() / t.len().max(1) as f64).sqrt();
            // A tensor that starts at zero (a new pixel path) moves like a typical weight.
            if rms > 0.0 {
                rms
            } else {
                ZERO_INIT_STEP
            }
        })
        .collect();
    let mut step_scale = step_scale;
    if !c.input_out.is_empty() && c.input_out.iter().all(|v| *v == 0.0) {
        // A new decoder drive moves like the enc0 drive, in the last module's scale.
        let rms_in =
            (c.input.iter().map(|v| v * v).sum::<f64>() / c.input.len().max(1) as f64).sqrt();
        let last = c.out_module();
        if let Some(k) = tensor_names(c).iter().position(|n| n == "input_out") {
            step_scale[k] = rms_in * c.scale[last] / c.scale[0];
        }
    }
    let mut m: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
    let mut v: Vec<Vec<f64>> = sizes.iter().map(|&n| vec![0.0; n]).collect();
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut rng = Rng::stream(o.seed, 0x7e57);
    let mut order: Vec<usize> = (0..train_images.len()).collect();
    let mut pos = order.len();
    let mut curve = Vec::new();
    let mut j = c.coupling_matrix();
    let val = |c: &ClampedModel, j: &DMatrix<f64>| {
        denoise_mse_exact(c, j, val_images, &o.val_sigmas, 4242)
    };
    let v0 = val(c, &j)?;
    let mut best = (v0.iter().sum::<f64>(), 0usize, c.clone());
    curve.push(ValPoint {
        step: 0,
        train_loss: f64::NAN,
        val_mse: v0,
        norm2: contraction_of(&j).norm2,
    });
    progress(0, f64::NAN, curve.last());
    let (smin, smax) = (c.unet.sigma_min as f64, c.unet.sigma_max as f64);
    let mut loss_sum = 0.0;
    let mut loss_n = 0;
    for step in 1..=o.steps {
        let mut x0s = Vec::with_capacity(o.batch);
        for _ in 0..o.batch {
            if pos == order.len() {
                rng.shuffle(&mut order);
                pos = 0;
            }
            x0s.push(train_images[order[pos]].clone());
            pos += 1;
        }
        let sigmas: Vec<f32> = (0..o.batch)
            .map(|_| (o.p_mean + o.p_std * rng.normal()).exp().clamp(smin, smax) as f32)
            .collect();
        let xs: Vec<Vec<f32>> = x0s
            .iter()
            .zip(&sigmas)
            .map(|(x0, &s)| x0.iter().map(|v| v + s * rng.normal() as f32).collect())
            .collect();
        let x0s = match teacher {
            Some(t) => t.targets(o.distill, &x0s, &xs, &sigmas)?,
            None => x0s,
        };
        let (loss, mut grad) = grad_of(c, &j, &x0s, &xs, &sigmas)?;
        loss_sum += loss;
        loss_n += 1;
        let frac = (step - 1) as f64 / o.steps.max(2).saturating_sub(1) as f64;
        let lr = o.lr
            * (o.lr_final_frac
                + (1.0 - o.lr_final_frac) * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()));
        let (bc1, bc2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
        let grads: Vec<Vec<f64>> = tensors_mut(&mut grad)
            .into_iter()
            .map(|t| t.clone())
            .collect();
        for (ti, (p, gr)) in tensors_mut(c).into_iter().zip(&grads).enumerate() {
            if !o.train_digital && ti >= ncoup + 2 {
                continue;
            }
            for (k, (pv, &gv)) in p.iter_mut().zip(gr).enumerate() {
                let mk = &mut m[ti][k];
                let vk = &mut v[ti][k];
                *mk = b1 * *mk + (1.0 - b1) * gv;
                *vk = b2 * *vk + (1.0 - b2) * gv * gv;
                *pv -= lr * step_scale[ti] * (*mk / bc1) / ((*vk / bc2).sqrt() + eps);
            }
        }
        if guard(c, o.norm_cap).1 {
            guard_rescales += 1;
        }
        j = c.coupling_matrix();
        progress(step, loss, None);
        if step % o.val_every.max(1) == 0 || step == o.steps {
            let vm = val(c, &j)?;
            let score = vm.iter().sum::<f64>();
            curve.push(ValPoint {
                step,
                train_loss: loss_sum / loss_n.max(1) as f64,
                val_mse: vm,
                norm2: contraction_of(&j).norm2,
            });
            loss_sum = 0.0;
            loss_n = 0;
            progress(step, loss, curve.last());
            if score < best.0 {
                best = (score, step, c.clone());
            }
        }
    }
    let best_step = best.1;
    *c = best.2;
    normalise_buses(c);
    c.validate()?;
    Ok(TrainReport {
        options: o.clone(),
        n_train: train_images.len(),
        n_val: val_images.len(),
        curve,
        best_step,
        guard_rescales,
        eqprop: None,
    })
}
