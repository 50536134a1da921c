"""What a free-text query names, whatever its phrasing: carrier phrases off, plurals singular, parts split.

`core("An image of some birds!", words)` is "bird": the query as the concept bank reads it. The steps, in order:

1. lower case; '_' and '-' as spaces (as concept names are compared, `concepts.normalise`); every character other
   than letters, digits, spaces, apostrophes and '&' / '+' / ',' (part separators) becomes a space;
2. leading **carrier phrases** are removed, repeatedly, from the documented list `CARRIERS` ("show me", "a photo of",
   "an image of", "pictures of", "there are", "close up of", ...) and a trailing one from `TRAILERS` ("in a photo");
3. leading **determiners and quantifiers** (`DETERMINERS`: a, an, the, some, several, many, two, ...) are removed;
4. every word that is not a word of any concept name gets its **singular** when that is one ("birds" → "bird",
   "geese" → "goose", "cherries" → "cherry"; a word no rule makes known stays as it is); a phrase that is no
   concept name but would be one with its known words singular too is that name ("hand glasses"). A plural that
   is itself a name stays: "glasses" are spectacles, "shades" sunglasses, "works" a factory.

`parts(core, ...)` splits a core at the separators of `SEPARATORS` ("and", "with", "on", "in", "next to", ",",
...) into concept phrases ("dog on beach" → ["dog", "beach"]), never inside a concept name that holds a separator
("black and gold garden spider"); a phrase after a SCENE separator ("on", "in", "at", ...) is marked, as it may
say where rather than what. The concept bank decides whether the parts are separate concepts (AND), drops scene
phrases that name no concept ("a ship on the water": water), or reads the whole as one phrase (`text.bank`).

Why strip rather than embed the phrasing: the bank compares the query's embedding with the concepts' names, and
carrier words move it (MiniLM puts "a photo of a bird" nearest "piciform bird"); what the user means is the same.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import NamedTuple

# Leading phrases that say how the user asks, not what for. Matched as whole words at the start of the lower-cased
# query, longest first, again and again ("show me a photo of ..."). Plural forms are listed through the (s)? below.
_MEDIA = r"(?:photo|photograph|picture|pic|image|video|clip|shot|frame|snapshot|still|footage|scene|view|close[ -]?up)"
CARRIERS: tuple[str, ...] = (
    "show me", "show", "find me", "find", "search for", "search", "look for", "looking for", "i want", "i need",
    "i am looking for", "i'm looking for", "give me", "get me", "where is", "where are", "there is", "there are",
    "containing", "contains", "showing", "featuring", "depicting", "with",
    # "a photo of", "some pictures of", "a close up of", "the images showing", "video with" ...
    # (the "of" is needed: "picture frame", "shot glass" and "paper clip" name things)
    rf"(?:(?:a|an|the|some|any|my)\s+)?(?:(?:good|nice|clear|real|blurry|colou?r|black and white)\s+)?{_MEDIA}s?"
    r"\s+(?:of|with|showing|containing|featuring|depicting)",
)
TRAILERS: tuple[str, ...] = (r"(?:in|on|from)\s+(?:a|an|the|this|my)?\s*(?:photo|photograph|picture|image|video)s?",)
DETERMINERS: frozenset[str] = frozenset(
    "a an the some any several many few lots lot of one two three four five six seven eight nine ten "
    "this that these those my our your his her their its".split())
# Separators between the concept phrases of a compositional query ("a dog on a beach", "a red car and a person").
# After a SCENE separator the phrase may be where the thing is rather than a second thing ("a ship on the water"):
# the bank keeps such a part only when it names a concept exactly ("a dog on a beach": seashore).
OBJECT_SEPARATORS: tuple[str, ...] = (
    "and", "with", "near", "beside", "besides", "next to", "holding", "carrying", "riding", "plus", "&", "+", ",")
SCENE_SEPARATORS: tuple[str, ...] = (
    "on", "in", "at", "by", "under", "over", "above", "below", "behind", "in front of", "on top of", "inside",
    "outside")
SEPARATORS: tuple[str, ...] = OBJECT_SEPARATORS + SCENE_SEPARATORS
# Plurals no suffix rule undoes.
IRREGULAR: dict[str, str] = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse", "geese": "goose",
    "feet": "foot", "teeth": "tooth", "oxen": "ox", "lice": "louse", "dice": "die", "knives": "knife",
    "wives": "wife", "leaves": "leaf", "wolves": "wolf", "calves": "calf", "halves": "half", "shelves": "shelf",
    "loaves": "loaf", "thieves": "thief", "cacti": "cactus", "fungi": "fungus", "octopi": "octopus",
}

_CARRIER_RE = re.compile(r"^(?:" + "|".join(sorted(CARRIERS, key=len, reverse=True)) + r")\b\s*")
_TRAILER_RE = re.compile(r"\s*\b(?:" + "|".join(TRAILERS) + r")$")
_SEP_RE = re.compile(r"(?:^|\s)(?:" + "|".join(re.escape(s) for s in sorted(SEPARATORS, key=len, reverse=True))
                     + r")(?=\s|$)")
_NOT_KEPT = re.compile(r"[^\w\s'&+,]|_")


def words_of(names: Iterable[str]) -> frozenset[str]:
    """Every word of the given (normalised) concept names: what a singular must be to replace a plural."""
    return frozenset(w for n in names for w in n.split())


def singular(word: str, known: Collection[str], force: bool = False) -> str:
    """`word`'s singular when `word` is not in `known` (or `force`) and its singular is; else `word` itself."""
    if (word in known and not force) or len(word) < 3:
        return word
    candidates = [IRREGULAR.get(word, "")]
    if word.endswith("ies"):
        candidates.append(word[:-3] + "y")
    if word.endswith("ves"):
        candidates += [word[:-3] + "f", word[:-3] + "fe"]
    if re.search(r"(?:s|x|z|ch|sh)es$", word):  # "buses", "boxes"; not "wares"
        candidates.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss"):
        candidates.append(word[:-1])
    return next((c for c in candidates if c and c in known), word)


