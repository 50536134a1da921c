"""The install without extras against the full one (issue 22, item 7): size and time in fresh venvs, then the light
install used end to end (add, search, serve) on the sample photos.

    python bench/light_install.py [--workdir DIR] [--keep]

Two fresh venvs (`python3 -m venv`) in the same run: `pip install .` (no extras: ONNX Runtime, no PyTorch) and
`pip install '.[text]'` (PyTorch, timm, transformers and MiniLM: what `pip install .` installed before the train and
text extras), torch and torchvision pinned as the Makefile pins them. Size is the venv's disk use (`du`), time the
wall time of the pip command. Then, with only the light venv's `mmindex` and a fresh model cache: `add` on the
sample photos (written by this interpreter, which needs mmindex[samples]), two searches, and `serve` answering a
search over HTTP. Needs the network or a local package index, and a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = ["torch==2.14.1", "torchvision==0.29.1"]  # the Makefile's pins: the releases on this machine's disk


def du_mb(path: Path) -> float:
    out = subprocess.run(["du", "-s", "--block-size=1K", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0]) / 1024


def install(venv: Path, source: Path, *requirements: str) -> float:
    """A fresh venv with `requirements` installed (`.` is `source`); the pip command's wall time."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    start = time.perf_counter()
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *requirements],
                   check=True, cwd=source)
    return time.perf_counter() - start


def run(venv: Path, *args: str, env: dict) -> tuple[str, float]:
    start = time.perf_counter()
    proc = subprocess.run([str(venv / "bin" / "mmindex"), *args], capture_output=True, text=True, env=env,
                          timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"mmindex {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout, time.perf_counter() - start


def serve_once(venv: Path, index: Path, env: dict) -> tuple[dict, float]:
    """Start `mmindex serve`, time it to its first answer to a search, stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.perf_counter()
    proc = subprocess.Popen([str(venv / "bin" / "mmindex"), "serve", "--index", str(index), "--port", str(port),
                             "--no-access-log"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        url = f"http://127.0.0.1:{port}/api/search?concept=espresso&k=3"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.load(response), time.perf_counter() - start
            except OSError:
                if proc.poll() is not None or time.perf_counter() - start > 120:
                    raise SystemExit("mmindex serve did not answer") from None
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=None, help="where the venvs go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the venvs")
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mmindex-light-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        # A copy of the tree: pip's in-tree build leaves build/ and *.egg-info behind, which would shadow the checkout
        source = work / "src"
        shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "site",
                                                                    "man", "__pycache__", ".*_cache"))
        light_s = install(work / "light", source, ".")
        full_s = install(work / "full", source, *TORCH, ".[text]")
        light_mb, full_mb = du_mb(work / "light"), du_mb(work / "full")
        torch_free = subprocess.run([str(work / "light" / "bin" / "python"), "-c", "import torch"],
                                    capture_output=True).returncode != 0
        print(f"{'install':<28}{'size MB':>10}{'pip s':>8}")
        print(f"{'pip install . (light)':<28}{light_mb:>10.0f}{light_s:>8.1f}")
        print(f"{'pip install .[text] (full)':<28}{full_mb:>10.0f}{full_s:>8.1f}")
        print(f"light / full: size {light_mb / full_mb:.3f}, time {light_s / full_s:.2f}; "
              f"PyTorch in the light venv: {'no' if torch_free else 'YES'}")

        from mmindex.samples import write_sample_photos  # this interpreter's mmindex[samples]

        photos = write_sample_photos(work / "photos")
        env = {**os.environ, "MMINDEX_CACHE": str(work / "cache")}
        env.pop("PYTHONPATH", None)  # the light venv's own mmindex
        index = str(work / "index")
        out, add_s = run(work / "light", "add", str(work / "photos"), "--index", index, "-q", env=env)
        print(f"light add of {len(photos)} photos (graph built on first use): {add_s:.1f} s; {out.strip()}")
        out, _ = run(work / "light", "search", "--index", index, "--concept", "espresso", "-k", "1", "--json", env=env)
        print("light search --concept espresso:", Path(json.loads(out)["hits"][0]["path"]).name)
        out, _ = run(work / "light", "search", "--index", index, "--like", str(work / "photos" / "chelsea.jpg"),
                     "-k", "2", "--json", env=env)
        print("light search --like chelsea.jpg:", [Path(h["path"]).name for h in json.loads(out)["hits"]])
        doc, serve_s = serve_once(work / "light", work / "index", env)
        print(f"light serve: first search answered after {serve_s:.1f} s:", Path(doc["hits"][0]["path"]).name)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
