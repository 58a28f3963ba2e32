//! The noise lane: taus88 + inverse-CDF Gaussian transform, bit-exact with
//! `thermo_sim::noise::NoiseLane::next_fixed`.

use crate::rom::IcdfRom;
use rust_hdl::prelude::*;
use thermo_sim::noise::Taus88;

/// One hardware noise lane (docs/fixed-point.md §5).
///
/// **Computes** the stream of `thermo_sim::noise::gaussian_fixed` codes (Q3.12) of L'Ecuyer's
/// taus88 generator, two words per draw, exactly like `NoiseLane::next_fixed`.
///
/// **Ports**
/// * `clock` — the clock.
/// * `load`, `seed_s1..3` — when `load` is high on a clock edge the three taus88 component states
///   are loaded (the host computes them with `Taus88::for_lane`) and the pipeline is emptied.
/// * `pop` — consume the sample on `z` (only meaningful while `valid`).
/// * `z` — the head sample, two's complement Q3.12; `valid` — `z` holds a sample.
///
/// **Structure and latency.** One taus88 step per clock, one draw every two clocks, in three
/// stages with per-stage hand-off (a stage takes a new entry when it is empty or its entry moves
/// on, so no draw is ever lost): (1) the first word `w0` of a draw is latched; on the next clock
/// the second word is the combinational next taus88 word, and the 63-bit magnitude word
/// `w0[30:0] | w1` is normalised by a 5-level left shifter (16, 8, 4, 2, 1: the shift bits are
/// the octave `lz`, the 20 bits below the leading one the segment and the fraction `t`) into the
/// synchronous ROM read (`IcdfRom`, 512 x 32 bits: `c0 | -c1`); (2) from the ROM output, the
/// 16x16 product `P = -c1 t` and `|z| = c0 - ((P + 2^19 - 1) >> 20)` (equal to
/// `c0 + ((c1 t + 2^19) >> 20)`), the tail clamp and the sign, latched in `z`. After `load` the
/// first sample is `valid` 3 cycles later; then, while samples are popped, a new one is valid
/// every 2 cycles (up to two more wait in the pipeline when they are not). This suffices for a
/// lane: a unit costs at least 2 instructions and pops once, at stage 2 of its last one, so the
/// first pop after `load` (even in the same cycle as `START`, without a bus phase) comes 3
/// cycles after it and later pops are at least 2 cycles apart.
///
/// **Proof of equality with the engine:** `noise::tests::noise_lane_matches_engine` (rust-hdl
/// simulation, several seeds, lanes and pop rates), `noise::tests::pops_every_other_cycle_from_load`
/// (the start-up contract above), `noise::tests::transform_edge_cases_match_engine` (chosen draws
/// forced into stage 1: the tail clamp, every leading-zero count, both signs, the rounding
/// ties of every ROM entry) and
/// `tests/hdl_noise.rs` (rust-hdl simulation 3 x 2*10^4 draws, Verilator 3 x 10^5 draws).
#[derive(LogicBlock)]
pub struct NoiseLaneHw {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Load the generator state from `seed_s*` (clears the pipeline).
    pub load: Signal<In, Bit>,
    /// taus88 component 1 state to load.
    pub seed_s1: Signal<In, Bits<32>>,
    /// taus88 component 2 state to load.
    pub seed_s2: Signal<In, Bits<32>>,
    /// taus88 component 3 state to load.
    pub seed_s3: Signal<In, Bits<32>>,
    /// Consume the current sample.
    pub pop: Signal<In, Bit>,
    /// Current sample, Q3.12 two's complement.
    pub z: Signal<Out, Bits<16>>,
    /// `z` holds a sample.
    pub valid: Signal<Out, Bit>,
    // generator state
    s1: DFF<Bits<32>>,
    s2: DFF<Bits<32>>,
    s3: DFF<Bits<32>>,
    // stage 1: the first word of a draw
    w0: DFF<Bits<32>>,
    ph: DFF<Bit>,
    // stage 2: ROM output plus side data
    rom: IcdfRom,
    t2: DFF<Bits<16>>,
    addr2: DFF<Bits<9>>,
    neg2: DFF<Bit>,
    clamp2: DFF<Bit>,
    v2: DFF<Bit>,
    // output register
    zr: DFF<Bits<16>>,
    vo: DFF<Bit>,
    tail: Constant<Bits<16>>,
    m1: Constant<Bits<32>>,
    m2: Constant<Bits<32>>,
    m3: Constant<Bits<32>>,
    // combinational
    oadv: Signal<Local, Bit>,
    sadv: Signal<Local, Bit>,
    step: Signal<Local, Bit>,
    a1: Signal<Local, Bits<32>>,
    a2: Signal<Local, Bits<32>>,
    a3: Signal<Local, Bits<32>>,
    x: Signal<Local, Bits<32>>,
    y0: Signal<Local, Bits<64>>,
    y1: Signal<Local, Bits<64>>,
    y2: Signal<Local, Bits<64>>,
    y3: Signal<Local, Bits<64>>,
    y4: Signal<Local, Bits<64>>,
    y5: Signal<Local, Bits<64>>,
    lz: Signal<Local, Bits<9>>,
    addr1: Signal<Local, Bits<9>>,
    prod: Signal<Local, Bits<32>>,
    mag: Signal<Local, Bits<16>>,
}

