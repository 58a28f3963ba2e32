//! The Verilator UART test: a build of [`uart_pair_verilog`] driven by `uart.cpp`.

use crate::link::uart::{uart_pair_verilog, UartOutcome, UartScenario};

/// The C++ harness of [`UartPair`](crate::link::uart::UartPair): stdin `inc loopback`, `n` and `n` runs `level cycles`, `m`
/// and `m` pairs `byte gap`; stdout `R byte` per received byte, `T level cycles` per run of the
/// tx pin, then `E frame_errors glitches`. The cycle protocol equals [`uart_rusthdl`](crate::link::uart::uart_rusthdl)'s.
pub const UART_HARNESS: &str = include_str!("uart.cpp");

/// Run a scenario on a Verilator build of [`UartPair`](crate::link::uart::UartPair).
pub fn uart_verilator(sc: &UartScenario) -> Result<UartOutcome, crate::Error> {
    use std::fmt::Write;
    let exe =
        crate::harness::verilog::verilator_build(&uart_pair_verilog()?, UART_HARNESS, false, true)?;
    let mut s = String::new();
    let _ = writeln!(s, "{} {} {}", sc.inc, sc.loopback as u8, sc.rx_runs.len());
    for (l, n) in &sc.rx_runs {
        let _ = writeln!(s, "{} {n}", *l as u8);
    }
    let _ = writeln!(s, "{}", sc.tx.len());
    for (b, g) in &sc.tx {
        let _ = writeln!(s, "{b} {g}");
    }
    let text = crate::harness::verilog::run_harness(&exe, &[], &s)?;
    let bad = |l: &str| crate::Error::Tool(format!("bad UART harness output {l:?}"));
    let mut out = UartOutcome::default();
    for l in text.lines() {
        let f: Vec<u64> = l
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad(l))?;
        match (l.chars().next(), f.as_slice()) {
            (Some('R'), [b]) => out.rx.push(*b as u8),
            (Some('T'), [lv, n]) => out.tx_runs.push((*lv != 0, *n)),
            (Some('E'), [fe, g]) => {
                out.frame_errors = *fe;
                out.glitches = *g;
            }
            _ => return Err(bad(l)),
        }
    }
    Ok(out)
}
