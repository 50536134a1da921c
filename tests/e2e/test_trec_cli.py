"""Issue 22 (runs and labels) through the real CLI: `search --format trec` writes trec_eval run lines, `evaluate-run`
scores them with pytrec_eval against qrels made from known labels, and its MAP equals the library's own AP;
`import-labels` records a CSV or qrels file as judgments (the teaching issue's, one reader each) and teaches from
them, and the judgments go back out as qrels that the runs match.

The index holds 30 Fashion-MNIST test images, 10 of each of trouser, sneaker and bag (the committed subset, MIT): the
labels are their class folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmindex.evaluate.judgments import doc_id
from mmindex.evaluate.metrics import average_precision_ranked
from mmindex.evaluate.trec import read_qrels, read_run
from tests.conftest import run_cli, search_json
from tests.learn.conftest import TEST_NPZ, write_class_folders

CLASSES = ["trouser", "sneaker", "bag"]


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(index, {image path: class}) of the 30 images."""
    tmp = tmp_path_factory.mktemp("trec")
    folders = write_class_folders(TEST_NPZ, tmp / "images", [1, 7, 8])
    run_cli("add", str(folders), "--index", str(tmp / "idx"), "-q")
    labels = {str(p): p.parent.name for p in sorted(folders.rglob("*.png"))}
    assert sorted(set(labels.values())) == sorted(CLASSES) and len(labels) == 30
    return tmp / "idx", labels


@pytest.fixture
def index(labelled, tmp_path) -> Path:
    return Path(shutil.copytree(labelled[0], tmp_path / "idx"))


def write_qrels(path: Path, labels: dict[str, str]) -> Path:
    """Every image judged for every class: relevant when it is of that class."""
    path.write_text("".join(f"{c} 0 {doc_id(p)} {int(labels[p] == c)}\n" for c in CLASSES for p in sorted(labels)))
    return path


def test_runs_evaluated_by_trec_eval_match_the_library_ap(labelled, index, tmp_path):
    _, labels = labelled
    run = tmp_path / "run.txt"
    lines = []
    for c in CLASSES:  # query by example: the first image of the class; every image ranked
        example = next(p for p in sorted(labels) if labels[p] == c)
        out = run_cli("search", "--index", str(index), "--like", example, "-k", "30", "--format", "trec",
                      "--topic", c, "--run-name", "fm-like").stdout
        lines += out.splitlines()
    run.write_text("\n".join(lines) + "\n")
    first = lines[0].split()
    assert len(first) == 6 and first[0] == "trouser" and first[1] == "Q0" and first[3] == "1" and first[5] == "fm-like"
    ranked = read_run(run)
    assert set(ranked) == set(CLASSES) and all(len(docs) == 30 for docs in ranked.values())

    qrels = write_qrels(tmp_path / "qrels.txt", labels)
    r = json.loads(run_cli("evaluate-run", str(qrels), str(run), "--json", "-k", "5", "-k", "10").stdout)
    assert set(r["topics"]) == set(CLASSES) and r["run_topics_unjudged"] == []

    by_doc = {doc_id(p): labels[p] for p in labels}
    ours = {}
    for c in CLASSES:  # the library's AP over the run's own order (best first, as written)
        order = [line.split()[2] for line in lines if line.split()[0] == c]
        flags = [by_doc[d] == c for d in order]
        ours[c] = average_precision_ranked(flags, num_relevant=10)
        assert r["topics"][c]["map"] == pytest.approx(ours[c], abs=1e-4)
        assert r["topics"][c]["P_5"] == pytest.approx(sum(flags[:5]) / 5)
        assert r["topics"][c]["infAP"] == pytest.approx(ours[c], abs=1e-4)  # everything judged: infAP is AP
        assert 0 < r["topics"][c]["ndcg_cut_10"] <= 1
    assert r["all"]["map"] == pytest.approx(np.mean(list(ours.values())), abs=1e-4)
    assert r["all"]["map"] > 0.5  # a real ranking: far better than chance (about 1/3); 0.988 when written

    text = run_cli("evaluate-run", str(qrels), str(run)).stdout
    assert "MAP" in text and "nDCG@10" in text and f"{r['all']['map']:.4f}" in text.splitlines()[-1]


