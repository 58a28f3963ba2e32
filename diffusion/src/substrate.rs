//! A compiled substrate as `thermo compile` writes it (the description JSON plus its side file
//! `<stem>.interface.json`), loaded for the engines: per-input biases and time-averaged
//! relaxation. Used by `thermo eval`, `thermo quantize`, `thermo sample-substrate` and
//! `thermo demo`.

use crate::compile::{CompileOptions, Ranges};
use crate::eval::{EvalRow, EvalSet};
use crate::interface::{Interface, ParamCount, TrainReport};
use crate::unet::Unet;
use nalgebra::DVector;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thermo_sim::engine::{Arith, Engine, Observe, Saturation};
use thermo_sim::{Substrate, SubstrateConfig};

/// The side file of `thermo compile`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SideFile {
    /// The U-Net the substrate was compiled from (as given on the command line).
    pub unet: PathBuf,
    /// Compiler options.
    pub options: CompileOptions,
    /// The conditioning interface.
    pub interface: Interface,
    /// Its parameter count.
    pub param_count: ParamCount,
    /// Its training report.
    pub train: TrainReport,
    /// Exact held-out evaluation at compile time.
    pub rows: Vec<EvalRow>,
    /// The data ranges the Q formats were chosen from (absent in files written before
    /// `thermo quantize` existed).
    #[serde(default)]
    pub ranges: Option<Ranges>,
}

/// Path of the side file of a description: `<stem>.interface.json` beside it.
pub fn side_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| "substrate".into());
    out.with_file_name(format!("{stem}.interface.json"))
}

/// A loaded, validated compiled substrate with its interface and U-Net.
pub struct Loaded {
    /// The description as read.
    pub cfg: SubstrateConfig,
    /// The validated substrate.
    pub sub: Substrate,
    /// The side file.
    pub side: SideFile,
    /// The U-Net it was compiled from.
    pub model: Unet,
    /// Units of the module the interface injects into.
    pub inject: std::ops::Range<usize>,
    /// Units of all decoder modules (unit order).
    pub dec: Vec<usize>,
    /// Units of dec0.
    pub dec0: Vec<usize>,
}

/// Load a description written by `thermo compile`, its side file and its U-Net. Errors name the
/// file.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let cfg = SubstrateConfig::load(path).map_err(|e| e.to_string())?;
    let sub = Substrate::from_config(&cfg).map_err(|e| format!("{}: {e}", path.display()))?;
    let sp = side_path(path);
    let text = std::fs::read_to_string(&sp).map_err(|e| format!("{}: {e}", sp.display()))?;
    let side: SideFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", sp.display()))?;
    side.interface
        .validate()
        .map_err(|e| format!("{}: {e}", sp.display()))?;
    // The side file names the U-Net as given to `thermo compile` (relative to where it ran);
    // if that does not resolve, look beside the description.
    let unet_path = match (side.unet.exists(), side.unet.file_name(), path.parent()) {
        (false, Some(f), Some(dir)) if dir.join(f).exists() => dir.join(f),
        _ => side.unet.clone(),
    };
    let model = crate::io::load(&unet_path).map_err(|e| {
        format!(
            "{}: the U-Net named by {}: {e}",
            unet_path.display(),
            sp.display()
        )
    })?;
    let names = model.config.module_names();
    if sub.modules.len() != names.len() || sub.modules.iter().zip(&names).any(|(m, n)| &m.name != n)
    {
        return Err(format!(
            "{}: modules do not match the U-Net {}",
            path.display(),
            side.unet.display()
        ));
    }
    let inject = sub
        .modules
        .iter()
        .find(|m| m.name == side.interface.inject)
        .ok_or_else(|| {
            format!(
                "{}: interface injects into `{}`, which the description does not have",
                sp.display(),
                side.interface.inject
            )
        })?
        .range();
    let dec: Vec<usize> = sub
        .modules
        .iter()
        .filter(|m| m.name.starts_with("dec"))
        .flat_map(|m| m.range())
        .collect();
    let dec0: Vec<usize> = sub
        .modules
        .iter()
        .filter(|m| m.name == "dec0")
        .flat_map(|m| m.range())
        .collect();
    if dec0.is_empty() {
        return Err(format!("{}: no module `dec0`", path.display()));
    }
    Ok(Loaded {
        cfg,
        sub,
        side,
        model,
        inject,
        dec,
        dec0,
    })
}

