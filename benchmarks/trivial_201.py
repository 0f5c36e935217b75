"""The trivial peer: a mitmproxy addon that answers every request with the same fixed 201.

    mitmdump -s benchmarks/trivial_201.py --set connection_strategy=lazy

It answers with the bytes replay sends for the documented create (its status, body and
header names; fixed values where replay makes them fresh), built once, so what differs
between the two is only the work done per request, not what goes over the wire or what
the client has to read. It is the floor any addon that answers from Python can reach on
the same mitmproxy.
"""

from __future__ import annotations

from mitmproxy import http

from proxy_addons.cassette import examples
from proxy_addons.graph.replies import response_headers

BODY = examples.RESPONSE_BODY.encode()
HEADERS = [
    (name.encode(), value.encode())
    for name, value in [
        ("Content-Type", "application/json"),
        *response_headers({}, request_id="00000000-0000-0000-0000-000000000000", content_type=None),
    ]
]


def request(flow: http.HTTPFlow) -> None:
    flow.response = http.Response.make(201, BODY, HEADERS)
