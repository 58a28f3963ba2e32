//! Three-way verification: fixed engine, rust-hdl simulation of the substrate top, Verilator
//! running the generated Verilog — every unit's state after every sweep, the cycle count of
//! every sweep and the saturation counters, bit for bit.

use crate::harness::script::{
    config_script, observe_addrs, run_rusthdl, script_text, Cmd, HARNESS_CPP,
};
use crate::rtl::program::HwProgram;
use crate::rtl::top::{substrate_verilog, SubstrateTop};
use crate::Error;
use rust_hdl::prelude::*;
use std::path::Path;
use thermo_sim::engine::{FixedEngine, Observe, Saturation};
use thermo_sim::Substrate;

/// Which simulators to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sims {
    /// rust-hdl's simulation kernel.
    pub rusthdl: bool,
    /// Verilator on the generated Verilog.
    pub verilator: bool,
}

impl Default for Sims {
    fn default() -> Self {
        Sims {
            rusthdl: true,
            verilator: true,
        }
    }
}

/// What a verification compared.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Units D.
    pub units: usize,
    /// Lanes P.
    pub lanes: usize,
    /// Sweeps compared.
    pub sweeps: u64,
    /// Cycles of each sweep (equal to the schedule's).
    pub cycles_per_sweep: u64,
    /// State comparisons made per simulator (`units * sweeps`).
    pub states_compared: u64,
    /// The rust-hdl simulation was compared.
    pub rusthdl: bool,
    /// Verilator was compared.
    pub verilator: bool,
    /// Engine saturation totals at the end (acc, state, bus).
    pub saturation: Saturation,
    /// Wall time of the rust-hdl simulation, seconds.
    pub rusthdl_seconds: f64,
    /// Wall time of the Verilator run (excluding the build), seconds.
    pub verilator_seconds: f64,
    /// Wall time of the Verilator build (0 when cached), seconds.
    pub verilator_build_seconds: f64,
    /// Wall time of the fixed engine, seconds.
    pub engine_seconds: f64,
}

/// Where `verify` puts Verilator's full RTL trace when asked for the dump `p`: `p` with the
/// extension `rtl.vcd`.
pub fn rtl_vcd_path(p: &Path) -> std::path::PathBuf {
    p.with_extension("rtl.vcd")
}

/// Write the hardware's unit states after every sweep (read back through the port) as a VCD in
/// exactly the layout of `thermo simulate --vcd` (`substrate.<module>.x<n>`, time = cycles), so
/// `thermo vcd-diff` can hold it against the engine's dump, plus its GTKWave save file
/// (`.gtkw`: one group per module, states as fixed-point decimals).
fn write_state_dump(
    s: &Substrate,
    prog: &HwProgram,
    res: &[(u64, Vec<u64>)],
    p: &Path,
) -> Result<(), Error> {
    use thermo_sim::io::{gtkw_save, TraceKind, VcdTrace};
    let kind = TraceKind::Fixed {
        bits: s.formats.state.bits,
        frac: s.formats.state.frac,
    };
    let e = |x: thermo_sim::Error| Error::Io(p.into(), x.to_string());
    let mut tr = VcdTrace::create(p, s, kind).map_err(e)?;
    let zeros = vec![0i16; prog.d];
    let reals = vec![0.0; prog.d];
    tr.record(0, 0, &reals, Some(&zeros)).map_err(e)?;
    for (sw, (_, words)) in res.iter().enumerate() {
        let codes: Vec<i16> = words[..prog.d].iter().map(|&v| v as u16 as i16).collect();
        tr.record(
            (sw as u64 + 1) * prog.cycles_per_sweep,
            sw as u64 + 1,
            &reals,
            Some(&codes),
        )
        .map_err(e)?;
    }
    let end = tr.finish().map_err(e)?;
    let g = p.with_extension("gtkw");
    std::fs::write(&g, gtkw_save(p, s, kind, "substrate", end))
        .map_err(|x| Error::Io(g.clone(), x.to_string()))
}

