"""The `mmindex` command line. It parses, calls the Engine, and formats; nothing else."""

from __future__ import annotations

import json
import sys

import click

from mmindex.config import DEFAULT_MODEL, IngestConfig
from mmindex.errors import MmindexError


class _Group(click.Group):
    """Turns library errors into a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MmindexError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)


def _index_option(f):
    return click.option(
        "--index", "index", type=click.Path(file_okay=False), default=None, envvar="MMINDEX_INDEX",
        help="Index folder (default: $MMINDEX_INDEX, else ~/.local/share/mmindex/index).",
    )(f)


def _engine(index, config=None):
    from mmindex import Engine

    return Engine(index, config)


@click.group(cls=_Group)
@click.version_option(package_name="mmindex")
def main() -> None:
    """Index image and video collections with deep networks and search them."""


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_index_option
@click.option("--model", default=DEFAULT_MODEL, show_default=True, help="Backbone (see `mmindex models`).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1, 4096))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="Decoding threads.")
@click.option("--runtime", "engine", type=click.Choice(["auto", "onnx", "torch"]), default="auto", show_default=True)
@click.option("--pool", type=click.Choice(["max", "mean"]), default="max", show_default=True,
              help="How a segment's scores are pooled over its keyframes.")
@click.option("--frame-step", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Shot detection looks at every N-th video frame (faster; may miss short transitions).")
@click.option("--shots-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of TRECVID master shot reference files <video stem>.msb, used instead of shot "
                   "detection (a sidecar clip.mp4.msb or clip.msb beside a video is always used).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def add(paths, index, model, batch_size, workers, engine, pool, frame_step, shots_dir, quiet) -> None:
    """Index files and folders (recursively); unchanged files are skipped."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    config = IngestConfig(model=model, batch_size=batch_size, workers=workers, engine=engine, pool=pool,
                          frame_step=frame_step, shots_dir=shots_dir)
    eng = _engine(index, config)
    with Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  disable=quiet, transient=False) as bar:
        task = bar.add_task("add", total=None)
        report = eng.add(paths, progress=lambda done, total: bar.update(task, completed=done, total=total))
    click.echo(
        f"added {report.added}, updated {report.updated}, unchanged {report.unchanged}, "
        f"failed {report.failed} in {report.seconds:.1f} s (index: {eng.index_dir})"
    )
    for path, error in report.errors[:20]:
        click.echo(f"  failed: {path}: {error}", err=True)
    if report.failed > 20:
        click.echo(f"  ... and {report.failed - 20} more (see `mmindex info`)", err=True)


@main.command()
@_index_option
@click.option("--concept", "-c", "concepts", multiple=True, help='Concept expression, e.g. "cat AND NOT dog".')
@click.option("--like", "-l", "like", multiple=True, help="Example: a segment id or an image file.")
@click.option("--text", "-t", "texts", multiple=True, help='Free text, e.g. "a cup of coffee" (mapped to concepts).')
@click.option("--text-encoder", default=None, help="minilm (default), word2vec:PATH or clip:ARCH@WEIGHTS.")
@click.option("-k", "k", default=10, show_default=True, type=click.IntRange(1, 100_000), help="Number of hits.")
@click.option("--normalise", type=click.Choice(["minmax", "zscore", "rank"]), default="minmax", show_default=True,
              help="Score normalisation before fusing several criteria.")
@click.option("--fusion", "fusion_method", type=click.Choice(["combsum", "wsum", "combmnz", "rrf"]),
              default="combsum", show_default=True, help="How several criteria are fused.")
@click.option("--explain", is_flag=True, help="Show each criterion's score for each hit, and what text mapped to.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object {\"hits\": [...]}.")
def search(index, concepts, like, texts, text_encoder, k, normalise, fusion_method, explain, as_json) -> None:
    """Search by concept, free text and/or example; criteria are fused."""
    from mmindex import Engine

    results = Engine(index, text_encoder=text_encoder).search(
        concepts, like, k=k, explain=explain, normalise=normalise, text=texts, fusion_method=fusion_method)
    _emit(results, as_json, explain)


