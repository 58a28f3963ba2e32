//! Requests, replies and their payload layouts (all integers little-endian).

use thermo_sim::engine::{Fixed, Program};
use thermo_sim::model::Substrate;

/// Request opcodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    /// Who are you: version, design hash, sizes.
    Identify = 0x01,
    /// Write a memory space.
    WriteMem = 0x02,
    /// Read a memory space.
    ReadMem = 0x03,
    /// Load (part of) one slot's conditioning vector.
    SetConditioning = 0x04,
    /// Queue an inference on a slot.
    Run = 0x05,
    /// Read (part of) a slot's result.
    Readout = 0x06,
    /// Counters.
    Status = 0x07,
    /// Clear queues, results, counters and state.
    Reset = 0x08,
}

impl Opcode {
    /// Parse a request kind.
    pub fn from_u8(b: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match b {
            0x01 => Identify,
            0x02 => WriteMem,
            0x03 => ReadMem,
            0x04 => SetConditioning,
            0x05 => Run,
            0x06 => Readout,
            0x07 => Status,
            0x08 => Reset,
            _ => return None,
        })
    }
}

/// `kind` of a reply to `op`.
pub fn reply_kind(op: Opcode) -> u8 {
    op as u8 | 0x80
}
/// `kind` of an error reply.
pub const ERROR_KIND: u8 = 0xFF;

/// Error codes of an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// Unknown opcode.
    UnknownCommand = 1,
    /// Payload length wrong for the command.
    BadLength = 2,
    /// Slot out of range.
    BadSlot = 3,
    /// Address or count outside the memory space.
    BadAddress = 4,
    /// The run queue is full.
    Busy = 5,
    /// A parameter is out of range (e.g. sweeps).
    BadParameter = 6,
}

impl ErrorCode {
    /// Parse.
    pub fn from_u8(b: u8) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match b {
            1 => UnknownCommand,
            2 => BadLength,
            3 => BadSlot,
            4 => BadAddress,
            5 => Busy,
            6 => BadParameter,
            _ => return None,
        })
    }
}

/// Memory spaces of WRITE_MEM / READ_MEM. Addresses count elements, not bytes.
///
/// The weight spaces (2..=5) hold the fixed engine's codes (`thermo_sim::engine::Program`):
/// what a board runs. They are writable on a board whose IDENTIFY reports
/// [`FEATURE_WEIGHTS`]; a board without it reads space 2 only (if it reports
/// [`FEATURE_READ_COUPLINGS`]) and refuses the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Space {
    /// Default biases `eta b` as i32 accumulator codes, one per unit (read/write).
    Bias = 0,
    /// Unit states as i16 codes (read only).
    State = 1,
    /// Off-diagonal couplings `-eta A_ij` as i16 codes in CSR order (`Program::coef`).
    Coupling = 2,
    /// Self coefficients `1 - eta a_i` as i16 codes, one per unit (`Program::diag`).
    SelfCoef = 3,
    /// Bus factors as i16 codes: bus by bus, `u` (rank-major, one row of the encoder module's
    /// units per rank) then `v` (one row of the decoder module's units per rank).
    BusFactor = 4,
    /// Bus gains `eta sigma_r` as i16 gain-format codes: bus by bus, rank by rank.
    BusGain = 5,
}

impl Space {
    /// Parse.
    pub fn from_u8(b: u8) -> Option<Space> {
        Some(match b {
            0 => Space::Bias,
            1 => Space::State,
            2 => Space::Coupling,
            3 => Space::SelfCoef,
            4 => Space::BusFactor,
            5 => Space::BusGain,
            _ => return None,
        })
    }
    /// Bytes per element (on the wire, in WRITE_MEM data and READ_MEM replies alike).
    pub fn width(self) -> usize {
        match self {
            Space::Bias => 4,
            _ => 2,
        }
    }
    /// The weight spaces, in [`Weights`] order.
    pub const WEIGHTS: [Space; 4] = [
        Space::Coupling,
        Space::SelfCoef,
        Space::BusFactor,
        Space::BusGain,
    ];
}

