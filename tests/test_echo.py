"""Echo from the request, the pure part (``cassette/echo.py``): which fields a replayed JSON
answer takes from the request, which placeholders an opted-in recording fills, and where the
settings of each recorded interaction come from."""

from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.echo import (
    KEY,
    Echo,
    EchoError,
    EchoRules,
    Sources,
    echoed_reply,
    render,
    sidecar_of,
    unknown_placeholders,
)
from proxy_addons.graph.replies import Reply
from proxy_addons.graph.routes import parse

RECORDED = examples.RESPONSE_BODY.encode()
SENT = json.loads(examples.REQUEST_BODY) | {
    "externalAppointmentId": "mine-42",
    "appointmentClients": [{"displayName": "Test Client", "emailAddress": "t@example.com"}],
}
CLOCK = datetime(2026, 12, 6, 23, 31, 31, 123456, tzinfo=UTC)
ME_ROUTE = parse("PUT", examples.ME_URL)
USERS_ROUTE = parse("PUT", examples.USERS_URL)


def counting_uuids() -> Sources:
    numbers = itertools.count(1)
    return Sources(now=lambda: CLOCK, uuid=lambda: f"uuid-{next(numbers)}")


def rendered(body: dict[str, Any], echo: Echo, request: Any = None, route=ME_ROUTE) -> Any:
    return json.loads(render(json.dumps(body).encode(), echo, request, route, counting_uuids()))


# --- fields taken from the request ------------------------------------------------------


def test_the_listed_fields_of_the_documented_create_are_the_requests():
    echo = Echo(("externalAppointmentId", "appointmentClients"))
    answer = json.loads(render(RECORDED, echo, SENT))
    recorded = json.loads(RECORDED)
    assert answer == recorded | {
        "externalAppointmentId": "mine-42",
        "appointmentClients": SENT["appointmentClients"],
    }
    assert list(answer) == list(recorded)  # keys stay in their recorded order


def test_a_field_the_request_did_not_send_stays_as_recorded():
    answer = json.loads(render(RECORDED, Echo(("externalAppointmentId",)), {"settings": {}}))
    assert answer["externalAppointmentId"] == "AAMkADKnAAA="


def test_a_field_the_recording_does_not_hold_is_never_added():
    answer = rendered({"error": {"code": "Conflict"}}, Echo(("externalAppointmentId",)), SENT)
    assert answer == {"error": {"code": "Conflict"}}


@pytest.mark.parametrize("request_body", [None, [SENT], "text", 7])
def test_a_request_without_a_json_object_body_leaves_the_answer_as_recorded(request_body):
    assert render(RECORDED, Echo(("externalAppointmentId",)), request_body) is RECORDED


