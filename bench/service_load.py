"""Load test of `mmindex serve` on loopback: N concurrent clients for T seconds against a synthetic index.

    .venv/bin/python bench/service_load.py [--segments 100000] [--clients 32] [--seconds 30]
        [--vector-index flat|hnsw|...] [--client httpx|wrk]

The index is built through the real store (bench/query_latency.py's `build`: sparse softmax-like
scores over 1000 classes, random unit 1280-d embeddings), compacted, and its vector index built with
`--vector-index`. The server is the real command, `mmindex serve`, in its own process on 127.0.0.1
(access log on, as a user runs it). Request mix per client: 50% concept (a random ImageNet class),
10% hierarchy concept ("dog", 118 classes), 15% more-like-this (a random segment id), 15% segment
details, 10% concept autocomplete.

Clients: `httpx` runs them as asyncio tasks in this process and reports each kind of request apart;
`wrk` (Debian package `wrk`, written in C) runs them with 1 thread and draws from the same mix, so
that on a small machine the load generator takes less of the CPU the server needs. Prints requests/s,
p50 and p99 latency, and the error count (non-2xx, failed or timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query_latency import build  # noqa: E402

from mmindex import Engine  # noqa: E402
from mmindex.concepts import Vocabulary  # noqa: E402
from mmindex.index.store import Store  # noqa: E402

MIX = [("concept", 50), ("hierarchy", 10), ("like", 15), ("segment", 15), ("autocomplete", 10)]
# --no-like: the same mix without more-like-this, whose exact 1280-d search over 100k vectors costs ~40-70 ms.
MIX_NO_LIKE = [("concept", 60), ("hierarchy", 10), ("segment", 20), ("autocomplete", 10)]


def request_for(kind: str, rng: random.Random, names: list[str], n: int) -> tuple[str, dict]:
    if kind == "concept":
        return "/api/search", {"concept": rng.choice(names), "k": 24}
    if kind == "hierarchy":
        return "/api/search", {"concept": "dog", "k": 24}
    if kind == "like":
        return "/api/search", {"like": str(rng.randint(1, n)), "k": 24}
    if kind == "segment":
        return f"/api/segments/{rng.randint(1, n)}", {}
    return "/api/concepts", {"q": rng.choice(names)[:3], "limit": 8}


async def client(base: str, seconds: float, seed: int, names: list[str], n: int, out: list, errors: list,
                 mix: list[tuple[str, int]]) -> None:
    rng = random.Random(seed)
    kinds, weights = zip(*mix, strict=True)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            kind = rng.choices(kinds, weights)[0]
            path, params = request_for(kind, rng, names, n)
            t = time.perf_counter()
            try:
                r = await http.get(path, params=params)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            ms = (time.perf_counter() - t) * 1000
            (out if ok else errors).append((kind, ms))


def run_wrk(base: str, args, names: list[str], mix: list[tuple[str, int]]) -> tuple[float, dict]:
    """wrk with a Lua script that sends requests pre-drawn from the mix; (wall s, {count, p50, p99, errors})."""
    if not shutil.which("wrk"):
        raise SystemExit("--client wrk needs wrk (apt-get install wrk)")
    rng = random.Random(0)
    kinds, weights = zip(*mix, strict=True)
    paths = []
    for _ in range(20_000):
        path, params = request_for(rng.choices(kinds, weights)[0], rng, names, args.segments)
        paths.append(str(httpx.URL(path, params=params)))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n"
                "request = function() return wrk.format('GET', paths[math.random(#paths)]) end\n")
    try:
        out = subprocess.run(["wrk", "-t1", f"-c{args.clients}", f"-d{args.seconds:.0f}s", "--timeout", "30s",
                              "--latency", "-s", f.name, base], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    ms = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
    pct = {int(p): float(v) * ms[u] for p, v, u in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m)$", out, re.M)}
    if not {50, 99} <= pct.keys():
        raise SystemExit(f"could not read wrk's latency distribution:\n{out}")
    count, wall, unit = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m),", out).groups()
    errors = sum(int(x) for x in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout):? (\d+)", out))
    return float(wall) * ms[unit] / 1000, {"count": int(count), "p50": pct[50], "p99": pct[99], "errors": errors}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--segments", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--index", help="reuse an index built by an earlier run (default: build a fresh one)")
    ap.add_argument("--no-like", action="store_true", help="leave more-like-this out of the mix")
    ap.add_argument("--serve-args", default="", help='extra `mmindex serve` options, e.g. "--search-threads 1"')
    ap.add_argument("--vector-index", default="flat", help="vector index of a freshly built index (flat, hnsw, ...)")
    ap.add_argument("--client", choices=["httpx", "wrk"], default="httpx")
    args = ap.parse_args()
    mix = MIX_NO_LIKE if args.no_like else MIX
    names = [c.name for c in Vocabulary.imagenet().classes]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.index) if args.index else Path(tmp) / "idx"
        if not (root / "index.sqlite").exists():
            t = time.perf_counter()
            build(root, args.segments, 1280)
            engine = Engine(root)
            engine.compact()
            engine.rebuild(args.vector_index)
            print(f"built {args.segments:,} segments ({args.vector_index}) in {time.perf_counter() - t:.0f} s")
        with Store.open(root) as store:
            vector_index = store.meta("vector_index")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-m", "mmindex.cli", "serve", "--index", str(root),
                                   "--port", str(port), *args.serve_args.split()],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
        try:
            t = time.perf_counter()
            while True:
                try:  # the first search loads the arrays and builds the vector index
                    if httpx.get(f"{base}/api/search", params={"concept": "tabby"}, timeout=120).status_code == 200:
                        break
                except httpx.HTTPError:
                    if server.poll() is not None:
                        raise SystemExit("server exited") from None
                    time.sleep(0.3)
            httpx.get(f"{base}/api/search", params={"like": "1"}, timeout=120)
            httpx.get(f"{base}/api/concepts", params={"q": "cat"}, timeout=120)
            print(f"server ready (arrays loaded) in {time.perf_counter() - t:.1f} s")
            ok, errors = [], []

            async def run_all():
                await asyncio.gather(*(client(base, args.seconds, i, names, args.segments, ok, errors, mix)
                                       for i in range(args.clients)))

            if args.client == "wrk":
                wall, wrk = run_wrk(base, args, names, mix)
            else:
                t = time.perf_counter()
                asyncio.run(run_all())
                wall = time.perf_counter() - t
        finally:
            server.terminate()
            server.wait(20)
    print(f"\n{args.clients} clients ({args.client}), {wall:.1f} s, {args.segments:,} segments, "
          f"vector index {vector_index}, {args.serve_args or 'default serve options'}, {os.cpu_count()} CPUs\n")
    if args.client == "wrk":
        print("| request | count | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|---:|")
        print(f"| all | {wrk['count']:,} | {wrk['count'] / wall:.1f} | {wrk['p50']:.1f} | {wrk['p99']:.1f} |")
        print(f"\nerrors: {wrk['errors']}")
        return
    print("| request | count | req/s | p50 ms | p99 ms |")
    print("|---|---:|---:|---:|---:|")
    for kind in [k for k, _ in mix] + ["all"]:
        lat = np.array([ms for k, ms in ok if kind in (k, "all")])
        if len(lat):
            print(f"| {kind} | {len(lat):,} | {len(lat) / wall:.1f} | {np.percentile(lat, 50):.1f} | "
                  f"{np.percentile(lat, 99):.1f} |")
    print(f"\nerrors: {len(errors)}")


if __name__ == "__main__":
    main()
