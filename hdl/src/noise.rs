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
/// **Structure and latency.** A three-stage stall-on-full pipeline: (1) two taus88 steps per
/// clock latch a draw `(w0, w1)`; (2) leading-zero count, window extraction and the synchronous
/// ROM read (`IcdfRom`, 512 x 32 bits: `c0 | c1`); (3) the 16x16 interpolation
/// `c0 + ((c1 t + 2^19) >> 20)`, the tail clamp and the sign, latched in `z`. After `load` the
/// first sample is `valid` 3 cycles later; afterwards one sample per clock can be popped (a popped
/// sample is replaced on the next edge). The whole pipeline advances only when the output
/// register is empty or being popped, so no draw is ever lost.
///
/// **Proof of equality with the engine:** `noise::tests::noise_lane_matches_engine` (rust-hdl
/// simulation, several seeds, lanes and pop rates),
/// `noise::tests::transform_edge_cases_match_engine` (chosen draws forced into stage 1: the tail clamp, every leading-zero count, both signs) and
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
    // stage 1: one draw
    w0: DFF<Bits<32>>,
    w1: DFF<Bits<32>>,
    v1: DFF<Bit>,
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
    adv: Signal<Local, Bit>,
    a1: Signal<Local, Bits<32>>,
    a2: Signal<Local, Bits<32>>,
    a3: Signal<Local, Bits<32>>,
    n1: Signal<Local, Bits<32>>,
    n2: Signal<Local, Bits<32>>,
    n3: Signal<Local, Bits<32>>,
    hi: Signal<Local, Bits<32>>,
    x1: Signal<Local, Bits<32>>,
    x2: Signal<Local, Bits<32>>,
    x3: Signal<Local, Bits<32>>,
    x4: Signal<Local, Bits<32>>,
    x5: Signal<Local, Bits<32>>,
    c16: Signal<Local, Bits<6>>,
    c8: Signal<Local, Bits<6>>,
    c4: Signal<Local, Bits<6>>,
    c2: Signal<Local, Bits<6>>,
    c1: Signal<Local, Bits<6>>,
    clz: Signal<Local, Bits<6>>,
    tword: Signal<Local, Bits<32>>,
    lz: Signal<Local, Bits<9>>,
    addr1: Signal<Local, Bits<9>>,
    rom_c0: Signal<Local, Bits<16>>,
    rom_c1: Signal<Local, Bits<16>>,
    prod_u: Signal<Local, Bits<32>>,
    prod_s: Signal<Local, Bits<32>>,
    interp: Signal<Local, Bits<16>>,
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
            w1: Default::default(),
            v1: Default::default(),
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
            adv: Default::default(),
            a1: Default::default(),
            a2: Default::default(),
            a3: Default::default(),
            n1: Default::default(),
            n2: Default::default(),
            n3: Default::default(),
            hi: Default::default(),
            x1: Default::default(),
            x2: Default::default(),
            x3: Default::default(),
            x4: Default::default(),
            x5: Default::default(),
            c16: Default::default(),
            c8: Default::default(),
            c4: Default::default(),
            c2: Default::default(),
            c1: Default::default(),
            clz: Default::default(),
            tword: Default::default(),
            lz: Default::default(),
            addr1: Default::default(),
            rom_c0: Default::default(),
            rom_c1: Default::default(),
            prod_u: Default::default(),
            prod_s: Default::default(),
            interp: Default::default(),
            mag: Default::default(),
        }
    }
}

