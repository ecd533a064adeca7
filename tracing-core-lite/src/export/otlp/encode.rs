//! OTLP protobuf (`ExportTraceServiceRequest`) written straight from [`SpanData`].
//!
//! `opentelemetry-otlp` first converts each span into the generated `opentelemetry-proto`
//! structs (a `String` for every attribute key and string value, a `Vec` for every id and
//! list), encodes those, then frees them: about 16,000 instructions and 26 allocations
//! per span on the export thread (BENCHMARKS.md, fifth round). This writer reads the spans
//! where they are and writes the same bytes (byte for byte what `prost` writes for the
//! converted request; the tests check it) into one buffer, in one pass: a message whose length
//! is not known before it is written (a span, the lists of spans) gets room for the length its
//! kind usually needs, and is moved in the rare case its length takes another number of bytes
//! (see [`put_nested`]).
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `resource/v1/resource.proto`; fields are written in field
//! number order and default (zero, empty) values are left out, as `prost` does.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_proto::tonic::trace::v1::SpanFlags;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind as ProtoSpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;
use prost::encoding::{WireType, encode_varint, encoded_len_varint};

/// Wire types, as tag bits.
const VARINT: u32 = WireType::Varint as u32;
const FIXED64: u32 = WireType::SixtyFourBit as u32;
const LEN: u32 = WireType::LengthDelimited as u32;
const FIXED32: u32 = WireType::ThirtyTwoBit as u32;

/// The encoder of one exporter: the resource's part of every request, encoded once.
#[derive(Debug)]
pub(crate) struct Encoder {
    /// The `Resource` message's body.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    resource_schema_url: String,
    /// Bytes per span of the last batch: what the next one's buffer is sized by.
    bytes_per_span: AtomicUsize,
}

/// What a span takes before the last batch tells: a span of the HTTP recipe is about 450 bytes.
const FIRST_BYTES_PER_SPAN: usize = 512;
/// The most bytes per span that a buffer is sized by: a batch of a few huge spans must not
/// make the next one reserve that much for each of its spans (the buffer grows as it must).
const MAX_BYTES_PER_SPAN: usize = 4096;

impl Default for Encoder {
    /// An encoder for spans of an empty resource.
    fn default() -> Self {
        Encoder {
            resource: Vec::new(),
            resource_schema_url: String::new(),
            bytes_per_span: AtomicUsize::new(FIRST_BYTES_PER_SPAN),
        }
    }
}

impl Encoder {
    /// An encoder for spans of `resource`.
    pub(crate) fn new(resource: &Resource) -> Self {
        let mut body = Vec::new();
        for (key, value) in resource.iter() {
            put_key_value(&mut body, 1, key.as_str(), value);
        }
        Encoder {
            resource: body,
            resource_schema_url: resource.schema_url().unwrap_or_default().to_owned(),
            ..Encoder::default()
        }
    }

    /// Appends the `ExportTraceServiceRequest` of `batch` to `out`: one `ResourceSpans`, with
    /// one `ScopeSpans` per instrumentation scope in the order the scopes first appear.
    pub(crate) fn encode(&self, batch: &[SpanData], out: &mut Vec<u8>) {
        // The scopes, in the order they first appear, and each span's.
        let mut scopes: Vec<&InstrumentationScope> = Vec::new();
        let mut last = 0;
        let span_scopes: Vec<usize> = batch
            .iter()
            .map(|span| {
                let scope = &span.instrumentation_scope;
                if scopes.get(last).is_none_or(|s| *s != scope) {
                    last = match scopes.iter().position(|s| *s == scope) {
                        Some(i) => i,
                        None => {
                            scopes.push(scope);
                            scopes.len() - 1
                        }
                    };
                }
                last
            })
            .collect();

        // Sized by the last batch, with an eighth to spare: most batches are written without
        // the buffer growing.
        let per_span = self.bytes_per_span.load(Ordering::Relaxed);
        let start = out.len();
        out.reserve(self.resource.len() + 64 + batch.len() * (per_span + per_span / 8));

        put_nested(out, 1, 3, |out| {
            put_len_bytes(out, 1, &self.resource);
            for (index, scope) in scopes.iter().enumerate() {
                put_nested(out, 2, 3, |out| {
                    put_len_header(out, 1, scope_len(scope));
                    put_str(out, 1, scope.name());
                    put_str(out, 2, scope.version().unwrap_or_default());
                    for kv in scope.attributes() {
                        put_key_value(out, 3, kv.key.as_str(), &kv.value);
                    }
                    for (span, _) in batch.iter().zip(&span_scopes).filter(|(_, s)| **s == index) {
                        put_nested(out, 2, 2, |out| put_span(out, span));
                    }
                    put_str(out, 3, schema_url(scope));
                });
            }
            put_str(out, 3, &self.resource_schema_url);
        });
        if !batch.is_empty() {
            // The spans' share: the resource is written once per batch, whatever its size.
            let per_span = (out.len() - start - self.resource.len()) / batch.len();
            self.bytes_per_span
                .store(per_span.min(MAX_BYTES_PER_SPAN), Ordering::Relaxed);
        }
    }
}

