"""Classification and retrieval metrics: trec_eval's own code (pytrec_eval) where it has the measure, and
ours, checked in tests against scikit-learn and trec_eval, where it has none.

Conventions: higher score is better; a ranking is best first; ties are broken by input order (a
stable sort), so callers should break them deliberately if they matter.

- top_k_error: ILSVRC's metric, the share of items whose true class is not among the k best scored.
- average_precision: AP = (1/R)·Σ_{relevant at rank r} P@r, R = number of relevant items (all of them,
  not only those retrieved: an unretrieved relevant item counts as precision 0), as in trec_eval `map`.
- inferred_average_precision: infAP (Yilmaz & Aslam 2006), trec_eval's, the estimate TRECVID uses when
  only a random sample of the pool is judged; equal to AP when everything is judged.
- extended_inferred_average_precision: xinfAP (Yilmaz, Kanoulas & Aslam 2008), TRECVID's estimate when
  the pool is split into strata sampled at different rates (sample_eval); equal to AP when all is judged.
- precision_at_k, ndcg_at_k: trec_eval's `P_k` and `ndcg_cut_k` (gain = relevance, discount log2(r+1)).
- evaluate_run: trec_eval (pytrec_eval.RelevanceEvaluator) over a whole run: map, infAP, P_k, ndcg_cut_k.
AP (ours, in numpy) serves whole score matrices, and xinfAP is TRECVID's sample_eval, which no library has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

#: trec_eval's relevance value for a document in the pool that was not judged (a sampled-out item).
UNJUDGED = -1


def top_k_error(scores: np.ndarray, classes: np.ndarray, k: int = 1) -> float:
    """Share of rows of `scores` (N, C) whose true class (N,) is not among its k highest scores."""
    scores = np.asarray(scores)
    if len(scores) == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return float(1.0 - (top == np.asarray(classes)[:, None]).any(1).mean())


def ranking(scores: np.ndarray) -> np.ndarray:
    """Indices of `scores` best first (stable: equal scores keep input order)."""
    return np.argsort(-np.asarray(scores, np.float64), kind="stable")


def average_precision_ranked(relevant: Sequence[bool] | np.ndarray, num_relevant: int | None = None) -> float:
    """AP of a ranked list of relevance flags; `num_relevant` (default: the flags' count) includes unretrieved ones."""
    rel = np.asarray(relevant, bool)
    r = int(rel.sum()) if num_relevant is None else int(num_relevant)
    if r == 0:
        return float("nan")
    hits = np.cumsum(rel)
    ranks = np.flatnonzero(rel) + 1
    return float((hits[rel] / ranks).sum() / r)


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of ranking all items by `scores` (N,) against boolean `relevant` (N,); NaN with no relevant item."""
    order = ranking(scores)
    return average_precision_ranked(np.asarray(relevant, bool)[order])


def mean_average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """MAP over the columns (concepts) of (N, C) scores and relevance; concepts with no relevant item are left out."""
    aps = per_concept_ap(scores, relevant)
    valid = [a for a in aps if not np.isnan(a)]
    return float(np.mean(valid)) if valid else float("nan")


def per_concept_ap(scores: np.ndarray, relevant: np.ndarray) -> list[float]:
    """AP of each column of (N, C) scores against (N, C) boolean relevance."""
    scores, relevant = np.asarray(scores), np.asarray(relevant, bool)
    return [average_precision(scores[:, c], relevant[:, c]) for c in range(scores.shape[1])]


def precision_at_k(relevant_ranked: Sequence[bool] | np.ndarray, k: int) -> float:
    """P@k: relevant items among the first k, divided by k (a list shorter than k counts the missing as misses)."""
    return _trec_eval_ranked([int(bool(r)) for r in relevant_ranked], f"P.{k}", f"P_{k}")


def ndcg_at_k(gains_ranked: Sequence[int] | np.ndarray, k: int, all_gains: Sequence[int] | np.ndarray) -> float:
    """nDCG@k = DCG@k / ideal DCG@k, DCG = Σ_r gain_r / log2(r + 1); `all_gains` are every item's gains
    (the ideal ranking sorts them; the ranked items' gains are among them). Gains are trec_eval's integer
    relevance grades. 0 when no item has a positive gain."""
    ranked = [_grade(g) for g in gains_ranked]
    unretrieved = Counter(_grade(g) for g in all_gains)
    unretrieved.subtract(ranked)
    if any(n < 0 for n in unretrieved.values()):
        raise ValueError("ndcg_at_k: every ranked item's gain must be among all_gains")
    return _trec_eval_ranked(ranked, f"ndcg_cut.{k}", f"ndcg_cut_{k}", unretrieved.elements())


def inferred_average_precision(judgments_ranked: Sequence[int | None], num_relevant: int) -> float:
    """infAP of a ranked list (trec_eval `infAP`, used by TRECVID with sampled judgments).

    judgments_ranked: per retrieved item, 1 judged relevant, 0 judged non-relevant, `UNJUDGED` (-1) in
    the pool but not sampled for judging, None not in the pool. num_relevant: judged relevant items,
    retrieved or not. For a relevant item at rank k > 1 the expected precision above it is estimated from
    the judged sample: 1/k + ((k−1)/k)·(|pool above k| / (k−1))·((rel + ε) / (rel + nonrel + 2ε)).
    """
    if num_relevant <= 0:
        return float("nan")
    missing = num_relevant - sum(1 for j in judgments_ranked if j is not None and j > 0)
    return _trec_eval_ranked(judgments_ranked, "infAP", "infAP", [1] * max(missing, 0))


def _grade(g) -> int:
    if float(g) != int(g):
        raise ValueError(f"relevance grades are integers for trec_eval, got {g!r}")
    return int(g)


def _trec_eval_ranked(judgments: Sequence[int | None], measure: str, key: str, unretrieved=()) -> float:
    """One trec_eval measure of one ranked list: item i gets the score n − i, so that trec_eval keeps the
    order given; `judgments` are the items' qrels (None: not in the qrels), `unretrieved` the relevance
    of judged items the list does not hold."""
    n = len(judgments)
    run = {f"r{i:09d}": float(n - i) for i in range(n)}
    qrels = {f"r{i:09d}": int(j) for i, j in enumerate(judgments) if j is not None}
    qrels.update({f"u{i:09d}": int(r) for i, r in enumerate(unretrieved)})
    return _trec_eval({"q": run}, {"q": qrels}, {measure}, [key])["q"][key]


def _trec_eval(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
               measures: set[str], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """pytrec_eval over the queries of `qrels`; a query trec_eval leaves out (no judged or no retrieved
    document) scores 0, as trec_eval -c counts it."""
    import pytrec_eval  # here: its import costs ~70 ms that classification (top_k_error) does not need

    qrels = {str(q): {str(d): int(r) for d, r in judged.items()} for q, judged in qrels.items()}
    run = {q: {str(d): float(s) for d, s in run.get(q, {}).items()} for q in qrels}
    got = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run) if qrels else {}
    return {q: {k: float(got.get(q, {}).get(k, 0.0)) for k in keys} for q in qrels}


def extended_inferred_average_precision(ranked: Sequence[str], strata: Mapping[str, int],
                                        judged: Mapping[str, int]) -> float:
    """xinfAP of a ranked list of document ids, as TRECVID's sample_eval computes it.

    strata: stratum number of every pooled document (documents absent are not in the pool, and count
    as non-relevant); judged: relevance (> 0 relevant) of the documents sampled for judging. Each
    stratum's sampling rate is p_s = judged_s / pooled_s. Then R̂ = Σ_s relevant_s / p_s, and for a
    judged relevant document at rank k in stratum s, with r_t, n_t the judged relevant and non-relevant
    documents of stratum t ranked above k and |t above k| its pooled ones:
        E[P@k] = 1/k + (1/k)·Σ_t |t above k|·(r_t + ε)/(r_t + n_t + 2ε),
    and xinfAP = (1/R̂)·Σ E[P@k] / p_s. NaN when no document is judged relevant.
    """
    eps = 1e-5
    pooled: dict[int, int] = {}
    sampled: dict[int, int] = {}
    relevant: dict[int, int] = {}
    for d, s in strata.items():
        pooled[s] = pooled.get(s, 0) + 1
        if d in judged:
            sampled[s] = sampled.get(s, 0) + 1
            relevant[s] = relevant.get(s, 0) + (judged[d] > 0)
    rate = {s: sampled.get(s, 0) / n for s, n in pooled.items()}
    r_hat = sum(r / rate[s] for s, r in relevant.items() if r)
    if r_hat <= 0:
        return float("nan")
    above = dict.fromkeys(pooled, 0)  # pooled documents of each stratum above the current rank
    rel_above = dict.fromkeys(pooled, 0)
    nonrel_above = dict.fromkeys(pooled, 0)
    total = 0.0
    for i, d in enumerate(ranked):
        k = i + 1
        s = strata.get(d)
        if s is None:
            continue
        if judged.get(d, 0) > 0:
            expected = 1.0 + sum(above[t] * (rel_above[t] + eps) / (rel_above[t] + nonrel_above[t] + 2 * eps)
                                 for t in above if above[t])
            total += expected / k / rate[s]
        above[s] += 1
        if d in judged:
            if judged[d] > 0:
                rel_above[s] += 1
            else:
                nonrel_above[s] += 1
    return total / r_hat


def evaluate_run(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]],
                 ks: Sequence[int] = (5, 10)) -> dict[str, dict[str, float]]:
    """trec_eval's evaluation of a run {query: {doc: score}} against qrels {query: {doc: relevance}}.

    Per query (those in the qrels): map, infAP, P_k and ndcg_cut_k for k in `ks`. Documents are ranked
    by score, ties broken by document id descending, as trec_eval does. Relevance > 0 is relevant;
    `UNJUDGED` marks pooled but unjudged documents (infAP), documents absent from the qrels are unpooled.
    A query with no relevant or no retrieved document scores 0.
    """
    cuts = ",".join(str(int(k)) for k in ks)
    keys = ["map", "infAP", *(f"P_{k}" for k in ks), *(f"ndcg_cut_{k}" for k in ks)]
    measures = {"map", "infAP", f"P.{cuts}", f"ndcg_cut.{cuts}"} if ks else {"map", "infAP"}
    by_name = _trec_eval(run, qrels, measures, keys)
    return {q: by_name[str(q)] for q in qrels}
