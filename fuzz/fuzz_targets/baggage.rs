//! W3C `baggage` (the opentelemetry SDK's propagator, which the default `OTEL_PROPAGATORS`
//! uses): any number of headers, any bytes HTTP allows, any size.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tonic_tower_trace_fuzz::{append, check_baggage, extract};
use tracing_core_lite::Propagators;
use tracing_core_lite::propagation::BaggagePropagator;

fuzz_target!(|values: Vec<&[u8]>| {
    let mut headers = http::HeaderMap::new();
    for value in &values {
        append(&mut headers, b"baggage", value);
    }
    let cx = extract(&BaggagePropagator::new(), &headers);
    check_baggage(&cx);

    // Through the composite, as the layers extract, and injected again (the SDK's encoding is
    // not idempotent for keys holding `%`, so only the limits are checked on the way back).
    let cx = extract(&Propagators::default(), &headers);
    check_baggage(&cx);
    let mut again = http::HeaderMap::new();
    Propagators::default().inject_headers(&cx, &mut again);
    check_baggage(&extract(&BaggagePropagator::new(), &again));
});