impl Loaded {
    /// The bias of row `r` of `set`: couplings-only drive times the gain plus the interface's
    /// biases in its module.
    pub fn interface_bias(&self, set: &EvalSet, r: usize) -> Vec<f64> {
        let f = DVector::from_iterator(set.feats.ncols(), set.feats.row(r).iter().copied());
        let gain = self.side.options.gain;
        let mut b: Vec<f64> = set.drive.row(r).iter().map(|v| gain * v).collect();
        let bi = self.side.interface.biases(&f);
        for (k, u) in self.inject.clone().enumerate() {
            b[u] += bi[k];
        }
        b
    }

    /// The bias of one noisy image `x` at noise level `sigma` (what [`Loaded::interface_bias`]
    /// gives for a set row), with the U-Net's activations of that input.
    pub fn bias_of(&self, x: &[f32], sigma: f32) -> Result<(Vec<f64>, crate::Activations), String> {
        let cfg = &self.model.config;
        let (_, acts) = self.model.forward(x, sigma);
        let names = cfg.module_names();
        let gain = self.side.options.gain;
        let mut b = Vec::with_capacity(self.sub.units());
        for (m, n) in names.iter().enumerate() {
            let la = acts.layer(n).ok_or_else(|| format!("no layer {n}"))?;
            for k in 0..la.cond.len() {
                let mut v = la.cond[k] as f64;
                if m == 0 {
                    v += la.local[k] as f64;
                }
                b.push(gain * v);
            }
        }
        let f = crate::interface::features(cfg, x, sigma);
        let bi = self.side.interface.biases(&f);
        for (k, u) in self.inject.clone().enumerate() {
            b[u] += bi[k];
        }
        Ok((b, acts))
    }

    /// The oracle bias `A a_true` of row `r`.
    pub fn oracle_bias(&self, set: &EvalSet, r: usize) -> Vec<f64> {
        let x: Vec<f64> = set.truth.row(r).iter().copied().collect();
        let mut y = vec![0.0; x.len()];
        self.sub.matvec(&x, &mut y);
        y
    }
}

/// Relax `engine` with bias `b` from its current state; time average of the state over
/// `sweeps` sweeps (at least one) after `burn_in` ([`Engine::relax_average`]). Returns the means
/// and the engine's saturation counters (cumulative).
pub fn relax<A: Arith>(
    sub: &Substrate,
    engine: &mut Engine<A>,
    b: &[f64],
    burn_in: u64,
    sweeps: u64,
) -> (Vec<f64>, Saturation) {
    engine.relax_average(sub, b, burn_in, sweeps, Observe::State)
}

/// [`relax`] of many biases at once: chain `c` relaxes bias `bs[c]` from state zero with noise
/// seed `seeds[c]`, bit for bit what [`relax`] gives on a fresh `Engine::new(sub, arith,
/// seeds[c])`; the chains run in lock step in one [`thermo_sim::BatchEngine`] (the couplings
/// read once for all of them) split over `threads` threads (the results do not depend on it).
/// Returns each chain's means and saturation counters.
#[allow(clippy::too_many_arguments)]
pub fn relax_many<A: Arith>(
    sub: &Substrate,
    arith: A,
    bs: &[Vec<f64>],
    seeds: &[u64],
    burn_in: u64,
    sweeps: u64,
    threads: usize,
) -> Vec<(Vec<f64>, Saturation)> {
    relax_many_observed(
        sub,
        arith,
        bs,
        seeds,
        burn_in,
        sweeps,
        threads,
        Observe::State,
    )
}

