//! The RTL link's protocol features in Verilator, through the UART pins of `LinkTop`: RUN with
//! `RUN_ALL_UNITS` sums every unit (bit for bit `Fixed::run_codes` with every unit as readout),
//! and the weight spaces 2..=5 are written, read back, covered by IDENTIFY's weight checksum,
//! used by the runs that follow (bit for bit `Fixed::run_program` with the written codes) and
//! restored by RESET; RUN with `RUN_RHO` sums `rho(x)` (bit for bit `Fixed::run_observed` with
//! `Observe::Activation`, the clamped substrate's readout). Every reply equals the board model's (`thermo_proto::device::Board` with
//! the RTL's features), errors and their codes included.

use thermo_hdl::harness::link::link_top_verilator_segments;
use thermo_hdl::link::command::{identity_with, LinkOptions};
use thermo_hdl::rtl::program::HwProgram;
use thermo_proto::device::Board;
use thermo_proto::{
    decode_i16s, encode_frame, weight_checksum, ErrorCode, Frame, FrameDecoder, Identity, Opcode,
    Readout, Request, RunRequest, SlotState, Space, Weights, ERROR_KIND, FEATURE_ALL_UNITS,
    FEATURE_READ_COUPLINGS, FEATURE_RHO, FEATURE_WEIGHTS, RUN_ALL_UNITS, RUN_RHO,
};
use thermo_sim::engine::{Observe, Program};
use thermo_sim::example::{saturating_config, shipped, StimulusRng};
use thermo_sim::{Fixed, Substrate};

const CLOCK: u64 = 25_000_000;
const BAUD: u64 = 3_000_000;

fn decode(out: &[u8]) -> Vec<(u8, u8, Vec<u8>)> {
    let mut dec = FrameDecoder::new();
    dec.push(out)
        .into_iter()
        .map(|r| r.expect("every reply frame is valid"))
        .map(|f| (f.seq, f.kind, f.payload))
        .collect()
}

/// Requests in segments (each sent once everything before it is answered and no run is queued
/// or in progress), with the board model's replies: the model runs its queued inferences at
/// each segment boundary, so a script reads results only after one.
struct Script {
    board: Board,
    segs: Vec<Vec<u8>>,
    frames: Vec<Frame>,
    want: Vec<Vec<u8>>,
    seq: u8,
}

impl Script {
    fn new(s: &Substrate) -> Self {
        let features = identity_with(s, &LinkOptions::default()).features;
        Script {
            board: Board::with_features(s.clone(), features),
            segs: vec![Vec::new()],
            frames: Vec::new(),
            want: Vec::new(),
            seq: 1,
        }
    }
    /// Send `r`; the index of its reply.
    fn req(&mut self, r: &Request) -> usize {
        let (kind, payload) = r.encode();
        self.req_raw(kind, payload)
    }
    /// Send `r`, which the model answers with error `code`.
    fn err(&mut self, r: &Request, code: ErrorCode) {
        let i = self.req(r);
        let w = decode(&self.want[i]).remove(0);
        assert_eq!(
            (w.1, w.2.clone()),
            (ERROR_KIND, vec![r.opcode() as u8, code as u8]),
            "model reply to {r:?}"
        );
    }
    fn wait(&mut self) {
        self.board.run_queued();
        self.segs.push(Vec::new());
    }
    /// Run the script on the RTL; every reply equals the model's. The RTL's replies.
    fn run(&self, s: &Substrate, prog: &HwProgram) -> Vec<(u8, u8, Vec<u8>)> {
        let (out, cnt) =
            link_top_verilator_segments(s, prog, &LinkOptions::default(), CLOCK, BAUD, &self.segs)
                .expect("verilator");
        assert_eq!(&cnt[..3], &[0, 0, 0], "link error counters");
        let got = decode(&out);
        assert_eq!(got.len(), self.want.len(), "one reply per request");
        for (i, (g, w)) in got.iter().zip(&self.want).enumerate() {
            let w = decode(w).remove(0);
            assert!(
                *g == w,
                "reply {i} to kind {:#x}: RTL {g:?}, model {w:?}",
                self.frames[i].kind
            );
        }
        got
    }
}

fn run(slot: u8, sweeps: u32, burn_in: u32, key: [u32; 3], flags: u8) -> Request {
    Request::Run(RunRequest {
        slot,
        sweeps,
        burn_in,
        key,
        flags,
    })
}

fn readout(slot: u8, offset: u16, count: u16) -> Request {
    Request::Readout {
        slot,
        offset,
        count,
    }
}

