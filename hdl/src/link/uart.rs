//! The UART of the host link (8N1, docs/protocol.md "Link"): a receiver and a transmitter
//! whose bit clock is a fractional (phase-accumulator) divider of the system clock, so any
//! clock-to-baud ratio of at least [`MIN_CLOCKS_PER_BIT`] works (48 MHz / 3 Mbaud = 16,
//! 25 MHz / 3 Mbaud = 8.33, 12 MHz / 3 Mbaud = 4).

use rust_hdl::prelude::*;

/// Width of the baud phase accumulator: a bit lasts `2^16 / inc` clocks on average.
pub const PHASE_BITS: u32 = 16;
/// Smallest clock-to-baud ratio the receiver supports (2 synchroniser cycles + mid-bit
/// sampling need at least 4 clocks a bit).
pub const MIN_CLOCKS_PER_BIT: f64 = 4.0;

/// The phase increment for `baud` at `clock_hz`: `round(baud * 2^16 / clock_hz)`. The mean bit
/// time is then `2^16 / inc` clocks (relative error below `1 / (2 inc)`, 6e-5 at 25 MHz /
/// 3 Mbaud). Errors when the ratio is below [`MIN_CLOCKS_PER_BIT`].
pub fn baud_increment(clock_hz: u64, baud: u64) -> Result<u16, crate::Error> {
    if baud == 0 || (clock_hz as f64) < MIN_CLOCKS_PER_BIT * baud as f64 {
        return Err(crate::Error::Config(format!(
            "UART: {clock_hz} Hz / {baud} baud is below {MIN_CLOCKS_PER_BIT} clocks a bit"
        )));
    }
    let inc = ((baud as u128) << PHASE_BITS) as f64 / clock_hz as f64;
    Ok(inc.round() as u16)
}

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum RxState {
    /// Bad stop bit (or power-up): wait for the line to be high before looking for a start bit.
    Break,
    /// Line idle (high), waiting for a start edge.
    Idle,
    /// Start edge seen, waiting for the middle of the start bit.
    Start,
    /// Sampling the 8 data bits (LSB first).
    Data,
    /// Waiting for the middle of the stop bit.
    Stop,
}

