"""An independent peer for the gRPC interop tests (tests/tests/interop_grpc.rs).

It is a helloworld.Greeter client or server instrumented with OpenTelemetry's Python gRPC
instrumentation (opentelemetry-instrumentation-grpc), never with anything of this workspace,
so that the tests check our layers against the instrumentation that Python services use: it
starts the spans and injects and extracts their context, with the global propagator, which
this peer sets to FORMAT:

    grpc_peer.py client --target HOST:PORT --propagator FORMAT [--name NAME] [--stream]
    grpc_peer.py server --listen HOST:PORT --propagator FORMAT

FORMAT is tracecontext or b3 (single header). The helloworld stubs are generated at start,
with grpc_tools.protoc, from examples/proto/helloworld.proto.

client: calls SayHello(NAME) on TARGET, or SayHelloStream(NAME) with --stream, and prints one
    JSON line: {"trace_id", "span_id", "name"} of the CLIENT span that the instrumentation
    recorded, and "replies" (the messages received). Exits 1 if the call fails.

server: serves helloworld.Greeter on LISTEN (port 0 picks a free one), prints `listening on
    HOST:PORT`, then, as each call's SERVER span (recorded by the instrumentation) ends, one
    JSON line: {"name", "trace_id", "span_id", "parent" ({"trace_id", "span_id", "sampled",
    "remote"}, or null for a root span), "metadata" (the propagation metadata received: key
    -> list of values)}. SayHello answers `Hello, NAME!`, SayHelloStream `Hello, NAME! (i/3)`
    three times. Runs until its standard input is closed, or SIGINT/SIGTERM.

Needs the packages of requirements.txt beside this file (tests/interop/setup.sh installs them).
"""

import argparse
import importlib
import json
import signal
import sys
import tempfile
import threading
from concurrent import futures
from pathlib import Path

import grpc
from grpc_tools import protoc
from opentelemetry import propagate, trace
from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer
from opentelemetry.propagators.b3 import B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# What OTEL_PROPAGATORS=FORMAT makes of the global propagator in Python.
PROPAGATORS = {
    "tracecontext": lambda: CompositePropagator([TraceContextTextMapPropagator()]),
    "b3": B3SingleFormat,
}

# The metadata of the formats above (and of B3's multiple headers), reported by the server so
# that the tests can check which formats the caller sent.
PROPAGATION_METADATA = {
    "traceparent",
    "tracestate",
    "baggage",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
}

PROTO = Path(__file__).resolve().parents[2] / "examples" / "proto" / "helloworld.proto"

STREAM_REPLIES = 3
TIMEOUT_SECONDS = 30
# Loopback only: never through a proxy that the environment may name.
CHANNEL_OPTIONS = [("grpc.enable_http_proxy", 0)]


# The server's handlers and span processor run on threads of their own.
print_lock = threading.Lock()


def print_line(value):
    """Prints `value` as one JSON line, whole, flushed at once."""
    line = json.dumps(value, sort_keys=True)
    with print_lock:
        print(line, flush=True)


def span_ids(span_context):
    return {
        "trace_id": format_trace_id(span_context.trace_id),
        "span_id": format_span_id(span_context.span_id),
    }


def helloworld():
    """The modules protoc generates from helloworld.proto: (helloworld_pb2, helloworld_pb2_grpc)."""
    with tempfile.TemporaryDirectory(prefix="grpc_peer-") as out:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTO.parent}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                str(PROTO),
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed on {PROTO} (exit status {status})")
        # Imported while the directory exists; the modules need nothing from it afterwards.
        sys.path.insert(0, out)
        try:
            return (
                importlib.import_module("helloworld_pb2"),
                importlib.import_module("helloworld_pb2_grpc"),
            )
        finally:
            sys.path.remove(out)


