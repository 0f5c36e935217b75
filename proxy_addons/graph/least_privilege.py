"""The least-privilege report: for each operation called, the scope its docs mark least
privileged; for each token seen, what it was granted beyond what its calls needed.

Offline, as Dev Proxy's minimal-permissions report is not (it asks a Microsoft-hosted
service): the scopes come from the table the permission checks hold tokens to
(``permissions.PERMISSIONS``), and a token is read as those checks read it, a JWT **not
verified**. What a token's calls *needed* is the least privileged scope of each operation it
called; every other scope (or, for an app-only token, every role: no operation here takes
application permissions) is *beyond needed*. A token the calls could not work with at all
(a personal account's, an app-only one) says so in its notes.

A token is never printed, nor anything that would let one be replayed: it is named by its
app id and tenant (``appid``/``azp``, ``tid``) and the short hash of what it grants, or, when
it is not a JWT, the short hash of the token itself. The report is a plain JSON document
that several runs' (a pytest-xdist worker's each) merge into one (:meth:`Usage.merge`).
Nothing here knows mitmproxy.
"""

from __future__ import annotations

import functools
import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from proxy_addons.graph.permissions import (
    PERMISSIONS,
    PERSONAL_ACCOUNT_TENANT,
    bearer_token,
    jwt_claims,
)
from proxy_addons.graph.routes import Operation

HASH_LENGTH = 8  # hex digits of a sha256: enough to tell a run's tokens apart, no more
NAME_LENGTH = 80  # characters of a claim kept in a name: claims are the client's to write
LONGEST_REMEMBERED = 16 * 1024  # characters of an Authorization header worth remembering


class TokenKind(StrEnum):
    """What a bearer token is, as the permission checks read it."""

    DELEGATED = "delegated"  # scp: a work or school account's delegated scopes
    APP_ONLY = "app-only"  # roles and no scp: application permissions
    PERSONAL = "personal"  # the consumer tenant's tid: a personal Microsoft account
    NOT_JWT = "not-a-jwt"  # opaque to us: nothing can be said of what it grants


NOTES = {
    TokenKind.APP_ONLY: "application permissions are not supported by these APIs",
    TokenKind.PERSONAL: "personal Microsoft accounts are not supported by these APIs",
    TokenKind.NOT_JWT: "not a JWT: what it grants cannot be read",
}


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]


def _claim(claims: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = claims.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:NAME_LENGTH]
    return ""


def _grants(claims: Mapping[str, Any], kind: TokenKind) -> tuple[str, ...]:
    if kind is TokenKind.APP_ONLY:
        roles = claims.get("roles")
        names = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
    else:
        scp = claims.get("scp")
        names = scp.split() if isinstance(scp, str) else []
    return tuple(sorted(dict.fromkeys(name[:NAME_LENGTH] for name in names), key=str.lower))


@dataclass(frozen=True)
class TokenIdentity:
    """A token as the report names it: never the token itself."""

    kind: TokenKind
    app_id: str = ""
    tenant: str = ""
    granted: tuple[str, ...] = ()  # scp's scopes, or an app-only token's roles
    fingerprint: str = ""  # the short hash: of the grants, or of an opaque token

    @property
    def key(self) -> str:
        """Tokens with one key are one row: a suite mints a token per test, all alike."""
        return f"{self.kind}:{self.app_id}:{self.tenant}:{self.fingerprint}"

    @property
    def name(self) -> str:
        if self.kind is TokenKind.NOT_JWT:
            return f"token sha256:{self.fingerprint}"
        app = self.app_id or "(no app id)"
        tenant = self.tenant or "(no tenant)"
        return f"app {app}, tenant {tenant} (grants {self.fingerprint})"

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "app_id": self.app_id,
            "tenant": self.tenant,
            "granted": list(self.granted),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TokenIdentity:
        return cls(
            TokenKind(data["kind"]),
            str(data.get("app_id", "")),
            str(data.get("tenant", "")),
            tuple(str(g) for g in data.get("granted", ())),
            str(data.get("fingerprint", "")),
        )


def identify(authorization: str | None) -> TokenIdentity | None:
    """The identity of the bearer token in an ``Authorization`` header; None without one.

    Remembered for the headers seen last (a client sends one token many times), unless the
    header is longer than any real token: a hostile client's 100 KB ones are not kept.
    """
    if authorization is not None and len(authorization) > LONGEST_REMEMBERED:
        return _identify(authorization)
    return _remembered(authorization)