impl Default for NoiseLaneHw {
    fn default() -> Self {
        let tail = thermo_sim::noise::gaussian_fixed(0, 0).unsigned_abs() as u64;
        Self {
            clock: Default::default(),
            load: Default::default(),
            seed_s1: Default::default(),
            seed_s2: Default::default(),
            seed_s3: Default::default(),
            pop: Default::default(),
            z: Default::default(),
            valid: Default::default(),
            s1: Default::default(),
            s2: Default::default(),
            s3: Default::default(),
            w0: Default::default(),
            ph: Default::default(),
            rom: crate::rom::new_icdf_rom(),
            t2: Default::default(),
            addr2: Default::default(),
            neg2: Default::default(),
            clamp2: Default::default(),
            v2: Default::default(),
            zr: Default::default(),
            vo: Default::default(),
            tail: Constant::new(tail.to_bits()),
            m1: Constant::new(0xFFFF_FFFEu64.to_bits()),
            m2: Constant::new(0xFFFF_FFF8u64.to_bits()),
            m3: Constant::new(0xFFFF_FFF0u64.to_bits()),
            oadv: Default::default(),
            sadv: Default::default(),
            step: Default::default(),
            a1: Default::default(),
            a2: Default::default(),
            a3: Default::default(),
            x: Default::default(),
            y0: Default::default(),
            y1: Default::default(),
            y2: Default::default(),
            y3: Default::default(),
            y4: Default::default(),
            y5: Default::default(),
            lz: Default::default(),
            addr1: Default::default(),
            prod: Default::default(),
            mag: Default::default(),
        }
    }
}

