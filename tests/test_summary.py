"""The exit summary: what it counts, how it is printed and written, and that a stop prints it."""

from __future__ import annotations

import json
import signal

import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons import script
from mitmproxy.test import taddons, tflow

from proxy_addons import examples, flows
from proxy_addons import summary as summary_module
from proxy_addons.models import Problem
from proxy_addons.summary import Summary

ME = examples.ME_URL
JOIN_URL = ME.replace("virtualAppointment", "getVirtualAppointmentJoinWebUrl")


def finished_flow(method: str, url: str, *, response: bool = True, **metadata) -> http.HTTPFlow:
    flow = tflow.tflow(resp=response, err=not response)
    flow.request.method = method
    flow.request.url = url
    flow.metadata.update(metadata)
    return flow


@pytest.fixture
def summary():
    addon = Summary()
    with taddons.context(addon) as tctx:
        yield addon, tctx


def pass_through(addon: Summary, *flows_: http.HTTPFlow) -> None:
    for flow in flows_:
        (addon.response if flow.response else addon.error)(flow)


def test_counts_per_route_answer_source_fault_kind_recorded_and_problems(summary):
    addon, _ = summary
    recorded = finished_flow("GET", ME)
    pass_through(
        addon,
        finished_flow("PUT", ME, **{flows.ANSWERED_BY: "replay"}),
        finished_flow(
            "PUT",
            ME,
            **{
                flows.ANSWERED_BY: "fault",
                flows.FAULT: "throttle",
                flows.FAULTS_INJECTED: ["latency", "throttle"],
            },
        ),
        finished_flow(
            "PUT", ME, response=False, **{flows.ANSWERED_BY: "fault", flows.FAULT: "reset"}
        ),
        recorded,
        finished_flow("GET", JOIN_URL, **{flows.ANSWERED_BY: "emulator"}),
        finished_flow("POST", ME, **{flows.ANSWERED_BY: "check"}),
        finished_flow("GET", "https://example.com/beta/me/onlineMeetings/x/virtualAppointment"),
    )
    # the recorder's hooks run after the summary's: what they add later still counts
    recorded.metadata[flows.RECORDED] = True
    recorded.metadata[flows.PROBLEMS] = [
        Problem("$.id", "a string", "42"),
        Problem("$.id", "a string", "43"),
        Problem("$.settings.x", "boolean", "'true' (accepted)", severity="note"),
    ]
    result = addon.summary()
    assert result["requests"] == 6
    assert result["answered_by"] == {
        "replay": 1,
        "emulator": 1,
        "upstream": 1,
        "fault": 2,
        "check": 1,
        "no-response": 0,
    }
    assert (result["replayed"], result["recorded"]) == (1, 1)
    assert (result["validation_problems"], result["validation_notes"]) == (2, 1)
    assert result["faults"] == {"latency": 1, "reset": 1, "throttle": 1}
    assert {name: row["requests"] for name, row in result["routes"].items()} == {
        "create": 3,
        "get": 1,
        "join-url": 1,
        "other": 1,
    }


def test_a_flow_seen_twice_counts_once(summary):
    addon, _ = summary
    flow = finished_flow("PUT", ME)
    addon.response(flow)
    addon.error(flow)
    assert addon.summary()["requests"] == 1


def test_done_prints_a_table_and_writes_json_atomically(summary, tmp_path, capsys):
    addon, tctx = summary
    target = tmp_path / "summary.json"
    tctx.configure(addon, graph_summary_json=str(target))
    pass_through(addon, finished_flow("PUT", ME, **{flows.ANSWERED_BY: "replay"}))
    addon.done()
    assert json.loads(target.read_text())["routes"]["create"]["replay"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    printed = capsys.readouterr().err
    assert "graph-vcr-proxy summary" in printed and "create" in printed


def test_nothing_is_printed_when_no_graph_call_was_seen(summary, capsys):
    addon, _ = summary
    addon.done()
    assert capsys.readouterr().err == ""


def test_summary_json_in_a_missing_folder_is_refused_at_start(summary, tmp_path):
    addon, tctx = summary
    with pytest.raises(exceptions.OptionsError, match="no such folder"):
        tctx.configure(addon, graph_summary_json=str(tmp_path / "absent" / "s.json"))


@pytest.mark.e2e
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_proxy_prints_and_writes_the_summary(
    start_proxy, client_for, tmp_path, stop_signal
):
    target = tmp_path / "summary.json"
    proxy = start_proxy("replay", "--fault", "unavailable:nth=2", "--summary-json", str(target))
    client = client_for(proxy)
    statuses = [
        client.put(ME, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS).status_code
        for _ in range(3)
    ]
    assert statuses == [201, 503, 201]
    proxy.process.send_signal(stop_signal)
    assert proxy.stop() == 0
    result = json.loads(target.read_text())
    assert (result["requests"], result["replayed"], result["faults"]) == (3, 2, {"unavailable": 1})
    stderr = "".join(proxy.stderr)
    assert "graph-vcr-proxy summary" in stderr
    assert "unavailable" in stderr


def test_the_addon_loads_as_a_mitmdump_script():
    addon = script.load_script(summary_module.__file__).addons[0]
    with taddons.context(addon):
        addon.response(finished_flow("PUT", ME))
        assert addon.summary()["requests"] == 1
