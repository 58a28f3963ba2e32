//! Port types shared by the blocks of the link (rust-hdl interfaces, see
//! [`crate::rtl::port`] for the naming in Verilog): the frame receiver's consumer side and the
//! frame transmitter's input side, both used by the command unit.

// `derive(LogicInterface)` adds an undocumented `pub fn join` (the mating connection)
#![allow(missing_docs)]

use rust_hdl::prelude::*;

/// The frame receiver's consumer side, seen from the consumer (the command unit):
/// [`RequestSource`] is the mating side ([`crate::link::framing::FrameRx`]); `RequestPort::join(&mut consumer.req,
/// &mut receiver.req)` connects the two.
///
/// Protocol (one clock):
/// * `avail` (receiver): at least one accepted frame is in the ring; the head frame is
///   read in place.
/// * `off` (consumer): offset in the head frame (0 seq, 1 kind, 2..3 len little-endian, 4..
///   payload); `data` (receiver): the byte at the `off` of the previous edge (one cycle of
///   block-RAM latency).
/// * `done` (consumer, pulse) with `release` (= 4 + the frame's len): drop the head frame; the
///   next frame (if any) is `avail` from the following cycle.
/// * `crc_evt`, `framing_evt` (receiver, pulses): the receiver counts a CRC / framing error;
///   its counters show it from the next cycle on.
#[derive(LogicInterface, Default)]
#[join = "RequestSource"]
pub struct RequestPort {
    /// A frame is available.
    pub avail: Signal<In, Bit>,
    /// Read offset in the head frame.
    pub off: Signal<Out, Bits<12>>,
    /// Byte at the offset of the previous edge.
    pub data: Signal<In, Bits<8>>,
    /// Drop the head frame.
    pub done: Signal<Out, Bit>,
    /// Bytes of the head frame in the ring (4 + len).
    pub release: Signal<Out, Bits<12>>,
    /// The receiver counts a CRC error.
    pub crc_evt: Signal<In, Bit>,
    /// The receiver counts a framing error.
    pub framing_evt: Signal<In, Bit>,
}

/// The receiver's side of [`RequestPort`] (same signals, opposite directions; the protocol is
/// stated there).
#[derive(LogicInterface, Default)]
#[join = "RequestPort"]
pub struct RequestSource {
    /// A frame is available.
    pub avail: Signal<Out, Bit>,
    /// Read offset in the head frame.
    pub off: Signal<In, Bits<12>>,
    /// Byte at the offset of the previous edge.
    pub data: Signal<Out, Bits<8>>,
    /// Drop the head frame.
    pub done: Signal<In, Bit>,
    /// Bytes of the head frame in the ring (4 + len).
    pub release: Signal<In, Bits<12>>,
    /// The receiver counts a CRC error.
    pub crc_evt: Signal<Out, Bit>,
    /// The receiver counts a framing error.
    pub framing_evt: Signal<Out, Bit>,
}

/// The frame transmitter's input side, seen from the side that writes replies (the command
/// unit): [`ReplySink`] is the mating side ([`crate::link::framing::FrameTx`]); `ReplyPort::join(&mut writer.reply,
/// &mut transmitter.reply)` connects the two.
///
/// Protocol (one clock):
/// * `we`, `addr` (payload byte index, 10 bits), `data` (writer): a payload buffer write on the
///   edge that samples `we` high; only while `busy` is low.
/// * `seq`, `kind`, `len` (at most the buffer's size), `send` (writer, pulse while `busy` is
///   low): the transmitter latches them on that edge and starts the frame.
/// * `busy` (transmitter): high from the edge after `send` until the frame's delimiter has
///   been handed out.
#[derive(LogicInterface, Default)]
#[join = "ReplySink"]
pub struct ReplyPort {
    /// Payload buffer write enable.
    pub we: Signal<Out, Bit>,
    /// Payload buffer address (payload byte index).
    pub addr: Signal<Out, Bits<10>>,
    /// Payload buffer write data.
    pub data: Signal<Out, Bits<8>>,
    /// Sequence number of the frame.
    pub seq: Signal<Out, Bits<8>>,
    /// Kind of the frame.
    pub kind: Signal<Out, Bits<8>>,
    /// Payload length.
    pub len: Signal<Out, Bits<11>>,
    /// Start sending (while not busy).
    pub send: Signal<Out, Bit>,
    /// A frame is being sent.
    pub busy: Signal<In, Bit>,
}

/// The transmitter's side of [`ReplyPort`] (same signals, opposite directions; the protocol is
/// stated there).
#[derive(LogicInterface, Default)]
#[join = "ReplyPort"]
pub struct ReplySink {
    /// Payload buffer write enable.
    pub we: Signal<In, Bit>,
    /// Payload buffer address (payload byte index).
    pub addr: Signal<In, Bits<10>>,
    /// Payload buffer write data.
    pub data: Signal<In, Bits<8>>,
    /// Sequence number of the frame.
    pub seq: Signal<In, Bits<8>>,
    /// Kind of the frame.
    pub kind: Signal<In, Bits<8>>,
    /// Payload length (0..=MAX_PAYLOAD).
    pub len: Signal<In, Bits<11>>,
    /// Start sending (while not busy).
    pub send: Signal<In, Bit>,
    /// A frame is being sent.
    pub busy: Signal<Out, Bit>,
}
