"""pytest plugin: one graph-vcr-proxy per test run, switched per test, in pytest-recording's ways.

    @pytest.mark.graph_vcr(faults=["throttle:times=1"])
    def test_create(graph_vcr_proxy):
        ...  # code under test reads HTTPS_PROXY / SSL_CERT_FILE / REQUESTS_CA_BUNDLE
        assert [c.answered_by for c in graph_vcr_proxy.calls] == ["fault", "replay"]

The marker alone is enough (an autouse fixture reads it, as pytest-recording's ``vcr`` does):
a marked test gets the proxy and the environment pointing at it without asking for either.

The proxy child starts on the first test that needs it (one per pytest-xdist worker) and is
switched to each test's cassette, mode and faults with one request to its control endpoint;
see the README's "pytest plugin" section. This module only assembles: the settings rules are
in ``vcr_settings.py``, talking to the child in ``session_client.py``. It imports neither
mitmproxy nor anything that does, so a test run pays nothing for it until a test asks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import pytest

from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.testing import socket_guard
from proxy_addons.testing.call_assertions import unplayed_failure
from proxy_addons.testing.journal import failures_message, misses_message
from proxy_addons.testing.session_client import (
    GraphVcrProxy,
    ProxyError,
    SessionProxy,
    session_root,
)
from proxy_addons.testing.vcr_settings import (
    GraphVcrError,
    allowed_hosts,
    default_cassette_name,
    merge,
    plan,
    settings_of,
)

MARKER = "graph_vcr"
LOG_SETTLE = 0.1  # seconds
CA_FOLDER = "graph-vcr-proxy-ca"


class Active(NamedTuple):
    proxy: GraphVcrProxy
    allow_misses: bool
    assert_all_played: bool = False


ACTIVE = pytest.StashKey[Active]()
ROOTED = pytest.StashKey[dict[Path, SessionProxy]]()  # children for other session roots
GUARD = pytest.StashKey[socket_guard.SocketGuard]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("graph-vcr-proxy")
    group.addoption(
        "--graph-record-mode",
        choices=tuple(RecordMode),
        default=None,
        help="vcrpy's record mode for graph_vcr cassettes (default: none, replay only; "
        "rewrite deletes each cassette first)",
    )
    parser.addini(  # an early start measured no faster; kept so ini files that set it load
        "graph_vcr_prestart",
        type="bool",
        default=False,
        help="no longer used: graph-vcr-proxy's proxy starts at the first test that needs it",
    )
    group.addoption(
        "--graph-upstream",
        metavar="URL",
        default=None,
        help="when recording, send Graph calls to this base URL instead of the real host",
    )
    group.addoption(
        "--graph-assert-all-played",
        action="store_true",
        default=False,
        help="a test with a cassette fails if it left recorded interactions unplayed",
    )
    group.addoption(
        "--graph-block-network",
        action="store_true",
        default=False,
        help="also block the test process's own connections to every host but loopback and "
        "the allowed hosts (clients that ignore the proxy environment), in every test",
    )
    group.addoption(
        "--graph-allowed-hosts",
        metavar="HOST,...",
        default="",
        help="comma-separated hosts that tests may reach besides loopback, through the proxy "
        "and (with --graph-block-network) directly",
    )
    # The run's reports (issue 20), kept together:
    group.addoption(
        "--graph-summary-markdown",
        metavar="FILE",
        default=None,
        help="at the end of the run, write the summary of every Graph call the proxy served "
        "(all xdist workers' together) as GitHub-flavoured Markdown to FILE; '-' appends it to "
        "$GITHUB_STEP_SUMMARY's file, or prints it when that is unset",
    )
    group.addoption(
        "--graph-permissions-report",
        action="store_true",
        default=False,
        help="add the least-privilege report to --graph-summary-markdown's summary",
    )
    group.addoption(
        "--graph-guidance",
        action="store_true",
        default=False,
        help="add what Graph recommends that the calls did not do to --graph-summary-markdown's "
        "summary",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "graph_vcr(mode='replay', cassette=None, record_mode=None, faults=(), "
        "allow_misses=False, assert_all_played=False, allowed_hosts=(), args=(), ...): the "
        "test goes through "
        "graph-vcr-proxy, serving this",
    )
    configure_run_summary(config)


# --- fixtures a conftest may override ---------------------------------------------------


@pytest.fixture(scope="session")
def graph_vcr_confdir(pytestconfig: pytest.Config) -> Path:
    """mitmproxy's confdir, so its CA, kept from run to run (the RSA key is made once)."""
    return default_confdir(pytestconfig)


