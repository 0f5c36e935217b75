"""The pytest plugin, used as its users use it.

The first tests run in this very test run (the plugin is installed with the package), on the
run's one session proxy. The rest write small projects and run pytest on them in a fresh
process with pytester: under pytest-xdist, with every kind of bad use, and recording then
replaying, the recorded cassettes also played by pytest-recording in-process.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from helpers import documented_graph

from proxy_addons.cassette import cassette, examples

pytestmark = pytest.mark.e2e

CREATED_ID = json.loads(examples.RESPONSE_BODY)["id"]
BUNDLED_ME = cassette.bundled_cassettes() / "create-virtualappointment-me.yaml"


@pytest.fixture(scope="module")
def graph_vcr_cassette_dir() -> Path:
    """This module's cassettes are the bundled ones (the plugin's own override point)."""
    return cassette.bundled_cassettes()


def create() -> requests.Response:
    return requests.put(
        examples.ME_URL, data=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS, timeout=30
    )


@pytest.mark.graph_vcr(cassette="create-virtualappointment-me.yaml")
def test_requests_reading_the_environment_gets_the_replayed_201(graph_vcr_env, graph_vcr_proxy):
    response = create()
    assert response.status_code == 201
    assert response.json() == json.loads(examples.RESPONSE_BODY)
    (call,) = graph_vcr_proxy.calls
    assert (call.method, call.operation, call.status, call.answered_by) == (
        "PUT",
        "create",
        201,
        "replay",
    )
    assert call.body["appointmentClients"][0]["displayName"] == "Grady Archie"


@pytest.mark.graph_vcr(cassette="create-virtualappointment-users.yaml")
def test_curl_reading_the_environment_gets_the_replayed_201(graph_vcr_env):
    result = subprocess.run(
        [
            *("curl", "-sS", "-X", "PUT", "-H", "Content-Type: application/json"),
            *("--data-binary", examples.REQUEST_BODY, "-w", "\n%{http_code}", examples.USERS_URL),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    body, _, status = result.stdout.rpartition("\n")
    assert status == "201", result.stderr
    assert json.loads(body)["id"] == CREATED_ID


@pytest.mark.graph_vcr(
    cassette="create-virtualappointment-me.yaml",
    faults=["throttle:times=1"],
    allow_playback_repeats=True,  # one recorded create answers both successes
)
def test_faults_from_the_marker_and_from_inside_the_test(graph_vcr_env, graph_vcr_proxy):
    assert [create().status_code for _ in range(2)] == [429, 201]
    graph_vcr_proxy.add_fault("unavailable:times=1")
    assert create().status_code == 503
    graph_vcr_proxy.clear_faults()
    assert create().status_code == 201
    assert [c.fault for c in graph_vcr_proxy.calls] == ["throttle", None, "unavailable", None]


# --- fresh pytest processes -------------------------------------------------------------

HEADER = f"""
import json
import os
from pathlib import Path

import pytest
import requests

URL = {examples.ME_URL!r}
BODY = {examples.REQUEST_BODY!r}
HEADERS = {{"Content-Type": "application/json", "Authorization": "Bearer t"}}


def create():
    return requests.put(URL, data=BODY, headers=HEADERS, timeout=30)
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """pytest in a fresh process, as a user starts it (without hypothesis' slow plugin)."""
    return pytester.runpytest_subprocess("-p", "no:hypothesispytest", *args, timeout=300)


def put_cassette(pytester: pytest.Pytester, relative: str) -> None:
    path = pytester.path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(BUNDLED_ME, path)


