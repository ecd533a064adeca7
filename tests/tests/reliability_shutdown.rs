//! Graceful shutdown: `greeter-server` and `http-server`, the example programs, run under load
//! with their spans going over OTLP to a real receiver, and get SIGTERM while calls are in
//! flight. Every call that got its answer has its server span at the receiver (matched one by
//! one through the trace id each call carries in `traceparent`), although the batch delay is a
//! minute: the spans left the process because shutdown flushed them. The server exits 0.

#![cfg(unix)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use examples::helloworld::HelloRequest;
use examples::helloworld::greeter_client::GreeterClient;
use test_support::{OtlpReceiver, SpanKind};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;
use tokio::time::timeout;

/// The bound on every wait.
const WAIT: Duration = Duration::from_secs(10);

/// Calls answered before SIGTERM is sent.
const BEFORE_SIGTERM: usize = 200;

/// Concurrent callers.
const CALLERS: u64 = 4;

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package is in the workspace")
}

/// The newest modification time of the sources an example program is built from.
fn newest_source() -> SystemTime {
    fn walk(dir: &Path, newest: &mut SystemTime) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, newest);
            } else if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                *newest = (*newest).max(modified);
            }
        }
    }
    let mut newest = SystemTime::UNIX_EPOCH;
    for dir in [
        "tracing-core-lite/src",
        "tower-trace/src",
        "tonic-trace/src",
        "examples/src",
        "examples/proto",
    ] {
        walk(&workspace().join(dir), &mut newest);
    }
    newest
}

/// The example program `name`. `cargo test --workspace` (the README's command) builds it next
/// to the test executables, with this build's features: used when it is newer than its
/// sources. Otherwise (`cargo test -p tests`, or sources changed since) it is built with
/// escargot, which takes a while the first time.
fn program(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    let beside = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let fresh = std::fs::metadata(&beside)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built >= newest_source());
    if fresh {
        return beside;
    }
    escargot::CargoBuild::new()
        .manifest_path(workspace().join("Cargo.toml"))
        .package("examples")
        .bin(name)
        .current_release()
        .run()
        .unwrap_or_else(|e| panic!("cannot build {name}: {e}"))
        .path()
        .to_owned()
}

/// A running example server, killed if the test fails before it exits.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    async fn start(name: &str, receiver: &OtlpReceiver) -> Server {
        let path = tokio::task::spawn_blocking({
            let name = name.to_owned();
            move || program(&name)
        })
        .await
        .expect("no panic");
        let mut command = Command::new(path);
        for (var, _) in std::env::vars_os() {
            if var.to_string_lossy().starts_with("OTEL_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args(["--listen", "127.0.0.1:0"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.grpc_endpoint())
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
            .env("OTEL_SERVICE_NAME", "under-load")
            // Only shutdown (or a full batch) sends spans.
            .env("OTEL_BSP_SCHEDULE_DELAY", "60000")
            .env("OTEL_BSP_MAX_QUEUE_SIZE", "100000")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = timeout(WAIT, lines.next_line())
            .await
            .expect("the server announces its address in time")
            .expect("stdout is readable")
            .unwrap_or_else(|| panic!("{name} exited before listening"));
        let addr = line
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        // Keep reading stdout, so that the server never writes to a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Server { child, addr }
    }

    /// Sends SIGTERM; returns the exit status and what the server wrote to stderr.
    async fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let pid = libc::pid_t::try_from(self.child.id().expect("running")).expect("a pid");
        // SAFETY: kill(2) only sends a signal; the child has not been reaped (the `Child` is
        // here), so the pid is still its own.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = timeout(WAIT, self.child.wait())
            .await
            .expect("the server exits in time")
            .expect("an exit status");
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = timeout(WAIT, pipe.read_to_string(&mut stderr)).await;
        }
        (status, stderr)
    }
}

/// The trace ids of the calls that got their answer.
#[derive(Clone, Default)]
struct Answered {
    ids: Arc<Mutex<Vec<String>>>,
    enough: Arc<Notify>,
}

