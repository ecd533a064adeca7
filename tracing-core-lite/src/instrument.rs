//! In-process spans around closures and futures: a child of the current context, current
//! while the work runs, ended when it is done.
//!
//! ```
//! use tracing_core_lite::instrument::{in_span, InstrumentExt};
//!
//! # async fn load_order(_id: u64) -> u64 { 7 }
//! # async fn demo() {
//! // A closure: the span is current inside it and ends when it returns.
//! let total = in_span("compute-total", |_cx| 40 + 2);
//! assert_eq!(total, 42);
//!
//! // A future: the span is current on every poll and ends when the future completes
//! // (or is dropped).
//! let order = load_order(1).in_span("db.load_order").await;
//! # let _ = order;
//! # }
//! ```
//!
//! Spans come from the global tracer provider under the workspace's instrumentation scope
//! ([`crate::pipeline::INSTRUMENTATION_SCOPE`]); use [`in_span_with`] and
//! [`InstrumentExt::in_span_with`] with a tracer of your own otherwise.

use std::borrow::Cow;

use opentelemetry::trace::{FutureExt as _, TraceContextExt, Tracer, WithContext};
use opentelemetry::{Context, global};

use crate::pipeline::INSTRUMENTATION_SCOPE;

/// Runs `f` inside a new internal span named `name`, a child of the current context.
pub fn in_span<T>(name: impl Into<Cow<'static, str>>, f: impl FnOnce(&Context) -> T) -> T {
    in_span_with(&global::tracer(INSTRUMENTATION_SCOPE), name, f)
}

/// Runs `f` inside a new internal span of `tracer`, a child of the current context.
pub fn in_span_with<Tr, T>(
    tracer: &Tr,
    name: impl Into<Cow<'static, str>>,
    f: impl FnOnce(&Context) -> T,
) -> T
where
    Tr: Tracer,
    Tr::Span: Send + Sync + 'static,
{
    let span = tracer.start(name);
    let cx = Context::current_with_span(span);
    let _guard = cx.clone().attach();
    let out = f(&cx);
    cx.span().end();
    out
}

/// Runs futures inside spans.
pub trait InstrumentExt: Sized {
    /// Wraps the future in a new internal span named `name` (child of the context current
    /// now), current on every poll, ended when the future completes or is dropped.
    fn in_span(self, name: impl Into<Cow<'static, str>>) -> WithContext<Self> {
        self.in_span_with(&global::tracer(INSTRUMENTATION_SCOPE), name)
    }

    /// As [`in_span`](Self::in_span), with a tracer of your own.
    fn in_span_with<Tr>(self, tracer: &Tr, name: impl Into<Cow<'static, str>>) -> WithContext<Self>
    where
        Tr: Tracer,
        Tr::Span: Send + Sync + 'static;
}

impl<F: std::future::Future> InstrumentExt for F {
    fn in_span_with<Tr>(self, tracer: &Tr, name: impl Into<Cow<'static, str>>) -> WithContext<Self>
    where
        Tr: Tracer,
        Tr::Span: Send + Sync + 'static,
    {
        // The span ends when the context holding it is dropped with the future: the SDK ends
        // a span on drop.
        let cx = Context::current_with_span(tracer.start(name));
        self.with_context(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanKind, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    fn setup() -> (InMemorySpanExporter, opentelemetry_sdk::trace::SdkTracer) {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        (exporter, provider.tracer("t"))
    }

    #[test]
    fn closures_nest_and_end() {
        let (exporter, tracer) = setup();
        in_span_with(&tracer, "outer", |outer| {
            let outer_id = outer.span().span_context().span_id();
            in_span_with(&tracer, "inner", |inner| {
                assert_eq!(
                    Context::current().span().span_context().span_id(),
                    inner.span().span_context().span_id()
                );
            });
            assert_eq!(Context::current().span().span_context().span_id(), outer_id);
        });
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 2);
        let (inner, outer) = (&spans[0], &spans[1]);
        assert_eq!(
            (inner.name.as_ref(), outer.name.as_ref()),
            ("inner", "outer")
        );
        assert_eq!(inner.parent_span_id, outer.span_context.span_id());
        assert_eq!(inner.span_context.trace_id(), outer.span_context.trace_id());
        assert_eq!(outer.span_kind, SpanKind::Internal);
    }

    #[tokio::test]
    async fn futures_are_current_while_polled_and_end_when_done() {
        let (exporter, tracer) = setup();
        let parent_cx = Context::current_with_span(tracer.start("parent"));
        let fut = {
            let _attached = parent_cx.clone().attach();
            async {
                let here = Context::current().span().span_context().span_id();
                tokio::task::yield_now().await;
                assert_eq!(Context::current().span().span_context().span_id(), here);
                here
            }
            .in_span_with(&tracer, "child")
        };
        assert!(exporter.get_finished_spans().unwrap().is_empty());
        let child_id = fut.await;
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(
            spans.len(),
            1,
            "the child ended with its future, the parent is open"
        );
        assert_eq!(spans[0].name, "child");
        assert_eq!(spans[0].span_context.span_id(), child_id);
        assert_eq!(
            spans[0].parent_span_id,
            parent_cx.span().span_context().span_id()
        );
    }
}