def _emit(hits, as_json: bool, explain: bool) -> None:
    """Print results: JSON {"hits": [...]} (then "explain" with --explain, "message" when empty for a
    reason), or a table. A reason for no hits also goes to stderr."""
    message = getattr(hits, "message", None)
    if message:
        click.echo(f"no hits: {message}", err=True)
    if as_json:
        doc = {"hits": [h.to_dict() for h in hits]}
        if explain:
            doc["explain"] = getattr(hits, "explanation", {})
        if message:
            doc["message"] = message
        click.echo(json.dumps(doc))
        return
    if explain:
        for c in getattr(hits, "explanation", {}).get("criteria", []):
            mapped = ", ".join(f"{m['name']} ({m['weight']:.2f})" for m in c.get("concepts", []))
            click.echo(f"{c['label']}  weight {c['weight']:g}" + (f"  → {mapped}" if mapped else ""))
    from rich.console import Console
    from rich.table import Table

    table = Table("#", "score", "segment", "time")
    table.add_column("path", overflow="fold")
    for i, h in enumerate(hits, 1):
        when = "" if h.start is None else f"{h.start:.2f}–{h.end:.2f} s"
        table.add_row(str(i), f"{h.score:.4f}", str(h.segment_id), when, h.path)
        if h.why:
            table.add_row("", "", "", "", "  " + ", ".join(f"{k} = {v:.4f}" for k, v in h.why.items()))
        if h.parts and len(h.parts) > 1:
            table.add_row("", "", "", "", "  share: " + ", ".join(f"{k} {v:+.4f}" for k, v in h.parts.items()))
    Console().print(table if hits else "no hits")


@main.command()
@_index_option
@click.option("--json", "as_json", is_flag=True)
def info(index, as_json) -> None:
    """Counts, models, disk use and the files that failed."""
    data = _engine(index).info()
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"index:     {data['index']}")
    click.echo(f"media:     {data['media']}")
    click.echo(f"segments:  {data['segments']}")
    click.echo(f"keyframes: {data['keyframes']}")
    click.echo(f"concepts:  {data['concepts']}")
    click.echo(f"models:    {', '.join(data['models'])} ({data['embed_dim']}-d embeddings)")
    click.echo(f"disk:      {data['disk_bytes'] / 1e6:.2f} MB")
    click.echo(f"errors:    {len(data['errors'])}")
    for e in data["errors"]:
        click.echo(f"  {e['path']}: {e['error']}")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@_index_option
def remove(paths, index) -> None:
    """Remove media (files, or every file under a folder) from the index."""
    n = _engine(index).remove(paths)
    click.echo(f"removed {n} media")


@main.command()
@click.argument("text", required=False)
@click.option("--limit", default=None, type=click.IntRange(1), help="At most this many.")
@click.option("--json", "as_json", is_flag=True)
def concepts(text, limit, as_json) -> None:
    """List the concept vocabulary, or search it by name, synonym or WordNet id."""
    from mmindex.concepts import Vocabulary

    found = Vocabulary.imagenet().search(text, limit)
    if as_json:
        click.echo(json.dumps({"concepts": [
            {"id": c.id, "name": c.name, "synonyms": list(c.synonyms), "source": c.source,
             "classes": len(c.classes)} for c in found]}))
        return
    for c in found:
        extra = f"  [{len(c.classes)} classes]" if c.source != "imagenet" else ""
        click.echo(f"{c.id}  {', '.join(c.synonyms)}{extra}")
    if not found:
        click.echo(f"no concept matches {text!r}", err=True)


@main.command()
@_index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--token", envvar="MMINDEX_TOKEN", default=None, show_envvar=True,
              help="Bearer token that adding/removing media needs (without it those endpoints are off).")
@click.option("--private", is_flag=True, help="Reading (search, thumbnails, media) needs the token too.")
@click.option("--media-root", "media_roots", multiple=True, type=click.Path(file_okay=False),
              help="Folder media may be served and added from (repeatable; default: the indexed media's folders).")
