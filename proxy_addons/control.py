"""The HTTP control endpoint: change fault rules on a running proxy with curl.

The endpoint lives on the proxy itself, at a host name that never resolves, so it needs no
second port and works in every mode::

    curl --proxy http://127.0.0.1:8080 http://graph-vcr-proxy.control/faults

``GET /faults`` lists the rules with their counters; ``POST`` adds rules and ``PUT`` replaces
them (a JSON list of spec strings, or plain text with one spec per line); ``DELETE`` removes
them all. Only clients on a loopback address are served: anyone who can reach the proxy from
elsewhere must not be able to reconfigure it.

The proxy the pytest plugin runs (``session.py``) serves two more paths: ``PUT /session``
switches what the proxy serves for the next test, ``GET /calls`` lists the current test's
Graph requests (the journal).
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Protocol

from mitmproxy import exceptions, http

from proxy_addons.control_api import CALLS_PATH, FAULTS_PATH, HOST, SESSION_PATH
from proxy_addons.faults import FaultSpecError
from proxy_addons.flows import to_response
from proxy_addons.graph import Reply, error_reply, json_reply

PATH = FAULTS_PATH
ALLOWED = "GET, POST, PUT, DELETE"


class FaultControl(Protocol):
    def rule_table(self) -> list[dict[str, Any]]: ...
    def add_specs(self, specs: list[str]) -> None: ...
    def set_specs(self, specs: list[str]) -> None: ...
    def clear(self) -> None: ...


class SessionControl(Protocol):
    """What the pytest plugin's proxy adds to the endpoint (see ``session.py``)."""

    @property
    def faults(self) -> FaultControl | None: ...
    def apply(self, request: Any) -> dict[str, Any]: ...
    def calls(self) -> list[dict[str, Any]]: ...


def is_control_request(flow: http.HTTPFlow) -> bool:
    return flow.response is None and flow.request.pretty_host.lower() == HOST


def is_loopback(peername: Any) -> bool:
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%")[0])
    except (ValueError, TypeError, IndexError):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def json_document(text: str | bytes) -> Any:
    """A control body's JSON; a ValueError (the endpoint's 400) for anything json.loads refuses,
    nesting too deep for it included ("[[[[..." raises RecursionError, which would otherwise
    escape the hook and leave the request to go on to the control host)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON body is nested too deeply") from None


def specs_in(body: bytes) -> list[str]:
    """The specs a POST or PUT carries: a JSON list (or string), else one per text line.

    The body decides, not Content-Type: ``curl -d`` labels plain text as a form.
    """
    text = body.decode("utf-8")
    if text.lstrip()[:1] in ("[", '"'):
        data = json_document(text)
        data = [data] if isinstance(data, str) else data
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise FaultSpecError("expected a JSON list of spec strings")
        return data
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def answer(
    flow: http.HTTPFlow, faults: FaultControl | None, session: SessionControl | None = None
) -> Reply:
    request = flow.request
    headers = request.headers
    if not is_loopback(flow.client_conn.peername):
        return error_reply(403, "Forbidden", "The control endpoint serves loopback only.", headers)
    path = request.path.split("?")[0].rstrip("/")
    if session is not None and path in (SESSION_PATH, CALLS_PATH):
        return answer_session(request, path, session)
    if path != PATH:
        return error_reply(404, "NotFound", f"The control endpoint is {PATH}.", headers)
    if faults is None:
        return error_reply(
            409, "NoSession", f"No test session yet: PUT {SESSION_PATH} first.", headers
        )
    try:
        if request.method == "GET":
            pass
        elif request.method in ("POST", "PUT"):
            specs = specs_in(request.raw_content or b"")
            (faults.add_specs if request.method == "POST" else faults.set_specs)(specs)
        elif request.method == "DELETE":
            faults.clear()
        else:
            return not_allowed(request, ALLOWED)
    except (ValueError, exceptions.OptionsError) as exc:  # bad spec, JSON or UTF-8
        return error_reply(400, "BadRequest", str(exc), headers)
    return json_reply(200, {"faults": faults.rule_table()}, headers)


def not_allowed(request: http.Request, allowed: str) -> Reply:
    return error_reply(
        405,
        "MethodNotAllowed",
        f"{request.method} is not allowed; use {allowed}.",
        request.headers,
        [("Allow", allowed)],
    )


def answer_session(request: http.Request, path: str, session: SessionControl) -> Reply:
    """``PUT /session`` (a JSON object, see ``session.py``) and ``GET /calls``."""
    headers = request.headers
    if path == CALLS_PATH:
        if request.method != "GET":
            return not_allowed(request, "GET")
        return json_reply(200, {"calls": session.calls()}, headers)
    if request.method != "PUT":
        return not_allowed(request, "PUT")
    try:
        applied = session.apply(json_document(request.raw_content or b"null"))
    except ValueError as exc:  # bad JSON, or a session the proxy refuses (SessionError)
        return error_reply(400, "BadRequest", str(exc), headers)
    return json_reply(200, {"session": applied}, headers)


def handle(
    flow: http.HTTPFlow, faults: FaultControl | None, session: SessionControl | None = None
) -> None:
    flow.response = to_response(answer(flow, faults, session))
    flow.metadata["graph_vcr_proxy.control"] = True
