use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use http::{Extensions, HeaderMap, Method, Uri};
use opentelemetry::KeyValue;
use tower::Layer;
use tracing_core_lite::capture::{HeaderCapture, PayloadCapture, QueryRedaction};
use tracing_core_lite::filter::{Filter, RequestHead};
use tracing_core_lite::{Propagators, TracerSource};

use tracing_core_lite::recipe::Side;

use super::{CaptureRequestBody, PassRequestBody, Trace};
use crate::future::ResponsePolicy;

/// What a route extractor, a span namer, a sampling hook or an attribute hook sees of a
/// request.
#[derive(Clone, Copy, Debug)]
pub struct RequestView<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target.
    pub uri: &'a Uri,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Request extensions (axum's `MatchedPath`, connection info...).
    pub extensions: &'a Extensions,
}

impl<'a> RequestView<'a> {
    /// The view of `req`.
    pub fn new<B>(req: &'a http::Request<B>) -> Self {
        RequestView {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    pub(crate) fn head(&self) -> RequestHead<'a> {
        RequestHead {
            method: self.method,
            uri: self.uri,
            headers: self.headers,
        }
    }
}

/// A per-request sampling decision, from [`ServerLayer::with_sampling`], taken before the
/// tracer provider's sampler.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Sampling {
    /// Let the tracer provider's sampler decide.
    Default,
    /// Keep this fraction (0 to 1) of the traces, chosen by trace id as `TraceIdRatioBased`
    /// chooses, and let the provider's sampler decide for those; drop the others.
    Ratio(f64),
    /// Do not record: no span, and the calls the request makes carry a not-sampled context
    /// of the same trace, so downstream services do not record either.
    Drop,
}

