//! Frames of the host link (docs/protocol.md "Frames"): the CRC-32 byte step, the frame
//! receiver (streaming COBS decoder + CRC + header checks into a ring of block RAM) and the frame
//! transmitter (header + payload from a buffer, CRC appended, COBS-encoded, 0x00 delimiter).
//! All protocol constants come from `thermo_proto`.

use crate::link::port::{ReplySink, RequestSource};
use rust_hdl::prelude::*;
use thermo_proto::crc::POLY;
use thermo_proto::{MAX_PAYLOAD, MAX_WIRE_FRAME, OVERHEAD, VERSION};

/// The CRC register after a body *and its own CRC* (little-endian) have been shifted through
/// it, before the final XOR: constant for every correct frame (0xDEBB20E3), so the receiver
/// checks the CRC without knowing where the body ends.
pub fn crc_residue() -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    let body = b"thermo";
    let crc = thermo_proto::crc::crc32_bitwise(body);
    for &b in body.iter().chain(crc.to_le_bytes().iter()) {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { (c >> 1) ^ POLY } else { c >> 1 };
        }
    }
    c
}

/// One byte of the bitwise CRC-32 (`thermo_proto::crc::crc32_bitwise`'s inner loop unrolled).
///
/// **Computes** `crc_out = step^8(crc_in ^ byte)` with `step(c) = c >> 1 ^ (c & 1 ? POLY : 0)`:
/// eight shift-register steps in one cycle (pure XOR logic). **Ports** `crc_in`, `byte`,
/// `crc_out`. **Latency** combinational. **Proof** every frame test (`framing::tests`,
/// `hdl/tests/link_frame.rs`): frames are accepted and produced bit-exact against
/// `thermo_proto`.
#[derive(LogicBlock)]
pub struct Crc32Byte {
    /// Register before the byte (not inverted).
    pub crc_in: Signal<In, Bits<32>>,
    /// The byte.
    pub data_in: Signal<In, Bits<8>>,
    /// Register after the byte.
    pub crc_out: Signal<Out, Bits<32>>,
    poly: Constant<Bits<32>>,
    c0: Signal<Local, Bits<32>>,
    c1: Signal<Local, Bits<32>>,
    c2: Signal<Local, Bits<32>>,
    c3: Signal<Local, Bits<32>>,
    c4: Signal<Local, Bits<32>>,
    c5: Signal<Local, Bits<32>>,
    c6: Signal<Local, Bits<32>>,
    c7: Signal<Local, Bits<32>>,
    c8: Signal<Local, Bits<32>>,
}

impl Default for Crc32Byte {
    fn default() -> Self {
        Self {
            crc_in: Default::default(),
            data_in: Default::default(),
            crc_out: Default::default(),
            poly: Constant::new((POLY as u64).to_bits()),
            c0: Default::default(),
            c1: Default::default(),
            c2: Default::default(),
            c3: Default::default(),
            c4: Default::default(),
            c5: Default::default(),
            c6: Default::default(),
            c7: Default::default(),
            c8: Default::default(),
        }
    }
}

impl Logic for Crc32Byte {
    #[hdl_gen]
    fn update(&mut self) {
        self.c0.next = self.crc_in.val() ^ bit_cast::<32, 8>(self.data_in.val());
        self.c1.next = self.c0.val() >> 1;
        if self.c0.val().get_bit(0) {
            self.c1.next = (self.c0.val() >> 1) ^ self.poly.val();
        }
        self.c2.next = self.c1.val() >> 1;
        if self.c1.val().get_bit(0) {
            self.c2.next = (self.c1.val() >> 1) ^ self.poly.val();
        }
        self.c3.next = self.c2.val() >> 1;
        if self.c2.val().get_bit(0) {
            self.c3.next = (self.c2.val() >> 1) ^ self.poly.val();
        }
        self.c4.next = self.c3.val() >> 1;
        if self.c3.val().get_bit(0) {
            self.c4.next = (self.c3.val() >> 1) ^ self.poly.val();
        }
        self.c5.next = self.c4.val() >> 1;
        if self.c4.val().get_bit(0) {
            self.c5.next = (self.c4.val() >> 1) ^ self.poly.val();
        }
        self.c6.next = self.c5.val() >> 1;
        if self.c5.val().get_bit(0) {
            self.c6.next = (self.c5.val() >> 1) ^ self.poly.val();
        }
        self.c7.next = self.c6.val() >> 1;
        if self.c6.val().get_bit(0) {
            self.c7.next = (self.c6.val() >> 1) ^ self.poly.val();
        }
        self.c8.next = self.c7.val() >> 1;
        if self.c7.val().get_bit(0) {
            self.c8.next = (self.c7.val() >> 1) ^ self.poly.val();
        }
        self.crc_out.next = self.c8.val();
    }
}

/// Bytes of the receive ring of the default [`FrameRx`] (room for four frames of
/// `MAX_PAYLOAD`; a board build may choose a smaller ring with [`FrameRx::with_ring`]).
pub const RX_RING: usize = 4096;

