//! Equilibrium propagation on the substrate: `thermo eqprop-check` (the estimators' bias against
//! beta and their gradient cosines per protocol) and `thermo train-eqprop` (training by EqProp
//! on the fixed engine or through a board, with checkpoints). The library code is
//! `thermo_sim::eqprop` and `thermo_host::eqprop`; this module parses, writes files and prints.

use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thermo_diffusion::plot::{self, Axes, Series};
use thermo_host::client::Client;
use thermo_host::eqprop::BoardPhases;
use thermo_host::transport::SerialTransport;
use thermo_sim::eqprop::{
    self, Budget, CosineRow, Estimator, Example, GradientSource, Groups, Nudge, Protocol, Rounding,
    SlopeRow, TrainOptions, TrainState,
};
use thermo_sim::mismatch::Mismatch;
use thermo_sim::qformat::QFormat;
use thermo_sim::Substrate;

/// Commands of equilibrium propagation.
#[derive(Subcommand)]
pub enum EqPropCommand {
    /// Measure EqProp's estimators on a substrate: the error against the exact gradient as
    /// beta halves (bias and energy nudge, one-sided and symmetric, noise-free equilibria) with
    /// log-log slopes, and the cosine to the exact gradient on the fixed engine per protocol
    /// and sweep budget. Prints both tables; writes report.json and two PNG plots to --out.
    EqpropCheck(CheckArgs),
    /// Train a substrate's couplings, bus factors and biases by EqProp on the fixed engine
    /// (or on the exact equilibria, or by the exact gradient, for comparison), updating the
    /// stored codes with stochastic or nearest rounding, under a guard that keeps A positive
    /// definite and eta lambda_max < 2. Writes checkpoints, the curve (CSV, PNG), the trained
    /// substrate and report.json to --out; --resume continues from the checkpoint. With
    /// --port the fixed engine's phases run on a board (or `thermo emulate`), bit for bit the
    /// same.
    TrainEqprop(TrainArgs),
}

/// The regression task both commands use.
#[derive(Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TaskArgs {
    /// Substrate description (TOML or JSON) with identity units.
    #[arg(long, default_value = "examples/three-module.toml")]
    config: PathBuf,
    /// Seed of the teacher substrate (the student's wiring, weights perturbed) and the inputs.
    #[arg(long, default_value_t = 3)]
    task_seed: u64,
    /// Relative perturbation of the teacher's couplings and bus factors.
    #[arg(long, default_value_t = 0.3)]
    perturbation: f64,
    /// Perturbation of the teacher's biases (energy units; 0: the biases are right and only
    /// the couplings have to learn).
    #[arg(long, default_value_t = 0.0)]
    bias_perturbation: f64,
    /// Standard deviation of the inputs (conditioning of the first module's units).
    #[arg(long, default_value_t = 0.5)]
    input_scale: f64,
    /// Override the substrate's temperature.
    #[arg(long)]
    temperature: Option<f64>,
}

impl TaskArgs {
    fn substrate(&self) -> Result<Substrate, String> {
        let mut s = Substrate::from_file(&self.config).map_err(|e| e.to_string())?;
        if let Some(t) = self.temperature {
            if !(t.is_finite() && t >= 0.0) {
                return Err(format!("--temperature {t}: must be finite and >= 0"));
            }
            s.temperature = t;
        }
        Ok(s)
    }

