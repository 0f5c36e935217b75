"""Fault rules: which requests to break, and how Graph itself would have broken them.

A rule is written as a SPEC, ``KIND[:key=value,...]`` (``throttle:times=1,retry-after=1``), or
as a YAML mapping in a ``--faults`` file, and parsed here into a frozen :class:`Rule`: a
:class:`Selector` (which requests), its conditions (``fault_conditions.py``: a stale ETag, a
token Graph would refuse) and an effect (what happens to them). The effects are small
objects in the style of pytest-httpserver's hooks: :class:`GraphError` makes a Graph error
reply, :class:`Delay` says how long to wait, :class:`Reset` drops the connection and
:class:`BrokenBody` spoils a 2xx answer; the traffic shapes have modules of their own (a
budget per window in ``rate_limits.py``, delays drawn from a distribution in ``latency.py``,
``hang`` and ``slow-body`` in ``stalls.py``), and only their keys are read here. Parsing is
pure and refuses bad input with a :class:`FaultSpecError` that names the key and what it
accepts, so the CLI can turn it into one line. Nothing here knows mitmproxy; the addon in
``fault_injection.py`` keeps the rules' counters, random streams,
clocks and throttle windows (``throttle_window.py``).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from proxy_addons.common.yaml_loading import SAFE_LOADER, error_location
from proxy_addons.graph import latency, permissions
from proxy_addons.graph.fault_conditions import Condition, Stale, TokenRefused
from proxy_addons.graph.latency import DistributedDelay, Distribution
from proxy_addons.graph.rate_limits import Policy, RateLimit
from proxy_addons.graph.replies import (
    AUTH_CHALLENGE,
    CONFLICT_CODE,
    CONFLICT_MESSAGE,
    GENERAL_EXCEPTION,
    INVALID_AUTHENTICATION_TOKEN,
    JSON,
    Reply,
    error_reply,
    format_seconds,
    reason_phrase,
    response_headers,
)
from proxy_addons.graph.routes import Operation
from proxy_addons.graph.stalls import (
    DEFAULT_CHUNKS,
    DEFAULT_SLOW_BODY_MS,
    MAX_CHUNKS,
    MAX_HANG_SECONDS,
    Hang,
    SlowBody,
)


class FaultSpecError(ValueError):
    """A fault rule that cannot be understood; the message says what is wrong and allowed."""


class Kind(StrEnum):
    ETAG_MISMATCH = "etag-mismatch"
    THROTTLE = "throttle"
    PROVISIONING_CONFLICT = "provisioning-conflict"
    UNAVAILABLE = "unavailable"
    GATEWAY_TIMEOUT = "gateway-timeout"
    BAD_GATEWAY = "bad-gateway"
    SERVER_ERROR = "server-error"
    INSUFFICIENT_STORAGE = "insufficient-storage"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    PERMISSIONS = "permissions"
    LATENCY = "latency"
    RESET = "reset"
    MALFORMED = "malformed"
    EMPTY = "empty"
    # traffic shapes (rate_limits.py, latency.py, stalls.py)
    RATELIMIT = "ratelimit"
    HANG = "hang"
    SLOW_BODY = "slow-body"


# --- effects ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GraphError:
    """Answer with a Graph error: the envelope, Graph's headers and, if set, Retry-After."""

    status: int
    code: str
    message: str
    retry_after: float | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def reply(self, request_headers: Mapping[str, str], retry_after: float | None = None) -> Reply:
        wait = self.retry_after if retry_after is None else retry_after
        extra = list(self.headers)
        if wait is not None:
            extra.append(("Retry-After", format_seconds(wait)))
        return error_reply(self.status, self.code, self.message, request_headers, extra)


@dataclass(frozen=True)
class Delay:
    """Hold the request for ``min_ms``..``max_ms`` milliseconds, then let it go on."""

    min_ms: int
    max_ms: int

    def seconds(self, rng: random.Random) -> float:
        if self.min_ms == self.max_ms:
            return self.min_ms / 1000
        return rng.randint(self.min_ms, self.max_ms) / 1000


