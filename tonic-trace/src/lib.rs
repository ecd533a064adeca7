//! gRPC tracing middleware for tonic servers and clients, built on `tracing-core-lite`.
//!
//! The server and client layers and the interceptors land in the gRPC issue; this crate
//! already builds so the workspace layout is final.

#![warn(missing_docs)]
