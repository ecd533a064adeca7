//! A flattened, assertion-friendly view of the spans in an OTLP export.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1 as proto;

/// The OTLP transport that delivered a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// OTLP/gRPC (`TraceService/Export`).
    Grpc,
    /// OTLP/HTTP with a protobuf body (`POST /v1/traces`).
    Http,
}

/// The kind of a span, as sent in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED`; also used for values unknown to this crate.
    #[default]
    Unspecified,
    /// `SPAN_KIND_INTERNAL`.
    Internal,
    /// `SPAN_KIND_SERVER`.
    Server,
    /// `SPAN_KIND_CLIENT`.
    Client,
    /// `SPAN_KIND_PRODUCER`.
    Producer,
    /// `SPAN_KIND_CONSUMER`.
    Consumer,
}

impl SpanKind {
    fn from_proto(kind: i32) -> Self {
        use proto::span::SpanKind as P;
        match P::try_from(kind) {
            Ok(P::Internal) => Self::Internal,
            Ok(P::Server) => Self::Server,
            Ok(P::Client) => Self::Client,
            Ok(P::Producer) => Self::Producer,
            Ok(P::Consumer) => Self::Consumer,
            Ok(P::Unspecified) | Err(_) => Self::Unspecified,
        }
    }
}

/// The status code of a span, as sent in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StatusCode {
    /// `STATUS_CODE_UNSET`; also used when the span has no status, or a value
    /// unknown to this crate.
    #[default]
    Unset,
    /// `STATUS_CODE_OK`.
    Ok,
    /// `STATUS_CODE_ERROR`.
    Error,
}

impl StatusCode {
    fn from_proto(code: i32) -> Self {
        use proto::status::StatusCode as P;
        match P::try_from(code) {
            Ok(P::Ok) => Self::Ok,
            Ok(P::Error) => Self::Error,
            Ok(P::Unset) | Err(_) => Self::Unset,
        }
    }
}

/// An attribute value (OTLP `AnyValue`).
///
/// The `From` conversions make expected values short to write:
///
/// ```
/// use test_support::AttrValue;
///
/// assert_eq!(AttrValue::from("GET"), AttrValue::String("GET".to_owned()));
/// assert_eq!(AttrValue::from(200_i64), AttrValue::Int(200));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// `string_value`.
    String(String),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `array_value`.
    Array(Vec<AttrValue>),
    /// `bytes_value`.
    Bytes(Vec<u8>),
    /// `kvlist_value` (later duplicates of a key win).
    Map(BTreeMap<String, AttrValue>),
    /// An `AnyValue` with no value set, or a missing value. As the OTLP spec
    /// asks of non-profiling receivers, a profiling-only `string_value_strindex`
    /// is also read as empty.
    Empty,
}

impl AttrValue {
    /// The string, if this is [`AttrValue::String`].
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is [`AttrValue::Int`].
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The boolean, if this is [`AttrValue::Bool`].
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Self::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The float, if this is [`AttrValue::Double`].
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::Double(d) => Some(d),
            _ => None,
        }
    }

    fn from_proto(value: Option<AnyValue>) -> Self {
        use any_value::Value;
        match value.and_then(|v| v.value) {
            Some(Value::StringValue(s)) => Self::String(s),
            Some(Value::BoolValue(b)) => Self::Bool(b),
            Some(Value::IntValue(i)) => Self::Int(i),
            Some(Value::DoubleValue(d)) => Self::Double(d),
            Some(Value::ArrayValue(array)) => Self::Array(
                array
                    .values
                    .into_iter()
                    .map(|v| Self::from_proto(Some(v)))
                    .collect(),
            ),
            Some(Value::BytesValue(bytes)) => Self::Bytes(bytes),
            Some(Value::KvlistValue(list)) => Self::Map(attributes(list.values)),
            Some(Value::StringValueStrindex(_)) | None => Self::Empty,
        }
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<f64> for AttrValue {
    fn from(value: f64) -> Self {
        Self::Double(value)
    }
}

/// A span event.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedEvent {
    /// The event name.
    pub name: String,
    /// The event time, in nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The event attributes (later duplicates of a key win).
    pub attributes: BTreeMap<String, AttrValue>,
}

/// A span link.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedLink {
    /// The linked trace id, as lower-case hex.
    pub trace_id: String,
    /// The linked span id, as lower-case hex.
    pub span_id: String,
    /// The link attributes (later duplicates of a key win).
    pub attributes: BTreeMap<String, AttrValue>,
}

