//! Wrapping sums of 64-bit words per fixed-size block: the data check of a memory-mapped
//! vector snapshot (`crewai_rust/memory/_snapshot.py` `block_sums`, its numpy twin).
//!
//! Opening a large store is mostly reading its snapshot once to check it; numpy's integer
//! reduction reads about 14 GB/s on one core, this about as fast as the memory streams,
//! on the scan workers.

/// Wrapping sum of `words` with 32 independent lanes (the compiler vectorizes the loop).
#[inline(always)]
fn sum_lanes(words: &[u64]) -> u64 {
    let mut acc = [0u64; 32];
    let mut chunks = words.chunks_exact(32);
    for c in &mut chunks {
        for lane in 0..32 {
            acc[lane] = acc[lane].wrapping_add(c[lane]);
        }
    }
    let tail = chunks.remainder().iter().fold(0u64, |a, &w| a.wrapping_add(w));
    acc.iter().fold(tail, |a, &w| a.wrapping_add(w))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn sums_avx512(words: &[u64], block: usize, out: &mut Vec<u64>) {
    use std::arch::x86_64::*;
    for c in words.chunks(block) {
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut quads = c.chunks_exact(32);
        for q in &mut quads {
            for (lane, a) in acc.iter_mut().enumerate() {
                // SAFETY: `q` holds 32 words: lane * 8 + 8 <= 32, an unaligned 64-byte load in bounds.
                let v = unsafe { _mm512_loadu_si512(q.as_ptr().add(lane * 8).cast()) };
                *a = _mm512_add_epi64(*a, v);
            }
        }
        let sum = _mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]));
        let mut lanes = [0u64; 8];
        // SAFETY: `lanes` is 64 bytes, an unaligned store in bounds.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), sum) };
        let tail = quads.remainder().iter().fold(0u64, |a, &w| a.wrapping_add(w));
        out.push(lanes.iter().fold(tail, |a, &w| a.wrapping_add(w)));
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn sums_avx2(words: &[u64], block: usize, out: &mut Vec<u64>) {
    out.extend(words.chunks(block).map(sum_lanes));
}

fn sums_portable(words: &[u64], block: usize, out: &mut Vec<u64>) {
    out.extend(words.chunks(block).map(sum_lanes));
}

/// The wrapping sum of each `block`-word block of `words` (the last one may be short).
pub fn block_sums_serial(words: &[u64], block: usize) -> Vec<u64> {
    let block = block.max(1);
    let mut out = Vec::with_capacity(words.len().div_ceil(block));
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: AVX-512F was detected at run time.
            unsafe { sums_avx512(words, block, &mut out) };
            return out;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 was detected at run time.
            unsafe { sums_avx2(words, block, &mut out) };
            return out;
        }
    }
    sums_portable(words, block, &mut out);
    out
}

/// [`block_sums_serial`] on `threads` threads (the caller and the scan workers), split at block edges.
pub fn block_sums(words: &[u64], block: usize, threads: usize) -> Vec<u64> {
    let block = block.max(1);
    let blocks = words.len().div_ceil(block);
    if threads <= 1 || blocks < 2 {
        return block_sums_serial(words, block);
    }
    super::split(blocks, threads, |a, b| block_sums_serial(&words[a * block..(b * block).min(words.len())], block))
        .concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(words: &[u64], block: usize) -> Vec<u64> {
        words.chunks(block).map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w))).collect()
    }

    #[test]
    fn sums_wrap_and_split_at_blocks() {
        let words: Vec<u64> = (0..50_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
        for block in [1, 7, 8, 4096] {
            let want = reference(&words, block);
            assert_eq!(block_sums_serial(&words, block), want);
            for threads in [1, 2, 3] {
                assert_eq!(block_sums(&words, block, threads), want, "{block} {threads}");
            }
            let mut out = Vec::new();
            sums_portable(&words, block, &mut out);
            assert_eq!(out, want);
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                out.clear();
                // SAFETY: AVX-512F was detected at run time.
                unsafe { sums_avx512(&words, block, &mut out) };
                assert_eq!(out, want);
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                out.clear();
                // SAFETY: AVX2 was detected at run time.
                unsafe { sums_avx2(&words, block, &mut out) };
                assert_eq!(out, want);
            }
        }
        assert!(block_sums(&[], 4096, 2).is_empty());
        assert_eq!(block_sums(&[u64::MAX, 2], 4096, 2), vec![1]);
    }
}
