//! [Jaeger] (`uber-trace-id`) trace-context and baggage propagation.
//!
//! [`JaegerPropagator`] implements OpenTelemetry's [`TextMapPropagator`] for
//! the native propagation format of the (deprecated) Jaeger client libraries.
//!
//! # Trace context
//!
//! ```text
//! uber-trace-id: {trace-id}:{span-id}:{parent-span-id}:{flags}
//!
//! uber-trace-id: 4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1
//! uber-trace-id: 4d0000000000000016:17c29:0:3
//! uber-trace-id: 4d0000000000000016%3A17c29%3A0%3A3
//! ```
//!
//! - `trace-id`: 1 to 32 hex characters. Jaeger clients strip leading zeros,
//!   so shorter ids (including 64-bit ones) are left-padded with zeros to 128
//!   bits. Zero is invalid.
//! - `span-id`: 1 to 16 hex characters, left-padded likewise. Zero is invalid.
//! - `parent-span-id`: 1 to 16 hex characters. Deprecated: checked for shape,
//!   then ignored. Injected as `0`.
//! - `flags`: a one-byte bitmap as one or two hex characters. `0x01` is
//!   *sampled* and `0x02` is *debug*; the other bits (such as `0x08`,
//!   *firehose*) are ignored.
//!
//! Hex digits may be upper- or lower-case, as Jaeger clients accept both; they
//! are injected in lower case. The whole value is percent-decoded before it is
//! parsed, so the URL-encoded form some clients send (`%3A` for `:`) is
//! accepted. Nothing else is tolerated: surrounding whitespace, signs,
//! prefixes, empty, missing or extra fields make the value malformed, and a
//! malformed value leaves the context's span unchanged.
//!
//! # Sampling and debug
//!
//! | Jaeger `flags`                  | [`TraceFlags`] of the extracted context              |
//! |---------------------------------|------------------------------------------------------|
//! | debug (`0x02`) set              | `SAMPLED` and [`JaegerPropagator::TRACE_FLAG_DEBUG`] |
//! | otherwise, sampled (`0x01`) set | [`TraceFlags::SAMPLED`]                              |
//! | neither                         | [`TraceFlags::NOT_SAMPLED`]                          |
//!
//! OpenTelemetry has no debug flag, so debug is kept, as the upstream
//! `opentelemetry-jaeger-propagator` kept it, in the otherwise unused trace-flag
//! bit `0x04` ([`JaegerPropagator::TRACE_FLAG_DEBUG`]). Jaeger defines debug
//! as implying sampled, so the sampled bit is set too, even when a sender set
//! `0x02` alone. The SDK copies a parent's trace flags into its children, so a
//! span started under a debug context is injected with flags `3` again. A
//! context whose sampled bit is clear is injected with flags `0`.
//!
//! # Baggage
//!
//! ```text
//! uberctx-{key}: {percent-encoded value}
//! ```
//!
//! On extraction, every `uberctx-` header (the prefix is matched
//! ASCII-case-insensitively) whose key is a non-empty RFC 7230 token and whose
//! value percent-decodes to UTF-8 becomes a [`Baggage`] entry. As the Jaeger
//! clients encode values as URL query components, `+` decodes to a space.
//! Entries are merged into the context's existing baggage, replacing entries
//! with the same key, and are extracted whether or not `uber-trace-id` is
//! present and valid. At most [`JaegerPropagator::MAX_BAGGAGE_ENTRIES`] (64)
//! valid headers are taken per extraction, the carrier's key order deciding
//! which when there are more, and [`Baggage`]'s own limits (64 entries and 8192
//! bytes in total) still apply to the merged result.
//!
//! On injection, every baggage entry is written as `uberctx-{key}` with its
//! value percent-encoded (everything but ASCII letters, digits and `-._~`).
//! Baggage metadata has no Jaeger representation and is dropped. HTTP header
//! names are case-insensitive, so keys should be lower-case, as Jaeger
//! recommends.
//!
//! The baggage headers cannot be listed in advance, so
//! [`fields`](TextMapPropagator::fields) reports `uber-trace-id` only.
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::Context;
//! use opentelemetry::baggage::BaggageExt;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use tracing_core_lite::propagation::jaeger::JaegerPropagator;
//!
//! let propagator = JaegerPropagator::new();
//!
//! let mut incoming = HashMap::new();
//! incoming.insert("uber-trace-id".to_owned(), "4d0000000000000016:17c29:0:3".to_owned());
//! incoming.insert("uberctx-tenant".to_owned(), "acme%20corp".to_owned());
//! let cx = propagator.extract_with_context(&Context::new(), &incoming);
//! assert!(cx.span().span_context().is_sampled());
//! assert_eq!(cx.baggage().get("tenant").map(|v| v.as_str()), Some("acme corp"));
//!
//! let mut outgoing = HashMap::new();
//! propagator.inject_context(&cx, &mut outgoing);
//! assert_eq!(outgoing["uber-trace-id"], "000000000000004d0000000000000016:0000000000017c29:0:3");
//! assert_eq!(outgoing["uberctx-tenant"], "acme%20corp");
//! ```
//!
//! [Jaeger]: https://www.jaegertracing.io/docs/1.18/client-libraries/#propagation-format

