"""Speculative execution: progress reports, a straggler detector and backup copies.

Three parties, one message exchange:

* **agents** (:class:`ProgressReports`, part of the ``worker``) report, every
  ``interval`` once a watcher asked them (``watch``), the progress of each task
  on their slots: ``progress (sent_at, incarnation, ((task, fraction done), ...))``,
  a network message that costs traffic and arrives late;
* **the detector** (:class:`Backup`, kind ``speculation``, id ``backup``), a
  service actor on the coordinator's node, turns two reports of one running copy
  into its progress rate, in work per unit time: ``(f2 - f1) x work / (t2 - t1)``
  over the span since the copy was first seen on that agent (in that incarnation).
  Each agent's latest rate (the mean over its reported copies) is one sample; the
  *median* is taken over the agents' latest samples (recomputed once per
  ``interval``), so that a few slow agents, whose tasks last long and are reported
  often, cannot drag it down. A copy
  observed for at least ``min_elapsed`` whose rate is below ``threshold x median``
  (with at least three agents sampled), and whose work left at its rate would take
  longer than a fresh copy's whole work at the median rate (LATE's test: a nearly
  finished straggler is left alone), is a straggler: the detector flags it once
  (``stragglers_flagged``) and asks the coordinator for a backup (``straggler``),
  naming the agents whose latest rate is below the bar, where no backup should go;
  it asks again on later reports until the coordinator answers ``backed``;
* **the coordinator** (:class:`Speculating`, part of the ``queueing`` coordinator)
  launches a backup copy (``ctx.backup``: the ledger's copy, the first to finish
  wins, the other is cancelled and its work counted as ``duplicate_work``) on the
  least loaded agent with a free slot that is neither the straggler's nor one of
  the slow, within ``max_backups`` per task and ``max_share`` of the fleet running
  backups at once. A straggler finds no free slot while tasks wait: backups never
  take a slot from waiting work.

Every flag and launch (or reason for none) goes to the execution log.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, ClassVar

from pydantic import Field

from kossim.analysis.metrics import SPECULATION_METRICS
from kossim.policy import Behaviour, Params
from kossim.runspec import MetricRow
from kossim.sim.kernel import Actor
from kossim.sim.task import DONE, Task

__all__ = ["Backup", "BackupParams", "ProgressReports", "Speculating", "speculate"]

RESUBSCRIBE = 10
"""Intervals between two ``watch`` requests to an agent not heard from yet."""


class BackupParams(Params):
    interval: float = Field(default=1.0, gt=0, description="agents report progress this often")
    threshold: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="a copy whose progress rate is below threshold x the median rate is a "
        "straggler",
    )
    min_elapsed: float = Field(
        default=1.0, ge=0, description="observe a copy at least this long before judging it"
    )
    max_backups: int = Field(default=1, ge=1, description="backup copies per task, at most")
    max_share: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="the most backups running at once, as a share of the agents (rounded "
        "up: at least one)",
    )


class Backup(Behaviour):
    """Flags stragglers from progress reports and asks the coordinator for backups."""

    kind = "speculation"
    id = "backup"
    description = "progress reports; a copy slower than threshold x median rate gets a backup"
    sends: tuple[str, ...] = ("watch", "progress", "straggler")
    Params: ClassVar[type[Params]] = BackupParams

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        p = self.params
        self.interval: float = p.interval
        self.threshold: float = p.threshold
        self.min_elapsed: float = p.min_elapsed
        # agent index -> (incarnation, {(task id, copy): (first seen at, fraction then)})
        self.seen: dict[int, tuple[int, dict[tuple[int, int], tuple[float, float]]]] = {}
        self.rates: dict[int, float] = {}  # agent index -> its latest progress rate
        self.flagged: set[tuple[int, int]] = set()  # copies flagged (counted once)
        self.backed: set[tuple[int, int]] = set()  # copies the coordinator answered for
        self.flags = 0  # measured copies flagged
        self.copies: list[Task] = []  # backups launched for measured tasks
        self._median_value = 0.0
        self._median_due = 0.0  # when the median of the agents' rates is next recomputed
        self._median_n = 0  # agents sampled when it was last computed
        ctx.after(0.0, "subscribe")  # once every actor has started

    def on_subscribe(self, sender: None, payload: None) -> None:
        """Ask every agent not heard from yet to report its progress; again every
        ``RESUBSCRIBE`` intervals until each has reported once (a ``watch`` lost on a lossy
        network, or cut by a partition, would leave an agent silent for good)."""
        silent = [a for a in self.ctx.agents if a.index not in self.seen]
        for agent in silent:
            self.ctx.send(agent, "watch", self.interval)
        if silent:
            self.ctx.after(RESUBSCRIBE * self.interval, "subscribe")

    def on_progress(self, sender: Actor, report: tuple[float, int, tuple[Any, ...]]) -> None:
        """An agent's progress: the rate of each copy it runs since first seen there."""
        at, incarnation, tasks = report
        i = sender.index
        old = self.seen.get(i)
        before = old[1] if old is not None and old[0] == incarnation else {}
        now: dict[tuple[int, int], tuple[float, float]] = {}
        rates: list[tuple[Task, float, float, float]] = []
        for task, fraction in tasks:
            key = (task.id, task.copy)
            first = before.get(key)
            if first is None:
                now[key] = (at, fraction)
                continue
            now[key] = first
            span = at - first[0]
            if span > 0:
                rates.append((task, (fraction - first[1]) * task.work / span, span, fraction))
        self.seen[i] = (incarnation, now)
        if not rates:
            return
        self.rates[i] = sum(r[1] for r in rates) / len(rates)
        if len(self.rates) < 3:
            return
        median = self._median(at)
        bar = self.threshold * median
        for task, rate, span, fraction in rates:
            key = (task.id, task.copy)
            if span < self.min_elapsed or rate >= bar or key in self.backed:
                continue
            # Worth a backup only if a fresh copy at the median rate would finish sooner.
            left = (1.0 - fraction) * task.work
            if rate > 0 and left / rate <= task.work / median:
                continue
            self._flag(sender, task, key, rate, median, span)

    def _median(self, at: float) -> float:
        """The median of the agents' latest rates, recomputed at most once per ``interval``
        unless an agent was sampled for the first time (O(N log N) each time, not per
        report)."""
        n = len(self.rates)
        if at >= self._median_due or n != self._median_n:
            self._median_value = statistics.median(self.rates.values())
            self._median_due = at + self.interval
            self._median_n = n
        return self._median_value

    def _flag(
        self,
        agent: Actor,
        task: Task,
        key: tuple[int, int],
        rate: float,
        median: float,
        span: float,
    ) -> None:
        ctx = self.ctx
        if key not in self.flagged:
            self.flagged.add(key)
            if task.measured:
                self.flags += 1
            if ctx.tracing:
                ctx.log(
                    "straggler",
                    f"task {task.id} copy {task.copy} on {agent.name}: progress rate "
                    f"{rate:.4g} < {self.threshold:g} x median {median:.4g} of "
                    f"{len(self.rates)} agents, observed {span:.4g}",
                    task,
                    agent=agent.name,
                    value=rate,
                )
        bar = self.threshold * median
        slow = tuple(sorted(j for j, r in self.rates.items() if r < bar))
        why = f"rate {rate:.4g} < {self.threshold:g} x median {median:.4g}"
        ctx.send(ctx.coordinator, "straggler", (task, agent, slow, why))

    def on_backed(self, sender: Actor, answer: tuple[Task, Task | None]) -> None:
        """The coordinator answered for a straggler: its backup, or none ever (a bound)."""
        task, copy = answer
        self.backed.add((task.id, task.copy))
        if copy is not None and copy.measured:
            self.copies.append(copy)

    def metric_rows(self, start: float, end: float) -> list[MetricRow]:
        """``backups`` launched, ``backup_wins`` (backups that ended their task first) and
        ``stragglers_flagged``, over measured tasks."""
        wins = sum(1 for c in self.copies if c.state == DONE and c.end >= 0 and not c.cancelled)
        values = (float(len(self.copies)), float(wins), float(self.flags))
        return [(name, "all", v) for name, v in zip(SPECULATION_METRICS, values, strict=True)]


