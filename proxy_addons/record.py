"""Addon: forward our Graph routes upstream, validate them, and record each one to a cassette.

Load it alone with::

    mitmdump -s proxy_addons/record.py --set graph_cassette=rec.yaml \\
        --set graph_record_mode=new_episodes --set graph_upstream=http://127.0.0.1:8000

Record modes mean what they mean in vcrpy: ``once`` records into a new cassette only,
``new_episodes`` replays what the cassette already answers and records the rest, ``all``
records everything and what it re-records replaces the old interactions of the same request,
``none`` only replays. What reaches the disk is redacted first (redaction.py), and reaches it
durably before the client sees the response (cassette_writer.py): the ``response`` hook runs
before mitmproxy sends the response on, and it returns only once the block is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader

from proxy_addons import cassette, flows
from proxy_addons.answered_by import AnsweredBy
from proxy_addons.cassette import Interaction
from proxy_addons.cassette_writer import CassetteWriteError, CassetteWriter, Keep
from proxy_addons.graph import error_reply
from proxy_addons.interactions import Sent, interaction_block, stored_response, stored_side
from proxy_addons.matching import CassetteIndex, Key, canonical, parse_body, request_key
from proxy_addons.models import Problem, errors_only
from proxy_addons.options import declare_cassette, ensure_lazy_connections, require_choice
from proxy_addons.record_mode import RecordMode
from proxy_addons.redaction import Placeholders, RedactionRules
from proxy_addons.replay import answer_miss, replayed_reply
from proxy_addons.routes import Route
from proxy_addons.validation import request_problems, response_problems

logger = logging.getLogger(__name__)

RECORD_MODES = tuple(RecordMode)
VALIDATE_MODES = ("warn", "enforce", "off")
SENT = "graph_vcr_proxy.record.sent"  # flow.metadata: the request as the client sent it

Group = tuple[Key, str | bytes | None]


# NamedTuples, not dataclasses: ``mitmdump -s`` runs this file as a module that is not in
# sys.modules, where dataclasses cannot resolve their annotations.
class Upstream(NamedTuple):
    """Where intercepted Graph calls go instead of the real host."""

    scheme: str
    host: str
    port: int
    prefix: str  # path prefix, no trailing slash

    @classmethod
    def parse(cls, url: str) -> Upstream:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"graph_upstream must be an http:// or https:// URL, not {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"graph_upstream must be a base URL without query, not {url!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ValueError(f"graph_upstream has an invalid port: {url!r}") from None
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    def redirect(self, request: http.Request) -> None:
        """Point ``request`` here; setting the host also rewrites the Host header."""
        request.scheme = self.scheme
        request.port = self.port
        request.host = self.host
        request.path = self.prefix + request.path


def group_of(interaction: Interaction) -> Group:
    """What makes two interactions answers to the same request, as the index sees it."""
    request = interaction.request
    body = parse_body(request.body)
    return (
        request_key(request.method, request.uri),
        None if body is None else canonical(body),
    )


def unwritable_reason(path: Path) -> str | None:
    """Why a cassette can't be created or rewritten at ``path``, or None if it can.

    The writer creates missing folders and puts temporary files beside the cassette, so
    what counts is the nearest ancestor that exists: it must be a folder we may write into.
    Checked at start: found at the first write instead, it would turn every request into a
    500 RecordingFailed while the proxy looks healthy.
    """
    if path.exists() and not os.access(path, os.W_OK):
        return f"no permission to write {path}"
    for ancestor in (path.parent, *path.parent.parents):
        if not ancestor.exists():
            continue
        if not ancestor.is_dir():
            return f"{ancestor} is not a folder"
        if not os.access(ancestor, os.W_OK | os.X_OK):
            return f"no permission to write into {ancestor}"
        return None
    return None


def problem_lines(method: str, path: str, side: str, problems: Sequence[Problem]) -> list[str]:
    return [f"{method} {path}: {p} ({side})" for p in problems]


class Record:
    def __init__(self) -> None:
        self.mode = RecordMode.ONCE
        self.path: Path | None = None
        self.writer: CassetteWriter | None = None
        self.index = CassetteIndex()
        self.upstream: Upstream | None = None
        self.rules = RedactionRules.of()
        self.placeholders = Placeholders()
        # Record mode ``all``: old interactions still at the front of the file (their groups,
        # in file order), and the groups among them not yet re-recorded.
        self.old_groups: list[Group] = []
        self.stale: set[Group] = set()
        self.old_index = CassetteIndex()
        self._opened: tuple[str, str, bool] | None = None

    def load(self, loader: Loader) -> None:
        declare_cassette(loader)
        loader.add_option(
            "graph_record_mode",
            str,
            str(RecordMode.ONCE),
            "once: record into a new cassette only (an existing file is refused); "
            "new_episodes: replay what the cassette answers, record the rest; all: record "
            "everything, replacing what is re-recorded; none: replay only.",
            choices=RECORD_MODES,
        )
        loader.add_option(
            "graph_upstream",
            str,
            "",
            "Base URL to send intercepted Graph calls to instead of the real host (the "
            "cassette keeps the real Graph URL). Empty: the real host.",
        )
        loader.add_option(
            "graph_validate",
            str,
            "warn",
            "Check requests and responses against the models: warn logs each problem, "
            "enforce also answers an invalid request with Graph's 400 without sending it.",
            choices=VALIDATE_MODES,
        )
        loader.add_option(
            "graph_redact_headers",
            Sequence[str],
            [],
            "Header names to redact besides Authorization, Proxy-Authorization, Cookie and "
            "Set-Cookie.",
        )
        loader.add_option(
            "graph_redact_fields",
            Sequence[str],
            [],
            "JSON field names (any depth; also query and form parameters) to redact besides "
            "the OAuth credentials, e.g. emailAddress, smsCapablePhoneNumber.",
        )
        loader.add_option(
            "graph_record_fsync",
            bool,
            True,
            "fsync each interaction before its response is released (survives power loss, "
            "not only a killed proxy).",
        )

    # --- options ---------------------------------------------------------------------------

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        require_choice(updated, "graph_record_mode", RECORD_MODES)
        require_choice(updated, "graph_validate", VALIDATE_MODES)
        if "graph_upstream" in updated:
            try:
                self.upstream = Upstream.parse(opts.graph_upstream) if opts.graph_upstream else None
            except ValueError as exc:
                raise exceptions.OptionsError(str(exc)) from None
        if {"graph_redact_headers", "graph_redact_fields"} & updated:
            self.rules = RedactionRules.of(opts.graph_redact_headers, opts.graph_redact_fields)
        if {"graph_cassette", "graph_record_mode", "graph_record_fsync"} & updated:
            self._open(opts.graph_cassette, opts.graph_record_mode, opts.graph_record_fsync)

    def _open(self, value: str, mode_name: str, fsync: bool) -> None:
        mode = RecordMode(mode_name)
        if self._opened == (value, mode, fsync):
            return  # reconfigured with the same cassette: keep state (and our own new file)
        path = Path(value)
        bundled = path.resolve() == cassette.bundled_cassettes().resolve()
        if mode.records and bundled:
            # The option's default (shared with replay): nothing to record into yet.
            self._reset(mode, None)
            return
        if mode.records and path.is_dir():
            raise exceptions.OptionsError(
                f"{path}: is a folder; record mode {mode!r} needs a cassette file to record into"
            )
        if mode.needs_new_cassette and path.exists():
            raise exceptions.OptionsError(
                f"{path}: cassette exists; record mode 'once' records only into a new "
                "cassette (use --record-mode new_episodes to add to it, or all to re-record)"
            )
        if not mode.records and not path.exists():
            raise exceptions.OptionsError(f"{path}: no such cassette file or folder")
        unwritable = unwritable_reason(path) if mode.records else None
        if unwritable is not None:
            raise exceptions.OptionsError(f"{path}: cannot record here: {unwritable}")
        writer = CassetteWriter(path, fsync=fsync) if mode.records else None
        interactions: list[Interaction] = []
        if path.exists():
            if writer is not None:
                healed = self._heal(writer)
                if healed:
                    logger.warning("%s", healed)
            try:
                interactions = cassette.load(path)
            except cassette.CassetteError as exc:
                raise exceptions.OptionsError(str(exc)) from None
        self._reset(mode, writer)
        self.path = path
        self._opened = (value, mode, fsync)
        if mode.replays:
            self.index = CassetteIndex(interactions)
        if mode.replaces_rerecorded:
            self.old_groups = [group_of(i) for i in interactions]
            self.stale = set(self.old_groups)
            self.old_index = CassetteIndex(interactions)
        if writer is not None and path.is_file():
            self.placeholders = Placeholders.continuing(path.read_text(encoding="utf-8"))

    @staticmethod
    def _heal(writer: CassetteWriter) -> str | None:
        try:
            return writer.heal()
        except OSError as exc:
            raise exceptions.OptionsError(f"{writer.path}: {exc.strerror or exc}") from None

    def _reset(self, mode: RecordMode, writer: CassetteWriter | None) -> None:
        if self.writer is not None:
            self.writer.close()
        self.mode, self.writer, self.path, self._opened = mode, writer, None, None
        self.index, self.old_index = CassetteIndex(), CassetteIndex()
        self.old_groups, self.stale = [], set()
        self.placeholders = Placeholders()

    def running(self) -> None:
        ensure_lazy_connections()
        if self.writer is not None:
            target = f" via {ctx.options.graph_upstream}" if self.upstream else ""
            logger.info("recording (%s) to %s%s", self.mode, self.path, target)
        elif self.mode.records:
            logger.warning("graph_cassette names no cassette file: recording nothing")

    def done(self) -> None:
        if self.writer is not None:
            self.writer.close()

    # --- flows -----------------------------------------------------------------------------

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if self.writer is None and self.mode.records:
            return
        route = flows.claim(flow)
        if route is None:
            return
        request = flow.request
        if not self._validate_request(flow, route):
            return
        if self.mode.replays:
            hit = self.index.lookup(request.method, request.pretty_url, flows.request_body(request))
            if hit is not None:
                flows.answer(flow, replayed_reply(hit, request.headers), by=AnsweredBy.REPLAY)
                return
            if not self.mode.records:  # new_episodes forwards a miss, to record it
                answer_miss(flow, self.index)
                return
        flow.metadata[SENT] = Sent(request.method, request.pretty_url, stored_side(request))
        if self.upstream is not None:
            self.upstream.redirect(request)

    def _validate_request(self, flow: http.HTTPFlow, route: Route) -> bool:
        """False when the request was refused (``enforce``) and must not go anywhere."""
        if ctx.options.graph_validate == "off":
            return True
        problems = request_problems(route.operation, flows.request_body(flow.request))
        self._report(flow, "request", problems)
        errors = errors_only(problems)
        if errors and ctx.options.graph_validate == "enforce":
            flows.answer(
                flow,
                error_reply(
                    400,
                    "BadRequest",
                    "Invalid request body: " + "; ".join(str(p) for p in errors),
                    flow.request.headers,
                ),
                by=AnsweredBy.CHECK,
            )
            return False
        return True

    def _report(self, flow: http.HTTPFlow, side: str, problems: list[Problem]) -> None:
        if not problems:
            return
        flow.metadata.setdefault(flows.PROBLEMS, []).extend(problems)
        sent: Sent | None = flow.metadata.get(SENT)
        method = sent.method if sent else flow.request.method
        path = urlsplit(sent.uri if sent else flow.request.pretty_url).path
        for problem, line in zip(
            problems, problem_lines(method, path, side, problems), strict=True
        ):
            # Notes (the documented "true" string) come with every documented request: at
            # info level they would print on every request; they show with --verbose.
            level = logging.WARNING if problem.severity == "error" else logging.DEBUG
            logger.log(level, "%s", line)

    @flows.guarded
    async def response(self, flow: http.HTTPFlow) -> None:
        sent: Sent | None = flow.metadata.get(SENT)
        writer = self.writer
        if sent is None or writer is None or flow.response is None:
            return
        if flows.answered_by(flow) is not None:
            return  # only what upstream said is recorded
        route = flows.route_of(flow)
        status, reason, stored = stored_response(flow.response)
        if ctx.options.graph_validate != "off" and route is not None:
            self._report(
                flow, f"response {status}", response_problems(route.operation, status, stored.body)
            )
        block = interaction_block(sent, status, reason, stored, self.rules, self.placeholders)
        keep = self._replacing(sent)
        try:
            # Off the event loop: other flows go on while this one waits for the disk.
            await asyncio.to_thread(writer.append, block, keep=keep)
        except CassetteWriteError as exc:
            logger.error("not recorded, response withheld: %s", exc)
            message = f"graph-vcr-proxy could not record this interaction: {exc}"
            reply = error_reply(500, "RecordingFailed", message, flow.request.headers)
            flows.answer(flow, reply, by=AnsweredBy.RECORDING_FAILED)
            return
        flow.metadata[flows.RECORDED] = True

    def _replacing(self, sent: Sent) -> Keep | None:
        """Record mode ``all``: the filter that drops the old answers to this request, the
        first time it is re-recorded; None when there is nothing old to replace."""
        if not self.mode.replaces_rerecorded or not self.stale:
            return None
        hit = self.old_index.lookup(sent.method, sent.uri, sent.side.body)
        if hit is None:
            return None
        group = group_of(hit)
        if group not in self.stale:
            return None
        self.stale.discard(group)

        def keep(blocks: list[str]) -> list[str]:
            # Runs under the writer's lock: the old interactions are the file's first blocks.
            front = self.old_groups
            if len(blocks) < len(front):
                return blocks  # someone else rewrote the file: replace nothing rather than guess
            kept = [b for b, g in zip(blocks, front, strict=False) if g != group]
            self.old_groups = [g for g in front if g != group]
            return kept + blocks[len(front) :]

        return keep


addons = [Record()]