DOCUMENTED_USE = '''
pytestmark = pytest.mark.graph_vcr(seed=7)


def note(proxy):
    """Which worker saw which proxy port: one proxy per worker, none shared."""
    with open(Path(__file__).parent / "ports.txt", "a") as out:
        out.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {proxy.port}\\n")


def test_default_cassette_is_named_after_the_test(graph_vcr_env, graph_vcr_proxy):
    assert create().status_code == 201
    folder, module, name = graph_vcr_proxy.cassette.parts[-3:]
    assert (folder, module) == ("cassettes", "test_graph")
    assert name == "test_default_cassette_is_named_after_the_test.yaml"
    assert [(c.operation, c.answered_by) for c in graph_vcr_proxy.calls] == [("create", "replay")]
    note(graph_vcr_proxy)


@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(graph_vcr_env, graph_vcr_proxy, n):
    assert create().json()["id"] == "CREATED_ID"
    assert graph_vcr_proxy.cassette.name == f"test_parametrized[{n}].yaml"
    note(graph_vcr_proxy)


@pytest.mark.graph_vcr(cassette="shared.yaml", faults=["unavailable:times=1"])
class TestShared:
    @pytest.mark.graph_vcr(faults=["throttle:times=1"])
    def test_the_closest_marker_wins(self, graph_vcr_env, graph_vcr_proxy):
        assert [create().status_code for _ in "ab"] == [429, 201]
        assert [c.answered_by for c in graph_vcr_proxy.calls] == ["fault", "replay"]
        note(graph_vcr_proxy)

    def test_faults_from_inside_the_test(self, graph_vcr_env, graph_vcr_proxy):
        assert create().status_code == 503  # the class marker's fault, counted afresh
        graph_vcr_proxy.add_fault("etag-mismatch")
        assert create().status_code == 412
        graph_vcr_proxy.clear_faults()
        assert create().status_code == 201
        note(graph_vcr_proxy)


@pytest.mark.graph_vcr(mode="simulate", allow_anonymous=True)
def test_simulated(graph_vcr_env, graph_vcr_proxy):
    assert create().status_code == 201
    assert requests.get(URL, timeout=30).headers["ETag"].startswith('W/"')
    assert [c.answered_by for c in graph_vcr_proxy.calls] == ["emulator", "emulator"]
    note(graph_vcr_proxy)


@pytest.mark.graph_vcr(mode="simulate", allow_anonymous=True)
def test_simulated_state_is_this_tests_own(graph_vcr_env):
    assert requests.get(URL, timeout=30).status_code == 404


@pytest.mark.graph_vcr(record_mode="new_episodes", redact_fields=["emailAddress"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_recorded(graph_vcr_env, graph_vcr_proxy, n):
    assert create().status_code == 201
    assert [c.answered_by for c in graph_vcr_proxy.calls] == ["upstream"]
    note(graph_vcr_proxy)
'''


def test_a_suite_using_only_the_documented_fixtures_runs_under_xdist(pytester):
    pytester.makepyfile(test_graph=HEADER + DOCUMENTED_USE.replace("CREATED_ID", CREATED_ID))
    for name in [
        "test_default_cassette_is_named_after_the_test",
        "test_parametrized[1]",
        "test_parametrized[2]",
        "shared",
    ]:
        put_cassette(pytester, f"cassettes/test_graph/{name}.yaml")
    with documented_graph() as upstream:
        result = run(pytester, "-n", "2", f"--graph-upstream={upstream}")
    result.assert_outcomes(passed=11)
    for n in range(1, 5):  # each worker wrote its own cassettes, whole and redacted
        text = (pytester.path / "cassettes" / "test_graph" / f"test_recorded[{n}].yaml").read_text()
        assert len(yaml.safe_load(text)["interactions"]) == 1
        assert "gradya@contoso.com" not in text
    ports: dict[str, set[str]] = {}
    for line in (pytester.path / "ports.txt").read_text().splitlines():
        worker, port = line.split()
        ports.setdefault(worker, set()).add(port)
    assert set(ports) == {"gw0", "gw1"}
    assert all(len(seen) == 1 for seen in ports.values())  # one proxy per worker...
    assert len(set.union(*ports.values())) == 2  # ...and no port shared


BAD_USE = """
@pytest.mark.graph_vcr(casette="x.yaml")
def test_unknown_marker_argument(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="ok.yaml", faults=["throttle:tims=1"])
def test_bad_fault_spec(graph_vcr_proxy):
    pass


def test_missing_cassette_in_none_mode(graph_vcr_env):
    create()  # the code under test ignores the 501


@pytest.mark.graph_vcr(cassette="../../outside.yaml", record_mode="all")
def test_cassette_outside_the_folder(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="ok.yaml", args=["--confdir", __file__])
def test_proxy_that_cannot_start(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="ok.yaml")
def test_a_miss_fails_with_the_miss(graph_vcr_env):
    response = requests.get(URL + "?$select=id", timeout=30)
    assert response.json()["value"]  # the code under test chokes on the 501


@pytest.mark.graph_vcr(cassette="ok.yaml", allow_misses=True)
def test_allowed_misses(graph_vcr_env, graph_vcr_proxy):
    assert requests.get(URL, timeout=30).status_code == 501
    assert graph_vcr_proxy.calls[0].is_miss


@pytest.mark.graph_vcr(cassette="ok.yaml")
def test_the_next_test_still_runs(graph_vcr_env):
    assert create().status_code == 201


@pytest.mark.graph_vcr
def test_a_test_that_sends_nothing_needs_no_cassette():
    pass
"""


