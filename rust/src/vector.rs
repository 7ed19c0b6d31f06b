//! Exact top-k vector search over a row-major float32 matrix.
//!
//! Scores every row (or only the selected rows, read where they lie) against
//! the query and keeps the `k` best in a heap, so no score array is written.
//! The dot product is dispatched at run time (AVX-512F, AVX2+FMA, portable:
//! see [`simd`]); the thread count comes from measured throughput ([`threads`]).
//! Results are ordered by score descending, then row ascending, the same
//! contract as the numpy twin in `crewai_rust/memory/_vector_py.py (re-rank: _rerank.py)`.
//! [`shadow`] scans a float16 copy with a proven bound and re-scores in float32;
//! [`batch`] runs many queries over one pass of the rows.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

pub mod batch;
pub mod blocksum;
pub mod pool;
pub mod rerank;
pub mod shadow;
pub mod simd;
pub mod threads;

use simd::{DotFn, DotsFn, Rows};

/// How rows are ranked (the final scores are recomputed in float64 by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// `2 x.q - |x|^2`: the same order as `-|x - q|^2`.
    L2,
    /// `x.q / |x|` (0 for a zero row): the same order as cosine similarity.
    Cosine,
}

impl Metric {
    pub fn from_code(code: u8) -> Result<Metric> {
        match code {
            0 => Ok(Metric::L2),
            1 => Ok(Metric::Cosine),
            other => Err(Error::InvalidArgument(format!("unknown metric code {other}"))),
        }
    }
}

/// The inputs of one search; `matrix` holds at least `n * dim` floats.
pub struct Search<'a> {
    pub matrix: &'a [f32],
    pub dim: usize,
    pub n: usize,
    pub sqnorms: &'a [f32],
    pub query: &'a [f32],
    pub rows: Option<&'a [i64]>,
    pub k: usize,
    pub metric: Metric,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    score: f32,
    row: usize,
}

impl PartialEq for Hit {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Hit {}
impl PartialOrd for Hit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Hit {
    /// Greater = worse: lower score, or the same score on a later row. The heap's top is the worst kept hit.
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.row.cmp(&other.row))
    }
}

pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Hit>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    #[inline]
    pub(crate) fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if let Some(worst) = self.heap.peek() {
            if hit < *worst {
                self.heap.pop();
                self.heap.push(hit);
            }
        }
    }

    pub(crate) fn merge(mut self, other: TopK) -> TopK {
        for hit in other.heap {
            self.push(hit);
        }
        self
    }

    pub(crate) fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec()
    }
}

/// The float32 dot product the scans use (the best tier of this CPU).
pub fn best_dot() -> DotFn {
    simd::dot_for(simd::detected_tier())
}

/// The rank score; NaN (`inf - inf` on rows near the float32 limit) ranks last, as in the numpy twin.
#[inline]
pub(crate) fn rank(dot: f32, sqnorm: f32, metric: Metric) -> f32 {
    let r = match metric {
        Metric::L2 => 2.0 * dot - sqnorm,
        Metric::Cosine => {
            if sqnorm > 0.0 {
                dot / sqnorm.sqrt()
            } else {
                0.0
            }
        }
    };
    if r.is_nan() {
        f32::NEG_INFINITY
    } else {
        r
    }
}

/// Rows scored per block-kernel call: one indirect call per block, scores kept in a stack buffer.
pub(crate) const BLOCK_ROWS: usize = 64;

