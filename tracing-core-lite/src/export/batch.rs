//! [`BatchProcessor`]: a `SpanProcessor` that hands finished spans to an exporter on its own
//! thread, in batches, without ever blocking or failing the request that ended the span.
//!
//! Why not the SDK's `BatchSpanProcessor`: it drives `export()` with a plain executor, so an
//! exporter that does I/O on tokio (OTLP over tonic or reqwest, Zipkin) borrows the
//! application's runtime, which deadlocks a current-thread runtime that calls `shutdown()`
//! (the SDK documents the hazard). This processor builds and runs its exporter on a
//! current-thread runtime of its own, owned by its worker thread, so it works the same under
//! any runtime or none. It also keeps counters ([`ExportStats`]) that say how many spans were
//! dropped because the queue was full and how many exports failed, and logs those at most once
//! every [`REPORT_INTERVAL`], never per span.
//!
//! The hot path ([`SpanProcessor::on_end`]) takes an uncontended lock, pushes the span and
//! returns; the worker is woken only when a full batch is waiting, otherwise it wakes on its
//! own every `scheduled_delay`. The worker holds that lock only to swap the queue with an
//! empty one of the same capacity (it never copies spans under it), so the queue's memory is
//! allocated once and a request never waits for the export thread.

use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::error::ConfigError;

/// How often, at most, dropped spans and failed exports are logged.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Batch settings, with the `OTEL_BSP_*` variables' meaning and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most spans waiting for export; more are dropped and counted (`OTEL_BSP_MAX_QUEUE_SIZE`,
    /// default 2048).
    pub max_queue_size: usize,
    /// Longest wait between two exports (`OTEL_BSP_SCHEDULE_DELAY`, ms, default 5000).
    pub scheduled_delay: Duration,
    /// Most spans in one export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, default 512, at most the
    /// queue size).
    pub max_export_batch_size: usize,
    /// Longest one export may take before it is abandoned (`OTEL_BSP_EXPORT_TIMEOUT`, ms,
    /// default 30000).
    pub export_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_queue_size: 2048,
            scheduled_delay: Duration::from_millis(5000),
            max_export_batch_size: 512,
            export_timeout: Duration::from_millis(30_000),
        }
    }
}

impl BatchConfig {
    /// Reads the `OTEL_BSP_*` variables through `lookup`; unset variables keep their default.
    ///
    /// # Errors
    ///
    /// A value that is not a whole number, a zero queue or batch size, or a batch size larger
    /// than the queue.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn number(
            lookup: &impl Fn(&str) -> Option<String>,
            var: &str,
        ) -> Result<Option<u64>, ConfigError> {
            match lookup(var) {
                None => Ok(None),
                Some(v) if v.trim().is_empty() => Ok(None),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .map(Some)
                    .map_err(|_| ConfigError::new(var, v, "expected a whole number")),
            }
        }
        let mut c = BatchConfig::default();
        if let Some(n) = number(&lookup, "OTEL_BSP_SCHEDULE_DELAY")? {
            c.scheduled_delay = Duration::from_millis(n);
        }
        if let Some(n) = number(&lookup, "OTEL_BSP_EXPORT_TIMEOUT")? {
            c.export_timeout = Duration::from_millis(n);
        }
        let size = |var: &str, n: u64| {
            usize::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| ConfigError::new(var, n.to_string(), "must be at least 1"))
        };
        if let Some(n) = number(&lookup, "OTEL_BSP_MAX_QUEUE_SIZE")? {
            c.max_queue_size = size("OTEL_BSP_MAX_QUEUE_SIZE", n)?;
        }
        if let Some(n) = number(&lookup, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
            c.max_export_batch_size = size("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", n)?;
            if c.max_export_batch_size > c.max_queue_size {
                return Err(ConfigError::new(
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                    n.to_string(),
                    format!(
                        "must not exceed OTEL_BSP_MAX_QUEUE_SIZE ({})",
                        c.max_queue_size
                    ),
                ));
            }
        } else {
            c.max_export_batch_size = c.max_export_batch_size.min(c.max_queue_size);
        }
        Ok(c)
    }
}

