//! Timing loops of the fixed engine's parts, one at a time, for profiling (`perf record`):
//! `cargo bench -p thermo-sim --bench engine -- WHAT [UNITS] [SECONDS]` with `WHAT` one of
//! `single` (one chain), `batch1` / `batch2` (64 chains on 1 / 2 threads), `noise-single` (step 2
//! of one chain alone), `noise-batch` (step 2 of 64 chains alone), `pool` (empty broadcasts to a
//! 2-thread pool). Prints unit updates (noise samples, broadcasts) per second of wall time and of
//! CPU time. `thermo bench` prints the figures the project quotes.

use thermo_sim::example::{random_substrate, ExampleSpec};
use thermo_sim::{FixedBatch, FixedEngine, Substrate};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let what = args.first().map(String::as_str).unwrap_or("single");
    let units: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1024);
    let secs: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let s = if units == 0 {
        Substrate::from_file(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../models/digits-clamped-rank8.json.sim.json"
        )))
        .expect("digits")
    } else {
        Substrate::from_config(&random_substrate(&ExampleSpec {
            units,
            modules: 5,
            rank: 8,
            degree: 16,
            lanes: 16,
            ..Default::default()
        }))
        .expect("substrate")
    };
    let d = s.units();
    let timed = |per_call: f64, f: &mut dyn FnMut()| {
        let (t, c0) = (std::time::Instant::now(), cpu_seconds());
        let mut n = 0u64;
        while t.elapsed().as_secs_f64() < secs {
            f();
            n += 1;
        }
        let work = n as f64 * per_call;
        let wall = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - c0;
        let on = if what == "pool" {
            String::new()
        } else {
            format!(", {d} units")
        };
        println!(
            "{what}{on}: {:.3e} per second, {:.3e} per CPU second ({:.2} cores busy)",
            work / wall,
            work / cpu,
            cpu / wall
        );
    };
    let chains: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(64);
    let seeds: Vec<u64> = (1..=chains as u64).collect();
    match what {
        "single" => {
            let mut e = FixedEngine::fixed(&s, 1);
            timed(100.0 * d as f64, &mut || (0..100).for_each(|_| e.sweep()));
        }
        "batch1" | "batch2" => {
            let threads = if what == "batch1" { 1 } else { 2 };
            let mut b = FixedBatch::fixed(&s, &seeds, threads);
            timed(20.0 * chains as f64 * d as f64, &mut || b.run(20));
        }
        "noise-single" => {
            let mut st: [Vec<u32>; 3] = Default::default();
            for l in 0..16u32 {
                let n = thermo_sim::noise::NoiseLane::new(1, l);
                for (comp, v) in st.iter_mut().zip(n.rng.s) {
                    comp.push(v);
                }
            }
            let mut z = vec![0i16; d];
            timed(100.0 * d as f64, &mut || {
                (0..100)
                    .for_each(|_| thermo_sim::noise::gaussian_fixed_rounds(&mut st, 16, 1, &mut z))
            });
        }
        "noise-batch" => {
            let mut st: [Vec<u32>; 3] = Default::default();
            for l in 0..16u32 {
                for &seed in &seeds {
                    let n = thermo_sim::noise::NoiseLane::new(seed, l);
                    for (comp, v) in st.iter_mut().zip(n.rng.s) {
                        comp.push(v);
                    }
                }
            }
            let mut z = vec![0i16; d * 64];
            timed(20.0 * 64.0 * d as f64, &mut || {
                (0..20)
                    .for_each(|_| thermo_sim::noise::gaussian_fixed_rounds(&mut st, 64, 16, &mut z))
            });
        }
        "pool" => {
            // One broadcast of an empty job to a 2-thread pool: the cost of handing work to the
            // threads once (a batched `run` pays it once per call, whatever its sweeps).
            let pool = thermo_sim::pool::Pool::new(2);
            timed(1000.0, &mut || {
                (0..1000).for_each(|_| pool.broadcast(&|_| {}))
            });
        }
        other => panic!("unknown measurement {other}"),
    }
}

/// CPU time of the process's threads so far (Linux scheduler statistics), seconds.
fn cpu_seconds() -> f64 {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("procfs")
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        ns += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    ns as f64 * 1e-9
}
