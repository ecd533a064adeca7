//! `greeter-server` and `greeter-client`, run as the programs they are, on 127.0.0.1.

use std::collections::HashSet;
use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::timeout;

/// The bound on every wait: generous for a loaded machine, finite for a broken program.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A program of this package, with a clean tracing environment: no `OTEL_*` variable from the
/// caller's environment, and no exporter, so that stdout holds only what the program prints.
fn program(path: &str) -> Command {
    let mut command = Command::new(path);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
        .env("OTEL_TRACES_EXPORTER", "none")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

/// A running `greeter-server`, killed when dropped.
struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    target: String,
    /// Kept open, so that the server never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
    /// Read when the server is stopped.
    #[cfg_attr(not(unix), allow(dead_code))]
    stderr: ChildStderr,
}

impl Server {
    /// Starts a server on a free port and reads the address it announces.
    async fn start() -> Server {
        let mut child = program(env!("CARGO_BIN_EXE_greeter-server"))
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("greeter-server starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let mut stdout = BufReader::new(stdout).lines();
        let line = timeout(TIMEOUT, stdout.next_line())
            .await
            .expect("greeter-server announces its address in time")
            .expect("stdout is readable");
        let Some(line) = line else {
            panic!("greeter-server exited: {}", read_to_end(&mut stderr).await);
        };
        let addr = line
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|port| port.parse::<u16>().ok())
            .map(|port| format!("127.0.0.1:{port}"))
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Server {
            child,
            target: format!("http://{addr}"),
            _stdout: stdout,
            stderr,
        }
    }

    /// Sends `signal` to the server, waits for it to exit, and returns its exit status and
    /// what it wrote to stderr.
    #[cfg(unix)]
    async fn stop(mut self, signal: libc::c_int) -> (std::process::ExitStatus, String) {
        let pid = self.child.id().expect("the server is still running");
        let pid = libc::pid_t::try_from(pid).expect("a pid fits in pid_t");
        // SAFETY: kill(2) only sends a signal; `pid` is our child, which has not been reaped
        // (the `Child` is still here), so the pid cannot have been reused.
        let sent = unsafe { libc::kill(pid, signal) };
        assert_eq!(sent, 0, "kill({pid}, {signal})");
        let status = timeout(TIMEOUT, self.child.wait())
            .await
            .expect("the server exits in time")
            .expect("the server's exit status");
        (status, read_to_end(&mut self.stderr).await)
    }
}

/// What is left to read from a pipe, as text.
async fn read_to_end(pipe: &mut ChildStderr) -> String {
    let mut text = String::new();
    timeout(TIMEOUT, pipe.read_to_string(&mut text))
        .await
        .expect("the pipe closes in time")
        .expect("the pipe is readable");
    text
}

