"""Reading vcrpy cassettes, refusing broken ones by file and line, and the matching index."""

from __future__ import annotations

import base64
import copy
import gzip
import json
import logging
import tracemalloc
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from bombs import alias_bomb
from helpers import pre_commit_whitespace_problems
from hypothesis import given, settings
from hypothesis import strategies as st
from mitmproxy.net.http.http1.assemble import assemble_response
from vcr.request import Request
from vcr.serialize import serialize as vcr_serialize
from vcr.serializers import compat, yamlserializer

from proxy_addons.addons.flows import to_response
from proxy_addons.addons.playback import replayed_reply
from proxy_addons.cassette import cassette, examples
from proxy_addons.cassette.cassette import CassetteError, Interaction
from proxy_addons.cassette.matching import CassetteIndex, Shape, differences, shape
from proxy_addons.cli.validate import interaction_problems
from proxy_addons.common import content_encoding
from proxy_addons.graph.replies import Reply

ROOT = Path(__file__).resolve().parent.parent
ME = examples.ME_URL


def interaction(method: str, uri: str, body: str | None = None, status: int = 200, n: int = 0):
    response = {
        "status": {"code": status, "message": "OK"},
        "headers": {"Content-Type": ["application/json"]},
        "body": {"string": json.dumps({"n": n})},
    }
    return Interaction(Request(method, uri, body, {}), response, Path("t.yaml"), n)


def shape_of(item: Interaction) -> Shape:
    return shape(item.request.method, item.request.uri, item.request.body)


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


TEXT = st.text(max_size=40)
HEADERS = st.dictionaries(st.text(min_size=1, max_size=12), st.lists(TEXT, max_size=2), max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "PATCH"]),
    request_body=st.none() | TEXT | st.binary(max_size=40),
    request_headers=st.dictionaries(st.text(min_size=1, max_size=12), TEXT, max_size=3),
    status=st.integers(100, 599),
    reason=TEXT,
    response_headers=HEADERS,
    response_body=TEXT | st.binary(max_size=40),
)
def test_an_interaction_is_written_exactly_as_vcrpys_own_dumper_writes_it(
    method, request_body, request_headers, status, reason, response_headers, response_body
):
    request = Request(method, ME + "?q=1", request_body, request_headers)
    response = {
        "status": {"code": status, "message": reason},
        "headers": response_headers,
        "body": {"string": response_body},
    }
    kept = copy.deepcopy(response)
    vcrpy_item = {
        "request": compat.convert_to_unicode(request._to_dict()),
        "response": compat.convert_to_unicode(copy.deepcopy(response)),
    }
    assert cassette.interaction_yaml(request, response) == yamlserializer.serialize([vcrpy_item])
    assert response == kept  # the caller's dict is left as it was


PLAIN_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20)
    # what PyYAML reads its own way: octal, hex, sexagesimal, underscores, YAML 1.1 booleans
    | st.sampled_from(["0o17", "0x1F", "017", "1_000", "1:30", "+5", "-0", "~", "yes", "On"])
)
YAML_VALUES = st.recursive(
    PLAIN_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8) | st.integers() | st.booleans(), inner, max_size=4)
    ),
    max_leaves=20,
)
YAML_SCRAPS = st.lists(
    st.sampled_from(["\n", " ", "- ", ": ", "? ", "[", "]", "{", "}", ",", "&a ", "*a"])
    | st.sampled_from(["!!binary ", "!!python/tuple ", "!!int ", "!!str ", "<<: ", "= ", "'"])
    | st.sampled_from(["eA==", "3", "07", "x", "true", "null", "1.5", "2001-12-14", "|"]),
    max_size=30,
).map("".join)


def loaded_by(load: Any, text: str) -> str:
    """What a YAML loader makes of ``text``: the value's repr (types included: True is not
    1), or the kind of error and its message."""
    try:
        return repr(load(text))
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@settings(max_examples=500, deadline=None)
@given(YAML_VALUES.map(yaml.safe_dump) | YAML_SCRAPS | st.text(max_size=40))
def test_cassette_yaml_is_read_exactly_as_vcrpys_serializer_reads_it(text):
    assert loaded_by(cassette.deserialize_yaml, text) == loaded_by(yamlserializer.deserialize, text)


def test_a_plain_cassette_is_built_without_vcrpys_constructor(monkeypatch):
    text = cassette.cassette_text([examples.documented_interaction(ME)])
    expected = yamlserializer.deserialize(text)
    monkeypatch.setattr(yamlserializer, "deserialize", lambda text: pytest.fail("not plain"))
    assert cassette.deserialize_yaml(text) == expected


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
    write(tmp_path, cassette.cassette_text([examples.documented_interaction(ME)]), "real.yaml")
    assert [i.source.name for i in cassette.load(tmp_path)] == ["real.yaml"]


