//! A fault-injecting link proxy for tests: sits between the host and an emulated board on two
//! pseudo-terminals and flips bits, drops bytes, truncates frames, delays traffic and "unplugs"
//! the host's port (closes it and brings up a new one behind the same path, as a USB replug does).

use serialport::SerialPort;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to inject.
#[derive(Clone, Debug)]
pub struct FaultConfig {
    /// Probability that any one bit is flipped.
    pub bit_error_rate: f64,
    /// Probability that a byte is dropped.
    pub drop_rate: f64,
    /// Probability that a frame is cut short (its remaining bytes up to the delimiter dropped).
    pub truncate_rate: f64,
    /// Probability that a chunk is held back by `delay`.
    pub delay_rate: f64,
    /// How long a delayed chunk is held.
    pub delay: Duration,
    /// Unplug the host's port after this many bytes went through (each time it is reached).
    pub unplug_every: Option<u64>,
    /// How long the port stays away.
    pub unplugged_for: Duration,
    /// Seed of the fault pattern.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            bit_error_rate: 0.0,
            drop_rate: 0.0,
            truncate_rate: 0.0,
            delay_rate: 0.0,
            delay: Duration::from_millis(20),
            unplug_every: None,
            unplugged_for: Duration::from_millis(300),
            seed: 1,
        }
    }
}

/// What was injected.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct FaultStats {
    /// Bytes forwarded (both directions).
    pub bytes: u64,
    /// Bits flipped.
    pub bits_flipped: u64,
    /// Bytes dropped.
    pub bytes_dropped: u64,
    /// Frames truncated.
    pub frames_truncated: u64,
    /// Chunks delayed.
    pub delays: u64,
    /// Unplug events.
    pub unplugs: u64,
}

struct Rng(u64);
impl Rng {
    fn u01(&mut self) -> f64 {
        (thermo_sim::noise::splitmix64(&mut self.0) >> 11) as f64 * (-53f64).exp2()
    }
}

struct Mangler {
    cfg: FaultConfig,
    rng: Rng,
    /// The delay decisions, one draw per chunk: a stream of its own, so whether the `n`-th
    /// chunk is held depends on `n` and the seed only, not on how the bytes were split.
    delay_rng: Rng,
    truncating: bool,
    stats: FaultStats,
}

impl Mangler {
    fn new(cfg: &FaultConfig, seed: u64) -> Mangler {
        Mangler {
            rng: Rng(seed),
            delay_rng: Rng(seed ^ 0xDE1A_7DE1_A7DE_1A7D),
            cfg: cfg.clone(),
            truncating: false,
            stats: FaultStats::default(),
        }
    }

    /// Whether to hold the next chunk back (counted).
    fn delay_next(&mut self) -> bool {
        let d = self.delay_rng.u01() < self.cfg.delay_rate;
        self.stats.delays += d as u64;
        d
    }
}

impl Mangler {
    fn mangle(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            self.stats.bytes += 1;
            if self.truncating {
                if b == 0 {
                    self.truncating = false;
                    out.push(0);
                } else {
                    self.stats.bytes_dropped += 1;
                }
                continue;
            }
            if b != 0 && self.rng.u01() < self.cfg.truncate_rate {
                self.truncating = true;
                self.stats.frames_truncated += 1;
                continue;
            }
            if self.rng.u01() < self.cfg.drop_rate {
                self.stats.bytes_dropped += 1;
                continue;
            }
            let mut x = b;
            if self.cfg.bit_error_rate > 0.0 {
                for bit in 0..8 {
                    if self.rng.u01() < self.cfg.bit_error_rate {
                        x ^= 1 << bit;
                        self.stats.bits_flipped += 1;
                    }
                }
            }
            out.push(x);
        }
        out
    }
}

/// A running proxy. The host opens [`FaultProxy::path`]; the proxy talks to the board's port.
pub struct FaultProxy {
    /// Path the host opens (a symbolic link to the current pseudo-terminal).
    pub path: PathBuf,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<std::io::Result<FaultStats>>>,
}

fn new_host_side(link: &PathBuf) -> std::io::Result<(serialport::TTYPort, serialport::TTYPort)> {
    let (master, name, slave) = crate::emulator::open_pty()?;
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(&name, link)?;
    Ok((master, slave))
}

