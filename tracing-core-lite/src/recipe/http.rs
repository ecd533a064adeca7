//! HTTP spans, per the stable HTTP semantic conventions.
//!
//! ```
//! use tracing_core_lite::recipe::http::{server_span, ServerRequest};
//! use tracing_core_lite::capture::QueryRedaction;
//!
//! let req = http::Request::get("/orders/42?sig=secret&page=2")
//!     .header("host", "shop.example:8080")
//!     .body(())
//!     .unwrap();
//! let recipe = server_span(
//!     &ServerRequest::new(&req).with_route(Some("/orders/{id}")),
//!     &QueryRedaction::default(),
//! );
//! assert_eq!(recipe.name, "GET /orders/{id}");
//! let query = recipe.attributes.iter().find(|kv| kv.key.as_str() == "url.query").unwrap();
//! assert_eq!(query.value.as_str(), "sig=REDACTED&page=2");
//! ```

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version, header};
use opentelemetry::KeyValue;
use opentelemetry::trace::Status;
use opentelemetry_semantic_conventions::attribute as semconv;

use super::intern::{Kind, intern, intern_name, intern_or_copy};
use super::{Side, SpanRecipe, ip_text, push_attribute, push_server_address, push_str_attribute};
use crate::capture::{QueryRedaction, redact_url_full};
use crate::export::stock;
use crate::headers::first_values;

/// `error.type` of a request whose response body ended with an error.
pub const ERROR_TYPE_BODY: &str = "body_error";
/// `error.type` of a request whose response body was dropped before its end.
pub const ERROR_TYPE_BODY_DROPPED: &str = "body_dropped";
/// `error.type` of a client whose request timed out.
pub const ERROR_TYPE_TIMEOUT: &str = "timeout";
/// The fallback `error.type` (semantic conventions: `_OTHER`).
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// What the server span of an HTTP request is made from.
#[derive(Clone, Copy, Debug)]
pub struct ServerRequest<'a> {
    /// Request method.
    pub method: &'a Method,
    /// Request target.
    pub uri: &'a Uri,
    /// Protocol version.
    pub version: Version,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// The matched route template (`/orders/{id}`), when the router knows it.
    pub route: Option<&'a str>,
    /// The address of the peer that sent the request.
    pub peer: Option<SocketAddr>,
}

impl<'a> ServerRequest<'a> {
    /// The parts of `req` (no route, no peer address).
    pub fn new<B>(req: &'a http::Request<B>) -> Self {
        ServerRequest {
            method: req.method(),
            uri: req.uri(),
            version: req.version(),
            headers: req.headers(),
            route: None,
            peer: None,
        }
    }

    /// Sets the matched route template.
    pub fn with_route(mut self, route: Option<&'a str>) -> Self {
        self.route = route;
        self
    }

    /// Sets the peer address.
    pub fn with_peer(mut self, peer: Option<SocketAddr>) -> Self {
        self.peer = peer;
        self
    }
}

/// The stable-convention name of a method: itself if the conventions know it, else `None`
/// (it is then recorded as `_OTHER`).
pub fn known_method(method: &Method) -> Option<&'static str> {
    Some(match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ if method.as_str() == "QUERY" => "QUERY",
        _ => return None,
    })
}

/// `network.protocol.version` of an HTTP version.
pub fn protocol_version(version: Version) -> Option<&'static str> {
    Some(match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_11 => "1.1",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => return None,
    })
}

fn method_attributes(method: &Method, attrs: &mut Vec<KeyValue>) -> &'static str {
    match known_method(method) {
        Some(m) => {
            push_attribute(attrs, semconv::HTTP_REQUEST_METHOD, m);
            m
        }
        None => {
            push_attribute(attrs, semconv::HTTP_REQUEST_METHOD, "_OTHER");
            push_attribute(
                attrs,
                semconv::HTTP_REQUEST_METHOD_ORIGINAL,
                method.as_str().to_owned(),
            );
            "HTTP"
        }
    }
}

fn value_str(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok())
}