/// Counters of a [`BatchProcessor`] (shared by every clone of its [`Arc`]).
#[derive(Debug, Default)]
pub struct ExportStats {
    queued: AtomicU64,
    dropped: AtomicU64,
    exported: AtomicU64,
    failed_spans: AtomicU64,
    failed_exports: AtomicU64,
}

impl ExportStats {
    /// Spans accepted into the queue.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// Spans dropped because the queue was full or the processor was shut down.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Spans the exporter accepted.
    pub fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Spans lost to failed or timed-out exports.
    pub fn failed_spans(&self) -> u64 {
        self.failed_spans.load(Ordering::Relaxed)
    }

    /// Export calls that failed or timed out.
    pub fn failed_exports(&self) -> u64 {
        self.failed_exports.load(Ordering::Relaxed)
    }
}

/// An exporter could not be built on the processor's thread.
#[derive(Debug)]
pub struct BuildError(pub Box<dyn StdError + Send + Sync>);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not build the span exporter: {}", self.0)
    }
}

impl StdError for BuildError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}

#[derive(Default)]
struct State {
    queue: Vec<SpanData>,
    /// Spans taken from the queue by the worker and not yet handed to the exporter: they count
    /// against `max_queue_size` until then.
    in_flight: usize,
    flush_requested: u64,
    flush_done: u64,
    shutdown: bool,
    stopped: bool,
    resource: Option<Resource>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the worker.
    wake: Condvar,
    /// Wakes the callers of flush and shutdown.
    done: Condvar,
    stats: Arc<ExportStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the queue inconsistent: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A batching span processor with its own export thread and runtime (see the module docs).
pub struct BatchProcessor {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    config: BatchConfig,
}

impl fmt::Debug for BatchProcessor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchProcessor")
            .field("config", &self.config)
            .field("stats", &self.shared.stats)
            .finish()
    }
}

impl BatchProcessor {
    /// A processor exporting to `exporter`.
    ///
    /// # Errors
    ///
    /// The worker thread or its runtime could not be started.
    pub fn new<E>(exporter: E, config: BatchConfig) -> Result<Self, BuildError>
    where
        E: SpanExporter + 'static,
    {
        Self::spawn(move || Ok(exporter), config)
    }

