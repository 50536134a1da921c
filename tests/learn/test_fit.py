"""The one training loop, `fit`, on real Fashion-MNIST pixels: it learns, the best epoch's weights come back,
early stopping stops, the LR follows the schedule on every step, the same seed gives the same run, clipping is
counted, callbacks see every step and draw the curves, and the report says what happened."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mmindex.errors import DataError
from mmindex.learn.fit import (
    Batches,
    Callback,
    LearningCurves,
    Schedule,
    StepProgress,
    Validation,
    evaluate,
    fit,
    loss_fn,
    seed_everything,
)
from mmindex.learn.report import TrainReport
from tests.learn.conftest import TEST_NPZ, TRAIN_NPZ


def _pixels(npz) -> tuple[torch.Tensor, torch.Tensor]:
    with np.load(npz) as z:
        x = torch.from_numpy(z["images"].reshape(len(z["images"]), -1).astype(np.float32) / 255.0)
        return x, torch.from_numpy(z["labels"].astype(np.int64))


X, Y = _pixels(TRAIN_NPZ)  # 300 images, 10 classes
XV, YV = _pixels(TEST_NPZ)  # 100 images


def _accuracy(z: torch.Tensor) -> float:
    return float((z.argmax(1) == YV).float().mean())


def _run(seed: int = 0, epochs: int = 4, lr: float = 0.1, schedule: Schedule | None = None, batch_size: int = 32,
         **kw) -> tuple[nn.Module, torch.optim.Optimizer, TrainReport]:
    """A 784-64-10 MLP trained on the fixture's pixels with SGD and softmax cross-entropy."""
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    onehot = nn.functional.one_hot(Y, 10).float()
    val = Validation(Batches((XV,), nn.functional.one_hot(YV, 10).float(), 64), _accuracy, "val_accuracy")
    report = fit(model, Batches((X,), onehot, batch_size), val, lambda z, t: loss_fn("softmax", z, t), opt,
                 schedule or Schedule(lr, "constant", total=epochs), epochs=epochs, seed=seed, **kw)
    return model, opt, report


def test_fit_learns_and_keeps_the_best_epoch():
    model, _, rep = _run(epochs=8)
    assert rep.epochs_run == 8 and [h["epoch"] for h in rep.history] == list(range(1, 9))
    assert rep.history[-1]["train_loss"] < rep.history[0]["train_loss"] / 2
    assert rep.best_metric > 0.5  # 10 classes: chance is 0.1
    assert rep.best_metric == max(h["val_metric"] for h in rep.history)
    assert rep.history[rep.best_epoch - 1]["val_metric"] == rep.best_metric
    # the weights in the model are the best epoch's, not the last's (seed 0: epoch 5 of 8 is the best)
    assert rep.best_epoch < rep.epochs_run
    val = Validation(Batches((XV,), nn.functional.one_hot(YV, 10).float(), 64), _accuracy)
    assert evaluate(model, val, lambda z, t: loss_fn("softmax", z, t), torch.device("cpu"))[1] == rep.best_metric
    assert rep.train_size == 300 and rep.val_size == 100 and rep.steps == 8 * 10
    assert rep.parameters == 784 * 64 + 64 + 64 * 10 + 10 and rep.metric_name == "val_accuracy"
    assert rep.items_per_s > 0 and rep.train_items_per_s >= rep.items_per_s and rep.clipped_steps == 0