fn write(space: Space, addr: u32, codes: &[i16]) -> Request {
    Request::WriteMem {
        space,
        addr,
        words: codes.iter().map(|&c| c as i32).collect(),
    }
}

/// Write every code of `w` (spaces 2..=5) in chunks of at most 300 codes.
fn write_all(sc: &mut Script, w: &Weights) {
    for sp in Space::WEIGHTS {
        let codes = w.space(sp).unwrap();
        for (c, chunk) in codes.chunks(300).enumerate() {
            sc.req(&write(sp, 300 * c as u32, chunk));
        }
    }
}

/// Read every code of spaces 2..=5 back, in chunks of at most 400; the reply indices.
fn read_all(sc: &mut Script, w: &Weights) -> Vec<(Space, usize)> {
    let mut at = Vec::new();
    for sp in Space::WEIGHTS {
        let n = w.space(sp).unwrap().len();
        for a in (0..n.max(1)).step_by(400) {
            let count = (n - a.min(n)).min(400) as u16;
            at.push((
                sp,
                sc.req(&Request::ReadMem {
                    space: sp,
                    addr: a as u32,
                    count,
                }),
            ));
        }
    }
    at
}

/// Other weights: each code of `w` moved by up to +-`spread` (saturating at the i16 range).
fn perturbed(w: &Weights, rng: &mut StimulusRng, spread: i64) -> Weights {
    let mut out = w.clone();
    for sp in Space::WEIGHTS {
        for c in out.space_mut(sp).unwrap().iter_mut() {
            let d = rng.below(2 * spread as u64 + 1) as i64 - spread;
            *c = (*c as i64 + d).clamp(i16::MIN as i64, i16::MAX as i64) as i16;
        }
    }
    out
}

fn sums_of(p: &[u8]) -> Vec<i32> {
    let r = Readout::decode(p).expect("readout");
    assert_eq!(r.state, SlotState::Done);
    r.sums
}

