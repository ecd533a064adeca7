use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider;
use tower::Layer;
use tracing_core_lite::capture::{HeaderCapture, PayloadCapture, QueryRedaction};
use tracing_core_lite::recipe::Side;
use tracing_core_lite::{Propagators, TracerSource};

use super::ClientTrace;
use crate::RequestView;
use crate::future::ResponsePolicy;

pub(crate) type NameFn = dyn Fn(&RequestView<'_>) -> String + Send + Sync;
pub(crate) type RequestAttrsFn = dyn Fn(&RequestView<'_>) -> Vec<KeyValue> + Send + Sync;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) tracer: TracerSource,
    pub(crate) propagators: Option<Propagators>,
    pub(crate) redaction: QueryRedaction,
    pub(crate) headers: HeaderCapture,
    pub(crate) response: Arc<ResponsePolicy>,
    pub(crate) name: Option<Arc<NameFn>>,
    pub(crate) request_attributes: Option<Arc<RequestAttrsFn>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tracer: TracerSource::global(),
            propagators: None,
            redaction: QueryRedaction::default(),
            headers: HeaderCapture::new(),
            response: Arc::new(ResponsePolicy::new(Side::Client)),
            name: None,
            request_attributes: None,
        }
    }
}

/// The client layer: every outgoing request becomes a CLIENT span, a child of the current
/// context (or of an [`opentelemetry::Context`] put in the request extensions), and carries
/// that context on in its headers.
///
/// Works over any `Service<http::Request<B>>`, such as a `hyper_util` client:
///
/// ```
/// use http_body_util::Empty;
/// use bytes::Bytes;
/// use hyper_util::client::legacy::Client;
/// use hyper_util::rt::TokioExecutor;
/// use tower::ServiceBuilder;
///
/// let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
/// let client = ServiceBuilder::new()
///     .layer(tower_trace::ClientLayer::new())
///     .service(client);
/// # let _ = client;
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct ClientLayer {
    pub(crate) config: Arc<Config>,
}

impl fmt::Debug for ClientLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLayer")
            .field("tracer", &self.config.tracer)
            .field("propagators", &self.config.propagators)
            .finish_non_exhaustive()
    }
}

impl ClientLayer {
    /// A layer with the defaults: the global tracer provider and propagator, no headers or
    /// payloads captured, credentials and the conventions' query keys redacted in `url.full`.
    pub fn new() -> Self {
        ClientLayer::default()
    }

    fn update(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Starts spans with a tracer of `provider` instead of the global one.
    pub fn with_tracer_provider<P>(self, provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
    {
        let tracer = TracerSource::from_provider(provider);
        self.update(|c| c.tracer = tracer)
    }

    /// Starts spans with `tracer`, e.g. [`PipelineGuard::tracer_source`], which also lets the
    /// layer skip the spans its parent-based sampler would drop.
    ///
    /// [`PipelineGuard::tracer_source`]: tracing_core_lite::PipelineGuard::tracer_source
    pub fn with_tracer_source(self, tracer: TracerSource) -> Self {
        self.update(|c| c.tracer = tracer)
    }

    /// Injects with these propagators instead of the global propagator.
    pub fn with_propagators(self, propagators: Propagators) -> Self {
        self.update(|c| c.propagators = Some(propagators))
    }

    /// Which query values are replaced with `REDACTED` in `url.full`.
    pub fn with_query_redaction(self, redaction: QueryRedaction) -> Self {
        self.update(|c| c.redaction = redaction)
    }

    /// Records these request headers as `http.request.header.<name>` (credentials are always
    /// `REDACTED`).
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
            let r = Arc::make_mut(&mut c.response);
            r.headers = r.headers.clone().with_response_headers(names);
        })
    }

    /// Records up to `max_bytes` of each response body as `http.response.body.content`.
    pub fn with_response_payload(self, capture: PayloadCapture) -> Self {
        self.update(|c| Arc::make_mut(&mut c.response).payload = capture)
    }

    /// Names spans with `name(request)` instead of `{method}`.
    pub fn with_span_name<F>(self, name: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> String + Send + Sync + 'static,
    {
        self.update(|c| c.name = Some(Arc::new(name)))
    }

    /// Adds attributes computed from the request.
    pub fn with_request_attributes<F>(self, attributes: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> Vec<KeyValue> + Send + Sync + 'static,
    {
        self.update(|c| c.request_attributes = Some(Arc::new(attributes)))
    }

    /// Adds attributes computed from the response head.
    pub fn with_response_attributes<F>(self, attributes: F) -> Self
    where
        F: Fn(&http::response::Parts) -> Vec<KeyValue> + Send + Sync + 'static,
    {
        self.update(|c| Arc::make_mut(&mut c.response).attributes = Some(Arc::new(attributes)))
    }
}

impl<S> Layer<S> for ClientLayer {
    type Service = ClientTrace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ClientTrace {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}
