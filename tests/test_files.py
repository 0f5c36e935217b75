"""Replacing a whole file: the old content or the new, never half, and no temp file left."""

from __future__ import annotations

import os

import pytest

from proxy_addons.common.files import cut_to_size, replace_atomically


def test_replacing_a_file_leaves_the_new_content_and_no_temporary_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    replace_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_failed_rename_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_text("old")

    def refuse(src: str, dst: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        replace_atomically(target, b"new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize("name", ["a" * 250 + ".yaml", "é" * 125 + ".yaml", "日" * 83 + ".yaml"])
def test_a_file_with_the_longest_name_can_be_replaced_through_its_temporary_twin(tmp_path, name):
    # The twin is ".NAME.XXXXXXXX.tmp": 14 bytes more than a name that already fills 255.
    assert len(name.encode()) >= 250
    target = tmp_path / name
    target.write_text("old")
    replace_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == [name]


@pytest.mark.parametrize(
    ("name", "limit", "cut"), [("aé日", 3, "aé"), ("aé日", 5, "aé"), ("é", 1, "")]
)
def test_a_name_is_cut_to_its_byte_limit_between_characters(name, limit, cut):
    assert cut_to_size(name, limit) == cut