def _identify(authorization: str | None) -> TokenIdentity | None:
    token = bearer_token(authorization)
    if token is None:
        return None
    claims = jwt_claims(token)
    if claims is None:
        return TokenIdentity(TokenKind.NOT_JWT, fingerprint=_short_hash(token))
    tenant = _claim(claims, "tid")
    scp = claims.get("scp")
    if tenant.lower() == PERSONAL_ACCOUNT_TENANT:
        kind = TokenKind.PERSONAL
    elif (not isinstance(scp, str) or not scp.strip()) and (
        claims.get("roles") or claims.get("idtyp") == "app"
    ):
        kind = TokenKind.APP_ONLY
    else:
        kind = TokenKind.DELEGATED
    granted = _grants(claims, kind)
    fingerprint = _short_hash(f"{kind} {' '.join(granted)}")
    return TokenIdentity(kind, _claim(claims, "appid", "azp"), tenant, granted, fingerprint)


_remembered = functools.lru_cache(maxsize=64)(_identify)


def least_privileged(operations: Iterable[Operation]) -> tuple[str, ...]:
    """The least privileged scopes the docs name for ``operations``, each once, sorted."""
    return tuple(sorted({PERMISSIONS[op].least for op in operations}, key=str.lower))


def beyond_needed(identity: TokenIdentity, operations: Iterable[Operation]) -> tuple[str, ...]:
    """What ``identity`` grants that its ``operations`` did not need (scopes compared without
    regard to case, as Graph compares them); every role of an app-only token."""
    if identity.kind is TokenKind.APP_ONLY:
        return identity.granted
    needed = {scope.lower() for scope in least_privileged(operations)}
    return tuple(g for g in identity.granted if g.lower() not in needed)


def missing(identity: TokenIdentity, operations: Iterable[Operation]) -> tuple[str, ...]:
    """The least privileged scopes of ``operations`` a delegated token does not hold (it may
    hold a higher privileged one instead, or be refused)."""
    if identity.kind is not TokenKind.DELEGATED:
        return ()
    held = {g.lower() for g in identity.granted}
    return tuple(s for s in least_privileged(operations) if s.lower() not in held)


@dataclass
class Usage:
    """Which operations were called, and by which token, over a run: the report's counts."""

    operations: Counter[str] = field(default_factory=Counter)
    tokens: dict[str, tuple[TokenIdentity, Counter[str]]] = field(default_factory=dict)
    anonymous: Counter[str] = field(default_factory=Counter)  # calls with no bearer token

    def add(self, operation: Operation, identity: TokenIdentity | None, count: int = 1) -> None:
        self.operations[operation] += count
        if identity is None:
            self.anonymous[operation] += count
            return
        calls = self.tokens.setdefault(identity.key, (identity, Counter()))[1]
        calls[operation] += count

    def merge(self, other: Usage) -> None:
        self.operations.update(other.operations)
        self.anonymous.update(other.anonymous)
        for identity, calls in other.tokens.values():
            self.tokens.setdefault(identity.key, (identity, Counter()))[1].update(calls)

    def to_json(self) -> dict[str, Any]:
        """The report: per operation its calls and documented scopes, per token what its
        calls needed and what it has beyond that."""
        ordered = [op for op in Operation if self.operations[op]]
        operations = {
            str(op): {
                "calls": self.operations[op],
                "least_privileged": PERMISSIONS[op].least,
                "higher_privileged": list(PERMISSIONS[op].higher),
            }
            for op in ordered
        }
        tokens = []
        for identity, calls in sorted(self.tokens.values(), key=lambda item: item[0].name):
            used = [Operation(op) for op in Operation if calls[op]]
            tokens.append(
                {
                    "token": identity.name,
                    **identity.to_json(),
                    "operations": {str(op): calls[op] for op in used},
                    "least_privileged": list(least_privileged(used)),
                    "beyond_needed": list(beyond_needed(identity, used)),
                    "missing": list(missing(identity, used)),
                    "note": NOTES.get(identity.kind, ""),
                }
            )
        anonymous = {str(op): self.anonymous[op] for op in Operation if self.anonymous[op]}
        return {"operations": operations, "tokens": tokens, "without_token": anonymous}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Usage:
        usage = cls()
        for name, row in data.get("operations", {}).items():
            usage.operations[Operation(name)] += int(row["calls"])
        for name, count in data.get("without_token", {}).items():
            usage.anonymous[Operation(name)] += int(count)
        for row in data.get("tokens", ()):
            identity = TokenIdentity.from_json(row)
            calls = usage.tokens.setdefault(identity.key, (identity, Counter()))[1]
            for name, count in row.get("operations", {}).items():
                calls[Operation(name)] += int(count)
        return usage


def beyond_and_note(row: Mapping[str, Any]) -> tuple[str, str]:
    """A report's token row as the tables show it: what it has beyond needed (``unknown`` for
    a token that can't be read), and its note (or the least privileged scopes it lacks)."""
    if row["kind"] == TokenKind.NOT_JWT:
        beyond = "unknown"
    else:
        beyond = ", ".join(row["beyond_needed"]) or "none"
    note = row["note"] or (f"lacks {', '.join(row['missing'])}" if row["missing"] else "")
    return beyond, note