/// UART receiver, 8N1.
///
/// **Computes** the bytes on `rx`: the pin passes a two-flip-flop synchroniser; a falling edge
/// on an idle line starts a phase accumulator at `2^15 + inc/2` so that its carries fall in the
/// middle of each bit (`acc += inc` per clock, a carry out of bit 15 = one bit time). At the
/// middle of the start bit a high line is a false start (glitch) and the receiver returns to
/// idle, counting `glitches`; then 8 data bits are sampled LSB first; at the middle of the stop
/// bit a high line delivers the byte (`valid` for one cycle with `data`), a low line is a
/// framing error: the byte is *not* delivered, `frame_errors` counts it, and the receiver waits
/// for the line to return high (a break does not produce a stream of bytes).
///
/// **Ports**: `clock`; `inc` (phase increment, [`baud_increment`]); `rx` (the pin, idle high);
/// outputs `data`, `valid`, `frame_errors`, `glitches` (32-bit counters) and `frame_error`
/// (high for the one cycle in which `frame_errors` counts: for a sticky error flag that needs
/// no counter).
///
/// **Latency**: `valid` rises 2 cycles (synchroniser) + at most one cycle after the middle of the
/// stop bit, i.e. about 9.5 bit times after the start edge; the receiver is ready for the next
/// start edge from the middle of the stop bit on, so it tolerates a sender faster by up to
/// 5%.
///
/// **Proof**: `uart::tests::uart_loopback_rusthdl` (rust-hdl simulation) and
/// `hdl/tests/link_uart.rs` (Verilator, random bytes at 48/3, 25/3, 12/3, 100/3, 25/1.5 and
/// 48/12 MHz per Mbaud with the sender's bit times drawn exactly at the fractional ratio and
/// 2% fast or slow, gaps, glitches, bad stop bits counted and not delivered; and rust-hdl equal
/// to Verilator cycle for cycle).
#[derive(LogicBlock, Default)]
pub struct UartRx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Phase increment per clock ([`baud_increment`]).
    pub inc: Signal<In, Bits<16>>,
    /// The receive pin (idle high).
    pub rx: Signal<In, Bit>,
    /// Received byte (valid while `valid`).
    pub data: Signal<Out, Bits<8>>,
    /// A byte was received (one cycle).
    pub valid: Signal<Out, Bit>,
    /// Bytes dropped for a bad stop bit.
    pub frame_errors: Signal<Out, Bits<32>>,
    /// Start edges that were not a start bit at mid-bit.
    pub glitches: Signal<Out, Bits<32>>,
    /// A bad stop bit is seen in this cycle (`frame_errors` counts it at the clock edge).
    pub frame_error: Signal<Out, Bit>,
    s1: DFF<Bit>,
    s2: DFF<Bit>,
    state: DFF<RxState>,
    acc: DFF<Bits<16>>,
    nbit: DFF<Bits<4>>,
    sh: DFF<Bits<8>>,
    out: DFF<Bits<8>>,
    vld: DFF<Bit>,
    ferr: DFF<Bits<32>>,
    glit: DFF<Bits<32>>,
    sum: Signal<Local, Bits<17>>,
    tick: Signal<Local, Bit>,
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s1, s2, state, acc, nbit, sh, out, vld, ferr, glit);
        self.s1.d.next = self.rx.val();
        self.s2.d.next = self.s1.q.val();
        self.sum.next = bit_cast::<17, 16>(self.acc.q.val()) + bit_cast::<17, 16>(self.inc.val());
        self.tick.next = self.sum.val().get_bit(16);
        self.acc.d.next = self.sum.val().get_bits::<16>(0);
        self.vld.d.next = false;
        self.frame_error.next = false;
        match self.state.q.val() {
            RxState::Idle => {
                if !self.s2.q.val() {
                    self.state.d.next = RxState::Start;
                    self.acc.d.next = (self.inc.val() >> 1) + 0x8000;
                }
            }
            RxState::Start => {
                if self.tick.val() {
                    if self.s2.q.val() {
                        self.state.d.next = RxState::Idle;
                        self.glit.d.next = self.glit.q.val() + 1;
                    } else {
                        self.state.d.next = RxState::Data;
                        self.nbit.d.next = 0.into();
                    }
                }
            }
            RxState::Data => {
                if self.tick.val() {
                    self.sh.d.next = self.sh.q.val() >> 1;
                    if self.s2.q.val() {
                        self.sh.d.next = (self.sh.q.val() >> 1) | 0x80;
                    }
                    self.nbit.d.next = self.nbit.q.val() + 1;
                    if self.nbit.q.val() == 7 {
                        self.state.d.next = RxState::Stop;
                    }
                }
            }
            RxState::Stop => {
                if self.tick.val() {
                    if self.s2.q.val() {
                        self.state.d.next = RxState::Idle;
                        self.out.d.next = self.sh.q.val();
                        self.vld.d.next = true;
                    } else {
                        self.state.d.next = RxState::Break;
                        self.ferr.d.next = self.ferr.q.val() + 1;
                        self.frame_error.next = true;
                    }
                }
            }
            RxState::Break => {
                if self.s2.q.val() {
                    self.state.d.next = RxState::Idle;
                }
            }
            _ => {
                self.state.d.next = RxState::Idle;
            }
        }
        self.data.next = self.out.q.val();
        self.valid.next = self.vld.q.val();
        self.frame_errors.next = self.ferr.q.val();
        self.glitches.next = self.glit.q.val();
    }
}

