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
//! # The hot path
//!
//! [`SpanProcessor::on_end`] takes a lock that other threads seldom take, pushes the span and
//! returns. The queue is sharded: a few shards per core, each with its own lock and vector on
//! its own cache lines, and each thread ends its spans into one of them (threads are given
//! shards in turn, in the order they first end a span), so threads ending spans at once seldom
//! wait for each other or pass a lock's cache line back and forth
//! (one lock for all is what the SDK's processor and this one did before; see the `processor`
//! bench in `BENCHMARKS.md`). `max_queue_size` still bounds the spans held in all (waiting, or
//! being exported): a shard reserves queue slots from a shared pool a few at a time (at most 64,
//! at most an eighth of the queue across all shards), and the worker gives back the slots of the
//! spans it exported and those a shard reserved and did not use. So a thread may see the queue
//! full while other shards still hold a few unused slots, never more spans than the queue holds.
//!
//! The worker is woken when one shard holds a full batch or the shards together have reported
//! one (each reports its spans when it reserves more slots), otherwise it wakes on its own every
//! `scheduled_delay`. It holds a shard's lock only to swap the shard's vector with an empty one
//! (it never copies spans under it), and a request never waits for the export thread.
//!
//! After each export the worker restocks the empty vectors that request threads fill with
//! their spans' attributes and events (see `stock`), so that those vectors are allocated and
//! freed on an export thread, not handed from one thread's allocator arena to another's.

use std::cell::Cell;
use std::error::Error as StdError;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use opentelemetry::Context;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use super::stock::{self, Restocker};
use crate::error::ConfigError;
use crate::lock_unpoisoned;

/// How often, at most, dropped spans and failed exports are logged.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Batch settings, with the `OTEL_BSP_*` variables' meaning and defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most spans held, waiting for export or being exported; more are dropped and counted
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048). With several threads ending spans, one may
    /// find the queue full while up to an eighth of it is still reserved, unused, by the others
    /// (see the module docs).
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
pub struct ExportStats {
    /// Spans queued and dropped, per shard of the queue: each written only by the threads of
    /// that shard, so counting shares no cache line between threads.
    shards: Box<[ShardCounters]>,
    exported: AtomicU64,
    failed_spans: AtomicU64,
    failed_exports: AtomicU64,
}

#[derive(Default)]
#[repr(align(128))]
struct ShardCounters {
    queued: AtomicU64,
    dropped: AtomicU64,
}

impl Default for ExportStats {
    fn default() -> Self {
        ExportStats::with_shards(1)
    }
}

impl fmt::Debug for ExportStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExportStats")
            .field("queued", &self.queued())
            .field("dropped", &self.dropped())
            .field("exported", &self.exported())
            .field("failed_spans", &self.failed_spans())
            .field("failed_exports", &self.failed_exports())
            .finish()
    }
}

impl ExportStats {
    fn with_shards(shards: usize) -> Self {
        ExportStats {
            shards: (0..shards.max(1))
                .map(|_| ShardCounters::default())
                .collect(),
            exported: AtomicU64::new(0),
            failed_spans: AtomicU64::new(0),
            failed_exports: AtomicU64::new(0),
        }
    }

    /// Spans accepted into the queue.
    pub fn queued(&self) -> u64 {
        self.shards
            .iter()
            .map(|c| c.queued.load(Ordering::Relaxed))
            .sum()
    }

