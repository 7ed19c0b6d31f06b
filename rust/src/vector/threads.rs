//! How a scan runs, from throughput measured in this process: on how many threads, and
//! whether a range scan prefetches ahead down its read streams.
//!
//! A second thread doubles the scan rate where the matrix sits in a large L3
//! (Xeon, 480 MB) and gains nothing from DRAM or when another process holds the
//! other core; software prefetching took the Xeon's float16 scan 10-15% faster and
//! left its float32 scan where it was, and a CPU with stronger prefetchers of its own
//! may lose by it. A constant tuned on one CPU loses on the next. So each size class
//! (log2 of the bytes scanned) keeps the measured nanoseconds per byte of every
//! [`Plan`] it may use: the first calls of a class try each (the calibration), later
//! calls take the fastest, and every [`REPROBE_EVERY`]th call re-measures another so
//! a change of load is noticed. Every plan gives the same result bits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Below this many bytes a scan is shorter than waking a parked worker: one thread, prefetching, unmeasured.
pub const MIN_PARALLEL_BYTES: usize = 256 * 1024;
/// One call in this many, per size class, measures a plan not currently preferred.
pub const REPROBE_EVERY: u64 = 32;
const CLASSES: usize = 48;
/// A plan without prefetch is taken only when it measures this much faster than its width's
/// prefetching plan (two samples of a DRAM-bound scan differ by a few percent run to run).
const NO_PREFETCH_MARGIN: f64 = 0.95;
/// Plans per class: (1 thread, [`wide`]) x (no prefetch, prefetch); index `2 * wide + prefetch`.
const PLANS: usize = 4;

/// How one scan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub threads: usize,
    /// Whether a range scan prefetches ahead down its streams (listed rows always prefetch the next ones).
    pub prefetch: bool,
}

impl Plan {
    /// The default of an unmeasured scan.
    pub const fn on(threads: usize) -> Plan {
        Plan { threads, prefetch: true }
    }
}

/// Per size class: calls, and per plan an average ns/byte (f64 bits) and its sample count.
struct Class {
    calls: AtomicU64,
    rate: [AtomicU64; PLANS],
    samples: [AtomicU64; PLANS],
}

#[allow(clippy::declare_interior_mutable_const)]
const ZERO: AtomicU64 = AtomicU64::new(0);
#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Class = Class { calls: ZERO, rate: [ZERO; PLANS], samples: [ZERO; PLANS] };
static CLASSES_STATS: [Class; CLASSES] = [EMPTY; CLASSES];

fn class_of(bytes: usize) -> usize {
    (usize::BITS - bytes.leading_zeros()) as usize % CLASSES
}

/// The parallel option: the caller plus every pool worker (2 on a 2-vCPU machine).
pub fn wide() -> usize {
    super::pool::capacity()
}

fn plan_of(index: usize, wide: usize) -> Plan {
    Plan { threads: if index >= 2 { wide } else { 1 }, prefetch: index % 2 == 1 }
}

/// The plan for a scan of `bytes`, and whether its time should be recorded. `threads` 0 lets
/// the measurements pick 1 or [`wide`] threads, any other count is kept; `layouts` says whether
/// the prefetch choice matters (a range scan; listed rows and batches ignore it).
pub fn choose(bytes: usize, threads: usize, layouts: bool) -> (Plan, bool) {
    let wide = wide();
    if bytes < MIN_PARALLEL_BYTES {
        return (Plan::on(threads.max(1)), false);
    }
    let widths: &[usize] = match threads {
        0 if wide >= 2 => &[0, 1],
        0 | 1 => &[0],
        t if t == wide => &[1],
        t => return (Plan::on(t), false), // a count the classes do not measure
    };
    let prefetches: &[usize] = if layouts { &[1, 0] } else { &[1] };
    let mut candidates = [0usize; PLANS];
    let mut count = 0;
    for &w in widths {
        for &p in prefetches {
            candidates[count] = 2 * w + p;
            count += 1;
        }
    }
    let candidates = &candidates[..count];
    if count == 1 {
        return (plan_of(candidates[0], wide), false);
    }
    let class = &CLASSES_STATS[class_of(bytes)];
    let call = class.calls.fetch_add(1, Ordering::Relaxed);
    let samples = |i: usize| class.samples[i].load(Ordering::Relaxed);
    // calibration: the least-sampled plan until each has two samples (the first may pay page faults)
    let fewest = candidates.iter().copied().min_by_key(|&i| samples(i)).unwrap_or(candidates[0]);
    if samples(fewest) < 2 {
        return (plan_of(fewest, wide), true);
    }
    let rate = |i: usize| f64::from_bits(class.rate[i].load(Ordering::Relaxed));
    // per width, prefetching unless not prefetching is clearly faster: the two often differ by
    // less than the noise of two samples, and prefetching is what the Xeon measured best
    let effective = |i: usize| {
        let prefetching = i | 1;
        if i == prefetching || !candidates.contains(&prefetching) || rate(i) < NO_PREFETCH_MARGIN * rate(prefetching) {
            rate(i)
        } else {
            f64::INFINITY
        }
    };
    let best =
        candidates.iter().copied().min_by(|&a, &b| effective(a).total_cmp(&effective(b))).unwrap_or(candidates[0]);
    if call % REPROBE_EVERY != REPROBE_EVERY - 1 {
        return (plan_of(best, wide), true);
    }
    // a reprobe: the other plans in turn
    let others: Vec<usize> = candidates.iter().copied().filter(|&i| i != best).collect();
    (plan_of(others[(call / REPROBE_EVERY) as usize % others.len()], wide), true)
}

