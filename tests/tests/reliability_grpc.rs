//! gRPC: hostile metadata and bodies whose framing lies, sent with a raw HTTP/2 client to real
//! tonic servers, one with `tonic_trace::ServerLayer` (with and without payload capture) and
//! one without. The call must be answered exactly as without the middleware (status, headers,
//! body and trailers), and the span must end, continue the one valid parent or start a new
//! trace, and record a body that ended inside a message without holding more than the
//! payload cap.

mod reliability;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};

use examples::helloworld::greeter_client::GreeterClient;
use examples::helloworld::greeter_server::{Greeter, GreeterServer};
use examples::helloworld::{HelloReply, HelloRequest};
use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::trace::{SpanId, TraceContextExt};
use opentelemetry_sdk::trace::SpanData;
use reliability::{
    ALL_FORMATS, B3_TRACE, MAX_HEADER_BYTES, Parent, Reply, TP, TP_TRACE, bounded, h,
    hostile_cases, request, send_http2,
};
use test_support::collector::{Collector, tracing};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_trace::{
    ClientLayer, INCOMPLETE_MESSAGE_EVENT, MESSAGE_PAYLOAD, PayloadRenderer, ServerLayer,
};
use tower::ServiceBuilder;
use tracing_core_lite::Propagators;
use tracing_core_lite::capture::PayloadCapture;
use tracing_core_lite::filter::Filter;

const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

/// The payload cap of the capturing server.
const CAP: usize = 8;

/// Greets; the name `context` is answered with the context the layer gave the handler.
struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let cx = req
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_default();
        let name = req.into_inner().name;
        let message = if name == "context" {
            let span = cx.span();
            let sc = span.span_context();
            format!(
                "trace={} remote={} baggage={}",
                if sc.is_valid() {
                    sc.trace_id().to_string()
                } else {
                    "none".to_owned()
                },
                sc.is_remote(),
                cx.baggage().len()
            )
        } else {
            format!("Hello, {name}!")
        };
        Ok(Response::new(HelloReply { message }))
    }

    type SayHelloStreamStream = tokio_stream::Empty<Result<HelloReply, Status>>;

    async fn say_hello_stream(
        &self,
        _req: Request<HelloRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        Err(Status::unimplemented("not in these tests"))
    }
}

struct GrpcServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// A tonic server builder that accepts far larger metadata than tonic's default (16 KiB), so
/// that hostile metadata reaches the middleware.
fn builder() -> Server {
    Server::builder().http2_max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap())
}

/// Serves the greeter with `$builder` (a `Server`, with or without layers) on 127.0.0.1.
macro_rules! serve_grpc {
    ($builder:expr) => {{
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let router = $builder.add_service(GreeterServer::new(Hello));
        tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                })
                .await;
        });
        GrpcServer { addr, _stop: stop }
    }};
}

/// `HelloRequest { name }`, encoded (names shorter than 128 bytes).
fn hello(name: &str) -> Vec<u8> {
    let mut v = vec![0x0a, u8::try_from(name.len()).expect("a short name")];
    v.extend_from_slice(name.as_bytes());
    v
}