/// One span as received by [`OtlpReceiver`](crate::OtlpReceiver), flattened
/// together with its resource and instrumentation scope.
///
/// Ids are lower-case hex (32 digits for a trace id, 16 for a span id, if the
/// sender sent well-formed ids). Attribute maps keep the last value of a
/// duplicated key.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedSpan {
    /// The trace id, as lower-case hex.
    pub trace_id: String,
    /// The span id, as lower-case hex.
    pub span_id: String,
    /// The parent span id, as lower-case hex; `None` for a root span.
    pub parent_span_id: Option<String>,
    /// The W3C `tracestate` of the span context; empty if none.
    pub trace_state: String,
    /// The OTLP span flags: W3C trace flags in bits 0-7, "parent is remote"
    /// information in bits 8-9 (see [`ReceivedSpan::parent_is_remote`]).
    pub flags: u32,
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// The start time, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// The end time, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The span attributes.
    pub attributes: BTreeMap<String, AttrValue>,
    /// The span events, in the order sent.
    pub events: Vec<ReceivedEvent>,
    /// The span links, in the order sent.
    pub links: Vec<ReceivedLink>,
    /// The status code ([`StatusCode::Unset`] if the span has no status).
    pub status_code: StatusCode,
    /// The status message; empty if none.
    pub status_message: String,
    /// The attributes of the resource the span was exported with.
    pub resource: BTreeMap<String, AttrValue>,
    /// The name of the instrumentation scope; empty if none.
    pub scope_name: String,
    /// The transport that delivered the span.
    pub transport: Transport,
}

impl ReceivedSpan {
    /// The span attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.get(key)
    }

    /// The span attribute `key`, if it is a string.
    pub fn str_attr(&self, key: &str) -> Option<&str> {
        self.attr(key).and_then(AttrValue::as_str)
    }

    /// The span attribute `key`, if it is an integer.
    pub fn int_attr(&self, key: &str) -> Option<i64> {
        self.attr(key).and_then(AttrValue::as_i64)
    }

    /// The `service.name` resource attribute, if it is a string.
    pub fn service_name(&self) -> Option<&str> {
        self.resource
            .get("service.name")
            .and_then(AttrValue::as_str)
    }

    /// Whether the parent span context was remote (propagated from another
    /// process), or `None` if the sender did not say.
    pub fn parent_is_remote(&self) -> Option<bool> {
        let has_is_remote = proto::SpanFlags::ContextHasIsRemoteMask as u32;
        let is_remote = proto::SpanFlags::ContextIsRemoteMask as u32;
        (self.flags & has_is_remote != 0).then_some(self.flags & is_remote != 0)
    }
}

/// Flattens every span of `request`, in the order they appear in it.
pub(crate) fn flatten(
    request: ExportTraceServiceRequest,
    transport: Transport,
) -> Vec<ReceivedSpan> {
    let mut flattened = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = attributes(
            resource_spans
                .resource
                .map(|r| r.attributes)
                .unwrap_or_default(),
        );
        for scope_spans in resource_spans.scope_spans {
            let scope_name = scope_spans.scope.map(|s| s.name).unwrap_or_default();
            flattened.extend(scope_spans.spans.into_iter().map(|span| {
                let (status_code, status_message) = span
                    .status
                    .map(|s| (StatusCode::from_proto(s.code), s.message))
                    .unwrap_or_default();
                ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: (!span.parent_span_id.is_empty())
                        .then(|| hex(&span.parent_span_id)),
                    trace_state: span.trace_state,
                    flags: span.flags,
                    name: span.name,
                    kind: SpanKind::from_proto(span.kind),
                    start_unix_nanos: span.start_time_unix_nano,
                    end_unix_nanos: span.end_time_unix_nano,
                    attributes: attributes(span.attributes),
                    events: span
                        .events
                        .into_iter()
                        .map(|event| ReceivedEvent {
                            name: event.name,
                            time_unix_nanos: event.time_unix_nano,
                            attributes: attributes(event.attributes),
                        })
                        .collect(),
                    links: span
                        .links
                        .into_iter()
                        .map(|link| ReceivedLink {
                            trace_id: hex(&link.trace_id),
                            span_id: hex(&link.span_id),
                            attributes: attributes(link.attributes),
                        })
                        .collect(),
                    status_code,
                    status_message,
                    resource: resource.clone(),
                    scope_name: scope_name.clone(),
                    transport,
                }
            }));
        }
    }
    flattened
}

fn attributes(key_values: Vec<KeyValue>) -> BTreeMap<String, AttrValue> {
    key_values
        .into_iter()
        .map(|kv| (kv.key, AttrValue::from_proto(kv.value)))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for &byte in bytes {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}
