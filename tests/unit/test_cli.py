"""The ``kossim`` command line, in process (CliRunner) and once as the real console script.

One tiny experiment (2 policies, 2 seeds, horizon 50) is run once per module
with the report; the other commands reuse its results folder or run without
rendering, so the file stays fast.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner, Result

from kossim.cli import app
from kossim.registry import available, registered_kinds

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad"
FAST = ["--jobs", "1", "--executor", "serial"]

TINY = """\
name: tiny
seeds: 2
horizon: 50
warmup: 5
scenario:
  agents:
    - {group: agent, count: 4, speed: 1.0, capacity: 1}
  workload:
    arrivals: {process: poisson, rate: 3.0}
    tasks:
      - {type: job, work: {dist: exponential, mean: 1.0}}
policies:
  - {name: central, dispatch: central, queue: fcfs}
  - {name: random, dispatch: push, routing: random}
expect:
  - {metric: lost, max: 0}
"""
BROKEN_EXPECTATION = "  - {metric: throughput, min: 1000}\n"


def invoke(*args: str | Path) -> Result:
    """Run ``kossim ARGS`` in process; a Python exception escaping the CLI fails the test."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_line(text: str) -> str:
    """Whitespace runs as one space: rich wraps output at the console width."""
    return " ".join(text.split())


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def console_script() -> str:
    """The installed ``kossim`` script next to this interpreter, else the one on PATH."""
    script = Path(sys.executable).with_name("kossim")
    found = str(script) if script.is_file() else shutil.which("kossim")
    if found is None:
        pytest.skip("the kossim console script is not installed")
    return found


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder of the tiny experiment, written by ``kossim run`` with its report."""
    folder = tmp_path_factory.mktemp("cli")
    experiment = write(folder, "tiny.yaml", TINY)
    out = folder / "results"
    result = invoke("run", experiment, "--out", out, *FAST, "--no-progress")
    assert result.exit_code == 0, result.output
    return out


# --- inspecting ----------------------------------------------------------------------------


def test_policies_lists_every_registered_id() -> None:
    """Every registered component, of every kind, shows as a row ``kind | id``."""
    result = invoke("policies")
    assert result.exit_code == 0
    for kind in registered_kinds():
        for ident in available(kind):
            assert re.search(rf"│ {kind}\s+│ {re.escape(ident)}\s+│", result.stdout), ident


def test_schema_is_a_json_schema_of_experiments() -> None:
    """``kossim schema`` prints one JSON Schema document, with scenario and policies."""
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert {"name", "scenario", "policies"} <= set(schema["required"])
    assert {"scenario", "policies", "sweep", "expect"} <= set(schema["properties"])
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validators.validator_for(schema).check_schema(schema)


def test_validate_reports_the_run_count() -> None:
    """The quick start is valid: 4 policies x 5 seeds, and its 4 expectations."""
    result = invoke("validate", ROOT / "experiments" / "quickstart.yaml")
    assert result.exit_code == 0, result.output
    assert "4 policies x 1 point x 5 seeds = 20 runs; expectations: 4" in one_line(result.stdout)


def test_set_overrides_the_file() -> None:
    """``--set seeds=2`` replaces the file's 5 seeds."""
    result = invoke("validate", ROOT / "experiments" / "quickstart.yaml", "--set", "seeds=2")
    assert result.exit_code == 0, result.output
    assert "4 policies x 1 point x 2 seeds = 8 runs" in one_line(result.stdout)


# --- running and reporting -----------------------------------------------------------------


def test_run_writes_the_results_folder(results: Path) -> None:
    """Tidy metrics for both policies and both seeds, a summary, a manifest and the report."""
    for name in ("metrics.csv", "summary.csv", "manifest.json", "report.html"):
        assert (results / name).is_file(), name
    metrics = pd.read_csv(results / "metrics.csv")
    assert sorted(metrics["policy"].unique()) == ["central", "random"]
    assert sorted(metrics["seed"].unique()) == [0, 1]
    assert set(pd.read_csv(results / "summary.csv")["policy"]) == {"central", "random"}
    manifest: dict[str, Any] = json.loads((results / "manifest.json").read_text())
    assert manifest["config"]["name"] == "tiny"


