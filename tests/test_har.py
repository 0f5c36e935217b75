"""``import har`` and ``export har``: HAR 1.2, read and written by mitmproxy's own code.

(The HAR file a real ``mitmdump --set hardump=`` wrote, and the round trip through a replay
proxy, are in test_conversions_e2e.py.)
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import assert_one_line_error, run_cli

from proxy_addons.cassette import cassette, examples
from proxy_addons.convert.conversions import ImportSettings
from proxy_addons.convert.har import export_har, import_har

URL = examples.ME_URL
TOKEN = "har-secret-token-1357"


def browser_entry(**changes: Any) -> dict[str, Any]:
    """An entry as Chromium's dev tools save an HTTP/2 exchange: pseudo-headers among the
    request headers, private ``_`` fields, a base64 response body."""
    entry = {
        "_initiator": {"type": "script"},
        "_priority": "High",
        "_resourceType": "fetch",
        "cache": {},
        "connection": "443",
        "request": {
            "method": "PUT",
            "url": URL,
            "httpVersion": "http/2.0",
            "headers": [
                {"name": ":authority", "value": "graph.microsoft.com"},
                {"name": ":method", "value": "PUT"},
                {"name": ":path", "value": URL.removeprefix("https://graph.microsoft.com")},
                {"name": ":scheme", "value": "https"},
                {"name": "authorization", "value": f"Bearer {TOKEN}"},
                {"name": "content-type", "value": "application/json"},
            ],
            "queryString": [],
            "cookies": [],
            "headersSize": -1,
            "bodySize": len(examples.REQUEST_BODY),
            "postData": {"mimeType": "application/json", "text": examples.REQUEST_BODY},
        },
        "response": {
            "status": 201,
            "statusText": "",
            "httpVersion": "http/2.0",
            "headers": [
                {"name": "content-type", "value": "application/json"},
                {"name": "etag", "value": 'W/"AAAA"'},
            ],
            "cookies": [],
            "content": {
                "size": len(examples.RESPONSE_BODY),
                "mimeType": "application/json",
                "text": base64.b64encode(examples.RESPONSE_BODY.encode()).decode(),
                "encoding": "base64",
            },
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": -1,
            "_transferSize": 812,
            "_error": None,
        },
        "serverIPAddress": "20.190.151.68",
        "startedDateTime": "2026-11-24T03:22:44.123Z",
        "time": 121.5,
        "timings": {
            "blocked": 1,
            "dns": -1,
            "ssl": -1,
            "connect": -1,
            "send": 0,
            "wait": 120,
            "receive": 0.5,
        },
    }
    entry.update(changes)
    return entry


def har_file(path: Path, *entries: dict[str, Any]) -> Path:
    creator = {"name": "WebInspector", "version": "537.36"}
    path.write_text(
        json.dumps(
            {"log": {"version": "1.2", "creator": creator, "pages": [], "entries": list(entries)}}
        )
    )
    return path


def test_a_browser_entry_imports_without_pseudo_headers_or_secrets(tmp_path):
    source = har_file(tmp_path / "browser.har", browser_entry())
    output = tmp_path / "out.yaml"
    report = import_har(source, ImportSettings(output))
    assert report.imported == 1
    [interaction] = cassette.load(output)
    headers = interaction.request.headers
    assert not [name for name in headers if name.startswith(":")]
    assert headers["authorization"] == "<redacted:authorization:1>"
    assert TOKEN not in output.read_text()
    assert interaction.request.body == examples.REQUEST_BODY.encode()
    reply = cassette.recorded_reply(interaction)
    assert (reply.status, reply.body, reply.header("etag")) == (
        201,
        examples.RESPONSE_BODY.encode(),
        'W/"AAAA"',
    )


def test_an_entry_without_a_response_is_skipped_with_its_index(tmp_path, caplog):
    failed = browser_entry()
    failed["response"] = {
        **failed["response"],
        "status": 0,
        "content": {},
        "_error": "net::ERR_FAILED",
    }
    source = har_file(tmp_path / "s.har", failed, browser_entry())
    report = import_har(source, ImportSettings(tmp_path / "out.yaml"))
    assert (report.imported, report.skipped) == (1, 1)
    assert (
        f"{source}: entry 0: PUT /beta/me/" in caplog.text and "skipped: no response" in caplog.text
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"log": {\n  "entries": [\n    {,}\n  ]}}',
            "s.har:3: not valid JSON: Expecting property name",
        ),
        ('{"entries": []}', "s.har: not a HAR file: no 'log.entries' list"),
        (
            json.dumps({"log": {"entries": [browser_entry(), {"request": {}}]}}),
            "s.har: entry 1: not a HAR entry: 'startedDateTime' is missing",
        ),
        (
            json.dumps({"log": {"entries": [browser_entry(startedDateTime="yesterday")]}}),
            "s.har: entry 0: not a HAR entry: Invalid isoformat string",
        ),
    ],
)
def test_a_bad_har_file_is_exit_2_naming_the_line_or_entry(tmp_path, text, message):
    (tmp_path / "s.har").write_text(text)
    done = run_cli("import", "har", str(tmp_path / "s.har"), "-o", str(tmp_path / "out.yaml"))
    line = assert_one_line_error(done, "graph-vcr-proxy: ")
    assert message in line.replace(f"{tmp_path}/", "")
    assert not (tmp_path / "out.yaml").exists()


def test_the_bundled_cassettes_export_to_har_and_come_back_the_same(tmp_path):
    har = tmp_path / "bundled.har"
    assert export_har(cassette.bundled_cassettes(), har, force=False) == 2
    document = json.loads(har.read_text())
    assert (document["log"]["version"], document["log"]["creator"]["name"]) == ("1.2", "mitmproxy")
    first = document["log"]["entries"][0]
    assert (first["request"]["method"], first["request"]["url"]) == ("PUT", URL)
    assert first["request"]["postData"]["text"] == examples.REQUEST_BODY
    assert (first["response"]["status"], first["response"]["content"]["text"]) == (
        201,
        examples.RESPONSE_BODY,
    )

    back = tmp_path / "back.yaml"
    import_har(har, ImportSettings(back))
    originals = cassette.load(cassette.bundled_cassettes())
    for before, after in zip(originals, cassette.load(back), strict=True):
        assert (after.request.method, after.request.uri, after.request.body) == (
            before.request.method,
            before.request.uri,
            before.request.body,
        )
        old, new = cassette.recorded_reply(before), cassette.recorded_reply(after)
        assert (new.status, new.reason, new.body) == (old.status, old.reason, old.body)


def test_export_refuses_to_overwrite_without_force_and_a_bad_cassette_is_one_line(tmp_path):
    har = tmp_path / "out.har"
    har.write_text("keep")
    done = run_cli("export", "har", str(cassette.bundled_cassettes()), "-o", str(har))
    assert_one_line_error(done, f"graph-vcr-proxy: {har}: exists; pass --force to replace it")
    assert har.read_text() == "keep"

    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ninteractions:\n- request: {method: GET}\n")
    done = run_cli("export", "har", str(broken), "-o", str(tmp_path / "new.har"))
    assert_one_line_error(done, f"graph-vcr-proxy: {broken}:3: interaction 0: request.")
    assert not (tmp_path / "new.har").exists()
