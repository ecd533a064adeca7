//! Capture policy: what of a request may leave the process besides its span's conventions.
//!
//! - [`QueryRedaction`]: query values replaced by `REDACTED` by key (the semantic conventions'
//!   signed-URL keys by default), and [`redact_url_full`], which also replaces credentials in a
//!   URL with `REDACTED:REDACTED`.
//! - [`HeaderCapture`]: headers (or gRPC metadata) recorded only by allowlist, as
//!   `http.request.header.<name>` / `http.response.header.<name>` (or `rpc.request.metadata.*`);
//!   `authorization`, `proxy-authorization`, `cookie`, `set-cookie` and `x-api-key`, and any key
//!   the user names, are always `REDACTED`, even when allowlisted.
//! - [`PayloadCapture`]: bodies, off by default (Dapper records method names, not payloads);
//!   when on, at most `max_bytes` of each body is kept ([`CappedBuffer`]) and rendered by
//!   [`render_payload`]: text and JSON as text, anything else as its size and a hex prefix.
//!
//! ```
//! use tracing_core_lite::capture::{HeaderCapture, Direction};
//!
//! let capture = HeaderCapture::new().with_request_headers(["x-request-id", "authorization"]);
//! let mut headers = http::HeaderMap::new();
//! headers.insert("x-request-id", "abc".parse().unwrap());
//! headers.insert("authorization", "Bearer secret".parse().unwrap());
//! let attrs = capture.attributes(Direction::Request, &headers);
//! assert_eq!(attrs[0].key.as_str(), "http.request.header.x-request-id");
//! assert_eq!(attrs[1].value.to_string(), "[\"REDACTED\"]");
//! ```

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, Uri};
use opentelemetry::{Array, KeyValue, StringValue, Value};

/// The value that replaces anything redacted.
pub const REDACTED: &str = "REDACTED";

/// Query keys whose values are redacted by default (semantic conventions, `url.query`).
pub const DEFAULT_REDACTED_QUERY_KEYS: [&str; 4] =
    ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// Headers whose values are always redacted.
pub const ALWAYS_REDACTED_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Which query values to replace with `REDACTED`.
///
/// Keys are compared case-sensitively, as the conventions list them.
#[derive(Clone, Debug)]
pub struct QueryRedaction {
    keys: Arc<[Box<str>]>,
    all: bool,
}

impl Default for QueryRedaction {
    /// The conventions' signed-URL keys: `AWSAccessKeyId`, `Signature`, `sig`,
    /// `X-Goog-Signature`.
    fn default() -> Self {
        QueryRedaction {
            keys: DEFAULT_REDACTED_QUERY_KEYS
                .iter()
                .map(|k| (*k).into())
                .collect(),
            all: false,
        }
    }
}

impl QueryRedaction {
    /// Also redacts the values of `keys`.
    pub fn with_keys<I, K>(self, keys: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        let keys = self
            .keys
            .iter()
            .cloned()
            .chain(keys.into_iter().map(|k| k.as_ref().into()))
            .collect();
        QueryRedaction { keys, ..self }
    }

    /// Redacts every query value.
    pub fn all() -> Self {
        QueryRedaction {
            all: true,
            ..QueryRedaction::default()
        }
    }

    fn redacts(&self, key: &str) -> bool {
        self.all || self.keys.iter().any(|k| &**k == key)
    }

    /// The query with the values of redacted keys replaced; borrowed when nothing changes.
    pub fn redact_query<'q>(&self, query: &'q str) -> Cow<'q, str> {
        let redacted = |pair: &str| match split_at_byte(pair, b'=') {
            Some((k, v)) => !v.is_empty() && self.redacts(k),
            None => false,
        };
        if !query_pairs(query).any(redacted) {
            return Cow::Borrowed(query);
        }
        let mut out = String::with_capacity(query.len());
        for (i, pair) in query_pairs(query).enumerate() {
            if i > 0 {
                out.push('&');
            }
            match split_at_byte(pair, b'=') {
                Some((k, v)) if !v.is_empty() && self.redacts(k) => {
                    out.push_str(k);
                    out.push('=');
                    out.push_str(REDACTED);
                }
                _ => out.push_str(pair),
            }
        }
        Cow::Owned(out)
    }
}

