"""kossim's built-in policy components, one concept per module.

A built-in component is a class that sets its own ``id`` in one of these
modules; :mod:`kossim.registry` finds them here (this package imports
nothing from the registry, so the two never import each other). User code
registers with ``@kossim.registry.register``.
"""

from __future__ import annotations

from policies import (
    agent,
    arbiter,
    bundles,
    contract_net,
    coordinator,
    delegation,
    detector,
    dispatch,
    failover,
    locking,
    locks,
    queue,
    retry,
    role_based,
    routing,
    speculation,
    tree,
    trust,
)

__all__ = [
    "agent",
    "arbiter",
    "bundles",
    "contract_net",
    "coordinator",
    "delegation",
    "detector",
    "dispatch",
    "failover",
    "locking",
    "locks",
    "queue",
    "retry",
    "role_based",
    "routing",
    "speculation",
    "tree",
    "trust",
]
