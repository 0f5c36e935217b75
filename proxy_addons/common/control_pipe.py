"""The pytest plugin's private line to its proxy child: the control endpoint's requests over
the child's standard input and output, one JSON line each way.

Switching the proxy before each test and reading its journal after were two HTTP requests
through mitmproxy per test; each cost the child about a millisecond of CPU in mitmproxy's
HTTP layers and in handing every hook of the flow to every addon of the chain, for a
request that needs none of them (profile of a 40-test run: a third of the child's time per
test that was not the test's own request). The plugin holds the only write end of the
child's stdin (the child already watches it, to stop when pytest ends), so what comes on it
is the plugin's: the same handlers answer (``control_rules.answer``, as a loopback JSON
request), without the HTTP around them. The endpoint on the proxy stays for everyone else.

A request is ``{"id": N, "method": ..., "path": ..., "body": JSON or null}`` on one line;
its answer, on stdout, is ``REPLY`` then ``{"id": N, "status": ..., "body": "..."}`` on one
line (the proxy's other output never holds ``REPLY``; the launcher finds it wherever it
starts, after output some code in the child left unended). Pure: no mitmproxy here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

REPLY = "graph-vcr-proxy control reply: "
# How every request line starts (``request_line``): its id can be read from a line that
# can't be read whole, or is too long to be.
_LEADING_ID = re.compile(rb'\s*\{\s*"id"\s*:\s*(\d+)\s*[,}]')


@dataclass(frozen=True)
class PipeRequest:
    id: int
    method: str
    path: str
    body: bytes  # the JSON document re-encoded, b"" for none: what an HTTP request carries


def request_line(request_id: int, method: str, path: str, document: Any = None) -> str:
    message = {"id": request_id, "method": method, "path": path, "body": document}
    return json.dumps(message, separators=(",", ":")) + "\n"


def parse_request(line: bytes | str) -> PipeRequest:
    """A request line; ValueError for anything else."""
    try:
        message = json.loads(line)
    except RecursionError:
        raise ValueError("the JSON line is nested too deeply") from None
    if not isinstance(message, dict):
        raise ValueError("expected a JSON object per line")
    request_id, method, path = message.get("id"), message.get("method"), message.get("path")
    if not isinstance(request_id, int) or not isinstance(method, str) or not isinstance(path, str):
        raise ValueError("expected id (an integer), method and path (strings)")
    document = message.get("body")
    body = b"" if document is None else json.dumps(document).encode()
    return PipeRequest(request_id, method, path, body)


def request_id_of(line: bytes | str) -> int:
    """The id of a request line that could not be read, so that its refusal reaches its
    sender (-1 when there is none)."""
    try:
        request_id = json.loads(line).get("id")
    except (ValueError, AttributeError, RecursionError):
        start = _LEADING_ID.match(line.encode() if isinstance(line, str) else line)
        return int(start.group(1)) if start else -1
    return request_id if isinstance(request_id, int) else -1


def reply_line(request_id: int, status: int, body: bytes) -> str:
    message = {"id": request_id, "status": status, "body": body.decode("utf-8", "replace")}
    return REPLY + json.dumps(message, separators=(",", ":")) + "\n"


def parse_reply(text: str) -> tuple[int, int, str]:
    """``(id, status, body)`` of a reply line's text after ``REPLY``; ValueError otherwise."""
    message = json.loads(text)
    request_id, status, body = message.get("id"), message.get("status"), message.get("body")
    if not isinstance(request_id, int) or not isinstance(status, int) or not isinstance(body, str):
        raise ValueError("not a control reply")
    return request_id, status, body
