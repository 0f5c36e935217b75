"""The pytest plugin's proxy (session.py): one real child, switched between tests.

One child serves the whole module, as one serves a whole test run: every test here switches
it with ``PUT /session`` and proves that nothing of the previous session leaks into the next.
Clients are real httpx clients over HTTPS; recording goes to a local stand-in for Graph.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import documented_graph

from proxy_addons.cassette import cassette, examples
from proxy_addons.common import control_pipe
from proxy_addons.common.answered_by import AnsweredBy
from proxy_addons.common.control_address import HOST
from proxy_addons.testing.journal import Call
from proxy_addons.testing.session_client import ProxyError, SessionProxy
from proxy_addons.testing.vcr_settings import Plan

pytestmark = pytest.mark.e2e

ME = examples.ME_URL
BODY = examples.REQUEST_BODY
HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer t"}
BUNDLED_ME = cassette.bundled_cassettes() / "create-virtualappointment-me.yaml"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session root the module's child is started with: every tmp_path is inside it."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="module")
def bundled_me(root: Path) -> Path:
    """The bundled create cassette, copied under the session root."""
    path = root / "bundled" / BUNDLED_ME.name
    path.parent.mkdir(exist_ok=True)
    shutil.copy(BUNDLED_ME, path)
    return path


@pytest.fixture(scope="module")
def proxy(confdir: Path, root: Path) -> Iterator[SessionProxy]:
    session = SessionProxy(confdir, root=root)
    yield session
    session.stop()


def switch(proxy: SessionProxy, mode: str, *args: str) -> httpx.Client:
    """Switch the proxy and give an httpx client through it (closed by the caller's with)."""
    return switch_plan(proxy, Plan(mode, args))


def switch_plan(proxy: SessionProxy, plan: Plan) -> httpx.Client:
    running = proxy.switch(plan)
    verify = ssl.create_default_context(cafile=str(running.ca))
    return httpx.Client(proxy=running.url, verify=verify, timeout=30)


def two_answers_cassette(folder: Path) -> Path:
    """Two recordings of the same GET: replay answers the first, then the second again."""
    pairs = []
    for n in (1, 2):
        request, response = examples.documented_interaction(ME)
        request.method, request.body = "GET", None
        response["status"] = {"code": 200, "message": "OK"}
        response["body"] = {"string": json.dumps({"id": f"answer-{n}"})}
        pairs.append((request, response))
    path = folder / "two.yaml"
    path.write_text(cassette.cassette_text(pairs), encoding="utf-8")
    return path


def test_replay_positions_start_again_in_each_session(proxy, tmp_path):
    path = two_answers_cassette(tmp_path)
    with switch(proxy, "replay", "--cassette", str(path), "--allow-playback-repeats") as client:
        assert [client.get(ME).json()["id"] for _ in range(3)] == [
            "answer-1",
            "answer-2",
            "answer-2",
        ]
    with switch(proxy, "replay", "--cassette", str(path)) as client:
        assert client.get(ME).json()["id"] == "answer-1"


def test_emulator_state_is_new_in_each_session(proxy):
    with switch(proxy, "simulate") as client:
        assert client.put(ME, content=BODY, headers=HEADERS).status_code == 201
        assert client.get(ME, headers=HEADERS).status_code == 200
    with switch(proxy, "simulate") as client:
        assert client.get(ME, headers=HEADERS).status_code == 404


def test_fault_rules_and_their_counters_are_new_in_each_session(proxy, bundled_me):
    for _ in range(2):
        with switch(
            proxy, "replay", "--cassette", str(bundled_me), "--fault", "throttle:times=1"
        ) as c:
            assert [c.put(ME, content=BODY, headers=HEADERS).status_code for _ in "ab"] == [
                429,
                201,
            ]


def test_the_etags_learnt_in_a_session_are_forgotten_in_the_next(proxy):
    stale = "etag-mismatch:when=stale,code=FaultSaysStale"
    old = {**HEADERS, "If-Match": 'W/"old"'}
    with switch(proxy, "simulate", "--fault", stale) as client:
        assert client.put(ME, content=BODY, headers=HEADERS).status_code == 201  # learnt
        refused = client.patch(ME, content="{}", headers=old)
        assert refused.json()["error"]["code"] == "FaultSaysStale"
    with switch(proxy, "simulate", "--fault", stale) as client:
        answer = client.patch(ME, content="{}", headers=old)  # no ETag known: the emulator's
        assert answer.json()["error"]["code"] != "FaultSaysStale"


def test_faults_added_during_a_session_last_until_the_next_one(proxy):
    with switch(proxy, "simulate", "--allow-anonymous") as client:
        proxy.add_faults(["unavailable:method=GET"])
        assert client.get(ME).status_code == 503
        proxy.clear_faults()
        assert client.get(ME).status_code == 404
        proxy.add_faults(["unavailable"])
    with switch(proxy, "simulate", "--allow-anonymous") as client:
        assert client.get(ME).status_code == 404


def test_the_journal_lists_this_sessions_calls_with_who_answered(proxy, bundled_me):
    with switch(proxy, "replay", "--cassette", str(bundled_me), "--fault", "reset:nth=2") as c:
        assert c.put(ME, content=BODY, headers=HEADERS).status_code == 201
        with pytest.raises(httpx.RemoteProtocolError):
            c.put(ME, content=BODY, headers=HEADERS)
        assert c.get(f"{ME}?$select=id").status_code == 501
        assert c.get("http://127.0.0.1:1/").status_code == 502  # not ours: passed on
        calls = proxy.calls()
    create = Call(
        method="PUT",
        url=ME,
        operation="create",
        body=json.loads(BODY),
        status=201,
        answered_by=AnsweredBy.REPLAY,
    )
    assert dataclasses.replace(calls[0], headers=None) == create
    assert calls[0].headers is not None and calls[0].headers["Authorization"] == "<redacted>"
    assert (calls[1].answered_by, calls[1].fault, calls[1].status) == (
        AnsweredBy.FAULT,
        "reset",
        None,
    )
    miss = calls[2]
    assert (miss.method, miss.operation, miss.status, miss.is_miss) == ("GET", "get", 501, True)
    assert miss.miss is not None and "closest recorded request is PUT" in miss.miss
    assert len(calls) == 3  # other traffic is not journalled
    with switch(proxy, "replay", "--cassette", str(bundled_me)):
        assert proxy.calls() == ()


def test_a_refused_session_is_one_line_and_graph_calls_then_go_nowhere(proxy, bundled_me):
    with pytest.raises(ProxyError) as raised:
        proxy.switch(Plan("replay", ("--cassette", str(bundled_me), "--fault", "throttle:x=1")))
    assert str(raised.value).startswith("graph-vcr-proxy: fault 'throttle:x=1': unknown key 'x'")
    running = proxy.ensure_started()
    verify = ssl.create_default_context(cafile=str(running.ca))
    with httpx.Client(proxy=running.url, verify=verify, timeout=30) as client:
        answer = client.put(ME, content=BODY, headers=HEADERS)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "NoSession"
    with pytest.raises(ProxyError, match="no such cassette file or folder"):
        proxy.switch(Plan("replay", ("--cassette", str(bundled_me.parent / "nonexistent.yaml"))))


def test_a_record_session_writes_the_cassette_the_next_session_replays(proxy, tmp_path):
    path = tmp_path / "rec" / "create.yaml"
    with documented_graph() as upstream:
        args = ("--cassette", str(path), "--record-mode", "once", "--upstream", upstream)
        with switch(proxy, "record", *args) as client:
            assert client.put(ME, content=BODY, headers=HEADERS).status_code == 201
            assert [c.answered_by for c in proxy.calls()] == [AnsweredBy.UPSTREAM]
    with switch(proxy, "replay", "--cassette", str(path)) as client:
        assert (
            client.put(ME, content=BODY, headers=HEADERS).json()["id"]
            == json.loads(examples.RESPONSE_BODY)["id"]
        )
    assert "Bearer t" not in path.read_text(encoding="utf-8")


def test_a_child_whose_test_run_died_stops_by_itself(confdir, tmp_path):
    own = SessionProxy(confdir, root=tmp_path)
    running = own.ensure_started()
    assert running.process.stdin is not None
    running.process.stdin.close()  # what the end of the pytest process does to the pipe
    assert running.process.wait(30) == 0


def test_workers_starting_together_on_a_new_confdir_share_one_ca(tmp_path):
    proxies = [SessionProxy(tmp_path / "ca", root=tmp_path) for _ in range(2)]
    threads = [threading.Thread(target=p.ensure_started) for p in proxies]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        cas = {p.ensure_started().ca.read_bytes() for p in proxies}
        assert len(cas) == 1
        for p in proxies:  # each one's TLS answers verify against the CA on disk
            with switch(p, "simulate", "--allow-anonymous") as client:
                assert client.get(ME).status_code == 404
    finally:
        for p in proxies:
            p.stop()
    assert os.listdir(tmp_path / "ca")


@pytest.mark.parametrize(
    ("method", "path", "body", "answer"),
    [
        ("GET", "/session", None, "GET is not allowed; use PUT."),
        ("POST", "/calls", [], "POST is not allowed; use GET."),
        ("PUT", "/session", {"mode": "replay", "args": "--seed 1"}, "args must be a list"),
        ("PUT", "/session", {"mode": "playback"}, "mode must be one of replay, record, simulate"),
        (
            "PUT",
            "/session",
            {"mode": "replay", "args": ["--nope"]},
            "replay: unrecognized arguments: --nope",
        ),
        ("PUT", "/session", {"mode": "simulate", "args": ["--reverse"]}, "--reverse: makes"),
        ("PUT", "/session", {"mode": "replay", "args": ["--help"]}, "replay: unrecognized"),
        (
            "PUT",
            "/session",
            {"mode": "record", "args": ["--cassette", "c.yaml", "-h"]},
            "record: unrecognized",
        ),
        ("PUT", "/session", {"mode": "simulate", "args": ["--version"]}, "simulate: unrecog"),
        ("PUT", "/session", {"mode": "simulate", "args": ["--rev"]}, "simulate: unrecognized"),
        (
            "PUT",
            "/session",
            {"mode": "replay", "args": ["--cass", "c.yaml"]},
            "replay: unrecognized arguments: --cass c.yaml",
        ),
        (
            "PUT",
            "/session",
            {"mode": "record", "args": ["--cassette", "/tmp/x.yaml"]},
            "--cassette '/tmp/x.yaml': outside the session root",
        ),
        (
            "PUT",
            "/session",
            {"mode": "record", "args": ["--cassette", "a.yaml", "--cassette=/tmp/x.yaml"]},
            "--cassette is given twice",
        ),
        (
            "PUT",
            "/session",
            {"mode": "simulate", "args": ["--state", "../../../../../etc/state.json"]},
            "--state '../../../../../etc/state.json': outside the session root",
        ),
        ("PUT", "/session", {"mode": "simulate", "args": ["--web"]}, "--web: a web UI"),
        ("PUT", "/session", {"mode": "replay", "args": ["--listen-port=0"]}, "--listen-port: set"),
    ],
)
def test_the_session_endpoint_refuses_what_it_cannot_serve(proxy, method, path, body, answer):
    proxy.ensure_started()
    assert proxy.control is not None
    with pytest.raises(ProxyError) as raised:
        proxy.control.request(method, path, body)
    assert str(raised.value).startswith(f"graph-vcr-proxy: {answer}")


def test_help_in_a_sessions_args_is_one_line_and_the_child_serves_on(proxy, bundled_me):
    """argparse's --help used to end the child with SystemExit: every later test then failed
    with "no answer from the proxy"."""
    with pytest.raises(
        ProxyError, match=r"^graph-vcr-proxy: replay: unrecognized arguments: --help$"
    ):
        proxy.switch(Plan("replay", ("--cassette", str(bundled_me), "--help")))
    with switch(proxy, "replay", "--cassette", str(bundled_me)) as client:
        assert client.put(ME, content=BODY, headers=HEADERS).status_code == 201


CONTROL = f"http://{HOST}"


def test_a_web_page_can_neither_post_text_nor_send_its_origin(proxy, bundled_me):
    running = proxy.switch(Plan("replay", ("--cassette", str(bundled_me))))
    with httpx.Client(proxy=running.url, timeout=30) as client:
        text = {"Content-Type": "text/plain"}
        assert (
            client.post(f"{CONTROL}/faults", content='["forbidden"]', headers=text).status_code
            == 415
        )
        evil = {"Origin": "https://evil.example"}
        switched = client.put(
            f"{CONTROL}/session", json={"mode": "simulate", "args": []}, headers=evil
        )
        assert switched.status_code == 403
        assert client.get(f"{CONTROL}/faults").json() == {"faults": []}
    assert proxy.calls() == ()  # still the replay session, unswitched


def test_calls_returns_a_call_whose_body_is_nested_600_deep(proxy):
    """Its RecursionError used to turn GET /calls into "The control endpoint is /faults."."""
    deep = "[" * 600 + "]" * 600
    with switch(proxy, "simulate", "--allow-anonymous") as client:
        client.put(ME, content=deep, headers={"Content-Type": "application/json"})
        (call,) = proxy.calls()
    assert (call.operation, call.body) == ("create", deep)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"[" * 100_000, 400),
        (b'{"mode": "\xff\xfe"}', 400),
        (b"[" + b"1," * 3_000_000 + b"1]", 413),
    ],
    ids=["nested 100000 deep", "bad UTF-8", "6 MB"],
)
def test_the_child_answers_any_session_body_in_json_and_serves_on(proxy, body, status):
    running = proxy.ensure_started()
    with httpx.Client(proxy=running.url, timeout=60) as client:
        answer = client.put(
            f"{CONTROL}/session", content=body, headers={"Content-Type": "application/json"}
        )
        assert (answer.status_code, answer.headers["Content-Type"]) == (status, "application/json")
        assert client.get(f"{CONTROL}/calls").status_code == 200


