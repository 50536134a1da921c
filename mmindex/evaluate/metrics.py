"""Classification and retrieval metrics, checked in tests against scikit-learn and trec_eval (pytrec_eval).

Conventions: higher score is better; a ranking is best first; ties are broken by input order (a
stable sort), so callers should break them deliberately if they matter.

- top_k_error: ILSVRC's metric, the share of items whose true class is not among the k best scored.
- average_precision: AP = (1/R)·Σ_{relevant at rank r} P@r, R = number of relevant items (all of them,
  not only those retrieved: an unretrieved relevant item counts as precision 0), as in trec_eval `map`.
- inferred_average_precision: infAP (Yilmaz & Aslam 2006) as trec_eval computes it, the estimate TRECVID
  uses when only a random sample of the pool is judged; equal to AP when everything is judged.
- extended_inferred_average_precision: xinfAP (Yilmaz, Kanoulas & Aslam 2008), TRECVID's estimate when
  the pool is split into strata sampled at different rates (sample_eval); equal to AP when all is judged.
- precision_at_k, ndcg_at_k: as trec_eval `P_k` and `ndcg_cut_k` (gain = relevance, discount log2(r+1)).
"""

from __future__ import annotations

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
    rel = np.asarray(relevant_ranked, bool)[:k]
    return float(rel.sum() / k)


def ndcg_at_k(gains_ranked: Sequence[float] | np.ndarray, k: int, all_gains: Sequence[float] | np.ndarray) -> float:
    """nDCG@k = DCG@k / ideal DCG@k, DCG = Σ_r gain_r / log2(r + 1); `all_gains` are every item's gains
    (the ideal ranking sorts them). 0 when no item has a positive gain."""
    g = np.asarray(gains_ranked, np.float64)[:k]
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.sort(np.asarray(all_gains, np.float64))[::-1][:k]
    idcg = float((ideal * disc[: len(ideal)]).sum())
    return float((g * disc[: len(g)]).sum() / idcg) if idcg > 0 else 0.0


def inferred_average_precision(judgments_ranked: Sequence[int | None], num_relevant: int) -> float:
    """infAP of a ranked list (trec_eval `infAP`, used by TRECVID with sampled judgments).

    judgments_ranked: per retrieved item, 1 judged relevant, 0 judged non-relevant, `UNJUDGED` (-1) in
    the pool but not sampled for judging, None not in the pool. num_relevant: judged relevant items.
    For a relevant item at rank k > 1 the expected precision above it is estimated from the judged
    sample: 1/k + ((k−1)/k)·(|pool above k| / (k−1))·((rel + ε) / (rel + nonrel + 2ε)).
    """
    eps = 1e-5  # trec_eval's INFAP_EPSILON
    if num_relevant <= 0:
        return float("nan")
    rel = nonrel = unjudged = 0
    total = 0.0
    for i, j in enumerate(judgments_ranked):
        if j is None:
            continue  # not in the pool: ranks below still count it
        if j == UNJUDGED:
            unjudged += 1
            continue
        if j > 0:
            if i == 0:
                total += 1.0
            else:
                total += 1.0 / (i + 1) + (i / (i + 1)) * ((rel + nonrel + unjudged) / i) * (
                    (rel + eps) / (rel + nonrel + 2 * eps))
            rel += 1
        else:
            nonrel += 1
    return total / num_relevant


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
    """trec_eval-style evaluation of a run {query: {doc: score}} against qrels {query: {doc: relevance}}.

    Per query (those in the qrels): map, infAP, P_k and ndcg_cut_k for k in `ks`. Documents are ranked
    by score, ties broken by document id descending, as trec_eval does. Relevance > 0 is relevant;
    `UNJUDGED` marks pooled but unjudged documents (infAP), documents absent from the qrels are unpooled.
    """
    out: dict[str, dict[str, float]] = {}
    for q, judged in qrels.items():
        docs = sorted(run.get(q, {}).items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
        num_rel = sum(1 for r in judged.values() if r > 0)
        rel_flags = [judged.get(d, 0) > 0 for d, _ in docs]
        gains = [max(judged.get(d, 0), 0) for d, _ in docs]
        m = {"map": average_precision_ranked(rel_flags, num_rel) if num_rel else 0.0,
             "infAP": inferred_average_precision([judged.get(d) for d, _ in docs], num_rel) if num_rel else 0.0}
        for k in ks:
            m[f"P_{k}"] = precision_at_k(rel_flags, k)
            m[f"ndcg_cut_{k}"] = ndcg_at_k(gains, k, [max(r, 0) for r in judged.values()])
        out[q] = m
    return out
