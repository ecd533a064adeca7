//! Where the layers get their tracer: the global provider (resolved on first use, so a layer
//! built before the pipeline is installed still finds it), a provider of your own (several
//! services in one process, tests), or a pipeline's span recorder
//! ([`PipelineGuard::tracer_source`](crate::PipelineGuard::tracer_source): the pipeline's
//! sampler and exporters without the SDK's span type, in `tracer/recorder.rs`).

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::{
    Link, SpanBuilder, SpanContext, TraceContextExt, Tracer, TracerProvider,
};
use opentelemetry::{Context, InstrumentationScope};

use crate::pipeline::INSTRUMENTATION_SCOPE;
use crate::recipe::SpanRecipe;

mod recorder;

use recorder::Parts;
pub(crate) use recorder::Recorder;

/// A cheaply cloneable handle on the tracer the layers start spans with.
#[derive(Clone)]
pub struct TracerSource {
    source: Arc<Source>,
    parent_based: bool,
}

/// Starts a span of the provider's own tracer type and puts it in a context.
type StartFn = dyn Fn(SpanBuilder, &Context) -> Context + Send + Sync;

enum Source {
    Global(OnceLock<BoxedTracer>),
    /// A pipeline's processors, recorded into without the SDK's span (see [`Recorder`]).
    Recorder {
        /// The pipeline provider's tracer, for [`TracerSource::tracer`].
        tracer: BoxedTracer,
        recorder: Arc<Recorder>,
    },
    Fixed {
        tracer: BoxedTracer,
        /// The same tracer, unboxed: its spans are boxed once (in the context), not twice.
        start: Box<StartFn>,
    },
}

impl TracerSource {
    /// The global tracer provider, looked up when the first span is started.
    pub fn global() -> Self {
        TracerSource {
            source: Arc::new(Source::Global(OnceLock::new())),
            parent_based: false,
        }
    }

    /// A tracer of `provider`, under this workspace's instrumentation scope.
    pub fn from_provider<P>(provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
    {
        let tracer = BoxedTracer::new(Box::new(provider.tracer_with_scope(scope())));
        let own = provider.tracer_with_scope(scope());
        let start = Box::new(move |builder: SpanBuilder, parent: &Context| {
            parent.with_span(own.build_with_context(builder, parent))
        });
        TracerSource {
            source: Arc::new(Source::Fixed { tracer, start }),
            parent_based: false,
        }
    }

    /// The spans of `recorder`, which makes the decisions of `provider` for the same
    /// processors (the pipeline builds both).
    pub(crate) fn from_recorder<P>(provider: &P, recorder: Recorder) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
    {
        TracerSource {
            source: Arc::new(Source::Recorder {
                tracer: BoxedTracer::new(Box::new(provider.tracer_with_scope(scope()))),
                recorder: Arc::new(recorder),
            }),
            parent_based: false,
        }
    }

    /// Declares that the provider's sampler follows the parent's decision when the parent is
    /// remote and not sampled, as the SDK's `Sampler::ParentBased` (the default sampler) does:
    /// such a span is never recorded. The layers then skip the span, and the work of its
    /// attributes, for those requests, and only carry the caller's trace on (not sampled, with
    /// a span id of their own), as the SDK would.
    ///
    /// [`PipelineGuard::tracer_source`](crate::PipelineGuard::tracer_source) declares it when
    /// the pipeline's sampler is parent-based. Declaring it for a sampler that may record such
    /// spans loses them.
    pub fn with_parent_based_sampler(mut self, parent_based: bool) -> Self {
        self.parent_based = parent_based;
        self
    }

    /// Whether the sampler was declared parent-based (see
    /// [`with_parent_based_sampler`](Self::with_parent_based_sampler)).
    pub fn is_parent_based(&self) -> bool {
        self.parent_based
    }

    /// The tracer.
    pub fn tracer(&self) -> &BoxedTracer {
        match &*self.source {
            Source::Global(cell) => cell.get_or_init(|| global::tracer_with_scope(scope())),
            Source::Fixed { tracer, .. } | Source::Recorder { tracer, .. } => tracer,
        }
    }

    /// Starts a span from `builder` as a child of `parent` (a new root if `parent` holds no
    /// span) and returns `parent` with the span: what
    /// `parent.with_span(self.tracer().build_with_context(builder, parent))` does, with one
    /// allocation less for a provider of its own.
    pub fn start(&self, builder: SpanBuilder, parent: &Context) -> Context {
        match &*self.source {
            Source::Recorder { recorder, .. } => recorder.start(builder, parent),
            Source::Fixed { start, .. } => start(builder, parent),
            Source::Global(_) => {
                parent.with_span(self.tracer().build_with_context(builder, parent))
            }
        }
    }

    /// Starts a span of `recipe`, with `links`, as a child of `parent`, and returns the
    /// context with the span and whether the span records: what
    /// `self.start(recipe.into_builder().with_links(links), &parent.into_context())` and the
    /// span's `is_recording` return, without building a span builder (nor, for a caller read
    /// from headers, a context for the caller's span) for a pipeline's tracer, whose recorder
    /// knows the answer without asking the span (a lock and a dynamic call).
    ///
    /// A layer carries the context on either way, and records the response only when the
    /// span records:
    ///
    /// ```
    /// use opentelemetry::Context;
    /// use opentelemetry::trace::{SpanKind, TraceContextExt};
    /// use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
    /// use tracing_core_lite::recipe::SpanRecipe;
    /// use tracing_core_lite::{Parent, TracerSource};
    ///
    /// let recipe = || SpanRecipe {
    ///     name: "GET /orders/{id}".into(),
    ///     kind: SpanKind::Server,
    ///     attributes: Vec::new(),
    /// };
    /// for (sampler, records) in [(Sampler::AlwaysOn, true), (Sampler::AlwaysOff, false)] {
    ///     let provider = SdkTracerProvider::builder().with_sampler(sampler).build();
    ///     let source = TracerSource::from_provider(&provider);
    ///     let (cx, recording) = source.start_recipe(recipe(), Vec::new(), Parent::context(Context::new()));
    ///     assert_eq!(recording, records);
    ///     assert_eq!(recording, cx.span().is_recording());
    /// }
    /// ```
    pub fn start_recipe(
        &self,
        recipe: SpanRecipe,
        links: Vec<Link>,
        parent: Parent,
    ) -> (Context, bool) {
        match &*self.source {
            Source::Recorder { recorder, .. } => recorder.start_parts(
                Parts {
                    name: recipe.name,
                    kind: recipe.kind,
                    attributes: recipe.attributes,
                    links,
                    events: None,
                    start_time: None,
                },
                &parent.cx,
                parent.caller.as_ref(),
            ),
            _ => {
                let mut builder = recipe.into_builder();
                if !links.is_empty() {
                    builder = builder.with_links(links);
                }
                let cx = self.start(builder, &parent.into_context());
                let recording = cx.span().is_recording();
                (cx, recording)
            }
        }
    }
}

/// The parent of a span that a layer starts: a context, or a context and the span context of
/// a caller that a server read from the request headers, not yet put into a context of its
/// own (one that only the span's start would read: an allocation per request).
#[derive(Clone, Debug)]
pub struct Parent {
    cx: Context,
    caller: Option<SpanContext>,
}

impl Parent {
    /// The span of `cx` (none: a root span), in `cx`.
    pub fn context(cx: Context) -> Self {
        Parent { cx, caller: None }
    }

