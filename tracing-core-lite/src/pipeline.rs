//! The export pipeline: one builder that reads the standard `OTEL_*` variables, installs an
//! `opentelemetry_sdk` tracer provider with batching exporters, sets the global tracer provider
//! and propagator, and returns a guard that flushes on shutdown.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let guard = tracing_core_lite::Pipeline::from_env()?
//!     .with_service_name("orders")
//!     .install()?;
//! // ... serve requests: the layers use the global provider and propagator ...
//! guard.shutdown()?; // flushes what is still queued
//! # Ok(())
//! # }
//! ```
//!
//! | variable | meaning | default |
//! |---|---|---|
//! | `OTEL_SERVICE_NAME` | `service.name` | `service.name` of `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:<program>` |
//! | `OTEL_RESOURCE_ATTRIBUTES` | `key=value,...` (values percent-decoded) | |
//! | `OTEL_TRACES_EXPORTER` | `otlp`, `zipkin`, `console`, `none`, or a list (`otlp,console`) | `otlp` if an OTLP endpoint variable is set, else `console` |
//! | `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` | `grpc` or `http/protobuf` | `http/protobuf` |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` | base URL (`/v1/traces` is appended for HTTP) | `http://localhost:4318` (HTTP), `http://localhost:4317` (gRPC) |
//! | `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` | full URL, used as is | |
//! | `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TRACES_HEADERS` | `key=value,...` (values percent-decoded), sent with every export; the second wins for a header in both | |
//! | `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` | milliseconds per batch, retries included | 10000 |
//! | `OTEL_EXPORTER_OTLP_COMPRESSION`, `OTEL_EXPORTER_OTLP_TRACES_COMPRESSION` | `gzip` or `none` | `none` |
//! | `OTEL_EXPORTER_ZIPKIN_ENDPOINT` | Zipkin v2 spans URL | `http://localhost:9411/api/v2/spans` |
//! | `OTEL_TRACES_SAMPLER` | `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`, `parentbased_always_off`, `parentbased_traceidratio` | `parentbased_always_on` |
//! | `OTEL_TRACES_SAMPLER_ARG` | the ratio, from 0 to 1 | `1.0` |
//! | `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE` | batching ([`BatchConfig`]) | 5000 ms, 30000 ms, 2048, 512 |
//! | `OTEL_PROPAGATORS` | see [`crate::propagation`] | `tracecontext,baggage` |
//!
//! The OTLP exporters take their headers, timeout and compression from the same place as the
//! rest (the environment for [`Pipeline::from_env`], the lookup for [`Pipeline::from_lookup`],
//! none for [`Pipeline::new`]); a value that does not parse is an error there, whichever
//! exporter is chosen, as for the endpoints. Over gRPC, `opentelemetry-otlp` also reads the
//! process environment itself: its `OTEL_EXPORTER_OTLP_TRACES_HEADERS` (else
//! `OTEL_EXPORTER_OTLP_HEADERS`) are sent too, except those that the pipeline's headers name
//! (the pipeline's win), and its compression applies unless gzip is asked for here (a `none`
//! here does not override it).
//!
//! The one departure from the specification's defaults is deliberate: with no exporter and no
//! endpoint configured, spans go to the console (drawn as call trees) instead of to an OTLP
//! collector that is most likely not there, so a newcomer sees traces at once.
//!
//! A collector that is down is not an error at start-up: exports fail later, are counted in
//! [`PipelineGuard::stats`] and logged at most every ten seconds, and requests are unaffected.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{
    OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, WithExportConfig, WithTonicConfig,
};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkError;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
#[cfg(any(test, feature = "in-memory"))]
use opentelemetry_sdk::trace::{InMemorySpanExporter, SimpleSpanProcessor};
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, SpanExporter, SpanProcessor,
};

use crate::error::ConfigError;
use crate::export::otlp::{Compression, OtlpEnv};
use crate::export::{
    BatchConfig, BatchProcessor, BuildError, ConsoleExporter, ExportStats, OtlpHttpExporter,
};
use crate::propagation::Propagators;
use crate::tracer::{self, Recorder, TracerSource};

const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
const OTEL_TRACES_EXPORTER: &str = "OTEL_TRACES_EXPORTER";
const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
const OTEL_EXPORTER_ZIPKIN_ENDPOINT: &str = "OTEL_EXPORTER_ZIPKIN_ENDPOINT";

/// The instrumentation scope name of the spans this workspace creates.
pub const INSTRUMENTATION_SCOPE: &str = "tonic-tower-trace";

/// Where spans go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExporterKind {
    /// OTLP, over gRPC or HTTP (Jaeger, Tempo, the OpenTelemetry Collector...).
    Otlp,
    /// Zipkin v2 JSON.
    Zipkin,
    /// The console, as call trees ([`ConsoleExporter`]).
    Console,
}

