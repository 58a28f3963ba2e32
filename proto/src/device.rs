//! The board as a model: its state (slots, run queue, default biases, counters) and the rules by
//! which it answers requests, defined once. The emulated board (`thermo emulate`) serves it
//! behind a pseudo-terminal; the RTL command unit (`thermo_hdl::command::CommandUnit`)
//! implements the same rules, and the tests compare the two reply by reply.
//!
//! A RUN is computed by `thermo_sim::engine::Fixed::run_codes`, the board's definition of RUN.

use crate::frame::{DecoderStats, Frame};
use crate::request::{encode_i16s, encode_i32s, encode_written, Request, WORD};
use crate::{
    encode_frame, readout_units, reply_kind, structure_hash, weight_checksum, ErrorCode, Identity,
    Opcode, Readout, RunRequest, SlotState, Space, Status, Weights, ERROR_KIND, FEATURES_ALL,
    FEATURE_ALL_UNITS, FEATURE_READ_COUPLINGS, FEATURE_RHO, FEATURE_WEIGHTS, MAX_PAYLOAD,
    MAX_RUN_SWEEPS, REPLAY_WINDOW, RUN_FLAGS, SLOTS, VERSION,
};
use std::collections::VecDeque;
use thermo_sim::engine::{Fixed, Program, RunSums};
use thermo_sim::Substrate;

/// One inference slot: conditioning, state, the run queued or done on it, its result.
#[derive(Clone, Debug)]
pub struct Slot {
    /// Conditioning (bias codes, one per unit).
    pub cond: Vec<i32>,
    /// Idle, busy (queued or running) or done.
    pub state: SlotState,
    /// The run queued or done.
    pub run: Option<RunRequest>,
    /// Readout sums when done.
    pub result: Vec<i32>,
    /// Sweeps summed into the result.
    pub sweeps: u32,
}

/// A queued inference taken off the board ([`Board::next_job`]), to run anywhere
/// ([`Job::run`]) and hand back ([`Board::finish_job`]).
#[derive(Clone, Debug)]
pub struct Job {
    /// Slot it was queued on.
    pub slot: u8,
    /// The board's substrate (its structure; the weights the board holds are in `prog`).
    pub sub: Substrate,
    /// The program the board runs: the substrate compiled, with the weights written over the
    /// link.
    pub prog: Program<Fixed>,
    /// The slot's conditioning.
    pub cond: Vec<i32>,
    /// The run.
    pub run: RunRequest,
    /// Units summed into the result: the readout units, or every unit for a RUN with
    /// [`RUN_ALL_UNITS`].
    pub readout: Vec<usize>,
}

impl Job {
    /// Compute the inference ([`Fixed::run_program`]; [`Fixed::run_codes`] while the weights
    /// are the compiled ones; with [`crate::RUN_RHO`] the sums of `rho(x)`, [`Fixed::run_observed`]).
    pub fn run(&self) -> RunSums {
        Fixed::run_observed(
            &self.prog,
            &self.cond,
            self.run.key,
            self.run.burn_in,
            self.run.sweeps,
            &self.readout,
            self.run.observe(),
        )
    }
}

/// The board's state and request rules.
#[derive(Clone)]
pub struct Board {
    sub: Substrate,
    readout: Vec<usize>,
    identity: Identity,
    default_bias: Vec<i32>,
    prog: Program<Fixed>,
    weights: Weights,
    features: u8,
    slots: Vec<Slot>,
    queue: VecDeque<u8>,
    status: Status,
    expect: Option<u8>,
    /// Requests dropped because their sequence number was neither the expected one nor within
    /// the last [`REPLAY_WINDOW`] before it.
    pub out_of_order: u64,
}

impl Board {
    /// A board configured with `sub`, just after power-up: every slot idle with the compiled
    /// biases as conditioning, the compiled weights, no sequence number expected yet; every
    /// feature ([`FEATURES_ALL`]).
    pub fn new(sub: Substrate) -> Self {
        Board::with_features(sub, FEATURES_ALL)
    }

