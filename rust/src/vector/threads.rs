//! How many threads a scan gets, from throughput measured in this process.
//!
//! A second thread doubles the scan rate where the matrix sits in a large L3
//! (Xeon, 480 MB) and gains nothing from DRAM or when another process holds the
//! other core; a constant threshold tuned on one CPU loses on the next. So each
//! size class (log2 of the bytes scanned) keeps the measured nanoseconds per
//! byte for one thread and for all of them (the caller plus the persistent
//! workers of [`super::pool`]): the first calls of a class try both
//! (the calibration), later calls take the faster one, and every
//! [`REPROBE_EVERY`]th call re-measures the other so a change of load is noticed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Below this many bytes a scan is shorter than waking a parked worker: always one thread.
pub const MIN_PARALLEL_BYTES: usize = 256 * 1024;
/// One call in this many, per size class, measures the option not currently preferred.
pub const REPROBE_EVERY: u64 = 32;
const CLASSES: usize = 48;

/// Per size class: calls, and an average ns/byte (f64 bits) for 1 thread and for [`wide`].
struct Class {
    calls: AtomicU64,
    rate: [AtomicU64; 2],
    samples: [AtomicU64; 2],
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Class = Class {
    calls: AtomicU64::new(0),
    rate: [AtomicU64::new(0), AtomicU64::new(0)],
    samples: [AtomicU64::new(0), AtomicU64::new(0)],
};
static CLASSES_STATS: [Class; CLASSES] = [EMPTY; CLASSES];

fn class_of(bytes: usize) -> usize {
    (usize::BITS - bytes.leading_zeros()) as usize % CLASSES
}

/// The parallel option: the caller plus every pool worker (2 on a 2-vCPU machine).
pub fn wide() -> usize {
    super::pool::capacity()
}

/// The thread count for a scan of `bytes` (1 or [`wide`]), and whether its time should be recorded.
pub fn choose(bytes: usize) -> (usize, bool) {
    let wide = wide();
    if bytes < MIN_PARALLEL_BYTES || wide < 2 {
        return (1, false);
    }
    let class = &CLASSES_STATS[class_of(bytes)];
    let call = class.calls.fetch_add(1, Ordering::Relaxed);
    let samples = [class.samples[0].load(Ordering::Relaxed), class.samples[1].load(Ordering::Relaxed)];
    // calibration: alternate until each option has two samples (the first may pay page faults)
    if samples[0] < 2 || samples[1] < 2 {
        return (if samples[0] <= samples[1] { 1 } else { wide }, true);
    }
    let rate = |i: usize| f64::from_bits(class.rate[i].load(Ordering::Relaxed));
    let wide_wins = rate(1) < rate(0);
    let reprobe = call % REPROBE_EVERY == REPROBE_EVERY - 1;
    (if wide_wins != reprobe { wide } else { 1 }, true)
}

/// Record that a scan of `bytes` on `threads` threads took `secs`.
pub fn record(bytes: usize, threads: usize, secs: f64) {
    let i = match threads {
        1 => 0,
        t if t == wide() && t > 1 => 1,
        _ => return,
    };
    if bytes == 0 {
        return;
    }
    let class = &CLASSES_STATS[class_of(bytes)];
    let ns_per_byte = secs * 1e9 / bytes as f64;
    let n = class.samples[i].fetch_add(1, Ordering::Relaxed);
    let old = f64::from_bits(class.rate[i].load(Ordering::Relaxed));
    // the first sample is dropped (page faults, cold cache); then a moving average of samples
    // capped at twice it: one scan stalled by a descheduled caller (6x its time) would otherwise
    // move the class to one thread for REPROBE_EVERY scans, a lasting slowdown still moves it
    let new = if n <= 1 { ns_per_byte } else { 0.75 * old + 0.25 * ns_per_byte.min(2.0 * old) };
    class.rate[i].store(new.to_bits(), Ordering::Relaxed);
}

/// Times a scan when [`choose`] asked for it.
pub struct Timer {
    start: Option<Instant>,
    bytes: usize,
    threads: usize,
}

impl Timer {
    pub fn start(bytes: usize, threads: usize, measure: bool) -> Timer {
        Timer { start: measure.then(Instant::now), bytes, threads }
    }

    pub fn stop(self) {
        if let Some(start) = self.start {
            record(self.bytes, self.threads, start.elapsed().as_secs_f64());
        }
    }
}

/// What was measured so far: `(log2 bytes class, ns/byte 1 thread, ns/byte on [`wide`])` per calibrated class.
pub fn measured() -> Vec<(usize, f64, f64)> {
    (0..CLASSES)
        .filter_map(|c| {
            let class = &CLASSES_STATS[c];
            let s = [class.samples[0].load(Ordering::Relaxed), class.samples[1].load(Ordering::Relaxed)];
            (s[0] > 0 || s[1] > 0).then(|| {
                let rate =
                    |i: usize| if s[i] > 0 { f64::from_bits(class.rate[i].load(Ordering::Relaxed)) } else { f64::NAN };
                (c, rate(0), rate(1))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_stalled_scan_does_not_move_the_class_to_one_thread() {
        // calibrated: all threads 1.0 ns/B, one thread 2.2; then one scan on all threads stalls
        // (the caller descheduled for a time slice: 6x its time). Before, the moving average took a
        // quarter of it (2.25 > 2.2) and the next REPROBE_EVERY - 1 scans ran on one thread.
        let bytes = 5 << 40; // a class no real test scans
        for _ in 0..8 {
            let (t, _) = choose(bytes);
            record(bytes, t, if t > 1 { 1.0 } else { 2.2 });
        }
        if wide() >= 2 {
            let (t, _) = choose(bytes);
            assert_eq!(t, wide());
            record(bytes, t, 6.0);
            let picks: Vec<usize> = (0..REPROBE_EVERY - 1).map(|_| choose(bytes).0).collect();
            assert!(picks.iter().filter(|&&t| t == wide()).count() as u64 >= REPROBE_EVERY - 2, "{picks:?}");
            // a lasting change (the other core taken: all threads slower than one) still moves it
            for _ in 0..40 {
                let (t, _) = choose(bytes);
                record(bytes, t, if t > 1 { 2.6 } else { 2.2 });
            }
            assert_eq!(choose(bytes).0, 1);
        }
    }

    #[test]
    fn small_scans_stay_on_one_thread() {
        assert_eq!(choose(1024), (1, false));
    }

    #[test]
    fn the_faster_option_wins_after_calibration() {
        let bytes = 3 << 40; // a class no real test scans
        for _ in 0..8 {
            let (t, measure) = choose(bytes);
            assert!(measure);
            record(bytes, t, if t > 1 { 1.0 } else { 3.0 });
        }
        if wide() >= 2 {
            let picks: Vec<usize> = (0..REPROBE_EVERY).map(|_| choose(bytes).0).collect();
            assert_eq!(picks.iter().filter(|&&t| t == wide()).count() as u64, REPROBE_EVERY - 1);
        }
    }
}
