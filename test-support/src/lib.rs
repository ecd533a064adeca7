//! Test support for the workspace: [`OtlpReceiver`], a real OTLP trace
//! receiver listening on 127.0.0.1, for end-to-end tests to assert on the
//! spans that arrived; and [`collector`], an in-process span collector that
//! signals each finished span.
//!
//! The receiver serves both OTLP transports, each on its own ephemeral port:
//!
//! - OTLP/gRPC at [`OtlpReceiver::grpc_endpoint`] (`TraceService/Export`,
//!   gzip accepted);
//! - OTLP/HTTP with protobuf bodies at [`OtlpReceiver::http_traces_url`]
//!   (`POST /v1/traces`, `content-encoding: gzip` accepted; HTTP/1.1 and h2c).
//!   The JSON encoding is not supported and is answered with
//!   `415 Unsupported Media Type`.
//!
//! Every span is recorded as a flattened [`ReceivedSpan`] (ids as hex,
//! attributes in maps, resource and scope copied in). Tests wait for spans
//! with [`OtlpReceiver::wait_for_spans`] or [`OtlpReceiver::wait_for`],
//! which wake up on each export instead of polling, and inject faults with
//! [`OtlpReceiver::set_behavior`].
//!
//! # Example
//!
//! Here the generated OTLP client stands in for the exporter under test,
//! which would be pointed at [`OtlpReceiver::grpc_endpoint`] or
//! [`OtlpReceiver::http_traces_url`].
//!
//! ```
//! use std::time::Duration;
//!
//! use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
//! use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
//! use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
//! use test_support::{OtlpReceiver, SpanKind, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let receiver = OtlpReceiver::start().await?;
//!
//! let span = Span {
//!     trace_id: vec![0xab; 16],
//!     span_id: vec![0xcd; 8],
//!     name: "GET /users/{id}".to_owned(),
//!     kind: span::SpanKind::Server as i32,
//!     ..Default::default()
//! };
//! let request = ExportTraceServiceRequest {
//!     resource_spans: vec![ResourceSpans {
//!         scope_spans: vec![ScopeSpans {
//!             spans: vec![span],
//!             ..Default::default()
//!         }],
//!         ..Default::default()
//!     }],
//! };
//! let mut client = TraceServiceClient::connect(receiver.grpc_endpoint()).await?;
//! client.export(request).await?;
//!
//! let spans = receiver.wait_for_spans(1, Duration::from_secs(5)).await?;
//! assert_eq!(spans[0].name, "GET /users/{id}");
//! assert_eq!(spans[0].trace_id, "abababababababababababababababab");
//! assert_eq!(spans[0].parent_span_id, None);
//! assert_eq!(spans[0].kind, SpanKind::Server);
//! assert_eq!(spans[0].transport, Transport::Grpc);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod collector;
mod grpc;
mod http;
mod receiver;
mod span;

pub use receiver::{Behavior, OtlpReceiver, WaitError};
pub use span::{
    AttrValue, ReceivedEvent, ReceivedLink, ReceivedSpan, SpanKind, StatusCode, Transport,
};

#[cfg(test)]
mod tests;
