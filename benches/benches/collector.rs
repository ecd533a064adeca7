//! Request latency while the collector fails: a traced axum server on loopback, called by
//! keep-alive HTTP/1.1 clients, with its spans exported over OTLP (the default batch settings:
//! queue 2048, batches of 512, 5 s delay, 30 s export timeout) to a collector that accepts,
//! that nothing listens for, that never answers (`Behavior::Hang`), or that answers errors
//! (`Behavior::Reject`), against the same server without tracing. Prints the latency
//! percentiles, the throughput, what became of the spans (`ExportStats`), the peak heap growth
//! during the run, and how long shutdown took.
//!
//! `cargo bench -p benches --bench collector` (the numbers are in `RELIABILITY.md`).
//! Environment: `COLLECTOR_REQUESTS` (requests per mode, default 20000),
//! `COLLECTOR_CONCURRENCY` (concurrent callers, default 8), `COLLECTOR_PROTOCOL` (`http` or
//! `grpc`, the OTLP transport; default `http`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use benches::CountingAllocator;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry_sdk::trace::Sampler;
use test_support::{Behavior, OtlpReceiver};
use tracing_core_lite::pipeline::OtlpProtocol;
use tracing_core_lite::{Pipeline, PipelineGuard};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the collector does in a mode; `None`: no tracing at all.
#[derive(Clone, Copy)]
enum Collector {
    Accepting,
    NothingListening,
    Hanging,
    Rejecting,
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let requests = env_or("COLLECTOR_REQUESTS", 20_000);
    let concurrency = env_or("COLLECTOR_CONCURRENCY", 8);
    let grpc = std::env::var("COLLECTOR_PROTOCOL").is_ok_and(|p| p == "grpc");

    // The receiver runs on a thread and runtime of its own, as a collector would.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let receiver = Arc::new(OtlpReceiver::start().await.expect("OTLP receiver"));
            tx.send(Arc::clone(&receiver)).expect("send");
            // Count nothing, keep nothing: memory stays flat on the receiver's side.
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                receiver.clear();
            }
        });
    });
    let receiver = rx.recv().expect("the receiver");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    println!(
        "request latency while the collector fails: {requests} requests per mode, \
         {concurrency} keep-alive callers, OTLP over {}",
        if grpc { "gRPC" } else { "HTTP/protobuf" }
    );
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7} {:>7} {:>8} {:>9} {:>9}",
        "collector",
        "p50",
        "p99",
        "p99.9",
        "max",
        "req/s",
        "queued",
        "dropped",
        "failed",
        "exported",
        "heap peak",
        "shutdown"
    );
    let modes = [
        ("no tracing", None),
        ("accepting", Some(Collector::Accepting)),
        ("nothing listening", Some(Collector::NothingListening)),
        ("hanging", Some(Collector::Hanging)),
        ("rejecting", Some(Collector::Rejecting)),
    ];
    for (label, collector) in modes {
        let (protocol, endpoint) = match (grpc, collector) {
            (true, Some(Collector::NothingListening)) => {
                (OtlpProtocol::Grpc, format!("http://{closed}"))
            }
            (true, _) => (OtlpProtocol::Grpc, receiver.grpc_endpoint()),
            (false, Some(Collector::NothingListening)) => (
                OtlpProtocol::HttpProtobuf,
                format!("http://{closed}/v1/traces"),
            ),
            (false, _) => (OtlpProtocol::HttpProtobuf, receiver.http_traces_url()),
        };
        receiver.set_behavior(match collector {
            Some(Collector::Hanging) => Behavior::Hang,
            Some(Collector::Rejecting) => Behavior::Reject,
            _ => Behavior::Accept,
        });
        let guard = collector.map(|_| {
            Pipeline::new()
                .with_otlp(protocol, &endpoint)
                .expect("endpoint")
                .with_sampler(Sampler::AlwaysOn)
                .without_global()
                .install()
                .expect("pipeline")
        });
        benches::set_counting(true);
        let heap_before = benches::reset_peak();
        let (mut latencies, took) = rt.block_on(run(guard.as_ref(), requests, concurrency));
        let heap_peak = (benches::peak_bytes() - heap_before).max(0) as f64 / (1024.0 * 1024.0);
        benches::set_counting(false);
        latencies.sort();
        let at =
            |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
        let stats = guard
            .as_ref()
            .map(|g| {
                let s = &g.stats()[0].1;
                (s.queued(), s.dropped(), s.failed_spans(), s.exported())
            })
            .unwrap_or_default();
        let shutdown = guard.map(|g| {
            let started = Instant::now();
            let _ = g.shutdown();
            started.elapsed()
        });
        println!(
            "{:<20} {:>8} {:>8} {:>8} {:>8} {:>8.0} {:>7} {:>7} {:>7} {:>8} {:>6.1} MiB {:>9}",
            label,
            micros(at(0.5)),
            micros(at(0.99)),
            micros(at(0.999)),
            micros(*latencies.last().expect("latencies")),
            requests as f64 / took.as_secs_f64(),
            stats.0,
            stats.1,
            stats.2,
            stats.3,
            heap_peak,
            shutdown.map_or_else(|| "-".to_owned(), |d| format!("{:.2} s", d.as_secs_f64())),
        );
        receiver.set_behavior(Behavior::Accept);
    }
}

fn micros(d: Duration) -> String {
    format!("{} µs", d.as_micros())
}

/// Serves `requests` requests from `concurrency` keep-alive callers; returns every latency and
/// the time it all took.
async fn run(
    guard: Option<&PipelineGuard>,
    requests: usize,
    concurrency: usize,
) -> (Vec<Duration>, Duration) {
    let app = Router::new().route("/orders/{id}", get(|| async { "ok" }));
    let app = match guard {
        Some(guard) => {
            app.layer(tower_trace::ServerLayer::new().with_tracer_source(guard.tracer_source()))
        }
        None => app,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let url: http::Uri = format!("http://{addr}/orders/7").parse().expect("uri");

    // Warm-up: connections, the pipeline's first export.
    for _ in 0..200 {
        call(&client, &url).await;
    }
    let started = Instant::now();
    let callers: Vec<_> = (0..concurrency)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let n = requests / concurrency + usize::from(i < requests % concurrency);
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(n);
                for _ in 0..n {
                    let sent = Instant::now();
                    call(&client, &url).await;
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(requests);
    for caller in callers {
        latencies.extend(caller.await.expect("caller"));
    }
    let took = started.elapsed();
    server.abort();
    (latencies, took)
}

async fn call(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    url: &http::Uri,
) {
    let res = client.get(url.clone()).await.expect("a response");
    assert!(res.status().is_success());
    res.into_body().collect().await.expect("the body");
}
