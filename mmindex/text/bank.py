"""The concept bank: free text → the index's concepts → one score per segment (ConSE-style pooling).

Every concept (the 1000 ImageNet classes, the WordNet nodes above them, and any extra column of the
index such as a trained detector) gets one text embedding, made from two encoded texts and its parent:

    v_c = normalise( e(names) + g · e(name: gloss) + h · e(names of its WordNet parent) )

A query is first read as what it names (`text/phrasing.py`: "an image of some birds!" is "bird"). A concept named
exactly takes `named_weight` of the weight, similar concepts in its own hierarchy the rest; separate concept
phrases ("a dog on a beach") are mapped one by one and scored as their product (the query grammar's AND).
Otherwise the phrase q is embedded by the same encoder; its similarity to each concept is s_c = v_c · e(q).
Concepts with s_c ≥ threshold are candidates; the top_k of them get weights

    similarity:  w_c = s_c / Σ s          softmax:  w_c = exp(s_c / τ) / Σ exp(s / τ)

and a segment's text score is Σ_c w_c · p_c(segment), a convex combination of concept probabilities
(Norouzi et al., "Zero-shot learning by convex combination of semantic embeddings", ICLR 2014, pool
the other way round, images into the word space; pooling concept scores with text-similarity weights is
the TRECVID ad-hoc search concept-bank recipe). A query with no concept above the threshold gets no
hits, and says why: never the top of a random ranking. `BankParams` defaults were tuned by
`bench/text_tune.py` on a validation set (see docs/text.md).

The two matrices are cached under `$MMINDEX_CACHE/text/`, keyed by the encoder's weights and a hash of
every concept's texts, so a changed vocabulary or encoder builds a new bank.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mmindex.atomic import atomic_write
from mmindex.concepts import Concept, Vocabulary
from mmindex.config import cache_dir
from mmindex.errors import QueryError
from mmindex.text import phrasing
from mmindex.text.encoders import TextEncoder
from mmindex.text.mapping import NEGLIGIBLE_WEIGHT, MappedConcept, TextMapping

log = logging.getLogger(__name__)

MAX_TEXT_CHARS = 10_000
__all__ = ["NEGLIGIBLE_WEIGHT", "BankParams", "ConceptBank", "MappedConcept", "TextMapping", "check_text",
           "entries_from_vocabulary"]
BANK_FORMAT = 1  # bump when the texts a concept is embedded from change

# Function words only: content words that generic stop lists carry ("fire", "top", "back") are concepts here.
STOP_WORDS = frozenset("""
a an the this that these those some any each every all both either neither no none one
i me my we us our you your he him his she her it its they them their what which who whom whose
of in on at by for with without from to into onto over under above below between among through
during before after about against along across around behind beside near off out up down upon via
and or but nor so yet if then than as because while whereas although though whether
is are was were be been being am do does did doing have has had having will would shall should
can could may might must ought let lets please show find give get me search image images photo
photos picture pictures video videos shot shots frame frames clip clips containing contains
there here where when how why not very just only also too more most other such own same
""".split())


@dataclass(frozen=True)
class BankParams:
    """How a query is mapped to concepts (defaults tuned on validation queries, see docs/text.md)."""

    top_k: int = 10  # concepts pooled per query
    weighting: str = "softmax"  # "softmax", "similarity" or "uniform"
    temperature: float = 0.02  # τ of the softmax weighting
    threshold: float = 0.40  # minimum query–concept cosine similarity
    gloss_weight: float = 0.0  # g above (validation preferred no gloss: glosses pull in unrelated words)
    parent_weight: float = 0.5  # h above
    nodes: bool = True  # also map to WordNet nodes ("dog", "pullover"): see docs/text.md for why, against validation
    read: bool = True  # read the query as what it names first (text/phrasing.py); False: embed it as typed (before)
    named_weight: float = 0.9  # a concept named exactly takes this weight, similar ones in its hierarchy the rest
    compose: bool = True  # "a dog on a beach": separate concepts combined by AND


@dataclass(frozen=True)
class BankEntry:
    """One concept of the bank: its id, display name, texts and the score columns it sums."""

    id: str
    name: str
    names: str  # "tabby, tabby cat"
    gloss: str  # "tabby: a cat with a grey or tawny coat mottled with black"
    parent: int | None  # index of the parent entry (WordNet hypernym) or None
    columns: tuple[int, ...]
    source: str


def check_text(text: str, is_name: Callable[[str], bool] | None = None) -> str:
    """The query stripped; QueryError for an empty, too long or stop-words-only query (unless `is_name` says it
    names a concept: "a can", "some clips" and "still" do)."""
    stripped = text.strip()
    if not stripped:
        raise QueryError("empty text query")
    if len(stripped) > MAX_TEXT_CHARS:
        raise QueryError(f"text query too long: {len(stripped):,} characters (at most {MAX_TEXT_CHARS:,})")
    words = re.findall(r"[^\W_]+", stripped.lower())
    if not words:
        raise QueryError(f"text query {stripped[:80]!r} has no words")
    if all(w in STOP_WORDS for w in words) and not (is_name is not None and is_name(stripped)):
        raise QueryError(f"text query {stripped[:80]!r} has only stop words: say what to look for")
    return stripped


def entries_from_vocabulary(vocab: Vocabulary, extra: Sequence[tuple[int, str, str, str]] = ()) -> list[BankEntry]:
    """Bank entries for a vocabulary's classes and nodes, plus `extra` score columns (col, id, name, source)
    that the vocabulary does not know (trained or imported detectors, named by their name only)."""
    concepts = list(vocab)
    parents = _parents(concepts)
    out = [BankEntry(c.id, c.name, ", ".join(dict.fromkeys(c.synonyms[:4])),
                     f"{c.name}: {c.definition}" if c.definition else c.name, parents[i], c.classes, c.source)
           for i, c in enumerate(concepts)]
    for col, cid, name, source in extra:
        if vocab.get(cid) is None:
            clean = name.replace("_", " ")
            out.append(BankEntry(cid, name, clean, clean, None, (col,), source))
    return out


def _parents(concepts: list[Concept]) -> list[int | None]:
    """Index of each concept's closest WordNet ancestor: the smallest node covering its classes."""
    nodes = sorted((len(c.classes), i) for i, c in enumerate(concepts) if c.source == "wordnet")
    sets = {i: frozenset(concepts[i].classes) for _, i in nodes}
    out: list[int | None] = []
    for c in concepts:
        mine = frozenset(c.classes)
        out.append(next((j for size, j in nodes if size > len(mine) and mine < sets[j]), None))
    return out