/// IDENTIFY `features` bit: the weight spaces 2..=5 are writable.
pub const FEATURE_WEIGHTS: u8 = 1;
/// IDENTIFY `features` bit: RUN takes [`RUN_ALL_UNITS`].
pub const FEATURE_ALL_UNITS: u8 = 2;
/// IDENTIFY `features` bit: RUN takes [`RUN_RHO`].
pub const FEATURE_RHO: u8 = 4;
/// IDENTIFY `features` bit: READ_MEM of space 2 (the couplings) is served. A board holds a
/// copy of the coupling codes for it (on the FPGA a block-RAM ROM: 40 DP16KD for the 40,960
/// couplings of the digits substrate), which a large model's build leaves out; such a board
/// answers bad address, like the other weight spaces without [`FEATURE_WEIGHTS`].
pub const FEATURE_READ_COUPLINGS: u8 = 8;
/// Every feature of this protocol version (the board model's default).
pub const FEATURES_ALL: u8 =
    FEATURE_WEIGHTS | FEATURE_ALL_UNITS | FEATURE_RHO | FEATURE_READ_COUPLINGS;
/// RUN `flags` bit: the result holds every unit's sum (unit order), not only the readout units'.
pub const RUN_ALL_UNITS: u8 = 1;
/// RUN `flags` bit: the sums are of `rho(x)` (the substrate's activation of each state code,
/// `thermo_sim::engine::Observe::Activation`), not of `x`: a clamped substrate's readout.
pub const RUN_RHO: u8 = 4;
/// Every RUN flag of this protocol version.
pub const RUN_FLAGS: u8 = RUN_ALL_UNITS | RUN_RHO;

/// A board's weights as the fixed engine's codes, one vector per weight space
/// ([`Space::WEIGHTS`]): what WRITE_MEM writes and READ_MEM reads back, and what
/// [`weight_checksum`] covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Weights {
    /// Space 2: `Program::coef`.
    pub coupling: Vec<i16>,
    /// Space 3: `Program::diag`.
    pub self_coef: Vec<i16>,
    /// Space 4: every bus's `u` rows then `v` rows.
    pub bus_factor: Vec<i16>,
    /// Space 5: every bus's gains.
    pub bus_gain: Vec<i16>,
}

impl Weights {
    /// The weights of a compiled program.
    pub fn of(p: &Program<Fixed>) -> Weights {
        Weights {
            coupling: p.coef.clone(),
            self_coef: p.diag.clone(),
            bus_factor: p
                .buses
                .iter()
                .flat_map(|b| b.u.iter().chain(&b.v).flatten().copied())
                .collect(),
            bus_gain: p
                .buses
                .iter()
                .flat_map(|b| b.gain.iter().copied())
                .collect(),
        }
    }
    /// The weights of a substrate (compiled by the fixed engine).
    pub fn of_substrate(s: &Substrate) -> Weights {
        Weights::of(&Program::new(s, Fixed::new(s)))
    }
    /// The codes of a weight space (`None` for spaces 0 and 1).
    pub fn space(&self, s: Space) -> Option<&[i16]> {
        Some(match s {
            Space::Coupling => &self.coupling,
            Space::SelfCoef => &self.self_coef,
            Space::BusFactor => &self.bus_factor,
            Space::BusGain => &self.bus_gain,
            Space::Bias | Space::State => return None,
        })
    }
    /// The codes of a weight space, to change (`None` for spaces 0 and 1).
    pub fn space_mut(&mut self, s: Space) -> Option<&mut Vec<i16>> {
        Some(match s {
            Space::Coupling => &mut self.coupling,
            Space::SelfCoef => &mut self.self_coef,
            Space::BusFactor => &mut self.bus_factor,
            Space::BusGain => &mut self.bus_gain,
            Space::Bias | Space::State => return None,
        })
    }
    /// Put these weights into a program of the same structure and recompile what derives from
    /// them (`Program::recompile`). Errors name the space whose length differs.
    pub fn apply(&self, p: &mut Program<Fixed>) -> Result<(), String> {
        let theirs = Weights::of(p);
        for sp in Space::WEIGHTS {
            let (a, b) = (
                self.space(sp).unwrap_or(&[]),
                theirs.space(sp).unwrap_or(&[]),
            );
            if a.len() != b.len() {
                return Err(format!(
                    "weight space {sp:?}: {} codes, the program has {}",
                    a.len(),
                    b.len()
                ));
            }
        }
        p.coef.clone_from(&self.coupling);
        p.diag.clone_from(&self.self_coef);
        let mut f = self.bus_factor.iter().copied();
        let mut g = self.bus_gain.iter().copied();
        for b in &mut p.buses {
            for x in b.u.iter_mut().chain(b.v.iter_mut()).flatten() {
                *x = f.next().unwrap_or_default();
            }
            for x in &mut b.gain {
                *x = g.next().unwrap_or_default();
            }
        }
        p.recompile();
        Ok(())
    }
}