def default_confdir(config: pytest.Config) -> Path:
    """pytest's cache folder, else a per-user cache folder."""
    cache = getattr(config, "cache", None)
    if cache is not None:
        try:
            return cache.mkdir(CA_FOLDER)
        except OSError:
            pass
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = base / "graph-vcr-proxy" / "ca"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


@pytest.fixture(scope="module")
def graph_vcr_cassette_dir(request: pytest.FixtureRequest) -> Path:
    """``<test file's folder>/cassettes/<module name>/``, as pytest-recording's vcr_cassette_dir."""
    return request.path.parent / "cassettes" / request.path.stem


@pytest.fixture
def graph_vcr_config() -> dict[str, Any]:
    """Defaults for every ``graph_vcr`` key (markers override them), like vcr_config."""
    return {}


@pytest.fixture
def graph_vcr_token() -> Callable[..., str]:
    """A factory of unsigned test JWTs, as ``graph-vcr-proxy token`` prints them:
    ``graph_vcr_token(scopes=[...])``, ``graph_vcr_token(app=True, roles=[...])``,
    ``graph_vcr_token(personal=True)``, with ``tenant``, ``expires_in`` and ``app_id`` too."""
    from proxy_addons.graph.tokens import token  # only for a test that asks

    return token


# --- the proxy --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def graph_vcr_session_proxy(
    graph_vcr_confdir: Path, pytestconfig: pytest.Config
) -> Iterator[SessionProxy]:
    """The run's (this xdist worker's) proxy child, started on first use, for files under the
    run's root folder."""
    proxy = SessionProxy(
        graph_vcr_confdir, report_arguments(pytestconfig), root=pytestconfig.rootpath
    )
    yield proxy
    proxy.stop()


@pytest.fixture
def graph_vcr_proxy(
    request: pytest.FixtureRequest,
    graph_vcr_config: dict[str, Any],
    graph_vcr_cassette_dir: Path,
    graph_vcr_confdir: Path,
    graph_vcr_session_proxy: SessionProxy,
) -> Iterator[GraphVcrProxy]:
    """The proxy, switched to what this test's markers and config ask, with fresh state."""
    markers = list(request.node.iter_markers(MARKER))
    try:
        if any(m.args for m in markers):
            raise GraphVcrError(f"{MARKER} takes keyword arguments only, e.g. cassette='x.yaml'")
        settings = settings_of(merge(graph_vcr_config, (m.kwargs for m in markers)))
        session = plan(
            settings,
            cassette_dir=Path(graph_vcr_cassette_dir),
            default_name=default_cassette_name(
                request.node.name, request.cls.__name__ if request.cls else None
            ),
            record_mode=request.config.getoption("--graph-record-mode"),
            upstream=request.config.getoption("--graph-upstream"),
            allowed=command_line_hosts(request.config),
        )
    except GraphVcrError as exc:
        fail(str(exc))
    guard = request.node.stash.get(GUARD, None)
    if guard is not None:  # --graph-block-network: the test's own hosts are allowed too
        guard.allow(allowed_hosts(settings))
    shared, root = graph_vcr_session_proxy, graph_vcr_session_proxy.root
    if session.cassette is not None:
        root = session_root(root, Path(graph_vcr_cassette_dir))
    if root != shared.root:  # cassettes outside the run's root folder: a child rooted there
        shared = rooted_proxy(request.config, graph_vcr_confdir, root)
    own = (
        SessionProxy(
            graph_vcr_confdir, (*session.start_args, *report_arguments(request.config)), root=root
        )
        if session.start_args
        else None
    )
    proxy = own or shared
    try:
        if session.rewrite and session.cassette is not None:
            session.cassette.unlink(missing_ok=True)
        running = proxy.switch(session)
    except ProxyError as exc:
        if own is not None:
            own.stop()
        fail(str(exc))
    handle = GraphVcrProxy(proxy, running, session)
    all_played = settings.assert_all_played or (
        session.cassette is not None and request.config.getoption("--graph-assert-all-played")
    )
    request.node.stash[ACTIVE] = Active(handle, settings.allow_misses, all_played)
    try:
        yield handle
    finally:
        del request.node.stash[ACTIVE]
        if own is not None:
            own.stop()