    /// Spans dropped because the queue was full or the processor was shut down.
    pub fn dropped(&self) -> u64 {
        self.shards
            .iter()
            .map(|c| c.dropped.load(Ordering::Relaxed))
            .sum()
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

/// What the worker and the callers of flush and shutdown share (not the request threads).
#[derive(Default)]
struct State {
    /// A producer saw a batch waiting.
    batch_ready: bool,
    flush_requested: u64,
    flush_done: u64,
    shutdown: bool,
    stopped: bool,
    resource: Option<Resource>,
}

/// One shard of the queue, on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Shard(Mutex<ShardState>);

#[derive(Default)]
struct ShardState {
    spans: Vec<SpanData>,
    /// Queue slots this shard reserved and has not filled yet.
    reserved: usize,
    /// Spans queued here since the shard last reported to [`Pool::reported`].
    unreported: usize,
}

impl Shard {
    fn lock(&self) -> MutexGuard<'_, ShardState> {
        lock_unpoisoned(&self.0)
    }
}

/// The queue's slots, shared by the shards (touched once per reservation, not per span).
#[derive(Default)]
#[repr(align(128))]
struct Pool {
    /// Slots no shard has reserved: `max_queue_size` minus the spans waiting, those being
    /// exported and the slots shards reserved and have not filled.
    free: AtomicUsize,
    /// Spans waiting that their shards have reported (when reserving more slots).
    reported: AtomicUsize,
}

struct Shared {
    shards: Box<[Shard]>,
    pool: Pool,
    /// Read on every span, written once: on a line of its own with the read-only fields.
    shutdown: AtomicBool,
    state: Mutex<State>,
    /// Wakes the worker.
    wake: Condvar,
    /// Wakes the callers of flush and shutdown.
    done: Condvar,
    stats: Arc<ExportStats>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock_unpoisoned(&self.state)
    }

    /// Tells the worker a batch is waiting.
    fn batch_ready(&self) {
        self.lock().batch_ready = true;
        self.wake.notify_one();
    }

