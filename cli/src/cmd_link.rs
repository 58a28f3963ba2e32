//! Link commands: `emulate` (a board behind a pseudo-terminal), `infer` (drive a board) and
//! `link-bench` (throughput, utilisation and latency of the link).

use clap::{Args, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use thermo_host::client::Client;
use thermo_host::emulator::{
    open_pty, serve, serve_verilator, spawn_emulator, spawn_verilator_emulator, ServeOptions,
};
use thermo_host::inference::{
    check_inputs, configure, infer, read_inputs, write_outputs, InferOptions,
};
use thermo_host::transport::{ftdi_latency_hint, SerialTransport};
use thermo_proto::Request;
use thermo_sim::Substrate;

/// Link commands.
#[derive(Subcommand)]
pub enum LinkCommand {
    /// Serve the board protocol on a pseudo-terminal, answering from an emulated board.
    Emulate(EmulateArgs),
    /// Stream conditioning vectors to a board (or an emulator) and collect the readouts.
    Infer(InferArgs),
    /// Measure the link: inferences per second, utilisation and latency at several line rates.
    LinkBench(LinkBenchArgs),
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Backend {
    /// The bit-exact fixed-point engine.
    Engine,
    /// The generated board Verilog (`LinkTop`: UART pins, link, substrate) in Verilator; the
    /// host's bytes go through the RTL UART at `--clock-mhz` / `--baud`.
    Verilator,
}

/// `thermo emulate`.
#[derive(Args)]
pub struct EmulateArgs {
    /// Substrate description the emulated board is built from.
    #[arg(long)]
    config: PathBuf,
    /// What computes the answers.
    #[arg(long, value_enum, default_value = "engine")]
    backend: Backend,
    /// Emulated line rate (bits per second, 10 bits per byte); 0 = unthrottled (engine only).
    /// With `--backend verilator` it sets the RTL UART's clocks per bit.
    #[arg(long, default_value_t = 3_000_000)]
    baud: u32,
    /// Clock of the emulated FPGA in MHz (`--backend verilator`; ULX3S 25, iCEBreaker 12).
    #[arg(long, default_value_t = 25.0)]
    clock_mhz: f64,
    /// Board whose link the RTL is built with (`--backend verilator`): `ulx3s-85f` (4 slots,
    /// 1024-byte payloads) or `icebreaker` (2 slots, 508-byte payloads), as `thermo bitstream`.
    #[arg(long, default_value = "ulx3s-85f")]
    board: String,
    /// Also make this path a symbolic link to the device.
    #[arg(long)]
    link: Option<PathBuf>,
    /// Exit after this many seconds without traffic.
    #[arg(long)]
    idle_exit: Option<f64>,
}

/// `thermo infer`.
#[derive(Args)]
pub struct InferArgs {
    /// Serial port of the board (/dev/ttyUSB0) or the emulator's device path.
    #[arg(long)]
    port: PathBuf,
    /// The substrate description the board was built from.
    #[arg(long)]
    model: PathBuf,
    /// Conditioning vectors, one row per inference (.csv or .npy), one value per unit (bias b).
    #[arg(long)]
    inputs: PathBuf,
    /// Readouts (time-averaged decoder units), one row per inference (.csv or .npy).
    #[arg(long)]
    out: PathBuf,
    /// Sweeps averaged per inference.
    #[arg(long, default_value_t = 200)]
    sweeps: u32,
    /// Sweeps discarded first.
    #[arg(long, default_value_t = 50)]
    burn_in: u32,
    /// Seed of the first inference (inference i uses seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Line rate.
    #[arg(long, default_value_t = 3_000_000)]
    baud: u32,
    /// Also write the model's default biases to the board first.
    #[arg(long)]
    configure: bool,
}

/// `thermo link-bench`.
#[derive(Args)]
pub struct LinkBenchArgs {
    /// Substrate description.
    #[arg(long, default_value = "examples/three-module.toml")]
    config: PathBuf,
    /// Line rates to measure.
    #[arg(long, value_delimiter = ',', default_value = "3000000,12000000")]
    baud: Vec<u32>,
    /// Inferences per measurement.
    #[arg(long, default_value_t = 64)]
    inferences: usize,
    /// Sweeps per inference.
    #[arg(long, default_value_t = 100)]
    sweeps: u32,
    /// What computes the answers (`verilator`: the board's RTL, UART included, simulated; its
    /// figures are those of the simulation, far below the hardware's).
    #[arg(long, value_enum, default_value = "engine")]
    backend: Backend,
    /// Clock of the emulated FPGA in MHz (`--backend verilator`).
    #[arg(long, default_value_t = 25.0)]
    clock_mhz: f64,
}

/// Run a link command.
pub fn run(c: LinkCommand) -> Result<(), String> {
    match c {
        LinkCommand::Emulate(a) => emulate(a),
        LinkCommand::Infer(a) => infer_cmd(a),
        LinkCommand::LinkBench(a) => link_bench(a),
    }
}

fn emulate(a: EmulateArgs) -> Result<(), String> {
    let sub = Substrate::from_file(&a.config).map_err(|e| e.to_string())?;
    let verilator = if a.backend == Backend::Verilator {
        let clock_hz = clock_hz(a.clock_mhz)?;
        if a.baud == 0 {
            return Err("--backend verilator needs a line rate (--baud > 0)".into());
        }
        eprintln!("building the board's Verilog in Verilator (cached after the first time) ...");
        let link = thermo_hdl::flow::boards::Board::parse(&a.board)
            .map_err(|e| e.to_string())?
            .link_options();
        let (exe, arg) =
            thermo_hdl::harness::link::link_top_stream_build(&sub, &link, clock_hz, a.baud as u64)
                .map_err(|e| format!("{}: {e}", a.config.display()))?;
        Some((exe, arg))
    } else {
        None
    };
    let (mut master, name, _keep) = open_pty().map_err(|e| e.to_string())?;
    serialport::SerialPort::set_timeout(&mut master, Duration::from_millis(20))
        .map_err(|e| e.to_string())?;
    if let Some(l) = &a.link {
        let _ = std::fs::remove_file(l);
        std::os::unix::fs::symlink(&name, l).map_err(|e| format!("{}: {e}", l.display()))?;
    }
    let id = thermo_proto::structure_hash(&sub);
    println!("{name}");
    eprintln!(
        "emulated board ({}): {} ({} units, {} lanes, design {id:#018x}) on {name}{} at {} baud{}; Ctrl-C to stop",
        if verilator.is_some() { "RTL in Verilator" } else { "engine" },
        sub.name,
        sub.units(),
        sub.lanes,
        a.link.as_ref().map(|l| format!(" (also {})", l.display())).unwrap_or_default(),
        a.baud,
        if verilator.is_some() { format!(", {} MHz clock", a.clock_mhz) } else { String::new() }
    );
    if let Some((exe, arg)) = verilator {
        let out = master.try_clone_native().map_err(|e| e.to_string())?;
        let idle = a.idle_exit.map(Duration::from_secs_f64);
        let st =
            serve_verilator(&exe, &arg, master, out, idle).map_err(|e| format!("{name}: {e}"))?;
        eprintln!(
            "served: {} bytes in, {} bytes out, {} clock cycles simulated ({:.1} ms of board time at {} MHz; the clock stands still while the link is idle); RTL link counters: {} UART frame errors, {} CRC errors, {} framing errors",
            st.bytes_in,
            st.bytes_out,
            st.cycles,
            st.cycles as f64 / (a.clock_mhz * 1e3),
            a.clock_mhz,
            st.frame_errors,
            st.crc_errors,
            st.framing_errors
        );
        return Ok(());
    }
    let opts = ServeOptions {
        baud: (a.baud > 0).then_some(a.baud),
        idle_exit: a.idle_exit.map(Duration::from_secs_f64),
    };
    let out = master.try_clone_native().map_err(|e| e.to_string())?;
    let status = serve(sub, master, out, opts).map_err(|e| format!("{name}: {e}"))?;
    eprintln!(
        "served: {} inferences, {} sweeps, {} CRC errors, {} framing errors, {} replays",
        status.runs, status.sweeps, status.crc_errors, status.framing_errors, status.replays
    );
    Ok(())
}

/// Clock in Hz from `--clock-mhz`, with a clear error.
fn clock_hz(mhz: f64) -> Result<u64, String> {
    if !(mhz.is_finite() && mhz > 0.0 && mhz <= 1000.0) {
        return Err(format!("--clock-mhz {mhz}: must be in (0, 1000]"));
    }
    Ok((mhz * 1e6).round() as u64)
}

fn infer_cmd(a: InferArgs) -> Result<(), String> {
    let sub = Substrate::from_file(&a.model).map_err(|e| e.to_string())?;
    let inputs = read_inputs(&a.inputs)?;
    // Bad rows are reported before the port is opened.
    check_inputs(&sub, &inputs, &a.inputs)?;
    if let Some(h) = ftdi_latency_hint(&a.port) {
        eprintln!("hint: {h}");
    }
    let t = SerialTransport::open(&a.port, a.baud).map_err(|e| e.to_string())?;
    let mut client = Client::new(t);
    if a.configure {
        // attaches (IDENTIFY, design hash) itself
        configure(&mut client, &sub)?;
    }
    let pb = indicatif::ProgressBar::new(inputs.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} inferences [{bar:30}] {per_sec} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let start = Instant::now();
    let opts = InferOptions {
        sweeps: a.sweeps,
        burn_in: a.burn_in,
        seed: a.seed,
    };
    let res = infer(&mut client, &sub, &inputs, opts, |done, _, c| {
        pb.set_position(done as u64);
        let util = c
            .stats
            .utilisation(&Default::default(), a.baud, start.elapsed().as_secs_f64());
        pb.set_message(format!("link {:.1}% payload", 100.0 * util));
    })?;
    pb.finish_and_clear();
    let wall = start.elapsed().as_secs_f64();
    write_outputs(&a.out, &res.means)?;
    let s = client.stats;
    println!(
        "{} inferences in {wall:.3} s ({:.1}/s); readout {} units each -> {}",
        inputs.len(),
        inputs.len() as f64 / wall,
        res.means.first().map_or(0, |r| r.len()),
        a.out.display()
    );
    println!(
        "link: {} requests, {} bytes out, {} bytes in, payload utilisation {:.1}% of {} baud; time scale {:.1} (measured: wall time per unit of line time); {} time-outs, {} retransmissions, {} reconnects, {} CRC errors, {} requeued",
        s.requests,
        s.bytes_sent,
        s.bytes_received,
        100.0 * s.utilisation(&Default::default(), a.baud, wall),
        a.baud,
        client.time_scale(),
        s.timeouts,
        s.retransmissions,
        s.reconnects,
        s.crc_errors,
        res.requeued
    );
    Ok(())
}

/// Inferences the latency measurement of `link-bench` runs one at a time.
const LATENCY_INFERENCES: usize = 8;
/// Runs of each `link-bench` measurement; the median is reported.
const BENCH_RUNS: usize = 3;

/// The median of `v` (sorted in place).
fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|x, y| x.total_cmp(y));
    v[v.len() / 2]
}