/// UART transmitter, 8N1.
///
/// **Computes** the line waveform of the bytes handed over on `data`/`valid` (a ready/valid
/// handshake: a byte is taken on a clock edge where `valid && ready`): start bit, 8 data bits
/// LSB first, stop bit, each lasting one carry of the phase accumulator (`acc += inc` per clock
/// from 0 at a start bit after idle), i.e. `2^16 / inc` clocks on average with one clock of
/// jitter. Bytes follow each other without idle time when `valid` is held, and the phase
/// carries over from byte to byte, so a stream runs at exactly `inc / 2^16` bits a clock.
///
/// **Ports**: `clock`; `inc` ([`baud_increment`]); `data`, `valid` (in), `ready` (out: the
/// transmitter is idle or in the last clock of a stop bit); `tx` (the pin, registered, idle
/// high).
///
/// **Latency**: the start bit appears on `tx` one clock after the handshake; a byte occupies
/// exactly 10 carries.
///
/// **Proof**: the same tests as [`UartRx`]; the Verilator harness of `hdl/tests/link_uart.rs`
/// decodes `tx` with a software UART sampling at mid-bit and checks every bit time is
/// `floor` or `ceil` of the ratio.
#[derive(LogicBlock, Default)]
pub struct UartTx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Phase increment per clock ([`baud_increment`]).
    pub inc: Signal<In, Bits<16>>,
    /// Byte to send.
    pub data: Signal<In, Bits<8>>,
    /// `data` is valid.
    pub valid: Signal<In, Bit>,
    /// The transmitter takes `data` on this edge if `valid`.
    pub ready: Signal<Out, Bit>,
    /// The transmit pin (idle high).
    pub tx: Signal<Out, Bit>,
    busy: DFF<Bit>,
    acc: DFF<Bits<16>>,
    sh: DFF<Bits<10>>,
    nbit: DFF<Bits<4>>,
    pin_n: DFF<Bit>,
    sum: Signal<Local, Bits<17>>,
    tick: Signal<Local, Bit>,
    rdy: Signal<Local, Bit>,
    nbusy: Signal<Local, Bit>,
    nsh: Signal<Local, Bits<10>>,
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, busy, acc, sh, nbit, pin_n);
        self.sum.next = bit_cast::<17, 16>(self.acc.q.val()) + bit_cast::<17, 16>(self.inc.val());
        self.tick.next = self.sum.val().get_bit(16);
        self.acc.d.next = self.sum.val().get_bits::<16>(0);
        // ready when idle, or in the last clock of the stop bit
        self.rdy.next = !self.busy.q.val() | (self.tick.val() & (self.nbit.q.val() == 9));
        self.nbusy.next = self.busy.q.val();
        self.nsh.next = self.sh.q.val();
        if self.busy.q.val() & self.tick.val() {
            self.nsh.next = (self.sh.q.val() >> 1) | 0x200;
            self.nbit.d.next = self.nbit.q.val() + 1;
            if self.nbit.q.val() == 9 {
                self.nbusy.next = false;
            }
        }
        if self.rdy.val() & self.valid.val() {
            self.nbusy.next = true;
            // from idle the phase starts at 0; back to back it keeps its fraction, so a
            // stream runs at exactly inc / 2^16 bits a clock
            if !self.busy.q.val() {
                self.acc.d.next = 0.into();
            }
            self.nbit.d.next = 0.into();
            self.nsh.next = (bit_cast::<10, 8>(self.data.val()) << 1) | 0x200;
        }
        self.busy.d.next = self.nbusy.val();
        self.sh.d.next = self.nsh.val();
        // the pin: the low bit of the shift register while busy, else high
        self.pin_n.d.next = self.nbusy.val() & !self.nsh.val().get_bit(0);
        self.ready.next = self.rdy.val();
        self.tx.next = !self.pin_n.q.val();
    }
}

/// Receiver and transmitter side by side (the test top of the UART; `LinkTop` instantiates
/// them separately).
///
/// **Ports**: `clock`, `inc` (shared), the receiver's `rx`, `rx_data`, `rx_valid`,
/// `frame_errors`, `glitches`, and the transmitter's `tx_data`, `tx_valid`, `tx_ready`, `tx`.
/// **Latency** as [`UartRx`] and [`UartTx`]. **Proof** `hdl/tests/link_uart.rs`.
#[derive(LogicBlock, Default)]
pub struct UartPair {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Phase increment of both.
    pub inc: Signal<In, Bits<16>>,
    /// Receive pin.
    pub rx: Signal<In, Bit>,
    /// Received byte.
    pub rx_data: Signal<Out, Bits<8>>,
    /// A byte was received.
    pub rx_valid: Signal<Out, Bit>,
    /// Receiver framing errors.
    pub frame_errors: Signal<Out, Bits<32>>,
    /// Receiver false starts.
    pub glitches: Signal<Out, Bits<32>>,
    /// Byte to send.
    pub tx_data: Signal<In, Bits<8>>,
    /// `tx_data` valid.
    pub tx_valid: Signal<In, Bit>,
    /// The transmitter takes the byte.
    pub tx_ready: Signal<Out, Bit>,
    /// Transmit pin.
    pub tx: Signal<Out, Bit>,
    urx: UartRx,
    utx: UartTx,
}

impl Logic for UartPair {
    #[hdl_gen]
    fn update(&mut self) {
        self.urx.clock.next = self.clock.val();
        self.utx.clock.next = self.clock.val();
        self.urx.inc.next = self.inc.val();
        self.utx.inc.next = self.inc.val();
        self.urx.rx.next = self.rx.val();
        self.rx_data.next = self.urx.data.val();
        self.rx_valid.next = self.urx.valid.val();
        self.frame_errors.next = self.urx.frame_errors.val();
        self.glitches.next = self.urx.glitches.val();
        self.utx.data.next = self.tx_data.val();
        self.utx.valid.next = self.tx_valid.val();
        self.tx_ready.next = self.utx.ready.val();
        self.tx.next = self.utx.tx.val();
    }
}

