//! Everything that drives the RTL from outside: Verilog generation and the cached Verilator
//! build, the C++ harnesses (the `.cpp` files next to these modules), the port-level script
//! both simulators execute, the three-way verifier, VCD tools and the speed benchmark.
//! Depends on [`crate::rtl`] and [`crate::link`].

pub mod bench;
pub mod framing;
pub mod link;
pub mod noise;
pub mod script;
pub mod uart;
pub mod vcdtool;
pub mod verify;
pub mod verilog;
