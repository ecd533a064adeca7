//! Per-request cost of the tracing layers over no layer, in one run: our HTTP and gRPC, server
//! and client layers (sampled and unsampled), and their peers; and ours serving a request then
//! calling out, on one thread. An in-process tower stack: no network, the inner service
//! answers at once, the caller sends a W3C `traceparent`, spans go through a batch processor to
//! a no-op exporter.
//!
//! `cargo bench -p benches --bench overhead` (see `BENCHMARKS.md`). After criterion's report it
//! prints a table: median, cost over no layer, allocations per request, ratios to the peers.

mod common;

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use benches::{Allocs, CountingAllocator, count_this_thread};
use bytes::Bytes;
use criterion::Criterion;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body::Body;
use http_body_util::{Empty, Full};
use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer, TracerProvider,
};
use opentelemetry::{Context, KeyValue, global};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tower::{Layer, Service};
use tracing_core_lite::propagation::{HeaderExtractor, HeaderInjector};
use tracing_core_lite::{PipelineGuard, Propagators};

use common::{
    GRPC_MESSAGE, GrpcBody, NoopExporter, TRACEPARENT_SAMPLED, TRACEPARENT_UNSAMPLED, block_on,
    drain,
};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Requests per variant for the allocation count.
const ALLOC_REQUESTS: u64 = 20_000;

const ROUTE: &str = "/orders/{id}";
/// A route without parameters (the `ours_fixed_route_sampled` variant).
const FIXED_ROUTE: &str = "/orders/recent";
const PEER: ([u8; 4], u16) = ([10, 1, 2, 3], 50_123);

fn peer() -> SocketAddr {
    SocketAddr::from(PEER)
}

// ---------------------------------------------------------------------------------------------
// The inner services: they answer at once.

/// An HTTP service that answers `200 OK` with a two-byte body.
#[derive(Clone, Copy)]
struct Ok200;

impl<B> Service<Request<B>> for Ok200 {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

/// A gRPC service (or channel) that reads the request's messages, then answers one message
/// and `grpc-status: 0` in the trailers.
#[derive(Clone, Copy)]
struct GrpcOk;

struct ReadThenAnswer<B> {
    body: B,
}

impl<B: Body + Unpin> Future for ReadThenAnswer<B>
where
    B::Error: std::fmt::Debug,
{
    type Output = Result<Response<GrpcBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        while let Some(frame) = std::task::ready!(Pin::new(&mut self.body).poll_frame(cx)) {
            std::hint::black_box(frame.expect("request frame"));
        }
        let mut res = Response::new(GrpcBody::ok(Bytes::from_static(GRPC_MESSAGE)));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        Poll::Ready(Ok(res))
    }
}

impl Service<Request<tonic::body::Body>> for GrpcOk {
    type Response = Response<GrpcBody>;
    type Error = Infallible;
    type Future = ReadThenAnswer<tonic::body::Body>;

