"""Fashion-MNIST: the engine (mmindex.backprop) against PyTorch, in the same run.

Same architecture, same initial weights (copied from the engine), same hyper-parameters (SGD, momentum
0.9, step schedule ÷10 after 2/3 of the epochs), same mini-batch order. Epochs alternate between the two
frameworks so that a busy machine slows both alike. Throughput is training images per second (forward,
backward and update; test-set evaluation excluded), of the fastest epoch. Both run float32 on the CPU.

    .venv/bin/python bench/backprop_fashion_mnist.py [--models mlp,cnn] [--epochs-mlp 15] [--epochs-cnn 6]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmindex.backprop import (
    SGD,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
    Sequential,
    SoftmaxCrossEntropy,
    evaluate,
    fit,
    step_lr,
)
from mmindex.backprop.data import load_fashion_mnist


def build(kind: str, seed: int) -> Sequential:
    """MLP 784-256-128-10 (ReLU), or a LeNet-style CNN: conv5 (half padding) → pool → conv5 → pool → 120-84-10."""
    if kind == "mlp":
        return Sequential(Linear(784, 256, rng=seed), ReLU(), Linear(256, 128, rng=seed + 1), ReLU(),
                          Linear(128, 10, rng=seed + 2))
    return Sequential(Conv2d(1, 6, 5, padding="half", rng=seed), ReLU(), MaxPool2d(2),
                      Conv2d(6, 16, 5, rng=seed + 1), ReLU(), MaxPool2d(2), Flatten(),
                      Linear(400, 120, rng=seed + 2), ReLU(), Linear(120, 84, rng=seed + 3), ReLU(),
                      Linear(84, 10, rng=seed + 4))


def to_torch(net: Sequential) -> nn.Sequential:
    """The same network in PyTorch, with the engine's initial weights."""
    layers = []
    for m in net.modules:
        if isinstance(m, Linear):
            t = nn.Linear(*m.params["W"].shape[::-1])
            t.weight.data, t.bias.data = torch.tensor(m.params["W"]), torch.tensor(m.params["B"])
        elif isinstance(m, Conv2d):
            c_out, c_in, k, _ = m.params["K"].shape
            t = nn.Conv2d(c_in, c_out, k, stride=m.stride, padding=m.pad)
            t.weight.data, t.bias.data = torch.tensor(m.params["K"]), torch.tensor(m.params["B"])
        elif isinstance(m, MaxPool2d):
            t = nn.MaxPool2d(m.kernel, m.stride)
        else:
            t = {ReLU: nn.ReLU, Flatten: nn.Flatten}[type(m)]()
        layers.append(t)
    return nn.Sequential(*layers)


def torch_epoch(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, order: np.ndarray,
                batch: int) -> tuple[float, float]:
    net.train()
    t0, total = time.perf_counter(), 0.0
    for idx in np.array_split(order, max(1, -(-len(order) // batch))):
        i = torch.from_numpy(idx)
        opt.zero_grad()
        loss = F.cross_entropy(net(x[i]), y[i])
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
    return total / len(order), time.perf_counter() - t0


@torch.no_grad()
def torch_eval(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    return float(sum((net(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum() for i in range(0, len(x), 1000))
                 / len(x))


def run(kind: str, epochs: int, a) -> dict:
    data = load_fashion_mnist(n_train=a.n_train, images=(kind == "cnn"))
    net = build(kind, a.seed)
    tnet = to_torch(net)
    opt = SGD(net, a.lr, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=a.lr, momentum=0.9)
    xt, yt = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xv, yv = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    loss = SoftmaxCrossEntropy()
    rows = []
    for e in range(epochs):
        lr = step_lr(e, a.lr, step=max(1, 2 * epochs // 3))  # lecture: constant, then divided by 10
        opt.lr = lr
        for g in topt.param_groups:
            g["lr"] = lr
        h = fit(net, loss, opt, data.x_train, data.y_train, 1, batch_size=a.batch, rng=a.seed + e)
        _, acc = evaluate(net, loss, data.x_test, data.y_test)
        order = np.random.default_rng(a.seed + e).permutation(len(data.x_train))  # the batch order fit used
        t_loss, t_sec = torch_epoch(tnet, topt, xt, yt, order, a.batch)
        rows.append(dict(epoch=e + 1, lr=lr, engine_loss=h.epochs[0].train_loss, engine_acc=acc,
                         engine_s=h.epochs[0].seconds, torch_loss=t_loss, torch_acc=torch_eval(tnet, xv, yv),
                         torch_s=t_sec))
        r = rows[-1]
        print(f"{kind} epoch {e + 1:2d} lr {lr:.4f} | engine loss {r['engine_loss']:.4f} acc {r['engine_acc']:.4f} "
              f"{r['engine_s']:.1f} s | torch loss {r['torch_loss']:.4f} acc {r['torch_acc']:.4f} {r['torch_s']:.1f} s",
              flush=True)
    # throughput of the fastest epoch (as timeit's best of n): another process taking the CPU for a
    # while slows some epochs by several times on a shared 2-core machine; the median is printed too
    n = len(data.x_train)
    out = dict(model=kind, epochs=rows, n_train=n, params=net.n_params())
    for who in ("engine", "torch"):
        secs = [r[f"{who}_s"] for r in rows]
        out[f"{who}_ips"], out[f"{who}_ips_median"] = n / min(secs), n / float(np.median(secs))
    return out


def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] for r in res["epochs"]]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for who, style in (("engine", "o-"), ("torch", "s--")):
        a1.plot(ep, [r[f"{who}_loss"] for r in res["epochs"]], style, label=who)
        a2.plot(ep, [100 * r[f"{who}_acc"] for r in res["epochs"]], style, label=who)
    a1.set(xlabel="epoch", ylabel="training loss (cross-entropy)", title=f"{res['model'].upper()}: training loss")
    a2.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{res['model'].upper()}: test accuracy")
    a1.legend()
    a2.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,cnn")
    ap.add_argument("--epochs-mlp", type=int, default=15)
    ap.add_argument("--epochs-cnn", type=int, default=6)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--n-train", type=int, default=None, help="first N training images (default: all 60,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--img", type=Path, default=Path("docs/img"))
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    a = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}")
    results = []
    for kind in a.models.split(","):
        res = run(kind, a.epochs_mlp if kind == "mlp" else a.epochs_cnn, a)
        plot(res, a.img / f"backprop_fashion_mnist_{kind}.png")
        results.append(res)
    print("\n| model | params | epochs | engine test acc | PyTorch test acc | engine img/s | PyTorch img/s | ratio "
          "| ratio (median epochs) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        last = r["epochs"][-1]
        print(f"| {r['model'].upper()} | {r['params']:,} | {len(r['epochs'])} | {100 * last['engine_acc']:.2f}% | "
              f"{100 * last['torch_acc']:.2f}% | {r['engine_ips']:,.0f} | {r['torch_ips']:,.0f} | "
              f"{r['engine_ips'] / r['torch_ips']:.2f}× | {r['engine_ips_median'] / r['torch_ips_median']:.2f}× |")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