    /// [`Board::new`] with only `features` ([`FEATURE_WEIGHTS`], [`FEATURE_ALL_UNITS`],
    /// [`FEATURE_RHO`], [`FEATURE_READ_COUPLINGS`]): without `FEATURE_WEIGHTS` WRITE_MEM of
    /// spaces 2..=5 and READ_MEM of spaces 3..=5 answer bad address, and READ_MEM of space 2
    /// too without `FEATURE_READ_COUPLINGS`; without `FEATURE_ALL_UNITS` a RUN with [`RUN_ALL_UNITS`],
    /// without `FEATURE_RHO` a RUN with [`crate::RUN_RHO`] answers bad parameter.
    pub fn with_features(sub: Substrate, features: u8) -> Self {
        let readout = readout_units(&sub);
        let prog = Program::new(&sub, Fixed::new(&sub));
        let weights = Weights::of(&prog);
        let identity = Identity {
            version: VERSION,
            structure_hash: structure_hash(&sub),
            weight_checksum: weight_checksum(&weights),
            units: sub.units() as u32,
            readout_units: readout.len() as u32,
            lanes: sub.lanes as u16,
            slots: SLOTS,
            state_frac: sub.formats.state.frac as u8,
            max_payload: MAX_PAYLOAD as u16,
            features,
        };
        let default_bias = prog.bias.clone();
        let slot = Slot {
            cond: default_bias.clone(),
            state: SlotState::Idle,
            run: None,
            result: Vec::new(),
            sweeps: 0,
        };
        Board {
            readout,
            identity,
            slots: vec![slot; SLOTS as usize],
            default_bias,
            prog,
            weights,
            features,
            queue: VecDeque::new(),
            status: Status::default(),
            expect: None,
            out_of_order: 0,
            sub,
        }
    }

    /// What IDENTIFY answers.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The counters STATUS reports now.
    pub fn status(&self) -> Status {
        self.status
    }

    /// The weights the board holds now.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The slots.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Handle one checked frame; returns the reply bytes for the wire, if any.
    ///
    /// **The sequence rule** (the RTL's, `thermo_hdl::command::CommandUnit`): a request is
    /// executed if it is IDENTIFY, if no sequence number is expected yet, or if its `seq` is the
    /// expected one; the expectation then becomes `seq + 1`. A request whose `seq` is among the
    /// [`REPLAY_WINDOW`] sequence numbers before the expected one is a retry: it is executed
    /// again, whatever its content, counted in STATUS `replays`, and the expectation stays.
    /// Anything else is dropped without a reply (the host goes back to its oldest unanswered
    /// request). Retries are safe because every command is idempotent and the host never sends
    /// a write behind an unanswered read (docs/protocol.md, "Sequence numbers").
    pub fn handle(&mut self, f: &Frame) -> Option<Vec<u8>> {
        let fresh =
            f.kind == Opcode::Identify as u8 || !matches!(self.expect, Some(e) if e != f.seq);
        if fresh {
            self.expect = Some(f.seq.wrapping_add(1));
        } else {
            let exp = self.expect.unwrap_or(f.seq);
            let back = exp.wrapping_sub(f.seq).wrapping_sub(1) as usize;
            if back >= REPLAY_WINDOW {
                self.out_of_order += 1;
                return None;
            }
            self.status.replays += 1;
        }
        Some(match self.execute(f) {
            Ok((kind, payload)) => encode_frame(f.seq, kind, &payload),
            Err(code) => encode_frame(f.seq, ERROR_KIND, &[f.kind, code as u8]),
        })
    }

