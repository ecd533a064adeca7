//! The HTTP server middleware: [`ServerLayer`] and its [`Trace`] service.
//!
//! For each request it:
//!
//! 1. extracts the caller's context with the configured propagators (the global propagator by
//!    default; see [`ServerLayer::with_propagators`]);
//! 2. starts a SERVER span named `{method} {route}` (or `{method}`) with the stable HTTP
//!    attributes of [`tracing_core_lite::recipe::http::server_span`];
//! 3. makes that context current while the inner service runs, and puts it in the request
//!    extensions as an [`opentelemetry::Context`], so handlers, `tracing` code and the client
//!    layers nest under it;
//! 4. hands the request on to the inner service, its body untouched unless
//!    [`ServerLayer::with_request_payload`] captures it;
//! 5. records the response status (5xx is an error, 4xx is not) and ends the span when the
//!    response body has been sent, has failed, or has been dropped early (then `error.type`
//!    says `body_dropped`), never when only the headers are ready.
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use tower::{ServiceBuilder, service_fn};
//!
//! let service = ServiceBuilder::new()
//!     .layer(tower_trace::ServerLayer::new())
//!     .service(service_fn(|_req: Request<Full<Bytes>>| async {
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from("hello"))))
//!     }));
//! # let _ = service;
//! ```

mod layer;

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use http::{Request, Response};
use http_body::Body;
use opentelemetry::Context;
use tower::Service;
use tracing_core_lite::capture::Direction;
use tracing_core_lite::propagation::{ServerParent, extract_headers, server_parent};
use tracing_core_lite::recipe::http::{ServerRequest, server_span};
use tracing_core_lite::sampling::{random_trace_id, trace_id_in_ratio, unsampled_context};

pub use layer::{RequestView, Sampling, ServerLayer};

use crate::body::TracedBody;
use crate::future::{ResponseFuture, ResponsePolicy};
use crate::observer::{Capture, RequestObserver, ResponseObserver};
use layer::Config;

/// The request body the inner service of a [`Trace`] receives when request payloads are
/// captured ([`ServerLayer::with_request_payload`]): the original body, observed as it is read
/// when the request is traced.
pub type RequestBody<B> = TracedBody<B, RequestObserver>;

/// The response body a [`Trace`] returns: the inner service's body, which ends the span when
/// it ends.
pub type ResponseBody<B> = TracedBody<B, ResponseObserver>;

mod sealed {
    use super::{Body, Request, RequestBodyMode, RequestObserver};

    /// What the modes do. Other crates cannot implement a mode, and these items are not part
    /// of the API (an observer cannot be made outside this crate: they could only pass
    /// `None`).
    pub trait Sealed {
        /// Whether the layer captures request payloads (and so builds an observer at all).
        const CAPTURES: bool;

        /// The request for the inner service; `observer`, if any, sees its body as it is read.
        fn wrap_request<B: Body>(
            req: Request<B>,
            observer: Option<RequestObserver>,
        ) -> Request<Self::InnerBody<B>>
        where
            Self: RequestBodyMode;
    }
}

/// What the inner service of a [`Trace`] receives as the request body:
/// [`PassRequestBody`] (the default) or [`CaptureRequestBody`] (after
/// [`ServerLayer::with_request_payload`]). Sealed: these two are the only modes.
pub trait RequestBodyMode: sealed::Sealed {
    /// The body the inner service receives for a request body `B`.
    type InnerBody<B: Body>;
}

/// The inner service receives the request with its body untouched: no request payload
/// capture. The default mode of [`ServerLayer`] and [`Trace`].
#[derive(Clone, Copy, Debug)]
pub struct PassRequestBody;

impl RequestBodyMode for PassRequestBody {
    type InnerBody<B: Body> = B;
}

impl sealed::Sealed for PassRequestBody {
    const CAPTURES: bool = false;

    #[inline]
    fn wrap_request<B: Body>(req: Request<B>, _: Option<RequestObserver>) -> Request<B> {
        req
    }
}

/// The inner service receives the request body as a [`RequestBody`], which captures its
/// payload when the request is traced ([`ServerLayer::with_request_payload`]).
#[derive(Clone, Copy, Debug)]
pub struct CaptureRequestBody;

impl RequestBodyMode for CaptureRequestBody {
    type InnerBody<B: Body> = RequestBody<B>;
}

impl sealed::Sealed for CaptureRequestBody {
    const CAPTURES: bool = true;

    fn wrap_request<B: Body>(
        req: Request<B>,
        observer: Option<RequestObserver>,
    ) -> Request<RequestBody<B>> {
        req.map(|body| TracedBody::new(body, observer))
    }
}

/// The service of [`ServerLayer`]; `M` ([`PassRequestBody`] or [`CaptureRequestBody`]) says
/// what its inner service receives as the request body.
pub struct Trace<S, M = PassRequestBody> {
    inner: S,
    config: Arc<Config>,
    mode: PhantomData<fn() -> M>,
}

