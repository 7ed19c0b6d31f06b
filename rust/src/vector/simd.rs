//! Dot products over float32 rows and float16 shadow rows, dispatched at run time.
//!
//! Three tiers, chosen once per process from what the CPU reports:
//! AVX-512F (16 lanes, four accumulators), AVX2+FMA(+F16C) (8 lanes, four
//! accumulators) and a portable 8-lane loop (what NEON and everything else
//! gets from the compiler). Every tier sums each lane's products in order and
//! then reduces the lanes in a fixed tree, so one tier always returns the same
//! bits for the same row: the float16 shadow scan relies on re-scoring a row
//! in float32 giving exactly the score the float32 scan gives it.
//!
//! AVX-512 FP16 arithmetic is deliberately not used: it accumulates in
//! float16, whose rounding (2^-11 per add) would make the exact re-rank bound
//! useless; the shadow is widened to float32 with `vcvtph2ps` (AVX-512F/F16C).
//!
//! Measured against the `simsimd` 6.5.16 and `numkong` 7.8.7 crates with
//! `benchmarks/simd_compare` (one thread, every implementation once per round,
//! Intel Xeon with AVX-512 FP16, loaded 2-vCPU machine): the block kernel here
//! ([`dots_for`]) scanned float32 rows in 0.88-1.11x the time of SimSIMD's `f32::dot`
//! (faster at 1k-100k rows, 11% slower at 1M x 384) and faster than NumKong's at every size
//! (NumKong accumulates float32 in float64). Their float16 kernels were 0-20%
//! faster than [`dots_f16_for`], but they take the query in float16 too and
//! SimSIMD's AVX-512 FP16 kernel accumulates in float16 (one `__m512h`), so
//! neither gives the bound the shadow scan needs. The hand-written kernels stay.

mod block;
pub use block::{dots_f16_for, dots_for, DotsF16Fn, DotsFn, Rows, STREAMS};

/// `a . b` over float32.
pub type DotFn = fn(&[f32], &[f32]) -> f32;
/// `x . q` where `x` is float16 bits (IEEE binary16) and `q` float32.
pub type DotF16Fn = fn(&[u16], &[f32]) -> f32;

/// Which instruction set the kernels run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Avx512,
    Avx2,
    Portable,
}

impl Tier {
    pub fn name(self) -> &'static str {
        match self {
            Tier::Avx512 => "avx512f",
            Tier::Avx2 => "avx2+fma",
            Tier::Portable => "portable",
        }
    }
}

/// The best tier this CPU supports (`CREWAI_RUST_SIMD=avx2|portable` caps it, for tests and comparisons).
pub fn detected_tier() -> Tier {
    static TIER: std::sync::OnceLock<Tier> = std::sync::OnceLock::new();
    *TIER.get_or_init(|| {
        let cap = std::env::var("CREWAI_RUST_SIMD").unwrap_or_default();
        let best = hardware_tier();
        match (cap.as_str(), best) {
            ("portable", _) => Tier::Portable,
            ("avx2", Tier::Avx512) => Tier::Avx2,
            _ => best,
        }
    })
}

fn hardware_tier() -> Tier {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx512f") {
            return Tier::Avx512;
        }
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            return Tier::Avx2;
        }
    }
    Tier::Portable
}

/// The float32 dot product of `tier` (callers pass [`detected_tier`] or a lower one).
pub fn dot_for(tier: Tier) -> DotFn {
    #[cfg(target_arch = "x86_64")]
    {
        let best = hardware_tier();
        if tier == Tier::Avx512 && best == Tier::Avx512 {
            // SAFETY: AVX-512F was detected at run time just above; the kernel bounds its reads.
            return |a, b| unsafe { x86::dot_avx512(a, b) };
        }
        if tier != Tier::Portable && best != Tier::Portable {
            // SAFETY: AVX2 and FMA were detected (hardware_tier checks both, and AVX-512F implies them).
            return |a, b| unsafe { x86::dot_avx2(a, b) };
        }
    }
    let _ = tier;
    dot_portable
}

/// The float16-row dot product of `tier`.
pub fn dot_f16_for(tier: Tier) -> DotF16Fn {
    #[cfg(target_arch = "x86_64")]
    {
        let best = hardware_tier();
        if tier == Tier::Avx512 && best == Tier::Avx512 {
            // SAFETY: AVX-512F (which has vcvtph2ps on zmm) was detected at run time.
            return |a, b| unsafe { x86::dot_f16_avx512(a, b) };
        }
        if tier != Tier::Portable && best != Tier::Portable {
            // SAFETY: AVX2, FMA and F16C were detected by hardware_tier (AVX-512F CPUs have all three).
            return |a, b| unsafe { x86::dot_f16_avx2(a, b) };
        }
    }
    let _ = tier;
    dot_f16_portable
}

