"""A session's arguments (``PUT /session``), parsed by the CLI's parser made strict: what the
pytest plugin's child refuses before anything is switched (no proxy here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxy_addons.testing import session
from proxy_addons.testing.session import (
    NOT_PER_SESSION,
    SessionError,
    checked_arguments,
    mode_parsers,
)

PARSERS = mode_parsers()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path.resolve()


def refusal(mode: str, argv: list[str], root: Path) -> str:
    with pytest.raises(SessionError) as raised:
        checked_arguments(PARSERS[mode], argv, root)
    return str(raised.value)


@pytest.mark.parametrize("word", ["--help", "-h", "--version", "--cass", "--rev", "--nope"])
def test_help_abbreviations_and_unknown_words_are_one_line_never_an_exit(root, word):
    assert refusal("simulate", [word], root).startswith("simulate: unrecognized arguments: ")


@pytest.mark.parametrize("second", [["--cassette", "b.yaml"], ["--cassette=b.yaml"]])
def test_an_option_with_one_value_given_twice_is_refused(root, second):
    argv = ["--cassette", str(root / "a.yaml"), *second]
    assert refusal("record", argv, root).startswith("--cassette is given twice: ")


def test_repeatable_options_and_flags_may_repeat(root):
    argv = ["--fault", "throttle", "--fault=reset", "--allow-anonymous", "--allow-anonymous"]
    assert checked_arguments(PARSERS["simulate"], argv, root).fault == ["throttle", "reset"]


def every_spelling(dest: str) -> list[list[str]]:
    """Each option string the parsers have for ``dest``, alone and with ``=VALUE``."""
    actions = [a for p in PARSERS.values() for a in p._actions if a.dest == dest]
    assert actions, f"no option sets {dest}: NOT_PER_SESSION is stale"
    return [
        [name] if action.nargs == 0 else [name, "0"]
        for action in actions[:1]
        for name in action.option_strings
    ]


@pytest.mark.parametrize("dest", sorted(NOT_PER_SESSION))
def test_what_belongs_to_the_process_is_refused_in_every_spelling(root, dest):
    for argv in every_spelling(dest):
        mode = next(m for m, p in PARSERS.items() if any(a.dest == dest for a in p._actions))
        assert refusal(mode, argv, root) == f"{argv[0]}: {NOT_PER_SESSION[dest]}"


@pytest.mark.parametrize(
    ("mode", "argv"),
    [
        ("replay", ["--cassette", "/etc/x.yaml"]),
        ("replay", ["--cassette=../x.yaml"]),
        ("record", ["--cassette", "~/x.yaml"]),
        ("simulate", ["--state", "/tmp/../etc/state.json"]),
        ("replay", ["--faults", "/etc/passwd"]),
        ("replay", ["--cassette", "bad\x00name"]),
    ],
)
def test_a_path_outside_the_session_root_is_refused(root, mode, argv, monkeypatch):
    monkeypatch.chdir(root)
    assert ": outside the session root " in refusal(mode, argv, root)


def test_a_symlink_out_of_the_root_is_outside(root, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (root / "link").symlink_to(elsewhere)
    assert session.outside(root, str(root / "link" / "x.yaml"))
    assert not session.outside(root, str(root / "sub" / "x.yaml"))


def test_paths_inside_the_root_pass(root, monkeypatch):
    monkeypatch.chdir(root)
    args = checked_arguments(PARSERS["record"], ["--cassette", "sub/x.yaml"], root)
    assert args.cassette == "sub/x.yaml"
