"""``graph-vcr-proxy show`` and ``graph-vcr-proxy schema``, run as a user runs them."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error, graph_flow, run_cli
from mitmproxy import http
from mitmproxy import io as mitmproxy_io
from pydantic.json_schema import models_json_schema

from proxy_addons.cassette import cassette, examples
from proxy_addons.cli.commands import build_parser
from proxy_addons.cli.schema import TITLE, model_classes
from proxy_addons.graph.models import ErrorResponse, VirtualAppointment

BUNDLED = str(cassette.bundled_cassettes())


def test_show_tables_the_bundled_cassettes() -> None:
    done = run_cli("show", BUNDLED)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "create-virtualappointment" in line]
    assert len(rows) == 2
    for row, owner in zip(rows, ("me", f"users/{examples.EXAMPLE_USER}"), strict=True):
        cells = [cell.strip() for cell in row.split("│")]
        assert cells[3:8] == ["PUT", "create", owner, examples.MEETING_ID, "201"]
        assert cells[9] == f"{len(examples.REQUEST_BODY)} / {len(examples.RESPONSE_BODY)}"
    assert "2 interactions" in done.stdout


def test_show_json_gives_every_field_of_every_interaction() -> None:
    done = run_cli("show", "--json", BUNDLED)
    assert done.returncode == 0, done.stderr
    first, second = json.loads(done.stdout)
    assert first == {
        "cassette": f"{BUNDLED}/create-virtualappointment-me.yaml",
        "index": 0,
        "method": "PUT",
        "uri": examples.ME_URL,
        "operation": "create",
        "owner": "me",
        "meeting_id": examples.MEETING_ID,
        "status": 201,
        "etag": None,
        "request_body_size": len(examples.REQUEST_BODY),
        "response_body_size": len(examples.RESPONSE_BODY),
        "redacted": [],
    }
    assert second["owner"] == f"users/{examples.EXAMPLE_USER}"


def test_show_names_what_was_redacted_and_the_etag(tmp_path) -> None:
    flow = graph_flow(
        "PUT",
        examples.ME_URL,
        examples.REQUEST_BODY,
        {"Content-Type": "application/json", "Authorization": "Bearer secret-token-for-show"},
    )
    flow.response = http.Response.make(
        201, examples.RESPONSE_BODY, {"Content-Type": "application/json", "ETag": 'W/"e1"'}
    )
    other = graph_flow("GET", "https://graph.microsoft.com/v1.0/me")
    other.response = http.Response.make(200, b"{}")
    source = tmp_path / "s.mitm"
    with source.open("wb") as file:
        for each in (flow, other):
            mitmproxy_io.FlowWriter(file).add(each)
    recorded = tmp_path / "recorded.yaml"
    imported = run_cli(
        "import", "flows", str(source), "-o", str(recorded), "--redact-field", "emailAddress"
    )
    assert imported.returncode == 0, imported.stderr

    [row] = json.loads(run_cli("show", "--json", str(recorded)).stdout)
    assert row["redacted"] == ["authorization", "emailAddress"]
    assert row["etag"] == 'W/"e1"'


def test_show_refuses_a_bad_cassette_as_replay_does(tmp_path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\ninteractions:\n- request: {method: GET, uri: 'https://x/', body: null,"
        " headers: {}}\n  response: {status: {code: 99999}}\n"
    )
    done = run_cli("show", BUNDLED, str(bad))
    assert_one_line_error(
        done, f"graph-vcr-proxy: {bad}:3: interaction 0: response.status.code: must be 100..599"
    )
    assert done.stdout == ""  # nothing printed before the refusal
    missing = run_cli("show", str(tmp_path / "nope.yaml"))
    assert_one_line_error(missing, "graph-vcr-proxy: ")
    assert "no such cassette file or folder" in missing.stderr


def test_schema_of_one_model_is_pydantics_own() -> None:
    done = run_cli("schema", "VirtualAppointment")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    assert schema == VirtualAppointment.model_json_schema()
    assert {"appointmentClients", "settings", "@odata.type"} <= set(schema["properties"])
    # Names are matched whatever their case.
    assert json.loads(run_cli("schema", "errorresponse").stdout) == (
        ErrorResponse.model_json_schema()
    )


def test_schema_of_all_models_is_one_document_with_every_model() -> None:
    done = run_cli("schema")
    assert done.returncode == 0, done.stderr
    schema = json.loads(done.stdout)
    _, expected = models_json_schema(
        [(model, "validation") for model in model_classes().values()], title=TITLE
    )
    assert schema == expected
    assert {"VirtualAppointment", "SendVirtualAppointmentSmsBody", "ErrorResponse"} <= set(
        schema["$defs"]
    )
    assert "GraphModel" not in model_classes()  # a base, no body of its own


def test_an_unknown_model_is_exit_2_listing_the_models() -> None:
    done = run_cli("schema", "Appointment")
    line = assert_one_line_error(done, "graph-vcr-proxy: schema: no model 'Appointment'; models: ")
    assert "VirtualAppointment, VirtualAppointmentSettings, VirtualAppointmentUser" in line


@pytest.mark.parametrize(
    "command",
    [
        ["show"],
        ["schema"],
        ["import", "devproxy"],
        ["import", "har"],
        ["import", "flows"],
        ["export", "devproxy"],
        ["export", "har"],
    ],
)
def test_every_new_command_shows_an_example_in_its_help(command, capsys) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    assert f"example:\n  graph-vcr-proxy {command[0]}" in capsys.readouterr().out