/// Record that a scan of `bytes` with `plan` took `secs`.
pub fn record(bytes: usize, plan: Plan, secs: f64) {
    let width = match plan.threads {
        1 => 0,
        t if t == wide() && t > 1 => 1,
        _ => return,
    };
    if bytes == 0 {
        return;
    }
    let i = 2 * width + usize::from(plan.prefetch);
    let class = &CLASSES_STATS[class_of(bytes)];
    let ns_per_byte = secs * 1e9 / bytes as f64;
    let n = class.samples[i].fetch_add(1, Ordering::Relaxed);
    let old = f64::from_bits(class.rate[i].load(Ordering::Relaxed));
    // the first sample is dropped (page faults, cold cache); then a moving average of samples
    // capped at twice it: one scan stalled by a descheduled caller (6x its time) would otherwise
    // move the class to another plan for REPROBE_EVERY scans, a lasting slowdown still moves it
    let new = if n <= 1 { ns_per_byte } else { 0.75 * old + 0.25 * ns_per_byte.min(2.0 * old) };
    class.rate[i].store(new.to_bits(), Ordering::Relaxed);
}

/// Times a scan when [`choose`] asked for it.
pub struct Timer {
    start: Option<Instant>,
    bytes: usize,
    plan: Plan,
}

impl Timer {
    pub fn start(bytes: usize, plan: Plan, measure: bool) -> Timer {
        Timer { start: measure.then(Instant::now), bytes, plan }
    }

    pub fn stop(self) {
        if let Some(start) = self.start {
            record(self.bytes, self.plan, start.elapsed().as_secs_f64());
        }
    }
}

/// One size class's measurements, as [`measured`] lists them.
pub type ClassRates = (usize, f64, f64, bool, bool);

