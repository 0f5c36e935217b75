"""The emulator's state and rules: what a virtualAppointment request does to the store.

Everything here is pure: :func:`handle` takes a frozen :class:`State` and one
:class:`AppointmentRequest` and returns the next state and an :class:`Outcome` (status, body,
ETag, Graph error). The addon only translates flows to requests and outcomes to responses, so
the ETag and precondition rules are tested without a proxy, and the addon can keep each
read-check-write inside one synchronous hook call, which is what makes concurrent PATCHes
safe. Identifiers and ETags are derived from a per-store random ``epoch`` and a revision
counter that every write advances, so an ETag is never reused, not even after a delete and
re-create, and a store reloaded from its file keeps issuing fresh ones.

A meeting can also be addressed by alternate key, ``onlineMeetings(joinWebUrl='...')``. The
store remembers every join URL it has issued (in a created or read appointment, or as the
answer of ``getVirtualAppointmentJoinWebUrl``) and the meeting it issued it for: a join URL it
issued names that meeting; any other join URL names a meeting of its own, keyed by the URL.
The ETag rules themselves are :mod:`proxy_addons.graph.etags`, shared with the fault injector.

Persistence is here too because the file is just the state written down: one JSON document,
replaced atomically (temp file, fsync, ``os.replace``), checked on load by a pydantic model so
that a damaged file is reported, never silently reset.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from proxy_addons.common.files import replace_atomically
from proxy_addons.graph import etags
from proxy_addons.graph.models import ODATA_TYPES, VirtualAppointment, errors_only
from proxy_addons.graph.replies import BAD_REQUEST, CONFLICT_CODE, CONFLICT_MESSAGE
from proxy_addons.graph.routes import Operation, odata_string
from proxy_addons.graph.validation import invalid_body_message, request_problems

Key = tuple[str, str]  # (owner, meeting id): "me" and "users/<id>" are separate owners

ODATA_TYPE = "#" + ODATA_TYPES[VirtualAppointment]
NOT_FOUND_CODE = "itemNotFound"
# Graph documents the 409 and its Retry-After, not an error code; this one is ours.
PROVISIONING_CODE = "TenantProvisioningInProgress"
# Read-only properties: the service owns them, so a body cannot set or change them.
READ_ONLY = frozenset({"id"})


@dataclass(frozen=True)
class Appointment:
    """One stored virtualAppointment, as JSON text so the record is truly immutable."""

    data: str
    etag: str

    def object(self) -> dict[str, Any]:
        return json.loads(self.data)


def _frozen(mapping: Mapping[Key, Appointment]) -> Mapping[Key, Appointment]:
    return MappingProxyType(dict(mapping))


def _frozen_urls(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class State:
    """Every appointment by (owner, meeting id), the owners past their first-create 409, and
    the meeting of each join URL the store has issued."""

    epoch: str
    revision: int = 0
    appointments: Mapping[Key, Appointment] = field(default_factory=lambda: _frozen({}))
    provisioned: frozenset[str] = frozenset()
    join_urls: Mapping[str, str] = field(default_factory=lambda: _frozen_urls({}))

    def get(self, key: Key) -> Appointment | None:
        return self.appointments.get(key)

    def with_appointment(self, key: Key, appointment: Appointment | None) -> State:
        """A new state with ``key`` set (or removed, for None) and the revision advanced."""
        appointments = dict(self.appointments)
        if appointment is None:
            appointments.pop(key, None)
        else:
            appointments[key] = appointment
        return replace(self, revision=self.revision + 1, appointments=_frozen(appointments))

    def with_join_url(self, url: str, meeting_id: str) -> State:
        """A new state that knows ``url`` as issued for ``meeting_id`` (no new revision: no
        appointment changed)."""
        return replace(self, join_urls=_frozen_urls({**self.join_urls, url: meeting_id}))


def new_state() -> State:
    """An empty store with a fresh random epoch (the only impure step; pass it in tests)."""
    return State(epoch=os.urandom(8).hex())


@dataclass(frozen=True)
class AppointmentRequest:
    """What :func:`handle` needs of a request: already routed, checked and authenticated."""

    operation: Operation
    owner: str
    meeting_id: str | None  # None: addressed by ``join_web_url`` (resolved by handle)
    body: bytes | str | None = None
    if_match: str | None = None
    if_none_match: str | None = None
    service_root: str = "https://graph.microsoft.com/beta"  # for @odata.context
    join_web_url: str | None = None  # the alternate key, onlineMeetings(joinWebUrl='...')

    @property
    def key(self) -> Key:
        if self.meeting_id is None:
            raise ValueError("a meeting addressed by join URL has no key before handle()")
        return (self.owner, self.meeting_id)

    @property
    def meeting(self) -> str:
        """The meeting id, a join URL's once :func:`handle` has resolved it."""
        return self.key[1]


