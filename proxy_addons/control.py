"""The HTTP control endpoint: change fault rules on a running proxy with curl.

The endpoint lives on the proxy itself, at a host name that never resolves, so it needs no
second port and works in every mode::

    curl --proxy http://127.0.0.1:8080 http://graph-vcr-proxy.control/faults

``GET /faults`` lists the rules with their counters; ``POST`` adds rules and ``PUT`` replaces
them (a JSON list of spec strings, or plain text with one spec per line); ``DELETE`` removes
them all. Only clients on a loopback address are served: anyone who can reach the proxy from
elsewhere must not be able to reconfigure it.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Protocol

from mitmproxy import exceptions, http

from proxy_addons.faults import FaultSpecError
from proxy_addons.flows import to_response
from proxy_addons.graph import Reply, error_reply, json_reply

HOST = "graph-vcr-proxy.control"
PATH = "/faults"
ALLOWED = "GET, POST, PUT, DELETE"


class FaultControl(Protocol):
    def rule_table(self) -> list[dict[str, Any]]: ...
    def add_specs(self, specs: list[str]) -> None: ...
    def set_specs(self, specs: list[str]) -> None: ...
    def clear(self) -> None: ...


def is_control_request(flow: http.HTTPFlow) -> bool:
    return flow.response is None and flow.request.pretty_host.lower() == HOST


def is_loopback(peername: Any) -> bool:
    try:
        address = ipaddress.ip_address(str(peername[0]).split("%")[0])
    except (ValueError, TypeError, IndexError):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def specs_in(body: bytes) -> list[str]:
    """The specs a POST or PUT carries: a JSON list (or string), else one per text line.

    The body decides, not Content-Type: ``curl -d`` labels plain text as a form.
    """
    text = body.decode("utf-8")
    if text.lstrip()[:1] in ("[", '"'):
        try:
            data = json.loads(text)
        except RecursionError:  # "[[[[...": refused like any other JSON that isn't specs
            raise FaultSpecError("expected a JSON list of spec strings") from None
        data = [data] if isinstance(data, str) else data
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise FaultSpecError("expected a JSON list of spec strings")
        return data
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def answer(flow: http.HTTPFlow, faults: FaultControl) -> Reply:
    request = flow.request
    headers = request.headers
    if not is_loopback(flow.client_conn.peername):
        return error_reply(403, "Forbidden", "The control endpoint serves loopback only.", headers)
    if request.path.split("?")[0].rstrip("/") != PATH:
        return error_reply(404, "NotFound", f"The control endpoint is {PATH}.", headers)
    try:
        if request.method == "GET":
            pass
        elif request.method in ("POST", "PUT"):
            specs = specs_in(request.raw_content or b"")
            (faults.add_specs if request.method == "POST" else faults.set_specs)(specs)
        elif request.method == "DELETE":
            faults.clear()
        else:
            return error_reply(
                405,
                "MethodNotAllowed",
                f"{request.method} is not allowed; use {ALLOWED}.",
                headers,
                [("Allow", ALLOWED)],
            )
    except (ValueError, exceptions.OptionsError) as exc:  # bad spec, JSON or UTF-8
        return error_reply(400, "BadRequest", str(exc), headers)
    return json_reply(200, {"faults": faults.rule_table()}, headers)


def handle(flow: http.HTTPFlow, faults: FaultControl) -> None:
    flow.response = to_response(answer(flow, faults))
    flow.metadata["graph_vcr_proxy.control"] = True
