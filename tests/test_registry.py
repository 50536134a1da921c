"""The one registry type (mmindex/registry.py) that backbones, architectures, encoders, fusion and shots use."""

from __future__ import annotations

import pytest

from mmindex.errors import MmindexError, ModelError
from mmindex.registry import Registry


def make() -> Registry:
    reg: Registry = Registry("text encoder", ModelError)

    @reg.register(usage="minilm")
    def minilm(arg):
        return ("minilm", arg)

    reg.add("word2vec", lambda arg: ("word2vec", arg), usage="word2vec:PATH")
    return reg


def test_decorator_returns_the_function_unchanged_and_registers_it_under_its_name():
    def clip(arg):
        return arg

    reg: Registry = Registry("text encoder", ModelError)
    assert reg.register()(clip) is clip
    assert reg.get("clip") is clip and "clip" in reg and "nope" not in reg
    assert reg.register("other")(clip) is clip and reg.names() == ["clip", "other"]


def test_names_keep_registration_order():
    reg = make()
    reg.add("clip", object())
    assert reg.names() == ["minilm", "word2vec", "clip"] == list(reg)
    assert sorted(reg) == ["clip", "minilm", "word2vec"] and len(reg) == 3


def test_metadata_is_kept():
    reg = make()
    assert reg.entry("word2vec").metadata == {"usage": "word2vec:PATH"}
    assert [(e.name, e.metadata["usage"]) for e in reg.entries()] == [("minilm", "minilm"),
                                                                      ("word2vec", "word2vec:PATH")]
    assert reg.get("word2vec")("x") == ("word2vec", "x")


def test_duplicate_name_raises_value_error_and_keeps_the_first():
    reg = make()
    first = reg.get("minilm")
    with pytest.raises(ValueError, match="text encoder 'minilm' is already registered") as info:
        reg.add("minilm", lambda arg: None)
    assert isinstance(info.value, ModelError)  # the registry's own type too, for callers that catch it
    with pytest.raises(ValueError):
        reg.register()(first)
    assert reg.get("minilm") is first and len(reg) == 2


def test_unknown_name_raises_the_typed_error_with_close_matches():
    reg = make()
    with pytest.raises(ModelError, match=r"unknown text encoder 'minlm'; did you mean: minilm; "
                                         r"known text encoders: minilm, word2vec") as info:
        reg.get("minlm")
    assert info.value.suggestions == ["minilm"]
    with pytest.raises(ModelError) as info:
        reg.entry("bert-huge")
    assert "did you mean" not in str(info.value) and info.value.suggestions == []


def test_unknown_name_is_case_insensitive_for_suggestions_and_unhashable_names_fail_cleanly():
    reg = make()
    with pytest.raises(ModelError, match="did you mean: minilm"):
        reg.get("MiniLM")
    with pytest.raises(ModelError, match="unknown text encoder"):
        reg.get(["minilm"])  # type: ignore[arg-type]


def test_default_error_type():
    reg: Registry = Registry("widget")
    with pytest.raises(MmindexError, match="unknown widget 'x'"):
        reg.get("x")
