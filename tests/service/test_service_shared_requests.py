"""The requests the CLI and the HTTP API share (mmindex/search/requests.py): every field of each is an option or
argument of its command (read from click's command objects) and a parameter or body field of its endpoint (read
from the app's /openapi.json), of the same kind, default and lower limit; whatever else either side takes is
named here as its own, so that an option or a parameter added to one side only fails. Then each request goes
through the real CLI and the real app, which must answer alike."""

from __future__ import annotations

import dataclasses
import json
import typing

import click
import pytest
from fastapi.testclient import TestClient

from mmindex.config import ServiceConfig
from mmindex.search import requests
from mmindex.search.requests import (
    AddRequest,
    ApplyRequest,
    ConceptsRequest,
    FeedbackRequest,
    JudgmentsRequest,
    LabelRequest,
    RemoveRequest,
    SearchRequest,
    TeachRequest,
)
from mmindex.service import create_app
from mmindex.service.params import http_name
from tests.conftest import run_cli
from tests.service.conftest import make_store, segments_by_kind, write_jpeg

TOKEN = "shared-requests-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
_ADD_CONFIG = {"model", "batch_size", "workers", "backend", "device", "precision", "pool", "frame_step", "shots",
               "shots_dir",
               "executor", "ray_address", "ray_workers", "vector_index", "auto_compact", "keyframe_embeddings",
               "keyframe_rate", "quiet"}
# request: its command, its endpoint, what only the CLI takes (where the index is, how to print; `add`'s
# IngestConfig; feedback's saved queries) and what only the HTTP API takes (paging; the query feedback refines)
REQUESTS = {
    # --then-text WORDS and --then-like ID are the CLI's spellings of `then` steps "text:WORDS" and "like:ID"
    SearchRequest: ("search", ("get", "/api/search"), {"index", "text_encoder", "vector_index", "as_json",
                                                       "fmt", "run_name", "topic", "then_text", "then_like"},
                    {"offset"}),
    FeedbackRequest: ("feedback", ("post", "/api/feedback"), {"index", "name", "save_as", "as_json"},
                      {"concept", "like", "text", "then", "within", "group"}),
    ConceptsRequest: ("concepts", ("get", "/api/concepts"), {"index", "as_json"}, set()),
    AddRequest: ("add", ("post", "/api/media"), {"index"} | _ADD_CONFIG, set()),
    RemoveRequest: ("remove", ("delete", "/api/media"), {"index"}, set()),
    # over HTTP the judgments' origin is the web UI's, and there is no last query to take them from
    TeachRequest: ("teach", ("post", "/api/concepts"), {"index", "from_feedback", "as_json"}, set()),
    LabelRequest: ("label", ("get", "/api/concepts/{name}/proposals"), {"index", "as_json"}, set()),
    ApplyRequest: ("apply", ("post", "/api/detectors"), {"index", "device", "quiet", "as_json"}, set()),
    JudgmentsRequest: ("judgments export", ("get", "/api/judgments"), {"index", "out"}, set()),
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """An index of 12 tiny JPEGs with random scores (no model): the CLI and the app read the same folder."""
    tmp = tmp_path_factory.mktemp("shared")
    files = [write_jpeg(tmp / "media" / f"{i}.jpg", (i * 20, 90, 200 - i * 10)) for i in range(12)]
    return make_store(tmp / "index", files, seed=5)


@pytest.fixture(scope="module")
def spec(small) -> dict:
    return create_app(small, ServiceConfig(token=TOKEN)).openapi()


def cli_command(command: str) -> click.Command:
    """The click command of "search", or of a group's command, "judgments export"."""
    from mmindex.cli import main

    found: click.Command = main
    for name in command.split():
        found = found.commands[name]  # type: ignore[attr-defined]
    return found


def cli_params(command: str) -> dict[str, click.Parameter]:
    cmd = cli_command(command)
    ctx = click.Context(cmd)
    return {p.name: p for p in cmd.get_params(ctx) if p is not cmd.get_help_option(ctx)}


def cli_defaults(command: str) -> dict[str, typing.Any]:
    """What the command's parameters are when nothing is given (a missing required argument left aside)."""
    return cli_command(command).make_context(command, [], resilient_parsing=True).params


def http_fields(spec: dict, method: str, path: str) -> dict[str, dict]:
    """The endpoint's query parameters and JSON body fields: name -> schema, plus `required`."""
    def resolve(schema: dict) -> dict:
        return spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]] if "$ref" in schema else schema

    operation = spec["paths"][path][method]
    found = {p["name"]: {**p["schema"], "required": p.get("required", False)} for p in operation.get("parameters", [])}
    if "requestBody" in operation:
        body = resolve(operation["requestBody"]["content"]["application/json"]["schema"])
        found |= {name: {**resolve(s), "required": name in body.get("required", [])}
                  for name, s in body["properties"].items()}
    return found


