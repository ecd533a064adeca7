//! W3C Trace Context: the `traceparent` and `tracestate` headers.
//!
//! [`TraceContextPropagator`] follows the [Trace Context] recommendation (level 1, and the
//! parsing rules of level 2) exactly, where the opentelemetry SDK's propagator of the same name
//! is lenient (it accepts a trailing `-` after a version `00` header, ids shorter than their
//! fixed width, a `+` sign before hex digits, and it reads only the first `tracestate` line):
//!
//! - `traceparent` is `version-traceid-parentid-flags`, all lowercase hex. Version `ff` is
//!   invalid; version `00` is exactly 55 characters; a higher version is parsed as `00` and may
//!   carry more fields after a `-` at position 55. All-zero ids are invalid. A request with two
//!   `traceparent` headers is invalid. Spaces and tabs around the value are ignored.
//! - `tracestate` lines are joined with `,`; empty members are skipped; the key grammar
//!   (`simple-key` and `tenant@system`) and the value grammar are checked; more than 32
//!   members or a duplicated key discard the whole `tracestate` (but keep the `traceparent`).
//!
//! Anything invalid yields the context it was given: the caller starts a new trace.
//!
//! ```
//! use opentelemetry::propagation::TextMapPropagator;
//! use opentelemetry::trace::TraceContextExt;
//! use std::collections::HashMap;
//! use tracing_core_lite::propagation::TraceContextPropagator;
//!
//! let mut carrier = HashMap::new();
//! carrier.insert(
//!     "traceparent".to_string(),
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_string(),
//! );
//! let cx = TraceContextPropagator::new().extract(&carrier);
//! let span = cx.span();
//! assert_eq!(span.span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
//! assert!(span.span_context().is_sampled());
//! ```
//!
//! [Trace Context]: https://www.w3.org/TR/trace-context-2/

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::Context;
use opentelemetry::propagation::text_map_propagator::FieldIter;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

use crate::le_word;

/// Header carrying the trace id, the parent span id and the trace flags.
pub const TRACEPARENT: &str = "traceparent";
/// Header carrying vendor-specific trace state.
pub const TRACESTATE: &str = "tracestate";

/// Length of a version `00` `traceparent`.
const TRACEPARENT_LEN: usize = 55;
/// The most list members a `tracestate` may have.
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// W3C Trace Context propagator (`traceparent` + `tracestate`).
///
/// Injects `traceparent` (version `00`) and, when not empty, `tracestate`.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextPropagator {
    _private: (),
}

impl TraceContextPropagator {
    /// Creates the propagator.
    pub const fn new() -> Self {
        TraceContextPropagator { _private: () }
    }

