"""``replay``'s options (the Replay addon's), in the command line's order."""

from __future__ import annotations

from proxy_addons.cassette.on_miss import MISS_CODE, MISS_STATUS, OnMiss
from proxy_addons.common.option_table import Option
from proxy_addons.options.cassette import CASSETTE, ECHO, MATCH_RULE, PLAYBACK_REPEATS

ON_MISS = Option(
    "graph_on_miss",
    str,
    OnMiss.ERROR.value,
    "What to do with a Graph request the cassette has no answer for: answer it with "
    f"a Graph-shaped {MISS_STATUS} {MISS_CODE} error naming the closest recorded "
    "request, or forward it upstream.",
    flag="--on-miss",
    choices=tuple(OnMiss),
)
MATCH_BODY = Option(
    "graph_match_body",
    bool,
    True,
    "Match request bodies (compared as JSON) as well as method, URL and query "
    "(off: graph_match_on without body).",
    flag="--ignore-body",
    flag_help="match_on without body (URL and method only)",
    inverted=True,
)

REPLAY = (
    CASSETTE.for_command(flag_help="cassette file or folder (default: bundled)"),
    ON_MISS,
    MATCH_BODY,
    PLAYBACK_REPEATS,
    ECHO,
    *MATCH_RULE,
)
