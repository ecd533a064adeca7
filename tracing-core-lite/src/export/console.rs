//! A [`SpanExporter`] that prints every finished trace to the console as an
//! indented call tree.
//!
//! [`ConsoleExporter`] is meant for development and demos. Rather than one
//! line per span in the order the spans happen to end, it buffers spans by
//! trace id, waits until a trace looks complete and then draws the whole trace
//! at once, children under their parent:
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736  4 spans  12.4 ms
//! └─ GET /orders/{id}       gateway  server    12.4 ms  200  http.route=/orders/{id}
//!    ├─ auth                gateway  internal   850 µs  -
//!    └─ shop.Orders/Get     gateway  client     9.8 ms  OK   url.full=http://orders:50051/shop.Orders/Get
//!       └─ shop.Orders/Get  orders   server     9.1 ms  OK   2 events
//! ```
//!
//! A process that only sees part of a trace, for instance the server side of
//! a call, prints a partial tree in which spans whose parent is missing are
//! drawn at the top level with a hint:
//!
//! ```text
//! trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans  900 µs
//! └─ shop.Orders/Get   orders  server  900 µs  -  ↖ parent 00f067aa0ba902b7 (remote)
//!    └─ SELECT orders  orders  client  700 µs  -  db.system.name=postgresql
//! ```
//!
//! # Example
//!
//! ```
//! use opentelemetry::trace::{Tracer as _, TracerProvider as _};
//! use opentelemetry_sdk::Resource;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use tracing_core_lite::export::console::ConsoleExporter;
//!
//! let provider = SdkTracerProvider::builder()
//!     .with_resource(Resource::builder().with_service_name("gateway").build())
//!     .with_simple_exporter(ConsoleExporter::stdout())
//!     .build();
//!
//! provider.tracer("demo").in_span("GET /orders/{id}", |_cx| {
//!     // handle the request
//! });
//!
//! // Prints whatever is still buffered.
//! provider.shutdown()?;
//! # Ok::<(), opentelemetry_sdk::error::OTelSdkError>(())
//! ```
//!
//! # Several services in one process
//!
//! A demo that runs several services in one process, each with its own
//! tracer provider and its own `service.name`, should give every provider a
//! clone of one exporter. Clones share a single buffer and printer, so spans
//! from all services end up in one tree, while each clone remembers the
//! `service.name` its provider passed to [`SpanExporter::set_resource`].
//! Shutting down one provider prints everything buffered so far, for all
//! services; the background thread runs until every clone has been shut down
//! or dropped.
//!
//!
//! ```
//! use opentelemetry_sdk::Resource;
//! use opentelemetry_sdk::trace::SdkTracerProvider;
//! use tracing_core_lite::export::console::ConsoleExporter;
//!
//! let console = ConsoleExporter::stdout();
//! let providers: Vec<SdkTracerProvider> = ["gateway", "orders", "payments"]
//!     .into_iter()
//!     .map(|service| {
//!         SdkTracerProvider::builder()
//!             .with_resource(Resource::builder().with_service_name(service).build())
//!             .with_simple_exporter(console.clone())
//!             .build()
//!     })
//!     .collect();
//! # drop(providers);
//! ```
//!
//! # When a trace is printed
//!
//! Spans are buffered by trace id. A trace is printed
//!
//! * once its root span (a span without a parent) has arrived and no further
//!   span of the trace has arrived for the *grace* period
//!   ([`ConsoleExporter::with_grace`], 300 ms by default). Spans exported in
//!   other batches or by other providers join the tree as long as each of
//!   them arrives within the grace period of the previous one;
//! * otherwise, once no span of the trace has arrived for the *orphan
//!   timeout* ([`ConsoleExporter::with_orphan_timeout`], 5 s by default). This
//!   is the normal case for a process that only sees the server side of a
//!   call. Until then, spans that end before their parent (children, or a
//!   server span in one service while the client span calling it is still
//!   open in another) simply wait for it, so the orphan timeout should be
//!   longer than the longest span expected to have its children drawn under
//!   it;
//! * on [`SpanExporter::force_flush`] and [`SpanExporter::shutdown`], together
//!   with everything else still buffered;
//! * immediately when more than [`ConsoleExporter::with_max_buffered_spans`]
//!   spans (10 000 by default) are buffered: the oldest traces are printed,
//!   complete or not, until the buffer is within its bound again.
//!
//! Traces printed at the same time are printed in the order they started (by
//! their earliest span), whatever order their spans arrived in.
//!
//! A background thread named `otel-console` checks the first two conditions
//! every 100 ms, or twice per grace period or orphan timeout if either is
//! shorter than 200 ms. It is started by the first export, holds no strong
//! reference to the exporter and stops once every clone has been shut down or
//! dropped. Dropping the last clone that was not shut down prints what is
//! still buffered.
//!
//! Spans that arrive after their trace has been printed form a new, partial
//! tree. With a batch span processor, choose a grace period longer than the
//! processor's scheduled delay so that spans of the next batch are not late.
//!
//! # Output format
//!
//! Each trace starts with a header line holding the trace id, the number of
//! spans and the trace's duration (latest end minus earliest start of its
//! spans). Then comes one line per span, siblings in start-time order, with
//! the columns aligned within the trace:
//!
//! 1. the tree drawing and the span name;
//! 2. the `service.name` of the exporter clone the span was exported through
//!    (`-` if no resource was set);
//! 3. the span kind: `server`, `client`, `producer`, `consumer` or `internal`;
//! 4. the duration: `ns` below a microsecond, whole `µs` below a millisecond,
//!    `ms` with one decimal below a second, else `s` with two decimals;
//! 5. the status, the first of
//!    * `rpc.response.status_code` as is (`OK`, `INTERNAL`, …; an integer is
//!      shown as its gRPC code name),
//!    * `rpc.grpc.status_code` as its gRPC code name (`13` is shown as
//!      `INTERNAL`),
//!    * `http.response.status_code` (or the legacy `http.status_code`), e.g.
//!      `200`,
//!    * the span status: `OK`, `ERROR`, or `-` when unset;
//! 6. details, separated by two spaces, each only when present:
//!    * for spans with an error status, the status description in quotes, or
//!      else `error.type=<value>`;
//!    * `url.full=<value>` on client spans, otherwise `http.route=<value>` or
//!      else `url.path=<value>`;
//!    * `messaging.destination.name=<value>`;
//!    * `db.system.name=<value>` (or the legacy `db.system=<value>`);
//!    * the number of span events, as `1 event` or `3 events`;
//!    * for a span whose parent is not part of the printed trace, `↖ parent
//!      <span id>`, followed by `(remote)` if the parent is remote.
//!
//! Names and values longer than 64 characters are cut short with `…`, and
//! control characters are escaped (`\n`), so every span takes exactly one line
//! and no terminal escape sequences are written. No colours are used.
//!
//! # Errors
//!
//! Exporting never fails because of the output: write errors are counted (see
//! [`ConsoleExporter::write_errors`]) and otherwise ignored, and a lock
//! poisoned by a panicking writer is recovered. Calls on a clone that has been
//! shut down return [`OTelSdkError::AlreadyShutdown`]; shutting down the last
//! clone returns [`OTelSdkError::Timeout`] if the background thread does not
//! exit in time.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread;
use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Key, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

use crate::lock_unpoisoned;

