"""The indexer: the writing half of `Engine` (add, apply, remove, compact, rebuild, check, repair).

    add: scan ──▶ extract.reader (threads) ──▶ extract.mapper (the model) ──▶ index.ingest's writer
         (one transaction per batch) ──▶ compaction when worth it ──▶ the vector index brought up to date

It sits above `learn/` because applied detectors are trained bundles: it loads them and hands the index
their scoring functions, so the storage layer never imports the learning one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path

from mmindex.concepts import Vocabulary
from mmindex.config import IngestConfig
from mmindex.errors import ClusterError, DetectorError, IndexDamaged, StoreError
from mmindex.index import check, compact, detectors, vectors
from mmindex.index.ingest import AddReport, ProgressFn, add_paths
from mmindex.index.store import Store
from mmindex.index.vectors import check_matches, check_setting
from mmindex.models.loader import LazyModel


class Indexer:
    """Write to one index directory. Each operation holds the index's writer lock for its duration."""

    def __init__(self, index_dir: Path, config: IngestConfig, model: LazyModel, vector_index: str | None = None):
        self.index_dir, self.config, self.model, self.vector_index = index_dir, config, model, vector_index

    def _open_for_add(self) -> Store:
        """The index, created if there is none (or only an interrupted creation's leftovers)."""
        if Store.exists(self.index_dir) and not Store.unfinished(self.index_dir):
            return Store.open(self.index_dir, write=True)
        from mmindex.models import model_info  # deferred: the registry imports the model builders

        embed_dim = model_info(self.config.model)["embed_dim"]
        setting = check_setting(self.vector_index or "flat", embed_dim)
        concepts = [(c.id, c.name, c.source) for c in Vocabulary.imagenet().classes]
        return Store.create(self.index_dir, self.config.model, embed_dim, concepts, vector_index=setting)

    def add(self, paths: Iterable[str | os.PathLike], progress: ProgressFn | None = None,
            confine_to: Iterable[str] | None = None) -> AddReport:
        """See `Engine.add`."""
        paths = [os.path.expanduser(os.fspath(p)) for p in paths]  # "~/Pictures" from Python, as in a shell
        # The writer lock comes first: a locked index is reported at once, not after importing the model.
        with self._open_for_add() as store:
            built_with = store.meta("model")
            if built_with != self.config.model:
                raise StoreError(f"index {self.index_dir} was built with model {built_with!r}, "
                                 f"not {self.config.model!r}")
            check_matches(store.meta("vector_index"), self.vector_index)
            if progress:
                progress(0, 0)  # the index is ours: work starts (the total is not known before the scan)
            data_config = self.model.backbone.data_config
            scorers = _scorers(store)
            if self.config.executor == "ray":
                from mmindex.index.ray_ingest import add_paths_ray  # deferred: Ray is an optional extra

                report = add_paths_ray(store, paths, self.config, data_config, progress, confine_to, scorers)
            elif self.config.executor == "local":
                report = add_paths(store, paths, self.config, lambda: self.model.runtime, data_config, progress,
                                   confine_to, scorers)
            else:
                raise ClusterError(f"unknown executor {self.config.executor!r}; choose local or ray")
            self._upkeep(store, report)
            return report

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

    def apply(self, detector: str | os.PathLike, name: str | None = None) -> dict:
        """Score every segment with a probe detector bundle and add its labels as concepts. See `Engine.apply`."""
        from mmindex.learn.checkpoint import load_bundle  # deferred: PyTorch

        bundle = load_bundle(detector)
        with Store.open(self.index_dir, write=True) as store:
            model = store.meta("model")
            if bundle.mode != "probe":
                raise DetectorError(
                    f"detector {name or bundle.name!r} was trained in {bundle.mode} mode; only probe detectors on "
                    f"the index's backbone ({model}) can be applied, since they score the stored embeddings "
                    "(train with --mode probe)")
            bundle.check_backbone(model, LazyModel(model).backbone.weights_id)
            return detectors.apply(store, detector, bundle, bundle.score_embeddings, name)

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


def _load_scorer(bundle_path: Path) -> detectors.Scorer:
    from mmindex.learn.checkpoint import load_bundle  # deferred: PyTorch

    return load_bundle(bundle_path).score_embeddings


def _scorers(store: Store) -> dict[int, detectors.Scorer]:
    """The applied detectors' scoring functions (bundles from the index's own copies), by detector id."""
    return {det_id: _load_scorer(path) for det_id, _, path in detectors.applied(store)}
