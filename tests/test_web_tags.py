"""The web-tags addon: the label and marker of each answer source, and the addon after the
real replay, fault and emulator addons, driven by mitmproxy's test helpers (no sockets)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from helpers import graph_flow
from mitmproxy import flow as mitm_flow
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from mitmproxy.utils.emoji import emoji

from proxy_addons.addons import flows
from proxy_addons.addons.emulator import Emulator
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.web_tags import MARKERS, RECORDED_MARKER, FlowFacts, Tag, WebTags, tag_for
from proxy_addons.cassette import cassette, examples
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.models import Problem

ME = examples.ME_URL
HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer test-token"}


def documented_put(url: str = ME) -> http.HTTPFlow:
    return graph_flow("PUT", url, examples.REQUEST_BODY, HEADERS)


class UpdateSeen:
    """Collects the flows other addons announce as changed (what mitmweb's view listens to)."""

    def __init__(self) -> None:
        self.flows: list[mitm_flow.Flow] = []

    def update(self, flows: Sequence[mitm_flow.Flow]) -> None:
        self.flows.extend(flows)


# --- the pure choice ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("facts", "tag"),
    [
        (
            FlowFacts(AnsweredBy.REPLAY, replayed=("/c/cassettes/me.yaml", 3)),
            Tag(":vhs:", "replay: me.yaml #3"),
        ),
        (
            FlowFacts(AnsweredBy.MISS),
            Tag(":question:", "miss: no recorded interaction matches (501 CassetteMiss)"),
        ),
        (FlowFacts(AnsweredBy.EMULATOR), Tag(":robot:", "emulator")),
        (FlowFacts(AnsweredBy.FAULT, faults=("throttle",)), Tag(":boom:", "fault: throttle")),
        (
            FlowFacts(AnsweredBy.FAULT, faults=("latency", "etag-mismatch")),
            Tag(":boom:", "fault: etag-mismatch; fault: latency"),
        ),
        (
            FlowFacts(AnsweredBy.UPSTREAM, upstream="graph.microsoft.com:443"),
            Tag(":globe_with_meridians:", "upstream: graph.microsoft.com:443"),
        ),
        (
            FlowFacts(AnsweredBy.UPSTREAM, recorded=True, upstream="127.0.0.1:9000", problems=2),
            Tag(":floppy_disk:", "recorded: answered by 127.0.0.1:9000; 2 validation problems"),
        ),
        (FlowFacts(AnsweredBy.CHECK), Tag(":no_entry:", "check: refused as Graph refuses it")),
        (
            FlowFacts(AnsweredBy.EMULATOR, batch_id="create"),
            Tag(":robot:", "emulator; via $batch, id 'create'"),
        ),
        (
            FlowFacts(AnsweredBy.UNREACHABLE, upstream="127.0.0.1:9"),
            Tag(":satellite:", "unreachable: 127.0.0.1:9 (502 UpstreamUnreachable)"),
        ),
        (
            FlowFacts(AnsweredBy.NO_RESPONSE, error="Connection killed."),
            Tag(":electric_plug:", "no-response: Connection killed."),
        ),
        (
            FlowFacts(AnsweredBy.REPLAY, replayed=("me.yaml", 0), faults=("latency",)),
            Tag(":vhs:", "replay: me.yaml #0; fault: latency"),
        ),
    ],
)
def test_each_source_gets_its_marker_and_a_comment_naming_how_it_answered(
    facts: FlowFacts, tag: Tag
) -> None:
    assert tag_for(facts) == tag


def test_every_marker_is_one_mitmproxy_accepts_and_each_source_has_its_own() -> None:
    markers = [*MARKERS.values(), RECORDED_MARKER]
    assert set(MARKERS) == set(AnsweredBy)
    assert len(set(markers)) == len(markers)
    # mitmproxy's flow.mark command refuses anything else; mitmweb shows anything else as 🔴.
    assert all(marker in emoji for marker in markers), [m for m in markers if m not in emoji]


# --- the addon after the real ones --------------------------------------------------------


def test_a_replayed_flow_names_the_cassette_file_and_interaction_and_is_announced() -> None:
    replay, tags, seen = Replay(), WebTags(), UpdateSeen()
    with taddons.context(replay, tags, seen) as tctx:
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        flow = documented_put(examples.USERS_URL)
        replay.request(flow)
        tags.response(flow)
    assert flow.response is not None and flow.response.status_code == 201
    assert flow.comment == "replay: create-virtualappointment-users.yaml #0"
    assert flow.marked == ":vhs:"
    assert seen.flows == [flow]


def test_a_fault_then_the_emulator_are_told_apart_flow_by_flow() -> None:
    faults, emulator, tags = FaultInjector(), Emulator(), WebTags()
    with taddons.context(faults, emulator, tags) as tctx:
        tctx.configure(faults, graph_faults=["throttle:times=1"])
        tctx.configure(emulator, graph_require_auth=True)
        answered = []
        for _ in range(2):
            flow = documented_put()
            asyncio.run(faults.request(flow))  # async: a latency fault waits there
            emulator.request(flow)
            tags.response(flow)
            answered.append(flow)
    assert [f.response.status_code for f in answered] == [429, 201]  # type: ignore[union-attr]
    assert [(f.marked, f.comment) for f in answered] == [
        (":boom:", "fault: throttle"),
        (":robot:", "emulator"),
    ]


def test_a_killed_flow_is_tagged_at_its_error() -> None:
    tags = WebTags()
    with taddons.context(tags):
        flow = documented_put()
        flow.metadata[flows.ANSWERED_BY] = AnsweredBy.FAULT
        flow.metadata[flows.FAULTS_INJECTED] = ["reset"]
        flow.kill()
        tags.error(flow)
    assert (flow.marked, flow.comment) == (":boom:", "fault: reset")


def test_validation_problems_count_errors_not_notes() -> None:
    tags = WebTags()
    with taddons.context(tags):
        flow = documented_put()
        flow.response = http.Response.make(201)
        flow.metadata[flows.RECORDED] = True
        flows.add_problems(
            flow,
            [
                Problem("$.id", "a valid string", "5"),
                Problem("$.settings.x", "a valid boolean", "'true'", severity="note"),
            ],
        )
        tags.response(flow)
    assert flow.marked == ":floppy_disk:"
    assert flow.comment == "recorded: answered by graph.microsoft.com:443; 1 validation problem"


def test_a_comment_and_marker_someone_else_set_are_kept_and_ours_follow_the_flow() -> None:
    tags = WebTags()
    with taddons.context(tags):
        flow = documented_put()
        flow.response = http.Response.make(200)
        tags.response(flow)
        assert flow.comment.startswith("upstream: ")
        flow.metadata[flows.ANSWERED_BY] = AnsweredBy.FAULT  # a later answer: ours follows
        flow.metadata[flows.FAULTS_INJECTED] = ["malformed"]
        tags.response(flow)
        assert (flow.marked, flow.comment) == (":boom:", "fault: malformed")
        flow.comment, flow.marked = "looks wrong, ask Ann", ":star:"  # a user's, in mitmweb
        tags.error(flow)
    assert (flow.marked, flow.comment) == (":star:", "looks wrong, ask Ann")


def test_traffic_that_is_not_a_graph_route_is_left_alone() -> None:
    tags, seen = WebTags(), UpdateSeen()
    with taddons.context(tags, seen):
        flow = tflow.tflow(resp=True)  # http://address:22/path
        tags.response(flow)
    assert (flow.marked, flow.comment) == ("", "")
    assert seen.flows == []