    /// The remote span `caller`, in `cx` (the current context, with the caller's baggage).
    pub fn caller(cx: Context, caller: SpanContext) -> Self {
        Parent {
            cx,
            caller: Some(caller),
        }
    }

    /// The parent span's context (not valid for a root span).
    pub fn span_context(&self) -> SpanContext {
        match &self.caller {
            Some(caller) => caller.clone(),
            None => self.cx.span().span_context().clone(),
        }
    }

    /// The parent as one context: the caller's span in it, if any.
    pub fn into_context(self) -> Context {
        match self.caller {
            Some(caller) => self.cx.with_remote_span_context(caller),
            None => self.cx,
        }
    }
}

impl From<Context> for Parent {
    fn from(cx: Context) -> Self {
        Parent::context(cx)
    }
}

pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(INSTRUMENTATION_SCOPE)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

impl Default for TracerSource {
    fn default() -> Self {
        TracerSource::global()
    }
}

impl fmt::Debug for TracerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.source {
            Source::Global(_) => f.write_str("TracerSource::Global"),
            Source::Fixed { .. } => f.write_str("TracerSource::Fixed"),
            Source::Recorder { .. } => f.write_str("TracerSource::Pipeline"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::Tracer;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};

    #[test]
    fn a_fixed_provider_is_used_with_the_workspace_scope() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let source = TracerSource::from_provider(&provider);
        source.clone().tracer().in_span("x", |_| {});
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].instrumentation_scope.name(), INSTRUMENTATION_SCOPE);
        // `start` uses the same tracer, unboxed.
        let cx = source.start(SpanBuilder::from_name("y"), &Context::new());
        cx.span().end();
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].name, "y");
        assert_eq!(spans[1].instrumentation_scope.name(), INSTRUMENTATION_SCOPE);
        assert!(!source.is_parent_based());
        assert!(source.with_parent_based_sampler(true).is_parent_based());
    }
}
