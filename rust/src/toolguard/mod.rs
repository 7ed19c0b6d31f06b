//! Tool guard kernels: the canonical call fingerprint (BLAKE2b over a canonical
//! encoding) and the loop-guard window bookkeeping with per-tool counters.

pub mod blake2b;
pub mod canon;
pub mod window;
