//! Honest metrics: denoising baselines and sample quality.
//!
//! Denoising, judged by the MSE per pixel of the denoised image against the clean one, outputs
//! clipped to the data range [-1, 1] ([`denoise_mse`]), on a fixed noisy set
//! ([`noisy_set`]: every test image at each of [`EVAL_SIGMAS`], seeded):
//! - [`Wiener`]: the linear MMSE estimator of a Gaussian fitted to the training images,
//!   `x0_hat = mu + S (S + sigma^2 I)^-1 (x - mu)` (mean `mu`, covariance `S` with `1/n`). The
//!   equilibrium mean of any quadratic energy is affine in its input, so this is the best such a
//!   substrate can do (in expected MSE over the training distribution).
//! - [`MeanBaseline`]: the training mean `mu`, whatever the input (what a denoiser that ignores
//!   its input scores at best; it does not depend on sigma).
//! - [`identity_clipped`]: the noisy input itself, clipped.
//!
//! Sample quality ([`sample_quality`]), judged by the committed classifier
//! ([`crate::classifier`]):
//! - `conf90`: share of samples whose largest class probability exceeds 0.9;
//! - `class_entropy_bits`: entropy in **bits** of the histogram of predicted classes (uniform
//!   over 10 classes: log2 10 = 3.32);
//! - `mean_max_prob`: mean of the largest class probability;
//! - `fd`: Frechet distance between Gaussian fits of the classifier's last-hidden-layer features
//!   of the samples and of the training images, `|m1 - m2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`
//!   (the FID recipe in a digits classifier's features; covariances with `1/n`);
//! - `nearest_train_dist`: mean L2 distance (data scale, 64 pixels) of each sample to its nearest
//!   training image: the copying check (real test images give the reference value).
//!
//! [`aggregate`] gives mean, sample standard deviation, min and max over several seeds.

use crate::classifier::{Classifier, CLASSES};
use crate::data::PIXELS;
use crate::error::{DiffusionError, Result};
use crate::rng::Rng;
use crate::unet::Unet;
use nalgebra::{DMatrix, DVector, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// Noise levels of the denoising table.
pub const EVAL_SIGMAS: [f32; 6] = [0.05, 0.2, 0.5, 1.0, 2.0, 5.0];
/// Seed of the denoising table's noise.
pub const EVAL_SEED: u64 = 0x12_5EED;
/// Reverse-process steps of the sample-quality runs.
pub const SAMPLE_STEPS: usize = 40;
/// Largest class probability above which a sample counts as confidently classified.
pub const CONF_THRESHOLD: f32 = 0.9;

fn rows_of(data: &[f32], dim: usize) -> Result<usize> {
    if dim == 0 || data.len() % dim != 0 {
        return Err(DiffusionError::Invalid(format!(
            "{} values do not form rows of {dim}",
            data.len()
        )));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
        return Err(DiffusionError::Invalid(format!(
            "non-finite value {} at row {}, column {}",
            data[i],
            i / dim,
            i % dim
        )));
    }
    Ok(data.len() / dim)
}

/// Mean and covariance (normalised by `1/n`) of the rows of a matrix.
#[derive(Clone, Debug)]
pub struct GaussianFit {
    /// Mean.
    pub mean: DVector<f64>,
    /// Covariance, `1/n` normalisation.
    pub cov: DMatrix<f64>,
    /// Number of rows fitted.
    pub n: usize,
}

impl GaussianFit {
    /// Fit rows of width `dim` (flattened row-major). Needs at least one row, all finite.
    pub fn from_rows(data: &[f32], dim: usize) -> Result<Self> {
        let n = rows_of(data, dim)?;
        if n == 0 {
            return Err(DiffusionError::Invalid(
                "no rows to fit a Gaussian to".into(),
            ));
        }
        let mut mean = DVector::<f64>::zeros(dim);
        for r in data.chunks_exact(dim) {
            for (m, &v) in mean.iter_mut().zip(r) {
                *m += v as f64;
            }
        }
        mean /= n as f64;
        let mut cov = DMatrix::<f64>::zeros(dim, dim);
        let mut d = vec![0f64; dim];
        for r in data.chunks_exact(dim) {
            for ((di, &v), m) in d.iter_mut().zip(r).zip(mean.iter()) {
                *di = v as f64 - m;
            }
            for j in 0..dim {
                let dj = d[j];
                if dj == 0.0 {
                    continue;
                }
                for i in 0..dim {
                    cov[(i, j)] += d[i] * dj;
                }
            }
        }
        cov /= n as f64;
        Ok(GaussianFit { mean, cov, n })
    }
}

/// Symmetric PSD square root by eigen-decomposition (negative eigenvalues from rounding are
/// clamped to 0).
pub fn sqrtm_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let sym = (m + m.transpose()) * 0.5;
    let e = SymmetricEigen::new(sym);
    let d = DMatrix::from_diagonal(&e.eigenvalues.map(|l| l.max(0.0).sqrt()));
    &e.eigenvectors * d * e.eigenvectors.transpose()
}

