"""The HTTP control endpoint's rules: who may ask, what a request must look like, what each
path answers.

The endpoint lives on the proxy itself, at a host name that never resolves, so it needs no
second port and works in every mode::

    curl --proxy http://127.0.0.1:8080 http://graph-vcr-proxy.control/faults

``GET /faults`` lists the rules with their counters; ``POST`` adds rules and ``PUT`` replaces
them (a JSON list of spec strings, or one spec as a JSON string); ``DELETE`` removes them all.
The proxy the pytest plugin runs (``session.py``) serves two more paths: ``PUT /session``
switches what the proxy serves for the next test, ``GET /calls`` lists the current test's
Graph requests (the journal).

Whoever can send the proxy a request could reconfigure it, so the endpoint refuses, before
any path is looked at: clients that are not on a loopback address (403), requests from a web
page (an ``Origin`` header naming another site, or ``null``: a browser that uses this proxy
sends one with every cross-site POST; 403), and bodies that are not declared JSON (415: the
three content types a page may POST cross-site without asking first, ``text/plain`` among
them, are not JSON). A page that wants to send JSON must ask first (CORS preflight), and the
endpoint never says yes.

The addon that serves it is ``control_endpoint.py``; here are the pure parts: the checks,
and one handler per path, each from a :class:`ControlRequest` to a :class:`graph.Reply`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from mitmproxy import exceptions

from proxy_addons.common.control_address import FAULTS_PATH, HOST
from proxy_addons.graph.faults import FaultSpecError
from proxy_addons.graph.replies import (
    BAD_REQUEST,
    GENERAL_EXCEPTION,
    Reply,
    error_reply,
    json_reply,
)

PATH = FAULTS_PATH
ALLOWED = "GET, POST, PUT, DELETE"
# The largest body the endpoint reads: a list of fault specs or a session's arguments is a
# few hundred bytes; anything this big is a mistake or an attack, refused before parsing.
MAX_BODY = 1 << 20


class FaultControl(Protocol):
    def rule_table(self) -> list[dict[str, Any]]: ...
    def add_specs(self, specs: list[str]) -> None: ...
    def set_specs(self, specs: list[str]) -> None: ...
    def clear(self) -> None: ...


class SessionControl(Protocol):
    """What the pytest plugin's proxy adds to the endpoint (see ``session.py``)."""

    def apply(self, request: Any) -> dict[str, Any]: ...
    def calls(self) -> list[dict[str, Any]]: ...
    def unplayed(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Incoming:
    """A request to the control host, as the checks need it (read off the flow by the addon)."""

    method: str
    path: str  # without query or fragment, trailing "/" removed
    headers: Mapping[str, str]  # for the answer's echoed client-request-id
    loopback: bool
    origins: tuple[str, ...] = ()
    content_type: str | None = None
    body: bytes = b""


@dataclass(frozen=True)
class ControlRequest:
    """A request that passed every check: what a path's handler gets."""

    method: str
    path: str
    headers: Mapping[str, str]
    document: Any = None  # the body's JSON; None when there is no body


Handler = Callable[[ControlRequest], Reply]


class ControlRoutes(Protocol):
    """An addon that serves paths on the control endpoint: the endpoint asks each addon of
    the chain for its routes (``control_endpoint.py``)."""

    def control_routes(self) -> Mapping[str, Handler]: ...


# --- the checks ---------------------------------------------------------------------------


def is_loopback(peername: Any) -> bool:
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%")[0])
    except (ValueError, TypeError, IndexError):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def foreign_origin(origins: Sequence[str]) -> str | None:
    """The first ``Origin`` that is not the control host itself (``null`` included), or None.

    A client that is not a browser sends no Origin; a browser sends the page's, and the only
    page that may reconfigure the proxy is one the control host served (none, today)."""
    for origin in origins:
        try:
            host = urlsplit(origin.strip()).hostname
        except ValueError:
            return origin
        if host is None or host.rstrip(".") != HOST:
            return origin
    return None


def is_json_type(content_type: str | None) -> bool:
    """``application/json`` or ``application/*+json``, whatever its parameters and case."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def json_document(text: str | bytes) -> Any:
    """A control body's JSON; a ValueError (the endpoint's 400) for anything json.loads refuses,
    nesting too deep for it included ("[[[[..." raises RecursionError, which would otherwise
    escape the hook)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON body is nested too deeply") from None


