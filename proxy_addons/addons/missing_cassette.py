"""Addon: replay of a cassette file that does not exist, as vcrpy's record mode ``none`` does.

vcrpy loads a missing cassette as an empty one and raises only when a request arrives: a test
that sends nothing needs no cassette. The pytest plugin's proxy does the same in record mode
``none`` (``session.py`` puts this addon where ``Replay`` would be): every Graph request it
claims is answered with the same ``501 CassetteMiss`` a replay miss gets, saying that the file
does not exist, and the test then fails as a miss does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from mitmproxy import http

from proxy_addons.addons import flows
from proxy_addons.addons.playback import MISS_CODE, MISS_STATUS
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.replies import Reply, error_reply

logger = logging.getLogger(__name__)


def missing_reply(path: Path, method: str, url: str, request_headers: Mapping[str, str]) -> Reply:
    return error_reply(
        MISS_STATUS,
        MISS_CODE,
        f"No recorded interaction matches {method} {url}: cassette {path} does not exist "
        "(record mode none); record it with --graph-record-mode=once, or name another with "
        "graph_vcr(cassette=...).",
        request_headers,
    )


class MissingCassette:
    def __init__(self, path: Path) -> None:
        self.path = path

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        if flows.claim(flow) is None:
            return
        request = flow.request
        headers = flows.request_headers(flow)
        reply = missing_reply(self.path, request.method, request.pretty_url, headers)
        flows.answer(flow, reply, by=AnsweredBy.MISS)
        logger.warning(
            "cassette miss: %s %s (%s does not exist)",
            request.method,
            request.pretty_url,
            self.path,
        )
