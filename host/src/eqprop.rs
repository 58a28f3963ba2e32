//! EqProp through a board: the weights written over the link (WRITE_MEM of the weight spaces),
//! the phases of `thermo_sim::eqprop` as RUNs with every unit read out ([`RUN_ALL_UNITS`]), so
//! [`BoardPhases::phases`] returns what `thermo_sim::eqprop::PhaseRunner` computes on the fixed
//! engine under `Protocol::SameKey` with `Nudge::Bias`, bit for bit.

use crate::client::{Client, LinkError};
use crate::inference::Chunks;
use crate::transport::Transport;
use thermo_proto::{
    structure_hash, weight_checksum, Identity, Readout, Request, RunRequest, SlotState, Space,
    Weights, FEATURE_ALL_UNITS, FEATURE_WEIGHTS, MAX_RUN_SWEEPS, RUN_ALL_UNITS,
};
use thermo_sim::eqprop::{
    bias_nudged, check_example, phase_key, Budget, Estimator, Example, Phases,
};
use thermo_sim::model::readout_units;
use thermo_sim::{Fixed, Substrate};

/// Write `w` into the board's weight spaces (chunked by its `max_payload`), then IDENTIFY and
/// check that the board reports `w`'s checksum; the client insists on it from now on (also
/// after a reconnect). Errors if the board lacks [`FEATURE_WEIGHTS`].
pub fn write_weights<T: Transport>(
    client: &mut Client<T>,
    id: &Identity,
    w: &Weights,
) -> Result<Identity, String> {
    if !id.has(FEATURE_WEIGHTS) {
        return Err(format!(
            "the board (features {:#04x}) cannot write weights over the link: its weights are baked into the bitstream",
            id.features
        ));
    }
    let per = Chunks::of(id)?.words * 2; // i16 elements in the bytes of a chunk of i32 words
    let mut reqs = Vec::new();
    for sp in Space::WEIGHTS {
        let codes = w.space(sp).unwrap_or(&[]);
        for (k, c) in codes.chunks(per).enumerate() {
            reqs.push(Request::WriteMem {
                space: sp,
                addr: (k * per) as u32,
                words: c.iter().map(|&x| x as i32).collect(),
            });
        }
    }
    client.transact(&reqs).map_err(|e| e.to_string())?;
    let now = client.identify().map_err(|e| e.to_string())?;
    let want = weight_checksum(w);
    if now.weight_checksum != want {
        return Err(format!(
            "after writing the weights the board reports checksum {:#018x}, expected {want:#018x}",
            now.weight_checksum
        ));
    }
    client.expect_weights(want);
    Ok(now)
}

/// EqProp phases on a board: `Protocol::SameKey` (every phase a RUN from state 0 with the
/// example's key, [`phase_key`]) with `Nudge::Bias`, counting examples as `PhaseRunner` does.
pub struct BoardPhases {
    /// Sweeps per phase.
    pub budget: Budget,
    /// Seed of the noise keys (the runner's).
    pub seed: u64,
    /// Examples run so far (the next example's key index).
    pub counter: u64,
    /// Phases run so far.
    pub phases_run: u64,
    id: Identity,
    written: Option<u64>,
}

impl BoardPhases {
    /// Attach to a board with `s`'s structure (any weights: [`BoardPhases::phases`] writes
    /// them) that reads out every unit and writes weights.
    pub fn attach<T: Transport>(
        client: &mut Client<T>,
        s: &Substrate,
        budget: Budget,
        seed: u64,
    ) -> Result<BoardPhases, String> {
        if budget.sweeps == 0 || budget.sweeps > MAX_RUN_SWEEPS {
            return Err(format!(
                "sweeps per phase {} out of range 1..={MAX_RUN_SWEEPS}",
                budget.sweeps
            ));
        }
        let id = client
            .attach(structure_hash(s), None)
            .map_err(|e: LinkError| e.to_string())?;
        for (f, what) in [
            (FEATURE_WEIGHTS, "weight writes"),
            (FEATURE_ALL_UNITS, "all-unit readout"),
        ] {
            if !id.has(f) {
                return Err(format!(
                    "the board (features {:#04x}) lacks {what}, which EqProp through a board needs",
                    id.features
                ));
            }
        }
        if id.slots == 0 {
            return Err("the board reports no slots".into());
        }
        Ok(BoardPhases {
            budget,
            seed,
            counter: 0,
            phases_run: 0,
            id,
            written: None,
        })
    }

