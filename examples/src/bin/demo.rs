//! The demo: a request crossing four services, drawn as a call tree.
//!
//! In one process, on ephemeral 127.0.0.1 ports, each with its own tracer provider and
//! `service.name`:
//!
//! ```text
//! gateway (HTTP, axum)  ──gRPC──▶  orders  ──gRPC──▶  inventory
//!                                     │ ────HTTP────▶  payments (axum)
//!                                     └──queue──▶  fulfilment worker (in orders)
//! ```
//!
//! It drives a success, a 404, a gRPC error that surfaces as a 5xx, a slow call and a streamed
//! response, then prints each trace as a tree and exits.
//!
//! ```text
//! cargo run -p examples --bin demo
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 cargo run -p examples --bin demo   # to Jaeger
//! OTEL_TRACES_EXPORTER=otlp,console OTEL_EXPORTER_OTLP_ENDPOINT=... cargo run -p examples --bin demo
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use examples::ErrorChain;
use examples::shop::inventory_client::InventoryClient;
use examples::shop::inventory_server::{Inventory, InventoryServer};
use examples::shop::orders_client::OrdersClient;
use examples::shop::orders_server::{Orders, OrdersServer};
use examples::shop::{GetOrderRequest, Order, OrderEvent, ReserveReply, ReserveRequest};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    FutureExt as _, Link, Span as _, SpanKind, Status as SpanStatus, TraceContextExt, Tracer,
    TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::SdkTracer;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Status};
use tonic_trace::ClientTrace;
use tower::ServiceBuilder;
use tracing_core_lite::export::ConsoleExporter;
use tracing_core_lite::{Pipeline, PipelineGuard, Propagators};

const USAGE: &str = "\
demo: four services in one process (an HTTP gateway, gRPC orders and inventory, HTTP
payments, and a queue worker), a handful of requests through them, and their traces drawn
as call trees on the console.

usage: demo [--help]

