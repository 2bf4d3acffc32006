"""One writer per results folder.

Two sweeps writing the same folder would remove each other's temporary
files and interleave their tables, so a sweep holds an exclusive lock on
``DIR/.kossim.lock`` while it writes, and a second one is refused at once
with the first one's process id. The lock is the kernel's (``flock``): it
ends with its process, so a killed sweep never leaves the folder locked. The
lock file stays (removing it would let a third sweep lock a new file while a
second still holds the old one).

Locks are re-entrant within a process (``--precision`` runs several sweeps
into one folder). Where ``fcntl`` is missing (Windows), or the file system
cannot lock (some network mounts), folders are written unlocked.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from kossim.errors import KossimInputError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["LOCK_NAME", "lock_folder"]

LOCK_NAME = ".kossim.lock"

_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}
"""What ``flock`` says on file systems that do not lock (some network mounts)."""

_held: dict[Path, int] = {}
"""Folders this process holds, with how many nested holders each has."""


@contextlib.contextmanager
def lock_folder(folder: Path, option: str = "--out") -> Iterator[None]:
    """Hold ``folder`` for writing until the block ends (creating the folder).

    Raises :class:`KossimInputError` (exit 2), placed at ``option``, when
    another process holds it or the folder cannot be written.
    """
    key, fd = _open_lock_file(folder, option)
    if fd is not None:
        _take(fd, folder, option)
    _held[key] = _held.get(key, 0) + 1
    try:
        yield
    finally:
        _held[key] -= 1
        if _held[key] == 0:
            del _held[key]
        if fd is not None:
            os.close(fd)  # closing the only descriptor releases the flock


def _open_lock_file(folder: Path, option: str) -> tuple[Path, int | None]:
    """The folder's resolved path, and the lock file opened unless this process
    already holds the folder (or cannot lock at all)."""
    if folder.exists() and not folder.is_dir():
        raise KossimInputError.single(
            f"is a file, not a folder: {option} names the results folder", file=str(folder)
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        key = folder.resolve()
        if key in _held or fcntl is None:
            return key, None
        return key, os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise KossimInputError.single(
            f"cannot write results there: {exc.strerror or exc}", path=option, got=str(folder)
        ) from None


def _take(fd: int, folder: Path, option: str) -> None:
    """Lock without waiting and record this process's id; name the holder if held."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise KossimInputError.single(
            f"{folder} is being written by another kossim run (process {holder}); "
            "wait for it to finish, or write elsewhere with --out",
            path=option,
            got=str(folder),
        ) from None
    except OSError as exc:
        if exc.errno in _NO_LOCKS:
            return  # a file system without locks: written unlocked, as before locks existed
        os.close(fd)
        raise KossimInputError.single(
            f"cannot lock the results folder: {exc.strerror or exc}", path=option, got=str(folder)
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
