//! The gRPC client middleware: [`ClientLayer`] and its [`ClientTrace`] service, over a tonic
//! `Channel` or any `Service<http::Request<tonic::body::Body>>`.
//!
//! For each call it starts a CLIENT span named after the method (from the `GrpcMethod`
//! extension tonic's generated clients set, else the request path) as a child of the
//! [`opentelemetry::Context`] in the request extensions or of the current context, injects that
//! context into the metadata, records a message event per message sent and received, reads the
//! status from the headers or the trailers (every code but `OK` is an error on the client), and
//! ends the span when the response stream ends or is dropped.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use tower::ServiceBuilder;
//!
//! let channel = tonic::transport::Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel = ServiceBuilder::new()
//!     .layer(tonic_trace::ClientLayer::new())
//!     .service(channel);
//! // let client = GreeterClient::new(channel);
//! # let _ = channel;
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use http_body::Body;
use opentelemetry::Context;
use tower::{Layer, Service};
use tower_trace::body::TracedBody;
use tracing_core_lite::Parent;
use tracing_core_lite::capture::Direction;
use tracing_core_lite::propagation::inject_headers;
use tracing_core_lite::recipe::grpc::MessageType;
use tracing_core_lite::recipe::{Side, push_server_address};
use tracing_core_lite::sampling::{is_unsampled, unsampled_context};
use tracing_core_lite::{Propagators, TracerSource};

use crate::future::{Pending, ResponseFuture};
use crate::observer::{RequestObserver, ResponseObserver, Settings, deadline_of, observe_request};
use crate::server::{authority_attributes, call_recipe};

#[derive(Clone)]
struct Config {
    tracer: TracerSource,
    propagators: Option<Propagators>,
    settings: Arc<Settings>,
    /// `host[:port]` of the server, when the requests do not carry it.
    target: Option<Arc<str>>,
}

/// The client layer. Cheap to clone; configured with `with_*` options.
#[derive(Clone)]
#[must_use]
pub struct ClientLayer {
    config: Arc<Config>,
}

impl Default for ClientLayer {
    fn default() -> Self {
        ClientLayer {
            config: Arc::new(Config {
                tracer: TracerSource::global(),
                propagators: None,
                settings: Arc::new(Settings::new(Side::Client)),
                target: None,
            }),
        }
    }
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
    /// The defaults: the global tracer provider and propagator, message events on, no payloads
    /// or metadata captured.
    pub fn new() -> Self {
        ClientLayer::default()
    }

    /// The server the channel talks to, for `server.address` and `server.port` (a tonic
    /// `Channel` adds the authority to requests only inside itself, below this layer):
    /// `ClientLayer::new().with_server_uri(endpoint.uri())`.
    pub fn with_server_uri(self, uri: &http::Uri) -> Self {
        let target = uri.authority().map(|a| Arc::from(a.as_str()));
        self.update(|c| c.target = target)
    }

    common_options!();
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

/// The service of [`ClientLayer`].
#[derive(Clone)]
pub struct ClientTrace<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S: fmt::Debug> fmt::Debug for ClientTrace<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientTrace")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, ResBody> Service<Request<tonic::body::Body>> for ClientTrace<S>
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

    fn call(&mut self, mut req: Request<tonic::body::Body>) -> Self::Future {
        let config = &self.config;
        let settings = &config.settings;
        let parent = req
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_else(Context::current);
        if config.tracer.is_parent_based() && is_unsampled(&parent) {
            // The parent is not sampled and the sampler follows it: no span, the trace goes on.
            let cx = unsampled_context(&parent);
            inject_headers(config.propagators.as_ref(), &cx, req.headers_mut());
            return self.call_with(req, cx, None);
        }
        // The method of a generated client, which is the request path (then not copied).
        let method = req
            .extensions()
            .get::<tonic::GrpcMethod<'static>>()
            .filter(|m| !is_method_path(req.uri().path(), m))
            .map(|m| format!("/{}/{}", m.service(), m.method()));
        let path = method.as_deref().unwrap_or(req.uri().path());
        let mut recipe = call_recipe(Side::Client, path, settings.stability);
        match (req.uri().authority(), config.target.as_deref()) {
            (Some(authority), _) => authority_attributes(authority, &mut recipe.attributes),
            // The layer's target came from a `Uri`: a valid authority, not parsed again.
            (None, Some(target)) => push_server_address(target, None, &mut recipe.attributes),
            (None, None) => {}
        }
        if !settings.metadata.is_empty(Direction::Request) {
            recipe.attributes.extend(
                settings
                    .metadata
                    .attributes(Direction::Request, req.headers()),
            );
        }
        let (cx, recording) =
            config
                .tracer
                .start_recipe(recipe, Vec::new(), Parent::context(parent));
        // What the response needs, read before the headers are lent for the injection.
        let pending = recording.then(|| Pending {
            settings: Arc::clone(settings),
            path: settings.payload_path(path),
            deadline: deadline_of(req.headers()),
        });
        inject_headers(config.propagators.as_ref(), &cx, req.headers_mut());
        let Some(pending) = pending else {
            // The sampler dropped it: nothing to record.
            return self.call_with(req, cx, None);
        };
        if let Some(messages) = settings.messages(MessageType::Sent, pending.path.as_ref()) {
            let cx = cx.clone();
            observe_request(&mut req, RequestObserver { cx, messages });
        }
        self.call_with(req, cx, Some(pending))
    }
}

impl<S> ClientTrace<S> {
    /// Calls the inner service with `cx` current.
    fn call_with<ResBody>(
        &mut self,
        req: Request<tonic::body::Body>,
        cx: Context,
        pending: Option<Pending>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        S: Service<Request<tonic::body::Body>, Response = Response<ResBody>>,
    {
        let future = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(future, cx, pending)
    }
}

/// Whether `path` is `/{service}/{method}` of `method`.
fn is_method_path(path: &str, method: &tonic::GrpcMethod<'_>) -> bool {
    path.strip_prefix('/')
        .and_then(|p| p.strip_prefix(method.service()))
        .and_then(|p| p.strip_prefix('/'))
        .is_some_and(|p| p == method.method())
}
