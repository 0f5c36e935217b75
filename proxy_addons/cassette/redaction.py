"""Redaction: secrets and personal data replaced by stable placeholders before anything is saved.

Pure functions over one interaction, plus :class:`Placeholders`, the only state: the number
each distinct value got. A placeholder is ``<redacted:NAME:N>``: it starts with
:data:`cassette.PLACEHOLDER_PREFIX`, so a redacted request body value still matches whatever
real value a later request carries (the cassette index treats it as a wildcard, and headers
are never matched at all), and ``N`` says which values were equal without saying what they
were. A hash would say that too, but a phone number or an e-mail address is guessable from
its hash; a counter leaks nothing.

What is always redacted: the credential headers (``Authorization``, ``Proxy-Authorization``,
``Cookie``, ``Set-Cookie``), the OAuth secrets wherever they can appear (query parameters,
form-encoded token requests, JSON fields), and, last, every occurrence of any secret value
removed in this run (of at least :data:`MIN_SWEPT_SECRET` characters) anywhere else: in every
header of both sides whatever its name, in the URI as it is and percent-encoded, and in both
bodies, so a server that echoes a token still can't put it on disk. A body our JSON code
can't process (nested too deep, not encodable again) is redacted on its text, never refused:
the upstream has already acted on it. The user adds header names and JSON
field names (matched case-insensitively, at any depth of the body).
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from proxy_addons.cassette.cassette import PLACEHOLDER_PREFIX

CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# OAuth 2.0 / OpenID names that carry a credential (RFC 6749, RFC 7523), as JSON fields...
CREDENTIAL_FIELDS = frozenset(
    {"client_secret", "client_assertion", "access_token", "refresh_token", "id_token", "password"}
)
# ...and as query or form parameters, where ``code`` is the authorization code (in a JSON
# body ``code`` is Graph's error code, which must stay).
CREDENTIAL_PARAMS = CREDENTIAL_FIELDS | {"code", "assertion"}
# Secrets at least this long are swept out of everything else (see ``sweep``). One to three
# characters (a cookie's ``a=1``, a ``code=42``) occur by chance in any text, so sweeping them
# would scatter placeholders through unrelated ids, dates and words; four is already rare by
# chance and covers short real secrets such as ``client_secret=CS123``.
MIN_SWEPT_SECRET = 4
_PLACEHOLDER = re.compile(re.escape(PLACEHOLDER_PREFIX) + r":([^:>]+):(\d+)>")
_FORM = "application/x-www-form-urlencoded"
_NOT_JSON = object()
# What our own processing of a JSON body can fail on, whatever the upstream sent: a body
# nested deeper than Python recurses, a lone surrogate (``\\ud83d``) that parses but can't be
# encoded again. Such a body is redacted on its text instead (see ``redact_body``).
_UNPROCESSABLE = (RecursionError, UnicodeError, ValueError, TypeError)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RedactionRules:
    """Lowercased names to redact: headers, JSON fields, query and form parameters.

    Build it with :meth:`of`, which adds the credentials to what the user names.
    """

    headers: frozenset[str] = CREDENTIAL_HEADERS
    fields: frozenset[str] = CREDENTIAL_FIELDS
    params: frozenset[str] = CREDENTIAL_PARAMS

    @classmethod
    def of(cls, headers: Iterable[str] = (), fields: Iterable[str] = ()) -> RedactionRules:
        """The credentials plus the user's header names and field names (fields also apply
        to query and form parameters of the same name)."""
        named = {f.strip().lower() for f in fields if f.strip()}
        return cls(
            headers=CREDENTIAL_HEADERS | {h.strip().lower() for h in headers if h.strip()},
            fields=CREDENTIAL_FIELDS | named,
            params=CREDENTIAL_PARAMS | named,
        )


def redacted_names(text: str) -> list[str]:
    """The names of the placeholders in ``text`` (``authorization``, ``emailAddress``...),
    each once, in order of first appearance: what was redacted, without what it was."""
    return list(dict.fromkeys(name for name, _ in _PLACEHOLDER.findall(text)))


@dataclass
class Placeholders:
    """Value -> placeholder, numbered per name in order of first sight.

    The same value under the same name gets the same placeholder for as long as this object
    lives (one recording run). Numbering starts after the highest number already in the
    cassette (see :meth:`continuing`), so two different values never share a placeholder in
    one file; the same value seen again in a later run gets a new number.
    """

    start: dict[str, int] = field(default_factory=dict)
    _numbers: dict[str, dict[str, int]] = field(default_factory=dict)
    # Every secret value seen in this run -> its placeholder: swept out of every later
    # interaction too, so a token one request sent can't reach the disk in another's answer.
    secrets: dict[str, str] = field(default_factory=dict)

    @classmethod
    def continuing(cls, text: str) -> Placeholders:
        """Placeholders numbered after those already present in a cassette's text."""
        start: dict[str, int] = {}
        for name, number in _PLACEHOLDER.findall(text):
            start[name] = max(start.get(name, 0), int(number))
        return cls(start)

    def __call__(self, name: str, value: str) -> str:
        if value.startswith(PLACEHOLDER_PREFIX):
            return value  # already redacted (a replayed or re-recorded placeholder)
        numbers = self._numbers.setdefault(name, {})
        if value not in numbers:
            numbers[value] = self.start.get(name, 0) + len(numbers) + 1
        return f"{PLACEHOLDER_PREFIX}:{name}:{numbers[value]}>"


