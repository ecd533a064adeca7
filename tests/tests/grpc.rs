//! The gRPC layers and interceptors over real tonic servers and clients on 127.0.0.1.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use examples::helloworld::greeter_client::GreeterClient;
use examples::helloworld::greeter_server::{Greeter, GreeterServer};
use examples::helloworld::{HelloReply, HelloRequest};
use opentelemetry::trace::{
    FutureExt as _, SpanKind, Status as SpanStatus, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, Value};
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use test_support::collector::{Collector, WAIT, tracing};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio_stream::{Stream, StreamExt};
use tonic::service::Interceptor;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};
use tonic_trace::{ClientLayer, ClientTrace, ExtractWith, InjectWith, InterceptorExt, ServerLayer};
use tower::ServiceBuilder;
use tracing_core_lite::Propagators;
use tracing_core_lite::capture::PayloadCapture;
use tracing_core_lite::filter::Filter;

const UNARY: &str = "helloworld.Greeter/SayHello";
const STREAM: &str = "helloworld.Greeter/SayHelloStream";

/// The greeter under test. Names steer it: `error` → INTERNAL, `invalid` → INVALID_ARGUMENT,
/// `slow` → never answers; streams: `hold` sends one reply then waits, `fail` sends two then
/// DATA_LOSS; `whoami` answers with the trace id of the context the `extract` interceptor put
/// in the request extensions.
#[derive(Default)]
struct TestGreeter {
    entered: Arc<Notify>,
}

type ReplyStream = Pin<Box<dyn Stream<Item = Result<HelloReply, Status>> + Send>>;

fn reply(message: String) -> HelloReply {
    HelloReply { message }
}

#[tonic::async_trait]
impl Greeter for TestGreeter {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let extracted = req
            .extensions()
            .get::<Context>()
            .map(|cx| cx.span().span_context().trace_id().to_string());
        let name = req.into_inner().name;
        match name.as_str() {
            "error" => Err(Status::internal("boom")),
            "invalid" => Err(Status::invalid_argument("bad name")),
            "slow" => {
                self.entered.notify_one();
                std::future::pending().await
            }
            "whoami" => Ok(Response::new(reply(extracted.unwrap_or_default()))),
            _ => Ok(Response::new(reply(format!("Hello, {name}!")))),
        }
    }

    type SayHelloStreamStream = ReplyStream;

    async fn say_hello_stream(
        &self,
        req: Request<HelloRequest>,
    ) -> Result<Response<ReplyStream>, Status> {
        let name = req.into_inner().name;
        let stream: ReplyStream = match name.as_str() {
            "hold" => {
                let entered = Arc::clone(&self.entered);
                Box::pin(tokio_stream::iter([Ok(reply("first".into()))]).chain(
                    tokio_stream::once(()).then(move |()| {
                        let entered = Arc::clone(&entered);
                        async move {
                            entered.notify_one();
                            std::future::pending::<Result<HelloReply, Status>>().await
                        }
                    }),
                ))
            }
            "fail" => Box::pin(tokio_stream::iter([
                Ok(reply("one".into())),
                Ok(reply("two".into())),
                Err(Status::data_loss("lost the rest")),
            ])),
            _ => Box::pin(tokio_stream::iter(
                (1..=3).map(move |i| Ok(reply(format!("Hello, {name}! ({i}/3)")))),
            )),
        };
        Ok(Response::new(stream))
    }
}

struct TestServer {
    addr: SocketAddr,
    entered: Arc<Notify>,
    _stop: oneshot::Sender<()>,
}

/// A tonic server with `layer`, the greeter (behind `interceptor`, if any) and the health
/// service, on an ephemeral loopback port; stops when dropped.
async fn serve_with<I>(layer: ServerLayer, interceptor: I) -> TestServer
where
    I: Interceptor + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let greeter = TestGreeter::default();
    let entered = Arc::clone(&greeter.entered);
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GreeterServer<TestGreeter>>().await;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = Server::builder()
            .layer(layer)
            .add_service(health_service)
            .add_service(GreeterServer::with_interceptor(greeter, interceptor))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    TestServer {
        addr,
        entered,
        _stop: stop,
    }
}