    /// A processor whose exporter is built by `build` on the worker thread, inside the
    /// worker's tokio runtime (exporters such as OTLP over tonic need one when they are
    /// built). Returns once the exporter is built.
    ///
    /// # Errors
    ///
    /// `build` failed, or the worker thread or its runtime could not be started.
    pub fn spawn<E, F>(build: F, config: BatchConfig) -> Result<Self, BuildError>
    where
        E: SpanExporter + 'static,
        F: FnOnce() -> Result<E, Box<dyn StdError + Send + Sync>> + Send + 'static,
    {
        let config = BatchConfig {
            max_queue_size: config.max_queue_size.max(1),
            max_export_batch_size: config
                .max_export_batch_size
                .clamp(1, config.max_queue_size.max(1)),
            ..config
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: Vec::with_capacity(config.max_export_batch_size),
                ..State::default()
            }),
            wake: Condvar::new(),
            done: Condvar::new(),
            stats: Arc::new(ExportStats::default()),
        });
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<(), BuildError>>(1);
        let worker_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("tracing-core-lite-export".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(BuildError(Box::new(e))));
                        return;
                    }
                };
                let exporter = {
                    let _entered = rt.enter();
                    build()
                };
                match exporter {
                    Ok(exporter) => {
                        let _ = ready_tx.send(Ok(()));
                        Worker {
                            shared: worker_shared,
                            rt,
                            exporter,
                            config,
                            taken: Vec::with_capacity(config.max_export_batch_size),
                            reporter: Reporter::default(),
                        }
                        .run();
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(BuildError(e)));
                    }
                }
            })
            .map_err(|e| BuildError(Box::new(e)))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(BatchProcessor {
                shared,
                worker: Mutex::new(Some(handle)),
                config,
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                Err(e)
            }
            Err(_) => {
                let _ = handle.join();
                Err(BuildError(
                    "the export thread stopped while building the exporter".into(),
                ))
            }
        }
    }

    /// The counters of this processor.
    pub fn stats(&self) -> Arc<ExportStats> {
        Arc::clone(&self.shared.stats)
    }

    /// The settings in force.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    fn wait_until(
        &self,
        mut state: MutexGuard<'_, State>,
        timeout: Duration,
        done: impl Fn(&State) -> bool,
    ) -> OTelSdkResult {
        let deadline = Instant::now() + timeout;
        while !done(&state) {
            let now = Instant::now();
            if now >= deadline {
                return Err(OTelSdkError::Timeout(timeout));
            }
            state = self
                .shared
                .done
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Ok(())
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let stats = &self.shared.stats;
        let mut state = self.shared.lock();
        if state.shutdown || state.queue.len() + state.in_flight >= self.config.max_queue_size {
            drop(state);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        state.queue.push(span);
        let batch_ready = state.queue.len() == self.config.max_export_batch_size;
        drop(state);
        stats.queued.fetch_add(1, Ordering::Relaxed);
        if batch_ready {
            self.shared.wake.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        let mut state = self.shared.lock();
        if state.shutdown {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.flush_requested += 1;
        let generation = state.flush_requested;
        self.shared.wake.notify_one();
        self.wait_until(state, self.config.export_timeout, |s| {
            s.flush_done >= generation || s.stopped
        })
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let mut state = self.shared.lock();
        if state.shutdown {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        state.shutdown = true;
        self.shared.wake.notify_one();
        self.wait_until(state, timeout, |s| s.stopped)?;
        let handle = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared.lock().resource = Some(resource.clone());
    }
}

impl Drop for BatchProcessor {
    fn drop(&mut self) {
        // The provider shuts its processors down; if it did not, stop the worker without
        // blocking the dropping thread (what is queued is still exported).
        let mut state = self.shared.lock();
        if !state.shutdown {
            state.shutdown = true;
            self.shared.wake.notify_one();
        }
    }
}

/// Rate-limited reporting of drops and failures.
#[derive(Default)]
struct Reporter {
    last: Option<Instant>,
    dropped_reported: u64,
    failures_reported: u64,
    last_error: Option<String>,
}

impl Reporter {
    fn report(&mut self, stats: &ExportStats, force: bool) {
        let due = force || self.last.is_none_or(|t| t.elapsed() >= REPORT_INTERVAL);
        if !due {
            return;
        }
        let dropped = stats.dropped();
        let failed = stats.failed_exports();
        if dropped > self.dropped_reported {
            tracing::warn!(
                target: "tracing_core_lite::export",
                dropped = dropped - self.dropped_reported,
                total_dropped = dropped,
                "spans dropped: the export queue was full"
            );
        }
        if failed > self.failures_reported {
            tracing::warn!(
                target: "tracing_core_lite::export",
                failed_exports = failed - self.failures_reported,
                total_failed_spans = stats.failed_spans(),
                last_error = self.last_error.as_deref().unwrap_or(""),
                "span exports failed"
            );
        }
        if dropped > self.dropped_reported || failed > self.failures_reported {
            self.last = Some(Instant::now());
        }
        self.dropped_reported = dropped;
        self.failures_reported = failed;
    }
}

struct Worker<E> {
    shared: Arc<Shared>,
    rt: tokio::runtime::Runtime,
    exporter: E,
    config: BatchConfig,
    /// The spans taken from the queue, swapped with it (empty, capacity kept) under the lock.
    taken: Vec<SpanData>,
    reporter: Reporter,
}

impl<E: SpanExporter> Worker<E> {
    fn run(mut self) {
        // Nothing the exporter does (HTTP clients, gRPC channels) may produce spans itself.
        let _suppressed = Context::enter_telemetry_suppressed_scope();
        let mut deadline = Instant::now() + self.config.scheduled_delay;
        loop {
            let mut state = self.shared.lock();
            loop {
                let flushing = state.flush_requested > state.flush_done;
                if state.shutdown
                    || flushing
                    || state.queue.len() >= self.config.max_export_batch_size
                {
                    break;
                }
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                state = self
                    .shared
                    .wake
                    .wait_timeout(state, deadline - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            if let Some(resource) = state.resource.take() {
                self.exporter.set_resource(&resource);
            }
            let flush_generation = state.flush_requested;
            let drain_all = state.shutdown || flush_generation > state.flush_done;
            // Everything queued is taken at once (and exported in batches): O(1) under the
            // lock, and both vectors keep their capacity.
            std::mem::swap(&mut state.queue, &mut self.taken);
            state.in_flight = self.taken.len();
            let shutdown = state.shutdown;
            drop(state);

            let exported_any = !self.taken.is_empty();
            while !self.taken.is_empty() {
                let n = self.taken.len().min(self.config.max_export_batch_size);
                let batch: Vec<SpanData> = self.taken.drain(..n).collect();
                self.export(batch);
                self.shared.lock().in_flight -= n;
                // Between batches too: a long backlog to a failing collector is reported
                // while it lasts.
                self.reporter.report(&self.shared.stats, false);
            }
            if exported_any {
                // Lets waiters (tests, `wait_for_export`) observe progress without polling.
                self.shared.done.notify_all();
            }
            deadline = Instant::now() + self.config.scheduled_delay;
            self.reporter.report(&self.shared.stats, shutdown);

            if shutdown {
                let _ = self
                    .exporter
                    .shutdown_with_timeout(self.config.export_timeout);
                let mut state = self.shared.lock();
                state.stopped = true;
                state.flush_done = state.flush_requested;
                self.shared.done.notify_all();
                return;
            }
            if drain_all {
                // A flush hands every queued span to the exporter, as the SDK's batch
                // processor does; it does not ask the exporter to flush its own buffers (the
                // console exporter would print partial trees of multi-service processes).
                let mut state = self.shared.lock();
                state.flush_done = state.flush_done.max(flush_generation);
                self.shared.done.notify_all();
            }
        }
    }

    fn export(&mut self, batch: Vec<SpanData>) {
        let n = batch.len() as u64;
        let timeout = self.config.export_timeout;
        let result = self
            .rt
            .block_on(async { tokio::time::timeout(timeout, self.exporter.export(batch)).await });
        let stats = &self.shared.stats;
        match result {
            Ok(Ok(())) => {
                stats.exported.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                self.reporter.last_error = Some(e.to_string());
                stats.failed_spans.fetch_add(n, Ordering::Relaxed);
                stats.failed_exports.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.reporter.last_error = Some(format!("export timed out after {timeout:?}"));
                stats.failed_spans.fetch_add(n, Ordering::Relaxed);
                stats.failed_exports.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{Tracer, TracerProvider};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    fn provider(processor: BatchProcessor) -> SdkTracerProvider {
        SdkTracerProvider::builder()
            .with_span_processor(processor)
            .build()
    }

    #[test]
    fn config_from_lookup() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(
            BatchConfig::from_lookup(|_| None).unwrap(),
            BatchConfig::default()
        );
        let c = BatchConfig::from_lookup(env(&[
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "64"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8"),
            ("OTEL_BSP_EXPORT_TIMEOUT", "250"),
        ]))
        .unwrap();
        assert_eq!(c.scheduled_delay, Duration::from_millis(100));
        assert_eq!((c.max_queue_size, c.max_export_batch_size), (64, 8));
        assert_eq!(c.export_timeout, Duration::from_millis(250));
        // the default batch size shrinks to a smaller queue
        let c = BatchConfig::from_lookup(env(&[("OTEL_BSP_MAX_QUEUE_SIZE", "10")])).unwrap();
        assert_eq!(c.max_export_batch_size, 10);
        for bad in [
            &[("OTEL_BSP_SCHEDULE_DELAY", "soon")][..],
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "-4")],
            &[
                ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "9"),
            ],
        ] {
            let err = BatchConfig::from_lookup(env(bad)).unwrap_err();
            assert!(err.variable().starts_with("OTEL_BSP_"), "{err}");
        }
    }

    #[test]
    fn flush_exports_everything_queued() {
        let exporter = InMemorySpanExporter::default();
        let processor = BatchProcessor::new(exporter.clone(), BatchConfig::default()).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        let tracer = provider.tracer("test");
        for i in 0..10 {
            tracer.in_span(format!("span-{i}"), |_| {});
        }
        provider.force_flush().unwrap();
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 10);
        assert_eq!(
            (stats.queued(), stats.exported(), stats.dropped()),
            (10, 10, 0)
        );
        provider.shutdown().unwrap();
    }

    #[test]
    fn a_full_batch_is_exported_without_waiting_for_the_timer() {
        let exporter = InMemorySpanExporter::default();
        let config = BatchConfig {
            max_export_batch_size: 4,
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(exporter.clone(), config).unwrap();
        let shared = Arc::clone(&processor.shared);
        let provider = provider(processor);
        let tracer = provider.tracer("test");
        for _ in 0..4 {
            tracer.in_span("s", |_| {});
        }
        // Wait on the worker's signal (it notifies `done` after each export), bounded.
        let mut state = shared.lock();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.stats.exported() < 4 && Instant::now() < deadline {
            state = shared
                .done
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap()
                .0;
        }
        drop(state);
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 4);
        provider.shutdown().unwrap();
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        /// An exporter that blocks until released, so the queue fills up.
        #[derive(Debug, Clone)]
        struct Gate(Arc<(Mutex<bool>, Condvar)>, InMemorySpanExporter);
        impl SpanExporter for Gate {
            async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
                {
                    let (lock, cv) = &*self.0;
                    let mut open = lock.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                }
                self.1.export(batch).await
            }
        }
        let gate = Gate(
            Arc::new((Mutex::new(false), Condvar::new())),
            InMemorySpanExporter::default(),
        );
        let config = BatchConfig {
            max_queue_size: 8,
            max_export_batch_size: 2,
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(gate.clone(), config).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        let tracer = provider.tracer("test");
        for _ in 0..100 {
            tracer.in_span("s", |_| {});
        }
        // At most 8 spans are held, waiting or being exported.
        assert_eq!(stats.dropped(), 100 - 8, "queued {}", stats.queued());
        assert_eq!(stats.queued() + stats.dropped(), 100);
        {
            let (lock, cv) = &*gate.0;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
        provider.force_flush().unwrap();
        assert_eq!(
            gate.1.get_finished_spans().unwrap().len() as u64,
            stats.queued()
        );
        provider.shutdown().unwrap();
    }

    #[test]
    fn unsampled_spans_are_not_queued() {
        let exporter = InMemorySpanExporter::default();
        let processor = BatchProcessor::new(exporter.clone(), BatchConfig::default()).unwrap();
        let stats = processor.stats();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor)
            .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
            .build();
        provider.tracer("t").in_span("s", |_| {});
        provider.force_flush().unwrap();
        assert_eq!(stats.queued(), 0);
        assert!(exporter.get_finished_spans().unwrap().is_empty());
    }

    #[test]
    fn shutdown_exports_the_rest_then_refuses() {
        let exporter = InMemorySpanExporter::default();
        let config = BatchConfig {
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(exporter.clone(), config).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        let tracer = provider.tracer("t");
        for _ in 0..3 {
            tracer.in_span("s", |_| {});
        }
        provider.shutdown().unwrap();
        // InMemorySpanExporter clears itself on shutdown unless told otherwise, so count
        // through the processor's statistics.
        assert_eq!(stats.exported(), 3);
        tracer.in_span("late", |_| {});
        assert_eq!(stats.exported(), 3);
    }

    #[test]
    fn failed_exports_are_counted_not_raised() {
        #[derive(Debug)]
        struct Failing;
        impl SpanExporter for Failing {
            async fn export(&self, _batch: Vec<SpanData>) -> OTelSdkResult {
                Err(OTelSdkError::InternalFailure("collector down".into()))
            }
        }
        let processor = BatchProcessor::new(Failing, BatchConfig::default()).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        provider.tracer("t").in_span("s", |_| {});
        provider.force_flush().unwrap();
        assert_eq!((stats.failed_exports(), stats.failed_spans()), (1, 1));
        provider.shutdown().unwrap();
    }

    #[test]
    fn build_errors_are_returned() {
        let err = BatchProcessor::spawn::<InMemorySpanExporter, _>(
            || Err("no such endpoint".into()),
            BatchConfig::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("no such endpoint"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn works_under_a_current_thread_runtime() {
        let exporter = InMemorySpanExporter::default();
        let processor = BatchProcessor::new(exporter.clone(), BatchConfig::default()).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        provider.tracer("t").in_span("s", |_| {});
        // A blocking flush and shutdown from inside the runtime thread must not deadlock.
        provider.force_flush().unwrap();
        provider.shutdown().unwrap();
        assert_eq!(stats.exported(), 1);
    }
}
