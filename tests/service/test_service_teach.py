"""Teaching over HTTP (issue 17): `POST /api/concepts`, `GET /api/concepts/{name}/proposals` and `GET /api/judgments`
through the real app, on a real index (the sample photos and the six shots of bikes.mp4, scored by the default
backbone). Each test teaches on its own copy of the index."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from mmindex.config import ServiceConfig
from mmindex.engine import Engine
from mmindex.index.store import Store
from mmindex.service import create_app
from tests.service.conftest import segments_by_kind

TOKEN = "teach-token-value-5678"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture()
def client(service_copy) -> TestClient:
    return TestClient(create_app(service_copy, ServiceConfig(token=TOKEN)), raise_server_exceptions=False)


def teach(client: TestClient, name: str, positive=(), negative=(), headers=AUTH):
    return client.post("/api/concepts", json={"name": name, "positive": list(positive), "negative": list(negative)},
                       headers=headers)


def ranked(client: TestClient, concept: str, k: int = 13) -> list[int]:
    r = client.get("/api/search", params={"concept": concept, "k": k})
    assert r.status_code == 200, r.text
    return [h["segment_id"] for h in r.json()["hits"]]


def test_teach_a_concept_then_search_and_complete_it_by_name(client, service_copy):
    shots, photos = segments_by_kind(client)
    assert len(shots) == 6 and len(photos) == 7
    r = teach(client, "my bikes", shots[0::2], photos[1::2])
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["version"], body["query"], body["shadows"], body["replaced"]) == \
        ("my bikes", 1, "my bikes", None, False)
    assert body["judgments"] == {"added": 6, "changed": 0, "unchanged": 0} and body["segments"] == 13
    assert (body["training"]["judged_positive"], body["training"]["judged_negative"]) == (3, 3)
    # every shot of the clip ranks above every photo: the three judged and the three it was never shown
    assert set(ranked(client, "my bikes")[:6]) == set(shots)
    # recorded in the index as the web UI's judgments
    judged = {(j["segment_id"], j["label"], j["origin"]) for j in Engine(service_copy).judgments("my bikes")}
    assert judged == {(i, 1, "ui") for i in shots[0::2]} | {(i, 0, "ui") for i in photos[1::2]}
    # the autocomplete lists the taught concept, first
    (first, *_) = client.get("/api/concepts", params={"q": "my bi"}).json()["concepts"]
    assert (first["name"], first["source"]) == ("my bikes", "trained")
    # teaching the name again (as concept names compare: case and "_" aside) with more judgments: version 2
    again = teach(client, "My_Bikes", [shots[1]], [photos[0]])
    assert again.status_code == 200, again.text
    body = again.json()
    assert (body["name"], body["version"], body["replaced"]) == ("my bikes", 2, True)
    assert (body["training"]["judged_positive"], body["training"]["judged_negative"]) == (4, 4)
    assert set(ranked(client, "my bikes")[:6]) == set(shots)


def test_a_taught_name_shadows_the_built_in_concept(client, sample_photos):
    _, photos = segments_by_kind(client)
    coffee = ranked(client, "espresso", 1)[0]
    r = teach(client, "espresso", [coffee], [p for p in photos if p != coffee][:2])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["shadows"] == {"id": "n07920052", "query": "wordnet:espresso"}
    assert body["messages"] == ["'espresso' now means your detector; the built-in concept is wordnet:espresso "
                                "(n07920052)"]
    sources = [c["source"] for c in client.get("/api/concepts", params={"q": "espresso"}).json()["concepts"]]
    assert sources[:2] == ["trained", "imagenet"]
    assert ranked(client, "espresso", 1) == ranked(client, "wordnet:espresso", 1) == [coffee]


def test_proposals_to_judge_then_a_second_round(client):
    shots, photos = segments_by_kind(client)
    assert teach(client, "my bikes", shots[0::2], photos[1::2]).status_code == 200
    judged = set(shots[0::2]) | set(photos[1::2])
    url = "/api/concepts/my bikes/proposals"
    probable = client.get(url, params={"n": 3, "strategy": "probable"}).json()
    assert (probable["strategy"], probable["detector"], probable["message"]) == ("probable", "my bikes:my bikes", None)
    assert probable["judged"] == {"positive": 3, "negative": 3}
    # the highest scores of the unjudged segments: the three shots it was not shown
    assert {s["segment_id"] for s in probable["segments"]} == set(shots[1::2])
    scores = [s["score"] for s in probable["segments"]]
    assert scores == sorted(scores, reverse=True)
    uncertain = client.get(url, params={"n": 20}).json()  # default strategy: uncertain
    assert uncertain["strategy"] == "uncertain" and len(uncertain["segments"]) == 13 - 6
    assert not judged & {s["segment_id"] for s in uncertain["segments"]}
    distances = [abs(s["score"] - 0.5) for s in uncertain["segments"]]
    assert distances == sorted(distances)
    shot = next(s for s in uncertain["segments"] if s["kind"] == "video")
    assert shot["media_url"] == f"/api/media/{shot['segment_id']}#t={shot['start']:.3f},{shot['end']:.3f}"
    thumb = client.get(shot["thumbnail_url"])
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    # judge what was proposed, teach again: every segment is judged now, nothing is left to propose
    rest = [s["segment_id"] for s in uncertain["segments"]]
    again = teach(client, "my bikes", [i for i in rest if i in shots], [i for i in rest if i not in shots])
    assert again.json()["version"] == 2 and client.get(url).json()["segments"] == []


def test_proposals_without_a_detector_are_a_random_draw(client):
    r = client.get("/api/concepts/indoor%2Foutdoor/proposals", params={"n": 4, "seed": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["name"], body["strategy"], body["requested"], body["detector"]) == \
        ("indoor/outdoor", "random", "uncertain", None)
    assert "no detector for 'indoor/outdoor' yet" in body["message"]
    assert len(body["segments"]) == 4 and all(s["score"] is None for s in body["segments"])
    assert client.get("/api/concepts/indoor%2Foutdoor/proposals", params={"n": 4, "seed": 3}).json() == body
    assert client.get("/api/concepts/x/proposals", params={"strategy": "best"}).status_code == 422
    bad = client.get("/api/concepts/%21%21/proposals")
    assert bad.status_code == 400 and bad.json()["error"] == "concept name '!!' has no letter or digit"


def test_judgments_export_as_csv_and_qrels(client, service_copy):
    shots, photos = segments_by_kind(client)
    assert client.get("/api/judgments").text == "segment_path,start,end,concept,label\n"  # none yet
    teach(client, "my bikes", shots[:2], photos[:1])
    teach(client, "espresso", [ranked(client, "espresso", 1)[0]], photos[1:2])
    csv = client.get("/api/judgments", params={"concept": "my bikes"})
    assert csv.status_code == 200 and csv.headers["content-type"] == "text/csv; charset=utf-8"
    assert csv.headers["content-disposition"] == 'attachment; filename="judgments.csv"'
    lines = csv.text.splitlines()
    assert lines[0] == "segment_path,start,end,concept,label" and len(lines) == 4
    assert sorted(line.rsplit(",", 2)[1:] for line in lines[1:]) == [["my bikes", "0"], ["my bikes", "1"],
                                                                      ["my bikes", "1"]]
    qrels = client.get("/api/judgments", params={"format": "qrels"})
    assert qrels.headers["content-type"] == "text/plain; charset=utf-8"
    assert sorted(line.split()[0] for line in qrels.text.splitlines()) == ["espresso"] * 2 + ["my_bikes"] * 3
    assert "bikes.mp4#t=" in qrels.text  # a shot is named by its time span
    assert client.get("/api/judgments", params={"format": "trec"}).status_code == 422


@pytest.mark.parametrize(("body", "status", "error"), [
    ({"name": ""}, 422, "invalid parameters: name: String should have at least 1 character"),
    ({"name": "x" * 65}, 422, "invalid parameters: name: String should have at most 64 characters"),
    ({"name": "!?!"}, 400, "concept name '!?!' has no letter or digit"),
    ({"name": "cat AND dog"}, 400, "concept name 'cat AND dog' may not contain the operators AND, OR, NOT"),
    ({"name": "mug", "positive": [10**6]}, 404, "no segment with id 1000000 in the index"),
    ({"name": "mug", "positive": [], "negative": [1]}, 400, "no positive example of 'mug'"),
    ({"name": "mug", "positive": [1], "negative": [1]}, 400, "segments judged both positive and negative: 1"),
    ({"name": "mug", "positive": [-1]}, 422, "invalid parameters: positive.0: Input should be greater than or equal"),
    ({"positive": [1]}, 422, "invalid parameters: name: Field required"),
])
def test_bad_input_is_a_clear_4xx_and_records_nothing(client, body, status, error):
    r = client.post("/api/concepts", json=body, headers=AUTH)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"].startswith(error)
    assert client.get("/api/judgments").text.count("\n") == 1  # the CSV header alone
    assert all(c["source"] != "trained" for c in client.get("/api/concepts", params={"limit": 5}).json()["concepts"])


def test_teaching_needs_the_token(client, service_copy):
    body = {"name": "mug", "positive": [1]}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = client.post("/api/concepts", json=body, headers=headers)
        assert r.status_code == 401 and r.json()["error"] == "missing or wrong token"
    open_server = TestClient(create_app(service_copy), raise_server_exceptions=False)
    r = open_server.post("/api/concepts", json=body, headers=AUTH)
    assert r.status_code == 403 and r.json()["error"].startswith("writing is disabled")
    assert client.get("/api/judgments").text.count("\n") == 1


def test_a_locked_index_is_a_409_then_teaching_works(client, service_copy):
    shots, photos = segments_by_kind(client)
    with Store.open(service_copy, write=True):  # another writer (`mmindex add`, a second teach) holds the index
        r = teach(client, "my bikes", shots[:2], photos[:2])
        assert r.status_code == 409 and "locked" in r.json()["error"]
    assert client.get("/api/judgments").text.count("\n") == 1
    assert teach(client, "my bikes", shots[:2], photos[:2]).json()["version"] == 1