const DEFAULT_GRACE: Duration = Duration::from_millis(300);
const DEFAULT_ORPHAN_TIMEOUT: Duration = Duration::from_secs(5);
const DEFAULT_MAX_BUFFERED_SPANS: usize = 10_000;

/// Upper and lower bound of the interval at which the background thread looks
/// for traces to print.
const MAX_TICK: Duration = Duration::from_millis(100);
const MIN_TICK: Duration = Duration::from_millis(5);

/// Name of the background thread.
const TICKER_THREAD_NAME: &str = "otel-console";

/// Longest name or attribute value, in characters, printed without cutting.
const MAX_TEXT_CHARS: usize = 64;

/// A [`SpanExporter`] that prints each finished trace as an indented call tree.
///
/// See the [module documentation](self) for when traces are printed and what
/// the output looks like.
///
/// Clones share one buffer, printer and configuration; each clone keeps the
/// `service.name` it was given through [`SpanExporter::set_resource`]. Give a
/// clone to every tracer provider of the process to get one tree per trace
/// across services.
pub struct ConsoleExporter {
    shared: Arc<Shared>,
    service: Option<Arc<str>>,
    is_shutdown: AtomicBool,
}

impl ConsoleExporter {
    /// Creates an exporter that prints to standard output.
    #[must_use]
    pub fn stdout() -> Self {
        Self::with_writer(io::stdout())
    }

    /// Creates an exporter that prints to `writer`.
    ///
    /// Each trace is written with a single `write_all` call, and the writer is
    /// flushed after every group of traces printed together. The writer must
    /// not create spans exported through this exporter.
    #[must_use]
    pub fn with_writer(writer: impl Write + Send + 'static) -> Self {
        let shared = Shared {
            buffer: Mutex::new(Buffer::new(Config::default())),
            writer: Mutex::new(Box::new(writer)),
            write_errors: AtomicU64::new(0),
            live_exporters: AtomicUsize::new(1),
            ticker: Arc::new(Ticker::default()),
        };
        Self {
            shared: Arc::new(shared),
            service: None,
            is_shutdown: AtomicBool::new(false),
        }
    }

    /// Sets how long to wait for further spans of a trace after its root span
    /// has arrived (300 ms by default).
    ///
    /// The setting is shared by all clones of this exporter.
    #[must_use]
    pub fn with_grace(self, grace: Duration) -> Self {
        lock_unpoisoned(&self.shared.buffer).config.grace = grace;
        self
    }

    /// Sets how long to wait for further spans of a trace whose root span has
    /// not arrived (5 s by default).
    ///
    /// It should be longer than the longest span whose children are expected
    /// to be drawn under it. The setting is shared by all clones of this
    /// exporter.
    #[must_use]
    pub fn with_orphan_timeout(self, orphan_timeout: Duration) -> Self {
        lock_unpoisoned(&self.shared.buffer).config.orphan_timeout = orphan_timeout;
        self
    }

    /// Sets how many spans may be buffered before the oldest traces are
    /// printed, complete or not (10 000 by default).
    ///
    /// The bound is shared by all clones of this exporter.
    #[must_use]
    pub fn with_max_buffered_spans(self, max_buffered_spans: usize) -> Self {
        lock_unpoisoned(&self.shared.buffer)
            .config
            .max_buffered_spans = max_buffered_spans;
        self
    }

    /// Returns how many writes or flushes of the output have failed, across
    /// all clones.
    pub fn write_errors(&self) -> u64 {
        self.shared.write_errors.load(Ordering::Relaxed)
    }
}

impl Default for ConsoleExporter {
    /// Same as [`ConsoleExporter::stdout`].
    fn default() -> Self {
        Self::stdout()
    }
}

impl Clone for ConsoleExporter {
    /// Returns an exporter that shares this one's buffer, printer and
    /// configuration, with the same `service.name` until
    /// [`SpanExporter::set_resource`] is called on it.
    ///
    /// A clone of an exporter that has been shut down is shut down as well.
    fn clone(&self) -> Self {
        let is_shutdown = self.is_shutdown.load(Ordering::Acquire);
        if !is_shutdown {
            self.shared.live_exporters.fetch_add(1, Ordering::AcqRel);
        }
        Self {
            shared: Arc::clone(&self.shared),
            service: self.service.clone(),
            is_shutdown: AtomicBool::new(is_shutdown),
        }
    }
}

impl Drop for ConsoleExporter {
    /// Dropping the last clone that is not shut down prints whatever is still
    /// buffered and stops the background thread.
    fn drop(&mut self) {
        if !*self.is_shutdown.get_mut() {
            self.shared.release();
        }
    }
}

impl fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsoleExporter")
            .field("service", &self.service)
            .field("config", &lock_unpoisoned(&self.shared.buffer).config)
            .field("is_shutdown", &self.is_shutdown.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SpanExporter for ConsoleExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.is_shutdown.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.shared
            .ingest(batch, self.service.as_ref(), Instant::now());
        Ok(())
    }

    /// Prints every buffered trace, complete or not, of all clones.
    fn force_flush(&self) -> OTelSdkResult {
        if self.is_shutdown.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.shared.flush_all();
        Ok(())
    }

    /// Prints every buffered trace of all clones and shuts this clone down.
    ///
    /// Once every clone has been shut down or dropped, the background thread
    /// is stopped; shutting down the last clone waits up to `timeout` for it
    /// to exit.
    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.is_shutdown.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.shared.flush_all();
        if self.shared.live_exporters.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.ticker.stop();
            if !self.shared.ticker.wait_exited(timeout) {
                return Err(OTelSdkError::Timeout(timeout));
            }
        }
        Ok(())
    }

    /// Remembers the resource's `service.name` for the spans exported through
    /// this clone.
    fn set_resource(&mut self, resource: &Resource) {
        self.service = resource
            .get_ref(&Key::from_static_str("service.name"))
            .map(|name| Arc::from(name.as_str()));
    }
}

/// State shared by all clones of a [`ConsoleExporter`].
struct Shared {
    buffer: Mutex<Buffer>,
    writer: Mutex<Box<dyn Write + Send>>,
    write_errors: AtomicU64,
    /// Clones that are neither shut down nor dropped.
    live_exporters: AtomicUsize,
    ticker: Arc<Ticker>,
}

impl Shared {
    /// Buffers `batch` and prints the traces evicted to respect the bound.
    fn ingest(self: &Arc<Self>, batch: Vec<SpanData>, service: Option<&Arc<str>>, now: Instant) {
        let mut buffer = lock_unpoisoned(&self.buffer);
        let mut ready = buffer.insert(batch, service, now);
        let period = buffer.config.tick_period();
        if !self.ticker.ensure_running(period, self) {
            // Without a background thread, idle traces are printed on export.
            ready.extend(buffer.take_idle(now));
        }
        self.print(buffer, ready);
    }

    /// Prints the idle traces and returns how long to wait for the next tick.
    fn tick(&self, now: Instant) -> Duration {
        let mut buffer = lock_unpoisoned(&self.buffer);
        let ready = buffer.take_idle(now);
        let period = buffer.config.tick_period();
        self.print(buffer, ready);
        period
    }

    /// Prints every buffered trace.
    fn flush_all(&self) {
        let mut buffer = lock_unpoisoned(&self.buffer);
        let ready = buffer.take_all();
        self.print(buffer, ready);
    }

