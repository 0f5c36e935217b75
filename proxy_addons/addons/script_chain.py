"""Our ``mitmdump -s`` scripts, in any number and any order, as one chain in the one order.

mitmproxy runs each ``-s`` file as a fresh module and adds the addons listed in its
``addons`` in the order the files were given (hook order is chain order). Were each of our
files to list its own instances, ``-s record.py -s unreachable_upstream.py`` would add the
envelope twice (mitmproxy refuses: "An addon called 'unreachableupstream' already exists")
and ``-s replay.py -s fault_injection.py`` would run replay before the faults, which then
never fire. So a script file lists one :class:`ScriptStages` instead, naming the stages it
wants. They all join one :class:`ScriptChain` per mitmproxy master: it builds each stage once,
holds the stages sorted by ``chain_order.ORDER`` whatever order the scripts came in, and
sits in mitmproxy's chain where scripts run (right after its script loader, so after any
other scripts of the user's, and before mitmproxy's own map-remote, save and the like).

Each script's handle follows mitmproxy's life cycle of that script: ``load`` when it is
loaded, ``done`` when it is reloaded (its file changed) or unloaded (removed from the
``scripts`` option). A stage leaves the chain, with its ``done``, when the last script that
wanted it goes; a reloaded script's stages come back fresh, as mitmproxy's reload means, and
a stage another script still wants stays as it is. At exit the chain itself runs every
stage's ``done``, in chain order.

A module imported as a library (``from proxy_addons.addons.replay import Replay``) builds nothing:
:func:`script_addons` gives an empty list unless the module runs as a mitmproxy script.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from mitmproxy import ctx, hooks
from mitmproxy.addonmanager import AddonManager, Loader
from mitmproxy.addons.script import script_error_handler

from proxy_addons.addons.chain_order import EVERY_CHAIN, MODES, Stage, stage_of

logger = logging.getLogger(__name__)

CHAIN_NAME = "graph-vcr-proxy script chain"
SCRIPT_MODULE_PREFIX = "__mitmproxy_script__."  # how mitmproxy's script loader names a script


class ScriptChain:
    """The stages the loaded scripts want, each once, in chain order (``addons``: mitmproxy
    calls them right after this addon, in that order)."""

    name = CHAIN_NAME

    def __init__(self) -> None:
        self.addons: list[Any] = []
        self.wanted: dict[str, frozenset[Stage]] = {}  # per script handle, the stages it wants
        self.is_running = False

    @property
    def stages(self) -> list[Stage]:
        return [stage for stage in Stage if stage in self._built]

    @property
    def _built(self) -> dict[Stage, Any]:
        return {stage_of(addon): addon for addon in self.addons}

    def running(self) -> None:
        self.is_running = True

    def join(self, handle: str, stages: Iterable[Stage]) -> None:
        """Add the stages ``handle``'s script wants that the chain lacks."""
        self.wanted[handle] = frozenset(stages) | EVERY_CHAIN
        self._sync()

    def leave(self, handle: str) -> None:
        """Remove the stages no loaded script wants any more (``handle``'s went away)."""
        if self.wanted.pop(handle, None) is not None:
            self._sync()

    def _sync(self) -> None:
        manager = ctx.master.addons
        wanted = frozenset().union(*self.wanted.values())
        built = self._built
        for stage, addon in built.items():
            if stage not in wanted:
                self.addons = [a for a in self.addons if a is not addon]
                manager.remove(addon)  # unregisters it and runs its done
        for stage in Stage:
            if stage in wanted and stage not in built:
                self._start(manager, stage)
        modes = [stage.name.lower() for stage in self.stages if stage in MODES]
        if len(modes) > 1 and (wanted - built.keys()) & MODES:  # a mode just joined
            logger.warning(
                "%s are all loaded: each Graph request is answered by the first of them, in "
                "this order, that can",
                ", ".join(modes),
            )

    def _start(self, manager: AddonManager, stage: Stage) -> None:
        """Build, register, configure and (if the proxy runs) start one stage at its place."""
        addon = stage.build()
        # register runs load (options are declared there) and applies the `--set` values that
        # waited for those options; only then does the stage join our chain (were it in the
        # chain already, each option declared would configure it before the next exists).
        manager.register(addon)
        before = [a for a in self.addons if stage_of(a).rank < stage.rank]
        self.addons = [*before, addon, *self.addons[len(before) :]]
        # A stage that refuses its options stays, as mitmproxy keeps a script whose configure
        # failed: the error is logged (mitmdump then exits at start) and a corrected option
        # configures it again.
        manager.invoke_addon_sync(addon, hooks.ConfigureHook(set(ctx.options.keys())))
        if self.is_running:
            manager.invoke_addon_sync(addon, hooks.RunningHook())


def chain_of(manager: AddonManager) -> ScriptChain:
    """The master's script chain, put in place by the first script of ours that loads."""
    chain = manager.get(CHAIN_NAME)
    if chain is not None:
        return chain
    chain = ScriptChain()
    loader = manager.get("scriptloader")
    chain.is_running = bool(getattr(loader, "is_running", False))
    manager.register(chain)
    # Where scripts run: right after the script loader (or last, where there is none, as in
    # mitmproxy's test context). A new list, so that a hook loop over the old one goes on.
    at = next((i + 1 for i, a in enumerate(manager.chain) if a is loader), len(manager.chain))
    manager.chain = [*manager.chain[:at], chain, *manager.chain[at:]]
    return chain


class ScriptStages:
    """One loaded script's handle on the chain: joins it when mitmproxy loads the script,
    leaves it when mitmproxy unloads or reloads the script."""

    def __init__(self, script: str, stages: Iterable[Stage]) -> None:
        self.script = script
        self.stages = frozenset(stages)
        # A name of its own for mitmproxy's addon lookup (the same file may load twice under
        # two spellings of its path).
        self.name = f"graph-vcr-proxy script {script} {id(self):x}"

    def load(self, loader: Loader) -> None:
        try:
            chain_of(ctx.master.addons).join(self.name, self.stages)
        except Exception as exc:  # what mitmproxy does with a script's own refused options
            script_error_handler(self.script, exc)

    def done(self) -> None:
        chain = ctx.master.addons.get(CHAIN_NAME)
        if chain is None or ctx.master.should_exit.is_set():
            return  # the proxy stops: the chain ends every stage itself, in chain order
        chain.leave(self.name)


def script_addons(module_name: str, *stages: Stage) -> list[Any]:
    """What a script file of ours lists as its ``addons``: a handle wanting ``stages`` when
    mitmproxy runs the file as a script, nothing when it is imported as a module."""
    if not module_name.startswith(SCRIPT_MODULE_PREFIX):
        return []
    return [ScriptStages(module_name.removeprefix(SCRIPT_MODULE_PREFIX) + ".py", stages)]
