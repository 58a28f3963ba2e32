//! Requests as typed values: one [`Request`] per opcode, encoded to and decoded from a frame's
//! `(kind, payload)`, and the little-endian word lists of the replies. Nothing outside this crate
//! builds or parses a payload by hand.

use crate::message::{ErrorCode, Opcode, RunRequest, Space};

/// WRITE_MEM header before the data: `space:u8, addr:u32`.
pub const WRITE_MEM_HEADER: usize = 5;
/// READ_MEM payload: `space:u8, addr:u32, count:u16`.
pub const READ_MEM_LEN: usize = 7;
/// SET_CONDITIONING header before the codes: `slot:u8, offset:u16`.
pub const SET_CONDITIONING_HEADER: usize = 3;
/// RUN payload: `slot:u8, sweeps:u32, burn_in:u32, key: u32 x 3, flags:u8`.
pub const RUN_LEN: usize = 22;
/// READOUT payload: `slot:u8, offset:u16, count:u16`.
pub const READOUT_LEN: usize = 5;
/// READOUT reply header before the sums: `state:u8, sweeps:u32`.
pub const READOUT_REPLY_HEADER: usize = 5;
/// IDENTIFY reply payload.
pub const IDENTITY_LEN: usize = 32;
/// STATUS reply payload: four u64 and four u32 counters.
pub const STATUS_LEN: usize = 48;
/// Bytes of one conditioning code, bias word or readout sum (i32).
pub const WORD: usize = 4;

/// One request of the protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Who are you: version, design hash, sizes.
    Identify,
    /// Write elements into a memory space from element `addr`, each in the space's width
    /// ([`Space::width`]: i32 for the biases, i16 for the weight spaces, whose values must fit
    /// i16). The default biases (space 0) are writable on every board, the weight spaces 2..=5
    /// on a board with [`crate::FEATURE_WEIGHTS`]; anything else is refused with bad address.
    WriteMem {
        /// Memory space.
        space: Space,
        /// First element.
        addr: u32,
        /// The words.
        words: Vec<i32>,
    },
    /// Read `count` elements of a memory space from element `addr`.
    ReadMem {
        /// Memory space.
        space: Space,
        /// First element.
        addr: u32,
        /// Elements.
        count: u16,
    },
    /// Load `codes` into a slot's conditioning vector from unit `offset`.
    SetConditioning {
        /// Slot.
        slot: u8,
        /// First unit.
        offset: u16,
        /// Bias codes (`eta b` in the accumulator format).
        codes: Vec<i32>,
    },
    /// Queue an inference.
    Run(RunRequest),
    /// Read `count` sums of a slot's result from readout unit `offset`.
    Readout {
        /// Slot.
        slot: u8,
        /// First readout unit.
        offset: u16,
        /// Sums.
        count: u16,
    },
    /// Counters.
    Status,
    /// Clear slots, queue, counters; biases back to the compiled ones.
    Reset,
}

/// Why a payload is not a request. [`DecodeError::code`] is the error code the board answers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// `kind` is no opcode.
    #[error("unknown opcode {0:#04x}")]
    UnknownOpcode(u8),
    /// The payload's length does not fit the opcode (truncated or oversized).
    #[error("{op:?}: payload of {len} bytes, expected {expected}")]
    Length {
        /// The request.
        op: Opcode,
        /// Bytes received.
        len: usize,
        /// What the opcode takes.
        expected: &'static str,
    },
    /// No such memory space.
    #[error("{op:?}: unknown memory space {space}")]
    Space {
        /// The request.
        op: Opcode,
        /// The space byte.
        space: u8,
    },
    /// WRITE_MEM data that is not whole elements of the space's width.
    #[error("WriteMem: {len} data bytes are not whole elements of the space")]
    Words {
        /// Data bytes after the header.
        len: usize,
    },
}

impl DecodeError {
    /// The error code a board answers a request with that does not decode: unknown command,
    /// bad length, or bad address for an unknown space or a WRITE_MEM that is not whole words.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownOpcode(_) => ErrorCode::UnknownCommand,
            DecodeError::Length { .. } => ErrorCode::BadLength,
            DecodeError::Space { .. } | DecodeError::Words { .. } => ErrorCode::BadAddress,
        }
    }
}

impl Opcode {
    /// Does the request change state a later read could see (WRITE_MEM, SET_CONDITIONING, RUN,
    /// RESET)?
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Opcode::WriteMem | Opcode::SetConditioning | Opcode::Run | Opcode::Reset
        )
    }
    /// Does the request read state a write could change (READ_MEM, READOUT, STATUS)?
    pub fn is_read(self) -> bool {
        matches!(self, Opcode::ReadMem | Opcode::Readout | Opcode::Status)
    }
}