@dataclass(frozen=True)
class Reset:
    """Close the client's connection without any response."""


# Used when the real answer has no body to spoil (a 204, or an error).
_STAND_IN_BODY = json.dumps(
    {
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#virtualAppointment",
        "@odata.type": "#microsoft.graph.virtualAppointment",
        "id": "00000000-0000-0000-0000-000000000000",
    }
).encode()


@dataclass(frozen=True)
class BrokenBody:
    """Spoil the real answer once it is known: a 2xx whose JSON is cut in half, or empty.

    The real status is kept when it is a 2xx that can carry the breakage (a body to cut for
    ``malformed``, anything but 204 for ``empty``); otherwise the client gets a 200. The
    Content-Type stays ``application/json`` either way: that is what trips clients up.
    """

    truncate: bool  # True: malformed, False: empty

    def reply(self, real: Reply | None, request_headers: Mapping[str, str]) -> Reply:
        usable = real if real is not None and 200 <= real.status < 300 else None
        if self.truncate:
            cut = usable is not None and bool(usable.body)
            status = usable.status if cut and usable else 200
            source = usable.body if cut and usable else _STAND_IN_BODY
            body = source[: len(source) // 2]
        else:
            status = usable.status if usable and usable.status != 204 else 200
            body = b""
        headers = response_headers(request_headers, content_type=JSON)
        etag = usable.header("ETag") if usable else None
        if etag:
            headers.append(("ETag", etag))
        return Reply(status, tuple(headers), body, reason_phrase(status))


Effect = GraphError | Delay | Reset | BrokenBody | DistributedDelay | RateLimit | Hang | SlowBody
# The effects that hold a request a while and let the next rules run.
DELAYS = (Delay, DistributedDelay)


# --- what each kind answers by default ---------------------------------------------------

ERROR_DEFAULTS: dict[Kind, GraphError] = {
    Kind.ETAG_MISMATCH: GraphError(412, CONFLICT_CODE, CONFLICT_MESSAGE),
    Kind.THROTTLE: GraphError(429, "TooManyRequests", "Please retry again later.", 2),
    Kind.PROVISIONING_CONFLICT: GraphError(
        409,
        "Conflict",
        "The tenant is being provisioned for virtual appointments. This can take up to five "
        "minutes; retry after the interval in the Retry-After header.",
        30,
    ),
    Kind.UNAVAILABLE: GraphError(
        503,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry after the interval in the "
        "Retry-After header.",
        5,
    ),
    Kind.GATEWAY_TIMEOUT: GraphError(
        504, "GatewayTimeout", "The gateway did not receive a timely response from upstream."
    ),
    Kind.BAD_GATEWAY: GraphError(
        502, "BadGateway", "The gateway received an invalid response from upstream."
    ),
    Kind.SERVER_ERROR: GraphError(500, GENERAL_EXCEPTION, "An unspecified error has occurred."),
    Kind.INSUFFICIENT_STORAGE: GraphError(
        507, "quotaLimitReached", "The user has reached their quota limit."
    ),
    Kind.UNAUTHORIZED: GraphError(
        401,
        INVALID_AUTHENTICATION_TOKEN,
        "Access token validation failure.",
        headers=(AUTH_CHALLENGE,),
    ),
    Kind.FORBIDDEN: GraphError(
        403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
    ),
    Kind.PERMISSIONS: GraphError(403, permissions.FORBIDDEN_CODE, permissions.FORBIDDEN_MESSAGE),
}
DEFAULT_LATENCY_MS = 1000


# --- selectors ----------------------------------------------------------------------------

ROUTE_NAMES: dict[str, frozenset[Operation]] = {
    **{op.value: frozenset({op}) for op in Operation},
    "sms": frozenset({Operation.SMS, Operation.REMINDER_SMS}),
    "getvirtualappointmentjoinweburl": frozenset({Operation.JOIN_URL}),
    "sendvirtualappointmentsms": frozenset({Operation.SMS}),
    "sendvirtualappointmentremindersms": frozenset({Operation.REMINDER_SMS}),
}
METHODS = ("GET", "PUT", "PATCH", "DELETE", "POST")
# route=batch selects a JSON $batch call holding our requests, as a whole (docs/batch.md).
BATCH_ROUTE = "batch"


@dataclass(frozen=True)
class Selector:
    """Which requests a rule applies to, and which of those (by count and chance) it hits.

    ``matches`` is the respx-style pattern part; the window is counted over the matching
    requests that reached the rule: ``nth=N`` alone is the Nth only, ``times=N`` the first N,
    both together N requests starting at the nth. ``rate`` is drawn only inside the window.
    """

    methods: frozenset[str] = frozenset()  # empty: any method
    operations: frozenset[Operation] = frozenset()  # empty: any of our routes
    nth: int | None = None
    times: int | None = None
    rate: float = 1.0
    batch: bool = False  # route=batch: the JSON $batch call itself (a rule for batches alone)

    def matches(self, method: str, operation: Operation | None) -> bool:
        if self.methods and method.upper() not in self.methods:
            return False
        if self.batch and not self.operations:
            return False  # route=batch alone: the batch call, not the requests inside it
        return not self.operations or operation in self.operations

    def matches_batch(self, method: str) -> bool:
        """Whether the rule selects a ``$batch`` call holding our requests (``route=batch``);
        a rule without it applies to each request inside the batch instead."""
        return self.batch and (not self.methods or method.upper() in self.methods)

    def in_window(self, count: int) -> bool:
        first = self.nth or 1
        length = self.times if self.times is not None else (1 if self.nth else None)
        return count >= first and (length is None or count < first + length)

    def draw(self, rng: random.Random) -> bool:
        return self.rate >= 1.0 or rng.random() < self.rate


@dataclass(frozen=True)
class Rule:
    kind: Kind
    select: Selector
    effect: Effect
    text: str  # the rule as the user wrote it, for listings and messages
    # Each must hold for the rule to fire (fault_conditions.py): etag-mismatch when=stale's
    # Stale, every permissions rule's TokenRefused.
    conditions: tuple[Condition, ...] = ()
    enforce: bool = False  # throttle: a client back before Retry-After is throttled again


# --- parsing ------------------------------------------------------------------------------

_INT = re.compile(r"[0-9]{1,9}", re.ASCII)
_NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?|\.[0-9]{1,9}", re.ASCII)
_MS = re.compile(r"([0-9]{1,9})(?:-([0-9]{1,9}))?", re.ASCII)
_BOOLS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}
MAX_RETRY_AFTER = 86400.0
MAX_LATENCY_MS = 600_000

