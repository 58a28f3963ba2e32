//! Diffusion application commands (`thermo train-unet`, `compile`, `eval`, `quantize`, ...).

use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thermo_diffusion::data::{self, Digits, Split};
use thermo_diffusion::train::{self, SigmaSampling, TrainConfig, TrainReport, REPORT_SIGMAS};
use thermo_diffusion::{gram, io, sample, UnetConfig};

/// Writes `value` as pretty JSON (with a final newline) to `path`; errors name the file.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let json = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

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
    /// Compile a U-Net into a substrate description (JSON) with rank-k skip buses, and train its
    /// conditioning interface (side file `<out>.interface.json`).
    Compile(CompileArgs),
    /// Evaluate a compiled substrate with its interface on held-out inputs against the U-Net.
    Eval(EvalArgs),
    /// The k-table: compile at several ranks (Gram-weighted and plain SVD), train an interface
    /// for each, evaluate exactly; JSON and Markdown.
    CompileTable(CompileTableArgs),
    /// Quantisation sweep: re-quantise a compiled substrate at every (coupling bits, state
    /// bits), relax the fixed engine on held-out inputs with the interface, compare with the
    /// golden engine and the U-Net; JSON report, Markdown table and a PNG heat map.
    Quantize(QuantizeArgs),
    /// Reverse diffusion with the compiled substrate as the denoiser (interface biases, dec0
    /// readout through the U-Net's output head); PNG grid, optionally beside the digital U-Net's
    /// grid from the same starting noise.
    SampleSubstrate(SampleSubstrateArgs),
    /// The main job: load the committed U-Net (or train one if the file is missing), compile it
    /// with rank-k skip buses and the conditioning interface, evaluate it exactly and on the
    /// golden and fixed engines, quantise a few widths, and print the table.
    Demo(DemoArgs),
}

/// Arguments of `thermo demo`.
#[derive(Args)]
pub struct DemoArgs {
    /// The trained U-Net; if the file is missing, one is trained (seed 1) and written there.
    #[arg(long, default_value = "models/digits-unet.safetensors")]
    pub(crate) model: PathBuf,
    /// Rank of the skip buses, or `dense`.
    #[arg(long, default_value = "8")]
    pub(crate) rank: String,
    /// Directory for the compiled description and its side file.
    #[arg(long, default_value = "target/thermo-demo")]
    pub(crate) out_dir: PathBuf,
    /// Coupling widths of the quantisation table.
    #[arg(long, default_value = "4,6,8,16")]
    pub(crate) coupling_bits: String,
    /// State widths of the quantisation table.
    #[arg(long, default_value = "8,16")]
    pub(crate) state_bits: String,
    /// Held-out images per noise level for the engines.
    #[arg(long, default_value_t = 4)]
    pub(crate) inputs: usize,
    /// Adam steps of the interface training.
    #[arg(long, default_value_t = 4000)]
    pub(crate) steps: usize,
    /// Small sizes, for tests: 150 training and 40 held-out images, 300 interface steps, 1
    /// engine input per level, 40 + 60 sweeps; a missing model is trained for 3 epochs.
    #[arg(long)]
    pub(crate) quick: bool,
    /// Run the earlier main job instead: identity units with Gershgorin stiffness and a trained
    /// conditioning interface (the comparison the clamped substrate replaced).
    #[arg(long)]
    pub(crate) interface: bool,
    /// Engine threads (results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// The committed trained clamped substrate shown beside the compiles (skipped if missing).
    #[arg(long, default_value = "models/digits-clamped-rank8.json")]
    pub(crate) trained: PathBuf,
}

/// Arguments of `thermo sample-substrate`.
#[derive(Args)]
pub struct SampleSubstrateArgs {
    /// Substrate description written by `thermo compile` (its `.interface.json` beside it).
    #[arg(long)]
    pub(crate) substrate: PathBuf,
    /// Output PNG grid of the substrate's samples.
    #[arg(long)]
    pub(crate) png: PathBuf,
    /// Also write the digital U-Net's samples (same sampler, schedule and noise) to this PNG.
    #[arg(long)]
    pub(crate) unet_png: Option<PathBuf>,
    /// fixed (the fixed-point engine, run as the board runs it), board (a board over its link:
    /// the one at `--port`, or an emulated board on a pseudo-terminal), golden or exact
    /// (equilibrium means).
    #[arg(long, default_value = "fixed")]
    pub(crate) engine: String,
    /// With `--engine board`: the board's serial port (/dev/ttyUSB0, or the device path of
    /// `thermo emulate`, e.g. with `--backend verilator`); without it an emulated board is started.
    #[arg(long)]
    pub(crate) port: Option<PathBuf>,
    /// Line rate of `--port`.
    #[arg(long, default_value_t = 3_000_000)]
    pub(crate) baud: u32,
    /// Number of samples (8 per row).
    #[arg(long, default_value_t = 64)]
    pub(crate) samples: usize,
    /// Noise levels of the schedule.
    #[arg(long, default_value_t = 40)]
    pub(crate) steps: usize,
    /// Burn-in sweeps per denoiser call (default: 60; a clamped substrate: its calibrated run).
    #[arg(long)]
    pub(crate) burn_in: Option<u64>,
    /// Averaged sweeps per denoiser call (default: 100; a clamped substrate: its calibrated run).
    #[arg(long)]
    pub(crate) sweeps: Option<u64>,
    /// Sampler seed (also keys the engine noise).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Also write the samples as an N x 64 .npy (float32, data scale pixel/8 - 1).
    #[arg(long)]
    pub(crate) npy: Option<PathBuf>,
    /// The U-Net of `--unet-png` for a clamped substrate.
    #[arg(long, default_value = "models/digits-unet.safetensors")]
    pub(crate) unet: PathBuf,
    /// Engine threads (fixed and golden engines; results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
}

