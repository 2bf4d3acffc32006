"""The command line as a CI log shows it: usage errors, failed runs, progress, the table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import kossim
from tests.unit.test_cli import invoke, one_line

SERIAL = ["--executor", "serial"]
EXPLODING = {
    "name": "exploding",
    "dispatch": "push",
    "routing": {"id": "tests.plugins:Exploding", "seed": 1, "after": 5},
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder of the tiny experiment (2 policies x 2 rates x 3 seeds)."""
    from tests.conftest import TINY

    root = tmp_path_factory.mktemp("usage")
    experiment = root / "tiny.yaml"
    experiment.write_text(json.dumps(TINY))
    out = root / "results"
    result = invoke("run", experiment, "--out", out, *SERIAL, "--no-progress")
    assert result.exit_code == 0, result.output
    return out


def test_version() -> None:
    """``kossim --version`` prints the version and exits 0."""
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"kossim {kossim.__version__}"


def test_zero_seeds_is_a_usage_error(write_experiment: Callable[..., Path]) -> None:
    """``--seeds 0`` stops before anything runs, with exit 2."""
    out = write_experiment().parent / "out"
    result = invoke("run", write_experiment(), "--seeds", "0", "--out", out, *SERIAL)
    assert result.exit_code == 2
    assert "--seeds" in result.stderr
    assert not out.exists()


def test_invalid_input_leaves_no_results_folder(write_experiment: Callable[..., Path]) -> None:
    """The folder (and its lock) is created only for input that can run."""
    experiment = write_experiment(sweep={"scenario.workload.arrivals.rate": [1.0, -1.0]})
    out = experiment.parent / "never"
    assert invoke("run", experiment, "--out", out, *SERIAL).exit_code == 2
    result = invoke("run", write_experiment(), "--out", out, "--precision", "bogus", *SERIAL)
    assert result.exit_code == 2
    assert not out.exists()


def test_compare_needs_two_folders(folder: Path) -> None:
    """One folder is a usage error pointing at ``kossim report``."""
    result = invoke("compare", folder, "--out", folder.parent / "cmp")
    assert result.exit_code == 2
    assert "two or more results folders" in one_line(result.stderr)
    assert not (folder.parent / "cmp").exists()


def test_an_unknown_baseline_is_an_error_not_a_traceback(folder: Path) -> None:
    """``--baseline`` must name a policy of the folder; the error lists them."""
    result = invoke("report", folder, "--baseline", "centrl")
    assert result.exit_code == 2
    message = one_line(result.stderr)
    assert "no policy 'centrl'" in message
    assert "policies: central, random; did you mean 'central'?" in message
    assert "Traceback" not in result.output


def test_the_table_fits_an_80_column_log(folder: Path) -> None:
    """One row per policy and point, one column per metric, the sweep path shortened."""
    result = invoke("run", folder.parent / "tiny.yaml", "--out", folder, *SERIAL,
                    "--resume", "--no-report", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.split()[:1] == ["policy"])
    assert header.split() == [
        "policy", "rate", "sojourn_mean", "wait_mean", "throughput", "utilization", "n",
    ]  # fmt: skip
    rows = [line.split() for line in lines if line.split()[:1] in (["central"], ["random"])]
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("central", "1.5", "3"), ("central", "2.4", "3"),
        ("random", "1.5", "3"), ("random", "2.4", "3"),
    ]  # fmt: skip
    assert "rate = scenario.workload.arrivals.rate" in result.stdout


def test_a_failed_run_is_named_with_its_cause(
    write_experiment: Callable[..., Path], tiny_data: dict[str, Any]
) -> None:
    """Exit 1; a line per failed run (policy, point, seed, exception); the table counts it."""
    tiny_data["policies"].append(EXPLODING)
    experiment = write_experiment(tiny_data)
    out = experiment.parent / "failing"
    result = invoke("run", experiment, "--out", out, *SERIAL, "--no-report", "--no-progress")
    assert result.exit_code == 1
    for rate in ("1.5", "2.4"):
        assert (
            f"failed: policy exploding at rate={rate}, seed 1: "
            "RuntimeError: exploding routing went off (seed 1)"
        ) in result.stderr
    assert "2 runs failed: tracebacks in" in one_line(result.stderr)
    rows = [line.split() for line in result.stdout.splitlines() if "exploding" in line]
    assert [(r[1], r[-1]) for r in rows] == [("1.5", "2/3"), ("2.4", "2/3")]


def test_a_policy_whose_runs_all_failed_keeps_its_row(
    write_experiment: Callable[..., Path], tiny_data: dict[str, Any]
) -> None:
    """With no result to summarise, the policy is still in the table, marked failed."""
    tiny_data.update(seeds=[1], policies=[tiny_data["policies"][0], EXPLODING])
    experiment = write_experiment(tiny_data)
    out = experiment.parent / "all-failed"
    result = invoke("run", experiment, "--out", out, *SERIAL, "--no-report", "--no-progress")
    assert result.exit_code == 1
    rows = [line.split() for line in result.stdout.splitlines() if "exploding" in line]
    assert rows == [["exploding", rate, *["failed"] * 4, "0/1"] for rate in ("1.5", "2.4")]


def test_progress_goes_to_a_log_as_lines(write_experiment: Callable[..., Path]) -> None:
    """Where stderr is not a terminal, progress is plain lines (the last says all done)."""
    experiment = write_experiment()
    result = invoke("run", experiment, "--out", experiment.parent / "log", *SERIAL,
                    "--no-report")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "runs: 12 of 12 done, 0 failed" in result.stderr


def test_plurals(write_experiment: Callable[..., Path], tiny_data: dict[str, Any]) -> None:
    """One of each is singular."""
    tiny_data.update(seeds=1, policies=tiny_data["policies"][:1], sweep={})
    result = invoke("validate", write_experiment(tiny_data))
    assert result.exit_code == 0, result.output
    assert "1 policy x 1 point x 1 seed = 1 run;" in one_line(result.stdout)


def test_the_report_path_comes_after_the_table(write_experiment: Callable[..., Path]) -> None:
    """The last thing a run says is where its report is."""
    experiment = write_experiment(seeds=2, sweep={})
    out = experiment.parent / "reported"
    result = invoke("run", experiment, "--out", out, *SERIAL, "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.output.index(f"report: {out / 'report.html'}") > result.output.index("policy")


def test_another_configuration_in_the_folder_is_a_warning(
    write_experiment: Callable[..., Path],
) -> None:
    """A ``--set`` run into a folder made from other settings says so and suggests --out."""
    experiment = write_experiment(seeds=1)
    out = experiment.parent / "shared"
    quiet = ["--no-report", "--no-progress"]
    assert invoke("run", experiment, "--out", out, *SERIAL, *quiet).exit_code == 0
    result = invoke("run", experiment, "--out", out, *SERIAL, "--set", "horizon=150", *quiet)
    assert result.exit_code == 0, result.output
    message = one_line(result.stderr)
    assert f"warning: {out} holds results of another configuration" in message
    assert "(differs in horizon)" in message
    assert "Use --out DIR to keep both." in message
    again = invoke("run", experiment, "--out", out, *SERIAL, "--set", "horizon=150", *quiet)
    assert "holds results of another configuration" not in again.stderr
