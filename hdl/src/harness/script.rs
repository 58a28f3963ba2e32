//! A port-level script that drives the substrate top, executed identically by the rust-hdl
//! simulation and by the Verilator harness.

use crate::rtl::program::HwProgram;
use crate::rtl::simx::{settle, tick};
use crate::rtl::top::{ctrl_bits, region, SubstrateTop};
use crate::Error;
use rust_hdl::prelude::*;
use thermo_sim::noise::Taus88;

/// One script command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// One cycle with `cfg.we` and the address/data.
    Write(u32, u32),
    /// `n` idle cycles.
    Idle(u32),
    /// Start a run (`n_sweeps` must be set) and clock until `cfg.running` falls; responds with the
    /// number of cycles `cfg.running` was high.
    Run,
    /// Pipelined reads (one address per cycle, data two cycles later); responds with the words.
    Read(Vec<u32>),
    /// Respond with a monotonic wall-clock time in nanoseconds (for benchmarks).
    Time,
}

/// Port address of region `r`, offset `off`.
pub fn addr(r: u32, off: u32) -> u32 {
    (r << 20) | off
}

/// The configuration part of a verification script: seeds of run seed `seed`, noise load,
/// counter clear, `n_sweeps = sweeps_per_run`.
pub fn config_script(prog: &HwProgram, seed: u64, sweeps_per_run: u32) -> Vec<Cmd> {
    let mut s = Vec::new();
    for l in 0..prog.p {
        let g = Taus88::for_lane(seed, l as u32);
        for (c, w) in g.s.iter().enumerate() {
            s.push(Cmd::Write(
                addr(region::SEED, ((l as u32) << 8) | c as u32),
                *w,
            ));
        }
    }
    s.push(Cmd::Write(
        addr(region::CTRL, 0),
        ctrl_bits::NOISE_LOAD | ctrl_bits::CLEAR,
    ));
    s.push(Cmd::Write(addr(region::CTRL, 1), sweeps_per_run));
    s.push(Cmd::Idle(4));
    s
}

/// Addresses read after every sweep: all states (unit order), then per lane accumulator and
/// state saturations, per side accumulator and line saturations, then sweeps done, cycles run
/// and the status word.
pub fn observe_addrs(prog: &HwProgram) -> Vec<u32> {
    let mut v = Vec::new();
    for i in 0..prog.d {
        v.push(addr(region::STATE, operand(prog, i)));
    }
    for l in 0..prog.p as u32 {
        v.push(addr(region::CTRL, 0x100 + 2 * l));
        v.push(addr(region::CTRL, 0x101 + 2 * l));
    }
    for s in 0..prog.sides.len() as u32 {
        v.push(addr(region::CTRL, 0x200 + 2 * s));
        v.push(addr(region::CTRL, 0x201 + 2 * s));
    }
    v.push(addr(region::CTRL, 1));
    v.push(addr(region::CTRL, 2));
    v.push(addr(region::CTRL, 0));
    v
}

/// State operand (port offset) of unit `i`: `(i / P) << bbits | i % P`.
pub fn operand(prog: &HwProgram, i: usize) -> u32 {
    (((i / prog.p) << prog.dp.bbits) | (i % prog.p)) as u32
}

/// Execute `script` on a rust-hdl simulation of `top`; returns the responses in order.
/// `on_cycle` is called after every clock edge (for VCD dumps and cycle counting).
#[allow(clippy::needless_range_loop)]
pub fn run_rusthdl(
    top: &mut SubstrateTop,
    script: &[Cmd],
    mut on_cycle: impl FnMut(&SubstrateTop),
) -> Result<Vec<u64>, Error> {
    fn clk(t: &mut SubstrateTop) -> &mut Signal<In, Clock> {
        &mut t.clock
    }
    let mut out = Vec::new();
    let mut cycle = |top: &mut SubstrateTop, a: u32, d: u32, we: bool| -> Result<(), Error> {
        top.cfg.addr.next = (a as u64).to_bits();
        top.cfg.wdata.next = (d as u64).to_bits();
        top.cfg.we.next = we;
        settle(top).map_err(Error::Other)?;
        tick(top, clk).map_err(Error::Other)?;
        on_cycle(top);
        Ok(())
    };
    for c in script {
        match c {
            Cmd::Write(a, d) => cycle(top, *a, *d, true)?,
            Cmd::Idle(n) => {
                for _ in 0..*n {
                    cycle(top, 0x00F0_0000, 0, false)?;
                }
            }
            Cmd::Run => {
                cycle(top, addr(region::CTRL, 0), ctrl_bits::START, true)?;
                let mut n = 0u64;
                while top.cfg.running.val() {
                    cycle(top, 0x00F0_0000, 0, false)?;
                    n += 1;
                    if n > 1 << 31 {
                        return Err(Error::Other("run does not end".into()));
                    }
                }
                out.push(n);
            }
            Cmd::Time => {
                out.push(epoch().elapsed().as_nanos() as u64);
            }
            Cmd::Read(addrs) => {
                let n = addrs.len();
                for k in 0..n + 2 {
                    let a = if k < n { addrs[k] } else { 0x00F0_0000 };
                    // the word for address k-2 is on cfg.rdata during cycle k
                    settle(top).map_err(Error::Other)?;
                    if k >= 2 {
                        out.push(top.cfg.rdata.val().to_u64());
                    }
                    cycle(top, a, 0, false)?;
                }
            }
        }
    }
    Ok(out)
}

