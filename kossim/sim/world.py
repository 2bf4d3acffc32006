"""One run's world: the physics (agents, network, failure clocks, arrivals) and its actors.

The world builds the kernel and places an actor for every party that
decides: the coordinator and a failure detector on the coordinator's node,
and one actor per agent on the agent's node, each with the behaviour its
policy names. The world itself only keeps physics and invariants.

The hot path uses callbacks on light events in SimPy's heap (kernel.Call)
rather than one process per task: an arrival and a completion are one event
each, so a task costs two events (an idiomatic SimPy model with a process per
customer costs about six). On the plain kernel of an instant network the
built-in coordinator and worker run as the variants of ``policies.instant``.
"""

from __future__ import annotations

import bisect
from heapq import heappush
from typing import Any

import numpy as np
import simpy
from simpy.events import Timeout

from kossim.config.failover import failover_wanted, standby_nodes
from kossim.config.models import COORDINATOR, Experiment, FailureSpec, PolicySpec, TaskType
from kossim.config.netfaults import needs_faulty_kernel
from kossim.dists import Uniform, draws, sampler
from kossim.registry import build, resolve
from kossim.sim.agent import Agent, AgentState
from kossim.sim.arbitration import Arbitration
from kossim.sim.bundle import bundle_arrivals
from kossim.sim.context import AgentContext, CoordinatorContext, ServiceContext
from kossim.sim.eventlog import EventLog
from kossim.sim.failover import Failover
from kossim.sim.failures import start_failures
from kossim.sim.faults import faulty_kernel
from kossim.sim.fleet import build_fleet
from kossim.sim.kernel import NORMAL, Actor, Call, Kernel, TracingKernel, call_after
from kossim.sim.ledger import Ledger
from kossim.sim.locks import place_locks
from kossim.sim.network import Net
from kossim.sim.patience import patient_arrivals
from kossim.sim.pauses import watch_pauses
from kossim.sim.recorder import Recorder
from kossim.sim.results import Results
from kossim.sim.roles import RolePhysics, task_skills, uses_roles
from kossim.sim.slowdown import start_slowdowns
from kossim.sim.streams import stream
from kossim.sim.task import ABANDONED, DONE, REJECTED, Task
from kossim.sim.timeline import install as install_scenario_events
from kossim.sim.tracing import trace_tasks

__all__ = ["World"]

SAMPLES = 200
_INF = float("inf")  # points of the number-in-system time series


class _TypeSpec:
    __slots__ = ("bundle", "deadline", "name", "patience", "priority", "skills", "work")

    def __init__(self, t: TaskType, seed: int) -> None:
        self.name = t.type
        self.priority = t.priority
        self.skills = task_skills(t)
        self.work = draws(t.work, stream(seed, f"work:{t.type}"))
        self.deadline = (
            sampler(t.deadline, stream(seed, f"deadline:{t.type}")) if t.deadline else None
        )
        self.bundle = t.bundle
        self.patience = (
            sampler(t.patience, stream(seed, f"patience:{t.type}")) if t.patience else None
        )


