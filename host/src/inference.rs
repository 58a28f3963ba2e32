//! The inference driver of `thermo infer`: configure (or check) the board, stream conditioning
//! vectors through the board's slots so several inferences are in flight, and collect readouts.

use crate::client::{Client, LinkError};
use crate::transport::Transport;
use std::collections::VecDeque;
use std::path::Path;
use thermo_proto::{
    structure_hash, weight_checksum, Identity, Readout, Request, RunRequest, SlotState, Space,
    Weights, FEATURE_ALL_UNITS, FEATURE_RHO, MAX_PAYLOAD, MAX_RUN_SWEEPS, READOUT_REPLY_HEADER,
    RUN_ALL_UNITS, RUN_FLAGS, RUN_RHO, SET_CONDITIONING_HEADER, WORD, WRITE_MEM_HEADER,
};
use thermo_sim::{Fixed, Substrate};

/// Parameters of every inference.
#[derive(Clone, Copy, Debug)]
pub struct InferOptions {
    /// Sweeps averaged.
    pub sweeps: u32,
    /// Sweeps discarded first.
    pub burn_in: u32,
    /// Seed of inference `i` is `seed + i`.
    pub seed: u64,
}

/// Results of a batch.
#[derive(Clone, Debug)]
pub struct InferResult {
    /// Per input, the readout sums as the board returned them (state codes summed over sweeps).
    pub sums: Vec<Vec<i32>>,
    /// Per input, the time-averaged readout units in real units.
    pub means: Vec<Vec<f64>>,
    /// Inferences run again because the board lost them (reset or power cycle).
    pub requeued: u64,
}

