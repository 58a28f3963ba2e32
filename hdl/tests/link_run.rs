//! RUN, SET_CONDITIONING and READOUT of the RTL link with the real substrate, in Verilator:
//! request frames go bit by bit into the `rx` pin of `LinkTop` (25 MHz, 3 Mbaud) and the
//! replies decoded from `tx` are compared with the board model (`thermo_proto::device`):
//! inference results equal `Fixed::run_codes` bit for bit (several slots, keys, conditionings,
//! burn-ins; the shipped example and a saturating configuration on 3 lanes), slot states,
//! errors, repeated requests, READOUT and STATUS while a run is busy, RESET; and random request
//! streams with RUNs answered exactly as the model's `Board` answers them, up to when a run
//! finishes.

use thermo_hdl::harness::link::link_top_verilator_segments;
use thermo_hdl::link::command::{identity_with, LinkOptions};
use thermo_hdl::rtl::program::HwProgram;
use thermo_proto::device::Board;
use thermo_proto::{
    encode_frame, encode_i16s, readout_units, reply_kind, ErrorCode, Frame, FrameDecoder, Opcode,
    Readout, Request, RunRequest, SlotState, Space, Status, ERROR_KIND,
};
use thermo_sim::example::StimulusRng;
use thermo_sim::example::{saturating_config, shipped};
use thermo_sim::{Fixed, Substrate};

const CLOCK: u64 = 25_000_000;
const BAUD: u64 = 3_000_000;

fn cond(slot: u8, offset: u16, codes: &[i32]) -> Request {
    Request::SetConditioning {
        slot,
        offset,
        codes: codes.to_vec(),
    }
}

fn readout(slot: u8, offset: u16, count: u16) -> Request {
    Request::Readout {
        slot,
        offset,
        count,
    }
}

/// `Fixed::run_codes` for a RUN request.
fn run_codes(
    s: &Substrate,
    c: &[i32],
    run: &RunRequest,
    ro: &[usize],
) -> thermo_sim::engine::RunSums {
    Fixed::run_codes(s, c, run.key, run.burn_in, run.sweeps, ro)
}

/// Compiled biases of `s` (what a slot holds after reset).
fn compiled_biases(prog: &HwProgram) -> Vec<i32> {
    (0..prog.d)
        .map(|i| prog.lanes[i % prog.p].bias[i / prog.p] as i32)
        .collect()
}

/// A conditioning around the compiled biases: each code moved by up to `spread`.
fn conditioning(base: &[i32], rng: &mut StimulusRng, spread: i64) -> Vec<i32> {
    base.iter()
        .map(|&b| (b as i64 + rng.below(2 * spread as u64 + 1) as i64 - spread) as i32)
        .collect()
}

fn decode(out: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let mut dec = FrameDecoder::new();
    dec.push(out)
        .into_iter()
        .map(|r| r.expect("every reply frame is valid"))
        .map(|f| (f.seq, f.kind, f.payload))
        .collect()
}

/// Requests in segments (a segment is sent once everything before it is answered and no run is
/// queued or in progress); the expected replies are checked by `check` in order.
struct Script {
    segs: Vec<Vec<u8>>,
    seq: u8,
    want: Vec<Want>,
    link: LinkOptions,
}

enum Want {
    Exact(u8, Vec<u8>),
    /// STATUS while runs are in flight: `runs` at most, sweeps at most.
    StatusBusy {
        max_runs: u32,
        max_sweeps: u64,
    },
}

