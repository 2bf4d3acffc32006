"""Slow agents as part of the scenario: the ``slowdown`` of an agent group.

A share of the group's agents, chosen per seed on the stream ``slowdown:<group>``, is
slow: its service takes ``factor`` times as long. Without ``every`` and ``length`` a
chosen agent is slow for the whole run; with them it alternates normal stretches
(``every``) and slow episodes (``length``), each episode with a factor drawn anew.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from kossim.config.base import Strict
from kossim.dists import Distribution
from kossim.errors import FieldError

__all__ = ["Slowdown"]


class Slowdown(Strict):
    """Which agents of a group are slow, by how much, and when."""

    share: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="fraction of the group's agents that are slow (round(share x count) "
        "agents, chosen per seed)",
    )
    factor: Distribution = Field(
        description="service time multiplier of a slow agent (its speed is divided by it); "
        "a draw below 1 counts as 1: a slowdown never speeds an agent up",
    )
    every: Distribution | None = Field(
        default=None,
        description="episodes: the normal stretch before each slow episode (with 'length')",
    )
    length: Distribution | None = Field(
        default=None, description="episodes: how long each slow episode lasts (with 'every')"
    )

    @model_validator(mode="after")
    def _episodes_paired(self) -> Slowdown:
        if (self.every is None) != (self.length is None):
            missing = "length" if self.length is None else "every"
            raise FieldError(
                "slow episodes need both 'every' (normal stretch) and 'length' (episode); "
                "give neither for agents slow the whole run",
                missing,
            )
        if (
            self.every is not None
            and self.length is not None
            and self.every.mean_value() == 0
            and self.length.mean_value() == 0
        ):
            raise FieldError(
                "'every' and 'length' are both always 0: simulated time would never pass",
                "every",
            )
        if self.factor.mean_value() < 1:
            raise FieldError(
                "a slowdown factor multiplies service time and is at least 1 "
                f"(mean {self.factor.mean_value():g})",
                "factor",
            )
        return self
