//! The core on its own: a small "checkout" whose steps are in-process spans, one of which
//! hands work to a queue consumer through a message's headers, drawn as call trees on the
//! console (no collector needed).
//!
//! ```text
//! cargo run -p examples --bin spans
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --bin spans  # to Jaeger
//! ```

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    FutureExt as _, Link, Span as _, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use tokio::sync::{mpsc, oneshot};
use tracing_core_lite::Pipeline;
use tracing_core_lite::instrument::{InstrumentExt, in_span};

/// A queue message: a body and the headers that carry the trace context.
struct Message {
    headers: HashMap<String, String>,
    body: String,
    /// Told when the message has been processed.
    processed: oneshot::Sender<()>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "spans: traces a small checkout in-process and prints it as call trees.\n\
             Honours the OTEL_* variables (e.g. OTEL_EXPORTER_OTLP_ENDPOINT to send to Jaeger)."
        );
        return Ok(());
    }
    let guard = Pipeline::from_env()?
        .with_service_name("checkout")
        .install()?;
    let tracer = guard.tracer_provider().tracer("examples");
    let propagators = guard.propagators().clone();

    let (tx, mut rx) = mpsc::channel::<Message>(8);
    let consumer_propagators = propagators.clone();
    let consumer_tracer = tracer.clone();
    let worker = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            // The consumer continues the producer's trace from the message headers.
            let parent = consumer_propagators.extract(&msg.headers);
            let producer = parent.span().span_context().clone();
            let mut span = consumer_tracer
                .span_builder("orders process")
                .with_kind(SpanKind::Consumer)
                .with_links(vec![Link::with_context(producer)])
                .with_attributes([
                    KeyValue::new("messaging.system", "in-process"),
                    KeyValue::new("messaging.destination.name", "orders"),
                    KeyValue::new("messaging.operation.type", "process"),
                ])
                .start_with_context(&consumer_tracer, &parent);
            tokio::time::sleep(Duration::from_millis(3)).await;
            span.set_attribute(KeyValue::new(
                "messaging.message.body.size",
                msg.body.len() as i64,
            ));
            span.end();
            let _ = msg.processed.send(());
        }
    });

    for (order, fail) in [("order-1", false), ("order-2", true)] {
        let root = tracer
            .span_builder("checkout")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("order.id", order)])
            .start(&tracer);
        let cx = Context::current_with_span(root);
        async {
            in_span("validate cart", |_| {
                std::thread::sleep(Duration::from_millis(1))
            });
            let price = async {
                tokio::time::sleep(Duration::from_millis(4)).await;
                42
            }
            .in_span("price cart")
            .await;
            Context::current()
                .span()
                .set_attribute(KeyValue::new("order.total", price));
            if fail {
                in_span("charge card", |cx| {
                    cx.span().set_status(Status::error("card declined"));
                });
                Context::current()
                    .span()
                    .set_status(Status::error("payment failed"));
                return;
            }
            // Publish: a PRODUCER span whose context rides in the message headers.
            let producer = tracer
                .span_builder("orders publish")
                .with_kind(SpanKind::Producer)
                .with_attributes([
                    KeyValue::new("messaging.system", "in-process"),
                    KeyValue::new("messaging.destination.name", "orders"),
                    KeyValue::new("messaging.operation.type", "send"),
                ])
                .start(&tracer);
            let pcx = Context::current_with_span(producer);
            let mut headers = HashMap::new();
            propagators.inject_context(&pcx, &mut headers);
            let (processed, done) = oneshot::channel();
            let message = Message {
                headers,
                body: order.to_string(),
                processed,
            };
            if tx.send(message).await.is_ok() {
                pcx.span().end();
                // The checkout waits for the order to be processed, so each tree is whole.
                let _ = done.await;
            }
        }
        .with_context(cx.clone())
        .await;
        cx.span().end();
    }
    drop(tx);
    worker.await?;
    guard.shutdown()?;
    Ok(())
}