/// Header names looked up per request, built at compile time (a `&str` name is parsed at
/// each lookup).
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// `http` and `https` as static strings (no allocation), anything else copied.
fn static_or_owned(scheme: &str) -> Cow<'static, str> {
    match scheme {
        "http" => Cow::Borrowed("http"),
        "https" => Cow::Borrowed("https"),
        other => Cow::Owned(other.to_owned()),
    }
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// The server span of an HTTP request: `{method} {route}` (or `{method}` without a route),
/// kind SERVER, and `http.request.method`, `url.path`, `url.query` (redacted), `url.scheme`,
/// `server.address`, `server.port`, `client.address`, `network.peer.address`,
/// `network.peer.port`, `network.protocol.version`, `user_agent.original`, `http.route`.
///
/// `url.scheme` is the request's own scheme, else `X-Forwarded-Proto`, else `http`;
/// `server.address`/`server.port` come from the request authority or the `Host` header;
/// `client.address` is the first `X-Forwarded-For` entry, else the peer address.
pub fn server_span(req: &ServerRequest<'_>, redaction: &QueryRedaction) -> SpanRecipe {
    // Each as `HeaderMap::get` finds it (the first value).
    let [host, user_agent, forwarded_for, forwarded_proto] = first_values(
        req.headers,
        [
            &header::HOST,
            &header::USER_AGENT,
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
        ],
    );
    // Route templates and the names made of them are few: interned (see `intern`).
    let route = req.route.map(|route| (route, intern(Kind::Name, route)));
    // A path equal to its route's text (a route without parameters: `/health`) reuses the
    // route's interned text for `url.path`. Any other path is copied as an `Arc<str>` (one
    // allocation, as a `String`'s), which becomes a `Value` without a call (see
    // `push_attribute`), as the forwarded address does.
    let path = match route {
        Some((_, Some(interned))) if interned == req.uri.path() => UrlPath::Route(interned),
        _ => UrlPath::Copied(Arc::from(req.uri.path())),
    };
    // The peer's address, formatted once for both attributes that may hold it.
    let peer_ip = req.peer.map(|peer| ip_text(peer.ip()));
    let client_address = value_str(forwarded_for)
        .and_then(|v| v.split(',').next())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(Arc::<str>::from)
        .or_else(|| peer_ip.clone());
    let mut attrs = stock::attributes(14);
    let method = method_attributes(req.method, &mut attrs);
    match path {
        UrlPath::Route(route) => push_attribute(&mut attrs, semconv::URL_PATH, route),
        UrlPath::Copied(path) => push_attribute(&mut attrs, semconv::URL_PATH, path),
    }
    if let Some(q) = req.uri.query() {
        push_attribute(
            &mut attrs,
            semconv::URL_QUERY,
            redaction.redact_query(q).into_owned(),
        );
    }
    let scheme = req
        .uri
        .scheme_str()
        .or_else(|| value_str(forwarded_proto))
        .unwrap_or("http");
    push_str_attribute(&mut attrs, semconv::URL_SCHEME, static_or_owned(scheme));
    let authority = req
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| value_str(host));
    if let Some(authority) = authority {
        push_server_address(authority, default_port(scheme), &mut attrs);
    }
    if let Some(client) = client_address {
        push_attribute(&mut attrs, semconv::CLIENT_ADDRESS, client);
    }
    if let (Some(peer), Some(ip)) = (req.peer, peer_ip) {
        push_attribute(&mut attrs, semconv::NETWORK_PEER_ADDRESS, ip);
        push_attribute(
            &mut attrs,
            semconv::NETWORK_PEER_PORT,
            i64::from(peer.port()),
        );
    }
    if let Some(v) = protocol_version(req.version) {
        push_attribute(&mut attrs, semconv::NETWORK_PROTOCOL_VERSION, v);
    }
    if let Some(ua) = value_str(user_agent) {
        let ua = intern_or_copy(Kind::UserAgent, ua);
        push_str_attribute(&mut attrs, semconv::USER_AGENT_ORIGINAL, ua);
    }
    let name: Cow<'static, str> = match route {
        Some((_, Some(interned))) => {
            push_attribute(&mut attrs, semconv::HTTP_ROUTE, interned);
            match intern_name(method, interned) {
                Some(name) => Cow::Borrowed(name),
                None => Cow::Owned(format!("{method} {interned}")),
            }
        }
        Some((route, None)) => {
            push_attribute(&mut attrs, semconv::HTTP_ROUTE, route.to_owned());
            Cow::Owned(format!("{method} {route}"))
        }
        None => Cow::Borrowed(method),
    };
    SpanRecipe {
        name,
        kind: Side::Server.span_kind(),
        attributes: attrs,
    }
}