/// Frame receiver.
///
/// **Computes**, byte by byte, exactly what `thermo_proto::frame::FrameDecoder` computes: every
/// 0x00 ends a frame; the bytes before it are COBS-decoded on the fly (a code byte opens a block
/// of `code - 1` data bytes, a 0x00 is inserted between blocks unless the previous code was
/// 0xFF), every decoded body byte goes through [`Crc32Byte`], and at the delimiter the frame is
/// classified with the decoder's priorities: more than `MAX_WIRE_FRAME` bytes (overlong) →
/// framing error; nothing → ignored; COBS block cut short → framing error; body shorter than
/// `OVERHEAD` → framing error; CRC register not equal to [`crc_residue`] → CRC error; version
/// not `VERSION` → framing error; length field not `body - OVERHEAD` or above `MAX_PAYLOAD` →
/// framing error; otherwise the frame is *accepted*. The body bytes after the version
/// (`seq, kind, len_lo, len_hi, payload, crc`) are written into a ring of block RAM ([`RX_RING`]
/// bytes, or the size given to [`FrameRx::with_ring`]) from the end of the last accepted frame; an accepted frame is committed (the ring's
/// write end moves past its `4 + len` bytes), anything else is forgotten. A frame that does not
/// fit into the free part of the ring is dropped and counted in `overruns` (not a line error:
/// the host's time-out recovers it).
///
/// **Ports**: `clock`; input stream `in_data`, `in_valid` (one byte per clock at most, always
/// accepted); the consumer side `req` ([`RequestSource`], protocol in
/// [`crate::link::port::RequestPort`]): `avail` (at least one committed frame), `off` (offset in
/// the head frame: 0 seq, 1 kind, 2..3 len, 4.. payload), `data` (the byte at the offset
/// presented on the previous edge), `done` (pulse: drop the head frame) with `release` (= 4 +
/// its len), the error events `crc_evt`, `framing_evt`; counters `frames`, `crc_errors`, `framing_errors` (as `DecoderStats`) and
/// `overruns`.
///
/// **Latency**: the frame is `req.avail` on the clock after the edge that took its delimiter.
///
/// **Proof**: `framing::tests` (rust-hdl simulation against `encode_frame`/`FrameDecoder`) and
/// `hdl/tests/link_frame.rs` (Verilator fuzz: random streams of valid, corrupted, truncated,
/// overlong, wrong-version and wrong-length frames and garbage; accepted frames and all counters
/// equal `FrameDecoder`'s, every valid frame after garbage accepted).
#[derive(LogicBlock)]
pub struct FrameRx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Input byte.
    pub in_data: Signal<In, Bits<8>>,
    /// `in_data` holds a byte.
    pub in_valid: Signal<In, Bit>,
    /// The consumer side: the head frame, its release, the error events.
    pub req: RequestSource,
    /// Frames accepted.
    pub frames: Signal<Out, Bits<32>>,
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: Signal<Out, Bits<32>>,
    /// Frames dropped for bad COBS, length, version, or overlong.
    pub framing_errors: Signal<Out, Bits<32>>,
    /// Good frames dropped because the ring was full.
    pub overruns: Signal<Out, Bits<32>>,
    ring: crate::rtl::mem::Mem,
    crc: Crc32Byte,
    m: DFF<Bits<11>>,
    overlong: DFF<Bit>,
    rem: DFF<Bits<8>>,
    prev_ff: DFF<Bit>,
    n: DFF<Bits<11>>,
    ncrc: DFF<Bits<32>>,
    ver_ok: DFF<Bit>,
    lenf: DFF<Bits<16>>,
    nofit: DFF<Bit>,
    fs: DFF<Bits<12>>,
    rp: DFF<Bits<12>>,
    count: DFF<Bits<12>>,
    c_frames: DFF<Bits<32>>,
    c_crc: DFF<Bits<32>>,
    c_framing: DFF<Bits<32>>,
    c_over: DFF<Bits<32>>,
    k_wire: Constant<Bits<11>>,
    k_residue_n: Constant<Bits<32>>,
    k_version: Constant<Bits<8>>,
    k_overhead: Constant<Bits<11>>,
    k_maxpay: Constant<Bits<16>>,
    emit: Signal<Local, Bit>,
    eb: Signal<Local, Bits<8>>,
    woff: Signal<Local, Bits<13>>,
    used: Signal<Local, Bits<13>>,
    diff: Signal<Local, Bits<12>>,
    body_len: Signal<Local, Bits<11>>,
    fits: Signal<Local, Bit>,
    k_ring: Constant<Bits<13>>,
    good: Signal<Local, Bit>,
    commit: Signal<Local, Bit>,
}

impl Default for FrameRx {
    fn default() -> Self {
        Self::with_ring(RX_RING)
    }
}

