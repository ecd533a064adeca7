//! [B3] (Zipkin) trace-context propagation.
//!
//! [`B3Propagator`] implements OpenTelemetry's [`TextMapPropagator`] for both
//! B3 encodings. It always *extracts* both encodings, trying the single
//! header first; it *injects* the encoding(s) selected with [`B3Encoding`].
//!
//! # Single header
//!
//! ```text
//! b3: {trace-id}-{span-id}[-{sampling-state}[-{parent-span-id}]]
//! b3: {sampling-state}
//!
//! b3: 4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1-00000000000000cd
//! ```
//!
//! # Multiple headers
//!
//! ```text
//! x-b3-traceid: 4bf92f3577b34da6a3ce929d0e0e4736
//! x-b3-spanid: 00f067aa0ba902b7
//! x-b3-parentspanid: 00000000000000cd   (optional)
//! x-b3-sampled: 1                       (optional: 1 or 0; legacy true or false)
//! x-b3-flags: 1                         (optional: 1 means debug)
//! ```
//!
//! # Validation
//!
//! As the [B3 specification][B3] requires, a trace id is 16 or 32 *lower-case*
//! hex characters (a 16-character, 64-bit id is left-padded with zeros to 128
//! bits), and span and parent span ids are exactly 16 lower-case hex
//! characters. A trace or span id of all zeros is invalid. Nothing is trimmed:
//! surrounding whitespace, upper-case hex, signs, prefixes, missing or extra
//! fields all make the input malformed. The parent span id is checked for
//! shape only and then ignored, since OpenTelemetry does not share span ids
//! between client and server.
//!
//! When the single header does not yield a span context (it is absent,
//! malformed, or a sampling-only `b3: 0`/`b3: 1`/`b3: d`), the multiple headers
//! are tried. When neither yields one, extraction returns the given [`Context`]
//! unchanged.
//!
//! # Sampling state
//!
//! | B3 sampling state                      | [`TraceFlags`] of the extracted context          |
//! |----------------------------------------|--------------------------------------------------|
//! | accept: `1`, `x-b3-sampled: 1`/`true`  | [`TraceFlags::SAMPLED`]                          |
//! | deny: `0`, `x-b3-sampled: 0`/`false`   | [`TraceFlags::NOT_SAMPLED`]                      |
//! | defer: absent                          | [`TraceFlags::NOT_SAMPLED`]                      |
//! | debug: `d`, `x-b3-flags: 1`            | `SAMPLED` and [`B3Propagator::TRACE_FLAG_DEBUG`] |
//!
//! OpenTelemetry has no debug flag, so debug is kept, as the upstream
//! `opentelemetry-zipkin` propagator kept it, in the otherwise unused trace-flag
//! bit `0x04` ([`B3Propagator::TRACE_FLAG_DEBUG`]); debug implies sampled, so
//! the sampled bit is set too. The SDK copies a parent's trace flags into its
//! children, so a span started under a debug context is injected as debug
//! again: `-d` in the single header, and `x-b3-flags: 1` *without*
//! `x-b3-sampled` in the multiple headers, as the specification requires. A
//! context whose sampled bit is clear is never injected as debug. The W3C
//! `traceparent` propagator drops the bit (it only propagates `sampled`).
//!
//! A deferred decision is not representable. Upstream marked it with bit
//! `0x02`, but that is the W3C Trace Context Level 2 `random` flag, and the
//! OTLP exporter writes all trace-flag bits into the exported span's flags, so
//! a deferred trace would be exported as having a random trace id. A deferred
//! context is therefore extracted as not sampled and injected with an explicit
//! `0`. Likewise the
//! sampling-only single header (`b3: 0`) carries no span context and leaves the
//! context unchanged, so the local sampler decides as for a root span.
//!
//! # Injection
//!
//! Only a valid span context is injected; nothing is written otherwise. The
//! trace id is always written as 32 hex characters, and `x-b3-parentspanid` is
//! never written.
//!
//! ```text
//! B3Encoding::SingleHeader    b3: {trace-id}-{span-id}-{1|0|d}
//! B3Encoding::MultipleHeader  x-b3-traceid, x-b3-spanid, and x-b3-sampled: {1|0} or x-b3-flags: 1
//! ```
//!
//! # Example
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::Context;
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use tracing_core_lite::propagation::b3::{B3Encoding, B3Propagator};
//!
//! let propagator = B3Propagator::with_encoding(B3Encoding::SingleHeader);
//!
//! let mut incoming = HashMap::new();
//! incoming.insert(
//!     "b3".to_owned(),
//!     "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1".to_owned(),
//! );
//! let cx = propagator.extract_with_context(&Context::new(), &incoming);
//! assert!(cx.span().span_context().is_sampled());
//!
//! let mut outgoing = HashMap::new();
//! propagator.inject_context(&cx, &mut outgoing);
//! assert_eq!(incoming, outgoing);
//! ```
//!
//! [B3]: https://github.com/openzipkin/b3-propagation

use std::sync::LazyLock;

use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use super::trace_context::push_hex;

