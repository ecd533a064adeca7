//! HTTP tracing middleware for Tower services (axum, hyper), built on `tracing-core-lite`.
//!
//! The server and client layers land in the HTTP issue; this crate already builds so the
//! workspace layout is final.

#![warn(missing_docs)]