    /// `n` examples; the first `n_train` for training, the rest for validation.
    fn examples(&self, s: &Substrate, n: usize) -> Result<Vec<Example>, String> {
        eqprop::teacher_task(
            s,
            n,
            self.perturbation,
            self.bias_perturbation,
            self.input_scale,
            self.task_seed,
        )
        .map_err(|e| format!("{}: {e}", self.config.display()))
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
enum NudgeArg {
    Bias,
    Energy,
}
impl From<NudgeArg> for Nudge {
    fn from(n: NudgeArg) -> Nudge {
        match n {
            NudgeArg::Bias => Nudge::Bias,
            NudgeArg::Energy => Nudge::Energy,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
enum ProtocolArg {
    SameKey,
    Carried,
    Independent,
}
impl From<ProtocolArg> for Protocol {
    fn from(p: ProtocolArg) -> Protocol {
        match p {
            ProtocolArg::SameKey => Protocol::SameKey,
            ProtocolArg::Carried => Protocol::Carried,
            ProtocolArg::Independent => Protocol::Independent,
        }
    }
}

/// Parse budgets written `BURNIN+SWEEPS`, comma separated.
fn parse_budgets(s: &str) -> Result<Vec<Budget>, String> {
    s.split(',')
        .map(|b| {
            let (x, y) = b
                .trim()
                .split_once('+')
                .ok_or_else(|| format!("budget '{b}': write BURNIN+SWEEPS, e.g. 0+20"))?;
            let burn_in: u32 = x
                .parse()
                .map_err(|_| format!("budget '{b}': burn-in '{x}' is not a count"))?;
            let sweeps: u32 = y
                .parse()
                .map_err(|_| format!("budget '{b}': sweeps '{y}' is not a count"))?;
            if sweeps == 0 {
                return Err(format!("budget '{b}': at least one readout sweep"));
            }
            Ok(Budget { burn_in, sweeps })
        })
        .collect()
}

/// Arguments of `thermo eqprop-check`.
#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Examples measured.
    #[arg(long, default_value_t = 64)]
    examples: usize,
    /// Largest beta of the slope table; it halves `--levels - 1` times.
    #[arg(long, default_value_t = 0.1)]
    beta0: f64,
    /// Betas in the slope table.
    #[arg(long, default_value_t = 5)]
    levels: usize,
    /// Beta of the cosine table.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Nudge of the cosine table.
    #[arg(long, value_enum, default_value = "bias")]
    nudge: NudgeArg,
    /// Sweep budgets of the cosine table, BURNIN+SWEEPS per phase.
    #[arg(long, default_value = "0+5,0+20,20+20,50+50,100+400")]
    budgets: String,
    /// Protocols of the cosine table.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "same-key,carried,independent"
    )]
    protocols: Vec<ProtocolArg>,
    /// Seed of the noise keys.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Output directory (report.json, eqprop-slopes.png, eqprop-cosines.png).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// What `thermo eqprop-check` writes to report.json.
#[derive(Serialize)]
struct CheckReport<'a> {
    config: &'a Path,
    substrate: &'a str,
    units: usize,
    temperature: f64,
    eta: f64,
    examples: usize,
    task: &'a TaskArgs,
    slopes: Vec<SlopeRow>,
    cosines: Vec<CosineRow>,
}

fn est_name(e: Estimator) -> &'static str {
    match e {
        Estimator::OneSided => "one-sided",
        Estimator::Symmetric => "symmetric",
    }
}
fn nudge_name(n: Nudge) -> &'static str {
    match n {
        Nudge::Bias => "bias",
        Nudge::Energy => "energy",
    }
}
fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::SameKey => "same-key",
        Protocol::Carried => "carried",
        Protocol::Independent => "independent",
    }
}

