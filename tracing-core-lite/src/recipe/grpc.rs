//! gRPC spans, per the RPC semantic conventions as renamed in 2026 (see
//! [`SemconvStability`] for the older names).
//!
//! ```
//! use tracing_core_lite::recipe::grpc::{rpc_span, Code, RpcOutcome};
//! use tracing_core_lite::recipe::{SemconvStability, Side};
//!
//! let recipe = rpc_span(Side::Server, "/helloworld.Greeter/SayHello", SemconvStability::Stable)
//!     .unwrap();
//! assert_eq!(recipe.name, "helloworld.Greeter/SayHello");
//! // On a server, NOT_FOUND is the caller's problem: the span status stays Unset.
//! assert!(!RpcOutcome::new(Side::Server, Code::NotFound).is_error);
//! assert!(RpcOutcome::new(Side::Client, Code::NotFound).is_error);
//! ```

use std::borrow::Cow;
use std::fmt;

use opentelemetry::trace::{Event, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_semantic_conventions::attribute as semconv;

use super::intern::{Kind, Recent, intern};
use super::{SemconvStability, Side, SpanRecipe, push_attribute, push_str_attribute};
use crate::export::stock;

/// Pre-2026 attribute names, kept for `OTEL_SEMCONV_STABILITY_OPT_IN=rpc/old|rpc/dup`.
pub mod old {
    /// `rpc.system` (now `rpc.system.name`).
    pub const RPC_SYSTEM: &str = "rpc.system";
    /// `rpc.service` (now part of the fully qualified `rpc.method`).
    pub const RPC_SERVICE: &str = "rpc.service";
    /// `rpc.grpc.status_code`, an integer (now `rpc.response.status_code`, a string).
    pub const RPC_GRPC_STATUS_CODE: &str = "rpc.grpc.status_code";
}

/// Event name of a message sent or received on an RPC.
pub const MESSAGE_EVENT: &str = "rpc.message";
/// `rpc.message.type`: `SENT` or `RECEIVED`.
pub const MESSAGE_TYPE: &str = "rpc.message.type";
/// `rpc.message.id`: 1-based, counted separately for each direction.
pub const MESSAGE_ID: &str = "rpc.message.id";
/// `rpc.message.uncompressed_size`, in bytes.
pub const MESSAGE_UNCOMPRESSED_SIZE: &str = "rpc.message.uncompressed_size";
/// `rpc.message.compressed_size`, in bytes (only for compressed messages).
pub const MESSAGE_COMPRESSED_SIZE: &str = "rpc.message.compressed_size";

/// A gRPC status code, as carried in `grpc-status` (no dependency on tonic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)] // the variants are the gRPC codes of the same name
pub enum Code {
    Ok = 0,
    Cancelled = 1,
    Unknown = 2,
    InvalidArgument = 3,
    DeadlineExceeded = 4,
    NotFound = 5,
    AlreadyExists = 6,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    FailedPrecondition = 9,
    Aborted = 10,
    OutOfRange = 11,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    DataLoss = 15,
    Unauthenticated = 16,
}

impl Code {
    const ALL: [Code; 17] = [
        Code::Ok,
        Code::Cancelled,
        Code::Unknown,
        Code::InvalidArgument,
        Code::DeadlineExceeded,
        Code::NotFound,
        Code::AlreadyExists,
        Code::PermissionDenied,
        Code::ResourceExhausted,
        Code::FailedPrecondition,
        Code::Aborted,
        Code::OutOfRange,
        Code::Unimplemented,
        Code::Internal,
        Code::Unavailable,
        Code::DataLoss,
        Code::Unauthenticated,
    ];

    /// The code of a number; numbers outside 0..=16 are `Unknown`, as gRPC specifies.
    pub fn from_i32(n: i32) -> Code {
        usize::try_from(n)
            .ok()
            .and_then(|i| Code::ALL.get(i).copied())
            .unwrap_or(Code::Unknown)
    }

    /// Parses a `grpc-status` header value (ASCII decimal); garbage is `Unknown`.
    pub fn from_header(value: &[u8]) -> Code {
        std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
            .map_or(Code::Unknown, Code::from_i32)
    }

    /// The code of a response that has no `grpc-status`, from its HTTP status, as the gRPC
    /// specification maps them (`http-grpc-status-mapping.md`): 400 `INTERNAL`, 401
    /// `UNAUTHENTICATED`, 403 `PERMISSION_DENIED`, 404 `UNIMPLEMENTED`, 429/502/503/504
    /// `UNAVAILABLE`, anything else `UNKNOWN`.
    pub fn from_http_status(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// The number.
    pub fn as_i32(self) -> i32 {
        self as i32
    }

    /// The canonical name, e.g. `DEADLINE_EXCEEDED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Ok => "OK",
            Code::Cancelled => "CANCELLED",
            Code::Unknown => "UNKNOWN",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
            Code::NotFound => "NOT_FOUND",
            Code::AlreadyExists => "ALREADY_EXISTS",
            Code::PermissionDenied => "PERMISSION_DENIED",
            Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
            Code::FailedPrecondition => "FAILED_PRECONDITION",
            Code::Aborted => "ABORTED",
            Code::OutOfRange => "OUT_OF_RANGE",
            Code::Unimplemented => "UNIMPLEMENTED",
            Code::Internal => "INTERNAL",
            Code::Unavailable => "UNAVAILABLE",
            Code::DataLoss => "DATA_LOSS",
            Code::Unauthenticated => "UNAUTHENTICATED",
        }
    }

    /// Whether the code makes a span of `side` an error: on a server only the codes that say
    /// the server failed (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`,
    /// `UNAVAILABLE`, `DATA_LOSS`); on a client every code but `OK`.
    pub fn is_error(self, side: Side) -> bool {
        match side {
            Side::Client => self != Code::Ok,
            Side::Server => matches!(
                self,
                Code::Unknown
                    | Code::DeadlineExceeded
                    | Code::Unimplemented
                    | Code::Internal
                    | Code::Unavailable
                    | Code::DataLoss
            ),
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a `grpc-timeout` header value: up to 8 ASCII digits and a unit (`H`, `M`, `S`, `m`
/// milliseconds, `u` microseconds, `n` nanoseconds). Anything else is `None`.
pub fn parse_timeout(value: &[u8]) -> Option<std::time::Duration> {
    use std::time::Duration;
    let (unit, digits) = value.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Splits a gRPC request path `/package.Service/Method` into `("package.Service", "Method")`.
///
/// Returns `None` for anything else (no leading `/`, empty parts, more segments).
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    // Byte searches: the paths are short, and `str::split_once` costs more to set up.
    let rest = path.strip_prefix('/')?;
    let slash = rest.bytes().position(|b| b == b'/')?;
    let (service, method) = (&rest[..slash], &rest[slash + 1..]);
    (!service.is_empty() && !method.is_empty() && !method.bytes().any(|b| b == b'/'))
        .then_some((service, method))
}

thread_local! {
    /// The two method names (`package.Service/Method`) most recently used on this thread,
    /// interned, each with the length of its service part: a service's calls name the same few
    /// methods over and over.
    static RECENT_METHODS: Recent<usize> = const { Recent::new() };
}

/// The fully qualified method name of a gRPC method path (`package.Service/Method` of
/// `/package.Service/Method`) and the length of its service part; `None` when `path` is not a
/// method path. One of the two paths most recently used on this thread (and interned) costs a
/// comparison or two; another is split and its name interned (see `intern`), or copied when it
/// cannot be (the table full, or a name too long), as it then is on every call.
fn method_name(path: &str) -> Option<(Cow<'static, str>, usize)> {
    method_name_with(path, |full| intern(Kind::Name, full))
}

/// [`method_name`] with `interner` as the interner of names.
fn method_name_with(
    path: &str,
    interner: impl FnOnce(&str) -> Option<&'static str>,
) -> Option<(Cow<'static, str>, usize)> {
    let full = path.strip_prefix('/')?;
    if let Some((last, service_len)) = RECENT_METHODS.with(|recent| recent.get(full)) {
        return Some((Cow::Borrowed(last), service_len));
    }
    let (service, _) = split_path(path)?;
    let service_len = service.len();
    Some(match interner(full) {
        Some(interned) => {
            RECENT_METHODS.with(|recent| recent.put(interned, service_len));
            (Cow::Borrowed(interned), service_len)
        }
        None => (Cow::Owned(full.to_owned()), service_len),
    })
}

/// The span of a gRPC call to `path` (`/package.Service/Method`): named
/// `package.Service/Method`, with `rpc.system.name = grpc` and the fully qualified
/// `rpc.method` (or the older names, per `stability`).
///
/// Returns `None` when `path` is not a gRPC method path.
// Inlined into the layers (other crates), the recipe is built in their frame rather than
// returned through memory and copied (BENCHMARKS, item 45).
#[inline]
pub fn rpc_span(side: Side, path: &str, stability: SemconvStability) -> Option<SpanRecipe> {
    // A service has few methods: their names are interned, and the service and method parts
    // of the older conventions are parts of that copy.
    let (full, service_len) = method_name(path)?;
    // Room for what the layers add (server and peer addresses, the status, `error.type`), so
    // that the span's attribute list is allocated once.
    let mut attrs = stock::attributes(12);
    if stability.emit_stable() {
        push_attribute(&mut attrs, semconv::RPC_SYSTEM_NAME, "grpc");
        push_str_attribute(&mut attrs, semconv::RPC_METHOD, full.clone());
    }
    if stability.emit_old() {
        // Parts of the interned copy, as long-lived as it is.
        let part = |range: std::ops::Range<usize>| match &full {
            Cow::Borrowed(full) => Cow::Borrowed(&full[range]),
            Cow::Owned(full) => Cow::Owned(full[range].to_owned()),
        };
        push_attribute(&mut attrs, old::RPC_SYSTEM, "grpc");
        push_str_attribute(&mut attrs, old::RPC_SERVICE, part(0..service_len));
        if !stability.emit_stable() {
            push_str_attribute(
                &mut attrs,
                semconv::RPC_METHOD,
                part(service_len + 1..full.len()),
            );
        }
    }
    Some(SpanRecipe {
        name: full,
        kind: side.span_kind(),
        attributes: attrs,
    })
}

/// How a gRPC status ends a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RpcOutcome {
    /// The status code.
    pub code: Code,
    /// Whether it is an error for this side (see [`Code::is_error`]).
    pub is_error: bool,
}

impl RpcOutcome {
    /// The outcome of `code` on `side`.
    pub fn new(side: Side, code: Code) -> Self {
        RpcOutcome {
            code,
            is_error: code.is_error(side),
        }
    }

    /// The attributes to set on the span: `rpc.response.status_code` (and/or the older
    /// `rpc.grpc.status_code`), plus `error.type` (the code's name) for an error.
    pub fn attributes(
        &self,
        stability: SemconvStability,
    ) -> impl Iterator<Item = KeyValue> + use<> {
        let stable = stability
            .emit_stable()
            .then(|| KeyValue::new(semconv::RPC_RESPONSE_STATUS_CODE, self.code.as_str()));
        let old = stability
            .emit_old()
            .then(|| KeyValue::new(old::RPC_GRPC_STATUS_CODE, i64::from(self.code.as_i32())));
        let error = self
            .is_error
            .then(|| KeyValue::new(semconv::ERROR_TYPE, self.code.as_str()));
        stable.into_iter().chain(old).chain(error)
    }

    /// The span status: `Error` with the `grpc-message` as description, or `Unset`.
    pub fn status(&self, message: Option<&str>) -> Status {
        if self.is_error {
            Status::error(message.unwrap_or_default().to_owned())
        } else {
            Status::Unset
        }
    }
}

/// Direction of an RPC message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// Written by this side.
    Sent,
    /// Read by this side.
    Received,
}

impl MessageType {
    /// `SENT` or `RECEIVED`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Sent => "SENT",
            MessageType::Received => "RECEIVED",
        }
    }
}

