"""PyYAML as every reader of ours uses it: one loader, and one way to say where a document broke.

Cassettes and ``--faults`` files are both YAML that users write or edit by hand; reading them
with the same loader and reporting their errors the same way gives one behaviour and one
error style (``FILE:LINE: ...``) for both.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import yaml

# The C loader where PyYAML was built with libyaml (several times faster on a big cassette),
# else the pure-Python one; both safe: a document can't construct Python objects.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()  # every PyYAML loader's and dumper's, without a stream


@functools.lru_cache(maxsize=1024)
def scalar_tag(value: str, implicit: tuple[bool, bool]) -> str:
    """The tag PyYAML resolves a scalar to: asked once per scalar by a loader, twice by a
    dumper, and the keys of a cassette (and most header values) are the same in every
    interaction. A pure function of the text: no path resolvers are set."""
    return _RESOLVER.resolve(yaml.ScalarNode, value, implicit)


class _PlainLoader(SAFE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, its short scalars' tags remembered (:func:`scalar_tag`)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and len(value) <= 64:
            return scalar_tag(value, implicit)
        return super().resolve(kind, value, implicit)


class NotPlain(Exception):
    """A document :func:`load_plain` leaves to a full constructor."""


_STR, _INT, _NULL = "tag:yaml.org,2002:str", "tag:yaml.org,2002:int", "tag:yaml.org,2002:null"
_BOOL, _BINARY = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:binary"
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
_BOOLS = yaml.constructor.SafeConstructor.bool_values


def load_plain(text: str) -> Any:
    """The document in ``text`` as PyYAML's safe constructor builds it, for a document of
    plain values only: text, decimal integers, booleans, nulls, ``!!binary``, and mappings
    and lists of them, each written once. Raises :class:`NotPlain` for anything else
    (anchors and aliases, merge keys, floats, dates, other tags), and PyYAML's own errors.

    PyYAML's constructor spends several calls on each node (a memo for aliases, a generator
    per collection for recursive ones, a lookup of the constructor by tag); a cassette is a
    few hundred thousand nodes of a handful of kinds, built here in one recursive function.
    """
    node = yaml.compose(text, Loader=_PlainLoader)
    return None if node is None else _plain(node, set())


def _plain(node: yaml.Node, seen: set[int]) -> Any:
    kind = type(node)
    if kind is yaml.ScalarNode:
        return node.value if node.tag == _STR else _plain_scalar(node.tag, node.value)
    if id(node) in seen:  # an alias of a collection: PyYAML shares one object (or loops)
        raise NotPlain
    seen.add(id(node))
    if kind is yaml.MappingNode and node.tag == _MAP:
        return {_plain_key(key): _plain(value, seen) for key, value in node.value}
    if kind is yaml.SequenceNode and node.tag == _SEQ:
        return [_plain(item, seen) for item in node.value]
    raise NotPlain


def _plain_key(node: yaml.Node) -> Any:
    if type(node) is not yaml.ScalarNode:
        raise NotPlain  # a complex key: PyYAML refuses a list or mapping as a key
    return node.value if node.tag == _STR else _plain_scalar(node.tag, node.value)


def _plain_scalar(tag: str, value: str) -> Any:
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return _BOOLS[value.lower()]
    if tag == _INT:
        digits = value[1:] if value[:1] in ("-", "+") else value
        # plain decimal only: PyYAML reads 0o17, 0x1F, 017, 1_000 and 1:30 its own ways
        if digits.isascii() and digits.isdigit() and (digits[0] != "0" or digits == "0"):
            return int(value)
    elif tag == _BINARY:
        try:
            return base64.decodebytes(value.encode("ascii"))
        except ValueError:  # PyYAML's error, from its own constructor
            pass
    raise NotPlain


def error_location(exc: yaml.YAMLError) -> tuple[int | None, str]:
    """The 1-based line a YAML error points at (None when it points nowhere) and its problem
    in one line, e.g. ``(14, "did not find expected ',' or '}'")``."""
    line = None
    problem = ""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or ""
    if not problem:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return line, problem
