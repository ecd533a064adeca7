//! The receiver handle and the state its two servers share.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ::http::HeaderMap;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::span::{ReceivedSpan, Transport, flatten};
use crate::{grpc, http};

/// Largest export accepted, after decompression, on either transport.
pub(crate) const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// How long a stopping server waits for its open connections to finish
/// before dropping them.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// How the receiver answers export requests; see
/// [`OtlpReceiver::set_behavior`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Behavior {
    /// Record the spans and answer success (the default).
    #[default]
    Accept,
    /// Record nothing and answer a retryable error: gRPC `UNAVAILABLE`,
    /// HTTP `503 Service Unavailable`.
    Reject,
    /// Accept the request but do not answer until the behaviour changes (the
    /// request is then handled under the new behaviour) or the receiver
    /// stops (it is then answered with `UNAVAILABLE`/`503`).
    Hang,
    /// Decode the request and count its spans without recording them (see
    /// [`OtlpReceiver::span_count`]), and answer success: what a collector's
    /// receiver does before its pipeline, for benchmarks that send many spans.
    Count,
}

/// A real OTLP trace receiver for tests: an OTLP/gRPC server and an
/// OTLP/HTTP (protobuf) server, each on its own ephemeral port of 127.0.0.1,
/// both recording what they receive into one list of [`ReceivedSpan`]s (or
/// only counting it, under [`Behavior::Count`]).
///
/// Dropping the receiver stops both servers: they close their listeners,
/// answer hanging exports with `UNAVAILABLE`/`503`, and let open connections
/// finish for at most a couple of seconds in the background. Use
/// [`OtlpReceiver::shutdown`] to wait for all of that.
///
/// Must be started inside a Tokio runtime with time enabled (as
/// `#[tokio::test]` provides); the servers run as tasks on that runtime.
///
/// # Example
///
/// A fault test: the first export is rejected, the retry is accepted.
///
/// ```
/// use std::time::Duration;
///
/// use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
/// use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
/// use test_support::{Behavior, OtlpReceiver};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let receiver = OtlpReceiver::start().await?;
/// receiver.set_behavior(Behavior::Reject);
///
/// let mut client = TraceServiceClient::connect(receiver.grpc_endpoint()).await?;
/// let status = client
///     .export(ExportTraceServiceRequest::default())
///     .await
///     .unwrap_err();
/// assert_eq!(status.code(), tonic::Code::Unavailable);
///
/// receiver.set_behavior(Behavior::Accept);
/// client.export(ExportTraceServiceRequest::default()).await?;
/// assert_eq!(receiver.export_requests(), 2);
/// # Ok(())
/// # }
/// ```
pub struct OtlpReceiver {
    shared: Arc<Shared>,
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    servers: [JoinHandle<()>; 2],
    /// Never sent on: dropping it is the shutdown signal (see [`ShutdownSignal`]).
    shutdown: watch::Sender<()>,
}

impl OtlpReceiver {
    /// Binds `127.0.0.1:0` twice and starts the OTLP/gRPC and OTLP/HTTP
    /// servers on those ports.
    ///
    /// # Panics
    ///
    /// If called outside a Tokio runtime.
    pub async fn start() -> io::Result<Self> {
        let any_port = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        let grpc_listener = TcpListener::bind(any_port).await?;
        let http_listener = TcpListener::bind(any_port).await?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;

        let (shutdown, signal) = watch::channel(());
        let shared = Arc::new(Shared {
            state: watch::Sender::new(State::default()),
            behavior: watch::Sender::new(Behavior::default()),
            shutdown: ShutdownSignal(signal),
        });
        let servers = [
            tokio::spawn(grpc::serve(grpc_listener, Arc::clone(&shared))),
            tokio::spawn(http::serve(http_listener, Arc::clone(&shared))),
        ];
        Ok(Self {
            shared,
            grpc_addr,
            http_addr,
            servers,
            shutdown,
        })
    }

    /// The OTLP/gRPC endpoint, `http://127.0.0.1:PORT`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The base URL of the OTLP/HTTP server, `http://127.0.0.1:PORT`, as set in
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (exporters append `/v1/traces` to it).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// The full OTLP/HTTP traces URL, `http://127.0.0.1:PORT/v1/traces`, as set
    /// in `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or passed to an HTTP exporter's
    /// `with_endpoint` (both are used as is).
    pub fn http_traces_url(&self) -> String {
        format!("{}/v1/traces", self.http_endpoint())
    }

