//! The command unit of the host link: executes the requests that [`crate::link::framing::FrameRx`]
//! accepted against the substrate top's configuration port and hands the replies to
//! [`crate::link::framing::FrameTx`].

use crate::link::port::{ReplyPort, RequestPort};
use crate::link::sequencer::RunSequencer;
use crate::rtl::mem::Mem;
use crate::rtl::port::ConfigPort;
use crate::rtl::program::{clog2 as bits_for, HwProgram};
use crate::rtl::top::{ctrl_bits, region};
use rust_hdl::prelude::*;
use thermo_proto::Space;
use thermo_proto::{
    readout_units, structure_hash, weight_checksum, ErrorCode, Identity, Opcode, Weights,
    ERROR_KIND, FEATURE_ALL_UNITS, FEATURE_READ_COUPLINGS, FEATURE_RHO, FEATURE_WEIGHTS,
    MAX_PAYLOAD, MAX_RUN_SWEEPS, REPLAY_WINDOW, RUN_ALL_UNITS, RUN_LEN, SLOTS, VERSION,
};

// The command unit's RUN decoding takes a 22-byte payload whose flags byte (its last) sits at
// frame-body offset 25 (the payload starts after `seq, kind, len`).
const _: () = assert!(RUN_LEN == 22);
// ... and takes the flag RUN_ALL_UNITS as bit 0 of that byte
const _: () = assert!(RUN_ALL_UNITS == 1);
use thermo_sim::noise::TAUS88_MIN;
use thermo_sim::Substrate;

#[derive(Copy, Clone, PartialEq, Debug, LogicState)]
enum CmdState {
    Idle,
    /// Read `nb` bytes of the head frame from offset `off` (2 cycles a byte) into `sr`.
    ReadBytes,
    Decide,
    Exec,
    IdentCopy,
    StatGather,
    StatField,
    StatWrite,
    ResetLoop,
    ResetSweeps,
    ResetClear,
    WmCheck,
    WmWrite,
    WmStore,
    WmReply,
    RmCheck,
    RmWord,
    RmZeros,
    RmCoup,
    /// WRITE_MEM of a weight space: compare the codes with the held ones, then write them.
    WcCmpNext,
    WcCmpWord,
    WcDecide,
    WcWrNext,
    WcWrWord,
    WcPatchB,
    /// IDENTIFY after a weight write: the weight checksum over the held codes.
    CsLoop,
    /// RESET after a weight write: the compiled weights back into the memories.
    RsWeights,
    ScCheck,
    RunCheck,
    RunFlags,
    CwStart,
    CmpNext,
    CmpWord,
    CwDecide,
    WrNext,
    WrWord,
    CwFinish,
    RoCheck,
    RoSweeps,
    RoHead,
    RoSums,
    ErrReply,
    Send,
    Release,
}

/// What a board build may shrink of the link: the inference slots and the largest payload.
/// IDENTIFY reports both and the host follows them (`thermo_host::inference` chunks requests
/// by `max_payload` and queues at most `slots` runs). The receive ring holds two frames of
/// `max_payload` rounded up to a power of two (four for the protocol's 1024), the reply buffer
/// one payload: the default (4 slots, 1024 bytes) costs 8 + 2 block RAMs for the ring and the
/// reply buffer, [`LinkOptions::SMALL`] (2 slots, 508 bytes: the iCEBreaker's) 2 + 1, and the
/// slot memories half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkOptions {
    /// Inference slots, 1..=`SLOTS` (a power of two).
    pub slots: u8,
    /// Largest request and reply payload in bytes: `2^n - 4` for n in 8..=10, or `MAX_PAYLOAD`.
    pub max_payload: usize,
    /// Weights writable over the link (`FEATURE_WEIGHTS`; see [`weights_feature`]): the held
    /// codes, the compiled ones and the map of their locations in three block-RAM tables, and
    /// the checksum unit.
    pub weights: bool,
    /// RUN takes `RUN_RHO` (`FEATURE_RHO`): the readout sums `rho(x)`, the lanes' readout
    /// clamp ([`crate::rtl::top::ctrl_bits::READOUT_RHO`]) and one flag per slot (35 logic
    /// cells of the iCEBreaker `--lanes 1` build of the shipped example).
    pub rho: bool,
    /// READ_MEM of space 2 (`FEATURE_READ_COUPLINGS`): a ROM of the coupling codes (implied
    /// by the weights feature, whose held codes include them). Off, a large model saves its
    /// block RAMs (40 DP16KD for the digits substrate's 40,960 couplings).
    pub read_couplings: bool,
}

impl Default for LinkOptions {
    fn default() -> Self {
        LinkOptions {
            slots: SLOTS,
            max_payload: MAX_PAYLOAD,
            weights: true,
            rho: true,
            read_couplings: true,
        }
    }
}

impl LinkOptions {
    /// The small link of the iCEBreaker build: 2 slots, 508-byte payloads.
    pub const SMALL: LinkOptions = LinkOptions {
        slots: 2,
        max_payload: 508,
        weights: false,
        rho: true,
        read_couplings: true,
    };
    /// Check the options.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let ok_slots = self.slots.is_power_of_two() && self.slots <= SLOTS;
        let ok_pay =
            self.max_payload == MAX_PAYLOAD || [252, 508, 1020].contains(&self.max_payload);
        if ok_slots && ok_pay {
            Ok(())
        } else {
            Err(crate::Error::Config(format!(
                "link options: slots {} (want 1, 2 or {SLOTS}), max_payload {} (want 252, 508, \
                 1020 or {MAX_PAYLOAD})",
                self.slots, self.max_payload
            )))
        }
    }
    /// Bytes of the receive ring.
    pub fn ring_bytes(&self) -> usize {
        let frame = (4 + self.max_payload).next_power_of_two();
        if self.max_payload >= MAX_PAYLOAD - 4 {
            crate::link::framing::RX_RING
        } else {
            2 * frame
        }
    }
    /// Bytes of the reply buffer.
    pub fn reply_bytes(&self) -> usize {
        self.max_payload.next_power_of_two()
    }
}

/// The identity the RTL reports for substrate `s` with the default link (what `thermo emulate`
/// reports too).
pub fn identity(s: &Substrate) -> Identity {
    identity_with(s, &LinkOptions::default())
}

/// Does the build of `prog` with options `o` have writable weights (`FEATURE_WEIGHTS`)? It
/// does when `o.weights` asks for it and every weight location is within the configuration
/// port's reach ([`HwProgram::port_reach`] words per memory, 256 memories) and the
/// codes fit the 16-bit index of the weight tables (fewer than 65,536).
pub fn weights_feature(prog: &HwProgram, o: &LinkOptions) -> bool {
    o.weights && prog.weights.len() < 1 << 16 && prog.port_reaches_weights()
}

/// The identity the RTL reports for substrate `s` with link options `o`.
pub fn identity_with(s: &Substrate, o: &LinkOptions) -> Identity {
    let weights = HwProgram::new(s)
        .map(|p| weights_feature(&p, o))
        .unwrap_or(false);
    Identity {
        version: VERSION,
        structure_hash: structure_hash(s),
        weight_checksum: weight_checksum(&Weights::of_substrate(s)),
        units: s.units() as u32,
        readout_units: readout_units(s).len() as u32,
        lanes: s.lanes as u16,
        slots: o.slots,
        state_frac: s.formats.state.frac as u8,
        max_payload: o.max_payload as u16,
        // RUN sums every unit on request, rho(x) where the build has it; weights are writable
        // where the build has them
        features: FEATURE_ALL_UNITS
            | if weights { FEATURE_WEIGHTS } else { 0 }
            | if weights || o.read_couplings {
                FEATURE_READ_COUPLINGS
            } else {
                0
            }
            | if o.rho { FEATURE_RHO } else { 0 },
    }
}

