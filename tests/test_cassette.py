"""Reading vcrpy cassettes, refusing broken ones by file and line, and the matching index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vcr.request import Request

from proxy_addons import cassette, examples
from proxy_addons.cassette import CassetteError, CassetteIndex, Interaction

ROOT = Path(__file__).resolve().parent.parent
ME = examples.ME_URL


def interaction(method: str, uri: str, body: str | None = None, status: int = 200, n: int = 0):
    response = {
        "status": {"code": status, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": json.dumps({"n": n})},
    }
    return Interaction(Request(method, uri, body, {}), response, Path("t.yaml"), n)


def played(hit: Interaction | None) -> int | None:
    return None if hit is None else json.loads(hit.response["body"]["string"])["n"]


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- reading ------------------------------------------------------------------------------


def test_bundled_cassettes_are_exactly_the_documented_example():
    folder = cassette.bundled_cassettes()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in folder.glob("*.yaml")}
    assert on_disk == examples.bundled_cassette_texts()


def test_bundled_cassettes_hold_the_documented_request_and_201_for_me_and_users():
    loaded = cassette.load(cassette.bundled_cassettes())
    assert sorted(i.request.uri for i in loaded) == sorted([examples.USERS_URL, ME])
    for item in loaded:
        reply = cassette.recorded_reply(item)
        assert (reply.status, reply.reason) == (201, "Created")
        assert reply.json() == json.loads(examples.RESPONSE_BODY)
        assert json.loads(item.request.body) == json.loads(examples.REQUEST_BODY)


def test_a_folder_loads_every_yaml_and_yml_below_it_in_name_order(tmp_path):
    text = cassette.cassette_text([examples.documented_interaction(ME)])
    write(tmp_path, text, "b.yml")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", text, "a.yaml")
    write(tmp_path, "not a cassette", "notes.txt")
    loaded = cassette.load(tmp_path)
    assert [i.source.name for i in loaded] == ["b.yml", "a.yaml"]


def test_cassette_text_round_trips_through_load(tmp_path):
    pairs = [examples.documented_interaction(ME), examples.documented_interaction(ME + "?x=1")]
    loaded = cassette.load(write(tmp_path, cassette.cassette_text(pairs)))
    assert [(i.request.uri, i.position) for i in loaded] == [(ME, 0), (ME + "?x=1", 1)]
    assert loaded[1].label == f"PUT {ME}?x=1 (c.yaml #1)"


def test_a_missing_cassette_names_the_path(tmp_path):
    with pytest.raises(CassetteError) as caught:
        cassette.load(tmp_path / "nope.yaml")
    assert str(caught.value) == f"{tmp_path / 'nope.yaml'}: no such cassette file or folder"


def test_corrupt_yaml_names_file_and_line_and_leaves_the_file_alone(tmp_path):
    path = write(tmp_path, "version: 1\ninteractions:\n- request: {method: PUT\n  uri: [\n")
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    assert caught.value.path == path
    assert caught.value.line == 4  # the flow mapping's missing ',' before "uri"
    assert str(caught.value).startswith(f"{path}:4: not valid YAML")
    assert "\n" not in str(caught.value)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before


def test_non_utf8_cassette_names_the_byte(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"version: 1\ninteractions: []\n# \xff\n")
    with pytest.raises(CassetteError, match=r"c\.yaml:3: not UTF-8 text \(byte 30\)"):
        cassette.load(path)


def test_a_directory_named_like_a_cassette_inside_a_folder_is_skipped(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    assert cassette.load(tmp_path) == []


def test_an_unreadable_path_is_one_line(tmp_path):
    with pytest.raises(CassetteError) as caught:
        cassette.load_file(tmp_path)  # a folder where a file is expected
    assert str(caught.value).startswith(f"{tmp_path}: ")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("- just\n- a list\n", 1, "not a mapping with 'interactions'"),
        ("version: 1\ninteractions: 3\n", 2, "'interactions' must be a list"),
        (
            "version: 1\ninteractions:\n- request: {method: GET, uri: 'https://x/'}\n",
            3,
            "interaction 0: 'response' is missing",
        ),
        (
            "version: 1\ninteractions:\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n"
            "  response: {status: {code: 200}, headers: {}, body: {string: ''}}\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n"
            "  response: {headers: {}}\n",
            5,
            "interaction 1: 'response' has no status",
        ),
        (
            "version: 1\ninteractions:\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n"
            "  response: {status: {code: two hundred}, headers: {}, body: {string: ''}}\n",
            3,
            "'response.status.code' must be a number",
        ),
    ],
)
def test_structurally_wrong_cassettes_name_the_line_of_the_bad_part(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    assert caught.value.line == line
    assert reason in caught.value.message


# --- matching -----------------------------------------------------------------------------


def test_lookup_matches_the_body_as_json_whatever_its_key_order_and_whitespace():
    index = CassetteIndex([interaction("PUT", ME, '{"a": 1, "b": [1, 2]}')])
    assert index.lookup("PUT", ME, b'{"b":[1,2],\n"a":1}') is not None
    assert index.lookup("PUT", ME, b'{"b":[2,1],"a":1}') is None


def test_lookup_normalises_path_case_encoding_slash_and_query_order():
    recorded = interaction("GET", ME + "?$select=id&$top=1")
    index = CassetteIndex([recorded])
    sent = ME.upper().replace("HTTPS://GRAPH.MICROSOFT.COM", "https://graph.microsoft.com")
    sent = sent.replace(examples.MEETING_ID.upper(), examples.MEETING_ID)
    assert index.lookup("get", sent + "/?%24top=1&$select=id", None) is recorded
    assert index.lookup("GET", ME + "?$select=id", None) is None


def test_lookup_of_a_url_that_is_not_ours_is_exact_on_path_but_not_query_order():
    index = CassetteIndex([interaction("GET", "https://example.com/A?x=1&y=2")])
    assert index.lookup("GET", "https://example.com/A?y=2&x=1", None) is not None
    assert index.lookup("GET", "https://example.com/a?x=1&y=2", None) is None


def test_repeated_requests_get_recorded_answers_in_order_then_the_last_again():
    index = CassetteIndex([interaction("GET", ME, n=n) for n in range(3)])
    assert [played(index.lookup("GET", ME, None)) for _ in range(5)] == [0, 1, 2, 2, 2]


def test_each_distinct_request_keeps_its_own_place_in_order():
    index = CassetteIndex(
        [
            interaction("PUT", ME, '{"v": 1}', n=0),
            interaction("PUT", ME, '{"v": 2}', n=1),
            interaction("PUT", ME, '{"v": 1}', n=2),
        ]
    )
    assert played(index.lookup("PUT", ME, b'{"v": 2}')) == 1
    assert played(index.lookup("PUT", ME, b'{"v":1}')) == 0
    assert played(index.lookup("PUT", ME, b'{"v":1}')) == 2
    assert played(index.lookup("PUT", ME, b'{"v": 2}')) == 1


def test_ignoring_the_body_matches_any_body_and_plays_in_order():
    index = CassetteIndex(
        [interaction("PUT", ME, '{"v": 1}', n=0), interaction("PUT", ME, '{"v": 2}', n=1)],
        match_body=False,
    )
    assert played(index.lookup("PUT", ME, b"not even json")) == 0
    assert played(index.lookup("PUT", ME, None)) == 1
    assert index.lookup("PATCH", ME, None) is None


def test_a_redaction_placeholder_matches_any_value_in_its_place():
    recorded = interaction("PUT", ME, '{"phone": "<redacted:phone>", "name": "Grady"}')
    index = CassetteIndex([recorded])
    assert index.lookup("PUT", ME, b'{"name": "Grady", "phone": "+1 206 555 0100"}') is recorded
    assert index.lookup("PUT", ME, b'{"name": "Other", "phone": "+1"}') is None
    assert index.lookup("PUT", ME, b'{"name": "Grady"}') is None


def test_non_json_bodies_compare_as_bytes():
    index = CassetteIndex([interaction("POST", "https://example.com/x", "a=1&b=2")])
    assert index.lookup("POST", "https://example.com/x", b"a=1&b=2") is not None
    assert index.lookup("POST", "https://example.com/x", b"b=2&a=1") is None


def test_a_miss_names_the_closest_recorded_request_and_each_difference():
    index = CassetteIndex(
        [
            interaction("GET", "https://example.com/far", n=0),
            interaction("PUT", ME + "?a=1", '{"settings": {"x": 1}}', n=1),
        ]
    )
    miss = index.explain_miss("PUT", ME + "?a=2", b'{"settings": {"x": 2}}')
    assert miss.closest is not None and played(miss.closest) == 1
    assert miss.differences == ("query (?a=1 recorded, ?a=2 sent)", "body at $.settings.x")
    assert miss.explain().startswith(f"closest recorded request is PUT {ME}?a=1 (t.yaml #1)")


def test_a_miss_against_an_empty_cassette_says_so():
    assert CassetteIndex().explain_miss("GET", ME, None).explain() == (
        "the cassette holds no interactions"
    )


def test_recorded_reply_keeps_repeated_headers_in_order_and_encodes_str_bodies():
    item = interaction("GET", ME)
    item.response["headers"] = {"Set-Cookie": ["a=1", "b=2"], "ETag": 'W/"1"'}
    reply = cassette.recorded_reply(item)
    assert reply.headers == (("Set-Cookie", "a=1"), ("Set-Cookie", "b=2"), ("ETag", 'W/"1"'))
    assert reply.body == b'{"n": 0}'


def test_loading_never_writes_to_the_cassette(tmp_path):
    path = write(tmp_path, cassette.cassette_text([examples.documented_interaction(ME)]))
    before = (path.read_bytes(), path.stat().st_mtime_ns)
    CassetteIndex(cassette.load(path)).lookup("PUT", ME, examples.REQUEST_BODY.encode())
    assert (path.read_bytes(), path.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_pyproject_ships_the_cassettes_folder_as_package_data():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"proxy_addons.cassettes" = "cassettes"' in pyproject
    assert cassette.bundled_cassettes().is_dir()