/// What was measured so far, per calibrated class: `(log2 bytes class, ns/byte on 1 thread,
/// ns/byte on [`wide`], whether 1 thread prefetches, whether [`wide`] prefetches)`, each rate
/// that of the prefetch choice [`choose`] takes (NaN where none was measured).
pub fn measured() -> Vec<ClassRates> {
    (0..CLASSES)
        .filter_map(|c| {
            let class = &CLASSES_STATS[c];
            let s = |i: usize| class.samples[i].load(Ordering::Relaxed);
            let r = |i: usize| if s(i) > 0 { f64::from_bits(class.rate[i].load(Ordering::Relaxed)) } else { f64::NAN };
            // per width: the prefetch choice `choose` takes (a NaN rate never wins)
            let best = |w: usize| {
                let (off, on) = (r(2 * w), r(2 * w + 1));
                if on.is_nan() || off < NO_PREFETCH_MARGIN * on {
                    (off, false)
                } else {
                    (on, true)
                }
            };
            ((0..PLANS).any(|i| s(i) > 0)).then(|| {
                let ((one, one_pf), (all, all_pf)) = (best(0), best(1));
                (c, one, all, one_pf || one.is_nan(), all_pf || all.is_nan())
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread count of a measured thread-only choice (no prefetch option), recorded as it ran.
    fn threads_of(bytes: usize) -> Plan {
        choose(bytes, 0, false).0
    }

    #[test]
    fn one_stalled_scan_does_not_move_the_class_to_one_thread() {
        // calibrated: all threads 1.0 ns/B, one thread 2.2; then one scan on all threads stalls
        // (the caller descheduled for a time slice: 6x its time). Before, the moving average took a
        // quarter of it (2.25 > 2.2) and the next REPROBE_EVERY - 1 scans ran on one thread.
        let bytes = 5 << 40; // a class no real test scans
        for _ in 0..8 {
            let p = threads_of(bytes);
            record(bytes, p, if p.threads > 1 { 1.0 } else { 2.2 });
        }
        if wide() >= 2 {
            let p = threads_of(bytes);
            assert_eq!(p.threads, wide());
            record(bytes, p, 6.0);
            let picks: Vec<usize> = (0..REPROBE_EVERY - 1).map(|_| threads_of(bytes).threads).collect();
            assert!(picks.iter().filter(|&&t| t == wide()).count() as u64 >= REPROBE_EVERY - 2, "{picks:?}");
            // a lasting change (the other core taken: all threads slower than one) still moves it
            for _ in 0..40 {
                let p = threads_of(bytes);
                record(bytes, p, if p.threads > 1 { 2.6 } else { 2.2 });
            }
            assert_eq!(threads_of(bytes).threads, 1);
        }
    }

    #[test]
    fn small_scans_stay_on_one_thread_and_prefetch() {
        assert_eq!(choose(1024, 0, true), (Plan::on(1), false));
        assert_eq!(choose(1024, 2, true), (Plan::on(2), false));
    }

    #[test]
    fn the_faster_option_wins_after_calibration() {
        let bytes = 3 << 40; // a class no real test scans
        for _ in 0..8 {
            let (p, measure) = choose(bytes, 0, false);
            assert!(measure);
            assert!(p.prefetch, "a scan whose prefetch choice does not matter keeps the default");
            record(bytes, p, if p.threads > 1 { 1.0 } else { 3.0 });
        }
        if wide() >= 2 {
            let picks: Vec<usize> = (0..REPROBE_EVERY).map(|_| threads_of(bytes).threads).collect();
            assert_eq!(picks.iter().filter(|&&t| t == wide()).count() as u64, REPROBE_EVERY - 1);
        }
    }

    #[test]
    fn a_range_scan_measures_its_prefetch_choice_on_every_width() {
        // a CPU whose own prefetchers do better without ours: 1 thread 2.0 ns/B with prefetch,
        // 1.5 without; all threads 1.0 with, 0.8 without
        let bytes = 7 << 40;
        let cost = |p: Plan| match (p.threads > 1, p.prefetch) {
            (false, true) => 2.0,
            (false, false) => 1.5,
            (true, true) => 1.0,
            (true, false) => 0.8,
        };
        let mut tried = std::collections::HashSet::new();
        for _ in 0..12 {
            let (p, measure) = choose(bytes, 0, true);
            assert!(measure);
            tried.insert((p.threads, p.prefetch));
            record(bytes, p, cost(p));
        }
        let widths = if wide() >= 2 { 2 } else { 1 };
        assert_eq!(tried.len(), 2 * widths, "every plan calibrated: {tried:?}");
        let picks: Vec<Plan> = (0..REPROBE_EVERY).map(|_| choose(bytes, 0, true).0).collect();
        let want = Plan { threads: if widths == 2 { wide() } else { 1 }, prefetch: false };
        assert_eq!(picks.iter().filter(|&&p| p == want).count() as u64, REPROBE_EVERY - 1, "{picks:?}");
        // a forced thread count still gets the faster prefetch choice of its own width
        let one: Vec<Plan> = (0..REPROBE_EVERY).map(|_| choose(bytes, 1, true).0).collect();
        assert!(one.iter().all(|p| p.threads == 1));
        assert!(one.iter().filter(|p| !p.prefetch).count() as u64 >= REPROBE_EVERY - 1, "{one:?}");
        let m = measured().into_iter().find(|m| m.0 == class_of(bytes)).unwrap();
        let want_rate = 1.5e9 / bytes as f64;
        assert!((m.1 - want_rate).abs() < 1e-9 * want_rate && !m.3, "{m:?}");
    }

    /// Calibrates a one-thread range scan of `bytes` (prefetching costs 1.0 s, not prefetching
    /// `without`), then counts the prefetching plans of the next [`REPROBE_EVERY`] choices.
    fn prefetching_picks_after(bytes: usize, without: f64) -> u64 {
        for _ in 0..12 {
            let (p, _) = choose(bytes, 1, true);
            record(bytes, p, if p.prefetch { 1.0 } else { without });
        }
        (0..REPROBE_EVERY).filter(|_| choose(bytes, 1, true).0.prefetch).count() as u64
    }

    #[test]
    fn a_no_prefetch_plan_within_the_noise_does_not_win() {
        // not prefetching measures 3% faster (noise on the Xeon, where the two are equal): keep prefetching
        assert_eq!(prefetching_picks_after(11 << 40, 0.97), REPROBE_EVERY - 1);
    }

    #[test]
    fn a_prefetching_cpu_keeps_prefetching() {
        assert_eq!(prefetching_picks_after(9 << 40, 1.2), REPROBE_EVERY - 1);
    }
}
