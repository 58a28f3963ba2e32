//! Verilator runs of the link: [`LinkCore`] with a mock substrate port (`link_core.cpp`) and
//! the board design [`LinkTop`] through its UART pins (`link_top.cpp`, also the stream board
//! of `thermo emulate --backend verilator`).

use crate::link::command::{link_core_verilog, link_top_verilog, LinkOptions};
#[cfg(doc)]
use crate::link::command::{LinkCore, LinkTop};
use crate::rtl::program::HwProgram;
use thermo_sim::Substrate;

/// The value the harness's mock substrate port returns for an address never written:
/// `3 a + 1`.
pub fn mock_port_value(addr: u32) -> u32 {
    addr.wrapping_mul(3).wrapping_add(1)
}

/// C++ harness of [`LinkCore`] with a mock substrate port (written words are remembered and
/// printed as `W addr data`; other addresses read [`mock_port_value`]; read data arrives two
/// cycles after the address like `SubstrateTop`'s; a START write to control offset 0 raises
/// `cfg.running` for `50 + (n_sweeps & 255)` cycles, `n_sweeps` being the word last written to
/// offset 1). Stdin: `n` and `n` hex-encoded request bytes, fed one per clock (`out_ready` high
/// on 3 clocks of 4); it then runs until the link has been quiet (no reply byte, no port write,
/// `active` low) for 50000 clocks. Further segments (`n` and `n` bytes) follow the same way. Stdout: `W` lines, then `O <reply bytes hex>`, then `C frames
/// crc_errors framing_errors overruns`.
pub const LINK_CORE_HARNESS: &str = include_str!("link_core.cpp");

/// What [`link_core_verilator`] observed.
#[derive(Clone, Debug, Default)]
pub struct LinkCoreOut {
    /// Port writes `(address, data)` in order.
    pub writes: Vec<(u32, u32)>,
    /// Reply bytes.
    pub out: Vec<u8>,
    /// Receiver counters `frames, crc_errors, framing_errors, overruns`.
    pub counters: [u64; 4],
}

/// Feed `input` (one byte every `gap` clocks) to a Verilator build of the [`LinkCore`] of `s`
/// with a mock substrate port.
pub fn link_core_verilator(
    s: &Substrate,
    prog: &HwProgram,
    input: &[u8],
    gap: u32,
) -> Result<LinkCoreOut, crate::Error> {
    link_core_verilator_segments(s, prog, &[input.to_vec()], gap)
}

/// Harness stdin: every segment as its length and its bytes in hex.
fn segments_text(segments: &[Vec<u8>]) -> String {
    use std::fmt::Write;
    let mut text = String::new();
    for seg in segments {
        let _ = writeln!(text, "{}", seg.len());
        for b in seg {
            let _ = write!(text, "{b:02x}");
        }
        text.push('\n');
    }
    text
}

/// Like [`link_core_verilator`], with the input in segments: each segment is fed once the link
/// has been quiet after the previous one (replies sent, no run queued or in progress).
pub fn link_core_verilator_segments(
    s: &Substrate,
    prog: &HwProgram,
    segments: &[Vec<u8>],
    gap: u32,
) -> Result<LinkCoreOut, crate::Error> {
    let exe = crate::harness::verilog::verilator_build(
        &link_core_verilog(s, prog)?,
        LINK_CORE_HARNESS,
        false,
        false,
    )?;
    let text = segments_text(segments);
    let res = crate::harness::verilog::run_harness(&exe, &[gap.to_string()], &text)?;
    let bad = |l: &str| crate::Error::Tool(format!("bad link harness output {l:?}"));
    let mut o = LinkCoreOut::default();
    for l in res.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["W", a, d] => o.writes.push((
                a.parse().map_err(|_| bad(l))?,
                d.parse().map_err(|_| bad(l))?,
            )),
            ["O", rest @ ..] => {
                let h = rest.first().copied().unwrap_or("");
                o.out = (0..h.len() / 2)
                    .map(|i| {
                        h.get(2 * i..2 * i + 2)
                            .and_then(|x| u8::from_str_radix(x, 16).ok())
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad(l))?;
            }
            ["C", a, b, c, d] => {
                for (i, x) in [a, b, c, d].iter().enumerate() {
                    o.counters[i] = x.parse().map_err(|_| bad(l))?;
                }
            }
            _ => return Err(bad(l)),
        }
    }
    Ok(o)
}

