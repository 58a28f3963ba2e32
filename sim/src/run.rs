//! Running an engine for a number of sweeps and summarising it: what `thermo simulate` does.

use crate::engine::{Arith, Engine, Saturation};
use crate::error::Result;
use crate::io::{gtkw_save, write_npy, TraceKind, VcdTrace};
use crate::model::{Role, Substrate};
use crate::schedule::Schedule;
use serde::Serialize;
use std::path::PathBuf;

/// Which engine to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// The `f64` golden model.
    Golden,
    /// The bit-exact fixed-point engine.
    Fixed,
}

/// Options of one run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Engine.
    pub engine: EngineKind,
    /// Sweeps after burn-in.
    pub sweeps: u64,
    /// Sweeps discarded before statistics and dumps.
    pub burn_in: u64,
    /// Noise seed.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// VCD trace of every sweep (burn-in included); a `.gtkw` is written beside it.
    pub vcd: Option<PathBuf>,
    /// `.npy` of states after burn-in, `(kept sweeps, units)`.
    pub dump_states: Option<PathBuf>,
    /// Keep every `thin`-th sweep in the dump.
    pub thin: u64,
}

/// Per-module summary.
#[derive(Clone, Debug, Serialize)]
pub struct ModuleReport {
    /// Module name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Units.
    pub units: usize,
    /// Mean over units and sweeps.
    pub mean: f64,
    /// Mean over units of each unit's variance over sweeps.
    pub variance: f64,
    /// Time-averaged state of each unit (the readout).
    pub unit_means: Vec<f64>,
    /// Saturation events in this module's updates.
    pub saturation: Saturation,
}

/// The JSON report of `thermo simulate`.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Substrate name.
    pub substrate: String,
    /// Engine.
    pub engine: EngineKind,
    /// Seed.
    pub seed: u64,
    /// Units D.
    pub units: usize,
    /// Lanes P.
    pub lanes: u32,
    /// Burn-in sweeps.
    pub burn_in: u64,
    /// Sweeps after burn-in.
    pub sweeps: u64,
    /// Hardware clock cycles per sweep (schedule).
    pub cycles_per_sweep: u64,
    /// Hardware clock cycles of the whole run.
    pub cycles: u64,
    /// Wall-clock seconds of the sweeps.
    pub wall_seconds: f64,
    /// Unit updates per second of this engine on this machine.
    pub unit_updates_per_second: f64,
    /// Saturation events, all modules and buses.
    pub saturation: Saturation,
    /// Saturation events of the bus lines.
    pub bus_saturation: Saturation,
    /// Per-module summaries.
    pub modules: Vec<ModuleReport>,
}

/// Run `engine` on `s` as `opts` says; `progress(done, total)` is called every few sweeps.
pub fn run<A: Arith>(
    s: &Substrate,
    mut engine: Engine<A>,
    opts: &RunOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<RunReport> {
    engine.threads = opts.threads.max(1);
    let sched = Schedule::new(s);
    let d = s.units();
    let total = opts.burn_in + opts.sweeps;
    let kind = if engine.prog.arith.code(Default::default()).is_some() {
        TraceKind::Fixed {
            bits: s.formats.state.bits,
            frac: s.formats.state.frac,
        }
    } else {
        TraceKind::Real
    };
    let mut trace = match &opts.vcd {
        Some(p) => Some(VcdTrace::create(p, s, kind)?),
        None => None,
    };
    let mut sum = vec![0.0; d];
    let mut sumsq = vec![0.0; d];
    let thin = opts.thin.max(1);
    let mut dump: Vec<f64> = Vec::new();
    let mut kept = 0usize;
    let record = |tr: &mut Option<VcdTrace>, e: &Engine<A>, reals: &[f64], t: u64| -> Result<()> {
        if let Some(tr) = tr {
            let codes: Option<Vec<i16>> = e.x.iter().map(|&v| e.prog.arith.code(v)).collect();
            tr.record(t, e.sweeps, reals, codes.as_deref())?;
        }
        Ok(())
    };
    record(&mut trace, &engine, &engine.state_f64(), 0)?;
    let start = std::time::Instant::now();
    let step = (total / 100).max(1);
    for n in 0..total {
        engine.sweep();
        // The state as reals, once per sweep, for the trace and the statistics.
        let x = engine.state_f64();
        record(
            &mut trace,
            &engine,
            &x,
            engine.sweeps * sched.cycles_per_sweep,
        )?;
        if n >= opts.burn_in {
            for i in 0..d {
                sum[i] += x[i];
                sumsq[i] += x[i] * x[i];
            }
            if opts.dump_states.is_some() && (n - opts.burn_in) % thin == 0 {
                dump.extend_from_slice(&x);
                kept += 1;
            }
        }
        if n % step == 0 || n + 1 == total {
            progress(n + 1, total);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    if let Some(tr) = trace {
        let end = tr.finish()?;
        if let Some(p) = &opts.vcd {
            let g = p.with_extension("gtkw");
            std::fs::write(&g, gtkw_save(p, s, kind, "substrate", end))
                .map_err(|e| crate::Error::io(&g, e))?;
        }
    }
    if let Some(p) = &opts.dump_states {
        write_npy(p, &[kept, d], &dump)?;
    }
    let ns = opts.sweeps.max(1) as f64;
    let modules = s
        .modules
        .iter()
        .zip(&engine.saturation)
        .map(|(m, sat)| {
            let unit_means: Vec<f64> = m.range().map(|i| sum[i] / ns).collect();
            let var: f64 = m
                .range()
                .map(|i| (sumsq[i] / ns - (sum[i] / ns).powi(2)).max(0.0))
                .sum::<f64>()
                / m.size as f64;
            ModuleReport {
                name: m.name.clone(),
                role: m.role,
                units: m.size,
                mean: unit_means.iter().sum::<f64>() / m.size as f64,
                variance: var,
                unit_means,
                saturation: *sat,
            }
        })
        .collect();
    Ok(RunReport {
        substrate: s.name.clone(),
        engine: opts.engine,
        seed: opts.seed,
        units: d,
        lanes: s.lanes,
        burn_in: opts.burn_in,
        sweeps: opts.sweeps,
        cycles_per_sweep: sched.cycles_per_sweep,
        cycles: sched.cycles_per_sweep * total,
        wall_seconds: wall,
        unit_updates_per_second: (total as f64 * d as f64) / wall.max(1e-12),
        saturation: engine.saturation_total(),
        bus_saturation: engine.bus_saturation,
        modules,
    })
}
