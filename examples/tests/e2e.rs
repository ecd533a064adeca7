//! End to end, across crates and processes, asserted on what a real OTLP receiver got: the demo's
//! HTTP → gRPC → HTTP chain with its queue hop (over OTLP/gRPC and OTLP/HTTP), and the greeter
//! client and server as separate processes (unary, streaming, error).

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use test_support::{AttrValue, OtlpReceiver, ReceivedSpan, SpanKind, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(30);

/// A program of this package with the `OTEL_*` of the caller's shell removed and `env` set.
fn program(path: &str, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(path);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("OTEL_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

/// Exports to `receiver` over `protocol` only, quickly.
fn otlp(receiver: &OtlpReceiver, protocol: &str) -> Vec<(&'static str, String)> {
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    vec![
        ("OTEL_TRACES_EXPORTER", "otlp".into()),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol.into()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
    ]
}

/// The spans of one trace, indexed for edge checks.
struct Trace<'a> {
    spans: Vec<&'a ReceivedSpan>,
}

impl<'a> Trace<'a> {
    /// The one span of this trace named `name` from `service` of `kind`.
    fn span(&self, name: &str, service: &str, kind: SpanKind) -> &'a ReceivedSpan {
        let found: Vec<_> = self
            .spans
            .iter()
            .filter(|s| s.name == name && s.service_name() == Some(service) && s.kind == kind)
            .collect();
        assert_eq!(
            found.len(),
            1,
            "{name} of {service} ({kind:?}) in {:#?}",
            self.spans
        );
        found[0]
    }

    /// Asserts `child`'s parent is `parent`.
    fn edge(&self, parent: &ReceivedSpan, child: &ReceivedSpan) {
        assert_eq!(
            child.parent_span_id.as_deref(),
            Some(parent.span_id.as_str()),
            "{} should be a child of {}",
            child.name,
            parent.name
        );
    }
}

fn by_trace(spans: &[ReceivedSpan]) -> HashMap<&str, Trace<'_>> {
    let mut traces: HashMap<&str, Trace<'_>> = HashMap::new();
    for span in spans {
        traces
            .entry(span.trace_id.as_str())
            .or_insert_with(|| Trace { spans: Vec::new() })
            .spans
            .push(span);
    }
    traces
}

/// The one span of a trace without a parent.
fn root<'a>(trace: &Trace<'a>) -> &'a ReceivedSpan {
    let roots: Vec<_> = trace
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none())
        .collect();
    assert_eq!(roots.len(), 1, "one root per trace: {:#?}", trace.spans);
    roots[0]
}

fn str_attr<'s>(span: &'s ReceivedSpan, key: &str) -> Option<&'s str> {
    span.str_attr(key)
}

