//! The host link: UART, framing (COBS + CRC-32), the command unit and its run sequencer, and
//! the board design `LinkTop` (UART + link + substrate). Depends on [`crate::rtl`] only.

pub mod command;
pub mod framing;
pub mod port;
pub mod sequencer;
pub mod uart;