impl Request {
    /// The opcode.
    pub fn opcode(&self) -> Opcode {
        match self {
            Request::Identify => Opcode::Identify,
            Request::WriteMem { .. } => Opcode::WriteMem,
            Request::ReadMem { .. } => Opcode::ReadMem,
            Request::SetConditioning { .. } => Opcode::SetConditioning,
            Request::Run(_) => Opcode::Run,
            Request::Readout { .. } => Opcode::Readout,
            Request::Status => Opcode::Status,
            Request::Reset => Opcode::Reset,
        }
    }

    /// See [`Opcode::is_write`].
    pub fn is_write(&self) -> bool {
        self.opcode().is_write()
    }

    /// See [`Opcode::is_read`].
    pub fn is_read(&self) -> bool {
        self.opcode().is_read()
    }

    /// The frame's `kind` and payload.
    pub fn encode(&self) -> (u8, Vec<u8>) {
        let p = match self {
            Request::Identify | Request::Status | Request::Reset => Vec::new(),
            Request::WriteMem { space, addr, words } => {
                let mut p = Vec::with_capacity(WRITE_MEM_HEADER + space.width() * words.len());
                p.push(*space as u8);
                p.extend(addr.to_le_bytes());
                if space.width() == WORD {
                    p.extend(encode_i32s(words));
                } else {
                    p.extend(words.iter().flat_map(|&w| (w as i16).to_le_bytes()));
                }
                p
            }
            Request::ReadMem { space, addr, count } => {
                let mut p = vec![*space as u8];
                p.extend(addr.to_le_bytes());
                p.extend(count.to_le_bytes());
                p
            }
            Request::SetConditioning {
                slot,
                offset,
                codes,
            } => {
                let mut p = Vec::with_capacity(SET_CONDITIONING_HEADER + WORD * codes.len());
                p.push(*slot);
                p.extend(offset.to_le_bytes());
                p.extend(encode_i32s(codes));
                p
            }
            Request::Run(r) => r.encode(),
            Request::Readout {
                slot,
                offset,
                count,
            } => {
                let mut p = vec![*slot];
                p.extend(offset.to_le_bytes());
                p.extend(count.to_le_bytes());
                p
            }
        };
        (self.opcode() as u8, p)
    }

    /// Parse a request frame's `kind` and payload. IDENTIFY, STATUS and RESET take no
    /// parameters and ignore any payload, as the board does; every other request must have
    /// exactly its layout's length.
    pub fn decode(kind: u8, p: &[u8]) -> Result<Request, DecodeError> {
        let op = Opcode::from_u8(kind).ok_or(DecodeError::UnknownOpcode(kind))?;
        let length = |expected| DecodeError::Length {
            op,
            len: p.len(),
            expected,
        };
        let space = |b: u8| Space::from_u8(b).ok_or(DecodeError::Space { op, space: b });
        Ok(match op {
            Opcode::Identify => Request::Identify,
            Opcode::Status => Request::Status,
            Opcode::Reset => Request::Reset,
            Opcode::WriteMem => {
                if p.len() < WRITE_MEM_HEADER {
                    return Err(length("5 + 4 n"));
                }
                let space = space(p[0])?;
                let data = &p[WRITE_MEM_HEADER..];
                let bad = DecodeError::Words { len: data.len() };
                let words = if space.width() == WORD {
                    decode_i32s(data).ok_or(bad)?
                } else {
                    let h = decode_i16s(data).ok_or(bad)?;
                    h.into_iter().map(i32::from).collect()
                };
                Request::WriteMem {
                    space,
                    addr: u32_at(p, 1),
                    words,
                }
            }
            Opcode::ReadMem => {
                if p.len() != READ_MEM_LEN {
                    return Err(length("7"));
                }
                Request::ReadMem {
                    space: space(p[0])?,
                    addr: u32_at(p, 1),
                    count: u16_at(p, 5),
                }
            }
            Opcode::SetConditioning => {
                if p.len() < SET_CONDITIONING_HEADER
                    || (p.len() - SET_CONDITIONING_HEADER) % WORD != 0
                {
                    return Err(length("3 + 4 n"));
                }
                Request::SetConditioning {
                    slot: p[0],
                    offset: u16_at(p, 1),
                    codes: decode_i32s(&p[SET_CONDITIONING_HEADER..]).unwrap_or_default(),
                }
            }
            Opcode::Run => Request::Run(RunRequest::decode(p).ok_or_else(|| length("22"))?),
            Opcode::Readout => {
                if p.len() != READOUT_LEN {
                    return Err(length("5"));
                }
                Request::Readout {
                    slot: p[0],
                    offset: u16_at(p, 1),
                    count: u16_at(p, 3),
                }
            }
        })
    }
}

