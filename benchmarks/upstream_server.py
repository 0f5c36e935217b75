"""The local upstream of the recording row: answers every request with the documented 201.

    python benchmarks/upstream_server.py   # prints "listening on PORT", serves until killed

A small HTTP/1.1 server from the standard library, keep-alive, on 127.0.0.1 and a port the
OS picks. Both recorders of the row forward to this same server, so it costs them the same.
"""

from __future__ import annotations

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy_addons.cassette import examples

BODY = examples.RESPONSE_BODY.encode()


class Created(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Graph
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't hold one

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(201)
        for name, value in examples.RESPONSE_HEADERS.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_PUT = do_POST = do_GET = do_PATCH = _answer

    def log_message(self, format: str, *args: object) -> None:
        return  # a line per request would cost more than the answer


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Created)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