impl FrameRx {
    /// A receiver whose ring holds `ring` bytes (a power of two, 512..=4096). Frames longer
    /// than the ring never fit and are counted as overruns, so the board must advertise a
    /// `max_payload` of at most `ring - 4` (see `command::LinkOptions`).
    pub fn with_ring(ring: usize) -> Self {
        assert!(
            ring.is_power_of_two() && (512..=RX_RING).contains(&ring),
            "receive ring of {ring} bytes: must be a power of two in 512..=4096"
        );
        Self {
            clock: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            req: Default::default(),
            frames: Default::default(),
            crc_errors: Default::default(),
            framing_errors: Default::default(),
            overruns: Default::default(),
            ring: crate::rtl::mem::Mem::new(ring.trailing_zeros() as usize, 8, &[]),
            k_ring: Constant::new((ring as u64).to_bits()),
            crc: Crc32Byte::default(),
            m: Default::default(),
            overlong: Default::default(),
            rem: Default::default(),
            prev_ff: Default::default(),
            n: Default::default(),
            ncrc: Default::default(),
            ver_ok: Default::default(),
            lenf: Default::default(),
            nofit: Default::default(),
            fs: Default::default(),
            rp: Default::default(),
            count: Default::default(),
            c_frames: Default::default(),
            c_crc: Default::default(),
            c_framing: Default::default(),
            c_over: Default::default(),
            k_wire: Constant::new((MAX_WIRE_FRAME as u64).to_bits()),
            k_residue_n: Constant::new(((!crc_residue()) as u64).to_bits()),
            k_version: Constant::new((VERSION as u64).to_bits()),
            k_overhead: Constant::new((OVERHEAD as u64).to_bits()),
            k_maxpay: Constant::new((MAX_PAYLOAD as u64).to_bits()),
            emit: Default::default(),
            eb: Default::default(),
            woff: Default::default(),
            used: Default::default(),
            diff: Default::default(),
            body_len: Default::default(),
            fits: Default::default(),
            good: Default::default(),
            commit: Default::default(),
        }
    }
}

impl Logic for FrameRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, m, overlong, rem, prev_ff, n, ncrc, ver_ok, lenf, nofit, fs, rp, count,
            c_frames, c_crc, c_framing, c_over
        );
        self.ring.clock.next = self.clock.val();
        // COBS: which body byte (if any) this input byte produces
        self.emit.next = false;
        self.eb.next = self.in_data.val();
        if self.in_valid.val() & (self.in_data.val() != 0) & !self.overlong.q.val() {
            if self.m.q.val() == self.k_wire.val() {
                self.overlong.d.next = true;
            } else {
                self.m.d.next = self.m.q.val() + 1;
                if self.rem.q.val() == 0 {
                    // a code byte: a zero between blocks unless first or after 0xFF
                    self.emit.next = (self.m.q.val() != 0) & !self.prev_ff.q.val();
                    self.eb.next = 0.into();
                    self.rem.d.next = self.in_data.val() - 1;
                    self.prev_ff.d.next = self.in_data.val() == 0xFF;
                } else {
                    self.emit.next = true;
                    self.rem.d.next = self.rem.q.val() - 1;
                }
            }
        }
        // the body byte: CRC, header capture, ring write
        self.crc.crc_in.next = !self.ncrc.q.val();
        self.crc.data_in.next = self.eb.val();
        // (differences into a local first: Verilog would widen an expression inside a cast)
        self.diff.next = self.fs.q.val() - self.rp.q.val();
        self.used.next = bit_cast::<13, 12>(self.diff.val());
        self.body_len.next = self.n.q.val() - self.k_overhead.val();
        self.woff.next = bit_cast::<13, 11>(self.n.q.val()) - 1;
        self.fits.next = (self.woff.val() + self.used.val()) < self.k_ring.val();
        self.ring.write_address.next =
            bit_cast::<16, 12>(self.fs.q.val() + self.woff.val().get_bits::<12>(0));
        self.ring.write_data.next = bit_cast::<32, 8>(self.eb.val());
        self.ring.write_enable.next = false;
        if self.emit.val() {
            self.ncrc.d.next = !self.crc.crc_out.val();
            self.n.d.next = self.n.q.val() + 1;
            if self.n.q.val() == 0 {
                // only whether the version matches is kept (one flip-flop, not eight)
                self.ver_ok.d.next = self.eb.val() == self.k_version.val();
            }
            if self.n.q.val() == 3 {
                self.lenf.d.next = (self.lenf.q.val() & 0xFF00) | bit_cast::<16, 8>(self.eb.val());
            }
            if self.n.q.val() == 4 {
                self.lenf.d.next =
                    (self.lenf.q.val() & 0x00FF) | (bit_cast::<16, 8>(self.eb.val()) << 8);
            }
            if self.n.q.val() != 0 {
                if self.fits.val() {
                    self.ring.write_enable.next = true;
                } else {
                    self.nofit.d.next = true;
                }
            }
        }
        // the delimiter: classify, count, commit or forget
        self.good.next = !self.overlong.q.val()
            & (self.m.q.val() != 0)
            & (self.rem.q.val() == 0)
            & (self.n.q.val() >= self.k_overhead.val())
            & (self.ncrc.q.val() == self.k_residue_n.val())
            & self.ver_ok.q.val()
            & (self.lenf.q.val() == bit_cast::<16, 11>(self.body_len.val()))
            & (self.lenf.q.val() <= self.k_maxpay.val());
        self.commit.next = false;
        self.req.crc_evt.next = false;
        self.req.framing_evt.next = false;
        if self.in_valid.val() & (self.in_data.val() == 0) {
            if self.overlong.q.val() {
                self.req.framing_evt.next = true;
            } else if self.m.q.val() != 0 {
                if (self.rem.q.val() != 0) | (self.n.q.val() < self.k_overhead.val()) {
                    // COBS block cut short, or too short for header and CRC
                    self.req.framing_evt.next = true;
                } else if self.ncrc.q.val() != self.k_residue_n.val() {
                    self.req.crc_evt.next = true;
                } else if !self.good.val() {
                    self.req.framing_evt.next = true;
                } else if self.nofit.q.val() {
                    self.c_over.d.next = self.c_over.q.val() + 1;
                } else {
                    self.c_frames.d.next = self.c_frames.q.val() + 1;
                    self.commit.next = true;
                }
            }
            self.m.d.next = 0.into();
            self.overlong.d.next = false;
            self.rem.d.next = 0.into();
            self.prev_ff.d.next = false;
            self.n.d.next = 0.into();
            self.ncrc.d.next = 0.into();
            self.nofit.d.next = false;
        }
        if self.req.crc_evt.val() {
            self.c_crc.d.next = self.c_crc.q.val() + 1;
        }
        if self.req.framing_evt.val() {
            self.c_framing.d.next = self.c_framing.q.val() + 1;
        }
        // the ring's ends
        if self.commit.val() {
            self.fs.d.next = self.fs.q.val() + 4 + self.lenf.q.val().get_bits::<12>(0);
        }
        if self.req.done.val() {
            self.rp.d.next = self.rp.q.val() + self.req.release.val();
        }
        if self.commit.val() & !self.req.done.val() {
            self.count.d.next = self.count.q.val() + 1;
        }
        if !self.commit.val() & self.req.done.val() {
            self.count.d.next = self.count.q.val() - 1;
        }
        self.ring.read_address.next = bit_cast::<16, 12>(self.rp.q.val() + self.req.off.val());
        self.req.data.next = self.ring.read_data.val().get_bits::<8>(0);
        self.req.avail.next = self.count.q.val() != 0;
        self.frames.next = self.c_frames.q.val();
        self.crc_errors.next = self.c_crc.q.val();
        self.framing_errors.next = self.c_framing.q.val();
        self.overruns.next = self.c_over.q.val();
    }
}

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum TxState {
    Idle,
    /// Look ahead from the block start for a zero, 254 bytes or the end of the body.
    Scan,
    /// Hand out the block's code byte.
    Code,
    /// Hand out the block's bytes.
    Data,
    /// Hand out the 0x00 delimiter.
    Delim,
}

