//! A single-threaded clock driver for rust-hdl's simulation kernel
//! (`rust_hdl::core::simulate::simulate`), much faster than the threaded `Simulation` for the
//! long runs the equivalence tests need. Semantics are the kernel's: settle, clock high, settle,
//! clock low, settle.

use rust_hdl::prelude::*;

/// Settle the combinational logic; errors if it does not converge.
pub fn settle<B: Block>(uut: &mut B) -> Result<(), String> {
    if simulate(uut, 10_000) {
        Ok(())
    } else {
        Err("rust-hdl simulation failed to converge (logic loop?)".into())
    }
}

/// One full clock cycle of a clock reached through `clk`: rising edge then falling edge.
pub fn tick<B: Block>(
    uut: &mut B,
    clk: impl Fn(&mut B) -> &mut Signal<In, Clock>,
) -> Result<(), String> {
    clk(uut).next = Clock { clk: true };
    settle(uut)?;
    clk(uut).next = Clock { clk: false };
    settle(uut)
}