    fn poll_ready(&mut self, _cx: &mut TaskContext<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<tonic::body::Body>) -> Self::Future {
        ReadThenAnswer {
            body: req.into_body(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The requests.

/// An HTTP request as a server sees it: route `/orders/{id}`, `Host`, `User-Agent`, the
/// caller's `traceparent`, the peer address.
fn http_server_request(traceparent: &'static str) -> Request<Empty<Bytes>> {
    http_server_request_at("/orders/42", traceparent)
}

/// [`http_server_request`] for `path`.
fn http_server_request_at(path: &'static str, traceparent: &'static str) -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = Uri::from_static(path);
    *req.version_mut() = Version::HTTP_11;
    let headers = req.headers_mut();
    headers.insert(HOST, HeaderValue::from_static("shop.example:8080"));
    headers.insert(USER_AGENT, HeaderValue::from_static("bench-client/1.0"));
    headers.insert("traceparent", HeaderValue::from_static(traceparent));
    req.extensions_mut().insert(peer());
    req
}

/// An HTTP request as a client sends it.
fn http_client_request() -> Request<Empty<Bytes>> {
    let mut req = Request::new(Empty::new());
    *req.uri_mut() = Uri::from_static("http://inventory.internal:8080/v1/items?id=7");
    req
}

/// A unary gRPC call as a server sees it.
fn grpc_server_request(traceparent: &'static str) -> Request<tonic::body::Body> {
    let mut req = Request::new(tonic::body::Body::new(Full::new(Bytes::from_static(
        GRPC_MESSAGE,
    ))));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = Uri::from_static("http://orders.internal:50051/helloworld.Greeter/SayHello");
    *req.version_mut() = Version::HTTP_2;
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    headers.insert(USER_AGENT, HeaderValue::from_static("grpc-rust/0.14"));
    headers.insert("traceparent", HeaderValue::from_static(traceparent));
    req.extensions_mut()
        .insert(tonic::transport::server::TcpConnectInfo {
            local_addr: None,
            remote_addr: Some(peer()),
        });
    req
}

/// A unary gRPC call as a generated client sends it into the channel.
fn grpc_client_request() -> Request<tonic::body::Body> {
    grpc_client_request_to(
        "/helloworld.Greeter/SayHello",
        tonic::GrpcMethod::new("helloworld.Greeter", "SayHello"),
    )
}

/// A unary gRPC call to the method at `path` (named `method`), as a generated client sends it
/// into the channel.
fn grpc_client_request_to(
    path: &'static str,
    method: tonic::GrpcMethod<'static>,
) -> Request<tonic::body::Body> {
    let mut req = Request::new(tonic::body::Body::new(Full::new(Bytes::from_static(
        GRPC_MESSAGE,
    ))));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = Uri::from_static(path);
    let headers = req.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.insert("te", HeaderValue::from_static("trailers"));
    req.extensions_mut().insert(method);
    req
}

/// A unary gRPC call to another service's method, as a generated client sends it into the
/// channel: what a service calls out with while it serves `helloworld.Greeter/SayHello`.
fn grpc_call_out_request() -> Request<tonic::body::Body> {
    grpc_client_request_to(
        "/inventory.Stock/Reserve",
        tonic::GrpcMethod::new("inventory.Stock", "Reserve"),
    )
}

/// One request through `svc`, the response body read to its end.
fn call<S, Req, B>(svc: &mut S, req: Req)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    block_on(async {
        std::future::poll_fn(|cx| svc.poll_ready(cx))
            .await
            .expect("ready");
        let res = svc.call(req).await.expect("response");
        drain(res.into_body()).await;
    });
}

/// [`call`] with `parent` as the current context.
fn call_under<S, Req, B>(parent: &Context, svc: &mut S, req: Req)
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: Body,
    B::Error: std::fmt::Debug,
{
    let _parent = parent.clone().attach();
    call(svc, req);
}

/// A parent context for the client benchmarks (the span of the request being served).
fn client_parent(sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::NOT_SAMPLED
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        flags,
        true,
        TraceState::NONE,
    ))
}

// ---------------------------------------------------------------------------------------------
// The direct SDK layers: what one writes by hand on the opentelemetry API and SDK.

/// A hand-written HTTP server layer on the opentelemetry API and SDK: the same attributes as
/// ours, the span ended when the response head is ready.
#[derive(Clone)]
struct SdkServer<S> {
    inner: S,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

#[pin_project::pin_project]
struct SdkFuture<F> {
    #[pin]
    inner: F,
    cx: Context,
    client: bool,
}

impl<F, B, E> Future for SdkFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = {
            let _current = this.cx.clone().attach();
            std::task::ready!(this.inner.poll(task))
        };
        let span = this.cx.span();
        if let Ok(res) = &result {
            let code = res.status().as_u16();
            span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
            if code >= 500 || (*this.client && code >= 400) {
                span.set_attribute(KeyValue::new("error.type", code.to_string()));
                span.set_status(Status::error(""));
            }
        }
        span.end();
        Poll::Ready(result)
    }
}

