//! The emulated board: serves the protocol of `thermo-proto` from the fixed-point engine, bit for
//! bit what the hardware computes, behind a pseudo-terminal (`thermo emulate`).
//!
//! The request handling ([`Board`]) is separate from the byte pump ([`serve`]) so that it can be
//! tested without a terminal. Inferences run on a worker thread so the link never waits for them.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use thermo_proto::{
    design_hash, encode_frame, readout_units, reply_kind, ErrorCode, Frame, FrameDecoder, Identity,
    Opcode, Readout, RunRequest, SlotState, Space, Status, ERROR_KIND, MAX_PAYLOAD, MAX_RUN_SWEEPS,
    REPLAY_WINDOW, SLOTS, VERSION,
};
use thermo_sim::engine::Saturation;
use thermo_sim::{FixedEngine, Substrate};

/// One inference computed directly on the fixed engine: state from zero, lanes started from
/// `run.key` (`Taus88::from_key`), biases `cond` (accumulator codes), `burn_in` sweeps discarded, then the readout
/// units' state codes summed over `sweeps` sweeps. This is the board's definition of RUN.
pub fn run_inference(
    s: &Substrate,
    cond: &[i32],
    run: &RunRequest,
    readout: &[usize],
) -> (Vec<i32>, Saturation, u64) {
    let mut e = FixedEngine::fixed(s, 0);
    for (l, lane) in e.lanes.iter_mut().enumerate() {
        lane.rng = thermo_sim::noise::Taus88::from_key(run.key, l as u32);
    }
    e.prog.bias = cond.to_vec();
    e.prog.refresh_bounds();
    for _ in 0..run.burn_in {
        e.sweep();
    }
    let mut sums = vec![0i64; readout.len()];
    for _ in 0..run.sweeps {
        e.sweep();
        for (acc, &u) in sums.iter_mut().zip(readout) {
            *acc += e.x[u] as i64;
        }
    }
    let sums = sums.into_iter().map(|v| v as i32).collect();
    (sums, e.saturation_total(), e.sweeps)
}

/// Bias codes of a conditioning vector `b` (energy units): `eta b` in the accumulator format.
/// Errors name the unit and the limit.
pub fn conditioning_codes(s: &Substrate, b: &[f64]) -> Result<Vec<i32>, String> {
    if b.len() != s.units() {
        return Err(format!(
            "conditioning vector has {} values, the substrate has {} units",
            b.len(),
            s.units()
        ));
    }
    let q = s.formats.acc();
    b.iter()
        .enumerate()
        .map(|(i, &v)| {
            if !v.is_finite() {
                return Err(format!("unit {i}: value {v} is not finite"));
            }
            let (c, sat) = q.quantize(s.eta * v);
            if sat {
                return Err(format!(
                    "unit {i}: bias {v} gives eta*b = {} outside the accumulator format {} ({} .. {})",
                    s.eta * v,
                    q.name(),
                    q.min_value() / s.eta,
                    q.max_value() / s.eta
                ));
            }
            Ok(c as i32)
        })
        .collect()
}

#[derive(Clone, Debug)]
struct Slot {
    cond: Vec<i32>,
    state: SlotState,
    run: Option<RunRequest>,
    result: Vec<i32>,
    sweeps: u32,
}

/// The board's state, shared between the link and the worker.
#[derive(Clone)]
pub struct Board {
    sub: Substrate,
    readout: Vec<usize>,
    identity: Identity,
    default_bias: Vec<i32>,
    couplings: Vec<i16>,
    slots: Vec<Slot>,
    queue: VecDeque<u8>,
    status: Status,
    expect: Option<u8>,
    replay: VecDeque<(u8, u32, Vec<u8>)>,
    /// Requests dropped because their sequence number was neither the next nor a replay.
    pub out_of_order: u64,
}

