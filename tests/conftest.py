"""Fixtures shared by the end-to-end tests: a real proxy on a free port and real clients."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from reliability import LEVEL, check_level

from proxy_addons.cli.launcher import RunningProxy, running_proxy

pytest_plugins = ["pytester"]  # the pytest plugin's own tests run pytest on small projects


def pytest_configure(config: pytest.Config) -> None:
    check_level()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Reliability tests get the time their level allows (the long run's soak alone takes
    minutes), unless a test sets its own."""
    for item in items:
        if item.get_closest_marker("reliability") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LEVEL.timeout))


@pytest.fixture(scope="session")
def confdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mitmproxy confdir (and so one generated CA) for the whole run."""
    return tmp_path_factory.mktemp("mitmproxy-confdir")


@pytest.fixture
def start_proxy(confdir: Path) -> Iterator[Callable[..., RunningProxy]]:
    """Start ``graph-vcr-proxy MODE ARGS...`` on 127.0.0.1:0; all are stopped after the test."""
    with ExitStack() as stack:

        def start(mode: str, *args: str, **kwargs: object) -> RunningProxy:
            return stack.enter_context(running_proxy(mode, *args, confdir=confdir, **kwargs))

        yield start


@pytest.fixture
def counted(confdir: Path, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start ``graph-vcr-proxy MODE ARGS...`` with the upstream counter in its chain (and
    ``hosts={"graph.microsoft.com": PORT}`` to land those connections on a loopback port):
    see upstream_counter.py. All are stopped after the test."""
    from upstream_counter import start_counted  # the proxy's modules: only where used

    with ExitStack() as stack:

        def begin(mode: str, *args: str, hosts: dict[str, int] | None = None) -> Any:
            return start_counted(stack, confdir, tmp_path, mode, *args, hosts=hosts)

        yield begin


def httpx_client(proxy: RunningProxy, **kwargs: object) -> httpx.Client:
    """An httpx client that goes through the proxy and trusts only its CA."""
    verify = ssl.create_default_context(cafile=str(proxy.ca))
    return httpx.Client(proxy=proxy.url, verify=verify, timeout=30, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def client_for() -> Iterator[Callable[[RunningProxy], httpx.Client]]:
    """Factory of httpx clients bound to a proxy; closed after the test."""
    clients: list[httpx.Client] = []

    def make(proxy: RunningProxy) -> httpx.Client:
        client = httpx_client(proxy)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
