//! The Verilator framing test: a build of [`frame_pair_verilog`] driven by `framing.cpp`.

use crate::link::framing::{frame_pair_verilog, RxCounters, RxFrame};

/// The C++ harness of [`FramePair`](crate::link::framing::FramePair). Arguments: `pause gap seed ready_pct drain`. Commands on
/// stdin: `F n <2n hex digits>` feeds bytes to the receiver (one per clock, then `gap` idle
/// clocks, or a random 0..=gap when `seed` is non-zero; with `pause` = 1 the input waits while
/// a frame is available or being read); `T seq kind n <hex>` writes a payload into the
/// transmitter's buffer and sends it with `out_ready` high on `ready_pct`% of the clocks;
/// `Q` ends. With `drain` = 0 the consumer never reads (ring overrun test). The consumer reads
/// the head frame one byte per clock (`req.off` then `req.data` after the edge) and releases it.
/// Output: `A seq kind <payload hex>` per frame read, `O <hex>` per frame sent, `C frames
/// crc_errors framing_errors overruns cycles` at the end.
pub const FRAME_HARNESS: &str = include_str!("framing.cpp");

/// Settings of a [`FRAME_HARNESS`] run.
#[derive(Clone, Copy, Debug)]
pub struct FrameHarnessOpts {
    /// Pause the input while a frame is available or being read.
    pub pause: bool,
    /// Idle clocks between input bytes (random 0..=gap when `seed` is non-zero).
    pub gap: u32,
    /// Seed of the harness's random gaps and `out_ready`.
    pub seed: u64,
    /// Percentage of clocks with `out_ready` high while transmitting.
    pub ready_pct: u32,
    /// The consumer reads frames (false: never, to fill the ring).
    pub drain: bool,
}

/// A command of a [`FRAME_HARNESS`] run.
#[derive(Clone, Debug)]
pub enum FrameCmd {
    /// Feed bytes to the receiver.
    Feed(Vec<u8>),
    /// Send a frame `seq, kind, payload`.
    Send(u8, u8, Vec<u8>),
}

/// What a [`FRAME_HARNESS`] run produced.
#[derive(Clone, Debug, Default)]
pub struct FrameHarnessOut {
    /// Frames read from the receiver.
    pub frames: Vec<RxFrame>,
    /// Bytes of each frame sent.
    pub sent: Vec<Vec<u8>>,
    /// Receiver counters.
    pub counters: RxCounters,
    /// Clock cycles run.
    pub cycles: u64,
}

fn hex(out: &mut String, b: &[u8]) {
    use std::fmt::Write;
    for x in b {
        let _ = write!(out, "{x:02x}");
    }
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Run `cmds` on a Verilator build of [`FramePair`](crate::link::framing::FramePair).
pub fn frame_verilator(
    cmds: &[FrameCmd],
    o: FrameHarnessOpts,
) -> Result<FrameHarnessOut, crate::Error> {
    let exe = crate::harness::verilog::verilator_build(
        &frame_pair_verilog()?,
        FRAME_HARNESS,
        false,
        true,
    )?;
    let mut s = String::new();
    for c in cmds {
        match c {
            FrameCmd::Feed(b) => {
                s.push_str(&format!("F {} ", b.len()));
                hex(&mut s, b);
            }
            FrameCmd::Send(q, k, p) => {
                s.push_str(&format!("T {q} {k} {} ", p.len()));
                hex(&mut s, p);
            }
        }
        s.push('\n');
    }
    s.push_str("Q\n");
    let args = vec![
        (o.pause as u8).to_string(),
        o.gap.to_string(),
        o.seed.to_string(),
        o.ready_pct.to_string(),
        (o.drain as u8).to_string(),
    ];
    let text = crate::harness::verilog::run_harness(&exe, &args, &s)?;
    let bad = |l: &str| crate::Error::Tool(format!("bad frame harness output {l:?}"));
    let mut out = FrameHarnessOut::default();
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            ["A", q, k, rest @ ..] => out.frames.push(RxFrame {
                seq: q.parse().map_err(|_| bad(l))?,
                kind: k.parse().map_err(|_| bad(l))?,
                payload: unhex(rest.first().copied().unwrap_or("")).ok_or_else(|| bad(l))?,
            }),
            ["O", rest @ ..] => out
                .sent
                .push(unhex(rest.first().copied().unwrap_or("")).ok_or_else(|| bad(l))?),
            ["C", a, b, c, d, e] => {
                for (i, x) in [a, b, c, d].iter().enumerate() {
                    out.counters[i] = x.parse().map_err(|_| bad(l))?;
                }
                out.cycles = e.parse().map_err(|_| bad(l))?;
            }
            _ => return Err(bad(l)),
        }
    }
    Ok(out)
}
