//! Secrets never leave the process: calls that carry credentials in the URL, the credential
//! headers (and gRPC metadata), signed-URL query values, secret bodies and baggage go through
//! the HTTP and gRPC layers (servers with the defaults, and with the credential headers
//! allowlisted for capture), the spans go over OTLP to a real receiver, and every string of
//! every span that arrived (name, attributes, events, links, status, resource) is searched for
//! the secrets.

mod reliability;

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::any;
use examples::helloworld::HelloReply;
use examples::helloworld::HelloRequest;
use examples::helloworld::greeter_client::GreeterClient;
use examples::helloworld::greeter_server::{Greeter, GreeterServer};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use reliability::{bounded, request, send_http1, serve_http};
use test_support::{AttrValue, OtlpReceiver, ReceivedSpan, StatusCode};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Endpoint, Server};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_trace::{ClientLayer, ReqwestMiddleware, ServerLayer};
use tracing_core_lite::Pipeline;
use tracing_core_lite::export::BatchConfig;
use tracing_core_lite::pipeline::OtlpProtocol;

/// Every secret the calls carry. None may appear in any span the receiver gets.
const SECRETS: [&str; 13] = [
    "s3cr3t-password",
    "s3cr3t-sig",
    "s3cr3t-goog",
    "s3cr3t-aws-key",
    "s3cr3t-aws-sig",
    "s3cr3t-bearer",
    "s3cr3t-cookie",
    "s3cr3t-proxy",
    "s3cr3t-apikey",
    "s3cr3t-baggage",
    "s3cr3t-body",
    "s3cr3t-set-cookie",
    "s3cr3t-grpc",
];

/// A signed URL's query: the conventions' keys, and one ordinary parameter.
const SIGNED_QUERY: &str = "sig=s3cr3t-sig&X-Goog-Signature=s3cr3t-goog&\
                            AWSAccessKeyId=s3cr3t-aws-key&Signature=s3cr3t-aws-sig&page=2";
const REDACTED_QUERY: &str =
    "sig=REDACTED&X-Goog-Signature=REDACTED&AWSAccessKeyId=REDACTED&Signature=REDACTED&page=2";

/// The credential headers, a secret baggage entry, and nothing else.
fn credential_headers() -> Vec<(&'static str, &'static str)> {
    vec![
        ("authorization", "Bearer s3cr3t-bearer"),
        ("cookie", "session=s3cr3t-cookie"),
        ("proxy-authorization", "Basic s3cr3t-proxy"),
        ("x-api-key", "s3cr3t-apikey"),
        ("baggage", "token=s3cr3t-baggage"),
    ]
}

/// Echoes the (secret) body, and sets a secret cookie.
async fn item(body: Bytes) -> impl IntoResponse {
    let mut headers = HeaderMap::new();
    headers.insert("set-cookie", "s=s3cr3t-set-cookie".parse().expect("valid"));
    headers.insert("content-type", "text/plain".parse().expect("valid"));
    (headers, body)
}

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn say_hello(
        &self,
        req: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<HelloReply>, tonic::Status> {
        let mut res = tonic::Response::new(HelloReply {
            message: format!("Hello, {}!", req.into_inner().name),
        });
        res.metadata_mut()
            .insert("set-cookie", "s=s3cr3t-set-cookie".parse().expect("valid"));
        Ok(res)
    }

    type SayHelloStreamStream = tokio_stream::Empty<Result<HelloReply, tonic::Status>>;

    async fn say_hello_stream(
        &self,
        _req: tonic::Request<HelloRequest>,
    ) -> Result<tonic::Response<Self::SayHelloStreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in these tests"))
    }
}

