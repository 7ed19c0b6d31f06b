//! The canonical byte encoding both fingerprint twins produce.
//!
//! Every value is self-delimiting (a tag, then a length or a terminator), so the
//! concatenation of encodings is unambiguous. Numbers are canonical by value
//! (`1 == 1.0 == 1e0`), mappings and sets sort their entry encodings, and long
//! text is replaced by a streamed digest. The walk over Python objects lives in
//! the PyO3 glue; this module holds the pieces that need no interpreter.

use std::io::Write;

use blake2::digest::Digest;

use super::blake2b::{digest, hex, Blake2b128};

/// Strings and byte strings of at least this many UTF-8 bytes are hashed, not copied.
pub const BLOB_THRESHOLD: usize = 64 * 1024;
/// Containers nested deeper than this encode as the depth-limit marker.
pub const MAX_DEPTH: usize = 100;
/// After this many visited values every further value encodes as the budget marker.
pub const MAX_NODES: usize = 200_000;
/// Digest size in bytes of fingerprints and of hashed blobs (BLAKE2b-128).
pub const DIGEST_LEN: usize = 16;

pub const TAG_NONE: &[u8] = b"N";
pub const TAG_TRUE: &[u8] = b"T";
pub const TAG_FALSE: &[u8] = b"F";
pub const MARK_TRUNCATED: &[u8] = b"Z;";

/// Append `<tag><decimal>;`.
pub fn push_tagged_decimal(out: &mut Vec<u8>, tag: u8, decimal: &str) {
    out.push(tag);
    out.extend_from_slice(decimal.as_bytes());
    out.push(b';');
}

/// Append an integer given in decimal.
pub fn push_int_decimal(out: &mut Vec<u8>, decimal: &str) {
    push_tagged_decimal(out, b'I', decimal);
}