impl Script {
    fn new() -> Self {
        Script {
            segs: vec![Vec::new()],
            seq: 1,
            want: Vec::new(),
            link: LinkOptions::default(),
        }
    }
    fn req(&mut self, r: Request, want: Want) {
        let (kind, p) = r.encode();
        self.segs
            .last_mut()
            .unwrap()
            .extend(encode_frame(self.seq, kind, &p));
        self.want.push(want);
        self.seq = self.seq.wrapping_add(1);
    }
    fn ok(&mut self, r: Request, reply: Vec<u8>) {
        let kind = reply_kind(r.opcode());
        self.req(r, Want::Exact(kind, reply));
    }
    fn err(&mut self, r: Request, code: ErrorCode) {
        let op = r.opcode();
        self.req(r, Want::Exact(ERROR_KIND, vec![op as u8, code as u8]));
    }
    fn wait(&mut self) {
        self.segs.push(Vec::new());
    }
    fn run(&self, s: &Substrate, prog: &HwProgram) -> u64 {
        let (out, cnt) = link_top_verilator_segments(s, prog, &self.link, CLOCK, BAUD, &self.segs)
            .expect("verilator");
        let got = decode(&out);
        assert_eq!(&cnt[..3], &[0, 0, 0], "link error counters");
        for (i, (g, w)) in got.iter().zip(&self.want).enumerate() {
            match w {
                Want::Exact(kind, payload) => {
                    assert!(
                        (g.1, &g.2) == (*kind, payload),
                        "reply {i} (seq {}): got kind {:#x} {:?}, want kind {:#x} {:?}",
                        g.0,
                        g.1,
                        g.2,
                        kind,
                        payload
                    );
                }
                Want::StatusBusy {
                    max_runs,
                    max_sweeps,
                } => {
                    let st = Status::decode(&g.2).expect("status");
                    assert_eq!(g.1, Opcode::Status as u8 | 0x80);
                    assert!(
                        st.runs <= *max_runs && st.sweeps <= *max_sweeps,
                        "reply {i}: status while busy {st:?}"
                    );
                }
            }
        }
        assert_eq!(got.len(), self.want.len(), "one reply per request");
        cnt[3]
    }
}

