//! End to end on loopback: throughput of a fixed number of requests with tracing on (server
//! and client layers, always-on sampling, our `BatchProcessor` exporting OTLP to a receiver on
//! loopback) against the same requests with no layer, for HTTP/1.1 keep-alive (axum + hyper
//! client) and tonic unary calls; then the exporter under sustained load (a slow exporter:
//! memory bounded by the queue, drops only when it is full, and counted).
//!
//! `cargo bench -p benches --bench e2e` (see `BENCHMARKS.md`). Environment: `E2E_REQUESTS`
//! (requests per round, default 20000), `E2E_ROUNDS` (rounds per mode, default 5),
//! `E2E_CONCURRENCY` (concurrent callers, default 8), `E2E_ONLY` (a list of `http`,
//! `http-noop`, `grpc`, `grpc-noop`, `load`; default all), `E2E_TRACING` (`on` or `off`: run
//! only the rounds of that mode, no ratio, for a profiler; default both, alternating).

mod common;

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use benches::CountingAllocator;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use opentelemetry::trace::{Tracer, TracerProvider};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};
use test_support::{Behavior, OtlpReceiver};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tower::ServiceBuilder;
use tracing_core_lite::export::{BatchConfig, BatchProcessor};
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

fn main() {
    if std::env::args().any(|a| a == "--list") {
        // `cargo bench -- --list`: nothing for criterion to list here.
        return;
    }
    // Read first, so that a wrong value stops the bench before anything runs.
    let mode = one_mode();
    let requests = env_or("E2E_REQUESTS", 20_000);
    let rounds = env_or("E2E_ROUNDS", 5);
    let concurrency = env_or("E2E_CONCURRENCY", 8);

    // The receiver stands for a collector's receiver: its own thread and runtime.
    let (receiver_tx, receiver_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let receiver_thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("receiver runtime");
        rt.block_on(async move {
            let receiver = OtlpReceiver::start().await.expect("OTLP receiver");
            // Decode every export, as a collector's receiver does, and count its spans.
            // Recording them as test records (ordered maps of strings) is work that no
            // collector does, and on these two shared cores the traced requests paid for it.
            receiver.set_behavior(Behavior::Count);
            receiver_tx
                .send((receiver.http_traces_url(), receiver.grpc_endpoint()))
                .expect("send");
            // Counted, not kept: the receiver's memory stays bounded.
            let _ = stop_rx.await;
            let received = receiver.span_count();
            receiver.shutdown().await;
            received
        })
    });
    let (otlp_http_url, _otlp_grpc) = receiver_rx.recv().expect("receiver address");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let modes = match mode {
        None => "tracing off and on alternating",
        Some(true) => "tracing on only",
        Some(false) => "tracing off only",
    };
    println!(
        "end to end on loopback: {requests} requests per round, {concurrency} concurrent callers, \
         {rounds} rounds per mode, {modes}"
    );
    let pipeline = || {
        Pipeline::new()
            .with_otlp(OtlpProtocol::HttpProtobuf, &otlp_http_url)
            .expect("endpoint")
            .with_sampler(Sampler::AlwaysOn)
            .without_global()
            .install()
            .expect("pipeline")
    };

    // The same with a no-op exporter: what the layers and the batch processor cost alone,
    // without encoding, sending and receiving OTLP on the same two cores.
    let noop_pipeline = || {
        Pipeline::new()
            .with_exporters([])
            .with_span_exporter(common::NoopExporter::default())
            .with_sampler(Sampler::AlwaysOn)
            .without_global()
            .install()
            .expect("pipeline")
    };
    let only = std::env::var("E2E_ONLY").unwrap_or_default();
    let want = |what: &str| only.is_empty() || only.split(',').any(|o| o == what);

    if want("http") {
        let guard = pipeline();
        rt.block_on(run_rounds(
            "HTTP/1.1 keep-alive (axum + hyper client), OTLP export to the receiver",
            mode,
            rounds,
            requests,
            |on| http_round(on.then_some(&guard), requests, concurrency),
        ));
        report_export(&guard, "HTTP");
        drop(guard);
    }
    if want("http-noop") {
        let guard = noop_pipeline();
        rt.block_on(run_rounds(
            "HTTP/1.1 keep-alive (axum + hyper client), no-op exporter",
            mode,
            rounds,
            requests,
            |on| http_round(on.then_some(&guard), requests, concurrency),
        ));
        drop(guard);
    }
    if want("grpc") {
        let guard = pipeline();
        rt.block_on(run_rounds(
            "tonic unary (grpc.health.v1.Health/Check), OTLP export to the receiver",
            mode,
            rounds,
            requests,
            |on| grpc_round(on.then_some(&guard), requests, concurrency),
        ));
        report_export(&guard, "gRPC");
        drop(guard);
    }
    if want("grpc-noop") {
        let guard = noop_pipeline();
        rt.block_on(run_rounds(
            "tonic unary (grpc.health.v1.Health/Check), no-op exporter",
            mode,
            rounds,
            requests,
            |on| grpc_round(on.then_some(&guard), requests, concurrency),
        ));
        drop(guard);
    }

    let _ = stop_tx.send(());
    let received = receiver_thread.join().expect("receiver thread");
    println!("the receiver got {received} spans in all");

    if want("load") {
        exporter_under_load();
    }
}

