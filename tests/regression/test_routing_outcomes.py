"""The routing experiments' pinned outcomes, run in full (``kossim check`` in process).

Each file under ``experiments/routing/`` compares a routing or delegation
mechanism with a naive baseline; every expectation of its ``expect:`` block
must hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kossim.analysis.check import check_folder
from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment

ROUTING = Path(__file__).resolve().parents[2] / "experiments" / "routing"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["roles"])
def test_the_pinned_routing_outcomes_hold(name: str, tmp_path: Path) -> None:
    loaded = load_experiment(ROUTING / f"{name}.yaml")
    outcome = run_experiment(loaded, tmp_path, executor="local", progress=False)
    assert outcome.n_failed == 0
    results = check_folder(tmp_path, loaded.experiment.expect, ROUTING)
    failed = [(r.expectation, r.detail) for r in results if not r.passed]
    assert not failed, failed
    assert len(results) == len(loaded.experiment.expect)
