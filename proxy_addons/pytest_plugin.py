"""pytest plugin: a real graph-vcr-proxy per test, and the environment to send traffic to it.

    @pytest.mark.graph_vcr(mode="replay", cassette="tests/cassettes/create.yaml",
                           args=["--fault", "throttle:times=1"])
    def test_create(graph_vcr_env):
        ...  # code under test reads HTTPS_PROXY / SSL_CERT_FILE / REQUESTS_CA_BUNDLE

Without the marker a test gets ``replay`` of the bundled cassettes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from proxy_addons.launcher import RunningProxy, running_proxy


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "graph_vcr(mode='replay', cassette=None, args=()): run the test against a "
        "graph-vcr-proxy started in MODE with CASSETTE and extra command-line ARGS",
    )


@pytest.fixture(scope="session")
def graph_vcr_confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One confdir, so one CA, for the session's proxies."""
    return tmp_path_factory.mktemp("graph-vcr-proxy-ca")


@pytest.fixture
def graph_vcr_proxy(
    request: pytest.FixtureRequest, graph_vcr_confdir: Path
) -> Iterator[RunningProxy]:
    """A running proxy configured by the test's ``graph_vcr`` marker; stopped afterwards."""
    marker = request.node.get_closest_marker("graph_vcr")
    kwargs = dict(marker.kwargs) if marker else {}
    mode = kwargs.pop("mode", "replay")
    args = [str(a) for a in kwargs.pop("args", ())]
    cassette = kwargs.pop("cassette", None)
    if kwargs:
        raise pytest.UsageError(f"graph_vcr marker: unknown arguments {sorted(kwargs)}")
    if cassette is not None:
        # Relative to the project (pytest's rootdir), not to wherever pytest was started.
        path = Path(cassette)
        args = [
            "--cassette",
            str(path if path.is_absolute() else request.config.rootpath / path),
            *args,
        ]
    with running_proxy(mode, *args, confdir=graph_vcr_confdir) as proxy:
        yield proxy


@pytest.fixture
def graph_vcr_env(graph_vcr_proxy: RunningProxy, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
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
