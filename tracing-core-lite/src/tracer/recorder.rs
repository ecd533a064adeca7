//! The tracer behind [`PipelineGuard::tracer_source`](crate::PipelineGuard::tracer_source):
//! the SDK tracer's work without its overhead, for the pipeline's own span processors.
//!
//! The SDK's tracer keeps a span as a `SpanData` inside an `SdkTracer` span, copies the
//! builder and that data several times on the way, and calls every processor's `on_start`.
//! A [`Recorder`] makes the same decisions (the pipeline's sampler, the same id generator,
//! the same span limits) into a span of its own, [`RecordingSpan`], which implements the
//! OpenTelemetry [`Span`] interface (handlers and interceptors use it through the context as
//! any span) and hands the same [`SpanData`] to the same processors when it ends.
//!
//! It is only used where every processor is one this crate built (the pipeline's batch
//! processors and, in tests, the SDK's simple processor): those do nothing on start, so
//! skipping `on_start` changes nothing.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, Link, Span, SpanBuilder, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, SamplingResult, ShouldSample,
    SpanData, SpanEvents, SpanLimits, SpanLinks, SpanProcessor,
};

use crate::export::stock;

/// Starts spans for a set of span processors, as the SDK's tracer of a provider with that
/// sampler, those processors and the default limits would.
pub(crate) struct Recorder {
    sampler: Sampler,
    ids: RandomIdGenerator,
    limits: SpanLimits,
    scope: InstrumentationScope,
    processors: Vec<Arc<dyn SpanProcessor>>,
}

