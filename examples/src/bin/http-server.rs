//! An axum server traced by `tower_trace::ServerLayer`, for programs in any language to call.
//!
//! ```text
//! http-server [--listen ADDR]      # default 127.0.0.1:8080; port 0 picks a free port
//! cargo run -p examples --bin http-server -- --listen 127.0.0.1:0
//! ```
//!
//! The first line on stdout is `listening on ADDR`, the address actually bound. The routes:
//!
//! | route | answer |
//! |---|---|
//! | `GET /hello?name=NAME` | `200` `{"message":"Hello, NAME!"}` (JSON); NAME defaults to `world` |
//! | `POST /echo` | `200` with the request's body and `content-type` |
//! | `GET /status/{code}` | an empty response with that status (200 to 599), else `400` |
//! | `POST /test` | the [W3C Trace Context test service]: see below |
//!
//! `POST /test` takes a JSON list of `{"url": URL, "arguments": VALUE}` and, in order, POSTs
//! each VALUE as JSON to its URL, as a call of this request's trace; it answers `200` once they
//! all got a response (whatever its status), `400` when the body is not such a list, and `502`
//! naming the URL when a call gets no response (the remaining calls are not made).
//!
//! Every request is a SERVER span named after its route template (`GET /status/{code}`) that
//! continues the caller's trace, read from the headers in the formats `OTEL_PROPAGATORS`
//! selects; the calls of `/test` are CLIENT spans under it, which carry the trace on. Spans go
//! where the `OTEL_*` variables say (the console by default), as service `http-server` unless
//! `OTEL_SERVICE_NAME` says otherwise. SIGINT or SIGTERM stops the server gracefully: it stops
//! accepting, finishes the requests in flight, flushes the spans and exits 0. Bad arguments
//! exit 2.
//!
//! [W3C Trace Context test service]: https://github.com/w3c/trace-context/tree/main/test

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt as _;
use axum::{Json, Router};
use examples::{Args, DEFAULT_HTTP_LISTEN, ErrorChain, UsageError};
use opentelemetry::Context;
use reqwest_middleware::ClientWithMiddleware;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

const USAGE: &str = "\
Usage: http-server [--listen ADDR]

Serves, over plain HTTP/1.1:
  GET  /hello?name=NAME  {\"message\":\"Hello, NAME!\"} (NAME defaults to `world`)
  POST /echo             the request body, with its content type
  GET  /status/CODE      an empty response with status CODE (200 to 599)
  POST /test             the W3C Trace Context test service: the body is a JSON list of
                         {\"url\": URL, \"arguments\": VALUE}; POSTs each VALUE to its URL

Options:
  --listen ADDR  address to listen on [default: 127.0.0.1:8080]; port 0 picks a free one,
                 and the first line of output says which: `listening on ADDR`
  -h, --help     print this help

Traces go where the OTEL_* variables say (the console by default).";

/// The query of `GET /hello`.
#[derive(Debug, Deserialize)]
struct HelloQuery {
    name: Option<String>,
}

/// The answer of `GET /hello`.
#[derive(Debug, Serialize)]
struct Greeting {
    message: String,
}

async fn hello(Query(query): Query<HelloQuery>) -> Json<Greeting> {
    let name = query.name.as_deref().unwrap_or("world");
    Json(Greeting {
        message: format!("Hello, {name}!"),
    })
}

async fn echo(headers: HeaderMap, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    response
}

/// `GET /status/{code}`. Codes below 200 are refused: 1xx are interim responses, which
/// cannot end a request.
async fn status(Path(code): Path<String>) -> Response {
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|code| (200..=599).contains(code))
        .and_then(|code| StatusCode::from_u16(code).ok());
    match status {
        Some(status) => status.into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            format!("expected a status code from 200 to 599, got `{code}`\n"),
        )
            .into_response(),
    }
}

/// One entry of the body of `POST /test`.
#[derive(Debug, Deserialize)]
struct TestAction {
    url: String,
    arguments: serde_json::Value,
}

/// `POST /test`, the W3C Trace Context test service. The body is parsed whatever its content
/// type says, as the test harness does not always send one.
///
/// The calls are children of this request's span: its context, which `ServerLayer` put in the
/// request extensions, is handed to the tracing middleware explicitly, so nothing depends on
/// which context is current when the client runs.
async fn test(
    State(client): State<ClientWithMiddleware>,
    Extension(cx): Extension<Context>,
    body: Bytes,
) -> Response {
    let actions: Vec<TestAction> = match serde_json::from_slice(&body) {
        Ok(actions) => actions,
        Err(e) => {
            let message = format!("expected a JSON list of {{\"url\", \"arguments\"}}: {e}\n");
            return (StatusCode::BAD_REQUEST, message).into_response();
        }
    };
    for action in &actions {
        let call = client
            .post(&action.url)
            .json(&action.arguments)
            .with_extension(cx.clone())
            .send()
            .await;
        // Read the answer to its end, which ends the call's span without an error.
        let delivered = match call {
            Ok(response) => response.bytes().await.map(drop).map_err(Into::into),
            Err(e) => Err(e),
        };
        if let Err(e) = delivered {
            let message = format!("cannot call {}: {}\n", action.url, ErrorChain(&e));
            return (StatusCode::BAD_GATEWAY, message).into_response();
        }
    }
    StatusCode::OK.into_response()
}

fn app(client: ClientWithMiddleware) -> Router {
    Router::new()
        .route("/hello", get(hello))
        .route("/echo", post(echo))
        .route("/status/{code}", get(status))
        .route("/test", post(test))
        .with_state(client)
        // After the routes, so that it wraps each route: the span is named after the matched
        // route template.
        .layer(tower_trace::ServerLayer::new())
}

/// `Ok(None)` for `--help`.
fn parse_args(mut args: Args) -> Result<Option<SocketAddr>, UsageError> {
    let mut listen = None;
    while let Some(option) = args.next_option()? {
        match option.as_str() {
            "-h" | "--help" => return Ok(None),
            "--listen" => listen = Some(args.parse_value(&option)?),
            _ => return Err(UsageError::new(format!("unknown option `{option}`"))),
        }
    }
    Ok(Some(listen.unwrap_or(DEFAULT_HTTP_LISTEN)))
}

async fn run(listen: SocketAddr) -> Result<(), Box<dyn Error>> {
    let guard = examples::install_pipeline("http-server")?;
    // Before the address is announced, so that whoever reads it can signal us right away.
    let shutdown = examples::shutdown_signal()?;
    let client = examples::traced_http_client()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local_addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("warning: cannot set TCP_NODELAY: {e}");
        }
    });

    println!("listening on {local_addr}");
    axum::serve(
        listener,
        // The peer address becomes the span's `client.address` and `client.port`.
        app(client).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let signal = shutdown.await;
        eprintln!("{signal} received: shutting down");
    })
    .await?;

    examples::shutdown_pipeline(guard);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let listen = match examples::parse_command_line(USAGE, parse_args) {
        Ok(listen) => listen,
        Err(code) => return code,
    };
    match run(listen).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}
