//! UART of the host link in Verilator (the generated Verilog of `thermo_hdl::link::uart::UartPair`):
//! at several clock-to-baud ratios, random bytes from an ideal sender whose bit time is the
//! exact fractional ratio (random phase, idle gaps, glitches, bad stop bits, and a sender 2%
//! fast or slow) are received exactly, bad stop bits are counted and not delivered, glitches are
//! counted; bytes sent by the transmitter decode at mid-bit with every bit lasting the ratio
//! within one clock; a tx -> rx loopback returns the bytes.

use thermo_hdl::harness::uart::uart_verilator;
use thermo_hdl::link::uart::{
    baud_increment, decode_line, line_runs, uart_rusthdl, LineEvent, UartScenario,
};
use thermo_sim::example::StimulusRng;

const RATIOS: [(u64, u64); 6] = [
    (48_000_000, 3_000_000),
    (25_000_000, 3_000_000),
    (12_000_000, 3_000_000),
    (100_000_000, 3_000_000),
    (25_000_000, 1_500_000),
    (48_000_000, 12_000_000),
];

#[test]
fn hdl_link_uart_verilator_ratios() {
    let _serial = serial();
    let mut rng = StimulusRng(0x5eed);
    let mut total_rx = 0usize;
    let mut total_tx = 0usize;
    let mut total_bad = 0usize;
    for (clk, baud) in RATIOS {
        let inc = baud_increment(clk, baud).expect("ratio");
        let r_hw = 65536.0 / inc as f64;
        let r = clk as f64 / baud as f64;
        for sender_skew in [1.0, 1.02, 0.98] {
            let n = 1500;
            let mut ev = Vec::new();
            let mut want = Vec::new();
            let (mut bad, mut glitches) = (0u64, 0u64);
            for _ in 0..n {
                let b = rng.next() as u8;
                match rng.next() % 40 {
                    0 => {
                        ev.push(LineEvent::Byte(b, false));
                        bad += 1;
                    }
                    1 if r >= 8.0 => {
                        // a pulse shorter than a third of a bit on the idle line
                        ev.push(LineEvent::Glitch(1 + rng.next() % (r as u64 / 3)));
                        ev.push(LineEvent::Idle(1.0));
                        glitches += 1;
                        ev.push(LineEvent::Byte(b, true));
                        want.push(b);
                    }
                    _ => {
                        ev.push(LineEvent::Byte(b, true));
                        want.push(b);
                    }
                }
                if rng.next() & 3 == 0 {
                    ev.push(LineEvent::Idle(rng.unit() * 3.0));
                }
            }
            let tx: Vec<(u8, u32)> = (0..n).map(|_| (rng.next() as u8, 0)).collect();
            let sc = UartScenario {
                inc,
                rx_runs: line_runs(&ev, r * sender_skew, rng.unit()),
                tx: tx.clone(),
                loopback: false,
            };
            let o = uart_verilator(&sc).expect("verilator");
            assert_eq!(
                o.rx, want,
                "{clk} Hz / {baud} baud, sender x{sender_skew}: received bytes"
            );
            assert_eq!(
                (o.frame_errors, o.glitches),
                (bad, glitches),
                "{clk} Hz / {baud} baud: framing errors and glitches"
            );
            total_rx += o.rx.len();
            total_bad += bad as usize;
            // the transmitter: decodes at mid-bit, every bit within one clock of the ratio
            let sent: Vec<u8> = tx.iter().map(|t| t.0).collect();
            assert_eq!(
                decode_line(&o.tx_runs, r),
                (sent.clone(), 0),
                "{clk}/{baud} tx"
            );
            let inner = &o.tx_runs[1..o.tx_runs.len() - 1];
            for &(_, len) in inner {
                let m = (len as f64 / r_hw).round().max(1.0);
                assert!(
                    (len as f64 - m * r_hw).abs() <= 1.0,
                    "{clk}/{baud}: a run of {m} bits lasts {len} clocks (ratio {r_hw:.3})"
                );
            }
            // back to back: start bits exactly 10 carries apart on average
            let mut t = 0u64;
            let mut starts: Vec<u64> = Vec::new();
            let mut prev = true;
            for &(level, len) in &o.tx_runs {
                // a falling edge at least 9.5 bits after the last start bit is a start bit
                let free = match starts.last() {
                    None => true,
                    Some(&s) => (t - s) as f64 > 9.5 * r_hw,
                };
                if prev && !level && free {
                    starts.push(t);
                }
                prev = level;
                t += len;
            }
            assert_eq!(starts.len(), n, "{clk}/{baud}: start bits");
            let (first, last) = (starts[0], starts[starts.len() - 1]);
            let ratio = (last - first) as f64 / ((n - 1) as f64 * 10.0);
            assert!(
                (ratio - r_hw).abs() < 0.01,
                "{clk}/{baud}: {ratio} clocks a bit, want {r_hw}"
            );
            total_tx += n;
        }
        // loopback with random gaps between bytes
        let tx: Vec<(u8, u32)> = (0..500)
            .map(|_| (rng.next() as u8, (rng.next() % 50) as u32))
            .collect();
        let o = uart_verilator(&UartScenario {
            inc,
            rx_runs: vec![],
            tx: tx.clone(),
            loopback: true,
        })
        .expect("verilator");
        assert_eq!(o.rx, tx.iter().map(|t| t.0).collect::<Vec<_>>());
        assert_eq!((o.frame_errors, o.glitches), (0, 0));
        total_rx += o.rx.len();
        eprintln!(
            "UART {:.1} MHz / {:.2} Mbaud (ratio {r:.3}, inc {inc}): ok (senders at x1, x1.02, x0.98)",
            clk as f64 / 1e6,
            baud as f64 / 1e6
        );
    }
    eprintln!(
        "UART in Verilator: {total_rx} bytes received, {total_bad} bad stop bits counted and dropped, {total_tx} bytes transmitted, at {} clock/baud ratios",
        RATIOS.len()
    );
}

