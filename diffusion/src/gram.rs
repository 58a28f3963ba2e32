//! Groundwork of the compiler (`docs/design.md` §1, rank-k buses): per-module activations on data,
//! the encoder Gram matrix and rank-k factorisations of the skip blocks.
//!
//! A skip block `W` (`[n_dec, n_enc]`) maps encoder activations `e` to a decoder pre-activation
//! contribution `W e`. A rank-k coupling bus realises `W_k = V diag(s) U^T = sum_r s_r v_r u_r^T`
//! (the encoder forms `k` sums `u_r^T e`, the decoder unit `i` receives `sum_r s_r v_{r,i} (u_r^T e)`).
//!
//! - **Plain SVD** (baseline): the truncated SVD of `W`; optimal for `||W - W_k||_F`, blind to
//!   which encoder directions carry signal.
//! - **Gram-weighted**: with `G = E[e e^T]` (uncentered second moment over real activations,
//!   plus a small ridge `lambda I` so that `G^{-1/2}` exists), take the truncated SVD of
//!   `W G^{1/2} = A S B^T` and map back: `W_k = A_k S_k B_k^T G^{-1/2}`, i.e. `V = A_k`,
//!   `s = S_k`, `U = G^{-1/2} B_k`. This minimises `E ||(W - W_k) e||^2 = ||(W - W_k) G^{1/2}||_F^2`
//!   over rank-k matrices (Eckart–Young in the `G`-weighted norm), the error the decoder sees.

use crate::data::PIXELS;
use crate::rng::Rng;
use crate::unet::{Activations, Unet};
use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// Activations of every hidden module for a set of (image, noise, sigma) inputs.
#[derive(Clone, Debug)]
pub struct ActivationSet {
    /// Module names (`enc0, enc1, bottleneck, dec1, dec0`).
    pub names: Vec<String>,
    /// Per module, a `[n_samples, width]` matrix of post-activations.
    pub post: Vec<DMatrix<f64>>,
    /// Noise level of each sample.
    pub sigmas: Vec<f32>,
    /// The model's denoised image per sample (`[n_samples, 64]`).
    pub denoised: DMatrix<f64>,
    /// The clean image per sample (`[n_samples, 64]`).
    pub clean: DMatrix<f64>,
}

impl ActivationSet {
    /// The post-activation matrix of a module (`[n_samples, width]`).
    pub fn module(&self, name: &str) -> Option<&DMatrix<f64>> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| &self.post[i])
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sigmas.len()
    }

    /// True if there are no samples.
    pub fn is_empty(&self) -> bool {
        self.sigmas.is_empty()
    }

    /// Mean squared error per pixel of the denoised images against the clean ones.
    pub fn x0_mse(&self) -> f64 {
        (&self.denoised - &self.clean).norm_squared() / (self.denoised.len().max(1) as f64)
    }
}

/// Run the model on noisy versions of the images `x0` (flattened `[n, 64]`): `draws` draws per
/// image, each with `ln sigma` uniform on `[ln sigma_min, ln sigma_max]` of the model, seeded.
pub fn collect_activations(model: &Unet, x0: &[f32], draws: usize, seed: u64) -> ActivationSet {
    let names = model.config.module_names();
    let n = x0.len() / PIXELS;
    let (lo, hi) = (
        (model.config.sigma_min as f64).ln(),
        (model.config.sigma_max as f64).ln(),
    );
    let mut rng = Rng::stream(seed, 0x6a3);
    let mut rows: Vec<Activations> = Vec::with_capacity(n * draws);
    let mut sigmas = Vec::with_capacity(n * draws);
    let mut denoised = DMatrix::zeros(n * draws, PIXELS);
    let mut clean = DMatrix::zeros(n * draws, PIXELS);
    let mut x = vec![0f32; PIXELS];
    for _ in 0..draws {
        for i in 0..n {
            let sigma = (lo + (hi - lo) * rng.uniform()).exp() as f32;
            for (p, xp) in x.iter_mut().enumerate() {
                *xp = x0[i * PIXELS + p] + sigma * rng.normal() as f32;
            }
            let (f, acts) = model.forward(&x, sigma);
            let (cs, co) = (model.config.c_skip(sigma), model.config.c_out(sigma));
            let r = rows.len();
            for p in 0..PIXELS {
                denoised[(r, p)] = (cs * x[p] + co * f[p]) as f64;
                clean[(r, p)] = x0[i * PIXELS + p] as f64;
            }
            rows.push(acts);
            sigmas.push(sigma);
        }
    }
    let post = names
        .iter()
        .enumerate()
        .map(|(li, _)| {
            let w = rows.first().map_or(0, |a| a.layers[li].post.len());
            DMatrix::from_fn(rows.len(), w, |r, c| rows[r].layers[li].post[c] as f64)
        })
        .collect();
    ActivationSet {
        names,
        post,
        sigmas,
        denoised,
        clean,
    }
}

