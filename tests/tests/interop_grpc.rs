//! `greeter-server` and `greeter-client` against the gRPC instrumentation that Python services
//! use: OpenTelemetry's `opentelemetry-instrumentation-grpc` over `grpcio`, driven by
//! `tests/interop/grpc_peer.py`.
//!
//! For each of `tracecontext` and `b3` (single header), with `SayHello` and `SayHelloStream`:
//!
//! - an instrumented Python client calls `greeter-server`: the server span that reaches the
//!   OTLP receiver is the child of the client span the Python instrumentation recorded;
//! - `greeter-client` calls an instrumented Python server: the parent of the server span the
//!   Python instrumentation recorded is the CLIENT span of `greeter-client` that reaches the
//!   receiver.
//!
//! They need Python with the packages of `tests/interop/requirements.txt`, so `cargo test
//! --workspace` lists them as ignored; CI (`.ci/run`) runs them, as anyone can:
//!
//! ```text
//! export INTEROP_PYTHON="$(tests/interop/setup.sh)"   # a virtualenv in target/interop-venv
//! cargo test --workspace --test interop_grpc -- --ignored
//! ```
//!
//! `INTEROP_PYTHON` names the interpreter; without it, the virtualenv of `setup.sh` is used if
//! it is there. Without either, the tests fail and say how to set them up.

mod interop;

use std::collections::BTreeMap;

use interop::{ParentReport, Server, SpanIds, next_line, peer, programs, run, span_of, traced};
use serde::Deserialize;
use test_support::{OtlpReceiver, SpanKind};

/// What the Python client prints: its CLIENT span, and the replies.
#[derive(Debug, Deserialize)]
struct ClientReport {
    #[serde(flatten)]
    span: SpanIds,
    name: String,
    replies: Vec<String>,
}

/// What the Python server prints for each call: its SERVER span.
#[derive(Debug, Deserialize)]
struct ServerReport {
    name: String,
    metadata: BTreeMap<String, Vec<String>>,
    parent: Option<ParentReport>,
    #[serde(flatten)]
    span: SpanIds,
}

/// A method of `helloworld.Greeter`.
#[derive(Debug, Clone, Copy)]
enum Method {
    SayHello,
    SayHelloStream,
}

impl Method {
    const ALL: [Method; 2] = [Method::SayHello, Method::SayHelloStream];

    /// `/helloworld.Greeter/NAME`, the method's path: the name of the Python instrumentation's
    /// spans.
    fn path(self) -> &'static str {
        match self {
            Method::SayHello => "/helloworld.Greeter/SayHello",
            Method::SayHelloStream => "/helloworld.Greeter/SayHelloStream",
        }
    }

    /// `helloworld.Greeter/NAME`: the name of our layers' spans.
    fn span_name(self) -> &'static str {
        &self.path()[1..]
    }

    /// The replies of the greeters, Rust's and Python's, to `name`.
    fn replies(self, name: &str) -> Vec<String> {
        match self {
            Method::SayHello => vec![format!("Hello, {name}!")],
            Method::SayHelloStream => (1..=3).map(|i| format!("Hello, {name}! ({i}/3)")).collect(),
        }
    }
}

/// The metadata a format writes; every other propagation metadata must be absent.
fn metadata_of(format: &str) -> &'static [&'static str] {
    match format {
        "tracecontext" => &["traceparent"],
        "b3" => &["b3"],
        _ => unreachable!("unknown format {format}"),
    }
}

/// The propagation metadata of `metadata` that is not baggage, sorted.
fn context_metadata(metadata: &BTreeMap<String, Vec<String>>) -> Vec<&str> {
    metadata
        .keys()
        .map(String::as_str)
        .filter(|key| *key != "baggage")
        .collect()
}