/// Results of the RTL equal `Fixed::run_codes` on the shipped example and on a saturating
/// configuration on 3 lanes (not a power of two: the operand mapping of the sequencer), with
/// slot states, repeats and errors as the emulator's.
#[test]
fn hdl_link_run_results_verilator() {
    let configs = [
        ("shipped example", shipped()),
        (
            "saturating_config(1)",
            Substrate::from_config(&saturating_config(1)).expect("valid"),
        ),
    ];
    for (name, s) in configs {
        let prog = HwProgram::new(&s).expect("compile");
        let ro = readout_units(&s);
        let r = ro.len();
        let d = prog.d;
        let base = compiled_biases(&prog);
        let mut rng = StimulusRng(7 + d as u64);
        let spread = if name.starts_with("saturating") {
            1 << 22
        } else {
            1 << 14
        };
        let conds: Vec<Vec<i32>> = (0..4)
            .map(|_| conditioning(&base, &mut rng, spread))
            .collect();
        let runs = [
            // long enough that the requests below are served while it runs
            RunRequest {
                slot: 0,
                sweeps: 1500,
                burn_in: 10,
                key: [1, 2, 3],
                flags: 0,
            },
            RunRequest {
                slot: 1,
                sweeps: 37,
                burn_in: 0,
                key: [0xDEAD_BEEF, 0, 7],
                flags: 0,
            },
            RunRequest {
                slot: 3,
                sweeps: 20,
                burn_in: 5,
                key: thermo_sim::noise::run_key(99),
                flags: 0,
            },
        ];
        let expect = |c: &[i32], run: &RunRequest| run_codes(&s, c, run, &ro);
        let done = |c: &[i32], run: &RunRequest, off: usize, n: usize| {
            let sums = expect(c, run).sums;
            Readout {
                state: SlotState::Done,
                sweeps: run.sweeps,
                sums: sums[off..off + n].to_vec(),
            }
            .encode()
        };
        let state = |st: SlotState| {
            Readout {
                state: st,
                sweeps: 0,
                sums: vec![],
            }
            .encode()
        };
        let mut sc = Script::new();
        // conditioning: slot 0 and 1 whole, slot 3 in two chunks
        sc.ok(cond(0, 0, &conds[0]), vec![]);
        sc.ok(cond(1, 0, &conds[1]), vec![]);
        sc.ok(cond(3, 0, &conds[3][..d / 3]), vec![]);
        let rest = &conds[3][d / 3..];
        sc.ok(cond(3, (d / 3) as u16, rest), vec![]);
        for run in &runs {
            sc.ok(Request::Run(*run), vec![]);
        }
        // while slot 0 runs: slot 1 and 3 are queued (busy), slot 2 idle; requests are served
        sc.ok(readout(1, 0, r as u16), state(SlotState::Busy));
        sc.ok(readout(2, 0, 1), state(SlotState::Idle));
        let total: u64 = runs.iter().map(|x| (x.sweeps + x.burn_in) as u64).sum();
        sc.req(
            Request::Status,
            Want::StatusBusy {
                max_runs: 0,
                max_sweeps: total,
            },
        );
        sc.err(cond(1, 0, &[conds[1][0] + 1]), ErrorCode::Busy);
        sc.ok(cond(1, 0, &conds[1]), vec![]); // the same: no effect
        let other = RunRequest {
            sweeps: 3,
            ..runs[1]
        };
        sc.err(Request::Run(other), ErrorCode::Busy);
        sc.ok(Request::Run(runs[1]), vec![]); // the same: no effect
        sc.wait();
        // all done: the results, bit for bit
        for run in &runs {
            let c = &conds[run.slot as usize];
            sc.ok(readout(run.slot, 0, r as u16), done(c, run, 0, r));
        }
        sc.ok(
            readout(0, 1, r as u16 - 2),
            done(&conds[0], &runs[0], 1, r - 2),
        );
        sc.err(readout(0, 1, r as u16), ErrorCode::BadAddress);
        let mut st = Status {
            runs: 3,
            ..Default::default()
        };
        for run in &runs {
            let r = expect(&conds[run.slot as usize], run);
            st.sweeps += r.sweeps;
            st.sat_acc += r.saturation.acc;
            st.sat_state += r.saturation.state;
            st.sat_bus += r.saturation.bus;
        }
        sc.ok(Request::Status, st.encode());
        // repeats on a done slot: acknowledged, the result stays
        sc.ok(Request::Run(runs[0]), vec![]);
        sc.ok(cond(0, 2, &conds[0][2..5]), vec![]);
        sc.ok(readout(0, 0, r as u16), done(&conds[0], &runs[0], 0, r));
        // another run on a done slot is queued; new conditioning makes a done slot idle
        let again = RunRequest {
            key: [5, 6, 7],
            flags: 0,
            burn_in: 3,
            ..runs[0]
        };
        sc.ok(Request::Run(again), vec![]);
        sc.ok(cond(3, 1, &[conds[3][1] ^ 1]), vec![]);
        sc.ok(readout(3, 0, 1), state(SlotState::Idle));
        sc.wait();
        sc.ok(readout(0, 0, r as u16), done(&conds[0], &again, 0, r));
        let mut c3 = conds[3].clone();
        c3[1] ^= 1;
        let r3 = RunRequest {
            slot: 3,
            sweeps: 9,
            burn_in: 0,
            key: [0, 0, 0],
            flags: 0,
        };
        sc.ok(Request::Run(r3), vec![]);
        sc.wait();
        sc.ok(readout(3, 0, r as u16), done(&c3, &r3, 0, r));
        // RESET: slots idle, counters zero, conditioning back to the compiled biases
        sc.ok(Request::Reset, vec![]);
        sc.ok(readout(0, 0, 1), state(SlotState::Idle));
        sc.ok(Request::Status, Status::default().encode());
        let r2 = RunRequest {
            slot: 2,
            sweeps: 11,
            burn_in: 2,
            key: [9, 9, 9],
            flags: 0,
        };
        sc.ok(Request::Run(r2), vec![]);
        sc.wait();
        sc.ok(readout(2, 0, r as u16), done(&base, &r2, 0, r));
        let cycles = sc.run(&s, &prog);
        eprintln!(
            "{name}: D={d} P={} R={r}: 7 runs through the UART pins equal Fixed::run_codes bit for bit; states, repeats, errors, STATUS as the emulator's ({cycles} cycles)",
            prog.p
        );
    }
}

