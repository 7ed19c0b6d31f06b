//! Persistent scan workers: a search hands its chunks to threads that already run.
//!
//! Spawning a thread per call cost more than a whole scan of a small matrix
//! (1k x 1536: 4 ms with two spawned threads against 0.35 ms on one), so the
//! workers are started once per process and park on a condvar between jobs;
//! after a job each spins for [`SPIN`] first, so back-to-back searches hand off
//! in well under a microsecond instead of a futex wake-up.
//!
//! Work is shared, not assigned: a job is `chunks` contiguous row ranges that
//! the caller and the workers claim from one atomic counter. When another
//! process holds the other core and a worker wakes late, the caller simply
//! claims the remaining chunks itself, so a descheduled worker costs at most
//! one chunk of waiting instead of half the scan.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long an idle worker (and a caller waiting for the last chunk) spins before parking:
/// searches in a burst (a deep recall) then hand off without a futex wake-up (tens of µs on
/// a VM). The spin yields the CPU every few hundred pauses, and stays short: a 1 ms spin made
/// numpy's own (spinning) BLAS threads in the same process 30x slower on a 2-vCPU machine.
pub const SPIN: Duration = Duration::from_micros(200);
/// The most workers started, whatever the CPU count (the thread choice tries 1 and all of them).
pub const MAX_WORKERS: usize = 15;

/// What every thread of a job runs (it claims chunks until none are left).
type Body<'a> = dyn Fn() + Sync + 'a;

/// A job's entry point with its lifetime erased; valid while the posting call runs.
#[derive(Clone, Copy)]
struct JobRef(*const Body<'static>);
// SAFETY: the pointee is `Sync`, and `run` keeps it alive until every worker that took the
// pointer has returned from it (it waits for `active == 0` after withdrawing the job).
unsafe impl Send for JobRef {}

struct State {
    generation: u64,
    job: Option<JobRef>,
    panicked: bool,
}

struct Pool {
    /// The process that started the workers: a `fork()`ed child has none of them (and may hold
    /// a copy of a lock taken mid-job), so there every job runs on the caller alone.
    pid: u32,
    /// Workers started (spawn failures leave fewer; the caller covers the rest).
    workers: AtomicUsize,
    state: Mutex<State>,
    wake: Condvar,
    done: Condvar,
    /// A copy of `State::generation` that spinning workers read without the lock.
    posted: AtomicU64,
    /// Workers inside the current job (incremented under the lock while the job is posted).
    active: AtomicUsize,
    /// One job at a time: a second concurrent search runs on its own thread only.
    busy: AtomicBool,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<&'static Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let pool: &'static Pool = Box::leak(Box::new(Pool {
            pid: std::process::id(),
            workers: AtomicUsize::new(0),
            state: Mutex::new(State { generation: 0, job: None, panicked: false }),
            wake: Condvar::new(),
            done: Condvar::new(),
            posted: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            busy: AtomicBool::new(false),
        }));
        let want = cpus.saturating_sub(1).min(MAX_WORKERS);
        let started = (0..want)
            .filter(|i| {
                std::thread::Builder::new().name(format!("crewai-scan-{i}")).spawn(move || worker(pool)).is_ok()
            })
            .count();
        pool.workers.store(started, Ordering::Release);
        pool
    })
}

/// Workers this process can use (0 in a forked child: the parent's threads were not copied).
fn usable(pool: &Pool) -> usize {
    if pool.pid == std::process::id() {
        pool.workers.load(Ordering::Acquire)
    } else {
        0
    }
}

/// Threads a job can run on: the caller plus the pool's workers.
pub fn capacity() -> usize {
    usable(pool()) + 1
}

fn worker(pool: &'static Pool) {
    let mut seen = 0u64;
    loop {
        let spin_start = Instant::now();
        let mut spins = 0u32;
        while pool.posted.load(Ordering::Acquire) == seen {
            std::hint::spin_loop();
            spins += 1;
            if spins.is_multiple_of(256) {
                if spin_start.elapsed() > SPIN {
                    break;
                }
                std::thread::yield_now(); // a runnable thread on this CPU goes first
            }
        }
        let mut st = lock(&pool.state);
        while st.generation == seen {
            st = pool.wake.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
        seen = st.generation;
        let Some(job) = st.job else { continue }; // withdrawn before this worker woke
        pool.active.fetch_add(1, Ordering::AcqRel);
        drop(st);
        // SAFETY: the job is still posted (checked under the lock) and its poster waits for
        // `active` to drop to zero before its closure goes out of scope.
        let ok = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.0)() })).is_ok();
        if !ok {
            lock(&pool.state).panicked = true;
        }
        if pool.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _st = lock(&pool.state);
            pool.done.notify_all();
        }
    }
}

