//! Request filters: which requests get a span.
//!
//! A filtered-out request is served as usual and its incoming context still flows to the calls
//! it makes; only its own span is skipped. Health checks and gRPC reflection are the usual
//! candidates.
//!
//! ```
//! use tracing_core_lite::filter::{Filter, RequestHead};
//!
//! let filter = Filter::skip_paths(["/health", "/ready"]).and(Filter::grpc_health_and_reflection());
//! let req = http::Request::get("/health").body(()).unwrap();
//! assert!(!filter.should_trace(&RequestHead::from_request(&req)));
//! let req = http::Request::post("/grpc.health.v1.Health/Check").body(()).unwrap();
//! assert!(!filter.should_trace(&RequestHead::from_request(&req)));
//! let req = http::Request::get("/orders/1").body(()).unwrap();
//! assert!(filter.should_trace(&RequestHead::from_request(&req)));
//! ```

use std::fmt;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

/// The parts of a request a filter may look at.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target.
    pub uri: &'a Uri,
    /// Request headers (gRPC metadata).
    pub headers: &'a HeaderMap,
}

impl<'a> RequestHead<'a> {
    /// The head of `req`.
    pub fn from_request<B>(req: &'a http::Request<B>) -> Self {
        RequestHead {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
        }
    }
}

/// A predicate deciding whether a request is traced. Cheap to clone.
#[derive(Clone)]
pub struct Filter(Arc<dyn Fn(&RequestHead<'_>) -> bool + Send + Sync>);

impl Filter {
    /// A filter from a closure returning `true` for requests to trace.
    pub fn new(f: impl Fn(&RequestHead<'_>) -> bool + Send + Sync + 'static) -> Self {
        Filter(Arc::new(f))
    }

    /// Traces every request.
    pub fn all() -> Self {
        Filter::new(|_| true)
    }

    /// Skips requests whose path is exactly one of `paths`.
    pub fn skip_paths<I, P>(paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        let paths: Vec<String> = paths.into_iter().map(Into::into).collect();
        Filter::new(move |h| !paths.iter().any(|p| p == h.uri.path()))
    }

    /// Skips requests whose path starts with one of `prefixes`.
    pub fn skip_path_prefixes<I, P>(prefixes: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<String>,
    {
        let prefixes: Vec<String> = prefixes.into_iter().map(Into::into).collect();
        Filter::new(move |h| {
            !prefixes
                .iter()
                .any(|p| h.uri.path().starts_with(p.as_str()))
        })
    }

    /// Skips the gRPC health service (`grpc.health.v1.Health`) and server reflection
    /// (`grpc.reflection.v1.ServerReflection`, `grpc.reflection.v1alpha.ServerReflection`).
    pub fn grpc_health_and_reflection() -> Self {
        Filter::skip_path_prefixes([
            "/grpc.health.v1.Health/",
            "/grpc.reflection.v1.ServerReflection/",
            "/grpc.reflection.v1alpha.ServerReflection/",
        ])
    }

    /// Traces a request only if both filters would.
    pub fn and(self, other: Filter) -> Self {
        Filter::new(move |h| self.should_trace(h) && other.should_trace(h))
    }

    /// Whether the request gets a span.
    pub fn should_trace(&self, head: &RequestHead<'_>) -> bool {
        (self.0)(head)
    }
}

impl Default for Filter {
    fn default() -> Self {
        Filter::all()
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filter(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traced(filter: &Filter, method: Method, path: &str) -> bool {
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap();
        filter.should_trace(&RequestHead::from_request(&req))
    }

    #[test]
    fn filters_compose() {
        let f = Filter::skip_paths(["/health"])
            .and(Filter::new(|h| h.method != Method::OPTIONS))
            .and(Filter::grpc_health_and_reflection());
        assert!(!traced(&f, Method::GET, "/health"));
        assert!(traced(&f, Method::GET, "/health/deep"));
        assert!(!traced(&f, Method::OPTIONS, "/x"));
        assert!(!traced(&f, Method::POST, "/grpc.health.v1.Health/Watch"));
        assert!(!traced(
            &f,
            Method::POST,
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        ));
        assert!(traced(&f, Method::POST, "/helloworld.Greeter/SayHello"));
        assert!(traced(&Filter::default(), Method::GET, "/health"));
    }
}