/// Reply to IDENTIFY.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Protocol version.
    pub version: u8,
    /// [`structure_hash`] of the configuration baked into the hardware (what cannot change
    /// without a new bitstream).
    pub structure_hash: u64,
    /// [`weight_checksum`] of the weights the board holds now (the compiled ones after power-up
    /// and RESET; WRITE_MEM of a weight space changes it).
    pub weight_checksum: u64,
    /// Units D.
    pub units: u32,
    /// Units read out (decoder modules).
    pub readout_units: u32,
    /// Hardware lanes.
    pub lanes: u16,
    /// Inference slots.
    pub slots: u8,
    /// Fractional bits of the state format (readout sums are in it).
    pub state_frac: u8,
    /// Largest payload the board accepts.
    pub max_payload: u16,
    /// What the board supports beyond the base protocol: [`FEATURE_WEIGHTS`],
    /// [`FEATURE_ALL_UNITS`], [`FEATURE_RHO`].
    pub features: u8,
}

impl Identity {
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.version];
        v.extend(self.structure_hash.to_le_bytes());
        v.extend(self.weight_checksum.to_le_bytes());
        v.extend(self.units.to_le_bytes());
        v.extend(self.readout_units.to_le_bytes());
        v.extend(self.lanes.to_le_bytes());
        v.push(self.slots);
        v.push(self.state_frac);
        v.extend(self.max_payload.to_le_bytes());
        v.push(self.features);
        v
    }
    /// Parse a payload.
    pub fn decode(p: &[u8]) -> Option<Identity> {
        if p.len() != crate::IDENTITY_LEN {
            return None;
        }
        Some(Identity {
            version: p[0],
            structure_hash: u64::from_le_bytes(p[1..9].try_into().ok()?),
            weight_checksum: u64::from_le_bytes(p[9..17].try_into().ok()?),
            units: u32::from_le_bytes(p[17..21].try_into().ok()?),
            readout_units: u32::from_le_bytes(p[21..25].try_into().ok()?),
            lanes: u16::from_le_bytes(p[25..27].try_into().ok()?),
            slots: p[27],
            state_frac: p[28],
            max_payload: u16::from_le_bytes(p[29..31].try_into().ok()?),
            features: p[31],
        })
    }
    /// Does the board support `feature` ([`FEATURE_WEIGHTS`], [`FEATURE_ALL_UNITS`],
    /// [`FEATURE_RHO`])?
    pub fn has(&self, feature: u8) -> bool {
        self.features & feature == feature
    }
}

