"""Read a results folder (or several) into one in-memory picture for the report.

The report reads only the files of the results contract (docs/contracts.md),
never the per-run files and never the simulator. Every file but the manifest is
optional: a missing or unreadable file becomes a note and ``None``, so one
broken artefact costs one section, not the whole report. Several folders are
merged for ``kossim compare`` by prefixing policy labels with the folder name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from kossim.report.fmt import point_label, short_names
from kossim.report.inference import summarise

__all__ = [
    "FRAMES",
    "FailedRun",
    "ResultsData",
    "Source",
    "load_comparison",
    "load_results",
    "point_label",
    "short_names",
]

FRAMES: dict[str, str] = {
    "metrics": "metrics.parquet",
    "summary": "summary.csv",
    "distributions": "distributions.parquet",
    "timeseries": "timeseries.parquet",
    "tasks": "tasks.parquet",
    "events": "events.parquet",
}
"""Attribute name -> file name of each optional table of a results folder."""

_FIXED_COLUMNS = frozenset(
    [
        "policy",
        "seed",
        "metric",
        "scope",
        "value",
        "mean",
        "std",
        "ci_low",
        "ci_high",
        "n",
        "variable",
        "quantile",
        "time",
        "task",
        "type",
        "priority",
        "arrival",
        "start",
        "end",
        "agent",
        "attempts",
        "state",
        "deadline",
        "measured",
        "point",
    ]
)
"""Columns of the contract's tables that are not swept paths (to guess the sweep)."""


@dataclass(frozen=True)
class FailedRun:
    """One run recorded as failed in a manifest, with its traceback."""

    policy: str
    point: str
    seed: Any
    error: str
    run_id: str = ""


@dataclass(frozen=True)
class Source:
    """Provenance of one results folder, shown in the report header."""

    label: str
    path: Path
    manifest: dict[str, Any]


@dataclass
class ResultsData:
    """Everything the report draws from, with a ``point`` label column on each frame.

    ``point`` is a short text such as ``rate=7.2, d=2`` (empty when nothing is
    swept); ``points`` lists them in sweep order so every table and figure
    agrees on it.
    """

    sources: list[Source]
    policies: list[str]
    swept: list[str]
    points: list[str]
    failed: list[FailedRun]
    notes: dict[str, str] = field(default_factory=dict)
    metrics: pd.DataFrame | None = None
    summary: pd.DataFrame | None = None
    distributions: pd.DataFrame | None = None
    timeseries: pd.DataFrame | None = None
    tasks: pd.DataFrame | None = None
    events: pd.DataFrame | None = None

    @property
    def manifest(self) -> dict[str, Any]:
        """Manifest of the first folder (the only one unless comparing)."""
        return self.sources[0].manifest if self.sources else {}

    @property
    def metrics_meta(self) -> dict[str, Any]:
        """Merged ``metrics_meta`` of all manifests (directions of newer metrics)."""
        merged: dict[str, Any] = {}
        for source in self.sources:
            meta = source.manifest.get("metrics_meta")
            if isinstance(meta, dict):
                merged.update(meta)
        return merged

    def first_seed(self, frame: pd.DataFrame) -> Any:
        """The experiment's first seed if ``frame`` has it, else its smallest seed."""
        seeds = self.manifest.get("seeds")
        present = set(frame["seed"].tolist())
        if isinstance(seeds, list) and seeds and seeds[0] in present:
            return seeds[0]
        return min(present)


@dataclass
class _Folder:
    """One folder as read from disk, before policy labels are prefixed."""

    path: Path
    manifest: dict[str, Any]
    frames: dict[str, pd.DataFrame | None]
    notes: dict[str, str]


def load_results(results_dir: Path) -> ResultsData:
    """Read one results folder."""
    return _assemble([_read_folder(Path(results_dir))], prefixes=None)


def load_comparison(results_dirs: list[Path]) -> ResultsData:
    """Read several folders; policies become ``<folder>/<policy>`` in folder order."""
    folders = [_read_folder(Path(d)) for d in results_dirs]
    return _assemble(folders, prefixes=_folder_labels([f.path for f in folders]))


def _folder_labels(paths: list[Path]) -> list[str]:
    """Folder names, lengthened with parent names (or numbered) until unique."""
    labels = [p.resolve().name or str(p) for p in paths]
    for depth in (2, 3):
        if len(set(labels)) == len(labels):
            return labels
        labels = ["/".join(p.resolve().parts[-depth:]) for p in paths]
    return (
        labels
        if len(set(labels)) == len(labels)
        else [f"{i + 1}:{p.name}" for i, p in enumerate(paths)]
    )


