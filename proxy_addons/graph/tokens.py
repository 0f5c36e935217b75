"""Test tokens: unsigned JWTs shaped as Microsoft identity platform's Graph access tokens.

``graph-vcr-proxy token`` and the pytest fixture ``graph_vcr_token`` mint them, so that a test
needing an app-only, a personal-account or an under-scoped token does not hand-build one (as
Dev Proxy's ``devproxy jwt create``). The permissions checks (``permissions.py``: simulate's
403s, the ``permissions`` fault) read a token's claims without verifying its signature, as
they read Microsoft's; so a token here is unsigned (``alg: none``, an empty signature, RFC
7519 section 6.1): nothing could mistake it for one that a real service would accept, and no
key is needed, fixed or not.

The claims are those of a v1.0 Graph token (Graph's tokens are v1.0, whatever endpoint issued
them): ``aud``, ``iss``, ``iat``/``nbf``/``exp``, ``tid``, ``oid``, ``sub``, ``appid`` (and
``azp``, v2.0's name for it), ``idtyp``, ``ver``; a delegated token carries ``scp`` (scopes,
space-separated), an app-only one ``roles`` and no ``scp``; a personal Microsoft account's
token carries the consumer tenant's ``tid``. Nothing here knows mitmproxy or pytest.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from proxy_addons.graph.permissions import PERSONAL_ACCOUNT_TENANT

GRAPH_AUDIENCE = "https://graph.microsoft.com"
# Fixed, made-up ids (version 4 shape, all zeros but the last digits): a minted token is the
# same from run to run but for its times, and no id can be a real tenant's or app's.
DEFAULT_TENANT = "00000000-0000-4000-8000-000000000001"
DEFAULT_APP_ID = "00000000-0000-4000-8000-000000000002"
SUBJECT_ID = "00000000-0000-4000-8000-000000000003"  # the user, or the app's service principal
DEFAULT_EXPIRES_IN = 3600  # seconds, as the identity platform's default access token lifetime
DEFAULT_USER = "test.user@contoso.example"


class TokenError(ValueError):
    """Arguments that make no token Microsoft would issue; ``str()`` is one line."""


def _guid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise TokenError(f"{name} must be a GUID, not {value!r}") from None


def _names(kind: str, items: Iterable[str] | str) -> tuple[str, ...]:
    """Scopes or roles as given: a string, or several, each possibly space-separated; each
    once, in order."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, Iterable) or not all(isinstance(item, str) for item in items):
        raise TokenError(f"{kind} must be strings, not {items!r}")
    return tuple(dict.fromkeys(name for item in items for name in item.split()))


@dataclass(frozen=True)
class TokenSpec:
    """What a test token says: delegated ``scopes``, or ``app`` with ``roles``; for a
    ``personal`` account or a ``tenant``'s; valid for ``expires_in`` seconds (negative: one
    that has already expired)."""

    scopes: tuple[str, ...] = ()
    app: bool = False
    roles: tuple[str, ...] = ()
    personal: bool = False
    tenant: str | None = None
    expires_in: int = DEFAULT_EXPIRES_IN
    app_id: str = DEFAULT_APP_ID

    def __post_init__(self) -> None:
        if self.app and self.scopes:
            raise TokenError("an app-only token carries roles, not scopes")
        if self.roles and not self.app:
            raise TokenError("roles are an app-only token's (app)")
        if self.personal and self.app:
            raise TokenError("a personal Microsoft account has no app-only tokens")
        if self.tenant is not None:
            object.__setattr__(self, "tenant", _guid("tenant", self.tenant))
        if self.personal and self.tenant not in (None, PERSONAL_ACCOUNT_TENANT):
            raise TokenError(
                f"a personal account's tenant is {PERSONAL_ACCOUNT_TENANT}, not {self.tenant}"
            )
        object.__setattr__(self, "app_id", _guid("app id", self.app_id))
        if isinstance(self.expires_in, bool) or not isinstance(self.expires_in, int):
            raise TokenError(f"expires_in must be whole seconds, not {self.expires_in!r}")

    @property
    def tenant_id(self) -> str:
        if self.personal:
            return PERSONAL_ACCOUNT_TENANT
        return self.tenant or DEFAULT_TENANT

    def claims(self, now: int) -> dict[str, Any]:
        tenant = self.tenant_id
        claims: dict[str, Any] = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.expires_in,
            "appid": self.app_id,
            "azp": self.app_id,
            "idtyp": "app" if self.app else "user",
            "oid": SUBJECT_ID,
            "sub": SUBJECT_ID,
            "tid": tenant,
            "ver": "1.0",
        }
        if self.app:
            claims["roles"] = list(self.roles)
        else:
            claims["scp"] = " ".join(self.scopes)
            claims["upn"] = DEFAULT_USER
            claims["name"] = "Test User"
        return claims


def spec(
    *,
    scopes: Iterable[str] | str = (),
    app: bool = False,
    roles: Iterable[str] | str = (),
    personal: bool = False,
    tenant: str | None = None,
    expires_in: int = DEFAULT_EXPIRES_IN,
    app_id: str = DEFAULT_APP_ID,
) -> TokenSpec:
    """A :class:`TokenSpec` from keyword arguments as the fixture and the CLI take them."""
    return TokenSpec(
        _names("scopes", scopes),
        app,
        _names("roles", roles),
        personal,
        tenant,
        expires_in,
        app_id,
    )


def _segment(document: dict[str, Any]) -> str:
    raw = json.dumps(document, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def encode(claims: dict[str, Any]) -> str:
    """An unsigned JWT (JWS compact form, ``alg: none``, empty signature) of ``claims``."""
    return f"{_segment({'typ': 'JWT', 'alg': 'none'})}.{_segment(claims)}."


def mint(token: TokenSpec, now: float | None = None) -> str:
    """The token ``token`` describes, issued at ``now`` (default: the current time)."""
    issued = int(time.time() if now is None else now)
    return encode(token.claims(issued))


def token(
    *,
    scopes: Iterable[str] | str = (),
    app: bool = False,
    roles: Iterable[str] | str = (),
    personal: bool = False,
    tenant: str | None = None,
    expires_in: int = DEFAULT_EXPIRES_IN,
    app_id: str = DEFAULT_APP_ID,
) -> str:
    """A test token, minted now: the ``graph_vcr_token`` fixture's factory, and what
    ``graph-vcr-proxy token`` prints for the same arguments."""
    wanted = spec(
        scopes=scopes,
        app=app,
        roles=roles,
        personal=personal,
        tenant=tenant,
        expires_in=expires_in,
        app_id=app_id,
    )
    return mint(wanted)
