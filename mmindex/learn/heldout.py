"""`evaluate`: a detector bundle on a labelled set — ILSVRC top-k error, AP/MAP, infAP, P@k, nDCG@k,
a confusion matrix, and trec_eval run/qrels files.

Each label is a query that ranks every image of the set by the label's score; an image is relevant to
a label when its target is > 0.5. With `sample` (a fraction in (0, 1]) the judgments are sampled as
TRECVID does (a random share of the pool is judged, the rest is marked unjudged, -1) and infAP and
xinfAP are reported beside the exact AP, to show the estimates; with `judge_top` the top of each
ranking is judged in full (a first stratum), which xinfAP accounts for and infAP does not. An imported
qrels file (`qrels_in`) is used as is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from mmindex.evaluate import metrics, reports, trec
from mmindex.learn import data
from mmindex.learn.checkpoint import load_bundle
from mmindex.learn.train import prepare_inputs


def _doc_ids(ds: data.Dataset) -> list[str]:
    out = []
    for i, s in enumerate(ds.sources):
        out.append(re.sub(r"\s+", "_", s) if isinstance(s, str) else f"{i:06d}")
    return out


def evaluate_detector(bundle_path: str | os.PathLike, data_spec: str, *, confusion_png: str | None = None,
                      run_out: str | None = None, qrels_out: str | None = None, qrels_in: str | None = None,
                      sample: float | None = None, judge_top: int = 0, ks: tuple[int, ...] = (5, 10), seed: int = 0,
                      progress=None) -> dict:
    """Evaluate a detector on `data_spec`; returns a JSON-able report. `DataError` / `DetectorError` on bad input."""
    bundle = load_bundle(bundle_path)
    ds = data.load_dataset(data_spec, bundle.labels)
    x, ds, _ = prepare_inputs(bundle.config, ds, progress, expect_weights=bundle.weights_id)
    scores = bundle.detector.scores(x).numpy()
    relevant = ds.targets > 0.5
    aps = metrics.per_concept_ap(scores, relevant)
    report: dict = {"detector": bundle.name, "data": str(data_spec), "images": len(ds), "labels": bundle.labels,
                    "skipped": [list(s) for s in ds.skipped]}
    if not ds.multilabel:
        report["top1_error"] = metrics.top_k_error(scores, ds.classes, 1)
        report["top5_error"] = metrics.top_k_error(scores, ds.classes, min(5, len(bundle.labels)))
        if confusion_png:
            cm = reports.confusion_matrix(ds.classes, scores.argmax(1), len(bundle.labels))
            reports.plot_confusion(cm, bundle.labels, confusion_png, f"{bundle.name} on {Path(str(data_spec)).name}")
            report["confusion_matrix"] = cm.tolist()
            report["confusion_png"] = str(confusion_png)
    report["ap"] = {lab: (None if np.isnan(a) else a) for lab, a in zip(bundle.labels, aps, strict=True)}
    report["map"] = metrics.mean_average_precision(scores, relevant)

    docs = _doc_ids(ds)
    run = {lab: {d: float(scores[i, c]) for i, d in enumerate(docs)} for c, lab in enumerate(bundle.labels)}
    qrels = {lab: {d: int(relevant[i, c]) for i, d in enumerate(docs)} for c, lab in enumerate(bundle.labels)
             if relevant[:, c].any()}
    per_query = metrics.evaluate_run(run, qrels, ks)
    for k in ks:
        report[f"P@{k}"] = float(np.mean([m[f"P_{k}"] for m in per_query.values()]))
        report[f"nDCG@{k}"] = float(np.mean([m[f"ndcg_cut_{k}"] for m in per_query.values()]))
    judged = None
    if qrels_in:
        judged = trec.read_qrels(qrels_in)
    elif sample is not None and sample < 1.0:
        # TRECVID's stratified sampling: each ranking's top `judge_top` items are all judged (stratum 1),
        # the rest at rate `sample` (stratum 2); xinfAP weighs each stratum by its rate, infAP cannot.
        rng = np.random.default_rng(seed)
        judged, xinf = {}, []
        for q, j in qrels.items():
            ranked = sorted(run[q], key=run[q].get, reverse=True)
            top = set(ranked[:judge_top])
            judged[q] = {d: (r if d in top or rng.random() < sample else metrics.UNJUDGED) for d, r in j.items()}
            strata = {d: 1 if d in top else 2 for d in j}
            xinf.append(metrics.extended_inferred_average_precision(
                ranked, strata, {d: r for d, r in judged[q].items() if r != metrics.UNJUDGED}))
        report["xinfAP"] = float(np.nanmean(xinf)) if not np.isnan(xinf).all() else float("nan")
        report["judged_top"] = judge_top
    if judged is not None:
        sampled = metrics.evaluate_run(run, judged, ks)
        report["infAP"] = float(np.mean([m["infAP"] for m in sampled.values()])) if sampled else float("nan")
        report["judged_fraction"] = sample
    if run_out:
        trec.write_run(run_out, run, tag=bundle.name)
    if qrels_out:
        trec.write_qrels(qrels_out, judged if judged is not None else qrels)
    return report