def test_bad_use_fails_only_that_test_with_one_line_naming_the_cause(pytester):
    pytester.makepyfile(test_bad=HEADER + BAD_USE)
    put_cassette(pytester, "cassettes/test_bad/ok.yaml")
    result = run(pytester, "-rfE")
    result.assert_outcomes(passed=3, failed=2, errors=4)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_unknown_marker_argument*",
            "graph_vcr: unknown argument 'casette'; allowed: mode, cassette, *",
            "*ERROR at setup of test_bad_fault_spec*",
            "graph-vcr-proxy: fault 'throttle:tims=1': unknown key 'tims' for throttle; *",
            "*ERROR at setup of test_cassette_outside_the_folder*",
            "cassette '../../outside.yaml': must be a name inside */cassettes/test_bad *",
            "*ERROR at setup of test_proxy_that_cannot_start*",
            "graph-vcr-proxy could not start: --confdir *test_bad.py: not a folder",
            "*_ test_missing_cassette_in_none_mode _*",
            "graph-vcr-proxy: cassette miss: No recorded interaction matches PUT *: cassette "
            "*/cassettes/test_bad/test_missing_cassette_in_none_mode.yaml does not exist (record "
            "mode none); record it with --graph-record-mode=once, or name another with "
            "graph_vcr(cassette=...).",
            "*_ test_a_miss_fails_with_the_miss _*",
            "graph-vcr-proxy: cassette miss: No recorded interaction matches GET *?$select=id: "
            "closest recorded request is PUT * (ok.yaml #0); differs in method (PUT recorded, "
            "GET sent); * (the test then failed: KeyError)",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert not (pytester.path / "outside.yaml").exists()


MARKER_ARGS = """
@pytest.mark.graph_vcr(cassette="ok.yaml", args=["--help"])
def test_help(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="new.yaml", record_mode="once", args=["--cassette", "OUT"])
def test_cassette(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="new.yaml", record_mode="once", args=["--cassette=OUT"])
def test_cassette_equals(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="new.yaml", record_mode="once", args=["--cass", "OUT"])
def test_cass(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(mode="simulate", args=["--rev"])
def test_rev(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(mode="simulate", args=["--reverse"])
def test_reverse(graph_vcr_proxy):
    pass


@pytest.mark.graph_vcr(cassette="ok.yaml")
def test_the_next_test_still_runs(graph_vcr_env):
    assert create().status_code == 201
"""


def test_marker_args_can_neither_end_the_proxy_nor_leave_the_cassette_folder(pytester, tmp_path):
    outside = tmp_path / "outside" / "x.yaml"  # not under the pytester project
    pytester.makepyfile(test_args=HEADER + MARKER_ARGS.replace("OUT", str(outside)))
    put_cassette(pytester, "cassettes/test_args/ok.yaml")
    result = run(pytester, "-rE")
    result.assert_outcomes(passed=1, errors=6)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_help*",
            "graph-vcr-proxy: replay: unrecognized arguments: --help",
            "*ERROR at setup of test_cassette *",
            "graph-vcr-proxy: --cassette is given twice: a test's args can't override *",
            "*ERROR at setup of test_cassette_equals*",
            "graph-vcr-proxy: --cassette is given twice: *",
            "*ERROR at setup of test_cass *",
            f"graph-vcr-proxy: record: unrecognized arguments: --cass {outside}",
            "*ERROR at setup of test_rev *",
            "graph-vcr-proxy: simulate: unrecognized arguments: --rev",
            "*ERROR at setup of test_reverse*",
            "graph-vcr-proxy: --reverse: makes a plain-HTTP Graph endpoint, *",
        ]
    )
    assert not outside.parent.exists()


ELSEWHERE = """
def test_one(graph_vcr_env, graph_vcr_proxy):
    assert create().status_code == 201
    (Path(__file__).parent / "one.txt").write_text(str(graph_vcr_proxy.port))


def test_two(graph_vcr_env, graph_vcr_proxy):
    assert create().status_code == 201
    (Path(__file__).parent / "two.txt").write_text(str(graph_vcr_proxy.port))
"""


