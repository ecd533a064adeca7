//! The OTLP/HTTP exporter's work per span, side by side in one run: `opentelemetry-otlp`'s
//! HTTP exporter (the SDK's spans converted to `opentelemetry-proto` structs, then encoded by
//! `prost`) against our `OtlpHttpExporter` (the request written straight from the spans).
//!
//! `cargo bench -p benches --bench export` (see `BENCHMARKS.md`). Each iteration exports one
//! batch of 512 HTTP server spans (12 attributes each, as our recipe records them) to an HTTP
//! client that answers `200` at once: what remains is the exporter's own work on the export
//! thread (building the body and the request, reading the response, freeing the spans).
//! `clone_and_drop` is the batch's copy made for each iteration and freed, which both
//! exporters also do (the copy is made outside the timing); allocations per span are counted
//! over one export and printed.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use benches::{Allocs, CountingAllocator, set_counting};
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use http::{Request, Response};
use opentelemetry::KeyValue;
use opentelemetry_http::{HttpClient, HttpError};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use tracing_core_lite::export::OtlpHttpExporter;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const BATCH: usize = 512;

/// Answers every request with an empty `200`, counting the body bytes it was given.
#[derive(Clone, Debug, Default)]
struct Answers200 {
    bytes: Arc<AtomicU64>,
}

impl HttpClient for Answers200 {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> Pin<Box<dyn Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        self.bytes
            .fetch_add(request.body().len() as u64, Ordering::Relaxed);
        Box::pin(async { Ok(Response::new(Bytes::new())) })
    }
}

const ENDPOINT: &str = "http://127.0.0.1:4318/v1/traces";

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("bench")
        .with_attributes([KeyValue::new("service.instance.id", "b2f5-0001")])
        .build()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let batch: Vec<SpanData> = (0..BATCH).map(|_| common::http_server_span()).collect();

    let theirs_client = Answers200::default();
    let mut theirs = {
        let _entered = rt.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(theirs_client.clone())
            .with_endpoint(ENDPOINT)
            .build()
            .expect("opentelemetry-otlp exporter")
    };
    theirs.set_resource(&resource());
    let ours_client = Answers200::default();
    let mut ours = OtlpHttpExporter::builder(ENDPOINT)
        .with_http_client(ours_client.clone())
        .build()
        .expect("our exporter");
    ours.set_resource(&resource());

    // The same request body from both.
    rt.block_on(theirs.export(batch.clone())).expect("export");
    rt.block_on(ours.export(batch.clone())).expect("export");
    let (a, b) = (
        theirs_client.bytes.load(Ordering::Relaxed),
        ours_client.bytes.load(Ordering::Relaxed),
    );
    assert_eq!(a, b, "both bodies have the same length");
    println!(
        "request body: {b} bytes per batch of {BATCH} ({} per span)",
        b / BATCH as u64
    );

    // Allocations per span, one export each.
    for (name, export) in [
        (
            "opentelemetry_otlp",
            &(|b| rt.block_on(theirs.export(b)).expect("export")) as &dyn Fn(Vec<SpanData>),
        ),
        ("ours", &|b| rt.block_on(ours.export(b)).expect("export")),
    ] {
        let spans = batch.clone();
        set_counting(true);
        let before = Allocs::now();
        export(spans);
        let allocs = Allocs::since(before).all;
        set_counting(false);
        println!(
            "{name}: {allocs} allocations per batch of {BATCH} ({:.2} per span)",
            allocs as f64 / BATCH as f64
        );
    }

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("otlp_http_export");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("clone_and_drop", |bench| {
        bench.iter_batched(|| batch.clone(), drop, BatchSize::LargeInput)
    });
    group.bench_function("opentelemetry_otlp", |bench| {
        bench.iter_batched(
            || batch.clone(),
            |b| rt.block_on(theirs.export(b)),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("ours", |bench| {
        bench.iter_batched(
            || batch.clone(),
            |b| rt.block_on(ours.export(b)),
            BatchSize::LargeInput,
        )
    });
    group.finish();
    c.final_summary();
}