def test_every_shared_request_is_checked_here():
    defined = {c for c in vars(requests).values()
               if isinstance(c, type) and dataclasses.is_dataclass(c) and issubclass(c, requests._Request)}
    assert defined == set(REQUESTS)


@pytest.mark.parametrize("cls", list(REQUESTS), ids=lambda c: c.__name__)
def test_each_side_takes_the_request_fields_and_only_its_own(spec, cls):
    command, (method, path), cli_only, http_only = REQUESTS[cls]
    assert set(cli_params(command)) - cli_only == set(cls.names())
    assert set(http_fields(spec, method, path)) - http_only == {http_name(f) for f in dataclasses.fields(cls)}
    assert not cli_only & set(cls.names()) and not http_only & {http_name(f) for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("cls", list(REQUESTS), ids=lambda c: c.__name__)
def test_each_field_has_the_same_kind_default_and_lower_limit_on_both_sides(spec, cls):
    command, (method, path), _, _ = REQUESTS[cls]
    options, defaults, http = cli_params(command), cli_defaults(command), http_fields(spec, method, path)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        option, param, meta = options[f.name], http[http_name(f)], {**f.metadata, **f.metadata.get("http", {})}
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        many = typing.get_origin(hints[f.name]) is tuple
        assert option.required == param["required"] == required, f.name
        assert (option.multiple if isinstance(option, click.Option) else option.nargs == -1) == many, f.name
        assert (param.get("type") == "array") == many, f.name
        if not required:
            default = f.default_factory() if f.default is dataclasses.MISSING else f.default
            assert defaults[f.name] == default, f.name
            assert param.get("default") == meta.get("default", list(default) if many else default), f.name
        if "min" in f.metadata:
            limits = param["items"] if many else param
            if f.metadata.get("min_open"):  # above the limit, not at it: 0 < within
                assert option.type.min == limits["exclusiveMinimum"] == f.metadata["min"] and option.type.min_open
            else:
                assert option.type.min == limits["minimum"] == f.metadata["min"], f.name
        if "registry" in f.metadata:
            assert list(option.type.choices) == param["enum"], f.name


def test_concepts_the_same_on_both_sides(small):
    client = TestClient(create_app(small))
    for text, limit in (("tabb", 3), ("dog", 5), (None, 7)):
        cli = json.loads(run_cli("concepts", *([text] if text else []), "--limit", str(limit), "--index", str(small),
                                 "--json").stdout)
        http = client.get("/api/concepts", params={"limit": limit, **({"q": text} if text else {})})
        assert http.status_code == 200 and cli == http.json() and len(cli["concepts"]) == limit, text
    assert json.loads(run_cli("concepts", "tabby", "--json", "--index", str(small)).stdout)["concepts"][0]["name"] \
        == "tabby"
    # the same limits: a limit of 0 is refused by both
    assert run_cli("concepts", "--limit", "0", check=False).returncode == 2
    assert client.get("/api/concepts", params={"limit": 0}).status_code == 422


def test_feedback_the_same_on_both_sides(small):
    client = TestClient(create_app(small))
    first = json.loads(run_cli("search", "--index", str(small), "--concept", "tabby", "-k", "6", "--json").stdout)
    ids = [h["segment_id"] for h in first["hits"]]
    good, bad = ids[2], ids[0]
    cli = json.loads(run_cli("feedback", "--index", str(small), "-p", str(good), "-n", str(bad), "-k", "8",
                             "--explain", "--json").stdout)
    body = {"concept": ["tabby"], "positive": [good], "negative": [bad], "k": 8, "explain": True}
    http = client.post("/api/feedback", json=body)
    assert http.status_code == 200, http.text
    assert http.json()["hits"] == cli["hits"] and len(cli["hits"]) == 8
    assert good not in [h["segment_id"] for h in cli["hits"]] and all(h["why"] for h in cli["hits"])
    # `explain` is a field on both sides (the web UI's default is true); without it, no scores per criterion
    plain = client.post("/api/feedback", json={**body, "explain": False}).json()
    assert [h["segment_id"] for h in plain["hits"]] == [h["segment_id"] for h in cli["hits"]]
    assert all("why" not in h for h in plain["hits"]) and "explanation" not in plain
    # the same lower limit on the ids: a negative id is refused by both
    assert run_cli("feedback", "--index", str(small), "-p", "-1", check=False).returncode == 2
    assert client.post("/api/feedback", json={**body, "positive": [-1]}).status_code == 422


def test_add_and_remove_name_the_same_media_on_both_sides(index_copy, sample_photos):
    client = TestClient(create_app(index_copy, ServiceConfig(token=TOKEN)), raise_server_exceptions=False)
    coffee = str(sample_photos / "coffee.jpg")
    removed = client.delete("/api/media", params={"path": coffee}, headers=AUTH)
    assert removed.status_code == 200 and removed.json() == {"removed": 1}
    assert "removed 0 media" in run_cli("remove", coffee, "--index", str(index_copy)).stdout
    assert "added 1, updated 0, unchanged 0" in run_cli("add", coffee, "--index", str(index_copy), "-q").stdout
    again = client.post("/api/media", json={"paths": [coffee]}, headers=AUTH)
    assert again.status_code == 200 and (again.json()["added"], again.json()["unchanged"]) == (0, 1)
    # PATHS is required on both sides
    for command in ("add", "remove"):
        proc = run_cli(command, "--index", str(index_copy), check=False)
        assert proc.returncode == 2 and "Missing argument 'PATHS...'" in proc.stderr
    assert client.post("/api/media", json={"paths": []}, headers=AUTH).status_code == 422
    assert client.delete("/api/media", headers=AUTH).status_code == 422


def test_teach_label_and_judgments_the_same_on_both_sides(service_index, tmp_path):
    """A concept taught over HTTP on one copy of the index and through the CLI on another: the same detector
    (its proposals), the same judgments files; the same lower limits refused by both."""
    import shutil

    cli_index, http_index = (shutil.copytree(service_index, tmp_path / name) for name in ("cli", "http"))
    client = TestClient(create_app(http_index, ServiceConfig(token=TOKEN)), raise_server_exceptions=False)
    shots, photos = segments_by_kind(client)
    body = {"name": "my bikes", "positive": shots[:3], "negative": photos[:3]}
    http = client.post("/api/concepts", json=body, headers=AUTH)
    assert http.status_code == 200, http.text
    cli = json.loads(run_cli("teach", "my bikes", *[a for i in shots[:3] for a in ("-p", str(i))],
                             *[a for i in photos[:3] for a in ("-n", str(i))], "--index", str(cli_index),
                             "--json").stdout)
    # the fit's time differs; HTTP adds the one concept's names on top (and says only what its schema names)
    shared = set(http.json()) - {"training", "query", "shadows"}
    assert {k: http.json()[k] for k in shared} == {k: cli[k] for k in shared}
    assert {"name", "version", "concepts", "judgments"} <= shared
    for strategy in ("uncertain", "probable", "random"):
        label = json.loads(run_cli("label", "my bikes", "-n", "5", "--strategy", strategy, "--seed", "2",
                                   "--index", str(cli_index), "--json").stdout)
        proposals = client.get("/api/concepts/my bikes/proposals", params={"n": 5, "strategy": strategy, "seed": 2})
        urls = {"thumbnail_url", "media_url"}
        got = {**proposals.json(), "segments": [{k: v for k, v in s.items() if k not in urls}
                                                for s in proposals.json()["segments"]]}
        assert got == label and len(label["segments"]) == 5, strategy
    for fmt in ("csv", "qrels"):
        exported = run_cli("judgments", "export", "--concept", "my bikes", "--format", fmt, "--index",
                           str(cli_index)).stdout
        assert client.get("/api/judgments", params={"concept": "my bikes", "format": fmt}).text == exported
        assert len(exported.splitlines()) == 6 + (fmt == "csv")
    # the same lower limits: -n 0 and a negative segment id are refused by both
    assert run_cli("label", "my bikes", "-n", "0", "--index", str(cli_index), check=False).returncode == 2
    assert client.get("/api/concepts/my bikes/proposals", params={"n": 0}).status_code == 422
    assert run_cli("teach", "x", "-p", "-1", "--index", str(cli_index), check=False).returncode == 2
    assert client.post("/api/concepts", json={"name": "x", "positive": [-1]}, headers=AUTH).status_code == 422