def run_client(args):
    # The client instrumentation takes the global tracer provider (it ignores the one given to
    # instrument()).
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Instruments the channels created from now on.
    GrpcInstrumentorClient().instrument()

    pb2, pb2_grpc = helloworld()
    request = pb2.HelloRequest(name=args.name)
    with grpc.insecure_channel(args.target, options=CHANNEL_OPTIONS) as channel:
        stub = pb2_grpc.GreeterStub(channel)
        try:
            if args.stream:
                replies = [r.message for r in stub.SayHelloStream(request, timeout=TIMEOUT_SECONDS)]
            else:
                replies = [stub.SayHello(request, timeout=TIMEOUT_SECONDS).message]
        except grpc.RpcError as error:
            print(f"error: the call to {args.target} failed: {error}", file=sys.stderr)
            return 1

    spans = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT]
    if len(spans) != 1:
        print(
            f"error: expected one CLIENT span, the instrumentation recorded {spans}",
            file=sys.stderr,
        )
        return 1
    (span,) = spans
    print_line({**span_ids(span.context), "name": span.name, "replies": replies})
    return 0


class ReportServerSpans(SpanProcessor):
    """Prints each SERVER span as it ends: its ids, its parent's, the metadata received."""

    def on_end(self, span):
        if span.kind != SpanKind.SERVER:
            return
        parent = span.parent
        prefix = "rpc.request.metadata."
        print_line(
            {
                "name": span.name,
                **span_ids(span.context),
                "parent": {
                    **span_ids(parent),
                    "sampled": parent.trace_flags.sampled,
                    "remote": parent.is_remote,
                }
                if parent is not None and parent.is_valid
                else None,
                "metadata": {
                    key.removeprefix(prefix): list(values)
                    for key, values in span.attributes.items()
                    if key.startswith(prefix)
                },
            }
        )


def record_propagation_metadata(context):
    """Records the propagation metadata of the call on its SERVER span, which is current in the
    handlers, as `rpc.request.metadata.<key>` attributes (the semantic conventions' name)."""
    received = {}
    for key, value in context.invocation_metadata():
        if key in PROPAGATION_METADATA:
            received.setdefault(key, []).append(value)
    span = trace.get_current_span()
    for key, values in received.items():
        span.set_attribute(f"rpc.request.metadata.{key}", values)


def run_server(args):
    provider = TracerProvider()
    provider.add_span_processor(ReportServerSpans())
    # Instruments the servers created from now on.
    GrpcInstrumentorServer().instrument(tracer_provider=provider)

    pb2, pb2_grpc = helloworld()

    class Greeter(pb2_grpc.GreeterServicer):
        def SayHello(self, request, context):
            record_propagation_metadata(context)
            return pb2.HelloReply(message=f"Hello, {request.name}!")

        def SayHelloStream(self, request, context):
            record_propagation_metadata(context)
            for i in range(1, STREAM_REPLIES + 1):
                yield pb2.HelloReply(message=f"Hello, {request.name}! ({i}/{STREAM_REPLIES})")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    host = args.listen.rsplit(":", 1)[0]
    port = server.add_insecure_port(args.listen)
    if port == 0:
        print(f"error: cannot listen on {args.listen}", file=sys.stderr)
        return 1
    server.start()
    print(f"listening on {host}:{port}", flush=True)

    stop = threading.Event()

    def stop_at_end_of_input():
        sys.stdin.read()
        stop.set()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    # SIGTERM as SIGINT: a KeyboardInterrupt in the main thread, which waits below.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(grace=1).wait()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    client = commands.add_parser("client", help="call helloworld.Greeter, traced")
    client.add_argument("--target", required=True, help="HOST:PORT")
    client.add_argument("--name", default="python")
    client.add_argument("--stream", action="store_true", help="call SayHelloStream")
    server = commands.add_parser("server", help="serve helloworld.Greeter, and report the spans")
    server.add_argument("--listen", required=True, help="HOST:PORT; port 0 picks a free one")
    for command in (client, server):
        command.add_argument("--propagator", required=True, choices=sorted(PROPAGATORS))
    args = parser.parse_args()

    # The instrumentation injects and extracts with the global propagator.
    propagate.set_global_textmap(PROPAGATORS[args.propagator]())
    if args.command == "client":
        return run_client(args)
    return run_server(args)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