def clean(text: str, hyphens: bool = False) -> str:
    """Step 1: lower case, separators of names as spaces, punctuation off, single spaces. With `hyphens`, a hyphen
    inside a word stays (so that "three-toed sloth" does not lose "three" as a determiner)."""
    text = re.sub(r"[\s_]+|(?<!\w)-+|-+(?!\w)" if hyphens else r"[\s_\-]+", " ", text.lower())
    text = re.sub(r"[^\w\s'&+,\-]|_" if hyphens else _NOT_KEPT, " ", text).replace(",", " , ")
    return " ".join(text.split())


def core(text: str, known: Collection[str], names: Collection[str] = ()) -> str:
    """What the query names (steps 1 to 4 of the module docstring). May be empty (a query of carriers only).

    `names` (normalised concept names): a phrase that is none of them, but would be one with its plural-looking
    known words made singular too, is that name ("hand glasses" → "hand glass"; "glasses" alone is a name).
    """
    text = _TRAILER_RE.sub("", clean(text, hyphens=True))
    while True:
        stripped = _strip_determiners(_CARRIER_RE.sub("", text, count=1))
        if stripped == text:
            break
        text = stripped
    words = text.replace("-", " ").split()
    phrase = " ".join(singular(w, known) for w in words)
    if names and phrase not in names:
        forced = " ".join(singular(w, known, force=True) for w in words)
        return forced if forced in names else phrase
    return phrase


def _strip_determiners(text: str) -> str:
    words = text.split()
    i = 0
    while i < len(words) - 1 and words[i] in DETERMINERS:  # the last word is kept: "one", "lot" can be all there is
        i += 1
    return " ".join(words[i:])


class Part(NamedTuple):
    """A concept phrase of a query, and whether a SCENE separator came before it (then it may be a place)."""

    text: str
    scene: bool = False


def parts(text: str, split_names: Collection[str], known: Collection[str], names: Collection[str] = ()) -> list[Part]:
    """The concept phrases of a core, split at `SEPARATORS`, each made a core itself; [Part(text)] when there is
    no split.

    A separator inside a concept name found in the text ("black and gold garden spider", "bird of prey") does not
    split: `split_names` are the (normalised) concept names that hold a separator word; `names` as for `core`.
    """
    text = clean(text)
    protected = [(m.start(), m.end()) for n in split_names for m in re.finditer(rf"(?<!\S){re.escape(n)}(?!\S)", text)]
    pieces, start, scene = [], 0, False
    for m in _SEP_RE.finditer(text):
        if any(a <= m.start() + 1 and m.end() <= b for a, b in protected):
            continue
        pieces.append((text[start:m.start()], scene))
        start, scene = m.end(), m.group().strip() in SCENE_SEPARATORS
    pieces.append((text[start:], scene))
    out = [Part(c, sc) for c, sc in ((core(p, known, names), sc) for p, sc in pieces) if c and c not in DETERMINERS]
    return out if len(out) > 1 else [Part(text)]


def names_with_separators(names: Iterable[str]) -> list[str]:
    """The concept names that a split could cut: those holding a separator word."""
    return [n for n in names if _SEP_RE.search(n)]