def rooted_proxy(config: pytest.Config, confdir: Path, root: Path) -> SessionProxy:
    """The run's child for files under ``root``, started on first use, stopped with the run."""
    proxies = config.stash.setdefault(ROOTED, {})
    if root not in proxies:
        proxies[root] = SessionProxy(confdir, report_arguments(config), root=root)
        config.add_cleanup(proxies[root].stop)
    return proxies[root]


def command_line_hosts(config: pytest.Config) -> list[str]:
    value = config.getoption("--graph-allowed-hosts") or ""
    return [host.strip() for host in value.split(",") if host.strip()]


@pytest.fixture(autouse=True)
def graph_vcr(request: pytest.FixtureRequest) -> Iterator[GraphVcrProxy | None]:
    """Every test: a ``graph_vcr`` marker alone puts the test behind the proxy (its
    ``graph_vcr_proxy`` and ``graph_vcr_env``), as pytest-recording's ``vcr`` marker alone
    plays the cassette; ``--graph-block-network`` blocks the test process's own sockets.
    A test with neither costs one marker lookup and one option read."""
    blocking = request.config.getoption("--graph-block-network")
    if not blocking:
        yield activate(request)
        return
    with socket_guard.blocking(command_line_hosts(request.config)) as guard:
        request.node.stash[GUARD] = guard
        try:
            yield activate(request)
        finally:
            del request.node.stash[GUARD]


def activate(request: pytest.FixtureRequest) -> GraphVcrProxy | None:
    if request.node.get_closest_marker(MARKER) is None:
        return None
    request.getfixturevalue("graph_vcr_env")
    proxy: GraphVcrProxy = request.getfixturevalue("graph_vcr_proxy")
    return proxy


