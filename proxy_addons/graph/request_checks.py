"""Checks every addon runs on a request to one of our routes before anything else.

Graph refuses a malformed request before it looks anything up, so the proxy does too: a wrong
method, a body that is too large, a wrong Content-Type, non-UTF-8 bytes or malformed JSON each
get Graph's own status and error code, and no cassette lookup, upstream call or fault happens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph.replies import BAD_REQUEST, JSON, Reply, error_reply, header_value
from proxy_addons.graph.routes import ALLOWED_METHODS, Route

# Graph refuses request bodies over 4 MB on most resources.
MAX_BODY_BYTES = 4 * 1024 * 1024
_METHODS_WITH_BODY = frozenset({"PUT", "PATCH", "POST"})


def check_request(
    route: Route, headers: Mapping[str, str], body: JsonBody | bytes | None
) -> Reply | None:
    """The Graph error this request earns before any lookup, or None when it is well formed.

    ``body`` may come already read (``flows.body_of``): its JSON is then parsed once for
    these checks, matching and validation alike.
    """
    if not _url_is_text(route):
        return error_reply(
            400,
            BAD_REQUEST,
            "Invalid request URL: its path or query holds bytes that are not UTF-8; "
            "percent-encode them.",
            headers,
        )
    if route.operation is None:
        allowed = ", ".join(ALLOWED_METHODS[route.resource])
        return error_reply(
            405,
            "Request_BadRequest",
            f"Specified HTTP method is not allowed for the request target. Allowed: {allowed}.",
            headers,
            extra_headers=[("Allow", allowed)],
        )
    body = JsonBody.of(body)
    size = len(body.raw) if body.raw is not None else 0
    if body.over_limit or size > MAX_BODY_BYTES:
        return error_reply(
            413,
            "RequestEntityTooLarge",
            f"The request body is larger than the limit of {MAX_BODY_BYTES} bytes"
            + (" once decoded." if body.over_limit else f" ({size} bytes)."),
            headers,
        )
    if route.method not in _METHODS_WITH_BODY or body.empty:
        return None
    content_type = header_value(headers, "content-type") or ""
    if content_type.split(";")[0].strip().lower() != JSON:
        return error_reply(
            415,
            "UnsupportedMediaType",
            f"Content-Type {content_type or '(none)'!r} is not supported; send application/json.",
            headers,
        )
    error = body.error
    if isinstance(error, UnicodeDecodeError):
        return error_reply(
            400,
            BAD_REQUEST,
            f"The request body is not valid UTF-8 (byte {error.start}).",
            headers,
        )
    if isinstance(error, json.JSONDecodeError):
        return _unreadable(f"{error.msg} at line {error.lineno} column {error.colno}", headers)
    if isinstance(error, RecursionError):
        return _unreadable("nested too deeply", headers)
    if error is not None:  # Python's limit on the digits of one integer (4300 by default)
        return _unreadable("a number has too many digits", headers)
    if not isinstance(body.document, dict):
        # Every body our routes take is one JSON object; Graph refuses anything else.
        kind = type(body.document).__name__
        return _unreadable(f"the body is a JSON {kind}, not an object", headers)
    return None


def _url_is_text(route: Route) -> bool:
    """False for a URL sent with raw bytes that are not UTF-8 (mitmproxy hands them on as
    surrogate escapes): no id or query value of Graph's can be such bytes, and nothing that
    stores or hashes the URL could encode it."""
    parts = (
        route.meeting_id or "",
        route.join_web_url or "",
        route.user or "",
        *(text for pair in route.query for text in pair),
    )
    if all(part.isascii() for part in parts):
        return True
    try:
        "".join(parts).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unreadable(reason: str, headers: Mapping[str, str]) -> Reply:
    return error_reply(
        400,
        BAD_REQUEST,
        "Unable to read JSON request payload. Please ensure Content-Type header is set "
        f"and payload is of valid JSON format. ({reason})",
        headers,
    )