impl Logic for NoiseLaneHw {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s1, s2, s3, w0, ph, t2, addr2, neg2, clamp2, v2, zr, vo);
        self.rom.clock.next = self.clock.val();
        // hand-off: the output register takes a sample when empty or popped, stage 2 a draw
        // when empty or handing its own on
        self.oadv.next = !self.vo.q.val() | self.pop.val();
        self.sadv.next = !self.v2.q.val() | self.oadv.val();
        // one taus88 step: next state a*, next word x
        self.a1.next = ((self.s1.q.val() & self.m1.val()) << 12)
            ^ (((self.s1.q.val() << 13) ^ self.s1.q.val()) >> 19);
        self.a2.next = ((self.s2.q.val() & self.m2.val()) << 4)
            ^ (((self.s2.q.val() << 2) ^ self.s2.q.val()) >> 25);
        self.a3.next = ((self.s3.q.val() & self.m3.val()) << 17)
            ^ (((self.s3.q.val() << 3) ^ self.s3.q.val()) >> 11);
        self.x.next = self.a1.val() ^ self.a2.val() ^ self.a3.val();
        // the draw (w0, x): normalise m = w0[30:0] | x (63 bits) held as y0 = m << 1
        self.y0.next =
            (bit_cast::<64, 32>(self.w0.q.val()) << 33) | (bit_cast::<64, 32>(self.x.val()) << 1);
        self.lz.next = 0.into();
        self.y1.next = self.y0.val();
        if self.y0.val().get_bits::<16>(48) == 0 {
            self.lz.next = 16.into();
            self.y1.next = self.y0.val() << 16;
        }
        self.y2.next = self.y1.val();
        if self.y1.val().get_bits::<8>(56) == 0 {
            self.lz.next = self.lz.val() | 8;
            self.y2.next = self.y1.val() << 8;
        }
        self.y3.next = self.y2.val();
        if self.y2.val().get_bits::<4>(60) == 0 {
            self.lz.next = self.lz.val() | 4;
            self.y3.next = self.y2.val() << 4;
        }
        self.y4.next = self.y3.val();
        if self.y3.val().get_bits::<2>(62) == 0 {
            self.lz.next = self.lz.val() | 2;
            self.y4.next = self.y3.val() << 2;
        }
        self.y5.next = self.y4.val();
        if !self.y4.val().get_bit(63) {
            self.lz.next = self.lz.val() | 1;
            self.y5.next = self.y4.val() << 1;
        }
        // y5 = m << lz (lz <= 31) with the leading one in bit 63, unless m < 2^31 (the clamp)
        self.addr1.next = (self.lz.val() << 4) | bit_cast::<9, 4>(self.y5.val().get_bits::<4>(59));
        // the ROM output register is stage 2: while it holds, it re-reads stage 2's address
        self.rom.address.next = self.addr2.q.val();
        if self.sadv.val() {
            self.rom.address.next = self.addr1.val();
        }
        // stage 2 -> output: |z| = c0 - ((-c1 t + 2^19 - 1) >> 20)
        self.prod.next = self.rom.data.val().get_bits::<16>(0) * self.t2.q.val();
        self.prod.next = self.prod.val() + 0x7_FFFF;
        self.mag.next = self.rom.data.val().get_bits::<16>(16)
            - bit_cast::<16, 12>(self.prod.val().get_bits::<12>(20));
        if self.clamp2.q.val() {
            self.mag.next = self.tail.val();
        }
        // register transfers
        // the generator steps for the first word of a draw, and for the second one when the
        // draw enters stage 2
        self.step.next = !self.ph.q.val() | self.sadv.val();
        if self.step.val() {
            self.s1.d.next = self.a1.val();
            self.s2.d.next = self.a2.val();
            self.s3.d.next = self.a3.val();
        }
        if !self.ph.q.val() {
            // the first word of the next draw
            self.w0.d.next = self.x.val();
            self.ph.d.next = true;
        }
        if self.sadv.val() {
            self.v2.d.next = self.ph.q.val();
            self.addr2.d.next = self.addr1.val();
            self.t2.d.next = self.y5.val().get_bits::<16>(43);
            self.neg2.d.next = self.w0.q.val().get_bit(31);
            self.clamp2.d.next = !self.y5.val().get_bit(63);
            if self.ph.q.val() {
                self.ph.d.next = false;
            }
        }
        if self.oadv.val() {
            self.zr.d.next = self.mag.val();
            if self.neg2.q.val() {
                self.zr.d.next = 0 - self.mag.val();
            }
            self.vo.d.next = self.v2.q.val();
        }
        if self.load.val() {
            self.s1.d.next = self.seed_s1.val();
            self.s2.d.next = self.seed_s2.val();
            self.s3.d.next = self.seed_s3.val();
            self.ph.d.next = false;
            self.v2.d.next = false;
            self.vo.d.next = false;
        }
        self.z.next = self.zr.q.val();
        self.valid.next = self.vo.q.val();
    }
}

