//! Exact top-k at half the memory traffic: scan a float16 shadow, re-score in float32.
//!
//! Row `r` of the shadow holds `h_r = f16(x_r * s_r)` with `s_r` a power of two
//! (so huge and tiny rows fit float16's range), and beside it `inv_scale = 1/s_r`,
//! `norm >= |x_r|` and `err >= |x_r - h_r/s_r|` (both float32, rounded up; built by
//! `crewai_rust/memory/_index.py`). For a query `q`, the float32 scan's rank score
//! `r32` of the row and the shadow's estimate `r~` differ by at most `B` (see
//! [`bound`]): the dot products of any summation order over `m = dim + 2` roundings
//! are within `gamma_m * sum |x_i q_i|` of the exact one (Higham, Thm 3.1, plus
//! `m` half-ulps of underflow), the shadow's own error is at most `err * |q|`
//! (Cauchy-Schwarz), and the rank formula adds one rounding.
//!
//! The scan keeps the `k` best lower bounds `r~ - B`; `L` is the k-th of them.
//! At least `k` rows then have `r32 >= L`, so every row of the float32 top k has
//! `r32 >= L` and so upper bound `r~ + B >= L`: re-scoring exactly those rows with
//! the float32 scan's own dot product and rank gives the same bits, and the top k
//! of a superset under one total order is the same top k. Rows whose bound is not
//! finite (huge values, infinities) are always re-scored.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::{
    best_dot, for_blocks, rank, scan_plan, simd, split, threads, validate, Hit, Metric, Search, TopK, BLOCK_ROWS,
};
use crate::error::{Error, Result};

/// The float16 copy of the matrix and its per-row bound terms (all `n` long).
pub struct Shadow<'a> {
    /// IEEE binary16 bits, `n * dim`.
    pub halves: &'a [u16],
    pub inv_scale: &'a [f32],
    pub norm: &'a [f32],
    pub err: &'a [f32],
}

const U: f64 = 1.0 / 16_777_216.0; // float32 unit roundoff 2^-24
const ETA: f64 = 1.401_298_464_324_817e-45; // 2^-149: twice the largest underflow error of one float32 rounding

/// Per-query constants of the bound.
#[derive(Clone, Copy)]
pub(crate) struct QueryTerms {
    qnorm: f64,
    gamma: f64,
    under: f64,
}

impl QueryTerms {
    pub(crate) fn new(query: &[f32], dim: usize) -> QueryTerms {
        let m = (dim + 2) as f64;
        let sq: f64 = query.iter().map(|&v| (v as f64) * (v as f64)).sum();
        QueryTerms { qnorm: sq.sqrt() * (1.0 + 1e-12), gamma: m * U / (1.0 - m * U), under: m * ETA }
    }
}

/// `(estimate, B)`: the shadow's rank estimate and a bound on `|r32 - estimate|`;
/// `B` is infinite when the row must always be re-scored.
#[inline]
pub(crate) fn bound(
    t: QueryTerms,
    dot_s: f32,
    inv_scale: f32,
    norm: f32,
    err: f32,
    sqnorm: f32,
    metric: Metric,
) -> (f64, f64) {
    let (nx, e, sqn, inv) = (norm as f64, err as f64, sqnorm as f64, inv_scale as f64);
    let nq = t.qnorm;
    let xq = nx * nq;
    if !(nx.is_finite() && e.is_finite() && sqn.is_finite() && inv.is_finite() && dot_s.is_finite())
        || xq > 1e36
        || sqn > 1e37
    {
        return (0.0, f64::INFINITY);
    }
    let dt = dot_s as f64 * inv;
    // |dot32 - exact| + |exact - h.q| + |h.q - dt|
    let d = t.gamma * xq + t.under + e * nq + (t.gamma * (nx + e) * nq + t.under) * inv.max(1.0);
    let abs_dot = xq * (1.0 + t.gamma) + t.under;
    let (est, b) = match metric {
        Metric::L2 => (2.0 * dt - sqn, 2.0 * d + U * (2.0 * abs_dot + sqn) + 2.0 * ETA),
        Metric::Cosine => {
            if sqnorm > 0.0 {
                let sigma = sqnorm.sqrt() as f64; // the float32 root both scans divide by
                (dt / sigma, (d + U * abs_dot) / sigma + 2.0 * ETA)
            } else {
                return (0.0, 0.0); // both scans score a zero-norm row exactly 0
            }
        }
    };
    let b = b * (1.0 + 1e-6) + 1e-12 * (est.abs() + 2.0 * dt.abs() + sqn);
    if b.is_finite() {
        (est, b)
    } else {
        (0.0, f64::INFINITY)
    }
}

