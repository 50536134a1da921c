"""The indexer: the writing half of `Engine` (add, apply, teach, judgments, remove, compact, rebuild, check, repair).

    add: scan ──▶ extract.reader (threads) ──▶ extract.mapper (the model) ──▶ index.ingest's writer
         (one transaction per batch) ──▶ compaction when worth it ──▶ the vector index brought up to date

It sits above `learn/` because applied detectors are trained bundles: it loads them and hands the index
their scoring functions, so the storage layer never imports the learning one. For the same reason it teaches
concepts: it records the judgments, has `learn.teach` fit a probe on their stored embeddings, and applies it.

    teach: judgments recorded (one transaction) ──▶ judged + sampled embeddings ──▶ learn.teach.fit_probe
           ──▶ a bundle ──▶ index.detectors.apply (one transaction)          all under the writer lock
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from mmindex.concepts import Vocabulary, check_name, same_name
from mmindex.config import IngestConfig
from mmindex.errors import ClusterError, DataError, DetectorError, IndexDamaged, QueryError, StoreError
from mmindex.evaluate import judgments as judgment_files
from mmindex.extract.inputs import IndexFacts
from mmindex.extract.reader import decoding_processes
from mmindex.index import check, compact, detectors, vectors
from mmindex.index.ingest import AddReport, ProgressFn, add_paths
from mmindex.index.store import Store
from mmindex.index.store_judgments import ORIGINS
from mmindex.index.vectors import check_matches, check_setting
from mmindex.media.shots import require_detector
from mmindex.models import devices
from mmindex.models.loader import LazyModel


class Indexer:
    """Write to one index directory. Each operation holds the index's writer lock for its duration."""

    def __init__(self, index_dir: Path, config: IngestConfig, model: LazyModel, vector_index: str | None = None):
        self.index_dir, self.config, self.model, self.vector_index = index_dir, config, model, vector_index

    def _open_for_add(self) -> Store:
        """The index, created if there is none (or only an interrupted creation's leftovers)."""
        if Store.exists(self.index_dir) and not Store.unfinished(self.index_dir):
            return Store.open(self.index_dir, write=True)
        embed_dim = (self.model if self.model.name == self.config.model else LazyModel(self.config.model)).embed_dim
        setting = check_setting(self.vector_index or vectors.DEFAULT_SETTING, embed_dim)
        concepts = [(c.id, c.name, c.source) for c in Vocabulary.imagenet().classes]
        return Store.create(self.index_dir, self.config.model, embed_dim, concepts, vector_index=setting,
                            precision=self.config.precision)

    def add(self, paths: Iterable[str | os.PathLike], progress: ProgressFn | None = None,
            confine_to: Iterable[str] | None = None) -> AddReport:
        """See `Engine.add`."""
        paths = [os.path.expanduser(os.fspath(p)) for p in paths]  # "~/Pictures" from Python, as in a shell
        require_detector(self.config.shots)  # a shot detector that cannot run fails the add, not every video
        # The writer lock comes first: a locked index is reported at once, not after importing the model.
        with self._open_for_add() as store:
            built_with = store.meta("model")
            if built_with != self.config.model:
                raise StoreError(f"index {self.index_dir} was built with model {built_with!r}, "
                                 f"not {self.config.model!r}")
            precision = store.meta("precision") or "fp32"  # indexes made before issue 20 are fp32
            if precision != self.config.precision:
                raise StoreError(f"index {self.index_dir} was built with --precision {precision}, not "
                                 f"{self.config.precision}: add with --precision {precision} (or without it)")
            check_matches(store.meta("vector_index"), self.vector_index)
            config = self._keyframe_settings(store)
            if progress:
                progress(0, 0)  # the index is ours: work starts (the total is not known before the scan)
            data_config = self.model.data_config
            scorers = self._scorers(store)
            if config.executor == "ray":
                from mmindex.index.ray_ingest import add_paths_ray  # deferred: Ray is an optional extra

                report = add_paths_ray(store, paths, config, data_config, progress, confine_to, scorers)
            elif config.executor == "local":
                report = add_paths(store, paths, config, lambda: self.model.runtime, data_config, progress,
                                   confine_to, scorers, self._decoding_processes())
            else:
                raise ClusterError(f"unknown executor {config.executor!r}; choose local or ray")
            self._upkeep(store, report)
            return report

    def _decoding_processes(self) -> int:
        """`reader.decoding_processes` of the model. Only a device that may be a GPU loads the model here, before
        anything is known to be new, to learn where it runs."""
        return decoding_processes(self.model.runtime) if devices.may_be_gpu(self.config.device) else 0

    def _upkeep(self, store: Store, report: AddReport) -> None:
        """After an add: compact when worth it (even when nothing was new: a run killed before its compaction
        left the files for this one), and bring the vector index up to date. Every batch is committed by now
        and searches work without this, so a failure here (a full disk) is a warning, not an error."""
        try:
            compacting = compact.worth_compacting(store, self.config.auto_compact)
            if compacting:
                merged = compact.compact(store)
                report.compacted = merged.files_before - merged.files_after
            if report.added or report.updated or compacting:
                vectors.update(store, store.snapshot(), drop_dead=bool(report.compacted))
        except StoreError as exc:
            if isinstance(exc, IndexDamaged):
                raise
            report.warnings.append(f"every file was committed, but the upkeep after it failed: {exc}")

    def _keyframe_settings(self, store: Store) -> IngestConfig:
        """The add's config with the index's keyframe settings (`--keyframe-rate`, `--keyframe-embeddings`): given
        ones are recorded for the next adds, and the index's own are used when none is given."""
        embeddings, rate = store.keyframe_settings()
        given = self.config
        if given.keyframe_embeddings and not embeddings or given.keyframe_rate not in (None, rate):
            with store.transaction():
                store.set_keyframe_settings(given.keyframe_embeddings, given.keyframe_rate)
        return replace(given, keyframe_rate=given.keyframe_rate or rate,
                       keyframe_embeddings=given.keyframe_embeddings or embeddings)

    def apply(self, detector: str | os.PathLike, name: str | None = None, progress: ProgressFn | None = None,
              clips_per_shot: int = 1) -> dict:
        """Score every segment with a trained model of any kind and add its labels as concepts. See `Engine.apply`."""
        from mmindex.learn.applicable import load  # deferred: PyTorch

        path = Path(detector).expanduser()
        if not path.is_file():  # the name of an applied detector: its own copy, applied again under its name
            path, name = self.applied_bundle(str(detector)) or path, name or str(detector)
        model = load(path, self.config.device)
        options = _apply_options(model.mode, clips_per_shot)
        with Store.open(self.index_dir, write=True) as store:
            backbone = store.meta("model")
            takes = model.input
            wid = self._weights_id(backbone) if takes.kind in ("embedding", "sequence") and takes.backbone else ""
            facts = IndexFacts(backbone, wid, int(store.meta("embed_dim") or 0), store.keyframe_settings()[0])
            why = takes.misfit(facts)
            if why:
                raise DetectorError(f"detector {name or model.name!r} ({model.mode}) does not fit this index: {why}")
            return detectors.apply(store, path, model, self._scorer(model, options), name,
                                   details=json.dumps(options) if options else None,
                                   read=self._read_options(backbone), progress=progress)

    def applied_bundle(self, name: str) -> Path | None:
        """The index's own copy of the model applied under `name`, or None."""
        with Store.open(self.index_dir) as store:
            return next((path for _, applied, path in detectors.applied(store) if applied == name), None)

    def _scorer(self, model, options: dict | None = None) -> detectors.Scorer:
        """The index's scorer of a loaded `learn.applicable.Applicable`, pooling keyframes as `add` pools concepts,
        with the options it was applied with (`clips_per_shot`)."""
        takes = model.input
        if (options or {}).get("clips_per_shot", 1) > 1:
            takes = replace(takes, clips=options["clips_per_shot"])
        return detectors.Scorer(takes, model.score, len(model.labels), self.config.pool)

    def _scorers(self, store: Store) -> dict[int, detectors.Scorer]:
        """The applied detectors' scorers (from the index's own copies of their bundles), by detector id."""
        applied = detectors.applied(store)
        if not applied:  # without detectors, `add` never imports PyTorch
            return {}
        from mmindex.learn.applicable import load  # deferred: PyTorch

        details = {d["id"]: d["details"] for d in store.detector_list() if d["kind"] == "applied"}
        return {det_id: self._scorer(load(path, self.config.device), json.loads(details.get(det_id) or "{}"))
                for det_id, _, path in applied}

    def _read_options(self, backbone: str) -> detectors.ReadOptions:
        """How `apply` reads media back: as `add` decodes them (its pixel limit, the backbone's JPEG draft size)."""
        model = self.model if self.model.name == backbone else LazyModel(backbone)
        return detectors.ReadOptions(self.config.max_pixels, model.data_config.resize, self.config.workers)

    def _weights_id(self, model: str) -> str:
        """The weights id of the index's backbone (the one loaded for `add`, when it is that one)."""
        return (self.model if self.model.name == model else LazyModel(model)).weights_id

    # ---- judgments and taught concepts -------------------------------------------------------------
    def teach(self, name: str, positive: Iterable[int] = (), negative: Iterable[int] = (), origin: str = "cli",
              feedback: tuple[Sequence[int], Sequence[int]] | None = None, seed: int = 0) -> dict:
        """Record judgments of `name`, fit a probe on every judged segment of it, apply it. See `Engine.teach`."""
        name = check_name(name)
        given = _judged(*feedback, "feedback") if feedback else []
        explicit = _judged(positive, negative, origin)  # wins over the last query's judgment of the same segment
        given = [g for g in given if g[0] not in {i for i, _, _ in explicit}] + explicit
        from mmindex.learn.checkpoint import load_bundle  # deferred: PyTorch (not needed to refuse bad input)
        from mmindex.learn.teach import fit_probe, save_probe, training_set  # deferred: PyTorch

        with Store.open(self.index_dir, write=True) as store:
            name = _known_name(store, name)
            labels = {**store.judgment_labels(name), **{i: label for i, label, _ in given}}
            if not any(labels.values()):
                raise DataError(f"no positive example of {name!r}: give at least one --positive segment id")
            recorded = _record(store, name, given)
            snap = store.snapshot()
            judged = np.array([snap.row_of(i) for i in sorted(labels)], dtype=np.int64)
            x, y = training_set(snap.embeddings, judged, np.array([labels[i] for i in sorted(labels)]), seed)
            model = store.meta("model")
            detector, details = fit_probe(x, y, name, model, seed)
            details.update(judged_positive=sum(labels.values()), judged_negative=len(labels) - sum(labels.values()),
                           sampled_negative=len(y) - len(labels))
            with tempfile.TemporaryDirectory(prefix="mmindex-teach-") as tmp:
                path = Path(tmp) / "taught.mmdet"
                save_probe(path, name, detector, self._weights_id(model), details)
                bundle = load_bundle(path)
                report = detectors.apply(store, path, bundle, bundle.score_embeddings, name, "taught",
                                         json.dumps(details))
        return {**report, "judgments": recorded, "training": details}

    def judge(self, name: str, positive: Iterable[int] = (), negative: Iterable[int] = (),
              origin: str = "cli") -> dict:
        """Record judgments of `name` without training. See `Engine.judge`."""
        given = _judged(positive, negative, origin)
        with Store.open(self.index_dir, write=True) as store:
            name = _known_name(store, check_name(name))
            return {"name": name, **_record(store, name, given)}

    def forget_judgments(self, name: str, segment_ids: Sequence[int] | None = None) -> int:
        """Delete judgments of `name` (all, or those of `segment_ids`); returns how many."""
        with Store.open(self.index_dir, write=True) as store, store.transaction():
            return store.delete_judgments(_known_name(store, name), segment_ids)

    def export_judgments(self, concept: str | None = None, fmt: str = "csv") -> str:
        """The judgments (of one concept, or all) as the text of a CSV or qrels file. See `Engine.export_judgments`."""
        fmt = judgment_files.format_of("", fmt)
        with Store.open(self.index_dir) as store:
            rows = store.judgments(None if concept is None else same_name(concept, store.judged_concepts()))
        return judgment_files.write_text(rows, fmt)

    def import_judgments(self, path: str | os.PathLike, fmt: str | None = None) -> dict:
        """Record the judgments of a CSV or qrels file (origin "import"). See `Engine.import_judgments`."""
        fmt = judgment_files.format_of(path, fmt)
        lines, skipped = judgment_files.read(path, fmt)
        with Store.open(self.index_dir, write=True) as store:
            found, unknown = _segments_of(store, lines)
            known = [d["name"] for d in store.detector_list()] + list(store.judged_concepts())
            names: dict[str, str] = {}
            rows = []
            for line, segment_id in found:
                if line.concept not in names:  # qrels write "red car" as "red_car": same_name reads them alike
                    names[line.concept] = same_name(check_name(line.concept), known + list(names.values()))
                rows.append((segment_id, names[line.concept], line.label, "import"))
            with store.transaction():
                added, changed = store.add_judgments(rows)
        return {"lines": len(lines) + skipped, "added": added, "changed": changed,
                "unchanged": len(rows) - added - changed, "skipped": skipped, "unknown": unknown,
                "concepts": sorted(set(names.values()))}

    def training_sequences(self, labels: str | os.PathLike | None = None, fmt: str | None = None,
                           concepts: Sequence[str] = ()) -> tuple:
        """The judged segments' keyframe embeddings as training sequences. See `Engine.training_sequences`."""
        from mmindex.learn.index_sequences import sequences_from_index  # deferred: PyTorch

        with Store.open(self.index_dir) as store:
            if labels is None:
                rows = [(j["segment_id"], j["concept"], j["label"]) for j in store.judgments()]
                unknown: list[str] = []
            else:
                lines, _ = judgment_files.read(labels, judgment_files.format_of(labels, fmt))
                found, unknown = _segments_of(store, lines)
                rows = [(segment_id, line.concept, line.label) for line, segment_id in found]
            judged: dict[int, dict[str, int]] = {}
            for segment_id, concept, label in rows:
                if not concepts or concept in concepts:
                    judged.setdefault(segment_id, {})[concept] = int(label)
            if not judged:
                raise DataError("no judged segment to learn from" + (f" ({unknown[0]} ...)" if unknown else ""))
            data, skipped = sequences_from_index(store, judged, self._weights_id(store.meta("model")))
        return data, skipped, unknown

    def remove(self, paths: Iterable[str | os.PathLike]) -> int:
        """Remove media by file path, or all media under a folder. Returns how many were removed."""
        with Store.open(self.index_dir, write=True) as store:
            removed = store.remove(os.path.abspath(os.path.expanduser(os.fspath(p))) for p in paths)
            if removed:
                vectors.update(store, store.snapshot())
            return removed

    def compact(self, target_rows: int | None = None, progress: ProgressFn | None = None) -> dict:
        """See `Engine.compact`."""
        with Store.open(self.index_dir, write=True) as store:
            check_matches(store.meta("vector_index"), self.vector_index)
            report = asdict(compact.compact(store, target_rows or compact.DEFAULT_TARGET_ROWS, progress))
            report["vector_index"] = vectors.update(store, store.snapshot(), drop_dead=True)
            return report

    def rebuild(self, vector_index: str | None = None, progress: ProgressFn | None = None) -> dict:
        """See `Engine.rebuild`."""
        t0 = time.perf_counter()
        with Store.open(self.index_dir, write=True) as store:
            setting = check_setting(vector_index, int(store.meta("embed_dim") or 0)) if vector_index else None
            report = vectors.update(store, store.snapshot(), setting=setting, rebuild=True, progress=progress)
        if vector_index:
            self.vector_index = vector_index
        return {**report, "seconds": time.perf_counter() - t0}

    def check(self) -> list[check.Problem]:
        """Every problem of the index, damage first; reads only (see `mmindex.index.check`)."""
        return check.check(self.index_dir)

    def repair(self) -> list[str]:
        """Mend the index (see `mmindex.index.check.repair`); returns what was done, one line each."""
        return check.repair(self.index_dir, _load_scorer)