impl<S, B, ResB> Service<Request<B>> for SdkServer<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SdkFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let parent = self.propagator.extract(&HeaderExtractor(req.headers()));
        let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
        let mut attrs = Vec::with_capacity(14);
        attrs.push(KeyValue::new(
            "http.request.method",
            req.method().to_string(),
        ));
        attrs.push(KeyValue::new("url.path", req.uri().path().to_owned()));
        if let Some(q) = req.uri().query() {
            attrs.push(KeyValue::new("url.query", q.to_owned()));
        }
        attrs.push(KeyValue::new("url.scheme", "http"));
        if let Some((host, port)) = header(HOST).and_then(|h| h.rsplit_once(':')) {
            attrs.push(KeyValue::new("server.address", host.to_owned()));
            attrs.push(KeyValue::new(
                "server.port",
                port.parse::<i64>().unwrap_or_default(),
            ));
        }
        if let Some(peer) = req.extensions().get::<SocketAddr>() {
            attrs.push(KeyValue::new("client.address", peer.ip().to_string()));
            attrs.push(KeyValue::new("network.peer.address", peer.ip().to_string()));
            attrs.push(KeyValue::new("network.peer.port", i64::from(peer.port())));
        }
        attrs.push(KeyValue::new("network.protocol.version", "1.1"));
        if let Some(ua) = header(USER_AGENT) {
            attrs.push(KeyValue::new("user_agent.original", ua.to_owned()));
        }
        attrs.push(KeyValue::new("http.route", ROUTE));
        let span = self
            .tracer
            .span_builder(format!("{} {ROUTE}", req.method()))
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        let inner = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        SdkFuture {
            inner,
            cx,
            client: false,
        }
    }
}

/// A hand-written HTTP client layer on the opentelemetry API and SDK: span and inject.
#[derive(Clone)]
struct SdkClient<S> {
    inner: S,
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
}

impl<S, B, ResB> Service<Request<B>> for SdkClient<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = SdkFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let parent = Context::current();
        let uri = req.uri();
        let mut attrs = Vec::with_capacity(4);
        attrs.push(KeyValue::new(
            "http.request.method",
            req.method().to_string(),
        ));
        attrs.push(KeyValue::new("url.full", uri.to_string()));
        if let Some(host) = uri.host() {
            attrs.push(KeyValue::new("server.address", host.to_owned()));
        }
        if let Some(port) = uri.port_u16() {
            attrs.push(KeyValue::new("server.port", i64::from(port)));
        }
        let span = self
            .tracer
            .span_builder(req.method().to_string())
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        let cx = parent.with_span(span);
        self.propagator
            .inject_context(&cx, &mut HeaderInjector(req.headers_mut()));
        let inner = {
            let _current = cx.clone().attach();
            self.inner.call(req)
        };
        SdkFuture {
            inner,
            cx,
            client: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// tower-http's TraceLayer with tracing-opentelemetry, configured for the same attributes.

fn tower_http_span<B>(req: &Request<B>) -> tracing::Span {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(req.headers())));
    let host = req
        .headers()
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (address, port) = host.rsplit_once(':').unwrap_or((host, "80"));
    let peer = req
        .extensions()
        .get::<SocketAddr>()
        .copied()
        .unwrap_or(peer());
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %format_args!("{} {}", req.method(), ROUTE),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = req.uri().path(),
        url.query = req.uri().query(),
        url.scheme = "http",
        server.address = address,
        server.port = port.parse::<i64>().unwrap_or_default(),
        client.address = %peer.ip(),
        network.peer.address = %peer.ip(),
        network.peer.port = i64::from(peer.port()),
        network.protocol.version = "1.1",
        user_agent.original = req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()),
        http.route = ROUTE,
        http.response.status_code = tracing::field::Empty,
    );
    let _ = span.set_parent(parent);
    span
}

fn tracing_subscriber_for(provider: &SdkTracerProvider) -> impl tracing::Subscriber + Send + Sync {
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("tracing-opentelemetry")))
}

// ---------------------------------------------------------------------------------------------
// The harness: criterion for the time, the counting allocator for the allocations.

struct Row {
    group: &'static str,
    name: &'static str,
    /// Allocations per request on the request thread.
    allocs: f64,
    /// Allocations per request on every thread (the export threads included).
    allocs_all: f64,
    /// Spans that did not reach the exporter during the allocation count.
    lost: i64,
}

struct Bench<'a> {
    c: &'a mut Criterion,
    filter: Option<String>,
    /// `OVERHEAD_PROFILE=group/variant[:requests]`: run only that variant, without criterion,
    /// for a profiler (`valgrind --tool=callgrind`, `perf record`).
    profile: Option<(String, u64)>,
    rows: Vec<Row>,
}

/// Requests between two flushes in `OVERHEAD_PROFILE` mode (fewer than the queue holds).
const PROFILE_FLUSH_EVERY: u64 = 256;

