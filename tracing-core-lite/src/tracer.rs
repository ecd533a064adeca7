//! Where the layers get their tracer: the global provider (resolved on first use, so a layer
//! built before the pipeline is installed still finds it) or a provider of your own (several
//! services in one process, tests).

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::InstrumentationScope;
use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::trace::TracerProvider;

use crate::pipeline::INSTRUMENTATION_SCOPE;

/// A cheaply cloneable handle on the tracer the layers start spans with.
#[derive(Clone)]
pub struct TracerSource(Arc<Source>);

enum Source {
    Global(OnceLock<BoxedTracer>),
    Fixed(BoxedTracer),
}

impl TracerSource {
    /// The global tracer provider, looked up when the first span is started.
    pub fn global() -> Self {
        TracerSource(Arc::new(Source::Global(OnceLock::new())))
    }

    /// A tracer of `provider`, under this workspace's instrumentation scope.
    pub fn from_provider<P>(provider: &P) -> Self
    where
        P: TracerProvider,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as opentelemetry::trace::Tracer>::Span: Send + Sync + 'static,
    {
        let scope = InstrumentationScope::builder(INSTRUMENTATION_SCOPE)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        TracerSource(Arc::new(Source::Fixed(BoxedTracer::new(Box::new(
            provider.tracer_with_scope(scope),
        )))))
    }

    /// The tracer.
    pub fn tracer(&self) -> &BoxedTracer {
        match &*self.0 {
            Source::Global(cell) => cell.get_or_init(|| {
                let scope = InstrumentationScope::builder(INSTRUMENTATION_SCOPE)
                    .with_version(env!("CARGO_PKG_VERSION"))
                    .build();
                global::tracer_with_scope(scope)
            }),
            Source::Fixed(tracer) => tracer,
        }
    }
}

impl Default for TracerSource {
    fn default() -> Self {
        TracerSource::global()
    }
}

impl fmt::Debug for TracerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            Source::Global(_) => f.write_str("TracerSource::Global"),
            Source::Fixed(_) => f.write_str("TracerSource::Fixed"),
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
    }
}
