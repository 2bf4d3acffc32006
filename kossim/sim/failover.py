"""Coordinator failover: the physics of coordinator processes.

Physics only; the protocol (beats, suspicion, take-over, the view rebuilt from
the agents' reports) is the ``standby`` component's (:mod:`policies.failover`).

* **Coordinator processes.** The coordinators form a ring: the primary and the
  policy's standbys, each on a node of its own. A crashed coordinator loses
  its memory (its views, its term's bookkeeping); its actor answers nothing:
  a message to it is refused. Its host restarts it after the down time, as a
  standby when the policy has any, else as the leader again (rebuilding its
  view). Only the term is durable, as a leader's term is kept on disk.
* **The entry** (the front door, :mod:`kossim.sim.entry`) takes every
  arrival and passes it to the leader it knows, re-sending it until acked.
  Tasks never vanish with a coordinator: the tasks waiting in a crashed
  coordinator's queue, and a task carried by a message a coordinator refuses
  (an arrival, a bounced or preempted task), go back to the entry (and leave
  the ring's log of accepted submissions), which holds them until a leader
  announces itself.
* **The coordinator's address.** A failure detector's verdicts go to the
  coordinator's address, which a take-over re-points at the new leader (a
  verdict sent while no coordinator leads is lost; the leader learns of the
  agent's failure from its ``state`` or ``repaired`` report instead).
* **Measurements** (``metric_rows`` of the entry, over the measurement
  window): ``coordinator_outage`` (time with no leading coordinator),
  ``coordinator_failures``, ``takeovers`` and ``failovers`` (take-overs by a
  coordinator other than the one that crashed), ``takeover_time_mean`` (crash
  to the next leader taking over), ``failover_detection_mean`` (crash to the
  first suspicion), ``failover_false_suspicions``, ``view_rebuild_mean``
  (take-over to the last agent's report), ``failover_delayed`` (measured tasks
  held at the entry) and ``failover_delay_mean`` (their mean time held);
  ``standby_takeovers`` (a reserve agent standing in for a failed one) and
  ``standby_tasks_taken`` (the waiting tasks it took over); ``entry_resends``
  and ``entry_duplicates`` (:mod:`kossim.sim.entry`).
* **Standby agents.** The waiting tasks of a failed agent are kept where a
  standby agent can take them over (:meth:`Failover.hand_over`); the tasks on
  its slots follow the scenario's ``on_failure``.

The timeline hooks are :meth:`Failover.fail_coordinator` and
:meth:`Failover.repair_coordinator` (``world.failover``).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from kossim.config.base import COORDINATOR
from kossim.config.failover import standby_nodes
from kossim.dists import lean_sampler
from kossim.registry import resolve
from kossim.sim.context import CoordinatorContext
from kossim.sim.entry import Accepted, Entry
from kossim.sim.kernel import Actor, Handlers
from kossim.sim.streams import stream
from kossim.sim.task import Task

if TYPE_CHECKING:
    from kossim.sim.world import World

__all__ = ["Failover"]


class _Crashed:
    """What a crashed coordinator's actor runs: nothing (it holds no task)."""

    sends: tuple[str, ...] = ()

    def held(self) -> list[Task]:
        return []

    def metric_rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        return []


class _Refused(dict[str, Any]):
    """The handlers of a crashed coordinator: every message is refused."""

    def __init__(self, failover: Failover, actor: Actor) -> None:
        super().__init__()
        self.failover, self.actor = failover, actor

    def __missing__(self, kind: str) -> Any:
        handler = self[kind] = partial(self.failover.refused, self.actor, kind)
        return handler


def _carried(payload: Any) -> Task | None:
    if payload.__class__ is Task:
        return payload
    if isinstance(payload, tuple) and payload and payload[0].__class__ is Task:
        return payload[0]
    return None


