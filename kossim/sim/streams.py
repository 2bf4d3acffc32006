"""Named random streams of one run.

Each stream is an independent ``PCG64`` generator spawned from
``SeedSequence(seed)`` with a spawn key derived from its name, so a stream's
numbers depend only on (seed, name): adding a policy, an agent or a message
never shifts another stream. This is what makes common random numbers hold:
arrivals, work sizes and failure clocks are the same for every policy.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["stream"]


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator named ``name`` in the run seeded ``seed``."""
    key = zlib.crc32(name.encode())
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(key,))))