fn check(a: CheckArgs) -> Result<(), String> {
    if a.examples == 0 || a.levels < 2 {
        return Err("--examples must be >= 1 and --levels >= 2".into());
    }
    let s = a.task.substrate()?;
    let ex = a.task.examples(&s, a.examples)?;
    let budgets = parse_budgets(&a.budgets)?;
    let protocols: Vec<Protocol> = a.protocols.iter().map(|&p| p.into()).collect();
    println!(
        "{}: {} units, T = {}, eta = {}, {} examples of a teacher task (seed {}), every parameter group",
        a.task.config.display(),
        s.units(),
        s.temperature,
        s.eta,
        ex.len(),
        a.task.task_seed
    );
    let slopes = eqprop::slope_table(&s, &ex, a.beta0, a.levels, Groups::ALL)?;
    println!(
        "\nerror |estimate - exact| / |exact| on the noise-free equilibria (mean over examples)"
    );
    print!("{:<8} {:<10}", "nudge", "estimator");
    for b in &slopes[0].betas {
        print!(" {:>10}", format!("b={b:.4}"));
    }
    println!(" {:>8} {:>18}", "slope", "halving ratios");
    for r in &slopes {
        print!("{:<8} {:<10}", nudge_name(r.nudge), est_name(r.estimator));
        for e in &r.errors {
            print!(" {e:>10.3e}");
        }
        let ratios: Vec<String> = r.ratios().iter().map(|x| format!("{x:.3}")).collect();
        println!(" {:>8.3} {}", r.slope, ratios.join(" "));
    }
    let cosines = eqprop::cosine_table(
        &s,
        &ex,
        a.beta,
        a.nudge.into(),
        &protocols,
        &budgets,
        Groups::ALL,
        a.seed,
    )?;
    println!(
        "\ncosine to the exact gradient on the fixed engine ({} nudge, beta = {}), per example and for the batch mean",
        nudge_name(a.nudge.into()),
        a.beta
    );
    println!(
        "{:<12} {:<10} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "protocol", "estimator", "burn-in", "sweeps", "mean", "min", "negative", "batch", "sat"
    );
    for r in &cosines {
        println!(
            "{:<12} {:<10} {:>8} {:>7} {:>9.4} {:>9.4} {:>9.3} {:>9.4} {:>6}",
            protocol_name(r.protocol),
            est_name(r.estimator),
            r.budget.burn_in,
            r.budget.sweeps,
            r.mean,
            r.min,
            r.negative,
            r.batch,
            r.saturation
        );
    }
    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let series: Vec<Series> = slopes
            .iter()
            .map(|r| Series {
                label: format!(
                    "{} nudge, {} (slope {:.2})",
                    nudge_name(r.nudge),
                    est_name(r.estimator),
                    r.slope
                ),
                points: r
                    .betas
                    .iter()
                    .copied()
                    .zip(r.errors.iter().copied())
                    .collect(),
            })
            .collect();
        let p1 = out.join("eqprop-slopes.png");
        plot::lines(
            &Axes {
                title: &format!("EqProp estimator error against beta ({})", s.name),
                x: "beta",
                y: "|estimate - exact| / |exact|",
                log_x: true,
                log_y: true,
                legend_upper_left: false,
            },
            &series,
            &p1,
        )?;
        let mut series = Vec::new();
        for &p in &protocols {
            for est in [Estimator::OneSided, Estimator::Symmetric] {
                let pts: Vec<(f64, f64)> = cosines
                    .iter()
                    .filter(|r| r.protocol == p && r.estimator == est)
                    .map(|r| ((r.budget.burn_in + r.budget.sweeps) as f64, r.mean))
                    .collect();
                series.push(Series {
                    label: format!("{}, {}", protocol_name(p), est_name(est)),
                    points: pts,
                });
            }
        }
        let p2 = out.join("eqprop-cosines.png");
        plot::lines(
            &Axes {
                title: &format!(
                    "Mean cosine to the exact gradient, fixed engine ({})",
                    s.name
                ),
                x: "sweeps per phase (burn-in + readout)",
                y: "mean cosine per example",
                log_x: true,
                log_y: false,
                legend_upper_left: true,
            },
            &series,
            &p2,
        )?;
        let report = CheckReport {
            config: &a.task.config,
            substrate: &s.name,
            units: s.units(),
            temperature: s.temperature,
            eta: s.eta,
            examples: ex.len(),
            task: &a.task,
            slopes,
            cosines,
        };
        let p3 = out.join("report.json");
        std::fs::write(
            &p3,
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("{}: {e}", p3.display()))?;
        println!(
            "\nwrote {}, {}, {}",
            p1.display(),
            p2.display(),
            p3.display()
        );
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
enum EngineArg {
    /// EqProp on the bit-exact fixed engine.
    Fixed,
    /// EqProp on the noise-free exact equilibria.
    Exact,
    /// The exact gradient (closed form), for comparison.
    ExactGradient,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
enum RoundingArg {
    Stochastic,
    Nearest,
    Float,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
enum GroupArg {
    Couplings,
    Buses,
    Bias,
    Stiffness,
}

#[derive(Clone, Copy, Debug, ValueEnum, Serialize, Deserialize, PartialEq)]
enum EstimatorArg {
    OneSided,
    Symmetric,
}

/// Arguments of `thermo train-eqprop`.
#[derive(Args, Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainArgs {
    #[command(flatten)]
    task: TaskArgs,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Where the gradient comes from.
    #[arg(long, value_enum, default_value = "fixed")]
    engine: EngineArg,
    /// Training steps.
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Training examples.
    #[arg(long, default_value_t = 64)]
    train: usize,
    /// Validation examples.
    #[arg(long, default_value_t = 64)]
    val: usize,
    /// Learning rate at step 0.
    #[arg(long, default_value_t = 0.3)]
    lr: f64,
    /// The learning rate falls linearly to lr * lr-final at the last step (1: constant).
    #[arg(long, default_value_t = 0.05)]
    lr_final: f64,
    /// Nudge strength.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    /// Nudge.
    #[arg(long, value_enum, default_value = "bias")]
    nudge: NudgeArg,
    /// Estimator.
    #[arg(long, value_enum, default_value = "symmetric")]
    estimator: EstimatorArg,
    /// Protocol of the phases on the fixed engine.
    #[arg(long, value_enum, default_value = "same-key")]
    protocol: ProtocolArg,
    /// Burn-in sweeps per phase.
    #[arg(long, default_value_t = 100)]
    burn_in: u32,
    /// Readout sweeps per phase.
    #[arg(long, default_value_t = 400)]
    sweeps: u32,
    /// Rounding of the updates onto the stored codes.
    #[arg(long, value_enum, default_value = "stochastic")]
    rounding: RoundingArg,
    /// Fraction bits of the coupling format (the substrate's own if absent); the format gets
    /// two integer bits beside them (Q1.F plus sign).
    #[arg(long)]
    coupling_frac: Option<u32>,
    /// Parameter groups trained: couplings, buses, bias, stiffness.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "couplings,buses,bias"
    )]
    groups: Vec<GroupArg>,
    /// Seed of the example order, the noise keys and stochastic rounding.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Record the losses every N steps.
    #[arg(long, default_value_t = 10)]
    eval_every: usize,
    /// Write the checkpoint every N steps.
    #[arg(long, default_value_t = 25)]
    checkpoint_every: usize,
    /// Mismatch: relative spread of the units' gains (stiffness); any mismatch option trains
    /// the realised (mismatched) substrate and compares with ideally trained weights deployed
    /// on it.
    #[arg(long, default_value_t = 0.0)]
    mismatch_gain: f64,
    /// Mismatch: spread of the units' bias offsets (energy units).
    #[arg(long, default_value_t = 0.0)]
    mismatch_offset: f64,
    /// Mismatch: relative spread of couplings, bus gains and bus factors.
    #[arg(long, default_value_t = 0.0)]
    mismatch_coupling: f64,
    /// Mismatch: relative drift per training step.
    #[arg(long, default_value_t = 0.0)]
    mismatch_drift: f64,
    /// Mismatch: seed of the draws.
    #[arg(long, default_value_t = 1)]
    mismatch_seed: u64,
    /// Worker threads of the batched engine for the fixed engine's phases (results do not
    /// depend on it; on a 64-unit substrate one is fastest).
    #[arg(long, default_value_t = 1)]
    #[serde(skip, default = "one")]
    threads: usize,
    /// Continue from <out>/checkpoint.json (the options must be the same).
    #[arg(long)]
    #[serde(skip)]
    resume: bool,
    /// Stop (after writing the checkpoint) once this many steps are done; --resume goes on.
    #[arg(long)]
    #[serde(skip)]
    stop_after: Option<usize>,
    /// Run the phases on the board (or `thermo emulate`) at this serial port instead of the
    /// fixed engine: same-key phases with the bias nudge, the weights written over the link
    /// whenever they change (the board needs the weights and all-units features). The results
    /// are the fixed engine's bit for bit, so a run may be resumed with or without a board.
    #[arg(long)]
    #[serde(skip)]
    port: Option<PathBuf>,
    /// Line rate of --port.
    #[arg(long, default_value_t = 3_000_000)]
    #[serde(skip, default = "default_baud")]
    baud: u32,
}