    /// The phases of one example on `s` (its weights written first if the board holds other
    /// ones): the free phase, then `+beta` and (for `Symmetric`) `-beta` in two slots at once.
    pub fn phases<T: Transport>(
        &mut self,
        client: &mut Client<T>,
        s: &Substrate,
        e: &Example,
        beta: f64,
        est: Estimator,
    ) -> Result<Phases, String> {
        if !(beta.is_finite() && beta > 0.0) {
            return Err(format!("beta = {beta}: must be finite and > 0"));
        }
        check_example(s, e)?;
        let w = Weights::of_substrate(s);
        let sum = weight_checksum(&w);
        if self.written != Some(sum) {
            self.id = write_weights(client, &self.id, &w)?;
            self.written = Some(sum);
        }
        let key = phase_key(self.seed, self.counter, 0);
        self.counter += 1;
        let free = self.run(client, s, &[e.cond.clone()], key)?.remove(0);
        let out = readout_units(s);
        let mut conds = vec![bias_nudged(&out, &free, e, beta)];
        if est == Estimator::Symmetric {
            conds.push(bias_nudged(&out, &free, e, -beta));
        }
        let mut r = self.run(client, s, &conds, key)?;
        let minus = if r.len() == 2 {
            r.remove(1)
        } else {
            Vec::new()
        };
        Ok(Phases {
            free,
            plus: r.remove(0),
            minus,
        })
    }

    /// RUN each conditioning (added to `s`'s biases) with `key`, as many at once as the board has
    /// slots; every unit's average state.
    fn run<T: Transport>(
        &mut self,
        client: &mut Client<T>,
        s: &Substrate,
        conds: &[Vec<f64>],
        key: [u32; 3],
    ) -> Result<Vec<Vec<f64>>, String> {
        let err = |e: LinkError| e.to_string();
        let ch = Chunks::of(&self.id)?;
        let units = s.units();
        let lsb: Vec<f64> = (0..units).map(|u| s.state_lsb(u)).collect();
        let n = self.budget.sweeps as f64;
        let mut out = Vec::new();
        for group in conds.chunks(self.id.slots as usize) {
            let mut reqs = Vec::new();
            for (slot, c) in group.iter().enumerate() {
                let b: Vec<f64> = s.bias.iter().zip(c).map(|(x, y)| x + y).collect();
                let codes = Fixed::bias_codes(s, &b)?;
                for (k, part) in codes.chunks(ch.cond).enumerate() {
                    reqs.push(Request::SetConditioning {
                        slot: slot as u8,
                        offset: (k * ch.cond) as u16,
                        codes: part.to_vec(),
                    });
                }
                reqs.push(Request::Run(RunRequest {
                    slot: slot as u8,
                    sweeps: self.budget.sweeps,
                    burn_in: self.budget.burn_in,
                    key,
                    flags: RUN_ALL_UNITS,
                }));
            }
            client.transact(&reqs).map_err(err)?;
            for slot in 0..group.len() as u8 {
                let mut sums: Vec<i32> = Vec::with_capacity(units);
                while sums.len() < units {
                    let p = client
                        .call(Request::Readout {
                            slot,
                            offset: sums.len() as u16,
                            count: (units - sums.len()).min(ch.sums) as u16,
                        })
                        .map_err(err)?;
                    let ro = Readout::decode(&p).ok_or("malformed READOUT reply")?;
                    match ro.state {
                        SlotState::Done => sums.extend(ro.sums),
                        SlotState::Busy if sums.is_empty() => std::thread::sleep(
                            std::time::Duration::from_micros(300).mul_f64(client.time_scale()),
                        ),
                        st => {
                            return Err(format!(
                                "slot {slot}: {st:?} while reading a phase's result (the board was reset?)"
                            ))
                        }
                    }
                }
                self.phases_run += 1;
                out.push(
                    sums.iter()
                        .zip(&lsb)
                        .map(|(&c, &l)| c as f64 * l / n)
                        .collect(),
                );
            }
        }
        Ok(out)
    }
}