/// Runs `greeter-client` with `args` to completion.
async fn client(args: &[&str]) -> Output {
    let output = program(env!("CARGO_BIN_EXE_greeter-client"))
        .args(args)
        .output();
    timeout(TIMEOUT, output)
        .await
        .expect("greeter-client finishes in time")
        .expect("greeter-client runs")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Splits `call I trace_id=ID REST` into `(I, ID, REST)`, checking the trace id's shape.
fn parse_call(line: &str) -> (u32, String, String) {
    try_parse_call(line).unwrap_or_else(|| panic!("not a call line: {line:?}"))
}

fn try_parse_call(line: &str) -> Option<(u32, String, String)> {
    let (i, rest) = line.strip_prefix("call ")?.split_once(" trace_id=")?;
    let (trace_id, rest) = rest.split_once(' ')?;
    let is_trace_id = trace_id.len() == 32
        && trace_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && trace_id.bytes().any(|b| b != b'0');
    is_trace_id.then_some((i.parse().ok()?, trace_id.to_owned(), rest.to_owned()))
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[tokio::test]
async fn unary_calls_each_start_a_trace() {
    let server = Server::start().await;
    let output = client(&["--target", &server.target, "--count", "2"]).await;
    assert_success(&output);
    let calls: Vec<_> = stdout_lines(&output)
        .iter()
        .map(|l| parse_call(l))
        .collect();
    assert_eq!(calls.len(), 2, "{calls:?}");
    for (n, (i, _, rest)) in (1..).zip(&calls) {
        assert_eq!(*i, n);
        assert_eq!(*rest, format!("status=OK reply=Hello, client-{n}!"));
    }
    let trace_ids: HashSet<_> = calls.iter().map(|(_, id, _)| id).collect();
    assert_eq!(trace_ids.len(), 2, "two calls, two traces: {calls:?}");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_stream_is_three_replies() {
    let server = Server::start().await;
    let output = client(&["--target", &server.target, "--stream", "--name", "stream"]).await;
    assert_success(&output);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (i, _, rest) = parse_call(&lines[0]);
    assert_eq!(i, 1);
    assert_eq!(
        rest,
        "status=OK reply=Hello, stream! (1/3)|Hello, stream! (2/3)|Hello, stream! (3/3)"
    );
}

#[tokio::test]
async fn error_statuses_are_printed_and_not_fatal() {
    let server = Server::start().await;
    for (name, stream, code) in [
        ("error", false, "INTERNAL"),
        ("invalid", false, "INVALID_ARGUMENT"),
        ("error", true, "INTERNAL"),
    ] {
        let mut args = vec!["--target", &server.target, "--name", name, "--count", "2"];
        if stream {
            args.push("--stream");
        }
        let output = client(&args).await;
        assert_success(&output);
        let lines = stdout_lines(&output);
        assert_eq!(
            lines.len(),
            2,
            "the client goes on after an error: {lines:?}"
        );
        for line in &lines {
            let (_, _, rest) = parse_call(line);
            assert!(
                rest.starts_with(&format!("status={code} message=")),
                "{name} (stream: {stream}): {line}"
            );
        }
    }
}

#[tokio::test]
async fn an_unreachable_target_exits_1() {
    // A port on which nothing listens (any more).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let target = format!("http://127.0.0.1:{port}");
    let output = client(&["--target", &target]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot reach {target}: ")),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_arguments_exit_2_and_help_exits_0() {
    for (program, args) in [
        (
            env!("CARGO_BIN_EXE_greeter-server"),
            &["--listen", "nowhere"][..],
        ),
        (env!("CARGO_BIN_EXE_greeter-server"), &["--port", "1"]),
        (env!("CARGO_BIN_EXE_greeter-client"), &["--count", "many"]),
        (env!("CARGO_BIN_EXE_greeter-client"), &["--count", "0"]),
        (
            env!("CARGO_BIN_EXE_greeter-client"),
            &["--target", "127.0.0.1:50051"],
        ),
        (env!("CARGO_BIN_EXE_greeter-client"), &["--stream=yes"]),
        (env!("CARGO_BIN_EXE_greeter-client"), &["extra"]),
    ] {
        let output = timeout(TIMEOUT, program_output(program, args))
            .await
            .expect("the program finishes in time");
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    }
    for program in [
        env!("CARGO_BIN_EXE_greeter-server"),
        env!("CARGO_BIN_EXE_greeter-client"),
    ] {
        let output = timeout(TIMEOUT, program_output(program, &["--help"]))
            .await
            .expect("the program finishes in time");
        assert!(output.status.success(), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("Usage: "));
    }
}

async fn program_output(path: &str, args: &[&str]) -> Output {
    program(path)
        .args(args)
        .output()
        .await
        .expect("the program runs")
}

/// Health is served, and SIGTERM drains the server (even with a client connection open)
/// and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn health_then_sigterm_exits_0() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let server = Server::start().await;
    let endpoint = tonic::transport::Endpoint::from_shared(server.target.clone())
        .expect("a valid URI")
        .connect_timeout(TIMEOUT);
    let channel = timeout(TIMEOUT, endpoint.connect())
        .await
        .expect("connects in time")
        .expect("connects");
    let mut health = HealthClient::new(channel);
    let check = health.check(HealthCheckRequest {
        service: "helloworld.Greeter".to_owned(),
    });
    let status = timeout(TIMEOUT, check)
        .await
        .expect("answers in time")
        .expect("answers")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);

    // `health` keeps its connection open across the shutdown.
    let (status, stderr) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "SIGTERM received: shutting down\n");
    drop(health);
}

#[cfg(unix)]
#[tokio::test]
async fn sigint_exits_0() {
    let server = Server::start().await;
    let (status, stderr) = server.stop(libc::SIGINT).await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "SIGINT received: shutting down\n");
}
