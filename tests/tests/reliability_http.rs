//! HTTP: hostile propagation headers through real hyper servers, one with
//! `tower_trace::ServerLayer` and one without. The request must be served exactly as without
//! the middleware (same status, headers and body), promptly, and the span must start a new
//! trace or continue the one valid parent; public endpoints trust nothing from the caller; the
//! baggage a handler sees stays within its limits.

mod reliability;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::Request;
use axum::routing::any;
use http::{HeaderMap, Method, StatusCode, Uri};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanId, TraceContextExt};
use opentelemetry_sdk::trace::SpanData;
use reliability::{
    ALL_FORMATS, B3_TRACE, Case, Parent, TP, TP_SPAN, TP_TRACE, bounded, h, hostile_cases, request,
    send_http1, serve_http,
};
use test_support::collector::tracing;
use tower_trace::ServerLayer;
use tracing_core_lite::Propagators;
use tracing_core_lite::filter::Filter;

/// The trace ids that the hostile headers carry: a new trace must use none of them.
const INCOMING_TRACES: [&str; 4] = [
    TP_TRACE,
    B3_TRACE,
    "11111111111111111111111111111111",
    "00000000000000003333333333333333",
];

type Headers = Vec<(String, Vec<u8>)>;

/// Answers with what it received, so that the response says whether the request arrived
/// intact.
async fn echo(method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> String {
    let header_bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    format!(
        "{method} {uri}: {} headers, {header_bytes} header bytes, {} body bytes\n",
        headers.len(),
        body.len()
    )
}

/// Answers with the context the layer gave the handler: trace id, whether its span is remote
/// (an untraced request runs under the caller's context), and the baggage.
async fn context(req: Request) -> String {
    let cx = req
        .extensions()
        .get::<Context>()
        .cloned()
        .unwrap_or_default();
    let span = cx.span();
    let sc = span.span_context();
    let baggage = cx.baggage();
    let bytes: usize = baggage
        .iter()
        .map(|(k, (v, _))| k.as_str().len() + v.as_str().len())
        .sum();
    format!(
        "trace={} remote={} baggage={} bytes={bytes}",
        if sc.is_valid() {
            sc.trace_id().to_string()
        } else {
            "none".to_owned()
        },
        sc.is_remote(),
        baggage.len(),
    )
}

fn app() -> Router {
    Router::new()
        .route("/echo", any(echo))
        .route("/context", any(context))
        .route("/health", any(context))
}

/// The span's parent is what the case expects, and so is its trace state.
fn check_parent(span: &SpanData, case: &Case) {
    let trace_id = span.span_context.trace_id().to_string();
    match case.parent {
        Parent::New => {
            assert_eq!(span.parent_span_id, SpanId::INVALID, "{}", case.name);
            assert!(
                !INCOMING_TRACES.contains(&trace_id.as_str()),
                "{}: continued {trace_id}",
                case.name
            );
        }
        Parent::Continues(trace, parent) => {
            assert_eq!(trace_id, trace, "{}", case.name);
            assert_eq!(span.parent_span_id.to_string(), parent, "{}", case.name);
        }
    }
    assert_eq!(
        span.span_context.trace_state().header(),
        case.trace_state,
        "{}",
        case.name
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_propagation_headers_are_served_as_without_the_middleware() {
    let (provider, spans) = tracing();
    let layer = ServerLayer::new()
        .with_tracer_provider(&provider)
        .with_propagators(Propagators::parse(ALL_FORMATS).expect("valid"));
    let traced = serve_http(app().layer(layer)).await;
    let plain = serve_http(app()).await;
    for (i, case) in hostile_cases().iter().enumerate() {
        let send = |addr| send_http1(addr, request("POST", "/echo?q=1", &case.headers, "body"));
        let started = Instant::now();
        let with = bounded(case.name, send(traced.addr)).await;
        let took = started.elapsed();
        let without = bounded(case.name, send(plain.addr)).await;
        assert_eq!(with, without, "{}", case.name);
        assert_eq!(with.status, StatusCode::OK, "{}: {with:?}", case.name);
        // Generous for a debug build on a loaded machine; a quadratic parser would not be.
        assert!(took < Duration::from_secs(2), "{}: {took:?}", case.name);

        let spans = spans.wait_until(case.name, |spans| spans.len() > i).await;
        let span = &spans[i];
        assert_eq!(span.name, "POST /echo", "{}", case.name);
        check_parent(span, case);
    }
}

/// Public-endpoint mode: the caller's context becomes a link, never the parent, and its
/// baggage is dropped, also for requests the filter leaves untraced (which would otherwise
/// hand the caller's context and baggage to the calls the handler makes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_trust_nothing_from_the_caller() {
    let (provider, spans) = tracing();
    let layer = ServerLayer::new()
        .with_tracer_provider(&provider)
        .with_propagators(Propagators::parse(ALL_FORMATS).expect("valid"))
        .with_filter(Filter::skip_paths(["/health"]))
        .with_public_endpoint(true);
    let server = serve_http(app().layer(layer)).await;
    let headers = [
        h("traceparent", TP),
        h("baggage", "user=alice,tier=gold"),
        h("uberctx-tenant", "acme"),
    ];

    let traced = bounded(
        "/context",
        send_http1(server.addr, request("GET", "/context", &headers, "")),
    )
    .await;
    let body = String::from_utf8_lossy(&traced.body).into_owned();
    assert!(!body.contains(TP_TRACE), "{body}");
    assert!(body.ends_with("remote=false baggage=0 bytes=0"), "{body}");
    let span = spans.wait_for_span("GET /context").await;
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert_ne!(span.span_context.trace_id().to_string(), TP_TRACE);
    assert_eq!(span.links.len(), 1);
    assert_eq!(span.links[0].span_context.trace_id().to_string(), TP_TRACE);
    assert_eq!(span.links[0].span_context.span_id().to_string(), TP_SPAN);

    let untraced = bounded(
        "/health",
        send_http1(server.addr, request("GET", "/health", &headers, "")),
    )
    .await;
    let body = String::from_utf8_lossy(&untraced.body).into_owned();
    assert_eq!(body, "trace=none remote=false baggage=0 bytes=0");
}

/// The baggage a handler sees (and its calls carry on) stays within W3C Baggage's limits of
/// 64 entries and 8192 bytes, whatever arrives: a longer `baggage` header is dropped as a
/// whole by the SDK's propagator (the 1 MiB one included), and at most 64 `uberctx-*` headers
/// are read. Baggage from several formats is merged, whatever their order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baggage_stays_within_its_limits() {
    let (provider, _spans) = tracing();
    let layer = |formats: &str| {
        ServerLayer::new()
            .with_tracer_provider(&provider)
            .with_propagators(Propagators::parse(formats).expect("valid"))
    };
    let server = serve_http(app().layer(layer(ALL_FORMATS))).await;
    let jaeger_first = serve_http(app().layer(layer("jaeger,tracecontext,baggage"))).await;

    let entries = |n: usize, width: usize| -> String {
        (0..n)
            .map(|i| format!("k{i}={}", "v".repeat(width)))
            .collect::<Vec<_>>()
            .join(",")
    };
    let uberctx =
        |n: usize| -> Headers { (0..n).map(|i| h(format!("uberctx-j{i}"), "v")).collect() };
    // (case, headers, what the handler must see)
    let cases: Vec<(&str, Headers, &str)> = vec![
        (
            "ten entries",
            vec![h("baggage", entries(10, 4))],
            "baggage=10 bytes=60",
        ),
        (
            "a hundred entries: the first 64",
            vec![h("baggage", entries(100, 4))],
            "baggage=64",
        ),
        (
            "a header of 8193 bytes",
            vec![h("baggage", format!("k={}", "v".repeat(8191)))],
            "baggage=0 bytes=0",
        ),
        (
            "1 MiB",
            vec![h("baggage", format!("k={}", "v".repeat(1 << 20)))],
            "baggage=0 bytes=0",
        ),
        ("300 uberctx headers", uberctx(300), "baggage=64"),
        (
            "W3C and Jaeger baggage",
            [vec![h("baggage", entries(3, 1))], uberctx(2)].concat(),
            "baggage=5 bytes=",
        ),
    ];
    for (name, headers, expected) in &cases {
        for addr in [server.addr, jaeger_first.addr] {
            let reply = bounded(
                name,
                send_http1(addr, request("GET", "/context", headers, "")),
            )
            .await;
            let body = String::from_utf8_lossy(&reply.body).into_owned();
            assert!(body.contains(expected), "{name}: {body}");
            let bytes: usize = body
                .rsplit("bytes=")
                .next()
                .and_then(|b| b.parse().ok())
                .expect("bytes=N");
            assert!(bytes <= 8192, "{name}: {body}");
        }
    }
}
