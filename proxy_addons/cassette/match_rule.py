"""The rule that says when a request is the recorded one: vcrpy's ``match_on`` names, JSON
paths to ignore in bodies, and custom vcrpy matchers, in one frozen value.

Everything that decides a match reads this one rule: the index hashes :meth:`MatchRule.key`
and :meth:`MatchRule.body`, the explanation of a miss lists :meth:`MatchRule.differences`
and says what the rule leaves out (:meth:`MatchRule.leaves_out`). So the two can never tell
different stories, and a lookup stays one hash however many interactions a cassette holds.

The names are vcrpy's (``vcr/matchers.py``), read as a proxy for Graph reads them:

- ``method``; ``scheme``; ``host``, in its canonical spelling (any case, a trailing dot);
  ``port``, the default one for the scheme when none is written;
- ``path``: for our routes the canonical route (``routes.Route.path``), so every spelling
  Graph reads as one (OData keys, case, a qualified function name...) is one path; other
  URLs compare their path as written;
- ``query``: the parameters in any order, OData names in any case;
- ``body``: compared as JSON where it is JSON (a recorded redaction placeholder matching
  any value in its place), as bytes otherwise; ``ignore_json_paths`` leave places out;
- ``headers``: every header, as vcrpy's matcher compares them, except those that frame one
  connection or message (``Connection``, ``Keep-Alive``, ``Content-Length``,
  ``Transfer-Encoding``, ``Proxy-Connection``); a redacted value matches any value;
- ``uri`` and ``url`` (vcrpy's too) are scheme, host, port, path and query together.

vcrpy's default is ``method, scheme, host, port, path, query``; ours adds ``body``, as this
proxy always compared bodies: a PATCH that sends other fields is another request.

A custom matcher is vcrpy's: a function ``(r1, r2)`` of the request sent and the recorded
one (``vcr.request.Request``), which raises ``AssertionError`` (or returns False) when they
differ; a vcrpy matcher works unchanged. It is named by ``module:qualname``, so the proxy
process (the pytest plugin's child, or ``--matcher``) can import it: a lambda or a function
defined inside another is refused, with one line saying so. Custom matchers cannot be hashed:
they narrow what the built-in names found, at the cost of one call per candidate.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import cached_property
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

from proxy_addons.cassette.json_paths import JsonPath, JsonPathError, parse_all, without
from proxy_addons.common.brief import brief

PLACEHOLDER_PREFIX = "<redacted"  # cassette.PLACEHOLDER_PREFIX, without importing vcrpy
SIDECAR_SUFFIX = ".match.yaml"  # cassette.MATCH_FILE_SUFFIX: folders of cassettes skip it


class Part(StrEnum):
    """A part of a request a rule may compare, named as vcrpy's ``match_on`` names it."""

    METHOD = "method"
    SCHEME = "scheme"
    HOST = "host"
    PORT = "port"
    PATH = "path"
    QUERY = "query"
    HEADERS = "headers"
    BODY = "body"


URI_PARTS = (Part.SCHEME, Part.HOST, Part.PORT, Part.PATH, Part.QUERY)
ALIASES = {"uri": URI_PARTS, "url": URI_PARTS}
VCRPY_DEFAULT = (Part.METHOD, *URI_PARTS)
DEFAULT_MATCH_ON = (*VCRPY_DEFAULT, Part.BODY)
# Headers that frame one connection or one message: never the request's meaning.
UNCOMPARED_HEADERS = frozenset(
    {"connection", "keep-alive", "content-length", "transfer-encoding", "proxy-connection"}
)
_MATCHER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_QUALNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

VcrMatcher = Callable[[Any, Any], Any]


class MatchRuleError(ValueError):
    """A rule that can't be made; ``str()`` is the one line a user sees."""


class Shape(NamedTuple):
    """A request as matching sees it, every part a rule may compare. ``body`` is parsed (a
    JSON value, bytes when not JSON), None when there is none. ``headers`` are as the request
    holds them (a mapping or pairs), made comparable only by a rule that compares them."""

    method: str
    host: str
    path: str
    query: tuple[tuple[str, str], ...]
    body: Any = None
    scheme: str = "https"
    port: int = 443
    headers: Any = ()


