//! The run sequencer of the command unit: performs one queued RUN on the substrate through its
//! configuration port (`thermo_sim::engine::Fixed::run_codes`).

use crate::rtl::program::{clog2 as bits_for, HwProgram};
use crate::rtl::top::{ctrl_bits, region};
use rust_hdl::prelude::*;
use thermo_proto::readout_units;
use thermo_sim::noise::TAUS88_MIN;
use thermo_sim::Substrate;

/// States of the run sequencer. `Idle`, `WaitB` and `WaitM` leave the substrate port and the
/// slot memories to the request side; every other state owns them.
#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum SeqState {
    Idle,
    Units,
    SeedRd,
    Load,
    Burn,
    WaitB,
    Main,
    WaitM,
    Off,
    Copy,
    Finish,
    Abort,
}

/// Run sequencer.
///
/// **Computes** one run of a queued slot: it takes the head of the command unit's run queue
/// (`take`, while `queued` and the request side is idle); for every unit (lane `i % P`, index
/// `i / P`) it writes the slot's code (slot memory word `i`) into the lane's bias memory, zero
/// into the unit's state (current buffer) and zero into its readout accumulator; it writes every
/// lane's seeds `lift(lane_base(l) XOR key)` (lane bases from a ROM; `lift` adds
/// `TAUS88_MIN[c]` to a word below it) and loads them (`NOISE_LOAD`); it runs `burn_in` sweeps
/// (if any), switches readout accumulation on (of `rho(x)` for a run with `rho`), runs `sweeps` sweeps, switches it off, writes the
/// accumulators of the readout units (of every unit for a run with `all_units`), read
/// through the port, into the slot's part of the result memory and reports `done` (the command unit counts the run and marks the slot done). A
/// `reset` while a run is in progress makes it an aborted run: it still finishes (the substrate
/// cannot stop one), writes no results, reports no `done`, and at its end has the sweep base
/// taken again (`base_take`) and the saturation counters cleared with readout off.
///
/// **Port ownership**: `owns` is high in every state but `Idle` and the two waits for the
/// substrate (`WaitB`, `WaitM`); it enters an owning state only while `req_idle`, and the
/// command unit starts executing a request only while `owns` is low. While it owns the port,
/// its requests to the command unit's port registers (`p_addr_en`/`p_addr`,
/// `p_data_en`/`p_data`, `p_we`) and its slot memory read address (`slot_raddr_en`) take
/// effect; `slot_rdata` and `cfg_rdata` come back with the memory's and the port's latency.
///
/// **Ports**: `clock`; from the command unit `req_idle`, `queued`, `next_slot` (the queue's
/// head), `reset`, `slot_rdata`; from the substrate `cfg_rdata`, `running` (the read side of
/// the command unit's [`crate::rtl::port::ConfigPort`]: the sequencer does not drive the port,
/// the command unit's port registers do); to the command unit `take`, `owns`, `busy` (not
/// `Idle`), `cur` (the slot being run), `done`, `base_take`, the port requests,
/// `slot_raddr_en`/`slot_raddr`, and the result memory's write port `res_we`, `res_waddr` (its
/// data is `cfg_rdata`).
///
/// **Latency**: 4 cycles per unit + 3 per seed word (3 P) + 8, then
/// `(burn_in + sweeps) * cycles_per_sweep` plus about 20, then 5 per summed unit (readout
/// units, or every unit) + 2.
///
/// **Proof**: as part of the command unit, `hdl/tests/link_command.rs` (the exact port writes
/// of a run on a mock port) and `hdl/tests/link_run.rs` (RUN results equal `Fixed::run_codes` bit
/// for bit).
#[derive(LogicBlock)]
pub struct RunSequencer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The request side is idle.
    pub req_idle: Signal<In, Bit>,
    /// The run queue is not empty.
    pub queued: Signal<In, Bit>,
    /// The slot at the head of the run queue.
    pub next_slot: Signal<In, Bits<2>>,
    /// RESET executes in this cycle (a run in progress becomes an aborted run).
    pub reset: Signal<In, Bit>,
    /// Slot memory read data (address of the cycle before).
    pub slot_rdata: Signal<In, Bits<32>>,
    /// Substrate port read data (address of two cycles before).
    pub cfg_rdata: Signal<In, Bits<32>>,
    /// The substrate is running sweeps.
    pub running: Signal<In, Bit>,
    /// The slot being run sums every unit (RUN flag `RUN_ALL_UNITS`), not only the readout
    /// units (held by the command unit for the slot `cur` while the run is in progress).
    pub all_units: Signal<In, Bit>,
    /// The slot being run sums `rho` of the states (RUN flag `RUN_RHO`; held like
    /// `all_units`): readout is switched on with `READOUT_RHO`.
    pub rho: Signal<In, Bit>,
    /// Take the head of the run queue (this cycle).
    pub take: Signal<Out, Bit>,
    /// The sequencer owns the port and the slot memories.
    pub owns: Signal<Out, Bit>,
    /// A run is in progress.
    pub busy: Signal<Out, Bit>,
    /// The slot being run.
    pub cur: Signal<Out, Bits<2>>,
    /// A run finished and counts (this cycle).
    pub done: Signal<Out, Bit>,
    /// Take `cfg_rdata` as the new sweep base (this cycle).
    pub base_take: Signal<Out, Bit>,
    /// Set the port address register to `p_addr`.
    pub p_addr_en: Signal<Out, Bit>,
    /// Port address.
    pub p_addr: Signal<Out, Bits<24>>,
    /// Set the port write data register to `p_data`.
    pub p_data_en: Signal<Out, Bit>,
    /// Port write data.
    pub p_data: Signal<Out, Bits<32>>,
    /// Write the port in the next cycle.
    pub p_we: Signal<Out, Bit>,
    /// Read the slot memory at `slot_raddr`.
    pub slot_raddr_en: Signal<Out, Bit>,
    /// Slot memory read address.
    pub slot_raddr: Signal<Out, Bits<16>>,
    /// Result memory write enable.
    pub res_we: Signal<Out, Bit>,
    /// Result memory write address.
    pub res_waddr: Signal<Out, Bits<16>>,
    lbase: ROM<Bits<32>, 8>,
    rdo_rom: ROM<Bits<16>, 10>,
    rs: DFF<SeqState>,
    cur_r: DFF<Bits<2>>,
    abort: DFF<Bit>,
    /// `burn_in` of the run is zero (taken with it from the slot memory).
    bz: DFF<Bit>,
    si: DFF<Bits<16>>,
    sl: DFF<Bits<8>>,
    sq: DFF<Bits<16>>,
    sc: DFF<Bits<2>>,
    sph: DFF<Bits<3>>,
    wcnt: DFF<Bits<3>>,
    k_d16: Constant<Bits<16>>,
    k_r16: Constant<Bits<16>>,
    k_p8: Constant<Bits<8>>,
    k_sbits: Constant<Bits<16>>,
    k_rbits: Constant<Bits<16>>,
    k_bbits: Constant<Bits<24>>,
    k_wm: Constant<Bits<16>>,
    k_slm: Constant<Bits<8>>,
    k_clear: Constant<Bits<32>>,
    k_noise_load: Constant<Bits<32>>,
    k_start: Constant<Bits<32>>,
    k_rdo_on: Constant<Bits<32>>,
    k_rdo_off: Constant<Bits<32>>,
    k_rdo_rho: Constant<Bits<32>>,
    k_rg_bias: Constant<Bits<24>>,
    /// The port's memory-region index bits (`HwProgram::index_bits`): a bias address is
    /// `k_rg_bias | lane << k_ib | index`.
    k_ib: Constant<Bits<24>>,
    k_rg_state: Constant<Bits<24>>,
    k_rg_rdo: Constant<Bits<24>>,
    k_rg_seed: Constant<Bits<24>>,
    k_tmin0: Constant<Bits<5>>,
    k_tmin1: Constant<Bits<5>>,
    k_tmin2: Constant<Bits<5>>,
    siq: Signal<Local, Bits<16>>,
    sqq: Signal<Local, Bits<16>>,
    slq: Signal<Local, Bits<8>>,
    cbase: Signal<Local, Bits<16>>,
    opnd: Signal<Local, Bits<24>>,
    lmin: Signal<Local, Bits<5>>,
    lifted: Signal<Local, Bits<5>>,
    seedw: Signal<Local, Bits<32>>,
    climit: Signal<Local, Bits<16>>,
    caddr: Signal<Local, Bits<24>>,
}

