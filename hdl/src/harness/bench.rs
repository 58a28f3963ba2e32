//! Simulation speed: rust-hdl's simulator, Verilator and the fixed engine on one configuration.

use crate::harness::script::{addr, config_script, run_rusthdl, script_text, Cmd, HARNESS_CPP};
use crate::rtl::program::HwProgram;
use crate::rtl::top::{region, SubstrateTop};
use crate::Error;
use rust_hdl::prelude::*;
use thermo_sim::engine::FixedEngine;
use thermo_sim::Substrate;

/// One simulator's speed.
#[derive(Clone, Debug, Default)]
pub struct Speed {
    /// Sweeps run.
    pub sweeps: u64,
    /// Seconds.
    pub seconds: f64,
    /// Simulated clock cycles per second.
    pub cycles_per_s: f64,
    /// Unit updates per second.
    pub updates_per_s: f64,
}

/// The three speeds.
#[derive(Clone, Debug, Default)]
pub struct Bench {
    /// Units D.
    pub units: usize,
    /// Cycles per sweep.
    pub cycles_per_sweep: u64,
    /// rust-hdl's simulation kernel.
    pub rusthdl: Speed,
    /// Verilator (`-O2` build).
    pub verilator: Speed,
    /// Fixed engine (one thread).
    pub engine: Speed,
}

impl Bench {
    /// A printable table with the ratios.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} units, {} cycles per sweep\n{:<10} {:>8} {:>10} {:>14} {:>16}\n",
            self.units,
            self.cycles_per_sweep,
            "simulator",
            "sweeps",
            "seconds",
            "cycles/s",
            "unit updates/s"
        );
        for (n, sp) in [
            ("rust-hdl", &self.rusthdl),
            ("verilator", &self.verilator),
            ("engine", &self.engine),
        ] {
            s.push_str(&format!(
                "{:<10} {:>8} {:>10.3} {:>14.3e} {:>16.3e}\n",
                n, sp.sweeps, sp.seconds, sp.cycles_per_s, sp.updates_per_s
            ));
        }
        s.push_str(&format!(
            "Verilator / rust-hdl: {:.0}x; engine / Verilator (unit updates): {:.1}x; engine / rust-hdl: {:.0}x\n",
            self.verilator.cycles_per_s / self.rusthdl.cycles_per_s,
            self.engine.updates_per_s / self.verilator.updates_per_s,
            self.engine.updates_per_s / self.rusthdl.updates_per_s
        ));
        s
    }
}

fn speed(sweeps: u64, seconds: f64, cps: u64, units: usize) -> Speed {
    let cycles = (sweeps * cps) as f64;
    Speed {
        sweeps,
        seconds,
        cycles_per_s: cycles / seconds,
        updates_per_s: (sweeps * units as u64) as f64 / seconds,
    }
}

/// Measure: Verilator and the engine run `sweeps` sweeps, rust-hdl `max(sweeps / 10, 2)`.
pub fn bench(s: &Substrate, sweeps: u64) -> Result<Bench, Error> {
    let prog = HwProgram::new(s)?;
    let cps = prog.cycles_per_sweep;
    let d = prog.d;
    let seed = s.seed;
    let run = |n: u64| -> Vec<Cmd> {
        let mut sc = config_script(&prog, seed, n as u32);
        sc.push(Cmd::Time);
        sc.push(Cmd::Run);
        sc.push(Cmd::Time);
        sc.push(Cmd::Read(vec![addr(region::CTRL, 1)]));
        sc
    };
    // rust-hdl
    let nr = (sweeps / 10).max(2);
    let mut top = SubstrateTop::new(&prog);
    top.connect_all();
    let r = run_rusthdl(&mut top, &run(nr), |_| {})?;
    let rusthdl = speed(nr, (r[2] - r[0]) as f64 * 1e-9, cps, d);
    if r[1] != nr * cps || r[3] != nr {
        return Err(Error::Other(format!("rust-hdl bench run: {r:?}")));
    }
    // verilator
    let v = crate::rtl::top::substrate_verilog(s)?;
    let exe = crate::harness::verilog::verilator_build(&v, HARNESS_CPP, false, true)?;
    let out =
        crate::harness::verilog::run_harness(&exe, &[String::new()], &script_text(&run(sweeps)))?;
    let w: Vec<u64> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
    if w.len() != 4 || w[1] != sweeps * cps || w[3] != sweeps {
        return Err(Error::Other(format!("Verilator bench run: {w:?}")));
    }
    let verilator = speed(sweeps, (w[2] - w[0]) as f64 * 1e-9, cps, d);
    // engine
    let mut e = FixedEngine::fixed(s, seed);
    let t0 = std::time::Instant::now();
    for _ in 0..sweeps {
        e.sweep();
    }
    let engine = speed(sweeps, t0.elapsed().as_secs_f64(), cps, d);
    Ok(Bench {
        units: d,
        cycles_per_sweep: cps,
        rusthdl,
        verilator,
        engine,
    })
}