/// Frame transmitter.
///
/// **Computes** `thermo_proto::encode_frame(seq, kind, payload)` byte for byte: the body
/// `VERSION, seq, kind, len (LE), payload, crc32 (LE)` is COBS-encoded block by block. For each
/// block a look-ahead scan (2 cycles a byte: the buffer read is registered) walks from the
/// block start until a zero byte, 254 non-zero bytes or the end of the body; the scan is the
/// only pass that feeds bytes to [`Crc32Byte`] (each body position is scanned exactly once,
/// in order), so by the time the scan reaches the CRC bytes the CRC is complete. Then the code
/// byte and the block's bytes (read again) are handed out, and after the last block the 0x00
/// delimiter.
///
/// **Ports**: `clock`; `reply` ([`ReplySink`], protocol in [`crate::link::port::ReplyPort`]):
/// the payload buffer's write port `we`, `addr` (10 bits), `data` (write it while `busy` is
/// low); `seq`, `kind`, `len` (at most the buffer's size) and `send` (pulse while idle: latch
/// them and start); `busy`; the output byte stream `out_data`,
/// `out_valid`, `out_ready` (ready/valid; a byte moves on an edge with both high).
///
/// **Latency**: the first code byte is offered after a scan of at most 255 positions (2 cycles
/// each); in a stream of ready bytes each 254-byte block costs at most 2 x 255 scan cycles
/// plus 2 cycles per byte handed out, far below the UART's 10 bit times a byte.
///
/// **Proof**: `framing::tests::frame_tx_equals_encode_frame` (rust-hdl, payload lengths around
/// every COBS boundary) and `hdl/tests/link_frame.rs` (Verilator, random frames and random
/// back-pressure, output equal to `encode_frame` and accepted by `FrameDecoder`).
#[derive(LogicBlock)]
pub struct FrameTx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The payload buffer's write port and the frame's header and start.
    pub reply: ReplySink,
    /// Output byte.
    pub out_data: Signal<Out, Bits<8>>,
    /// `out_data` is valid.
    pub out_valid: Signal<Out, Bit>,
    /// The consumer takes `out_data` on this edge.
    pub out_ready: Signal<In, Bit>,
    pbuf: crate::rtl::mem::Mem,
    crc: Crc32Byte,
    state: DFF<TxState>,
    r_seq: DFF<Bits<8>>,
    r_kind: DFF<Bits<8>>,
    r_len: DFF<Bits<11>>,
    p: DFF<Bits<11>>,
    s: DFF<Bits<11>>,
    e: DFF<Bits<11>>,
    q: DFF<Bits<11>>,
    ph: DFF<Bit>,
    last: DFF<Bit>,
    zero: DFF<Bit>,
    code: DFF<Bits<8>>,
    ncrc: DFF<Bits<32>>,
    k_version: Constant<Bits<8>>,
    pos: Signal<Local, Bits<11>>,
    total: Signal<Local, Bits<11>>,
    pay_end: Signal<Local, Bits<11>>,
    kk: Signal<Local, Bits<2>>,
    crcv: Signal<Local, Bits<32>>,
    bb: Signal<Local, Bits<8>>,
    raddr: Signal<Local, Bits<11>>,
    blen: Signal<Local, Bits<11>>,
}

