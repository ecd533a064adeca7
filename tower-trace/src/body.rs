//! [`TracedBody`]: a body wrapper that lets an observer see a body's frames and its end, and
//! changes nothing else: data, trailers, `size_hint`, `is_end_stream` and backpressure pass
//! through untouched.
//!
//! The HTTP layers end their spans from an observer when the response body ends; `tonic-trace`
//! plugs in a gRPC observer (message events, `grpc-status` from the trailers) over the same
//! wrapper.

use std::fmt;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Buf;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project::{pin_project, pinned_drop};

/// How a body ended.
pub enum BodyEnd<'a> {
    /// The last frame was read (or the body was empty).
    Complete,
    /// The body yielded an error.
    Error {
        /// The error's type, e.g. `hyper::Error` (a low-cardinality `error.type`).
        type_name: &'static str,
        /// The error's message.
        error: &'a dyn fmt::Display,
    },
    /// The body was dropped before its end (the peer went away, or the reader gave up).
    Dropped,
}

impl fmt::Debug for BodyEnd<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyEnd::Complete => f.write_str("Complete"),
            BodyEnd::Error { type_name, error } => f
                .debug_struct("Error")
                .field("type_name", type_name)
                .field("error", &format_args!("{error}"))
                .finish(),
            BodyEnd::Dropped => f.write_str("Dropped"),
        }
    }
}

/// Sees what passes through a [`TracedBody`].
pub trait BodyObserver: Send + 'static {
    /// A data chunk passed through (a frame's data may arrive as several chunks).
    fn on_data(&mut self, _chunk: &[u8]) {}

    /// Trailers passed through.
    fn on_trailers(&mut self, _trailers: &HeaderMap) {}

    /// The body ended; called exactly once, after every `on_data` and `on_trailers`.
    fn on_end(self, end: BodyEnd<'_>);
}

/// An observer that does nothing (bodies that are not traced).
impl BodyObserver for () {
    fn on_end(self, _end: BodyEnd<'_>) {}
}

/// A body that reports its frames and its end to an observer (see the module docs).
#[pin_project(PinnedDrop)]
pub struct TracedBody<B: Body, O: BodyObserver> {
    #[pin]
    inner: B,
    observer: Option<O>,
}

impl<B: Body, O: BodyObserver> TracedBody<B, O> {
    /// Wraps `inner`; `observer` is told about its frames and its end. With `None`, the body
    /// passes through unobserved.
    pub fn new(inner: B, observer: Option<O>) -> Self {
        TracedBody { inner, observer }
    }

    /// The wrapped body.
    pub fn get_ref(&self) -> &B {
        &self.inner
    }
}

impl<B: Body + fmt::Debug, O: BodyObserver> fmt::Debug for TracedBody<B, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracedBody")
            .field("inner", &self.inner)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

fn observe_data<D: Buf>(observer: &mut impl BodyObserver, data: &D) {
    if data.chunk().len() == data.remaining() {
        observer.on_data(data.chunk());
        return;
    }
    // A buffer made of several chunks: visit them all without copying. `Buf` has no other
    // non-consuming walk than `chunks_vectored`, so grow the slice list until it holds all.
    let mut slots = 16;
    loop {
        let mut slices = vec![IoSlice::new(&[]); slots];
        let n = data.chunks_vectored(&mut slices);
        let seen: usize = slices[..n].iter().map(|s| s.len()).sum();
        if seen == data.remaining() || n < slots {
            for slice in &slices[..n] {
                observer.on_data(slice);
            }
            return;
        }
        slots *= 4;
    }
}

impl<B, O> Body for TracedBody<B, O>
where
    B: Body,
    B::Error: fmt::Display,
    O: BodyObserver,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let mut this = self.project();
        let result = ready!(this.inner.as_mut().poll_frame(cx));
        if let Some(observer) = this.observer.as_mut() {
            match &result {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        observe_data(observer, data);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        observer.on_trailers(trailers);
                    }
                }
                Some(Err(error)) => {
                    if let Some(observer) = this.observer.take() {
                        observer.on_end(BodyEnd::Error {
                            type_name: std::any::type_name::<B::Error>(),
                            error,
                        });
                    }
                }
                None => {
                    if let Some(observer) = this.observer.take() {
                        observer.on_end(BodyEnd::Complete);
                    }
                }
            }
        }
        // A reader may stop polling once `is_end_stream` says so, and trailers are always
        // the last frame (HTTP/2 stops reading there): end the observation now.
        let last = match &result {
            Some(Ok(frame)) => frame.is_trailers() || this.inner.is_end_stream(),
            _ => false,
        };
        if last && let Some(observer) = this.observer.take() {
            observer.on_end(BodyEnd::Complete);
        }
        Poll::Ready(result)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[pinned_drop]
impl<B: Body, O: BodyObserver> PinnedDrop for TracedBody<B, O> {
    fn drop(self: Pin<&mut Self>) {
        let this = self.project();
        if let Some(observer) = this.observer.take() {
            // An empty body is never polled: that is its end, not an early drop.
            let end = if this.inner.is_end_stream() {
                BodyEnd::Complete
            } else {
                BodyEnd::Dropped
            };
            observer.on_end(end);
        }
    }
}