SELECTOR_KEYS = ("method", "route", "nth", "times", "rate")
ERROR_KEYS = ("code", "message", "retry-after")
KIND_KEYS: dict[Kind, tuple[str, ...]] = {
    **{kind: ERROR_KEYS for kind in ERROR_DEFAULTS},
    Kind.ETAG_MISMATCH: (*ERROR_KEYS, "when"),
    Kind.THROTTLE: (*ERROR_KEYS, "enforce"),
    Kind.PERMISSIONS: (*ERROR_KEYS, "scopes"),
    Kind.LATENCY: ("ms", "dist", "median", "p99", "mean", "stddev"),
    Kind.RATELIMIT: ("limit", "window", "cost", "code", "message"),
    Kind.HANG: ("max",),
    Kind.SLOW_BODY: ("ms", "chunks"),
    Kind.RESET: (),
    Kind.MALFORMED: (),
    Kind.EMPTY: (),
}


def allowed_keys(kind: Kind) -> tuple[str, ...]:
    return tuple(sorted((*KIND_KEYS[kind], *SELECTOR_KEYS)))


def _choices(values: Iterable[str]) -> str:
    return ", ".join(values)


def _alternatives(key: str, value: str) -> list[str]:
    parts = [p.strip() for p in value.split("|")]
    if not all(parts):
        raise FaultSpecError(f"{key}: empty alternative in {value!r}")
    return parts


