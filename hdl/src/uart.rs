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
/// outputs `data`, `valid`, `frame_errors`, `glitches` (32-bit counters).
///
/// **Latency**: `valid` rises 2 cycles (synchroniser) + at most one cycle after the middle of the
/// stop bit, i.e. about 9.5 bit times after the start edge; the receiver is ready for the next
/// start edge from the middle of the stop bit on, so it tolerates a sender faster by up to
/// 5%.
///
/// **Proof**: `uart::tests::uart_loopback_rusthdl` (rust-hdl simulation) and
/// `tests/hdl_link_uart.rs` (Verilator, random bytes at 48/3, 25/3, 12/3, 100/3, 25/1.5 MHz
/// per Mbaud with the sender's bit times drawn exactly at the fractional ratio, gaps, glitches,
/// bad stop bits counted and not delivered).
#[derive(LogicBlock)]
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

impl Default for UartRx {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            inc: Default::default(),
            rx: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            frame_errors: Default::default(),
            glitches: Default::default(),
            s1: DFF::default(),
            s2: DFF::default(),
            state: DFF::default(),
            acc: DFF::default(),
            nbit: DFF::default(),
            sh: DFF::default(),
            out: DFF::default(),
            vld: DFF::default(),
            ferr: DFF::default(),
            glit: DFF::default(),
            sum: Default::default(),
            tick: Default::default(),
        }
    }
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
/// from 0 at the start bit), i.e. `2^16 / inc` clocks on average with one clock of jitter.
/// Bytes follow each other without idle time when `valid` is held.
///
/// **Ports**: `clock`; `inc` ([`baud_increment`]); `data`, `valid` (in), `ready` (out: the
/// transmitter is idle or in the last clock of a stop bit); `tx` (the pin, registered, idle
/// high).
///
/// **Latency**: the start bit appears on `tx` one clock after the handshake; a byte occupies
/// exactly 10 carries.
///
/// **Proof**: the same tests as [`UartRx`]; the Verilator harness of `tests/hdl_link_uart.rs`
/// decodes `tx` with a software UART sampling at mid-bit and checks every bit time is
/// `floor` or `ceil` of the ratio.
#[derive(LogicBlock)]
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

impl Default for UartTx {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            inc: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            ready: Default::default(),
            tx: Default::default(),
            busy: DFF::default(),
            acc: DFF::default(),
            sh: DFF::default(),
            nbit: DFF::default(),
            pin_n: DFF::default(),
            sum: Default::default(),
            tick: Default::default(),
            rdy: Default::default(),
            nbusy: Default::default(),
            nsh: Default::default(),
        }
    }
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
            self.acc.d.next = 0.into();
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
