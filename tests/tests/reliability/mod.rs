//! What the `reliability_*` tests share: servers on 127.0.0.1 whose hyper accepts far larger
//! headers than its defaults (so that hostile headers reach the middleware instead of being
//! refused by hyper), raw HTTP/1.1 and HTTP/2 clients that send header bytes as they are
//! (obs-text that is not UTF-8, duplicates), and the hostile propagation headers themselves.

#![allow(dead_code)] // each test file uses a part

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The bound on every wait of these tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The most headers our servers accept on HTTP/1 (hyper's default is 100).
pub const MAX_HEADERS: usize = 512;

/// The most header bytes our servers accept (hyper's defaults: about 400 KiB on HTTP/1,
/// 16 KiB on HTTP/2, which tonic keeps).
pub const MAX_HEADER_BYTES: usize = 4 << 20;

/// Runs `f`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// A server on 127.0.0.1 that stops accepting when dropped.
pub struct Server {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

/// Serves `app` (HTTP/1.1 and h2c) with hyper's limits raised to [`MAX_HEADERS`] and
/// [`MAX_HEADER_BYTES`]. The peer address is in the request extensions as a `SocketAddr`.
pub async fn serve_http(app: axum::Router) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, mut stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
                _ = &mut stopped => return,
            };
            let app = app.clone().layer(axum::Extension(peer));
            tokio::spawn(async move {
                let mut builder = auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .max_headers(MAX_HEADERS)
                    .max_buf_size(MAX_HEADER_BYTES);
                builder
                    .http2()
                    .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX));
                let _ = builder
                    .serve_connection(TokioIo::new(tcp), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    Server { addr, _stop: stop }
}

/// A response as the client saw it, `date` left out: what "served exactly as without the
/// middleware" compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
    pub trailers: Vec<(String, Vec<u8>)>,
}

fn listed(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .filter(|(name, _)| *name != http::header::DATE)
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}

/// A request with `headers` appended as they are (names lower-cased by `http`).
pub fn request(
    method: &str,
    uri: &str,
    headers: &[(String, Vec<u8>)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body.into()))
        .expect("a valid request");
    for (name, value) in headers {
        req.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("a valid header name"),
            HeaderValue::from_bytes(value).expect("a valid header value"),
        );
    }
    req
}

async fn reply(res: http::Response<hyper::body::Incoming>) -> Reply {
    let (parts, body) = res.into_parts();
    let collected = body.collect().await.expect("the response body");
    let trailers = collected.trailers().map(listed).unwrap_or_default();
    Reply {
        status: parts.status,
        headers: listed(&parts.headers),
        body: collected.to_bytes(),
        trailers,
    }
}

/// Sends `req` over a new HTTP/1.1 connection to `addr` (adding `host`), and reads the whole
/// response.
pub async fn send_http1(addr: SocketAddr, mut req: Request<Full<Bytes>>) -> Reply {
    req.headers_mut().insert(
        http::header::HOST,
        HeaderValue::from_str(&addr.to_string()).expect("valid"),
    );
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(conn);
    let res = sender.send_request(req).await.expect("a response");
    reply(res).await
}

/// Sends `req` over a new HTTP/2 (h2c, prior knowledge) connection to `addr`, and reads the
/// whole response, trailers included. The URI must be absolute (`http://addr/path`).
pub async fn send_http2(addr: SocketAddr, req: Request<Full<Bytes>>) -> Reply {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .max_header_list_size(u32::try_from(MAX_HEADER_BYTES).unwrap_or(u32::MAX))
        .handshake(TokioIo::new(tcp))
        .await
        .expect("HTTP/2 handshake");
    tokio::spawn(conn);
    let res = sender.send_request(req).await.expect("a response");
    reply(res).await
}

/// A `traceparent` (sampled) and its ids.
pub const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
pub const TP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
pub const TP_SPAN: &str = "00f067aa0ba902b7";

/// Another sampled parent, in each format.
pub const OTHER_TP: &str = "00-11111111111111111111111111111111-2222222222222222-01";
pub const B3: &str = "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1";
pub const B3_TRACE: &str = "80f198ee56343ba864fe8b2a57d3eff7";
pub const B3_SPAN: &str = "e457b5a2e4d86bd1";
pub const UBER: &str = "3333333333333333:4444444444444444:0:1";

/// The formats the tests' servers accept: all of them, so that every extractor sees every
/// hostile header.
pub const ALL_FORMATS: &str = "tracecontext,baggage,b3,b3multi,jaeger";

/// What a server span must show of its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// No usable context came in: the span starts a new trace.
    New,
    /// The span continues this trace, as a child of this span.
    Continues(&'static str, &'static str),
}