/// The iCEBreaker's small link (`LinkOptions::SMALL`: 2 slots, 508-byte payloads, 1 KB receive
/// ring, 512-byte reply buffer): IDENTIFY reports it, both slots give `Fixed::run_codes`'s results
/// bit for bit, slot 2 is out of range, and READ_MEM's length limit follows `max_payload`
/// (255 coupling words = 510 bytes: bad length here, bad address with the default link).
#[test]
fn hdl_link_run_small_link_verilator() {
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let ro = readout_units(&s);
    let r = ro.len();
    let base = compiled_biases(&prog);
    let mut rng = StimulusRng(99);
    let conds: Vec<Vec<i32>> = (0..2)
        .map(|_| conditioning(&base, &mut rng, 1 << 14))
        .collect();
    let runs = [
        RunRequest {
            slot: 0,
            sweeps: 40,
            burn_in: 3,
            key: [7, 8, 9],
            flags: 0,
        },
        RunRequest {
            slot: 1,
            sweeps: 25,
            burn_in: 0,
            key: thermo_sim::noise::run_key(5),
            flags: 0,
        },
    ];
    let mut sc = Script::new();
    sc.link = LinkOptions::SMALL;
    sc.ok(
        Request::Identify,
        identity_with(&s, &LinkOptions::SMALL).encode(),
    );
    for (i, c) in conds.iter().enumerate() {
        sc.ok(cond(i as u8, 0, c), vec![]);
    }
    sc.err(cond(2, 0, &base[..4]), ErrorCode::BadSlot);
    for run in &runs {
        sc.ok(Request::Run(*run), vec![]);
    }
    let r2 = RunRequest { slot: 2, ..runs[0] };
    sc.err(Request::Run(r2), ErrorCode::BadSlot);
    let read_coup = |count: u16| Request::ReadMem {
        space: Space::Coupling,
        addr: 0,
        count,
    };
    let nc = prog.couplings.len() as u16;
    assert!(nc < 254, "the shipped example has {nc} couplings");
    sc.err(read_coup(255), ErrorCode::BadLength);
    sc.err(read_coup(nc + 1), ErrorCode::BadAddress);
    let words = encode_i16s(&prog.couplings);
    sc.ok(read_coup(nc), words);
    sc.wait();
    for run in &runs {
        let sums = run_codes(&s, &conds[run.slot as usize], run, &ro).sums;
        let want = Readout {
            state: SlotState::Done,
            sweeps: run.sweeps,
            sums,
        };
        sc.ok(readout(run.slot, 0, r as u16), want.encode());
    }
    sc.err(readout(2, 0, 1), ErrorCode::BadSlot);
    let cycles = sc.run(&s, &prog);
    eprintln!(
        "small link: 2 slots, 508-byte payloads: results equal Fixed::run_codes ({cycles} cycles)"
    );
}