fn schema_url(scope: &InstrumentationScope) -> &str {
    scope.schema_url().unwrap_or_default()
}

/// The `InstrumentationScope` message's length.
fn scope_len(scope: &InstrumentationScope) -> usize {
    str_field_len(scope.name())
        + str_field_len(scope.version().unwrap_or_default())
        + scope
            .attributes()
            .map(|kv| framed(key_value_len(kv.key.as_str(), &kv.value)))
            .sum::<usize>()
}

/// The `Span` message's content.
fn put_span(out: &mut Vec<u8>, span: &SpanData) {
    let sc = &span.span_context;
    put_len_bytes(out, 1, &sc.trace_id().to_bytes());
    put_len_bytes(out, 2, &sc.span_id().to_bytes());
    // Empty, and not allocated, for most spans.
    put_str(out, 3, &sc.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        put_len_bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    put_str(out, 5, &span.name);
    put_varint_field(out, 6, span_kind(&span.span_kind));
    put_fixed64(out, 7, nanos(span.start_time));
    put_fixed64(out, 8, nanos(span.end_time));
    for kv in &span.attributes {
        put_key_value(out, 9, kv.key.as_str(), &kv.value);
    }
    put_varint_field(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        put_len_header(out, 11, event_len(event));
        put_fixed64(out, 1, nanos(event.timestamp));
        put_str(out, 2, &event.name);
        for kv in &event.attributes {
            put_key_value(out, 3, kv.key.as_str(), &kv.value);
        }
        put_varint_field(out, 4, u64::from(event.dropped_attributes_count));
    }
    put_varint_field(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let trace_state = link.span_context.trace_state().header();
        put_len_header(out, 13, link_len(link, &trace_state));
        put_len_bytes(out, 1, &link.span_context.trace_id().to_bytes());
        put_len_bytes(out, 2, &link.span_context.span_id().to_bytes());
        put_str(out, 3, &trace_state);
        for kv in &link.attributes {
            put_key_value(out, 4, kv.key.as_str(), &kv.value);
        }
        put_varint_field(out, 5, u64::from(link.dropped_attributes_count));
        put_fixed32(
            out,
            6,
            flags(&link.span_context, link.span_context.is_remote()),
        );
    }
    put_varint_field(out, 14, u64::from(span.links.dropped_count));
    put_len_header(out, 15, status_len(&span.status));
    let (code, message) = status(&span.status);
    put_str(out, 2, message);
    put_varint_field(out, 3, code);
    put_fixed32(out, 16, flags(sc, span.parent_span_is_remote));
}

fn event_len(event: &opentelemetry::trace::Event) -> usize {
    fixed64_field_len(nanos(event.timestamp))
        + str_field_len(&event.name)
        + attributes_len(&event.attributes)
        + uint32_field_len(event.dropped_attributes_count)
}

fn link_len(link: &opentelemetry::trace::Link, trace_state: &str) -> usize {
    2 + 16
        + 2
        + 8
        + str_field_len(trace_state)
        + attributes_len(&link.attributes)
        + uint32_field_len(link.dropped_attributes_count)
        + 1
        + 4 // flags: always set
}

/// `Span.flags` and `Link.flags`: the W3C trace flags, and whether the parent (or the linked
/// span) is remote.
fn flags(sc: &opentelemetry::trace::SpanContext, remote: bool) -> u32 {
    let mut flags = u32::from(sc.trace_flags().to_u8()) | SpanFlags::ContextHasIsRemoteMask as u32;
    if remote {
        flags |= SpanFlags::ContextIsRemoteMask as u32;
    }
    flags
}

/// `Status.code` and `Status.message`.
fn status(status: &Status) -> (u64, &str) {
    match status {
        Status::Error { description } => (StatusCode::Error as u64, description),
        other => (StatusCode::from(other) as u64, ""),
    }
}

fn status_len(s: &Status) -> usize {
    let (code, message) = status(s);
    str_field_len(message) + varint_field_len(code)
}

/// `Span.SpanKind`.
fn span_kind(kind: &opentelemetry::trace::SpanKind) -> u64 {
    ProtoSpanKind::from(kind.clone()) as u64
}

/// Nanoseconds since the epoch, 0 for a time before it (as `opentelemetry-proto` converts).
fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The length of a list of `KeyValue` fields (numbered below 16: one byte of tag).
fn attributes_len(attributes: &[KeyValue]) -> usize {
    attributes
        .iter()
        .map(|kv| framed(key_value_len(kv.key.as_str(), &kv.value)))
        .sum()
}

/// The `KeyValue` message's length.
#[inline]
fn key_value_len(key: &str, value: &Value) -> usize {
    str_field_len(key) + framed(any_value_len(value))
}

fn put_key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    // The usual attribute, a string or an integer under a key, short enough for every length
    // to take one byte: its framing written a few bytes at a time.
    debug_assert!(field < 16, "a one-byte tag");
    let tag = ((field << 3) | LEN) as u8;
    let k = key.len();
    match value {
        Value::String(s) if k != 0 && k + s.as_str().len() < 122 => {
            let v = s.as_str().len();
            out.extend_from_slice(&[tag, (k + v + 6) as u8, 0x0a, k as u8]);
            out.extend_from_slice(key.as_bytes());
            // `AnyValue.string_value` (field 1).
            out.extend_from_slice(&[0x12, (v + 2) as u8, 0x0a, v as u8]);
            out.extend_from_slice(s.as_str().as_bytes());
            return;
        }
        Value::I64(i) if k != 0 && k < 100 => {
            let n = encoded_len_varint(*i as u64);
            out.extend_from_slice(&[tag, (k + n + 5) as u8, 0x0a, k as u8]);
            out.extend_from_slice(key.as_bytes());
            // `AnyValue.int_value` (field 3).
            out.extend_from_slice(&[0x12, (n + 1) as u8, 0x18]);
            put_varint(out, *i as u64);
            return;
        }
        _ => {}
    }
    let value_len = any_value_len(value);
    put_len_header(out, field, str_field_len(key) + framed(value_len));
    put_str(out, 1, key);
    put_len_header(out, 2, value_len);
    put_any_value(out, value);
}

