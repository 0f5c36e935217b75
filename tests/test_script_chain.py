"""Our ``mitmdump -s`` scripts in any number and order make one chain in the documented order.

In-process, with mitmproxy's own ``Script`` addon loading the real files (what ``mitmdump
-s`` does for each): every pair in both orders, reloads and unloads. The real mitmdump runs
of the same are in test_scripts_e2e.py.
"""

from __future__ import annotations

import importlib
import itertools
import re
from pathlib import Path

import pytest
from mitmproxy import hooks
from mitmproxy.addons import script
from mitmproxy.test import taddons

from proxy_addons.addons.batching import Batching
from proxy_addons.addons.chain_order import EVERY_CHAIN, ORDER, Stage, in_chain_order
from proxy_addons.addons.control_endpoint import ControlEndpoint
from proxy_addons.addons.etag_tracker import ETagTracker
from proxy_addons.addons.fault_injection import FaultInjector
from proxy_addons.addons.gate import Gate
from proxy_addons.addons.replay import Replay
from proxy_addons.addons.request_checks import RequestChecks
from proxy_addons.addons.script_chain import CHAIN_NAME, chain_of
from proxy_addons.addons.summary import Summary
from proxy_addons.addons.unreachable_upstream import UnreachableUpstream

SCRIPTS = Path(__file__).resolve().parent.parent / "proxy_addons"
# Each script of ours and the stages it brings.
WANTS: dict[str, frozenset[Stage]] = {
    "gate.py": frozenset({Stage.GATE}),
    "control_endpoint.py": frozenset({Stage.CONTROL}),
    "fault_injection.py": frozenset({Stage.CONTROL, Stage.ETAGS, Stage.FAULTS}),
    "replay.py": frozenset({Stage.REPLAY, Stage.SEAL, Stage.UNREACHABLE}),
    "record.py": frozenset({Stage.VALIDATION, Stage.RECORD, Stage.UNREACHABLE}),
    "validation.py": frozenset({Stage.VALIDATION}),
    "emulator.py": frozenset({Stage.EMULATOR, Stage.SEAL}),
    "unreachable_upstream.py": frozenset({Stage.UNREACHABLE}),
    "summary.py": frozenset({Stage.SUMMARY}),
    "web_tags.py": frozenset({Stage.WEB_TAGS}),
}
PAIRS = list(itertools.permutations(WANTS, 2))


def load(*names: str) -> list[script.Script]:
    """mitmproxy's own script addon for each file, loaded in this order (in a context)."""
    return [script.Script(str(SCRIPTS / name), False) for name in names]


def stages_in(tctx: taddons.context) -> list[Stage]:
    """The stages the chain runs, in its order, each checked to be registered exactly once."""
    chain = chain_of(tctx.master.addons)
    names = [addon for addon in tctx.master.addons.lookup.values() if addon in chain.addons]
    assert len(names) == len(chain.addons)
    return [Stage(f"{type(a).__module__}:{type(a).__qualname__}") for a in chain.addons]


def expected(*names: str) -> list[Stage]:
    wanted = EVERY_CHAIN.union(*(WANTS[name] for name in names))
    return [stage for stage in ORDER if stage in wanted]


def test_every_script_of_ours_is_listed_here():
    listed = {
        path.name for path in SCRIPTS.glob("*.py") if "script_addons(__name__" in path.read_text()
    }
    assert listed == set(WANTS)


