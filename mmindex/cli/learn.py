"""Learning: train, evaluate and apply concept detectors; temporal models; the back-propagation demo."""

from __future__ import annotations

import dataclasses
import json
import tempfile
import typing
from collections.abc import Callable
from pathlib import Path

import click

from mmindex.cli.choices import RegistryChoice
from mmindex.cli.common import device_option, echo_concept_names, index_option, main, open_engine, printable
from mmindex.cli.options import request_options, request_values
from mmindex.config import IngestConfig
from mmindex.search.requests import ApplyRequest


class ConfigCommand(click.Command):
    """A command with one option per field of a config dataclass, so that a new field is a new option: the
    field `batch_size` is `--batch-size`, with the field's default and the help and limits of its metadata
    (a bool is a `--name/--no-name` flag). The options are made when first needed (parsing, help, completion),
    so that importing the CLI does not import the learning package, and PyTorch with it."""

    def __init__(self, *args, config: Callable[[], type], after: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._config, self._after = config, after

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        if self._config is not None:
            at = next(i for i, p in enumerate(self.params) if p.name == self._after) + 1
            self.params[at:at] = config_options(self._config())
            self._config = None
        return super().get_params(ctx)


def config_options(cls: type) -> list[click.Option]:
    """The options of a config dataclass's fields, in their order."""
    hints = typing.get_type_hints(cls)
    return [_field_option(f, hints[f.name]) for f in dataclasses.fields(cls)]


# The fields whose values are registered names, and their registries: the choices are the names registered when
# the option is first used. A field's own `registry` metadata, where it says one, comes first.
_REGISTRIES = {"arch": "mmindex.learn.archs:ARCHS", "backbone": "mmindex.models:list_models"}


def _field_option(f: dataclasses.Field, kind: type) -> click.Option:
    meta, name = f.metadata, f.name.replace("_", "-")
    if kind is bool:
        return click.Option([f"--{name}/--no-{name}", f.name], default=f.default, show_default=True,
                            help=meta.get("help"))
    limits = {k: meta[k] for k in ("min", "max", "min_open", "max_open") if k in meta}
    registry = meta.get("registry", _REGISTRIES.get(f.name))
    if registry:
        return click.Option([f"--{name}", f.name], type=RegistryChoice(registry), default=f.default,
                            show_default=True, help=meta.get("help"))
    if "choices" in meta:
        kind = click.Choice(list(meta["choices"]))
    elif limits:
        kind = (click.IntRange if kind is int else click.FloatRange)(**limits)
    return click.Option([f"--{name}", f.name], type=kind, default=f.default, show_default=True, help=meta.get("help"))


def _train_config() -> type:
    from mmindex.learn import TrainConfig  # deferred: `mmindex --help` stays fast

    return TrainConfig


@main.command(cls=ConfigCommand, config=_train_config, after="name")
@click.argument("data")
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False), help="Detector bundle to write.")
@click.option("--val", "val", default=None, help="Held-out validation set (else a split of DATA is made).")
@click.option("--name", default=None, help="Detector name (default: the --out file's stem); concepts are NAME:label.")
# here: one option per field of TrainConfig (mode, backbone, ..., calibrate, seed), made by ConfigCommand
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt, left by an interrupted run.")
@click.option("--device", default="auto", show_default=True,
              help="auto (a CUDA GPU when PyTorch sees one), cpu or cuda[:N]; the bundle is saved for the CPU.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def train(data, out, val, name, resume, device, quiet, as_json, **options) -> None:
    """Train a concept detector on DATA: a folder of class folders, a CSV/JSON annotation file, or fashion-mnist.
    The recipe's options are TrainConfig's fields (docs/learning.md)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mmindex.learn import TrainConfig  # deferred: `mmindex --help` stays fast
    from mmindex.learn import train as run_training  # deferred: `mmindex --help` stays fast

    config = TrainConfig(**options)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, disable=quiet or as_json, transient=False) as bar:
        feats = bar.add_task("inputs", total=None, info="")
        task = bar.add_task("epoch", total=None, info="", visible=False)

        def on_step(epoch, epochs_, step, steps, loss_, metric):
            info = f"loss {loss_:.4f}" + ("" if metric is None else f"  val {metric:.4f}")
            bar.update(task, description=f"epoch {epoch + 1}/{epochs_}", completed=step, total=steps, info=info,
                       visible=True)

        report = run_training(data, out, config, val_spec=val, name=name, resume=resume, progress=on_step,
                              feature_progress=lambda d, t: bar.update(feats, completed=d, total=t), device=device)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    if report.split_made:
        click.echo(f"validation: a seeded split of {report.val_size} images held out from DATA")
    what = "top-1 accuracy" if report.metric_name.endswith("accuracy") else "MAP"
    click.echo(f"trained {report.name!r} ({report.mode}, {report.loss}) on {report.train_size} images, "
               f"{len(report.labels)} labels, {report.epochs_run} epochs in {report.seconds:.1f} s "
               f"({report.images_per_s:.0f} images/s)")
    if report.recipe.get("name") == "fewshot":
        chosen = (f"chosen by {report.recipe['cv_folds']}-fold cross-validation" if report.recipe["cv_folds"] else
                  "too few images per label to cross-validate")
        again = "; fitted again with the validation images" if report.recipe.get("refit_with_validation") else ""
        click.echo(f"recipe: few-shot, full-batch logistic regression with C={report.recipe['C']:g} ({chosen}){again}")
    click.echo(f"validation {what}: {report.best_metric:.4f} (best epoch {report.best_epoch}); "
               f"calibration: {_calibration_summary(report.calibration)}")
    click.echo(f"wrote {report.out}" + (f" and {report.curves}" if report.curves else ""))
    for path, why in report.skipped[:20]:
        click.echo(f"  skipped: {path}: {why}", err=True)
    if len(report.skipped) > 20:
        click.echo(f"  ... and {len(report.skipped) - 20} more skipped", err=True)


def _calibration_summary(cal: dict) -> str:
    """'platt scaling kept (validation ECE 0.055 -> 0.031)', or 'none' when nothing was fitted."""
    if "kept" not in cal:
        return "none"
    verdict = "kept" if cal["kept"] else "not kept, scores left uncalibrated"
    return f"{cal['method']} scaling {verdict} (validation ECE {cal['ece_before']:.3f} -> {cal['ece_after']:.3f})"


@main.command()
@click.argument("detector", type=click.Path(dir_okay=False))
@click.argument("data")
@click.option("--confusion", type=click.Path(dir_okay=False), default=None, help="Write the confusion matrix PNG.")
@click.option("--run-out", type=click.Path(dir_okay=False), default=None, help="Write a trec_eval run file.")
@click.option("--qrels-out", type=click.Path(dir_okay=False), default=None, help="Write a trec_eval qrels file.")
@click.option("--qrels", "qrels_in", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Judgments to compute infAP with (trec_eval qrels; -1 = pooled but unjudged).")
@click.option("--sample", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Judge only this random share of the items (TRECVID sampling) and report infAP and xinfAP.")
@click.option("--judge-top", default=0, show_default=True, type=click.IntRange(0),
              help="With --sample: the top N of each ranking are all judged (a first stratum), as TRECVID does.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(detector, data, confusion, run_out, qrels_out, qrels_in, sample, judge_top, as_json) -> None:
    """Evaluate DETECTOR on labelled DATA: top-1/top-5 error, AP/MAP, infAP, P@k, nDCG@k, confusion matrix."""
    from mmindex.learn.heldout import evaluate_detector  # deferred: `mmindex --help` stays fast

    r = evaluate_detector(detector, data, confusion_png=confusion, run_out=run_out, qrels_out=qrels_out,
                          qrels_in=qrels_in, sample=sample, judge_top=judge_top)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{r['detector']} on {r['data']}: {r['images']} images, {len(r['labels'])} labels")
    for key in ("top1_error", "top5_error", "map", "infAP", "xinfAP", "P@5", "P@10", "nDCG@5", "nDCG@10"):
        if key in r:
            click.echo(f"  {key:<11}{r[key]:.4f}")
    for lab, ap in r["ap"].items():
        click.echo(f"  AP {lab:<20}{'n/a' if ap is None else f'{ap:.4f}'}")
    if r.get("confusion_png"):
        click.echo(f"confusion matrix: {r['confusion_png']}")
    for path, why in r["skipped"]:
        click.echo(f"  skipped: {path}: {why}", err=True)


@main.command("apply")
@request_options(ApplyRequest)  # DETECTOR, --name, --clips-per-shot
@index_option
@device_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True)
def apply_detector(index, device, quiet, as_json, **options) -> None:
    """Score every segment of the index with DETECTOR (any model `train`, `train-sequence` or `train-clips` wrote,
    or the name of a detector applied to the index) and make its labels searchable concepts. Killed, the same
    command goes on where it stopped. See docs/learning.md#apply."""
    from mmindex.cli.index import with_progress

    engine = open_engine(index, IngestConfig(device=device))
    request = ApplyRequest(**request_values(ApplyRequest, options))
    r = with_progress("applying", quiet or as_json,
                      lambda progress: engine.apply(**request.engine_arguments(), progress=progress), lazy=True)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{'replaced' if r['replaced'] else 'applied'} detector {r['name']!r} (version {r['version']}) to "
               f"{r['segments']} segments; media added later are scored by it too")
    if r["resumed"]:
        click.echo(f"  went on from an interrupted apply: {r['resumed']} batches were scored before")
    for path, why in r["errors"]:
        click.echo(f"  not read back: {printable(path)}: {printable(why)}", err=True)
    echo_concept_names(r)


