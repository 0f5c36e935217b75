"""The pytest plugin: code under test that only reads the environment reaches the proxy."""

from __future__ import annotations

import json
import subprocess

import pytest
import requests

from proxy_addons import examples


@pytest.mark.graph_vcr(mode="replay")
def test_requests_reading_the_environment_gets_the_replayed_201(graph_vcr_env):
    response = requests.put(
        examples.ME_URL, data=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS, timeout=30
    )
    assert response.status_code == 201
    assert response.json() == json.loads(examples.RESPONSE_BODY)


@pytest.mark.graph_vcr(mode="replay")
def test_curl_reading_the_environment_gets_the_replayed_201(graph_vcr_env):
    result = subprocess.run(
        [
            "curl",
            "-sS",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            examples.REQUEST_BODY,
            "-w",
            "\n%{http_code}",
            examples.USERS_URL,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=None,
        check=False,
    )
    body, _, status = result.stdout.rpartition("\n")
    assert status == "201", result.stderr
    assert json.loads(body)["id"] == "0c7fda79-ff00-f57f-37e3-28183b6d09b5"


@pytest.mark.graph_vcr(cassette="does-not-exist.yaml")
def test_marker_with_a_missing_cassette_fails_the_test_setup_with_the_reason(request):
    from proxy_addons.launcher import ProxyFailedToStart

    with pytest.raises(ProxyFailedToStart, match=r"does-not-exist\.yaml"):
        request.getfixturevalue("graph_vcr_proxy")


@pytest.fixture
def elsewhere(monkeypatch, tmp_path):
    """Run the rest of the test's set-up from a folder that holds no cassettes."""
    monkeypatch.chdir(tmp_path)


@pytest.mark.graph_vcr(cassette="cassettes/create-virtualappointment-me.yaml")
def test_a_relative_marker_cassette_is_found_from_the_rootdir_wherever_pytest_runs(
    elsewhere, graph_vcr_env
):
    response = requests.put(
        examples.ME_URL, data=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS, timeout=30
    )
    assert response.status_code == 201
