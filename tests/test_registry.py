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


# ---- the CLI's choices and the docs' tables come from the registries ----------------------------------
def registries() -> dict[str, Registry]:
    from mmindex.learn import archs, sequence, video3d
    from mmindex.media import shots
    from mmindex.search import fusion
    from mmindex.text import encoders

    return {"fusion": fusion.METHODS, "sequence": sequence.ARCHS, "clips": video3d.ARCHS,
            "scratch": archs.ARCHS, "text": encoders.TEXT_ENCODERS, "shots": shots.DETECTORS}


@pytest.mark.parametrize(("command", "option", "where"), [
    ("search", "fusion", "mmindex.search.fusion:METHODS"),
    ("search", "normalise", "mmindex.search.fusion:NORMALISERS"),
    ("train-sequence", "arch", "mmindex.learn.sequence:ARCHS"),
    ("train-clips", "arch", "mmindex.learn.video3d:ARCHS"),
    ("train", "arch", "mmindex.learn.archs:ARCHS"),
    ("train", "backbone", "mmindex.models.registry:MODELS"),
    ("add", "model", "mmindex.models.registry:MODELS"),
    ("classify", "model", "mmindex.models.registry:MODELS"),
    ("evaluate-ilsvrc", "model", "mmindex.models.registry:MODELS"),
])
def test_cli_choices_are_the_registered_names(command, option, where):
    import importlib

    import click

    import mmindex.models.backbones  # noqa: F401  (the backbones register themselves when imported)
    from mmindex.cli import main

    cmd = main.commands[command]
    param = next(p for p in cmd.get_params(click.Context(cmd)) if p.name == option)
    module, _, attribute = where.partition(":")
    order = sorted if attribute == "MODELS" else list  # `mmindex models list` and its choices sort the backbones
    assert order(param.type.choices) == order(getattr(importlib.import_module(module), attribute))
    with pytest.raises(click.BadParameter, match="no-such-name"):
        param.type.convert("no-such-name", param, None)


def first_cells(path: str, heading: str) -> set[str]:
    """The backticked names in the first cell of each table row of the section under `heading`."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / path).read_text()
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    cells = [line.split("|")[1] for line in section.splitlines() if line.startswith("| `")]
    names = {name.split(":")[0] for cell in cells for name in re.findall(r"`([^`]+)`", cell)}
    return {name for name in names if not name.startswith("--")}  # a header row: | `--arch` | ...


@pytest.mark.parametrize(("path", "heading", "registry"), [
    ("docs/text.md", "## Fusion", "fusion"),
    ("docs/text.md", "## Text encoders", "text"),
    ("docs/video.md", "## Temporal models", "sequence"),
    ("docs/video3d.md", "## The networks", "clips"),
    ("docs/video.md", "## Detector", "shots"),
])
def test_docs_tables_list_exactly_the_registered_names(path, heading, registry):
    assert first_cells(path, heading) == set(registries()[registry])


def test_docs_name_every_scratch_architecture():
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs/learning.md").read_text()
    assert all(f"`{name}`" in text for name in registries()["scratch"])
