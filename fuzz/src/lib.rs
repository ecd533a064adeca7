//! What the fuzz targets share: carriers built from fuzzer bytes the way a server would receive
//! them, and the invariants every extractor must keep whatever it is given.
//!
//! A target panics (and libFuzzer saves the input) when an extractor panics, or when one of
//! these checks fails.

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt};
use tracing_core_lite::propagation::{HeaderExtractor, HeaderInjector};

/// The most entries an extracted baggage may hold (W3C Baggage; `Baggage` enforces it).
pub const MAX_BAGGAGE_ENTRIES: usize = 64;

/// The most bytes of keys and values an extracted baggage may hold (idem).
pub const MAX_BAGGAGE_BYTES: usize = 8192;

/// The trace-flag bits the propagators may set: sampled, and the B3/Jaeger debug bit.
const KNOWN_FLAGS: u8 = 0x01 | 0x04;

/// Appends `name: value` when HTTP allows them; hyper never hands a server anything else.
pub fn append(headers: &mut HeaderMap, name: &[u8], value: &[u8]) {
    if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
        headers.append(name, value);
    }
}

/// Extracts a context from `headers` as the server layers do.
pub fn extract(propagator: &dyn TextMapPropagator, headers: &HeaderMap) -> Context {
    propagator.extract(&HeaderExtractor(headers))
}

/// An extracted span context is either invalid (the request starts a new trace) or a valid,
/// remote one that carries only the flags the propagators define.
pub fn check_span_context(sc: &SpanContext) {
    if sc.is_valid() {
        assert!(
            sc.is_remote(),
            "an extracted span context is remote: {sc:?}"
        );
        assert_eq!(
            sc.trace_flags().to_u8() & !KNOWN_FLAGS,
            0,
            "unknown trace flags: {sc:?}"
        );
    }
}

/// What `propagator` extracted, injected and extracted again, is the same span context.
pub fn check_round_trip(propagator: &dyn TextMapPropagator, cx: &Context) {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return;
    }
    let mut headers = HeaderMap::new();
    propagator.inject_context(cx, &mut HeaderInjector(&mut headers));
    let again = extract(propagator, &headers);
    assert_eq!(
        again.span().span_context(),
        sc,
        "round trip through {headers:?}"
    );
}

/// An extracted baggage stays within the W3C limits, whatever arrived.
pub fn check_baggage(cx: &Context) {
    let baggage = cx.baggage();
    assert!(
        baggage.len() <= MAX_BAGGAGE_ENTRIES,
        "{} baggage entries",
        baggage.len()
    );
    let bytes: usize = baggage
        .iter()
        .map(|(k, (v, _))| k.as_str().len() + v.as_str().len())
        .sum();
    assert!(bytes <= MAX_BAGGAGE_BYTES, "{bytes} bytes of baggage");
}
