"""Dev Proxy mocks files (MockResponsePlugin): the documented shapes in, cassettes out, and back.

The mocks files here follow the examples of Dev Proxy's documentation (the MockResponsePlugin
reference and "Mock nth request"), on our URLs; the order of answers is the one Dev Proxy's
first-match and per-URL ``nth`` counting give.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line_error, run_cli
from vcr.request import Request

from proxy_addons.addons.interactions import stored_response
from proxy_addons.cassette import cassette, examples
from proxy_addons.convert.conversions import ConversionError, ImportSettings
from proxy_addons.convert.devproxy import (
    NEVER_ANSWERS,
    SCHEMA_URL,
    Mock,
    answer_order,
    export_devproxy,
    import_devproxy,
    mock_flow,
)

URL = examples.ME_URL
ACTIONS = URL.removesuffix("/virtualAppointment")
DOCS_SCHEMA = (
    "https://raw.githubusercontent.com/dotnet/dev-proxy/main/schemas/v1.0.0/"
    "mockresponseplugin.mocksfile.schema.json"
)


def appointment(state: str) -> dict[str, Any]:
    return {"id": "8e2c5a4f", "externalAppointmentId": state}


def documented_mocks() -> dict[str, Any]:
    """The documented examples' shapes: body with headers, nth then the plain mock, an error
    with only a status, a body fragment, a file body, and wildcard URLs."""
    return {
        "$schema": DOCS_SCHEMA,
        "mocks": [
            {  # "Respond with body"
                "request": {"url": f"{ACTIONS}/getVirtualAppointmentJoinWebUrl", "method": "GET"},
                "response": {
                    "body": {
                        "@odata.context": "https://graph.microsoft.com/beta/$metadata#Edm.String",
                        "value": "https://visit.teams.microsoft.com/webrtc-svc/api/route?tid=x",
                    },
                    "headers": [
                        {
                            "name": "content-type",
                            "value": "application/json; odata.metadata=minimal",
                        }
                    ],
                },
            },
            {  # "Mock nth request": the nth mock first...
                "request": {"url": URL, "method": "GET", "nth": 2},
                "response": {"statusCode": 200, "body": appointment("completed")},
            },
            {  # ...then the one that answers every other time
                "request": {"url": URL, "method": "GET"},
                "response": {"statusCode": 200, "body": appointment("inprogress")},
            },
            {  # "Respond with error"
                "request": {"url": URL, "method": "DELETE"},
                "response": {"statusCode": 404},
            },
            {  # "Respond matching the request body"
                "request": {
                    "url": f"{ACTIONS}/sendVirtualAppointmentSms",
                    "method": "POST",
                    "bodyFragment": "confirmation",
                },
                "response": {"statusCode": 202},
            },
            {  # "Respond with binary data": a file beside the mocks file
                "request": {"url": examples.USERS_URL, "method": "PUT"},
                "response": {
                    "statusCode": 201,
                    "body": "@created.json",
                    "headers": [{"name": "content-type", "value": "application/json"}],
                },
            },
            {  # the documented wildcard example: not one of our URLs
                "request": {"url": "https://graph.microsoft.com/v1.0/users/*/photo/$value"},
                "response": {"body": "@picture.jpg"},
            },
            {  # a wildcard on our route: no single URL to record
                "request": {
                    "url": "https://graph.microsoft.com/beta/me/onlineMeetings/*/virtualAppointment"
                },
                "response": {"statusCode": 200, "body": appointment("any")},
            },
        ],
    }


def write_mocks(folder: Path, document: Any) -> Path:
    path = folder / "mocks.json"
    path.write_text(json.dumps(document, indent=2))
    (folder / "created.json").write_text(json.dumps(appointment("created")))
    return path


def mocks_of(*specs: dict[str, Any]) -> list[Mock]:
    return [Mock.model_validate(spec, strict=True) for spec in specs]


def get(nth: int | None, state: str, method: str = "GET") -> dict[str, Any]:
    request: dict[str, Any] = {"url": URL, "method": method}
    if nth is not None:
        request["nth"] = nth
    return {"request": request, "response": {"body": appointment(state)}}


# --- the order of answers -----------------------------------------------------------------


def test_the_documented_nth_pair_answers_plain_then_nth_then_plain_for_ever():
    order = answer_order(mocks_of(get(2, "completed"), get(None, "inprogress")))
    # Dev Proxy: the 1st request gets the plain mock, the 2nd the nth=2 one, later ones the
    # plain mock again; the cassette repeats its last answer for ever.
    assert (order.answers, order.left_out) == ([1, 0, 1], [])


def test_counts_other_methods_name_are_theirs():
    # What export writes for PUT, GET a, PATCH, GET b on one URL.
    mocks = mocks_of(
        get(1, "put", "PUT"),
        get(2, "a"),
        get(3, "patch", "PATCH"),
        get(4, "b"),
        get(None, "put", "PUT"),
        get(None, "b"),
        get(None, "patch", "PATCH"),
    )
    assert answer_order(mocks).answers == [0, 1, 3, 2]


def test_a_plain_mock_before_an_nth_one_shadows_it_as_dev_proxy_first_match_does():
    order = answer_order(mocks_of(get(None, "first"), get(2, "second"), get(None, "third")))
    assert order.answers == [0]
    assert order.left_out == [(1, NEVER_ANSWERS), (2, NEVER_ANSWERS)]


def test_an_answer_repeated_at_the_end_is_kept_once_and_not_left_out():
    order = answer_order(mocks_of(get(1, "a"), get(2, "b"), get(None, "b")))
    assert (order.answers, order.left_out) == ([0, 1], [])


def test_nth_mocks_without_a_plain_one_stop_where_dev_proxy_stops():
    # Dev Proxy answers the 1st request with nth=1; nothing answers the 2nd, its count stays
    # at 1, so nth=3 never fires.
    order = answer_order(mocks_of(get(1, "a"), get(3, "c")))
    assert (order.answers, order.left_out) == ([0], [(1, NEVER_ANSWERS)])


def test_wildcards_on_our_routes_are_left_out_and_others_are_not_ours():
    order = answer_order(mocks_of(*documented_mocks()["mocks"]))
    assert order.left_out == [(7, "the URL has a wildcard; a cassette needs one URL")]
    assert order.not_ours == 1


# --- mocks to a cassette ------------------------------------------------------------------


def test_string_and_file_bodies_are_what_dev_proxy_sends(tmp_path):
    (tmp_path / "raw.txt").write_bytes(b"not json \x00\xff")
    text, raw = mocks_of(
        {"request": {"url": URL}, "response": {"body": "plain text"}},
        {"request": {"url": URL}, "response": {"body": "@raw.txt"}},
    )
    status, _, side = stored_response(mock_flow(tmp_path / "m.json", 0, text).response)
    # A string is sent as a JSON string, quotes included; Content-Type defaults to JSON.
    assert (status, side.body) == (200, b'"plain text"')
    assert side.headers["Content-Type"] == ["application/json"]
    assert stored_response(mock_flow(tmp_path / "m.json", 1, raw).response)[2].body == (
        b"not json \x00\xff"
    )


@pytest.mark.e2e
def test_a_documented_mocks_file_becomes_a_cassette_that_replays_as_dev_proxy_answers(
    tmp_path, caplog, start_proxy, client_for
):
    caplog.set_level(logging.INFO)
    output = tmp_path / "from-mocks.yaml"
    report = import_devproxy(write_mocks(tmp_path, documented_mocks()), ImportSettings(output))

    assert (report.imported, report.not_ours, report.skipped) == (7, 1, 1)
    wildcard = "https://graph.microsoft.com/beta/me/onlineMeetings/*/virtualAppointment"
    assert f"mock 7: GET {wildcard}: skipped: the URL has a wildcard" in caplog.text
    assert "mock 4: bodyFragment 'confirmation' is not kept" in caplog.text
    # Dev Proxy's 404 without a body is not Graph's error envelope: warned, as record would.
    assert "DELETE /beta/me/onlineMeetings/" in caplog.text and "(response 404)" in caplog.text

    # Dev Proxy answers a mock again and again: --allow-playback-repeats replays it so.
    proxy = start_proxy(
        "replay", "--cassette", str(output), "--ignore-body", "--allow-playback-repeats"
    )
    client = client_for(proxy)
    states = [client.get(URL).json()["externalAppointmentId"] for _ in range(4)]
    assert states == ["inprogress", "completed", "inprogress", "inprogress"]
    join = client.get(f"{ACTIONS}/getVirtualAppointmentJoinWebUrl")
    assert join.headers["content-type"] == "application/json; odata.metadata=minimal"
    assert join.json()["value"].startswith("https://visit.teams.microsoft.com/")
    sms = client.post(f"{ACTIONS}/sendVirtualAppointmentSms", json={"anything": "goes"})
    assert (sms.status_code, sms.content) == (202, b"")
    created = client.put(
        examples.USERS_URL,
        content=examples.REQUEST_BODY,
        headers={"Content-Type": "application/json"},
    )
    assert (created.status_code, created.json()) == (201, appointment("created"))
    assert client.delete(URL).status_code == 404


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d["mocks"][1]["response"].update(statusCode="200"),
            'mocks.json: mock 1: response.statusCode: Input should be a valid integer, got "200"',
        ),
        (
            lambda d: d["mocks"][2]["response"].update(statusCode=999),
            "mocks.json: mock 2: response.statusCode: must be 100..599, got 999",
        ),
        (
            lambda d: d["mocks"][0]["request"].pop("url"),
            "mocks.json: mock 0: request.url: is missing",
        ),
        (
            lambda d: d["mocks"][0]["response"].update(body=5),
            "mocks.json: mock 0: response.body: must be an object, an array or a string, got 5",
        ),
        (lambda d: d.update(mock=[]), "mocks.json: mock: is not part of the format"),
        (
            lambda d: d["mocks"][5]["response"].update(body="@nowhere.json"),
            "mocks.json: mock 5: response.body: ",
        ),
    ],
)
def test_a_bad_mocks_file_is_exit_2_naming_the_mock(tmp_path, change, message):
    document = documented_mocks()
    change(document)
    path = write_mocks(tmp_path, document)
    done = run_cli("import", "devproxy", str(path), "-o", str(tmp_path / "out.yaml"))
    line = assert_one_line_error(done, "graph-vcr-proxy: ")
    assert message in line.replace(f"{tmp_path}/", "")
    assert not (tmp_path / "out.yaml").exists()


def test_broken_json_names_the_line(tmp_path):
    path = tmp_path / "mocks.json"
    path.write_text('{\n  "mocks": [\n    {"request": }\n  ]\n}\n')
    done = run_cli("import", "devproxy", str(path), "-o", str(tmp_path / "out.yaml"))
    assert_one_line_error(done, f"graph-vcr-proxy: {path}:3: not valid JSON: Expecting value")


def test_an_existing_cassette_is_replaced_only_with_force(tmp_path):
    path = write_mocks(tmp_path, documented_mocks())
    output = tmp_path / "out.yaml"
    output.write_text("mine")
    done = run_cli("import", "devproxy", str(path), "-o", str(output))
    assert_one_line_error(done, f"graph-vcr-proxy: {output}: exists; pass --force to replace it")
    assert output.read_text() == "mine"
    assert run_cli("import", "devproxy", str(path), "-o", str(output), "--force").returncode == 0
    assert len(cassette.load(output)) == 7


# --- a cassette to mocks ------------------------------------------------------------------


def test_the_bundled_cassette_exports_to_the_documented_mock_shape(tmp_path):
    output = tmp_path / "mocks.json"
    source = cassette.bundled_cassettes() / "create-virtualappointment-me.yaml"
    assert export_devproxy(source, output, force=False) == 1
    document = json.loads(output.read_text())
    assert document["$schema"] == SCHEMA_URL
    [mock] = document["mocks"]
    assert mock["request"] == {"url": URL, "method": "PUT"}
    assert mock["response"]["statusCode"] == 201
    assert mock["response"]["body"] == json.loads(examples.RESPONSE_BODY)
    assert mock["response"]["headers"] == [
        {"name": "Cache-Control", "value": "no-store"},
        {"name": "Content-Type", "value": "application/json"},
    ]


def test_a_body_dev_proxy_can_only_send_from_a_file_goes_to_one_and_comes_back(tmp_path):
    binary = bytes(range(256))
    source = tmp_path / "binary.yaml"
    source.write_text(
        cassette.cassette_text(
            [
                (
                    Request("GET", f"{ACTIONS}/getVirtualAppointmentJoinWebUrl", None, {}),
                    {
                        "status": {"code": 200, "message": "OK"},
                        "headers": {"Content-Type": ["application/octet-stream"]},
                        "body": {"string": binary},
                    },
                )
            ]
        )
    )
    output = tmp_path / "out" / "mocks.json"
    export_devproxy(source, output, force=False)
    [mock] = json.loads(output.read_text())["mocks"]
    assert mock["response"]["body"] == "@mocks.bodies/mock-0.body"
    assert (output.parent / "mocks.bodies" / "mock-0.body").read_bytes() == binary

    back = tmp_path / "back.yaml"
    import_devproxy(output, ImportSettings(back, validate="off"))
    assert cassette.recorded_reply(cassette.load(back)[0]).body == binary
    with pytest.raises(ConversionError, match="exists; pass --force"):
        export_devproxy(source, output, force=False)
