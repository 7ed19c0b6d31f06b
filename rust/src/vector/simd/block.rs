//! Dot products of one query with a block of rows: the inner loop of every scan.
//!
//! One call scores up to a block of rows (a range, or listed rows read where they
//! lie), so the scan pays one indirect call per block instead of one per row. On
//! AVX-512 and on AVX2 four rows are scored at once (sixteen independent FMA chains,
//! each query load shared by the four rows; on AVX2's 16 registers the compiler keeps
//! most of them, a scan is bound by memory, not by the spills). A range is read as four far-apart
//! streams ([`Rows::Streams`]): four concurrent read streams are what takes a
//! single thread from the dot product's speed to the streaming-read speed
//! (four adjacent rows read as one stream). Listed rows (a filtered scan) also
//! prefetch the next four, whose addresses the hardware cannot guess.
//! Each row keeps exactly the lane order and reduction of [`super::dot_for`] of
//! the same tier, so every score has the same bits as the single-row kernel's.

use super::{dot_f16_for, dot_for, Tier};

/// Which rows of the matrix a block kernel scores.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    /// `start..end`.
    Range(usize, usize),
    /// The listed rows, in this order (each already checked `0 <= r < n` by the caller).
    Pick(&'a [i64]),
    /// `len` rows from each of four places `gap` apart, interleaved: position `p` is row
    /// `first + (p % 4) * gap + p / 4`. Four far-apart read streams reach the streaming-read
    /// floor, where four adjacent rows read as one stream (~15% slower at 1M x 384).
    /// With `prefetch`, each stream is also prefetched `AHEAD` bytes ahead: whether that helps
    /// depends on the CPU's own prefetchers, so the scan plan measures it ([`crate::vector::threads`]).
    Streams { first: usize, gap: usize, len: usize, prefetch: bool },
}

/// Read streams of [`Rows::Streams`] (one per row of a four-row group).
pub const STREAMS: usize = 4;