/// Exports what the variant's provider holds, if it has one.
fn flush(exporter: Option<(&NoopExporter, &SdkTracerProvider)>) {
    if let Some((_, provider)) = exporter {
        provider.force_flush().expect("flush");
    }
}

/// Which global propagator a variant runs under: ours (what `Pipeline::install` sets) or the
/// SDK's W3C + baggage composite (what the peers' users set).
#[derive(Clone, Copy)]
enum Global {
    Ours,
    Sdk,
}

/// Our propagators, installed globally as `Pipeline::install` does.
static OUR_PROPAGATORS: std::sync::OnceLock<Propagators> = std::sync::OnceLock::new();

fn set_global_propagator(which: Global) {
    match which {
        Global::Ours => match OUR_PROPAGATORS.get() {
            Some(ours) => global::set_text_map_propagator(ours.clone()),
            None => OUR_PROPAGATORS
                .get_or_init(Propagators::default)
                .install_global(),
        },
        Global::Sdk => global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])),
    }
}

impl Bench<'_> {
    /// Measures `one_request` (time with criterion, then allocations) under `propagator`;
    /// `exporter` counts the spans that reached the variant's exporter (one per request).
    fn run(
        &mut self,
        group: &'static str,
        name: &'static str,
        propagator: Global,
        exporter: Option<(&NoopExporter, &SdkTracerProvider)>,
        one_request: impl FnMut(),
    ) {
        self.run_spans(group, name, propagator, exporter, 1, one_request);
    }

    /// [`run`](Self::run) of a variant whose `one_request` makes `spans` spans.
    fn run_spans(
        &mut self,
        group: &'static str,
        name: &'static str,
        propagator: Global,
        exporter: Option<(&NoopExporter, &SdkTracerProvider)>,
        spans: u64,
        mut one_request: impl FnMut(),
    ) {
        let id = format!("{group}/{name}");
        if let Some((variant, requests)) = &self.profile {
            if *variant == id {
                set_global_propagator(propagator);
                for i in 1..=*requests {
                    one_request();
                    // A profiler runs one thread at a time: without a flush the export
                    // thread would never run, the queue would fill and the rest of the spans
                    // would be dropped on this thread.
                    if i % PROFILE_FLUSH_EVERY == 0 {
                        flush(exporter);
                    }
                }
                flush(exporter);
            }
            return;
        }
        if let Some(f) = &self.filter
            && !id.contains(f.as_str())
        {
            return;
        }
        set_global_propagator(propagator);
        let mut g = self.c.benchmark_group(group);
        g.bench_function(name, |b| b.iter(&mut one_request));
        g.finish();

        // Allocations, and whether every span reached the exporter at this rate.
        for _ in 0..1_000 {
            one_request();
        }
        let flush = || flush(exporter);
        flush();
        let exported_before = exporter.map_or(0, |(e, _)| e.exported.load(Ordering::Relaxed));
        benches::set_counting(true);
        count_this_thread(true);
        let before = Allocs::now();
        for _ in 0..ALLOC_REQUESTS {
            one_request();
        }
        let allocs = Allocs::since(before);
        count_this_thread(false);
        benches::set_counting(false);
        flush();
        let exported =
            exporter.map_or(0, |(e, _)| e.exported.load(Ordering::Relaxed)) - exported_before;
        let n = ALLOC_REQUESTS as f64;
        let expected = ALLOC_REQUESTS * spans;
        let lost = if exporter.is_some() {
            expected as i64 - exported as i64
        } else {
            0
        };
        println!(
            "{id}: {:.2} allocations per request ({:.2} on all threads){}",
            allocs.counted as f64 / n,
            allocs.all as f64 / n,
            if lost != 0 {
                format!(", {lost} of {expected} spans not exported")
            } else {
                String::new()
            }
        );
        self.rows.push(Row {
            group,
            name,
            allocs: allocs.counted as f64 / n,
            allocs_all: allocs.all as f64 / n,
            lost,
        });
    }
}