impl Answered {
    fn push(&self, trace_id: String) {
        let mut ids = self.ids.lock().unwrap();
        ids.push(trace_id);
        if ids.len() == BEFORE_SIGTERM {
            self.enough.notify_one();
        }
    }
}

/// A sampled `traceparent` of a trace of its own, and that trace's id.
fn traceparent(n: u64) -> (String, String) {
    let trace_id = format!("{:016x}{n:016x}", 0x5157_7e12_u64);
    (format!("00-{trace_id}-{:016x}-01", n + 1), trace_id)
}

/// Runs `call` from [`CALLERS`] tasks until calls fail, sends SIGTERM once
/// [`BEFORE_SIGTERM`] calls were answered, and checks that every answered call has its span.
async fn sigterm_under_load<F, Fut>(name: &str, call: F)
where
    F: Fn(String, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let receiver = OtlpReceiver::start().await.expect("receiver starts");
    let server = Server::start(name, &receiver).await;
    let answered = Answered::default();
    let next = Arc::new(AtomicU64::new(0));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (call, answered, next, addr) = (
                call.clone(),
                answered.clone(),
                Arc::clone(&next),
                server.addr.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let ok = timeout(WAIT, call(addr.clone(), n)).await.unwrap_or(false);
                    if !ok {
                        return;
                    }
                    answered.push(traceparent(n).1);
                }
            })
        })
        .collect();
    timeout(WAIT, answered.enough.notified())
        .await
        .expect("the server answers under load");
    let (status, stderr) = server.terminate().await;
    for caller in callers {
        timeout(WAIT, caller)
            .await
            .expect("the callers stop once the server is gone")
            .expect("no panic");
    }
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("SIGTERM received"), "{stderr}");
    assert!(!stderr.contains("warning"), "{stderr}");

    let ids: HashSet<String> = answered.ids.lock().unwrap().iter().cloned().collect();
    assert!(ids.len() >= BEFORE_SIGTERM);
    let spans = receiver
        .wait_for(
            |spans| {
                let got: HashSet<&str> = spans
                    .iter()
                    .filter(|s| s.kind == SpanKind::Server)
                    .map(|s| s.trace_id.as_str())
                    .collect();
                ids.iter().all(|id| got.contains(id.as_str()))
            },
            WAIT,
        )
        .await
        .unwrap_or_else(|e| {
            let got: HashSet<String> = e.spans().iter().map(|s| s.trace_id.clone()).collect();
            let missing = ids.iter().filter(|id| !got.contains(*id)).count();
            panic!(
                "{missing} of {} answered calls have no span: {e}",
                ids.len()
            )
        });
    // One server span per call, no more.
    let mut per_trace: std::collections::HashMap<&str, usize> = Default::default();
    for span in spans.iter().filter(|s| s.kind == SpanKind::Server) {
        *per_trace.entry(span.trace_id.as_str()).or_default() += 1;
    }
    assert!(per_trace.values().all(|n| *n == 1), "duplicated spans");
    assert!(spans.iter().all(|s| s.service_name() == Some("under-load")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greeter_server_flushes_every_span_on_sigterm() {
    sigterm_under_load("greeter-server", |addr: String, n: u64| async move {
        let Ok(mut client) = GreeterClient::connect(format!("http://{addr}")).await else {
            return false;
        };
        let mut request = tonic::Request::new(HelloRequest {
            name: format!("caller {n}"),
        });
        let (traceparent, _) = traceparent(n);
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().expect("valid"));
        client.say_hello(request).await.is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_flushes_every_span_on_sigterm() {
    let client = reqwest::Client::new();
    sigterm_under_load("http-server", move |addr: String, n: u64| {
        let client = client.clone();
        async move {
            let (traceparent, _) = traceparent(n);
            let sent = client
                .get(format!("http://{addr}/hello?name=caller{n}"))
                .header("traceparent", traceparent)
                .send()
                .await;
            match sent {
                Ok(res) if res.status().is_success() => res.bytes().await.is_ok(),
                _ => false,
            }
        }
    })
    .await;
}