fn epoch() -> std::time::Instant {
    static E: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *E.get_or_init(std::time::Instant::now)
}

/// The script in the Verilator harness's text form (one command per line).
pub fn script_text(script: &[Cmd]) -> String {
    let mut s = String::new();
    for c in script {
        match c {
            Cmd::Write(a, d) => s.push_str(&format!("W {a} {d}\n")),
            Cmd::Idle(n) => s.push_str(&format!("I {n}\n")),
            Cmd::Run => s.push_str("S\n"),
            Cmd::Time => s.push_str("T\n"),
            Cmd::Read(v) => {
                s.push_str(&format!("R {}", v.len()));
                for a in v {
                    s.push_str(&format!(" {a}"));
                }
                s.push('\n');
            }
        }
    }
    s.push_str("Q\n");
    s
}

/// The C++ harness that executes [`script_text`] on the Verilated top (optionally dumping a VCD
/// to the path given as the first argument).
pub const HARNESS_CPP: &str = include_str!("substrate.cpp");

#[cfg(test)]
mod tests {
    //! The substrate top's start-up contract, driven by the port script.
    use super::*;
    use crate::rtl::program::HwProgram;
    use crate::rtl::top::{ctrl_bits, region, SubstrateTop};
    use thermo_sim::example::{random_substrate, ExampleSpec};

    /// `START` alone raises `running` on the edge after the write; written with `NOISE_LOAD`
    /// one edge later (3 lanes: one full noise pair and one serving a single lane). Both runs
    /// take the schedule's cycles and raise no noise error.
    #[test]
    fn start_with_noise_load_starts_one_cycle_later() {
        let s = thermo_sim::Substrate::from_config(&random_substrate(&ExampleSpec {
            units: 12,
            modules: 2,
            rank: 1,
            lanes: 3,
            ..Default::default()
        }))
        .expect("test substrate validates");
        let prog = HwProgram::new(&s).unwrap();
        assert_eq!(prog.p, 3);
        for (ctrl, delay) in [
            (ctrl_bits::START, 0usize),
            (ctrl_bits::START | ctrl_bits::NOISE_LOAD, 1),
        ] {
            let mut top = SubstrateTop::new(&prog);
            top.connect_all();
            let mut sc = config_script(&prog, 5, 1);
            sc.push(Cmd::Write(addr(region::CTRL, 0), ctrl));
            sc.push(Cmd::Idle(prog.cycles_per_sweep as u32 + 4));
            sc.push(Cmd::Read(vec![
                addr(region::CTRL, 0),
                addr(region::CTRL, 2),
            ]));
            let mut running = Vec::new();
            let resp = run_rusthdl(&mut top, &sc, |t| running.push(t.cfg.running.val())).unwrap();
            let start = sc.len() - 3;
            let cfg_cycles: usize = sc[..start]
                .iter()
                .map(|c| match c {
                    Cmd::Idle(n) => *n as usize,
                    _ => 1,
                })
                .sum();
            // running[i] is sampled after edge i; the START write is cycle `cfg_cycles`
            let first = running.iter().position(|&r| r).expect("the run starts");
            assert_eq!(first, cfg_cycles + delay, "control {ctrl:#x}");
            assert_eq!(
                resp,
                vec![0, prog.cycles_per_sweep],
                "status, cycles ({ctrl:#x})"
            );
        }
    }
}
