//! The span recipe: what a span of an HTTP or gRPC request is called, what kind it is, which
//! semantic-convention attributes it carries, and which outcomes make it an error.
//!
//! Both layer crates take their spans from here, so HTTP and gRPC spans, servers and clients,
//! follow one set of rules:
//!
//! - [`http`]: the stable HTTP conventions (`http.request.method`, `url.*`, `server.*`,
//!   `http.route`, `http.response.status_code`, `error.type`). 5xx is an error on both sides,
//!   4xx on the client only.
//! - [`grpc`]: the RPC conventions as renamed in 2026 (`rpc.system.name`, fully qualified
//!   `rpc.method`, `rpc.response.status_code` as the code's name), or the older names, or both,
//!   as [`SemconvStability`] says. On a server only `UNKNOWN`, `DEADLINE_EXCEEDED`,
//!   `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and `DATA_LOSS` are errors; on a client every
//!   code but `OK`.
//!
//! A span's status stays `Unset` on success, as the specification asks of instrumentation.

pub mod grpc;
pub mod http;
pub(crate) mod intern;

use std::borrow::Cow;
use std::net::IpAddr;
use std::ops::Range;
use std::sync::Arc;

use opentelemetry::trace::{SpanBuilder, SpanKind, Tracer};
use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use crate::le_word;
use intern::Recent;

/// Which end of a call a span describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The span of the service that received the request (`SpanKind::Server`).
    Server,
    /// The span of the caller (`SpanKind::Client`).
    Client,
}

impl Side {
    /// The span kind of this side.
    pub fn span_kind(self) -> SpanKind {
        match self {
            Side::Server => SpanKind::Server,
            Side::Client => SpanKind::Client,
        }
    }
}

/// A span about to be started: name, kind and the attributes known at the start.
///
/// Attributes are known before the span starts so that samplers can see them.
#[derive(Clone, Debug, PartialEq)]
pub struct SpanRecipe {
    /// The span name, e.g. `GET /orders/{id}` or `helloworld.Greeter/SayHello`.
    pub name: Cow<'static, str>,
    /// Server or client.
    pub kind: SpanKind,
    /// Semantic-convention attributes.
    pub attributes: Vec<KeyValue>,
}

impl SpanRecipe {
    /// A span builder carrying the recipe.
    pub fn into_builder(self) -> SpanBuilder {
        SpanBuilder::from_name(self.name)
            .with_kind(self.kind)
            .with_attributes(self.attributes)
    }

    /// Starts the span as a child of `parent` (a new root if `parent` holds no span).
    pub fn start<T: Tracer>(self, tracer: &T, parent: &Context) -> T::Span {
        tracer.build_with_context(self.into_builder(), parent)
    }
}

