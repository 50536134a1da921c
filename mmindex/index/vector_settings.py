"""Vector-index settings: their names, the FAISS factory string of each, and the automatic choice by size.

    auto    the default of a new index: exact ("Flat") below AUTO_HNSW_FROM vectors, the `hnsw` setting from
            there on (a writer rebuilds the index as a graph once the collection crosses that size)
    flat    exact inner product ("Flat"); the setting of indexes made before `auto` existed
    hnsw    an HNSW graph (see vectors.py and HNSW_PCA)
    ivfpq   inverted lists of product-quantised codes
    any other FAISS index factory string, e.g. "IVF1024,SQ8" or "HNSW32,SQfp16"
"""

from __future__ import annotations

import math

from mmindex.errors import VectorIndexError

DEFAULT_SETTING = "auto"  # of a new index
LEGACY_SETTING = "flat"  # of an index that records none (made before settings were recorded)
ALIASES = {"flat": "Flat", "hnsw": "HNSW32", "ivfpq": "IVF{nlist},PQ{m}np"}
#: `auto` switches from exact search to the `hnsw` graph at this many vectors. On bench/query_latency.py's
#: 1280-d vectors an exact scan costs about 0.2-0.4 us per vector on one core (20-40 ms at 100k: over the
#: 20 ms goal for `--like` there), the graph about 4 ms at 100k with recall@10 0.95 or more
#: (bench/scale_1m.py, docs/benchmarks.md), and building it costs about a minute per 100k vectors on 2 cores.
AUTO_HNSW_FROM = 50_000
# "hnsw" builds its graph over the first HNSW_PCA principal components of wider embeddings, with 64
# links per node. The graph only proposes candidates (they are re-ranked with the full vectors), and a
# 128-d distance costs a tenth of a 1280-d one. On bench/scale_1m.py's data at 200k: HNSW32 over 128-d
# codes built in 133 s (instead of ~8 min over 1280-d) and gave recall@10 0.94 at efSearch 200;
# efConstruction 400 instead of 200 changed nothing, but 64 links (built in 124 s at efConstruction
# 120) gave 0.99. Compressing CNN features to 128-d by PCA keeps most of their retrieval quality
# (Babenko et al., "Neural codes for image retrieval", 2014).
HNSW_PCA = 128


def normalise(setting: str) -> str:
    """The canonical form of a setting: aliases (and `auto`) lower case, factory strings as given (stripped)."""
    s = setting.strip()
    return s.lower() if s.lower() in ALIASES or s.lower() == "auto" else s


def resolve(setting: str, n: int) -> str:
    """The fixed setting that `setting` means for `n` vectors: `auto` picks by size, any other is itself."""
    s = normalise(setting)
    if s != "auto":
        return s
    return "hnsw" if n >= AUTO_HNSW_FROM else "flat"


def factory_for(setting: str, n: int, dim: int) -> str:
    """The FAISS factory string of a setting for `n` vectors of `dim` dimensions."""
    s = resolve(setting, n)
    if s == "ivfpq":
        nlist = min(65_536, max(16, 2 ** round(math.log2(max(math.sqrt(n), 1)))))
        m = max((d for d in range(1, min(256, dim // 8) + 1) if dim % d == 0), default=1)
        return ALIASES[s].format(nlist=nlist, m=m)
    if s == "hnsw" and dim > 2 * HNSW_PCA:
        return f"PCA{HNSW_PCA},HNSW64"
    return ALIASES.get(s, s)


def auto_outgrown(setting: str, factory: str, n: int, dim: int) -> bool:
    """Whether an `auto` index built as `factory` should be rebuilt for `n` vectors: an exact one once they reach
    AUTO_HNSW_FROM, a graph once they fall below half of that (not at once: a collection near the threshold
    would be rebuilt by every other add and remove)."""
    if normalise(setting) != "auto":
        return False
    if factory == "Flat":
        return n >= AUTO_HNSW_FROM
    return n < AUTO_HNSW_FROM // 2 or factory != factory_for("auto", max(n, AUTO_HNSW_FROM), dim)


def describe_auto(n: int, dim: int) -> str:
    """What `auto` means, for `info`: its rule, and what it picks for `n` vectors."""
    pick = "exact (Flat)" if resolve("auto", n) == "flat" else f"hnsw ({factory_for('auto', n, dim)})"
    return f"exact below {AUTO_HNSW_FROM:,} vectors, hnsw from there on; {pick} for {n:,} vectors"


def check_setting(setting: str, dim: int) -> str:
    """Validate a setting (VectorIndexError if FAISS cannot build it) and return its canonical form."""
    import faiss  # deferred: 0.1-0.3 s, which a query by concept never needs

    s = normalise(setting)
    try:
        if not s:
            raise RuntimeError("empty")
        for n in (100_000,) if s != "auto" else (1, AUTO_HNSW_FROM):  # auto: both of its choices
            faiss.index_factory(dim, factory_for(s, n, dim), faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        reason = str(exc).strip().splitlines()[-1][:120] if str(exc).strip() else ""
        raise VectorIndexError(f"bad vector index {setting!r}: use auto, flat, hnsw, ivfpq or a FAISS index factory "
                               f"string ({reason})") from None
    return s


def check_matches(recorded: str | None, requested: str | None) -> None:
    """VectorIndexError when a requested setting differs from the one the index was built with."""
    if requested is None:
        return
    rec = normalise(recorded or LEGACY_SETTING)
    if normalise(requested) != rec:
        raise VectorIndexError(f"the index was built with vector index {rec!r}, not {requested!r}; to change it, "
                               f"run `mmindex rebuild --vector-index {requested}`")
