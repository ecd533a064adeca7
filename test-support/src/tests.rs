//! End-to-end tests of the receiver over real sockets. Every wait is bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, HOST};
use http::{HeaderName, Method, Request, Response, StatusCode as HttpStatus};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, span, status,
};
use prost::Message;
use tokio::net::TcpStream;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::http::RpcStatus;
use crate::span::flatten;
use crate::{
    AttrValue, Behavior, OtlpReceiver, ReceivedEvent, ReceivedLink, ReceivedSpan, SpanKind,
    StatusCode, Transport,
};

/// Bound for anything that is expected to happen.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Bound for a wait that is expected to time out.
const SHORT: Duration = Duration::from_millis(200);
const PROTOBUF: &str = "application/x-protobuf";

async fn bounded<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(TIMEOUT, future)
        .await
        .expect("the operation did not finish in time")
}

// ---------------------------------------------------------------------------
// Fixtures

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn string(s: &str) -> any_value::Value {
    any_value::Value::StringValue(s.to_owned())
}

/// One resource with a scope and two spans (a remote-parented server span with
/// every field set, and a bare internal root span), then a second resource
/// without scope holding one span.
fn sample_request() -> ExportTraceServiceRequest {
    let server = Span {
        trace_id: (0..16).collect(),
        span_id: vec![0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88],
        trace_state: "vendor=value".to_owned(),
        parent_span_id: vec![1, 2, 3, 4, 5, 6, 7, 8],
        flags: 0x301,
        name: "GET /users/{id}".to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_001_500_000,
        attributes: vec![
            kv("http.request.method", string("GET")),
            kv("http.response.status_code", any_value::Value::IntValue(500)),
            kv("error", any_value::Value::BoolValue(true)),
            kv("ratio", any_value::Value::DoubleValue(0.25)),
            kv(
                "tags",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![
                        AnyValue {
                            value: Some(string("a")),
                        },
                        AnyValue {
                            value: Some(any_value::Value::IntValue(2)),
                        },
                    ],
                }),
            ),
            kv("raw", any_value::Value::BytesValue(vec![0, 1, 254])),
            kv(
                "nested",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![kv("inner", string("x"))],
                }),
            ),
            KeyValue {
                key: "empty".to_owned(),
                value: None,
                ..Default::default()
            },
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_001_000_000,
            name: "exception".to_owned(),
            attributes: vec![kv("exception.message", string("boom"))],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: vec![0x11; 16],
            span_id: vec![0x22; 8],
            attributes: vec![kv("link.kind", string("follows"))],
            ..Default::default()
        }],
        status: Some(Status {
            message: "boom".to_owned(),
            code: status::StatusCode::Error as i32,
        }),
        ..Default::default()
    };
    let internal = Span {
        trace_id: vec![0xaa; 16],
        span_id: vec![0xbb; 8],
        name: "internal".to_owned(),
        kind: span::SpanKind::Internal as i32,
        status: Some(Status {
            message: String::new(),
            code: status::StatusCode::Ok as i32,
        }),
        ..Default::default()
    };
    let other = Span {
        trace_id: vec![0xcc; 16],
        span_id: vec![0xdd; 8],
        name: "other".to_owned(),
        kind: span::SpanKind::Client as i32,
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", string("checkout"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "tower-trace".to_owned(),
                        version: "0.1.0".to_owned(),
                        ..Default::default()
                    }),
                    spans: vec![server, internal],
                    ..Default::default()
                }],
                ..Default::default()
            },
            ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    scope: None,
                    spans: vec![other],
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

