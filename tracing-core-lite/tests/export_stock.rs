//! The export thread stocks the vectors that request threads fill with a span's attributes
//! (`export::stock`): once it has exported a few spans, recording more allocates less on the
//! request thread. A test binary of its own: it counts the allocations of the thread it runs
//! on, and the stock is the process's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Uri, Version, header};
use opentelemetry::Context;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::trace::InMemorySpanExporter;
use tracing_core_lite::capture::QueryRedaction;
use tracing_core_lite::export::BatchConfig;
use tracing_core_lite::recipe::http::{ServerRequest, server_span};
use tracing_core_lite::{Parent, Pipeline, TracerSource};

/// Counts the allocations of each thread.
struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to `System` unchanged; counting touches a const-initialized
// thread-local without a destructor, which allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations on this thread while recording `n` server spans.
fn allocations_recording(source: &TracerSource, n: u64) -> u64 {
    let mut headers = HeaderMap::new();
    headers.insert(header::HOST, HeaderValue::from_static("shop.example:8080"));
    let uri = Uri::from_static("/orders/42");
    let peer: SocketAddr = "10.1.2.3:50123".parse().expect("address");
    let request = ServerRequest {
        method: &Method::GET,
        uri: &uri,
        version: Version::HTTP_11,
        headers: &headers,
        route: Some("/orders/{id}"),
        peer: Some(peer),
    };
    let redaction = QueryRedaction::default();
    let before = ALLOCATIONS.with(Cell::get);
    for _ in 0..n {
        let recipe = server_span(&request, &redaction);
        let (cx, _) = source.start_recipe(recipe, Vec::new(), Parent::context(Context::new()));
        cx.span().end();
    }
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn once_spans_were_exported_their_attribute_vectors_come_from_the_export_thread() {
    const SPANS: u64 = 64;
    let exporter = InMemorySpanExporter::default();
    let guard = Pipeline::new()
        .with_service_name("stock")
        .with_exporters([])
        .with_span_exporter(exporter.clone())
        // No export but the flush below.
        .with_batch_config(BatchConfig {
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        })
        .without_global()
        .install()
        .expect("pipeline");
    let source = guard.tracer_source();

    // The first spans of a thread allocate what it keeps (its id generator, its caches).
    allocations_recording(&source, SPANS);
    // Nothing stocked yet: each span's attributes are allocated here, and asked of the stock.
    let before = allocations_recording(&source, SPANS);
    guard.force_flush().expect("flush");
    assert_eq!(exporter.get_finished_spans().expect("spans").len(), 128);
    // The export thread has stocked as many vectors as were asked: the same spans again take
    // theirs from it. (This thread allocates its cache of them once, and the queue's vector,
    // swapped for an empty one by the export, grows again: a few allocations, not one a span.)
    let after = allocations_recording(&source, SPANS);
    assert!(
        before >= after + SPANS - 8,
        "{before} allocations for {SPANS} spans before the export, {after} after"
    );
    guard.shutdown().expect("shutdown");
}
