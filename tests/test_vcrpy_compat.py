"""The bundled cassettes play in plain vcrpy, with no code of this project at all.

This file deliberately imports nothing from ``proxy_addons``: it is what a user of vcrpy or
pytest-recording would write, pointed at our ``cassettes/`` folder.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import requests
import vcr
import yaml

CASSETTES = sorted((Path(__file__).resolve().parent.parent / "cassettes").glob("*.yaml"))
STRICT = ["method", "scheme", "host", "port", "path", "query", "body"]


def recorded(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)["interactions"]


def test_there_are_bundled_cassettes_for_me_and_users():
    names = [p.name for p in CASSETTES]
    assert names == ["create-virtualappointment-me.yaml", "create-virtualappointment-users.yaml"]


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: p.name)
def test_requests_patched_by_vcrpy_replays_every_interaction(path):
    player = vcr.VCR(record_mode="none", match_on=STRICT)
    with player.use_cassette(str(path)) as tape, requests.Session() as session:
        session.trust_env = False  # no proxy from the environment: vcrpy answers
        for item in recorded(path):
            sent = item["request"]
            response = session.request(
                sent["method"],
                sent["uri"],
                data=sent["body"].encode(),
                headers={k: v[0] for k, v in sent["headers"].items()},
                timeout=5,
            )
            assert response.status_code == item["response"]["status"]["code"] == 201
            assert response.text == item["response"]["body"]["string"]
            assert response.json()["id"] == "0c7fda79-ff00-f57f-37e3-28183b6d09b5"
        assert tape.all_played


@pytest.mark.parametrize("path", CASSETTES, ids=lambda p: p.name)
def test_httpx_patched_by_vcrpy_replays_every_interaction(path):
    player = vcr.VCR(record_mode="none", match_on=STRICT)
    with player.use_cassette(str(path)) as tape, httpx.Client(trust_env=False) as client:
        for item in recorded(path):
            sent = item["request"]
            response = client.request(
                sent["method"], sent["uri"], content=sent["body"].encode(), timeout=5
            )
            assert response.status_code == 201
            assert response.json()["appointmentClients"][0]["displayName"] == "Grady Archie"
        assert tape.play_count == len(recorded(path))


def test_vcrpy_refuses_a_request_the_cassette_does_not_hold():
    player = vcr.VCR(record_mode="none")
    with player.use_cassette(str(CASSETTES[0])), requests.Session() as session:
        session.trust_env = False
        with pytest.raises(vcr.errors.CannotOverwriteExistingCassetteException):
            session.get("https://graph.microsoft.com/beta/me/onlineMeetings", timeout=5)
