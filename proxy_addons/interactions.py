"""How one exchange becomes one vcrpy interaction: what is stored, redacted and framed.

Pure functions from what the client sent and what came back to the YAML block a cassette
holds, shared by the recorder and by every import (HAR, mitmproxy flows, Dev Proxy mocks),
so an imported interaction is stored exactly as a recorded one would be.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from mitmproxy import http
from vcr.request import Request

from proxy_addons import cassette
from proxy_addons.graph import reason_phrase
from proxy_addons.redaction import Placeholders, RedactionRules, Side, redact_exchange

# Headers that describe one connection, not the interaction: never stored.
_CONNECTION = frozenset({"connection", "keep-alive"})
# Headers that frame a body on the wire: stored as one Content-Length that fits (``framed``).
_LENGTH_FRAMING = frozenset({"content-length", "transfer-encoding"})


class Sent(NamedTuple):
    """The request as the client sent it, before any upstream rewrite."""

    method: str
    uri: str
    side: Side


def header_lists(headers: http.Headers) -> dict[str, list[str]]:
    """Headers as vcrpy stores them: each name once (first spelling), all its values, each as
    a cassette can hold it (:func:`storable`). A name that is not an HTTP token can't be
    stored at all and is left out: headers are never matched, and one such name would make
    the whole cassette unloadable."""
    out: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in headers.items(multi=True):
        if _TOKEN.match(name):
            out.setdefault(spelling.setdefault(name.lower(), name), []).append(storable(value))
    return out


_TOKEN = re.compile(cassette.TOKEN)
_UNSTORABLE = re.compile(r"[\r\n\x00]+[ \t]*")


def storable(text: str) -> str:
    """Header text as one line a cassette holds: bytes that were not UTF-8 (which mitmproxy
    keeps as surrogate escapes) read as Latin-1, as HTTP/1.1 reads them, and each run of CR,
    LF and NUL with the blanks after it (a folded line, or a client smuggling in a header of
    its own) one space."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("latin-1")
    return _UNSTORABLE.sub(" ", text)


def stored_side(message: http.Message) -> Side:
    """A request's or response's headers and body as stored, before redaction and framing.

    Like vcrpy's ``decode_compressed_response``, a gzip/deflate/br/zstd body is stored
    decoded, so it loses its Content-Encoding: a header still saying gzip over a decoded body
    would make every client that replays it fail to decode. A body that does not decode is
    stored as it came, with its Content-Encoding. For a request this is the body
    ``flows.request_body`` gives validation and matching.
    """
    try:
        body = message.get_content(strict=True) or b""
        decoded = "content-encoding" in message.headers
    except ValueError:
        body, decoded = message.raw_content or b"", False
    headers = header_lists(message.headers)
    if decoded:
        headers = {k: v for k, v in headers.items() if k.lower() != "content-encoding"}
    return Side(headers, body)


def stored_response(response: http.Response) -> tuple[int, str, Side]:
    """Status, reason and the response as :func:`stored_side` stores it."""
    reason = storable(response.reason or reason_phrase(response.status_code))
    return response.status_code, reason, stored_side(response)


def framed(side: Side) -> Side:
    """``side`` as written: connection headers dropped, Content-Length stating its body.

    Runs last, after redaction, because redaction changes bodies: clients that replay a
    cassette (vcrpy under requests or httpx) hand the stored Content-Length on as it is,
    so it must be the length of the body stored next to it. A message framed by length or
    chunks gets one Content-Length, where its first framing header was; one that had none
    (a GET, a 204) gets none.
    """
    headers: dict[str, list[str]] = {}
    length = [str(len(side.body))]
    has_length = False
    for name, values in side.headers.items():
        lower = name.lower()
        if lower in _LENGTH_FRAMING:
            if not has_length:
                headers["Content-Length" if lower == "transfer-encoding" else name] = length
                has_length = True
        elif lower not in _CONNECTION:
            headers[name] = values
    return Side(headers, side.body)


def interaction_block(
    sent: Sent,
    status: int,
    reason: str,
    response: Side,
    rules: RedactionRules,
    placeholders: Placeholders,
) -> str:
    """One interaction, redacted and framed, as the YAML block appended to the cassette."""
    uri, request, response = redact_exchange(sent.uri, sent.side, response, rules, placeholders)
    request, response = framed(request), framed(response)
    joined = {
        name: ("; " if name.lower() == "cookie" else ", ").join(values)
        for name, values in request.headers.items()
    }
    return cassette.interaction_yaml(
        Request(sent.method, uri, request.body or None, joined),
        {
            "status": {"code": status, "message": reason},
            "headers": response.headers,
            "body": {"string": response.body},
        },
    )
