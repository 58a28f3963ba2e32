//! Board tops: the ULX3S (LFE5U-85F, CABGA381, 25 MHz oscillator, FT231X UART) and the
//! iCEBreaker (iCE40UP5K-SG48, 12 MHz oscillator, FT2232H channel B UART).
//!
//! A board top is a generated Verilog wrapper around the rust-hdl [`crate::link::command::LinkTop`]
//! (renamed `thermo_link`): the board oscillator drives the PLL (ECP5 `EHXPLLL` / iCE40
//! `SB_PLL40_PAD`, parameters computed by [`ecp5_pll`] / [`ice40_pll`] exactly like `ecppll` /
//! `icepll`, proven by `boards::tests` against `yowasp-ecppll` / `yowasp-icepll`), a reset
//! synchroniser (asserted asynchronously by the button or a PLL out of lock, released
//! synchronously two PLL clocks later), a two-flip-flop synchroniser on the UART input, and the
//! status LEDs. The UART phase increment is computed from the PLL's *achieved* output frequency.
//!
//! `LinkTop` has no reset input: while the reset is held, the wrapper keeps the link's `rx` idle
//! (high) and the board's `tx` idle, so nothing reaches or leaves the link; the link and the
//! substrate keep their state (their registers start from their initial values at
//! configuration). Power-up reset is the FPGA's configuration.
//!
//! LEDs: **running** (heartbeat, ~1.4 Hz, counting only when the PLL is locked and the reset is
//! released), **activity** (stretched 20-40 ms after any low level on `rx` or `tx`), **error** (a UART stop-bit,
//! CRC or framing error has been seen since power-up: `LinkTop`'s sticky `error` flag).
//! The ULX3S also shows PLL lock and reset; the iCEBreaker shows them on the PMOD2 snap-off LEDs.

use crate::Error;

/// A supported board.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// Radiona ULX3S with the LFE5U-85F.
    Ulx3s85f,
    /// 1BitSquared iCEBreaker (iCE40UP5K-SG48).
    Icebreaker,
}

/// Device capacity (what nextpnr reports as available).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    /// LUT4s (ECP5 `TRELLIS_COMB`, iCE40 `ICESTORM_LC`).
    pub luts: u64,
    /// Flip-flops.
    pub ffs: u64,
    /// Hard multipliers (`MULT18X18D` / `ICESTORM_DSP`).
    pub dsps: u64,
    /// Block RAMs (`DP16KD` / `ICESTORM_RAM`).
    pub brams: u64,
}

