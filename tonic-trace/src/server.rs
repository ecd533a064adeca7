//! The gRPC server middleware: [`ServerLayer`] and its [`Trace`] service, for
//! `tonic::transport::Server::builder().layer(...)`.
//!
//! For each call it extracts the caller's context from the request metadata, starts a SERVER
//! span named after the method (`helloworld.Greeter/SayHello`) with the RPC conventions'
//! attributes, makes it current for the handler (and puts it in the request extensions), adds
//! an `rpc.message` event per message received and sent, and ends the span when the call ends:
//! at the trailers that carry `grpc-status` (or at once for a trailers-only response). A
//! server stream is one span lasting the whole stream; a client that goes away mid-call gives
//! `CANCELLED`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tonic::transport::Server;
//! # let addr = "127.0.0.1:50051".parse()?;
//! # let greeter = tonic_health::server::health_reporter().1;
//! Server::builder()
//!     .layer(tonic_trace::ServerLayer::new())
//!     .add_service(greeter)
//!     .serve(addr)
//!     .await?;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use http_body::Body;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use tower::{Layer, Service};
use tower_trace::body::TracedBody;
use tracing_core_lite::capture::Direction;
use tracing_core_lite::filter::{Filter, RequestHead};
use tracing_core_lite::propagation::{ServerParent, extract_headers, server_parent};
use tracing_core_lite::recipe::grpc::{MessageType, rpc_span};
use tracing_core_lite::recipe::{
    SemconvStability, Side, SpanRecipe, ip_text, push_attribute, push_server_address,
};
use tracing_core_lite::{Propagators, TracerSource};

use crate::future::{Pending, ResponseFuture};
use crate::observer::{RequestObserver, ResponseObserver, Settings, deadline_of, observe_request};

#[derive(Clone)]
struct Config {
    tracer: TracerSource,
    propagators: Option<Propagators>,
    filter: Filter,
    public_endpoint: bool,
    settings: Arc<Settings>,
}

/// The server layer. Cheap to clone; configured tower-http style with `with_*` options.
///
/// ```
/// use tracing_core_lite::filter::Filter;
///
/// let layer = tonic_trace::ServerLayer::new()
///     .with_filter(Filter::grpc_health_and_reflection())
///     .with_request_metadata(["x-tenant"]);
/// # let _ = layer;
/// ```
#[derive(Clone)]
#[must_use]
pub struct ServerLayer {
    config: Arc<Config>,
}

impl Default for ServerLayer {
    fn default() -> Self {
        ServerLayer {
            config: Arc::new(Config {
                tracer: TracerSource::global(),
                propagators: None,
                filter: Filter::all(),
                public_endpoint: false,
                settings: Arc::new(Settings::new(Side::Server)),
            }),
        }
    }
}

impl fmt::Debug for ServerLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerLayer")
            .field("tracer", &self.config.tracer)
            .field("propagators", &self.config.propagators)
            .field("public_endpoint", &self.config.public_endpoint)
            .finish_non_exhaustive()
    }
}

impl ServerLayer {
    /// The defaults: the global tracer provider and propagator, every call traced, message
    /// events on, no payloads or metadata captured, RPC attribute names per
    /// `OTEL_SEMCONV_STABILITY_OPT_IN`.
    pub fn new() -> Self {
        ServerLayer::default()
    }

    /// Traces only the calls `filter` accepts ([`Filter::grpc_health_and_reflection`] skips
    /// health checks and reflection). A skipped call has no span, but its incoming context is
    /// still current for the handler.
    pub fn with_filter(self, filter: Filter) -> Self {
        self.update(|c| c.filter = filter)
    }

    common_options!();

    /// Public-endpoint mode: the incoming context is not trusted as a parent; each call starts
    /// a new trace whose span links to the caller's, and incoming baggage is dropped. A call the
    /// filter leaves untraced runs under an empty context, not the caller's.
    pub fn with_public_endpoint(self, public: bool) -> Self {
        self.update(|c| c.public_endpoint = public)
    }
}

impl<S> Layer<S> for ServerLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Trace {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service of [`ServerLayer`].
#[derive(Clone)]
pub struct Trace<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for Trace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

/// The peer address tonic records for a TCP connection.
fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    extensions
        .get::<tonic::transport::server::TcpConnectInfo>()
        .and_then(|info| info.remote_addr())
}

