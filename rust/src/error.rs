//! The one error type of the crate; the glue converts it to Python exceptions.

use std::fmt;

/// Everything that can go wrong inside a kernel.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// An argument has the wrong shape or value (maps to `ValueError`).
    InvalidArgument(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias used by every plain-Rust module.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_the_message() {
        assert_eq!(Error::InvalidArgument("bad dim".into()).to_string(), "bad dim");
    }
}