/// A test scenario of [`UartPair`].
#[derive(Clone, Debug, Default)]
pub struct UartScenario {
    /// Phase increment.
    pub inc: u16,
    /// The `rx` pin as runs of (level, cycles); the line is high afterwards.
    pub rx_runs: Vec<(bool, u64)>,
    /// Bytes to transmit, each offered `gap` cycles after the previous one was taken.
    pub tx: Vec<(u8, u32)>,
    /// Drive `rx` from `tx` (a wire) instead of `rx_runs`.
    pub loopback: bool,
}

/// What a [`UartPair`] did in a scenario.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UartOutcome {
    /// Bytes delivered by the receiver.
    pub rx: Vec<u8>,
    /// Framing-error counter at the end.
    pub frame_errors: u64,
    /// False-start counter at the end.
    pub glitches: u64,
    /// The `tx` pin as runs of (level, cycles).
    pub tx_runs: Vec<(bool, u64)>,
}

/// Cycles run after everything was sent and received.
const TAIL: u64 = 400;

fn push_run(runs: &mut Vec<(bool, u64)>, level: bool) {
    match runs.last_mut() {
        Some((l, n)) if *l == level => *n += 1,
        _ => runs.push((level, 1)),
    }
}

/// Run a scenario in rust-hdl's simulator (cycle by cycle, the same protocol as the Verilator
/// harness `uart.cpp`).
pub fn uart_rusthdl(sc: &UartScenario) -> Result<UartOutcome, String> {
    let mut u = UartPair::default();
    u.connect_all();
    u.inc.next = (sc.inc as u64).to_bits();
    let rx_total: u64 = sc.rx_runs.iter().map(|r| r.1).sum();
    let mut out = UartOutcome::default();
    let (mut run, mut left) = (0usize, sc.rx_runs.first().map_or(0, |r| r.1));
    let (mut next, mut wait) = (0usize, sc.tx.first().map_or(0, |t| t.1 as u64));
    let mut prev_tx = true;
    let mut c = 0u64;
    let mut done_at: Option<u64> = None;
    loop {
        let level = if sc.loopback {
            prev_tx
        } else if run < sc.rx_runs.len() {
            sc.rx_runs[run].0
        } else {
            true
        };
        u.rx.next = level;
        let offer = next < sc.tx.len() && wait == 0;
        u.tx_valid.next = offer;
        u.tx_data.next = (sc.tx.get(next).map_or(0, |t| t.0) as u64).to_bits();
        crate::rtl::simx::settle(&mut u)?;
        if u.rx_valid.val() {
            out.rx.push(u.rx_data.val().to_u64() as u8);
        }
        let txp = u.tx.val();
        push_run(&mut out.tx_runs, txp);
        prev_tx = txp;
        if offer && u.tx_ready.val() {
            next += 1;
            wait = sc.tx.get(next).map_or(0, |t| t.1 as u64);
        } else {
            wait = wait.saturating_sub(1);
        }
        if !sc.loopback && run < sc.rx_runs.len() {
            left -= 1;
            if left == 0 {
                run += 1;
                left = sc.rx_runs.get(run).map_or(0, |r| r.1);
            }
        }
        crate::rtl::simx::tick(&mut u, |u| &mut u.clock)?;
        c += 1;
        let finished = c >= rx_total && next >= sc.tx.len() && u.tx_ready.val();
        match done_at {
            None if finished => done_at = Some(c),
            Some(d) if c >= d + TAIL => break,
            _ => {}
        }
    }
    out.frame_errors = u.frame_errors.val().to_u64();
    out.glitches = u.glitches.val().to_u64();
    Ok(out)
}

/// Verilog of [`UartPair`].
pub fn uart_pair_verilog() -> Result<String, crate::Error> {
    let mut u = UartPair::default();
    u.connect_all();
    crate::rtl::block_verilog(&u)
}

/// One character on the line for [`line_runs`].
#[derive(Clone, Copy, Debug)]
pub enum LineEvent {
    /// A byte; `false` = its stop bit is low (then the line returns high after the stop bit).
    Byte(u8, bool),
    /// Idle (high) for this many bit times.
    Idle(f64),
    /// A low pulse of this many clock cycles on the idle line (a glitch, not a start bit).
    Glitch(u64),
}