/// Configuration-port address of the bias of unit `i` (lane `i % P`, index `i / P`).
pub fn bias_port_addr(prog: &HwProgram, i: usize) -> u32 {
    prog.mem_addr(region::BIAS, i % prog.p, i / prog.p)
}
/// Command unit and run sequencer.
///
/// **Computes** the protocol's request handling (docs/protocol.md "Commands" and "RTL link"),
/// with the board model's (`thermo_proto::device::Board`) semantics, for every command: it reads
/// the head frame of the receive ring, applies the sequence-number rule (a request is executed
/// if its `seq` is the expected one, if it is IDENTIFY, or before any expectation; a request
/// whose `seq` is among the last `REPLAY_WINDOW` executed ones is *re-executed* and counted in
/// `replays`; anything else is dropped), executes it, writes the reply payload into the
/// transmitter's buffer, sends it with the request's `seq`, and releases the frame. It starts a
/// request only while the transmitter is idle.
///
/// * IDENTIFY: [`identity`] from a ROM. STATUS: `sweeps` = the substrate's sweep counter
///   (control offset 1) minus its value at the last RESET, `sat_acc` = lane + side accumulator
///   saturations, `sat_state` = lane state saturations, `sat_bus` = side line saturations (read
///   one by one through the port; sweeps and saturations are live, so they include a run in
///   progress), `runs` = completed runs, CRC and framing errors of the receiver since the last
///   RESET, `replays`.
/// * RESET: every slot idle, the run queue empty, every slot's conditioning and the default
///   biases (shadow) back to the compiled biases, the sweep counter's base taken, the
///   substrate's saturation counters cleared (control `CLEAR`), `runs`, `replays` and the error
///   counters' bases zeroed; a run in progress finishes (the substrate cannot stop one) but
///   counts nothing: its result is discarded, and when it ends the sweep base is taken and the
///   saturation counters are cleared again. The sequence expectation becomes `seq + 1`. With
///   the weights feature, after a weight write: the compiled codes back into the held codes and
///   every location (3 cycles per code), the compiled checksum reported again.
/// * WRITE_MEM / READ_MEM space 0: the default biases (the upper half of one block RAM whose
///   lower half holds the compiled biases RESET restores; as in the board model they are only
///   reported, a run loads its slot's conditioning). READ_MEM space 1 (states) answers
///   zeros like the board model (states are zero between inferences); space 2 (couplings) reads a
///   ROM of the off-diagonal coupling codes in CSR order ([`HwProgram::couplings`], the engine's
///   `coef` the board model reports; i16 little-endian; at least one word, so a substrate without
///   couplings answers error 4 to every read with `count > 0`, as the board model does). With
///   the weights feature ([`weights_feature`]) that memory holds the codes of all four weight
///   spaces ([`HwProgram::weights`]) and READ_MEM reads spaces 2..=5 from it; WRITE_MEM of a
///   weight space compares the request's codes with the held ones (equal: acknowledged), answers
///   busy while a slot is busy, and otherwise writes each code into the held codes and into its
///   one or two locations in the substrate ([`HwProgram::weight_locs`], from two location
///   tables: port address and the word's upper 16 bits). IDENTIFY after a change computes the
///   weight checksum (FNV-1a over the held codes, 7 cycles per byte) and reports it. Without the
///   feature, spaces 3..=5 answer bad address and space 2 is read only, as the board model
///   without `FEATURE_WEIGHTS`.
/// * SET_CONDITIONING: writes the codes into the slot's conditioning memory (`SLOTS` x units
///   i32, block RAM); a repeat of the stored codes on a busy or done slot is acknowledged without
///   effect, other codes on a busy slot answer busy (5), on a done slot they make it idle.
/// * RUN: stores `sweeps, burn_in, key` with the slot's conditioning, marks the slot busy and
///   queues it (a FIFO of slot numbers); the same run on a busy or done slot is acknowledged
///   without effect, another run on a busy slot answers busy; `sweeps` outside `1..=65536`
///   or a flag other than `RUN_ALL_UNITS` answers 6. The flag is kept per slot (the same run
///   with another flag is another run) and tells the sequencer which units to sum.
/// * READOUT: `state, sweeps, sums` of the slot; sums from the result memory (`SLOTS` x units
///   i32, block RAM) when done: the readout units, or every unit after an all-units run.
/// * Errors in the board model's order: bad length (2), bad parameter (6), bad slot (3), bad
///   address (4), busy (5).
///
/// The **run sequencer** ([`RunSequencer`], a block of its own) takes the next queued slot and
/// runs `thermo_sim::engine::Fixed::run_codes`
/// on the substrate through its port: for every unit (lane `i % P`, index `i / P`) it writes the
/// slot's code into the lane's bias memory, zero into the unit's state (current buffer) and
/// zero into its readout accumulator; it writes every lane's seeds `lift(lane_base(l) XOR key)`
/// (lane bases from a ROM; `lift` adds `TAUS88_MIN[c]` to a word below it) and loads them
/// (`NOISE_LOAD`); it runs `burn_in` sweeps (if any), switches readout accumulation on, runs
/// `sweeps` sweeps, switches it off, copies the readout units' accumulators (every unit's for
/// an all-units run) into the slot's result memory, counts the run and marks the slot done. **Port ownership**: the sequencer
/// owns the substrate port and the slot memories in every state but `Idle` and the two waits
/// for the substrate (`WaitB`, `WaitM`); it enters an owning state only while the request side
/// is in `Idle`, and the request side leaves `Decide` (to execute) only while the sequencer owns
/// nothing. So STATUS, READOUT and every other request are served while the substrate runs, and
/// several RUNs queue so the substrate never waits for the link.
///
/// **Ports**: `clock`; `req`, the receiver's consumer side ([`RequestPort`]: the head frame,
/// its release, and the error events `crc_evt`, `framing_evt`, counted here since the last
/// RESET); `reply`, the transmitter's buffer and send port ([`ReplyPort`]); `cfg`, the substrate
/// port ([`ConfigPort`]: `addr`, `wdata`, `we` are registered outputs); `active` (a run is
/// queued or in progress).
///
/// **Latency** (cycles, from `req.avail` with the transmitter idle to `reply.send`, the sequencer not
/// owning the port; otherwise add the rest of its owning phase): header 8 + 3; IDENTIFY 2 per
/// reply byte; STATUS 5 per counter read (1 + 2 per lane + 2 per bus side) plus 57; WRITE_MEM
/// 16 + 10 per word; READ_MEM 16 + 5 per word (space 1: 16 + 1 per byte; space 2: 16 + 3 per
/// word, also spaces 3..=5); WRITE_MEM of a weight space 16 + 5 per code compared + 7 per code
/// written; IDENTIFY after a weight write adds 15 per code (the checksum); RESET 5 per unit
/// plus 7, plus 3 per weight code after a weight write; SET_CONDITIONING 12 + 10 per code (20 when a busy or done
/// slot's codes are compared first); RUN 16 + 10 per word written (5 words; 20 when compared
/// first); READOUT 20 + 5 per sum; an error reply 2 (+ the payload bytes read for the check).
/// Then `req.done` one cycle later. A run: 4 per unit + 3 per seed word (3 P) + 8, then
/// `(burn_in + sweeps) * cycles_per_sweep` plus about 20, then 5 per summed unit + 2.
///
/// **Proof**: `hdl/tests/link_features.rs` (all-units runs, weight writes, reads, checksum and
/// RESET through the UART pins, every reply as the board model's, results as the fixed
/// engine's); `hdl/tests/link_command.rs`: `hdl_link_command_verilator` (replies equal the
/// protocol's encodings, READ_MEM of the couplings as the board model's, the exact port writes of
/// a run, sequence rule, RESET, errors, with a mock port), `hdl_link_command_random_requests_verilator` (random requests answered exactly as
/// the board model) and `hdl_link_top_uart_pins_verilator` (through the UART
/// pins with the real substrate); `hdl/tests/link_run.rs` (RUN results equal `Fixed::run_codes` bit
/// for bit on several slots, keys and conditionings, on the shipped example and a saturating
/// configuration; slot states, errors, repeats, READOUT and STATUS while busy; random request
/// streams with RUNs against the board model's `Board`).
#[derive(LogicBlock)]
pub struct CommandUnit {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// The frame receiver's consumer side: request frames and the error events.
    pub req: RequestPort,
    /// The frame transmitter's input side: the reply.
    pub reply: ReplyPort,
    /// The substrate's configuration port.
    pub cfg: ConfigPort,
    /// A run is queued or in progress.
    pub active: Signal<Out, Bit>,
    /// The compiled biases (read only, words `0..2^ubits`: RESET's source) and the bias
    /// memory of space 0 (words `2^ubits..`), in one block RAM.
    bmem: Mem,
    ident: ROM<Bits<8>, 5>,
    stat: ROM<Bits<32>, 8>,
    slotmem: Mem,
    res: Mem,
    /// The weight codes held now (spaces 2..=5 concatenated; couplings only without the
    /// weights feature): READ_MEM's source, WRITE_MEM's compare and the checksum's input.
    coup: Mem,
    /// The compiled weight codes (RESET's source).
    wcomp: Mem,
    /// Each code's first location: port address (bits 23..0).
    wmap_a: Mem,
    /// Each code's second location: bit 31 set if there is one, port address (bits 23..0).
    wmap_b: Mem,
    /// The upper 16 bits of the words at the first (bits 15..0) and second (31..16) location.
    wmap_h: Mem,
    runner: RunSequencer,
    state: DFF<CmdState>,
    ret: DFF<CmdState>,
    ph: DFF<Bits<3>>,
    off: DFF<Bits<12>>,
    nb: DFF<Bits<4>>,
    k: DFF<Bits<16>>,
    sr: DFF<Bits<32>>,
    hseq: DFF<Bits<8>>,
    hkind: DFF<Bits<8>>,
    hlen: DFF<Bits<11>>,
    exp: DFF<Bits<8>>,
    have_exp: DFF<Bit>,
    space: DFF<Bits<8>>,
    /// Bits 0..16 of the request's address; `ahi_r`: any of bits 17..31 is set (units and
    /// couplings are at most 2^16, so such an address is out of range).
    addr: DFF<Bits<17>>,
    ahi_r: DFF<Bit>,
    cnt: DFF<Bits<16>>,
    rerr: DFF<Bit>,
    bp: DFF<Bits<11>>,
    ecode: DFF<Bits<8>>,
    replays: DFF<Bits<32>>,
    crc_cnt: DFF<Bits<32>>,
    fr_cnt: DFF<Bits<32>>,
    // the STATUS sum being gathered: at most 256 32-bit counters (the STATUS ROM's limit),
    // so 40 bits are exact; the reply's upper bytes are zero
    sacc: DFF<Bits<40>>,
    tag: DFF<Bits<2>>,
    paddr: DFF<Bits<24>>,
    pwdata: DFF<Bits<32>>,
    pwe: DFF<Bit>,
    base: DFF<Bits<16>>,
    same: DFF<Bit>,
    woff: DFF<Bits<12>>,
    isrun: DFF<Bit>,
    cst: DFF<Bits<8>>,
    slot_st: DFF<Bits<8>>,
    queue: DFF<Bits<8>>,
    qn: DFF<Bits<3>>,
    runs: DFF<Bits<32>>,
    sweep_base: DFF<Bits<32>>,
    /// FNV-1a state of the checksum unit, and the xored value being multiplied.
    fh: DFF<Bits<64>>,
    fx: DFF<Bits<64>>,
    /// The weight checksum IDENTIFY reports, XOR the compiled one (0 at power-up).
    cdiff: DFF<Bits<64>>,
    cph: DFF<Bits<4>>,
    /// The held codes changed since the checksum was last computed.
    wdirty: DFF<Bit>,
    /// The held codes may differ from the compiled ones (RESET restores them).
    wmod: DFF<Bit>,
    /// Per slot: its RUN sums every unit (`RUN_ALL_UNITS`).
    slot_fl: DFF<Bits<4>>,
    /// The flag of the RUN being executed.
    rflag: DFF<Bit>,
    /// Per slot: its RUN sums `rho(x)` (`RUN_RHO`).
    slot_rho: DFF<Bits<4>>,
    /// The `RUN_RHO` flag of the RUN being executed.
    rrho: DFF<Bit>,
    /// The build takes `RUN_RHO` (`FEATURE_RHO`).
    k_rfeat: Constant<Bit>,
    k_wfeat: Constant<Bit>,
    /// READ_MEM of space 2 is served (`FEATURE_READ_COUPLINGS`).
    k_rdcoup: Constant<Bit>,
    k_nw: Constant<Bits<16>>,
    k_wb3: Constant<Bits<16>>,
    k_wb4: Constant<Bits<16>>,
    k_wb5: Constant<Bits<16>>,
    k_wl2: Constant<Bits<18>>,
    k_wl3: Constant<Bits<18>>,
    k_wl4: Constant<Bits<18>>,
    k_wl5: Constant<Bits<18>>,
    k_csum0: Constant<Bits<64>>,
    k_fnv0: Constant<Bits<64>>,
    wsb: Signal<Local, Bits<16>>,
    wlen: Signal<Local, Bits<18>>,
    wix: Signal<Local, Bits<16>>,
    wend: Signal<Local, Bits<18>>,
    wbusy: Signal<Local, Bit>,
    sflag: Signal<Local, Bit>,
    cflag: Signal<Local, Bit>,
    srho: Signal<Local, Bit>,
    crho: Signal<Local, Bit>,
    fbyte: Signal<Local, Bits<64>>,
    fterm: Signal<Local, Bits<64>>,
    csel: Signal<Local, Bits<4>>,
    code: Signal<Local, Bits<32>>,
    idsh: Signal<Local, Bits<16>>,
    idb: Signal<Local, Bits<64>>,
    fmask: Signal<Local, Bits<4>>,
    k_one4: Constant<Bits<4>>,
    k_shadow: Constant<Bits<16>>,
    k_units: Constant<Bits<18>>,
    k_ncoup: Constant<Bits<18>>,
    k_d16: Constant<Bits<16>>,
    k_d17: Constant<Bits<17>>,
    k_r17: Constant<Bits<17>>,
    k_sbits: Constant<Bits<16>>,
    k_rbits: Constant<Bits<16>>,
    k_op_identify: Constant<Bits<8>>,
    k_op_write: Constant<Bits<8>>,
    k_op_read: Constant<Bits<8>>,
    k_op_status: Constant<Bits<8>>,
    k_op_reset: Constant<Bits<8>>,
    k_op_cond: Constant<Bits<8>>,
    k_op_run: Constant<Bits<8>>,
    k_op_readout: Constant<Bits<8>>,
    k_e_unknown: Constant<Bits<8>>,
    k_e_length: Constant<Bits<8>>,
    k_e_slot: Constant<Bits<8>>,
    k_e_address: Constant<Bits<8>>,
    k_e_busy: Constant<Bits<8>>,
    k_e_param: Constant<Bits<8>>,
    k_error: Constant<Bits<8>>,
    k_window: Constant<Bits<8>>,
    k_slots: Constant<Bits<8>>,
    k_m3: Constant<Bits<8>>,
    k_st1: Constant<Bits<8>>,
    k_st2: Constant<Bits<8>>,
    k_max_sums: Constant<Bits<16>>,
    k_clear: Constant<Bits<32>>,
    k_words0: Constant<Bits<16>>,
    k_words1: Constant<Bits<16>>,
    k_nstat: Constant<Bits<16>>,
    k_ident_len: Constant<Bits<16>>,
    nsr: Signal<Local, Bits<32>>,
    ix: Signal<Local, Bits<16>>,
    sdist: Signal<Local, Bits<8>>,
    dlen: Signal<Local, Bits<16>>,
    nwords: Signal<Local, Bits<16>>,
    ahi: Signal<Local, Bit>,
    sw_over: Signal<Local, Bit>,
    end33: Signal<Local, Bits<18>>,
    rend33: Signal<Local, Bits<18>>,
    fv: Signal<Local, Bits<32>>,
    fsh: Signal<Local, Bits<32>>,
    ssum: Signal<Local, Bits<40>>,
    sbyte: Signal<Local, Bits<40>>,
    cin: Signal<Local, Bits<1>>,
    wbyte: Signal<Local, Bits<32>>,
    rel16: Signal<Local, Bits<16>>,
    ph1: Signal<Local, Bits<3>>,
    cnt2: Signal<Local, Bits<16>>,
    rcnt: Signal<Local, Bits<16>>,
    sx: Signal<Local, Bits<16>>,
    ssh: Signal<Local, Bits<8>>,
    sst: Signal<Local, Bits<8>>,
    sclr: Signal<Local, Bits<8>>,
    sbase: Signal<Local, Bits<16>>,
    nsc: Signal<Local, Bits<16>>,
    scend: Signal<Local, Bits<17>>,
    roend: Signal<Local, Bits<17>>,
    rbase: Signal<Local, Bits<16>>,
    rbyte: Signal<Local, Bits<32>>,
    cbyte: Signal<Local, Bits<32>>,
    csh: Signal<Local, Bits<8>>,
    qsh: Signal<Local, Bits<8>>,
    hl3: Signal<Local, Bits<16>>,
    k_wm: Constant<Bits<16>>,
    wr: Signal<Local, Bit>,
    kq: Signal<Local, Bits<16>>,
    cntq: Signal<Local, Bits<16>>,
    baseq: Signal<Local, Bits<16>>,
}

