"""The cassette writer: atomic creation, one-block appends, locking, layout and torn tails."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import pre_commit_whitespace_problems, run_cli
from vcr.cassette import Cassette
from vcr.request import Request
from vcr.serialize import serialize
from vcr.serializers import yamlserializer

from proxy_addons.cassette import cassette
from proxy_addons.cassette.writer import CassetteWriteError, CassetteWriter

GRAPH = "https://graph.microsoft.com/beta/me/onlineMeetings"


def pair(n: int, body: bytes | str = b'{"ok": true}') -> tuple[Request, dict]:
    request = Request("GET", f"{GRAPH}/m{n}/virtualAppointment", None, {"Accept": "*/*"})
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": body},
    }
    return request, response


def block(n: int, body: bytes | str = b'{"ok": true}') -> str:
    return cassette.interaction_yaml(*pair(n, body))


def uris(path: Path) -> list[str]:
    return [i.request.uri for i in cassette.load(path)]


def vcrpy_uris(path: Path) -> list[str]:
    return [r.uri for r in Cassette.load(path=str(path), record_mode="none").requests]


def test_the_file_appears_only_with_its_first_interaction_and_no_temp_file_remains(tmp_path):
    path = tmp_path / "deep" / "new.yaml"
    writer = CassetteWriter(path)
    assert not path.exists()
    writer.append(block(0))
    assert path.read_text().startswith(cassette.HEADER + "- request:")
    assert vcrpy_uris(path) == uris(path) == [f"{GRAPH}/m0/virtualAppointment"]
    assert os.listdir(path.parent) == ["new.yaml"]


def test_each_append_adds_one_block_at_the_end_without_rewriting_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    writer = CassetteWriter(path)
    writer.append(block(0))
    inode, before = path.stat().st_ino, path.read_bytes()
    writer.append(block(1))
    writer.append(block(2))
    assert path.stat().st_ino == inode
    assert path.read_bytes() == before + (block(1) + block(2)).encode()
    assert vcrpy_uris(path) == [f"{GRAPH}/m{n}/virtualAppointment" for n in range(3)]


def test_a_cassette_grown_across_many_page_boundaries_passes_pre_commit_whitespace_hooks(tmp_path):
    """Blocks of every size, crossing page boundaries: no padding line, no trailing blank."""
    path = tmp_path / "pages.yaml"
    writer = CassetteWriter(path)
    for n in range(40):
        writer.append(block(n, "x" * (n * 331 % 3000)))
    writer.append(block(40, "trailing blanks  \nand a tab\t\n\n  \nend "))
    data = path.read_bytes()
    assert len(data) > 8 * 4096
    assert pre_commit_whitespace_problems(data) == []
    expected = [f"{GRAPH}/m{n}/virtualAppointment" for n in range(41)]
    assert vcrpy_uris(path) == uris(path) == expected


def test_a_rewrite_drops_the_blank_padding_lines_older_versions_wrote(tmp_path):
    path = tmp_path / "padded.yaml"
    padded = cassette.HEADER + block(0) + " " * 700 + "\n" + block(1)
    path.write_text(padded)
    CassetteWriter(path).append(block(2), keep=lambda blocks: blocks)
    assert pre_commit_whitespace_problems(path.read_bytes()) == []
    assert len(uris(path)) == 3


def torn_at_a_page_boundary(path: Path, pages: int) -> bytes:
    """Two whole blocks, then a third cut where a kill cuts one: at the ``pages``-th page
    boundary after its start (a write is copied into the file page by page). The whole part."""
    writer = CassetteWriter(path)
    writer.append(block(0))
    writer.append(block(1))
    whole = path.read_bytes()
    end = (len(whole) // cassette.PAGE + pages) * cassette.PAGE
    with path.open("ab") as f:
        f.write(block(2, "x" * 3 * cassette.PAGE).encode()[: end - len(whole)])
    return whole


@pytest.mark.parametrize("pages", [1, 2, 3])
def test_our_reader_leaves_out_a_torn_last_block_and_says_where_it_starts(tmp_path, pages, caplog):
    path = tmp_path / "torn.yaml"
    whole = torn_at_a_page_boundary(path, pages)
    assert len(path.read_bytes()) % cassette.PAGE == 0
    assert uris(path) == [f"{GRAPH}/m{n}/virtualAppointment" for n in range(2)]
    assert "incomplete last interaction from line" in caplog.text
    assert path.read_bytes().startswith(whole) and len(path.read_bytes()) > len(whole)


def test_validate_reports_a_torn_last_block_with_its_line_and_exits_1_until_a_writer_drops_it(
    tmp_path,
):
    path = tmp_path / "torn.yaml"
    torn_at_a_page_boundary(path, 1)
    done = run_cli("validate", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("1 torn last block left out")
    assert "incomplete last interaction from line" in " ".join(done.stdout.split())
    assert "Traceback" not in done.stderr
    CassetteWriter(path).heal()
    assert "torn last block" not in run_cli("validate", str(path)).stdout
    assert len(vcrpy_uris(path)) == 2


def test_a_broken_last_block_that_does_not_end_on_a_page_boundary_is_an_error(tmp_path):
    """Only a kill tears a block, and only at a page boundary: other damage is reported."""
    path = tmp_path / "broken.yaml"
    torn_at_a_page_boundary(path, 1)
    with path.open("ab") as f:
        f.write(b"x")
    with pytest.raises(cassette.CassetteError):
        cassette.load(path)


def test_binary_bodies_are_stored_so_they_load_back_byte_for_byte(tmp_path):
    path = tmp_path / "bin.yaml"
    body = bytes(range(256)) + b"\xff\xfe"
    CassetteWriter(path).append(block(0, body))
    assert "!!binary" in path.read_text()
    assert Cassette.load(path=str(path), record_mode="none").responses[0]["body"]["string"] == body
    assert cassette.recorded_reply(cassette.load(path)[0]).body == body


def test_a_cassette_vcrpy_wrote_is_rewritten_once_into_our_layout_keeping_everything(tmp_path):
    path = tmp_path / "vcrpy.yaml"
    requests, responses = zip(*(pair(n) for n in range(2)), strict=True)
    path.write_text(
        serialize({"requests": list(requests), "responses": list(responses)}, yamlserializer)
    )
    assert path.read_text().startswith("interactions:")
    writer = CassetteWriter(path)
    writer.append(block(2))
    rewritten = path.stat().st_ino
    writer.append(block(3))
    assert path.read_text().startswith(cassette.HEADER)
    assert path.stat().st_ino == rewritten  # converted once, then appended to
    assert vcrpy_uris(path) == [f"{GRAPH}/m{n}/virtualAppointment" for n in range(4)]


def test_an_empty_existing_file_becomes_a_cassette_with_the_new_interaction(tmp_path):
    path = tmp_path / "empty.yaml"
    path.touch()
    CassetteWriter(path).append(block(0))
    assert vcrpy_uris(path) == [f"{GRAPH}/m0/virtualAppointment"]


@pytest.mark.parametrize("pages", [1, 2, 3])
def test_a_torn_last_block_is_dropped_by_the_next_writer_and_everything_before_it_kept(
    tmp_path, pages
):
    path = tmp_path / "torn.yaml"
    whole = torn_at_a_page_boundary(path, pages)
    writer = CassetteWriter(path)
    message = writer.heal()
    assert message is not None and "incomplete last interaction" in message
    assert path.read_bytes() == whole
    assert vcrpy_uris(path) == [f"{GRAPH}/m{n}/virtualAppointment" for n in range(2)]
    torn_at_a_page_boundary(tmp_path / "again.yaml", pages)
    CassetteWriter(tmp_path / "again.yaml").append(block(3))  # an append drops it first, too
    assert uris(tmp_path / "again.yaml") == [f"{GRAPH}/m{n}/virtualAppointment" for n in (0, 1, 3)]


def test_the_start_of_a_block_torn_at_a_page_boundary_is_dropped(tmp_path):
    path = tmp_path / "start.yaml"
    writer = CassetteWriter(path)
    writer.append(block(0))
    room = cassette.PAGE - len(path.read_bytes()) - (len(block(1, "x")) - 1) - 3
    writer.append(block(1, "x" * room))  # the file now ends 3 bytes before a page boundary
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b"- r")
    assert len(path.read_bytes()) == cassette.PAGE
    assert writer.heal() is not None
    assert path.read_bytes() == whole


def test_a_broken_last_block_off_a_page_boundary_is_kept_and_reported_not_dropped(tmp_path):
    """Only a kill tears a block, and only at a page boundary: other damage is the user's to
    see (the recorder refuses the cassette with its line), never silently cut off."""
    path = tmp_path / "broken.yaml"
    writer = CassetteWriter(path)
    writer.append(block(0))
    writer.append(block(1))
    with path.open("ab") as f:
        f.write(block(2).encode()[:37])
    before = path.read_bytes()
    assert writer.heal() is None
    assert path.read_bytes() == before
    with pytest.raises(cassette.CassetteError):
        cassette.load(path)


def test_a_whole_last_block_is_never_dropped_even_if_it_ends_unusually(tmp_path):
    path = tmp_path / "whole.yaml"
    writer = CassetteWriter(path)
    writer.append(block(0))
    long_reason = block(1).replace("message: OK", "message: " + "Very Long Reason " * 10)
    writer.append(long_reason)
    assert writer.heal() is None
    assert len(uris(path)) == 2


def test_keep_rewrites_atomically_without_the_dropped_blocks_plus_the_new_one(tmp_path):
    path = tmp_path / "keep.yaml"
    writer = CassetteWriter(path)
    for n in range(3):
        writer.append(block(n))
    writer.append(block(9), keep=lambda blocks: [b for b in blocks if "/m1/" not in b])
    assert vcrpy_uris(path) == [f"{GRAPH}/m{n}/virtualAppointment" for n in (0, 2, 9)]
    assert os.listdir(tmp_path) == ["keep.yaml"]


def test_a_writer_follows_the_file_when_another_one_replaced_it(tmp_path):
    path = tmp_path / "shared.yaml"
    first, second = CassetteWriter(path), CassetteWriter(path)
    first.append(block(0))
    first.append(block(1))  # first now holds a descriptor of the file
    second.append(block(2), keep=lambda blocks: blocks)  # replaces the file
    first.append(block(3))
    assert uris(path) == [f"{GRAPH}/m{n}/virtualAppointment" for n in range(4)]


def test_a_failed_write_leaves_no_partial_block_and_says_why(tmp_path, monkeypatch):
    path = tmp_path / "full.yaml"
    writer = CassetteWriter(path)
    writer.append(block(0))
    before = path.read_bytes()
    real_write = os.write

    def half_then_full(fd: int, data: bytes) -> int:
        if len(data) > 100:
            real_write(fd, bytes(data)[:50])
            return 50
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(CassetteWriteError, match="No space left"):
        writer.append(block(1))
    monkeypatch.undo()
    assert path.read_bytes() == before


def test_an_unusable_path_is_a_write_error_not_a_crash(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CassetteWriteError, match="file"):
        CassetteWriter(tmp_path / "file" / "c.yaml").append(block(0))


WORKER = textwrap.dedent(
    """
    import sys
    from vcr.request import Request
    from proxy_addons.cassette import cassette
    from proxy_addons.cassette.writer import CassetteWriter

    path, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    writer = CassetteWriter(path, fsync=False)
    for i in range(count):
        request = Request("GET", f"https://graph.microsoft.com/x/{worker}/{i}", None, {})
        body = {"string": "y" * (i * 97 % 9000)}  # some blocks span several pages
        response = {"status": {"code": 200, "message": "OK"}, "headers": {}, "body": body}
        writer.append(cassette.interaction_yaml(request, response))
    """
)


def test_processes_appending_to_one_new_cassette_at_once_lose_and_corrupt_nothing(tmp_path):
    path = tmp_path / "race.yaml"
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), str(w), "150"]) for w in range(4)
    ]
    assert [w.wait(120) for w in workers] == [0, 0, 0, 0]
    expected = {f"https://graph.microsoft.com/x/{w}/{i}" for w in range(4) for i in range(150)}
    assert set(vcrpy_uris(path)) == expected
    assert len(uris(path)) == 600
