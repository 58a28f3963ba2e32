//! The clamped substrate (the U-Net's units as clamp units, its weights as couplings): compile,
//! evaluate, sample and train through the fixed point. The library code is
//! `thermo_diffusion::clamped`, `thermo_diffusion::clamped_train` and
//! `thermo_diffusion::clamped_eqprop`; this module parses and prints.

use crate::cmd_diffusion::{DemoArgs, EvalArgs, SampleSubstrateArgs};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::Instant;
use thermo_diffusion::clamped::{self, ClampOptions, ClampedModel, EngineRun, EngineSettings};
use thermo_diffusion::clamped_eqprop::{self, EqpropOptions, Estimator};
use thermo_diffusion::clamped_train::{self, TrainOptions};
use thermo_diffusion::data::{self, Digits, Split};
use thermo_diffusion::{clamped_eval, gram, io, quality};

/// Commands of the clamped substrate.
#[derive(Subcommand)]
pub enum ClampedCommand {
    /// Train a clamped substrate's couplings (local blocks and rank-k bus factors, the rank
    /// kept), biases and digital periphery on the denoising loss by implicit differentiation
    /// through its projected fixed point; choose the kept model on a validation split carved
    /// from the training data; calibrate the engines again; write the substrate (JSON).
    TrainSubstrate(TrainSubstrateArgs),
    /// Compare the EqProp gradient of a clamped substrate (bias nudge on the readout units,
    /// exact phases) with the implicit-differentiation gradient on training batches: cosine
    /// per tensor group and overall, at each beta and estimator.
    CheckSubstrateEqprop(CheckSubstrateEqpropArgs),
}

/// Arguments of `thermo check-substrate-eqprop`.
#[derive(Args)]
pub struct CheckSubstrateEqpropArgs {
    /// The clamped substrate (from `thermo compile` or `thermo train-substrate`).
    #[arg(long)]
    substrate: PathBuf,
    /// Relative nudges (the largest nudge as a fraction of the largest readout bias).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.1,0.03,0.01,0.003,0.001"
    )]
    betas: Vec<f64>,
    /// Estimators: one-sided, symmetric.
    #[arg(long, value_delimiter = ',', default_value = "one-sided,symmetric")]
    estimators: Vec<String>,
    /// Batches drawn from the training split (as training draws them).
    #[arg(long, default_value_t = 4)]
    batches: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Seed of the batches.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the rows as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_estimator(s: &str) -> Result<Estimator, String> {
    match s {
        "one-sided" => Ok(Estimator::OneSided),
        "symmetric" => Ok(Estimator::Symmetric),
        _ => Err(format!(
            "estimator `{s}`: expected `one-sided` or `symmetric`"
        )),
    }
}

/// Arguments of `thermo train-substrate`.
#[derive(Args)]
pub struct TrainSubstrateArgs {
    /// Start from this clamped substrate (from `thermo compile`); else compile `--unet`.
    #[arg(long)]
    substrate: Option<PathBuf>,
    /// U-Net to compile when no `--substrate` is given.
    #[arg(long, default_value = "models/digits-unet.safetensors")]
    unet: PathBuf,
    /// Rank of the skip buses of that compile, or `dense`.
    #[arg(long, default_value = "8")]
    rank: String,
    /// Layer scale g of that compile.
    #[arg(long, default_value_t = 0.2)]
    layer_scale: f64,
    /// Output substrate (JSON); the training report goes to `<out>.train.json`.
    #[arg(long)]
    out: PathBuf,
    /// Adam steps.
    #[arg(long, default_value_t = 1500)]
    steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of batches, noise and the validation carve.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Share of the training split held out for validation.
    #[arg(long, default_value_t = 0.15)]
    val_fraction: f64,
    /// Largest ||J||_2 the guard allows after every step.
    #[arg(long, default_value_t = 0.95)]
    norm_cap: f64,
    /// Validate every N steps.
    #[arg(long, default_value_t = 100)]
    val_every: usize,
    /// Train only the substrate (couplings and biases), not the digital periphery.
    #[arg(long)]
    substrate_only: bool,
    /// Add a digital linear pixel path to the head (`F += P c_in x`, pixels x pixels, from 0).
    #[arg(long)]
    pixel_path: bool,
    /// Add a digital input drive into the last module (`W_dec c_in x`, from 0), beside enc0's.
    #[arg(long)]
    decoder_drive: bool,
    /// Training noise levels: ln sigma ~ N(p_mean, p_std^2).
    #[arg(long, default_value_t = -0.6)]
    p_mean: f64,
    /// See --p-mean.
    #[arg(long, default_value_t = 1.2)]
    p_std: f64,
    /// Noise levels of the validation MSE that chooses the kept model.
    #[arg(long, value_delimiter = ',', default_value = "0.2,0.5,1,2")]
    val_sigmas: Vec<f32>,
    /// Gradient: `implicit` (implicit differentiation through the fixed point) or `eqprop`
    /// (equilibrium propagation: free and bias-nudged exact phases, energy derivatives).
    #[arg(long, default_value = "implicit")]
    method: String,
    /// EqProp nudge, relative to the largest readout bias of the batch.
    #[arg(long, default_value_t = EqpropOptions::default().beta)]
    beta: f64,
    /// EqProp estimator: one-sided or symmetric.
    #[arg(long, default_value = "symmetric")]
    estimator: String,
    /// Add a noise-level gate to the digital pixel path and decoder drive (`a(sigma) = 1 + gate
    /// . phi(sigma)`, from 0 = no change), so a linear path can fade at noise levels where it
    /// only passes the noise on.
    #[arg(long)]
    noise_gate: bool,
    /// Teacher: a clamped substrate (e.g. the dense compile, `thermo compile --rank dense`)
    /// whose denoised output the target leans on, with weight `--distill`.
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Weight of the teacher's output in the target: `(1 - w) x0 + w D_teacher(x)` (0 = the
    /// EDM objective on the clean image; 1 = distillation alone). Default 1 with a teacher.
    #[arg(long)]
    distill: Option<f64>,
}