fn features_case(name: &str, s: &Substrate, spread: i64) {
    let prog = HwProgram::new(s).expect("compile");
    let (d, r) = (prog.d, thermo_proto::readout_units(s).len());
    let all: Vec<usize> = (0..d).collect();
    let compiled = Weights::of_substrate(s);
    let base: Vec<i32> = Program::new(s, Fixed::new(s)).bias;
    let mut rng = StimulusRng(11 + d as u64);
    let cond: Vec<i32> = base
        .iter()
        .map(|&b| b + rng.below(1 << 13) as i32 - (1 << 12))
        .collect();
    let new_w = perturbed(&compiled, &mut rng, spread);
    let mut sc = Script::new(s);
    let id0 = sc.req(&Request::Identify);
    // an all-units run long enough that the requests after it find slot 0 busy
    sc.req(&Request::SetConditioning {
        slot: 0,
        offset: 0,
        codes: cond.clone(),
    });
    let key = [3, 1, 4];
    sc.req(&run(0, 1500, 10, key, RUN_ALL_UNITS));
    sc.req(&run(1, 20, 3, [7, 7, 7], 0));
    // no weight changes while a slot is busy, but the codes held already are acknowledged
    let mut w3 = compiled.self_coef.clone();
    w3[1] = w3[1].wrapping_add(1);
    sc.err(&write(Space::SelfCoef, 0, &w3), ErrorCode::Busy);
    sc.req(&write(Space::SelfCoef, 0, &compiled.self_coef));
    // the same run with other flags is another run; unknown flags are bad parameters
    sc.err(&run(0, 1500, 10, key, 0), ErrorCode::Busy);
    sc.err(&run(0, 1500, 10, key, 2), ErrorCode::BadParameter);
    sc.err(&run(2, 5, 0, key, 3), ErrorCode::BadParameter);
    sc.req(&run(0, 1500, 10, key, RUN_ALL_UNITS));
    sc.wait();
    // every unit's sum; the readout-only run's readout units
    let ro_all = sc.req(&readout(0, 0, d as u16));
    sc.req(&readout(0, 3, d as u16 - 3));
    sc.err(&readout(0, 1, d as u16), ErrorCode::BadAddress);
    let ro_1 = sc.req(&readout(1, 0, r as u16));
    sc.err(&readout(1, 0, r as u16 + 1), ErrorCode::BadAddress);
    // weight reads and their errors
    let rd0 = read_all(&mut sc, &compiled);
    for (sp, addr, count, code) in [
        (6u8, 0u32, 1u16, ErrorCode::BadAddress),
        (3, d as u32, 1, ErrorCode::BadAddress),
        (3, 0, 600, ErrorCode::BadLength),
        (5, compiled.bus_gain.len() as u32, 1, ErrorCode::BadAddress),
        (2, 1 << 20, 1, ErrorCode::BadAddress),
    ] {
        let (kind, payload) = Request::ReadMem {
            space: Space::Bias,
            addr,
            count,
        }
        .encode();
        // the request with a raw space byte
        let mut p = payload;
        p[0] = sp;
        let i = sc.req_raw(kind, p);
        let w = decode(&sc.want[i]).remove(0);
        assert_eq!(w.2, vec![Opcode::ReadMem as u8, code as u8]);
    }
    // weight write errors: space 1, an odd byte count, past the end
    sc.err(&write(Space::State, 0, &[1]), ErrorCode::BadAddress);
    let (kind, mut p) = write(Space::BusFactor, 0, &[1, 2]).encode();
    p.pop();
    let i = sc.req_raw(kind, p);
    assert_eq!(
        decode(&sc.want[i]).remove(0).2,
        vec![Opcode::WriteMem as u8, ErrorCode::BadAddress as u8]
    );
    sc.err(
        &write(Space::Coupling, compiled.coupling.len() as u32 - 1, &[1, 2]),
        ErrorCode::BadAddress,
    );
    // new weights, read back, checksummed, used
    write_all(&mut sc, &new_w);
    let rd1 = read_all(&mut sc, &new_w);
    let id1 = sc.req(&Request::Identify);
    let id1b = sc.req(&Request::Identify);
    sc.req(&Request::SetConditioning {
        slot: 2,
        offset: 0,
        codes: cond.clone(),
    });
    sc.req(&run(2, 40, 5, key, RUN_ALL_UNITS));
    sc.req(&run(3, 40, 5, key, 0));
    sc.wait();
    let ro_new = sc.req(&readout(2, 0, d as u16));
    sc.req(&readout(3, 0, r as u16));
    sc.req(&Request::Status);
    // RESET: the compiled weights again
    sc.req(&Request::Reset);
    let id2 = sc.req(&Request::Identify);
    let rd2 = read_all(&mut sc, &compiled);
    sc.req(&Request::SetConditioning {
        slot: 0,
        offset: 0,
        codes: cond.clone(),
    });
    sc.req(&run(0, 40, 5, key, RUN_ALL_UNITS));
    sc.wait();
    let ro_back = sc.req(&readout(0, 0, d as u16));
    // the new weights written again, then the compiled ones by WRITE_MEM: the checksum follows
    write_all(&mut sc, &new_w);
    let id3 = sc.req(&Request::Identify);
    write_all(&mut sc, &compiled);
    let id4 = sc.req(&Request::Identify);
    let got = sc.run(s, &prog);

    // beside the model: the figures themselves
    let ident = |i: usize| Identity::decode(&got[i].2).expect("identity");
    assert_eq!(
        ident(id0).features,
        FEATURE_WEIGHTS | FEATURE_ALL_UNITS | FEATURE_RHO | FEATURE_READ_COUPLINGS,
        "features"
    );
    let (c0, c1) = (weight_checksum(&compiled), weight_checksum(&new_w));
    assert_ne!(c0, c1);
    for (i, c) in [
        (id0, c0),
        (id1, c1),
        (id1b, c1),
        (id2, c0),
        (id3, c1),
        (id4, c0),
    ] {
        assert_eq!(ident(i).weight_checksum, c, "IDENTIFY {i}");
    }
    let check_reads = |at: &[(Space, usize)], w: &Weights| {
        let mut back: Vec<(Space, Vec<i16>)> = Vec::new();
        for &(sp, i) in at {
            let codes = decode_i16s(&got[i].2).expect("codes");
            match back.last_mut() {
                Some((s, v)) if *s == sp => v.extend(codes),
                _ => back.push((sp, codes)),
            }
        }
        for (sp, v) in back {
            assert_eq!(v, w.space(sp).unwrap(), "READ_MEM of {sp:?}");
        }
    };
    check_reads(&rd0, &compiled);
    check_reads(&rd1, &new_w);
    check_reads(&rd2, &compiled);
    let want_all = Fixed::run_codes(s, &cond, key, 10, 1500, &all).sums;
    assert_eq!(sums_of(&got[ro_all].2), want_all, "all-units run");
    let ro = thermo_proto::readout_units(s);
    let compiled_cond = base.clone();
    let want_1 = Fixed::run_codes(s, &compiled_cond, [7, 7, 7], 3, 20, &ro).sums;
    assert_eq!(sums_of(&got[ro_1].2), want_1, "readout-units run");
    let mut p = Program::new(s, Fixed::new(s));
    new_w.apply(&mut p).expect("same structure");
    let want_new = Fixed::run_program(&p, &cond, key, 5, 40, &all).sums;
    assert_eq!(
        sums_of(&got[ro_new].2),
        want_new,
        "run with written weights"
    );
    let want_back = Fixed::run_codes(s, &cond, key, 5, 40, &all).sums;
    assert_eq!(sums_of(&got[ro_back].2), want_back, "run after RESET");
    assert_ne!(want_new, want_back, "the written weights change the result");
    eprintln!(
        "{name}: D={d} P={} R={r}, {} weight codes: {} requests answered as the board model; all-units sums, written weights (checksum {c1:#018x}), RESET's restore equal the fixed engine bit for bit",
        prog.p,
        prog.weights.len(),
        got.len()
    );
}

