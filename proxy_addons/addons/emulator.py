"""Addon: a stateful virtualAppointment service, so clients can run against "Graph" offline.

The resource stopped returning data in June 2023; nobody can record it any more. This addon
answers our routes itself with Graph's statuses, headers and ETag rules (see
:mod:`proxy_addons.graph.appointments` for the rules). Load it alone with::

    mitmdump -s proxy_addons/emulator.py --set graph_state=state.json \\
        --set connection_strategy=lazy

or as a plain-HTTP Graph endpoint (what ``graph-vcr-proxy simulate --reverse`` runs)::

    mitmdump -s proxy_addons/emulator.py --mode reverse:https://graph.microsoft.com

Concurrency: mitmproxy runs hooks one at a time on its event loop and :meth:`Emulator.request`
never awaits, so each read-check-write (and the state file write) happens as one step; two
PATCHes with the same If-Match can never both win.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader
from mitmproxy.proxy.mode_specs import ReverseMode

from proxy_addons.addons import flows
from proxy_addons.addons.connection_strategy import ensure_lazy_connections
from proxy_addons.addons.declared_options import declare
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph import appointments, permissions
from proxy_addons.graph.appointments import AppointmentRequest, Outcome, State, StateFileError
from proxy_addons.graph.replies import (
    AUTH_CHALLENGE,
    BAD_REQUEST,
    GENERAL_EXCEPTION,
    INVALID_AUTHENTICATION_TOKEN,
    Reply,
    empty_reply,
    error_reply,
    format_seconds,
    json_reply,
)
from proxy_addons.graph.routes import Operation, Route
from proxy_addons.options.simulate import SIMULATE

logger = logging.getLogger(__name__)

# The retired operations; getVirtualAppointmentJoinWebUrl and the SMS actions are live.
DEPRECATED = frozenset({Operation.CREATE, Operation.GET, Operation.UPDATE, Operation.DELETE})
REPLACEMENT_DOCS = (
    "https://learn.microsoft.com/graph/api/onlinemeeting-getvirtualappointmentjoinweburl"
)
DEPRECATION_HEADERS = (
    ("Deprecation", "@1688083200"),  # 2023-06-30T00:00:00Z (RFC 9745 form)
    ("Sunset", "Fri, 30 Jun 2023 23:59:59 GMT"),
    ("Link", f'<{REPLACEMENT_DOCS}>; rel="deprecation"; type="text/html"'),
)


def auth_failure(headers: Mapping[str, str]) -> str | None:
    """Why Graph would refuse this request's credentials (401), or None. Tokens are not
    verified: the emulator has no tenant to check them against, only that one is presented;
    what a JWT grants is judged apart (403, :mod:`proxy_addons.graph.permissions`)."""
    value = (headers.get("authorization") or "").strip()
    if not value:
        return "Access token is empty."
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "Access token validation failure: the Authorization header must be 'Bearer <token>'."
    return None


def outcome_reply(
    outcome: Outcome, request_headers: Mapping[str, str], extra: Iterable[tuple[str, str]] = ()
) -> Reply:
    """The Graph response for an outcome: envelope for errors, ETag and Retry-After headers."""
    headers = list(extra)
    if outcome.etag is not None:
        headers.append(("ETag", outcome.etag))
    if outcome.retry_after is not None:
        headers.append(("Retry-After", format_seconds(outcome.retry_after)))
    if outcome.error_code is not None:
        return error_reply(
            outcome.status, outcome.error_code, outcome.message, request_headers, headers
        )
    if outcome.payload is None:
        return empty_reply(outcome.status, request_headers, headers)
    return json_reply(outcome.status, outcome.payload, request_headers, headers)


def appointment_request(route: Route, request: http.Request) -> AppointmentRequest:
    assert route.operation is not None  # the request checks answer unknown methods
    return AppointmentRequest(
        operation=route.operation,
        owner=route.owner,
        meeting_id=route.meeting_id,
        body=flows.request_body(request),
        if_match=request.headers.get("if-match"),
        if_none_match=request.headers.get("if-none-match"),
        service_root=f"https://{route.host}/{route.version}",
        join_web_url=route.join_web_url,
    )


class Emulator:
    def __init__(self) -> None:
        self.state: State = appointments.new_state()
        self.path: Path | None = None
        self.warned: set[Operation] = set()
        self.accepted: frozenset[str] | None = None  # None: each operation's documented scopes
        self._lock: int | None = None  # held on the state file while it is ours

    def load(self, loader: Loader) -> None:
        declare(loader, SIMULATE)

    def configure(self, updated: set[str]) -> None:
        if "graph_accepted_scopes" in updated:
            scopes = ctx.options.graph_accepted_scopes
            if any(not scope.strip() for scope in scopes):
                raise exceptions.OptionsError("graph_accepted_scopes: a scope must not be empty")
            self.accepted = permissions.parse_scopes(scopes) if scopes else None
        if not ctx.options.graph_forbidden_code.strip():
            raise exceptions.OptionsError("graph_forbidden_code must not be empty")
        if "graph_provisioning_delay" in updated and ctx.options.graph_provisioning_delay < 0:
            raise exceptions.OptionsError(
                "graph_provisioning_delay must be 0 (off) or a number of seconds, got "
                f"{ctx.options.graph_provisioning_delay}"
            )
        if "graph_state" in updated:
            # Adopt path and state together, and only once the file has loaded: a refused
            # file leaves the emulator as it was.
            if not ctx.options.graph_state:
                self._release()
                self.path = None
                return
            path = Path(ctx.options.graph_state).expanduser()
            lock = None
            try:
                lock = None if path == self.path else appointments.lock_state(path)
                self.state = appointments.load_state(path)
            except StateFileError as exc:
                if lock is not None:
                    os.close(lock)
                raise exceptions.OptionsError(f"state file {exc}") from None
            if lock is not None:
                self._release()
                self._lock = lock
            self.path = path
            logger.info(
                "emulating %d appointments, state in %s", len(self.state.appointments), path
            )

    def _release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def done(self) -> None:
        self._release()

    def running(self) -> None:
        ensure_lazy_connections()

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        route = flows.claim(flow)
        if route is None:
            self._refuse_other_paths(flow)
            return
        headers = flow.request.headers
        refusal = self._refuse_credentials(route, flow.request)
        if refusal is not None:
            flows.answer(flow, refusal, by=AnsweredBy.EMULATOR)
            return
        state, outcome = appointments.handle(
            self.state,
            appointment_request(route, flow.request),
            provisioning_delay=ctx.options.graph_provisioning_delay,
        )
        if state is not self.state:
            failure = self._commit(state, headers)
            if failure is not None:
                flows.answer(flow, failure, by=AnsweredBy.EMULATOR)
                return
        flows.answer(
            flow, outcome_reply(outcome, headers, self._deprecation(route)), by=AnsweredBy.EMULATOR
        )

    def _refuse_credentials(self, route: Route, request: http.Request) -> Reply | None:
        """Graph's 401 for a request without a bearer token, its 403 for a token that lacks
        the permission; None when the credentials pass."""
        headers = request.headers
        if ctx.options.graph_require_auth:
            failure = auth_failure(headers)
            if failure is not None:
                return error_reply(
                    401, INVALID_AUTHENTICATION_TOKEN, failure, headers, [AUTH_CHALLENGE]
                )
        if ctx.options.graph_allow_any_token:
            return None
        why = permissions.refusal(headers.get("authorization"), route.operation, self.accepted)
        if why is None:
            return None
        logger.info("%s %s refused: %s", route.method, request.pretty_url, why)
        code, message = ctx.options.graph_forbidden_code, ctx.options.graph_forbidden_message
        return error_reply(403, code, message, headers)

    def _commit(self, state: State, request_headers: Mapping[str, str]) -> Reply | None:
        """Adopt ``state``, writing it first when persisting; on a write error keep the old
        state (memory and file still agree) and give the client a 500 to retry."""
        if self.path is not None:
            try:
                appointments.save_state(self.path, state)
            except OSError as exc:
                logger.error("cannot save state file %s: %s", self.path, exc)
                return error_reply(
                    500,
                    GENERAL_EXCEPTION,
                    f"The emulator could not save its state file {self.path}: {exc}",
                    request_headers,
                )
        self.state = state
        return None

    def _deprecation(self, route: Route) -> tuple[tuple[str, str], ...]:
        if not ctx.options.graph_deprecation_warnings or route.operation not in DEPRECATED:
            return ()
        if route.operation not in self.warned:
            self.warned.add(route.operation)
            logger.warning(
                "virtualAppointment (%s %s) is retired: Graph stopped returning data for it on "
                "June 30, 2023. Use GET .../onlineMeetings/{id}/getVirtualAppointmentJoinWebUrl "
                "instead: %s",
                route.method,
                route.path,
                REPLACEMENT_DOCS,
            )
        return DEPRECATION_HEADERS

    def _refuse_other_paths(self, flow: http.HTTPFlow) -> None:
        """As a reverse proxy the emulator *is* Graph: nothing may go on to the real one."""
        if flow.response is not None or flow.error is not None or flows.route_of(flow):
            return
        if not isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return
        reply = error_reply(
            400,
            BAD_REQUEST,
            f"No resource at '{flow.request.path}': graph-vcr-proxy simulate serves only the "
            "virtualAppointment routes and their live actions.",
            flow.request.headers,
        )
        flows.answer(flow, reply, by=AnsweredBy.EMULATOR)