impl ExporterKind {
    /// Parses an `OTEL_TRACES_EXPORTER` value (`none` is the empty list).
    ///
    /// # Errors
    ///
    /// An unknown name, or `none` with other names.
    pub fn parse_list(value: &str) -> Result<Vec<ExporterKind>, ConfigError> {
        let mut kinds = Vec::new();
        let mut none = false;
        for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let kind = match name.to_ascii_lowercase().as_str() {
                "otlp" => ExporterKind::Otlp,
                "zipkin" => ExporterKind::Zipkin,
                "console" => ExporterKind::Console,
                "none" => {
                    none = true;
                    continue;
                }
                _ => {
                    return Err(ConfigError::new(
                        OTEL_TRACES_EXPORTER,
                        value,
                        format!(
                            "unknown exporter `{name}` (expected otlp, zipkin, console or none)"
                        ),
                    ));
                }
            };
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
        if none && !kinds.is_empty() {
            return Err(ConfigError::new(
                OTEL_TRACES_EXPORTER,
                value,
                "`none` cannot be combined with other exporters",
            ));
        }
        Ok(kinds)
    }
}

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (port 4317 by convention).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318 by convention; the specification's default).
    #[default]
    HttpProtobuf,
}

impl OtlpProtocol {
    fn parse(variable: &str, value: &str) -> Result<Self, ConfigError> {
        match value.trim() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            "http/json" => Err(ConfigError::new(
                variable,
                value,
                "http/json is not supported; use grpc or http/protobuf",
            )),
            _ => Err(ConfigError::new(
                variable,
                value,
                "expected grpc or http/protobuf",
            )),
        }
    }

    fn default_endpoint(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf => "http://localhost:4318/v1/traces",
        }
    }
}

/// Checks that `value` is an absolute `http`/`https` URL with a host.
pub(crate) fn validate_endpoint(variable: &str, value: &str) -> Result<String, ConfigError> {
    parse_endpoint(variable, value).map(|_| value.trim().to_owned())
}

/// [`validate_endpoint`], parsed.
pub(crate) fn parse_endpoint(variable: &str, value: &str) -> Result<http::Uri, ConfigError> {
    let uri: http::Uri = value
        .trim()
        .parse()
        .map_err(|e| ConfigError::new(variable, value, format!("not a URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(ConfigError::new(
                variable,
                value,
                "the URL must start with http:// or https://",
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(ConfigError::new(variable, value, "the URL has no host"));
    }
    Ok(uri)
}

/// Parses `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` into a sampler.
///
/// # Errors
///
/// An unknown sampler name, or an argument that is not a number from 0 to 1.
pub fn parse_sampler(name: Option<&str>, arg: Option<&str>) -> Result<Sampler, ConfigError> {
    let ratio = || -> Result<f64, ConfigError> {
        match arg.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(1.0),
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    ConfigError::new(
                        OTEL_TRACES_SAMPLER_ARG,
                        a,
                        "a ratio must be a number from 0 to 1",
                    )
                }),
        }
    };
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    Ok(match name.map(str::to_ascii_lowercase).as_deref() {
        None | Some("parentbased_always_on") => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        Some("always_on") => Sampler::AlwaysOn,
        Some("always_off") => Sampler::AlwaysOff,
        Some("traceidratio") => Sampler::TraceIdRatioBased(ratio()?),
        Some("parentbased_always_off") => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        Some("parentbased_traceidratio") => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        Some(_) => {
            return Err(ConfigError::new(
                OTEL_TRACES_SAMPLER,
                name.unwrap_or_default(),
                "unknown sampler (expected always_on, always_off, traceidratio, \
                 parentbased_always_on, parentbased_always_off or parentbased_traceidratio)",
            ));
        }
    })
}

/// Parses `OTEL_RESOURCE_ATTRIBUTES` (`key=value,...`, values percent-decoded).
///
/// # Errors
///
/// A member without `=`, an empty key, or a value that is not valid percent-encoded UTF-8.
pub fn parse_resource_attributes(value: &str) -> Result<Vec<KeyValue>, ConfigError> {
    let error = |reason: String| ConfigError::new(OTEL_RESOURCE_ATTRIBUTES, value, reason);
    let mut out = Vec::new();
    for member in key_value_members(value) {
        let (k, v) = member.map_err(|e| match e {
            MemberError::NoEquals(_, member) => error(format!("`{member}` is not key=value")),
            MemberError::EmptyKey(_, member) => error(format!("`{member}` has an empty key")),
            MemberError::NotUtf8(k) => error(format!(
                "the value of `{k}` is not UTF-8 once percent-decoded"
            )),
        })?;
        out.push(KeyValue::new(k.to_owned(), v.into_owned()));
    }
    Ok(out)
}

