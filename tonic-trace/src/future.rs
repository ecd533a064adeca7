use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll, ready};
use std::time::Instant;

use http::Response;
use http_body::Body;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use pin_project::{pin_project, pinned_drop};
use tower_trace::body::TracedBody;
use tracing_core_lite::capture::Direction;
use tracing_core_lite::recipe::Side;
use tracing_core_lite::recipe::grpc::{Code, MessageType};

use crate::observer::{ResponseObserver, Settings, cancellation, record_status, status_of};

/// What a traced call's future still has to do.
pub(crate) struct Pending {
    pub(crate) settings: Arc<Settings>,
    /// The method path, kept for payload rendering.
    pub(crate) path: Option<Arc<str>>,
    /// When the caller's deadline (`grpc-timeout`) expires, on a server.
    pub(crate) deadline: Option<Instant>,
}

/// Response future of the gRPC server and client services: polls the inner future with the
/// call's context current, then reads the status from the response headers (trailers-only
/// responses) or hands the span to the response body, which reads it from the trailers.
#[pin_project(PinnedDrop)]
pub struct ResponseFuture<F, B> {
    #[pin]
    inner: F,
    cx: Context,
    pending: Option<Pending>,
    _body: PhantomData<fn() -> B>,
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn new(inner: F, cx: Context, pending: Option<Pending>) -> Self {
        ResponseFuture {
            inner,
            cx,
            pending,
            _body: PhantomData,
        }
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("traced", &self.pending.is_some())
            .finish_non_exhaustive()
    }
}

/// The code of a client's transport error, as tonic derives it (`Status::from_error`): a
/// `Status` in the error's source chain, `ConnectError` (`UNAVAILABLE`), else `UNKNOWN`; but an
/// expired deadline (`TimeoutExpired`) is `DEADLINE_EXCEEDED`, where tonic says `CANCELLED`.
/// Looks through the error types a channel returns.
fn client_error_code<E: 'static>(error: &E) -> Code {
    let any = error as &dyn Any;
    let mut source: Option<&(dyn std::error::Error + 'static)> =
        if let Some(status) = any.downcast_ref::<tonic::Status>() {
            return Code::from_i32(status.code() as i32);
        } else if let Some(e) = any.downcast_ref::<tonic::transport::Error>() {
            Some(e)
        } else if let Some(e) = any.downcast_ref::<BoxError>() {
            Some(&**e)
        } else {
            None
        };
    while let Some(err) = source {
        if let Some(status) = err.downcast_ref::<tonic::Status>() {
            return Code::from_i32(status.code() as i32);
        }
        if err.is::<tonic::TimeoutExpired>() {
            // tonic hands its caller CANCELLED("Timeout expired"); the span says what the
            // gRPC specification calls it, so that deadlines are counted as deadlines.
            return Code::DeadlineExceeded;
        }
        if err.is::<tonic::ConnectError>() {
            return Code::Unavailable;
        }
        source = err.source();
    }
    Code::Unknown
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
    E: fmt::Display + 'static,
{
    type Output = Result<Response<TracedBody<B, ResponseObserver>>, E>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _current = this.cx.clone().attach();
            ready!(this.inner.poll(task))
        };
        let Some(Pending {
            settings,
            path,
            deadline,
        }) = this.pending.take()
        else {
            return Poll::Ready(result.map(|res| res.map(|body| TracedBody::new(body, None))));
        };
        let span = this.cx.span();
        match result {
            Ok(res) => {
                let (parts, body) = res.into_parts();
                // A trailers-only response carries its status in the headers; a response
                // that is not 200 and has none gets the code the HTTP status maps to.
                let status = status_of(&parts.headers).or_else(|| {
                    (parts.status != http::StatusCode::OK)
                        .then(|| (Code::from_http_status(parts.status.as_u16()), None))
                });
                if !settings.metadata.is_empty(Direction::Response) {
                    span.set_attributes(
                        settings
                            .metadata
                            .attributes(Direction::Response, &parts.headers),
                    );
                }
                let kind = match settings.side {
                    Side::Server => MessageType::Sent,
                    Side::Client => MessageType::Received,
                };
                let observer = ResponseObserver {
                    // The future is done with its context: the body's observer keeps it.
                    cx: std::mem::take(this.cx),
                    messages: settings.messages(kind, path.as_ref()),
                    settings,
                    status,
                    deadline,
                };
                Poll::Ready(Ok(Response::from_parts(
                    parts,
                    TracedBody::new(body, Some(observer)),
                )))
            }
            Err(error) => {
                // A client records what its caller will see; a server's inner service failed
                // without a gRPC status.
                let code = match settings.side {
                    Side::Client => client_error_code(&error),
                    Side::Server => Code::Unknown,
                };
                record_status(
                    &span,
                    settings.side,
                    settings.stability,
                    code,
                    Some(&error.to_string()),
                );
                span.set_attribute(KeyValue::new(
                    semconv::ERROR_TYPE,
                    std::any::type_name::<E>(),
                ));
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
        if let Some(Pending {
            settings, deadline, ..
        }) = this.pending.take()
        {
            let span = this.cx.span();
            let (code, message) = cancellation(deadline);
            record_status(
                &span,
                settings.side,
                settings.stability,
                code,
                Some(message),
            );
            span.end();
        }
    }
}