/// Frechet distance between two Gaussians: `|m1 - m2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))`,
/// with `tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2))` (a symmetric PSD matrix, so the
/// trace is the sum of the square roots of its eigenvalues).
pub fn frechet_distance(a: &GaussianFit, b: &GaussianFit) -> f64 {
    let dm = (&a.mean - &b.mean).norm_squared();
    let r = sqrtm_psd(&a.cov);
    let m = &r * &b.cov * &r;
    let sym = (&m + m.transpose()) * 0.5;
    let tr_sqrt: f64 = SymmetricEigen::new(sym)
        .eigenvalues
        .iter()
        .map(|l| l.max(0.0).sqrt())
        .sum();
    dm + a.cov.trace() + b.cov.trace() - 2.0 * tr_sqrt
}

/// The Wiener filter of the training data: `x0_hat = mu + S (S + sigma^2 I)^-1 (x - mu)`.
#[derive(Clone, Debug)]
pub struct Wiener {
    /// Training mean `mu` and covariance `S` (`1/n`).
    pub fit: GaussianFit,
    eigenvalues: DVector<f64>,
    eigenvectors: DMatrix<f64>,
}

impl Wiener {
    /// Fit to training images flattened `[n, 64]` (data scale).
    pub fn fit(train: &[f32]) -> Result<Self> {
        let fit = GaussianFit::from_rows(train, PIXELS)?;
        let e = SymmetricEigen::new(fit.cov.clone());
        Ok(Wiener {
            eigenvalues: e.eigenvalues.map(|l| l.max(0.0)),
            eigenvectors: e.eigenvectors,
            fit,
        })
    }

    /// The gain `S (S + sigma^2 I)^-1` (64 x 64).
    pub fn gain(&self, sigma: f64) -> DMatrix<f64> {
        let s2 = sigma * sigma;
        let d = DMatrix::from_diagonal(&self.eigenvalues.map(|l| l / (l + s2)));
        &self.eigenvectors * d * self.eigenvectors.transpose()
    }

    /// Denoise one image in f64 (no clipping).
    pub fn denoise_f64(&self, x: &[f64], sigma: f64) -> Vec<f64> {
        assert_eq!(x.len(), PIXELS, "one image of {PIXELS} pixels");
        let s2 = sigma * sigma;
        let d = DVector::from_iterator(
            PIXELS,
            x.iter().zip(self.fit.mean.iter()).map(|(a, m)| a - m),
        );
        let mut c = self.eigenvectors.tr_mul(&d);
        for (ci, l) in c.iter_mut().zip(self.eigenvalues.iter()) {
            *ci *= l / (l + s2);
        }
        let y = &self.eigenvectors * c + &self.fit.mean;
        y.iter().copied().collect()
    }

    /// Denoise one image (64 pixels, data scale); no clipping ([`denoise_mse`] clips).
    pub fn denoise(&self, x: &[f32], sigma: f32) -> Vec<f32> {
        let xd: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        self.denoise_f64(&xd, sigma as f64)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    }
}

/// The mean training image, whatever the input and noise level.
#[derive(Clone, Debug)]
pub struct MeanBaseline {
    /// Mean training image (data scale).
    pub mean: Vec<f32>,
}

impl MeanBaseline {
    /// Fit to training images flattened `[n, 64]`.
    pub fn fit(train: &[f32]) -> Result<Self> {
        let g = GaussianFit::from_rows(train, PIXELS)?;
        Ok(MeanBaseline {
            mean: g.mean.iter().map(|&v| v as f32).collect(),
        })
    }

    /// The mean image (ignores `x` and `sigma`).
    pub fn denoise(&self, _x: &[f32], _sigma: f32) -> Vec<f32> {
        self.mean.clone()
    }
}

/// The noisy input, clipped to [-1, 1] (the "do nothing" denoiser).
pub fn identity_clipped(x: &[f32], _sigma: f32) -> Vec<f32> {
    x.iter().map(|v| v.clamp(-1.0, 1.0)).collect()
}

