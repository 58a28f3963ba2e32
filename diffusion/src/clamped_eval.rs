//! Evaluating a clamped substrate as a denoiser, beside the U-Net it came from and the
//! baselines a user should compare it with (`thermo eval` on a clamped substrate).
//!
//! Per noise level, on the same noisy test images ([`crate::quality::noisy_set`]): the
//! denoised-image MSE per pixel (clipped) of the substrate, the U-Net, the Wiener filter (the
//! best any quadratic energy can do), the mean image and the noisy input; and the last module's
//! states against the U-Net's activations (cosine, centred cosine, R^2: never the cosine alone).
//! On the engines also the saturation counters and the sweeps the noiseless golden engine needs
//! to converge.

use crate::clamped::{sweeps_to_converge, ClampedModel, Contraction, Digital, EngineRun, Path};
use crate::data::PIXELS;
use crate::gram::{similarity, Similarity};
use crate::quality::{denoise_mse, noisy_set, MeanBaseline, Wiener};
use crate::unet::Unet;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

/// Settings of [`evaluate`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalOptions {
    /// Which path relaxes the substrate.
    pub path: Path,
    /// Burn-in and averaged sweeps of the engines.
    pub run: EngineRun,
    /// Seed of the engines' noise (image `c` of a level uses `seed + c`).
    pub seed: u64,
    /// Threads of the engines (results do not depend on it).
    pub threads: usize,
    /// Noise levels.
    pub sigmas: Vec<f32>,
    /// Seed of the input noise.
    pub noise_seed: u64,
    /// Images on which to count the sweeps to converge (engines; 0 to skip).
    pub convergence_images: usize,
}

/// One noise level.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvalRow {
    /// Noise level.
    pub sigma: f32,
    /// Denoised-image MSE per pixel of the substrate.
    pub substrate: f64,
    /// Same for the U-Net.
    pub unet: f64,
    /// Same for the Wiener filter of the training images.
    pub wiener: f64,
    /// Same for the mean training image.
    pub mean: f64,
    /// Same for the noisy input (clipped).
    pub noisy: f64,
    /// The substrate with every coupling removed (`J = 0`, exact; the digital parts alone):
    /// what the couplings carry is the gap to `substrate`.
    pub no_couplings: f64,
    /// The last module's states (in activation units) against the U-Net's.
    pub out_module: Similarity,
    /// Saturation events (engines).
    pub saturation: u64,
    /// Iterations of the exact path.
    pub exact_iterations: usize,
    /// Mean and largest sweeps to converge (noiseless golden engine, `|d rho| <= 1e-4`).
    pub sweeps_to_converge: Option<(f64, u64)>,
}

/// An evaluation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClampedEval {
    /// Settings.
    pub options: EvalOptions,
    /// Test images per level.
    pub n_images: usize,
    /// Rows per noise level.
    pub rows: Vec<EvalRow>,
    /// Contraction certificate.
    pub contraction: Contraction,
    /// What stays digital.
    pub digital: Digital,
}