impl Board {
    /// Parse a board name (`ulx3s-85f`, `icebreaker`).
    pub fn parse(name: &str) -> Result<Board, Error> {
        match name {
            "ulx3s-85f" | "ulx3s" => Ok(Board::Ulx3s85f),
            "icebreaker" => Ok(Board::Icebreaker),
            _ => Err(Error::Config(format!(
                "unknown board {name:?}: expected ulx3s-85f or icebreaker"
            ))),
        }
    }
    /// Canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Board::Ulx3s85f => "ulx3s-85f",
            Board::Icebreaker => "icebreaker",
        }
    }
    /// FPGA family.
    pub fn family(self) -> crate::flow::synth::Family {
        match self {
            Board::Ulx3s85f => crate::flow::synth::Family::Ecp5,
            Board::Icebreaker => crate::flow::synth::Family::Ice40,
        }
    }
    /// Device description for humans.
    pub fn device(self) -> &'static str {
        match self {
            Board::Ulx3s85f => "LFE5U-85F-6BG381C (CABGA381)",
            Board::Icebreaker => "iCE40UP5K-SG48",
        }
    }
    /// Oscillator frequency (MHz).
    pub fn osc_mhz(self) -> f64 {
        match self {
            Board::Ulx3s85f => 25.0,
            Board::Icebreaker => 12.0,
        }
    }
    /// Default core clock (MHz) of `thermo bitstream`: what the shipped example's top closes
    /// timing at on the ULX3S (`bitstreams/ulx3s-85f`); the oscillator itself on the iCEBreaker.
    pub fn default_mhz(self) -> f64 {
        match self {
            Board::Ulx3s85f => 28.0,
            Board::Icebreaker => 12.0,
        }
    }
    /// The link of this board's builds: the default on the ULX3S; on the iCEBreaker
    /// [`LinkOptions::SMALL`](crate::link::command::LinkOptions::SMALL) (2 slots, 508-byte payloads: 7 of its 30 block RAMs fewer).
    pub fn link_options(self) -> crate::link::command::LinkOptions {
        match self {
            Board::Ulx3s85f => Default::default(),
            Board::Icebreaker => crate::link::command::LinkOptions::SMALL,
        }
    }
    /// What nextpnr's logic count (`report.json` "lut4") counts on this board: LUT4s on the
    /// ECP5, logic cells (one LUT4 and one flip-flop each) on the iCE40.
    pub fn logic_name(self) -> &'static str {
        match self {
            Board::Ulx3s85f => "LUT4",
            Board::Icebreaker => "logic cells",
        }
    }
    /// Device capacity.
    pub fn capacity(self) -> Capacity {
        match self {
            Board::Ulx3s85f => Capacity {
                luts: 83640,
                ffs: 83640,
                dsps: 156,
                brams: 208,
            },
            Board::Icebreaker => Capacity {
                luts: 5280,
                ffs: 5280,
                dsps: 8,
                brams: 30,
            },
        }
    }
    /// The constraint file shipped in `constraints/` (pins, I/O standards, oscillator).
    pub fn base_constraints(self) -> &'static str {
        match self {
            Board::Ulx3s85f => include_str!("../../../constraints/ulx3s.lpf"),
            Board::Icebreaker => include_str!("../../../constraints/icebreaker.pcf"),
        }
    }
    /// Constraint file name.
    pub fn constraints_name(self) -> &'static str {
        match self {
            Board::Ulx3s85f => "ulx3s.lpf",
            Board::Icebreaker => "icebreaker.pcf",
        }
    }
    /// The constraints of a build: the shipped file plus the period of the PLL output `clk`.
    pub fn constraints(self, pll_mhz: f64) -> String {
        let mut t = self.base_constraints().to_string();
        if (pll_mhz - self.osc_mhz()).abs() < 1e-9 {
            return t; // no PLL: the oscillator's own constraint applies
        }
        match self {
            Board::Ulx3s85f => t.push_str(&format!(
                "\n# core clock (PLL output), added by thermo bitstream\nFREQUENCY NET \"clk\" {pll_mhz:.6} MHZ;\n"
            )),
            Board::Icebreaker => t.push_str(&format!(
                "\n# core clock (PLL output), added by thermo bitstream\nset_frequency clk {pll_mhz:.6}\n"
            )),
        }
        t
    }
}

/// ECP5 `EHXPLLL` settings for `CLKOP` (`ecppll`'s search).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ecp5Pll {
    /// `CLKI_DIV`.
    pub refclk_div: u32,
    /// `CLKFB_DIV`.
    pub feedback_div: u32,
    /// `CLKOP_DIV`.
    pub output_div: u32,
    /// `CLKOP_CPHASE` (zero phase shift).
    pub cphase: u32,
    /// Achieved output (MHz).
    pub fout: f64,
    /// VCO (MHz).
    pub fvco: f64,
}

/// `ecppll -i fin -o fout`: the divider triple with the output closest to `fout` (ties: VCO
/// closest to 600 MHz), PFD 3.125..400 MHz, VCO 400..800 MHz, feedback from `CLKOP`; computed in
/// single precision like `ecppll`, and `CLKOP_CPHASE` as `ecppll` sets it (half a period, the
/// 180-degree shift Lattice's tools use), truncated the same way.
pub fn ecp5_pll(fin: f64, fout: f64) -> Result<Ecp5Pll, Error> {
    let (fin, target) = (fin as f32, fout as f32);
    let mut best: Option<(u32, u32, u32, f32, f32)> = None;
    let mut err = f32::MAX;
    for refclk_div in 1..=128u32 {
        let fpfd = fin / refclk_div as f32;
        if !(3.125..=400.0).contains(&fpfd) {
            continue;
        }
        for feedback_div in 1..=80u32 {
            for output_div in 1..=128u32 {
                let fvco = fpfd * feedback_div as f32 * output_div as f32;
                if !(400.0..=800.0).contains(&fvco) {
                    continue;
                }
                let f = fvco / output_div as f32;
                let e = (f - target).abs();
                let better = e < err
                    || (e == err
                        && best.is_some_and(|b| (fvco - 600.0).abs() < (b.4 - 600.0).abs()));
                if better {
                    err = e;
                    best = Some((refclk_div, feedback_div, output_div, f, fvco));
                }
            }
        }
    }
    let (refclk_div, feedback_div, output_div, f, fvco) =
        best.ok_or_else(|| Error::Config(format!("no ECP5 PLL setting for {fin} -> {fout} MHz")))?;
    let ns_phase = (1.0 / (f as f64 * 1e6) * 0.5) as f32;
    let cphase = (ns_phase as f64 * (fvco as f64 * 1e6)) as u32;
    Ok(Ecp5Pll {
        refclk_div,
        feedback_div,
        output_div,
        cphase,
        fout: f as f64,
        fvco: fvco as f64,
    })
}