/// Check that utilisations measured on a paced line are at most 100%: a higher figure means the
/// line carried bytes faster than its rate, i.e. the measurement is broken, not the link fast.
fn plausible_utilisation(what: &str, baud: u32, runs: &[f64]) -> Result<(), String> {
    match runs.iter().find(|u| **u > 1.0) {
        Some(u) => Err(format!(
            "link-bench at {baud} baud: {what} measured at {:.1}% of the line rate (runs: {}); more than 100% is impossible, so this measurement is broken",
            100.0 * u,
            runs.iter()
                .map(|u| format!("{:.1}%", 100.0 * u))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        None => Ok(()),
    }
}

fn link_bench(a: LinkBenchArgs) -> Result<(), String> {
    if a.inferences < LATENCY_INFERENCES {
        return Err(format!(
            "--inferences {}: at least {LATENCY_INFERENCES} (the latency is measured on {LATENCY_INFERENCES} single inferences)",
            a.inferences
        ));
    }
    let sub = Substrate::from_file(&a.config).map_err(|e| e.to_string())?;
    let d = sub.units();
    let inputs: Vec<Vec<f64>> = (0..a.inferences)
        .map(|i| {
            sub.bias
                .iter()
                .map(|b| b * (1.0 + 0.01 * i as f64))
                .collect()
        })
        .collect();
    println!(
        "link benchmark on {} ({} units, {} readout units), emulated board, {} backend; each figure the median of {BENCH_RUNS} runs",
        sub.name,
        d,
        thermo_proto::readout_units(&sub).len(),
        match a.backend {
            Backend::Engine => "engine".to_string(),
            Backend::Verilator => format!("RTL in Verilator at {} MHz", a.clock_mhz),
        }
    );
    for &baud in &a.baud {
        let (path, h): (String, Box<dyn FnOnce()>) = match a.backend {
            Backend::Engine => {
                let (p, h) = spawn_emulator(sub.clone(), Some(baud), Duration::from_secs(2))
                    .map_err(|e| e.to_string())?;
                (p, Box::new(move || drop(h.join())))
            }
            Backend::Verilator => {
                let (p, h) = spawn_verilator_emulator(
                    &sub,
                    &Default::default(),
                    clock_hz(a.clock_mhz)?,
                    baud as u64,
                    Duration::from_secs(2),
                )
                .map_err(|e| e.to_string())?;
                (p, Box::new(move || drop(h.join())))
            }
        };
        let t = SerialTransport::open(Path::new(&path), baud).map_err(|e| e.to_string())?;
        let mut c = Client::new(t);
        let id = thermo_host::inference::attach_model(&mut c, &sub).map_err(|e| e.to_string())?;
        // Bulk: WRITE_MEM of the largest frames the board takes, window kept full.
        let codes = thermo_sim::Fixed::bias_codes(&sub, &sub.bias)?;
        let pay = (id.max_payload as usize).min(thermo_proto::MAX_PAYLOAD);
        let per = codes
            .len()
            .min(pay.saturating_sub(thermo_proto::WRITE_MEM_HEADER) / thermo_proto::WORD);
        let write = Request::WriteMem {
            space: thermo_proto::Space::Bias,
            addr: 0,
            words: codes[..per].to_vec(),
        };
        let reqs = vec![write; 64];
        let (mut bulk_util, mut bulk_wire) = (Vec::new(), Vec::new());
        for _ in 0..BENCH_RUNS {
            let before = c.stats;
            let t0 = Instant::now();
            c.transact(&reqs).map_err(|e| e.to_string())?;
            let bulk_s = t0.elapsed().as_secs_f64();
            bulk_util.push(c.stats.utilisation(&before, baud, bulk_s));
            bulk_wire.push(
                (c.stats.bytes_sent - before.bytes_sent) as f64 * 10.0 / (baud as f64 * bulk_s),
            );
        }
        plausible_utilisation("bulk WRITE_MEM payload utilisation", baud, &bulk_util)?;
        plausible_utilisation("bulk WRITE_MEM wire utilisation", baud, &bulk_wire)?;
        // Latency: one inference at a time.
        let mut lat = Vec::new();
        for i in 0..LATENCY_INFERENCES {
            let t1 = Instant::now();
            infer(
                &mut c,
                &sub,
                &inputs[i..i + 1],
                InferOptions {
                    sweeps: a.sweeps,
                    burn_in: 10,
                    seed: i as u64,
                },
                |_, _, _| {},
            )?;
            lat.push(t1.elapsed().as_secs_f64());
        }
        lat.sort_by(|x, y| x.total_cmp(y));
        // Throughput: the whole batch, slots kept busy.
        let (mut rate, mut batch_util) = (Vec::new(), Vec::new());
        for _ in 0..BENCH_RUNS {
            let before = c.stats;
            let t2 = Instant::now();
            infer(
                &mut c,
                &sub,
                &inputs,
                InferOptions {
                    sweeps: a.sweeps,
                    burn_in: 10,
                    seed: 0,
                },
                |_, _, _| {},
            )?;
            let s = t2.elapsed().as_secs_f64();
            rate.push(a.inferences as f64 / s);
            batch_util.push(c.stats.utilisation(&before, baud, s));
        }
        plausible_utilisation("batch payload utilisation", baud, &batch_util)?;
        println!(
            "{:>9} baud: bulk writes {:.1}% payload utilisation ({:.1}% wire, host to board); {:.1} inferences/s; latency median {:.2} ms (min {:.2}); batch payload utilisation {:.1}%",
            baud,
            100.0 * median(&mut bulk_util),
            100.0 * median(&mut bulk_wire),
            median(&mut rate),
            1e3 * lat[lat.len() / 2],
            1e3 * lat[0],
            100.0 * median(&mut batch_util)
        );
        drop(c);
        h();
    }
    Ok(())
}