/// What [`sample_request`] must flatten to.
fn sample_spans(transport: Transport) -> Vec<ReceivedSpan> {
    let checkout = BTreeMap::from([("service.name".to_owned(), AttrValue::from("checkout"))]);
    let server = ReceivedSpan {
        trace_id: "000102030405060708090a0b0c0d0e0f".to_owned(),
        span_id: "ffeeddccbbaa9988".to_owned(),
        parent_span_id: Some("0102030405060708".to_owned()),
        trace_state: "vendor=value".to_owned(),
        flags: 0x301,
        name: "GET /users/{id}".to_owned(),
        kind: SpanKind::Server,
        start_unix_nanos: 1_700_000_000_000_000_000,
        end_unix_nanos: 1_700_000_000_001_500_000,
        attributes: BTreeMap::from([
            ("http.request.method".to_owned(), AttrValue::from("GET")),
            ("http.response.status_code".to_owned(), AttrValue::Int(500)),
            ("error".to_owned(), AttrValue::Bool(true)),
            ("ratio".to_owned(), AttrValue::Double(0.25)),
            (
                "tags".to_owned(),
                AttrValue::Array(vec![AttrValue::from("a"), AttrValue::Int(2)]),
            ),
            ("raw".to_owned(), AttrValue::Bytes(vec![0, 1, 254])),
            (
                "nested".to_owned(),
                AttrValue::Map(BTreeMap::from([("inner".to_owned(), AttrValue::from("x"))])),
            ),
            ("empty".to_owned(), AttrValue::Empty),
        ]),
        events: vec![ReceivedEvent {
            name: "exception".to_owned(),
            time_unix_nanos: 1_700_000_000_001_000_000,
            attributes: BTreeMap::from([("exception.message".to_owned(), AttrValue::from("boom"))]),
        }],
        links: vec![ReceivedLink {
            trace_id: "11111111111111111111111111111111".to_owned(),
            span_id: "2222222222222222".to_owned(),
            attributes: BTreeMap::from([("link.kind".to_owned(), AttrValue::from("follows"))]),
        }],
        status_code: StatusCode::Error,
        status_message: "boom".to_owned(),
        resource: checkout.clone(),
        scope_name: "tower-trace".to_owned(),
        transport,
    };
    let internal = ReceivedSpan {
        trace_id: "aa".repeat(16),
        span_id: "bb".repeat(8),
        parent_span_id: None,
        trace_state: String::new(),
        flags: 0,
        name: "internal".to_owned(),
        kind: SpanKind::Internal,
        start_unix_nanos: 0,
        end_unix_nanos: 0,
        attributes: BTreeMap::new(),
        events: vec![],
        links: vec![],
        status_code: StatusCode::Ok,
        status_message: String::new(),
        resource: checkout,
        scope_name: "tower-trace".to_owned(),
        transport,
    };
    let other = ReceivedSpan {
        trace_id: "cc".repeat(16),
        span_id: "dd".repeat(8),
        name: "other".to_owned(),
        kind: SpanKind::Client,
        status_code: StatusCode::Unset,
        resource: BTreeMap::new(),
        scope_name: String::new(),
        ..internal.clone()
    };
    vec![server, internal, other]
}

fn one_span_request(name: &str) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: name.to_owned(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

// ---------------------------------------------------------------------------
// Clients

/// `host:port` of the receiver's HTTP server.
fn http_authority(receiver: &OtlpReceiver) -> String {
    let endpoint = receiver.http_endpoint();
    endpoint
        .strip_prefix("http://")
        .expect("the endpoint is an http URL")
        .to_owned()
}

/// Sends one HTTP/1.1 request on a fresh connection with a bare hyper client.
async fn http1_request(
    authority: String,
    method: Method,
    path: &str,
    headers: Vec<(HeaderName, &'static str)>,
    body: Vec<u8>,
) -> Response<Bytes> {
    let stream = TcpStream::connect(&authority).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, authority);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .expect("valid request");
    let response = sender.send_request(request).await.expect("HTTP response");
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Response::from_parts(parts, body)
}

/// POSTs a protobuf export to `/v1/traces`.
async fn http_export(authority: String, request: ExportTraceServiceRequest) -> Response<Bytes> {
    http1_request(
        authority,
        Method::POST,
        "/v1/traces",
        vec![(CONTENT_TYPE, PROTOBUF)],
        request.encode_to_vec(),
    )
    .await
}

async fn grpc_client(receiver: &OtlpReceiver) -> TraceServiceClient<Channel> {
    TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .expect("gRPC connect")
}

#[track_caller]
fn assert_success(response: &Response<Bytes>) {
    assert_eq!(response.status(), HttpStatus::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], PROTOBUF);
    let body = ExportTraceServiceResponse::decode(response.body().clone())
        .expect("an ExportTraceServiceResponse");
    assert_eq!(body, ExportTraceServiceResponse::default());
}

