"""Results folders that cannot be written or read: exit 2 with the folder named, no traceback."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import kossim.lab.store
from kossim.cli import app

VALID = Path(__file__).resolve().parents[1] / "data" / "bad" / "valid.yaml"
FAST = ["--executor", "serial", "--no-report", "--no-progress"]


def _invoke(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def _problem(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.stderr.splitlines()[1].split())


def test_out_naming_a_file_is_an_input_error(tmp_path: Path) -> None:
    """``--out`` must name a folder; a file in the way is reported, and left alone."""
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    result = _invoke("run", str(VALID), "--out", str(target), *FAST)
    assert _problem(result) == f"{target}: is a file, not a folder: --out names the results folder"
    assert target.read_text() == "keep me"


def test_a_full_disk_is_an_input_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Writing a run's files fails: the file is named with the system's reason."""

    def full(path: Path, data: bytes, **_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(kossim.lab.store, "atomic_write", full)
    monkeypatch.setattr(kossim.lab.store, "write_in_place", full)
    result = _invoke("run", str(VALID), "--out", str(tmp_path / "out"), *FAST)
    assert _problem(result).endswith(
        ".parquet: cannot write the results folder: No space left on device"
    )


@pytest.mark.parametrize("command", ["check", "report"])
def test_reading_commands_need_a_readable_manifest(tmp_path: Path, command: str) -> None:
    """No manifest, a cut-short one, or JSON that is not a manifest: exit 2, file named."""
    folder = tmp_path / "results"
    folder.mkdir()
    assert _problem(_invoke(command, str(folder))) == (
        f"{folder}: not a kossim results folder (no manifest.json)"
    )
    manifest = folder / "manifest.json"
    manifest.write_text('{"name": "tiny",\n "config": {')
    assert _problem(_invoke(command, str(folder))) == (
        f"{manifest}:2: the manifest is not valid JSON (damaged or cut short); "
        "run the experiment again"
    )
    manifest.write_text(json.dumps([1, 2]))
    assert _problem(_invoke(command, str(folder))) == (
        f"{manifest}: not a kossim manifest (no 'name', 'config', 'runs')"
    )


def test_check_on_a_folder_with_damaged_tables(tmp_path: Path) -> None:
    """A results folder whose metrics are cut short: exit 2 naming the table."""
    folder = tmp_path / "out"
    exp = tmp_path / "exp.yaml"
    exp.write_text(
        VALID.read_text() + "expect:\n  - {metric: sojourn_mean, better: central, than: pod2}\n"
    )
    assert _invoke("run", str(exp), "--out", str(folder), *FAST).exit_code in (0, 1)
    metrics = folder / "metrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[:100])
    assert _problem(_invoke("check", str(folder))) == (
        f"{metrics}: cannot read it (ArrowInvalid); the file is damaged, run the experiment again"
    )
