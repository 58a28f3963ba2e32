//! Port types shared by several blocks (rust-hdl interfaces).
//!
//! An interface is one field of a block; in the generated Verilog its signals are named
//! `field$signal` (Verilator's C++ spells the `$` as `__024`: `cfg$addr` is `cfg__024addr`).

// `derive(LogicInterface)` adds an undocumented `pub fn join` (the mating connection)
#![allow(missing_docs)]

use rust_hdl::prelude::*;

/// The substrate's configuration/readout port, seen from the side that drives it (the link's
/// command unit). [`ConfigTarget`] is the mating side ([`crate::rtl::top::SubstrateTop`]);
/// `ConfigPort::join(&mut driver.cfg, &mut target.cfg)` connects the two.
///
/// Protocol, one transfer per clock:
/// * `addr` (24 bits: region in bits 23..20, see [`crate::rtl::top::region`]), `wdata`, `we`:
///   driven by this side; a write takes effect on the edge that samples `we` high.
/// * `rdata`: driven by the target; in cycle `k` it holds the word at the `addr` presented in
///   cycle `k - 2` (two registers: address, then data), whether or not that cycle wrote.
/// * `running`: driven by the target; high while a run of sweeps is in progress (from the edge
///   after the control write that starts it to the end of its last sweep).
#[derive(LogicInterface, Default)]
#[join = "ConfigTarget"]
pub struct ConfigPort {
    /// Port address.
    pub addr: Signal<Out, Bits<24>>,
    /// Write data.
    pub wdata: Signal<Out, Bits<32>>,
    /// Write strobe.
    pub we: Signal<Out, Bit>,
    /// Read data (the word at the address of two cycles before).
    pub rdata: Signal<In, Bits<32>>,
    /// A run is in progress.
    pub running: Signal<In, Bit>,
}

/// The substrate's side of [`ConfigPort`] (same signals, opposite directions; the protocol is
/// stated there).
#[derive(LogicInterface, Default)]
#[join = "ConfigPort"]
pub struct ConfigTarget {
    /// Port address.
    pub addr: Signal<In, Bits<24>>,
    /// Write data.
    pub wdata: Signal<In, Bits<32>>,
    /// Write strobe.
    pub we: Signal<In, Bit>,
    /// Read data (the word at the address of two cycles before).
    pub rdata: Signal<Out, Bits<32>>,
    /// A run is in progress.
    pub running: Signal<Out, Bit>,
}