/// Checks an OTLP/HTTP error response: status and `google.rpc.Status` body.
#[track_caller]
fn assert_error(response: &Response<Bytes>, status: HttpStatus, code: tonic::Code) -> String {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()[CONTENT_TYPE], PROTOBUF);
    let body = RpcStatus::decode(response.body().clone()).expect("a google.rpc.Status");
    assert_eq!(body.code, code as i32);
    body.message
}

// ---------------------------------------------------------------------------
// Tests

#[test]
fn flatten_maps_proto_edge_cases() {
    let mut request = one_span_request("edge");
    let span = &mut request.resource_spans[0].scope_spans[0].spans[0];
    span.kind = 42;
    span.status = Some(Status {
        message: "?".to_owned(),
        code: 42,
    });
    span.attributes = vec![
        kv("profiling-only", any_value::Value::StringValueStrindex(3)),
        KeyValue {
            key: "no-value".to_owned(),
            value: Some(AnyValue { value: None }),
            ..Default::default()
        },
        kv("dup", string("first")),
        kv("dup", string("second")),
    ];

    let [span] =
        <[ReceivedSpan; 1]>::try_from(flatten(request, Transport::Http)).expect("one span");
    assert_eq!(span.trace_id, "01".repeat(16));
    assert_eq!(span.span_id, "02".repeat(8));
    assert_eq!(span.kind, SpanKind::Unspecified);
    assert_eq!(span.status_code, StatusCode::Unset);
    assert_eq!(span.attr("profiling-only"), Some(&AttrValue::Empty));
    assert_eq!(span.attr("no-value"), Some(&AttrValue::Empty));
    assert_eq!(span.str_attr("dup"), Some("second"));
    assert_eq!(span.service_name(), None);
    assert_eq!(span.parent_is_remote(), None);
}

#[test]
fn span_accessors() {
    let spans = sample_spans(Transport::Grpc);
    let server = &spans[0];
    assert_eq!(server.service_name(), Some("checkout"));
    assert_eq!(server.str_attr("http.request.method"), Some("GET"));
    assert_eq!(server.int_attr("http.response.status_code"), Some(500));
    assert_eq!(server.int_attr("http.request.method"), None);
    assert_eq!(server.str_attr("missing"), None);
    assert_eq!(server.attr("ratio").and_then(AttrValue::as_f64), Some(0.25));
    assert_eq!(
        server.attr("error").and_then(AttrValue::as_bool),
        Some(true)
    );
    assert_eq!(server.parent_is_remote(), Some(true));
}

#[test]
fn public_types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<OtlpReceiver>();
    assert_send_sync::<ReceivedSpan>();
    assert_send_sync::<crate::WaitError>();
}

#[tokio::test]
async fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let start = OtlpReceiver::start();
    assert_send(&start);
    let receiver = start.await.expect("start");
    assert_send(&receiver.wait_for_spans(1, SHORT));
    assert_send(&receiver.wait_for(|spans| spans.is_empty(), SHORT));
    assert_send(&receiver.wait_for_export_requests(1, SHORT));
    assert_send(&receiver.shutdown());
}

#[tokio::test]
async fn http_export_is_recorded_exactly() {
    let receiver = OtlpReceiver::start().await.expect("start");
    assert!(receiver.http_traces_url().ends_with("/v1/traces"));
    assert!(
        receiver
            .http_traces_url()
            .starts_with(&receiver.http_endpoint())
    );

    let response = bounded(http_export(http_authority(&receiver), sample_request())).await;
    assert_success(&response);

    let spans = bounded(receiver.wait_for_spans(3, TIMEOUT))
        .await
        .expect("spans");
    assert_eq!(spans, sample_spans(Transport::Http));
    assert_eq!(receiver.spans(), spans);
    assert_eq!(receiver.export_requests(), 1);
}

#[tokio::test]
async fn grpc_export_is_recorded_exactly() {
    let receiver = OtlpReceiver::start().await.expect("start");
    assert!(receiver.grpc_endpoint().starts_with("http://127.0.0.1:"));
    assert_ne!(receiver.grpc_endpoint(), receiver.http_endpoint());

    let mut client = bounded(grpc_client(&receiver)).await;
    let response = bounded(client.export(sample_request()))
        .await
        .expect("export");
    assert_eq!(response.into_inner(), ExportTraceServiceResponse::default());

    let spans = bounded(receiver.wait_for_spans(3, TIMEOUT))
        .await
        .expect("spans");
    assert_eq!(spans, sample_spans(Transport::Grpc));
    assert_eq!(receiver.export_requests(), 1);
}