/// GTKWave save file for Verilator's RTL trace (`verify --vcd`): the sweep controller, then one
/// group per lane (issue, operand address, write-back with the new state as a fixed-point
/// decimal, saturation counters) and per bus side (delivered lines as fixed-point decimals).
pub fn rtl_gtkw(s: &Substrate, prog: &HwProgram, rtl_vcd: &Path) -> String {
    const DEC: u64 = 1 << 2;
    const RJUSTIFY: u64 = 1 << 5;
    const BLANK: u64 = 1 << 9;
    const SIGNED: u64 = 1 << 10;
    const GRP_BEGIN: u64 = 1 << 23;
    const GRP_END: u64 = 1 << 24;
    const FPDECSHIFT: u64 = 1 << 30;
    let abs = std::fs::canonicalize(rtl_vcd).unwrap_or_else(|_| rtl_vcd.to_path_buf());
    let mut o = String::new();
    o.push_str("[*] thermo: RTL trace of the substrate top (Verilator)\n");
    o.push_str(&format!("[dumpfile] \"{}\"\n", abs.display()));
    o.push_str("[timestart] 0\n[size] 1400 900\n[sst_width] 240\n[signals_width] 300\n");
    let dec = |o: &mut String, sig: &str| o.push_str(&format!("@{:x}\n{sig}\n", DEC | RJUSTIFY));
    let bit = |o: &mut String, sig: &str| o.push_str(&format!("@{:x}\n{sig}\n", 0x28u64));
    let fixed = |o: &mut String, sig: &str, frac: u32| {
        o.push_str(&format!(
            "@{:x}\n[fpshift_count] {frac}\n{sig}\n",
            DEC | SIGNED | RJUSTIFY | FPDECSHIFT
        ))
    };
    let t = "TOP.top.";
    o.push_str(&format!("@{:x}\n-controller\n", GRP_BEGIN | BLANK));
    bit(&mut o, &format!("{t}cfg$running"));
    dec(&mut o, &format!("{t}ctrl$c[31:0]"));
    bit(&mut o, &format!("{t}ctrl$rbuf"));
    dec(&mut o, &format!("{t}ctrl$sweeps[31:0]"));
    o.push_str(&format!("@{:x}\n-controller\n", GRP_END | BLANK));
    for l in 0..prog.p {
        let g = format!("lane {l}");
        o.push_str(&format!("@{:x}\n-{g}\n", GRP_BEGIN | BLANK));
        bit(&mut o, &format!("{t}lanes${l}$issue"));
        dec(&mut o, &format!("{t}lanes${l}$rd_q[15:0]"));
        dec(&mut o, &format!("{t}lanes${l}$line_sel[15:0]"));
        bit(&mut o, &format!("{t}lanes${l}$wr_en"));
        dec(&mut o, &format!("{t}lanes${l}$wr_q[15:0]"));
        fixed(
            &mut o,
            &format!("{t}lanes${l}$wr_data[15:0]"),
            s.formats.state.frac,
        );
        dec(&mut o, &format!("{t}lanes${l}$cnt_acc[31:0]"));
        dec(&mut o, &format!("{t}lanes${l}$cnt_state[31:0]"));
        o.push_str(&format!("@{:x}\n-{g}\n", GRP_END | BLANK));
    }
    for (i, sd) in prog.sides.iter().enumerate() {
        let g = format!(
            "bus {} {} side",
            sd.bus,
            if sd.encoder { "encoder" } else { "decoder" }
        );
        o.push_str(&format!("@{:x}\n-{g}\n", GRP_BEGIN | BLANK));
        bit(&mut o, &format!("{t}sides${i}$line_we"));
        dec(&mut o, &format!("{t}sides${i}$line_idx[15:0]"));
        fixed(
            &mut o,
            &format!("{t}sides${i}$line_val[15:0]"),
            s.formats.bus.frac,
        );
        dec(&mut o, &format!("{t}sides${i}$cnt_bus[31:0]"));
        o.push_str(&format!("@{:x}\n-{g}\n", GRP_END | BLANK));
    }
    o
}

/// One sweep's observation parsed from the read-back words.
struct Obs {
    states: Vec<i16>,
    acc: u64,
    state: u64,
    bus: u64,
    sweeps: u64,
    status: u64,
}