def test_a_cassette_folder_outside_the_root_folder_gets_one_child_rooted_there(pytester, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(BUNDLED_ME, elsewhere / "test_one.yaml")
    shutil.copy(BUNDLED_ME, elsewhere / "test_two.yaml")
    pytester.makeconftest(
        "import pytest\nfrom pathlib import Path\n\n\n@pytest.fixture(scope='module')\n"
        f"def graph_vcr_cassette_dir():\n    return Path({str(elsewhere)!r})\n"
    )
    pytester.makepyfile(test_elsewhere=HEADER + ELSEWHERE)
    run(pytester).assert_outcomes(passed=2)
    ports = {(pytester.path / name).read_text() for name in ("one.txt", "two.txt")}
    assert len(ports) == 1  # one child for both tests, not one each


REPEATS = """
@pytest.mark.graph_vcr(cassette="one.yaml")
def test_a_second_identical_create(graph_vcr_env):
    create()
    create()  # the code under test ignores the answer: the plugin still fails the test


@pytest.mark.graph_vcr(cassette="one.yaml", allow_playback_repeats=True)
def test_a_second_identical_create_with_repeats(graph_vcr_env):
    assert [create().status_code for _ in "ab"] == [201, 201]
"""


def test_a_recorded_answer_plays_once_in_a_test_unless_the_marker_allows_repeats(pytester):
    pytester.makepyfile(test_repeats=HEADER + REPEATS)
    put_cassette(pytester, "cassettes/test_repeats/one.yaml")
    result = run(pytester, "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_a_second_identical_create _*",
            "graph-vcr-proxy: cassette miss: No recorded answer is left for PUT *: all 1 "
            "recorded answers to this request were already played; allow repeats with "
            "--allow-playback-repeats (allow_playback_repeats=True in the marker).*",
        ]
    )


RECORDED = """
def test_create(graph_vcr_env, graph_vcr_proxy):
    assert create().json()["id"] == "CREATED_ID"
    with open(Path(__file__).parent / "answers.txt", "a") as out:
        out.write(f"{graph_vcr_proxy.calls[0].answered_by}\\n")
"""

IN_PROCESS = """
import requests
import pytest
import vcr


@pytest.fixture(scope="module")
def vcr_cassette_dir():
    return str(Path(__file__).parent / "cassettes" / "test_recorded")


@pytest.mark.vcr
@pytest.mark.default_cassette("test_create.yaml")
def test_pytest_recording_replays_our_cassette():
    assert create().json()["id"] == "CREATED_ID"


def test_plain_vcrpy_replays_our_cassette():
    path = Path(__file__).parent / "cassettes" / "test_recorded" / "test_create.yaml"
    with vcr.VCR(record_mode="none").use_cassette(str(path)) as tape:
        assert create().status_code == 201
    assert tape.all_played
"""


def test_record_then_replay_and_the_same_cassette_in_pytest_recording_and_vcrpy(pytester):
    pytester.makepyfile(test_recorded=HEADER + RECORDED.replace("CREATED_ID", CREATED_ID))
    pytester.makepyfile(test_in_process=HEADER + IN_PROCESS.replace("CREATED_ID", CREATED_ID))
    recorded = pytester.path / "cassettes" / "test_recorded" / "test_create.yaml"
    answers = pytester.path / "answers.txt"
    with documented_graph() as upstream:
        run(
            pytester, "test_recorded.py", "--graph-record-mode=once", f"--graph-upstream={upstream}"
        ).assert_outcomes(passed=1)
        assert len(yaml.safe_load(recorded.read_text())["interactions"]) == 1
        assert "Bearer t" not in recorded.read_text()
        # Offline now: replayed by our plugin, by pytest-recording and by plain vcrpy.
        run(pytester).assert_outcomes(passed=3)
        # rewrite empties the cassette first: a stale interaction does not survive it.
        data = yaml.safe_load(recorded.read_text())
        stale = json.loads(json.dumps(data["interactions"][0]))
        stale["request"]["uri"] += "?stale=1"
        data["interactions"].append(stale)
        recorded.write_text(yaml.safe_dump(data))
        run(
            pytester,
            "test_recorded.py",
            "--graph-record-mode=rewrite",
            f"--graph-upstream={upstream}",
        ).assert_outcomes(passed=1)
    assert answers.read_text().split() == ["upstream", "replay", "upstream"]
    assert "stale" not in recorded.read_text()
    assert len(yaml.safe_load(recorded.read_text())["interactions"]) == 1


