//! Context propagation: the formats, the carriers, and the composite that `OTEL_PROPAGATORS`
//! configures.
//!
//! | `OTEL_PROPAGATORS` value | propagator | headers |
//! |---|---|---|
//! | `tracecontext` | [`TraceContextPropagator`] | `traceparent`, `tracestate` |
//! | `baggage` | [`BaggagePropagator`] (from the opentelemetry SDK) | `baggage` |
//! | `b3` | [`B3Propagator`] single header | `b3` |
//! | `b3multi` | [`B3Propagator`] multi header | `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`, `x-b3-flags` |
//! | `jaeger` | [`JaegerPropagator`] | `uber-trace-id`, `uberctx-{key}` |
//! | `none` | nothing is injected or extracted | |
//!
//! The default is `tracecontext,baggage`. [`Propagators`] injects every configured format and
//! takes the span context from the *first* format that yields a valid one, so a service that
//! accepts both W3C and B3 callers joins whichever trace the caller started; baggage is merged
//! from every format that carries it.
//!
//! Limits on what a caller can make a service carry (see `RELIABILITY.md`): the baggage of a
//! context holds at most 64 entries and 8192 bytes of keys and values (opentelemetry's
//! `Baggage` refuses more); the SDK's `baggage` propagator drops a header longer than 8192
//! bytes as a whole (a 1 MiB one included, in time linear in its size), takes the first 64
//! entries of a shorter one, and reads only the first `baggage` header of a request;
//! [`JaegerPropagator`] takes at most 64 `uberctx-*` headers; `tracestate` keeps at most 32
//! members (more discard it). Public endpoints (the layers' `with_public_endpoint`) take no
//! parent and no baggage from the caller at all.
//!
//! Carriers: [`HeaderInjector`] (from `opentelemetry-http`) and [`HeaderExtractor`] adapt an
//! [`http::HeaderMap`], which is also what a tonic `MetadataMap` holds
//! (`MetadataMap::as_ref()`); a `HashMap<String, String>` is a carrier as it is, so a context
//! can ride in a queue message.
//!
//! ```
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use tracing_core_lite::propagation::{HeaderExtractor, Propagators};
//!
//! let propagators = Propagators::parse("tracecontext,b3").unwrap();
//! let mut headers = http::HeaderMap::new();
//! headers.insert("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().unwrap());
//! let cx = propagators.extract(&HeaderExtractor(&headers));
//! assert!(cx.span().span_context().is_sampled());
//! ```

pub mod b3;
pub mod jaeger;
pub mod trace_context;

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::Context;
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{Link, SpanContext, TraceContextExt};

pub use b3::{B3Encoding, B3Propagator};
pub use jaeger::JaegerPropagator;
pub use opentelemetry_http::HeaderInjector;
pub use opentelemetry_sdk::propagation::BaggagePropagator;
pub use trace_context::TraceContextPropagator;
use trace_context::TraceHeaders;

use crate::error::ConfigError;
use crate::sampling::{is_unsampled, unsampled_child, unsampled_context};
use crate::tracer::Parent;

/// The environment variable that selects the propagators.
pub const OTEL_PROPAGATORS: &str = "OTEL_PROPAGATORS";

/// The default value of [`OTEL_PROPAGATORS`].
pub const DEFAULT_PROPAGATORS: &str = "tracecontext,baggage";

/// One propagation format, as named in `OTEL_PROPAGATORS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Format {
    /// W3C `traceparent` / `tracestate`.
    TraceContext,
    /// W3C `baggage`.
    Baggage,
    /// B3 single header (`b3`).
    B3,
    /// B3 multiple headers (`x-b3-*`).
    B3Multi,
    /// Jaeger `uber-trace-id` and `uberctx-*`.
    Jaeger,
}

