"""The pytest plugin's run summary (``--graph-summary-markdown``): one Markdown file for the
whole run, every xdist worker's proxy counted, written by the controller."""

from __future__ import annotations

import re
import shutil

import pytest
from markdown_it import MarkdownIt

from proxy_addons.cassette import cassette, examples
from proxy_addons.common.step_summary import STEP_SUMMARY
from proxy_addons.graph import tokens

pytestmark = pytest.mark.e2e

GFM = MarkdownIt("commonmark").enable("table")
TOKEN = tokens.token(scopes="OnlineMeetings.ReadWrite Calendars.Read")
SUITE = f"""
import pytest
import requests

URL = {examples.ME_URL!r}
BODY = {examples.REQUEST_BODY!r}
HEADERS = {{"Content-Type": "application/json", "Authorization": "Bearer {TOKEN}"}}

pytestmark = pytest.mark.graph_vcr(cassette="me.yaml", allow_playback_repeats=True)


@pytest.mark.parametrize("n", range(6))
def test_create(graph_vcr_env, n):
    assert requests.put(URL, data=BODY, headers=HEADERS, timeout=30).status_code == 201


@pytest.mark.graph_vcr(faults=["throttle:times=1"])
def test_throttled(graph_vcr_env):
    statuses = [requests.put(URL, data=BODY, headers=HEADERS, timeout=30).status_code for _ in "ab"]
    assert statuses == [429, 201]
"""


def cells(html: str) -> list[str]:
    return re.findall(r"<td[^>]*>(.*?)</td>", html)


def suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_graph=SUITE)
    (pytester.path / "cassettes" / "test_graph").mkdir(parents=True)
    shutil.copy(
        cassette.bundled_cassettes() / "create-virtualappointment-me.yaml",
        pytester.path / "cassettes" / "test_graph" / "me.yaml",
    )


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:hypothesispytest", *args, timeout=300)


def test_one_markdown_summary_counts_every_xdist_workers_calls(pytester, monkeypatch, tmp_path):
    suite(pytester)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    monkeypatch.setenv("TMPDIR", str(temporary))  # where each process keeps its children's parts
    result = run(
        pytester,
        "-n",
        "2",
        "--graph-summary-markdown",
        "summary.md",
        "--graph-permissions-report",
        "--graph-guidance",
    )
    result.assert_outcomes(passed=7)
    text = (pytester.path / "summary.md").read_text()
    html = GFM.render(text)
    assert html.count("<table>") == 5  # routes, faults, operations, tokens, guidance
    found = cells(html)
    create_row = found[found.index("create") : found.index("create") + 4]
    assert create_row == ["create", "8", "7", "1"]  # requests, replay, fault: both workers'
    assert "Calendars.Read" in found  # beyond what the creates needed
    assert found[found.index("beta-url") : found.index("beta-url") + 2] == ["beta-url", "8"]
    assert TOKEN.split(".")[1] not in text
    assert not list(temporary.glob("graph-vcr-summary-*"))  # nothing left behind


def test_dash_appends_the_runs_summary_to_the_ci_job_summary(pytester, monkeypatch):
    suite(pytester)
    step_summary = pytester.path / "step_summary.md"
    step_summary.write_text("## an earlier step\n")
    monkeypatch.setenv(STEP_SUMMARY, str(step_summary))
    result = run(pytester, "-n", "0", "--graph-summary-markdown", "-", "-k", "throttled")
    result.assert_outcomes(passed=1)
    text = step_summary.read_text()
    assert text.startswith("## an earlier step\n\n## graph-vcr-proxy summary (pytest run)\n")
    assert cells(GFM.render(text))[:4] == ["create", "2", "1", "1"]


def test_a_run_report_flag_without_the_markdown_file_is_a_usage_error(pytester):
    suite(pytester)
    result = run(pytester, "--graph-permissions-report")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--graph-permissions-report adds to --graph-summary-markdown*"])


def test_dash_without_a_ci_job_summary_prints_the_runs_summary_on_lines_of_its_own(
    pytester, monkeypatch
):
    suite(pytester)
    monkeypatch.delenv(STEP_SUMMARY, raising=False)
    result = run(pytester, "-n", "0", "--graph-summary-markdown", "-", "-k", "throttled")
    result.assert_outcomes(passed=1)
    assert "## graph-vcr-proxy summary (pytest run)" in result.outlines