/// Header names. The specification writes the multiple headers as `X-B3-*`,
/// but header names are case-insensitive in HTTP and lower-case in HTTP/2 and
/// gRPC metadata.
const SINGLE_HEADER: &str = "b3";
const TRACE_ID_HEADER: &str = "x-b3-traceid";
const SPAN_ID_HEADER: &str = "x-b3-spanid";
const PARENT_SPAN_ID_HEADER: &str = "x-b3-parentspanid";
const SAMPLED_HEADER: &str = "x-b3-sampled";
const FLAGS_HEADER: &str = "x-b3-flags";

/// Every injected header, ordered so that each encoding's fields are a
/// contiguous range: `b3` alone, the multiple headers, or all of them.
static FIELDS: LazyLock<[String; 5]> = LazyLock::new(|| {
    [
        SINGLE_HEADER,
        TRACE_ID_HEADER,
        SPAN_ID_HEADER,
        SAMPLED_HEADER,
        FLAGS_HEADER,
    ]
    .map(String::from)
});

const SAMPLED_BIT: u8 = 0x01;
const DEBUG_BIT: u8 = 0x04;
const DEBUG_SAMPLED: TraceFlags = TraceFlags::new(DEBUG_BIT | SAMPLED_BIT);

/// Which B3 encoding(s) a [`B3Propagator`] injects.
///
/// Extraction is independent of the encoding: both are always read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum B3Encoding {
    /// The `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled` and `x-b3-flags`
    /// headers (`OTEL_PROPAGATORS=b3multi`).
    MultipleHeader,
    /// The single `b3` header (`OTEL_PROPAGATORS=b3`). This is the default, as
    /// the OpenTelemetry specification requires of a B3 propagator (upstream's
    /// `opentelemetry-zipkin` defaulted to the multiple headers).
    #[default]
    SingleHeader,
    /// Both the `b3` header and the multiple headers.
    SingleAndMultiHeader,
}

impl B3Encoding {
    const fn injects_single(self) -> bool {
        matches!(self, Self::SingleHeader | Self::SingleAndMultiHeader)
    }

    const fn injects_multiple(self) -> bool {
        matches!(self, Self::MultipleHeader | Self::SingleAndMultiHeader)
    }
}

/// Extracts and injects [`SpanContext`]s using the [B3] headers.
///
/// See the [module documentation](self) for the formats, the validation rules
/// and how sampling and debug are mapped onto OpenTelemetry.
///
/// [B3]: https://github.com/openzipkin/b3-propagation
#[derive(Clone, Debug, Default)]
pub struct B3Propagator {
    encoding: B3Encoding,
}

impl B3Propagator {
    /// The trace-flag bit (`0x04`) that marks a B3 debug trace.
    ///
    /// Extraction sets it, together with [`TraceFlags::SAMPLED`], for `b3: …-d`
    /// and `x-b3-flags: 1`. Injection emits debug when both bits are set. It
    /// is the same bit the sibling `jaeger` module uses for Jaeger's debug
    /// flag, so debug survives a change of propagation format.
    pub const TRACE_FLAG_DEBUG: TraceFlags = TraceFlags::new(DEBUG_BIT);

    /// Creates a propagator that injects the single `b3` header (the
    /// specification's default).
    #[must_use]
    pub const fn new() -> Self {
        Self::with_encoding(B3Encoding::SingleHeader)
    }

    /// Creates a propagator that injects `encoding`.
    #[must_use]
    pub const fn with_encoding(encoding: B3Encoding) -> Self {
        Self { encoding }
    }

    /// Returns the encoding this propagator injects.
    #[must_use]
    pub const fn encoding(&self) -> B3Encoding {
        self.encoding
    }
}

impl TextMapPropagator for B3Propagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let span_context = span.span_context();
        if !span_context.is_valid() {
            return;
        }

        let sampling = SamplingState::of(span_context.trace_flags());
        let trace_id = span_context.trace_id().to_bytes();
        let span_id = span_context.span_id().to_bytes();
        let single = self.encoding.injects_single();
        let multiple = self.encoding.injects_multiple();
        injector.reserve(usize::from(single) + if multiple { 3 } else { 0 });

        if single {
            // {32 hex}-{16 hex}-{state}
            let mut value = String::with_capacity(32 + 1 + 16 + 2);
            push_hex(&mut value, &trace_id);
            value.push('-');
            push_hex(&mut value, &span_id);
            value.push('-');
            value.push(match sampling {
                SamplingState::Deny => '0',
                SamplingState::Accept => '1',
                SamplingState::Debug => 'd',
            });
            injector.set(SINGLE_HEADER, value);
        }

        if multiple {
            injector.set(TRACE_ID_HEADER, hex_string(&trace_id));
            injector.set(SPAN_ID_HEADER, hex_string(&span_id));
            // Debug implies an accept decision: never send both headers.
            let (header, value) = match sampling {
                SamplingState::Deny => (SAMPLED_HEADER, "0"),
                SamplingState::Accept => (SAMPLED_HEADER, "1"),
                SamplingState::Debug => (FLAGS_HEADER, "1"),
            };
            injector.set(header, value.to_owned());
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        let span_context = extractor
            .get(SINGLE_HEADER)
            .and_then(extract_single_header)
            .or_else(|| extract_multiple_headers(extractor));

        match span_context {
            Some(span_context) => cx.with_remote_span_context(span_context),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        let fields = &*FIELDS;
        FieldIter::new(match self.encoding {
            B3Encoding::SingleHeader => &fields[..1],
            B3Encoding::MultipleHeader => &fields[1..],
            B3Encoding::SingleAndMultiHeader => &fields[..],
        })
    }
}