    /// All spans recorded so far, in arrival order (not those only counted
    /// under [`Behavior::Count`]: see [`span_count`](Self::span_count)).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.shared.state.borrow().spans.clone()
    }

    /// How many spans have been accepted so far: those recorded (without
    /// copying them, as [`spans`](Self::spans) does) and those only counted
    /// under [`Behavior::Count`].
    pub fn span_count(&self) -> usize {
        let state = self.shared.state.borrow();
        state.spans.len() + state.counted
    }

    /// Waits until at least `n` spans have been recorded and returns all spans
    /// recorded so far (possibly more than `n`). Spans only counted under
    /// [`Behavior::Count`] are not waited for: wait with
    /// [`wait_for_export_requests`](Self::wait_for_export_requests) and read
    /// [`span_count`](Self::span_count) then.
    ///
    /// Wakes up on every export; it never polls. The error tells how many
    /// spans arrived before the timeout.
    pub async fn wait_for_spans(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, WaitError> {
        self.wait_until(Condition::Spans(n), timeout, |state| state.spans.len() >= n)
            .await
            .map(|state| state.spans)
    }

    /// Waits until `pred` holds for the spans recorded so far, and returns
    /// them.
    ///
    /// `pred` is called at once and then after every export. It runs while
    /// the receiver's state is locked: keep it quick, and do not call the
    /// receiver from it.
    pub async fn wait_for(
        &self,
        pred: impl Fn(&[ReceivedSpan]) -> bool,
        timeout: Duration,
    ) -> Result<Vec<ReceivedSpan>, WaitError> {
        self.wait_until(Condition::Predicate, timeout, |state| pred(&state.spans))
            .await
            .map(|state| state.spans)
    }

    /// Waits until at least `n` export requests have arrived (whatever the
    /// [`Behavior`]), and returns the number that did. Useful in fault tests,
    /// where rejected or hanging exports record no spans.
    pub async fn wait_for_export_requests(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<usize, WaitError> {
        self.wait_until(Condition::ExportRequests(n), timeout, |state| {
            state.export_requests >= n
        })
        .await
        .map(|state| state.export_requests)
    }

    /// The headers of each export request whose spans were recorded (under
    /// [`Behavior::Accept`]), in arrival order: an OTLP/HTTP request's
    /// headers, or an OTLP/gRPC request's metadata as headers. Forgotten by
    /// [`clear`](Self::clear).
    pub fn export_headers(&self) -> Vec<HeaderMap> {
        self.shared.state.borrow().headers.clone()
    }

    /// The number of export requests received on both transports, including
    /// rejected and hanging ones. Requests that could not be decoded are not
    /// counted.
    pub fn export_requests(&self) -> usize {
        self.shared.state.borrow().export_requests
    }

    /// Sets how subsequent (and currently hanging) export requests are
    /// answered.
    pub fn set_behavior(&self, behavior: Behavior) {
        self.shared.behavior.send_replace(behavior);
    }

    /// Forgets all received spans (recorded and counted) and resets
    /// [`OtlpReceiver::export_requests`] to zero. The [`Behavior`] is unchanged.
    pub fn clear(&self) {
        self.shared.state.send_replace(State::default());
    }

    /// Stops both servers and waits until they have closed their listeners
    /// and their connections (for at most a couple of seconds per server).
    ///
    /// Hanging exports are answered with `UNAVAILABLE`/`503` first. Dropping the
    /// receiver does the same without waiting.
    ///
    /// # Panics
    ///
    /// If a server task panicked, the panic is resumed here.
    pub async fn shutdown(self) {
        let Self {
            servers, shutdown, ..
        } = self;
        drop(shutdown);
        for server in servers {
            if let Err(error) = server.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        }
    }

    async fn wait_until(
        &self,
        condition: Condition,
        timeout: Duration,
        done: impl FnMut(&State) -> bool,
    ) -> Result<State, WaitError> {
        let mut state = self.shared.state.subscribe();
        match tokio::time::timeout(timeout, state.wait_for(done)).await {
            Ok(Ok(state)) => Ok(state.clone()),
            // `Err(RecvError)` would mean that the sender was dropped, which
            // cannot happen while `self` holds it; report it as a timeout.
            Ok(Err(_)) | Err(_) => {
                let state = self.shared.state.borrow();
                Err(WaitError {
                    condition,
                    timeout,
                    spans: state.spans.clone(),
                    export_requests: state.export_requests,
                })
            }
        }
    }
}

impl fmt::Debug for OtlpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.borrow();
        f.debug_struct("OtlpReceiver")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("behavior", &*self.shared.behavior.borrow())
            .field("spans", &state.spans.len())
            .field("counted", &state.counted)
            .field("export_requests", &state.export_requests)
            .finish_non_exhaustive()
    }
}

