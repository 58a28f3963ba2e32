//! Framing layer of the host link in Verilator (the generated Verilog of
//! `thermo_hdl::link::framing::FramePair`), against `thermo_proto`:
//!
//! * fuzz of the frame receiver: random streams of valid frames, bit-flipped, shortened,
//!   lengthened, truncated (no delimiter), overlong, wrong-version, wrong-length, too-short and
//!   bad-COBS frames, garbage and spare delimiters, fed one byte per clock or with random gaps,
//!   with the consumer pausing the input or reading concurrently. The frames read out equal
//!   `FrameDecoder`'s accepted frames on the same stream, which equal exactly the valid frames
//!   that start after a delimiter (so after garbage a valid frame is always accepted and no
//!   corrupted frame ever is), and the counters equal `DecoderStats`;
//! * ring overrun: with no consumer the ring fills and good frames are counted as overruns
//!   exactly as a model of the ring predicts;
//! * transmitter: random frames under random back-pressure come out equal to `encode_frame`
//!   byte for byte, are accepted by `FrameDecoder`, and the RTL receiver reads them back.

use thermo_hdl::harness::framing::{frame_verilator, FrameCmd, FrameHarnessOpts};
use thermo_hdl::link::framing::RxFrame;
use thermo_proto::crc::crc32;
use thermo_proto::{cobs, encode_frame, FrameDecoder, MAX_PAYLOAD, MAX_WIRE_FRAME, VERSION};
use thermo_sim::example::StimulusRng;

fn payload(rng: &mut StimulusRng) -> Vec<u8> {
    let len = match rng.below(10) {
        0..=5 => rng.below(64) as usize,
        6..=7 => rng.below(600) as usize,
        8 => {
            // lengths that put a COBS block boundary at the end of the body
            let k = 1 + rng.below(4) as usize;
            (254 * k)
                .saturating_sub(9 + 1 - rng.below(3) as usize)
                .min(MAX_PAYLOAD)
        }
        _ => MAX_PAYLOAD - rng.below(8) as usize,
    };
    let zeros = rng.below(4);
    (0..len)
        .map(|_| match zeros {
            0 => 0,
            1 => rng.byte() | 1,
            2 => {
                if rng.below(8) == 0 {
                    0
                } else {
                    rng.byte()
                }
            }
            _ => rng.byte(),
        })
        .collect()
}

/// A frame with an arbitrary version and length field but a correct CRC.
fn raw_frame(version: u8, seq: u8, kind: u8, len_field: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = vec![version, seq, kind];
    body.extend(len_field.to_le_bytes());
    body.extend_from_slice(payload);
    let c = crc32(&body);
    body.extend(c.to_le_bytes());
    let mut out = Vec::new();
    cobs::encode(&body, &mut out);
    out.push(0);
    out
}