_FIELD = {name: i for i, name in enumerate(Shape._fields)}
VALUED = (Part.QUERY, Part.HEADERS)  # the key parts of (name, value) pairs
_KEY_ORDER = (Part.METHOD, Part.SCHEME, Part.HOST, Part.PORT, Part.PATH, Part.QUERY, Part.HEADERS)

Key = tuple[Any, ...]


def comparable_headers(headers: Any) -> tuple[tuple[str, str], ...]:
    """Headers as ``headers`` compares them: lowercase names, sorted, framing left out."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = []
    for name, value in pairs:
        lower = name.lower()
        if lower in UNCOMPARED_HEADERS:
            continue
        if isinstance(value, list):  # vcrpy's stored form: a list per header
            value = ", ".join(map(str, value))
        elif isinstance(value, bytes):
            value = value.decode("latin-1")
        found.append((lower, str(value)))
    return tuple(sorted(found))


def placeholder(value: str) -> bool:
    """Whether a recorded value is a redaction placeholder, which matches any value."""
    return value.startswith(PLACEHOLDER_PREFIX)


def values_match(recorded: Any, sent: Any) -> bool:
    """Whether a recorded query's or headers' pairs match the sent ones: the same names,
    each recorded value the sent one or a redaction placeholder (a swept token, a redacted
    Authorization), which matches any value there as it does in a body. The index finds
    recordings by this, and a miss names a part only when this says it differs."""
    return len(recorded) == len(sent) and all(
        r_name == s_name and (r_value == s_value or placeholder(r_value))
        for (r_name, r_value), (s_name, s_value) in zip(recorded, sent, strict=True)
    )


@dataclass(frozen=True)
class Matcher:
    """A custom matcher: the name ``match_on`` gives it, the function, and where it lives."""

    name: str
    function: VcrMatcher = field(compare=False)
    spec: str  # module:qualname

    def failure(self, sent: Any, recorded: Any) -> str | None:
        """Why ``sent`` is not ``recorded`` for this matcher, or None when it matches: vcrpy's
        reading (``_evaluate_matcher``): None or a true value passes, False or an
        AssertionError fails. Anything else it raises is a bug in it, which vcrpy would let
        fail the test: MatchRuleError naming the matcher, never a match and never silence
        (the index calls matchers as a cassette loads, where any other exception is one
        mitmproxy logs and carries on from, serving no recordings)."""
        try:
            result = self.function(sent, recorded)
        except AssertionError as exc:
            said = " ".join(str(exc).split())  # one line: a miss is one line (vcrpy's diffs)
            return f"matcher {self.name} ({said})" if said else f"matcher {self.name}"
        except Exception as exc:
            said = " ".join(str(exc).split())
            raise MatchRuleError(
                f"matcher {self.name} ({self.spec}) raised {type(exc).__name__}: {said}"
            ) from exc
        return None if result is None or result else f"matcher {self.name}"


@dataclass(frozen=True)
class MatchRule:
    """When a request is the recorded one. Make it with :meth:`of`."""

    parts: tuple[Part, ...] = DEFAULT_MATCH_ON
    ignore_json_paths: tuple[JsonPath, ...] = ()
    matchers: tuple[Matcher, ...] = ()
    # Every matcher the rule may name (registered), used or not: what a cassette's own
    # match file may name, and a refined rule's names come from.
    registered: tuple[Matcher, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def of(
        cls,
        match_on: Iterable[str] | str | None = None,
        ignore_json_paths: Iterable[str] = (),
        matchers: Mapping[str, VcrMatcher | str] | Iterable[Matcher] = (),
        *,
        match_body: bool = True,
    ) -> MatchRule:
        """The rule of ``match_on`` names (default :data:`DEFAULT_MATCH_ON`; a string is
        split at commas), JSON paths to ignore, and custom matchers by name (functions or
        ``module:qualname`` specs). ``match_body=False`` (``--ignore-body``) leaves body out.
        """
        registered = _registered(matchers)
        rule = cls(registered=registered)._named(match_on)
        if not match_body:
            rule = rule.without_body()
        try:
            paths = parse_all(list(ignore_json_paths))
        except JsonPathError as exc:
            raise MatchRuleError(str(exc)) from None
        return replace(rule, ignore_json_paths=paths)

    def _named(self, match_on: Iterable[str] | str | None) -> MatchRule:
        """This rule comparing what ``match_on`` names, with the matchers registered here."""
        if match_on is None:
            return replace(self, parts=DEFAULT_MATCH_ON, matchers=())
        names = [n.strip() for n in match_on.split(",")] if isinstance(match_on, str) else match_on
        by_name = {m.name: m for m in self.registered}
        parts: list[Part] = []
        used: list[Matcher] = []
        for name in names:
            if not isinstance(name, str):
                raise MatchRuleError(f"match_on: {name!r} is not a name")
            if name in Part.__members__.values():
                parts.append(Part(name))
            elif name in ALIASES:
                parts.extend(ALIASES[name])
            elif name in by_name:
                used.append(by_name[name])
            else:
                known = [*Part, *ALIASES, *by_name]
                raise MatchRuleError(
                    f"match_on: unknown name {name!r}; known: {', '.join(known)} "
                    "(a custom matcher must be registered: --matcher NAME=module:function, "
                    "or the graph_vcr 'matchers' key)"
                )
        if not parts and not used:
            raise MatchRuleError("match_on: names nothing to match on")
        ordered = tuple(p for p in (*_KEY_ORDER, Part.BODY) if p in parts)
        return replace(self, parts=ordered, matchers=tuple(dict.fromkeys(used)))

    def without_body(self) -> MatchRule:
        """This rule not comparing bodies (``--ignore-body``)."""
        return replace(self, parts=tuple(p for p in self.parts if p is not Part.BODY))

    def refined(
        self, match_on: Iterable[str] | str | None = None, ignore_json_paths: Iterable[str] = ()
    ) -> MatchRule:
        """This rule as a cassette's own match file changes it: its ``match_on`` (naming
        built-in names and matchers registered here) replaces this one's; its paths are
        ignored besides this rule's."""
        rule = self if match_on is None else self._named(match_on)
        try:
            extra = parse_all(list(ignore_json_paths))
        except JsonPathError as exc:
            raise MatchRuleError(str(exc)) from None
        paths = tuple(dict.fromkeys((*rule.ignore_json_paths, *extra)))
        return replace(rule, ignore_json_paths=paths)

    # --- what the index hashes -----------------------------------------------------------

    @cached_property
    def _key_parts(self) -> tuple[Part, ...]:
        return tuple(p for p in _KEY_ORDER if p in self.parts)

    @cached_property
    def _getter(self) -> Callable[[Shape], Any]:
        fields = [_FIELD[p] for p in self._key_parts]
        if not fields:
            return lambda shape: ()
        if len(fields) == 1:
            one = itemgetter(fields[0])
            return lambda shape: (one(shape),)
        return itemgetter(*fields)

    @cached_property
    def _headers_at(self) -> int | None:
        return self.position(Part.HEADERS)

    def key(self, shape: Shape) -> Key:
        """The parts of ``shape`` this rule compares, the body aside: what the index hashes.
        Its positions are this rule's (:meth:`position`)."""
        key = self._getter(shape)
        at = self._headers_at
        if at is not None:
            key = (*key[:at], comparable_headers(key[at]), *key[at + 1 :])
        return key

    def position(self, part: Part) -> int | None:
        """Where ``part`` is in this rule's keys, None when the rule does not compare it."""
        parts = self._key_parts
        return parts.index(part) if part in parts else None

    @cached_property
    def compares_body(self) -> bool:
        return Part.BODY in self.parts

    def body(self, shape: Shape) -> Any:
        """The body as this rule compares it: None when bodies are not compared, else the
        parsed body with the ignored places left out."""
        if not self.compares_body:
            return None
        body = shape.body
        if self.ignore_json_paths and isinstance(body, dict | list):
            return without(body, self.ignore_json_paths)
        return body

    # --- what a miss says ----------------------------------------------------------------

    def differences(
        self, recorded: Shape, sent: Shape, body_difference: Callable[[Any, Any], str | None]
    ) -> tuple[str, ...]:
        """Every compared part in which ``sent`` is not ``recorded``, in the rule's order;
        ``body_difference`` says how two compared bodies differ (``matching``'s)."""
        named = []
        for part, have, want in zip(
            self._key_parts, self.key(recorded), self.key(sent), strict=True
        ):
            if have == want or (part in VALUED and values_match(have, want)):
                continue
            if part is Part.HEADERS:
                named.append(f"headers ({_header_names(have, want)} differ)")
            else:
                named.append(f"{part} ({_show(have)} recorded, {_show(want)} sent)")
        body = body_difference(self.body(recorded), self.body(sent)) if self.compares_body else None
        return (*named, body) if body else tuple(named)

    def failures(self, sent: Any, recorded: Any) -> tuple[str, ...]:
        """The custom matchers ``sent`` fails against ``recorded`` (vcrpy requests)."""
        return tuple(f for m in self.matchers if (f := m.failure(sent, recorded)) is not None)

    def leaves_out(self) -> tuple[str, ...]:
        """What this rule does not compare that the default one does, and the JSON paths it
        ignores: what a miss names, so that the reader knows what was not looked at."""
        dropped = [str(p) for p in DEFAULT_MATCH_ON if p not in self.parts]
        return (*dropped, *(f"body at {p}" for p in self.ignore_json_paths))

    def describe(self) -> str:
        """The rule in one line, as a user would write it."""
        names = [*map(str, self.parts), *(m.name for m in self.matchers)]
        text = "match_on " + ",".join(names)
        if self.ignore_json_paths:
            text += "; ignoring " + ", ".join(map(str, self.ignore_json_paths))
        return text

    # --- a cassette's own ----------------------------------------------------------------

    def for_cassette(self, path: Path) -> MatchRule:
        """This rule, refined by the match file beside cassette ``path`` if it has one."""
        found = sidecar_of(path)
        if found is None or not found.is_file():
            return self
        settings = read_sidecar(found)
        try:
            return self.refined(settings.get("match_on"), settings.get("ignore_json_paths", ()))
        except MatchRuleError as exc:
            raise MatchRuleError(f"{found}: {exc}") from None


