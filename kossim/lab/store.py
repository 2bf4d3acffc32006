"""The results folder: one set of files per finished run, and the tables rebuilt from them.

A sweep may be interrupted at any moment (Ctrl-C, ``kill -9``, a lost
machine). A run stored again first loses its record and files; its data
files are then written, and its JSON record last, atomically (a temporary
file in the same folder, ``os.replace``), with the SHA-256 of each of the
run's other files. ``--resume`` reuses a run only when its files still match
those checksums (a file cut short, edited or swapped with another run's is
run again), and aggregation leaves out, and names, runs whose files do not
match rather than failing. Files are forced to disk in batches
(:mod:`kossim.lab.durable`: every 64 runs or 1 s, at the end and on an
interruption), not with an fsync each, which cost more than a short run.

The aggregate tables (``metrics.csv`` and friends) are rebuilt from the
per-run files of the current plan only, in plan order (policy order in the
file, sweep point order, seed), whatever order runs finished in; so the same
experiment gives the same bytes on any executor. Sweep coordinates come from
the plan, not from the files, so a swept value keeps its YAML type. Layout and
columns: ``docs/contracts.md``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import kossim
from kossim.errors import KossimInputError
from kossim.lab.atomic import TMP_SUFFIX, atomic_write, write_in_place
from kossim.lab.durable import SyncBatch
from kossim.lab.plan import Plan
from kossim.lab.tables import (
    SUMMARY_STATS,
    csv_bytes,
    json_text,
    parquet_bytes,
    repeat_rows,
    scalar_column,
    summary_table,
    tidy,
    typed_column,
)
from kossim.runspec import RunResult, RunSpec, engine_fingerprint
from kossim.sim.tracefile import Trace

__all__ = ["RunMeta", "RunStore", "atomic_write", "write_error"]

METRIC, DIST, TASKS = ".parquet", ".dist.parquet", ".tasks.parquet"
EVENTS = ".events.parquet"
TRACES = {TASKS: "tasks", EVENTS: "events"}
"""The files of a traced run (``--trace``), by suffix, and their aggregate's name."""
METRIC_COLUMNS = ["metric", "scope", "value"]
"""What aggregation reads of a run's metric file (its key columns come from the plan)."""
FRESH_TABLES = 20_000
"""Runs whose tables a store keeps for aggregation (a few kB each)."""


@dataclass(frozen=True)
class RunMeta:
    """How the sweep ran; only the manifest carries it (it varies between invocations)."""

    executor: str
    jobs: int
    wall_time: float


def write_error(exc: OSError, root: Path) -> KossimInputError:
    """A results folder that cannot be written (read-only, full, a file in the way)."""
    where = exc.filename or root
    return KossimInputError.single(
        f"cannot write the results folder: {exc.strerror or exc}", file=str(where)
    )