/// An IP address's text for attributes (`client.address`, `network.peer.address`): formatted
/// as `Display` does, but without `fmt` for IPv4 (the common case, where `Ipv4Addr`'s `Display`
/// costs more than the rest of a span's attributes), and reference-counted, so that the
/// attributes that hold the same address share one allocation (and a `Value` is made of it
/// without a call).
pub fn ip_text(ip: IpAddr) -> Arc<str> {
    thread_local! {
        // The last address formatted on this thread: a connection's requests, or all those
        // coming through a proxy or a sidecar, share the peer address.
        static LAST: std::cell::RefCell<Option<(IpAddr, Arc<str>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let cached = LAST.with(|last| match &*last.borrow() {
        Some((seen, text)) if *seen == ip => Some(Arc::clone(text)),
        _ => None,
    });
    if let Some(text) = cached {
        return text;
    }
    let text = format_ip(ip);
    LAST.with(|last| *last.borrow_mut() = Some((ip, Arc::clone(&text))));
    text
}

/// The position of the last `byte` (ASCII) in `s`.
///
/// Eight bytes at a time from the end, as one word (a typical authority, 17 to 32 bytes, is
/// looked through in three or four steps), then byte by byte up to the end of the word that
/// holds it: faster than a plain loop, and than the `memrchr` behind `str::rfind`, on strings
/// as short as a host and port.
pub(crate) fn rposition(s: &str, byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = s.as_bytes();
    // Whether a word of 8 bytes holds `byte`: a lane of `word ^ pattern` is zero where it
    // does, and the borrow of `x - ONES` only runs on from a zero lane, so the answer is exact
    // for the word (a lane above a match may be flagged too: the byte loop finds the place).
    let pattern = ONES * u64::from(byte);
    let holds = |at: usize| {
        let x = le_word(bytes, at) ^ pattern;
        x.wrapping_sub(ONES) & !x & HIGH != 0
    };
    let last_in = |end: usize| bytes[..end].iter().rposition(|&b| b == byte);
    let mut end = bytes.len();
    while end >= 8 {
        if holds(end - 8) {
            return last_in(end);
        }
        end -= 8;
    }
    // The bytes left, at most 7: the first word again (its bytes from `end` on were looked
    // at already and do not hold `byte`) when there is one.
    if end > 0 && bytes.len() >= 8 && !holds(0) {
        return None;
    }
    last_in(end)
}

/// The bytes that [`authority_parts`] looks for, by class: `@` 1, `:` 2, `]` 3, others 0.
const AUTHORITY_CLASS: [u8; 256] = {
    let mut class = [0u8; 256];
    class[b'@' as usize] = 1;
    class[b':' as usize] = 2;
    class[b']' as usize] = 3;
    class
};

/// Splits an authority (`[userinfo@]host[:port]`, an IPv6 host in brackets): where its host
/// is, without brackets, its port (`None` if malformed) and whether a userinfo comes before
/// the host. One pass over the bytes, without a branch per byte.
fn authority_parts(authority: &str) -> (Range<usize>, Option<u16>, bool) {
    let bytes = authority.as_bytes();
    // One past the last `@` (the end of any userinfo), the last `:` and the last `]`, by
    // class; 0 for none (slot 0 takes the other bytes' writes).
    let mut after = [0usize; 4];
    for (i, &b) in bytes.iter().enumerate() {
        after[usize::from(AUTHORITY_CLASS[usize::from(b)])] = i + 1;
    }
    let last = |class: usize| after[class].checked_sub(1);
    let (at, colon, bracket) = (last(1), last(2), last(3));
    let start = at.map_or(0, |i| i + 1);
    // A port follows the last `:` after the userinfo, if no `]` follows it.
    let (mut end, port) = match colon {
        Some(i) if i >= start && bracket.is_none_or(|j| j < i) => {
            (i, authority[i + 1..].parse().ok())
        }
        _ => (bytes.len(), None),
    };
    // Without the brackets of an IPv6 host (ASCII bytes: the cuts are character boundaries).
    let mut start = start;
    while start < end && bytes[start] == b'[' {
        start += 1;
    }
    while end > start && bytes[end - 1] == b']' {
        end -= 1;
    }
    (start..end, port, at.is_some())
}

/// Appends `key = value` to `attrs`: what `attrs.push(KeyValue::new(key, value))` does, in a
/// form that lets the compiler write the pair in place.
///
/// Give it a `value` that becomes a [`Value`] without a call (a `&'static str`, an `i64`, an
/// `Arc<str>`): a value converted by a call (a `String`, a `Cow`) is returned through the stack
/// and copied. A `Cow<'static, str>` is best matched and its two kinds pushed apart.
///
/// ```
/// use opentelemetry::KeyValue;
/// use tracing_core_lite::recipe::push_attribute;
///
/// let mut attrs = Vec::new();
/// push_attribute(&mut attrs, "server.port", 8080_i64);
/// assert_eq!(attrs, [KeyValue::new("server.port", 8080_i64)]);
/// ```
#[inline]
pub fn push_attribute(attrs: &mut Vec<KeyValue>, key: &'static str, value: impl Into<Value>) {
    // `push` builds the pair on the stack before its capacity check (a call where the vector
    // grows) and copies it after, in 16-byte loads from the 8-byte stores that built it: x86
    // processors cannot forward such a load, and each push waited for its stores to reach the
    // cache (BENCHMARKS, item 45). Where the capacity is known to suffice, `push` has no call
    // left, and the compiler (rustc 1.95, opentelemetry 0.33) stores the pair in the vector.
    if attrs.len() < attrs.capacity() {
        attrs.push(KeyValue::new(key, value));
    } else {
        grow_and_push(attrs, KeyValue::new(key, value));
    }
}

/// [`push_attribute`]'s path for a full vector.
#[cold]
#[inline(never)]
fn grow_and_push(attrs: &mut Vec<KeyValue>, attribute: KeyValue) {
    attrs.push(attribute);
}

/// [`push_attribute`] for text that is most often `'static` (interned, or a literal): a
/// `Cow` becomes a `Value` by a call, a `&'static str` without one, so the two are pushed
/// apart.
#[inline]
pub(crate) fn push_str_attribute(
    attrs: &mut Vec<KeyValue>,
    key: &'static str,
    text: Cow<'static, str>,
) {
    match text {
        Cow::Borrowed(text) => push_attribute(attrs, key, text),
        Cow::Owned(text) => push_attribute(attrs, key, text),
    }
}

/// Adds `server.address` and `server.port` for an authority (`[userinfo@]host[:port]`, an IPv6
/// host in brackets): the port it names, else `default_port`; nothing for an empty host.
pub fn push_server_address(authority: &str, default_port: Option<u16>, attrs: &mut Vec<KeyValue>) {
    let Some((host, port)) = server_address(authority) else {
        return;
    };
    push_str_attribute(attrs, semconv::SERVER_ADDRESS, host);
    if let Some(port) = port.or(default_port) {
        push_attribute(attrs, semconv::SERVER_PORT, i64::from(port));
    }
}

thread_local! {
    /// The two authorities most recently used on this thread, interned, with their host (a
    /// part of that copy, as long-lived) and port: the requests a service receives, and those
    /// a client sends, name the same few authorities over and over.
    static RECENT_AUTHORITIES: Recent<(&'static str, Option<u16>)> = const { Recent::new() };
}

/// The host of `authority` as a `server.address` value, and its port; `None` for an empty
/// host. One of the two authorities most recently used on this thread (and interned) costs a
/// comparison or two; another is split and, without userinfo (credentials are never kept),
/// interned whole.
fn server_address(authority: &str) -> Option<(Cow<'static, str>, Option<u16>)> {
    server_address_with(authority, |a| intern::intern(intern::Kind::Authority, a))
}

/// [`server_address`] with `intern` as the interner of authorities.
fn server_address_with(
    authority: &str,
    intern: impl FnOnce(&str) -> Option<&'static str>,
) -> Option<(Cow<'static, str>, Option<u16>)> {
    if let Some((_, (host, port))) = RECENT_AUTHORITIES.with(|recent| recent.get(authority)) {
        return Some((Cow::Borrowed(host), port));
    }
    let (host, port, userinfo) = authority_parts(authority);
    if host.is_empty() {
        return None;
    }
    if !userinfo && let Some(interned) = intern(authority) {
        // The same bytes: the host is at the same place in the interned copy.
        let host = &interned[host];
        RECENT_AUTHORITIES.with(|recent| recent.put(interned, (host, port)));
        return Some((Cow::Borrowed(host), port));
    }
    Some((
        intern::intern_or_copy(intern::Kind::Host, &authority[host]),
        port,
    ))
}

fn format_ip(ip: IpAddr) -> Arc<str> {
    match ip {
        IpAddr::V4(v4) => {
            let mut buf = [0u8; 15];
            let mut len = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    buf[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    buf[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                buf[len] = b'0' + octet % 10;
                len += 1;
            }
            // Only ASCII digits and dots were written.
            Arc::from(std::str::from_utf8(&buf[..len]).unwrap_or_default())
        }
        IpAddr::V6(v6) => Arc::from(v6.to_string()),
    }
}

/// The environment variable that chooses between old and new semantic-convention names.
pub const OTEL_SEMCONV_STABILITY_OPT_IN: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";

/// Which RPC attribute names to emit, from `OTEL_SEMCONV_STABILITY_OPT_IN`.
///
/// | value contains | names |
/// |---|---|
/// | (nothing, or `rpc`) | the 2026 names: `rpc.system.name`, `rpc.method` = `pkg.Service/Method`, `rpc.response.status_code` = `"OK"` |
/// | `rpc/dup` | both: the 2026 names plus `rpc.system`, `rpc.service`, `rpc.grpc.status_code` (`rpc.method` holds the fully qualified name, as the two conventions share that key) |
/// | `rpc/old` | only the older names: `rpc.system`, `rpc.service`, `rpc.method` = `Method`, `rpc.grpc.status_code` = `0` |
///
/// `rpc/dup` wins over `rpc/old` when both are given, as in other OpenTelemetry
/// instrumentations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SemconvStability {
    /// The 2026 names only (the default).
    #[default]
    Stable,
    /// The 2026 names and the older ones.
    Duplicate,
    /// The older names only.
    Old,
}

impl SemconvStability {
    /// Parses an `OTEL_SEMCONV_STABILITY_OPT_IN` value (a comma-separated list; entries for
    /// other domains, such as `http`, are ignored).
    pub fn parse(value: &str) -> Self {
        let entries = || value.split(',').map(str::trim);
        if entries().any(|e| e.eq_ignore_ascii_case("rpc/dup")) {
            SemconvStability::Duplicate
        } else if entries().any(|e| e.eq_ignore_ascii_case("rpc/old")) {
            SemconvStability::Old
        } else {
            SemconvStability::Stable
        }
    }

    /// Reads `OTEL_SEMCONV_STABILITY_OPT_IN` from the environment.
    pub fn from_env() -> Self {
        SemconvStability::parse(&std::env::var(OTEL_SEMCONV_STABILITY_OPT_IN).unwrap_or_default())
    }

    /// Whether the 2026 names are emitted.
    pub fn emit_stable(self) -> bool {
        matches!(self, SemconvStability::Stable | SemconvStability::Duplicate)
    }

    /// Whether the older names are emitted.
    pub fn emit_old(self) -> bool {
        matches!(self, SemconvStability::Old | SemconvStability::Duplicate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_pushed_in_order_with_room_and_without() {
        for capacity in [0, 1, 2, 8] {
            let mut attrs = Vec::with_capacity(capacity);
            push_attribute(&mut attrs, "a", 1_i64);
            push_str_attribute(&mut attrs, "b", Cow::Borrowed("static"));
            push_str_attribute(&mut attrs, "c", Cow::Owned("owned".to_owned()));
            push_attribute(&mut attrs, "d", Arc::<str>::from("shared"));
            push_attribute(&mut attrs, "e", "literal");
            push_attribute(&mut attrs, "f", String::from("string"));
            assert_eq!(
                attrs,
                [
                    KeyValue::new("a", 1_i64),
                    KeyValue::new("b", "static"),
                    KeyValue::new("c", "owned"),
                    KeyValue::new("d", "shared"),
                    KeyValue::new("e", "literal"),
                    KeyValue::new("f", "string"),
                ],
                "capacity {capacity}"
            );
        }
    }

    #[test]
    fn server_address_of_authorities() {
        // authority, default port, server.address, server.port
        type Case = (&'static str, Option<u16>, Option<&'static str>, Option<i64>);
        let cases: [Case; 10] = [
            ("shop.example", None, Some("shop.example"), None),
            ("shop.example", Some(443), Some("shop.example"), Some(443)),
            (
                "shop.example:8080",
                Some(80),
                Some("shop.example"),
                Some(8080),
            ),
            (
                "user:pw@shop.example:81",
                None,
                Some("shop.example"),
                Some(81),
            ),
            ("[::1]", None, Some("::1"), None),
            ("[::1]:3000", None, Some("::1"), Some(3000)),
            (
                "shop.example:99999",
                Some(80),
                Some("shop.example"),
                Some(80),
            ),
            ("", Some(80), None, None),
            ("user@", None, None, None),
            (":80", None, None, None),
        ];
        for (authority, default_port, host, port) in cases {
            let mut attrs = Vec::new();
            push_server_address(authority, default_port, &mut attrs);
            let get = |key: &str| {
                attrs
                    .iter()
                    .find(|kv| kv.key.as_str() == key)
                    .map(|kv| &kv.value)
            };
            assert_eq!(
                get("server.address")
                    .map(|v| v.as_str().into_owned())
                    .as_deref(),
                host,
                "{authority}"
            );
            assert_eq!(
                get("server.port"),
                port.map(Value::I64).as_ref(),
                "{authority}"
            );
        }
    }

    /// The word-at-a-time search finds what a plain loop finds, for every length up to three
    /// words and every place of the byte (none, one, several, next to a byte one bit away).
    #[test]
    fn rposition_finds_what_a_loop_finds() {
        let reference = |s: &str, byte: u8| s.bytes().rposition(|b| b == byte);
        for len in 0..=24 {
            for byte in [b'@', b':', b'a', 0x7f] {
                let base: String = (0..len).map(|i| (b'0' + (i % 10) as u8) as char).collect();
                assert_eq!(rposition(&base, byte), reference(&base, byte), "{base:?}");
                for at in 0..len {
                    for second in [None, Some(0), Some(len - 1), Some(at / 2)] {
                        let mut s = base.clone().into_bytes();
                        s[at] = byte;
                        if let Some(j) = second {
                            s[j] = byte;
                        }
                        // A neighbour one bit away from `byte` (`A` for `@`, `;` for `:`).
                        if at + 1 < len {
                            s[at + 1] = byte ^ 1;
                        }
                        let s = String::from_utf8(s).unwrap();
                        assert_eq!(rposition(&s, byte), reference(&s, byte), "{s:?} {byte}");
                    }
                }
            }
        }
        assert_eq!(rposition("user:pw@host.example:8080", b'@'), Some(7));
        assert_eq!(rposition("é@é", b'@'), Some(2));
        // Bytes of 0x80 and above (UTF-8 continuations and leads) in whole words.
        for s in [
            "ééééé@éé",
            "@éééééééé",
            "éééééééé@",
            "ééééééééé",
            "ü@ü@ü@ü@ü@ü",
        ] {
            assert_eq!(rposition(s, b'@'), reference(s, b'@'), "{s:?}");
        }
    }

    /// The host and port that [`authority_parts`] finds.
    fn split_authority(authority: &str) -> (&str, Option<u16>) {
        let (host, port, _) = authority_parts(authority);
        (&authority[host], port)
    }

    /// The former split, three searches and two trims: the one pass must agree with it.
    fn split_authority_reference(authority: &str) -> (&str, Option<u16>) {
        let authority = rposition(authority, b'@').map_or(authority, |i| &authority[i + 1..]);
        let bytes = authority.as_bytes();
        let (host, port) = match rposition(authority, b':') {
            Some(i) if !bytes[i..].contains(&b']') => (&authority[..i], Some(&authority[i + 1..])),
            _ => (authority, None),
        };
        let h = host.as_bytes();
        let start = h.iter().position(|&b| b != b'[').unwrap_or(h.len());
        let end = h
            .iter()
            .rposition(|&b| b != b']')
            .map_or(start, |i| (i + 1).max(start));
        (&host[start..end], port.and_then(|p| p.parse().ok()))
    }

    #[test]
    fn server_address_is_the_same_from_the_recent_authorities() {
        let long = format!("{}:80", "h".repeat(300));
        let authorities = [
            "shop.example:8080",
            "shop.example:8080",
            "other.example",
            "shop.example:8080",
            "user:secret@creds.example:1",
            "user:secret@creds.example:1",
            "[::1]:443",
            "[::1]:443",
            ":80",
            "shop.example:8080",
            long.as_str(),
            long.as_str(),
            "shop.example:8080",
            "héte.example:x",
            "héte.example:x",
        ];
        // An interner that always interns (the shared table's budget may be spent by other
        // tests), and records what it was given.
        let interned = std::cell::RefCell::new(Vec::<String>::new());
        RECENT_AUTHORITIES.with(Recent::clear);
        let mut hits = 0;
        for authority in authorities.iter().chain(&authorities) {
            let from_cache = RECENT_AUTHORITIES.with(|recent| recent.peek(authority).is_some());
            let found = if from_cache {
                // Remembered: without asking the interner.
                server_address_with(authority, |a| panic!("interned again: {a:?}"))
            } else {
                server_address_with(authority, |a| {
                    interned.borrow_mut().push(a.to_owned());
                    Some(Box::leak(Box::from(a)))
                })
            };
            hits += usize::from(from_cache);
            let (host, port) = split_authority(authority);
            let expected = (!host.is_empty()).then(|| (Cow::<str>::Owned(host.to_owned()), port));
            assert_eq!(found, expected, "{authority:?}");
            let mut attrs = Vec::new();
            push_server_address(authority, Some(9), &mut attrs);
            let expected = if host.is_empty() {
                Vec::new()
            } else {
                vec![
                    KeyValue::new(semconv::SERVER_ADDRESS, host.to_owned()),
                    KeyValue::new(semconv::SERVER_PORT, i64::from(port.unwrap_or(9))),
                ]
            };
            assert_eq!(attrs, expected, "{authority:?}");
        }
        // Only an authority equal to one of the two most recently used is remembered: seven
        // in the first pass, eight in the second (which starts with `shop.example:8080` still
        // there); with one entry, four in each.
        assert_eq!(hits, 15);
        // Credentials are never kept for the life of the process.
        let interned = interned.into_inner();
        assert!(interned.iter().all(|a| !a.contains('@')), "{interned:?}");
        assert!(interned.iter().any(|a| a == "shop.example:8080"));
        assert!(!intern::is_interned("user:secret@creds.example:1"));
    }

    #[test]
    fn one_pass_authority_split_agrees_with_the_reference() {
        // Every string of up to five bytes over an alphabet of the bytes that matter.
        let alphabet = [b'a', b'1', b':', b'@', b'[', b']'];
        let mut checked = 0;
        for len in 0..=5u32 {
            for mut n in 0..alphabet.len().pow(len) {
                let mut s = Vec::new();
                for _ in 0..len {
                    s.push(alphabet[n % alphabet.len()]);
                    n /= alphabet.len();
                }
                let s = std::str::from_utf8(&s).unwrap();
                assert_eq!(split_authority(s), split_authority_reference(s), "{s:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 9_331);
        // Longer ones, from a fixed-seed generator, over the same bytes and a two-byte
        // character.
        let pieces = ["a", "1", ":", "@", "[", "]", "é", "host.example", "8080"];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = 6 + (seed % 24) as usize;
            let mut bits = seed;
            for _ in 0..len {
                bits = bits.rotate_left(5) ^ seed.wrapping_mul(31);
                s.push_str(pieces[(bits % pieces.len() as u64) as usize]);
            }
            assert_eq!(split_authority(&s), split_authority_reference(&s), "{s:?}");
        }
        for s in [
            "user:pw@[::1]:8080",
            "[fe80::1%25eth0]:443",
            "h:+80",
            "h:65536",
            "a@b@c:1",
        ] {
            assert_eq!(split_authority(s), split_authority_reference(s), "{s:?}");
        }
    }

    #[test]
    fn stability_parsing() {
        assert_eq!(SemconvStability::parse(""), SemconvStability::Stable);
        assert_eq!(
            SemconvStability::parse("http,rpc"),
            SemconvStability::Stable
        );
        assert_eq!(
            SemconvStability::parse("http, rpc/dup"),
            SemconvStability::Duplicate
        );
        assert_eq!(SemconvStability::parse("rpc/old"), SemconvStability::Old);
        assert_eq!(
            SemconvStability::parse("rpc/old,rpc/dup"),
            SemconvStability::Duplicate
        );
        assert!(
            SemconvStability::Duplicate.emit_old() && SemconvStability::Duplicate.emit_stable()
        );
        assert!(!SemconvStability::Old.emit_stable());
    }
}