/// Engine settings shared by the commands that emit or run a clamped substrate.
#[derive(Args, Clone)]
pub struct EngineArgs {
    /// Temperature of the engines (a little noise dithers the fixed engine's rounding).
    #[arg(long, default_value_t = clamped::DEFAULT_TEMPERATURE)]
    pub temperature: f64,
    /// eta as a fraction of the stability limit 2 / lambda_max(I - J).
    #[arg(long, default_value_t = 0.5)]
    pub eta_fraction: f64,
    /// Hardware lanes.
    #[arg(long, default_value_t = 16)]
    pub lanes: u32,
    /// Width of couplings and bus factors.
    #[arg(long, default_value_t = 16)]
    pub coupling_bits: u32,
    /// Width of states and bus lines.
    #[arg(long, default_value_t = 16)]
    pub state_bits: u32,
    /// Decoder-side bus factors emitted as `v * v_scale`, gains as `sigma / v_scale` (the same
    /// couplings; see `EngineSettings::v_scale`).
    #[arg(long, default_value_t = clamped::DEFAULT_V_SCALE)]
    pub v_scale: f64,
    /// Give each module a state shift from its own measured state range (more fraction bits
    /// for the small-scale modules in the fixed engine and the RTL).
    #[arg(long)]
    pub state_shifts: bool,
    /// Default burn-in sweeps of one call on the engines.
    #[arg(long, default_value_t = 60)]
    pub run_burn_in: u64,
    /// Default averaged sweeps of one call on the engines.
    #[arg(long, default_value_t = 200)]
    pub run_sweeps: u64,
}

impl EngineArgs {
    fn settings(&self) -> (EngineSettings, EngineRun) {
        (
            EngineSettings {
                temperature: self.temperature,
                eta_fraction: self.eta_fraction,
                lanes: self.lanes,
                coupling_bits: self.coupling_bits,
                state_bits: self.state_bits,
                v_scale: self.v_scale,
                state_shifts: self.state_shifts,
            },
            EngineRun {
                burn_in: self.run_burn_in,
                sweeps: self.run_sweeps,
            },
        )
    }
}

impl Default for EngineArgs {
    fn default() -> Self {
        let (s, r) = (EngineSettings::default(), EngineRun::default());
        EngineArgs {
            temperature: s.temperature,
            eta_fraction: s.eta_fraction,
            lanes: s.lanes,
            coupling_bits: s.coupling_bits,
            state_bits: s.state_bits,
            v_scale: s.v_scale,
            state_shifts: s.state_shifts,
            run_burn_in: r.burn_in,
            run_sweeps: r.sweeps,
        }
    }
}

/// The digits, split as everywhere (train/test), images as rows in the data's scale.
pub struct DigitsData {
    /// Training split indices.
    pub train_idx: Vec<usize>,
    /// Test split images.
    pub test: Vec<Vec<f32>>,
    /// All images.
    pub digits: Digits,
}

impl DigitsData {
    /// Load the committed digits and split them.
    pub fn load() -> Result<Self, String> {
        let digits = Digits::load(&data::default_data_path()).map_err(|e| e.to_string())?;
        let split = Split::standard(digits.len()).map_err(|e| e.to_string())?;
        let test = split
            .test
            .iter()
            .map(|&i| digits.unit_image(i).to_vec())
            .collect();
        Ok(DigitsData {
            train_idx: split.train,
            test,
            digits,
        })
    }

    /// Images of `idx`.
    pub fn images(&self, idx: &[usize]) -> Vec<Vec<f32>> {
        idx.iter()
            .map(|&i| self.digits.unit_image(i).to_vec())
            .collect()
    }
}

/// Calibrate the engines of `c` on training images noised across the sampler's range.
pub fn calibrate(c: &mut ClampedModel, d: &DigitsData, e: &EngineArgs) -> Result<(), String> {
    let (s, r) = e.settings();
    c.calibrate_on(&d.images(&d.train_idx), s, r)
}

/// Compile a U-Net into a clamped substrate and calibrate its engines.
pub fn compile_clamped(
    unet: &Path,
    rank: Option<usize>,
    method: gram::Factorisation,
    layer_scale: f64,
    hi: Option<f64>,
    d: &DigitsData,
    e: &EngineArgs,
) -> Result<ClampedModel, String> {
    let model = io::load(unet).map_err(|err| format!("{}: {err}", unet.display()))?;
    let o = ClampOptions {
        rank,
        method,
        layer_scale,
        hi,
        ..Default::default()
    };
    let (s, r) = e.settings();
    let mut c = ClampedModel::compile_calibrated(&model, &d.images(&d.train_idx), &o, s, r)
        .map_err(|err| format!("{}: {err}", unet.display()))?;
    c.source = Some(unet.display().to_string());
    Ok(c)
}

/// Save a clamped substrate and its engines' description beside it (`<out>.sim.json`, the
/// file `thermo simulate`, `thermo verilog` and `thermo emulate` read).
pub fn save(c: &ClampedModel, out: &Path) -> Result<PathBuf, String> {
    c.save(out)?;
    let cal = c.engine.as_ref().ok_or("the substrate is not calibrated")?;
    let name = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "clamped".into());
    let cfg = c.to_config(&name, &cal.settings, &cal.ranges)?;
    let sim = sim_path(out);
    cfg.save(&sim).map_err(|err| err.to_string())?;
    Ok(sim)
}

