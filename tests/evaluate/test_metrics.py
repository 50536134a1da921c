"""Metrics against reference implementations: scikit-learn and trec_eval (pytrec_eval), plus trec file io."""

from __future__ import annotations

import numpy as np
import pytest

from mmindex.errors import DataError
from mmindex.evaluate import metrics, reports, trec

sk = pytest.importorskip("sklearn.metrics")


def test_top_k_error_matches_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.random((500, 10))
    y = rng.integers(0, 10, 500)
    for k in (1, 3, 5):
        ref = 1 - sk.top_k_accuracy_score(y, scores, k=k, labels=range(10))
        assert metrics.top_k_error(scores, y, k) == pytest.approx(ref)


def test_ap_and_map_match_sklearn():
    rng = np.random.default_rng(1)
    scores = rng.random((300, 6))
    rel = rng.random((300, 6)) < 0.2
    for c in range(6):
        assert metrics.average_precision(scores[:, c], rel[:, c]) == pytest.approx(
            sk.average_precision_score(rel[:, c], scores[:, c]))
    assert metrics.mean_average_precision(scores, rel) == pytest.approx(
        sk.average_precision_score(rel, scores, average="macro"))
    assert np.isnan(metrics.average_precision(scores[:, 0], np.zeros(300, bool)))


def _random_run(seed: int, sample: float | None = None):
    rng = np.random.default_rng(seed)
    run, qrels = {}, {}
    for q in range(8):
        docs = [f"d{i:03d}" for i in range(120)]
        s = rng.random(120)
        run[f"q{q}"] = {d: float(v) for d, v in zip(docs, s, strict=True)}
        judged = {}
        for i, d in enumerate(docs):
            if rng.random() < 0.1:
                continue  # not in the pool
            r = int(rng.random() < 0.2 + 0.5 * s[i] ** 3)
            judged[d] = r if sample is None or rng.random() < sample else metrics.UNJUDGED
        if any(v > 0 for v in judged.values()):
            qrels[f"q{q}"] = judged
    return run, qrels


@pytest.mark.parametrize("sample", [None, 0.5])
def test_run_metrics_match_trec_eval(sample):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _random_run(3, sample)
    ours = metrics.evaluate_run(run, qrels, ks=(5, 10))
    ev = pytrec_eval.RelevanceEvaluator(qrels, {"map", "infAP", "P_5", "P_10", "ndcg_cut_5", "ndcg_cut_10"})
    ref = ev.evaluate(run)
    for q in qrels:
        for m in ("infAP", "P_5", "P_10", "ndcg_cut_5", "ndcg_cut_10") + (("map",) if sample is None else ()):
            assert ours[q][m] == pytest.approx(ref[q][m], abs=1e-4), (q, m)


def test_run_metrics_at_any_cutoff_and_for_queries_trec_eval_leaves_out():
    run, qrels = _random_run(4)
    qrels = {**qrels, "no relevant": {"d001": 0}, "not in the run": {"d001": 1}, "nothing judged": {}}
    run = {**run, "no relevant": {"d001": 0.5}}
    ours = metrics.evaluate_run(run, qrels, ks=(1, 3, 200))
    assert list(ours) == list(qrels)
    for q in ("no relevant", "not in the run", "nothing judged"):
        assert ours[q] == dict.fromkeys(["map", "infAP", "P_1", "P_3", "P_200", "ndcg_cut_1", "ndcg_cut_3",
                                         "ndcg_cut_200"], 0.0), q
    for q, judged in qrels.items():
        if q in run and any(r > 0 for r in judged.values()):
            ranked = sorted(run[q], key=lambda d: (run[q][d], d), reverse=True)
            flags = [judged.get(d, 0) > 0 for d in ranked]
            assert ours[q]["P_3"] == pytest.approx(sum(flags[:3]) / 3)
            assert ours[q]["P_200"] == pytest.approx(sum(flags) / 200)  # 120 documents: the rest count as misses
            assert ours[q]["map"] == pytest.approx(metrics.average_precision_ranked(
                flags, sum(r > 0 for r in judged.values())))


def test_ndcg_gains_are_integer_grades_among_all_gains():
    assert metrics.ndcg_at_k([2, 0, 1], 3, [0, 1, 2, 3]) == pytest.approx(
        (2 + 1 / np.log2(4)) / (3 + 2 / np.log2(3) + 1 / np.log2(4)))
    with pytest.raises(ValueError, match="integers"):
        metrics.ndcg_at_k([0.5], 1, [0.5])
    with pytest.raises(ValueError, match="among all_gains"):
        metrics.ndcg_at_k([2], 1, [1])