impl Format {
    /// The name used in `OTEL_PROPAGATORS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::TraceContext => "tracecontext",
            Format::Baggage => "baggage",
            Format::B3 => "b3",
            Format::B3Multi => "b3multi",
            Format::Jaeger => "jaeger",
        }
    }

    fn propagator(self) -> Arc<dyn TextMapPropagator + Send + Sync> {
        match self {
            Format::TraceContext => Arc::new(TraceContextPropagator::new()),
            Format::Baggage => Arc::new(BaggagePropagator::new()),
            Format::B3 => Arc::new(B3Propagator::with_encoding(B3Encoding::SingleHeader)),
            Format::B3Multi => Arc::new(B3Propagator::with_encoding(B3Encoding::MultipleHeader)),
            Format::Jaeger => Arc::new(JaegerPropagator::new()),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A composite propagator: injects every format it holds, extracts the span context from the
/// first format that yields a valid one, and merges baggage from all of them.
///
/// Unlike opentelemetry's `TextMapCompositePropagator`, where a later format overwrites the
/// span context an earlier one found, the order here is a priority: with `tracecontext,b3`, a
/// request carrying both headers continues the W3C parent.
///
/// Cloning is cheap (the propagators are shared).
#[derive(Clone)]
pub struct Propagators {
    formats: Vec<Format>,
    propagators: Arc<[Arc<dyn TextMapPropagator + Send + Sync>]>,
    fields: Arc<[String]>,
}

impl Propagators {
    /// Propagators for the given formats, in priority order. Duplicates are ignored.
    pub fn new(formats: impl IntoIterator<Item = Format>) -> Self {
        let mut unique: Vec<Format> = Vec::new();
        for f in formats {
            if !unique.contains(&f) {
                unique.push(f);
            }
        }
        let propagators: Vec<_> = unique.iter().map(|f| f.propagator()).collect();
        let fields = propagators
            .iter()
            .flat_map(|p| p.fields().map(str::to_owned))
            .collect();
        Propagators {
            formats: unique,
            propagators: propagators.into(),
            fields,
        }
    }

    /// No propagation at all (`OTEL_PROPAGATORS=none`).
    pub fn none() -> Self {
        Propagators::new([])
    }

    /// Parses an `OTEL_PROPAGATORS` value: a comma-separated list of `tracecontext`, `baggage`,
    /// `b3`, `b3multi`, `jaeger` and `none` (case-insensitive, spaces ignored). `none` alone
    /// disables propagation; an empty value means the default, `tracecontext,baggage`.
    ///
    /// # Errors
    ///
    /// An unknown name (including `xray` and `ottrace`, which this crate does not implement),
    /// or `none` together with other formats.
    pub fn parse(value: &str) -> Result<Self, ConfigError> {
        let names: Vec<&str> = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() {
            return Propagators::parse(DEFAULT_PROPAGATORS);
        }
        let mut formats = Vec::with_capacity(names.len());
        let mut none = false;
        for name in &names {
            let format = match name.to_ascii_lowercase().as_str() {
                "tracecontext" => Format::TraceContext,
                "baggage" => Format::Baggage,
                "b3" => Format::B3,
                "b3multi" => Format::B3Multi,
                "jaeger" => Format::Jaeger,
                "none" => {
                    none = true;
                    continue;
                }
                _ => {
                    return Err(ConfigError::new(
                        OTEL_PROPAGATORS,
                        value,
                        format!(
                            "unknown propagator `{name}` (expected a comma-separated list of \
                             tracecontext, baggage, b3, b3multi, jaeger, or none)"
                        ),
                    ));
                }
            };
            formats.push(format);
        }
        if none && !formats.is_empty() {
            return Err(ConfigError::new(
                OTEL_PROPAGATORS,
                value,
                "`none` cannot be combined with other propagators",
            ));
        }
        Ok(Propagators::new(formats))
    }

    /// Reads `OTEL_PROPAGATORS` through `lookup` (e.g. `|k| std::env::var(k).ok()`).
    ///
    /// # Errors
    ///
    /// As [`Propagators::parse`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Propagators::parse(&lookup(OTEL_PROPAGATORS).unwrap_or_default())
    }

    /// Reads `OTEL_PROPAGATORS` from the process environment.
    ///
    /// # Errors
    ///
    /// As [`Propagators::parse`].
    pub fn from_env() -> Result<Self, ConfigError> {
        Propagators::from_lookup(|k| std::env::var(k).ok())
    }

    /// The formats, in priority order.
    pub fn formats(&self) -> &[Format] {
        &self.formats
    }

    /// Injects `cx` into an [`http::HeaderMap`] with every format.
    ///
    /// The same as [`TextMapPropagator::inject_context`] with a [`HeaderInjector`], faster:
    /// W3C Trace Context writes its headers directly (no header-name parsing, one allocation),
    /// and an empty baggage costs nothing.
    pub fn inject_headers(&self, cx: &Context, headers: &mut http::HeaderMap) {
        for (format, p) in self.formats.iter().zip(self.propagators.iter()) {
            match format {
                Format::TraceContext => TraceContextPropagator::inject_into_headers(cx, headers),
                // The baggage propagator writes nothing for an empty baggage.
                Format::Baggage if cx.baggage().is_empty() => {}
                _ => p.inject_context(cx, &mut HeaderInjector(headers)),
            }
        }
    }

    /// Extracts the parent context from an [`http::HeaderMap`] (see [`Propagators`]), on top
    /// of the current context.
    ///
    /// The same as [`TextMapPropagator::extract`] with a [`HeaderExtractor`], faster: W3C
    /// Trace Context reads its headers directly (no header-name parsing, no allocation but the
    /// context's), and an absent `baggage` header costs one lookup.
    pub fn extract_headers(&self, headers: &http::HeaderMap) -> Context {
        self.extract_with(headers, Context::with_remote_span_context, |cx| cx)
    }

    /// [`Propagators::extract_headers`] for a server whose sampler follows its caller's
    /// decision (see [`ServerParent`]): on the W3C Trace Context fast path, no context is made
    /// for the caller's span.
    pub(crate) fn extract_headers_following_sampling(
        &self,
        headers: &http::HeaderMap,
    ) -> ServerParent {
        self.extract_with(
            headers,
            |cx, sc| {
                if sc.is_sampled() {
                    ServerParent::under(Parent::caller(cx.clone(), sc))
                } else {
                    ServerParent::Unsampled(cx.with_remote_span_context(unsampled_child(&sc)))
                }
            },
            // No caller, or not on the fast path: a context, whose span may be unsampled.
            ServerParent::following_sampling,
        )
    }

    /// [`Propagators::extract_headers`] as the parent of a server's span: on the W3C Trace
    /// Context fast path, the caller's span context beside the current context, not put into
    /// a context of its own (an allocation that only the span's start would read).
    pub(crate) fn extract_parent(&self, headers: &http::HeaderMap) -> Parent {
        self.extract_with(
            headers,
            |cx, sc| Parent::caller(cx.clone(), sc),
            Parent::context,
        )
    }

    /// What `caller` makes of the current context and the caller's span context read on the
    /// W3C Trace Context fast path, or `context` of the extracted context (the current one
    /// when the headers name no caller). Generic, so that each use compiles to its own fast
    /// path without an intermediate value.
    fn extract_with<T>(
        &self,
        headers: &http::HeaderMap,
        caller: impl FnOnce(&Context, SpanContext) -> T,
        context: impl FnOnce(Context) -> T,
    ) -> T {
        Context::map_current(|cx| match self.trace_context_only(headers) {
            Some(found) => match TraceContextPropagator::extract_found(&found, headers) {
                Some(sc) => caller(cx, sc),
                None => context(cx.clone()),
            },
            None => context(self.extract_from(cx, Some(headers), &HeaderExtractor(headers))),
        })
    }

    /// The headers of the usual configuration (`tracecontext` alone or with `baggage`) without
    /// baggage, where extraction is W3C Trace Context's alone (what the composite's loop would
    /// return, without it); `None` for every other case.
    fn trace_context_only<'h>(&self, headers: &'h http::HeaderMap) -> Option<TraceHeaders<'h>> {
        match self.formats.as_slice() {
            [Format::TraceContext] => Some(TraceHeaders::find(headers)),
            [Format::TraceContext, Format::Baggage] => {
                Some(TraceHeaders::find(headers)).filter(|found| !found.baggage)
            }
            _ => None,
        }
    }

    /// Sets these propagators as opentelemetry's global text-map propagator, and remembers
    /// them, so that [`extract_headers`] and [`inject_headers`] without propagators (the
    /// layers' default: the global propagator) recognize them and take the header-map fast
    /// paths of [`Propagators::extract_headers`] and [`Propagators::inject_headers`].
    /// [`crate::Pipeline::install`] calls it.
    pub fn install_global(&self) {
        // Only the first propagators installed are remembered; later ones are used all the
        // same, through the `TextMapPropagator` interface.
        let _ = INSTALLED.set(self.clone());
        opentelemetry::global::set_text_map_propagator(self.clone());
    }

    /// Whether `other` is these propagators or a clone of them: they share their list of
    /// fields (the strings' buffers), which these keep alive, so that no other propagator can
    /// have a field at the same address.
    fn is(&self, other: &dyn TextMapPropagator) -> bool {
        match (self.fields.first(), other.fields().next()) {
            (Some(ours), Some(theirs)) => std::ptr::eq(ours.as_str(), theirs),
            _ => false,
        }
    }

    /// The composite's extraction (see [`Propagators`]); with `headers`, the formats that can
    /// read a header map directly do, with the same result as through `extractor`.
    fn extract_from(
        &self,
        cx: &Context,
        headers: Option<&http::HeaderMap>,
        extractor: &dyn Extractor,
    ) -> Context {
        let incoming_span = cx.span();
        let incoming = incoming_span.span_context();
        let mut found: Option<SpanContext> = None;
        let mut acc = cx.clone();
        for (format, p) in self.formats.iter().zip(self.propagators.iter()) {
            let next = match (format, headers) {
                // What `TraceContextPropagator::extract_with_context` returns, read directly.
                (Format::TraceContext, Some(headers)) => {
                    match TraceContextPropagator::extract_from_headers(headers) {
                        Some(sc) => acc.with_remote_span_context(sc),
                        None => acc.clone(),
                    }
                }
                // The baggage propagator returns the context as it is without its header.
                (Format::Baggage, Some(headers)) if !headers.contains_key(BAGGAGE_HEADER) => {
                    acc.clone()
                }
                _ => keep_baggage(&acc, p.extract_with_context(&acc, extractor)),
            };
            let (other_parent, first) = {
                let span = next.span();
                let sc = span.span_context();
                match &found {
                    Some(first) => (sc != first, None),
                    None => (false, (sc.is_valid() && sc != incoming).then(|| sc.clone())),
                }
            };
            acc = match (&found, other_parent) {
                // A later format found another parent: keep the first one, take the baggage.
                (Some(first), true) => next.with_remote_span_context(first.clone()),
                _ => {
                    if first.is_some() {
                        found = first;
                    }
                    next
                }
            };
        }
        acc
    }
}

