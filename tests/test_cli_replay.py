"""``graph-vcr-proxy replay``, ``validate`` and ``demo`` as a user runs them: exit statuses,
one-line errors that name the file and line, untouched cassettes, and clean stops."""

from __future__ import annotations

import json
import os
import signal
import socket
from pathlib import Path

import pytest
from helpers import assert_one_line_error, run_cli

from proxy_addons.cassette import cassette, examples
from proxy_addons.cli.launcher import stop

pytestmark = pytest.mark.e2e


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


# --- bad cassettes and arguments: exit 2, one line, file untouched --------------------------


def test_missing_cassette_is_one_line_naming_it(tmp_path, confdir):
    missing = tmp_path / "nope.yaml"
    result = run_cli("replay", "--cassette", str(missing), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: {missing}: no such cassette file or folder")
    assert not missing.exists()


def test_corrupt_yaml_is_one_line_with_file_and_line_and_the_file_is_unchanged(tmp_path, confdir):
    path = tmp_path / "corrupt.yaml"
    path.write_text(
        cassette.cassette_text([examples.documented_interaction(examples.ME_URL)])
        + "- request: {method: PUT\n    uri: [oops\n",
        encoding="utf-8",
    )
    before = snapshot(path)
    line_count = len(path.read_text(encoding="utf-8").splitlines())
    result = run_cli("replay", "--cassette", str(path), confdir=confdir)
    line = assert_one_line_error(result, f"graph-vcr-proxy: {path}:{line_count}: not valid YAML")
    assert "did not find expected" in line
    assert snapshot(path) == before


def test_non_utf8_cassette_is_one_line_with_its_line(tmp_path, confdir):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"version: 1\ninteractions:\n# caf\xe9\n")
    before = snapshot(path)
    result = run_cli("replay", "--cassette", str(path), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: {path}:3: not UTF-8 text")
    assert snapshot(path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_cassette_is_one_line(tmp_path, confdir):
    path = tmp_path / "secret.yaml"
    path.write_text("version: 1\ninteractions: []\n", encoding="utf-8")
    path.chmod(0)
    try:
        result = run_cli("replay", "--cassette", str(path), confdir=confdir)
    finally:
        path.chmod(0o600)
    assert_one_line_error(result, f"graph-vcr-proxy: {path}: Permission denied")


def test_a_folder_with_one_bad_cassette_names_that_file(tmp_path, confdir):
    (tmp_path / "good.yaml").write_text(
        examples.bundled_cassette_texts()["create-virtualappointment-me.yaml"], encoding="utf-8"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\ninteractions:\n"
        "- request: {method: GET, uri: 'https://graph.microsoft.com/', body: null, headers: {}}\n",
        encoding="utf-8",
    )
    before = snapshot(bad)
    result = run_cli("replay", "--cassette", str(tmp_path), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: {bad}:3: interaction 0: response: is missing")
    assert snapshot(bad) == before


# An interaction's shape is reported on its first line (3); a YAML tag on its own (4).
BAD_SHAPES = {
    # status not a mapping: the structure locator itself used to crash on it, and replay
    # then started with no interactions at all
    "status-not-a-mapping": ("response: {status: 200}", 3, "response.status: must be a mapping"),
    "header-line-break": (
        'response: {status: {code: 200}, headers: {X-A: ["a\\nb"]}}',
        3,
        "response.headers.X-A[0]: must not contain a line break",
    ),
    # vcrpy's error for this spans two lines
    "python-tag": (
        "response: {status: {code: 200}, body: {string: !!python/object:os.system x}}",
        4,
        "cannot be loaded safely: could not determine a constructor for the tag",
    ),
}
COMMANDS = {
    "replay": ("replay", "--cassette"),
    "record": ("record", "--record-mode", "none", "--cassette"),
    "validate": ("validate",),
}


@pytest.mark.parametrize("shape", BAD_SHAPES)
@pytest.mark.parametrize("command", COMMANDS)
def test_a_cassette_of_the_wrong_shape_is_one_line_naming_file_and_line_in_every_command(
    tmp_path, confdir, command, shape
):
    response, line, problem = BAD_SHAPES[shape]
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\ninteractions:\n"
        f"- request: {{method: GET, uri: '{examples.ME_URL}', body: null, headers: {{}}}}\n"
        f"  {response}\n",
        encoding="utf-8",
    )
    before = snapshot(path)
    result = run_cli(*COMMANDS[command], str(path), confdir=confdir)
    message = assert_one_line_error(result, f"graph-vcr-proxy: {path}:{line}: ")
    assert problem in message
    assert snapshot(path) == before


@pytest.mark.parametrize("command", ["replay", "validate"])
def test_an_empty_cassette_folder_is_one_line_instead_of_replaying_nothing(
    tmp_path, confdir, command
):
    result = run_cli(*COMMANDS[command], str(tmp_path), confdir=confdir)
    assert_one_line_error(
        result, f"graph-vcr-proxy: {tmp_path}: folder holds no .yaml or .yml cassettes"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--on-miss", "explode"), "graph-vcr-proxy: replay: argument --on-miss: invalid choice"),
        (("--listen-port", "70000"), "graph-vcr-proxy: replay: argument --listen-port"),
        (("--no-such-flag",), "graph-vcr-proxy: unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_arguments_are_one_line(confdir, args, message):
    result = run_cli("replay", *args)
    assert_one_line_error(result, message)


def test_a_port_in_use_is_one_line_exit_2(confdir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "replay", "--listen-port", str(port), "--confdir", str(confdir), "--no-summary"
        )
    assert_one_line_error(result, f"graph-vcr-proxy: cannot listen on 127.0.0.1:{port}")


# --- running and stopping ------------------------------------------------------------------


def test_listens_on_loopback_and_says_where_and_which_ca(start_proxy, confdir):
    proxy = start_proxy("replay")
    assert proxy.url.startswith("http://127.0.0.1:") and proxy.port > 0
    assert proxy.ca == confdir / "mitmproxy-ca-cert.pem"
    assert proxy.ca.is_file()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10):
        pass
    assert proxy.stop() == 0
    assert any(
        f"replaying 2 interactions from {cassette.bundled_cassettes()}" in line
        for line in proxy.stderr
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_stop_it_cleanly_with_status_0(start_proxy, client_for, sig):
    proxy = start_proxy("replay")
    assert (
        client_for(proxy)
        .put(examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS)
        .status_code
        == 201
    )
    proxy.process.send_signal(sig)
    assert stop(proxy.process) == 0
    assert "Traceback" not in "".join(proxy.stderr)


def test_a_replay_run_never_modifies_the_cassette(start_proxy, client_for, tmp_path):
    path = tmp_path / "me.yaml"
    path.write_text(
        examples.bundled_cassette_texts()["create-virtualappointment-me.yaml"], encoding="utf-8"
    )
    before = snapshot(path)
    proxy = start_proxy("replay", "--cassette", str(path))
    client = client_for(proxy)
    client.put(examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS)
    client.get(examples.ME_URL)  # a miss
    assert proxy.stop() == 0
    assert snapshot(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["me.yaml"]


# --- validate and demo ---------------------------------------------------------------------


def test_validate_accepts_the_bundled_cassettes():
    result = run_cli("validate", str(cassette.bundled_cassettes()))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 interactions checked, 0 invalid" in result.stdout
    assert "$.settings.allowClientToJoinUsingBrowser" in result.stdout  # the "true" note
    assert "note" in result.stdout


def test_validate_exits_1_and_shows_the_json_path_of_each_problem(tmp_path):
    request, response = examples.documented_interaction(examples.ME_URL)
    body = json.loads(response["body"]["string"])
    body["settings"]["allowClientToJoinUsingBrowser"] = 7
    body["colour"] = "blue"
    response["body"]["string"] = json.dumps(body)
    path = tmp_path / "invalid.yaml"
    path.write_text(cassette.cassette_text([(request, response)]), encoding="utf-8")
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    assert "$.settings.allowClientToJoinUsingBrowser" in result.stdout
    assert "$.colour" in result.stdout
    assert "1 interactions checked, 1 invalid" in result.stdout


def test_validate_exits_2_on_a_corrupt_cassette(tmp_path):
    path = tmp_path / "corrupt.yaml"
    path.write_text("version: 1\ninteractions: [\n", encoding="utf-8")
    result = run_cli("validate", str(path))
    assert_one_line_error(result, f"graph-vcr-proxy: {path}:3: not valid YAML")


def test_demo_tells_replay_the_etag_flow_and_a_throttle_in_order_and_exits_0(tmp_path):
    result = run_cli("demo", timeout=120, cwd=tmp_path)  # finds the bundled cassettes anywhere
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    story = [
        "1. replay",
        "-> 201 Created",
        "validation: request and response valid",
        "2. simulate",
        "-> 412 Precondition Failed",
        "error code ErrorIrresolvableConflict",
        "-> 204 No Content",
        "3. a fault",
        "-> 429 Too Many Requests  Retry-After: 1",
        "-> 200 OK",
        "4. what the proxies saw",
        "faults injected",
        "demo: OK",
    ]
    at = 0
    for step in story:  # each step after the one before it
        found = out.find(step, at)
        assert found >= 0, f"{step!r} missing after offset {at}:\n{out}"
        at = found + len(step)
    assert "…" not in out  # the summaries show only counted columns, none cut short


def test_a_confdir_that_is_a_file_is_one_line_exit_2(tmp_path, confdir):
    not_a_folder = tmp_path / "afile"
    not_a_folder.write_text("")
    result = run_cli("replay", "--confdir", str(not_a_folder), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: --confdir {not_a_folder}: not a folder")


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_an_ipv6_listen_address_is_announced_as_a_usable_url(start_proxy, client_for):
    proxy = start_proxy("replay", "--listen-host", "::1")
    assert proxy.url.startswith("http://[::1]:")
    response = client_for(proxy).put(
        examples.ME_URL, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS
    )
    assert response.status_code == 201
