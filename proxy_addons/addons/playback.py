"""Answering requests from recorded interactions: the replay core, shared by every addon that
plays a cassette.

``Replay`` plays for every request it claims; ``Record`` plays in record modes
``new_episodes`` and ``none``. Both go through :func:`play`, so a request is matched, answered,
tagged and logged the same way wherever a cassette answers it, and a miss is the same
``501 CassetteMiss`` naming the closest recorded request, or saying that every answer
recorded for the request was already played (each answers once, as in vcrpy).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterable, Mapping

from mitmproxy import ctx, exceptions, http

from proxy_addons.addons import flows
from proxy_addons.cassette import echo as echoing
from proxy_addons.cassette.cassette import Interaction
from proxy_addons.cassette.matching import CassetteIndex, SentRequest, Shape
from proxy_addons.cassette.on_miss import MISS_CODE, MISS_STATUS
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.replies import Reply, error_reply, refresh_headers

logger = logging.getLogger(__name__)


def replayed_reply(interaction: Interaction, request_headers: Mapping[str, str]) -> Reply:
    """A recorded response with fresh request-id, echoed client-request-id and a new Date."""
    recorded = interaction.reply  # made from the recording once, then reused
    return dataclasses.replace(
        recorded, headers=tuple(refresh_headers(recorded.headers, request_headers))
    )


NO_ECHO = echoing.EchoRules()


def echo_rules(interactions: Iterable[Interaction]) -> echoing.EchoRules:
    """The echo of each interaction a cassette addon plays, from ``graph_echo`` and the
    recordings' own settings; a bad setting is refused as an option is."""
    try:
        return echoing.EchoRules.build(interactions, ctx.options.graph_echo)
    except echoing.EchoError as exc:
        raise exceptions.OptionsError(str(exc)) from None


def echoed(flow: http.HTTPFlow, hit: Interaction, reply: Reply, rules: echoing.EchoRules) -> Reply:
    """``reply`` with what ``rules`` say ``hit`` echoes of the flow's request filled in."""
    wanted = rules.of(hit)
    if not wanted.active:
        return reply
    body = flows.body_of(flow).document
    return echoing.echoed_reply(reply, wanted, body, flows.route_of(flow))


def miss_reply(
    index: CassetteIndex,
    method: str,
    uri: str,
    sent: Shape,
    request_headers: Mapping[str, str],
    request: SentRequest | None = None,
) -> Reply:
    """Graph's error envelope for a request ``index`` has no recording of, saying why:
    ``sent`` is the shape the lookup was given (headers included), so the miss explains
    the very comparison that failed."""
    miss = index.explain(sent, request)
    lead = "No recorded answer is left for" if miss.exhausted else "No recorded interaction matches"
    return error_reply(
        MISS_STATUS, MISS_CODE, f"{lead} {method} {uri}: {miss.explain()}.", request_headers
    )


def answer_miss(flow: http.HTTPFlow, index: CassetteIndex) -> None:
    """Answer a request ``index`` has no recording for with 501 CassetteMiss, and log it."""
    request = flow.request
    url = request.pretty_url
    headers = flows.request_headers(flow)
    sent = functools.partial(flows.vcr_request_of, flow)
    reply = miss_reply(index, request.method, url, flows.shape_of(flow), headers, sent)
    flows.answer(flow, reply, by=AnsweredBy.MISS)
    logger.warning("cassette miss: %s %s", request.method, url)


def play(
    flow: http.HTTPFlow,
    index: CassetteIndex,
    *,
    answer_misses: bool,
    echo: echoing.EchoRules = NO_ECHO,
) -> bool:
    """Answer ``flow`` with its next recording from ``index`` (echoing the request as
    ``echo`` says) or, with ``answer_misses``, with a miss; False when it was left
    unanswered (to be forwarded)."""
    sent = functools.partial(flows.vcr_request_of, flow)
    hit = index.play(flows.shape_of(flow), flows.body_of(flow).raw, sent)
    if hit is not None:
        reply = echoed(flow, hit, replayed_reply(hit, flows.request_headers(flow)), echo)
        flows.answer(flow, reply, by=AnsweredBy.REPLAY)
        flow.metadata[flows.REPLAYED] = (str(hit.source), hit.position)
        return True
    if answer_misses:
        answer_miss(flow, index)
        return True
    return False
