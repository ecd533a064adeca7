//! [`OtlpHttpExporter`]: OTLP over HTTP with protobuf bodies (`http/protobuf`, the
//! specification's default transport), for the OpenTelemetry Collector, Jaeger, Tempo and any
//! other OTLP receiver.
//!
//! It is `opentelemetry-otlp`'s HTTP exporter with the request body written straight from the
//! spans (see `encode.rs`): the same bytes, in a fifth to a tenth of the time per span and with
//! no allocation per span for the usual spans (those of a scope without attributes, without
//! links that carry a trace state; BENCHMARKS.md, fifth round). The transport is `opentelemetry-http`'s
//! [`HttpClient`] (reqwest by default), as in `opentelemetry-otlp`; the behaviour follows the
//! OTLP exporter specification:
//!
//! - `POST` to the endpoint as given (the pipeline appends `/v1/traces` to a base endpoint),
//!   `content-type: application/x-protobuf`;
//! - headers from [`OtlpHttpExporterBuilder::with_header`] and from
//!   `OTEL_EXPORTER_OTLP_HEADERS` / `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (`key=value` pairs,
//!   comma-separated, values percent-decoded);
//! - each batch within the timeout ([`with_timeout`](OtlpHttpExporterBuilder::with_timeout),
//!   `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, `OTEL_EXPORTER_OTLP_TIMEOUT`, in milliseconds; 10 s),
//!   retries included;
//! - gzip when asked ([`with_compression`](OtlpHttpExporterBuilder::with_compression),
//!   `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, `OTEL_EXPORTER_OTLP_COMPRESSION`: `gzip` or
//!   `none`);
//! - retried at most 3 times, after 100, 200 and 400 ms (each plus up to 100 ms of jitter), on
//!   a network error and on the statuses the specification calls retryable (429, 502, 503,
//!   504), after the delay that a `Retry-After: <seconds>` header asks for when there is one
//!   (an HTTP date there is not read: the backoff applies); a partial success is logged with
//!   the count of rejected spans.
//!
//! Explicit builder settings win over the environment, the signal-specific variable over the
//! generic one (both header lists are read, the signal-specific one winning for a header in
//! both). A variable that does not parse is an error when the exporter is built, naming the
//! variable (and never a header's value). [`OtlpHttpExporterBuilder::build`] reads these
//! variables from the process environment; a [`crate::Pipeline`] reads them where it reads the
//! rest of its configuration (the environment for `from_env`, the lookup for `from_lookup`)
//! and hands them to the exporter it builds.
//!
//! The exporter's timer is tokio's: it exports inside a tokio runtime with time enabled, as
//! [`BatchProcessor`](super::BatchProcessor) provides on its own thread.
//!
//! ```no_run
//! use std::time::Duration;
//! use tracing_core_lite::export::{BatchConfig, BatchProcessor, OtlpHttpExporter};
//!
//! let exporter = OtlpHttpExporter::builder("http://collector:4318/v1/traces")
//!     .with_header("authorization", "Bearer 123")
//!     .with_timeout(Duration::from_secs(5))
//!     .build()?;
//! let processor = BatchProcessor::new(exporter, BatchConfig::default())?;
//! # let _ = processor;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod encode;

use std::fmt;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri};
use opentelemetry_http::{HttpClient, ResponseBodyTooLarge};
use opentelemetry_otlp::{
    OTEL_EXPORTER_OTLP_COMPRESSION, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
    OTEL_EXPORTER_OTLP_TRACES_COMPRESSION, OTEL_EXPORTER_OTLP_TRACES_HEADERS,
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SpanData, SpanExporter};
use prost::Message as _;

use super::BuildError;
use crate::error::ConfigError;
use crate::pipeline::{MemberError, first_set, key_value_members, parse_endpoint};
use encode::Encoder;

/// The specification's default export timeout (10 s).
pub(crate) const DEFAULT_TIMEOUT: Duration = opentelemetry_otlp::OTEL_EXPORTER_OTLP_TIMEOUT_DEFAULT;
/// Retries after the first attempt.
const MAX_RETRIES: u32 = 3;
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;
/// The longest `Retry-After` taken as it is (longer ones exceed any sensible timeout anyway).
const MAX_RETRY_AFTER_SECS: u64 = 600;

const PROTOBUF: HeaderValue = HeaderValue::from_static("application/x-protobuf");
const GZIP: HeaderValue = HeaderValue::from_static("gzip");

/// How request bodies are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// `content-encoding: gzip`.
    Gzip,
}