/// RUN payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunRequest {
    /// Slot whose conditioning is used and whose result is written.
    pub slot: u8,
    /// Sweeps averaged into the readout (1..=65536, so 16-bit states sum into 32 bits).
    pub sweeps: u32,
    /// Sweeps discarded first.
    pub burn_in: u32,
    /// Run key: every lane's generator starts from `lift(lane_base XOR key)`
    /// (`thermo_sim::noise::Taus88::from_key`); the host derives it from a seed with
    /// `thermo_sim::noise::run_key`. The state starts at zero.
    pub key: [u32; 3],
    /// Flags: [`RUN_ALL_UNITS`], [`RUN_RHO`] (other bits must be zero).
    pub flags: u8,
}

/// Largest `sweeps` of one RUN.
pub const MAX_RUN_SWEEPS: u32 = 65_536;

impl RunRequest {
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.slot];
        v.extend(self.sweeps.to_le_bytes());
        v.extend(self.burn_in.to_le_bytes());
        for k in self.key {
            v.extend(k.to_le_bytes());
        }
        v.push(self.flags);
        v
    }
    /// Does the result hold every unit ([`RUN_ALL_UNITS`])?
    pub fn all_units(&self) -> bool {
        self.flags & RUN_ALL_UNITS != 0
    }
    /// Are the sums of `rho(x)` ([`RUN_RHO`])?
    pub fn rho(&self) -> bool {
        self.flags & RUN_RHO != 0
    }
    /// What the sums observe of each state: `rho(x)` with [`RUN_RHO`], else `x`.
    pub fn observe(&self) -> thermo_sim::engine::Observe {
        if self.rho() {
            thermo_sim::engine::Observe::Activation
        } else {
            thermo_sim::engine::Observe::State
        }
    }
    /// Parse.
    pub fn decode(p: &[u8]) -> Option<RunRequest> {
        if p.len() != crate::RUN_LEN {
            return None;
        }
        let w = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
        Some(RunRequest {
            slot: p[0],
            sweeps: w(1),
            burn_in: w(5),
            key: [w(9), w(13), w(17)],
            flags: p[21],
        })
    }
}

/// State of a slot in a READOUT reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum SlotState {
    /// Nothing queued since the last result was read or since reset.
    Idle = 0,
    /// Queued or running.
    Busy = 1,
    /// Result ready.
    Done = 2,
}

/// Reply to READOUT: `state:u8 | sweeps:u32 | sums: i32 x count` (sums only when done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readout {
    /// Slot state.
    pub state: SlotState,
    /// Sweeps summed.
    pub sweeps: u32,
    /// Sums of the readout units' state codes over the sweeps.
    pub sums: Vec<i32>,
}

impl Readout {
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.state as u8];
        v.extend(self.sweeps.to_le_bytes());
        v.extend(crate::encode_i32s(&self.sums));
        v
    }
    /// Parse.
    pub fn decode(p: &[u8]) -> Option<Readout> {
        let h = crate::READOUT_REPLY_HEADER;
        if p.len() < h {
            return None;
        }
        let state = match p[0] {
            0 => SlotState::Idle,
            1 => SlotState::Busy,
            2 => SlotState::Done,
            _ => return None,
        };
        Some(Readout {
            state,
            sweeps: u32::from_le_bytes(p[1..h].try_into().ok()?),
            sums: crate::decode_i32s(&p[h..])?,
        })
    }
}

/// Reply to STATUS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Sweeps run since reset.
    pub sweeps: u64,
    /// Accumulator saturations.
    pub sat_acc: u64,
    /// State saturations.
    pub sat_state: u64,
    /// Bus saturations.
    pub sat_bus: u64,
    /// Inferences completed.
    pub runs: u32,
    /// Frames dropped for a CRC mismatch.
    pub crc_errors: u32,
    /// Frames dropped for bad framing.
    pub framing_errors: u32,
    /// Repeated requests (a `seq` among the last `REPLAY_WINDOW` executed) executed again.
    pub replays: u32,
}

