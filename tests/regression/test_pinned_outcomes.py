"""The protocol and routing experiments' pinned outcomes, run in full (``kossim check``
in process): every expectation of their ``expect:`` blocks must hold.

Each file under ``experiments/protocols/``, ``experiments/routing/`` and
``experiments/recovery/`` states what
its mechanism achieves against a baseline (heartbeat failure detection, delegation
chains, contract net against a growing inequality of the fleet; roles, bundles,
trees, trust, backpressure). ``protocols/contract_net.yaml``, the latency sweep, is
280 runs, too long for every test run; its smoke run is in ``test_experiments_smoke``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kossim.analysis.check import check_folder
from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
TOO_LONG = {"protocols/contract_net.yaml"}
PINNED = sorted(
    f"{p.parent.name}/{p.name}"
    for folder in ("protocols", "routing", "recovery")
    for p in (EXPERIMENTS / folder).glob("*.yaml")
    if f"{folder}/{p.name}" not in TOO_LONG
)


@pytest.mark.slow
@pytest.mark.parametrize("name", PINNED)
def test_the_pinned_outcomes_hold(name: str, tmp_path: Path) -> None:
    path = EXPERIMENTS / name
    loaded = load_experiment(path)
    outcome = run_experiment(loaded, tmp_path, executor="local", progress=False)
    assert outcome.n_failed == 0
    results = check_folder(tmp_path, loaded.experiment.expect, path.parent)
    failed = [(r.expectation, r.detail) for r in results if not r.passed]
    assert not failed, failed
    assert len(results) == len(loaded.experiment.expect)
