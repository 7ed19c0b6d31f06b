//! The float64 re-rank of a search's candidates: bit for bit `_rerank.rerank`, its numpy twin.
//!
//! Every kernel proposes candidates in float32; their final scores and order come from here
//! (or the twin), in float64. The twin sums each row with numpy's `add.reduce`, whose order is
//! pairwise (eight running sums over blocks of up to 128 values, halves above that): the same
//! order here gives the same bits, so both twins return identical scores. Products of two
//! float32 values are exact in float64, so a dot's terms never differ; only the order of the
//! additions could, and that is fixed.

use super::simd::{detected_tier, Tier};
use crate::error::{Error, Result};

/// Values numpy sums with eight running sums before it halves the range.
const PAIRWISE_BLOCK: usize = 128;

/// numpy's pairwise sum of `a` (`np.add.reduce` over a contiguous float64 row), bit for bit.
#[inline(always)]
pub fn pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0, |acc, &v| acc + v);
    }
    if n <= PAIRWISE_BLOCK {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for chunk in a[8..whole].chunks_exact(8) {
            for (acc, &v) in r.iter_mut().zip(chunk) {
                *acc += v;
            }
        }
        let head = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        return a[whole..].iter().fold(head, |acc, &v| acc + v);
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&a[..half]) + pairwise_sum(&a[half..])
}

/// Candidates of one search, read in place.
pub struct Candidates<'a> {
    /// Row-major float32 rows (`matrix.len()` a multiple of `dim`).
    pub matrix: &'a [f32],
    pub dim: usize,
    /// Insertion sequence of every row: equal scores go to the earlier one.
    pub seqs: &'a [i64],
    pub rows: &'a [i64],
    /// The query widened to float64 (`dim` values).
    pub query: &'a [f64],
    /// `true`: L2 (`1 / (1 + |x - q|^2)`), `false`: cosine.
    pub l2: bool,
}

fn checked_rows(c: &Candidates<'_>) -> Result<Vec<usize>> {
    if c.dim == 0 || !c.matrix.len().is_multiple_of(c.dim) {
        return Err(Error::InvalidArgument(format!(
            "matrix of {} floats is not whole rows of {}",
            c.matrix.len(),
            c.dim
        )));
    }
    if c.query.len() != c.dim {
        return Err(Error::InvalidArgument(format!("query has {} values, rows have {}", c.query.len(), c.dim)));
    }
    let stored = (c.matrix.len() / c.dim).min(c.seqs.len());
    c.rows
        .iter()
        .map(|&r| {
            usize::try_from(r)
                .ok()
                .filter(|&r| r < stored)
                .ok_or_else(|| Error::InvalidArgument(format!("row {r} outside the {stored} stored rows")))
        })
        .collect()
}

/// The candidates ordered by float64 score (descending, then sequence ascending), with their scores.
///
/// Compiled for the CPU's vector width: the eight running sums are one AVX-512 register, or
/// two AVX2 ones. Rust never fuses a multiply and an add, so every width gives the same bits.
pub fn rerank(c: &Candidates<'_>) -> Result<(Vec<i64>, Vec<f64>)> {
    let rows = checked_rows(c)?;
    Ok(match detected_tier() {
        // SAFETY: the tier is only detected where the CPU has these features.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx512 => unsafe { scored_avx512(c, &rows) },
        // SAFETY: as above.
        #[cfg(target_arch = "x86_64")]
        Tier::Avx2 => unsafe { scored_avx2(c, &rows) },
        _ => scored(c, &rows),
    })
}

/// # Safety
/// The CPU has AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn scored_avx512(c: &Candidates<'_>, rows: &[usize]) -> (Vec<i64>, Vec<f64>) {
    scored(c, rows)
}

/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scored_avx2(c: &Candidates<'_>, rows: &[usize]) -> (Vec<i64>, Vec<f64>) {
    scored(c, rows)
}