@dataclass(frozen=True)
class Outcome:
    """The answer to give: a success (payload/ETag) or a Graph error (code/message)."""

    status: int
    payload: Any = None  # a JSON value for the body, None for no body; never mutated
    etag: str | None = None
    error_code: str | None = None
    message: str = ""
    retry_after: int | None = None


def _error(status: int, code: str, message: str, retry_after: int | None = None) -> Outcome:
    return Outcome(status, error_code=code, message=message, retry_after=retry_after)


# --- derived identifiers ------------------------------------------------------------------


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\0".join(parts).encode()).digest()


def etag_for(state: State) -> str:
    """The ETag of the version the next write creates: an Exchange change-key look-alike."""
    change_key = base64.b64encode(_digest(state.epoch, "etag", str(state.revision))[:22])
    return f'W/"{change_key.decode()}"'


def id_for(state: State) -> str:
    """The GUID of the appointment the next write creates."""
    return str(uuid.UUID(bytes=_digest(state.epoch, "id", str(state.revision))[:16]))


_TENANT = str(uuid.UUID(bytes=_digest("graph-vcr-proxy", "tenant")[:16]))


def join_web_url(meeting_id: str) -> str:
    """A visit.teams.microsoft.com join URL that depends only on the meeting id.

    Stable across owners, restarts and stores, as a real meeting's join URL is.
    """
    token = base64.urlsafe_b64encode(_digest("join", meeting_id)[:18]).decode()
    return (
        "https://visit.teams.microsoft.com/webrtc-svc/api/route"
        f"?tid={_TENANT}&convId=19:meeting_{token}@thread.v2"
    )


# --- preconditions ------------------------------------------------------------------------


def precondition_failure(request: AppointmentRequest, current: Appointment | None) -> bool:
    """The one ETag rule (:func:`proxy_addons.graph.etags.precondition_fails`) on this store."""
    return etags.precondition_fails(
        request.if_match, request.if_none_match, None if current is None else current.etag
    )


# --- meetings addressed by join URL ----------------------------------------------------------


def meeting_for(state: State, join_web_url: str) -> str:
    """The meeting a join URL names: the one the store issued it for; otherwise a meeting of
    its own, keyed by the URL (as the alternate-key literal, so it cannot be taken for an id
    the client chose)."""
    return state.join_urls.get(join_web_url) or f"joinWebUrl={odata_string(join_web_url)}"


def _addressed(state: State, request: AppointmentRequest) -> AppointmentRequest:
    if request.join_web_url is None:
        return request
    return replace(request, meeting_id=meeting_for(state, request.join_web_url))


def _issued_url(request: AppointmentRequest, outcome: Outcome) -> str | None:
    """The join URL an answer hands out, if any: the function's value, or an appointment's."""
    if outcome.error_code is not None or not isinstance(outcome.payload, dict):
        return None
    name = "value" if request.operation is Operation.JOIN_URL else "appointmentClientJoinWebUrl"
    url = outcome.payload.get(name)
    return url if isinstance(url, str) and url else None


def _remember_issued(state: State, request: AppointmentRequest, outcome: Outcome) -> State:
    url = _issued_url(request, outcome)
    if url is None or request.meeting_id is None or state.join_urls.get(url) == request.meeting_id:
        return state
    return state.with_join_url(url, request.meeting_id)


# --- bodies -------------------------------------------------------------------------------


def body_problem(request: AppointmentRequest) -> Outcome | None:
    """400 naming every property that fails strict validation; lenient notes are accepted."""
    errors = errors_only(request_problems(request.operation, request.body))
    if not errors:
        return None
    return _error(400, BAD_REQUEST, invalid_body_message(errors))


def _body_object(request: AppointmentRequest) -> dict[str, Any]:
    if request.body in (None, b"", ""):
        return {}
    data = json.loads(request.body)  # type: ignore[arg-type]
    return {k: v for k, v in data.items() if k not in READ_ONLY}


