"""Pydantic models of the virtualAppointment resource, its live actions, and Graph errors.

The models are lenient the way Graph's own documentation is (every documented example sends
``"allowClientToJoinUsingBrowser": "true"``), so that the documented traffic validates.
:func:`strict_problems` is the strict reading: it lists unknown properties, wrong types and
lenient coercions with the JSON path of each, which is what ``validate`` and the recorder
report. Nothing here knows about mitmproxy or about URLs.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo


class GraphModel(BaseModel):
    """Base of every Graph body: camelCase on the wire, unknown keys kept (Graph adds fields)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True
    )

    odata_type: str | None = Field(default=None, alias="@odata.type")


class VirtualAppointmentUser(GraphModel):
    display_name: str | None = None
    email_address: str | None = None
    sms_capable_phone_number: str | None = None


class VirtualAppointmentSettings(GraphModel):
    allow_client_to_join_using_browser: bool | None = None


class VirtualAppointment(GraphModel):
    id: str | None = None
    appointment_clients: list[VirtualAppointmentUser] | None = None
    appointment_client_join_web_url: str | None = None
    external_appointment_id: str | None = None
    external_appointment_url: str | None = None
    settings: VirtualAppointmentSettings | None = None


class JoinWebUrlResponse(GraphModel):
    """The body of ``getVirtualAppointmentJoinWebUrl``: an ``Edm.String`` wrapper."""

    odata_context: str | None = Field(default=None, alias="@odata.context")
    value: str


class VirtualAppointmentMessageType(StrEnum):
    CONFIRMATION = "confirmation"
    RESCHEDULE = "reschedule"
    CANCELLATION = "cancellation"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class RemindBeforeTimeInMinutesType(StrEnum):
    MINS15 = "mins15"
    MINS30 = "mins30"
    MINS60 = "mins60"
    MINS120 = "mins120"
    MINS1440 = "mins1440"
    UNKNOWN_FUTURE_VALUE = "unknownFutureValue"


class AttendeeNotificationInfo(GraphModel):
    phone_number: str | None = None
    time_zone: str | None = None


class SendVirtualAppointmentSmsBody(GraphModel):
    attendees: list[AttendeeNotificationInfo]
    message_type: VirtualAppointmentMessageType


class SendVirtualAppointmentReminderSmsBody(GraphModel):
    attendees: list[AttendeeNotificationInfo]
    remind_before_time_in_minutes_type: RemindBeforeTimeInMinutesType