// the RTL's range checks and seed lifting rely on these two protocol/noise constants
const _: () = assert!(MAX_RUN_SWEEPS == 1 << 16);
const _: () = assert!(TAUS88_MIN[0] <= 16 && TAUS88_MIN[1] <= 16 && TAUS88_MIN[2] <= 16);

impl CommandUnit {
    /// The command unit of substrate `s` compiled to `prog`, link options `o`.
    pub fn new(s: &Substrate, prog: &HwProgram, o: &LinkOptions) -> Self {
        let d = prog.d;
        assert!(d <= 1 << 16, "{d} units exceed the command unit's 2^16");
        let ubits = bits_for(d).max(1);
        let biases: Vec<u32> = (0..d)
            .map(|i| prog.lanes[i % prog.p].bias[i / prog.p])
            .collect();
        let id: Vec<u32> = identity_with(s, o)
            .encode()
            .into_iter()
            .map(u32::from)
            .collect();
        // STATUS ROM: the port addresses of the counters summed into each u64 field (bits
        // 0..23, the field in bits 24..25), field by field, each field closed by an entry with
        // bit 26 set (write the sum into the reply). Field 0: sweeps (control offset 1);
        // 1: accumulator saturations of the lanes and the bus sides; 2: state saturations of
        // the lanes; 3: line saturations of the bus sides.
        let (lanes, sides) = (0..prog.p as u32, 0..prog.sides.len() as u32);
        let mut st = vec![1u32, 1 << 26];
        st.extend(lanes.clone().map(|l| (1 << 24) | (0x100 + 2 * l)));
        st.extend(sides.clone().map(|si| (1 << 24) | (0x200 + 2 * si)));
        st.push((1 << 26) | (1 << 24));
        st.extend(lanes.map(|l| (2 << 24) | (0x101 + 2 * l)));
        st.push((1 << 26) | (2 << 24));
        st.extend(sides.map(|si| (3 << 24) | (0x201 + 2 * si)));
        st.push((1 << 26) | (3 << 24));
        assert!(
            st.len() <= 256,
            "{} counters exceed the STATUS ROM",
            st.len()
        );
        // slot memory: per slot `2^slot_bits` words, the conditioning codes then
        // sweeps, burn_in, key[0..3]
        let slot_bits = bits_for(d + 5);
        let mut slots = Vec::new();
        let slot_log = o.slots.trailing_zeros() as usize;
        for _ in 0..o.slots {
            let mut v = biases.clone();
            v.resize(1 << slot_bits, 0);
            slots.extend(v);
        }
        let ro = readout_units(s);
        let r = ro.len();
        assert!(r <= 1024, "{r} readout units exceed the sequencer's 1024");
        assert!(prog.p <= 64, "{} lanes exceed the sequencer's 64", prog.p);
        // results: every unit's sum for an all-units run
        let res_bits = bits_for(r.max(d).max(1));
        // the held weight codes: all four weight spaces with the weights feature, else the
        // couplings (read only); at least one word, so a substrate without couplings still has
        // a memory (every read with count > 0 is then a bad address)
        let wf = weights_feature(prog, o);
        let ncoup = prog.couplings.len();
        assert!(
            ncoup <= 1 << 16,
            "{ncoup} couplings exceed the coupling ROM's 16-bit address"
        );
        let held: &[i16] = match (wf, o.read_couplings) {
            (true, _) => &prog.weights,
            (false, true) => &prog.couplings,
            (false, false) => &[],
        };
        let nw = held.len();
        let coup: Vec<u32> = held.iter().map(|&c| c as u16 as u32).collect();
        let (map_a, map_b, map_h) = if wf {
            let a = prog
                .weight_locs
                .iter()
                .map(|l| l[0].addr)
                .collect::<Vec<_>>();
            let b = prog
                .weight_locs
                .iter()
                .map(|l| l.get(1).map_or(0, |x| (1 << 31) | x.addr))
                .collect::<Vec<_>>();
            let h = prog
                .weight_locs
                .iter()
                .map(|l| (l[0].hi as u32) | ((l.get(1).map_or(0, |x| x.hi) as u32) << 16))
                .collect::<Vec<_>>();
            (a, b, h)
        } else {
            (vec![], vec![], vec![])
        };
        let [w2, w3, w4, w5] = prog.weight_spaces;
        // the largest value of the byte/word counters (k, cnt), the slot and result memory
        // bases (base) and the unit counters (si, sq) of this build: a reply, a unit or
        // readout index, the STATUS ROM, a memory address; their reads are masked to it
        let bound = [
            o.max_payload,
            d,
            r,
            st.len() + 48,
            (o.slots as usize) << slot_bits,
            (o.slots as usize) << res_bits,
            nw,
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        let wm = (1u64 << (bits_for(bound + 1).min(16))) - 1;
        let k32 = |v: u32| Constant::new((v as u64).to_bits());
        CommandUnit {
            clock: Default::default(),
            req: Default::default(),
            reply: Default::default(),
            cfg: Default::default(),
            active: Default::default(),
            bmem: Mem::new(ubits + 1, 32, &{
                let mut v = biases.clone();
                v.resize(1 << ubits, 0);
                v.extend(&biases);
                v
            }),
            k_shadow: Constant::new(((1u64 << ubits) as u64).to_bits()),
            ident: id.iter().map(|&w| (w as u64).to_bits()).into(),
            stat: st.iter().map(|&w| (w as u64).to_bits()).into(),
            slotmem: Mem::new(slot_bits + slot_log, 32, &slots),
            res: Mem::new(res_bits + slot_log, 32, &[]),
            // exact depth: the coupling codes of a large model (40,960 for the digits
            // substrate) take 40 DP16KD, not the 64 of the next power of two
            coup: Mem::exact(16, &coup),
            wcomp: Mem::exact(16, if wf { &coup } else { &[] }),
            wmap_a: Mem::exact(32, &map_a),
            wmap_b: Mem::exact(32, &map_b),
            wmap_h: Mem::exact(32, &map_h),
            runner: RunSequencer::new(s, prog, slot_bits, res_bits, wm),
            state: Default::default(),
            ret: Default::default(),
            ph: Default::default(),
            off: Default::default(),
            nb: Default::default(),
            k: Default::default(),
            sr: Default::default(),
            hseq: Default::default(),
            hkind: Default::default(),
            hlen: Default::default(),
            exp: Default::default(),
            have_exp: Default::default(),
            space: Default::default(),
            addr: Default::default(),
            ahi_r: Default::default(),
            cnt: Default::default(),
            rerr: Default::default(),
            bp: Default::default(),
            ecode: Default::default(),
            replays: Default::default(),
            crc_cnt: Default::default(),
            fr_cnt: Default::default(),
            sacc: Default::default(),
            tag: Default::default(),
            paddr: Default::default(),
            pwdata: Default::default(),
            pwe: Default::default(),
            base: Default::default(),
            same: Default::default(),
            woff: Default::default(),
            isrun: Default::default(),
            cst: Default::default(),
            slot_st: Default::default(),
            queue: Default::default(),
            qn: Default::default(),
            runs: Default::default(),
            sweep_base: Default::default(),
            fh: Default::default(),
            fx: Default::default(),
            cdiff: Default::default(),
            cph: Default::default(),
            wdirty: Default::default(),
            wmod: Default::default(),
            slot_fl: Default::default(),
            rflag: Default::default(),
            slot_rho: Default::default(),
            rrho: Default::default(),
            k_rfeat: Constant::new(o.rho),
            k_wfeat: Constant::new(wf),
            k_rdcoup: Constant::new(wf || o.read_couplings),
            k_nw: Constant::new((nw as u64).to_bits()),
            k_wb3: Constant::new((w2 as u64).to_bits()),
            k_wb4: Constant::new(((w2 + w3) as u64).to_bits()),
            k_wb5: Constant::new(((w2 + w3 + w4) as u64).to_bits()),
            k_wl2: Constant::new((w2 as u64).to_bits()),
            k_wl3: Constant::new((w3 as u64).to_bits()),
            k_wl4: Constant::new((w4 as u64).to_bits()),
            k_wl5: Constant::new((w5 as u64).to_bits()),
            k_csum0: Constant::new(weight_checksum(&Weights::of_substrate(s)).to_bits()),
            k_fnv0: Constant::new(FNV_OFFSET.to_bits()),
            wsb: Default::default(),
            wlen: Default::default(),
            wix: Default::default(),
            wend: Default::default(),
            wbusy: Default::default(),
            sflag: Default::default(),
            cflag: Default::default(),
            srho: Default::default(),
            crho: Default::default(),
            fbyte: Default::default(),
            fterm: Default::default(),
            csel: Default::default(),
            code: Default::default(),
            idsh: Default::default(),
            idb: Default::default(),
            fmask: Default::default(),
            k_one4: Constant::new(1u64.to_bits()),
            k_units: Constant::new((d as u64).to_bits()),
            k_ncoup: Constant::new((ncoup as u64).to_bits()),
            k_d16: Constant::new((d as u64).to_bits()),
            k_d17: Constant::new((d as u64).to_bits()),
            k_r17: Constant::new((r as u64).to_bits()),
            k_sbits: Constant::new((slot_bits as u64).to_bits()),
            k_rbits: Constant::new((res_bits as u64).to_bits()),
            k_op_identify: k8(Opcode::Identify as u64),
            k_op_write: k8(Opcode::WriteMem as u64),
            k_op_read: k8(Opcode::ReadMem as u64),
            k_op_status: k8(Opcode::Status as u64),
            k_op_reset: k8(Opcode::Reset as u64),
            k_op_cond: k8(Opcode::SetConditioning as u64),
            k_op_run: k8(Opcode::Run as u64),
            k_op_readout: k8(Opcode::Readout as u64),
            k_e_unknown: k8(ErrorCode::UnknownCommand as u64),
            k_e_length: k8(ErrorCode::BadLength as u64),
            k_e_slot: k8(ErrorCode::BadSlot as u64),
            k_e_address: k8(ErrorCode::BadAddress as u64),
            k_e_busy: k8(ErrorCode::Busy as u64),
            k_e_param: k8(ErrorCode::BadParameter as u64),
            k_error: k8(ERROR_KIND as u64),
            k_window: k8(REPLAY_WINDOW as u64),
            k_slots: k8(o.slots as u64),
            k_m3: k8(3),
            k_st1: k8(1),
            k_st2: k8(2),
            k_max_sums: Constant::new((((o.max_payload - 5) / 4) as u64).to_bits()),
            k_clear: k32(ctrl_bits::CLEAR),
            k_words0: Constant::new(((o.max_payload / Space::Bias.width()) as u64).to_bits()),
            k_words1: Constant::new(((o.max_payload / Space::State.width()) as u64).to_bits()),
            k_nstat: Constant::new((st.len() as u64).to_bits()),
            k_ident_len: Constant::new((id.len() as u64).to_bits()),
            nsr: Default::default(),
            ix: Default::default(),
            sdist: Default::default(),
            dlen: Default::default(),
            nwords: Default::default(),
            ahi: Default::default(),
            sw_over: Default::default(),
            end33: Default::default(),
            rend33: Default::default(),
            fv: Default::default(),
            fsh: Default::default(),
            ssum: Default::default(),
            sbyte: Default::default(),
            cin: Default::default(),
            wbyte: Default::default(),
            rel16: Default::default(),
            ph1: Default::default(),
            cnt2: Default::default(),
            rcnt: Default::default(),
            sx: Default::default(),
            ssh: Default::default(),
            sst: Default::default(),
            sclr: Default::default(),
            sbase: Default::default(),
            nsc: Default::default(),
            scend: Default::default(),
            roend: Default::default(),
            rbase: Default::default(),
            rbyte: Default::default(),
            cbyte: Default::default(),
            csh: Default::default(),
            qsh: Default::default(),
            hl3: Default::default(),
            k_wm: Constant::new(wm.to_bits()),
            wr: Default::default(),
            kq: Default::default(),
            cntq: Default::default(),
            baseq: Default::default(),
        }
    }
}

/// FNV-1a's 64-bit offset basis (`thermo_proto::weight_checksum`'s start; its prime
/// `2^40 + 0x1b3` is the checksum unit's shift-and-add sequence 40, 8, 7, 5, 4, 1).
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn k8(v: u64) -> Constant<Bits<8>> {
    Constant::new(v.to_bits())
}

impl Logic for CommandUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, ret, ph, off, nb, k, sr, hseq, hkind, hlen, exp, have_exp, space,
            addr, ahi_r, cnt, rerr, bp, ecode, replays, crc_cnt, fr_cnt, sacc, tag, paddr, pwdata,
            pwe, base, same, woff, isrun, cst, slot_st, queue, qn, runs, sweep_base, fh, fx, cdiff,
            cph, wdirty, wmod, slot_fl, rflag, slot_rho, rrho
        );
        // the counters and addresses below never exceed `k_wm` in this build (see `new`)
        self.kq.next = self.k.q.val() & self.k_wm.val();
        self.cntq.next = self.cnt.q.val() & self.k_wm.val();
        self.baseq.next = self.base.q.val() & self.k_wm.val();
        self.bmem.clock.next = self.clock.val();
        self.slotmem.clock.next = self.clock.val();
        self.res.clock.next = self.clock.val();
        self.coup.clock.next = self.clock.val();
        // memories: addresses from the counters
        self.ix.next = self.addr.q.val().get_bits::<16>(0) + self.kq.val();
        self.sx.next = self.baseq.val() + self.kq.val();
        // RESET reads the compiled biases; everything else reads and writes space 0
        self.bmem.read_address.next = self.ix.val() | self.k_shadow.val();
        if self.state.q.val() == CmdState::ResetLoop {
            self.bmem.read_address.next = self.kq.val();
        }
        self.bmem.write_address.next = self.ix.val() | self.k_shadow.val();
        self.bmem.write_data.next = self.sr.q.val();
        self.bmem.write_enable.next = false;
        self.ident.address.next = self.kq.val().get_bits::<5>(0);
        self.stat.address.next = self.kq.val().get_bits::<8>(0);
        self.slotmem.read_address.next = self.sx.val();
        self.slotmem.write_address.next = self.sx.val();
        self.slotmem.write_data.next = self.sr.q.val();
        self.slotmem.write_enable.next = false;
        self.res.read_address.next = self.sx.val();
        self.res.write_address.next = 0.into();
        self.res.write_data.next = self.cfg.rdata.val();
        self.res.write_enable.next = false;
        // the weight tables: the request's element (space base + address + k); the checksum
        // and RESET's restore walk every code (k)
        self.wsb.next = 0.into();
        self.wlen.next = self.k_wl2.val();
        if self.space.q.val() == 3 {
            self.wsb.next = self.k_wb3.val();
            self.wlen.next = self.k_wl3.val();
        }
        if self.space.q.val() == 4 {
            self.wsb.next = self.k_wb4.val();
            self.wlen.next = self.k_wl4.val();
        }
        if self.space.q.val() == 5 {
            self.wsb.next = self.k_wb5.val();
            self.wlen.next = self.k_wl5.val();
        }
        self.wix.next = self.wsb.val() + self.ix.val();
        if (self.state.q.val() == CmdState::CsLoop) | (self.state.q.val() == CmdState::RsWeights) {
            self.wix.next = self.kq.val();
        }
        self.coup.clock.next = self.clock.val();
        self.wcomp.clock.next = self.clock.val();
        self.wmap_a.clock.next = self.clock.val();
        self.wmap_b.clock.next = self.clock.val();
        self.wmap_h.clock.next = self.clock.val();
        self.coup.read_address.next = self.wix.val();
        self.coup.write_address.next = self.wix.val();
        self.coup.write_data.next = bit_cast::<32, 16>(self.sr.q.val().get_bits::<16>(16));
        self.coup.write_enable.next = false;
        self.wcomp.read_address.next = self.wix.val();
        self.wcomp.write_address.next = 0.into();
        self.wcomp.write_data.next = 0.into();
        self.wcomp.write_enable.next = false;
        self.wmap_a.read_address.next = self.wix.val();
        self.wmap_a.write_address.next = 0.into();
        self.wmap_a.write_data.next = 0.into();
        self.wmap_a.write_enable.next = false;
        self.wmap_b.read_address.next = self.wix.val();
        self.wmap_b.write_address.next = 0.into();
        self.wmap_b.write_data.next = 0.into();
        self.wmap_b.write_enable.next = false;
        self.wmap_h.read_address.next = self.wix.val();
        self.wmap_h.write_address.next = 0.into();
        self.wmap_h.write_data.next = 0.into();
        self.wmap_h.write_enable.next = false;
        // the code being written: the request's (in `sr` bits 31..16), or the compiled one
        self.code.next = bit_cast::<32, 16>(self.sr.q.val().get_bits::<16>(16));
        if self.state.q.val() == CmdState::RsWeights {
            self.code.next = bit_cast::<32, 16>(self.wcomp.read_data.val().get_bits::<16>(0));
            self.coup.write_data.next = self.code.val();
        }
        // a slot is busy (queued or running): no weight may change
        self.wbusy.next = (self.slot_st.q.val() & 0x55).any();
        // the RUN flag of the request's slot and of the slot being run
        self.sflag.next =
            ((self.slot_fl.q.val() >> bit_cast::<4, 2>(self.space.q.val().get_bits::<2>(0))) & 1)
                .any();
        self.fmask.next =
            self.k_one4.val() << bit_cast::<4, 2>(self.space.q.val().get_bits::<2>(0));
        self.cflag.next =
            ((self.slot_fl.q.val() >> bit_cast::<4, 2>(self.runner.cur.val())) & 1).any();
        self.srho.next =
            ((self.slot_rho.q.val() >> bit_cast::<4, 2>(self.space.q.val().get_bits::<2>(0))) & 1)
                .any();
        self.crho.next =
            ((self.slot_rho.q.val() >> bit_cast::<4, 2>(self.runner.cur.val())) & 1).any();
        // the checksum unit: FNV-1a, one byte in 7 cycles (xor, then fh += fx << s for the
        // prime's shifts 40, 8, 7, 5, 4, 1 in cycles 2..7 of the byte)
        self.fbyte.next = bit_cast::<64, 8>(self.coup.read_data.val().get_bits::<8>(0));
        if self.cph.q.val() == 8 {
            self.fbyte.next = bit_cast::<64, 8>(self.coup.read_data.val().get_bits::<8>(8));
        }
        self.csel.next = self.cph.q.val();
        if self.cph.q.val() >= 9 {
            self.csel.next = self.cph.q.val() - 7;
        }
        self.fterm.next = self.fx.q.val() << 1;
        if self.csel.val() == 2 {
            self.fterm.next = self.fx.q.val() << 40;
        }
        if self.csel.val() == 3 {
            self.fterm.next = self.fx.q.val() << 8;
        }
        if self.csel.val() == 4 {
            self.fterm.next = self.fx.q.val() << 7;
        }
        if self.csel.val() == 5 {
            self.fterm.next = self.fx.q.val() << 5;
        }
        if self.csel.val() == 6 {
            self.fterm.next = self.fx.q.val() << 4;
        }
        // IDENTIFY's bytes 9..16: the weight checksum now
        self.idsh.next = self.kq.val() - 9;
        self.idb.next = (self.k_csum0.val() ^ self.cdiff.q.val())
            >> (bit_cast::<64, 3>(self.idsh.val().get_bits::<3>(0)) << 3);
        // defaults
        self.pwe.d.next = false;
        self.wr.next = false;
        self.reply.data.next = 0.into();
        self.req.done.next = false;
        self.reply.send.next = false;
        self.nsr.next = (self.sr.q.val() >> 8) | (bit_cast::<32, 8>(self.req.data.val()) << 24);
        self.sdist.next = self.exp.q.val() - self.hseq.q.val() - 1;
        self.dlen.next = bit_cast::<16, 11>(self.hlen.q.val()) - 5;
        self.nwords.next = self.dlen.val() >> 2;
        // address ranges: units and couplings are at most 2^16, so an address with any of
        // bits 31..17 set is out of range and the end is an 18-bit sum
        self.ahi.next = self.ahi_r.q.val();
        // RUN's sweeps (in `sr`) above MAX_RUN_SWEEPS = 2^16, without a 32-bit comparator
        self.sw_over.next = self.sr.q.val().get_bits::<15>(17).any()
            | (self.sr.q.val().get_bit(16) & self.sr.q.val().get_bits::<16>(0).any());
        self.end33.next =
            bit_cast::<18, 17>(self.addr.q.val()) + bit_cast::<18, 16>(self.nwords.val());
        self.wend.next =
            bit_cast::<18, 17>(self.addr.q.val()) + bit_cast::<18, 16>(self.dlen.val() >> 1);
        self.rcnt.next = self.sr.q.val().get_bits::<16>(16);
        self.rend33.next =
            bit_cast::<18, 17>(self.addr.q.val()) + bit_cast::<18, 16>(self.rcnt.val());
        // the receiver's CRC and framing errors since the last RESET
        if self.req.crc_evt.val() {
            self.crc_cnt.d.next = self.crc_cnt.q.val() + 1;
        }
        if self.req.framing_evt.val() {
            self.fr_cnt.d.next = self.fr_cnt.q.val() + 1;
        }
        // slots: state of the request's slot (`space` holds payload byte 0)
        self.ssh.next = bit_cast::<8, 2>(self.space.q.val().get_bits::<2>(0)) << 1;
        self.sst.next = (self.slot_st.q.val() >> self.ssh.val()) & 3;
        self.sclr.next = self.slot_st.q.val() & !(self.k_m3.val() << self.ssh.val());
        self.sbase.next =
            bit_cast::<16, 2>(self.space.q.val().get_bits::<2>(0)) << self.k_sbits.val();
        self.rbase.next =
            bit_cast::<16, 2>(self.space.q.val().get_bits::<2>(0)) << self.k_rbits.val();
        self.hl3.next = bit_cast::<16, 11>(self.hlen.q.val()) - 3;
        self.nsc.next = self.hl3.val() >> 2;
        self.scend.next = bit_cast::<17, 16>(self.rcnt.val()) + bit_cast::<17, 16>(self.nsc.val());
        self.roend.next = bit_cast::<17, 16>(self.sr.q.val().get_bits::<16>(0))
            + bit_cast::<17, 16>(self.rcnt.val());
        self.qsh.next = bit_cast::<8, 3>(self.qn.q.val()) << 1;
        // STATUS payload bytes 32..47 (k): the four u32 counters
        self.fv.next = self.runs.q.val();
        if self.kq.val() >= 36 {
            self.fv.next = self.crc_cnt.q.val();
        }
        if self.kq.val() >= 40 {
            self.fv.next = self.fr_cnt.q.val();
        }
        if self.kq.val() >= 44 {
            self.fv.next = self.replays.q.val();
        }
        self.fsh.next = self.fv.val() >> (bit_cast::<32, 2>(self.kq.val().get_bits::<2>(0)) << 3);
        // the one STATUS adder: field 0 starts from !sweep_base and adds with a carry in, so
        // its low 32 bits are `counter - sweep_base` (mod 2^32)
        self.cin.next = 0.into();
        if self.tag.q.val() == 0 {
            self.cin.next = 1.into();
        }
        self.ssum.next = self.sacc.q.val()
            + bit_cast::<40, 32>(self.cfg.rdata.val())
            + bit_cast::<40, 1>(self.cin.val());
        // byte ph of the field being written (bytes 5..7, and byte 4 of field 0, are zero)
        self.sbyte.next = self.sacc.q.val() >> (bit_cast::<40, 3>(self.ph.q.val()) << 3);
        if (self.ph.q.val() > 4) | ((self.ph.q.val() == 4) & (self.tag.q.val() == 0)) {
            self.sbyte.next = 0.into();
        }
        self.ph1.next = self.ph.q.val() - 1;
        self.cnt2.next = self.cntq.val() << 1;
        self.wbyte.next = self.bmem.read_data.val() >> (bit_cast::<32, 3>(self.ph1.val()) << 3);
        self.rbyte.next = self.res.read_data.val() >> (bit_cast::<32, 3>(self.ph1.val()) << 3);
        self.cbyte.next = self.coup.read_data.val() >> (bit_cast::<32, 3>(self.ph1.val()) << 3);
        // the run sequencer: its inputs, and the slot it reports done
        self.runner.clock.next = self.clock.val();
        self.runner.req_idle.next = self.state.q.val() == CmdState::Idle;
        self.runner.queued.next = self.qn.q.val() != 0;
        self.runner.next_slot.next = self.queue.q.val().get_bits::<2>(0);
        self.runner.reset.next = self.state.q.val() == CmdState::ResetClear;
        self.runner.slot_rdata.next = self.slotmem.read_data.val();
        self.runner.cfg_rdata.next = self.cfg.rdata.val();
        self.runner.running.next = self.cfg.running.val();
        self.runner.all_units.next = self.cflag.val();
        self.runner.rho.next = self.crho.val();
        self.csh.next = bit_cast::<8, 2>(self.runner.cur.val()) << 1;
        match self.state.q.val() {
            CmdState::Idle => {
                if self.req.avail.val() & !self.reply.busy.val() {
                    self.off.d.next = 0.into();
                    self.nb.d.next = 4.into();
                    self.ph.d.next = 0.into();
                    self.ret.d.next = CmdState::Decide;
                    self.state.d.next = CmdState::ReadBytes;
                }
            }
            CmdState::ReadBytes => {
                if self.ph.q.val() == 0 {
                    self.ph.d.next = 1.into();
                } else {
                    self.ph.d.next = 0.into();
                    self.sr.d.next = self.nsr.val();
                    if self.off.q.val() == 4 {
                        self.space.d.next = self.req.data.val();
                    }
                    if self.off.q.val() == 8 {
                        self.addr.d.next = self.nsr.val().get_bits::<17>(0);
                        self.ahi_r.d.next = self.nsr.val().get_bits::<15>(17).any();
                    }
                    self.off.d.next = self.off.q.val() + 1;
                    self.nb.d.next = self.nb.q.val() - 1;
                    if self.nb.q.val() == 1 {
                        self.state.d.next = self.ret.q.val();
                    }
                }
            }
            CmdState::Decide => {
                self.hseq.d.next = self.sr.q.val().get_bits::<8>(0);
                self.hkind.d.next = self.sr.q.val().get_bits::<8>(8);
                self.hlen.d.next = self.sr.q.val().get_bits::<11>(16);
                // wait while the run sequencer owns the port and the slot memories
                if !self.runner.owns.val() {
                    self.state.d.next = CmdState::Exec;
                }
            }
            CmdState::Exec => {
                self.k.d.next = 0.into();
                self.ph.d.next = 0.into();
                self.rerr.d.next = false;
                self.bp.d.next = 0.into();
                if (self.hkind.q.val() == self.k_op_identify.val())
                    | !self.have_exp.q.val()
                    | (self.hseq.q.val() == self.exp.q.val())
                {
                    self.exp.d.next = self.hseq.q.val() + 1;
                    self.have_exp.d.next = true;
                } else if self.sdist.val() < self.k_window.val() {
                    self.replays.d.next = self.replays.q.val() + 1;
                } else {
                    self.state.d.next = CmdState::Release;
                }
                if (self.hkind.q.val() == self.k_op_identify.val())
                    | !self.have_exp.q.val()
                    | (self.hseq.q.val() == self.exp.q.val())
                    | (self.sdist.val() < self.k_window.val())
                {
                    self.state.d.next = CmdState::ErrReply;
                    self.ecode.d.next = self.k_e_unknown.val();
                    if self.hkind.q.val() == self.k_op_identify.val() {
                        self.state.d.next = CmdState::IdentCopy;
                        if self.wdirty.q.val() {
                            self.fh.d.next = self.k_fnv0.val();
                            self.cph.d.next = 0.into();
                            self.state.d.next = CmdState::CsLoop;
                        }
                    }
                    if self.hkind.q.val() == self.k_op_status.val() {
                        self.sacc.d.next = bit_cast::<40, 32>(!self.sweep_base.q.val());
                        self.tag.d.next = 0.into();
                        self.state.d.next = CmdState::StatGather;
                    }
                    if self.hkind.q.val() == self.k_op_reset.val() {
                        self.addr.d.next = 0.into();
                        self.ahi_r.d.next = false;
                        self.state.d.next = CmdState::ResetLoop;
                    }
                    if self.hkind.q.val() == self.k_op_write.val() {
                        self.ecode.d.next = self.k_e_length.val();
                        if self.hlen.q.val() >= 5 {
                            self.nb.d.next = 5.into();
                            self.ret.d.next = CmdState::WmCheck;
                            self.state.d.next = CmdState::ReadBytes;
                        }
                    }
                    if self.hkind.q.val() == self.k_op_read.val() {
                        self.ecode.d.next = self.k_e_length.val();
                        if self.hlen.q.val() == 7 {
                            self.nb.d.next = 7.into();
                            self.ret.d.next = CmdState::RmCheck;
                            self.state.d.next = CmdState::ReadBytes;
                        }
                    }
                    if self.hkind.q.val() == self.k_op_cond.val() {
                        self.ecode.d.next = self.k_e_length.val();
                        if (self.hlen.q.val() >= 3) & (self.hl3.val().get_bits::<2>(0) == 0) {
                            self.nb.d.next = 3.into();
                            self.ret.d.next = CmdState::ScCheck;
                            self.state.d.next = CmdState::ReadBytes;
                        }
                    }
                    if self.hkind.q.val() == self.k_op_run.val() {
                        self.ecode.d.next = self.k_e_length.val();
                        if self.hlen.q.val() == 22 {
                            self.nb.d.next = 5.into();
                            self.ret.d.next = CmdState::RunCheck;
                            self.state.d.next = CmdState::ReadBytes;
                        }
                    }
                    if self.hkind.q.val() == self.k_op_readout.val() {
                        self.ecode.d.next = self.k_e_length.val();
                        if self.hlen.q.val() == 5 {
                            self.nb.d.next = 5.into();
                            self.ret.d.next = CmdState::RoCheck;
                            self.state.d.next = CmdState::ReadBytes;
                        }
                    }
                }
            }
            CmdState::IdentCopy => {
                if self.ph.q.val() == 0 {
                    self.ph.d.next = 1.into();
                } else {
                    self.ph.d.next = 0.into();
                    self.wr.next = true;
                    self.reply.data.next = self.ident.data.val();
                    if (self.kq.val() >= 9) & (self.kq.val() < 17) {
                        self.reply.data.next = self.idb.val().get_bits::<8>(0);
                    }
                    self.k.d.next = self.kq.val() + 1;
                    if self.kq.val() + 1 == self.k_ident_len.val() {
                        self.state.d.next = CmdState::Send;
                    }
                }
            }
            CmdState::CsLoop => {
                // the weight checksum over the held codes (k), i16 little-endian
                if self.kq.val() == self.k_nw.val() {
                    self.cdiff.d.next = self.fh.q.val() ^ self.k_csum0.val();
                    self.wdirty.d.next = false;
                    self.k.d.next = 0.into();
                    self.ph.d.next = 0.into();
                    self.state.d.next = CmdState::IdentCopy;
                } else {
                    self.cph.d.next = self.cph.q.val() + 1;
                    if (self.cph.q.val() == 1) | (self.cph.q.val() == 8) {
                        self.fx.d.next = self.fh.q.val() ^ self.fbyte.val();
                        self.fh.d.next = self.fh.q.val() ^ self.fbyte.val();
                    }
                    if ((self.cph.q.val() >= 2) & (self.cph.q.val() <= 7)) | (self.cph.q.val() >= 9)
                    {
                        self.fh.d.next = self.fh.q.val() + self.fterm.val();
                    }
                    if self.cph.q.val() == 14 {
                        self.cph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                    }
                }
            }
            CmdState::StatGather => {
                // entry k of the STATUS ROM: a counter read through the port (ph 1: address,
                // ph 4: its value) added to the field's sum, or the end of a field
                if self.kq.val() == self.k_nstat.val() {
                    self.k.d.next = 32.into();
                    self.state.d.next = CmdState::StatWrite;
                } else {
                    self.ph.d.next = self.ph.q.val() + 1;
                    if self.ph.q.val() == 1 {
                        self.paddr.d.next = self.stat.data.val().get_bits::<24>(0);
                        self.tag.d.next = self.stat.data.val().get_bits::<2>(24);
                        if self.stat.data.val().get_bit(26) {
                            self.ph.d.next = 0.into();
                            self.state.d.next = CmdState::StatField;
                        }
                    }
                    if self.ph.q.val() == 4 {
                        self.ph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                        self.sacc.d.next = self.ssum.val();
                    }
                }
            }
            CmdState::StatField => {
                // the u64 field `tag`: bytes 8 tag + ph
                self.wr.next = true;
                self.reply.data.next = self.sbyte.val().get_bits::<8>(0);
                self.ph.d.next = self.ph.q.val() + 1;
                if self.ph.q.val() == 7 {
                    self.ph.d.next = 0.into();
                    self.k.d.next = self.kq.val() + 1;
                    self.sacc.d.next = 0.into();
                    self.state.d.next = CmdState::StatGather;
                }
            }
            CmdState::StatWrite => {
                // bytes 32..47: runs, CRC errors, framing errors, replays
                self.wr.next = true;
                self.reply.data.next = self.fsh.val().get_bits::<8>(0);
                self.k.d.next = self.kq.val() + 1;
                if self.kq.val() == 47 {
                    self.state.d.next = CmdState::Send;
                }
            }
            CmdState::ResetLoop => {
                // k runs over the units: the compiled bias k (lower half of bmem) goes to space 0
                // (ph 1) and to the conditioning of slot ph - 1 (ph 1..4)
                self.slotmem.write_address.next =
                    (bit_cast::<16, 3>(self.ph1.val()) << self.k_sbits.val()) + self.kq.val();
                self.slotmem.write_data.next = self.bmem.read_data.val();
                if self.kq.val() == self.k_d16.val() {
                    self.ph.d.next = 0.into();
                    self.state.d.next = CmdState::ResetSweeps;
                    if self.wmod.q.val() {
                        self.k.d.next = 0.into();
                        self.state.d.next = CmdState::RsWeights;
                    }
                } else if self.ph.q.val() == 0 {
                    self.ph.d.next = 1.into();
                } else {
                    self.ph.d.next = self.ph.q.val() + 1;
                    self.slotmem.write_enable.next = true;
                    if self.ph.q.val() == 1 {
                        self.bmem.write_data.next = self.bmem.read_data.val();
                        self.bmem.write_enable.next = true;
                    }
                    if self.ph.q.val() == 4 {
                        self.ph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                    }
                }
            }
            CmdState::RsWeights => {
                // code k: ph 0 reads the compiled code and its locations; ph 1 writes it into
                // the held codes and its first location, ph 2 its second
                if self.kq.val() == self.k_nw.val() {
                    self.cdiff.d.next = 0.into();
                    self.wdirty.d.next = false;
                    self.wmod.d.next = false;
                    self.ph.d.next = 0.into();
                    self.state.d.next = CmdState::ResetSweeps;
                } else {
                    self.ph.d.next = self.ph.q.val() + 1;
                    if self.ph.q.val() == 1 {
                        self.coup.write_enable.next = true;
                        self.paddr.d.next = self.wmap_a.read_data.val().get_bits::<24>(0);
                        self.pwdata.d.next =
                            (bit_cast::<32, 16>(self.wmap_h.read_data.val().get_bits::<16>(0))
                                << 16)
                                | self.code.val();
                        self.pwe.d.next = true;
                    }
                    if self.ph.q.val() == 2 {
                        self.paddr.d.next = self.wmap_b.read_data.val().get_bits::<24>(0);
                        self.pwdata.d.next =
                            (bit_cast::<32, 16>(self.wmap_h.read_data.val().get_bits::<16>(16))
                                << 16)
                                | self.code.val();
                        self.pwe.d.next = self.wmap_b.read_data.val().get_bit(31);
                        self.ph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                    }
                }
            }
            CmdState::ResetSweeps => {
                // read the sweep counter (control offset 1): the new base of STATUS's sweeps
                self.paddr.d.next = 1.into();
                self.ph.d.next = self.ph.q.val() + 1;
                if self.ph.q.val() == 4 {
                    self.sweep_base.d.next = self.cfg.rdata.val();
                    self.state.d.next = CmdState::ResetClear;
                }
            }
            CmdState::ResetClear => {
                self.paddr.d.next = 0.into();
                self.pwdata.d.next = self.k_clear.val();
                self.pwe.d.next = true;
                self.replays.d.next = 0.into();
                // an error in this very cycle counts after the RESET
                self.crc_cnt.d.next = 0.into();
                if self.req.crc_evt.val() {
                    self.crc_cnt.d.next = 1.into();
                }
                self.fr_cnt.d.next = 0.into();
                if self.req.framing_evt.val() {
                    self.fr_cnt.d.next = 1.into();
                }
                self.runs.d.next = 0.into();
                self.slot_st.d.next = 0.into();
                self.slot_fl.d.next = 0.into();
                self.slot_rho.d.next = 0.into();
                self.queue.d.next = 0.into();
                self.qn.d.next = 0.into();
                self.state.d.next = CmdState::Send;
            }
            CmdState::WmCheck => {
                self.ecode.d.next = self.k_e_address.val();
                self.state.d.next = CmdState::ErrReply;
                if (self.space.q.val() == 0)
                    & (self.dlen.val().get_bits::<2>(0) == 0)
                    & !self.ahi.val()
                    & (self.end33.val() <= self.k_units.val())
                {
                    self.cnt.d.next = self.nwords.val();
                    self.k.d.next = 0.into();
                    self.state.d.next = CmdState::WmWrite;
                }
                // a weight space: i16 codes from payload offset 5 (frame offset 9)
                if (self.space.q.val() >= 2)
                    & (self.space.q.val() <= 5)
                    & self.k_wfeat.val()
                    & !self.dlen.val().get_bit(0)
                    & !self.ahi.val()
                    & (self.wend.val() <= self.wlen.val())
                {
                    self.cnt.d.next = self.dlen.val() >> 1;
                    self.k.d.next = 0.into();
                    self.same.d.next = true;
                    self.woff.d.next = 9.into();
                    self.state.d.next = CmdState::WcCmpNext;
                }
            }
            CmdState::WcCmpNext => {
                if self.kq.val() == self.cntq.val() {
                    self.state.d.next = CmdState::WcDecide;
                } else {
                    self.nb.d.next = 2.into();
                    self.ph.d.next = 0.into();
                    self.ret.d.next = CmdState::WcCmpWord;
                    self.state.d.next = CmdState::ReadBytes;
                }
            }
            CmdState::WcCmpWord => {
                // the code in `sr` bits 31..16; the held codes have seen `wix` for 4 cycles
                if self.sr.q.val().get_bits::<16>(16) != self.coup.read_data.val().get_bits::<16>(0)
                {
                    self.same.d.next = false;
                }
                self.k.d.next = self.kq.val() + 1;
                self.state.d.next = CmdState::WcCmpNext;
            }
            CmdState::WcDecide => {
                // the codes held already: acknowledged (busy or not); else busy, or written
                self.k.d.next = 0.into();
                self.off.d.next = self.woff.q.val();
                self.state.d.next = CmdState::WcWrNext;
                if self.same.q.val() {
                    self.sr.d.next = bit_cast::<32, 16>(self.cntq.val());
                    self.state.d.next = CmdState::WmReply;
                } else if self.wbusy.val() {
                    self.ecode.d.next = self.k_e_busy.val();
                    self.state.d.next = CmdState::ErrReply;
                } else {
                    self.wdirty.d.next = true;
                    self.wmod.d.next = true;
                }
            }
            CmdState::WcWrNext => {
                if self.kq.val() == self.cntq.val() {
                    self.k.d.next = 0.into();
                    self.sr.d.next = bit_cast::<32, 16>(self.cntq.val());
                    self.state.d.next = CmdState::WmReply;
                } else {
                    self.nb.d.next = 2.into();
                    self.ph.d.next = 0.into();
                    self.ret.d.next = CmdState::WcWrWord;
                    self.state.d.next = CmdState::ReadBytes;
                }
            }
            CmdState::WcWrWord => {
                // the held code, and the code at its first location in the substrate
                self.coup.write_enable.next = true;
                self.paddr.d.next = self.wmap_a.read_data.val().get_bits::<24>(0);
                self.pwdata.d.next =
                    (bit_cast::<32, 16>(self.wmap_h.read_data.val().get_bits::<16>(0)) << 16)
                        | self.code.val();
                self.pwe.d.next = true;
                self.state.d.next = CmdState::WcPatchB;
            }
            CmdState::WcPatchB => {
                // its second location, if any
                self.paddr.d.next = self.wmap_b.read_data.val().get_bits::<24>(0);
                self.pwdata.d.next =
                    (bit_cast::<32, 16>(self.wmap_h.read_data.val().get_bits::<16>(16)) << 16)
                        | self.code.val();
                self.pwe.d.next = self.wmap_b.read_data.val().get_bit(31);
                self.k.d.next = self.kq.val() + 1;
                self.state.d.next = CmdState::WcWrNext;
            }
            CmdState::WmWrite => {
                if self.kq.val() == self.cntq.val() {
                    self.k.d.next = 0.into();
                    self.sr.d.next = bit_cast::<32, 16>(self.cntq.val());
                    self.state.d.next = CmdState::WmReply;
                } else {
                    // read the next word (4 bytes, continuing at `off`)
                    self.nb.d.next = 4.into();
                    self.ph.d.next = 0.into();
                    self.ret.d.next = CmdState::WmStore;
                    self.state.d.next = CmdState::ReadBytes;
                }
            }
            CmdState::WmStore => {
                // the word is in `sr`; bmem has seen `ix` for 8 cycles
                self.bmem.write_enable.next = true;
                self.k.d.next = self.kq.val() + 1;
                self.state.d.next = CmdState::WmWrite;
            }
            CmdState::WmReply => {
                self.wr.next = true;
                self.reply.data.next = self.sr.q.val().get_bits::<8>(0);
                self.sr.d.next = self.nsr.val();
                self.k.d.next = self.kq.val() + 1;
                if self.kq.val() == 3 {
                    self.state.d.next = CmdState::Send;
                }
            }
            CmdState::RmCheck => {
                self.ecode.d.next = self.k_e_address.val();
                self.state.d.next = CmdState::ErrReply;
                self.k.d.next = 0.into();
                // READ_MEM payload: space, addr (4), count (2): count is the top of `sr`
                self.cnt.d.next = self.rcnt.val();
                self.ph.d.next = 0.into();
                if self.space.q.val() == 0 {
                    if self.rcnt.val() > self.k_words0.val() {
                        self.ecode.d.next = self.k_e_length.val();
                    } else if !self.ahi.val() & (self.rend33.val() <= self.k_units.val()) {
                        self.state.d.next = CmdState::RmWord;
                    }
                }
                if self.space.q.val() == 1 {
                    if self.rcnt.val() > self.k_words1.val() {
                        self.ecode.d.next = self.k_e_length.val();
                    } else if !self.ahi.val() & (self.rend33.val() <= self.k_units.val()) {
                        self.state.d.next = CmdState::RmZeros;
                    }
                }
                // weight spaces: 2 (couplings) with FEATURE_READ_COUPLINGS, 3..=5 with the
                // weights feature
                if (self.space.q.val() >= 2)
                    & (self.space.q.val() <= 5)
                    & (((self.space.q.val() == 2) & self.k_rdcoup.val()) | self.k_wfeat.val())
                {
                    if self.rcnt.val() > self.k_words1.val() {
                        self.ecode.d.next = self.k_e_length.val();
                    } else if !self.ahi.val() & (self.rend33.val() <= self.wlen.val()) {
                        self.state.d.next = CmdState::RmCoup;
                    }
                }
            }
            CmdState::RmWord => {
                // ph 0: bmem reads word k; ph 1..4: its bytes
                if self.kq.val() == self.cntq.val() {
                    self.state.d.next = CmdState::Send;
                } else {
                    self.ph.d.next = self.ph.q.val() + 1;
                    if self.ph.q.val() != 0 {
                        self.wr.next = true;
                        self.reply.data.next = self.wbyte.val().get_bits::<8>(0);
                    }
                    if self.ph.q.val() == 4 {
                        self.ph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                    }
                }
            }
            CmdState::RmZeros => {
                if self.kq.val() == self.cnt2.val() {
                    self.state.d.next = CmdState::Send;
                } else {
                    self.wr.next = true;
                    self.reply.data.next = 0.into();
                    self.k.d.next = self.kq.val() + 1;
                }
            }
            CmdState::RmCoup => {
                // ph 0: the coupling ROM reads word k; ph 1, 2: its bytes (i16 little-endian)
                if self.kq.val() == self.cntq.val() {
                    self.state.d.next = CmdState::Send;
                } else {
                    self.ph.d.next = self.ph.q.val() + 1;
                    if self.ph.q.val() != 0 {
                        self.wr.next = true;
                        self.reply.data.next = self.cbyte.val().get_bits::<8>(0);
                    }
                    if self.ph.q.val() == 2 {
                        self.ph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                    }
                }
            }
            CmdState::ScCheck => {
                // SET_CONDITIONING: slot in `space`, offset in `rcnt`, codes from offset 7
                self.cst.d.next = self.sst.val();
                self.cnt.d.next = self.nsc.val();
                self.base.d.next = self.sbase.val() + self.rcnt.val();
                self.woff.d.next = 7.into();
                self.isrun.d.next = false;
                self.state.d.next = CmdState::CwStart;
                if self.space.q.val() >= self.k_slots.val() {
                    self.ecode.d.next = self.k_e_slot.val();
                    self.state.d.next = CmdState::ErrReply;
                } else if self.scend.val() > self.k_d17.val() {
                    self.ecode.d.next = self.k_e_address.val();
                    self.state.d.next = CmdState::ErrReply;
                }
            }
            CmdState::RunCheck => {
                // RUN: slot in `space`, sweeps in `sr`; the 5 words from offset 5
                self.cst.d.next = self.sst.val();
                self.cnt.d.next = 5.into();
                self.base.d.next = self.sbase.val() + self.k_d16.val();
                self.woff.d.next = 5.into();
                self.isrun.d.next = true;
                // then the flags byte (payload offset 21), which this build takes only as zero
                self.off.d.next = 25.into();
                self.nb.d.next = 1.into();
                self.ret.d.next = CmdState::RunFlags;
                self.state.d.next = CmdState::ReadBytes;
                if (self.sr.q.val() == 0) | self.sw_over.val() {
                    self.ecode.d.next = self.k_e_param.val();
                    self.state.d.next = CmdState::ErrReply;
                }
            }
            CmdState::RunFlags => {
                // the flags byte in `sr` bits 31..24: RUN_ALL_UNITS (bit 0), RUN_RHO (bit 2,
                // in a build with it)
                self.state.d.next = CmdState::CwStart;
                self.rflag.d.next = self.sr.q.val().get_bit(24);
                self.rrho.d.next = self.sr.q.val().get_bit(26);
                if self.sr.q.val().get_bit(25)
                    | self.sr.q.val().get_bits::<5>(27).any()
                    | (self.sr.q.val().get_bit(26) & !self.k_rfeat.val())
                {
                    self.ecode.d.next = self.k_e_param.val();
                    self.state.d.next = CmdState::ErrReply;
                } else if self.space.q.val() >= self.k_slots.val() {
                    self.ecode.d.next = self.k_e_slot.val();
                    self.state.d.next = CmdState::ErrReply;
                }
            }
            CmdState::CwStart => {
                // compare the request's words with the slot memory unless the slot is idle
                self.k.d.next = 0.into();
                // a RUN is the same only with the same flags
                self.same.d.next = (self.cst.q.val() != 0)
                    & (!self.isrun.q.val()
                        | ((self.rflag.q.val() == self.sflag.val())
                            & (self.rrho.q.val() == self.srho.val())));
                self.off.d.next = self.woff.q.val();
                if self.cst.q.val() == 0 {
                    self.state.d.next = CmdState::CwDecide;
                } else {
                    self.state.d.next = CmdState::CmpNext;
                }
            }
            CmdState::CmpNext => {
                if self.kq.val() == self.cntq.val() {
                    self.state.d.next = CmdState::CwDecide;
                } else {
                    self.nb.d.next = 4.into();
                    self.ph.d.next = 0.into();
                    self.ret.d.next = CmdState::CmpWord;
                    self.state.d.next = CmdState::ReadBytes;
                }
            }
            CmdState::CmpWord => {
                // the slot memory has seen `sx` for 8 cycles
                if self.sr.q.val() != self.slotmem.read_data.val() {
                    self.same.d.next = false;
                }
                self.k.d.next = self.kq.val() + 1;
                self.state.d.next = CmdState::CmpNext;
            }
            CmdState::CwDecide => {
                self.k.d.next = 0.into();
                self.off.d.next = self.woff.q.val();
                self.state.d.next = CmdState::WrNext;
                if self.same.q.val() {
                    self.state.d.next = CmdState::Send;
                } else if self.cst.q.val() == 1 {
                    self.ecode.d.next = self.k_e_busy.val();
                    self.state.d.next = CmdState::ErrReply;
                }
            }
            CmdState::WrNext => {
                if self.kq.val() == self.cntq.val() {
                    self.state.d.next = CmdState::CwFinish;
                } else {
                    self.nb.d.next = 4.into();
                    self.ph.d.next = 0.into();
                    self.ret.d.next = CmdState::WrWord;
                    self.state.d.next = CmdState::ReadBytes;
                }
            }
            CmdState::WrWord => {
                self.slotmem.write_enable.next = true;
                self.k.d.next = self.kq.val() + 1;
                self.state.d.next = CmdState::WrNext;
            }
            CmdState::CwFinish => {
                // SET_CONDITIONING: the slot becomes idle; RUN: busy, and queued
                self.slot_st.d.next = self.sclr.val();
                if self.isrun.q.val() {
                    self.slot_st.d.next = self.sclr.val() | (self.k_st1.val() << self.ssh.val());
                    self.queue.d.next = self.queue.q.val()
                        | (bit_cast::<8, 2>(self.space.q.val().get_bits::<2>(0)) << self.qsh.val());
                    self.qn.d.next = self.qn.q.val() + 1;
                    self.slot_fl.d.next = self.slot_fl.q.val() & !self.fmask.val();
                    if self.rflag.q.val() {
                        self.slot_fl.d.next = self.slot_fl.q.val() | self.fmask.val();
                    }
                    self.slot_rho.d.next = self.slot_rho.q.val() & !self.fmask.val();
                    if self.rrho.q.val() {
                        self.slot_rho.d.next = self.slot_rho.q.val() | self.fmask.val();
                    }
                }
                self.state.d.next = CmdState::Send;
            }
            CmdState::RoCheck => {
                // READOUT: slot in `space`, offset sr[15:0], count sr[31:16]
                self.cst.d.next = self.sst.val();
                self.base.d.next = self.sbase.val() + self.k_d16.val();
                self.k.d.next = 0.into();
                self.ph.d.next = 0.into();
                self.cnt.d.next = 0.into();
                self.state.d.next = CmdState::RoSweeps;
                if self.rcnt.val() > self.k_max_sums.val() {
                    self.ecode.d.next = self.k_e_length.val();
                    self.state.d.next = CmdState::ErrReply;
                } else if self.space.q.val() >= self.k_slots.val() {
                    self.ecode.d.next = self.k_e_slot.val();
                    self.state.d.next = CmdState::ErrReply;
                } else if self.sst.val() == 2 {
                    self.cnt.d.next = self.rcnt.val();
                    if (self.roend.val() > self.k_r17.val()) & !self.sflag.val()
                        | (self.roend.val() > self.k_d17.val())
                    {
                        self.ecode.d.next = self.k_e_address.val();
                        self.state.d.next = CmdState::ErrReply;
                    }
                }
            }
            CmdState::RoSweeps => {
                // ph 0: the slot memory reads the run's sweeps; ph 1: state byte, sweeps to sr
                self.ph.d.next = 1.into();
                if self.ph.q.val() == 1 {
                    self.wr.next = true;
                    self.reply.data.next = self.cst.q.val();
                    self.sr.d.next = 0.into();
                    if self.cst.q.val() == 2 {
                        self.sr.d.next = self.slotmem.read_data.val();
                    }
                    self.base.d.next = self.rbase.val() + self.sr.q.val().get_bits::<16>(0);
                    self.state.d.next = CmdState::RoHead;
                }
            }
            CmdState::RoHead => {
                self.wr.next = true;
                self.reply.data.next = self.sr.q.val().get_bits::<8>(0);
                self.sr.d.next = self.nsr.val();
                self.k.d.next = self.kq.val() + 1;
                self.ph.d.next = 0.into();
                if self.kq.val() == 3 {
                    self.k.d.next = 0.into();
                    self.state.d.next = CmdState::RoSums;
                }
            }
            CmdState::RoSums => {
                // ph 0: the result memory reads sum k; ph 1..4: its bytes
                if self.kq.val() == self.cntq.val() {
                    self.state.d.next = CmdState::Send;
                } else {
                    self.ph.d.next = self.ph.q.val() + 1;
                    if self.ph.q.val() != 0 {
                        self.wr.next = true;
                        self.reply.data.next = self.rbyte.val().get_bits::<8>(0);
                    }
                    if self.ph.q.val() == 4 {
                        self.ph.d.next = 0.into();
                        self.k.d.next = self.kq.val() + 1;
                    }
                }
            }
            CmdState::ErrReply => {
                self.rerr.d.next = true;
                self.wr.next = true;
                self.reply.data.next = self.hkind.q.val();
                if self.kq.val() == 1 {
                    self.reply.data.next = self.ecode.q.val();
                    self.state.d.next = CmdState::Send;
                }
                self.k.d.next = self.kq.val() + 1;
            }
            CmdState::Send => {
                self.reply.send.next = true;
                self.state.d.next = CmdState::Release;
            }
            CmdState::Release => {
                self.req.done.next = true;
                self.state.d.next = CmdState::Idle;
            }
            _ => {
                self.state.d.next = CmdState::Idle;
            }
        }
        // The run sequencer enters a port-owning state only while the request side is idle;
        // while it owns the port its memory addresses and port writes take precedence.
        if self.runner.slot_raddr_en.val() {
            self.slotmem.read_address.next = self.runner.slot_raddr.val();
        }
        if self.runner.p_addr_en.val() {
            self.paddr.d.next = self.runner.p_addr.val();
        }
        if self.runner.p_data_en.val() {
            self.pwdata.d.next = self.runner.p_data.val();
        }
        if self.runner.p_we.val() {
            self.pwe.d.next = true;
        }
        self.res.write_address.next = self.runner.res_waddr.val();
        self.res.write_enable.next = self.runner.res_we.val();
        if self.runner.take.val() {
            self.queue.d.next = self.queue.q.val() >> 2;
            self.qn.d.next = self.qn.q.val() - 1;
        }
        if self.runner.base_take.val() {
            self.sweep_base.d.next = self.cfg.rdata.val();
        }
        if self.runner.done.val() {
            self.runs.d.next = self.runs.q.val() + 1;
            self.slot_st.d.next = (self.slot_st.q.val() & !(self.k_m3.val() << self.csh.val()))
                | (self.k_st2.val() << self.csh.val());
        }
        self.active.next = self.runner.busy.val() | (self.qn.q.val() != 0);
        self.req.off.next = self.off.q.val();
        self.rel16.next = bit_cast::<16, 11>(self.hlen.q.val()) + 4;
        self.req.release.next = self.rel16.val().get_bits::<12>(0);
        self.reply.seq.next = self.hseq.q.val();
        self.reply.kind.next = self.hkind.q.val() | 0x80;
        if self.rerr.q.val() {
            self.reply.kind.next = self.k_error.val();
        }
        // the reply's bytes are written in order from 0: `bp` is the next byte's address and,
        // at `send`, the payload length
        self.reply.we.next = self.wr.val();
        self.reply.addr.next = self.bp.q.val().get_bits::<10>(0);
        if self.wr.val() {
            self.bp.d.next = self.bp.q.val() + 1;
        }
        self.reply.len.next = self.bp.q.val();
        self.cfg.addr.next = self.paddr.q.val();
        self.cfg.wdata.next = self.pwdata.q.val();
        self.cfg.we.next = self.pwe.q.val();
        // a build without the weights feature: the checksum unit's and the weight flags'
        // registers are constant (synthesis removes them and every state that needs them)
        if !self.k_wfeat.val() {
            self.fh.d.next = 0.into();
            self.fx.d.next = 0.into();
            self.cdiff.d.next = 0.into();
            self.cph.d.next = 0.into();
            self.wdirty.d.next = false;
            self.wmod.d.next = false;
        }
        // a build without the rho feature: no slot's run sums rho(x)
        if !self.k_rfeat.val() {
            self.slot_rho.d.next = 0.into();
            self.rrho.d.next = false;
        }
    }
}