    /// Parses a `traceparent` value into a remote, valid span context (without trace state).
    ///
    /// Returns `None` for any value the specification says to ignore.
    pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
        Self::parse_traceparent_bytes(value.as_bytes())
    }

    /// [`parse_traceparent`](Self::parse_traceparent) on a header value's bytes: a version
    /// `00` value is all hex digits and dashes once parsed, and the rest of a later version's
    /// must be visible ASCII, so no UTF-8 or header-value check is needed first.
    fn parse_traceparent_bytes(value: &[u8]) -> Option<SpanContext> {
        let v = trim_ows(value);
        let head: &[u8; TRACEPARENT_LEN] = v.get(..TRACEPARENT_LEN)?.try_into().ok()?;
        let Fields {
            version,
            trace_id,
            span_id,
            flags,
        } = Fields::decode(head)?;
        if version == 0xff {
            return None;
        }
        if version == 0 && v.len() != TRACEPARENT_LEN {
            return None;
        }
        if v.len() > TRACEPARENT_LEN
            && (v[TRACEPARENT_LEN] != b'-'
                || !v[TRACEPARENT_LEN..]
                    .iter()
                    .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)))
        {
            return None;
        }
        let trace_id = TraceId::from_bytes(trace_id);
        let span_id = SpanId::from_bytes(span_id);
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        Some(SpanContext::new(
            trace_id,
            span_id,
            TraceFlags::new(flags) & TraceFlags::SAMPLED,
            true,
            TraceState::NONE,
        ))
    }

    /// Formats the `traceparent` value (version `00`) of a span context.
    pub fn format_traceparent(span_context: &SpanContext) -> String {
        let mut buf = [0u8; TRACEPARENT_LEN];
        write_traceparent(&mut buf, span_context);
        // Only ASCII hex digits and dashes were written.
        buf.iter().map(|&b| b as char).collect()
    }

    /// Parses one or more `tracestate` lines. Returns `None` if the whole trace state must be
    /// discarded (an invalid member, a duplicated key, more than 32 members).
    pub fn parse_tracestate<'a>(lines: impl IntoIterator<Item = &'a str>) -> Option<TraceState> {
        let mut members: Vec<(&str, &str)> = Vec::new();
        for line in lines {
            for member in line.split(',') {
                let member = member.trim_matches(|c| c == ' ' || c == '\t');
                if member.is_empty() {
                    continue;
                }
                let (key, value) = member.split_once('=')?;
                if !valid_key(key) || !valid_value(value) {
                    return None;
                }
                if members.len() == MAX_TRACESTATE_MEMBERS || members.iter().any(|(k, _)| *k == key)
                {
                    return None;
                }
                members.push((key, value));
            }
        }
        if members.is_empty() {
            return Some(TraceState::NONE);
        }
        TraceState::from_key_value(members).ok()
    }

    /// Extracts the span context from an [`http::HeaderMap`] directly: the same rules as
    /// [`TextMapPropagator::extract`] through a header extractor, without the extractor's
    /// allocations (the list of `traceparent` values) and without parsing header names.
    pub fn extract_from_headers(headers: &HeaderMap) -> Option<SpanContext> {
        Self::extract_found(&TraceHeaders::find(headers), headers)
    }

    /// [`extract_from_headers`](Self::extract_from_headers) with the headers already found.
    pub(crate) fn extract_found(
        found: &TraceHeaders<'_>,
        headers: &HeaderMap,
    ) -> Option<SpanContext> {
        // Exactly one `traceparent`, and readable (as `HeaderExtractor::get_all` sees them,
        // a value that is not visible ASCII is one that no format accepts).
        if found.traceparent_repeated {
            return None;
        }
        let sc = Self::parse_traceparent_bytes(found.traceparent?.as_bytes())?;
        let trace_state = match found.tracestate {
            None => TraceState::NONE,
            Some(_) if found.tracestate_repeated => {
                let lines = headers
                    .get_all(&TRACESTATE_HEADER)
                    .iter()
                    .map(tracestate_line);
                Self::parse_tracestate(lines).unwrap_or(TraceState::NONE)
            }
            Some(one) => Self::parse_tracestate([tracestate_line(one)]).unwrap_or(TraceState::NONE),
        };
        Some(SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags(),
            true,
            trace_state,
        ))
    }

    /// Injects `traceparent` (and `tracestate` when not empty) into an [`http::HeaderMap`]
    /// directly: what [`TextMapPropagator::inject_context`] does through a header injector,
    /// with one allocation (the header value) instead of three.
    pub fn inject_into_headers(cx: &Context, headers: &mut HeaderMap) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        let mut buf = [0u8; TRACEPARENT_LEN];
        write_traceparent(&mut buf, sc);
        // Only ASCII hex digits and dashes: always a valid header value.
        if let Ok(value) = HeaderValue::from_bytes(&buf) {
            headers.insert(TRACEPARENT_HEADER, value);
        }
        let state = sc.trace_state().header();
        if !state.is_empty()
            && let Ok(value) = HeaderValue::from_str(&state)
        {
            headers.insert(TRACESTATE_HEADER, value);
        }
    }

    fn extract_span_context(extractor: &dyn Extractor) -> Option<SpanContext> {
        let traceparent = match extractor.get_all(TRACEPARENT) {
            Some(values) => match values.as_slice() {
                [one] => *one,
                _ => return None,
            },
            None => extractor.get(TRACEPARENT)?,
        };
        let sc = Self::parse_traceparent(traceparent)?;
        let lines = extractor
            .get_all(TRACESTATE)
            .or_else(|| extractor.get(TRACESTATE).map(|v| vec![v]));
        let trace_state = match lines {
            Some(lines) => Self::parse_tracestate(lines).unwrap_or(TraceState::NONE),
            None => TraceState::NONE,
        };
        Some(SpanContext::new(
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags(),
            true,
            trace_state,
        ))
    }
}