/// The `rpc.message` event ([`MESSAGE_EVENT`], always) of one message: its direction, 1-based
/// id in that direction, and its sizes as far as they are known (a compressed message's
/// uncompressed size is not, where only its frame is seen).
///
/// Its attribute list has room for one more attribute (a captured payload).
// Inlined into the observer (another crate), as `rpc_span` is.
#[inline]
pub fn message_event(
    kind: MessageType,
    id: u64,
    uncompressed_size: Option<u64>,
    compressed_size: Option<u64>,
) -> Event {
    // Type, id, both sizes at most, a payload.
    let mut attrs = stock::attributes(5);
    push_attribute(&mut attrs, MESSAGE_TYPE, kind.as_str());
    push_attribute(&mut attrs, MESSAGE_ID, saturating_i64(id));
    if let Some(size) = uncompressed_size {
        push_attribute(&mut attrs, MESSAGE_UNCOMPRESSED_SIZE, saturating_i64(size));
    }
    if let Some(size) = compressed_size {
        push_attribute(&mut attrs, MESSAGE_COMPRESSED_SIZE, saturating_i64(size));
    }
    Event::new(MESSAGE_EVENT, std::time::SystemTime::now(), attrs, 0)
}

fn saturating_i64(n: u64) -> Value {
    Value::I64(i64::try_from(n).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(attrs: &[KeyValue]) -> Vec<(String, String)> {
        attrs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn path_splitting() {
        assert_eq!(
            split_path("/helloworld.Greeter/SayHello"),
            Some(("helloworld.Greeter", "SayHello"))
        );
        for bad in [
            "",
            "/",
            "helloworld.Greeter/SayHello",
            "//x",
            "/svc/",
            "/a/b/c",
        ] {
            assert_eq!(split_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn span_names_and_attributes_per_stability() {
        let path = "/helloworld.Greeter/SayHello";
        let r = rpc_span(Side::Server, path, SemconvStability::Stable).unwrap();
        assert_eq!(r.name, "helloworld.Greeter/SayHello");
        assert_eq!(r.kind, opentelemetry::trace::SpanKind::Server);
        assert_eq!(
            keys(&r.attributes),
            pairs(&[
                ("rpc.system.name", "grpc"),
                ("rpc.method", "helloworld.Greeter/SayHello")
            ])
        );
        let r = rpc_span(Side::Client, path, SemconvStability::Old).unwrap();
        assert_eq!(r.kind, opentelemetry::trace::SpanKind::Client);
        assert_eq!(
            keys(&r.attributes),
            pairs(&[
                ("rpc.system", "grpc"),
                ("rpc.service", "helloworld.Greeter"),
                ("rpc.method", "SayHello")
            ])
        );
        let r = rpc_span(Side::Server, path, SemconvStability::Duplicate).unwrap();
        assert_eq!(
            keys(&r.attributes),
            pairs(&[
                ("rpc.system.name", "grpc"),
                ("rpc.method", "helloworld.Greeter/SayHello"),
                ("rpc.system", "grpc"),
                ("rpc.service", "helloworld.Greeter"),
            ])
        );
        assert!(rpc_span(Side::Server, "/not-grpc", SemconvStability::Stable).is_none());
    }

    #[test]
    fn server_and_client_error_rules() {
        let server_errors = [
            Code::Unknown,
            Code::DeadlineExceeded,
            Code::Unimplemented,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
        ];
        for code in Code::ALL {
            assert_eq!(
                code.is_error(Side::Server),
                server_errors.contains(&code),
                "{code}"
            );
            assert_eq!(code.is_error(Side::Client), code != Code::Ok, "{code}");
            assert_eq!(Code::from_i32(code.as_i32()), code);
        }
    }

    #[test]
    fn outcome_attributes_and_status() {
        let o = RpcOutcome::new(Side::Server, Code::Internal);
        assert_eq!(
            keys(
                &o.attributes(SemconvStability::Duplicate)
                    .collect::<Vec<_>>()
            ),
            pairs(&[
                ("rpc.response.status_code", "INTERNAL"),
                ("rpc.grpc.status_code", "13"),
                ("error.type", "INTERNAL")
            ])
        );
        assert_eq!(o.status(Some("boom")), Status::error("boom"));
        let ok = RpcOutcome::new(Side::Server, Code::InvalidArgument);
        assert_eq!(
            keys(&ok.attributes(SemconvStability::Stable).collect::<Vec<_>>()),
            pairs(&[("rpc.response.status_code", "INVALID_ARGUMENT")])
        );
        assert_eq!(ok.status(Some("bad")), Status::Unset);
    }

    #[test]
    fn timeouts() {
        use std::time::Duration;
        assert_eq!(parse_timeout(b"100m"), Some(Duration::from_millis(100)));
        assert_eq!(parse_timeout(b"2H"), Some(Duration::from_secs(7200)));
        assert_eq!(
            parse_timeout(b"99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in [
            &b""[..],
            b"m",
            b"100",
            b"100x",
            b"123456789S",
            b"-1S",
            b"1.5S",
            b"\xff",
        ] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn http_status_mapping() {
        for (http, code) in [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (200, Code::Unknown),
        ] {
            assert_eq!(Code::from_http_status(http), code, "{http}");
        }
    }

    #[test]
    fn header_parsing_never_fails() {
        assert_eq!(Code::from_header(b"0"), Code::Ok);
        assert_eq!(Code::from_header(b"14"), Code::Unavailable);
        for bad in [&b""[..], b"abc", b"17", b"-1", b"\xff\xfe", b"99999999999"] {
            assert_eq!(Code::from_header(bad), Code::Unknown);
        }
    }

    #[test]
    fn message_events() {
        let e = message_event(MessageType::Sent, 1, Some(42), Some(30));
        assert_eq!(e.name, "rpc.message");
        assert_eq!(
            keys(&e.attributes),
            pairs(&[
                ("rpc.message.type", "SENT"),
                ("rpc.message.id", "1"),
                ("rpc.message.uncompressed_size", "42"),
                ("rpc.message.compressed_size", "30")
            ])
        );
        let e = message_event(MessageType::Received, 2, None, Some(30));
        assert_eq!(
            keys(&e.attributes),
            pairs(&[
                ("rpc.message.type", "RECEIVED"),
                ("rpc.message.id", "2"),
                ("rpc.message.compressed_size", "30")
            ])
        );
        assert!(e.attributes.capacity() > e.attributes.len());
        let e = message_event(MessageType::Sent, 3, Some(42), Some(30));
        assert_eq!(e.attributes.len(), 4);
        assert!(e.attributes.capacity() > e.attributes.len());
    }

    #[test]
    fn method_names_are_the_same_from_the_recent_methods() {
        let long = format!("/svc/{}", "m".repeat(300));
        let paths = [
            "/helloworld.Greeter/SayHello",
            "/helloworld.Greeter/SayHello",
            "/inventory.Stock/Reserve",
            "/helloworld.Greeter/SayHello",
            "/not-grpc",
            "/not-grpc",
            "/a/b/c",
            "helloworld.Greeter/SayHello",
            "/helloworld.Greeter/SayHello",
            long.as_str(),
            long.as_str(),
            "/é.Svc/Mé",
            "/é.Svc/Mé",
        ];
        // An interner that always interns (the shared table's budget may be spent by other
        // tests), and one that never does (a full table).
        let always = |s: &str| Some(&*Box::leak(Box::from(s)));
        RECENT_METHODS.with(Recent::clear);
        let mut hits = 0;
        for path in paths.iter().chain(&paths) {
            let expected = split_path(path)
                .map(|(service, method)| (format!("{service}/{method}"), service.len()));
            let remembered = path
                .strip_prefix('/')
                .and_then(|full| RECENT_METHODS.with(|recent| recent.peek(full)));
            let found = match remembered {
                Some((last, _)) => {
                    hits += 1;
                    // The remembered copy, without asking the interner.
                    let found = method_name_with(path, |_| panic!("interned again: {path:?}"));
                    assert!(
                        matches!(&found, Some((Cow::Borrowed(f), _)) if std::ptr::eq(*f, last)),
                        "{path:?}"
                    );
                    vec![found]
                }
                // The full table first: it copies, and remembers nothing.
                None => vec![
                    method_name_with(path, |_| None),
                    method_name_with(path, always),
                ],
            };
            for found in found {
                let found = found.map(|(full, service_len)| (full.into_owned(), service_len));
                assert_eq!(found, expected, "{path:?}");
            }
        }
        // Only a path equal to one of the two most recently used is remembered: five in
        // each pass (with one entry, four).
        assert_eq!(hits, 10);
    }

    #[test]
    fn older_conventions_name_the_service_and_method_from_a_remembered_name_and_from_a_copy() {
        let attrs = |path: &str, stability| {
            let recipe = rpc_span(Side::Client, path, stability).unwrap();
            assert_eq!(recipe.name, path[1..]);
            keys(&recipe.attributes)
        };
        // From a remembered name (a static one put there, which the span's recipe then takes
        // without asking the interner), and from a copy (a name too long to be interned).
        let remembered = "pkg.Svc/Do";
        RECENT_METHODS.with(|recent| recent.put(remembered, 7));
        assert!(matches!(
            method_name_with("/pkg.Svc/Do", |_| panic!("interned again")),
            Some((Cow::Borrowed(name), 7)) if std::ptr::eq(name, remembered)
        ));
        let long = format!("/svc/{}", "m".repeat(300));
        for (path, service, method) in [
            ("/pkg.Svc/Do", "pkg.Svc", "Do"),
            (long.as_str(), "svc", &long[5..]),
        ] {
            assert_eq!(
                attrs(path, SemconvStability::Old),
                pairs(&[
                    ("rpc.system", "grpc"),
                    ("rpc.service", service),
                    ("rpc.method", method)
                ]),
            );
            assert_eq!(
                attrs(path, SemconvStability::Duplicate),
                pairs(&[
                    ("rpc.system.name", "grpc"),
                    ("rpc.method", &path[1..]),
                    ("rpc.system", "grpc"),
                    ("rpc.service", service)
                ]),
            );
        }
        assert!(!crate::recipe::intern::is_interned(&long[1..]));
        // The remembered name was used: a miss would have interned it (no other test names it).
        assert!(!crate::recipe::intern::is_interned(remembered));
    }
}