fn main() {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"));
    let criterion_dir = target.join("criterion");
    let mut criterion = Criterion::default()
        .output_directory(&criterion_dir)
        .without_plots()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    // The positional filter, as criterion reads it (the values of its options are not one).
    let filter = {
        const WITH_VALUE: &[&str] = &[
            "--warm-up-time",
            "--measurement-time",
            "--sample-size",
            "--save-baseline",
            "--baseline",
            "--baseline-lenient",
            "--load-baseline",
            "--profile-time",
            "--noise-threshold",
            "--significance-level",
            "--confidence-level",
            "--nresamples",
            "--color",
            "--output-format",
            "--plotting-backend",
            "--format",
        ];
        let args: Vec<String> = std::env::args().skip(1).collect();
        let mut filter = None;
        let mut i = 0;
        while i < args.len() {
            let arg = &args[i];
            if WITH_VALUE.contains(&arg.as_str()) {
                i += 2;
                continue;
            }
            if !arg.starts_with('-') && !arg.is_empty() {
                filter = Some(arg.clone());
                break;
            }
            i += 1;
        }
        filter
    };
    let profile = std::env::var("OVERHEAD_PROFILE")
        .ok()
        .map(|v| match v.split_once(':') {
            Some((variant, n)) => (variant.to_owned(), n.parse().expect("a request count")),
            None => (v, 100_000),
        });
    let profiling = profile.is_some();
    let mut bench = Bench {
        c: &mut criterion,
        filter,
        profile,
        rows: Vec::new(),
    };

    // Two providers: ours (our BatchProcessor, as `Pipeline` installs it) and the SDK's
    // (its BatchSpanProcessor), each over a no-op exporter that counts what it is given.
    let our_exporter = NoopExporter::default();
    let pipeline = common::our_pipeline(our_exporter.clone());
    let ours = &pipeline;
    let our_provider = pipeline.tracer_provider().clone();
    let sdk_exporter = NoopExporter::default();
    let sdk = common::sdk_provider(sdk_exporter.clone());
    let ours_x = Some((&our_exporter, &our_provider));
    let sdk_x = Some((&sdk_exporter, &sdk));

    http_server(&mut bench, ours, ours_x, &sdk, sdk_x);
    grpc_server(&mut bench, ours, ours_x, &sdk, sdk_x);
    http_client(&mut bench, ours, ours_x, &sdk, sdk_x);
    grpc_client(&mut bench, ours, ours_x, &sdk, sdk_x);
    serve_and_call_out(&mut bench, ours, ours_x);

    if profiling {
        return;
    }
    bench.c.final_summary();
    let rows = std::mem::take(&mut bench.rows);
    summary(&criterion_dir, &rows);
    let _ = pipeline.shutdown();
    let _ = sdk.shutdown();
}

type Exported<'a> = Option<(&'a NoopExporter, &'a SdkTracerProvider)>;