class World:
    """Everything one run needs; :meth:`run` simulates it and returns the recorder."""

    def __init__(
        self,
        exp: Experiment,
        policy: PolicySpec,
        seed: int,
        trace: bool = False,
        log: EventLog | None = None,
    ) -> None:
        self.exp = exp
        self.seed = seed
        self.policy = policy
        self.env = simpy.Environment()
        sc = exp.scenario
        self.task_types = [_TypeSpec(t, seed) for t in sc.workload.tasks]
        self._mixed = len(self.task_types) > 1  # a draw per arrival picks its type
        shares = np.array([t.share for t in sc.workload.tasks], dtype=float)
        self._cum_shares = (np.cumsum(shares) / shares.sum()).tolist()
        self._type_u = sampler(Uniform(dist="uniform", low=0, high=1), stream(seed, "types"))
        arr = sc.workload.arrivals
        self._iat = draws(arr.interarrival_dist(), stream(seed, "arrivals"))
        self.mean_iat = arr.mean_interarrival()

        # One failure semantics per run: the agents' spec, else the nodes', else the
        # defaults (model_construct: only on_failure and max_attempts are read here).
        fail = sc.failures.agents or sc.failures.nodes or FailureSpec.model_construct()
        self.failure_mode = fail.on_failure
        self.max_attempts = fail.max_attempts
        self._components: dict[str, Any] = {}
        self.row_sources: list[Any] = []  # metric sources behaviours reported (ctx.report)

        self.profiles: list[AgentState] = []
        self.agents: list[Agent] = []
        self.coord_node = COORDINATOR
        hosts = {g.node or f"{g.group}-{i}" for g in sc.agents for i in range(g.count)}
        data = {t.data.node for t in sc.workload.tasks if t.data}  # reachable even if no host
        data |= {r.node for r in sc.resources if r.node}
        nodes = sorted(hosts | data | set(standby_nodes(policy)))
        self._nodes = set(nodes)
        self.net = Net(sc.network, nodes, seed)
        self.role_physics = RolePhysics(sc, self.net) if uses_roles(sc) else None
        build_fleet(self)
        faults = needs_faulty_kernel(sc)  # a kernel that loses and cuts messages, if needed
        log = (log if log is not None else EventLog()) if trace else None
        self.kernel = (
            faulty_kernel(self.env, self.net, sc.network, seed, log)
            if faults
            else TracingKernel(self.env, self.net, log)
            if log is not None
            else Kernel(self.env, self.net, None)
        )
        self.transit = self.kernel.transit
        self.ledger = Ledger(self)
        self.results = Results(self)
        self._families = self.ledger.families  # read on every ending
        self.arbitration = (
            Arbitration(self.component("arbiter"), self.kernel) if policy.arbiter else None
        )
        self._build_actors()
        # The timeline, partition clocks and dropped tasks: a scenario actor, if needed.
        self.scenario_events = install_scenario_events(self) if faults else None
        self.recorder = Recorder()
        self._setup_run_length()

    def component(self, kind: str) -> Any:
        """The policy's component of ``kind``: built once per run, on its own stream
        (``None`` for an optional kind the policy leaves unset, such as ``retry``)."""
        got = self._components.get(kind)
        if got is None:
            ref = getattr(self.policy, kind)
            if ref is None:  # an optional kind the policy leaves out (``speculation``)
                return None
            name = self.policy.name
            spec = resolve(kind, ref)
            got = self._components[kind] = build(spec, stream(self.seed, f"policy:{name}:{kind}"))
        return got

    def _behaviour(self, kind: str, actor: Actor) -> Any:
        spec = resolve(kind, getattr(self.policy, kind))
        name = getattr(spec.cls, "stream_name", None) or f"policy:{self.policy.name}:{actor.name}"
        behaviour = build(spec, stream(self.seed, name))
        actor.behaviour = behaviour
        return behaviour

    def _build_actors(self) -> None:
        """The coordinator and the detector on the coordinator's node; an actor per agent."""
        k = self.kernel
        coord = self.coordinator_actor = k.add(Actor("coordinator", "coordinator", COORDINATOR))
        self.coordinator = self._behaviour("coordinator", coord)
        coord.ctx = CoordinatorContext(self, coord)
        det = self.detector_actor = k.add(Actor("detector", "detector", COORDINATOR))
        self.detector = self._behaviour("detector", det)
        det.ctx = ServiceContext(self, det)
        self._crash_observers = [self.detector] if self.detector.observes_crashes else []
        self.heartbeat_interval: float | None = getattr(self.detector, "heartbeat_interval", None)
        self.agent_actors: list[Actor] = []
        self.services: list[Actor] = []  # actors the behaviours spawned (``Context.spawn``)
        for a in self.agents:
            actor = k.add(Actor("agent", a.name, a.node, a.index))
            a.behaviour = self._behaviour("agent", actor)
            actor.ctx = AgentContext(self, actor, a)
            self.agent_actors.append(actor)
        place_locks(self)  # resources and their lock services, if any
        watch_pauses(self)
        self._actors: list[Actor] = [coord, det, *self.agent_actors]
        for actor in self._actors:
            actor.behaviour.on_start(actor.ctx)
        # Coordinator failover (kossim.sim.failover): arrivals enter through its entry.
        self.failover = Failover(self) if failover_wanted(self.exp, self.policy) else None
        if self.failover is None and self.kernel.send == self.kernel._send_instant:
            from policies.instant import specialise  # here: the policies import the engine

            for actor in self._actors:  # the plain kernel on an instant network
                specialise(actor)
        every = [*self._actors, *self.services]
        self._declared_kinds = sorted({kind for a in every for kind in a.behaviour.sends})
        self._arrive = self.failover.door.arrive if self.failover else coord.handlers["arrival"]
        if any(t.bundle for t in self.task_types):  # a bundle arrives as its subtasks
            self.ledger.bundled = True
            self._arrive = bundle_arrivals(self, self._arrive)
        if any(t.patience is not None for t in self.task_types):
            self._arrive = patient_arrivals(self, self._arrive)
        if self.kernel.log is not None:
            trace_tasks(self, self.kernel.log)

    def spawn(self, kind: str, name: str, node: str, behaviour: Any) -> Actor:
        """Place a new actor of ``kind`` running ``behaviour`` on ``node`` and start it.

        Its context is a :class:`ServiceContext`; the tasks it holds count in the
        conservation checks (``held``), its declared ``sends`` are ``messages`` rows
        when spawned before the run starts, and its ``metric_rows`` join the run's.
        """
        if node != COORDINATOR and node not in self._nodes:
            raise ValueError(f"cannot spawn {name!r} on unknown node {node!r}")
        actor = self.kernel.add(Actor(kind, name, node))
        actor.behaviour = behaviour
        actor.ctx = ServiceContext(self, actor)
        self.services.append(actor)
        log = self.kernel.log
        if log is not None:
            log.record(self.env._now, "spawn", name, f"{kind} {name} on {node}", None, {})
        behaviour.on_start(actor.ctx)
        return actor

    def message_counts(self) -> dict[str, int]:
        """Messages in the window per kind: every kind the behaviours declare, seen or not
        (so that each run of a policy has the same rows), and any other kind seen."""
        counts = dict.fromkeys(self._declared_kinds, 0)
        counts.update(self.kernel.counts())
        return counts

    def crashed(self, agent: Agent) -> None:
        """Physics: ``agent`` went down; oracles learn of it at once."""
        for observer in self._crash_observers:
            observer.on_crash(self.agent_actors[agent.index], agent.epoch)

    def _setup_run_length(self) -> None:
        exp = self.exp
        self.horizon = exp.horizon
        self.limit = (exp.warmup_tasks + exp.tasks) if exp.tasks is not None else None
        self.measure_start = exp.fixed_warmup if exp.warmup_tasks == 0 else None
        self._warmup_tasks = exp.warmup_tasks
        self._warmup = exp.fixed_warmup
        # warmup: auto records, at each sample time, what truncating there would need.
        self.snapshots: list[tuple[float, int, list[tuple[float, float]], dict[str, int]]] = []
        self.arrived = 0  # all arrivals
        self.arrived_measured = 0
        self.in_system = 0
        self.done_event = self.env.event()
        self.arrivals_over = False

    # -- arrivals ---------------------------------------------------------------
    def _schedule_arrival(self) -> None:
        self._arrival_cbs = (self._on_arrival,)
        self._heap: list[Any] = self.env._queue  # typed for Events: a Call walks like one
        self._eid = self.env._eid
        call_after(self.env, self._iat(), self._arrival_cbs, None)

    def _on_arrival(self, ev: Call) -> None:
        now = self.env._now
        if self.horizon is not None and now >= self.horizon:
            self.arrivals_over = True
            return
        n = self.arrived
        self.arrived = n + 1
        tidx = bisect.bisect_right(self._cum_shares, self._type_u()) if self._mixed else 0
        tt = self.task_types[tidx]
        measured = n >= self._warmup_tasks and now >= self._warmup
        if measured:
            if self.measure_start is None:
                self._start_measuring()
            self.arrived_measured += 1
        deadline = now + tt.deadline() if tt.deadline is not None else _INF
        task = Task(n, tt.name, tidx, tt.work(), tt.priority, deadline, tt.skills, now, measured)
        self.in_system += 1
        if self.limit is not None and n + 1 >= self.limit:
            self.arrivals_over = True
        else:  # call_after() inlined, reusing this Call: SimPy's loop is done with it
            ev.callbacks = self._arrival_cbs
            heappush(self._heap, (now + self._iat(), NORMAL, next(self._eid), ev))
        self._arrive(None, task)

    def _start_measuring(self) -> None:
        now = self.env._now
        self.measure_start = now
        self.kernel.measure(now)
        for a in self.agents:
            a.account(now)
            a.area0 = a.area
            a.down0 = a.down_time

    def _measure_at_warmup(self) -> Any:
        yield self.env.timeout(self._warmup)
        self._start_measuring()

    # -- endings ----------------------------------------------------------------
    def reject(self, task: Task) -> None:
        """A full buffer refused ``task``: it ends ``REJECTED`` (backpressure)."""
        if task.cancelled:
            return  # reneged already, or a copy that lost its race
        task.state = REJECTED
        self.finish(task)

    def abandon(self, task: Task) -> None:
        if task.cancelled:
            return  # a copy that lost its race: its task has ended already
        task.state = ABANDONED
        self.finish(task)

    def finish(self, task: Task) -> None:
        """Record a terminal task: ``DONE`` unless the caller set another ending
        (``ABANDONED``, ``REJECTED``, ``RENEGED``).

        A task with copies ends with the first copy that completes (or the last
        one abandoned); the others are cancelled and never recorded.
        """
        families = self._families
        if families and task.id in families and not self.ledger.ends_family(task):
            return
        if task.state < DONE:  # not an ending set by the caller
            task.state = DONE
        task.end = self.env._now
        self.recorder.add(task)  # a call, not inlined: checks count the tasks recorded by it
        self.in_system -= 1
        if (
            self.in_system == 0
            and self.arrivals_over
            and self.limit is not None
            and not self.done_event.triggered
        ):
            self.done_event.succeed()

    # -- sampling -------------------------------------------------------------------
    def _sample(self) -> Any:
        if self.horizon is not None:
            length = self.horizon
        else:
            assert self.limit is not None
            length = self.limit * self.mean_iat
        step = length / SAMPLES
        times, values = self.recorder.ts_times, self.recorder.ts_values
        times.append(0.0)
        values.append(0)
        auto = self.exp.auto_warmup
        for _ in range(SAMPLES):
            yield self.env.timeout(step)
            now = self.env._now
            times.append(now)
            values.append(self.in_system)
            if auto:
                for a in self.agents:
                    a.account(now)
                areas = [(a.area, a.down_time) for a in self.agents]
                self.snapshots.append((now, self.arrived, areas, dict(self.kernel.sent)))

    def truncate_at(self, index: int) -> float:
        """``warmup: auto``: measure from snapshot ``index`` on; return its time."""
        now, arrived, areas, messages = self.snapshots[index]
        self.measure_start = now
        self.arrived_measured = self.arrived - arrived
        self._warmup_tasks = arrived  # measured = arrival index after the snapshot
        self.kernel.measure(now, before=messages)
        for a, (area, down) in zip(self.agents, areas, strict=True):
            a.area0, a.down0 = area, down
        return now

    # -- run ----------------------------------------------------------------------------
    def run(self) -> Recorder:
        env = self.env
        if self.measure_start is not None and self._warmup > 0:
            self.measure_start = None
            self.kernel.measure_from = _INF  # messages count from the end of the warm-up
            env.process(self._measure_at_warmup())
        elif self.measure_start is not None:
            self._start_measuring()
        else:  # warmup_tasks: from the first measured arrival
            self.kernel.measure_from = _INF
        start_failures(self)
        start_slowdowns(self)
        env.process(self._sample())
        self._schedule_arrival()
        if self.horizon is not None:
            env.run(until=self.horizon)
        else:
            assert self.limit is not None
            cap = self.exp.drain_limit * self.limit * self.mean_iat
            Timeout(env, cap).callbacks.append(self._drain_cap)
            env.run(until=self.done_event)
        now = env._now
        for a in self.agents:
            a.account(now)
        self.recorder.end_time = now
        return self.recorder

    def _drain_cap(self, ev: Timeout) -> None:
        if not self.done_event.triggered:
            self.done_event.succeed()

    def live_tasks(self) -> list[Task]:
        """Every task not yet completed or abandoned, wherever it is."""
        # The tasks on the wire in a fixed order (a set's order follows memory addresses,
        # and the live tasks' order is the order their figures are summed in).
        transit = sorted(self.transit, key=lambda t: (t.id, t.copy))
        live: list[Task] = [*self.coordinator.held(), *transit]
        for service in self.services:
            live.extend(service.behaviour.held())
        for a in self.agents:
            live.extend(a.live_tasks())
        # A task that reneged is recorded at once but may still sit where it waited.
        live = [t for t in live if t.end < 0]
        if not self.ledger.has_copies:
            return live
        # With copies: one entry per task (the first copy found), never a cancelled copy
        # nor a shadow.
        seen: set[int] = set()
        unique = []
        shadows = self.ledger.shadows
        for t in live:
            if not t.cancelled and t.id not in seen and t not in shadows:
                seen.add(t.id)
                unique.append(t)
        return unique