def refusal(incoming: Incoming) -> Reply | None:
    """The answer to a request the endpoint refuses whatever its path; None if it may pass."""
    headers = incoming.headers
    if not incoming.loopback:
        return error_reply(403, "Forbidden", "The control endpoint serves loopback only.", headers)
    origin = foreign_origin(incoming.origins)
    if origin is not None:
        return error_reply(
            403,
            "Forbidden",
            f"The control endpoint refuses requests from web pages (Origin: {origin!r}).",
            headers,
        )
    if incoming.body and not is_json_type(incoming.content_type):
        return error_reply(
            415,
            "UnsupportedMediaType",
            "The control endpoint takes JSON bodies only, with Content-Type: application/json "
            f"(this one is {incoming.content_type or 'unlabelled'}).",
            headers,
        )
    if len(incoming.body) > MAX_BODY:
        return error_reply(
            413,
            "RequestEntityTooLarge",
            f"The control endpoint reads bodies of up to {MAX_BODY} bytes.",
            headers,
        )
    return None


def answer(incoming: Incoming, routes: Mapping[str, Handler]) -> Reply:
    """What the endpoint answers: a refusal, a 404 naming the paths served, or the path's
    handler's answer (a ValueError it raises is a 400)."""
    headers = incoming.headers
    refused = refusal(incoming)
    if refused is not None:
        return refused
    handler = routes.get(incoming.path)
    if handler is None:
        served = ", ".join(sorted(routes)) or "nothing (no addon serves a path)"
        return error_reply(
            404, "NotFound", f"The control endpoint serves {served}; not {incoming.path}.", headers
        )
    try:
        document = json_document(incoming.body) if incoming.body else None
        return handler(ControlRequest(incoming.method, incoming.path, headers, document))
    except ValueError as exc:  # bad JSON or UTF-8, a bad spec, a session the proxy refuses
        return error_reply(400, BAD_REQUEST, str(exc), headers)


def internal_error(exc: BaseException, headers: Mapping[str, str]) -> Reply:
    """The JSON 500 for anything the endpoint did not foresee, SystemExit included."""
    try:
        said = str(exc)
    except Exception:  # an exception that can't even say what it is
        said = "(no message)"
    message = f"graph-vcr-proxy: the control endpoint failed: {type(exc).__name__}: {said}"
    return error_reply(500, GENERAL_EXCEPTION, " ".join(message.split()), headers)


# --- the paths ------------------------------------------------------------------------------


def not_allowed(request: ControlRequest, allowed: str) -> Reply:
    return error_reply(
        405,
        "MethodNotAllowed",
        f"{request.method} is not allowed; use {allowed}.",
        request.headers,
        [("Allow", allowed)],
    )


def specs_of(document: Any) -> list[str]:
    """The specs a POST or PUT carries: a JSON list of strings, or one string."""
    specs = [document] if isinstance(document, str) else document
    if not isinstance(specs, list) or not all(isinstance(s, str) for s in specs):
        raise FaultSpecError('expected a JSON list of spec strings, e.g. ["throttle:times=1"]')
    return specs


def answer_faults(request: ControlRequest, faults: FaultControl) -> Reply:
    """``/faults``: GET lists, POST adds, PUT replaces, DELETE clears; each answers the list."""
    method = request.method
    try:
        if method in ("POST", "PUT"):
            specs = specs_of(request.document)
            (faults.add_specs if method == "POST" else faults.set_specs)(specs)
        elif method == "DELETE":
            faults.clear()
        elif method != "GET":
            return not_allowed(request, ALLOWED)
    except exceptions.OptionsError as exc:  # a rule an addon refused
        return error_reply(400, BAD_REQUEST, str(exc), request.headers)
    return json_reply(200, {"faults": faults.rule_table()}, request.headers)


def answer_session(request: ControlRequest, session: SessionControl) -> Reply:
    """``PUT /session``: a JSON object, see ``session.py``."""
    if request.method != "PUT":
        return not_allowed(request, "PUT")
    return json_reply(200, {"session": session.apply(request.document)}, request.headers)


def answer_calls(request: ControlRequest, session: SessionControl) -> Reply:
    """``GET /calls``: the current test's journal."""
    if request.method != "GET":
        return not_allowed(request, "GET")
    return json_reply(200, {"calls": session.calls()}, request.headers)


def answer_played(request: ControlRequest, session: SessionControl) -> Reply:
    """``GET /played``: the current test's recorded interactions it has not played yet."""
    if request.method != "GET":
        return not_allowed(request, "GET")
    return json_reply(200, {"unplayed": session.unplayed()}, request.headers)
