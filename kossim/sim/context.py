"""An actor's only door to the world.

A behaviour receives its context in ``on_start`` and acts only through it:
``now``, its own random stream ``rng``, ``send`` (always through the
network), ``after`` (a cancellable timer), ``log`` (the execution log) and,
for an agent, the physical verbs on its own slots. What a behaviour knows of
other actors is what their messages told it.

``log`` costs nothing when the run is not traced, but building a reason
string does: guard expensive reasons with ``if ctx.tracing:``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from kossim.arbiter import WAIT, Decision
from kossim.sim.kernel import Actor, Kernel, Timer
from kossim.sim.streams import stream
from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.config.models import Scenario
    from kossim.sim.agent import Agent, AgentState
    from kossim.sim.world import World

__all__ = ["AgentContext", "Context", "CoordinatorContext", "ServiceContext"]


class Context:
    """What every behaviour may do."""

    #: ``send(to, kind, payload=None, carries=None)``: deliver ``payload`` to actor
    #: ``to``'s ``on_<kind>(sender, payload)``, paying the network path's latency. A
    #: message whose payload is a task, or that ``carries`` one, holds it in transit.
    send: Callable[..., None]
    #: ``after(delay, kind, payload=None) -> Timer``: call this actor's
    #: ``on_<kind>(None, payload)`` after ``delay``, unless the timer is cancelled.
    after: Callable[..., Timer]

    __slots__ = ("_rng", "_world", "actor", "after", "kernel", "send", "tracing")

    def __init__(self, world: World, actor: Actor) -> None:
        self._world = world
        self.kernel: Kernel = world.kernel
        self.actor = actor
        self._rng: np.random.Generator | None = None
        # Bound once: these run on every message, so no extra call layer.
        self.send = partial(world.kernel.send, actor)
        self.after = partial(world.kernel.after, actor)
        #: The run keeps an execution log: build reasons for ``log`` only when true.
        self.tracing = world.kernel.log is not None

    # -- identity and time ---------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.actor.name

    @property
    def node(self) -> str:
        return self.actor.node

    #: The simulated time. A property whose getter is C code (``attrgetter``): read on every
    #: decision, it costs no Python frame.
    now = property(attrgetter("kernel.env._now"), doc="The simulated time.")

    @property
    def rng(self) -> np.random.Generator:
        """This actor's own stream: it depends only on the seed and the actor's name."""
        if self._rng is None:
            self._rng = stream(self._world.seed, f"actor:{self.actor.name}")
        return self._rng

    @property
    def scenario(self) -> Scenario:
        """The scenario as configured (static facts, never live state)."""
        return self._world.exp.scenario

    # -- acting ------------------------------------------------------------------------------
    def log(self, kind: str, reason: str, task: Task | None = None, **fields: Any) -> None:
        """Record a decision and its reason in the execution log (when tracing)."""
        log = self.kernel.log
        if log is not None:
            log.record(self.kernel.env._now, kind, self.actor.name, reason, task, fields)

    def arbitrate(self, kind: str, task: Task | None = None, **facts: Any) -> Decision:
        """Ask the policy's arbiter about event ``kind`` (see :mod:`kossim.arbiter`) and get
        its decision, logged and counted; without an arbiter: ``wait``, at no cost. The
        caller carries the decision out with its own verbs."""
        arbitration = self._world.arbitration
        if arbitration is None:
            return WAIT
        return arbitration.ask(self.actor, kind, task, facts)

    @property
    def arbiter(self) -> Any:
        """The policy's arbiter component (its parameters, ``risk_slack``), or ``None``."""
        arbitration = self._world.arbitration
        return None if arbitration is None else arbitration.arbiter

    def component(self, kind: str) -> Any:
        """The policy's component of ``kind`` for this run (one instance, shared)."""
        return self._world.component(kind)

    def actor_named(self, name: str) -> Actor:
        return self.kernel.actors[name]

    @property
    def coordinator(self) -> Actor:
        return self._world.coordinator_actor

    def report(self, source: Any) -> None:
        """Add ``source`` (anything with ``metric_rows(start, end)``) to the run's metrics,
        once: its rows are collected at the end whatever becomes of this actor (a
        coordinator that crashes and is succeeded keeps a book that outlives it)."""
        sources = self._world.row_sources
        if source not in sources:
            sources.append(source)

    def spawn(self, kind: str, name: str, node: str, behaviour: Any) -> Actor:
        """Place a helper actor (a manager, a standby, ...) of ``kind`` on ``node``, running
        ``behaviour`` (built by the caller); it starts at once, with a service context."""
        return self._world.spawn(kind, name, node, behaviour)


