"""The user's own names (issue 17): a trained concept wins over the built-in one of the same name, which stays
reachable by its WordNet id and by `wordnet:NAME`; which names a user may teach."""

from __future__ import annotations

import pytest

from mmindex.concepts import NAME_MAX, Concept, Vocabulary, check_name, same_name
from mmindex.errors import DetectorError, UnknownConcept

BUILTIN = Vocabulary.imagenet()


def trained(detector: str, label: str, col: int) -> Concept:
    cid = f"{detector}:{label}"
    return Concept(cid, label, (label, cid), f"trained detector {detector}", "trained", (col,))


def test_a_trained_concept_wins_its_name_and_the_builtin_stays_reachable():
    builtin = BUILTIN.resolve("trouser")
    assert builtin.source != "trained"
    vocab = BUILTIN.extended([trained("fm3", "trouser", 1000), trained("fm3", "bag", 1001)])
    assert vocab.resolve("trouser").id == "fm3:trouser"
    assert vocab.resolve("Trouser").id == "fm3:trouser"  # names compare as before: case, '_' and '-' aside
    assert vocab.resolve("wordnet:trouser") == builtin
    assert vocab.resolve("wordnet: Trouser") == builtin
    assert vocab.resolve(builtin.id) == builtin
    assert vocab.resolve(f"wordnet:{builtin.id}") == builtin
    assert vocab.resolve("fm3:bag").id == "fm3:bag"
    assert BUILTIN.resolve("trouser") == builtin  # the package vocabulary is untouched
    assert vocab.shadowed("trouser") == builtin and vocab.shadowed("my very own thing") is None
    with pytest.raises(UnknownConcept):
        vocab.resolve("wordnet:fm3:bag")  # the prefix looks among the built-in concepts only


def test_the_latest_trained_concept_of_a_name_wins_and_search_lists_it_first():
    vocab = BUILTIN.extended([trained("fm3", "trouser", 1000), trained("trouser", "trouser", 1003)])
    assert vocab.resolve("trouser").id == "trouser:trouser"
    assert vocab.resolve("fm3:trouser").id == "fm3:trouser"
    assert [c.id for c in vocab.search("trouser")[:3]] == ["trouser:trouser", "fm3:trouser",
                                                            BUILTIN.resolve("trouser").id]


@pytest.mark.parametrize("name, why", [
    ("", "is empty"), ("   ", "is empty"), ("x" * (NAME_MAX + 1), "longer than"), ("!!!", "no letter or digit"),
    ("_-_", "no letter or digit"), ("fm3:bag", "may not contain"), ("cat^2", "may not contain"),
    ("cat AND dog", "operators"), ("n04489008", "WordNet id"), ("WordNet", "reserved"),
])
def test_names_that_cannot_name_a_concept_are_refused(name, why):
    with pytest.raises(DetectorError, match=why):
        check_name(name)


def test_valid_names_are_kept_with_their_white_space_made_single():
    assert check_name("  red   car ") == "red car"
    assert check_name("T-shirt") == "T-shirt"
    assert check_name("x" * NAME_MAX) == "x" * NAME_MAX
    assert check_name("café") == "café"
    assert same_name("Red_car", ["blue car", "red car"]) == "red car"
    assert same_name("green car", ["red car"]) == "green car"
