"""Hypothesis against every parser that reads what a client or a user wrote.

The URL router, Graph's request checks, the cassette loader and the control endpoint's body,
each as a pure function and, where a client reaches it, through a real proxy: whatever the
input, the answer is a value, a Graph-shaped 4xx, or (for a file) one line naming it; never
a traceback, and the proxy keeps serving. Fault specs are fuzzed in test_faults.py;
their one-line messages through the CLI are in test_reliability_hostile.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability import LEVEL, assert_graph_answer, call, https_client, plain_exchange

from proxy_addons.addons import control_rules
from proxy_addons.addons.flows import to_response
from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.cassette import CassetteError
from proxy_addons.cli.launcher import RunningProxy, running_proxy
from proxy_addons.common.control_address import CALLS_PATH, SESSION_PATH
from proxy_addons.graph import routes
from proxy_addons.graph.models import ErrorResponse
from proxy_addons.graph.request_checks import check_request
from proxy_addons.testing.session_client import SessionProxy

pytestmark = pytest.mark.reliability

FUZZ = settings(
    max_examples=LEVEL.fuzz_examples,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def graph_error(body: bytes) -> ErrorResponse:
    """Graph's error envelope, or the test fails."""
    return ErrorResponse.model_validate(json.loads(body))


# --- the URL router -----------------------------------------------------------------------

SEGMENTS = st.sampled_from(
    [
        *("beta", "v1.0", "V1.0", "me", "ME", "users", "onlineMeetings", "onlinemeetings"),
        *("virtualAppointment", "getVirtualAppointmentJoinWebUrl()", "sendVirtualAppointmentSms"),
        *("sendVirtualAppointmentReminderSms", "communications", "app", "a@contoso.com"),
        *(examples.MEETING_ID, examples.EXAMPLE_USER, "(joinWebUrl='x')", "%2F", "%", "%zz"),
        *("%ff%fe", "%00", "%0d%0a", "..", ".", "", "[", "]", "@", ":", ";", "é", "\udcff"),
    ]
)
HOSTS = st.sampled_from(
    [
        *sorted(routes.GRAPH_HOSTS),
        *("GRAPH.microsoft.com", "graph.microsoft.com:443", "graph.microsoft.com.", "[graph"),
        *("[::1]", "u:p@graph.microsoft.com", "graph.microsoft.com:x", "", "example.com"),
    ]
)
QUERIES = st.lists(
    st.tuples(st.sampled_from(["$select", "%24top", "a", "", "&", "="]), st.text(max_size=5)),
    max_size=3,
).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs))
URLS = st.one_of(
    st.builds(
        lambda scheme, host, path, query: f"{scheme}{host}/{'/'.join(path)}?{query}",
        st.sampled_from(["https://", "http://", "HTTPS://", "", "//"]),
        HOSTS,
        st.lists(SEGMENTS, max_size=7),
        QUERIES,
    ),
    st.text(max_size=80),
)
METHODS = st.one_of(
    st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "POST", "get", "OPTIONS"]),
    st.text(max_size=8),
)


@FUZZ
@given(method=METHODS, url=URLS)
@example(
    method="GET", url="https://[graph.microsoft.com/beta/me/onlineMeetings/x/virtualAppointment"
)
def test_the_router_parses_any_url_into_a_route_or_none_and_never_raises(method, url):
    route = routes.parse(method, url)
    if route is None:
        return
    assert route.host in routes.GRAPH_HOSTS
    assert route.meeting_id
    assert route.method == method.upper()
    assert route.operation is None or route.method in routes.ALLOWED_METHODS[route.resource]
    assert hash(route.key) == hash(routes.parse(method, url).key)


# Request targets a client can put on the request line: visible ASCII, and what percent
# encoding makes of anything else.
TARGET_SEGMENTS = SEGMENTS.map(lambda s: s.encode("utf-8", "surrogateescape"))
REQUEST_TARGETS = st.lists(TARGET_SEGMENTS, max_size=7).map(lambda parts: b"/" + b"/".join(parts))


