"""Parsed queries: the concept expression grammar and the query object the engine ranks.

Grammar of a `--concept` expression (operators are upper case, so that class names such as
"black and gold garden spider" stay names):

    expr    := or
    or      := and ("OR" and)*
    and     := not ("AND" not)*
    not     := "NOT" not | atom
    atom    := "(" expr ")" weight? | name weight?
    weight  := "^" number                 e.g. espresso^2, (cat OR dog)^0.5
    name    := words up to the next operator, parenthesis or "^", or a "quoted string";
               a name, a synonym or a WordNet id ("tabby", "tabby cat", "n02123045")

Parentheses and NOTs nest at most MAX_NESTING deep (a QueryError beyond): the parser and the evaluation
(search/rank.py) recurse once per level, and an API query of 500 characters could otherwise nest 246 deep
and exhaust Python's recursion limit.

Scores are probabilities p in [0, 1] and combine as independent events (fuzzy logic):
    AND: p1^w1 · p2^w2 · ...        OR: 1 − (1−p1)^w1 · (1−p2)^w2 · ...        NOT: 1 − p
A weight w counts a term as if it were written w times. The weight on a whole expression
(`--concept "espresso^2"`) is instead its weight in the fusion of criteria (see fusion.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmindex.errors import QueryError

MAX_NESTING = 32  # parentheses and NOTs open at once; far below the recursion limit (4 parser frames a level)
# The deepest tree a parse can give: every parenthesis level adds at most an Or and an And, every NOT a Not,
# and the top level an Or and an And above the Term.
MAX_TREE_DEPTH = 2 * MAX_NESTING + 3

_TOKEN = re.compile(
    r"""\s*(?: (?P<op>AND\b|OR\b|NOT\b) | (?P<p>[()]) | \^(?P<w>[^\s()]*) | "(?P<q>[^"]*)" | (?P<word>[^\s()^"]+) )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Term:
    name: str
    weight: float = 1.0


@dataclass(frozen=True)
class Not:
    child: Node
    weight: float = 1.0


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    weight: float = 1.0


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    weight: float = 1.0


Node = Term | Not | And | Or


@dataclass
class Query:
    """What to look for: concept expressions, examples (segment ids or file paths), fused.

    `concepts` holds (text as given, parsed expression, fusion weight); `like` holds
    (segment id or path, fusion weight); `text` holds (free text, fusion weight), mapped to concepts
    by the concept bank (mmindex.text.bank).
    """

    concepts: list[tuple[str, Node, float]] = field(default_factory=list)
    like: list[tuple[int | str, float]] = field(default_factory=list)
    k: int = 10
    text: list[tuple[str, float]] = field(default_factory=list)

    @classmethod
    def build(cls, concepts=(), like=(), k: int = 10, text=()) -> Query:
        """Parse concept expression strings, example references (int segment id, or path) and free
        texts (a trailing ^number is the text's fusion weight: "a red car^2")."""
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        q = cls(k=k)
        for expr in concepts:  # not `text`: that name is the free-text parameter, read below
            node = parse_concepts(expr)
            q.concepts.append((expr.strip(), _with_weight(node, 1.0), node.weight))
        for ref in like:
            ref, weight = _split_weight(str(ref))
            q.like.append((int(ref) if re.fullmatch(r"\d+", ref) else ref, weight))
        for t in [text] if isinstance(text, str) else (text or ()):
            m = re.fullmatch(r"(?s)(.*\S)\s*\^([0-9.]+)\s*", t)
            q.text.append((m.group(1), _weight(m.group(2), t)) if m else (t, 1.0))
        if not q.concepts and not q.like and not q.text:
            raise QueryError("empty query: give at least one --concept, --text or --like")
        return q


def parse_concepts(text: str) -> Node:
    """Parse a concept expression into a tree of Term/Not/And/Or. Raises QueryError."""
    tokens = _tokenize(text)
    if not tokens:
        raise QueryError("empty concept expression")
    parser = _Parser(tokens, text)
    node = parser.expr()
    if parser.i != len(tokens):
        raise QueryError(f"unexpected {tokens[parser.i][1]!r} in concept expression {text!r}")
    return node


def _tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise QueryError(f"cannot parse concept expression {text!r} at position {pos}")
        pos = m.end()
        kind = m.lastgroup
        value = m.group(kind)
        if kind == "word" and tokens and tokens[-1][0] == "word":
            tokens[-1] = ("word", tokens[-1][1] + " " + value)  # multi-word names
        else:
            tokens.append((kind, value))
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str):
        self.tokens, self.text, self.i = tokens, text, 0
        self.depth = 0  # parentheses and NOTs open at the current token

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise QueryError(f"concept expression nested too deeply (more than {MAX_NESTING} levels of "
                             f"parentheses and NOT): {_abridged(self.text)}")

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise QueryError(f"concept expression {self.text!r} ends too early")
        self.i += 1
        return tok

    def expr(self) -> Node:
        children = [self.conj()]
        while self.peek() == ("op", "OR"):
            self.take()
            children.append(self.conj())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def conj(self) -> Node:
        children = [self.neg()]
        while self.peek() == ("op", "AND"):
            self.take()
            children.append(self.neg())
        return children[0] if len(children) == 1 else And(tuple(children))

    def neg(self) -> Node:
        if self.peek() == ("op", "NOT"):
            self.take()
            self.enter()
            node = Not(self.neg())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        kind, value = self.take()
        if kind == "p" and value == "(":
            self.enter()
            node = self.expr()
            if self.take() != ("p", ")"):
                raise QueryError(f"missing ')' in concept expression {self.text!r}")
            self.depth -= 1
        elif kind in ("word", "q"):
            if not value.strip():
                raise QueryError(f"empty concept name in {self.text!r}")
            node = Term(value.strip())
        else:
            raise QueryError(f"unexpected {value!r} in concept expression {self.text!r}")
        if self.peek() and self.peek()[0] == "w":
            node = _with_weight(node, _weight(self.take()[1], self.text))
        return node


def tree_depth(node: Node) -> int:
    """Levels of a query tree (a Term alone is 1), counted without recursion: trees built by hand
    are not bounded by the parser's MAX_NESTING."""
    depth, level = 0, [node]
    while level:
        depth += 1
        level = [c for n in level if not isinstance(n, Term)
                 for c in ((n.child,) if isinstance(n, Not) else n.children)]
    return depth


def check_depth(node: Node) -> Node:
    """`node` if it is at most MAX_TREE_DEPTH levels deep (any parsed expression is), else a QueryError."""
    if tree_depth(node) > MAX_TREE_DEPTH:
        raise QueryError(f"concept expression nested too deeply (more than {MAX_TREE_DEPTH} levels)")
    return node


def _abridged(text: str, n: int = 60) -> str:
    return repr(text if len(text) <= n else text[:n] + "...")


def _weight(raw: str, text: str) -> float:
    try:
        w = float(raw)
    except ValueError:
        raise QueryError(f"bad weight '^{raw}' in {text!r}: expected a number such as ^2 or ^0.5") from None
    if not (w > 0 and w < float("inf")):
        raise QueryError(f"bad weight '^{raw}' in {text!r}: it must be a positive number")
    return w


def _split_weight(ref: str) -> tuple[str, float]:
    base, sep, raw = ref.rpartition("^")
    return (base, _weight(raw, ref)) if sep and base else (ref, 1.0)


def _with_weight(node: Node, weight: float) -> Node:
    return type(node)(**{**node.__dict__, "weight": weight})
