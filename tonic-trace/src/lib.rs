//! gRPC tracing middleware for tonic servers and clients, built on [`tracing_core_lite`] and
//! [`tower_trace`]'s body machinery.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # let addr = "127.0.0.1:50051".parse()?;
//! # let svc = tonic_health::server::health_reporter().1;
//! use tonic::transport::{Channel, Server};
//! use tower::ServiceBuilder;
//!
//! let _guard = tracing_core_lite::Pipeline::from_env()?.install()?;
//! // server: one layer
//! # let server = async {
//! Server::builder().layer(tonic_trace::ServerLayer::new()).add_service(svc).serve(addr).await?;
//! # Ok::<_, Box<dyn std::error::Error>>(()) };
//! // client: one layer over the channel
//! let channel = Channel::from_static("http://127.0.0.1:50051").connect().await?;
//! let channel = ServiceBuilder::new().layer(tonic_trace::ClientLayer::new()).service(channel);
//! # let _ = (channel, server);
//! # Ok(())
//! # }
//! ```
//!
//! - [`ServerLayer`]: a SERVER span per call, continuing the caller's trace from the metadata,
//!   with the gRPC status read where it is (response headers for trailers-only responses,
//!   otherwise the trailers at the end of the body) and a message event per message.
//! - [`ClientLayer`]: a CLIENT span per call, its context injected into the metadata.
//! - [`inject`], [`extract`] and [`InterceptorExt::chain`]: interceptors, and their chaining in
//!   a defined order.
//! - [`frame`]: the incremental parser of gRPC length-prefixed messages behind message events
//!   and payload capture.

#![warn(missing_docs)]

pub mod client;
pub mod frame;
mod future;
pub mod interceptor;
mod observer;
pub mod payload;
pub mod server;

pub use client::{ClientLayer, ClientTrace};
pub use future::ResponseFuture;
pub use interceptor::{Chain, ExtractWith, InjectWith, InterceptorExt, extract, inject};
pub use observer::{INCOMPLETE_MESSAGE_EVENT, MESSAGE_PAYLOAD, RequestObserver, ResponseObserver};
pub use payload::PayloadRenderer;
pub use server::{ServerLayer, Trace};