/// rust-hdl's simulation and Verilator agree cycle for cycle: same bytes, same counters, same
/// tx waveform.
#[test]
fn hdl_link_uart_rusthdl_equals_verilator() {
    let _serial = serial();
    let mut rng = StimulusRng(77);
    for (clk, baud) in [(25_000_000u64, 3_000_000u64), (12_000_000, 3_000_000)] {
        let inc = baud_increment(clk, baud).expect("ratio");
        let mut ev = Vec::new();
        for i in 0..60 {
            ev.push(LineEvent::Byte(rng.next() as u8, i % 17 != 3));
            if i % 5 == 0 {
                ev.push(LineEvent::Idle(rng.unit() * 2.0));
            }
        }
        let sc = UartScenario {
            inc,
            rx_runs: line_runs(&ev, clk as f64 / baud as f64, 0.5),
            tx: (0..40)
                .map(|_| (rng.next() as u8, (rng.next() % 20) as u32))
                .collect(),
            loopback: false,
        };
        let a = uart_rusthdl(&sc).expect("rust-hdl");
        let b = uart_verilator(&sc).expect("verilator");
        assert_eq!(a, b, "{clk}/{baud}");
        assert_eq!(a.frame_errors, 4);
    }
}

/// The link blocks pass rust-hdl's checks; with `THERMO_LINK_VERILOG=<dir>` their Verilog is
/// written there (for synthesis with yosys).
#[test]
fn hdl_link_verilog_checks() {
    let u = thermo_hdl::link::uart::uart_pair_verilog().expect("UartPair checks");
    let f = thermo_hdl::link::framing::frame_pair_verilog().expect("FramePair checks");
    if let Some(dir) = std::env::var_os("THERMO_LINK_VERILOG") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        std::fs::write(dir.join("uart.v"), u).expect("write");
        std::fs::write(dir.join("frame.v"), f).expect("write");
    }
}

/// Tests of this file that build the same Verilator model run one at a time (the build cache
/// directory of a model is shared).
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    BUILD.lock().unwrap_or_else(|e| e.into_inner())
}