fn default_baud() -> u32 {
    3_000_000
}

/// The checkpoint: the options and the run's state.
#[derive(Serialize, Deserialize)]
struct Checkpoint {
    args: TrainArgs,
    state: TrainState,
}

impl TrainArgs {
    fn options(&self) -> TrainOptions {
        TrainOptions {
            steps: self.steps,
            batch: self.batch,
            lr: self.lr,
            lr_final: self.lr_final,
            beta: self.beta,
            nudge: self.nudge.into(),
            estimator: match self.estimator {
                EstimatorArg::OneSided => Estimator::OneSided,
                EstimatorArg::Symmetric => Estimator::Symmetric,
            },
            protocol: self.protocol.into(),
            budget: Budget {
                burn_in: self.burn_in,
                sweeps: self.sweeps,
            },
            source: match self.engine {
                EngineArg::Fixed => GradientSource::EqPropFixed,
                EngineArg::Exact => GradientSource::EqPropExact,
                EngineArg::ExactGradient => GradientSource::Exact,
            },
            rounding: match self.rounding {
                RoundingArg::Stochastic => Rounding::Stochastic,
                RoundingArg::Nearest => Rounding::Nearest,
                RoundingArg::Float => Rounding::Float,
            },
            groups: Groups {
                stiffness: self.groups.contains(&GroupArg::Stiffness),
                bias: self.groups.contains(&GroupArg::Bias),
                couplings: self.groups.contains(&GroupArg::Couplings),
                buses: self.groups.contains(&GroupArg::Buses),
            },
            seed: self.seed,
            eval_every: self.eval_every,
            mismatch: {
                let m = Mismatch {
                    gain: self.mismatch_gain,
                    offset: self.mismatch_offset,
                    coupling: self.mismatch_coupling,
                    drift: self.mismatch_drift,
                    seed: self.mismatch_seed,
                };
                (!m.is_ideal()).then_some(m)
            },
            threads: self.threads,
            ..TrainOptions::default()
        }
    }
}

