"""Sixteen clients at once against each proxy mode, mixing every operation Graph has here.

Every client is real httpx over HTTPS through a real ``graph-vcr-proxy`` child; the recorder's
upstream is a real ``graph-vcr-proxy simulate --reverse``. What must hold under load is what
holds for one client: every answer is one Graph would give (a status the client can predict,
or Graph's error envelope; never mitmproxy's 502 page or a reset), every answer the recorder
gave is on disk before the client has it, and the emulator's ETags never lose an update.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from reliability import (
    LEVEL,
    MAX_SEED,
    Call,
    OwnAppointment,
    assert_graph_answer,
    call,
    create_body,
    https_client,
    live_calls,
    meeting_url,
    new_id,
    run_concurrently,
    update_body,
)
from vcr.cassette import Cassette

from proxy_addons.cassette import cassette
from proxy_addons.cli.launcher import running_proxy

pytestmark = [pytest.mark.reliability, pytest.mark.e2e]

SHARED_MEETINGS = 4
NEVER_ISSUED = OwnAppointment.NEVER_ISSUED
CLIENTS_TIMEOUT = LEVEL.timeout / 2


# --- simulate: sixteen clients on four shared appointments --------------------------------


@dataclass(frozen=True)
class Write:
    """A write the emulator accepted: the ETag it required (None: the appointment did not
    exist) and the one it left (None: deleted)."""

    meeting: str
    before: str | None
    after: str | None


def contended_calls(n: int, seed: int, client: httpx.Client) -> list[Write]:
    """Client ``n``'s random calls on the shared appointments, each write conditional: a
    create with ``If-None-Match: *``, an update or delete with the ``If-Match`` this client
    last saw (or one never issued). Every status is predictable; the writes that won come
    back for the ETag check."""
    rng = random.Random(f"{seed}/{n}")
    known: dict[str, str] = {}
    writes: list[Write] = []
    for i in range(LEVEL.calls_per_client):
        meeting = f"shared-{rng.randrange(SHARED_MEETINGS)}"
        url = meeting_url(meeting)
        kind = rng.choices(["create", "get", "update", "delete", "live"], [2, 3, 4, 1, 2])[0]
        if_match = known.get(meeting, NEVER_ISSUED)
        if kind == "create":
            sent = call("PUT", url, [201, 412], create_body(f"{n}-{i}"), If_None_Match="*")
        elif kind == "get":
            sent = call("GET", url, [200, 404])
        elif kind == "update":
            sent = call("PATCH", url, [204, 412], update_body(f"{n}-{i}"), If_Match=if_match)
        elif kind == "delete":
            sent = call("DELETE", url, [204, 412], If_Match=if_match)
        else:
            sent = rng.choice(live_calls(meeting))
        response = sent.send(client)
        assert_graph_answer(sent, response)
        etag = response.headers.get("ETag")
        if response.status_code in (200, 201, 204) and kind in ("create", "get", "update"):
            assert etag, f"{sent.method} {url} -> {response.status_code} without an ETag"
            known[meeting] = etag
        elif response.status_code == 404 or (kind == "delete" and response.status_code == 204):
            known.pop(meeting, None)
        if response.status_code in (201, 204) and kind != "get":
            before = None if kind == "create" else if_match
            writes.append(Write(meeting, before, None if kind == "delete" else etag))
    return writes


def test_sixteen_clients_on_shared_appointments_get_graph_answers_and_lose_no_update(
    start_proxy,
):
    seed = random.randrange(MAX_SEED)
    emulator = start_proxy("simulate", "--no-summary")

    def client_run(n: int) -> list[Write]:
        with https_client(emulator) as client:
            return contended_calls(n, seed, client)

    writes = [
        w for each in run_concurrently(LEVEL.clients, client_run, CLIENTS_TIMEOUT) for w in each
    ]
    assert writes, f"seed {seed}: no write succeeded"
    with https_client(emulator) as client:
        for meeting in {f"shared-{m}" for m in range(SHARED_MEETINGS)}:
            mine = [w for w in writes if w.meeting == meeting]
            issued = [w.after for w in mine if w.after is not None]
            required = [w.before for w in mine if w.before is not None]
            where = f"seed {seed}, {meeting}"
            # Each ETag is required by at most one winning write: two winners with the same
            # If-Match would be a lost update.
            assert all(n == 1 for n in Counter(required).values()), where
            assert set(required) <= set(issued), where  # only ETags the emulator issued win
            last = set(issued) - set(required)  # what no later write replaced
            assert len(last) <= 1, where
            final = call("GET", meeting_url(meeting), [200, 404])
            response = final.send(client)
            assert_graph_answer(final, response)
            if last:
                assert (response.status_code, response.headers["ETag"]) == (200, *last), where
            else:
                assert response.status_code == 404, where
            creates = sum(w.before is None for w in mine)
            deletes = sum(w.after is None for w in mine)
            assert creates - deletes == len(last), where


# --- record, then replay: sixteen clients each on an appointment of its own ---------------


@dataclass(frozen=True)
class Answered:
    """A call and the answer the client got."""

    sent: Call
    status: int
    content: bytes


def own_appointment_calls(n: int, seed: int, client: httpx.Client) -> list[Answered]:
    """Client ``n``'s random calls on an appointment only it uses (every status exact)."""
    rng = random.Random(f"{seed}/{n}")
    appointment = OwnAppointment(f"own-{n}")
    answered: list[Answered] = []
    for i in range(LEVEL.calls_per_client):
        sent = appointment.next_call(rng, f"{n}-{i}")
        response = sent.send(client)
        assert_graph_answer(sent, response)
        appointment.learn(sent, response)
        answered.append(Answered(sent, response.status_code, response.content))
    return answered


