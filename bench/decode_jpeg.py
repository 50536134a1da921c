"""JPEG decoding + preprocessing per image, by decoder and photo size, and what it changes for the model.

    python bench/decode_jpeg.py [--photos DIR] [--imagenet DIR] [--n 24] [--reps 3]

All in one run, on the same machine, one thread (CPU time of this process, so a decoder's own threads count):
  decoders: Pillow as mmindex used it before (draft by 1/2, 1/4, 1/8 when a JPEG allows it); Pillow decoding the
    full image; mmindex now (libjpeg-turbo through simplejpeg, scaled by M/8, `media/images.open_image`);
    simplejpeg with its fast DCT and upsampling; torchvision's `decode_jpeg` (full size: it cannot scale).
    Each one's time includes the preprocessing to the model's input (resize, centre crop, normalise).
  sets: 640x480, 12 MP (4000x3000) and 24 MP (6000x4000) JPEGs of quality 90, made from the bundled sample photos
    (upscaled: smooth pictures that compress well, the easy case) or from the natural photos of --photos DIR, and
    the --photos files as they are ("as shot").
  the model: top-1 agreement and embedding cosine of each decoder against Pillow's full decode, per set; the top-1
    class of each sample photo at its own size and at 12 MP, before and after; with --imagenet DIR (files named
    like `n01440764_tench.JPEG`), ImageNet top-1 accuracy with each decoder.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from mmindex.concepts import Vocabulary
from mmindex.config import DEFAULT_MODEL
from mmindex.media.images import DRAFT_MARGIN, open_image, preprocess
from mmindex.models import Runtime, create_model
from mmindex.samples import PHOTOS, photo_array, write_variants

MAX_PIXELS = 200_000_000
UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}
SIZES = {"12 MP (4000x3000)": (4000, 3000), "24 MP (6000x4000)": (6000, 4000)}


def decoders(dc) -> dict[str, Callable[[bytes], np.ndarray]]:
    """Each decoder: JPEG bytes -> the model's (3, S, S) float32 input."""
    def prep(img: Image.Image, data: bytes | None = None) -> np.ndarray:
        """Preprocessed; upright first when `data` (the file) has an EXIF orientation."""
        if data is not None:
            orientation = Image.open(io.BytesIO(data)).getexif().get(0x0112)
            img = img.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else img
        return preprocess(img, dc.input_size, dc.resize, dc.mean, dc.std, dc.interpolation)

    def pillow(data: bytes, draft: bool) -> np.ndarray:  # mmindex's open_image before issue 20
        img = Image.open(io.BytesIO(data))
        if draft:
            img.draft("RGB", (dc.resize, dc.resize))
        img.load()
        return prep(ImageOps.exif_transpose(img).convert("RGB"))

    def fast(data: bytes) -> np.ndarray:
        floor = int(np.ceil(dc.resize * DRAFT_MARGIN))  # as mmindex's
        pixels = simplejpeg.decode_jpeg(data, "RGB", fastdct=True, fastupsample=True, min_height=floor,
                                        min_width=floor)
        return prep(Image.fromarray(pixels), data)

    out = {
        "Pillow, draft 1/2^k (mmindex before)": lambda d: pillow(d, True),
        "Pillow, full decode": lambda d: pillow(d, False),
        "**simplejpeg, M/8 (mmindex now)**": lambda d: prep(open_image(d, MAX_PIXELS, draft_size=dc.resize)),
        "simplejpeg, M/8, fast DCT + upsampling": fast,
    }
    try:
        import torch
        from torchvision.io import decode_jpeg

        def tv(data: bytes) -> np.ndarray:
            t = decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
            return prep(Image.fromarray(t.permute(1, 2, 0).numpy()), data)
        out["torchvision decode_jpeg (full size)"] = tv
    except ImportError:  # an optional baseline: said, and the other decoders still run
        print("torchvision is not installed: its decode_jpeg row is skipped")
    return out


def jpeg(img: Image.Image, size: tuple[int, int] | None = None, quality: int = 90) -> bytes:
    """`img` centre-cropped to the aspect of `size` and resized to it (Lanczos), as a JPEG (4:2:0)."""
    if size:
        w, h = img.size
        aspect = size[0] / size[1]
        cw, ch = (w, round(w / aspect)) if w / h < aspect else (round(h * aspect), h)
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch)).resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def natural_photos(folder: str | None, n: int) -> list[tuple[str, Image.Image]]:
    """The --photos folder's first `n` JPEGs (upright), else the bundled sample photos."""
    if folder is None:
        return [(name, Image.fromarray(photo_array(name)).convert("RGB")) for name in PHOTOS]
    paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[:n]
    return [(p.name, open_image(p.read_bytes(), MAX_PIXELS)) for p in paths]


