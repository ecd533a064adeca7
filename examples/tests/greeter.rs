//! `greeter-server` and `greeter-client`, run as the programs they are, on 127.0.0.1.

use std::collections::HashSet;
use std::process::Output;

mod common;

use common::*;
use tokio::time::timeout;

const SERVER: &str = env!("CARGO_BIN_EXE_greeter-server");

/// Runs `greeter-client` with `args` to completion.
async fn client(args: &[&str]) -> Output {
    run(env!("CARGO_BIN_EXE_greeter-client"), args, &[]).await
}

#[tokio::test]
async fn unary_calls_each_start_a_trace() {
    let server = Server::start(SERVER, &[]).await;
    let output = client(&["--target", &server.url, "--count", "2"]).await;
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
    let server = Server::start(SERVER, &[]).await;
    let output = client(&["--target", &server.url, "--stream", "--name", "stream"]).await;
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
    let server = Server::start(SERVER, &[]).await;
    for (name, stream, code) in [
        ("error", false, "INTERNAL"),
        ("invalid", false, "INVALID_ARGUMENT"),
        ("error", true, "INTERNAL"),
    ] {
        let mut args = vec!["--target", &server.url, "--name", name, "--count", "2"];
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
        let output = run(program, args, &[]).await;
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
        let output = run(program, &["--help"], &[]).await;
        assert!(output.status.success(), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("Usage: "));
    }
}

/// Health is served, and SIGTERM drains the server (even with a client connection open)
/// and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn health_then_sigterm_exits_0() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let server = Server::start(SERVER, &[]).await;
    let endpoint = tonic::transport::Endpoint::from_shared(server.url.clone())
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
    let server = Server::start(SERVER, &[]).await;
    let (status, stderr) = server.stop(libc::SIGINT).await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "SIGINT received: shutting down\n");
}