/// The Gram matrix `G = E[e e^T] = X^T X / n` of a `[n_samples, width]` activation matrix.
pub fn gram(x: &DMatrix<f64>) -> DMatrix<f64> {
    let n = x.nrows().max(1) as f64;
    x.transpose() * x / n
}

/// A rank-k factorisation `W_k = V diag(s) U^T` of a skip block.
#[derive(Clone, Debug)]
pub struct SkipFactor {
    /// Encoder-side vectors `u_r` as columns (`[n_enc, k]`).
    pub u: DMatrix<f64>,
    /// Coupling strengths `s_r` (descending).
    pub s: DVector<f64>,
    /// Decoder-side vectors `v_r` as columns (`[n_dec, k]`).
    pub v: DMatrix<f64>,
    /// Fraction of the (weighted) squared singular-value energy that was discarded.
    pub discarded_energy: f64,
    /// Constant to add to the decoder bias (`(W - W_k) mu` for the covariance-weighted
    /// factorisation, zero otherwise), so that `W e ~ W_k e + offset`.
    pub offset: DVector<f64>,
}

impl SkipFactor {
    /// Rank.
    pub fn rank(&self) -> usize {
        self.s.len()
    }

    /// The dense rank-k matrix `V diag(s) U^T` (`[n_dec, n_enc]`).
    pub fn matrix(&self) -> DMatrix<f64> {
        &self.v * DMatrix::from_diagonal(&self.s) * self.u.transpose()
    }

    /// Physical connections of the bus: `k` sums on each side, `(n_enc + n_dec) k`.
    pub fn connections(&self) -> usize {
        (self.u.nrows() + self.v.nrows()) * self.rank()
    }
}

/// A truncated SVD: left vectors `[m, k]`, singular values `[k]`, right vectors `[n, k]`, and
/// the discarded fraction of the squared singular values.
type Truncation = (DMatrix<f64>, DVector<f64>, DMatrix<f64>, f64);

fn truncated(m: &DMatrix<f64>, k: usize) -> Result<Truncation, String> {
    let svd = m.clone().svd(true, true);
    let (a, bt) = match (svd.u, svd.v_t) {
        (Some(a), Some(bt)) => (a, bt),
        _ => return Err("SVD did not converge".into()),
    };
    // nalgebra returns singular values unsorted in general: sort descending.
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&i, &j| svd.singular_values[j].total_cmp(&svd.singular_values[i]));
    let k = k.min(order.len());
    let total: f64 = svd.singular_values.iter().map(|s| s * s).sum();
    let kept: f64 = order[..k]
        .iter()
        .map(|&i| svd.singular_values[i].powi(2))
        .sum();
    let a_k = DMatrix::from_fn(a.nrows(), k, |r, c| a[(r, order[c])]);
    let s_k = DVector::from_fn(k, |r, _| svd.singular_values[order[r]]);
    let b_k = DMatrix::from_fn(bt.ncols(), k, |r, c| bt[(order[c], r)]);
    let discarded = if total > 0.0 {
        ((total - kept) / total).max(0.0)
    } else {
        0.0
    };
    Ok((a_k, s_k, b_k, discarded))
}

/// The skip block of decoder level `level` as an f64 matrix `[n_dec, n_enc]`.
pub fn skip_matrix(model: &Unet, level: usize) -> Option<DMatrix<f64>> {
    model
        .skip_block(level)
        .map(|d| DMatrix::from_fn(d.n_out, d.n_in, |r, c| d.w[r * d.n_in + c] as f64))
}

