"""Who may call these APIs: Graph's permission tables, checked against the bearer token.

Every virtualAppointment page of the Graph docs (and the live actions' pages) has the same
shape of table: delegated work or school accounts only, with certain scopes; personal
Microsoft accounts and application permissions "Not supported". Graph refuses the others with
403. Here the token is read as a JWT **without verifying it** (no keys, no clock, no network:
a test token is as good as a real one) and judged on three claims:

- ``tid`` of the consumer tenant, 9188040d-6c67-4c5b-b112-36a304b66dad: a personal account;
- no ``scp`` but ``roles`` (or ``idtyp: app``): an app-only token, application permissions;
- ``scp`` (space-separated delegated scopes) holding none of the operation's accepted scopes.

A token that is not a JWT (``Bearer x``, an opaque token) is not judged: nothing here can
say what it grants. Nothing here knows mitmproxy.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from proxy_addons.graph.routes import Operation

# Real Graph's 403 for onlineMeetings, app-only tokens and missing scopes alike, as reported
# in issues on Microsoft's docs repositories: code "Forbidden", an empty message.
FORBIDDEN_CODE = "Forbidden"
FORBIDDEN_MESSAGE = ""
# The tenant id every personal Microsoft account's token carries.
PERSONAL_ACCOUNT_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclass(frozen=True)
class Documented:
    """One row of an operation's permissions table, delegated work or school accounts: the
    scope its page marks least privileged, then the higher privileged ones it also accepts."""

    least: str
    higher: tuple[str, ...] = ()

    @property
    def accepted(self) -> tuple[str, ...]:
        return (self.least, *self.higher)


# From each operation's Graph docs page. Create (seeds/create-virtualappointment.txt), update
# and delete: least privileged OnlineMeetings.ReadWrite, no higher one; get: OnlineMeetings.Read,
# or OnlineMeetings.ReadWrite; the VirtualAppointment.* scopes the retired pages' note announces
# are accepted besides. getVirtualAppointmentJoinWebUrl: least privileged VirtualAppointment.Read,
# higher OnlineMeetings.Read, OnlineMeetings.ReadWrite, VirtualAppointment.ReadWrite. The two SMS
# actions: VirtualAppointmentNotification.Send, no higher one. Personal accounts and application
# permissions: "Not supported" on every page.
PERMISSIONS: Mapping[Operation, Documented] = {
    Operation.CREATE: Documented("OnlineMeetings.ReadWrite", ("VirtualAppointment.ReadWrite",)),
    Operation.UPDATE: Documented("OnlineMeetings.ReadWrite", ("VirtualAppointment.ReadWrite",)),
    Operation.DELETE: Documented("OnlineMeetings.ReadWrite", ("VirtualAppointment.ReadWrite",)),
    Operation.GET: Documented(
        "OnlineMeetings.Read",
        ("VirtualAppointment.Read", "OnlineMeetings.ReadWrite", "VirtualAppointment.ReadWrite"),
    ),
    Operation.JOIN_URL: Documented(
        "VirtualAppointment.Read",
        ("OnlineMeetings.Read", "OnlineMeetings.ReadWrite", "VirtualAppointment.ReadWrite"),
    ),
    Operation.SMS: Documented("VirtualAppointmentNotification.Send"),
    Operation.REMINDER_SMS: Documented("VirtualAppointmentNotification.Send"),
}
# The delegated scopes each operation accepts: what the permission checks hold a token to.
DOCUMENTED_SCOPES: Mapping[Operation, tuple[str, ...]] = {
    operation: row.accepted for operation, row in PERMISSIONS.items()
}


def _segment(text: str) -> Any:
    """One base64url JWT segment as JSON (padding optional, as JWTs leave it off)."""
    raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    return json.loads(raw.decode("utf-8"))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWS compact token, unverified; None for anything that is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (binascii.Error, ValueError, RecursionError):  # bad base64, UTF-8 or JSON
        return None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return None
    return claims


def parse_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Scopes as a user gives them: each item may hold several, space-separated."""
    return frozenset(scope for item in scopes for scope in item.split())


def _folded(scopes: Iterable[str]) -> set[str]:
    """Scopes compared without regard to case, as Graph matches permission names."""
    return {scope.lower() for scope in scopes}


def refusal(
    authorization: str | None,
    operation: Operation | None,
    accepted: frozenset[str] | None = None,
) -> str | None:
    """Why Graph would answer this request 403, or None.

    ``accepted``: the delegated scopes that grant the operation; None takes the operation's
    documented ones (:data:`DOCUMENTED_SCOPES`). Requests without a bearer token, or whose
    token is not a JWT, are not judged here.
    """
    token = bearer_token(authorization)
    claims = jwt_claims(token) if token else None
    if claims is None or operation is None:
        return None
    if str(claims.get("tid", "")).lower() == PERSONAL_ACCOUNT_TENANT:
        return (
            f"the token is a personal Microsoft account's (tid {PERSONAL_ACCOUNT_TENANT}); "
            "personal accounts are not supported"
        )
    scp = claims.get("scp")
    if not isinstance(scp, str) or not scp.strip():
        if claims.get("roles") or claims.get("idtyp") == "app":
            return (
                "the token is app-only (roles, no scp); application permissions are not supported"
            )
        return "the token carries no delegated scopes (scp)"
    wanted = DOCUMENTED_SCOPES[operation] if accepted is None else tuple(sorted(accepted))
    if _folded(wanted) & _folded(scp.split()):
        return None
    return f"the token's scopes ({scp.strip()}) include none that {operation} accepts: " + (
        ", ".join(wanted)
    )
