"""Options that more than one addon reads or sets, handled by one function each.

mitmproxy accepts a second declaration of an option when its signature is identical, so each
addon that needs ``graph_cassette`` declares it through the same function and works alone in
``mitmdump -s`` as well as beside the others.
"""

from __future__ import annotations

from collections.abc import Sequence

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader

from proxy_addons.cassette.cassette import bundled_cassettes
from proxy_addons.cassette.match_rule import (
    DEFAULT_MATCH_ON,
    MatchRule,
    MatchRuleError,
    parse_matcher_option,
)


def declare_cassette(loader: Loader) -> None:
    loader.add_option(
        "graph_cassette",
        str,
        str(bundled_cassettes()),
        "Cassette file, or folder of cassettes, in vcrpy's YAML format.",
    )


def ensure_lazy_connections() -> None:
    """Switch mitmproxy to ``connection_strategy=lazy`` if it isn't already.

    Every addon that answers Graph calls itself needs it: with the default (eager), mitmproxy
    dials the real host when the client sends CONNECT, which fails offline (the client gets a
    502) and contacts Graph even when --upstream points elsewhere. The option belongs to the
    proxyserver addon, so it is absent where that addon isn't loaded (addon unit tests).
    """
    if "connection_strategy" in ctx.options and ctx.options.connection_strategy != "lazy":
        ctx.options.update(connection_strategy="lazy")


def ensure_forwarding_ours() -> None:
    """Let our operations go upstream (the gate's ``graph_forward_ours``) where the recorder
    runs: ``serving.py`` sets it for ``record``, and this does the same for a recorder loaded
    as a ``mitmdump -s`` script beside the gate, which would otherwise keep a ``$batch``
    holding our calls offline. The option is absent where no gate is loaded."""
    if "graph_forward_ours" in ctx.options and not ctx.options.graph_forward_ours:
        ctx.options.update(graph_forward_ours=True)


def require_choice(updated: set[str], name: str, choices: Sequence[str]) -> None:
    """Refuse a value outside ``choices``: mitmproxy lists them in help but doesn't enforce."""
    value = getattr(ctx.options, name)
    if name in updated and value not in choices:
        raise exceptions.OptionsError(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def declare_playback_repeats(loader: Loader) -> None:
    loader.add_option(
        "graph_allow_playback_repeats",
        bool,
        False,
        "Let a recorded answer answer again once every answer to its request was played "
        "(vcrpy's allow_playback_repeats). Off: each recorded interaction answers once, in "
        "order, and a surplus request is a miss (recorded in record mode new_episodes).",
    )


# --- how a request matches a recording: replay and the record modes that replay ----------

MATCH_OPTIONS = ("graph_match_on", "graph_ignore_json_paths", "graph_matchers")


def declare_match_rule(loader: Loader) -> None:
    """The match rule's options (``cassette/match_rule.py``), kept together."""
    loader.add_option(
        "graph_match_on",
        str,
        ",".join(DEFAULT_MATCH_ON),
        "What a request must share with a recording, as vcrpy's match_on names, comma "
        "separated: method, scheme, host, port, path (our routes' canonical path), query, "
        "headers, body (as JSON), uri, and the names of graph_matchers.",
    )
    loader.add_option(
        "graph_ignore_json_paths",
        Sequence[str],
        [],
        "JSON paths left out when bodies are compared, e.g. $.externalAppointmentId, "
        "$.appointmentClients[*].smsCapablePhoneNumber (steps: .name, ['name'], [N], [*]).",
    )
    loader.add_option(
        "graph_matchers",
        Sequence[str],
        [],
        "Custom vcrpy matchers, each NAME=module:function (a function (r1, r2) that raises "
        "AssertionError when the requests differ), for graph_match_on to name.",
    )


def match_rule(*, match_body: bool = True) -> MatchRule:
    """The rule the options say; OptionsError (one line) for one that can't be made."""
    opts = ctx.options
    try:
        matchers = [parse_matcher_option(spec) for spec in opts.graph_matchers]
        return MatchRule.of(
            opts.graph_match_on, opts.graph_ignore_json_paths, matchers, match_body=match_body
        )
    except MatchRuleError as exc:
        raise exceptions.OptionsError(str(exc)) from None