impl TextMapPropagator for TraceContextPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if !sc.is_valid() {
            return;
        }
        injector.set(TRACEPARENT, Self::format_traceparent(sc));
        let state = sc.trace_state().header();
        if !state.is_empty() {
            injector.set(TRACESTATE, state);
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        match Self::extract_span_context(extractor) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }

    fn fields(&self) -> FieldIter<'_> {
        static NAMES: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
        FieldIter::new(NAMES.get_or_init(|| [TRACEPARENT.to_string(), TRACESTATE.to_string()]))
    }
}

/// `traceparent` as a header name, built at compile time (no parsing at each lookup).
/// A `tracestate` line as the header extractor reads it: one that is not visible ASCII
/// invalidates the whole trace state.
fn tracestate_line(value: &HeaderValue) -> &str {
    value.to_str().unwrap_or("\u{fffd}")
}

/// The propagation headers of a request: found in one pass over a header map of up to
/// [`SCAN_LIMIT`](crate::headers::SCAN_LIMIT) values (most requests), which costs less
/// than the three hash lookups that find them in a larger one.
#[derive(Default)]
pub(crate) struct TraceHeaders<'a> {
    /// The first `traceparent` value.
    traceparent: Option<&'a HeaderValue>,
    traceparent_repeated: bool,
    /// The first `tracestate` value.
    tracestate: Option<&'a HeaderValue>,
    tracestate_repeated: bool,
    /// Whether there is a `baggage` header.
    pub(crate) baggage: bool,
}

impl<'a> TraceHeaders<'a> {
    pub(crate) fn find(headers: &'a HeaderMap) -> Self {
        if headers.len() > crate::headers::SCAN_LIMIT {
            let mut traceparent = headers.get_all(&TRACEPARENT_HEADER).iter();
            let mut tracestate = headers.get_all(&TRACESTATE_HEADER).iter();
            return TraceHeaders {
                traceparent: traceparent.next(),
                traceparent_repeated: traceparent.next().is_some(),
                tracestate: tracestate.next(),
                tracestate_repeated: tracestate.next().is_some(),
                baggage: headers.contains_key(super::BAGGAGE_HEADER),
            };
        }
        let mut found = TraceHeaders::default();
        for (name, value) in headers {
            if name == TRACEPARENT_HEADER {
                found.traceparent_repeated |= found.traceparent.is_some();
                found.traceparent.get_or_insert(value);
            } else if name == TRACESTATE_HEADER {
                found.tracestate_repeated |= found.tracestate.is_some();
                found.tracestate.get_or_insert(value);
            } else if name == super::BAGGAGE_HEADER {
                found.baggage = true;
            }
        }
        found
    }
}

pub(crate) const TRACEPARENT_HEADER: HeaderName = HeaderName::from_static(TRACEPARENT);
/// `tracestate` as a header name.
pub(crate) const TRACESTATE_HEADER: HeaderName = HeaderName::from_static(TRACESTATE);

/// Writes the version `00` `traceparent` of `span_context`.
fn write_traceparent(buf: &mut [u8; TRACEPARENT_LEN], span_context: &SpanContext) {
    buf[0] = b'0';
    buf[1] = b'0';
    buf[2] = b'-';
    write_hex(&mut buf[3..35], &span_context.trace_id().to_bytes());
    buf[35] = b'-';
    write_hex(&mut buf[36..52], &span_context.span_id().to_bytes());
    buf[52] = b'-';
    write_hex(
        &mut buf[53..55],
        &[(span_context.trace_flags() & TraceFlags::SAMPLED).to_u8()],
    );
}