    /// Stops accepting spans and wakes the worker to export the rest and stop.
    fn begin_shutdown(&self, state: &mut State) {
        state.shutdown = true;
        self.shutdown.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// Shards per processor, a power of two: a few per core, so that the threads ending spans at
/// the same time (a runtime's workers) seldom share one.
fn shard_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_mul(2)
        .next_power_of_two()
        .min(64)
}

/// The shard of the calling thread (`shards` is a power of two): threads are numbered in the
/// order they first end a span.
fn shard_index(shards: usize) -> usize {
    thread_local! {
        static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);
    let slot = SLOT
        .try_with(|slot| {
            if slot.get() == usize::MAX {
                slot.set(NEXT_SLOT.fetch_add(1, Ordering::Relaxed));
            }
            slot.get()
        })
        // A span ended by a thread-local destructor, after this one was destroyed.
        .unwrap_or(0);
    slot & (shards - 1)
}

/// A batching span processor with its own export thread and runtime (see the module docs).
pub struct BatchProcessor {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
    config: BatchConfig,
    /// Slots a shard reserves at a time.
    chunk: usize,
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
        let shards = shard_count();
        let shared = Arc::new(Shared {
            shards: (0..shards).map(|_| Shard::default()).collect(),
            pool: Pool {
                free: AtomicUsize::new(config.max_queue_size),
                reported: AtomicUsize::new(0),
            },
            shutdown: AtomicBool::new(false),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            stats: Arc::new(ExportStats::with_shards(shards)),
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
                        // Before the processor is handed out: what its spans ask of the stock
                        // from then on is counted.
                        let restocker = Restocker::register();
                        let _ = ready_tx.send(Ok(()));
                        Worker {
                            shared: worker_shared,
                            rt,
                            exporter,
                            config,
                            taken: (0..shards).map(|_| Vec::new()).collect(),
                            keep_capacity: config.max_queue_size / shards,
                            reporter: Reporter::default(),
                            restocker,
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
                // At most an eighth of the queue reserved and unused across the shards.
                chunk: (config.max_queue_size / (8 * shards)).clamp(1, 64),
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

    /// Reserves up to `chunk` queue slots for `shard`, whose reserved slots are all filled,
    /// and reports the spans it queued since it last did. Returns the slots reserved (none when
    /// the queue is full) and whether the worker should be woken: the reported spans now make a
    /// batch, or these were the queue's last free slots (with a batch as large as the queue,
    /// spread over the shards, the first alone could wait for the timer).
    fn reserve(&self, shard: &mut ShardState) -> (usize, bool) {
        let pool = &self.shared.pool;
        let batch = self.config.max_export_batch_size;
        let reported = std::mem::take(&mut shard.unreported);
        // (Nothing to report when the queue was full: no write to the shared line.)
        let batch_waiting = reported > 0 && {
            let before = pool.reported.fetch_add(reported, Ordering::Relaxed);
            before < batch && before + reported >= batch
        };
        match pool
            .free
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |free| {
                (free > 0).then(|| free - free.min(self.chunk))
            }) {
            Ok(free) => (free.min(self.chunk), batch_waiting || free <= self.chunk),
            Err(_) => (0, batch_waiting),
        }
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
            stock::give_back_span(span);
            return;
        }
        let shared = &*self.shared;
        let index = shard_index(shared.shards.len());
        let counters = &shared.stats.shards[index];
        let mut shard = shared.shards[index].lock();
        // Read under the shard's lock: once the worker has taken this shard for the last time
        // (after setting the flag), no span is queued here unseen.
        let shutdown = shared.shutdown.load(Ordering::Acquire);
        let mut wake = false;
        if !shutdown && shard.reserved == 0 {
            let (reserved, batch_waiting) = self.reserve(&mut shard);
            wake = batch_waiting;
            shard.reserved = reserved;
        }
        if shutdown || shard.reserved == 0 {
            drop(shard);
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            stock::give_back_span(span);
        } else {
            shard.reserved -= 1;
            shard.unreported += 1;
            shard.spans.push(span);
            wake |= shard.spans.len() == self.config.max_export_batch_size;
            drop(shard);
            counters.queued.fetch_add(1, Ordering::Relaxed);
        }
        if wake {
            shared.batch_ready();
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
        self.shared.begin_shutdown(&mut state);
        self.wait_until(state, timeout, |s| s.stopped)?;
        let handle = lock_unpoisoned(&self.worker).take();
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
            self.shared.begin_shutdown(&mut state);
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
    /// The spans taken from each shard: its vector, swapped with this one (empty, its capacity
    /// kept) under the shard's lock.
    taken: Vec<Vec<SpanData>>,
    /// Capacity a vector keeps once exported, the queue's share per shard (a shard that once
    /// held the whole queue does not keep room for it): the vectors that circulate keep at
    /// most twice the queue's slots between them.
    keep_capacity: usize,
    reporter: Reporter,
    restocker: Restocker,
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
                // (`reported` too: spans reported while the worker was taking the shards, past
                // a batch already, woke nobody.)
                let reported = self.shared.pool.reported.load(Ordering::Relaxed);
                if state.shutdown
                    || flushing
                    || state.batch_ready
                    || reported >= self.config.max_export_batch_size
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
            state.batch_ready = false;
            let shutdown = state.shutdown;
            drop(state);

            let exported_any = self.take() > 0;
            self.export_taken();
            if !shutdown {
                // The exported spans' vectors were just freed here: the new ones reuse them.
                self.restocker.restock();
            }
            if exported_any {
                // Lets waiters (tests, `wait_for_exported`) observe progress without polling.
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

    /// Takes every shard's spans (a swap of vectors under each shard's lock) and the slots
    /// the shards reserved and did not fill. Returns the spans taken.
    fn take(&mut self) -> usize {
        let (mut taken, mut unused, mut reported) = (0, 0, 0);
        for (shard, spans) in self.shared.shards.iter().zip(&mut self.taken) {
            let mut shard = shard.lock();
            std::mem::swap(&mut shard.spans, spans);
            unused += std::mem::take(&mut shard.reserved);
            reported += spans.len() - std::mem::take(&mut shard.unreported);
            taken += spans.len();
        }
        let pool = &self.shared.pool;
        pool.free.fetch_add(unused, Ordering::Relaxed);
        pool.reported.fetch_sub(reported, Ordering::Relaxed);
        taken
    }

    /// Exports what [`Worker::take`] took, in batches; each batch's slots are free again once
    /// it is exported (or failed).
    fn export_taken(&mut self) {
        let mut taken = std::mem::take(&mut self.taken);
        let size = self.config.max_export_batch_size;
        let mut left: usize = taken.iter().map(Vec::len).sum();
        let mut batch = Vec::with_capacity(left.min(size));
        for spans in &mut taken {
            while !spans.is_empty() {
                let n = (size - batch.len()).min(spans.len());
                batch.extend(spans.drain(..n));
                if batch.len() == size {
                    left -= size;
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(left.min(size)));
                    self.export_batch(full);
                }
            }
            spans.shrink_to(self.keep_capacity);
        }
        if !batch.is_empty() {
            self.export_batch(batch);
        }
        self.taken = taken;
    }

    fn export_batch(&mut self, batch: Vec<SpanData>) {
        let n = batch.len();
        self.export(batch);
        self.shared.pool.free.fetch_add(n, Ordering::Relaxed);
        // Between batches too: a long backlog to a failing collector is reported while it
        // lasts.
        self.reporter.report(&self.shared.stats, false);
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
        wait_for_exported(&shared, 4);
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 4);
        provider.shutdown().unwrap();
    }

    #[test]
    fn spans_from_many_threads_are_all_exported() {
        let exporter = InMemorySpanExporter::default();
        let config = BatchConfig {
            max_queue_size: 16_384,
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(exporter.clone(), config).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        end_spans_on_threads(&provider, 8, 1_000);
        provider.force_flush().unwrap();
        // 8,000 spans never exceed the queue less what the shards may hold unused.
        assert_eq!(
            (stats.queued(), stats.dropped(), stats.exported()),
            (8_000, 0, 8_000)
        );
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 8_000);
        provider.shutdown().unwrap();
    }

    #[test]
    fn the_queue_bounds_the_spans_of_all_threads() {
        let gate = Gate::closed();
        let config = BatchConfig {
            max_queue_size: 64,
            max_export_batch_size: 8,
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(gate.clone(), config).unwrap();
        let stats = processor.stats();
        let provider = provider(processor);
        end_spans_on_threads(&provider, 4, 500);
        // The exporter holds its first batch: at most 64 spans are held in all, and at most an
        // eighth of the queue can sit reserved and unused in the shards.
        let queued = stats.queued();
        assert!((56..=64).contains(&queued), "{stats:?}");
        assert_eq!(queued + stats.dropped(), 2_000, "{stats:?}");
        gate.open();
        provider.force_flush().unwrap();
        assert_eq!(gate.1.get_finished_spans().unwrap().len() as u64, queued);
        provider.shutdown().unwrap();
    }

    #[test]
    fn a_batch_as_large_as_the_queue_is_exported_when_the_queue_fills() {
        let exporter = InMemorySpanExporter::default();
        let config = BatchConfig {
            max_queue_size: 16,
            max_export_batch_size: 16,
            scheduled_delay: Duration::from_secs(3600),
            ..BatchConfig::default()
        };
        let processor = BatchProcessor::new(exporter.clone(), config).unwrap();
        let shared = Arc::clone(&processor.shared);
        let provider = provider(processor);
        // Spread over the shards, no shard holds a batch: the last free slot wakes the worker.
        end_spans_on_threads(&provider, 4, 4);
        wait_for_exported(&shared, 16);
        assert_eq!(exporter.get_finished_spans().unwrap().len(), 16);
        provider.shutdown().unwrap();
    }

    /// An exporter that blocks until released, so the queue fills up.
    #[derive(Debug, Clone)]
    struct Gate(Arc<(Mutex<bool>, Condvar)>, InMemorySpanExporter);

    impl Gate {
        fn closed() -> Self {
            Gate(
                Arc::new((Mutex::new(false), Condvar::new())),
                InMemorySpanExporter::default(),
            )
        }

        fn open(&self) {
            let (lock, cv) = &*self.0;
            *lock.lock().unwrap() = true;
            cv.notify_all();
        }
    }

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

    /// Ends `per_thread` spans on each of `threads` threads at once.
    fn end_spans_on_threads(provider: &SdkTracerProvider, threads: usize, per_thread: usize) {
        let start = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                let tracer = provider.tracer("test");
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    for _ in 0..per_thread {
                        tracer.in_span("s", |_| {});
                    }
                });
            }
        });
    }

    /// Waits on the worker's signal (it notifies `done` after each export) until `exported`
    /// spans were exported, for at most ten seconds.
    fn wait_for_exported(shared: &Shared, exported: u64) {
        let mut state = shared.lock();
        let deadline = Instant::now() + Duration::from_secs(10);
        while shared.stats.exported() < exported && Instant::now() < deadline {
            state = shared
                .done
                .wait_timeout(state, Duration::from_millis(100))
                .unwrap()
                .0;
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let gate = Gate::closed();
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
        gate.open();
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
