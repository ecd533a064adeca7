//! The OTLP/gRPC server: tonic's transport server with the generated
//! `TraceService`.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::receiver::{DRAIN_TIMEOUT, MAX_MESSAGE_SIZE, Outcome, Shared};
use crate::span::Transport;

struct Receiver {
    shared: Arc<Shared>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        match self
            .shared
            .export(request, metadata.into_headers(), Transport::Grpc)
            .await
        {
            // A full success: no `partial_success`.
            Outcome::Accepted => Ok(Response::new(ExportTraceServiceResponse::default())),
            Outcome::Rejected => Err(Status::unavailable(
                "export rejected by the test receiver (Behavior::Reject)",
            )),
            Outcome::ShuttingDown => Err(Status::unavailable("the test receiver is shutting down")),
        }
    }
}

/// Serves OTLP/gRPC on `listener` until the receiver stops.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let shutdown = shared.shutdown.clone();
    let service = TraceServiceServer::new(Receiver { shared })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_SIZE);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    // On the signal, tonic closes the listener, asks every connection to shut
    // down gracefully and waits for them to finish. Hanging exports observe
    // the same signal and answer, so that normally completes at once; the
    // deadline only bounds the wait for misbehaving clients.
    let server =
        Server::builder().serve_with_incoming_shutdown(service, incoming, shutdown.clone().wait());
    let deadline = async {
        shutdown.wait().await;
        tokio::time::sleep(DRAIN_TIMEOUT).await;
    };
    tokio::select! {
        result = server => {
            if let Err(error) = result {
                eprintln!("test-support: OTLP/gRPC receiver failed: {error}");
            }
        }
        () = deadline => {}
    }
}
