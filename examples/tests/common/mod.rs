//! What the tests of the example programs share: a program with a clean tracing environment,
//! a server that announces its address and stops on a signal, and the clients' call lines.

#![allow(dead_code)] // each test file uses a part

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};
use tokio::time::timeout;

/// The bound on every wait: generous for a loaded machine, finite for a broken program.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A program of this package, with a clean tracing environment: no `OTEL_*` variable from the
/// caller's environment, and no exporter, so that stdout holds only what the program prints.
pub fn program(path: &str) -> Command {
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

/// A running server program, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Kept open, so that the server never writes to a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
    /// Read when the server is stopped.
    #[cfg_attr(not(unix), allow(dead_code))]
    stderr: ChildStderr,
}

impl Server {
    /// Starts the server program at `path` on a free port, with `env`, and reads the address
    /// it announces on its first line (`listening on 127.0.0.1:PORT`).
    pub async fn start(path: &str, env: &[(&str, String)]) -> Server {
        let mut child = program(path)
            .args(["--listen", "127.0.0.1:0"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{path} starts: {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let mut stdout = BufReader::new(stdout).lines();
        let line = timeout(TIMEOUT, stdout.next_line())
            .await
            .expect("the server announces its address in time")
            .expect("stdout is readable");
        let Some(line) = line else {
            panic!("{path} exited: {}", read_to_end(&mut stderr).await);
        };
        let port = line
            .strip_prefix("listening on 127.0.0.1:")
            .and_then(|port| port.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _stdout: stdout,
            stderr,
        }
    }

    /// Sends `signal` to the server, waits for it to exit, and returns its exit status and
    /// what it wrote to stderr.
    #[cfg(unix)]
    pub async fn stop(mut self, signal: libc::c_int) -> (std::process::ExitStatus, String) {
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
pub async fn read_to_end(pipe: &mut ChildStderr) -> String {
    let mut text = String::new();
    timeout(TIMEOUT, pipe.read_to_string(&mut text))
        .await
        .expect("the pipe closes in time")
        .expect("the pipe is readable");
    text
}

/// Runs the program at `path` with `args` and `env` to completion.
pub async fn run(path: &str, args: &[&str], env: &[(&str, String)]) -> Output {
    let output = program(path)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output();
    timeout(TIMEOUT, output)
        .await
        .unwrap_or_else(|_| panic!("{path} finishes in time"))
        .unwrap_or_else(|e| panic!("{path} runs: {e}"))
}

/// The lines a program printed.
pub fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Splits `call I trace_id=ID REST` into `(I, ID, REST)`, checking the trace id's shape.
pub fn parse_call(line: &str) -> (u32, String, String) {
    try_parse_call(line).unwrap_or_else(|| panic!("not a call line: {line:?}"))
}

/// [`parse_call`], or `None` for another line.
pub fn try_parse_call(line: &str) -> Option<(u32, String, String)> {
    let (i, rest) = line.strip_prefix("call ")?.split_once(" trace_id=")?;
    let (trace_id, rest) = rest.split_once(' ')?;
    let is_trace_id = trace_id.len() == 32
        && trace_id
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && trace_id.bytes().any(|b| b != b'0');
    is_trace_id.then_some((i.parse().ok()?, trace_id.to_owned(), rest.to_owned()))
}

/// Asserts that a program exited 0, showing its output otherwise.
pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
