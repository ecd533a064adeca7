//! The HTTP client middleware: [`ClientLayer`] and its [`ClientTrace`] service.
//!
//! For each request it starts a CLIENT span named `{method}` as a child of the
//! [`opentelemetry::Context`] found in the request extensions, or else of the current context;
//! injects that span's context into the outgoing headers with every configured propagator;
//! records `http.request.method`, `url.full` (credentials as `REDACTED:REDACTED`),
//! `server.address`, `server.port`, `http.response.status_code`; makes 4xx and 5xx errors, and
//! records transport errors with `error.type`. The span ends when the response body ends (or
//! fails, or is dropped), so a streamed download is inside its span.

mod layer;

use std::fmt;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Extensions, HeaderMap, Method, Request, Response, Uri};
use http_body::Body;
use opentelemetry::Context;
use tower::Service;
use tracing_core_lite::Parent;
use tracing_core_lite::capture::Direction;
use tracing_core_lite::propagation::inject_headers;
use tracing_core_lite::recipe::http::client_span;
use tracing_core_lite::sampling::{is_unsampled, unsampled_context};

pub use layer::ClientLayer;

use crate::RequestView;
use crate::body::TracedBody;
use crate::future::ResponseFuture;
use crate::observer::ResponseObserver;
use layer::Config;

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

impl<S> ClientTrace<S> {
    /// Wraps `inner` with the default configuration ([`ClientLayer::new`]).
    pub fn new(inner: S) -> Self {
        tower::Layer::layer(&ClientLayer::new(), inner)
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// Starts the client span of a request and returns its context and whether it records; shared
/// with the reqwest middleware. The parent is the [`Context`] in `extensions`, else the
/// current one. The headers are only read here: the caller injects the context into them
/// next (which the propagation tests check), so that the request need not be taken apart to
/// lend them both ways.
pub(crate) fn start_client_span(
    config: &Config,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> (Context, bool) {
    let parent = extensions
        .get::<Context>()
        .cloned()
        .unwrap_or_else(Context::current);
    if config.tracer.is_parent_based() && is_unsampled(&parent) {
        // The parent is not sampled and the sampler follows it: no span, the trace goes on.
        return (unsampled_context(&parent), false);
    }
    let view = RequestView {
        method,
        uri,
        headers,
        extensions,
    };
    let mut recipe = client_span(method, uri, &config.redaction);
    if let Some(name) = &config.name {
        recipe.name = name(&view).into();
    }
    if let Some(extra) = &config.request_attributes {
        recipe.attributes.extend(extra(&view));
    }
    if !config.headers.is_empty(Direction::Request) {
        recipe
            .attributes
            .extend(config.headers.attributes(Direction::Request, headers));
    }
    config
        .tracer
        .start_recipe(recipe, Vec::new(), Parent::context(parent))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ClientTrace<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ResBody: Body,
{
    type Response = Response<TracedBody<ResBody, ResponseObserver>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let (cx, recording) = start_client_span(
            config,
            req.method(),
            req.uri(),
            req.headers(),
            req.extensions(),
        );
        inject_headers(config.propagators.as_ref(), &cx, req.headers_mut());
        // A span that is not recorded has nothing to record from the response.
        let policy = recording.then(|| Arc::clone(&config.response));
        let future = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(future, cx, policy)
    }
}