/// The propagators [`Propagators::install_global`] installed first.
static INSTALLED: OnceLock<Propagators> = OnceLock::new();

/// `baggage` as a header name.
const BAGGAGE_HEADER: http::HeaderName = http::HeaderName::from_static("baggage");

/// Extracts the parent context from `headers` with `propagators`, or with the global propagator
/// (`opentelemetry::global`, which the pipeline sets) when `None`.
///
/// The global propagator is used through [`Propagators::extract_headers`] when it is the one
/// [`Propagators::install_global`] installed (as the pipeline does), else through the
/// `TextMapPropagator` interface.
pub fn extract_headers(propagators: Option<&Propagators>, headers: &http::HeaderMap) -> Context {
    with_propagators(
        propagators,
        headers,
        |p| p.extract_headers(headers),
        |cx| cx,
    )
}

/// `ours` with `propagators`, or with the global propagator when `None` and it is the one
/// [`Propagators::install_global`] installed; else `theirs` of what the global propagator
/// extracts through the `TextMapPropagator` interface.
fn with_propagators<T>(
    propagators: Option<&Propagators>,
    headers: &http::HeaderMap,
    ours: impl Fn(&Propagators) -> T,
    theirs: impl Fn(Context) -> T,
) -> T {
    match propagators {
        Some(p) => ours(p),
        None => opentelemetry::global::get_text_map_propagator(|p| match INSTALLED.get() {
            Some(installed) if installed.is(p) => ours(installed),
            _ => theirs(p.extract(&HeaderExtractor(headers))),
        }),
    }
}

