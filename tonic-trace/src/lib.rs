//! gRPC tracing middleware for tonic servers and clients, built on [`tracing_core_lite`] and
//! [`tower_trace`]'s body machinery.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let addr = "127.0.0.1:50051".parse()?;
//! # let svc = tonic_health::server::health_reporter().1;
//! use tonic::transport::{Channel, Server};
//! use tower::ServiceBuilder;
//!
//! let _guard = tracing_core_lite::Pipeline::from_env()?.install()?;
//! // server: one layer
//! # let server = async {
//! Server::builder().layer(tonic_trace::ServerLayer::new()).add_service(svc).serve(addr).await?;
//! # Ok::<_, Box<dyn std::error::Error>>(()) };
//! // client: one layer over the channel
//! let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel = ServiceBuilder::new().layer(tonic_trace::ClientLayer::new()).service(channel);
//! # let _ = (channel, server);
//! # Ok(())
//! # }
//! ```
//!
//! - [`ServerLayer`]: a SERVER span per call, continuing the caller's trace from the metadata,
//!   with the gRPC status read where it is (response headers for trailers-only responses,
//!   otherwise the trailers at the end of the body) and a message event per message.
//! - [`ClientLayer`]: a CLIENT span per call, its context injected into the metadata.
//! - [`inject`], [`extract`] and [`InterceptorExt::chain`]: interceptors, and their chaining in
//!   a defined order.
//! - [`frame`]: the incremental parser of gRPC length-prefixed messages behind message events
//!   and payload capture.

#![warn(missing_docs)]

/// The options both gRPC layers have, on `$layer` (which has `update` and `settings`).
macro_rules! common_options {
    () => {
        /// Starts spans with a tracer of `provider` instead of the global one.
        pub fn with_tracer_provider<P>(self, provider: &P) -> Self
        where
            P: opentelemetry::trace::TracerProvider,
            P::Tracer: Send + Sync + 'static,
            <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
        {
            let tracer = tracing_core_lite::TracerSource::from_provider(provider);
            self.update(|c| c.tracer = tracer)
        }

        /// Starts spans with `tracer`, e.g. `PipelineGuard::tracer_source()`, which also lets
        /// the layer skip the spans its parent-based sampler would drop.
        pub fn with_tracer_source(self, tracer: tracing_core_lite::TracerSource) -> Self {
            self.update(|c| c.tracer = tracer)
        }

        /// Uses these propagators instead of the global propagator.
        pub fn with_propagators(self, propagators: tracing_core_lite::Propagators) -> Self {
            self.update(|c| c.propagators = Some(propagators))
        }

        /// Records these request metadata keys as `rpc.request.metadata.<key>` (credentials
        /// are always `REDACTED`).
        pub fn with_request_metadata<I, K>(self, keys: I) -> Self
        where
            I: IntoIterator<Item = K>,
            K: AsRef<str>,
        {
            self.settings(|s| s.metadata = s.metadata.clone().with_request_headers(keys))
        }

        /// Records these response metadata keys (headers and trailers) as
        /// `rpc.response.metadata.<key>`.
        pub fn with_response_metadata<I, K>(self, keys: I) -> Self
        where
            I: IntoIterator<Item = K>,
            K: AsRef<str>,
        {
            self.settings(|s| s.metadata = s.metadata.clone().with_response_headers(keys))
        }

        /// Replaces the metadata capture policy (its attribute names are made the RPC ones).
        pub fn with_metadata_capture(
            self,
            capture: tracing_core_lite::capture::HeaderCapture,
        ) -> Self {
            self.settings(|s| s.metadata = capture.for_rpc())
        }

        /// Whether each message gets an `rpc.message` event (on by default).
        pub fn with_message_events(self, on: bool) -> Self {
            self.settings(|s| s.message_events = on)
        }

        /// Captures up to `max_bytes` of each message as the `rpc.message.payload` attribute
        /// of its event (otgrpc's `LogPayloads`), rendered by `renderer`: a protobuf
        /// wire-format dump, or JSON with real field names when it holds the service's file
        /// descriptor set. Never buffers more than the cap per message; turns message events
        /// on.
        pub fn with_payloads(
            self,
            capture: tracing_core_lite::capture::PayloadCapture,
            renderer: crate::payload::PayloadRenderer,
        ) -> Self {
            self.settings(|s| {
                s.payload = capture;
                s.renderer = std::sync::Arc::new(renderer);
                s.message_events |= capture.max_bytes().is_some();
            })
        }

        /// Which RPC attribute names to emit (overrides `OTEL_SEMCONV_STABILITY_OPT_IN`).
        pub fn with_semconv_stability(
            self,
            stability: tracing_core_lite::recipe::SemconvStability,
        ) -> Self {
            self.settings(|s| s.stability = stability)
        }

        fn update(mut self, f: impl FnOnce(&mut Config)) -> Self {
            f(std::sync::Arc::make_mut(&mut self.config));
            self
        }

        fn settings(self, f: impl FnOnce(&mut crate::observer::Settings)) -> Self {
            self.update(|c| f(std::sync::Arc::make_mut(&mut c.settings)))
        }
    };
}

pub mod client;
pub mod frame;
mod future;
pub mod interceptor;
mod observer;
pub mod payload;
pub mod server;

pub use client::{ClientLayer, ClientTrace};
pub use future::ResponseFuture;
pub use interceptor::{Chain, ExtractWith, InjectWith, InterceptorExt, extract, inject};
pub use observer::{INCOMPLETE_MESSAGE_EVENT, MESSAGE_PAYLOAD, RequestObserver, ResponseObserver};
pub use payload::PayloadRenderer;
pub use server::{ServerLayer, Trace};
