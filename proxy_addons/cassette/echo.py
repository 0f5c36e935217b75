"""Echo from the request: a replayed JSON answer that carries what this request sent.

A retired call can no longer be recorded again, so a recording made with one
``externalAppointmentId`` would answer every later create with that one. Echo takes the
listed top-level fields of the replayed JSON response from the request's JSON body instead,
and a recording that opts in may hold placeholders for what a request cannot give
(``{{uuid}}``, ``{{now}}``, ``{{request.path.meetingId}}``...), filled in each time it is
played. Whatever cannot be echoed stays as recorded: a field the request did not send or the
recording does not hold, a request without a JSON object body, a response that is not JSON
(or whose Content-Encoding we cannot decode). Placeholders are filled only where the
recording opts in (its cassette's sidecar or the interaction itself says ``templates``), so
``{{...}}`` text in an ordinary recording is never rewritten.

Where the settings come from, closest winning per key: the interaction's own
``graph_vcr_proxy:`` mapping inside its ``response:`` (a key plain vcrpy ignores and keeps
when it rewrites the file), then the cassette's sidecar ``<cassette file>.echo.json`` (a file
beside it, which neither vcrpy nor our recorder ever rewrites or drops); the fields a run
asks for (``--echo``, the plugin's ``echo=``) are added to them.

Pure: the clock and the uuid source are injected (:class:`Sources`), so tests are exact.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from proxy_addons.common import content_encoding
from proxy_addons.graph.replies import Reply, new_request_id
from proxy_addons.graph.routes import Route

KEY = "graph_vcr_proxy"  # an interaction's own settings, inside its ``response:`` mapping
SIDECAR_SUFFIX = ".echo.json"  # a cassette's settings: ``create.yaml`` -> ``create.yaml.echo.json``
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}\s]*)\s*\}\}")


class Placeholder(StrEnum):
    """What a ``{{name}}`` in an opted-in recording's JSON strings becomes when played."""

    UUID = "uuid"  # a new random GUID for each occurrence
    NOW = "now"  # the time of the answer, UTC, e.g. 2026-12-06T23:31:31Z
    MEETING_ID = "request.path.meetingId"  # the onlineMeeting id in the request's URL
    USER_ID = "request.path.userId"  # the user id or UPN after /users/ (lowercased)
    OWNER = "request.path.owner"  # me, users/{id}, communications or app
    JOIN_WEB_URL = "request.path.joinWebUrl"  # the meeting's alternate key, when it has one


class EchoError(ValueError):
    """Echo settings that can't be used; ``str()`` is the one line a user sees."""


class Flags(BaseModel):
    """The settings a recording states (an interaction's ``graph_vcr_proxy:``, a sidecar);
    a key left out inherits from further away."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")

    echo: list[Annotated[str, Field(min_length=1)]] | None = None
    templates: bool | None = None


@dataclass(frozen=True)
class Echo:
    """What one replayed answer gets: the fields taken from the request, and whether its
    placeholders are filled."""

    fields: tuple[str, ...] = ()
    templates: bool = False

    @property
    def active(self) -> bool:
        return bool(self.fields) or self.templates

    def under(self, flags: Flags | None) -> Echo:
        """These settings overridden, key by key, by the closer ``flags``."""
        if flags is None:
            return self
        return Echo(
            tuple(flags.echo) if flags.echo is not None else self.fields,
            flags.templates if flags.templates is not None else self.templates,
        )

    def adding(self, fields: Iterable[str]) -> Echo:
        return dataclasses.replace(self, fields=tuple(dict.fromkeys((*self.fields, *fields))))


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Sources:
    """Where new values come from: a test passes its own clock and uuids."""

    now: Callable[[], datetime] = _utc_now
    uuid: Callable[[], str] = new_request_id


def path_values(route: Route | None) -> dict[str, str]:
    """The ``request.path.*`` placeholders a request's route can fill."""
    if route is None:
        return {}
    values = {
        Placeholder.MEETING_ID: route.meeting_id,
        Placeholder.USER_ID: route.user,
        Placeholder.OWNER: route.owner,
        Placeholder.JOIN_WEB_URL: route.join_web_url,
    }
    return {str(name): value for name, value in values.items() if value is not None}