fn http_server(
    b: &mut Bench<'_>,
    ours: &PipelineGuard,
    ours_x: Exported<'_>,
    sdk: &SdkTracerProvider,
    sdk_x: Exported<'_>,
) {
    const G: &str = "http_server";
    let mut none = Ok200;
    b.run(G, "none", Global::Ours, None, || {
        call(&mut none, http_server_request(TRACEPARENT_SAMPLED))
    });

    let layer = tower_trace::ServerLayer::new()
        .with_tracer_source(ours.tracer_source())
        .with_route(|_| Some(Cow::Borrowed(ROUTE)));
    let mut svc = layer.layer(Ok200);
    b.run(G, "ours_sampled", Global::Ours, ours_x, || {
        call(&mut svc, http_server_request(TRACEPARENT_SAMPLED))
    });
    b.run(G, "ours_unsampled", Global::Ours, None, || {
        call(&mut svc, http_server_request(TRACEPARENT_UNSAMPLED))
    });
    // A route without parameters, whose text is the path's.
    let mut fixed = tower_trace::ServerLayer::new()
        .with_tracer_source(ours.tracer_source())
        .with_route(|_| Some(Cow::Borrowed(FIXED_ROUTE)))
        .layer(Ok200);
    b.run(G, "ours_fixed_route_sampled", Global::Ours, ours_x, || {
        call(
            &mut fixed,
            http_server_request_at(FIXED_ROUTE, TRACEPARENT_SAMPLED),
        )
    });

    // The defaults: the global provider (ours, as `Pipeline::install` sets it) and propagator.
    global::set_tracer_provider(ours.tracer_provider().clone());
    let mut default = tower_trace::ServerLayer::new()
        .with_route(|_| Some(Cow::Borrowed(ROUTE)))
        .layer(Ok200);
    b.run(G, "ours_global_sampled", Global::Ours, ours_x, || {
        call(&mut default, http_server_request(TRACEPARENT_SAMPLED))
    });
    b.run(G, "ours_global_unsampled", Global::Ours, None, || {
        call(&mut default, http_server_request(TRACEPARENT_UNSAMPLED))
    });

    let mut direct = SdkServer {
        inner: Ok200,
        tracer: sdk.tracer("direct"),
        propagator: TraceContextPropagator::new(),
    };
    b.run(G, "sdk_direct_sampled", Global::Sdk, sdk_x, || {
        call(&mut direct, http_server_request(TRACEPARENT_SAMPLED))
    });
    b.run(G, "sdk_direct_unsampled", Global::Sdk, None, || {
        call(&mut direct, http_server_request(TRACEPARENT_UNSAMPLED))
    });

    global::set_tracer_provider(sdk.clone());
    let mut instrumentation_tower =
        opentelemetry_instrumentation_tower::http::server::LayerBuilder::builder()
            .with_route_extractor_fn(|_: &Request<Empty<Bytes>>| Some(ROUTE.to_owned()))
            .with_metrics(false)
            .build()
            .expect("instrumentation-tower layer")
            .layer(Ok200);
    b.run(
        G,
        "otel_instrumentation_tower_sampled",
        Global::Sdk,
        sdk_x,
        || {
            call(
                &mut instrumentation_tower,
                http_server_request(TRACEPARENT_SAMPLED),
            )
        },
    );
    b.run(
        G,
        "otel_instrumentation_tower_unsampled",
        Global::Sdk,
        None,
        || {
            call(
                &mut instrumentation_tower,
                http_server_request(TRACEPARENT_UNSAMPLED),
            )
        },
    );

    {
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber_for(sdk));
        let mut tower_http = tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(tower_http_span::<Empty<Bytes>>)
            .on_request(())
            .on_response(
                |res: &Response<Full<Bytes>>, _latency: Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", res.status().as_u16());
                },
            )
            .layer(Ok200);
        b.run(
            G,
            "tower_http_tracing_otel_sampled",
            Global::Sdk,
            sdk_x,
            || call(&mut tower_http, http_server_request(TRACEPARENT_SAMPLED)),
        );
        b.run(
            G,
            "tower_http_tracing_otel_unsampled",
            Global::Sdk,
            None,
            || call(&mut tower_http, http_server_request(TRACEPARENT_UNSAMPLED)),
        );
    }
}

fn grpc_server(
    b: &mut Bench<'_>,
    ours: &PipelineGuard,
    ours_x: Exported<'_>,
    sdk: &SdkTracerProvider,
    sdk_x: Exported<'_>,
) {
    const G: &str = "grpc_server";
    let mut none = GrpcOk;
    b.run(G, "none", Global::Ours, None, || {
        call(&mut none, grpc_server_request(TRACEPARENT_SAMPLED))
    });

    let mut svc = tonic_trace::ServerLayer::new()
        .with_tracer_source(ours.tracer_source())
        .layer(GrpcOk);
    b.run(G, "ours_sampled", Global::Ours, ours_x, || {
        call(&mut svc, grpc_server_request(TRACEPARENT_SAMPLED))
    });
    b.run(G, "ours_unsampled", Global::Ours, None, || {
        call(&mut svc, grpc_server_request(TRACEPARENT_UNSAMPLED))
    });

    {
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber_for(sdk));
        let mut peer =
            tonic_tracing_opentelemetry::middleware::server::OtelGrpcLayer::default().layer(GrpcOk);
        b.run(G, "tonic_tracing_otel_sampled", Global::Sdk, sdk_x, || {
            call(&mut peer, grpc_server_request(TRACEPARENT_SAMPLED))
        });
        b.run(G, "tonic_tracing_otel_unsampled", Global::Sdk, None, || {
            call(&mut peer, grpc_server_request(TRACEPARENT_UNSAMPLED))
        });
    }
}

