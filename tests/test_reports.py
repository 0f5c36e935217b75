"""The reports in the addons: the guidance addon's advice and log line, and the summary's
least-privilege and guidance sections, through mitmproxy's own test harness."""

from __future__ import annotations

import json
import logging

import pytest
from helpers import graph_flow
from mitmproxy import exceptions, http
from mitmproxy.test import taddons

from proxy_addons import guidance as guidance_script
from proxy_addons.addons import flows
from proxy_addons.addons.guidance import Guidance
from proxy_addons.addons.script_chain import chain_of
from proxy_addons.addons.summary import Summary
from proxy_addons.cassette import examples
from proxy_addons.graph import tokens
from proxy_addons.graph.guidance import Advice
from proxy_addons.testing.session import NOT_PER_SESSION, SessionError, checked_arguments

ME = examples.ME_URL
V1_JOIN = ME.replace("/beta/", "/v1.0/").replace(
    "virtualAppointment", "getVirtualAppointmentJoinWebUrl"
)
TOKEN = tokens.token(scopes="VirtualAppointment.Read OnlineMeetings.ReadWrite")


def answered(flow):
    flow.response = http.Response.make(200)
    return flow


@pytest.fixture
def chain():
    guide, summary = Guidance(), Summary()
    with taddons.context(guide, summary) as tctx:
        summary.running()  # finds the guidance addon in the chain, as at a proxy's start
        yield guide, summary, tctx


def through(guide: Guidance, summary: Summary, flow) -> None:
    summary.requestheaders(flow)
    guide.request(flow)
    summary.response(answered(flow))


def test_the_guidance_addon_notes_advice_in_the_flow_and_logs_one_line(chain, caplog):
    guide, _, _ = chain
    flow = graph_flow("PATCH", ME, "{}", {"Content-Type": "application/json"})
    with caplog.at_level(logging.INFO, logger="proxy_addons.addons.guidance"):
        guide.request(flow)
    assert flow.metadata[flows.GUIDANCE] == [
        Advice.NO_CLIENT_REQUEST_ID,
        Advice.BETA_URL,
        Advice.WRITE_WITHOUT_IF_MATCH,
    ]
    (line,) = caplog.messages
    assert line.startswith("guidance: PATCH /beta/me/onlinemeetings/")


def test_a_request_that_does_all_graph_recommends_is_left_alone(chain, caplog):
    guide, _, _ = chain
    flow = graph_flow("GET", V1_JOIN, None, {"client-request-id": "42"})
    with caplog.at_level(logging.INFO):
        guide.request(flow)
    assert flows.GUIDANCE not in flow.metadata and not caplog.messages


def test_requests_that_are_not_ours_get_no_advice(chain):
    guide, _, _ = chain
    flow = graph_flow("PUT", "https://example.com/beta/x")
    guide.request(flow)
    assert flows.GUIDANCE not in flow.metadata


def test_the_summary_counts_the_advice_given_per_kind(chain):
    guide, summary, _ = chain
    through(guide, summary, graph_flow("GET", V1_JOIN))
    through(guide, summary, graph_flow("DELETE", ME, None, {"client-request-id": "1"}))
    section = summary.summary()["guidance"]
    assert section == {
        "requests_advised": 2,
        "advice": {"no-client-request-id": 1, "beta-url": 1, "write-without-if-match": 1},
    }


def test_the_summary_carries_the_permissions_report_only_when_asked(chain):
    guide, summary, tctx = chain
    authorization = {"Authorization": f"Bearer {TOKEN}"}
    through(guide, summary, graph_flow("GET", V1_JOIN, None, authorization))
    assert "permissions" not in summary.summary()
    tctx.configure(summary, graph_permissions_report=True)
    through(guide, summary, graph_flow("GET", V1_JOIN, None, authorization))
    (token,) = summary.summary()["permissions"]["tokens"]
    assert token["operations"] == {"join-url": 1}
    assert token["beyond_needed"] == ["OnlineMeetings.ReadWrite"]


def test_done_writes_markdown_and_prints_the_permissions_report(chain, tmp_path, capsys):
    guide, summary, tctx = chain
    target = tmp_path / "summary.md"
    tctx.configure(summary, graph_summary_markdown=str(target), graph_permissions_report=True)
    through(guide, summary, graph_flow("GET", V1_JOIN, None, {"Authorization": f"Bearer {TOKEN}"}))
    summary.done()
    assert "### Least privilege" in target.read_text()
    printed = capsys.readouterr().err
    assert "least privilege: operations called" in printed and "VirtualAppointment.Read" in printed


def test_a_summary_markdown_naming_a_folder_is_refused_at_start(chain, tmp_path):
    _, summary, tctx = chain
    with pytest.raises(exceptions.OptionsError, match=r"summary Markdown .*: is a folder"):
        tctx.configure(summary, graph_summary_markdown=str(tmp_path))


def test_the_guidance_addon_loads_as_a_mitmdump_script():
    with taddons.context() as tctx:
        tctx.script(guidance_script.__file__)
        assert any(isinstance(a, Guidance) for a in chain_of(tctx.master.addons).addons)


@pytest.mark.parametrize("flag", ["--summary-markdown=x.md", "--permissions-report", "--guidance"])
def test_a_tests_session_can_not_ask_for_the_runs_reports(flag, tmp_path):
    from proxy_addons.testing.session import mode_parsers

    with pytest.raises(SessionError, match="--graph-summary-markdown"):
        checked_arguments(mode_parsers()["replay"], [flag], tmp_path)
    assert {"summary_markdown", "permissions_report", "guidance"} <= set(NOT_PER_SESSION)


def test_summary_json_round_trips_the_reports(chain):
    guide, summary, tctx = chain
    tctx.configure(summary, graph_permissions_report=True)
    through(guide, summary, graph_flow("GET", V1_JOIN))
    document = summary.summary()
    assert json.loads(json.dumps(document)) == document


def test_the_web_view_tags_a_flow_with_its_advice(chain):
    from proxy_addons.addons.web_tags import facts_of, tag_for

    guide, _, _ = chain
    flow = graph_flow("GET", V1_JOIN)
    guide.request(flow)
    assert tag_for(facts_of(answered(flow))).comment.endswith("guidance: no-client-request-id")


def test_without_the_guidance_addon_the_summary_has_no_guidance_section():
    summary = Summary()
    with taddons.context(summary):
        summary.running()
        flow = graph_flow("GET", V1_JOIN)
        summary.requestheaders(flow)
        summary.response(answered(flow))
        assert "guidance" not in summary.summary()
