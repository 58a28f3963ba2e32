//! The protocol client: windowed requests with go-back-N retransmission under the same sequence
//! numbers (the board executes a retried request again: every command is idempotent, and no
//! write is ever sent behind an unanswered read, so a retry answers as the first execution),
//! time-outs derived from the line rate, and reconnection when the port vanishes.

use crate::transport::Transport;
use std::time::{Duration, Instant};
use thermo_proto::{
    encode_frame, reply_kind, ErrorCode, Frame, FrameDecoder, Identity, Opcode, Request,
    ERROR_KIND, MAX_WIRE_FRAME, WINDOW,
};

/// What went wrong on the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The port failed and could not be reopened in time.
    #[error("link {link}: {source}")]
    Io {
        /// Which link.
        link: String,
        /// The last error.
        source: std::io::Error,
    },
    /// No valid reply after every retry.
    #[error("link {link}: no reply to {op:?} after {attempts} attempts")]
    Timeout {
        /// Which link.
        link: String,
        /// The request.
        op: Opcode,
        /// Attempts made.
        attempts: u32,
    },
    /// The board answered with an error.
    #[error("board refused {op:?}: {code:?}")]
    Device {
        /// The request.
        op: Opcode,
        /// The board's error code.
        code: ErrorCode,
    },
    /// The board is configured with another design.
    #[error("design mismatch: the board runs design {board:#018x}, the model is {model:#018x}; flash the bitstream built from this model (or pass the model the board was built from)")]
    DesignMismatch {
        /// The board's hash.
        board: u64,
        /// The model's hash.
        model: u64,
    },
    /// A reply that makes no sense.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Link counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LinkStats {
    /// Requests completed.
    pub requests: u64,
    /// Frames retransmitted after a time-out.
    pub retransmissions: u64,
    /// Time-outs.
    pub timeouts: u64,
    /// Reopened ports.
    pub reconnects: u64,
    /// Received frames dropped for CRC.
    pub crc_errors: u64,
    /// Received frames dropped for framing.
    pub framing_errors: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Payload bytes of completed requests (host to board).
    pub payload_out: u64,
    /// Payload bytes of their replies (board to host).
    pub payload_in: u64,
}

/// `reqs` split into consecutive groups such that no write follows a read within a group
/// (a group is reads and IDENTIFYs after writes and IDENTIFYs; [`Request::is_write`],
/// [`Request::is_read`]): each group is sent only after the previous one is answered.
pub fn hazard_free_groups(reqs: &[Request]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut read_seen) = (0, false);
    for (i, r) in reqs.iter().enumerate() {
        if r.is_write() && read_seen {
            groups.push(start..i);
            start = i;
            read_seen = false;
        }
        read_seen |= r.is_read();
    }
    if start < reqs.len() {
        groups.push(start..reqs.len());
    }
    groups
}

/// A protocol client over a transport.
pub struct Client<T: Transport> {
    t: T,
    dec: FrameDecoder,
    next_seq: u8,
    /// Counters.
    pub stats: LinkStats,
    /// Time-outs before giving up on a request.
    pub max_attempts: u32,
    /// How long to keep trying to reopen a vanished port.
    pub reconnect_for: Duration,
    /// Turn-around allowance added to every time-out (USB latency, scheduling).
    pub latency: Duration,
    /// Design hash the board must report after a reconnect.
    pub expected_design: Option<u64>,
    pending: Vec<Frame>,
}

impl LinkStats {
    /// Payload utilisation of the busier direction over `seconds` at `baud` (10 bits a byte;
    /// the UART is full duplex, so each direction has the whole line rate).
    pub fn utilisation(&self, since: &LinkStats, baud: u32, seconds: f64) -> f64 {
        let bytes = (self.payload_out - since.payload_out).max(self.payload_in - since.payload_in);
        bytes as f64 * 10.0 / (baud as f64 * seconds.max(1e-12))
    }
}