/// Returned when an `OtlpReceiver::wait_for*` call times out.
///
/// Its message tells what was awaited, how many spans and export requests
/// had arrived, and the names of those spans.
#[derive(Debug, Clone)]
pub struct WaitError {
    condition: Condition,
    timeout: Duration,
    spans: Vec<ReceivedSpan>,
    export_requests: usize,
}

impl WaitError {
    /// How many spans had been recorded when the wait timed out.
    pub fn arrived(&self) -> usize {
        self.spans.len()
    }

    /// The spans that had been recorded when the wait timed out.
    pub fn spans(&self) -> &[ReceivedSpan] {
        &self.spans
    }

    /// How many export requests had arrived when the wait timed out.
    pub fn export_requests(&self) -> usize {
        self.export_requests
    }

    /// The timeout that elapsed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?} waiting for ", self.timeout)?;
        match self.condition {
            Condition::Spans(n) => write!(f, "{n} span(s)")?,
            Condition::Predicate => f.write_str("the span predicate to hold")?,
            Condition::ExportRequests(n) => write!(f, "{n} export request(s)")?,
        }
        let names: Vec<&str> = self.spans.iter().map(|s| s.name.as_str()).collect();
        write!(
            f,
            ": {} span(s) arrived in {} export request(s): {names:?}",
            self.spans.len(),
            self.export_requests,
        )
    }
}

impl std::error::Error for WaitError {}

#[derive(Debug, Clone, Copy)]
enum Condition {
    Spans(usize),
    Predicate,
    ExportRequests(usize),
}

/// State shared by the handle and both servers.
pub(crate) struct Shared {
    state: watch::Sender<State>,
    behavior: watch::Sender<Behavior>,
    pub(crate) shutdown: ShutdownSignal,
}

#[derive(Debug, Clone, Default)]
struct State {
    spans: Vec<ReceivedSpan>,
    /// Spans counted and not recorded ([`Behavior::Count`]).
    counted: usize,
    /// The headers of the requests whose spans are in `spans`.
    headers: Vec<HeaderMap>,
    export_requests: usize,
}

/// What became of an export request.
pub(crate) enum Outcome {
    /// Spans recorded (or counted); answer success.
    Accepted,
    /// [`Behavior::Reject`]: nothing recorded; answer a retryable error.
    Rejected,
    /// The request hung until the receiver stopped; nothing recorded.
    ShuttingDown,
}

impl Shared {
    /// Counts a decoded export request, then handles it according to the
    /// current [`Behavior`], waiting while that is [`Behavior::Hang`].
    pub(crate) async fn export(
        &self,
        request: ExportTraceServiceRequest,
        headers: HeaderMap,
        transport: Transport,
    ) -> Outcome {
        self.state.send_modify(|state| state.export_requests += 1);

        let mut behavior = self.behavior.subscribe();
        let mut stopped = std::pin::pin!(self.shutdown.clone().wait());
        loop {
            let current = *behavior.borrow_and_update();
            match current {
                Behavior::Accept => {
                    let spans = flatten(request, transport);
                    self.state.send_modify(|state| {
                        state.spans.extend(spans);
                        state.headers.push(headers);
                    });
                    return Outcome::Accepted;
                }
                Behavior::Count => {
                    let spans = request
                        .resource_spans
                        .iter()
                        .flat_map(|resource| &resource.scope_spans)
                        .map(|scope| scope.spans.len())
                        .sum::<usize>();
                    self.state.send_modify(|state| state.counted += spans);
                    return Outcome::Accepted;
                }
                Behavior::Reject => return Outcome::Rejected,
                Behavior::Hang => {}
            }
            tokio::select! {
                // `Err` cannot happen: `self` owns the sender.
                changed = behavior.changed() => if changed.is_err() {
                    return Outcome::ShuttingDown;
                },
                () = &mut stopped => return Outcome::ShuttingDown,
            }
        }
    }
}

/// Completes once the owning [`OtlpReceiver`] is dropped or shut down.
#[derive(Debug, Clone)]
pub(crate) struct ShutdownSignal(watch::Receiver<()>);

impl ShutdownSignal {
    pub(crate) async fn wait(mut self) {
        // Nothing is ever sent: `changed` returns `Err` once the sender, owned
        // by `OtlpReceiver`, is dropped.
        while self.0.changed().await.is_ok() {}
    }
}
