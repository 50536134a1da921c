"""Temporal queries and video-level results over HTTP: the same hits as the CLI, the bad input refused with 4xx."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mmindex.service import create_app
from tests.conftest import search_json


@pytest.fixture(scope="module")
def client(temporal_index):
    return TestClient(create_app(temporal_index), raise_server_exceptions=False)


def test_then_within_and_group_as_the_cli_answers(client, temporal_index):
    for args, params in (
        (("-c", "espresso", "--then", "cat", "-k", "5"), {"concept": "espresso", "then": "cat", "k": 5}),
        (("-c", "espresso", "--then", "cat", "--within", "20", "--then-text", "a daisy"),
         {"concept": "espresso", "then": ["cat", "text:a daisy"], "within": 20, "k": 10}),
        (("-c", "espresso", "--then", "cat", "--group", "video"),
         {"concept": "espresso", "then": "cat", "group": "video", "k": 10}),
    ):
        http = client.get("/api/search", params=params)
        assert http.status_code == 200, http.text
        assert http.json()["hits"] == search_json(temporal_index, *args)["hits"], args
        assert http.json()["hits"][0]["then"] and http.json()["hits"][0]["path"].endswith("forward.mp4")
    grouped = client.get("/api/search", params={"concept": "espresso", "group": "video"}).json()["hits"]
    assert len(grouped) == 4 and all(h["matches"] >= 1 and "then" not in h for h in grouped)


def test_feedback_refines_a_temporal_query(client):
    first = client.get("/api/search", params={"concept": "espresso", "then": "cat", "within": 20}).json()["hits"]
    body = {"concept": ["espresso"], "then": ["cat"], "within": 20, "negative": [first[0]["segment_id"]]}
    refined = client.post("/api/feedback", json=body)
    assert refined.status_code == 200, refined.text
    hits = refined.json()["hits"]
    assert first[0]["segment_id"] not in [h["segment_id"] for h in hits] and all(h["then"] for h in hits)


@pytest.mark.parametrize(("params", "status", "message"), [
    ({"then": "cat"}, 400, "then needs a first criterion"),
    ({"concept": "espresso", "then": "cat", "within": 0}, 422, "within: Input should be greater than 0"),
    ({"concept": "espresso", "then": "cat", "within": -2}, 422, "within: Input should be greater than 0"),
    ({"concept": "espresso", "then": "cat", "within": "soon"}, 422, "within: Input should be a valid number"),
    ({"concept": "espresso", "then": "cat", "within": "nan"}, 422, "within"),
    ({"concept": "espresso", "group": "scene"}, 422, "group: Input should be 'segment' or 'video'"),
    ({"concept": "espresso", "then": "like:/etc/passwd"}, 400, "over HTTP an example is a segment id"),
    ({"concept": "espresso", "then": "like:987654"}, 404, "no segment with id 987654"),
    ({"concept": "espresso", "then": "text:"}, 400, "empty then step"),
])
def test_bad_temporal_queries_are_4xx_with_a_message(client, params, status, message):
    r = client.get("/api/search", params=params)
    assert r.status_code == status and message in r.json()["error"], r.text
