"""Failure detectors: when the coordinator comes to believe an agent is down.

A detector is a service actor on the coordinator's node. Through its
context it tells the coordinator that it suspects an agent of a failure
(``ctx.suspect``) or trusts it again (``ctx.trust``): the coordinator gives
a suspected agent no new work and re-sends the tasks it had sent there
(under ``requeue``). The engine judges every suspicion against the truth.

``oracle`` sees crashes themselves; the heartbeat detectors see only the
heartbeats agents send every ``interval`` over the network, so their
suspicions can be false (a late heartbeat) and late (a lost crash is noticed
only when the silence grows long).
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
        agent, crash = news
        if self.ctx.tracing:
            self.ctx.log(
                "suspect",
                f"oracle: crash {crash} of {agent.name}, known after the delay",
                agent=agent.name,
            )
        self.ctx.suspect(agent, crash, certain=True)
