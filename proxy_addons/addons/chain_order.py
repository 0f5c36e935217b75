"""The one order our addons run in, whoever assembles them: the CLI (``serving.py``), the
pytest plugin's proxy (``session.py``) and any set of ``mitmdump -s`` scripts
(``script_chain.py``).

mitmproxy calls addons in chain order, and the first to answer a flow decides it: Graph's
request checks come before anything that looks a request up, a fault before the addon that
would answer, the unreachable-upstream envelope after the
ones that answer or redirect, the summary and the web tags after everything they report on.
So the order is not left to whoever lists the addons: every chain is sorted by this table.
A new addon of ours is one line here, at its place.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Iterable
from typing import Any


class Stage(enum.Enum):
    """Our addons, in chain order; each value is the addon's class as ``module:Class``."""

    GATE = "proxy_addons.addons.gate:Gate"
    CONTROL = "proxy_addons.addons.control_endpoint:ControlEndpoint"
    CHECKS = "proxy_addons.addons.request_checks:RequestChecks"
    # Before the rules: the known ETag must be in the flow when they read it, and the real
    # answer learnt from before a malformed/empty fault spoils it.
    ETAGS = "proxy_addons.addons.etag_tracker:ETagTracker"
    FAULTS = "proxy_addons.addons.fault_injection:FaultInjector"
    VALIDATION = "proxy_addons.addons.validation_report:Validation"
    BATCHING = "proxy_addons.addons.batching:Batching"
    REPLAY = "proxy_addons.addons.replay:Replay"
    MISSING_CASSETTE = "proxy_addons.addons.missing_cassette:MissingCassette"
    RECORD = "proxy_addons.addons.record:Record"
    EMULATOR = "proxy_addons.addons.emulator:Emulator"
    SEAL = "proxy_addons.addons.gate:Seal"
    UNREACHABLE = "proxy_addons.addons.unreachable_upstream:UnreachableUpstream"
    SUMMARY = "proxy_addons.addons.summary:Summary"
    WEB_TAGS = "proxy_addons.addons.web_tags:WebTags"

    @property
    def rank(self) -> int:
        return ORDER.index(self)

    def build(self) -> Any:
        """A fresh instance of this stage's addon."""
        module, _, name = self.value.partition(":")
        return getattr(importlib.import_module(module), name)()


ORDER: tuple[Stage, ...] = tuple(Stage)
# The addons that answer our Graph routes: one of them is a proxy's mode. More than one in a
# chain is allowed (the first in ORDER that answers a flow decides it), and said at start.
MODES = frozenset({Stage.REPLAY, Stage.MISSING_CASSETTE, Stage.RECORD, Stage.EMULATOR})
# Stages every chain of scripts carries, whichever scripts were given: the gate, Graph's
# request checks, and the batching that runs each request of a $batch as one of ours through
# the rest of the chain.
EVERY_CHAIN: frozenset[Stage] = frozenset({Stage.GATE, Stage.CHECKS, Stage.BATCHING})


def stage_of(addon: Any) -> Stage:
    """The stage of one of our addon instances; a ValueError for any other object, so that
    an addon missing from the table fails every start instead of running out of order."""
    cls = type(addon)
    try:
        return Stage(f"{cls.__module__}:{cls.__qualname__}")
    except ValueError:
        raise ValueError(f"{cls.__module__}.{cls.__qualname__} has no place in Stage") from None


def in_chain_order(addons: Iterable[Any]) -> list[Any]:
    """``addons`` (ours, each at most once per stage) sorted into the chain order."""
    ordered = sorted(addons, key=lambda addon: stage_of(addon).rank)
    stages = [stage_of(addon) for addon in ordered]
    if len(set(stages)) != len(stages):
        raise ValueError(f"a stage is listed twice: {[s.name for s in stages]}")
    return ordered