impl Board {
    /// A board configured with `sub`.
    pub fn new(sub: Substrate) -> Self {
        let readout = readout_units(&sub);
        let identity = Identity {
            version: VERSION,
            design_hash: design_hash(&sub),
            units: sub.units() as u32,
            readout_units: readout.len() as u32,
            lanes: sub.lanes as u16,
            slots: SLOTS,
            state_frac: sub.formats.state.frac as u8,
            max_payload: MAX_PAYLOAD as u16,
        };
        let prog = thermo_sim::engine::Program::new(&sub, thermo_sim::engine::Fixed::new(&sub));
        let default_bias = prog.bias.clone();
        let slot = Slot {
            cond: default_bias.clone(),
            state: SlotState::Idle,
            run: None,
            result: Vec::new(),
            sweeps: 0,
        };
        Board {
            readout,
            identity,
            slots: vec![slot; SLOTS as usize],
            default_bias,
            couplings: prog.coef,
            queue: VecDeque::new(),
            status: Status::default(),
            expect: None,
            replay: VecDeque::new(),
            out_of_order: 0,
            sub,
        }
    }

    /// What IDENTIFY answers.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Handle one checked frame; returns the reply bytes for the wire, if any.
    pub fn handle(&mut self, f: &Frame) -> Option<Vec<u8>> {
        let digest = thermo_proto::crc::crc32(&[&[f.kind][..], &f.payload].concat());
        let is_identify = f.kind == Opcode::Identify as u8;
        if !is_identify {
            if let Some(exp) = self.expect {
                if f.seq != exp {
                    if let Some((_, _, r)) = self
                        .replay
                        .iter()
                        .find(|(s, d, _)| *s == f.seq && *d == digest)
                    {
                        self.status.replays += 1;
                        return Some(r.clone());
                    }
                    self.out_of_order += 1;
                    return None;
                }
            }
        }
        self.expect = Some(f.seq.wrapping_add(1));
        let reply = match self.execute(f) {
            Ok((kind, payload)) => encode_frame(f.seq, kind, &payload),
            Err(code) => encode_frame(f.seq, ERROR_KIND, &[f.kind, code as u8]),
        };
        self.replay.retain(|(s, _, _)| *s != f.seq);
        self.replay.push_back((f.seq, digest, reply.clone()));
        while self.replay.len() > REPLAY_WINDOW {
            self.replay.pop_front();
        }
        Some(reply)
    }