def _judged(positive: Iterable[int], negative: Iterable[int], origin: str) -> list[tuple[int, int, str]]:
    """(segment id, label, origin) of the given judgments; `QueryError` for an id judged both ways."""
    if origin not in ORIGINS:
        raise QueryError(f"unknown origin {origin!r} of judgments; one of {', '.join(ORIGINS)}")
    pos, neg = [int(i) for i in positive], [int(i) for i in negative]
    both = sorted(set(pos) & set(neg))
    if both:
        raise QueryError(f"segments judged both positive and negative: {', '.join(map(str, both))}")
    return [(i, 1, origin) for i in dict.fromkeys(pos)] + [(i, 0, origin) for i in dict.fromkeys(neg)]


def _known_name(store: Store, name: str) -> str:
    """The name of the index's detector or judged concept that reads as `name`, else `name` (see `same_name`)."""
    return same_name(name, [d["name"] for d in store.detector_list()] + list(store.judged_concepts()))


def _record(store: Store, name: str, given: list[tuple[int, int, str]]) -> dict:
    """Record judgments of `name` in one transaction; `QueryError` naming the ids that are not in the index."""
    ids = [i for i, _, _ in given]
    missing = sorted(set(ids) - set(store.segments(ids)))
    if missing:
        raise QueryError(f"segment ids not in the index: {', '.join(map(str, missing))}")
    with store.transaction():
        added, changed = store.add_judgments((i, name, label, origin) for i, label, origin in given)
    return {"added": added, "changed": changed, "unchanged": len(given) - added - changed}


