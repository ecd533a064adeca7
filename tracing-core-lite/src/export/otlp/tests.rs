use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Read as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Response;
use opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_http::HttpError;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
use proptest::prelude::*;

use super::*;

/// What `opentelemetry-otlp` sends for `batch`: the `opentelemetry-proto` conversion,
/// encoded by `prost`.
fn reference(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let resource = ResourceAttributesWithSchema::from(resource);
    ExportTraceServiceRequest {
        resource_spans: group_spans_by_resource_and_scope(batch.to_vec(), &resource),
    }
    .encode_to_vec()
}

fn ours(batch: &[SpanData], resource: &Resource) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::new(resource).encode(batch, &mut out);
    out
}

fn context(trace: u128, span: u64, flags: u8, state: &str, remote: bool) -> SpanContext {
    SpanContext::new(
        TraceId::from(trace),
        SpanId::from(span),
        TraceFlags::new(flags),
        remote,
        state.parse::<TraceState>().expect("a valid trace state"),
    )
}

fn at(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
    SpanData {
        span_context: context(
            0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736,
            0x00f0_67aa_0ba9_02b7,
            1,
            "",
            false,
        ),
        parent_span_id: SpanId::INVALID,
        parent_span_is_remote: false,
        span_kind: SpanKind::Server,
        name: Cow::Borrowed(name),
        start_time: at(1_700_000_000_000_000_000),
        end_time: at(1_700_000_000_000_250_000),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.response.status_code", 200_i64),
        ],
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status: Status::Unset,
        instrumentation_scope: scope.clone(),
    }
}

fn events(list: Vec<Event>, dropped: u32) -> SpanEvents {
    let mut events = SpanEvents::default();
    events.events = list;
    events.dropped_count = dropped;
    events
}

fn links(list: Vec<Link>, dropped: u32) -> SpanLinks {
    let mut links = SpanLinks::default();
    links.links = list;
    links.dropped_count = dropped;
    links
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", "checkout"),
            KeyValue::new("service.instance.id", 7_i64),
        ])
        .build()
}

fn every_kind_of_value() -> Vec<KeyValue> {
    vec![
        KeyValue::new("bool.true", true),
        KeyValue::new("bool.false", false),
        KeyValue::new("int.zero", 0_i64),
        KeyValue::new("int.negative", -1_i64),
        KeyValue::new("int.max", i64::MAX),
        KeyValue::new("float", 1.5_f64),
        KeyValue::new("float.zero", 0.0_f64),
        KeyValue::new("float.nan", f64::NAN),
        KeyValue::new("string.empty", ""),
        KeyValue::new("string.unicode", "héllo ✓"),
        KeyValue::new("string.long", "x".repeat(300)),
        KeyValue::new("", "an empty key"),
        KeyValue::new("array.bool", Value::Array(Array::Bool(vec![true, false]))),
        KeyValue::new("array.int", Value::Array(Array::I64(vec![0, -5, 1 << 40]))),
        KeyValue::new("array.float", Value::Array(Array::F64(vec![0.0, -2.25]))),
        KeyValue::new(
            "array.string",
            Value::Array(Array::String(vec![
                StringValue::from(""),
                StringValue::from("b"),
            ])),
        ),
        KeyValue::new("array.empty", Value::Array(Array::I64(vec![]))),
    ]
}