impl Default for FrameTx {
    fn default() -> Self {
        Self::with_buffer(MAX_PAYLOAD)
    }
}

impl FrameTx {
    /// A transmitter whose payload buffer holds `bytes` (a power of two, 256..=1024): the
    /// largest reply payload.
    pub fn with_buffer(bytes: usize) -> Self {
        assert!(
            bytes.is_power_of_two() && (256..=MAX_PAYLOAD).contains(&bytes),
            "reply buffer of {bytes} bytes: must be a power of two in 256..=1024"
        );
        Self {
            clock: Default::default(),
            reply: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            pbuf: crate::rtl::mem::Mem::new(bytes.trailing_zeros() as usize, 8, &[]),
            crc: Crc32Byte::default(),
            state: Default::default(),
            r_seq: Default::default(),
            r_kind: Default::default(),
            r_len: Default::default(),
            p: Default::default(),
            s: Default::default(),
            e: Default::default(),
            q: Default::default(),
            ph: Default::default(),
            last: Default::default(),
            zero: Default::default(),
            code: Default::default(),
            ncrc: Default::default(),
            k_version: Constant::new((VERSION as u64).to_bits()),
            pos: Default::default(),
            total: Default::default(),
            pay_end: Default::default(),
            kk: Default::default(),
            crcv: Default::default(),
            bb: Default::default(),
            raddr: Default::default(),
            blen: Default::default(),
        }
    }
}

