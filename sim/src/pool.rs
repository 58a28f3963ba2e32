//! A persistent pool of worker threads: started once, then each [`Pool::broadcast`] hands every
//! thread one call of the same job and waits for all of them (no thread is spawned per call).

use std::sync::{Arc, Condvar, Mutex};

/// A job borrowed for the duration of one [`Pool::broadcast`].
#[derive(Clone, Copy)]
struct Job(*const (dyn Fn(usize) + Sync));

// SAFETY: the pointee is `Sync` and outlives every use (`broadcast` waits for all workers before
// returning, and clears the pointer).
unsafe impl Send for Job {}

struct State {
    job: Option<Job>,
    /// Counts broadcasts; a worker runs each generation's job once.
    generation: u64,
    /// Workers still running the current job.
    pending: usize,
    panicked: bool,
    shutdown: bool,
}

struct Shared {
    state: Mutex<State>,
    work: Condvar,
    done: Condvar,
}

/// `threads` threads: the caller of [`Pool::broadcast`] and `threads - 1` parked workers.
pub struct Pool {
    shared: Arc<Shared>,
    /// Serialises broadcasts from different callers.
    call: Mutex<()>,
    workers: Vec<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({} threads)", self.threads())
    }
}

impl Pool {
    /// A pool of `threads` threads (at least one: the caller's).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                job: None,
                generation: 0,
                pending: 0,
                panicked: false,
                shutdown: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let workers = (1..threads.max(1))
            .map(|t| {
                let sh = shared.clone();
                std::thread::Builder::new()
                    .name(format!("thermo-worker-{t}"))
                    .spawn(move || worker(&sh, t))
                    .expect("cannot start a worker thread")
            })
            .collect();
        Pool {
            shared,
            call: Mutex::new(()),
            workers,
        }
    }

    /// Threads, the caller's included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Run `f(t)` for every thread `t` in `0..threads()` (`t = 0` on the calling thread), and
    /// return when all have returned. A panic in a worker is raised here.
    pub fn broadcast(&self, f: &(dyn Fn(usize) + Sync)) {
        if self.workers.is_empty() {
            f(0);
            return;
        }
        let _call = self.call.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: only the lifetime is erased; the pointer is cleared below before `f`'s borrow
        // ends, after every worker has finished with it.
        let job: Job = unsafe {
            Job(std::mem::transmute::<
                *const (dyn Fn(usize) + Sync + '_),
                *const (dyn Fn(usize) + Sync + 'static),
            >(f))
        };
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.job = Some(job);
            st.generation += 1;
            st.pending = self.workers.len();
            st.panicked = false;
            self.shared.work.notify_all();
        }
        let mine = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(0)));
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while st.pending > 0 {
            st = self.shared.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.job = None;
        let panicked = st.panicked;
        drop(st);
        if let Err(e) = mine {
            std::panic::resume_unwind(e);
        }
        assert!(!panicked, "a worker thread panicked");
    }
}

fn worker(sh: &Shared, t: usize) {
    let mut seen = 0;
    loop {
        let job = {
            let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
            while st.generation == seen && !st.shutdown {
                st = sh.work.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.shutdown {
                return;
            }
            seen = st.generation;
            st.job.expect("a broadcast sets its job")
        };
        // SAFETY: `broadcast` keeps the job alive until `pending` reaches zero.
        let f = unsafe { &*job.0 };
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(t))).is_ok();
        let mut st = sh.state.lock().unwrap_or_else(|e| e.into_inner());
        st.panicked |= !ok;
        st.pending -= 1;
        if st.pending == 0 {
            sh.done.notify_all();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        {
            let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            st.shutdown = true;
            self.shared.work.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// `f(t, &mut items[t])` for every item, item `t` on pool thread `t` (`pool.threads()` must be at
/// least `items.len()`); returns the results in item order.
pub fn for_each_mut<T: Send, R: Send>(
    pool: &Pool,
    items: &mut [T],
    f: impl Fn(usize, &mut T) -> R + Sync,
) -> Vec<R> {
    assert!(items.len() <= pool.threads(), "more items than threads");
    let cells: Vec<Mutex<(&mut T, Option<R>)>> =
        items.iter_mut().map(|x| Mutex::new((x, None))).collect();
    pool.broadcast(&|t| {
        if let Some(c) = cells.get(t) {
            let mut c = c.lock().unwrap_or_else(|e| e.into_inner());
            let (item, out) = &mut *c;
            *out = Some(f(t, item));
        }
    });
    cells
        .into_iter()
        .map(|c| {
            c.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .1
                .expect("every item ran")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_thread_runs_each_broadcast_once() {
        let pool = Pool::new(3);
        for round in 0..50usize {
            let mut items = vec![0usize; 3];
            let out = for_each_mut(&pool, &mut items, |t, v| {
                *v = t + round;
                t * 10
            });
            assert_eq!(items, vec![round, round + 1, round + 2]);
            assert_eq!(out, vec![0, 10, 20]);
        }
    }
}
