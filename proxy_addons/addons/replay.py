"""Addon: answer our Graph routes from VCR cassettes, offline, without touching other traffic.

Load it alone with::

    mitmdump -s proxy_addons/replay.py --set graph_cassette=cassettes/ \\
        --set connection_strategy=lazy

(``connection_strategy=lazy`` is what keeps mitmproxy from dialling graph.microsoft.com when
the client connects; the addon sets it itself at start if you forget.)
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, exceptions, http
from mitmproxy.addonmanager import Loader

from proxy_addons.addons import flows, playback
from proxy_addons.addons.connection_strategy import ensure_lazy_connections
from proxy_addons.addons.declared_options import check_choices, declare
from proxy_addons.addons.match_options import MATCH_OPTIONS, match_rule
from proxy_addons.cassette import cassette
from proxy_addons.cassette.match_rule import MatchRuleError
from proxy_addons.cassette.matching import CassetteIndex
from proxy_addons.cassette.on_miss import OnMiss
from proxy_addons.options.replay import REPLAY

logger = logging.getLogger(__name__)


class Replay:
    def __init__(self) -> None:
        self.index = CassetteIndex()
        self.is_running = False
        self.answer_misses = True  # graph_on_miss is OnMiss.ERROR, read once per change
        self.echo = playback.NO_ECHO

    def load(self, loader: Loader) -> None:
        declare(loader, REPLAY)

    def configure(self, updated: set[str]) -> None:
        check_choices(updated, REPLAY)
        self.answer_misses = ctx.options.graph_on_miss == OnMiss.ERROR
        if {"graph_cassette", "graph_match_body", *MATCH_OPTIONS} & updated:
            rule = match_rule(match_body=ctx.options.graph_match_body)
            try:
                interactions = cassette.load(ctx.options.graph_cassette)
                self.index = CassetteIndex(interactions, rule=rule)
            except (cassette.CassetteError, MatchRuleError) as exc:
                raise exceptions.OptionsError(str(exc)) from None
            # Before start, mitmproxy may configure twice (a refused value is rolled back to
            # the default): say what is served once, when it is.
            if self.is_running:
                self._announce()
        self.index.allow_repeats = ctx.options.graph_allow_playback_repeats
        if {"graph_cassette", "graph_match_body", "graph_echo"} & updated:
            self.echo = playback.echo_rules(self.index)

    def _announce(self) -> None:
        logger.info(
            "replaying %d interactions from %s", len(self.index), ctx.options.graph_cassette
        )

    def running(self) -> None:
        self.is_running = True
        server = ctx.master.addons.get("proxyserver")
        if server is None or server.listen_addrs():  # a proxy that failed to bind says so
            self._announce()
        ensure_lazy_connections()

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if flows.claim(flow) is not None:
            playback.play(flow, self.index, answer_misses=self.answer_misses, echo=self.echo)