fn http_client(
    b: &mut Bench<'_>,
    ours: &PipelineGuard,
    ours_x: Exported<'_>,
    sdk: &SdkTracerProvider,
    sdk_x: Exported<'_>,
) {
    const G: &str = "http_client";
    let sampled = client_parent(true);
    let unsampled = client_parent(false);
    let mut none = Ok200;
    b.run(G, "none", Global::Ours, None, || {
        call(&mut none, http_client_request())
    });

    let mut svc = tower_trace::ClientLayer::new()
        .with_tracer_source(ours.tracer_source())
        .layer(Ok200);
    {
        let _parent = sampled.clone().attach();
        b.run(G, "ours_sampled", Global::Ours, ours_x, || {
            call(&mut svc, http_client_request())
        });
    }
    {
        let _parent = unsampled.clone().attach();
        b.run(G, "ours_unsampled", Global::Ours, None, || {
            call(&mut svc, http_client_request())
        });
    }
    let mut direct = SdkClient {
        inner: Ok200,
        tracer: sdk.tracer("direct"),
        propagator: TraceContextPropagator::new(),
    };
    {
        let _parent = sampled.clone().attach();
        b.run(G, "sdk_direct_sampled", Global::Sdk, sdk_x, || {
            call(&mut direct, http_client_request())
        });
    }
    {
        let _parent = unsampled.clone().attach();
        b.run(G, "sdk_direct_unsampled", Global::Sdk, None, || {
            call(&mut direct, http_client_request())
        });
    }
}

fn grpc_client(
    b: &mut Bench<'_>,
    ours: &PipelineGuard,
    ours_x: Exported<'_>,
    sdk: &SdkTracerProvider,
    sdk_x: Exported<'_>,
) {
    const G: &str = "grpc_client";
    let sampled = client_parent(true);
    let unsampled = client_parent(false);
    let mut none = GrpcOk;
    b.run(G, "none", Global::Ours, None, || {
        call(&mut none, grpc_client_request())
    });

    let mut svc = tonic_trace::ClientLayer::new()
        .with_tracer_source(ours.tracer_source())
        .with_server_uri(&Uri::from_static("http://inventory.internal:50051"))
        .layer(GrpcOk);
    {
        let _parent = sampled.clone().attach();
        b.run(G, "ours_sampled", Global::Ours, ours_x, || {
            call(&mut svc, grpc_client_request())
        });
    }
    {
        let _parent = unsampled.clone().attach();
        b.run(G, "ours_unsampled", Global::Ours, None, || {
            call(&mut svc, grpc_client_request())
        });
    }
    {
        let _subscriber = tracing::subscriber::set_default(tracing_subscriber_for(sdk));
        let mut peer = tonic_tracing_opentelemetry::middleware::client::OtelGrpcLayer.layer(GrpcOk);
        b.run(G, "tonic_tracing_otel_sampled", Global::Sdk, sdk_x, || {
            call(&mut peer, grpc_client_request())
        });
    }
}

/// A service's work on one thread: a request served (the server layer), then a call out to
/// another service (the client layer) under a sampled parent, over and over. The two name
/// different authorities (and, for gRPC, different methods), so this measures what the
/// per-thread caches of the recipes keep when a thread alternates between the two sides. Ours
/// only: the peers keep no such cache.
fn serve_and_call_out(b: &mut Bench<'_>, ours: &PipelineGuard, ours_x: Exported<'_>) {
    // The call out runs under the parent; the request served under none, as in `http_server`.
    let parent = client_parent(true);

    const HTTP: &str = "http_serve_and_call_out";
    let (mut server, mut client) = (Ok200, Ok200);
    b.run(HTTP, "none", Global::Ours, None, || {
        call(&mut server, http_server_request(TRACEPARENT_SAMPLED));
        call_under(&parent, &mut client, http_client_request());
    });
    let mut server = tower_trace::ServerLayer::new()
        .with_tracer_source(ours.tracer_source())
        .with_route(|_| Some(Cow::Borrowed(ROUTE)))
        .layer(Ok200);
    let mut client = tower_trace::ClientLayer::new()
        .with_tracer_source(ours.tracer_source())
        .layer(Ok200);
    b.run_spans(HTTP, "ours_sampled", Global::Ours, ours_x, 2, || {
        call(&mut server, http_server_request(TRACEPARENT_SAMPLED));
        call_under(&parent, &mut client, http_client_request());
    });

    const GRPC: &str = "grpc_serve_and_call_out";
    let (mut server, mut client) = (GrpcOk, GrpcOk);
    b.run(GRPC, "none", Global::Ours, None, || {
        call(&mut server, grpc_server_request(TRACEPARENT_SAMPLED));
        call_under(&parent, &mut client, grpc_call_out_request());
    });
    let mut server = tonic_trace::ServerLayer::new()
        .with_tracer_source(ours.tracer_source())
        .layer(GrpcOk);
    let mut client = tonic_trace::ClientLayer::new()
        .with_tracer_source(ours.tracer_source())
        .with_server_uri(&Uri::from_static("http://inventory.internal:50051"))
        .layer(GrpcOk);
    b.run_spans(GRPC, "ours_sampled", Global::Ours, ours_x, 2, || {
        call(&mut server, grpc_server_request(TRACEPARENT_SAMPLED));
        call_under(&parent, &mut client, grpc_call_out_request());
    });
}