def _methods(value: str) -> frozenset[str]:
    methods = {m.upper() for m in _alternatives("method", value)}
    unknown = sorted(methods - set(METHODS))
    if unknown:
        raise FaultSpecError(
            f"method: unknown method {unknown[0]!r}; allowed: {_choices(METHODS)} "
            "(several joined with |)"
        )
    return frozenset(methods)


def _operations(value: str) -> frozenset[Operation]:
    operations: set[Operation] = set()
    for name in _alternatives("route", value):
        if name.lower() == BATCH_ROUTE:
            continue
        try:
            operations |= ROUTE_NAMES[name.lower()]
        except KeyError:
            raise FaultSpecError(
                f"route: unknown route {name!r}; allowed: {_choices(op.value for op in Operation)}"
                ", or getVirtualAppointmentJoinWebUrl, sendVirtualAppointmentSms, "
                f"sendVirtualAppointmentReminderSms, or {BATCH_ROUTE} (several joined with |)"
            ) from None
    return frozenset(operations)


def _positive_int(key: str, value: str) -> int:
    if not _INT.fullmatch(value) or int(value) < 1:
        raise FaultSpecError(f"{key}: expected a whole number >= 1, got {value!r}")
    return int(value)


def _probability(value: str) -> float:
    if not _NUMBER.fullmatch(value) or float(value) > 1:
        raise FaultSpecError(f"rate: expected a probability from 0 to 1, got {value!r}")
    return float(value)


def _seconds(key: str, value: str) -> float:
    if not _NUMBER.fullmatch(value) or float(value) > MAX_RETRY_AFTER:
        raise FaultSpecError(
            f"{key}: expected seconds from 0 to {int(MAX_RETRY_AFTER)} (fractions allowed, "
            f"e.g. 2.128), got {value!r}"
        )
    return float(value)


def _bool(key: str, value: str) -> bool:
    try:
        return _BOOLS[value.lower()]
    except KeyError:
        raise FaultSpecError(f"{key}: expected true or false, got {value!r}") from None


def _delay(value: str) -> Delay:
    match = _MS.fullmatch(value)
    low = int(match.group(1)) if match else -1
    high = int(match.group(2)) if match and match.group(2) else low
    if not match or not 0 <= low <= high <= MAX_LATENCY_MS:
        raise FaultSpecError(
            f"ms: expected milliseconds N or MIN-MAX with MIN <= MAX <= {MAX_LATENCY_MS}, "
            f"got {value!r}"
        )
    return Delay(low, high)


def _text(key: str, value: str) -> str:
    if not value.strip():
        raise FaultSpecError(f"{key}: must not be empty")
    return value.strip()


def _selector(settings: Mapping[str, str]) -> Selector:
    return Selector(
        methods=_methods(settings["method"]) if "method" in settings else frozenset(),
        operations=_operations(settings["route"]) if "route" in settings else frozenset(),
        nth=_positive_int("nth", settings["nth"]) if "nth" in settings else None,
        times=_positive_int("times", settings["times"]) if "times" in settings else None,
        rate=_probability(settings["rate"]) if "rate" in settings else 1.0,
        batch="route" in settings
        and BATCH_ROUTE in (n.lower() for n in _alternatives("route", settings["route"])),
    )


def _kind(name: str) -> Kind:
    try:
        return Kind(name.strip().lower())
    except ValueError:
        raise FaultSpecError(
            f"unknown fault kind {name.strip()!r}; allowed: {_choices(k.value for k in Kind)}"
        ) from None


def _effect(kind: Kind, settings: Mapping[str, str]) -> Effect:
    if kind in SHAPE_PARSERS:
        return SHAPE_PARSERS[kind](settings)
    if kind is Kind.RESET:
        return Reset()
    if kind in (Kind.MALFORMED, Kind.EMPTY):
        return BrokenBody(truncate=kind is Kind.MALFORMED)
    default = ERROR_DEFAULTS[kind]
    return GraphError(
        default.status,
        _text("code", settings["code"]) if "code" in settings else default.code,
        _text("message", settings["message"]) if "message" in settings else default.message,
        (
            _seconds("retry-after", settings["retry-after"])
            if "retry-after" in settings
            else default.retry_after
        ),
        default.headers,
    )


