//! The hand-written scan kernels against SimSIMD and NumKong, one thread, side by side.
//!
//! Every implementation scores every row of an `n x dim` matrix against one query and keeps
//! the best score; each round runs all of them once (a change of load on a shared machine
//! hits all alike), and the median of the rounds is printed as GB/s of float32-equivalent
//! rows (`n * dim * 4` bytes over the time), beside a pure streaming read of the float32 rows.
//! - `floor`: `simd::stream_sum` (eight read streams);
//! - `ours`: the block kernel the float32 scan uses (`simd::dots_for`, bit-equal to `dot_for`);
//! - `simsimd`, `numkong`: their float32 `dot` per row (float64 result);
//! - `ours_f16`: the shadow scan's float16-row x float32-query block kernel;
//! - `simsimd_f16`, `numkong_f16`: their float16 x float16 `dot` per row (the query rounded to
//!   float16 too, so neither gives the exact bound the shadow scan needs; measured for speed).

use std::time::Instant;

use simsimd::SpatialSimilarity;
use speedups::vector::shadow::f32_to_f16;
use speedups::vector::simd;

const IMPLS: [&str; 7] = ["floor", "ours", "simsimd", "numkong", "ours_f16", "simsimd_f16", "numkong_f16"];

fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        })
        .collect()
}

fn best_of(scores: impl Iterator<Item = f64>) -> f64 {
    scores.fold(f64::MIN, f64::max)
}

fn main() {
    let sizes = std::env::args().nth(1).unwrap_or_else(|| "1000x1536,10000x1536,10000x3072,100000x1536".into());
    let tier = simd::detected_tier();
    println!("tier {}", tier.name());
    for size in sizes.split(',') {
        let (n, d) = size.split_once('x').expect("NxD");
        let (n, d): (usize, usize) = (n.parse().expect("rows"), d.parse().expect("dim"));
        let m = values(n * d, 1);
        let q = values(d, 2);
        let h: Vec<u16> = m.iter().map(|&v| f32_to_f16(v)).collect();
        let qh: Vec<u16> = q.iter().map(|&v| f32_to_f16(v)).collect();
        // SAFETY: both crates' f16 are #[repr(transparent)]-style wrappers of the u16 bits.
        let hs: &[simsimd::f16] = unsafe { std::slice::from_raw_parts(h.as_ptr().cast(), h.len()) };
        let qs: &[simsimd::f16] = unsafe { std::slice::from_raw_parts(qh.as_ptr().cast(), qh.len()) };
        let hk: &[numkong::f16] = unsafe { std::slice::from_raw_parts(h.as_ptr().cast(), h.len()) };
        let qk: &[numkong::f16] = unsafe { std::slice::from_raw_parts(qh.as_ptr().cast(), qh.len()) };
        let dots = simd::dots_for(tier);
        let dots16 = simd::dots_f16_for(tier);
        let block = |f: &dyn Fn(simd::Rows<'_>, &mut [f32])| {
            let mut buf = [0.0f32; 64];
            let mut best = f32::MIN;
            for i in (0..n).step_by(64) {
                let j = (i + 64).min(n);
                f(simd::Rows::Range(i, j), &mut buf);
                best = buf[..j - i].iter().fold(best, |a, &b| a.max(b));
            }
            best as f64
        };
        let row = |r: usize| r * d..r * d + d;
        let reps = ((2e9 / (n * d * 4) as f64) as usize).clamp(5, 200);
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); IMPLS.len()];
        let mut sink = 0.0f64;
        for _ in 0..reps {
            for (i, name) in IMPLS.iter().enumerate() {
                let start = Instant::now();
                sink += match *name {
                    "floor" => simd::stream_sum(&m) as f64,
                    "ours" => block(&|rows, out| dots(&m, d, &q, rows, out)),
                    "simsimd" => best_of((0..n).map(|r| f32::dot(&m[row(r)], &q).unwrap_or(0.0))),
                    "numkong" => best_of((0..n).map(|r| <f32 as numkong::Dot>::dot(&m[row(r)], &q).unwrap_or(0.0))),
                    "ours_f16" => block(&|rows, out| dots16(&h, d, &q, rows, out)),
                    "simsimd_f16" => best_of((0..n).map(|r| simsimd::f16::dot(&hs[row(r)], qs).unwrap_or(0.0))),
                    "numkong_f16" => best_of(
                        (0..n).map(|r| <numkong::f16 as numkong::Dot>::dot(&hk[row(r)], qk).unwrap_or(0.0) as f64),
                    ),
                    _ => unreachable!(),
                };
                times[i].push(start.elapsed().as_secs_f64());
            }
        }
        let gb = (n * d * 4) as f64 / 1e9;
        print!("{n}x{d}:");
        for (i, name) in IMPLS.iter().enumerate() {
            let mut t = times[i].clone();
            t.sort_by(f64::total_cmp);
            let med = t[t.len() / 2];
            print!("  {name} {:.3} ms ({:.0} GB/s)", med * 1e3, gb / med);
        }
        println!("  [{}]", (sink > 0.0) as u8);
    }
}
