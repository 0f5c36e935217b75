"""Graph-shaped responses: the headers Graph sends and its one-object error envelope.

Replay, record, the emulator and the fault injector all answer clients; they build their
answers here so that every answer carries the same headers a real Graph response does
(``request-id``, echoed ``client-request-id``, ``Date``...) and every error the same envelope.
The facts about Graph's answers that more than one module gives (the 401 challenge, the 412
for a stale change key) are written here once. A :class:`Reply` is plain data and nothing
here knows mitmproxy: ``flows.to_response`` is the one place that makes it a response.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, formatdate
from http import HTTPStatus
from typing import Any

JSON = "application/json"
# The region/scale-unit string real Graph sends; clients log it, none parse it.
AGS_DIAGNOSTIC = (
    '{"ServerInfo":{"DataCenter":"Local","Slice":"E","Ring":"5","ScaleUnit":"000",'
    '"RoleInstance":"graph-vcr-proxy"}}'
)
# What Graph sends with a 401, so clients that read the challenge find one.
AUTH_CHALLENGE = (
    "WWW-Authenticate",
    'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/'
    'authorize", client_id="00000003-0000-0000-c000-000000000000"',
)
# Real Graph's 412 for an Exchange-backed item whose change key (the ETag) moved on.
CONFLICT_CODE = "ErrorIrresolvableConflict"
CONFLICT_MESSAGE = (
    "The send or update operation could not be performed because the change key passed in "
    "the request does not match the current change key for the item."
)
# Graph's code for a 500 that says nothing more specific, for a 400, and for a 401.
GENERAL_EXCEPTION = "generalException"
BAD_REQUEST = "BadRequest"
INVALID_AUTHENTICATION_TOKEN = "InvalidAuthenticationToken"


@dataclass(frozen=True)
class Reply:
    """A complete HTTP answer: status, headers (in order, repeatable) and body bytes.

    ``body`` is what goes on the wire, encoded as a Content-Encoding header says it is.
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    reason: str = field(default="")

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


def new_request_id() -> str:
    """A random (version 4) GUID, as Graph's ``request-id``: ``uuid.uuid4()``'s bits, written
    straight from the bytes (every answer makes one; the UUID object is work for nothing)."""
    h = os.urandom(16).hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


def graph_date(now: datetime | None = None) -> str:
    if now is None:
        return _http_date(int(time.time()))  # every answer has one: made once a second
    return format_datetime(now, usegmt=True)


@functools.lru_cache(maxsize=1)
def _http_date(second: int) -> str:
    return formatdate(second, usegmt=True)


class FoldedHeaders(dict[str, str]):
    """Headers by lowercase name, a repeated one's values joined with ", " as HTTP folds
    them: a request's headers read once, then each looked up in one step, however many
    answers and checks ask (``flows.request_headers``)."""

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> FoldedHeaders:
        folded = cls()
        for name, value in pairs:
            key = name.lower()
            folded[key] = f"{folded[key]}, {value}" if key in folded else value
        return folded


def header_value(headers: Mapping[str, str] | Iterable[tuple[str, str]], name: str) -> str | None:
    """A header by lowercase name from a mapping or a list of pairs, whatever its case."""
    if isinstance(headers, FoldedHeaders):
        return headers.get(name)
    if isinstance(headers, dict):  # a plain dict is case-sensitive: search it by name
        return next((v for k, v in headers.items() if k.lower() == name), None)
    if isinstance(headers, Mapping):
        # Every other header mapping (mitmproxy's, httpx's, vcrpy's) ignores case: ask it.
        # Never through items(): mitmproxy's looks each name up again, all of them each time.
        return headers.get(name)
    return next((v for k, v in headers if k.lower() == name), None)


# The longest client-request-id echoed back. Graph's clients send a GUID (36 characters); a
# value much longer, say 100 KB, would make the answer's header block more than many clients
# read (h11, under httpx, stops at 16 KB) and turn a good answer into a protocol error.
MAX_ECHOED_ID = 256
# Visible ASCII, spaces only inside: what a header value carries safely, byte for byte.
_ECHOABLE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")


def client_request_id(request_headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """The client's request id as it may be echoed, or None as if none had been sent.

    A value with a line break or NUL in it (a client smuggling a header of its own into the
    answer), bytes that are not text, or an oversized value is never sent back.
    """
    value = header_value(request_headers, "client-request-id")
    if value and len(value) <= MAX_ECHOED_ID and _ECHOABLE.fullmatch(value):
        return value
    return None


def response_headers(
    request_headers: Mapping[str, str] | Iterable[tuple[str, str]],
    *,
    request_id: str | None = None,
    content_type: str | None = JSON,
) -> list[tuple[str, str]]:
    """The headers every Graph response carries, with the client's request id echoed."""
    headers = [("Cache-Control", "no-store")]
    if content_type:
        headers.append(("Content-Type", content_type))
    headers.append(("request-id", request_id or new_request_id()))
    echoed = client_request_id(request_headers)
    if echoed:
        headers.append(("client-request-id", echoed))
    headers += [("x-ms-ags-diagnostic", AGS_DIAGNOSTIC), ("Date", graph_date())]
    return headers


# Headers that identify one particular response or connection; replay makes them fresh.
PER_RESPONSE_HEADERS = frozenset(
    {
        "request-id",
        "client-request-id",
        "date",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
    }
)


# What a refreshed answer never keeps from the recording: the per-response headers, and those
# every Graph answer carries (response_headers), which are sent fresh instead.
_REFRESHED = PER_RESPONSE_HEADERS | {
    name.lower() for name, _ in response_headers({"client-request-id": "-"}, content_type=None)
}


def refresh_headers(
    recorded: Iterable[tuple[str, str]], request_headers: Mapping[str, str]
) -> list[tuple[str, str]]:
    """Recorded headers with the per-response ones made new, the way Graph would send them."""
    kept = [(k, v) for k, v in recorded if k.lower() not in _REFRESHED]
    return kept + response_headers(request_headers, content_type=None)


def error_body(
    code: str,
    message: str,
    *,
    request_id: str,
    client_request_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    inner = {
        "date": (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    return {"error": {"code": code, "message": message, "innerError": inner}}


def json_reply(
    status: int,
    payload: Any,
    request_headers: Mapping[str, str],
    extra_headers: Iterable[tuple[str, str]] = (),
    *,
    request_id: str | None = None,
) -> Reply:
    headers = response_headers(request_headers, request_id=request_id)
    return Reply(
        status=status,
        headers=(*headers, *extra_headers),
        body=json.dumps(payload).encode(),
        reason=reason_phrase(status),
    )


def empty_reply(
    status: int,
    request_headers: Mapping[str, str],
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Reply:
    headers = response_headers(request_headers, content_type=None)
    return Reply(status=status, headers=(*headers, *extra_headers), reason=reason_phrase(status))


def error_reply(
    status: int,
    code: str,
    message: str,
    request_headers: Mapping[str, str],
    extra_headers: Iterable[tuple[str, str]] = (),
) -> Reply:
    """A Graph error: the envelope, with innerError ids that match the response headers."""
    request_id = new_request_id()
    body = error_body(
        code,
        message,
        request_id=request_id,
        client_request_id=client_request_id(request_headers),
    )
    return json_reply(status, body, request_headers, extra_headers, request_id=request_id)


def format_seconds(seconds: float) -> str:
    """A Retry-After value: whole seconds as an integer, else up to milliseconds (``2.128``)."""
    if float(seconds).is_integer():
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def reason_phrase(status: int) -> str:
    """The standard reason for a status, or empty for one HTTP does not name."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