/// A random stream and the valid frames in it that start right after a delimiter.
fn fuzz_stream(rng: &mut StimulusRng, target: usize) -> (Vec<u8>, Vec<RxFrame>, usize) {
    let mut s: Vec<u8> = Vec::new();
    let mut clean = Vec::new();
    let mut segments = 0;
    while s.len() < target {
        segments += 1;
        let after_delim = matches!(s.last(), None | Some(0));
        match rng.below(20) {
            0..=8 => {
                let (q, k, p) = (rng.byte(), rng.byte(), payload(rng));
                s.extend(encode_frame(q, k, &p));
                if after_delim {
                    clean.push(RxFrame {
                        seq: q,
                        kind: k,
                        payload: p,
                    });
                }
            }
            9..=11 => {
                // corrupted: bit flips, a dropped, inserted or duplicated byte
                let mut f = encode_frame(rng.byte(), rng.byte(), &payload(rng));
                f.pop();
                let n = f.len();
                match rng.below(4) {
                    0 => {
                        // 1..3 distinct bits (two flips of one bit would cancel)
                        let mut flips: Vec<(usize, u64)> = Vec::new();
                        for _ in 0..1 + rng.below(3) {
                            let fl = (rng.below(n as u64) as usize, rng.below(8));
                            if !flips.contains(&fl) {
                                flips.push(fl);
                                f[fl.0] ^= 1 << fl.1;
                            }
                        }
                    }
                    1 => {
                        f.remove(rng.below(n as u64) as usize);
                    }
                    // (a non-zero byte: a zero at either end would leave the frame intact)
                    2 => f.insert(rng.below(n as u64 + 1) as usize, rng.byte() | 1),
                    _ => {
                        let i = rng.below(n as u64) as usize;
                        f.insert(i, f[i]);
                    }
                }
                s.extend(f);
                s.push(0);
            }
            12 => {
                // truncated: no delimiter, the next segment is glued to it
                let f = encode_frame(rng.byte(), rng.byte(), &payload(rng));
                // at least the delimiter and the last byte are missing
                let cut = 1 + rng.below(f.len() as u64 - 2) as usize;
                s.extend_from_slice(&f[..cut]);
            }
            13 => {
                // garbage, sometimes with zeros
                let n = 1 + rng.below(400) as usize;
                let dense = rng.below(2) == 0;
                for _ in 0..n {
                    let b = rng.byte();
                    s.push(if dense && b < 8 { 0 } else { b });
                }
            }
            14 => {
                // overlong, or exactly at the limit
                let n = match rng.below(3) {
                    0 => MAX_WIRE_FRAME,
                    1 => MAX_WIRE_FRAME + 1,
                    _ => MAX_WIRE_FRAME + 1 + rng.below(600) as usize,
                };
                s.extend((0..n).map(|_| rng.byte() | 0x80));
                s.push(0);
            }
            15 => {
                let p = payload(rng);
                let v = VERSION.wrapping_add(1 + rng.below(255) as u8);
                s.extend(raw_frame(v, rng.byte(), rng.byte(), p.len() as u16, &p));
            }
            16 => {
                let p = payload(rng);
                let bad = match rng.below(3) {
                    0 => p.len() as u16 + 1 + rng.below(4) as u16,
                    1 => (p.len() as u16).wrapping_sub(1 + rng.below(4) as u16),
                    _ => 0xFFFF - rng.below(1000) as u16,
                };
                s.extend(raw_frame(VERSION, rng.byte(), rng.byte(), bad, &p));
            }
            17 => {
                // too short for a header and CRC
                let body: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.byte()).collect();
                cobs::encode(&body, &mut s);
                s.push(0);
            }
            18 => {
                // COBS block running into the delimiter
                let code = 3 + rng.below(250) as u8;
                s.push(code);
                for _ in 0..rng.below(code as u64 - 1) {
                    s.push(rng.byte() | 1);
                }
                s.push(0);
            }
            _ => {
                let n = 1 + rng.below(3) as usize;
                s.resize(s.len() + n, 0);
            }
        }
    }
    // end clean so the last frame is closed
    s.push(0);
    (s, clean, segments)
}

fn feed_cmds(stream: &[u8]) -> Vec<FrameCmd> {
    stream
        .chunks(1 << 16)
        .map(|c| FrameCmd::Feed(c.to_vec()))
        .collect()
}

fn decoder_frames(stream: &[u8]) -> (Vec<RxFrame>, [u64; 3]) {
    let mut d = FrameDecoder::new();
    let f = d
        .push(stream)
        .into_iter()
        .filter_map(Result::ok)
        .map(|f| RxFrame {
            seq: f.seq,
            kind: f.kind,
            payload: f.payload,
        })
        .collect();
    (
        f,
        [d.stats.frames, d.stats.crc_errors, d.stats.framing_errors],
    )
}

#[test]
fn hdl_link_frame_rx_fuzz_verilator() {
    let _serial = serial();
    let runs = [
        (1u64, true, 0u32, 0u64, 4_000_000usize),
        (2, false, 3, 99, 3_000_000),
        (3, false, 0, 0, 4_000_000),
    ];
    let (mut bytes, mut frames, mut segs, mut cycles) = (0usize, 0u64, 0usize, 0u64);
    let mut errs = [0u64; 3];
    for (seed, pause, gap, hseed, size) in runs {
        let mut rng = StimulusRng(seed);
        let (stream, clean, nseg) = fuzz_stream(&mut rng, size);
        let (want, stats) = decoder_frames(&stream);
        let o = frame_verilator(
            &feed_cmds(&stream),
            FrameHarnessOpts {
                pause,
                gap,
                seed: hseed,
                ready_pct: 100,
                drain: true,
            },
        )
        .expect("verilator");
        assert_eq!(
            o.frames.len(),
            want.len(),
            "run {seed}: frames read vs FrameDecoder"
        );
        for (i, (a, b)) in o.frames.iter().zip(&want).enumerate() {
            assert!(a == b, "run {seed}: frame {i} differs from FrameDecoder's");
        }
        if want != clean {
            let k = want.iter().zip(&clean).take_while(|(a, b)| a == b).count();
            let show = |f: Option<&RxFrame>| f.map(|f| (f.seq, f.kind, f.payload.len()));
            eprintln!(
                "run {seed}: {} accepted, {} clean; first difference at {k}: accepted {:?}, clean {:?}",
                want.len(),
                clean.len(),
                show(want.get(k)),
                show(clean.get(k))
            );
        }
        assert!(
            want == clean,
            "run {seed}: the accepted frames are exactly the valid frames after a delimiter"
        );
        assert_eq!(
            o.counters,
            [stats[0], stats[1], stats[2], 0],
            "run {seed}: counters (frames, crc, framing, overruns) vs DecoderStats"
        );
        assert!(stats[1] > 0 && stats[2] > 0);
        bytes += stream.len();
        frames += stats.iter().sum::<u64>();
        segs += nseg;
        cycles += o.cycles;
        for k in 0..3 {
            errs[k] += stats[k];
        }
        eprintln!(
            "frame rx fuzz run {seed} (pause {pause}, gap {gap}{}): {} bytes, {} segments, {} cycles; accepted {}, CRC errors {}, framing errors {}: equal to FrameDecoder",
            if hseed != 0 { " random" } else { "" },
            stream.len(),
            nseg,
            o.cycles,
            stats[0],
            stats[1],
            stats[2]
        );
    }
    eprintln!(
        "frame rx fuzz in Verilator: {bytes} bytes, {segs} segments, {frames} frames classified ({} accepted, {} CRC errors, {} framing errors), {cycles} cycles; no divergence from FrameDecoder",
        errs[0], errs[1], errs[2]
    );
}

