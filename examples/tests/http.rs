//! `http-server` and `http-client`, run as the programs they are, on 127.0.0.1.

use std::collections::HashSet;
use std::process::Output;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use test_support::{OtlpReceiver, ReceivedSpan, SpanKind};
mod common;

use common::*;

/// The variables that send a program's spans to `receiver` over OTLP/HTTP.
fn otlp_env(receiver: &OtlpReceiver) -> [(&'static str, String); 2] {
    [
        ("OTEL_TRACES_EXPORTER", "otlp".to_owned()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.http_endpoint()),
    ]
}

const SERVER: &str = env!("CARGO_BIN_EXE_http-server");

/// Runs `http-client` with `args` and `env` to completion.
async fn client(args: &[&str], env: &[(&str, String)]) -> Output {
    run(env!("CARGO_BIN_EXE_http-client"), args, env).await
}

/// A plain (untraced) HTTP client for the tests, bounded by [`TIMEOUT`].
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .build()
        .expect("a reqwest client")
}

/// Sends `request` and returns the status, the content type and the body.
async fn fetch(request: reqwest::RequestBuilder) -> (u16, Option<HeaderValue>, Vec<u8>) {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let content_type = response.headers().get(CONTENT_TYPE).cloned();
    let body = response.bytes().await.expect("the body is readable");
    (status, content_type, body.to_vec())
}

#[tokio::test]
async fn hello_answers_json_with_the_name() {
    let server = Server::start(SERVER, &[]).await;
    let http = http();
    for (query, message) in [
        ("", "Hello, world!"),
        ("?name=Ada", "Hello, Ada!"),
        ("?name=Ada%20Lovelace", "Hello, Ada Lovelace!"),
        ("?other=1", "Hello, world!"),
    ] {
        let (status, content_type, body) =
            fetch(http.get(format!("{}/hello{query}", server.url))).await;
        assert_eq!(status, 200, "{query}");
        assert_eq!(
            content_type.as_ref().and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{query}"
        );
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body, serde_json::json!({ "message": message }), "{query}");
    }
}

