//! Getting finished spans out of the process.
//!
//! - [`BatchProcessor`]: batches spans to any `SpanExporter` on its own thread and runtime,
//!   never blocking the request path; counts what it drops ([`ExportStats`]).
//! - [`ConsoleExporter`]: draws each finished trace as an indented call tree.
//! - [`OtlpHttpExporter`]: OTLP/HTTP (protobuf), each batch encoded straight from the spans.
//! - OTLP/gRPC and Zipkin exporters come from `opentelemetry-otlp` and
//!   `opentelemetry-zipkin`, built by [`crate::Pipeline`]; the in-memory exporter for tests is
//!   the SDK's `InMemorySpanExporter` (feature `in-memory`).

mod batch;
pub mod console;
pub mod otlp;
pub(crate) mod stock;

pub use batch::{BatchConfig, BatchProcessor, BuildError, ExportStats, REPORT_INTERVAL};
pub use console::ConsoleExporter;
#[cfg(any(test, feature = "in-memory"))]
pub use opentelemetry_sdk::trace::InMemorySpanExporter;
pub use otlp::{OtlpHttpExporter, OtlpHttpExporterBuilder};
