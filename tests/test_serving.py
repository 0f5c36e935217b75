"""Each command's chain, as ``serving.assemble`` builds it from the parsed arguments."""

from __future__ import annotations

import pytest

from proxy_addons.addons.chain_order import EVERY_CHAIN, Stage, stage_of
from proxy_addons.cli import commands, serving

MODE_ARGS = {"replay": [], "record": ["--cassette", "c.yaml"], "simulate": []}


def stages(mode: str, *extra: str) -> list[Stage]:
    args = commands.build_parser().parse_args([mode, *MODE_ARGS[mode], *extra])
    addons, _ = serving.assemble(args)
    return [stage_of(addon) for addon in addons]


@pytest.mark.parametrize("mode", list(MODE_ARGS))
def test_every_command_runs_the_checks_the_etag_tracker_and_the_rules_in_chain_order(mode):
    chain = stages(mode)
    assert set(chain) >= EVERY_CHAIN
    head = [Stage.GATE, Stage.CONTROL, Stage.CHECKS, Stage.ETAGS, Stage.FAULTS]
    assert chain[:5] == head
    assert chain == sorted(chain, key=lambda stage: stage.rank)


@pytest.mark.parametrize("mode", ["replay", "simulate"])
def test_replay_and_simulate_carry_validation_only_when_asked(mode):
    assert Stage.VALIDATION not in stages(mode)
    assert Stage.VALIDATION not in stages(mode, "--validate", "off")
    assert Stage.VALIDATION in stages(mode, "--validate", "warn")


@pytest.mark.parametrize(("validate", "setting"), [((), "warn"), (("--validate", "off"), "off")])
def test_record_always_carries_validation_with_its_mode(validate, setting):
    args = commands.build_parser().parse_args(["record", *MODE_ARGS["record"], *validate])
    addons, settings = serving.assemble(args)
    assert Stage.VALIDATION in [stage_of(addon) for addon in addons]
    assert settings["graph_validate"] == setting