# --- traffic shapes: ratelimit, latency distributions, hang, slow-body --------------------
# The effects live in rate_limits.py, latency.py and stalls.py; here only their keys.

DEFAULT_RATE_LIMIT = 120  # per window: Dev Proxy's RateLimitingPlugin's default
DEFAULT_RATE_WINDOW = 60.0


def _positive_seconds(key: str, value: str, ceiling: float) -> float:
    """Seconds above zero, fractions allowed, an ``s`` after the number too (``max=30s``)."""
    number = value[:-1] if value.lower().endswith("s") else value
    if not _NUMBER.fullmatch(number) or not 0 < float(number) <= ceiling:
        raise FaultSpecError(
            f"{key}: expected seconds above 0 and up to {ceiling:g} (e.g. 30 or 2.5), got {value!r}"
        )
    return float(number)


def _milliseconds(key: str, value: str) -> float:
    if not _NUMBER.fullmatch(value) or float(value) > MAX_LATENCY_MS:
        raise FaultSpecError(
            f"{key}: expected milliseconds from 0 to {MAX_LATENCY_MS}, got {value!r}"
        )
    return float(value)


def _costs(value: str, limit: int) -> tuple[tuple[tuple[Operation, int], ...], int]:
    """``create:5|get:1`` (each OP:N; unnamed operations cost 1) and a bare ``N`` (what the
    unnamed ones cost)."""
    costs: dict[Operation, int] = {}
    default: int | None = None
    for item in _alternatives("cost", value):
        name, sep, amount = item.rpartition(":")
        number = _positive_int("cost", amount.strip())
        if number > limit:
            raise FaultSpecError(
                f"cost: {item!r} costs more than the whole limit ({limit}); nothing could pass"
            )
        if not sep:
            if default is not None:
                raise FaultSpecError(f"cost: two bare costs in {value!r}; give one at most")
            default = number
            continue
        try:
            operations = ROUTE_NAMES[name.strip().lower()]
        except KeyError:
            raise FaultSpecError(
                f"cost: unknown route {name.strip()!r} in {item!r}; allowed: "
                f"{_choices(op.value for op in Operation)} (OP:N joined with |, e.g. "
                "create:5|get:1; a bare N for the others)"
            ) from None
        if operations & costs.keys():
            raise FaultSpecError(f"cost: {name.strip()!r} is given a cost twice in {value!r}")
        costs.update(dict.fromkeys(sorted(operations), number))
    return tuple(costs.items()), 1 if default is None else default


def _rate_limit(settings: Mapping[str, str]) -> RateLimit:
    limit = _positive_int("limit", settings["limit"]) if "limit" in settings else DEFAULT_RATE_LIMIT
    window = (
        _positive_seconds("window", settings["window"], MAX_RETRY_AFTER)
        if "window" in settings
        else DEFAULT_RATE_WINDOW
    )
    costs, default_cost = _costs(settings["cost"], limit) if "cost" in settings else ((), 1)
    throttle = ERROR_DEFAULTS[Kind.THROTTLE]
    return RateLimit(
        Policy(limit, window, costs, default_cost),
        _text("code", settings["code"]) if "code" in settings else throttle.code,
        _text("message", settings["message"]) if "message" in settings else throttle.message,
    )


_DISTRIBUTION_KEYS = {
    Distribution.UNIFORM: ("ms",),
    Distribution.LOGNORMAL: ("median", "p99"),
    Distribution.NORMAL: ("mean", "stddev", "median", "p99"),
}