DEFAULT_RULE = MatchRule()


def _show(part: Any) -> str:
    if isinstance(part, tuple):
        return "?" + "&".join(f"{k}={v}" for k, v in part) if part else "no query"
    return str(part)


def _header_names(recorded: tuple[tuple[str, str], ...], sent: tuple[tuple[str, str], ...]) -> str:
    """The names of the headers in which two comparable header lists differ (a redacted
    recorded value differs from no value)."""
    sides = (recorded, sent)
    names = {name for name, _ in (*recorded, *sent)}
    differing = [
        name
        for name in sorted(names)
        if not values_match(*([pair for pair in side if pair[0] == name] for side in sides))
    ]
    return ", ".join(differing)


# --- the match file beside a cassette -----------------------------------------------------

SIDECAR_KEYS = ("match_on", "ignore_json_paths")


def sidecar_of(cassette: Path) -> Path | None:
    """``<cassette without .yaml/.yml>.match.yaml``: the file that says how a cassette's
    recordings match. Beside the cassette, not in it: plain vcrpy and pytest-recording never
    read it, and the recorder, which rewrites a cassette into its own layout, never loses it.
    """
    if not cassette.name or cassette.suffix not in (".yaml", ".yml") or is_sidecar(cassette):
        return None
    return cassette.with_name(cassette.stem + SIDECAR_SUFFIX)