/// `simple-key` or `tenant-id@system-id` (W3C Trace Context, section 3.3.1.3.1).
fn valid_key(key: &str) -> bool {
    fn rest_ok(b: &[u8]) -> bool {
        b.iter().all(|&c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'*' | b'/')
        })
    }
    let b = key.as_bytes();
    match key.split_once('@') {
        None => !b.is_empty() && b.len() <= 256 && b[0].is_ascii_lowercase() && rest_ok(&b[1..]),
        Some((tenant, system)) => {
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && (t[0].is_ascii_lowercase() || t[0].is_ascii_digit())
                && rest_ok(&t[1..])
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && rest_ok(&s[1..])
        }
    }
}

/// `0*255(chr) nblk-chr`, where `chr` is `%x20 / nblk-chr` and `nblk-chr` excludes `,` and `=`.
fn valid_value(value: &str) -> bool {
    let b = value.as_bytes();
    let nblk = |c: u8| matches!(c, 0x21..=0x2b | 0x2d..=0x3c | 0x3e..=0x7e);
    match b.last() {
        Some(&last) => b.len() <= 256 && nblk(last) && b.iter().all(|&c| c == b' ' || nblk(c)),
        None => false,
    }
}

/// `value` without the optional white space (spaces and tabs) around it.
fn trim_ows(value: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_ows(b)).unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &value[start..end]
}

/// The four fields of the first [`TRACEPARENT_LEN`] bytes of a `traceparent` value
/// (`<version>-<trace id>-<span id>-<flags>`), decoded but not yet judged: a version `ff`, an
/// all-zero id and what follows a later version's flags are the caller's to check.
#[derive(Debug, PartialEq, Eq)]
struct Fields {
    version: u8,
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
}

impl Fields {
    /// Decodes `v`, or `None` if a field is not lowercase hex digits or a dash is not one.
    ///
    /// Seven 64-bit words in all, each eight digits (see [`hex8`]): four for the trace id, two
    /// for the span id, and one for the version's and the flags' four digits, completed with
    /// zeros. Every offset is written out as a constant into a fixed-size array, so that no
    /// read needs a bounds check; this is on every request a server traces.
    #[inline]
    fn decode(v: &[u8; TRACEPARENT_LEN]) -> Option<Fields> {
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        let word = |at: usize| le_word(v, at);
        let [version, flags, _, _] = hex8(u64::from_le_bytes([
            v[0], v[1], v[53], v[54], b'0', b'0', b'0', b'0',
        ]))?;
        let [t0, t1, t2, t3] = [
            hex8(word(3))?,
            hex8(word(11))?,
            hex8(word(19))?,
            hex8(word(27))?,
        ];
        let [s0, s1] = [hex8(word(36))?, hex8(word(44))?];
        Some(Fields {
            version,
            trace_id: [
                t0[0], t0[1], t0[2], t0[3], t1[0], t1[1], t1[2], t1[3], t2[0], t2[1], t2[2], t2[3],
                t3[0], t3[1], t3[2], t3[3],
            ],
            span_id: [s0[0], s0[1], s0[2], s0[3], s1[0], s1[1], s1[2], s1[3]],
            flags,
        })
    }
}

/// Decodes 8 lowercase hex digits, read as a little-endian word (the first digit in the
/// lowest byte), into their 4 bytes, in order. SWAR: every byte lane is converted and checked
/// at once, with no carry between lanes (no lane exceeds 0x8e on the way).
#[inline(always)]
fn hex8(x: u64) -> Option<[u8; 4]> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Each lane's value, were it a digit or one of `a`-`f`: its low nibble, plus 9 when bit 6
    // is set (the letters). At most 15 + 9.
    let v = (x & 0x0f0f_0f0f_0f0f_0f0f) + ((x >> 6) & ONES) * 9;
    // The lane is a lowercase hex digit if and only if its value is at most 15 and encodes
    // back to the very byte (`0`-`9` below 10, `a`-`f` from 10).
    let from_10 = ((v + ONES * 0x76) & HIGH) >> 7;
    let encoded = v + ONES * u64::from(b'0') + from_10 * u64::from(b'a' - b'0' - 10);
    if (v + ONES * 0x70) & HIGH != 0 || encoded != x {
        return None;
    }
    // Two lanes into one byte (the first one's value in the high nibble), then the four
    // bytes side by side.
    let p = ((v & 0x000f_000f_000f_000f) << 4) | ((v >> 8) & 0x000f_000f_000f_000f);
    let p = (p | (p >> 8)) & 0x0000_ffff_0000_ffff;
    let p = (p | (p >> 16)) & 0xffff_ffff;
    Some((p as u32).to_le_bytes())
}

