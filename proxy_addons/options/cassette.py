"""The options replay and record share: the cassette and how often a recording answers."""

from __future__ import annotations

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