class ConceptBank:
    """One embedding per concept, and the mapping of a query onto them."""

    def __init__(self, entries: Sequence[BankEntry], encoder: TextEncoder, params: BankParams | None = None,
                 vocabulary: Vocabulary | None = None):
        """`vocabulary` resolves the names a query may name exactly (default: the ImageNet vocabulary)."""
        self.entries = list(entries)
        self.encoder = encoder
        self.params = params or BankParams()
        self.vocabulary = vocabulary or Vocabulary.imagenet()
        self._entry_of = {e.id: i for i, e in enumerate(self.entries)}
        names = [phrasing.clean(n) for c in self.vocabulary for n in c.synonyms]
        self._words = phrasing.words_of(names)
        self._name_set = frozenset(names)
        self._split_names = phrasing.names_with_separators(names)
        self._names, self._gloss = self._load_or_build()
        self._vectors: np.ndarray | None = None
        self._vectors_for: tuple[float, float] | None = None

    def with_params(self, **changes) -> ConceptBank:
        """The same bank (no re-encoding) with other parameters."""
        other = object.__new__(ConceptBank)
        other.__dict__.update(self.__dict__)
        other.params = replace(self.params, **changes)
        other._vectors, other._vectors_for = None, None
        return other

    @property
    def vectors(self) -> np.ndarray:
        """(n_entries, dim) concept embeddings under the current gloss and parent weights."""
        key = (self.params.gloss_weight, self.params.parent_weight)
        if self._vectors is None or self._vectors_for != key:
            v = self._names + key[0] * self._gloss
            parent = np.array([-1 if e.parent is None else e.parent for e in self.entries])
            has = parent >= 0
            v[has] += key[1] * self._names[parent[has]]
            norms = np.linalg.norm(v, axis=1, keepdims=True)
            self._vectors = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
            self._vectors_for = key
        return self._vectors

    def similarities(self, text: str) -> np.ndarray:
        """Cosine similarity of the (checked) query to every entry."""
        q = self.encoder.encode([check_text(text)])[0]
        return self.vectors @ q

    def map(self, text: str, encoded: dict[str, np.ndarray] | None = None) -> TextMapping:
        """The query's top concepts and their weights. QueryError for bad text (see `check_text`).

        With `params.read`, the query is first read as what it names (`phrasing.core`): a concept named exactly
        takes `named_weight`; else a query of separate concept phrases is their AND; else the phrase is embedded.
        `encoded`: phrase embeddings already computed (`map_many`).
        """
        text = check_text(text, self._names_concept)
        encoded = {} if encoded is None else encoded
        if not self.params.read:  # as before issue 21: the query embedded as typed
            return self._one(text, text, encoded, exact=False)
        core, pieces = self._read(text)
        if len(pieces) > 1 and self._named_entry(core) is None:
            composed = self._compose(text, core, pieces, encoded)
            if composed is not None:
                return composed
        return self._one(text, core, encoded)

    def map_many(self, texts: Sequence[str]) -> list[TextMapping]:
        """`map` of each text, every phrase they hold encoded in one batch (benchmarks, tests)."""
        phrases = [p for t in texts for p in self._phrases(check_text(t, self._names_concept))]
        unique = list(dict.fromkeys(phrases))
        vectors = self.encoder.encode(unique) if unique else np.zeros((0, self.encoder.dim), np.float32)
        encoded = dict(zip(unique, vectors, strict=True))
        return [self.map(t, encoded) for t in texts]

    def _read(self, text: str) -> tuple[str, list[phrasing.Part]]:
        """What the query names (its core) and the concept phrases of the core (`phrasing`)."""
        core = phrasing.core(text, self._words, self._name_set) or phrasing.clean(text) or text
        if not self.params.compose:
            return core, [phrasing.Part(core)]
        return core, phrasing.parts(core, self._split_names, self._words, self._name_set)

    def _phrases(self, text: str) -> list[str]:
        if not self.params.read:
            return [text]
        core, pieces = self._read(text)
        return [core, *(p.text for p in pieces)] if len(pieces) > 1 else [core]

    def _one(self, text: str, core: str, encoded: dict[str, np.ndarray], exact: bool = True) -> TextMapping:
        """One concept phrase: the concept it names exactly (and similar ones), else the similar concepts."""
        q = encoded[core] if core in encoded else self.encoder.encode([core])[0]
        named = self._named_entry(core) if exact else None
        if not np.any(q) and named is None:
            return TextMapping(text, [], f"no word of {text[:80]!r} is known to the text encoder "
                                          f"{self.encoder.spec}", read_as=core)
        sims = self.vectors @ q  # zeros for a word2vec that does not know a name: the named concept alone
        mapping = self.map_vector(text, sims) if np.any(q) else TextMapping(text, [])
        mapping.read_as = core
        if named is None:
            return mapping
        nw, e = self.params.named_weight, self.entries[named]
        # The rest goes to the similar concepts in the named one's hierarchy only (above it, as a back-off, or
        # below it): "bird" never spreads onto "birdhouse".
        mine = frozenset(e.columns)
        rest = [replace(c, weight=c.weight * (1 - nw)) for c in mapping.concepts
                if c.id != e.id and nw < 1 and (mine <= frozenset(c.columns) or frozenset(c.columns) <= mine)]
        total = nw + sum(c.weight for c in rest)  # renormalised: the rest may not have been all of the mapping
        found = [MappedConcept(e.id, e.name, float(sims[named]), nw / total, e.columns)]
        found += [replace(c, weight=c.weight / total) for c in rest]
        return TextMapping(text, found, read_as=core, named=e.id)

    def _names_concept(self, text: str) -> bool:
        return self._named_entry(phrasing.core(text, self._words, self._name_set)) is not None

    def _named_entry(self, core: str) -> int | None:
        """The bank entry of the concept `core` names exactly (a name or synonym, `Vocabulary.resolve_words`: the
        most frequent sense of a word), if any."""
        if core not in self.vocabulary:
            return None
        return self._entry_of.get(self.vocabulary.resolve_words(core).id)

    def _compose(self, text: str, core: str, pieces: list[phrasing.Part],
                 encoded: dict[str, np.ndarray]) -> TextMapping | None:
        """The AND of the pieces' mappings when each maps to a concept and their best concepts are separate
        (none the same as, or in the hierarchy above or below, another's); else None (read as one phrase).

        A scene piece ("water" in "a ship on the water") that names no concept exactly is left out, as where the
        thing is rather than a second thing: the classifier has no "water" to AND with.
        """
        found, ignored = [], []
        for piece in pieces:
            m = self._one(piece.text, piece.text, encoded)
            if piece.scene and m.named is None:
                ignored.append(piece.text)
            else:
                found.append(m)
        if not all(m.concepts for m in found):
            return None
        if len(found) == 1:
            return replace(found[0], text=text, ignored=ignored)
        tops = [frozenset(m.concepts[0].columns) for m in found]
        if any(a <= b or b <= a for i, a in enumerate(tops) for b in tops[i + 1:]):
            return None
        return TextMapping(text, [c for m in found for c in m.concepts], read_as=core, parts=found, ignored=ignored)

    def map_vector(self, text: str, sims: np.ndarray) -> TextMapping:
        """Map given similarities (one per entry) to weighted concepts."""
        p = self.params
        if not p.nodes:
            sims = np.where([e.source == "wordnet" for e in self.entries], -np.inf, sims)
        best = int(np.argmax(sims))
        if sims[best] < p.threshold:
            return TextMapping(text, [], f"no concept is similar enough to {text[:80]!r}: the closest, "
                                         f"{self.entries[best].name!r}, has similarity {sims[best]:.2f} "
                                         f"< threshold {p.threshold:.2f}")
        k = min(p.top_k, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[np.argsort(-sims[top], kind="stable")]
        top = top[sims[top] >= p.threshold]
        s = sims[top].astype(np.float64)
        if p.weighting == "softmax":
            w = np.exp((s - s.max()) / p.temperature)
        elif p.weighting == "similarity":
            w = s.copy()
        elif p.weighting == "uniform":
            w = np.ones_like(s)
        else:
            raise QueryError(f"unknown concept weighting {p.weighting!r}")
        w /= w.sum()
        found = [MappedConcept(self.entries[i].id, self.entries[i].name, float(sims[i]), float(wi),
                               self.entries[i].columns) for i, wi in zip(top, w, strict=True)]
        return TextMapping(text, found)

    # ---- the on-disk cache ---------------------------------------------------------------------
    def _texts(self) -> tuple[list[str], list[str]]:
        t = self.encoder.template
        return [t.format(e.names) for e in self.entries], [t.format(e.gloss) for e in self.entries]

    def _key(self) -> str:
        h = hashlib.sha256(f"{BANK_FORMAT}\n{self.encoder.cache_id}\n".encode())
        for e in self.entries:
            h.update(f"{e.id}\t{e.names}\t{e.gloss}\n".encode())
        return h.hexdigest()[:20]

    def _load_or_build(self) -> tuple[np.ndarray, np.ndarray]:
        path = cache_dir() / "text" / f"bank-{self._key()}.npz"
        if path.is_file():
            try:
                with np.load(path) as f:
                    if f["names"].shape == (len(self.entries), self.encoder.dim):
                        return f["names"].astype(np.float32), f["gloss"].astype(np.float32)
            except (OSError, ValueError, KeyError):
                log.warning("concept bank cache %s is unreadable; rebuilding it", path)
        names, gloss = self._texts()
        log.info("building the concept bank (%d concepts) with %s", len(self.entries), self.encoder.spec)
        both = self.encoder.encode(names + gloss)
        n = len(names)
        _save(path, names=both[:n].astype(np.float16), gloss=both[n:].astype(np.float16))
        return both[:n].astype(np.float16).astype(np.float32), both[n:].astype(np.float16).astype(np.float32)


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write the cache atomically; a read-only cache only costs a rebuild next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)
    except OSError as exc:
        log.warning("cannot cache the concept bank in %s: %s", path.parent, exc)
