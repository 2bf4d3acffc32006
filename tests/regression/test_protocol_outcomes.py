"""The protocol experiments' pinned outcomes, run in full (``kossim check`` in process).

Heartbeat failure detection, delegation chains and contract net against a
growing inequality of the fleet, as the files under ``experiments/protocols/``
state them: every expectation of their ``expect:`` blocks must hold.
(``contract_net.yaml``, the latency sweep, is 280 runs, too long for every
test run; its smoke run is in ``test_experiments_smoke``.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from kossim.analysis.check import check_folder
from kossim.config.experiment import load_experiment
from kossim.lab import run_experiment

PROTOCOLS = Path(__file__).resolve().parents[2] / "experiments" / "protocols"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["heartbeats", "delegation", "contract_net_heterogeneity"])
def test_the_pinned_protocol_outcomes_hold(name: str, tmp_path: Path) -> None:
    loaded = load_experiment(PROTOCOLS / f"{name}.yaml")
    outcome = run_experiment(loaded, tmp_path, executor="local", progress=False)
    assert outcome.n_failed == 0
    results = check_folder(tmp_path, loaded.experiment.expect, PROTOCOLS)
    failed = [(r.expectation, r.detail) for r in results if not r.passed]
    assert not failed, failed
    assert len(results) == len(loaded.experiment.expect)
