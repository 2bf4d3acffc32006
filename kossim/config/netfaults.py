"""Network faults (``scenario.network``): message loss, latency jitter, random partitions.

``loss`` is the probability that a message is lost on a link (``network.loss`` for
every link, a link's own ``loss`` for it); ``jitter`` a distribution whose draw is
added to each network message's delay; ``partitions`` up/down clocks that cut sets
of nodes apart (``groups``, fixed, or ``size`` agent nodes drawn at each cut).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from kossim.config.base import Name, Strict, unique
from kossim.config.places import partition_sides
from kossim.dists import Distribution
from kossim.errors import FieldError

__all__ = ["RandomPartition", "check_network_faults", "needs_faulty_kernel"]


class RandomPartition(Strict):
    """A partition clock: connected for ``up``, cut apart for ``down``, and again."""

    up: Distribution = Field(description="time connected before each cut")
    down: Distribution = Field(description="how long each cut lasts")
    groups: list[list[Name]] | None = Field(
        default=None, description="the sides (nodes, agents or groups); the rest is one more"
    )
    size: int | None = Field(
        default=None, ge=1, description="cut this many agent nodes, drawn at each cut, off"
    )
    name: Name | None = None

    @model_validator(mode="after")
    def _one_shape(self) -> RandomPartition:
        if (self.groups is None) == (self.size is None):
            raise FieldError("give exactly one of 'groups' or 'size'", "groups")
        if self.up.mean_value() == 0:
            raise FieldError("the time between cuts must have a positive mean", "up")
        return self


def needs_faulty_kernel(scenario: Any) -> bool:
    """Whether the run needs the faulty kernel and the scenario actor: messages can be lost,
    jittered or cut, or a timeline schedules events."""
    net = scenario.network
    return bool(
        net.loss > 0
        or net.jitter is not None
        or net.partitions
        or any(link.loss for link in net.links)
        or scenario.timeline is not None
    )


def check_network_faults(scenario: Any) -> None:
    """Partition clocks have distinct names (their streams'), name known nodes, and ask for
    fewer nodes than there are."""
    nodes = {g.node or f"{g.group}-{i}" for g in scenario.agents for i in range(g.count)}
    names = [c.name or f"random-{i}" for i, c in enumerate(scenario.network.partitions)]
    unique(names, "partition clock name (unnamed: random-<i>)", "name", "network", "partitions")
    for index, clock in enumerate(scenario.network.partitions):
        at = ("network", "partitions", index)
        if clock.groups is not None:
            partition_sides(scenario, clock.groups, (*at, "groups"))
        elif clock.size is not None and clock.size >= len(nodes):
            raise FieldError(
                f"must be below the number of agent nodes ({len(nodes)}): the rest is a side",
                *at,
                "size",
                got=clock.size,
            )