impl Logic for NoiseLaneHw {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s1, s2, s3, w0, w1, v1, t2, addr2, neg2, clamp2, v2, zr, vo);
        self.rom.clock.next = self.clock.val();
        self.adv.next = !self.vo.q.val() | self.pop.val();
        // taus88, two steps (first word a*, second word n*)
        self.a1.next = ((self.s1.q.val() & self.m1.val()) << 12)
            ^ (((self.s1.q.val() << 13) ^ self.s1.q.val()) >> 19);
        self.a2.next = ((self.s2.q.val() & self.m2.val()) << 4)
            ^ (((self.s2.q.val() << 2) ^ self.s2.q.val()) >> 25);
        self.a3.next = ((self.s3.q.val() & self.m3.val()) << 17)
            ^ (((self.s3.q.val() << 3) ^ self.s3.q.val()) >> 11);
        self.n1.next = ((self.a1.val() & self.m1.val()) << 12)
            ^ (((self.a1.val() << 13) ^ self.a1.val()) >> 19);
        self.n2.next =
            ((self.a2.val() & self.m2.val()) << 4) ^ (((self.a2.val() << 2) ^ self.a2.val()) >> 25);
        self.n3.next = ((self.a3.val() & self.m3.val()) << 17)
            ^ (((self.a3.val() << 3) ^ self.a3.val()) >> 11);
        // stage 2 address logic from the latched draw
        self.hi.next = self.w0.q.val() & 0x7FFF_FFFF;
        self.c16.next = 0.into();
        self.x1.next = self.hi.val();
        if self.hi.val().get_bits::<16>(16) == 0 {
            self.c16.next = 16.into();
            self.x1.next = self.hi.val() << 16;
        }
        self.c8.next = self.c16.val();
        self.x2.next = self.x1.val();
        if self.x1.val().get_bits::<8>(24) == 0 {
            self.c8.next = self.c16.val() + 8;
            self.x2.next = self.x1.val() << 8;
        }
        self.c4.next = self.c8.val();
        self.x3.next = self.x2.val();
        if self.x2.val().get_bits::<4>(28) == 0 {
            self.c4.next = self.c8.val() + 4;
            self.x3.next = self.x2.val() << 4;
        }
        self.c2.next = self.c4.val();
        self.x4.next = self.x3.val();
        if self.x3.val().get_bits::<2>(30) == 0 {
            self.c2.next = self.c4.val() + 2;
            self.x4.next = self.x3.val() << 2;
        }
        self.c1.next = self.c2.val();
        self.x5.next = self.x4.val();
        if !self.x4.val().get_bit(31) {
            self.c1.next = self.c2.val() + 1;
            self.x5.next = self.x4.val() << 1;
        }
        // clz of the 32-bit hi (bit 31 is 0, so clz >= 1 whenever hi != 0)
        self.clz.next = self.c1.val();
        if self.hi.val() != 0 {
            self.lz.next = bit_cast::<9, 6>(self.clz.val() - 1);
            self.tword.next = (self.x5.val() << 1) | (self.w1.q.val() >> (31 - self.clz.val()));
        } else {
            self.lz.next = 31.into();
            self.tword.next = self.w1.q.val() << 1;
        }
        self.addr1.next =
            (self.lz.val() << 4) | bit_cast::<9, 4>(self.tword.val().get_bits::<4>(28));
        // the ROM output register is stage 2: when stalled it must re-read stage 2's address
        self.rom.address.next = self.addr2.q.val();
        if self.adv.val() {
            self.rom.address.next = self.addr1.val();
        }
        // stage 3: interpolation from the ROM output
        self.rom_c0.next = self.rom.data.val().get_bits::<16>(16);
        self.rom_c1.next = self.rom.data.val().get_bits::<16>(0);
        self.prod_u.next = self.rom_c1.val() * self.t2.q.val();
        // signed x unsigned: subtract t << 16 when c1 is negative
        self.prod_s.next = self.prod_u.val();
        if self.rom_c1.val().get_bit(15) {
            self.prod_s.next = self.prod_u.val() - (bit_cast::<32, 16>(self.t2.q.val()) << 16);
        }
        self.prod_s.next = self.prod_s.val() + 0x8_0000;
        self.interp.next = bit_cast::<16, 12>(self.prod_s.val().get_bits::<12>(20));
        if self.prod_s.val().get_bit(31) {
            self.interp.next = bit_cast::<16, 12>(self.prod_s.val().get_bits::<12>(20)) | 0xF000;
        }
        self.mag.next = self.rom_c0.val() + self.interp.val();
        if self.clamp2.q.val() {
            self.mag.next = self.tail.val();
        }
        // register transfers
        if self.adv.val() {
            self.s1.d.next = self.n1.val();
            self.s2.d.next = self.n2.val();
            self.s3.d.next = self.n3.val();
            self.w0.d.next = self.a1.val() ^ self.a2.val() ^ self.a3.val();
            self.w1.d.next = self.n1.val() ^ self.n2.val() ^ self.n3.val();
            self.v1.d.next = true;
            self.addr2.d.next = self.addr1.val();
            self.t2.d.next = self.tword.val().get_bits::<16>(12);
            self.neg2.d.next = self.w0.q.val().get_bit(31);
            self.clamp2.d.next = (self.hi.val() == 0) & !self.w1.q.val().get_bit(31);
            self.v2.d.next = self.v1.q.val();
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
            self.v1.d.next = false;
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
        let mut uut = NoiseLaneHw::default();
        uut.connect_all();
        fn clk(u: &mut NoiseLaneHw) -> &mut Signal<In, Clock> {
            &mut u.clock
        }
        for (w0, w1) in cases {
            uut.pop.next = true;
            uut.load.next = false;
            uut.w0.q.next = (w0 as u64).to_bits();
            uut.w1.q.next = (w1 as u64).to_bits();
            settle(&mut uut).unwrap();
            tick(&mut uut, clk).unwrap();
            tick(&mut uut, clk).unwrap();
            settle(&mut uut).unwrap();
            let z = uut.z.val().to_u64() as u16 as i16;
            assert_eq!(z, gaussian_fixed(w0, w1), "draw ({w0:#x}, {w1:#x})");
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
