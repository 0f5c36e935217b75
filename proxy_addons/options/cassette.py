"""The options replay and record share: the cassette, how often a recording answers, and
the rule a request matches a recording by."""

from __future__ import annotations

from collections.abc import Sequence

from proxy_addons.cassette.bundled import bundled_cassettes
from proxy_addons.cassette.match_rule import DEFAULT_MATCH_ON
from proxy_addons.common.option_table import Option

CASSETTE = Option(
    "graph_cassette",
    str,
    str(bundled_cassettes()),
    "Cassette file, or folder of cassettes, in vcrpy's YAML format.",
    flag="--cassette",
    path=True,
    shown_default="the bundled cassettes",
)
PLAYBACK_REPEATS = Option(
    "graph_allow_playback_repeats",
    bool,
    False,
    "Let a recorded answer answer again once every answer to its request was played "
    "(vcrpy's allow_playback_repeats). Off: each recorded interaction answers once, in "
    "order, and a surplus request is a miss (recorded in record mode new_episodes).",
    flag="--allow-playback-repeats",
    flag_help="let the last recorded answer to a request answer it again (vcrpy's "
    "allow_playback_repeats); default: each recorded interaction answers once, in order",
)
ECHO = Option(
    "graph_echo",
    Sequence[str],
    [],
    "Top-level fields of a replayed JSON response to take from the request's JSON body "
    "(e.g. externalAppointmentId), added to what each cassette's sidecar "
    "<cassette>.echo.json and each interaction's graph_vcr_proxy: settings say. "
    "A field the request did not send, or the recording does not hold, stays as recorded.",
    flag="--echo",
    flag_help="take this top-level field of a replayed JSON response from the request's JSON "
    "body, e.g. externalAppointmentId (repeatable; a field the request did not send stays "
    "as recorded)",
    metavar="FIELD",
)

# How a request matches a recording (``cassette/match_rule.py``), in replay and in the record
# modes that replay; the addons make the rule with ``addons/match_options.match_rule``.
MATCH_ON = Option(
    "graph_match_on",
    str,
    ",".join(DEFAULT_MATCH_ON),
    "What a request must share with a recording, as vcrpy's match_on names, comma "
    "separated: method, scheme, host, port, path (our routes' canonical path), query, "
    "headers, body (as JSON), uri, and the names of graph_matchers.",
    flag="--match-on",
    flag_help="what a request must share with a recording, vcrpy's names comma separated: "
    "method, scheme, host, port, path, query, headers, body, uri, and --matcher names "
    "(default: %(default)s)",
    metavar="NAMES",
)
IGNORE_JSON_PATHS = Option(
    "graph_ignore_json_paths",
    Sequence[str],
    [],
    "JSON paths left out when request bodies are compared, e.g. $.externalAppointmentId, "
    "$.appointmentClients[*].smsCapablePhoneNumber (steps: .name, ['name'], [N], [*]).",
    flag="--ignore-json-path",
    flag_help="leave this place out when bodies are compared, e.g. $.externalAppointmentId "
    "or $.appointmentClients[*].smsCapablePhoneNumber (repeatable)",
    metavar="PATH",
)
MATCHERS = Option(
    "graph_matchers",
    Sequence[str],
    [],
    "Custom vcrpy matchers, each NAME=module:function (a function (r1, r2) that raises "
    "AssertionError when the requests differ), for graph_match_on to name.",
    flag="--matcher",
    flag_help="register a vcrpy matcher (r1, r2) -> None, raising AssertionError on a "
    "mismatch, for --match-on to name (repeatable)",
    metavar="NAME=MODULE:FUNCTION",
)
MATCH_RULE = (MATCH_ON, IGNORE_JSON_PATHS, MATCHERS)