/// The B3 sampling state to inject for a span context.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SamplingState {
    Deny,
    Accept,
    Debug,
}

impl SamplingState {
    fn of(flags: TraceFlags) -> Self {
        if !flags.is_sampled() {
            Self::Deny
        } else if flags & B3Propagator::TRACE_FLAG_DEBUG == B3Propagator::TRACE_FLAG_DEBUG {
            Self::Debug
        } else {
            Self::Accept
        }
    }
}

/// Parses `b3: {trace-id}-{span-id}[-{sampling-state}[-{parent-span-id}]]`.
///
/// Returns `None` for a malformed value and for the sampling-only form, which
/// carries no span context.
fn extract_single_header(value: &str) -> Option<SpanContext> {
    let mut fields = value.split('-');
    // A sampling-only value (`0`, `1` or `d`) is not a trace id either.
    let trace_id = parse_trace_id(fields.next()?)?;
    let span_id = parse_span_id(fields.next()?)?;
    let flags = match fields.next() {
        // Deferred: see the module documentation.
        None => TraceFlags::NOT_SAMPLED,
        Some("0") => TraceFlags::NOT_SAMPLED,
        Some("1") => TraceFlags::SAMPLED,
        Some("d") => DEBUG_SAMPLED,
        Some(_) => return None,
    };
    if fields
        .next()
        .is_some_and(|parent_span_id| !is_parent_span_id(parent_span_id))
    {
        return None;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(remote_span_context(trace_id, span_id, flags))
}

/// Parses the `x-b3-*` headers. Returns `None` when any of them is malformed.
fn extract_multiple_headers(extractor: &dyn Extractor) -> Option<SpanContext> {
    let trace_id = parse_trace_id(extractor.get(TRACE_ID_HEADER)?)?;
    let span_id = parse_span_id(extractor.get(SPAN_ID_HEADER)?)?;
    if extractor
        .get(PARENT_SPAN_ID_HEADER)
        .is_some_and(|parent_span_id| !is_parent_span_id(parent_span_id))
    {
        return None;
    }
    // Only `1` is defined for x-b3-flags; any other value is ignored. Debug
    // implies accept, so x-b3-sampled is not consulted.
    let flags = if extractor.get(FLAGS_HEADER) == Some("1") {
        DEBUG_SAMPLED
    } else {
        match extractor.get(SAMPLED_HEADER) {
            // Deferred: see the module documentation.
            None => TraceFlags::NOT_SAMPLED,
            Some("0" | "false") => TraceFlags::NOT_SAMPLED,
            Some("1" | "true") => TraceFlags::SAMPLED,
            Some(_) => return None,
        }
    };
    Some(remote_span_context(trace_id, span_id, flags))
}

fn remote_span_context(trace_id: TraceId, span_id: SpanId, flags: TraceFlags) -> SpanContext {
    SpanContext::new(trace_id, span_id, flags, true, TraceState::NONE)
}

/// Parses a non-zero trace id of 16 or 32 lower-case hex characters.
fn parse_trace_id(hex: &str) -> Option<TraceId> {
    if hex.len() != 16 && hex.len() != 32 {
        return None;
    }
    let id = parse_lower_hex(hex)?;
    (id != 0).then(|| TraceId::from(id))
}

/// Parses a non-zero span id of exactly 16 lower-case hex characters.
fn parse_span_id(hex: &str) -> Option<SpanId> {
    if hex.len() != 16 {
        return None;
    }
    let id = u64::try_from(parse_lower_hex(hex)?).ok()?;
    (id != 0).then(|| SpanId::from(id))
}

/// Whether `hex` has the shape of a parent span id: 16 lower-case hex
/// characters. Its value is not used.
fn is_parent_span_id(hex: &str) -> bool {
    hex.len() == 16 && hex.bytes().all(|b| lower_hex_digit(b).is_some())
}

/// Parses at most 32 lower-case hex characters; the caller checks the length.
fn parse_lower_hex(hex: &str) -> Option<u128> {
    debug_assert!(hex.len() <= 32);
    hex.bytes().try_fold(0u128, |id, b| {
        Some((id << 4) | u128::from(lower_hex_digit(b)?))
    })
}

const fn lower_hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_string(bytes: &[u8]) -> String {
    let mut buf = String::with_capacity(bytes.len() * 2);
    push_hex(&mut buf, bytes);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const TRACE_ID_U128: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
    const TRACE_ID_64: &str = "a3ce929d0e0e4736";
    const TRACE_ID_64_U128: u128 = 0xa3ce_929d_0e0e_4736;
    const SPAN_ID: &str = "00f067aa0ba902b7";
    const SPAN_ID_U64: u64 = 0x00f0_67aa_0ba9_02b7;
    const PARENT_ID: &str = "00000000000000cd";

    const NOT_SAMPLED: TraceFlags = TraceFlags::NOT_SAMPLED;
    const SAMPLED: TraceFlags = TraceFlags::SAMPLED;
    const DEBUG: TraceFlags = TraceFlags::new(0x05);

    const ENCODINGS: [B3Encoding; 3] = [
        B3Encoding::MultipleHeader,
        B3Encoding::SingleHeader,
        B3Encoding::SingleAndMultiHeader,
    ];

    #[derive(Debug, PartialEq)]
    struct Marker(u32);

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

    /// The span context extraction puts into an empty context, if any.
    fn extract(propagator: &B3Propagator, headers: &[(&str, &str)]) -> Option<SpanContext> {
        let cx = propagator.extract_with_context(&Context::new(), &carrier(headers));
        cx.has_active_span()
            .then(|| cx.span().span_context().clone())
    }

    fn extract_all_encodings(headers: &[(&str, &str)]) -> Option<SpanContext> {
        let results =
            ENCODINGS.map(|encoding| extract(&B3Propagator::with_encoding(encoding), headers));
        assert!(
            results.iter().all(|result| *result == results[0]),
            "extraction depends on the encoding for {headers:?}: {results:?}"
        );
        results[0].clone()
    }

    fn inject(encoding: B3Encoding, span_context: SpanContext) -> HashMap<String, String> {
        let cx = Context::new().with_remote_span_context(span_context);
        let mut injector = HashMap::new();
        B3Propagator::with_encoding(encoding).inject_context(&cx, &mut injector);
        injector
    }

    /// Asserts that extracting `headers` leaves a context untouched.
    fn assert_unchanged(headers: &[(&str, &str)]) {
        let existing = remote(0xabc, 0xdef, SAMPLED);
        let cx = Context::new()
            .with_remote_span_context(existing.clone())
            .with_value(Marker(7));
        for encoding in ENCODINGS {
            let out =
                B3Propagator::with_encoding(encoding).extract_with_context(&cx, &carrier(headers));
            assert_eq!(out.span().span_context(), &existing, "{headers:?}");
            assert_eq!(out.get::<Marker>(), Some(&Marker(7)), "{headers:?}");
        }
        assert_eq!(extract_all_encodings(headers), None, "{headers:?}");
    }

    #[test]
    fn extracts_every_valid_single_header_form() {
        #[rustfmt::skip]
        let cases = [
            (format!("{TRACE_ID}-{SPAN_ID}"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}-{SPAN_ID}-0"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}-{SPAN_ID}-1"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}-{SPAN_ID}-d"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            (format!("{TRACE_ID}-{SPAN_ID}-0-{PARENT_ID}"), remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID}-{SPAN_ID}-1-{PARENT_ID}"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID}-{SPAN_ID}-d-{PARENT_ID}"), remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)),
            // The parent span id is only checked for shape.
            (format!("{TRACE_ID}-{SPAN_ID}-1-0000000000000000"), remote(TRACE_ID_U128, SPAN_ID_U64, SAMPLED)),
            // 64-bit trace ids are left-padded.
            (format!("{TRACE_ID_64}-{SPAN_ID}"), remote(TRACE_ID_64_U128, SPAN_ID_U64, NOT_SAMPLED)),
            (format!("{TRACE_ID_64}-{SPAN_ID}-1"), remote(TRACE_ID_64_U128, SPAN_ID_U64, SAMPLED)),
            (format!("{TRACE_ID_64}-{SPAN_ID}-d-{PARENT_ID}"), remote(TRACE_ID_64_U128, SPAN_ID_U64, DEBUG)),
            (format!("0000000000000000{TRACE_ID_64}-{SPAN_ID}-0"), remote(TRACE_ID_64_U128, SPAN_ID_U64, NOT_SAMPLED)),
            // Extremes.
            ("00000000000000000000000000000001-0000000000000001-1".to_owned(), remote(1, 1, SAMPLED)),
            ("0000000000000001-0000000000000001".to_owned(), remote(1, 1, NOT_SAMPLED)),
            ("ffffffffffffffffffffffffffffffff-ffffffffffffffff-1".to_owned(), remote(u128::MAX, u64::MAX, SAMPLED)),
        ];
        for (value, expected) in cases {
            assert_eq!(
                extract_all_encodings(&[("b3", &value)]),
                Some(expected),
                "b3: {value}"
            );
        }
    }

    #[test]
    fn extracts_every_valid_multiple_header_form() {
        let ids = [("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID)];
        #[rustfmt::skip]
        let cases: [(&[(&str, &str)], TraceFlags); 14] = [
            (&[], NOT_SAMPLED),
            (&[("x-b3-sampled", "1")], SAMPLED),
            (&[("x-b3-sampled", "0")], NOT_SAMPLED),
            (&[("x-b3-sampled", "true")], SAMPLED),
            (&[("x-b3-sampled", "false")], NOT_SAMPLED),
            (&[("x-b3-flags", "1")], DEBUG),
            // Debug implies accept: x-b3-sampled is not consulted.
            (&[("x-b3-flags", "1"), ("x-b3-sampled", "1")], DEBUG),
            (&[("x-b3-flags", "1"), ("x-b3-sampled", "0")], DEBUG),
            // Only `1` is defined for x-b3-flags; other values are ignored.
            (&[("x-b3-flags", "0"), ("x-b3-sampled", "1")], SAMPLED),
            (&[("x-b3-flags", "2"), ("x-b3-sampled", "0")], NOT_SAMPLED),
            (&[("x-b3-flags", "true")], NOT_SAMPLED),
            (&[("x-b3-parentspanid", PARENT_ID), ("x-b3-sampled", "1")], SAMPLED),
            (&[("x-b3-parentspanid", "0000000000000000"), ("x-b3-sampled", "1")], SAMPLED),
            (&[("x-b3-parentspanid", PARENT_ID), ("x-b3-flags", "1")], DEBUG),
        ];
        for (extra, flags) in cases {
            let headers: Vec<_> = ids.iter().chain(extra).copied().collect();
            assert_eq!(
                extract_all_encodings(&headers),
                Some(remote(TRACE_ID_U128, SPAN_ID_U64, flags)),
                "{headers:?}"
            );
        }

        let headers = [
            ("x-b3-traceid", TRACE_ID_64),
            ("x-b3-spanid", SPAN_ID),
            ("x-b3-sampled", "1"),
        ];
        assert_eq!(
            extract_all_encodings(&headers),
            Some(remote(TRACE_ID_64_U128, SPAN_ID_U64, SAMPLED))
        );
    }

    #[test]
    fn sampling_only_single_header_carries_no_span_context() {
        for value in ["0", "1", "d"] {
            assert_unchanged(&[("b3", value)]);
        }
    }

    #[test]
    fn rejects_malformed_single_headers() {
        let upper_trace = TRACE_ID.to_uppercase();
        let upper_span = SPAN_ID.to_uppercase();
        let upper_parent = "00000000000000CD";
        // Same byte length as a valid trace id, with a two-byte character.
        let unicode_trace = format!("é{}", &TRACE_ID[2..]);
        let valid = format!("{TRACE_ID}-{SPAN_ID}-1");
        #[rustfmt::skip]
        let cases = [
            String::new(),
            " ".to_owned(),
            "-".to_owned(),
            "--".to_owned(),
            "---".to_owned(),
            "0-".to_owned(),
            "-0".to_owned(),
            "00".to_owned(),
            "2".to_owned(),
            "D".to_owned(),
            "true".to_owned(),
            "🙂".to_owned(),
            // Missing, empty and extra fields.
            TRACE_ID.to_owned(),
            format!("{TRACE_ID}-"),
            format!("-{SPAN_ID}"),
            format!("{TRACE_ID}--1"),
            format!("{TRACE_ID}-{SPAN_ID}-"),
            format!("{TRACE_ID}-{SPAN_ID}--{PARENT_ID}"),
            format!("{TRACE_ID}-{SPAN_ID}-1-"),
            format!("{TRACE_ID}-{SPAN_ID}-1-{PARENT_ID}-"),
            format!("{TRACE_ID}-{SPAN_ID}-1-{PARENT_ID}-1"),
            // Sampling states of the multiple-header form or of nothing.
            format!("{TRACE_ID}-{SPAN_ID}-true"),
            format!("{TRACE_ID}-{SPAN_ID}-false"),
            format!("{TRACE_ID}-{SPAN_ID}-2"),
            format!("{TRACE_ID}-{SPAN_ID}-D"),
            format!("{TRACE_ID}-{SPAN_ID}-01"),
            format!("{TRACE_ID}-{SPAN_ID}-x"),
            // Lengths.
            format!("{}-{SPAN_ID}-1", &TRACE_ID[1..]),
            format!("0{TRACE_ID}-{SPAN_ID}-1"),
            format!("{}-{SPAN_ID}-1", &TRACE_ID[..31]),
            format!("{}-{SPAN_ID}-1", &TRACE_ID[..17]),
            format!("{}-{SPAN_ID}-1", &TRACE_ID[..15]),
            format!("{TRACE_ID}-{}-1", &SPAN_ID[1..]),
            format!("{TRACE_ID}-0{SPAN_ID}-1"),
            format!("{TRACE_ID}-{TRACE_ID}-1"),
            format!("{TRACE_ID}-{SPAN_ID}-1-{}", &PARENT_ID[1..]),
            format!("{TRACE_ID}-{SPAN_ID}-1-0{PARENT_ID}"),
            format!("{SPAN_ID}-{TRACE_ID}-1"),
            // All-zero ids.
            format!("{}-{SPAN_ID}-1", "0".repeat(32)),
            format!("{}-{SPAN_ID}-1", "0".repeat(16)),
            format!("{TRACE_ID}-{}-1", "0".repeat(16)),
            // Not lower-case hex.
            format!("{upper_trace}-{SPAN_ID}-1"),
            format!("{TRACE_ID}-{upper_span}-1"),
            format!("{TRACE_ID}-{SPAN_ID}-1-{upper_parent}"),
            format!("4Bf92f3577b34da6a3ce929d0e0e4736-{SPAN_ID}-1"),
            format!("{}g-{SPAN_ID}-1", &TRACE_ID[..31]),
            format!("{TRACE_ID}-{}z-1", &SPAN_ID[..15]),
            format!("{TRACE_ID}-{SPAN_ID}-1-{}x", &PARENT_ID[..15]),
            format!("+{}-{SPAN_ID}-1", &TRACE_ID[1..]),
            format!("{TRACE_ID}-+{}-1", &SPAN_ID[1..]),
            format!("0x{}-{SPAN_ID}-1", &TRACE_ID[2..]),
            format!("{unicode_trace}-{SPAN_ID}-1"),
            // Whitespace and other separators.
            format!(" {valid}"),
            format!("{valid} "),
            format!("{valid}\t"),
            format!("{TRACE_ID} -{SPAN_ID}-1"),
            format!("{TRACE_ID}- {SPAN_ID}-1"),
            format!("{TRACE_ID}-{SPAN_ID}- 1"),
            format!("{TRACE_ID}_{SPAN_ID}-1"),
            format!("{TRACE_ID}:{SPAN_ID}:1"),
            format!("{TRACE_ID}-{SPAN_ID}-1,{TRACE_ID}-{SPAN_ID}-1"),
        ];
        for value in &cases {
            assert_unchanged(&[("b3", value)]);
        }
    }

    #[test]
    fn rejects_malformed_multiple_headers() {
        let upper_trace = TRACE_ID.to_uppercase();
        let upper_span = SPAN_ID.to_uppercase();
        let zero_trace = "0".repeat(32);
        let zero_trace_64 = "0".repeat(16);
        let zero_span = "0".repeat(16);
        let padded_trace = format!(" {TRACE_ID}");
        let padded_span = format!("{SPAN_ID} ");
        let unicode_span = format!("é{}", &SPAN_ID[2..]);
        let plus_span = format!("+{}", &SPAN_ID[1..]);
        #[rustfmt::skip]
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("x-b3-sampled", "1")],
            vec![("x-b3-flags", "1")],
            vec![("x-b3-traceid", TRACE_ID)],
            vec![("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-sampled", "1")],
            vec![("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "1"), ("x-b3-parentspanid", PARENT_ID)],
            vec![("x-b3-traceid", ""), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", "")],
            vec![("x-b3-traceid", &TRACE_ID[1..]), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", &TRACE_ID[..17]), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", &TRACE_ID[..15]), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", &SPAN_ID[1..])],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", TRACE_ID)],
            vec![("x-b3-traceid", &zero_trace), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", &zero_trace_64), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", &zero_span)],
            vec![("x-b3-traceid", &upper_trace), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", &upper_span)],
            vec![("x-b3-traceid", &padded_trace), ("x-b3-spanid", SPAN_ID)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", &padded_span)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", &unicode_span)],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", &plus_span)],
            vec![("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4hhh"), ("x-b3-spanid", SPAN_ID)],
            // Sampling states that are not 1, 0, true or false.
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "d")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "2")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "01")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", " 1")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "True")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "FALSE")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-sampled", "yes")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-flags", "0"), ("x-b3-sampled", "d")],
            // A present parent span id must have the right shape.
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-parentspanid", "")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-parentspanid", "cd")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-parentspanid", "00000000000000CD")],
            vec![("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID), ("x-b3-parentspanid", TRACE_ID)],
        ];
        for headers in &cases {
            assert_unchanged(headers);
        }
    }

    #[test]
    fn single_header_takes_precedence_over_multiple_headers() {
        let multiple = [
            ("x-b3-traceid", TRACE_ID_64),
            ("x-b3-spanid", PARENT_ID),
            ("x-b3-sampled", "1"),
        ];
        let from_multiple = remote(TRACE_ID_64_U128, 0xcd, SAMPLED);
        let single = format!("{TRACE_ID}-{SPAN_ID}-0");
        let from_single = remote(TRACE_ID_U128, SPAN_ID_U64, NOT_SAMPLED);

        let mut headers = vec![("b3", single.as_str())];
        headers.extend(multiple);
        assert_eq!(extract_all_encodings(&headers), Some(from_single.clone()));

        // Malformed multiple headers do not matter when the single one is valid.
        let headers = [
            ("b3", single.as_str()),
            ("x-b3-traceid", "0"),
            ("x-b3-sampled", "x"),
        ];
        assert_eq!(extract_all_encodings(&headers), Some(from_single));

        // A single header without a span context falls back to the multiple ones.
        for single in ["", "0", "1", "d", "-", "garbage", TRACE_ID] {
            let mut headers = vec![("b3", single)];
            headers.extend(multiple);
            assert_eq!(
                extract_all_encodings(&headers),
                Some(from_multiple.clone()),
                "b3: {single}"
            );
        }
    }

    #[test]
    fn extraction_replaces_the_span_and_keeps_the_rest_of_the_context() {
        let cx = Context::new()
            .with_remote_span_context(remote(0xabc, 0xdef, SAMPLED))
            .with_value(Marker(7));
        let value = format!("{TRACE_ID}-{SPAN_ID}-d");
        let out = B3Propagator::new().extract_with_context(&cx, &carrier(&[("b3", &value)]));
        assert_eq!(
            out.span().span_context(),
            &remote(TRACE_ID_U128, SPAN_ID_U64, DEBUG)
        );
        assert_eq!(out.get::<Marker>(), Some(&Marker(7)));
    }

    #[test]
    fn injects_exact_headers() {
        let span_context = |flags| remote(TRACE_ID_U128, SPAN_ID_U64, flags);
        #[rustfmt::skip]
        let cases = [
            (NOT_SAMPLED, "0", [("x-b3-sampled", "0")]),
            (SAMPLED, "1", [("x-b3-sampled", "1")]),
            (DEBUG, "d", [("x-b3-flags", "1")]),
            // Debug without sampled is not debug.
            (B3Propagator::TRACE_FLAG_DEBUG, "0", [("x-b3-sampled", "0")]),
            // Bits other than sampled and debug are ignored.
            (TraceFlags::new(0x03), "1", [("x-b3-sampled", "1")]),
            (TraceFlags::new(0x02), "0", [("x-b3-sampled", "0")]),
            (TraceFlags::new(0xff), "d", [("x-b3-flags", "1")]),
        ];
        for (flags, state, sampling_header) in cases {
            let single = format!("{TRACE_ID}-{SPAN_ID}-{state}");
            let mut multiple = carrier(&[("x-b3-traceid", TRACE_ID), ("x-b3-spanid", SPAN_ID)]);
            multiple.extend(carrier(&sampling_header));
            let mut both = multiple.clone();
            both.insert("b3".to_owned(), single.clone());

            assert_eq!(
                inject(B3Encoding::SingleHeader, span_context(flags)),
                carrier(&[("b3", &single)]),
                "{flags:?}"
            );
            assert_eq!(
                inject(B3Encoding::MultipleHeader, span_context(flags)),
                multiple,
                "{flags:?}"
            );
            assert_eq!(
                inject(B3Encoding::SingleAndMultiHeader, span_context(flags)),
                both,
                "{flags:?}"
            );
        }
    }

    #[test]
    fn injects_64_bit_trace_ids_padded_to_128_bits() {
        let span_context = remote(TRACE_ID_64_U128, SPAN_ID_U64, SAMPLED);
        let padded = format!("0000000000000000{TRACE_ID_64}");
        assert_eq!(
            inject(B3Encoding::SingleAndMultiHeader, span_context),
            carrier(&[
                ("b3", &format!("{padded}-{SPAN_ID}-1")),
                ("x-b3-traceid", &padded),
                ("x-b3-spanid", SPAN_ID),
                ("x-b3-sampled", "1"),
            ])
        );
    }

    #[test]
    fn injects_nothing_without_a_valid_span_context() {
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
        for encoding in ENCODINGS {
            let mut injector = HashMap::new();
            B3Propagator::with_encoding(encoding).inject_context(&Context::new(), &mut injector);
            assert!(injector.is_empty(), "{encoding:?}: {injector:?}");
            for span_context in &invalid {
                assert!(
                    inject(encoding, span_context.clone()).is_empty(),
                    "{encoding:?}"
                );
            }
        }
    }

    #[test]
    fn round_trips_through_every_encoding() {
        for encoding in ENCODINGS {
            for trace_id in [TRACE_ID_U128, TRACE_ID_64_U128, 1, u128::MAX] {
                for flags in [NOT_SAMPLED, SAMPLED, DEBUG] {
                    let injected = inject(encoding, remote(trace_id, SPAN_ID_U64, flags));
                    let headers: Vec<_> = injected
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.as_str()))
                        .collect();
                    assert_eq!(
                        extract_all_encodings(&headers),
                        Some(remote(trace_id, SPAN_ID_U64, flags)),
                        "{encoding:?} {injected:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn debug_survives_a_change_of_encoding() {
        let value = format!("{TRACE_ID}-{SPAN_ID}-d");
        let cx =
            B3Propagator::new().extract_with_context(&Context::new(), &carrier(&[("b3", &value)]));
        let mut injector = HashMap::new();
        B3Propagator::with_encoding(B3Encoding::MultipleHeader).inject_context(&cx, &mut injector);
        assert_eq!(
            injector,
            carrier(&[
                ("x-b3-traceid", TRACE_ID),
                ("x-b3-spanid", SPAN_ID),
                ("x-b3-flags", "1")
            ])
        );

        let cx = B3Propagator::new().extract_with_context(&Context::new(), &injector);
        let mut injector = HashMap::new();
        B3Propagator::with_encoding(B3Encoding::SingleHeader).inject_context(&cx, &mut injector);
        assert_eq!(injector, carrier(&[("b3", &value)]));
    }

    #[test]
    fn deferred_is_injected_as_not_sampled() {
        let value = format!("{TRACE_ID}-{SPAN_ID}");
        let cx =
            B3Propagator::new().extract_with_context(&Context::new(), &carrier(&[("b3", &value)]));
        let mut injector = HashMap::new();
        B3Propagator::with_encoding(B3Encoding::SingleHeader).inject_context(&cx, &mut injector);
        assert_eq!(injector, carrier(&[("b3", &format!("{value}-0"))]));
    }

    #[test]
    fn fields_match_the_injected_headers() {
        let fields = |encoding| {
            B3Propagator::with_encoding(encoding)
                .fields()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(B3Encoding::SingleHeader), ["b3"]);
        assert_eq!(
            fields(B3Encoding::MultipleHeader),
            ["x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"]
        );
        assert_eq!(
            fields(B3Encoding::SingleAndMultiHeader),
            [
                "b3",
                "x-b3-traceid",
                "x-b3-spanid",
                "x-b3-sampled",
                "x-b3-flags"
            ]
        );
    }

    #[test]
    fn defaults_to_the_single_header() {
        assert_eq!(B3Encoding::default(), B3Encoding::SingleHeader);
        assert_eq!(B3Propagator::new().encoding(), B3Encoding::SingleHeader);
        assert_eq!(B3Propagator::default().encoding(), B3Encoding::SingleHeader);
        for encoding in ENCODINGS {
            assert_eq!(B3Propagator::with_encoding(encoding).encoding(), encoding);
        }
    }

    #[test]
    fn debug_bit_is_shared_with_the_jaeger_propagator() {
        // The Jaeger propagator uses the same bit; both must change together.
        assert_eq!(B3Propagator::TRACE_FLAG_DEBUG, TraceFlags::new(0x04));
        assert_eq!(
            DEBUG_SAMPLED,
            B3Propagator::TRACE_FLAG_DEBUG | TraceFlags::SAMPLED
        );
    }

    /// Extraction yields either nothing or a valid remote span context.
    fn check_extraction(headers: &[(&str, &str)]) -> Result<Option<SpanContext>, TestCaseError> {
        let extracted = extract_all_encodings(headers);
        if let Some(span_context) = &extracted {
            prop_assert!(span_context.is_valid());
            prop_assert!(span_context.is_remote());
        }
        Ok(extracted)
    }

    /// Arbitrary strings, biased towards near-valid B3 values.
    fn header_value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[0-9a-f]{16}|[0-9a-f]{32}",
            "[0-9a-fA-F+ ]{15,33}",
            "0|1|d|true|false|",
        ]
    }

    /// Fields that make up valid and near-valid single headers.
    fn single_header_field() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{16}|[0-9a-f]{32}",
            "[0-9a-fA-F]{15,17}|[0-9a-fA-F]{31,33}",
            "0{16}|0{32}",
            "[01dD]|true|",
            "[0-9a-f+ x]{0,3}",
        ]
    }

    /// A straightforward reading of the specification, for comparison.
    fn single_header_oracle(value: &str) -> Option<SpanContext> {
        let is_lower_hex = |s: &str| s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let fields: Vec<&str> = value.split('-').collect();
        if !(2..=4).contains(&fields.len()) {
            return None;
        }
        let (trace_id, span_id) = (fields[0], fields[1]);
        if !matches!(trace_id.len(), 16 | 32) || !is_lower_hex(trace_id) {
            return None;
        }
        if span_id.len() != 16 || !is_lower_hex(span_id) {
            return None;
        }
        let flags = match fields.get(2) {
            None | Some(&"0") => NOT_SAMPLED,
            Some(&"1") => SAMPLED,
            Some(&"d") => DEBUG,
            Some(_) => return None,
        };
        if fields
            .get(3)
            .is_some_and(|parent| parent.len() != 16 || !is_lower_hex(parent))
        {
            return None;
        }
        let trace_id = u128::from_str_radix(trace_id, 16).ok()?;
        let span_id = u64::from_str_radix(span_id, 16).ok()?;
        (trace_id != 0 && span_id != 0).then(|| remote(trace_id, span_id, flags))
    }

    proptest! {
        #[test]
        fn single_header_never_panics(value in any::<String>()) {
            check_extraction(&[("b3", &value)])?;
        }

        #[test]
        fn single_header_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..96)) {
            let value = String::from_utf8_lossy(&bytes);
            check_extraction(&[("b3", &value)])?;
        }

        #[test]
        fn near_valid_single_headers_match_the_specification(
            fields in prop::collection::vec(single_header_field(), 0..6),
        ) {
            let value = fields.join("-");
            prop_assert_eq!(check_extraction(&[("b3", &value)])?, single_header_oracle(&value));
        }

        #[test]
        fn multiple_headers_never_panic(
            trace_id in proptest::option::of(header_value()),
            span_id in proptest::option::of(header_value()),
            parent_span_id in proptest::option::of(header_value()),
            sampled in proptest::option::of(header_value()),
            flags in proptest::option::of(header_value()),
        ) {
            let headers: Vec<_> = [
                ("x-b3-traceid", &trace_id),
                ("x-b3-spanid", &span_id),
                ("x-b3-parentspanid", &parent_span_id),
                ("x-b3-sampled", &sampled),
                ("x-b3-flags", &flags),
            ]
            .into_iter()
            .filter_map(|(name, value)| Some((name, value.as_deref()?)))
            .collect();
            check_extraction(&headers)?;
        }

        #[test]
        fn lower_hex_ids_parse_like_std(
            trace_id in "[0-9a-f]{16}|[0-9a-f]{32}",
            span_id in "[0-9a-f]{16}",
        ) {
            let trace = u128::from_str_radix(&trace_id, 16).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let span = u64::from_str_radix(&span_id, 16).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected = (trace != 0 && span != 0).then(|| remote(trace, span, SAMPLED));
            let value = format!("{trace_id}-{span_id}-1");
            prop_assert_eq!(check_extraction(&[("b3", &value)])?, expected.clone());
            let headers = [("x-b3-traceid", trace_id.as_str()), ("x-b3-spanid", &span_id), ("x-b3-sampled", "1")];
            prop_assert_eq!(check_extraction(&headers)?, expected);
        }

        #[test]
        fn arbitrary_span_contexts_round_trip(
            trace_id in 1..=u128::MAX,
            span_id in 1..=u64::MAX,
            flags in prop::sample::select(vec![NOT_SAMPLED, SAMPLED, DEBUG]),
            encoding in prop::sample::select(ENCODINGS.to_vec()),
        ) {
            let injected = inject(encoding, remote(trace_id, span_id, flags));
            let headers: Vec<_> = injected.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(check_extraction(&headers)?, Some(remote(trace_id, span_id, flags)));
        }
    }
}
