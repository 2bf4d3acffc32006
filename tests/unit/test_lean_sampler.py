"""Lean samplers: the streams a fleet has one of per agent or link hold few numbers."""

from __future__ import annotations

import numpy as np
import pytest

from kossim.dists import (
    BLOCK,
    Constant,
    Erlang,
    Exponential,
    Gamma,
    Lognormal,
    Normal,
    Uniform,
    lean_sampler,
    sampler,
)

DISTS = [
    Constant(dist="constant", value=2.0),
    Exponential(dist="exponential", mean=3.0),
    Uniform(dist="uniform", low=1.0, high=4.0),
    Lognormal(dist="lognormal", mean=2.0, scv=3.0),
    Gamma(dist="gamma", mean=2.0, scv=0.5),
    Erlang(dist="erlang", mean=2.0, k=3),
    Normal(dist="normal", mean=5.0, sd=1.0),
]


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: d.dist)
def test_a_lean_sampler_draws_the_same_numbers_as_a_block_sampler(dist: object) -> None:
    """Same stream, same numbers in the same order, across several block refills."""
    n = 3 * BLOCK + 17
    full = sampler(dist, np.random.default_rng(7))  # type: ignore[arg-type]
    lean = lean_sampler(dist, np.random.default_rng(7))  # type: ignore[arg-type]
    assert [lean() for _ in range(n)] == [full() for _ in range(n)]


def test_a_rarely_drawn_stream_holds_a_few_numbers() -> None:
    """A failure clock drawn three times holds 8 numbers, not a block of 1,024."""
    lean = lean_sampler(Exponential(dist="exponential", mean=1.0), np.random.default_rng(1))
    for _ in range(3):
        lean()
    assert len(lean._buf) == 8