/// A `SpanExporter` sending OTLP/HTTP protobuf; see the [module documentation](self).
pub struct OtlpHttpExporter {
    client: Arc<dyn HttpClient>,
    endpoint: Uri,
    headers: HeaderMap,
    timeout: Duration,
    compression: Option<Compression>,
    encoder: Encoder,
    shut_down: AtomicBool,
}

impl fmt::Debug for OtlpHttpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials: only their names are shown.
        f.debug_struct("OtlpHttpExporter")
            .field("endpoint", &self.endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OtlpHttpExporter`].
#[must_use]
pub struct OtlpHttpExporterBuilder {
    endpoint: String,
    headers: Vec<(String, String)>,
    timeout: Option<Duration>,
    compression: Option<Option<Compression>>,
    client: Option<Arc<dyn HttpClient>>,
}

impl fmt::Debug for OtlpHttpExporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpHttpExporterBuilder")
            .field("endpoint", &self.endpoint)
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

impl OtlpHttpExporter {
    /// A builder for an exporter that posts to `endpoint`, the full URL of the receiver's
    /// traces path (`http://localhost:4318/v1/traces` for a local collector).
    pub fn builder(endpoint: impl Into<String>) -> OtlpHttpExporterBuilder {
        OtlpHttpExporterBuilder {
            endpoint: endpoint.into(),
            headers: Vec::new(),
            timeout: None,
            compression: None,
            client: None,
        }
    }
}

impl OtlpHttpExporterBuilder {
    /// Adds a header to every export request (over one of the same name from the
    /// environment). The value is used as given, not percent-decoded as the environment's are.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// How long one batch may take, retries included (over the environment's timeout).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Compresses request bodies, or not (`None`), over the environment's choice.
    pub fn with_compression(mut self, compression: Option<Compression>) -> Self {
        self.compression = Some(compression);
        self
    }

    /// Sends with `client` instead of a reqwest client made for the exporter.
    pub fn with_http_client(mut self, client: impl HttpClient + 'static) -> Self {
        self.client = Some(Arc::new(client));
        self
    }

    /// Builds the exporter, reading the `OTEL_EXPORTER_OTLP_*` variables for what was not set.
    ///
    /// # Errors
    ///
    /// The endpoint is not an `http` or `https` URL, a header name or value is not valid in
    /// HTTP, a variable does not parse (the [`ConfigError`] names it), or the HTTP client
    /// could not be made.
    pub fn build(self) -> Result<OtlpHttpExporter, BuildError> {
        self.build_with(|name| std::env::var(name).ok())
    }

    /// [`build`](Self::build) with `env` answering for the `OTEL_EXPORTER_OTLP_*` variables.
    fn build_with(
        self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<OtlpHttpExporter, BuildError> {
        let env = OtlpEnv::from_lookup(env).map_err(|e| BuildError(Box::new(e)))?;
        self.build_from(env)
    }

    /// Builds the exporter with `env` for what the builder did not set.
    pub(crate) fn build_from(self, env: OtlpEnv) -> Result<OtlpHttpExporter, BuildError> {
        let config_error = |e: ConfigError| BuildError(Box::new(e));
        let endpoint = parse_endpoint("OTLP endpoint", &self.endpoint).map_err(config_error)?;
        let mut headers = env.headers;
        for (name, value) in &self.headers {
            let (name, value) = header("OTLP header", name, value).map_err(config_error)?;
            headers.insert(name, value);
        }
        let timeout = self.timeout.unwrap_or(env.timeout);
        let compression = self.compression.unwrap_or(env.compression);

        let client = match self.client {
            Some(client) => client,
            // The export's own deadline bounds every attempt: no client timeout besides it.
            None => Arc::new(
                reqwest::Client::builder()
                    .build()
                    .map_err(|e| BuildError(Box::new(e)))?,
            ),
        };
        // What every request carries, set once.
        headers.insert(CONTENT_TYPE, PROTOBUF);
        if compression == Some(Compression::Gzip) {
            headers.insert(CONTENT_ENCODING, GZIP);
        }
        Ok(OtlpHttpExporter {
            client,
            endpoint,
            headers,
            timeout,
            compression,
            encoder: Encoder::default(),
            shut_down: AtomicBool::new(false),
        })
    }
}

/// What the `OTEL_EXPORTER_OTLP_*` variables say of an OTLP exporter's headers, timeout and
/// compression: read by [`OtlpHttpExporterBuilder::build`] from the process environment, and by
/// [`crate::Pipeline::from_lookup`] from its lookup (so that a pipeline's exporters, OTLP/HTTP
/// and OTLP/gRPC, take them from where the rest of its configuration came from).
#[derive(Clone)]
pub(crate) struct OtlpEnv {
    /// `OTEL_EXPORTER_OTLP_HEADERS`, then `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (which wins for a
    /// header in both).
    pub(crate) headers: HeaderMap,
    /// `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`, else `OTEL_EXPORTER_OTLP_TIMEOUT`, else the
    /// specification's default (10 s).
    pub(crate) timeout: Duration,
    /// `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`, else `OTEL_EXPORTER_OTLP_COMPRESSION` (`None`:
    /// `none`, or neither set).
    pub(crate) compression: Option<Compression>,
}

impl Default for OtlpEnv {
    /// No variable set.
    fn default() -> Self {
        OtlpEnv {
            headers: HeaderMap::new(),
            timeout: DEFAULT_TIMEOUT,
            compression: None,
        }
    }
}

impl fmt::Debug for OtlpEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may be credentials: only their names are shown.
        f.debug_struct("OtlpEnv")
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("timeout", &self.timeout)
            .field("compression", &self.compression)
            .finish()
    }
}