fn u16_at(p: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([p[i], p[i + 1]])
}

fn u32_at(p: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]])
}

/// i32 words, little-endian (conditioning codes, bias words, READ_MEM of space 0).
pub fn encode_i32s(v: &[i32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Parse little-endian i32 words; `None` unless the bytes are whole words.
pub fn decode_i32s(p: &[u8]) -> Option<Vec<i32>> {
    (p.len() % WORD == 0).then(|| {
        p.chunks(WORD)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// i16 words, little-endian (READ_MEM of spaces 1..=5, WRITE_MEM of spaces 2..=5).
pub fn encode_i16s(v: &[i16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Parse little-endian i16 words; `None` unless the bytes are whole words.
pub fn decode_i16s(p: &[u8]) -> Option<Vec<i16>> {
    (p.len() % 2 == 0).then(|| {
        p.chunks(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect()
    })
}

/// Reply to WRITE_MEM: `count:u32`, the elements written.
pub fn encode_written(count: u32) -> Vec<u8> {
    count.to_le_bytes().to_vec()
}

/// Parse a WRITE_MEM reply.
pub fn decode_written(p: &[u8]) -> Option<u32> {
    (p.len() == 4).then(|| u32_at(p, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Request> {
        vec![
            Request::Identify,
            Request::WriteMem {
                space: Space::Bias,
                addr: 0x0102_0304,
                words: vec![-7, i32::MIN, i32::MAX, 0],
            },
            Request::WriteMem {
                space: Space::State,
                addr: 9,
                words: vec![],
            },
            Request::ReadMem {
                space: Space::Coupling,
                addr: u32::MAX,
                count: 513,
            },
            Request::SetConditioning {
                slot: 3,
                offset: 0xBEEF,
                codes: vec![1, -1, 1 << 30],
            },
            Request::SetConditioning {
                slot: 0,
                offset: 0,
                codes: vec![],
            },
            Request::Run(RunRequest {
                slot: 2,
                sweeps: 65_536,
                burn_in: 7,
                key: [0xDEAD_BEEF, 0, u32::MAX],
                flags: 0,
            }),
            Request::Run(RunRequest {
                slot: 0,
                sweeps: 1,
                burn_in: 0,
                key: [1, 2, 3],
                flags: crate::RUN_ALL_UNITS,
            }),
            Request::WriteMem {
                space: Space::Coupling,
                addr: 3,
                words: vec![-1, i16::MIN as i32, i16::MAX as i32, 0],
            },
            Request::WriteMem {
                space: Space::BusGain,
                addr: 0,
                words: vec![5],
            },
            Request::Readout {
                slot: 1,
                offset: 300,
                count: 254,
            },
            Request::Status,
            Request::Reset,
        ]
    }

    #[test]
    fn every_request_round_trips() {
        let all = every_variant();
        // every opcode is covered
        for k in 0..=255u8 {
            if let Some(op) = Opcode::from_u8(k) {
                assert!(all.iter().any(|r| r.opcode() == op), "{op:?} not covered");
            }
        }
        for r in all {
            let (kind, p) = r.encode();
            assert_eq!(kind, r.opcode() as u8);
            assert_eq!(Request::decode(kind, &p), Ok(r.clone()), "{r:?}");
        }
    }

    #[test]
    fn layouts_are_the_documented_ones() {
        let (_, p) = Request::ReadMem {
            space: Space::Bias,
            addr: 0x0403_0201,
            count: 0x0605,
        }
        .encode();
        assert_eq!(p, vec![0, 1, 2, 3, 4, 5, 6]);
        let (_, p) = Request::SetConditioning {
            slot: 9,
            offset: 0x0201,
            codes: vec![0x0605_0403],
        }
        .encode();
        assert_eq!(p, vec![9, 1, 2, 3, 4, 5, 6]);
        let (_, p) = Request::Readout {
            slot: 1,
            offset: 0x0302,
            count: 0x0504,
        }
        .encode();
        assert_eq!(p, vec![1, 2, 3, 4, 5]);
        let (_, p) = Request::WriteMem {
            space: Space::Bias,
            addr: 0x0403_0201,
            words: vec![0x0807_0605],
        }
        .encode();
        assert_eq!(p, vec![0, 1, 2, 3, 4, 5, 6, 7, 8]);
        // the weight spaces carry i16 elements
        let (_, p) = Request::WriteMem {
            space: Space::SelfCoef,
            addr: 0x0403_0201,
            words: vec![0x0605, -2],
        }
        .encode();
        assert_eq!(p, vec![3, 1, 2, 3, 4, 5, 6, 0xFE, 0xFF]);
        let run = RunRequest {
            slot: 0,
            sweeps: 1,
            burn_in: 2,
            key: [3, 4, 5],
            flags: 0,
        };
        assert_eq!(Request::Run(run).encode().1.len(), RUN_LEN);
    }

    #[test]
    fn truncated_and_oversized_payloads_are_refused_with_bad_length() {
        for r in every_variant() {
            let (kind, p) = r.encode();
            let op = r.opcode();
            if matches!(op, Opcode::Identify | Opcode::Status | Opcode::Reset) {
                // no parameters: any payload is ignored, as the board does
                assert_eq!(Request::decode(kind, &[1, 2, 3]), Ok(r.clone()));
                continue;
            }
            // truncated by one byte
            if !p.is_empty() {
                let e = Request::decode(kind, &p[..p.len() - 1]).unwrap_err();
                let want = if op == Opcode::WriteMem && p.len() > WRITE_MEM_HEADER {
                    ErrorCode::BadAddress // data that is not whole words
                } else {
                    ErrorCode::BadLength
                };
                assert_eq!(e.code(), want, "{r:?} truncated: {e}");
            }
            // oversized by one byte
            let mut long = p.clone();
            long.push(0);
            let e = Request::decode(kind, &long).unwrap_err();
            let want = if op == Opcode::WriteMem {
                ErrorCode::BadAddress
            } else {
                ErrorCode::BadLength
            };
            assert_eq!(e.code(), want, "{r:?} oversized: {e}");
        }
        // the fixed headers, cut short
        for (op, n) in [
            (Opcode::WriteMem, WRITE_MEM_HEADER),
            (Opcode::ReadMem, READ_MEM_LEN),
            (Opcode::SetConditioning, SET_CONDITIONING_HEADER),
            (Opcode::Run, RUN_LEN),
            (Opcode::Readout, READOUT_LEN),
        ] {
            for len in 0..n {
                let e = Request::decode(op as u8, &vec![0; len]).unwrap_err();
                assert_eq!(e.code(), ErrorCode::BadLength, "{op:?} of {len} bytes");
            }
        }
    }

    #[test]
    fn unknown_opcodes_and_spaces_are_refused() {
        let e = Request::decode(0x42, &[]).unwrap_err();
        assert_eq!(e.code(), ErrorCode::UnknownCommand);
        assert!(e.to_string().contains("0x42"), "{e}");
        let (kind, mut p) = Request::ReadMem {
            space: Space::Bias,
            addr: 0,
            count: 1,
        }
        .encode();
        p[0] = 7;
        assert_eq!(
            Request::decode(kind, &p),
            Err(DecodeError::Space {
                op: Opcode::ReadMem,
                space: 7
            })
        );
        assert_eq!(
            Request::decode(kind, &p).unwrap_err().code(),
            ErrorCode::BadAddress
        );
    }

    #[test]
    fn reads_and_writes_are_classified() {
        let w: Vec<Opcode> = every_variant()
            .iter()
            .filter(|r| r.is_write())
            .map(|r| r.opcode())
            .collect();
        assert!(w.iter().all(|op| matches!(
            op,
            Opcode::WriteMem | Opcode::SetConditioning | Opcode::Run | Opcode::Reset
        )));
        assert!(!Request::Identify.is_read() && !Request::Identify.is_write());
        assert!(Request::Status.is_read() && Request::Reset.is_write());
    }

    #[test]
    fn reply_words_round_trip() {
        let v = vec![i32::MIN, -1, 0, 1, i32::MAX];
        assert_eq!(decode_i32s(&encode_i32s(&v)), Some(v));
        assert_eq!(decode_i32s(&[1, 2, 3]), None);
        let h = vec![i16::MIN, -1, 0, 7, i16::MAX];
        assert_eq!(decode_i16s(&encode_i16s(&h)), Some(h));
        assert_eq!(decode_i16s(&[1]), None);
        assert_eq!(decode_written(&encode_written(77)), Some(77));
        assert_eq!(decode_written(&[1, 2]), None);
    }
}
