//! A failing collector: the pipeline exports over OTLP (gRPC and HTTP) to nothing listening,
//! to a receiver that never answers (`Behavior::Hang`), to one that answers errors
//! (`Behavior::Reject`), and to one that comes back after being down, while a traced HTTP
//! server serves requests. Requests stay fast, the spans held in memory never exceed the queue
//! and the batch being exported, every span is accounted for (`ExportStats`: exported, failed
//! or dropped), export resumes when the collector does, and shutdown is bounded.
//!
//! The latency numbers under each fault are measured by `benches/benches/collector.rs`; these
//! tests bound them generously (a blocked request would take the export timeout).

mod reliability;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use reliability::{Server, bounded, serve_http};
use test_support::{Behavior, OtlpReceiver, ReceivedSpan};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tower_trace::ServerLayer;
use tracing_core_lite::export::{BatchConfig, ExportStats};
use tracing_core_lite::pipeline::OtlpProtocol;
use tracing_core_lite::{Pipeline, PipelineGuard};

/// The slowest a request may be while the collector fails: far below the export timeout,
/// which is what a request blocked on an export would take.
const SLOWEST: Duration = Duration::from_millis(1500);

/// How long one export may take before it is abandoned.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(2);

const QUEUE: usize = 16;
const BATCH: usize = 8;

fn batch_config() -> BatchConfig {
    BatchConfig {
        max_queue_size: QUEUE,
        max_export_batch_size: BATCH,
        scheduled_delay: Duration::from_millis(20),
        export_timeout: EXPORT_TIMEOUT,
    }
}

/// The OTLP endpoint of `protocol` at `addr`: the gRPC base URL or the full HTTP traces URL.
fn endpoint(protocol: OtlpProtocol, addr: SocketAddr) -> String {
    match protocol {
        OtlpProtocol::Grpc => format!("http://{addr}"),
        _ => format!("http://{addr}/v1/traces"),
    }
}