    /// Execute a request: the reply's kind and payload, or the error code.
    fn execute(&mut self, f: &Frame) -> Result<(u8, Vec<u8>), ErrorCode> {
        let req = Request::decode(f.kind, &f.payload).map_err(|e| e.code())?;
        let kind = reply_kind(req.opcode());
        let ok = |payload: Vec<u8>| Ok((kind, payload));
        match req {
            Request::Identify => ok(self.identity.encode()),
            Request::Status => ok(self.status.encode()),
            Request::Reset => {
                // Everything back to power-up but the sequence expectation.
                let expect = self.expect;
                *self = Board::with_features(self.sub.clone(), self.features);
                self.expect = expect;
                ok(Vec::new())
            }
            Request::WriteMem { space, addr, words } if space != Space::Bias => {
                if self.features & FEATURE_WEIGHTS == 0 {
                    return Err(ErrorCode::BadAddress);
                }
                let a = addr as usize;
                let busy = self.slots.iter().any(|s| s.state == SlotState::Busy);
                let dst = self
                    .weights
                    .space_mut(space)
                    .and_then(|w| w.get_mut(a..a + words.len()))
                    .ok_or(ErrorCode::BadAddress)?;
                let codes: Vec<i16> = words.iter().map(|&w| w as i16).collect();
                if *dst == codes[..] {
                    // the same codes again (e.g. a retry): nothing changes, busy or not
                    return ok(encode_written(words.len() as u32));
                }
                if busy {
                    // a queued or running inference keeps the weights it was queued with
                    return Err(ErrorCode::Busy);
                }
                dst.copy_from_slice(&codes);
                self.weights
                    .apply(&mut self.prog)
                    .map_err(|_| ErrorCode::BadAddress)?;
                self.identity.weight_checksum = weight_checksum(&self.weights);
                ok(encode_written(words.len() as u32))
            }
            Request::WriteMem { addr, words, .. } => {
                let a = addr as usize;
                let dst = self
                    .default_bias
                    .get_mut(a..a + words.len())
                    .ok_or(ErrorCode::BadAddress)?;
                dst.copy_from_slice(&words);
                ok(encode_written(words.len() as u32))
            }
            Request::ReadMem { space, addr, count } => {
                let (a, n) = (addr as usize, count as usize);
                let weights = matches!(space, Space::SelfCoef | Space::BusFactor | Space::BusGain)
                    || (space == Space::Coupling && self.features & FEATURE_READ_COUPLINGS == 0);
                if weights && self.features & FEATURE_WEIGHTS == 0 {
                    // spaces a board without the feature does not have, whatever the count
                    return Err(ErrorCode::BadAddress);
                }
                if n * space.width() > MAX_PAYLOAD {
                    return Err(ErrorCode::BadLength);
                }
                match space {
                    Space::Bias => ok(encode_i32s(
                        self.default_bias
                            .get(a..a + n)
                            .ok_or(ErrorCode::BadAddress)?,
                    )),
                    Space::Coupling | Space::SelfCoef | Space::BusFactor | Space::BusGain => {
                        if space != Space::Coupling && self.features & FEATURE_WEIGHTS == 0 {
                            return Err(ErrorCode::BadAddress);
                        }
                        let w = self.weights.space(space).unwrap_or(&[]);
                        ok(encode_i16s(w.get(a..a + n).ok_or(ErrorCode::BadAddress)?))
                    }
                    Space::State => {
                        // States are zero between inferences (each RUN starts from zero).
                        if a + n > self.sub.units() {
                            return Err(ErrorCode::BadAddress);
                        }
                        ok(encode_i16s(&vec![0; n]))
                    }
                }
            }
            Request::SetConditioning {
                slot,
                offset,
                codes,
            } => {
                let units = self.sub.units();
                let s = self
                    .slots
                    .get_mut(slot as usize)
                    .ok_or(ErrorCode::BadSlot)?;
                let o = offset as usize;
                if o + codes.len() > units {
                    return Err(ErrorCode::BadAddress);
                }
                let dst = &mut s.cond[o..o + codes.len()];
                if *dst == codes[..] && s.state != SlotState::Idle {
                    return ok(Vec::new()); // a repeat (e.g. after a reconnect): nothing changes
                }
                if s.state == SlotState::Busy {
                    return Err(ErrorCode::Busy);
                }
                dst.copy_from_slice(&codes);
                // New conditioning invalidates an old result.
                s.state = SlotState::Idle;
                s.run = None;
                ok(Vec::new())
            }
            Request::Run(r) => {
                let flags_ok = r.flags & !RUN_FLAGS == 0
                    && (!r.all_units() || self.features & FEATURE_ALL_UNITS != 0)
                    && (!r.rho() || self.features & FEATURE_RHO != 0);
                if r.sweeps == 0 || r.sweeps > MAX_RUN_SWEEPS || !flags_ok {
                    return Err(ErrorCode::BadParameter);
                }
                let s = self
                    .slots
                    .get_mut(r.slot as usize)
                    .ok_or(ErrorCode::BadSlot)?;
                if s.state != SlotState::Idle && s.run == Some(r) {
                    return ok(Vec::new()); // the same run again: already queued or done
                }
                if s.state == SlotState::Busy {
                    return Err(ErrorCode::Busy);
                }
                s.state = SlotState::Busy;
                s.run = Some(r);
                self.queue.push_back(r.slot);
                ok(Vec::new())
            }
            Request::Readout {
                slot,
                offset,
                count,
            } => {
                let (o, n) = (offset as usize, count as usize);
                if crate::READOUT_REPLY_HEADER + WORD * n > MAX_PAYLOAD {
                    return Err(ErrorCode::BadLength);
                }
                let s = self.slots.get(slot as usize).ok_or(ErrorCode::BadSlot)?;
                let r = match s.state {
                    SlotState::Done => Readout {
                        state: SlotState::Done,
                        sweeps: s.sweeps,
                        sums: s
                            .result
                            .get(o..o + n)
                            .ok_or(ErrorCode::BadAddress)?
                            .to_vec(),
                    },
                    st => Readout {
                        state: st,
                        sweeps: 0,
                        sums: Vec::new(),
                    },
                };
                ok(r.encode())
            }
        }
    }