def _read_folder(path: Path) -> _Folder:
    """Read the manifest and every optional table; absent files become notes."""
    if not path.is_dir():
        raise FileNotFoundError(f"results folder not found: {path}")
    notes: dict[str, str] = {}
    manifest: dict[str, Any] = {}
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        notes["manifest"] = f"{path / 'manifest.json'} could not be read ({exc})."
    frames: dict[str, pd.DataFrame | None] = {}
    for attr, name in FRAMES.items():
        frames[attr] = None
        file = path / name
        if not file.exists():
            notes[attr] = f"{name} is absent from {path}."
            continue
        try:
            if attr in TRACE_READERS:
                frame = TRACE_READERS[attr](file, manifest)
            else:
                frame = pd.read_csv(file) if name.endswith(".csv") else pd.read_parquet(file)
        except (OSError, ValueError, pa.ArrowException) as exc:
            notes[attr] = f"{name} could not be read ({type(exc).__name__}: {exc})."
            continue
        if "policy" in frame.columns:
            frame["policy"] = frame["policy"].astype(str)
        frames[attr] = frame
    return _Folder(path, manifest, frames, notes)


def _first_seed(manifest: dict[str, Any]) -> Any:
    seeds = manifest.get("seeds")
    return seeds[0] if isinstance(seeds, list) and seeds else None


