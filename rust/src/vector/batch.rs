//! Many queries over one pass of the rows.
//!
//! The rows are read in blocks small enough to stay in L2 while every query
//! scores them, so the matrix crosses the memory bus once per batch instead of
//! once per query. Four rows by four queries are scored as one tile ([`simd::dot4x4_for`]).
//! Each score is the same dot product the single-query scan
//! computes (same function, same lane order), so every query's answer is bit
//! for bit what [`super::top_k`] returns for it.

use super::{best_dot, rank, scan_plan, simd, split, threads, validate, Hit, Search, TopK};
use crate::error::{Error, Result};

/// Bytes of rows per block: well inside a 1-2 MB L2 beside the queries.
const BLOCK_BYTES: usize = 256 * 1024;

/// For each of the `queries.len() / s.dim` queries (row-major), its `k` best rows as in [`super::top_k`].
/// `s.query` is ignored.
pub fn top_k_many(s: &Search<'_>, queries: &[f32], threads: usize) -> Result<Vec<Vec<(usize, f32)>>> {
    let d = s.dim;
    if d == 0 || !queries.len().is_multiple_of(d) {
        return Err(Error::InvalidArgument(format!(
            "queries hold {} values, not a whole number of rows of {d}",
            queries.len()
        )));
    }
    let nq = queries.len() / d;
    let first = Search { query: &queries[..d.min(queries.len())], ..*s };
    let count = if nq == 0 { validate(&Search { query: &vec![0.0; d], ..*s })? } else { validate(&first)? };
    if s.k == 0 || count == 0 || nq == 0 {
        return Ok(vec![Vec::new(); nq]);
    }
    let dot = best_dot();
    let dot4 = simd::dot4_for(simd::detected_tier());
    let dot4x4 = simd::dot4x4_for(simd::detected_tier());
    let block = (BLOCK_BYTES / (d * 4)).max(1);
    let row_at = |i: usize| match s.rows {
        None => i,
        Some(rows) => rows[i] as usize,
    };
    let scan = |start: usize, end: usize| {
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(s.k)).collect();
        let mut b0 = start;
        while b0 < end {
            let b1 = (b0 + block).min(end);
            let mut qi = 0;
            while qi + 4 <= nq {
                let q = |j: usize| &queries[(qi + j) * d..(qi + j) * d + d];
                let quad = [q(0), q(1), q(2), q(3)];
                let mut i = b0;
                while i + 4 <= b1 {
                    let rows: [usize; 4] = std::array::from_fn(|r| row_at(i + r));
                    let dots = dot4x4(rows.map(|row| &s.matrix[row * d..row * d + d]), quad);
                    for (&row, per_row) in rows.iter().zip(dots) {
                        for (j, v) in per_row.into_iter().enumerate() {
                            tops[qi + j].push(Hit { score: rank(v, s.sqnorms[row], s.metric), row });
                        }
                    }
                    i += 4;
                }
                for i in i..b1 {
                    let row = row_at(i);
                    let x = &s.matrix[row * d..row * d + d];
                    let dots = dot4(x, quad);
                    for (j, &v) in dots.iter().enumerate() {
                        tops[qi + j].push(Hit { score: rank(v, s.sqnorms[row], s.metric), row });
                    }
                }
                qi += 4;
            }
            for (qj, top) in tops.iter_mut().enumerate().skip(qi) {
                let q = &queries[qj * d..qj * d + d];
                for i in b0..b1 {
                    let row = row_at(i);
                    let x = &s.matrix[row * d..row * d + d];
                    top.push(Hit { score: rank(dot(x, q), s.sqnorms[row], s.metric), row });
                }
            }
            b0 = b1;
        }
        tops
    };
    let bytes = count * d * 4;
    // the work is nq scans of cached rows: time it as that many bytes of scanning
    let (plan, measure) = scan_plan(threads, count, bytes.saturating_mul(nq), false);
    let timer = threads::Timer::start(bytes.saturating_mul(nq), plan, measure);
    let parts = split(count, plan.threads, scan);
    timer.stop();
    let mut merged: Vec<TopK> = (0..nq).map(|_| TopK::new(s.k)).collect();
    for part in parts {
        for (m, t) in merged.iter_mut().zip(part) {
            let taken = std::mem::replace(m, TopK::new(0));
            *m = taken.merge(t);
        }
    }
    Ok(merged.into_iter().map(|t| t.into_sorted().into_iter().map(|h| (h.row, h.score)).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{matrix, sqnorms};
    use super::super::{top_k, Metric};
    use super::*;

    #[test]
    fn each_query_gets_exactly_its_single_answer() {
        let (n, dim) = (3000, 40);
        let m = matrix(n, dim, 41);
        let norms = sqnorms(&m, dim);
        let qs = matrix(5, dim, 42);
        let sel: Vec<i64> = (0..n as i64).filter(|r| r % 5 != 0).collect();
        for metric in [Metric::L2, Metric::Cosine] {
            for rows in [None, Some(&sel[..])] {
                let s = Search { matrix: &m, dim, n, sqnorms: &norms, query: &qs[..dim], rows, k: 9, metric };
                for threads in [1, 2] {
                    let many = top_k_many(&s, &qs, threads).unwrap();
                    assert_eq!(many.len(), 5);
                    for (qi, got) in many.iter().enumerate() {
                        let one = Search { query: &qs[qi * dim..qi * dim + dim], ..s };
                        let want = top_k(&one, 1).unwrap();
                        let bits = |v: &[(usize, f32)]| v.iter().map(|(r, x)| (*r, x.to_bits())).collect::<Vec<_>>();
                        assert_eq!(bits(got), bits(&want));
                    }
                }
            }
        }
    }

    #[test]
    fn ragged_queries_and_empty_batches() {
        let m = matrix(10, 4, 1);
        let norms = sqnorms(&m, 4);
        let q = vec![0.0f32; 4];
        let s = Search { matrix: &m, dim: 4, n: 10, sqnorms: &norms, query: &q, rows: None, k: 3, metric: Metric::L2 };
        assert!(top_k_many(&s, &[0.0; 6], 1).is_err());
        assert!(top_k_many(&s, &[], 1).unwrap().is_empty());
    }
}