/// [`extract_headers`] as the parent of a server's span: the caller's span context beside
/// the current context, on the fast path of [`Propagators::extract_headers`].
fn extract_parent(propagators: Option<&Propagators>, headers: &http::HeaderMap) -> Parent {
    with_propagators(
        propagators,
        headers,
        |p| p.extract_parent(headers),
        Parent::context,
    )
}

/// [`extract_headers`] for a server whose sampler follows its caller's decision (see
/// [`ServerParent`]). With the W3C Trace Context fast path of [`Propagators::extract_headers`],
/// an unsampled caller's context is never made, only its child's.
fn extract_headers_following_sampling(
    propagators: Option<&Propagators>,
    headers: &http::HeaderMap,
) -> ServerParent {
    with_propagators(
        propagators,
        headers,
        |p| p.extract_headers_following_sampling(headers),
        ServerParent::following_sampling,
    )
}

/// Where a server starts the span of a request it traces ([`server_parent`]).
#[derive(Debug)]
pub enum ServerParent {
    /// Under `parent`, with `links`.
    Span {
        /// The caller, or a new trace.
        parent: Parent,
        /// The caller of a public endpoint, linked to rather than continued.
        links: Vec<Link>,
    },
    /// Nowhere: the caller did not sample and the server's sampler follows it, so the span
    /// would not be recorded whatever its attributes. The request runs under this context,
    /// which carries the caller's trace on, not sampled: the caller's trace and trace state, a
    /// new span id, the caller's baggage.
    Unsampled(Context),
}

