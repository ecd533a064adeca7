//! What the benchmarks share: the no-op exporter, the tracer providers, an executor for
//! futures that are ready at once, and request/response bodies.

#![allow(dead_code)] // each bench target uses its own part

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll, Waker};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracerProvider, SpanData, SpanEvents, SpanExporter, SpanLinks,
};
use tracing_core_lite::{Pipeline, PipelineGuard};

/// `traceparent` of a sampled caller.
pub const TRACEPARENT_SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
/// `traceparent` of a caller that did not sample.
pub const TRACEPARENT_UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

/// An exporter that drops every batch, counting the spans it was given.
#[derive(Debug, Default, Clone)]
pub struct NoopExporter {
    /// Spans exported so far.
    pub exported: Arc<AtomicU64>,
}

impl SpanExporter for NoopExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.exported
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(std::hint::black_box(batch));
        Ok(())
    }
}

fn resource() -> Resource {
    Resource::builder_empty().with_service_name("bench").build()
}

/// Our pipeline as the layers use it: parent-based always-on sampling (the default) and our
/// `BatchProcessor` (default batching) over a no-op exporter, not installed globally.
pub fn our_pipeline(exporter: NoopExporter) -> PipelineGuard {
    Pipeline::new()
        .with_service_name("bench")
        .with_exporters([])
        .with_span_exporter(exporter)
        .without_global()
        .install()
        .expect("pipeline")
}

/// The provider the peers are measured with: the same sampler, the SDK's own
/// `BatchSpanProcessor` (default batching) over a no-op exporter.
pub fn sdk_provider(exporter: NoopExporter) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_resource(resource())
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_batch_exporter(exporter)
        .build()
}

/// Runs a future that is ready at once (or after a few polls) on this thread.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// Reads a body to its end (so that the layers that end their span there do).
pub async fn drain<B>(body: B)
where
    B: Body,
    B::Error: std::fmt::Debug,
{
    let mut body = std::pin::pin!(body);
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        std::hint::black_box(frame.expect("body frame"));
    }
}

/// A gRPC response body: one message, then the trailers with `grpc-status`.
pub struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl GrpcBody {
    /// A body of `message` (already length-prefixed) and `grpc-status: 0`.
    pub fn ok(message: Bytes) -> Self {
        let mut trailers = HeaderMap::with_capacity(1);
        trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
        GrpcBody {
            data: Some(message),
            trailers: Some(trailers),
        }
    }
}

impl Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(data) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(data))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.data {
            Some(d) => SizeHint::with_exact(d.len() as u64),
            None => SizeHint::with_exact(0),
        }
    }
}

/// A length-prefixed protobuf message: `HelloRequest { name: "world" }`.
pub const GRPC_MESSAGE: &[u8] = &[0, 0, 0, 0, 7, 0x0a, 5, b'w', b'o', b'r', b'l', b'd'];

/// A finished span with the attributes of an HTTP server span (as our recipe records them).
pub fn http_server_span() -> SpanData {
    let now = SystemTime::now();
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(0x1234),
        parent_span_is_remote: true,
        span_kind: SpanKind::Server,
        name: Cow::Borrowed("GET /orders/{id}"),
        start_time: now,
        end_time: now + Duration::from_micros(50),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.path", "/orders/42".to_string()),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("server.address", "shop.example"),
            KeyValue::new("server.port", 8080),
            KeyValue::new("client.address", "10.1.2.3"),
            KeyValue::new("network.peer.address", "10.1.2.3"),
            KeyValue::new("network.peer.port", 50123),
            KeyValue::new("network.protocol.version", "1.1"),
            KeyValue::new("user_agent.original", "bench-client/1.0"),
            KeyValue::new("http.route", "/orders/{id}"),
            KeyValue::new("http.response.status_code", 200),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: InstrumentationScope::builder("bench").build(),
    }
}
