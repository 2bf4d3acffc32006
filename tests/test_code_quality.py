"""House standards: ruff lint and format are clean; mypy passes on kossim/ and policies/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is in the test extra")
def test_ruff_lint_and_format() -> None:
    """No lint finding and no file ruff format would change."""
    lint = _run("ruff", "check", "kossim", "policies", "tests")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = _run("ruff", "format", "--check", "kossim", "policies")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_mypy() -> None:
    """mypy (configured in pyproject.toml) finds no issue in the engine, lab and policies."""
    pytest.importorskip("mypy", reason="mypy is in the test extra")
    result = _run(sys.executable, "-m", "mypy", "kossim", "policies")
    assert result.returncode == 0, result.stdout + result.stderr
