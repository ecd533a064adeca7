//! An in-process span collector for tests: a tracer provider that exports each finished span
//! synchronously and signals it, so tests wait for spans on a signal instead of sleeping.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use opentelemetry::trace::{Tracer, TracerProvider};
//!
//! let (provider, spans) = test_support::collector::tracing();
//! provider.tracer("t").in_span("work", |_| {});
//! let span = spans.wait_for_span("work").await;
//! assert_eq!(span.name, "work");
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData, SpanExporter};
use tokio::sync::watch;

/// How long the `wait_*` methods wait before failing the test.
pub const WAIT: Duration = Duration::from_secs(10);

/// An in-memory exporter that also signals each export.
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

/// What tests read finished spans from.
#[derive(Clone, Debug)]
pub struct Collector {
    exporter: InMemorySpanExporter,
    count: watch::Receiver<usize>,
}

impl Collector {
    /// All spans finished so far, in the order they ended.
    pub fn spans(&self) -> Vec<SpanData> {
        self.exporter.get_finished_spans().unwrap_or_default()
    }

    /// Waits until `pred` holds for the finished spans; panics (failing the test) with `what`
    /// and the spans seen after [`WAIT`].
    pub async fn wait_until(
        &self,
        what: &str,
        pred: impl Fn(&[SpanData]) -> bool,
    ) -> Vec<SpanData> {
        let mut count = self.count.clone();
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                let spans = self.spans();
                if pred(&spans) || count.changed().await.is_err() {
                    return spans;
                }
            }
        })
        .await;
        match waited {
            Ok(spans) if pred(&spans) => spans,
            _ => panic!("timed out waiting for {what}; spans: {:#?}", self.spans()),
        }
    }

    /// Waits for a span named `name` and returns the first one.
    pub async fn wait_for_span(&self, name: &str) -> SpanData {
        self.wait_until(name, |spans| spans.iter().any(|s| s.name == name))
            .await
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| unreachable!("wait_until checked it"))
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