// ---------------------------------------------------------------------------------------------
// The summary table.

/// The median (ns) criterion recorded for `id`.
fn median_ns(dir: &std::path::Path, group: &str, name: &str) -> Option<f64> {
    let text =
        std::fs::read_to_string(dir.join(group).join(name).join("new/estimates.json")).ok()?;
    let at = text.find("\"median\"")?;
    let rest = &text[at..];
    let at = rest.find("\"point_estimate\":")? + "\"point_estimate\":".len();
    let rest = &rest[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

fn summary(dir: &std::path::Path, rows: &[Row]) {
    println!();
    println!(
        "| group | variant | median | over no layer | allocs/req (over no layer) | allocs/req, all threads |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    let base = |group: &str| rows.iter().find(|r| r.group == group && r.name == "none");
    let mut overheads = Vec::new();
    for row in rows {
        let median = median_ns(dir, row.group, row.name);
        let base_row = base(row.group);
        let base_median = base_row.and_then(|b| median_ns(dir, b.group, b.name));
        let over = median.zip(base_median).map(|(m, b)| m - b);
        let allocs_over = base_row.map(|b| row.allocs - b.allocs);
        overheads.push((row.group, row.name, over));
        println!(
            "| {} | {} | {} | {} | {} | {:.2}{} |",
            row.group,
            row.name,
            median.map_or("-".into(), |m| format!("{m:.0} ns")),
            if row.name == "none" {
                "-".into()
            } else {
                over.map_or("-".into(), |o| format!("{o:.0} ns"))
            },
            if row.name == "none" {
                format!("{:.2}", row.allocs)
            } else {
                allocs_over.map_or("-".into(), |a| format!("{a:.2}"))
            },
            row.allocs_all,
            if row.lost != 0 {
                format!(" ({} spans lost)", row.lost)
            } else {
                String::new()
            },
        );
    }
    println!();
    let over = |group: &str, name: &str| {
        overheads
            .iter()
            .find(|(g, n, _)| *g == group && *n == name)
            .and_then(|(_, _, o)| *o)
    };
    for (group, ours, peers) in [
        (
            "http_server",
            "ours_sampled",
            &[
                "sdk_direct_sampled",
                "otel_instrumentation_tower_sampled",
                "tower_http_tracing_otel_sampled",
            ][..],
        ),
        (
            "http_server",
            "ours_unsampled",
            &[
                "sdk_direct_unsampled",
                "otel_instrumentation_tower_unsampled",
                "tower_http_tracing_otel_unsampled",
            ][..],
        ),
        (
            "http_server",
            "ours_global_sampled",
            &[
                "sdk_direct_sampled",
                "otel_instrumentation_tower_sampled",
                "tower_http_tracing_otel_sampled",
            ][..],
        ),
        (
            "grpc_server",
            "ours_sampled",
            &["tonic_tracing_otel_sampled"][..],
        ),
        (
            "grpc_server",
            "ours_unsampled",
            &["tonic_tracing_otel_unsampled"][..],
        ),
        ("http_client", "ours_sampled", &["sdk_direct_sampled"][..]),
        (
            "http_client",
            "ours_unsampled",
            &["sdk_direct_unsampled"][..],
        ),
        (
            "grpc_client",
            "ours_sampled",
            &["tonic_tracing_otel_sampled"][..],
        ),
    ] {
        let Some(o) = over(group, ours) else { continue };
        for peer in peers {
            if let Some(p) = over(group, peer) {
                println!(
                    "{group}: {ours} costs {:.2}x of {peer} ({o:.0} ns vs {p:.0} ns over no layer)",
                    o / p
                );
            }
        }
    }
}