fn parse(prog: &HwProgram, w: &[u64]) -> Obs {
    let d = prog.d;
    let states = w[..d].iter().map(|&v| v as u16 as i16).collect();
    let mut k = d;
    let (mut acc, mut state, mut bus) = (0, 0, 0);
    for _ in 0..prog.p {
        acc += w[k];
        state += w[k + 1];
        k += 2;
    }
    for _ in 0..prog.sides.len() {
        acc += w[k];
        bus += w[k + 1];
        k += 2;
    }
    Obs {
        states,
        acc,
        state,
        bus,
        sweeps: w[k],
        status: w[k + 2],
    }
}

/// The verification script: configuration, `extra` commands, then per sweep a one-sweep run and
/// the read-back.
pub fn verify_script(prog: &HwProgram, seed: u64, sweeps: u64, extra: &[Cmd]) -> Vec<Cmd> {
    let mut sc = config_script(prog, seed, 1);
    sc.extend_from_slice(extra);
    let obs = observe_addrs(prog);
    for _ in 0..sweeps {
        sc.push(Cmd::Run);
        sc.push(Cmd::Read(obs.clone()));
    }
    sc
}

/// Per sweep: its cycles and the read-back words.
type SweepWords = Vec<(u64, Vec<u64>)>;

/// Split responses into per-sweep `(cycles, words)`.
fn per_sweep(prog: &HwProgram, resp: &[u64], sweeps: u64) -> Result<SweepWords, Error> {
    let n = observe_addrs(prog).len();
    if resp.len() != sweeps as usize * (n + 1) {
        return Err(Error::Other(format!(
            "expected {} response words, got {}",
            sweeps as usize * (n + 1),
            resp.len()
        )));
    }
    Ok(resp
        .chunks(n + 1)
        .map(|c| (c[0], c[1..].to_vec()))
        .collect())
}

/// Run the fixed engine, the rust-hdl simulation and Verilator (as selected) for `sweeps`
/// sweeps of noise seed `seed` and compare every state after every sweep, the cycles of every
/// sweep against `Schedule::cycles_per_sweep`, and the saturation counters. `vcd`: write the
/// Verilator run's VCD there. The first difference is an error naming sweep, unit, lane and the
/// values.
pub fn verify(
    s: &Substrate,
    sweeps: u64,
    seed: u64,
    sims: Sims,
    vcd: Option<&Path>,
) -> Result<VerifyReport, Error> {
    verify_with(s, sweeps, seed, sims, vcd, &[])
}

