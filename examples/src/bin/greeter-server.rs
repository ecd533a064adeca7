//! The `helloworld.Greeter` gRPC server, with `grpc.health.v1.Health` alongside.
//!
//! ```text
//! greeter-server [--listen ADDR]      # default 127.0.0.1:50051; port 0 picks a free port
//! cargo run -p examples --bin greeter-server -- --listen 127.0.0.1:0
//! ```
//!
//! The first line on stdout is `listening on ADDR`, the address actually bound. `SayHello`
//! replies `Hello, NAME!`; `SayHelloStream` replies `Hello, NAME! (i/3)` three times. The names
//! `error` and `invalid` are answered with INTERNAL and INVALID_ARGUMENT, to see failed calls.
//!
//! Spans go where the `OTEL_*` variables say (the console by default), as service
//! `greeter-server` unless `OTEL_SERVICE_NAME` says otherwise. SIGINT or SIGTERM stops the
//! server gracefully: it stops accepting, finishes the calls in flight, flushes the spans and
//! exits 0. Bad arguments exit 2.

use std::error::Error;
use std::net::SocketAddr;
use std::process::ExitCode;

use examples::helloworld::greeter_server::{Greeter, GreeterServer};
use examples::helloworld::{HelloReply, HelloRequest};
use examples::{Args, DEFAULT_LISTEN, ErrorChain, UsageError};
use tokio::net::TcpListener;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tracing_core_lite::filter::Filter;

const USAGE: &str = "\
Usage: greeter-server [--listen ADDR]

Serves helloworld.Greeter and grpc.health.v1.Health over gRPC (plaintext HTTP/2).

Options:
  --listen ADDR  address to listen on [default: 127.0.0.1:50051]; port 0 picks a free one,
                 and the first line of output says which: `listening on ADDR`
  -h, --help     print this help

Traces go where the OTEL_* variables say (the console by default).";

/// How many replies `SayHelloStream` sends.
const STREAM_REPLIES: usize = 3;

/// The greeter.
#[derive(Debug, Default)]
struct MyGreeter;

/// Fails the names that ask for a failure.
fn check_name(name: &str) -> Result<(), Status> {
    match name {
        "error" => Err(Status::internal(
            "the greeter failed, as the name `error` asks",
        )),
        "invalid" => Err(Status::invalid_argument(
            "the name `invalid` is not accepted",
        )),
        _ => Ok(()),
    }
}

#[tonic::async_trait]
impl Greeter for MyGreeter {
    async fn say_hello(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<HelloReply>, Status> {
        let name = request.into_inner().name;
        check_name(&name)?;
        Ok(Response::new(HelloReply {
            message: format!("Hello, {name}!"),
        }))
    }

    type SayHelloStreamStream =
        tokio_stream::Iter<std::array::IntoIter<Result<HelloReply, Status>, STREAM_REPLIES>>;

    async fn say_hello_stream(
        &self,
        request: Request<HelloRequest>,
    ) -> Result<Response<Self::SayHelloStreamStream>, Status> {
        let name = request.into_inner().name;
        check_name(&name)?;
        let replies = std::array::from_fn(|i| {
            Ok(HelloReply {
                message: format!("Hello, {name}! ({}/{STREAM_REPLIES})", i + 1),
            })
        });
        Ok(Response::new(tokio_stream::iter(replies)))
    }
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
    Ok(Some(listen.unwrap_or(DEFAULT_LISTEN)))
}

async fn run(listen: SocketAddr) -> Result<(), Box<dyn Error>> {
    let guard = examples::install_pipeline("greeter-server")?;
    // Before the address is announced, so that whoever reads it can signal us right away.
    let shutdown = examples::shutdown_signal()?;
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let local_addr = listener.local_addr()?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<GreeterServer<MyGreeter>>().await;

    println!("listening on {local_addr}");
    Server::builder()
        // One layer traces every call; health checks are left out of the traces.
        .layer(tonic_trace::ServerLayer::new().with_filter(Filter::grpc_health_and_reflection()))
        .add_service(health_service)
        .add_service(GreeterServer::new(MyGreeter))
        .serve_with_incoming_shutdown(
            // What `Server::serve` does with an address, here with the listener bound above.
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            async {
                let signal = shutdown.await;
                eprintln!("{signal} received: shutting down");
                health.set_not_serving::<GreeterServer<MyGreeter>>().await;
            },
        )
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
