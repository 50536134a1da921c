"""Start-up per command (issue 20): wall time of a fresh `mmindex` process on a one-image index, warm cache.

    python bench/startup.py [--repeats 5] [--cache DIR]
    PYTHONPATH=/path/to/other/checkout python bench/startup.py      # the same commands on other code

The cache (ONNX exports, text bank) is warmed first by one run of each kind, in a folder of its own unless
--cache names one; every measured run is then a new process. `serve` is timed to its first answer to a
search over HTTP. Each row is the median of --repeats runs (min and max beside it), next to
`python -c "import mmindex"` measured in the same run, with the process's CPU time (user + system: on a machine
shared with other jobs it varies less than the wall time); "torch" says whether the command imported PyTorch,
timm or transformers (one more run under `python -X importtime`, not timed).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HEAVY = ("torch", "timm", "transformers")


def _env(cache: Path) -> dict:
    return {**os.environ, "MMINDEX_CACHE": str(cache)}


# Every process runs in the work folder: `python -m` puts the current folder first on sys.path, which in a
# checkout would import its mmindex rather than the one PYTHONPATH names.
_CWD: Path | None = None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mmindex.cli", *args]


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict, before=None) -> tuple[float, float]:
    """(wall s, CPU s) of one run of `cmd`; the CPU time (user + system) depends less on other jobs' load."""
    if before:
        before()
    c, t = _children_cpu(), time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=_CWD)
    return time.perf_counter() - t, _children_cpu() - c


def heavy_imports(cmd: list[str], env: dict, before=None) -> str:
    """Which of HEAVY the command imports (from -X importtime's report)."""
    if before:
        before()
    err = subprocess.run([cmd[0], "-X", "importtime", *cmd[1:]], env=env, check=True, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, cwd=_CWD).stderr
    found = {line.rsplit("|", 1)[1].strip() for line in err.splitlines() if line.startswith("import time:")}
    return ", ".join(m for m in HEAVY if m in found) or "no"


def serve_seconds(index: Path, env: dict) -> tuple[float, float]:
    """From process start to the first answered search over HTTP (and the CPU time of the whole process)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api/search?concept=espresso"
    c, t = _children_cpu(), time.perf_counter()
    proc = subprocess.Popen(_cli("serve", "--index", str(index), "--port", str(port), "--no-access-log"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=_CWD)
    try:
        while time.perf_counter() - t < 120:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        wall = time.perf_counter() - t
                        break
            except OSError:
                time.sleep(0.01)
        else:
            raise RuntimeError("serve did not answer in 120 s")
    finally:
        proc.terminate()
        proc.wait()
    return wall, _children_cpu() - c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=None, help="ONNX/text cache to use (default: a new one, warmed)")
    a = ap.parse_args()
    from mmindex.samples import write_sample_photos

    global _CWD
    work = _CWD = Path(tempfile.mkdtemp(prefix="mmindex-startup-"))
    try:
        photos = work / "photos"
        write_sample_photos(photos)
        one, other, unindexed = photos / "coffee.jpg", photos / "chelsea.jpg", photos / "rocket.jpg"
        env = _env(a.cache or work / "cache")
        index = work / "one"
        # warm-up: exports the model (and writes what the code under test keeps beside it), builds the text bank
        code = subprocess.run([sys.executable, "-c", "import mmindex; print(mmindex.__file__)"], env=env, cwd=work,
                              check=True, capture_output=True, text=True).stdout.strip()
        subprocess.run(_cli("add", str(one), "--index", str(index), "-q"), env=env, check=True, capture_output=True,
                       cwd=work)
        subprocess.run(_cli("search", "--text", "a cup of coffee", "--index", str(index)), env=env, check=True,
                       capture_output=True, cwd=work)
        scratch = work / "scratch"

        def fresh_index() -> None:  # `add` to a new index
            shutil.rmtree(scratch, ignore_errors=True)

        def copy_of_index() -> None:  # `add` to the one-image index (a copy, so that the file is new to it)
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(index, scratch)

        rows = [
            ('python -c "import mmindex"', [sys.executable, "-c", "import mmindex"], None),
            ("mmindex --help", _cli("--help"), None),
            ("add ONE.jpg (creates the index)", _cli("add", str(one), "--index", str(scratch), "-q"), fresh_index),
            ("add ONE.jpg to the one-image index", _cli("add", str(other), "--index", str(scratch), "-q"),
             copy_of_index),
            ("search --concept espresso", _cli("search", "--concept", "espresso", "--index", str(index)), None),
            ("search --concept espresso --like 1", _cli("search", "--concept", "espresso", "--like", "1", "--index",
                                                        str(index)), None),
            ("search --like FILE (not indexed)", _cli("search", "--like", str(unindexed), "--index", str(index)), None),
            ('search --text "a cup of coffee"', _cli("search", "--text", "a cup of coffee", "--index", str(index)),
             None),
            ("info", _cli("info", "--index", str(index)), None),
            ("classify ONE.jpg", _cli("classify", str(one)), None),
        ]
        load = os.getloadavg()
        results = []
        for label, cmd, before in rows:
            times = [timed(cmd, env, before) for _ in range(a.repeats)]
            results.append((label, times, heavy_imports(cmd, env, before)))
        serve = [serve_seconds(index, env) for _ in range(a.repeats)]
        results.append(("serve (to its first search answered)", serve, "-"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"code: {Path(code).parent.parent.name}; {a.repeats} runs each; "
          f"load average {load[0]:.1f} before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} CPUs")
    print()
    print("| command (fresh process, warm cache) | median s | min s | max s | CPU s (median) "
          "| imports torch/timm/transformers |")
    print("|---|---:|---:|---:|---:|---|")
    for label, runs, heavy in results:
        wall, cpu = [w for w, _ in runs], [c for _, c in runs]
        print(f"| {label} | {statistics.median(wall):.2f} | {min(wall):.2f} | {max(wall):.2f} "
              f"| {statistics.median(cpu):.2f} | {heavy} |")


if __name__ == "__main__":
    main()
