//! The protocol client: windowed requests with go-back-N retransmission under the same sequence
//! numbers (the board executes a retried request again: every command is idempotent, and no
//! write is ever sent behind an unanswered read, so a retry answers as the first execution),
//! time-outs derived from the line rate and the link's measured time scale, and reconnection
//! when the port vanishes.
//!
//! **Time scale.** A real board moves bytes at its line rate; an emulated one (the RTL in
//! Verilator) may move them tens or hundreds of times slower. When it first attaches, the client
//! measures how long about 4 KB of READ_MEM replies take ([`Client::measure_time_scale`]; the
//! result, [`Client::time_scale`], is wall time per unit of line time, at least 1) and sizes every
//! time-out by it, so the same code waits long enough for a simulation and no longer than the line
//! needs for a board. A wait ends only after a time-out's worth of silence (bytes from the board,
//! up to what the outstanding replies can hold, restart it), and a time-out that finds a reply
//! still coming in doubles the time-outs that follow (back-off, up to 16 times; halved again by
//! each exchange that completes without a time-out). A lost frame is still retried as before.

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
    /// The port vanished and could not be reopened in time.
    #[error("link {link}: the port vanished and could not be reopened within {:.1} s: {source}", waited.as_secs_f64())]
    Gone {
        /// Which link.
        link: String,
        /// How long the client tried to reopen it.
        waited: Duration,
        /// The last error.
        source: std::io::Error,
    },
    /// No valid reply after every retry.
    #[error("link {link}: no reply to {op:?} after {attempts} attempts over {:.1} s; {}", waited.as_secs_f64(), timeout_cause(*heard, *time_scale))]
    Timeout {
        /// Which link.
        link: String,
        /// The request.
        op: Opcode,
        /// Attempts made.
        attempts: u32,
        /// Time from the first attempt to giving up.
        waited: Duration,
        /// Bytes the board sent meanwhile (0: the board is silent, i.e. gone).
        heard: u64,
        /// The time scale the last time-out was sized for (measured, with back-off).
        time_scale: f64,
    },
    /// The board answered with an error.
    #[error("board refused {op:?}: {code:?}")]
    Device {
        /// The request.
        op: Opcode,
        /// The board's error code.
        code: ErrorCode,
    },
    /// The board is configured with another design (structure hash).
    #[error("design mismatch: the board runs design {board:#018x}, the model is {model:#018x}; flash the bitstream built from this model (or pass the model the board was built from)")]
    DesignMismatch {
        /// The board's structure hash.
        board: u64,
        /// The model's structure hash.
        model: u64,
    },
    /// The board has the model's structure but holds other weights (weight checksum).
    #[error("weight mismatch: the board holds weights {board:#018x}, the model's are {model:#018x} (same structure); write the model's weights over the link (thermo_host::eqprop::write_weights, on a board that reports the weights feature) or flash the bitstream built from this model")]
    WeightMismatch {
        /// The board's weight checksum.
        board: u64,
        /// The model's weight checksum.
        model: u64,
    },
    /// A reply that makes no sense.
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Why a request timed out, from what the board sent while the client waited.
fn timeout_cause(heard: u64, time_scale: f64) -> String {
    if heard == 0 {
        "nothing came back from the board meanwhile: it is gone or not listening (unplugged, not configured, another port or line rate?)".into()
    } else {
        format!(
            "the board sent {heard} bytes meanwhile but not this reply: it is answering, too slowly or garbled (the last time-out allowed for a link {time_scale:.1}x slower than its line rate)"
        )
    }
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
    /// Structure hash the board must report after a reconnect.
    pub expected_design: Option<u64>,
    /// Weight checksum the board must report after a reconnect (`None`: any).
    pub expected_weights: Option<u64>,
    pending: Vec<Frame>,
    /// Measured wall time per unit of line time (at least 1); `None` before the measurement.
    scale: Option<f64>,
    /// Back-off factor on the time-outs (1 after an exchange without a time-out).
    backoff: f64,
    /// While measuring the time scale: arrival time and size of every chunk read.
    probe: Option<Vec<(Instant, usize)>>,
}

