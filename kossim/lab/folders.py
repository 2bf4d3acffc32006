"""Opening a results folder made elsewhere: its manifest and tables, or a located error.

Results folders travel (CI caches, colleagues' archives), so commands that
read one (``report``, ``compare``, ``check``) check first that it is a kossim
folder with a readable manifest, and turn an unreadable table into an input
error naming the file instead of a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kossim.errors import KossimInputError

__all__ = ["read_manifest", "read_tables"]

_MANIFEST_KEYS = ("name", "config", "runs")
T = TypeVar("T")


def read_manifest(folder: Path) -> dict[str, Any]:
    """The folder's ``manifest.json`` as a mapping, or a :class:`KossimInputError`."""
    path = Path(folder) / "manifest.json"
    if not Path(folder).is_dir():
        raise KossimInputError.single(
            "not a folder (a results folder is expected)", file=str(folder)
        )
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KossimInputError.single(
            "not a kossim results folder (no manifest.json)", file=str(folder)
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise KossimInputError.single(
            f"cannot read the manifest: {reason}", file=str(path)
        ) from None
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        raise KossimInputError.single(
            "the manifest is not valid JSON (damaged or cut short); run the experiment again",
            file=str(path),
            line=line,
        ) from None
    missing = [
        key for key in _MANIFEST_KEYS if not isinstance(manifest, dict) or key not in manifest
    ]
    if missing:
        raise KossimInputError.single(
            f"not a kossim manifest (no {', '.join(repr(k) for k in missing)})", file=str(path)
        )
    return manifest


def read_tables(
    folder: Path, read_parquet: Callable[[Path], T], read_csv: Callable[[Path], T]
) -> tuple[T, T]:
    """``metrics.parquet`` and ``summary.csv`` read with the given readers, or an input error."""
    tables = []
    for name, reader in (("metrics.parquet", read_parquet), ("summary.csv", read_csv)):
        path = Path(folder) / name
        try:
            tables.append(reader(path))
        except FileNotFoundError:
            raise KossimInputError.single(
                "missing from the results folder; run the experiment again", file=str(path)
            ) from None
        except Exception as exc:  # each reader has its own error types; all mean "damaged"
            raise KossimInputError.single(
                f"cannot read it ({type(exc).__name__}); the file is damaged, run the "
                "experiment again",
                file=str(path),
            ) from None
    return tables[0], tables[1]
