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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use test_support::{OtlpReceiver, ReceivedSpan, SpanKind};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

/// The bound on every wait: generous for a loaded machine, finite for a broken program.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root.
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is in the workspace")
}

/// The Python interpreter that has the peer's packages.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("INTEROP_PYTHON").filter(|p| !p.is_empty()) {
        return python.into();
    }
    let venv = workspace().join("target").join("interop-venv");
    let python = if cfg!(windows) {
        venv.join("Scripts").join("python.exe")
    } else {
        venv.join("bin").join("python")
    };
    assert!(
        python.is_file(),
        "the interop tests need Python with grpcio and OpenTelemetry's SDK and gRPC \
         instrumentation: run `tests/interop/setup.sh`, which installs them in a virtualenv in \
         {}, or set INTEROP_PYTHON to an interpreter that has the packages of \
         tests/interop/requirements.txt",
        venv.display()
    );
    python
}

/// The programs under test.
struct Programs {
    server: PathBuf,
    client: PathBuf,
}

/// Builds the programs of the `examples` package (or finds them up to date), once per test
/// run: the binaries of another package are not built for this one's tests.
async fn programs() -> &'static Programs {
    fn build(name: &str) -> PathBuf {
        escargot::CargoBuild::new()
            .manifest_path(workspace().join("Cargo.toml"))
            .package("examples")
            .bin(name)
            .current_release()
            .run()
            .unwrap_or_else(|e| panic!("cannot build {name}: {e}"))
            .path()
            .to_owned()
    }
    static PROGRAMS: OnceLock<Programs> = OnceLock::new();
    tokio::task::spawn_blocking(|| {
        PROGRAMS.get_or_init(|| Programs {
            server: build("greeter-server"),
            client: build("greeter-client"),
        })
    })
    .await
    .expect("the build does not panic")
}

/// A command with a clean environment for tracing: no `OTEL_*` variable of the caller's
/// (both SDKs read them).
fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// The Python peer, running `args`.
fn peer(args: &[&str]) -> Command {
    let mut command = command(&python());
    command
        .arg(workspace().join("tests/interop/grpc_peer.py"))
        .args(args);
    command
}

/// An example program that propagates in `format` and exports to `receiver`, promptly.
fn traced(program: &Path, format: &str, receiver: &OtlpReceiver) -> Command {
    let mut command = command(program);
    command
        .env("OTEL_PROPAGATORS", format)
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    command
}

/// A running server, killed when dropped.
struct Server {
    /// Kept, so that dropping the server kills it.
    _child: Child,
    /// Kept open: the Python server stops when its input ends.
    _stdin: ChildStdin,
    /// `127.0.0.1:PORT`.
    addr: String,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Starts `command`, which announces `listening on 127.0.0.1:PORT` on its first line.
    async fn start(mut command: Command) -> Server {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{command:?} starts: {e}"));
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout).lines();
        let line = next_line(&mut stdout).await;
        let port = line
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|port| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Server {
            _child: child,
            _stdin: stdin,
            addr: format!("127.0.0.1:{port}"),
            stdout,
        }
    }
}

/// The next line of a server's output; the server has written its errors to stderr (not
/// captured) if it exited instead.
async fn next_line(stdout: &mut Lines<BufReader<ChildStdout>>) -> String {
    timeout(TIMEOUT, stdout.next_line())
        .await
        .expect("the server writes a line in time")
        .expect("stdout is readable")
        .expect("the server is running")
}

/// Runs `command` to completion, which must succeed.
async fn run(mut command: Command) -> String {
    let output: Output = timeout(TIMEOUT, command.output())
        .await
        .expect("the program finishes in time")
        .expect("the program runs");
    assert!(
        output.status.success(),
        "{command:?}: {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    String::from_utf8(output.stdout).expect("UTF-8 output")
}

/// A span as the Python peer reports it.
#[derive(Debug, Deserialize)]
struct SpanIds {
    trace_id: String,
    span_id: String,
}

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

/// The parent of the Python server's span: what its instrumentation extracted.
#[derive(Debug, Deserialize)]
struct ParentReport {
    #[serde(flatten)]
    span: SpanIds,
    sampled: bool,
    remote: bool,
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

/// Waits until `receiver` has a span of `kind` in `trace_id`, and returns it.
async fn span_of(receiver: &OtlpReceiver, trace_id: &str, kind: SpanKind) -> ReceivedSpan {
    let is_it = |s: &ReceivedSpan| s.trace_id == trace_id && s.kind == kind;
    let spans = receiver
        .wait_for(|spans| spans.iter().any(is_it), TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("no {kind:?} span in trace {trace_id}: {e}"));
    let mut found = spans.into_iter().filter(is_it);
    let span = found.next().expect("waited for");
    assert_eq!(found.next(), None, "one {kind:?} span in trace {trace_id}");
    span
}

/// An instrumented Python client calls `greeter-server`, which continues the Python client's
/// trace.
async fn python_client_calls_greeter_server(format: &str) {
    let programs = programs().await;
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
        let output = run(peer(&args)).await;
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
    let programs = programs().await;
    let receiver = OtlpReceiver::start().await.expect("the receiver starts");
    let mut peer_server = Server::start(peer(&[
        "server",
        "--listen",
        "127.0.0.1:0",
        "--propagator",
        format,
    ]))
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