/// Why a member of a `key=value,...` list could not be read.
pub(crate) enum MemberError<'a> {
    /// The member at this position (from 1, blank members counted) has no `=`.
    NoEquals(usize, &'a str),
    /// The member at this position has nothing before its `=`.
    EmptyKey(usize, &'a str),
    /// The value of this key is not UTF-8 once percent-decoded.
    NotUtf8(&'a str),
}

/// The members of a `key=value,...` list as the `OTEL_*` variables write them
/// (`OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`): blank members skipped, blanks
/// around keys and values trimmed, keys not empty, values percent-decoded.
pub(crate) fn key_value_members(
    list: &str,
) -> impl Iterator<Item = Result<(&str, Cow<'_, str>), MemberError<'_>>> {
    list.split(',')
        .map(str::trim)
        .enumerate()
        .filter(|(_, member)| !member.is_empty())
        .map(|(index, member)| {
            let (k, v) = member
                .split_once('=')
                .ok_or(MemberError::NoEquals(index + 1, member))?;
            let k = k.trim();
            if k.is_empty() {
                return Err(MemberError::EmptyKey(index + 1, member));
            }
            let v = percent_encoding::percent_decode_str(v.trim())
                .decode_utf8()
                .map_err(|_| MemberError::NotUtf8(k))?;
            Ok((k, v))
        })
}

/// The first of `variables` (the signal-specific one first) that `get` finds set and not
/// blank, with its value.
pub(crate) fn first_set<const N: usize>(
    get: &impl Fn(&str) -> Option<String>,
    variables: [&'static str; N],
) -> Option<(&'static str, String)> {
    variables
        .into_iter()
        .find_map(|v| get(v).filter(|s| !s.trim().is_empty()).map(|s| (v, s)))
}

/// The pipeline could not be installed or shut down.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError {
    /// A configuration value is wrong (names the variable and value).
    Config(ConfigError),
    /// An exporter could not be built.
    Build(BuildError),
    /// Flushing or shutting down failed (timed out, or already shut down).
    Shutdown(OTelSdkError),
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PipelineError::Config(e) => e.fmt(f),
            PipelineError::Build(e) => e.fmt(f),
            PipelineError::Shutdown(e) => write!(f, "tracing pipeline shutdown failed: {e}"),
        }
    }
}

impl StdError for PipelineError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            PipelineError::Config(e) => Some(e),
            PipelineError::Build(e) => Some(e),
            PipelineError::Shutdown(e) => Some(e),
        }
    }
}

impl From<ConfigError> for PipelineError {
    fn from(e: ConfigError) -> Self {
        PipelineError::Config(e)
    }
}

impl From<BuildError> for PipelineError {
    fn from(e: BuildError) -> Self {
        PipelineError::Build(e)
    }
}

/// Builds an extra span processor at install time, with the pipeline's final batch settings.
type MakeProcessor =
    Box<dyn FnOnce(BatchConfig) -> Result<Box<dyn SpanProcessor>, BuildError> + Send>;

/// Builder of the export pipeline. See the [module docs](self) for the variables it reads.
#[must_use = "a pipeline does nothing until `install` is called"]
pub struct Pipeline {
    service_name: Option<String>,
    default_service_name: Option<String>,
    resource_attributes: Vec<KeyValue>,
    exporters: Vec<ExporterKind>,
    otlp_protocol: OtlpProtocol,
    otlp_endpoint: Option<String>,
    otlp_env: OtlpEnv,
    zipkin_endpoint: Option<String>,
    sampler: Sampler,
    batch: BatchConfig,
    propagators: Propagators,
    console: Option<ConsoleExporter>,
    processors: Vec<MakeProcessor>,
    install_global: bool,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("service_name", &self.service_name)
            .field("default_service_name", &self.default_service_name)
            .field("resource_attributes", &self.resource_attributes)
            .field("exporters", &self.exporters)
            .field("otlp_protocol", &self.otlp_protocol)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("otlp_env", &self.otlp_env)
            .field("zipkin_endpoint", &self.zipkin_endpoint)
            .field("sampler", &self.sampler)
            .field("batch", &self.batch)
            .field("propagators", &self.propagators)
            .field("extra_processors", &self.processors.len())
            .field("install_global", &self.install_global)
            .finish()
    }
}

impl Default for Pipeline {
    fn default() -> Self {
        Pipeline::new()
    }
}

impl Pipeline {
    /// A pipeline that reads no environment: console exporter, parent-based always-on
    /// sampling, default batching, `tracecontext,baggage` propagation, installed globally.
    pub fn new() -> Self {
        Pipeline {
            service_name: None,
            default_service_name: None,
            resource_attributes: Vec::new(),
            exporters: vec![ExporterKind::Console],
            otlp_protocol: OtlpProtocol::default(),
            otlp_endpoint: None,
            otlp_env: OtlpEnv::default(),
            zipkin_endpoint: None,
            sampler: Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
            batch: BatchConfig::default(),
            propagators: Propagators::default(),
            console: None,
            processors: Vec::new(),
            install_global: true,
        }
    }

