"""Video decoding speed and memory: frames/s and peak RSS on a long generated video, streamed.

    .venv/bin/python bench/video_decode.py [--minutes 4] [--size 320x240] [--fps 25]

Each configuration runs in a fresh process, so its peak RSS (ru_maxrss) is its own. The video is
made of the sample photos' shots (2 s each, cuts) repeated; the first run also measures a video a
quarter as long, to show that memory does not grow with the length.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path


def _make(path: Path, seconds: float, size: tuple[int, int], fps: int) -> int:
    """Encode a video of shots 2 s long, streaming frames into the encoder; return its frame count."""
    import av  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    from PIL import Image  # noqa: PLC0415

    from mmindex.samples import PHOTOS, photo_array  # noqa: PLC0415

    photos = [Image.fromarray(photo_array(n)).convert("RGB") for n in PHOTOS]
    n = int(seconds * fps)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = *size, "yuv420p"
        for k in range(n):
            shot, t = divmod(k, 2 * fps)
            img = photos[shot % len(photos)]
            w, h = img.size
            x = int((w // 4) * t / (2 * fps))  # a slow pan
            arr = np.asarray(img.resize(size, box=(x, 0, x + w * 3 // 4, h)))
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return n


def _run(mode: str, path: str, step: int) -> None:
    """Child process: one configuration; prints a JSON line."""
    from mmindex.config import IngestConfig  # noqa: PLC0415
    from mmindex.media import video  # noqa: PLC0415

    dc = types.SimpleNamespace(input_size=224, resize=256, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                               interpolation="bilinear")
    t0 = time.perf_counter()
    if mode == "analyse":
        shots = len(video.analyse(path, step).transitions) + 1
    else:
        shots = len(video.decode(path, "", os.stat(path), dc, IngestConfig(frame_step=step)).segments)
    print(json.dumps({"seconds": time.perf_counter() - t0, "shots": shots,
                      "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--size", default="320x240")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _run(args.child[0], args.child[1], int(args.child[2]))
        return
    size = tuple(int(v) for v in args.size.split("x"))
    folder = Path(tempfile.mkdtemp(prefix="video-bench-"))
    long, short = folder / "long.mp4", folder / "short.mp4"
    n_long = _make(long, args.minutes * 60, size, args.fps)
    n_short = _make(short, args.minutes * 15, size, args.fps)
    # The same video with its shots given as a TRECVID msb sidecar: no detection, keyframes by seeking.
    msb_video = folder / "msb.mp4"
    msb_video.symlink_to(long)
    shot_len = 2 * args.fps
    lines = [f"{s} {min(s + shot_len, n_long) - 1}\n" for s in range(0, n_long, shot_len)]
    (folder / "msb.msb").write_text("".join(lines))
    runs = [("analyse (pass 1 only)", "analyse", short, n_short, 1)]
    runs += [("analyse (pass 1 only)", "analyse", long, n_long, s) for s in (1, 2, 4)]
    runs += [("decode (detect + keyframes)", "decode", long, n_long, s) for s in (1, 4)]
    runs += [("decode (msb shots, seeking)", "decode", msb_video, n_long, 1)]
    print(f"video: {size[0]}x{size[1]}, {args.fps} fps, H.264; long = {n_long} frames, short = {n_short}")
    print("| what | video | frame step | shots | seconds | frames/s | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for label, mode, path, n, step in runs:
        out = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(step)],
                             capture_output=True, text=True, check=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        print(f"| {label} | {n / args.fps / 60:.1f} min | {step} | {r['shots']} | {r['seconds']:.1f} | "
              f"{n / r['seconds']:.0f} | {r['rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
