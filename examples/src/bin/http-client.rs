//! An HTTP client, traced by `tower_trace::ReqwestMiddleware`, that makes each call in a trace
//! of its own.
//!
//! ```text
//! http-client [--url URL] [--count N]
//! cargo run -p examples --bin http-client -- --url http://127.0.0.1:8080 --count 3
//! ```
//!
//! Call `i` (1 to N) is `GET URL/hello?name=client-i`, and prints one line:
//!
//! ```text
//! call 1 trace_id=4bf92f3577b34da6a3ce929d0e0e4736 status=200 body={"message":"Hello, client-1!"}
//! ```
//!
//! Each call is a trace of its own: a root INTERNAL span `http-client call` (which gives the
//! trace id to print before the request is made, and covers reading the response) with the
//! middleware's CLIENT span `GET` under it, whose context travels in the request headers in the
//! formats `OTEL_PROPAGATORS` selects. An HTTP error status is printed like any other, and the
//! next call is made; the program exits 0. It exits 1, after `error: cannot reach URL: CAUSE`,
//! when a call gets no response (the server is down), or after `error: call I: reading the
//! response: CAUSE` when a response breaks off; and 2 on bad arguments.
//!
//! Spans go where the `OTEL_*` variables say (the console by default), as service
//! `http-client` unless `OTEL_SERVICE_NAME` says otherwise; they are flushed before the program
//! exits.

use std::process::ExitCode;

use examples::{Args, DEFAULT_HTTP_URL, ErrorChain, UsageError};
use opentelemetry::Context;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use reqwest_middleware::ClientWithMiddleware;
use tracing_core_lite::recipe::Side;
use tracing_core_lite::recipe::http::ResponseOutcome;

const USAGE: &str = "\
Usage: http-client [--url URL] [--count N]

Calls GET URL/hello?name=client-I N times, each call in a trace of its own, and prints a line
per call: `call I trace_id=ID status=STATUS body=BODY`.

Options:
  --url URL    the server, http://HOST:PORT [default: http://127.0.0.1:8080]
  --count N    how many calls [default: 1]
  -h, --help   print this help

Traces go where the OTEL_* variables say (the console by default).";

/// What to do, from the command line.
#[derive(Debug)]
struct Options {
    /// The URL as given.
    url: String,
    count: u32,
}

/// `Ok(None)` for `--help`.
fn parse_args(mut args: Args) -> Result<Option<Options>, UsageError> {
    let mut url = DEFAULT_HTTP_URL.to_owned();
    let mut count = 1;
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "-h" | "--help" => return Ok(None),
            "--url" => url = args.value(&option)?,
            "--count" => count = args.parse_value(&option)?,
            _ => return Err(UsageError::new(format!("unknown option `{option}`"))),
        }
    }
    if count == 0 {
        return Err(UsageError::new("--count must be at least 1"));
    }
    let parsed = reqwest::Url::parse(&url)
        .map_err(|e| UsageError::new(format!("invalid --url `{url}`: {e}")))?;
    if parsed.scheme() != "http" || !parsed.has_host() {
        return Err(UsageError::new(format!(
            "invalid --url `{url}`: expected http://HOST:PORT (TLS is not enabled)"
        )));
    }
    Ok(Some(Options { url, count }))
}

/// Why a call has no answer to print.
enum CallError {
    /// No response: the server cannot be reached.
    Send(reqwest_middleware::Error),
    /// The response body failed.
    Body(reqwest::Error),
}

/// One call, under `cx`: the status and the body.
async fn call(
    client: &ClientWithMiddleware,
    url: &str,
    cx: Context,
) -> Result<(u16, String), CallError> {
    let response = client
        .get(url)
        .with_extension(cx)
        .send()
        .await
        .map_err(CallError::Send)?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(CallError::Body)?;
    Ok((status, body))
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match examples::parse_command_line(USAGE, parse_args) {
        Ok(options) => options,
        Err(code) => return code,
    };
    let guard = match examples::install_pipeline("http-client") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&e));
            return ExitCode::FAILURE;
        }
    };
    let client = match examples::traced_http_client() {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&e));
            return ExitCode::FAILURE;
        }
    };
    let tracer = guard.tracer();
    let base = options.url.trim_end_matches('/');

    for i in 1..=options.count {
        // A root span: each call starts a trace of its own.
        let span = tracer
            .span_builder("http-client call")
            .with_kind(SpanKind::Internal)
            .start_with_context(&tracer, &Context::new());
        let cx = Context::new().with_span(span);
        let span = cx.span();
        let trace_id = span.span_context().trace_id();

        let result = call(
            &client,
            &format!("{base}/hello?name=client-{i}"),
            cx.clone(),
        )
        .await;
        match result {
            Ok((status, body)) => {
                span.set_status(ResponseOutcome::new(Side::Client, status).status());
                span.end();
                println!("call {i} trace_id={trace_id} status={status} body={body}");
            }
            Err(error) => {
                let message = match &error {
                    CallError::Send(e) => {
                        format!("cannot reach {}: {}", options.url, ErrorChain(e))
                    }
                    CallError::Body(e) => {
                        format!("call {i}: reading the response: {}", ErrorChain(e))
                    }
                };
                span.set_status(Status::error(message.clone()));
                span.end();
                eprintln!("error: {message}");
                examples::shutdown_pipeline(guard);
                return ExitCode::FAILURE;
            }
        }
    }

    examples::shutdown_pipeline(guard);
    ExitCode::SUCCESS
}
