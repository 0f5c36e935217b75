"""Each option is written once, in the tables of ``proxy_addons/options/``: the command line's
flags, the options every addon declares to mitmproxy, the pytest plugin's arguments and the
docs' option reference are held to those tables, both ways (nothing missing, nothing extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import vcr.record_mode
from mitmproxy.addonmanager import Loader
from mitmproxy.test import taddons

from proxy_addons.addons.chain_order import Stage
from proxy_addons.addons.missing_cassette import MissingCassette
from proxy_addons.cassette.record_mode import RECORDER_MODES, RecordMode
from proxy_addons.cli import commands, serving
from proxy_addons.common.option_table import Option, declared, flagged, settings
from proxy_addons.options.commands import MODE_TABLES, TABLES, command_options
from proxy_addons.options.proxy import FAULTS, NETWORK_POLICY, SUMMARY
from proxy_addons.options.record import RECORD
from proxy_addons.options.replay import REPLAY
from proxy_addons.options.simulate import SIMULATE
from proxy_addons.options.validation import VALIDATION
from proxy_addons.testing import session
from proxy_addons.testing.vcr_settings import ProxyMode, Settings, plan

ROOT = Path(__file__).resolve().parent.parent
OPTIONS_PAGE = ROOT / "docs" / "options.md"
HOOK = ROOT / "docs" / "hooks" / "command_help.py"

# Which table each addon declares its options from (none: the addon has no options).
DECLARES = {
    Stage.GATE: NETWORK_POLICY,
    Stage.SEAL: NETWORK_POLICY,
    Stage.FAULTS: FAULTS,
    Stage.VALIDATION: VALIDATION,
    Stage.REPLAY: REPLAY,
    Stage.RECORD: RECORD,
    Stage.EMULATOR: SIMULATE,
    Stage.SUMMARY: SUMMARY,
}


def mode_parser(mode: str) -> argparse.ArgumentParser:
    parser = commands.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[mode]


def flags_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {
        action.option_strings[0]: action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
    }


def declared_by(stage: Stage) -> dict[str, Any]:
    """The mitmproxy options one addon declares, as mitmproxy holds them."""
    with taddons.context() as tctx:
        before = set(tctx.options.keys())
        addon = (
            MissingCassette(Path("t.yaml")) if stage is Stage.MISSING_CASSETTE else stage.build()
        )
        load = getattr(addon, "load", None)
        if load is not None:
            load(Loader(tctx.master))
        return {name: tctx.options._options[name] for name in set(tctx.options.keys()) - before}


def signature(row: Option) -> tuple[Any, ...]:
    return (row.type, row.default, row.help, row.choices)


def mitmproxy_signature(option: Any) -> tuple[Any, ...]:
    return (option.typespec, option.default, option.help, option.choices)


def hook() -> ModuleType:
    pytest.importorskip("mkdocs", reason="the docs extra is not installed (pip install '.[docs]')")
    spec = importlib.util.spec_from_file_location("command_help", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the command line -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(MODE_TABLES))
def test_each_proxy_command_has_exactly_the_flags_of_its_tables_in_their_order(mode):
    rows = flagged(command_options(mode))
    assert list(flags_of(mode_parser(mode))) == [row.flag for row in rows]


@pytest.mark.parametrize("mode", list(MODE_TABLES))
def test_each_flag_takes_its_value_as_its_row_says(mode):
    actions = flags_of(mode_parser(mode))
    for row in flagged(command_options(mode)):
        action = actions[row.flag]
        kind = "switch" if row.is_switch else "append" if row.is_repeated else "value"
        found = (
            "switch"
            if isinstance(action, argparse._StoreTrueAction)
            else "append"
            if isinstance(action, argparse._AppendAction)
            else "value"
        )
        assert (found, action.dest, action.default, action.choices, action.metavar) == (
            kind,
            row.dest,
            row.flag_default,
            row.choices,
            row.metavar,
        ), row.flag
        assert (action.type, action.required, action.help) == (
            row.value_type,
            row.required,
            row.flag_help,
        ), row.flag


def test_the_record_command_offers_vcrpys_four_record_modes_and_not_rewrite():
    action = flags_of(mode_parser("record"))["--record-mode"]
    vcrpys = {mode.value for mode in vcr.record_mode.RecordMode} - {"any"}  # "any": undocumented
    assert set(action.choices) == vcrpys
    assert RecordMode.REWRITE not in RECORDER_MODES
    assert RecordMode.REWRITE.for_recorder is RecordMode.NEW_EPISODES


# --- the mitmproxy options -------------------------------------------------------------------


@pytest.mark.parametrize("stage", list(Stage), ids=lambda stage: stage.name)
def test_each_addon_declares_exactly_its_tables_options_as_written(stage):
    expected = {row.name: signature(row) for row in declared(DECLARES.get(stage, ()))}
    found = {name: mitmproxy_signature(option) for name, option in declared_by(stage).items()}
    assert found == expected


def test_every_table_row_declared_anywhere_is_the_same_declaration():
    """mitmproxy accepts a second declaration only when it is identical: a row that two
    tables hold (the cassette, playback repeats) must be one declaration."""
    seen: dict[str, tuple[Any, ...]] = {}
    for rows in TABLES.values():
        for row in declared(rows):
            assert seen.setdefault(row.name, signature(row)) == signature(row), row.name
    every_addon = {name for stage in Stage for name in declared_by(stage)}
    assert every_addon == set(seen)


# --- what a command line sets -----------------------------------------------------------------


def test_inverted_flags_set_their_option_false_and_absent_flags_keep_the_defaults():
    args = mode_parser("record").parse_args(["--cassette", "c.yaml", "--no-fsync"])
    made = settings(args, RECORD)
    assert made["graph_record_fsync"] is False
    assert made["graph_redact_headers"] == []
    replay = settings(mode_parser("replay").parse_args(["--ignore-body"]), REPLAY)
    assert replay["graph_match_body"] is False and "graph_cassette" not in replay
    simulate = settings(mode_parser("simulate").parse_args(["--allow-anonymous"]), SIMULATE)
    assert simulate["graph_require_auth"] is False and "graph_state" not in simulate


def every_flag_given(rows: list[Option]) -> list[str]:
    """A command line giving every flag of ``rows`` a value other than its default."""
    argv: list[str] = []
    for row in rows:
        assert row.flag is not None
        if row.is_switch:
            argv.append(row.flag)
        elif row.choices:
            argv += [row.flag, next(c for c in row.choices if c != row.default)]
        elif row.value_type is int:
            argv += [row.flag, "3"]
        else:
            argv += [row.flag, "given.yaml"]
    return argv


@pytest.mark.parametrize("mode", list(MODE_TABLES))
def test_every_flag_of_a_mode_reaches_its_option_in_the_settings_serving_makes(mode):
    """No flag is parsed and then dropped: the settings of a command line that gives each
    flag a value set each option of ours to what its flag says."""
    rows = flagged(declared(command_options(mode)))
    args = mode_parser(mode).parse_args(every_flag_given(rows))
    _, made = serving.MODES[mode](args)
    _, _, common = serving.common_addons(args)
    expected = {row.name: row.value(getattr(args, row.dest)) for row in rows}
    assert {name: {**common, **made}.get(name) for name in expected} == expected
    assert all(value != row.default for row in rows if (value := expected[row.name]) != [])


def test_the_plugins_arguments_parse_into_the_settings_it_asked_for(tmp_path):
    asked = Settings(
        mode=ProxyMode.RECORD,
        record_mode=RecordMode.REWRITE,
        upstream="http://127.0.0.1:1",
        faults=("throttle",),
        seed=7,
        redact_headers=("x-secret",),
        redact_fields=("emailAddress",),
        allow_playback_repeats=True,
        allowed_hosts=("example.org",),
    )
    made = plan(asked, cassette_dir=tmp_path, default_name="t.yaml")
    args = session.checked_arguments(session.mode_parsers()["record"], made.args, tmp_path)
    _, options = serving.record_mode(args)
    assert {**options, **serving.fault_settings(args)} == {
        **options,
        "graph_cassette": str(tmp_path / "t.yaml"),
        "graph_record_mode": "new_episodes",
        "graph_upstream": "http://127.0.0.1:1",
        "graph_redact_headers": ["x-secret"],
        "graph_redact_fields": ["emailAddress"],
        "graph_allow_playback_repeats": True,
        "graph_block_network": True,
        "graph_allow_hosts": ["example.org"],
        "graph_faults": ["throttle"],
        "graph_fault_seed": 7,
    }
    assert made.rewrite


def test_the_sessions_refusals_are_the_rows_that_say_so():
    refused = {
        row.dest for mode in MODE_TABLES for row in command_options(mode) if row.session_refusal
    }
    assert set(session.NOT_PER_SESSION) == refused
    assert {"listen_port", "confdir", "reverse", "summary_json", "web"} <= refused


# --- the docs ---------------------------------------------------------------------------------


def test_the_options_page_shows_every_table_and_no_other():
    markers = re.findall(r"^<!-- options: ([\w-]+) -->$", OPTIONS_PAGE.read_text(), re.M)
    assert sorted(markers) == sorted(TABLES)


def test_the_generated_reference_lists_every_declared_option_once_with_its_flag():
    built = hook().with_option_tables(OPTIONS_PAGE.read_text())
    rows = re.findall(r"^\| `(graph_\w+)` \|[^|]*\|[^|]*\| ([^|]*) \|", built, re.M)
    expected = {row.name: row for rows in TABLES.values() for row in declared(rows)}
    assert sorted(name for name, _ in rows) == sorted(
        row.name for rows in TABLES.values() for row in declared(rows)
    )
    for name, flag in rows:
        row = expected[name]
        assert (row.flag or "(none)") in flag, name