def make_sets(args, tmp: Path) -> dict[str, list[bytes]]:
    sources = natural_photos(args.photos, args.n)
    origin = "--photos" if args.photos else "sample photos, upscaled"
    sets = {"640x480 (crops of the sample photos)": [p.read_bytes() for p in write_variants(tmp / "v", args.n)]}
    for label, size in SIZES.items():
        sets[f"{label}, {origin}"] = [jpeg(img, size) for _, img in sources]
    if args.photos:
        paths = sorted(p for p in Path(args.photos).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[: args.n]
        sets["--photos as shot"] = [p.read_bytes() for p in paths]
    return sets


def core_ms(fn: Callable[[bytes], np.ndarray], data: list[bytes], reps: int) -> float:
    """Median over `reps` passes of the CPU time per image, in ms."""
    fn(data[0])
    times = []
    for _ in range(reps):
        c = time.process_time()
        for d in data:
            fn(d)
        times.append((time.process_time() - c) / len(data) * 1000)
    return float(np.median(times))


def agreement(runtime: Runtime, ref: np.ndarray, x: np.ndarray) -> tuple[float, float]:
    """Top-1 agreement and the lowest embedding cosine of inputs `x` against inputs `ref`."""
    p0, e0 = runtime.run(ref)
    p1, e1 = runtime.run(x)
    return float(np.mean(p0.argmax(1) == p1.argmax(1))), float(np.min(np.sum(e0 * e1, 1)))


def megapixels(data: list[bytes]) -> float:
    return float(np.mean([np.prod(Image.open(io.BytesIO(d)).size) for d in data]) / 1e6)


def speed_table(sets, decs, runtime, reps) -> None:
    names = list(decs)
    header = "| set | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)
    print("core-ms per image, decode + preprocess (median of the passes):\n")
    print("| set | images | MP | MB/file | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    quality = {}
    for label, data in sets.items():
        mb = np.mean([len(d) for d in data]) / 1e6
        cells = [f"{core_ms(decs[n], data, reps):.2f}" for n in names]
        print(f"| {label} | {len(data)} | {megapixels(data):.1f} | {mb:.2f} | " + " | ".join(cells) + " |", flush=True)
        ref = np.stack([decs["Pillow, full decode"](d) for d in data])
        quality[label] = {n: agreement(runtime, ref, np.stack([decs[n](d) for d in data])) for n in names}
    print("\ntop-1 agreement / lowest embedding cosine, against Pillow's full decode:\n")
    print(header)
    for label, row in quality.items():
        print(f"| {label} | " + " | ".join(f"{a:.3f} / {c:.4f}" for a, c in row.values()) + " |")


def sample_photo_classes(decs, runtime) -> None:
    classes = Vocabulary.imagenet().classes
    before, now = decs["Pillow, draft 1/2^k (mmindex before)"], decs["**simplejpeg, M/8 (mmindex now)**"]
    print("| photo | own size: before | own size: now | 12 MP: before | 12 MP: now |")
    print("|---|---|---|---|---|")
    for name in PHOTOS:
        img = Image.fromarray(photo_array(name)).convert("RGB")
        own, big = jpeg(img, quality=92), jpeg(img, SIZES["12 MP (4000x3000)"])
        probs, _ = runtime.run(np.stack([before(own), now(own), before(big), now(big)]))
        cells = [f"{classes[i].name} {p[i]:.2f}" for p, i in zip(probs, probs.argmax(1), strict=True)]
        print(f"| {name} | " + " | ".join(cells) + " |")


def imagenet_accuracy(folder: str, decs, runtime, size: tuple[int, int] | None = None) -> None:
    """Top-1 accuracy per decoder on ImageNet-named photos, as they are or resized to `size` (quality 90)."""
    index = {c.id: i for i, c in enumerate(Vocabulary.imagenet().classes)}
    paths = sorted(p for p in Path(folder).iterdir() if p.name[:9] in index)
    labels = np.array([index[p.name[:9]] for p in paths])
    data = [p.read_bytes() if size is None else jpeg(open_image(p.read_bytes(), MAX_PIXELS), size) for p in paths]
    shown = "as they are" if size is None else f"resized to {size[0]}x{size[1]}"
    print(f"\nImageNet top-1 accuracy on {len(paths)} labelled photos, {shown}:\n")
    print("| decoder | top-1 accuracy | agreement with Pillow full |")
    print("|---|---|---|")
    ref = None
    for name in ("Pillow, full decode", "Pillow, draft 1/2^k (mmindex before)", "**simplejpeg, M/8 (mmindex now)**"):
        top1 = np.concatenate([runtime.run(np.stack([decs[name](d) for d in data[i:i + 64]]))[0].argmax(1)
                               for i in range(0, len(data), 64)])
        ref = top1 if ref is None else ref
        print(f"| {name} | {np.mean(top1 == labels):.3f} | {np.mean(top1 == ref):.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--photos", help="a folder of natural JPEG photos (the bigger the better); default: the samples")
    ap.add_argument("--imagenet", help="a folder of ImageNet photos named WNID_*.JPEG, for top-1 accuracy")
    ap.add_argument("--imagenet-size", help="WIDTHxHEIGHT: also measure the --imagenet photos resized to it")
    ap.add_argument("--n", type=int, default=24, help="images per set")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)  # torchvision's notes on non-writable buffers
    runtime = Runtime(create_model(args.model), backend="onnx", threads=1)
    decs = decoders(runtime.backbone.data_config)
    print(f"model {args.model}, load average at the start {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)\n")
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(args, Path(tmp))
        speed_table(sets, decs, runtime, args.reps)
    print("\nThe sample photos' top-1 class:\n")
    sample_photo_classes(decs, runtime)
    if args.imagenet:
        imagenet_accuracy(args.imagenet, decs, runtime)
        if args.imagenet_size:
            size = tuple(int(v) for v in args.imagenet_size.lower().split("x"))
            imagenet_accuracy(args.imagenet, decs, runtime, size)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