impl Status {
    /// Payload bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(crate::STATUS_LEN);
        for x in [self.sweeps, self.sat_acc, self.sat_state, self.sat_bus] {
            v.extend(x.to_le_bytes());
        }
        for x in [
            self.runs,
            self.crc_errors,
            self.framing_errors,
            self.replays,
        ] {
            v.extend(x.to_le_bytes());
        }
        v
    }
    /// Parse.
    pub fn decode(p: &[u8]) -> Option<Status> {
        if p.len() != crate::STATUS_LEN {
            return None;
        }
        let q = |i: usize| u64::from_le_bytes(p[i..i + 8].try_into().unwrap_or_default());
        let d = |i: usize| u32::from_le_bytes(p[i..i + 4].try_into().unwrap_or_default());
        Some(Status {
            sweeps: q(0),
            sat_acc: q(8),
            sat_state: q(16),
            sat_bus: q(24),
            runs: d(32),
            crc_errors: d(36),
            framing_errors: d(40),
            replays: d(44),
        })
    }
}

/// Units read out by READOUT (defined with the substrate description).
pub use thermo_sim::model::readout_units;

/// The structure hash: FNV-1a (64 bit) over everything baked into the hardware that a
/// WRITE_MEM cannot change — protocol version, formats, lanes, module sizes, roles and levels,
/// the CSR structure (row pointers, columns), bus placement and ranks, the noise amplitude, the
/// activation's clamp codes, the modules' state shifts (with their clamp codes) and the noise ROM. The weights ([`weight_checksum`]) and the biases
/// (conditioning, loaded at run time) are not part of it. Host and board must agree on it.
pub fn structure_hash(s: &Substrate) -> u64 {
    let p: Program<Fixed> = Program::new(s, Fixed::new(s));
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    h.bytes(&[crate::VERSION]);
    let f = s.formats;
    for q in [f.state, f.coupling, f.bus, f.gain, f.noise_gain] {
        h.u32(q.bits);
        h.u32(q.frac);
    }
    h.u32(s.lanes);
    h.u32(s.modules.len() as u32);
    for m in &s.modules {
        h.u32(m.size as u32);
        h.u32(m.role as u32);
        h.u32(m.level);
    }
    for &r in &p.row_ptr {
        h.u32(r);
    }
    for &c in &p.col {
        h.u32(c);
    }
    for b in &p.buses {
        h.u32(b.enc.start as u32);
        h.u32(b.dec.start as u32);
        h.u32(b.gain.len() as u32);
    }
    h.i16s(&[p.arith.noise_amp]);
    if let Some((lo, hi)) = p.arith.clamp_codes() {
        h.i16s(&[lo, hi]);
    }
    // State shifts change every module's frame (docs/fixed-point.md §1): a board built with
    // other shifts computes other states. Hashed only when present, so the hash of a substrate
    // without shifts is what it always was.
    if s.shifted() {
        for (m, md) in s.modules.iter().enumerate() {
            h.u32(md.shift);
            if let Some((lo, hi)) = p.arith.module_clamp_codes(m) {
                h.i16s(&[lo, hi]);
            }
        }
    }
    for e in thermo_sim::noise::icdf_rom() {
        h.i16s(&[e.c0, e.c1]);
    }
    h.0
}

/// The weight checksum: FNV-1a (64 bit) over the weight codes, space by space in
/// [`Space::WEIGHTS`] order (couplings, self coefficients, bus factors, bus gains), each code
/// as i16 little-endian.
pub fn weight_checksum(w: &Weights) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for sp in Space::WEIGHTS {
        h.i16s(w.space(sp).unwrap_or(&[]));
    }
    h.0
}

struct Fnv(u64);
impl Fnv {
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= x as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
    }
    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_le_bytes());
    }
    fn i16s(&mut self, v: &[i16]) {
        for x in v {
            self.bytes(&x.to_le_bytes());
        }
    }
}
