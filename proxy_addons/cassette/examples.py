"""The documented create example (Graph docs, "Create virtualAppointment"), verbatim.

The bundled cassettes, the demo and the tests all speak from this one copy of it.
"""

from __future__ import annotations

from typing import Any

from vcr.request import Request

from proxy_addons.cassette.cassette import cassette_text

GRAPH_BETA = "https://graph.microsoft.com/beta"
MEETING_ID = "MSpkYzE3Njc0Yy04MWQ5LTRhZGItYmZi"
EXAMPLE_USER = "8b081ef6-4792-4def-b2c9-c363a1bf41d5"
ME_URL = f"{GRAPH_BETA}/me/onlineMeetings/{MEETING_ID}/virtualAppointment"
USERS_URL = f"{GRAPH_BETA}/users/{EXAMPLE_USER}/onlineMeetings/{MEETING_ID}/virtualAppointment"

REQUEST_HEADERS = {
    "Content-Type": "application/json",
    "ETag": 'W/"ZfYdV7Meckeip07P//nwjAAADyI7NQ=="',
}

REQUEST_BODY = """{
    "@odata.type": "#microsoft.graph.virtualAppointment",
    "settings": {
        "@odata.type": "microsoft.graph.virtualAppointmentSettings",
        "allowClientToJoinUsingBrowser": "true"
    },
    "appointmentClients": [
        {
            "@odata.type": "microsoft.graph.virtualAppointmentUser",
            "emailAddress": "gradya@contoso.com",
            "displayName": "Grady Archie",
            "smsCapablePhoneNumber": "123-456-7890"
        }
    ],
    "externalAppointmentId": "AAMkADKnAAA=",
    "externalAppointmentUrl": "https://anyschedulingsystem.com/api/appointments/MkADKnAAA="
}"""

RESPONSE_BODY = """{
    "@odata.type": "#microsoft.graph.virtualAppointment",
    "id": "0c7fda79-ff00-f57f-37e3-28183b6d09b5",
    "settings": {
        "@odata.type": "microsoft.graph.virtualAppointmentSettings",
        "allowClientToJoinUsingBrowser": "true"
    },
    "appointmentClients": [
        {
            "@odata.type": "microsoft.graph.virtualAppointmentUser",
            "emailAddress": "gradya@contoso.com",
            "displayName": "Grady Archie",
            "smsCapablePhoneNumber": "123-456-7890"
        }
    ],
    "externalAppointmentId": "AAMkADKnAAA=",
    "externalAppointmentUrl": "https://anyschedulingsystem.com/api/appointments/MkADKnAAA=",
    "appointmentClientJoinWebUrl": "https://visit.teams.microsoft.com/webrtc-svc/api/route?tid=a796be92-&convId=19:meeting_=True"
}"""

RESPONSE_HEADERS = {"Content-Type": "application/json", "Cache-Control": "no-store"}


def documented_interaction(url: str) -> tuple[Request, dict[str, Any]]:
    """The documented request to ``url`` and the documented 201, as a vcrpy interaction."""
    request = Request("PUT", url, REQUEST_BODY, dict(REQUEST_HEADERS))
    response = {
        "status": {"code": 201, "message": "Created"},
        "headers": {name: [value] for name, value in RESPONSE_HEADERS.items()},
        "body": {"string": RESPONSE_BODY},
    }
    return request, response


BUNDLED = {
    "create-virtualappointment-me.yaml": ME_URL,
    "create-virtualappointment-users.yaml": USERS_URL,
}


def bundled_cassette_texts() -> dict[str, str]:
    """File name -> text of each bundled cassette, as ``cassettes/`` must hold them."""
    return {name: cassette_text([documented_interaction(url)]) for name, url in BUNDLED.items()}