@main.command("learn-demo")
@click.option("--out", default="out/backprop-demo.png", show_default=True, type=click.Path(dir_okay=False),
              help="Learning-curve PNG.")
@click.option("--n-train", default=10000, show_default=True, type=click.IntRange(1, 60000),
              help="Fashion-MNIST training images.")
@click.option("--epochs", default=6, show_default=True, type=click.IntRange(1))
def learn_demo(out, n_train, epochs) -> None:
    """Train a small net with the lecture's NumPy back-propagation engine and plot its learning curve."""
    from mmindex.backprop import demo  # deferred: `mmindex --help` stays fast

    click.echo(f"{demo.NETWORK} on {n_train} Fashion-MNIST images, with mmindex.backprop")
    click.echo(demo.EPOCH_HEADER)
    result = demo.run_demo(out, n_train=n_train, epochs=epochs, on_epoch=lambda s: click.echo(demo.epoch_line(s)))
    click.echo(f"trained {result.parameters:,} parameters in {result.seconds:.1f} s; learning curve written to "
               f"{result.out}")


@main.command("train-sequence")
@click.argument("data", required=False, type=click.Path(exists=True, dir_okay=False))
@index_option
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Without DATA: a judgments file (CSV or qrels, as `judgments export` writes) labelling segments "
                   "of the index (default: the index's own judgments).")