Honours the OTEL_* variables: with OTEL_EXPORTER_OTLP_ENDPOINT set (e.g. a Jaeger on
http://localhost:4318) the traces go to the collector instead of the console, or to both
with OTEL_TRACES_EXPORTER=otlp,console.";

/// One service's tracing: its pipeline (own provider, own `service.name`).
struct Service {
    guard: PipelineGuard,
}

impl Service {
    fn new(name: &str, console: &ConsoleExporter) -> Result<Self, Box<dyn Error>> {
        let guard = Pipeline::from_env()?
            .with_service_name(name)
            .with_console_exporter(console.clone())
            .without_global()
            .install()?;
        Ok(Service { guard })
    }

    fn tracer(&self) -> SdkTracer {
        self.guard.tracer_provider().tracer("demo")
    }

    fn propagators(&self) -> Propagators {
        self.guard.propagators().clone()
    }

    fn http_server(&self) -> tower_trace::ServerLayer {
        tower_trace::ServerLayer::new()
            .with_tracer_source(self.guard.tracer_source())
            .with_propagators(self.propagators())
    }

    fn grpc_server(&self) -> tonic_trace::ServerLayer {
        tonic_trace::ServerLayer::new()
            .with_tracer_source(self.guard.tracer_source())
            .with_propagators(self.propagators())
    }

    fn grpc_client(&self, uri: &http::Uri) -> tonic_trace::ClientLayer {
        tonic_trace::ClientLayer::new()
            .with_tracer_source(self.guard.tracer_source())
            .with_propagators(self.propagators())
            .with_server_uri(uri)
    }

    fn http_client(&self) -> reqwest_middleware::ClientWithMiddleware {
        let layer = tower_trace::ClientLayer::new()
            .with_tracer_source(self.guard.tracer_source())
            .with_propagators(self.propagators());
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(tower_trace::ReqwestMiddleware::from_layer(layer))
            .build()
    }
}

// ---------------------------------------------------------------------------------- inventory

struct InventoryService;

#[tonic::async_trait]
impl Inventory for InventoryService {
    async fn reserve(
        &self,
        req: Request<ReserveRequest>,
    ) -> Result<tonic::Response<ReserveReply>, Status> {
        if req.get_ref().item == "broken-widget" {
            return Err(Status::internal("stock database unreachable"));
        }
        Ok(tonic::Response::new(ReserveReply { reserved: true }))
    }
}

// ----------------------------------------------------------------------------------- payments

#[derive(serde::Deserialize)]
struct ChargeQuery {
    delay_ms: Option<u64>,
}

async fn charge(Query(q): Query<ChargeQuery>) -> impl IntoResponse {
    if let Some(ms) = q.delay_ms {
        // The slow dependency of the demo.
        tokio::time::sleep(Duration::from_millis(ms.min(1000))).await;
    }
    axum::Json(serde_json::json!({ "charged": true }))
}

// ------------------------------------------------------------------------------------- orders

/// A queue message: its body and the headers that carry the trace context.
struct Message {
    headers: HashMap<String, String>,
    order: String,
}

struct OrdersService {
    tracer: SdkTracer,
    propagators: Propagators,
    inventory: InventoryClient<ClientTrace<Channel>>,
    payments: reqwest_middleware::ClientWithMiddleware,
    payments_url: String,
    queue: mpsc::Sender<Message>,
}

impl OrdersService {
    /// The "database": a CLIENT span around the query, a child of the call's span.
    async fn load(&self, id: &str) -> Option<Order> {
        let span = self
            .tracer
            .span_builder("SELECT shop.orders")
            .with_kind(SpanKind::Client)
            .with_attributes([
                KeyValue::new("db.system.name", "postgresql"),
                KeyValue::new("db.operation.name", "SELECT"),
                KeyValue::new("db.collection.name", "orders"),
            ])
            .start(&self.tracer);
        let cx = Context::current_with_span(span);
        async {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        .with_context(cx.clone())
        .await;
        cx.span().end();
        let item = match id {
            "missing" => return None,
            "fail" => "broken-widget",
            _ => "widget",
        };
        Some(Order {
            id: id.to_owned(),
            item: item.to_owned(),
            quantity: 2,
            status: "placed".to_owned(),
        })
    }

    /// Publishes to the queue: a PRODUCER span whose context rides in the message headers.
    async fn publish(&self, order: &str) {
        let span = self
            .tracer
            .span_builder("orders publish")
            .with_kind(SpanKind::Producer)
            .with_attributes([
                KeyValue::new("messaging.system", "in-process"),
                KeyValue::new("messaging.destination.name", "orders"),
                KeyValue::new("messaging.operation.type", "send"),
            ])
            .start(&self.tracer);
        let cx = Context::current_with_span(span);
        let mut headers = HashMap::new();
        self.propagators.inject_context(&cx, &mut headers);
        let sent = self
            .queue
            .send(Message {
                headers,
                order: order.to_owned(),
            })
            .await;
        if sent.is_err() {
            cx.span()
                .set_status(SpanStatus::error("the queue is closed"));
        }
        cx.span().end();
    }
}

#[tonic::async_trait]
impl Orders for OrdersService {
    async fn get(&self, req: Request<GetOrderRequest>) -> Result<tonic::Response<Order>, Status> {
        let id = req.into_inner().id;
        let order = self
            .load(&id)
            .await
            .ok_or_else(|| Status::not_found(format!("no order {id}")))?;
        self.inventory
            .clone()
            .reserve(ReserveRequest {
                item: order.item.clone(),
                quantity: order.quantity,
            })
            .await
            .map_err(|s| Status::unavailable(format!("inventory: {}", s.message())))?;
        let delay = if id == "slow" { "?delay_ms=150" } else { "" };
        let charged = self
            .payments
            .post(format!("{}/charge{delay}", self.payments_url))
            .json(&serde_json::json!({ "order": id, "amount": 42 }))
            .send()
            .await
            .and_then(|r| r.error_for_status().map_err(Into::into));
        match charged {
            Ok(res) => {
                let _ = res.bytes().await;
            }
            Err(e) => return Err(Status::unavailable(format!("payments: {e}"))),
        }
        self.publish(&id).await;
        Ok(tonic::Response::new(order))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<OrderEvent, Status>> + Send>>;

    async fn watch(
        &self,
        req: Request<GetOrderRequest>,
    ) -> Result<tonic::Response<Self::WatchStream>, Status> {
        let id = req.into_inner().id;
        let events = ["placed", "packed", "shipped"].map(|status| OrderEvent {
            id: id.clone(),
            status: status.to_owned(),
        });
        let stream = tokio_stream::iter(events).then(|event| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            Ok(event)
        });
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}

/// The fulfilment worker: each message's CONSUMER span continues the producer's trace (and
/// links to the producer's span).
async fn worker(tracer: SdkTracer, propagators: Propagators, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let parent = propagators.extract(&message.headers);
        let producer = parent.span().span_context().clone();
        let mut span = tracer
            .span_builder("orders process")
            .with_kind(SpanKind::Consumer)
            .with_links(vec![Link::with_context(producer)])
            .with_attributes([
                KeyValue::new("messaging.system", "in-process"),
                KeyValue::new("messaging.destination.name", "orders"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("order.id", message.order),
            ])
            .start_with_context(&tracer, &parent);
        tokio::time::sleep(Duration::from_millis(3)).await;
        span.end();
    }
}

// ------------------------------------------------------------------------------------ gateway

#[derive(Clone)]
struct Gateway {
    orders: OrdersClient<ClientTrace<Channel>>,
}

/// Maps a gRPC status to the HTTP answer: the caller's mistakes to 4xx, the rest to 502.
fn http_error(status: &Status) -> Response {
    let code = match status.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    (code, status.message().to_owned()).into_response()
}

async fn get_order(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    match gw.orders.clone().get(GetOrderRequest { id }).await {
        Ok(order) => {
            let order = order.into_inner();
            axum::Json(serde_json::json!({
                "id": order.id, "item": order.item, "quantity": order.quantity, "status": order.status,
            }))
            .into_response()
        }
        Err(status) => http_error(&status),
    }
}

async fn order_events(State(gw): State<Gateway>, Path(id): Path<String>) -> Response {
    match gw.orders.clone().watch(GetOrderRequest { id }).await {
        Ok(stream) => {
            let lines = stream
                .into_inner()
                .map(|event| event.map(|e| format!("{} {}\n", e.id, e.status)));
            axum::body::Body::from_stream(lines).into_response()
        }
        Err(status) => http_error(&status),
    }
}

// -------------------------------------------------------------------------------------- setup

async fn listen() -> Result<(TcpListener, SocketAddr), Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

fn spawn_http(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.changed().await;
            })
            .await;
    });
}

