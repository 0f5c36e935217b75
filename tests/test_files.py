"""Replacing a whole file: the old content or the new, never half, and no temp file left."""

from __future__ import annotations

import os

import pytest

from proxy_addons.files import replace_atomically


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