async fn serve_grpc(layer: tonic_trace::ServerLayer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(
        Server::builder()
            .layer(layer)
            .add_service(GreeterServer::new(Hello))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

/// Sends a request over a new HTTP/1.1 connection to the authority of its URI (credentials
/// left out), in origin form: the transport under `ClientLayer`.
async fn hyper_send(
    req: http::Request<Full<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, hyper::Error> {
    let authority = req.uri().authority().expect("an absolute URI").clone();
    let host_port = authority
        .as_str()
        .rsplit('@')
        .next()
        .expect("a host")
        .to_owned();
    let tcp = TcpStream::connect(&host_port).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let (mut parts, body) = req.into_parts();
    let origin = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = origin.parse().expect("valid");
    parts
        .headers
        .insert(http::header::HOST, host_port.parse().expect("valid"));
    sender
        .send_request(http::Request::from_parts(parts, body))
        .await
}

fn attr<'a>(span: &'a ReceivedSpan, key: &str) -> Option<&'a AttrValue> {
    span.attributes.get(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_collector() {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let guard = Pipeline::new()
        .with_otlp(OtlpProtocol::Grpc, &receiver.grpc_endpoint())
        .expect("valid endpoint")
        .with_service_name("secrets")
        .with_batch_config(BatchConfig {
            scheduled_delay: Duration::from_millis(50),
            ..BatchConfig::default()
        })
        .without_global()
        .install()
        .expect("pipeline installs");
    let provider = guard.tracer_provider().clone();

    // HTTP servers: the defaults, and the credential headers allowlisted for capture.
    let app = || Router::new().route("/items/{id}", any(item));
    let defaults =
        serve_http(app().layer(ServerLayer::new().with_tracer_provider(&provider))).await;
    let allowlisted = serve_http(
        app().layer(
            ServerLayer::new()
                .with_tracer_provider(&provider)
                .with_request_headers([
                    "authorization",
                    "cookie",
                    "proxy-authorization",
                    "x-api-key",
                ])
                .with_response_headers(["set-cookie"]),
        ),
    )
    .await;
    let url = |addr: SocketAddr| {
        format!(
            "http://user:s3cr3t-password@{addr}/items/7?{}",
            SIGNED_QUERY.replace(' ', "")
        )
    };

    // tower's ClientLayer over hyper, and the reqwest middleware.
    let mut tower_client = ServiceBuilder::new()
        .layer(ClientLayer::new().with_tracer_provider(&provider))
        .service(service_fn(hyper_send));
    let reqwest_client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(ReqwestMiddleware::from_layer(
            ClientLayer::new().with_tracer_provider(&provider),
        ))
        .build();
    let mut http_spans = 0;
    for server in [&defaults, &allowlisted] {
        let mut req = http::Request::post(url(server.addr))
            .body(Full::new(Bytes::from_static(b"card=s3cr3t-body")))
            .expect("valid");
        for (name, value) in credential_headers() {
            req.headers_mut()
                .insert(name, value.parse().expect("valid"));
        }
        let res = bounded("tower client", async {
            tower_client.ready().await?.call(req).await
        })
        .await
        .expect("a response");
        let body = bounded("body", res.into_body().collect())
            .await
            .expect("the body")
            .to_bytes();
        assert_eq!(&body[..], b"card=s3cr3t-body");

        let mut builder = reqwest_client
            .post(url(server.addr))
            .body("card=s3cr3t-body");
        for (name, value) in credential_headers() {
            builder = builder.header(name, value);
        }
        let res = bounded("reqwest", builder.send())
            .await
            .expect("a response");
        assert_eq!(
            bounded("text", res.text()).await.expect("text"),
            "card=s3cr3t-body"
        );
        http_spans += 4;
    }

    // A call that fails: reqwest's error message carries the URL.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let failed = bounded("refused", reqwest_client.get(url(closed)).send()).await;
    assert!(failed.is_err());

    // A request in absolute form, credentials and all, straight to the server.
    let raw = bounded(
        "absolute form",
        send_http1(defaults.addr, request("GET", &url(defaults.addr), &[], "")),
    )
    .await;
    assert_eq!(raw.status, http::StatusCode::OK);

    // gRPC: credentials in the metadata, a secret in the message, a server URI with
    // credentials given to the client layer.
    let grpc_defaults =
        serve_grpc(tonic_trace::ServerLayer::new().with_tracer_provider(&provider)).await;
    let grpc_allowlisted = serve_grpc(
        tonic_trace::ServerLayer::new()
            .with_tracer_provider(&provider)
            .with_request_metadata(["authorization", "cookie", "x-api-key"])
            .with_response_metadata(["set-cookie"]),
    )
    .await;
    for addr in [grpc_defaults, grpc_allowlisted] {
        let with_credentials: http::Uri = format!("http://user:s3cr3t-password@{addr}")
            .parse()
            .expect("valid");
        let channel = bounded(
            "connect",
            Endpoint::from_shared(format!("http://{addr}"))
                .expect("valid")
                .connect(),
        )
        .await
        .expect("connects");
        let mut client = GreeterClient::new(
            ServiceBuilder::new()
                .layer(
                    tonic_trace::ClientLayer::new()
                        .with_tracer_provider(&provider)
                        .with_server_uri(&with_credentials),
                )
                .service(channel),
        );
        let mut req = tonic::Request::new(HelloRequest {
            name: "s3cr3t-grpc-body".into(),
        });
        for (name, value) in credential_headers() {
            req.metadata_mut()
                .insert(name, value.parse().expect("valid"));
        }
        bounded("grpc", client.say_hello(req))
            .await
            .expect("a reply");
    }
    let grpc_spans = 4;

    let expected = http_spans + 1 + 1 + grpc_spans;
    tokio::task::spawn_blocking(move || guard.shutdown())
        .await
        .expect("no panic")
        .expect("shutdown flushes");
    let spans = receiver
        .wait_for_spans(expected, Duration::from_secs(10))
        .await
        .expect("every span arrives");
    assert_eq!(spans.len(), expected, "{spans:#?}");

    for span in &spans {
        let everything = format!("{span:?}");
        for secret in SECRETS {
            assert!(
                !everything.contains(secret),
                "{secret} left the process in span {:?}: {span:#?}",
                span.name
            );
        }
    }

    // What was recorded instead.
    let url_full: Vec<&str> = spans
        .iter()
        .filter_map(|s| attr(s, "url.full").and_then(AttrValue::as_str))
        .collect();
    assert!(
        url_full
            .iter()
            .any(|u| u.starts_with("http://REDACTED:REDACTED@127.0.0.1:")),
        "{url_full:?}"
    );
    assert!(
        url_full.iter().all(|u| u.ends_with(REDACTED_QUERY)),
        "{url_full:?}"
    );
    let queries: Vec<&str> = spans
        .iter()
        .filter_map(|s| attr(s, "url.query").and_then(AttrValue::as_str))
        .collect();
    assert!(!queries.is_empty());
    assert!(queries.iter().all(|q| *q == REDACTED_QUERY), "{queries:?}");
    for key in [
        "http.request.header.authorization",
        "http.request.header.cookie",
        "http.request.header.proxy-authorization",
        "http.request.header.x-api-key",
        "http.response.header.set-cookie",
        "rpc.request.metadata.authorization",
        "rpc.request.metadata.cookie",
        "rpc.request.metadata.x-api-key",
        "rpc.response.metadata.set-cookie",
    ] {
        let captured: Vec<&AttrValue> = spans.iter().filter_map(|s| attr(s, key)).collect();
        assert!(!captured.is_empty(), "{key} is captured when allowlisted");
        // every value of the header, each one `REDACTED` (reqwest sends two `authorization`
        // values: ours, and `Basic` from the URL's credentials)
        assert!(
            captured.iter().all(|v| match v {
                AttrValue::Array(values) =>
                    !values.is_empty() && values.iter().all(|v| v.as_str() == Some("REDACTED")),
                _ => false,
            }),
            "{key}: {captured:?}"
        );
    }
    let refused = spans
        .iter()
        .find(|s| s.status_code == StatusCode::Error && attr(s, "error.type").is_some())
        .expect("the failed call's span");
    assert!(!refused.status_message.is_empty(), "{refused:#?}");
    // and by default, nothing of the headers, baggage or payloads at all
    for span in &spans {
        let is_allowlisted = span
            .attributes
            .keys()
            .any(|k| k.contains(".header.") || k.contains(".metadata."));
        if !is_allowlisted {
            assert!(
                span.attributes
                    .keys()
                    .all(|k| !k.contains("body.content") && !k.contains("baggage")),
                "{span:#?}"
            );
        }
    }
}