@pytest.mark.parametrize("body", [b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"text"'])
def test_an_answer_that_is_not_a_json_object_is_left_byte_for_byte(body):
    echo = Echo(("externalAppointmentId",), templates=True)
    assert render(body, echo, SENT) is body


def test_without_echo_or_templates_the_recorded_bytes_are_sent():
    assert render(RECORDED, Echo(), SENT) is RECORDED


@pytest.mark.parametrize(("recorded", "sent"), [(1, True), (1, 1.0), ([0], [False]), ("1", 1)])
def test_values_python_calls_equal_but_json_does_not_are_echoed(recorded, sent):
    answer = render(json.dumps({"n": recorded}).encode(), Echo(("n",)), {"n": sent})
    assert answer == json.dumps({"n": sent}, separators=(",", ":")).encode()


def test_a_lone_surrogate_the_client_sent_is_echoed_as_the_escape_it_came_as():
    answer = render(b'{"n": "x"}', Echo(("n",)), json.loads('{"n": "\\ud800 \u00e9"}'))
    assert answer == b'{"n":"\\ud800 \\u00e9"}'


def test_a_request_nested_deeper_than_json_writes_leaves_the_answer_as_recorded():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert render(b'{"n": 1}', Echo(("n",)), {"n": deep}) == b'{"n": 1}'


def test_an_echoed_value_holding_a_placeholder_is_sent_as_the_request_sent_it():
    body = {"externalAppointmentId": "{{uuid}}", "id": "{{uuid}}"}
    echo = Echo(("externalAppointmentId",), templates=True)
    answer = rendered(body, echo, {"externalAppointmentId": "{{uuid}}-from-the-client"})
    assert answer["externalAppointmentId"] == "{{uuid}}-from-the-client"
    assert answer["id"].startswith("uuid-")


# --- placeholders -------------------------------------------------------------------------


TEMPLATED = {
    "id": "{{uuid}}",
    "created": "{{ now }}",
    "joinWebUrl": "https://visit.teams.microsoft.com/{{request.path.meetingId}}?u={{uuid}}",
    "owner": "{{request.path.owner}}",
    "nested": [{"user": "{{request.path.userId}}", "again": "{{now}}"}],
    "number": 5,
}


def test_placeholders_are_filled_from_the_clock_the_uuid_source_and_the_path():
    answer = rendered(TEMPLATED, Echo(templates=True), route=USERS_ROUTE)
    meeting, user = USERS_ROUTE.meeting_id, USERS_ROUTE.user
    assert answer == {
        "id": "uuid-1",
        "created": "2026-12-06T23:31:31Z",
        "joinWebUrl": f"https://visit.teams.microsoft.com/{meeting}?u=uuid-2",
        "owner": f"users/{user}",
        "nested": [{"user": user, "again": "2026-12-06T23:31:31Z"}],
        "number": 5,
    }


def test_now_is_written_in_utc_whatever_the_clock_zone():
    clock = datetime(2027, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    sources = Sources(now=lambda: clock)
    answer = render(b'{"at": "{{now}}"}', Echo(templates=True), None, None, sources)
    assert json.loads(answer) == {"at": "2026-12-31T23:00:00Z"}


def test_a_path_placeholder_the_route_cannot_fill_stays_as_recorded():
    answer = rendered({"user": "{{request.path.userId}}"}, Echo(templates=True), route=ME_ROUTE)
    assert answer == {"user": "{{request.path.userId}}"}


def test_placeholders_in_a_recording_that_does_not_opt_in_are_never_rewritten():
    body = json.dumps(TEMPLATED).encode()
    assert render(body, Echo(("externalAppointmentId",)), SENT) is body


def test_the_default_sources_give_a_fresh_guid_and_the_current_time():
    before = datetime.now(UTC).replace(microsecond=0)
    answer = json.loads(render(b'{"id": "{{uuid}}", "at": "{{now}}"}', Echo(templates=True), None))
    at = datetime.strptime(answer["at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert len(answer["id"]) == 36 and answer["id"][14] == "4"
    assert before <= at <= datetime.now(UTC)


def test_unknown_placeholders_are_named_once_each():
    body = b'{"a": "{{uuid}} {{ uuids }}", "b": "{{request.path.meetingid}}", "c": "{{uuids}}"}'
    assert unknown_placeholders(body) == ["{{ uuids }}", "{{request.path.meetingid}}", "{{uuids}}"]


# --- properties ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)
objects = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values)


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(objects, objects, st.lists(st.sampled_from(["a", "b", "c", "x"]), unique=True))
def test_each_listed_field_held_on_both_sides_is_the_requests_and_nothing_else_changes(
    recorded, request, fields
):
    answer = json.loads(render(json.dumps(recorded).encode(), Echo(tuple(fields)), request))
    expected = {
        name: request[name] if name in fields and name in request else value
        for name, value in recorded.items()
    }
    assert answer == expected


@PROPERTY
@given(objects)
def test_templates_on_a_body_without_placeholders_send_the_recorded_bytes(recorded):
    body = json.dumps(recorded).encode()
    if "{{" not in body.decode():
        assert render(body, Echo(templates=True), None) is body


# --- the reply: content codings, headers --------------------------------------------------

ETAG = ("ETag", 'W/"recorded"')


def test_a_gzip_answer_is_echoed_and_compressed_again_with_its_headers_kept():
    headers = (("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ETAG)
    reply = Reply(201, headers, gzip.compress(RECORDED), "Created")
    echoed = echoed_reply(reply, Echo(("externalAppointmentId",)), SENT)
    assert json.loads(gzip.decompress(echoed.body))["externalAppointmentId"] == "mine-42"
    assert (echoed.headers, echoed.status, echoed.reason) == (headers, 201, "Created")


def test_an_answer_under_a_coding_we_cannot_decode_is_left_as_recorded():
    reply = Reply(201, (("Content-Encoding", "compress"),), RECORDED)
    assert echoed_reply(reply, Echo(("externalAppointmentId",)), SENT) is reply


def test_an_empty_answer_is_left_as_recorded():
    reply = Reply(204, (ETAG,))
    assert echoed_reply(reply, Echo(("externalAppointmentId",), templates=True), SENT) is reply


# --- where each interaction's settings come from -----------------------------------------


@dataclass
class Recording:
    source: Path
    position: int
    response: dict[str, Any]

    def response_value(self, key: str) -> Any:
        return self.response.get(key)

    @property
    def reply(self) -> Reply:
        return Reply(200, (), self.response["body"]["string"].encode())

    @property
    def label(self) -> str:
        return f"PUT x ({self.source.name} #{self.position})"


def recording(source: Path, position: int, body: str = "{}", **own: Any) -> Recording:
    response: dict[str, Any] = {"status": {"code": 200}, "body": {"string": body}}
    if own:
        response[KEY] = own
    return Recording(source, position, response)


def test_the_interaction_wins_over_its_sidecar_key_by_key_and_the_run_adds_its_fields(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    sidecar_of(a).write_text('{"echo": ["x"], "templates": true}')
    played = [
        recording(a, 0),
        recording(a, 1, echo=["y"]),
        recording(a, 2, templates=False),
        recording(b, 0),
    ]
    rules = EchoRules.build(played, ["run"])
    assert [rules.of(r) for r in played] == [
        Echo(("x", "run"), templates=True),
        Echo(("y", "run"), templates=True),
        Echo(("x", "run"), templates=False),
        Echo(("run",)),
    ]


def test_a_cassette_without_settings_echoes_nothing_unless_the_run_asks():
    played = recording(Path("nowhere.yaml"), 0)
    assert not EchoRules.build([played]).of(played).active


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ("{", "not JSON"),
        ('{"echo": "x"}', "echo: Input should be a valid list"),
        ('{"templates": "yes"}', "templates: Input should be a valid boolean"),
        ('{"echoes": ["x"]}', "echoes: Extra inputs are not permitted"),
        ('{"echo": [""]}', "echo.0: String should have at least 1 character"),
        ('{"echo": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deep"),
    ],
)
def test_a_bad_sidecar_is_refused_in_one_line_naming_it(tmp_path, sidecar, message):
    source = tmp_path / "c.yaml"
    sidecar_of(source).write_text(sidecar)
    with pytest.raises(EchoError) as raised:
        EchoRules.build([recording(source, 0)])
    assert str(raised.value).startswith(f"{sidecar_of(source)}: ")
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_bad_interaction_setting_is_refused_naming_the_interaction(tmp_path):
    bad = recording(tmp_path / "c.yaml", 3, templates="yes")
    with pytest.raises(
        EchoError, match=r"^PUT x \(c.yaml #3\): response.graph_vcr_proxy: templates: "
    ):
        EchoRules.build([bad])


def test_an_unknown_placeholder_in_an_opted_in_recording_is_refused(tmp_path):
    typo = recording(tmp_path / "c.yaml", 0, '{"id": "{{uuid4}}"}', templates=True)
    with pytest.raises(EchoError, match=r"unknown placeholder \{\{uuid4\}\}.*known: \{\{uuid\}\}"):
        EchoRules.build([typo])


def test_an_unknown_placeholder_where_no_one_opted_in_is_left_alone(tmp_path):
    literal = recording(tmp_path / "c.yaml", 0, '{"id": "{{uuid4}}"}')
    assert not EchoRules.build([literal]).of(literal).active


def test_the_settings_of_a_loaded_cassette_are_read_from_its_file_and_sidecar(tmp_path):
    path = tmp_path / "templated.yaml"
    text = cassette.cassette_text([])
    path.write_text(
        text
        + "- request: {body: null, headers: {}, method: GET, uri: 'https://graph.microsoft.com/"
        "beta/me/onlineMeetings/m/virtualAppointment'}\n"
        '  response: {status: {code: 200, message: OK}, headers: {}, body: {string: \'{"id": '
        '"{{uuid}}"}\'}, graph_vcr_proxy: {templates: true}}\n'
    )
    sidecar_of(path).write_text('{"echo": ["externalAppointmentId"]}')
    (loaded,) = cassette.load(path)
    assert EchoRules.build([loaded]).of(loaded) == Echo(("externalAppointmentId",), True)