@pytest.mark.parametrize("contents", [[], ["notes.txt"], ["dir.yaml/"], ["sub/", "sub/x.json"]])
def test_a_folder_without_cassettes_is_refused_instead_of_replaying_nothing(tmp_path, contents):
    for name in contents:
        target = tmp_path / name
        target.mkdir() if name.endswith("/") else target.write_text("x", encoding="utf-8")
    with pytest.raises(CassetteError) as caught:
        cassette.load(tmp_path)
    assert str(caught.value) == f"{tmp_path}: folder holds no .yaml or .yml cassettes"


def test_an_unreadable_path_is_one_line(tmp_path):
    with pytest.raises(CassetteError) as caught:
        cassette.load_file(tmp_path)  # a folder where a file is expected
    assert str(caught.value).startswith(f"{tmp_path}: ")


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("- just\n- a list\n", 1, "not a mapping with 'interactions'"),
        ("version: 1\ninteractions: 3\n", 2, "'interactions' must be a list"),
        ("version: 1\ninteractions: {}\n", 2, "'interactions' must be a list"),
        (
            "version: 1\ninteractions:\n- request: {method: GET, uri: 'https://x/'}\n",
            3,
            "interaction 0: request.body: is missing",
        ),
        (
            "version: 1\ninteractions:\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n",
            3,
            "interaction 0: response: is missing",
        ),
        (
            "version: 1\ninteractions:\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n"
            "  response: {status: {code: 200}, headers: {}, body: {string: ''}}\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n"
            "  response: {headers: {}}\n",
            5,
            "interaction 1: response.status: is missing",
        ),
        (
            "version: 1\ninteractions:\n"
            "- request: {method: GET, uri: 'https://x/', body: null, headers: {}}\n"
            "  response: {status: {code: two hundred}, headers: {}, body: {string: ''}}\n",
            3,
            "response.status.code: must be a whole number, got 'two hundred'",
        ),
        ("version: 1\ninteractions:\n- 3\n", 3, "interaction 0: must be a mapping, got 3"),
    ],
)
def test_structurally_wrong_cassettes_name_the_line_of_the_bad_part(tmp_path, text, line, reason):
    path = write(tmp_path, text)
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    assert caught.value.line == line
    assert reason in caught.value.message


GOOD_REQUEST = "{method: GET, uri: 'https://x.test/a', body: null, headers: {}}"
GOOD_RESPONSE = "{status: {code: 200, message: OK}, headers: {}, body: {string: ''}}"


def second_interaction(request: str = GOOD_REQUEST, response: str = GOOD_RESPONSE) -> str:
    """A cassette whose interaction 1, on line 5, has this request and response."""
    return (
        "version: 1\ninteractions:\n"
        f"- request: {GOOD_REQUEST}\n  response: {GOOD_RESPONSE}\n"
        f"- request: {request}\n  response: {response}\n"
    )


def response_with(**parts: str) -> str:
    fields = {"status": "{code: 200, message: OK}", "headers": "{}", "body": "{string: ''}"}
    fields.update(parts)
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


def request_with(**parts: str) -> str:
    fields = {"method": "GET", "uri": "'https://x.test/a'", "body": "null", "headers": "{}"}
    fields.update(parts)
    return "{" + ", ".join(f"{k}: {v}" for k, v in fields.items()) + "}"


