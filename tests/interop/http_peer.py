"""An independent peer for the HTTP interop tests (tests/tests/interop_http.rs).

It propagates trace context with the OpenTelemetry Python SDK's own propagators, never with
anything of this workspace, so that the tests check our formats against another
implementation of them:

    http_peer.py client --url URL --propagator FORMAT [--name NAME]
    http_peer.py server --propagator FORMAT

FORMAT is one of tracecontext, b3 (single header), b3multi, jaeger.

client: starts a CLIENT span, injects its context with FORMAT into the headers of
    GET URL/hello?name=NAME, and prints one JSON line:
    {"trace_id", "span_id", "headers" (those injected), "status", "body"}.
    Exits 1 if the server cannot be reached.

server: serves HTTP/1.1 on 127.0.0.1 on a free port, prints `listening on 127.0.0.1:PORT`,
    then for each request extracts the caller's context with FORMAT, starts a SERVER span as
    its child, and prints one JSON line: {"method", "path", "headers" (the propagation headers
    received), "parent" ({"trace_id", "span_id", "sampled", "remote"}, or null when nothing
    valid was extracted), "trace_id", "span_id"}. GET /hello?name=NAME answers
    {"message": "Hello, NAME!"}; other paths 404. Runs until its standard input is closed,
    or SIGINT/SIGTERM.

Needs the packages of requirements.txt beside this file (tests/interop/setup.sh installs them).
"""

import argparse
import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.jaeger import JaegerPropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATORS = {
    "tracecontext": TraceContextTextMapPropagator,
    "b3": B3SingleFormat,
    "b3multi": B3MultiFormat,
    "jaeger": JaegerPropagator,
}

# The headers of every format above, reported by the server so that the tests can check
# which formats the caller sent.
PROPAGATION_HEADERS = {
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
    "uber-trace-id",
}
BAGGAGE_PREFIXES = ("baggage", "uberctx-")

TIMEOUT_SECONDS = 30

# Spans are not exported: what matters is the ids, which are printed.
tracer = TracerProvider().get_tracer("http_peer")


# The server's handlers run on threads of their own.
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


def run_client(args, propagator):
    name = urllib.parse.quote(args.name)
    url = f"{args.url.rstrip('/')}/hello?name={name}"
    with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT) as span:
        headers = {}
        propagator.inject(headers)
        request = urllib.request.Request(url, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            print(f"error: cannot reach {args.url}: {error}", file=sys.stderr)
            return 1
        print_line(
            {
                **span_ids(span.get_span_context()),
                "headers": headers,
                "status": status,
                "body": body.decode("utf-8", "replace"),
            }
        )
    return 0


def make_handler(propagator):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            # Header names are case-insensitive; the propagators look them up in lower case.
            carrier = {name.lower(): value for name, value in self.headers.items()}
            parent_context = propagator.extract(carrier)
            parent = trace.get_current_span(parent_context).get_span_context()
            url = urllib.parse.urlsplit(self.path)
            with tracer.start_as_current_span(
                f"GET {url.path}", context=parent_context, kind=SpanKind.SERVER
            ) as span:
                print_line(
                    {
                        "method": self.command,
                        "path": url.path,
                        "headers": {
                            name: value
                            for name, value in carrier.items()
                            if name in PROPAGATION_HEADERS or name.startswith(BAGGAGE_PREFIXES)
                        },
                        "parent": {
                            **span_ids(parent),
                            "sampled": parent.trace_flags.sampled,
                            "remote": parent.is_remote,
                        }
                        if parent.is_valid
                        else None,
                        **span_ids(span.get_span_context()),
                    }
                )
                if url.path == "/hello":
                    query = urllib.parse.parse_qs(url.query)
                    name = query.get("name", ["world"])[0]
                    self.answer(200, {"message": f"Hello, {name}!"})
                else:
                    self.answer(404, {"message": f"no route {url.path}"})

        def answer(self, status, value):
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            # stdout is for the test; the access log is noise.
            pass

    return Handler


def run_server(propagator):
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(propagator))
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)

    def stop_at_end_of_input():
        sys.stdin.read()
        server.shutdown()

    threading.Thread(target=stop_at_end_of_input, daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    client = commands.add_parser("client", help="call GET URL/hello with a propagated context")
    client.add_argument("--url", required=True)
    client.add_argument("--name", default="python")
    server = commands.add_parser("server", help="serve and report the extracted contexts")
    for command in (client, server):
        command.add_argument("--propagator", required=True, choices=sorted(PROPAGATORS))
    args = parser.parse_args()

    propagator = PROPAGATORS[args.propagator]()
    if args.command == "client":
        return run_client(args, propagator)
    return run_server(propagator)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
