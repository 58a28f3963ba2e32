//! Frames: building, and a streaming decoder that resynchronises after garbage, truncation or
//! corruption and never yields a frame whose CRC does not match.

use crate::{cobs, crc::crc32, MAX_PAYLOAD, MAX_WIRE_FRAME, OVERHEAD, VERSION};

/// A checked frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Sequence number (echoed by the reply).
    pub seq: u8,
    /// Request opcode, `opcode | 0x80` for a reply, `0xFF` for an error reply.
    pub kind: u8,
    /// Payload (at most [`MAX_PAYLOAD`] bytes).
    pub payload: Vec<u8>,
}

/// Encode a frame for the wire: `COBS(body) 0x00`.
pub fn encode_frame(seq: u8, kind: u8, payload: &[u8]) -> Vec<u8> {
    assert!(
        payload.len() <= MAX_PAYLOAD,
        "payload of {} bytes exceeds MAX_PAYLOAD",
        payload.len()
    );
    let mut body = Vec::with_capacity(payload.len() + OVERHEAD);
    body.push(VERSION);
    body.push(seq);
    body.push(kind);
    body.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    body.extend_from_slice(payload);
    let c = crc32(&body);
    body.extend_from_slice(&c.to_le_bytes());
    let mut out = Vec::with_capacity(body.len() + body.len() / 254 + 2);
    cobs::encode(&body, &mut out);
    out.push(0);
    out
}

/// Why bytes between two delimiters were not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes than the largest frame before a delimiter.
    Overlong,
    /// Not valid COBS.
    Cobs,
    /// Too short, or the length field disagrees with the size.
    Length,
    /// CRC mismatch.
    Crc,
    /// Unknown protocol version.
    Version,
}

/// Counters of what the decoder threw away.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecoderStats {
    /// Frames accepted.
    pub frames: u64,
    /// Frames with a CRC mismatch.
    pub crc_errors: u64,
    /// Frames with bad COBS, length or version, or overlong.
    pub framing_errors: u64,
}

/// Streaming decoder: push bytes, collect frames.
#[derive(Clone, Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    overlong: bool,
    /// What was accepted and dropped so far.
    pub stats: DecoderStats,
}

impl FrameDecoder {
    /// A decoder with an empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the frames completed by them, in order, and the errors met.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Result<Frame, FrameError>> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == 0 {
                if self.overlong {
                    self.overlong = false;
                    self.stats.framing_errors += 1;
                    out.push(Err(FrameError::Overlong));
                } else if !self.buf.is_empty() {
                    let r = Self::check(&self.buf);
                    match &r {
                        Ok(_) => self.stats.frames += 1,
                        Err(FrameError::Crc) => self.stats.crc_errors += 1,
                        Err(_) => self.stats.framing_errors += 1,
                    }
                    out.push(r);
                }
                self.buf.clear();
            } else if !self.overlong {
                if self.buf.len() >= MAX_WIRE_FRAME {
                    // Resynchronise at the next delimiter.
                    self.overlong = true;
                    self.buf.clear();
                } else {
                    self.buf.push(b);
                }
            }
        }
        out
    }

    /// Drop a partial frame (after a time-out or a reconnect).
    pub fn reset(&mut self) {
        self.buf.clear();
        self.overlong = false;
    }

    fn check(enc: &[u8]) -> Result<Frame, FrameError> {
        let body = cobs::decode(enc).ok_or(FrameError::Cobs)?;
        if body.len() < OVERHEAD {
            return Err(FrameError::Length);
        }
        let n = body.len() - 4;
        let want = u32::from_le_bytes([body[n], body[n + 1], body[n + 2], body[n + 3]]);
        if crc32(&body[..n]) != want {
            return Err(FrameError::Crc);
        }
        if body[0] != VERSION {
            return Err(FrameError::Version);
        }
        let len = u16::from_le_bytes([body[3], body[4]]) as usize;
        if len != n - 5 || len > MAX_PAYLOAD {
            return Err(FrameError::Length);
        }
        Ok(Frame {
            seq: body[1],
            kind: body[2],
            payload: body[5..n].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_skipped() {
        let mut wire = vec![1, 2, 3]; // garbage before the first delimiter
        wire.push(0);
        wire.extend(encode_frame(7, 0x01, &[]));
        wire.extend([5, 5, 5]); // truncated frame (no delimiter), then a good one
        wire.extend(encode_frame(8, 0x02, &[0, 1, 2, 0, 255]));
        let mut d = FrameDecoder::new();
        let got: Vec<_> = d.push(&wire);
        let frames: Vec<Frame> = got.into_iter().filter_map(Result::ok).collect();
        assert_eq!(
            frames.len(),
            1 + 0,
            "the truncated frame swallows the next one's bytes"
        );
        assert_eq!(frames[0].seq, 7);
        // The frame after the truncation is lost (its start was glued to garbage), but the
        // decoder is in sync again for the following one.
        let f = encode_frame(9, 0x03, &[9; 300]);
        let frames: Vec<Frame> = d.push(&f).into_iter().filter_map(Result::ok).collect();
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].payload, vec![9; 300]);
    }

    #[test]
    fn overlong_input_resynchronises() {
        let mut d = FrameDecoder::new();
        let junk = vec![0x55u8; MAX_WIRE_FRAME * 3];
        assert!(d.push(&junk).is_empty());
        let r = d.push(&[0]);
        assert_eq!(r, vec![Err(FrameError::Overlong)]);
        let ok: Vec<_> = d
            .push(&encode_frame(1, 1, b"hi"))
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        assert_eq!(ok.len(), 1);
    }
}
