"""A JSON batch read as Graph reads it (``batch.py``): Graph's refusals, the order requests
are answered in, the answer's shape; and the parser never raises on any JSON."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy_addons.graph import batch
from proxy_addons.graph.batch import Answer, Batch, Refusal

OURS = "/me/onlineMeetings/m/virtualAppointment"
JSON_HEADERS = {"Content-Type": "application/json"}


def entry(rid: str, method: str = "GET", url: str = OURS, **more: object) -> dict[str, object]:
    return {"id": rid, "method": method, "url": url, **more}


def parsed(*entries: object) -> Batch:
    found = batch.parse({"requests": list(entries)})
    assert isinstance(found, Batch), found
    return found


def refused(document: object) -> Refusal:
    found = batch.parse(document)
    assert isinstance(found, Refusal), found
    return found


def test_more_than_twenty_requests_is_graphs_400():
    refusal = refused({"requests": [entry(str(i)) for i in range(21)]})
    assert (refusal.status, refusal.code) == (400, "BadRequest")
    assert "at most 20" in refusal.message


def test_twenty_requests_are_a_batch():
    assert len(parsed(*(entry(str(i)) for i in range(20))).items) == 20


def test_ids_differing_only_in_case_are_duplicates_graphs_400():
    refusal = refused({"requests": [entry("Create"), entry("cREATE")]})
    assert refusal.status == 400 and "has to be unique in a batch" in refusal.message


def test_a_body_without_content_type_is_graphs_400():
    refusal = refused({"requests": [entry("1", "PUT", body={"x": 1})]})
    assert refusal.status == 400 and "Content-Type" in refusal.message


@pytest.mark.parametrize(
    ("depends", "said"),
    [(["nope"], "'nope', which is not in the batch"), (["2"], "cycle")],
    ids=["unknown-id", "cycle"],
)
def test_depends_on_an_unknown_id_or_a_cycle_is_graphs_400(depends, said):
    refusal = refused({"requests": [entry("1", dependsOn=depends), entry("2", dependsOn=["1"])]})
    assert refusal.status == 400 and said in refusal.message


@pytest.mark.parametrize("url", ["/$batch", "%24BATCH", "https://graph.microsoft.com/beta/$batch"])
def test_a_batch_inside_a_batch_is_refused_whole(url):
    refusal = refused({"requests": [entry("1"), entry("2", "POST", url=url)]})
    assert refusal.status == 400 and "cannot hold another batch" in refusal.message


def test_a_request_depending_on_itself_is_a_cycle():
    assert "cycle" in refused({"requests": [entry("1", dependsOn=["1"])]}).message


def test_msgraph_cores_depends_on_key_is_read_as_graphs():
    items = parsed(entry("a"), entry("b", depends_on=["A"])).items
    assert items[1].depends_on == ("A",)


def test_requests_are_run_as_listed_each_after_what_it_depends_on():
    order = batch.run_order(
        parsed(entry("1", dependsOn=["3"]), entry("2"), entry("3"), entry("4", dependsOn=["1"]))
    )
    assert [i.id for i in order] == ["2", "3", "1", "4"]


def test_a_json_body_is_sent_as_json_and_a_text_body_as_its_base64_bytes():
    png = b"\x89PNG\r\n"
    items = parsed(
        entry("1", "PUT", body={"a": [1]}, headers=JSON_HEADERS),
        entry("2", "PUT", body=base64.b64encode(png).decode(), headers={"Content-Type": "x/y"}),
    ).items
    assert (json.loads(items[0].body or b""), items[1].body) == ({"a": [1]}, png)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("me/x?$select=a", "/beta/me/x?$select=a"),
        ("/me/x", "/beta/me/x"),
        ("https://graph.microsoft.com/v1.0/me/x", "/v1.0/me/x"),
    ],
)
def test_a_url_is_relative_to_the_batchs_version_with_or_without_its_slash(url, expected):
    assert parsed(entry("1", url=url)).items[0].path_and_query("beta") == expected


def test_answers_are_json_when_json_base64_when_not_and_framing_headers_dropped():
    body = batch.responses_body(
        [
            Answer(
                "1",
                201,
                (("Content-Type", "application/json"), ("Content-Length", "7")),
                b'{"a":1}',
            ),
            Answer("2", 200, (("Content-Type", "text/plain"),), b"hi"),
            Answer("3", 204),
        ]
    )
    responses = json.loads(body)["responses"]
    assert responses[0] == {
        "id": "1",
        "status": 201,
        "headers": {"Content-Type": "application/json"},
        "body": {"a": 1},
    }
    assert responses[1]["body"] == base64.b64encode(b"hi").decode()
    assert "body" not in responses[2]


def test_an_upstream_batch_without_the_requests_answered_here_keeps_only_unmet_edges():
    items = parsed(entry("1"), entry("2", dependsOn=["1"]), entry("3", dependsOn=["2"]))
    sent = json.loads(batch.upstream_body(items, ["2", "3"], answered=["1"]))["requests"]
    assert [(r["id"], r.get("dependsOn")) for r in sent] == [("2", None), ("3", ["2"])]


def test_the_answers_of_an_upstream_batch_are_read_by_id_whatever_their_case():
    found = batch.answers_in({"responses": [{"id": "Ab", "status": 204}, {"id": 5}, 7]})
    assert list(found) == ["ab"] and found["ab"].status == 204


def test_an_edge_between_ours_and_another_is_named():
    items = parsed(entry("1", url="/me"), entry("2", dependsOn=["1"]))
    dependant, dependency = batch.crossing_edge(items, {"2"}) or (None, None)
    assert (dependant and dependant.id, dependency and dependency.id) == ("2", "1")
    refusal = batch.edge_refusal(dependant, dependency)  # type: ignore[arg-type]
    assert refusal.status == 501 and "request id '2'" in refusal.message


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
ENTRY_KEYS = st.sampled_from(["id", "method", "url", "headers", "body", "dependsOn", "depends_on"])
ENTRIES = st.dictionaries(ENTRY_KEYS, JSON | st.lists(st.text(max_size=3), max_size=3))


@given(document=JSON | st.fixed_dictionaries({"requests": st.lists(ENTRIES | JSON, max_size=25)}))
def test_the_batch_parser_never_raises_on_any_json(document):
    found = batch.parse(document)
    assert isinstance(found, Batch | Refusal)
    if isinstance(found, Batch):
        assert len(batch.run_order(found)) == len(found.items)
        batch.upstream_body(found, [i.key for i in found.items], [])


@given(document=JSON)
def test_reading_an_upstream_batch_answer_never_raises(document):
    assert isinstance(batch.answers_in(document), dict)
