"""`mmindex add --device cuda` end to end on a GPU, against its parts measured alone in the same run.

    python bench/gpu_ingest.py [--images 10000] [--batch 128] [--size 640x480]

On a machine with a CUDA GPU (ONNX Runtime's GPU build, or PyTorch's CUDA build for the torch backend):
  - the model alone on the GPU, per backend that can run there (ONNX Runtime's CUDA provider, PyTorch): img/s;
  - decoding alone in the process pool `add` uses on a GPU (one process per core): img/s;
  - `mmindex add --device cuda` as a fresh process, per backend: img/s end to end (model load included), and
    the GPU's utilisation sampled by nvidia-smi every 200 ms while it runs (mean and median);
  - agreement with `--device cpu` on the first 256 photos: the largest difference of an embedding.
The slower of "model alone" and "decoding alone" is where the time goes. Without a GPU it says so and exits 0.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from mmindex.config import IngestConfig
from mmindex.extract.reader import read_all
from mmindex.media.scan import scan
from mmindex.models import devices
from mmindex.models.loader import LazyModel
from mmindex.samples import write_variants


def backends() -> list[str]:
    """The runtimes that can use a GPU here."""
    found = ["onnx"] if devices.CUDA_PROVIDER in ort.get_available_providers() else []
    if importlib.util.find_spec("torch") is not None:  # PyTorch is the `train` extra's
        import torch

        found += ["torch"] if torch.cuda.is_available() else []
    return found


def gpu_utilisation(command: list[str]) -> tuple[float, list[float]]:
    """Run `command`, sampling the GPU's utilisation (%) meanwhile: (wall seconds, samples)."""
    smi = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                            "-lms", "200"], stdout=subprocess.PIPE, text=True)
    t = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - t
    smi.terminate()
    samples = [float(line.split(",")[0]) for line in smi.communicate()[0].split() if line.strip()]
    return wall, samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", default="640x480")
    args = ap.parse_args()
    found = backends()
    if not found:
        print("no GPU here for ONNX Runtime (its GPU build, onnxruntime-gpu) or PyTorch: nothing to measure")
        return
    size = tuple(int(v) for v in args.size.lower().split("x"))
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        paths = write_variants(tmp / "photos", args.images, size=size)
        rows = []
        dc = LazyModel("efficientnet_lite0").data_config
        t = time.perf_counter()
        n = sum(1 for _ in read_all(list(scan([tmp / "photos"])), {}, dc, IngestConfig(batch_size=args.batch),
                                    processes=cores))
        rows.append((f"decoding alone, {cores} processes", f"{n / (time.perf_counter() - t):.0f} img/s"))
        x = np.random.default_rng(0).standard_normal((args.batch, 3, dc.input_size, dc.input_size), np.float32)
        for backend in found:
            runtime = LazyModel("efficientnet_lite0", backend=backend, device="cuda").runtime
            runtime.run(x)  # warm-up: CUDA context, kernels chosen
            t, reps = time.perf_counter(), 20
            for _ in range(reps):
                runtime.run(x)
            rows.append((f"model alone, {backend} on {runtime.device}, batch {args.batch}",
                         f"{reps * args.batch / (time.perf_counter() - t):.0f} img/s"))
            wall, util = gpu_utilisation([sys.executable, "-m", "mmindex.cli", "add", str(tmp / "photos"), "-q",
                                          "--index", str(tmp / f"idx-{backend}"), "--runtime", backend,
                                          "--device", "cuda", "--batch-size", str(args.batch)])
            rows.append((f"**mmindex add --device cuda --runtime {backend}**, end to end",
                         f"**{len(paths) / wall:.0f} img/s**, GPU busy {np.mean(util or [0]):.0f}% mean, "
                         f"{np.median(util or [0]):.0f}% median"))
        frames = np.stack([d.segments[0].frames[0] for _, d in read_all(list(scan(paths[:256])), {}, dc,
                                                                          IngestConfig())])
        (p_cpu, e_cpu), (p_gpu, e_gpu) = (LazyModel("efficientnet_lite0", device=d).runtime.run(frames)
                                          for d in ("cpu", "cuda"))
        rows.append(("cuda vs cpu on 256 photos: largest embedding difference, top-1 agreement",
                     f"{np.abs(e_cpu - e_gpu).max():.2e}, {np.mean(p_cpu.argmax(1) == p_gpu.argmax(1)):.3f}"))
    print(f"{len(paths)} JPEGs {args.size}, {cores} cores, backends on the GPU: {', '.join(found)}")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