    /// A pipeline configured by the process environment (the `OTEL_*` variables).
    ///
    /// # Errors
    ///
    /// A variable holds a value that cannot be used; the error names it.
    pub fn from_env() -> Result<Self, ConfigError> {
        Pipeline::from_lookup(|k| std::env::var(k).ok())
    }

    /// A pipeline configured by `lookup`, which answers for the `OTEL_*` variables (for tests
    /// and for configuration that does not live in the environment).
    ///
    /// # Errors
    ///
    /// A variable holds a value that cannot be used; the error names it.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let mut p = Pipeline::new();
        if let Some(attrs) = get(OTEL_RESOURCE_ATTRIBUTES) {
            p.resource_attributes = parse_resource_attributes(&attrs)?;
        }
        p.service_name = get(OTEL_SERVICE_NAME).map(|s| s.trim().to_owned());
        if let Some((variable, protocol)) = first_set(
            &get,
            [
                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                OTEL_EXPORTER_OTLP_PROTOCOL,
            ],
        ) {
            p.otlp_protocol = OtlpProtocol::parse(variable, &protocol)?;
        }
        let traces_endpoint = get(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
        let base_endpoint = get(OTEL_EXPORTER_OTLP_ENDPOINT);
        p.otlp_endpoint = match (&traces_endpoint, &base_endpoint) {
            (Some(e), _) => Some(validate_endpoint(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, e)?),
            (None, Some(e)) => {
                let base = validate_endpoint(OTEL_EXPORTER_OTLP_ENDPOINT, e)?;
                Some(match p.otlp_protocol {
                    OtlpProtocol::Grpc => base,
                    OtlpProtocol::HttpProtobuf => {
                        format!("{}/v1/traces", base.trim_end_matches('/'))
                    }
                })
            }
            (None, None) => None,
        };
        p.otlp_env = OtlpEnv::from_lookup(get)?;
        if let Some(e) = get(OTEL_EXPORTER_ZIPKIN_ENDPOINT) {
            p.zipkin_endpoint = Some(validate_endpoint(OTEL_EXPORTER_ZIPKIN_ENDPOINT, &e)?);
        }
        p.exporters = match get(OTEL_TRACES_EXPORTER) {
            Some(v) => ExporterKind::parse_list(&v)?,
            None if p.otlp_endpoint.is_some() => vec![ExporterKind::Otlp],
            None => vec![ExporterKind::Console],
        };
        p.sampler = parse_sampler(
            get(OTEL_TRACES_SAMPLER).as_deref(),
            get(OTEL_TRACES_SAMPLER_ARG).as_deref(),
        )?;
        p.batch = BatchConfig::from_lookup(&lookup)?;
        p.propagators = Propagators::from_lookup(&lookup)?;
        Ok(p)
    }