impl<S: Clone, M> Clone for Trace<S, M> {
    fn clone(&self) -> Self {
        Trace {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
            mode: PhantomData,
        }
    }
}

impl<S: fmt::Debug, M> fmt::Debug for Trace<S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trace")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S> Trace<S> {
    /// Wraps `inner` with the default configuration ([`ServerLayer::new`]).
    pub fn new(inner: S) -> Self {
        tower::Layer::layer(&ServerLayer::new(), inner)
    }
}

impl<S, M> Trace<S, M> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

/// The peer address, from axum's `ConnectInfo` (feature `axum`) or a `SocketAddr` that the
/// accept loop put in the request extensions.
fn peer_addr(extensions: &http::Extensions) -> Option<SocketAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = extensions.get::<::axum::extract::ConnectInfo<SocketAddr>>() {
        return Some(info.0);
    }
    extensions.get::<SocketAddr>().copied()
}

impl<S, M, ReqBody, ResBody> Service<Request<ReqBody>> for Trace<S, M>
where
    M: RequestBodyMode,
    S: Service<Request<M::InnerBody<ReqBody>>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    ReqBody: Body,
    ResBody: Body,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let view = RequestView::new(&req);
        let public = config.public_endpoint.as_ref().is_some_and(|f| f(&view));
        if !config.filter.should_trace(&view.head()) {
            // An untraced request still runs under the caller's context, unless the endpoint
            // is public: its context and baggage are not to be trusted, traced or not.
            let cx = if public {
                Context::new()
            } else {
                extract_headers(config.propagators.as_ref(), req.headers())
            };
            return self.call_with(req, cx, None, None);
        }
        let (parent, links) = match server_parent(
            config.propagators.as_ref(),
            req.headers(),
            public,
            config.tracer.is_parent_based(),
        ) {
            ServerParent::Span { parent, links } => (parent, links),
            // The span would not be recorded whatever its attributes or the sampling hook, so
            // it is not built. The caller's trace goes on, not sampled, as the SDK carries it.
            ServerParent::Unsampled(cx) => return self.call_with(req, cx, None, None),
        };
        let route = config.route.as_ref().and_then(|f| f(&view));
        let mut recipe = server_span(
            &ServerRequest::new(&req)
                .with_route(route.as_deref())
                .with_peer(peer_addr(req.extensions())),
            &config.redaction,
        );
        if let Some(name) = &config.name {
            recipe.name = name(&view, route.as_deref()).into();
        }
        if let Some(extra) = &config.request_attributes {
            recipe.attributes.extend(extra(&view));
        }
        if !config.headers.is_empty(Direction::Request) {
            recipe
                .attributes
                .extend(config.headers.attributes(Direction::Request, req.headers()));
        }
        let sampling = config.sampling.as_ref().map(|f| f(&view, route.as_deref()));
        drop(route);

        let drop_it = match sampling {
            None | Some(Sampling::Default) => false,
            Some(Sampling::Drop) => true,
            Some(Sampling::Ratio(ratio)) => {
                let sc = parent.span_context();
                let coin = if sc.is_valid() {
                    sc.trace_id()
                } else {
                    random_trace_id()
                };
                !trace_id_in_ratio(coin, ratio)
            }
        };
        if drop_it {
            let cx = unsampled_context(&parent.into_context());
            return self.call_with(req, cx, None, None);
        }
        let (cx, recording) = config.tracer.start_recipe(recipe, links, parent);
        if !recording {
            // The sampler dropped it: nothing to record, only the context to carry on.
            return self.call_with(req, cx, None, None);
        }

        let observer = if M::CAPTURES {
            config
                .request_payload
                .buffer()
                .map(|buffer| RequestObserver {
                    cx: cx.clone(),
                    capture: Capture::new(buffer, req.headers()),
                })
        } else {
            None
        };
        let response = Some(Arc::clone(&config.response));
        self.call_with(req, cx, observer, response)
    }
}

impl<S, M: RequestBodyMode> Trace<S, M> {
    /// Calls the inner service with `cx` current and in the request extensions, the request
    /// body observed by `observer`; the future records the response per `response`.
    fn call_with<ReqBody, ResBody>(
        &mut self,
        req: Request<ReqBody>,
        cx: Context,
        observer: Option<RequestObserver>,
        response: Option<Arc<ResponsePolicy>>,
    ) -> ResponseFuture<S::Future, ResBody>
    where
        ReqBody: Body,
        S: Service<Request<M::InnerBody<ReqBody>>, Response = Response<ResBody>>,
    {
        let mut req = M::wrap_request(req, observer);
        req.extensions_mut().insert(cx.clone());
        let future = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        ResponseFuture::new(future, cx, response)
    }
}
