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


class FailsToConfigure:
    """An addon whose configure raises what mitmproxy logs and swallows (not OptionsError)."""

    def configure(self, updated: set[str]) -> None:
        raise RuntimeError("the cassette index could not be built")


def test_an_addon_failing_while_the_proxy_is_set_up_stops_it_with_one_line(tmp_path):
    import asyncio

    from proxy_addons.common.usage import UsageError

    args = commands.build_parser().parse_args(
        ["replay", "--listen-port", "0", "--confdir", str(tmp_path), "--no-summary"]
    )
    addons, settings = serving.assemble(args)
    with pytest.raises(UsageError, match=r"^cannot start: Addon error: the cassette index could"):
        asyncio.run(serving.serve([*addons, FailsToConfigure()], settings, args))


@pytest.mark.parametrize(
    ("extra", "summarised"),
    [
        ((), True),
        (("--no-summary",), False),
        (("--no-summary", "--summary-json", "s.json"), True),
        (("--no-summary", "--summary-markdown", "s.md"), True),
        (("--no-summary", "--permissions-report"), True),
    ],
)
def test_the_summary_is_in_the_chain_only_when_something_of_it_is_asked(extra, summarised):
    assert (Stage.SUMMARY in stages("replay", *extra)) is summarised