/// Frame receiver + command unit + frame transmitter: the link without the UART, on byte
/// streams, with the substrate port as pins (the Verilator test top of the command unit).
///
/// **Ports**: `clock`; `in_data`, `in_valid` (request bytes); `out_data`, `out_valid`,
/// `out_ready` (reply bytes); `cfg` (the substrate port, [`ConfigPort`]); `active` (a run is queued or in progress); the receiver's counters.
/// **Latency** the sum of its parts. **Proof**
/// `hdl/tests/link_command.rs`.
#[derive(LogicBlock)]
pub struct LinkCore {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Request byte.
    pub in_data: Signal<In, Bits<8>>,
    /// `in_data` valid.
    pub in_valid: Signal<In, Bit>,
    /// Reply byte.
    pub out_data: Signal<Out, Bits<8>>,
    /// `out_data` valid.
    pub out_valid: Signal<Out, Bit>,
    /// The consumer takes `out_data`.
    pub out_ready: Signal<In, Bit>,
    /// The substrate's configuration port.
    pub cfg: ConfigPort,
    /// A run is queued or in progress.
    pub active: Signal<Out, Bit>,
    /// Frames accepted.
    pub frames: Signal<Out, Bits<32>>,
    /// Frames with a CRC error.
    pub crc_errors: Signal<Out, Bits<32>>,
    /// Frames with a framing error.
    pub framing_errors: Signal<Out, Bits<32>>,
    /// Frames dropped for a full ring.
    pub overruns: Signal<Out, Bits<32>>,
    /// The receiver counts a CRC or framing error in this cycle.
    pub error_evt: Signal<Out, Bit>,
    frx: crate::link::framing::FrameRx,
    cmd: CommandUnit,
    ftx: crate::link::framing::FrameTx,
}

