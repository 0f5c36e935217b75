"""The pytest plugin's settings rules: pytest-recording's names, merging, and what is served."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from proxy_addons.cassette.record_mode import RecordMode
from proxy_addons.cli import commands as cli
from proxy_addons.testing import session
from proxy_addons.testing.vcr_settings import (
    START_ARGUMENTS,
    GraphVcrError,
    ProxyMode,
    Settings,
    default_cassette_name,
    merge,
    plan,
    settings_of,
    split_start_arguments,
)


def test_the_closest_marker_wins_per_key_over_class_module_and_config():
    config = {"mode": "replay", "faults": ["unavailable"], "seed": 1}
    function, klass, module = {"faults": ["throttle"]}, {"seed": 2, "cassette": "c"}, {"seed": 3}
    merged = merge(config, [function, klass, module])  # closest first, as iter_markers gives
    assert merged == {"mode": "replay", "faults": ["throttle"], "seed": 2, "cassette": "c"}


def test_an_unknown_key_is_one_line_naming_it_and_the_allowed_ones():
    with pytest.raises(GraphVcrError) as raised:
        settings_of({"casette": "x.yaml"})
    message = str(raised.value)
    assert message.startswith("graph_vcr: unknown argument 'casette'; allowed: mode, cassette")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("merged", "complaint"),
    [
        ({"mode": "playback"}, "'playback' is not a valid ProxyMode"),
        ({"record_mode": "sometimes"}, "'sometimes' is not a valid RecordMode"),
        ({"allow_misses": "yes"}, "allow_misses must be True or False"),
        ({"faults": [1.5]}, "faults must be a list of strings"),
        ({"seed": "7"}, "seed must be an integer"),
        ({"cassette": 3}, "cassette must be a string"),
        ({"allowed_hosts": [None]}, "allowed_hosts must be a list of strings"),
    ],
)
def test_values_of_the_wrong_kind_are_refused(merged, complaint):
    with pytest.raises(GraphVcrError, match=complaint):
        settings_of(merged)


def test_a_single_fault_string_is_one_fault_not_its_letters():
    assert settings_of({"faults": "throttle:times=1"}).faults == ("throttle:times=1",)


@pytest.mark.parametrize(
    ("test", "cls", "expected"),
    [
        ("test_create", None, "test_create.yaml"),
        ("test_create", "TestGraph", "TestGraph.test_create.yaml"),
        ("test_p[a/b:c<d>e?f%g*h|i\"j'k\\l]", None, "test_p[a-b-c-d-e-f-g-h-i-j-k-l].yaml"),
    ],
)
def test_default_cassette_names_are_pytest_recordings(test, cls, expected):
    assert default_cassette_name(test, cls) == expected


def test_a_very_long_parametrized_name_is_shortened_with_a_digest():
    name = default_cassette_name("test_x[" + "a" * 400 + "]")
    assert len(name.encode()) <= 255
    assert name.startswith("test_x[aaa") and "..." in name and name.endswith(".yaml")
    assert name != default_cassette_name("test_x[" + "a" * 399 + "b]")


@pytest.mark.parametrize("char", ["a", "é", "日", "🦄"])
def test_a_long_name_and_its_temporary_twin_fit_255_bytes_cut_between_characters(char):
    name = default_cassette_name("test_x[" + char * 300 + "]")
    # ".NAME.XXXXXXXX.tmp", the temporary file a rewrite puts beside the cassette, fits too.
    assert len(f".{name}.XXXXXXXX.tmp".encode()) <= 255
    assert name.startswith("test_x[" + char * 10) and name.endswith(".yaml")
    assert name.encode().decode() == name  # whole characters only (str holds no half of one)


@pytest.mark.parametrize(
    ("test", "complaint"), [("test_x[a\0b]", "NUL"), ("test_x[\ud83d]", "no file name can hold")]
)
def test_an_impossible_test_name_is_one_line(test, complaint):
    with pytest.raises(GraphVcrError, match=complaint) as raised:
        default_cassette_name(test)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("name", "complaint"),
    [("a\0.yaml", "NUL"), ("é" * 130 + ".yaml", "265 bytes in one file name, at most 241 fit")],
)
def test_an_impossible_or_too_long_cassette_name_is_refused(folder, name, complaint):
    with pytest.raises(GraphVcrError, match=complaint):
        replay_plan(folder, cassette=name)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "cassettes" / "test_mod"
    path.mkdir(parents=True)
    return path


def replay_plan(folder: Path, **settings) -> object:
    return plan(Settings(**settings), cassette_dir=folder, default_name="test_a.yaml")


@pytest.mark.parametrize("name", ["../escape.yaml", "sub/../../escape", "/etc/passwd"])
def test_cassette_names_that_leave_the_folder_are_refused(folder, name):
    with pytest.raises(GraphVcrError, match="must be a name inside"):
        replay_plan(folder, cassette=name, record_mode=RecordMode.ALL)
    assert not (folder.parent / "escape.yaml").exists()


def test_a_symlink_leading_out_of_the_folder_is_refused(folder, tmp_path):
    (folder / "out").symlink_to(tmp_path)
    with pytest.raises(GraphVcrError, match="leads outside"):
        replay_plan(folder, cassette="out/x.yaml", record_mode=RecordMode.ALL)


def test_a_name_without_suffix_gets_yaml_and_a_folder_is_kept(folder):
    (folder / "create.yaml").write_text("")
    (folder / "shared").mkdir()
    assert replay_plan(folder, cassette="create").cassette == folder / "create.yaml"
    assert replay_plan(folder, cassette="shared").cassette == folder / "shared"


def test_record_mode_none_replays_even_a_missing_cassette_whose_misses_say_so(folder):
    missing = replay_plan(folder)
    assert (missing.mode, missing.cassette, missing.missing_cassette_ok) == (
        "replay",
        folder / "test_a.yaml",
        True,
    )
    (folder / "test_a.yaml").write_text("")
    session = replay_plan(folder, faults=("throttle",), seed=7, match_body=False)
    assert session.mode == "replay"
    assert session.args == (
        "--cassette",
        str(folder / "test_a.yaml"),
        "--fault",
        "throttle",
        "--seed",
        "7",
        "--ignore-body",
        "--block-network",
    )


def test_once_never_lets_a_missing_cassette_through_as_replay(folder):
    (folder / "test_a.yaml").write_text("")
    assert not replay_plan(folder, record_mode=RecordMode.ONCE).missing_cassette_ok


def test_every_session_blocks_the_network_but_the_allowed_hosts_of_both_places(folder):
    settings = Settings(mode=ProxyMode.SIMULATE, allowed_hosts=("b.example", "a.example"))
    session = plan(settings, cassette_dir=folder, default_name="t.yaml", allowed=["a.example"])
    assert session.args == (
        *("--block-network", "--allow-host", "a.example", "--allow-host", "b.example"),
    )


@pytest.mark.parametrize("record_mode", [None, RecordMode.NEW_EPISODES])
def test_allow_playback_repeats_is_passed_to_replay_and_record_sessions(folder, record_mode):
    (folder / "test_a.yaml").write_text("")
    allowed = replay_plan(folder, allow_playback_repeats=True, record_mode=record_mode)
    assert "--allow-playback-repeats" in allowed.args
    assert "--allow-playback-repeats" not in replay_plan(folder, record_mode=record_mode).args


def test_allow_playback_repeats_must_be_a_bool():
    with pytest.raises(GraphVcrError, match="allow_playback_repeats must be True or False"):
        settings_of({"allow_playback_repeats": "yes"})


def test_once_records_a_new_cassette_and_replays_an_existing_one(folder):
    first = plan(Settings(), cassette_dir=folder, default_name="test_a.yaml", record_mode="once")
    assert first.mode == "record"
    assert first.args[:4] == ("--cassette", str(folder / "test_a.yaml"), "--record-mode", "once")
    (folder / "test_a.yaml").write_text("")
    again = plan(Settings(), cassette_dir=folder, default_name="test_a.yaml", record_mode="once")
    assert again.mode == "replay"


def test_rewrite_empties_the_cassette_then_records_new_episodes(folder):
    session = replay_plan(folder, record_mode=RecordMode.REWRITE, redact_fields=("email",))
    assert session.rewrite
    assert session.args[2:4] == ("--record-mode", "new_episodes")
    assert session.args[-3:] == ("--redact-field", "email", "--block-network")


def test_a_record_mode_in_markers_wins_over_the_command_line_which_wins_over_the_mode(folder):
    def mode_of(**kwargs: object) -> RecordMode | None:
        line = kwargs.pop("line", None)
        return plan(
            Settings(**kwargs),
            cassette_dir=folder,
            default_name="t.yaml",
            record_mode=line,
            upstream="http://127.0.0.1:9",
        ).record_mode

    assert mode_of(mode=ProxyMode.RECORD) is RecordMode.ONCE
    assert mode_of(mode=ProxyMode.RECORD, line=RecordMode.ALL) is RecordMode.ALL
    assert mode_of(record_mode=RecordMode.ALL, line=RecordMode.NEW_EPISODES) == "all"


def test_the_upstream_of_the_config_wins_over_the_command_lines(folder):
    session = plan(
        Settings(record_mode=RecordMode.ALL, upstream="http://127.0.0.1:1"),
        cassette_dir=folder,
        default_name="t.yaml",
        upstream="http://127.0.0.1:2",
    )
    assert session.args[4:6] == ("--upstream", "http://127.0.0.1:1")


def test_simulate_needs_no_cassette_and_takes_faults_and_arguments(folder):
    session = replay_plan(
        folder,
        mode=ProxyMode.SIMULATE,
        faults=("etag-mismatch",),
        allow_anonymous=True,
        args=("--provisioning-delay", "3"),
    )
    assert session.mode == "simulate" and session.cassette is None
    assert session.args == (
        "--fault",
        "etag-mismatch",
        "--allow-anonymous",
        "--block-network",
        "--provisioning-delay",
        "3",
    )


def test_start_arguments_ask_for_a_proxy_of_the_tests_own():
    start, rest = split_start_arguments(["--verbose", "--listen-port", "0", "--seed=3", "--x"])
    assert start == ("--verbose", "--listen-port", "0")
    assert rest == ("--seed=3", "--x")


def test_the_start_arguments_are_the_cli_parsers_process_arguments():
    """The plugin can't import the CLI's parser (mitmproxy); the child refuses every other
    spelling of them (no abbreviations), so this table only has to be the parser's."""
    parser = argparse.ArgumentParser(add_help=False)
    cli.add_listen_arguments(parser)
    process = {
        name: action.nargs != 0
        for action in parser._actions
        if action.dest in session.NOT_PER_SESSION and "web" not in action.dest
        for name in action.option_strings
    }
    assert process == START_ARGUMENTS
