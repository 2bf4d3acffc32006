"""The pandas-free results tables (:mod:`kossim.lab.tables`) give what pandas gave: column
types and schema metadata, Parquet and CSV bytes, summaries to the last bit, and the summary
table's reading of ``summary.csv``. pandas is the oracle here."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kossim.analysis.stats import summarize
from kossim.console import read_summary
from kossim.lab.tables import (
    csv_bytes,
    json_text,
    parquet_bytes,
    scalar_column,
    summary_table,
    tidy,
    typed_column,
)

SWEPT_VALUES = [
    [1, 2],
    [1, 2.5],
    [1.0, 2.0],
    [True, False],
    ["a", "b"],
    [1, None],
    [1.5, math.nan],
    [True, None],
    ["a", None],
    [None, None],
    [{"dist": "constant", "value": 1.0}, {"dist": "exponential", "mean": 2}],
    [[1, 2], [3]],
    [1, "a"],
    [True, 1],
    [True, 2.5],
    [2**70, 1],
]


def _pandas_typed(values: list[object]) -> pd.Series:
    """How the store typed a swept column with pandas (the inference pandas makes)."""
    series = pd.Series([json_text(v) for v in values])
    if series.dtype == object and len(series):
        series = series.map(lambda v: "null" if v is None else str(v))
    return series


def _pandas_parquet(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return bytes(sink.getvalue().to_pybytes())


def _pandas_csv(frame: pd.DataFrame) -> bytes:
    text = frame.to_csv(index=False, lineterminator="\n", float_format=lambda v: repr(float(v)))  # type: ignore[arg-type]
    return text.encode()


@pytest.mark.parametrize("values", SWEPT_VALUES, ids=repr)
def test_swept_columns_get_the_types_and_bytes_pandas_gave_them(values: list[object]) -> None:
    ours = pa.table({"policy": pa.array(["a", "b"], pa.large_string()), "x": typed_column(values)})
    theirs = pd.DataFrame({"policy": ["a", "b"], "x": _pandas_typed(values)})
    assert parquet_bytes(ours) == _pandas_parquet(theirs)
    assert csv_bytes(ours) == _pandas_csv(theirs)


def test_tidy_tables_match_a_pandas_round_trip_byte_for_byte() -> None:
    """Text as large strings, NaN as null; CSV quoting, missing cells, -0.0, inf."""
    table = pa.table(
        {
            "policy": pa.array(["a,b", 'say "hi"', "line\nbreak", ""], pa.string()),
            "seed": pa.array([0, 1, 2, 3], pa.int64()),
            "flag": pa.array([True, False, True, False], pa.bool_()),
            "value": pa.array([1 / 3, math.nan, -0.0, math.inf], pa.float64()),
        }
    )
    frame = table.to_pandas()
    assert parquet_bytes(tidy(table)) == _pandas_parquet(frame)
    assert csv_bytes(tidy(table)) == _pandas_csv(frame)
    assert scalar_column(7, 3).type == pa.array([7] * 3).type
    assert scalar_column("x", 2).type == pa.array(["x"] * 2).type
    assert scalar_column(0.5, 0).type == pa.array([]).type


def _metrics(seed: int) -> pd.DataFrame:
    """Tidy metric rows over seeds with awkward values: spreads of many magnitudes, NaN
    seeds, a constant metric, infinities, one seed only."""
    rng = np.random.default_rng(seed)
    rows = []
    for policy in ("zeta", "alpha"):
        for rate in (2.5, 1.0):
            for metric, scale in (("sojourn_mean", 1e-3), ("lost", 0.0), ("big", 1e9)):
                for scope in ("all", "type=b", "type=a"):
                    seeds = 1 if metric == "big" and scope == "type=a" else 7
                    for s in range(seeds):
                        value = float(
                            1.0 + scale * rng.standard_normal() * 10.0 ** rng.integers(-3, 4)
                        )
                        if rng.random() < 0.1:
                            value = math.nan
                        if metric == "lost" and scope == "type=b" and s == 3:
                            value = math.inf
                        rows.append((policy, s, rate, metric, scope, value))
    columns = ["policy", "seed", "scenario.rate", "metric", "scope", "value"]
    return pd.DataFrame(rows, columns=columns)


@pytest.mark.parametrize("seed", range(20))
def test_summaries_keep_every_bit_of_pandas_grouped_mean_and_std(seed: int) -> None:
    frame = _metrics(seed)
    table = tidy(pa.Table.from_pandas(frame, preserve_index=False))
    by = ["policy", "scenario.rate", "metric", "scope"]
    assert csv_bytes(summary_table(table, by)) == _pandas_csv(summarize(frame))


def test_the_summary_table_reads_summary_csv_as_pandas_does(tmp_path: Path) -> None:
    text = (
        "policy,rate,count,flag,group,empty,metric,scope,mean,std,ci_low,ci_high,n\n"
        "a,2.0,4,True,x,,sojourn_mean,all,1.5,,,,1\n"
        'b,3.5,5,False,null,,"wait,mean",all,inf,0.25,-1e-05,1e+300,2\n'
    )
    path = tmp_path / "summary.csv"
    path.write_text(text)
    names, rows = read_summary(path)
    frame = pd.read_csv(io.StringIO(text))
    assert names == list(frame.columns)
    for ours, theirs in zip(rows, frame.to_dict("records"), strict=True):
        assert [str(v) for v in ours.values()] == [str(v) for v in theirs.values()]
        assert [type(v) for v in ours.values()] == [
            type(v.item() if hasattr(v, "item") else v) for v in theirs.values()
        ]
