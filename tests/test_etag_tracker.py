"""The ETag tracker: what it learns from the answers, and how the fault rules' staleness
condition reads it (the tracker stands before the rules in every chain)."""

from __future__ import annotations

import pytest
from fault_chain import FakeTime, answer_as_graph, fault_chain, make_flow, respond, send
from mitmproxy.test import taddons

from proxy_addons.addons import flows
from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.cassette import examples

ME = examples.ME_URL
OTHER_MEETING = ME.replace(examples.MEETING_ID, "another-meeting")


@pytest.fixture
def injector():
    with fault_chain(FakeTime()) as addon:
        yield addon


def seen_get(addon: FaultInjector, etag: str, url: str = ME) -> None:
    flow = send(addon, make_flow("GET", url))
    answer_as_graph(flow, 200, {"id": "x"}, ETag=etag)
    respond(addon, flow)


def patch(addon: FaultInjector, if_match: str | None, url: str = ME) -> int | None:
    headers = {"If-Match": if_match} if if_match else {}
    flow = send(addon, make_flow("PATCH", url, '{"externalAppointmentId": "b"}', headers))
    return flow.response.status_code if flow.response else None


def test_stale_if_match_gets_412_and_the_current_one_passes(injector):
    injector.configure_with("etag-mismatch:when=stale")
    seen_get(injector, 'W/"v2"')
    assert patch(injector, 'W/"v2"') is None
    assert patch(injector, '"v2"') is None  # the weak marker is not part of the tag
    assert patch(injector, "*") is None
    assert patch(injector, 'W/"v1"') == 412
    assert patch(injector, None) is None


def test_without_a_known_etag_a_conditional_request_passes(injector):
    injector.configure_with("etag-mismatch:when=stale")
    seen_get(injector, 'W/"v2"', url=OTHER_MEETING)
    assert patch(injector, 'W/"anything"') is None
    assert patch(injector, 'W/"v1"', url=OTHER_MEETING) == 412


def test_a_delete_forgets_the_etag_and_an_update_teaches_the_new_one(injector):
    injector.configure_with("etag-mismatch:when=stale")
    seen_get(injector, 'W/"v1"')
    update = send(injector, make_flow("PATCH", ME, "{}", {"If-Match": 'W/"v1"'}))
    answer_as_graph(update, 204, ETag='W/"v2"')
    respond(injector, update)
    assert patch(injector, 'W/"v1"') == 412
    delete = send(injector, make_flow("DELETE"))
    answer_as_graph(delete, 204)
    respond(injector, delete)
    assert patch(injector, 'W/"v1"') is None


def test_the_faults_own_errors_teach_no_etag(injector):
    injector.configure_with("etag-mismatch:when=stale", "server-error:method=GET")
    flow = send(injector, make_flow("GET"))
    flow.response.headers["ETag"] = 'W/"bogus"'
    respond(injector, flow)
    assert injector.tracker.known.current(flows.route_of(flow)) is None


def test_the_real_answer_teaches_its_etag_before_a_malformed_fault_spoils_it(injector):
    injector.configure_with("malformed:method=GET", "etag-mismatch:when=stale")
    read = send(injector, make_flow("GET"))
    answer_as_graph(read, 200, {"id": "x"}, ETag='W/"v7"')
    respond(injector, read)
    assert flows.answered_by(read) == "fault" and read.response.content != b'{"id": "x"}'
    assert patch(injector, 'W/"v6"') == 412


def test_a_conditional_write_carries_the_known_etag_for_the_rules_and_a_read_does_not():
    tracker = ETagTracker()
    read = make_flow("GET")
    tracker.request(read)
    answer_as_graph(read, 200, {"id": "x"}, ETag='W/"v3"')
    tracker.response(read)
    write, again = make_flow("PATCH", ME, "{}"), make_flow("GET")
    tracker.request(write)
    tracker.request(again)
    assert write.metadata[flows.KNOWN_ETAG] == 'W/"v3"'
    assert flows.KNOWN_ETAG not in again.metadata


def test_reset_forgets_every_etag_learnt(injector):
    injector.configure_with("etag-mismatch:when=stale")
    seen_get(injector, 'W/"v2"')
    assert patch(injector, 'W/"v1"') == 412
    injector.tracker.reset()
    assert patch(injector, 'W/"v1"') is None  # no ETag known any more: not stale


def test_a_stale_rule_in_a_chain_without_the_tracker_says_it_can_never_fire(caplog):
    alone = FaultInjector()
    with taddons.context(alone) as tctx:
        tctx.configure(alone, graph_faults=["etag-mismatch:when=stale", "throttle"])
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith("etag-mismatch:when=stale: no ETag tracker in this chain")


def test_a_stale_rule_behind_the_tracker_is_not_warned_about(injector, caplog):
    injector.configure_with("etag-mismatch:when=stale")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
