//! Bounded fan-out: the shared Tokio runtime, the claim counter and the
//! caller-side bookkeeping of one batch (plain Rust; the PyO3 glue lives in
//! `python/fanout.rs`).
//!
//! The rules match `crewai_rust/tasks/_collect.py` exactly:
//! * an item settles once: with its value, its error, or a timeout when it ran
//!   longer than `timeout` (a late result is dropped);
//! * with `fail_fast`, the first item to settle with an error cancels every
//!   item not yet started and is the error the caller raises;
//! * the caller returns only when no started item is still running.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};

/// How long an idle blocking thread of the shared runtime lives.
const THREAD_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// The one Tokio runtime of the process, created on first use. Its single
/// async worker only hands out semaphore permits; jobs run on its blocking
/// pool, which grows with the number of jobs running at once.
pub fn shared_runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(1024)
            .thread_keep_alive(THREAD_KEEP_ALIVE)
            .thread_name("crewai_rust-task")
            .enable_time()
            .build()
            .expect("crewai_rust: cannot start the task runtime")
    })
}

/// Hands out item indices `0..n` to workers; cancelling stops the handing out
/// and tells exactly how many items were handed out (they run, or ran).
#[derive(Debug)]
pub struct ClaimCounter {
    next: AtomicUsize,
    n: usize,
}

/// Set on the counter by cancel, so every later claim falls past `n`.
const CANCELLED: usize = 1 << (usize::BITS - 1);

impl ClaimCounter {
    pub fn new(n: usize) -> Self {
        assert!(n < CANCELLED, "batch too large");
        ClaimCounter { next: AtomicUsize::new(0), n }
    }

    /// The next item to run, or `None` when all are handed out or the batch is cancelled.
    pub fn claim(&self) -> Option<usize> {
        if self.next.load(Ordering::Relaxed) >= self.n {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::AcqRel);
        (index < self.n).then_some(index)
    }

    /// Stop handing out items; returns how many were handed out before.
    pub fn cancel(&self) -> usize {
        let before = self.next.fetch_or(CANCELLED, Ordering::AcqRel);
        (before & !CANCELLED).min(self.n)
    }
}

/// How an item ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settled<V, E> {
    Value(V),
    Error(E),
    TimedOut,
}

/// The caller's view of one batch: outcomes in input order, running count,
/// deadlines and the first error.
#[derive(Debug)]
pub struct Collector<V, E> {
    n: usize,
    timeout: Option<Duration>,
    fail_fast: bool,
    outcomes: Vec<Option<Settled<V, E>>>,
    settled: usize,
    running: usize,
    first_error: Option<usize>,
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl<V, E> Collector<V, E> {
    pub fn new(n: usize, timeout: Option<Duration>, fail_fast: bool) -> Self {
        Collector {
            n,
            timeout,
            fail_fast,
            outcomes: (0..n).map(|_| None).collect(),
            settled: 0,
            running: 0,
            first_error: None,
            deadlines: BinaryHeap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    pub fn settled_count(&self) -> usize {
        self.settled
    }

    pub fn running(&self) -> usize {
        self.running
    }

    /// An item's callable started at `at`.
    pub fn started(&mut self, index: usize, at: Instant) {
        self.running += 1;
        if let Some(timeout) = self.timeout {
            self.deadlines.push(Reverse((at + timeout, index)));
        }
    }

    /// An item's callable returned; true when this settled the item (false: it had timed out).
    pub fn returned(&mut self, index: usize, outcome: Result<V, E>) -> bool {
        self.running = self.running.saturating_sub(1);
        if self.outcomes[index].is_some() {
            return false;
        }
        self.settle(
            index,
            match outcome {
                Ok(v) => Settled::Value(v),
                Err(e) => Settled::Error(e),
            },
        );
        true
    }

    /// Settle every running item whose deadline is at or before `now`; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let mut count = 0;
        while let Some(Reverse((deadline, index))) = self.deadlines.peek().copied() {
            if deadline > now {
                break;
            }
            self.deadlines.pop();
            if self.outcomes[index].is_none() {
                self.settle(index, Settled::TimedOut);
                count += 1;
            }
        }
        count
    }

    /// The earliest deadline of an unsettled running item.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        while let Some(Reverse((deadline, index))) = self.deadlines.peek().copied() {
            if self.outcomes[index].is_some() {
                self.deadlines.pop();
            } else {
                return Some(deadline);
            }
        }
        None
    }

