"""Guidance: what Graph recommends that a request did not do, as a fixed set of advice.

Not errors (Graph answers these requests), but what Graph's docs ask of a client that is to
behave well in production:

- ``client-request-id``: a GUID the client sends with each request, which Graph echoes and
  logs, so a failed call can be traced with Microsoft support;
- a ``/beta`` URL: beta APIs may change without notice and are not supported in production;
  the live virtual appointment calls (``getVirtualAppointmentJoinWebUrl``, the SMS actions)
  are in v1.0;
- a write (``PUT``, ``PATCH``, ``DELETE``) without ``If-Match``: optimistic concurrency, so a
  write never overwrites a change it has not seen (Graph answers 412 when the ETag is stale);
- an SMS action whose attendee has no phone number in the format the docs require: the SMS
  actions reach attendees with "a valid United States phone number", written as the docs'
  examples write it, E.164 (``+1`` then ten digits).

:func:`advise` is a pure function of the request; nothing here knows mitmproxy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph.etags import CONDITIONAL_METHODS
from proxy_addons.graph.replies import header_value
from proxy_addons.graph.routes import Operation, Route

CLIENT_REQUEST_ID = "client-request-id"
IF_MATCH = "if-match"
BETA = "beta"
SMS_OPERATIONS = frozenset({Operation.SMS, Operation.REMINDER_SMS})
# A United States number in E.164: +1, an area code and an exchange that start with 2-9 (the
# North American Numbering Plan), then four digits.
US_PHONE_NUMBER = re.compile(r"\+1[2-9]\d{2}[2-9]\d{6}")


class Advice(StrEnum):
    """One thing Graph recommends that a request did not do. The values are what the log
    lines, the summary JSON and the Markdown say."""

    NO_CLIENT_REQUEST_ID = "no-client-request-id"
    BETA_URL = "beta-url"
    WRITE_WITHOUT_IF_MATCH = "write-without-if-match"
    SMS_PHONE_NUMBER = "sms-phone-number"

    @property
    def recommendation(self) -> str:
        return RECOMMENDATIONS[self]


RECOMMENDATIONS: Mapping[Advice, str] = {
    Advice.NO_CLIENT_REQUEST_ID: (
        "send a client-request-id header (a GUID per request): Graph echoes and logs it, "
        "so a failed call can be traced"
    ),
    Advice.BETA_URL: (
        "call /v1.0: /beta APIs may change and are not supported in production "
        "(getVirtualAppointmentJoinWebUrl and the SMS actions are in v1.0)"
    ),
    Advice.WRITE_WITHOUT_IF_MATCH: (
        "send If-Match with the ETag last read, so a write never overwrites a change it has "
        "not seen (Graph answers 412 when it is stale)"
    ),
    Advice.SMS_PHONE_NUMBER: (
        "give every attendee a phoneNumber that is a valid United States number in E.164, "
        "+1 and ten digits (e.g. +13125550100): only those get the SMS"
    ),
}


def advise(route: Route, headers: Mapping[str, str], body: JsonBody | None) -> list[Advice]:
    """What Graph recommends that this request did not do, in :class:`Advice` order.

    ``headers``: the request's (any mapping; names in any case). ``body`` is read only for
    an SMS action.
    """
    advice = []
    if not (header_value(headers, CLIENT_REQUEST_ID) or "").strip():
        advice.append(Advice.NO_CLIENT_REQUEST_ID)
    if route.version == BETA:
        advice.append(Advice.BETA_URL)
    if route.method in CONDITIONAL_METHODS and not (header_value(headers, IF_MATCH) or "").strip():
        advice.append(Advice.WRITE_WITHOUT_IF_MATCH)
    if route.operation in SMS_OPERATIONS and not phone_numbers_as_documented(
        None if body is None else body.document
    ):
        advice.append(Advice.SMS_PHONE_NUMBER)
    return advice


def phone_numbers_as_documented(document: Any) -> bool:
    """Whether an SMS action's body names attendees, each with a US E.164 ``phoneNumber``.

    A body that is not the documented shape gets the advice too: it reaches nobody.
    """
    attendees = document.get("attendees") if isinstance(document, dict) else None
    if not isinstance(attendees, list) or not attendees:
        return False
    return all(
        isinstance(attendee, dict)
        and isinstance(attendee.get("phoneNumber"), str)
        and US_PHONE_NUMBER.fullmatch(attendee["phoneNumber"]) is not None
        for attendee in attendees
    )