def test_same_seed_same_run_other_seed_other_run():
    a_model, _, a = _run(seed=3, epochs=2)
    b_model, _, b = _run(seed=3, epochs=2)
    assert a.history == b.history
    for (ka, va), (kb, vb) in zip(a_model.state_dict().items(), b_model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    assert _run(seed=4, epochs=2)[2].history != a.history


def test_early_stopping_stops_after_patience_epochs_without_progress():
    # lr 0: the weights never change, so the first epoch stays the best and every later one is no better
    _, _, rep = _run(epochs=20, lr=0.0, patience=3)
    assert rep.best_epoch == 1 and rep.epochs_run == 1 + 3
    _, _, full = _run(epochs=5, lr=0.0, patience=0)  # 0: never stops early
    assert full.epochs_run == 5


def test_the_schedule_is_set_on_every_step_for_every_group():
    seed_everything(0)
    model = nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "scale": 0.1}, {"params": model[2].parameters()}],
                          lr=0.05, momentum=0.9)
    steps_seen = []

    class Record(Callback):
        def on_step(self, epoch, epochs, step, steps, train_loss, metric) -> None:
            steps_seen.append((epoch, step, steps, [g["lr"] for g in opt.param_groups]))

    schedule = Schedule(0.05, "step", total=4, every=2, factor=10.0, warmup=1.0)
    val = Validation(Batches((XV,), nn.functional.one_hot(YV, 10).float(), 64), _accuracy)
    rep = fit(model, Batches((X,), nn.functional.one_hot(Y, 10).float(), 64), val,
              lambda z, t: loss_fn("softmax", z, t), opt, schedule, epochs=4, callbacks=[Record()])
    per_step = [s for i, s in enumerate(steps_seen) if (i + 1) % 6]  # each epoch: 5 steps, then one after validation
    assert len(per_step) == 4 * 5
    for epoch, step, steps, (body, head) in per_step:
        expected = schedule.at(epoch + (step - 1) / steps)
        assert head == pytest.approx(expected) and body == pytest.approx(0.1 * expected)
    lrs = [head for *_, (_, head) in per_step]
    assert lrs[0] < lrs[4]  # warm-up over the first epoch
    assert lrs[5] == pytest.approx(0.05) and lrs[10] == pytest.approx(0.005)  # ÷10 after 2 epochs
    assert [h["lr"] for h in rep.history] == pytest.approx([lrs[4], lrs[9], lrs[14], lrs[19]])


def test_callbacks_see_progress_and_draw_the_curves(tmp_path):
    calls = []
    _, _, rep = _run(epochs=3, callbacks=[StepProgress(lambda *a: calls.append(a)),
                                          LearningCurves(tmp_path / "new" / "m.curves.png", "mlp")])
    assert len(calls) == 3 * (10 + 1)
    assert calls[0][:4] == (0, 3, 1, 10) and calls[0][5] is None  # no validation metric before the first epoch
    assert calls[10] == (0, 3, 10, 10, rep.history[0]["train_loss"], rep.history[0]["val_metric"])
    assert rep.curves == str(tmp_path / "new" / "m.curves.png")
    assert (tmp_path / "new" / "m.curves.png").read_bytes()[:4] == b"\x89PNG"
    assert set(rep.history[0]) == {"epoch", "lr", "train_loss", "val_loss", "val_metric"}


def test_clipping_is_counted_and_batches_of_one_are_skipped():
    _, _, rep = _run(epochs=2, clip=1e-4)
    assert rep.clipped_steps == rep.steps == 2 * 10
    assert all(h["clipped"] == 1.0 and h["grad_norm"] > 1e-4 for h in rep.history)
    _, _, measured = _run(epochs=1, clip=0.0)  # 0: measured, never clipped
    assert measured.clipped_steps == 0 and measured.history[0]["grad_norm"] > 0
    b = Batches((X[:65],), Y[:65], 32, min_size=2)  # 32 + 32 + 1: the last batch is skipped (batch norm)
    assert [len(idx) for _, idx in b.shuffled(torch.Generator().manual_seed(0))] == [32, 32]
    assert [len(idx) for _, idx in Batches((X[:1],), Y[:1], 32, min_size=2).shuffled(torch.Generator())] == [1]


def test_the_report_keeps_the_old_names_in_its_dict():
    rep = TrainReport(mode="clip", input_shape=[8, 1, 24, 24], items_per_s=10.0, train_items_per_s=12.0)
    d = rep.as_dict()
    assert d["clip_shape"] == [8, 1, 24, 24] and d["clips_per_s"] == 12.0 and "images_per_s" not in d
    d = TrainReport(mode="scratch", items_per_s=10.0).as_dict()
    assert d["images_per_s"] == 10.0 and "clips_per_s" not in d
    assert "clip_shape" not in TrainReport(mode="sequence").as_dict()


def test_bad_batches_and_epochs_are_clear_errors():
    with pytest.raises(DataError, match="inputs of 300 rows, 299 targets"):
        Batches((X,), Y[:299], 32)
    with pytest.raises(DataError, match="batch size 0"):
        Batches((X,), Y, 0)
    with pytest.raises(DataError, match="epochs must be"):
        _run(epochs=0)