#[tokio::test]
async fn gzip_exports_on_both_transports() {
    let receiver = OtlpReceiver::start().await.expect("start");

    let response = bounded(http1_request(
        http_authority(&receiver),
        Method::POST,
        "/v1/traces",
        vec![(CONTENT_TYPE, PROTOBUF), (CONTENT_ENCODING, "gzip")],
        gzip(&one_span_request("over http").encode_to_vec()),
    ))
    .await;
    assert_success(&response);

    let mut client = bounded(grpc_client(&receiver))
        .await
        .send_compressed(CompressionEncoding::Gzip);
    bounded(client.export(one_span_request("over grpc")))
        .await
        .expect("export");

    let spans = bounded(receiver.wait_for_spans(2, TIMEOUT))
        .await
        .expect("spans");
    let received: Vec<_> = spans
        .iter()
        .map(|s| (s.name.as_str(), s.transport))
        .collect();
    assert_eq!(
        received,
        [
            ("over http", Transport::Http),
            ("over grpc", Transport::Grpc)
        ]
    );
}

#[tokio::test]
async fn http_accepts_h2c_with_prior_knowledge() {
    let receiver = OtlpReceiver::start().await.expect("start");
    let authority = http_authority(&receiver);

    let exchange = async {
        let stream = TcpStream::connect(&authority).await.expect("connect");
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .expect("h2 handshake");
        tokio::spawn(connection);
        let request = Request::post(format!("http://{authority}/v1/traces"))
            .header(CONTENT_TYPE, PROTOBUF)
            .body(Full::new(Bytes::from(
                one_span_request("h2c").encode_to_vec(),
            )))
            .expect("valid request");
        sender
            .send_request(request)
            .await
            .expect("HTTP response")
            .status()
    };
    assert_eq!(bounded(exchange).await, HttpStatus::OK);
    assert_eq!(receiver.spans()[0].name, "h2c");
}

#[tokio::test]
async fn http_rejects_invalid_requests_without_counting_them() {
    let receiver = OtlpReceiver::start().await.expect("start");
    let authority = http_authority(&receiver);
    let valid = one_span_request("never recorded").encode_to_vec();

    let response = bounded(http1_request(
        authority.clone(),
        Method::POST,
        "/v1/metrics",
        vec![(CONTENT_TYPE, PROTOBUF)],
        valid.clone(),
    ))
    .await;
    assert_error(&response, HttpStatus::NOT_FOUND, tonic::Code::NotFound);

    let response = bounded(http1_request(
        authority.clone(),
        Method::GET,
        "/v1/traces",
        vec![],
        vec![],
    ))
    .await;
    assert_error(
        &response,
        HttpStatus::METHOD_NOT_ALLOWED,
        tonic::Code::Unimplemented,
    );
    assert_eq!(response.headers()[http::header::ALLOW], "POST");

    let response = bounded(http1_request(
        authority.clone(),
        Method::POST,
        "/v1/traces",
        vec![(CONTENT_TYPE, "application/json")],
        b"{}".to_vec(),
    ))
    .await;
    assert_error(
        &response,
        HttpStatus::UNSUPPORTED_MEDIA_TYPE,
        tonic::Code::InvalidArgument,
    );

    let response = bounded(http1_request(
        authority.clone(),
        Method::POST,
        "/v1/traces",
        vec![(CONTENT_TYPE, PROTOBUF), (CONTENT_ENCODING, "br")],
        valid.clone(),
    ))
    .await;
    assert_error(
        &response,
        HttpStatus::UNSUPPORTED_MEDIA_TYPE,
        tonic::Code::InvalidArgument,
    );

    // A truncated length-delimited field.
    let response = bounded(http1_request(
        authority.clone(),
        Method::POST,
        "/v1/traces",
        vec![(CONTENT_TYPE, PROTOBUF)],
        vec![0x0a, 0x05, 0x01],
    ))
    .await;
    let message = assert_error(
        &response,
        HttpStatus::BAD_REQUEST,
        tonic::Code::InvalidArgument,
    );
    assert!(message.contains("ExportTraceServiceRequest"), "{message}");

    let response = bounded(http1_request(
        authority.clone(),
        Method::POST,
        "/v1/traces",
        vec![(CONTENT_TYPE, PROTOBUF), (CONTENT_ENCODING, "gzip")],
        valid,
    ))
    .await;
    let message = assert_error(
        &response,
        HttpStatus::BAD_REQUEST,
        tonic::Code::InvalidArgument,
    );
    assert!(message.contains("gzip"), "{message}");

    assert_eq!(receiver.export_requests(), 0);
    assert!(receiver.spans().is_empty());
}

