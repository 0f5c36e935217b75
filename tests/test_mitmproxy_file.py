"""``import flows``: mitmproxy flow files, written here by mitmproxy's own ``FlowWriter``.

(The end-to-end file from a real ``mitmdump -w`` is in test_conversions_e2e.py.) Each flow is
stored as the recorder stores one: same routes, refusals, validation lines and redaction.
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

import pytest
from helpers import assert_one_line_error, graph_flow, run_cli
from mitmproxy import http
from mitmproxy import io as mitmproxy_io

from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.redaction import RedactionRules
from proxy_addons.convert.conversions import ConversionError, ImportSettings
from proxy_addons.convert.mitmproxy_file import import_flow_file

URL = examples.ME_URL
TOKEN = "flow-file-secret-token-2468"
JSON = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


def answered(flow: http.HTTPFlow, status: int, body: bytes = b"", **headers: str) -> http.HTTPFlow:
    flow.response = http.Response.make(
        status, body, {"Content-Type": "application/json", **headers}
    )
    return flow


def created() -> http.HTTPFlow:
    flow = graph_flow("PUT", URL, examples.REQUEST_BODY, JSON)
    return answered(flow, 201, examples.RESPONSE_BODY.encode(), ETag='W/"1"')


def write_flows(path: Path, *flows: http.HTTPFlow) -> Path:
    with path.open("wb") as file:
        writer = mitmproxy_io.FlowWriter(file)
        for flow in flows:
            writer.add(flow)
    return path


def test_flows_are_stored_as_the_recorder_stores_them(tmp_path):
    gets = graph_flow("GET", URL, headers={"Authorization": f"Bearer {TOKEN}"})
    payload = json.dumps({"id": "x", "externalAppointmentId": f"echo {TOKEN}"}).encode()
    # Response.make encodes what it is given as its Content-Encoding says: gzip on the wire.
    answered(gets, 200, payload, **{"Content-Encoding": "gzip"})
    assert gzip.decompress(gets.response.raw_content) == payload
    other = answered(graph_flow("GET", "https://example.com/"), 200, b"{}")
    source = write_flows(tmp_path / "s.mitm", created(), other, gets)
    output = tmp_path / "out.yaml"

    report = import_flow_file(source, ImportSettings(output))

    assert (report.read, report.imported, report.not_ours) == (3, 2, 1)
    stored = output.read_text()
    assert TOKEN not in stored  # the header redacted, and swept out of the echoing body
    put, get = cassette.load(output)
    assert put.request.headers["Authorization"] == "<redacted:authorization:1>"
    reply = cassette.recorded_reply(get)
    # Stored as the recorder stores it (and vcrpy under httpx): compressed as it came, with
    # its Content-Encoding, redacted inside, with a Content-Length that fits.
    assert reply.header("content-encoding") == "gzip"
    document = json.loads(gzip.decompress(reply.body))
    assert document["externalAppointmentId"] == "echo <redacted:authorization:1>"
    assert reply.header("content-length") == str(len(reply.body))


def test_compressed_bodies_are_checked_and_validated_decoded_and_stored_as_they_came(
    tmp_path, caplog
):
    caplog.set_level(logging.WARNING)
    put = graph_flow("PUT", URL, None, {**JSON, "Content-Encoding": "gzip"})
    put.request.raw_content = gzip.compress(examples.REQUEST_BODY.encode())  # Kiota's way
    answered(put, 201, examples.RESPONSE_BODY.encode(), **{"Content-Encoding": "gzip"})
    source = write_flows(tmp_path / "s.mitm", put)
    output = tmp_path / "out.yaml"

    report = import_flow_file(source, ImportSettings(output))

    assert (report.imported, report.skipped, report.invalid) == (1, 0, 0)
    assert "unparseable" not in caplog.text
    (stored,) = cassette.load(output)
    assert stored.request.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(stored.request.body)) == json.loads(examples.REQUEST_BODY)


def test_placeholders_continue_after_those_already_in_the_file(tmp_path):
    old = graph_flow("GET", URL, headers={"Authorization": "<redacted:authorization:1>"})
    source = write_flows(tmp_path / "s.mitm", answered(old, 200, b"{}"), created())
    output = tmp_path / "out.yaml"
    import_flow_file(source, ImportSettings(output))
    first, second = cassette.load(output)
    assert first.request.headers["Authorization"] == "<redacted:authorization:1>"
    assert second.request.headers["Authorization"] == "<redacted:authorization:2>"


def test_validation_warns_with_the_recorder_lines_and_enforce_leaves_the_request_out(
    tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    bad = graph_flow("PUT", URL, '{"settings": {"allowClientToJoinUsingBrowser": 7}}', JSON)
    source = write_flows(tmp_path / "s.mitm", created(), answered(bad, 201, b'{"id": 5}'))

    report = import_flow_file(source, ImportSettings(tmp_path / "warn.yaml"))
    path = "/beta/me/onlineMeetings/MSpkYzE3Njc0Yy04MWQ5LTRhZGItYmZi/virtualAppointment"
    assert (
        f"{source}: flow 1: PUT {path}: $.settings.allowClientToJoinUsingBrowser: "
        "expected a valid boolean, got 7 (request)" in caplog.text
    )
    assert f"{source}: flow 1: PUT {path}: $.id: expected a valid string, got 5 (response 201)" in (
        caplog.text
    )
    # The documented "true" string is a note, at debug level, as the recorder logs it.
    notes = [r for r in caplog.records if "string 'true' (accepted)" in r.getMessage()]
    assert notes and {r.levelno for r in notes} == {logging.DEBUG}
    assert (report.imported, report.invalid) == (2, 1)

    enforced = import_flow_file(
        source, ImportSettings(tmp_path / "enforce.yaml", validate="enforce")
    )
    assert (enforced.imported, enforced.skipped) == (1, 1)
    assert len(cassette.load(tmp_path / "enforce.yaml")) == 1


def test_redact_field_applies_as_in_record(tmp_path):
    source = write_flows(tmp_path / "s.mitm", created())
    output = tmp_path / "out.yaml"
    rules = RedactionRules.of(fields=["emailAddress", "smsCapablePhoneNumber"])
    import_flow_file(source, ImportSettings(output, rules=rules))
    stored = output.read_text()
    assert "gradya@contoso.com" not in stored and "123-456-7890" not in stored
    assert "<redacted:emailAddress:1>" in stored


def test_flows_replay_would_never_answer_are_skipped_with_their_number(tmp_path, caplog):
    no_answer = graph_flow("GET", URL)
    refused = answered(graph_flow("POST", URL, "{}", JSON), 405)
    source = write_flows(tmp_path / "s.mitm", no_answer, refused, created())
    report = import_flow_file(source, ImportSettings(tmp_path / "out.yaml"))
    assert (report.imported, report.skipped) == (1, 2)
    assert (
        f"{source}: flow 0: GET /beta/me/" in caplog.text and "skipped: no response" in caplog.text
    )
    assert "flow 1: POST /beta/me/" in caplog.text
    assert "skipped: Graph refuses this request before any lookup (405 Request_BadRequest)" in (
        caplog.text
    )


def test_a_damaged_flow_file_is_exit_2_naming_the_flow(tmp_path):
    whole = write_flows(tmp_path / "whole.mitm", created(), created()).read_bytes()
    damaged = tmp_path / "damaged.mitm"
    damaged.write_bytes(whole[: len(whole) * 3 // 4])
    done = run_cli("import", "flows", str(damaged), "-o", str(tmp_path / "out.yaml"))
    assert_one_line_error(
        done, f"graph-vcr-proxy: {damaged}: flow 1: not a readable mitmproxy flow"
    )
    assert not (tmp_path / "out.yaml").exists()


def test_a_file_with_none_of_our_calls_writes_nothing(tmp_path):
    other = answered(graph_flow("GET", "https://graph.microsoft.com/v1.0/me"), 200, b"{}")
    source = write_flows(tmp_path / "s.mitm", other)
    with pytest.raises(ConversionError, match="holds no virtualAppointment calls to import"):
        import_flow_file(source, ImportSettings(tmp_path / "out.yaml"))
    assert not (tmp_path / "out.yaml").exists()


@pytest.mark.parametrize("name", ["folder", "s.mitm"])
def test_an_output_that_is_a_folder_or_the_input_is_refused(tmp_path, name):
    source = write_flows(tmp_path / "s.mitm", created())
    (tmp_path / "folder").mkdir()
    done = run_cli("import", "flows", str(source), "-o", str(tmp_path / name), "--force")
    line = assert_one_line_error(done, f"graph-vcr-proxy: {tmp_path / name}: ")
    assert "is a folder" in line or "is also the input" in line
