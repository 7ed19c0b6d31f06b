//! Validated float32 bytes of embeddings, for the memory store's bulk save.
//!
//! The rules are the numpy twin's (`crewai_rust/memory/_records.py` `vector_f32`):
//! any NaN or infinity is reported before a value beyond the float32 range, and a
//! finite value is rounded to the nearest float32 (ties to even), stored little-endian.

/// Why a vector was refused; the message is the twins' shared text (after the record's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    NonFinite,
    OutOfRange,
}

impl Problem {
    pub fn message(self) -> &'static str {
        match self {
            Problem::NonFinite => "contains NaN or infinite values",
            Problem::OutOfRange => "has values beyond the float32 range",
        }
    }
}

/// Writes values into a float32 buffer while remembering the first kind of problem seen.
///
/// One pass, no branch on the happy path beyond two flags: the caller reads the
/// values (from Python objects, under the GIL) and pushes them one by one.
pub struct F32Writer<'a> {
    out: &'a mut [u8],
    at: usize,
    non_finite: bool,
    out_of_range: bool,
}

impl<'a> F32Writer<'a> {
    /// `out` holds exactly 4 bytes per value to come.
    pub fn new(out: &'a mut [u8]) -> Self {
        F32Writer { out, at: 0, non_finite: false, out_of_range: false }
    }

    #[inline]
    pub fn push(&mut self, v: f64) {
        self.non_finite |= !v.is_finite();
        self.out_of_range |= v.abs() > f32::MAX as f64;
        if let Some(dst) = self.out.get_mut(self.at..self.at + 4) {
            dst.copy_from_slice(&(v as f32).to_le_bytes());
        }
        self.at += 4;
    }

    /// Values pushed so far.
    pub fn len(&self) -> usize {
        self.at / 4
    }

    pub fn is_empty(&self) -> bool {
        self.at == 0
    }

    /// The verdict on everything pushed (non-finite wins over out-of-range, as in the numpy twin).
    pub fn finish(self) -> Result<(), Problem> {
        if self.non_finite {
            Err(Problem::NonFinite)
        } else if self.out_of_range {
            Err(Problem::OutOfRange)
        } else {
            Ok(())
        }
    }
}

/// One vector's float32 bytes, or its problem.
pub fn encode(values: &[f64]) -> Result<Vec<u8>, Problem> {
    let mut out = vec![0u8; values.len() * 4];
    let mut writer = F32Writer::new(&mut out);
    for &v in values {
        writer.push(v);
    }
    writer.finish().map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_little_endian_float32() {
        assert_eq!(encode(&[1.5, -2.0]).unwrap(), [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat());
        assert_eq!(encode(&[]).unwrap(), Vec::<u8>::new());
        // rounding to nearest: 0.1 in float64 becomes the nearest float32
        assert_eq!(encode(&[0.1]).unwrap(), 0.1f32.to_le_bytes());
    }

    #[test]
    fn non_finite_is_reported_before_out_of_range() {
        assert_eq!(encode(&[1e39, f64::NAN]), Err(Problem::NonFinite));
        assert_eq!(encode(&[f64::NEG_INFINITY]), Err(Problem::NonFinite));
        assert_eq!(encode(&[1.0, -1e39]), Err(Problem::OutOfRange));
        // the largest float32 itself is accepted; one float64 step above it is not
        assert!(encode(&[f32::MAX as f64]).is_ok());
        let above = f64::from_bits((f32::MAX as f64).to_bits() + 1);
        assert_eq!(encode(&[above]), Err(Problem::OutOfRange));
    }

    #[test]
    fn writer_counts_what_it_was_given() {
        let mut buf = vec![0u8; 8];
        let mut w = F32Writer::new(&mut buf);
        assert!(w.is_empty());
        w.push(1.0);
        w.push(2.0);
        assert_eq!(w.len(), 2);
        assert!(w.finish().is_ok());
        assert_eq!(buf, [1.0f32.to_le_bytes(), 2.0f32.to_le_bytes()].concat());
    }
}