    /// Take the next queued inference, if any.
    pub fn next_job(&mut self) -> Option<Job> {
        let slot = self.queue.pop_front()?;
        let s = &self.slots[slot as usize];
        let run = s.run?;
        Some(Job {
            slot,
            sub: self.sub.clone(),
            prog: self.prog.clone(),
            cond: s.cond.clone(),
            run,
            readout: if run.all_units() {
                (0..self.sub.units()).collect()
            } else {
                self.readout.clone()
            },
        })
    }

    /// Record a finished inference: counters, and the slot's result unless a RESET or new
    /// conditioning superseded the job.
    pub fn finish_job(&mut self, job: &Job, r: RunSums) {
        self.status.sweeps += r.sweeps;
        self.status.sat_acc += r.saturation.acc;
        self.status.sat_state += r.saturation.state;
        self.status.sat_bus += r.saturation.bus;
        self.status.runs += 1;
        let s = &mut self.slots[job.slot as usize];
        if s.state == SlotState::Busy && s.run == Some(job.run) {
            s.state = SlotState::Done;
            s.result = r.sums;
            s.sweeps = job.run.sweeps;
        }
    }

    /// Run the oldest queued inference now, if any (for tests that follow the RTL's progress).
    pub fn run_one(&mut self) -> bool {
        match self.next_job() {
            Some(job) => {
                let r = job.run();
                self.finish_job(&job, r);
                true
            }
            None => false,
        }
    }

    /// Run every queued inference now (for tests without a worker thread).
    pub fn run_queued(&mut self) {
        while self.run_one() {}
    }

    /// Take the frame decoder's CRC and framing error counts into STATUS.
    pub fn note_decoder(&mut self, d: &DecoderStats) {
        self.status.crc_errors = d.crc_errors as u32;
        self.status.framing_errors = d.framing_errors as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FrameDecoder, RUN_ALL_UNITS};
    use thermo_sim::example::{random_substrate, ExampleSpec};

    fn board() -> Board {
        let cfg = random_substrate(&ExampleSpec {
            units: 16,
            modules: 2,
            rank: 1,
            seed: 3,
            ..Default::default()
        });
        Board::new(Substrate::from_config(&cfg).expect("valid example"))
    }

    fn send(b: &mut Board, seq: u8, r: &Request) -> Option<Frame> {
        let (kind, payload) = r.encode();
        b.handle(&Frame { seq, kind, payload }).map(|w| {
            FrameDecoder::new()
                .push(&w)
                .remove(0)
                .expect("a valid reply")
        })
    }

    /// A repeated `seq` within the window is executed again (the RTL's rule): a repeated read
    /// answers the state now, a repeated write writes again; each counts as a replay.
    #[test]
    fn a_retry_is_executed_again() {
        let mut b = board();
        let read = Request::ReadMem {
            space: Space::Bias,
            addr: 0,
            count: 1,
        };
        let first = send(&mut b, 5, &read).unwrap();
        let write = |v: i32| Request::WriteMem {
            space: Space::Bias,
            addr: 0,
            words: vec![v],
        };
        send(&mut b, 6, &write(41)).unwrap();
        // seq 5 again: executed again, so it sees the write of seq 6
        let again = send(&mut b, 5, &read).unwrap();
        assert_ne!(first.payload, again.payload);
        assert_eq!(again.payload, encode_i32s(&[41]));
        // seq 6 again with other content: executed again as well
        send(&mut b, 6, &write(42)).unwrap();
        assert_eq!(send(&mut b, 7, &read).unwrap().payload, encode_i32s(&[42]));
        assert_eq!(b.status().replays, 2);
        // the expectation stayed at 8 through the retries
        assert!(send(&mut b, 7u8.wrapping_sub(REPLAY_WINDOW as u8), &read).is_none());
        assert!(send(&mut b, 9, &read).is_none());
        assert_eq!(b.out_of_order, 2);
        assert!(send(&mut b, 8u8.wrapping_sub(REPLAY_WINDOW as u8), &read).is_some());
        assert!(send(&mut b, 8, &read).is_some());
    }

