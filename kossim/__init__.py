"""kossim: a discrete-event simulator and scheduling-policy lab for multi-agent orchestration.

Describe agents, nodes, network, failures, a workload and contending policies in
one YAML file; kossim simulates every policy on the same random workload over
many seeds and writes tidy results, plots and a comparison report.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