pub(crate) type RouteFn = dyn for<'a> Fn(&RequestView<'a>) -> Option<Cow<'a, str>> + Send + Sync;
pub(crate) type NameFn = dyn Fn(&RequestView<'_>, Option<&str>) -> String + Send + Sync;
pub(crate) type SamplingFn = dyn Fn(&RequestView<'_>, Option<&str>) -> Sampling + Send + Sync;
pub(crate) type RequestAttrsFn = dyn Fn(&RequestView<'_>) -> Vec<KeyValue> + Send + Sync;
pub(crate) type PublicFn = dyn Fn(&RequestView<'_>) -> bool + Send + Sync;

/// Everything a [`Trace`] service needs, shared by all its clones.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) tracer: TracerSource,
    pub(crate) propagators: Option<Propagators>,
    pub(crate) filter: Filter,
    pub(crate) redaction: QueryRedaction,
    pub(crate) headers: HeaderCapture,
    pub(crate) request_payload: PayloadCapture,
    pub(crate) response: Arc<ResponsePolicy>,
    pub(crate) route: Option<Arc<RouteFn>>,
    pub(crate) name: Option<Arc<NameFn>>,
    pub(crate) sampling: Option<Arc<SamplingFn>>,
    pub(crate) request_attributes: Option<Arc<RequestAttrsFn>>,
    pub(crate) public_endpoint: Option<Arc<PublicFn>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tracer: TracerSource::global(),
            propagators: None,
            filter: Filter::all(),
            redaction: QueryRedaction::default(),
            headers: HeaderCapture::new(),
            request_payload: PayloadCapture::off(),
            response: Arc::new(ResponsePolicy::new(Side::Server)),
            #[cfg(feature = "axum")]
            route: Some(Arc::new(crate::axum::matched_path)),
            #[cfg(not(feature = "axum"))]
            route: None,
            name: None,
            sampling: None,
            request_attributes: None,
            public_endpoint: None,
        }
    }
}

/// The server layer: every request becomes a SERVER span that continues the caller's trace.
///
/// Built with `with_*` options, tower-http style; cheap to clone (the configuration is shared).
/// The inner service receives the request body untouched (`M` is [`PassRequestBody`]) unless
/// [`with_request_payload`](ServerLayer::with_request_payload) captures it.
///
/// ```
/// use tower_trace::ServerLayer;
/// use tracing_core_lite::filter::Filter;
///
/// let layer = ServerLayer::new()
///     .with_filter(Filter::skip_paths(["/health"]))
///     .with_request_headers(["x-request-id"])
///     .with_route(|req| Some(req.uri.path().split('/').take(2).collect::<Vec<_>>().join("/").into()));
/// # let _ = layer;
/// ```
#[must_use]
pub struct ServerLayer<M = PassRequestBody> {
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl Default for ServerLayer {
    fn default() -> Self {
        ServerLayer {
            config: Arc::default(),
            mode: PhantomData,
        }
    }
}

impl<M> Clone for ServerLayer<M> {
    fn clone(&self) -> Self {
        ServerLayer {
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}

impl<M> fmt::Debug for ServerLayer<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("tracer", &self.config.tracer)
            .field("propagators", &self.config.propagators)
            .field("request_payload", &self.config.request_payload)
            .field("response_payload", &self.config.response.payload)
            .finish_non_exhaustive()
    }
}

impl ServerLayer {
    /// A layer with the defaults: the global tracer provider and propagator, every request
    /// traced, no headers or payloads captured, the conventions' query keys redacted, and
    /// (with the `axum` feature) the route from axum's `MatchedPath`.
    pub fn new() -> Self {
        ServerLayer::default()
    }
}

impl<M> ServerLayer<M> {
    common_options!();

    /// Traces only the requests `filter` accepts. A filtered-out request has no span, but its
    /// incoming context is still current for the handler, so the calls it makes continue the
    /// caller's trace.
    pub fn with_filter(self, filter: Filter) -> Self {
        self.update(|c| c.filter = filter)
    }

    /// Replaces the header capture policy (request and response).
    pub fn with_header_capture(self, capture: HeaderCapture) -> Self {
        self.update(|c| {
            Arc::make_mut(&mut c.response).headers = capture.clone();
            c.headers = capture;
        })
    }

    /// Records up to `capture`'s limit of each traced request's body as the
    /// `http.request.body.content` attribute (text and JSON as text, anything else as size and
    /// hex), and its size as `http.request.body.size`, keeping no more than the limit in
    /// memory. Off by default.
    ///
    /// The layer's type changes with it: the inner service of a
    /// `ServerLayer<CaptureRequestBody>` receives the request body wrapped in a
    /// [`RequestBody`](super::RequestBody) (even with [`PayloadCapture::off`], which then
    /// captures nothing), which sees the bytes as they are read when the request is traced;
    /// without this option the inner service receives the body untouched.
    ///
    /// ```
    /// use std::convert::Infallible;
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{ServiceBuilder, service_fn};
    /// use tracing_core_lite::capture::PayloadCapture;
    ///
    /// let service = ServiceBuilder::new()
    ///     .layer(tower_trace::ServerLayer::new().with_request_payload(PayloadCapture::up_to(1024)))
    ///     .service(service_fn(|req: Request<tower_trace::RequestBody<Full<Bytes>>>| async {
    ///         let body = req.into_body().collect().await?.to_bytes();
    ///         Ok::<_, Infallible>(Response::new(Full::new(body)))
    ///     }));
    /// # let _ = service;
    /// ```
    pub fn with_request_payload(self, capture: PayloadCapture) -> ServerLayer<CaptureRequestBody> {
        ServerLayer {
            config: self.update(|c| c.request_payload = capture).config,
            mode: PhantomData,
        }
    }

    /// How to find the route template (`/orders/{id}`) of a request, for the span name and
    /// `http.route`. With the `axum` feature, the default reads axum's `MatchedPath`.
    pub fn with_route<F>(self, route: F) -> Self
    where
        F: for<'a> Fn(&RequestView<'a>) -> Option<Cow<'a, str>> + Send + Sync + 'static,
    {
        self.update(|c| c.route = Some(Arc::new(route)))
    }

    /// Names spans with `name(request, route)` instead of `{method} {route}`.
    pub fn with_span_name<F>(self, name: F) -> Self
    where
        F: Fn(&RequestView<'_>, Option<&str>) -> String + Send + Sync + 'static,
    {
        self.update(|c| c.name = Some(Arc::new(name)))
    }

    /// Decides per request (e.g. per route) whether to sample, over the provider's sampler.
    pub fn with_sampling<F>(self, decide: F) -> Self
    where
        F: Fn(&RequestView<'_>, Option<&str>) -> Sampling + Send + Sync + 'static,
    {
        self.update(|c| c.sampling = Some(Arc::new(decide)))
    }

    /// Public-endpoint mode: the incoming context is not trusted as a parent. Each request
    /// starts a new trace whose span *links* to the caller's span context, and incoming
    /// baggage is dropped. A request the filter leaves untraced runs under an empty context,
    /// not the caller's.
    pub fn with_public_endpoint(self, public: bool) -> Self {
        self.update(|c| {
            c.public_endpoint =
                public.then(|| Arc::new(|_: &RequestView<'_>| true) as Arc<PublicFn>)
        })
    }

    /// Public-endpoint mode for the requests `is_public` selects (e.g. by a header set by
    /// your edge proxy).
    pub fn with_public_endpoint_fn<F>(self, is_public: F) -> Self
    where
        F: Fn(&RequestView<'_>) -> bool + Send + Sync + 'static,
    {
        self.update(|c| c.public_endpoint = Some(Arc::new(is_public)))
    }
}

impl<S, M> Layer<S> for ServerLayer<M> {
    type Service = Trace<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}