@pytest.fixture(scope="module")
def reverse_emulator(confdir: Path) -> Iterator[RunningProxy]:
    """``simulate --reverse``: plain HTTP that answers every path itself, as Graph would."""
    with running_proxy("simulate", "--reverse", "--no-summary", confdir=confdir) as proxy:
        yield proxy
        assert "Traceback" not in "".join(proxy.stderr)
        assert "internal error" not in "".join(proxy.stderr)


@settings(FUZZ, max_examples=LEVEL.proxy_fuzz_examples)
@given(
    method=st.sampled_from([b"GET", b"PUT", b"PATCH", b"DELETE", b"POST", b"FOO"]),
    target=REQUEST_TARGETS,
    query=QUERIES.map(lambda q: quote(q, safe="=&$%").encode()),
    host=st.sampled_from([b"graph.microsoft.com", b"GRAPH.MICROSOFT.COM", b"[graph", b"x:1"]),
    body=st.one_of(st.none(), st.binary(max_size=64), st.just(b'{"a": 1}')),
)
def test_any_path_through_the_reverse_emulator_gets_a_graph_answer_and_it_keeps_serving(
    reverse_emulator, method, target, query, host, body
):
    target = target.replace(b" ", b"%20").replace(b"#", b"%23") + (b"?" + query if query else b"")
    head = b"%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer t\r\n" % (method, target, host)
    if body is not None:
        head += b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    answer = plain_exchange(reverse_emulator, head + b"\r\n" + (body or b""))
    assert answer.status < 500, answer
    if answer.status >= 400:
        assert graph_error(answer.body).error.code


def test_the_reverse_emulator_still_serves_after_the_fuzzing(reverse_emulator):
    sent = call("GET", examples.ME_URL.replace("https://graph.microsoft.com", ""), [404])
    answer = httpx.get(f"{reverse_emulator.url}{sent.url}", headers=sent.headers, timeout=30)
    assert_graph_answer(sent, answer)


# --- Graph's request checks ---------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
BODIES = st.one_of(
    st.none(),
    st.binary(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b"[" * 100_000,
            b'{"a": ' + b"1" * 5_000 + b"}",
            b'{"a": NaN, "b": -Infinity}',
            b'\xef\xbb\xbf{"a": 1}',
            '{"a": 1}'.encode("utf-16"),
            b'{"a": "\\ud800"}',
            b'{"a": 1, "a": 2}',
            b"",
        ]
    ),
)
CONTENT_TYPES = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    st.text(max_size=20),
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH", "DELETE", "POST"]),
    resource=st.sampled_from(["virtualAppointment", "sendVirtualAppointmentSms"]),
    content_type=CONTENT_TYPES,
    client_request_id=st.text(max_size=40),
    body=BODIES,
)
@example(
    method="PUT",
    resource="virtualAppointment",
    content_type="application/json",
    client_request_id="",
    body=b'{"a": ' + b"1" * 5_000 + b"}",
)
def test_request_checks_answer_any_request_with_nothing_or_a_graph_4xx(
    method, resource, content_type, client_request_id, body
):
    route = routes.parse(method, examples.ME_URL.replace("virtualAppointment", resource))
    assert route is not None
    headers = {"Content-Type": content_type, "client-request-id": client_request_id}
    reply = check_request(route, headers, body)
    if reply is None:
        return
    assert reply.status in (400, 405, 413, 415)
    assert graph_error(reply.body).error.code
    to_response(reply)  # what mitmproxy sends: every header encodes


# --- the cassette loader ------------------------------------------------------------------

DOCUMENTED = cassette.cassette_text([examples.documented_interaction(examples.ME_URL)]).encode()