    /// Sets `service.name` (overrides `OTEL_SERVICE_NAME`).
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = Some(name.into());
        self
    }

    /// Sets the `service.name` to use when neither `OTEL_SERVICE_NAME` nor a `service.name` in
    /// `OTEL_RESOURCE_ATTRIBUTES` names the service (programs that want a sensible name but
    /// let deployments rename them).
    pub fn with_default_service_name(mut self, name: impl Into<String>) -> Self {
        self.default_service_name = Some(name.into());
        self
    }

    /// Adds resource attributes (after those of `OTEL_RESOURCE_ATTRIBUTES`, so they win).
    pub fn with_resource_attributes(mut self, attrs: impl IntoIterator<Item = KeyValue>) -> Self {
        self.resource_attributes.extend(attrs);
        self
    }

    /// Replaces the exporters (an empty list exports nothing, like `OTEL_TRACES_EXPORTER=none`).
    pub fn with_exporters(mut self, kinds: impl IntoIterator<Item = ExporterKind>) -> Self {
        self.exporters = kinds.into_iter().collect();
        self
    }

    /// Exports over OTLP with `protocol` to `endpoint` (for HTTP, the full URL including
    /// `/v1/traces`), and only there.
    ///
    /// # Errors
    ///
    /// `endpoint` is not an absolute http(s) URL.
    pub fn with_otlp(
        mut self,
        protocol: OtlpProtocol,
        endpoint: &str,
    ) -> Result<Self, ConfigError> {
        self.otlp_endpoint = Some(validate_endpoint("otlp endpoint", endpoint)?);
        self.otlp_protocol = protocol;
        self.exporters = vec![ExporterKind::Otlp];
        Ok(self)
    }

    /// Sets the sampler (overrides `OTEL_TRACES_SAMPLER`).
    pub fn with_sampler(mut self, sampler: Sampler) -> Self {
        self.sampler = sampler;
        self
    }

    /// Sets the batching (overrides `OTEL_BSP_*`).
    pub fn with_batch_config(mut self, batch: BatchConfig) -> Self {
        self.batch = batch;
        self
    }

    /// Sets the propagators (overrides `OTEL_PROPAGATORS`).
    pub fn with_propagators(mut self, propagators: Propagators) -> Self {
        self.propagators = propagators;
        self
    }

    /// Uses this console exporter (e.g. one shared by several services' pipelines, or one
    /// writing somewhere else than stdout) wherever the console exporter is selected.
    pub fn with_console_exporter(mut self, console: ConsoleExporter) -> Self {
        self.console = Some(console);
        self
    }

    /// Also exports, synchronously at span end, to an in-memory exporter (for tests; feature
    /// `in-memory`).
    #[cfg(any(test, feature = "in-memory"))]
    pub fn with_in_memory_exporter(mut self, exporter: InMemorySpanExporter) -> Self {
        self.processors.push(Box::new(move |_| {
            Ok(Box::new(SimpleSpanProcessor::new(exporter)) as Box<dyn SpanProcessor>)
        }));
        self
    }

    /// Also exports to `exporter`, batched on the pipeline's export thread.
    pub fn with_span_exporter<E: SpanExporter + 'static>(mut self, exporter: E) -> Self {
        self.processors.push(Box::new(move |batch| {
            Ok(Box::new(BatchProcessor::new(exporter, batch)?) as Box<dyn SpanProcessor>)
        }));
        self
    }

    /// Does not touch the global tracer provider and propagator (several pipelines in one
    /// process, tests). Use [`PipelineGuard::tracer_provider`] and
    /// [`PipelineGuard::propagators`] instead.
    pub fn without_global(mut self) -> Self {
        self.install_global = false;
        self
    }

    /// The propagators this pipeline installs.
    pub fn propagators(&self) -> &Propagators {
        &self.propagators
    }

    fn resource(&self) -> Resource {
        let service_name = self.service_name.clone().or_else(|| {
            self.resource_attributes
                .iter()
                .rev()
                .find(|kv| kv.key.as_str() == "service.name")
                .map(|kv| kv.value.to_string())
        });
        let service_name = service_name.or_else(|| self.default_service_name.clone());
        let service_name = service_name.unwrap_or_else(|| {
            let program = std::env::current_exe()
                .ok()
                .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .unwrap_or_default();
            format!("unknown_service:{program}")
        });
        Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(self.resource_attributes.iter().cloned())
            .with_service_name(service_name)
            .build()
    }

    /// Builds the exporters, installs the tracer provider (and, unless
    /// [`without_global`](Self::without_global), the global provider and propagator).
    ///
    /// # Errors
    ///
    /// An exporter could not be built. A collector that is down is *not* an error.
    pub fn install(self) -> Result<PipelineGuard, PipelineError> {
        let resource = self.resource();
        // `Sampler::ParentBased` never records a span whose remote parent was not sampled.
        let parent_based = matches!(self.sampler, Sampler::ParentBased(_));
        let mut stats = Vec::new();
        let mut processors: Vec<Box<dyn SpanProcessor>> = Vec::new();
        for kind in &self.exporters {
            let processor = match kind {
                ExporterKind::Otlp => {
                    let protocol = self.otlp_protocol;
                    let endpoint = self
                        .otlp_endpoint
                        .clone()
                        .unwrap_or_else(|| protocol.default_endpoint().to_owned());
                    let env = self.otlp_env.clone();
                    match protocol {
                        OtlpProtocol::Grpc => BatchProcessor::spawn(
                            move || build_otlp_grpc(&endpoint, env),
                            self.batch,
                        )?,
                        OtlpProtocol::HttpProtobuf => BatchProcessor::spawn(
                            move || {
                                OtlpHttpExporter::builder(endpoint)
                                    .build_from(env)
                                    .map_err(|e| e.0)
                            },
                            self.batch,
                        )?,
                    }
                }
                ExporterKind::Zipkin => {
                    let endpoint = self.zipkin_endpoint.clone();
                    BatchProcessor::spawn(move || build_zipkin(endpoint), self.batch)?
                }
                ExporterKind::Console => {
                    let console = self.console.clone().unwrap_or_else(ConsoleExporter::stdout);
                    // The console is for people: do not make them wait five seconds.
                    let batch = BatchConfig {
                        scheduled_delay: self.batch.scheduled_delay.min(Duration::from_millis(100)),
                        ..self.batch
                    };
                    BatchProcessor::new(console, batch)?
                }
            };
            stats.push((*kind, processor.stats()));
            processors.push(Box::new(processor));
        }
        for make in self.processors {
            processors.push(make(self.batch)?);
        }
        // Each processor is shared by the provider (which flushes and shuts it down) and the
        // layers' recorder (which hands it spans without the SDK's span; see `Recorder`). Its
        // resource is set here, as the provider would set it.
        let shared: Vec<Arc<dyn SpanProcessor>> = processors
            .into_iter()
            .map(|mut processor| {
                processor.set_resource(&resource);
                Arc::from(processor)
            })
            .collect();
        let provider = shared
            .iter()
            .fold(
                SdkTracerProvider::builder()
                    .with_resource(resource)
                    .with_sampler(self.sampler.clone()),
                |builder, processor| {
                    builder.with_span_processor(SharedProcessor(Arc::clone(processor)))
                },
            )
            .build();
        let recorder = Recorder::new(self.sampler, tracer::scope(), shared);
        let source = TracerSource::from_recorder(&provider, recorder)
            .with_parent_based_sampler(parent_based);
        if self.install_global {
            opentelemetry::global::set_tracer_provider(provider.clone());
            self.propagators.install_global();
        }
        Ok(PipelineGuard {
            provider,
            source,
            propagators: self.propagators,
            stats,
            shut_down: false,
        })
    }
}

