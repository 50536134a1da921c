"""One request model: `mmindex search`'s options and `GET /api/search`'s parameters are both made from
`SearchRequest` (mmindex/search/requests.py), so that they are the same set; `fusion` reaches HTTP as a result."""

from __future__ import annotations

import dataclasses

import click
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.testclient import TestClient

from mmindex.search.fusion import METHODS, NORMALISERS
from mmindex.search.requests import SearchRequest
from mmindex.service import create_app
from tests.service.conftest import make_store, write_jpeg

# what is not a request field: how the CLI opens the index and prints (and its other spellings of `then` steps),
# and HTTP paging
CLI_ONLY = {"index", "text_encoder", "vector_index", "as_json", "fmt", "run_name", "topic", "then_text", "then_like"}
HTTP_ONLY = {"offset"}
QUERY = {"concept": ["tabby", "espresso", "daisy"], "k": 12}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("requests")
    files = [write_jpeg(tmp / "media" / f"{i}.jpg", (i * 20, 90, 200 - i * 10)) for i in range(12)]
    return create_app(make_store(tmp / "index", files, seed=3))


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app, raise_server_exceptions=False)


def cli_params() -> dict[str, click.Parameter]:
    from mmindex.cli import main

    return {p.name: p for p in main.commands["search"].params}


def http_params(app) -> dict[str, dict]:
    return {p["name"]: p for p in app.openapi()["paths"]["/api/search"]["get"]["parameters"]}


def test_cli_options_and_http_parameters_are_the_request_fields(app):
    fields = set(SearchRequest.names())
    assert {"concept", "like", "text", "k", "normalise", "fusion", "explain"} <= fields
    assert set(cli_params()) - CLI_ONLY == fields
    assert set(http_params(app)) - HTTP_ONLY == fields


@pytest.mark.parametrize(("name", "registry"), [("fusion", METHODS), ("normalise", NORMALISERS)])
def test_the_choices_are_the_registered_names_on_both_sides(app, name, registry):
    option, param = cli_params()[name], http_params(app)[name]["schema"]
    assert list(option.type.choices) == list(registry) == param["enum"]
    assert option.default == param["default"] == getattr(SearchRequest(), name)


def test_a_new_field_is_a_new_option_and_a_new_parameter():
    from mmindex.cli.options import request_options
    from mmindex.service.params import request_dependency

    @dataclasses.dataclass(frozen=True)
    class Extended(SearchRequest):
        depth: int = dataclasses.field(default=5, metadata={"help": "How deep.", "min": 1, "max": 9})

    command = request_options(Extended)(click.Command("x", callback=lambda **kw: kw))
    assert {p.name for p in command.params} == set(SearchRequest.names()) | {"depth"}
    assert command.main(["--depth", "7", "-c", "cat"], standalone_mode=False)["depth"] == 7

    api = FastAPI()
    query = Depends(request_dependency(Extended, Query))

    @api.get("/x")
    def x(request: Extended = query) -> dict:
        return {"depth": request.depth, "concept": list(request.concept)}

    client = TestClient(api)
    assert client.get("/x", params={"depth": 7, "concept": "cat"}).json() == {"depth": 7, "concept": ["cat"]}
    assert client.get("/x", params={"depth": 10}).status_code == 422
    assert "depth" in {p["name"] for p in api.openapi()["paths"]["/x"]["get"]["parameters"]}


def ranking(client, **params) -> list[int]:
    r = client.get("/api/search", params={**QUERY, **params})
    assert r.status_code == 200, r.text
    return [h["segment_id"] for h in r.json()["hits"]]


def test_fusion_reaches_http(app, client):
    combsum, rrf = ranking(client, fusion="combsum"), ranking(client, fusion="rrf")
    assert ranking(client) == combsum  # the default, as on the command line
    assert sorted(combsum) == sorted(rrf) and combsum != rrf
    engine = app.state.service.engine  # the facade gives the same orderings
    for method, got in (("combsum", combsum), ("rrf", rrf)):
        expected = engine.search(QUERY["concept"], k=12, fusion_method=method, remember=False)
        assert got == [h.segment_id for h in expected]


@pytest.mark.parametrize("method", list(METHODS))
def test_every_registered_fusion_method_is_accepted(client, method):
    assert len(ranking(client, fusion=method)) == 12


def test_an_unknown_fusion_is_a_json_422(client):
    r = client.get("/api/search", params={**QUERY, "fusion": "bogus"})
    assert r.status_code == 422 and r.headers["content-type"] == "application/json"
    assert "fusion" in r.json()["error"] and "Traceback" not in r.text
    upload = client.post("/api/search", files={"image": ("a.jpg", b"not read", "image/jpeg")},
                         data={"concept": "cat", "fusion": "bogus"})
    assert upload.status_code == 422 and "fusion" in upload.json()["error"]


def test_a_method_not_allowed_names_the_routes_methods(client):
    r = client.put("/api/media")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE, POST"
    assert client.post("/api/health").headers["allow"] == "GET"