impl OtlpEnv {
    /// Reads the variables from `env`.
    ///
    /// # Errors
    ///
    /// A variable does not parse; the error names it (and never a header's value).
    pub(crate) fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut headers = HeaderMap::new();
        for variable in [
            OTEL_EXPORTER_OTLP_HEADERS,
            OTEL_EXPORTER_OTLP_TRACES_HEADERS,
        ] {
            if let Some(list) = env(variable) {
                for (name, value) in parse_headers(variable, &list)? {
                    headers.insert(name, value);
                }
            }
        }
        let timeout = first_set(
            &env,
            [
                OTEL_EXPORTER_OTLP_TRACES_TIMEOUT,
                OTEL_EXPORTER_OTLP_TIMEOUT,
            ],
        )
        .map(|(variable, value)| {
            value
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| {
                    ConfigError::new(
                        variable,
                        &value,
                        "a timeout is a whole number of milliseconds",
                    )
                })
        })
        .transpose()?
        .unwrap_or(DEFAULT_TIMEOUT);
        let compression = first_set(
            &env,
            [
                OTEL_EXPORTER_OTLP_TRACES_COMPRESSION,
                OTEL_EXPORTER_OTLP_COMPRESSION,
            ],
        )
        .map(|(variable, value)| match value.trim() {
            v if v.eq_ignore_ascii_case("none") => Ok(None),
            v if v.eq_ignore_ascii_case("gzip") => Ok(Some(Compression::Gzip)),
            _ => Err(ConfigError::new(variable, &value, "expected gzip or none")),
        })
        .transpose()?
        .flatten();
        Ok(OtlpEnv {
            headers,
            timeout,
            compression,
        })
    }
}

/// Parses `key=value,key=value` (values percent-decoded, blanks around each part ignored; an
/// entry with an empty value is left out, as `opentelemetry-otlp` does).
///
/// Header values are often credentials: errors name the entry and the header, never a value.
fn parse_headers(
    variable: &str,
    list: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut headers = Vec::new();
    for member in key_value_members(list) {
        let (name, value) = member.map_err(|e| {
            let reason = match e {
                MemberError::NoEquals(entry, _) => format!("entry {entry} is not key=value"),
                MemberError::EmptyKey(entry, _) => format!("entry {entry} has an empty key"),
                MemberError::NotUtf8(name) => {
                    format!("the value of `{name}` is not UTF-8 once percent-decoded")
                }
            };
            ConfigError::new(variable, HIDDEN, reason)
        })?;
        if !value.is_empty() {
            headers.push(header(variable, name, &value)?);
        }
    }
    Ok(headers)
}

/// What errors show in place of a header value.
const HIDDEN: &str = "(not shown)";

/// A header name and value, checked (the error shows the name, never the value).
fn header(
    variable: &str,
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ConfigError::new(variable, HIDDEN, format!("`{name}` is not a header name"))
    })?;
    let value = HeaderValue::from_str(value).map_err(|_| {
        ConfigError::new(
            variable,
            HIDDEN,
            format!("the value of `{name}` is not a header value"),
        )
    })?;
    Ok((name, value))
}

/// Why one attempt failed.
struct Failure {
    message: String,
    /// Whether another attempt may succeed.
    retryable: bool,
    /// The delay the receiver asked for.
    retry_after: Option<Duration>,
}