use std::borrow::Cow;
use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::trace_context::push_hex;

const TRACE_CONTEXT_HEADER: &str = "uber-trace-id";
const BAGGAGE_PREFIX: &str = "uberctx-";

static FIELDS: LazyLock<[String; 1]> = LazyLock::new(|| [TRACE_CONTEXT_HEADER.to_owned()]);

/// Jaeger's flag bits.
const JAEGER_SAMPLED: u8 = 0x01;
const JAEGER_DEBUG: u8 = 0x02;

const SAMPLED_BIT: u8 = 0x01;
const DEBUG_BIT: u8 = 0x04;
const DEBUG_SAMPLED: TraceFlags = TraceFlags::new(DEBUG_BIT | SAMPLED_BIT);

/// The longest valid `uber-trace-id` value, `{32}:{16}:{16}:{2}`, with every
/// character percent-encoded. Longer values are rejected before decoding.
const MAX_TRACE_CONTEXT_LEN: usize = 3 * (32 + 1 + 16 + 1 + 16 + 1 + 2);

/// W3C Baggage's limit on the total size of the entries, which
/// [`Baggage`] enforces too; a longer header cannot be accepted anyway.
const MAX_BAGGAGE_BYTES: usize = 8192;

/// Characters that are percent-encoded in injected baggage values: all but
/// RFC 3986's unreserved ones.
const BAGGAGE_VALUE_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Extracts and injects [`SpanContext`]s and [`Baggage`] using the [Jaeger]
/// `uber-trace-id` and `uberctx-*` headers.
///
/// See the [module documentation](self) for the format, the validation rules
/// and how sampling, debug and baggage are mapped onto OpenTelemetry.
///
/// [Jaeger]: https://www.jaegertracing.io/docs/1.18/client-libraries/#propagation-format
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct JaegerPropagator {}

impl JaegerPropagator {
    /// The trace-flag bit (`0x04`) that marks a Jaeger debug trace.
    ///
    /// Extraction sets it, together with [`TraceFlags::SAMPLED`], when the
    /// Jaeger debug flag (`0x02`) is set. Injection emits flags `3` when both
    /// bits are set. It is the same bit the sibling `b3` module uses for B3's
    /// debug flag, so debug survives a change of propagation format.
    pub const TRACE_FLAG_DEBUG: TraceFlags = TraceFlags::new(DEBUG_BIT);

    /// The most `uberctx-*` baggage headers taken by one extraction, the same
    /// as [`Baggage`]'s own limit on entries.
    ///
    /// Headers with an invalid key or value do not count.
    pub const MAX_BAGGAGE_ENTRIES: usize = 64;

    /// Creates a Jaeger propagator.
    #[must_use]
    pub const fn new() -> Self {
        Self {}
    }
}

impl TextMapPropagator for JaegerPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        let baggage = cx.baggage();
        injector.reserve(usize::from(span_context.is_valid()) + baggage.len());

        if span_context.is_valid() {
            injector.set(TRACE_CONTEXT_HEADER, encode_span_context(span_context));
        }

        for (key, (value, _metadata)) in baggage {
            let key = key.as_str();
            // `Baggage` only holds valid keys; this keeps a header name valid
            // should that ever change.
            if !is_token(key) {
                continue;
            }
            let mut name = String::with_capacity(BAGGAGE_PREFIX.len() + key.len());
            name.push_str(BAGGAGE_PREFIX);
            name.push_str(key);
            let value: Cow<'_, str> =
                utf8_percent_encode(value.as_str(), BAGGAGE_VALUE_ENCODE_SET).into();
            injector.set(&name, value.into_owned());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let with_span = extractor
            .get(TRACE_CONTEXT_HEADER)
            .and_then(decode_span_context)
            .map(|span_context| cx.with_remote_span_context(span_context));
        let current = with_span.as_ref().unwrap_or(cx);

        if let Some(baggage) = extract_baggage(current.baggage(), extractor) {
            return current.with_baggage(baggage);
        }
        with_span.unwrap_or_else(|| cx.clone())
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&*FIELDS)
    }
}

/// Formats `{trace-id}:{span-id}:0:{flags}`.
fn encode_span_context(span_context: &SpanContext) -> String {
    let flags = span_context.trace_flags();
    let flags = if !flags.is_sampled() {
        '0'
    } else if flags & JaegerPropagator::TRACE_FLAG_DEBUG == JaegerPropagator::TRACE_FLAG_DEBUG {
        '3'
    } else {
        '1'
    };

    let mut value = String::with_capacity(32 + 1 + 16 + 3 + 1);
    push_hex(&mut value, &span_context.trace_id().to_bytes());
    value.push(':');
    push_hex(&mut value, &span_context.span_id().to_bytes());
    value.push_str(":0:");
    value.push(flags);
    value
}