/// The `AnyValue` message's length. Its `oneof` field is written even when it holds the
/// default value.
#[inline]
fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::I64(i) => 1 + encoded_len_varint(*i as u64),
        Value::F64(_) => 1 + 8,
        Value::String(s) => framed(s.as_str().len()),
        Value::Array(array) => framed(array_len(array)),
        other => framed(other.as_str().len()),
    }
}

fn put_any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            put_tag(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            put_tag(out, 3, VARINT);
            put_varint(out, *i as u64);
        }
        Value::F64(f) => {
            put_tag(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => put_len_bytes(out, 1, s.as_str().as_bytes()),
        Value::Array(array) => {
            put_len_header(out, 5, array_len(array));
            match array {
                Array::Bool(values) => {
                    for v in values {
                        put_array_element(out, &Value::Bool(*v));
                    }
                }
                Array::I64(values) => {
                    for v in values {
                        put_array_element(out, &Value::I64(*v));
                    }
                }
                Array::F64(values) => {
                    for v in values {
                        put_array_element(out, &Value::F64(*v));
                    }
                }
                Array::String(values) => {
                    for v in values {
                        put_len_header(out, 1, framed(v.as_str().len()));
                        put_len_bytes(out, 1, v.as_str().as_bytes());
                    }
                }
                // A kind of array added to the API later: its text, as one string value.
                other => {
                    let text = other.to_string();
                    put_len_header(out, 1, framed(text.len()));
                    put_len_bytes(out, 1, text.as_bytes());
                }
            }
        }
        // A kind of value added to the API later: its text.
        other => put_len_bytes(out, 1, other.as_str().as_bytes()),
    }
}

