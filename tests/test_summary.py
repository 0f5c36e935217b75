"""The exit summary: what it counts, how it is printed and written, and that a stop prints it."""

from __future__ import annotations

import asyncio
import gc
import io
import json
import signal
import threading
import time
import weakref

import httpx
import pytest
from conftest import httpx_client
from helpers import assert_one_line_error, graph_flow, run_cli
from mitmproxy import exceptions, http
from mitmproxy.io import FlowReader, FlowWriter
from mitmproxy.test import taddons, tflow
from rich.console import Console

from proxy_addons import summary as summary_script
from proxy_addons.addons import flows
from proxy_addons.addons import summary as summary_module
from proxy_addons.addons.record import Record
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.script_chain import chain_of
from proxy_addons.addons.summary import SOURCES, Summary
from proxy_addons.cassette import cassette, examples
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.graph.models import Problem

MISS = AnsweredBy.MISS

ME = examples.ME_URL
HEADERS = examples.REQUEST_HEADERS
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
    # the recorder's response hook runs before the summary's (the summary is loaded after it)
    recorded.metadata[flows.RECORDED] = True
    flows.add_problems(
        recorded,
        [
            Problem("$.id", "a string", "42"),
            Problem("$.id", "a string", "43"),
            Problem("$.settings.x", "boolean", "'true' (accepted)", severity="note"),
        ],
    )
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
    result = addon.summary()
    assert result["requests"] == 6
    assert result["answered_by"] == {
        "replay": 1,
        "miss": 0,
        "emulator": 1,
        "upstream": 1,
        "fault": 2,
        "check": 1,
        "internal-error": 0,
        "recording-failed": 0,
        "unreachable": 0,
        "network-policy": 0,
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


@pytest.mark.parametrize("arrived", [True, False])
def test_a_flow_seen_twice_counts_once(summary, arrived):
    addon, _ = summary
    flow = finished_flow("PUT", ME)
    if arrived:
        addon.requestheaders(flow)
    addon.response(flow)
    addon.error(flow)
    assert addon.summary()["requests"] == 1


def test_a_counted_flow_saved_and_read_back_counts_again(summary):
    """Nothing the summary does is written into the flow: ``mitmdump -r`` of a saved flow
    file, with the summary loaded, counts every flow in it."""
    addon, _ = summary
    flow = finished_flow("PUT", ME, **{flows.ANSWERED_BY: "replay"})
    addon.requestheaders(flow)
    addon.response(flow)
    buffer = io.BytesIO()
    FlowWriter(buffer).add(flow)
    buffer.seek(0)
    (read,) = FlowReader(buffer).stream()
    reader = Summary()
    reader.requestheaders(read)
    reader.response(read)
    assert (
        reader.summary()["answered_by"]["replay"] == addon.summary()["answered_by"]["replay"] == 1
    )


def test_a_counted_flow_is_forgotten_so_memory_does_not_grow_with_requests(summary):
    """A proxy left running answers requests for days: the summary keeps counts, not flows."""
    addon, _ = summary

    class Kept:
        """Something an addon left in a flow's metadata (a cached body, say)."""

    kept = Kept()
    alive = weakref.ref(kept)
    flow = finished_flow("PUT", ME, **{flows.ANSWERED_BY: "replay", "cached": kept})
    addon.requestheaders(flow)
    pass_through(addon, flow)
    del flow, kept
    gc.collect()
    assert alive() is None
    assert addon.in_flight == {}
    assert addon.summary()["answered_by"]["replay"] == 1


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


def test_summary_json_naming_a_folder_is_refused_at_start(summary, tmp_path):
    addon, tctx = summary
    with pytest.raises(exceptions.OptionsError) as caught:
        tctx.configure(addon, graph_summary_json=str(tmp_path))
    assert str(caught.value) == f"summary JSON {tmp_path}: is a folder, not a file"


def cassette_file(folder) -> str:
    path = folder / "me.yaml"
    path.write_text(cassette.cassette_text([examples.documented_interaction(ME)]), "utf-8")
    return str(path)


@pytest.mark.parametrize("set_summary_first", [True, False])
def test_summary_json_naming_the_cassette_is_refused_whatever_is_set_first(
    tmp_path, monkeypatch, set_summary_first
):
    path = cassette_file(tmp_path)
    monkeypatch.chdir(tmp_path)  # the same file, spelled differently
    replay, addon = Replay(), Summary()
    with taddons.context(addon, replay) as tctx:
        first, second = ("graph_summary_json", "graph_cassette")[:: 1 if set_summary_first else -1]
        values = {"graph_summary_json": "./me.yaml", "graph_cassette": path}
        tctx.options.update(**{first: values[first]})
        with pytest.raises(exceptions.OptionsError, match="is the cassette; writing the summary"):
            tctx.options.update(**{second: values[second]})


def test_the_summary_alone_in_mitmproxy_accepts_any_file_name(summary, tmp_path):
    addon, tctx = summary  # no replay or record loaded: there is no graph_cassette option
    tctx.configure(addon, graph_summary_json=str(tmp_path / "me.yaml"))
    assert tctx.options.graph_summary_json == str(tmp_path / "me.yaml")


# --- what is counted: misses apart from hits, and requests still in flight -----------------


def test_a_cassette_miss_is_counted_as_miss_and_not_as_replayed():
    replay, addon = Replay(), Summary()
    with taddons.context(addon, replay) as tctx:
        tctx.configure(replay, graph_cassette=str(cassette.bundled_cassettes()))
        hit = graph_flow("PUT", ME, examples.REQUEST_BODY, examples.REQUEST_HEADERS)
        miss = graph_flow("GET", ME)
        for flow in (hit, miss):
            addon.requestheaders(flow)
            replay.request(flow)
            addon.response(flow)
    result = addon.summary()
    assert (result["requests"], result["replayed"]) == (2, 1)
    assert (result["answered_by"]["replay"], result["answered_by"]["miss"]) == (1, 1)
    assert (result["routes"]["create"]["miss"], result["routes"]["get"]["miss"]) == (0, 1)
    assert MISS in SOURCES


def test_the_table_has_a_miss_column(summary, capsys):
    addon, _ = summary
    pass_through(addon, finished_flow("GET", ME, **{flows.ANSWERED_BY: MISS}))
    addon.done()
    header = next(line for line in capsys.readouterr().err.splitlines() if "requests" in line)
    assert [c.strip() for c in header.strip("┃│ ").split("┃")][:4] == [
        "route",
        "requests",
        "replay",
        "miss",
    ]


def test_the_at_a_glance_table_has_only_counted_columns_and_fits_80_columns(summary):
    addon, _ = summary
    pass_through(
        addon,
        finished_flow("PUT", ME, **{flows.ANSWERED_BY: AnsweredBy.EMULATOR}),
        finished_flow("GET", JOIN_URL, **{flows.ANSWERED_BY: AnsweredBy.FAULT}),
    )
    report = summary_module.report(addon.counts)
    out = io.StringIO()
    summary_module.render(report, Console(file=out, width=80), counted_only=True)
    lines = out.getvalue().splitlines()
    header = next(line for line in lines if "requests" in line)
    total = next(line for line in lines if "total" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == [
        "route",
        "requests",
        "emulator",
        "fault",
    ]
    assert [c.strip() for c in total.strip("│ ").split("│")] == ["total", "2", "1", "1"]
    assert "…" not in out.getvalue()  # no name cut short


def test_a_request_still_in_flight_at_exit_counts_as_no_response(summary):
    addon, _ = summary
    held = graph_flow("PUT", ME, examples.REQUEST_BODY, examples.REQUEST_HEADERS)
    addon.requestheaders(held)  # and nothing after it: the proxy stops first
    answered = finished_flow("GET", ME, **{flows.ANSWERED_BY: "replay"})
    addon.requestheaders(answered)
    addon.response(answered)
    result = addon.summary()
    assert result["requests"] == 2
    assert (result["answered_by"]["no-response"], result["answered_by"]["replay"]) == (1, 1)
    assert result["routes"]["create"]["no-response"] == 1


def test_a_request_that_is_not_ours_is_not_counted_when_it_arrives(summary):
    addon, _ = summary
    addon.requestheaders(graph_flow("GET", "https://graph.microsoft.com/v1.0/me/messages"))
    assert addon.summary()["requests"] == 0


@pytest.mark.e2e
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_signalled_proxy_prints_and_writes_the_summary(
    start_proxy, client_for, tmp_path, stop_signal
):
    target = tmp_path / "summary.json"
    proxy = start_proxy(
        "replay",
        "--fault",
        "unavailable:nth=2",
        "--summary-json",
        str(target),
        "--allow-playback-repeats",  # one recorded create answers both successes
    )
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


@pytest.mark.e2e
def test_a_request_held_by_latency_when_the_proxy_stops_is_in_the_summary(start_proxy, tmp_path):
    target = tmp_path / "summary.json"
    proxy = start_proxy("replay", "--fault", "latency:ms=5000", "--summary-json", str(target))
    outcome: list[object] = []

    def send() -> None:
        with httpx_client(proxy) as client:
            try:
                outcome.append(client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS))
            except httpx.HTTPError as exc:
                outcome.append(exc)

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(1)
    proxy.process.send_signal(signal.SIGTERM)
    assert proxy.stop() == 0
    sender.join(30)
    result = json.loads(target.read_text())
    assert (result["requests"], result["answered_by"]["no-response"]) == (1, 1)
    assert result["faults"] == {"latency": 1}
    assert "graph-vcr-proxy summary" in "".join(proxy.stderr)
    assert outcome and not isinstance(outcome[0], httpx.Response)  # it really was cut off


@pytest.mark.e2e
@pytest.mark.parametrize("target", ["folder", "cassette"])
def test_a_summary_path_that_would_lose_data_stops_the_proxy_before_it_starts(
    tmp_path, confdir, target
):
    path = cassette_file(tmp_path)
    before = (tmp_path / "me.yaml").read_bytes()
    summary_json = str(tmp_path) if target == "folder" else path
    result = run_cli("replay", "--cassette", path, "--summary-json", summary_json, confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: summary JSON {summary_json}: is ")
    assert (tmp_path / "me.yaml").read_bytes() == before


def test_the_addon_loads_as_a_mitmdump_script():
    with taddons.context() as tctx:
        tctx.script(summary_script.__file__)
        (addon,) = [a for a in chain_of(tctx.master.addons).addons if isinstance(a, Summary)]
        addon.response(finished_flow("PUT", ME))
        assert addon.summary()["requests"] == 1


def test_an_internal_error_and_a_recording_failure_are_counted_apart_from_check_and_upstream(
    summary, tmp_path
):
    addon, _ = summary
    crashed = graph_flow("GET", ME)
    Crashing().request(crashed)
    recorder = Record()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, graph_cassette=str(tmp_path / "later" / "c.yaml"))
        (tmp_path / "later").write_text("a file where the cassette's folder was to be made")
        unrecorded = graph_flow("GET", ME)
        recorder.request(unrecorded)
        unrecorded.response = http.Response.make(200, b"{}", {"Content-Type": "application/json"})
        asyncio.run(recorder.response(unrecorded))
    assert (crashed.response.status_code, unrecorded.response.status_code) == (500, 500)
    pass_through(addon, crashed, unrecorded)
    answered_by = addon.summary()["answered_by"]
    assert answered_by["internal-error"] == answered_by["recording-failed"] == 1
    assert answered_by["check"] == answered_by["upstream"] == 0


class Crashing:
    """An addon with a bug: its request hook raises."""

    @flows.guarded
    def request(self, flow: http.HTTPFlow) -> None:
        raise RuntimeError("boom")
