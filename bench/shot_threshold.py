"""The shot detector's adaptive threshold: the per-sample np.quantile loop it used to be, against the scipy
rank filters of `mmindex.media.shots._adaptive`, in the same process, on the same signal.

    .venv/bin/python bench/shot_threshold.py [--samples 20000] [--fps 25] [--repeat 3]

The signal is a skewed random one like the detector's histogram distances; the window is the detector's
(±WINDOW_S seconds at --fps). Each threshold is computed three times per video (cuts, gradual, noise);
the table gives each call, best of --repeat, their sum, and checks that both give the same values.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from mmindex.media import shots


def quantile_loop(x: np.ndarray, window: int, k: float, floor: float, q: float = 0.5) -> np.ndarray:
    """The former implementation (one np.quantile per sample)."""
    out = np.empty_like(x)
    for i in range(len(x)):
        out[i] = max(floor, k * float(np.quantile(x[max(0, i - window): i + window + 1], q)))
    return out


def best_of(repeat: int, f, *args) -> tuple[float, np.ndarray]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = f(*args)
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20_000)
    ap.add_argument("--fps", type=float, default=25.0)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    window = shots.ShotDetector(args.fps).window
    rng = np.random.default_rng(0)
    x = (rng.random(args.samples) ** 3).astype(np.float32)
    shots._adaptive(x[:1000], window, 1.0, 0.0)  # scipy's import, outside the timing
    print(f"{args.samples} samples, window ±{window} ({shots.WINDOW_S} s at {args.fps:g} fps), best of {args.repeat}")
    print("| threshold | quantile | np.quantile loop s | scipy rank filters s | ratio | same values |")
    print("|---|---:|---:|---:|---:|---|")
    total_loop = total_new = 0.0
    for name, k, floor, q in [("cut", shots.CUT_K, shots.CUT_MIN, 0.5),
                              ("gradual", shots.GRAD_K, shots.GRAD_MIN, shots.GRAD_Q),
                              ("noise", shots.NOISE_K, 0.0, 0.5)]:
        t_loop, ref = best_of(args.repeat, quantile_loop, x, window, k, floor, q)
        t_new, new = best_of(args.repeat, shots._adaptive, x, window, k, floor, q)
        total_loop, total_new = total_loop + t_loop, total_new + t_new
        same = "identical" if np.array_equal(ref, new) else f"max diff {np.abs(ref - new).max():.2g}"
        print(f"| {name} | {q} | {t_loop:.3f} | {t_new:.4f} | {t_loop / t_new:.0f}x | {same} |")
    print(f"| per video (the three) | | {total_loop:.3f} | {total_new:.4f} | {total_loop / total_new:.0f}x | |")


if __name__ == "__main__":
    main()
