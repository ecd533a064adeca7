//! A `helloworld.Greeter` gRPC client that makes each call in a trace of its own.
//!
//! ```text
//! greeter-client [--target URL] [--count N] [--stream] [--name NAME]
//! cargo run -p examples --bin greeter-client -- --target http://127.0.0.1:50051 --count 3
//! ```
//!
//! Call `i` (1 to N) sends the name `client-i` (or NAME) to `SayHello`, or to `SayHelloStream`
//! with `--stream`, inside a root span `greeter-client call`, and prints one line:
//!
//! ```text
//! call 1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 status=OK reply=Hello, client-1!
//! call 2 trace_id=0af7651916cd43dd8448eb211c80319c status=INTERNAL message=the greeter failed
//! ```
//!
//! With `--stream`, the replies are joined with `|`. A call that ends with a gRPC error is
//! printed and the next one is made; the program exits 0. It exits 1 when the target cannot be
//! reached at all, and 2 on bad arguments.
//!
//! Spans go where the `OTEL_*` variables say (the console by default), as service
//! `greeter-client` unless `OTEL_SERVICE_NAME` says otherwise; the trace context travels in
//! the request metadata in the formats `OTEL_PROPAGATORS` selects.

use std::process::ExitCode;
use std::time::Duration;

use examples::helloworld::HelloRequest;
use examples::helloworld::greeter_client::GreeterClient;
use examples::{Args, DEFAULT_TARGET, ErrorChain, UsageError};
use opentelemetry::Context;
use opentelemetry::trace::{FutureExt as _, SpanKind, TraceContextExt as _, Tracer as _};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};
use tonic_trace::ClientTrace;
use tower::ServiceBuilder;
use tracing_core_lite::recipe::Side;
use tracing_core_lite::recipe::grpc::{Code, RpcOutcome};

const USAGE: &str = "\
Usage: greeter-client [--target URL] [--count N] [--stream] [--name NAME]

Calls helloworld.Greeter N times, each call in a trace of its own, and prints a line per call:
`call I trace_id=ID status=CODE reply=REPLY` (or `message=MESSAGE` for a failed call).

Options:
  --target URL   the server [default: http://127.0.0.1:50051]
  --count N      how many calls [default: 1]
  --stream       call SayHelloStream instead of SayHello
  --name NAME    the name to send [default: client-I for call I];
                 `error` and `invalid` make the example server fail the call
  -h, --help     print this help

Traces go where the OTEL_* variables say (the console by default).";

/// How long to wait for the connection to the target.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What to do, from the command line.
#[derive(Debug)]
struct Options {
    /// The target as given.
    target: String,
    endpoint: Endpoint,
    count: u32,
    stream: bool,
    name: Option<String>,
}

/// `Ok(None)` for `--help`.
fn parse_args(mut args: Args) -> Result<Option<Options>, UsageError> {
    let mut target = DEFAULT_TARGET.to_owned();
    let mut count = 1;
    let mut stream = false;
    let mut name = None;
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "-h" | "--help" => return Ok(None),
            "--target" => target = args.value(&option)?,
            "--count" => count = args.parse_value(&option)?,
            "--stream" => stream = true,
            "--name" => name = Some(args.value(&option)?),
            _ => return Err(UsageError::new(format!("unknown option `{option}`"))),
        }
    }
    if count == 0 {
        return Err(UsageError::new("--count must be at least 1"));
    }
    let endpoint = Endpoint::from_shared(target.clone())
        .map_err(|e| UsageError::new(format!("invalid --target `{target}`: {e}")))?;
    if endpoint.uri().scheme_str() != Some("http") || endpoint.uri().host().is_none() {
        return Err(UsageError::new(format!(
            "invalid --target `{target}`: expected http://HOST:PORT (TLS is not enabled)"
        )));
    }
    Ok(Some(Options {
        target,
        endpoint: endpoint.connect_timeout(CONNECT_TIMEOUT),
        count,
        stream,
        name,
    }))
}

/// One call, in the current context: the greeting, or the replies of the stream.
async fn call(
    client: &mut GreeterClient<ClientTrace<Channel>>,
    name: String,
    stream: bool,
) -> Result<Vec<String>, Status> {
    let request = Request::new(HelloRequest { name });
    if stream {
        let mut replies = client.say_hello_stream(request).await?.into_inner();
        let mut messages = Vec::new();
        while let Some(reply) = replies.message().await? {
            messages.push(reply.message);
        }
        Ok(messages)
    } else {
        let reply = client.say_hello(request).await?.into_inner();
        Ok(vec![reply.message])
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match examples::parse_command_line(USAGE, parse_args) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let guard = match examples::install_pipeline("greeter-client") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&e));
            return ExitCode::FAILURE;
        }
    };

    let channel = match options.endpoint.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!("error: cannot reach {}: {}", options.target, ErrorChain(&e));
            return ExitCode::FAILURE;
        }
    };
    // One layer over the channel: a CLIENT span per call, its context carried on in the metadata.
    let channel = ServiceBuilder::new()
        .layer(tonic_trace::ClientLayer::new().with_server_uri(options.endpoint.uri()))
        .service(channel);
    let mut client = GreeterClient::new(channel);
    let tracer = guard.tracer();

    for i in 1..=options.count {
        let name = options
            .name
            .clone()
            .unwrap_or_else(|| format!("client-{i}"));
        // A root span: each call starts a trace of its own.
        let span = tracer
            .span_builder("greeter-client call")
            .with_kind(SpanKind::Internal)
            .start_with_context(&tracer, &Context::new());
        let cx = Context::new().with_span(span);
        let trace_id = cx.span().span_context().trace_id();

        let result = call(&mut client, name, options.stream)
            .with_context(cx.clone())
            .await;

        let (code, detail) = match &result {
            Ok(replies) => (Code::Ok, format!("reply={}", replies.join("|"))),
            Err(status) => (
                Code::from_i32(status.code() as i32),
                format!("message={}", status.message()),
            ),
        };
        let span = cx.span();
        let message = result.as_ref().err().map(Status::message);
        span.set_status(RpcOutcome::new(Side::Client, code).status(message));
        span.end();
        println!("call {i} trace_id={trace_id} status={code} {detail}");
    }

    examples::shutdown_pipeline(guard);
    ExitCode::SUCCESS
}