/// Largest back-off factor on the time-outs.
const MAX_BACKOFF: f64 = 16.0;
/// Reply bytes the time scale is measured on (READ_MEMs of up to 1 KB each, at most a window).
const PROBE_BYTES: usize = 4096;
/// Measurements of the time scale tried before it is taken as 1 (one with a time-out is
/// discarded: its timing says nothing about the board).
const PROBE_TRIES: usize = 3;
/// Turn-around allowance while the time scale is measured: a board of unknown speed may take
/// this long to start its reply.
const PROBE_LATENCY: Duration = Duration::from_secs(1);

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
            expected_weights: None,
            pending: Vec::new(),
            scale: None,
            backoff: 1.0,
            probe: None,
        }
    }

    /// The link's time scale: wall time per unit of line time, measured when the client attached
    /// (1 for a board that keeps up with its line rate; 1 before the measurement).
    pub fn time_scale(&self) -> f64 {
        self.scale.unwrap_or(1.0)
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.t
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        let baud = self.t.baud().unwrap_or(3_000_000).max(1200);
        Duration::from_secs_f64(bytes as f64 * 10.0 / baud as f64)
    }

    /// The time-out of a wait for replies: the turn-around allowance plus twice the line time of
    /// `bytes`, scaled by the link's time scale and the back-off.
    fn timeout(&self, bytes: usize) -> Duration {
        let line = self.wire_time(bytes).as_secs_f64() * 2.0 * self.time_scale() * self.backoff;
        self.latency + Duration::from_secs_f64(line)
    }

    fn link_error(&self, source: std::io::Error) -> LinkError {
        LinkError::Io {
            link: self.t.describe(),
            source,
        }
    }

    /// Reopen the port until it answers IDENTIFY with the expected design, or time runs out.
    fn reconnect(&mut self, cause: std::io::Error) -> Result<(), LinkError> {
        let start = Instant::now();
        let deadline = start + self.reconnect_for;
        let mut last = cause;
        loop {
            if Instant::now() > deadline {
                return Err(LinkError::Gone {
                    link: self.t.describe(),
                    waited: start.elapsed(),
                    source: last,
                });
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
                            return self.check_identity(&id);
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
        // Time from the first attempt at `base`, bytes heard since, and whether any wait of
        // this batch timed out.
        let (mut since, mut heard, mut any_timeout) = (Instant::now(), 0u64, false);
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
            let room = MAX_WIRE_FRAME * (sent - base);
            let timeout = self.timeout(outstanding + room);
            let mut deadline = Instant::now() + timeout;
            let before = base;
            let (mut heard_now, mut mid_frame) = (0usize, false);
            while base == before && Instant::now() < deadline {
                let wait = deadline.saturating_duration_since(Instant::now());
                let got = match self.t.read(&mut buf, wait) {
                    Ok(k) => k,
                    Err(e) => return Err(self.partial(replies, base, keep_partial, e)),
                };
                self.stats.bytes_received += got as u64;
                if got > 0 {
                    let now = Instant::now();
                    if let Some(p) = self.probe.as_mut() {
                        p.push((now, got));
                    }
                    // The board is sending: the wait ends only after a time-out of silence,
                    // for as many bytes as the outstanding replies can hold.
                    heard_now += got;
                    mid_frame = buf[got - 1] != 0;
                    if heard_now <= room {
                        deadline = deadline.max(now + timeout);
                    }
                }
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
                    (since, heard) = (Instant::now(), 0);
                }
            }
            self.stats.crc_errors = self.dec.stats.crc_errors;
            self.stats.framing_errors = self.dec.stats.framing_errors;
            if base == before {
                attempts += 1;
                any_timeout = true;
                self.stats.timeouts += 1;
                heard += heard_now as u64;
                let time_scale = self.time_scale() * self.backoff;
                if mid_frame {
                    // A reply was still coming in: the board is slower than the time-outs
                    // allowed for, so wait longer from now on. (A lost or garbled frame ends
                    // with its delimiter and backs nothing off.)
                    self.backoff = (self.backoff * 2.0).min(MAX_BACKOFF);
                }
                if attempts >= self.max_attempts {
                    return Err(LinkError::Timeout {
                        link: self.t.describe(),
                        op: reqs[base].opcode(),
                        attempts,
                        waited: since.elapsed(),
                        heard,
                        time_scale,
                    });
                }
                // Go back: resend everything unanswered under the same sequence numbers.
                self.stats.retransmissions += (sent - base) as u64;
                sent = base;
            }
        }
        if !any_timeout {
            self.backoff = (self.backoff / 2.0).max(1.0);
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

    /// IDENTIFY and insist on the structure hash `structure` and, unless `weights` is `None`,
    /// on the weight checksum `weights` ([`LinkError::WeightMismatch`] otherwise); later
    /// reconnects insist on the same (a board that lost weights written over the link, e.g. by
    /// a power cycle, is refused with `WeightMismatch`). A host that writes the weights itself
    /// attaches with `None` and then states the checksum it wrote ([`Client::expect_weights`]).
    /// The first attach also measures the link's time scale ([`Client::measure_time_scale`]).
    pub fn attach(&mut self, structure: u64, weights: Option<u64>) -> Result<Identity, LinkError> {
        let id = self.identify()?;
        self.expected_design = Some(structure);
        self.expected_weights = weights;
        self.check_identity(&id)?;
        if self.scale.is_none() {
            self.measure_time_scale(&id)?;
        }
        Ok(id)
    }

    /// From now on insist on weight checksum `checksum` (after writing the weights).
    pub fn expect_weights(&mut self, checksum: u64) {
        self.expected_weights = Some(checksum);
    }

    /// Is `id` the board this client expects ([`Client::attach`])?
    fn check_identity(&self, id: &Identity) -> Result<(), LinkError> {
        if let Some(h) = self.expected_design {
            if id.structure_hash != h {
                return Err(LinkError::DesignMismatch {
                    board: id.structure_hash,
                    model: h,
                });
            }
        }
        if let Some(w) = self.expected_weights {
            if id.weight_checksum != w {
                return Err(LinkError::WeightMismatch {
                    board: id.weight_checksum,
                    model: w,
                });
            }
        }
        Ok(())
    }

    /// Measure the link's time scale ([`Client::time_scale`]) with READ_MEMs of the default
    /// biases (up to 1 KB each, at most the board's `max_payload`; as many as make about
    /// [`PROBE_BYTES`], at most a window), as the larger of two ratios, and at least 1: the
    /// exchange's duration less the turn-around allowance ([`Client::latency`]) over the
    /// line time of requests and replies; and the time between the arrival of the replies'
    /// first and their second-to-last chunk over the line time of the bytes in between (the
    /// first and the last chunk are left out: a USB bridge holds a packet's bytes back for up to
    /// its latency timer; replies in fewer than three chunks give nothing here). A measurement during
    /// which a frame was lost is repeated ([`PROBE_TRIES`] in all; 1 if none was clean). Before
    /// the measurement a reply may take [`PROBE_LATENCY`] to start. Returns the time scale.
    pub fn measure_time_scale(&mut self, id: &Identity) -> Result<f64, LinkError> {
        let payload = (id.max_payload as usize).min(thermo_proto::MAX_PAYLOAD);
        let count = (id.units as usize).min(payload / thermo_proto::WORD);
        let mut scale = 1.0f64;
        for _ in 0..PROBE_TRIES {
            if count == 0 {
                break;
            }
            let read = Request::ReadMem {
                space: thermo_proto::Space::Bias,
                addr: 0,
                count: count as u16,
            };
            let k = PROBE_BYTES
                .div_ceil(count * thermo_proto::WORD)
                .clamp(1, WINDOW);
            let latency = self.latency;
            self.latency = latency.max(PROBE_LATENCY);
            self.probe = Some(Vec::new());
            let (before, t0) = (self.stats, Instant::now());
            let r = self.transact(&vec![read; k]);
            let elapsed = t0.elapsed();
            self.latency = latency;
            let chunks = self.probe.take().unwrap_or_default();
            r?;
            if self.stats.timeouts != before.timeouts || self.stats.reconnects != before.reconnects
            {
                continue; // a frame was lost: the timing says nothing about the board
            }
            // The exchange beyond the turn-around allowance, over the line time of requests
            // and replies (a board that sends each slow reply in one piece).
            let line = self.wire_time(
                (self.stats.bytes_sent - before.bytes_sent + self.stats.bytes_received
                    - before.bytes_received) as usize,
            );
            if !line.is_zero() {
                scale =
                    scale.max(elapsed.saturating_sub(latency).as_secs_f64() / line.as_secs_f64());
            }
            // The replies' streaming rate.
            if chunks.len() >= 3 {
                let m = chunks.len();
                let bytes: usize = chunks[1..m - 1].iter().map(|c| c.1).sum();
                let dt = chunks[m - 2].0 - chunks[0].0;
                if bytes > 0 {
                    scale = scale.max(dt.as_secs_f64() / self.wire_time(bytes).as_secs_f64());
                }
            }
            break;
        }
        self.scale = Some(scale);
        Ok(scale)
    }
}
