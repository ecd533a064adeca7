//! Sampling decisions taken by the layers before the SDK's sampler sees a span.

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

/// A context for a request that must not be recorded: the parent's trace, or a new one, with
/// the not-sampled flag, so that the calls made under it carry "not sampled" downstream.
pub fn unsampled_context(parent: &Context) -> Context {
    parent.with_remote_span_context(unsampled_child(parent.span().span_context()))
}

/// The span context of a child of `parent` that is not recorded: the parent's trace and trace
/// state (a new trace if `parent` is not valid), a new span id, not sampled.
pub(crate) fn unsampled_child(parent: &SpanContext) -> SpanContext {
    let ids = RandomIdGenerator::default();
    let (trace_id, trace_state) = if parent.is_valid() {
        (parent.trace_id(), parent.trace_state().clone())
    } else {
        (ids.new_trace_id(), TraceState::NONE)
    };
    SpanContext::new(
        trace_id,
        ids.new_span_id(),
        TraceFlags::NOT_SAMPLED,
        true,
        trace_state,
    )
}

/// Whether `cx` holds a valid span context that is not sampled: under a parent-based sampler,
/// its children are not recorded.
pub fn is_unsampled(cx: &Context) -> bool {
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid() && !sc.is_sampled()
}

/// A new random trace id (for decisions about a request that starts a trace).
pub fn random_trace_id() -> TraceId {
    RandomIdGenerator::default().new_trace_id()
}

/// Whether a trace falls inside `ratio` (0 to 1), the way the SDK's `TraceIdRatioBased`
/// decides: by the trace id's low 63 bits, so every service that decides on the same trace id
/// with the same ratio agrees.
pub fn trace_id_in_ratio(trace_id: TraceId, ratio: f64) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    if ratio.is_nan() || ratio <= 0.0 {
        return false;
    }
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    let value = u64::from_be_bytes(low) >> 1;
    // `ratio < 1` here, so the bound fits in 63 bits.
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    value < bound
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::SpanId;

    #[test]
    fn unsampled_keeps_the_parent_trace() {
        let parent_sc = SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("k", "v")]).unwrap(),
        );
        let cx = unsampled_context(&Context::new().with_remote_span_context(parent_sc));
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid() && !sc.is_sampled());
        assert_eq!(sc.trace_id(), TraceId::from(7));
        assert_ne!(sc.span_id(), SpanId::from(9));
        assert_eq!(sc.trace_state().get("k"), Some("v"));
        let fresh = unsampled_context(&Context::new());
        assert!(fresh.span().span_context().is_valid());
        assert!(!fresh.span().span_context().is_sampled());
    }

    #[test]
    fn ratio_is_deterministic_and_proportional() {
        assert!(trace_id_in_ratio(TraceId::from(u128::MAX), 1.0));
        assert!(!trace_id_in_ratio(TraceId::from(0), 0.0));
        assert!(!trace_id_in_ratio(TraceId::from(0), f64::NAN));
        let ids = RandomIdGenerator::default();
        let n = 20_000;
        let kept = (0..n)
            .filter(|_| trace_id_in_ratio(ids.new_trace_id(), 0.25))
            .count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
        let id = ids.new_trace_id();
        assert_eq!(trace_id_in_ratio(id, 0.5), trace_id_in_ratio(id, 0.5));
    }
}