def _latency(settings: Mapping[str, str]) -> Delay | DistributedDelay:
    name = settings.get("dist", Distribution.UNIFORM.value).lower()
    try:
        dist = Distribution(name)
    except ValueError:
        raise FaultSpecError(
            f"dist: expected {_choices(d.value for d in Distribution)}, got {settings['dist']!r}"
        ) from None
    for key in ("ms", "median", "p99", "mean", "stddev"):
        if key in settings and key not in _DISTRIBUTION_KEYS[dist]:
            raise FaultSpecError(
                f"{key}: not a key of dist={dist}; it takes {_choices(_DISTRIBUTION_KEYS[dist])}"
            )
    if dist is Distribution.UNIFORM:
        if "ms" in settings:
            return _delay(settings["ms"])
        return Delay(DEFAULT_LATENCY_MS, DEFAULT_LATENCY_MS)
    given = {
        key: _milliseconds(key, settings[key])
        for key in _DISTRIBUTION_KEYS[dist]
        if key in settings
    }
    percentiles = "median" in given or "p99" in given
    wanted = (
        ("median", "p99") if percentiles or dist is Distribution.LOGNORMAL else ("mean", "stddev")
    )
    missing = [key for key in wanted if key not in given]
    mixed = percentiles and ("mean" in given or "stddev" in given)
    if missing or mixed:
        forms = (
            "median=MS,p99=MS"
            if dist is Distribution.LOGNORMAL
            else ("mean=MS,stddev=MS or median=MS,p99=MS")
        )
        raise FaultSpecError(f"dist={dist} takes {forms}")
    try:
        if dist is Distribution.LOGNORMAL:
            return latency.lognormal(given["median"], given["p99"], MAX_LATENCY_MS)
        if percentiles:
            return latency.normal_from_percentiles(given["median"], given["p99"], MAX_LATENCY_MS)
        return latency.normal(given["mean"], given["stddev"], MAX_LATENCY_MS)
    except ValueError as exc:
        raise FaultSpecError(f"dist={dist}: {exc}") from None


def _hang(settings: Mapping[str, str]) -> Hang:
    if "max" not in settings:
        return Hang()
    return Hang(_positive_seconds("max", settings["max"], MAX_HANG_SECONDS))


def _slow_body(settings: Mapping[str, str]) -> SlowBody:
    ms = DEFAULT_SLOW_BODY_MS
    if "ms" in settings:
        value = settings["ms"]
        if not _INT.fullmatch(value) or not 0 < int(value) <= MAX_LATENCY_MS:
            raise FaultSpecError(
                f"ms: expected the whole body's milliseconds, 1 to {MAX_LATENCY_MS}, got {value!r}"
            )
        ms = int(value)
    chunks = _positive_int("chunks", settings["chunks"]) if "chunks" in settings else DEFAULT_CHUNKS
    if chunks > MAX_CHUNKS:
        raise FaultSpecError(f"chunks: expected 1 to {MAX_CHUNKS}, got {chunks}")
    return SlowBody(ms, chunks)


SHAPE_PARSERS: dict[Kind, Callable[[Mapping[str, str]], Effect]] = {
    Kind.LATENCY: _latency,
    Kind.RATELIMIT: _rate_limit,
    Kind.HANG: _hang,
    Kind.SLOW_BODY: _slow_body,
}


def build_rule(kind_name: str, pairs: Iterable[tuple[str, str]], text: str) -> Rule:
    """The rule for KIND and its key=value pairs; ``text`` is how the user wrote it."""
    kind = _kind(kind_name)
    allowed = allowed_keys(kind)
    settings: dict[str, str] = {}
    for raw_key, value in pairs:
        key = raw_key.strip().lower()
        if key not in allowed:
            raise FaultSpecError(
                f"unknown key {raw_key.strip()!r} for {kind}; allowed: {_choices(allowed)}"
            )
        if key in settings:
            raise FaultSpecError(f"key {key!r} given twice")
        settings[key] = value.strip()
    effect = _effect(kind, settings)
    when = settings.get("when", "always").lower()
    if when not in ("always", "stale"):
        raise FaultSpecError(f"when: expected always or stale, got {settings['when']!r}")
    return Rule(
        kind=kind,
        select=_selector(settings),
        effect=effect,
        text=text,
        conditions=_conditions(kind, settings, stale=when == "stale"),
        enforce=_bool("enforce", settings["enforce"]) if "enforce" in settings else False,
    )