def test_a_missing_cassette_the_plugin_lets_through_is_a_miss_naming_the_file(proxy, tmp_path):
    missing = tmp_path / "never-recorded.yaml"
    plan = Plan("replay", ("--cassette", str(missing), "--fault", "throttle:times=1"))
    running = proxy.switch(dataclasses.replace(plan, missing_cassette_ok=True))
    verify = ssl.create_default_context(cafile=str(running.ca))
    with httpx.Client(proxy=running.url, verify=verify, timeout=30) as client:
        statuses = [client.put(ME, content=BODY, headers=HEADERS).status_code for _ in "ab"]
        answer = client.put(ME, content=BODY, headers=HEADERS)
    assert statuses == [429, 501]  # the test's faults still come first
    assert answer.json()["error"]["code"] == "CassetteMiss"
    assert (
        f"cassette {missing} does not exist (record mode none)"
        in (answer.json()["error"]["message"])
    )
    assert [c.answered_by for c in proxy.calls()] == ["fault", "miss", "miss"]
    assert not missing.exists()
    # The flag only lets a missing file through: one that exists is replayed as ever.
    shutil.copy(BUNDLED_ME, missing)
    with switch_plan(
        proxy, dataclasses.replace(plan, args=plan.args[:2], missing_cassette_ok=True)
    ) as client:
        assert client.put(ME, content=BODY, headers=HEADERS).status_code == 201


