//! HTTP tracing middleware for Tower services (axum, hyper, reqwest), built on
//! [`tracing_core_lite`].
//!
//! One layer on the server, one on each client, and every request becomes a span of a
//! distributed trace:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! # async fn handler() -> &'static str { "ok" }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _guard = tracing_core_lite::Pipeline::from_env()?.install()?;
//! let app = Router::new()
//!     .route("/orders/{id}", get(handler))
//!     .layer(tower_trace::ServerLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! - [`ServerLayer`]: continues the caller's trace from the request headers, starts a SERVER
//!   span per request with the stable HTTP semantic-convention attributes, makes it current for
//!   the handler, and ends it when the response body has been sent.
//! - [`ClientLayer`]: starts a CLIENT span per outgoing request, injects its context into the
//!   headers, and ends it when the response body has been read.
//! - `ReqwestMiddleware` (feature `reqwest`): the same for `reqwest` through
//!   `reqwest-middleware`.
//! - [`body::TracedBody`]: the body wrapper both use, which `tonic-trace` reuses for gRPC.
//!
//! Features: `axum` (route templates from `MatchedPath`, peer addresses from `ConnectInfo`),
//! `reqwest` (the reqwest middleware).

#![warn(missing_docs)]

/// The options both HTTP layers have (each layer's `Config` has `tracer`, `propagators`,
/// `redaction`, `headers`, `request_attributes` and `response`).
macro_rules! common_options {
    () => {
        fn update(mut self, f: impl FnOnce(&mut Config)) -> Self {
            f(std::sync::Arc::make_mut(&mut self.config));
            self
        }

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

        /// Starts spans with `tracer`, e.g. [`PipelineGuard::tracer_source`], which also lets
        /// the layer skip the spans its parent-based sampler would drop.
        ///
        /// [`PipelineGuard::tracer_source`]: tracing_core_lite::PipelineGuard::tracer_source
        pub fn with_tracer_source(self, tracer: tracing_core_lite::TracerSource) -> Self {
            self.update(|c| c.tracer = tracer)
        }

        /// Extracts (server) or injects (client) with these propagators instead of the global
        /// propagator.
        pub fn with_propagators(self, propagators: tracing_core_lite::Propagators) -> Self {
            self.update(|c| c.propagators = Some(propagators))
        }

        /// Which query values are replaced with `REDACTED` in `url.query` (server) or
        /// `url.full` (client).
        pub fn with_query_redaction(
            self,
            redaction: tracing_core_lite::capture::QueryRedaction,
        ) -> Self {
            self.update(|c| c.redaction = redaction)
        }

        /// Records these request headers as `http.request.header.<name>` (credentials are
        /// always `REDACTED`).
        pub fn with_request_headers<I, K>(self, names: I) -> Self
        where
            I: IntoIterator<Item = K>,
            K: AsRef<str>,
        {
            self.update(|c| c.headers = c.headers.clone().with_request_headers(names))
        }

        /// Records these response headers as `http.response.header.<name>`.
        pub fn with_response_headers<I, K>(self, names: I) -> Self
        where
            I: IntoIterator<Item = K>,
            K: AsRef<str>,
        {
            self.update(|c| {
                let r = std::sync::Arc::make_mut(&mut c.response);
                r.headers = r.headers.clone().with_response_headers(names);
            })
        }

        /// Records up to `max_bytes` of each response body as `http.response.body.content`
        /// (text and JSON as text, anything else as size and hex), keeping no more than that
        /// in memory. Off by default.
        pub fn with_response_payload(
            self,
            capture: tracing_core_lite::capture::PayloadCapture,
        ) -> Self {
            self.update(|c| std::sync::Arc::make_mut(&mut c.response).payload = capture)
        }

        /// Adds attributes computed from the request (known at span start, so samplers see
        /// them).
        pub fn with_request_attributes<F>(self, attributes: F) -> Self
        where
            F: Fn(&crate::RequestView<'_>) -> Vec<opentelemetry::KeyValue> + Send + Sync + 'static,
        {
            self.update(|c| c.request_attributes = Some(std::sync::Arc::new(attributes)))
        }

        /// Adds attributes computed from the response head.
        pub fn with_response_attributes<F>(self, attributes: F) -> Self
        where
            F: Fn(&http::response::Parts) -> Vec<opentelemetry::KeyValue> + Send + Sync + 'static,
        {
            self.update(|c| {
                std::sync::Arc::make_mut(&mut c.response).attributes =
                    Some(std::sync::Arc::new(attributes))
            })
        }
    };
}

#[cfg(feature = "axum")]
pub mod axum;
pub mod body;
pub mod client;
mod future;
mod observer;
#[cfg(feature = "reqwest")]
mod reqwest;
pub mod server;

pub use client::{ClientLayer, ClientTrace};
pub use future::{ERROR_TYPE_CANCELLED, ResponseFuture};
pub use observer::{
    REQUEST_BODY_CONTENT, RESPONSE_BODY_CONTENT, RequestObserver, ResponseObserver,
};
#[cfg(feature = "reqwest")]
pub use reqwest::ReqwestMiddleware;
pub use server::{
    CaptureRequestBody, PassRequestBody, RequestBody, RequestBodyMode, RequestView, ResponseBody,
    Sampling, ServerLayer, Trace,
};