/// The span of a call to `path` on `side`; a path that is not `/pkg.Service/Method` is named
/// after itself.
pub(crate) fn call_recipe(side: Side, path: &str, stability: SemconvStability) -> SpanRecipe {
    rpc_span(side, path, stability).unwrap_or_else(|| SpanRecipe {
        name: path.to_owned().into(),
        kind: side.span_kind(),
        attributes: vec![KeyValue::new(semconv::RPC_SYSTEM_NAME, "grpc")],
    })
}

/// `server.address` and `server.port` of an authority (`host[:port]`).
pub(crate) fn server_attributes(authority: Option<&str>, attrs: &mut Vec<KeyValue>) {
    let Some(authority) = authority else { return };
    let Ok(authority) = authority.parse::<http::uri::Authority>() else {
        return;
    };
    authority_attributes(&authority, attrs);
}

/// `server.address` and `server.port` of a parsed authority (`host[:port]`, the user info
/// left out), read from its text: `Authority::host` and `port_u16` search it again each.
pub(crate) fn authority_attributes(authority: &http::uri::Authority, attrs: &mut Vec<KeyValue>) {
    push_server_address(authority.as_str(), None, attrs);
}

impl<S, ResBody> Service<Request<tonic::body::Body>> for Trace<S>
where
    S: Service<Request<tonic::body::Body>, Response = Response<ResBody>>,
    S::Error: fmt::Display + 'static,
    ResBody: Body,
{
    type Response = Response<TracedBody<ResBody, ResponseObserver>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        let config = &self.config;
        let settings = &config.settings;
        if !config.filter.should_trace(&RequestHead::from_request(&req)) {
            // An untraced call still runs under the caller's context, unless the endpoint is
            // public: its context and baggage are not to be trusted, traced or not.
            let cx = if config.public_endpoint {
                Context::new()
            } else {
                extract_headers(config.propagators.as_ref(), req.headers())
            };
            return self.call_with(req, cx, None, None);
        }
        let (parent, links) = match server_parent(
            config.propagators.as_ref(),
            req.headers(),
            config.public_endpoint,
            config.tracer.is_parent_based(),
        ) {
            ServerParent::Span { parent, links } => (parent, links),
            // The span would not be recorded, so it is not built; the caller's trace goes on,
            // not sampled.
            ServerParent::Unsampled(cx) => return self.call_with(req, cx, None, None),
        };
        let path = req.uri().path();
        let mut recipe = call_recipe(Side::Server, path, settings.stability);
        match req.uri().authority() {
            Some(authority) => authority_attributes(authority, &mut recipe.attributes),
            None => server_attributes(
                req.headers()
                    .get(http::header::HOST)
                    .and_then(|h| h.to_str().ok()),
                &mut recipe.attributes,
            ),
        }
        if let Some(peer) = peer_addr(req.extensions()) {
            let ip = ip_text(peer.ip());
            let attrs = &mut recipe.attributes;
            push_attribute(attrs, semconv::CLIENT_ADDRESS, Arc::clone(&ip));
            push_attribute(attrs, semconv::NETWORK_PEER_ADDRESS, ip);
            push_attribute(attrs, semconv::NETWORK_PEER_PORT, i64::from(peer.port()));
        }
        if !settings.metadata.is_empty(Direction::Request) {
            recipe.attributes.extend(
                settings
                    .metadata
                    .attributes(Direction::Request, req.headers()),
            );
        }
        let (cx, recording) = config.tracer.start_recipe(recipe, links, parent);
        if !recording {
            // The sampler dropped it: nothing to record, only the context to carry on.
            return self.call_with(req, cx, None, None);
        }
        let path = settings.payload_path(path);
        let observer = settings
            .messages(MessageType::Received, path.as_ref())
            .map(|messages| RequestObserver {
                cx: cx.clone(),
                messages,
            });
        let deadline = deadline_of(req.headers());
        let pending = Pending {
            settings: Arc::clone(settings),
            path,
            deadline,
        };
        self.call_with(req, cx, observer, Some(pending))
    }
}

impl<S> Trace<S> {
    /// Calls the inner service with `cx` current and in the request extensions, the request
    /// body observed by `observer`.
    fn call_with<ResBody>(
        &mut self,
        mut req: Request<tonic::body::Body>,
        cx: Context,
        observer: Option<RequestObserver>,
        pending: Option<Pending>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<tonic::body::Body>, Response = Response<ResBody>>,
    {
        if let Some(observer) = observer {
            observe_request(&mut req, observer);
        }
        req.extensions_mut().insert(cx.clone());
        let future = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(future, cx, pending)
    }
}
