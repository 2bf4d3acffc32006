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

from collections import deque
from math import log10
from statistics import NormalDist
from typing import Any

from pydantic import Field

from kossim.dists import Distribution, sampler
from kossim.policy import Behaviour, Params
from kossim.sim.kernel import Actor

__all__ = ["Oracle", "PhiAccrual", "Timeout"]


class OracleParams(Params):
    delay: Distribution | None = None
    """Time from a crash to the coordinator's knowledge of it; default: the scenario's
    ``failures.<agents|nodes>.detect``."""


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


class HeartbeatParams(Params):
    interval: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    """Time between two heartbeats of an agent."""


class _Heartbeats(Behaviour):
    """What heartbeat detectors share: hear heartbeats, watch each agent's silence.

    An agent is suspected when its silence (time since its last heartbeat
    arrived) reaches :meth:`limit`, and trusted again at its next heartbeat.
    The first heartbeat is awaited for one ``interval`` more than the limit
    (agents start beating at a random phase within the first interval).
    One timer per agent is pending at a time: when it fires early (a
    heartbeat came since it was set) it is set again for the new deadline,
    so the check costs one event per ``limit``, not one per heartbeat.
    """

    kind = "detector"

    def __init__(self, params: Any, rng: Any) -> None:
        super().__init__(params, rng)
        self.heartbeat_interval = float(params.interval)

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        n = len(ctx.agents)
        # When the last heartbeat arrived; at the start, as if one had at time ``interval``.
        self.last = [self.heartbeat_interval] * n
        self.heard_once = [False] * n
        self.incarnation = [0] * n
        self.suspected = [False] * n
        self.armed = [False] * n
        for agent in ctx.agents:
            self._arm(agent)

    def limit(self, i: int) -> float:
        """The silence after which agent ``i`` is suspected."""
        raise NotImplementedError

    def heard(self, i: int, gap: float) -> None:
        """A heartbeat of agent ``i`` arrived ``gap`` after the previous one."""

    def _arm(self, agent: Actor) -> None:
        i = agent.index
        self.armed[i] = True
        delay = max(self.last[i] + self.limit(i) - self.ctx.now, 0.0)  # limits adapt
        self.ctx.after(delay, "silence", (agent, self.last[i]))

    def on_heartbeat(self, sender: Actor, incarnation: int) -> None:
        i = sender.index
        now = self.ctx.now
        if self.heard_once[i] and incarnation == self.incarnation[i]:
            self.heard(i, now - self.last[i])  # (a gap across a crash is no sample)
        self.heard_once[i] = True
        self.last[i] = now
        self.incarnation[i] = incarnation
        if self.suspected[i]:
            self.suspected[i] = False
            if self.ctx.tracing:
                self.ctx.log("trust", f"heartbeat from {sender.name}", agent=sender.name)
            self.ctx.trust(sender, incarnation)
        if not self.armed[i]:
            self._arm(sender)

    def on_silence(self, sender: None, news: tuple[Actor, float]) -> None:
        agent, since = news
        i = agent.index
        self.armed[i] = False
        if self.last[i] != since:  # heard from since the timer was set
            self._arm(agent)
            return
        self.suspected[i] = True
        if self.ctx.tracing:
            self.ctx.log("suspect", self.reason(i), agent=agent.name)
        self.ctx.suspect(agent, self.incarnation[i] + 1)

    def reason(self, i: int) -> str:
        raise NotImplementedError


class TimeoutParams(HeartbeatParams):
    timeout: float = Field(default=3.0, gt=0, allow_inf_nan=False)
    """Silence after which an agent is suspected."""


class Timeout(_Heartbeats):
    """Suspect an agent after ``timeout`` without a heartbeat.

    With a constant latency ``l`` and no jitter, a crash is suspected between
    ``timeout + l - interval`` and ``timeout + l`` after it, and an agent that
    is up is never suspected while ``timeout > interval``. Jitter larger than
    ``timeout - interval`` makes false suspicions.
    """

    id = "timeout"
    description = "heartbeats every 'interval'; suspect after 'timeout' of silence"
    Params = TimeoutParams
    sends = ()

    def limit(self, i: int) -> float:
        return float(self.params.timeout)

    def reason(self, i: int) -> str:
        return f"timeout: no heartbeat for {self.params.timeout:g}"


class PhiParams(HeartbeatParams):
    threshold: float = Field(default=8.0, gt=0, le=15, allow_inf_nan=False)
    """Suspect when phi = -log10(P(a heartbeat is still to come)) reaches this."""
    window: int = Field(default=100, ge=2, le=100_000)
    """Inter-arrival samples kept per agent."""
    min_std: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Floor of the standard deviation (default: interval / 10), as in Akka."""
    pause: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    """Acceptable heartbeat pause added to the mean, as in Akka."""


class PhiAccrual(_Heartbeats):
    """The phi-accrual failure detector (Hayashibara et al. 2004; as in Cassandra and Akka).

    Each agent's heartbeat inter-arrival times (the last ``window``) are
    modelled as normal with their mean ``mu`` (plus ``pause``) and standard
    deviation ``sigma`` (at least ``min_std``); after a silence ``t``,
    ``phi(t) = -log10(1 - F(t))``. The agent is suspected when phi reaches
    ``threshold``, i.e. after a silence of ``mu + sigma * z`` with
    ``z = F^-1(1 - 10^-threshold)``: the deadline adapts to the jitter the
    detector has seen. The window starts with two samples, ``interval``
    plus and minus a quarter of it (mean ``interval``, deviation
    ``interval / 4``), as Akka's first-heartbeat estimate does.
    """

    id = "phi_accrual"
    description = "heartbeats every 'interval'; suspect when phi reaches 'threshold' (adaptive)"
    Params = PhiParams
    sends = ()

    def on_start(self, ctx: Any) -> None:
        p = self.params
        self.z = NormalDist().inv_cdf(1.0 - 10.0 ** (-p.threshold))
        self.min_std = p.min_std if p.min_std is not None else p.interval / 10.0
        n = len(ctx.agents)
        seed = (0.75 * p.interval, 1.25 * p.interval)
        self.samples = [deque(seed, maxlen=p.window) for _ in range(n)]
        self.sums = [sum(seed)] * n
        self.squares = [sum(x * x for x in seed)] * n
        super().on_start(ctx)

    def heard(self, i: int, gap: float) -> None:
        window = self.samples[i]
        if len(window) == window.maxlen:
            old = window[0]
            self.sums[i] -= old
            self.squares[i] -= old * old
        window.append(gap)
        self.sums[i] += gap
        self.squares[i] += gap * gap

    def _moments(self, i: int) -> tuple[float, float]:
        n = len(self.samples[i])
        mean = self.sums[i] / n
        var = max(self.squares[i] / n - mean * mean, 0.0)
        return mean + self.params.pause, max(var**0.5, self.min_std)

    def limit(self, i: int) -> float:
        mean, sd = self._moments(i)
        return mean + sd * self.z

    def phi(self, i: int, silence: float) -> float:
        """phi after ``silence`` since agent ``i``'s last heartbeat."""
        mean, sd = self._moments(i)
        later = 1.0 - NormalDist(mean, sd).cdf(silence)
        return -log10(later) if later > 0 else float("inf")

    def reason(self, i: int) -> str:
        mean, sd = self._moments(i)
        silence = self.ctx.now - self.last[i]
        return (
            f"phi {self.phi(i, silence):.1f} >= {self.params.threshold:g} after "
            f"{silence:.3g} of silence (heartbeat gaps: mean {mean:.3g}, sd {sd:.3g})"
        )