impl NoiseLaneHw {
    /// Drive the load port with the state of `Taus88` `g`.
    pub fn set_seed(&mut self, g: &Taus88) {
        self.seed_s1.next = (g.s[0] as u64).to_bits();
        self.seed_s2.next = (g.s[1] as u64).to_bits();
        self.seed_s3.next = (g.s[2] as u64).to_bits();
    }
}

/// Verilog of a lone noise lane (for the Verilator stream test).
pub fn noise_lane_verilog() -> Result<String, crate::Error> {
    let mut uut = NoiseLaneHw::default();
    uut.connect_all();
    crate::verilog::block_verilog(&uut)
}

const NOISE_HARNESS: &str = r#"
#include "Vtop.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    Vtop* t = new Vtop;
    unsigned s1 = strtoul(argv[1], 0, 0), s2 = strtoul(argv[2], 0, 0), s3 = strtoul(argv[3], 0, 0);
    long n = strtol(argv[4], 0, 0); long every = strtol(argv[5], 0, 0);
    t->clock = 0; t->load = 1; t->pop = 0; t->seed_s1 = s1; t->seed_s2 = s2; t->seed_s3 = s3;
    t->eval(); t->clock = 1; t->eval(); t->clock = 0; t->eval();
    t->load = 0;
    long got = 0, cyc = 0;
    while (got < n) {
        int fire = t->valid && (cyc % every == 0);
        if (fire) { printf("%d\n", (int)(short)t->z); got++; }
        t->pop = fire;
        t->eval(); t->clock = 1; t->eval(); t->clock = 0; t->eval();
        cyc++;
        if (cyc > 10 * n + 100) { fprintf(stderr, "stalled\n"); return 1; }
    }
    delete t;
    return 0;
}
"#;

/// Draw `n` samples from a Verilator build of the noise lane (lane `lane` of seed `seed`),
/// popping every `pop_every` cycles.
pub fn verilator_noise_stream(
    seed: u64,
    lane: u32,
    n: usize,
    pop_every: usize,
) -> Result<Vec<i16>, crate::Error> {
    let exe = crate::verilog::verilator_build(&noise_lane_verilog()?, NOISE_HARNESS, false, false)?;
    let g = Taus88::for_lane(seed, lane);
    let args: Vec<String> = vec![
        g.s[0].to_string(),
        g.s[1].to_string(),
        g.s[2].to_string(),
        n.to_string(),
        pop_every.to_string(),
    ];
    let out = crate::verilog::run_harness(&exe, &args, "")?;
    out.lines()
        .map(|l| {
            l.trim()
                .parse::<i16>()
                .map_err(|e| crate::Error::Tool(format!("bad harness output {l:?}: {e}")))
        })
        .collect()
}

