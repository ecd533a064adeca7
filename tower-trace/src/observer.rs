//! The body observers of the HTTP layers: payload capture, and ending the span when the
//! response body ends.

use http::HeaderMap;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use tracing_core_lite::capture::CappedBuffer;
use tracing_core_lite::recipe::http::{ERROR_TYPE_BODY_DROPPED, ERROR_TYPE_OTHER};

use crate::body::{BodyEnd, BodyObserver};

/// Attribute holding the captured request payload.
pub const REQUEST_BODY_CONTENT: &str = "http.request.body.content";
/// Attribute holding the captured response payload.
pub const RESPONSE_BODY_CONTENT: &str = "http.response.body.content";

/// A payload being captured: the capped bytes and the content type to render them by.
pub(crate) struct Capture {
    pub(crate) buffer: CappedBuffer,
    pub(crate) content_type: Option<String>,
}

impl Capture {
    pub(crate) fn new(buffer: CappedBuffer, headers: &HeaderMap) -> Self {
        Capture {
            buffer,
            content_type: headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        }
    }

    fn attributes(&self, content: &'static str, size: &'static str) -> [KeyValue; 2] {
        [
            KeyValue::new(content, self.buffer.render(self.content_type.as_deref())),
            KeyValue::new(size, i64::try_from(self.buffer.total()).unwrap_or(i64::MAX)),
        ]
    }
}

/// Observes a request body: records the captured payload when it has been read.
pub struct RequestObserver {
    pub(crate) cx: Context,
    pub(crate) capture: Capture,
}

impl BodyObserver for RequestObserver {
    fn on_data(&mut self, chunk: &[u8]) {
        self.capture.buffer.push(chunk);
    }

    fn on_end(self, end: BodyEnd<'_>) {
        // A handler that does not read the body (or an aborted upload) is not this span's
        // error; record what was seen.
        if matches!(end, BodyEnd::Complete) || self.capture.buffer.total() > 0 {
            self.cx.span().set_attributes(
                self.capture
                    .attributes(REQUEST_BODY_CONTENT, semconv::HTTP_REQUEST_BODY_SIZE),
            );
        }
    }
}

/// Observes a response body: ends the span when the body ends, is dropped, or fails.
pub struct ResponseObserver {
    pub(crate) cx: Context,
    pub(crate) capture: Option<Capture>,
}

impl BodyObserver for ResponseObserver {
    fn on_data(&mut self, chunk: &[u8]) {
        if let Some(capture) = &mut self.capture {
            capture.buffer.push(chunk);
        }
    }

    fn on_end(self, end: BodyEnd<'_>) {
        let span = self.cx.span();
        if let Some(capture) = &self.capture {
            span.set_attributes(
                capture.attributes(RESPONSE_BODY_CONTENT, semconv::HTTP_RESPONSE_BODY_SIZE),
            );
        }
        end_span_with(&self.cx, end);
    }
}

/// Ends the span of `cx`, recording how the response body ended.
pub(crate) fn end_span_with(cx: &Context, end: BodyEnd<'_>) {
    let span = cx.span();
    match end {
        BodyEnd::Complete => {}
        BodyEnd::Error { type_name, error } => {
            span.set_attribute(KeyValue::new(
                semconv::ERROR_TYPE,
                if type_name.is_empty() {
                    ERROR_TYPE_OTHER
                } else {
                    type_name
                },
            ));
            span.set_status(Status::error(format!("response body failed: {error}")));
        }
        BodyEnd::Dropped => {
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, ERROR_TYPE_BODY_DROPPED));
            span.set_status(Status::error("response body dropped before its end"));
        }
    }
    span.end();
}