impl<T: Transport> Client<T> {
    /// A client over `t`.
    pub fn new(t: T) -> Self {
        Client {
            t,
            dec: FrameDecoder::new(),
            next_seq: 0,
            stats: LinkStats::default(),
            max_attempts: 12,
            reconnect_for: Duration::from_secs(15),
            latency: Duration::from_millis(40),
            expected_design: None,
            pending: Vec::new(),
        }
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.t
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        let baud = self.t.baud().unwrap_or(3_000_000).max(1200);
        Duration::from_secs_f64(bytes as f64 * 10.0 / baud as f64)
    }

    fn link_error(&self, source: std::io::Error) -> LinkError {
        LinkError::Io {
            link: self.t.describe(),
            source,
        }
    }

    /// Reopen the port until it answers IDENTIFY with the expected design, or time runs out.
    fn reconnect(&mut self, cause: std::io::Error) -> Result<(), LinkError> {
        let deadline = Instant::now() + self.reconnect_for;
        let mut last = cause;
        loop {
            if Instant::now() > deadline {
                return Err(self.link_error(last));
            }
            std::thread::sleep(Duration::from_millis(50));
            match self.t.reconnect() {
                Ok(()) => {
                    self.stats.reconnects += 1;
                    self.dec.reset();
                    self.pending.clear();
                    match self.transact_once(&[Request::Identify], false) {
                        Ok(r) => {
                            let id = Identity::decode(&r[0])
                                .ok_or_else(|| LinkError::Protocol("bad IDENTIFY reply".into()))?;
                            if let Some(h) = self.expected_design {
                                if id.design_hash != h {
                                    return Err(LinkError::DesignMismatch {
                                        board: id.design_hash,
                                        model: h,
                                    });
                                }
                            }
                            return Ok(());
                        }
                        Err(LinkError::Io { source, .. }) => last = source,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => last = e,
            }
        }
    }

    /// Send requests (up to [`WINDOW`] outstanding) and return their reply payloads in order.
    /// Error replies become [`LinkError::Device`]. Survives corrupted, lost and delayed frames
    /// and a port that vanishes and comes back.
    ///
    /// A request that changes board state (WRITE_MEM, SET_CONDITIONING, RUN, RESET) is never
    /// sent while a read (READ_MEM, READOUT, STATUS) before it is unanswered: the requests are
    /// sent in groups split there ([`hazard_free_groups`]). So the board, which executes a
    /// retried request again, answers a retried read as the first execution did.
    pub fn transact(&mut self, reqs: &[Request]) -> Result<Vec<Vec<u8>>, LinkError> {
        let mut done: Vec<Vec<u8>> = Vec::with_capacity(reqs.len());
        for g in hazard_free_groups(reqs) {
            done.extend(self.transact_group(&reqs[g])?);
        }
        Ok(done)
    }

    fn transact_group(&mut self, reqs: &[Request]) -> Result<Vec<Vec<u8>>, LinkError> {
        let mut done: Vec<Vec<u8>> = Vec::with_capacity(reqs.len());
        while done.len() < reqs.len() {
            match self.transact_once(&reqs[done.len()..], true) {
                Ok(r) => done.extend(r),
                Err(LinkError::Io { source, .. }) => {
                    // The port vanished. Requests are idempotent, so what was not answered is
                    // sent again after the reconnect, with fresh sequence numbers.
                    let partial = self.take_partial();
                    self.reconnect(source)?;
                    done.extend(partial);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn take_partial(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.pending)
            .into_iter()
            .map(|f| f.payload)
            .collect()
    }

    /// One attempt at a batch: go-back-N retransmission on time-outs. On an I/O error, the
    /// replies already in order are kept in `self.pending` and the error returned.
    fn transact_once(
        &mut self,
        reqs: &[Request],
        keep_partial: bool,
    ) -> Result<Vec<Vec<u8>>, LinkError> {
        let n = reqs.len();
        let seqs: Vec<u8> = (0..n)
            .map(|i| self.next_seq.wrapping_add(i as u8))
            .collect();
        self.next_seq = self.next_seq.wrapping_add(n as u8);
        let encoded: Vec<(u8, Vec<u8>)> = reqs.iter().map(Request::encode).collect();
        let frames: Vec<Vec<u8>> = encoded
            .iter()
            .zip(&seqs)
            .map(|((kind, p), &s)| encode_frame(s, *kind, p))
            .collect();
        let mut replies: Vec<Option<Frame>> = vec![None; n];
        let (mut base, mut sent) = (0usize, 0usize);
        let mut attempts = 0u32;
        let mut buf = vec![0u8; 8192];
        self.pending.clear();
        while base < n {
            while sent < n && sent < base + WINDOW {
                let f = &frames[sent];
                if let Err(e) = self.t.write_all(f) {
                    return Err(self.partial(replies, base, keep_partial, e));
                }
                self.stats.bytes_sent += f.len() as u64;
                sent += 1;
            }
            let outstanding: usize = frames[base..sent].iter().map(|f| f.len()).sum();
            let timeout =
                self.latency + self.wire_time(outstanding + MAX_WIRE_FRAME * (sent - base)) * 2;
            let deadline = Instant::now() + timeout;
            let before = base;
            while base == before && Instant::now() < deadline {
                let wait = deadline.saturating_duration_since(Instant::now());
                let got = match self.t.read(&mut buf, wait) {
                    Ok(k) => k,
                    Err(e) => return Err(self.partial(replies, base, keep_partial, e)),
                };
                self.stats.bytes_received += got as u64;
                for r in self.dec.push(&buf[..got]) {
                    let Ok(f) = r else { continue };
                    if let Some(i) =
                        (base..sent).find(|&i| seqs[i] == f.seq && replies[i].is_none())
                    {
                        let op = reqs[i].opcode();
                        if f.kind == ERROR_KIND {
                            let code = f.payload.get(1).and_then(|&c| ErrorCode::from_u8(c));
                            return Err(match code {
                                Some(code) => LinkError::Device { op, code },
                                None => {
                                    LinkError::Protocol(format!("malformed error reply to {op:?}"))
                                }
                            });
                        }
                        if f.kind != reply_kind(op) {
                            continue; // a stale reply from before a resynchronisation
                        }
                        replies[i] = Some(f);
                    }
                }
                while base < n && replies[base].is_some() {
                    base += 1;
                    attempts = 0;
                }
            }
            self.stats.crc_errors = self.dec.stats.crc_errors;
            self.stats.framing_errors = self.dec.stats.framing_errors;
            if base == before {
                attempts += 1;
                self.stats.timeouts += 1;
                if attempts >= self.max_attempts {
                    return Err(LinkError::Timeout {
                        link: self.t.describe(),
                        op: reqs[base].opcode(),
                        attempts,
                    });
                }
                // Go back: resend everything unanswered under the same sequence numbers.
                self.stats.retransmissions += (sent - base) as u64;
                sent = base;
            }
        }
        self.stats.requests += n as u64;
        let out: Vec<Vec<u8>> = replies
            .into_iter()
            .map(|f| f.map(|f| f.payload).unwrap_or_default())
            .collect();
        self.stats.payload_out += encoded.iter().map(|r| r.1.len() as u64).sum::<u64>();
        self.stats.payload_in += out.iter().map(|p| p.len() as u64).sum::<u64>();
        Ok(out)
    }

    fn partial(
        &mut self,
        replies: Vec<Option<Frame>>,
        base: usize,
        keep: bool,
        e: std::io::Error,
    ) -> LinkError {
        if keep {
            self.pending = replies.into_iter().take(base).flatten().collect();
        }
        self.link_error(e)
    }

    /// One request; its reply payload.
    pub fn call(&mut self, req: Request) -> Result<Vec<u8>, LinkError> {
        Ok(self.transact(&[req])?.remove(0))
    }

    /// IDENTIFY.
    pub fn identify(&mut self) -> Result<Identity, LinkError> {
        let p = self.call(Request::Identify)?;
        Identity::decode(&p)
            .ok_or_else(|| LinkError::Protocol(format!("IDENTIFY reply of {} bytes", p.len())))
    }

    /// IDENTIFY and insist on `hash`; later reconnects insist on it too.
    pub fn attach(&mut self, hash: u64) -> Result<Identity, LinkError> {
        let id = self.identify()?;
        if id.design_hash != hash {
            return Err(LinkError::DesignMismatch {
                board: id.design_hash,
                model: hash,
            });
        }
        self.expected_design = Some(hash);
        Ok(id)
    }
}
