"""Options that more than one addon reads or sets, handled by one function each.

mitmproxy accepts a second declaration of an option when its signature is identical, so each
addon that needs ``graph_cassette`` declares it through the same function and works alone in
``mitmdump -s`` as well as beside the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mitmproxy import ctx, exceptions
from mitmproxy.addonmanager import Loader

from proxy_addons.cassette.cassette import Interaction, bundled_cassettes
from proxy_addons.cassette.echo import SIDECAR_SUFFIX, EchoError, EchoRules


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


# --- echo from the request (cassette/echo.py) ---------------------------------------------


def declare_echo(loader: Loader) -> None:
    loader.add_option(
        "graph_echo",
        Sequence[str],
        [],
        "Top-level fields of a replayed JSON response to take from the request's JSON body "
        "(e.g. externalAppointmentId), added to what each cassette's "
        f"<cassette>{SIDECAR_SUFFIX} and each interaction's graph_vcr_proxy: settings say. "
        "A field the request did not send, or the recording does not hold, stays as recorded.",
    )


def echo_rules(interactions: Iterable[Interaction]) -> EchoRules:
    """The echo of each interaction a cassette addon plays, from ``graph_echo`` and the
    recordings' own settings; a bad setting is refused as an option is."""
    try:
        return EchoRules.build(interactions, ctx.options.graph_echo)
    except EchoError as exc:
        raise exceptions.OptionsError(str(exc)) from None
