//! Jaeger: `uber-trace-id` any number of times, and any number of `uberctx-{key}` baggage
//! headers, with any names and bytes HTTP allows.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::TraceContextExt;
use tonic_tower_trace_fuzz::{
    append, check_baggage, check_round_trip, check_span_context, extract,
};
use tracing_core_lite::propagation::JaegerPropagator;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    trace_id: Vec<&'a [u8]>,
    /// `(key, value)` of `uberctx-{key}: value`.
    baggage: Vec<(&'a [u8], &'a [u8])>,
}

fuzz_target!(|input: Input<'_>| {
    let mut headers = http::HeaderMap::new();
    for value in &input.trace_id {
        append(&mut headers, b"uber-trace-id", value);
    }
    for (key, value) in &input.baggage {
        let mut name = b"uberctx-".to_vec();
        name.extend_from_slice(key);
        append(&mut headers, &name, value);
    }
    let propagator = JaegerPropagator::new();
    let cx = extract(&propagator, &headers);
    check_span_context(cx.span().span_context());
    check_round_trip(&propagator, &cx);
    check_baggage(&cx);
});