def test_infap_equals_ap_when_everything_is_judged():
    rel = [1, 0, 1, 1, 0, 0, 1]
    assert metrics.inferred_average_precision(rel, 4) == pytest.approx(metrics.average_precision_ranked(rel), abs=1e-4)


def test_xinfap_with_one_stratum_is_trec_evals_infap():
    pytrec_eval = pytest.importorskip("pytrec_eval")
    run, qrels = _random_run(5, sample=0.4)
    ref = pytrec_eval.RelevanceEvaluator(qrels, {"infAP"}).evaluate(run)
    for q, judged in qrels.items():
        ranked = [d for d, _ in sorted(run[q].items(), key=lambda kv: (kv[1], kv[0]), reverse=True)]
        strata = dict.fromkeys(judged, 1)  # everything in the qrels is pooled, in one stratum
        sampled = {d: r for d, r in judged.items() if r != metrics.UNJUDGED}
        assert metrics.extended_inferred_average_precision(ranked, strata, sampled) == pytest.approx(
            ref[q]["infAP"], abs=1e-4), q


def test_xinfap_is_ap_when_all_is_judged_and_unbiased_under_stratified_sampling():
    rng = np.random.default_rng(0)
    n = 1000
    scores = rng.random(n)
    rel = rng.random(n) < 0.02 + 0.3 * scores ** 4  # relevant items concentrate at the top
    ranked = [f"d{i}" for i in np.argsort(-scores, kind="stable")]
    truth = {f"d{i}": int(r) for i, r in enumerate(rel)}
    ap = metrics.average_precision_ranked([truth[d] for d in ranked])
    strata = {d: (1 if r < 100 else 2) for r, d in enumerate(ranked)}  # TRECVID: top 100 judged fully
    assert metrics.extended_inferred_average_precision(ranked, strata, truth) == pytest.approx(ap, abs=1e-4)
    xinf, inf = [], []
    for _ in range(200):
        sampled = {d: truth[d] for d in ranked if strata[d] == 1 or rng.random() < 0.1}
        xinf.append(metrics.extended_inferred_average_precision(ranked, strata, sampled))
        inf.append(metrics.inferred_average_precision([sampled.get(d, metrics.UNJUDGED) for d in ranked],
                                                      sum(v > 0 for v in sampled.values())))
    assert abs(np.mean(xinf) - ap) < 0.02  # the stratified estimate is about right on average...
    assert abs(np.mean(inf) - ap) > 2 * abs(np.mean(xinf) - ap)  # ...where infAP, blind to strata, is off


def test_precision_and_ndcg_by_hand():
    assert metrics.precision_at_k([1, 0, 1], 5) == pytest.approx(0.4)
    assert metrics.ndcg_at_k([0, 1], 2, [1, 0]) == pytest.approx((1 / np.log2(3)) / 1.0)
    assert metrics.ndcg_at_k([0, 0], 2, [0, 0]) == 0.0


def test_trec_files_round_trip_and_errors(tmp_path):
    run, qrels = _random_run(5)
    trec.write_run(tmp_path / "run.txt", run, tag="t")
    trec.write_qrels(tmp_path / "qrels.txt", qrels)
    back = trec.read_run(tmp_path / "run.txt")
    assert back.keys() == run.keys() and all(back[q][d] == pytest.approx(run[q][d]) for q in run for d in run[q])
    assert trec.read_qrels(tmp_path / "qrels.txt") == qrels
    first = (tmp_path / "run.txt").read_text().splitlines()[0].split()
    assert first[1] == "Q0" and first[3] == "1" and first[5] == "t"
    (tmp_path / "bad.txt").write_text("q1 Q0 d1 1 notanumber t\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        trec.read_run(tmp_path / "bad.txt")
    with pytest.raises(DataError, match="qrels line"):
        trec.read_qrels(tmp_path / "run.txt")


def test_confusion_matrix_and_png(tmp_path):
    cm = reports.confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2]), 3)
    np.testing.assert_array_equal(cm, sk.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2]))
    png = reports.plot_confusion(cm, ["a", "b", "c"], tmp_path / "cm.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
