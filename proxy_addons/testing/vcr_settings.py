"""What a test asks of the proxy, in pytest-recording's conventions, checked and made arguments.

A test's settings come from the ``graph_vcr_config`` fixture (defaults a conftest can
override) and its ``graph_vcr`` markers (module, class, function, ``pytestmark`` too), the
closest marker winning per key, as pytest-recording merges ``vcr_config`` and ``vcr``
markers. :func:`plan` turns them into the mode and command-line arguments the session proxy
is switched to (``session.py``), with the cassette found where pytest-recording would put it:
``<test file's folder>/cassettes/<module name>/<test name>.yaml``.

Pure: no pytest, no mitmproxy (the plugin must stay light to import).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any

from proxy_addons.cassette import match_rule
from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.common.files import MAX_REPLACED_NAME, cut_to_size, impossible_name, name_size
from proxy_addons.options.cassette import (
    CASSETTE,
    ECHO,
    IGNORE_JSON_PATHS,
    MATCH_ON,
    MATCHERS,
    PLAYBACK_REPEATS,
)
from proxy_addons.options.listen import PROCESS
from proxy_addons.options.proxy import ALLOW_HOSTS, BLOCK_NETWORK, FAULT_SEED, FAULT_SPECS
from proxy_addons.options.record import RECORD_MODE, REDACT_FIELDS, REDACT_HEADERS, UPSTREAM
from proxy_addons.options.replay import MATCH_BODY
from proxy_addons.options.simulate import REQUIRE_AUTH

# pytest-recording's rule: each of these in a test's name becomes "-" in its cassette's name.
UNSAFE_IN_FILE_NAMES = "<>?%*:|\"'/\\"
SUFFIX = ".yaml"
# A cassette is rewritten through a temporary file beside it (``files.temp_file_beside``):
# its name must leave room for that file's decoration within the file system's 255 bytes.
MAX_NAME = MAX_REPLACED_NAME
# Command-line arguments that change the proxy process itself, not what it serves: a test
# that passes them in ``args`` gets a proxy of its own. The value: whether they take one.
# Everything else in ``args`` goes to the proxy, whose parser refuses, in one line, what a
# test may not ask for (``session.checked_arguments``): abbreviations, --help, an option the
# plugin already set (the cassette), --reverse, --web..., a file outside the session root.
START_ARGUMENTS = {row.flag: row.takes_value for row in PROCESS if row.flag is not None}


class GraphVcrError(ValueError):
    """A test's graph_vcr settings can't be used; ``str()`` is the one line the test fails with."""


class ProxyMode(StrEnum):
    REPLAY = "replay"  # the cassette, recorded into as the record mode says
    RECORD = "record"  # the same, but recording ("once") unless a record mode is given
    SIMULATE = "simulate"  # the stateful emulator


@dataclass(frozen=True)
class Settings:
    """The merged ``graph_vcr`` keys of one test (see the README's table)."""

    mode: ProxyMode = ProxyMode.REPLAY
    cassette: str | None = None
    record_mode: RecordMode | None = None
    upstream: str | None = None
    faults: tuple[str, ...] = ()
    seed: int | None = None
    allow_misses: bool = False
    match_body: bool = True
    redact_headers: tuple[str, ...] = ()
    redact_fields: tuple[str, ...] = ()
    allow_anonymous: bool = False
    allowed_hosts: tuple[str, ...] = ()  # hosts the proxy may reach besides loopback
    allow_playback_repeats: bool = False  # vcrpy's: the last answer to a request repeats
    assert_all_played: bool = False  # the test fails if a recorded interaction was not played
    echo: tuple[str, ...] = ()  # fields of a replayed JSON answer taken from the request
    # The match rule (cassette/match_rule.py): vcrpy's match_on names (None: the default),
    # JSON paths ignored in bodies, custom vcrpy matchers as (name, "module:qualname").
    match_on: tuple[str, ...] | None = None
    ignore_json_paths: tuple[str, ...] = ()
    matchers: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()


KEYS = tuple(Settings.__dataclass_fields__)


def merge(config: Mapping[str, Any], markers: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``config`` overridden by each marker's keyword arguments, closest marker last.

    ``markers`` come closest first, as pytest's ``iter_markers`` yields them.
    """
    merged = dict(config)
    for kwargs in reversed(list(markers)):
        merged.update(kwargs)
    return merged


def settings_of(merged: Mapping[str, Any]) -> Settings:
    unknown = sorted(set(merged) - set(KEYS))
    if unknown:
        raise GraphVcrError(
            f"graph_vcr: unknown argument {', '.join(map(repr, unknown))}; "
            f"allowed: {', '.join(KEYS)}"
        )
    values = dict(merged)
    try:
        values["mode"] = ProxyMode(values.get("mode", ProxyMode.REPLAY))
        if values.get("record_mode") is not None:
            values["record_mode"] = RecordMode(values["record_mode"])
    except ValueError as exc:
        raise GraphVcrError(f"graph_vcr: {exc}") from None
    for key in ("faults", "redact_headers", "redact_fields", "allowed_hosts", "echo", "args"):
        if key in values:
            values[key] = _strings(key, values[key])
    flags = ("allow_misses", "match_body", "allow_anonymous", "allow_playback_repeats")
    for key in (*flags, "assert_all_played"):
        if key in values and not isinstance(values[key], bool):
            raise GraphVcrError(f"graph_vcr: {key} must be True or False, not {values[key]!r}")
    for key in ("cassette", "upstream"):
        if values.get(key) is not None and not isinstance(values[key], str | PurePath):
            raise GraphVcrError(f"graph_vcr: {key} must be a string, not {values[key]!r}")
    if values.get("assert_all_played") and values["mode"] is ProxyMode.SIMULATE:
        raise GraphVcrError("graph_vcr: assert_all_played needs a cassette (mode replay or record)")
    if values.get("echo") and values["mode"] is ProxyMode.SIMULATE:
        raise GraphVcrError("graph_vcr: echo needs a cassette (mode replay or record)")
    seed = values.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise GraphVcrError(f"graph_vcr: seed must be an integer, not {seed!r}")
    values.update(_match_settings(values))
    return Settings(**values)


def _match_settings(values: Mapping[str, Any]) -> dict[str, Any]:
    """``match_on``, ``ignore_json_paths`` and ``matchers`` checked as the proxy will read
    them: the rule is made here once, so a bad name, path or matcher fails the test with one
    line before the proxy is asked. ``matchers`` maps names to functions (or
    ``module:function`` strings), as vcrpy's ``register_matcher``; each function becomes
    the ``module:qualname`` the proxy process imports it by."""
    found: dict[str, Any] = {}
    match_on = values.get("match_on")
    if isinstance(match_on, str):  # "method,path", as --match-on takes it
        match_on = [name.strip() for name in match_on.split(",")]
    if match_on is not None:
        found["match_on"] = _strings("match_on", match_on)
    if "ignore_json_paths" in values:
        found["ignore_json_paths"] = _strings("ignore_json_paths", values["ignore_json_paths"])
    given = values.get("matchers") or {}
    if not isinstance(given, Mapping):
        raise GraphVcrError(
            f"graph_vcr: matchers must map names to functions, as vcrpy's register_matcher, "
            f"not {given!r}"
        )
    try:
        registered = [match_rule.matcher(name, value) for name, value in given.items()]
        match_rule.MatchRule.of(
            found.get("match_on"), found.get("ignore_json_paths", ()), registered
        )
    except match_rule.MatchRuleError as exc:
        raise GraphVcrError(f"graph_vcr: {exc}") from None
    found["matchers"] = tuple((m.name, m.spec) for m in registered)
    return found


def match_arguments(settings: Settings, *, replay: bool = True) -> tuple[str, ...]:
    """The proxy's command-line arguments for the test's match rule (``record`` has no
    ``--ignore-body``: ``match_body=False`` is then match_on without body)."""
    names, body = settings.match_on, ()
    if replay:
        body = MATCH_BODY.arguments(settings.match_body)
    elif not settings.match_body:
        names = tuple(n for n in names or match_rule.DEFAULT_MATCH_ON if n != "body")
    return (
        *body,
        *MATCH_ON.arguments(None if names is None else ",".join(names)),
        *IGNORE_JSON_PATHS.arguments(settings.ignore_json_paths),
        *MATCHERS.arguments([f"{name}={spec}" for name, spec in settings.matchers]),
    )


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):  # faults="throttle" would otherwise be 8 one-letter specs
        return (value,)
    if not isinstance(value, Iterable) or not all(isinstance(v, str | int) for v in value):
        raise GraphVcrError(f"graph_vcr: {key} must be a list of strings, not {value!r}")
    return tuple(str(v) for v in value)


def default_cassette_name(test_name: str, class_name: str | None = None) -> str:
    """pytest-recording's name: ``Class.test`` or ``test``, made safe for a file name.

    A name too long for the file system (a long parametrized id) keeps its start, cut
    between characters, and ends with the MD5 of the whole name, so that two long ids that
    differ only at their end still get two cassettes.
    """
    name = f"{class_name}.{test_name}" if class_name else test_name
    for char in UNSAFE_IN_FILE_NAMES:
        name = name.replace(char, "-")
    problem = impossible_name(name + SUFFIX)
    if problem is not None:
        raise GraphVcrError(f"no cassette name can be made of test name {name!r}: it {problem}")
    if name_size(name + SUFFIX) > MAX_NAME:
        digest = hashlib.md5(os.fsencode(name)).hexdigest()
        name = cut_to_size(name, MAX_NAME - len(SUFFIX) - len(digest) - 3) + "..." + digest
    return name + SUFFIX


def cassette_path(folder: Path, name: str | PurePath) -> Path:
    """``name`` inside ``folder``, with ``.yaml`` added unless it has a cassette suffix or
    names a folder; anything that would lead outside ``folder`` is refused."""
    relative = PurePath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise GraphVcrError(
            f"cassette {str(name)!r}: must be a name inside {folder} (no '..', not absolute); "
            "to use another folder, override the graph_vcr_cassette_dir fixture"
        )
    for part in relative.parts:
        problem = impossible_name(part)
        if problem is not None:
            raise GraphVcrError(f"cassette {str(name)!r}: {part!r} {problem}")
        _refuse_long(name, part)
    path = folder / relative
    if path.suffix not in (".yaml", ".yml") and not path.is_dir():
        path = path.with_name(path.name + SUFFIX)
        _refuse_long(name, path.name)
    if not path.resolve().is_relative_to(folder.resolve()):
        raise GraphVcrError(f"cassette {str(name)!r}: leads outside {folder} (a symlink?)")
    return path


def _refuse_long(name: str | PurePath, part: str) -> None:
    if name_size(part) > MAX_NAME:
        raise GraphVcrError(
            f"cassette {str(name)!r}: {name_size(part)} bytes in one file name, at most "
            f"{MAX_NAME} fit (with the temporary file written beside it)"
        )


@dataclass(frozen=True)
class Plan:
    """What the proxy is switched to for one test."""

    mode: str  # the session's mode: replay, record or simulate
    args: tuple[str, ...]
    cassette: Path | None = None
    record_mode: RecordMode | None = None
    rewrite: bool = False  # delete the cassette before the test (record mode rewrite)
    start_args: tuple[str, ...] = field(default=())  # non-empty: the test needs its own proxy
    # Replay in record mode none: a cassette file that does not exist is a miss only when a
    # request arrives, as in vcrpy (a test that sends nothing needs no cassette).
    missing_cassette_ok: bool = False


def effective_record_mode(settings: Settings, command_line: RecordMode | None) -> RecordMode:
    """A ``record_mode`` in the markers or config wins (as in pytest-recording), then the
    ``--graph-record-mode`` option, then the mode's own default."""
    if settings.record_mode is not None:
        return settings.record_mode
    if command_line is not None:
        return command_line
    return RecordMode.ONCE if settings.mode is ProxyMode.RECORD else RecordMode.NONE


def allowed_hosts(settings: Settings, command_line: Iterable[str] = ()) -> tuple[str, ...]:
    """The hosts a test may reach besides loopback: ``--graph-allowed-hosts`` and the
    markers' or config's ``allowed_hosts``, together, each once."""
    return tuple(dict.fromkeys([*command_line, *settings.allowed_hosts]))


def network_arguments(hosts: Iterable[str]) -> tuple[str, ...]:
    """The plugin's proxy exists only for tests: it blocks every host but loopback and
    ``hosts``, so a request that is not ours never reaches the network by accident."""
    return (*BLOCK_NETWORK.arguments(True), *ALLOW_HOSTS.arguments(list(hosts)))


def plan(
    settings: Settings,
    *,
    cassette_dir: Path,
    default_name: str,
    record_mode: RecordMode | str | None = None,
    upstream: str | None = None,
    allowed: Iterable[str] = (),
) -> Plan:
    """The session for a test. ``record_mode``, ``upstream`` and ``allowed`` (hosts) are the
    command line's."""
    start_args, user_args = split_start_arguments(settings.args)
    faults = (*FAULT_SPECS.arguments(settings.faults), *FAULT_SEED.arguments(settings.seed))
    user_args = (*network_arguments(allowed_hosts(settings, allowed)), *user_args)
    if settings.mode is ProxyMode.SIMULATE:
        anonymous = REQUIRE_AUTH.arguments(not settings.allow_anonymous)
        return Plan("simulate", (*faults, *anonymous, *user_args), start_args=start_args)
    path = cassette_path(cassette_dir, settings.cassette or default_name)
    mode = effective_record_mode(settings, RecordMode(record_mode) if record_mode else None)
    replay = mode is RecordMode.NONE or (mode is RecordMode.ONCE and path.exists())
    cassette = CASSETTE.arguments(str(path))
    # How the cassette plays, in replay and in the record modes that replay.
    playing = (
        *PLAYBACK_REPEATS.arguments(settings.allow_playback_repeats),
        *ECHO.arguments(settings.echo),
    )
    if replay:
        extra = (*playing, *match_arguments(settings))
        args = (*cassette, *faults, *extra, *user_args)
        missing_ok = mode is RecordMode.NONE
        return Plan(
            "replay", args, path, mode, start_args=start_args, missing_cassette_ok=missing_ok
        )
    recording = RECORD_MODE.arguments(mode.for_recorder)
    extra = (
        *UPSTREAM.arguments(settings.upstream or upstream or None),
        *playing,
        *match_arguments(settings, replay=False),
        *REDACT_HEADERS.arguments(settings.redact_headers),
        *REDACT_FIELDS.arguments(settings.redact_fields),
    )
    args = (*cassette, *recording, *faults, *extra, *user_args)
    return Plan("record", args, path, mode, rewrite=mode.rewrites, start_args=start_args)


def split_start_arguments(args: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(arguments for starting a proxy of the test's own, the rest)."""
    start: list[str] = []
    rest: list[str] = []
    items = iter(args)
    for arg in items:
        name = arg.split("=", 1)[0]
        if name not in START_ARGUMENTS:
            rest.append(arg)
            continue
        start.append(arg)
        if START_ARGUMENTS[name] and "=" not in arg:
            value = next(items, None)
            if value is None:
                raise GraphVcrError(f"graph_vcr: args {name} needs a value")
            start.append(value)
    return tuple(start), tuple(rest)
