"""3D CNNs on motion clips (issue 9): C3D-like, R3D-18 and R(2+1)D-18 against a per-frame 2D CNN averaged over
time, on clips made from Fashion-MNIST images that move left or right or zoom in or out (`mmindex.learn.clips`).
A label and its opposite hold the same frames in reverse order, so the time-averaged baseline can tell the axis
(moving or zooming) but not the direction: on the paired test set its accuracy is at most 0.5.

    .venv/bin/python bench/video3d_motion.py                       # defaults below: 5-12 min on 2 CPU cores
    .venv/bin/python bench/video3d_motion.py --train 20000 --test 4000 --width 64 --epochs 15 --device cuda
    .venv/bin/python bench/video3d_motion.py --write-npz out/      # only write out/motion-{train,test}.npz

The default run takes 5-12 min on 2 CPU cores, depending on what else runs on them (26 min at load 6).
Training clips come from 80% of the source images, test clips (paired: each trajectory in both directions)
from the other 20%; a seeded fifth of the training clips validates and picks the best epoch. Prints a
markdown table (test accuracy, axis and direction accuracy, training throughput during training and in
interleaved rounds after it, with its ratio to the baseline's) and writes figures to docs/img/ (unless
--no-figures).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mmindex.learn.clips import MOTIONS, motion_task, save_clips
from mmindex.learn.video3d import ARCHS, ClipClassifier, ClipConfig, evaluate_clips, train_clips

DOCS_IMG = Path(__file__).resolve().parents[1] / "docs" / "img"
NAMES = {"c3d": "C3D-like (3×3×3)", "r3d_18": "R3D-18", "r2plus1d_18": "R(2+1)D-18",
         "frame2d_mean": "per-frame 2D CNN, mean over time"}


def axis_and_direction(cm: np.ndarray) -> tuple[float, float]:
    """Accuracy of the axis (moving vs zooming) and, among clips whose axis is right, of the direction."""
    axis = np.array([0, 0, 1, 1])  # left, right | in, out  (MOTIONS order)
    same_axis = axis[:, None] == axis[None, :]
    right_axis = cm[same_axis].sum()
    return right_axis / cm.sum(), np.trace(cm) / max(right_axis, 1)


def throughput(archs: list[str], shape: tuple[int, ...], width: int, batch: int, device: torch.device,
               rounds: int = 3, steps: int = 4) -> dict[str, float]:
    """Training clips/s (forward, backward, Adam step) of each model on random clips, the best of `rounds`
    rounds that take the models in turn, so that the load of a shared machine falls on all of them alike."""
    torch.manual_seed(0)
    x = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, device=device)
    y = torch.randint(0, len(MOTIONS), (batch,), device=device)
    models = {a: ClipClassifier(a, shape[1], len(MOTIONS), width).to(device) for a in archs}
    opts = {a: torch.optim.Adam(m.parameters(), 1e-3) for a, m in models.items()}
    best = dict.fromkeys(archs, 0.0)

    def step(a: str) -> None:
        loss = torch.nn.functional.cross_entropy(models[a](x), y)
        opts[a].zero_grad(set_to_none=True)
        loss.backward()
        opts[a].step()

    for _ in range(rounds):
        for a in archs:
            models[a].train()
            step(a)  # warm-up (allocator, cuDNN algorithm choice)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t = time.perf_counter()
            for _ in range(steps):
                step(a)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best[a] = max(best[a], steps * batch / (time.perf_counter() - t))
    return best


def clip_strip(data, path: Path) -> None:
    """One example clip per label, frames left to right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = data.x.shape[1]
    fig, axes = plt.subplots(len(MOTIONS), 1, figsize=(min(1.0 * t, 16), 1.3 * len(MOTIONS)), dpi=100)
    for ax, label in zip(axes, range(len(MOTIONS)), strict=True):
        clip = data.x[np.flatnonzero(data.y == label)[0], :, 0]
        ax.imshow(np.concatenate([np.pad(f, 1, constant_values=80) for f in clip], 1), cmap="gray", vmin=0, vmax=255)
        ax.set_axis_off()
        ax.set_title(MOTIONS[label], fontsize=9, loc="left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def curves_figure(histories: dict[str, list[dict]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=100)
    for arch, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        left.plot(epochs, [h["train_loss"] for h in hist], "o-", ms=3, label=NAMES[arch])
        right.plot(epochs, [h["val_metric"] for h in hist], "o-", ms=3, label=NAMES[arch])
    left.set(xlabel="epoch", ylabel="training loss")
    right.set(xlabel="epoch", ylabel="validation accuracy", ylim=(0, 1.02))
    right.axhline(0.5, color="gray", ls=":", lw=1)
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="fashion-mnist", help="Images the clips are made from (a data spec).")
    ap.add_argument("--train", type=int, default=1200, help="Training clips (a fifth of them validates).")
    ap.add_argument("--test", type=int, default=1000, help="Paired test clips.")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--width", type=int, default=8, help="Channels of the first layer (64: torchvision's ResNets).")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--device", default="cpu", help="cpu, cuda[:N] or auto.")
    ap.add_argument("--threads", type=int, default=2, help="PyTorch CPU threads.")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-figures", action="store_true", help="Do not write docs/img/video3d_*.png.")
    ap.add_argument("--write-npz", type=Path, default=None, help="Write motion-{train,test}.npz here and stop.")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    archs = a.archs.split(",")

    t0 = time.perf_counter()
    train, test = motion_task(a.source, a.train, a.test, frames=a.frames, size=a.size, seed=a.seed)
    made = time.perf_counter() - t0
    if a.write_npz:
        a.write_npz.mkdir(parents=True, exist_ok=True)
        save_clips(a.write_npz / "motion-train.npz", train)
        save_clips(a.write_npz / "motion-test.npz", test)
        print(f"wrote {a.write_npz / 'motion-train.npz'} {train.x.shape} and motion-test.npz {test.x.shape}")
        return
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {a.threads} threads"
    print(f"motion clips from {a.source}: {a.train} training clips (a fifth validates), {len(test)} paired test "
          f"clips, {a.frames} frames of {a.size}×{a.size}, made in {made:.1f} s; width {a.width}, {a.epochs} "
          f"epochs, Adam lr {a.lr:g} cosine, batch {a.batch_size}, seed {a.seed}; {where}, torch "
          f"{torch.__version__}\n")
    tmp = Path(tempfile.mkdtemp(prefix="bench-video3d-"))
    rows, histories = {}, {}
    for arch in archs:
        cfg = ClipConfig(arch=arch, width=a.width, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
                         patience=0)
        t1 = time.perf_counter()
        rep = train_clips(train, tmp / f"{arch}.mmclip", cfg, curves=arch == "c3d", device=str(device))
        wall = time.perf_counter() - t1
        result = evaluate_clips(tmp / f"{arch}.mmclip", test)
        axis, direction = axis_and_direction(np.array(result["confusion"]))
        rows[arch] = (rep, result["accuracy"], axis, direction, wall)
        histories[arch] = rep.history
        if rep.curves and not a.no_figures:
            shutil.copy(rep.curves, DOCS_IMG / "video3d_c3d_curves.png")
        print(f"  {arch}: test accuracy {result['accuracy']:.3f}, {rep.clips_per_s:.0f} clips/s, {wall:.0f} s",
              flush=True)

    speed = throughput(archs, train.shape, a.width, a.batch_size, device)
    base = speed.get("frame2d_mean")
    print("\n| model | parameters | test accuracy | axis accuracy | direction accuracy | val accuracy (epoch) "
          "| train s | clips/s in training | clips/s, interleaved | × baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for arch, (rep, acc, axis, direction, wall) in rows.items():
        ratio = f"{speed[arch] / base:.2f}" if base else "–"
        print(f"| {NAMES[arch]} | {rep.parameters:,} | **{acc:.3f}** | {axis:.3f} | {direction:.3f} | "
              f"{rep.best_metric:.3f} ({rep.best_epoch}) | {wall:.0f} | {rep.clips_per_s:.0f} | {speed[arch]:.0f} | "
              f"{ratio} |")
    if not a.no_figures:
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        curves_figure(histories, DOCS_IMG / "video3d_motion.png",
                      f"Motion clips ({a.frames}×{a.size}×{a.size}, width {a.width}): 3D CNNs vs time-averaged 2D")
        clip_strip(test, DOCS_IMG / "video3d_clips.png")
        print(f"\nwrote {DOCS_IMG}/video3d_motion.png, video3d_clips.png and video3d_c3d_curves.png")
    print(f"total {time.perf_counter() - t0:.0f} s")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
