"""Several recorders on one cassette at once: whatever their modes, every answer any of them
gave is in the file afterwards, and plain vcrpy loads it.

Real ``graph-vcr-proxy record`` processes on one cassette, a real ``simulate --reverse``
upstream, httpx clients over HTTPS. Each call carries its own ``client-request-id``, which
the cassette stores with the request: that is how an answer is found in the file.
"""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
from reliability import Call, call, create_body, https_client, meeting_url, run_concurrently
from vcr.cassette import Cassette

from proxy_addons.cassette import cassette
from proxy_addons.cli.launcher import RunningProxy

pytestmark = pytest.mark.e2e

OLD = ("y", "z")  # meetings whose GET the cassette holds before the recorders start


def client_ids(path: Path) -> list[str]:
    return [i.request.headers.get("client-request-id", "") for i in cassette.load(path)]


def send(proxy: RunningProxy, sent: Call, answered: list[str] | None) -> httpx.Response:
    """Send ``sent``; its id joins ``answered`` once the client has the answer (None: the
    answer is a replay, which records nothing)."""
    with https_client(proxy) as client:
        response = sent.send(client)
    assert response.status_code in sent.statuses, response.text
    if answered is not None:
        answered.append(sent.headers["client-request-id"])
    return response


def seed(path: Path, start_proxy, upstream: str) -> list[str]:
    """A cassette with creates of the OLD meetings and one GET of each; the GETs' ids."""
    recorder = start_proxy(
        "record", "--cassette", str(path), "--upstream", upstream, "--no-summary"
    )
    done: list[str] = []
    for meeting in OLD:
        send(recorder, call("PUT", meeting_url(meeting), [201], create_body(meeting)), done)
    gets = [call("GET", meeting_url(m), [200]) for m in OLD]
    for get in gets:
        send(recorder, get, done)
    assert recorder.stop() == 0
    return [g.headers["client-request-id"] for g in gets]


@pytest.mark.parametrize("second_mode", ["all", "new_episodes"])
def test_recorders_on_one_cassette_keep_every_answer_any_of_them_gave(
    tmp_path, start_proxy, second_mode
):
    emulator = start_proxy("simulate", "--reverse", "--no-summary")
    path = tmp_path / "shared.yaml"
    old_gets = seed(path, start_proxy, emulator.url)
    args = ("--cassette", str(path), "--upstream", emulator.url, "--no-summary")
    first = start_proxy("record", "--record-mode", "all", *args)
    second = start_proxy("record", "--record-mode", second_mode, *args)
    answered: list[str] = []

    def recorded_by(proxy: RunningProxy, sent: Call) -> list[str] | None:
        """Where an answer must be found: new_episodes replays an old request, records nothing."""
        replays = proxy is second and second_mode == "new_episodes" and sent.method == "GET"
        return None if replays and any(f"/{m}/" in sent.url for m in OLD) else answered

    # Interleaved re-recordings of the same old requests, in the order that made a recorder
    # in mode all drop another recorder's new answer when it paired blocks by position.
    for proxy, meeting in ((first, "z"), (second, "y"), (first, "y"), (second, "z")):
        sent = call("GET", meeting_url(meeting), [200])
        send(proxy, sent, recorded_by(proxy, sent))

    def client_run(n: int) -> None:
        rng = random.Random(n)
        proxy = (first, second)[n % 2]
        for i in range(8):
            if rng.random() < 0.5:
                sent = call("GET", meeting_url(rng.choice(OLD)), [200])
            else:
                meeting = f"new-{n}-{i}"
                sent = call("PUT", meeting_url(meeting), [201], create_body(meeting))
            send(proxy, sent, recorded_by(proxy, sent))

    run_concurrently(4, client_run, timeout=120)
    assert first.stop() == 0 and second.stop() == 0

    stored = client_ids(path)
    missing = [i for i in answered if i not in stored]
    assert not missing, f"{len(missing)} answered interactions are not in the cassette"
    assert not set(old_gets) & set(stored)  # both old GETs were re-recorded: the old ones go
    assert len(Cassette.load(path=str(path), record_mode="none").requests) == len(stored)