#[tokio::test]
async fn wait_for_spans_times_out_with_the_count() {
    let receiver = OtlpReceiver::start().await.expect("start");
    let response = bounded(http_export(
        http_authority(&receiver),
        one_span_request("only one"),
    ))
    .await;
    assert_success(&response);

    let error = bounded(receiver.wait_for_spans(3, SHORT))
        .await
        .expect_err("only one span was sent");
    assert_eq!(error.arrived(), 1);
    assert_eq!(error.export_requests(), 1);
    assert_eq!(error.timeout(), SHORT);
    assert_eq!(error.spans()[0].name, "only one");
    assert_eq!(
        error.to_string(),
        "timed out after 200ms waiting for 3 span(s): 1 span(s) arrived in 1 export request(s): [\"only one\"]"
    );
}

#[tokio::test]
async fn wait_for_wakes_up_on_a_later_export() {
    let receiver = OtlpReceiver::start().await.expect("start");
    let authority = http_authority(&receiver);

    // The wait is polled (and finds nothing) before the exports are sent.
    let (waited, ()) = bounded(async {
        tokio::join!(
            receiver.wait_for(|spans| spans.iter().any(|s| s.name == "second"), TIMEOUT),
            async {
                assert_success(&http_export(authority.clone(), one_span_request("first")).await);
                assert_success(&http_export(authority.clone(), one_span_request("second")).await);
            },
        )
    })
    .await;
    let names: Vec<_> = waited
        .expect("predicate holds")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["first", "second"]);

    let error = bounded(receiver.wait_for(|spans| spans.len() > 5, SHORT))
        .await
        .expect_err("predicate never holds");
    assert_eq!(error.arrived(), 2);
    assert!(error.to_string().contains("span predicate"), "{error}");
}

#[tokio::test]
async fn clear_forgets_spans_and_requests() {
    let receiver = OtlpReceiver::start().await.expect("start");
    let mut client = bounded(grpc_client(&receiver)).await;
    bounded(client.export(one_span_request("old")))
        .await
        .expect("export");
    receiver.clear();
    assert!(receiver.spans().is_empty());
    assert_eq!(receiver.export_requests(), 0);

    bounded(client.export(one_span_request("new")))
        .await
        .expect("export");
    let spans = bounded(receiver.wait_for_spans(1, TIMEOUT))
        .await
        .expect("spans");
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].name, "new");
}

#[tokio::test]
async fn reject_answers_unavailable_and_records_nothing() {
    let receiver = OtlpReceiver::start().await.expect("start");
    receiver.set_behavior(Behavior::Reject);

    let response = bounded(http_export(
        http_authority(&receiver),
        one_span_request("rejected"),
    ))
    .await;
    assert_error(
        &response,
        HttpStatus::SERVICE_UNAVAILABLE,
        tonic::Code::Unavailable,
    );

    let mut client = bounded(grpc_client(&receiver)).await;
    let status = bounded(client.export(one_span_request("rejected")))
        .await
        .expect_err("rejected");
    assert_eq!(status.code(), tonic::Code::Unavailable);

    assert_eq!(receiver.export_requests(), 2);
    assert!(receiver.spans().is_empty());

    receiver.set_behavior(Behavior::Accept);
    bounded(client.export(one_span_request("accepted")))
        .await
        .expect("export");
    assert_eq!(receiver.export_requests(), 3);
    assert_eq!(receiver.spans()[0].name, "accepted");
}