@dataclass(frozen=True)
class Recording:
    path: Path
    at_last_answer: Path  # the cassette as it was when the last client had its last answer
    sessions: list[list[Answered]]
    seed: int


@pytest.fixture(scope="module")
def recording(confdir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recording]:
    """Sixteen clients recording through one recorder into one cassette, against the
    emulator as a real local upstream."""
    folder = tmp_path_factory.mktemp("concurrent-recording")
    path = folder / "sixteen.yaml"
    seed = random.randrange(MAX_SEED)
    with (
        running_proxy("simulate", "--reverse", "--no-summary", confdir=confdir) as upstream,
        running_proxy(
            "record",
            "--cassette",
            str(path),
            "--upstream",
            upstream.url,
            "--no-summary",
            confdir=confdir,
        ) as recorder,
    ):

        def client_run(n: int) -> list[Answered]:
            with https_client(recorder) as client:
                return own_appointment_calls(n, seed, client)

        sessions = run_concurrently(LEVEL.clients, client_run, CLIENTS_TIMEOUT)
        at_last_answer = folder / "at-last-answer.yaml"
        shutil.copyfile(path, at_last_answer)
        assert recorder.stop() == 0
    yield Recording(path, at_last_answer, sessions, seed)


def test_sixteen_clients_recording_at_once_find_every_answer_on_disk_for_vcrpy(recording):
    answered = [a for session in recording.sessions for a in session]
    for path in (recording.at_last_answer, recording.path):
        loaded = Cassette.load(path=str(path), record_mode="none")  # plain vcrpy
        on_disk = {
            request.headers["client-request-id"]: (response["status"]["code"], response)
            for request, response in loaded.data
        }
        assert len(on_disk) == len(loaded.data) == len(answered), f"seed {recording.seed}"
        for each in answered:
            status, response = on_disk[each.sent.headers["client-request-id"]]
            assert status == each.status, f"seed {recording.seed}: {each.sent}"
            body = response["body"]["string"] or b""
            assert (body.encode() if isinstance(body, str) else body) == each.content
    assert len(cassette.load(recording.path)) == len(answered)  # and ours
    assert b"reliability-token-7731" not in recording.path.read_bytes()


def test_sixteen_clients_replaying_at_once_get_exactly_what_was_recorded(recording, start_proxy):
    replayer = start_proxy("replay", "--cassette", str(recording.path), "--no-summary")

    def client_run(n: int) -> None:
        with https_client(replayer) as client:
            for each in recording.sessions[n]:
                sent = dataclasses.replace(
                    each.sent, headers={**each.sent.headers, "client-request-id": new_id()}
                )
                response = sent.send(client)
                assert_graph_answer(
                    dataclasses.replace(sent, statuses=frozenset({each.status})),
                    response,
                    fresh_body=False,
                )
                assert response.content == each.content, f"seed {recording.seed}: {sent}"

    run_concurrently(LEVEL.clients, client_run, CLIENTS_TIMEOUT)