# --- the plugin's pipe (control_pipe.py): the endpoint's answers, without HTTP -------------


def pipe_reply(proxy: SessionProxy, line: str) -> tuple[int, int, dict]:
    """Write ``line`` to the child's stdin; its reply line, read as the plugin reads it."""
    running = proxy.ensure_started()
    assert running.process.stdin is not None
    running.process.stdin.write(line)
    running.process.stdin.flush()
    reply = running.replies.get(timeout=30)
    assert reply is not None, "the child ended"
    request_id, status, body = control_pipe.parse_reply(reply)
    return request_id, status, json.loads(body)


def test_a_control_request_on_the_childs_stdin_gets_the_endpoints_answer_on_its_stdout(proxy):
    line = control_pipe.request_line(7, "PUT", "/session", {"mode": "replay", "args": ["--x"]})
    request_id, status, piped = pipe_reply(proxy, line)
    with switch(proxy, "simulate") as client:  # the same request through the proxy
        over_http = client.put(f"http://{HOST}/session", json={"mode": "replay", "args": ["--x"]})
    assert (request_id, status, piped["error"]["message"]) == (
        7,
        over_http.status_code,
        over_http.json()["error"]["message"],
    )


def test_a_line_the_child_cannot_read_is_a_400_and_the_pipe_serves_on(proxy):
    _, status, answer = pipe_reply(proxy, '{"id": 3, "method": "GET"}\n')
    assert (status, answer["error"]["code"]) == (400, "BadRequest")
    assert "expected id" in answer["error"]["message"]
    with switch(proxy, "simulate"):
        pass
    assert pipe_reply(proxy, control_pipe.request_line(4, "GET", "/calls"))[1:] == (
        200,
        {"calls": []},
    )


