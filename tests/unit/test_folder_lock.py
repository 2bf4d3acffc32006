"""One sweep at a time per results folder: a second ``kossim run`` is refused, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kossim.cli import app
from kossim.errors import KossimInputError
from kossim.lab.folder_lock import lock_folder

ROOT = Path(__file__).resolve().parents[2]
HOLD = """\
import sys
from pathlib import Path
from kossim.lab.folder_lock import lock_folder
with lock_folder(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()
"""

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="folders are locked on POSIX")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """Another process holding ``tmp_path / 'results'`` until its stdin closes."""
    folder = tmp_path / "results"
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(path)},
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "locked\n"
        yield proc, folder
    finally:
        proc.kill()
        proc.communicate(timeout=10)


def test_a_second_run_on_a_held_folder_is_refused(
    holder: tuple[subprocess.Popen[str], Path], write_experiment: Callable[..., Path]
) -> None:
    """Exit 2 with a message naming the folder and the process holding it; nothing written."""
    proc, folder = holder
    experiment = write_experiment()
    args = ["run", str(experiment), "--out", str(folder), "--executor", "serial"]
    result = CliRunner().invoke(app, [*args, "--no-report", "--no-progress"])
    assert result.exit_code == 2, result.output
    message = " ".join(result.stderr.split())
    assert f"is being written by another kossim run (process {proc.pid})" in message
    assert not (folder / "runs").exists()


def test_the_lock_ends_with_its_holder(holder: tuple[subprocess.Popen[str], Path]) -> None:
    """A killed sweep never leaves its folder locked."""
    proc, folder = holder
    with pytest.raises(KossimInputError, match="another kossim run"), lock_folder(folder):
        pass
    proc.kill()
    proc.wait(timeout=10)
    with lock_folder(folder):
        assert (folder / ".kossim.lock").read_text() == f"{os.getpid()}\n"


def _free(folder: Path) -> bool:
    """Whether a new open file description can take the lock (so no one holds it)."""
    import fcntl

    fd = os.open(folder / ".kossim.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def test_the_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    """Rounds of ``--precision`` lock the folder again inside the command's own lock;
    it is released when the outermost holder ends."""
    folder = tmp_path / "out"
    with lock_folder(folder):
        with lock_folder(folder):
            assert not _free(folder)
        assert not _free(folder)
    assert _free(folder)


def test_out_on_a_file_is_an_input_error(tmp_path: Path) -> None:
    """``--out`` naming a file is exit 2 material, not a traceback."""
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(KossimInputError, match="is a file, not a folder"), lock_folder(target):
        pass