    /// Called when a clone is shut down or dropped without being shut down.
    fn release(&self) {
        if self.live_exporters.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.flush_all();
            self.ticker.stop();
        }
    }

    /// Writes `traces`, in order.
    ///
    /// The writer is locked before the buffer is released, so traces are
    /// written in the order in which they were taken out of the buffer, while
    /// exports can go on buffering during the write.
    fn print(&self, buffer: MutexGuard<'_, Buffer>, traces: Vec<ReadyTrace>) {
        if traces.is_empty() {
            return;
        }
        let mut writer = lock_unpoisoned(&self.writer);
        drop(buffer);
        for trace in traces {
            let text = render_trace(trace.trace_id, &trace.spans);
            if writer.write_all(text.as_bytes()).is_err() {
                self.write_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        if writer.flush().is_err() {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

#[derive(Clone, Copy, Debug)]
struct Config {
    grace: Duration,
    orphan_timeout: Duration,
    max_buffered_spans: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            grace: DEFAULT_GRACE,
            orphan_timeout: DEFAULT_ORPHAN_TIMEOUT,
            max_buffered_spans: DEFAULT_MAX_BUFFERED_SPANS,
        }
    }
}

impl Config {
    /// Ticks at least twice per grace period (and orphan timeout), within
    /// [`MIN_TICK`]..=[`MAX_TICK`].
    fn tick_period(&self) -> Duration {
        (self.grace.min(self.orphan_timeout) / 2).clamp(MIN_TICK, MAX_TICK)
    }
}

/// A finished span and the `service.name` of the exporter it came through.
#[derive(Clone, Debug)]
struct BufferedSpan {
    data: SpanData,
    service: Option<Arc<str>>,
}

/// The spans of one trace, waiting to be printed.
#[derive(Debug)]
struct PendingTrace {
    /// Position in [`Buffer::arrival`].
    seq: u64,
    spans: Vec<BufferedSpan>,
    has_root: bool,
    last_arrival: Instant,
}

/// A trace taken out of the buffer, to be printed.
#[derive(Debug)]
struct ReadyTrace {
    trace_id: TraceId,
    spans: Vec<BufferedSpan>,
}

/// Spans grouped by trace, and the rules deciding when a trace is printed.
///
/// Time is passed in by the caller, which keeps the rules deterministic and
/// testable.
#[derive(Debug)]
struct Buffer {
    config: Config,
    traces: HashMap<TraceId, PendingTrace>,
    /// Trace ids by order of the first arrival of one of their spans.
    arrival: BTreeMap<u64, TraceId>,
    next_seq: u64,
    /// Number of spans in `traces`.
    len: usize,
}

impl Buffer {
    fn new(config: Config) -> Self {
        Self {
            config,
            traces: HashMap::new(),
            arrival: BTreeMap::new(),
            next_seq: 0,
            len: 0,
        }
    }

    /// Adds `batch`, then removes the oldest traces while more than the
    /// maximum number of spans are buffered, and returns them.
    fn insert(
        &mut self,
        batch: Vec<SpanData>,
        service: Option<&Arc<str>>,
        now: Instant,
    ) -> Vec<ReadyTrace> {
        for data in batch {
            let trace_id = data.span_context.trace_id();
            let trace = self.traces.entry(trace_id).or_insert_with(|| {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.arrival.insert(seq, trace_id);
                PendingTrace {
                    seq,
                    spans: Vec::new(),
                    has_root: false,
                    last_arrival: now,
                }
            });
            trace.has_root |= data.parent_span_id == SpanId::INVALID;
            trace.last_arrival = now;
            trace.spans.push(BufferedSpan {
                data,
                service: service.cloned(),
            });
            self.len += 1;
        }

        let mut evicted = Vec::new();
        while self.len > self.config.max_buffered_spans {
            let Some((_, trace_id)) = self.arrival.pop_first() else {
                break;
            };
            if let Some(trace) = self.traces.remove(&trace_id) {
                self.len = self.len.saturating_sub(trace.spans.len());
                evicted.push(ReadyTrace {
                    trace_id,
                    spans: trace.spans,
                });
            }
        }
        evicted
    }

    /// Removes and returns the traces that waited long enough, in the order they started.
    fn take_idle(&mut self, now: Instant) -> Vec<ReadyTrace> {
        let Config {
            grace,
            orphan_timeout,
            ..
        } = self.config;
        let idle: Vec<TraceId> = self
            .arrival
            .values()
            .filter(|trace_id| {
                self.traces.get(trace_id).is_some_and(|trace| {
                    let waited = now.saturating_duration_since(trace.last_arrival);
                    (trace.has_root && waited >= grace) || waited >= orphan_timeout
                })
            })
            .copied()
            .collect();
        by_start(
            idle.into_iter()
                .filter_map(|trace_id| self.remove(trace_id))
                .collect(),
        )
    }

    /// Removes and returns all traces, in the order they started.
    fn take_all(&mut self) -> Vec<ReadyTrace> {
        let traces = std::mem::take(&mut self.arrival)
            .into_values()
            .filter_map(|trace_id| {
                let trace = self.traces.remove(&trace_id)?;
                Some(ReadyTrace {
                    trace_id,
                    spans: trace.spans,
                })
            })
            .collect();
        self.traces.clear();
        self.len = 0;
        by_start(traces)
    }

    fn remove(&mut self, trace_id: TraceId) -> Option<ReadyTrace> {
        let trace = self.traces.remove(&trace_id)?;
        self.arrival.remove(&trace.seq);
        self.len = self.len.saturating_sub(trace.spans.len());
        Some(ReadyTrace {
            trace_id,
            spans: trace.spans,
        })
    }
}

/// `traces` in the order they started (their earliest span's start), ties in arrival order:
/// the spans of concurrent requests may reach the exporter in any order (the batch processor
/// collects them from several threads' shards), the requests themselves did not.
fn by_start(mut traces: Vec<ReadyTrace>) -> Vec<ReadyTrace> {
    traces.sort_by_cached_key(|trace| trace.spans.iter().map(|s| s.data.start_time).min());
    traces
}

/// Control block of the background thread.
///
/// The thread owns an `Arc<Ticker>` but only a `Weak<Shared>`, so it never
/// keeps the buffer alive.
#[derive(Debug, Default)]
struct Ticker {
    state: Mutex<TickerState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct TickerState {
    spawned: bool,
    stopped: bool,
    exited: bool,
}

impl Ticker {
    /// Starts the thread unless it was started or stopped before; returns
    /// whether it is running.
    fn ensure_running(self: &Arc<Self>, period: Duration, shared: &Arc<Shared>) -> bool {
        let mut state = lock_unpoisoned(&self.state);
        if !state.spawned && !state.stopped {
            state.spawned = true;
            let ticker = Arc::clone(self);
            let shared = Arc::downgrade(shared);
            let spawned = thread::Builder::new()
                .name(TICKER_THREAD_NAME.to_owned())
                .spawn(move || ticker.run(period, &shared));
            if spawned.is_err() {
                state.exited = true;
            }
        }
        state.spawned && !state.exited
    }

    fn run(&self, mut period: Duration, shared: &Weak<Shared>) {
        let _exited = ExitGuard(self);
        while self.sleep(period) {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            period = shared.tick(Instant::now());
        }
    }

    /// Waits for `period` or until stopped; returns `false` once stopped.
    fn sleep(&self, period: Duration) -> bool {
        let state = lock_unpoisoned(&self.state);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, period, |state| !state.stopped)
            .unwrap_or_else(PoisonError::into_inner);
        !state.stopped
    }

    fn stop(&self) {
        lock_unpoisoned(&self.state).stopped = true;
        self.changed.notify_all();
    }

    /// Waits up to `timeout` for the thread to exit; returns whether it is
    /// gone (or never ran).
    fn wait_exited(&self, timeout: Duration) -> bool {
        let state = lock_unpoisoned(&self.state);
        let (state, _) = self
            .changed
            .wait_timeout_while(state, timeout, |state| state.spawned && !state.exited)
            .unwrap_or_else(PoisonError::into_inner);
        !state.spawned || state.exited
    }

    #[cfg(test)]
    fn is_running(&self) -> bool {
        let state = lock_unpoisoned(&self.state);
        state.spawned && !state.exited
    }
}

/// Marks the thread as exited, even if it unwinds.
struct ExitGuard<'a>(&'a Ticker);

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        lock_unpoisoned(&self.0.state).exited = true;
        self.0.changed.notify_all();
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// One printed line, column by column.
struct Row {
    label: String,
    service: String,
    kind: &'static str,
    duration: String,
    status: String,
    details: String,
}

/// A span waiting to be drawn by [`render_trace`].
struct Visit {
    index: usize,
    /// Tree drawing in front of the span's branch.
    indent: String,
    /// Whether the span is the last of its siblings.
    is_last: bool,
    is_root: bool,
}

/// Draws one trace: a header line, then one line per span, see the [module
/// documentation](self).
fn render_trace(trace_id: TraceId, spans: &[BufferedSpan]) -> String {
    let (roots, children) = build_forest(spans);

    let mut rows = Vec::with_capacity(spans.len());
    // Depth-first, pre-order. Roots are pushed in reverse so that they pop in
    // order; the first one pushed is the last sibling.
    let mut stack: Vec<Visit> = roots
        .iter()
        .rev()
        .enumerate()
        .map(|(n, &index)| Visit {
            index,
            indent: String::new(),
            is_last: n == 0,
            is_root: true,
        })
        .collect();
    while let Some(Visit {
        index,
        indent,
        is_last,
        is_root,
    }) = stack.pop()
    {
        let span = &spans[index];
        let (branch, continuation) = if is_last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        rows.push(Row {
            label: format!("{indent}{branch}{}", one_line(&span.data.name)),
            service: span
                .service
                .as_deref()
                .map_or_else(|| "-".to_owned(), one_line),
            kind: kind_label(&span.data.span_kind),
            duration: format_duration(span_duration(&span.data)),
            status: status_label(&span.data),
            details: details(&span.data, is_root),
        });
        let child_indent = format!("{indent}{continuation}");
        stack.extend(
            children[index]
                .iter()
                .rev()
                .enumerate()
                .map(|(n, &child)| Visit {
                    index: child,
                    indent: child_indent.clone(),
                    is_last: n == 0,
                    is_root: false,
                }),
        );
    }

    let start = spans.iter().map(|span| span.data.start_time).min();
    let end = spans.iter().map(|span| span.data.end_time).max();
    let duration = match (start, end) {
        (Some(start), Some(end)) => end.duration_since(start).unwrap_or_default(),
        _ => Duration::ZERO,
    };
    let noun = if spans.len() == 1 { "span" } else { "spans" };
    let mut out = format!(
        "trace {trace_id}  {} {noun}  {}\n",
        spans.len(),
        format_duration(duration)
    );

    let width = |column: fn(&Row) -> &str| {
        rows.iter()
            .map(|row| column(row).chars().count())
            .max()
            .unwrap_or(0)
    };
    let label_width = width(|row| &row.label);
    let service_width = width(|row| &row.service);
    let kind_width = width(|row| row.kind);
    let duration_width = width(|row| &row.duration);
    let status_width = width(|row| &row.status);
    let mut line = String::new();
    for row in &rows {
        line.clear();
        // Writing to a `String` cannot fail.
        let _ = write!(
            line,
            "{:<label_width$}  {:<service_width$}  {:<kind_width$}  {:>duration_width$}  {:<status_width$}  {}",
            row.label, row.service, row.kind, row.duration, row.status, row.details,
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Arranges the spans of a trace as a forest.
///
/// Returns the roots and, for every span, its children, both in start-time
/// order. A span is a root if it has no parent or if its parent is not among
/// `spans`. Parent cycles, which only malformed input can contain, are cut so
/// that every span is drawn exactly once.
fn build_forest(spans: &[BufferedSpan]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut by_id = HashMap::with_capacity(spans.len());
    for (index, span) in spans.iter().enumerate() {
        by_id
            .entry(span.data.span_context.span_id())
            .or_insert(index);
    }
    let parents: Vec<Option<usize>> = spans
        .iter()
        .enumerate()
        .map(|(index, span)| {
            Some(span.data.parent_span_id)
                .filter(|&parent| parent != SpanId::INVALID)
                .and_then(|parent| by_id.get(&parent).copied())
                .filter(|&parent| parent != index)
        })
        .collect();
    let mut roots = Vec::new();
    let mut children = vec![Vec::new(); spans.len()];
    for (index, parent) in parents.iter().enumerate() {
        match *parent {
            Some(parent) => children[parent].push(index),
            None => roots.push(index),
        }
    }

    let mut reached = vec![false; spans.len()];
    for &root in &roots {
        mark_reachable(root, &children, &mut reached);
    }
    if reached.contains(&false) {
        let mut unreached: Vec<usize> = (0..spans.len()).filter(|&i| !reached[i]).collect();
        unreached.sort_by_key(|&index| spans[index].data.start_time);
        for index in unreached {
            if reached[index] {
                continue;
            }
            if let Some(parent) = parents[index] {
                children[parent].retain(|&child| child != index);
            }
            roots.push(index);
            mark_reachable(index, &children, &mut reached);
        }
    }

    let by_start = |&a: &usize, &b: &usize| {
        let (a, b) = (&spans[a].data, &spans[b].data);
        a.start_time
            .cmp(&b.start_time)
            .then(a.end_time.cmp(&b.end_time))
    };
    roots.sort_by(by_start);
    for siblings in &mut children {
        siblings.sort_by(by_start);
    }
    (roots, children)
}

/// Marks `from` and its descendants in `reached`.
fn mark_reachable(from: usize, children: &[Vec<usize>], reached: &mut [bool]) {
    let mut stack = vec![from];
    while let Some(index) = stack.pop() {
        if !std::mem::replace(&mut reached[index], true) {
            stack.extend(&children[index]);
        }
    }
}

fn span_duration(span: &SpanData) -> Duration {
    span.end_time
        .duration_since(span.start_time)
        .unwrap_or_default()
}

fn kind_label(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

/// Formats a duration as `850 µs`, `12.4 ms` or `1.25 s` (`ns` below 1 µs).
fn format_duration(duration: Duration) -> String {
    /// `nanos` in units of `10^-decimals` of a unit of `per_unit` nanoseconds,
    /// rounded half up.
    fn steps(nanos: u128, per_unit: u128, decimals: u32) -> u128 {
        let step = per_unit / 10_u128.pow(decimals);
        (nanos + step / 2) / step
    }
    fn show(steps: u128, decimals: u32, unit: &str) -> String {
        let places = 10_u128.pow(decimals);
        let (whole, fraction) = (steps / places, steps % places);
        if decimals == 0 {
            format!("{whole} {unit}")
        } else {
            format!(
                "{whole}.{fraction:0width$} {unit}",
                width = decimals as usize
            )
        }
    }

    let nanos = duration.as_nanos();
    if nanos < 1_000 {
        return format!("{nanos} ns");
    }
    for (per_unit, unit, decimals) in [(1_000, "µs", 0), (1_000_000, "ms", 1)] {
        let steps = steps(nanos, per_unit, decimals);
        // Rounding up to 1000 units moves to the next unit: `1.0 ms`, not `1000 µs`.
        if steps < 1_000 * 10_u128.pow(decimals) {
            return show(steps, decimals, unit);
        }
    }
    show(steps(nanos, 1_000_000_000, 2), 2, "s")
}

/// The status column, see the [module documentation](self).
fn status_label(span: &SpanData) -> String {
    if let Some(value) = attribute(span, "rpc.response.status_code") {
        return match value {
            Value::I64(code) => grpc_code_label(*code),
            other => one_line(&other.as_str()),
        };
    }
    if let Some(value) = attribute(span, "rpc.grpc.status_code") {
        return match value {
            Value::I64(code) => grpc_code_label(*code),
            other => one_line(&other.as_str()),
        };
    }
    if let Some(value) =
        attribute(span, "http.response.status_code").or_else(|| attribute(span, "http.status_code"))
    {
        return one_line(&value.as_str());
    }
    match span.status {
        Status::Ok => "OK",
        Status::Error { .. } => "ERROR",
        Status::Unset => "-",
    }
    .to_owned()
}

/// Names a gRPC status code, or prints the number if it is not a known code.
fn grpc_code_label(code: i64) -> String {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|code| NAMES.get(code))
        .map_or_else(|| code.to_string(), |name| (*name).to_owned())
}

/// The details column, see the [module documentation](self).
fn details(span: &SpanData, is_root: bool) -> String {
    let shown = |key: &str| {
        attribute(span, key).map(|value| format!("{key}={}", one_line(&value.as_str())))
    };
    let mut parts = Vec::new();
    if let Status::Error { description } = &span.status {
        parts.extend(if description.is_empty() {
            shown("error.type")
        } else {
            Some(format!("\"{}\"", one_line(description)))
        });
    }
    let url = (span.span_kind == SpanKind::Client)
        .then(|| shown("url.full"))
        .flatten();
    parts.extend(
        url.or_else(|| shown("http.route"))
            .or_else(|| shown("url.path")),
    );
    parts.extend(shown("messaging.destination.name"));
    parts.extend(shown("db.system.name").or_else(|| shown("db.system")));
    match span.events.len() {
        0 => {}
        1 => parts.push("1 event".to_owned()),
        n => parts.push(format!("{n} events")),
    }
    if is_root && span.parent_span_id != SpanId::INVALID {
        let remote = if span.parent_span_is_remote {
            " (remote)"
        } else {
            ""
        };
        parts.push(format!("↖ parent {}{remote}", span.parent_span_id));
    }
    parts.join("  ")
}

fn attribute<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|attribute| attribute.key.as_str() == key)
        .map(|attribute| &attribute.value)
}

/// Makes `text` safe to print on one line: control characters are escaped and
/// text longer than [`MAX_TEXT_CHARS`] is cut short with `…`.
fn one_line(text: &str) -> String {
    let cut = text.chars().nth(MAX_TEXT_CHARS).is_some();
    let keep = if cut {
        MAX_TEXT_CHARS - 1
    } else {
        MAX_TEXT_CHARS
    };
    let mut out = String::with_capacity(text.len().min(4 * MAX_TEXT_CHARS));
    for c in text.chars().take(keep) {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::future::Future as _;
    use std::task::{Context, Poll, Waker};
    use std::time::SystemTime;

    use opentelemetry::trace::{
        Span as _, SpanContext, TraceContextExt as _, TraceFlags, TraceState, Tracer as _,
        TracerProvider as _,
    };
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanEvents, SpanLinks};

    use super::*;

    const TRACE: u128 = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;

    /// A writer whose output the test can read.
    #[derive(Clone, Default)]
    struct Output(Arc<Mutex<Vec<u8>>>);

    impl Write for Output {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock_unpoisoned(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Output {
        fn text(&self) -> String {
            String::from_utf8_lossy(&lock_unpoisoned(&self.0)).into_owned()
        }

        /// Waits up to one second for something to be written.
        fn wait(&self) -> String {
            let deadline = Instant::now() + Duration::from_secs(1);
            while Instant::now() < deadline {
                let text = self.text();
                if !text.is_empty() {
                    return text;
                }
                thread::sleep(Duration::from_millis(5));
            }
            self.text()
        }
    }

    struct FailingWriter;

    impl Write for FailingWriter {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    fn at(micros: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_micros(micros)
    }

    /// A span of `trace` lasting from `start` to `end` microseconds.
    fn span(
        trace: u128,
        id: u64,
        parent: u64,
        name: &'static str,
        kind: SpanKind,
        (start, end): (u64, u64),
    ) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(trace),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: false,
            span_kind: kind,
            name: name.into(),
            start_time: at(start),
            end_time: at(end),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::default(),
        }
    }

    fn with(mut span: SpanData, attributes: impl IntoIterator<Item = KeyValue>) -> SpanData {
        span.attributes.extend(attributes);
        span
    }

    fn buffered(data: SpanData, service: &str) -> BufferedSpan {
        BufferedSpan {
            data,
            service: Some(Arc::from(service)),
        }
    }

    fn serving(mut exporter: ConsoleExporter, service: &'static str) -> ConsoleExporter {
        exporter.set_resource(&Resource::builder_empty().with_service_name(service).build());
        exporter
    }

    /// Runs `export`, which never waits.
    fn export(exporter: &ConsoleExporter, batch: Vec<SpanData>) -> OTelSdkResult {
        let mut future = std::pin::pin!(exporter.export(batch));
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(result) => result,
            Poll::Pending => panic!("export is not expected to wait"),
        }
    }

    fn trace_count(text: &str) -> usize {
        text.lines()
            .filter(|line| line.starts_with("trace "))
            .count()
    }

    /// The spans of the module documentation's example, in the order in which
    /// they end.
    fn checkout_spans() -> Vec<SpanData> {
        let mut events = SpanEvents::default();
        for name in ["request", "response"] {
            events.events.push(opentelemetry::trace::Event::new(
                name,
                at(3_000),
                Vec::new(),
                0,
            ));
        }
        let mut server = with(
            span(
                TRACE,
                4,
                3,
                "shop.Orders/Get",
                SpanKind::Server,
                (2_300, 11_400),
            ),
            [KeyValue::new("rpc.response.status_code", "OK")],
        );
        server.events = events;
        server.parent_span_is_remote = true;
        vec![
            server,
            with(
                span(
                    TRACE,
                    3,
                    1,
                    "shop.Orders/Get",
                    SpanKind::Client,
                    (2_000, 11_800),
                ),
                [
                    KeyValue::new("rpc.response.status_code", "OK"),
                    KeyValue::new("url.full", "http://orders:50051/shop.Orders/Get"),
                ],
            ),
            span(TRACE, 2, 1, "auth", SpanKind::Internal, (100, 950)),
            with(
                span(
                    TRACE,
                    1,
                    0,
                    "GET /orders/{id}",
                    SpanKind::Server,
                    (0, 12_400),
                ),
                [
                    KeyValue::new("http.response.status_code", 200),
                    KeyValue::new("http.route", "/orders/{id}"),
                ],
            ),
        ]
    }

    #[test]
    fn renders_tree_with_siblings_in_start_order() {
        let spans: Vec<BufferedSpan> = checkout_spans()
            .into_iter()
            .map(|span| {
                let service = if span.span_context.span_id() == SpanId::from(4) {
                    "orders"
                } else {
                    "gateway"
                };
                buffered(span, service)
            })
            .collect();

        let expected = "\
trace 4bf92f3577b34da6a3ce929d0e0e4736  4 spans  12.4 ms
└─ GET /orders/{id}       gateway  server    12.4 ms  200  http.route=/orders/{id}
   ├─ auth                gateway  internal   850 µs  -
   └─ shop.Orders/Get     gateway  client     9.8 ms  OK   url.full=http://orders:50051/shop.Orders/Get
      └─ shop.Orders/Get  orders   server     9.1 ms  OK   2 events
";
        assert_eq!(render_trace(TraceId::from(TRACE), &spans), expected);
    }

    #[test]
    fn renders_partial_tree_with_parent_hints() {
        let mut remote = span(
            TRACE,
            5,
            0x00f0_67aa_0ba9_02b7,
            "GET /x",
            SpanKind::Server,
            (0, 10),
        );
        remote.parent_span_is_remote = true;
        let spans = [
            buffered(span(TRACE, 7, 6, "late", SpanKind::Internal, (20, 30)), "a"),
            buffered(remote, "a"),
            buffered(span(TRACE, 8, 5, "child", SpanKind::Client, (2, 8)), "a"),
        ];

        let expected = "\
trace 4bf92f3577b34da6a3ce929d0e0e4736  3 spans  30 µs
├─ GET /x    a  server    10 µs  -  ↖ parent 00f067aa0ba902b7 (remote)
│  └─ child  a  client     6 µs  -
└─ late      a  internal  10 µs  -  ↖ parent 0000000000000006
";
        assert_eq!(render_trace(TraceId::from(TRACE), &spans), expected);
    }

    #[test]
    fn renders_every_span_once_despite_parent_cycles() {
        let spans = [
            buffered(span(TRACE, 1, 2, "a", SpanKind::Internal, (0, 10)), "s"),
            buffered(span(TRACE, 2, 1, "b", SpanKind::Internal, (1, 9)), "s"),
            buffered(span(TRACE, 3, 3, "self", SpanKind::Internal, (2, 3)), "s"),
        ];
        let text = render_trace(TraceId::from(TRACE), &spans);
        assert_eq!(text.lines().count(), 4, "{text}");
        for name in ["─ a ", "─ b ", "─ self "] {
            assert_eq!(text.matches(name).count(), 1, "{name} in {text}");
        }
    }

    #[test]
    fn keeps_every_span_on_one_line() {
        let spans = [buffered(
            with(
                span(
                    TRACE,
                    1,
                    0,
                    "evil\nname\u{1b}[31m",
                    SpanKind::Internal,
                    (0, 1),
                ),
                [KeyValue::new("http.route", "x".repeat(100))],
            ),
            "svc\r\n",
        )];
        let text = render_trace(TraceId::from(TRACE), &spans);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains(r"evil\nname\u{1b}[31m"), "{text}");
        assert!(text.contains(r"svc\r\n"), "{text}");
        let route = format!("http.route={}…", "x".repeat(MAX_TEXT_CHARS - 1));
        assert!(text.trim_end().ends_with(&route), "{text}");
    }

    #[test]
    fn shows_statuses() {
        let base = || span(TRACE, 1, 0, "op", SpanKind::Server, (0, 1));
        let cases = [
            (vec![KeyValue::new("http.response.status_code", 200)], "200"),
            (vec![KeyValue::new("http.response.status_code", 404)], "404"),
            (vec![KeyValue::new("http.status_code", 503)], "503"),
            (vec![KeyValue::new("rpc.response.status_code", "OK")], "OK"),
            (
                vec![KeyValue::new("rpc.response.status_code", "INTERNAL")],
                "INTERNAL",
            ),
            (
                vec![KeyValue::new("rpc.response.status_code", 14)],
                "UNAVAILABLE",
            ),
            (vec![KeyValue::new("rpc.grpc.status_code", 0)], "OK"),
            (vec![KeyValue::new("rpc.grpc.status_code", 5)], "NOT_FOUND"),
            (
                vec![KeyValue::new("rpc.grpc.status_code", 16)],
                "UNAUTHENTICATED",
            ),
            (vec![KeyValue::new("rpc.grpc.status_code", 99)], "99"),
            (vec![KeyValue::new("rpc.grpc.status_code", -1)], "-1"),
            // gRPC runs over HTTP: the RPC status says more than `200`.
            (
                vec![
                    KeyValue::new("http.response.status_code", 200),
                    KeyValue::new("rpc.grpc.status_code", 13),
                ],
                "INTERNAL",
            ),
        ];
        for (attributes, expected) in cases {
            let span = with(base(), attributes);
            assert_eq!(status_label(&span), expected, "{:?}", span.attributes);
        }

        let mut unset = base();
        assert_eq!(status_label(&unset), "-");
        unset.status = Status::Ok;
        assert_eq!(status_label(&unset), "OK");

        let mut failed = with(base(), [KeyValue::new("error.type", "timeout")]);
        failed.status = Status::error("db unavailable");
        assert_eq!(status_label(&failed), "ERROR");
        assert_eq!(details(&failed, false), "\"db unavailable\"");
        failed.status = Status::error("");
        assert_eq!(details(&failed, false), "error.type=timeout");
        let mut http_failed = with(
            base(),
            [
                KeyValue::new("http.response.status_code", 500),
                KeyValue::new("http.route", "/orders/{id}"),
            ],
        );
        http_failed.status = Status::error("upstream\nreset");
        assert_eq!(status_label(&http_failed), "500");
        assert_eq!(
            details(&http_failed, false),
            r#""upstream\nreset"  http.route=/orders/{id}"#
        );
        // `error.type` alone does not make a span an error span.
        assert_eq!(
            details(&with(base(), [KeyValue::new("error.type", "x")]), false),
            ""
        );
    }

    #[test]
    fn shows_key_attributes() {
        let all = [
            KeyValue::new("url.full", "https://example.com/a?b=c"),
            KeyValue::new("http.route", "/a"),
            KeyValue::new("url.path", "/a"),
            KeyValue::new("messaging.destination.name", "orders"),
            KeyValue::new("db.system.name", "postgresql"),
            KeyValue::new("db.system", "legacy"),
        ];
        let client = with(
            span(TRACE, 1, 0, "op", SpanKind::Client, (0, 1)),
            all.clone(),
        );
        assert_eq!(
            details(&client, false),
            "url.full=https://example.com/a?b=c  messaging.destination.name=orders  db.system.name=postgresql"
        );
        let server = with(span(TRACE, 1, 0, "op", SpanKind::Server, (0, 1)), all);
        assert_eq!(
            details(&server, false),
            "http.route=/a  messaging.destination.name=orders  db.system.name=postgresql"
        );
        let legacy = with(
            span(TRACE, 1, 0, "op", SpanKind::Client, (0, 1)),
            [
                KeyValue::new("url.path", "/p"),
                KeyValue::new("db.system", "redis"),
            ],
        );
        assert_eq!(details(&legacy, false), "url.path=/p  db.system=redis");

        let mut one_event = span(TRACE, 1, 0, "op", SpanKind::Internal, (0, 1));
        one_event
            .events
            .events
            .push(opentelemetry::trace::Event::with_name("exception"));
        assert_eq!(details(&one_event, false), "1 event");
    }

    #[test]
    fn formats_durations() {
        let cases = [
            (Duration::ZERO, "0 ns"),
            (Duration::from_nanos(999), "999 ns"),
            (Duration::from_nanos(1_000), "1 µs"),
            (Duration::from_micros(850), "850 µs"),
            (Duration::from_nanos(999_499), "999 µs"),
            (Duration::from_nanos(999_500), "1.0 ms"),
            (Duration::from_micros(9_800), "9.8 ms"),
            (Duration::from_micros(12_449), "12.4 ms"),
            (Duration::from_micros(12_450), "12.5 ms"),
            (Duration::from_micros(999_949), "999.9 ms"),
            (Duration::from_micros(999_950), "1.00 s"),
            (Duration::from_millis(1_250), "1.25 s"),
            (Duration::from_millis(75_300), "75.30 s"),
            (Duration::from_secs(3_600), "3600.00 s"),
            (Duration::MAX, "18446744073709551616.00 s"),
        ];
        for (duration, expected) in cases {
            assert_eq!(format_duration(duration), expected, "{duration:?}");
        }
    }

    #[test]
    fn buffer_waits_for_grace_after_root_and_for_missing_parents() {
        let config = Config {
            grace: Duration::from_millis(300),
            orphan_timeout: Duration::from_secs(5),
            max_buffered_spans: 100,
        };
        let mut buffer = Buffer::new(config);
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);

        // A child ends long before its parent: it must wait for it.
        let evicted = buffer.insert(
            vec![span(TRACE, 2, 1, "child", SpanKind::Client, (1, 2))],
            None,
            t0,
        );
        assert!(evicted.is_empty());
        assert!(buffer.take_idle(ms(4_000)).is_empty());
        buffer.insert(
            vec![span(TRACE, 1, 0, "root", SpanKind::Server, (0, 3))],
            None,
            ms(4_000),
        );
        assert!(buffer.take_idle(ms(4_299)).is_empty());
        // Another service's span arrives within the grace period: wait again.
        buffer.insert(
            vec![span(TRACE, 3, 2, "server", SpanKind::Server, (1, 2))],
            None,
            ms(4_200),
        );
        assert!(buffer.take_idle(ms(4_499)).is_empty());
        let ready = buffer.take_idle(ms(4_500));
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].spans.len(), 3);
        assert_eq!(buffer.len, 0);
        assert!(buffer.traces.is_empty() && buffer.arrival.is_empty());

        // Without a root, only the orphan timeout applies.
        buffer.insert(
            vec![span(TRACE, 2, 1, "child", SpanKind::Client, (1, 2))],
            None,
            t0,
        );
        assert!(buffer.take_idle(ms(4_999)).is_empty());
        assert_eq!(buffer.take_idle(ms(5_000)).len(), 1);
    }

    #[test]
    fn traces_taken_together_come_in_the_order_they_started() {
        let mut buffer = Buffer::new(Config::default());
        let t0 = Instant::now();
        // The later request's spans arrive first (another thread's shard of the queue).
        buffer.insert(
            vec![
                span(2, 21, 0, "second", SpanKind::Server, (50, 60)),
                span(1, 12, 11, "first's child", SpanKind::Client, (5, 8)),
                span(3, 31, 0, "third", SpanKind::Server, (70, 80)),
                span(1, 11, 0, "first", SpanKind::Server, (1, 10)),
            ],
            None,
            t0,
        );
        let names = |ready: Vec<ReadyTrace>| -> Vec<u128> {
            ready
                .iter()
                .map(|t| u128::from_be_bytes(t.trace_id.to_bytes()))
                .collect()
        };
        assert_eq!(
            names(buffer.take_idle(t0 + Duration::from_secs(1))),
            [1, 2, 3]
        );
        buffer.insert(
            vec![
                span(5, 51, 0, "later", SpanKind::Server, (90, 95)),
                span(4, 41, 0, "earlier", SpanKind::Server, (85, 99)),
            ],
            None,
            t0,
        );
        assert_eq!(names(buffer.take_all()), [4, 5]);
    }

    #[test]
    fn clones_feed_one_tree_printed_after_grace() {
        let output = Output::default();
        let grace = Duration::from_millis(250);
        let gateway = serving(
            ConsoleExporter::with_writer(output.clone()).with_grace(grace),
            "gateway",
        );
        let orders = serving(gateway.clone(), "orders");

        let [server, client, auth, root] = <[SpanData; 4]>::try_from(checkout_spans()).unwrap();
        export(&gateway, vec![root]).unwrap();
        export(&orders, vec![server]).unwrap();
        let last_export = Instant::now();
        export(&gateway, vec![client, auth]).unwrap();
        assert_eq!(output.text(), "", "printed before the grace period");

        let text = output.wait();
        assert!(last_export.elapsed() >= grace);
        assert_eq!(trace_count(&text), 1, "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5, "{text}");
        assert!(lines[1].contains("gateway  server"), "{text}");
        assert!(
            lines[4].starts_with("      └─ shop.Orders/Get  orders   server"),
            "{text}"
        );
    }

    #[test]
    fn prints_partial_tree_after_orphan_timeout() {
        let output = Output::default();
        let exporter = serving(
            ConsoleExporter::with_writer(output.clone())
                .with_orphan_timeout(Duration::from_millis(100)),
            "orders",
        );
        let mut server = span(
            TRACE,
            4,
            0x00f0_67aa_0ba9_02b7,
            "shop.Orders/Get",
            SpanKind::Server,
            (0, 900),
        );
        server.parent_span_is_remote = true;
        let query = with(
            span(TRACE, 5, 4, "SELECT orders", SpanKind::Client, (100, 800)),
            [KeyValue::new("db.system.name", "postgresql")],
        );
        let started = Instant::now();
        export(&exporter, vec![query, server]).unwrap();

        let text = output.wait();
        assert!(started.elapsed() >= Duration::from_millis(100));
        let expected = "\
trace 4bf92f3577b34da6a3ce929d0e0e4736  2 spans  900 µs
└─ shop.Orders/Get   orders  server  900 µs  -  ↖ parent 00f067aa0ba902b7 (remote)
   └─ SELECT orders  orders  client  700 µs  -  db.system.name=postgresql
";
        assert_eq!(text, expected);
    }

    #[test]
    fn force_flush_prints_everything() {
        let output = Output::default();
        let exporter =
            ConsoleExporter::with_writer(output.clone()).with_grace(Duration::from_secs(60));
        export(
            &exporter,
            vec![
                span(1, 1, 0, "complete", SpanKind::Server, (0, 10)),
                span(2, 2, 1, "orphan", SpanKind::Client, (0, 10)),
            ],
        )
        .unwrap();
        assert_eq!(output.text(), "");

        exporter.force_flush().unwrap();
        let text = output.text();
        assert_eq!(trace_count(&text), 2, "{text}");
        assert!(text.contains("└─ complete"), "{text}");
        assert!(text.contains("└─ orphan"), "{text}");
        assert!(lock_unpoisoned(&exporter.shared.buffer).traces.is_empty());

        exporter.force_flush().unwrap();
        assert_eq!(output.text(), text, "nothing left to print");
    }

    #[test]
    fn prints_oldest_trace_when_buffer_is_full() {
        let output = Output::default();
        let exporter = ConsoleExporter::with_writer(output.clone())
            .with_grace(Duration::from_secs(60))
            .with_max_buffered_spans(3);
        export(
            &exporter,
            vec![
                span(1, 1, 0, "first", SpanKind::Server, (0, 10)),
                span(1, 2, 1, "first-child", SpanKind::Client, (1, 9)),
            ],
        )
        .unwrap();
        export(
            &exporter,
            vec![span(2, 3, 0, "second", SpanKind::Server, (0, 10))],
        )
        .unwrap();
        assert_eq!(output.text(), "", "within the bound");

        export(
            &exporter,
            vec![span(3, 4, 0, "third", SpanKind::Server, (0, 10))],
        )
        .unwrap();
        let text = output.text();
        assert_eq!(trace_count(&text), 1, "{text}");
        assert!(
            text.starts_with(&format!("trace {}  2 spans", TraceId::from(1))),
            "{text}"
        );
        assert_eq!(lock_unpoisoned(&exporter.shared.buffer).len, 2);

        // A single batch larger than the bound is printed right away.
        export(
            &exporter,
            (10..15)
                .map(|id| span(4, id, 0, "big", SpanKind::Server, (0, 1)))
                .collect(),
        )
        .unwrap();
        assert_eq!(trace_count(&output.text()), 4);
        assert_eq!(lock_unpoisoned(&exporter.shared.buffer).len, 0);
    }

    #[test]
    fn shutdown_prints_everything_and_stops_the_ticker() {
        let output = Output::default();
        let exporter =
            ConsoleExporter::with_writer(output.clone()).with_grace(Duration::from_secs(60));
        let ticker = Arc::clone(&exporter.shared.ticker);
        assert!(!ticker.is_running(), "started before the first export");
        export(
            &exporter,
            vec![span(TRACE, 1, 0, "root", SpanKind::Server, (0, 10))],
        )
        .unwrap();
        assert!(ticker.is_running());

        exporter.shutdown().unwrap();
        assert!(!ticker.is_running());
        assert_eq!(trace_count(&output.text()), 1);

        let late = vec![span(TRACE, 2, 0, "late", SpanKind::Server, (0, 10))];
        assert!(matches!(
            export(&exporter, late),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(matches!(
            exporter.force_flush(),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(matches!(
            exporter.shutdown(),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert_eq!(trace_count(&output.text()), 1);
    }

    #[test]
    fn ticker_runs_until_every_clone_is_shut_down() {
        let output = Output::default();
        let first =
            ConsoleExporter::with_writer(output.clone()).with_grace(Duration::from_secs(60));
        let second = first.clone();
        let ticker = Arc::clone(&first.shared.ticker);
        export(&second, vec![span(1, 1, 0, "a", SpanKind::Server, (0, 10))]).unwrap();

        first.shutdown().unwrap();
        assert!(ticker.is_running(), "the second clone still exports");
        assert_eq!(
            trace_count(&output.text()),
            1,
            "shutdown flushes all clones"
        );
        assert!(
            second.clone().shutdown().is_ok(),
            "a clone counts on its own"
        );
        assert!(ticker.is_running());
        export(&second, vec![span(2, 1, 0, "b", SpanKind::Server, (0, 10))]).unwrap();

        second.shutdown().unwrap();
        assert!(!ticker.is_running());
        assert_eq!(trace_count(&output.text()), 2);
    }

    #[test]
    fn dropping_the_last_clone_prints_and_stops_the_ticker() {
        let output = Output::default();
        let exporter =
            ConsoleExporter::with_writer(output.clone()).with_grace(Duration::from_secs(60));
        let clone = exporter.clone();
        let ticker = Arc::clone(&exporter.shared.ticker);
        export(
            &clone,
            vec![span(TRACE, 1, 0, "root", SpanKind::Server, (0, 10))],
        )
        .unwrap();

        drop(exporter);
        assert!(ticker.is_running());
        assert_eq!(output.text(), "");
        drop(clone);
        assert!(ticker.wait_exited(Duration::from_secs(1)));
        assert_eq!(trace_count(&output.text()), 1);
    }

    #[test]
    fn swallows_write_errors_and_poisoned_locks() {
        let exporter =
            ConsoleExporter::with_writer(FailingWriter).with_grace(Duration::from_secs(60));
        export(
            &exporter,
            vec![span(TRACE, 1, 0, "root", SpanKind::Server, (0, 10))],
        )
        .unwrap();
        exporter.force_flush().unwrap();
        assert_eq!(exporter.write_errors(), 2, "one write and one flush");

        let output = Output::default();
        let exporter =
            ConsoleExporter::with_writer(output.clone()).with_grace(Duration::from_secs(60));
        let shared = Arc::clone(&exporter.shared);
        let poisoner = thread::spawn(move || {
            let _buffer = shared.buffer.lock();
            let _writer = shared.writer.lock();
            panic!("poisoning the exporter's locks on purpose");
        });
        assert!(poisoner.join().is_err());
        assert!(exporter.shared.buffer.is_poisoned() && exporter.shared.writer.is_poisoned());
        export(
            &exporter,
            vec![span(TRACE, 1, 0, "root", SpanKind::Server, (0, 10))],
        )
        .unwrap();
        exporter.force_flush().unwrap();
        assert_eq!(trace_count(&output.text()), 1);
    }

    #[test]
    fn draws_one_tree_for_several_tracer_providers() {
        let output = Output::default();
        let console =
            ConsoleExporter::with_writer(output.clone()).with_grace(Duration::from_secs(60));
        let provider = |service: &'static str| {
            SdkTracerProvider::builder()
                .with_resource(Resource::builder_empty().with_service_name(service).build())
                .with_simple_exporter(console.clone())
                .build()
        };
        let (gateway, orders) = (provider("gateway"), provider("orders"));
        let (gateway_tracer, orders_tracer) = (gateway.tracer("test"), orders.tracer("test"));

        let root = gateway_tracer
            .span_builder("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .start(&gateway_tracer);
        let root = opentelemetry::Context::new().with_span(root);
        let client = gateway_tracer
            .span_builder("shop.Orders/Get")
            .with_kind(SpanKind::Client)
            .start_with_context(&gateway_tracer, &root);
        let client = root.with_span(client);
        // The context crosses the process boundary as headers: a remote parent.
        let remote = opentelemetry::Context::new()
            .with_remote_span_context(client.span().span_context().clone());
        orders_tracer
            .span_builder("shop.Orders/Get")
            .with_kind(SpanKind::Server)
            .start_with_context(&orders_tracer, &remote)
            .end();
        client.span().end();
        root.span().end();

        gateway.shutdown().unwrap();
        orders.shutdown().unwrap();
        let text = output.text();
        assert_eq!(trace_count(&text), 1, "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("└─ GET /orders/{id}"), "{text}");
        assert!(lines[1].contains(" gateway  server "), "{text}");
        assert!(lines[2].starts_with("   └─ shop.Orders/Get"), "{text}");
        assert!(lines[2].contains(" gateway  client "), "{text}");
        assert!(lines[3].starts_with("      └─ shop.Orders/Get"), "{text}");
        assert!(lines[3].contains(" orders   server "), "{text}");
        assert!(!text.contains('↖'), "{text}");
    }
}