def test_bad_runs_and_options_are_refused(labelled, index, tmp_path):
    _, labels = labelled
    two = run_cli("search", "--index", str(index), "-c", "bag", "-c", "shoe", "--format", "trec", check=False)
    assert two.returncode == 2 and "--topic" in two.stderr
    both = run_cli("search", "--index", str(index), "-c", "bag", "--json", "--format", "trec", check=False)
    assert both.returncode == 2 and "two formats" in both.stderr
    one = run_cli("search", "--index", str(index), "-c", "mailbag", "-k", "3", "--format", "trec").stdout.split("\n")
    assert one[0].startswith("mailbag Q0 ")  # the single concept names the topic
    bad = tmp_path / "bad.txt"
    bad.write_text("bag Q0 x.png 1\n")
    proc = run_cli("evaluate-run", str(write_qrels(tmp_path / "q.txt", labels)), str(bad), check=False)
    assert proc.returncode == 1 and "bad.txt:1: a run line is" in proc.stderr


def test_import_labels_csv_and_qrels_feed_teaching_and_evaluation(labelled, index, tmp_path):
    _, labels = labelled
    csv = tmp_path / "labels.csv"
    csv.write_text("segment_path,start,end,concept,label\n" +
                   "".join(f"{p},,,my bag,{int(labels[p] == 'bag')}\n" for p in sorted(labels)[::2]))
    r = json.loads(run_cli("import-labels", str(csv), "--index", str(index), "--teach", "--json").stdout)
    assert (r["added"], r["unknown"], r["concepts"]) == (15, [], ["my bag"])
    assert r["taught"][0]["name"] == "my bag" and r["taught"][0]["training"]["judged_positive"] == sum(
        labels[p] == "bag" for p in sorted(labels)[::2]) and r["not_taught"] == []
    again = json.loads(run_cli("import-labels", str(csv), "--index", str(index), "--json").stdout)
    assert (again["added"], again["unchanged"]) == (0, 15)  # the same judgments: nothing duplicated

    # qrels in: the other half of the images, as trec_eval names them; one unjudged (-1) line is skipped
    qrels = tmp_path / "more.qrels"
    qrels.write_text("".join(f"my_bag 0 {doc_id(p)} {int(labels[p] == 'bag')}\n" for p in sorted(labels)[1::2])
                     + f"my_bag 0 {doc_id(sorted(labels)[1])}x -1\n")
    r = json.loads(run_cli("import-labels", str(qrels), "--index", str(index), "--json").stdout)
    assert (r["added"], r["skipped"], r["concepts"]) == (15, 1, ["my bag"])

    exported = tmp_path / "judged.qrels"  # the judgments out as qrels, a run of the taught concept scored on them
    run_cli("judgments", "export", "--index", str(index), "--format", "qrels", "-o", str(exported))
    assert sum(len(d) for d in read_qrels(exported).values()) == 30
    run = tmp_path / "run.txt"
    run.write_text(run_cli("search", "--index", str(index), "-c", "my bag", "-k", "30", "--format", "trec").stdout)
    assert set(read_run(run)) == {"my_bag"} and set(read_run(run)["my_bag"]) == set(read_qrels(exported)["my_bag"])
    result = json.loads(run_cli("evaluate-run", str(exported), str(run), "--json").stdout)
    hits = search_json(index, "-c", "my bag", "-k", "30")["hits"]
    flags = [labels[h["path"]] == "bag" for h in hits]
    assert result["all"]["map"] == pytest.approx(average_precision_ranked(flags, 10), abs=1e-4)