impl Script {
    /// Send a request given as opcode and raw payload (for malformed requests).
    fn req_raw(&mut self, kind: u8, payload: Vec<u8>) -> usize {
        let f = Frame {
            seq: self.seq,
            kind,
            payload,
        };
        let w = self.board.handle(&f).expect("the model answers");
        self.segs
            .last_mut()
            .unwrap()
            .extend(encode_frame(f.seq, f.kind, &f.payload));
        self.want.push(w);
        self.frames.push(f);
        self.seq = self.seq.wrapping_add(1);
        self.want.len() - 1
    }
}

/// The shipped example (4 lanes, a rank-2 bus).
#[test]
fn hdl_link_features_shipped_verilator() {
    features_case("shipped example", &shipped(), 40);
}

/// A saturating configuration on 3 lanes (not a power of two: the all-units copy's operand
/// mapping), with large weight changes.
#[test]
fn hdl_link_features_saturating_verilator() {
    let s = Substrate::from_config(&saturating_config(1)).expect("valid");
    features_case("saturating_config(1)", &s, 3000);
}

/// Without the weights feature (the small link of the iCEBreaker build): all-units runs, and
/// weight writes answer bad address as the model without `FEATURE_WEIGHTS`; READ_MEM of the
/// couplings answers their codes, and, in a build without the coupling ROM as well
/// (`read_couplings: false`, what `thermo bitstream --no-weights` builds), bad address as the
/// model without `FEATURE_READ_COUPLINGS`.
#[test]
fn hdl_link_features_small_link_verilator() {
    for (o, features) in [
        (
            LinkOptions::SMALL,
            FEATURE_ALL_UNITS | FEATURE_RHO | FEATURE_READ_COUPLINGS,
        ),
        (
            LinkOptions {
                read_couplings: false,
                ..LinkOptions::SMALL
            },
            FEATURE_ALL_UNITS | FEATURE_RHO,
        ),
    ] {
        small_link_case(o, features);
    }
}

fn small_link_case(o: LinkOptions, features: u8) {
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let id = identity_with(&s, &o);
    assert_eq!(id.features, features);
    let d = prog.d;
    let mut board = Board::with_features(s.clone(), id.features);
    let compiled = Weights::of_substrate(&s);
    let reqs = [
        write(Space::SelfCoef, 0, &compiled.self_coef[..4]),
        write(Space::Coupling, 0, &compiled.coupling[..4]),
        Request::ReadMem {
            space: Space::BusGain,
            addr: 0,
            count: 1,
        },
        Request::ReadMem {
            space: Space::Coupling,
            addr: 1,
            count: 3,
        },
        run(1, 30, 2, [1, 2, 3], RUN_ALL_UNITS),
    ];
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for (i, r) in reqs.iter().enumerate() {
        let (kind, payload) = r.encode();
        let f = Frame {
            seq: i as u8 + 1,
            kind,
            payload,
        };
        bytes.extend(encode_frame(f.seq, f.kind, &f.payload));
        want.push(board.handle(&f).unwrap());
    }
    board.run_queued();
    let (kind, payload) = readout(1, 0, d as u16).encode();
    let f = Frame {
        seq: reqs.len() as u8 + 1,
        kind,
        payload,
    };
    let mut seg2 = Vec::new();
    seg2.extend(encode_frame(f.seq, f.kind, &f.payload));
    want.push(board.handle(&f).unwrap());
    let (out, _) =
        link_top_verilator_segments(&s, &prog, &o, CLOCK, BAUD, &[bytes, seg2]).expect("verilator");
    let got = decode(&out);
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(*g, decode(w).remove(0));
    }
    assert_eq!(
        got[0].2,
        vec![Opcode::WriteMem as u8, ErrorCode::BadAddress as u8]
    );
    let bad_read = vec![Opcode::ReadMem as u8, ErrorCode::BadAddress as u8];
    assert_eq!(got[3].2 == bad_read, features & FEATURE_READ_COUPLINGS == 0);
    let all: Vec<usize> = (0..d).collect();
    let base = Program::new(&s, Fixed::new(&s)).bias;
    assert_eq!(
        sums_of(&got.last().unwrap().2),
        Fixed::run_codes(&s, &base, [1, 2, 3], 2, 30, &all).sums
    );
}