impl Rows<'_> {
    pub fn len(&self) -> usize {
        match *self {
            Rows::Range(a, b) => b.saturating_sub(a),
            Rows::Pick(r) => r.len(),
            Rows::Streams { len, .. } => STREAMS * len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The matrix row of position `i`.
    #[inline]
    pub fn row(&self, i: usize) -> usize {
        match *self {
            Rows::Range(a, _) => a + i,
            Rows::Pick(r) => r[i] as usize,
            Rows::Streams { first, gap, .. } => first + (i % STREAMS) * gap + i / STREAMS,
        }
    }

    /// Whether every row of `dim` values lies inside a matrix of `len` values.
    fn inside(&self, dim: usize, len: usize) -> bool {
        let fits = |r: usize| r.checked_add(1).and_then(|e| e.checked_mul(dim)).is_some_and(|e| e <= len);
        match *self {
            Rows::Range(a, b) => a >= b || fits(b - 1),
            Rows::Pick(rows) => rows.iter().all(|&r| r >= 0 && fits(r as usize)),
            Rows::Streams { first, gap, len, .. } => {
                let last = |len: usize| {
                    first.checked_add(len - 1).zip(gap.checked_mul(STREAMS - 1)).and_then(|(a, b)| a.checked_add(b))
                };
                len == 0 || last(len).is_some_and(fits)
            }
        }
    }
}

/// `out[i] = matrix[row i] . q` for the rows of `rows` (`matrix` row-major, `dim` wide).
pub type DotsFn = fn(&[f32], usize, &[f32], Rows<'_>, &mut [f32]);
/// [`DotsFn`] over float16 rows (IEEE binary16 bits) with a float32 query.
pub type DotsF16Fn = fn(&[u16], usize, &[f32], Rows<'_>, &mut [f32]);

/// Panics unless the call stays inside its slices (the kernels then read unchecked).
fn check(len: usize, dim: usize, q: usize, rows: &Rows<'_>, out: usize) {
    assert!(q >= dim && out >= rows.len() && rows.inside(dim, len), "block scan outside its slices");
}

/// The block kernel of `tier`: the same bits per row as `dot_for(tier)`.
pub fn dots_for(tier: Tier) -> DotsFn {
    #[cfg(target_arch = "x86_64")]
    {
        if tier == Tier::Avx512 && super::hardware_tier() == Tier::Avx512 {
            return |m, dim, q, rows, out| {
                check(m.len(), dim, q.len(), &rows, out.len());
                // SAFETY: AVX-512F was detected at run time; `check` proved every row, the
                // query and `out` long enough for the unchecked reads and writes.
                unsafe { x86::dots_avx512(m.as_ptr(), dim, q.as_ptr(), rows, out.as_mut_ptr()) }
            };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if tier == Tier::Avx2 && super::hardware_tier() != Tier::Portable {
            return |m, dim, q, rows, out| {
                check(m.len(), dim, q.len(), &rows, out.len());
                // SAFETY: AVX2, FMA and F16C were detected at run time (hardware_tier checks them;
                // AVX-512F CPUs have all three); `check` proved every access in bounds.
                unsafe { avx2::dots_avx2(m.as_ptr(), dim, q.as_ptr(), rows, out.as_mut_ptr()) }
            };
        }
    }
    match tier {
        Tier::Avx512 => |m, dim, q, rows, out| dots_via(dot_for(Tier::Avx512), m, dim, q, rows, out),
        Tier::Avx2 => |m, dim, q, rows, out| dots_via(dot_for(Tier::Avx2), m, dim, q, rows, out),
        Tier::Portable => |m, dim, q, rows, out| dots_via(dot_for(Tier::Portable), m, dim, q, rows, out),
    }
}

/// The float16 block kernel of `tier`: the same bits per row as `dot_f16_for(tier)`.
pub fn dots_f16_for(tier: Tier) -> DotsF16Fn {
    #[cfg(target_arch = "x86_64")]
    {
        if tier == Tier::Avx512 && super::hardware_tier() == Tier::Avx512 {
            return |m, dim, q, rows, out| {
                check(m.len(), dim, q.len(), &rows, out.len());
                // SAFETY: as in `dots_for`: AVX-512F detected, every access proved in bounds by `check`.
                unsafe { x86::dots_f16_avx512(m.as_ptr(), dim, q.as_ptr(), rows, out.as_mut_ptr()) }
            };
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        if tier == Tier::Avx2 && super::hardware_tier() != Tier::Portable {
            return |m, dim, q, rows, out| {
                check(m.len(), dim, q.len(), &rows, out.len());
                // SAFETY: as in `dots_for`: AVX2, FMA and F16C detected, every access proved by `check`.
                unsafe { avx2::dots_f16_avx2(m.as_ptr(), dim, q.as_ptr(), rows, out.as_mut_ptr()) }
            };
        }
    }
    match tier {
        Tier::Avx512 => |m, dim, q, rows, out| dots_via(dot_f16_for(Tier::Avx512), m, dim, q, rows, out),
        Tier::Avx2 => |m, dim, q, rows, out| dots_via(dot_f16_for(Tier::Avx2), m, dim, q, rows, out),
        Tier::Portable => |m, dim, q, rows, out| dots_via(dot_f16_for(Tier::Portable), m, dim, q, rows, out),
    }
}

fn dots_via<T>(dot: fn(&[T], &[f32]) -> f32, m: &[T], dim: usize, q: &[f32], rows: Rows<'_>, out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate().take(rows.len()) {
        let r = rows.row(i) * dim;
        *o = dot(&m[r..r + dim], &q[..dim]);
    }
}

/// The scan driver of a SIMD module: groups of [`STREAMS`] rows through the module's `group`
/// (prefetching [`Rows::Streams`] with `prefetch` `AHEAD` bytes down each stream, [`Rows::Pick`] the next
/// group's rows), then the last rows one by one through `group` of one row, which keeps the
/// single-row kernel's accumulation. Expanded in each module with its target features, so
/// `group`, `Lanes`, `R` and `AHEAD` are that module's.
#[cfg(target_arch = "x86_64")]
macro_rules! four_row_dots {
    ($features:literal) => {
        /// # Safety
        /// The module's target features; `dim` elements readable at `m + row * dim` for every
        /// row of `rows`, `dim` floats at `q`, `rows.len()` floats writable at `out`.
        #[inline]
        #[target_feature(enable = $features)]
        unsafe fn dots<T: Lanes>(m: *const T, dim: usize, q: *const f32, rows: Rows<'_>, out: *mut f32) {
            let count = rows.len();
            let at = |i: usize| m.add(rows.row(i) * dim);
            let mut i = 0;
            while i + R <= count {
                let x: [*const T; R] = std::array::from_fn(|k| at(i + k));
                let got = match rows {
                    Rows::Range(..) | Rows::Streams { prefetch: false, .. } => group::<T, R, false>(x, q, dim, x),
                    Rows::Streams { prefetch: true, .. } => {
                        let ahead: [*const T; R] = std::array::from_fn(|k| x[k].wrapping_byte_add(AHEAD));
                        group::<T, R, true>(x, q, dim, ahead)
                    }
                    Rows::Pick(_) => {
                        let next = if i + 2 * R <= count { std::array::from_fn(|k| at(i + R + k)) } else { x };
                        group::<T, R, true>(x, q, dim, next)
                    }
                };
                std::ptr::copy_nonoverlapping(got.as_ptr(), out.add(i), R);
                i += R;
            }
            while i < count {
                *out.add(i) = group::<T, 1, false>([at(i)], q, dim, [at(i)])[0];
                i += 1;
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::super::x86::reduce512;
    use super::Rows;

    /// Loads 16 lanes of a row: float32 as is, float16 widened (`vcvtph2ps`).
    trait Lanes: Copy {
        /// # Safety
        /// AVX-512F; 16 elements readable at `p`.
        unsafe fn load(p: *const Self) -> __m512;
        /// # Safety
        /// AVX-512F; the first `n < 16` elements readable at `p`.
        unsafe fn load_tail(p: *const Self, n: usize) -> __m512;
    }

    // The contracts of the loads are the trait's (`# Safety` on `Lanes::load` / `load_tail`).
    impl Lanes for f32 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(p: *const f32) -> __m512 {
            _mm512_loadu_ps(p)
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load_tail(p: *const f32, n: usize) -> __m512 {
            _mm512_maskz_loadu_ps((1u32 << n) as u16 - 1, p)
        }
    }

    impl Lanes for u16 {
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load(p: *const u16) -> __m512 {
            _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i))
        }
        #[inline]
        #[target_feature(enable = "avx512f")]
        unsafe fn load_tail(p: *const u16, n: usize) -> __m512 {
            // masked 16-bit loads need AVX-512BW: widen through a zeroed copy, as dot_f16_avx512 does
            let mut tail = [0u16; 16];
            std::ptr::copy_nonoverlapping(p, tail.as_mut_ptr(), n);
            _mm512_cvtph_ps(_mm256_loadu_si256(tail.as_ptr() as *const __m256i))
        }
    }

    /// # Safety
    /// AVX-512F. No memory is read: `p` may be any address (a prefetch never faults).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn prefetch<T>(p: *const T, bytes: usize) {
        let mut off = 0;
        while off < bytes {
            // a prefetch never faults: the address may lie past the rows (wrapping, never read)
            _mm_prefetch::<_MM_HINT_T0>((p as *const i8).wrapping_add(off));
            off += 64;
        }
    }

    /// `R` rows at once (4 x `R` independent FMA chains, each query load shared), each with
    /// exactly `dot_avx512`'s / `dot_f16_avx512`'s accumulation (s0..s3 by 64, s0 by 16, masked
    /// tail into s1, fixed reduction). With `PF`, prefetches from `next` meanwhile: the following
    /// `R` listed rows (scattered, so the hardware prefetcher cannot guess them), or [`AHEAD`]
    /// bytes further down each stream. Prefetch addresses are never read and need not be valid.
    ///
    /// # Safety
    /// AVX-512F; `n` elements readable at every pointer of `x` and `n` floats at `q` (`next`
    /// is only prefetched).
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn group<T: Lanes, const R: usize, const PF: bool>(
        x: [*const T; R],
        q: *const f32,
        n: usize,
        next: [*const T; R],
    ) -> [f32; R] {
        let mut s = [[_mm512_setzero_ps(); 4]; R];
        let line = 64 * size_of::<T>(); // bytes of one row per 64 lanes
        let mut i = 0;
        while i + 64 <= n {
            if PF {
                for p in next {
                    prefetch(p.wrapping_add(i), line);
                }
            }
            for j in 0..4 {
                let qv = _mm512_loadu_ps(q.add(i + 16 * j));
                for (acc, p) in s.iter_mut().zip(x) {
                    acc[j] = _mm512_fmadd_ps(T::load(p.add(i + 16 * j)), qv, acc[j]);
                }
            }
            i += 64;
        }
        if PF && i < n {
            for p in next {
                prefetch(p.wrapping_add(i), (n - i) * size_of::<T>());
            }
        }
        while i + 16 <= n {
            let qv = _mm512_loadu_ps(q.add(i));
            for (acc, p) in s.iter_mut().zip(x) {
                acc[0] = _mm512_fmadd_ps(T::load(p.add(i)), qv, acc[0]);
            }
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let qv = _mm512_maskz_loadu_ps(mask, q.add(i));
            for (acc, p) in s.iter_mut().zip(x) {
                acc[1] = _mm512_fmadd_ps(T::load_tail(p.add(i), n - i), qv, acc[1]);
            }
        }
        let mut out = [0.0f32; R];
        for (o, acc) in out.iter_mut().zip(s) {
            *o = reduce512(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
        }
        out
    }

    /// Rows scored together: four concurrent row streams read as fast as eight (measured on
    /// the Xeon: 1 stream ~25% slower from L3 and DRAM), and 16 accumulators fit the 32 registers.
    const R: usize = super::STREAMS;
    /// How far ahead in each of the four streams a prefetching range scan reads: on the Xeon this
    /// took the float16 scan from ~1.7x to ~1.9x the float32 scan's speed at 400k x 1536 (one
    /// thread, interleaved runs) and left the float32 scan at its floor. Whether to prefetch at
    /// all is measured per process (the scan plan), not assumed from one CPU.
    const AHEAD: usize = 4096;

    four_row_dots!("avx512f");

    /// # Safety
    /// AVX-512F; every row of `rows` (`dim` floats at `m + row * dim`), `dim` query floats and
    /// `rows.len()` outputs are valid.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dots_avx512(m: *const f32, dim: usize, q: *const f32, rows: Rows<'_>, out: *mut f32) {
        dots(m, dim, q, rows, out)
    }

    /// # Safety
    /// As [`dots_avx512`], with float16 rows.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dots_f16_avx512(m: *const u16, dim: usize, q: *const f32, rows: Rows<'_>, out: *mut f32) {
        dots(m, dim, q, rows, out)
    }
}

/// The AVX2 + FMA (+ F16C) twin of the `x86` module: the same four-row groups, prefetches and
/// streams, with each row keeping exactly `dot_avx2`'s / `dot_f16_avx2`'s accumulation
/// (s0..s3 by 32 lanes, s0 by 8, fixed reduction, then the scalar tail added in order).
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::f16_to_f32;
    use super::super::x86::reduce256;
    use super::Rows;

    /// Loads 8 lanes of a row: float32 as is, float16 widened (`vcvtph2ps`, F16C).
    trait Lanes: Copy {
        /// # Safety
        /// AVX2 + F16C; 8 elements readable at `p`.
        unsafe fn load(p: *const Self) -> __m256;
        /// The element as float32 (exact).
        fn wide(self) -> f32;
    }

    // The contract of the load is the trait's (`# Safety` on `Lanes::load`).
    impl Lanes for f32 {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load(p: *const f32) -> __m256 {
            _mm256_loadu_ps(p)
        }
        #[inline]
        fn wide(self) -> f32 {
            self
        }
    }

    impl Lanes for u16 {
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn load(p: *const u16) -> __m256 {
            _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
        }
        #[inline]
        fn wide(self) -> f32 {
            f16_to_f32(self)
        }
    }

    /// # Safety
    /// SSE (every x86_64). No memory is read: `p` may be any address (a prefetch never faults).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn prefetch<T>(p: *const T, bytes: usize) {
        let mut off = 0;
        while off < bytes {
            _mm_prefetch::<_MM_HINT_T0>((p as *const i8).wrapping_add(off));
            off += 64;
        }
    }

    /// `R` rows at once, each with `dot_avx2`'s exact accumulation; with `PF`, prefetches from
    /// `next` meanwhile (as the AVX-512 `group`). Prefetch addresses are never read.
    ///
    /// # Safety
    /// AVX2, FMA, F16C; `n` elements readable at every pointer of `x` and `n` floats at `q`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn group<T: Lanes, const R: usize, const PF: bool>(
        x: [*const T; R],
        q: *const f32,
        n: usize,
        next: [*const T; R],
    ) -> [f32; R] {
        let mut s = [[_mm256_setzero_ps(); 4]; R];
        let line = 32 * size_of::<T>(); // bytes of one row per 32 lanes
        let mut i = 0;
        while i + 32 <= n {
            if PF {
                for p in next {
                    prefetch(p.wrapping_add(i), line);
                }
            }
            for j in 0..4 {
                let qv = _mm256_loadu_ps(q.add(i + 8 * j));
                for (acc, p) in s.iter_mut().zip(x) {
                    acc[j] = _mm256_fmadd_ps(T::load(p.add(i + 8 * j)), qv, acc[j]);
                }
            }
            i += 32;
        }
        if PF && i < n {
            for p in next {
                prefetch(p.wrapping_add(i), (n - i) * size_of::<T>());
            }
        }
        while i + 8 <= n {
            let qv = _mm256_loadu_ps(q.add(i));
            for (acc, p) in s.iter_mut().zip(x) {
                acc[0] = _mm256_fmadd_ps(T::load(p.add(i)), qv, acc[0]);
            }
            i += 8;
        }
        let mut out = [0.0f32; R];
        for ((o, acc), p) in out.iter_mut().zip(s).zip(x) {
            let mut total = reduce256(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
            for t in i..n {
                total += (*p.add(t)).wide() * *q.add(t);
            }
            *o = total;
        }
        out
    }

    /// Rows scored together (one per read stream of [`Rows::Streams`]).
    const R: usize = super::STREAMS;
    /// How far ahead in each stream a range scan prefetches (as on AVX-512).
    const AHEAD: usize = 4096;

    four_row_dots!("avx2,fma,f16c");

    /// # Safety
    /// AVX2, FMA, F16C; every row of `rows` (`dim` floats at `m + row * dim`), `dim` query
    /// floats and `rows.len()` outputs are valid.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dots_avx2(m: *const f32, dim: usize, q: *const f32, rows: Rows<'_>, out: *mut f32) {
        dots(m, dim, q, rows, out)
    }

    /// # Safety
    /// As [`dots_avx2`], with float16 rows.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dots_f16_avx2(m: *const u16, dim: usize, q: *const f32, rows: Rows<'_>, out: *mut f32) {
        dots(m, dim, q, rows, out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::values;
    use super::*;

    #[test]
    fn each_row_has_the_single_dot_bits() {
        for dim in [0, 1, 15, 16, 17, 63, 64, 65, 100, 384, 1537] {
            let n = 9;
            let m = values(n * dim, 3);
            let halves: Vec<u16> = values(n * dim, 4).iter().map(|&v| crate::vector::shadow::f32_to_f16(v)).collect();
            let q = values(dim, 5);
            let picks: Vec<i64> = vec![8, 0, 3, 3, 7];
            for tier in [Tier::Avx512, Tier::Avx2, Tier::Portable] {
                let streams = [
                    Rows::Streams { first: 1, gap: 2, len: 2, prefetch: true },
                    Rows::Streams { first: 1, gap: 2, len: 2, prefetch: false },
                    Rows::Streams { first: 0, gap: 0, len: 3, prefetch: true },
                ];
                for rows in [
                    Rows::Range(0, n),
                    Rows::Range(2, 7),
                    Rows::Range(4, 4),
                    Rows::Pick(&picks),
                    streams[0],
                    streams[1],
                    streams[2],
                ] {
                    let mut out = vec![f32::NAN; rows.len()];
                    dots_for(tier)(&m, dim, &q, rows, &mut out);
                    let mut out16 = vec![f32::NAN; rows.len()];
                    dots_f16_for(tier)(&halves, dim, &q, rows, &mut out16);
                    for i in 0..rows.len() {
                        let r = rows.row(i) * dim;
                        let want = dot_for(tier)(&m[r..r + dim], &q);
                        assert_eq!(out[i].to_bits(), want.to_bits(), "{tier:?} {dim} {rows:?} {i}");
                        let want16 = dot_f16_for(tier)(&halves[r..r + dim], &q);
                        assert_eq!(out16[i].to_bits(), want16.to_bits(), "f16 {tier:?} {dim} {rows:?} {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn rows_outside_the_matrix_panic_instead_of_reading() {
        let m = vec![0.0f32; 8];
        let q = vec![0.0f32; 4];
        let mut out = [0.0f32; 2];
        for tier in [Tier::Avx512, Tier::Avx2, Tier::Portable] {
            let bad = [2i64];
            assert!(std::panic::catch_unwind(|| dots_for(tier)(&m, 4, &q, Rows::Pick(&bad), &mut [0.0])).is_err());
            assert!(std::panic::catch_unwind(|| dots_for(tier)(&m, 4, &q, Rows::Range(1, 3), &mut [0.0; 2])).is_err());
            assert!(std::panic::catch_unwind(|| dots_for(tier)(&m, 4, &q[..3], Rows::Range(0, 1), &mut [0.0])).is_err());
            let far = Rows::Streams { first: 0, gap: 1, len: 1, prefetch: true }; // rows 0..4 of a 2-row matrix
            assert!(std::panic::catch_unwind(|| dots_for(tier)(&m, 4, &q, far, &mut [0.0; 4])).is_err());
            dots_for(tier)(&m, 4, &q, Rows::Range(0, 2), &mut out);
        }
    }
}