/// Random request streams with RUNs (random slots, conditionings, keys, sweeps, burn-ins, and
/// invalid ones), READOUTs, STATUS, RESET, WRITE_MEM/READ_MEM and IDENTIFY through the pins:
/// every reply equals the emulator's `Board`'s, where the board finishes its queued runs in
/// order whenever the RTL's reply shows that a run has finished. STATUS sweeps and saturations
/// are live on the RTL (they include a run in progress), so they are checked to lie between
/// the board's before and after its next run.
#[test]
fn hdl_link_run_random_requests_verilator() {
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let d = prog.d as u64;
    let r = readout_units(&s).len() as u64;
    let base = compiled_biases(&prog);
    let nc = prog.couplings.len() as u64;
    let mut rng = StimulusRng(4242);
    let keys = [[1u32, 2, 3], [4, 5, 6], [0xFFFF_FFFF, 0, 1]];
    let mut segs = vec![Vec::new()];
    let mut frames = Vec::new();
    let n = 260;
    for i in 0..n {
        let seq = (i + 1) as u8;
        let (op, p): (u8, Vec<u8>) = match rng.below(20) {
            0..=4 => {
                let slot = rng.below(5) as u8;
                let off = rng.below(d) as u16;
                let cnt = 1 + rng.below(d - off as u64) as usize;
                let codes = if rng.below(3) == 0 {
                    base[off as usize..off as usize + cnt].to_vec()
                } else {
                    conditioning(&base[off as usize..off as usize + cnt], &mut rng, 1 << 14)
                };
                let (kind, mut p) = cond(slot, off, &codes).encode();
                if rng.below(15) == 0 {
                    p.truncate(rng.below(p.len() as u64) as usize);
                }
                (kind, p)
            }
            5..=9 => {
                let run = RunRequest {
                    slot: rng.below(5) as u8,
                    sweeps: rng.below(30) as u32,
                    burn_in: rng.below(2) as u32 * rng.below(8) as u32,
                    key: keys[rng.below(3) as usize],
                    flags: 0,
                };
                let mut p = run.encode();
                if rng.below(15) == 0 {
                    p.push(0);
                }
                (Opcode::Run as u8, p)
            }
            10..=14 => {
                let off = rng.below(r + 1) as u16;
                let cnt = rng.below(r + 2) as u16;
                readout(rng.below(5) as u8, off, cnt).encode()
            }
            15 | 16 => Request::Status.encode(),
            17 => {
                if rng.below(4) == 0 {
                    Request::Reset.encode()
                } else {
                    Request::Identify.encode()
                }
            }
            18 => Request::WriteMem {
                space: Space::Bias,
                addr: rng.below(d) as u32,
                words: vec![rng.next() as i32],
            }
            .encode(),
            _ => {
                // spaces 0, 1 (one word) and 2 (couplings: a few words, some crossing the end)
                let space = Space::from_u8(rng.below(3) as u8).expect("a space");
                let (addr, count) = if space == Space::Coupling {
                    let a = rng.below(nc + 1);
                    (a, 1 + (a % 7) as u16)
                } else {
                    (rng.below(d), 1)
                };
                Request::ReadMem {
                    space,
                    addr: addr as u32,
                    count,
                }
                .encode()
            }
        };
        segs.last_mut().unwrap().extend(encode_frame(seq, op, &p));
        frames.push(Frame {
            seq,
            kind: op,
            payload: p,
        });
        if rng.below(40) == 0 {
            segs.push(Vec::new());
        }
    }
    // finally: every slot's result and the counters, after everything finished
    segs.push(Vec::new());
    for slot in 0..4u8 {
        let seq = (frames.len() + 1) as u8;
        let (kind, p) = readout(slot, 0, r as u16).encode();
        segs.last_mut().unwrap().extend(encode_frame(seq, kind, &p));
        frames.push(Frame {
            seq,
            kind,
            payload: p,
        });
    }
    let seq = (frames.len() + 1) as u8;
    segs.last_mut()
        .unwrap()
        .extend(encode_frame(seq, Opcode::Status as u8, &[]));
    frames.push(Frame {
        seq,
        kind: Opcode::Status as u8,
        payload: vec![],
    });
    let final_from = frames.len() - 5;

    let (out, cnt) =
        link_top_verilator_segments(&s, &prog, &Default::default(), CLOCK, BAUD, &segs)
            .expect("verilator");
    let got = decode(&out);
    assert_eq!(got.len(), frames.len(), "one reply per request");
    assert_eq!(&cnt[..3], &[0, 0, 0]);
    // the board model with the RTL's features
    let mut board = Board::with_features(
        s.clone(),
        identity_with(&s, &LinkOptions::default()).features,
    );
    let (mut finished, mut done_replies) = (0, 0);
    for (i, (f, g)) in frames.iter().zip(&got).enumerate() {
        if i == final_from {
            board.run_queued();
        }
        let accept = |b: &Board, w: &[u8]| -> bool {
            let want = decode(w).pop().expect("model reply");
            if (g.0, g.1) != (want.0, want.1) {
                return false;
            }
            if f.kind != Opcode::Status as u8 || g.1 == ERROR_KIND {
                return g.2 == want.2;
            }
            // live counters: between the board's now and after its next run
            let (gs, ws) = (
                Status::decode(&g.2).expect("status"),
                Status::decode(&want.2).expect("status"),
            );
            let mut next = b.clone();
            next.run_one();
            let ns = next.status();
            gs.runs == ws.runs
                && (gs.crc_errors, gs.framing_errors, gs.replays)
                    == (ws.crc_errors, ws.framing_errors, ws.replays)
                && (ws.sweeps..=ns.sweeps).contains(&gs.sweeps)
                && (ws.sat_acc..=ns.sat_acc).contains(&gs.sat_acc)
                && (ws.sat_state..=ns.sat_state).contains(&gs.sat_state)
                && (ws.sat_bus..=ns.sat_bus).contains(&gs.sat_bus)
        };
        loop {
            let mut b = board.clone();
            let w = b.handle(f).expect("the board answers every request");
            if accept(&board, &w) {
                board = b;
                break;
            }
            assert!(
                board.run_one(),
                "request {i} (seq {}, kind {:#x}, {} bytes): the RTL answered kind {:#x} {:?}, the board {:?} with no run left to finish",
                f.seq,
                f.kind,
                f.payload.len(),
                g.1,
                g.2,
                decode(&w)
            );
            finished += 1;
        }
        if f.kind == Opcode::Readout as u8 && g.2.first() == Some(&(SlotState::Done as u8)) {
            done_replies += 1;
        }
    }
    let st = Status::decode(&got.last().unwrap().2).expect("status");
    eprintln!(
        "random requests with runs through the pins: {} requests, {} runs finished while requests were served, {} READOUTs of done slots equal to the emulator's; final status {:?}",
        frames.len(),
        finished,
        done_replies,
        st
    );
    assert!(
        done_replies >= 5 && finished >= 10,
        "the stream exercised runs"
    );
}