impl LinkCore {
    /// The link core of substrate `s` compiled to `prog`, link options `o`.
    pub fn new(s: &Substrate, prog: &HwProgram, o: &LinkOptions) -> Self {
        LinkCore {
            clock: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            cfg: Default::default(),
            active: Default::default(),
            frames: Default::default(),
            crc_errors: Default::default(),
            framing_errors: Default::default(),
            overruns: Default::default(),
            error_evt: Default::default(),
            frx: crate::link::framing::FrameRx::with_ring(o.ring_bytes()),
            cmd: CommandUnit::new(s, prog, o),
            ftx: crate::link::framing::FrameTx::with_buffer(o.reply_bytes()),
        }
    }
}

impl Logic for LinkCore {
    #[hdl_gen]
    fn update(&mut self) {
        self.frx.clock.next = self.clock.val();
        self.cmd.clock.next = self.clock.val();
        self.ftx.clock.next = self.clock.val();
        self.frx.in_data.next = self.in_data.val();
        self.frx.in_valid.next = self.in_valid.val();
        RequestPort::join(&mut self.cmd.req, &mut self.frx.req);
        ReplyPort::join(&mut self.cmd.reply, &mut self.ftx.reply);
        self.out_data.next = self.ftx.out_data.val();
        self.out_valid.next = self.ftx.out_valid.val();
        self.ftx.out_ready.next = self.out_ready.val();
        ConfigPort::link(&mut self.cfg, &mut self.cmd.cfg);
        self.active.next = self.cmd.active.val();
        self.frames.next = self.frx.frames.val();
        self.crc_errors.next = self.frx.crc_errors.val();
        self.framing_errors.next = self.frx.framing_errors.val();
        self.overruns.next = self.frx.overruns.val();
        self.error_evt.next = self.frx.req.crc_evt.val() | self.frx.req.framing_evt.val();
    }
}

