use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};

use http::Response;
use http_body::Body;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project::{pin_project, pinned_drop};
use tracing_core_lite::capture::Direction;
use tracing_core_lite::recipe::Side;

/// A hook computing attributes from a response head.
pub(crate) type ResponseAttrsFn =
    dyn Fn(&http::response::Parts) -> Vec<opentelemetry::KeyValue> + Send + Sync;

/// How a response is recorded, the same for servers and clients but for the status rules.
#[derive(Clone)]
pub(crate) struct ResponsePolicy {
    pub(crate) side: Side,
    pub(crate) headers: HeaderCapture,
    pub(crate) payload: PayloadCapture,
    pub(crate) attributes: Option<Arc<ResponseAttrsFn>>,
}

impl ResponsePolicy {
    pub(crate) fn new(side: Side) -> Self {
        ResponsePolicy {
            side,
            headers: HeaderCapture::new(),
            payload: PayloadCapture::off(),
            attributes: None,
        }
    }

    /// Records a response head on the span of `cx` (status per side, captured headers, the
    /// attribute hook) and returns the observer that ends the span with the body, which keeps
    /// `cx`.
    pub(crate) fn record(&self, cx: Context, parts: &http::response::Parts) -> ResponseObserver {
        let span = cx.span();
        let outcome = ResponseOutcome::new(self.side, parts.status.as_u16());
        span.set_attributes(outcome.attributes());
        if outcome.is_error {
            // (`Unset` would change nothing: it is the lowest status.)
            span.set_status(outcome.status());
        }
        if !self.headers.is_empty(Direction::Response) {
            span.set_attributes(self.headers.attributes(Direction::Response, &parts.headers));
        }
        if let Some(extra) = &self.attributes {
            span.set_attributes(extra(parts));
        }
        let capture = self
            .payload
            .buffer()
            .map(|buffer| Capture::new(buffer, &parts.headers));
        ResponseObserver { cx, capture }
    }
}
use tracing_core_lite::recipe::http::ResponseOutcome;

use tracing_core_lite::capture::{HeaderCapture, PayloadCapture};

use crate::body::TracedBody;
use crate::observer::{Capture, ResponseObserver};

/// `error.type` of a request whose response future was dropped before it completed.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";

/// Response future of the server and client services: polls the inner future with the
/// request's context current, then records the response (status per side, headers, hooks)
/// and hands the span to the response body, which ends it.
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F, B> {
    #[pin]
    inner: F,
    cx: Context,
    /// Set while the span is this future's to end (traced requests only).
    policy: Option<Arc<ResponsePolicy>>,
    _body: PhantomData<fn() -> B>,
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(inner: F, cx: Context, policy: Option<Arc<ResponsePolicy>>) -> Self {
        ResponseFuture {
            inner,
            cx,
            policy,
            _body: PhantomData,
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traced", &self.policy.is_some())
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: fmt::Display,
{
    type Output = Result<Response<TracedBody<B, ResponseObserver>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _current = this.cx.clone().attach();
            ready!(this.inner.poll(task))
        };
        let Some(policy) = this.policy.take() else {
            return Poll::Ready(result.map(|res| res.map(|body| TracedBody::new(body, None))));
        };
        let span = this.cx.span();
        match result {
            Ok(res) => {
                let (parts, body) = res.into_parts();
                // The future is done with its context: the body's observer keeps it.
                let observer = policy.record(std::mem::take(this.cx), &parts);
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    TracedBody::new(body, Some(observer)),
                )))
            }
            Err(error) => {
                span.set_attribute(KeyValue::new(
                    semconv::ERROR_TYPE,
                    std::any::type_name::<E>(),
                ));
                span.set_status(Status::error(error.to_string()));
                span.end();
                Poll::Ready(Err(error))
            }
        }
    }
}

#[pinned_drop]
impl<F, B> PinnedDrop for ResponseFuture<F, B> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if this.policy.take().is_some() {
            // Dropped before the inner service answered (client gone, timeout layer...).
            let span = this.cx.span();
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, ERROR_TYPE_CANCELLED));
            span.set_status(Status::error("request cancelled before the response"));
            span.end();
        }
    }
}