/// Arguments of `thermo quantize`.
#[derive(Args)]
pub struct QuantizeArgs {
    /// Substrate description written by `thermo compile` (its `.interface.json` beside it).
    #[arg(long)]
    substrate: PathBuf,
    /// Coupling (stored constant) widths: `A..B`, `A..B:STEP` or `A,B,C`.
    #[arg(long, default_value = "4..16:2")]
    coupling_bits: String,
    /// State (signal) widths: `A..B`, `A..B:STEP` or `A,B,C`.
    #[arg(long, default_value = "8..16:2")]
    state_bits: String,
    /// Held-out images per noise level.
    #[arg(long, default_value_t = 4)]
    inputs: usize,
    /// Held-out noise levels.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.2,0.5,1,2,5")]
    sigmas: Vec<f32>,
    /// Burn-in sweeps (from state zero).
    #[arg(long, default_value_t = 100)]
    burn_in: u64,
    /// Averaged sweeps.
    #[arg(long, default_value_t = 300)]
    sweeps: u64,
    /// Noise seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tolerance on the dec0 cosine against float.
    #[arg(long, default_value_t = 0.005)]
    tolerance: f64,
    /// Engine threads (the results do not depend on it).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Write the report as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Draw the heat map (PNG).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Write a Markdown table.
    #[arg(long)]
    md: Option<PathBuf>,
}

/// Compiler settings shared by `compile` and `compile-table`.
#[derive(Args, Clone)]
pub struct CompilerArgs {
    /// Skip-bus factorisation: gram or plain.
    #[arg(long, default_value = "gram")]
    method: String,
    /// Gain gamma on every coupling.
    #[arg(long, default_value_t = 1.0)]
    gain: f64,
    /// Stiffness margin delta over the Gershgorin row sums.
    #[arg(long, default_value_t = 1.0)]
    margin: f64,
    /// Stiffness: gershgorin (a_i = row sum + margin) or spectral (uniform, lambda_min >= margin).
    #[arg(long, default_value = "gershgorin")]
    stiffness: String,
    /// Module that receives the interface's biases.
    #[arg(long, default_value = "dec0")]
    inject: String,
    /// Decoder modules the interface is trained to match.
    #[arg(long, value_delimiter = ',', default_value = "dec1,dec0")]
    targets: Vec<String>,
    /// Adam steps of the interface training.
    #[arg(long, default_value_t = 4000)]
    steps: usize,
    /// Seed of the interface training.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Noise draws per training image (noise levels log-uniform).
    #[arg(long, default_value_t = 4)]
    draws: usize,
    /// Held-out noise levels.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.2,0.5,1,2,5")]
    sigmas: Vec<f32>,
    /// Digits data (gzip CSV); default: the committed data/digits.csv.gz.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Width of the interface's code (the paper's shape: 4).
    #[arg(long, default_value_t = tiface::CODE)]
    code: usize,
    /// Use only the first N training images (default: all 1,438).
    #[arg(long)]
    train_images: Option<usize>,
    /// Use only the first N held-out images (default: all 359).
    #[arg(long)]
    test_images: Option<usize>,
}

/// Arguments of `thermo compile`.
#[derive(Args)]
pub struct CompileArgs {
    /// Model file (safetensors).
    #[arg(long)]
    unet: PathBuf,
    /// Rank of the skip buses, or `dense`.
    #[arg(long, default_value = "8")]
    rank: String,
    /// Output substrate description (JSON); the interface goes to `<out>.interface.json`.
    #[arg(long)]
    out: PathBuf,
    /// Units: `clamp` (the U-Net's ReLU units as clamp units, its weights as couplings, unit
    /// stiffness, module m's state scaled by g^m; no interface) or `identity` (the linear
    /// substrate with Gershgorin stiffness and a trained conditioning interface).
    #[arg(long, default_value = "clamp")]
    activation: String,
    /// Clamp units: the per-module state scale g (module m at g^m).
    #[arg(long, default_value_t = 0.2)]
    layer_scale: f64,
    /// Clamp units: upper clamp bound (default 1.5x the largest scaled training activation).
    #[arg(long)]
    hi: Option<f64>,
    /// Temperature of the emitted substrate (default: 1e-7 for clamp units, which only dithers
    /// the fixed engine's rounding; 1e-4 for identity units).
    #[arg(long)]
    temperature: Option<f64>,
    /// eta as a fraction of 2 / lambda_max.
    #[arg(long, default_value_t = 0.5)]
    eta_fraction: f64,
    /// Hardware lanes.
    #[arg(long, default_value_t = 16)]
    lanes: u32,
    /// Override the state format's fractional bits chosen from the data (identity units).
    #[arg(long)]
    state_frac: Option<u32>,
    /// Clamp units: width of couplings and bus factors on the engines.
    #[arg(long, default_value_t = 16)]
    coupling_bits: u32,
    /// Clamp units: width of states and bus lines on the engines.
    #[arg(long, default_value_t = 16)]
    state_bits: u32,
    /// Clamp units: decoder-side bus factors emitted as `v * v_scale` (gains `sigma / v_scale`).
    #[arg(long, default_value_t = thermo_diffusion::clamped::DEFAULT_V_SCALE)]
    v_scale: f64,
    /// Clamp units: give each module a state shift from its own measured state range (more
    /// fraction bits for small-scale modules in the fixed engine and the RTL).
    #[arg(long)]
    state_shifts: bool,
    #[command(flatten)]
    c: CompilerArgs,
}

/// Arguments of `thermo eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Substrate description written by `thermo compile` (its `.interface.json` beside it).
    #[arg(long)]
    pub(crate) substrate: PathBuf,
    /// exact (equilibrium mean A^-1 b from the validated description), golden or fixed.
    #[arg(long, default_value = "exact")]
    pub(crate) engine: String,
    /// Held-out images per noise level (default: 4 for identity units, engines: keep it small;
    /// all 359 test images for a clamped substrate).
    #[arg(long)]
    pub(crate) inputs: Option<usize>,
    /// Burn-in sweeps (engines; default 400, a clamped substrate: its calibrated run).
    #[arg(long)]
    pub(crate) burn_in: Option<u64>,
    /// Averaged sweeps (engines; default 1000, a clamped substrate: its calibrated run).
    #[arg(long)]
    pub(crate) sweeps: Option<u64>,
    /// Noise seed (engines).
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Held-out noise levels.
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.2,0.5,1,2,5")]
    pub(crate) sigmas: Vec<f32>,
    /// Write the rows as JSON.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Write a Markdown table.
    #[arg(long)]
    pub(crate) md: Option<PathBuf>,
    /// The U-Net a clamped substrate is compared with [default: the one it was compiled from,
    /// else models/digits-unet.safetensors].
    #[arg(long)]
    pub(crate) unet: Option<PathBuf>,
    /// Engine threads (clamped substrates; results do not depend on it).
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
}