impl ServerParent {
    /// A span under `parent` (the caller, or the current context when the headers name no
    /// valid caller), without links.
    fn under(parent: Parent) -> Self {
        ServerParent::Span {
            parent,
            links: Vec::new(),
        }
    }

    /// What a server following its caller's sampling makes of the caller's context: the
    /// unsampled child ([`crate::sampling::unsampled_context`]) of an unsampled caller, else a
    /// span under the caller.
    fn following_sampling(caller: Context) -> Self {
        if is_unsampled(&caller) {
            ServerParent::Unsampled(unsampled_context(&caller))
        } else {
            ServerParent::under(Parent::context(caller))
        }
    }
}

/// Where a server layer starts the span of a request it traces, from the request's `headers`
/// read with `propagators` (the global propagator when `None`):
///
/// - a `public` endpoint trusts nothing from its caller (neither its trace, its sampling
///   decision nor its baggage): a new trace, linked to the caller's span if there is one;
/// - otherwise the caller's span is the parent; a server whose sampler `follows_caller`
///   (parent-based) gets an unsampled caller's child context instead ([`ServerParent::Unsampled`]).
pub fn server_parent(
    propagators: Option<&Propagators>,
    headers: &http::HeaderMap,
    public: bool,
    follows_caller: bool,
) -> ServerParent {
    if public {
        let caller = extract_parent(propagators, headers).span_context();
        let links = if caller.is_valid() {
            vec![Link::with_context(caller)]
        } else {
            Vec::new()
        };
        return ServerParent::Span {
            parent: Parent::context(Context::new()),
            links,
        };
    }
    if follows_caller {
        extract_headers_following_sampling(propagators, headers)
    } else {
        ServerParent::under(extract_parent(propagators, headers))
    }
}

/// Injects `cx` into `headers` with `propagators`, or with the global propagator when `None`
/// (see [`extract_headers`]).
pub fn inject_headers(
    propagators: Option<&Propagators>,
    cx: &Context,
    headers: &mut http::HeaderMap,
) {
    match propagators {
        Some(p) => p.inject_headers(cx, headers),
        None => opentelemetry::global::get_text_map_propagator(|p| match INSTALLED.get() {
            Some(ours) if ours.is(p) => ours.inject_headers(cx, headers),
            _ => p.inject_context(cx, &mut HeaderInjector(headers)),
        }),
    }
}

impl Default for Propagators {
    /// `tracecontext,baggage`.
    fn default() -> Self {
        Propagators::new([Format::TraceContext, Format::Baggage])
    }
}

impl fmt::Debug for Propagators {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Propagators").field(&self.formats).finish()
    }
}

impl TextMapPropagator for Propagators {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        for p in self.propagators.iter() {
            p.inject_context(cx, injector);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        self.extract_from(cx, None, extractor)
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(&self.fields)
    }
}

/// `next` with the baggage entries of `prev` that it lost put back (`next`'s entries win): the
/// SDK's `BaggagePropagator` replaces the baggage of the context it is given with what its
/// header holds, which would drop what an earlier format (`uberctx-*`) extracted.
fn keep_baggage(prev: &Context, next: Context) -> Context {
    let (before, after) = (prev.baggage(), next.baggage());
    if before
        .iter()
        .all(|(key, _)| after.get(key.as_str()).is_some())
    {
        return next;
    }
    let merged: Baggage = before
        .iter()
        .chain(after.iter())
        .map(|(key, (value, metadata))| (key.clone(), (value.clone(), metadata.clone())))
        .collect();
    next.with_baggage(merged)
}