/// iCE40 `SB_PLL40` settings, simple feedback (`icepll`'s search).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ice40Pll {
    /// `DIVR`.
    pub divr: u32,
    /// `DIVF`.
    pub divf: u32,
    /// `DIVQ`.
    pub divq: u32,
    /// `FILTER_RANGE`.
    pub filter_range: u32,
    /// Achieved output (MHz).
    pub fout: f64,
    /// VCO (MHz).
    pub fvco: f64,
}

/// `icepll -i fin -o fout`: output 16..275 MHz, PFD 10..133 MHz, VCO 533..1066 MHz, `DIVQ` 1..6, first best.
pub fn ice40_pll(fin: f64, fout: f64) -> Result<Ice40Pll, Error> {
    if !(16.0..=275.0).contains(&fout) {
        return Err(Error::Config(format!(
            "iCE40 PLL output {fout} MHz is outside 16..275 MHz"
        )));
    }
    let mut best: Option<Ice40Pll> = None;
    for divr in 0..=15u32 {
        let fdiv = fin / (divr + 1) as f64;
        if !(10.0..=133.0).contains(&fdiv) {
            continue;
        }
        for divf in 0..=127u32 {
            let fvco = fdiv * (divf + 1) as f64;
            if !(533.0..=1066.0).contains(&fvco) {
                continue;
            }
            for divq in 1..=6u32 {
                let f = fvco / (1u32 << divq) as f64;
                if best.is_none_or(|b| (f - fout).abs() < (b.fout - fout).abs()) {
                    let filter_range = match fdiv {
                        x if x < 17.0 => 1,
                        x if x < 26.0 => 2,
                        x if x < 44.0 => 3,
                        x if x < 66.0 => 4,
                        x if x < 101.0 => 5,
                        _ => 6,
                    };
                    best = Some(Ice40Pll {
                        divr,
                        divf,
                        divq,
                        filter_range,
                        fout: f,
                        fvco,
                    });
                }
            }
        }
    }
    best.ok_or_else(|| Error::Config(format!("no iCE40 PLL setting for {fin} -> {fout} MHz")))
}