@pytest.mark.parametrize(
    ("request_yaml", "response_yaml", "problem"),
    [
        (GOOD_REQUEST, response_with(status="200"), "response.status: must be a mapping, got 200"),
        (GOOD_REQUEST, response_with(body="5"), "response.body: must be a mapping, got 5"),
        (GOOD_REQUEST, response_with(headers="[1, 2]"), "response.headers: must be a mapping"),
        (
            GOOD_REQUEST,
            response_with(status="{code: 99999}"),
            "response.status.code: must be 100..599, got 99999",
        ),
        (
            GOOD_REQUEST,
            response_with(status="{code: true}"),
            "response.status.code: must be a whole number, got True",
        ),
        (
            GOOD_REQUEST,
            response_with(headers='{X-A: ["a\\nb"]}'),
            "response.headers.X-A[0]: must not contain a line break, got 'a\\nb'",
        ),
        (
            GOOD_REQUEST,
            response_with(headers='{X-A: "a\\r\\nSet-Cookie: x"}'),
            "response.headers.X-A[0]: must not contain a line break",
        ),
        (
            GOOD_REQUEST,
            response_with(headers="{X-A: [1, null]}"),
            "response.headers.X-A[0]: must be text, got 1",
        ),
        (
            GOOD_REQUEST,
            response_with(headers="{'X A': [b]}"),
            "response.headers.X A: must be an HTTP token",
        ),
        (
            GOOD_REQUEST,
            response_with(status='{code: 200, message: "OK\\r\\nX: y"}'),
            "response.status.message: must be one line of Latin-1 text",
        ),
        (
            GOOD_REQUEST,
            response_with(body="{string: 5}"),
            "response.body.string: must be text, binary or null, got 5",
        ),
        (request_with(uri="12"), GOOD_RESPONSE, "request.uri: must be text, got 12"),
        (
            request_with(uri="not-a-url"),
            GOOD_RESPONSE,
            "request.uri: must be an absolute http(s) URL",
        ),
        (request_with(uri="'http://[::1/x'"), GOOD_RESPONSE, "request.uri: must be an absolute"),
        (request_with(method="'G ET'"), GOOD_RESPONSE, "request.method: must be an HTTP token"),
        (request_with(body="{a: 1}"), GOOD_RESPONSE, "request.body: must be text, binary or null"),
        (request_with(headers="{A: []}"), GOOD_RESPONSE, "request.headers.A: must not be empty"),
        (
            request_with(colour="blue"),
            GOOD_RESPONSE,
            "request.colour: is not part of vcrpy's format",
        ),
        (
            "{uri: 'https://x.test/a', body: null, headers: {}}",
            GOOD_RESPONSE,
            "request.method: is missing",
        ),
    ],
)
def test_an_interaction_of_the_wrong_shape_is_refused_at_load_naming_its_line_and_field(
    tmp_path, request_yaml, response_yaml, problem
):
    path = write(tmp_path, second_interaction(request_yaml, response_yaml))
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    assert str(caught.value).startswith(f"{path}:5: interaction 1: {problem}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("request_yaml", "response_yaml"),
    [
        # vcrpy reads a single header value as well as a list, and keeps bytes request headers
        (request_with(headers="{Accept: '*/*', X-Raw: [!!binary eA==]}"), GOOD_RESPONSE),
        (GOOD_REQUEST, response_with(headers="{ETag: 'W/\"1\"'}")),
        # binary bodies, a null body string, no reason phrase, keys vcrpy's stubs add
        (request_with(body="!!binary eyJhIjogMX0="), response_with(body="{string: !!binary /w==}")),
        (GOOD_REQUEST, response_with(status="{code: 204}", body="{string: null}", url="'x'")),
        # a file-like body from an old vcrpy, which vcrpy's Request reads into bytes
        (
            request_with(body="!!python/object/new:_io.BytesIO {state: [!!binary eA==, 0, null]}"),
            GOOD_RESPONSE,
        ),
        # an IPv6 host
        (request_with(uri="'http://[::1]:8080/a'"), GOOD_RESPONSE),
    ],
)
def test_everything_vcrpy_writes_or_reads_still_loads(tmp_path, request_yaml, response_yaml):
    loaded = cassette.load(write(tmp_path, second_interaction(request_yaml, response_yaml)))
    assert len(loaded) == 2
    reply = replayed_reply(loaded[1], {})  # and it can be answered
    assert reply.status == loaded[1].response["status"]["code"]
    assert reply.header("request-id")


def test_an_unsupported_yaml_tag_is_one_line_naming_its_line(tmp_path):
    path = write(
        tmp_path, second_interaction(response=response_with(body="!!python/object:os.system x"))
    )
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    assert str(caught.value) == (
        f"{path}:6: cannot be loaded safely: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'"
    )


def test_a_cassette_error_is_always_one_line_whatever_its_message(tmp_path):
    error = CassetteError(tmp_path / "c.yaml", 3, "first line\n  in <unicode string>,\tline 11\n")
    assert str(error) == f"{tmp_path / 'c.yaml'}:3: first line in <unicode string>, line 11"
    assert error.message == "first line in <unicode string>, line 11"


# --- any shape: either one line naming the problem, or interactions that replay --------------

FIELD_NAMES = ("request", "response", "status", "code", "message", "headers", "body", "string")
FIELD_NAMES += ("method", "uri", "interactions", "version", "Content-Type")
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-1, 100_000)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.binary(max_size=4)
)
odd_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
# Every place of a documented cassette something odd can stand in.
PLACES = [
    (),
    ("interactions",),
    ("interactions", 0),
    *[("interactions", 0, side) for side in ("request", "response")],
    *[("interactions", 0, "request", k) for k in ("method", "uri", "body", "headers")],
    ("interactions", 0, "request", "headers", "Content-Type"),
    *[("interactions", 0, "response", k) for k in ("status", "headers", "body")],
    ("interactions", 0, "response", "status", "code"),
    ("interactions", 0, "response", "status", "message"),
    ("interactions", 0, "response", "headers", "Content-Type"),
    ("interactions", 0, "response", "headers", "Content-Type", 0),
    ("interactions", 0, "response", "body", "string"),
]