def _merge(stored: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """OData PATCH: given properties replace stored ones, complex values merge recursively,
    collections are replaced whole."""
    merged = dict(stored)
    for name, value in patch.items():
        if isinstance(value, dict) and isinstance(merged.get(name), dict):
            merged[name] = _merge(merged[name], value)
        else:
            merged[name] = value
    return merged


def _stored_object(
    sent: dict[str, Any], appointment_id: str, meeting_id: str, join_url: str | None
) -> dict[str, Any]:
    """What the service keeps: the client's values as sent, plus what the service adds."""
    stored: dict[str, Any] = {"@odata.type": sent.pop("@odata.type", ODATA_TYPE)}
    stored["id"] = appointment_id
    stored.update(sent)
    if "appointmentClientJoinWebUrl" not in stored:
        stored["appointmentClientJoinWebUrl"] = join_url or join_web_url(meeting_id)
    return stored


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


# --- transitions --------------------------------------------------------------------------


def handle(
    state: State, request: AppointmentRequest, *, provisioning_delay: int = 0
) -> tuple[State, Outcome]:
    """The next state and the answer for one request. ``state`` is returned unchanged
    (the same object) when nothing was written, so callers persist only real changes."""
    problem = body_problem(request)
    if problem is not None:
        return state, problem
    request = _addressed(state, request)
    after, outcome = _transition(state, request, provisioning_delay)
    return _remember_issued(after, request, outcome), outcome


def _transition(
    state: State, request: AppointmentRequest, provisioning_delay: int
) -> tuple[State, Outcome]:
    operation = request.operation
    if operation is Operation.CREATE:
        return _put(state, request, provisioning_delay)
    if operation is Operation.GET:
        return _get(state, request)
    if operation is Operation.UPDATE:
        return _patch(state, request)
    if operation is Operation.DELETE:
        return _delete(state, request)
    if operation is Operation.JOIN_URL:
        return state, _join_url(state, request)
    # The SMS actions: Graph queues the message and answers 202 with no body.
    return state, Outcome(202)


def _not_found(request: AppointmentRequest) -> Outcome:
    return _error(
        404,
        NOT_FOUND_CODE,
        f"The specified object was not found in the store: no virtualAppointment for online "
        f"meeting '{request.meeting_id}' of {request.owner}.",
    )


def _conflict() -> Outcome:
    return _error(412, CONFLICT_CODE, CONFLICT_MESSAGE)


def _get(state: State, request: AppointmentRequest) -> tuple[State, Outcome]:
    current = state.get(request.key)
    if current is None:
        return state, _not_found(request)
    return state, Outcome(200, current.object(), current.etag)


def _put(
    state: State, request: AppointmentRequest, provisioning_delay: int
) -> tuple[State, Outcome]:
    current = state.get(request.key)
    if precondition_failure(request, current):
        return state, _conflict()
    if current is None and provisioning_delay > 0 and request.owner not in state.provisioned:
        provisioned = replace(state, provisioned=state.provisioned | {request.owner})
        return provisioned, _error(
            409,
            PROVISIONING_CODE,
            "The tenant is being provisioned for virtual appointments. Retry the request "
            f"after {provisioning_delay} seconds.",
            retry_after=provisioning_delay,
        )
    etag = etag_for(state)
    if current is None:
        stored = _stored_object(_body_object(request), id_for(state), request.meeting, None)
        status = 201
    else:
        previous = current.object()
        stored = _stored_object(
            _body_object(request),
            previous["id"],
            request.meeting,
            previous.get("appointmentClientJoinWebUrl"),
        )
        status = 200
    appointment = Appointment(_dumps(stored), etag)
    return state.with_appointment(request.key, appointment), Outcome(status, stored, etag)


def _existing(state: State, request: AppointmentRequest) -> Appointment | Outcome:
    """The appointment a PATCH or DELETE acts on, or the error that refuses it: If-Match is
    judged first (any If-Match on a missing appointment is 412), then existence (404)."""
    current = state.get(request.key)
    if precondition_failure(request, current):
        return _conflict()
    if current is None:
        return _not_found(request)
    return current


def _patch(state: State, request: AppointmentRequest) -> tuple[State, Outcome]:
    current = _existing(state, request)
    if isinstance(current, Outcome):
        return state, current
    etag = etag_for(state)
    merged = _merge(current.object(), _body_object(request))
    appointment = Appointment(_dumps(merged), etag)
    return state.with_appointment(request.key, appointment), Outcome(204, etag=etag)


def _delete(state: State, request: AppointmentRequest) -> tuple[State, Outcome]:
    current = _existing(state, request)
    if isinstance(current, Outcome):
        return state, current
    return state.with_appointment(request.key, None), Outcome(204)


def _join_url(state: State, request: AppointmentRequest) -> Outcome:
    """The live replacement function works on any online meeting, appointment or not: the
    stored appointment's URL when there is one, else the meeting's generated URL."""
    current = state.get(request.key)
    stored = current.object().get("appointmentClientJoinWebUrl") if current else None
    url = stored if isinstance(stored, str) else join_web_url(request.meeting)
    context = f"{request.service_root}/$metadata#Edm.String"
    return Outcome(200, {"@odata.context": context, "value": url})


# --- persistence --------------------------------------------------------------------------

FORMAT = "graph-vcr-proxy-state"


class StateFileError(Exception):
    """A state file that cannot be read or written; the message names the file."""


class _StoredAppointment(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    owner: str = Field(min_length=1)
    meeting_id: str = Field(alias="meetingId", min_length=1)
    etag: str = Field(pattern=r'^W/".+"$')
    object: dict[str, Any]


class _StateFile(BaseModel):
    """The file format: versioned, so a later release can read (or refuse) older files."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["graph-vcr-proxy-state"]
    version: Literal[1, 2]  # 2 added joinWebUrls
    epoch: str = Field(min_length=1)
    revision: int = Field(ge=0)
    provisioned: list[str]
    appointments: list[_StoredAppointment]
    join_web_urls: dict[str, str] = Field(default_factory=dict, alias="joinWebUrls")


def dumps_state(state: State) -> str:
    records = [
        {"owner": owner, "meetingId": meeting, "etag": a.etag, "object": a.object()}
        for (owner, meeting), a in sorted(state.appointments.items())
    ]
    document = {
        "format": FORMAT,
        "version": 2,
        "epoch": state.epoch,
        "revision": state.revision,
        "provisioned": sorted(state.provisioned),
        "appointments": records,
        "joinWebUrls": dict(sorted(state.join_urls.items())),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def loads_state(text: str, source: str = "state") -> State:
    """The state a file holds; :class:`StateFileError` (naming ``source``) when it is damaged."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(
            f"{source}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    try:
        parsed = _StateFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "document"
        raise StateFileError(
            f"{source}: not a graph-vcr-proxy state file ({where}: {first['msg']})"
        ) from None
    appointments: dict[Key, Appointment] = {}
    for record in parsed.appointments:
        key = (record.owner, record.meeting_id)
        if key in appointments:
            raise StateFileError(f"{source}: appointment {record.owner}/{record.meeting_id} twice")
        appointments[key] = Appointment(_dumps(record.object), record.etag)
    return State(
        epoch=parsed.epoch,
        revision=parsed.revision,
        appointments=_frozen(appointments),
        provisioned=frozenset(parsed.provisioned),
        join_urls=_frozen_urls(parsed.join_web_urls),
    )


def load_state(path: Path) -> State:
    """The state in ``path``: a fresh store when the file does not exist (or is empty).

    Also refuses a file that could be read but never saved, so that the first write of a
    session does not fail where the user is not looking.
    """
    if path.is_dir():
        raise StateFileError(f"{path}: is a directory, not a state file")
    if not path.parent.is_dir():
        raise StateFileError(f"{path}: directory {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise StateFileError(f"{path}: directory {path.parent} is not writable")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return new_state()
    except (OSError, UnicodeDecodeError) as exc:
        raise StateFileError(f"{path}: cannot read state file ({exc})") from None
    if not text.strip():
        return new_state()
    return loads_state(text, str(path))


def lock_state(path: Path) -> int:
    """Take the state file for this process: a descriptor holding an exclusive lock.

    Two emulators saving one file would each overwrite the other's appointments; the second
    is refused at start instead. The lock is on a sidecar file, because the state file itself
    is replaced (a new inode) on every save. Closing the descriptor releases it.
    """
    lock_path = path.parent / f".{path.name}.lock"
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateFileError(f"{path}: cannot create lock {lock_path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateFileError(
            f"{path}: in use by another graph-vcr-proxy simulate (one process per state file)"
        ) from None
    return fd


def save_state(path: Path, state: State) -> None:
    """Replace ``path`` with ``state`` atomically: readers see the old file or the new one."""
    replace_atomically(path, dumps_state(state).encode("utf-8"))