/// Evaluate `c` on `test` images (data scale) against `unet` and the baselines fitted to
/// `train` images.
pub fn evaluate(
    c: &ClampedModel,
    unet: &Unet,
    train: &[Vec<f32>],
    test: &[Vec<f32>],
    o: &EvalOptions,
) -> Result<ClampedEval, String> {
    if unet.config != c.unet {
        return Err(
            "the U-Net's architecture differs from the one the substrate was compiled from".into(),
        );
    }
    let flat_train: Vec<f32> = train.iter().flatten().copied().collect();
    let flat_test: Vec<f32> = test.iter().flatten().copied().collect();
    let wiener = Wiener::fit(&flat_train).map_err(|e| e.to_string())?;
    let mean = MeanBaseline::fit(&flat_train).map_err(|e| e.to_string())?;
    let set = noisy_set(&flat_test, &o.sigmas, o.noise_seed).map_err(|e| e.to_string())?;
    let j = c.coupling_matrix();
    let sub = match o.path {
        Path::Exact => None,
        _ => Some(c.engine_substrate("eval")?),
    };
    let score = |d: &[Vec<f32>]| -> f64 {
        d.iter()
            .zip(test)
            .map(|(a, b)| denoise_mse(a, b))
            .sum::<f64>()
            / test.len().max(1) as f64
    };
    let mut rows = Vec::new();
    for (k, &sigma) in o.sigmas.iter().enumerate() {
        let xs: Vec<Vec<f32>> = set.noisy[k].chunks(PIXELS).map(|v| v.to_vec()).collect();
        let sig = vec![sigma; xs.len()];
        let (den, r) = c.denoise(
            o.path,
            &j,
            sub.as_ref(),
            &xs,
            &sig,
            &o.run,
            o.seed,
            o.threads,
        )?;
        let mut ud = Vec::with_capacity(xs.len());
        let m = c.out_module();
        let name = &c.names[m];
        let mut ua = DMatrix::zeros(xs.len(), c.sizes[m]);
        for (i, x) in xs.iter().enumerate() {
            let (f, acts) = unet.forward(x, sigma);
            let (cs, co) = (unet.config.c_skip(sigma), unet.config.c_out(sigma));
            ud.push(
                x.iter()
                    .zip(&f)
                    .map(|(a, b)| cs * a + co * b)
                    .collect::<Vec<f32>>(),
            );
            let a = acts.get(name).ok_or("the U-Net has no such module")?;
            for (u, v) in a.iter().enumerate() {
                ua[(i, u)] = *v as f64;
            }
        }
        let sa = c.out_activations(&r.y).transpose();
        let zero = DMatrix::zeros(j.nrows(), j.ncols());
        let (den0, _) = c.denoise(Path::Exact, &zero, None, &xs, &sig, &o.run, 0, 1)?;
        let conv = match (&sub, o.convergence_images) {
            (Some(s), n) if n > 0 => {
                let b = c.biases(&xs[..n.min(xs.len())], &sig[..n.min(xs.len())]);
                let v = sweeps_to_converge(s, &b, 1e-4, 20_000);
                let got: Vec<u64> = v.iter().map(|x| x.unwrap_or(20_000)).collect();
                Some((
                    got.iter().sum::<u64>() as f64 / got.len().max(1) as f64,
                    got.iter().copied().max().unwrap_or(0),
                ))
            }
            _ => None,
        };
        rows.push(EvalRow {
            sigma,
            substrate: score(&den),
            unet: score(&ud),
            wiener: score(
                &xs.iter()
                    .map(|x| wiener.denoise(x, sigma))
                    .collect::<Vec<_>>(),
            ),
            mean: score(
                &xs.iter()
                    .map(|x| mean.denoise(x, sigma))
                    .collect::<Vec<_>>(),
            ),
            noisy: score(&xs),
            no_couplings: score(&den0),
            out_module: similarity(&ua, &sa),
            saturation: r.saturation.total(),
            exact_iterations: r.iterations,
            sweeps_to_converge: conv,
        });
    }
    Ok(ClampedEval {
        options: o.clone(),
        n_images: test.len(),
        rows,
        contraction: c.contraction(),
        digital: c.digital(),
    })
}

impl ClampedEval {
    /// A Markdown table of the rows.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "Denoised-image MSE per pixel (clipped to [-1, 1]), {} test images per level, path `{:?}`; `{}`: the substrate's last module against the U-Net's activations.\n\n",
            self.n_images, self.options.path, "dec0 R^2 / centred cos / cos"
        );
        s.push_str("| sigma | substrate | U-Net | Wiener | mean image | noisy input | couplings removed | dec0 R^2 / centred cos / cos | saturations | sweeps to converge (mean / max) |\n|---|---|---|---|---|---|---|---|---|---|\n");
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.3} / {:.3} / {:.3} | {} | {} |\n",
                r.sigma,
                r.substrate,
                r.unet,
                r.wiener,
                r.mean,
                r.noisy,
                r.no_couplings,
                r.out_module.r2,
                r.out_module.centered_cosine,
                r.out_module.cosine,
                r.saturation,
                match r.sweeps_to_converge {
                    Some((m, x)) => format!("{m:.1} / {x}"),
                    None => format!("exact: {} iterations", r.exact_iterations),
                }
            ));
        }
        s
    }
}