/// Plain truncated SVD of `w` (the baseline).
pub fn plain_svd(w: &DMatrix<f64>, k: usize) -> Result<SkipFactor, String> {
    let (v, s, u, discarded_energy) = truncated(w, k)?;
    Ok(SkipFactor {
        u,
        s,
        v,
        discarded_energy,
        offset: DVector::zeros(w.nrows()),
    })
}

/// Default relative ridge added to the Gram matrix: `lambda = RIDGE * trace(G) / n`.
pub const RIDGE: f64 = 1e-6;

/// `G^{1/2}` and `G^{-1/2}` of `G + lambda I`, `lambda = ridge * trace(G) / n` (plus a tiny
/// absolute floor so an all-zero `G` still works).
pub fn gram_roots(g: &DMatrix<f64>, ridge: f64) -> (DMatrix<f64>, DMatrix<f64>) {
    let n = g.nrows();
    let lambda = ridge * g.trace() / n.max(1) as f64 + 1e-12;
    let eig = SymmetricEigen::new(g + DMatrix::identity(n, n) * lambda);
    let q = &eig.eigenvectors;
    let ev = eig.eigenvalues.map(|e| e.max(lambda));
    let half = q * DMatrix::from_diagonal(&ev.map(|e| e.sqrt())) * q.transpose();
    let inv_half = q * DMatrix::from_diagonal(&ev.map(|e| 1.0 / e.sqrt())) * q.transpose();
    (half, inv_half)
}

/// Gram-weighted rank-k factorisation of `w` given the encoder Gram matrix `g`
/// (see the module docs). `discarded_energy` is that of the singular values of `W G^{1/2}`.
pub fn gram_weighted(w: &DMatrix<f64>, g: &DMatrix<f64>, k: usize) -> Result<SkipFactor, String> {
    if g.nrows() != w.ncols() || g.ncols() != w.ncols() {
        return Err(format!(
            "Gram matrix {}x{} does not match skip block {}x{}",
            g.nrows(),
            g.ncols(),
            w.nrows(),
            w.ncols()
        ));
    }
    let (half, inv_half) = gram_roots(g, RIDGE);
    let (v, s, b, discarded_energy) = truncated(&(w * half), k)?;
    Ok(SkipFactor {
        u: inv_half * b,
        s,
        v,
        discarded_energy,
        offset: DVector::zeros(w.nrows()),
    })
}

/// Covariance-weighted (affine) rank-k factorisation: the Gram-weighted factorisation with the
/// centered covariance `C = E[(e - mu)(e - mu)^T]` of activations `e` (`[n_samples, n_enc]`) in
/// place of `G`, plus the constant `(W - W_k) mu` moved into the decoder bias. Minimises
/// `E ||W e - (W_k e + offset)||^2` over rank-k `W_k` and constant offsets.
pub fn covariance_weighted(
    w: &DMatrix<f64>,
    e: &DMatrix<f64>,
    k: usize,
) -> Result<SkipFactor, String> {
    let mu = e.row_mean().transpose();
    let mut centered = e.clone();
    for mut row in centered.row_iter_mut() {
        row -= mu.transpose();
    }
    let mut f = gram_weighted(w, &gram(&centered), k)?;
    f.offset = (w - f.matrix()) * &mu;
    Ok(f)
}

/// Relative error of the skip contribution on activations `e` (`[n_samples, n_enc]`):
/// `||(W - W_k) e||^2 / ||W e||^2`, summed over samples.
pub fn relative_error(w: &DMatrix<f64>, w_k: &DMatrix<f64>, e: &DMatrix<f64>) -> f64 {
    relative_error_affine(w, w_k, &DVector::zeros(w.nrows()), e)
}

/// Relative error of an affine approximation `W_k e + offset` of the skip contribution `W e`
/// on activations `e`, summed over samples.
pub fn relative_error_affine(
    w: &DMatrix<f64>,
    w_k: &DMatrix<f64>,
    offset: &DVector<f64>,
    e: &DMatrix<f64>,
) -> f64 {
    let full = e * w.transpose();
    let mut approx = e * w_k.transpose();
    for mut row in approx.row_iter_mut() {
        row += offset.transpose();
    }
    let num = (&full - &approx).norm_squared();
    let den = full.norm_squared();
    if den > 0.0 {
        num / den
    } else {
        num
    }
}

