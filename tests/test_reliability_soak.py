"""A soak: thousands of replayed requests through one proxy, its memory flat after warm-up.

A proxy left running for a whole test session (the pytest plugin's, a developer's) must not
grow with the number of requests it has answered: whatever it keeps per request, it must let
go once the request is answered. The child's resident set size is read from
``/proc/<pid>/status`` after a warm-up (caches filled, certificates generated, allocator
arenas grown) and again at the end.
"""

from __future__ import annotations

import itertools
import threading

import pytest
from reliability import (
    LEVEL,
    assert_graph_answer,
    call,
    https_client,
    resident_kib,
    run_concurrently,
)

from proxy_addons.cassette import examples

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

CLIENTS = 4  # keep-alive connections sharing the requests
MAX_GROWTH = 0.10


def test_replaying_thousands_of_requests_grows_resident_memory_less_than_ten_percent(
    start_proxy,
):
    # The bundled cassettes, and the summary as users run it; one recorded create answers all.
    replayer = start_proxy("replay", "--allow-playback-repeats")
    pid = replayer.process.pid
    body = examples.REQUEST_BODY.encode()
    expected = examples.RESPONSE_BODY.encode()
    numbers = itertools.count()
    lock = threading.Lock()
    baseline: list[int] = []

    def client_run(_: int) -> int:
        answered = 0
        with https_client(replayer) as client:
            while True:
                with lock:
                    n = next(numbers)
                    if n == LEVEL.soak_warmup:
                        baseline.append(resident_kib(pid))
                if n >= LEVEL.soak_requests:
                    return answered
                sent = call("PUT", examples.ME_URL, [201], body)
                response = sent.send(client)
                assert_graph_answer(sent, response)
                assert response.content == expected
                answered += 1

    answered = run_concurrently(CLIENTS, client_run, LEVEL.timeout * 0.8)
    final = resident_kib(pid)
    assert sum(answered) == LEVEL.soak_requests
    growth = (final - baseline[0]) / baseline[0]
    print(
        f"soak: {LEVEL.soak_requests} replayed requests, resident {baseline[0]} KiB after "
        f"{LEVEL.soak_warmup}, {final} KiB at the end: {growth:+.1%}"
    )
    assert growth < MAX_GROWTH, f"{baseline[0]} KiB -> {final} KiB ({growth:+.1%})"