impl fmt::Debug for Recorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recorder")
            .field("sampler", &self.sampler)
            .field("processors", &self.processors.len())
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for `processors`, whose `on_start` must do nothing.
    pub(crate) fn new(
        sampler: Sampler,
        scope: InstrumentationScope,
        processors: Vec<Arc<dyn SpanProcessor>>,
    ) -> Self {
        Recorder {
            sampler,
            ids: RandomIdGenerator::default(),
            limits: SpanLimits::default(),
            scope,
            processors,
        }
    }

    /// Starts a span from `builder` as a child of `parent`'s span (a new trace if it has no
    /// valid one) and returns `parent` with it, as
    /// `parent.with_span(tracer.build_with_context(builder, parent))` does with the SDK.
    pub(crate) fn start(self: &Arc<Self>, mut builder: SpanBuilder, parent: &Context) -> Context {
        let kind = builder.span_kind.take().unwrap_or(SpanKind::Internal);
        let attributes = builder.attributes.take().unwrap_or_default();
        let links = builder.links.take().unwrap_or_default();
        let events = builder.events.take();
        let start_time = builder.start_time;
        self.start_parts(
            Parts {
                name: builder.name,
                kind,
                attributes,
                links,
                events,
                start_time,
            },
            parent,
            None,
        )
        .0
    }

    /// [`start`](Self::start) without a span builder: what the layers start (a recipe and
    /// maybe links) is moved in as it is. With a `caller`, the parent is that remote span in
    /// `parent` (whose own span is then not read): what starting under
    /// `parent.with_remote_span_context(caller)` does, without making that context unless the
    /// sampler needs it. Also returns whether the span records, which is known here (a
    /// recording span's `is_recording` is a lock and a dynamic call).
    pub(crate) fn start_parts(
        self: &Arc<Self>,
        parts: Parts,
        parent: &Context,
        caller: Option<&SpanContext>,
    ) -> (Context, bool) {
        let Parts {
            name,
            kind,
            mut attributes,
            mut links,
            events,
            start_time,
        } = parts;
        if parent.is_telemetry_suppressed() {
            stock::give_back(attributes);
            return (
                parent.with_remote_span_context(SpanContext::empty_context()),
                false,
            );
        }
        let span_id = self.ids.new_span_id();
        let parent_span = parent.span();
        let psc = caller.unwrap_or_else(|| parent_span.span_context());
        let trace_id = if psc.is_valid() {
            psc.trace_id()
        } else {
            self.ids.new_trace_id()
        };
        let has_parent = caller.is_some() || parent.has_active_span();
        let result = match self.decide_from_parent(psc, has_parent) {
            Some(result) => result,
            None => {
                // The sampler reads the parent from a context: the caller's is made only here.
                let with_caller =
                    caller.map(|caller| parent.with_remote_span_context(caller.clone()));
                let sampled_parent = with_caller.as_ref().unwrap_or(parent);
                self.sampler.should_sample(
                    Some(sampled_parent),
                    trace_id,
                    &name,
                    &kind,
                    &attributes,
                    &links,
                )
            }
        };
        let flags = match result.decision {
            SamplingDecision::Drop => {
                let sc = SpanContext::new(
                    trace_id,
                    span_id,
                    TraceFlags::default(),
                    false,
                    result.trace_state,
                );
                // Not recording: the context carries the ids on, and nothing else is kept.
                stock::give_back(attributes);
                return (parent.with_remote_span_context(sc), false);
            }
            SamplingDecision::RecordOnly => psc.trace_flags().with_sampled(false),
            SamplingDecision::RecordAndSample => psc.trace_flags().with_sampled(true),
        };
        let span_context = SpanContext::new(trace_id, span_id, flags, false, result.trace_state);

        let limits = &self.limits;
        if !result.attributes.is_empty() {
            attributes.extend(result.attributes);
        }
        let dropped_attributes_count = truncate(&mut attributes, limits.max_attributes_per_span);
        let links = if links.is_empty() {
            SpanLinks::default()
        } else {
            let dropped_count = truncate(&mut links, limits.max_links_per_span);
            for link in &mut links {
                link.dropped_attributes_count =
                    truncate(&mut link.attributes, limits.max_attributes_per_link);
            }
            let mut span_links = SpanLinks::default();
            span_links.links = links;
            span_links.dropped_count = dropped_count;
            span_links
        };
        let events = events.map_or_else(SpanEvents::default, |mut events| {
            let dropped_count = truncate(&mut events, limits.max_events_per_span);
            for event in &mut events {
                event.dropped_attributes_count =
                    truncate(&mut event.attributes, limits.max_attributes_per_event);
            }
            let mut span_events = SpanEvents::default();
            span_events.events = events;
            span_events.dropped_count = dropped_count;
            span_events
        });
        let start_time = start_time.unwrap_or_else(opentelemetry::time::now);
        let span = RecordingSpan {
            span_context,
            data: Some(Data {
                parent_span_id: psc.span_id(),
                parent_span_is_remote: psc.is_valid() && psc.is_remote(),
                kind,
                name,
                start_time,
                attributes,
                dropped_attributes_count,
                events,
                links,
                status: Status::Unset,
            }),
            recorder: Arc::clone(self),
        };
        (parent.with_span(span), true)
    }

    /// The sampler's result for a span whose parent span has the context `parent` (the empty
    /// context when no context holds a parent span: `has_parent` is then false), without a
    /// context to hold it, where the sampler reads nothing but that span context: what the
    /// SDK's `AlwaysOn` and `AlwaysOff` return, and `ParentBased` where there is a parent span
    /// (the parent's decision, the parent's trace state, no attributes). `None` for the others,
    /// which are asked.
    fn decide_from_parent(&self, parent: &SpanContext, has_parent: bool) -> Option<SamplingResult> {
        let decision = match &self.sampler {
            Sampler::AlwaysOn => SamplingDecision::RecordAndSample,
            Sampler::AlwaysOff => SamplingDecision::Drop,
            Sampler::ParentBased(_) if has_parent && parent.is_sampled() => {
                SamplingDecision::RecordAndSample
            }
            Sampler::ParentBased(_) if has_parent => SamplingDecision::Drop,
            _ => return None,
        };
        Some(SamplingResult {
            decision,
            attributes: Vec::new(),
            trace_state: parent.trace_state().clone(),
        })
    }

    fn finish(&self, span_context: SpanContext, data: Data, end_time: SystemTime) {
        let span = SpanData {
            span_context,
            parent_span_id: data.parent_span_id,
            parent_span_is_remote: data.parent_span_is_remote,
            span_kind: data.kind,
            name: data.name,
            start_time: data.start_time,
            end_time,
            attributes: data.attributes,
            dropped_attributes_count: data.dropped_attributes_count,
            events: data.events,
            links: data.links,
            status: data.status,
            instrumentation_scope: self.scope.clone(),
        };
        match self.processors.as_slice() {
            [] => {}
            [one] => one.on_end(span),
            [rest @ .., last] => {
                for processor in rest {
                    processor.on_end(span.clone());
                }
                last.on_end(span);
            }
        }
    }
}