/// RUN with `RUN_RHO` on a clamped configuration whose states leave the clamp range: every
/// unit's and the readout units' sums of `rho(x)` equal `Fixed::run_observed` with
/// `Observe::Activation` bit for bit (and differ from the sums of `x`); a plain RUN after a rho
/// run sums `x` again; the same run with other flags is another run (busy); unknown flag bits
/// are bad parameters. Every reply equals the board model's.
fn rho_case(name: &str, s: &Substrate) {
    let prog = HwProgram::new(s).expect("compile");
    let (d, r) = (prog.d, thermo_proto::readout_units(s).len());
    let all: Vec<usize> = (0..d).collect();
    let ro = thermo_proto::readout_units(s);
    let base: Vec<i32> = Program::new(s, Fixed::new(s)).bias;
    let mut rng = StimulusRng(29 + d as u64);
    let cond: Vec<i32> = base
        .iter()
        .map(|&b| b + rng.below(1 << 13) as i32 - (1 << 12))
        .collect();
    let mut sc = Script::new(s);
    let id = sc.req(&Request::Identify);
    let key = [5, 9, 2];
    for slot in [0u8, 2] {
        sc.req(&Request::SetConditioning {
            slot,
            offset: 0,
            codes: cond.clone(),
        });
    }
    sc.req(&run(0, 300, 9, key, RUN_RHO | RUN_ALL_UNITS));
    sc.req(&run(1, 40, 3, [8, 1, 8], RUN_RHO));
    sc.req(&run(2, 300, 9, key, RUN_ALL_UNITS));
    sc.err(&run(0, 300, 9, key, RUN_ALL_UNITS), ErrorCode::Busy);
    sc.err(&run(3, 5, 0, key, RUN_RHO | 2), ErrorCode::BadParameter);
    sc.err(&run(3, 5, 0, key, RUN_RHO | 8), ErrorCode::BadParameter);
    sc.req(&run(0, 300, 9, key, RUN_RHO | RUN_ALL_UNITS));
    sc.wait();
    let rho_all = sc.req(&readout(0, 0, d as u16));
    let rho_ro = sc.req(&readout(1, 0, r as u16));
    let x_all = sc.req(&readout(2, 0, d as u16));
    sc.req(&Request::Status);
    let got = sc.run(s, &prog);
    let features = Identity::decode(&got[id].2).expect("identity").features;
    assert_eq!(features & FEATURE_RHO, FEATURE_RHO, "features {features}");
    let p = Program::new(s, Fixed::new(s));
    let rho = |cond: &[i32], key, burn_in, sweeps, units: &[usize]| {
        Fixed::run_observed(&p, cond, key, burn_in, sweeps, units, Observe::Activation).sums
    };
    let want_rho = rho(&cond, key, 9, 300, &all);
    assert_eq!(
        sums_of(&got[rho_all].2),
        want_rho,
        "{name}: rho, every unit"
    );
    assert_eq!(
        sums_of(&got[rho_ro].2),
        rho(&base, [8, 1, 8], 3, 40, &ro),
        "{name}: rho, readout units"
    );
    let want_x = Fixed::run_codes(s, &cond, key, 9, 300, &all).sums;
    assert_eq!(sums_of(&got[x_all].2), want_x, "{name}: x after a rho run");
    assert_ne!(
        want_rho, want_x,
        "{name}: the clamp acts on the summed states"
    );
    eprintln!(
        "{name}: D={d} P={} R={r}: RUN_RHO sums equal Fixed::run_observed(Observe::Activation) bit for bit; {} requests answered as the board model",
        prog.p,
        got.len()
    );
}

/// The rho readout on two clamped saturating configurations (3 and 2 lanes).
#[test]
fn hdl_link_rho_saturating_verilator() {
    for n in [1, 3] {
        let s = Substrate::from_config(&saturating_config(n)).expect("valid");
        rho_case(&format!("saturating_config({n})"), &s);
    }
}