/// [`verify`] with extra port commands `tamper` issued after the configuration (negative
/// controls: a changed memory word must be reported as a mismatch).
#[allow(clippy::needless_range_loop)]
pub fn verify_with(
    s: &Substrate,
    sweeps: u64,
    seed: u64,
    sims: Sims,
    vcd: Option<&Path>,
    tamper: &[Cmd],
) -> Result<VerifyReport, Error> {
    let prog = HwProgram::new(s)?;
    let script = verify_script(&prog, seed, sweeps, tamper);
    let mut rep = VerifyReport {
        units: prog.d,
        lanes: prog.p,
        sweeps,
        cycles_per_sweep: prog.cycles_per_sweep,
        rusthdl: sims.rusthdl,
        verilator: sims.verilator,
        ..Default::default()
    };
    // engine
    let t0 = std::time::Instant::now();
    let mut eng = FixedEngine::fixed(s, seed);
    let mut expect = Vec::new();
    for _ in 0..sweeps {
        eng.sweep();
        let mut sat = eng.bus_saturation;
        for m in &eng.saturation {
            sat.add(m);
        }
        expect.push((eng.x.clone(), sat));
    }
    rep.engine_seconds = t0.elapsed().as_secs_f64();
    rep.saturation = expect.last().map(|e| e.1).unwrap_or_default();
    let mut results: Vec<(&str, SweepWords)> = Vec::new();
    if sims.rusthdl {
        let t0 = std::time::Instant::now();
        let mut top = SubstrateTop::new(&prog);
        top.connect_all();
        check_all(&top).map_err(|e| Error::Check(format!("{e:?}")))?;
        let resp = run_rusthdl(&mut top, &script, |_| {})?;
        rep.rusthdl_seconds = t0.elapsed().as_secs_f64();
        results.push(("rust-hdl", per_sweep(&prog, &resp, sweeps)?));
    }
    if sims.verilator {
        let v = substrate_verilog(s)?;
        let t0 = std::time::Instant::now();
        let exe = crate::harness::verilog::verilator_build(&v, HARNESS_CPP, vcd.is_some(), false)?;
        rep.verilator_build_seconds = t0.elapsed().as_secs_f64();
        let t0 = std::time::Instant::now();
        let args = vec![vcd
            .map(|p| rtl_vcd_path(p).display().to_string())
            .unwrap_or_default()];
        let out = crate::harness::verilog::run_harness(&exe, &args, &script_text(&script))?;
        rep.verilator_seconds = t0.elapsed().as_secs_f64();
        let resp: Vec<u64> = out
            .lines()
            .map(|l| {
                l.trim()
                    .parse::<u64>()
                    .map_err(|e| Error::Tool(format!("harness output {l:?}: {e}")))
            })
            .collect::<Result<_, _>>()?;
        results.push(("verilator", per_sweep(&prog, &resp, sweeps)?));
    }
    if let (Some(p), Some((_, res))) = (vcd, results.last()) {
        write_state_dump(s, &prog, res, p)?;
        if sims.verilator {
            let r = rtl_vcd_path(p);
            let g = r.with_extension("gtkw");
            std::fs::write(&g, rtl_gtkw(s, &prog, &r))
                .map_err(|e| Error::Io(g.clone(), e.to_string()))?;
        }
    }
    // compare
    for sw in 0..sweeps as usize {
        let (ex, esat) = &expect[sw];
        for (name, res) in &results {
            let (cyc, words) = &res[sw];
            if *cyc != prog.schedule.cycles_per_sweep {
                return Err(Error::Mismatch(format!(
                    "sweep {sw}: {name} took {cyc} cycles, schedule says {}",
                    prog.schedule.cycles_per_sweep
                )));
            }
            let o = parse(&prog, words);
            if o.status & 2 != 0 {
                return Err(Error::Mismatch(format!(
                    "sweep {sw}: {name} reports a noise underflow"
                )));
            }
            if o.sweeps != sw as u64 + 1 {
                return Err(Error::Mismatch(format!(
                    "sweep {sw}: {name} counted {} sweeps",
                    o.sweeps
                )));
            }
            for i in 0..prog.d {
                if o.states[i] != ex[i] {
                    let others: Vec<String> = results
                        .iter()
                        .map(|(n, r)| format!("{n} {}", r[sw].1[i] as u16 as i16))
                        .collect();
                    return Err(Error::Mismatch(format!(
                        "first difference: sweep {sw}, unit {i}, lane {}: engine {}, {}",
                        i % prog.p,
                        ex[i],
                        others.join(", ")
                    )));
                }
            }
            if (o.acc, o.state, o.bus) != (esat.acc, esat.state, esat.bus) {
                return Err(Error::Mismatch(format!(
                    "sweep {sw}: saturation counters differ: engine acc/state/bus {}/{}/{}, {name} {}/{}/{}",
                    esat.acc, esat.state, esat.bus, o.acc, o.state, o.bus
                )));
            }
        }
    }
    rep.states_compared = sweeps * prog.d as u64;
    Ok(rep)
}

/// Readout accumulators and back-to-back runs: zero the readout words through the port, run
/// `burn_in` sweeps with accumulation off and then `sweeps` with it on, each as *one* run of
/// consecutive sweeps; compare the cycles of each run (`n * cycles_per_sweep`), the final states
/// and every unit's readout word (the 32-bit wrapping sum of its states over the accumulated
/// sweeps) with the fixed engine. Returns the number of readout words compared per simulator.
pub fn verify_readout(
    s: &Substrate,
    burn_in: u64,
    sweeps: u64,
    seed: u64,
    sims: Sims,
) -> Result<usize, Error> {
    verify_readout_observed(s, burn_in, sweeps, seed, sims, Observe::State)
}