def render(
    body: bytes,
    echo: Echo,
    request: Any,
    route: Route | None = None,
    sources: Sources = Sources(),
) -> bytes:
    """``body`` (a recorded JSON response) with its placeholders filled (if ``echo`` says
    templates) and then its ``echo.fields`` taken from ``request`` (the request's parsed JSON
    body), each one only where the recording holds it and the request sent it. The bytes
    come back unchanged (the very object) when nothing changes, a body that is not JSON (or
    nested deeper than Python's json reads) included; else compact ASCII JSON (a lone
    surrogate a client sent as ``\\ud800`` stays an escape), keys in their recorded order."""
    if not echo.active:
        return body
    try:
        document = json.loads(body.decode("utf-8"))
        changed = False
        if echo.templates:
            document, changed = _filled(document, _Filler(path_values(route), sources))
        if echo.fields and isinstance(document, dict) and isinstance(request, dict):
            for name in echo.fields:
                if (
                    name in document
                    and name in request
                    and not _same(document[name], request[name])
                ):
                    document[name] = request[name]
                    changed = True
        return json.dumps(document, separators=(",", ":")).encode("ascii") if changed else body
    except (ValueError, RecursionError):
        return body


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON, where ``1``, ``1.0`` and ``true`` are three values (Python's ``==``
    says they are one)."""
    return type(a) is type(b) and json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@dataclass
class _Filler:
    paths: Mapping[str, str]
    sources: Sources
    _now: str | None = field(default=None)

    def __call__(self, match: re.Match[str]) -> str:
        name = match.group(1)
        if name == Placeholder.UUID:
            return self.sources.uuid()
        if name == Placeholder.NOW:
            if self._now is None:  # one time for the whole answer
                self._now = self.sources.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            return self._now
        return self.paths.get(name, match.group(0))  # nothing to fill it with: as recorded


def _filled(value: Any, fill: _Filler) -> tuple[Any, bool]:
    """``value`` with the placeholders in its strings filled (keys stay as recorded)."""
    if isinstance(value, str):
        filled = _PLACEHOLDER.sub(fill, value)
        return filled, filled != value
    if isinstance(value, list):
        items = [_filled(v, fill) for v in value]
        return [v for v, _ in items], any(c for _, c in items)
    if isinstance(value, dict):
        pairs = {k: _filled(v, fill) for k, v in value.items()}
        return {k: v for k, (v, _) in pairs.items()}, any(c for _, c in pairs.values())
    return value, False


def unknown_placeholders(body: bytes) -> list[str]:
    """The ``{{...}}`` in ``body`` that name no :class:`Placeholder`, each once."""
    text = body.decode("utf-8", errors="replace")
    known = {str(p) for p in Placeholder}
    return list(dict.fromkeys(m.group(0) for m in _PLACEHOLDER.finditer(text) if m[1] not in known))


def echoed_reply(
    reply: Reply,
    echo: Echo,
    request: Any,
    route: Route | None = None,
    sources: Sources = Sources(),
) -> Reply:
    """``reply`` with :func:`render` applied to its content: a body stored compressed is
    decoded, rendered and compressed again with its own Content-Encoding, one under a coding
    we cannot decode is left as recorded. Content-Length follows the new body (it is set
    where the reply becomes a response); every other header, ETag included, stays."""
    if not echo.active or not reply.body:
        return reply
    header = content_encoding.header_of(reply.headers)
    examined = content_encoding.examine(reply.body, header)
    if examined.form is content_encoding.Form.UNKNOWN:
        return reply
    content = render(examined.content, echo, request, route, sources)
    if content is examined.content:
        return reply
    if examined.form is content_encoding.Form.ENCODED:
        content = content_encoding.encode(content, content_encoding.codings(header))
    return dataclasses.replace(reply, body=content)


# --- where the settings of each recorded interaction come from ----------------------------


class Recorded(Protocol):
    """What is read of a recorded interaction (``cassette.Interaction``)."""

    @property
    def source(self) -> Path: ...
    @property
    def position(self) -> int: ...
    def response_value(self, key: str) -> Any: ...
    @property
    def reply(self) -> Reply: ...
    @property
    def label(self) -> str: ...


def sidecar_of(cassette: Path) -> Path:
    return cassette.with_name(cassette.name + SIDECAR_SUFFIX)


def read_sidecar(path: Path) -> Flags | None:
    """A cassette's sidecar settings, None when it has none; EchoError naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise EchoError(f"{path}: cannot be read: {exc}") from None
    try:
        return Flags.model_validate(json.loads(text))
    except ValueError as exc:  # JSONDecodeError and pydantic's ValidationError alike
        raise EchoError(f"{path}: {_problem(exc)}") from None
    except RecursionError:  # Python's json reads nested arrays and objects by recursion
        raise EchoError(f"{path}: not JSON this proxy reads: nested too deep") from None


