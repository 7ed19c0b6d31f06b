//! BLAKE2b-128, incremental and unkeyed, from the `blake2` crate: the digest both
//! fingerprint twins share (Python's `hashlib.blake2b(digest_size=16)` computes the same bytes).

use blake2::digest::consts::U16;
use blake2::digest::Digest;

/// BLAKE2b with a 16-byte digest (the output length is part of its parameter block).
pub type Blake2b128 = blake2::Blake2b<U16>;

/// One-shot digest.
pub fn digest(data: &[u8]) -> [u8; 16] {
    Blake2b128::digest(data).into()
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference values from CPython's hashlib.blake2b(..., digest_size=16); the same
    // vectors the hand-written implementation this replaced was tested against.
    #[test]
    fn matches_hashlib() {
        assert_eq!(hex(&digest(b"abc")), "cf4ab791c62b8d2b2109c90275287816");
        assert_eq!(hex(&digest(b"")), "cae66941d9efbd404e4d88758ea67670");
        assert_eq!(hex(&digest(&[0u8; 128])), "40d697295c01d2312035c1fa7d884b8d");
        let data: Vec<u8> = (0..3).flat_map(|_| 0..=255u8).collect();
        assert_eq!(hex(&digest(&data)), "e0892860f9fc0da273b9db57e857c19a");
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for split in [0usize, 1, 127, 128, 129, 500, 1000] {
            let mut h = Blake2b128::new();
            h.update(&data[..split]);
            h.update(&data[split..]);
            assert_eq!(<[u8; 16]>::from(h.finalize()), digest(&data), "split {split}");
        }
    }
}