/// An instrumented Python client calls `greeter-server`, which continues the Python client's
/// trace.
async fn python_client_calls_greeter_server(format: &str) {
    let programs = programs("greeter-server", "greeter-client").await;
    let receiver = OtlpReceiver::start().await.expect("the receiver starts");
    let mut server = traced(&programs.server, format, &receiver);
    server.args(["--listen", "127.0.0.1:0"]);
    let server = Server::start(server).await;

    for method in Method::ALL {
        let mut args = vec![
            "client",
            "--target",
            &server.addr,
            "--propagator",
            format,
            "--name",
            format,
        ];
        if let Method::SayHelloStream = method {
            args.push("--stream");
        }
        let output = run(peer("grpc_peer.py", &args)).await;
        let report: ClientReport = serde_json::from_str(output.trim())
            .unwrap_or_else(|e| panic!("the Python client's report {output:?}: {e}"));
        assert_eq!(report.name, method.path(), "{report:?}");
        assert_eq!(report.replies, method.replies(format), "{report:?}");

        let served = span_of(&receiver, &report.span.trace_id, SpanKind::Server).await;
        assert_eq!(
            served.parent_span_id.as_deref(),
            Some(report.span.span_id.as_str()),
            "the server span's parent is the Python client span: {served:#?}"
        );
        assert_eq!(served.parent_is_remote(), Some(true));
        assert_eq!(served.name, method.span_name());
        assert_eq!(served.service_name(), Some("greeter-server"));
    }
}

/// `greeter-client` calls an instrumented Python server, which continues `greeter-client`'s
/// trace.
async fn greeter_client_calls_python_server(format: &str) {
    let programs = programs("greeter-server", "greeter-client").await;
    let receiver = OtlpReceiver::start().await.expect("the receiver starts");
    let mut peer_server = Server::start(peer(
        "grpc_peer.py",
        &["server", "--listen", "127.0.0.1:0", "--propagator", format],
    ))
    .await;
    let target = format!("http://{}", peer_server.addr);

    for method in Method::ALL {
        let mut client = traced(&programs.client, format, &receiver);
        client.args(["--target", &target, "--count", "1"]);
        if let Method::SayHelloStream = method {
            client.arg("--stream");
        }
        let output = run(client).await;
        let trace_id = output
            .strip_prefix("call 1 trace_id=")
            .and_then(|rest| rest.split_once(' '))
            .map(|(trace_id, _)| trace_id.to_owned())
            .unwrap_or_else(|| panic!("unexpected output of greeter-client: {output:?}"));
        let replies = method.replies("client-1").join("|");
        assert!(
            output.ends_with(&format!(" status=OK reply={replies}\n")),
            "{output}"
        );

        let line = next_line(&mut peer_server.stdout).await;
        let report: ServerReport = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the Python server's report {line:?}: {e}"));
        assert_eq!(report.name, method.path(), "{report:?}");
        assert_eq!(context_metadata(&report.metadata), metadata_of(format));
        assert!(
            report.metadata.values().all(|values| values.len() == 1),
            "one value per propagation metadata key: {report:?}"
        );
        let parent = report.parent.as_ref().unwrap_or_else(|| {
            panic!("the Python instrumentation extracted no parent from the metadata: {report:?}")
        });
        assert!(parent.sampled && parent.remote, "{report:?}");
        assert_eq!(report.span.trace_id, trace_id, "{report:?}");

        let call = span_of(&receiver, &trace_id, SpanKind::Client).await;
        assert_eq!(
            (parent.span.trace_id.as_str(), parent.span.span_id.as_str()),
            (call.trace_id.as_str(), call.span_id.as_str()),
            "the parent the Python server extracted is greeter-client's CLIENT span: {call:#?}"
        );
        assert_eq!(call.name, method.span_name());
        assert_eq!(call.service_name(), Some("greeter-client"));
    }
}

/// The two tests of each format, in a module named after it.
macro_rules! interop_tests {
    ($($format:ident),* $(,)?) => {$(
        mod $format {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs OpenTelemetry's Python gRPC instrumentation: see the README"]
            async fn python_client_calls_greeter_server() {
                super::python_client_calls_greeter_server(stringify!($format)).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[ignore = "needs OpenTelemetry's Python gRPC instrumentation: see the README"]
            async fn greeter_client_calls_python_server() {
                super::greeter_client_calls_python_server(stringify!($format)).await;
            }
        }
    )*};
}

interop_tests!(tracecontext, b3);
