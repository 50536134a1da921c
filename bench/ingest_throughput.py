"""End-to-end `mmindex add` throughput against the naive loop and the machine's CPU bound.

    python bench/ingest_throughput.py [--images 1000] [--batch 32] [--size 640x480 | --size 4000x3000]
                                      [--precision fp32 | --precision int8]

All in one run, on the same machine:
  (a) the naive loop a user would write: PIL decode + preprocess, timm eager PyTorch, batch 32;
  (b) the CPU bound: cores ÷ (decode+preprocess core-seconds per image + model core-seconds per
      image), each part measured alone (CPU time of this process, so threads are counted);
  mmindex: `mmindex add` run as a fresh process on the folder (model loading included), and its peak RSS.
The ONNX export is made (and cached) before timing; a first `add` always pays it once.
The photos are crops of the sample photos resized to --size (4000x3000: 12 MP, upscaled, so smoother than a
camera's and smaller files). Decoding is measured three ways: mmindex's decoder (libjpeg-turbo through simplejpeg,
scaled by M/8 while decoding), the same with no scaling, and Pillow with its draft (mmindex before issue 20).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from mmindex.config import DEFAULT_MODEL
from mmindex.media.images import open_image, preprocess
from mmindex.models import Runtime, create_model
from mmindex.samples import write_variants


def cpu_time() -> float:
    t = os.times()
    return t.user + t.system


def prep(path: Path, dc, draft: bool) -> np.ndarray:
    img = open_image(path.read_bytes(), 89_478_485, draft_size=dc.resize if draft else None)
    return preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)


def prep_pillow(path: Path, dc) -> np.ndarray:
    """mmindex's decoding before issue 20: Pillow, draft by 1/2, 1/4 or 1/8, exif_transpose."""
    img = Image.open(path)
    img.draft("RGB", (dc.resize, dc.resize))
    img.load()
    return preprocess(ImageOps.exif_transpose(img).convert("RGB"), dc.input_size, dc.resize, dc.mean, dc.std,
                      dc.interpolation)


def decode_costs(paths: list[Path], dc) -> tuple[list[np.ndarray], dict[str, float]]:
    """Core-seconds per image of each decoder (two passes each, the faster kept), and mmindex's frames."""
    decoders = {"mmindex (simplejpeg, M/8)": lambda p: prep(p, dc, draft=True),
                "simplejpeg, no scaling": lambda p: prep(p, dc, draft=False),
                "Pillow draft (before issue 20)": lambda p: prep_pillow(p, dc)}
    costs, frames = {}, []
    for name, fn in decoders.items():
        passes = []
        for _ in range(2):
            c = cpu_time()
            out = [fn(p) for p in paths]
            passes.append((cpu_time() - c) / len(paths))
        costs[name] = min(passes)
        frames = frames or out  # the first decoder's: mmindex's
    return frames, costs


def naive_loop(paths: list[Path], backbone, batch: int) -> float:
    """What a user writes first: decode, preprocess, stack, eager forward; one thing after another."""
    dc = backbone.data_config
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            x = []
            for p in paths[i : i + batch]:
                with Image.open(p) as im:
                    x.append(preprocess(im.convert("RGB"), dc.input_size, dc.resize, dc.mean, dc.std,
                                        dc.interpolation))
            backbone(torch.from_numpy(np.stack(x)))
    return len(paths) / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the photos (4000x3000: 12 MP)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"], help="mmindex's model (`add --precision`)")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_variants(tmp / "photos", args.images, size=size)
        backbone = create_model(args.model).eval()
        runtime = Runtime(backbone, backend="onnx", precision=args.precision)  # exports and caches the model once
        dc = backbone.data_config

        # (a) the naive loop, on a subset (it is slow)
        sub = paths[: min(len(paths), 256 if size[0] * size[1] < 4_000_000 else 64)]
        c = cpu_time()
        naive = naive_loop(sub, backbone, 32)
        naive_cs = (cpu_time() - c) / len(sub)

        # (b) the parts alone, in core-seconds per image
        n_dec = min(len(paths), 300 if size[0] * size[1] < 4_000_000 else 64)
        frames, decode = decode_costs(paths[:n_dec], dc)
        decode_cs = decode["mmindex (simplejpeg, M/8)"]
        x = np.stack(frames[: args.batch])
        runtime.run(x)  # warm-up
        reps = max(1, 256 // args.batch)
        c, t = cpu_time(), time.perf_counter()
        for _ in range(reps):
            runtime.run(x)
        model_cs = (cpu_time() - c) / (reps * args.batch)
        model_alone = reps * args.batch / (time.perf_counter() - t)
        bound = cores / (decode_cs + model_cs)

        # draft-mode decoding must not change what the model says
        p_draft, _ = runtime.run(np.stack(frames[:64]))
        p_full, _ = runtime.run(np.stack([prep(p, dc, draft=False) for p in paths[:64]]))
        top5 = lambda p: np.argsort(-p, axis=1)[:, :5]  # noqa: E731
        agree1 = float(np.mean(p_draft.argmax(1) == p_full.argmax(1)))
        overlap5 = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5(p_draft), top5(p_full), strict=True)]))

        # mmindex add, end to end, as a user runs it
        env = {**os.environ}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmindex.cli", "add", str(tmp / "photos"), "--index", str(tmp / "idx"),
                        "-q", "--batch-size", str(args.batch), "--model", args.model, "--precision", args.precision],
                       check=True, env=env)
        wall = time.perf_counter() - t
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU time of `mmindex add` (all its threads, start-up included): what the load of other jobs changes least
        add_cs = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / len(paths)
        add_rate = len(paths) / wall
        mb = np.mean([p.stat().st_size for p in paths[:n_dec]]) / 1e6
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

    print(f"model {args.model}, {len(paths)} JPEGs {args.size} ({mb:.2f} MB each), batch {args.batch}, {cores} cores, "
          f"runtime {runtime.backend} {args.precision}, load average {os.getloadavg()[0]:.1f}")
    print("| measure | value |")
    print("|---|---|")
    print(f"| (a) naive loop (PIL + timm eager, batch 32), {len(sub)} images | {naive:.1f} img/s |")
    for name, cost in decode.items():
        print(f"| decode+preprocess alone, {name} | {cost * 1000:.1f} core-ms/img |")
    print(f"| model alone ({runtime.backend}) | {model_cs * 1000:.1f} core-ms/img ({model_alone:.1f} img/s wall) |")
    print(f"| (b) CPU bound = cores / (decode + model) | {bound:.1f} img/s |")
    print(f"| **mmindex add, end to end** (fresh process, model load included) | **{add_rate:.1f} img/s** |")
    print(f"| `mmindex add`'s own CPU time (all threads, start-up included) | {add_cs * 1000:.1f} core-ms/img "
          f"= {cores / add_cs:.1f} img/s on {cores} idle cores |")
    print(f"| ratio to (a) | {add_rate / naive:.2f}x |")
    print(f"| ratio to (a) in CPU time per image ((a): {naive_cs * 1000:.1f} core-ms/img) | {naive_cs / add_cs:.2f}x |")
    print(f"| fraction of (b) | {add_rate / bound:.0%} |")
    print(f"| peak RSS of `mmindex add` | {peak_mb:.0f} MB |")
    print(f"| M/8 vs full decode: top-1 agreement / top-5 overlap (64 images) | {agree1:.3f} / {overlap5:.3f} |")


if __name__ == "__main__":
    main()