/// [`verify_readout`] with the accumulators summing what `observe` reads of each written state:
/// the state, or with [`Observe::Activation`] its activation `rho` (readout switched on with
/// `READOUT_ON | READOUT_RHO`), against the engine's [`Observe::of`] of its states.
pub fn verify_readout_observed(
    s: &Substrate,
    burn_in: u64,
    sweeps: u64,
    seed: u64,
    sims: Sims,
    observe: Observe,
) -> Result<usize, Error> {
    readout_check(s, burn_in, sweeps, seed, sims, observe, None)
}

/// [`verify_readout`] in Verilator on the substrate's Verilog with its memory contents in
/// `$readmemh` files ([`crate::rtl::mem::with_memory_files`], as `thermo bitstream` writes it),
/// the files written to `dir` and named by their absolute paths (Verilator reads them when the
/// simulation starts). Returns the readout words compared and the number of memory files.
pub fn verify_readout_memory_files(
    s: &Substrate,
    burn_in: u64,
    sweeps: u64,
    seed: u64,
    dir: &Path,
) -> Result<(usize, usize), Error> {
    let sims = Sims {
        rusthdl: false,
        verilator: true,
    };
    let files = std::cell::Cell::new(0);
    let n = readout_check(
        s,
        burn_in,
        sweeps,
        seed,
        sims,
        Observe::State,
        Some((dir, &files)),
    )?;
    Ok((n, files.get()))
}

/// The substrate's Verilog with memory files written to `dir`, referenced by absolute path;
/// the number of files into `count`.
fn verilog_with_files(
    s: &Substrate,
    dir: &Path,
    count: &std::cell::Cell<usize>,
) -> Result<String, Error> {
    let (v, files) = crate::rtl::mem::with_memory_files(|| substrate_verilog(s));
    let mut v = v?;
    std::fs::create_dir_all(dir).map_err(|e| Error::Tool(format!("{}: {e}", dir.display())))?;
    for (name, text) in &files {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| Error::Tool(format!("{}: {e}", p.display())))?;
        v = v.replace(
            &format!("$readmemh(\"{name}\""),
            &format!("$readmemh(\"{}\"", p.display()),
        );
    }
    count.set(files.len());
    Ok(v)
}