impl FaultProxy {
    /// Start a proxy to the board at `board_path`, offering `link` to the host.
    pub fn start(link: PathBuf, board_path: &str, cfg: FaultConfig) -> std::io::Result<FaultProxy> {
        let mut board = serialport::new(board_path, 3_000_000)
            .timeout(Duration::from_millis(2))
            .open()
            .map_err(|e| std::io::Error::other(format!("{board_path}: {e}")))?;
        let (mut master, mut slave) = new_host_side(&link)?;
        master
            .set_timeout(Duration::from_millis(2))
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let st = Arc::clone(&stop);
        let path = link.clone();
        let handle = std::thread::spawn(move || -> std::io::Result<FaultStats> {
            let mut up = Mangler::new(&cfg, cfg.seed);
            let mut down = Mangler::new(&cfg, cfg.seed ^ 0xABCD);
            let mut unplugs = 0u64;
            let mut next_unplug = cfg.unplug_every;
            let mut buf = vec![0u8; 4096];
            while !st.load(Ordering::Relaxed) {
                // Host -> board.
                match master.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let out = up.mangle(&buf[..n]);
                        if up.delay_next() {
                            std::thread::sleep(cfg.delay);
                        }
                        board.write_all(&out)?;
                    }
                    _ => {}
                }
                // Board -> host.
                match board.read(&mut buf) {
                    Ok(n) if n > 0 => {
                        let out = down.mangle(&buf[..n]);
                        if down.delay_next() {
                            std::thread::sleep(cfg.delay);
                        }
                        let _ = master.write_all(&out);
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => return Err(e),
                }
                if let Some(at) = next_unplug {
                    if up.stats.bytes + down.stats.bytes >= at {
                        // Pull the cable: the host's port hangs up; plug it back after a while.
                        drop(master);
                        drop(slave);
                        let _ = std::fs::remove_file(&path);
                        unplugs += 1;
                        let back = Instant::now() + cfg.unplugged_for;
                        while Instant::now() < back {
                            // Drain what the board still sends: it is lost with the cable.
                            let _ = board.read(&mut buf);
                        }
                        let (m, s) = new_host_side(&path)?;
                        master = m;
                        slave = s;
                        master
                            .set_timeout(Duration::from_millis(2))
                            .map_err(|e| std::io::Error::other(e.to_string()))?;
                        next_unplug = cfg.unplug_every.map(|e| at + e);
                    }
                }
            }
            let _ = &slave;
            let mut s = up.stats;
            for (a, b) in [
                (&mut s.bytes, down.stats.bytes),
                (&mut s.bits_flipped, down.stats.bits_flipped),
                (&mut s.bytes_dropped, down.stats.bytes_dropped),
                (&mut s.frames_truncated, down.stats.frames_truncated),
                (&mut s.delays, down.stats.delays),
            ] {
                *a += b;
            }
            s.unplugs = unplugs;
            Ok(s)
        });
        Ok(FaultProxy {
            path: link,
            stop,
            handle: Some(handle),
        })
    }

    /// Stop the proxy and return what it injected.
    pub fn finish(mut self) -> std::io::Result<FaultStats> {
        self.stop.store(true, Ordering::Relaxed);
        let h = self
            .handle
            .take()
            .ok_or_else(|| std::io::Error::other("proxy already finished"))?;
        h.join()
            .map_err(|_| std::io::Error::other("proxy thread panicked"))?
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The link test's faults (`host/tests/link.rs`: seed 9, delay rate 0.03) hold a chunk back
    /// within the first 50 chunks of each direction (the 3rd host-to-board chunk and the 44th
    /// board-to-host one), whatever the traffic's split into chunks: its run of 48 inferences
    /// sees delays every time. With the draws shared with the byte faults, as before, a run that
    /// happened to read few large chunks saw none (`delays: 0` in a CI run).
    #[test]
    fn the_link_tests_delays_come_early() {
        let cfg = FaultConfig {
            delay_rate: 0.03,
            seed: 9,
            ..FaultConfig::default()
        };
        for seed in [cfg.seed, cfg.seed ^ 0xABCD] {
            let mut m = Mangler::new(&cfg, seed);
            let first = (0..10_000).find(|_| m.delay_next()).unwrap();
            assert!(first < 50, "seed {seed:#x}: first delay at chunk {first}");
        }
    }
}
