"""Failure detectors: when the coordinator comes to believe an agent is down.

A detector is a service actor on the coordinator's node. It tells the
coordinator ``suspect`` with ``(agent, incarnation)``: the coordinator stops
giving the agent work (unless it has heard since that the agent recovered
from that failure) and reclaims the tasks lost with it.
"""

from __future__ import annotations

from typing import Any

from kossim.dists import Distribution, sampler
from kossim.policy import Behaviour, Params
from kossim.registry import register
from kossim.sim.kernel import Actor

__all__ = ["Oracle"]


class OracleParams(Params):
    delay: Distribution | None = None
    """Time from a crash to the coordinator's knowledge of it; default: the scenario's
    ``failures.<agents|nodes>.detect``."""


@register
class Oracle(Behaviour):
    """Perfect detection after a delay: every crash, and only crashes, is reported.

    The detector observes the crash itself (an oracle: no message), waits the
    detection delay and reports the crash to the coordinator.
    """

    kind = "detector"
    id = "oracle"
    description = "every real crash reported after the 'detect' delay, never a false suspicion"
    Params = OracleParams
    observes_crashes = True
    #: The stream of the detection delays: the one earlier kossim versions used, so that
    #: seeds keep their results.
    stream_name = "detect"

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        dist = self.params.delay
        if dist is None:
            failures = ctx.scenario.failures
            spec = failures.agents or failures.nodes
            dist = spec.detect if spec is not None else None
        self._delay = sampler(dist, self.rng) if dist is not None else None
        self.coordinator: Actor = ctx.coordinator

    def on_crash(self, agent: Actor, epoch: int) -> None:
        """The kernel tells an oracle of every crash as it happens."""
        delay = self._delay() if self._delay is not None else 0.0
        self.ctx.after(delay, "detected", (agent, epoch))

    def on_detected(self, sender: Any, news: tuple[Actor, int]) -> None:
        agent, incarnation = news
        if self.ctx.tracing:
            self.ctx.log(
                "suspect",
                f"oracle: crash {incarnation} of {agent.name}, known after the delay",
                agent=agent.name,
            )
        self.ctx.send(self.coordinator, "suspect", news)