/// Verilog of the [`LinkCore`] of `s`.
pub fn link_core_verilog(s: &Substrate, prog: &HwProgram) -> Result<String, crate::Error> {
    let mut u = LinkCore::new(s, prog, &LinkOptions::default());
    u.connect_all();
    crate::rtl::block_verilog(&u)
}

/// The whole board design: UART pins, the link ([`LinkCore`]) and the substrate
/// ([`crate::rtl::top::SubstrateTop`]) on its configuration port.
///
/// **Ports**: `clock`, `rx` (from the host, idle high), `tx` (to the host), and the link's
/// counters `frame_errors` (UART stop bits), `crc_errors`, `framing_errors`, `error` (one
/// flip-flop, set by the first error any of them counts and never cleared: the board tops'
/// error LED, so a board build needs none of the three 32-bit counters) and `active` (a run is
/// queued or in progress) for LEDs or a logic analyser. The baud rate is fixed at construction (`inc` of
/// [`crate::link::uart::baud_increment`]). **Latency**: a request is executed once its delimiter has
/// been received, and its reply starts within a few hundred cycles (plus the port reads of
/// STATUS). **Proof** `hdl/tests/link_command.rs` (`hdl_link_top_uart_pins_verilator`):
/// requests pushed through the `rx` pin at 25 MHz / 3 Mbaud are answered on `tx`.
#[derive(LogicBlock)]
pub struct LinkTop {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// UART receive pin.
    pub rx: Signal<In, Bit>,
    /// UART transmit pin.
    pub tx: Signal<Out, Bit>,
    /// Bytes dropped for a bad stop bit.
    pub frame_errors: Signal<Out, Bits<32>>,
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: Signal<Out, Bits<32>>,
    /// Frames dropped for bad framing.
    pub framing_errors: Signal<Out, Bits<32>>,
    /// One of the three counters above is not zero (sticky, without the counters).
    pub error: Signal<Out, Bit>,
    /// A run is queued or in progress (for an LED).
    pub active: Signal<Out, Bit>,
    err: DFF<Bit>,
    urx: crate::link::uart::UartRx,
    utx: crate::link::uart::UartTx,
    core: LinkCore,
    sub: crate::rtl::top::SubstrateTop,
    k_inc: Constant<Bits<16>>,
}