/// What a span is started from.
pub(crate) struct Parts {
    pub(crate) name: Cow<'static, str>,
    pub(crate) kind: SpanKind,
    pub(crate) attributes: Vec<KeyValue>,
    pub(crate) links: Vec<Link>,
    pub(crate) events: Option<Vec<Event>>,
    pub(crate) start_time: Option<SystemTime>,
}

/// Keeps at most `limit` items of `items`, and says how many were dropped.
fn truncate<T>(items: &mut Vec<T>, limit: u32) -> u32 {
    let limit = limit as usize;
    let dropped = items.len().saturating_sub(limit);
    items.truncate(limit);
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

/// What a recording span keeps until it ends.
struct Data {
    parent_span_id: opentelemetry::trace::SpanId,
    parent_span_is_remote: bool,
    kind: SpanKind,
    name: Cow<'static, str>,
    start_time: SystemTime,
    attributes: Vec<KeyValue>,
    dropped_attributes_count: u32,
    events: SpanEvents,
    links: SpanLinks,
    status: Status,
}

/// A span started by a [`Recorder`]: recording until it ends (or is dropped, which ends it),
/// with the SDK span's limits and status rules.
pub(crate) struct RecordingSpan {
    span_context: SpanContext,
    /// `None` once ended.
    data: Option<Data>,
    recorder: Arc<Recorder>,
}

impl fmt::Debug for RecordingSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordingSpan")
            .field("span_context", &self.span_context)
            .field("recording", &self.data.is_some())
            .finish_non_exhaustive()
    }
}

impl RecordingSpan {
    fn end_at(&mut self, end_time: Option<SystemTime>) {
        if let Some(data) = self.data.take() {
            let end_time = end_time.unwrap_or_else(opentelemetry::time::now);
            self.recorder
                .finish(self.span_context.clone(), data, end_time);
        }
    }
}