    /// A retried RESET resets again and keeps the sequence expectation, like the RTL.
    #[test]
    fn a_retried_reset_keeps_the_expectation() {
        let mut b = board();
        send(&mut b, 1, &Request::Reset).unwrap();
        send(&mut b, 2, &Request::Status).unwrap();
        send(&mut b, 1, &Request::Reset).unwrap();
        assert_eq!(b.status().replays, 0, "RESET clears the replay count");
        assert!(send(&mut b, 3, &Request::Status).is_some());
    }

    /// A substrate of the same structure with other weights (couplings, stiffness, bus factors
    /// and gains all moved).
    fn retrained(s: &Substrate) -> Substrate {
        let mut t = s.clone();
        for a in &mut t.val {
            *a *= 0.8;
        }
        for a in &mut t.stiffness {
            *a *= 1.1;
        }
        for b in &mut t.buses {
            for x in &mut b.sigma {
                *x *= 0.7;
            }
            for x in b.u.iter_mut().chain(b.v.iter_mut()).flatten() {
                *x = -*x * 0.9;
            }
        }
        t
    }

    fn read(b: &mut Board, seq: u8, space: Space, count: usize) -> Vec<i16> {
        let r = Request::ReadMem {
            space,
            addr: 0,
            count: count as u16,
        };
        let f = send(b, seq, &r).unwrap();
        assert_eq!(f.kind, reply_kind(Opcode::ReadMem), "{space:?}");
        crate::decode_i16s(&f.payload).unwrap()
    }

    /// Weights written over the link are what the board runs: a RUN after writing another
    /// substrate's codes into spaces 2..=5 equals `Fixed::run_codes` on that substrate bit for
    /// bit (every unit, with `RUN_ALL_UNITS`); READ_MEM reads them back; IDENTIFY keeps the
    /// structure hash and reports the new weight checksum; RESET restores the compiled weights.
    #[test]
    fn written_weights_are_run_and_read_back() {
        let mut b = board();
        let s = b.sub.clone();
        let t = retrained(&s);
        assert_eq!(structure_hash(&s), structure_hash(&t));
        let (w0, w1) = (Weights::of_substrate(&s), Weights::of_substrate(&t));
        assert!(Space::WEIGHTS
            .iter()
            .all(|&sp| w0.space(sp) != w1.space(sp)));
        assert_ne!(weight_checksum(&w0), weight_checksum(&w1));
        let mut seq = 0u8;
        let mut next = || {
            seq += 1;
            seq
        };
        for sp in Space::WEIGHTS {
            let codes = w1.space(sp).unwrap();
            // written in two pieces, the second from an address inside the space
            let h = codes.len() / 2;
            for (addr, part) in [(0, &codes[..h]), (h, &codes[h..])] {
                let f = send(
                    &mut b,
                    next(),
                    &Request::WriteMem {
                        space: sp,
                        addr: addr as u32,
                        words: part.iter().map(|&c| c as i32).collect(),
                    },
                )
                .unwrap();
                assert_eq!(f.payload, encode_written(part.len() as u32), "{sp:?}");
            }
            assert_eq!(read(&mut b, next(), sp, codes.len()), codes, "{sp:?}");
        }
        assert_eq!(b.weights(), &w1);
        let id =
            Identity::decode(&send(&mut b, next(), &Request::Identify).unwrap().payload).unwrap();
        assert_eq!(id.structure_hash, structure_hash(&s));
        assert_eq!(id.weight_checksum, weight_checksum(&w1));
        assert_eq!(id.features, FEATURES_ALL);
        let cond = Fixed::bias_codes(&t, &t.bias).unwrap();
        let run = RunRequest {
            slot: 1,
            sweeps: 40,
            burn_in: 5,
            key: [11, 22, 33],
            flags: RUN_ALL_UNITS,
        };
        send(&mut b, next(), &Request::Run(run)).unwrap();
        // the weights cannot change under a queued run (the same codes again are acknowledged)
        let other = Request::WriteMem {
            space: Space::BusGain,
            addr: 0,
            words: vec![w1.bus_gain[0] as i32 + 1],
        };
        let f = send(&mut b, next(), &other).unwrap();
        assert_eq!(f.kind, ERROR_KIND);
        assert_eq!(
            f.payload,
            vec![Opcode::WriteMem as u8, ErrorCode::Busy as u8]
        );
        let same = Request::WriteMem {
            space: Space::BusGain,
            addr: 0,
            words: vec![w1.bus_gain[0] as i32],
        };
        assert_eq!(
            send(&mut b, next(), &same).unwrap().kind,
            reply_kind(Opcode::WriteMem)
        );
        b.run_queued();
        let all: Vec<usize> = (0..t.units()).collect();
        let want = Fixed::run_codes(&t, &cond, run.key, run.burn_in, run.sweeps, &all);
        let units = t.units() as u16;
        let f = send(
            &mut b,
            next(),
            &Request::Readout {
                slot: 1,
                offset: 0,
                count: units,
            },
        )
        .unwrap();
        let r = Readout::decode(&f.payload).unwrap();
        assert_eq!(r.state, SlotState::Done);
        assert_eq!(r.sums, want.sums);
        // a unit past the end is a bad address; the compiled weights give other sums
        let f = send(
            &mut b,
            next(),
            &Request::Readout {
                slot: 1,
                offset: 1,
                count: units,
            },
        )
        .unwrap();
        assert_eq!(
            f.payload,
            vec![Opcode::Readout as u8, ErrorCode::BadAddress as u8]
        );
        let before = Fixed::run_codes(&s, &cond, run.key, run.burn_in, run.sweeps, &all);
        assert_ne!(before.sums, want.sums);
        // RESET: the compiled weights again
        send(&mut b, next(), &Request::Reset).unwrap();
        assert_eq!(b.weights(), &w0);
        assert_eq!(b.identity().weight_checksum, weight_checksum(&w0));
        // out of range: bad address
        let n = w0.self_coef.len() as u32;
        let f = send(
            &mut b,
            next(),
            &Request::WriteMem {
                space: Space::SelfCoef,
                addr: n,
                words: vec![1],
            },
        )
        .unwrap();
        assert_eq!(
            f.payload,
            vec![Opcode::WriteMem as u8, ErrorCode::BadAddress as u8]
        );
    }