/// Rows a shadow scan scores before it bounds them. Why: the bound reads four per-row terms;
/// read beside the four interleaved row streams of a range scan they made sixteen more read
/// streams, which took the float16 scan of 1M x 1536 from 107 to 129 ms on one thread of the
/// AMD EPYC (a kernel loop with and without them). Scored a piece at a time into a small
/// buffer, the terms are then read in row order, four streams. (The float32 scan reads one
/// term, four streams more: a piece at a time measured no faster there.)
const PIECE_ROWS: usize = 8192;

/// f64 ordered for the heap of lower bounds.
#[derive(Clone, Copy)]
struct Low(f64);
impl PartialEq for Low {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Low {}
impl PartialOrd for Low {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Low {
    fn cmp(&self, other: &Self) -> Ordering {
        other.0.total_cmp(&self.0) // reversed: the heap's top is the smallest kept lower bound
    }
}

/// One thread's pass: its k best lower bounds and the rows that could still reach the top k.
struct Pass {
    lows: BinaryHeap<Low>,
    candidates: Vec<(usize, f64)>,
}

fn threshold(lows: &BinaryHeap<Low>, k: usize) -> f64 {
    if lows.len() < k {
        f64::NEG_INFINITY
    } else {
        lows.peek().map_or(f64::NEG_INFINITY, |l| l.0)
    }
}

fn check(s: &Search<'_>, sh: &Shadow<'_>) -> Result<()> {
    if sh.halves.len() < s.n * s.dim || sh.inv_scale.len() < s.n || sh.norm.len() < s.n || sh.err.len() < s.n {
        return Err(Error::InvalidArgument(format!("the float16 shadow does not cover n={} rows of {}", s.n, s.dim)));
    }
    Ok(())
}

/// The same answer as [`super::top_k`] (rows, order and float32 rank scores), reading float16 rows.
pub fn top_k_shadow(s: &Search<'_>, sh: &Shadow<'_>, threads: usize) -> Result<Vec<(usize, f32)>> {
    let count = validate(s)?;
    check(s, sh)?;
    if s.k == 0 || count == 0 {
        return Ok(Vec::new());
    }
    let dots16 = simd::dots_f16_for(simd::detected_tier());
    let terms = QueryTerms::new(s.query, s.dim);
    let d = s.dim;
    let bytes = count * d * 2;
    let (plan, measure) = scan_plan(threads, count, bytes + bytes / 64, s.rows.is_none());
    let pass = |start: usize, end: usize| {
        let mut p = Pass { lows: BinaryHeap::with_capacity(s.k + 1), candidates: Vec::new() };
        let mut floor = f64::NEG_INFINITY;
        let mut buf = [0.0f32; BLOCK_ROWS];
        let mut dots = vec![0.0f32; PIECE_ROWS.min(end - start)];
        let mut a = start;
        while a < end {
            let until = (a + PIECE_ROWS).min(end);
            // the piece's shadow dot products, by position (a range's four streams come back interleaved)
            let mut filled = 0;
            for_blocks(s, a, until, plan.prefetch, |rows| {
                dots16(sh.halves, d, s.query, rows, &mut buf);
                for (pos, &dot_s) in buf[..rows.len()].iter().enumerate() {
                    let slot = if s.rows.is_none() { rows.row(pos) - a } else { filled + pos };
                    dots[slot] = dot_s;
                }
                filled += rows.len();
            });
            // then the bounds in position order: the per-row terms read as four sequential streams
            for (i, &dot_s) in dots[..until - a].iter().enumerate() {
                let row = s.rows.map_or(a + i, |r| r[a + i] as usize);
                let (est, b) =
                    bound(terms, dot_s, sh.inv_scale[row], sh.norm[row], sh.err[row], s.sqnorms[row], s.metric);
                let upper = est + b;
                if upper < floor {
                    continue;
                }
                p.candidates.push((row, upper));
                let low = est - b;
                if low > floor || p.lows.len() < s.k {
                    p.lows.push(Low(low));
                    if p.lows.len() > s.k {
                        p.lows.pop();
                    }
                    floor = threshold(&p.lows, s.k);
                }
            }
            a = until;
        }
        p
    };
    let timer = threads::Timer::start(bytes + bytes / 64, plan, measure);
    let passes = split(count, plan.threads, pass);
    timer.stop();
    // the k best lower bounds over every thread
    let mut lows: BinaryHeap<Low> = BinaryHeap::with_capacity(s.k + 1);
    for p in &passes {
        for &l in &p.lows {
            lows.push(l);
            if lows.len() > s.k {
                lows.pop();
            }
        }
    }
    let floor = threshold(&lows, s.k);
    let dot = best_dot();
    let mut top = TopK::new(s.k);
    for p in passes {
        for (row, upper) in p.candidates {
            if upper >= floor {
                let x = &s.matrix[row * d..row * d + d];
                top.push(Hit { score: rank(dot(x, s.query), s.sqnorms[row], s.metric), row });
            }
        }
    }
    Ok(top.into_sorted().into_iter().map(|h| (h.row, h.score)).collect())
}

/// float32 to IEEE binary16 bits, round to nearest even (subnormals, overflow to infinity).
pub fn f32_to_f16(v: f32) -> u16 {
    let b = v.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let mant = b & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 112; // the half exponent field
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    let (kept, rem, half) = if e <= 0 {
        if e < -10 {
            return sign; // below 2^-25: rounds to zero
        }
        let m = mant | 0x80_0000;
        let shift = (14 - e) as u32;
        (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1))
    } else {
        (((e as u32) << 10) | (mant >> 13), mant & 0x1fff, 0x1000)
    };
    let up = rem > half || (rem == half && kept & 1 == 1);
    sign | (kept + up as u32) as u16 // a carry moves into the exponent, up to infinity: still nearest-even
}

/// A float64 value as the nearest float32 at or above it.
fn round_up(v: f64) -> f32 {
    let f = v as f32;
    if (f as f64) < v {
        f32::from_bits(if f >= 0.0 { f.to_bits() + 1 } else { f.to_bits() - 1 })
    } else {
        f
    }
}

/// Headroom for the float64 sums behind `norm` and `err`: a sum of `m` non-negative terms is
/// within `(m - 1) * 2^-53` (relative) of the exact one, so `1e-9` covers rows of millions of values.
pub const SUM_SLACK: f64 = 1.0 + 1e-9;

/// The shadow of row-major float32 rows: the same construction as `_vector_py.shadow_rows`.
///
/// Returns `(halves, inv_scale, norm, err)`; see the module comment for what each bounds.
pub fn shadow_rows(block: &[f32], dim: usize) -> (Vec<u16>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = block.len().checked_div(dim).unwrap_or(0);
    let mut halves = vec![0u16; rows * dim];
    let (mut inv, mut norm, mut err) = (Vec::with_capacity(rows), Vec::with_capacity(rows), Vec::with_capacity(rows));
    #[cfg(target_arch = "x86_64")]
    let wide = std::is_x86_feature_detected!("avx512f");
    for (r, row) in block.chunks_exact(dim.max(1)).take(rows).enumerate() {
        let top = row.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        // floor(log2 top), exact from the float64 exponent field (every float32 is a normal float64)
        let t = if top > 0.0 {
            (14 - ((((top as f64).to_bits() >> 52) & 0x7ff) as i32 - 1023)).clamp(-126, 126)
        } else {
            0
        };
        let scale = f32::from_bits(((t + 127) as u32) << 23);
        let inv_scale = 1.0f64 / scale as f64;
        let out = &mut halves[r * dim..r * dim + dim];
        // x * scale is exact in float32 unless a scaled value falls below the normal range
        // (only when scale < 1): then the exact float64 path below
        #[cfg(target_arch = "x86_64")]
        let done = if wide && (scale >= 1.0 || row.iter().all(|v| *v == 0.0 || (v * scale).abs() >= f32::MIN_POSITIVE))
        {
            // SAFETY: AVX-512F was detected above; the kernel reads `row` and writes `out`, both `dim` long.
            Some(unsafe { x86::shadow_row_avx512(row, scale, out) })
        } else {
            None
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done: Option<(f64, f64)> = None;
        let (nx, er) = match done {
            Some((nx, scaled_err)) => (nx, scaled_err * inv_scale * inv_scale),
            None => {
                let (mut nx, mut er) = (0.0f64, 0.0f64);
                for (h, &v) in out.iter_mut().zip(row) {
                    *h = f32_to_f16(v * scale);
                    let x = v as f64;
                    let back = super::simd::f16_to_f32(*h) as f64 * inv_scale;
                    nx += x * x;
                    er += (x - back) * (x - back);
                }
                (nx, er)
            }
        };
        inv.push(inv_scale as f32);
        norm.push(round_up(nx.sqrt() * SUM_SLACK));
        err.push(round_up(er.sqrt() * SUM_SLACK));
    }
    (halves, inv, norm, err)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// One shadow row with AVX-512F: `out = f16(row * scale)` (round to nearest even), and the
    /// float64 sums `(sum x^2, sum (x*scale - h)^2)`. `x*scale - h` is exact in float32 (the
    /// caller guarantees `x*scale` is exact; `h` is its 11-bit rounding), so the second sum is
    /// `scale^2 * |x - h/scale|^2` up to float64 rounding.
    ///
    /// # Safety
    /// The CPU must support AVX-512F; `out.len() == row.len()`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn shadow_row_avx512(row: &[f32], scale: f32, out: &mut [u16]) -> (f64, f64) {
        let n = row.len().min(out.len());
        let (pr, po) = (row.as_ptr(), out.as_mut_ptr());
        let sv = _mm512_set1_ps(scale);
        let (mut nx, mut er) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        let mut i = 0;
        while i + 16 <= n {
            let x = _mm512_loadu_ps(pr.add(i));
            let xs = _mm512_mul_ps(x, sv);
            let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(xs);
            _mm256_storeu_si256(po.add(i) as *mut __m256i, h);
            let d = _mm512_sub_ps(xs, _mm512_cvtph_ps(h));
            for half in 0..2 {
                let (xl, dl) = if half == 0 {
                    (_mm512_castps512_ps256(x), _mm512_castps512_ps256(d))
                } else {
                    (
                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)),
                        _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(d), 1)),
                    )
                };
                let (xw, dw) = (_mm512_cvtps_pd(xl), _mm512_cvtps_pd(dl));
                nx = _mm512_fmadd_pd(xw, xw, nx);
                er = _mm512_fmadd_pd(dw, dw, er);
            }
            i += 16;
        }
        let (mut nxs, mut ers) = (_mm512_reduce_add_pd(nx), _mm512_reduce_add_pd(er));
        while i < n {
            let xs = *pr.add(i) * scale;
            let h = super::f32_to_f16(xs);
            *po.add(i) = h;
            let d = (xs - crate::vector::simd::f16_to_f32(h)) as f64;
            let x = *pr.add(i) as f64;
            nxs += x * x;
            ers += d * d;
            i += 1;
        }
        (nxs, ers)
    }
}

