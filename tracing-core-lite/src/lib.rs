//! The shared core of the `tower-trace` and `tonic-trace` middleware: context propagation, the
//! span recipe, the capture policy, and the export pipeline.
//!
//! "Lite" means a thin, fast layer over the OpenTelemetry API and SDK, not a second tracer: the
//! spans are OpenTelemetry spans, so `#[tracing::instrument]` code (through
//! `tracing-opentelemetry`) and any other OpenTelemetry instrumentation nest under them.
//!
//! - [`propagation`]: W3C Trace Context and Baggage, B3 (single and multi header), Jaeger, and
//!   the composite that `OTEL_PROPAGATORS` selects.
//! - [`recipe`]: span names, kinds, semantic-convention attributes and status rules for HTTP
//!   and gRPC, servers and clients.
//! - [`capture`]: redaction of URLs, header capture by allowlist, payload capture with a cap.
//! - [`filter`]: which requests get a span.
//! - [`export`] and [`pipeline`]: batching off the request path, the console call-tree
//!   exporter, and the `OTEL_*`-driven [`Pipeline`].
//! - [`instrument`]: spans around in-process functions and futures.
//! - [`tracer`]: where the layers get their tracer (the global provider, or one you pass).
//!
//! ```no_run
//! use tracing_core_lite::instrument::in_span;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = tracing_core_lite::Pipeline::from_env()?.with_service_name("demo").install()?;
//! in_span("work", |_cx| { /* ... */ });
//! guard.shutdown()?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod capture;
pub mod error;
pub mod export;
pub mod filter;
pub mod headers;
pub mod instrument;
pub mod pipeline;
pub mod propagation;
pub mod recipe;
pub mod sampling;
pub mod tracer;

pub use error::ConfigError;
pub use pipeline::{Pipeline, PipelineError, PipelineGuard};
pub use propagation::Propagators;
pub use tracer::{Parent, TracerSource};

/// Locks `mutex`, recovering the guard if a previous holder panicked: every critical section
/// of this crate leaves what it protects consistent, so a panic elsewhere must not stop it.
pub(crate) fn lock_unpoisoned<T: ?Sized>(
    mutex: &std::sync::Mutex<T>,
) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The 8 bytes of `bytes` from `at` as a little-endian word (the first byte in the lowest
/// lane), as this crate's word-at-a-time hashes, searches and decoders read them.
///
/// Panics if `bytes` is shorter than `at + 8`: callers read within a length they checked.
#[inline(always)]
pub(crate) fn le_word(bytes: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(w)
}