#[test]
fn the_bytes_are_those_of_opentelemetry_otlp() {
    let scope = InstrumentationScope::builder("tower-trace")
        .with_version("0.1.0")
        .with_schema_url("https://opentelemetry.io/schemas/1.37.0")
        .with_attributes([KeyValue::new("scope.attr", 1_i64)])
        .build();
    let other_scope = InstrumentationScope::builder("").build();

    let plain = span("GET /", &scope);

    let mut full = span("POST /orders/{id}", &scope);
    full.span_context = context(u128::MAX, u64::MAX, 0, "vendor=value,other=x", true);
    full.parent_span_id = SpanId::from(42);
    full.parent_span_is_remote = true;
    full.span_kind = SpanKind::Client;
    full.attributes = every_kind_of_value();
    full.dropped_attributes_count = 3;
    full.events = events(
        vec![
            Event::new("message", at(5), every_kind_of_value(), 2),
            Event::new("", UNIX_EPOCH, vec![], 0),
        ],
        4,
    );
    full.links = links(
        vec![
            Link::new(context(9, 10, 1, "k=v", true), every_kind_of_value(), 1),
            Link::new(context(11, 12, 0, "", false), vec![], 0),
        ],
        300,
    );
    full.status = Status::error("boom ✗");

    let mut ok = span("", &other_scope);
    ok.status = Status::Ok;
    ok.span_kind = SpanKind::Internal;
    ok.start_time = UNIX_EPOCH - Duration::from_secs(1);
    ok.end_time = UNIX_EPOCH;
    ok.attributes = vec![];

    let mut producer = span("send", &scope);
    producer.span_kind = SpanKind::Producer;
    producer.status = Status::error("");
    let mut consumer = span("receive", &other_scope);
    consumer.span_kind = SpanKind::Consumer;

    let resource = resource();
    // Spans of two scopes, interleaved: each scope's spans are grouped in their order.
    let batch = vec![plain, ok, full, producer, consumer.clone(), consumer];
    assert_eq!(ours(&batch, &resource), reference(&batch, &resource));
    // The same with the default resource (its schema URL unset) and with no span at all.
    let default = Resource::builder().build();
    assert_eq!(ours(&batch, &default), reference(&batch, &default));
    assert_eq!(ours(&[], &resource), reference(&[], &resource));
    let with_schema = Resource::builder_empty()
        .with_schema_url([KeyValue::new("a", "b")], "https://example.com/schema")
        .build();
    assert_eq!(ours(&batch, &with_schema), reference(&batch, &with_schema));
}

#[test]
fn messages_of_every_length_are_framed_as_prost_frames_them() {
    // Span lengths around the sizes of their length's varint (one byte below 128, two below
    // 16,384, three below 2 MiB, four above), and lists of spans crossing the same sizes: the
    // room left for a length is too much, right or too little. One encoder carries its size
    // estimate from batch to batch (small, large, huge, then small again).
    let scope = InstrumentationScope::builder("s").build();
    // One resource: its attributes come in its map's order.
    let resource = resource();
    let encoder = Encoder::new(&resource);
    let mut previous = 0;
    for len in (0..200)
        .chain(16_200..16_500)
        .chain((2_097_000..2_097_110).step_by(5))
        .chain(0..8)
    {
        let name: &'static str = Box::leak("n".repeat(len).into_boxed_str());
        let mut tiny = span(name, &scope);
        tiny.attributes.clear();
        let batch = vec![tiny.clone(), span(name, &scope), tiny];
        let mut out = vec![0xaa; previous % 3];
        let kept = out.len();
        encoder.encode(&batch, &mut out);
        assert_eq!(
            out[..kept],
            vec![0xaa; kept][..],
            "{len}: what was there is kept"
        );
        assert_eq!(out[kept..], reference(&batch, &resource)[..], "{len}");
        previous = len;
    }
    // After a huge span, a batch of many small ones is not given room for as many huge ones.
    let huge: &'static str = Box::leak("n".repeat(4 << 20).into_boxed_str());
    encoder.encode(&[span(huge, &scope)], &mut Vec::new());
    let mut out = Vec::new();
    encoder.encode(&vec![span("GET /", &scope); 512], &mut out);
    assert!(out.capacity() <= 512 * 5 * 1024, "{}", out.capacity());
}

#[test]
fn attributes_of_every_length_are_encoded_as_prost_encodes_them() {
    // Keys and values around the lengths where an attribute's framing stops fitting in one
    // byte per length (and the empty key, which is left out), integers of every varint length.
    let scope = InstrumentationScope::builder("s").build();
    let resource = resource();
    let text = |len: usize| -> &'static str { Box::leak("v".repeat(len).into_boxed_str()) };
    let lengths = [
        0, 1, 2, 21, 60, 98, 99, 100, 101, 119, 120, 121, 122, 123, 130, 200,
    ];
    let mut attributes = Vec::new();
    for &k in &lengths {
        for &v in &lengths {
            attributes.push(KeyValue::new(text(k), text(v)));
        }
        for i in [0, 1, 127, 128, 16_384, -1, i64::MIN, i64::MAX] {
            attributes.push(KeyValue::new(text(k), i));
        }
    }
    let mut with_attributes = span("GET /", &scope);
    with_attributes.attributes = attributes;
    let batch = vec![with_attributes];
    assert_eq!(ours(&batch, &resource), reference(&batch, &resource));
}

