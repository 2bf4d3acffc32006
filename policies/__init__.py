"""kossim's built-in policy components, one concept per module, registered by id.

Importing this package registers every built-in component with
:mod:`kossim.registry`.
"""

from __future__ import annotations

from policies import (
    agent,
    contract_net,
    coordinator,
    delegation,
    detector,
    dispatch,
    queue,
    routing,
)

__all__ = [
    "agent",
    "contract_net",
    "coordinator",
    "delegation",
    "detector",
    "dispatch",
    "queue",
    "routing",
]