class ServiceContext(Context):
    """A service actor's context (a failure detector, ...): the fleet directory and verdicts."""

    __slots__ = ()

    @property
    def agents(self) -> list[Actor]:
        """Every agent actor, in index order."""
        return self._world.agent_actors

    def suspect(self, agent: Actor, crash: int, certain: bool = False) -> None:
        """Tell the coordinator that ``agent`` is believed down from its ``crash``-th failure.

        ``certain`` suspicions (an oracle's) are facts; the others are a
        detector's verdict, withdrawn by :meth:`trust`. The engine judges each
        suspicion against the truth (``false_suspicions``, ``detection_latency_mean``).
        """
        world = self._world
        world.ledger.judge(world.agents[agent.index], crash, self.kernel.env._now, self.actor.name)
        self.send(world.coordinator_actor, "suspect", (agent, crash, certain))

    def trust(self, agent: Actor, incarnation: int) -> None:
        """Withdraw a suspicion: ``agent`` was heard from, alive in ``incarnation``."""
        self.send(self._world.coordinator_actor, "trust", (agent, incarnation))


class CoordinatorContext(Context):
    """A coordinator's context: the fleet directory and the task's terminal verbs."""

    __slots__ = ()

    @property
    def agents(self) -> list[Actor]:
        """Every agent actor, in index order."""
        return self._world.agent_actors

    @property
    def profiles(self) -> list[AgentState]:
        """The static description of each agent (speed, capacity, skills, trust)."""
        return self._world.profiles

    @property
    def task_skills(self) -> list[tuple[str, ...]]:
        """The skill sets the workload's task types need."""
        return [t.skills for t in self._world.task_types]

    @property
    def max_attempts(self) -> int:
        return self._world.max_attempts

    def mean_delay(self, src: str, dst: str) -> float:
        """The network path's mean delay between two nodes (a static fact)."""
        return self._world.net.mean_delay(src, dst)

    def abandon(self, task: Task) -> None:
        """Give up on ``task`` (a terminal state)."""
        self._world.abandon(task)

    def reject(self, task: Task) -> None:
        """Refuse ``task`` for good: a full buffer (a terminal state, ``rejected``)."""
        self._world.reject(task)

    @property
    def failure_mode(self) -> str:
        return self._world.failure_mode

    def reclaim(self, agent: Actor) -> list[Task]:
        """Tasks lost with ``agent``'s crashes and not yet reclaimed (requeue semantics)."""
        return self._world.agents[agent.index].take_orphans()

    def recover(self, task: Task, agent: Actor) -> Task | None:
        """What to re-send for ``task``, sent to ``agent`` that is believed dead: the task
        if it was lost there, a copy if it lives on (the first copy to finish wins, the
        others are cancelled and counted as duplicates), ``None`` if it has ended."""
        world = self._world
        return world.ledger.recover(task, world.agents[agent.index])

    def backup(self, task: Task) -> Task | None:
        """A backup copy of live ``task`` to send to another agent (speculative execution):
        the first copy to finish wins, the others are cancelled and counted (``duplicates``,
        ``duplicate_work``); ``None`` if the task has ended."""
        if task.end >= 0 or task.cancelled:
            return None
        return self._world.ledger.copy(task)

    def shadow(self, task: Task) -> Task:
        """A shadow copy of live ``task`` to send beside it: it runs for comparison only,
        never ends the task nor is cancelled by its end, and its service time is counted
        as ``shadow_work``."""
        return self._world.ledger.shadow(task)

    def reserve(self, agent: Actor) -> None:
        """Declare that a slot of ``agent`` is held idle from now (a gang assembling):
        the engine measures the time held, ``reservation_idle``."""
        self._world.ledger.reserve(agent.index, self.kernel.env._now)

    def release(self, agent: Actor) -> None:
        """End the oldest reservation declared on ``agent``."""
        self._world.ledger.release(agent.index, self.kernel.env._now)

    def progress(self, agent: Actor) -> None:
        """Bring the remaining work of the tasks running on ``agent`` up to date.

        An oracle shortcut kept for the preemptive pull coordinator, which picks
        its victim among running tasks by their remaining work.
        """
        agent_ = self._world.agents[agent.index]
        agent_._refresh(self.kernel.env._now)