/// A hostile combination of propagation headers, and what the span must show.
pub struct Case {
    pub name: &'static str,
    pub headers: Vec<(String, Vec<u8>)>,
    pub parent: Parent,
    /// The `tracestate` the span must carry on.
    pub trace_state: &'static str,
}

fn case(
    name: &'static str,
    headers: Vec<(String, Vec<u8>)>,
    parent: Parent,
    trace_state: &'static str,
) -> Case {
    Case {
        name,
        headers,
        parent,
        trace_state,
    }
}

/// A header, as the cases list them.
pub fn h(name: impl Into<String>, value: impl AsRef<[u8]>) -> (String, Vec<u8>) {
    (name.into(), value.as_ref().to_vec())
}

/// 64 KiB of `fill`.
fn long(fill: &str) -> String {
    fill.repeat((64 << 10) / fill.len())
}

/// The hostile propagation headers of the reliability tests: not UTF-8, over-long, a hundred
/// `tracestate` lines, a 1 MiB `baggage`, duplicated and conflicting formats.
pub fn hostile_cases() -> Vec<Case> {
    use Parent::{Continues, New};
    let parent = Continues(TP_TRACE, TP_SPAN);
    let b3_parent = Continues(B3_TRACE, B3_SPAN);
    let hundred_tracestates: Vec<_> = (0..100)
        .map(|i| h("tracestate", format!("v{i}=x")))
        .collect();
    let many_uberctx: Vec<_> = (0..300)
        .map(|i| h(format!("uberctx-k{i}"), format!("{i}")))
        .collect();
    vec![
        case(
            "a traceparent that is not UTF-8",
            vec![h(
                "traceparent",
                b"00-4bf92f3577b34da6a3ce929d0e0e47\xff6-00f067aa0ba902b7-01",
            )],
            New,
            "",
        ),
        case(
            "every other header not UTF-8",
            vec![
                h("traceparent", TP),
                h("tracestate", b"a=\xff"),
                h("baggage", b"k=\xe9t\xe9"),
                h("b3", b"\xff\xfe"),
                h("x-b3-traceid", b"\xff"),
                h("uber-trace-id", b"\xc3\x28"),
                h("uberctx-k", b"\xff"),
            ],
            parent,
            "",
        ),
        case(
            "a 64 KiB traceparent",
            vec![h("traceparent", format!("{TP}-{}", long("a")))],
            New,
            "",
        ),
        case(
            "64 KiB values in every other header",
            vec![
                h("traceparent", TP),
                h("tracestate", long("k=v,")),
                h("b3", long("a")),
                h("x-b3-traceid", long("a")),
                h("x-b3-spanid", long("b")),
                h("uber-trace-id", long("1")),
                h("uberctx-k", long("%41")),
            ],
            parent,
            "",
        ),
        case(
            "a hundred tracestate headers",
            [vec![h("traceparent", TP)], hundred_tracestates].concat(),
            parent,
            "",
        ),
        case(
            "a 1 MiB baggage",
            vec![
                h("traceparent", TP),
                h("tracestate", "a=1"),
                h("baggage", format!("k={}", "v".repeat(1 << 20))),
            ],
            parent,
            "a=1",
        ),
        case(
            "three hundred uberctx headers",
            [vec![h("traceparent", TP)], many_uberctx].concat(),
            parent,
            "",
        ),
        case(
            "two identical traceparents",
            vec![h("traceparent", TP), h("traceparent", TP)],
            New,
            "",
        ),
        case(
            "two different traceparents",
            vec![h("traceparent", TP), h("traceparent", OTHER_TP)],
            New,
            "",
        ),
        case(
            "a second traceparent that is not UTF-8",
            vec![h("traceparent", TP), h("traceparent", b"00-\xff")],
            New,
            "",
        ),
        case(
            "a traceparent, and another parent in each other format",
            vec![
                h("traceparent", TP),
                h("b3", B3),
                h("x-b3-traceid", B3_TRACE),
                h("x-b3-spanid", B3_SPAN),
                h("uber-trace-id", UBER),
            ],
            parent,
            "",
        ),
        case(
            "an invalid traceparent and a valid b3",
            vec![h("traceparent", "00-garbage"), h("b3", B3)],
            b3_parent,
            "",
        ),
        case(
            "two b3 headers",
            vec![
                h("b3", B3),
                h("b3", "22222222222222222222222222222222-3333333333333333-1"),
            ],
            b3_parent,
            "",
        ),
        case(
            "a tracestate with a duplicated key",
            vec![
                h("traceparent", TP),
                h("tracestate", "a=1,b=2"),
                h("tracestate", "a=3"),
            ],
            parent,
            "",
        ),
    ]
}
