"""Batched durability: a sweep's per-run files reach the disk in groups, not one fsync each.

Every run file is written whole or not at all (:func:`kossim.lab.atomic.atomic_write`
with ``sync=False``: a temporary file renamed into place), so any process, a
``kill -9``-ed writer included, sees a run's files complete or absent. What the
rename alone does not give is survival of an operating-system crash or power
loss: that needs the data forced to disk. An fsync per file cost more than a
short run's simulation, so :class:`SyncBatch` forces the files of many runs at
once: after ``every_runs`` runs, at most ``every_seconds`` after the oldest
unsynced run was stored (a timer thread, so a pause between results does not
leave runs unsynced), and whenever the store is synced explicitly (the end of
a sweep, an interruption, before aggregating).

On Linux one ``syncfs(2)`` of the results folder's file system does the whole
batch (milliseconds for hundreds of files); elsewhere each file, then the
folder, is fsynced. A crash can thus lose at most the runs stored since the
last sync; their records are absent, cut or do not match their files' checksums,
so ``--resume`` runs them again (:meth:`kossim.lab.store.RunStore.completed_ids`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SYNC_RUNS", "SYNC_SECONDS", "SyncBatch", "sync_files"]

SYNC_RUNS = 64
"""Runs whose files may wait for one sync."""
SYNC_SECONDS = 1.0
"""Longest a stored run waits for its sync."""

_syncfs: Any = None


def _load_syncfs() -> Any:
    """``syncfs(2)`` from the C library on Linux, else False."""
    global _syncfs
    if _syncfs is None:
        _syncfs = False
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                import ctypes

                _syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    return _syncfs


def _fsync_path(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return  # replaced or removed since: its successor is synced in its own batch
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_files(folder: Path, paths: Iterable[Path]) -> None:
    """Force ``paths`` (files in ``folder``) and ``folder``'s entries to disk."""
    syncfs = _load_syncfs()
    if syncfs:
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:
        _fsync_path(path)
    with contextlib.suppress(OSError):  # folders cannot be opened everywhere
        _fsync_path(folder)


class SyncBatch:
    """Files of stored runs not yet forced to disk, synced together."""

    def __init__(
        self, folder: Path, every_runs: int = SYNC_RUNS, every_seconds: float = SYNC_SECONDS
    ) -> None:
        self.folder = folder
        self.every_runs = every_runs
        self.every_seconds = every_seconds
        self.syncs = 0
        """Batches synced so far."""
        self._lock = threading.Lock()
        self._pending: list[Path] = []
        self._runs = 0
        self._timer: threading.Timer | None = None

    @property
    def unsynced_runs(self) -> int:
        return self._runs

    def add(self, paths: Iterable[Path]) -> None:
        """One run's files, just written: synced with the batch."""
        with self._lock:
            self._pending.extend(paths)
            self._runs += 1
            due = self._runs >= self.every_runs
            if not due and self._timer is None:
                self._timer = threading.Timer(self.every_seconds, self._sync_quietly)
                self._timer.daemon = True
                self._timer.start()
        if due:
            self.sync()

    def sync(self) -> None:
        """Force every pending file to disk now (an ``OSError`` leaves them pending)."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._runs and not self._pending:
                return
            sync_files(self.folder, self._pending)
            self._pending = []
            self._runs = 0
            self.syncs += 1

    def _sync_quietly(self) -> None:
        """The timer's sync: a failure is raised by the next explicit one."""
        with contextlib.suppress(OSError):
            self.sync()
