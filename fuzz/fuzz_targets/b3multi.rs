//! The B3 multiple headers (`x-b3-traceid`, `x-b3-spanid`, `x-b3-parentspanid`,
//! `x-b3-sampled`, `x-b3-flags`), each any number of times, with any bytes HTTP allows, and
//! the single `b3` header alongside (which takes precedence when it is valid).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::trace::TraceContextExt;
use tonic_tower_trace_fuzz::{append, check_round_trip, check_span_context, extract};
use tracing_core_lite::propagation::{B3Encoding, B3Propagator};

const NAMES: [&[u8]; 6] = [
    b"x-b3-traceid",
    b"x-b3-spanid",
    b"x-b3-parentspanid",
    b"x-b3-sampled",
    b"x-b3-flags",
    b"b3",
];

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// `(which header, value)`.
    headers: Vec<(u8, &'a [u8])>,
}

fuzz_target!(|input: Input<'_>| {
    let mut headers = http::HeaderMap::new();
    for (which, value) in &input.headers {
        append(
            &mut headers,
            NAMES[usize::from(*which) % NAMES.len()],
            value,
        );
    }
    for encoding in [B3Encoding::MultipleHeader, B3Encoding::SingleHeader] {
        let propagator = B3Propagator::with_encoding(encoding);
        let cx = extract(&propagator, &headers);
        check_span_context(cx.span().span_context());
        check_round_trip(&propagator, &cx);
    }
});