/// The `&`-separated pairs of a query, as `str::split('&')` yields them.
///
/// A byte loop: on a query's few bytes, `str::split` and `split_once` with a `char` spend
/// more on setting up their `memchr` search than on the search itself.
fn query_pairs(query: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(query);
    std::iter::from_fn(move || {
        let q = rest?;
        Some(match split_at_byte(q, b'&') {
            Some((pair, after)) => {
                rest = Some(after);
                pair
            }
            None => {
                rest = None;
                q
            }
        })
    })
}

/// `s` before and after the first `byte` (ASCII), as `str::split_once` splits it.
fn split_at_byte(s: &str, byte: u8) -> Option<(&str, &str)> {
    debug_assert!(byte.is_ascii());
    let at = s.bytes().position(|b| b == byte)?;
    // An ASCII byte is a character of its own (it never occurs inside a multi-byte one): both
    // sides are on character boundaries.
    Some((&s[..at], &s[at + 1..]))
}

/// `url.full` of a request URI: credentials replaced with `REDACTED:REDACTED`, query values
/// redacted per `redaction`, fragment dropped (it never reaches the wire).
pub fn redact_url_full(uri: &Uri, redaction: &QueryRedaction) -> String {
    const CREDENTIALS: &str = "REDACTED:REDACTED@";
    let authority = uri.authority().map(|authority| {
        let authority = authority.as_str();
        match crate::recipe::rposition(authority, b'@') {
            Some(at) => (true, &authority[at + 1..]),
            None => (false, authority),
        }
    });
    let query = uri.query().map(|q| redaction.redact_query(q));
    // The exact length: the string becomes an attribute value without a reallocation.
    let capacity = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + authority.map_or(0, |(redacted, host)| {
            host.len() + if redacted { CREDENTIALS.len() } else { 0 }
        })
        + uri.path().len()
        + query.as_ref().map_or(0, |q| q.len() + 1);
    let mut out = String::with_capacity(capacity);
    if let Some(scheme) = uri.scheme_str() {
        out.push_str(scheme);
        out.push_str("://");
    }
    if let Some((redacted, host)) = authority {
        if redacted {
            out.push_str(CREDENTIALS);
        }
        out.push_str(host);
    }
    out.push_str(uri.path());
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q);
    }
    debug_assert_eq!(out.len(), capacity);
    out
}

/// Whether headers are those of the request or of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Request headers / metadata.
    Request,
    /// Response headers / metadata (and trailers).
    Response,
}

/// Header capture by allowlist, with credential redaction that cannot be switched off.
#[derive(Clone, Debug)]
pub struct HeaderCapture {
    request: Arc<[HeaderName]>,
    response: Arc<[HeaderName]>,
    redacted: Arc<[HeaderName]>,
    prefix_request: &'static str,
    prefix_response: &'static str,
}

impl Default for HeaderCapture {
    fn default() -> Self {
        HeaderCapture::new()
    }
}

fn header_names<I, K>(names: I) -> impl Iterator<Item = HeaderName>
where
    I: IntoIterator<Item = K>,
    K: AsRef<str>,
{
    names
        .into_iter()
        .filter_map(|n| HeaderName::from_bytes(n.as_ref().trim().as_bytes()).ok())
}

impl HeaderCapture {
    /// Captures nothing (the default). Attribute names are the HTTP ones.
    pub fn new() -> Self {
        HeaderCapture {
            request: Arc::new([]),
            response: Arc::new([]),
            redacted: header_names(ALWAYS_REDACTED_HEADERS).collect(),
            prefix_request: "http.request.header.",
            prefix_response: "http.response.header.",
        }
    }

    /// Names attributes `rpc.request.metadata.<key>` / `rpc.response.metadata.<key>`.
    pub fn for_rpc(mut self) -> Self {
        self.prefix_request = "rpc.request.metadata.";
        self.prefix_response = "rpc.response.metadata.";
        self
    }