@click.option("--max-upload-mb", default=10, show_default=True, type=click.IntRange(1, 1024),
              help="Largest image accepted as an uploaded search example.")
def serve(index, host, port, token, private, media_roots, max_upload_mb) -> None:
    """Serve the HTTP API and the web UI (http://HOST:PORT/, API docs at /docs)."""
    import uvicorn

    from mmindex.config import ServiceConfig
    from mmindex.service import create_app

    if private and not token:
        raise click.UsageError("--private needs --token (or $MMINDEX_TOKEN)")
    config = ServiceConfig(token=token or None, public_read=not private, media_roots=tuple(media_roots),
                           max_upload_bytes=max_upload_mb * 1024 * 1024)
    app = create_app(_engine(index), config)
    click.echo(f"serving {app.state.service.engine.index_dir} on http://{host}:{port}/ (API docs: /docs)")
    uvicorn.run(app, host=host, port=port, server_header=False, log_level="info")


# ---- free text, relevance feedback, saved queries (issue 5) ----------------------------------------
@main.command()
@_index_option
@click.option("--positive", "-p", multiple=True, type=int, help="A segment id that is a good hit (repeatable).")
@click.option("--negative", "-n", multiple=True, type=int, help="A segment id that is a wrong hit (repeatable).")
@click.option("--query", "name", default=None, help="Refine this saved query instead of the last one.")
@click.option("--save", "save_as", default=None, help="Save the refined query under this name.")
@click.option("-k", "k", default=None, type=click.IntRange(1, 100_000), help="Number of hits (default: as before).")
@click.option("--explain", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def feedback(index, positive, negative, name, save_as, k, explain, as_json) -> None:
    """Refine the last query with relevance judgments (Rocchio, then a linear classifier)."""
    eng = _engine(index)
    results = eng.feedback(positive, negative, k=k, explain=explain, name=name)
    if save_as:
        eng.save_query(save_as)
    _emit(results, as_json, explain)


@main.group()
def saved() -> None:
    """Saved queries: save the last query, list, re-run or delete them."""


@saved.command("save")
@click.argument("name")
@_index_option
def saved_save(name, index) -> None:
    """Save the last query (with its feedback) as NAME."""
    spec = _engine(index).save_query(name)
    click.echo(f"saved {name!r}: {json.dumps(spec.to_dict())}")


@saved.command("list")
@_index_option
@click.option("--json", "as_json", is_flag=True)
def saved_list(index, as_json) -> None:
    """List the saved queries."""
    found = {n: s.to_dict() for n, s in _engine(index).saved_queries().items()}
    if as_json:
        click.echo(json.dumps({"queries": found}))
        return
    for n, s in found.items():
        click.echo(f"{n}: {json.dumps(s)}")


@saved.command("run")
@click.argument("name")
@_index_option
@click.option("-k", "k", default=None, type=click.IntRange(1, 100_000))
@click.option("--explain", is_flag=True)
@click.option("--json", "as_json", is_flag=True)
def saved_run(name, index, k, explain, as_json) -> None:
    """Run the saved query NAME again."""
    _emit(_engine(index).run_saved(name, k=k, explain=explain), as_json, explain)


@saved.command("delete")
@click.argument("name")
@_index_option
def saved_delete(name, index) -> None:
    """Delete the saved query NAME."""
    _engine(index).delete_saved(name)
    click.echo(f"deleted {name!r}")


@main.group()
def text() -> None:
    """Text encoders: train and evaluate word2vec."""


@text.command("train-word2vec")
@click.argument("corpus", nargs=-1, type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to save the vectors.")
@click.option("--from-index", "from_index", type=click.Path(file_okay=False), default=None,
              help="Also train on this index's own text: file and folder names, sidecar captions.")
@click.option("--cbow/--skip-gram", "cbow", default=False, show_default=True, help="Architecture.")
@click.option("--dim", default=100, show_default=True, type=click.IntRange(2, 2000))
@click.option("--window", default=5, show_default=True, type=click.IntRange(1, 50))
@click.option("--min-count", default=5, show_default=True, type=click.IntRange(1))
@click.option("--epochs", default=5, show_default=True, type=click.IntRange(1, 1000))
@click.option("--negative", default=5, show_default=True, type=click.IntRange(0, 100), help="Negative samples.")
@click.option("--evaluate/--no-evaluate", default=True, show_default=True,
              help="Report WordSim-353, SimLex-999 and analogy scores.")
def train_word2vec(corpus, out, from_index, cbow, dim, window, min_count, epochs, negative, evaluate) -> None:
    """Train word2vec on CORPUS (text files or folders) and save it, for --text-encoder word2vec:OUT."""
    from mmindex.text import word2vec as w2v

    if not corpus and not from_index:
        raise click.UsageError("give a CORPUS or --from-index")
    sentences = list(w2v.Corpus(corpus)) if corpus else []
    if from_index:
        from mmindex.index.store import Store

        with Store.open(from_index) as store:
            sentences += w2v.collection_sentences(store.media_hashes())
    config = w2v.Word2VecConfig(sg=not cbow, vector_size=dim, window=window, min_count=min_count, epochs=epochs,
                                negative=negative)
    done = w2v.train_and_save(sentences, out, config)
    click.echo(f"trained on {len(sentences):,} sentences: {done['words']:,} words in {done['seconds']:.1f} s "
               f"-> {done['path']} (use --text-encoder word2vec:{done['path']})")
    if evaluate:
        _echo_word2vec_scores(w2v.evaluate(done["vectors"]))


@text.command("evaluate-word2vec")
@click.argument("vectors", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def evaluate_word2vec(vectors, as_json) -> None:
    """Score saved word vectors on WordSim-353, SimLex-999 and questions-words."""
    from pathlib import Path

    from mmindex.text.encoders import load_keyed_vectors
    from mmindex.text.word2vec import evaluate

    scores = evaluate(load_keyed_vectors(Path(vectors)))
    if as_json:
        click.echo(json.dumps(scores))
    else:
        _echo_word2vec_scores(scores)


def _echo_word2vec_scores(s: dict) -> None:
    click.echo(f"wordsim353 spearman {s['wordsim353']:.3f} (oov {s['wordsim353_oov']:.0%}), "
               f"simlex999 spearman {s['simlex999']:.3f} (oov {s['simlex999_oov']:.0%}), "
               f"analogies {s['analogies']:.3f} ({s['analogies_answered']:.0f} answered)")


# ---- learning (issue 4): train, evaluate, apply ----------------------------------------------------------

@main.command()
@click.argument("data")
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False), help="Detector bundle to write.")
@click.option("--val", "val", default=None, help="Held-out validation set (else a split of DATA is made).")
@click.option("--name", default=None, help="Detector name (default: the --out file's stem); concepts are NAME:label.")
@click.option("--mode", type=click.Choice(["probe", "finetune", "scratch"]), default="probe", show_default=True)
@click.option("--backbone", default=DEFAULT_MODEL, show_default=True, help="Backbone for probe / finetune.")
@click.option("--arch", default="vgg_small", show_default=True, help="Small architecture for scratch.")
@click.option("--head", type=click.Choice(["linear", "mlp"]), default="linear", show_default=True)
@click.option("--hidden", default=512, show_default=True, type=click.IntRange(1), help="MLP hidden units.")
@click.option("--dropout", default=0.0, show_default=True, type=click.FloatRange(0, 0.95))
@click.option("--loss", type=click.Choice(["auto", "softmax", "sigmoid", "mse"]), default="auto", show_default=True,
              help="auto: softmax for class folders, sigmoid for annotation files (multi-label).")
@click.option("--epochs", default=30, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=128, show_default=True, type=click.IntRange(1, 65536))
@click.option("--lr", default=0.1, show_default=True, type=click.FloatRange(min=0, min_open=True))
@click.option("--momentum", default=0.9, show_default=True, type=click.FloatRange(0, 1, max_open=True))
@click.option("--backbone-lr", default=0.1, show_default=True, help="Backbone LR / head LR (finetune).")
@click.option("--schedule", type=click.Choice(["step", "cosine", "constant"]), default="step", show_default=True)
@click.option("--step-every", default=10, show_default=True, type=click.IntRange(1),
              help="Step decay: constant for N epochs...")
@click.option("--step-factor", default=10.0, show_default=True, help="...then divide the LR by this.")
@click.option("--l2", default=1e-4, show_default=True, type=click.FloatRange(0))
@click.option("--l1", default=0.0, show_default=True, type=click.FloatRange(0))
@click.option("--penalty-from", default=2, show_default=True, type=click.IntRange(0),
              help="Epoch (0-based) from which L1/L2 are on.")
@click.option("--patience", default=5, show_default=True, type=click.IntRange(0),
              help="Early stopping after N epochs without a better validation metric (0: never).")
@click.option("--val-fraction", default=0.2, show_default=True, type=click.FloatRange(0, 1, min_open=True,
                                                                                        max_open=True))
@click.option("--no-calibrate", is_flag=True, help="Do not fit temperature / Platt scaling.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt, left by an interrupted run.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def train(data, out, val, name, mode, backbone, arch, head, hidden, dropout, loss, epochs, batch_size, lr, momentum,
          backbone_lr, schedule, step_every, step_factor, l2, l1, penalty_from, patience, val_fraction, no_calibrate,
          seed, resume, quiet, as_json) -> None:
    """Train a concept detector on DATA: a folder of class folders, a CSV/JSON annotation file, or fashion-mnist."""
    from dataclasses import asdict

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mmindex.learn import TrainConfig
    from mmindex.learn import train as run_training

    config = TrainConfig(mode=mode, backbone=backbone, arch=arch, head=head, hidden=hidden, dropout=dropout,
                         loss=loss, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                         backbone_lr=backbone_lr, schedule=schedule, step_every=step_every, step_factor=step_factor,
                         l2=l2, l1=l1, penalty_from=penalty_from, patience=patience, val_fraction=val_fraction,
                         calibrate=not no_calibrate, seed=seed)
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
                              feature_progress=lambda d, t: bar.update(feats, completed=d, total=t))
    if as_json:
        click.echo(json.dumps(asdict(report)))
        return
    if report.split_made:
        click.echo(f"validation: a seeded split of {report.val_size} images held out from DATA")
    what = "top-1 accuracy" if report.metric_name.endswith("accuracy") else "MAP"
    click.echo(f"trained {report.name!r} ({report.mode}, {report.loss}) on {report.train_size} images, "
               f"{len(report.labels)} labels, {report.epochs_run} epochs in {report.seconds:.1f} s "
               f"({report.images_per_s:.0f} images/s)")
    click.echo(f"validation {what}: {report.best_metric:.4f} (best epoch {report.best_epoch}); "
               f"calibration: {report.calibration or 'none'}")
    click.echo(f"wrote {report.out}" + (f" and {report.curves}" if report.curves else ""))
    for path, why in report.skipped[:20]:
        click.echo(f"  skipped: {path}: {why}", err=True)
    if len(report.skipped) > 20:
        click.echo(f"  ... and {len(report.skipped) - 20} more skipped", err=True)