/// Calls `f` with the rows of positions `start..end` of the scan, a block at a time: listed rows
/// in order; a range as four interleaved far-apart streams (see [`Rows::Streams`], prefetched
/// ahead when `prefetch`) plus a tail. The order rows are scored in never changes a result (the
/// top k is a total order's), nor does `prefetch`.
#[inline]
pub(crate) fn for_blocks<'a>(s: &Search<'a>, start: usize, end: usize, prefetch: bool, mut f: impl FnMut(Rows<'a>)) {
    let mut i = start;
    match s.rows {
        Some(rows) => {
            while i < end {
                let j = (i + BLOCK_ROWS).min(end);
                f(Rows::Pick(&rows[i..j]));
                i = j;
            }
        }
        None => {
            let gap = (end - start) / simd::STREAMS;
            let mut t = 0;
            while t < gap {
                let len = (BLOCK_ROWS / simd::STREAMS).min(gap - t);
                f(Rows::Streams { first: start + t, gap, len, prefetch });
                t += len;
            }
            i += simd::STREAMS * gap;
            while i < end {
                let j = (i + BLOCK_ROWS).min(end);
                f(Rows::Range(i, j));
                i = j;
            }
        }
    }
}

fn scan_range(s: &Search<'_>, dots: DotsFn, start: usize, end: usize, prefetch: bool) -> TopK {
    let mut top = TopK::new(s.k);
    let mut buf = [0.0f32; BLOCK_ROWS];
    for_blocks(s, start, end, prefetch, |rows| {
        dots(s.matrix, s.dim, s.query, rows, &mut buf);
        for (p, &dot) in buf[..rows.len()].iter().enumerate() {
            let row = rows.row(p);
            top.push(Hit { score: rank(dot, s.sqnorms[row], s.metric), row });
        }
    });
    top
}

pub(crate) fn validate(s: &Search<'_>) -> Result<usize> {
    if s.query.len() != s.dim {
        return Err(Error::InvalidArgument(format!(
            "query has {} values, the matrix rows have {}",
            s.query.len(),
            s.dim
        )));
    }
    if s.matrix.len() < s.n * s.dim || s.sqnorms.len() < s.n {
        return Err(Error::InvalidArgument(format!(
            "n={} rows of {} do not fit a matrix of {} floats and {} norms",
            s.n,
            s.dim,
            s.matrix.len(),
            s.sqnorms.len()
        )));
    }
    match s.rows {
        None => Ok(s.n),
        Some(rows) => {
            if let Some(bad) = rows.iter().find(|&&r| r < 0 || r as usize >= s.n) {
                return Err(Error::InvalidArgument(format!("row {bad} outside 0..{}", s.n)));
            }
            Ok(rows.len())
        }
    }
}

/// Chunks per thread of a parallel scan: a worker that wakes late (another process holds its
/// core) leaves its chunks to the caller, so the wait is one chunk, not half the scan.
pub(crate) const CHUNKS_PER_THREAD: usize = 8;

/// Run `scan(start, end)` over `0..count` in contiguous chunks on `threads` threads (the caller
/// and persistent [`pool`] workers); the results come back in row order.
pub(crate) fn split<T: Send>(count: usize, threads: usize, scan: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    if threads <= 1 {
        return vec![scan(0, count)];
    }
    pool::map_chunks(count, threads * CHUNKS_PER_THREAD, threads, scan)
}

/// How a scan of `count` rows (`bytes`) runs: `threads` as asked (0 = the measured choice), and
/// for a range scan (`layouts`) the measured prefetch choice; and whether to time the scan.
pub(crate) fn scan_plan(threads: usize, count: usize, bytes: usize, layouts: bool) -> (threads::Plan, bool) {
    let threads = if threads == 0 { 0 } else { threads.min(count).max(1) };
    threads::choose(bytes, threads, layouts)
}

/// The `k` best rows as `(row, rank score)`, best first, ties to the lower row.
///
/// `threads` 0 picks one or two threads from throughput measured in this process.
pub fn top_k(s: &Search<'_>, threads: usize) -> Result<Vec<(usize, f32)>> {
    let count = validate(s)?;
    if s.k == 0 || count == 0 {
        return Ok(Vec::new());
    }
    let dots = simd::dots_for(simd::detected_tier());
    let bytes = count * s.dim * 4;
    let (plan, measure) = scan_plan(threads, count, bytes, s.rows.is_none());
    let timer = threads::Timer::start(bytes, plan, measure);
    let parts = split(count, plan.threads, |start, end| scan_range(s, dots, start, end, plan.prefetch));
    timer.stop();
    let top = parts.into_iter().fold(TopK::new(s.k), TopK::merge);
    Ok(top.into_sorted().into_iter().map(|h| (h.row, h.score)).collect())
}