// the seed lifting relies on this noise constant
const _: () = assert!(TAUS88_MIN[0] <= 16 && TAUS88_MIN[1] <= 16 && TAUS88_MIN[2] <= 16);

impl RunSequencer {
    /// The sequencer of substrate `s` compiled to `prog`: slot memory regions of `2^slot_bits`
    /// words (the conditioning codes, then `sweeps, burn_in, key[0..3]`), result regions of
    /// `2^res_bits` words; the unit and readout counters are masked to `wm`.
    pub fn new(
        s: &Substrate,
        prog: &HwProgram,
        slot_bits: usize,
        res_bits: usize,
        wm: u64,
    ) -> Self {
        let d = prog.d;
        let ro = readout_units(s);
        let r = ro.len();
        assert!(r <= 1024, "{r} readout units exceed the sequencer's 1024");
        assert!(prog.p <= 64, "{} lanes exceed the sequencer's 64", prog.p);
        let opnd = |i: usize| (((i / prog.p) << prog.dp.bbits) | (i % prog.p)) as u64;
        let rdo_rom: ROM<Bits<16>, 10> = ro.iter().map(|&u| opnd(u).to_bits()).into();
        let mut lb = Vec::new();
        for l in 0..prog.p as u32 {
            let b = thermo_sim::noise::lane_base(l);
            lb.extend([b[0] as u64, b[1] as u64, b[2] as u64, 0]);
        }
        let lbase: ROM<Bits<32>, 8> = lb.into_iter().map(|w| w.to_bits()).into();
        let k32 = |v: u32| Constant::new((v as u64).to_bits());
        let k24 = |v: u32| Constant::new((v as u64).to_bits());
        RunSequencer {
            clock: Default::default(),
            req_idle: Default::default(),
            queued: Default::default(),
            next_slot: Default::default(),
            reset: Default::default(),
            slot_rdata: Default::default(),
            cfg_rdata: Default::default(),
            running: Default::default(),
            all_units: Default::default(),
            rho: Default::default(),
            take: Default::default(),
            owns: Default::default(),
            busy: Default::default(),
            cur: Default::default(),
            done: Default::default(),
            base_take: Default::default(),
            p_addr_en: Default::default(),
            p_addr: Default::default(),
            p_data_en: Default::default(),
            p_data: Default::default(),
            p_we: Default::default(),
            slot_raddr_en: Default::default(),
            slot_raddr: Default::default(),
            res_we: Default::default(),
            res_waddr: Default::default(),
            lbase,
            rdo_rom,
            rs: Default::default(),
            cur_r: Default::default(),
            abort: Default::default(),
            bz: Default::default(),
            si: Default::default(),
            sl: Default::default(),
            sq: Default::default(),
            sc: Default::default(),
            sph: Default::default(),
            wcnt: Default::default(),
            k_d16: Constant::new((d as u64).to_bits()),
            k_r16: Constant::new((r as u64).to_bits()),
            k_p8: Constant::new((prog.p as u64).to_bits()),
            k_sbits: Constant::new((slot_bits as u64).to_bits()),
            k_rbits: Constant::new((res_bits as u64).to_bits()),
            k_bbits: Constant::new((prog.dp.bbits as u64).to_bits()),
            k_wm: Constant::new(wm.to_bits()),
            // the lane counter runs over 0..=P
            k_slm: Constant::new(((1u64 << bits_for(prog.p + 1)) - 1).to_bits()),
            k_clear: k32(ctrl_bits::CLEAR),
            k_noise_load: k32(ctrl_bits::NOISE_LOAD),
            k_start: k32(ctrl_bits::START),
            k_rdo_on: k32(ctrl_bits::READOUT_ON),
            k_rdo_off: k32(ctrl_bits::READOUT_OFF),
            k_rdo_rho: k32(ctrl_bits::READOUT_RHO),
            k_rg_bias: k24(region::BIAS << 20),
            k_ib: k24(prog.index_bits() as u32),
            k_rg_state: k24(region::STATE << 20),
            k_rg_rdo: k24(region::READOUT << 20),
            k_rg_seed: k24(region::SEED << 20),
            k_tmin0: Constant::new((TAUS88_MIN[0] as u64).to_bits()),
            k_tmin1: Constant::new((TAUS88_MIN[1] as u64).to_bits()),
            k_tmin2: Constant::new((TAUS88_MIN[2] as u64).to_bits()),
            siq: Default::default(),
            sqq: Default::default(),
            slq: Default::default(),
            cbase: Default::default(),
            opnd: Default::default(),
            lmin: Default::default(),
            lifted: Default::default(),
            seedw: Default::default(),
            climit: Default::default(),
            caddr: Default::default(),
        }
    }
}

