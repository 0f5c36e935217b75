"""Validation applied to a flow: each problem reported once, in the log and in the flow.

``validation.py`` says which problems a body has; this says what the proxy does about them:
every problem is kept in the flow for the exit summary and logged as one line naming the
request, errors at warning level and notes (the documented ``"true"`` string, which every
documented create sends) at debug level, and in mode ``enforce`` a request with errors is
answered with Graph's 400 and goes nowhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from mitmproxy import http

from proxy_addons.addons import flows
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


def validate_request(flow: http.HTTPFlow, route: Route, mode: ValidateMode) -> bool:
    """Validate the request as the client sent it; False when ``enforce`` refused it."""
    if mode is ValidateMode.OFF:
        return True
    request = flow.request
    problems = request_problems(route.operation, flows.body_of(flow))
    path = request.path.partition("?")[0].partition("#")[0]  # as sent: before --upstream
    report(flow, "request", problems, request.method, path)
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
    uri: str,
) -> None:
    """Validate a response (as stored: decoded); it is reported, never refused after the fact.

    ``method`` and ``uri`` are the request as the client sent it, before ``--upstream``.
    """
    if mode is not ValidateMode.OFF:
        problems = response_problems(route.operation, status, body)
        report(flow, f"response {status}", problems, method, urlsplit(uri).path)