impl OtlpHttpExporter {
    /// The request body of `batch`: encoded, compressed if asked.
    fn body(&self, batch: &[SpanData]) -> Result<Bytes, OTelSdkError> {
        let mut body = Vec::new();
        self.encoder.encode(batch, &mut body);
        match self.compression {
            None => Ok(body.into()),
            Some(Compression::Gzip) => {
                let mut gz = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::default(),
                );
                gz.write_all(&body)
                    .and_then(|()| gz.finish())
                    .map(Bytes::from)
                    .map_err(|e| OTelSdkError::InternalFailure(format!("gzip failed: {e}")))
            }
        }
    }

    async fn send_once(&self, body: Bytes) -> Result<(), Failure> {
        let mut request = Request::new(body);
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.clone();
        request.headers_mut().clone_from(&self.headers);
        let response = self.client.send_bytes(request).await.map_err(|e| Failure {
            message: format!("OTLP export to {} failed: {e}", self.endpoint),
            // A reply too large to read came after the receiver took the batch: sending it
            // again would duplicate it. Any other error (connection refused or reset, DNS)
            // may pass on a later attempt.
            retryable: e.downcast_ref::<ResponseBodyTooLarge>().is_none(),
            retry_after: None,
        })?;
        let status = response.status();
        if status.is_success() {
            log_partial_success(response.body());
            return Ok(());
        }
        Err(Failure {
            message: format!("OTLP export to {} failed: HTTP {status}", self.endpoint),
            retryable: matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS
                    | StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
            ),
            retry_after: response
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|seconds| Duration::from_secs(seconds.min(MAX_RETRY_AFTER_SECS))),
        })
    }

    /// Sends `body`, retrying as the specification says, within the timeout.
    async fn send(&self, body: Bytes) -> OTelSdkResult {
        let start = tokio::time::Instant::now();
        // A timeout too large to add is no limit: a year stands for it.
        let deadline = start
            .checked_add(self.timeout)
            .unwrap_or_else(|| start + Duration::from_secs(365 * 24 * 3600));
        let mut backoff = INITIAL_BACKOFF;
        let mut retries = 0;
        loop {
            let failure =
                match tokio::time::timeout_at(deadline, self.send_once(body.clone())).await {
                    Ok(Ok(())) => return Ok(()),
                    Ok(Err(failure)) => failure,
                    Err(_) => return Err(OTelSdkError::Timeout(self.timeout)),
                };
            if !failure.retryable || retries == MAX_RETRIES {
                return Err(OTelSdkError::InternalFailure(failure.message));
            }
            let delay = failure.retry_after.unwrap_or_else(|| backoff + jitter());
            if delay >= deadline.saturating_duration_since(tokio::time::Instant::now()) {
                return Err(OTelSdkError::InternalFailure(format!(
                    "{} (no time left to retry within {:?})",
                    failure.message, self.timeout
                )));
            }
            tokio::time::sleep(delay).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            retries += 1;
        }
    }
}

/// Up to [`MAX_JITTER_MS`] milliseconds, so that exporters that failed together do not retry
/// together.
fn jitter() -> Duration {
    let random = u64::from_ne_bytes(RandomIdGenerator::default().new_span_id().to_bytes());
    Duration::from_millis(random % (MAX_JITTER_MS + 1))
}

/// Logs the spans that a receiver accepted the request for but rejected.
fn log_partial_success(body: &[u8]) {
    match partial_success(body) {
        Ok(None) => {}
        Ok(Some((rejected_spans, message))) => tracing::warn!(
            rejected_spans,
            %message,
            "the OTLP receiver rejected part of an export"
        ),
        Err(e) => tracing::debug!(error = %e, "an OTLP success response that does not parse"),
    }
}

/// The rejected spans and the message of a success response's partial success, if it reports
/// any (an empty body is a full success).
fn partial_success(body: &[u8]) -> Result<Option<(i64, String)>, prost::DecodeError> {
    if body.is_empty() {
        return Ok(None);
    }
    Ok(ExportTraceServiceResponse::decode(body)?
        .partial_success
        .filter(|p| p.rejected_spans > 0 || !p.error_message.is_empty())
        .map(|p| (p.rejected_spans, p.error_message)))
}

impl SpanExporter for OtlpHttpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        let body = self.body(&batch)?;
        // The spans' memory is returned before the network wait, not after it.
        drop(batch);
        self.send(body).await
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.encoder = Encoder::new(resource);
    }
}

#[cfg(test)]
mod tests;