    fn execute(&mut self, f: &Frame) -> Result<(u8, Vec<u8>), ErrorCode> {
        let op = Opcode::from_u8(f.kind).ok_or(ErrorCode::UnknownCommand)?;
        let p = &f.payload;
        let ok = |payload: Vec<u8>| Ok((reply_kind(op), payload));
        match op {
            Opcode::Identify => ok(self.identity.encode()),
            Opcode::Status => ok(self.status.encode()),
            Opcode::Reset => {
                *self = Board::new(self.sub.clone());
                // Keep the sequence so the reply to this RESET can be replayed.
                self.expect = Some(f.seq.wrapping_add(1));
                ok(Vec::new())
            }
            Opcode::WriteMem => {
                if p.len() < 5 {
                    return Err(ErrorCode::BadLength);
                }
                let space = Space::from_u8(p[0]).ok_or(ErrorCode::BadAddress)?;
                let addr = u32::from_le_bytes([p[1], p[2], p[3], p[4]]) as usize;
                let data = &p[5..];
                if space != Space::Bias || data.len() % 4 != 0 {
                    return Err(ErrorCode::BadAddress);
                }
                let n = data.len() / 4;
                if addr + n > self.default_bias.len() {
                    return Err(ErrorCode::BadAddress);
                }
                for (k, c) in data.chunks(4).enumerate() {
                    self.default_bias[addr + k] = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                ok((n as u32).to_le_bytes().to_vec())
            }
            Opcode::ReadMem => {
                if p.len() != 7 {
                    return Err(ErrorCode::BadLength);
                }
                let space = Space::from_u8(p[0]).ok_or(ErrorCode::BadAddress)?;
                let addr = u32::from_le_bytes([p[1], p[2], p[3], p[4]]) as usize;
                let count = u16::from_le_bytes([p[5], p[6]]) as usize;
                if count * space.width() > MAX_PAYLOAD {
                    return Err(ErrorCode::BadLength);
                }
                let mut out = Vec::new();
                match space {
                    Space::Bias => {
                        let v = self
                            .default_bias
                            .get(addr..addr + count)
                            .ok_or(ErrorCode::BadAddress)?;
                        v.iter().for_each(|x| out.extend(x.to_le_bytes()));
                    }
                    Space::Coupling => {
                        let v = self
                            .couplings
                            .get(addr..addr + count)
                            .ok_or(ErrorCode::BadAddress)?;
                        v.iter().for_each(|x| out.extend(x.to_le_bytes()));
                    }
                    Space::State => {
                        // States are zero between inferences (each RUN starts from zero).
                        if addr + count > self.sub.units() {
                            return Err(ErrorCode::BadAddress);
                        }
                        out.resize(count * 2, 0);
                    }
                }
                ok(out)
            }
            Opcode::SetConditioning => {
                if p.len() < 3 || (p.len() - 3) % 4 != 0 {
                    return Err(ErrorCode::BadLength);
                }
                let slot = p[0] as usize;
                let off = u16::from_le_bytes([p[1], p[2]]) as usize;
                let n = (p.len() - 3) / 4;
                let units = self.sub.units();
                let s = self.slots.get_mut(slot).ok_or(ErrorCode::BadSlot)?;
                if off + n > units {
                    return Err(ErrorCode::BadAddress);
                }
                let same = p[3..]
                    .chunks(4)
                    .enumerate()
                    .all(|(k, c)| s.cond[off + k] == i32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                if same && s.state != SlotState::Idle {
                    return ok(Vec::new()); // a repeat (e.g. after a reconnect): nothing changes
                }
                if s.state == SlotState::Busy {
                    return Err(ErrorCode::Busy);
                }
                for (k, c) in p[3..].chunks(4).enumerate() {
                    s.cond[off + k] = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                // New conditioning invalidates an old result.
                s.state = SlotState::Idle;
                s.run = None;
                ok(Vec::new())
            }
            Opcode::Run => {
                let r = RunRequest::decode(p).ok_or(ErrorCode::BadLength)?;
                if r.sweeps == 0 || r.sweeps > MAX_RUN_SWEEPS {
                    return Err(ErrorCode::BadParameter);
                }
                let s = self
                    .slots
                    .get_mut(r.slot as usize)
                    .ok_or(ErrorCode::BadSlot)?;
                if s.state != SlotState::Idle && s.run == Some(r) {
                    return ok(Vec::new()); // the same run again: already queued or done
                }
                if s.state == SlotState::Busy {
                    return Err(ErrorCode::Busy);
                }
                s.state = SlotState::Busy;
                s.run = Some(r);
                self.queue.push_back(r.slot);
                ok(Vec::new())
            }
            Opcode::Readout => {
                if p.len() != 5 {
                    return Err(ErrorCode::BadLength);
                }
                let slot = p[0] as usize;
                let off = u16::from_le_bytes([p[1], p[2]]) as usize;
                let count = u16::from_le_bytes([p[3], p[4]]) as usize;
                if count * 4 + 5 > MAX_PAYLOAD {
                    return Err(ErrorCode::BadLength);
                }
                let s = self.slots.get(slot).ok_or(ErrorCode::BadSlot)?;
                let r = match s.state {
                    SlotState::Done => Readout {
                        state: SlotState::Done,
                        sweeps: s.sweeps,
                        sums: s
                            .result
                            .get(off..off + count)
                            .ok_or(ErrorCode::BadAddress)?
                            .to_vec(),
                    },
                    st => Readout {
                        state: st,
                        sweeps: 0,
                        sums: Vec::new(),
                    },
                };
                ok(r.encode())
            }
        }
    }

    /// Take the next queued inference: `(slot, substrate, conditioning, run, readout units)`.
    fn next_job(&mut self) -> Option<(u8, Substrate, Vec<i32>, RunRequest, Vec<usize>)> {
        let slot = self.queue.pop_front()?;
        let s = &self.slots[slot as usize];
        let run = s.run?;
        Some((
            slot,
            self.sub.clone(),
            s.cond.clone(),
            run,
            self.readout.clone(),
        ))
    }

    fn finish_job(
        &mut self,
        slot: u8,
        run: RunRequest,
        sums: Vec<i32>,
        sat: Saturation,
        sweeps: u64,
    ) {
        self.status.sweeps += sweeps;
        self.status.sat_acc += sat.acc;
        self.status.sat_state += sat.state;
        self.status.sat_bus += sat.bus;
        self.status.runs += 1;
        let s = &mut self.slots[slot as usize];
        // A RESET or new conditioning may have superseded this job.
        if s.state == SlotState::Busy && s.run == Some(run) {
            s.state = SlotState::Done;
            s.result = sums;
            s.sweeps = run.sweeps;
        }
    }

    /// Run the oldest queued inference now, if any (for tests that follow the RTL's progress).
    pub fn run_one(&mut self) -> bool {
        match self.next_job() {
            Some((slot, sub, cond, run, readout)) => {
                let (sums, sat, sweeps) = run_inference(&sub, &cond, &run, &readout);
                self.finish_job(slot, run, sums, sat, sweeps);
                true
            }
            None => false,
        }
    }

    /// The counters STATUS reports now.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Run every queued inference now (for tests without a worker thread).
    pub fn run_queued(&mut self) {
        while let Some((slot, sub, cond, run, readout)) = self.next_job() {
            let (sums, sat, sweeps) = run_inference(&sub, &cond, &run, &readout);
            self.finish_job(slot, run, sums, sat, sweeps);
        }
    }

    fn note_decoder(&mut self, d: &FrameDecoder) {
        self.status.crc_errors = d.stats.crc_errors as u32;
        self.status.framing_errors = d.stats.framing_errors as u32;
    }
}

/// Options of the byte pump.
#[derive(Clone, Copy, Debug)]
pub struct ServeOptions {
    /// Line rate to emulate (bits per second, 10 bits per byte); `None` for as fast as possible.
    pub baud: Option<u32>,
    /// Stop after this long without traffic (`None`: forever).
    pub idle_exit: Option<Duration>,
}

/// Serve the protocol on the board's end of the link (`port` to read, `out` to write: two handles
/// of one port) until it fails or stays idle. Both directions are paced to the emulated line
/// rate independently (the UART is full duplex). Returns the board's final status.
pub fn serve<P: Read + Send, W: Write + Send + 'static>(
    sub: Substrate,
    mut port: P,
    out: W,
    opts: ServeOptions,
) -> std::io::Result<Status> {
    let shared = Arc::new((Mutex::new(Board::new(sub)), Condvar::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let worker = {
        let shared = Arc::clone(&shared);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || loop {
            let job = {
                let (m, cv) = &*shared;
                let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    if let Some(j) = b.next_job() {
                        break j;
                    }
                    b = cv
                        .wait_timeout(b, Duration::from_millis(50))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            };
            let (slot, sub, cond, run, readout) = job;
            let (sums, sat, sweeps) = run_inference(&sub, &cond, &run, &readout);
            let (m, _) = &*shared;
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .finish_job(slot, run, sums, sat, sweeps);
        })
    };
    let byte_time = opts.baud.map(|b| Duration::from_secs_f64(10.0 / b as f64));
    // The transmitter: paces replies to the line rate on its own thread.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = out;
        let mut line_out = Instant::now();
        for bytes in rx {
            out.write_all(&bytes)?;
            out.flush()?;
            if let Some(bt) = byte_time {
                line_out = line_out.max(Instant::now()) + bt * bytes.len() as u32;
                let now = Instant::now();
                if line_out > now {
                    std::thread::sleep(line_out - now);
                }
            }
        }
        Ok(())
    });
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let mut last = Instant::now();
    let mut line_in = Instant::now();
    let result: std::io::Result<()> = loop {
        match port.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                last = Instant::now();
                // Bytes arrive no faster than the line carries them.
                if let Some(bt) = byte_time {
                    line_in = line_in.max(Instant::now() - bt * n as u32) + bt * n as u32;
                    let now = Instant::now();
                    if line_in > now {
                        std::thread::sleep(line_in - now);
                    }
                }
                let replies: Vec<Vec<u8>> = {
                    let (m, cv) = &*shared;
                    let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
                    let frames = dec.push(&buf[..n]);
                    b.note_decoder(&dec);
                    let replies = frames
                        .into_iter()
                        .filter_map(|r| r.ok().and_then(|f| b.handle(&f)))
                        .collect();
                    cv.notify_all();
                    replies
                };
                if replies.into_iter().any(|r| tx.send(r).is_err()) {
                    break Err(std::io::Error::new(
                        std::io::ErrorKind::BrokenPipe,
                        "transmitter stopped",
                    ));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break Err(e),
        }
        if let Some(idle) = opts.idle_exit {
            if last.elapsed() > idle {
                break Ok(());
            }
        }
    };
    drop(tx);
    let wres = writer.join().unwrap_or(Ok(()));
    let result = result.and(wres);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = worker.join();
    let status = shared.0.lock().unwrap_or_else(|e| e.into_inner()).status;
    result.map(|_| status)
}
/// A pseudo-terminal for a serving board: the master with a 5 ms read time-out, a second handle
/// on it for the writer, the device path and the slave kept open.
#[allow(clippy::type_complexity)]
fn open_served_pty() -> std::io::Result<(
    serialport::TTYPort,
    serialport::TTYPort,
    String,
    serialport::TTYPort,
)> {
    let (mut master, name, keep) = open_pty()?;
    serialport::SerialPort::set_timeout(&mut master, Duration::from_millis(5))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let out = master
        .try_clone_native()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok((master, out, name, keep))
}

/// A pseudo-terminal pair: `(board end, path of the host end, host end)`. Keep the host end open
/// for as long as the board end is used, or reads on the board end fail once the host closes.
pub fn open_pty() -> std::io::Result<(serialport::TTYPort, String, serialport::TTYPort)> {
    let (master, slave) = serialport::TTYPort::pair()
        .map_err(|e| std::io::Error::other(format!("cannot open a pseudo-terminal: {e}")))?;
    let name = serialport::SerialPort::name(&slave)
        .ok_or_else(|| std::io::Error::other("pseudo-terminal has no name"))?;
    Ok((master, name, slave))
}

/// Start an emulated board for `sub` on a fresh pseudo-terminal, served on a thread until it has
/// been idle for `idle`. Returns the path the host opens and the serving thread (which yields the
/// board's final status).
pub fn spawn_emulator(
    sub: Substrate,
    baud: Option<u32>,
    idle: Duration,
) -> std::io::Result<(String, std::thread::JoinHandle<std::io::Result<Status>>)> {
    let (master, out, name, keep) = open_served_pty()?;
    let h = std::thread::spawn(move || {
        let _keep = keep;
        serve(
            sub,
            master,
            out,
            ServeOptions {
                baud,
                idle_exit: Some(idle),
            },
        )
    });
    Ok((name, h))
}

/// What a Verilator board reported when it stopped.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerilatorStats {
    /// Bytes from the host to the board.
    pub bytes_in: u64,
    /// Bytes from the board to the host.
    pub bytes_out: u64,
    /// Clock cycles simulated.
    pub cycles: u64,
    /// Bytes the RTL UART dropped for a bad stop bit.
    pub frame_errors: u64,
    /// Frames the RTL dropped for a CRC mismatch.
    pub crc_errors: u64,
    /// Frames the RTL dropped for bad framing.
    pub framing_errors: u64,
}