/// `<out>.sim.json` beside `out`.
pub fn sim_path(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(".sim.json");
    PathBuf::from(s)
}

/// Print what a clamped substrate is: size, contraction, digital part, engine formats.
pub fn describe(c: &ClampedModel) -> Result<(), String> {
    let j = c.coupling_matrix();
    let ct = clamped::contraction_of(&j);
    let dg = c.digital();
    let ranks: Vec<usize> = c.buses.iter().map(|b| b.sigma.len()).collect();
    println!(
        "clamped substrate: {} units {:?}, clamp [{}, {:.3}], layer scale {} (module scales {:?}), {} local coupling blocks, buses of rank {:?}",
        c.units(),
        c.sizes,
        c.lo,
        c.hi,
        c.options.layer_scale,
        c.scale.iter().map(|s| format!("{s:.4}")).collect::<Vec<_>>(),
        c.blocks.len(),
        ranks
    );
    println!(
        "contraction: ||J||_2 = {:.4} ({}), rho(|J|) = {:.4}, lambda_max(I - J) = {:.4}",
        ct.norm2,
        if ct.proven {
            "< 1: the relaxation provably contracts"
        } else {
            ">= 1: not proven to contract"
        },
        ct.abs_radius,
        c.lambda_max(&j)
    );
    println!(
        "substrate: {} coupling parameters; digital per call: input drive {} + noise-level table {} + head {} parameters, {} MACs",
        dg.substrate_params, dg.input_params, dg.table_params, dg.head_params, dg.macs
    );
    if let Some(cal) = &c.engine {
        let cfg = c.to_config("x", &cal.settings, &cal.ranges)?;
        let f = cfg.formats;
        println!(
            "engines: eta {:.4}, T {:e}, states {}, couplings {}, bus lines {}, gains {} (ranges: states {:.3}, bus sums {:.3}, biases {:.3}); a call: {} burn-in + {} averaged sweeps",
            cfg.eta,
            cfg.temperature,
            f.state.name(),
            f.coupling.name(),
            f.bus.name(),
            f.gain.name(),
            cal.ranges.state_max,
            cal.ranges.bus_max,
            cal.ranges.bias_max,
            cal.run.burn_in,
            cal.run.sweeps
        );
        if cfg.modules.iter().any(|m| m.shift != 0) {
            println!(
                "state shifts (extra fraction bits per module): {}",
                cfg.modules
                    .iter()
                    .map(|m| format!("{} {}", m.name, m.shift))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    Ok(())
}

/// `thermo compile --activation clamp`.
pub fn compile_cmd(
    unet: &Path,
    rank: Option<usize>,
    method: gram::Factorisation,
    layer_scale: f64,
    hi: Option<f64>,
    out: &Path,
    e: &EngineArgs,
) -> Result<(), String> {
    let t = Instant::now();
    let d = DigitsData::load()?;
    let c = compile_clamped(unet, rank, method, layer_scale, hi, &d, e)?;
    describe(&c)?;
    let sim = save(&c, out)?;
    println!(
        "wrote {} (the clamped substrate: thermo eval / sample-substrate / train-substrate) and {} (its engine description: thermo simulate / verilog / emulate) in {:.1} s",
        out.display(),
        sim.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The substrate's calibrated run (60 + 200 sweeps if it has none), overridden where given.
fn run_of(c: &ClampedModel, burn_in: Option<u64>, sweeps: Option<u64>) -> EngineRun {
    let mut run = c.engine.as_ref().map_or(EngineRun::default(), |e| e.run);
    if let Some(b) = burn_in {
        run.burn_in = b;
    }
    if let Some(s) = sweeps {
        run.sweeps = s;
    }
    run
}

/// Whether `path` holds a clamped substrate (its `format` tag), not an engine description.
pub fn is_clamped(path: &Path) -> bool {
    // By the tag alone, so that a damaged clamped file still reaches the clamped loader and
    // its error names the field.
    std::fs::read_to_string(path)
        .map(|t| t.contains(&format!("\"{}\"", clamped::FORMAT)))
        .unwrap_or(false)
}

/// `thermo sample-substrate` on a clamped substrate.
pub fn sample_cmd(a: &SampleSubstrateArgs) -> Result<(), String> {
    let t = Instant::now();
    let c = ClampedModel::load(&a.substrate)?;
    let run = run_of(&c, a.burn_in, a.sweeps);
    let (imgs, sat, path) = if a.engine == "board" {
        let (imgs, sat) = sample_on_board(&c, a, &run)?;
        (imgs, sat, clamped::Path::Fixed)
    } else {
        let path: clamped::Path = a
            .engine
            .parse()
            .map_err(|err| format!("--engine {err} (or board)"))?;
        let (imgs, sat) = c.sample(path, a.samples, a.steps, a.seed, &run, a.threads)?;
        (imgs, sat, path)
    };
    thermo_diffusion::sample::write_png_grid(&imgs, 8, 6, &a.png).map_err(|e| e.to_string())?;
    println!(
        "wrote {} ({} samples from {} on the {} path, Euler ancestral, {} noise levels{}, seed {}; {} saturation events; {:.1} s)",
        a.png.display(),
        a.samples,
        a.substrate.display(),
        a.engine,
        a.steps,
        if path == clamped::Path::Exact {
            String::new()
        } else {
            format!(", {} burn-in + {} averaged sweeps per call", run.burn_in, run.sweeps)
        },
        a.seed,
        sat,
        t.elapsed().as_secs_f64()
    );
    if let Some(p) = &a.npy {
        let flat: Vec<f32> = imgs.iter().flatten().copied().collect();
        thermo_sim::io::write_npy(p, &[imgs.len(), c.unet.input], &flat)
            .map_err(|e| format!("{}: {e}", p.display()))?;
        println!(
            "wrote {} ({} x {} float32, data scale pixel/8 - 1)",
            p.display(),
            imgs.len(),
            c.unet.input
        );
    }
    if let Some(p) = &a.unet_png {
        let model = io::load(&a.unet).map_err(|e| format!("{}: {e}", a.unet.display()))?;
        let u = thermo_diffusion::sample::sample_ancestral_batch(
            &c.unet,
            a.samples,
            a.steps,
            a.seed,
            |_, xs, sigma| Ok(xs.iter().map(|x| model.denoise(x, sigma)).collect()),
        )?;
        thermo_diffusion::sample::write_png_grid(&u, 8, 6, p).map_err(|e| e.to_string())?;
        println!(
            "wrote {} (the digital U-Net {}, same sampler and starting noise)",
            p.display(),
            a.unet.display()
        );
    }
    Ok(())
}

/// `thermo sample-substrate --engine board` on a clamped substrate: the sampler of `--engine
/// fixed` ([`ClampedModel::sample_by`]) with every denoiser call's relaxation run on the board
/// at `--port` (or an emulated board): per sample the call's biases as conditioning, a RUN with
/// `RUN_RHO` (sums of `rho(x)`; with `RUN_ALL_UNITS` if the last module is not among the
/// readout units) keyed as the fixed engine keys that sample, and the digital head in `f64` on
/// the means. Returns the samples and the saturation events the board's STATUS counted meanwhile.
fn sample_on_board(
    c: &ClampedModel,
    a: &SampleSubstrateArgs,
    run: &EngineRun,
) -> Result<(Vec<Vec<f32>>, u64), String> {
    use thermo_host::client::Client;
    use thermo_host::inference::{infer_with, InferOptions};
    use thermo_host::transport::SerialTransport;
    use thermo_proto::{Request, Status, RUN_ALL_UNITS, RUN_RHO};
    let sub = c.engine_substrate("board")?;
    let too_long = |what: &str, v: u64| {
        format!(
            "--{what} {v}: a RUN takes at most {} (32-bit field)",
            u32::MAX
        )
    };
    let sweeps = u32::try_from(run.sweeps.max(1)).map_err(|_| too_long("sweeps", run.sweeps))?;
    let burn_in = u32::try_from(run.burn_in).map_err(|_| too_long("burn-in", run.burn_in))?;
    let (port, h) = match &a.port {
        Some(p) => (p.clone(), None),
        None => {
            let (p, h) = thermo_host::emulator::spawn_emulator(
                sub.clone(),
                None,
                std::time::Duration::from_secs(5),
            )
            .map_err(|e| format!("emulated board: {e}"))?;
            (PathBuf::from(p), Some(h))
        }
    };
    let mut client = Client::new(
        SerialTransport::open(&port, a.baud).map_err(|e| format!("{}: {e}", port.display()))?,
    );
    // the head reads the last module: where its units sit in the RUN's result
    let out = c.range(c.out_module());
    let ro = thermo_proto::readout_units(&sub);
    let pos: Option<Vec<usize>> = out
        .clone()
        .map(|u| ro.iter().position(|&r| r == u))
        .collect();
    let (flags, pos) = match pos {
        Some(p) => (RUN_RHO, p),
        None => (RUN_RHO | RUN_ALL_UNITS, out.clone().collect()),
    };
    let e = |e: thermo_host::client::LinkError| e.to_string();
    let status = |client: &mut Client<SerialTransport>| -> Result<u64, String> {
        let p = client.call(Request::Status).map_err(e)?;
        let s = Status::decode(&p).ok_or("malformed STATUS reply")?;
        Ok(s.sat_acc + s.sat_state + s.sat_bus)
    };
    thermo_host::inference::attach_model(&mut client, &sub).map_err(e)?;
    let sat0 = status(&mut client)?;
    let units = c.units();
    let (imgs, _) = c.sample_by(a.samples, a.steps, a.seed, |b, key| {
        let cols: Vec<Vec<f64>> = b
            .column_iter()
            .map(|v| v.iter().copied().collect())
            .collect();
        let opts = InferOptions {
            sweeps,
            burn_in,
            seed: key,
        };
        let res = infer_with(&mut client, &sub, &cols, opts, flags, |_, _, _| {})?;
        // rows the head does not read are not on the link: NaN, so that a use would show
        let mut y = thermo_diffusion::nalgebra::DMatrix::from_element(units, cols.len(), f64::NAN);
        for (col, m) in res.means.iter().enumerate() {
            for (u, &p) in out.clone().zip(&pos) {
                y[(u, col)] = m[p];
            }
        }
        Ok(clamped::Relaxation {
            y,
            saturation: Default::default(),
            iterations: 0,
        })
    })?;
    let sat = status(&mut client)?.wrapping_sub(sat0);
    let st = client.stats;
    println!(
        "board at {}: {} requests, time scale {:.1} (measured), {} time-outs, {} retransmissions; RUN flags {flags:#x} (rho(x) sums{})",
        port.display(),
        st.requests,
        client.time_scale(),
        st.timeouts,
        st.retransmissions,
        if flags & RUN_ALL_UNITS != 0 { ", every unit" } else { ", readout units" }
    );
    drop(client);
    if let Some(h) = h {
        let _ = h.join();
    }
    Ok((imgs, sat))
}

/// `thermo eval` on a clamped substrate.
pub fn eval_cmd(a: &EvalArgs) -> Result<(), String> {
    let t = Instant::now();
    let c = ClampedModel::load(&a.substrate)?;
    // The U-Net to compare with: the one given, else the one the substrate was compiled from.
    let unet = a
        .unet
        .clone()
        .or_else(|| c.source.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("models/digits-unet.safetensors"));
    let model = io::load(&unet).map_err(|e| format!("{}: {e}", unet.display()))?;
    println!("compared with the U-Net {}", unet.display());
    let path: clamped::Path = a.engine.parse().map_err(|e| format!("--engine {e}"))?;
    let d = DigitsData::load()?;
    let n = a.inputs.unwrap_or(d.test.len()).min(d.test.len());
    let run = run_of(&c, a.burn_in, a.sweeps);
    describe(&c)?;
    let o = clamped_eval::EvalOptions {
        path,
        run,
        seed: a.seed,
        threads: a.threads,
        sigmas: a.sigmas.clone(),
        noise_seed: quality::EVAL_SEED,
        convergence_images: if path == clamped::Path::Exact {
            0
        } else {
            16.min(n)
        },
    };
    let train = d.images(&d.train_idx);
    let r = clamped_eval::evaluate(&c, &model, &train, &d.test[..n], &o)?;
    let md = r.to_markdown();
    println!("{md}");
    if path != clamped::Path::Exact {
        println!(
            "engines: {} burn-in + {} averaged sweeps per call (T {:e}); sweeps to converge: the noiseless golden engine from state 0 until no rho(x) moves by 1e-4, on {} images per level",
            run.burn_in,
            run.sweeps,
            c.engine.as_ref().map(|e| e.settings.temperature).unwrap_or(0.0),
            o.convergence_images
        );
    }
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    if let Some(p) = &a.md {
        let head = format!(
            "`thermo eval --substrate {} --engine {}` ({} test images, noise seed {:#x})\n\n",
            a.substrate.display(),
            a.engine,
            n,
            quality::EVAL_SEED
        );
        std::fs::write(p, head + &md).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    println!("({:.1} s)", t.elapsed().as_secs_f64());
    Ok(())
}

/// Run a command.
pub fn run(c: ClampedCommand) -> Result<(), String> {
    match c {
        ClampedCommand::TrainSubstrate(a) => train_substrate(a),
        ClampedCommand::CheckSubstrateEqprop(a) => check_eqprop(a),
    }
}

fn parse_rank(k: &str) -> Result<Option<usize>, String> {
    if k == "dense" {
        return Ok(None);
    }
    k.parse::<usize>()
        .map(Some)
        .map_err(|_| format!("--rank `{k}`: expected a number or `dense`"))
}

fn check_eqprop(a: CheckSubstrateEqpropArgs) -> Result<(), String> {
    let t = Instant::now();
    let ests = a
        .estimators
        .iter()
        .map(|s| parse_estimator(s))
        .collect::<Result<Vec<_>, _>>()?;
    for &beta in &a.betas {
        EqpropOptions {
            beta,
            estimator: Estimator::Symmetric,
        }
        .check()
        .map_err(|e| format!("--betas: {e}"))?;
    }
    if a.batches == 0 || a.batch == 0 {
        return Err("--batches and --batch must be >= 1".into());
    }
    let c = ClampedModel::load(&a.substrate)?;
    let d = DigitsData::load()?;
    let train = d.images(&d.train_idx);
    let o = TrainOptions::default();
    let mut rng = thermo_diffusion::rng::Rng::stream(a.seed, 0xe9);
    let batches: Vec<clamped_eqprop::Batch> = (0..a.batches)
        .map(|_| clamped_eqprop::draw_batch(&c, &train, a.batch, o.p_mean, o.p_std, &mut rng))
        .collect();
    let rows = clamped_eqprop::compare(&c, &batches, &a.betas, &ests)?;
    println!(
        "{}: {} batches of {} training images (seed {}), ln sigma ~ N({}, {}^2); EqProp (bias nudge on the {} readout units, exact phases) against implicit differentiation, cosine (mean over batches)",
        a.substrate.display(),
        a.batches,
        a.batch,
        a.seed,
        o.p_mean,
        o.p_std,
        c.sizes[c.out_module()]
    );
    let Some(first) = rows.first() else {
        return Ok(());
    };
    let mut head = "| estimator | beta | overall | substrate | |rel err| | switched |".to_string();
    let mut sep = "|---|---|---|---|---|---|".to_string();
    for (n, _) in &first.per_group {
        head += &format!(" {n} |");
        sep += "---|";
    }
    println!("{head}\n{sep}");
    for r in &rows {
        let mut line = format!(
            "| {} | {} | {:.6} | {:.6} | {:.2e} | {:.1e} |",
            match r.estimator {
                Estimator::OneSided => "one-sided",
                Estimator::Symmetric => "symmetric",
            },
            r.beta,
            r.overall,
            r.substrate,
            r.rel_error,
            r.switched
        );
        for (_, cs) in &r.per_group {
            line += &format!(" {cs:.5} |");
        }
        println!("{line}");
    }
    if let Some(p) = &a.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(p, text + "\n").map_err(|e| format!("{}: {e}", p.display()))?;
    }
    println!("({:.1} s)", t.elapsed().as_secs_f64());
    Ok(())
}

fn train_substrate(a: TrainSubstrateArgs) -> Result<(), String> {
    let t = Instant::now();
    let eq = match a.method.as_str() {
        "implicit" => None,
        "eqprop" => {
            let e = EqpropOptions {
                beta: a.beta,
                estimator: parse_estimator(&a.estimator)?,
            };
            e.check().map_err(|e| format!("--beta: {e}"))?;
            Some(e)
        }
        m => return Err(format!("--method `{m}`: expected `implicit` or `eqprop`")),
    };
    let d = DigitsData::load()?;
    let e = EngineArgs::default();
    let mut c = match &a.substrate {
        Some(p) => ClampedModel::load(p)?,
        None => compile_clamped(
            &a.unet,
            parse_rank(&a.rank)?,
            gram::Factorisation::GramWeighted,
            a.layer_scale,
            None,
            &d,
            &e,
        )?,
    };
    let settings = c.engine.clone();
    if a.pixel_path && c.out_x.is_empty() {
        c.out_x = vec![0.0; c.unet.input * c.unet.input];
    }
    if a.decoder_drive && c.input_out.is_empty() {
        c.input_out = vec![0.0; c.unet.input * c.sizes[c.out_module()]];
    }
    if a.noise_gate {
        if c.out_x.is_empty() && c.input_out.is_empty() {
            return Err(
                "--noise-gate gates the digital pixel path and decoder drive: add --pixel-path or --decoder-drive"
                    .into(),
            );
        }
        if !c.out_x.is_empty() && c.out_x_gate.is_empty() {
            c.out_x_gate = vec![0.0; c.unet.emb];
        }
        if !c.input_out.is_empty() && c.input_out_gate.is_empty() {
            c.input_out_gate = vec![0.0; c.unet.emb];
        }
    }
    describe(&c)?;
    let (tr, va) = data::carve_validation(&d.train_idx, a.val_fraction, a.seed);
    let (train, val) = (d.images(&tr), d.images(&va));
    println!(
        "training on {} images, validating on {} (carved from the training split with seed {}); test split untouched",
        train.len(),
        val.len(),
        a.seed
    );
    let distill = match (&a.teacher, a.distill) {
        (None, Some(w)) if w != 0.0 => {
            return Err(format!("--distill {w} needs --teacher"));
        }
        (None, _) => 0.0,
        (Some(_), w) => {
            let w = w.unwrap_or(1.0);
            if !(w > 0.0 && w <= 1.0) {
                return Err(format!("--distill {w}: must lie in (0, 1] with a teacher"));
            }
            w
        }
    };
    if a.teacher.is_some() && eq.is_some() {
        return Err("--teacher: distillation runs with --method implicit".into());
    }
    let teacher = match &a.teacher {
        Some(p) => {
            let t = clamped_train::Teacher::new(ClampedModel::load(p)?)
                .map_err(|e| format!("--teacher {}: {e}", p.display()))?;
            t.check_matches(&c)
                .map_err(|e| format!("--teacher {}: {e}", p.display()))?;
            println!(
                "target: {:.2} x clean image + {:.2} x the denoised output of {}",
                1.0 - distill,
                distill,
                p.display()
            );
            Some(t)
        }
        None => None,
    };
    match &eq {
        None => println!("gradient: implicit differentiation through the fixed point"),
        Some(e) => println!(
            "gradient: EqProp, bias nudge on the readout units, beta {} (relative), {:?} estimator, exact phases",
            e.beta, e.estimator
        ),
    }
    let o = TrainOptions {
        steps: a.steps,
        batch: a.batch,
        lr: a.lr,
        seed: a.seed,
        norm_cap: a.norm_cap,
        val_every: a.val_every,
        train_digital: !a.substrate_only,
        p_mean: a.p_mean,
        p_std: a.p_std,
        val_sigmas: a.val_sigmas.clone(),
        distill,
        teacher: a.teacher.as_ref().map(|p| p.display().to_string()),
        ..Default::default()
    };
    let pb = indicatif::ProgressBar::new(a.steps as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut ema = f64::NAN;
    let progress = |step: usize, loss: f64, vp: Option<&clamped_train::ValPoint>| {
        if loss.is_finite() {
            ema = if ema.is_finite() {
                0.95 * ema + 0.05 * loss
            } else {
                loss
            };
        }
        pb.set_position(step as u64);
        if let Some(v) = vp {
            let line = format!(
                "step {:5}: train loss {:.4}, validation MSE at sigma {:?}: {}, ||J||_2 {:.4}",
                v.step,
                v.train_loss,
                a.val_sigmas,
                v.val_mse
                    .iter()
                    .map(|m| format!("{m:.4}"))
                    .collect::<Vec<_>>()
                    .join(" / "),
                v.norm2
            );
            if pb.is_hidden() {
                println!("{line}");
            } else {
                pb.println(line);
            }
        }
        pb.set_message(format!("loss {ema:.4}"));
    };
    let report = match &eq {
        None => clamped_train::train_with(
            &mut c,
            &train,
            &val,
            &o,
            teacher.as_ref(),
            clamped_train::loss_and_grad,
            progress,
        )?,
        Some(e) => clamped_eqprop::train(&mut c, &train, &val, &o, e, progress)?,
    };
    pb.finish_and_clear();
    // Calibrate the engines again for the trained couplings (same settings as before).
    let mut ea = e.clone();
    if let Some(cal) = settings {
        ea.temperature = cal.settings.temperature;
        ea.eta_fraction = cal.settings.eta_fraction;
        ea.lanes = cal.settings.lanes;
        ea.coupling_bits = cal.settings.coupling_bits;
        ea.state_bits = cal.settings.state_bits;
        ea.v_scale = cal.settings.v_scale;
        ea.state_shifts = cal.settings.state_shifts;
        ea.run_burn_in = cal.run.burn_in;
        ea.run_sweeps = cal.run.sweeps;
    }
    calibrate(&mut c, &d, &ea)?;
    let sim = save(&c, &a.out)?;
    let mut rp = a.out.as_os_str().to_owned();
    rp.push(".train.json");
    let rp = PathBuf::from(rp);
    let text = serde_json::to_string_pretty(&report).map_err(|err| err.to_string())?;
    std::fs::write(&rp, text + "\n").map_err(|err| format!("{}: {err}", rp.display()))?;
    describe(&c)?;
    println!(
        "kept the model of step {} (best validation), guard rescaled {} times; wrote {}, {} and {} in {:.0} s",
        report.best_step,
        report.guard_rescales,
        a.out.display(),
        sim.display(),
        rp.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Denoised-image MSE (clipped) of an identity-unit substrate with its interface (exact
/// equilibrium means), on the noisy set `thermo eval` uses.
pub fn identity_mse(path: &Path, test: &[Vec<f32>], sigmas: &[f32]) -> Result<Vec<f64>, String> {
    use thermo_diffusion::substrate::{self as tsub, Readout};
    let l = tsub::load(path)?;
    let chol = l.sub.dense_a().cholesky();
    let flat: Vec<f32> = test.iter().flatten().copied().collect();
    let set = quality::noisy_set(&flat, sigmas, quality::EVAL_SEED).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for (k, &s) in sigmas.iter().enumerate() {
        let mut se = 0.0;
        for (x, x0) in set.noisy[k]
            .chunks(thermo_diffusion::data::PIXELS)
            .zip(test)
        {
            let (b, _) = l.bias_of(x, s)?;
            let (d0, _) = l.dec0_readout(&b, Readout::Exact, 0, 0, 0, chol.as_ref())?;
            se += quality::denoise_mse(&l.denoised_from_dec0(x, s, &d0), x0);
        }
        out.push(se / test.len().max(1) as f64);
    }
    Ok(out)
}

/// Judge samples with the committed classifier.
pub fn judge(
    samples: &[Vec<f32>],
    reference: &quality::QualityReference,
    classifier: &thermo_diffusion::classifier::Classifier,
) -> Result<quality::QualityReport, String> {
    let flat: Vec<f32> = samples.iter().flatten().copied().collect();
    quality::sample_quality_with(classifier, &flat, reference).map_err(|e| e.to_string())
}

/// The main job: compile the U-Net into clamped units (dense skips and rank-k buses), show the
/// committed trained substrate beside them, evaluate every one against the U-Net and the
/// baselines, run the fixed-point engine as the board would, draw samples and judge them.
pub fn demo(a: &DemoArgs, rank: Option<usize>) -> Result<(), String> {
    let t = Instant::now();
    std::fs::create_dir_all(&a.out_dir).map_err(|e| format!("{}: {e}", a.out_dir.display()))?;
    let d = DigitsData::load()?;
    let model = io::load(&a.model).map_err(|e| format!("{}: {e}", a.model.display()))?;
    let e = EngineArgs::default();
    let stem = a
        .model
        .file_stem()
        .map_or("unet".to_string(), |s| s.to_string_lossy().to_string());
    let rank_name = rank.map_or("dense".to_string(), |k| format!("rank{k}"));
    println!(
        "== compile {} into clamp units, layer scale 0.2: dense skips and {} buses ==",
        a.model.display(),
        rank_name
    );
    let mut subs: Vec<(String, ClampedModel)> = Vec::new();
    // (U-Net file, rank, file name, table label): dense and rank-k compiles of the model, and
    // the rank-k compile of the U-Net trained with skips of that rank when it is there.
    let mut compiles = vec![(
        a.model.clone(),
        None,
        format!("{stem}-clamp-dense"),
        "clamp compile, dense".to_string(),
    )];
    if let Some(k) = rank {
        compiles.push((
            a.model.clone(),
            rank,
            format!("{stem}-clamp-rank{k}"),
            format!("clamp compile, rank{k}"),
        ));
        let skip = a
            .model
            .with_file_name(format!("{stem}-skiprank{k}.safetensors"));
        if skip.exists() {
            compiles.push((
                skip,
                rank,
                format!("{stem}-skiprank{k}-clamp-rank{k}"),
                format!("clamp compile, rank{k}, U-Net trained with rank-{k} skips"),
            ));
        }
    }
    for (unet, r, file, label) in compiles {
        let c = compile_clamped(
            &unet,
            r,
            gram::Factorisation::GramWeighted,
            0.2,
            None,
            &d,
            &e,
        )?;
        let out = a.out_dir.join(format!("{file}.json"));
        let sim = save(&c, &out)?;
        println!(
            "-- {label} ({}): wrote {} and {}",
            unet.display(),
            out.display(),
            sim.display()
        );
        describe(&c)?;
        subs.push((label, c));
    }
    if a.trained.exists() {
        let c = ClampedModel::load(&a.trained)?;
        println!("-- trained: {}", a.trained.display());
        describe(&c)?;
        subs.push((format!("trained ({})", a.trained.display()), c));
    } else {
        println!(
            "({} is missing: no trained substrate in the table; thermo train-substrate makes one)",
            a.trained.display()
        );
    }
    let n_test = if a.quick { 40 } else { d.test.len() };
    let test = &d.test[..n_test];
    let train = d.images(&d.train_idx);
    let sigmas = vec![0.2f32, 0.5, 1.0, 2.0];
    println!(
        "\n== denoised-image MSE per pixel (clipped), exact fixed point, {n_test} test images ==\n"
    );
    println!(
        "| denoiser | sigma 0.2 | 0.5 | 1 | 2 | digital MACs per call | substrate parameters |"
    );
    println!("|---|---|---|---|---|---|---|");
    let exact = |c: &ClampedModel| {
        clamped_eval::evaluate(
            c,
            &model,
            &train,
            test,
            &clamped_eval::EvalOptions {
                path: clamped::Path::Exact,
                run: EngineRun {
                    burn_in: 0,
                    sweeps: 1,
                },
                seed: 1,
                threads: a.threads,
                sigmas: sigmas.clone(),
                noise_seed: quality::EVAL_SEED,
                convergence_images: 0,
            },
        )
    };
    let row = |name: &str, v: Vec<f64>, macs: String, params: String| {
        println!(
            "| {name} | {} | {macs} | {params} |",
            v.iter()
                .map(|m| format!("{m:.4}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
    };
    let mut first = true;
    for (name, c) in &subs {
        let r = exact(c)?;
        if first {
            let unet_macs: usize = model.param_count();
            row(
                "U-Net (digital)",
                r.rows.iter().map(|x| x.unet).collect(),
                format!("~{unet_macs}"),
                "-".into(),
            );
            row(
                "Wiener filter (best quadratic energy)",
                r.rows.iter().map(|x| x.wiener).collect(),
                "4096".into(),
                "-".into(),
            );
            row(
                "mean image",
                r.rows.iter().map(|x| x.mean).collect(),
                "0".into(),
                "-".into(),
            );
            first = false;
        }
        row(
            name,
            r.rows.iter().map(|x| x.substrate).collect(),
            r.digital.macs.to_string(),
            r.digital.substrate_params.to_string(),
        );
    }
    // The earlier main job, for comparison: identity units with the trained interface.
    let identity = Path::new("models/digits-unet-rank8.substrate.json");
    if identity.exists() {
        let v = identity_mse(identity, test, &sigmas)?;
        row(
            "identity units + interface (earlier main job)",
            v,
            "-".into(),
            "-".into(),
        );
    }
    // The fixed-point engine, as the board runs a call.
    let (fname, fc) = subs.last().ok_or("no substrate")?;
    let n_fixed = if a.quick { 8 } else { 64 };
    let cal = fc.engine.as_ref().ok_or("not calibrated")?;
    println!(
        "\n== {fname} on the bit-exact fixed-point engine (16-bit, {} + {} sweeps per call, T {:e}), {n_fixed} test images ==",
        cal.run.burn_in, cal.run.sweeps, cal.settings.temperature
    );
    let fixed_sigmas = vec![0.5f32, 1.0];
    let ev = |path: clamped::Path| {
        clamped_eval::evaluate(
            fc,
            &model,
            &train,
            &d.test[..n_fixed],
            &clamped_eval::EvalOptions {
                path,
                run: cal.run,
                seed: 1,
                threads: a.threads,
                sigmas: fixed_sigmas.clone(),
                noise_seed: quality::EVAL_SEED,
                convergence_images: if path == clamped::Path::Exact { 0 } else { 4 },
            },
        )
    };
    let (re, rf) = (ev(clamped::Path::Exact)?, ev(clamped::Path::Fixed)?);
    for (x, f) in re.rows.iter().zip(&rf.rows) {
        println!(
            "sigma {}: MSE fixed {:.4} vs exact {:.4} ({:+.1}%), {} saturations, noiseless golden converges in {:.0} sweeps",
            x.sigma,
            f.substrate,
            x.substrate,
            100.0 * (f.substrate / x.substrate - 1.0),
            f.saturation,
            f.sweeps_to_converge.map_or(f64::NAN, |s| s.0)
        );
    }
    // Samples, judged by the classifier.
    let n = if a.quick { 32 } else { 256 };
    println!(
        "\n== samples: {n} per denoiser, {} Euler-ancestral steps, seed 1, exact fixed point; judged by models/digits-classifier.safetensors ==\n",
        quality::SAMPLE_STEPS
    );
    let classifier = thermo_diffusion::classifier::Classifier::load(Path::new(
        "models/digits-classifier.safetensors",
    ))
    .map_err(|e| e.to_string())?;
    let train_flat: Vec<f32> = train.iter().flatten().copied().collect();
    let reference =
        quality::QualityReference::new(&classifier, &train_flat).map_err(|e| e.to_string())?;
    println!("| sampler | FD | conf90 | class entropy (bits) | nearest training image |");
    println!("|---|---|---|---|---|");
    let print_q = |name: &str, q: &quality::QualityReport| {
        println!(
            "| {name} | {:.2} | {:.3} | {:.2} | {:.2} |",
            q.fd, q.conf90, q.class_entropy_bits, q.nearest_train_dist
        );
    };
    let u = thermo_diffusion::sample::sample_ancestral_batch(
        &model.config,
        n,
        quality::SAMPLE_STEPS,
        1,
        |_, xs, sigma| Ok(xs.iter().map(|x| model.denoise(x, sigma)).collect()),
    )?;
    print_q("U-Net (digital)", &judge(&u, &reference, &classifier)?);
    let up = a.out_dir.join("samples-unet.png");
    thermo_diffusion::sample::write_png_grid(&u[..64.min(n)], 8, 6, &up)
        .map_err(|e| e.to_string())?;
    let mut written = vec![up];
    for (k, (name, c)) in subs.iter().enumerate() {
        let (s, _) = c.sample(
            clamped::Path::Exact,
            n,
            quality::SAMPLE_STEPS,
            1,
            &cal.run,
            a.threads,
        )?;
        print_q(name, &judge(&s, &reference, &classifier)?);
        let p = a.out_dir.join(format!("samples-substrate-{k}.png"));
        thermo_diffusion::sample::write_png_grid(&s[..64.min(n)], 8, 6, &p)
            .map_err(|e| e.to_string())?;
        written.push(p);
    }
    println!(
        "\nwrote {} ({:.1} s)",
        written
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
