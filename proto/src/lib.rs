//! # thermo-proto: the wire protocol between the host and the board, defined once
//!
//! See `docs/protocol.md` for the prose. This crate is the single definition used by the host
//! (`thermo infer`), the emulated board (`thermo emulate`) and, for constants, the RTL link:
//! frames ([`frame`]), typed requests ([`request`]), reply layouts ([`message`]) and the board's
//! request rules ([`device`]), which the emulator serves and the RTL implements.
//!
//! A **frame** on the wire is `COBS(body) 0x00`, where
//! `body = version:u8 | seq:u8 | kind:u8 | len:u16le | payload[len] | crc32le(version..payload)`.
//! Requests have `kind` = an [`Opcode`]; replies have `kind = opcode | 0x80`; an error reply has
//! `kind = 0xFF` and a payload `opcode:u8 | code:u8`.
#![warn(missing_docs)]

pub mod cobs;
pub mod crc;
pub mod device;
pub mod frame;
pub mod message;
pub mod request;

pub use frame::{encode_frame, Frame, FrameDecoder};
pub use message::*;
pub use request::*;

/// Protocol version carried in every frame and in IDENTIFY.
pub const VERSION: u8 = 2;
/// Largest payload of one frame, in bytes.
pub const MAX_PAYLOAD: usize = 1024;
/// Bytes of a body around its payload: version, seq, kind, len (2), crc (4).
pub const OVERHEAD: usize = 9;
/// Largest encoded frame on the wire: COBS adds one byte per 254 plus one, then the delimiter.
pub const MAX_WIRE_FRAME: usize = MAX_PAYLOAD + OVERHEAD + (MAX_PAYLOAD + OVERHEAD) / 254 + 2;
/// Inference slots a board holds (conditioning + result each), so several are in flight.
pub const SLOTS: u8 = 4;
/// A request whose `seq` is among the last `REPLAY_WINDOW` sequence numbers before the expected
/// one is a retry: the board executes it again (and counts it in STATUS `replays`); a request
/// further away is dropped. See [`device::Board::handle`].
pub const REPLAY_WINDOW: usize = 32;
/// Frames the host keeps outstanding before waiting for replies.
pub const WINDOW: usize = 8;