    /// Adds request headers to capture (names are case-insensitive; invalid names are ignored).
    pub fn with_request_headers<I, K>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.request = self
            .request
            .iter()
            .cloned()
            .chain(header_names(names))
            .collect();
        self
    }

    /// Adds response headers to capture.
    pub fn with_response_headers<I, K>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.response = self
            .response
            .iter()
            .cloned()
            .chain(header_names(names))
            .collect();
        self
    }

    /// Adds headers whose values are always `REDACTED` (on top of the built-in credentials).
    pub fn with_redacted_headers<I, K>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = K>,
        K: AsRef<str>,
    {
        self.redacted = self
            .redacted
            .iter()
            .cloned()
            .chain(header_names(names))
            .collect();
        self
    }

    /// Whether nothing is captured in `direction` (lets callers skip work).
    pub fn is_empty(&self, direction: Direction) -> bool {
        match direction {
            Direction::Request => self.request.is_empty(),
            Direction::Response => self.response.is_empty(),
        }
    }

    /// The attributes for the allowlisted headers present in `headers`: each a string array
    /// of all its values, as the conventions ask. Values that are not visible ASCII are
    /// rendered lossily; redacted headers say `REDACTED` once per value.
    pub fn attributes(&self, direction: Direction, headers: &HeaderMap) -> Vec<KeyValue> {
        let (names, prefix) = match direction {
            Direction::Request => (&self.request, self.prefix_request),
            Direction::Response => (&self.response, self.prefix_response),
        };
        let mut out = Vec::new();
        for name in names.iter() {
            let values = headers.get_all(name);
            if values.iter().next().is_none() {
                continue;
            }
            let redact = self.redacted.contains(name);
            let values: Vec<StringValue> = values
                .iter()
                .map(|v| {
                    if redact {
                        StringValue::from(REDACTED)
                    } else {
                        StringValue::from(String::from_utf8_lossy(v.as_bytes()).into_owned())
                    }
                })
                .collect();
            out.push(KeyValue::new(
                format!("{prefix}{}", name.as_str()),
                Value::Array(Array::String(values)),
            ));
        }
        out
    }
}

/// Payload capture policy. Off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PayloadCapture {
    max_bytes: Option<usize>,
}

impl PayloadCapture {
    /// Payloads are not captured.
    pub const fn off() -> Self {
        PayloadCapture { max_bytes: None }
    }

    /// Up to `max_bytes` of each payload are captured.
    pub const fn up_to(max_bytes: usize) -> Self {
        PayloadCapture {
            max_bytes: Some(max_bytes),
        }
    }

    /// The cap, if capture is on.
    pub fn max_bytes(&self) -> Option<usize> {
        self.max_bytes
    }

    /// A buffer for one payload, if capture is on.
    pub fn buffer(&self) -> Option<CappedBuffer> {
        self.max_bytes.map(CappedBuffer::new)
    }
}

/// Keeps the first `cap` bytes of a payload and counts the rest: it never holds more than
/// `cap` bytes, however large the payload.
#[derive(Clone, Debug, Default)]
pub struct CappedBuffer {
    buf: Vec<u8>,
    cap: usize,
    total: u64,
}

impl CappedBuffer {
    /// A buffer that keeps at most `cap` bytes (allocated as data arrives).
    pub fn new(cap: usize) -> Self {
        CappedBuffer {
            buf: Vec::new(),
            cap,
            total: 0,
        }
    }

    /// Takes note of a chunk: keeps what fits under the cap, counts all of it.
    pub fn push(&mut self, chunk: &[u8]) {
        self.total = self.total.saturating_add(chunk.len() as u64);
        let room = self.cap.saturating_sub(self.buf.len());
        if room > 0 {
            self.buf.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
    }

    /// The bytes kept (at most the cap).
    pub fn captured(&self) -> &[u8] {
        &self.buf
    }

    /// The size of the whole payload seen so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether bytes were left out.
    pub fn is_truncated(&self) -> bool {
        self.total > self.buf.len() as u64
    }

    /// Renders the kept bytes with [`render_payload`].
    pub fn render(&self, content_type: Option<&str>) -> String {
        render_payload(content_type, &self.buf, self.total)
    }
}

/// Whether a content type is shown as text: `text/*`, JSON (`application/json`, `+json`),
/// XML, form data, JavaScript, GraphQL.
pub fn is_textual(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/xml"
                | "application/x-www-form-urlencoded"
                | "application/javascript"
                | "application/graphql"
                | "application/x-ndjson"
        )
}

