//! What the interop tests share: the Python interpreter and peers, the example programs under
//! test, servers that announce their address, and the reports the Python peers print.

#![allow(dead_code)] // each interop test uses a part

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use test_support::{OtlpReceiver, ReceivedSpan, SpanKind};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::timeout;

/// How long any wait of the interop tests may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is in the workspace")
}

/// The Python interpreter that has the peer's packages.
pub fn python() -> PathBuf {
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
        "the interop tests need Python with the packages of tests/interop/requirements.txt \
         (OpenTelemetry's SDK, propagators, grpcio and its instrumentation): run \
         `tests/interop/setup.sh`, which installs them in a virtualenv in {}, or set \
         INTEROP_PYTHON to an interpreter that has them",
        venv.display()
    );
    python
}

/// The programs under test.
pub struct Programs {
    pub server: PathBuf,
    pub client: PathBuf,
}

/// Builds the programs of the `examples` package (or finds them up to date), once per test
/// run: the binaries of another package are not built for this one's tests.
pub async fn programs(server: &'static str, client: &'static str) -> &'static Programs {
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
    tokio::task::spawn_blocking(move || {
        PROGRAMS.get_or_init(|| Programs {
            server: build(server),
            client: build(client),
        })
    })
    .await
    .expect("the build does not panic")
}

/// A command with a clean environment for tracing: no `OTEL_*` variable of the caller's
/// (both SDKs read them).
pub fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command.stdin(Stdio::null()).kill_on_drop(true);
    command
}

/// The Python peer `script` (in `tests/interop/`), running `args`.
pub fn peer(script: &str, args: &[&str]) -> Command {
    let mut command = command(&python());
    command
        .arg(workspace().join("tests/interop").join(script))
        .args(args);
    command
}

/// An example program that propagates in `format` and exports to `receiver`, promptly.
pub fn traced(program: &Path, format: &str, receiver: &OtlpReceiver) -> Command {
    let mut command = command(program);
    command
        .env("OTEL_PROPAGATORS", format)
        .env("OTEL_TRACES_EXPORTER", "otlp")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    command
}

/// A running server, killed when dropped.
pub struct Server {
    /// Kept, so that dropping the server kills it.
    _child: Child,
    /// Kept open: the Python server stops when its input ends.
    _stdin: ChildStdin,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    pub stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    /// Starts `command`, which announces `listening on 127.0.0.1:PORT` on its first line.
    pub async fn start(mut command: Command) -> Server {
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
pub async fn next_line(stdout: &mut Lines<BufReader<ChildStdout>>) -> String {
    timeout(TIMEOUT, stdout.next_line())
        .await
        .expect("the server writes a line in time")
        .expect("stdout is readable")
        .expect("the server is running")
}

/// Runs `command` to completion, which must succeed.
pub async fn run(mut command: Command) -> String {
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
pub struct SpanIds {
    pub trace_id: String,
    pub span_id: String,
}

/// The parent the Python server extracted.
#[derive(Debug, Deserialize)]
pub struct ParentReport {
    #[serde(flatten)]
    pub span: SpanIds,
    pub sampled: bool,
    pub remote: bool,
}

/// Waits until `receiver` has a span of `kind` in `trace_id`, and returns it.
pub async fn span_of(receiver: &OtlpReceiver, trace_id: &str, kind: SpanKind) -> ReceivedSpan {
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