def _read_tasks(file: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    """What the report shows of the task trace (its Gantt chart): the first seed's tasks
    that started before the chart's window can end (the warm-up plus its longest span),
    read with the file's row filters so a long trace is never held whole."""
    from kossim.report.plots_time import GANTT_WINDOW

    seed = _first_seed(manifest)
    if seed is None:
        return pd.read_parquet(file)
    warmup = manifest.get("warmup")
    cutoff = (float(warmup) if isinstance(warmup, int | float) else 0.0) + GANTT_WINDOW
    frame = pd.read_parquet(file, filters=[("seed", "=", seed), ("start", "<", cutoff)])
    if frame.empty or not (frame["start"] >= cutoff - GANTT_WINDOW).any():
        # no start in the window: the chart starts at the first start, wherever it is
        frame = pd.read_parquet(file, filters=[("seed", "=", seed)])
    return frame


def _read_events(file: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    """What the report shows of the execution log: the rows of the task whose life it
    tells (first, so :func:`kossim.trace.life_of` finds it again), then the first seed's
    failures and suspicions for the timeline. Two passes over the file a row group at a
    time; only the rows shown are held."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from kossim.report.execution import MARKS
    from kossim.trace import BATCH

    seed = _first_seed(manifest)
    source = pq.ParquetFile(file)
    run: tuple[Any, Any] | None = None
    steps = np.zeros(0, dtype=np.int64)
    for batch in source.iter_batches(batch_size=BATCH, columns=["policy", "seed", "task"]):
        frame = batch.to_pandas()
        frame = frame[frame["task"] >= 0]
        if frame.empty:
            continue
        if run is None:
            run = (frame["policy"].iloc[0], frame["seed"].iloc[0])
        mine = frame["task"][(frame["policy"] == run[0]) & (frame["seed"] == run[1])]
        more = np.bincount(mine.to_numpy(np.int64))
        if more.size > steps.size:
            steps = np.concatenate([steps, np.zeros(more.size - steps.size, dtype=np.int64)])
        steps[: more.size] += more
    task = int(np.argmax(steps)) if run is not None else -1  # most steps, ties: earliest
    marked = pa.array(list(MARKS), pa.string())
    kept = []
    for batch in source.iter_batches(batch_size=BATCH):
        # filtered as Arrow data: only the rows kept become Python objects
        mark = pc.is_in(batch.column("kind"), value_set=marked)
        if seed is not None:
            mark = pc.and_(mark, pc.equal(batch.column("seed"), seed))
        if run is not None:
            life = pc.and_(
                pc.and_(
                    pc.equal(batch.column("task"), task), pc.equal(batch.column("seed"), run[1])
                ),
                pc.equal(batch.column("policy"), run[0]),
            )
            mark = pc.or_(life, mark)
        kept.append(batch.filter(mark))
    frame = pa.Table.from_batches(kept, schema=source.schema_arrow).to_pandas()
    if run is None:
        return frame
    life = (frame["policy"] == run[0]) & (frame["seed"] == run[1]) & (frame["task"] == task)
    return pd.concat([frame[life], frame[~life]], ignore_index=True)


TRACE_READERS = {"tasks": _read_tasks, "events": _read_events}
"""The trace tables, which grow with the runs' length: read narrowed to what the report
shows rather than whole."""


def _assemble(folders: list[_Folder], prefixes: list[str] | None) -> ResultsData:
    """Merge folders into one :class:`ResultsData` with point labels and policy order."""
    labels = prefixes or [f.path.name for f in folders]
    prefix_list: list[str | None] = list(prefixes) if prefixes else [None] * len(folders)
    pairs = list(zip(folders, prefix_list, strict=True))
    sources = [Source(lbl, f.path, f.manifest) for lbl, f in zip(labels, folders, strict=True)]
    swept: list[str] = []
    policies: list[str] = []
    for folder, prefix in pairs:
        swept += [p for p in _swept_paths(folder) if p not in swept]
        policies += [_prefixed(prefix, p) for p in _policy_names(folder)]
    data = ResultsData(sources, policies, swept, [], [])
    for attr in FRAMES:
        parts = []
        for folder, prefix in pairs:
            frame = folder.frames[attr]
            if frame is None:
                data.notes[attr] = (
                    f"{data.notes.get(attr, '')} {folder.notes.get(attr, '')}".strip()
                )
            elif prefix is None:
                parts.append(frame)
            else:
                parts.append(frame.assign(policy=[_prefixed(prefix, p) for p in frame["policy"]]))
        if parts:
            setattr(data, attr, pd.concat(parts, ignore_index=True))
    for folder, prefix in pairs:
        if "manifest" in folder.notes:
            data.notes["manifest"] = folder.notes["manifest"]
        data.failed += _failed_runs(folder.manifest, prefix, swept)
    _finish(data)
    return data


def _prefixed(prefix: str | None, policy: str) -> str:
    return policy if prefix is None else f"{prefix}/{policy}"


def _swept_paths(folder: _Folder) -> list[str]:
    """Swept paths from the manifest, else guessed from the columns of the metrics."""
    manifest = folder.manifest
    if isinstance(manifest.get("swept"), list):
        return [str(p) for p in manifest["swept"]]
    if isinstance(manifest.get("sweep"), dict):
        return [str(p) for p in manifest["sweep"]]
    for frame in folder.frames.values():
        if frame is not None:
            return [c for c in frame.columns if c not in _FIXED_COLUMNS]
    return []


def _policy_names(folder: _Folder) -> list[str]:
    """Policy names in file order; entries may be names or ``{"name": ...}`` objects."""
    names: list[str] = []
    for entry in folder.manifest.get("policies") or []:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if name is not None and str(name) not in names:
            names.append(str(name))
    for frame in folder.frames.values():
        if frame is not None and "policy" in frame.columns:
            names += [p for p in pd.unique(frame["policy"]) if p not in names]
    return names


def _failed_runs(manifest: dict[str, Any], prefix: str | None, swept: list[str]) -> list[FailedRun]:
    """Runs whose status is not ``ok``; a point may be a mapping or a list of pairs."""
    failed = []
    for run in manifest.get("runs") or []:
        if not isinstance(run, dict) or run.get("status", "ok") == "ok":
            continue
        point = run.get("point") or {}
        if isinstance(point, list | tuple):
            point = {str(k): v for k, v in point}
        failed.append(
            FailedRun(
                policy=_prefixed(prefix, str(run.get("policy", "?"))),
                point=point_label(point, swept),
                seed=run.get("seed", "?"),
                error=str(run.get("error") or "(no traceback recorded)"),
                run_id=str(run.get("run_id", "")),
            )
        )
    return failed


def _finish(data: ResultsData) -> None:
    """Add swept columns and point labels everywhere; build the summary if it is absent."""
    for attr in FRAMES:
        frame: pd.DataFrame | None = getattr(data, attr)
        if frame is None:
            continue
        for path in data.swept:
            if path not in frame.columns:
                frame[path] = np.nan
        records = frame[data.swept].to_dict("records") if data.swept else [{}] * len(frame)
        frame["point"] = [point_label(r, data.swept) for r in records]
        data.points += [p for p in pd.unique(frame["point"]) if p not in data.points]
        data.policies += [p for p in pd.unique(frame["policy"]) if p not in data.policies]
    if data.summary is None and data.metrics is not None:
        data.summary = summarise(data.metrics, ["policy", *data.swept, "point", "metric", "scope"])
        data.notes["summary"] = (
            "summary.csv is absent; means and intervals recomputed from metrics."
        )