def documented_document() -> dict[str, Any]:
    return yaml.safe_load(cassette.cassette_text([examples.documented_interaction(ME)]))


def replace_at(document: Any, place: tuple[Any, ...], value: Any) -> Any:
    if not place:
        return value
    document = copy.deepcopy(document)
    parent = document
    for key in place[:-1]:
        parent = parent[key]
    parent[place[-1]] = value
    return document


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One file that every example overwrites (module-scoped: hypothesis reruns the test)."""
    return tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"


@settings(max_examples=300, deadline=None)
@given(place=st.sampled_from(PLACES), value=odd_values)
def test_any_shape_is_refused_in_one_line_or_loads_into_interactions_that_replay(
    fuzz_file, place, value
):
    text = yaml.safe_dump(replace_at(documented_document(), place, value))
    fuzz_file.write_text(text, encoding="utf-8")
    cassette.locate_structure_error(text)  # never raises
    try:
        loaded = cassette.load_file(fuzz_file)
    except CassetteError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(f"{fuzz_file}")
        return
    index = CassetteIndex(loaded)
    for item in loaded:
        request = item.request
        hit = index.lookup(request.method, request.uri, request.body)
        assert hit is not None
        assert differences(shape_of(hit), shape_of(item)) == ()  # an answer to this request
        explanation = index.explain_miss("PATCH", ME + "?x=1", b"{}").explain()
        assert explanation.startswith("closest recorded request is ") and "\n" not in explanation
        assert {side for side, _ in interaction_problems(item)} <= {"request", "response"}
        response = to_response(replayed_reply(item, {}))
        head = assemble_response(response).split(b"\r\n\r\n", 1)[0]
        assert len(head.split(b"\r\n")) == 1 + len(response.headers.fields)  # nothing injected


YAML_PIECES = st.sampled_from(
    [
        "\n",
        " ",
        "- ",
        ": ",
        "? ",
        "[",
        "]",
        "{",
        "}",
        ",",
        "&a ",
        "*a",
        "!!binary ",
        "!!python/tuple ",
        "interactions",
        "request",
        "response",
        "status",
        "code",
        "'",
        '"',
        "#",
        "|",
        "<<: ",
        "3",
        "x",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(YAML_PIECES, max_size=40).map("".join) | st.text(max_size=60))
def test_locating_a_structure_error_never_raises_whatever_the_text(text):
    line, message = cassette.locate_structure_error(text)
    assert line is None or line >= 1
    assert message is None or "\n" not in message


@pytest.mark.parametrize(
    ("text", "error"),
    [
        # a complex key at the top
        ("? [a]\n: b\n", ":1: cannot be loaded safely: found unhashable key"),
        (
            "version: 1\ninteractions:\n- ? [request]\n  : 1\n",
            ":3: cannot be loaded safely: found unhashable key",
        ),
        # a list that contains itself
        ("interactions: &a [*a]\n", ":1: interaction 0: must be a mapping, got [[[[...]]]]"),
        # a mapping that contains itself
        (
            "interactions:\n- &i {request: *i, response: *i}\n",
            ":2: interaction 0: request.method: is missing",
        ),
        (
            "interactions:\n- request: !!python/object/new:_io.BytesIO {state: 5}\n",
            ": not a vcrpy cassette (",
        ),
    ],
)
def test_self_referencing_and_complex_key_documents_are_one_line_errors(tmp_path, text, error):
    path = write(tmp_path, text)
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    assert str(caught.value).startswith(f"{path}{error}")
    assert "\n" not in str(caught.value)


def test_an_alias_bomb_in_a_cassette_is_one_short_line_not_its_whole_repr(tmp_path):
    status = "  response:\n    status: {code: 200, message: *a5}\n    headers: {}\n"
    request = "- request: {method: GET, uri: 'https://x.test/', body: null, headers: {}}\n"
    path = write(tmp_path, f"bomb:\n{alias_bomb(6, '  ')}interactions:\n{request}{status}")
    with pytest.raises(CassetteError) as caught:
        cassette.load(path)
    said = str(caught.value)
    assert "response.status.message: must be text, got [[[[...], [...]," in said
    assert len(said) < len(str(path)) + 200


# --- matching -----------------------------------------------------------------------------


def test_lookup_matches_the_body_as_json_whatever_its_key_order_and_whitespace():
    recorded = interaction("PUT", ME, '{"a": 1, "b": [1, 2]}')
    index = CassetteIndex([recorded])
    assert index.lookup("PUT", ME, b'{"b":[1,2],\n"a":1}') is recorded
    assert index.lookup("PUT", ME, b'{"b":[2,1],"a":1}') is None


def test_lookup_normalises_path_case_encoding_slash_and_query_order():
    recorded = interaction("GET", ME + "?$select=id&$top=1")
    index = CassetteIndex([recorded])
    sent = ME.upper().replace("HTTPS://GRAPH.MICROSOFT.COM", "https://graph.microsoft.com")
    sent = sent.replace(examples.MEETING_ID.upper(), examples.MEETING_ID)
    assert index.lookup("get", sent + "/?%24top=1&$select=id", None) is recorded
    assert index.lookup("GET", ME + "?$select=id", None) is None


def test_lookup_of_a_url_that_is_not_ours_is_exact_on_path_but_not_query_order():
    recorded = interaction("GET", "https://example.com/A?x=1&y=2")
    index = CassetteIndex([recorded])
    assert index.lookup("GET", "https://example.com/A?y=2&x=1", None) is recorded
    assert index.lookup("GET", "https://example.com/a?x=1&y=2", None) is None


def test_repeated_requests_get_each_recorded_answer_once_in_order_then_miss():
    index = CassetteIndex([interaction("GET", ME, n=n) for n in range(3)])
    assert [played(index.lookup("GET", ME, None)) for _ in range(5)] == [0, 1, 2, None, None]


def test_allowing_repeats_plays_in_order_then_the_last_again():
    index = CassetteIndex([interaction("GET", ME, n=n) for n in range(3)], allow_repeats=True)
    assert [played(index.lookup("GET", ME, None)) for _ in range(5)] == [0, 1, 2, 2, 2]


def test_two_identical_recorded_creates_answer_in_recorded_order_then_miss():
    index = CassetteIndex([interaction("PUT", ME, '{"v": 1}', n=n) for n in range(2)])
    answers = [played(index.lookup("PUT", ME, b'{"v":1}')) for _ in range(3)]
    assert answers == [0, 1, None]


def test_a_played_out_request_is_explained_as_played_out_not_as_different():
    index = CassetteIndex([interaction("PUT", ME, '{"v": 1}')])
    assert index.lookup("PUT", ME, b'{"v": 1}') is not None
    miss = index.explain_miss("PUT", ME, b'{"v": 1}')
    assert miss.explain() == (
        "all 1 recorded answers to this request were already played; allow repeats with "
        "--allow-playback-repeats (allow_playback_repeats=True in the marker)"
    )


def test_a_placeholder_recording_answers_once_the_exact_one_is_played():
    index = CassetteIndex(
        [
            interaction("PUT", ME, '{"phone": "<redacted:phone>"}', n=0),
            interaction("PUT", ME, '{"phone": "1"}', n=1),
        ]
    )
    answers = [played(index.lookup("PUT", ME, b'{"phone": "1"}')) for _ in range(3)]
    assert answers == [1, 0, None]


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
    assert index.lookup("PUT", ME, b'{"v": 2}') is None


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


def test_a_placeholder_body_stands_for_a_value_not_for_no_body_at_all():
    recorded = interaction("PUT", ME, '"<redacted:x:1>"')
    index = CassetteIndex([recorded])
    assert index.lookup("PUT", ME, b'"anything"') is recorded
    assert index.lookup("PUT", ME, None) is None
    assert index.explain_miss("PUT", ME, None).differences == ("body (recorded one, none sent)",)


def test_an_old_cassette_whose_request_body_vcrpy_kept_as_a_file_still_replays(tmp_path):
    body = base64.b64encode(b'{"a": 1}').decode()
    path = write(
        tmp_path,
        f"""interactions:
- request:
    body: !!python/object/new:_io.BytesIO
      state: !!python/tuple
      - !!binary |
        {body}
      - 0
      - null
    headers: {{}}
    method: PUT
    uri: {ME}
  response:
    body: {{string: '{{}}'}}
    headers: {{}}
    status: {{code: 201, message: Created}}
version: 1
""",
    )
    (recorded,) = cassette.load(path)
    index = CassetteIndex([recorded])
    assert index.lookup("PUT", ME, b'{"a":1}') is recorded
    assert index.explain_miss("PUT", ME, b'{"a": 2}').differences == ("body at $.a",)


def test_non_json_bodies_compare_as_bytes():
    recorded = interaction("POST", "https://example.com/x", "a=1&b=2")
    index = CassetteIndex([recorded])
    assert index.lookup("POST", "https://example.com/x", b"a=1&b=2") is recorded
    assert index.lookup("POST", "https://example.com/x", b"b=2&a=1") is None


JSON_LEAVES = st.sampled_from([0, 1, 1.0, True, False, None, "a", "1", "<redacted:x:1>"])
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("ab"), inner),
    max_leaves=4,
)
BODIES = st.none() | JSON_VALUES.map(json.dumps) | st.sampled_from(["a=1", "not json"])


@settings(max_examples=300, deadline=None)
@given(
    recorded=st.tuples(st.sampled_from(["PUT", "PATCH"]), st.sampled_from(["", "?a=1"]), BODIES),
    sent=st.tuples(st.sampled_from(["put", "PATCH"]), st.sampled_from(["", "?A=1"]), BODIES),
)
def test_the_index_matches_exactly_when_a_miss_would_name_no_difference(recorded, sent):
    """One rule: what the index finds and what a miss explains can never disagree."""
    method, query, body = recorded
    index = CassetteIndex([interaction(method, ME + query, body)])
    sent_method, sent_query, sent_body = sent
    raw = None if sent_body is None else sent_body.encode()
    hit = index.lookup(sent_method, ME + sent_query, raw)
    found = differences(shape(method, ME + query, body), shape(sent_method, ME + sent_query, raw))
    assert (hit is not None) == (found == ())
    if hit is None:
        miss = index.explain_miss(sent_method, ME + sent_query, raw)
        assert miss.differences == found and found


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


@pytest.mark.parametrize(
    ("recorded", "sent", "difference"),
    [
        ('{"a": 1}', None, "body (recorded one, none sent)"),
        (None, b'{"a": 1}', "body (none recorded, one sent)"),
        ('{"a": 1}', b'{"a": 2}', "body at $.a"),
    ],
)
def test_a_miss_says_which_side_has_no_body_instead_of_a_path_into_it(recorded, sent, difference):
    index = CassetteIndex([interaction("PUT", ME, recorded)])
    assert index.explain_miss("PUT", ME, sent).differences == (difference,)


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


def compressed_put(body: dict[str, Any], coding: str = "gzip") -> Interaction:
    """A create as vcrpy stores it from Kiota's compression handler: the bytes as sent."""
    sent = content_encoding.encode(json.dumps(body).encode(), (coding,))
    headers = {"Content-Type": "application/json", "Content-Encoding": coding}
    item = interaction("PUT", ME)
    return Interaction(Request("PUT", ME, sent, headers), item.response, Path("k.yaml"), 0)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_a_compressed_recorded_body_matches_the_same_json_sent_plain(coding):
    index = CassetteIndex([compressed_put({"externalAppointmentId": "a", "n": 1}, coding)])
    assert index.lookup("PUT", ME, b'{"n": 1,  "externalAppointmentId": "a"}') is not None


