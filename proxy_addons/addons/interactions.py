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

from proxy_addons.cassette import cassette
from proxy_addons.cassette.redaction import Placeholders, RedactionRules, Side, redact_exchange
from proxy_addons.common import content_encoding
from proxy_addons.graph.replies import reason_phrase

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
    if text.isascii() and text.isprintable():
        return text  # nearly every header: nothing to change
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("latin-1")
    return _UNSTORABLE.sub(" ", text)


def stored_side(message: http.Message) -> Side:
    """A request's or response's headers and body as the client library saw them, before
    redaction and framing: what vcrpy stores by default under httpx. A compressed body keeps
    its bytes and its Content-Encoding, so a replay sends what the recording received;
    redaction and validation read it decoded (:func:`readable`).
    """
    return Side(header_lists(message.headers), message.raw_content or b"")


def _encoding(side: Side) -> str | None:
    return content_encoding.header_of((k, v) for k, vs in side.headers.items() for v in vs)


def readable(side: Side) -> Side:
    """``side`` with its body as the application reads it: decoded if it is encoded."""
    return Side(side.headers, content_encoding.readable(side.body, _encoding(side)))


def decoded(side: Side) -> Side:
    """``side`` stored decoded, without the Content-Encoding its body no longer has: vcrpy's
    ``decode_compressed_response``. A body that does not decode is kept as it came."""
    examined = content_encoding.examine(side.body, _encoding(side))
    if examined.form is not content_encoding.Form.ENCODED:
        return side
    headers = {k: v for k, v in side.headers.items() if k.lower() != content_encoding.HEADER}
    return Side(headers, examined.content)


def restored(original: Side, redacted: Side) -> Side:
    """``redacted`` (worked on :func:`readable` content) in the form ``original`` came in:
    the original bytes when redaction left the content as it was; otherwise the redacted
    content, encoded again with the original's codings if the original was encoded, so a
    stored body and its Content-Encoding always agree and no secret survives compressed.
    """
    header = _encoding(original)
    examined = content_encoding.examine(original.body, header)
    if redacted.body == examined.content:
        return Side(redacted.headers, original.body)
    if examined.form is content_encoding.Form.ENCODED:
        body = content_encoding.encode(redacted.body, content_encoding.codings(header))
        return Side(redacted.headers, body)
    return redacted


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
    """One interaction, redacted and framed, as the YAML block appended to the cassette.

    Redaction works on the decoded bodies; a compressed body it changed is compressed again.
    """
    uri, request, redacted = redact_exchange(
        sent.uri, readable(sent.side), readable(response), rules, placeholders
    )
    request = framed(restored(sent.side, request))
    response = framed(restored(response, redacted))
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
