"""The reports of issue 20 through a real proxy and real clients: the least-privilege report,
the Markdown summary (to a file, and appended to a CI job summary) and the guidance."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import httpx_client
from helpers import assert_one_line_error, run_cli
from markdown_it import MarkdownIt
from msgraph_core import GraphClientFactory

from proxy_addons.cassette import examples
from proxy_addons.common.step_summary import STEP_SUMMARY
from proxy_addons.graph import tokens
from proxy_addons.graph.guidance import Advice

pytestmark = pytest.mark.e2e

ME = examples.ME_URL
V1_MEETING = f"https://graph.microsoft.com/v1.0/me/onlineMeetings/{examples.MEETING_ID}"
WRITER = tokens.token(scopes="OnlineMeetings.ReadWrite VirtualAppointment.ReadWrite User.Read")
SENDER = tokens.token(scopes="VirtualAppointmentNotification.Send", app_id=tokens.SUBJECT_ID)
GFM = MarkdownIt("commonmark").enable("table")


def cells(html: str) -> list[str]:
    return re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", html)


async def create_with_msgraph_core(proxy_url: str, ca: Path) -> httpx.Response:
    """The documented create through msgraph-core's middleware pipeline, as Kiota sends it."""
    base = httpx.AsyncClient(
        proxy=proxy_url, verify=ssl.create_default_context(cafile=str(ca)), timeout=30
    )
    async with GraphClientFactory.create_with_default_middleware(client=base) as client:
        return await client.put(
            ME,
            content=examples.REQUEST_BODY,
            headers={**examples.REQUEST_HEADERS, "Authorization": f"Bearer {WRITER}"},
            extensions={"kiota_request_options": {}},
        )


def test_replay_reports_least_privilege_and_guidance_as_markdown_json_and_log(
    start_proxy, tmp_path
):
    markdown_file, json_file = tmp_path / "summary.md", tmp_path / "summary.json"
    proxy = start_proxy(
        "replay",
        "--summary-markdown",
        str(markdown_file),
        "--summary-json",
        str(json_file),
        "--permissions-report",
        "--guidance",
    )
    created = asyncio.run(create_with_msgraph_core(proxy.url, proxy.ca))
    with httpx_client(proxy) as client:
        sms = client.post(  # not in the cassette: a miss, counted all the same
            f"{V1_MEETING}/sendVirtualAppointmentSms",
            json={"attendees": [{"phoneNumber": "123-456-7890"}], "messageType": "confirmation"},
            headers={"Authorization": f"Bearer {SENDER}", "client-request-id": "1"},
        )
    assert proxy.stop() == 0
    assert (created.status_code, sms.status_code) == (201, 501)

    summary = json.loads(json_file.read_text())
    operations = summary["permissions"]["operations"]
    assert {name: row["least_privileged"] for name, row in operations.items()} == {
        "create": "OnlineMeetings.ReadWrite",
        "sms": "VirtualAppointmentNotification.Send",
    }
    beyond = {row["app_id"]: row["beyond_needed"] for row in summary["permissions"]["tokens"]}
    assert beyond == {
        tokens.DEFAULT_APP_ID: ["User.Read", "VirtualAppointment.ReadWrite"],
        tokens.SUBJECT_ID: [],
    }
    advice = summary["guidance"]["advice"]
    assert advice[Advice.BETA_URL] == 1 and advice[Advice.WRITE_WITHOUT_IF_MATCH] == 1
    assert advice[Advice.SMS_PHONE_NUMBER] == 1
    assert Advice.NO_CLIENT_REQUEST_ID not in advice  # msgraph-core's telemetry sends one

    html = GFM.render(markdown_file.read_text())
    assert html.count("<table>") == 4  # routes, operations, tokens, guidance
    assert {"create", "sms", "User.Read, VirtualAppointment.ReadWrite", "sms-phone-number"} <= set(
        cells(html)
    )
    log = "".join(proxy.stderr)
    assert "guidance: POST /v1.0/me/onlinemeetings" in log
    assert "least privilege: tokens seen" in log  # the permissions report, printed at exit
    for token in (WRITER, SENDER):
        assert token.split(".")[1] not in log + markdown_file.read_text() + json_file.read_text()


def test_without_guidance_no_advice_is_given_or_summarised(start_proxy, tmp_path):
    json_file = tmp_path / "summary.json"
    proxy = start_proxy("replay", "--summary-json", str(json_file))
    with httpx_client(proxy) as client:
        client.put(ME, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS)
    assert proxy.stop() == 0
    summary = json.loads(json_file.read_text())
    assert "guidance" not in summary and "permissions" not in summary
    assert "guidance:" not in "".join(proxy.stderr)


def test_dash_appends_the_markdown_to_the_ci_job_summary(start_proxy, tmp_path):
    step_summary = tmp_path / "step_summary.md"
    step_summary.write_text("## an earlier step\n\nkept\n")
    proxy = start_proxy("replay", "--summary-markdown", "-", env={STEP_SUMMARY: str(step_summary)})
    with httpx_client(proxy) as client:
        client.put(ME, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS)
    assert proxy.stop() == 0
    text = step_summary.read_text()
    assert text.startswith("## an earlier step\n\nkept\n\n## graph-vcr-proxy summary\n")
    assert "<table>" in GFM.render(text)


def test_dash_without_a_ci_job_summary_prints_the_markdown(start_proxy):
    proxy = start_proxy("replay", "--summary-markdown", "-", env={STEP_SUMMARY: ""})
    with httpx_client(proxy) as client:
        client.put(ME, content=examples.REQUEST_BODY, headers=examples.REQUEST_HEADERS)
    assert proxy.stop() == 0
    printed = "".join(proxy.stdout)
    assert "## graph-vcr-proxy summary" in printed and "| create |" in printed


def test_a_markdown_file_that_can_not_be_written_stops_the_proxy_before_it_starts(
    confdir, tmp_path
):
    target = tmp_path / "absent" / "summary.md"
    result = run_cli("replay", "--summary-markdown", str(target), confdir=confdir)
    assert_one_line_error(result, f"graph-vcr-proxy: summary Markdown {target}: no such folder")


def test_a_ci_job_summary_in_a_missing_folder_stops_the_proxy_before_it_starts(tmp_path):
    from proxy_addons.cli.launcher import command

    target = tmp_path / "absent" / "step_summary"
    result = subprocess.run(
        command("replay", "--summary-markdown", "-", confdir=tmp_path / "ca"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, STEP_SUMMARY: str(target)},
    )
    assert_one_line_error(result, f"graph-vcr-proxy: summary Markdown {target}: no such folder")