def is_sidecar(path: Path) -> bool:
    """Whether ``path`` is a match file (so not a cassette, in a folder of them)."""
    return path.name.endswith(SIDECAR_SUFFIX)


def read_sidecar(path: Path) -> dict[str, Any]:
    """A match file's settings, checked: a mapping of :data:`SIDECAR_KEYS`, each a list of
    strings (``match_on`` may be one comma-separated string)."""
    import yaml  # only where a match file exists

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise MatchRuleError(f"{path}: cannot be read: {' '.join(str(exc).split())}") from None
    except RecursionError:  # PyYAML composes nested collections by recursion
        raise MatchRuleError(f"{path}: cannot be read: nested too deep") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise MatchRuleError(f"{path}: must be a mapping with keys {', '.join(SIDECAR_KEYS)}")
    unknown = sorted(map(str, set(data) - set(SIDECAR_KEYS)))
    if unknown:
        raise MatchRuleError(
            f"{path}: unknown key {', '.join(unknown)}; allowed: {', '.join(SIDECAR_KEYS)} "
            "(a match file names matchers, it never imports code: register them with the test "
            "or --matcher)"
        )
    for key, value in data.items():
        if key == "match_on" and isinstance(value, str):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise MatchRuleError(f"{path}: {key} must be a list of strings, not {brief(value)}")
    return data