/// Mean squared error per pixel of `denoised` (clipped to [-1, 1] first) against `clean`.
pub fn denoise_mse(denoised: &[f32], clean: &[f32]) -> f64 {
    assert_eq!(
        denoised.len(),
        clean.len(),
        "denoised and clean lengths differ"
    );
    if clean.is_empty() {
        return 0.0;
    }
    let se: f64 = denoised
        .iter()
        .zip(clean)
        .map(|(&d, &c)| {
            let e = (d.clamp(-1.0, 1.0) - c) as f64;
            e * e
        })
        .sum();
    se / clean.len() as f64
}

/// Clean images and their noisy versions at fixed noise levels.
#[derive(Clone, Debug)]
pub struct NoisySet {
    /// Clean images flattened `[n, 64]`.
    pub clean: Vec<f32>,
    /// Noise levels.
    pub sigmas: Vec<f32>,
    /// `noisy[k]`: the clean images plus `sigmas[k]` times standard normal noise, `[n, 64]`.
    pub noisy: Vec<Vec<f32>>,
    /// Seed of the noise.
    pub seed: u64,
}

impl NoisySet {
    /// Number of images.
    pub fn n_images(&self) -> usize {
        self.clean.len() / PIXELS
    }
}

/// Every image of `clean` (`[n, 64]`) at every level of `sigmas`; the noise of level `s` comes
/// from `Rng::stream(seed, s.to_bits())`, so a level's noise does not depend on the others.
pub fn noisy_set(clean: &[f32], sigmas: &[f32], seed: u64) -> Result<NoisySet> {
    rows_of(clean, PIXELS)?;
    let noisy = sigmas
        .iter()
        .map(|&s| {
            let mut rng = Rng::stream(seed, s.to_bits() as u64);
            clean.iter().map(|&c| c + s * rng.normal() as f32).collect()
        })
        .collect();
    Ok(NoisySet {
        clean: clean.to_vec(),
        sigmas: sigmas.to_vec(),
        noisy,
        seed,
    })
}

/// A denoiser: one image (64 pixels) and its noise level in, the denoised image out.
pub type DenoiseFn<'a> = &'a dyn Fn(&[f32], f32) -> Vec<f32>;

/// Denoising MSE at one noise level, one value per denoiser (order of [`DenoiseTable::names`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DenoiseRow {
    /// Noise level.
    pub sigma: f32,
    /// MSE per pixel, clipped outputs, per denoiser.
    pub mse: Vec<f64>,
}

/// Per-sigma denoising MSE of several denoisers on one [`NoisySet`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DenoiseTable {
    /// Denoiser names (columns).
    pub names: Vec<String>,
    /// One row per noise level.
    pub rows: Vec<DenoiseRow>,
    /// Images per noise level.
    pub n_images: usize,
    /// Seed of the noise.
    pub seed: u64,
}

impl DenoiseTable {
    /// The MSE of denoiser `name` at noise level `sigma`.
    pub fn mse(&self, name: &str, sigma: f32) -> Option<f64> {
        let c = self.names.iter().position(|n| n == name)?;
        self.rows
            .iter()
            .find(|r| r.sigma == sigma)
            .map(|r| r.mse[c])
    }

    /// A Markdown table: one row per noise level, one column per denoiser (MSE per pixel).
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("| sigma |");
        for n in &self.names {
            s.push_str(&format!(" {n} |"));
        }
        s.push_str("\n|---|");
        for _ in &self.names {
            s.push_str("---|");
        }
        s.push('\n');
        for r in &self.rows {
            s.push_str(&format!("| {} |", r.sigma));
            for v in &r.mse {
                s.push_str(&format!(" {v:.4} |"));
            }
            s.push('\n');
        }
        s
    }
}

/// The denoising MSE ([`denoise_mse`], clipped) of every denoiser at every level of `set`.
pub fn denoise_table(set: &NoisySet, denoisers: &[(&str, DenoiseFn)]) -> DenoiseTable {
    let n = set.n_images();
    let rows = set
        .sigmas
        .iter()
        .zip(&set.noisy)
        .map(|(&sigma, noisy)| {
            let mse = denoisers
                .iter()
                .map(|(_, f)| {
                    let mut se = 0.0;
                    for i in 0..n {
                        let r = i * PIXELS..(i + 1) * PIXELS;
                        let out = f(&noisy[r.clone()], sigma);
                        se += denoise_mse(&out, &set.clean[r]) * PIXELS as f64;
                    }
                    se / (n * PIXELS).max(1) as f64
                })
                .collect();
            DenoiseRow { sigma, mse }
        })
        .collect();
    DenoiseTable {
        names: denoisers.iter().map(|(n, _)| n.to_string()).collect(),
        rows,
        n_images: n,
        seed: set.seed,
    }
}

