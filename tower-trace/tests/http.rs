//! The HTTP layers over real connections on 127.0.0.1: axum servers with `ServerLayer`, hyper
//! and reqwest clients with `ClientLayer` / `ReqwestMiddleware`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use common::{ChannelBody, TestServer, bounded, serve, tracing};
use http::{HeaderMap, Request, Response, header};
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use opentelemetry::trace::{
    FutureExt, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use tokio::sync::mpsc;
use tower::{ServiceBuilder, ServiceExt};
use tower_trace::{ClientLayer, ReqwestMiddleware, Sampling, ServerLayer};
use tracing_core_lite::Propagators;
use tracing_core_lite::capture::PayloadCapture;
use tracing_core_lite::filter::Filter;

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

fn int_attr(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::I64(n)) => Some(*n),
        _ => None,
    }
}

#[derive(Clone, Default)]
struct AppState {
    stream: Arc<Mutex<Option<mpsc::Receiver<Frame<Bytes>>>>>,
    /// Notified when `/hang` has been entered.
    hanging: Arc<tokio::sync::Notify>,
}

/// The current context as the handler sees it: `{trace_id} {sampled}`.
async fn current_context() -> String {
    let cx = Context::current();
    let span = cx.span();
    let sc = span.span_context();
    format!("{} {}", sc.trace_id(), sc.is_sampled())
}

fn app(layer: ServerLayer, state: AppState) -> Router {
    routes().layer(layer).with_state(state)
}

fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/orders/{id}",
            get(|Path(id): Path<String>| async move { format!("order {id}") }),
        )
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/missing",
            get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
        )
        .route(
            "/echo",
            post(|body: Bytes| async move { ([(header::CONTENT_TYPE, "text/plain")], body) })
                .layer(axum::extract::DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
        .route("/health", get(current_context))
        .route("/context", get(current_context))
        .route(
            "/stream",
            get(|State(state): State<AppState>| async move {
                let rx = state
                    .stream
                    .lock()
                    .expect("not poisoned")
                    .take()
                    .expect("one stream per test");
                Response::new(ChannelBody(rx))
            }),
        )
        .route(
            "/trailers",
            get(|| async {
                let (tx, rx) = mpsc::channel(2);
                let mut trailers = HeaderMap::new();
                trailers.insert("x-checksum", "abc123".parse().expect("valid"));
                tx.try_send(Frame::data(Bytes::from_static(b"hello")))
                    .expect("room");
                tx.try_send(Frame::trailers(trailers)).expect("room");
                Response::new(ChannelBody(rx))
            }),
        )
        .route(
            "/hang",
            get(|State(state): State<AppState>| async move {
                state.hanging.notify_one();
                std::future::pending::<()>().await;
                "never"
            }),
        )
}

/// Layers with explicit propagators: without an installed pipeline, the global propagator is
/// OpenTelemetry's no-op.
fn server_layer(provider: &SdkTracerProvider) -> ServerLayer {
    ServerLayer::new()
        .with_tracer_provider(provider)
        .with_propagators(Propagators::default())
}

fn client_layer(provider: &SdkTracerProvider) -> ClientLayer {
    ClientLayer::new()
        .with_tracer_provider(provider)
        .with_propagators(Propagators::default())
}

type HyperClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send(
    layer: ClientLayer,
    client: HyperClient,
    req: Request<Full<Bytes>>,
) -> Response<tower_trace::ResponseBody<hyper::body::Incoming>> {
    let service = ServiceBuilder::new().layer(layer).service(client);
    bounded("client call", service.oneshot(req))
        .await
        .expect("request succeeds")
}

fn get_req(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .body(Full::default())
        .expect("valid request")
}

async fn body_string<B>(body: B) -> String
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let bytes = bounded("body", body.collect())
        .await
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn start(layer: ServerLayer) -> (TestServer, AppState) {
    let state = AppState::default();
    (serve(app(layer, state.clone())).await, state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_span_is_child_of_client_span_for_every_propagator() {
    for format in ["tracecontext", "b3", "b3multi", "jaeger"] {
        let (provider, spans) = tracing();
        let propagators = Propagators::parse(format).expect("known format");
        let (server, _) =
            start(server_layer(&provider).with_propagators(propagators.clone())).await;
        let client = ClientLayer::new()
            .with_tracer_provider(&provider)
            .with_propagators(propagators);
        let res = send(client, hyper_client(), get_req(&server.url("/orders/42"))).await;
        assert_eq!(body_string(res.into_body()).await, "order 42");

        let server_span = spans.wait_for_span("GET /orders/{id}").await;
        let client_span = spans.wait_for_span("GET").await;
        assert_eq!(server_span.span_kind, SpanKind::Server, "{format}");
        assert_eq!(client_span.span_kind, SpanKind::Client, "{format}");
        assert_eq!(
            server_span.span_context.trace_id(),
            client_span.span_context.trace_id(),
            "{format}"
        );
        assert_eq!(
            server_span.parent_span_id,
            client_span.span_context.span_id(),
            "{format}"
        );
        assert!(server_span.parent_span_is_remote, "{format}");
        assert!(server_span.span_context.is_sampled(), "{format}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_and_client_spans_carry_the_http_conventions() {
    let (provider, spans) = tracing();
    let (server, _) = start(server_layer(&provider)).await;
    let client = client_layer(&provider);
    let url = server.url("/orders/42?sig=secret&page=1");
    let req = Request::get(&url)
        .header(header::USER_AGENT, "tower-trace-tests/1")
        .body(Full::default())
        .expect("valid");
    let res = send(client, hyper_client(), req).await;
    assert_eq!(res.status(), 200);
    body_string(res.into_body()).await;

    let s = spans.wait_for_span("GET /orders/{id}").await;
    let port = i64::from(server.addr.port());
    assert_eq!(str_attr(&s, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(str_attr(&s, "url.path").as_deref(), Some("/orders/42"));
    assert_eq!(
        str_attr(&s, "url.query").as_deref(),
        Some("sig=REDACTED&page=1")
    );
    assert_eq!(str_attr(&s, "url.scheme").as_deref(), Some("http"));
    assert_eq!(str_attr(&s, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(int_attr(&s, "server.port"), Some(port));
    assert_eq!(str_attr(&s, "client.address").as_deref(), Some("127.0.0.1"));
    assert!(int_attr(&s, "network.peer.port").is_some_and(|p| p > 0));
    assert_eq!(
        str_attr(&s, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        str_attr(&s, "user_agent.original").as_deref(),
        Some("tower-trace-tests/1")
    );
    assert_eq!(str_attr(&s, "http.route").as_deref(), Some("/orders/{id}"));
    assert_eq!(int_attr(&s, "http.response.status_code"), Some(200));
    assert_eq!(attr(&s, "error.type"), None);
    assert_eq!(s.status, Status::Unset);

    let c = spans.wait_for_span("GET").await;
    assert_eq!(str_attr(&c, "http.request.method").as_deref(), Some("GET"));
    assert_eq!(
        str_attr(&c, "url.full"),
        Some(format!(
            "http://127.0.0.1:{port}/orders/42?sig=REDACTED&page=1"
        ))
    );
    assert_eq!(str_attr(&c, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(int_attr(&c, "server.port"), Some(port));
    assert_eq!(int_attr(&c, "http.response.status_code"), Some(200));
    assert_eq!(c.status, Status::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_rules_differ_between_server_and_client() {
    let (provider, spans) = tracing();
    let (server, _) = start(server_layer(&provider)).await;
    let client = client_layer(&provider).with_span_name(|req| format!("GET {}", req.uri.path()));
    for path in ["/fail", "/missing"] {
        let res = send(client.clone(), hyper_client(), get_req(&server.url(path))).await;
        body_string(res.into_body()).await;
    }
    let spans_all = spans.wait_until("4 spans", |s| s.len() == 4).await;
    let server_500 = spans_all
        .iter()
        .find(|s| s.name == "GET /fail" && s.span_kind == SpanKind::Server)
        .expect("server /fail");
    let client_500 = spans_all
        .iter()
        .find(|s| s.name == "GET /fail" && s.span_kind == SpanKind::Client)
        .expect("client /fail");
    let server_404 = spans_all
        .iter()
        .find(|s| s.name == "GET /missing" && s.span_kind == SpanKind::Server)
        .expect("server /missing");
    let client_404 = spans_all
        .iter()
        .find(|s| s.name == "GET /missing" && s.span_kind == SpanKind::Client)
        .expect("client /missing");
    assert!(matches!(server_500.status, Status::Error { .. }));
    assert_eq!(str_attr(server_500, "error.type").as_deref(), Some("500"));
    assert!(matches!(client_500.status, Status::Error { .. }));
    assert_eq!(server_404.status, Status::Unset);
    assert_eq!(attr(server_404, "error.type"), None);
    assert_eq!(int_attr(server_404, "http.response.status_code"), Some(404));
    assert!(matches!(client_404.status, Status::Error { .. }));
    assert_eq!(str_attr(client_404, "error.type").as_deref(), Some("404"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_span_ends_when_a_slow_streamed_body_ends() {
    let (provider, spans) = tracing();
    let (server, state) = start(server_layer(&provider)).await;
    let (tx, rx) = mpsc::channel(1);
    *state.stream.lock().expect("not poisoned") = Some(rx);
    let res = send(
        ClientLayer::new(),
        hyper_client(),
        get_req(&server.url("/stream")),
    )
    .await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();

    // Headers are out; the body is not: nothing has ended yet.
    tx.send(Frame::data(Bytes::from_static(b"one ")))
        .await
        .expect("open");
    let first = bounded("first chunk", body.frame())
        .await
        .expect("a frame")
        .expect("ok");
    assert_eq!(first.into_data().expect("data"), "one ");
    assert!(
        spans
            .spans()
            .iter()
            .all(|s| s.span_kind != SpanKind::Server)
    );

    tx.send(Frame::data(Bytes::from_static(b"two")))
        .await
        .expect("open");
    let before_end = SystemTime::now();
    drop(tx);
    let rest = body_string(body).await;
    assert_eq!(rest, "two");

    let s = spans.wait_for_span("GET /stream").await;
    assert!(
        s.end_time >= before_end,
        "the span ended before the body did"
    );
    assert_eq!(s.status, Status::Unset);
    assert_eq!(attr(&s, "error.type"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_dropped_body_ends_both_spans_with_error_type() {
    let (provider, spans) = tracing();
    let (server, state) = start(server_layer(&provider)).await;
    let (tx, rx) = mpsc::channel(1);
    *state.stream.lock().expect("not poisoned") = Some(rx);
    let client = client_layer(&provider);
    let res = send(client, hyper_client(), get_req(&server.url("/stream"))).await;
    tx.send(Frame::data(Bytes::from_static(b"partial")))
        .await
        .expect("open");
    // The reader gives up mid-stream: the client span ends now, the server's when hyper
    // notices the connection is gone.
    drop(res);
    let c = spans.wait_for_span("GET").await;
    assert_eq!(str_attr(&c, "error.type").as_deref(), Some("body_dropped"));
    assert!(matches!(c.status, Status::Error { .. }));
    let s = spans.wait_for_span("GET /stream").await;
    assert_eq!(str_attr(&s, "error.type").as_deref(), Some("body_dropped"));
    assert_eq!(int_attr(&s, "http.response.status_code"), Some(200));
    drop(tx);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_through_both_layers() {
    let (provider, spans) = tracing();
    let (server, _) = start(server_layer(&provider)).await;
    let h2: HyperClient = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let client = client_layer(&provider);
    let res = send(client, h2, get_req(&server.url("/trailers"))).await;
    let collected = bounded("body", res.into_body().collect())
        .await
        .expect("body");
    let trailers = collected.trailers().cloned().expect("trailers arrived");
    assert_eq!(trailers["x-checksum"], "abc123");
    assert_eq!(collected.to_bytes(), "hello");
    let s = spans.wait_for_span("GET /trailers").await;
    assert_eq!(
        str_attr(&s, "network.protocol.version").as_deref(),
        Some("2")
    );
    assert_eq!(s.status, Status::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_headers_redact_credentials() {
    let (provider, spans) = tracing();
    let layer = server_layer(&provider)
        .with_request_headers(["x-request-id", "authorization", "cookie"])
        .with_response_headers(["content-type"]);
    let (server, _) = start(layer).await;
    let req = Request::get(server.url("/orders/1"))
        .header("x-request-id", "req-1")
        .header(header::AUTHORIZATION, "Bearer top-secret")
        .header(header::COOKIE, "session=top-secret")
        .body(Full::default())
        .expect("valid");
    let res = send(ClientLayer::new(), hyper_client(), req).await;
    body_string(res.into_body()).await;
    let s = spans.wait_for_span("GET /orders/{id}").await;
    let array = |key: &str| attr(&s, key).map(|v| v.to_string());
    assert_eq!(
        array("http.request.header.x-request-id").as_deref(),
        Some("[\"req-1\"]")
    );
    assert_eq!(
        array("http.request.header.authorization").as_deref(),
        Some("[\"REDACTED\"]")
    );
    assert_eq!(
        array("http.request.header.cookie").as_deref(),
        Some("[\"REDACTED\"]")
    );
    assert!(array("http.response.header.content-type").is_some());
    assert!(!format!("{:?}", s.attributes).contains("top-secret"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_request_has_no_span_but_the_context_flows() {
    let (provider, spans) = tracing();
    let layer = server_layer(&provider).with_filter(Filter::skip_paths(["/health"]));
    let (server, _) = start(layer).await;
    let client = client_layer(&provider);
    let res = send(client, hyper_client(), get_req(&server.url("/health"))).await;
    let seen = body_string(res.into_body()).await;
    let c = spans.wait_for_span("GET").await;
    // The handler saw the caller's trace, sampled.
    assert_eq!(seen, format!("{} true", c.span_context.trace_id()));
    assert!(
        spans
            .spans()
            .iter()
            .all(|s| s.span_kind != SpanKind::Server)
    );
}

/// A hyper server without axum: the handler takes hyper's own `Request<Incoming>` (the layer
/// hands the body on untouched), and finds the span in the request's extensions and as its
/// current context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hyper_service_receives_its_own_request_body() {
    let (provider, spans) = tracing();
    let service = ServiceBuilder::new()
        .layer(server_layer(&provider))
        .service(tower::service_fn(|req: Request<Incoming>| async move {
            let current = current_context().await;
            let extension = req
                .extensions()
                .get::<Context>()
                .map(|cx| cx.span().span_context().span_id().to_string());
            let body = req.into_body().collect().await?.to_bytes();
            let reply = format!(
                "{current} {} {}",
                extension.as_deref().unwrap_or("none"),
                String::from_utf8_lossy(&body)
            );
            Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(reply))))
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service))
            .await
            .map_err(std::io::Error::other)
    });

    let req = Request::post(format!("http://{addr}/upload"))
        .body(Full::new(Bytes::from_static(b"the payload")))
        .expect("valid");
    let res = send(client_layer(&provider), hyper_client(), req).await;
    assert_eq!(res.status(), 200);
    let reply = body_string(res.into_body()).await;
    // The client is gone: its idle connection closes, and the server ends without an error.
    bounded("the server's connection", server)
        .await
        .expect("the server task did not panic")
        .expect("served without an error");

    let ended = spans
        .wait_until("the server and client spans", |s| s.len() == 2)
        .await;
    let of_kind = |kind: SpanKind| {
        ended
            .iter()
            .find(|s| s.span_kind == kind && s.name == "POST")
            .unwrap_or_else(|| panic!("a {kind:?} span named POST in {ended:#?}"))
    };
    let (server_span, client_span) = (of_kind(SpanKind::Server), of_kind(SpanKind::Client));
    assert_eq!(
        server_span.parent_span_id,
        client_span.span_context.span_id()
    );
    assert_eq!(
        reply,
        format!(
            "{} true {} the payload",
            server_span.span_context.trace_id(),
            server_span.span_context.span_id()
        )
    );
    assert_eq!(
        int_attr(server_span, "http.response.status_code"),
        Some(200)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_capture_never_exceeds_its_cap() {
    let (provider, spans) = tracing();
    let layer = server_layer(&provider)
        .with_request_payload(PayloadCapture::up_to(1024))
        .with_response_payload(PayloadCapture::up_to(1024));
    let server = serve(routes().layer(layer).with_state(AppState::default())).await;
    let big = Bytes::from(vec![b'a'; 10 * 1024 * 1024]);
    let req = Request::post(server.url("/echo"))
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(big.clone()))
        .expect("valid");
    let res = send(ClientLayer::new(), hyper_client(), req).await;
    let echoed = bounded("echo", res.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    assert_eq!(echoed.len(), big.len());
    let s = spans.wait_for_span("POST /echo").await;
    let expected = format!("{}… (10485760 bytes total)", "a".repeat(1024));
    assert_eq!(
        str_attr(&s, "http.request.body.content"),
        Some(expected.clone())
    );
    assert_eq!(str_attr(&s, "http.response.body.content"), Some(expected));
    assert_eq!(
        int_attr(&s, "http.request.body.size"),
        Some(10 * 1024 * 1024)
    );
    assert_eq!(
        int_attr(&s, "http.response.body.size"),
        Some(10 * 1024 * 1024)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_link_to_the_caller_instead_of_continuing_its_trace() {
    let (provider, spans) = tracing();
    let (server, _) = start(server_layer(&provider).with_public_endpoint(true)).await;
    let client = client_layer(&provider);
    let res = send(client, hyper_client(), get_req(&server.url("/orders/5"))).await;
    body_string(res.into_body()).await;
    let s = spans.wait_for_span("GET /orders/{id}").await;
    let c = spans.wait_for_span("GET").await;
    assert_ne!(s.span_context.trace_id(), c.span_context.trace_id());
    assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    let links: Vec<_> = s.links.iter().collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), c.span_context.span_id());
    assert_eq!(links[0].span_context.trace_id(), c.span_context.trace_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropping_sampling_hook_records_nothing_and_propagates_not_sampled() {
    let (provider, spans) = tracing();
    let layer = server_layer(&provider).with_sampling(|_, route| match route {
        Some("/context") => Sampling::Drop,
        _ => Sampling::Default,
    });
    let (server, _) = start(layer).await;
    let client = client_layer(&provider);
    let res = send(client, hyper_client(), get_req(&server.url("/context"))).await;
    let seen = body_string(res.into_body()).await;
    let c = spans.wait_for_span("GET").await;
    assert_eq!(seen, format!("{} false", c.span_context.trace_id()));
    assert!(
        spans
            .spans()
            .iter()
            .all(|s| s.span_kind != SpanKind::Server)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_ends_its_spans() {
    let (provider, spans) = tracing();
    let (server, state) = start(server_layer(&provider)).await;
    let client = client_layer(&provider);
    let service = ServiceBuilder::new().layer(client).service(hyper_client());
    let call = service.oneshot(get_req(&server.url("/hang")));
    // The handler never answers; once it is running, the caller gives up (drops the call).
    bounded("handler entered", async {
        tokio::select! {
            _ = call => panic!("/hang answered"),
            _ = state.hanging.notified() => {}
        }
    })
    .await;
    let c = spans.wait_for_span("GET").await;
    assert_eq!(str_attr(&c, "error.type").as_deref(), Some("cancelled"));
    let s = spans.wait_for_span("GET /hang").await;
    assert_eq!(str_attr(&s, "error.type").as_deref(), Some("cancelled"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_errors_are_recorded() {
    let (provider, spans) = tracing();
    // A port nothing listens on: bind, note it, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let service = ServiceBuilder::new()
        .layer(client_layer(&provider))
        .service(hyper_client());
    let err = bounded(
        "connect",
        service.oneshot(get_req(&format!("http://127.0.0.1:{port}/"))),
    )
    .await
    .expect_err("nothing listens");
    let c = spans.wait_for_span("GET").await;
    assert!(
        matches!(&c.status, Status::Error { description } if description.contains(&err.to_string()))
    );
    assert!(str_attr(&c, "error.type").is_some_and(|t| t.contains("Error")));
}

/// Under a caller that did not sample, the middleware records nothing (not even the response
/// payload it is asked to capture) and carries the trace on, not sampled; the response is
/// reqwest's own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_carries_an_unsampled_trace_on_and_records_nothing() {
    let (provider, spans) = tracing();
    let (server, _) = start(server_layer(&provider)).await;
    let layer = client_layer(&provider).with_response_payload(PayloadCapture::up_to(64));
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReqwestMiddleware::from_layer(layer))
        .build();
    let trace_id = TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
    let caller = Context::new().with_remote_span_context(SpanContext::new(
        trace_id,
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::default(),
        true,
        TraceState::NONE,
    ));
    let res = bounded(
        "reqwest",
        client
            .get(server.url("/context"))
            .send()
            .with_context(caller),
    )
    .await
    .expect("ok");
    assert_eq!(res.url().path(), "/context");
    let seen = bounded("text", res.text()).await.expect("text");
    assert_eq!(seen, format!("{trace_id} false"));
    assert!(spans.spans().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_middleware_traces_redacts_and_ends_at_body_end() {
    let (provider, spans) = tracing();
    let (server, _) = start(server_layer(&provider)).await;
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReqwestMiddleware::from_layer(client_layer(&provider)))
        .build();
    let port = server.addr.port();
    let url = format!("http://user:pw@127.0.0.1:{port}/orders/7?sig=s3cr3t");
    let res = bounded("reqwest", client.get(&url).send())
        .await
        .expect("ok");
    assert_eq!(res.url().path(), "/orders/7");
    // Not ended before the body is read.
    assert!(
        spans
            .spans()
            .iter()
            .all(|s| s.span_kind != SpanKind::Client)
    );
    let text = bounded("text", res.text()).await.expect("text");
    assert_eq!(text, "order 7");
    let c = spans.wait_for_span("GET").await;
    // reqwest moves `user:pw` into an `Authorization: Basic` header and off the URL, so
    // neither reaches `url.full`.
    assert_eq!(
        str_attr(&c, "url.full"),
        Some(format!("http://127.0.0.1:{port}/orders/7?sig=REDACTED"))
    );
    assert_eq!(int_attr(&c, "http.response.status_code"), Some(200));
    let s = spans.wait_for_span("GET /orders/{id}").await;
    assert_eq!(s.parent_span_id, c.span_context.span_id());

    // A connection refused is an error with `error.type`.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let before = spans.spans().len();
    let err = bounded(
        "refused",
        client.get(format!("http://127.0.0.1:{closed}/")).send(),
    )
    .await;
    assert!(err.is_err());
    let all = spans.wait_until("error span", |s| s.len() > before).await;
    let failed = all.last().expect("a span");
    assert_eq!(str_attr(failed, "error.type").as_deref(), Some("connect"));
    assert!(matches!(failed.status, Status::Error { .. }));
}