LAZY = """
def proxy_children():
    \"\"\"This pytest process's graph-vcr-proxy children, from /proc.\"\"\"
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rpartition(")")[2].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue  # a process that ended meanwhile
        if parent == os.getpid() and b"proxy_addons.testing.child" in command:
            found.append(stat.parent.name)
    return found


def test_plain_first():
    assert proxy_children() == []


@pytest.mark.graph_vcr(mode="simulate", allow_anonymous=True)
def test_graph(graph_vcr_env):
    assert len(proxy_children()) == 1
    assert create().status_code == 201


def test_plain_after():
    assert len(proxy_children()) == 1  # the run's one proxy, kept for later tests
"""


def test_the_proxy_starts_at_the_first_test_that_needs_it_and_never_for_a_run_without_one(
    pytester,
):
    pytester.makepyfile(test_lazy=HEADER + LAZY)
    # The retired setting that started the proxy early is still accepted, and does nothing.
    pytester.makeini("[pytest]\ngraph_vcr_prestart = true\n")
    run(pytester, "--strict-config").assert_outcomes(passed=3)
    # The previous run needed a proxy; this one, of plain tests only, starts none.
    run(pytester, "--strict-config", "-k", "plain_first").assert_outcomes(passed=1, deselected=2)


@pytest.mark.graph_vcr(cassette="create-virtualappointment-me.yaml")
def test_a_test_may_stop_the_proxy_and_the_next_one_gets_another(graph_vcr_proxy):
    graph_vcr_proxy.stop()
    assert graph_vcr_proxy.stopped and graph_vcr_proxy.process.poll() is not None


@pytest.mark.graph_vcr(cassette="create-virtualappointment-me.yaml")
def test_after_a_stop_the_next_test_starts_a_proxy_again(graph_vcr_env, graph_vcr_proxy):
    assert create().status_code == 201
    assert not graph_vcr_proxy.stopped


LOUD = """
@pytest.mark.graph_vcr(cassette="ok.yaml")
def test_the_marker_alone_replays():
    assert create().status_code == 201
    assert os.environ["HTTPS_PROXY"].startswith("http://127.0.0.1:")


def test_a_plain_test_keeps_its_environment():
    assert "HTTPS_PROXY" not in os.environ


@pytest.mark.graph_vcr(mode="record", upstream="http://127.0.0.1:9")
def test_an_unreachable_upstream_that_the_code_ignores():
    create()  # a 502 the code under test does not look at


@pytest.mark.graph_vcr(cassette="later/c.yaml", record_mode="once")
def test_a_recording_failure_that_the_code_swallows():
    (Path(__file__).parent / "cassettes" / "test_loud" / "later").write_text("not a folder")
    try:
        create().raise_for_status()
    except requests.HTTPError:
        pass
"""


def test_the_marker_alone_is_enough_and_a_proxy_failure_fails_the_test_whatever_the_code_did(
    pytester,
):
    pytester.makepyfile(test_loud=HEADER + LOUD)
    put_cassette(pytester, "cassettes/test_loud/ok.yaml")
    with documented_graph() as upstream:
        result = run(pytester, "-rf", f"--graph-upstream={upstream}")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_an_unreachable_upstream_that_the_code_ignores _*",
            "graph-vcr-proxy: PUT https://graph.microsoft.com/beta/me/* was answered 502 by "
            "unreachable: graph-vcr-proxy could not forward this request: the upstream "
            "http://127.0.0.1:9 is unreachable (*",
            "last lines of the graph-vcr-proxy log:",
            "*_ test_a_recording_failure_that_the_code_swallows _*",
            "graph-vcr-proxy: PUT https://graph.microsoft.com/beta/me/* was answered 500 by "
            "recording-failed: graph-vcr-proxy could not record this interaction: *",
            "last lines of the graph-vcr-proxy log:",
            "*not recorded, response withheld: *",
        ]
    )
    assert not (
        pytester.path / "cassettes" / "test_loud" / "test_the_marker_alone_replays.yaml"
    ).exists()