/// Writes `bytes` as lowercase hex into `out` (`out.len() == 2 * bytes.len()`).
///
/// Four bytes at a time, as one 64-bit word of digits (see [`hex8_encode`]): ids are written
/// on every call made under a span.
#[inline]
pub(crate) fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut words = out.chunks_exact_mut(8);
    let mut fours = bytes.chunks_exact(4);
    for (word, four) in (&mut words).zip(&mut fours) {
        let mut b = [0u8; 4];
        b.copy_from_slice(four);
        word.copy_from_slice(&hex8_encode(b).to_le_bytes());
    }
    let rest = words.into_remainder().chunks_exact_mut(2);
    for (pair, b) in rest.zip(fours.remainder()) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

/// Appends `bytes` to `buf` as lowercase hex (with [`write_hex`], 16 bytes at a time).
pub(crate) fn push_hex(buf: &mut String, bytes: &[u8]) {
    let mut digits = [0u8; 32];
    for chunk in bytes.chunks(16) {
        let digits = &mut digits[..2 * chunk.len()];
        write_hex(digits, chunk);
        buf.extend(digits.iter().map(|&d| char::from(d)));
    }
}

/// Encodes 4 bytes as their 8 lowercase hex digits, returned as a little-endian word (the
/// first digit in the lowest byte): [`hex8`] the other way. SWAR: each byte's two nibbles are
/// spread into two byte lanes, then every lane becomes its digit at once.
#[inline(always)]
fn hex8_encode(bytes: [u8; 4]) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW_NIBBLES: u64 = 0x000f_000f_000f_000f;
    // Byte i into bits 16i..16i+8.
    let x = u64::from(u32::from_le_bytes(bytes));
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    let x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    // Lane 2i: byte i's high nibble; lane 2i + 1: its low one.
    let nibbles = ((x >> 4) & LOW_NIBBLES) | ((x & LOW_NIBBLES) << 8);
    // 1 in each lane of 10 or more, whose digit is a letter (at most 15 + 6: no carry).
    let letters = ((nibbles + ONES * 6) >> 4) & ONES;
    nibbles + ONES * u64::from(b'0') + letters * u64::from(b'a' - b'0' - 10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// A lowercase hex digit's value, digit by digit: the reference for the decoders.
    fn digit(c: u8) -> Option<u8> {
        (c as char)
            .to_digit(16)
            .filter(|_| !c.is_ascii_uppercase())
            .map(|d| d as u8)
    }

    /// The bytes of lowercase hex `digits`, two at a time.
    fn bytes_of(digits: &[u8]) -> Option<Vec<u8>> {
        digits
            .chunks(2)
            .map(|p| Some((digit(p[0])? << 4) | digit(p[1])?))
            .collect()
    }

    /// `traceparent`'s first 55 bytes, field by field, as the specification reads them.
    fn fields_by_digits(v: &[u8; TRACEPARENT_LEN]) -> Option<Fields> {
        if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
            return None;
        }
        Some(Fields {
            version: bytes_of(&v[0..2])?[0],
            trace_id: bytes_of(&v[3..35])?.try_into().ok()?,
            span_id: bytes_of(&v[36..52])?.try_into().ok()?,
            flags: bytes_of(&v[53..55])?[0],
        })
    }

    /// The word-at-a-time decoder agrees with a digit-by-digit one on every byte value in
    /// every position of a word, and of a whole `traceparent`.
    #[test]
    fn hex_words_decode_as_digits_do() {
        let base = *b"09afbe71";
        for pos in 0..8 {
            for byte in 0..=255u8 {
                let mut hex = base;
                hex[pos] = byte;
                let ours = hex8(u64::from_le_bytes(hex)).map(|a| a.to_vec());
                assert_eq!(ours, bytes_of(&hex), "byte {byte:#04x} at {pos}");
            }
        }
        let tp: [u8; TRACEPARENT_LEN] = TP.as_bytes().try_into().unwrap();
        for pos in 0..TRACEPARENT_LEN {
            for byte in 0..=255u8 {
                let mut v = tp;
                v[pos] = byte;
                assert_eq!(
                    Fields::decode(&v),
                    fields_by_digits(&v),
                    "byte {byte:#04x} at {pos}"
                );
            }
        }
        assert_eq!(
            Fields::decode(&tp),
            Some(Fields {
                version: 0,
                trace_id: 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736u128.to_be_bytes(),
                span_id: 0x00f0_67aa_0ba9_02b7u64.to_be_bytes(),
                flags: 1,
            })
        );
    }

    /// `parse_traceparent_bytes` as the specification reads a value, field by field.
    fn parse_by_digits(value: &[u8]) -> Option<SpanContext> {
        let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
        let start = value.iter().take_while(|b| is_ows(b)).count();
        let end = value.len()
            - value[start..]
                .iter()
                .rev()
                .take_while(|b| is_ows(b))
                .count();
        let v = &value[start..end];
        let f = fields_by_digits(v.get(..TRACEPARENT_LEN)?.try_into().ok()?)?;
        let later = &v[TRACEPARENT_LEN..];
        let later_ok = later.is_empty()
            || (f.version != 0
                && later[0] == b'-'
                && later
                    .iter()
                    .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)));
        if f.version == 0xff || !later_ok || f.trace_id == [0; 16] || f.span_id == [0; 8] {
            return None;
        }
        Some(SpanContext::new(
            TraceId::from_bytes(f.trace_id),
            SpanId::from_bytes(f.span_id),
            TraceFlags::new(f.flags & 1),
            true,
            TraceState::NONE,
        ))
    }

    proptest::proptest! {
        /// Near-valid values (a few bytes of a valid one replaced, any version, white space
        /// around, a later version's tail) parse as the specification reads them.
        #[test]
        fn near_valid_traceparents_parse_as_digits_do(
            version in proptest::sample::select(vec!["00", "01", "cc", "fe", "ff", "0A"]),
            edits in proptest::collection::vec(
                (0..TRACEPARENT_LEN, proptest::sample::select(
                    b"09afAF-g \t\x00\x7f\xc3\xa9+".to_vec(),
                )),
                0..3,
            ),
            zero_trace_id in proptest::bool::weighted(0.05),
            zero_span_id in proptest::bool::weighted(0.05),
            tail in proptest::sample::select(
                vec!["", "-", "-what-next", "-\ttab", ".x", "-\x01", "-\u{e9}"],
            ),
            before in proptest::sample::select(vec!["", " ", "\t "]),
            after in proptest::sample::select(vec!["", " ", " \t"]),
        ) {
            let mut v = format!("{version}{}", &TP[2..]).into_bytes();
            if zero_trace_id {
                v[3..35].fill(b'0');
            }
            if zero_span_id {
                v[36..52].fill(b'0');
            }
            for (at, byte) in edits {
                v[at] = byte;
            }
            let value = [before.as_bytes(), &v, tail.as_bytes(), after.as_bytes()].concat();
            proptest::prop_assert_eq!(
                TraceContextPropagator::parse_traceparent_bytes(&value),
                parse_by_digits(&value),
                "{:?}",
                String::from_utf8_lossy(&value)
            );
        }
    }

    /// The word-at-a-time encoder writes what `format!("{:02x}")` does, for every byte value
    /// in every position, and for every length (whole words and the pairs after them).
    #[test]
    fn hex_words_encode_as_digits_do() {
        let scalar =
            |bytes: &[u8]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        for pos in 0..4 {
            for byte in 0..=255u8 {
                let mut four = [0x5a; 4];
                four[pos] = byte;
                let word = hex8_encode(four).to_le_bytes();
                assert_eq!(
                    std::str::from_utf8(&word).unwrap(),
                    scalar(&four),
                    "{four:?}"
                );
            }
        }
        for len in 0..=17 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let mut out = vec![0u8; 2 * len];
            write_hex(&mut out, &bytes);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                scalar(&bytes),
                "{len} bytes"
            );
        }
        let mut buf = [0u8; TRACEPARENT_LEN];
        let sc = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        write_traceparent(&mut buf, &sc);
        assert_eq!(&buf[..], TP.as_bytes());
    }

    /// Small header maps are scanned, large ones looked up: the same answers either way.
    #[test]
    fn header_maps_of_any_size_are_read_alike() {
        for filler in [0, crate::headers::SCAN_LIMIT + 1] {
            let headers = |pairs: &[(&str, &str)]| {
                let mut h = HeaderMap::new();
                for i in 0..filler {
                    h.append(
                        HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                        HeaderValue::from_static("v"),
                    );
                }
                for (k, v) in pairs {
                    h.append(
                        HeaderName::try_from(*k).unwrap(),
                        HeaderValue::try_from(*v).unwrap(),
                    );
                }
                h
            };
            let one = headers(&[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("tracestate", "b=2"),
            ]);
            let sc = TraceContextPropagator::extract_from_headers(&one).unwrap();
            assert_eq!(sc.trace_state().header(), "a=1,b=2", "{filler}");
            assert!(!TraceHeaders::find(&one).baggage);
            let single = headers(&[
                ("traceparent", TP),
                ("tracestate", "a=1"),
                ("baggage", "k=v"),
            ]);
            let sc = TraceContextPropagator::extract_from_headers(&single).unwrap();
            assert_eq!(sc.trace_state().header(), "a=1");
            assert!(TraceHeaders::find(&single).baggage);
            let twice = headers(&[("traceparent", TP), ("traceparent", TP)]);
            assert!(TraceContextPropagator::extract_from_headers(&twice).is_none());
            assert!(TraceContextPropagator::extract_from_headers(&headers(&[])).is_none());
        }
    }

    fn extract(pairs: &[(&str, &str)]) -> SpanContext {
        let carrier: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceContextPropagator::new()
            .extract(&carrier)
            .span()
            .span_context()
            .clone()
    }

    fn extract_headers(headers: &[(&str, &str)]) -> SpanContext {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        TraceContextPropagator::new()
            .extract(&opentelemetry_http::HeaderExtractor(&map))
            .span()
            .span_context()
            .clone()
    }

    #[test]
    fn extracts_valid_traceparent() {
        let sc = extract(&[("traceparent", TP)]);
        assert!(sc.is_valid() && sc.is_remote() && sc.is_sampled());
        assert_eq!(
            sc.trace_id(),
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
        );
        assert_eq!(sc.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
        let unsampled = extract(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        )]);
        assert!(unsampled.is_valid() && !unsampled.is_sampled());
    }

    #[test]
    fn unknown_flag_bits_are_ignored() {
        let sc = extract(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
        )]);
        assert_eq!(sc.trace_flags(), TraceFlags::SAMPLED);
        let sc = extract(&[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-02",
        )]);
        assert!(sc.is_valid() && !sc.is_sampled());
    }

    #[test]
    fn future_versions_are_parsed_as_00() {
        for tp in [
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        ] {
            let sc = extract(&[("traceparent", tp)]);
            assert!(sc.is_valid() && sc.is_sampled(), "{tp}");
        }
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert!(extract(&[("traceparent", &format!(" \t{TP} \t"))]).is_valid());
    }

    #[test]
    fn malformed_traceparent_is_a_new_trace() {
        let cases = [
            "",
            "00",
            "garbage",
            // trailing data on version 00
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            // version ff
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // future version with garbage right after the flags
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
            // uppercase
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
            "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0A",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // wrong lengths
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47366-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b77-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-001",
            "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // sign characters that from_str_radix would accept
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-+0f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
            // wrong delimiters
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7_01",
            // non-hex
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
            "xy-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // multibyte characters at the delimiter positions
            "00-4bf92f3577b34da6a3ce929d0e0e47é-00f067aa0ba902b7-01",
        ];
        for tp in cases {
            assert!(!extract(&[("traceparent", tp)]).is_valid(), "{tp:?}");
        }
    }

    #[test]
    fn duplicated_traceparent_is_a_new_trace() {
        assert!(extract_headers(&[("traceparent", TP)]).is_valid());
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        assert!(!extract_headers(&[("traceparent", TP), ("traceparent", other)]).is_valid());
    }

    #[test]
    fn tracestate_lines_are_joined() {
        let sc = extract_headers(&[
            ("traceparent", TP),
            ("tracestate", "foo=1, ,bar=2"),
            ("tracestate", "tenant@sys=v a l"),
        ]);
        assert_eq!(sc.trace_state().header(), "foo=1,bar=2,tenant@sys=v a l");
        assert_eq!(sc.trace_state().get("bar"), Some("2"));
    }

    #[test]
    fn invalid_tracestate_is_discarded_but_traceparent_kept() {
        let too_many: String = (0..33).map(|i| format!("k{i}=v,")).collect();
        let exactly_32: String = (0..32).map(|i| format!("k{i}=v,")).collect();
        let long_key = format!("a{}=v", "b".repeat(256));
        let long_value = format!("a={}", "b".repeat(257));
        for ts in [
            "foo=1,foo=2",
            "Foo=1",
            "1foo=1",
            "foo",
            "foo=",
            "foo=b,ar=",
            "foo=a=b",
            "@sys=v",
            "tenant@=v",
            "tenant@Sys=v",
            "tenant@systemistoolong=v",
            "fo o=1",
            long_key.as_str(),
            long_value.as_str(),
            too_many.as_str(),
        ] {
            let sc = extract(&[("traceparent", TP), ("tracestate", ts)]);
            assert!(sc.is_valid(), "{ts:?}");
            assert_eq!(sc.trace_state().header(), "", "{ts:?}");
        }
        // spaces and tabs around members are optional whitespace, not part of the value
        let sc = extract(&[("traceparent", TP), ("tracestate", "foo=bar \t, baz=1")]);
        assert_eq!(sc.trace_state().header(), "foo=bar,baz=1");
        let sc = extract(&[("traceparent", TP), ("tracestate", &exactly_32)]);
        assert_eq!(sc.trace_state().header().split(',').count(), 32);
    }

    #[test]
    fn tracestate_without_traceparent_is_ignored() {
        assert!(!extract(&[("tracestate", "foo=1")]).is_valid());
    }

    #[test]
    fn round_trip() {
        let state =
            TraceState::from_key_value([("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")])
                .unwrap();
        for flags in [TraceFlags::SAMPLED, TraceFlags::NOT_SAMPLED] {
            let sc = SpanContext::new(
                TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap(),
                SpanId::from_hex("b7ad6b7169203331").unwrap(),
                flags,
                true,
                state.clone(),
            );
            let mut carrier = HashMap::new();
            let prop = TraceContextPropagator::new();
            prop.inject_context(
                &Context::new().with_remote_span_context(sc.clone()),
                &mut carrier,
            );
            assert_eq!(
                carrier["traceparent"],
                format!(
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0{}",
                    flags.to_u8()
                )
            );
            assert_eq!(
                carrier["tracestate"],
                "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"
            );
            let back = prop.extract(&carrier);
            assert_eq!(back.span().span_context(), &sc);
        }
    }

    #[test]
    fn nothing_injected_for_invalid_context_and_no_empty_tracestate() {
        let mut carrier: HashMap<String, String> = HashMap::new();
        TraceContextPropagator::new().inject_context(&Context::new(), &mut carrier);
        assert!(carrier.is_empty());
        let sc = SpanContext::new(
            TraceId::from(1),
            SpanId::from(1),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        TraceContextPropagator::new()
            .inject_context(&Context::new().with_remote_span_context(sc), &mut carrier);
        assert_eq!(carrier.len(), 1);
        assert_eq!(
            carrier["traceparent"],
            "00-00000000000000000000000000000001-0000000000000001-01"
        );
    }

    #[test]
    fn fields_name_both_headers() {
        let prop = TraceContextPropagator::new();
        let fields: Vec<&str> = prop.fields().collect();
        assert_eq!(fields, ["traceparent", "tracestate"]);
    }
}