#[test]
fn the_receiver_reads_what_was_sent() {
    let scope = InstrumentationScope::builder("s").build();
    let batch = vec![span("GET /", &scope), span("GET /health", &scope)];
    let request = ExportTraceServiceRequest::decode(&ours(&batch, &resource())[..])
        .expect("a valid ExportTraceServiceRequest");
    let spans = &request.resource_spans[0].scope_spans[0].spans;
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[1].name, "GET /health");
    assert_eq!(spans[0].attributes[0].key, "http.request.method");
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::I64),
        any::<f64>().prop_map(Value::F64),
        ".{0,40}".prop_map(|s| Value::String(s.into())),
        prop::collection::vec(any::<i64>(), 0..4).prop_map(|v| Value::Array(Array::I64(v))),
        prop::collection::vec(".{0,8}", 0..4).prop_map(|v| {
            Value::Array(Array::String(
                v.into_iter().map(StringValue::from).collect(),
            ))
        }),
    ]
}

fn arb_attributes() -> impl Strategy<Value = Vec<KeyValue>> {
    prop::collection::vec(
        ("[a-z.]{0,20}", arb_value()).prop_map(|(k, v)| KeyValue::new(k, v)),
        0..6,
    )
}

fn arb_span() -> impl Strategy<Value = SpanData> {
    (
        (
            any::<u128>(),
            any::<u64>(),
            any::<u64>(),
            any::<u8>(),
            any::<bool>(),
        ),
        ("[ -~]{0,30}", 0..5usize, any::<u64>(), any::<u64>()),
        (arb_attributes(), any::<u32>(), 0..3usize),
        prop::collection::vec(
            ("[a-z]{0,10}", any::<u64>(), arb_attributes(), any::<u32>()),
            0..3,
        ),
        prop::collection::vec(
            (any::<u128>(), any::<u64>(), arb_attributes(), any::<u32>()),
            0..2,
        ),
        (any::<u32>(), any::<u32>(), 0..3usize),
    )
        .prop_map(|(ids, named, attrs, events, links, rest)| {
            let scopes = [
                InstrumentationScope::builder("a").with_version("1").build(),
                InstrumentationScope::builder("b").build(),
                InstrumentationScope::builder("c")
                    .with_schema_url("u")
                    .build(),
            ];
            let kinds = [
                SpanKind::Internal,
                SpanKind::Server,
                SpanKind::Client,
                SpanKind::Producer,
                SpanKind::Consumer,
            ];
            let mut s = span("", &scopes[attrs.2]);
            s.span_context = context(ids.0, ids.1, ids.3, "", ids.4);
            s.parent_span_id = SpanId::from(ids.2);
            s.parent_span_is_remote = ids.4;
            s.name = Cow::Owned(named.0);
            s.span_kind = kinds[named.1].clone();
            s.start_time = at(named.2);
            s.end_time = at(named.3);
            s.attributes = attrs.0;
            s.dropped_attributes_count = attrs.1;
            s.events = self::events(
                events
                    .into_iter()
                    .map(|(n, t, a, d)| Event::new(n, at(t), a, d))
                    .collect(),
                rest.0,
            );
            s.links = self::links(
                links
                    .into_iter()
                    .map(|(t, i, a, d)| Link::new(context(t, i, 1, "", true), a, d))
                    .collect(),
                rest.1,
            );
            s.status = match rest.2 {
                0 => Status::Unset,
                1 => Status::Ok,
                _ => Status::error("failed"),
            };
            s
        })
}

proptest! {
    #[test]
    fn any_batch_is_encoded_as_opentelemetry_otlp_encodes_it(
        batch in prop::collection::vec(arb_span(), 0..6),
    ) {
        let resource = resource();
        prop_assert_eq!(ours(&batch, &resource), reference(&batch, &resource));
    }
}

// --- The exporter, over a scripted HTTP client ---

/// One scripted answer.
#[derive(Debug)]
enum Reply {
    Status(u16, Option<&'static str>),
    NetworkError,
    TooLarge,
    Hang,
}

/// An `HttpClient` that answers from a script (then `200`) and keeps the requests.
#[derive(Clone, Debug, Default)]
struct Scripted {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Request<Bytes>>>>,
}

impl Scripted {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Self {
        let s = Scripted::default();
        s.replies.lock().unwrap().extend(replies);
        s
    }