    /// True once a fail-fast batch has its first error.
    pub fn should_cancel(&self) -> bool {
        self.fail_fast && self.first_error.is_some()
    }

    /// Index of the first item that settled with an error or a timeout.
    pub fn first_error(&self) -> Option<usize> {
        self.first_error
    }

    fn settle(&mut self, index: usize, outcome: Settled<V, E>) {
        if !matches!(outcome, Settled::Value(_)) && self.first_error.is_none() {
            self.first_error = Some(index);
        }
        self.outcomes[index] = Some(outcome);
        self.settled += 1;
    }

    /// Take the outcome of `index` (None when it never ran: cancelled).
    pub fn take(&mut self, index: usize) -> Option<Settled<V, E>> {
        self.outcomes[index].take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_every_index_once_then_stops() {
        let counter = ClaimCounter::new(3);
        assert_eq!(counter.claim(), Some(0));
        assert_eq!(counter.claim(), Some(1));
        assert_eq!(counter.claim(), Some(2));
        assert_eq!(counter.claim(), None);
        assert_eq!(counter.cancel(), 3);
    }

    #[test]
    fn cancel_reports_claimed_and_blocks_later_claims() {
        let counter = ClaimCounter::new(10);
        counter.claim();
        counter.claim();
        assert_eq!(counter.cancel(), 2);
        assert_eq!(counter.claim(), None);
        assert_eq!(counter.cancel(), 2, "a second cancel reports the same count");
    }

    #[test]
    fn concurrent_claims_hand_out_each_index_exactly_once() {
        let counter = std::sync::Arc::new(ClaimCounter::new(10_000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let c = counter.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
                    while let Some(i) = c.claim() {
                        got.push(i);
                    }
                    got
                })
            })
            .collect();
        let mut all: Vec<usize> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
        all.sort_unstable();
        assert_eq!(all, (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn outcomes_keep_input_order_and_first_error() {
        let mut c: Collector<i32, String> = Collector::new(3, None, true);
        let t = Instant::now();
        for i in 0..3 {
            c.started(i, t);
        }
        assert!(c.returned(2, Ok(20)));
        assert!(c.returned(1, Err("boom".into())));
        assert!(c.should_cancel());
        assert!(c.returned(0, Err("later".into())));
        assert_eq!(c.first_error(), Some(1));
        assert_eq!(c.running(), 0);
        assert_eq!(c.take(2), Some(Settled::Value(20)));
        assert_eq!(c.take(0), Some(Settled::Error("later".into())));
    }

    #[test]
    fn a_timeout_settles_once_and_drops_the_late_result() {
        let mut c: Collector<i32, String> = Collector::new(2, Some(Duration::from_millis(10)), false);
        let t = Instant::now();
        c.started(0, t);
        c.started(1, t);
        assert!(c.returned(1, Ok(1)));
        assert_eq!(c.next_deadline(), Some(t + Duration::from_millis(10)));
        assert_eq!(c.expire(t + Duration::from_millis(5)), 0);
        assert_eq!(c.expire(t + Duration::from_millis(10)), 1);
        assert_eq!(c.running(), 1, "the overrunning callable still runs");
        assert!(!c.returned(0, Ok(99)), "its late result is dropped");
        assert_eq!(c.take(0), Some(Settled::TimedOut));
        assert_eq!(c.first_error(), Some(0));
        assert!(!c.should_cancel(), "return_exceptions never cancels");
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn runtime_is_created_once() {
        let a = shared_runtime() as *const Runtime;
        let b = shared_runtime() as *const Runtime;
        assert_eq!(a, b);
        let value = shared_runtime().block_on(async { shared_runtime().spawn_blocking(|| 7).await.unwrap() });
        assert_eq!(value, 7);
    }
}
