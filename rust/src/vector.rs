//! Exact top-k vector search over a row-major float32 matrix.
//!
//! Scores every row (or only the selected rows, read where they lie) against
//! the query and keeps the `k` best in a heap, so no score array is written.
//! The dot product uses AVX2+FMA when the CPU has it (runtime dispatch) and a
//! portable 8-lane loop otherwise. Large scans split their rows over two
//! threads. Results are ordered by score descending, then row ascending, the
//! same contract as the numpy twin in `crewai_rust/memory/_kernel_py.py`.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

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

/// Rows x dim floats (128 MB) below which a second thread is not worth it: one core
/// already streams near the memory bandwidth, and a second thread collapses whenever
/// another process holds the other core (measured, see benchmarks/bench_memory.py).
pub const TWO_THREAD_MIN_FLOATS: usize = 32 * 1024 * 1024;

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
struct Hit {
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

struct TopK {
    k: usize,
    heap: BinaryHeap<Hit>,
}

impl TopK {
    fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }

    #[inline]
    fn push(&mut self, hit: Hit) {
        if self.heap.len() < self.k {
            self.heap.push(hit);
        } else if let Some(worst) = self.heap.peek() {
            if hit < *worst {
                self.heap.pop();
                self.heap.push(hit);
            }
        }
    }

    fn merge(mut self, other: TopK) -> TopK {
        for hit in other.heap {
            self.push(hit);
        }
        self
    }

    fn into_sorted(self) -> Vec<Hit> {
        self.heap.into_sorted_vec()
    }
}

/// Dot product, portable: eight independent lanes the compiler keeps in vector registers.
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * 8..a.len() {
        tail += a[i] * b[i];
    }
    acc.iter().sum::<f32>() + tail
}

/// Dot product of the common prefix of `a` and `b` with AVX2 + FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA (`best_dot` checks at run time). Every load
/// stays below `min(a.len(), b.len())`, so no slice is read out of bounds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut s0 = _mm256_setzero_ps();
    let mut s1 = _mm256_setzero_ps();
    let mut s2 = _mm256_setzero_ps();
    let mut s3 = _mm256_setzero_ps();
    let mut i = 0;
    while i + 32 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), s3);
        i += 32;
    }
    while i + 8 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    let hi = _mm256_extractf128_ps(s, 1);
    let lo = _mm256_castps256_ps128(s);
    let q = _mm_add_ps(hi, lo);
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    let mut total = _mm_cvtss_f32(q);
    while i < n {
        total += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    total
}

type DotFn = fn(&[f32], &[f32]) -> f32;

/// The fastest dot product this CPU runs.
pub fn best_dot() -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: dot_avx2 needs AVX2 and FMA, both detected at run time just above;
            // it bounds its own reads by the shorter slice.
            return |a, b| unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable
}

#[inline]
fn rank(dot: f32, sqnorm: f32, metric: Metric) -> f32 {
    match metric {
        Metric::L2 => 2.0 * dot - sqnorm,
        Metric::Cosine => {
            if sqnorm > 0.0 {
                dot / sqnorm.sqrt()
            } else {
                0.0
            }
        }
    }
}

fn scan_range(s: &Search<'_>, dot: DotFn, start: usize, end: usize) -> TopK {
    let mut top = TopK::new(s.k);
    let d = s.dim;
    match s.rows {
        None => {
            for row in start..end {
                let x = &s.matrix[row * d..row * d + d];
                top.push(Hit { score: rank(dot(x, s.query), s.sqnorms[row], s.metric), row });
            }
        }
        Some(rows) => {
            for &r in &rows[start..end] {
                let row = r as usize;
                let x = &s.matrix[row * d..row * d + d];
                top.push(Hit { score: rank(dot(x, s.query), s.sqnorms[row], s.metric), row });
            }
        }
    }
    top
}

fn validate(s: &Search<'_>) -> Result<usize> {
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

/// The `k` best rows as `(row, rank score)`, best first, ties to the lower row.
///
/// `threads` 0 picks one or two threads from the amount of work.
pub fn top_k(s: &Search<'_>, threads: usize) -> Result<Vec<(usize, f32)>> {
    let count = validate(s)?;
    if s.k == 0 || count == 0 {
        return Ok(Vec::new());
    }
    let dot = best_dot();
    let threads = match threads {
        0 if count * s.dim >= TWO_THREAD_MIN_FLOATS => 2,
        0 => 1,
        t => t.min(count),
    };
    let top = if threads <= 1 {
        scan_range(s, dot, 0, count)
    } else {
        let chunk = count.div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (start, end) = (t * chunk, ((t + 1) * chunk).min(count));
                    scope.spawn(move || scan_range(s, dot, start, end))
                })
                .collect();
            let mut merged = TopK::new(s.k);
            for handle in handles {
                merged = merged.merge(handle.join().expect("scan thread panicked"));
            }
            merged
        })
    };
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
mod tests {
    use super::*;

    fn matrix(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n * dim)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    fn sqnorms(m: &[f32], dim: usize) -> Vec<f32> {
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
        assert!((dot_portable(&a, &b) as f64 - exact).abs() < 1e-4);
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