BLOCKED = """
import asyncio
import socket


def test_a_client_that_ignores_the_proxy_environment():
    session = requests.Session()
    session.trust_env = False
    try:
        session.put(URL, data=BODY, headers=HEADERS, timeout=5)
    except Exception:
        pass  # the code under test swallows the error: the test fails all the same


def test_a_raw_socket():
    with socket.socket() as sock:
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: refused before any packet leaves


def test_asyncio():
    asyncio.run(asyncio.open_connection("192.0.2.1", 443))


def test_loopback_stays_open():
    with socket.create_server(("127.0.0.1", 0)) as server:
        socket.create_connection(server.getsockname(), timeout=5).close()


@pytest.mark.graph_vcr(cassette="ok.yaml")
def test_clients_that_use_the_proxy():
    assert create().status_code == 201
"""


def test_graph_block_network_blocks_the_test_processs_own_connections_but_loopback(pytester):
    pytester.makepyfile(test_blocked=HEADER + BLOCKED)
    put_cassette(pytester, "cassettes/test_blocked/ok.yaml")
    result = run(pytester, "-rf", "--graph-block-network")
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*_ test_a_client_that_ignores_the_proxy_environment _*",
            "graph-vcr-proxy: --graph-block-network blocked a connection to "
            "graph.microsoft.com:443 from the test process; allow the host with "
            "--graph-allowed-hosts or graph_vcr(allowed_hosts=[...])",
            "*_ test_a_raw_socket _*",
            "graph-vcr-proxy: --graph-block-network blocked a connection to 192.0.2.1:443 * "
            "(the test then failed: NetworkBlocked)",
            "*_ test_asyncio _*",
            "graph-vcr-proxy: --graph-block-network blocked a connection to 192.0.2.1:443 * "
            "(the test then failed: NetworkBlocked)",
        ]
    )


# Passes once the gate branch (graph_block_network / --block-network in the proxy) is merged:
# until then the child's parser does not know --block-network, which every session sends.
POLICY = """
@pytest.mark.graph_vcr(cassette="ok.yaml")
def test_a_request_to_another_host():
    try:
        requests.get("https://example.invalid/", timeout=10)
    except requests.RequestException:
        pass


@pytest.mark.graph_vcr(cassette="ok.yaml", allowed_hosts=["127.0.0.2"])
def test_an_allowed_host_passes():
    assert create().status_code == 201
"""


def test_the_plugins_proxy_blocks_other_hosts_and_the_test_fails_naming_the_request(pytester):
    pytester.makepyfile(test_policy=HEADER + POLICY)
    put_cassette(pytester, "cassettes/test_policy/ok.yaml")
    result = run(pytester, "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_a_request_to_another_host _*",
            "graph-vcr-proxy: GET https://example.invalid/ was answered * by network-policy*",
        ]
    )


LONG_NAMES = """
@pytest.mark.parametrize("n", [1, 2, 3], ids=["a" * 300, "é" * 200, "日" * 150])
def test_long(graph_vcr_env, graph_vcr_proxy, n):
    assert create().status_code == 201
    assert [c.answered_by for c in graph_vcr_proxy.calls] == ["ANSWER"]
"""


def test_tests_with_ids_longer_than_a_file_name_record_and_replay(pytester):
    # pytest escapes non-ASCII ids (\\xe9...) unless told not to; a user who tells it gets
    # names measured in bytes, cut between characters.
    pytester.makeini(
        "[pytest]\ndisable_test_id_escaping_and_forfeit_all_rights_to_community_support = true\n"
    )
    pytester.makepyfile(test_long=HEADER + LONG_NAMES.replace("ANSWER", "upstream"))
    with documented_graph() as upstream:
        run(pytester, f"--graph-upstream={upstream}", "--graph-record-mode=all").assert_outcomes(
            passed=3
        )
    names = [p.name for p in (pytester.path / "cassettes" / "test_long").iterdir()]
    assert len(names) == 3 and all(len(name.encode()) <= 241 for name in names)
    assert {name[:8] for name in names} == {"test_lon"}
    assert any("日日日" in name for name in names) and any("ééé" in name for name in names)
    pytester.makepyfile(test_long=HEADER + LONG_NAMES.replace("ANSWER", "replay"))
    run(pytester).assert_outcomes(passed=3)  # offline: each test finds its own cassette