/// How many rows a shadow scan re-scores (for tests and benchmarks).
pub fn rescored_rows(s: &Search<'_>, sh: &Shadow<'_>) -> Result<usize> {
    let count = validate(s)?;
    check(s, sh)?;
    let dot16 = simd::dot_f16_for(simd::detected_tier());
    let terms = QueryTerms::new(s.query, s.dim);
    let d = s.dim;
    let mut scored = Vec::with_capacity(count);
    for i in 0..count {
        let row = match s.rows {
            None => i,
            Some(rows) => rows[i] as usize,
        };
        let dot_s = dot16(&sh.halves[row * d..row * d + d], s.query);
        scored.push(bound(terms, dot_s, sh.inv_scale[row], sh.norm[row], sh.err[row], s.sqnorms[row], s.metric));
    }
    let mut lows: Vec<f64> = scored.iter().map(|(e, b)| e - b).collect();
    lows.sort_by(|a, b| b.total_cmp(a));
    let floor = if lows.len() >= s.k && s.k > 0 { lows[s.k - 1] } else { f64::NEG_INFINITY };
    Ok(scored.iter().filter(|(e, b)| e + b >= floor).count())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{matrix, sqnorms};
    use super::super::top_k;
    use super::*;

    /// Round to nearest even by search over the ordered halves: the oracle for [`f32_to_f16`].
    fn f16_oracle(v: f32) -> u16 {
        let mag = (v as f64).abs();
        let (mut lo, mut hi) = (0u16, 0x7bffu16);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if (simd::f16_to_f32(mid) as f64) <= mag {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let below = simd::f16_to_f32(lo) as f64;
        let above = if lo < 0x7bff { simd::f16_to_f32(lo + 1) as f64 } else { 65536.0 }; // the next step: 65520 and above round to inf
        let pick =
            if mag - below < above - mag || (mag - below == above - mag && lo.is_multiple_of(2)) { lo } else { lo + 1 };
        pick | if v.is_sign_negative() { 0x8000 } else { 0 }
    }

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        let mut state = 7u64;
        let probe = |v: f32| assert_eq!(f32_to_f16(v), f16_oracle(v), "{v:e} {:#x}", v.to_bits());
        for bits in [
            0u32,
            0x8000_0000,
            0x3f80_0000,
            0x477f_e000,
            0x477f_f000,
            0x477f_efff,
            0x3380_0000,
            0x3300_0000,
            0x3300_0001,
            0x33c0_0000,
            0x3870_0000,
            0x387f_e000,
            0x387f_f000,
        ] {
            probe(f32::from_bits(bits));
            probe(-f32::from_bits(bits));
        }
        for _ in 0..200_000 {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let bits = (state >> 32) as u32;
            let v = f32::from_bits(bits);
            if v.is_finite() && v.abs() < 65520.0 {
                probe(v);
            }
        }
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f32_to_f16(f32::NEG_INFINITY), 0xfc00);
        assert_eq!(f32_to_f16(f32::NAN) & 0x7e00, 0x7e00);
    }

    pub(crate) struct Built {
        halves: Vec<u16>,
        inv_scale: Vec<f32>,
        norm: Vec<f32>,
        err: Vec<f32>,
    }

    pub(crate) fn build(m: &[f32], dim: usize) -> Built {
        let (halves, inv_scale, norm, err) = shadow_rows(m, dim);
        Built { halves, inv_scale, norm, err }
    }

    fn same(m: &[f32], dim: usize, q: &[f32], rows: Option<&[i64]>, k: usize, metric: Metric) {
        let n = m.len() / dim;
        let norms = sqnorms(m, dim);
        let b = build(m, dim);
        let sh = Shadow { halves: &b.halves, inv_scale: &b.inv_scale, norm: &b.norm, err: &b.err };
        let s = Search { matrix: m, dim, n, sqnorms: &norms, query: q, rows, k, metric };
        let want = top_k(&s, 1).unwrap();
        for threads in [1, 2, 3] {
            let got = top_k_shadow(&s, &sh, threads).unwrap();
            let bits = |v: &[(usize, f32)]| v.iter().map(|(r, x)| (*r, x.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&want), "threads {threads} metric {metric:?}");
        }
    }

    #[test]
    fn identical_to_the_float32_scan_on_random_rows() {
        let (n, dim) = (700, 45);
        let m = matrix(n, dim, 11);
        let q = matrix(1, dim, 12);
        let sel: Vec<i64> = (0..n as i64).filter(|r| r % 4 != 1).collect();
        for metric in [Metric::L2, Metric::Cosine] {
            for k in [1, 5, 40, 800] {
                same(&m, dim, &q, None, k, metric);
                same(&m, dim, &q, Some(&sel), k, metric);
            }
        }
    }

    #[test]
    fn identical_across_pieces_and_threads() {
        // more rows than three pieces, so a scan scores and bounds several pieces per thread,
        // the last one short; the best rows are placed in different pieces and a range tail
        let (n, dim) = (3 * PIECE_ROWS + 37, 8);
        let mut m = matrix(n, dim, 31);
        let q = matrix(1, dim, 32);
        for (i, row) in [5, PIECE_ROWS - 1, PIECE_ROWS, 2 * PIECE_ROWS + 3, n - 2].into_iter().enumerate() {
            for (j, v) in m[row * dim..row * dim + dim].iter_mut().enumerate() {
                *v = q[j] * (3.0 + i as f32 * 1e-7); // near ties across pieces
            }
        }
        let sel: Vec<i64> = (0..n as i64).filter(|r| r % 3 != 2).collect();
        for metric in [Metric::L2, Metric::Cosine] {
            for k in [1, 4, 10, 300] {
                same(&m, dim, &q, None, k, metric);
                same(&m, dim, &q, Some(&sel), k, metric);
            }
        }
    }

    #[test]
    fn identical_on_near_ties_denormals_and_huge_rows() {
        let dim = 24;
        let base = matrix(1, dim, 21);
        let mut m = Vec::new();
        for i in 0..60 {
            // copies of one row nudged by one ulp in one coordinate: ties and near ties
            let mut r = base.clone();
            let j = i % dim;
            r[j] = f32::from_bits(r[j].to_bits().wrapping_add((i / dim) as u32));
            m.extend(r);
        }
        m.extend(vec![1e-40f32; dim]); // denormal row
        m.extend((0..dim).map(|i| if i % 2 == 0 { 3e-45f32 } else { -1e-39 }));
        m.extend(vec![0.0f32; dim]);
        m.extend((0..dim).map(|i| (i as f32 - 12.0) * 1e37)); // huge: sqnorm overflows float32
        m.extend((0..dim).map(|i| (i as f32) * 1e18));
        let q = base.clone();
        for metric in [Metric::L2, Metric::Cosine] {
            for k in [1, 3, 10, 64, 70] {
                same(&m, dim, &q, None, k, metric);
                let tiny: Vec<f32> = q.iter().map(|v| v * 1e-30).collect();
                same(&m, dim, &tiny, None, k, metric);
                let big: Vec<f32> = q.iter().map(|v| v * 1e20).collect();
                same(&m, dim, &big, None, k, metric);
                same(&m, dim, &vec![0.0; dim], None, k, metric);
            }
        }
    }

    #[test]
    fn rescores_few_rows_on_spread_data() {
        let (n, dim) = (5000, 64);
        let m = matrix(n, dim, 31);
        let q = matrix(1, dim, 32);
        let norms = sqnorms(&m, dim);
        let b = build(&m, dim);
        let sh = Shadow { halves: &b.halves, inv_scale: &b.inv_scale, norm: &b.norm, err: &b.err };
        let s = Search { matrix: &m, dim, n, sqnorms: &norms, query: &q, rows: None, k: 10, metric: Metric::L2 };
        let rescored = rescored_rows(&s, &sh).unwrap();
        assert!((10..200).contains(&rescored), "{rescored}");
    }

    #[test]
    fn a_short_shadow_is_an_error() {
        let m = vec![0.0f32; 8];
        let norms = vec![0.0f32; 2];
        let q = vec![0.0f32; 4];
        let s = Search { matrix: &m, dim: 4, n: 2, sqnorms: &norms, query: &q, rows: None, k: 1, metric: Metric::L2 };
        let h = vec![0u16; 4];
        let f = vec![1.0f32; 2];
        let sh = Shadow { halves: &h, inv_scale: &f, norm: &f, err: &f };
        assert!(top_k_shadow(&s, &sh, 1).is_err());
    }
}
