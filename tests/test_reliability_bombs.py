"""A 1 GB gzip bomb through a real proxy: Graph's 413, with memory and the event loop bounded.

The body is about 1 MB on the wire and 1 GB decoded. The proxy decodes request bodies as a
stream that stops at Graph's 4 MB limit, so its peak RSS (``VmHWM``) barely moves, and the
CPU time it spends on the request (all of it on its event loop, which nothing else holds
up) stays far under what a stall of 100 ms would take. CPU time, read from ``/proc``, and not
a concurrent client's wall-clock time: on a busy machine the latter measures the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bombs import MB, bomb
from conftest import httpx_client

from proxy_addons.cassette import examples

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

ME = examples.ME_URL
HEADERS = {**examples.REQUEST_HEADERS, "Authorization": "Bearer t"}
MAX_RSS_GROWTH_MB = 50
MAX_STALL_S = 0.100


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of the process so far (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_1_gb_gzip_bomb_gets_413_in_bounded_memory_and_cpu_time(start_proxy):
    body = bomb(1024, "gzip")
    assert len(body) < 2 * MB
    proxy = start_proxy("replay")
    pid = proxy.process.pid
    with httpx_client(proxy) as client:
        assert client.put(ME, content=examples.REQUEST_BODY, headers=HEADERS).status_code == 201
        before, cpu_before = peak_rss_mb(pid), cpu_seconds(pid)
        answer = client.put(ME, content=body, headers={**HEADERS, "Content-Encoding": "gzip"})
        cpu = cpu_seconds(pid) - cpu_before
    growth = peak_rss_mb(pid) - before
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "RequestEntityTooLarge"
    assert growth < MAX_RSS_GROWTH_MB, f"peak RSS grew {growth:.0f} MB"
    assert cpu < MAX_STALL_S, f"the proxy spent {cpu:.2f} s of CPU on the bomb"
