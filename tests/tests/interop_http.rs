//! `http-server` and `http-client` against an independent implementation of the propagation
//! formats: OpenTelemetry's Python SDK and its propagators, driven by
//! `tests/interop/http_peer.py`.
//!
//! For each of `tracecontext`, `b3` (single header), `b3multi` and `jaeger`:
//!
//! - a Python client calls `http-server`: the server span that reaches the OTLP receiver is
//!   the child of the Python client's span;
//! - `http-client` calls a Python server: the parent that the Python SDK extracts is the CLIENT
//!   span of `http-client` that reaches the receiver.
//!
//! They need Python with the packages of `tests/interop/requirements.txt`, so `cargo test
//! --workspace` lists them as ignored; CI (`.ci/run`) runs them, as anyone can:
//!
//! ```text
//! export INTEROP_PYTHON="$(tests/interop/setup.sh)"   # a virtualenv in target/interop-venv
//! cargo test --workspace --test interop_http -- --ignored
//! ```
//!
//! `INTEROP_PYTHON` names the interpreter; without it, the virtualenv of `setup.sh` is used if
//! it is there. Without either, the tests fail and say how to set them up.

mod interop;

use std::collections::BTreeMap;

use interop::{ParentReport, Server, SpanIds, next_line, peer, programs, run, span_of, traced};
use serde::Deserialize;
use test_support::{OtlpReceiver, SpanKind};

/// What the Python client prints.
#[derive(Debug, Deserialize)]
struct ClientReport {
    #[serde(flatten)]
    span: SpanIds,
    headers: BTreeMap<String, String>,
    status: u16,
    body: String,
}

/// What the Python server prints for each request.
#[derive(Debug, Deserialize)]
struct ServerReport {
    method: String,
    path: String,
    headers: BTreeMap<String, String>,
    parent: Option<ParentReport>,
    #[serde(flatten)]
    span: SpanIds,
}

/// The headers a format writes (without the optional ones); every other propagation header
/// must be absent.
fn headers_of(format: &str) -> &'static [&'static str] {
    match format {
        "tracecontext" => &["traceparent"],
        "b3" => &["b3"],
        "b3multi" => &["x-b3-sampled", "x-b3-spanid", "x-b3-traceid"],
        "jaeger" => &["uber-trace-id"],
        _ => unreachable!("unknown format {format}"),
    }
}

/// The propagation headers of `headers` that are not baggage, sorted.
fn context_headers(headers: &BTreeMap<String, String>) -> Vec<&str> {
    headers
        .keys()
        .map(String::as_str)
        .filter(|name| *name != "baggage" && !name.starts_with("uberctx-"))
        .collect()
}

/// A Python client calls `http-server`, which continues the Python client's trace.
async fn python_client_calls_http_server(format: &str) {
    let programs = programs("http-server", "http-client").await;
    let receiver = OtlpReceiver::start().await.expect("the receiver starts");
    let mut server = traced(&programs.server, format, &receiver);
    server.args(["--listen", "127.0.0.1:0"]);
    let server = Server::start(server).await;

    let url = format!("http://{}", server.addr);
    let output = run(peer(
        "http_peer.py",
        &[
            "client",
            "--url",
            &url,
            "--propagator",
            format,
            "--name",
            format,
        ],
    ))
    .await;
    let report: ClientReport = serde_json::from_str(output.trim())
        .unwrap_or_else(|e| panic!("the Python client's report {output:?}: {e}"));
    assert_eq!(report.status, 200, "{report:?}");
    assert_eq!(
        report.body,
        format!(r#"{{"message":"Hello, {format}!"}}"#),
        "{report:?}"
    );
    assert_eq!(context_headers(&report.headers), headers_of(format));

    let served = span_of(&receiver, &report.span.trace_id, SpanKind::Server).await;
    assert_eq!(
        served.parent_span_id.as_deref(),
        Some(report.span.span_id.as_str()),
        "the server span's parent is the Python client span: {served:#?}"
    );
    assert_eq!(served.parent_is_remote(), Some(true));
    assert_eq!(served.name, "GET /hello");
    assert_eq!(served.service_name(), Some("http-server"));
}

/// `http-client` calls a Python server, which continues `http-client`'s trace.
async fn http_client_calls_python_server(format: &str) {
    let programs = programs("http-server", "http-client").await;
    let receiver = OtlpReceiver::start().await.expect("the receiver starts");
    let mut peer_server =
        Server::start(peer("http_peer.py", &["server", "--propagator", format])).await;

    let mut client = traced(&programs.client, format, &receiver);
    let url = format!("http://{}", peer_server.addr);
    client.args(["--url", &url, "--count", "1"]);
    let output = run(client).await;
    let trace_id = output
        .strip_prefix("call 1 trace_id=")
        .and_then(|rest| rest.split_once(' '))
        .map(|(trace_id, _)| trace_id.to_owned())
        .unwrap_or_else(|| panic!("unexpected output of http-client: {output:?}"));
    assert!(
        output.ends_with(" status=200 body={\"message\": \"Hello, client-1!\"}\n"),
        "{output}"
    );

    let line = next_line(&mut peer_server.stdout).await;
    let report: ServerReport = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the Python server's report {line:?}: {e}"));
    assert_eq!(
        (report.method.as_str(), report.path.as_str()),
        ("GET", "/hello")
    );
    assert_eq!(context_headers(&report.headers), headers_of(format));
    let parent = report.parent.as_ref().unwrap_or_else(|| {
        panic!("the Python SDK extracted no parent from {format} headers: {report:?}")
    });
    assert!(parent.sampled && parent.remote, "{report:?}");
    assert_eq!(report.span.trace_id, trace_id, "{report:?}");

    let call = span_of(&receiver, &trace_id, SpanKind::Client).await;
    assert_eq!(
        (parent.span.trace_id.as_str(), parent.span.span_id.as_str()),
        (call.trace_id.as_str(), call.span_id.as_str()),
        "the parent the Python server extracted is http-client's CLIENT span: {call:#?}"
    );
    assert_eq!(call.service_name(), Some("http-client"));
}

/// The two tests of each format, in a module named after it.
macro_rules! interop_tests {
    ($($format:ident),* $(,)?) => {$(
        mod $format {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs Python's OpenTelemetry SDK: see the README's Interoperability tests"]
            async fn python_client_calls_http_server() {
                super::python_client_calls_http_server(stringify!($format)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs Python's OpenTelemetry SDK: see the README's Interoperability tests"]
            async fn http_client_calls_python_server() {
                super::http_client_calls_python_server(stringify!($format)).await;
            }
        }
    )*};
}

interop_tests!(tracecontext, b3, b3multi, jaeger);