/// Which rank-k factorisation of the skip blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Factorisation {
    /// Truncated SVD of `W G^{1/2}` mapped back by `G^{-1/2}`.
    GramWeighted,
    /// Truncated SVD of `W`.
    PlainSvd,
    /// Truncated SVD of `W C^{1/2}` (centered covariance) mapped back, with the mean
    /// contribution moved into the decoder bias.
    CovarianceWeighted,
}

/// A copy of `model` whose skip blocks are replaced by their rank-`k` factorisations
/// (Gram matrices from `train` activations). Returns the model and the factors per level.
pub fn with_rank_k_skips(
    model: &Unet,
    train: &ActivationSet,
    k: usize,
    method: Factorisation,
) -> Result<(Unet, Vec<SkipFactor>), String> {
    let mut out = model.clone();
    let mut factors = Vec::new();
    for level in 0..model.config.levels() {
        let w = skip_matrix(model, level).ok_or_else(|| format!("no skip block {level}"))?;
        let f = match method {
            Factorisation::GramWeighted => {
                let e = train
                    .module(&format!("enc{level}"))
                    .ok_or_else(|| format!("no activations of enc{level}"))?;
                gram_weighted(&w, &gram(e), k)?
            }
            Factorisation::PlainSvd => plain_svd(&w, k)?,
            Factorisation::CovarianceWeighted => {
                let e = train
                    .module(&format!("enc{level}"))
                    .ok_or_else(|| format!("no activations of enc{level}"))?;
                covariance_weighted(&w, e, k)?
            }
        };
        let m = f.matrix();
        let d = &mut out.skip[level];
        for r in 0..d.n_out {
            for c in 0..d.n_in {
                d.w[r * d.n_in + c] = m[(r, c)] as f32;
            }
        }
        for (b, o) in out.dec[level].b.iter_mut().zip(f.offset.iter()) {
            *b += *o as f32;
        }
        factors.push(f);
    }
    Ok((out, factors))
}

/// Similarity of two activation matrices (`[n_samples, width]`), pooled over all entries.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Similarity {
    /// Mean over samples of the cosine similarity of the activation vectors (a zero vector
    /// against a zero vector counts as 1).
    pub cosine: f64,
    /// Mean over samples of the cosine similarity after subtracting the per-unit mean of the
    /// reference (stricter: non-negative activations flatter the raw cosine).
    pub centered_cosine: f64,
    /// Coefficient of determination `1 - SSE / SST` per unit, SST about the per-unit mean of
    /// the reference, pooled over units.
    pub r2: f64,
}

/// Compare `approx` against the reference `truth` (same shape).
pub fn similarity(truth: &DMatrix<f64>, approx: &DMatrix<f64>) -> Similarity {
    let n = truth.nrows();
    let mean = truth.row_mean();
    let cos = |a: &[f64], b: &[f64]| {
        let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
        for (x, y) in a.iter().zip(b) {
            ab += x * y;
            aa += x * x;
            bb += y * y;
        }
        if aa == 0.0 && bb == 0.0 {
            1.0
        } else if aa == 0.0 || bb == 0.0 {
            0.0
        } else {
            ab / (aa.sqrt() * bb.sqrt())
        }
    };
    let (mut c, mut cc) = (0.0, 0.0);
    for r in 0..n {
        let t: Vec<f64> = truth.row(r).iter().copied().collect();
        let a: Vec<f64> = approx.row(r).iter().copied().collect();
        c += cos(&t, &a);
        let tc: Vec<f64> = t.iter().zip(mean.iter()).map(|(x, m)| x - m).collect();
        let ac: Vec<f64> = a.iter().zip(mean.iter()).map(|(x, m)| x - m).collect();
        cc += cos(&tc, &ac);
    }
    let sse = (truth - approx).norm_squared();
    let mut sst = 0.0;
    for r in 0..n {
        for (x, m) in truth.row(r).iter().zip(mean.iter()) {
            sst += (x - m) * (x - m);
        }
    }
    let nf = n.max(1) as f64;
    Similarity {
        cosine: c / nf,
        centered_cosine: cc / nf,
        r2: if sst > 0.0 { 1.0 - sse / sst } else { 0.0 },
    }
}