fn receiver_addr(receiver: &OtlpReceiver, protocol: OtlpProtocol) -> SocketAddr {
    let url = match protocol {
        OtlpProtocol::Grpc => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    url.trim_start_matches("http://")
        .parse()
        .expect("an address")
}

/// A port of 127.0.0.1 on which nothing listens.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A traced HTTP server whose spans are exported by a pipeline to `endpoint`.
struct Traced {
    guard: Arc<PipelineGuard>,
    stats: Arc<ExportStats>,
    server: Server,
    client: reqwest::Client,
}

impl Traced {
    async fn start(protocol: OtlpProtocol, endpoint: &str) -> Traced {
        let guard = Pipeline::new()
            .with_otlp(protocol, endpoint)
            .expect("valid endpoint")
            .with_service_name("failing-collector")
            .with_batch_config(batch_config())
            .without_global()
            .install()
            .expect("the pipeline installs, whatever the collector");
        let stats = Arc::clone(&guard.stats()[0].1);
        let app = Router::new()
            .route("/before", get(|| async { "ok" }))
            .route("/after", get(|| async { "ok" }))
            .layer(ServerLayer::new().with_tracer_provider(guard.tracer_provider()));
        Traced {
            guard: Arc::new(guard),
            stats,
            server: serve_http(app).await,
            client: reqwest::Client::new(),
        }
    }

    /// Sends `n` requests to `path`, one after the other; returns the slowest latency.
    async fn requests(&self, path: &str, n: usize) -> Duration {
        let url = format!("http://{}{path}", self.server.addr);
        let mut slowest = Duration::ZERO;
        for _ in 0..n {
            let started = Instant::now();
            let res = bounded(path, self.client.get(&url).send())
                .await
                .expect("a response");
            assert_eq!(res.status(), http::StatusCode::OK);
            bounded(path, res.bytes()).await.expect("the body");
            slowest = slowest.max(started.elapsed());
        }
        slowest
    }

    /// Spans queued but not yet exported or failed: what the pipeline holds in memory.
    fn held(&self) -> u64 {
        let s = &self.stats;
        let done = s.exported() + s.failed_spans();
        s.queued().saturating_sub(done)
    }

    /// Waits until every queued span has been exported or has failed. The counters have no
    /// signal to wait on: polled, bounded. (`force_flush` would give up after one export
    /// timeout, and opentelemetry-otlp retries a failed export three times, 0.7 to 1 s in
    /// all, before it fails.)
    async fn settle(&self) {
        bounded("every queued span exported or failed", async {
            while self.held() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }

    /// Shuts the pipeline down off the runtime; returns how long it took.
    async fn shutdown(self) -> Duration {
        let Traced { guard, .. } = self;
        let guard = Arc::into_inner(guard).expect("the only handle");
        let started = Instant::now();
        let done = tokio::task::spawn_blocking(move || guard.shutdown());
        let _ = bounded("shutdown", done).await.expect("no panic");
        started.elapsed()
    }
}

/// Waits until `n` spans named `name` have arrived.
async fn arrived(receiver: &OtlpReceiver, name: &str, n: usize) -> Vec<ReceivedSpan> {
    receiver
        .wait_for(
            |spans| spans.iter().filter(|s| s.name == name).count() >= n,
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("{n} `{name}` spans: {e}"))
}

/// Forwards every connection to 127.0.0.1:`port` to `to`: the collector is back on the port
/// the pipeline was configured with.
async fn come_back(port: SocketAddr, to: SocketAddr) {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(port)
        .expect("the collector's port is free again");
    let listener: TcpListener = socket.listen(64).expect("listen");
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
}

async fn nothing_listening(protocol: OtlpProtocol) {
    let traced = Traced::start(protocol, &endpoint(protocol, closed_port())).await;
    let slowest = traced.requests("/before", 200).await;
    assert!(slowest < SLOWEST, "{slowest:?}");
    assert!(
        traced.held() <= (QUEUE + BATCH) as u64,
        "{:?}",
        traced.stats
    );
    traced.settle().await;
    let s = &traced.stats;
    assert_eq!(s.exported(), 0, "{s:?}");
    assert_eq!(
        s.queued() + s.dropped(),
        200,
        "every span is counted: {s:?}"
    );
    assert_eq!(s.failed_spans(), s.queued(), "{s:?}");
    assert!(s.failed_exports() >= 1, "{s:?}");
    let took = traced.shutdown().await;
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_grpc() {
    nothing_listening(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_http() {
    nothing_listening(OtlpProtocol::HttpProtobuf).await;
}

async fn hanging(protocol: OtlpProtocol) {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    receiver.set_behavior(Behavior::Hang);
    let traced = Traced::start(
        protocol,
        &endpoint(protocol, receiver_addr(&receiver, protocol)),
    )
    .await;

    let slowest = traced.requests("/before", 300).await;
    assert!(slowest < SLOWEST, "{slowest:?}");
    // The worker holds one batch in a hanging export; the queue holds the rest; more are
    // dropped and counted, not kept.
    let s = &traced.stats;
    assert!(traced.held() <= (QUEUE + BATCH) as u64, "{s:?}");
    assert_eq!(s.queued() + s.dropped(), 300, "{s:?}");
    assert!(s.dropped() >= 300 - 3 * (QUEUE + BATCH) as u64, "{s:?}");
    bounded(
        "an export arrives",
        receiver.wait_for_export_requests(1, Duration::from_secs(10)),
    )
    .await
    .expect("the exporter reached the collector");

    // Back to normal: the backlog goes out, then the new spans.
    receiver.set_behavior(Behavior::Accept);
    traced.settle().await;
    traced.requests("/after", 5).await;
    arrived(&receiver, "GET /after", 5).await;
    let took = traced.shutdown().await;
    assert!(took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_collector_grpc() {
    hanging(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_collector_http() {
    hanging(OtlpProtocol::HttpProtobuf).await;
}

/// Shutdown while the collector hangs takes the SDK's shutdown timeout (5 s), not one export
/// timeout per queued batch: a stopping server is not held up by its collector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_the_collector_hangs_is_bounded() {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    receiver.set_behavior(Behavior::Hang);
    let protocol = OtlpProtocol::HttpProtobuf;
    let traced = Traced::start(
        protocol,
        &endpoint(protocol, receiver_addr(&receiver, protocol)),
    )
    .await;
    traced.requests("/before", 100).await;
    let took = traced.shutdown().await;
    assert!(took < Duration::from_secs(7), "{took:?}");
}

async fn rejecting(protocol: OtlpProtocol) {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    receiver.set_behavior(Behavior::Reject);
    let traced = Traced::start(
        protocol,
        &endpoint(protocol, receiver_addr(&receiver, protocol)),
    )
    .await;

    let slowest = traced.requests("/before", 100).await;
    assert!(slowest < SLOWEST, "{slowest:?}");
    assert!(
        traced.held() <= (QUEUE + BATCH) as u64,
        "{:?}",
        traced.stats
    );
    traced.settle().await;
    let s = &traced.stats;
    assert_eq!(s.exported(), 0, "{s:?}");
    assert_eq!(s.queued() + s.dropped(), 100, "{s:?}");
    assert_eq!(s.failed_spans(), s.queued(), "{s:?}");
    assert!(s.failed_exports() >= 1, "{s:?}");
    assert!(receiver.export_requests() >= 1);
    assert!(receiver.spans().is_empty());

    receiver.set_behavior(Behavior::Accept);
    traced.requests("/after", 5).await;
    arrived(&receiver, "GET /after", 5).await;
    assert!(receiver.spans().iter().all(|s| s.name == "GET /after"));
    traced.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_collector_grpc() {
    rejecting(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejecting_collector_http() {
    rejecting(OtlpProtocol::HttpProtobuf).await;
}

async fn coming_back(protocol: OtlpProtocol) {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let port = closed_port();
    let traced = Traced::start(protocol, &endpoint(protocol, port)).await;

    traced.requests("/before", 50).await;
    traced.settle().await;
    assert!(traced.stats.failed_exports() >= 1, "{:?}", traced.stats);
    assert_eq!(traced.stats.exported(), 0);

    come_back(port, receiver_addr(&receiver, protocol)).await;
    traced.requests("/after", 5).await;
    arrived(&receiver, "GET /after", 5).await;
    traced.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_that_comes_back_grpc() {
    coming_back(OtlpProtocol::Grpc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_that_comes_back_http() {
    coming_back(OtlpProtocol::HttpProtobuf).await;
}