/// [`relax_many`], averaging what `observe` says (the states, or `rho` of them).
#[allow(clippy::too_many_arguments)]
pub fn relax_many_observed<A: Arith>(
    sub: &Substrate,
    arith: A,
    bs: &[Vec<f64>],
    seeds: &[u64],
    burn_in: u64,
    sweeps: u64,
    threads: usize,
    observe: Observe,
) -> Vec<(Vec<f64>, Saturation)> {
    assert_eq!(bs.len(), seeds.len(), "one seed per bias");
    if bs.is_empty() {
        return Vec::new();
    }
    let mut e = thermo_sim::BatchEngine::new(sub, arith, seeds, threads.max(1));
    e.relax_average(sub, bs, burn_in, sweeps, observe)
}

/// How a substrate denoiser computes the dec0 readout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Readout {
    /// Exact equilibrium means `A^-1 b` (float, no engine).
    Exact,
    /// Golden (f64) engine, time-averaged.
    Golden,
    /// Fixed-point engine, time-averaged: the board's RUN (state zero, lanes from the run key).
    Fixed,
}

impl std::str::FromStr for Readout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "exact" => Ok(Readout::Exact),
            "golden" => Ok(Readout::Golden),
            "fixed" => Ok(Readout::Fixed),
            o => Err(format!("`{o}`: expected exact, golden or fixed")),
        }
    }
}

/// One inference as the board runs it (`thermo_sim::Fixed::run_codes`, here in means): the
/// fixed engine from state zero, lane `l` from `Taus88::from_key(run_key(seed), l)`, `burn_in`
/// sweeps discarded, then the state averaged over `sweeps` sweeps. Returns the means of all
/// units and the saturation counters.
pub fn board_run(
    sub: &Substrate,
    b: &[f64],
    burn_in: u64,
    sweeps: u64,
    seed: u64,
) -> (Vec<f64>, Saturation) {
    // `NoiseLane::new(seed, l)` is `Taus88::from_key(run_key(seed), l)`: the board's keying.
    let mut e = FixedEngine::fixed(sub, seed);
    relax(sub, &mut e, b, burn_in, sweeps)
}

use thermo_sim::FixedEngine;

impl Loaded {
    /// The U-Net's output head applied to dec0 values: the denoised image
    /// `clip(c_skip x + c_out (W_out dec0 + b_out), -1, 1)` for noisy `x` at `sigma`.
    pub fn denoised_from_dec0(&self, x: &[f32], sigma: f32, dec0: &[f64]) -> Vec<f32> {
        let d: Vec<f32> = dec0.iter().map(|&v| v as f32).collect();
        let out = &self.model.out;
        let mut f = out.apply(&d);
        for (o, b) in f.iter_mut().zip(&out.b) {
            *o += b;
        }
        let (cs, co) = (
            self.model.config.c_skip(sigma),
            self.model.config.c_out(sigma),
        );
        x.iter()
            .zip(&f)
            .map(|(xi, fi)| (cs * xi + co * fi).clamp(-1.0, 1.0))
            .collect()
    }

    /// dec0 readout of the substrate for bias `b` (`seed` keys the noise of the engines).
    pub fn dec0_readout(
        &self,
        b: &[f64],
        how: Readout,
        burn_in: u64,
        sweeps: u64,
        seed: u64,
        chol: Option<&nalgebra::Cholesky<f64, nalgebra::Dyn>>,
    ) -> Result<(Vec<f64>, Saturation), String> {
        let (all, sat) = match how {
            Readout::Exact => {
                let c = chol.ok_or("exact readout needs the Cholesky factor of A")?;
                (
                    c.solve(&DVector::from_vec(b.to_vec()))
                        .iter()
                        .copied()
                        .collect(),
                    Saturation::default(),
                )
            }
            Readout::Golden => {
                let mut e = thermo_sim::GoldenEngine::golden(&self.sub, seed);
                relax(&self.sub, &mut e, b, burn_in, sweeps)
            }
            Readout::Fixed => board_run(&self.sub, b, burn_in, sweeps, seed),
        };
        Ok((self.dec0.iter().map(|&u| all[u]).collect(), sat))
    }
}