@st.composite
def mutated_cassettes(draw: st.DrawFn) -> bytes:
    """The documented cassette with a few bytes deleted, replaced or inserted."""
    data = bytearray(DOCUMENTED)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        piece = draw(st.binary(max_size=3) | st.sampled_from([b":", b"- ", b"\n", b"!!", b"'"]))
        data[at : at + draw(st.integers(0, 3))] = piece
    return bytes(data)


@pytest.fixture(scope="module")
def fuzzed_cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file each example overwrites (module scope: hypothesis reruns the test)."""
    return tmp_path_factory.mktemp("fuzzed-cassettes") / "fuzzed.yaml"


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        mutated_cassettes(),
    )
)
def test_the_cassette_loader_refuses_any_bytes_in_one_line_or_loads_what_replays(
    fuzzed_cassette, data
):
    fuzzed_cassette.write_bytes(data)
    try:
        loaded = cassette.load(fuzzed_cassette)
    except CassetteError as exc:
        assert str(exc).startswith(str(fuzzed_cassette))
        assert "\n" not in str(exc) and "\r" not in str(exc)
        return
    for interaction in loaded:
        to_response(cassette.recorded_reply(interaction))


# --- the control endpoint's body ----------------------------------------------------------

SPECS = st.sampled_from(
    ["throttle:times=1", "latency:ms=0", "reset:nth=3", "throttle:tims=1", "", "# note", "x"]
)
CONTROL_BODIES = st.one_of(
    st.binary(max_size=100),
    st.lists(SPECS | st.text(max_size=10), max_size=4).map(lambda s: json.dumps(s).encode()),
    st.lists(SPECS, max_size=4).map(lambda s: "\n".join(s).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.sampled_from([b"[" * 100_000, b'"' + b"[" * 10 + b'"', b'["' + b"1" * 5000 + b'"]']),
)


@FUZZ
@given(body=CONTROL_BODIES)
@example(body=b"[" * 100_000)
def test_the_control_body_parser_gives_specs_or_a_value_error(body):
    try:
        specs = control_rules.specs_of(control_rules.json_document(body))
    except ValueError as exc:  # FaultSpecError, bad JSON or UTF-8: the endpoint's 400
        assert str(exc)
        return
    assert all(isinstance(spec, str) for spec in specs)


@pytest.fixture(scope="module")
def control_proxy(confdir: Path) -> Iterator[RunningProxy]:
    with running_proxy("replay", "--no-summary", confdir=confdir) as proxy:
        yield proxy
        assert "Traceback" not in "".join(proxy.stderr)


CONTROL = f"http://{control_rules.HOST}{control_rules.PATH}"
JSON_TYPE = {"Content-Type": "application/json"}  # any other is refused unread (415)
IN_FORCE = ["latency:ms=0,route=join-url"]  # what each example starts from


@pytest.fixture(scope="module")
def control_client(control_proxy: RunningProxy) -> Iterator[httpx.Client]:
    """One keep-alive client for every example (plain HTTP to the control host)."""
    with httpx.Client(proxy=control_proxy.url, timeout=30) as client:
        yield client


@settings(FUZZ, max_examples=LEVEL.proxy_fuzz_examples)
@given(method=st.sampled_from(["POST", "PUT"]), body=CONTROL_BODIES)
@example(method="PUT", body=b"[" * 100_000)
def test_any_control_body_through_the_proxy_is_200_or_a_graph_400_that_changes_nothing(
    control_client, method, body
):
    in_force = control_client.put(CONTROL, json=IN_FORCE).json()
    answer = control_client.request(method, CONTROL, content=body, headers=JSON_TYPE)
    if answer.status_code == 400:
        assert graph_error(answer.content).error.code == "BadRequest"
        assert control_client.get(CONTROL).json() == in_force
    else:
        assert answer.status_code == 200, answer.text
        assert all(isinstance(rule["spec"], str) for rule in answer.json()["faults"])


def test_the_control_proxy_still_replays_after_the_fuzzing(control_proxy, control_client):
    assert control_client.delete(CONTROL).json() == {"faults": []}  # what the last example left
    with https_client(control_proxy) as client:
        sent = call("PUT", examples.ME_URL, [201], examples.REQUEST_BODY.encode())
        answer = sent.send(client)
    assert_graph_answer(sent, answer)
    assert answer.content == examples.RESPONSE_BODY.encode()


# --- the pytest plugin's session endpoint -------------------------------------------------

SESSION_WORDS = st.sampled_from(
    [
        *("--cassette", "--record-mode", "--on-miss", "--fault", "--faults", "--seed"),
        *("--upstream", "--ignore-body", "--validate", "--redact-field", "--listen-port"),
        *("--web", "--reverse", "--summary-json", "--state", "--allow-any-token", "--"),
        *("none", "once", "all", "new_episodes", "error", "forward", "enforce", "0", "-1"),
        *("throttle:times=1", "latency:ms=0", "reset:nth=x", "missing.yaml", "../../etc/passwd"),
        *("/proc/self/status", "/", "http://127.0.0.1:9", "ftp://x", "\n", "\x00", "é", ""),
    ]
)
SESSION_BODIES = st.one_of(
    st.builds(
        lambda mode, args: json.dumps({"mode": mode, "args": args}).encode(),
        st.sampled_from(["replay", "record", "simulate", "demo", "validate", "", "x"]),
        st.lists(SESSION_WORDS | st.text(max_size=6), max_size=6),
    ),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.sampled_from([b"[" * 100_000, b'{"mode": "replay", "args": ' + b"[" * 50_000]),
)
SESSION = f"http://{control_rules.HOST}{SESSION_PATH}"
CALLS = f"http://{control_rules.HOST}{CALLS_PATH}"


@pytest.fixture(scope="module")
def session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The child's session root, holding a copy of the bundled create cassette: relative
    paths among the fuzzed words (the child's working folder is ours) fall outside it."""
    root = tmp_path_factory.mktemp("session-root")
    shutil.copy(cassette.bundled_cassettes() / "create-virtualappointment-me.yaml", root)
    return root


