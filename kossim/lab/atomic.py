"""Atomic file replacement: a reader sees the old file or the whole new one, never half."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

__all__ = ["TMP_SUFFIX", "atomic_write", "write_in_place"]

TMP_SUFFIX = ".tmp"


def atomic_write(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one.

    The temporary file sits in the same folder (``os.replace`` is atomic only
    within a file system) and is created with ``O_EXCL`` and mode 0666, so the
    result honours the umask like any other file. With ``sync=False`` the data
    is not forced to disk before the rename: the file is still whole or absent
    for any process (a ``kill -9`` of the writer included), but a power loss may
    leave it empty or cut until someone syncs it (:mod:`kossim.lab.durable`).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TMP_SUFFIX}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if sync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_in_place(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` directly: for a file some later, atomically written file
    vouches for by checksum (a run's data files and its record), so a cut one is detected."""
    with open(path, "wb") as handle:
        handle.write(data)