class Failover:
    """The coordinator processes of one run, the entry, and the coordinator's clock."""

    def __init__(self, world: World) -> None:
        self.world = world
        policy = world.policy
        self.standby = resolve("standby", policy.standby)
        params = self.standby.params
        self.heartbeat: float | None = getattr(params, "heartbeat", None)
        self.reserve: set[str] = set(getattr(params, "agents", ()))  # standby agent groups
        self.covers: set[str] | None = (
            set(params.covers) if getattr(params, "covers", None) is not None else None
        )
        self.agent_takeovers: list[tuple[float, int]] = []  # (when, tasks moved)
        self.coordinator = resolve("coordinator", policy.coordinator)
        self.leading_class = self.standby.cls.leading(self.coordinator.cls)  # type: ignore[attr-defined]
        primary = world.coordinator_actor
        self.primary = primary
        self.ring: list[Actor] = [primary]
        self.term: dict[str, int] = {primary.name: 1}  # durable: the last term each knew
        self.contexts: dict[str, CoordinatorContext] = {primary.name: primary.ctx}
        self.leading: list[Actor] = [primary]
        self.down: list[Actor] = []
        # measurements
        self.outage_from: float | None = None  # no coordinator leads since
        self.cause: Actor | None = None  # whose crash began the outage
        self.outages: list[tuple[float, float]] = []
        self.crashes: list[float] = []
        self.down_spans: list[tuple[float, float]] = []  # (crash, restart): the truth
        self.crashed_at: dict[str, float] = {}
        self.takeovers: list[tuple[float, float, bool]] = []  # (crash, take-over, by another)
        self.detections: list[tuple[float, float]] = []  # (suspicion, crash-to-suspicion)
        self.detected = True  # the current outage's first suspicion is recorded
        self.false_suspicions: list[float] = []
        self.took_at: dict[str, float] = {}
        self.rebuilds: list[tuple[float, float]] = []  # (rebuilt at, take-over to rebuilt)

        self.accepted = Accepted(world)  # the ring's log of accepted submissions
        self.door = Entry(self, primary, float(getattr(params, "ack_timeout", 1.0)))
        self.entry = world.spawn("entry", "entry", COORDINATOR, self.door)
        for rank, node in enumerate(standby_nodes(policy), start=1):
            self.ring.append(self._watcher_actor(node, rank))
        world.coordinator.__class__ = self.leading_class
        world.coordinator.lead(self, 1, 0, rebuilding=False)
        for actor in world.agent_actors:
            b = actor.behaviour
            b.__class__ = self.standby.cls.following(type(b))  # type: ignore[attr-defined]
            b.sends = (*b.sends, "state", "took") if self.reserve else (*b.sends, "state")
            b.roles = self
        clock = world.exp.scenario.failures.coordinator
        if clock is not None:
            self._up = lean_sampler(clock.up, stream(world.seed, "failures:coordinator:up"))
            self._down = lean_sampler(clock.down, stream(world.seed, "failures:coordinator:down"))
            world.env.process(self._clock())

    def _watcher_actor(self, name: str, rank: int) -> Actor:
        watcher = self._watcher(rank, 1, 0)
        actor = self.world.spawn("standby", name, name, watcher)
        self.term[name] = 1
        self.contexts[name] = CoordinatorContext(self.world, actor)
        return actor

    def _watcher(self, rank: int, term: int, leader: int | None) -> Any:
        from kossim.registry import build

        watcher = build(self.standby, stream(self.world.seed, f"standby:{rank}"))
        watcher.bind(self, rank, term, leader)
        return watcher

    # -- the clock and the timeline's verbs -------------------------------------------------
    def _clock(self) -> Any:
        env = self.world.env
        while True:
            yield env.timeout(self._up())
            crashed = self.fail_coordinator("its failure clock")
            yield env.timeout(self._down())
            if crashed is not None:
                self.repair_coordinator(crashed.name)

    def fail_coordinator(self, why: str = "killed", name: str | None = None) -> Actor | None:
        """Crash coordinator ``name``, by default the one that leads (the newest term);
        return it, or ``None`` if there was none up to crash."""
        if name is not None:
            targets = [a for a in self.ring if a.name == name and a not in self.down]
        else:
            targets = sorted(self.leading, key=lambda a: (-self.term[a.name], self._rank(a)))
        if not targets:
            self._log("crash", COORDINATOR, f"no coordinator up to crash ({why})")
            return None
        self._crash(targets[0], why)
        return targets[0]

    def repair_coordinator(self, name: str | None = None) -> None:
        """Restart crashed coordinator ``name`` (default: every crashed one)."""
        for actor in [a for a in self.down if name is None or a.name == name]:
            self.down.remove(actor)
            self.down_spans.append((self.crashed_at[actor.name], self.world.env._now))
            if len(self.ring) == 1:  # no standby: it leads again, rebuilding its view
                self._log("restart", actor.name, f"{actor.name} restarts and leads")
                self.promote(actor, self.term[actor.name] + 1)
            else:
                self._log("restart", actor.name, f"{actor.name} restarts as a standby")
                self._become(actor, self._watcher(self._rank(actor), self.term[actor.name], None))

    # -- role changes ---------------------------------------------------------------------
    def _rank(self, actor: Actor) -> int:
        return self.ring.index(actor)

    def _become(self, actor: Actor, behaviour: Any) -> None:
        actor.behaviour = behaviour
        actor.handlers = Handlers(actor)
        if actor is self.primary:
            self.world.coordinator = behaviour
        behaviour.on_start(self.contexts[actor.name])

    def _crash(self, actor: Actor, why: str) -> None:
        now = self.world.env._now
        tasks: list[Task] = []
        if actor in self.leading:
            tasks = actor.behaviour.surrender()
            self.leading.remove(actor)
        actor.behaviour = _Crashed()
        actor.handlers = _Refused(self, actor)  # type: ignore[assignment]
        if actor is self.primary:
            self.world.coordinator = actor.behaviour
        self.down.append(actor)
        self.crashes.append(now)
        self.crashed_at[actor.name] = now
        self._log("crash", actor.name, f"{actor.name} crashes ({why}): {len(tasks)} waiting tasks")
        if not self.leading and self.outage_from is None:
            self.outage_from, self.cause, self.detected = now, actor, False
        for task in tasks:
            self.accepted.give_back(task)
            self.door.hold(task, actor, f"waited at {actor.name}, which crashed")

    def promote(self, actor: Actor, term: int) -> None:
        """``actor`` starts leading in ``term``: a fresh coordinator, rebuilding its view."""
        now = self.world.env._now
        self.term[actor.name] = term
        behaviour = self.leading_class(
            self.coordinator.params,
            stream(self.world.seed, f"policy:{self.world.policy.name}:{actor.name}:{term}"),
        )
        self._become(actor, behaviour)
        self.leading.append(actor)
        self.world.coordinator_actor = actor  # the coordinator's address: detectors write here
        self.took_at[actor.name] = now
        if self.outage_from is not None:
            self.outages.append((self.outage_from, now))
            self.takeovers.append((self.outage_from, now, actor is not self.cause))
            self.outage_from = None
        self._log("takeover", actor.name, f"{actor.name} leads in term {term}")
        behaviour.lead(self, term, self._rank(actor), rebuilding=True)

    def step_down(self, actor: Actor, news: tuple[int, int]) -> None:
        """``actor`` leads no more (another leads in a newer term): its waiting tasks go
        back to the entry and it watches the leader as a standby."""
        tasks = actor.behaviour.surrender()
        self.leading.remove(actor)
        self.term[actor.name] = max(self.term[actor.name], news[0])
        self._become(actor, self._watcher(self._rank(actor), news[0], news[1]))
        self.world.coordinator_actor = self.ring[news[1]]
        for task in tasks:
            self.accepted.give_back(task)
            self.door.hold(task, actor, f"waited at {actor.name}, which stepped down")

    # -- what the protocol reports --------------------------------------------------------
    def suspected(self, actor: Actor, leader: int | None) -> None:
        """A standby suspects the leader (of rank ``leader``): judged against the truth."""
        now = self.world.env._now
        if leader is not None and self.ring[leader] in self.leading:
            self.false_suspicions.append(now)
        elif self.outage_from is not None and not self.detected:
            self.detected = True
            self.detections.append((now, now - self.outage_from))

    def rebuilt(self, actor: Actor) -> None:
        now = self.world.env._now
        self.rebuilds.append((now, now - self.took_at[actor.name]))

    def hand_over(self, failed: Actor, to: Actor) -> list[Task]:
        """Physics of a standby agent: the tasks waiting in the queue of ``failed`` (kept
        where another agent can reach them) move to ``to``; those on its slots stay, under
        the scenario's ``on_failure``, and so do the tasks ``to`` lacks the skills for.
        Nothing moves if ``failed`` is up again."""
        agent = self.world.agents[failed.index]
        able = self.world.profiles[to.index]
        tasks: list[Task] = []
        if not agent.up:
            queue = agent.behaviour.local
            for task in queue.drain():  # the tasks it lacks the skills for stay
                if able.proficiency(task.skills) > 0:
                    tasks.append(task)
                else:
                    queue.push(task)
        self.agent_takeovers.append((self.world.env._now, len(tasks)))
        return tasks

    def refused(self, at: Actor, kind: str, sender: Any, payload: Any) -> None:
        """A message reached crashed coordinator ``at``: a live task it carries goes back to
        the entry; anything else is lost (a timer of the crashed process, a report)."""
        if sender is None:
            return
        self.refuse(at, kind, payload)

    def refuse(self, at: Actor, kind: str, payload: Any) -> None:
        task = _carried(payload)
        if kind == "resend":  # carries no task: the entry re-sends it when it times out
            self._log("drop", at.name, f"resend to {at.name} lost: it does not lead", task)
        elif task is not None and task.end < 0 and not task.cancelled:
            if kind != "arrival":  # a task of the ring's comes back: the entry resubmits it
                self.accepted.give_back(task)
            self.door.hold(task, at, f"{kind} refused by {at.name}")
        else:
            self._log("drop", at.name, f"{kind} to {at.name} lost: it does not lead", task)

    def admit(self, task: Task, resent: bool) -> str:
        """A leader received submission ``task``: :meth:`Accepted.admit`."""
        return self.accepted.admit(task, resent)

    def _log(self, kind: str, who: str, reason: str, task: Task | None = None) -> None:
        log = self.world.kernel.log
        if log is not None:
            log.record(self.world.env._now, kind, who, reason, task, {})

    # -- measurements --------------------------------------------------------------------
    def rows(self, start: float, end: float) -> list[tuple[str, str, float]]:
        spans = [*self.outages]
        if self.outage_from is not None:
            spans.append((self.outage_from, end))
        outage = sum(max(0.0, min(b, end) - max(a, start)) for a, b in spans)
        took = [(b - a, other) for a, b, other in self.takeovers if start <= b <= end]
        detect = [d for at, d in self.detections if start <= at <= end]
        rebuilds = [d for at, d in self.rebuilds if start <= at <= end]
        delay = dict(self.door.delay)
        for task, since in self.door.since.items():  # still held at the end
            if task.measured:
                delay[task] = delay.get(task, 0.0) + end - since
        moved = [(t, n) for t, n in self.agent_takeovers if start <= t <= end]
        nan = float("nan")
        return [
            ("coordinator_outage", "all", outage),
            ("coordinator_failures", "all", float(sum(start <= t <= end for t in self.crashes))),
            ("takeovers", "all", float(len(took))),
            ("failovers", "all", float(sum(other for _, other in took))),
            ("takeover_time_mean", "all", _mean([d for d, _ in took], nan)),
            ("failover_detection_mean", "all", _mean(detect, nan)),
            (
                "failover_false_suspicions",
                "all",
                float(sum(start <= t <= end for t in self.false_suspicions)),
            ),
            ("view_rebuild_mean", "all", _mean(rebuilds, nan)),
            ("failover_delayed", "all", float(len(delay))),
            ("failover_delay_mean", "all", _mean(list(delay.values()), nan)),
            ("standby_takeovers", "all", float(len(moved))),
            ("standby_tasks_taken", "all", float(sum(n for _, n in moved))),
            ("entry_resends", "all", float(sum(start <= t <= end for t in self.door.resends))),
            (
                "entry_duplicates",
                "all",
                float(sum(start <= t <= end for t in self.accepted.duplicates)),
            ),
        ]


def _mean(values: list[float], empty: float) -> float:
    return sum(values) / len(values) if values else empty