/// Run `body` on the caller and on up to `helpers` pool workers at once; returns when all have left it.
///
/// `body` must share its work through its own atomic counter (workers may join late or never).
/// A panic in a worker's `body` is re-raised here.
pub fn broadcast(helpers: usize, body: &Body<'_>) {
    let pool = pool();
    let workers = usable(pool);
    if helpers == 0 || workers == 0 || pool.busy.swap(true, Ordering::Acquire) {
        body();
        return;
    }
    // SAFETY: only the lifetime is erased: the job is withdrawn and every worker inside it has
    // returned before this function returns or unwinds (see `Finish`), so it never dangles.
    let erased: &'static Body<'static> = unsafe { std::mem::transmute::<&Body<'_>, &'static Body<'static>>(body) };
    {
        let mut st = lock(&pool.state);
        st.generation += 1;
        st.job = Some(JobRef(erased));
        st.panicked = false;
        pool.posted.store(st.generation, Ordering::Release);
        // at most `helpers` are needed; waking extra ones costs only their spin
        if helpers >= workers {
            pool.wake.notify_all();
        } else {
            for _ in 0..helpers {
                pool.wake.notify_one();
            }
        }
    }
    struct Finish(&'static Pool);
    impl Drop for Finish {
        fn drop(&mut self) {
            let pool = self.0;
            lock(&pool.state).job = None; // no worker joins from here on
            let start = Instant::now();
            let mut spins = 0u32;
            while pool.active.load(Ordering::Acquire) != 0 {
                std::hint::spin_loop();
                spins += 1;
                if spins.is_multiple_of(256) && start.elapsed() > SPIN {
                    let mut st = lock(&pool.state);
                    while pool.active.load(Ordering::Acquire) != 0 {
                        st = pool.done.wait(st).unwrap_or_else(PoisonError::into_inner);
                    }
                    break;
                }
            }
            pool.busy.store(false, Ordering::Release);
        }
    }
    let finish = Finish(pool);
    body();
    drop(finish);
    let panicked = std::mem::take(&mut lock(&pool.state).panicked);
    if panicked {
        panic!("a scan worker panicked");
    }
}

/// `scan(start, end)` over `0..count` cut into `chunks` contiguous ranges, run on the caller and
/// `threads - 1` workers; the results come back in range order.
pub fn map_chunks<T: Send>(
    count: usize,
    chunks: usize,
    threads: usize,
    scan: impl Fn(usize, usize) -> T + Sync,
) -> Vec<T> {
    let chunks = chunks.clamp(1, count.max(1));
    if threads <= 1 || chunks == 1 {
        let size = count.div_ceil(chunks).max(1);
        return (0..chunks).map(|c| scan((c * size).min(count), ((c + 1) * size).min(count))).collect();
    }
    let size = count.div_ceil(chunks);
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<T>>> = (0..chunks).map(|_| Mutex::new(None)).collect();
    let body = || loop {
        let c = next.fetch_add(1, Ordering::Relaxed);
        if c >= chunks {
            break;
        }
        let out = scan((c * size).min(count), ((c + 1) * size).min(count));
        *slots[c].lock().unwrap_or_else(PoisonError::into_inner) = Some(out);
    };
    broadcast(threads - 1, &body);
    slots
        .into_iter()
        .map(|s| s.into_inner().unwrap_or_else(PoisonError::into_inner).expect("every chunk ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chunk_runs_once_in_order() {
        for threads in [1, 2, 4] {
            for (count, chunks) in [(0, 4), (1, 4), (10, 3), (1000, 8), (7, 7)] {
                let got = map_chunks(count, chunks, threads, |a, b| (a, b));
                let covered: Vec<usize> = got.iter().flat_map(|&(a, b)| a..b).collect();
                assert_eq!(covered, (0..count).collect::<Vec<_>>(), "{threads} {count} {chunks}");
            }
        }
    }

    #[test]
    fn many_jobs_back_to_back_and_from_several_callers() {
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for i in 0..300usize {
                        let sum: usize = map_chunks(i, 4, 2, |a, b| (a..b).sum::<usize>()).into_iter().sum();
                        assert_eq!(sum, (0..i).sum::<usize>());
                    }
                });
            }
        });
    }

    #[test]
    fn a_worker_panic_reaches_the_caller_and_the_pool_survives() {
        let hit = std::panic::catch_unwind(|| {
            map_chunks(64, 64, 2, |a, _| {
                if a == 63 {
                    panic!("boom");
                }
                std::thread::sleep(Duration::from_micros(200));
            })
        });
        assert!(hit.is_err());
        assert_eq!(map_chunks(10, 2, 2, |a, b| b - a), vec![5, 5]);
    }
}