/// Parses an `uber-trace-id` value. Returns `None` when it is malformed.
fn decode_span_context(value: &str) -> Option<SpanContext> {
    if value.len() > MAX_TRACE_CONTEXT_LEN {
        return None;
    }
    let value = percent_decode_str(value).decode_utf8().ok()?;
    let mut fields = value.split(':');
    let trace_id = parse_hex(fields.next()?, 32)?;
    let span_id = u64::try_from(parse_hex(fields.next()?, 16)?).ok()?;
    // The deprecated parent span id: validated, then ignored.
    parse_hex(fields.next()?, 16)?;
    let jaeger_flags = parse_hex(fields.next()?, 2)?;
    if fields.next().is_some() || trace_id == 0 || span_id == 0 {
        return None;
    }

    let jaeger_flags = u8::try_from(jaeger_flags).ok()?;
    let flags = if jaeger_flags & JAEGER_DEBUG != 0 {
        // Debug implies sampled.
        DEBUG_SAMPLED
    } else if jaeger_flags & JAEGER_SAMPLED != 0 {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::NOT_SAMPLED
    };
    Some(SpanContext::new(
        TraceId::from(trace_id),
        SpanId::from(span_id),
        flags,
        true,
        TraceState::NONE,
    ))
}

/// Reads the `uberctx-*` headers into a copy of `existing`.
///
/// Returns `None`, sparing the copy, when no header is accepted.
fn extract_baggage(existing: &Baggage, extractor: &dyn Extractor) -> Option<Baggage> {
    let mut merged: Option<Baggage> = None;
    let mut accepted = 0;
    for header in extractor.keys() {
        if accepted == JaegerPropagator::MAX_BAGGAGE_ENTRIES {
            break;
        }
        let Some(key) = strip_baggage_prefix(header) else {
            continue;
        };
        if !is_token(key) {
            continue;
        }
        let Some(raw_value) = extractor.get(header) else {
            continue;
        };
        // Decoding never lengthens a value, so this bounds the work up front.
        if key.len() + raw_value.len() > MAX_BAGGAGE_BYTES {
            continue;
        }
        let Some(value) = decode_baggage_value(raw_value) else {
            continue;
        };
        merged
            .get_or_insert_with(|| {
                existing
                    .iter()
                    .map(|(key, entry)| (key.clone(), entry.clone()))
                    .collect()
            })
            .insert(key.to_owned(), value);
        accepted += 1;
    }
    merged
}

/// Returns the baggage key of an `uberctx-{key}` header name.
fn strip_baggage_prefix(header: &str) -> Option<&str> {
    let prefix = header.get(..BAGGAGE_PREFIX.len())?;
    if prefix.eq_ignore_ascii_case(BAGGAGE_PREFIX) {
        header.get(BAGGAGE_PREFIX.len()..)
    } else {
        None
    }
}

/// Decodes a query-component-encoded value (`+` is a space), as the Jaeger
/// clients encode baggage. Returns `None` unless the result is UTF-8.
fn decode_baggage_value(raw: &str) -> Option<String> {
    let raw = if raw.contains('+') {
        Cow::Owned(raw.replace('+', " "))
    } else {
        Cow::Borrowed(raw)
    };
    percent_decode_str(&raw)
        .decode_utf8()
        .ok()
        .map(Cow::into_owned)
}

/// Whether `s` is a non-empty RFC 7230 token, which is what header names and
/// baggage keys must be.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !b"\"(),/:;<=>?@[\\]{}".contains(&b))
}