/// Append the decimal digits of `n` (no formatting machinery, no allocation).
#[inline]
pub fn push_decimal(out: &mut Vec<u8>, mut n: u128) {
    let mut buf = [0u8; 40];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Append an integer without allocating.
pub fn push_i128(out: &mut Vec<u8>, value: i128) {
    out.push(b'I');
    if value < 0 {
        out.push(b'-');
    }
    push_decimal(out, value.unsigned_abs());
    out.push(b';');
}

/// Append a container header `<tag><count>:`.
#[inline]
pub fn push_header(out: &mut Vec<u8>, tag: u8, count: usize) {
    out.push(tag);
    push_decimal(out, count as u128);
    out.push(b':');
}

/// Append a float: integral values encode as the equal integer, others by their bits.
pub fn push_float(out: &mut Vec<u8>, f: f64) {
    if f.is_nan() {
        out.extend_from_slice(b"Dnan;");
    } else if f.is_infinite() {
        out.extend_from_slice(if f > 0.0 { b"D+inf;" } else { b"D-inf;" });
    } else if f.fract() == 0.0 {
        if f.abs() < 1e18 {
            push_i128(out, f as i128);
        } else {
            push_int_decimal(out, &integral_float_decimal(f));
        }
    } else {
        out.push(b'D');
        let _ = write!(out, "{:016x}", f.to_bits());
        out.push(b';');
    }
}

/// The exact decimal value of a finite integral float (what Python's `str(int(f))` gives).
pub fn integral_float_decimal(f: f64) -> String {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    if f.abs() < TWO_POW_63 {
        return (f as i64).to_string();
    }
    let bits = f.to_bits();
    let negative = bits >> 63 == 1;
    let exponent = ((bits >> 52) & 0x7ff) as i64 - 1075;
    let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
    // Here |f| >= 2^63, so exponent > 0: value = mantissa * 2^exponent.
    let mut limbs: Vec<u64> =
        vec![mantissa % 1_000_000_000, mantissa / 1_000_000_000 % 1_000_000_000, mantissa / 1_000_000_000_000_000_000];
    let mut remaining = exponent;
    while remaining > 0 {
        let shift = remaining.min(30);
        remaining -= shift;
        let mut carry = 0u64;
        for limb in limbs.iter_mut() {
            let v = (*limb << shift) + carry;
            *limb = v % 1_000_000_000;
            carry = v / 1_000_000_000;
        }
        while carry > 0 {
            limbs.push(carry % 1_000_000_000);
            carry /= 1_000_000_000;
        }
    }
    while limbs.len() > 1 && *limbs.last().unwrap_or(&1) == 0 {
        limbs.pop();
    }
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    let mut iter = limbs.iter().rev();
    if let Some(first) = iter.next() {
        s.push_str(&first.to_string());
    }
    for limb in iter {
        s.push_str(&format!("{limb:09}"));
    }
    s
}

/// UTF-8 bytes of one code point; surrogates are encoded like Python's `surrogatepass`.
#[inline]
pub fn push_code_point(out: &mut Vec<u8>, cp: u32) {
    if cp < 0x80 {
        out.push(cp as u8);
    } else if cp < 0x800 {
        out.push(0xc0 | (cp >> 6) as u8);
        out.push(0x80 | (cp & 0x3f) as u8);
    } else if cp < 0x10000 {
        out.push(0xe0 | (cp >> 12) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
        out.push(0x80 | (cp & 0x3f) as u8);
    } else {
        out.push(0xf0 | (cp >> 18) as u8);
        out.push(0x80 | ((cp >> 12) & 0x3f) as u8);
        out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
        out.push(0x80 | (cp & 0x3f) as u8);
    }
}

/// UTF-8 length of one code point.
#[inline]
pub fn code_point_len(cp: u32) -> usize {
    match cp {
        0..=0x7f => 1,
        0x80..=0x7ff => 2,
        0x800..=0xffff => 3,
        _ => 4,
    }
}

/// Append text given as code points: `S<len>:<utf8>` when short, `H<len>:<digest>` when long.
/// Long text is streamed into the hasher in chunks, never copied whole.
pub fn push_code_points<I>(out: &mut Vec<u8>, code_points: I)
where
    I: Iterator<Item = u32> + Clone,
{
    let utf8_len: usize = code_points.clone().map(code_point_len).sum();
    if utf8_len < BLOB_THRESHOLD {
        push_header(out, b'S', utf8_len);
        out.reserve(utf8_len);
        for cp in code_points {
            push_code_point(out, cp);
        }
        return;
    }
    let mut hasher = Blake2b128::new();
    let mut chunk: Vec<u8> = Vec::with_capacity(16 * 1024 + 4);
    for cp in code_points {
        push_code_point(&mut chunk, cp);
        if chunk.len() >= 16 * 1024 {
            hasher.update(&chunk);
            chunk.clear();
        }
    }
    hasher.update(&chunk);
    push_header(out, b'H', utf8_len);
    out.extend_from_slice(&hasher.finalize());
}

/// Append UTF-8 text that is already valid bytes (the fast path for ASCII).
pub fn push_utf8(out: &mut Vec<u8>, bytes: &[u8]) {
    push_blob(out, b'S', b'H', bytes);
}

/// Append raw bytes: `B<len>:<bytes>` when short, `K<len>:<digest>` when long.
pub fn push_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    push_blob(out, b'B', b'K', bytes);
}

fn push_blob(out: &mut Vec<u8>, small: u8, hashed: u8, bytes: &[u8]) {
    if bytes.len() < BLOB_THRESHOLD {
        push_header(out, small, bytes.len());
        out.extend_from_slice(bytes);
    } else {
        push_header(out, hashed, bytes.len());
        out.extend_from_slice(&digest(bytes));
    }
}

/// Append the back-reference marker for a container that contains itself.
pub fn push_cycle(out: &mut Vec<u8>, distance: usize) {
    out.push(b'R');
    push_decimal(out, distance as u128);
    out.push(b';');
}

fn is_hex(cp: u32) -> bool {
    matches!(cp, 0x30..=0x39 | 0x41..=0x46 | 0x61..=0x66)
}

/// Remove memory addresses (` at 0x<hex>`) from a repr, like `re.sub(r" at 0x[0-9a-fA-F]+", "", s)`.
pub fn strip_addresses(cps: &[u32]) -> Vec<u32> {
    const PATTERN: [u32; 6] = [0x20, 0x61, 0x74, 0x20, 0x30, 0x78]; // " at 0x"
    let mut out = Vec::with_capacity(cps.len());
    let mut i = 0;
    while i < cps.len() {
        if cps.len() > i + 6 && cps[i..i + 6] == PATTERN && is_hex(cps[i + 6]) {
            let mut j = i + 6;
            while j < cps.len() && is_hex(cps[j]) {
                j += 1;
            }
            i = j;
            continue;
        }
        out.push(cps[i]);
        i += 1;
    }
    out
}

/// The hex fingerprint of a canonical encoding.
pub fn fingerprint_of(canonical: &[u8]) -> String {
    hex(&digest(canonical))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc_float(f: f64) -> String {
        let mut out = Vec::new();
        push_float(&mut out, f);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integral_floats_equal_integers() {
        assert_eq!(enc_float(1.0), "I1;");
        assert_eq!(enc_float(-0.0), "I0;");
        assert_eq!(enc_float(1e20), "I100000000000000000000;");
        assert_eq!(enc_float(-1e19), "I-10000000000000000000;");
        assert_eq!(enc_float(2f64.powi(63)), "I9223372036854775808;");
        assert_eq!(enc_float(1.5), format!("D{:016x};", 1.5f64.to_bits()));
        assert_eq!(enc_float(f64::NAN), "Dnan;");
        assert_eq!(enc_float(f64::NEG_INFINITY), "D-inf;");
    }

    #[test]
    fn integers_print_like_python() {
        for v in [0i128, 7, -7, 1234567890, i64::MIN as i128, i128::MIN, i128::MAX] {
            let mut out = Vec::new();
            push_i128(&mut out, v);
            assert_eq!(out, format!("I{v};").into_bytes());
        }
    }

    #[test]
    fn huge_float_is_exact() {
        // str(int(1e300)) in Python.
        let s = integral_float_decimal(1e300);
        assert_eq!(s.len(), 301);
        assert_eq!(s, "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160");
        assert_eq!(integral_float_decimal(f64::MAX).len(), 309);
    }

    #[test]
    fn code_points_match_utf8_and_hash_long_text() {
        let text = "héllo \u{1F600}";
        let mut a = Vec::new();
        push_code_points(&mut a, text.chars().map(|c| c as u32));
        let mut b = Vec::new();
        push_utf8(&mut b, text.as_bytes());
        assert_eq!(a, b);
        let long: String = "xé".repeat(BLOB_THRESHOLD);
        let mut c = Vec::new();
        push_code_points(&mut c, long.chars().map(|c| c as u32));
        let mut d = Vec::new();
        push_utf8(&mut d, long.as_bytes());
        assert_eq!(c, d);
        assert!(c.starts_with(b"H"));
        assert_eq!(c.len(), format!("H{}:", long.len()).len() + DIGEST_LEN);
    }

    #[test]
    fn surrogates_pass_through() {
        let mut out = Vec::new();
        push_code_point(&mut out, 0xD800);
        assert_eq!(out, vec![0xed, 0xa0, 0x80]);
    }

    #[test]
    fn addresses_are_stripped() {
        let cps = |s: &str| s.chars().map(|c| c as u32).collect::<Vec<_>>();
        assert_eq!(strip_addresses(&cps("<Foo object at 0x7f3a9c>")), cps("<Foo object>"));
        assert_eq!(strip_addresses(&cps("x at 0xg")), cps("x at 0xg"));
        assert_eq!(strip_addresses(&cps(" at 0x1 at 0x2")), cps(""));
    }
}
