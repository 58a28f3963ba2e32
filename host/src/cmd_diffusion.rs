//! Diffusion application commands (`thermo train-unet`, ...): owned by the U-Net work (issue 6).

use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thermo_diffusion::data::{self, Digits, Split};
use thermo_diffusion::train::{self, SigmaSampling, TrainConfig, TrainReport, REPORT_SIGMAS};
use thermo_diffusion::{gram, io, sample, UnetConfig};

/// Diffusion application commands.
#[derive(Subcommand)]
pub enum DiffusionCommand {
    /// Train the denoising U-Net on the 8x8 digits; write safetensors, a JSON report and
    /// optionally a PNG grid of samples.
    TrainUnet(TrainUnetArgs),
    /// Draw samples from a trained U-Net with the digital reverse process; write a PNG grid.
    SampleUnet(SampleUnetArgs),
    /// Rank-k factorisations of the U-Net's skip blocks (Gram-weighted vs plain SVD): error of
    /// the skip contribution, decoder similarity and denoising error on held-out inputs.
    SkipRanks(SkipRanksArgs),
}

/// Arguments of `thermo skip-ranks`.
#[derive(Args)]
pub struct SkipRanksArgs {
    /// Model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Ranks to evaluate.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,32")]
    ks: Vec<usize>,
    /// Noise draws per image (noise levels log-uniform over the model's range).
    #[arg(long, default_value_t = 2)]
    draws: usize,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the train/test split.
    #[arg(long, default_value_t = data::DEFAULT_SPLIT_SEED)]
    split_seed: u64,
    /// Write the table as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Arguments of `thermo sample-unet`.
#[derive(Args)]
pub struct SampleUnetArgs {
    /// Model file (safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Output PNG grid.
    #[arg(long)]
    png: PathBuf,
    /// Sampler: `ancestral` (Euler ancestral) or `heun` (deterministic probability-flow ODE).
    #[arg(long, default_value = "ancestral")]
    sampler: String,
    /// Number of samples (8 per row).
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Noise levels of the schedule.
    #[arg(long, default_value_t = 60)]
    steps: usize,
    /// Sampler seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Arguments of `thermo train-unet`.
#[derive(Args)]
pub struct TrainUnetArgs {
    /// Output model file (safetensors); the JSON report is written next to it (`.json`).
    #[arg(long)]
    out: PathBuf,
    /// Training seed (initialisation, batches, noise).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Passes over the training set.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = TrainConfig::default().batch)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = TrainConfig::default().lr)]
    lr: f32,
    /// Training noise levels: `lognormal` (ln sigma ~ N(p_mean, p_std^2)) or `loguniform`.
    #[arg(long, default_value = "lognormal")]
    sigma_sampling: String,
    /// Mean of ln sigma for `--sigma-sampling lognormal`.
    #[arg(long, default_value_t = -0.6)]
    p_mean: f32,
    /// Standard deviation of ln sigma for `--sigma-sampling lognormal`.
    #[arg(long, default_value_t = 1.2)]
    p_std: f32,
    /// Hidden widths `ENC0,ENC1,...,BOTTLENECK` (default 128,64,32).
    #[arg(long)]
    widths: Option<String>,
    /// Keep the skip blocks at this rank during training (projected gradient descent), so that a
    /// rank-k coupling bus represents them exactly.
    #[arg(long)]
    skip_rank: Option<usize>,
    /// Write a PNG grid of real test images (same layout as the samples) for comparison.
    #[arg(long)]
    data_png: Option<PathBuf>,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the train/test split.
    #[arg(long, default_value_t = data::DEFAULT_SPLIT_SEED)]
    split_seed: u64,
    /// Write a PNG grid of samples from the digital reverse process.
    #[arg(long)]
    samples_png: Option<PathBuf>,
    /// Number of samples in the grid.
    #[arg(long, default_value_t = 64)]
    samples: usize,
    /// Reverse-process steps.
    #[arg(long, default_value_t = 60)]
    sample_steps: usize,
    /// Noise draws per image in the per-level loss evaluation.
    #[arg(long, default_value_t = 4)]
    eval_draws: usize,
}

/// Run a diffusion command.
pub fn run(c: DiffusionCommand) -> Result<(), String> {
    match c {
        DiffusionCommand::TrainUnet(a) => train_unet(a),
        DiffusionCommand::SampleUnet(a) => sample_unet(a),
        DiffusionCommand::SkipRanks(a) => skip_ranks(a),
    }
}

fn sample_unet(a: SampleUnetArgs) -> Result<(), String> {
    let model = io::load(&a.model).map_err(|e| format!("{}: {e}", a.model.display()))?;
    let sampler: sample::Sampler = a.sampler.parse()?;
    let t = Instant::now();
    let imgs = sample::sample_with(&model, sampler, a.samples, a.steps, a.seed);
    sample::write_png_grid(&imgs, 8, 6, &a.png).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} samples, {:?}, {} noise levels, seed {}, {:.2} s)",
        a.png.display(),
        a.samples,
        sampler,
        a.steps,
        a.seed,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn report_path(out: &Path) -> PathBuf {
    out.with_extension("json")
}

fn train_unet(a: TrainUnetArgs) -> Result<(), String> {
    let data_path = a.data.clone().unwrap_or_else(data::default_data_path);
    let digits = Digits::load(&data_path).map_err(|e| e.to_string())?;
    let split = Split::new(digits.len(), data::DEFAULT_TEST_FRACTION, a.split_seed)
        .map_err(|e| e.to_string())?;
    let mut config = UnetConfig::default();
    if let Some(w) = &a.widths {
        let v: Vec<usize> = w
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("--widths `{w}`: {e}"))?;
        if v.len() < 2 {
            return Err(format!(
                "--widths `{w}`: need at least one encoder width and the bottleneck"
            ));
        }
        config.bottleneck = v[v.len() - 1];
        config.enc = v[..v.len() - 1].to_vec();
        config
            .validate()
            .map_err(|e| format!("--widths `{w}`: {e}"))?;
    }
    let sigma_sampling = match a.sigma_sampling.as_str() {
        "lognormal" => SigmaSampling::LogNormal {
            p_mean: a.p_mean,
            p_std: a.p_std,
        },
        "loguniform" => SigmaSampling::LogUniform,
        other => {
            return Err(format!(
                "--sigma-sampling `{other}`: expected lognormal or loguniform"
            ))
        }
    };
    let tc = TrainConfig {
        seed: a.seed,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        sigma_sampling,
        skip_rank: a.skip_rank,
        ..TrainConfig::default()
    };
    println!(
        "data: {} images from {} ({} train / {} test, split seed {})",
        digits.len(),
        data_path.display(),
        split.train.len(),
        split.test.len(),
        a.split_seed
    );
    println!(
        "model: enc {:?}, bottleneck {}, emb {}, {} parameters (skip rank {}); seed {}, {} epochs, batch {}",
        config.enc,
        config.bottleneck,
        config.emb,
        config.param_count(),
        tc.skip_rank.map_or("dense".to_string(), |k| k.to_string()),
        tc.seed,
        tc.epochs,
        tc.batch
    );
    let t0 = Instant::now();
    let every = (tc.epochs / 20).max(1);
    let (model, epoch_loss) = train::train(&config, &tc, &digits, &split, |e, l| {
        if (e + 1) % every == 0 || e == 0 {
            println!(
                "epoch {:5}  loss {:.5}  ({:.1} s)",
                e + 1,
                l,
                t0.elapsed().as_secs_f64()
            );
        }
    })?;
    let train_seconds = t0.elapsed().as_secs_f64();
    println!("trained in {train_seconds:.1} s");
    let eval_seed = 0xE7A1;
    let train_losses = train::eval_losses(
        &model,
        &digits.unit_matrix(&split.train),
        &REPORT_SIGMAS,
        a.eval_draws,
        eval_seed,
    );
    let test_losses = train::eval_losses(
        &model,
        &digits.unit_matrix(&split.test),
        &REPORT_SIGMAS,
        a.eval_draws,
        eval_seed + 1,
    );
    println!("denoising loss per noise level (EMA weights; per pixel, data range [-1, 1]):");
    println!(
        "{:>7}  {:>12} {:>12}  {:>12} {:>12}",
        "sigma", "loss/train", "loss/test", "x0_mse/train", "x0_mse/test"
    );
    for (tr, te) in train_losses.iter().zip(&test_losses) {
        println!(
            "{:>7.3}  {:>12.5} {:>12.5}  {:>12.5} {:>12.5}",
            tr.sigma, tr.loss, te.loss, tr.x0_mse, te.x0_mse
        );
    }
    let report = TrainReport {
        unet: config.clone(),
        params: config.param_count(),
        train: tc.clone(),
        split_seed: a.split_seed,
        test_fraction: data::DEFAULT_TEST_FRACTION,
        n_train: split.train.len(),
        n_test: split.test.len(),
        epoch_loss,
        train_seconds,
        train_losses,
        test_losses,
        eval_draws: a.eval_draws,
        eval_seed,
    };
    let meta = vec![
        ("train_seed".to_string(), tc.seed.to_string()),
        ("epochs".to_string(), tc.epochs.to_string()),
        ("split_seed".to_string(), a.split_seed.to_string()),
        (
            "prediction".to_string(),
            "edm: x0_hat = c_skip x + c_out F".to_string(),
        ),
        ("weights".to_string(), format!("ema {}", tc.ema_decay)),
        (
            "skip_rank".to_string(),
            tc.skip_rank.map_or("dense".to_string(), |k| k.to_string()),
        ),
    ];
    io::save(&model, &a.out, &meta).map_err(|e| e.to_string())?;
    let rp = report_path(&a.out);
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&rp, json + "\n").map_err(|e| format!("{}: {e}", rp.display()))?;
    println!("wrote {} and {}", a.out.display(), rp.display());
    if let Some(png) = &a.data_png {
        let imgs: Vec<Vec<f32>> = split
            .test
            .iter()
            .take(a.samples)
            .map(|&i| digits.unit_image(i).to_vec())
            .collect();
        sample::write_png_grid(&imgs, 8, 6, png).map_err(|e| e.to_string())?;
        println!("wrote {} ({} real test images)", png.display(), imgs.len());
    }
    if let Some(png) = &a.samples_png {
        let t1 = Instant::now();
        let imgs = sample::sample(&model, a.samples, a.sample_steps, a.seed);
        sample::write_png_grid(&imgs, 8, 6, png).map_err(|e| e.to_string())?;
        println!(
            "wrote {} ({} samples, {} Euler-ancestral steps, seed {}, {:.1} s)",
            png.display(),
            a.samples,
            a.sample_steps,
            a.seed,
            t1.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct SkipRankRow {
    k: usize,
    method: gram::Factorisation,
    /// Per skip level: relative error of the skip contribution on held-out activations.
    skip_rel_error: Vec<f64>,
    /// Per skip level: discarded singular energy.
    discarded_energy: Vec<f64>,
    /// Per skip level: bus connections `(n_enc + n_dec) k` and dense `n_enc n_dec`.
    connections: Vec<(usize, usize)>,
    /// Decoder activations of the rank-k model against the dense model, per decoder module.
    decoder: Vec<(String, gram::Similarity)>,
    /// Denoised-image MSE of the rank-k model on the held-out inputs.
    x0_mse: f64,
}

fn skip_ranks(a: SkipRanksArgs) -> Result<(), String> {
    let model = io::load(&a.model).map_err(|e| format!("{}: {e}", a.model.display()))?;
    let data_path = a.data.clone().unwrap_or_else(data::default_data_path);
    let digits = Digits::load(&data_path).map_err(|e| e.to_string())?;
    let split = Split::new(digits.len(), data::DEFAULT_TEST_FRACTION, a.split_seed)
        .map_err(|e| e.to_string())?;
    let train_x = digits.unit_matrix(&split.train);
    let test_x = digits.unit_matrix(&split.test);
    let (train_seed, test_seed) = (1, 2);
    let train_acts = gram::collect_activations(&model, &train_x, a.draws, train_seed);
    let test_acts = gram::collect_activations(&model, &test_x, a.draws, test_seed);
    let levels = model.config.levels();
    let dec_names: Vec<String> = (0..levels).rev().map(|l| format!("dec{l}")).collect();
    println!(
        "Gram matrices from {} training activations, evaluation on {} held-out ({} draws per image, sigma log-uniform); unmodified model x0_mse {:.5}",
        train_acts.len(),
        test_acts.len(),
        a.draws,
        test_acts.x0_mse()
    );
    // Size of the parts of each decoder pre-activation (RMS over held-out inputs and units).
    for name in &dec_names {
        let (mut l2, mut s2, mut c2, mut p2, mut n) = (0.0f64, 0.0f64, 0.0f64, 0.0f64, 0usize);
        let mut rng_idx = 0usize;
        for i in 0..split.test.len() {
            let x0 = digits.unit_image(split.test[i]);
            for &sigma in &[0.1f32, 0.5, 2.0] {
                rng_idx += 1;
                let mut r = thermo_diffusion::rng::Rng::stream(77, rng_idx as u64);
                let x: Vec<f32> = x0.iter().map(|v| v + sigma * r.normal() as f32).collect();
                let (_, acts) = model.forward(&x, sigma);
                let la = acts.layer(name).ok_or("decoder layer")?;
                let pre = la.pre();
                for u in 0..pre.len() {
                    let sk = la.skip.as_ref().map_or(0.0, |v| v[u]);
                    l2 += (la.local[u] as f64).powi(2);
                    s2 += (sk as f64).powi(2);
                    c2 += (la.cond[u] as f64).powi(2);
                    p2 += (pre[u] as f64).powi(2);
                    n += 1;
                }
            }
        }
        let rms = |v: f64| (v / n.max(1) as f64).sqrt();
        println!(
            "{name}: RMS of pre-activation parts over held-out inputs at sigma 0.1/0.5/2: local {:.3}, skip {:.3}, cond {:.3}, total {:.3}",
            rms(l2),
            rms(s2),
            rms(c2),
            rms(p2)
        );
    }
    println!(
        "{:>3} {:>6}  {:>22}  {:>22}  {:>30}  {:>8}",
        "k",
        "method",
        "skip rel.err (lvl 0,1)",
        "discarded energy",
        "dec0 cos / centered / R^2",
        "x0_mse"
    );
    let mut rows = Vec::new();
    for &k in &a.ks {
        for method in [
            gram::Factorisation::GramWeighted,
            gram::Factorisation::CovarianceWeighted,
            gram::Factorisation::PlainSvd,
        ] {
            let (mk, factors) = gram::with_rank_k_skips(&model, &train_acts, k, method)?;
            let mut skip_rel_error = Vec::new();
            let mut connections = Vec::new();
            for (level, f) in factors.iter().enumerate() {
                let w = gram::skip_matrix(&model, level).ok_or("skip block")?;
                let e = test_acts
                    .module(&format!("enc{level}"))
                    .ok_or("encoder activations")?;
                skip_rel_error.push(gram::relative_error_affine(&w, &f.matrix(), &f.offset, e));
                connections.push((f.connections(), w.nrows() * w.ncols()));
            }
            let approx = gram::collect_activations(&mk, &test_x, a.draws, test_seed);
            let mut decoder = Vec::new();
            for n in &dec_names {
                let t = test_acts.module(n).ok_or("decoder activations")?;
                let p = approx.module(n).ok_or("decoder activations")?;
                decoder.push((n.clone(), gram::similarity(t, p)));
            }
            let row = SkipRankRow {
                k,
                method,
                skip_rel_error,
                discarded_energy: factors.iter().map(|f| f.discarded_energy).collect(),
                connections,
                decoder,
                x0_mse: approx.x0_mse(),
            };
            let d0 = row
                .decoder
                .iter()
                .find(|(n, _)| n == "dec0")
                .map(|(_, s)| *s)
                .ok_or("dec0")?;
            let tag = match method {
                gram::Factorisation::GramWeighted => "gram",
                gram::Factorisation::PlainSvd => "plain",
                gram::Factorisation::CovarianceWeighted => "cov",
            };
            println!(
                "{:>3} {:>6}  {:>22}  {:>22}  {:>30}  {:>8.5}",
                k,
                tag,
                format!(
                    "{:.4}, {:.4}",
                    row.skip_rel_error[0],
                    row.skip_rel_error.get(1).copied().unwrap_or(0.0)
                ),
                format!(
                    "{:.4}, {:.4}",
                    row.discarded_energy[0],
                    row.discarded_energy.get(1).copied().unwrap_or(0.0)
                ),
                format!(
                    "{:.4} / {:.4} / {:.4}",
                    d0.cosine, d0.centered_cosine, d0.r2
                ),
                row.x0_mse
            );
            rows.push(row);
        }
    }
    if let Some(p) = &a.json {
        let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(p, json + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}