# --- custom matchers by module:qualname ----------------------------------------------------


def _registered(
    matchers: Mapping[str, VcrMatcher | str] | Iterable[Matcher],
) -> tuple[Matcher, ...]:
    if isinstance(matchers, Mapping):
        return tuple(matcher(name, value) for name, value in matchers.items())
    return tuple(matchers)


def matcher(name: str, value: VcrMatcher | str) -> Matcher:
    """The matcher ``name`` for a function or a ``module:qualname`` spec; MatchRuleError
    when it can't be reached from another process by that spec."""
    if not isinstance(name, str) or not _MATCHER_NAME.fullmatch(name):
        raise MatchRuleError(f"matcher name {name!r}: must be a word (letters, digits, _ and -)")
    if name in Part.__members__.values() or name in ALIASES:
        raise MatchRuleError(f"matcher name {name!r}: is one of vcrpy's own names")
    if isinstance(value, str):
        return Matcher(name, import_matcher(name, value), value)
    return Matcher(name, value, spec_of(name, value))


def parse_matcher_option(text: str) -> Matcher:
    """``NAME=module:function`` (``--matcher``, ``graph_matchers``) as a matcher."""
    name, equals, spec = text.partition("=")
    if not equals:
        raise MatchRuleError(f"matcher {text!r}: must be NAME=module:function")
    return matcher(name.strip(), spec.strip())


def spec_of(name: str, function: Any) -> str:
    """``module:qualname`` of ``function``, checked to import back to the same function:
    what lets the proxy process use it. Lambdas and nested functions have no such name."""
    if not callable(function):
        raise MatchRuleError(f"matcher {name}: {function!r} is not a function")
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise MatchRuleError(f"matcher {name}: {function!r} has no module and name to import")
    if "<lambda>" in qualname or "<locals>" in qualname:
        kind = "a lambda" if "<lambda>" in qualname else "a function defined inside another"
        raise MatchRuleError(
            f"matcher {name}: {qualname} is {kind}; the proxy runs in another process and "
            "imports matchers by module:function: define it at the top level of a module"
        )
    spec = f"{module}:{qualname}"
    if module == "__main__" or _resolve(module, qualname) is not function:
        raise MatchRuleError(
            f"matcher {name}: {spec} does not import back to the function "
            "(define it at the top level of an importable module)"
        )
    return spec


def import_matcher(name: str, spec: str) -> VcrMatcher:
    """The function ``spec`` (``module:qualname``) names."""
    module, colon, qualname = spec.partition(":")
    if not colon or not module or not _QUALNAME.fullmatch(qualname):
        raise MatchRuleError(f"matcher {name}: {spec!r} must be module:function")
    try:
        found = _resolve(module, qualname)
    except ImportError as exc:
        raise MatchRuleError(f"matcher {name}: cannot import {module!r}: {exc}") from None
    except Exception as exc:  # the module failed as it ran: say so in one line, never a trace
        said = " ".join(str(exc).split())
        raise MatchRuleError(
            f"matcher {name}: importing {module!r} failed: {type(exc).__name__}: {said}"
        ) from None
    if found is None or not callable(found):
        raise MatchRuleError(f"matcher {name}: {spec} is not a function")
    return found


def _resolve(module: str, qualname: str) -> Any:
    found: Any = importlib.import_module(module)
    for attribute in qualname.split("."):
        found = getattr(found, attribute, None)
    return found