@click.option("--concept", "concepts", multiple=True, help="Without DATA: only these concepts' judgments (repeatable).")
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--arch", type=RegistryChoice("mmindex.learn.sequence:ARCHS"), default="gru",
              show_default=True, help="Recurrent network, or mean = mean pooling + MLP (the order-blind baseline).")
@click.option("--val", "val", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Validation .npz (else a seeded split of DATA is held out).")
@click.option("--test", "test", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Also report accuracy (MAP for label sets) on this .npz.")
@click.option("--hidden", default=64, show_default=True, type=click.IntRange(1))
@click.option("--loss", type=click.Choice(["auto", "softmax", "sigmoid"]), default="auto", show_default=True)
@click.option("--epochs", default=20, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=64, show_default=True, type=click.IntRange(1, 65536))
@click.option("--lr", default=3e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--schedule", type=click.Choice(["step", "cosine", "constant"]), default="cosine", show_default=True)
@click.option("--clip", default=1.0, show_default=True, type=click.FloatRange(0),
              help="Largest gradient norm in back-propagation through time (0: no clipping).")
@click.option("--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True,
                                                                                       max_open=True))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--quiet", "-q", is_flag=True, help="No per-epoch lines.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def train_sequence(data, index, labels, concepts, out, arch, val, test, hidden, loss, epochs, batch_size, lr,
                   optimizer, schedule, clip, val_fraction, seed, quiet, as_json) -> None:
    """Train a temporal model on DATA, an .npz with x (N, T, D) frame features and y (N,) class ids or (N, L)
    0/1 label sets; optional lengths (N,) and labels (names). See docs/video.md. Without DATA, on the keyframe
    embeddings of the index's judged segments (`add --keyframe-embeddings`; docs/learning.md#apply)."""
    from mmindex.learn.sequence import SequenceConfig, evaluate_sequence  # deferred: `mmindex --help` stays fast
    from mmindex.learn.sequence import train_sequence as run_training  # deferred: `mmindex --help` stays fast

    config = SequenceConfig(arch=arch, hidden=hidden, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                            optimizer=optimizer, schedule=schedule, clip=clip, val_fraction=val_fraction, seed=seed)

    def on_epoch(epoch, epochs_, loss_, metric):
        click.echo(f"epoch {epoch + 1}/{epochs_}  loss {loss_:.4f}  val {metric:.4f}", err=True)

    with tempfile.TemporaryDirectory(prefix="mmindex-sequences-") as tmp:
        if data is None:
            data = _index_sequences(index, labels, concepts, Path(tmp) / "sequences.npz", quiet or as_json)
        elif labels or concepts:
            raise click.UsageError("--labels and --concept label an index's segments: give them without DATA")
        report = run_training(data, out, config, val=val, progress=None if quiet or as_json else on_epoch)
    result = report.as_dict() | ({"test": evaluate_sequence(out, test)} if test else {})
    if as_json:
        click.echo(json.dumps(result))
        return
    click.echo(f"trained {report.arch} ({report.loss}) on {report.train_size} sequences, {len(report.labels)} "
               f"labels, {report.epochs_run} epochs in {report.seconds:.1f} s; clipped {report.clipped_steps} "
               f"of {report.steps} steps")
    click.echo(f"{report.metric_name}: {report.best_metric:.4f} (best epoch {report.best_epoch})")
    if test:
        key = "map" if "map" in result["test"] else "accuracy"
        click.echo(f"test {key}: {result['test'][key]:.4f} on {result['test']['sequences']} sequences")
    click.echo(f"wrote {report.out}" + (f" and {report.curves}" if report.curves else ""))


def _index_sequences(index, labels, concepts, path: Path, quiet: bool) -> Path:
    """Write the training sequences of an index's judged segments to `path` (say what was left out)."""
    from mmindex.learn.sequence import save_sequences  # deferred: PyTorch

    data, skipped, unknown = open_engine(index).training_sequences(labels, concepts=concepts)
    save_sequences(path, data)
    if not quiet:
        click.echo(f"{len(data)} judged segments of the index, {len(data.labels)} labels, sequences of up to "
                   f"{data.x.shape[1]} keyframes" + (f"; {skipped} without keyframe embeddings left out" if skipped
                                                     else ""), err=True)
        for why in unknown:
            click.echo(f"  skipped: {why}", err=True)
    return path


@main.command("train-clips")
@click.argument("data", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--arch", type=RegistryChoice("mmindex.learn.video3d:ARCHS"), default="c3d",
              show_default=True, help="3D CNN, or frame2d_mean = per-frame 2D CNN averaged over time (baseline).")
@click.option("--width", default=16, show_default=True, type=click.IntRange(1),
              help="Channels of the first layer (r3d_18 / r2plus1d_18: 64 is torchvision's model).")
@click.option("--generate", default=None, type=click.IntRange(2),
              help="Instead of DATA, train on N generated motion clips (left, right, in, out) and test on N/4.")
@click.option("--source", default="fashion-mnist", show_default=True,
              help="Images the clips are made from (with --generate): any `mmindex train` data spec.")
@click.option("--frames", default=16, show_default=True, type=click.IntRange(2), help="Frames per generated clip.")
@click.option("--size", default=32, show_default=True, type=click.IntRange(8), help="Generated frame side, pixels.")
@click.option("--val", "val", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Validation .npz (else a seeded split of the training clips is held out).")
@click.option("--test", "test", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Also report accuracy on this .npz of clips.")
@click.option("--epochs", default=15, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(2, 65536))
@click.option("--lr", default=1e-3, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam", show_default=True)
@click.option("--schedule", type=click.Choice(["step", "cosine", "constant"]), default="cosine", show_default=True)
@click.option("--patience", default=5, show_default=True, type=click.IntRange(0),
              help="Early stopping after N epochs without a better validation accuracy (0: never).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def train_clips(data, out, arch, width, generate, source, frames, size, val, test, epochs, batch_size, lr, optimizer,
                schedule, patience, seed, device, quiet, as_json) -> None:
    """Train a 3D CNN on video clips: DATA, an .npz with x (N, T, C, H, W) and y (N,) class ids (optional
    labels), or --generate N motion clips made from real images. See docs/video3d.md."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mmindex.learn.clips import load_clips, motion_task  # deferred: `mmindex --help` stays fast
    from mmindex.learn.video3d import ClipConfig, evaluate_clips  # deferred: `mmindex --help` stays fast
    from mmindex.learn.video3d import train_clips as run_training  # deferred: `mmindex --help` stays fast

    if (data is None) == (generate is None):
        raise click.UsageError("give either DATA (an .npz of clips) or --generate N")
    config = ClipConfig(arch=arch, width=width, epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer,
                        schedule=schedule, patience=patience, seed=seed).validate()
    test_set = load_clips(test) if test else None
    if generate is not None:
        train_set, test_set = motion_task(source, generate, max(2, generate // 4), frames=frames, size=size,
                                          seed=seed)
    else:
        train_set = load_clips(data)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, disable=quiet or as_json, transient=False) as bar:
        task = bar.add_task("epoch", total=None, info="")

        def on_step(epoch, epochs_, step, steps, loss_, metric):
            info = f"loss {loss_:.4f}" + ("" if metric is None else f"  val {metric:.4f}")
            bar.update(task, description=f"epoch {epoch + 1}/{epochs_}", completed=step, total=steps, info=info)

        report = run_training(train_set, out, config, val=val, progress=on_step, device=device)
    result = report.as_dict() | ({"test": evaluate_clips(out, test_set)} if test_set is not None else {})
    if as_json:
        click.echo(json.dumps(result))
        return
    t, c, h, w = report.clip_shape
    click.echo(f"trained {report.arch} (width {width}, {report.parameters:,} parameters) on {report.train_size} "
               f"clips of {t}×{c}×{h}×{w}, {len(report.labels)} labels, {report.epochs_run} epochs in "
               f"{report.seconds:.1f} s ({report.clips_per_s:.0f} clips/s on {report.device})")
    click.echo(f"{report.metric_name}: {report.best_metric:.4f} (best epoch {report.best_epoch})")
    if test_set is not None:
        where = "generated paired test clips from held-out images" if generate else test
        click.echo(f"test accuracy: {result['test']['accuracy']:.4f} on {result['test']['clips']} {where}")
    click.echo(f"wrote {report.out}" + (f" and {report.curves}" if report.curves else ""))
