//! Property tests of extraction over hostile input: the stable-toolchain counterparts of the
//! `traceparent`, `baggage` and `propagators` fuzz targets (`fuzz/`, nightly). B3 and Jaeger
//! have theirs next to their code (`propagation::b3`, `propagation::jaeger`).
//!
//! Headers are built as a server receives them: an `http::HeaderMap` with any bytes HTTP
//! allows in a value, obs-text that is not UTF-8 included, and any header repeated.

use opentelemetry::Context;
use opentelemetry::baggage::BaggageExt;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags};
use proptest::prelude::*;
use tracing_core_lite::Propagators;
use tracing_core_lite::propagation::{Format, HeaderExtractor, TraceContextPropagator};

/// W3C Baggage limits, which `opentelemetry::baggage::Baggage` enforces.
const MAX_BAGGAGE_ENTRIES: usize = 64;
const MAX_BAGGAGE_BYTES: usize = 8192;

const FORMATS: [Format; 5] = [
    Format::TraceContext,
    Format::Baggage,
    Format::B3,
    Format::B3Multi,
    Format::Jaeger,
];

fn header_map(headers: &[(&'static str, Vec<u8>)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        // hyper hands a server nothing that `HeaderValue` refuses (CR, LF, NUL...)
        if let Ok(value) = http::HeaderValue::from_bytes(value) {
            map.append(http::HeaderName::from_static(name), value);
        }
    }
    map
}

fn extract(propagator: &dyn TextMapPropagator, headers: &http::HeaderMap) -> Context {
    propagator.extract(&HeaderExtractor(headers))
}

/// An extracted span context is a new trace (invalid) or a valid remote parent with known
/// flags (sampled, and the B3/Jaeger debug bit).
fn check_span_context(sc: &SpanContext) -> Result<(), TestCaseError> {
    if sc.is_valid() {
        prop_assert!(sc.is_remote(), "{:?}", sc);
        prop_assert_eq!(sc.trace_flags().to_u8() & !0x05, 0, "{:?}", sc);
    }
    Ok(())
}

fn check_baggage(cx: &Context) -> Result<(), TestCaseError> {
    let baggage = cx.baggage();
    prop_assert!(baggage.len() <= MAX_BAGGAGE_ENTRIES);
    let bytes: usize = baggage
        .iter()
        .map(|(k, (v, _))| k.as_str().len() + v.as_str().len())
        .sum();
    prop_assert!(bytes <= MAX_BAGGAGE_BYTES, "{} bytes", bytes);
    Ok(())
}

fn baggage_of(cx: &Context) -> Vec<(String, String)> {
    let mut entries: Vec<_> = cx
        .baggage()
        .iter()
        .map(|(k, (v, _))| (k.to_string(), v.to_string()))
        .collect();
    entries.sort();
    entries
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The W3C `traceparent` rules, read straight from the recommendation: `(trace id, span id,
/// sampled)` of a value that must be accepted.
fn traceparent_oracle(value: &str) -> Option<(String, String, bool)> {
    let value = value.trim_matches([' ', '\t']);
    let fields: Vec<&str> = value.split('-').collect();
    let [version, trace_id, span_id, flags, ..] = fields[..] else {
        return None;
    };
    if !is_lower_hex(version, 2) || version == "ff" || (version == "00" && fields.len() != 4) {
        return None;
    }
    if !is_lower_hex(trace_id, 32) || !is_lower_hex(span_id, 16) || !is_lower_hex(flags, 2) {
        return None;
    }
    if trace_id.bytes().all(|b| b == b'0') || span_id.bytes().all(|b| b == b'0') {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    Some((trace_id.to_owned(), span_id.to_owned(), sampled))
}

/// A `tracestate` list member the recommendation accepts (key grammar, value grammar).
fn tracestate_member_oracle(member: &str) -> bool {
    let Some((key, value)) = member.split_once('=') else {
        return false;
    };
    let lcalpha = |c: char| c.is_ascii_lowercase();
    let rest = |s: &str| {
        s.chars()
            .all(|c| lcalpha(c) || c.is_ascii_digit() || "_-*/".contains(c))
    };
    let key_ok = match key.split_once('@') {
        None => key.len() <= 256 && key.starts_with(lcalpha) && rest(&key[1..]),
        Some((tenant, system)) => {
            (1..=241).contains(&tenant.len())
                && tenant.starts_with(|c: char| lcalpha(c) || c.is_ascii_digit())
                && rest(&tenant[1..])
                && (1..=14).contains(&system.len())
                && system.starts_with(lcalpha)
                && rest(&system[1..])
        }
    };
    let nblk = |c: char| matches!(c, '\x21'..='\x7e') && c != ',' && c != '=';
    let value_ok = !value.is_empty()
        && value.len() <= 256
        && value.ends_with(nblk)
        && value.chars().all(|c| c == ' ' || nblk(c));
    key_ok && value_ok
}

/// Fields of valid and near-valid `traceparent` values.
fn traceparent_field() -> impl Strategy<Value = String> {
    prop_oneof![
        "00|01|cc|ff|0A|0|000|[0-9a-f]{2}",
        "[0-9a-f]{32}|0{32}|[0-9a-fA-F]{31,33}",
        "[0-9a-f]{16}|0{16}|[0-9a-fA-F]{15,17}",
        "[0-9a-f]{2}|0[0-9A-F+]|[0-9a-f]{3}",
        "[0-9a-f+ .\t_é]{0,4}",
    ]
}

/// Near-valid `tracestate` lines: realistic keys and values, sometimes broken.
fn tracestate_line() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        4 => "[a-z][a-z0-9_*/-]{0,8}=[\\x21-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{1,8}",
        2 => "[a-z0-9]{1,4}@[a-z][a-z0-9]{0,3}=[\\x20-\\x2b\\x2d-\\x3c\\x3e-\\x7e]{0,6}[a-z]",
        1 => "[a-zA-Z0-9@=_ \t*/-]{0,12}",
        1 => (250usize..260, any::<bool>()).prop_map(|(n, long_key)| if long_key {
            format!("k{}=v", "k".repeat(n))
        } else {
            format!("k={}", "v".repeat(n))
        }),
    ];
    prop::collection::vec(member, 0..40).prop_map(|members| members.join(","))
}

/// Header values: near-valid for their header, or any bytes.
fn value_for(name: &'static str) -> BoxedStrategy<Vec<u8>> {
    let near: BoxedStrategy<String> = match name {
        "traceparent" => prop::collection::vec(traceparent_field(), 3..6)
            .prop_map(|f| f.join("-"))
            .boxed(),
        "tracestate" => tracestate_line().boxed(),
        "baggage" => "([a-z%0-9]{1,6}=[a-zA-Z0-9%;= ]{0,8},?){0,80}".boxed(),
        "b3" => "[0-9a-f]{32}-[0-9a-f]{16}(-[01d])?".boxed(),
        "x-b3-traceid" => "[0-9a-f]{16}|[0-9a-f]{32}".boxed(),
        "x-b3-spanid" => "[0-9a-f]{16}".boxed(),
        "x-b3-sampled" | "x-b3-flags" => "0|1|true|d".boxed(),
        "uber-trace-id" => "[0-9a-f]{1,32}:[0-9a-f]{1,16}:0:[0-3]".boxed(),
        _ => "[a-zA-Z0-9%+ ]{0,16}".boxed(),
    };
    prop_oneof![
        3 => near.prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => prop::collection::vec(prop_oneof![Just(b'a'), Just(b','), Just(b'='), 0x80u8..], 0..64),
    ]
    .boxed()
}

const NAMES: [&str; 12] = [
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
    "uberctx-tenant",
    "uberctx-user-id",
    "other",
];

/// Any number of headers of any propagation format, repeated or not.
fn headers() -> impl Strategy<Value = Vec<(&'static str, Vec<u8>)>> {
    let header = prop::sample::select(NAMES.to_vec())
        .prop_flat_map(|name| value_for(name).prop_map(move |value| (name, value)));
    prop::collection::vec(header, 0..24)
}

proptest! {
    #[test]
    fn traceparent_parsing_matches_the_recommendation(
        fields in prop::collection::vec(traceparent_field(), 0..7),
        padding in prop::sample::select(vec!["", " ", "\t", " \t "]),
    ) {
        let value = format!("{padding}{}{padding}", fields.join("-"));
        let parsed = TraceContextPropagator::parse_traceparent(&value).map(|sc| {
            (sc.trace_id().to_string(), sc.span_id().to_string(), sc.is_sampled())
        });
        prop_assert_eq!(parsed, traceparent_oracle(&value), "{:?}", value);
    }

    #[test]
    fn traceparent_never_panics(value in any::<String>()) {
        if let Some(sc) = TraceContextPropagator::parse_traceparent(&value) {
            prop_assert!(sc.is_valid());
            let formatted = TraceContextPropagator::format_traceparent(&sc);
            let again = TraceContextPropagator::parse_traceparent(&formatted);
            prop_assert_eq!(again.as_ref(), Some(&sc));
        }
    }

    #[test]
    fn valid_traceparents_round_trip(
        trace_id in 1..=u128::MAX,
        span_id in 1..=u64::MAX,
        sampled in any::<bool>(),
    ) {
        let value = format!("00-{trace_id:032x}-{span_id:016x}-0{}", u8::from(sampled));
        let sc = TraceContextPropagator::parse_traceparent(&value);
        prop_assert!(sc.is_some(), "{}", value);
        let sc = sc.unwrap();
        prop_assert_eq!(sc.trace_flags(), if sampled { TraceFlags::SAMPLED } else { TraceFlags::NOT_SAMPLED });
        prop_assert_eq!(TraceContextPropagator::format_traceparent(&sc), value);
    }

    #[test]
    fn tracestate_keeps_exactly_the_valid_lists(lines in prop::collection::vec(tracestate_line(), 0..5)) {
        let members: Vec<&str> = lines
            .iter()
            .flat_map(|line| line.split(','))
            .map(|m| m.trim_matches([' ', '\t']))
            .filter(|m| !m.is_empty())
            .collect();
        let keys: Vec<&str> = members.iter().map(|m| m.split('=').next().unwrap_or("")).collect();
        let unique = keys.iter().enumerate().all(|(i, k)| !keys[..i].contains(k));
        let valid = members.len() <= 32 && unique && members.iter().all(|m| tracestate_member_oracle(m));
        let parsed = TraceContextPropagator::parse_tracestate(lines.iter().map(String::as_str));
        prop_assert_eq!(parsed.is_some(), valid, "{:?}", lines);
        if let Some(state) = parsed {
            prop_assert_eq!(state.header(), members.join(","));
        }
    }

    /// Through the composite and a `HeaderMap`, as the layers extract: a new trace or a valid
    /// parent, the parent is the one the first configured format yields on its own, baggage
    /// stays within its limits, and a valid parent survives a round trip.
    #[test]
    fn composite_extraction_of_hostile_headers(
        formats in prop::collection::vec(prop::sample::select(FORMATS.to_vec()), 0..6),
        headers in headers(),
    ) {
        let headers = header_map(&headers);
        let propagators = Propagators::new(formats.iter().copied());
        let cx = extract(&propagators, &headers);
        let span = cx.span();
        let sc = span.span_context();
        check_span_context(sc)?;
        check_baggage(&cx)?;
        // The header-map fast path agrees with the `TextMapPropagator` interface.
        let fast = propagators.extract_headers(&headers);
        let fast_span = fast.span();
        prop_assert_eq!(fast_span.span_context(), sc);
        prop_assert_eq!(baggage_of(&fast), baggage_of(&cx));
        let first = formats.iter().find_map(|f| {
            let alone = extract(&Propagators::new([*f]), &headers);
            let sc = alone.span().span_context().clone();
            sc.is_valid().then_some((*f, sc))
        });
        match first {
            Some((format, first)) => {
                prop_assert_eq!(&first, sc);
                // injected and extracted again in that format, it is the same parent
                let alone = Propagators::new([format]);
                let mut injected = http::HeaderMap::new();
                alone.inject_headers(&cx, &mut injected);
                let again = alone.extract_headers(&injected);
                let again = again.span();
                prop_assert_eq!(again.span_context(), sc);
            }
            None => prop_assert!(!sc.is_valid(), "{:?}", sc),
        }
    }

    /// Baggage from every configured format is merged: an entry one format carries is in the
    /// result, whatever the order of the formats (unless the limits leave no room).
    #[test]
    fn baggage_of_every_format_is_merged(
        w3c in "[a-m]{1,6}",
        jaeger in "[n-z]{1,6}",
        jaeger_first in any::<bool>(),
    ) {
        let headers = header_map(&[
            ("baggage", format!("{w3c}=1").into_bytes()),
            ("uberctx-tenant", jaeger.clone().into_bytes()),
        ]);
        let formats = if jaeger_first {
            [Format::Jaeger, Format::Baggage]
        } else {
            [Format::Baggage, Format::Jaeger]
        };
        let cx = Propagators::new(formats).extract_headers(&headers);
        prop_assert_eq!(cx.baggage().get(w3c.as_str()).map(|v| v.as_str().to_owned()), Some("1".to_owned()));
        prop_assert_eq!(cx.baggage().get("tenant").map(|v| v.as_str().to_owned()), Some(jaeger));
    }

    #[test]
    fn baggage_of_any_size_stays_within_its_limits(
        entries in prop::collection::vec(("[a-z]{1,12}", 0usize..400, any::<char>()), 0..200),
    ) {
        let value: Vec<String> = entries
            .iter()
            .map(|(k, len, c)| {
                let c = if c.is_ascii_alphanumeric() { *c } else { 'v' };
                format!("{k}={}", c.to_string().repeat(*len))
            })
            .collect();
        let headers = header_map(&[("baggage", value.join(",").into_bytes())]);
        let cx = Propagators::default().extract_headers(&headers);
        check_baggage(&cx)?;
        if value.join(",").len() > MAX_BAGGAGE_BYTES {
            // The SDK drops a header longer than the limit as a whole.
            prop_assert_eq!(cx.baggage().len(), 0);
        }
    }
}

/// A 1 MiB `baggage` header is dropped as a whole, quickly, and the request keeps its parent.
#[test]
fn a_one_mebibyte_baggage_is_dropped() {
    let big = format!("k={}", "v".repeat(1 << 20));
    let headers = header_map(&[
        (
            "traceparent",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec(),
        ),
        ("baggage", big.into_bytes()),
    ]);
    let started = std::time::Instant::now();
    let cx = Propagators::parse("tracecontext,baggage,b3,b3multi,jaeger")
        .unwrap()
        .extract_headers(&headers);
    let took = started.elapsed();
    assert!(cx.span().span_context().is_valid());
    assert_eq!(cx.baggage().len(), 0);
    // Linear, not worse: a debug build reads 1 MiB in milliseconds.
    assert!(took < std::time::Duration::from_secs(1), "{took:?}");
}

/// Two `traceparent` headers make the request a new trace (W3C Trace Context), also when one
/// of them is not UTF-8 (which `http::HeaderValue::to_str` refuses).
#[test]
fn a_second_traceparent_that_is_not_utf8_still_counts() {
    let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec();
    for headers in [
        vec![
            ("traceparent", valid.clone()),
            ("traceparent", b"00-\xff".to_vec()),
        ],
        vec![
            ("traceparent", b"\xfe\xff".to_vec()),
            ("traceparent", valid.clone()),
        ],
    ] {
        let cx = Propagators::default().extract_headers(&header_map(&headers));
        assert!(!cx.span().span_context().is_valid());
    }
    // and a `tracestate` line that is not UTF-8 is an invalid member: the whole state goes
    let cx = Propagators::default().extract_headers(&header_map(&[
        ("traceparent", valid),
        ("tracestate", b"a=1".to_vec()),
        ("tracestate", b"b=\xe9".to_vec()),
    ]));
    assert!(cx.span().span_context().is_valid());
    assert_eq!(cx.span().span_context().trace_state().header(), "");
}