/// C++ harness of [`LinkTop`]: argument `clocks_per_bit` (fractional); stdin: segments, each
/// `n` and `n` hex bytes, sent back to back on `rx` by an ideal UART at that ratio; `tx` is
/// decoded by an ideal UART sampling at mid-bit. A segment starts once the line has been quiet
/// for 40 bit times (+ 20000 clocks) after the previous one with no run queued or in progress
/// (`active` low); the harness ends the same way after the last. Every cycle it checks that
/// `error` is high exactly when one of the three error counters is not zero (exit 1 if not).
///
/// With a second argument `stream` it makes the design a board on a byte stream instead: bytes
/// read from stdin are sent back to back on `rx` (a byte starts as soon as it has arrived and
/// the previous one has been sent); the bytes decoded from `tx` are written to stdout. While
/// nothing is sent or received, no run is queued or in progress (`active` low) and the line has
/// been quiet for 20000 clocks, the harness sleeps until stdin has data (the simulated clock
/// stands still meanwhile). It exits at the end of stdin, printing `cycles frame_errors
/// crc_errors framing_errors` to stderr. (One harness for both, so tests and
/// `thermo emulate --backend verilator` share one cached build.) Stdout: `O <bytes received on tx, hex>`, then `E frame_errors crc_errors
/// framing_errors cycles`.
pub const LINK_TOP_HARNESS: &str = include_str!("link_top.cpp");

/// Push `input` through the `rx` pin of a Verilator build of the [`LinkTop`] of `s` at
/// `clock_hz` / `baud`; returns the bytes that came out of `tx` and the counters
/// `[frame_errors, crc_errors, framing_errors, cycles]`.
pub fn link_top_verilator(
    s: &Substrate,
    prog: &HwProgram,
    clock_hz: u64,
    baud: u64,
    input: &[u8],
) -> Result<(Vec<u8>, [u64; 4]), crate::Error> {
    link_top_verilator_segments(
        s,
        prog,
        &LinkOptions::default(),
        clock_hz,
        baud,
        &[input.to_vec()],
    )
}

/// Like [`link_top_verilator`], with the input in segments: each segment is sent once the
/// line has been quiet after the previous one and no run is queued or in progress (so a test
/// can wait for results).
pub fn link_top_verilator_segments(
    s: &Substrate,
    prog: &HwProgram,
    o: &LinkOptions,
    clock_hz: u64,
    baud: u64,
    segments: &[Vec<u8>],
) -> Result<(Vec<u8>, [u64; 4]), crate::Error> {
    let inc = crate::link::uart::baud_increment(clock_hz, baud)?;
    let exe = crate::harness::verilog::verilator_build(
        &link_top_verilog(s, prog, inc, o)?,
        LINK_TOP_HARNESS,
        false,
        true,
    )?;
    let text = segments_text(segments);
    let ratio = clock_hz as f64 / baud as f64;
    let res = crate::harness::verilog::run_harness(&exe, &[format!("{ratio}")], &text)?;
    let bad = |l: &str| crate::Error::Tool(format!("bad link top harness output {l:?}"));
    let (mut out, mut cnt) = (Vec::new(), [0u64; 4]);
    for l in res.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["O", rest @ ..] => {
                let h = rest.first().copied().unwrap_or("");
                out = (0..h.len() / 2)
                    .map(|i| {
                        h.get(2 * i..2 * i + 2)
                            .and_then(|x| u8::from_str_radix(x, 16).ok())
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| bad(l))?;
            }
            ["E", a, b, c, d] => {
                for (i, x) in [a, b, c, d].iter().enumerate() {
                    cnt[i] = x.parse().map_err(|_| bad(l))?;
                }
            }
            _ => return Err(bad(l)),
        }
    }
    Ok((out, cnt))
}

/// Build (or take from the cache) the Verilator board of substrate `s` for `clock_hz` / `baud`:
/// [`LinkTop`] with [`LINK_TOP_HARNESS`] (the build [`link_top_verilator`] uses), optimised
/// C++. Returns the executable and the arguments that run it in stream mode (clocks per bit,
/// `stream`).
pub fn link_top_stream_build(
    s: &Substrate,
    o: &LinkOptions,
    clock_hz: u64,
    baud: u64,
) -> Result<(std::path::PathBuf, Vec<String>), crate::Error> {
    let prog = HwProgram::new(s)?;
    let inc = crate::link::uart::baud_increment(clock_hz, baud)?;
    let exe = crate::harness::verilog::verilator_build(
        &link_top_verilog(s, &prog, inc, o)?,
        LINK_TOP_HARNESS,
        false,
        true,
    )?;
    let ratio = clock_hz as f64 / baud as f64;
    Ok((exe, vec![format!("{ratio}"), "stream".into()]))
}