def test_set_overrides_a_run(tmp_path: Path) -> None:
    """An override reaches the runs: ``--set seeds=1`` runs seed 0 only."""
    experiment = write(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "one-seed"
    args = ["--set", "seeds=1", "--no-report", "--no-progress"]
    result = invoke("run", experiment, "--out", out, *FAST, *args)
    assert result.exit_code == 0, result.output
    assert sorted(pd.read_csv(out / "metrics.csv")["seed"].unique()) == [0]


def test_report_re_renders_from_the_folder(results: Path) -> None:
    """``kossim report DIR`` needs nothing but the folder."""
    (results / "report.html").unlink()
    result = invoke("report", results)
    assert result.exit_code == 0, result.output
    assert (results / "report.html").is_file()


def test_report_on_a_folder_without_results_exits_2(tmp_path: Path) -> None:
    result = invoke("report", tmp_path)
    assert result.exit_code == 2
    assert f"{tmp_path}: not a kossim results folder (no manifest.json)" in one_line(result.stderr)
    assert not (tmp_path / "report.html").exists()


def test_overload_is_shown_in_console_and_report(tmp_path: Path) -> None:
    """A --set that overloads the tiny system (rate 10 on 4 agents: 2.5) is called so in the
    console and at the top of the report, which also holds the configuration as run."""
    experiment = write(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "results"
    result = invoke("run", experiment, "--out", out, *FAST, "--no-progress",
                    "--set", "scenario.workload.arrivals.rate=10")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "offered load: 2.50" in result.stdout
    assert "warning: offered load 2.50 >= 1" in one_line(result.stderr)
    markdown = (out / "report.md").read_text()
    headline = markdown[markdown.index("## Headline") : markdown.index("## tiny")]
    assert "⚠ offered load 2.50 >= 1" in headline
    scenario = markdown[markdown.index("Scenario as run") :]
    assert "| 2.5 | overloaded |" in scenario
    assert "      rate: 10\n" in scenario  # the resolved configuration, override applied
    assert "- **--set overrides**: scenario.workload.arrivals.rate=10" in markdown


def test_precision_not_met_says_so_and_exits_1(tmp_path: Path) -> None:
    """A target the seed cap cannot reach: exit 1, the half-width reached, the seeds needed
    (beyond the cap), and run counts that add up to every run executed."""
    experiment = write(tmp_path, "tiny.yaml", TINY)
    out = tmp_path / "results"
    result = invoke("run", experiment, "--out", out, *FAST, "--no-report", "--no-progress",
                    "--precision", "sojourn_mean:0.001", "--max-seeds", "6")  # fmt: skip
    assert result.exit_code == 1, result.output
    text = one_line(result.stderr)
    assert "precision round 1: 3 seeds" in text
    assert (
        "precision round 2: adding 3 seeds (6 in all; the runs of the first 3 are reused)" in text
    )
    assert "precision target not met: sojourn_mean reached a 95 % half-width of" in text
    precision = json.loads((out / "manifest.json").read_text())["precision"]
    assert precision["met"] is False
    last = precision["rounds"][-1]
    assert last["seeds"] == 6 and last["required"] > 6
    assert f"about {last['required']} seeds would meet it" in text
    assert "12 ok, 0 failed, 0 resumed" in text  # 2 policies x 6 seeds, all run here
    assert "resuming" not in text  # no --resume was given: later rounds say what they reuse


def test_precision_on_an_unknown_metric_is_an_input_error(tmp_path: Path) -> None:
    """The metric is checked before the first round: exit 2 with a did-you-mean."""
    experiment = write(tmp_path, "tiny.yaml", TINY)
    result = invoke("run", experiment, "--out", tmp_path / "r", *FAST, "--precision",
                    "sojourn_maen:0.05")  # fmt: skip
    assert result.exit_code == 2
    assert "did you mean 'sojourn_mean'?" in one_line(result.stderr)
    assert not (tmp_path / "r").exists()


# --- checking expectations -----------------------------------------------------------------


def test_check_passes(results: Path) -> None:
    """The tiny experiment's expectation holds: exit 0 and a PASS row."""
    result = invoke("check", results)
    assert result.exit_code == 0, result.output
    assert "PASS" in result.stdout
    assert "FAIL" not in result.stdout


def test_check_fails_with_a_table_naming_the_expectation(tmp_path: Path) -> None:
    """A broken expectation exits 1; the table names it and shows it failed."""
    experiment = write(tmp_path, "tiny.yaml", TINY + BROKEN_EXPECTATION)
    result = invoke("check", experiment, "--out", tmp_path / "results", *FAST)
    assert result.exit_code == 1, result.output
    table = one_line(result.stdout)
    assert "PASS" in table  # lost <= 0 still holds
    assert "FAIL" in table
    assert "throughput" in table


def test_check_writes_report_junit_and_json(tmp_path: Path) -> None:
    """`kossim check` writes the report with its expectations table, and with --junit and
    --json the verdicts in forms CI systems read: one test case per expectation."""
    import xml.etree.ElementTree as ET

    experiment = write(tmp_path, "tiny.yaml", TINY + BROKEN_EXPECTATION)
    out = tmp_path / "results"
    junit, json_file = tmp_path / "ci" / "check.xml", tmp_path / "check.json"
    result = invoke("check", experiment, "--out", out, *FAST, "--no-progress",
                    "--junit", junit, "--json", json_file)  # fmt: skip
    assert result.exit_code == 1, result.output
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    cases = suite.findall("testcase")
    assert [c.find("failure") is None for c in cases] == [True, False]
    assert "throughput" in cases[1].get("name", "")
    body = json.loads(json_file.read_text())
    assert (body["passed"], body["failed"]) == (1, 1)
    assert [e["passed"] for e in body["expectations"]] == [True, False]
    html = (out / "report.html").read_text()
    assert "1 of 2 expectations passed" in html
    assert (
        html.index('id="headline"') < html.index('id="expectations"') < html.index('id="metrics"')
    )


def test_run_shows_expectations_in_the_report(results: Path) -> None:
    """`kossim run` of an experiment with expect: puts the verdicts in its report."""
    markdown = (results / "report.md").read_text()
    assert "## 1. Expectations" in markdown
    assert "1 of 1 expectations passed" in markdown
    assert "| PASS | lost" in markdown


def test_check_of_a_stored_folder_fails_on_its_broken_expectation(tmp_path: Path) -> None:
    """``kossim check DIR`` reads the expectations from the folder's manifest."""
    experiment = write(tmp_path, "tiny.yaml", TINY + BROKEN_EXPECTATION)
    out = tmp_path / "results"
    result = invoke("run", experiment, "--out", out, *FAST, "--no-report", "--no-progress")
    assert result.exit_code == 0, result.output
    result = invoke("check", out)
    assert result.exit_code == 1, result.output
    assert "FAIL" in result.stdout
    assert "throughput" in result.stdout


# --- the real console script ---------------------------------------------------------------


def test_console_script_exits_2_on_bad_input() -> None:
    """End to end: invalid input is exit code 2 and a located line, not a traceback."""
    bad = BAD / "negative_rate.yaml"
    done = subprocess.run(
        [console_script(), "validate", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert f"{bad}:10:34: scenario.workload.arrivals.rate: Input should be greater" in one_line(
        done.stderr
    )


def test_check_passes_on_a_theory_experiment(tmp_path: Path) -> None:
    """`kossim check` runs the M/M/4 theory case and every Erlang C expectation holds."""
    exp = Path(__file__).resolve().parents[2] / "experiments" / "theory" / "mmc_erlang_c.yaml"
    result = invoke("check", exp, "--out", tmp_path / "mmc", "--executor", "serial",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "5 of 5 expectations passed" in one_line(result.output)