def _problem(exc: ValueError) -> str:
    if isinstance(exc, PydanticValidationError):
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    return f"not JSON: {exc}"


@dataclass(frozen=True)
class EchoRules:
    """The echo of every interaction of a replayed cassette: the run's fields, each
    cassette's sidecar and each interaction's own settings. Made once when the cassette is
    loaded; looking one up is a dictionary lookup or two."""

    run: Echo = Echo()
    by_cassette: Mapping[Path, Echo] = field(default_factory=dict)
    by_interaction: Mapping[tuple[Path, int], Echo] = field(default_factory=dict)

    def of(self, interaction: Recorded) -> Echo:
        own = self.by_interaction.get((interaction.source, interaction.position))
        if own is not None:
            return own
        return self.by_cassette.get(interaction.source, self.run)

    @classmethod
    def build(cls, interactions: Iterable[Recorded], fields: Iterable[str] = ()) -> EchoRules:
        """The rules for ``interactions`` with the run's ``fields`` added to each; EchoError
        for a bad sidecar or interaction setting, or a placeholder no one can fill."""
        fields = tuple(fields)
        if not all(fields):
            raise EchoError("echo: a field name must not be empty")
        run = Echo().adding(fields)
        recorded: dict[Path, Echo] = {}  # each cassette's sidecar, before the run's fields
        by_cassette: dict[Path, Echo] = {}
        by_interaction: dict[tuple[Path, int], Echo] = {}
        for interaction in interactions:
            source = interaction.source
            if source not in recorded:
                recorded[source] = Echo().under(read_sidecar(sidecar_of(source)))
                by_cassette[source] = recorded[source].adding(fields)
            echo = by_cassette[source]
            own = interaction.response_value(KEY)
            if own is not None:
                echo = recorded[source].under(_flags(interaction, own)).adding(fields)
                by_interaction[(source, interaction.position)] = echo
            if echo.templates:
                _check_placeholders(interaction)
        by_cassette = {s: e for s, e in by_cassette.items() if e != run}
        return cls(run, by_cassette, by_interaction)


def _flags(interaction: Recorded, value: Any) -> Flags:
    try:
        return Flags.model_validate(value)
    except PydanticValidationError as exc:
        raise EchoError(f"{interaction.label}: response.{KEY}: {_problem(exc)}") from None


def _check_placeholders(interaction: Recorded) -> None:
    reply = interaction.reply
    content = content_encoding.readable(reply.body, content_encoding.header_of(reply.headers))
    unknown = unknown_placeholders(content)
    if unknown:
        known = ", ".join(f"{{{{{p}}}}}" for p in Placeholder)
        raise EchoError(
            f"{interaction.label}: unknown placeholder {', '.join(unknown)} in a recording "
            f"that opts in to templates; known: {known}"
        )