def sockets(pid: int) -> int:
    """How many sockets the process holds: its listening ones, asyncio's own, connections."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc")
def test_the_plugins_switch_and_journal_open_no_connection_to_the_proxy(confdir, tmp_path):
    own = SessionProxy(confdir, root=tmp_path)
    try:
        pid = own.ensure_started().process.pid
        before = sockets(pid)
        own.switch(Plan("simulate", ("--allow-anonymous",)))
        assert own.calls() == ()
        assert sockets(pid) == before  # a kept-alive HTTP connection would be one more
    finally:
        own.stop()


PROBE = """
import argparse, asyncio, gc, sys
from mitmproxy import ctx
from proxy_addons.cli import serving

class Probe:
    def running(self):
        print("collector on:", gc.isenabled(), flush=True)
        ctx.master.shutdown()

gc.disable()  # as the child's start-up does (child.main)
args = argparse.Namespace(
    listen_host="127.0.0.1", listen_port=0, confdir=sys.argv[1], web=False, web_port=None,
    verbose=False,
)
asyncio.run(serving.serve([Probe()], {}, args, lambda: serving.mitmproxy_base(onboarding=False)))
"""


def test_a_proxy_started_with_the_cyclic_collector_off_serves_with_it_on(confdir):
    """The child holds the collector off while it imports and starts (a tenth of its
    start-up); a proxy that served without it would never free a cycle."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(confdir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "collector on: True" in result.stdout, result.stderr


def test_control_requests_from_several_threads_each_get_their_own_answer(confdir, tmp_path):
    """A test's threads may read the journal at once; each reply reaches its own reader."""
    own = SessionProxy(confdir, root=tmp_path, timeout=10)
    failures: list[str] = []

    def read_the_journal() -> None:
        for _ in range(30):
            try:
                own.calls()
            except ProxyError as exc:
                failures.append(str(exc))
                return

    try:
        own.switch(Plan("simulate", ("--allow-anonymous",)))
        threads = [threading.Thread(target=read_the_journal) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        own.stop()
    assert failures == []


def test_a_line_too_long_is_refused_to_its_sender_and_the_pipe_serves_on(proxy):
    with switch(proxy, "simulate"):
        pass
    line = control_pipe.request_line(9, "POST", "/faults", ["x" * (3 << 20)])
    request_id, status, answer = pipe_reply(proxy, line)
    assert (request_id, status) == (9, 400)
    assert "a line longer than" in answer["error"]["message"]
    assert pipe_reply(proxy, control_pipe.request_line(10, "GET", "/calls"))[:2] == (10, 200)
