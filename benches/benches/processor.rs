//! The span processor's hot path under contention: `on_end` from one and two threads at once,
//! our `BatchProcessor` against the SDK's `BatchSpanProcessor`, both over the same no-op
//! exporter with the default batching (queue 2048, batches of 512).
//!
//! `cargo bench -p benches --bench processor` (see `BENCHMARKS.md`). Each thread stands for a
//! server's worker thread: per iteration it does a fixed amount of other work (the request,
//! about seven microseconds here), clones one `SpanData` with the attributes of an HTTP server span and
//! ends it. `none` does the work and the clone and drops the span on the same thread; the
//! processor's cost is a variant's time minus `none`'s. The pacing leaves the export thread
//! room to keep up, as in a service: without it the bench would measure the full-queue path.
//! Spans dropped on a full queue are counted and printed (ours; the SDK's processor does not
//! say): a processor that drops is cheaper, so compare only rows that dropped nothing.

mod common;

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanProcessor};
use tracing_core_lite::export::{BatchConfig, BatchProcessor};

/// What a worker thread does between two spans: a few microseconds of arithmetic.
fn request_work() {
    let mut x = std::hint::black_box(1u64);
    for i in 0..WORK_ROUNDS {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
    }
    std::hint::black_box(x);
}

/// Rounds of [`request_work`]'s loop.
const WORK_ROUNDS: u64 = 30_000;

/// Runs `iters` iterations on each of `threads` threads at once (the work, then `end` of a
/// clone of `template`); the wall time of the slowest thread.
fn run(
    end: &(dyn Fn(SpanData) + Sync),
    template: &SpanData,
    threads: usize,
    iters: u64,
) -> Duration {
    let start = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    let began = Instant::now();
                    for _ in 0..iters {
                        request_work();
                        end(template.clone());
                    }
                    began.elapsed()
                })
            })
            .collect();
        start.wait();
        workers
            .into_iter()
            .map(|w| w.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let template = common::http_server_span();
    let ours = BatchProcessor::new(common::NoopExporter::default(), BatchConfig::default())
        .expect("processor");
    let sdk = BatchSpanProcessor::builder(common::NoopExporter::default()).build();
    let mut g = c.benchmark_group("on_end");
    let mut dropped = Vec::new();
    for threads in [1, 2] {
        g.throughput(Throughput::Elements(threads as u64));
        g.bench_function(format!("none_{threads}_threads"), |b| {
            b.iter_custom(|iters| run(&|span| drop(span), &template, threads, iters))
        });
        let before = ours.stats().dropped();
        g.bench_function(format!("ours_{threads}_threads"), |b| {
            b.iter_custom(|iters| run(&|span| ours.on_end(span), &template, threads, iters))
        });
        dropped.push((threads, ours.stats().dropped() - before));
        g.bench_function(format!("sdk_{threads}_threads"), |b| {
            b.iter_custom(|iters| run(&|span| sdk.on_end(span), &template, threads, iters))
        });
    }
    g.finish();
    c.final_summary();
    for (threads, dropped) in dropped {
        println!("ours_{threads}_threads: {dropped} spans dropped on a full queue");
    }
    let _ = sdk.shutdown();
    let _ = ours.shutdown();
}