    fn requests(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl HttpClient for Scripted {
    fn send_bytes<'a, 'b>(
        &'a self,
        request: Request<Bytes>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Response<Bytes>, HttpError>> + Send + 'b>,
    >
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(async move {
            self.requests.lock().unwrap().push(request);
            let next = self.replies.lock().unwrap().pop_front();
            let (code, retry_after) = match next.unwrap_or(Reply::Status(200, None)) {
                Reply::Status(code, retry_after) => (code, retry_after),
                Reply::NetworkError => return Err("connection refused".into()),
                Reply::TooLarge => {
                    let error: HttpError =
                        Box::new(opentelemetry_http::ResponseBodyTooLarge::new());
                    return Err(error);
                }
                Reply::Hang => std::future::pending().await,
            };
            let mut response = Response::builder().status(code);
            if let Some(after) = retry_after {
                response = response.header(RETRY_AFTER, after);
            }
            Ok(response.body(Bytes::new())?)
        })
    }
}

fn exporter(client: &Scripted) -> OtlpHttpExporterBuilder {
    OtlpHttpExporter::builder("http://127.0.0.1:4318/v1/traces").with_http_client(client.clone())
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn one_span() -> Vec<SpanData> {
    vec![span("GET /", &InstrumentationScope::builder("s").build())]
}

#[tokio::test]
async fn a_batch_is_posted_as_protobuf_with_the_headers() {
    let client = Scripted::default();
    let mut exporter = exporter(&client)
        .with_header("x-tenant", "blue")
        .build_with(|v| {
            (v == "OTEL_EXPORTER_OTLP_HEADERS").then(|| "api-key=a%20b,x-tenant=red".into())
        })
        .expect("exporter");
    // The resource's attributes come in its map's order: the same resource for both.
    let resource = resource();
    exporter.set_resource(&resource);
    exporter.export(one_span()).await.expect("exported");

    let requests = client.requests.lock().unwrap();
    let request = &requests[0];
    assert_eq!(request.method(), Method::POST);
    assert_eq!(request.uri(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(request.headers()[CONTENT_TYPE], "application/x-protobuf");
    assert_eq!(request.headers()["api-key"], "a b");
    assert_eq!(
        request.headers()["x-tenant"],
        "blue",
        "the builder's header wins"
    );
    assert!(request.headers().get(CONTENT_ENCODING).is_none());
    assert_eq!(request.body()[..], reference(&one_span(), &resource)[..]);
}

#[tokio::test]
async fn gzip_bodies_decompress_to_the_request() {
    let client = Scripted::default();
    let exporter = exporter(&client)
        .build_with(|v| (v == "OTEL_EXPORTER_OTLP_COMPRESSION").then(|| "gzip".into()))
        .expect("exporter");
    exporter.export(one_span()).await.expect("exported");
    let requests = client.requests.lock().unwrap();
    assert_eq!(requests[0].headers()[CONTENT_ENCODING], "gzip");
    let mut body = Vec::new();
    flate2::read::GzDecoder::new(&requests[0].body()[..])
        .read_to_end(&mut body)
        .expect("gzip");
    assert_eq!(
        body,
        reference(&one_span(), &Resource::builder_empty().build())
    );
}

#[tokio::test(start_paused = true)]
async fn retryable_failures_are_retried_with_backoff() {
    let client = Scripted::new([
        Reply::Status(503, None),
        Reply::NetworkError,
        Reply::Status(429, Some("2")),
        Reply::Status(200, None),
    ]);
    let exporter = exporter(&client).build_with(no_env).expect("exporter");
    let start = tokio::time::Instant::now();
    exporter
        .export(one_span())
        .await
        .expect("exported on the fourth attempt");
    assert_eq!(client.requests(), 4);
    // 100 ms and 200 ms of backoff (plus jitter), then the 2 s the receiver asked for.
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(2300), "{waited:?}");
    assert!(waited <= Duration::from_millis(2500), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_three() {
    let client = Scripted::new((0..10).map(|_| Reply::Status(502, None)));
    let exporter = exporter(&client).build_with(no_env).expect("exporter");
    let error = exporter.export(one_span()).await.expect_err("fails");
    assert_eq!(client.requests(), 4);
    assert!(error.to_string().contains("HTTP 502"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn a_retry_later_than_any_clock_neither_panics_nor_waits() {
    let client = Scripted::new([Reply::Status(503, Some("18446744073709551615"))]);
    let asks_forever = exporter(&client).build_with(no_env).expect("exporter");
    let error = asks_forever.export(one_span()).await.expect_err("gives up");
    assert!(
        error.to_string().contains("no time left to retry"),
        "{error}"
    );

    // And a timeout too large to add to the clock.
    let client = Scripted::new([Reply::Status(503, None)]);
    let unbounded = exporter(&client)
        .with_timeout(Duration::MAX)
        .build_with(no_env)
        .expect("exporter");
    unbounded
        .export(one_span())
        .await
        .expect("exported on retry");
    assert_eq!(client.requests(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_reply_too_large_to_read_is_not_sent_again() {
    // The receiver took the batch: sending it again would duplicate its spans.
    let client = Scripted::new([Reply::TooLarge]);
    let exporter = exporter(&client).build_with(no_env).expect("exporter");
    exporter.export(one_span()).await.expect_err("fails");
    assert_eq!(client.requests(), 1);
}

#[tokio::test(start_paused = true)]
async fn other_statuses_are_not_retried() {
    for code in [400, 401, 404, 413, 500] {
        let client = Scripted::new([Reply::Status(code, None)]);
        let exporter = exporter(&client).build_with(no_env).expect("exporter");
        exporter.export(one_span()).await.expect_err("fails");
        assert_eq!(client.requests(), 1, "HTTP {code}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_batch_takes_at_most_the_timeout() {
    // A receiver that never answers...
    let client = Scripted::new([Reply::Hang]);
    let hanging = exporter(&client)
        .build_with(|v| (v == "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT").then(|| "1500".into()))
        .expect("exporter");
    let start = tokio::time::Instant::now();
    let error = hanging.export(one_span()).await.expect_err("times out");
    assert!(matches!(error, OTelSdkError::Timeout(t) if t == Duration::from_millis(1500)));
    assert_eq!(start.elapsed(), Duration::from_millis(1500));

    // ... and one that asks for a retry later than the timeout allows.
    let client = Scripted::new([Reply::Status(503, Some("60"))]);
    let asks_later = exporter(&client)
        .with_timeout(Duration::from_secs(5))
        .build_with(no_env)
        .expect("exporter");
    let error = asks_later.export(one_span()).await.expect_err("gives up");
    assert!(
        error.to_string().contains("no time left to retry"),
        "{error}"
    );
    assert_eq!(client.requests(), 1);
}

#[tokio::test]
async fn nothing_is_sent_after_shutdown() {
    let client = Scripted::default();
    let exporter = exporter(&client).build_with(no_env).expect("exporter");
    exporter.shutdown().expect("shut down");
    assert!(matches!(
        exporter.export(one_span()).await,
        Err(OTelSdkError::AlreadyShutdown)
    ));
    assert_eq!(client.requests(), 0);
    assert!(matches!(
        exporter.shutdown(),
        Err(OTelSdkError::AlreadyShutdown)
    ));
}

#[test]
fn bad_settings_are_errors_that_name_them() {
    let client = Scripted::default();
    let cases: [(&str, &str, &str); 6] = [
        ("OTEL_EXPORTER_OTLP_HEADERS", "novalue", "not key=value"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "a=1, =2",
            "entry 2 has an empty key",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "bad name=x",
            "not a header name",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "k=%0a", "not a header value"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "gzip or none"),
    ];
    for (variable, value, reason) in cases {
        let error = exporter(&client)
            .build_with(|v| (v == variable).then(|| value.to_owned()))
            .expect_err(variable);
        let text = error.0.to_string();
        assert!(text.contains(variable) && text.contains(reason), "{text}");
    }
    let error = OtlpHttpExporter::builder("localhost:4318")
        .build_with(no_env)
        .expect_err("no scheme");
    assert!(error.0.to_string().contains("http://"), "{}", error.0);
    // Credentials stay out of errors...
    for list in [
        "authorization=Bearer secret,oops",
        "authorization=Bearer%0asecret",
        "bad name=secret",
    ] {
        let error = exporter(&client)
            .build_with(|v| (v == "OTEL_EXPORTER_OTLP_HEADERS").then(|| list.to_owned()))
            .expect_err(list);
        assert!(!error.0.to_string().contains("secret"), "{}", error.0);
    }
    let error = exporter(&client)
        .with_header("authorization", "Bearer secret\n")
        .build_with(no_env)
        .expect_err("a newline");
    assert!(!error.0.to_string().contains("secret"), "{}", error.0);
    // ... and out of the debug output.
    let with_secret = exporter(&client)
        .with_header("authorization", "Bearer secret")
        .build_with(no_env)
        .expect("exporter");
    assert!(!format!("{with_secret:?}").contains("secret"));
}

#[test]
fn header_entries_without_a_value_are_left_out() {
    let client = Scripted::default();
    let e = exporter(&client)
        .build_with(|v| (v == "OTEL_EXPORTER_OTLP_HEADERS").then(|| " a= , ,b = 1".into()))
        .expect("exporter");
    // `b`, and the content type that every request carries.
    assert_eq!(e.headers.len(), 2);
    assert_eq!(e.headers["b"], "1");
    assert_eq!(e.headers[CONTENT_TYPE], "application/x-protobuf");
}

#[test]
fn the_signal_headers_win_over_the_generic_ones() {
    let client = Scripted::default();
    let e = exporter(&client)
        .build_with(|v| match v {
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("k=generic,g=1".to_owned()),
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS" => Some("k=traces,t=2".to_owned()),
            _ => None,
        })
        .expect("exporter");
    assert_eq!(e.headers["k"], "traces");
    assert_eq!(e.headers["g"], "1");
    assert_eq!(e.headers["t"], "2");
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_capped_and_an_http_date_falls_back_to_the_backoff() {
    // A day asked for: ten minutes waited, within a timeout of an hour.
    let client = Scripted::new([Reply::Status(503, Some("86400"))]);
    let patient = exporter(&client)
        .with_timeout(Duration::from_secs(3600))
        .build_with(no_env)
        .expect("exporter");
    let start = tokio::time::Instant::now();
    patient.export(one_span()).await.expect("exported on retry");
    assert_eq!(start.elapsed(), Duration::from_secs(MAX_RETRY_AFTER_SECS));

    // A date is not read: the first backoff (100 ms and up to 100 ms of jitter) applies.
    let client = Scripted::new([Reply::Status(503, Some("Wed, 21 Oct 2015 07:28:00 GMT"))]);
    let dated = exporter(&client).build_with(no_env).expect("exporter");
    let start = tokio::time::Instant::now();
    dated.export(one_span()).await.expect("exported on retry");
    let waited = start.elapsed();
    assert!(
        (Duration::from_millis(100)..=Duration::from_millis(200)).contains(&waited),
        "{waited:?}"
    );
}

#[test]
fn a_partial_success_is_read_from_the_response() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTracePartialSuccess;
    let response = |rejected_spans, error_message: &str| {
        ExportTraceServiceResponse {
            partial_success: Some(ExportTracePartialSuccess {
                rejected_spans,
                error_message: error_message.to_owned(),
            }),
        }
        .encode_to_vec()
    };
    assert_eq!(
        partial_success(&response(3, "too old")).expect("decoded"),
        Some((3, "too old".to_owned()))
    );
    assert_eq!(
        partial_success(&response(0, "a warning")).expect("decoded"),
        Some((0, "a warning".to_owned()))
    );
    // Nothing rejected and nothing said, or an empty body: a full success.
    assert_eq!(partial_success(&response(0, "")).expect("decoded"), None);
    assert_eq!(partial_success(&[]).expect("decoded"), None);
    assert!(partial_success(&[0xff, 0xff, 0xff]).is_err());
}

#[test]
fn settings_come_from_the_builder_then_the_signal_variable_then_the_generic_one() {
    let client = Scripted::default();
    let env = |v: &str| match v {
        "OTEL_EXPORTER_OTLP_TIMEOUT" => Some("1000".to_owned()),
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT" => Some("2000".to_owned()),
        "OTEL_EXPORTER_OTLP_COMPRESSION" => Some("gzip".to_owned()),
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION" => Some("none".to_owned()),
        _ => None,
    };
    let e = exporter(&client).build_with(env).expect("exporter");
    assert_eq!(
        (e.timeout, e.compression),
        (Duration::from_millis(2000), None)
    );
    let e = exporter(&client)
        .with_timeout(Duration::from_millis(3))
        .with_compression(Some(Compression::Gzip))
        .build_with(env)
        .expect("exporter");
    assert_eq!(
        (e.timeout, e.compression),
        (Duration::from_millis(3), Some(Compression::Gzip))
    );
    // The builder's `None` (no compression) over the environment's `gzip`.
    let generic_gzip = |v: &str| (v == "OTEL_EXPORTER_OTLP_COMPRESSION").then(|| "gzip".to_owned());
    let e = exporter(&client)
        .build_with(generic_gzip)
        .expect("exporter");
    assert_eq!(e.compression, Some(Compression::Gzip));
    let e = exporter(&client)
        .with_compression(None)
        .build_with(generic_gzip)
        .expect("exporter");
    assert_eq!(e.compression, None);
    let e = exporter(&client).build_with(no_env).expect("exporter");
    assert_eq!((e.timeout, e.compression), (DEFAULT_TIMEOUT, None));
}
