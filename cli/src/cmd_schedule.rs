//! `thermo schedule`: the sweep's cycle schedule of a substrate, with per-reader state replicas
//! (the present RTL) and with banked state read through a crossbar
//! (`thermo_sim::schedule::banked`), side by side.

use clap::{Args, Subcommand};
use std::path::PathBuf;
use thermo_sim::schedule::banked::{self, Banked, BusMode, Options, Order, PortRule};
use thermo_sim::schedule::Schedule;
use thermo_sim::Substrate;

/// Schedule commands.
#[derive(Subcommand)]
pub enum ScheduleCommand {
    /// Print a substrate's sweep schedule: cycles per sweep, MACs per cycle over the lanes'
    /// multipliers and the state memories, for per-reader state replicas and for banked state
    /// (one bank per lane, crossbar reads, waits where a bank's ports are taken; the RTL's row is
    /// marked);
    /// every banked schedule is checked by `banked::verify` before it is printed. Board time:
    /// sweeps and unit updates per second at `--clock-mhz`.
    Schedule(ScheduleArgs),
}

/// Arguments of `thermo schedule`.
#[derive(Args)]
pub struct ScheduleArgs {
    /// Substrate description (.toml or .json).
    #[arg(long)]
    config: PathBuf,
    /// Lanes P (default: the description's); several, comma-separated, print one row each.
    #[arg(long, value_delimiter = ',')]
    lanes: Vec<u32>,
    /// Read ports per bank.
    #[arg(long, default_value_t = banked::BANK_READ_PORTS)]
    ports: usize,
    /// Clock for the board-time figures (sweeps and unit updates per second), MHz.
    #[arg(long, default_value_t = 50.0)]
    clock_mhz: f64,
    /// Write the rows as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Run a schedule command.
pub fn run(c: ScheduleCommand) -> Result<(), String> {
    let ScheduleCommand::Schedule(a) = c;
    let mut s = Substrate::from_file(&a.config).map_err(|e| e.to_string())?;
    if !(a.clock_mhz.is_finite() && a.clock_mhz > 0.0) {
        return Err(format!(
            "--clock-mhz {}: must be a positive number",
            a.clock_mhz
        ));
    }
    if a.ports == 0 {
        return Err("--ports: a bank needs at least 1 read port".into());
    }
    let lanes = if a.lanes.is_empty() {
        vec![s.lanes]
    } else {
        a.lanes.clone()
    };
    let d = s.units();
    let n_sides = 2 * s.buses.len();
    println!(
        "{}: {d} units, {} couplings ({:.1} per unit), {n_sides} bus sides; {} read ports per bank",
        a.config.display(),
        s.col.len(),
        s.col.len() as f64 / d as f64,
        a.ports
    );
    println!(
        "| lanes | state | cycles/sweep | lane MACs/cycle / lanes | lane waits | bus waits | state RAMs | sweeps/s at {} MHz | unit updates/s |",
        a.clock_mhz
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let hz = a.clock_mhz * 1e6;
    let rate = |cycles: u64| (hz / cycles as f64, hz * d as f64 / cycles as f64);
    let mut rows = Vec::new();
    for &p in &lanes {
        if p == 0 || p as usize > d {
            return Err(format!("--lanes {p}: must be in 1..={d} (the units)"));
        }
        s.lanes = p;
        let p = p as usize;
        let rep = Schedule::replicated(&s);
        let rep_rams = (p + n_sides) * p;
        let (sw, uu) = rate(rep.cycles_per_sweep);
        println!(
            "| {p} | replicated | {} | {:.3} | 0 | 0 | {rep_rams} | {sw:.0} | {uu:.3e} |",
            rep.cycles_per_sweep,
            rep.mac_efficiency()
        );
        rows.push(serde_json::json!({
            "lanes": p, "state": "replicated", "cycles_per_sweep": rep.cycles_per_sweep,
            "mac_efficiency": rep.mac_efficiency(), "state_rams": rep_rams,
            "clock_mhz": a.clock_mhz, "sweeps_per_s": sw, "unit_updates_per_s": uu,
        }));
        for (order, bus, port_rule) in [
            (Order::Ascending, BusMode::Sides, PortRule::ByReader),
            (Order::Ascending, BusMode::Sides, PortRule::Any),
            (Order::Free, BusMode::Sides, PortRule::Any),
            (Order::Ascending, BusMode::Lanes, PortRule::Any),
            (Order::Free, BusMode::Lanes, PortRule::Any),
            (Order::Ascending, BusMode::Lanes, PortRule::ByReader),
            (Order::Ascending, BusMode::Beside, PortRule::Any),
            (Order::Ascending, BusMode::Beside, PortRule::ByReader),
        ] {
            // without buses the two bus modes are one schedule: print it once per port rule
            if bus == BusMode::Lanes && s.buses.is_empty() && port_rule == PortRule::Any {
                continue;
            }
            let opts = Options {
                ports: a.ports,
                order,
                bus,
                port_rule,
            };
            let b = Banked::new(&s, &opts);
            banked::verify(&s, &b).map_err(|e| format!("banked schedule fails its check: {e}"))?;
            let hardware = opts == Options::hardware(&s);
            let name = format!(
                "banked, {} order{}{}",
                match order {
                    Order::Ascending => "spec",
                    Order::Free => "free",
                },
                match bus {
                    BusMode::Lanes if !s.buses.is_empty() => ", lanes sum the buses",
                    BusMode::Beside => ", bus sides beside the lanes' first pass",
                    _ => "",
                },
                match port_rule {
                    PortRule::Any => "",
                    PortRule::ByReader => ", port by reader",
                }
            ) + if hardware { " (the RTL's)" } else { "" };
            let (sw, uu) = rate(b.cycles_per_sweep);
            println!(
                "| {p} | {name} | {} | {:.3} | {} | {} | {} | {sw:.0} | {uu:.3e} |",
                b.cycles_per_sweep,
                b.mac_efficiency(),
                b.lane_waits,
                b.bus_waits,
                a.ports * p
            );
            rows.push(serde_json::json!({
                "lanes": p, "state": name, "cycles_per_sweep": b.cycles_per_sweep,
                "mac_efficiency": b.mac_efficiency(), "lane_waits": b.lane_waits,
                "bus_waits": b.bus_waits, "state_rams": a.ports * p,
                "bus_phase": b.bus_phase, "unit_phase": b.unit_phase,
                "clock_mhz": a.clock_mhz, "sweeps_per_s": sw, "unit_updates_per_s": uu,
            }));
        }
    }
    if let Some(path) = &a.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