/// Request sizes for a board that takes payloads of up to `max_payload` bytes (IDENTIFY;
/// the protocol's `MAX_PAYLOAD` at most): 32-bit words per SET_CONDITIONING and per READOUT
/// reply and per WRITE_MEM, after their headers.
/// Attach to a board that must run `sub`: its structure hash and the weight checksum of its
/// compiled weights ([`Client::attach`]).
pub fn attach_model<T: Transport>(
    client: &mut Client<T>,
    sub: &Substrate,
) -> Result<Identity, LinkError> {
    let w = weight_checksum(&Weights::of_substrate(sub));
    client.attach(structure_hash(sub), Some(w))
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Chunks {
    pub(crate) cond: usize,
    pub(crate) sums: usize,
    pub(crate) words: usize,
}

impl Chunks {
    pub(crate) fn of(id: &Identity) -> Result<Chunks, String> {
        let pay = (id.max_payload as usize).min(MAX_PAYLOAD);
        if pay < 16 {
            return Err(format!(
                "the board's IDENTIFY reports max_payload {pay}, too small for any request"
            ));
        }
        Ok(Chunks {
            cond: (pay - SET_CONDITIONING_HEADER) / WORD,
            sums: (pay - READOUT_REPLY_HEADER) / WORD,
            words: (pay - WRITE_MEM_HEADER) / WORD,
        })
    }
}

fn submit(slot: u8, codes: &[i32], run: RunRequest, ch: Chunks) -> Vec<Request> {
    let mut reqs: Vec<Request> = codes
        .chunks(ch.cond)
        .enumerate()
        .map(|(k, chunk)| Request::SetConditioning {
            slot,
            offset: (k * ch.cond) as u16,
            codes: chunk.to_vec(),
        })
        .collect();
    reqs.push(Request::Run(RunRequest { slot, ..run }));
    reqs
}

/// Run `inputs` (conditioning vectors `b`, one per inference) on the board behind `client`.
/// `progress(done, total)` after each result.
pub fn infer<T: Transport>(
    client: &mut Client<T>,
    sub: &Substrate,
    inputs: &[Vec<f64>],
    opts: InferOptions,
    progress: impl FnMut(usize, usize, &Client<T>),
) -> Result<InferResult, String> {
    infer_with(client, sub, inputs, opts, 0, progress)
}

/// [`infer`] with RUN flags `flags`: [`RUN_ALL_UNITS`] (the results hold every unit, in unit
/// order, instead of the readout units) and [`RUN_RHO`] (sums and means of `rho(x)` instead of
/// `x`: a clamped substrate's readout). A board whose IDENTIFY lacks the flag's feature is
/// refused before anything runs, naming it.
pub fn infer_with<T: Transport>(
    client: &mut Client<T>,
    sub: &Substrate,
    inputs: &[Vec<f64>],
    opts: InferOptions,
    flags: u8,
    mut progress: impl FnMut(usize, usize, &Client<T>),
) -> Result<InferResult, String> {
    if flags & !RUN_FLAGS != 0 {
        return Err(format!(
            "RUN flags {flags:#x}: only RUN_ALL_UNITS and RUN_RHO exist"
        ));
    }
    if opts.sweeps == 0 || opts.sweeps > MAX_RUN_SWEEPS {
        return Err(format!(
            "--sweeps {} out of range 1..={MAX_RUN_SWEEPS} (16-bit states summed in 32 bits)",
            opts.sweeps
        ));
    }
    let codes: Vec<Vec<i32>> = inputs
        .iter()
        .enumerate()
        .map(|(i, b)| Fixed::bias_codes(sub, b).map_err(|e| format!("input row {}: {e}", i + 1)))
        .collect::<Result<_, _>>()?;
    let id = attach_model(client, sub).map_err(|e| e.to_string())?;
    for (flag, feature, what) in [
        (
            RUN_ALL_UNITS,
            FEATURE_ALL_UNITS,
            "every unit's sums (RUN_ALL_UNITS)",
        ),
        (RUN_RHO, FEATURE_RHO, "sums of rho(x) (RUN_RHO)"),
    ] {
        if flags & flag != 0 && !id.has(feature) {
            return Err(format!(
                "the board does not return {what}: its IDENTIFY features are {:#04x}, without {feature:#04x} (a build of the link without that option)",
                id.features
            ));
        }
    }
    let r = if flags & RUN_ALL_UNITS != 0 {
        id.units as usize
    } else {
        id.readout_units as usize
    };
    let slots = id.slots.max(1);
    let ch = Chunks::of(&id)?;
    // the value of one code of each summed unit (its module's state format)
    let lsb: Vec<f64> = if flags & RUN_ALL_UNITS != 0 {
        (0..sub.units()).collect::<Vec<_>>()
    } else {
        thermo_sim::model::readout_units(sub)
    }
    .into_iter()
    .map(|u| sub.state_lsb(u))
    .collect();
    let mut sums: Vec<Option<Vec<i32>>> = vec![None; inputs.len()];
    let mut inflight: VecDeque<(usize, u8)> = VecDeque::new();
    let mut free: VecDeque<u8> = (0..slots).collect();
    let mut next = 0usize;
    let mut requeued = 0u64;
    let mut done = 0usize;
    let run_of = |i: usize| RunRequest {
        slot: 0,
        sweeps: opts.sweeps,
        burn_in: opts.burn_in,
        key: thermo_sim::noise::run_key(opts.seed.wrapping_add(i as u64)),
        flags,
    };
    let e = |e: LinkError| e.to_string();
    while done < inputs.len() {
        // Keep every slot busy.
        let mut batch = Vec::new();
        while next < inputs.len() {
            let Some(slot) = free.pop_front() else { break };
            batch.extend(submit(slot, &codes[next], run_of(next), ch));
            inflight.push_back((next, slot));
            next += 1;
        }
        if !batch.is_empty() {
            client.transact(&batch).map_err(e)?;
        }
        // Collect the oldest.
        let Some(&(i, slot)) = inflight.front() else {
            break;
        };
        let first = Request::Readout {
            slot,
            offset: 0,
            count: r.min(ch.sums) as u16,
        };
        let p = client.call(first).map_err(e)?;
        let ro = Readout::decode(&p).ok_or("malformed READOUT reply")?;
        match ro.state {
            SlotState::Busy => {
                // Poll again after 300 us of the board's time.
                std::thread::sleep(
                    std::time::Duration::from_micros(300).mul_f64(client.time_scale()),
                );
                continue;
            }
            SlotState::Idle => {
                // The board lost this inference (reset or power cycle): submit it again.
                requeued += 1;
                client
                    .transact(&submit(slot, &codes[i], run_of(i), ch))
                    .map_err(e)?;
                continue;
            }
            SlotState::Done => {}
        }
        let mut all = ro.sums;
        let reqs: Vec<Request> = (ch.sums..r)
            .step_by(ch.sums)
            .map(|off| Request::Readout {
                slot,
                offset: off as u16,
                count: (r - off).min(ch.sums) as u16,
            })
            .collect();
        for p in client.transact(&reqs).map_err(e)? {
            let ro = Readout::decode(&p).ok_or("malformed READOUT reply")?;
            if ro.state != SlotState::Done {
                return Err(format!("slot {slot} changed state while being read"));
            }
            all.extend(ro.sums);
        }
        if all.len() != r || ro.sweeps != opts.sweeps {
            return Err(format!(
                "slot {slot}: {} sums over {} sweeps, expected {r} over {}",
                all.len(),
                ro.sweeps,
                opts.sweeps
            ));
        }
        if sums[i].replace(all).is_some() {
            return Err(format!("input {i} answered twice"));
        }
        inflight.pop_front();
        free.push_back(slot);
        done += 1;
        progress(done, inputs.len(), client);
    }
    let sums: Vec<Vec<i32>> = sums.into_iter().map(|s| s.unwrap_or_default()).collect();
    let means = sums
        .iter()
        .map(|s| {
            s.iter()
                .zip(&lsb)
                .map(|(&v, &l)| v as f64 * l / opts.sweeps as f64)
                .collect()
        })
        .collect();
    Ok(InferResult {
        sums,
        means,
        requeued,
    })
}

/// Configure the board's default biases from the model (WRITE_MEM), so the board holds the model's
/// bias for units that a conditioning vector does not set.
pub fn configure<T: Transport>(client: &mut Client<T>, sub: &Substrate) -> Result<(), String> {
    let codes = Fixed::bias_codes(sub, &sub.bias)?;
    let id = attach_model(client, sub).map_err(|e| e.to_string())?;
    let ch = Chunks::of(&id)?;
    let reqs: Vec<Request> = codes
        .chunks(ch.words)
        .enumerate()
        .map(|(k, c)| Request::WriteMem {
            space: Space::Bias,
            addr: (k * ch.words) as u32,
            words: c.to_vec(),
        })
        .collect();
    client.transact(&reqs).map_err(|e| e.to_string())?;
    Ok(())
}

/// Read conditioning inputs: `.npy` (2-D, one row per inference) or CSV (one row per inference,
/// comma-separated, `#` comments).
pub fn read_inputs(path: &Path) -> Result<Vec<Vec<f64>>, String> {
    if path.extension().and_then(|e| e.to_str()) == Some("npy") {
        return thermo_sim::io::read_npy_rows(path).map_err(|e| e.to_string());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let row: Result<Vec<f64>, String> = line
            .split(',')
            .enumerate()
            .map(|(c, v)| {
                v.trim().parse::<f64>().map_err(|_| {
                    format!(
                        "{}:{}: column {}: '{}' is not a number",
                        path.display(),
                        n + 1,
                        c + 1,
                        v.trim()
                    )
                })
            })
            .collect();
        rows.push(row?);
    }
    Ok(rows)
}

/// Check every input row against the substrate (width, finiteness, the bias format's range)
/// before anything is sent; errors name the file and the row (1-based, comments and blank
/// lines not counted).
pub fn check_inputs(sub: &Substrate, inputs: &[Vec<f64>], path: &Path) -> Result<(), String> {
    if inputs.is_empty() {
        return Err(format!("{}: no inputs", path.display()));
    }
    for (i, b) in inputs.iter().enumerate() {
        Fixed::bias_codes(sub, b).map_err(|e| format!("{}: row {}: {e}", path.display(), i + 1))?;
    }
    Ok(())
}

/// Write results as `.npy` or CSV by extension.
pub fn write_outputs(path: &Path, rows: &[Vec<f64>]) -> Result<(), String> {
    if path.extension().and_then(|e| e.to_str()) == Some("npy") {
        let cols = rows.first().map_or(0, |r| r.len());
        let flat: Vec<f64> = rows.iter().flatten().copied().collect();
        return thermo_sim::io::write_npy(path, &[rows.len(), cols], &flat)
            .map_err(|e| e.to_string());
    }
    let mut s = String::new();
    for r in rows {
        s.push_str(
            &r.iter()
                .map(|v| format!("{v:.9}"))
                .collect::<Vec<_>>()
                .join(","),
        );
        s.push('\n');
    }
    std::fs::write(path, s).map_err(|e| format!("{}: {e}", path.display()))
}
