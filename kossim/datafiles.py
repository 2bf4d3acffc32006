"""Numbers from the data files of empirical distributions (``file:``), read defensively.

Data files come from colleagues and CI caches, so each one is read as
untrusted input: a CSV of one column of non-negative finite numbers, with an
optional header row; a wider file needs ``column:`` naming one header. Every
problem names the file, the row and the column, and never echoes the file's
contents (it may not be the file the author meant to share).
:func:`file_digest` identifies a file by its contents, so that a run's key
changes when its data do.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import math
from pathlib import Path

__all__ = ["DataFileError", "file_digest", "read_values"]


class DataFileError(ValueError):
    """A data file that cannot give a list of numbers; the message names file, row, column."""


def file_digest(path: str | Path) -> str:
    """SHA-256 of the file's bytes (hex), or of its path when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        digest.update(f"unreadable:{path}".encode())
    return digest.hexdigest()


def read_values(path: str | Path, column: str | None = None) -> list[float]:
    """The non-negative finite numbers of one column of ``path`` (a header row is allowed).

    Every sweep point and every run validates its distributions, so a file is
    parsed once per version (its size and modification time) and reused.
    """
    try:
        stat = Path(path).stat()
    except OSError:
        return list(_read_values(str(path), column, None))
    return list(_read_values(str(path), column, (stat.st_size, stat.st_mtime_ns)))


@functools.lru_cache(maxsize=32)
def _read_values(
    path: str, column: str | None, version: tuple[int, int] | None
) -> tuple[float, ...]:
    return tuple(_parse(Path(path), column))


def _parse(path: Path, column: str | None) -> list[float]:
    rows = _rows(path)
    if not rows:
        raise DataFileError(f"empirical file {path}: no values")
    header = None if _is_number_row(rows[0][1]) else rows.pop(0)
    width = len(header[1] if header else rows[0][1])
    index = _column_index(path, header, column, width)
    values = []
    for line, cells in rows:
        if len(cells) != width:
            raise DataFileError(
                f"empirical file {path}: row {line} has {len(cells)} fields, expected {width}"
            )
        values.append(_number(path, line, index, cells[index]))
    if not values:
        raise DataFileError(f"empirical file {path}: no values below the header row")
    return values


def _rows(path: Path) -> list[tuple[int, list[str]]]:
    """``(line number, cells)`` of each non-blank, non-comment row."""
    if path.exists() and not path.is_dir() and not path.is_file():
        raise DataFileError(f"empirical file {path}: not a regular file (a device or a pipe)")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.reader(handle)
            rows = []
            for cells in reader:
                if not cells or not "".join(cells).strip() or cells[0].lstrip().startswith("#"):
                    continue
                rows.append((reader.line_num, [c.strip() for c in cells]))
            return rows
    except FileNotFoundError:
        raise DataFileError(f"empirical file not found: {path}") from None
    except IsADirectoryError:
        raise DataFileError(f"empirical file {path}: is a directory") from None
    except UnicodeDecodeError:
        raise DataFileError(f"empirical file {path}: not UTF-8 text") from None
    except csv.Error as exc:
        raise DataFileError(f"empirical file {path}: not a CSV file ({exc})") from None
    except OSError as exc:
        raise DataFileError(f"empirical file {path}: cannot read ({exc.strerror})") from None


def _is_number_row(cells: list[str]) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


def _column_index(
    path: str | Path, header: tuple[int, list[str]] | None, column: str | None, width: int
) -> int:
    if column is None:
        if width != 1:
            names = f" ({', '.join(header[1])})" if header else ""
            raise DataFileError(
                f"empirical file {path}: {width} columns{names}; give a one-column file, or "
                "name the column with 'column:' (the file needs a header row)"
            )
        return 0
    if header is None:
        raise DataFileError(f"empirical file {path}: no header row to find column {column!r} in")
    if column not in header[1]:
        raise DataFileError(
            f"empirical file {path}: no column {column!r}; columns: {', '.join(header[1])}"
        )
    return header[1].index(column)


def _number(path: str | Path, line: int, index: int, text: str) -> float:
    where = f"empirical file {path}: row {line}, column {index + 1}"
    try:
        value = float(text)
    except ValueError:
        raise DataFileError(f"{where}: not a number") from None
    if not math.isfinite(value):
        raise DataFileError(f"{where}: not a finite number")
    if value < 0:
        raise DataFileError(f"{where}: negative (values are times or amounts of work)")
    return value