fn one() -> usize {
    1
}

fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn train(a: TrainArgs) -> Result<(), String> {
    let mut s = a.task.substrate()?;
    if let Some(f) = a.coupling_frac {
        if !(1..=14).contains(&f) {
            return Err(format!(
                "--coupling-frac {f}: 1 to 14 (the format has 16 bits at most)"
            ));
        }
        s.formats.coupling = QFormat::new(f + 2, f);
        s.revalidate()
            .map_err(|e| format!("--coupling-frac {f}: {e}"))?;
    }
    let o = a.options();
    o.check()?;
    if a.train == 0 {
        return Err("--train must be at least 1".into());
    }
    let all = a.task.examples(&s, a.train + a.val)?;
    let (train_set, val_set) = all.split_at(a.train);
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let ck_path = a.out.join("checkpoint.json");
    let mut state = if a.resume {
        let text = std::fs::read_to_string(&ck_path)
            .map_err(|e| format!("--resume: {}: {e}", ck_path.display()))?;
        let ck: Checkpoint = serde_json::from_str(&text)
            .map_err(|e| format!("--resume: {}: {e}", ck_path.display()))?;
        let mut want = a.clone();
        want.resume = false;
        want.stop_after = None;
        want.threads = ck.args.threads; // does not change results
        want.port = None; // neither does the board
        want.baud = ck.args.baud;
        if ck.args != want {
            return Err(format!(
                "--resume: {} was written with other options (the checkpoint has {:?}); run with the same options",
                ck_path.display(),
                ck.args
            ));
        }
        println!("resuming at step {} of {}", ck.state.step, a.steps);
        ck.state
    } else {
        TrainState::new(&s, &o)
    };
    let pb = indicatif::ProgressBar::new(a.steps as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} step {pos}/{len} [{bar:30}] {elapsed_precise} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    pb.set_position(state.step as u64);
    let mut save_err = None;
    let mut args_ck = a.clone();
    args_ck.resume = false;
    args_ck.stop_after = None;
    let stop_at = a.stop_after.unwrap_or(a.steps).min(a.steps);
    // the phases through a board: the same phases as the fixed engine's, example by example
    let mut board = match &a.port {
        None => None,
        Some(port) => {
            if a.engine != EngineArg::Fixed
                || a.protocol != ProtocolArg::SameKey
                || a.nudge != NudgeArg::Bias
            {
                return Err(format!(
                    "--port runs the fixed engine's same-key phases with the bias nudge on a board: use --engine fixed --protocol same-key --nudge bias (got --engine {:?} --protocol {:?} --nudge {:?})",
                    a.engine, a.protocol, a.nudge
                ));
            }
            let t = SerialTransport::open(port, a.baud)
                .map_err(|e| format!("--port {}: {e}", port.display()))?;
            let mut client = Client::new(t);
            let bp = BoardPhases::attach(&mut client, &s, o.budget, o.seed)
                .map_err(|e| format!("--port {}: {e}", port.display()))?;
            Some((client, bp))
        }
    };
    let (beta, estimator) = (o.beta, o.estimator);
    let mut on_board = |phys: &Substrate, batch: &[&Example], counter: &mut u64| {
        let (client, bp) = board.as_mut().ok_or("no board")?;
        bp.counter = *counter;
        let mut v = Vec::with_capacity(batch.len());
        for e in batch {
            v.push(bp.phases(client, phys, e, beta, estimator)?);
        }
        *counter = bp.counter;
        Ok(v)
    };
    let source: Option<&mut eqprop::PhaseSource<'_>> = if a.port.is_some() {
        Some(&mut on_board)
    } else {
        None
    };
    eqprop::train_with_phases(&mut state, train_set, val_set, &o, source, |st| {
        pb.set_position(st.step as u64);
        if let Some(p) = st.curve.last() {
            let al = st
                .pending_alignment
                .last()
                .copied()
                .or(p.alignment)
                .unwrap_or(f64::NAN);
            pb.set_message(format!(
                "loss {:.3e} val {:.3e} cos {:.3} refused {}",
                p.train_loss, p.val_loss, al, st.refused
            ));
        }
        if st.step % a.checkpoint_every.max(1) == 0 || st.step == a.steps || st.step == stop_at {
            let ck = Checkpoint {
                args: args_ck.clone(),
                state: st.clone(),
            };
            match serde_json::to_string(&ck) {
                Ok(t) => {
                    if let Err(e) = write_atomic(&ck_path, &t) {
                        save_err = Some(e);
                        return false;
                    }
                }
                Err(e) => {
                    save_err = Some(e.to_string());
                    return false;
                }
            }
        }
        st.step < stop_at
    })?;
    pb.finish_and_clear();
    if let Some(e) = save_err {
        return Err(format!("checkpoint: {e}"));
    }
    if state.step < a.steps {
        println!(
            "stopped at step {} of {}; checkpoint {} (continue with --resume)",
            state.step,
            a.steps,
            ck_path.display()
        );
        return Ok(());
    }
    let first = state.curve.first().cloned();
    let last = state.curve.last().cloned();
    let (Some(first), Some(last)) = (first, last) else {
        return Err("no training curve recorded".into());
    };
    // The exact-gradient run on the same task, float parameters, ideal substrate: the
    // reference.
    let mut ref_opts = o.clone();
    ref_opts.source = GradientSource::Exact;
    ref_opts.rounding = Rounding::Float;
    ref_opts.mismatch = None;
    let mut reference = TrainState::new(&s, &ref_opts);
    eqprop::train(&mut reference, train_set, val_set, &ref_opts, |_| true)?;
    let rlast = reference
        .curve
        .last()
        .cloned()
        .ok_or("no reference curve")?;
    println!(
        "{}: {} steps, engine {:?}{}, {:?} rounding, coupling format {}",
        a.task.config.display(),
        state.step,
        a.engine,
        a.port
            .as_ref()
            .map(|p| format!(" (phases through the board at {})", p.display()))
            .unwrap_or_default(),
        a.rounding,
        s.formats.coupling.name()
    );
    println!(
        "train loss {:.4e} -> {:.4e} ({:.3}x), validation {:.4e} -> {:.4e} ({:.3}x)",
        first.train_loss,
        last.train_loss,
        last.train_loss / first.train_loss,
        first.val_loss,
        last.val_loss,
        last.val_loss / first.val_loss
    );
    println!(
        "exact-gradient float training on the ideal substrate, same task: validation {:.4e} ({:.3}x of initial); this run / reference = {:.3}",
        rlast.val_loss,
        rlast.val_loss / first.val_loss,
        last.val_loss / rlast.val_loss
    );
    let deployed = match &o.mismatch {
        None => None,
        Some(m) => {
            let ideal = Substrate::from_config(&reference.substrate).map_err(|e| e.to_string())?;
            let d = eqprop::deployed_loss(&ideal, val_set, Some(m), state.step)?;
            println!(
                "mismatch (gain {}, offset {}, coupling {}, drift {}/step, seed {}): ideally trained weights deployed on it: validation {:.4e}; trained on it: {:.4e} ({:.3}x of deployed)",
                m.gain, m.offset, m.coupling, m.drift, m.seed, d, last.val_loss, last.val_loss / d
            );
            Some(d)
        }
    };
    let mean_cos: Vec<f64> = state.curve.iter().filter_map(|p| p.alignment).collect();
    println!(
        "mean cosine of the steps' gradients to the exact gradient {:.4}; updates refused by the guard {}; codes saturated {}",
        mean_cos.iter().sum::<f64>() / mean_cos.len().max(1) as f64,
        state.refused,
        state.saturated
    );
    let trained = Substrate::from_config(&state.substrate).map_err(|e| e.to_string())?;
    let sub_path = a.out.join("trained.substrate.json");
    state.substrate.save(&sub_path).map_err(|e| e.to_string())?;
    let mut csv = String::from("step,train_loss,val_loss,alignment,reference_val_loss\n");
    for (p, r) in state.curve.iter().zip(&reference.curve) {
        csv += &format!(
            "{},{:.6e},{:.6e},{:.6},{:.6e}\n",
            p.step,
            p.train_loss,
            p.val_loss,
            p.alignment.unwrap_or(f64::NAN),
            r.val_loss
        );
    }
    let csv_path = a.out.join("curve.csv");
    std::fs::write(&csv_path, csv).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    let png = a.out.join("curve.png");
    plot::lines(
        &Axes {
            title: &format!(
                "Training ({:?} engine, {:?} rounding, {}) on {}{}",
                a.engine,
                a.rounding,
                s.formats.coupling.name(),
                s.name,
                if deployed.is_some() {
                    ", mismatched"
                } else {
                    ""
                }
            ),
            x: "step",
            y: "mean loss 1/2 |x_out - y|^2",
            log_x: false,
            log_y: true,
            legend_upper_left: false,
        },
        &[
            deployed
                .map(|d| Series {
                    label: "exact-gradient weights (ideal) deployed here, final".into(),
                    points: vec![(0.0, d), (state.step as f64, d)],
                })
                .unwrap_or(Series {
                    label: String::new(),
                    points: Vec::new(),
                }),
            Series {
                label: "this run, train".into(),
                points: state
                    .curve
                    .iter()
                    .map(|p| (p.step as f64, p.train_loss))
                    .collect(),
            },
            Series {
                label: "this run, validation".into(),
                points: state
                    .curve
                    .iter()
                    .map(|p| (p.step as f64, p.val_loss))
                    .collect(),
            },
            Series {
                label: "exact gradient, float, ideal substrate: validation".into(),
                points: reference
                    .curve
                    .iter()
                    .map(|p| (p.step as f64, p.val_loss))
                    .collect(),
            },
        ],
        &png,
    )?;
    let report = serde_json::json!({
        "options": o,
        "args": args_ck,
        "substrate": trained.name,
        "coupling_format": s.formats.coupling.name(),
        "steps": state.step,
        "initial": first,
        "final": last,
        "reference_final": rlast,
        "ratio_to_reference": last.val_loss / rlast.val_loss,
        "mismatch": o.mismatch,
        "ideal_weights_deployed_val_loss": deployed,
        "refused": state.refused,
        "saturated": state.saturated,
        "phases_through_board": a.port,
    });
    let rp = a.out.join("report.json");
    std::fs::write(
        &rp,
        serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("{}: {e}", rp.display()))?;
    println!(
        "wrote {}, {}, {}, {}",
        sub_path.display(),
        csv_path.display(),
        png.display(),
        rp.display()
    );
    Ok(())
}

/// Run an EqProp command.
pub fn run(c: EqPropCommand) -> Result<(), String> {
    match c {
        EqPropCommand::EqpropCheck(a) => check(a),
        EqPropCommand::TrainEqprop(a) => train(a),
    }
}