@main.command()
@click.argument("detector", type=click.Path(dir_okay=False))
@click.argument("data")
@click.option("--confusion", type=click.Path(dir_okay=False), default=None, help="Write the confusion matrix PNG.")
@click.option("--run-out", type=click.Path(dir_okay=False), default=None, help="Write a trec_eval run file.")
@click.option("--qrels-out", type=click.Path(dir_okay=False), default=None, help="Write a trec_eval qrels file.")
@click.option("--qrels", "qrels_in", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Judgments to compute infAP with (trec_eval qrels; -1 = pooled but unjudged).")
@click.option("--sample", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Judge only this random share of the items (TRECVID sampling) and report infAP.")
@click.option("--json", "as_json", is_flag=True)
def evaluate(detector, data, confusion, run_out, qrels_out, qrels_in, sample, as_json) -> None:
    """Evaluate DETECTOR on labelled DATA: top-1/top-5 error, AP/MAP, infAP, P@k, nDCG@k, confusion matrix."""
    from mmindex.learn.evaluation import evaluate_detector

    r = evaluate_detector(detector, data, confusion_png=confusion, run_out=run_out, qrels_out=qrels_out,
                          qrels_in=qrels_in, sample=sample)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{r['detector']} on {r['data']}: {r['images']} images, {len(r['labels'])} labels")
    for key in ("top1_error", "top5_error", "map", "infAP", "P@5", "P@10", "nDCG@5", "nDCG@10"):
        if key in r:
            click.echo(f"  {key:<11}{r[key]:.4f}")
    for lab, ap in r["ap"].items():
        click.echo(f"  AP {lab:<20}{'n/a' if ap is None else f'{ap:.4f}'}")
    if r.get("confusion_png"):
        click.echo(f"confusion matrix: {r['confusion_png']}")
    for path, why in r["skipped"]:
        click.echo(f"  skipped: {path}: {why}", err=True)


@main.command("apply")
@click.argument("detector", type=click.Path(dir_okay=False))
@_index_option
@click.option("--name", default=None, help="Detector name in the index (default: the bundle's).")
@click.option("--json", "as_json", is_flag=True)
def apply_detector(detector, index, name, as_json) -> None:
    """Score every segment of the index with DETECTOR and make its labels searchable concepts."""
    r = _engine(index).apply(detector, name)
    if as_json:
        click.echo(json.dumps(r))
        return
    click.echo(f"{'replaced' if r['replaced'] else 'applied'} detector {r['name']!r} to {r['segments']} segments; "
               "media added later are scored by it too")
    for c in r["concepts"]:
        click.echo(f"  --concept {c['query']!r}" + ("" if c["query"] == c["name"] else
                                                     f"  ({c['name']!r} already names another concept)"))


@main.command("learn-demo")
@click.option("--out", default="out/backprop-demo.png", show_default=True, help="Learning-curve PNG.")
def learn_demo(out) -> None:
    """Train a small net with the lecture's NumPy back-propagation engine and plot its learning curve."""
    from mmindex.backprop import demo

    sys.exit(demo.main(["--out", out]))


@main.command("train-sequence")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False), help="Model file to write.")
@click.option("--arch", type=click.Choice(["elman", "jordan", "lstm", "gru", "mean"]), default="gru",
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
def train_sequence(data, out, arch, val, test, hidden, loss, epochs, batch_size, lr, optimizer, schedule, clip,
                   val_fraction, seed, quiet, as_json) -> None:
    """Train a temporal model on DATA, an .npz with x (N, T, D) frame features and y (N,) class ids or (N, L)
    0/1 label sets; optional lengths (N,) and labels (names). See docs/video.md."""
    from dataclasses import asdict

    from mmindex.learn.sequence import SequenceConfig, evaluate_sequence
    from mmindex.learn.sequence import train_sequence as run_training

    config = SequenceConfig(arch=arch, hidden=hidden, loss=loss, epochs=epochs, batch_size=batch_size, lr=lr,
                            optimizer=optimizer, schedule=schedule, clip=clip, val_fraction=val_fraction, seed=seed)

    def on_epoch(epoch, epochs_, loss_, metric):
        click.echo(f"epoch {epoch + 1}/{epochs_}  loss {loss_:.4f}  val {metric:.4f}", err=True)

    report = run_training(data, out, config, val=val, progress=None if quiet or as_json else on_epoch)
    result = asdict(report) | ({"test": evaluate_sequence(out, test)} if test else {})
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


if __name__ == "__main__":
    main()
