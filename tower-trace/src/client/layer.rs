use std::fmt;
use std::sync::Arc;

use opentelemetry::KeyValue;
use tower::Layer;
use tracing_core_lite::capture::{HeaderCapture, QueryRedaction};
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

    common_options!();

    /// Names spans with `name(request)` instead of `{method}`.
    pub fn with_span_name<F>(self, name: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> String + Send + Sync + 'static,
    {
        self.update(|c| c.name = Some(Arc::new(name)))
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