@pytest.fixture
def graph_vcr_env(
    graph_vcr_proxy: GraphVcrProxy, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Points HTTPS clients that read the environment (requests, httpx, curl) at the proxy."""
    env = {
        "HTTPS_PROXY": graph_vcr_proxy.url,
        "https_proxy": graph_vcr_proxy.url,
        "SSL_CERT_FILE": str(graph_vcr_proxy.ca),
        "REQUESTS_CA_BUNDLE": str(graph_vcr_proxy.ca),
        "CURL_CA_BUNDLE": str(graph_vcr_proxy.ca),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return env


# --- a test fails when the proxy failed it, even if its code swallowed the answer ---------
#
# Checked right after the test's body, in the call phase (one GET /calls, only for a test
# that has the proxy): a failure there makes the test FAILED, with the reason, as
# pytest-recording's and vcrpy's exceptions raised inside the test do, rather than an ERROR
# at teardown that would read as a broken fixture.


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        result = yield
    except Exception as exc:  # the test failed; the proxy's failure is the likelier cause
        fail_on_proxy(item, cause=exc)
        raise
    fail_on_proxy(item)
    return result


def fail_on_proxy(item: pytest.Item, cause: BaseException | None = None) -> None:
    """Fail the test if the proxy failed any of its requests, one of them missed the
    cassette, it left recorded interactions unplayed (only when ``assert_all_played`` asks),
    or ``--graph-block-network`` refused one of its connections."""
    message = proxy_message(item, cause) or blocked_message(item)
    if message is None:
        return
    if cause is not None:
        summary, newline, details = message.partition("\n")
        message = f"{summary} (the test then failed: {type(cause).__name__}){newline}{details}"
    fail(message)


def proxy_message(item: pytest.Item, cause: BaseException | None) -> str | None:
    active = item.stash.get(ACTIVE, None)
    if active is None or active.proxy.stopped:
        return None
    try:
        calls = active.proxy.calls
    except ProxyError as exc:
        # A dead proxy fails the test (its requests got no answer), unless the test failed
        # already: its own failure says more.
        return None if cause is not None else with_log(str(exc), active.proxy)
    failed = failures_message(calls)
    if failed is not None:
        return with_log(failed, active.proxy)
    missed = None if active.allow_misses else misses_message(calls)
    if missed is not None or cause is not None or not active.assert_all_played:
        return missed
    try:  # one more request, only for a test that asks and passed so far
        return unplayed_failure(active.proxy.unplayed, calls)
    except ProxyError as exc:
        return with_log(str(exc), active.proxy)


def with_log(message: str, proxy: GraphVcrProxy) -> str:
    # The child logged before it answered, but a thread of ours reads its log: give it a
    # moment to catch up (only a failing test pays it).
    time.sleep(LOG_SETTLE)
    tail = proxy.log_tail()
    if not tail:
        return message
    return "\n".join([message, "last lines of the graph-vcr-proxy log:", *tail])


def blocked_message(item: pytest.Item) -> str | None:
    guard = item.stash.get(GUARD, None)
    if guard is None or not guard.blocked:
        return None
    return socket_guard.blocked_message(guard.blocked)


def fail(message: str) -> NoReturn:
    """Fail the current test: no traceback, no "during handling of..." echo."""
    raise pytest.fail.Exception(message, pytrace=False) from None


# --- the run's summary (--graph-summary-markdown) ------------------------------------------
#
# Each proxy child of this process (the run's, one per root folder, one per test that needs
# its own) counts every test it serves from its journal and, as it stops, writes that
# summary as JSON into this process's folder (``session.RunSummary``). At the end of the
# session each process merges its children's; a pytest-xdist worker hands its part to the
# controller (``workeroutput``, xdist's channel for it), and the controller, or a run without
# xdist, merges every part and writes the one Markdown file.

SUMMARY_DIR = pytest.StashKey[Path]()
SUMMARY_PARTS = pytest.StashKey[list[dict[str, Any]]]()
WORKER_OUTPUT = "graph_vcr_summary"  # a worker's part, as JSON text
RUN_TITLE = "graph-vcr-proxy summary (pytest run)"


def configure_run_summary(config: pytest.Config) -> None:
    target = config.getoption("--graph-summary-markdown", None)
    if not target:
        for flag in ("--graph-permissions-report", "--graph-guidance"):
            if config.getoption(flag, False):
                raise pytest.UsageError(f"{flag} adds to --graph-summary-markdown: give it too")
        return
    from proxy_addons.common.step_summary import destination

    path = destination(target)
    if path is not None and (path.is_dir() or not path.absolute().parent.is_dir()):
        raise pytest.UsageError(
            f"--graph-summary-markdown {target}: {path} is a folder, or in none that exists"
        )
    config.stash[SUMMARY_DIR] = Path(tempfile.mkdtemp(prefix="graph-vcr-summary-"))
    config.stash[SUMMARY_PARTS] = []


def report_arguments(config: pytest.Config) -> tuple[str, ...]:
    """What a proxy child is started with so that it writes its part of the run's summary."""
    folder = config.stash.get(SUMMARY_DIR, None)
    if folder is None:
        return ()
    flags = [
        option
        for option, asked in (
            ("--permissions-report", config.getoption("--graph-permissions-report")),
            ("--guidance", config.getoption("--graph-guidance")),
        )
        if asked
    ]
    return ("--summary-dir", str(folder), *flags)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist, in the controller: a worker is done; keep its part of the summary."""
    part = getattr(node, "workeroutput", {}).get(WORKER_OUTPUT)
    parts = node.config.stash.get(SUMMARY_PARTS, None)
    if part is not None and parts is not None:
        parts.append(json.loads(part))


@pytest.hookimpl(trylast=True)  # after the runner's, which tears the session fixtures down
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    folder = config.stash.get(SUMMARY_DIR, None)
    if folder is None:
        return
    from proxy_addons.common import step_summary
    from proxy_addons.graph import run_summary, summary_markdown

    for proxy in config.stash.get(ROOTED, {}).values():
        proxy.stop()  # a child writes its part as it stops (the run's stopped with its fixture)
    files = sorted(folder.glob("*.json"))
    part = run_summary.merge(json.loads(path.read_text(encoding="utf-8")) for path in files)
    shutil.rmtree(folder, ignore_errors=True)
    workeroutput = getattr(config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller writes the file
        workeroutput[WORKER_OUTPUT] = json.dumps(part)
        return
    summary = run_summary.merge(
        [part, *config.stash[SUMMARY_PARTS]],
        permissions=config.getoption("--graph-permissions-report"),
        guidance=config.getoption("--graph-guidance"),
    )
    text = summary_markdown.markdown(summary, RUN_TITLE)
    target = config.getoption("--graph-summary-markdown")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if step_summary.destination(target) is None and reporter is not None:
        # Printed among pytest's own lines, whose progress line is left unended: the
        # heading must start a line of its own to be one.
        reporter.ensure_newline()
        reporter.write(text, flush=True)
        return
    step_summary.write(target, text)