/// Dot product, portable: eight independent lanes the compiler keeps in vector registers.
pub fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for lane in 0..8 {
            acc[lane] += x[lane] * y[lane];
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    acc.iter().sum::<f32>() + tail
}

/// IEEE binary16 bits to float32 (exact: every half is a float).
#[inline]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal half: m * 2^-24, exactly representable as a normal float
            let v = m as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, m) => sign | 0x7fc0_0000 | (m << 13),
        (e, m) => sign | ((e + 112) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Float16-row dot product, portable: same lane structure as [`dot_portable`].
pub fn dot_f16_portable(a: &[u16], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for lane in 0..8 {
            acc[lane] += f16_to_f32(x[lane]) * y[lane];
        }
    }
    let mut tail = 0.0f32;
    for i in chunks * 8..n {
        tail += f16_to_f32(a[i]) * b[i];
    }
    acc.iter().sum::<f32>() + tail
}

/// `[x . q0, x . q1, x . q2, x . q3]`, each bit-equal to `dot_for(tier)(x, qi)`.
pub type Dot4Fn = fn(&[f32], [&[f32]; 4]) -> [f32; 4];

/// Four dot products sharing each load of `x` (the batched scan); same bits as four single dots.
pub fn dot4_for(tier: Tier) -> Dot4Fn {
    #[cfg(target_arch = "x86_64")]
    {
        if tier == Tier::Avx512 && hardware_tier() == Tier::Avx512 {
            // SAFETY: AVX-512F was detected at run time; the kernel bounds its reads by the shortest slice.
            return |x, q| unsafe { x86::dot4_avx512(x, q) };
        }
    }
    match tier {
        Tier::Avx512 => |x, q| dot4_via(dot_for(Tier::Avx512), x, q),
        Tier::Avx2 => |x, q| dot4_via(dot_for(Tier::Avx2), x, q),
        Tier::Portable => |x, q| dot4_via(dot_portable, x, q),
    }
}

fn dot4_via(dot: DotFn, x: &[f32], q: [&[f32]; 4]) -> [f32; 4] {
    [dot(x, q[0]), dot(x, q[1]), dot(x, q[2]), dot(x, q[3])]
}

/// `out[r][j] = x[r] . q[j]` for four rows and four queries, each bit-equal to `dot_for(tier)(x[r], q[j])`.
pub type Dot4x4Fn = fn([&[f32]; 4], [&[f32]; 4]) -> [[f32; 4]; 4];

/// Sixteen dot products sharing every load (the batched scan's tile): on AVX-512 each step
/// loads four row and four query vectors for sixteen FMAs, where [`dot4_for`] loads five for four.
pub fn dot4x4_for(tier: Tier) -> Dot4x4Fn {
    #[cfg(target_arch = "x86_64")]
    {
        if tier == Tier::Avx512 && hardware_tier() == Tier::Avx512 {
            // SAFETY: AVX-512F was detected at run time; the kernel bounds its reads by the shortest slice.
            return |x, q| unsafe { x86::dot4x4_avx512(x, q) };
        }
    }
    match tier {
        Tier::Avx512 => |x, q| x.map(|r| dot4_for(Tier::Avx512)(r, q)),
        Tier::Avx2 => |x, q| x.map(|r| dot4_for(Tier::Avx2)(r, q)),
        Tier::Portable => |x, q| x.map(|r| dot4_for(Tier::Portable)(r, q)),
    }
}