def _conditions(kind: Kind, settings: Mapping[str, str], *, stale: bool) -> tuple[Condition, ...]:
    conditions: list[Condition] = [Stale()] if stale else []
    if kind is Kind.PERMISSIONS:
        accepted = (
            permissions.parse_scopes(_alternatives("scopes", settings["scopes"]))
            if "scopes" in settings
            else None
        )
        conditions.append(TokenRefused(accepted))
    return tuple(conditions)


def parse_spec(spec: str) -> Rule:
    """Parse ``KIND[:key=value,...]``. Raises only :class:`FaultSpecError`."""
    if not isinstance(spec, str) or not spec.strip():
        raise FaultSpecError("empty fault spec; expected KIND[:key=value,...]")
    kind_name, _, rest = spec.strip().partition(":")
    pairs: list[tuple[str, str]] = []
    if rest.strip():
        for item in rest.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise FaultSpecError(
                    f"expected key=value, got {item.strip()!r} (KIND[:key=value,...], "
                    "comma-separated)"
                )
            pairs.append((key, value))
    return build_rule(kind_name, pairs, spec.strip())


def _scalar(key: str, value: Any) -> str:
    """A YAML value as the text a SPEC would carry: true/false, numbers, lists joined by |."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        # as written, not as repr spells it: YAML's 0.00001 is repr's 1e-05, which no key reads
        return format(Decimal(repr(value)), "f")
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, Mapping) and value:  # cost: {create: 5, get: 1}
        return "|".join(f"{_scalar(key, k)}:{_scalar(key, v)}" for k, v in value.items())
    if isinstance(value, list) and value and all(isinstance(v, str | int) for v in value):
        return "|".join(str(v) for v in value)
    raise FaultSpecError(f"{key}: expected a single value, got {type(value).__name__}")


def rule_from_mapping(item: Mapping[Any, Any]) -> Rule:
    """A rule written as ``{kind: throttle, times: 1, retry-after: 1}``."""
    if "kind" not in item:
        raise FaultSpecError(f"missing 'kind'; one of {_choices(k.value for k in Kind)}")
    kind_name = _scalar("kind", item["kind"])
    pairs = [(str(k), _scalar(str(k), v)) for k, v in item.items() if k != "kind"]
    text = ",".join(f"{k}={v}" for k, v in pairs)
    return build_rule(kind_name, pairs, f"{kind_name}:{text}" if text else kind_name)


def rule_from_item(item: Any) -> Rule:
    if isinstance(item, str):
        return parse_spec(item)
    if isinstance(item, Mapping):
        return rule_from_mapping(item)
    raise FaultSpecError(
        f"expected a spec string or a mapping with 'kind', got {type(item).__name__}"
    )


def parse_rules_text(text: str, source: str) -> list[Rule]:
    """The rules of a ``--faults`` YAML document; errors start with ``source:line:``."""
    try:
        data = yaml.load(text, Loader=SAFE_LOADER)
        root = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        line, problem = error_location(exc)
        where = f"{source}:{line}" if line else source
        raise FaultSpecError(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        return []
    if not isinstance(data, list) or not isinstance(root, yaml.SequenceNode):
        raise FaultSpecError(
            f"{source}:1: expected a YAML list of fault specs, got {type(data).__name__}"
        )
    rules = []
    for item, node in zip(data, root.value, strict=True):
        try:
            rules.append(rule_from_item(item))
        except FaultSpecError as exc:
            raise FaultSpecError(f"{source}:{node.start_mark.line + 1}: {exc}") from None
    return rules


def load_rules_file(path: str | Path) -> list[Rule]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise FaultSpecError(f"{path}: cannot read faults file: {reason}") from None
    return parse_rules_text(text, str(path))


# The seed of one rule's random stream: its own, so its draws don't depend on other rules.
SeedFor = Callable[[int, Rule], random.Random]


def seeded_random(seed: int | None) -> SeedFor:
    def make(index: int, rule: Rule) -> random.Random:
        if seed is None:
            return random.Random()
        return random.Random(f"{seed}/{index}/{rule.text}")

    return make