impl Logic for RunSequencer {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, rs, cur_r, abort, bz, si, sl, sq, sc, sph, wcnt);
        // the counters never exceed `k_wm` / `k_slm` in this build (see `CommandUnit::new`)
        self.siq.next = self.si.q.val() & self.k_wm.val();
        self.sqq.next = self.sq.q.val() & self.k_wm.val();
        self.slq.next = self.sl.q.val() & self.k_slm.val();
        self.lbase.address.next = (self.slq.val() << 2) | bit_cast::<8, 2>(self.sc.q.val());
        self.rdo_rom.address.next = self.siq.val().get_bits::<10>(0);
        self.cbase.next = bit_cast::<16, 2>(self.cur_r.q.val()) << self.k_sbits.val();
        self.opnd.next = (bit_cast::<24, 16>(self.sqq.val()) << self.k_bbits.val())
            | bit_cast::<24, 8>(self.slq.val());
        // `lift` of seed word sc: a word below TAUS88_MIN[sc] (at most 16) gets it added,
        // so the test and the sum need only the low 5 bits
        self.lmin.next = self.k_tmin2.val();
        if self.sc.q.val() == 0 {
            self.lmin.next = self.k_tmin0.val();
        }
        if self.sc.q.val() == 1 {
            self.lmin.next = self.k_tmin1.val();
        }
        self.seedw.next = self.slot_rdata.val() ^ self.lbase.data.val();
        // the units summed into the result: the readout units (operands from the ROM), or
        // every unit (lane sl, index sq) for an all-units run
        self.climit.next = self.k_r16.val();
        self.caddr.next = bit_cast::<24, 16>(self.rdo_rom.data.val());
        if self.all_units.val() {
            self.climit.next = self.k_d16.val();
            self.caddr.next = self.opnd.val();
        }
        self.lifted.next = self.seedw.val().get_bits::<5>(0) + self.lmin.val();
        // defaults: no request to the command unit
        self.take.next = false;
        self.done.next = false;
        self.base_take.next = false;
        self.p_addr_en.next = false;
        self.p_addr.next = 0.into();
        self.p_data_en.next = false;
        self.p_data.next = 0.into();
        self.p_we.next = false;
        self.slot_raddr_en.next = false;
        self.slot_raddr.next = 0.into();
        self.res_we.next = false;
        self.res_waddr.next =
            (bit_cast::<16, 2>(self.cur_r.q.val()) << self.k_rbits.val()) + self.siq.val();
        // RESET while a run is in progress: the run counts nothing
        if self.reset.val() {
            self.abort.d.next = self.rs.q.val() != SeqState::Idle;
        }
        match self.rs.q.val() {
            SeqState::Idle => {
                if self.queued.val() & self.req_idle.val() {
                    self.take.next = true;
                    self.cur_r.d.next = self.next_slot.val();
                    self.abort.d.next = false;
                    self.si.d.next = 0.into();
                    self.sl.d.next = 0.into();
                    self.sq.d.next = 0.into();
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::Units;
                }
            }
            SeqState::Units => {
                // unit si (lane sl, index sq): bias <- code, state <- 0, readout <- 0
                self.slot_raddr_en.next = true;
                self.slot_raddr.next = self.cbase.val() + self.siq.val();
                if self.siq.val() == self.k_d16.val() {
                    self.sl.d.next = 0.into();
                    self.sc.d.next = 0.into();
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::SeedRd;
                } else {
                    self.sph.d.next = self.sph.q.val() + 1;
                    if self.sph.q.val() == 1 {
                        self.p_addr_en.next = true;
                        self.p_addr.next = self.k_rg_bias.val()
                            | (bit_cast::<24, 8>(self.slq.val()) << self.k_ib.val())
                            | bit_cast::<24, 16>(self.sqq.val());
                        self.p_data_en.next = true;
                        self.p_data.next = self.slot_rdata.val();
                        self.p_we.next = true;
                    }
                    if self.sph.q.val() == 2 {
                        self.p_addr_en.next = true;
                        self.p_addr.next = self.k_rg_state.val() | self.opnd.val();
                        self.p_data_en.next = true;
                        self.p_data.next = 0.into();
                        self.p_we.next = true;
                    }
                    if self.sph.q.val() == 3 {
                        self.p_addr_en.next = true;
                        self.p_addr.next = self.k_rg_rdo.val() | self.opnd.val();
                        self.p_data_en.next = true;
                        self.p_data.next = 0.into();
                        self.p_we.next = true;
                        self.sph.d.next = 0.into();
                        self.si.d.next = self.siq.val() + 1;
                        self.sl.d.next = self.slq.val() + 1;
                        if self.slq.val() + 1 == self.k_p8.val() {
                            self.sl.d.next = 0.into();
                            self.sq.d.next = self.sqq.val() + 1;
                        }
                    }
                }
            }
            SeqState::SeedRd => {
                // seed word c of lane sl: lift(lane_base XOR key[c])
                self.slot_raddr_en.next = true;
                self.slot_raddr.next =
                    self.cbase.val() + self.k_d16.val() + 2 + bit_cast::<16, 2>(self.sc.q.val());
                if self.slq.val() == self.k_p8.val() {
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::Load;
                } else {
                    self.sph.d.next = self.sph.q.val() + 1;
                    if self.sph.q.val() == 1 {
                        // the seed word, written with the address in the next cycle
                        self.p_data_en.next = true;
                        self.p_data.next = self.seedw.val();
                        if !self.seedw.val().get_bits::<27>(5).any()
                            & (self.seedw.val().get_bits::<5>(0) < self.lmin.val())
                        {
                            self.p_data.next = bit_cast::<32, 5>(self.lifted.val());
                        }
                    }
                    if self.sph.q.val() == 2 {
                        self.p_addr_en.next = true;
                        self.p_addr.next = self.k_rg_seed.val()
                            | (bit_cast::<24, 8>(self.slq.val()) << 8)
                            | bit_cast::<24, 2>(self.sc.q.val());
                        self.p_we.next = true;
                        self.sph.d.next = 0.into();
                        self.sc.d.next = self.sc.q.val() + 1;
                        if self.sc.q.val() == 2 {
                            self.sc.d.next = 0.into();
                            self.sl.d.next = self.slq.val() + 1;
                        }
                    }
                }
            }
            SeqState::Load => {
                // load the noise lanes; read burn_in
                self.slot_raddr_en.next = true;
                self.slot_raddr.next = self.cbase.val() + self.k_d16.val() + 1;
                self.sph.d.next = 1.into();
                if self.sph.q.val() == 0 {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 0.into();
                    self.p_data_en.next = true;
                    self.p_data.next = self.k_noise_load.val();
                    self.p_we.next = true;
                } else {
                    // burn_in waits in the port's data register (Burn writes it to n_sweeps)
                    self.p_data_en.next = true;
                    self.p_data.next = self.slot_rdata.val();
                    self.bz.d.next = !self.slot_rdata.val().any();
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::Burn;
                }
            }
            SeqState::Burn => {
                self.wcnt.d.next = 0.into();
                if self.bz.q.val() {
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::Main;
                } else if self.sph.q.val() == 0 {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 1.into();
                    self.p_we.next = true;
                    self.sph.d.next = 1.into();
                } else {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 0.into();
                    self.p_data_en.next = true;
                    self.p_data.next = self.k_start.val();
                    self.p_we.next = true;
                    self.rs.d.next = SeqState::WaitB;
                }
            }
            SeqState::WaitB => {
                if self.wcnt.q.val() != 7 {
                    self.wcnt.d.next = self.wcnt.q.val() + 1;
                } else if !self.running.val() & self.req_idle.val() {
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::Main;
                    if self.abort.q.val() {
                        self.rs.d.next = SeqState::Abort;
                    }
                }
            }
            SeqState::Main => {
                // readout on; n_sweeps <- sweeps; start
                self.slot_raddr_en.next = true;
                self.slot_raddr.next = self.cbase.val() + self.k_d16.val();
                self.wcnt.d.next = 0.into();
                self.sph.d.next = self.sph.q.val() + 1;
                self.p_we.next = true;
                if self.sph.q.val() == 0 {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 0.into();
                    self.p_data_en.next = true;
                    self.p_data.next = self.k_rdo_on.val();
                    if self.rho.val() {
                        self.p_data.next = self.k_rdo_on.val() | self.k_rdo_rho.val();
                    }
                }
                if self.sph.q.val() == 1 {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 1.into();
                    self.p_data_en.next = true;
                    self.p_data.next = self.slot_rdata.val();
                }
                if self.sph.q.val() == 2 {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 0.into();
                    self.p_data_en.next = true;
                    self.p_data.next = self.k_start.val();
                    self.rs.d.next = SeqState::WaitM;
                }
            }
            SeqState::WaitM => {
                if self.wcnt.q.val() != 7 {
                    self.wcnt.d.next = self.wcnt.q.val() + 1;
                } else if !self.running.val() & self.req_idle.val() {
                    self.sph.d.next = 0.into();
                    self.rs.d.next = SeqState::Off;
                    if self.abort.q.val() {
                        self.rs.d.next = SeqState::Abort;
                    }
                }
            }
            SeqState::Off => {
                self.p_addr_en.next = true;
                self.p_addr.next = 0.into();
                self.p_data_en.next = true;
                self.p_data.next = self.k_rdo_off.val();
                self.p_we.next = true;
                self.si.d.next = 0.into();
                self.sl.d.next = 0.into();
                self.sq.d.next = 0.into();
                self.sph.d.next = 0.into();
                self.rs.d.next = SeqState::Copy;
            }
            SeqState::Copy => {
                // summed unit si: its accumulator (read through the port) to the result memory
                if self.siq.val() == self.climit.val() {
                    self.rs.d.next = SeqState::Finish;
                } else {
                    self.sph.d.next = self.sph.q.val() + 1;
                    if self.sph.q.val() == 0 {
                        self.p_addr_en.next = true;
                        self.p_addr.next = self.k_rg_rdo.val() | self.caddr.val();
                    }
                    if self.sph.q.val() == 4 {
                        self.res_we.next = !self.abort.q.val();
                        self.sph.d.next = 0.into();
                        self.si.d.next = self.siq.val() + 1;
                        self.sl.d.next = self.slq.val() + 1;
                        if self.slq.val() + 1 == self.k_p8.val() {
                            self.sl.d.next = 0.into();
                            self.sq.d.next = self.sqq.val() + 1;
                        }
                    }
                }
            }
            SeqState::Finish => {
                self.done.next = !self.abort.q.val();
                self.rs.d.next = SeqState::Idle;
            }
            SeqState::Abort => {
                // a RESET came during this run: it counts nothing (sweep base taken again,
                // saturation counters cleared, readout off)
                self.sph.d.next = self.sph.q.val() + 1;
                if self.sph.q.val() == 0 {
                    self.p_addr_en.next = true;
                    self.p_addr.next = 1.into();
                }
                if self.sph.q.val() == 4 {
                    self.base_take.next = true;
                    self.p_addr_en.next = true;
                    self.p_addr.next = 0.into();
                    self.p_data_en.next = true;
                    self.p_data.next = self.k_clear.val() | self.k_rdo_off.val();
                    self.p_we.next = true;
                    self.rs.d.next = SeqState::Idle;
                }
            }
            _ => {
                self.rs.d.next = SeqState::Idle;
            }
        }
        self.owns.next = !((self.rs.q.val() == SeqState::Idle)
            | (self.rs.q.val() == SeqState::WaitB)
            | (self.rs.q.val() == SeqState::WaitM));
        self.busy.next = self.rs.q.val() != SeqState::Idle;
        self.cur.next = self.cur_r.q.val();
    }
}
