//! The gRPC body observers: a message event per message, payload capture, and the status,
//! from the response headers (trailers-only responses) or the trailers, that ends the span.

use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, Request};
use opentelemetry::trace::{SpanRef, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use opentelemetry_semantic_conventions::attribute as semconv;
use tower_trace::body::{BodyEnd, BodyObserver, TracedBody};
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
            capture: self.payload.max_bytes().zip(path).map(|(cap, path)| {
                Box::new(PayloadSink {
                    cap,
                    renderer: Arc::clone(&self.renderer),
                    path: Arc::clone(path),
                    direction: match (self.side, kind) {
                        (Side::Server, MessageType::Received)
                        | (Side::Client, MessageType::Sent) => Direction::Request,
                        _ => Direction::Response,
                    },
                    buffer: None,
                })
            }),
        })
    }
}

/// Where the payloads of one direction of a call are captured, and the message being captured.
struct PayloadSink {
    cap: usize,
    renderer: Arc<PayloadRenderer>,
    path: Arc<str>,
    direction: Direction,
    /// The bytes of the message being read: set at its prefix, taken at its end (so present
    /// exactly while `Messages::current` is).
    buffer: Option<CappedBuffer>,
}

/// The message being read: its prefix's flag and length.
struct Current {
    compressed: bool,
    len: u32,
}

/// Follows the messages of one direction of a call and records an event for each.
///
/// Small (the observers are moved with the bodies they watch, and tonic moves a body it boxes
/// several times): what only payload capture needs, off by default, is behind one box.
pub(crate) struct Messages {
    parser: FrameParser,
    kind: MessageType,
    next_id: u64,
    current: Option<Current>,
    capture: Option<Box<PayloadSink>>,
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
                *current = Some(Current { compressed, len });
                if let Some(sink) = capture {
                    sink.buffer = Some(CappedBuffer::new(sink.cap));
                }
            }
            FrameEvent::Data(bytes) => {
                if let Some(buffer) = capture.as_mut().and_then(|c| c.buffer.as_mut()) {
                    buffer.push(bytes);
                }
            }
            FrameEvent::End => {
                let buffer = capture.as_mut().and_then(|c| c.buffer.take());
                debug_assert_eq!(buffer.is_some(), capture.is_some() && current.is_some());
                if let Some(message) = current.take() {
                    let len = u64::from(message.len);
                    // A compressed message's uncompressed size is not known here.
                    let (uncompressed, compressed) = if message.compressed {
                        (None, Some(len))
                    } else {
                        (Some(len), None)
                    };
                    let mut event = message_event(*kind, *next_id, uncompressed, compressed);
                    if let (Some(sink), Some(buffer)) = (capture.as_deref(), buffer) {
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

/// Puts `observer` on the body of `req`, in place (the request's head is not moved).
pub(crate) fn observe_request(req: &mut Request<tonic::body::Body>, observer: RequestObserver) {
    let body = mem::take(req.body_mut());
    *req.body_mut() = tonic::body::Body::new(TracedBody::new(body, Some(observer)));
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
    // A scan of a call's few headers, rather than hashing the name for a lookup.
    let [timeout] = first_values(headers, [&GRPC_TIMEOUT]);
    let timeout = parse_timeout(timeout?.as_bytes())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
    use tracing_core_lite::capture::PayloadCapture;

    /// Two messages, cut across chunks at every point: each event captures its own message,
    /// whole or cut at the cap, and the next message's capture starts empty.
    #[test]
    fn each_message_event_captures_its_own_message() {
        // Field 1, "ab"; field 1, "cdefg" (cut to 4 bytes at a cap of 4).
        let first = [0x0a, 0x02, b'a', b'b'];
        let second = [0x0a, 0x05, b'c', b'd', b'e', b'f', b'g'];
        let mut body = vec![0, 0, 0, 0, 4];
        body.extend(first);
        body.extend([0, 0, 0, 0, 7]);
        body.extend(second);
        let renderer = PayloadRenderer::new();
        let path: Arc<str> = Arc::from("/test.Svc/Call");
        let expected = [
            renderer.render(&path, Direction::Request, &first, first.len()),
            renderer.render(&path, Direction::Request, &second[..4], second.len()),
        ];
        assert_ne!(expected[0], expected[1]);
        let mut settings = Settings::new(Side::Server);
        settings.payload = PayloadCapture::up_to(4);
        for cut in 0..=body.len() {
            let exporter = InMemorySpanExporter::default();
            let provider = SdkTracerProvider::builder()
                .with_simple_exporter(exporter.clone())
                .build();
            let cx = Context::new().with_span(provider.tracer("t").start("call"));
            let mut messages = settings
                .messages(MessageType::Received, Some(&path))
                .expect("message events are on");
            let (a, b) = body.split_at(cut);
            messages.feed(&cx.span(), a);
            messages.feed(&cx.span(), b);
            assert!(!messages.finish(&cx.span()));
            cx.span().end();
            let spans = exporter.get_finished_spans().expect("spans");
            let payloads: Vec<String> = spans[0]
                .events
                .iter()
                .map(|e| {
                    e.attributes
                        .iter()
                        .find(|kv| kv.key.as_str() == MESSAGE_PAYLOAD)
                        .map(|kv| kv.value.as_str().into_owned())
                        .expect("a payload")
                })
                .collect();
            assert_eq!(payloads, expected, "cut at {cut}");
        }
    }

    /// The observers travel with the bodies they watch, and tonic moves a body it boxes
    /// several times: a move of up to 128 bytes is a few register copies, a larger one a
    /// call to `memcpy`. What only payload capture needs is boxed to keep them under it.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn the_observers_stay_small() {
        let request_body = size_of::<TracedBody<tonic::body::Body, RequestObserver>>();
        let response = size_of::<ResponseObserver>();
        // 168 and 208 bytes with the capture state inline.
        assert!(request_body <= 128, "{request_body}");
        assert!(response <= 128, "{response}");
    }
}