def redact_headers(
    headers: Mapping[str, list[str]], rules: RedactionRules, placeholders: Placeholders
) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Headers with named ones replaced, and the secret values that were in them."""
    out: dict[str, list[str]] = {}
    secrets: dict[str, str] = {}
    for name, values in headers.items():
        lower = name.lower()
        if lower not in rules.headers:
            out[name] = list(values)
            continue
        out[name] = []
        for value in values:
            placeholder = placeholders(lower, value)
            out[name].append(placeholder)
            for secret in _secret_parts(lower, value):
                secrets.setdefault(secret, placeholder)
    return out, secrets


def _secret_parts(header: str, value: str) -> list[str]:
    """The whole value and the pieces of it that are secrets on their own."""
    parts = [value]
    if header in ("authorization", "proxy-authorization"):
        scheme, _, credentials = value.partition(" ")
        parts.append(credentials.strip() or scheme)
    elif header in ("cookie", "set-cookie"):
        pairs = value.split(";") if header == "cookie" else value.split(";")[:1]
        parts += [p.partition("=")[2].strip() for p in pairs]
    return [p for p in parts if p and not p.startswith(PLACEHOLDER_PREFIX)]


def redact_json(
    data: Any, rules: RedactionRules, placeholders: Placeholders, secrets: dict[str, str]
) -> Any:
    """``data`` with every named field, at any depth, replaced; its values join ``secrets``."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key.lower() in rules.fields and value is not None:
                text = value if isinstance(value, str) else json.dumps(value)
                out[key] = placeholders(key, text)
                if isinstance(value, str):  # only strings can be swept out of other text
                    secrets.setdefault(text, out[key])
            else:
                out[key] = redact_json(value, rules, placeholders, secrets)
        return out
    if isinstance(data, list):
        return [redact_json(item, rules, placeholders, secrets) for item in data]
    return data


def redact_pairs(
    pairs: list[tuple[str, str]],
    rules: RedactionRules,
    placeholders: Placeholders,
    secrets: dict[str, str],
) -> tuple[list[tuple[str, str]], bool]:
    """Query or form parameters with credential and named ones replaced; whether any was."""
    out, changed = [], False
    for name, value in pairs:
        if name.lower() in rules.params and value:
            placeholder = placeholders(name, value)
            secrets.setdefault(value, placeholder)
            out.append((name, placeholder))
            changed = True
        else:
            out.append((name, value))
    return out, changed


def redact_uri(
    uri: str, rules: RedactionRules, placeholders: Placeholders, secrets: dict[str, str]
) -> str:
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    pairs, changed = redact_pairs(
        parse_qsl(parts.query, keep_blank_values=True), rules, placeholders, secrets
    )
    return urlunsplit(parts._replace(query=urlencode(pairs))) if changed else uri


def compact_json(data: Any) -> bytes:
    """How a body we write is serialised: compact JSON, as Graph sends it, non-ASCII as is."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def _json(body: bytes) -> Any:
    """The parsed JSON body, or ``_NOT_JSON`` (also for JSON nested too deep to parse)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return _NOT_JSON


def redact_body(
    body: bytes,
    content_type: str,
    rules: RedactionRules,
    placeholders: Placeholders,
    secrets: dict[str, str],
) -> bytes:
    """A JSON or form body with named fields replaced; other bodies unchanged.

    A body is re-serialised (JSON compact, see ``compact_json``) only when something in it was
    redacted, so everything else stays byte for byte what was sent. A body our JSON code
    can't process (nested too deep, a lone surrogate that can't be encoded again) keeps its
    exact bytes, with the named fields' values replaced in its text (:func:`redact_text`):
    the upstream has acted on it, so failing here would lose an answer.
    """
    if not body:
        return body
    media = content_type.split(";")[0].strip().lower()
    if media == _FORM:
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True)
        except UnicodeDecodeError:
            return body
        redacted, changed = redact_pairs(pairs, rules, placeholders, secrets)
        return urlencode(redacted).encode() if changed else body
    text = _plain_text(body)
    if text is not None and not any(f'"{name}"' in text.lower() for name in rules.fields):
        return body  # no key can be a named field: nothing to parse
    data = _json(body)
    if data is _NOT_JSON:
        redacted = redact_text(body, rules, placeholders, secrets)
        if redacted != body:
            logger.warning("named fields redacted in the text of a body our JSON code can't read")
        return redacted
    try:
        redacted = redact_json(data, rules, placeholders, secrets)
        return body if redacted == data else compact_json(redacted)
    except _UNPROCESSABLE as exc:
        logger.warning("body redacted on its text, stored as it came (%s)", _why(exc))
        return redact_text(body, rules, placeholders, secrets)