#[test]
fn hdl_link_frame_rx_overrun_verilator() {
    let _serial = serial();
    let mut rng = StimulusRng(9);
    let mut stream = Vec::new();
    let mut lens = Vec::new();
    for i in 0..40 {
        let len = if i < 5 {
            MAX_PAYLOAD
        } else {
            rng.below(200) as usize
        };
        let p: Vec<u8> = (0..len).map(|_| rng.byte()).collect();
        stream.extend(encode_frame(i as u8, 2, &p));
        lens.push(len);
        if i % 7 == 3 {
            stream.extend([0x11, 0x22, 0]);
        }
    }
    // model of the ring: a frame is kept iff its 8 + len written bytes fit the free part
    let (mut used, mut kept, mut over) = (0usize, 0u64, 0u64);
    for len in &lens {
        if 8 + len <= 4096 - used {
            used += 4 + len;
            kept += 1;
        } else {
            over += 1;
        }
    }
    let (_, stats) = decoder_frames(&stream);
    let o = frame_verilator(
        &feed_cmds(&stream),
        FrameHarnessOpts {
            pause: false,
            gap: 0,
            seed: 0,
            ready_pct: 100,
            drain: false,
        },
    )
    .expect("verilator");
    assert!(over > 0);
    assert_eq!(o.counters, [kept, stats[1], stats[2], over]);
    eprintln!(
        "ring overrun: {kept} frames kept, {over} counted as overruns, as the ring model predicts"
    );
}

#[test]
fn hdl_link_frame_tx_verilator() {
    let _serial = serial();
    let mut rng = StimulusRng(17);
    let mut cmds = Vec::new();
    let mut frames = Vec::new();
    for _ in 0..1500 {
        let (q, k, p) = (rng.byte(), rng.byte(), payload(&mut rng));
        cmds.push(FrameCmd::Send(q, k, p.clone()));
        frames.push((q, k, p));
    }
    let o = frame_verilator(
        &cmds,
        FrameHarnessOpts {
            pause: false,
            gap: 0,
            seed: 5,
            ready_pct: 40,
            drain: true,
        },
    )
    .expect("verilator");
    assert_eq!(o.sent.len(), frames.len());
    let mut wire = Vec::new();
    for (i, ((q, k, p), got)) in frames.iter().zip(&o.sent).enumerate() {
        assert!(
            *got == encode_frame(*q, *k, p),
            "frame {i} (len {}) differs from encode_frame",
            p.len()
        );
        wire.extend_from_slice(got);
    }
    let (dec, stats) = decoder_frames(&wire);
    assert_eq!(stats, [frames.len() as u64, 0, 0]);
    // and the RTL receiver reads the RTL transmitter's frames back
    let back = frame_verilator(
        &feed_cmds(&wire),
        FrameHarnessOpts {
            pause: false,
            gap: 1,
            seed: 0,
            ready_pct: 100,
            drain: true,
        },
    )
    .expect("verilator");
    assert!(back.frames == dec);
    assert_eq!(back.counters, [frames.len() as u64, 0, 0, 0]);
    eprintln!(
        "frame tx in Verilator: {} frames ({} bytes on the wire) under 40% ready equal to encode_frame, accepted by FrameDecoder and by the RTL receiver",
        frames.len(),
        wire.len()
    );
}

/// Tests of this file that build the same Verilator model run one at a time (the build cache
/// directory of a model is shared).
static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    BUILD.lock().unwrap_or_else(|e| e.into_inner())
}