/// `E2E_TRACING`: `Some(true)` for `on`, `Some(false)` for `off`, `None` when unset (both
/// modes, alternating). Any other value stops the bench.
fn one_mode() -> Option<bool> {
    let mode = std::env::var("E2E_TRACING").ok()?;
    match mode.as_str() {
        "on" => Some(true),
        "off" => Some(false),
        _ => {
            eprintln!("E2E_TRACING: `on` or `off`, not {mode:?}");
            std::process::exit(2);
        }
    }
}

/// Runs `rounds` rounds with tracing off and on, alternating, and prints the median
/// throughputs and their ratio; or, with `mode` (see [`one_mode`]), only the rounds of that
/// mode.
async fn run_rounds<'a, F, Fut>(
    label: &str,
    mode: Option<bool>,
    rounds: usize,
    requests: usize,
    mut round: F,
) where
    F: FnMut(bool) -> Fut,
    Fut: Future<Output = Duration> + 'a,
{
    // For a profiler (callgrind, perf): one mode only, so that its cost is all there is.
    if let Some(traced) = mode {
        let mut took = Vec::new();
        for _ in 0..rounds {
            took.push(round(traced).await.as_millis());
        }
        let mode = if traced { "on" } else { "off" };
        println!("{label}: tracing {mode} only, rounds {took:?} ms");
        return;
    }
    // One warm-up round of each.
    round(false).await;
    round(true).await;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    let (mut cpu_off, mut cpu_on) = (Vec::new(), Vec::new());
    for i in 0..rounds * 2 {
        // off, on, on, off, off, on...: neither mode always runs second.
        let traced = (i % 4 == 1) || (i % 4 == 2);
        let cpu_before = process_cpu();
        let took = round(traced).await;
        let cpu = process_cpu().saturating_sub(cpu_before);
        if traced { &mut on } else { &mut off }.push(took);
        if traced { &mut cpu_on } else { &mut cpu_off }.push(cpu);
    }
    off.sort();
    on.sort();
    cpu_off.sort();
    cpu_on.sort();
    let median = |v: &[Duration]| v[v.len() / 2];
    let (m_off, m_on) = (median(&off), median(&on));
    let per_request = |d: Duration| d.as_secs_f64() * 1e6 / requests as f64;
    println!(
        "{label}: median round {:.1} ms without tracing, {:.1} ms with; throughput with \
         tracing = {:.1}% of without (rounds off {:?}, on {:?}); process CPU per request \
         {:.1} us without, {:.1} us with (the receiver's and the exporter's included)",
        m_off.as_secs_f64() * 1e3,
        m_on.as_secs_f64() * 1e3,
        100.0 * m_off.as_secs_f64() / m_on.as_secs_f64(),
        off.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        on.iter().map(|d| d.as_millis()).collect::<Vec<_>>(),
        per_request(median(&cpu_off)),
        per_request(median(&cpu_on)),
    );
}

/// CPU time (user and system) this process has used, from `/proc/self/stat` (Linux; zero
/// elsewhere).
fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // After the command name (in parentheses, which may hold spaces): fields 3 and on;
    // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn report_export(guard: &PipelineGuard, what: &str) {
    guard.force_flush().expect("flush");
    for (kind, stats) in guard.stats() {
        println!(
            "{what} export ({kind:?}): {} spans queued, {} exported, {} dropped (queue full), \
             {} failed",
            stats.queued(),
            stats.exported(),
            stats.dropped(),
            stats.failed_spans()
        );
    }
}

/// Splits `requests` among `concurrency` callers, each running `one` in a loop.
async fn drive<F, Fut>(requests: usize, concurrency: usize, one: F) -> Duration
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let n = requests / concurrency + usize::from(i < requests % concurrency);
        let one = one.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                one().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("caller");
    }
    start.elapsed()
}