/// Renders a captured payload prefix of a payload of `total` bytes.
///
/// Text (by content type, or when no content type is given and the bytes are UTF-8) is shown
/// as text, cut at a character boundary; anything else as `<binary, N bytes> ` and the hex of
/// the captured prefix. A cut payload ends with `… (N bytes total)`.
pub fn render_payload(content_type: Option<&str>, captured: &[u8], total: u64) -> String {
    let textual = match content_type {
        Some(ct) => is_textual(ct),
        None => looks_like_text(captured),
    };
    let truncated = total > captured.len() as u64;
    let mut out = String::with_capacity(captured.len() * 2 + 32);
    if textual {
        out.push_str(&String::from_utf8_lossy(utf8_prefix(captured)));
    } else {
        let _ = write!(out, "<binary, {total} bytes> ");
        for b in captured {
            let _ = write!(out, "{b:02x}");
        }
    }
    if truncated {
        let _ = write!(out, "… ({total} bytes total)");
    }
    out
}

/// UTF-8 (possibly cut inside its last character) without control characters other than
/// tab, CR and LF: protobuf and other binary formats fail this.
fn looks_like_text(bytes: &[u8]) -> bool {
    let valid = match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    valid
        && bytes
            .iter()
            .all(|&b| !b.is_ascii_control() || matches!(b, b'\t' | b'\n' | b'\r'))
}

