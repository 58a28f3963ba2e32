//! The sweep controller.

use rust_hdl::prelude::*;

/// Sweep controller: runs `n_sweeps` sweeps of exactly `cycles_per_sweep` cycles each.
///
/// **Computes** the cycle-in-sweep counter `c` that the lanes and bus sides compare against
/// their schedule (bus sides issue for `c < k n`, lane `l` for `bus_phase <= c < bus_phase +
/// len_l`), the `rewind` pulse (last cycle of a sweep: program counters and unit counters return to 0), the Jacobi buffer select `rbuf` (reads from `rbuf`,
/// writes to `!rbuf`; flipped on the last cycle of each sweep), and the counters `sweeps`
/// (completed sweeps) and `cycles` (cycles spent running).
///
/// **Ports**: `start` (pulse, while idle: run `n_sweeps` sweeps; ignored if `n_sweeps == 0`),
/// `n_sweeps`; outputs `running`, `c`, `rewind`, `rbuf`, `sweeps`, `cycles`.
///
/// **Latency**: `running` rises on the edge after `start`; a run of `n` sweeps takes exactly
/// `n * cycles_per_sweep` cycles. **Proof**: the cycle counts checked sweep by sweep in
/// `hdl/tests/equivalence.rs` (against `Schedule::cycles_per_sweep`).
#[derive(LogicBlock)]
pub struct SweepCtrl {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Start a run (idle only).
    pub start: Signal<In, Bit>,
    /// Sweeps of the run.
    pub n_sweeps: Signal<In, Bits<32>>,
    /// A run is in progress.
    pub running: Signal<Out, Bit>,
    /// Cycle within the sweep.
    pub c: Signal<Out, Bits<32>>,
    /// First cycle of a sweep.
    pub rewind: Signal<Out, Bit>,
    /// Read buffer.
    pub rbuf: Signal<Out, Bit>,
    /// Sweeps completed since configuration.
    pub sweeps: Signal<Out, Bits<32>>,
    /// Cycles spent running since configuration.
    pub cycles: Signal<Out, Bits<32>>,
    run: DFF<Bit>,
    cc: DFF<Bits<24>>,
    b: DFF<Bit>,
    left: DFF<Bits<32>>,
    nsw: DFF<Bits<32>>,
    ncy: DFF<Bits<32>>,
    last: Constant<Bits<24>>,
    cmask: Constant<Bits<24>>,
}

impl SweepCtrl {
    /// A controller for sweeps of `cycles_per_sweep` cycles.
    pub fn new(cycles_per_sweep: u64) -> Self {
        // the cycle counter is 24 bits wide (the schedule's comparisons then see constant zeros
        // above it)
        assert!(
            (1..=1 << 24).contains(&cycles_per_sweep),
            "{cycles_per_sweep} cycles per sweep: the sweep controller counts up to 2^24"
        );
        SweepCtrl {
            clock: Default::default(),
            start: Default::default(),
            n_sweeps: Default::default(),
            running: Default::default(),
            c: Default::default(),
            rewind: Default::default(),
            rbuf: Default::default(),
            sweeps: Default::default(),
            cycles: Default::default(),
            run: Default::default(),
            cc: Default::default(),
            b: Default::default(),
            left: Default::default(),
            nsw: Default::default(),
            ncy: Default::default(),
            last: Constant::new((cycles_per_sweep - 1).to_bits()),
            // only the bits that `cycles_per_sweep - 1` needs: yosys sees the others constant
            // zero and drops them with their share of the counter and of the schedule's
            // comparisons
            cmask: Constant::new(
                ((1u64 << (64 - (cycles_per_sweep - 1).leading_zeros()).max(1)) - 1).to_bits(),
            ),
        }
    }
}

impl Logic for SweepCtrl {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, run, cc, b, left, nsw, ncy);
        if self.run.q.val() {
            self.ncy.d.next = self.ncy.q.val() + 1;
            if self.cc.q.val() == self.last.val() {
                self.cc.d.next = 0.into();
                self.b.d.next = !self.b.q.val();
                self.nsw.d.next = self.nsw.q.val() + 1;
                self.left.d.next = self.left.q.val() - 1;
                if self.left.q.val() == 1 {
                    self.run.d.next = false;
                }
            } else {
                self.cc.d.next = (self.cc.q.val() + 1) & self.cmask.val();
            }
        } else if self.start.val() & (self.n_sweeps.val() != 0) {
            self.run.d.next = true;
            self.cc.d.next = 0.into();
            self.left.d.next = self.n_sweeps.val();
        }
        self.running.next = self.run.q.val();
        self.c.next = bit_cast::<32, 24>(self.cc.q.val());
        self.rewind.next = self.run.q.val() & (self.cc.q.val() == self.last.val());
        self.rbuf.next = self.b.q.val();
        self.sweeps.next = self.nsw.q.val();
        self.cycles.next = self.ncy.q.val();
    }
}