/// OTLP/gRPC comes from `opentelemetry-otlp` (over tonic), given the pipeline's headers,
/// timeout and compression; OTLP/HTTP is our [`OtlpHttpExporter`].
fn build_otlp_grpc(
    endpoint: &str,
    env: OtlpEnv,
) -> Result<opentelemetry_otlp::SpanExporter, Box<dyn StdError + Send + Sync>> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(env.timeout);
    if !env.headers.is_empty() {
        // Upstream reads the process environment's `OTEL_EXPORTER_OTLP_*HEADERS` once, when
        // the exporter is built, adds them to each export, then calls the interceptor: the
        // pipeline's headers (one value per name), set there, replace any of the same name.
        let headers = env.headers;
        builder = builder.with_interceptor(move |mut request: tonic::Request<()>| {
            let metadata: &mut http::HeaderMap = request.metadata_mut().as_mut();
            for (name, value) in &headers {
                metadata.insert(name, value.clone());
            }
            Ok(request)
        });
    }
    if let Some(Compression::Gzip) = env.compression {
        builder = builder.with_compression(opentelemetry_otlp::Compression::Gzip);
    }
    Ok(builder.build()?)
}

/// Upstream deprecates its Zipkin exporter (Zipkin ingests OTLP natively now) but still ships
/// it for this opentelemetry version; it is the one place that uses it.
#[allow(deprecated)]
fn build_zipkin(
    endpoint: Option<String>,
) -> Result<opentelemetry_zipkin::ZipkinExporter, Box<dyn StdError + Send + Sync>> {
    let mut builder = opentelemetry_zipkin::ZipkinExporter::builder();
    if let Some(endpoint) = endpoint {
        builder = builder.with_collector_endpoint(endpoint);
    }
    Ok(builder.build()?)
}

/// `SpanProcessor` is implemented for concrete types only; this forwards to a boxed one.
#[derive(Debug)]
/// A processor shared by the provider and the recorder; its resource is set before it is
/// shared.
struct SharedProcessor(Arc<dyn SpanProcessor>);

impl SpanProcessor for SharedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }
    fn on_end(&self, span: opentelemetry_sdk::trace::SpanData) {
        self.0.on_end(span);
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.force_flush()
    }
    fn shutdown_with_timeout(&self, timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
    fn set_resource(&mut self, _resource: &Resource) {}
}

/// The installed pipeline. [`shutdown`](Self::shutdown) (or dropping it) flushes what is
/// queued and stops the exporters.
#[must_use = "dropping the guard shuts the pipeline down"]
pub struct PipelineGuard {
    provider: SdkTracerProvider,
    source: TracerSource,
    propagators: Propagators,
    stats: Vec<(ExporterKind, Arc<ExportStats>)>,
    shut_down: bool,
}

impl fmt::Debug for PipelineGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineGuard")
            .field("propagators", &self.propagators)
            .field("stats", &self.stats)
            .finish()
    }
}

impl PipelineGuard {
    /// The tracer provider (also the global one, unless installed `without_global`).
    pub fn tracer_provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    /// A tracer of this workspace's instrumentation scope.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer(INSTRUMENTATION_SCOPE)
    }

    /// The tracer the layers start spans with, for their `with_tracer_source` option: this
    /// pipeline's sampler and exporters, declared parent-based when its sampler is (the
    /// default), so that the layers skip the spans that sampler would drop (see
    /// [`TracerSource::with_parent_based_sampler`]).
    ///
    /// Its spans are not the SDK's: they make the same sampling decisions, have the same ids,
    /// limits and instrumentation scope, and reach the same exporters as the spans of
    /// [`tracer`](Self::tracer), for about a third less work to start and end (see
    /// `BENCHMARKS.md`).
    pub fn tracer_source(&self) -> TracerSource {
        self.source.clone()
    }

    /// The propagators configured for this pipeline.
    pub fn propagators(&self) -> &Propagators {
        &self.propagators
    }

    /// Counters of each batching exporter: spans queued, dropped, exported, failed.
    pub fn stats(&self) -> &[(ExporterKind, Arc<ExportStats>)] {
        &self.stats
    }

    /// Exports everything finished so far, waiting up to the export timeout.
    ///
    /// # Errors
    ///
    /// An exporter timed out or the pipeline is shut down.
    pub fn force_flush(&self) -> Result<(), PipelineError> {
        self.provider.force_flush().map_err(PipelineError::Shutdown)
    }

    /// Flushes and stops the exporters.
    ///
    /// # Errors
    ///
    /// Flushing timed out.
    pub fn shutdown(mut self) -> Result<(), PipelineError> {
        self.shut_down = true;
        self.provider.shutdown().map_err(PipelineError::Shutdown)
    }
}