/// Arguments of `thermo compile-table`.
#[derive(Args)]
pub struct CompileTableArgs {
    /// Model file (safetensors).
    #[arg(long)]
    unet: PathBuf,
    /// Ranks (`dense` for the dense skips).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16,dense")]
    ks: Vec<String>,
    /// Write the rows as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write a Markdown table.
    #[arg(long)]
    md: Option<PathBuf>,
    #[command(flatten)]
    c: CompilerArgs,
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
        DiffusionCommand::Compile(a) => compile_cmd(a),
        DiffusionCommand::Eval(a) => eval_cmd(a),
        DiffusionCommand::CompileTable(a) => compile_table(a),
        DiffusionCommand::Quantize(a) => quantize_cmd(a),
        DiffusionCommand::SampleSubstrate(a) => sample_substrate(a),
        DiffusionCommand::Demo(a) => demo(a),
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
    write_json(&rp, &report)?;
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
        write_json(p, &rows)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

use thermo_diffusion::compile::{self as tcompile, CompileOptions};
use thermo_diffusion::eval::{self as teval, EvalRow, Prepared};
use thermo_diffusion::interface::{self as tiface, TrainOptions};

fn parse_method(m: &str) -> Result<gram::Factorisation, String> {
    match m {
        "gram" => Ok(gram::Factorisation::GramWeighted),
        "plain" => Ok(gram::Factorisation::PlainSvd),
        o => Err(format!("--method `{o}`: expected gram or plain")),
    }
}

fn parse_rank(k: &str) -> Result<Option<usize>, String> {
    if k == "dense" {
        return Ok(None);
    }
    let v: usize = k
        .parse()
        .map_err(|e| format!("rank `{k}`: {e} (a number or `dense`)"))?;
    if v == 0 {
        return Err("rank must be at least 1".into());
    }
    Ok(Some(v))
}

fn prepare_data(model: &thermo_diffusion::Unet, c: &CompilerArgs) -> Result<Prepared, String> {
    let data_path = c.data.clone().unwrap_or_else(data::default_data_path);
    let digits = Digits::load(&data_path).map_err(|e| e.to_string())?;
    let split = Split::standard(digits.len()).map_err(|e| e.to_string())?;
    let ntr = c.train_images.unwrap_or(usize::MAX).min(split.train.len());
    let nte = c.test_images.unwrap_or(usize::MAX).min(split.test.len());
    if ntr == 0 || nte == 0 {
        return Err("--train-images and --test-images must be at least 1".into());
    }
    let train_x = digits.unit_matrix(&split.train[..ntr]);
    let test_x = digits.unit_matrix(&split.test[..nte]);
    teval::prepare(model, &train_x, &test_x, c.draws, &c.sigmas)
}

fn options(
    c: &CompilerArgs,
    rank: Option<usize>,
) -> Result<(CompileOptions, TrainOptions), String> {
    Ok((
        CompileOptions {
            rank,
            method: parse_method(&c.method)?,
            gain: c.gain,
            margin: c.margin,
            stiffness: match c.stiffness.as_str() {
                "gershgorin" => tcompile::Stiffness::Gershgorin,
                "spectral" => tcompile::Stiffness::Spectral,
                o => {
                    return Err(format!(
                        "--stiffness `{o}`: expected gershgorin or spectral"
                    ))
                }
            },
        },
        TrainOptions {
            seed: c.seed,
            steps: c.steps,
            code: c.code,
            ..TrainOptions::default()
        },
    ))
}

fn sim_line(s: &gram::Similarity) -> String {
    format!("{:.4} / {:.4} / {:.4}", s.cosine, s.centered_cosine, s.r2)
}

fn print_rows(rows: &[EvalRow]) {
    println!(
        "{:>6} {:>5}  {:>26}  {:>26}  {:>26}  {:>26}",
        "sigma",
        "n",
        "oracle dec0 cos/cc/R2",
        "interface dec0 cos/cc/R2",
        "couplings-only dec0",
        "encoder-anchored dec0"
    );
    for r in rows {
        println!(
            "{:>6} {:>5}  {:>26}  {:>26}  {:>26}  {:>26}",
            r.sigma.map_or("all".to_string(), |s| format!("{s}")),
            r.n,
            sim_line(&r.oracle.dec0),
            r.interface
                .as_ref()
                .map_or("-".into(), |i| sim_line(&i.dec0)),
            sim_line(&r.couplings.dec0),
            sim_line(&r.encoder_anchored.dec0)
        );
    }
}

use thermo_diffusion::substrate::{self as tsub, side_path, SideFile};

fn compile_cmd(a: CompileArgs) -> Result<(), String> {
    let rank = parse_rank(&a.rank)?;
    match a.activation.as_str() {
        "identity" => {}
        "clamp" => {
            let e = crate::cmd_clamped::EngineArgs {
                temperature: a
                    .temperature
                    .unwrap_or(thermo_diffusion::clamped::DEFAULT_TEMPERATURE),
                eta_fraction: a.eta_fraction,
                lanes: a.lanes,
                coupling_bits: a.coupling_bits,
                state_bits: a.state_bits,
                v_scale: a.v_scale,
                state_shifts: a.state_shifts,
                ..Default::default()
            };
            return crate::cmd_clamped::compile_cmd(
                &a.unet,
                rank,
                parse_method(&a.c.method)?,
                a.layer_scale,
                a.hi,
                &a.out,
                &e,
            );
        }
        o => return Err(format!("--activation `{o}`: expected clamp or identity")),
    }
    let model = io::load(&a.unet).map_err(|e| format!("{}: {e}", a.unet.display()))?;
    let (opts, topts) = options(&a.c, rank)?;
    let t = Instant::now();
    let p = prepare_data(&model, &a.c)?;
    let o = teval::run_pipeline(
        &model,
        &p,
        &opts,
        &a.c.inject,
        &a.c.targets.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        &topts,
    )?;
    let pc = o.interface.param_count();
    println!(
        "compiled {} (rank {}, {:?}, gain {}, margin {}): {} units, lambda_min {:.4}, lambda_max {:.3}, {} local couplings, buses {:?} connections (bus, dense)",
        a.unet.display(),
        a.rank,
        opts.method,
        opts.gain,
        opts.margin,
        o.compiled.units(),
        o.compiled.lambda_min,
        o.compiled.lambda_max,
        o.compiled.couplings.len(),
        o.compiled.connections
    );
    println!(
        "interface into `{}`: {} parameters ({}), budget {}",
        a.c.inject,
        pc.total,
        pc.describe(o.interface.pixels, o.interface.units()),
        tiface::BUDGET
    );
    println!(
        "interface training: {} samples, mse {:.5} per decoder unit (capacity bound {:.5}, unreachable part {:.5}), M rank {} condition {:.3e}; largest held-out bias {:.3}",
        p.train.len(),
        o.train.train_mse,
        o.train.capacity_mse,
        o.train.unreachable_mse,
        o.train.rank,
        o.train.condition,
        o.max_bias
    );
    print_rows(&o.rows);
    println!(
        "couplings-only signal shortfall on the held-out inputs: {:?}",
        o.shortfall
    );
    let ceil = teval::capacity_ceiling(&o.compiled, &p, tiface::HIDDEN)?;
    println!(
        "ceiling of any interface with {h} hidden units into dec0 (held-out dec0 projected on the best affine {h}-dim subspace of the training targets): dec0 {}",
        sim_line(&ceil),
        h = tiface::HIDDEN
    );
    for dims in [32, 64] {
        let c = teval::capacity_ceiling(&o.compiled, &p, dims)?;
        println!("  same with {dims} dimensions: dec0 {}", sim_line(&c));
    }
    // Data ranges for the Q formats: activations, equilibrium means, bus lines.
    let measured = teval::calibrate(&o, &p)?;
    let (state_max, bus_max, bias_max) = (
        measured.ranges.state_max,
        measured.ranges.bus_max,
        measured.ranges.bias_max,
    );
    let bus_final_max = measured.bus_final_max;
    let emit = tcompile::EmitOptions {
        temperature: a.temperature.unwrap_or(1e-4),
        eta_fraction: a.eta_fraction,
        lanes: a.lanes,
        bits: 16,
        state_max,
        bus_max,
        bias_max,
    };
    let name = format!("digits-unet rank {}", a.rank);
    let mut cfg = tcompile::to_config(&o.compiled, &model, &name, &emit)?;
    if let Some(f) = a.state_frac {
        cfg.formats.state.frac = f;
    }
    let sub = thermo_sim::Substrate::from_config(&cfg)
        .map_err(|e| format!("emitted description does not validate: {e}"))?;
    cfg.save(&a.out).map_err(|e| e.to_string())?;
    let f = cfg.formats;
    println!(
        "wrote {}: validates (lambda {:.4} .. {:.3}, eta {:.5}); formats state {}, coupling {}, bus {}, gain {}, noise {} (state max {:.3}, bus partial-sum max {:.3} (final sums {:.3}), bias max {:.3}; accumulator bound {:.3})",
        a.out.display(),
        sub.lambda_min,
        sub.lambda_max,
        cfg.eta,
        f.state.name(),
        f.coupling.name(),
        f.bus.name(),
        f.gain.name(),
        f.noise_gain.name(),
        state_max,
        bus_max,
        bus_final_max,
        bias_max,
        tcompile::accumulator_bound(&cfg, &emit.ranges())
    );
    let side = SideFile {
        unet: a.unet.clone(),
        options: opts,
        interface: o.interface,
        param_count: pc,
        train: o.train,
        rows: o.rows,
        ranges: Some(emit.ranges()),
    };
    let sp = side_path(&a.out);
    write_json(&sp, &side)?;
    println!(
        "wrote {} ({:.1} s)",
        sp.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

#[derive(serde::Serialize)]
struct TableRow {
    model: String,
    k: String,
    method: String,
    /// Per skip level (0, 1): (bus connections, dense connections).
    connections: Vec<(usize, usize)>,
    discarded_energy: Vec<f64>,
    lambda_min: f64,
    lambda_max: f64,
    interface_params: usize,
    train_mse: f64,
    max_bias: f64,
    /// Pooled over the held-out noise levels.
    pooled: EvalRow,
    shortfall: teval::Shortfall,
}

fn compile_table(a: CompileTableArgs) -> Result<(), String> {
    let model = io::load(&a.unet).map_err(|e| format!("{}: {e}", a.unet.display()))?;
    let t = Instant::now();
    let p = prepare_data(&model, &a.c)?;
    println!(
        "{}: interface into `{}`, {} training samples, {} held-out ({} noise levels)",
        a.unet.display(),
        a.c.inject,
        p.train.len(),
        p.test.len(),
        p.levels.len()
    );
    println!(
        "{:>5} {:>5}  {:>16}  {:>15}  {:>26}  {:>8}  {:>8}  {:>8}  {:>8}",
        "k",
        "meth",
        "connections 0,1",
        "discarded 0,1",
        "interface dec0 cos/cc/R2",
        "dec cos",
        "coupl.",
        "enc-anch",
        "max|b|"
    );
    let mut rows = Vec::new();
    for k in &a.ks {
        let rank = parse_rank(k)?;
        let methods: Vec<&str> = if rank.is_none() {
            vec!["dense"]
        } else {
            vec!["gram", "plain"]
        };
        for m in methods {
            let mut c = a.c.clone();
            if m != "dense" {
                c.method = m.to_string();
            }
            let (opts, topts) = options(&c, rank)?;
            let o = teval::run_pipeline(
                &model,
                &p,
                &opts,
                &c.inject,
                &c.targets.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                &topts,
            )?;
            let pooled = o.rows.last().cloned().ok_or("no rows")?;
            let ifc = pooled.interface.clone().ok_or("no interface row")?;
            println!(
                "{:>5} {:>5}  {:>16}  {:>15}  {:>26}  {:>8.4}  {:>8.4}  {:>8.4}  {:>8.2}",
                k,
                m,
                format!(
                    "{}/{}, {}/{}",
                    o.compiled.connections[0].0,
                    o.compiled.connections[0].1,
                    o.compiled.connections[1].0,
                    o.compiled.connections[1].1
                ),
                format!(
                    "{:.4}, {:.4}",
                    o.compiled.discarded_energy[0], o.compiled.discarded_energy[1]
                ),
                sim_line(&ifc.dec0),
                ifc.decoder.cosine,
                pooled.couplings.dec0.cosine,
                pooled.encoder_anchored.dec0.cosine,
                o.max_bias
            );
            rows.push(TableRow {
                model: a.unet.display().to_string(),
                k: k.clone(),
                method: m.to_string(),
                connections: o.compiled.connections.clone(),
                discarded_energy: o.compiled.discarded_energy.clone(),
                lambda_min: o.compiled.lambda_min,
                lambda_max: o.compiled.lambda_max,
                interface_params: o.interface.param_count().total,
                train_mse: o.train.train_mse,
                max_bias: o.max_bias,
                pooled,
                shortfall: o.shortfall,
            });
        }
    }
    println!("({:.1} s)", t.elapsed().as_secs_f64());
    if let Some(pth) = &a.json {
        write_json(pth, &rows)?;
        println!("wrote {}", pth.display());
    }
    if let Some(pth) = &a.md {
        let mut md = format!(
            "Made by `thermo compile-table --unet {} --ks {} --inject {} --gain {} --margin {} --steps {}`; exact equilibrium means, {} held-out inputs pooled over sigma in {:?}. cos / cc / R2 = cosine / centred cosine / R^2 of dec0.\n\n",
            a.unet.display(), a.ks.join(","), a.c.inject, a.c.gain, a.c.margin, a.c.steps, p.test.len(), p.levels
        );
        md += "| k | method | bus connections (lvl 0, lvl 1) vs dense | discarded energy (0, 1) | oracle dec0 cos | interface dec0 cos / cc / R2 | interface dec1+dec0 cos | couplings-only dec0 cos / cc | encoder-anchored dec0 cos / cc / R2 |\n|---|---|---|---|---|---|---|---|---|\n";
        for r in &rows {
            let i = r.pooled.interface.as_ref().ok_or("no interface row")?;
            md += &format!(
                "| {} | {} | {} / {}, {} / {} | {:.4}, {:.4} | {:.4} | {} | {:.4} | {:.4} / {:.4} | {} |\n",
                r.k, r.method, r.connections[0].0, r.connections[0].1, r.connections[1].0, r.connections[1].1,
                r.discarded_energy[0], r.discarded_energy[1], r.pooled.oracle.dec0.cosine, sim_line(&i.dec0), i.decoder.cosine,
                r.pooled.couplings.dec0.cosine, r.pooled.couplings.dec0.centered_cosine, sim_line(&r.pooled.encoder_anchored.dec0)
            );
        }
        std::fs::write(pth, md).map_err(|e| format!("{}: {e}", pth.display()))?;
        println!("wrote {}", pth.display());
    }
    Ok(())
}

fn eval_cmd(a: EvalArgs) -> Result<(), String> {
    if crate::cmd_clamped::is_clamped(&a.substrate) {
        return crate::cmd_clamped::eval_cmd(&a);
    }
    let t = Instant::now();
    let inputs = a.inputs.unwrap_or(4);
    let burn_in = a.burn_in.unwrap_or(400);
    let sweeps = a.sweeps.unwrap_or(1000);
    let l = tsub::load(&a.substrate)?;
    let (sub, side, model) = (&l.sub, &l.side, &l.model);
    let (set, n_img) = teval::held_out(model, inputs, &a.sigmas)?;
    let readout: tsub::Readout = a
        .engine
        .parse()
        .map_err(|_| format!("--engine `{}`: expected exact, golden or fixed", a.engine))?;
    let rows = teval::evaluate_substrate(
        &l,
        &set,
        &a.sigmas,
        &teval::EngineEvalOptions {
            readout,
            burn_in,
            sweeps,
            seed: a.seed,
            threads: a.threads,
        },
    )?;
    let title = format!(
        "{} engine on {} ({} held-out images per noise level{}), interface {} parameters into `{}`",
        a.engine,
        a.substrate.display(),
        n_img,
        if a.engine == "exact" {
            String::new()
        } else {
            format!(
                ", burn-in {} + {} averaged sweeps, T = {}",
                burn_in, sweeps, sub.temperature
            )
        },
        side.interface.param_count().total,
        side.interface.inject
    );
    println!("{title}");
    let mut md = format!(
        "{title}.\n\nMade by `thermo eval --substrate {} --engine {} --inputs {} --burn-in {} --sweeps {}`.\n\n| sigma | n | interface dec0 cos / centred / R2 | interface dec1+dec0 cos | oracle dec0 cos / centred / R2 | max abs(engine - exact) dec0 | saturations interface / oracle (JSON: acc, state, bus) |\n|---|---|---|---|---|---|---|\n",
        a.substrate.display(), a.engine, inputs, burn_in, sweeps
    );
    println!(
        "{:>6} {:>4}  {:>26}  {:>8}  {:>26}  {:>10}  {:>14}",
        "sigma",
        "n",
        "interface dec0 cos/cc/R2",
        "dec cos",
        "oracle dec0 cos/cc/R2",
        "max|-exact|",
        "sat int/oracle"
    );
    for r in &rows {
        let sg = r.sigma.map_or("all".to_string(), |s| format!("{s}"));
        println!(
            "{:>6} {:>4}  {:>26}  {:>8.4}  {:>26}  {:>10.2e}  {:>14}",
            sg,
            r.n,
            sim_line(&r.interface.dec0),
            r.interface.decoder.cosine,
            sim_line(&r.oracle.dec0),
            r.max_abs_vs_exact,
            format!(
                "{} / {}",
                r.saturation_interface.total(),
                r.saturation_oracle.total()
            )
        );
        md += &format!(
            "| {} | {} | {} | {:.4} | {} | {:.2e} | {} / {} |\n",
            sg,
            r.n,
            sim_line(&r.interface.dec0),
            r.interface.decoder.cosine,
            sim_line(&r.oracle.dec0),
            r.max_abs_vs_exact,
            r.saturation_interface.total(),
            r.saturation_oracle.total()
        );
    }
    println!("({:.1} s)", t.elapsed().as_secs_f64());
    if let Some(p) = &a.json {
        write_json(p, &rows)?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.md {
        std::fs::write(p, md).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

fn quantize_cmd(a: QuantizeArgs) -> Result<(), String> {
    use thermo_diffusion::quantize;
    let l = tsub::load(&a.substrate)?;
    let opts = quantize::SweepOptions {
        coupling_bits: quantize::parse_widths(&a.coupling_bits)
            .map_err(|e| format!("--coupling-bits: {e}"))?,
        state_bits: quantize::parse_widths(&a.state_bits)
            .map_err(|e| format!("--state-bits: {e}"))?,
        burn_in: a.burn_in,
        sweeps: a.sweeps,
        seed: a.seed,
        tolerance: a.tolerance,
        threads: a.threads,
    };
    let (set, n_img) = teval::held_out(&l.model, a.inputs, &a.sigmas)?;
    println!(
        "{}: {} formats x {} inputs ({} images x {} noise levels), burn-in {} + {} sweeps; committed formats state {}, coupling {}",
        a.substrate.display(),
        opts.coupling_bits.len() * opts.state_bits.len(),
        set.len(),
        n_img,
        a.sigmas.len(),
        a.burn_in,
        a.sweeps,
        l.cfg.formats.state.name(),
        l.cfg.formats.coupling.name()
    );
    println!(
        "{:>5} {:>5}  {:>10} {:>10}  {:>26}  {:>10}  {:>10}  {:>20}",
        "coupl",
        "state",
        "Q state",
        "Q coupl",
        "dec0 vs U-Net cos/cc/R2",
        "vs golden",
        "max|-gold|",
        "sat acc/state/bus"
    );
    let mut r = quantize::sweep(&l, &set, n_img, &a.sigmas, &opts, |c| {
        match (&c.formats, &c.vs_unet) {
            (Some(f), Some(v)) => println!(
                "{:>5} {:>5}  {:>10} {:>10}  {:>26}  {:>10.5}  {:>10.2e}  {:>20}{}",
                c.coupling_bits,
                c.state_bits,
                format!(
                    "Q{}.{}",
                    f.state.bits as i64 - 1 - f.state.frac as i64,
                    f.state.frac
                ),
                format!(
                    "Q{}.{}",
                    f.coupling.bits as i64 - 1 - f.coupling.frac as i64,
                    f.coupling.frac
                ),
                sim_line(v),
                c.vs_golden.map_or(f64::NAN, |g| g.cosine),
                c.max_abs_vs_golden.unwrap_or(f64::NAN),
                format!(
                    "{}/{}/{}",
                    c.saturation.acc, c.saturation.state, c.saturation.bus
                ),
                if c.within { "  *" } else { "" }
            ),
            _ => println!(
                "{:>5} {:>5}  invalid: {}",
                c.coupling_bits,
                c.state_bits,
                c.error.clone().unwrap_or_default()
            ),
        }
    })?;
    r.substrate = a.substrate.display().to_string();
    println!(
        "float (golden engine) dec0 vs U-Net: {}; within {} of float (*): smallest coupling bits at {} state bits: {}; smallest state bits at {} coupling bits: {}; fewest bits in total: {} ({:.1} s)",
        sim_line(&r.float_vs_unet),
        a.tolerance,
        opts.state_bits.iter().max().copied().unwrap_or(16),
        r.smallest_coupling_bits.map_or("none".into(), |v| v.to_string()),
        opts.coupling_bits.iter().max().copied().unwrap_or(16),
        r.smallest_state_bits.map_or("none".into(), |v| v.to_string()),
        r.smallest_pair.map_or("none".into(), |(c, s)| format!("{c} coupling + {s} state bits")),
        r.seconds
    );
    if let Some(p) = &a.report {
        write_json(p, &r)?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.md {
        let md = format!(
            "Made by `thermo quantize --substrate {} --coupling-bits {} --state-bits {} --inputs {} --burn-in {} --sweeps {}`.\n\n{}",
            a.substrate.display(),
            a.coupling_bits,
            a.state_bits,
            a.inputs,
            a.burn_in,
            a.sweeps,
            quantize::markdown(&r)
        );
        std::fs::write(p, md).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("wrote {}", p.display());
    }
    if let Some(p) = &a.plot {
        let title = format!(
            "Quantisation sweep of {} ({} inputs)",
            a.substrate
                .file_name()
                .map_or(String::new(), |f| f.to_string_lossy().to_string()),
            set.len()
        );
        thermo_diffusion::plot::heat_map(&r, &title, p)?;
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// Engine noise seed of sample `s` at step `step` of a batch of `n`.
fn run_seed(seed: u64, step: usize, n: usize, s: usize) -> u64 {
    seed.wrapping_mul(1_000_003)
        .wrapping_add((step * n + s) as u64)
}

fn sample_substrate(a: SampleSubstrateArgs) -> Result<(), String> {
    if crate::cmd_clamped::is_clamped(&a.substrate) {
        return crate::cmd_clamped::sample_cmd(&a);
    }
    let (burn_in, sweeps) = (a.burn_in.unwrap_or(60), a.sweeps.unwrap_or(100));
    let t = Instant::now();
    let l = tsub::load(&a.substrate)?;
    let n = a.samples;
    let cfg = l.model.config.clone();
    let board = a.engine == "board";
    let how: tsub::Readout = if board {
        tsub::Readout::Fixed
    } else {
        a.engine
            .parse()
            .map_err(|e| format!("--engine {e} (or board)"))?
    };
    let chol = l.sub.dense_a().cholesky();
    let mut sat = thermo_sim::engine::Saturation::default();
    let imgs = if board {
        use thermo_host::client::Client;
        use thermo_host::inference::{infer, InferOptions};
        use thermo_host::transport::SerialTransport;
        let (path, h) = match &a.port {
            Some(p) => (p.clone(), None),
            None => {
                let (p, h) = thermo_host::emulator::spawn_emulator(
                    l.sub.clone(),
                    None,
                    std::time::Duration::from_secs(5),
                )
                .map_err(|e| format!("emulated board: {e}"))?;
                (PathBuf::from(p), Some(h))
            }
        };
        let mut c = Client::new(
            SerialTransport::open(&path, a.baud).map_err(|e| format!("{}: {e}", path.display()))?,
        );
        let ro = thermo_proto::readout_units(&l.sub);
        let pos: Vec<usize> = l
            .dec0
            .iter()
            .map(|u| ro.iter().position(|r| r == u).ok_or("dec0 is not read out"))
            .collect::<Result<_, _>>()?;
        let imgs = thermo_diffusion::sample::sample_ancestral_batch(
            &cfg,
            n,
            a.steps,
            a.seed,
            |step, xs, sigma| {
                let biases: Vec<Vec<f64>> = xs
                    .iter()
                    .map(|x| l.bias_of(x, sigma).map(|(b, _)| b))
                    .collect::<Result<_, _>>()?;
                let opts = InferOptions {
                    sweeps: sweeps as u32,
                    burn_in: burn_in as u32,
                    seed: run_seed(a.seed, step, n, 0),
                };
                let res = infer(&mut c, &l.sub, &biases, opts, |_, _, _| {})?;
                Ok(xs
                    .iter()
                    .zip(&res.means)
                    .map(|(x, m)| {
                        let d0: Vec<f64> = pos.iter().map(|&p| m[p]).collect();
                        l.denoised_from_dec0(x, sigma, &d0)
                    })
                    .collect())
            },
        )?;
        let st = c.stats;
        println!(
            "board at {}: {} requests, time scale {:.1} (measured), {} time-outs, {} retransmissions",
            path.display(),
            st.requests,
            c.time_scale(),
            st.timeouts,
            st.retransmissions
        );
        drop(c);
        if let Some(h) = h {
            let _ = h.join();
        }
        imgs
    } else {
        thermo_diffusion::sample::sample_ancestral_batch(
            &cfg,
            n,
            a.steps,
            a.seed,
            |step, xs, sigma| {
                xs.iter()
                    .enumerate()
                    .map(|(s, x)| {
                        let (b, _) = l.bias_of(x, sigma)?;
                        let (d0, st) = l.dec0_readout(
                            &b,
                            how,
                            burn_in,
                            sweeps,
                            run_seed(a.seed, step, n, s),
                            chol.as_ref(),
                        )?;
                        sat.add(&st);
                        Ok(l.denoised_from_dec0(x, sigma, &d0))
                    })
                    .collect()
            },
        )?
    };
    thermo_diffusion::sample::write_png_grid(&imgs, 8, 6, &a.png).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({n} samples from {} via the {} readout, Euler ancestral, {} noise levels, burn-in {} + {} sweeps per call, seed {}; {:.1} s)",
        a.png.display(),
        a.substrate.display(),
        a.engine,
        a.steps,
        burn_in,
        sweeps,
        a.seed,
        t.elapsed().as_secs_f64()
    );
    if sat.total() > 0 {
        println!("saturation events over all calls: {sat:?}");
    }
    if let Some(p) = &a.npy {
        let flat: Vec<f32> = imgs.iter().flatten().copied().collect();
        thermo_sim::io::write_npy(p, &[imgs.len(), cfg.input], &flat)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        println!(
            "wrote {} ({} x {} float32, data scale)",
            p.display(),
            imgs.len(),
            cfg.input
        );
    }
    if let Some(p) = &a.unet_png {
        let imgs = thermo_diffusion::sample::sample_ancestral_batch(
            &cfg,
            n,
            a.steps,
            a.seed,
            |_, xs, sigma| Ok(xs.iter().map(|x| l.model.denoise(x, sigma)).collect()),
        )?;
        thermo_diffusion::sample::write_png_grid(&imgs, 8, 6, p).map_err(|e| e.to_string())?;
        println!(
            "wrote {} (the digital U-Net, same sampler and noise)",
            p.display()
        );
    }
    Ok(())
}

fn demo(a: DemoArgs) -> Result<(), String> {
    use thermo_diffusion::quantize;
    let t = Instant::now();
    if !a.interface {
        if !a.model.exists() {
            return Err(format!(
                "{}: no such U-Net (thermo train-unet writes one; --interface trains one if missing)",
                a.model.display()
            ));
        }
        return crate::cmd_clamped::demo(&a, parse_rank(&a.rank)?);
    }
    if !a.model.exists() {
        let epochs = if a.quick {
            3
        } else {
            TrainConfig::default().epochs
        };
        println!(
            "== {} is missing: training a U-Net ({epochs} epochs, seed 1) ==",
            a.model.display()
        );
        let digits = Digits::load(&data::default_data_path()).map_err(|e| e.to_string())?;
        let split = Split::standard(digits.len()).map_err(|e| e.to_string())?;
        let tc = TrainConfig {
            epochs,
            ..TrainConfig::default()
        };
        let (model, _) = train::train(&UnetConfig::default(), &tc, &digits, &split, |_, _| {})?;
        if let Some(dir) = a.model.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        io::save(&model, &a.model, &[("train_seed".into(), "1".into())])
            .map_err(|e| e.to_string())?;
        println!(
            "wrote {} ({:.1} s)",
            a.model.display(),
            t.elapsed().as_secs_f64()
        );
    }
    std::fs::create_dir_all(&a.out_dir).map_err(|e| format!("{}: {e}", a.out_dir.display()))?;
    let stem = a
        .model
        .file_stem()
        .map_or("unet".to_string(), |s| s.to_string_lossy().to_string());
    let out = a
        .out_dir
        .join(format!("{stem}-rank{}.substrate.json", a.rank));
    println!(
        "== compile {} with rank-{} skip buses and the conditioning interface ==",
        a.model.display(),
        a.rank
    );
    let c = CompilerArgs {
        method: "gram".into(),
        gain: 1.0,
        margin: 1.0,
        stiffness: "gershgorin".into(),
        inject: "dec0".into(),
        targets: vec!["dec1".into(), "dec0".into()],
        steps: if a.quick { 300 } else { a.steps },
        seed: 1,
        draws: if a.quick { 1 } else { 4 },
        sigmas: vec![0.05, 0.2, 0.5, 1.0, 2.0, 5.0],
        data: None,
        code: tiface::CODE,
        train_images: a.quick.then_some(150),
        test_images: a.quick.then_some(40),
    };
    compile_cmd(CompileArgs {
        unet: a.model.clone(),
        rank: a.rank.clone(),
        out: out.clone(),
        activation: "identity".into(),
        layer_scale: 0.2,
        hi: None,
        temperature: Some(1e-4),
        eta_fraction: 0.5,
        lanes: 16,
        state_frac: None,
        coupling_bits: 16,
        state_bits: 16,
        v_scale: thermo_diffusion::clamped::DEFAULT_V_SCALE,
        state_shifts: false,
        c,
    })?;
    let l = tsub::load(&out)?;
    let (inputs, burn_in, sweeps) = if a.quick {
        (1, 40, 60)
    } else {
        (a.inputs, 100, 300)
    };
    let opts = quantize::SweepOptions {
        coupling_bits: quantize::parse_widths(&a.coupling_bits)
            .map_err(|e| format!("--coupling-bits: {e}"))?,
        state_bits: quantize::parse_widths(&a.state_bits)
            .map_err(|e| format!("--state-bits: {e}"))?,
        burn_in,
        sweeps,
        seed: 1,
        tolerance: 0.005,
        threads: 2,
    };
    let sigmas = [0.05f32, 0.2, 0.5, 1.0, 2.0, 5.0];
    let (set, n_img) = teval::held_out(&l.model, inputs, &sigmas)?;
    println!(
        "== golden and fixed engines, {} held-out inputs, {} formats ==",
        set.len(),
        opts.coupling_bits.len() * opts.state_bits.len()
    );
    let r = quantize::sweep(&l, &set, n_img, &sigmas, &opts, |_| {})?;
    // Denoising with the substrate (exact equilibrium readout through the U-Net's output head)
    // against the U-Net itself, on the held-out images.
    let chol = l
        .sub
        .dense_a()
        .cholesky()
        .ok_or("A is not positive definite")?;
    let digits = Digits::load(&data::default_data_path()).map_err(|e| e.to_string())?;
    let split = Split::standard(digits.len()).map_err(|e| e.to_string())?;
    let n_mse = if a.quick { 20 } else { split.test.len() };
    let train_flat = digits.unit_matrix(&split.train);
    let wiener = thermo_diffusion::quality::Wiener::fit(&train_flat).map_err(|e| e.to_string())?;
    let mean_img =
        thermo_diffusion::quality::MeanBaseline::fit(&train_flat).map_err(|e| e.to_string())?;
    let mut mse_rows = Vec::new();
    for (k, &s) in sigmas.iter().enumerate() {
        let mut rng = thermo_diffusion::rng::Rng::stream(31, k as u64);
        let (mut e_unet, mut e_sub) = (0.0f64, 0.0f64);
        let (mut e_wiener, mut e_mean) = (0.0f64, 0.0f64);
        for &i in &split.test[..n_mse] {
            let x0 = digits.unit_image(i);
            let x: Vec<f32> = x0.iter().map(|v| v + s * rng.normal() as f32).collect();
            let du: Vec<f32> = l
                .model
                .denoise(&x, s)
                .into_iter()
                .map(|v| v.clamp(-1.0, 1.0))
                .collect();
            let (b, _) = l.bias_of(&x, s)?;
            let (d0, _) = l.dec0_readout(&b, tsub::Readout::Exact, 0, 0, 0, Some(&chol))?;
            let ds = l.denoised_from_dec0(&x, s, &d0);
            let err = |d: &[f32]| -> f64 {
                d.iter()
                    .zip(x0)
                    .map(|(a, b)| ((a - b) as f64).powi(2))
                    .sum::<f64>()
                    / d.len() as f64
            };
            e_unet += err(&du);
            e_sub += err(&ds);
            e_wiener += thermo_diffusion::quality::denoise_mse(&wiener.denoise(&x, s), &x0);
            e_mean += thermo_diffusion::quality::denoise_mse(&mean_img.denoise(&x, s), &x0);
        }
        let n = n_mse as f64;
        mse_rows.push((s, e_unet / n, e_sub / n, e_wiener / n, e_mean / n));
    }

    let pooled = l.side.rows.last().ok_or("no evaluation rows")?;
    let iface = pooled.interface.as_ref().ok_or("no interface row")?;
    let pc = &l.side.param_count;
    let conn: Vec<String> = l
        .sub
        .buses
        .iter()
        .map(|b| {
            let (e, d) = (l.sub.modules[b.enc].size, l.sub.modules[b.dec].size);
            format!("{} vs {} dense", (e + d) * b.rank(), e * d)
        })
        .collect();
    println!();
    println!("== thermo demo: {} ==", a.model.display());
    println!(
        "substrate: {} units in {} modules, rank-{} skip buses ({}), {} local couplings; interface {} parameters (budget {})",
        l.sub.units(),
        l.sub.modules.len(),
        a.rank,
        if conn.is_empty() { "dense skips".to_string() } else { conn.join(", ") },
        l.sub.nnz(),
        pc.total,
        tiface::BUDGET
    );
    println!(
        "dec0 against the U-Net's activations (cosine / centred cosine / R^2), held-out inputs:"
    );
    println!("  {:<48} {}", "configuration", "dec0 cos / cc / R2");
    println!(
        "  {:<48} {}",
        format!("oracle biases, exact ({} inputs)", pooled.n),
        sim_line(&pooled.oracle.dec0)
    );
    println!(
        "  {:<48} {}",
        format!("interface, exact ({} inputs)", pooled.n),
        sim_line(&iface.dec0)
    );
    println!(
        "  {:<48} {}",
        format!("couplings only, exact ({} inputs)", pooled.n),
        sim_line(&pooled.couplings.dec0)
    );
    println!(
        "  {:<48} {}",
        format!("interface, golden engine ({} inputs)", set.len()),
        sim_line(&r.float_vs_unet)
    );
    for c in &r.cells {
        let line = match (&c.vs_unet, &c.vs_golden) {
            (Some(v), Some(g)) => format!(
                "{}   vs golden {:.5}{}{}",
                sim_line(v),
                g.cosine,
                if c.within { "  within 0.005" } else { "" },
                if c.saturation.total() > 0 {
                    format!("  {} saturations", c.saturation.total())
                } else {
                    String::new()
                }
            ),
            _ => format!("invalid: {}", c.error.clone().unwrap_or_default()),
        };
        println!(
            "  {:<48} {}",
            format!(
                "interface, fixed {}-bit couplings, {}-bit states",
                c.coupling_bits, c.state_bits
            ),
            line
        );
    }
    println!(
        "denoised-image MSE per pixel ({} held-out images per level, outputs clipped):",
        n_mse
    );
    println!(
        "  {:>6}  {:>10}  {:>22}  {:>14}  {:>10}",
        "sigma", "U-Net", "substrate (exact mean)", "Wiener filter", "mean image"
    );
    for (s, u, m, w, mi) in &mse_rows {
        println!("  {s:>6}  {u:>10.5}  {m:>22.5}  {w:>14.5}  {mi:>10.5}");
    }
    println!(
        "files: {} and its .interface.json ({:.1} s in all)",
        out.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