def _why(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deep to process as JSON"
    return f"cannot be encoded again as JSON: {type(exc).__name__}"


def redact_text(
    body: bytes, rules: RedactionRules, placeholders: Placeholders, secrets: dict[str, str]
) -> bytes:
    """``body``'s bytes with the value after every ``"name":`` of a named field replaced by
    its placeholder (a JSON string), found by a flat scan of the text: no parsing, no
    recursion, so any body can be redacted, however deep or however broken its JSON is."""
    names = b"|".join(re.escape(n.encode()) for n in sorted(rules.fields))
    key = re.compile(rb'(?<!\\)"(' + names + rb')"\s*:\s*', re.IGNORECASE)
    out, done = [], 0
    for match in key.finditer(body):
        if match.start() < done:
            continue  # inside a value already replaced
        end = _value_end(body, match.end())
        value = body[match.end() : end]
        if not value:
            continue
        name = match.group(1).decode("utf-8", "replace")
        text = _string_value(value)
        placeholder = placeholders(name, text if text is not None else value.decode("latin-1"))
        if text is not None:
            secrets.setdefault(text, placeholder)
            raw = value[1:-1].decode("utf-8", "replace")
            if raw != text:
                secrets.setdefault(raw, placeholder)  # as it is written, escapes and all
        out += [body[done : match.end()], json.dumps(placeholder).encode()]
        done = end
    return b"".join(out) + body[done:] if out else body


def _string_value(value: bytes) -> str | None:
    """A JSON string's text (escapes decoded, lone surrogates kept), or None."""
    if not value.startswith(b'"'):
        return None
    try:
        decoded = json.loads(value)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return decoded if isinstance(decoded, str) else None


def _value_end(body: bytes, start: int) -> int:
    """Where the JSON value starting at ``start`` ends: a string, a literal or number, or a
    container, bracket-counted with strings skipped. The end of the body if it never ends."""
    depth, i, size = 0, start, len(body)
    while i < size:
        byte = body[i]
        if byte == 0x22:  # a string: skip to its closing quote
            i += 1
            while i < size and body[i] != 0x22:
                i += 2 if body[i] == 0x5C else 1
            i += 1
            if depth == 0:
                return min(i, size)
            continue
        if byte in b"[{":
            depth += 1
        elif byte in b"]}":
            if depth == 0:
                return i
            depth -= 1
            if depth == 0:
                return i + 1
        elif depth == 0 and byte in b", \t\r\n":
            return i
        i += 1
    return size


def _plain_text(body: bytes) -> str | None:
    """The body as text when what it says is what it shows: UTF-8 without a backslash, so
    no escape can spell a field name or a secret its text does not hold. None otherwise,
    and the body is parsed to find out."""
    if b"\\" in body:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def sweep(text: str, secrets: Mapping[str, str]) -> str:
    """``text`` with every occurrence of a known secret of at least
    :data:`MIN_SWEPT_SECRET` characters replaced by its placeholder: as it is, and
    percent-encoded in any mix of upper- and lower-case escapes (then by the placeholder
    percent-encoded, so a query that held the secret still parses)."""
    return _replace(text, _sweepable(secrets))


def sweep_headers(
    headers: Mapping[str, list[str]], secrets: Mapping[str, str]
) -> dict[str, list[str]]:
    """Every header's values, whatever its name, with every known secret swept out: a
    server that echoes a token in ``WWW-Authenticate``, a client that sends it twice."""
    pairs = _sweepable(secrets)
    return {name: [_replace(v, pairs) for v in values] for name, values in headers.items()}


def sweep_body(body: bytes, secrets: Mapping[str, str]) -> bytes:
    """``body`` with every known secret swept out of it (see :func:`sweep`).

    In a JSON body only strings (values and keys) are swept, on their decoded text: a
    four-character secret such as ``1234`` or ``true`` must not turn a JSON number or
    literal into invalid JSON, and a secret a server escaped (``\\u002B`` for ``+``, as
    .NET does) is still found. A swept JSON body is re-serialised compact; a JSON body
    without secrets, and any other body, keep their bytes (others are swept as UTF-8 bytes,
    as is a JSON body our JSON code can't process: see :func:`redact_body`).
    """
    pairs = _sweepable(secrets)
    if not pairs or not body:
        return body
    text = _plain_text(body)
    if text is not None and _replace(text, pairs) == text:
        return body  # no secret in it, written, escaped or percent-encoded: nothing to parse
    data = _json(body)
    if data is _NOT_JSON:
        return _replace_bytes(body, pairs)
    try:
        swept = _sweep_json(data, pairs)
        return body if swept == data else compact_json(swept)
    except _UNPROCESSABLE as exc:
        logger.warning("body swept of secrets on its bytes, stored as it came (%s)", _why(exc))
        return _replace_bytes(body, pairs)


def _sweep_json(data: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(data, str):
        return _replace(data, pairs)
    if isinstance(data, dict):
        return {_replace(k, pairs): _sweep_json(v, pairs) for k, v in data.items()}
    if isinstance(data, list):
        return [_sweep_json(item, pairs) for item in data]
    return data


def _replace(text: str, pairs: list[tuple[str, str]]) -> str:
    for secret, placeholder in pairs:
        text = text.replace(secret, placeholder)
        if "%" in text or ("+" in text and " " in secret):
            text = _encoded_pattern(secret).sub(quote(placeholder, safe=""), text)
    return text


def _replace_bytes(body: bytes, pairs: list[tuple[str, str]]) -> bytes:
    for secret, placeholder in pairs:
        try:
            raw = secret.encode("utf-8")
        except UnicodeEncodeError:
            continue  # a lone surrogate: no UTF-8 body can hold it as it is
        body = body.replace(raw, placeholder.encode())
        if b"%" in body or (b"+" in body and " " in secret):
            encoded = quote(placeholder, safe="").encode()
            body = _encoded_bytes_pattern(secret).sub(encoded, body)
    return body


def _percent_forms(secret: str) -> str:
    """A regex for ``secret`` with any of its characters percent-encoded (UTF-8, hex digits
    of either case; ``+`` for a space, as forms write it): every way a URI can spell it."""
    parts = []
    for char in secret:
        try:
            escapes = [
                "%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in f"{b:02X}")
                for b in char.encode("utf-8")
            ]
        except UnicodeEncodeError:
            parts.append(re.escape(char))
            continue
        options = [re.escape(char), "".join(escapes)] + (["\\+"] if char == " " else [])
        parts.append("(?:" + "|".join(options) + ")")
    return "".join(parts)


@functools.lru_cache(maxsize=1024)
def _encoded_pattern(secret: str) -> re.Pattern[str]:
    return re.compile(_percent_forms(secret))


@functools.lru_cache(maxsize=1024)
def _encoded_bytes_pattern(secret: str) -> re.Pattern[bytes]:
    return re.compile(_percent_forms(secret).encode("utf-8"))


def _sweepable(secrets: Mapping[str, str]) -> list[tuple[str, str]]:
    # Longest first, so a whole "Bearer x" goes before its own "x".
    found = [(s, p) for s, p in secrets.items() if len(s) >= MIN_SWEPT_SECRET]
    return sorted(found, key=lambda sp: -len(sp[0]))


def _content_type(headers: Mapping[str, list[str]]) -> str:
    return next((v[0] for k, v in headers.items() if k.lower() == "content-type" and v), "")


@dataclass(frozen=True)
class Side:
    """One side of an HTTP exchange as the recorder stores it."""

    headers: dict[str, list[str]]
    body: bytes


def redact_exchange(
    uri: str,
    request: Side,
    response: Side,
    rules: RedactionRules,
    placeholders: Placeholders,
) -> tuple[str, Side, Side]:
    """The URI and both sides with everything secret or named replaced.

    Named things are replaced where they are; then every secret value found anywhere is swept
    out of the URI and both bodies, wherever else it was echoed.
    """
    secrets = placeholders.secrets  # every secret this run has seen, this one's added
    req_headers, found = redact_headers(request.headers, rules, placeholders)
    secrets.update(found)
    resp_headers, found = redact_headers(response.headers, rules, placeholders)
    secrets.update(found)
    uri = redact_uri(uri, rules, placeholders, secrets)
    req_body = redact_body(
        request.body, _content_type(request.headers), rules, placeholders, secrets
    )
    resp_body = redact_body(
        response.body, _content_type(response.headers), rules, placeholders, secrets
    )
    return (
        sweep(uri, secrets),
        Side(sweep_headers(req_headers, secrets), sweep_body(req_body, secrets)),
        Side(sweep_headers(resp_headers, secrets), sweep_body(resp_body, secrets)),
    )
