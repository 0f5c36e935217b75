"""kill -9 of a recording proxy at random moments under load.

Each round starts ``record --record-mode new_episodes`` on the same cassette (healing whatever
the last kill left), puts clients to work on it through a real ``simulate --reverse``
upstream, and kills it with SIGKILL at a random moment while they are. After every kill, our
reader must load the file as it is (leaving out, at most, a torn last block whose response
was never sent), every answer any client has ever received, in this round or an earlier one,
must be in it with the status the client got, and once the next writer has opened the file
(healing it under its lock), plain vcrpy loads it too.
"""

from __future__ import annotations

import random
import threading
import time
from functools import partial

import httpx
import pytest
from reliability import (
    LEVEL,
    MAX_SEED,
    OwnAppointment,
    assert_graph_answer,
    https_client,
    run_concurrently,
)
from vcr.cassette import Cassette

from proxy_addons.cassette import cassette
from proxy_addons.cassette.writer import CassetteWriter
from proxy_addons.cli.launcher import RunningProxy

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

CLIENTS = 6
MAX_CALLS = 10_000  # per client and round: a bound the kill always comes before
LAST_KILL_AFTER = 0.5  # seconds after the round's first answer, at most


class Answers:
    """Every answer any client received, by client-request-id, over every round."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.lock = threading.Lock()

    def add(self, request_id: str, status: int) -> None:
        with self.lock:
            self.status[request_id] = status


def load_under_kill(recorder: RunningProxy, round_: int, seed: int, answers: Answers) -> None:
    """Clients calling through ``recorder`` until it is killed with SIGKILL at a random
    moment, between its first answer of the round and ``LAST_KILL_AFTER`` seconds later."""
    where = f"seed {seed}, kill {round_ + 1}"
    first_answer, killed = threading.Event(), threading.Event()

    def client_run(n: int) -> None:
        # Meetings of this round only: new_episodes would replay an earlier round's call.
        appointment = OwnAppointment(f"kill{round_}-client{n}")
        calls = random.Random(f"{seed}/{round_}/{n}")
        with https_client(recorder) as client:
            for i in range(MAX_CALLS):
                sent = appointment.next_call(calls, f"{round_}-{n}-{i}")
                try:
                    response = sent.send(client)
                except httpx.HTTPError:
                    assert killed.is_set(), f"{where}: {sent.method} {sent.url} failed"
                    return
                assert_graph_answer(sent, response)
                appointment.learn(sent, response)
                answers.add(sent.headers["client-request-id"], response.status_code)
                first_answer.set()
        raise AssertionError(f"{where}: {MAX_CALLS} calls and no kill")

    def kill_at_a_random_moment() -> None:
        assert first_answer.wait(LEVEL.timeout / 4), f"{where}: no answer"
        time.sleep(random.Random(f"{seed}/{round_}").uniform(0, LAST_KILL_AFTER))
        killed.set()
        recorder.process.kill()
        recorder.process.wait(10)

    def run(n: int) -> None:
        (kill_at_a_random_moment if n == CLIENTS else partial(client_run, n))()

    run_concurrently(CLIENTS + 1, run, LEVEL.timeout / 4)


def test_kill_9_at_random_moments_under_load_loses_no_answer_and_vcrpy_loads_once_healed(
    start_proxy, tmp_path
):
    seed = random.randrange(MAX_SEED)
    upstream = start_proxy("simulate", "--reverse", "--no-summary")
    path = tmp_path / "killed.yaml"
    answers = Answers()
    for round_ in range(LEVEL.kills):
        recorder = start_proxy(
            "record",
            "--cassette",
            str(path),
            "--record-mode",
            "new_episodes",
            "--upstream",
            upstream.url,
            "--no-summary",
        )
        load_under_kill(recorder, round_, seed, answers)
        ours = cassette.load(path)  # as the kill left it: a torn tail is left out
        on_disk = {
            i.request.headers["client-request-id"]: i.response["status"]["code"] for i in ours
        }
        lost = [i for i, status in answers.status.items() if on_disk.get(i) != status]
        assert not lost, f"seed {seed}, kill {round_ + 1}: {len(lost)} answers not on disk"
    writer = CassetteWriter(path)
    writer.heal()  # what the next recorder does first, under the lock
    writer.close()
    loaded = Cassette.load(path=str(path), record_mode="none")  # plain vcrpy
    assert len(cassette.load(path)) == len(loaded.data) >= len(answers.status) > 0
