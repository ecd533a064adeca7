//! The composite that `OTEL_PROPAGATORS` configures, over every header of every format at
//! once: the span context comes from the first configured format that yields a valid one,
//! whatever the others carry, and baggage stays within its limits.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::TraceContextExt;
use tonic_tower_trace_fuzz::{append, check_baggage, check_span_context, extract};
use tracing_core_lite::Propagators;
use tracing_core_lite::propagation::Format;

const NAMES: [&[u8]; 12] = [
    b"traceparent",
    b"tracestate",
    b"baggage",
    b"b3",
    b"x-b3-traceid",
    b"x-b3-spanid",
    b"x-b3-sampled",
    b"x-b3-flags",
    b"uber-trace-id",
    b"uberctx-a",
    b"uberctx-b",
    b"other",
];

const FORMATS: [Format; 5] = [
    Format::TraceContext,
    Format::Baggage,
    Format::B3,
    Format::B3Multi,
    Format::Jaeger,
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// The configured formats, in priority order (indexes into `FORMATS`).
    formats: Vec<u8>,
    /// `(which header, value)`.
    headers: Vec<(u8, &'a [u8])>,
}

fuzz_target!(|input: Input<'_>| {
    let formats: Vec<Format> = input
        .formats
        .iter()
        .map(|i| FORMATS[usize::from(*i) % FORMATS.len()])
        .collect();
    let mut headers = http::HeaderMap::new();
    for (which, value) in &input.headers {
        append(
            &mut headers,
            NAMES[usize::from(*which) % NAMES.len()],
            value,
        );
    }
    let propagators = Propagators::new(formats.iter().copied());
    let cx = extract(&propagators, &headers);
    let span = cx.span();
    let sc = span.span_context();
    check_span_context(sc);
    check_baggage(&cx);
    // The header-map fast path agrees with the `TextMapPropagator` interface.
    let fast = propagators.extract_headers(&headers);
    assert_eq!(fast.span().span_context(), sc);
    let entries = |cx: &opentelemetry::Context| {
        let mut entries: Vec<(String, String)> = cx
            .baggage()
            .iter()
            .map(|(k, (v, _))| (k.to_string(), v.to_string()))
            .collect();
        entries.sort();
        entries
    };
    assert_eq!(entries(&fast), entries(&cx));
    // The first format that yields a valid span context on its own decides.
    let first = formats.iter().find_map(|f| {
        let alone = extract(&Propagators::new([*f]), &headers);
        let sc = alone.span().span_context().clone();
        sc.is_valid().then_some(sc)
    });
    match first {
        Some(first) => assert_eq!(&first, sc),
        None => assert!(!sc.is_valid(), "{sc:?}"),
    }
});
