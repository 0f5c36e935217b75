"""``simulate``'s options (the Emulator addon's), in the command line's order."""

from __future__ import annotations

from collections.abc import Sequence

from proxy_addons.common.option_table import Option
from proxy_addons.graph import permissions

STATE = Option(
    "graph_state",
    str,
    "",
    "JSON file that keeps the emulator's appointments across restarts (written "
    "atomically after every change). Empty: in memory only.",
    flag="--state",
    flag_help="keep appointments in FILE across restarts",
    metavar="FILE",
    path=True,
)
PROVISIONING_DELAY = Option(
    "graph_provisioning_delay",
    int,
    0,
    "Seconds in the Retry-After of a 409 Conflict that each owner's first create gets "
    "once, as Graph does while it provisions a tenant. 0: off.",
    flag="--provisioning-delay",
    flag_help="each owner's first create gets 409 with this Retry-After once (default: 0, off)",
    metavar="SECONDS",
)
DEPRECATION_WARNINGS = Option(
    "graph_deprecation_warnings",
    bool,
    False,
    "Log that virtualAppointment is retired and add Deprecation, Sunset and Link "
    "headers to its responses.",
    flag="--deprecation-warnings",
    flag_help="log that virtualAppointment is retired; add Deprecation/Sunset/Link headers",
)
REQUIRE_AUTH = Option(
    "graph_require_auth",
    bool,
    True,
    "Answer requests without an 'Authorization: Bearer ...' header with Graph's 401.",
    flag="--allow-anonymous",
    flag_help="accept requests without an 'Authorization: Bearer' header",
    inverted=True,
)
ALLOW_ANY_TOKEN = Option(
    "graph_allow_any_token",
    bool,
    False,
    "Accept any bearer token. Off: a JWT (read, not verified) that is app-only, a "
    "personal account's, or without an accepted delegated scope gets Graph's 403.",
    flag="--allow-any-token",
    flag_help="do not judge what a JWT bearer token grants (by default app-only tokens, "
    "personal accounts' tokens and tokens without an accepted scope get Graph's 403)",
)
ACCEPTED_SCOPES = Option(
    "graph_accepted_scopes",
    Sequence[str],
    [],
    "Delegated scopes that grant every operation. Empty: each operation's documented "
    "ones (e.g. OnlineMeetings.ReadWrite or VirtualAppointment.ReadWrite to create).",
    flag="--accept-scope",
    flag_help="a delegated scope that grants every operation (repeatable; default: each "
    "operation's documented scopes)",
    metavar="SCOPE",
)
FORBIDDEN_CODE = Option(
    "graph_forbidden_code",
    str,
    permissions.FORBIDDEN_CODE,
    "Error code of the 403 for a token without the permission (Graph's: Forbidden).",
    flag="--forbidden-code",
    flag_help="error code of that 403 (default: %(default)s, Graph's)",
    metavar="CODE",
)
FORBIDDEN_MESSAGE = Option(
    "graph_forbidden_message",
    str,
    permissions.FORBIDDEN_MESSAGE,
    "Error message of that 403 (Graph's is empty).",
    flag="--forbidden-message",
    flag_help="error message of that 403 (default: empty, Graph's)",
    metavar="TEXT",
)
# Not an option: serving.py makes the proxy a reverse proxy of graph.microsoft.com.
REVERSE = Option(
    None,
    bool,
    False,
    "",
    flag="--reverse",
    flag_help="serve plain HTTP as graph.microsoft.com itself instead of being a proxy "
    "(an --upstream for record)",
    session_refusal="makes a plain-HTTP Graph endpoint, not the proxy the test's clients are "
    "sent to",
)

SIMULATE = (
    STATE,
    PROVISIONING_DELAY,
    DEPRECATION_WARNINGS,
    REQUIRE_AUTH,
    ALLOW_ANY_TOKEN,
    ACCEPTED_SCOPES,
    FORBIDDEN_CODE,
    FORBIDDEN_MESSAGE,
    REVERSE,
)
