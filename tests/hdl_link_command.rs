//! Command unit of the host link in Verilator (`thermo_hdl::command::LinkCore`: frame
//! receiver + command unit + frame transmitter, with a mock substrate port), on the shipped
//! example: request frames built by `thermo_proto` get replies, decoded by `FrameDecoder`, equal
//! to the protocol's encodings (IDENTIFY = `Identity` of the design, STATUS from the port's
//! counters and the link's, WRITE_MEM/READ_MEM of the biases, the emulator's error codes); the
//! port sees exactly the expected bias writes; the sequence-number rule (re-execution of a
//! repeat, drop of a stale request) and RESET hold.

use thermo_hdl::command::{
    bias_port_addr, identity, link_core_verilator, link_top_verilator, mock_port_value,
};
use thermo_hdl::program::HwProgram;
use thermo_proto::{encode_frame, ErrorCode, FrameDecoder, Opcode, Status, ERROR_KIND};
use thermo_workspace_tests::shipped_example;

fn req(seq: u8, op: u8, payload: &[u8]) -> Vec<u8> {
    encode_frame(seq, op, payload)
}

fn write_mem(addr: u32, words: &[i32]) -> Vec<u8> {
    let mut p = vec![0u8];
    p.extend(addr.to_le_bytes());
    for w in words {
        p.extend(w.to_le_bytes());
    }
    p
}

fn read_mem(space: u8, addr: u32, count: u16) -> Vec<u8> {
    let mut p = vec![space];
    p.extend(addr.to_le_bytes());
    p.extend(count.to_le_bytes());
    p
}