impl Logic for FrameTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, r_seq, r_kind, r_len, p, s, e, q, ph, last, zero, code, ncrc
        );
        self.pbuf.clock.next = self.clock.val();
        self.pbuf.write_enable.next = self.reply.we.val();
        self.pbuf.write_address.next = bit_cast::<16, 10>(self.reply.addr.val());
        self.pbuf.write_data.next = bit_cast::<32, 8>(self.reply.data.val());
        // the body byte at `pos`
        self.total.next = self.r_len.q.val() + 9;
        self.pay_end.next = self.r_len.q.val() + 5;
        self.pos.next = self.q.q.val();
        if self.state.q.val() == TxState::Scan {
            self.pos.next = self.p.q.val();
        }
        self.raddr.next = self.pos.val() - 5;
        self.pbuf.read_address.next = bit_cast::<16, 10>(self.raddr.val().get_bits::<10>(0));
        // pos - pay_end is 0..=3 where it is used (the CRC bytes): two bits of it suffice
        self.kk.next = self.pos.val().get_bits::<2>(0) - self.pay_end.val().get_bits::<2>(0);
        self.crcv.next = self.ncrc.q.val();
        self.bb.next = self.pbuf.read_data.val().get_bits::<8>(0);
        if self.pos.val() >= self.pay_end.val() {
            self.bb.next = self.crcv.val().get_bits::<8>(24);
            if self.kk.val() == 0 {
                self.bb.next = self.crcv.val().get_bits::<8>(0);
            }
            if self.kk.val() == 1 {
                self.bb.next = self.crcv.val().get_bits::<8>(8);
            }
            if self.kk.val() == 2 {
                self.bb.next = self.crcv.val().get_bits::<8>(16);
            }
        }
        if self.pos.val() == 0 {
            self.bb.next = self.k_version.val();
        }
        if self.pos.val() == 1 {
            self.bb.next = self.r_seq.q.val();
        }
        if self.pos.val() == 2 {
            self.bb.next = self.r_kind.q.val();
        }
        if self.pos.val() == 3 {
            self.bb.next = self.r_len.q.val().get_bits::<8>(0);
        }
        if self.pos.val() == 4 {
            self.bb.next = bit_cast::<8, 3>(self.r_len.q.val().get_bits::<3>(8));
        }
        self.crc.crc_in.next = !self.ncrc.q.val();
        self.crc.data_in.next = self.bb.val();
        self.blen.next = self.p.q.val() - self.s.q.val() + 1;
        self.out_valid.next = false;
        self.out_data.next = self.bb.val();
        match self.state.q.val() {
            TxState::Idle => {
                if self.reply.send.val() {
                    self.r_seq.d.next = self.reply.seq.val();
                    self.r_kind.d.next = self.reply.kind.val();
                    self.r_len.d.next = self.reply.len.val();
                    self.p.d.next = 0.into();
                    self.s.d.next = 0.into();
                    self.ph.d.next = false;
                    self.ncrc.d.next = 0.into();
                    self.state.d.next = TxState::Scan;
                }
            }
            TxState::Scan => {
                // a full block first: after 254 bytes comes a new block even at the end
                if (self.p.q.val() - self.s.q.val()) == 254 {
                    self.code.d.next = 0xFF.into();
                    self.e.d.next = self.p.q.val();
                    self.last.d.next = false;
                    self.zero.d.next = false;
                    self.state.d.next = TxState::Code;
                } else if self.p.q.val() == self.total.val() {
                    self.code.d.next = self.blen.val().get_bits::<8>(0);
                    self.e.d.next = self.p.q.val();
                    self.last.d.next = true;
                    self.state.d.next = TxState::Code;
                } else if !self.ph.q.val() {
                    self.ph.d.next = true;
                } else {
                    self.ph.d.next = false;
                    // the scan is the CRC's only pass (the CRC bytes themselves excluded)
                    // (in Scan `pos` is `p`: the comparator of the byte mux serves)
                    if !(self.pos.val() >= self.pay_end.val()) {
                        self.ncrc.d.next = !self.crc.crc_out.val();
                    }
                    if self.bb.val() == 0 {
                        self.code.d.next = self.blen.val().get_bits::<8>(0);
                        self.e.d.next = self.p.q.val();
                        self.last.d.next = false;
                        self.zero.d.next = true;
                        self.state.d.next = TxState::Code;
                    } else {
                        self.p.d.next = self.p.q.val() + 1;
                    }
                }
            }
            TxState::Code => {
                self.out_valid.next = true;
                self.out_data.next = self.code.q.val();
                if self.out_ready.val() {
                    self.q.d.next = self.s.q.val();
                    self.ph.d.next = false;
                    self.state.d.next = TxState::Data;
                }
            }
            TxState::Data => {
                if self.q.q.val() == self.e.q.val() {
                    if self.last.q.val() {
                        self.state.d.next = TxState::Delim;
                    } else {
                        self.s.d.next = self.e.q.val();
                        self.p.d.next = self.e.q.val();
                        if self.zero.q.val() {
                            self.s.d.next = self.e.q.val() + 1;
                            self.p.d.next = self.e.q.val() + 1;
                        }
                        self.ph.d.next = false;
                        self.state.d.next = TxState::Scan;
                    }
                } else if !self.ph.q.val() {
                    self.ph.d.next = true;
                } else {
                    self.out_valid.next = true;
                    if self.out_ready.val() {
                        self.q.d.next = self.q.q.val() + 1;
                        self.ph.d.next = false;
                    }
                }
            }
            TxState::Delim => {
                self.out_valid.next = true;
                self.out_data.next = 0.into();
                if self.out_ready.val() {
                    self.state.d.next = TxState::Idle;
                }
            }
            _ => {
                self.state.d.next = TxState::Idle;
            }
        }
        self.reply.busy.next = self.state.q.val() != TxState::Idle;
    }
}

/// A frame as the consumer of [`FrameRx`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// Sequence number.
    pub seq: u8,
    /// Kind.
    pub kind: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Counters of [`FrameRx`]: `frames, crc_errors, framing_errors, overruns`.
pub type RxCounters = [u64; 4];

fn rx_cycle(u: &mut FrameRx) -> Result<(), String> {
    crate::rtl::simx::tick(u, |u| &mut u.clock)
}

/// Read and release the head frame of a rust-hdl [`FrameRx`] (the consumer protocol).
fn rx_drain(u: &mut FrameRx) -> Result<RxFrame, String> {
    let read = |u: &mut FrameRx, off: usize| -> Result<u8, String> {
        u.req.off.next = (off as u64).to_bits();
        crate::rtl::simx::settle(u)?;
        rx_cycle(u)?;
        Ok(u.req.data.val().to_u64() as u8)
    };
    let seq = read(u, 0)?;
    let kind = read(u, 1)?;
    let len = read(u, 2)? as usize | (read(u, 3)? as usize) << 8;
    let mut payload = Vec::with_capacity(len);
    for k in 0..len {
        payload.push(read(u, 4 + k)?);
    }
    u.req.done.next = true;
    u.req.release.next = ((4 + len) as u64).to_bits();
    crate::rtl::simx::settle(u)?;
    rx_cycle(u)?;
    u.req.done.next = false;
    Ok(RxFrame { seq, kind, payload })
}