def _segments_of(store: Store, lines: list) -> tuple[list[tuple], list[str]]:
    """(line, segment id) of the lines whose segment is in the index, and a message for each other line."""
    by_path: dict[str, list[tuple[int, float | None, float | None]]] = {}
    by_doc: dict[str, int] = {}
    for segment_id, path, start, end in store.segment_spans():
        by_path.setdefault(path, []).append((segment_id, start, end))
        by_doc[judgment_files.doc_id(path, start, end)] = segment_id
    found, unknown = [], []
    for line in lines:
        if line.doc is not None:
            segment_id = by_doc.get(line.doc)
        else:
            segment_id = next((i for i, start, end in by_path.get(line.path, ())
                               if _near(start, line.start) and _near(end, line.end)), None)
        if segment_id is None:
            unknown.append(f"{line.where}: no such segment in the index")
        else:
            found.append((line, segment_id))
    return found, unknown


def _near(a: float | None, b: float | None) -> bool:
    return a is None and b is None or a is not None and b is not None and abs(a - b) < 1e-3


def _load_scorer(bundle_path: Path) -> detectors.Scorer:
    """For `repair`: an applied detector's scorer (it recomputes the score files of those that take embeddings)."""
    from mmindex.learn.applicable import load  # deferred: PyTorch

    model = load(bundle_path)
    return detectors.Scorer(model.input, model.score, len(model.labels))


def _apply_options(mode: str, clips_per_shot: int) -> dict:
    """What an apply records beside the model (the detector's `details`), for the `add`s that score with it later."""
    if clips_per_shot < 1:
        raise DetectorError(f"clips per shot must be at least 1, not {clips_per_shot}")
    if clips_per_shot > 1 and mode != "clip":
        raise DetectorError(f"--clips-per-shot is for 3D CNNs (train-clips models); this is a {mode} model")
    return {"clips_per_shot": clips_per_shot} if clips_per_shot > 1 else {}

