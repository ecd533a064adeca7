//! The core's pipeline, configured as from the environment, exporting over real OTLP (gRPC and
//! HTTP/protobuf) to a real receiver on 127.0.0.1.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer};
use test_support::{Behavior, OtlpReceiver, StatusCode};
use tracing_core_lite::Pipeline;
use tracing_core_lite::instrument::in_span_with;

const WAIT: Duration = Duration::from_secs(20);

/// A lookup of the `OTEL_*` variables: `receiver`'s OTLP endpoint for `protocol`, and `more`.
fn lookup(
    receiver: &OtlpReceiver,
    protocol: &'static str,
    more: &'static [(&'static str, &'static str)],
) -> impl Fn(&str) -> Option<String> + use<> {
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => receiver.http_endpoint(),
    };
    move |k: &str| -> Option<String> {
        match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some(endpoint.clone()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some(protocol.to_owned()),
            _ => more
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, value)| (*value).to_owned()),
        }
    }
}

async fn export_through(protocol: &'static str) {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let env = lookup(
        &receiver,
        protocol,
        &[
            ("OTEL_SERVICE_NAME", "pipeline-test"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=ci,team=obs",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let guard = Pipeline::from_lookup(env)
        .expect("valid configuration")
        .without_global()
        .install()
        .expect("pipeline installs");
    let tracer = guard.tracer();

    let mut root = tracer
        .span_builder("GET /orders/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/orders/{id}"),
        ])
        .start(&tracer);
    root.set_attribute(KeyValue::new("http.response.status_code", 200));
    let root_cx = opentelemetry::Context::current_with_span(root);
    {
        let _attached = root_cx.clone().attach();
        in_span_with(&tracer, "db.load_order", |cx| {
            cx.span()
                .add_event("cache miss", vec![KeyValue::new("key", "order:7")]);
            cx.span().set_status(Status::error("timeout"));
        });
    }
    root_cx.span().end();
    let root_span_id = root_cx.span().span_context().span_id().to_string();
    let trace_id = root_cx.span().span_context().trace_id().to_string();

    // Shutdown flushes: nothing finished may be lost.
    guard.shutdown().expect("shutdown flushes");
    let spans = receiver
        .wait_for_spans(2, WAIT)
        .await
        .expect("both spans arrive");
    assert_eq!(spans.len(), 2, "{spans:#?}");

    let root = spans
        .iter()
        .find(|s| s.name == "GET /orders/{id}")
        .expect("root span");
    let child = spans
        .iter()
        .find(|s| s.name == "db.load_order")
        .expect("child span");
    assert_eq!(root.trace_id, trace_id);
    assert_eq!(root.span_id, root_span_id);
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.kind, test_support::SpanKind::Server);
    assert_eq!(root.str_attr("http.route"), Some("/orders/{id}"));
    assert_eq!(root.int_attr("http.response.status_code"), Some(200));
    assert_eq!(root.status_code, StatusCode::Unset);

    assert_eq!(child.trace_id, trace_id);
    assert_eq!(child.parent_span_id.as_deref(), Some(root_span_id.as_str()));
    assert_eq!(child.status_code, StatusCode::Error);
    assert_eq!(child.status_message, "timeout");
    assert_eq!(child.events.len(), 1);
    assert_eq!(child.events[0].name, "cache miss");

    for span in &spans {
        assert_eq!(span.service_name(), Some("pipeline-test"));
        assert_eq!(
            span.resource
                .get("deployment.environment.name")
                .and_then(|v| v.as_str()),
            Some("ci")
        );
        assert_eq!(
            span.resource.get("team").and_then(|v| v.as_str()),
            Some("obs")
        );
        assert_eq!(
            span.resource
                .get("telemetry.sdk.language")
                .and_then(|v| v.as_str()),
            Some("rust")
        );
        assert_eq!(
            span.scope_name,
            tracing_core_lite::pipeline::INSTRUMENTATION_SCOPE
        );
    }
    assert_eq!(
        spans[0].transport,
        if protocol == "grpc" {
            test_support::Transport::Grpc
        } else {
            test_support::Transport::Http
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_delivers_spans_with_attributes_and_resource() {
    export_through("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_delivers_spans_with_attributes_and_resource() {
    export_through("http/protobuf").await;
}

/// The export thread owns its runtime, so a pipeline installed from a current-thread runtime
/// exports over OTLP/gRPC and shuts down. (That a blocking `shutdown()` on such a runtime's own
/// thread does not deadlock is `export::batch::tests::works_under_a_current_thread_runtime`.)
#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_exports_and_shuts_down() {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let guard = Pipeline::new()
        .with_otlp(
            tracing_core_lite::pipeline::OtlpProtocol::Grpc,
            &receiver.grpc_endpoint(),
        )
        .expect("valid endpoint")
        .with_service_name("current-thread")
        .without_global()
        .install()
        .expect("pipeline installs");
    guard.tracer().in_span("op", |_| {});
    // The receiver runs on this same thread, so the blocking shutdown goes to the blocking pool
    // while this thread keeps serving the receiver.
    let shutdown = tokio::task::spawn_blocking(move || guard.shutdown());
    let spans = receiver
        .wait_for_spans(1, WAIT)
        .await
        .expect("span arrives");
    assert_eq!(spans[0].name, "op");
    assert_eq!(spans[0].service_name(), Some("current-thread"));
    shutdown
        .await
        .expect("no panic")
        .expect("shutdown succeeds");
}

/// A pipeline configured by a lookup takes its OTLP exporter's headers, compression and timeout
/// from that lookup, as it takes the endpoint. The test sets nothing in the process
/// environment and assumes that it does not set `OTEL_EXPORTER_OTLP_COMPRESSION` (over gRPC,
/// `opentelemetry-otlp` reads it as well). Headers in the process environment are what
/// `lookup_headers_win_over_the_process_environment` runs it with.
async fn export_settings_come_from_the_lookup(protocol: &'static str) {
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let env = lookup(
        &receiver,
        protocol,
        &[
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-lookup-tenant=red,x-lookup-key=a%20b",
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-lookup-tenant=blue"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "200"),
        ],
    );
    let guard = std::sync::Arc::new(
        Pipeline::from_lookup(env)
            .expect("valid configuration")
            .without_global()
            .install()
            .expect("pipeline installs"),
    );
    let flush = |guard: &std::sync::Arc<tracing_core_lite::pipeline::PipelineGuard>| {
        let guard = std::sync::Arc::clone(guard);
        tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let flushed = guard.force_flush();
            (flushed, started.elapsed())
        })
    };

    guard.tracer().in_span("first", |_| {});
    let (flushed, _) = flush(&guard).await.expect("no panic");
    flushed.expect("exported");
    let headers = receiver.export_headers();
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(
        headers[0]["x-lookup-tenant"], "blue",
        "the signal's list wins"
    );
    assert_eq!(headers[0].get_all("x-lookup-tenant").iter().count(), 1);
    assert_eq!(headers[0]["x-lookup-key"], "a b");
    // Over gRPC, `opentelemetry-otlp` also sends the headers of the process environment
    // (its signal's list, else the generic one) that the lookup does not name.
    let process = std::env::var("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_HEADERS"))
        .unwrap_or_default();
    if process.contains("x-process-only=1") {
        // (Our HTTP exporter reads only the lookup.)
        match protocol {
            "grpc" => assert_eq!(headers[0]["x-process-only"], "1"),
            _ => assert!(headers[0].get("x-process-only").is_none()),
        }
    }
    let encoding = match protocol {
        "grpc" => "grpc-encoding",
        _ => "content-encoding",
    };
    assert_eq!(headers[0][encoding], "gzip");

    // A receiver that never answers: the export gives up after the lookup's 200 ms, not after
    // the default 10 s.
    receiver.set_behavior(Behavior::Hang);
    guard.tracer().in_span("second", |_| {});
    let (_, took) = flush(&guard).await.expect("no panic");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (_, stats) = &guard.stats()[0];
    assert_eq!(stats.failed_exports(), 1);
    receiver.set_behavior(Behavior::Accept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_grpc_takes_headers_compression_and_timeout_from_the_lookup() {
    export_settings_come_from_the_lookup("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_takes_headers_compression_and_timeout_from_the_lookup() {
    export_settings_come_from_the_lookup("http/protobuf").await;
}

/// `opentelemetry-otlp`'s gRPC exporter reads `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (else
/// `OTEL_EXPORTER_OTLP_HEADERS`) from the process environment itself: the two tests above, run
/// again in a process whose environment names the lookup's header with another value (in the
/// generic list, then in the signal's), still see the lookup's value arrive, once, and over
/// gRPC the environment's other headers too. (The HTTP exporter is ours and reads only the
/// lookup: its half of the run checks that it stays so.)
#[test]
fn lookup_headers_win_over_the_process_environment() {
    let exe = std::env::current_exe().expect("the test binary's path");
    let generic_only = [(
        "OTEL_EXPORTER_OTLP_HEADERS",
        "x-lookup-tenant=process,x-process-only=1",
    )];
    let signal = [
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-lookup-tenant=generic"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "x-lookup-tenant=process,x-process-only=1",
        ),
    ];
    for vars in [&generic_only[..], &signal[..]] {
        let run = std::process::Command::new(&exe)
            .args([
                "--exact",
                "otlp_grpc_takes_headers_compression_and_timeout_from_the_lookup",
                "otlp_http_takes_headers_compression_and_timeout_from_the_lookup",
            ])
            .env_remove("OTEL_EXPORTER_OTLP_TRACES_HEADERS")
            .envs(vars.iter().copied())
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains("2 passed"),
            "{vars:?}: {}\n{stdout}\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr)
        );
    }
}