def test_a_compressed_recorded_body_is_indexed_by_its_content_placeholders_and_bytes_alike():
    redacted = CassetteIndex([compressed_put({"emailAddress": "<redacted:emailAddress:1>"})])
    assert redacted.lookup("PUT", ME, b'{"emailAddress": "g@contoso.com"}') is not None
    plain = json.dumps({"externalAppointmentId": "a"}).encode()
    index = CassetteIndex([compressed_put({"externalAppointmentId": "a"})])
    assert index.play(index.shape("PUT", ME, plain), plain) is not None  # the verbatim path
    wire = content_encoding.encode(plain, ("gzip",))  # bytes that are no request's content
    assert index.play(index.shape("PUT", ME, b'{"externalAppointmentId": "b"}'), wire) is None


def test_a_miss_against_a_compressed_recording_names_the_json_path():
    index = CassetteIndex([compressed_put({"externalAppointmentId": "a"})])
    miss = index.explain_miss("PUT", ME, b'{"externalAppointmentId": "b"}')
    assert miss.differences == ("body at $.externalAppointmentId",)


def test_a_recorded_body_that_says_gzip_but_is_plain_json_matches_as_json():
    plain = Request("PUT", ME, b'{"n": 1}', {"Content-Encoding": "gzip"})
    index = CassetteIndex([Interaction(plain, interaction("PUT", ME).response, Path("a"), 0)])
    assert index.lookup("PUT", ME, b'{ "n": 1 }') is not None


def test_a_recorded_reply_drops_a_content_encoding_its_body_does_not_carry():
    item = interaction("GET", ME)
    item.response["headers"] = {"Content-Encoding": ["gzip"], "ETag": ['W/"1"']}
    assert cassette.recorded_reply(item).headers == (("ETag", 'W/"1"'),)
    item.response["body"]["string"] = gzip.compress(b'{"n": 0}')
    assert cassette.recorded_reply(item).headers == (
        ("Content-Encoding", "gzip"),
        ("ETag", 'W/"1"'),
    )