impl Span for RecordingSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        mut attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        let limits = &self.recorder.limits;
        if let Some(data) = &mut self.data {
            if data.events.events.len() < limits.max_events_per_span as usize {
                let dropped = truncate(&mut attributes, limits.max_attributes_per_event);
                if data.events.events.capacity() == 0 {
                    data.events.events = stock::events();
                }
                data.events
                    .events
                    .push(Event::new(name, timestamp, attributes, dropped));
            } else {
                data.events.dropped_count += 1;
            }
        }
    }

    fn span_context(&self) -> &SpanContext {
        &self.span_context
    }

    fn is_recording(&self) -> bool {
        self.data.is_some()
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        let limit = self.recorder.limits.max_attributes_per_span as usize;
        if let Some(data) = &mut self.data {
            if data.attributes.len() < limit {
                data.attributes.push(attribute);
            } else {
                data.dropped_attributes_count += 1;
            }
        }
    }

    fn set_status(&mut self, status: Status) {
        if let Some(data) = &mut self.data
            && status > data.status
        {
            // Ok > Error > Unset, as the SDK orders them.
            data.status = status;
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        if let Some(data) = &mut self.data {
            data.name = new_name.into();
        }
    }

    fn add_link(&mut self, span_context: SpanContext, mut attributes: Vec<KeyValue>) {
        let limits = &self.recorder.limits;
        if let Some(data) = &mut self.data {
            if data.links.links.len() < limits.max_links_per_span as usize {
                let dropped = truncate(&mut attributes, limits.max_attributes_per_link);
                data.links
                    .links
                    .push(Link::new(span_context, attributes, dropped));
            } else {
                data.links.dropped_count += 1;
            }
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        self.end_at(Some(timestamp));
    }
}

impl Drop for RecordingSpan {
    fn drop(&mut self) {
        self.end_at(None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::BaggageExt;
    use opentelemetry::trace::{SpanId, TraceId, TraceState, Tracer, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SimpleSpanProcessor};

    fn recorder(sampler: Sampler) -> (Arc<Recorder>, InMemorySpanExporter) {
        let exporter = InMemorySpanExporter::default();
        let processor: Arc<dyn SpanProcessor> =
            Arc::new(SimpleSpanProcessor::new(exporter.clone()));
        let scope = crate::tracer::scope();
        (
            Arc::new(Recorder::new(sampler, scope, vec![processor])),
            exporter,
        )
    }

    fn remote_parent(sampled: bool) -> Context {
        Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
            SpanId::from(0x00f0_67aa_0ba9_02b7),
            if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            true,
            TraceState::from_key_value([("k", "v")]).unwrap(),
        ))
    }

    fn parts() -> Parts {
        Parts {
            name: "GET /orders/{id}".into(),
            kind: SpanKind::Server,
            attributes: vec![KeyValue::new("a", 1)],
            links: Vec::new(),
            events: None,
            start_time: None,
        }
    }

    fn builder() -> SpanBuilder {
        SpanBuilder::from_name("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .with_attributes([KeyValue::new("a", 1)])
    }

    #[test]
    fn a_span_the_sampler_drops_gives_its_attributes_vector_back_to_the_thread() {
        let (recorder, exporter) = recorder(Sampler::AlwaysOff);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut attributes = stock::attributes(14);
                attributes.push(KeyValue::new("a", 1));
                let at = attributes.as_ptr();
                let parts = Parts {
                    name: "dropped".into(),
                    kind: SpanKind::Server,
                    attributes,
                    links: Vec::new(),
                    events: None,
                    start_time: None,
                };
                let (cx, recording) = recorder.start_parts(parts, &Context::new(), None);
                assert!(!recording);
                assert!(!cx.span().is_recording());
                // Would take the block had the vector been freed (the allocator hands the
                // last block freed out first).
                let decoy: Vec<KeyValue> = Vec::with_capacity(16);
                // The next span of this thread gets the same vector, emptied.
                let again = stock::attributes(14);
                assert_ne!(decoy.as_ptr(), at);
                assert_eq!(again.as_ptr(), at);
                assert!(again.is_empty());
            });
        });
        assert!(exporter.get_finished_spans().unwrap().is_empty());
    }

    /// The same span through the SDK's tracer and through the recorder: the same data.
    #[test]
    fn records_what_the_sdk_tracer_records() {
        let sdk_exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(sdk_exporter.clone())
            .build();
        let (recorder, exporter) = recorder(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let parent = remote_parent(true);
        let sdk_cx = parent.with_span(
            provider
                .tracer_with_scope(crate::tracer::scope())
                .build_with_context(builder(), &parent),
        );
        let our_cx = recorder.start(builder(), &parent);
        for cx in [&sdk_cx, &our_cx] {
            let span = cx.span();
            assert!(span.is_recording());
            span.set_attribute(KeyValue::new("b", "two"));
            span.add_event("ev", vec![KeyValue::new("c", true)]);
            span.add_link(SpanContext::empty_context(), vec![]);
            span.set_status(Status::error("bad"));
            span.set_status(Status::Unset); // lower than Error: ignored
            span.update_name("renamed");
            span.end();
            span.set_attribute(KeyValue::new("late", 1)); // after the end: ignored
            assert!(!span.is_recording());
        }
        let sdk = &sdk_exporter.get_finished_spans().unwrap()[0];
        let ours = &exporter.get_finished_spans().unwrap()[0];
        let sc = our_cx.span().span_context().clone();
        assert_eq!(sc.trace_id(), parent.span().span_context().trace_id());
        assert!(sc.is_sampled() && !sc.is_remote());
        assert_eq!(sc.trace_state().get("k"), Some("v"));
        assert_eq!(ours.span_context, sc);
        assert_eq!(ours.parent_span_id, SpanId::from(0x00f0_67aa_0ba9_02b7));
        assert_eq!(ours.parent_span_is_remote, sdk.parent_span_is_remote);
        assert_eq!(ours.span_kind, sdk.span_kind);
        assert_eq!(ours.name, sdk.name);
        assert_eq!(ours.attributes, sdk.attributes);
        assert_eq!(ours.events.events.len(), 1);
        assert_eq!(ours.events.events[0].name, sdk.events.events[0].name);
        assert_eq!(
            ours.events.events[0].attributes,
            sdk.events.events[0].attributes
        );
        assert_eq!(ours.links.links.len(), sdk.links.links.len());
        assert_eq!(ours.status, sdk.status);
        assert_eq!(ours.instrumentation_scope, sdk.instrumentation_scope);
        assert!(ours.end_time >= ours.start_time);
    }

    /// A caller's span context handed in beside the context: the same span, and the same
    /// decision for every sampler (those decided directly and those asked with a context).
    #[test]
    fn a_caller_beside_the_context_is_the_caller_in_it() {
        let samplers = [
            Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Sampler::AlwaysOn,
            Sampler::AlwaysOff,
            Sampler::TraceIdRatioBased(0.5),
            Sampler::TraceIdRatioBased(0.0),
        ];
        let baggage = Context::new().with_baggage([KeyValue::new("user", "alice")]);
        for a in samplers {
            for sampled in [true, false] {
                let caller = remote_parent(sampled).span().span_context().clone();
                let (in_context, in_exporter) = recorder(a.clone());
                let (beside, beside_exporter) = recorder(a.clone());
                let with_caller = baggage.with_remote_span_context(caller.clone());
                let (one, one_recording) = in_context.start_parts(parts(), &with_caller, None);
                let (two, two_recording) = beside.start_parts(parts(), &baggage, Some(&caller));
                // The flag returned is the span's own answer.
                assert_eq!(one_recording, one.span().is_recording(), "{a:?}");
                assert_eq!(two_recording, two.span().is_recording(), "{a:?}");
                let (one_sc, two_sc) = (
                    one.span().span_context().clone(),
                    two.span().span_context().clone(),
                );
                assert_eq!(
                    (
                        one_sc.trace_id(),
                        one_sc.trace_flags(),
                        one_sc.trace_state()
                    ),
                    (
                        two_sc.trace_id(),
                        two_sc.trace_flags(),
                        two_sc.trace_state()
                    ),
                    "{a:?} sampled={sampled}"
                );
                assert_eq!(one.span().is_recording(), two.span().is_recording());
                assert_eq!(
                    two.baggage().get("user").map(|v| v.to_string()).as_deref(),
                    Some("alice")
                );
                one.span().end();
                two.span().end();
                let (one, two) = (
                    in_exporter.get_finished_spans().unwrap(),
                    beside_exporter.get_finished_spans().unwrap(),
                );
                assert_eq!(one.len(), two.len(), "{a:?} sampled={sampled}");
                for (one, two) in one.iter().zip(&two) {
                    assert_eq!(one.parent_span_id, caller.span_id());
                    assert_eq!(two.parent_span_id, caller.span_id());
                    assert!(one.parent_span_is_remote && two.parent_span_is_remote);
                    assert_eq!(one.attributes, two.attributes);
                }
            }
        }
    }

    /// Where the recorder decides without asking the sampler, it decides as the SDK's sampler
    /// does, for every kind of parent context.
    #[test]
    fn decisions_without_the_sampler_are_the_samplers() {
        let samplers = [
            Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
            Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            Sampler::AlwaysOn,
            Sampler::AlwaysOff,
            Sampler::TraceIdRatioBased(0.5),
        ];
        let local = {
            let (parent_maker, _) = recorder(Sampler::AlwaysOn);
            parent_maker.start(builder(), &remote_parent(true))
        };
        let parents = [
            Context::new(),
            remote_parent(true),
            remote_parent(false),
            local,
            // A context holding a span that is not valid: a parent all the same to
            // `ParentBased`, which follows its (unsampled) flags.
            Context::new().with_remote_span_context(SpanContext::empty_context()),
        ];
        let trace_id = TraceId::from(7u128);
        let attributes = [KeyValue::new("a", 1)];
        let mut decided = 0;
        for sampler in samplers {
            let (recorder, _) = recorder(sampler.clone());
            for parent in &parents {
                let psc = parent.span().span_context().clone();
                let has_parent = parent.has_active_span();
                let Some(ours) = recorder.decide_from_parent(&psc, has_parent) else {
                    continue;
                };
                decided += 1;
                let sdk = sampler.should_sample(
                    Some(parent),
                    trace_id,
                    "name",
                    &SpanKind::Server,
                    &attributes,
                    &[],
                );
                assert_eq!(ours.decision, sdk.decision, "{sampler:?} {psc:?}");
                assert_eq!(ours.trace_state, sdk.trace_state, "{sampler:?} {psc:?}");
                assert_eq!(ours.attributes, sdk.attributes, "{sampler:?} {psc:?}");
            }
        }
        // Both `ParentBased` with the four parents that hold a span, `AlwaysOn` and
        // `AlwaysOff` with all five; the ratio sampler is asked.
        assert_eq!(decided, 2 * 4 + 2 * 5);
    }

    #[test]
    fn a_dropped_span_carries_the_ids_on_and_records_nothing() {
        let (parent_based, exporter) = recorder(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let cx = parent_based.start(builder(), &remote_parent(false));
        let span = cx.span();
        assert!(!span.is_recording());
        let sc = span.span_context();
        assert!(sc.is_valid() && !sc.is_sampled() && !sc.is_remote());
        assert_eq!(
            sc.trace_id(),
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736)
        );
        span.end();
        assert!(exporter.get_finished_spans().unwrap().is_empty());

        let (always, _) = recorder(Sampler::AlwaysOn);
        let suppressed = Context::new().with_telemetry_suppressed();
        assert!(!always.start(builder(), &suppressed).span().is_recording());
        let (cx, recording) = always.start_parts(parts(), &suppressed, None);
        assert!(!recording && !cx.span().is_recording());
    }

    /// A sampler of its own that records without sampling: the span records, and says so.
    #[test]
    fn a_span_recorded_but_not_sampled_says_it_records() {
        #[derive(Clone, Debug)]
        struct RecordOnly;
        impl ShouldSample for RecordOnly {
            fn should_sample(
                &self,
                _: Option<&Context>,
                _: TraceId,
                _: &str,
                _: &SpanKind,
                _: &[KeyValue],
                _: &[Link],
            ) -> SamplingResult {
                SamplingResult {
                    decision: SamplingDecision::RecordOnly,
                    attributes: Vec::new(),
                    trace_state: TraceState::NONE,
                }
            }
        }
        let (recorder, _) = recorder(Sampler::ParentBased(Box::new(RecordOnly)));
        let (cx, recording) = recorder.start_parts(parts(), &Context::new(), None);
        assert!(recording && cx.span().is_recording());
        assert!(!cx.span().span_context().is_sampled());
    }

    #[test]
    fn a_root_gets_a_new_trace_and_an_unended_span_ends_when_dropped() {
        let (recorder, exporter) = recorder(Sampler::AlwaysOn);
        let cx = recorder.start(builder(), &Context::new());
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && sc.is_sampled());
        drop(cx);
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].span_context, sc);
        assert_eq!(spans[0].parent_span_id, SpanId::INVALID);
        assert!(!spans[0].parent_span_is_remote);
    }

    #[test]
    fn limits_are_the_sdk_defaults_and_every_processor_gets_the_span() {
        let (first, second) = (
            InMemorySpanExporter::default(),
            InMemorySpanExporter::default(),
        );
        let processors: Vec<Arc<dyn SpanProcessor>> = vec![
            Arc::new(SimpleSpanProcessor::new(first.clone())),
            Arc::new(SimpleSpanProcessor::new(second.clone())),
        ];
        let recorder = Arc::new(Recorder::new(
            Sampler::AlwaysOn,
            crate::tracer::scope(),
            processors,
        ));
        let many = (0..200).map(|i| KeyValue::new(format!("k{i}"), i));
        let cx = recorder.start(builder().with_attributes(many), &Context::new());
        for i in 0..200 {
            cx.span().add_event(format!("e{i}"), vec![]);
        }
        cx.span().end();
        for exporter in [first, second] {
            let spans = exporter.get_finished_spans().unwrap();
            let limits = SpanLimits::default();
            assert_eq!(
                spans[0].attributes.len(),
                limits.max_attributes_per_span as usize
            );
            assert_eq!(
                spans[0].dropped_attributes_count,
                200 - limits.max_attributes_per_span
            );
            assert_eq!(
                spans[0].events.events.len(),
                limits.max_events_per_span as usize
            );
            assert_eq!(
                spans[0].events.dropped_count,
                200 - limits.max_events_per_span
            );
        }
    }
}
