"""What every addon reads from and writes to a mitmproxy flow, done one way for all of them.

Several addons may be loaded together (faults before replay, replay inside record...). The
rules that keep them from stepping on each other live here: a flow is ours only if its URL is
one of our routes; the first addon to answer a flow wins and later ones leave it alone; and
each answer is tagged with who gave it, which the recorder and the summary read. (A request
Graph would refuse outright is refused by a step of its own, ``request_checks.py``, before any
addon that would look it up.)

A flow's route is read from where the request really goes: the host mitmproxy dials (the
``CONNECT`` authority inside a tunnel, an absolute-form URL's host, a reverse proxy's target),
never from the ``Host`` header alone, which the client may set to anything. The gate
(``gate.py``) classifies each flow first (:func:`traffic_of`) and refuses a ``Host`` header
that disagrees with a Graph target.

What every addon needs of a request (its headers, its route, its decoded body and that
body's JSON) is worked out once per flow and shared (:func:`request_headers`,
:func:`route_of`, :func:`body_of`, :func:`shape_of`).
It is kept beside the flow, not in ``flow.metadata``: mitmproxy saves metadata with the flow
(``mitmdump -w``, mitmweb's File > Save), and its flow format holds only plain values, so
everything we put in ``metadata`` is a str, bool, number, or a list or dict of them.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode
from vcr.request import Request

from proxy_addons.cassette.matching import Shape, route_shape, shape
from proxy_addons.common import content_encoding
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph import traffic
from proxy_addons.graph.models import Problem
from proxy_addons.graph.replies import GENERAL_EXCEPTION, FoldedHeaders, Reply, error_reply
from proxy_addons.graph.request_checks import MAX_BODY_BYTES
from proxy_addons.graph.routes import Route, graph_host, parse_parts
from proxy_addons.graph.traffic import Target, Traffic

# flow.metadata keys, each holding plain values only (see above). The summary and the web
# tags read them; each addon writes only its own.
ANSWERED_BY = "graph_vcr_proxy.answered_by"  # an AnsweredBy (a str); absent: upstream answered
RECORDED = "graph_vcr_proxy.recorded"  # True once the recorder has the interaction on disk
PROBLEMS = "graph_vcr_proxy.problems"  # validation's findings: see add_problems, problems
FAULT = "graph_vcr_proxy.fault"  # the kind of the fault injected into this flow
FAULTS_INJECTED = "graph_vcr_proxy.faults_injected"  # every kind injected, in order
# The ETag the proxy last saw for the appointment a conditional write addresses (a str), put
# there by the ETag tracker for the fault rules' staleness condition.
KNOWN_ETAG = "graph_vcr_proxy.known_etag"
REPLAYED = "graph_vcr_proxy.replayed"  # (cassette path, interaction index) replay answered with
TRAFFIC = "graph_vcr_proxy.traffic"  # a traffic.Traffic (a str): what the flow is to us
# The response headers a fault set on an answer it did not give (the ratelimit fault's
# RateLimit-*), each with the values the answer had before (a dict of name to list of str):
# the client sees the fault's, the recorder the giver's (upstream_response).
FAULT_HEADERS = "graph_vcr_proxy.fault_headers"
# A request run from inside a JSON $batch: {"batch": the batch flow's id, "id": the request's
# id in the batch, "path": its path}; on the batch call itself, {"requests": how many}.
BATCH = "graph_vcr_proxy.batch"
GUIDANCE = "graph_vcr_proxy.guidance"  # with --guidance: each guidance.Advice (a str) it earned

logger = logging.getLogger(__name__)
Hook = TypeVar("Hook", bound=Callable[..., Any])


class _Parsed:
    """What is worked out once about one flow's request: its headers and route at once,
    its body when first asked for."""

    __slots__ = ("_body", "_request", "headers", "port", "route", "scheme")

    def __init__(self, request: http.Request) -> None:
        self._request = request
        pairs = [
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in request.headers.fields
        ]
        headers = FoldedHeaders((name.lower(), value) for name, value in pairs)
        self.headers = headers if len(headers) == len(pairs) else FoldedHeaders.of(pairs)
        self.route = _route(request)
        # Where the client sent it, kept as the route is: the recorder's --upstream rewrites
        # the request's scheme and port before its response is matched to old recordings.
        self.scheme, self.port = request.scheme, request.port
        self._body: JsonBody | None = None

    @property
    def body(self) -> JsonBody:
        if self._body is None:
            request = self._request
            # request_body's answer; without a Content-Encoding, that is the bytes as they came
            if self.headers.get("content-encoding"):
                body, over_limit = _read_body(request)
                self._body = JsonBody(body, over_limit=over_limit)
            else:
                self._body = JsonBody(request.raw_content)
        return self._body


# Beside each flow while it lives, gone with it; a copy of a flow (mitmproxy's replay,
# duplicate) works its own out again.
_parsed: weakref.WeakKeyDictionary[http.HTTPFlow, _Parsed] = weakref.WeakKeyDictionary()


def _parsed_of(flow: http.HTTPFlow) -> _Parsed:
    found = _parsed.get(flow)
    if found is None:
        found = _parsed[flow] = _Parsed(flow.request)
    return found


def _route(request: http.Request) -> Route | None:
    """``routes.parse`` of the request as it will be sent: the host mitmproxy dials (inside
    a ``CONNECT`` tunnel, the tunnel's; in absolute form, the URL's) in its canonical
    spelling, and the path and query from the parts mitmproxy holds (joining them into a URL
    only to split it again would be wasted work on every request).
    """
    host = graph_host(request.host)
    if host is None:
        return None
    # As urlsplit reads a URL: a fragment first (nothing after "#" is path or query), then
    # the query.
    target, _, query = request.path.partition("#")[0].partition("?")
    return parse_parts(request.method, host, target, query)


def route_of(flow: http.HTTPFlow) -> Route | None:
    """The flow's route, parsed once per flow: the first addon to ask fixes it, so a later
    rewrite of the request (the recorder's ``--upstream``) leaves it as the client sent it."""
    return _parsed_of(flow).route


def traffic_of(flow: http.HTTPFlow) -> Traffic:
    """What the flow is to us (:class:`traffic.Traffic`), decided once from its route and the
    host it goes to, and kept in its metadata: the gate decides it first, before any addon
    (ours or a user's) could redirect the request."""
    found = flow.metadata.get(TRAFFIC)
    if found is None:
        found = flow.metadata[TRAFFIC] = traffic.classify(
            flow.request.host, route_of(flow) is not None
        )
    return Traffic(found)


def target_of(flow: http.HTTPFlow) -> Target:
    """Where the request goes and every name the client gave for it: its TLS SNI, each
    ``Host`` header and HTTP/2's ``:authority``."""
    request = flow.request
    names: list[str] = []
    if request.authority and request.method != "CONNECT":
        names.append(traffic.authority_host(request.authority))
    names += (traffic.authority_host(value) for value in request.headers.get_all("host"))
    reverse = isinstance(flow.client_conn.proxy_mode, ReverseMode)
    return Target(request.host, flow.client_conn.sni or None, tuple(names), reverse)


def request_headers(flow: http.HTTPFlow) -> FoldedHeaders:
    """The request's headers as the client sent them, read once per flow: what the request
    checks and every answer (the echoed ``client-request-id``) look up."""
    return _parsed_of(flow).headers


def request_body(request: http.Request) -> bytes | None:
    """The body as the client meant it: decoded as its Content-Encoding says (Kiota's
    compression handler sends gzip), an undecodable one as it came."""
    return _read_body(request)[0]


def _read_body(request: http.Request) -> tuple[bytes | None, bool]:
    """The body as :func:`request_body` gives it, and whether it decodes past Graph's size
    limit. Decoding is a stream that stops at the limit (a 1 MB gzip bomb is never inflated
    to its 1 GB); such a body is left as it came, for the checks to answer 413."""
    raw = request.raw_content
    names = content_encoding.codings(request.headers.get(content_encoding.HEADER))
    if not raw or not names:
        return raw, False
    try:
        return content_encoding.decode(raw, names, limit=MAX_BODY_BYTES), False
    except content_encoding.TooLarge:
        return raw, True
    except ValueError:
        return raw, False


def body_of(flow: http.HTTPFlow) -> JsonBody:
    """The flow's request body (as :func:`request_body` gives it), decoded and read as JSON
    once per flow, for the request checks, matching and validation alike."""
    return _parsed_of(flow).body


def shape_of(flow: http.HTTPFlow) -> Shape:
    """The request's shape for matching, from its route, headers and body as already parsed."""
    parsed = _parsed_of(flow)
    request = flow.request
    if parsed.route is None:  # not ours: no route to reuse
        return shape(request.method, request.pretty_url, parsed.body, headers=parsed.headers)
    return route_shape(
        parsed.route,
        parsed.body.comparable,
        scheme=parsed.scheme,
        port=parsed.port,
        headers=parsed.headers,
    )


def vcr_request_of(flow: http.HTTPFlow, uri: str | None = None) -> Request:
    """The request as vcrpy's ``Request``, what a custom matcher (a vcrpy one) is called
    with: the URL as sent (``uri``: as the client sent it, where the recorder has since sent
    it elsewhere), the body as it came (compressed if the client compressed it, as vcrpy
    records it), each header once, repeated ones folded."""
    request = flow.request
    return Request(
        request.method,
        uri or request.pretty_url,
        request.raw_content or None,
        request_headers(flow),
    )


def add_problems(flow: http.HTTPFlow, problems: Iterable[Problem]) -> None:
    """Keep validation's findings in the flow, for the summary and the web tags, as plain
    dicts that mitmproxy can save with it."""
    flow.metadata.setdefault(PROBLEMS, []).extend(dict(vars(p)) for p in problems)


def problems(metadata: Mapping[str, Any]) -> list[Problem]:
    """The findings :func:`add_problems` kept in a flow's metadata, or in a saved flow's."""
    return [Problem(**found) for found in metadata.get(PROBLEMS) or ()]


def claim(flow: http.HTTPFlow) -> Route | None:
    """The route of a flow that is ours and still unanswered.

    Graph's request checks (``request_checks.py``) stand before every addon that claims, so
    a malformed request is answered with Graph's 4xx before anyone claims it.
    """
    if flow.response is not None or flow.error is not None:
        return None
    return _parsed_of(flow).route


def to_response(reply: Reply) -> http.Response:
    """The mitmproxy response for a :class:`graph.Reply`: its body sent byte for byte.

    ``Response.make`` (and the ``content`` setter) would encode the body according to its
    Content-Encoding, compressing a recorded gzip body a second time; a Reply's body is
    already what goes on the wire, so it is set raw, with a Content-Length that states it.
    """
    response = http.Response.make(reply.status)
    response.headers = http.Headers([(k.encode(), v.encode()) for k, v in reply.headers])
    response.raw_content = reply.body
    if "transfer-encoding" not in response.headers:
        response.headers["content-length"] = str(len(reply.body))
    if reply.reason:
        response.reason = reply.reason
    return response


def answer(flow: http.HTTPFlow, reply: Reply | None, *, by: AnsweredBy) -> None:
    """Answer the flow with ``reply``, or with no response at all (``None``: the connection
    is closed, as a ``reset`` fault does), and say who answered."""
    flow.metadata[ANSWERED_BY] = by
    if reply is None:
        flow.kill()
        return
    response = to_response(reply)
    response.http_version = flow.request.http_version
    flow.response = response


def add_fault_headers(flow: http.HTTPFlow, headers: Iterable[tuple[str, str]]) -> None:
    """Set these headers on the flow's answer, noted as a fault's with the values they
    replace (see FAULT_HEADERS): real Graph sends RateLimit-* headers of its own."""
    assert flow.response is not None
    replaced: dict[str, list[str]] = flow.metadata.setdefault(FAULT_HEADERS, {})
    for name, value in headers:
        if name not in replaced:
            replaced[name] = flow.response.headers.get_all(name)
        flow.response.headers[name] = value


def upstream_response(flow: http.HTTPFlow) -> http.Response:
    """The flow's response as its giver sent it: a fault's headers give way to the giver's."""
    assert flow.response is not None
    replaced = flow.metadata.get(FAULT_HEADERS)
    if not replaced:
        return flow.response
    response = flow.response.copy()
    for name, values in replaced.items():
        response.headers.set_all(name, values)
    return response


def answered_by(flow: http.HTTPFlow) -> AnsweredBy | None:
    """Who answered the flow, or None when the response came from upstream."""
    return flow.metadata.get(ANSWERED_BY)


def guarded(hook: Hook) -> Hook:
    """Make a flow hook answer a 500 if it raises, whatever it raises: never a forward.

    mitmproxy logs an addon's exception and carries on with the flow: a request our addon
    failed to answer would go on to its host, which is exactly what replay and simulate
    promise never happens. A bug in us must be a loud 500, never a silent forward. So every
    ``BaseException`` is caught (``SystemExit`` from an argument parser, a
    ``KeyboardInterrupt`` or ``RecursionError`` deep inside a hook), except the cancellation
    asyncio uses to stop a task, which must go on up; and every flow is answered, Graph's or
    not, even when working out what it is fails too (see :func:`fail`).
    """
    if inspect.iscoroutinefunction(hook):

        @functools.wraps(hook)
        async def run_async(self: object, flow: http.HTTPFlow) -> None:
            try:
                await hook(self, flow)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                fail(flow, exc)

        return run_async  # type: ignore[return-value]

    @functools.wraps(hook)
    def run(self: object, flow: http.HTTPFlow) -> None:
        try:
            hook(self, flow)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            fail(flow, exc)

    return run  # type: ignore[return-value]


def fail(flow: http.HTTPFlow, exc: BaseException) -> None:
    """Answer ``flow`` with Graph's 500 naming ``exc`` (JSON, which the control endpoint's
    clients read as well), tagged as our internal error; if even that fails, kill it: the
    client sees its connection closed, and nothing is forwarded."""
    try:
        logger.error(
            "internal error on %s %s", flow.request.method, flow.request.pretty_url, exc_info=exc
        )
        reply = error_reply(
            500,
            GENERAL_EXCEPTION,
            f"graph-vcr-proxy failed on this request: {type(exc).__name__}: {exc}",
            flow.request.headers,
        )
        answer(flow, reply, by=AnsweredBy.INTERNAL_ERROR)
    except Exception:
        logger.exception("cannot answer a failed flow; closing its connection instead")
        flow.metadata[ANSWERED_BY] = AnsweredBy.INTERNAL_ERROR
        flow.response = None
        if flow.killable:
            flow.kill()