def test_a_compressed_reply_goes_out_byte_for_byte_with_its_true_length():
    wire = gzip.compress(b'{"n": 0}')
    response = to_response(Reply(200, (("Content-Encoding", "gzip"),), wire))
    assert response.raw_content == wire
    assert response.headers["content-length"] == str(len(wire))
    assert response.content == b'{"n": 0}'  # decoded once, not twice


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


_BLANKS_AND_BREAKS = st.text(alphabet=list(" \t\n\r\x0b\x0cab:#-'\"\u00e9\u2028\x85"), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    _BLANKS_AND_BREAKS, _BLANKS_AND_BREAKS, st.one_of(_BLANKS_AND_BREAKS, st.binary(max_size=50))
)
def test_no_interaction_we_write_has_a_line_ending_in_whitespace(header, sent, answer):
    """Values full of blanks and line breaks still give lines that pre-commit's
    ``trailing-whitespace`` and ``end-of-file-fixer`` hooks leave as they are."""
    request = Request("PUT", "https://graph.microsoft.com/beta/x", sent or None, {"X": "a"})
    response = {
        "status": {"code": 200, "message": "OK"},
        "headers": {"X": [header]},
        "body": {"string": answer},
    }
    text = cassette.HEADER + cassette.interaction_yaml(request, response)
    assert pre_commit_whitespace_problems(text.encode()) == []


# --- holding a loaded cassette small --------------------------------------------------------


def _as_loaded(load: Any, path: Path) -> Any:
    """Everything a reader of the interactions can see, or the one line that refused them."""
    try:
        return [
            (
                i.request._to_dict(),
                type(i.request.body).__name__,
                dict(i.request.headers),
                i.response,
                i.position,
                i.label,
            )
            for i in load(path)
        ]
    except CassetteError as exc:
        return str(exc)


def _read_whole(path: Path) -> list[Interaction]:
    """The reader that parses the whole document at once (what every file went through)."""
    with mock.patch.object(cassette, "_load_blocks", side_effect=cassette._NotBlocks):
        return cassette.load_file(path)


INTERACTIONS = st.lists(
    st.tuples(
        st.sampled_from(["GET", "PUT"]),
        st.none() | TEXT | st.binary(max_size=30),
        st.dictionaries(st.sampled_from(["Accept", "ETag", "X-A"]), TEXT, max_size=2),
        st.integers(100, 599),
        HEADERS,
        TEXT | st.binary(max_size=30),
    ),
    min_size=1,
    max_size=3,
)
DAMAGE = (
    YAML_SCRAPS
    | YAML_PIECES
    | st.sampled_from(
        ["- request:\n", "---\n", "...\n", "--- |\n", "-", "version: 2\n", "\t", "\r"]
    )
)


def _cassette_of(interactions: list[tuple[Any, ...]], vcrpy_layout: bool) -> str:
    pairs = [
        (
            Request(method, ME, body, headers),
            {
                "status": {"code": code, "message": "M"},
                "headers": answer_headers,
                "body": {"string": answer},
            },
        )
        for method, body, headers, code, answer_headers, answer in interactions
    ]
    if vcrpy_layout:  # what vcrpy itself writes: interactions first, version last
        requests, responses = zip(*pairs, strict=True)
        return vcr_serialize({"requests": requests, "responses": responses}, yamlserializer)
    return cassette.cassette_text(pairs)


@pytest.fixture(scope="module")
def block_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("blocks") / "blocks.yaml"


@settings(max_examples=400, deadline=None)
@given(
    interactions=INTERACTIONS,
    vcrpy_layout=st.booleans(),
    damage=st.none() | st.tuples(st.floats(0, 1), st.booleans(), DAMAGE),
)
def test_reading_block_by_block_gives_exactly_what_reading_the_whole_document_gives(
    block_file, interactions, vcrpy_layout, damage
):
    """In either layout, whole or damaged anywhere: the same interactions, field for field,
    or the same one-line refusal."""
    text = _cassette_of(interactions, vcrpy_layout)
    if damage is not None:  # anywhere, or where a line starts (where blocks meet)
        where, at_a_line, scrap = damage
        at = int(where * len(text))
        if at_a_line:
            at = text.rfind("\n", 0, at) + 1
        text = text[:at] + scrap + text[at:]
    block_file.write_text(text, encoding="utf-8")
    assert _as_loaded(cassette.load_file, block_file) == _as_loaded(_read_whole, block_file)


