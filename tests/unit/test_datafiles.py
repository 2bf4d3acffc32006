"""Empirical data files: one column of numbers, a header allowed, problems located, no echo."""

from __future__ import annotations

from pathlib import Path

import pytest

from kossim.datafiles import DataFileError, file_digest, read_values
from kossim.dists import Empirical


def _file(tmp_path: Path, text: str, name: str = "work.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_header_row_over_one_column_is_skipped(tmp_path: Path) -> None:
    """``work`` above the numbers is a header, not a number that failed to parse."""
    assert read_values(_file(tmp_path, "work\n1.5\n\n2\n# a comment\n0\n")) == [1.5, 2.0, 0.0]
    assert read_values(_file(tmp_path, "1.5\n2\n")) == [1.5, 2.0]


def test_a_wider_file_needs_a_named_column(tmp_path: Path) -> None:
    """Two columns are never flattened into one list of values."""
    path = _file(tmp_path, "work,size\n1.0,3\n2.5,4\n")
    assert read_values(path, "size") == [3.0, 4.0]
    with pytest.raises(DataFileError, match=r"2 columns \(work, size\); give a one-column"):
        read_values(path)
    with pytest.raises(DataFileError, match=r"no column 'sise'; columns: work, size"):
        read_values(path, "sise")
    with pytest.raises(DataFileError, match="no header row to find column 'size' in"):
        read_values(_file(tmp_path, "1.0,3\n2.5,4\n", "plain.csv"), "size")
    with pytest.raises(DataFileError, match="row 3 has 1 fields, expected 2"):
        read_values(_file(tmp_path, "work,size\n1.0,3\n2.5\n", "ragged.csv"), "size")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("work\n1.0\nnan\n", "row 3, column 1: not a finite number"),
        ("1.0\n-inf\n", "row 2, column 1: not a finite number"),
        ("1.0\n-2\n", "row 2, column 1: negative (values are times or amounts of work)"),
        ("1.0\nhunter2\n", "row 2, column 1: not a number"),
        ("work\n", "no values below the header row"),
        ("\n\n", "no values"),
    ],
)
def test_problems_name_file_row_and_column_without_echoing(
    tmp_path: Path, text: str, message: str
) -> None:
    """The file may hold secrets: a problem says where, never what is written there."""
    path = _file(tmp_path, text)
    with pytest.raises(DataFileError) as info:
        read_values(path)
    assert str(info.value) == f"empirical file {path}: {message}"
    assert "hunter2" not in str(info.value)


def test_unreadable_files_are_data_errors(tmp_path: Path) -> None:
    """A folder, a missing file or bytes that are not UTF-8 text: located errors."""
    (tmp_path / "bin.csv").write_bytes(b"\xff\xfe\x00\x01")
    if Path("/dev/zero").exists():  # a device would be read forever
        with pytest.raises(DataFileError, match="not a regular file"):
            read_values("/dev/zero")
    for name, message in [
        (".", "is a directory"),
        ("missing.csv", "not found"),
        ("bin.csv", "not UTF-8 text"),
    ]:
        with pytest.raises(DataFileError, match=message):
            read_values(tmp_path / name)


def test_the_distribution_reads_its_column(tmp_path: Path) -> None:
    """``column:`` picks a column of a wider file; it needs a file."""
    path = _file(tmp_path, "work,size\n1.0,3\n2.5,4\n")
    dist = Empirical(dist="empirical", file=str(path), column="work")
    assert dist.values == [1.0, 2.5]
    with pytest.raises(ValueError, match="'column' picks a column of 'file'"):
        Empirical(dist="empirical", values=[1.0], column="work")


def test_the_digest_follows_the_contents(tmp_path: Path) -> None:
    """Same bytes, same digest; one changed value, another digest."""
    path = _file(tmp_path, "1.0\n2.0\n")
    before = file_digest(path)
    assert file_digest(_file(tmp_path, "1.0\n2.0\n", "copy.csv")) == before
    path.write_text("1.0\n2.5\n")
    assert file_digest(path) != before