/// The [`Extractor`] over an [`http::HeaderMap`] (a tonic `MetadataMap` holds one: use
/// `MetadataMap::as_ref()`) that the layers extract with.
///
/// It reads headers as `opentelemetry_http::HeaderExtractor` does, but for one thing: a value
/// that is not visible ASCII (obs-text, which HTTP allows and `HeaderValue::to_str` refuses)
/// is not left out by [`get_all`](Extractor::get_all), which reports it as a value that no
/// format accepts (`U+FFFD`). So a second `traceparent` header still makes the request a new
/// trace, and such a `tracestate` line still discards the trace state, as W3C Trace Context
/// requires. [`get`](Extractor::get) takes the first value, and an unreadable one as absent.
#[derive(Clone, Copy, Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let mut values = self.0.get_all(key).iter().peekable();
        values.peek()?;
        Some(
            values
                .map(|value| value.to_str().unwrap_or("\u{fffd}"))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::baggage::BaggageExt;
    use std::collections::HashMap;

    fn carrier(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const W3C: (&str, &str) = (
        "traceparent",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    const B3: (&str, &str) = ("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1");
    /// [`W3C`]'s caller, not sampled.
    const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

    fn trace_id(cx: &Context) -> String {
        cx.span().span_context().trace_id().to_string()
    }

    #[test]
    fn a_server_not_following_sampling_has_the_caller_as_parent() {
        let ours = Propagators::default();
        let b3 = Propagators::new([Format::B3Multi, Format::TraceContext, Format::Baggage]);
        for (propagators, pairs) in [
            // The fast path, sampled and not, then the composite's loop (baggage; B3 first).
            (&ours, &[W3C, ("tracestate", "k=v")][..]),
            (&ours, &[("traceparent", UNSAMPLED)]),
            (&ours, &[W3C, ("baggage", "user=alice")]),
            (&b3, &[W3C, ("baggage", "user=alice")]),
            (&ours, &[]),
        ] {
            let mut map = http::HeaderMap::new();
            for (k, v) in pairs {
                map.append(*k, http::HeaderValue::from_static(v));
            }
            // Under a current context with baggage of its own, which the parent keeps.
            let _current =
                Context::current_with_baggage([opentelemetry::KeyValue::new("tenant", "acme")])
                    .attach();
            let caller = propagators.extract_headers(&map);
            let ServerParent::Span { parent, links } =
                server_parent(Some(propagators), &map, false, false)
            else {
                panic!("{pairs:?}: a server that does not follow its caller starts a span");
            };
            assert!(links.is_empty());
            assert_eq!(
                parent.span_context(),
                *caller.span().span_context(),
                "{pairs:?}"
            );
            // Span contexts compare their trace state too.
            let cx = parent.into_context();
            assert_eq!(cx.span().span_context(), caller.span().span_context());
            for key in ["user", "tenant"] {
                assert_eq!(
                    cx.baggage().get(key).map(|v| v.to_string()),
                    caller.baggage().get(key).map(|v| v.to_string()),
                    "{pairs:?}"
                );
            }
            assert!(cx.baggage().get("tenant").is_some(), "{pairs:?}");
            assert_eq!(
                cx.baggage().get("user").is_some(),
                pairs.len() == 2 && pairs[1].0 == "baggage",
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn a_server_following_sampling_gets_the_child_of_an_unsampled_caller() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = http::HeaderMap::new();
            for (k, v) in pairs {
                map.append(*k, http::HeaderValue::from_static(v));
            }
            map
        };
        let ours = Propagators::default();
        let sdk = opentelemetry_sdk::propagation::TraceContextPropagator::new();
        // The fast path (no baggage), the composite's loop (baggage), and another propagator
        // through its interface: the same child.
        for pairs in [
            &[("traceparent", UNSAMPLED), ("tracestate", "k=v")][..],
            &[
                ("traceparent", UNSAMPLED),
                ("tracestate", "k=v"),
                ("baggage", "user=alice"),
            ],
        ] {
            let map = headers(pairs);
            let caller = ours.extract_headers(&map);
            let mut found = vec![ours.extract_headers_following_sampling(&map)];
            found.push(ServerParent::following_sampling(
                sdk.extract(&opentelemetry_http::HeaderExtractor(&map)),
            ));
            for extracted in found {
                let ServerParent::Unsampled(child) = extracted else {
                    panic!("{pairs:?}: not the child");
                };
                let (sc, parent) = (child.span().span_context().clone(), caller.span());
                assert!(
                    sc.is_valid() && !sc.is_sampled() && sc.is_remote(),
                    "{pairs:?}"
                );
                assert_eq!(sc.trace_id(), parent.span_context().trace_id());
                assert_ne!(sc.span_id(), parent.span_context().span_id());
                assert_eq!(sc.trace_state().get("k"), Some("v"));
            }
            let ServerParent::Unsampled(child) = ours.extract_headers_following_sampling(&map)
            else {
                unreachable!()
            };
            assert_eq!(caller.baggage().get("user").is_some(), pairs.len() == 3);
            assert_eq!(
                child.baggage().get("user").map(|v| v.to_string()),
                caller.baggage().get("user").map(|v| v.to_string()),
            );
        }
        // No caller, under a current context whose span is not sampled: its child, as the
        // composite's loop would give it.
        let unsampled_current = Context::new().with_remote_span_context(SpanContext::new(
            opentelemetry::trace::TraceId::from(7),
            opentelemetry::trace::SpanId::from(9),
            opentelemetry::trace::TraceFlags::default(),
            true,
            opentelemetry::trace::TraceState::NONE,
        ));
        {
            let _current = unsampled_current.attach();
            let ServerParent::Unsampled(child) =
                ours.extract_headers_following_sampling(&headers(&[]))
            else {
                panic!("an unsampled current span: not the child");
            };
            let sc = child.span().span_context().clone();
            assert!(!sc.is_sampled());
            assert_eq!(sc.trace_id(), opentelemetry::trace::TraceId::from(7));
        }
        // A sampled caller, or none: the caller's context, as `extract_headers` gives it.
        for pairs in [&[W3C][..], &[]] {
            let map = headers(pairs);
            let ServerParent::Span { parent, links } =
                ours.extract_headers_following_sampling(&map)
            else {
                panic!("{pairs:?}: not the caller");
            };
            assert!(links.is_empty());
            let cx = ours.extract_headers(&map);
            assert_eq!(&parent.span_context(), cx.span().span_context());
            assert_eq!(
                parent.into_context().span().span_context(),
                cx.span().span_context()
            );
        }
    }

    #[test]
    fn a_server_starts_under_its_caller_unless_public() {
        let ours = Propagators::default();
        let headers = |traceparent: &'static str| {
            let mut map = http::HeaderMap::new();
            map.insert("traceparent", http::HeaderValue::from_static(traceparent));
            map.insert("baggage", http::HeaderValue::from_static("user=alice"));
            map
        };
        for (traceparent, sampled) in [(W3C.1, true), (UNSAMPLED, false)] {
            let map = headers(traceparent);
            let caller = ours.extract_headers(&map).span().span_context().clone();
            // Public: a new trace, nothing of the caller's but a link to its span.
            for follows_caller in [true, false] {
                let ServerParent::Span { parent, links } =
                    server_parent(Some(&ours), &map, true, follows_caller)
                else {
                    panic!("a public endpoint starts its own trace");
                };
                assert!(!parent.span_context().is_valid());
                let cx = parent.into_context();
                assert!(cx.baggage().is_empty());
                assert_eq!(links.len(), 1);
                assert_eq!(links[0].span_context, caller);
            }
            // Not public: the caller; its unsampled decision followed when asked to.
            match server_parent(Some(&ours), &map, false, true) {
                ServerParent::Span { parent, links } => {
                    assert!(sampled && links.is_empty());
                    assert_eq!(parent.span_context(), caller);
                }
                ServerParent::Unsampled(cx) => {
                    assert!(!sampled);
                    let sc = cx.span().span_context().clone();
                    assert_eq!(sc.trace_id(), caller.trace_id());
                    assert!(!sc.is_sampled());
                    assert!(cx.baggage().get("user").is_some());
                }
            }
            let ServerParent::Span { parent, links } =
                server_parent(Some(&ours), &map, false, false)
            else {
                panic!("a sampler that does not follow its caller decides for itself");
            };
            assert!(links.is_empty());
            assert_eq!(parent.span_context(), caller);
            assert!(parent.into_context().baggage().get("user").is_some());
        }
    }

    #[test]
    fn parse_accepts_the_spec_names() {
        let p = Propagators::parse(" TraceContext , baggage,b3,b3multi,jaeger ").unwrap();
        assert_eq!(
            p.formats(),
            [
                Format::TraceContext,
                Format::Baggage,
                Format::B3,
                Format::B3Multi,
                Format::Jaeger
            ]
        );
        assert_eq!(
            Propagators::parse("").unwrap().formats(),
            [Format::TraceContext, Format::Baggage]
        );
        assert!(Propagators::parse("none").unwrap().formats().is_empty());
        assert_eq!(Propagators::parse("b3,b3").unwrap().formats(), [Format::B3]);
    }

    #[test]
    fn parse_rejects_unknown_names_with_a_clear_message() {
        let err = Propagators::parse("tracecontext,xray").unwrap_err();
        assert_eq!(err.variable(), "OTEL_PROPAGATORS");
        assert_eq!(err.value(), "tracecontext,xray");
        assert!(
            err.to_string().contains("unknown propagator `xray`"),
            "{err}"
        );
        assert!(Propagators::parse("none,b3").is_err());
    }

    #[test]
    fn from_lookup_defaults_when_unset() {
        let p = Propagators::from_lookup(|_| None).unwrap();
        assert_eq!(p.formats(), [Format::TraceContext, Format::Baggage]);
        let p = Propagators::from_lookup(|k| (k == OTEL_PROPAGATORS).then(|| "b3multi".into()))
            .unwrap();
        assert_eq!(p.formats(), [Format::B3Multi]);
    }

    #[test]
    fn first_valid_format_wins() {
        let c = carrier(&[W3C, B3]);
        let w3c_first = Propagators::parse("tracecontext,b3").unwrap().extract(&c);
        assert_eq!(trace_id(&w3c_first), "4bf92f3577b34da6a3ce929d0e0e4736");
        let b3_first = Propagators::parse("b3,tracecontext").unwrap().extract(&c);
        assert_eq!(trace_id(&b3_first), "80f198ee56343ba864fe8b2a57d3eff7");
    }

    #[test]
    fn falls_through_an_invalid_format() {
        let c = carrier(&[("traceparent", "00-garbage"), B3]);
        let cx = Propagators::parse("tracecontext,b3").unwrap().extract(&c);
        assert_eq!(trace_id(&cx), "80f198ee56343ba864fe8b2a57d3eff7");
    }

    #[test]
    fn baggage_is_merged_whatever_the_span_format() {
        let c = carrier(&[B3, ("baggage", "user=alice"), W3C]);
        let cx = Propagators::parse("b3,tracecontext,baggage")
            .unwrap()
            .extract(&c);
        assert_eq!(trace_id(&cx), "80f198ee56343ba864fe8b2a57d3eff7");
        assert_eq!(
            cx.baggage().get("user").map(|v| v.as_str().to_string()),
            Some("alice".to_string())
        );
    }

    #[test]
    fn nothing_found_means_a_new_trace() {
        let cx = Propagators::default().extract(&carrier(&[("x", "y")]));
        assert!(!cx.span().span_context().is_valid());
        let cx = Propagators::none().extract(&carrier(&[W3C]));
        assert!(!cx.span().span_context().is_valid());
    }

    #[test]
    fn injects_every_format() {
        let parent = Propagators::default().extract(&carrier(&[W3C]));
        let mut headers = http::HeaderMap::new();
        Propagators::parse("tracecontext,b3,b3multi,jaeger")
            .unwrap()
            .inject_headers(&parent, &mut headers);
        assert_eq!(headers["traceparent"], W3C.1);
        assert!(
            headers["b3"]
                .to_str()
                .unwrap()
                .starts_with("4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7")
        );
        assert_eq!(headers["x-b3-traceid"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(
            headers["uber-trace-id"]
                .to_str()
                .unwrap()
                .starts_with("4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7")
        );
        // and every one of them round-trips on its own
        for f in ["tracecontext", "b3", "b3multi", "jaeger"] {
            let p = Propagators::parse(f).unwrap();
            let mut h = http::HeaderMap::new();
            p.inject_headers(&parent, &mut h);
            let back = p.extract_headers(&h);
            assert_eq!(trace_id(&back), "4bf92f3577b34da6a3ce929d0e0e4736", "{f}");
            assert!(back.span().span_context().is_sampled(), "{f}");
        }
    }

    #[test]
    fn fields_lists_all_headers() {
        let p = Propagators::parse("tracecontext,b3").unwrap();
        let fields: Vec<&str> = p.fields().collect();
        assert!(fields.contains(&"traceparent") && fields.contains(&"b3"));
    }
}