@pytest.mark.parametrize(("first", "second"), PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_any_two_scripts_in_either_order_run_each_stage_once_in_the_documented_order(first, second):
    with taddons.context() as tctx:
        load(first, second)
        assert stages_in(tctx) == expected(first, second)


def test_all_scripts_in_reverse_order_run_in_the_documented_order():
    names = list(reversed(WANTS))
    with taddons.context() as tctx:
        load(*names)
        assert stages_in(tctx) == [s for s in ORDER if s is not Stage.MISSING_CASSETTE]


def test_the_same_script_loaded_twice_runs_its_stages_once():
    with taddons.context() as tctx:
        load("replay.py", "replay.py")  # e.g. given as proxy_addons/replay.py and ./proxy_addons/…
        assert stages_in(tctx) == expected("replay.py")


@pytest.mark.parametrize("name", list(WANTS))
def test_importing_an_addon_module_builds_no_addon(name):
    module = importlib.import_module(f"proxy_addons.{name.removesuffix('.py')}")
    assert module.addons == []


def test_the_stages_are_the_package_classes_the_cli_uses():
    with taddons.context() as tctx:
        load("summary.py", "replay.py", "fault_injection.py")
        kinds = [type(a) for a in chain_of(tctx.master.addons).addons]
    assert kinds[:7] == [
        Gate,
        ControlEndpoint,
        RequestChecks,
        ETagTracker,
        FaultInjector,
        Batching,
        Replay,
    ]
    assert kinds[-1] is Summary


def test_reloading_each_script_neither_duplicates_nor_loses_a_stage():
    names = ["summary.py", "record.py", "unreachable_upstream.py", "fault_injection.py"]
    with taddons.context() as tctx:
        scripts = load(*names)
        chain = chain_of(tctx.master.addons)
        (unreachable,) = [a for a in chain.addons if isinstance(a, UnreachableUpstream)]
        for reloaded in scripts:
            reloaded.loadscript()  # what mitmproxy's watcher does when the file changes
            assert stages_in(tctx) == expected(*names)
        assert unreachable in chain.addons  # wanted by two scripts: kept through each reload


def test_a_reloaded_script_gets_fresh_instances_of_the_stages_only_it_wants():
    with taddons.context() as tctx:
        (replay_script, _) = load("replay.py", "unreachable_upstream.py")
        chain = chain_of(tctx.master.addons)
        gate, checks, batching, replay, _seal, unreachable = chain.addons
        replay_script.loadscript()
        fresh = chain.addons[3]
        assert fresh is not replay and isinstance(fresh, Replay)
        assert chain.addons[:3] == [gate, checks, batching]
        assert chain.addons[5] is unreachable
        assert tctx.master.addons.get("replay") is fresh  # registered in its stead


def test_unloading_a_script_removes_only_the_stages_no_other_script_wants():
    with taddons.context() as tctx:
        record_script, unreachable_script = load("record.py", "unreachable_upstream.py")
        tctx.master.addons.remove(record_script.ns)  # what mitmproxy does to unload it
        assert stages_in(tctx) == expected("unreachable_upstream.py")
        tctx.master.addons.remove(unreachable_script.ns)
        assert stages_in(tctx) == []


def test_the_chain_runs_where_scripts_run_after_the_script_loader():
    loader = script.ScriptLoader()
    with taddons.context(loader) as tctx:
        load("replay.py")
        chain = tctx.master.addons.chain
        assert chain.index(tctx.master.addons.get(CHAIN_NAME)) == chain.index(loader) + 1


def test_a_script_loaded_while_the_proxy_runs_starts_its_stage():
    with taddons.context() as tctx:
        load("summary.py")
        tctx.master.addons.trigger(hooks.RunningHook())
        load("replay.py")
        (replay,) = [a for a in chain_of(tctx.master.addons).addons if isinstance(a, Replay)]
    assert replay.is_running


def test_the_cli_order_is_the_chain_order():
    ordered = in_chain_order([Summary(), Replay(), FaultInjector()])
    assert [type(a) for a in ordered] == [FaultInjector, Replay, Summary]


def test_an_addon_without_a_place_in_the_order_is_refused():
    with pytest.raises(ValueError, match="has no place in Stage"):
        in_chain_order([Replay(), object()])


def test_the_script_files_are_the_only_modules_holding_addons_and_define_no_addon():
    """An addon module builds nothing at import, so any set of them loads together; the thin
    files at the documented ``mitmdump -s`` paths name the stages they want, nothing more."""
    holders = {
        path.relative_to(SCRIPTS).as_posix(): path.read_text()
        for path in SCRIPTS.rglob("*.py")
        if re.search(r"^addons\s*=", path.read_text(), re.MULTILINE)
    }
    assert set(holders) == set(WANTS)
    assert [name for name, text in holders.items() if re.search(r"^class ", text, re.M)] == []