/// Validate an embedding and encode it as little-endian float32 bytes (the stored BLOB).
///
/// NaN, infinities and values beyond the float32 range are errors, so nothing
/// unsearchable is ever written.
pub fn f32_bytes(values: &[f64]) -> Result<Vec<u8>> {
    // Non-finite values are reported before out-of-range ones, as the numpy twin does.
    if !values.iter().all(|v| v.is_finite()) {
        return Err(Error::InvalidArgument("contains NaN or infinite values".into()));
    }
    let mut out = Vec::with_capacity(values.len() * 4);
    for &v in values {
        if v.abs() > f32::MAX as f64 {
            return Err(Error::InvalidArgument("has values beyond the float32 range".into()));
        }
        out.extend_from_slice(&(v as f32).to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn matrix(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n * dim)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    pub(crate) fn sqnorms(m: &[f32], dim: usize) -> Vec<f32> {
        m.chunks(dim).map(|r| r.iter().map(|x| x * x).sum()).collect()
    }

    fn brute(m: &[f32], dim: usize, q: &[f32], rows: &[usize], k: usize) -> Vec<usize> {
        let mut scored: Vec<(f64, usize)> = rows
            .iter()
            .map(|&r| {
                let d: f64 = m[r * dim..r * dim + dim].iter().zip(q).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
                (d, r)
            })
            .collect();
        scored.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
        scored.into_iter().take(k).map(|(_, r)| r).collect()
    }

    #[test]
    fn f32_bytes_encodes_and_rejects() {
        let bytes = f32_bytes(&[1.5, -2.0]).unwrap();
        assert_eq!(bytes, [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        assert!(f32_bytes(&[f64::NAN]).is_err());
        assert!(f32_bytes(&[f64::INFINITY]).is_err());
        assert!(f32_bytes(&[1e39]).unwrap_err().to_string().contains("float32 range"));
        assert_eq!(f32_bytes(&[]).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn dot_twins_agree() {
        let a = matrix(1, 77, 1);
        let b = matrix(1, 77, 2);
        let exact: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
        assert!((simd::dot_portable(&a, &b) as f64 - exact).abs() < 1e-4);
        assert!((best_dot()(&a, &b) as f64 - exact).abs() < 1e-4);
    }

    #[test]
    fn finds_the_nearest_rows_with_and_without_selection() {
        let (n, dim) = (500, 37);
        let m = matrix(n, dim, 3);
        let norms = sqnorms(&m, dim);
        let q = matrix(1, dim, 4);
        let all: Vec<usize> = (0..n).collect();
        for threads in [1, 2, 3] {
            let s = Search { matrix: &m, dim, n, sqnorms: &norms, query: &q, rows: None, k: 7, metric: Metric::L2 };
            let got: Vec<usize> = top_k(&s, threads).unwrap().into_iter().map(|(r, _)| r).collect();
            assert_eq!(got, brute(&m, dim, &q, &all, 7));
            let sel: Vec<i64> = (0..n as i64).filter(|r| r % 3 == 1).collect();
            let s = Search { rows: Some(&sel), ..s };
            let got: Vec<usize> = top_k(&s, threads).unwrap().into_iter().map(|(r, _)| r).collect();
            let sel_u: Vec<usize> = sel.iter().map(|&r| r as usize).collect();
            assert_eq!(got, brute(&m, dim, &q, &sel_u, 7));
        }
    }

    #[test]
    fn block_scans_on_any_thread_count_give_the_per_row_scan_bits() {
        // the reference: the scan as it was before the block kernel, one dot_for call per row
        let per_row = |s: &Search<'_>| {
            let dot = best_dot();
            let mut top = TopK::new(s.k);
            let rows: Vec<usize> = match s.rows {
                None => (0..s.n).collect(),
                Some(r) => r.iter().map(|&r| r as usize).collect(),
            };
            for row in rows {
                let x = &s.matrix[row * s.dim..row * s.dim + s.dim];
                top.push(Hit { score: rank(dot(x, s.query), s.sqnorms[row], s.metric), row });
            }
            top.into_sorted().into_iter().map(|h| (h.row, h.score.to_bits())).collect::<Vec<_>>()
        };
        for dim in [5, 384, 1537] {
            let n = 1003;
            let m = matrix(n, dim, 11);
            let norms = sqnorms(&m, dim);
            let q = matrix(1, dim, 12);
            let sel: Vec<i64> = (0..n as i64).rev().filter(|r| r % 7 != 3).collect();
            for metric in [Metric::L2, Metric::Cosine] {
                for rows in [None, Some(&sel[..])] {
                    let s = Search { matrix: &m, dim, n, sqnorms: &norms, query: &q, rows, k: 70, metric };
                    let want = per_row(&s);
                    for threads in [1, 2, 5] {
                        let got: Vec<_> =
                            top_k(&s, threads).unwrap().into_iter().map(|(r, v)| (r, v.to_bits())).collect();
                        assert_eq!(got, want, "{dim} {metric:?} {} {threads}", rows.is_some());
                    }
                    // both prefetch choices of the scan plan score every row alike
                    for prefetch in [true, false] {
                        let dots = simd::dots_for(simd::detected_tier());
                        let top = scan_range(&s, dots, 0, s.rows.map_or(n, |r| r.len()), prefetch);
                        let got: Vec<_> = top.into_sorted().into_iter().map(|h| (h.row, h.score.to_bits())).collect();
                        assert_eq!(got, want, "{dim} {metric:?} {} prefetch {prefetch}", rows.is_some());
                    }
                }
            }
        }
    }

    #[test]
    fn ties_go_to_the_lower_row_and_k_beyond_n_returns_all() {
        let dim = 4;
        let m = vec![1.0f32; dim * 5];
        let norms = sqnorms(&m, dim);
        let q = vec![1.0f32; dim];
        let s = Search { matrix: &m, dim, n: 5, sqnorms: &norms, query: &q, rows: None, k: 3, metric: Metric::Cosine };
        let rows: Vec<usize> = top_k(&s, 2).unwrap().into_iter().map(|(r, _)| r).collect();
        assert_eq!(rows, vec![0, 1, 2]);
        let s = Search { k: 50, ..s };
        assert_eq!(top_k(&s, 1).unwrap().len(), 5);
    }

    #[test]
    fn zero_rows_score_zero_under_cosine() {
        let m = vec![0.0f32, 0.0, 1.0, 0.0];
        let norms = sqnorms(&m, 2);
        let q = vec![-1.0f32, 0.0];
        let s =
            Search { matrix: &m, dim: 2, n: 2, sqnorms: &norms, query: &q, rows: None, k: 2, metric: Metric::Cosine };
        assert_eq!(top_k(&s, 1).unwrap(), vec![(0, 0.0), (1, -1.0)]);
    }

    #[test]
    fn bad_shapes_and_rows_are_errors() {
        let m = vec![0.0f32; 8];
        let norms = vec![0.0f32; 2];
        let q = vec![0.0f32; 3];
        let s = Search { matrix: &m, dim: 4, n: 2, sqnorms: &norms, query: &q, rows: None, k: 1, metric: Metric::L2 };
        assert!(top_k(&s, 1).is_err());
        let q = vec![0.0f32; 4];
        let bad = [5i64];
        let s = Search { query: &q, rows: Some(&bad), ..s };
        assert!(top_k(&s, 1).is_err());
        let s = Search { rows: None, n: 3, ..s };
        assert!(top_k(&s, 1).is_err());
        assert!(Metric::from_code(9).is_err());
    }
}