/// rust-hdl simulation of the noise lane: `n` samples of lane `lane` / seed `seed`, popping
/// every `pop_every` cycles.
pub fn rusthdl_noise_stream(seed: u64, lane: u32, n: usize, pop_every: usize) -> Vec<i16> {
    use crate::simx::{settle, tick};
    let mut uut = NoiseLaneHw::default();
    uut.connect_all();
    uut.set_seed(&Taus88::for_lane(seed, lane));
    uut.load.next = true;
    uut.pop.next = false;
    settle(&mut uut).expect("settle");
    tick(&mut uut, |u| &mut u.clock).expect("tick");
    uut.load.next = false;
    let mut out = Vec::with_capacity(n);
    let mut cyc = 0usize;
    while out.len() < n {
        let fire = uut.valid.val() && cyc % pop_every.max(1) == 0;
        if fire {
            out.push(uut.z.val().to_u64() as u16 as i16);
        }
        uut.pop.next = fire;
        settle(&mut uut).expect("settle");
        tick(&mut uut, |u| &mut u.clock).expect("tick");
        cyc += 1;
        assert!(cyc < 10 * n + 100, "noise lane stalled");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use thermo_sim::noise::NoiseLane;

    /// The transform stages on chosen draws: the tail clamp (`lz >= 32`, probability 2^-32),
    /// `lz = 31`, `lz = 30`, every leading-zero count and the sign, forced into stage 1.
    #[test]
    fn transform_edge_cases_match_engine() {
        use crate::simx::{settle, tick};
        use thermo_sim::noise::{gaussian_fixed, splitmix64};
        let mut cases: Vec<(u32, u32)> = vec![
            (0, 0),
            (0x8000_0000, 0),
            (0, 0x7FFF_FFFF),
            (0x8000_0000, 0x7FFF_FFFF),
            (0, 0x8000_0000),
            (0x8000_0000, 0xFFFF_FFFF),
            (1, 0),
            (0x8000_0001, 0x1234_5678),
            (0x7FFF_FFFF, 0xFFFF_FFFF),
            (0xFFFF_FFFF, 0xFFFF_FFFF),
            (0x4000_0000, 0),
        ];
        let mut x = 99u64;
        for lz in 0..34u32 {
            for _ in 0..20 {
                let r = splitmix64(&mut x);
                // m = 63-bit word with exactly `lz` leading zeros (lz < 63)
                let m = ((r >> 1) | (1u64 << 62)) >> lz;
                let neg = (r & 1) as u32;
                cases.push((((m >> 32) as u32) | (neg << 31), m as u32));
            }
        }
        // rounding: for every ROM entry, the first fraction `t` whose product `-c1 t` has low
        // 20 bits 2^19 - 1, 2^19 or 2^19 + 1 (where one exists), as a draw
        let mut ties = 0;
        for (addr, e) in thermo_sim::noise::icdf_rom().iter().enumerate() {
            let (lz, seg) = ((addr >> 4) as u32, (addr & 15) as u64);
            for low in [(1u64 << 19) - 1, 1 << 19, (1 << 19) + 1] {
                if let Some(t) =
                    (0..1u64 << 16).find(|t| (t * (-e.c1 as i64) as u64) % (1 << 20) == low)
                {
                    ties += (low == 1 << 19) as usize;
                    let r = splitmix64(&mut x);
                    let m = (1u64 << (62 - lz))
                        | (seg << (58 - lz))
                        | (t << (42 - lz))
                        | (r & ((1 << (42 - lz)) - 1));
                    cases.push((((m >> 32) as u32) | (((r >> 63) as u32) << 31), m as u32));
                }
            }
        }
        assert!(ties > 0, "no ROM entry can produce a rounding tie");
        let mut uut = NoiseLaneHw::default();
        uut.connect_all();
        fn clk(u: &mut NoiseLaneHw) -> &mut Signal<In, Clock> {
            &mut u.clock
        }
        let solve = preimage_solver();
        for (w0, w1) in cases {
            // stage 1 holds w0; the generator state is one whose next word is w1
            let s = solve(w1);
            assert_eq!(Taus88 { s }.next_u32(), w1);
            uut.pop.next = true;
            uut.load.next = false;
            uut.ph.q.next = true;
            uut.w0.q.next = (w0 as u64).to_bits();
            uut.s1.q.next = (s[0] as u64).to_bits();
            uut.s2.q.next = (s[1] as u64).to_bits();
            uut.s3.q.next = (s[2] as u64).to_bits();
            settle(&mut uut).unwrap();
            tick(&mut uut, clk).unwrap();
            tick(&mut uut, clk).unwrap();
            settle(&mut uut).unwrap();
            let z = uut.z.val().to_u64() as u16 as i16;
            assert_eq!(z, gaussian_fixed(w0, w1), "draw ({w0:#x}, {w1:#x})");
        }
    }

    /// A solver for taus88 states whose next word is a given word (the map from state to next
    /// word is linear over GF(2); Gaussian elimination over the 96 unit states).
    fn preimage_solver() -> impl Fn(u32) -> [u32; 3] {
        let mut basis: Vec<Option<(u32, [u32; 3])>> = vec![None; 32];
        for j in 0..96 {
            let mut comb = [0u32; 3];
            comb[j / 32] = 1 << (j % 32);
            let mut img = Taus88 { s: comb }.next_u32();
            for b in (0..32).rev() {
                if (img >> b) & 1 == 0 {
                    continue;
                }
                match basis[b] {
                    Some((bi, bc)) => {
                        img ^= bi;
                        for c in 0..3 {
                            comb[c] ^= bc[c];
                        }
                    }
                    None => {
                        basis[b] = Some((img, comb));
                        break;
                    }
                }
            }
        }
        move |w| {
            let (mut t, mut s) = (w, [0u32; 3]);
            for b in (0..32).rev() {
                if (t >> b) & 1 == 1 {
                    let (bi, bc) = basis[b].expect("the next-word map has full rank");
                    t ^= bi;
                    for c in 0..3 {
                        s[c] ^= bc[c];
                    }
                }
            }
            s
        }
    }

    /// The start-up contract: after `load` the first sample is valid 3 cycles later and the
    /// next ones every 2 cycles (a lane's fastest pops: units of 2 instructions, no bus phase,
    /// `NOISE_LOAD` with `START`), equal to the engine's; one cycle earlier nothing is valid.
    #[test]
    fn pops_every_other_cycle_from_load() {
        use crate::simx::{settle, tick};
        fn clk(u: &mut NoiseLaneHw) -> &mut Signal<In, Clock> {
            &mut u.clock
        }
        for (seed, lane) in [(5u64, 0u32), (0xFEED, 7)] {
            let mut uut = NoiseLaneHw::default();
            uut.connect_all();
            // two loads: from power-up and over a full pipeline
            for _ in 0..2 {
                uut.set_seed(&Taus88::for_lane(seed, lane));
                uut.load.next = true;
                uut.pop.next = false;
                settle(&mut uut).unwrap();
                tick(&mut uut, clk).unwrap();
                uut.load.next = false;
                let mut eng = NoiseLane::new(seed, lane);
                for cyc in 0..3 + 2 * 500 {
                    let fire = cyc >= 3 && (cyc - 3) % 2 == 0;
                    uut.pop.next = fire;
                    settle(&mut uut).unwrap();
                    if cyc == 2 {
                        assert!(!uut.valid.val(), "valid one cycle early");
                    }
                    if fire {
                        assert!(uut.valid.val(), "no sample in cycle {cyc} after load");
                        let z = uut.z.val().to_u64() as u16 as i16;
                        assert_eq!(z, eng.next_fixed(), "seed {seed} lane {lane} cycle {cyc}");
                    }
                    tick(&mut uut, clk).unwrap();
                }
                // let the pipeline fill before the reload
                uut.pop.next = false;
                for _ in 0..8 {
                    settle(&mut uut).unwrap();
                    tick(&mut uut, clk).unwrap();
                }
            }
        }
    }

    #[test]
    fn noise_lane_matches_engine() {
        for (seed, lane, every) in [(1u64, 0u32, 1usize), (7, 3, 2), (0xDEAD_BEEF, 11, 3)] {
            let n = 2000;
            let hw = rusthdl_noise_stream(seed, lane, n, every);
            let mut eng = NoiseLane::new(seed, lane);
            for (k, &z) in hw.iter().enumerate() {
                let e = eng.next_fixed();
                assert_eq!(z, e, "seed {seed} lane {lane} draw {k}");
            }
        }
    }
}
