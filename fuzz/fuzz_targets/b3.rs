//! The B3 single header (`b3`), any number of times, any bytes HTTP allows.

#![no_main]

use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::TraceContextExt;
use tonic_tower_trace_fuzz::{append, check_round_trip, check_span_context, extract};
use tracing_core_lite::propagation::{B3Encoding, B3Propagator};

fuzz_target!(|values: Vec<&[u8]>| {
    let mut headers = http::HeaderMap::new();
    for value in &values {
        append(&mut headers, b"b3", value);
    }
    for encoding in [
        B3Encoding::SingleHeader,
        B3Encoding::MultipleHeader,
        B3Encoding::SingleAndMultiHeader,
    ] {
        let propagator = B3Propagator::with_encoding(encoding);
        let cx = extract(&propagator, &headers);
        check_span_context(cx.span().span_context());
        check_round_trip(&propagator, &cx);
    }
});