class ProgressReports:
    """An agent's side: once watched, report each running task's fraction done every
    ``interval`` (while up), starting at a random phase."""

    watcher: Actor | None = None
    watch_interval = 0.0
    ctx: Any

    def on_watch(self, sender: Actor, interval: float) -> None:
        first = self.watcher is None
        self.watcher = sender
        self.watch_interval = interval
        if first:
            self.ctx.after(float(self.ctx.rng.uniform(0.0, interval)), "report_progress")

    def on_report_progress(self, sender: None, payload: None) -> None:
        ctx = self.ctx
        if ctx.up and ctx.running:
            ctx.refresh()
            tasks = tuple(
                (t, 1.0 - t.remaining / t.work if t.work > 0 else 1.0) for t in ctx.running
            )
            ctx.send(self.watcher, "progress", (ctx.now, ctx.incarnation, tasks))
        ctx.after(self.watch_interval, "report_progress")


class Speculating:
    """A coordinator's side: launch backups of stragglers on free agents elsewhere.

    Set up by :func:`speculate` from the coordinator's ``on_start`` when the policy has
    a ``speculation`` component; a coordinator class that can send a copy to an agent
    of its choosing declares ``speculates = True``.
    """

    speculates: ClassVar[bool] = True
    ctx: Any
    views: list[Any]
    _send: Any  # the coordinator's own: send a task to the agent of a view
    speculation: BackupParams
    backups_of: dict[int, int]  # task id -> backups launched
    live_backups: list[Task]  # backups launched and not known to have ended

    def on_straggler(self, sender: Actor, flag: tuple[Task, Actor, tuple[int, ...], str]) -> None:
        task, agent, slow, why = flag
        ctx = self.ctx
        spec = self.speculation
        made = self.backups_of.get(task.id, 0)
        if made >= spec.max_backups:
            self._decline(task, f"{made} backup(s) made already (max_backups {spec.max_backups})")
            ctx.send(sender, "backed", (task, None))
            return
        live = [c for c in self.live_backups if c.end < 0 and not c.cancelled]
        self.live_backups = live
        if len(live) >= math.ceil(spec.max_share * len(self.views)):
            self._decline(task, f"{len(live)} backups running (max_share {spec.max_share:g})")
            return
        target = self._backup_target(task, agent.index, slow)
        if target is None:
            self._decline(task, "no free agent elsewhere")
            return
        copy = ctx.backup(task)
        if copy is None:  # it ended while the flag was on its way
            ctx.send(sender, "backed", (task, None))
            return
        self.backups_of[task.id] = made + 1
        live.append(copy)
        if ctx.tracing:
            ctx.log(
                "backup",
                f"task {task.id}: backup copy {copy.copy} -> {target.name} (copy {task.copy} "
                f"straggles on {agent.name}: {why})",
                copy,
                agent=target.name,
            )
        self._send(target, copy)
        ctx.send(sender, "backed", (task, copy))

    def _backup_target(self, task: Task, avoid: int, slow: tuple[int, ...]) -> Any:
        """The least loaded agent believed up with a free slot for ``task``, neither
        ``avoid`` nor one of ``slow`` (ties: the lowest index)."""
        best = None
        for v in self.views:
            if (
                v.up
                and v.queue_length < v.capacity
                and v.index != avoid
                and v.index not in slow
                and v.proficiency(task.skills) > 0
                and (best is None or v.queue_length < best.queue_length)
            ):
                best = v
        return best

    def _decline(self, task: Task, why: str) -> None:
        if self.ctx.tracing:
            self.ctx.log("no_backup", f"task {task.id}: no backup now: {why}", task)


def speculate(coordinator: Any, ctx: Any) -> None:
    """Start speculation for ``coordinator`` if its policy has a ``speculation`` component:
    the detector runs as a service actor beside it."""
    detector = ctx.component("speculation")
    if detector is None:
        return
    coordinator.speculation = detector.params
    coordinator.backups_of = {}
    coordinator.live_backups = []
    ctx.spawn("speculation", "speculation", ctx.node, detector)