fn words(b: &[i32]) -> Vec<u8> {
    b.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn hdl_link_command_verilator() {
    let _serial = serial();
    let s = shipped_example();
    let prog = HwProgram::new(&s).expect("compile");
    let d = prog.d;
    let init: Vec<i32> = (0..d)
        .map(|i| prog.lanes[i % prog.p].bias[i / prog.p] as i32)
        .collect();
    let mut stream = Vec::new();
    let mut want: Vec<(u8, u8, Vec<u8>)> = Vec::new();
    let err = |op: u8, c: ErrorCode| vec![op, c as u8];
    // status of the mock port with the link counters given
    let status = |crc: u32, framing: u32, replays: u32| {
        let v = |a: u32| mock_port_value(a) as u64;
        let mut st = Status {
            sweeps: v(1),
            crc_errors: crc,
            framing_errors: framing,
            replays,
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
        st.encode()
    };
    let id = Opcode::Identify as u8;
    let wm = Opcode::WriteMem as u8;
    let rm = Opcode::ReadMem as u8;
    let stt = Opcode::Status as u8;
    let rst = Opcode::Reset as u8;
    let rk = |op: u8| op | 0x80;

    // garbage and a frame with a CRC error first: counted
    stream.extend([5, 6, 7, 0]);
    let mut bad = req(3, id, &[]);
    bad[2] ^= 0x01;
    stream.extend(bad);
    stream.extend(req(10, id, &[]));
    want.push((10, rk(id), identity(&s).encode()));
    stream.extend(req(11, stt, &[]));
    want.push((11, rk(stt), status(1, 1, 0)));
    let new: Vec<i32> = vec![-7, 123_456, i32::MIN, i32::MAX, 0x0102_0304];
    stream.extend(req(12, wm, &write_mem(1, &new)));
    want.push((12, rk(wm), 5u32.to_le_bytes().to_vec()));
    let mut biases = init.clone();
    biases[1..6].copy_from_slice(&new);
    stream.extend(req(13, rm, &read_mem(0, 0, d as u16)));
    want.push((13, rk(rm), words(&biases)));
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
        (
            Opcode::SetConditioning as u8,
            vec![0, 0, 0],
            err(4, ErrorCode::UnknownCommand),
        ),
        (0x42, vec![], err(0x42, ErrorCode::UnknownCommand)),
    ];
    let mut seq = 14u8;
    for (op, p, reply) in cases {
        stream.extend(req(seq, op, &p));
        let kind = if reply.len() == 2 && reply[0] == op && op != rm {
            ERROR_KIND
        } else if op == rm && p.len() == 7 && p[0] == 1 {
            rk(rm)
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
    want.push((after, rk(stt), status(1, 1, 1)));
    // RESET restores the biases, clears counters; the next seq is expected
    stream.extend(req(after + 1, rst, &[]));
    want.push((after + 1, rk(rst), vec![]));
    stream.extend(req(after + 2, rm, &read_mem(0, 0, d as u16)));
    want.push((after + 2, rk(rm), words(&init)));
    stream.extend(req(after + 3, stt, &[]));
    want.push((after + 3, rk(stt), status(0, 0, 0)));

    let o = link_core_verilator(&s, &prog, &stream, 1).expect("verilator");
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
    // port writes: the five biases, then RESET's full restore and the counter clear
    let mut pw: Vec<(u32, u32)> = (1..6)
        .map(|i| (bias_port_addr(&prog, i), new[i - 1] as u32))
        .collect();
    pw.extend((0..d).map(|i| (bias_port_addr(&prog, i), init[i] as u32)));
    pw.push((0, thermo_hdl::top::ctrl_bits::CLEAR));
    assert_eq!(o.writes, pw, "port writes");
    eprintln!(
        "command unit in Verilator: {} replies equal to the protocol's encodings (one stale request dropped), {} port writes as expected; receiver counters (frames, CRC, framing, overruns) {:?}",
        got.len(),
        o.writes.len(),
        o.counters
    );
}

/// The whole board design in Verilator: requests pushed bit by bit through the UART `rx` pin
/// at 25 MHz / 3 Mbaud (8.33 clocks a bit) reach the command unit and the real substrate top,
/// and the replies decoded from the `tx` pin are the protocol's.
#[test]
fn hdl_link_top_uart_pins_verilator() {
    let s = shipped_example();
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
    want.push((2, 0x82, 3u32.to_le_bytes().to_vec()));
    let mut b = init.clone();
    b[..3].copy_from_slice(&new);
    stream.extend(req(3, Opcode::ReadMem as u8, &read_mem(0, 0, d as u16)));
    want.push((3, 0x83, words(&b)));
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
    let s = shipped_example();
    let prog = HwProgram::new(&s).expect("compile");
    let v = thermo_hdl::command::link_core_verilog(&s, &prog).expect("LinkCore checks");
    if let Some(dir) = std::env::var_os("THERMO_LINK_VERILOG") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).expect("create dir");
        std::fs::write(dir.join("link_core.v"), v).expect("write");
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What the RTL command unit answers (the emulator's rules for the commands it implements).
struct Model {
    init: Vec<i32>,
    bias: Vec<i32>,
    replays: u32,
    status0: Vec<u8>,
}

impl Model {
    fn status(&self) -> Vec<u8> {
        let mut st = Status::decode(&self.status0).expect("status");
        st.replays = self.replays;
        st.encode()
    }
    fn exec(&mut self, op: u8, p: &[u8], ident: &[u8]) -> (u8, Vec<u8>) {
        let d = self.bias.len() as u64;
        let e = |c: ErrorCode| (ERROR_KIND, vec![op, c as u8]);
        let u32at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]) as u64;
        match Opcode::from_u8(op) {
            Some(Opcode::Identify) => (op | 0x80, ident.to_vec()),
            Some(Opcode::Status) => (op | 0x80, self.status()),
            Some(Opcode::Reset) => {
                self.bias = self.init.clone();
                self.replays = 0;
                (op | 0x80, vec![])
            }
            Some(Opcode::WriteMem) => {
                if p.len() < 5 {
                    return e(ErrorCode::BadLength);
                }
                let (addr, data) = (u32at(1), &p[5..]);
                if p[0] != 0 || data.len() % 4 != 0 || addr + (data.len() / 4) as u64 > d {
                    return e(ErrorCode::BadAddress);
                }
                for (k, c) in data.chunks(4).enumerate() {
                    self.bias[addr as usize + k] = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
                (op | 0x80, ((data.len() / 4) as u32).to_le_bytes().to_vec())
            }
            Some(Opcode::ReadMem) => {
                if p.len() != 7 {
                    return e(ErrorCode::BadLength);
                }
                let (addr, count) = (u32at(1), u16::from_le_bytes([p[5], p[6]]) as u64);
                let width = match p[0] {
                    0 => 4,
                    1 | 2 => 2,
                    _ => return e(ErrorCode::BadAddress),
                };
                if count * width > thermo_proto::MAX_PAYLOAD as u64 {
                    return e(ErrorCode::BadLength);
                }
                if p[0] == 2 || addr + count > d {
                    return e(ErrorCode::BadAddress);
                }
                if p[0] == 1 {
                    return (op | 0x80, vec![0; 2 * count as usize]);
                }
                let a = addr as usize;
                (op | 0x80, words(&self.bias[a..a + count as usize]))
            }
            _ => e(ErrorCode::UnknownCommand),
        }
    }
}

/// Random request streams (every opcode and unknown ones, random lengths, addresses, counts,
/// spaces, repeats of the previous request) through `LinkCore`: every request is answered
/// exactly as a model with the emulator's rules answers it, in order — the command unit never
/// hangs or skips a request.
#[test]
fn hdl_link_command_random_requests_verilator() {
    let _serial = serial();
    let s = shipped_example();
    let prog = HwProgram::new(&s).expect("compile");
    let d = prog.d as u64;
    let init: Vec<i32> = (0..prog.d)
        .map(|i| prog.lanes[i % prog.p].bias[i / prog.p] as i32)
        .collect();
    let ident = identity(&s).encode();
    let status0 = {
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
        st.encode()
    };
    let mut m = Model {
        init: init.clone(),
        bias: init,
        replays: 0,
        status0,
    };
    let mut rng = Rng(2024);
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
                m.replays += 1; // IDENTIFY is always executed afresh
            }
            let (k, r) = m.exec(op, &p, &ident);
            want.push((seq.wrapping_sub(1), k, r));
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
            let mut p = vec![space];
            p.extend(addr.to_le_bytes());
            for _ in 0..n {
                p.extend((rng.next() as u32).to_le_bytes());
            }
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
        let (k, r) = m.exec(op, &p, &ident);
        want.push((seq, k, r));
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

/// Tests of this file that build the same Verilator model run one at a time (the build cache
/// directory of a model is shared).
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    BUILD.lock().unwrap_or_else(|e| e.into_inner())
}
