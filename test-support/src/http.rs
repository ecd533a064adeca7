//! The OTLP/HTTP server (binary protobuf encoding): hyper, HTTP/1.1 and h2c.

use std::convert::Infallible;
use std::io::{self, Read};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use http::header::{ALLOW, CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::receiver::{DRAIN_TIMEOUT, MAX_MESSAGE_SIZE, Outcome, Shared};
use crate::span::Transport;

/// The OTLP/HTTP traces path.
const TRACES_PATH: &str = "/v1/traces";
const PROTOBUF: &str = "application/x-protobuf";

/// Serves OTLP/HTTP on `listener` until the receiver stops.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut connections = JoinSet::new();
    let mut stopped = pin!(shared.shutdown.clone().wait());
    loop {
        tokio::select! {
            () = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve_connection(stream, builder.clone(), Arc::clone(&shared)));
                }
                Err(error) => accept_error(error).await,
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Close the port first, then let the connections finish: each one has
    // seen the signal and is shutting down gracefully. Those still open after
    // the deadline are aborted when the set is dropped.
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, drained).await;
}

async fn accept_error(error: io::Error) {
    // Errors about a single connection are harmless; others (such as running
    // out of file descriptors) would repeat at once, so back off a little.
    if !matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    ) {
        eprintln!("test-support: OTLP/HTTP receiver failed to accept: {error}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    builder: auto::Builder<TokioExecutor>,
    shared: Arc<Shared>,
) {
    // Best effort: only latency depends on it.
    let _ = stream.set_nodelay(true);
    let stopped = shared.shutdown.clone().wait();
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(&shared, request).await) }
    });
    let mut connection = pin!(builder.serve_connection(TokioIo::new(stream), service));
    // Connection errors (a client going away, a malformed request) concern
    // only that client, which sees them; there is nothing to do about them.
    tokio::select! {
        _ = connection.as_mut() => {}
        () = stopped => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (export, headers) = match decode(request).await {
        Ok(decoded) => decoded,
        Err(error) => return error.into_response(),
    };
    match shared.export(export, headers, Transport::Http).await {
        Outcome::Accepted => protobuf_response(
            StatusCode::OK,
            ExportTraceServiceResponse::default().encode_to_vec(),
        ),
        Outcome::Rejected => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "export rejected by the test receiver (Behavior::Reject)",
        )
        .into_response(),
        Outcome::ShuttingDown => HttpError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the test receiver is shutting down",
        )
        .into_response(),
    }
}

/// Validates an OTLP/HTTP export request and decodes its body; returns it with the request's
/// headers.
async fn decode(
    request: Request<Incoming>,
) -> Result<(ExportTraceServiceRequest, HeaderMap), HttpError> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() != TRACES_PATH {
        return Err(HttpError::new(
            StatusCode::NOT_FOUND,
            format!("no such path; OTLP traces go to POST {TRACES_PATH}"),
        ));
    }
    if parts.method != Method::POST {
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("OTLP traces go to POST {TRACES_PATH}"),
        ));
    }
    if !is_protobuf(&parts.headers) {
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("content-type must be {PROTOBUF} (the JSON encoding is not supported)"),
        ));
    }
    let gzip = is_gzip(&parts.headers)?;

    let body = match Limited::new(body, MAX_MESSAGE_SIZE).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => return Err(HttpError::too_large()),
        Err(error) => {
            return Err(HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("failed to read the request body: {error}"),
            ));
        }
    };
    let body = if gzip { gunzip(&body)? } else { body };

    let export = ExportTraceServiceRequest::decode(body).map_err(|error| {
        HttpError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not a protobuf ExportTraceServiceRequest: {error}"),
        )
    })?;
    Ok((export, parts.headers))
}

/// Whether the media type (parameters aside) is `application/x-protobuf`.
fn is_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(PROTOBUF))
}

/// Whether the body is gzip-compressed; other content codings are refused.
fn is_gzip(headers: &HeaderMap) -> Result<bool, HttpError> {
    let unsupported = || {
        HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-encoding must be gzip or identity",
        )
    };
    let mut codings = headers.get_all(CONTENT_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => Ok(false),
        (Some(coding), None) => match coding.to_str().map(str::trim) {
            Ok(c) if c.eq_ignore_ascii_case("identity") => Ok(false),
            // RFC 9110 asks recipients to treat `x-gzip` as `gzip`.
            Ok(c) if c.eq_ignore_ascii_case("gzip") || c.eq_ignore_ascii_case("x-gzip") => Ok(true),
            _ => Err(unsupported()),
        },
        (Some(_), Some(_)) => Err(unsupported()),
    }
}

fn gunzip(compressed: &[u8]) -> Result<Bytes, HttpError> {
    // One byte over the limit is enough to tell that the limit is exceeded.
    let limit = u64::try_from(MAX_MESSAGE_SIZE)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut decompressed = Vec::new();
    MultiGzDecoder::new(compressed)
        .take(limit)
        .read_to_end(&mut decompressed)
        .map_err(|error| {
            HttpError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid gzip body: {error}"),
            )
        })?;
    if decompressed.len() > MAX_MESSAGE_SIZE {
        return Err(HttpError::too_large());
    }
    Ok(decompressed.into())
}

/// An OTLP/HTTP error answer.
struct HttpError {
    status: StatusCode,
    message: String,
}

impl HttpError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("exports are limited to {MAX_MESSAGE_SIZE} bytes"),
        )
    }

    /// The response, whose body is a protobuf `google.rpc.Status` as
    /// OTLP/HTTP specifies.
    fn into_response(self) -> Response<Full<Bytes>> {
        let code = match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                tonic::Code::InvalidArgument
            }
            StatusCode::NOT_FOUND => tonic::Code::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => tonic::Code::Unimplemented,
            StatusCode::PAYLOAD_TOO_LARGE => tonic::Code::ResourceExhausted,
            StatusCode::SERVICE_UNAVAILABLE => tonic::Code::Unavailable,
            _ => tonic::Code::Unknown,
        };
        let body = RpcStatus {
            code: code as i32,
            message: self.message,
        };
        let mut response = protobuf_response(self.status, body.encode_to_vec());
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
        }
        response
    }
}

fn protobuf_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(PROTOBUF));
    response
}

/// `google.rpc.Status`, without its `details`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub(crate) code: i32,
    #[prost(string, tag = "2")]
    pub(crate) message: String,
}