impl LinkTop {
    /// The board design of substrate `s` compiled to `prog`, UART phase increment `inc`, link
    /// options `o`.
    pub fn new(s: &Substrate, prog: &HwProgram, inc: u16, o: &LinkOptions) -> Self {
        LinkTop {
            clock: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            frame_errors: Default::default(),
            crc_errors: Default::default(),
            framing_errors: Default::default(),
            error: Default::default(),
            active: Default::default(),
            err: Default::default(),
            urx: Default::default(),
            utx: Default::default(),
            core: LinkCore::new(s, prog, o),
            sub: crate::rtl::top::SubstrateTop::with_rho(prog, o.rho),
            k_inc: Constant::new((inc as u64).to_bits()),
        }
    }
}

impl Logic for LinkTop {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, err);
        self.urx.clock.next = self.clock.val();
        self.utx.clock.next = self.clock.val();
        self.core.clock.next = self.clock.val();
        self.sub.clock.next = self.clock.val();
        self.urx.inc.next = self.k_inc.val();
        self.utx.inc.next = self.k_inc.val();
        self.urx.rx.next = self.rx.val();
        self.core.in_data.next = self.urx.data.val();
        self.core.in_valid.next = self.urx.valid.val();
        self.utx.data.next = self.core.out_data.val();
        self.utx.valid.next = self.core.out_valid.val();
        self.core.out_ready.next = self.utx.ready.val();
        self.tx.next = self.utx.tx.val();
        ConfigPort::join(&mut self.core.cfg, &mut self.sub.cfg);
        self.active.next = self.core.active.val();
        self.frame_errors.next = self.urx.frame_errors.val();
        self.crc_errors.next = self.core.crc_errors.val();
        self.framing_errors.next = self.core.framing_errors.val();
        self.err.d.next = self.err.q.val() | self.urx.frame_error.val() | self.core.error_evt.val();
        self.error.next = self.err.q.val();
    }
}

/// Verilog of the [`LinkTop`] of `s` with link options `o`.
pub fn link_top_verilog(
    s: &Substrate,
    prog: &HwProgram,
    inc: u16,
    o: &LinkOptions,
) -> Result<String, crate::Error> {
    o.validate()?;
    let mut u = LinkTop::new(s, prog, inc, o);
    u.connect_all();
    crate::rtl::block_verilog(&u)
}