class InnerError(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    date: str | None = None
    request_id: str | None = Field(default=None, alias="request-id")
    client_request_id: str | None = Field(default=None, alias="client-request-id")


class ErrorDetail(BaseModel):
    """Graph's ``error`` object. Clients write both ``innerError`` and ``innererror``."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", frozen=True)

    code: str
    message: str
    inner_error: InnerError | None = Field(
        default=None,
        validation_alias=AliasChoices("innerError", "innererror"),
        serialization_alias="innerError",
    )


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    error: ErrorDetail


ODATA_TYPES: dict[type[GraphModel], str] = {
    VirtualAppointment: "microsoft.graph.virtualAppointment",
    VirtualAppointmentSettings: "microsoft.graph.virtualAppointmentSettings",
    VirtualAppointmentUser: "microsoft.graph.virtualAppointmentUser",
}


@dataclass(frozen=True)
class Problem:
    """One finding of a strict check, addressed by JSON path (``$.settings.x``)."""

    path: str
    expected: str
    got: str
    severity: Literal["error", "note"] = "error"

    def __str__(self) -> str:
        return f"{self.path}: expected {self.expected}, got {self.got}"


def _json_path(loc: tuple[int | str, ...]) -> str:
    path = "$"
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _lenient_bool(value: Any) -> bool:
    return isinstance(value, str) and value.lower() in ("true", "false")


def _type_problems(model: type[BaseModel], data: Any) -> list[Problem]:
    try:
        # JSON mode: strict about JSON types (a string is no Boolean) but reads enum values.
        model.model_validate_json(json.dumps(data), strict=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc, kind, got = err["loc"], err["type"], err.get("input")
            if kind == "bool_type" and _lenient_bool(got):
                problems.append(
                    Problem(_json_path(loc), "boolean", f"string {got!r} (accepted)", "note")
                )
            elif kind == "missing":
                problems.append(Problem(_json_path(loc), "a value (required)", "nothing"))
            else:
                expected = err["msg"].removeprefix("Input should be ")
                problems.append(Problem(_json_path(loc), expected, _short(got)))
        return problems
    return []


def _unknown_properties(
    model: type[BaseModel], data: Any, loc: tuple[int | str, ...]
) -> list[Problem]:
    """Keys a strict reader would not know, recursing into nested models."""
    if not isinstance(data, dict):
        return []
    known = _known_keys(model)
    problems: list[Problem] = []
    for key, value in data.items():
        if key not in known:
            problems.append(Problem(_json_path((*loc, key)), "a known property", "unknown"))
            continue
        nested = known[key]
        if nested is None:
            continue
        if isinstance(value, list):
            for i, item in enumerate(value):
                problems += _unknown_properties(nested, item, (*loc, key, i))
        else:
            problems += _unknown_properties(nested, value, (*loc, key))
    return problems


@functools.cache
def _known_keys(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    """Every key a reader accepts for a field of ``model``, with the model nested in that
    field (None for a plain value): worked out once per model, not once per body."""
    return {
        wire: _nested_model(field.annotation)
        for name, field in model.model_fields.items()
        for wire in _wire_names(name, field)
    }


@functools.cache
def _nested_fields(model: type[BaseModel]) -> tuple[tuple[str, type[BaseModel]], ...]:
    """The key and nested model of each field of ``model`` that holds a model."""
    found = (
        (field.alias or name, _nested_model(field.annotation))
        for name, field in model.model_fields.items()
    )
    return tuple((key, nested) for key, nested in found if nested is not None)


def _wire_names(name: str, field: FieldInfo) -> set[str]:
    """Every key under which a reader accepts this field (alias and alias choices)."""
    names = {field.alias or name}
    if isinstance(field.validation_alias, AliasChoices):
        names |= {c for c in field.validation_alias.choices if isinstance(c, str)}
    elif isinstance(field.validation_alias, str):
        names.add(field.validation_alias)
    return names


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None``, ``list[X]`` or ``list[X] | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _odata_type_problems(model: type[BaseModel], data: Any, loc: tuple) -> list[Problem]:
    if not isinstance(data, dict):
        return []
    problems = []
    expected = ODATA_TYPES.get(model)  # type: ignore[call-overload]
    declared = data.get("@odata.type")
    if expected and isinstance(declared, str) and declared.lstrip("#") != expected:
        problems.append(Problem(_json_path((*loc, "@odata.type")), f"#{expected}", declared))
    for key, nested in _nested_fields(model):
        value = data.get(key)
        if value is None:
            continue
        items = enumerate(value) if isinstance(value, list) else [(None, value)]
        for i, item in items:
            sub = (*loc, key) + ((i,) if i is not None else ())
            problems += _odata_type_problems(nested, item, sub)
    return problems


def strict_problems(model: type[BaseModel], data: Any) -> list[Problem]:
    """Everything a strict reader of ``data`` as ``model`` would object to, or accept leniently.

    Errors make a body invalid; notes (``"true"`` for a Boolean) are reported but accepted,
    because Graph's own documentation sends them.
    """
    if not isinstance(data, dict):
        return [Problem("$", "a JSON object", type(data).__name__)]
    return (
        _type_problems(model, data)
        + _unknown_properties(model, data, ())
        + _odata_type_problems(model, data, ())
    )


def errors_only(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if p.severity == "error"]