#[tokio::test]
async fn count_counts_spans_without_recording_them() {
    let receiver = OtlpReceiver::start().await.expect("start");
    bounded(http_export(
        http_authority(&receiver),
        one_span_request("recorded"),
    ))
    .await;
    receiver.set_behavior(Behavior::Count);

    let response = bounded(http_export(
        http_authority(&receiver),
        one_span_request("counted over HTTP"),
    ))
    .await;
    assert_eq!(response.status(), HttpStatus::OK);
    let mut client = bounded(grpc_client(&receiver)).await;
    // Three spans: two in one scope, one in a second scope.
    let mut three = one_span_request("counted over gRPC");
    let scope = &mut three.resource_spans[0].scope_spans[0];
    scope.spans.push(scope.spans[0].clone());
    let mut other = scope.clone();
    other.spans.truncate(1);
    three.resource_spans[0].scope_spans.push(other);
    bounded(client.export(three)).await.expect("export");

    assert_eq!(receiver.export_requests(), 3);
    assert_eq!(receiver.span_count(), 1 + 1 + 3);
    let recorded = receiver.spans();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].name, "recorded");
    receiver.clear();
    assert_eq!(receiver.span_count(), 0);
}

#[tokio::test]
async fn hang_holds_exports_until_the_behavior_changes() {
    let receiver = OtlpReceiver::start().await.expect("start");
    receiver.set_behavior(Behavior::Hang);

    let http = tokio::spawn(http_export(
        http_authority(&receiver),
        one_span_request("held"),
    ));
    let mut client = bounded(grpc_client(&receiver)).await;
    let grpc = tokio::spawn(async move { client.export(one_span_request("held")).await });

    assert_eq!(
        bounded(receiver.wait_for_export_requests(2, TIMEOUT))
            .await
            .expect("both arrive"),
        2
    );
    let error = bounded(receiver.wait_for_spans(1, SHORT))
        .await
        .expect_err("hanging exports record nothing");
    assert_eq!(error.export_requests(), 2);
    assert!(!http.is_finished() && !grpc.is_finished());

    receiver.set_behavior(Behavior::Accept);
    assert_success(&bounded(http).await.expect("HTTP task"));
    bounded(grpc).await.expect("gRPC task").expect("export");
    assert_eq!(receiver.spans().len(), 2);
    assert_eq!(receiver.span_count(), 2);
}

#[tokio::test]
async fn hang_does_not_keep_a_dropped_receiver_alive() {
    let receiver = OtlpReceiver::start().await.expect("start");
    receiver.set_behavior(Behavior::Hang);

    let http = tokio::spawn(http_export(
        http_authority(&receiver),
        one_span_request("held"),
    ));
    let mut client = bounded(grpc_client(&receiver)).await;
    let grpc = tokio::spawn(async move { client.export(one_span_request("held")).await });
    bounded(receiver.wait_for_export_requests(2, TIMEOUT))
        .await
        .expect("both arrive");

    drop(receiver);

    let response = bounded(http).await.expect("HTTP task");
    let message = assert_error(
        &response,
        HttpStatus::SERVICE_UNAVAILABLE,
        tonic::Code::Unavailable,
    );
    assert!(message.contains("shutting down"), "{message}");
    let status = bounded(grpc)
        .await
        .expect("gRPC task")
        .expect_err("not accepted");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(status.message().contains("shutting down"), "{status:?}");
}

#[tokio::test]
async fn shutdown_closes_both_ports_despite_hanging_exports() {
    let receiver = OtlpReceiver::start().await.expect("start");
    receiver.set_behavior(Behavior::Hang);
    let http_authority = http_authority(&receiver);
    let grpc_authority = receiver
        .grpc_endpoint()
        .strip_prefix("http://")
        .expect("the endpoint is an http URL")
        .to_owned();

    let http = tokio::spawn(http_export(
        http_authority.clone(),
        one_span_request("held"),
    ));
    let mut client = bounded(grpc_client(&receiver)).await;
    let grpc = tokio::spawn(async move { client.export(one_span_request("held")).await });
    bounded(receiver.wait_for_export_requests(2, TIMEOUT))
        .await
        .expect("both arrive");

    bounded(receiver.shutdown()).await;

    assert_eq!(
        bounded(http).await.expect("HTTP task").status(),
        HttpStatus::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        bounded(grpc)
            .await
            .expect("gRPC task")
            .expect_err("not accepted")
            .code(),
        tonic::Code::Unavailable
    );
    for authority in [http_authority, grpc_authority] {
        let error = bounded(TcpStream::connect(&authority))
            .await
            .expect_err("the listener is closed");
        assert_eq!(
            error.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{authority}"
        );
    }
}