async fn channel(addr: SocketAddr) -> Result<(Channel, http::Uri), Box<dyn Error>> {
    let uri: http::Uri = format!("http://{addr}").parse()?;
    let channel = Endpoint::from(uri.clone()).connect().await?;
    Ok((channel, uri))
}

async fn run() -> Result<(), Box<dyn Error>> {
    let console = ConsoleExporter::stdout();
    let gateway = Service::new("gateway", &console)?;
    let orders = Service::new("orders", &console)?;
    let inventory = Service::new("inventory", &console)?;
    let payments = Service::new("payments", &console)?;
    let (stop, stopped) = watch::channel(false);

    // payments (HTTP)
    let (listener, payments_addr) = listen().await?;
    let app = Router::new()
        .route("/charge", post(charge))
        .layer(payments.http_server());
    spawn_http(listener, app, stopped.clone());

    // inventory (gRPC)
    let (listener, inventory_addr) = listen().await?;
    let layer = inventory.grpc_server();
    let mut stop_inventory = stopped.clone();
    tokio::spawn(async move {
        let _ = Server::builder()
            .layer(layer)
            .add_service(InventoryServer::new(InventoryService))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stop_inventory.changed().await;
            })
            .await;
    });

    // orders (gRPC), its worker, and its clients
    let (queue, messages) = mpsc::channel(16);
    let worker = tokio::spawn(worker(orders.tracer(), orders.propagators(), messages));
    let (inventory_channel, inventory_uri) = channel(inventory_addr).await?;
    let orders_service = OrdersService {
        tracer: orders.tracer(),
        propagators: orders.propagators(),
        inventory: InventoryClient::new(
            ServiceBuilder::new()
                .layer(orders.grpc_client(&inventory_uri))
                .service(inventory_channel),
        ),
        payments: orders.http_client(),
        payments_url: format!("http://{payments_addr}"),
        queue,
    };
    let (listener, orders_addr) = listen().await?;
    let layer = orders.grpc_server();
    let mut stop_orders = stopped.clone();
    let orders_server = tokio::spawn(async move {
        let _ = Server::builder()
            .layer(layer)
            .add_service(OrdersServer::new(orders_service))
            .serve_with_incoming_shutdown(TcpIncoming::from(listener), async move {
                let _ = stop_orders.changed().await;
            })
            .await;
    });

    // gateway (HTTP)
    let (orders_channel, orders_uri) = channel(orders_addr).await?;
    let gw = Gateway {
        orders: OrdersClient::new(
            ServiceBuilder::new()
                .layer(gateway.grpc_client(&orders_uri))
                .service(orders_channel),
        ),
    };
    let (listener, gateway_addr) = listen().await?;
    let app = Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/orders/{id}/events", get(order_events))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such page") })
        .layer(gateway.http_server())
        .with_state(gw);
    spawn_http(listener, app, stopped.clone());

    // The requests: a plain client, so that each trace starts at the gateway.
    let client = reqwest::Client::new();
    println!("gateway on http://{gateway_addr}\n");
    for (what, path) in [
        ("a success", "/orders/42"),
        ("a 404 on the gateway", "/no-such-page"),
        ("a gRPC error that surfaces as a 5xx", "/orders/fail"),
        ("a slow call", "/orders/slow"),
        ("a streamed response", "/orders/42/events"),
    ] {
        let started = Instant::now();
        let res = client
            .get(format!("http://{gateway_addr}{path}"))
            .send()
            .await?;
        let status = res.status();
        let body = res.text().await?;
        println!(
            "GET {path:<20} {status}  {:>6.1} ms  ({what}): {}",
            started.elapsed().as_secs_f64() * 1000.0,
            body.trim().replace('\n', " | ")
        );
    }
    println!();

    // Stop the servers, let the worker drain the queue, then flush every service before the
    // console draws the trees, so that each tree is whole.
    let _ = stop.send(true);
    let _ = orders_server.await;
    let _ = worker.await;
    for service in [&gateway, &orders, &inventory, &payments] {
        service.guard.force_flush()?;
    }
    for service in [gateway, orders, inventory, payments] {
        service.guard.shutdown()?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    if std::env::args().skip(1).any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if let Some(arg) = std::env::args().nth(1) {
        eprintln!("error: unexpected argument `{arg}`\n\n{USAGE}");
        return ExitCode::from(2);
    }
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", ErrorChain(&*e));
            ExitCode::FAILURE
        }
    }
}
