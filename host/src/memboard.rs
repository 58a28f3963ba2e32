//! A board in memory: the protocol's board model (`thermo_proto::device::Board`) behind a
//! [`Transport`], answering each request as it is read, with no serial port or thread. Used to
//! count the bytes a host exchanges with a board for a piece of work ([`eqprop_step_traffic`]).

use crate::client::{Client, LinkStats};
use crate::eqprop::BoardPhases;
use crate::transport::Transport;
use std::collections::VecDeque;
use std::time::Duration;
use thermo_proto::device::Board;
use thermo_proto::{Frame, FrameDecoder};
use thermo_sim::eqprop::{Budget, Estimator, Example};
use thermo_sim::Substrate;

/// The board model in memory: frames written are queued; each `read` runs the queued RUNs and
/// answers the oldest frame.
pub struct MemoryBoard {
    /// The board model.
    pub board: Board,
    dec: FrameDecoder,
    pending: VecDeque<Frame>,
}

impl MemoryBoard {
    /// A board model of `s` with every feature.
    pub fn new(s: Substrate) -> Self {
        MemoryBoard {
            board: Board::new(s),
            dec: FrameDecoder::new(),
            pending: VecDeque::new(),
        }
    }
}

impl Transport for MemoryBoard {
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.pending
            .extend(self.dec.push(bytes).into_iter().flatten());
        Ok(())
    }
    fn read(&mut self, buf: &mut [u8], _timeout: Duration) -> std::io::Result<usize> {
        while let Some(f) = self.pending.pop_front() {
            self.board.run_queued();
            if let Some(r) = self.board.handle(&f) {
                if r.len() > buf.len() {
                    return Err(std::io::Error::other("reply larger than the read buffer"));
                }
                buf[..r.len()].copy_from_slice(&r);
                return Ok(r.len());
            }
        }
        Ok(0)
    }
    fn reconnect(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn baud(&self) -> Option<u32> {
        None
    }
    fn describe(&self) -> String {
        "board model in memory".into()
    }
}

/// The link traffic of one EqProp training step through a board (what
/// `thermo_host::eqprop::BoardPhases` sends and receives): the step's weights written over the
/// link and checked, then every example's phases (free phase, then the nudged ones in parallel
/// slots, every unit read out). Runs the step against the board model in memory; returns the
/// counters of the step alone (attaching is not counted).
pub fn eqprop_step_traffic(
    s: &Substrate,
    batch: &[Example],
    budget: Budget,
    beta: f64,
    est: Estimator,
) -> Result<LinkStats, String> {
    let mut c = Client::new(MemoryBoard::new(s.clone()));
    let mut board = BoardPhases::attach(&mut c, s, budget, 1)?;
    let before = c.stats;
    for e in batch {
        board.phases(&mut c, s, e, beta, est)?;
    }
    let a = c.stats;
    Ok(LinkStats {
        requests: a.requests - before.requests,
        retransmissions: a.retransmissions - before.retransmissions,
        timeouts: a.timeouts - before.timeouts,
        reconnects: a.reconnects - before.reconnects,
        crc_errors: a.crc_errors - before.crc_errors,
        framing_errors: a.framing_errors - before.framing_errors,
        bytes_sent: a.bytes_sent - before.bytes_sent,
        bytes_received: a.bytes_received - before.bytes_received,
        payload_out: a.payload_out - before.payload_out,
        payload_in: a.payload_in - before.payload_in,
    })
}
