//! Shared test plumbing: an exporter that signals every finished span, a body fed from a
//! channel, and a server on 127.0.0.1 that stops when dropped.

#![allow(dead_code)] // each test file uses a part

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};
use tokio::sync::{mpsc, oneshot, watch};

pub const WAIT: Duration = Duration::from_secs(10);

/// An in-memory exporter that also signals each export, so tests wait for spans on a signal.
#[derive(Debug, Clone)]
struct Notifying {
    inner: InMemorySpanExporter,
    count: Arc<watch::Sender<usize>>,
}

impl SpanExporter for Notifying {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        self.inner.export(batch).await?;
        self.count.send_modify(|c| *c += n);
        Ok(())
    }
}

/// What the tests read spans from.
#[derive(Clone)]
pub struct Collector {
    exporter: InMemorySpanExporter,
    count: watch::Receiver<usize>,
}

impl Collector {
    /// All finished spans so far.
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// Waits until `pred` holds for the finished spans (bounded by [`WAIT`]).
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[SpanData]) -> bool,
    ) -> Vec<SpanData> {
        let mut count = self.count.clone();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let spans = self.spans();
                if pred(&spans) {
                    return spans;
                }
                if count.changed().await.is_err() {
                    return spans;
                }
            }
        })
        .await;
        match waited {
            Ok(spans) => spans,
            Err(_) => panic!("timed out waiting for {what}; spans: {:#?}", self.spans()),
        }
    }

    /// Waits for a span named `name` and returns it.
    pub async fn wait_for_span(&self, name: &str) -> SpanData {
        let spans = self
            .wait_until(name, |spans| spans.iter().any(|s| s.name == name))
            .await;
        spans
            .into_iter()
            .find(|s| s.name == name)
            .expect("found above")
    }
}

/// A tracer provider exporting synchronously to a [`Collector`].
pub fn tracing() -> (SdkTracerProvider, Collector) {
    let exporter = InMemorySpanExporter::default();
    let (tx, rx) = watch::channel(0);
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(Notifying {
            inner: exporter.clone(),
            count: Arc::new(tx),
        })
        .build();
    (
        provider,
        Collector {
            exporter,
            count: rx,
        },
    )
}

/// A response body whose frames the test sends one by one.
pub struct ChannelBody(pub mpsc::Receiver<Frame<Bytes>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}

/// A server on 127.0.0.1 that shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves an axum router (with `ConnectInfo`) on an ephemeral loopback port.
pub async fn serve(app: axum::Router) -> TestServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stopped.await;
        })
        .await;
    });
    TestServer {
        addr,
        stop: Some(stop),
    }
}

/// Runs `f` with a timeout, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}