fn pass(req: Request<()>) -> Result<Request<()>, Status> {
    Ok(req)
}

async fn serve(layer: ServerLayer) -> TestServer {
    serve_with(
        layer,
        pass as fn(Request<()>) -> Result<Request<()>, Status>,
    )
    .await
}

async fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect()
        .await
        .expect("connects")
}

async fn client(addr: SocketAddr, layer: ClientLayer) -> GreeterClient<ClientTrace<Channel>> {
    let uri: http::Uri = format!("http://{addr}").parse().expect("valid");
    GreeterClient::new(
        ServiceBuilder::new()
            .layer(layer.with_server_uri(&uri))
            .service(channel(addr).await),
    )
}

fn layers(provider: &SdkTracerProvider, propagators: Propagators) -> (ServerLayer, ClientLayer) {
    (
        ServerLayer::new()
            .with_tracer_provider(provider)
            .with_propagators(propagators.clone()),
        ClientLayer::new()
            .with_tracer_provider(provider)
            .with_propagators(propagators),
    )
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn str_attr(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

/// The `(type, id, size)` of each message event.
fn messages(span: &SpanData) -> Vec<(String, i64, i64)> {
    span.events
        .iter()
        .filter(|e| e.name == "rpc.message")
        .map(|e| {
            let get = |k: &str| {
                e.attributes
                    .iter()
                    .find(|kv| kv.key.as_str() == k)
                    .map(|kv| kv.value.clone())
            };
            let int = |k: &str| match get(k) {
                Some(Value::I64(n)) => n,
                _ => -1,
            };
            (
                get("rpc.message.type")
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
                int("rpc.message.id"),
                int("rpc.message.uncompressed_size"),
            )
        })
        .collect()
}

async fn pair(spans: &Collector, name: &str) -> (SpanData, SpanData) {
    let all = spans
        .wait_until(name, |s| s.iter().filter(|s| s.name == name).count() >= 2)
        .await;
    let pick = |kind: SpanKind| {
        all.iter()
            .find(|s| s.name == name && s.span_kind == kind)
            .cloned()
            .unwrap_or_else(|| panic!("no {kind:?} span {name}"))
    };
    (pick(SpanKind::Server), pick(SpanKind::Client))
}

fn hello(name: &str) -> HelloRequest {
    HelloRequest { name: name.into() }
}

fn code_of(span: &SpanData) -> Option<String> {
    str_attr(span, "rpc.response.status_code")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_ok_server_span_is_child_of_client_span_with_message_events() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer).await;
    let mut greeter = client(server.addr, client_layer).await;
    let reply = greeter.say_hello(hello("world")).await.expect("ok");
    assert_eq!(reply.into_inner().message, "Hello, world!");

    let (s, c) = pair(&spans, UNARY).await;
    assert_eq!(s.parent_span_id, c.span_context.span_id());
    assert_eq!(s.span_context.trace_id(), c.span_context.trace_id());
    assert!(s.parent_span_is_remote);
    assert_eq!(str_attr(&s, "rpc.system.name").as_deref(), Some("grpc"));
    assert_eq!(str_attr(&s, "rpc.method").as_deref(), Some(UNARY));
    assert_eq!(code_of(&s).as_deref(), Some("OK"));
    assert_eq!(code_of(&c).as_deref(), Some("OK"));
    assert_eq!(str_attr(&s, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&s, "server.port"),
        Some(&Value::I64(i64::from(server.addr.port())))
    );
    assert_eq!(str_attr(&s, "client.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(str_attr(&c, "server.address").as_deref(), Some("127.0.0.1"));
    assert_eq!(
        attr(&c, "server.port"),
        Some(&Value::I64(i64::from(server.addr.port())))
    );
    assert_eq!(s.status, SpanStatus::Unset);
    assert_eq!(c.status, SpanStatus::Unset);
    // "world" encodes to 7 bytes; the reply "Hello, world!" to 15.
    assert_eq!(
        messages(&s),
        [("RECEIVED".into(), 1, 7), ("SENT".into(), 1, 15)]
    );
    assert_eq!(
        messages(&c),
        [("SENT".into(), 1, 7), ("RECEIVED".into(), 1, 15)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_only_errors_follow_the_status_rules_per_side() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer).await;
    let mut greeter = client(server.addr, client_layer).await;

    let err = greeter
        .say_hello(hello("error"))
        .await
        .expect_err("INTERNAL");
    assert_eq!(err.code(), Code::Internal);
    let (s, c) = pair(&spans, UNARY).await;
    assert_eq!(code_of(&s).as_deref(), Some("INTERNAL"));
    assert_eq!(s.status, SpanStatus::error("boom"));
    assert_eq!(str_attr(&s, "error.type").as_deref(), Some("INTERNAL"));
    assert_eq!(c.status, SpanStatus::error("boom"));
    // trailers-only: no reply message was sent
    assert_eq!(messages(&s), [("RECEIVED".into(), 1, 7)]);

    let before = spans.spans().len();
    let err = greeter
        .say_hello(hello("invalid"))
        .await
        .expect_err("INVALID_ARGUMENT");
    assert_eq!(err.code(), Code::InvalidArgument);
    let all = spans
        .wait_until("two more spans", |s| s.len() >= before + 2)
        .await;
    let s = all[before..]
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server");
    let c = all[before..]
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .expect("client");
    // The caller's mistake is not the server's error; it is the client's.
    assert_eq!(code_of(s).as_deref(), Some("INVALID_ARGUMENT"));
    assert_eq!(s.status, SpanStatus::Unset);
    assert_eq!(attr(s, "error.type"), None);
    assert_eq!(c.status, SpanStatus::error("bad name"));
    assert_eq!(
        str_attr(c, "error.type").as_deref(),
        Some("INVALID_ARGUMENT")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_stream_is_one_span_with_its_status_from_the_trailers() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer).await;
    let mut greeter = client(server.addr, client_layer).await;

    let mut stream = greeter
        .say_hello_stream(hello("ann"))
        .await
        .expect("ok")
        .into_inner();
    let mut replies = Vec::new();
    while let Some(r) = stream.message().await.expect("ok") {
        replies.push(r.message);
    }
    assert_eq!(replies.len(), 3);
    let (s, c) = pair(&spans, STREAM).await;
    let sent: Vec<_> = messages(&s)
        .into_iter()
        .filter(|m| m.0 == "SENT")
        .map(|m| m.1)
        .collect();
    assert_eq!(sent, [1, 2, 3]);
    let received: Vec<_> = messages(&c)
        .into_iter()
        .filter(|m| m.0 == "RECEIVED")
        .map(|m| m.1)
        .collect();
    assert_eq!(received, [1, 2, 3]);
    assert_eq!(code_of(&s).as_deref(), Some("OK"));
    assert_eq!(code_of(&c).as_deref(), Some("OK"));

    // An error after two messages arrives in the trailers.
    let before = spans.spans().len();
    let mut stream = greeter
        .say_hello_stream(hello("fail"))
        .await
        .expect("ok")
        .into_inner();
    assert!(stream.message().await.expect("one").is_some());
    assert!(stream.message().await.expect("two").is_some());
    assert_eq!(
        stream.message().await.expect_err("lost").code(),
        Code::DataLoss
    );
    let all = spans
        .wait_until("two more spans", |s| s.len() >= before + 2)
        .await;
    let s = all[before..]
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .expect("server");
    assert_eq!(code_of(s).as_deref(), Some("DATA_LOSS"));
    assert_eq!(s.status, SpanStatus::error("lost the rest"));
    assert_eq!(messages(s).iter().filter(|m| m.0 == "SENT").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_cancels_mid_stream_gives_cancelled() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer).await;
    let mut greeter = client(server.addr, client_layer).await;
    let mut stream = greeter
        .say_hello_stream(hello("hold"))
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(
        stream.message().await.expect("ok").expect("first").message,
        "first"
    );
    tokio::time::timeout(WAIT, server.entered.notified())
        .await
        .expect("server holds");
    drop(stream);
    let (s, c) = pair(&spans, STREAM).await;
    assert_eq!(code_of(&c).as_deref(), Some("CANCELLED"));
    assert_eq!(code_of(&s).as_deref(), Some("CANCELLED"));
    // CANCELLED is not a server error.
    assert_eq!(s.status, SpanStatus::Unset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_exceeded_call_is_recorded_on_both_sides() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer).await;
    let mut greeter = client(server.addr, client_layer).await;
    let mut req = Request::new(hello("slow"));
    req.set_timeout(std::time::Duration::from_millis(100));
    let err = greeter.say_hello(req).await.expect_err("times out");
    let (s, c) = pair(&spans, UNARY).await;
    // tonic tells its caller CANCELLED("Timeout expired"); both spans call it what the gRPC
    // specification does: the client's deadline expired, and the server saw the call
    // cancelled after the deadline it was given (`grpc-timeout`).
    assert_eq!(err.code(), Code::Cancelled);
    assert_eq!(
        code_of(&c).as_deref(),
        Some("DEADLINE_EXCEEDED"),
        "{err:?} {c:#?}"
    );
    assert!(matches!(c.status, SpanStatus::Error { .. }));
    assert_eq!(code_of(&s).as_deref(), Some("DEADLINE_EXCEEDED"));
    assert!(matches!(s.status, SpanStatus::Error { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_are_filtered_out() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer.with_filter(Filter::grpc_health_and_reflection())).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(
        ServiceBuilder::new()
            .layer(client_layer)
            .service(channel(server.addr).await),
    );
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "helloworld.Greeter".into(),
        })
        .await
        .expect("ok")
        .into_inner();
    assert_eq!(status.status, 1, "SERVING");
    let c = spans.wait_for_span("grpc.health.v1.Health/Check").await;
    assert_eq!(c.span_kind, SpanKind::Client);
    assert!(
        spans
            .spans()
            .iter()
            .all(|s| s.span_kind != SpanKind::Server)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_capture_respects_its_cap() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer.with_payloads(
        PayloadCapture::up_to(8),
        tonic_trace::PayloadRenderer::new(),
    ))
    .await;
    let mut greeter = client(server.addr, client_layer).await;
    let long = "x".repeat(1000);
    greeter.say_hello(hello(&long)).await.expect("ok");
    let (s, _) = pair(&spans, UNARY).await;
    let received = s
        .events
        .iter()
        .find(|e| {
            e.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "rpc.message.type" && kv.value.as_str() == "RECEIVED")
        })
        .expect("received event");
    let payload = received
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "rpc.message.payload")
        .map(|kv| kv.value.as_str().into_owned())
        .expect("payload captured");
    // 1000 'x' encode to 1003 bytes; at most 8 of them were kept.
    assert!(payload.contains("1003"), "{payload}");
    assert!(payload.len() < 200, "{payload}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_events_can_be_switched_off() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer.with_message_events(false)).await;
    let mut greeter = client(server.addr, client_layer.with_message_events(false)).await;
    greeter.say_hello(hello("quiet")).await.expect("ok");
    let (s, c) = pair(&spans, UNARY).await;
    assert!(s.events.is_empty() && c.events.is_empty());
    assert_eq!(code_of(&s).as_deref(), Some("OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_propagator_connects_client_and_server() {
    for format in ["tracecontext", "b3", "b3multi", "jaeger"] {
        let (provider, spans) = tracing();
        let (server_layer, client_layer) =
            layers(&provider, Propagators::parse(format).expect("known"));
        let server = serve(server_layer).await;
        let mut greeter = client(server.addr, client_layer).await;
        greeter.say_hello(hello(format)).await.expect("ok");
        let (s, c) = pair(&spans, UNARY).await;
        assert_eq!(s.parent_span_id, c.span_context.span_id(), "{format}");
        assert_eq!(
            s.span_context.trace_id(),
            c.span_context.trace_id(),
            "{format}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interceptors_carry_the_context_and_chain_with_auth() {
    let (provider, _spans) = tracing();
    let propagators = Propagators::default();
    let require_auth = |req: Request<()>| {
        if req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            == Some("Bearer t")
        {
            Ok(req)
        } else {
            Err(Status::unauthenticated("no token"))
        }
    };
    let server = serve_with(
        ServerLayer::new().with_tracer_provider(&provider),
        ExtractWith(propagators.clone()).chain(require_auth),
    )
    .await;
    let add_auth = |mut req: Request<()>| {
        req.metadata_mut().insert(
            "authorization",
            "Bearer t".parse().map_err(|_| Status::internal("bad"))?,
        );
        Ok(req)
    };
    let tracer = provider.tracer("test");
    for inject_first in [true, false] {
        let root = tracer.start("caller");
        let cx = Context::current_with_span(root);
        let trace_id = cx.span().span_context().trace_id().to_string();
        let seen = async {
            let reply = if inject_first {
                GreeterClient::with_interceptor(
                    channel(server.addr).await,
                    InjectWith(propagators.clone()).chain(add_auth),
                )
                .say_hello(hello("whoami"))
                .await
            } else {
                GreeterClient::with_interceptor(
                    channel(server.addr).await,
                    add_auth.chain(InjectWith(propagators.clone())),
                )
                .say_hello(hello("whoami"))
                .await
            };
            reply.expect("authorized").into_inner().message
        }
        .with_context(cx.clone())
        .await;
        assert_eq!(seen, trace_id, "inject_first={inject_first}");
    }
    // Without the auth interceptor, the chain short-circuits before the handler.
    let err = GreeterClient::with_interceptor(channel(server.addr).await, InjectWith(propagators))
        .say_hello(hello("whoami"))
        .await
        .expect_err("unauthenticated");
    assert_eq!(err.code(), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_captured_by_allowlist_with_credentials_redacted() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer.with_request_metadata(["x-tenant", "authorization"])).await;
    let mut greeter = client(server.addr, client_layer).await;
    let mut req = Request::new(hello("meta"));
    req.metadata_mut()
        .insert("x-tenant", "acme".parse().expect("ascii"));
    req.metadata_mut()
        .insert("authorization", "Bearer top-secret".parse().expect("ascii"));
    req.metadata_mut()
        .insert("x-other", "not-captured".parse().expect("ascii"));
    greeter.say_hello(req).await.expect("ok");
    let (s, _) = pair(&spans, UNARY).await;
    let meta = |k: &str| attr(&s, k).map(|v| v.to_string());
    assert_eq!(
        meta("rpc.request.metadata.x-tenant").as_deref(),
        Some("[\"acme\"]")
    );
    assert_eq!(
        meta("rpc.request.metadata.authorization").as_deref(),
        Some("[\"REDACTED\"]")
    );
    let everything = format!("{:?}", s.attributes);
    assert!(!everything.contains("top-secret") && !everything.contains("not-captured"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_link_to_the_caller() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let server = serve(server_layer.with_public_endpoint(true)).await;
    let mut greeter = client(server.addr, client_layer).await;
    greeter.say_hello(hello("public")).await.expect("ok");
    let (s, c) = pair(&spans, UNARY).await;
    assert_ne!(s.span_context.trace_id(), c.span_context.trace_id());
    assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
    let links: Vec<_> = s.links.iter().collect();
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].span_context.span_id(), c.span_context.span_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payloads_decode_to_json_with_the_services_descriptor_set() {
    let (provider, spans) = tracing();
    let (server_layer, client_layer) = layers(&provider, Propagators::default());
    let renderer =
        tonic_trace::PayloadRenderer::with_file_descriptor_set(examples::FILE_DESCRIPTOR_SET)
            .expect("the greeter's descriptor set");
    let server = serve(server_layer.with_payloads(PayloadCapture::up_to(256), renderer)).await;
    let mut greeter = client(server.addr, client_layer).await;
    greeter.say_hello(hello("json")).await.expect("ok");
    let (s, _) = pair(&spans, UNARY).await;
    let payloads: Vec<String> = s
        .events
        .iter()
        .filter_map(|e| {
            e.attributes
                .iter()
                .find(|kv| kv.key.as_str() == "rpc.message.payload")
                .map(|kv| kv.value.as_str().into_owned())
        })
        .collect();
    assert_eq!(
        payloads,
        [r#"{"name":"json"}"#, r#"{"message":"Hello, json!"}"#]
    );
}