async fn run_demo(protocol: &str) {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let out = timeout(
        WAIT,
        program(env!("CARGO_BIN_EXE_demo"), &otlp(&receiver, protocol)).output(),
    )
    .await
    .expect("the demo finishes")
    .expect("the demo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 10 + 1 + 6 + 10 + 3 spans, all flushed before the demo exited.
    let spans = receiver.wait_for_spans(30, WAIT).await.expect("all spans");
    assert_eq!(spans.len(), 30, "exactly the demo's spans");
    let traces = by_trace(&spans);
    assert_eq!(traces.len(), 5, "one trace per request");

    let mut successes = 0;
    for trace in traces.values() {
        let root = root(trace);
        assert_eq!(root.service_name(), Some("gateway"));
        assert_eq!(root.kind, SpanKind::Server);
        match (
            root.name.as_str(),
            root.int_attr("http.response.status_code"),
        ) {
            ("GET /orders/{id}", Some(200)) => {
                successes += 1;
                let gw_client = trace.span("shop.Orders/Get", "gateway", SpanKind::Client);
                let orders = trace.span("shop.Orders/Get", "orders", SpanKind::Server);
                let db = trace.span("SELECT shop.orders", "orders", SpanKind::Client);
                let inv_client = trace.span("shop.Inventory/Reserve", "orders", SpanKind::Client);
                let inv = trace.span("shop.Inventory/Reserve", "inventory", SpanKind::Server);
                let pay_client = trace.span("POST", "orders", SpanKind::Client);
                let pay = trace.span("POST /charge", "payments", SpanKind::Server);
                let publish = trace.span("orders publish", "orders", SpanKind::Producer);
                let process = trace.span("orders process", "orders", SpanKind::Consumer);
                assert_eq!(trace.spans.len(), 10);
                for (parent, child) in [
                    (root, gw_client),
                    (gw_client, orders),
                    (orders, db),
                    (orders, inv_client),
                    (inv_client, inv),
                    (orders, pay_client),
                    (pay_client, pay),
                    (orders, publish),
                    (publish, process),
                ] {
                    trace.edge(parent, child);
                }
                assert_eq!(str_attr(root, "http.route"), Some("/orders/{id}"));
                assert_eq!(str_attr(orders, "rpc.system.name"), Some("grpc"));
                assert_eq!(str_attr(orders, "rpc.method"), Some("shop.Orders/Get"));
                assert_eq!(str_attr(orders, "rpc.response.status_code"), Some("OK"));
                assert_eq!(str_attr(inv, "rpc.response.status_code"), Some("OK"));
                assert_eq!(str_attr(pay, "http.route"), Some("/charge"));
                assert_eq!(pay.int_attr("http.response.status_code"), Some(200));
                assert_eq!(str_attr(db, "db.system.name"), Some("postgresql"));
                assert_eq!(
                    str_attr(process, "messaging.destination.name"),
                    Some("orders")
                );
                assert_eq!(process.links.len(), 1);
                assert_eq!(process.links[0].span_id, publish.span_id);
                // Remote parents across the wire, local ones in process.
                assert_eq!(orders.parent_is_remote(), Some(true));
                assert_eq!(db.parent_is_remote(), Some(false));
                for span in &trace.spans {
                    assert_eq!(span.status_code, StatusCode::Unset, "{}", span.name);
                }
            }
            ("GET /orders/{id}", Some(502)) => {
                let gw_client = trace.span("shop.Orders/Get", "gateway", SpanKind::Client);
                let orders = trace.span("shop.Orders/Get", "orders", SpanKind::Server);
                let inv_client = trace.span("shop.Inventory/Reserve", "orders", SpanKind::Client);
                let inv = trace.span("shop.Inventory/Reserve", "inventory", SpanKind::Server);
                trace.edge(root, gw_client);
                trace.edge(gw_client, orders);
                trace.edge(orders, inv_client);
                trace.edge(inv_client, inv);
                assert_eq!(root.status_code, StatusCode::Error);
                assert_eq!(str_attr(root, "error.type"), Some("502"));
                assert_eq!(str_attr(inv, "rpc.response.status_code"), Some("INTERNAL"));
                assert_eq!(inv.status_code, StatusCode::Error);
                assert_eq!(inv.status_message, "stock database unreachable");
                assert_eq!(
                    str_attr(orders, "rpc.response.status_code"),
                    Some("UNAVAILABLE")
                );
                assert_eq!(orders.status_code, StatusCode::Error);
            }
            ("GET", Some(404)) => {
                assert_eq!(trace.spans.len(), 1);
                assert_eq!(
                    root.status_code,
                    StatusCode::Unset,
                    "4xx is not a server error"
                );
                assert_eq!(str_attr(root, "url.path"), Some("/no-such-page"));
            }
            ("GET /orders/{id}/events", Some(200)) => {
                let gw_client = trace.span("shop.Orders/Watch", "gateway", SpanKind::Client);
                let orders = trace.span("shop.Orders/Watch", "orders", SpanKind::Server);
                trace.edge(root, gw_client);
                trace.edge(gw_client, orders);
                let sent = orders
                    .events
                    .iter()
                    .filter(|e| {
                        e.attributes.get("rpc.message.type") == Some(&AttrValue::from("SENT"))
                    })
                    .count();
                assert_eq!(sent, 3, "one SENT event per streamed message");
                assert_eq!(str_attr(orders, "rpc.response.status_code"), Some("OK"));
                // The gateway's span covers the whole streamed response.
                assert!(root.end_unix_nanos >= orders.end_unix_nanos);
            }
            other => panic!("unexpected root {other:?}: {root:#?}"),
        }
    }
    assert_eq!(successes, 2, "the success and the slow call");
    // The layers' spans carry the middleware's scope; the demo's own (database, queue) its own.
    for span in &spans {
        let own = span.name.starts_with("SELECT") || span.name.starts_with("orders ");
        let expected = if own {
            "demo"
        } else {
            tracing_core_lite::pipeline::INSTRUMENTATION_SCOPE
        };
        assert_eq!(span.scope_name, expected, "{}", span.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_chain_over_otlp_grpc() {
    run_demo("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_chain_over_otlp_http() {
    run_demo("http/protobuf").await;
}

/// Starts `greeter-server` exporting to `receiver`; returns it and its address.
async fn greeter_server(receiver: &OtlpReceiver) -> (Child, String) {
    let mut server = program(
        env!("CARGO_BIN_EXE_greeter-server"),
        &otlp(receiver, "grpc"),
    )
    .args(["--listen", "127.0.0.1:0"])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawns");
    let stdout = server.stdout.take().expect("piped");
    let line = timeout(WAIT, BufReader::new(stdout).lines().next_line())
        .await
        .expect("announces its address")
        .expect("readable")
        .expect("a line");
    let addr = line
        .strip_prefix("listening on ")
        .expect("the address line")
        .to_owned();
    (server, addr)
}

#[cfg(unix)]
async fn stop(mut server: Child) {
    let pid = server.id().expect("running");
    let pid = libc::pid_t::try_from(pid).expect("a pid");
    // SAFETY: sending a signal to a child process we own.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = timeout(WAIT, server.wait())
        .await
        .expect("exits")
        .expect("waited");
    assert!(status.success());
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter_client_and_server_in_separate_processes() {
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let (server, addr) = greeter_server(&receiver).await;
    let target = format!("http://{addr}");
    for args in [
        vec!["--count", "1"],
        vec!["--count", "1", "--stream"],
        vec!["--count", "1", "--name", "error"],
    ] {
        let out = timeout(
            WAIT,
            program(
                env!("CARGO_BIN_EXE_greeter-client"),
                &otlp(&receiver, "grpc"),
            )
            .arg("--target")
            .arg(&target)
            .args(&args)
            .output(),
        )
        .await
        .expect("finishes")
        .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stop(server).await;
    // Per call: the client's root, its CLIENT span, the server's span.
    let spans = receiver.wait_for_spans(9, WAIT).await.expect("all spans");
    let traces = by_trace(&spans);
    assert_eq!(traces.len(), 3);
    for trace in traces.values() {
        let root = root(trace);
        assert_eq!(root.name, "greeter-client call");
        assert_eq!(root.service_name(), Some("greeter-client"));
        let method = trace
            .spans
            .iter()
            .find(|s| s.kind == SpanKind::Client)
            .map(|s| s.name.clone())
            .expect("a client span");
        let client = trace.span(&method, "greeter-client", SpanKind::Client);
        let server = trace.span(&method, "greeter-server", SpanKind::Server);
        trace.edge(root, client);
        trace.edge(client, server);
        assert_eq!(server.parent_is_remote(), Some(true));
        let code = str_attr(server, "rpc.response.status_code");
        match method.as_str() {
            "helloworld.Greeter/SayHelloStream" => {
                assert_eq!(code, Some("OK"));
                let sent = server
                    .events
                    .iter()
                    .filter(|e| {
                        e.attributes.get("rpc.message.type") == Some(&AttrValue::from("SENT"))
                    })
                    .count();
                assert_eq!(sent, 3);
            }
            "helloworld.Greeter/SayHello" if code == Some("INTERNAL") => {
                assert_eq!(server.status_code, StatusCode::Error);
                assert_eq!(client.status_code, StatusCode::Error);
                assert_eq!(root.status_code, StatusCode::Error);
            }
            "helloworld.Greeter/SayHello" => {
                assert_eq!(code, Some("OK"));
                assert_eq!(server.status_code, StatusCode::Unset);
            }
            other => panic!("unexpected method {other}"),
        }
    }
}