@pytest.mark.parametrize(
    "between", ["...\n", "---\n", "--- |\n", "%YAML 1.1\n", "# a comment\n", "\n", "-\n", "? x\n"]
)
@pytest.mark.parametrize("vcrpy_layout", [False, True])
def test_what_lies_between_two_blocks_is_read_as_the_whole_document_reads_it(
    tmp_path, between, vcrpy_layout
):
    """A document marker there ends the document: vcrpy refuses the file, and so do we."""
    text = _cassette_of(
        [("GET", None, {}, 200, {}, "a"), ("PUT", "b", {}, 201, {}, "c")], vcrpy_layout
    )
    second = text.rindex("- request:")
    path = write(tmp_path, text[:second] + between + text[second:])
    assert _as_loaded(cassette.load_file, path) == _as_loaded(_read_whole, path)


def test_a_cassette_in_our_layout_or_vcrpys_is_held_as_compressed_blocks(tmp_path):
    pair = examples.documented_interaction(ME)
    ours = write(tmp_path, cassette.cassette_text([pair]), "ours.yaml")
    theirs = write(
        tmp_path, vcr_serialize({"requests": [pair[0]], "responses": [pair[1]]}, yamlserializer)
    )
    for path in (ours, theirs):
        (loaded,) = cassette.load(path)
        assert loaded._response is None and loaded._request is None  # parsed again when asked


def _generated(tmp_path: Path, n: int) -> Path:
    pairs = [
        examples.documented_interaction(ME.replace(examples.MEETING_ID, f"m-{i:06d}"))
        for i in range(n)
    ]
    return write(tmp_path, cassette.cassette_text(pairs))


def test_a_loaded_cassette_holds_less_memory_than_its_file_and_peaks_under_twice_it(tmp_path):
    """Parsed whole, 1,000 interactions held 2.2 times their file and peaked at 9 times it
    (the document's YAML nodes); a proxy holds its cassettes for as long as it runs."""
    path = _generated(tmp_path, 1000)
    tracemalloc.start()
    try:
        loaded = cassette.load(path)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert len(loaded) == 1000
    assert (held < size, peak < 2 * size) == (True, True), (held / size, peak / size)


def test_a_stored_interaction_replays_its_response_parsed_once_and_kept(tmp_path):
    loaded = cassette.load(_generated(tmp_path, 100))
    index = CassetteIndex(loaded)
    hit = index.lookup("PUT", loaded[57].request.uri, examples.REQUEST_BODY.encode())
    assert hit is loaded[57]
    assert replayed_reply(hit, {}).json() == json.loads(examples.RESPONSE_BODY)
    assert hit.reply is hit.reply  # made once: a replay doesn't parse it again


def test_a_torn_last_block_is_left_out_naming_its_line_when_read_block_by_block(tmp_path, caplog):
    pair = examples.documented_interaction(ME)
    whole = cassette.cassette_text([pair, pair]).encode()
    end = (len(whole) // cassette.PAGE + 1) * cassette.PAGE  # a kill cuts at a page boundary
    data = whole + cassette.interaction_yaml(*pair).replace("PUT", "P" * end).encode()
    path = tmp_path / "c.yaml"
    path.write_bytes(data[:end])
    with caplog.at_level(logging.WARNING):
        loaded = cassette.load(path)
    assert [i.position for i in loaded] == [0, 1]
    assert loaded[0]._response is None  # read block by block, not whole
    message = cassette.torn_message(data[:end], end - len(whole))
    assert caplog.messages == [f"{path}: {message}"]


def test_the_keys_a_response_has_beyond_vcrpys_are_read_without_parsing_it(tmp_path):
    """Echo reads every interaction's own settings when a cassette loads: parsing 10,000
    responses again for them took 0.7 s."""
    request, response = examples.documented_interaction(ME)
    settings = {"echo": ["externalAppointmentId"]}
    pairs = [(request, response), (request, {**response, "graph_vcr_proxy": settings})]
    loaded = cassette.load(write(tmp_path, cassette.cassette_text(pairs)))
    with mock.patch.object(cassette, "_block_item", side_effect=AssertionError("parsed")):
        values = [i.response_value("graph_vcr_proxy") for i in loaded]
    assert values == [None, settings]
    assert loaded[1].response["graph_vcr_proxy"] == settings  # the response itself holds it


def test_an_interaction_copies_and_pickles_to_one_that_plays_the_same():
    import pickle

    [stored] = cassette.load(ROOT / "cassettes" / "create-virtualappointment-me.yaml")
    for clone in (copy.copy(stored), copy.deepcopy(stored), pickle.loads(pickle.dumps(stored))):
        assert clone is not stored
        assert (clone.uri, clone.request.body, clone.reply) == (
            stored.uri,
            stored.request.body,
            stored.reply,
        )