def _file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class RunStore:
    """The folder ``root`` with its ``runs/`` subfolder of per-run files."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.batch = SyncBatch(self.runs)
        """Stored runs whose files are not yet forced to disk."""
        self._fresh: dict[str, tuple[dict[str, str], dict[str, pa.Table]]] = {}
        """Runs stored by this object: checksums and tables, so aggregating need not parse
        files it has just written (it still checks them against their checksums)."""

    def sync(self) -> None:
        """Force every stored run's files to disk (the sweep's end, an interruption)."""
        self.batch.sync()

    def open(self) -> RunStore:
        """Create the folders and drop temporary files a killed writer left behind.

        Only one sweep should write a folder at a time; a second writer's
        temporary files would be removed here.
        """
        for folder in (self.root, self.runs):
            if folder.exists() and not folder.is_dir():
                raise KossimInputError.single(
                    "is a file, not a folder: --out names the results folder", file=str(folder)
                )
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(exc, self.root) from None
        for folder in (self.root, self.runs):
            for tmp in folder.glob(f".*{TMP_SUFFIX}"):
                with contextlib.suppress(OSError):
                    tmp.unlink()
        return self

    def path(self, run_id: str, suffix: str = ".json") -> Path:
        return self.runs / f"{run_id}{suffix}"

    def put(self, result: RunResult, swept: Sequence[str]) -> None:
        """Store one finished run: data files first, the record (with their checksums) last."""
        files: dict[str, str] = {}
        self._retract(result.run_id)
        if result.status == "ok":
            metric, dist = _metric_rows(result, swept), _dist_rows(result)
            contents = {METRIC: parquet_bytes(metric, False), DIST: parquet_bytes(dist, False)}
            for suffix, trace in ((TASKS, result.tasks), (EVENTS, result.events)):
                if isinstance(trace, Trace) and trace.path is not None:
                    # A spill file the run streamed its trace into: renamed into place (no
                    # file of that name is left to replace), its checksum read back.
                    target = self.path(result.run_id, suffix)
                    os.replace(trace.path, target)
                    with open(target, "rb") as handle:
                        files[suffix] = hashlib.file_digest(handle, "sha256").hexdigest()
                elif isinstance(trace, Trace):
                    contents[suffix] = trace.data or b""
                elif trace is not None:
                    contents[suffix] = parquet_bytes(pa.table(dict(trace)), False)
            for suffix, data in contents.items():
                # Written in place, not renamed: the record, written last and whole, vouches
                # for them by checksum, so a cut file only makes the run incomplete.
                write_in_place(self.path(result.run_id, suffix), data)
                files[suffix] = hashlib.sha256(data).hexdigest()
        record = {
            "run_id": result.run_id,
            "policy": result.policy,
            "point": dict(result.point),
            "seed": result.seed,
            "status": result.status,
            "wall_time": result.wall_time,
            "error": result.error,
            "counters": result.counters,
            "traced": result.tasks is not None,
            "engine": engine_fingerprint(),
            "files": files,
        }
        record_path = self.path(result.run_id)
        atomic_write(record_path, json.dumps(record, indent=1, default=str).encode(), sync=False)
        self.batch.add([*(self.path(result.run_id, suffix) for suffix in files), record_path])
        if result.status == "ok" and len(self._fresh) < FRESH_TABLES:
            self._fresh[result.run_id] = (
                files,
                {METRIC: metric.select(METRIC_COLUMNS), DIST: dist},
            )

    def _retract(self, run_id: str) -> None:
        """Remove a run's record, then its data files (a stale trace of an earlier run with
        the same id must not resurface), before storing it again.

        The run is then not complete until its new record lands, and no rename
        replaces an existing file: ext4 flushes the data of a file renamed over
        another at once (``auto_da_alloc``), an fsync in all but name. Freeing
        the old files still costs what the file system makes it cost (a discard
        per file on a volume mounted with ``discard``): a sweep into a new folder
        is the fastest.
        """
        for suffix in (".json", METRIC, DIST, *TRACES):
            self.path(run_id, suffix).unlink(missing_ok=True)
        self._fresh.pop(run_id, None)

    def record(self, run_id: str) -> dict[str, Any] | None:
        """The run's record, or None when it is absent or unreadable (the run is not done)."""
        try:
            record = json.loads(self.path(run_id).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) and record.get("run_id") == run_id else None

    def records(self, run_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found = {run_id: self.record(run_id) for run_id in dict.fromkeys(run_ids)}
        return {run_id: rec for run_id, rec in found.items() if rec is not None}

    def completed_ids(self, run_ids: Iterable[str], *, traced: bool = False) -> set[str]:
        """Runs that need not run again: recorded ok by this engine code, with their data
        files (and a task trace when ``traced``) matching the record's checksums. Failed
        runs are not complete."""
        suffixes = [METRIC, DIST, *(TRACES if traced else [])]
        engine = engine_fingerprint()  # results of other engine code are not reused
        return {
            run_id
            for run_id, rec in self.records(run_ids).items()
            if rec.get("status") == "ok"
            and rec.get("engine") == engine
            and self.intact(run_id, rec, suffixes)
        }

    def intact(self, run_id: str, record: dict[str, Any], suffixes: Sequence[str]) -> bool:
        """The run's files of ``suffixes`` exist and match the checksums in its record."""
        files = record.get("files")
        if not isinstance(files, dict):
            return False  # a record without checksums cannot vouch for its files
        for suffix in suffixes:
            expected = files.get(suffix)
            if not isinstance(expected, str) or _file_sha256(self.path(run_id, suffix)) != expected:
                return False
        return True

    def aggregate(self, plan: Plan, meta: RunMeta) -> dict[str, Any]:
        """Rebuild every aggregate table and the manifest from the plan's runs.

        A run recorded ok whose files are missing, unreadable or do not match
        their checksums is left out of every table and listed as ``damaged``.
        """
        self.sync()
        specs = _ordered(plan)
        records = self.records(s.run_id for s in specs)
        traced = plan.specs[0].trace if plan.specs else False
        ok = [s for s in specs if records.get(s.run_id, {}).get("status") == "ok"]
        tables, damaged = self._read_runs(ok, records, traced)
        for run_id, reason in damaged.items():
            records[run_id] = {**records[run_id], "status": "damaged", "error": reason}
        ok = [s for s in ok if s.run_id not in damaged]
        keys = _key_table(plan, ok)
        metrics = self._gather(ok, tables[METRIC], ["metric", "scope", "value"], keys)
        self._write_csv_parquet(metrics, "metrics")
        atomic_write(self.root / "summary.csv", csv_bytes(_summary(metrics, plan.swept)))
        dist = self._gather(ok, tables[DIST], ["kind", "variable", "x", "value"], keys)
        kinds = dist.column("kind").to_pylist()
        for kind, name, x_name in (
            ("quantile", "distributions", "quantile"),
            ("time", "timeseries", "time"),
        ):
            keep = pa.array([k == kind for k in kinds], pa.bool_())
            part = dist.filter(keep).drop_columns(["kind"])
            part = part.rename_columns([x_name if c == "x" else c for c in part.column_names])
            atomic_write(self.root / f"{name}.parquet", parquet_bytes(part))
        for suffix, name in TRACES.items():
            if traced:
                self._write_trace(ok, suffix, keys, self.root / f"{name}.parquet")
            else:  # a trace from an earlier traced sweep would describe other runs
                (self.root / f"{name}.parquet").unlink(missing_ok=True)
        manifest = _manifest(plan, meta, _run_entries(specs, records), traced)
        atomic_write(
            self.root / "manifest.json", json.dumps(manifest, indent=2, default=str).encode()
        )
        return manifest

    def _write_csv_parquet(self, table: pa.Table, name: str) -> None:
        atomic_write(self.root / f"{name}.parquet", parquet_bytes(table))
        atomic_write(self.root / f"{name}.csv", csv_bytes(table))

    def _read_runs(
        self, specs: list[RunSpec], records: dict[str, dict[str, Any]], traced: bool
    ) -> tuple[dict[str, dict[str, pa.Table]], dict[str, str]]:
        """Each run's metric and distribution tables, and the runs whose files (traces
        included when ``traced``) are damaged, with why. Traces are streamed, not read."""
        suffixes = [METRIC, DIST, *(TRACES if traced else [])]
        columns: dict[str, list[str] | None] = {METRIC: METRIC_COLUMNS}
        tables: dict[str, dict[str, pa.Table]] = {suffix: {} for suffix in (METRIC, DIST, *TRACES)}
        damaged: dict[str, str] = {}
        for spec in specs:
            record = records[spec.run_id]
            if "files" in record and not self.intact(spec.run_id, record, suffixes):
                damaged[spec.run_id] = (
                    "its files are missing or do not match their checksums; run again with --resume"
                )
                continue
            fresh = self._fresh.get(spec.run_id)
            cached = fresh[1] if fresh is not None and fresh[0] == record.get("files") else {}
            try:
                for suffix in (METRIC, DIST):
                    if suffix in cached:
                        tables[suffix][spec.run_id] = cached[suffix]
                        continue
                    path = self.path(spec.run_id, suffix)
                    parquet = pq.ParquetFile(path)  # not read_table: see kossim.lab.tables
                    tables[suffix][spec.run_id] = parquet.read(columns=columns.get(suffix))
            except (OSError, pa.ArrowException) as exc:
                damaged[spec.run_id] = (
                    f"{type(exc).__name__} reading its files; run again with --resume"
                )
        return tables, damaged

    def _write_trace(self, specs: list[RunSpec], suffix: str, keys: pa.Table, path: Path) -> None:
        """The sweep's trace of one kind: every run's rows, prefixed with its key columns,
        streamed a row group at a time (a traced sweep's memory stays flat however many
        tasks its runs traced) into a temporary file renamed over ``path``."""
        paths = [self.path(spec.run_id, suffix) for spec in specs]
        schemas = [pq.read_schema(p) for p in paths]
        key_table = keys
        if not paths or any(schema != schemas[0] for schema in schemas):
            # Files that disagree on columns (written by hand, say): gathered in memory,
            # missing columns as nulls.
            tables = {spec.run_id: pq.read_table(p) for spec, p in zip(specs, paths, strict=True)}
            atomic_write(path, _gathered_in_pandas(specs, tables, keys))
            return
        schema = pa.schema([*key_table.schema, *schemas[0]])
        tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
        try:
            with pq.ParquetWriter(tmp, schema) as writer:
                for i, source in enumerate(paths):
                    for batch in pq.ParquetFile(source).iter_batches(batch_size=65_536):
                        which = np.full(batch.num_rows, i)
                        prefix = [column.take(which) for column in key_table.columns]
                        writer.write_table(
                            pa.Table.from_arrays([*prefix, *batch.columns], schema=schema)
                        )
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _gather(
        self,
        specs: list[RunSpec],
        by_run: dict[str, pa.Table],
        columns: list[str],
        keys: pa.Table,
    ) -> pa.Table:
        """Concatenate one file kind over runs, each row prefixed with its run's key columns."""
        tables = [by_run[spec.run_id] for spec in specs]
        if tables:
            body = tidy(pa.concat_tables(tables, promote_options="permissive"))
        else:
            body = pa.table({c: pa.array([], pa.float64()) for c in columns})
        return repeat_rows(keys, [table.num_rows for table in tables], body)


def _gathered_in_pandas(specs: list[RunSpec], by_run: dict[str, pa.Table], keys: pa.Table) -> bytes:
    """Traces whose files disagree on columns (written by hand, say), gathered in memory
    with pandas, missing columns as nulls: the Parquet bytes of the sweep's trace."""
    import pandas as pd

    tables = [by_run[spec.run_id] for spec in specs]
    counts = [table.num_rows for table in tables]
    if tables:
        body = pa.concat_tables(tables, promote_options="permissive").to_pandas()
    else:
        body = pd.DataFrame()
    frame = keys.to_pandas().iloc[np.repeat(np.arange(len(specs)), counts)]
    frame = pd.concat([frame.reset_index(drop=True), body.reset_index(drop=True)], axis=1)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return parquet_bytes(table, pandas_meta=False)  # from_pandas wrote its own metadata


def _metric_rows(result: RunResult, swept: Sequence[str]) -> pa.Table:
    """The run's tidy rows, self-describing (its key columns repeated on each row)."""
    n = len(result.metrics)
    point = dict(result.point)
    cols: dict[str, Any] = {
        "policy": scalar_column(result.policy, n),
        "seed": scalar_column(result.seed, n),
    }
    for path in swept:
        cols[path] = scalar_column(json_text(point.get(path)), n)
    cols["metric"] = pa.array([m for m, _, _ in result.metrics], pa.string())
    cols["scope"] = pa.array([s for _, s, _ in result.metrics], pa.string())
    cols["value"] = pa.array([float(v) for _, _, v in result.metrics], pa.float64())
    return pa.table(cols)


def _dist_rows(result: RunResult) -> pa.Table:
    """Distributions (``kind`` quantile, ``x`` in [0, 1]) and time series (``kind`` time)."""
    kind: list[str] = []
    variable: list[str] = []
    x: list[float] = []
    value: list[float] = []
    for name, quantiles in result.distributions.items():
        last = max(len(quantiles) - 1, 1)
        kind += ["quantile"] * len(quantiles)
        variable += [name] * len(quantiles)
        x += [i / last for i in range(len(quantiles))]
        value += [float(q) for q in quantiles]
    for name, (times, values) in result.timeseries.items():
        kind += ["time"] * len(times)
        variable += [name] * len(times)
        x += [float(t) for t in times]
        value += [float(v) for v in values]
    return pa.table(
        {
            "kind": pa.array(kind, pa.string()),
            "variable": pa.array(variable, pa.string()),
            "x": pa.array(x, pa.float64()),
            "value": pa.array(value, pa.float64()),
        }
    )


def _point_key(point: Any) -> str:
    return json.dumps([list(pair) for pair in point], sort_keys=True, default=str)


def _ordered(plan: Plan) -> list[RunSpec]:
    """Plan runs by policy order in the file, sweep point order, then seed."""
    policy_index = {p.name: i for i, p in enumerate(plan.experiment.policies)}
    point_index = {_point_key(p): i for i, p in reversed(list(enumerate(plan.points)))}
    return sorted(
        plan.specs,
        key=lambda s: (policy_index[s.policy], point_index[_point_key(s.point)], s.seed),
    )


def _key_table(plan: Plan, specs: list[RunSpec]) -> pa.Table:
    """One row per run: policy, seed and the swept values typed as in the YAML file."""
    columns: dict[str, pa.Array] = {
        "policy": pa.array([s.policy for s in specs], pa.large_string()),
        "seed": pa.array([s.seed for s in specs], pa.int64()),
    }
    for path in plan.swept:
        # Type each column over the whole plan, not the runs that happen to be done,
        # so a resumed or partial sweep gives the same column types.
        every = {_point_key(p): dict(p).get(path) for p in plan.points}
        typed = typed_column(list(every.values()))
        by_key = dict(zip(every, range(len(every)), strict=True))
        which = pa.array([by_key[_point_key(s.point)] for s in specs], pa.int64())
        columns[path] = typed.take(which)
    return pa.table(columns)


def _summary(metrics: pa.Table, swept: Sequence[str]) -> pa.Table:
    by = ["policy", *swept, "metric", "scope"]
    if metrics.num_rows:
        return summary_table(metrics, by)
    empty = pa.array([], pa.float64())
    return pa.table({c: empty for c in [*by, *SUMMARY_STATS]})


def _git_commit() -> str | None:
    """Commit of the kossim source that produced the results, when it is a git checkout."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(kossim.__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _sweep_lists(sweep: dict[str, Any]) -> dict[str, Any]:
    """``{path: [values]}``, the members of a ``zip`` group listed like any other path."""
    out: dict[str, Any] = {}
    for key, values in sweep.items():
        if key == "zip" and isinstance(values, dict):
            out.update(values)
        else:
            out[key] = values
    return out


def _run_entries(specs: list[RunSpec], records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-run status in plan order; a run with no record is ``missing``."""
    entries = []
    for spec in specs:
        rec = records.get(spec.run_id, {})
        counters = rec.get("counters")
        entries.append(
            {
                "run_id": spec.run_id,
                "policy": spec.policy,
                "point": dict(spec.point),
                "seed": spec.seed,
                "status": rec.get("status", "missing"),
                "wall_time": rec.get("wall_time"),
                "warmup": counters.get("warmup_time") if isinstance(counters, dict) else None,
                "error": rec.get("error"),
            }
        )
    return entries


def _manifest(
    plan: Plan, meta: RunMeta, runs: list[dict[str, Any]], traced: bool
) -> dict[str, Any]:
    exp = plan.experiment
    statuses = [r["status"] for r in runs]
    return {
        "name": exp.name,
        "description": exp.description,
        "kossim_version": kossim.__version__,
        "git_commit": _git_commit(),
        "config_hash": plan.config_hash,
        "config": plan.data,
        "seeds": plan.seeds,
        "policies": [p.name for p in exp.policies],
        "sweep": _sweep_lists(plan.data.get("sweep") or {}),
        "swept": plan.swept,
        "executor": meta.executor,
        "jobs": meta.jobs,
        "wall_time": meta.wall_time,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "traced": traced,
        "runs": runs,
        "n_runs": len(runs),
        "n_ok": statuses.count("ok"),
        "n_failed": statuses.count("failed"),
        "n_missing": statuses.count("missing"),
        "n_damaged": statuses.count("damaged"),
        "warmup": exp.warmup,
        "horizon": exp.horizon,
    }