/// Sample-quality figures of one set of images (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QualityReport {
    /// Number of images judged.
    pub n: usize,
    /// Share with largest class probability > 0.9.
    pub conf90: f64,
    /// Entropy of the predicted-class histogram, in bits (max log2 10 = 3.32).
    pub class_entropy_bits: f64,
    /// Mean largest class probability.
    pub mean_max_prob: f64,
    /// Frechet distance of the classifier's last-hidden features against the training images.
    pub fd: f64,
    /// Mean L2 distance (data scale) of each image to its nearest training image.
    pub nearest_train_dist: f64,
    /// Number of images predicted as each class.
    pub class_counts: [usize; CLASSES],
}

/// What [`sample_quality_with`] compares against: the training images and the Gaussian fit of
/// their classifier features (computed once, reused for every seed).
#[derive(Clone, Debug)]
pub struct QualityReference {
    /// Training images `[n, 64]`.
    pub train_images: Vec<f32>,
    /// Gaussian fit of the classifier features of the training images.
    pub features: GaussianFit,
}

impl QualityReference {
    /// Fit the reference to training images `[n, 64]` (data scale).
    pub fn new(classifier: &Classifier, train_images: &[f32]) -> Result<Self> {
        rows_of(train_images, PIXELS)?;
        let f = classifier.features(train_images);
        Ok(QualityReference {
            train_images: train_images.to_vec(),
            features: GaussianFit::from_rows(&f, classifier.feature_dim())?,
        })
    }
}

/// Sample quality of `samples` (`[n, 64]`, data scale, n >= 2) against `train_images`.
pub fn sample_quality(
    classifier: &Classifier,
    samples: &[f32],
    train_images: &[f32],
) -> Result<QualityReport> {
    sample_quality_with(
        classifier,
        samples,
        &QualityReference::new(classifier, train_images)?,
    )
}

/// [`sample_quality`] against a precomputed reference.
pub fn sample_quality_with(
    classifier: &Classifier,
    samples: &[f32],
    reference: &QualityReference,
) -> Result<QualityReport> {
    let n = rows_of(samples, PIXELS)?;
    if n < 2 {
        return Err(DiffusionError::Invalid(format!(
            "sample quality needs at least 2 images, got {n}"
        )));
    }
    let probs = classifier.probs(samples);
    let mut counts = [0usize; CLASSES];
    let (mut conf, mut maxp) = (0usize, 0.0f64);
    for p in &probs {
        let k = crate::classifier::argmax(p);
        counts[k] += 1;
        maxp += p[k] as f64;
        if p[k] > CONF_THRESHOLD {
            conf += 1;
        }
    }
    let entropy: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let q = c as f64 / n as f64;
            -q * q.log2()
        })
        .sum();
    let feats = classifier.features(samples);
    let fit = GaussianFit::from_rows(&feats, classifier.feature_dim())?;
    let fd = frechet_distance(&fit, &reference.features);
    Ok(QualityReport {
        n,
        conf90: conf as f64 / n as f64,
        class_entropy_bits: entropy,
        mean_max_prob: maxp / n as f64,
        fd,
        nearest_train_dist: mean_nearest_distance(samples, &reference.train_images),
        class_counts: counts,
    })
}