/// Serve the protocol from the RTL: `exe` is a Verilator build of `thermo_hdl::link::command::LinkTop`
/// with its stream harness, run with `args` (both from
/// [`thermo_hdl::harness::link::link_top_stream_build`]); bytes read from `port` go to its `rx` pin,
/// bytes from its `tx` pin are written to `out`. Stops when `port` fails or after `idle_exit`
/// without traffic.
pub fn serve_verilator<P: Read + Send, W: Write + Send + 'static>(
    exe: &std::path::Path,
    args: &[String],
    mut port: P,
    out: W,
    idle_exit: Option<Duration>,
) -> std::io::Result<VerilatorStats> {
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU64, Ordering};
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::other(format!("cannot run {}: {e}", exe.display())))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let bytes_out = Arc::new(AtomicU64::new(0));
    let pump = {
        let (last, bytes_out) = (Arc::clone(&last), Arc::clone(&bytes_out));
        std::thread::spawn(move || -> std::io::Result<()> {
            let mut out = out;
            let mut buf = vec![0u8; 4096];
            loop {
                let n = stdout.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                out.write_all(&buf[..n])?;
                out.flush()?;
                bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
        })
    };
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut buf = vec![0u8; 4096];
    let mut bytes_in = 0u64;
    let result: std::io::Result<()> = loop {
        match port.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                bytes_in += n as u64;
                last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                if let Err(e) = stdin.write_all(&buf[..n]).and_then(|_| stdin.flush()) {
                    break Err(std::io::Error::other(format!(
                        "Verilator board stopped: {e}"
                    )));
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => break Err(e),
        }
        if let Some(idle) = idle_exit {
            let quiet = start.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            if quiet > idle.as_millis() as u64 {
                break Ok(());
            }
        }
    };
    drop(stdin); // end of input: the harness finishes what is in flight and exits
    let status = child.wait()?;
    let pumped = pump.join().unwrap_or(Ok(()));
    let report = err_reader.join().unwrap_or_default();
    result?;
    if !status.success() {
        return Err(std::io::Error::other(format!(
            "Verilator board failed ({status}): {report}"
        )));
    }
    // The host end may already be closed; what the board sent last is then lost, not an error.
    let _ = pumped;
    let f: Vec<u64> = report
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    Ok(VerilatorStats {
        bytes_in,
        bytes_out: bytes_out.load(Ordering::Relaxed),
        cycles: f.first().copied().unwrap_or(0),
        frame_errors: f.get(1).copied().unwrap_or(0),
        crc_errors: f.get(2).copied().unwrap_or(0),
        framing_errors: f.get(3).copied().unwrap_or(0),
    })
}

/// Like [`spawn_emulator`], with the RTL in Verilator as the board (`clock_hz` / `baud` set the
/// UART's clocks per bit; the pseudo-terminal itself is not paced). Builds the model first
/// (cached).
pub fn spawn_verilator_emulator(
    sub: &Substrate,
    link: &thermo_hdl::link::command::LinkOptions,
    clock_hz: u64,
    baud: u64,
    idle: Duration,
) -> std::io::Result<(
    String,
    std::thread::JoinHandle<std::io::Result<VerilatorStats>>,
)> {
    let (exe, arg) = thermo_hdl::harness::link::link_top_stream_build(sub, link, clock_hz, baud)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let (master, out, name, keep) = open_served_pty()?;
    let h = std::thread::spawn(move || {
        let _keep = keep;
        serve_verilator(&exe, &arg, master, out, Some(idle))
    });
    Ok((name, h))
}
