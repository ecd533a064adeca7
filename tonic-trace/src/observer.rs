//! The gRPC body observers: a message event per message, payload capture, and the status,
//! from the response headers (trailers-only responses) or the trailers, that ends the span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName};
use opentelemetry::trace::{SpanRef, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use tower_trace::body::{BodyEnd, BodyObserver};
use tracing_core_lite::capture::{CappedBuffer, HeaderCapture, PayloadCapture};
use tracing_core_lite::headers::first_values;
use tracing_core_lite::recipe::grpc::{
    Code, MESSAGE_EVENT, MessageType, RpcOutcome, message_event, parse_timeout,
};
use tracing_core_lite::recipe::{SemconvStability, Side};

use crate::frame::{FrameEvent, FrameParser};
use crate::payload::{Direction, PayloadRenderer};

/// Attribute of a message event holding the captured payload (payload capture only).
pub const MESSAGE_PAYLOAD: &str = "rpc.message.payload";
/// Event recorded when a body ends inside a message (a peer that lied about a length, or a
/// stream cut short).
pub const INCOMPLETE_MESSAGE_EVENT: &str = "rpc.message.incomplete";

/// How calls are recorded; shared by the server and the client layers.
#[derive(Clone)]
pub(crate) struct Settings {
    pub(crate) side: Side,
    pub(crate) stability: SemconvStability,
    pub(crate) message_events: bool,
    pub(crate) payload: PayloadCapture,
    pub(crate) renderer: Arc<PayloadRenderer>,
    pub(crate) metadata: HeaderCapture,
}

impl Settings {
    pub(crate) fn new(side: Side) -> Self {
        Settings {
            side,
            stability: SemconvStability::from_env(),
            message_events: true,
            payload: PayloadCapture::off(),
            renderer: Arc::new(PayloadRenderer::new()),
            metadata: HeaderCapture::new().for_rpc(),
        }
    }

    /// The method path to keep for payload rendering, if payloads are captured.
    pub(crate) fn payload_path(&self, path: &str) -> Option<Arc<str>> {
        self.payload.max_bytes().map(|_| Arc::from(path))
    }

    /// A message tracker for one direction of a call, if anything is recorded per message.
    pub(crate) fn messages(&self, kind: MessageType, path: Option<&Arc<str>>) -> Option<Messages> {
        self.message_events.then(|| Messages {
            parser: FrameParser::new(),
            kind,
            next_id: 1,
            current: None,
            capture: self
                .payload
                .max_bytes()
                .zip(path)
                .map(|(cap, path)| PayloadSink {
                    cap,
                    renderer: Arc::clone(&self.renderer),
                    path: Arc::clone(path),
                    direction: match (self.side, kind) {
                        (Side::Server, MessageType::Received)
                        | (Side::Client, MessageType::Sent) => Direction::Request,
                        _ => Direction::Response,
                    },
                }),
        })
    }
}

struct PayloadSink {
    cap: usize,
    renderer: Arc<PayloadRenderer>,
    path: Arc<str>,
    direction: Direction,
}

struct Current {
    compressed: bool,
    len: u32,
    buffer: Option<CappedBuffer>,
}

/// Follows the messages of one direction of a call and records an event for each.
pub(crate) struct Messages {
    parser: FrameParser,
    kind: MessageType,
    next_id: u64,
    current: Option<Current>,
    capture: Option<PayloadSink>,
}

impl Messages {
    fn feed(&mut self, span: &SpanRef<'_>, chunk: &[u8]) {
        let Messages {
            parser,
            kind,
            next_id,
            current,
            capture,
        } = self;
        parser.feed(chunk, |event| match event {
            FrameEvent::Start { compressed, len } => {
                *current = Some(Current {
                    compressed,
                    len,
                    buffer: capture.as_ref().map(|c| CappedBuffer::new(c.cap)),
                });
            }
            FrameEvent::Data(bytes) => {
                if let Some(buffer) = current.as_mut().and_then(|c| c.buffer.as_mut()) {
                    buffer.push(bytes);
                }
            }
            FrameEvent::End => {
                if let Some(message) = current.take() {
                    let len = u64::from(message.len);
                    // A compressed message's uncompressed size is not known here.
                    let (uncompressed, compressed) = if message.compressed {
                        (None, Some(len))
                    } else {
                        (Some(len), None)
                    };
                    let mut event = message_event(*kind, *next_id, uncompressed, compressed);
                    if let (Some(sink), Some(buffer)) = (capture.as_ref(), message.buffer) {
                        let rendered = if message.compressed {
                            format!("<compressed, {len} bytes>")
                        } else {
                            sink.renderer.render(
                                &sink.path,
                                sink.direction,
                                buffer.captured(),
                                usize::try_from(buffer.total()).unwrap_or(usize::MAX),
                            )
                        };
                        event
                            .attributes
                            .push(KeyValue::new(MESSAGE_PAYLOAD, rendered));
                    }
                    // Named by the constant (two registers) rather than by the event's `Cow`
                    // (copied through the stack): `message_event` always names it so.
                    debug_assert_eq!(event.name, MESSAGE_EVENT);
                    span.add_event_with_timestamp(MESSAGE_EVENT, event.timestamp, event.attributes);
                    *next_id += 1;
                }
            }
        });
    }

    /// Records an event if the body ended inside a message; returns whether it did.
    fn finish(&self, span: &SpanRef<'_>) -> bool {
        match self.parser.finish() {
            Ok(()) => false,
            Err(incomplete) => {
                span.add_event(
                    INCOMPLETE_MESSAGE_EVENT,
                    vec![
                        KeyValue::new(
                            tracing_core_lite::recipe::grpc::MESSAGE_TYPE,
                            self.kind.as_str(),
                        ),
                        KeyValue::new("rpc.message.received_size", saturating(incomplete.received)),
                        KeyValue::new("rpc.message.expected_size", saturating(incomplete.expected)),
                    ],
                );
                true
            }
        }
    }
}

fn saturating(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Header names looked up per call, built at compile time (a `&str` name is parsed at each
/// lookup).
const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The status carried by `grpc-status` / `grpc-message` in a header map, if any.
pub(crate) fn status_of(headers: &HeaderMap) -> Option<(Code, Option<String>)> {
    let [status, message] = first_values(headers, [&GRPC_STATUS, &GRPC_MESSAGE]);
    let code = Code::from_header(status?.as_bytes());
    let message = message.map(|m| {
        percent_encoding::percent_decode(m.as_bytes())
            .decode_utf8_lossy()
            .into_owned()
    });
    Some((code, message))
}

/// Records `code` on the span of `cx` per the conventions of `side`.
pub(crate) fn record_status(
    span: &SpanRef<'_>,
    side: Side,
    stability: SemconvStability,
    code: Code,
    message: Option<&str>,
) {
    let outcome = RpcOutcome::new(side, code);
    span.set_attributes(outcome.attributes(stability));
    if outcome.is_error {
        // (`Unset` would change nothing: it is the lowest status.)
        span.set_status(outcome.status(message));
    }
}

/// Observes the request body of a call: the messages received (server) or sent (client).
pub struct RequestObserver {
    pub(crate) cx: Context,
    pub(crate) messages: Messages,
}

impl BodyObserver for RequestObserver {
    fn on_data(&mut self, chunk: &[u8]) {
        self.messages.feed(&self.cx.span(), chunk);
    }

    fn on_end(self, end: BodyEnd<'_>) {
        if matches!(end, BodyEnd::Complete) {
            self.messages.finish(&self.cx.span());
        }
    }
}

/// Observes the response body of a call: the messages, the status in the trailers, and the end
/// of the call, which ends the span.
pub struct ResponseObserver {
    pub(crate) cx: Context,
    pub(crate) settings: Arc<Settings>,
    pub(crate) messages: Option<Messages>,
    /// The status, once known (from the response headers, or the trailers).
    pub(crate) status: Option<(Code, Option<String>)>,
    /// When the caller's deadline expires (servers).
    pub(crate) deadline: Option<Instant>,
}

/// The code of a call that ended early: `DEADLINE_EXCEEDED` once the caller's deadline has
/// passed, else `CANCELLED`.
pub(crate) fn cancellation(deadline: Option<Instant>) -> (Code, &'static str) {
    match settle(Code::Cancelled, deadline) {
        Code::DeadlineExceeded => (Code::DeadlineExceeded, "the caller's deadline expired"),
        code => (code, "the call was cancelled"),
    }
}

/// `CANCELLED` after the deadline is `DEADLINE_EXCEEDED`: tonic (client and server) reports an
/// expired `grpc-timeout` as `CANCELLED("Timeout expired")`, where the gRPC specification says
/// `DEADLINE_EXCEEDED`.
pub(crate) fn settle(code: Code, deadline: Option<Instant>) -> Code {
    match (code, deadline) {
        (Code::Cancelled, Some(deadline)) if Instant::now() >= deadline => Code::DeadlineExceeded,
        _ => code,
    }
}

/// When a call with a `grpc-timeout` header in `headers` is taken to have missed its deadline.
///
/// The caller's clock started before this side saw the request, so a cancellation within 5% of
/// the timeout (at least 5 ms) of the deadline seen from here is the deadline firing.
pub(crate) fn deadline_of(headers: &HeaderMap) -> Option<Instant> {
    let timeout = parse_timeout(headers.get(GRPC_TIMEOUT)?.as_bytes())?;
    let slack = (timeout / 20).max(Duration::from_millis(5)).min(timeout);
    Instant::now().checked_add(timeout - slack)
}

impl BodyObserver for ResponseObserver {
    fn on_data(&mut self, chunk: &[u8]) {
        if let Some(messages) = &mut self.messages {
            messages.feed(&self.cx.span(), chunk);
        }
    }

    fn on_trailers(&mut self, trailers: &HeaderMap) {
        if let Some(status) = status_of(trailers) {
            self.status = Some(status);
        }
        let settings = &self.settings;
        if !settings
            .metadata
            .is_empty(tracing_core_lite::capture::Direction::Response)
        {
            self.cx.span().set_attributes(
                settings
                    .metadata
                    .attributes(tracing_core_lite::capture::Direction::Response, trailers),
            );
        }
    }

    fn on_end(self, end: BodyEnd<'_>) {
        let span = self.cx.span();
        let incomplete = self.messages.as_ref().is_some_and(|m| m.finish(&span));
        let (code, message) = match (self.status, end) {
            (Some((code, message)), _) => (settle(code, self.deadline), message),
            (None, BodyEnd::Dropped) => {
                let (code, message) = cancellation(self.deadline);
                (code, Some(message.to_owned()))
            }
            (None, BodyEnd::Error { type_name, error }) => {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, type_name));
                (Code::Unknown, Some(error.to_string()))
            }
            (None, BodyEnd::Complete) => (
                Code::Unknown,
                Some(if incomplete {
                    "the response ended inside a message".to_owned()
                } else {
                    "the response ended without grpc-status".to_owned()
                }),
            ),
        };
        record_status(
            &span,
            self.settings.side,
            self.settings.stability,
            code,
            message.as_deref(),
        );
        span.end();
    }
}
