//! Byte transports to a board: a real serial port (USB-UART bridges: FT231X on the ULX3S, FT2232H
//! on the iCEBreaker, CDC-ACM devices), which is also how a pseudo-terminal to an emulated board is
//! opened.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A byte link to a board.
pub trait Transport: Send {
    /// Write all bytes.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Read what is available, waiting at most `timeout`; `Ok(0)` when nothing came.
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
    /// Reopen the link after it vanished (e.g. the USB cable was pulled and plugged back).
    fn reconnect(&mut self) -> io::Result<()>;
    /// Line rate in bits per second, when known.
    fn baud(&self) -> Option<u32>;
    /// Human-readable name of the link.
    fn describe(&self) -> String;
}

/// A serial port by path (`/dev/ttyUSB0`, `/dev/ttyACM0`, or a pseudo-terminal's path).
pub struct SerialTransport {
    path: PathBuf,
    baud: u32,
    port: Option<Box<dyn serialport::SerialPort>>,
}

impl SerialTransport {
    /// Open `path` at `baud` (8N1, no flow control).
    pub fn open(path: &Path, baud: u32) -> io::Result<Self> {
        let mut t = SerialTransport {
            path: path.to_path_buf(),
            baud,
            port: None,
        };
        t.reconnect()?;
        Ok(t)
    }
}

fn to_io(e: serialport::Error) -> io::Error {
    let kind = match e.kind() {
        serialport::ErrorKind::NoDevice => io::ErrorKind::NotFound,
        serialport::ErrorKind::Io(k) => k,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e.to_string())
}

impl Transport for SerialTransport {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let p = self
            .port
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "port closed"))?;
        p.write_all(bytes)?;
        p.flush()
    }
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let p = self
            .port
            .as_mut()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "port closed"))?;
        p.set_timeout(timeout.max(Duration::from_micros(100)))
            .map_err(to_io)?;
        match p.read(buf) {
            Ok(0) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "port returned end of file",
            )),
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(0),
            Err(e) => Err(e),
        }
    }
    fn reconnect(&mut self) -> io::Result<()> {
        self.port = None;
        let path = self.path.to_string_lossy().into_owned();
        let p = serialport::new(&path, self.baud)
            .timeout(Duration::from_millis(10))
            .open()
            .map_err(to_io)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        self.port = Some(p);
        Ok(())
    }
    fn baud(&self) -> Option<u32> {
        Some(self.baud)
    }
    fn describe(&self) -> String {
        format!("{} at {} baud", self.path.display(), self.baud)
    }
}

/// For an FTDI bridge, the kernel's latency timer (default 16 ms) delays every short reply; if it
/// is above 1 ms, return the command that lowers it.
pub fn ftdi_latency_hint(path: &Path) -> Option<String> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?.to_string();
    let sys = PathBuf::from(format!("/sys/bus/usb-serial/devices/{name}/latency_timer"));
    let ms: u32 = std::fs::read_to_string(&sys).ok()?.trim().parse().ok()?;
    (ms > 1).then(|| {
        format!(
            "{name}: FTDI latency timer is {ms} ms; for low latency run: echo 1 | sudo tee {}",
            sys.display()
        )
    })
}