impl Drop for PipelineGuard {
    fn drop(&mut self) {
        if !self.shut_down {
            let _ = self.provider.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::otlp::DEFAULT_TIMEOUT;
    use opentelemetry::trace::{Span, Tracer};

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn config_err(pairs: &'static [(&'static str, &'static str)]) -> ConfigError {
        Pipeline::from_lookup(lookup(pairs)).unwrap_err()
    }

    #[test]
    fn defaults_without_environment() {
        let p = Pipeline::from_lookup(|_| None).unwrap();
        assert_eq!(p.exporters, [ExporterKind::Console]);
        assert_eq!(p.otlp_protocol, OtlpProtocol::HttpProtobuf);
        assert!(p.otlp_endpoint.is_none());
        assert_eq!(
            format!("{:?}", p.sampler),
            format!("{:?}", Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        );
        assert_eq!(p.batch, BatchConfig::default());
    }

    #[test]
    fn otlp_export_settings_come_from_the_lookup() {
        let p = Pipeline::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1,k=generic"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "k=traces"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", " 250 "),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "GZIP"),
        ]))
        .unwrap();
        assert_eq!(p.otlp_env.headers["a"], "1");
        assert_eq!(p.otlp_env.headers["k"], "traces");
        assert_eq!(p.otlp_env.timeout, Duration::from_millis(250));
        assert_eq!(p.otlp_env.compression, Some(Compression::Gzip));
        // Header values may be credentials: the pipeline's `Debug` names the headers only.
        let shown = format!("{p:?}");
        assert!(shown.contains("\"k\""), "{shown}");
        assert!(
            !shown.contains("\"traces\"") && !shown.contains("\"generic\""),
            "{shown}"
        );
        // Blank is unset (the generic variable then speaks); the signal's `none` wins over the
        // generic `gzip`.
        let p = Pipeline::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", " "),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]))
        .unwrap();
        assert!(p.otlp_env.headers.is_empty());
        assert_eq!(p.otlp_env.timeout, Duration::from_millis(1000));
        assert_eq!(p.otlp_env.compression, None);
        // A pipeline made without the environment reads none of it.
        let p = Pipeline::new();
        assert_eq!(
            (
                p.otlp_env.headers.len(),
                p.otlp_env.timeout,
                p.otlp_env.compression
            ),
            (0, DEFAULT_TIMEOUT, None)
        );
    }

    #[test]
    fn an_endpoint_alone_selects_otlp() {
        let p = Pipeline::from_lookup(lookup(&[(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://collector:4318/",
        )]))
        .unwrap();
        assert_eq!(p.exporters, [ExporterKind::Otlp]);
        assert_eq!(
            p.otlp_endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        let p = Pipeline::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4317"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_TRACES_EXPORTER", "otlp,console"),
        ]))
        .unwrap();
        assert_eq!(p.exporters, [ExporterKind::Otlp, ExporterKind::Console]);
        assert_eq!(p.otlp_endpoint.as_deref(), Some("http://jaeger:4317"));
        assert_eq!(p.otlp_protocol, OtlpProtocol::Grpc);
        // the signal-specific variables win and are used as they are
        let p = Pipeline::from_lookup(lookup(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:9999/custom"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]))
        .unwrap();
        assert_eq!(p.otlp_endpoint.as_deref(), Some("http://b:9999/custom"));
        assert_eq!(p.otlp_protocol, OtlpProtocol::HttpProtobuf);
    }

    #[test]
    fn bad_configuration_names_the_variable_and_value() {
        for (pairs, var, value) in [
            (
                &[("OTEL_TRACES_EXPORTER", "jaeger")][..],
                "OTEL_TRACES_EXPORTER",
                "jaeger",
            ),
            (
                &[("OTEL_TRACES_EXPORTER", "none,otlp")],
                "OTEL_TRACES_EXPORTER",
                "none,otlp",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "localhost:4317",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://")],
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "http://",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/")],
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "ftp://x/",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "udp",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")],
                "OTEL_EXPORTER_OTLP_PROTOCOL",
                "http/json",
            ),
            (
                &[("OTEL_EXPORTER_ZIPKIN_ENDPOINT", "zipkin")],
                "OTEL_EXPORTER_ZIPKIN_ENDPOINT",
                "zipkin",
            ),
            (
                &[("OTEL_TRACES_SAMPLER", "sometimes")],
                "OTEL_TRACES_SAMPLER",
                "sometimes",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "1.5",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "half"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "half",
            ),
            (
                &[
                    ("OTEL_TRACES_SAMPLER", "traceidratio"),
                    ("OTEL_TRACES_SAMPLER_ARG", "-0.1"),
                ],
                "OTEL_TRACES_SAMPLER_ARG",
                "-0.1",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "a=1,b")],
                "OTEL_RESOURCE_ATTRIBUTES",
                "a=1,b",
            ),
            (
                &[("OTEL_RESOURCE_ATTRIBUTES", "=1")],
                "OTEL_RESOURCE_ATTRIBUTES",
                "=1",
            ),
            (&[("OTEL_PROPAGATORS", "xray")], "OTEL_PROPAGATORS", "xray"),
            (
                &[("OTEL_BSP_MAX_QUEUE_SIZE", "lots")],
                "OTEL_BSP_MAX_QUEUE_SIZE",
                "lots",
            ),
            (
                &[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")],
                "OTEL_EXPORTER_OTLP_TIMEOUT",
                "10s",
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
                    ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "zstd"),
                ],
                "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
                "zstd",
            ),
            // Header values may be credentials: never shown.
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                    "authorization=secret%0a",
                )],
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                "(not shown)",
            ),
        ] {
            let leaked: &'static [(&'static str, &'static str)] =
                Box::leak(pairs.to_vec().into_boxed_slice());
            let err = config_err(leaked);
            assert_eq!((err.variable(), err.value()), (var, value), "{err}");
            assert!(
                err.to_string().starts_with(&format!("invalid {var}=")),
                "{err}"
            );
        }
    }

    #[test]
    fn samplers() {
        let name = |n: &str, a: Option<&str>| format!("{:?}", parse_sampler(Some(n), a).unwrap());
        assert_eq!(name("always_on", None), "AlwaysOn");
        assert_eq!(name("always_off", None), "AlwaysOff");
        assert_eq!(
            name("traceidratio", Some("0.25")),
            "TraceIdRatioBased(0.25)"
        );
        assert_eq!(name("traceidratio", None), "TraceIdRatioBased(1.0)");
        assert!(name("parentbased_traceidratio", Some("0")).contains("TraceIdRatioBased(0.0)"));
        assert!(name("parentbased_always_off", None).contains("AlwaysOff"));
    }

    #[test]
    fn resource_attributes_and_service_name() {
        let attrs =
            parse_resource_attributes("deployment.environment.name=prod, team=a%20b%2Cc").unwrap();
        assert_eq!(attrs[1], KeyValue::new("team", "a b,c"));
        let p = Pipeline::from_lookup(lookup(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.name=from-attrs,k=v",
        )]))
        .unwrap();
        let r = p.resource();
        assert_eq!(
            r.get(&"service.name".into()).unwrap().to_string(),
            "from-attrs"
        );
        assert_eq!(r.get(&"k".into()).unwrap().to_string(), "v");
        assert!(r.get(&"telemetry.sdk.language".into()).is_some());
        let p = Pipeline::from_lookup(lookup(&[
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
            ("OTEL_SERVICE_NAME", "from-var"),
        ]))
        .unwrap();
        assert_eq!(
            p.resource()
                .get(&"service.name".into())
                .unwrap()
                .to_string(),
            "from-var"
        );
        let r = Pipeline::new().resource();
        assert!(
            r.get(&"service.name".into())
                .unwrap()
                .to_string()
                .starts_with("unknown_service:")
        );
    }

    #[test]
    fn in_memory_pipeline_records_spans_with_the_resource() {
        let exporter = InMemorySpanExporter::default();
        let guard = Pipeline::new()
            .with_exporters([])
            .with_service_name("unit")
            .with_in_memory_exporter(exporter.clone())
            .without_global()
            .install()
            .unwrap();
        let mut span = guard.tracer().start("op");
        span.set_attribute(KeyValue::new("k", 1));
        span.end();
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].name, "op");
        assert_eq!(spans[0].instrumentation_scope.name(), INSTRUMENTATION_SCOPE);
        guard.shutdown().unwrap();
    }

    #[test]
    fn a_collector_that_is_down_is_not_a_start_up_error() {
        // Port 9 (discard) on loopback: nothing listens there.
        for protocol in [OtlpProtocol::Grpc, OtlpProtocol::HttpProtobuf] {
            let guard = Pipeline::new()
                .with_otlp(protocol, "http://127.0.0.1:9/v1/traces")
                .unwrap()
                .with_batch_config(BatchConfig {
                    export_timeout: Duration::from_secs(2),
                    ..BatchConfig::default()
                })
                .without_global()
                .install()
                .unwrap();
            guard.tracer().in_span("lost", |_| {});
            // The flush completes (the export fails fast or times out) and is counted.
            let _ = guard.force_flush();
            let (_, stats) = &guard.stats()[0];
            assert_eq!(stats.failed_spans(), 1, "{protocol:?}");
            assert_eq!(stats.exported(), 0);
            let _ = guard.shutdown();
        }
    }
}
