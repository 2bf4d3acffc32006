"""YAML resource limits: size, nesting and values after aliases end in a located error that
names the limit and how to raise it; non-plain YAML (tags, sets, dates, inf) is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from kossim.config.limits import YamlLimits
from kossim.config.loader import load_yaml, load_yaml_text
from kossim.errors import KossimInputError


def _first(exc: pytest.ExceptionInfo[KossimInputError]) -> str:
    return str(exc.value.problems[0])


def test_a_document_over_the_size_limit_is_refused_before_parsing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file is refused at once (parsing it with positions would take minutes)."""
    path = tmp_path / "big.yaml"
    path.write_text("values: [" + ", ".join(["1.0"] * 2000) + "]\n")
    size = path.stat().st_size
    monkeypatch.setenv("KOSSIM_YAML_MAX_BYTES", "1000")
    with pytest.raises(KossimInputError) as info:
        load_yaml(path)
    assert _first(info) == (
        f"{path}: the document is {size} bytes, too large to read "
        "(the limit is 1000; raise it with KOSSIM_YAML_MAX_BYTES=4000)"
    )
    monkeypatch.setenv("KOSSIM_YAML_MAX_BYTES", "20000")
    data, _ = load_yaml(path)
    assert len(data["values"]) == 2000


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each limit has a variable; a value that is not a positive integer is an input error."""
    monkeypatch.setenv("KOSSIM_YAML_MAX_DEPTH", "3")
    with pytest.raises(KossimInputError) as info:
        load_yaml_text("a: {b: {c: {d: 1}}}\n", "x.yaml")
    assert _first(info) == (
        "x.yaml:1:13: a.b.c.d: nested deeper than 3 levels "
        "(the limit is 3; raise it with KOSSIM_YAML_MAX_DEPTH=12)"
    )
    monkeypatch.setenv("KOSSIM_YAML_MAX_DEPTH", "many")
    with pytest.raises(KossimInputError) as info:
        YamlLimits.from_env()
    assert _first(info) == (
        "KOSSIM_YAML_MAX_DEPTH: the environment variable must be a positive integer (got 'many')"
    )


def test_aliases_count_at_each_use() -> None:
    """Expanding aliases is bounded, whatever the size of the text."""
    text = "a: &a [1, 1, 1, 1]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
    with pytest.raises(KossimInputError, match="more than 50 values once aliases are expanded"):
        load_yaml_text(text, "x.yaml", YamlLimits(max_values=50))
    data, _ = load_yaml_text(text, "x.yaml", YamlLimits(max_values=200))
    assert len(data["c"]) == 4


def test_nesting_beyond_the_parser_stack_is_located() -> None:
    """Thousands of levels: no RecursionError, the place where the limit is passed."""
    with pytest.raises(KossimInputError) as info:
        load_yaml_text("x: " + "[" * 3000 + "]" * 3000 + "\n", "x.yaml")
    assert _first(info) == (
        "x.yaml:1:68: nested deeper than 64 levels "
        "(the limit is 64; raise it with KOSSIM_YAML_MAX_DEPTH=256)"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a: !!python/object/apply:os.system [ls]\n",
            "a: YAML tag !!python/object/apply:os.system",
        ),
        ("a: !req [x]\n", "a: YAML tag !req is not allowed"),
        ("a: !!set {1, 2}\n", "a: a set (!!set) is not allowed; use a list"),
        ("a: 2024-01-01\n", "a: a date or time is not allowed here; quote it to use it as text"),
        ("a: [1, .nan]\n", "a.1: must be a finite number (got nan)"),
        ("a: {b: -.inf}\n", "a.b: must be a finite number (got -inf)"),
    ],
)
def test_only_plain_data_is_read(text: str, message: str) -> None:
    """Tags, sets, dates and non-finite numbers never reach validation."""
    with pytest.raises(KossimInputError) as info:
        load_yaml_text(text, "x.yaml")
    assert _first(info).startswith("x.yaml:1:")
    assert message in _first(info)


def test_plain_tags_are_allowed() -> None:
    """``!!str`` and friends only restate a plain type."""
    data, _ = load_yaml_text("a: !!str 3\nb: !!float 2\nc: !!map {d: 1}\n", "x.yaml")
    assert data == {"a": "3", "b": 2.0, "c": {"d": 1}}


def test_a_file_that_never_ends_is_read_only_up_to_the_limit() -> None:
    """A device or pipe is not read to its end: the limit stops it."""
    device = Path("/dev/zero")
    if not device.exists():
        pytest.skip("no /dev/zero here")
    with pytest.raises(KossimInputError) as info:
        load_yaml(device)
    assert _first(info).startswith("/dev/zero: the document is more than 1048576 bytes")


def test_deep_block_nesting_is_located_too() -> None:
    """Indentation 400 levels deep: the parser's stack runs out, the error says where."""
    text = "".join("  " * i + "a:\n" for i in range(400)) + "  " * 400 + "1\n"
    with pytest.raises(KossimInputError) as info:
        load_yaml_text(text, "x.yaml")
    assert _first(info) == (
        "x.yaml:66:131: nested deeper than 64 levels "
        "(the limit is 64; raise it with KOSSIM_YAML_MAX_DEPTH=256)"
    )
