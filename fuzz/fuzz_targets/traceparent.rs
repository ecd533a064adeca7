//! `traceparent` and `tracestate`, as a server receives them: each header any number of times,
//! any bytes HTTP allows (including obs-text that is not UTF-8).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::TraceContextExt;
use tonic_tower_trace_fuzz::{append, check_round_trip, check_span_context, extract};
use tracing_core_lite::propagation::TraceContextPropagator;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    traceparent: Vec<&'a [u8]>,
    tracestate: Vec<&'a [u8]>,
}

fuzz_target!(|input: Input<'_>| {
    let mut headers = http::HeaderMap::new();
    for value in &input.traceparent {
        append(&mut headers, b"traceparent", value);
    }
    for value in &input.tracestate {
        append(&mut headers, b"tracestate", value);
    }
    let propagator = TraceContextPropagator::new();
    let cx = extract(&propagator, &headers);
    let span = cx.span();
    let sc = span.span_context();
    check_span_context(sc);
    check_round_trip(&propagator, &cx);
    assert!(sc.trace_state().header().split(',').count() <= 32);

    // The parsers on their own agree with the propagator.
    let values: Vec<&str> = headers
        .get_all("traceparent")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if let [one] = values[..]
        && headers.get_all("traceparent").iter().count() == 1
    {
        let parsed = TraceContextPropagator::parse_traceparent(one);
        assert_eq!(parsed.is_some(), sc.is_valid(), "{one:?}");
        if let Some(parsed) = parsed {
            assert_eq!(parsed.trace_id(), sc.trace_id());
            assert_eq!(parsed.span_id(), sc.span_id());
            assert_eq!(
                TraceContextPropagator::format_traceparent(&parsed).len(),
                55
            );
        }
    }
    for line in &input.tracestate {
        if let Ok(line) = std::str::from_utf8(line)
            && let Some(state) = TraceContextPropagator::parse_tracestate([line])
        {
            // What was accepted is accepted again, unchanged.
            let header = state.header();
            let again = TraceContextPropagator::parse_tracestate([header.as_str()]);
            assert_eq!(again.map(|s| s.header()), Some(header));
        }
    }
});
