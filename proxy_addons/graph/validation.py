"""Which model a request or response body of each operation must satisfy.

The one place that joins routes to models, so the recorder, the emulator and ``validate``
check the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from proxy_addons.common.json_body import JsonBody
from proxy_addons.graph.models import (
    ErrorResponse,
    JoinWebUrlResponse,
    Problem,
    SendVirtualAppointmentReminderSmsBody,
    SendVirtualAppointmentSmsBody,
    VirtualAppointment,
    strict_problems,
)
from proxy_addons.graph.routes import Operation

REQUEST_MODELS: dict[Operation, type[BaseModel]] = {
    Operation.CREATE: VirtualAppointment,
    Operation.UPDATE: VirtualAppointment,
    Operation.SMS: SendVirtualAppointmentSmsBody,
    Operation.REMINDER_SMS: SendVirtualAppointmentReminderSmsBody,
}
RESPONSE_MODELS: dict[Operation, type[BaseModel]] = {
    Operation.CREATE: VirtualAppointment,
    Operation.GET: VirtualAppointment,
    Operation.UPDATE: VirtualAppointment,  # Graph answers 204; a 200 body is the object
    Operation.JOIN_URL: JoinWebUrlResponse,
}


NO_BODY = object()  # an absent or empty body, which is not the JSON document ``null``


Body = JsonBody | bytes | str | None  # already read (``flows.body_of``), or to be read here


def _parse(body: Body) -> tuple[Any, list[Problem]]:
    read = JsonBody.of(body)
    if read.empty:
        return NO_BODY, []
    if read.error is not None:
        return NO_BODY, [Problem("$", "a JSON document", f"unparseable ({read.error})")]
    return read.document, []


def request_problems(operation: Operation | None, body: Body) -> list[Problem]:
    model = REQUEST_MODELS.get(operation) if operation else None
    data, problems = _parse(body)
    if problems or model is None:
        return problems
    if data is NO_BODY:
        return [] if operation is Operation.UPDATE else [Problem("$", "a JSON body", "none")]
    return strict_problems(model, data)


def response_problems(operation: Operation | None, status: int, body: Body) -> list[Problem]:
    data, problems = _parse(body)
    if problems:
        return problems
    if status >= 400:
        model: type[BaseModel] | None = ErrorResponse
    elif data is NO_BODY:
        return []
    else:
        model = RESPONSE_MODELS.get(operation) if operation else None
    if model is None:
        return []
    if data is NO_BODY:
        return [Problem("$", "a Graph error body", "none")]
    return strict_problems(model, data)


def invalid_body_message(errors: Sequence[Problem]) -> str:
    """What a 400 for a body with these errors says: every one, by JSON path."""
    return "Invalid request body: " + "; ".join(str(p) for p in errors) + "."
