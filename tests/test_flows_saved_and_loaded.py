"""Our flows can be saved: mitmproxy's own flow files (``mitmdump -w``, mitmweb's File > Save)
write them and read them back, whatever our addons did to them, at any point of the flow."""

from __future__ import annotations

import asyncio
import io
import json

from helpers import graph_flow
from mitmproxy import http
from mitmproxy.io import FlowReader, FlowWriter
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.record import Record
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.summary import Summary
from proxy_addons.addons.validation_report import Validation
from proxy_addons.addons.web_tags import WebTags
from proxy_addons.cassette import cassette, examples
from proxy_addons.common.answered_by import AnsweredBy

ME = examples.ME_URL
JSON = {"Content-Type": "application/json"}


def saved_and_read_back(flow: http.HTTPFlow) -> http.HTTPFlow:
    """``flow`` through mitmproxy's flow file format and back."""
    buffer = io.BytesIO()
    FlowWriter(buffer).add(flow)
    buffer.seek(0)
    (read,) = list(FlowReader(buffer).stream())
    assert isinstance(read, http.HTTPFlow)
    return read


def documented_create() -> http.HTTPFlow:
    return graph_flow("PUT", ME, examples.REQUEST_BODY, {**JSON, "client-request-id": "c-1"})


def test_a_replayed_flow_with_faults_summary_and_web_tags_is_saved_and_read_back():
    faults, summary, replay, tags = FaultInjector(), Summary(), Replay(), WebTags()
    with taddons.context(faults, summary, replay, tags) as tctx:
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        tctx.configure(faults, graph_faults=["latency:ms=0"])
        flow = documented_create()
        summary.requestheaders(flow)
        asyncio.run(faults.request(flow))
        replay.request(flow)
        mid_flight = saved_and_read_back(flow)  # what mitmweb saves before the response hooks
        faults.response(flow)
        summary.response(flow)
        tags.response(flow)
        read = saved_and_read_back(flow)
    assert flows.answered_by(mid_flight) == AnsweredBy.REPLAY
    assert flows.answered_by(read) == AnsweredBy.REPLAY
    assert read.metadata[flows.FAULTS_INJECTED] == ["latency"]
    assert read.metadata[flows.REPLAYED] == [str(flow.metadata[flows.REPLAYED][0]), 0]
    assert read.comment.startswith("replay: create-virtualappointment-me.yaml #0")
    assert read.response is not None and read.response.status_code == 201
    assert json.loads(read.response.content) == json.loads(examples.RESPONSE_BODY)
    # what we keep beside a flow is worked out again for a flow read from a file
    route = flows.route_of(read)
    assert route is not None and route.operation == "create"
    assert flows.body_of(read).document == json.loads(examples.REQUEST_BODY)


def test_a_recorded_flow_keeps_its_validation_problems_through_a_flow_file(tmp_path):
    validation, record = Validation(), Record()  # the recorder's chain validates before it
    with taddons.context(validation, record) as tctx:
        tctx.configure(record, graph_cassette=str(tmp_path / "new.yaml"), graph_record_fsync=False)
        body = json.dumps({"settings": {"allowClientToJoinUsingBrowser": 3}})
        flow = graph_flow("PUT", ME, body, JSON)
        validation.request(flow)
        record.request(flow)
        forwarded = saved_and_read_back(flow)  # the recorder holds what was sent, not the flow
        flow.response = http.Response.make(201, b'{"id": 5}', JSON)
        validation.response(flow)
        asyncio.run(record.response(flow))
        read = saved_and_read_back(flow)
    assert flows.answered_by(forwarded) is None and forwarded.response is None
    assert read.metadata[flows.RECORDED] is True
    problems = flows.problems(read.metadata)
    assert problems == flows.problems(flow.metadata)
    assert {p.path for p in problems} == {"$.settings.allowClientToJoinUsingBrowser", "$.id"}
    assert len(cassette.load(tmp_path / "new.yaml")) == 1


def test_a_flow_waiting_for_a_broken_body_fault_is_saved_and_still_gets_it():
    faults, replay = FaultInjector(), Replay()
    with taddons.context(faults, replay) as tctx:
        tctx.configure(faults, graph_faults=["malformed:times=1"])
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        flow = documented_create()
        asyncio.run(faults.request(flow))
        replay.request(flow)
        waiting = saved_and_read_back(flow)  # the pending fault is not in what is saved
        whole = flow.response.content
        faults.response(flow)
        read = saved_and_read_back(flow)
    assert waiting.response is not None and waiting.response.content == whole
    assert flows.answered_by(read) == AnsweredBy.FAULT
    assert read.metadata[flows.FAULT] == "malformed"
    assert len(read.response.content) < len(whole)


def test_a_miss_and_a_refused_request_are_saved_too():
    checks, replay = RequestChecks(), Replay()  # every chain checks requests before replay
    with taddons.context(checks, replay) as tctx:
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        miss = graph_flow("GET", ME)
        refused = graph_flow("PUT", ME, b"{not json", JSON)
        for flow in (miss, refused):
            checks.request(flow)
            replay.request(flow)
    assert flows.answered_by(saved_and_read_back(miss)) == AnsweredBy.MISS
    assert flows.answered_by(saved_and_read_back(refused)) == AnsweredBy.CHECK
    assert saved_and_read_back(refused).response.status_code == 400