/// Mean over the rows of `a` of the L2 distance to the nearest row of `b` (both `[., 64]`).
pub fn mean_nearest_distance(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() / PIXELS;
    if n == 0 || b.is_empty() {
        return f64::NAN;
    }
    let total: f64 = a
        .chunks_exact(PIXELS)
        .map(|x| {
            b.chunks_exact(PIXELS)
                .map(|y| {
                    x.iter()
                        .zip(y)
                        .map(|(p, q)| {
                            let d = (p - q) as f64;
                            d * d
                        })
                        .sum::<f64>()
                })
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .sum();
    total / n as f64
}

/// Mean, sample standard deviation (`n - 1`; 0 for one run), min and max of one figure.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stat {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation.
    pub sd: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Stat {
    /// Statistics of a list of values.
    pub fn of(v: &[f64]) -> Stat {
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let sd = if v.len() > 1 {
            (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Stat {
            mean,
            sd,
            min: v.iter().cloned().fold(f64::INFINITY, f64::min),
            max: v.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        }
    }
}

/// Sample quality over several seeds.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QualitySummary {
    /// Seeds (or labels) of the runs, in order.
    pub seeds: Vec<u64>,
    /// conf90 over the runs.
    pub conf90: Stat,
    /// Class entropy (bits) over the runs.
    pub class_entropy_bits: Stat,
    /// Mean largest probability over the runs.
    pub mean_max_prob: Stat,
    /// FD over the runs.
    pub fd: Stat,
    /// Nearest-training-image distance over the runs.
    pub nearest_train_dist: Stat,
    /// The runs.
    pub runs: Vec<QualityReport>,
}

/// Aggregate reports of several seeds (mean and spread of every figure).
pub fn aggregate(seeds: &[u64], reports: &[QualityReport]) -> QualitySummary {
    let f = |g: fn(&QualityReport) -> f64| Stat::of(&reports.iter().map(g).collect::<Vec<_>>());
    QualitySummary {
        seeds: seeds.to_vec(),
        conf90: f(|r| r.conf90),
        class_entropy_bits: f(|r| r.class_entropy_bits),
        mean_max_prob: f(|r| r.mean_max_prob),
        fd: f(|r| r.fd),
        nearest_train_dist: f(|r| r.nearest_train_dist),
        runs: reports.to_vec(),
    }
}

/// Header of the Markdown table rendered by [`QualityReport::markdown_row`] and
/// [`QualitySummary::markdown_row`].
pub fn quality_table_header() -> String {
    "| images | n | FD | conf90 | class entropy (bits) | mean max prob | nearest-train L2 |\n\
     |---|---|---|---|---|---|---|\n"
        .to_string()
}

impl QualityReport {
    /// One Markdown row.
    pub fn markdown_row(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} |\n",
            self.n,
            self.fd,
            self.conf90,
            self.class_entropy_bits,
            self.mean_max_prob,
            self.nearest_train_dist
        )
    }
}

impl QualitySummary {
    /// One Markdown row, `mean ± sd` over the runs.
    pub fn markdown_row(&self, name: &str) -> String {
        let pm = |s: &Stat, d: usize| format!("{:.d$} ± {:.d$}", s.mean, s.sd);
        format!(
            "| {name} | {} x {} | {} | {} | {} | {} | {} |\n",
            self.runs.len(),
            self.runs.first().map(|r| r.n).unwrap_or(0),
            pm(&self.fd, 2),
            pm(&self.conf90, 3),
            pm(&self.class_entropy_bits, 3),
            pm(&self.mean_max_prob, 3),
            pm(&self.nearest_train_dist, 3)
        )
    }
}

/// `n` U-Net samples with `steps` Euler-ancestral steps
/// ([`crate::sample::sample_ancestral_batch`]), seeded; flattened `[n, 64]`, in [-1, 1].
pub fn sample_unet(model: &Unet, n: usize, steps: usize, seed: u64) -> Result<Vec<f32>> {
    let imgs = crate::sample::sample_ancestral_batch(&model.config, n, steps, seed, |_, xs, s| {
        Ok(xs.iter().map(|x| model.denoise(x, s)).collect())
    })
    .map_err(DiffusionError::Invalid)?;
    Ok(imgs.into_iter().flatten().collect())
}

/// Sample quality of the U-Net over `seeds` ([`sample_unet`], `n` samples, `steps` steps each).
pub fn unet_sample_quality(
    model: &Unet,
    classifier: &Classifier,
    reference: &QualityReference,
    n: usize,
    steps: usize,
    seeds: &[u64],
) -> Result<QualitySummary> {
    let reports = seeds
        .iter()
        .map(|&s| sample_quality_with(classifier, &sample_unet(model, n, steps, s)?, reference))
        .collect::<Result<Vec<_>>>()?;
    Ok(aggregate(seeds, &reports))
}

/// Read images from a `.npy` file: a 2-D array `[n, 64]` (float32/float64, data scale).
/// Errors name the file.
pub fn read_images_npy(path: &std::path::Path) -> Result<Vec<f32>> {
    let rows =
        thermo_sim::io::read_npy_rows(path).map_err(|e| DiffusionError::Invalid(e.to_string()))?;
    if let Some((i, r)) = rows.iter().enumerate().find(|(_, r)| r.len() != PIXELS) {
        return Err(DiffusionError::Invalid(format!(
            "{}: row {i} has {} values, expected {PIXELS} (shape [n, 64], pixel/8 - 1)",
            path.display(),
            r.len()
        )));
    }
    let out: Vec<f32> = rows.into_iter().flatten().map(|v| v as f32).collect();
    rows_of(&out, PIXELS)
        .map_err(|e| DiffusionError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(out)
}
