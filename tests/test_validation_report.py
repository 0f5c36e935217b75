"""Validation, a step of its own: what it reports of requests and upstream answers, what
``enforce`` refuses, and that it serves the recorder as it serves replay and simulate."""

from __future__ import annotations

import json
import logging

import brotli
import pytest
from fault_chain import run_hook
from helpers import graph_flow
from mitmproxy import exceptions, http
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.record import Record
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.validation_report import Validation
from proxy_addons.cassette import cassette, examples

ME = examples.ME_URL
JSON = {"Content-Type": "application/json"}
INVALID_BODY = json.dumps({"settings": {"allowClientToJoinUsingBrowser": 3}})
PATH = "/beta/me/onlineMeetings/MSpkYzE3Njc0Yy04MWQ5LTRhZGItYmZi/virtualAppointment"


def upstream_answers(flow: http.HTTPFlow, status: int, body: bytes, **headers: str) -> None:
    """What mitmproxy does when upstream answers: a response on an unanswered flow."""
    flow.response = http.Response.make(
        status, body, {"Content-Type": "application/json", **headers}
    )


class Chain:
    """Graph's request checks, validation and the mode's addon, in chain order."""

    def __init__(self, mode: object) -> None:
        self.validation = Validation()
        self.addons = [RequestChecks(), self.validation, mode]

    def exchange(self, flow: http.HTTPFlow, status: int = 200, body: bytes = b"{}") -> None:
        """The request hooks; 'upstream' answers if nobody did; the response hooks."""
        run_hook(self.addons, "request", flow)
        if flow.response is None:
            upstream_answers(flow, status, body)
        run_hook(self.addons, "response", flow)


@pytest.fixture
def recording(tmp_path):
    """The recorder's chain: validation (default warn) before Record."""
    chain = Chain(Record())
    with taddons.context(chain.validation, chain.addons[2]) as tctx:

        def configure(**options: object) -> Chain:
            tctx.configure(chain.validation, **{"graph_cassette": str(tmp_path / "c.yaml")})
            tctx.configure(chain.validation, **options)
            return chain

        yield configure


def test_a_compressed_upstream_answer_is_validated_decoded(recording):
    chain = recording()
    flow = graph_flow("GET", ME, headers={"Accept": "*/*"})
    run_hook(chain.addons, "request", flow)
    upstream_answers(flow, 200, b"", **{"Content-Encoding": "br"})
    flow.response.raw_content = brotli.compress(b'{"id": 5}')
    run_hook(chain.addons, "response", flow)
    assert [str(p) for p in flows.problems(flow.metadata)] == [
        "$.id: expected a valid string, got 5"
    ]


def test_a_note_is_logged_at_debug_level_and_counted_but_prints_nothing_by_default(
    recording, caplog
):
    """The documented "true" string comes with every documented create: a line per request
    at the CLI's default level would bury the real problems."""
    chain = recording()
    flow = graph_flow("PUT", ME, examples.REQUEST_BODY, JSON)
    with caplog.at_level(logging.DEBUG, logger="proxy_addons"):
        chain.exchange(flow, 201, examples.RESPONSE_BODY.encode())
    notes = [r for r in caplog.records if "allowClientToJoinUsingBrowser" in r.getMessage()]
    assert notes and all(r.levelno == logging.DEBUG for r in notes)
    assert flows.problems(flow.metadata)
    assert all(p.severity != "error" for p in flows.problems(flow.metadata))


def test_warn_logs_one_line_per_problem_and_keeps_them_for_the_summary(recording, caplog):
    chain = recording()
    body = json.dumps({"settings": {"allowClientToJoinUsingBrowser": 3}, "bogus": 1})
    flow = graph_flow("PUT", ME, body, JSON)
    with caplog.at_level(logging.INFO, logger="proxy_addons"):
        chain.exchange(flow, 201, b'{"id": 5}')
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert (
        f"PUT {PATH}: $.settings.allowClientToJoinUsingBrowser: expected a valid boolean"
        in (lines[0])
    )
    assert any(line.startswith(f"PUT {PATH}: $.bogus: expected a known property") for line in lines)
    assert any("$.id: expected a valid string, got 5 (response 201)" in line for line in lines)
    assert len(flows.problems(flow.metadata)) == len(lines) == 3
    assert flow.metadata[flows.RECORDED] is True  # warn still forwards and records


def test_the_answers_problems_name_the_request_as_sent_not_as_redirected_upstream(
    recording, caplog
):
    chain = recording(graph_upstream="http://127.0.0.1:9/prefix")
    flow = graph_flow("GET", ME, headers={"Accept": "*/*"})
    with caplog.at_level(logging.WARNING, logger="proxy_addons"):
        chain.exchange(flow, 200, b'{"id": 5}')
    assert flow.request.path.startswith("/prefix")  # the recorder sent it upstream
    assert [r.getMessage() for r in caplog.records] == [
        f"GET {PATH}: $.id: expected a valid string, got 5 (response 200)"
    ]


def test_enforce_refuses_an_invalid_request_with_graph_400_and_sends_nothing(recording, tmp_path):
    chain = recording(graph_validate="enforce", graph_upstream="http://127.0.0.1:9")
    flow = graph_flow("PUT", ME, INVALID_BODY, JSON)
    run_hook(chain.addons, "request", flow)
    assert flow.response.status_code == 400
    error = flow.response.json()["error"]
    assert error["code"] == "BadRequest"
    assert "$.settings.allowClientToJoinUsingBrowser" in error["message"]
    assert flows.answered_by(flow) == "check"
    assert flow.request.host == "graph.microsoft.com"  # not pointed upstream
    run_hook(chain.addons, "response", flow)
    assert not (tmp_path / "c.yaml").exists()
    documented = graph_flow("PUT", ME, examples.REQUEST_BODY, JSON)  # notes only: accepted
    run_hook(chain.addons, "request", documented)
    assert documented.response is None


def test_replay_with_enforce_refuses_an_invalid_request_before_the_cassette_answers():
    chain = Chain(Replay())
    with taddons.context(chain.validation, chain.addons[2]) as tctx:
        tctx.configure(chain.validation, graph_cassette=str(cassette.bundled_cassettes()))
        tctx.configure(chain.validation, graph_validate="enforce")
        invalid = graph_flow("PUT", ME, INVALID_BODY, JSON)
        documented = graph_flow("PUT", ME, examples.REQUEST_BODY, JSON)
        run_hook(chain.addons, "request", invalid)
        run_hook(chain.addons, "request", documented)
    assert (invalid.response.status_code, flows.answered_by(invalid)) == (400, "check")
    assert (documented.response.status_code, flows.answered_by(documented)) == (201, "replay")


def test_off_validates_nothing(recording, caplog):
    chain = recording(graph_validate="off")
    flow = graph_flow("PUT", ME, INVALID_BODY, JSON)
    with caplog.at_level(logging.DEBUG, logger="proxy_addons"):
        chain.exchange(flow, 201, b'{"id": 5}')
    assert flows.PROBLEMS not in flow.metadata
    assert flow.metadata[flows.RECORDED] is True


def test_an_unknown_mode_is_refused_naming_the_choices():
    validation = Validation()
    refused = pytest.raises(exceptions.OptionsError, match="graph_validate must be one of")
    with taddons.context(validation) as tctx, refused:
        tctx.configure(validation, graph_validate="loudly")


def test_validation_declares_its_option_alone_so_any_mode_can_carry_it():
    validation = Validation()
    with taddons.context(validation) as tctx:
        assert tctx.options.graph_validate == "warn"
        assert not hasattr(tctx.options, "graph_record_mode")