fn put_array_element(out: &mut Vec<u8>, value: &Value) {
    put_len_header(out, 1, any_value_len(value));
    put_any_value(out, value);
}

/// The `ArrayValue` message's length.
fn array_len(array: &Array) -> usize {
    match array {
        Array::Bool(values) => values.len() * framed(2),
        Array::I64(values) => values
            .iter()
            .map(|i| framed(1 + encoded_len_varint(*i as u64)))
            .sum(),
        Array::F64(values) => values.len() * framed(9),
        Array::String(values) => values
            .iter()
            .map(|s| framed(framed(s.as_str().len())))
            .sum(),
        other => framed(framed(other.to_string().len())),
    }
}

/// The length of a length-delimited field numbered below 16 whose content is `len` bytes.
#[inline]
fn framed(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

/// The length of a string field (numbered below 16), 0 when it is empty (left out).
#[inline]
fn str_field_len(s: &str) -> usize {
    if s.is_empty() { 0 } else { framed(s.len()) }
}

fn fixed64_field_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + 8 }
}

fn varint_field_len(v: u64) -> usize {
    if v == 0 { 0 } else { 1 + encoded_len_varint(v) }
}

fn uint32_field_len(v: u32) -> usize {
    varint_field_len(u64::from(v))
}

/// The length-delimited field `field` whose content `write` appends, its length unknown
/// beforehand: room is left for a length of `room` bytes, what the kind of message usually
/// takes, and the content is moved when its length takes another number of bytes (a span
/// under 128 bytes, or over 16 KiB). The bytes are those of a length computed first.
fn put_nested(out: &mut Vec<u8>, field: u32, room: usize, write: impl FnOnce(&mut Vec<u8>)) {
    put_tag(out, field, LEN);
    let at = out.len();
    out.extend_from_slice(&[0; 10][..room]);
    write(out);
    let end = out.len();
    let len = (end - at - room) as u64;
    let needed = encoded_len_varint(len);
    if needed > room {
        out.resize(end + needed - room, 0);
        out.copy_within(at + room..end, at + needed);
    } else if needed < room {
        out.copy_within(at + room..end, at + needed);
        out.truncate(end - (room - needed));
    }
    // Exactly `needed` bytes, over the room left.
    encode_varint(len, &mut &mut out[at..at + needed]);
}

/// A varint: one byte for most (tags, short lengths, small numbers) without a call.
#[inline(always)]
fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 0x80 {
        out.push(v as u8);
    } else {
        encode_varint(v, out);
    }
}

#[inline]
fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u32) {
    put_varint(out, u64::from((field << 3) | wire_type));
}

#[inline]
fn put_len_header(out: &mut Vec<u8>, field: u32, len: usize) {
    put_tag(out, field, LEN);
    put_varint(out, len as u64);
}

#[inline]
fn put_len_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_len_header(out, field, bytes.len());
    out.extend_from_slice(bytes);
}

/// A string field, left out when empty.
#[inline]
fn put_str(out: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        put_len_bytes(out, field, s.as_bytes());
    }
}

/// A varint field, left out when 0.
fn put_varint_field(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, VARINT);
        put_varint(out, v);
    }
}

/// A `fixed64` field, left out when 0.
fn put_fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        put_tag(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A `fixed32` field, left out when 0.
fn put_fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        put_tag(out, field, FIXED32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}
