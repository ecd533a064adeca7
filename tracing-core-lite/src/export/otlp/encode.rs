//! OTLP protobuf (`ExportTraceServiceRequest`) written straight from [`SpanData`].
//!
//! `opentelemetry-otlp` first converts each span into the generated `opentelemetry-proto`
//! structs (a `String` for every attribute key and string value, a `Vec` for every id and
//! list), encodes those, then frees them: about 16,000 instructions and 26 allocations
//! per span on the export thread (BENCHMARKS.md, fifth round). This writer reads the spans
//! where they are and writes the same bytes (byte for byte what `prost` writes for the
//! converted request; the tests check it) into one buffer sized beforehand: the lengths of the
//! nested messages are computed first, then everything is written in one pass.
//!
//! Field numbers are those of `opentelemetry/proto/trace/v1/trace.proto`,
//! `common/v1/common.proto` and `resource/v1/resource.proto`; fields are written in field
//! number order and default (zero, empty) values are left out, as `prost` does.

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
#[derive(Debug, Default)]
pub(crate) struct Encoder {
    /// The `Resource` message's body.
    resource: Vec<u8>,
    /// `ResourceSpans.schema_url`.
    resource_schema_url: String,
}

/// What the first pass learns of a span, for the second.
struct Planned {
    /// Index of the span's scope in the request's list of scopes.
    scope: usize,
    /// The `Span` message's length.
    len: usize,
    /// The span's `tracestate` header (empty, and not allocated, for most spans).
    trace_state: String,
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
        }
    }

    /// Appends the `ExportTraceServiceRequest` of `batch` to `out`: one `ResourceSpans`, with
    /// one `ScopeSpans` per instrumentation scope in the order the scopes first appear.
    pub(crate) fn encode(&self, batch: &[SpanData], out: &mut Vec<u8>) {
        // First pass: every span's scope and length.
        let mut scopes: Vec<(&InstrumentationScope, usize)> = Vec::new();
        let mut last = 0;
        let planned: Vec<Planned> = batch
            .iter()
            .map(|span| {
                let scope = &span.instrumentation_scope;
                if scopes.get(last).is_none_or(|(s, _)| *s != scope) {
                    last = match scopes.iter().position(|(s, _)| *s == scope) {
                        Some(i) => i,
                        None => {
                            scopes.push((scope, 0));
                            scopes.len() - 1
                        }
                    };
                }
                let trace_state = span.span_context.trace_state().header();
                let len = span_len(span, &trace_state);
                scopes[last].1 += framed(len);
                Planned {
                    scope: last,
                    len,
                    trace_state,
                }
            })
            .collect();

        // The lengths of the enclosing messages.
        let scope_spans_len = |(scope, spans_len): &(&InstrumentationScope, usize)| {
            framed(scope_len(scope)) + spans_len + str_field_len(schema_url(scope))
        };
        let resource_spans_len = framed(self.resource.len())
            + scopes
                .iter()
                .map(|s| framed(scope_spans_len(s)))
                .sum::<usize>()
            + str_field_len(&self.resource_schema_url);
        out.reserve(framed(resource_spans_len));

        // Second pass: write.
        put_len_header(out, 1, resource_spans_len);
        put_len_header(out, 1, self.resource.len());
        out.extend_from_slice(&self.resource);
        for (index, scoped) in scopes.iter().enumerate() {
            let scope = scoped.0;
            put_len_header(out, 2, scope_spans_len(scoped));
            put_len_header(out, 1, scope_len(scope));
            put_str(out, 1, scope.name());
            put_str(out, 2, scope.version().unwrap_or_default());
            for kv in scope.attributes() {
                put_key_value(out, 3, kv.key.as_str(), &kv.value);
            }
            for (span, plan) in batch.iter().zip(&planned) {
                if plan.scope == index {
                    put_len_header(out, 2, plan.len);
                    put_span(out, span, &plan.trace_state);
                }
            }
            put_str(out, 3, schema_url(scope));
        }
        put_str(out, 3, &self.resource_schema_url);
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

/// The `Span` message's length.
fn span_len(span: &SpanData, trace_state: &str) -> usize {
    let mut len = 2 + 16 + 2 + 8 + str_field_len(trace_state);
    if span.parent_span_id != SpanId::INVALID {
        len += 2 + 8;
    }
    len += 2 + 4; // flags: field 16, always set
    len += str_field_len(&span.name);
    len += 2; // kind: never 0 (unspecified)
    len += fixed64_field_len(nanos(span.start_time)) + fixed64_field_len(nanos(span.end_time));
    len += attributes_len(&span.attributes);
    len += uint32_field_len(span.dropped_attributes_count);
    for event in span.events.iter() {
        len += framed(event_len(event));
    }
    len += uint32_field_len(span.events.dropped_count);
    for link in span.links.iter() {
        len += framed(link_len(link, &link.span_context.trace_state().header()));
    }
    len += uint32_field_len(span.links.dropped_count);
    len + framed(status_len(&span.status))
}

fn put_span(out: &mut Vec<u8>, span: &SpanData, trace_state: &str) {
    let sc = &span.span_context;
    put_len_bytes(out, 1, &sc.trace_id().to_bytes());
    put_len_bytes(out, 2, &sc.span_id().to_bytes());
    put_str(out, 3, trace_state);
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
