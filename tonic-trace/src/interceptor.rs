//! Interceptors, for those who prefer them to layers, and a combinator that chains
//! interceptors in order.
//!
//! An interceptor sees only the request, so it can carry context but cannot time a call or
//! see its status: spans with durations and statuses come from the layers.
//!
//! ```
//! use tonic::{Request, Status};
//! use tonic_trace::InterceptorExt;
//!
//! fn auth(mut req: Request<()>) -> Result<Request<()>, Status> {
//!     req.metadata_mut().insert("authorization", "Bearer token".parse().unwrap());
//!     Ok(req)
//! }
//!
//! // `inject` first, then `auth`; an error from either stops the call.
//! let mut interceptor = tonic_trace::inject.chain(auth);
//! # use tonic::service::Interceptor;
//! let req = interceptor.call(Request::new(())).unwrap();
//! assert!(req.metadata().contains_key("authorization"));
//! // GreeterClient::with_interceptor(channel, interceptor)
//! ```

use opentelemetry::Context;
use tonic::service::Interceptor;
use tonic::{Request, Status};
use tracing_core_lite::Propagators;
use tracing_core_lite::propagation::{extract_headers, inject_headers};

/// Client interceptor: injects the current context (or the [`Context`] in the request
/// extensions) into the request metadata with the global propagator.
pub fn inject(req: Request<()>) -> Result<Request<()>, Status> {
    let mut req = req;
    let cx = req
        .extensions()
        .get::<Context>()
        .cloned()
        .unwrap_or_else(Context::current);
    inject_headers(None, &cx, req.metadata_mut().as_mut());
    Ok(req)
}

/// Server interceptor: extracts the caller's context from the metadata with the global
/// propagator and puts it in the request extensions, where handlers find it with
/// `request.extensions().get::<opentelemetry::Context>()`.
pub fn extract(req: Request<()>) -> Result<Request<()>, Status> {
    let mut req = req;
    let cx = extract_headers(None, req.metadata().as_ref());
    req.extensions_mut().insert(cx);
    Ok(req)
}

/// [`inject`] with propagators of your own instead of the global propagator.
#[derive(Clone, Debug)]
pub struct InjectWith(pub Propagators);

impl Interceptor for InjectWith {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let cx = req
            .extensions()
            .get::<Context>()
            .cloned()
            .unwrap_or_else(Context::current);
        inject_headers(Some(&self.0), &cx, req.metadata_mut().as_mut());
        Ok(req)
    }
}

/// [`extract`] with propagators of your own.
#[derive(Clone, Debug)]
pub struct ExtractWith(pub Propagators);

impl Interceptor for ExtractWith {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let cx = extract_headers(Some(&self.0), req.metadata().as_ref());
        req.extensions_mut().insert(cx);
        Ok(req)
    }
}

/// Two interceptors in order: `first`, then `second`; an error from `first` short-circuits.
/// Nest it for more: `a.chain(b).chain(c)`.
#[derive(Clone, Debug)]
pub struct Chain<A, B> {
    first: A,
    second: B,
}

impl<A: Interceptor, B: Interceptor> Interceptor for Chain<A, B> {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let req = self.first.call(req)?;
        self.second.call(req)
    }
}

/// Adds [`chain`](InterceptorExt::chain) to every interceptor, functions included.
pub trait InterceptorExt: Interceptor + Sized {
    /// This interceptor, then `next`.
    fn chain<I: Interceptor>(self, next: I) -> Chain<Self, I> {
        Chain {
            first: self,
            second: next,
        }
    }
}

impl<T: Interceptor> InterceptorExt for T {}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };

    fn parent() -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0xabc),
            SpanId::from(0xdef),
            TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        ))
    }

    fn record(tag: &'static str) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> {
        move |mut req: Request<()>| {
            let seen = req
                .metadata()
                .get("x-order")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let next = format!("{seen}{tag}");
            req.metadata_mut().insert(
                "x-order",
                next.parse().map_err(|_| Status::internal("bad"))?,
            );
            Ok(req)
        }
    }

    #[test]
    fn inject_composes_with_an_auth_interceptor_in_both_orders() {
        let propagators = Propagators::default();
        let auth = |mut req: Request<()>| {
            if req.metadata().contains_key("authorization") {
                return Err(Status::already_exists("auth twice"));
            }
            req.metadata_mut().insert(
                "authorization",
                "Bearer t".parse().map_err(|_| Status::internal("x"))?,
            );
            Ok(req)
        };
        for inject_first in [true, false] {
            let mut req = Request::new(());
            req.extensions_mut().insert(parent());
            let out = if inject_first {
                InjectWith(propagators.clone()).chain(auth).call(req)
            } else {
                Interceptor::call(&mut auth.chain(InjectWith(propagators.clone())), req)
            }
            .expect("both pass");
            assert_eq!(
                out.metadata()
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok()),
                Some("00-00000000000000000000000000000abc-0000000000000def-01")
            );
            assert!(out.metadata().contains_key("authorization"));
        }
    }

    #[test]
    fn chains_run_in_order_and_short_circuit() {
        let mut three = record("a").chain(record("b")).chain(record("c"));
        let out = three.call(Request::new(())).expect("ok");
        assert_eq!(
            out.metadata()
                .get("x-order")
                .map(|v| v.to_str().unwrap_or("")),
            Some("abc")
        );

        let deny = |_req: Request<()>| -> Result<Request<()>, Status> {
            Err(Status::unauthenticated("no"))
        };
        let mut reached = false;
        let err = {
            let after = |req: Request<()>| {
                reached = true;
                Ok(req)
            };
            let mut chain = record("a").chain(deny).chain(after);
            chain.call(Request::new(())).expect_err("denied")
        };
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(!reached, "the interceptor after the error ran");
    }

    #[test]
    fn extract_puts_the_callers_context_in_the_extensions() {
        let mut req = Request::new(());
        req.metadata_mut().insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .expect("valid"),
        );
        let out = ExtractWith(Propagators::default()).call(req).expect("ok");
        let cx = out.extensions().get::<Context>().expect("context inserted");
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        // garbage yields an empty context, not an error
        let mut req = Request::new(());
        req.metadata_mut()
            .insert("traceparent", "garbage".parse().expect("valid"));
        let out = ExtractWith(Propagators::default())
            .call(req)
            .expect("never fails");
        assert!(
            !out.extensions()
                .get::<Context>()
                .expect("inserted")
                .span()
                .span_context()
                .is_valid()
        );
    }
}
