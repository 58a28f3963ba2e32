//! The emulated board's byte pumps: the board model of `thermo-proto` ([`Board`], bit for bit
//! what the hardware computes) served behind a pseudo-terminal (`thermo emulate`), and the RTL
//! in Verilator served the same way.
//!
//! Inferences run on a worker thread so the link never waits for them. Both directions of the
//! emulated line are paced to its rate by a [`LinePacer`].

use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use thermo_proto::device::Board;
use thermo_proto::{FrameDecoder, Status};
use thermo_sim::Substrate;

/// Paces one direction of an emulated line: the bytes of a busy period (one that starts when
/// the line is idle) take their line time (10 bits a byte at `baud`) counted from the period's
/// start, so `n` bytes are never through in less than `n * 10 / baud` seconds, whatever the
/// sizes of the chunks they come in.
#[derive(Clone, Debug)]
pub struct LinePacer {
    baud: f64,
    start: Instant,
    bytes: u64,
}

impl LinePacer {
    /// An idle line at `baud` bits per second.
    pub fn new(baud: u32) -> Self {
        LinePacer {
            baud: baud.max(1) as f64,
            start: Instant::now(),
            bytes: 0,
        }
    }

    /// When the last of the bytes counted so far is through the line.
    fn deadline(&self) -> Instant {
        self.start + Duration::from_secs_f64(self.bytes as f64 * 10.0 / self.baud)
    }

    /// Count `n` more bytes onto the line and sleep until the last of them is through. A line
    /// that has fallen idle starts a new busy period now (idle time is not credited).
    pub fn pace(&mut self, n: usize) {
        let now = Instant::now();
        if self.deadline() < now {
            self.start = now;
            self.bytes = 0;
        }
        self.bytes += n as u64;
        let d = self.deadline();
        let now = Instant::now();
        if d > now {
            std::thread::sleep(d - now);
        }
    }
}

/// A read that found nothing to read (time-out, would block, interrupted), not a failure.
fn quiet(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::Interrupted
    )
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
            let r = job.run();
            let (m, _) = &*shared;
            m.lock()
                .unwrap_or_else(|e| e.into_inner())
                .finish_job(&job, r);
        })
    };
    // The transmitter: a reply reaches the host once its last byte is through the line.
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let baud = opts.baud;
    let writer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = out;
        let mut line = baud.map(LinePacer::new);
        for bytes in rx {
            if let Some(l) = line.as_mut() {
                l.pace(bytes.len());
            }
            out.write_all(&bytes)?;
            out.flush()?;
        }
        Ok(())
    });
    let mut dec = FrameDecoder::new();
    let mut buf = vec![0u8; 4096];
    let mut last = Instant::now();
    let mut line_in = opts.baud.map(LinePacer::new);
    let result: std::io::Result<()> = loop {
        match port.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => {
                last = Instant::now();
                // Bytes reach the board no faster than the line carries them.
                if let Some(l) = line_in.as_mut() {
                    l.pace(n);
                }
                let replies: Vec<Vec<u8>> = {
                    let (m, cv) = &*shared;
                    let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
                    let frames = dec.push(&buf[..n]);
                    b.note_decoder(&dec.stats);
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
            Err(e) if quiet(&e) => {}
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
    let status = shared.0.lock().unwrap_or_else(|e| e.into_inner()).status();
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
            Err(e) if quiet(&e) => {}
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

#[cfg(test)]
mod tests {
    use super::LinePacer;
    use std::time::{Duration, Instant};

    /// After `n` bytes at `baud`, at least `n * 10 / baud` seconds have passed, whether the bytes
    /// come in one chunk or many, and idle time before the first byte is not credited.
    #[test]
    fn the_pacer_never_carries_bytes_faster_than_the_line() {
        let baud = 12_000_000;
        let least = |n: usize| Duration::from_secs_f64(n as f64 * 10.0 / baud as f64);
        // one chunk, on a line that has been idle (created, then left alone)
        let mut p = LinePacer::new(baud);
        std::thread::sleep(Duration::from_millis(20));
        let t = Instant::now();
        p.pace(24_000);
        assert!(t.elapsed() >= least(24_000), "{:?}", t.elapsed());
        // many chunks of uneven sizes in a busy period
        let t = Instant::now();
        let mut total = 0;
        for k in 0..300 {
            let n = 1 + (k * 37) % 900;
            p.pace(n);
            total += n;
        }
        assert!(
            t.elapsed() >= least(total),
            "{:?} for {total} bytes",
            t.elapsed()
        );
        // after an idle gap, a new busy period is paced from its own start
        std::thread::sleep(Duration::from_millis(30));
        let t = Instant::now();
        p.pace(30_000);
        assert!(t.elapsed() >= least(30_000), "{:?}", t.elapsed());
    }
}
