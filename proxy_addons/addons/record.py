"""Addon: forward our Graph routes upstream and record each one to a cassette.

Load it alone with::

    mitmdump -s proxy_addons/record.py --set graph_cassette=rec.yaml \\
        --set graph_record_mode=new_episodes --set graph_upstream=http://127.0.0.1:8000

Record modes mean what they mean in vcrpy (``record_mode.py``). What reaches the disk is
redacted first (``interactions.py``), and reaches it durably before the client sees the
response (``cassette/writer.py``): the ``response`` hook runs before mitmproxy sends the
response on, and it returns only once the block is written. The addon only joins the parts:
the cassette is opened or refused by ``opening.py``, modes ``new_episodes`` and
``none`` answer through ``playback.py`` and mode ``all``'s replacements are kept by
``rerecording.py``. Validation is a step of its own before it (``validation_report.py``,
which the ``record`` command and ``record.py`` always load).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from pathlib import Path

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader

from proxy_addons.addons import flows, playback
from proxy_addons.addons.connection_strategy import ensure_lazy_connections
from proxy_addons.addons.declared_options import check_choices, declare
from proxy_addons.addons.gate_options import ensure_forwarding_ours
from proxy_addons.addons.interactions import (
    Sent,
    decoded,
    interaction_block,
    stored_response,
    stored_side,
)
from proxy_addons.addons.match_options import MATCH_OPTIONS, match_rule
from proxy_addons.addons.upstream import Upstream
from proxy_addons.cassette.match_rule import MatchRule, MatchRuleError
from proxy_addons.cassette.matching import CassetteIndex
from proxy_addons.cassette.opening import CassetteRefused, OpenCassette, open_cassette
from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.cassette.redaction import RedactionRules
from proxy_addons.cassette.rerecording import Rerecording
from proxy_addons.cassette.writer import CassetteWriteError
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.replies import error_reply
from proxy_addons.options.record import RECORD

logger = logging.getLogger(__name__)


class Record:
    def __init__(self) -> None:
        self.mode = RecordMode.ONCE
        self.cassette: OpenCassette | None = None  # None: nothing to record into or replay
        self.index = CassetteIndex()  # what modes new_episodes and none replay
        self.echo = playback.NO_ECHO  # what they echo of each request (graph_echo)
        self.rerecording = Rerecording()  # what mode all replaces
        self.upstream: Upstream | None = None
        self.rules = RedactionRules.of()
        self.decode_compressed = False  # vcrpy's decode_compressed_response
        self._opened_with: tuple[str, RecordMode, bool, MatchRule] | None = None
        # Each forwarded request as the client sent it, beside its flow (not in metadata,
        # which mitmproxy saves with the flow and which holds plain values only).
        self._sent: weakref.WeakKeyDictionary[http.HTTPFlow, Sent] = weakref.WeakKeyDictionary()

    def load(self, loader: Loader) -> None:
        declare(loader, RECORD)

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        check_choices(updated, RECORD)
        if "graph_upstream" in updated:
            try:
                self.upstream = Upstream.parse(opts.graph_upstream) if opts.graph_upstream else None
            except ValueError as exc:
                raise exceptions.OptionsError(str(exc)) from None
        if "graph_record_decode_compressed" in updated:
            self.decode_compressed = opts.graph_record_decode_compressed
        if {"graph_redact_headers", "graph_redact_fields"} & updated:
            self.rules = RedactionRules.of(opts.graph_redact_headers, opts.graph_redact_fields)
        if {"graph_cassette", "graph_record_mode", "graph_record_fsync"} & updated or (
            set(MATCH_OPTIONS) & updated
        ):
            self._open(
                opts.graph_cassette,
                RecordMode(opts.graph_record_mode),
                opts.graph_record_fsync,
                match_rule(),
            )
        self.index.allow_repeats = opts.graph_allow_playback_repeats  # vcrpy's, default off
        if {"graph_cassette", "graph_record_mode", "graph_echo"} & updated:
            self.echo = playback.echo_rules(self.index)

    def _open(self, value: str, mode: RecordMode, fsync: bool, rule: MatchRule) -> None:
        if self._opened_with == (value, mode, fsync, rule):
            return  # reconfigured with the same cassette: keep state (and our own new file)
        try:
            opened = open_cassette(Path(value), mode, fsync=fsync)
        except CassetteRefused as exc:
            raise exceptions.OptionsError(str(exc)) from None
        held = opened.interactions if opened else []
        try:
            index = CassetteIndex(held if mode.replays else (), rule=rule)
            rerecording = (
                Rerecording(held, opened.blocks, rule)
                if opened and mode.replaces_rerecorded
                else Rerecording()
            )
        except MatchRuleError as exc:  # a cassette's own match file that can't be used
            if opened:
                opened.close()
            raise exceptions.OptionsError(str(exc)) from None
        self.done()
        self.mode, self.cassette = mode, opened
        self._opened_with = (value, mode, fsync, rule) if opened else None
        self.index, self.rerecording = index, rerecording
        if opened:
            self.cassette = opened._replace(blocks=[])  # Rerecording keeps what it needs

    def running(self) -> None:
        ensure_lazy_connections()
        ensure_forwarding_ours()
        if self.cassette is not None and self.cassette.writer is not None:
            target = f" via {ctx.options.graph_upstream}" if self.upstream else ""
            logger.info("recording (%s) to %s%s", self.mode, self.cassette.path, target)
        elif self.mode.records:
            logger.warning("graph_cassette names no cassette file: recording nothing")

    def done(self) -> None:
        if self.cassette is not None:
            self.cassette.close()

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if self.cassette is None and self.mode.records:
            return
        route = flows.claim(flow)
        if route is None:
            return
        answer_misses = not self.mode.records  # new_episodes forwards a miss, to record it
        replays = self.mode.replays
        if replays and playback.play(flow, self.index, answer_misses=answer_misses, echo=self.echo):
            return
        request = flow.request
        self._sent[flow] = Sent(request.method, request.pretty_url, stored_side(request))
        if self.upstream is not None:
            self.upstream.redirect(request)

    @flows.guarded
    async def response(self, flow: http.HTTPFlow) -> None:
        sent = self._sent.pop(flow, None)
        route, cassette = flows.route_of(flow), self.cassette
        if sent is None or route is None or flow.response is None:
            return
        if cassette is None or cassette.writer is None or flows.answered_by(flow) is not None:
            return  # only what upstream said is recorded
        status, reason, stored = stored_response(flows.upstream_response(flow))
        if self.decode_compressed:
            stored = decoded(stored)
        block = interaction_block(sent, status, reason, stored, self.rules, cassette.placeholders)
        sent_request = functools.partial(flows.vcr_request_of, flow, sent.uri)
        replacing = self.rerecording.replacement(flows.shape_of(flow), sent_request)
        keep, committed = replacing or (None, None)
        append = functools.partial(cassette.writer.append, block, keep=keep, committed=committed)
        try:
            if cassette.writer.fsync or keep is not None:
                # Off the event loop: other flows go on while this one waits for the disk.
                await asyncio.to_thread(append)
            else:
                append()  # one write into the page cache: quicker than a hand-off to a thread
        except CassetteWriteError as exc:
            logger.error("not recorded, response withheld: %s", exc)
            message = f"graph-vcr-proxy could not record this interaction: {exc}"
            reply = error_reply(500, "RecordingFailed", message, flow.request.headers)
            flows.answer(flow, reply, by=AnsweredBy.RECORDING_FAILED)
            return
        flow.metadata[flows.RECORDED] = True