/// The PLL of a board for a requested core clock: the instance text and the achieved MHz (the
/// oscillator directly, without a PLL, when the request equals its frequency).
pub fn pll(board: Board, mhz: f64) -> Result<(String, f64), Error> {
    if (mhz - board.osc_mhz()).abs() < 1e-9 {
        // the oscillator itself: no PLL
        let osc = match board {
            Board::Ulx3s85f => "clk_25mhz",
            Board::Icebreaker => "CLK",
        };
        return Ok((
            format!("    // core clock = the oscillator (no PLL)\n    assign clk = {osc};\n    assign locked = 1'b1;\n"),
            mhz,
        ));
    }
    match board {
        Board::Ulx3s85f => {
            let p = ecp5_pll(board.osc_mhz(), mhz)?;
            let v = format!(
                r#"    (* FREQUENCY_PIN_CLKI="{fin}" *)
    (* FREQUENCY_PIN_CLKOP="{fout:.6}" *)
    (* ICP_CURRENT="12" *) (* LPF_RESISTOR="8" *) (* MFG_ENABLE_FILTEROPAMP="1" *) (* MFG_GMCREF_SEL="2" *)
    EHXPLLL #(
        .PLLRST_ENA("DISABLED"), .INTFB_WAKE("DISABLED"), .STDBY_ENABLE("DISABLED"),
        .DPHASE_SOURCE("DISABLED"), .OUTDIVIDER_MUXA("DIVA"), .OUTDIVIDER_MUXB("DIVB"),
        .OUTDIVIDER_MUXC("DIVC"), .OUTDIVIDER_MUXD("DIVD"),
        .CLKI_DIV({r}), .CLKOP_ENABLE("ENABLED"), .CLKOP_DIV({o}), .CLKOP_CPHASE({c}),
        .CLKOP_FPHASE(0), .FEEDBK_PATH("CLKOP"), .CLKFB_DIV({f})
    ) pll_i (
        .RST(1'b0), .STDBY(1'b0), .CLKI(clk_25mhz), .CLKOP(clk), .CLKFB(clk), .CLKINTFB(),
        .PHASESEL0(1'b0), .PHASESEL1(1'b0), .PHASEDIR(1'b1), .PHASESTEP(1'b1),
        .PHASELOADREG(1'b1), .PLLWAKESYNC(1'b0), .ENCLKOP(1'b0), .LOCK(locked)
    );
"#,
                fin = board.osc_mhz(),
                fout = p.fout,
                r = p.refclk_div,
                o = p.output_div,
                c = p.cphase,
                f = p.feedback_div
            );
            Ok((v, p.fout))
        }
        Board::Icebreaker => {
            let p = ice40_pll(board.osc_mhz(), mhz)?;
            let v = format!(
                r#"    SB_PLL40_PAD #(
        .FEEDBACK_PATH("SIMPLE"), .DIVR(4'd{r}), .DIVF(7'd{f}), .DIVQ(3'd{q}),
        .FILTER_RANGE(3'd{fr})
    ) pll_i (
        .PACKAGEPIN(CLK), .PLLOUTGLOBAL(clk), .LOCK(locked), .RESETB(1'b1), .BYPASS(1'b0)
    );
"#,
                r = p.divr,
                f = p.divf,
                q = p.divq,
                fr = p.filter_range
            );
            Ok((v, p.fout))
        }
    }
}

/// Rename the rust-hdl top module `top` of `link_verilog` to `thermo_link`.
fn rename_top(link_verilog: &str) -> Result<String, Error> {
    let n = link_verilog.matches("\nmodule top(").count()
        + usize::from(link_verilog.starts_with("module top("));
    if n != 1 {
        return Err(Error::Other(format!(
            "generated Verilog has {n} `module top(` headers (expected 1)"
        )));
    }
    Ok(link_verilog
        .replacen("\nmodule top(", "\nmodule thermo_link(", 1)
        .replacen("module top(", "module thermo_link(", 1))
}

/// The board top (module `board`) around the Verilog of a `LinkTop` (module `top`), whose
/// clock is the PLL output of `pll_text` at `pll_mhz`.
pub fn board_verilog(
    board: Board,
    link_verilog: &str,
    pll_text: &str,
    pll_mhz: f64,
) -> Result<String, Error> {
    let link = rename_top(link_verilog)?;
    let hz = pll_mhz * 1e6;
    // heartbeat: bit `hb` toggles every 2^hb cycles (~0.35 s); activity: held until bit `acb`
    // of the same counter (2^acb cycles, ~20 ms) has toggled twice, i.e. 20-40 ms
    let hb = (hz * 0.35).log2().round().max(2.0) as u32;
    let acb = ((hz * 0.02).log2().round().max(1.0) as u32).min(hb - 1);
    let (ports, pins) = match board {
        Board::Ulx3s85f => (
            "    input  clk_25mhz,      // 25 MHz oscillator (G2)
    input  ftdi_txd,       // FT231X TXD -> FPGA (M1)
    output ftdi_rxd,       // FPGA -> FT231X RXD (L4)
    input  [1:1] btn,      // FIRE1 (R1), active high: reset
    output [7:0] led,      // led[0] running, [1] activity, [2] error, [3] PLL locked, [4] reset
    output wifi_gpio0      // high: keep the ESP32 from taking the FPGA over
",
            "    assign wifi_gpio0 = 1'b1;
    wire rst_req = btn[1];
    wire rx_pin = ftdi_txd;
    assign ftdi_rxd = tx_out;
    assign led = {3'b000, rst, locked, err, act_led, run_led};
",
        ),
        Board::Icebreaker => (
            "    input  CLK,            // 12 MHz oscillator (35)
    input  RX,             // FT2232H channel B TXD -> FPGA (6)
    output TX,             // FPGA -> FT2232H channel B RXD (9)
    input  BTN_N,          // user button (10), active low: reset
    output LEDG_N,         // green LED (37), active low: running
    output LEDR_N,         // red LED (11), active low: error
    output LED1,           // PMOD2 LED1 (26): activity
    output LED2,           // PMOD2 LED2 (27): PLL locked
    output LED3            // PMOD2 LED3 (25): reset
",
            "    wire rst_req = ~BTN_N;
    wire rx_pin = RX;
    assign TX = tx_out;
    assign LEDG_N = ~run_led;
    assign LEDR_N = ~err;
    assign LED1 = act_led;
    assign LED2 = locked;
    assign LED3 = rst;
",
        ),
    };
    Ok(format!(
        r#"// Board top for the {name} ({device}): PLL {pll_mhz:.6} MHz, reset synchroniser, UART,
// status LEDs, and the thermo link + substrate (module thermo_link, generated by rust-hdl).
// Generated by thermo bitstream; do not edit.
module board (
{ports});
    wire clk;
    wire locked;
{pll_text}
{pins}
    // reset: asserted asynchronously (button, PLL out of lock), released on clk
    wire rst_async = rst_req | ~locked;
    reg [1:0] rst_q = 2'b11;
    always @(posedge clk or posedge rst_async)
        if (rst_async) rst_q <= 2'b11; else rst_q <= {{rst_q[0], 1'b0}};
    wire rst = rst_q[1];
    // UART input synchroniser (idle high)
    reg [1:0] rx_q = 2'b11;
    always @(posedge clk) rx_q <= {{rx_q[0], rx_pin}};
    wire link_rx = rst ? 1'b1 : rx_q[1];
    wire link_tx;
    wire link_error;
    thermo_link link (
        .clock(clk), .rx(link_rx), .tx(link_tx), .error(link_error)
    );
    wire tx_out = rst ? 1'b1 : link_tx;
    // LEDs
    reg [{hbm}:0] hb = 0;
    always @(posedge clk) if (rst) hb <= 0; else hb <= hb + 1'b1;
    wire run_led = hb[{hbm}];
    // activity: set by a low level on rx or tx, cleared at the second toggle of hb[{acb}]
    // after the last one (no counter of its own)
    reg act_led = 1'b0, act_arm = 1'b0, hb_a = 1'b0;
    always @(posedge clk) begin
        hb_a <= hb[{acb}];
        if (~link_rx | ~link_tx) begin act_led <= 1'b1; act_arm <= 1'b0; end
        else if (hb_a != hb[{acb}]) begin act_led <= act_led & ~act_arm; act_arm <= act_led; end
    end
    reg err = 1'b0;
    // the link's sticky flag: a UART stop-bit, CRC or framing error since power-up
    always @(posedge clk) err <= link_error;
endmodule

{link}"#,
        name = board.name(),
        device = board.device(),
        hbm = hb,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn field(text: &str, key: &str) -> u32 {
        let l = text
            .lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no {key:?} in {text}"));
        let v = l.split(':').nth(1).unwrap().trim();
        v.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// The PLL searches agree with the Project Trellis / IceStorm tools on a range of targets.
    #[test]
    fn pll_settings_match_ecppll_and_icepll() {
        let dir = std::env::temp_dir().join(format!("thermo-pll-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in [20.0, 33.0, 40.0, 48.0, 50.0, 62.5, 75.0, 100.0] {
            let out = Command::new("yowasp-ecppll")
                .current_dir(&dir)
                .args(["-i", "25", "-o", &format!("{f}"), "-f", "p.v"])
                .output()
                .expect("yowasp-ecppll runs");
            assert!(out.status.success());
            let t = String::from_utf8_lossy(&out.stdout);
            let v = std::fs::read_to_string(dir.join("p.v")).unwrap();
            let cph: u32 = v
                .split(".CLKOP_CPHASE(")
                .nth(1)
                .and_then(|s| s.split(')').next())
                .and_then(|s| s.parse().ok())
                .unwrap();
            let p = ecp5_pll(25.0, f).unwrap();
            assert_eq!(
                (p.refclk_div, p.feedback_div, p.output_div, p.cphase),
                (
                    field(&t, "Refclk divisor"),
                    field(&t, "Feedback divisor"),
                    field(&t, "clkout0 divisor"),
                    cph
                ),
                "ecp5 {f} MHz: {t}"
            );
        }
        assert!(
            ice40_pll(12.0, 12.0).is_err(),
            "icepll rejects outputs below 16 MHz"
        );
        for f in [16.0, 18.0, 20.0, 24.0, 30.0, 33.0, 48.0] {
            let out = Command::new("yowasp-icepll")
                .args(["-i", "12", "-o", &format!("{f}")])
                .output()
                .expect("yowasp-icepll runs");
            assert!(out.status.success());
            let t = String::from_utf8_lossy(&out.stdout);
            let p = ice40_pll(12.0, f).unwrap();
            assert_eq!(
                (p.divr, p.divf, p.divq, p.filter_range),
                (
                    field(&t, "DIVR"),
                    field(&t, "DIVF"),
                    field(&t, "DIVQ"),
                    field(&t, "FILTER_RANGE")
                ),
                "ice40 {f} MHz: {t}"
            );
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
