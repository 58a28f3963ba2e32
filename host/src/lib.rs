//! # thermo-host
//!
//! The host side of thermo: transports to a board ([`transport`]: a real serial port, or a
//! pseudo-terminal to an emulated board), the protocol client with retries, replay-safe
//! sequence numbers and reconnection ([`client`]), the inference driver ([`inference`]), the
//! emulated board ([`emulator`]), the board model in memory for counting link traffic
//! ([`memboard`]) and a fault-injecting link proxy for tests ([`faults`]).
#![warn(missing_docs)]

pub mod client;
pub mod emulator;
pub mod eqprop;
pub mod faults;
pub mod inference;
pub mod memboard;
pub mod transport;
