"""The options replay and record share: the cassette and how often a recording answers."""

from __future__ import annotations

from collections.abc import Sequence

from proxy_addons.cassette.bundled import bundled_cassettes
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