/// Parses 1 to `max_digits` (at most 32) hex characters of either case.
fn parse_hex(hex: &str, max_digits: usize) -> Option<u128> {
    debug_assert!(max_digits <= 32);
    if hex.is_empty() || hex.len() > max_digits {
        return None;
    }
    hex.bytes().try_fold(0u128, |n, b| {
        let digit = char::from(b).to_digit(16)?;
        Some((n << 4) | u128::from(digit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::KeyValueMetadata;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const TRACE_ID_U128: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
    const SPAN_ID: &str = "00f067aa0ba902b7";
    const SPAN_ID_U64: u64 = 0x00f0_67aa_0ba9_02b7;
    const SHORT_TRACE_ID: &str = "4d0000000000000016";
    const SHORT_TRACE_ID_U128: u128 = 0x4d_0000_0000_0000_0016;
    const SHORT_SPAN_ID: &str = "17c29";
    const SHORT_SPAN_ID_U64: u64 = 0x1_7c29;

    const NOT_SAMPLED: TraceFlags = TraceFlags::NOT_SAMPLED;
    const SAMPLED: TraceFlags = TraceFlags::SAMPLED;
    const DEBUG: TraceFlags = TraceFlags::new(0x05);

    #[derive(Debug, PartialEq)]
    struct Marker(u32);

    /// A carrier that keeps header order and case, unlike `HashMap`.
    struct OrderedCarrier(Vec<(String, String)>);

    impl Extractor for OrderedCarrier {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value.as_str())
        }

        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(name, _)| name.as_str()).collect()
        }
    }

    fn carrier(headers: &[(&str, &str)]) -> HashMap<String, String> {
        headers
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }

    fn remote(trace_id: u128, span_id: u64, flags: TraceFlags) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace_id),
            SpanId::from(span_id),
            flags,
            true,
            TraceState::NONE,
        )
    }

    fn extract(extractor: &dyn Extractor) -> Context {
        JaegerPropagator::new().extract_with_context(&Context::new(), extractor)
    }

    fn span_of(cx: &Context) -> Option<SpanContext> {
        cx.has_active_span()
            .then(|| cx.span().span_context().clone())
    }

    fn extract_span(value: &str) -> Option<SpanContext> {
        span_of(&extract(&carrier(&[("uber-trace-id", value)])))
    }

    fn baggage_of(cx: &Context) -> BTreeMap<String, String> {
        cx.baggage()
            .iter()
            .map(|(key, (value, _))| (key.as_str().to_owned(), value.as_str().to_owned()))
            .collect()
    }

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
        entries
            .iter()
            .map(|&(key, value)| (key.to_owned(), value.to_owned()))
            .collect()
    }

    fn inject(cx: &Context) -> HashMap<String, String> {
        let mut injector = HashMap::new();
        JaegerPropagator::new().inject_context(cx, &mut injector);
        injector
    }

    fn percent_encode_all(value: &str) -> String {
        value.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    fn with_span(span_context: SpanContext) -> Context {
        Context::new().with_remote_span_context(span_context)
    }

    #[test]
    fn extracts_every_valid_trace_context_form() {
        let longest = format!(
            "{}:{}:{}:ff",
            "f".repeat(32),
            "f".repeat(16),
            "f".repeat(16)
        );
        let upper_trace_id = TRACE_ID.to_uppercase();
        let upper_span_id = SPAN_ID.to_uppercase();
        #[rustfmt::skip]
        let cases = [
            (format!("{TRACE_ID}:{SPAN_ID}:0:1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:0"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:3"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            // Debug implies sampled.
            (format!("{TRACE_ID}:{SPAN_ID}:0:2"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            // Flags are one or two hex digits; unknown bits are ignored.
            (format!("{TRACE_ID}:{SPAN_ID}:0:00"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:01"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:03"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:8"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:9"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:a"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:0B"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:10"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:f0"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:0:ff"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            // The parent span id is only checked for shape.
            (format!("{TRACE_ID}:{SPAN_ID}:{SPAN_ID}:1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:abc:1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}:{SPAN_ID}:FFFFFFFFFFFFFFFF:1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            // Leading zeros stripped by Jaeger clients.
            (format!("{SHORT_TRACE_ID}:{SPAN_ID}:0:1"), remote(SHORT_TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{SHORT_TRACE_ID}:{SHORT_SPAN_ID}:0:1"), remote(SHORT_TRACE_ID_U128, SHORT_SPAN_ID_U64, SAMPLED)),
            (format!("a3ce929d0e0e4736:{SPAN_ID}:0:1"), remote(0xa3ce_929d_0e0e_4736, SPAN_ID_U64, SAMPLED)),
            ("1:1:0:1".to_owned(), remote(1, 1, SAMPLED)),
            ("00000000000000000000000000000001:0000000000000001:0:1".to_owned(), remote(1, 1, SAMPLED)),
            ("ffffffffffffffffffffffffffffffff:ffffffffffffffff:ffffffffffffffff:ff".to_owned(), remote(u128::MAX, u64::MAX, DEBUG)),
            // Upper-case hex.
            (format!("{upper_trace_id}:{upper_span_id}:0:1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            // URL-encoded.
            (format!("{TRACE_ID}%3A{SPAN_ID}%3A0%3A1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}%3a{SPAN_ID}%3a0%3a3"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            (format!("{TRACE_ID}%3A{SPAN_ID}:0%3A0"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{SHORT_TRACE_ID}%3A{SHORT_SPAN_ID}%3A0%3A1"), remote(SHORT_TRACE_ID_U128, SHORT_SPAN_ID_U64, SAMPLED)),
            (format!("%34{}:{SPAN_ID}:0:1", &TRACE_ID[1..]), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            // The longest valid value, every character percent-encoded.
            (percent_encode_all(&longest), remote(u128::MAX, u64::MAX, DEBUG)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                extract_span(&value),
                Some(expected),
                "uber-trace-id: {value}"
            );
        }
    }

    #[test]
    fn rejects_malformed_trace_contexts() {
        let valid = format!("{TRACE_ID}:{SPAN_ID}:0:1");
        #[rustfmt::skip]
        let cases = [
            String::new(),
            " ".to_owned(),
            ":".to_owned(),
            "::".to_owned(),
            ":::".to_owned(),
            "::::".to_owned(),
            "0:0:0:0".to_owned(),
            "🙂".to_owned(),
            // Missing, empty and extra fields.
            TRACE_ID.to_owned(),
            format!("{TRACE_ID}:{SPAN_ID}"),
            format!("{TRACE_ID}:{SPAN_ID}:0"),
            format!("{TRACE_ID}:{SPAN_ID}:0:"),
            format!("{TRACE_ID}:{SPAN_ID}::1"),
            format!("{TRACE_ID}::0:1"),
            format!(":{SPAN_ID}:0:1"),
            format!("{valid}:"),
            format!("{valid}:0"),
            format!(":{valid}"),
            // Lengths.
            format!("0{TRACE_ID}:{SPAN_ID}:0:1"),
            format!("{TRACE_ID}:0{SPAN_ID}:0:1"),
            format!("{TRACE_ID}:{SPAN_ID}:0{SPAN_ID}:1"),
            format!("{TRACE_ID}:{SPAN_ID}:0:001"),
            format!("{TRACE_ID}:{SPAN_ID}:0:100"),
            // Zero ids.
            format!("0:{SPAN_ID}:0:1"),
            format!("{}:{SPAN_ID}:0:1", "0".repeat(32)),
            format!("{TRACE_ID}:0:0:1"),
            format!("{TRACE_ID}:{}:0:1", "0".repeat(16)),
            // Not hex.
            format!("{}hhh:{SPAN_ID}:0:1", &TRACE_ID[..29]),
            format!("{TRACE_ID}:{}z:0:1", &SPAN_ID[..15]),
            format!("{TRACE_ID}:{SPAN_ID}:x:1"),
            format!("{TRACE_ID}:{SPAN_ID}:0:g"),
            format!("+{}:{SPAN_ID}:0:1", &TRACE_ID[1..]),
            format!("{TRACE_ID}:+1:0:1"),
            format!("{TRACE_ID}:{SPAN_ID}:+0:1"),
            format!("{TRACE_ID}:{SPAN_ID}:0:+1"),
            format!("{TRACE_ID}:{SPAN_ID}:0:-1"),
            format!("0x{}:{SPAN_ID}:0:1", &TRACE_ID[2..]),
            format!("é{}:{SPAN_ID}:0:1", &TRACE_ID[2..]),
            format!("{TRACE_ID}-{SPAN_ID}-0-1"),
            // Whitespace.
            format!(" {valid}"),
            format!("{valid} "),
            format!("{valid}\n"),
            format!("{TRACE_ID}: {SPAN_ID}:0:1"),
            format!("{TRACE_ID}:{SPAN_ID}:0: 1"),
            format!("{TRACE_ID}:{SPAN_ID}:0:1 "),
            format!("{TRACE_ID}:{SPAN_ID}:0:\t1"),
            // Percent-encoding.
            format!("{TRACE_ID}%253A{SPAN_ID}%253A0%253A1"),
            format!("{TRACE_ID}%3A{SPAN_ID}%3A0%3A1%FF"),
            format!("{TRACE_ID}%00:{SPAN_ID}:0:1"),
            format!("%ZZ{TRACE_ID}:{SPAN_ID}:0:1"),
            format!("%3A{valid}"),
            format!("{TRACE_ID}%2B:{SPAN_ID}:0:1"),
            // Two values joined.
            format!("{valid},{valid}"),
            // Too long, even though it would decode to a valid value.
            format!("{}{}", "%30".repeat(MAX_TRACE_CONTEXT_LEN / 3), percent_encode_all(&valid)),
        ];

        let existing = remote(0xabc, 0xdef, SAMPLED);
        let cx = with_span(existing.clone()).with_value(Marker(7));
        for value in &cases {
            let headers = carrier(&[("uber-trace-id", value)]);
            assert_eq!(
                span_of(&extract(&headers)),
                None,
                "uber-trace-id: {value:?}"
            );
            let out = JaegerPropagator::new().extract_with_context(&cx, &headers);
            assert_eq!(
                out.span().span_context(),
                &existing,
                "uber-trace-id: {value:?}"
            );
            assert_eq!(out.get::<Marker>(), Some(&Marker(7)));
        }
    }

    #[test]
    fn extraction_replaces_the_span_and_keeps_the_rest_of_the_context() {
        let cx = with_span(remote(0xabc, 0xdef, SAMPLED)).with_value(Marker(7));
        let headers = carrier(&[("uber-trace-id", "1:2:0:0")]);
        let out = JaegerPropagator::new().extract_with_context(&cx, &headers);
        assert_eq!(out.span().span_context(), &remote(1, 2, NOT_SAMPLED));
        assert_eq!(out.get::<Marker>(), Some(&Marker(7)));
    }

    #[test]
    fn injects_exact_trace_context() {
        #[rustfmt::skip]
        let cases = [
            (NOT_SAMPLED, "0"),
            (SAMPLED, "1"),
            (DEBUG, "3"),
            // Debug without sampled is not debug.
            (JaegerPropagator::TRACE_FLAG_DEBUG, "0"),
            // Bits other than sampled and debug are ignored.
            (TraceFlags::new(0x03), "1"),
            (TraceFlags::new(0x02), "0"),
            (TraceFlags::new(0xff), "3"),
        ];
        for (flags, jaeger_flags) in cases {
            let injected = inject(&with_span(remote(TRACE_ID_U128, SPAN_ID_U64, flags)));
            let expected = format!("{TRACE_ID}:{SPAN_ID}:0:{jaeger_flags}");
            assert_eq!(
                injected,
                carrier(&[("uber-trace-id", &expected)]),
                "{flags:?}"
            );
        }

        let injected = inject(&with_span(remote(
            SHORT_TRACE_ID_U128,
            SHORT_SPAN_ID_U64,
            SAMPLED,
        )));
        assert_eq!(
            injected,
            carrier(&[(
                "uber-trace-id",
                "000000000000004d0000000000000016:0000000000017c29:0:1"
            )])
        );
    }

    #[test]
    fn injects_no_trace_context_without_a_valid_span_context() {
        let invalid = [
            SpanContext::empty_context(),
            SpanContext::new(
                TraceId::INVALID,
                SpanId::INVALID,
                SAMPLED,
                true,
                TraceState::NONE,
            ),
            SpanContext::new(
                TraceId::from(1),
                SpanId::INVALID,
                SAMPLED,
                false,
                TraceState::NONE,
            ),
            SpanContext::new(
                TraceId::INVALID,
                SpanId::from(1),
                DEBUG,
                false,
                TraceState::NONE,
            ),
        ];
        assert!(inject(&Context::new()).is_empty());
        for span_context in invalid {
            assert!(inject(&with_span(span_context)).is_empty());
        }
    }

    #[test]
    fn trace_context_round_trips() {
        for (trace_id, span_id) in [
            (TRACE_ID_U128, SPAN_ID_U64),
            (SHORT_TRACE_ID_U128, SHORT_SPAN_ID_U64),
            (1, 1),
            (u128::MAX, u64::MAX),
        ] {
            for flags in [NOT_SAMPLED, SAMPLED, DEBUG] {
                let injected = inject(&with_span(remote(trace_id, span_id, flags)));
                assert_eq!(
                    span_of(&extract(&injected)),
                    Some(remote(trace_id, span_id, flags)),
                    "{injected:?}"
                );
            }
        }
    }

    #[test]
    fn extracts_baggage() {
        let trace_context = format!("{TRACE_ID}:{SPAN_ID}:0:1");
        let big = "x".repeat(MAX_BAGGAGE_BYTES);
        let headers = carrier(&[
            ("uber-trace-id", &trace_context),
            ("uberctx-user", "alice"),
            ("uberctx-with-space", "a%20b"),
            ("uberctx-plus", "a+b"),
            ("uberctx-encoded-plus", "a%2Bb"),
            ("uberctx-utf8", "caf%C3%A9"),
            ("uberctx-raw-utf8", "café"),
            ("uberctx-empty", ""),
            ("uberctx-symbols", "a=b,c;d"),
            ("uberctx-token!#$%&'*+.^_`|~", "ok"),
            // Ignored: invalid keys, undecodable and oversized values, and
            // other headers.
            ("uberctx-", "empty key"),
            ("uberctx-bad(key)", "x"),
            ("uberctx-bad/key", "x"),
            ("uberctx-bad key", "x"),
            ("uberctx-é", "x"),
            ("uberctx-not-utf8", "%FF"),
            ("uberctx-oversized", &big),
            ("uberctx", "x"),
            ("xuberctx-a", "x"),
            ("uberctx_a", "x"),
            ("content-type", "text/plain"),
        ]);
        let cx = extract(&headers);
        assert_eq!(
            span_of(&cx),
            Some(remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED))
        );
        assert_eq!(
            baggage_of(&cx),
            map(&[
                ("user", "alice"),
                ("with-space", "a b"),
                ("plus", "a b"),
                ("encoded-plus", "a+b"),
                ("utf8", "café"),
                ("raw-utf8", "café"),
                ("empty", ""),
                ("symbols", "a=b,c;d"),
                ("token!#$%&'*+.^_`|~", "ok"),
            ])
        );
    }

    #[test]
    fn extracts_baggage_without_a_valid_trace_context() {
        for trace_context in [None, Some(""), Some("garbage"), Some("0:0:0:1")] {
            let mut headers = carrier(&[("uberctx-user", "alice")]);
            if let Some(value) = trace_context {
                headers.insert("uber-trace-id".to_owned(), value.to_owned());
            }

            let cx = extract(&headers);
            assert_eq!(span_of(&cx), None, "{trace_context:?}");
            assert_eq!(
                baggage_of(&cx),
                map(&[("user", "alice")]),
                "{trace_context:?}"
            );

            let existing = remote(0xabc, 0xdef, SAMPLED);
            let cx = JaegerPropagator::new()
                .extract_with_context(&with_span(existing.clone()), &headers);
            assert_eq!(cx.span().span_context(), &existing);
            assert_eq!(baggage_of(&cx), map(&[("user", "alice")]));
        }
    }

    #[test]
    fn merges_baggage_into_the_context() {
        let existing = Context::new().with_baggage([
            KeyValueMetadata::new("kept", "1", "meta=data"),
            KeyValueMetadata::new("shared", "old", ""),
        ]);
        let headers = carrier(&[("uberctx-shared", "new"), ("uberctx-added", "2")]);
        let cx = JaegerPropagator::new().extract_with_context(&existing, &headers);
        assert_eq!(
            baggage_of(&cx),
            map(&[("kept", "1"), ("shared", "new"), ("added", "2")])
        );
        assert_eq!(
            cx.baggage()
                .get_with_metadata("kept")
                .map(|(_, metadata)| metadata.as_str()),
            Some("meta=data")
        );

        // Without baggage headers the existing baggage is left alone.
        let cx = JaegerPropagator::new().extract_with_context(&existing, &carrier(&[]));
        assert_eq!(baggage_of(&cx), map(&[("kept", "1"), ("shared", "old")]));
    }

    #[test]
    fn matches_the_baggage_prefix_case_insensitively() {
        let headers = OrderedCarrier(vec![
            ("UBERCTX-Key".to_owned(), "v1".to_owned()),
            ("Uberctx-other".to_owned(), "v2".to_owned()),
        ]);
        assert_eq!(
            baggage_of(&extract(&headers)),
            map(&[("Key", "v1"), ("other", "v2")])
        );
    }

    #[test]
    fn caps_the_number_of_baggage_headers() {
        let max = JaegerPropagator::MAX_BAGGAGE_ENTRIES;
        assert_eq!(max, 64);

        let headers: HashMap<_, _> = (0..100)
            .map(|i| (format!("uberctx-key{i}"), format!("value{i}")))
            .collect();
        assert_eq!(extract(&headers).baggage().len(), max);

        // Headers with invalid keys do not count; the first 64 valid ones are
        // taken, in the carrier's order.
        let invalid = (0..100).map(|i| (format!("uberctx-bad key{i}"), "x".to_owned()));
        let valid = (0..100).map(|i| (format!("uberctx-key{i}"), format!("value{i}")));
        let cx = extract(&OrderedCarrier(invalid.chain(valid).collect()));
        let expected: BTreeMap<_, _> = (0..max)
            .map(|i| (format!("key{i}"), format!("value{i}")))
            .collect();
        assert_eq!(baggage_of(&cx), expected);

        // The cap bounds the headers taken, not just the resulting entries:
        // with the baggage already full, replacing an entry that comes after
        // 64 other headers does not happen.
        let full = Context::new()
            .with_baggage((0..max).map(|i| KeyValueMetadata::new(format!("old{i}"), "old", "")));
        let new = (0..max).map(|i| (format!("uberctx-new{i}"), "new".to_owned()));
        let replacement = [("uberctx-old0".to_owned(), "replaced".to_owned())];
        let cx = JaegerPropagator::new()
            .extract_with_context(&full, &OrderedCarrier(new.chain(replacement).collect()));
        assert_eq!(cx.baggage().len(), max);
        assert_eq!(cx.baggage().get("old0").map(|v| v.as_str()), Some("old"));
    }

    #[test]
    fn injects_baggage() {
        let cx = with_span(remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)).with_baggage([
            KeyValueMetadata::new("user", "alice", "ignored=metadata"),
            KeyValueMetadata::new("space", "a b", ""),
            KeyValueMetadata::new("plus", "a+b", ""),
            KeyValueMetadata::new("utf8", "café", ""),
            KeyValueMetadata::new("unreserved", "AZaz09-._~", ""),
            KeyValueMetadata::new("symbols", "a=b,c;d/e%f:g", ""),
            KeyValueMetadata::new("empty", "", ""),
        ]);
        let trace_context = format!("{TRACE_ID}:{SPAN_ID}:0:1");
        assert_eq!(
            inject(&cx),
            carrier(&[
                ("uber-trace-id", &trace_context),
                ("uberctx-user", "alice"),
                ("uberctx-space", "a%20b"),
                ("uberctx-plus", "a%2Bb"),
                ("uberctx-utf8", "caf%C3%A9"),
                ("uberctx-unreserved", "AZaz09-._~"),
                ("uberctx-symbols", "a%3Db%2Cc%3Bd%2Fe%25f%3Ag"),
                ("uberctx-empty", ""),
            ])
        );

        // Baggage is injected without a span context too.
        let cx = Context::new().with_baggage([KeyValueMetadata::new("user", "alice", "")]);
        assert_eq!(inject(&cx), carrier(&[("uberctx-user", "alice")]));
    }

    #[test]
    fn baggage_round_trips() {
        let cx = with_span(remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)).with_baggage([
            KeyValueMetadata::new("user", "alice", ""),
            KeyValueMetadata::new("note", "a b+c%20d/é", ""),
            KeyValueMetadata::new("empty", "", ""),
        ]);
        let out = extract(&inject(&cx));
        assert_eq!(
            span_of(&out),
            Some(remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG))
        );
        assert_eq!(baggage_of(&out), baggage_of(&cx));
    }

    #[test]
    fn fields_are_the_trace_context_header() {
        assert_eq!(
            JaegerPropagator::new().fields().collect::<Vec<_>>(),
            ["uber-trace-id"]
        );
        assert_eq!(JaegerPropagator::default().fields().count(), 1);
    }

    #[test]
    fn debug_bit_is_shared_with_the_b3_propagator() {
        // The B3 propagator uses the same bit; both must change together.
        assert_eq!(JaegerPropagator::TRACE_FLAG_DEBUG, TraceFlags::new(0x04));
        assert_eq!(
            DEBUG_SAMPLED,
            JaegerPropagator::TRACE_FLAG_DEBUG | TraceFlags::SAMPLED
        );
    }

    /// Extraction yields either nothing or a valid remote span context, and
    /// only valid baggage within the limits.
    fn check_extraction(extractor: &dyn Extractor) -> Result<Context, TestCaseError> {
        let cx = extract(extractor);
        if let Some(span_context) = span_of(&cx) {
            prop_assert!(span_context.is_valid());
            prop_assert!(span_context.is_remote());
        }
        prop_assert!(cx.baggage().len() <= JaegerPropagator::MAX_BAGGAGE_ENTRIES);
        for (key, _) in cx.baggage() {
            prop_assert!(is_token(key.as_str()), "{key:?}");
        }
        Ok(cx)
    }

    /// Fields that make up valid and near-valid `uber-trace-id` values.
    fn trace_context_field() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{1,16}|[0-9a-fA-F]{17,32}",
            "[0-9a-fA-F]{1,3}|[0-9a-f]{33}",
            "0{1,32}",
            "[0-9a-f+ xg%-]{0,3}",
        ]
    }

    /// A straightforward reading of the format, for comparison.
    fn trace_context_oracle(value: &str) -> Option<SpanContext> {
        let value = percent_decode_str(value).decode_utf8().ok()?;
        let fields: Vec<&str> = value.split(':').collect();
        let [trace_id, span_id, parent_span_id, flags] = fields[..] else {
            return None;
        };
        let hex = |s: &str, max_len: usize| {
            let valid =
                !s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_hexdigit());
            valid.then(|| u128::from_str_radix(s, 16).ok()).flatten()
        };
        let trace_id = hex(trace_id, 32)?;
        let span_id = u64::try_from(hex(span_id, 16)?).ok()?;
        hex(parent_span_id, 16)?;
        let flags = match hex(flags, 2)? {
            f if f & 2 != 0 => DEBUG,
            f if f & 1 != 0 => SAMPLED,
            _ => NOT_SAMPLED,
        };
        (trace_id != 0 && span_id != 0).then(|| remote(trace_id, span_id, flags))
    }

    proptest! {
        #[test]
        fn trace_context_never_panics(value in any::<String>()) {
            check_extraction(&carrier(&[("uber-trace-id", &value)]))?;
        }

        #[test]
        fn trace_context_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            let value = String::from_utf8_lossy(&bytes);
            check_extraction(&carrier(&[("uber-trace-id", &value)]))?;
        }

        #[test]
        fn near_valid_trace_contexts_match_the_format(
            fields in prop::collection::vec(trace_context_field(), 0..6),
            separator in prop::sample::select(vec![":", "%3A", "%3a"]),
        ) {
            let value = fields.join(separator);
            let cx = check_extraction(&carrier(&[("uber-trace-id", &value)]))?;
            prop_assert_eq!(span_of(&cx), trace_context_oracle(&value));
        }

        #[test]
        fn arbitrary_baggage_headers_never_panic(
            headers in prop::collection::vec((any::<String>(), any::<String>()), 0..80),
            raw in prop::collection::vec((any::<Vec<u8>>(), any::<Vec<u8>>()), 0..8),
        ) {
            let headers = headers
                .into_iter()
                .map(|(key, value)| (format!("uberctx-{key}"), value))
                .chain(raw.into_iter().map(|(key, value)| {
                    let key = String::from_utf8_lossy(&key);
                    (format!("uberctx-{key}"), String::from_utf8_lossy(&value).into_owned())
                }))
                .collect();
            check_extraction(&OrderedCarrier(headers))?;
        }

        #[test]
        fn arbitrary_baggage_round_trips(
            entries in prop::collection::btree_map("[a-z0-9._~!#$&'*+^`|-]{1,16}", any::<String>(), 0..16),
        ) {
            let cx = Context::new().with_baggage(
                entries.iter().map(|(key, value)| KeyValueMetadata::new(key.clone(), value.clone(), "")),
            );
            prop_assert_eq!(baggage_of(&cx), entries.clone());
            let out = check_extraction(&inject(&cx))?;
            prop_assert_eq!(baggage_of(&out), entries);
        }

        #[test]
        fn arbitrary_span_contexts_round_trip(
            trace_id in 1..=u128::MAX,
            span_id in 1..=u64::MAX,
            flags in prop::sample::select(vec![NOT_SAMPLED, SAMPLED, DEBUG]),
        ) {
            let injected = inject(&with_span(remote(trace_id, span_id, flags)));
            let out = check_extraction(&injected)?;
            prop_assert_eq!(span_of(&out), Some(remote(trace_id, span_id, flags)));
        }
    }
}