/// Scores and order of `rows` (checked to be stored rows).
#[inline(always)]
fn scored(c: &Candidates<'_>, rows: &[usize]) -> (Vec<i64>, Vec<f64>) {
    let dim = c.dim;
    let mut terms = vec![0.0f64; dim];
    let mut squares = vec![0.0f64; dim];
    let qnorm = if c.l2 {
        0.0
    } else {
        terms.iter_mut().zip(c.query).for_each(|(t, &q)| *t = q * q);
        pairwise_sum(&terms).sqrt()
    };
    let mut scored: Vec<(f64, i64, i64)> = Vec::with_capacity(rows.len());
    for (&row, &id) in rows.iter().zip(c.rows) {
        let x = &c.matrix[row * dim..(row + 1) * dim];
        let score = if c.l2 {
            for ((t, &xv), &q) in terms.iter_mut().zip(x).zip(c.query) {
                let d = f64::from(xv) - q;
                *t = d * d;
            }
            1.0 / (1.0 + pairwise_sum(&terms))
        } else {
            for (((t, s), &xv), &q) in terms.iter_mut().zip(squares.iter_mut()).zip(x).zip(c.query) {
                let w = f64::from(xv);
                *t = w * q;
                *s = w * w;
            }
            let denom = pairwise_sum(&squares).sqrt() * qnorm;
            if denom > 0.0 {
                pairwise_sum(&terms) / denom
            } else {
                0.0
            }
        };
        scored.push((score, c.seqs[row], id));
    }
    // numpy's lexsort((seqs, -scores)): -0.0 and 0.0 are one key there too
    scored.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal).then(a.1.cmp(&b.1)));
    scored.into_iter().map(|(s, _, r)| (r, s)).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_pairwise(a: &[f64]) -> f64 {
        // numpy's loop as written in its C source, for a second reading of the same order
        let n = a.len();
        if n < 8 {
            let mut res = 0.0;
            for &v in a {
                res += v;
            }
            res
        } else if n <= 128 {
            let mut r: [f64; 8] = a[..8].try_into().unwrap();
            let mut i = 8;
            while i < n - (n % 8) {
                for j in 0..8 {
                    r[j] += a[i + j];
                }
                i += 8;
            }
            let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            while i < n {
                res += a[i];
                i += 1;
            }
            res
        } else {
            let n2 = n / 2 - (n / 2) % 8;
            naive_pairwise(&a[..n2]) + naive_pairwise(&a[n2..])
        }
    }

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|i| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let mant = ((s >> 11) as f64) / (1u64 << 53) as f64 - 0.5;
                mant * 10f64.powi((i % 7) as i32 - 3)
            })
            .collect()
    }

    #[test]
    fn pairwise_sum_is_numpys_order_at_every_length() {
        for n in 0..700 {
            let a = values(n, n as u64);
            assert_eq!(pairwise_sum(&a).to_bits(), naive_pairwise(&a).to_bits(), "n = {n}");
        }
    }

    #[test]
    fn order_is_score_then_sequence() {
        let matrix = [1.0f32, 0.0, 1.0, 0.0, 0.0, 1.0];
        let seqs = [5i64, 2, 9];
        let c = Candidates { matrix: &matrix, dim: 2, seqs: &seqs, rows: &[0, 1, 2], query: &[1.0, 0.0], l2: false };
        let (rows, scores) = rerank(&c).unwrap();
        assert_eq!(rows, vec![1, 0, 2]);
        assert_eq!(scores, vec![1.0, 1.0, 0.0]);
    }

    #[test]
    fn bad_rows_and_shapes_are_errors() {
        let matrix = [0.0f32; 6];
        let seqs = [0i64; 3];
        let bad = |rows: &[i64], query: &[f64], dim: usize| {
            rerank(&Candidates { matrix: &matrix, dim, seqs: &seqs, rows, query, l2: true }).unwrap_err().to_string()
        };
        assert!(bad(&[3], &[0.0, 0.0], 2).contains("outside"));
        assert!(bad(&[-1], &[0.0, 0.0], 2).contains("outside"));
        assert!(bad(&[0], &[0.0], 2).contains("query has 1"));
        assert!(bad(&[0], &[0.0; 4], 4).contains("whole rows"));
    }
}
