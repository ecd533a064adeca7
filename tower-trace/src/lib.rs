//! HTTP tracing middleware for Tower services (axum, hyper, reqwest), built on
//! [`tracing_core_lite`].
//!
//! One layer on the server, one on each client, and every request becomes a span of a
//! distributed trace:
//!
//! ```no_run
//! use axum::{Router, routing::get};
//!
//! # async fn handler() -> &'static str { "ok" }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let _guard = tracing_core_lite::Pipeline::from_env()?.install()?;
//! let app = Router::new()
//!     .route("/orders/{id}", get(handler))
//!     .layer(tower_trace::ServerLayer::new());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! - [`ServerLayer`]: continues the caller's trace from the request headers, starts a SERVER
//!   span per request with the stable HTTP semantic-convention attributes, makes it current for
//!   the handler, and ends it when the response body has been sent.
//! - [`ClientLayer`]: starts a CLIENT span per outgoing request, injects its context into the
//!   headers, and ends it when the response body has been read.
//! - `ReqwestMiddleware` (feature `reqwest`): the same for `reqwest` through
//!   `reqwest-middleware`.
//! - [`body::TracedBody`]: the body wrapper both use, which `tonic-trace` reuses for gRPC.
//!
//! Features: `axum` (route templates from `MatchedPath`, peer addresses from `ConnectInfo`),
//! `reqwest` (the reqwest middleware).

#![warn(missing_docs)]

#[cfg(feature = "axum")]
pub mod axum;
pub mod body;
pub mod client;
mod future;
mod observer;
#[cfg(feature = "reqwest")]
mod reqwest;
pub mod server;

pub use client::{ClientLayer, ClientTrace};
pub use future::{ERROR_TYPE_CANCELLED, ResponseFuture};
pub use observer::{
    REQUEST_BODY_CONTENT, RESPONSE_BODY_CONTENT, RequestObserver, ResponseObserver,
};
#[cfg(feature = "reqwest")]
pub use reqwest::ReqwestMiddleware;
pub use server::{RequestBody, RequestView, ResponseBody, Sampling, ServerLayer, Trace};