@pytest.fixture(scope="module")
def session_proxy(confdir: Path, session_root: Path) -> Iterator[RunningProxy]:
    """The pytest plugin's child, as the plugin starts it."""
    session = SessionProxy(confdir, root=session_root)
    try:
        yield session.ensure_started()
    finally:
        session.stop()


@pytest.fixture(scope="module")
def session_control(session_proxy: RunningProxy) -> Iterator[httpx.Client]:
    with httpx.Client(proxy=session_proxy.url, timeout=30) as client:
        yield client


@settings(FUZZ, max_examples=LEVEL.proxy_fuzz_examples)
@given(body=SESSION_BODIES)
@example(body=b"[" * 100_000)
@example(body=json.dumps({"mode": "record", "args": ["--record-mode", "nonsense"]}).encode())
def test_any_session_body_is_200_or_a_graph_400_and_the_child_keeps_serving(session_control, body):
    answer = session_control.put(SESSION, content=body, headers=JSON_TYPE)
    if answer.status_code == 400:
        assert graph_error(answer.content).error.code == "BadRequest"
    else:
        assert answer.status_code == 200, answer.text
        assert "session" in answer.json()
    assert session_control.get(CALLS).status_code == 200


def test_the_session_child_still_replays_after_the_fuzzing(
    session_proxy, session_control, session_root
):
    bundled = session_root / "create-virtualappointment-me.yaml"
    switched = session_control.put(
        SESSION, json={"mode": "replay", "args": ["--cassette", str(bundled)]}
    )
    assert switched.status_code == 200, switched.text
    with https_client(session_proxy) as client:
        sent = call("PUT", examples.ME_URL, [201], examples.REQUEST_BODY.encode())
        answer = sent.send(client)
    assert_graph_answer(sent, answer)
    assert [c["answered_by"] for c in session_control.get(CALLS).json()["calls"]] == ["replay"]