/// The sum of `a`, as fast as this CPU streams: a pure read, the floor any scan of `a` can reach.
pub fn stream_sum(a: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if hardware_tier() == Tier::Avx512 {
            // SAFETY: AVX-512F was detected at run time; the kernel bounds its reads by `a.len()`.
            return unsafe { x86::sum_avx512(a) };
        }
    }
    let mut acc = [0.0f32; 16];
    let mut chunks = a.chunks_exact(16);
    for c in &mut chunks {
        for lane in 0..16 {
            acc[lane] += c[lane];
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// Dot product of the common prefix of `a` and `b` with AVX-512F.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Full loads stay below `n = min(a.len(), b.len())`;
    /// the tail is a masked load, which does not touch the masked-off lanes.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_avx512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut s0 = _mm512_setzero_ps();
        let mut s1 = _mm512_setzero_ps();
        let mut s2 = _mm512_setzero_ps();
        let mut s3 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 64 <= n {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            s1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), s1);
            s2 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)), s2);
            s3 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)), s3);
            i += 64;
        }
        while i + 16 <= n {
            s0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
            let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
            s1 = _mm512_fmadd_ps(x, y, s1);
        }
        reduce512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
    }

    /// Dot product of float16 row bits `a` with float32 `b`, AVX-512F (`vcvtph2ps` widening).
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Reads stay below `min(a.len(), b.len())` (masked tail).
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot_f16_avx512(a: &[u16], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let half = |p: *const u16| _mm512_cvtph_ps(_mm256_loadu_si256(p as *const __m256i));
        let mut s0 = _mm512_setzero_ps();
        let mut s1 = _mm512_setzero_ps();
        let mut s2 = _mm512_setzero_ps();
        let mut s3 = _mm512_setzero_ps();
        let mut i = 0;
        while i + 64 <= n {
            s0 = _mm512_fmadd_ps(half(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            s1 = _mm512_fmadd_ps(half(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), s1);
            s2 = _mm512_fmadd_ps(half(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)), s2);
            s3 = _mm512_fmadd_ps(half(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)), s3);
            i += 64;
        }
        while i + 16 <= n {
            s0 = _mm512_fmadd_ps(half(pa.add(i)), _mm512_loadu_ps(pb.add(i)), s0);
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            // masked 16-bit loads need AVX-512BW: widen the tail through a zeroed stack copy
            let mut tail = [0u16; 16];
            tail[..n - i].copy_from_slice(&a[i..n]);
            let x = half(tail.as_ptr());
            let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
            s1 = _mm512_fmadd_ps(x, y, s1);
        }
        reduce512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)))
    }

    /// Four [`dot_avx512`]s over one row: the same lanes, order and reduction per query.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Reads stay below the shortest of `x` and the queries.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)] // [query][accumulator] indices mirror dot_avx512's s0..s3
    pub unsafe fn dot4_avx512(x: &[f32], q: [&[f32]; 4]) -> [f32; 4] {
        let n = q.iter().fold(x.len(), |m, v| m.min(v.len()));
        let px = x.as_ptr();
        let pq = [q[0].as_ptr(), q[1].as_ptr(), q[2].as_ptr(), q[3].as_ptr()];
        let mut s = [[_mm512_setzero_ps(); 4]; 4]; // [query][accumulator]
        let mut i = 0;
        while i + 64 <= n {
            for a in 0..4 {
                let xv = _mm512_loadu_ps(px.add(i + 16 * a));
                for j in 0..4 {
                    s[j][a] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(pq[j].add(i + 16 * a)), s[j][a]);
                }
            }
            i += 64;
        }
        while i + 16 <= n {
            let xv = _mm512_loadu_ps(px.add(i));
            for j in 0..4 {
                s[j][0] = _mm512_fmadd_ps(xv, _mm512_loadu_ps(pq[j].add(i)), s[j][0]);
            }
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let xv = _mm512_maskz_loadu_ps(mask, px.add(i));
            for j in 0..4 {
                s[j][1] = _mm512_fmadd_ps(xv, _mm512_maskz_loadu_ps(mask, pq[j].add(i)), s[j][1]);
            }
        }
        let mut out = [0.0f32; 4];
        for j in 0..4 {
            out[j] = reduce512(_mm512_add_ps(_mm512_add_ps(s[j][0], s[j][1]), _mm512_add_ps(s[j][2], s[j][3])));
        }
        out
    }

    /// Sixteen [`dot_avx512`]s (four rows by four queries), each with its exact accumulation.
    ///
    /// `dot_avx512`'s four accumulators are independent chains (s_a takes the 16 lanes at
    /// `64 t + 16 a`), so they are run one after another here: each pass keeps sixteen
    /// accumulators (one per row and query) in registers and shares each row and query load
    /// four ways. The passes' results are then combined in `dot_avx512`'s order.
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Reads stay below the shortest of the rows and queries.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)] // [row][query] indices mirror the scalar definition
    pub unsafe fn dot4x4_avx512(x: [&[f32]; 4], q: [&[f32]; 4]) -> [[f32; 4]; 4] {
        let n = x.iter().chain(q.iter()).fold(usize::MAX, |m, v| m.min(v.len()));
        let px = x.map(|v| v.as_ptr());
        let pq = q.map(|v| v.as_ptr());
        let full = n / 64 * 64;
        let mut part = [[[_mm512_setzero_ps(); 4]; 4]; 4]; // [accumulator][row][query]
        for (a, out) in part.iter_mut().enumerate() {
            let mut acc = [[_mm512_setzero_ps(); 4]; 4];
            let mut i = 16 * a;
            while i < full {
                let xv = px.map(|p| _mm512_loadu_ps(p.add(i)));
                for j in 0..4 {
                    let qv = _mm512_loadu_ps(pq[j].add(i));
                    for r in 0..4 {
                        acc[r][j] = _mm512_fmadd_ps(xv[r], qv, acc[r][j]);
                    }
                }
                i += 64;
            }
            *out = acc;
        }
        let mut i = full;
        while i + 16 <= n {
            let xv = px.map(|p| _mm512_loadu_ps(p.add(i)));
            for j in 0..4 {
                let qv = _mm512_loadu_ps(pq[j].add(i));
                for r in 0..4 {
                    part[0][r][j] = _mm512_fmadd_ps(xv[r], qv, part[0][r][j]);
                }
            }
            i += 16;
        }
        if i < n {
            let mask: __mmask16 = (1u32 << (n - i)) as u16 - 1;
            let xv = px.map(|p| _mm512_maskz_loadu_ps(mask, p.add(i)));
            for j in 0..4 {
                let qv = _mm512_maskz_loadu_ps(mask, pq[j].add(i));
                for r in 0..4 {
                    part[1][r][j] = _mm512_fmadd_ps(xv[r], qv, part[1][r][j]);
                }
            }
        }
        let mut out = [[0.0f32; 4]; 4];
        for r in 0..4 {
            for j in 0..4 {
                let (s0, s1, s2, s3) = (part[0][r][j], part[1][r][j], part[2][r][j], part[3][r][j]);
                out[r][j] = reduce512(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
            }
        }
        out
    }

    /// Sum of `a` with AVX-512F as eight concurrent streams (each an eighth of `a`): a pure
    /// read at the best rate one core reaches (one stream is ~25% slower from L3 and DRAM).
    ///
    /// # Safety
    /// The CPU must support AVX-512F. Full loads stay below `a.len()`; the rest is scalar.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn sum_avx512(a: &[f32]) -> f32 {
        const S: usize = 8;
        let p = a.as_ptr();
        let part = a.len() / S / 64 * 64;
        let mut s = [_mm512_setzero_ps(); S];
        let mut i = 0;
        while i < part {
            for (k, acc) in s.iter_mut().enumerate() {
                let at = p.add(k * part + i);
                let pair0 = _mm512_add_ps(_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)));
                let pair1 = _mm512_add_ps(_mm512_loadu_ps(at.add(32)), _mm512_loadu_ps(at.add(48)));
                *acc = _mm512_add_ps(*acc, _mm512_add_ps(pair0, pair1));
            }
            i += 64;
        }
        let total: f32 = s.iter().map(|&v| reduce512(v)).sum();
        total + a[S * part..].iter().sum::<f32>()
    }

    /// A fixed reduction tree (not `_mm512_reduce_add_ps`, whose order is the compiler's).
    #[target_feature(enable = "avx512f")]
    pub(super) fn reduce512(s: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(s);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));
        reduce256(_mm256_add_ps(lo, hi))
    }

    #[target_feature(enable = "avx")]
    pub(super) fn reduce256(s: __m256) -> f32 {
        let hi = _mm256_extractf128_ps(s, 1);
        let lo = _mm256_castps256_ps128(s);
        let q = _mm_add_ps(hi, lo);
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
        _mm_cvtss_f32(q)
    }

    /// Dot product of the common prefix of `a` and `b` with AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA. Every load stays below `min(a.len(), b.len())`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
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
        let mut total = reduce256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        while i < n {
            total += *pa.add(i) * *pb.add(i);
            i += 1;
        }
        total
    }

    /// Dot product of float16 row bits with float32 `b`, AVX2 + FMA + F16C.
    ///
    /// # Safety
    /// The CPU must support AVX2, FMA and F16C. Reads stay below `min(a.len(), b.len())`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_f16_avx2(a: &[u16], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let half = |p: *const u16| _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
        let mut s0 = _mm256_setzero_ps();
        let mut s1 = _mm256_setzero_ps();
        let mut s2 = _mm256_setzero_ps();
        let mut s3 = _mm256_setzero_ps();
        let mut i = 0;
        while i + 32 <= n {
            s0 = _mm256_fmadd_ps(half(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            s1 = _mm256_fmadd_ps(half(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), s1);
            s2 = _mm256_fmadd_ps(half(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), s2);
            s3 = _mm256_fmadd_ps(half(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), s3);
            i += 32;
        }
        while i + 8 <= n {
            s0 = _mm256_fmadd_ps(half(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
            i += 8;
        }
        let mut total = reduce256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
        while i < n {
            total += super::f16_to_f32(*pa.add(i)) * *pb.add(i);
            i += 1;
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
            })
            .collect()
    }

    fn f32_to_f16_bits(v: f32) -> u16 {
        // exact for the values used here (multiples of 2^-10 below 1)
        let mut best = 0u16;
        let mut err = f32::INFINITY;
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if (f - v).abs() < err {
                err = (f - v).abs();
                best = h;
            }
        }
        best
    }

    #[test]
    fn dot4_is_four_single_dots_bit_for_bit() {
        for len in [1, 15, 16, 17, 64, 100, 384, 1537] {
            let x = values(len, 9);
            let qs: Vec<Vec<f32>> = (0..4).map(|i| values(len, 20 + i)).collect();
            for tier in [Tier::Avx512, Tier::Avx2, Tier::Portable] {
                let got = dot4_for(tier)(&x, [&qs[0], &qs[1], &qs[2], &qs[3]]);
                for j in 0..4 {
                    assert_eq!(got[j].to_bits(), dot_for(tier)(&x, &qs[j]).to_bits(), "{tier:?} {len} {j}");
                }
            }
        }
    }

    #[test]
    fn dot4x4_is_sixteen_single_dots_bit_for_bit() {
        for len in [0, 1, 15, 16, 17, 63, 64, 65, 100, 127, 128, 129, 384, 1537] {
            let xs: Vec<Vec<f32>> = (0..4).map(|i| values(len, 40 + i)).collect();
            let qs: Vec<Vec<f32>> = (0..4).map(|i| values(len, 60 + i)).collect();
            for tier in [Tier::Avx512, Tier::Avx2, Tier::Portable] {
                let got = dot4x4_for(tier)([&xs[0], &xs[1], &xs[2], &xs[3]], [&qs[0], &qs[1], &qs[2], &qs[3]]);
                for r in 0..4 {
                    for j in 0..4 {
                        let want = dot_for(tier)(&xs[r], &qs[j]);
                        assert_eq!(got[r][j].to_bits(), want.to_bits(), "{tier:?} {len} {r} {j}");
                    }
                }
            }
        }
    }

    #[test]
    fn stream_sum_adds_everything() {
        let a: Vec<f32> = (0..1000).map(|i| (i % 7) as f32).collect();
        assert_eq!(stream_sum(&a), a.iter().map(|&v| v as f64).sum::<f64>() as f32);
        assert_eq!(stream_sum(&[]), 0.0);
    }

    #[test]
    fn f16_decoding_covers_every_class() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0400), 2f32.powi(-14));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    }

    #[test]
    fn every_tier_agrees_and_each_is_deterministic() {
        for len in [0, 1, 7, 15, 16, 17, 63, 64, 65, 100, 384, 1537] {
            let a = values(len, 1);
            let b = values(len, 2);
            let exact: f64 = a.iter().zip(&b).map(|(x, y)| (*x as f64) * (*y as f64)).sum();
            for tier in [Tier::Avx512, Tier::Avx2, Tier::Portable] {
                let got = dot_for(tier)(&a, &b);
                assert!((got as f64 - exact).abs() < 1e-4, "{tier:?} {len}");
                assert_eq!(got.to_bits(), dot_for(tier)(&a, &b).to_bits());
            }
        }
    }

    #[test]
    fn f16_tiers_match_the_widened_float32_dot() {
        let grid: Vec<u16> = (0..40).map(|i| f32_to_f16_bits((i as f32 - 20.0) / 1024.0)).collect();
        for len in [1, 8, 16, 33, 64, 130, 1000] {
            let a: Vec<u16> = (0..len).map(|i| grid[i % grid.len()]).collect();
            let wide: Vec<f32> = a.iter().map(|&h| f16_to_f32(h)).collect();
            let b = values(len, 5);
            for tier in [Tier::Avx512, Tier::Avx2, Tier::Portable] {
                // the same lane structure over the same (exactly widened) values: the same bits
                assert_eq!(dot_f16_for(tier)(&a, &b).to_bits(), dot_for(tier)(&wide, &b).to_bits(), "{tier:?} {len}");
            }
        }
    }
}