class AgentContext(Context):
    """An agent's context: its own slots and the physical verbs on them."""

    #: ``start(task)``: put ``task`` on a free slot (a new attempt if it is fresh).
    start: Callable[[Task], None]
    #: ``preempt(task)``: take running ``task`` off its slot, keeping its remaining work
    #: (call :meth:`refresh` first).
    preempt: Callable[[Task], None]

    #: The tasks on this agent's slots (the engine's own list: read it, never change it).
    running: list[Task]
    #: How many tasks this agent serves at once.
    capacity: int

    #: Whether this agent is up (the engine keeps it current).
    up: bool

    #: The most tasks this agent may hold, running plus queued (``None``: unbounded):
    #: a physical buffer, the agent group's ``queue_limit``.
    queue_limit: int | None

    __slots__ = ("agent", "capacity", "preempt", "queue_limit", "running", "start", "up")

    def __init__(self, world: World, actor: Actor, agent: Agent) -> None:
        super().__init__(world, actor)
        self.agent = agent
        self.running = agent.running  # the same list for the whole run
        self.capacity = agent.capacity
        self.queue_limit = agent.profile.limit
        self.up = agent.up
        agent.ctx = self
        self.start = agent.start  # bound once: once per task
        self.preempt = agent.preempt

    @property
    def free_slots(self) -> int:
        agent = self.agent
        return agent.capacity - len(agent.running)

    @property
    def profile(self) -> AgentState:
        return self.agent.profile

    @property
    def detector(self) -> Actor:
        return self._world.detector_actor

    @property
    def heartbeat_interval(self) -> float | None:
        """How often to send the detector a heartbeat (``None``: the detector needs none)."""
        return self._world.heartbeat_interval

    @property
    def peers(self) -> list[Actor]:
        """The other agent actors, in index order (a directory: names, not state)."""
        return [a for a in self._world.agent_actors if a is not self.actor]

    def profile_of(self, peer: Actor) -> AgentState:
        """A peer's static description (speed, capacity, skills), as configured."""
        return self._world.profiles[peer.index]

    @property
    def incarnation(self) -> int:
        """How many times this agent has failed: messages carry it so that news of an
        older failure is never taken for news of a newer one."""
        return self.agent.epoch

    @property
    def failure_mode(self) -> str:
        return self._world.failure_mode

    @property
    def max_attempts(self) -> int:
        return self._world.max_attempts

    def restart(self, task: Task) -> None:
        """Forget the work ``task`` has done: it starts over as a new attempt."""
        task.remaining = task.work
        task.fresh = True

    def refresh(self) -> None:
        """Bring the remaining work of the running tasks up to date."""
        self.agent._refresh(self.kernel.env._now)

    def abandon(self, task: Task) -> None:
        """End ``task`` unfinished (a terminal state); it must not be on a slot."""
        self._world.abandon(task)

    def complete(self, task: Task) -> None:
        """End ``task`` completed: its service ended (``on_serviced``) and what its ending
        waited for (a write to a locked resource) is done; it must not be on a slot."""
        self._world.finish(task)

    def reject(self, task: Task) -> None:
        """Refuse ``task``, which reached this agent while its buffer was full (a terminal
        state, ``rejected``); it must not be on a slot."""
        self._world.reject(task)

    def cancel(self, task: Task) -> None:
        """Stop ``task`` for good: off its slot if it runs here, then abandoned. The
        behaviour still reports the ending to whoever needs to know."""
        if task in self.agent.running:
            self.agent._refresh(self.kernel.env._now)
            self.agent.preempt(task)
        self._world.abandon(task)

    def orphan(self, tasks: list[Task]) -> None:
        """Tasks this agent held that are lost with it (reclaimed by the coordinator)."""
        self.agent.orphan(tasks)
