"""What a policy component sees and what it must offer.

Policies decide, the engine acts. A component is a small class with a
``Params`` pydantic model (its validated YAML parameters) and one to three
verbs over read-only views:

* ``dispatch``: ``pull`` says where waiting tasks live. ``True``: they wait at
  the coordinator and leave only when the coordinator's view shows an agent
  with a free slot (just-in-time, the M/M/c discipline). ``False``: every task
  is routed on arrival into an agent's own queue.
* ``routing``: ``select(task, candidates, now) -> AgentView``; the candidates come in
  index order, from the built-in coordinator as a :class:`kossim.sim.pool.Pool` with
  O(log N) queries (``least``, ``after``, ``fastest``) for the ``indexes`` a router declares.
* ``queue``: ``key(task) -> comparable`` (smaller is served first; ties go to
  the earlier arrival) and ``preemptive``; a preemptive discipline lets an
  arriving task displace the running task with the largest key when its own
  key is smaller (preemptive-resume).

Views are the engine's own ``__slots__`` objects typed here as read-only
protocols: copying them per decision would cost more than the decision. The
conformance check (:mod:`kossim.conformance`) verifies that no component
writes to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

__all__ = [
    "AgentView",
    "Behaviour",
    "Component",
    "Discipline",
    "Dispatcher",
    "Params",
    "Router",
    "TaskView",
]


class TaskView(Protocol):
    """A task as a policy sees it."""

    @property
    def id(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def deadline(self) -> float:
        """Absolute deadline; ``inf`` when the task has none."""
        ...

    @property
    def work(self) -> float: ...
    @property
    def remaining(self) -> float:
        """Work not yet done (refreshed by the engine before a preemption decision)."""
        ...

    @property
    def arrival(self) -> float: ...
    @property
    def attempts(self) -> int: ...
    @property
    def skills(self) -> tuple[str, ...]: ...


class AgentView(Protocol):
    """An agent as the coordinator knows it: only as fresh as the messages that reached it."""

    @property
    def index(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def group(self) -> str: ...
    @property
    def speed(self) -> float: ...
    @property
    def capacity(self) -> int: ...
    @property
    def trust(self) -> float: ...
    @property
    def up(self) -> bool: ...
    @property
    def queue_length(self) -> int:
        """Tasks sent to the agent and not yet reported finished (running + queued)."""
        ...

    @property
    def work_outstanding(self) -> float:
        """Service time of those tasks on this agent, as sent (progress is not reported)."""
        ...

    def proficiency(self, skills: tuple[str, ...]) -> float: ...


class Params(BaseModel):
    """Base of every component's parameter model."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Component:
    """Base class of policy components.

    Subclasses set ``kind``, ``id``, ``description`` and, if they take
    parameters, a nested ``Params`` model. The engine builds one instance per
    run with its own random stream.
    """

    kind: ClassVar[str]
    id: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[Params]] = Params

    def __init__(self, params: Any, rng: np.random.Generator) -> None:
        self.params = params
        self.rng = rng


class Behaviour(Component):
    """An actor's behaviour: the handlers of one party of a protocol.

    The kernel calls ``on_start(ctx)`` once, before the run starts; after
    that, a message of kind ``K`` from actor ``sender`` calls
    ``on_K(sender, payload)``, and a timer set with ``ctx.after(delay, K,
    payload)`` calls ``on_K(None, payload)``. The context is the behaviour's
    only door to the world (see :mod:`kossim.sim.context`); what it knows of
    other actors is what their messages told it.
    """

    ctx: Any
    #: The message kinds this behaviour sends over the network: each is a ``messages``
    #: row of scope ``kind=K`` in every run, also when none was sent.
    sends: tuple[str, ...] = ()
    #: An oracle detector is told of every crash as it happens (``on_crash(agent, epoch)``).
    observes_crashes: ClassVar[bool] = False

    def on_start(self, ctx: Any) -> None:
        self.ctx = ctx

    def held(self) -> list[Any]:
        """Tasks this actor holds (queued, not on a slot): the engine's conservation checks
        find every live task through them."""
        return []

    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        """Rows ``(metric, scope, value)`` this behaviour measured over the window
        ``[start, end]``, added to the run's metrics (a manager's utilisation, ...)."""
        return []


class Dispatcher(Protocol):
    pull: bool


class Router(Protocol):
    def select(self, task: TaskView, candidates: Sequence[AgentView], now: float) -> AgentView: ...


class Discipline(Protocol):
    preemptive: bool
    fifo: bool
    """True when ``key`` is constant: the engine then uses a plain deque."""

    def key(self, task: TaskView) -> Any: ...
