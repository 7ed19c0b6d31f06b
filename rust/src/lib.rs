//! Compiled kernels behind `crewai_rust._speedups`.
//!
//! Every module except `python` is plain Rust with its own `cargo test`s; the
//! `python` module is the thin PyO3 glue that converts arguments, releases the
//! GIL around long work and maps [`error::Error`] onto Python exceptions.

pub mod buildinfo;
pub mod embedding;
pub mod error;
pub mod fanout;
pub mod message;
pub mod record_row;
pub mod sqlpool;
pub mod toolguard;
pub mod vector;

#[cfg(feature = "python")]
mod python;