async fn http_round(
    tracing: Option<&PipelineGuard>,
    requests: usize,
    concurrency: usize,
) -> Duration {
    let app = Router::new().route("/orders/{id}", get(|| async { "ok" }));
    let app = match tracing {
        Some(guard) => app.layer(
            tower_trace::ServerLayer::new()
                .with_tracer_source(guard.tracer_source())
                .with_propagators(guard.propagators().clone()),
        ),
        None => app,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    let uri: http::Uri = format!("http://{addr}/orders/42").parse().expect("uri");
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(concurrency)
        .build_http::<Empty<Bytes>>();
    let took = match tracing {
        Some(guard) => {
            let client = ServiceBuilder::new()
                .layer(
                    tower_trace::ClientLayer::new()
                        .with_tracer_source(guard.tracer_source())
                        .with_propagators(guard.propagators().clone()),
                )
                .service(client);
            drive(requests, concurrency, move || {
                let mut client = client.clone();
                let uri = uri.clone();
                async move {
                    use tower::{Service, ServiceExt};
                    let res = client
                        .ready()
                        .await
                        .expect("ready")
                        .call(http::Request::get(uri).body(Empty::new()).expect("request"))
                        .await
                        .expect("response");
                    assert!(res.status().is_success());
                    res.into_body().collect().await.expect("body");
                }
            })
            .await
        }
        None => {
            drive(requests, concurrency, move || {
                let client = client.clone();
                let uri = uri.clone();
                async move {
                    let res = client.get(uri).await.expect("response");
                    assert!(res.status().is_success());
                    res.into_body().collect().await.expect("body");
                }
            })
            .await
        }
    };
    let _ = stop.send(());
    let _ = server.await;
    took
}

async fn grpc_round(
    tracing: Option<&PipelineGuard>,
    requests: usize,
    concurrency: usize,
) -> Duration {
    let (_reporter, health) = tonic_health::server::health_reporter();
    let incoming = tonic::transport::server::TcpIncoming::bind("127.0.0.1:0".parse().unwrap())
        .expect("bind")
        .with_nodelay(Some(true));
    let addr = incoming.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let layer = tracing.map(|guard| {
        tonic_trace::ServerLayer::new()
            .with_tracer_source(guard.tracer_source())
            .with_propagators(guard.propagators().clone())
    });
    let server = tokio::spawn(async move {
        let stopped = async {
            let _ = stopped.await;
        };
        match layer {
            Some(layer) => tonic::transport::Server::builder()
                .layer(layer)
                .serve_with_incoming_shutdown(health, incoming, stopped)
                .await
                .expect("serve"),
            None => tonic::transport::Server::builder()
                .serve_with_incoming_shutdown(health, incoming, stopped)
                .await
                .expect("serve"),
        }
    });
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .tcp_nodelay(true);
    let channel = endpoint.connect().await.expect("connect");
    let check = || HealthCheckRequest {
        service: String::new(),
    };
    let took = match tracing {
        Some(guard) => {
            let channel = ServiceBuilder::new()
                .layer(
                    tonic_trace::ClientLayer::new()
                        .with_tracer_source(guard.tracer_source())
                        .with_propagators(guard.propagators().clone())
                        .with_server_uri(endpoint.uri()),
                )
                .service(channel);
            let client = HealthClient::new(channel);
            drive(requests, concurrency, move || {
                let mut client = client.clone();
                async move {
                    client.check(check()).await.expect("check");
                }
            })
            .await
        }
        None => {
            let client = HealthClient::new(channel);
            drive(requests, concurrency, move || {
                let mut client = client.clone();
                async move {
                    client.check(check()).await.expect("check");
                }
            })
            .await
        }
    };
    let _ = stop.send(());
    let _ = server.await;
    took
}

/// An exporter that takes `delay` per batch: a collector that cannot keep up.
#[derive(Debug, Clone)]
struct SlowExporter {
    delay: Duration,
}

impl SpanExporter for SlowExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        tokio::time::sleep(self.delay).await;
        drop(batch);
        Ok(())
    }
}

/// Drives spans through a `BatchProcessor` whose exporter cannot keep up, and reports what
/// the memory and the counters did.
fn exporter_under_load() {
    // The allocator follows the heap from here on (not before: it would slow the rounds).
    benches::set_counting(true);
    println!();
    println!("exporter under sustained load (an exporter that takes 20 ms per batch of 512):");
    for (queue, spans, pace) in [
        // Below what the exporter drains (25,600 spans/s): nothing may be dropped.
        (2048usize, 20_000u64, Some(Duration::from_micros(100))),
        // Flat out: the queue fills, the rest is dropped and counted, memory stays bounded.
        (2048, 1_000_000, None),
        (8192, 1_000_000, None),
    ] {
        let config = BatchConfig {
            max_queue_size: queue,
            max_export_batch_size: 512,
            scheduled_delay: Duration::from_millis(100),
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(
            SlowExporter {
                delay: Duration::from_millis(20),
            },
            config,
        )
        .expect("processor");
        let stats = processor.stats();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build();
        let tracer = provider.tracer("load");
        let live_before = benches::reset_peak();
        let start = Instant::now();
        let mut next = start;
        for i in 0..spans {
            tracer.in_span("load", |_| {});
            if let Some(pace) = pace {
                next += pace;
                while Instant::now() < next {
                    std::hint::spin_loop();
                }
            }
            if i % 100_000 == 0 {
                std::hint::black_box(i);
            }
        }
        let took = start.elapsed();
        let peak = (benches::peak_bytes() - live_before).max(0) as usize;
        let (queued, dropped) = (stats.queued(), stats.dropped());
        provider.force_flush().expect("flush");
        let exported = stats.exported();
        println!(
            "  queue {queue}: {spans} spans in {:.2} s ({:.0}/s): {queued} queued, {dropped} \
             dropped (counted), {exported} exported after the flush; peak heap growth {:.1} MiB \
             ({:.0} bytes per queue slot); queued + dropped = {} (every span accounted for: {})",
            took.as_secs_f64(),
            spans as f64 / took.as_secs_f64(),
            peak as f64 / (1024.0 * 1024.0),
            peak as f64 / queue as f64,
            queued + dropped,
            queued + dropped == spans && exported == queued,
        );
        let _ = provider.shutdown();
    }
}