/// The waveform of `events` sent by an ideal UART whose bit lasts exactly `clocks_per_bit`
/// (fractional) cycles, starting `phase` (0..1) cycles into the first cycle, as runs of
/// (level, cycles): cycle `c` carries the level the line has at time `c`.
pub fn line_runs(events: &[LineEvent], clocks_per_bit: f64, phase: f64) -> Vec<(bool, u64)> {
    // segments (level, end time)
    let mut seg: Vec<(bool, f64)> = Vec::new();
    let mut t = 2.0 * clocks_per_bit + phase;
    seg.push((true, t));
    for e in events {
        match *e {
            LineEvent::Byte(b, stop_ok) => {
                let mut bits = vec![false];
                bits.extend((0..8).map(|k| b >> k & 1 == 1));
                bits.push(stop_ok);
                for bit in bits {
                    t += clocks_per_bit;
                    seg.push((bit, t));
                }
                if !stop_ok {
                    t += clocks_per_bit;
                    seg.push((true, t));
                }
            }
            LineEvent::Idle(bits) => {
                t += bits * clocks_per_bit;
                seg.push((true, t));
            }
            LineEvent::Glitch(n) => {
                t += n as f64;
                seg.push((false, t));
            }
        }
    }
    t += 2.0 * clocks_per_bit;
    seg.push((true, t));
    let mut runs = Vec::new();
    let mut k = 0;
    let end = t.ceil() as u64;
    for c in 0..end {
        while k + 1 < seg.len() && (c as f64) >= seg[k].1 {
            k += 1;
        }
        push_run(&mut runs, seg[k].0);
    }
    runs
}

/// Decode a line waveform (runs) like an ideal receiver sampling at mid-bit with bits of
/// `clocks_per_bit` cycles from each falling edge; returns the bytes with good stop bits and
/// the number with bad ones.
pub fn decode_line(runs: &[(bool, u64)], clocks_per_bit: f64) -> (Vec<u8>, usize) {
    let lv: Vec<bool> = runs
        .iter()
        .flat_map(|&(l, n)| std::iter::repeat(l).take(n as usize))
        .collect();
    let at = |x: f64| lv.get(x as usize).copied().unwrap_or(true);
    let (mut out, mut bad) = (Vec::new(), 0);
    let mut c = 1usize;
    while c < lv.len() {
        if lv[c - 1] && !lv[c] {
            let t0 = c as f64;
            let mut b = 0u8;
            for k in 0..8 {
                if at(t0 + (k as f64 + 1.5) * clocks_per_bit) {
                    b |= 1 << k;
                }
            }
            if at(t0 + 9.5 * clocks_per_bit) {
                out.push(b);
            } else {
                bad += 1;
            }
            c = (t0 + 9.5 * clocks_per_bit) as usize + 1;
        } else {
            c += 1;
        }
    }
    (out, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uart_loopback_rusthdl() {
        for (clk, baud) in [(48_000_000u64, 3_000_000u64), (25_000_000, 3_000_000)] {
            let inc = baud_increment(clk, baud).unwrap();
            let r = 65536.0 / inc as f64;
            let bytes: Vec<u8> = (0..24u32).map(|i| (i * 89 + 7) as u8).collect();
            // an ideal sender at the exact fractional ratio, a glitch and a bad stop bit
            let mut ev: Vec<LineEvent> = bytes.iter().map(|&b| LineEvent::Byte(b, true)).collect();
            ev.insert(5, LineEvent::Byte(0x55, false));
            ev.insert(9, LineEvent::Glitch(2));
            ev.insert(10, LineEvent::Idle(1.0));
            let sc = UartScenario {
                inc,
                rx_runs: line_runs(&ev, clk as f64 / baud as f64, 0.3),
                tx: bytes.iter().map(|&b| (b, 0)).collect(),
                loopback: false,
            };
            let o = uart_rusthdl(&sc).unwrap();
            assert_eq!(o.rx, bytes, "{clk}/{baud}");
            assert_eq!((o.frame_errors, o.glitches), (1, 1));
            assert_eq!(decode_line(&o.tx_runs, r), (bytes.clone(), 0));
            let lp = uart_rusthdl(&UartScenario {
                loopback: true,
                rx_runs: vec![],
                ..sc
            })
            .unwrap();
            assert_eq!(lp.rx, bytes);
        }
        uart_pair_verilog().unwrap();
    }
}