    /// A board without the features refuses them as the RTL does: weight writes and reads of
    /// spaces 3..=5 with bad address (space 2 stays readable with FEATURE_READ_COUPLINGS, and
    /// is refused without it), an all-unit RUN with bad parameter; a RUN with an unknown flag
    /// is refused by every board.
    #[test]
    fn features_off_are_refused() {
        let s = board().sub;
        let bad_addr = |op: Opcode| vec![op as u8, ErrorCode::BadAddress as u8];
        let w = Weights::of_substrate(&s);
        let mut b = Board::with_features(s.clone(), 0);
        assert_eq!(b.identity().features, 0);
        let rd2 = Request::ReadMem {
            space: Space::Coupling,
            addr: 0,
            count: 2,
        };
        let f = send(&mut b, 1, &rd2).unwrap();
        assert_eq!(f.payload, bad_addr(Opcode::ReadMem));
        let mut b = Board::with_features(s.clone(), FEATURE_READ_COUPLINGS);
        assert_eq!(read(&mut b, 1, Space::Coupling, 2), w.coupling[..2]);
        for (i, sp) in Space::WEIGHTS.into_iter().enumerate() {
            let seq = 2 + 2 * i as u8;
            send(&mut b, seq - 1, &Request::Status).unwrap(); // keeps the numbering consecutive
            let wr = Request::WriteMem {
                space: sp,
                addr: 0,
                words: vec![0],
            };
            assert_eq!(
                send(&mut b, seq, &wr).unwrap().payload,
                bad_addr(Opcode::WriteMem)
            );
            if sp != Space::Coupling {
                let rd = Request::ReadMem {
                    space: sp,
                    addr: 0,
                    count: 1,
                };
                let f = send(&mut b, seq + 1, &rd).unwrap();
                assert_eq!(f.payload, bad_addr(Opcode::ReadMem));
            }
        }
        let mut full = Board::new(s);
        for (flags, board) in [(RUN_ALL_UNITS, &mut b), (2, &mut full)] {
            let run = Request::Run(RunRequest {
                slot: 0,
                sweeps: 1,
                burn_in: 0,
                key: [1, 2, 3],
                flags,
            });
            let f = send(board, 0, &run).unwrap();
            assert_eq!(
                f.payload,
                vec![Opcode::Run as u8, ErrorCode::BadParameter as u8]
            );
        }
    }
}
