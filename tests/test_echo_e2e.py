"""Echo from the request, used as users use it: the replay and record addons (mitmproxy's
test helpers), ``graph-vcr-proxy replay --echo`` with a real HTTPS client, the pytest
plugin's ``echo=`` key in this very run, and the same cassettes in plain vcrpy, which plays
the recorded values and the literal placeholders."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import vcr
import yaml
from helpers import assert_one_line_error, graph_flow, run_cli
from mitmproxy import exceptions
from mitmproxy.test import taddons
from msgraph_core import APIVersion, GraphClientFactory
from vcr.request import Request

from proxy_addons.addons.record import Record
from proxy_addons.addons.replay import Replay
from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.echo import KEY, sidecar_of
from proxy_addons.testing import vcr_settings

ME, USERS = examples.ME_URL, examples.USERS_URL
BUNDLED = cassette.bundled_cassettes()
RECORDED = json.loads(examples.RESPONSE_BODY)
MINE = {
    **json.loads(examples.REQUEST_BODY),
    "externalAppointmentId": "my-own-42",
    "appointmentClients": [{"displayName": "Test Client", "emailAddress": "t@example.com"}],
}
ECHOED = ("externalAppointmentId", "appointmentClients")
ETAG = 'W/"recorded-etag"'
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NOW = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def templated_cassette(folder: Path, *, opt_in: bool = True) -> Path:
    """The documented create, its answer holding placeholders, with an ETag; the interaction
    opts in to templates (``graph_vcr_proxy: {templates: true}`` in its response) or not."""
    body = {
        **RECORDED,
        "id": "{{uuid}}",
        "externalAppointmentUrl": "https://example.com/{{request.path.meetingId}}/{{now}}",
    }
    response: dict[str, Any] = {
        "status": {"code": 201, "message": "Created"},
        "headers": {"Content-Type": ["application/json"], "ETag": [ETAG]},
        "body": {"string": json.dumps(body, indent=4)},
    }
    if opt_in:
        response[KEY] = {"templates": True}
    request = Request("PUT", ME, examples.REQUEST_BODY, {"Content-Type": ["application/json"]})
    path = folder / "templated.yaml"
    path.write_text(cassette.cassette_text([(request, response)]), encoding="utf-8")
    return path


def own_create(url: str = ME) -> Any:
    return graph_flow("PUT", url, json.dumps(MINE), {"Content-Type": "application/json"})


def played(addon: Any, flow: Any) -> dict[str, Any]:
    addon.request(flow)
    assert flow.response is not None
    raw = flow.response.raw_content
    assert flow.response.headers["content-length"] == str(len(raw))
    return json.loads(raw)


# --- the addons ---------------------------------------------------------------------------


def test_replay_with_graph_echo_answers_the_requests_fields_with_a_content_length_that_follows():
    addon = Replay()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon, graph_cassette=str(BUNDLED), graph_match_body=False, graph_echo=list(ECHOED)
        )
        answer = played(addon, own_create())
    assert answer == {**RECORDED, **{name: MINE[name] for name in ECHOED}}


def test_a_sidecar_echoes_for_its_cassette_and_the_etag_stays_as_recorded(tmp_path):
    path = templated_cassette(tmp_path, opt_in=False)
    sidecar_of(path).write_text('{"echo": ["externalAppointmentId"]}')
    addon = Replay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_cassette=str(tmp_path), graph_match_body=False)
        flow = own_create()
        answer = played(addon, flow)
    assert answer["externalAppointmentId"] == "my-own-42"
    assert answer["id"] == "{{uuid}}"  # the interaction did not opt in to templates
    assert flow.response.headers["ETag"] == ETAG


def test_an_opted_in_interaction_gets_a_new_guid_the_meeting_id_and_the_time_each_play(
    tmp_path,
):
    addon = Replay()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, graph_cassette=str(templated_cassette(tmp_path)))
        tctx.options.update(graph_allow_playback_repeats=True)
        first, second = (
            played(addon, graph_flow("PUT", ME, examples.REQUEST_BODY, examples.REQUEST_HEADERS))
            for _ in range(2)
        )
    assert GUID.match(first["id"]) and GUID.match(second["id"]) and first["id"] != second["id"]
    prefix = f"https://example.com/{examples.MEETING_ID}/"
    url = first["externalAppointmentUrl"]
    assert url.startswith(prefix) and NOW.match(url.removeprefix(prefix))


def test_a_bad_sidecar_or_placeholder_is_refused_as_a_bad_option(tmp_path):
    path = templated_cassette(tmp_path)
    addon = Replay()
    with taddons.context(addon) as tctx:
        sidecar_of(path).write_text('{"echo": "externalAppointmentId"}')
        with pytest.raises(exceptions.OptionsError, match=r"templated.yaml.echo.json: echo: "):
            tctx.configure(addon, graph_cassette=str(path))
        sidecar_of(path).unlink()
        path.write_text(path.read_text().replace("{{uuid}}", "{{guid}}"))
        with pytest.raises(exceptions.OptionsError, match=r"unknown placeholder \{\{guid\}\}"):
            tctx.configure(addon, graph_cassette=str(path))


def test_record_mode_none_echoes_what_it_replays(tmp_path):
    """A recording whose request had the field redacted matches any value there (record
    mode none compares bodies), and echo gives the caller its own value back."""
    redacted = examples.REQUEST_BODY.replace("AAMkADKnAAA=", "<redacted>")
    request = Request("PUT", ME, redacted, {"Content-Type": ["application/json"]})
    response = {
        "status": {"code": 201, "message": "Created"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": examples.RESPONSE_BODY},
    }
    path = tmp_path / "redacted.yaml"
    path.write_text(cassette.cassette_text([(request, response)]), encoding="utf-8")
    addon = Record()
    with taddons.context(addon) as tctx:
        tctx.configure(
            addon,
            graph_cassette=str(path),
            graph_record_mode="none",
            graph_echo=["externalAppointmentId"],
        )
        sent = examples.REQUEST_BODY.replace("AAMkADKnAAA=", "rec-1")
        answer = played(addon, graph_flow("PUT", ME, sent, examples.REQUEST_HEADERS))
    assert answer == {**RECORDED, "externalAppointmentId": "rec-1"}


# --- the command line ---------------------------------------------------------------------


@pytest.mark.e2e
def test_replay_echo_flags_answer_a_real_client_with_its_own_id(start_proxy):
    proxy = start_proxy(
        "replay", "--ignore-body", *(a for name in ECHOED for a in ("--echo", name))
    )
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    with httpx.Client(proxy=proxy.url, verify=verify, timeout=30) as client:
        response = client.put(USERS, json=MINE)
    assert response.status_code == 201
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.json() == {**RECORDED, **{name: MINE[name] for name in ECHOED}}


@pytest.mark.e2e
def test_a_create_inside_a_json_batch_gets_its_own_id_back(start_proxy):
    proxy = start_proxy("replay", "--ignore-body", "--echo", "externalAppointmentId")
    item = {
        "id": "1",
        "method": "PUT",
        "url": ME.removeprefix(examples.GRAPH_BETA),
        "headers": {"Content-Type": "application/json"},
        "body": MINE,
    }
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    with httpx.Client(proxy=proxy.url, verify=verify, timeout=30) as client:
        answer = client.post(f"{examples.GRAPH_BETA}/$batch", json={"requests": [item]})
    (created,) = answer.json()["responses"]
    assert created["status"] == 201
    assert created["body"] == {**RECORDED, "externalAppointmentId": "my-own-42"}


@pytest.mark.e2e
def test_a_bad_sidecar_stops_replay_with_one_line(tmp_path, confdir):
    path = templated_cassette(tmp_path)
    sidecar_of(path).write_text("{not json")
    result = run_cli("replay", "--cassette", str(path), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: {sidecar_of(path)}: not JSON")


@pytest.mark.e2e
def test_an_empty_echo_field_stops_replay_with_one_line(confdir):
    result = run_cli("replay", "--echo", "", confdir=confdir)
    assert_one_line_error(result, "graph-vcr-proxy: echo: a field name must not be empty")


# --- the pytest plugin, in this run --------------------------------------------------------


@pytest.fixture(scope="module")
def graph_vcr_cassette_dir() -> Path:
    """This module's cassettes are the bundled ones (the plugin's own override point)."""
    return BUNDLED


@pytest.mark.e2e
@pytest.mark.graph_vcr(
    cassette="create-virtualappointment-me.yaml", echo=list(ECHOED), match_body=False
)
def test_a_test_creating_with_its_own_id_gets_it_back_from_the_documented_recording(
    graph_vcr_proxy,
):
    verify = ssl.create_default_context(cafile=str(graph_vcr_proxy.ca))
    with httpx.Client(proxy=graph_vcr_proxy.url, verify=verify, timeout=30) as client:
        response = client.put(ME, json=MINE, headers={"Authorization": "Bearer t"})
    assert response.status_code == 201
    created = response.json()
    assert created["externalAppointmentId"] == "my-own-42"
    assert created["appointmentClients"] == MINE["appointmentClients"]
    assert created["id"] == RECORDED["id"]  # not listed: as recorded
    (call,) = graph_vcr_proxy.calls
    assert (call.answered_by, call.status) == ("replay", 201)


@pytest.mark.e2e
@pytest.mark.graph_vcr(cassette="create-virtualappointment-me.yaml", echo=["id"], match_body=False)
def test_the_next_tests_echo_is_its_own_and_not_the_last_tests(graph_vcr_env):
    response = requests.put(ME, json=MINE, timeout=30)
    assert response.json() == RECORDED  # "id" is not in the request; the rest as recorded


@pytest.mark.e2e
class TestEchoFromGraphVcrConfig:
    """``echo`` in a conftest's ``graph_vcr_config``, msgraph-core's pipeline as the client."""

    @pytest.fixture
    def graph_vcr_config(self) -> dict[str, Any]:
        return {"echo": ["externalAppointmentId"], "match_body": False}

    @pytest.mark.graph_vcr(cassette="create-virtualappointment-users.yaml")
    def test_a_create_through_msgraph_core_gets_its_own_id_back(self, graph_vcr_proxy):
        async def create() -> httpx.Response:
            verify = ssl.create_default_context(cafile=str(graph_vcr_proxy.ca))
            client = GraphClientFactory.create_with_default_middleware(
                api_version=APIVersion.beta,
                client=httpx.AsyncClient(proxy=graph_vcr_proxy.url, verify=verify, timeout=30),
            )
            async with client:
                return await client.put(
                    USERS,
                    json=MINE,
                    headers={"Authorization": "Bearer t"},
                    extensions={"kiota_request_options": {}},
                )

        created = asyncio.run(create())
        assert created.status_code == 201
        assert created.json() == {**RECORDED, "externalAppointmentId": "my-own-42"}


def test_the_plugins_echo_key_becomes_echo_arguments_in_replay_and_record(tmp_path):
    for record_mode, mode in (("none", "replay"), ("new_episodes", "record")):
        settings = vcr_settings.settings_of({"echo": list(ECHOED), "record_mode": record_mode})
        plan = vcr_settings.plan(settings, cassette_dir=tmp_path, default_name="t.yaml")
        assert plan.mode == mode
        assert "--echo externalAppointmentId --echo appointmentClients" in " ".join(plan.args)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"echo": 5}, "graph_vcr: echo must be a list of strings"),
        ({"echo": ["x"], "mode": "simulate"}, "graph_vcr: echo needs a cassette"),
    ],
)
def test_a_bad_echo_key_fails_with_one_line(config, message):
    with pytest.raises(vcr_settings.GraphVcrError, match=f"^{message}"):
        vcr_settings.settings_of(config)


# --- plain vcrpy -------------------------------------------------------------------------


def test_plain_vcrpy_replays_an_echo_cassette_with_the_recorded_values_and_placeholders(
    tmp_path,
):
    path = templated_cassette(tmp_path)
    sidecar_of(path).write_text('{"echo": ["externalAppointmentId"]}')
    with vcr.VCR(record_mode="none").use_cassette(str(path)) as played_cassette:
        response = requests.put(ME, json=MINE, timeout=30)
    assert played_cassette.all_played
    answer = response.json()
    assert answer["externalAppointmentId"] == RECORDED["externalAppointmentId"]
    assert answer["id"] == "{{uuid}}"
    assert "{{request.path.meetingId}}/{{now}}" in answer["externalAppointmentUrl"]


def test_plain_vcrpy_keeps_an_interactions_echo_settings_when_it_writes_the_cassette(tmp_path):
    path = templated_cassette(tmp_path)
    requests_, responses = vcr.serialize.deserialize(
        path.read_text(), vcr.serializers.yamlserializer
    )[:2]
    written = vcr.serialize.serialize(
        {"requests": requests_, "responses": responses}, vcr.serializers.yamlserializer
    )
    (interaction,) = yaml.safe_load(written)["interactions"]
    assert interaction["response"][KEY] == {"templates": True}


@pytest.mark.e2e
def test_an_echoed_answer_in_record_mode_new_episodes_leaves_the_cassette_byte_for_byte(
    start_proxy, tmp_path
):
    """An adversary's try: the client's own values echoed by a recorder that replays must
    never reach the cassette, nor make it record the create again (nothing goes upstream)."""
    copy = tmp_path / "create.yaml"
    copy.write_bytes((BUNDLED / "create-virtualappointment-users.yaml").read_bytes())
    before = copy.read_bytes()
    proxy = start_proxy(
        "record",
        "--cassette",
        str(copy),
        "--record-mode",
        "new_episodes",
        "--upstream",
        "http://127.0.0.1:9",  # nothing listens: a forward would be a 502, not the 201
        *(a for name in ECHOED for a in ("--ignore-json-path", f"$.{name}")),
        *(a for name in ECHOED for a in ("--echo", name)),
    )
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    with httpx.Client(proxy=proxy.url, verify=verify, timeout=30) as client:
        response = client.put(USERS, json=MINE)
    assert proxy.stop() == 0
    assert response.status_code == 201
    assert response.json()["externalAppointmentId"] == MINE["externalAppointmentId"]
    assert copy.read_bytes() == before