/// Feed `stream` to a rust-hdl simulation of [`FrameRx`], one byte per clock, draining every
/// frame as soon as it is available (input paused meanwhile); returns the frames and counters.
pub fn frame_rx_rusthdl(stream: &[u8]) -> Result<(Vec<RxFrame>, RxCounters), String> {
    let mut u = FrameRx::default();
    u.connect_all();
    let mut out = Vec::new();
    for &b in stream {
        u.in_data.next = (b as u64).to_bits();
        u.in_valid.next = true;
        crate::rtl::simx::settle(&mut u)?;
        rx_cycle(&mut u)?;
        u.in_valid.next = false;
        crate::rtl::simx::settle(&mut u)?;
        while u.req.avail.val() {
            out.push(rx_drain(&mut u)?);
            crate::rtl::simx::settle(&mut u)?;
        }
    }
    let c = [
        u.frames.val().to_u64(),
        u.crc_errors.val().to_u64(),
        u.framing_errors.val().to_u64(),
        u.overruns.val().to_u64(),
    ];
    Ok((out, c))
}

/// Send `frames` (`seq, kind, payload`) through a rust-hdl simulation of [`FrameTx`], the
/// consumer being ready on cycles where `ready(cycle)`; returns the bytes handed out.
pub fn frame_tx_rusthdl(
    frames: &[(u8, u8, Vec<u8>)],
    ready: impl Fn(u64) -> bool,
) -> Result<Vec<u8>, String> {
    let mut u = FrameTx::default();
    u.connect_all();
    let mut out = Vec::new();
    let mut cyc = 0u64;
    for (seq, kind, payload) in frames {
        if payload.len() > MAX_PAYLOAD {
            return Err("payload exceeds MAX_PAYLOAD".into());
        }
        for (i, &b) in payload.iter().enumerate() {
            u.reply.we.next = true;
            u.reply.addr.next = (i as u64).to_bits();
            u.reply.data.next = (b as u64).to_bits();
            crate::rtl::simx::settle(&mut u)?;
            crate::rtl::simx::tick(&mut u, |u| &mut u.clock)?;
        }
        u.reply.we.next = false;
        u.reply.seq.next = (*seq as u64).to_bits();
        u.reply.kind.next = (*kind as u64).to_bits();
        u.reply.len.next = (payload.len() as u64).to_bits();
        u.reply.send.next = true;
        crate::rtl::simx::settle(&mut u)?;
        crate::rtl::simx::tick(&mut u, |u| &mut u.clock)?;
        u.reply.send.next = false;
        let limit = cyc + 100_000;
        loop {
            u.out_ready.next = ready(cyc);
            crate::rtl::simx::settle(&mut u)?;
            if !u.reply.busy.val() {
                break;
            }
            if u.out_valid.val() && u.out_ready.val() {
                out.push(u.out_data.val().to_u64() as u8);
            }
            crate::rtl::simx::tick(&mut u, |u| &mut u.clock)?;
            cyc += 1;
            if cyc > limit {
                return Err("frame transmitter hangs".into());
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermo_proto::crc::crc32_bitwise;
    use thermo_proto::{encode_frame, FrameDecoder};

    fn lcg(x: &mut u64) -> u64 {
        *x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *x >> 33
    }

    #[test]
    fn residue_is_the_known_constant() {
        assert_eq!(crc_residue(), 0xDEBB_20E3);
        assert_eq!(crc32_bitwise(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn crc_byte_equals_bitwise() {
        let mut u = Crc32Byte::default();
        u.connect_all();
        let mut x = 5u64;
        let data: Vec<u8> = (0..300).map(|_| lcg(&mut x) as u8).collect();
        let mut c = 0xFFFF_FFFFu64;
        for &b in &data {
            u.crc_in.next = c.to_bits();
            u.data_in.next = (b as u64).to_bits();
            crate::rtl::simx::settle(&mut u).unwrap();
            c = u.crc_out.val().to_u64();
        }
        assert_eq!(!(c as u32), crc32_bitwise(&data));
    }

    fn payload(len: usize, zeros: bool, x: &mut u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                let b = lcg(x) as u8;
                if zeros {
                    b
                } else {
                    b | 1
                }
            })
            .collect()
    }

    #[test]
    fn frame_tx_equals_encode_frame() {
        let mut x = 11u64;
        let mut frames = Vec::new();
        for len in [
            0usize, 1, 2, 240, 244, 245, 246, 249, 250, 253, 254, 255, 498, 499, 1024,
        ] {
            frames.push((len as u8, 0x83, payload(len, false, &mut x)));
            frames.push((7, 0x81, payload(len, true, &mut x)));
        }
        frames.push((0, 0, vec![0; 20]));
        for (i, f) in frames.iter().enumerate() {
            let out = frame_tx_rusthdl(std::slice::from_ref(f), |c| c % 3 != 1).unwrap();
            let want = encode_frame(f.0, f.1, &f.2);
            if out != want {
                let k = out.iter().zip(&want).take_while(|(a, b)| a == b).count();
                panic!(
                    "frame {i} (len {}): first difference at byte {k}: got {:?}, want {:?}",
                    f.2.len(),
                    &out[k.saturating_sub(3)..(k + 8).min(out.len())],
                    &want[k.saturating_sub(3)..(k + 8).min(want.len())]
                );
            }
        }
        let out = frame_tx_rusthdl(&frames, |c| c % 3 != 1).unwrap();
        let want: Vec<u8> = frames
            .iter()
            .flat_map(|(s, k, p)| encode_frame(*s, *k, p))
            .collect();
        assert!(out == want, "frame sequence differs");
        let mut d = FrameDecoder::new();
        let got = d.push(&out);
        assert_eq!(got.len(), frames.len());
        assert!(got.iter().all(|r| r.is_ok()));
    }

    #[test]
    fn frame_rx_equals_decoder() {
        let mut x = 3u64;
        let mut stream = vec![1, 2, 3, 0];
        for (i, len) in [0usize, 5, 253, 254, 255, 600].into_iter().enumerate() {
            stream.extend(encode_frame(i as u8, 2, &payload(len, true, &mut x)));
            let mut bad = encode_frame(9, 9, &payload(len, true, &mut x));
            let k = bad.len() / 2;
            bad[k] ^= 0x10;
            if bad[k] == 0 {
                bad[k] = 0x33;
            }
            stream.extend(bad);
            stream.extend([7, 7, 0]);
        }
        stream.extend(encode_frame(200, 1, &payload(1024, true, &mut x)));
        let (frames, c) = frame_rx_rusthdl(&stream).unwrap();
        let mut d = FrameDecoder::new();
        let want: Vec<RxFrame> = d
            .push(&stream)
            .into_iter()
            .filter_map(Result::ok)
            .map(|f| RxFrame {
                seq: f.seq,
                kind: f.kind,
                payload: f.payload,
            })
            .collect();
        assert_eq!(frames, want);
        assert_eq!(
            c,
            [
                d.stats.frames,
                d.stats.crc_errors,
                d.stats.framing_errors,
                0
            ]
        );
        assert_eq!(frames.len(), 7);
    }

    #[test]
    fn framing_blocks_pass_checks() {
        let mut a = FrameRx::default();
        a.connect_all();
        crate::rtl::block_verilog(&a).unwrap();
        let mut b = FrameTx::default();
        b.connect_all();
        crate::rtl::block_verilog(&b).unwrap();
    }
}

/// Frame receiver and transmitter side by side: the Verilator test top of the framing layer.
///
/// **Ports**: `clock` and every port of [`FrameRx`] (`req` with the error events) and
/// [`FrameTx`] (`reply`). **Latency** as theirs. **Proof** `hdl/tests/link_frame.rs`.
#[derive(LogicBlock, Default)]
pub struct FramePair {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// [`FrameRx::in_data`].
    pub in_data: Signal<In, Bits<8>>,
    /// [`FrameRx::in_valid`].
    pub in_valid: Signal<In, Bit>,
    /// [`FrameRx`]'s consumer side.
    pub req: RequestSource,
    /// [`FrameRx::frames`].
    pub frames: Signal<Out, Bits<32>>,
    /// [`FrameRx::crc_errors`].
    pub crc_errors: Signal<Out, Bits<32>>,
    /// [`FrameRx::framing_errors`].
    pub framing_errors: Signal<Out, Bits<32>>,
    /// [`FrameRx::overruns`].
    pub overruns: Signal<Out, Bits<32>>,
    /// [`FrameTx`]'s payload buffer and send port.
    pub reply: ReplySink,
    /// [`FrameTx::out_data`].
    pub out_data: Signal<Out, Bits<8>>,
    /// [`FrameTx::out_valid`].
    pub out_valid: Signal<Out, Bit>,
    /// [`FrameTx::out_ready`].
    pub out_ready: Signal<In, Bit>,
    frx: FrameRx,
    ftx: FrameTx,
}

impl Logic for FramePair {
    #[hdl_gen]
    fn update(&mut self) {
        self.frx.clock.next = self.clock.val();
        self.ftx.clock.next = self.clock.val();
        self.frx.in_data.next = self.in_data.val();
        self.frx.in_valid.next = self.in_valid.val();
        RequestSource::link(&mut self.req, &mut self.frx.req);
        self.frames.next = self.frx.frames.val();
        self.crc_errors.next = self.frx.crc_errors.val();
        self.framing_errors.next = self.frx.framing_errors.val();
        self.overruns.next = self.frx.overruns.val();
        ReplySink::link(&mut self.reply, &mut self.ftx.reply);
        self.out_data.next = self.ftx.out_data.val();
        self.out_valid.next = self.ftx.out_valid.val();
        self.ftx.out_ready.next = self.out_ready.val();
    }
}

/// Verilog of [`FramePair`].
pub fn frame_pair_verilog() -> Result<String, crate::Error> {
    let mut u = FramePair::default();
    u.connect_all();
    crate::rtl::block_verilog(&u)
}