#[tokio::test]
async fn echo_returns_the_body_with_its_content_type() {
    let server = Server::start(SERVER, &[]).await;
    let http = http();
    let url = format!("{}/echo", server.url);
    for (content_type, body) in [
        (Some("application/octet-stream"), vec![0_u8, 1, 2, 0xff]),
        (Some("text/plain; charset=utf-8"), b"hello\nworld".to_vec()),
        (Some("application/json"), br#"{"a":[1,2]}"#.to_vec()),
        (None, b"untyped".to_vec()),
        (Some("text/plain"), Vec::new()),
    ] {
        let mut request = http.post(&url).body(body.clone());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let (status, echoed_type, echoed) = fetch(request).await;
        assert_eq!(status, 200, "{content_type:?}");
        assert_eq!(
            echoed_type.as_ref().and_then(|v| v.to_str().ok()),
            content_type
        );
        assert_eq!(echoed, body, "{content_type:?}");
    }
}

#[tokio::test]
async fn status_answers_the_code_asked_for() {
    let server = Server::start(SERVER, &[]).await;
    let http = http();
    for code in [200, 201, 204, 302, 404, 418, 500, 503, 599] {
        let (status, _, _) = fetch(http.get(format!("{}/status/{code}", server.url))).await;
        assert_eq!(status, code);
    }
    for code in [
        "abc", "99", "100", "199", "600", "1000", "70000", "-1", "2OO",
    ] {
        let (status, _, body) = fetch(http.get(format!("{}/status/{code}", server.url))).await;
        assert_eq!(status, 400, "{code}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains(&format!("`{code}`")), "{code}: {body}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_refused() {
    let server = Server::start(SERVER, &[]).await;
    let http = http();
    let (status, _, _) = fetch(http.get(format!("{}/nowhere", server.url))).await;
    assert_eq!(status, 404);
    let (status, _, _) = fetch(http.get(format!("{}/echo", server.url))).await;
    assert_eq!(status, 405);
}

/// The W3C test-service contract: each `arguments` is POSTed as JSON to its `url`.
#[tokio::test]
async fn test_route_posts_each_entry() {
    let server = Server::start(SERVER, &[]).await;
    let http = http();
    let url = format!("{}/test", server.url);
    let echo = format!("{}/echo", server.url);

    let actions = serde_json::json!([
        { "url": echo, "arguments": [{ "name": "a" }] },
        { "url": echo, "arguments": [] },
    ]);
    let (status, _, _) = fetch(http.post(&url).json(&actions)).await;
    assert_eq!(status, 200);
    let (status, _, _) = fetch(http.post(&url).json(&serde_json::json!([]))).await;
    assert_eq!(status, 200, "nothing to do is fine");

    for bad in [&b"not json"[..], br#"{"url": "x"}"#, br#"[{"url": 1}]"#] {
        let (status, _, _) = fetch(http.post(&url).body(bad)).await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(bad));
    }

    // A port on which nothing listens (any more).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let unreachable = format!("http://127.0.0.1:{port}/callback");
    let actions = serde_json::json!([{ "url": unreachable, "arguments": [] }]);
    let (status, _, body) = fetch(http.post(&url).json(&actions)).await;
    assert_eq!(status, 502);
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with(&format!("cannot call {unreachable}: ")),
        "{body}"
    );
}

#[tokio::test]
async fn client_calls_each_start_a_trace() {
    let server = Server::start(SERVER, &[]).await;
    let output = client(&["--url", &server.url, "--count", "3"], &[]).await;
    assert_success(&output);
    let calls: Vec<_> = stdout_lines(&output)
        .iter()
        .map(|l| parse_call(l))
        .collect();
    assert_eq!(calls.len(), 3, "{calls:?}");
    for (n, (i, _, rest)) in (1..).zip(&calls) {
        assert_eq!(*i, n);
        assert_eq!(
            *rest,
            format!(r#"status=200 body={{"message":"Hello, client-{n}!"}}"#)
        );
    }
    let trace_ids: HashSet<_> = calls.iter().map(|(_, id, _)| id).collect();
    assert_eq!(trace_ids.len(), 3, "three calls, three traces: {calls:?}");
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A trailing slash is not doubled.
    let url = format!("{}/", server.url);
    let output = client(&["--url", &url], &[]).await;
    assert_success(&output);
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let (_, _, rest) = parse_call(&lines[0]);
    assert_eq!(rest, r#"status=200 body={"message":"Hello, client-1!"}"#);
}

#[tokio::test]
async fn an_unreachable_server_exits_1() {
    // A port on which nothing listens (any more).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let output = client(&["--url", &url, "--count", "2"], &[]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(output.stdout.is_empty(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!("error: cannot reach {url}: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one error, then exit: {stderr}");
}

#[tokio::test]
async fn bad_arguments_exit_2_and_help_exits_0() {
    for (program, args) in [
        (
            env!("CARGO_BIN_EXE_http-server"),
            &["--listen", "nowhere"][..],
        ),
        (env!("CARGO_BIN_EXE_http-server"), &["--port", "1"]),
        (env!("CARGO_BIN_EXE_http-client"), &["--count", "many"]),
        (env!("CARGO_BIN_EXE_http-client"), &["--count", "0"]),
        (
            env!("CARGO_BIN_EXE_http-client"),
            &["--url", "127.0.0.1:8080"],
        ),
        (
            env!("CARGO_BIN_EXE_http-client"),
            &["--url", "https://127.0.0.1:8080"],
        ),
        (env!("CARGO_BIN_EXE_http-client"), &["--url", "http://"]),
        (env!("CARGO_BIN_EXE_http-client"), &["extra"]),
    ] {
        let output = run(program, args, &[]).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains("Usage: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
    }
    for program in [
        env!("CARGO_BIN_EXE_http-server"),
        env!("CARGO_BIN_EXE_http-client"),
    ] {
        let output = run(program, &["--help"], &[]).await;
        assert!(output.status.success(), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("Usage: "));
    }
}

/// SIGTERM drains the server, even with an idle keep-alive connection open, and exits 0.
#[cfg(unix)]
#[tokio::test]
async fn sigterm_exits_0() {
    let server = Server::start(SERVER, &[]).await;
    // `http` keeps its connection open across the shutdown.
    let http = http();
    let (status, _, _) = fetch(http.get(format!("{}/hello", server.url))).await;
    assert_eq!(status, 200);

    let (status, stderr) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "SIGTERM received: shutting down\n");
    drop(http);
}

#[cfg(unix)]
#[tokio::test]
async fn sigint_exits_0() {
    let server = Server::start(SERVER, &[]).await;
    let (status, stderr) = server.stop(libc::SIGINT).await;
    assert!(status.success(), "{status:?}: {stderr}");
    assert_eq!(stderr, "SIGINT received: shutting down\n");
}

/// The one span of `spans` of `kind` in `trace_id` named `name`.
fn find<'a>(
    spans: &'a [ReceivedSpan],
    trace_id: &str,
    kind: SpanKind,
    name: &str,
) -> &'a ReceivedSpan {
    let mut found = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.kind == kind && s.name == name);
    let span = found
        .next()
        .unwrap_or_else(|| panic!("no {kind:?} span {name:?} in trace {trace_id}: {spans:#?}"));
    assert!(
        found.next().is_none(),
        "two {kind:?} spans {name:?} in {trace_id}"
    );
    span
}

/// The client's and the server's spans reach a real OTLP receiver as one trace per call:
/// `http-client call` (INTERNAL, root) > `GET` (CLIENT) > `GET /hello` (SERVER); and `/test`
/// carries the caller's trace on to the URLs it calls.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_arrive_as_one_trace_across_client_and_server() {
    let receiver = OtlpReceiver::start().await.expect("the receiver starts");
    let env = otlp_env(&receiver);
    let server = Server::start(SERVER, &env).await;

    let output = client(&["--url", &server.url, "--count", "2"], &env).await;
    assert_success(&output);
    let trace_ids: Vec<String> = stdout_lines(&output)
        .iter()
        .map(|line| parse_call(line).1)
        .collect();
    assert_eq!(trace_ids.len(), 2, "{output:?}");

    // A caller of /test, as the W3C test harness is: its context in `traceparent`.
    let caller_trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span_id = "00f067aa0ba902b7";
    // Two calls: the second is made after the handler has awaited the first.
    let echo = format!("{}/echo", server.url);
    let actions = serde_json::json!([
        { "url": echo, "arguments": [1] },
        { "url": echo, "arguments": [2] },
    ]);
    let (status, _, _) = fetch(
        http()
            .post(format!("{}/test", server.url))
            .header(
                "traceparent",
                format!("00-{caller_trace_id}-{caller_span_id}-01"),
            )
            .json(&actions),
    )
    .await;
    assert_eq!(status, 200);

    // The server flushes its spans when it stops; the client did before it exited.
    let (status, stderr) = server.stop(libc::SIGTERM).await;
    assert!(status.success(), "{status:?}: {stderr}");
    // 3 spans per call of http-client; /test and 2 per call it makes.
    let expected = 2 * 3 + 1 + 2 * 2;
    let spans = receiver
        .wait_for_spans(expected, TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(spans.len(), expected, "{spans:#?}");

    for trace_id in &trace_ids {
        let root = find(&spans, trace_id, SpanKind::Internal, "http-client call");
        let call = find(&spans, trace_id, SpanKind::Client, "GET");
        let served = find(&spans, trace_id, SpanKind::Server, "GET /hello");
        assert_eq!(root.parent_span_id, None);
        assert_eq!(call.parent_span_id.as_ref(), Some(&root.span_id));
        assert_eq!(served.parent_span_id.as_ref(), Some(&call.span_id));
        assert_eq!(served.parent_is_remote(), Some(true));
        assert_eq!(root.service_name(), Some("http-client"));
        assert_eq!(call.service_name(), Some("http-client"));
        assert_eq!(served.service_name(), Some("http-server"));
        assert_eq!(call.int_attr("http.response.status_code"), Some(200));
        assert_eq!(served.int_attr("http.response.status_code"), Some(200));
        assert_eq!(served.str_attr("http.route"), Some("/hello"));
        assert_eq!(served.str_attr("client.address"), Some("127.0.0.1"));
    }

    let test = find(&spans, caller_trace_id, SpanKind::Server, "POST /test");
    assert_eq!(test.parent_span_id.as_deref(), Some(caller_span_id));
    let in_caller_trace = |kind: SpanKind| {
        spans
            .iter()
            .filter(move |s| s.trace_id == caller_trace_id && s.kind == kind)
    };
    let callbacks: Vec<_> = in_caller_trace(SpanKind::Client).collect();
    assert_eq!(callbacks.len(), 2, "{spans:#?}");
    for callback in &callbacks {
        assert_eq!(callback.name, "POST");
        assert_eq!(callback.parent_span_id.as_ref(), Some(&test.span_id));
        let echo = in_caller_trace(SpanKind::Server)
            .find(|s| s.parent_span_id.as_ref() == Some(&callback.span_id))
            .unwrap_or_else(|| panic!("no server span under {callback:#?}"));
        assert_eq!(echo.name, "POST /echo");
    }
    assert!(
        spans
            .iter()
            .filter(|s| s.trace_id == caller_trace_id)
            .all(|s| s.service_name() == Some("http-server"))
    );
}
