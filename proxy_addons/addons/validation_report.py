"""Addon: validation, one step of any chain, and each problem reported once, in the log and
in the flow.

``validation.py`` says which problems a body has; this says what the proxy does about them:
every problem is kept in the flow for the exit summary and logged as one line naming the
request, errors at warning level and notes (the documented ``"true"`` string, which every
documented create sends) at debug level, and in mode ``enforce`` a request with errors is
answered with Graph's 400 and goes nowhere.

:class:`Validation` is the step (option ``graph_validate``: off, warn, enforce): it checks
each request of ours that reaches it (after the request checks and the fault rules, before
the answer: replay, the recorder or the emulator) and each answer that came from upstream.
``record`` carries it (``--validate``, default warn); ``replay`` and ``simulate`` carry it only
when asked (``--validate warn|enforce``), since every addon in a chain costs every request a
hook call.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence

from mitmproxy import ctx, http
from mitmproxy.addonmanager import Loader

from proxy_addons.addons import flows
from proxy_addons.addons.declared_options import check_choices, declare
from proxy_addons.common import content_encoding
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.models import Problem, errors_only
from proxy_addons.graph.replies import BAD_REQUEST, error_reply
from proxy_addons.graph.routes import Route
from proxy_addons.graph.validate_mode import ValidateMode
from proxy_addons.graph.validation import (
    invalid_body_message,
    request_problems,
    response_problems,
)
from proxy_addons.options.validation import VALIDATION

logger = logging.getLogger(__name__)


def report(
    flow: http.HTTPFlow, side: str, problems: Sequence[Problem], method: str, path: str
) -> None:
    """Keep ``problems`` in the flow for the summary and log one line each, naming the
    request by its method and path (without the query)."""
    if not problems:
        return
    flows.add_problems(flow, problems)
    for problem in problems:
        logger.log(log_level(problem), "%s", problem_line(method, path, side, problem))


def problem_line(method: str, path: str, side: str, problem: Problem) -> str:
    """One finding as the recorder and the imports log it: the request (its method and
    path, without the query), then the problem."""
    return f"{method} {path}: {problem} ({side})"


def log_level(problem: Problem) -> int:
    """Errors are warnings; notes (the documented ``"true"`` string, sent by every documented
    create) show only with --verbose, or they would print on every request."""
    return logging.WARNING if problem.severity == "error" else logging.DEBUG


def sent_path(request: http.Request) -> str:
    """The request's path as the client sent it, without query or fragment: how a problem
    line names it (read before the recorder's --upstream rewrites it)."""
    return request.path.partition("?")[0].partition("#")[0]


def validate_request(flow: http.HTTPFlow, route: Route, mode: ValidateMode) -> bool:
    """Validate the request as the client sent it; False when ``enforce`` refused it."""
    if mode is ValidateMode.OFF:
        return True
    request = flow.request
    problems = request_problems(route.operation, flows.body_of(flow))
    report(flow, "request", problems, request.method, sent_path(request))
    errors = errors_only(problems)
    if not errors or mode is not ValidateMode.ENFORCE:
        return True
    reply = error_reply(400, BAD_REQUEST, invalid_body_message(errors), request.headers)
    flows.answer(flow, reply, by=AnsweredBy.CHECK)
    return False


def validate_response(
    flow: http.HTTPFlow,
    route: Route,
    mode: ValidateMode,
    status: int,
    body: bytes,
    *,
    method: str,
    path: str,
) -> None:
    """Validate a response (decoded); it is reported, never refused after the fact.

    ``method`` and ``path`` are the request's as the client sent it, before ``--upstream``.
    """
    if mode is not ValidateMode.OFF:
        problems = response_problems(route.operation, status, body)
        report(flow, f"response {status}", problems, method, path)


class Validation:
    def __init__(self) -> None:
        self.mode = ValidateMode.WARN
        # Each validated request's method and path as the client sent them (before the
        # recorder's --upstream), beside its flow, for the log line of its answer's problems.
        self._sent: weakref.WeakKeyDictionary[http.HTTPFlow, tuple[str, str]] = (
            weakref.WeakKeyDictionary()
        )

    def load(self, loader: Loader) -> None:
        declare(loader, VALIDATION)

    def configure(self, updated: set[str]) -> None:
        if "graph_validate" in updated:
            check_choices(updated, VALIDATION)
            self.mode = ValidateMode(ctx.options.graph_validate)

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if self.mode is ValidateMode.OFF:
            return
        route = flows.claim(flow)
        if route is None or not validate_request(flow, route, self.mode):
            return
        self._sent[flow] = (flow.request.method, sent_path(flow.request))

    @flows.guarded
    def response(self, flow: http.HTTPFlow) -> None:
        sent = self._sent.pop(flow, None) if self._sent else None
        response, route = flow.response, flows.route_of(flow)
        if sent is None or response is None or route is None or flows.answered_by(flow):
            return  # only what upstream said: our own answers are ours to keep right
        body = content_encoding.readable(
            response.raw_content or b"", response.headers.get(content_encoding.HEADER)
        )
        method, path = sent
        validate_response(
            flow, route, self.mode, response.status_code, body, method=method, path=path
        )