/// A gRPC length-prefixed message: `flag`, the announced `len`, then `payload` as it is.
fn frame(flag: u8, len: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![flag];
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

fn message(payload: &[u8]) -> Vec<u8> {
    frame(0, u32::try_from(payload.len()).unwrap(), payload)
}

/// The `message` of a `HelloReply` in a response body of one message.
fn reply_message(reply: &Reply) -> String {
    let body = &reply.body;
    assert!(body.len() > 7, "{reply:?}");
    String::from_utf8_lossy(&body[7..]).into_owned()
}

async fn call(addr: SocketAddr, headers: &[(String, Vec<u8>)], body: Vec<u8>) -> Reply {
    let mut headers = headers.to_vec();
    headers.push(h("content-type", "application/grpc"));
    headers.push(h("te", "trailers"));
    let uri = format!("http://{addr}{SAY_HELLO}");
    send_http2(addr, request("POST", &uri, &headers, body)).await
}

/// The `index`-th span of `spans`, once it has ended.
async fn nth(spans: &Collector, index: usize, what: &str) -> SpanData {
    spans
        .wait_until(what, |spans| spans.len() > index)
        .await
        .swap_remove(index)
}

fn has_status(span: &SpanData) -> bool {
    span.attributes.iter().any(|kv| {
        matches!(
            kv.key.as_str(),
            "rpc.response.status_code" | "rpc.grpc.status_code"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_metadata_is_served_as_without_the_middleware() {
    let (provider, spans) = tracing();
    let layer = ServerLayer::new()
        .with_tracer_provider(&provider)
        .with_propagators(Propagators::parse(ALL_FORMATS).expect("valid"));
    let traced = serve_grpc!(builder().layer(layer));
    let plain = serve_grpc!(builder());
    for (i, case) in hostile_cases().iter().enumerate() {
        let started = Instant::now();
        let with = bounded(
            case.name,
            call(traced.addr, &case.headers, message(&hello("world"))),
        )
        .await;
        let took = started.elapsed();
        let without = bounded(
            case.name,
            call(plain.addr, &case.headers, message(&hello("world"))),
        )
        .await;
        assert_eq!(with, without, "{}", case.name);
        assert_eq!(reply_message(&with), "Hello, world!", "{}", case.name);
        assert!(took < Duration::from_secs(2), "{}: {took:?}", case.name);

        let span = nth(&spans, i, case.name).await;
        assert_eq!(span.name, "helloworld.Greeter/SayHello", "{}", case.name);
        assert!(has_status(&span), "{}: {span:?}", case.name);
        match case.parent {
            Parent::New => {
                assert_eq!(span.parent_span_id, SpanId::INVALID, "{}", case.name);
                let trace_id = span.span_context.trace_id().to_string();
                assert!(
                    trace_id != TP_TRACE && trace_id != B3_TRACE,
                    "{}",
                    case.name
                );
            }
            Parent::Continues(trace, parent) => {
                assert_eq!(
                    span.span_context.trace_id().to_string(),
                    trace,
                    "{}",
                    case.name
                );
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_frames_are_answered_as_without_the_middleware() {
    let (provider, spans) = tracing();
    let (capturing_provider, captured) = tracing();
    let traced = serve_grpc!(builder().layer(ServerLayer::new().with_tracer_provider(&provider)));
    let capturing = serve_grpc!(
        builder().layer(
            ServerLayer::new()
                .with_tracer_provider(&capturing_provider)
                .with_payloads(PayloadCapture::up_to(CAP), PayloadRenderer::new())
        )
    );
    let plain = serve_grpc!(builder());

    let msg = hello("world");
    let ok = message(&msg);
    let len = u32::try_from(msg.len()).unwrap();
    // (case, whether the request body ends inside a message)
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("a well-formed message", ok.clone(), false),
        (
            "a length that lies: 1000 announced, 7 sent",
            frame(0, 1000, &msg),
            true,
        ),
        ("a body that ends inside the prefix", vec![0, 0, 0], true),
        ("a message cut short", ok[..ok.len() - 3].to_vec(), true),
        (
            "a message, then half a prefix",
            [ok.clone(), vec![0, 0]].concat(),
            true,
        ),
        ("a 4 GiB length", frame(0, u32::MAX, &msg), true),
        (
            "a compressed message without grpc-encoding",
            frame(1, len, &msg),
            false,
        ),
        ("a flag that is neither 0 nor 1", frame(7, len, &msg), false),
        (
            "two messages in a unary call",
            [ok.clone(), ok.clone()].concat(),
            false,
        ),
        ("an empty body", Vec::new(), false),
    ];
    for (i, (name, body, incomplete)) in cases.iter().enumerate() {
        let started = Instant::now();
        let with = bounded(name, call(traced.addr, &[], body.clone())).await;
        let with_capture = bounded(name, call(capturing.addr, &[], body.clone())).await;
        let took = started.elapsed();
        let without = bounded(name, call(plain.addr, &[], body.clone())).await;
        assert_eq!(with, without, "{name}");
        assert_eq!(with_capture, without, "{name}");
        assert!(took < Duration::from_secs(4), "{name}: {took:?}");

        for span in [nth(&spans, i, name).await, nth(&captured, i, name).await] {
            assert!(has_status(&span), "{name}: {span:?}");
            let reported = span
                .events
                .iter()
                .any(|e| e.name == INCOMPLETE_MESSAGE_EVENT);
            // tonic stops reading a body whose message is too large (the 4 GiB one) before
            // it ends; the others are read to their end, and the parser says what it saw.
            if *incomplete && *name != "a 4 GiB length" {
                assert!(reported, "{name}: {span:?}");
            } else if !*incomplete {
                assert!(!reported, "{name}: {span:?}");
            }
            for event in span.events.iter() {
                for kv in &event.attributes {
                    if kv.key.as_str() == MESSAGE_PAYLOAD {
                        let rendered = kv.value.as_str();
                        assert!(rendered.len() <= 4 * CAP + 128, "{name}: {rendered}");
                    }
                }
            }
        }
    }
}

/// Public-endpoint mode for gRPC: a call the filter leaves untraced does not run under the
/// caller's context either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_endpoints_trust_nothing_from_the_caller() {
    let (provider, _spans) = tracing();
    let layer = |skip: bool| {
        let filter = if skip {
            Filter::skip_paths([SAY_HELLO])
        } else {
            Filter::all()
        };
        ServerLayer::new()
            .with_tracer_provider(&provider)
            .with_propagators(Propagators::parse(ALL_FORMATS).expect("valid"))
            .with_public_endpoint(true)
            .with_filter(filter)
    };
    let traced = serve_grpc!(builder().layer(layer(false)));
    let untraced = serve_grpc!(builder().layer(layer(true)));
    let headers = [h("traceparent", TP), h("baggage", "user=alice")];
    for server in [&traced, &untraced] {
        let reply = bounded(
            "call",
            call(server.addr, &headers, message(&hello("context"))),
        )
        .await;
        let seen = reply_message(&reply);
        assert!(!seen.contains(TP_TRACE), "{seen}");
        assert!(seen.ends_with("remote=false baggage=0"), "{seen}");
    }
}

/// A gRPC "server" that answers every call with `body` as the response body (then, if
/// `trailers`, `grpc-status: 0`): a peer whose framing lies.
async fn lying_server(body: Vec<u8>, trailers: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let body = body.clone();
            let service = hyper::service::service_fn(move |_req| {
                let mut frames = vec![Ok::<_, Infallible>(Frame::data(Bytes::from(body.clone())))];
                if trailers {
                    let mut t = http::HeaderMap::new();
                    t.insert("grpc-status", http::HeaderValue::from_static("0"));
                    frames.push(Ok(Frame::trailers(t)));
                }
                async move {
                    let res = http::Response::builder()
                        .header("content-type", "application/grpc")
                        .body(StreamBody::new(tokio_stream::iter(frames)))
                        .expect("a response");
                    Ok::<_, Infallible>(res)
                }
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    addr
}

/// The client side: responses whose framing lies fail the call exactly as without
/// `ClientLayer`, and the client span records what happened and ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_responses_fail_the_call_as_without_the_middleware() {
    let (provider, spans) = tracing();
    let ok = message(&[0x0a, 2, b'h', b'i']);
    // (case, body, trailers, whether the response body ends inside a message)
    let cases: Vec<(&str, Vec<u8>, bool, bool)> = vec![
        ("a well-formed reply", ok.clone(), true, false),
        ("a reply without grpc-status", ok.clone(), false, false),
        (
            "a length that lies: 1000 announced, 4 sent",
            frame(0, 1000, &ok[5..]),
            true,
            true,
        ),
        (
            "a reply cut short, no trailers",
            ok[..ok.len() - 2].to_vec(),
            false,
            true,
        ),
        (
            "half a prefix after the reply",
            [ok.clone(), vec![0, 0]].concat(),
            true,
            true,
        ),
        (
            "a flag that is neither 0 nor 1",
            frame(9, 4, &ok[5..]),
            true,
            false,
        ),
    ];
    for (i, (name, body, trailers, incomplete)) in cases.into_iter().enumerate() {
        let addr = lying_server(body, trailers).await;
        let channel = bounded(
            name,
            Endpoint::from_shared(format!("http://{addr}"))
                .expect("valid")
                .connect(),
        )
        .await
        .expect("connects");
        let outcome = |r: Result<tonic::Response<HelloReply>, Status>| match r {
            Ok(reply) => Ok(reply.into_inner().message),
            Err(status) => Err((status.code(), status.message().to_owned())),
        };
        let mut plain = GreeterClient::new(channel.clone());
        let mut traced = GreeterClient::new(
            ServiceBuilder::new()
                .layer(ClientLayer::new().with_tracer_provider(&provider))
                .service(channel),
        );
        let request = || {
            tonic::Request::new(HelloRequest {
                name: "world".into(),
            })
        };
        let without = outcome(bounded(name, plain.say_hello(request())).await);
        let with = outcome(bounded(name, traced.say_hello(request())).await);
        assert_eq!(with, without, "{name}");

        let span = nth(&spans, i, name).await;
        assert!(has_status(&span), "{name}: {span:?}");
        let reported = span
            .events
            .iter()
            .any(|e| e.name == INCOMPLETE_MESSAGE_EVENT);
        assert_eq!(reported, incomplete, "{name}: {span:?}");
    }
}
