"""Microsoft's generated Graph SDK and Kiota's URL forms through a real proxy, end to end.

msgraph-sdk's own request builders (``GraphServiceClient``, a static bearer token, its httpx
client pointed at the proxy) call the live actions the way they always do, with ``()`` on the
function and under /me, /users/{id} and /communications; msgraph-core's ``GraphClientFactory``
pipeline sends the beta SDK's alternate-key and /app forms, as Kiota expands its templates.
msgraph-beta-sdk (too large for the test extra) is used when it is installed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from helpers import WORK_TENANT, StaticToken, graph_sdk, jwt, kiota_url, proxied
from kiota_abstractions.authentication import BaseBearerTokenAuthenticationProvider
from msgraph.generated.models.attendee_notification_info import AttendeeNotificationInfo
from msgraph.generated.models.remind_before_time_in_minutes_type import (
    RemindBeforeTimeInMinutesType,
)
from msgraph.generated.models.virtual_appointment_message_type import (
    VirtualAppointmentMessageType,
)
from msgraph.generated.users.item.online_meetings.item.send_virtual_appointment_reminder_sms.send_virtual_appointment_reminder_sms_post_request_body import (  # noqa: E501
    SendVirtualAppointmentReminderSmsPostRequestBody,
)
from msgraph.generated.users.item.online_meetings.item.send_virtual_appointment_sms.send_virtual_appointment_sms_post_request_body import (  # noqa: E501
    SendVirtualAppointmentSmsPostRequestBody,
)
from msgraph_core import APIVersion, GraphClientFactory

from proxy_addons.cassette import examples
from proxy_addons.cli.launcher import RunningProxy
from proxy_addons.graph.routes import GRAPH_HOSTS, odata_string

pytestmark = [
    pytest.mark.e2e,
    # The generated builders warn about their own deprecated configuration classes.
    pytest.mark.filterwarnings("ignore::DeprecationWarning:msgraph"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:kiota_abstractions"),
]

MEETING = examples.MEETING_ID
UPN = "grady.archie@contoso.com"
DELEGATED = jwt(tid=WORK_TENANT, scp="OnlineMeetings.ReadWrite VirtualAppointmentNotification.Send")
AUTH = {"Authorization": f"Bearer {DELEGATED}"}
JSON = {**AUTH, "Content-Type": "application/json"}
PIPELINE: dict[str, Any] = {"extensions": {"kiota_request_options": {}}}
PHONE = "+15555550100"
SMS = {"attendees": [{"phoneNumber": PHONE}], "messageType": "confirmation"}
REMINDER = {"attendees": [{"phoneNumber": PHONE}], "remindBeforeTimeInMinutesType": "mins15"}
TEAMS_URL = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NzQ1@thread.v2/0"
    "?context=%7b%22Tid%22%3a%22a796be92%22%7d"
)
# Templates from msgraph-beta-sdk 1.66's request builders (see test_routes.py).
JOIN = "getVirtualAppointmentJoinWebUrl()"
ME_BY_ID = "{+baseurl}/me/onlineMeetings/{onlineMeeting%2Did}/"
ME_BY_KEY = "{+baseurl}/me/onlineMeetings(joinWebUrl='{joinWebUrl}')/"
APP_BY_ID = "{+baseurl}/app/onlineMeetings/{onlineMeeting%2Did}/"
APP_BY_KEY = "{+baseurl}/app/onlineMeetings(joinWebUrl='{joinWebUrl}')/"
COMMUNICATIONS_BY_KEY = "{+baseurl}/communications/onlineMeetings(joinWebUrl='{joinWebUrl}')/"


def sms_body() -> SendVirtualAppointmentSmsPostRequestBody:
    return SendVirtualAppointmentSmsPostRequestBody(
        attendees=[AttendeeNotificationInfo(phone_number=PHONE)],
        message_type=VirtualAppointmentMessageType.Confirmation,
    )


def reminder_body() -> SendVirtualAppointmentReminderSmsPostRequestBody:
    return SendVirtualAppointmentReminderSmsPostRequestBody(
        attendees=[AttendeeNotificationInfo(phone_number=PHONE)],
        remind_before_time_in_minutes_type=RemindBeforeTimeInMinutesType.Mins15,
    )


def summary_of(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


# --- msgraph-sdk's request builders -------------------------------------------------------


def test_msgraph_sdk_calls_each_live_action_on_every_cloud_and_owner_in_simulate(
    start_proxy, tmp_path
):
    summary = tmp_path / "summary.json"
    proxy = start_proxy(
        "simulate",
        "--fault",
        "throttle:route=getVirtualAppointmentJoinWebUrl,times=1,retry-after=1",
        "--summary-json",
        str(summary),
    )

    async def session() -> list[tuple[str, str]]:
        answers = []
        for host in sorted(GRAPH_HOSTS):
            async with graph_sdk(proxy, f"https://{host}/v1.0", DELEGATED) as client:
                owners = (
                    client.me.online_meetings,
                    client.users.by_user_id(UPN).online_meetings,
                    client.communications.online_meetings,
                )
                for meetings in owners:
                    meeting = meetings.by_online_meeting_id(MEETING)
                    got = await meeting.get_virtual_appointment_join_web_url.get()
                    assert got is not None and got.value
                    await meeting.send_virtual_appointment_sms.post(sms_body())
                    await meeting.send_virtual_appointment_reminder_sms.post(reminder_body())
                    answers.append((got.additional_data["@odata.context"], got.value))
        return answers

    answers = asyncio.run(session())
    assert proxy.stop() == 0
    assert [context for context, _ in answers] == [
        f"https://{host}/v1.0/$metadata#Edm.String" for host in sorted(GRAPH_HOSTS) for _ in "abc"
    ]
    assert len({url for _, url in answers}) == 1  # one meeting, whoever asks
    counts = summary_of(summary)
    assert set(counts["routes"]) == {"join-url", "sms", "reminder-sms"}
    assert counts["routes"]["join-url"]["emulator"] == 12
    assert counts["routes"]["join-url"]["fault"] == 1  # retried by msgraph-core's handler
    assert counts["routes"]["sms"]["emulator"] == counts["routes"]["reminder-sms"]["emulator"] == 12
    assert counts["faults"] == {"throttle": 1}


def test_a_cassette_recorded_in_the_documented_spelling_answers_the_sdks_spelling(
    start_proxy, client_for, tmp_path
):
    upstream = start_proxy("simulate", "--reverse", "--no-summary")
    cassette = tmp_path / "live-actions.yaml"
    recorder = start_proxy(
        "record", "--cassette", str(cassette), "--upstream", upstream.url, "--no-summary"
    )
    client = client_for(recorder)
    base = "https://graph.microsoft.com/v1.0"
    recorded = client.get(
        f"{base}/users/{UPN}/onlineMeetings/{MEETING}/getVirtualAppointmentJoinWebUrl",
        headers=AUTH,
    )
    sms = client.post(
        f"{base}/communications/onlineMeetings/{MEETING}/sendVirtualAppointmentSms",
        json=SMS,
        headers=JSON,
    )
    reminder = client.post(
        f"{base}/me/onlineMeetings/{MEETING}/sendVirtualAppointmentReminderSms",
        json=REMINDER,
        headers=JSON,
    )
    assert (recorded.status_code, sms.status_code, reminder.status_code) == (200, 202, 202)
    assert recorder.stop() == 0

    summary = tmp_path / "summary.json"
    replay = start_proxy("replay", "--cassette", str(cassette), "--summary-json", str(summary))

    async def session() -> str | None:
        async with graph_sdk(replay, base, DELEGATED) as sdk:
            got = await (
                sdk.users.by_user_id(UPN)
                .online_meetings.by_online_meeting_id(MEETING)
                .get_virtual_appointment_join_web_url.get()
            )
            meeting = sdk.communications.online_meetings.by_online_meeting_id(MEETING)
            await meeting.send_virtual_appointment_sms.post(sms_body())
            mine = sdk.me.online_meetings.by_online_meeting_id(MEETING)
            await mine.send_virtual_appointment_reminder_sms.post(reminder_body())
            return got.value if got else None

    assert asyncio.run(session()) == recorded.json()["value"]
    assert replay.stop() == 0
    counts = summary_of(summary)
    assert counts["answered_by"]["replay"] == 3
    assert counts["answered_by"]["miss"] == 0


# --- the beta SDK's alternate key and /app, sent by msgraph-core's pipeline ---------------


def test_a_meeting_addressed_by_its_join_url_is_the_meeting_the_emulator_issued_it_for(
    start_proxy,
):
    proxy = start_proxy("simulate")

    async def session() -> None:
        client = GraphClientFactory.create_with_default_middleware(
            api_version=APIVersion.beta, client=proxied(proxy)
        )
        async with client:

            async def join_url(url: str) -> str:
                answer = await client.get(url, headers=AUTH, **PIPELINE)
                assert answer.status_code == 200, answer.text
                return answer.json()["value"]

            issued = await join_url(kiota_url(ME_BY_ID + JOIN, meeting=MEETING))
            by_key = kiota_url(ME_BY_KEY + JOIN, join_web_url=issued)
            assert await join_url(by_key) == issued
            body = json.dumps({"appointmentClientJoinWebUrl": "https://example.test/visit/1"})
            created = await client.put(examples.ME_URL, content=body, headers=JSON, **PIPELINE)
            assert created.status_code == 201
            assert await join_url(by_key) == "https://example.test/visit/1"  # the same meeting
            # OData's own escaping (quotes doubled, / and : as they are, no "()") is the same key
            odata = odata_string(quote(issued, safe=":/@"))
            spelled = f"{examples.GRAPH_BETA}/me/onlineMeetings(joinWebUrl={odata})"
            assert await join_url(spelled + "/getVirtualAppointmentJoinWebUrl") == (
                "https://example.test/visit/1"
            )
            # a join URL the emulator never issued names a meeting of its own
            own = await join_url(kiota_url(ME_BY_KEY + JOIN, join_web_url=TEAMS_URL))
            assert own not in (issued, "https://example.test/visit/1")
            actions = [
                (APP_BY_KEY + "sendVirtualAppointmentSms", SMS),
                (COMMUNICATIONS_BY_KEY + "sendVirtualAppointmentReminderSms", REMINDER),
                (APP_BY_ID + "sendVirtualAppointmentReminderSms", REMINDER),
            ]
            for template, payload in actions:
                url = kiota_url(template, meeting=MEETING, join_web_url=TEAMS_URL)
                sent = await client.post(url, json=payload, headers=JSON, **PIPELINE)
                assert sent.status_code == 202, (url, sent.text)

    asyncio.run(session())


def test_a_join_url_key_recorded_as_kiota_spells_it_replays_in_odatas_spelling(
    start_proxy, tmp_path
):
    upstream = start_proxy("simulate", "--reverse", "--no-summary")
    cassette = tmp_path / "by-key.yaml"
    recorder = start_proxy(
        "record", "--cassette", str(cassette), "--upstream", upstream.url, "--no-summary"
    )
    kiota = [
        ("GET", kiota_url(APP_BY_KEY + JOIN, join_web_url=TEAMS_URL), None),
        (
            "POST",
            kiota_url(COMMUNICATIONS_BY_KEY + "sendVirtualAppointmentSms", join_web_url=TEAMS_URL),
            SMS,
        ),
    ]
    key = odata_string(quote(TEAMS_URL, safe=":/@"))
    odata = [
        (
            "GET",
            f"{examples.GRAPH_BETA}/APP/onlineMeetings(joinWebUrl={key})/getVirtualAppointmentJoinWebUrl",
            None,
        ),
        (
            "POST",
            f"{examples.GRAPH_BETA}/communications/OnlineMeetings(JoinWebUrl={key})/sendVirtualAppointmentSms",
            SMS,
        ),
    ]

    async def send(proxy: RunningProxy, calls: list[tuple[str, str, Any]]) -> list[httpx.Response]:
        client = GraphClientFactory.create_with_default_middleware(
            api_version=APIVersion.beta, client=proxied(proxy)
        )
        async with client:
            return [
                await client.request(method, url, json=body, headers=JSON, **PIPELINE)
                for method, url, body in calls
            ]

    recorded = asyncio.run(send(recorder, kiota))
    assert [r.status_code for r in recorded] == [200, 202]
    assert recorder.stop() == 0
    summary = tmp_path / "summary.json"
    replay = start_proxy("replay", "--cassette", str(cassette), "--summary-json", str(summary))
    replayed = asyncio.run(send(replay, odata))
    assert [r.status_code for r in replayed] == [200, 202]
    assert replayed[0].json()["value"] == recorded[0].json()["value"]
    assert replay.stop() == 0
    assert summary_of(summary)["answered_by"]["replay"] == 2


# --- msgraph-beta-sdk, when installed -----------------------------------------------------


def test_msgraph_beta_sdk_builders_for_the_alternate_key_and_app_reach_simulate(start_proxy):
    beta = pytest.importorskip("msgraph_beta", reason="msgraph-beta-sdk is not installed")
    from msgraph_beta.generated.models.attendee_notification_info import (
        AttendeeNotificationInfo as BetaAttendee,
    )
    from msgraph_beta.generated.models.virtual_appointment_message_type import (
        VirtualAppointmentMessageType as BetaMessageType,
    )
    from msgraph_beta.generated.users.item.online_meetings.item.send_virtual_appointment_sms.send_virtual_appointment_sms_post_request_body import (  # noqa: E501
        SendVirtualAppointmentSmsPostRequestBody as BetaSmsBody,
    )
    from msgraph_beta.graph_request_adapter import GraphRequestAdapter as BetaAdapter
    from msgraph_beta.graph_request_adapter import options as beta_options

    proxy = start_proxy("simulate")

    async def session() -> tuple[str | None, str | None]:
        http_client = GraphClientFactory.create_with_default_middleware(
            api_version=APIVersion.beta, client=proxied(proxy), options=beta_options
        )
        adapter = BetaAdapter(
            BaseBearerTokenAuthenticationProvider(StaticToken(DELEGATED)), client=http_client
        )
        adapter.base_url = examples.GRAPH_BETA
        client = beta.GraphServiceClient(request_adapter=adapter)
        async with http_client:
            by_id = client.me().online_meetings.by_online_meeting_id(MEETING)
            issued = await by_id.get_virtual_appointment_join_web_url.get()
            assert issued is not None and issued.value
            by_key = client.me().online_meetings_with_join_web_url(issued.value)
            again = await by_key.get_virtual_appointment_join_web_url.get()
            body = BetaSmsBody(
                attendees=[BetaAttendee(phone_number=PHONE)],
                message_type=BetaMessageType.Confirmation,
            )
            app = client.app.online_meetings.by_online_meeting_id(MEETING)
            await app.send_virtual_appointment_sms.post(body)
            keyed = client.communications.online_meetings_with_join_web_url(TEAMS_URL)
            await keyed.send_virtual_appointment_sms.post(body)
            return issued.value, again.value if again else None

    issued, again = asyncio.run(session())
    assert again == issued
