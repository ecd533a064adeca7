//! The reqwest integration (feature `reqwest`): a `reqwest_middleware::Middleware`.

use http::Extensions;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry_semantic_conventions::attribute as semconv;
use reqwest_middleware::{Middleware, Next};
use tracing_core_lite::propagation::inject_headers;
use tracing_core_lite::recipe::http::{ERROR_TYPE_OTHER, ERROR_TYPE_TIMEOUT};

use crate::ClientLayer;
use crate::body::TracedBody;
use crate::client::start_client_span;

/// Traces `reqwest` calls through `reqwest-middleware`, with the same spans as
/// [`ClientLayer`]: a CLIENT span per request, its context injected into the headers, ended
/// when the response body has been read (or fails, or is dropped).
///
/// ```
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(tower_trace::ReqwestMiddleware::new())
///     .build();
/// # let _ = client;
/// ```
///
/// The parent is an [`opentelemetry::Context`] in the middleware extensions
/// (`RequestBuilder::with_extension`), else the current context.
#[derive(Clone, Debug, Default)]
pub struct ReqwestMiddleware {
    layer: ClientLayer,
}

impl ReqwestMiddleware {
    /// The middleware with [`ClientLayer::new`]'s defaults.
    pub fn new() -> Self {
        ReqwestMiddleware::default()
    }

    /// The middleware configured as `layer` (tracer, propagators, redaction, capture).
    pub fn from_layer(layer: ClientLayer) -> Self {
        ReqwestMiddleware { layer }
    }
}

fn error_type(error: &reqwest_middleware::Error) -> &'static str {
    match error {
        reqwest_middleware::Error::Reqwest(e) if e.is_timeout() => ERROR_TYPE_TIMEOUT,
        reqwest_middleware::Error::Reqwest(e) if e.is_connect() => "connect",
        reqwest_middleware::Error::Reqwest(_) => "reqwest::Error",
        reqwest_middleware::Error::Middleware(_) => ERROR_TYPE_OTHER,
    }
}

/// The span status message of a failed call: the error's message without the URL that
/// reqwest appends to it (` for url (…)`), which carries credentials and signed query values
/// as they are; the span's `url.full` has the URL, redacted.
fn error_message(error: &reqwest_middleware::Error) -> String {
    let message = error.to_string();
    match error {
        reqwest_middleware::Error::Reqwest(e) => match e.url() {
            Some(url) => message.replace(&format!(" for url ({url})"), ""),
            None => message,
        },
        reqwest_middleware::Error::Middleware(_) => message,
    }
}

#[async_trait::async_trait]
impl Middleware for ReqwestMiddleware {
    async fn handle(
        &self,
        mut req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let config = &self.layer.config;
        let method = req.method().clone();
        let uri: http::Uri = match req.url().as_str().parse() {
            Ok(uri) => uri,
            // Not an http URI (reqwest would fail it anyway): trace it as a bare path.
            Err(_) => http::Uri::from_static("/"),
        };
        let (cx, recording) = start_client_span(config, &method, &uri, req.headers(), extensions);
        inject_headers(config.propagators.as_ref(), &cx, req.headers_mut());
        let result = next.run(req, extensions).await;
        if !recording {
            // Nothing to record (as the client layer): the response as it came, its body not
            // wrapped, nor captured.
            return result;
        }
        let span = cx.span();
        match result {
            Ok(res) => {
                let url = res.url().clone();
                let res: http::Response<reqwest::Body> = res.into();
                let (mut parts, body) = res.into_parts();
                let observer = config.response.record(cx, &parts);
                // Keep the response URL across the conversion (reqwest stores it in the
                // extensions of the response it is built from).
                if let Ok(with_url) =
                    reqwest::ResponseBuilderExt::url(http::Response::builder(), url).body(())
                {
                    parts.extensions.extend(with_url.into_parts().0.extensions);
                }
                let body = reqwest::Body::wrap(TracedBody::new(body, Some(observer)));
                Ok(reqwest::Response::from(http::Response::from_parts(
                    parts, body,
                )))
            }
            Err(error) => {
                span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type(&error)));
                span.set_status(Status::error(error_message(&error)));
                span.end();
                Err(error)
            }
        }
    }
}