/// The text of `url.path`: its route's, or a copy of the request's (see [`server_span`]).
enum UrlPath {
    Route(&'static str),
    Copied(Arc<str>),
}

/// The client span of an HTTP request: `{method}`, kind CLIENT, and `http.request.method`,
/// `url.full` (credentials replaced by `REDACTED:REDACTED`, signed-URL query values by
/// `REDACTED`), `server.address`, `server.port`.
// Inlined into the layers (other crates), the recipe is built in their frame rather than
// returned through memory and copied (BENCHMARKS, item 45).
#[inline]
pub fn client_span(method: &Method, uri: &Uri, redaction: &QueryRedaction) -> SpanRecipe {
    let mut attrs = stock::attributes(6);
    let name = method_attributes(method, &mut attrs);
    push_attribute(
        &mut attrs,
        semconv::URL_FULL,
        redact_url_full(uri, redaction),
    );
    if let Some(authority) = uri.authority() {
        let default = uri.scheme_str().and_then(default_port);
        push_server_address(authority.as_str(), default, &mut attrs);
    }
    SpanRecipe {
        name: Cow::Borrowed(name),
        kind: Side::Client.span_kind(),
        attributes: attrs,
    }
}

/// Whether a response status makes the span an error: 5xx on both sides, 4xx on the client
/// only; a code outside 100..=599 is always an error.
pub fn is_error_status(side: Side, status: u16) -> bool {
    match status {
        100..=399 => false,
        400..=499 => side == Side::Client,
        _ => true,
    }
}

/// How a response ends a span: `http.response.status_code`, and for an error status
/// `error.type` (the status code) and an `Error` span status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseOutcome {
    /// The response status code.
    pub status_code: u16,
    /// Whether it is an error for this side.
    pub is_error: bool,
}

impl ResponseOutcome {
    /// The outcome of `status` on `side`.
    pub fn new(side: Side, status: u16) -> Self {
        ResponseOutcome {
            status_code: status,
            is_error: is_error_status(side, status),
        }
    }

    /// The attributes to set on the span (one or two).
    pub fn attributes(&self) -> impl Iterator<Item = KeyValue> + use<> {
        let code = KeyValue::new(
            semconv::HTTP_RESPONSE_STATUS_CODE,
            i64::from(self.status_code),
        );
        let error = self
            .is_error
            .then(|| KeyValue::new(semconv::ERROR_TYPE, self.status_code.to_string()));
        std::iter::once(code).chain(error)
    }

