//! Code instrumented with `tracing` (`#[tracing::instrument]`, through `tracing-opentelemetry`)
//! inside a handler nests under the server span of the layer, and the layer's client spans
//! nest under it in turn.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SpanData;
use test_support::collector::tracing as collector;
use tower_trace::ServerLayer;
use tracing_core_lite::Propagators;
use tracing_subscriber::layer::SubscriberExt;

#[tracing::instrument]
async fn load_order(id: u64) -> String {
    tokio::task::yield_now().await;
    price(id)
}

#[tracing::instrument]
fn price(id: u64) -> String {
    format!("order {id}: 42")
}

fn find<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}: {spans:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_instrument_spans_nest_under_the_server_span() {
    let (provider, spans) = collector();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("app")));
    // Handlers run on the runtime's worker threads: the subscriber must be global.
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let app = Router::new()
        .route("/orders/{id}", get(|Path(id): Path<u64>| load_order(id)))
        .layer(
            ServerLayer::new()
                .with_tracer_provider(&provider)
                .with_propagators(Propagators::default()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let body = tokio::time::timeout(test_support::collector::WAIT, async {
        plain_get(&format!("http://{addr}/orders/7")).await
    })
    .await
    .expect("answers");
    assert_eq!(body, "order 7: 42");

    let all = spans
        .wait_until("server, load_order and price", |s| s.len() >= 3)
        .await;
    let server = find(&all, "GET /orders/{id}");
    let load = find(&all, "load_order");
    let price = find(&all, "price");
    assert_eq!(load.parent_span_id, server.span_context.span_id());
    assert_eq!(price.parent_span_id, load.span_context.span_id());
    assert_eq!(load.span_context.trace_id(), server.span_context.trace_id());
}

/// A plain HTTP/1.1 GET on a TCP stream, so that no client span is involved.
async fn plain_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .expect("connects");
    let request = format!("GET /{path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("writes");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("reads");
    response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}