/// The longest prefix that does not end inside a UTF-8 sequence cut by the cap.
fn utf8_prefix(bytes: &[u8]) -> &[u8] {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes,
        Err(e) if e.error_len().is_none() => &bytes[..e.valid_up_to()],
        Err(_) => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_redaction() {
        let r = QueryRedaction::default();
        assert!(matches!(r.redact_query("a=1&b=2"), Cow::Borrowed(_)));
        assert_eq!(
            r.redact_query("AWSAccessKeyId=AKIA&Signature=xyz&sig=1&X-Goog-Signature=2&x=3"),
            "AWSAccessKeyId=REDACTED&Signature=REDACTED&sig=REDACTED&X-Goog-Signature=REDACTED&x=3"
        );
        // case-sensitive, empty values untouched, flags without value untouched
        assert_eq!(
            r.redact_query("signature=a&sig=&sig"),
            "signature=a&sig=&sig"
        );
        let custom = QueryRedaction::default().with_keys(["token"]);
        assert_eq!(
            custom.redact_query("token=abc&sig=1"),
            "token=REDACTED&sig=REDACTED"
        );
        assert_eq!(QueryRedaction::all().redact_query("a=1&b"), "a=REDACTED&b");
    }

    /// The byte loops split a query as `str::split('&')` and `split_once('=')` do.
    fn splits_as_str_does(query: &str) {
        let ours: Vec<_> = query_pairs(query)
            .map(|pair| (pair, split_at_byte(pair, b'=')))
            .collect();
        let std: Vec<_> = query
            .split('&')
            .map(|pair| (pair, pair.split_once('=')))
            .collect();
        assert_eq!(ours, std, "{query:?}");
    }

    #[test]
    fn query_pairs_split_as_str_does() {
        for query in [
            "",
            "&",
            "&&",
            "a",
            "a=",
            "=b",
            "a=b=c",
            "a&&b",
            "a=1&",
            "&a=1",
            "é=ü&ß=&=ø",
            "sig",
        ] {
            splits_as_str_does(query);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_query_splits_as_str_does(query in "[a=&é]{0,12}|\\PC{0,24}") {
            splits_as_str_does(&query);
        }
    }

    #[test]
    fn url_full_never_carries_credentials() {
        let r = QueryRedaction::default();
        for (uri, expected) in [
            (
                "http://u:p@h:8080/p?sig=s",
                "http://REDACTED:REDACTED@h:8080/p?sig=REDACTED",
            ),
            ("https://user@h/", "https://REDACTED:REDACTED@h/"),
            ("http://h/a/b?x=1", "http://h/a/b?x=1"),
            ("/relative?sig=1", "/relative?sig=REDACTED"),
        ] {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(redact_url_full(&uri, &r), expected);
        }
    }

    #[test]
    fn credentials_are_redacted_even_when_allowlisted() {
        let capture = HeaderCapture::new()
            .with_request_headers(
                ALWAYS_REDACTED_HEADERS
                    .iter()
                    .chain(&["x-tenant", "X-Custom"]),
            )
            .with_redacted_headers(["x-custom"]);
        let mut h = HeaderMap::new();
        for n in ALWAYS_REDACTED_HEADERS {
            h.insert(HeaderName::from_static(n), "secret".parse().unwrap());
        }
        h.append("x-tenant", "a".parse().unwrap());
        h.append("x-tenant", "b".parse().unwrap());
        h.insert("x-custom", "hidden".parse().unwrap());
        let attrs = capture.attributes(Direction::Request, &h);
        assert_eq!(attrs.len(), 7);
        for kv in &attrs {
            let rendered = kv.value.to_string();
            assert!(
                !rendered.contains("secret") && !rendered.contains("hidden"),
                "{kv:?}"
            );
        }
        let tenant = attrs
            .iter()
            .find(|kv| kv.key.as_str() == "http.request.header.x-tenant")
            .unwrap();
        assert_eq!(
            tenant.value,
            Value::Array(Array::String(vec!["a".into(), "b".into()]))
        );
        assert!(capture.attributes(Direction::Response, &h).is_empty());
        let rpc = HeaderCapture::new()
            .for_rpc()
            .with_response_headers(["x-tenant"]);
        assert_eq!(
            rpc.attributes(Direction::Response, &h)[0].key.as_str(),
            "rpc.response.metadata.x-tenant"
        );
    }

    #[test]
    fn invalid_utf8_header_values_are_lossy_not_fatal() {
        let capture = HeaderCapture::new().with_request_headers(["x-bin"]);
        let mut h = HeaderMap::new();
        h.insert("x-bin", http::HeaderValue::from_bytes(b"a\xffb").unwrap());
        let attrs = capture.attributes(Direction::Request, &h);
        assert_eq!(
            attrs[0].value,
            Value::Array(Array::String(vec!["a\u{fffd}b".into()]))
        );
    }

    #[test]
    fn capped_buffer_never_exceeds_its_cap() {
        let mut b = CappedBuffer::new(1024);
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            b.push(&chunk);
        }
        assert_eq!(b.captured().len(), 1024);
        assert_eq!(b.total(), 10 * 1024 * 1024);
        assert!(b.is_truncated());
        assert!(b.buf.capacity() <= 2048, "the buffer grew past its cap");
        let off = PayloadCapture::default();
        assert!(off.buffer().is_none());
        assert_eq!(PayloadCapture::up_to(8).buffer().unwrap().cap, 8);
    }

    #[test]
    fn rendering() {
        assert_eq!(
            render_payload(Some("application/json"), br#"{"a":1}"#, 7),
            r#"{"a":1}"#
        );
        assert_eq!(
            render_payload(Some("text/plain; charset=utf-8"), b"hello", 11),
            "hello… (11 bytes total)"
        );
        assert_eq!(
            render_payload(Some("application/grpc"), &[0, 1, 0xff], 3),
            "<binary, 3 bytes> 0001ff"
        );
        // a cap that cuts a multi-byte character does not render a replacement char
        let snow = "a☃".as_bytes();
        assert_eq!(
            render_payload(Some("text/plain"), &snow[..2], 4),
            "a… (4 bytes total)"
        );
        assert_eq!(render_payload(None, b"plain", 5), "plain");
        assert!(render_payload(None, &[0xff, 0xfe, 0, 0, 0, 0], 6).starts_with("<binary"));
        // protobuf: valid UTF-8, but control bytes
        assert_eq!(
            render_payload(None, b"\x0a\x02hi", 4),
            "<binary, 4 bytes> 0a026869"
        );
        assert_eq!(
            render_payload(None, b"line\r\n\tnext", 11),
            "line\r\n\tnext"
        );
        assert!(is_textual("application/vnd.api+json") && !is_textual("image/png"));
    }
}