    /// The span status: `Error` (without description, as the code says it all) or `Unset`.
    pub fn status(&self) -> Status {
        if self.is_error {
            Status::error("")
        } else {
            Status::Unset
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::Value;

    fn attr<'a>(r: &'a SpanRecipe, key: &str) -> Option<&'a Value> {
        r.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| &kv.value)
    }

    fn s(r: &SpanRecipe, key: &str) -> Option<String> {
        attr(r, key).map(|v| v.as_str().into_owned())
    }

    #[test]
    fn server_span_has_the_stable_attributes() {
        let req = http::Request::post("/orders/7?page=2&Signature=abc")
            .header("host", "shop.example:8443")
            .header("user-agent", "curl/8")
            .header("x-forwarded-proto", "https")
            .version(Version::HTTP_11)
            .body(())
            .unwrap();
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        let r = server_span(
            &ServerRequest::new(&req)
                .with_route(Some("/orders/{id}"))
                .with_peer(Some(peer)),
            &QueryRedaction::default(),
        );
        assert_eq!(r.name, "POST /orders/{id}");
        assert_eq!(r.kind, opentelemetry::trace::SpanKind::Server);
        assert_eq!(s(&r, "http.request.method").as_deref(), Some("POST"));
        assert_eq!(s(&r, "url.path").as_deref(), Some("/orders/7"));
        assert_eq!(
            s(&r, "url.query").as_deref(),
            Some("page=2&Signature=REDACTED")
        );
        assert_eq!(s(&r, "url.scheme").as_deref(), Some("https"));
        assert_eq!(s(&r, "server.address").as_deref(), Some("shop.example"));
        assert_eq!(attr(&r, "server.port"), Some(&Value::I64(8443)));
        assert_eq!(s(&r, "client.address").as_deref(), Some("10.1.2.3"));
        assert_eq!(s(&r, "network.peer.address").as_deref(), Some("10.1.2.3"));
        assert_eq!(attr(&r, "network.peer.port"), Some(&Value::I64(5555)));
        assert_eq!(s(&r, "network.protocol.version").as_deref(), Some("1.1"));
        assert_eq!(s(&r, "user_agent.original").as_deref(), Some("curl/8"));
        assert_eq!(s(&r, "http.route").as_deref(), Some("/orders/{id}"));
    }

    #[test]
    fn a_route_without_parameters_is_its_own_path() {
        let too_long = format!("/{}", "a".repeat(super::super::intern::MAX_LEN));
        for (route, path) in [
            ("/health", "/health"),
            ("/orders/{id}", "/orders/7"),
            ("/health", "/health/"),
            ("/Health", "/health"),
            (&too_long, &too_long),
        ] {
            let req = http::Request::get(path).body(()).unwrap();
            let r = server_span(
                &ServerRequest::new(&req).with_route(Some(route)),
                &QueryRedaction::default(),
            );
            assert_eq!(s(&r, "url.path").as_deref(), Some(path));
            assert_eq!(s(&r, "http.route").as_deref(), Some(route));
            assert_eq!(r.name, format!("GET {route}"));
            // One text for both, not a copy, exactly when the route is the path and interned
            // (the interning table takes no text that long).
            let text = |key| match attr(&r, key).map(Value::as_str) {
                Some(Cow::Borrowed(text)) => text.as_ptr(),
                _ => std::ptr::null(),
            };
            assert_eq!(
                text("url.path") == text("http.route"),
                route == path && route != too_long,
                "{route} {path}"
            );
        }
    }

    #[test]
    fn headers_are_read_alike_by_scan_and_by_lookup() {
        let peer: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        for filler in [0, crate::headers::SCAN_LIMIT + 1] {
            let mut req = http::Request::get("/x").body(()).unwrap();
            let h = req.headers_mut();
            for i in 0..filler {
                h.insert(
                    HeaderName::try_from(format!("x-filler-{i}")).unwrap(),
                    HeaderValue::from_static("v"),
                );
            }
            h.append(header::HOST, HeaderValue::from_static("first.example:81"));
            h.append(header::HOST, HeaderValue::from_static("second.example:82"));
            h.append(
                X_FORWARDED_FOR,
                HeaderValue::from_static("192.0.2.7, 10.0.0.1"),
            );
            h.append(X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.8"));
            h.insert(X_FORWARDED_PROTO, HeaderValue::from_static("https"));
            h.insert(header::USER_AGENT, HeaderValue::from_static("probe/1"));
            let r = server_span(
                &ServerRequest::new(&req).with_peer(Some(peer)),
                &QueryRedaction::default(),
            );
            assert_eq!(
                s(&r, "server.address").as_deref(),
                Some("first.example"),
                "{filler}"
            );
            assert_eq!(attr(&r, "server.port"), Some(&Value::I64(81)));
            assert_eq!(s(&r, "client.address").as_deref(), Some("192.0.2.7"));
            assert_eq!(s(&r, "url.scheme").as_deref(), Some("https"));
            assert_eq!(s(&r, "user_agent.original").as_deref(), Some("probe/1"));
        }
    }

    #[test]
    fn ip_texts_are_formatted_as_display_does() {
        use std::net::IpAddr;
        for ip in [
            "0.0.0.0",
            "9.10.99.100",
            "255.255.255.255",
            "127.0.0.1",
            "10.200.30.4",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.1.2.3",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(&*ip_text(parsed), parsed.to_string(), "{ip}");
        }
    }

    #[test]
    fn server_span_without_route_or_host() {
        let req = http::Request::get("/x")
            .version(Version::HTTP_2)
            .body(())
            .unwrap();
        let r = server_span(&ServerRequest::new(&req), &QueryRedaction::default());
        assert_eq!(r.name, "GET");
        assert_eq!(s(&r, "url.scheme").as_deref(), Some("http"));
        assert!(attr(&r, "server.address").is_none());
        assert!(attr(&r, "http.route").is_none());
        assert!(attr(&r, "url.query").is_none());
        assert_eq!(s(&r, "network.protocol.version").as_deref(), Some("2"));
    }

    #[test]
    fn forwarded_for_wins_for_client_address_and_ipv6_host() {
        let req = http::Request::get("/")
            .header("x-forwarded-for", " 203.0.113.9 , 10.0.0.1")
            .header("host", "[::1]:3000")
            .body(())
            .unwrap();
        let r = server_span(
            &ServerRequest::new(&req).with_peer(Some("127.0.0.1:1".parse().unwrap())),
            &QueryRedaction::default(),
        );
        assert_eq!(s(&r, "client.address").as_deref(), Some("203.0.113.9"));
        assert_eq!(s(&r, "server.address").as_deref(), Some("::1"));
        assert_eq!(attr(&r, "server.port"), Some(&Value::I64(3000)));
    }

    #[test]
    fn unknown_methods_are_other() {
        let req = http::Request::builder()
            .method(Method::from_bytes(b"PURGE").unwrap())
            .uri("/")
            .body(())
            .unwrap();
        let r = server_span(&ServerRequest::new(&req), &QueryRedaction::default());
        assert_eq!(r.name, "HTTP");
        assert_eq!(s(&r, "http.request.method").as_deref(), Some("_OTHER"));
        assert_eq!(
            s(&r, "http.request.method_original").as_deref(),
            Some("PURGE")
        );
        let query = http::Request::builder()
            .method(Method::from_bytes(b"QUERY").unwrap())
            .uri("/")
            .body(())
            .unwrap();
        assert_eq!(
            server_span(&ServerRequest::new(&query), &QueryRedaction::default()).name,
            "QUERY"
        );
    }

    #[test]
    fn client_span_redacts_url_full() {
        let uri: Uri = "https://user:pw@api.example/v1/x?X-Goog-Signature=s&a=1"
            .parse()
            .unwrap();
        let r = client_span(&Method::GET, &uri, &QueryRedaction::default());
        assert_eq!(r.name, "GET");
        assert_eq!(r.kind, opentelemetry::trace::SpanKind::Client);
        assert_eq!(
            s(&r, "url.full").as_deref(),
            Some("https://REDACTED:REDACTED@api.example/v1/x?X-Goog-Signature=REDACTED&a=1")
        );
        assert_eq!(s(&r, "server.address").as_deref(), Some("api.example"));
        assert_eq!(attr(&r, "server.port"), Some(&Value::I64(443)));
    }

    #[test]
    fn status_rules() {
        for (side, code, err) in [
            (Side::Server, 200, false),
            (Side::Server, 404, false),
            (Side::Server, 499, false),
            (Side::Server, 500, true),
            (Side::Server, 503, true),
            (Side::Client, 302, false),
            (Side::Client, 404, true),
            (Side::Client, 500, true),
            (Side::Server, 600, true),
            (Side::Client, 99, true),
        ] {
            let o = ResponseOutcome::new(side, code);
            assert_eq!(o.is_error, err, "{side:?} {code}");
            assert_eq!(matches!(o.status(), Status::Error { .. }), err);
            let attrs: Vec<_> = o.attributes().collect();
            assert_eq!(
                attrs[0],
                KeyValue::new("http.response.status_code", i64::from(code))
            );
            if err {
                assert_eq!(attrs[1], KeyValue::new("error.type", code.to_string()));
            } else {
                assert_eq!(attrs.len(), 1);
            }
        }
    }
}
