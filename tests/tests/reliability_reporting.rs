//! Dropped spans and failed exports are reported once in a while, not per span: with the
//! collector down and a tiny queue, a thousand spans are dropped and exports keep failing, and
//! the process logs each condition once (then at most once every ten seconds, and once more at
//! shutdown). Nothing else in the export path (the SDK, the OTLP exporter) logs per span or per
//! export either.
//!
//! A file of its own: it installs the process's global `tracing` subscriber, which sees the
//! export thread's events.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry::trace::{Tracer, TracerProvider};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_core_lite::Pipeline;
use tracing_core_lite::export::BatchConfig;
use tracing_core_lite::pipeline::OtlpProtocol;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

const SPANS: u64 = 1000;

/// Every WARN and ERROR event: `(target, message)` → how many times.
#[derive(Clone, Default)]
struct Warnings(Arc<Mutex<BTreeMap<(String, String), usize>>>);

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" || field.name() == "name" && self.0.is_empty() {
            self.0 = format!("{value:?}");
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" || field.name() == "name" && self.0.is_empty() {
            self.0 = value.to_owned();
        }
    }
}

impl<S: Subscriber> Layer<S> for Warnings {
    fn on_event(&self, event: &Event<'_>, _cx: Context<'_, S>) {
        if *event.metadata().level() > Level::WARN {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let key = (event.metadata().target().to_owned(), message.0);
        *self.0.lock().unwrap().entry(key).or_default() += 1;
    }
}

impl Warnings {
    fn count(&self, message: &str) -> usize {
        let counts = self.0.lock().unwrap();
        counts
            .iter()
            .filter(|((_, m), _)| m == message)
            .map(|(_, n)| n)
            .sum()
    }

    fn total(&self) -> usize {
        self.0.lock().unwrap().values().sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drops_and_failures_are_reported_once_in_a_while() {
    let warnings = Warnings::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(warnings.clone()))
        .expect("the only global subscriber of this test binary");

    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let guard = Pipeline::new()
        .with_otlp(
            OtlpProtocol::HttpProtobuf,
            &format!("http://{closed}/v1/traces"),
        )
        .expect("valid endpoint")
        .with_batch_config(BatchConfig {
            max_queue_size: 4,
            max_export_batch_size: 1,
            scheduled_delay: Duration::from_millis(10),
            export_timeout: Duration::from_secs(2),
        })
        .without_global()
        .install()
        .expect("the pipeline installs");
    let stats = Arc::clone(&guard.stats()[0].1);
    let tracer = guard.tracer_provider().tracer("reporting");
    for _ in 0..SPANS {
        tracer.in_span("request", |_| {});
    }
    // No signal to wait on: poll the counters, bounded.
    tokio::time::timeout(Duration::from_secs(8), async {
        while stats.failed_exports() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("three exports fail in time: {stats:?}"));
    assert!(stats.dropped() >= SPANS - 10, "{stats:?}");

    // Within the reporting interval: each condition reported once, whatever its count.
    assert_eq!(
        warnings.count("spans dropped: the export queue was full"),
        1
    );
    assert_eq!(warnings.count("span exports failed"), 1);

    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .expect("no panic")
        .ok();
    // Shutdown reports what is new since, once.
    assert!(warnings.count("spans dropped: the export queue was full") <= 2);
    assert!(warnings.count("span exports failed") <= 2);
    // And nothing else logs per span or per export.
    assert!(
        warnings.total() <= 6,
        "{:#?} for {stats:?}",
        warnings.0.lock().unwrap()
    );
}