fn readout_check(
    s: &Substrate,
    burn_in: u64,
    sweeps: u64,
    seed: u64,
    sims: Sims,
    observe: Observe,
    files: Option<(&Path, &std::cell::Cell<usize>)>,
) -> Result<usize, Error> {
    use crate::harness::script::{addr, operand};
    use crate::rtl::top::{ctrl_bits, region};
    let prog = HwProgram::new(s)?;
    let mut sc = config_script(&prog, seed, burn_in.max(1) as u32);
    for i in 0..prog.d {
        sc.push(Cmd::Write(addr(region::READOUT, operand(&prog, i)), 0));
    }
    if burn_in > 0 {
        sc.push(Cmd::Run);
    }
    sc.push(Cmd::Write(addr(region::CTRL, 1), sweeps as u32));
    let on = match observe {
        Observe::State => ctrl_bits::READOUT_ON,
        Observe::Activation => ctrl_bits::READOUT_ON | ctrl_bits::READOUT_RHO,
    };
    sc.push(Cmd::Write(addr(region::CTRL, 0), on));
    sc.push(Cmd::Run);
    sc.push(Cmd::Write(addr(region::CTRL, 0), ctrl_bits::READOUT_OFF));
    let mut reads: Vec<u32> = (0..prog.d)
        .map(|i| addr(region::READOUT, operand(&prog, i)))
        .collect();
    reads.extend((0..prog.d).map(|i| addr(region::STATE, operand(&prog, i))));
    sc.push(Cmd::Read(reads));
    // engine
    let mut eng = FixedEngine::fixed(s, seed);
    for _ in 0..burn_in {
        eng.sweep();
    }
    let mut sum = vec![0u32; prog.d];
    for _ in 0..sweeps {
        eng.sweep();
        for (u, (a, &x)) in sum.iter_mut().zip(&eng.x).enumerate() {
            let m = eng.prog.module_of(u);
            *a = a.wrapping_add(observe.of(&eng.prog.arith, m, x) as i32 as u32);
        }
    }
    let mut outs: Vec<(&str, Vec<u64>)> = Vec::new();
    if sims.rusthdl {
        let mut top = SubstrateTop::new(&prog);
        top.connect_all();
        outs.push(("rust-hdl", run_rusthdl(&mut top, &sc, |_| {})?));
    }
    if sims.verilator {
        let v = match files {
            None => substrate_verilog(s)?,
            Some((dir, count)) => verilog_with_files(s, dir, count)?,
        };
        let exe = crate::harness::verilog::verilator_build(&v, HARNESS_CPP, false, false)?;
        let out = crate::harness::verilog::run_harness(&exe, &[String::new()], &script_text(&sc))?;
        let w = out
            .lines()
            .map(|l| {
                l.trim()
                    .parse::<u64>()
                    .map_err(|e| Error::Tool(format!("harness output {l:?}: {e}")))
            })
            .collect::<Result<Vec<u64>, _>>()?;
        outs.push(("verilator", w));
    }
    let cps = prog.schedule.cycles_per_sweep;
    for (name, w) in outs {
        let mut k = 0;
        if burn_in > 0 {
            if w[0] != burn_in * cps {
                return Err(Error::Mismatch(format!(
                    "{name}: burn-in run of {burn_in} sweeps took {} cycles, schedule says {}",
                    w[0],
                    burn_in * cps
                )));
            }
            k = 1;
        }
        if w[k] != sweeps * cps {
            return Err(Error::Mismatch(format!(
                "{name}: run of {sweeps} sweeps took {} cycles, schedule says {}",
                w[k],
                sweeps * cps
            )));
        }
        let rd = &w[k + 1..];
        for i in 0..prog.d {
            if rd[prog.d + i] as u16 as i16 != eng.x[i] {
                return Err(Error::Mismatch(format!(
                    "{name}: after {} sweeps unit {i} (lane {}): engine {}, hardware {}",
                    burn_in + sweeps,
                    i % prog.p,
                    eng.x[i],
                    rd[prog.d + i] as u16 as i16
                )));
            }
            if rd[i] as u32 != sum[i] {
                return Err(Error::Mismatch(format!(
                    "{name}: readout of unit {i} (lane {}): engine sum {}, hardware {}",
                    i % prog.p,
                    sum[i] as i32,
                    rd[i] as u32 as i32
                )));
            }
        }
    }
    Ok(prog.d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_example_three_way_few_sweeps() {
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let s = Substrate::from_file(&root.join("examples/three-module.toml")).unwrap();
        let rep = verify(&s, 3, 1, Sims::default(), None).unwrap();
        eprintln!("{rep:?}");
        // Both simulators ran and every unit was compared at every sweep.
        assert!(rep.rusthdl && rep.verilator, "{rep:?}");
        assert_eq!((rep.units, rep.sweeps), (s.units(), 3));
        assert_eq!(rep.states_compared, 3 * s.units() as u64);
        assert_eq!(
            rep.cycles_per_sweep,
            thermo_sim::schedule::Schedule::new(&s).cycles_per_sweep
        );
    }
}

#[cfg(test)]
mod negative {
    use super::*;
    use crate::harness::script::addr;
    use crate::rtl::top::{ctrl_bits, region};
    use thermo_sim::example::{random_substrate, ExampleSpec};

    /// Negative controls: one changed bias word, one changed instruction (coefficient), one
    /// changed bus gain, one changed taus88 seed word (reloaded into the noise pair) — each
    /// must be reported at the right sweep, unit and lane, by both simulators' comparison.
    #[test]
    fn tampered_hardware_is_caught() {
        tampers_are_caught(Sims {
            rusthdl: true,
            verilator: false,
        });
    }

    /// The same negative controls in Verilator.
    #[test]
    fn tampered_hardware_is_caught_verilator() {
        tampers_are_caught(Sims {
            rusthdl: false,
            verilator: true,
        });
    }

    fn tampers_are_caught(sims: Sims) {
        let cfg = random_substrate(&ExampleSpec {
            units: 24,
            modules: 3,
            rank: 2,
            lanes: 3,
            degree: 4,
            seed: 9,
            ..Default::default()
        });
        let s = Substrate::from_config(&cfg).unwrap();
        let prog = HwProgram::new(&s).unwrap();
        // lane 1's third unit (unit 7): bias + 1000
        let h = prog.lanes[1].bias[2].wrapping_add(1000 << 10);
        let e = verify_with(
            &s,
            3,
            1,
            sims,
            None,
            &[Cmd::Write(prog.mem_addr(region::BIAS, 1, 2), h)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sweep 0, unit 7, lane 1"), "{e}");
        // lane 2's first instruction (unit 2's self coefficient)
        let w = prog.lanes[2].instr[0] ^ 0x0100;
        let e = verify_with(
            &s,
            3,
            1,
            sims,
            None,
            &[Cmd::Write(prog.mem_addr(region::INSTR, 2, 0), w)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("unit 2, lane 2"), "{e}");
        // bus side 0 gain of rank 0: lines differ from sweep 1 on (states are 0 in sweep 0)
        let e = verify_with(
            &s,
            3,
            1,
            sims,
            None,
            &[Cmd::Write(addr(region::GAIN, 0), 0x1000)],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sweep 1,"), "{e}");
        // lane 1's first taus88 seed word, reloaded: its noise (and nothing else) differs
        let seed = thermo_sim::noise::Taus88::for_lane(1, 1).s[0] ^ 0x100;
        let e = verify_with(
            &s,
            3,
            1,
            sims,
            None,
            &[
                Cmd::Write(addr(region::SEED, 1 << 8), seed),
                Cmd::Write(addr(region::CTRL, 0), ctrl_bits::NOISE_LOAD),
                Cmd::Idle(4),
            ],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sweep 0,") && e.contains("lane 1"), "{e}");
    }

    /// The configuration port reaches instruction words beyond 4,096 (the 12-bit index of
    /// earlier builds): one lane with more than 4,096 instruction words, a coupling of the
    /// last unit (word > 4,096) changed through the port is reported at that unit, in rust-hdl
    /// and in Verilator; writing the same word back leaves the run equal to the engine.
    #[test]
    fn tamper_beyond_4096_instruction_words() {
        let cfg = thermo_sim::example::long_lane_config();
        let s = Substrate::from_config(&cfg).unwrap();
        let prog = HwProgram::new(&s).unwrap();
        let instr = &prog.lanes[0].instr;
        let x = instr.len() - 3;
        assert!(x >= 4096, "{} instruction words", instr.len());
        assert_eq!(prog.port_reach(), 1 << 16);
        let sims = Sims {
            rusthdl: true,
            verilator: true,
        };
        let same = Cmd::Write(prog.mem_addr(region::INSTR, 0, x), instr[x]);
        verify_with(&s, 2, 1, sims, None, &[same]).unwrap();
        let w = instr[x] ^ 0x0100;
        let e = verify_with(
            &s,
            2,
            1,
            sims,
            None,
            &[Cmd::Write(prog.mem_addr(region::INSTR, 0, x), w)],
        )
        .unwrap_err()
        .to_string();
        // a coupling: states are 0 in sweep 0, so the change shows in sweep 1
        assert!(e.contains("sweep 1, unit 95, lane 0"), "{e}");
    }
}

#[cfg(test)]
mod small {
    use super::*;
    use thermo_sim::example::{random_substrate, ExampleSpec};

    #[test]
    fn small_configs_all_ranks_rusthdl() {
        for rank in [0usize, 1, 2] {
            let cfg = random_substrate(&ExampleSpec {
                units: 24,
                modules: 3,
                rank,
                lanes: 3,
                degree: 4,
                seed: 5,
                ..Default::default()
            });
            let s = Substrate::from_config(&cfg).unwrap();
            let r = verify(
                &s,
                4,
                1,
                Sims {
                    rusthdl: true,
                    verilator: false,
                },
                None,
            );
            let r = r.unwrap_or_else(|e| panic!("rank {rank}: engine and rust-hdl differ: {e}"));
            assert!(r.rusthdl && !r.verilator, "rank {rank}: {r:?}");
            assert_eq!(r.sweeps, 4, "rank {rank}");
            assert_eq!(r.states_compared, 24 * 4, "rank {rank}");
        }
    }
}
