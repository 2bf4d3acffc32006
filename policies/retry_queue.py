"""The retry queue of a ``queueing`` coordinator: failed attempts wait, then re-enter.

Where a failed attempt of a task comes back to the coordinator (lost with a
crashed agent, bounced by an agent that was down, written off with a
suspected agent, or timed out), the coordinator calls its
``attempt_failed(task, why, agent)`` hook. Without a ``retry`` component that
hook is today's rule (re-enter, or abandon once out of the scenario's
``max_attempts``). With one, :func:`hook_retry` installs this module's
:class:`RetryQueue` in its place at the start of the run (no test per task
on the default path):

* ``delivery: at_most_once``: a bounce (a task that never reached a live
  agent) is retried; any other failed attempt may have run, so the task is
  given up: abandoned, reason ``given_up``, or left where it may still run
  (a written-off attempt is not re-sent; if it was lost, it is given up when
  the coordinator learns so).
* ``delivery: at_least_once``: every failed attempt is retried. An attempt
  that may still run is re-sent as the engine's answer to ``ctx.recover``:
  the task itself if it was lost, else a copy (the first copy to finish wins,
  the others are cancelled: ``duplicates``, ``duplicate_work``).
* A task's k-th failed attempt waits ``retry.delay(k, previous)`` in the
  retry queue (a timer), then re-enters routing; its ``max_attempts``-th goes
  to the dead-letter queue: abandoned, reason ``dead_letter``.
* With a ``timeout``, every task sent gets a timer: an attempt still not
  reported finished when it fires has failed (``timeout``).

Every failure, retry, dead letter and give-up is in the execution log with
its task and reason, so ``kossim trace`` shows a task's life across retries.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kossim.runspec import MetricRow
from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import WAITING, Task

__all__ = ["MAY_STILL_RUN", "REASONS", "RetryBook", "RetryQueue", "hook_retry"]

REASONS = ("lost", "bounced", "suspected", "timeout")
"""Why an attempt failed: lost with a crashed agent, bounced by a down agent, written off
with a suspected agent, not reported finished within the timeout."""

MAY_STILL_RUN = ("suspected", "timeout")
"""Failures after which the attempt may still be running on its agent (given with them):
what is re-sent is the engine's answer to ``ctx.recover``, the task or a copy."""


def hook_retry(coord: Any, ctx: Any) -> None:
    """Install a retry queue in ``coord`` if the policy names a ``retry`` component."""
    retry = ctx.component("retry")
    if retry is None:
        return
    rq = coord.retry_queue = RetryQueue(coord, ctx, retry)
    coord.attempt_failed = rq.attempt_failed
    coord.on_retry_due = rq.on_retry_due
    coord.on_done = rq.on_done  # after RetryQueue kept the coordinator's own
    base_held = coord.held
    coord.held = lambda: [*base_held(), *rq.waiting]
    if retry.params.timeout is not None:
        coord.track = True  # the timeout asks whether the attempt was reported
        coord._send = rq.timed_send  # after RetryQueue kept the coordinator's own
        coord.on_attempt_timeout = rq.on_attempt_timeout


class RetryBook:
    """What retries did in one run, with the arrival time of the task it happened to (the
    metrics count the tasks measured, known at the end). One per run, kept by the run's
    ``retry`` component and reported to the run once: every coordinator that leads in
    turn (failover) writes into it, and its rows are there whatever leads at the end."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.failures: dict[int, int] = {}  # task id -> failed attempts (copies share it)
        self.last_delay: dict[int, float] = {}  # task id -> its last retry delay
        self.retries: list[tuple[float, float]] = []  # (when it re-entered, arrival)
        self.delays: list[tuple[float, float]] = []  # (delay, arrival)
        self.failures_seen: list[tuple[str, float]] = []  # (why, arrival)
        self.dead: list[float] = []  # arrivals of the tasks dead-lettered
        self.gave_up: list[float] = []  # arrivals of the tasks given up
        self.skipped: list[float] = []  # arrivals of tasks that ended before their retry
        # The timed sends not yet reported or failed: task -> (agent index, when sent). With
        # ``durable``, the log a successor reads after a failover to time them out again.
        self.sent: dict[Task, tuple[int, float]] = {}

    @staticmethod
    def of(retry: Any, ctx: Any) -> RetryBook:
        """The run's book: made, and reported to the run, by the first coordinator."""
        book: RetryBook | None = getattr(retry, "book", None)
        if book is None:
            book = retry.book = RetryBook(retry.params.window)
            ctx.report(book)
        return book

    def metric_rows(self, start: float, end: float) -> list[MetricRow]:
        """``retry_sends``, ``retry_rate_peak``, ``retry_delay_mean``, ``retries_skipped``,
        ``dead_lettered``, ``given_up`` and ``attempt_failures`` (scopes ``all`` and
        ``reason=R``), over the tasks measured: those that arrived from ``start`` on."""
        times = [t for t, arrival in self.retries if arrival >= start]
        delays = [d for d, arrival in self.delays if arrival >= start]
        failed = [why for why, arrival in self.failures_seen if arrival >= start]
        rows: list[MetricRow] = [
            ("retry_sends", "all", float(len(times))),
            ("retry_rate_peak", "all", peak_rate(times, self.window)),
            ("retry_delay_mean", "all", sum(delays) / len(delays) if delays else float("nan")),
            ("retries_skipped", "all", float(sum(a >= start for a in self.skipped))),
            ("dead_lettered", "all", float(sum(a >= start for a in self.dead))),
            ("given_up", "all", float(sum(a >= start for a in self.gave_up))),
            ("attempt_failures", "all", float(len(failed))),
        ]
        rows.extend(("attempt_failures", f"reason={r}", float(failed.count(r))) for r in REASONS)
        return rows


class RetryQueue:
    """Failed attempts waiting for their retry, at one coordinator."""

    def __init__(self, coord: Any, ctx: Any, retry: Any) -> None:
        self.coord = coord
        self.ctx = ctx
        self.retry = retry
        params = retry.params
        self.max_attempts: int = params.max_attempts
        self.at_least_once = params.delivery == "at_least_once"
        self.timeout: float | None = params.timeout
        self.send: Callable[[Any, Task], None] = coord._send
        self.done: Callable[[Actor, Task], None] = coord.on_done
        self.waiting: dict[Task, Timer] = {}  # in the retry queue, in order of entry
        self.pending: dict[Task, int] = {}  # task -> number of its latest timed send
        self.sent = 0
        book = self.book = RetryBook.of(retry, ctx)
        self.failures, self.last_delay = book.failures, book.last_delay
        self.retries, self.delays, self.failures_seen = (
            book.retries,
            book.delays,
            book.failures_seen,
        )
        self.dead, self.gave_up, self.skipped = book.dead, book.gave_up, book.skipped
        self.durable = params.durable and self.timeout is not None
        if self.durable and book.sent:  # a successor: what its predecessor sent, timed out
            self._rearm(book)

    # -- the hook ------------------------------------------------------------------------
    def attempt_failed(self, task: Task, why: str, agent: Actor | None = None) -> None:
        """``task``'s attempt failed (``why``: one of :data:`REASONS`) on ``agent`` (when
        known), where it may still run after a suspicion or a timeout."""
        ctx = self.ctx
        if self.durable:
            self.book.sent.pop(task, None)  # this attempt is settled: out of the log
        if task.cancelled:  # a copy that lost its race on its way: nothing to retry
            return
        self.failures_seen.append((why, task.arrival))
        if agent is not None and why in MAY_STILL_RUN:  # it may still run there
            if not self.at_least_once:
                if ctx.tracing:
                    ctx.log(
                        "no_resend",
                        f"task {task.id}: attempt on {agent.name} {why}, not re-sent: "
                        "at_most_once (it may still run)",
                        task,
                        agent=agent.name,
                    )
                return
            again = ctx.recover(task, agent)
            if again is None:
                return  # it ended: its report is on the way
            task = again
        if not self.at_least_once and why != "bounced":
            self._give_up(task, why)
            return
        n = self.failures[task.id] = self.failures.get(task.id, 0) + 1
        if n >= self.max_attempts:
            self._dead_letter(task, why, n)
            return
        delay = self.retry.delay(n, self.last_delay.get(task.id, 0.0))
        self.last_delay[task.id] = delay
        self.delays.append((delay, task.arrival))
        if ctx.tracing:
            copy = f" (copy {task.copy})" if task.copy else ""
            ctx.log(
                "retry",
                f"task {task.id}{copy}: attempt {n} {why}; retry {n} in {delay:.4g} "
                f"({type(self.retry).id}, {self.max_attempts - n} attempts left)",
                task,
                why=why,
                attempt=n,
                delay=delay,
            )
        if delay <= 0.0:
            self._reenter(task)
            return
        task.state = WAITING
        self.waiting[task] = ctx.after(delay, "retry_due", task)

    def surrender(self) -> list[Task]:
        """The tasks waiting for their retry, taken out (their timers cancelled): the
        coordinator crashed, and they go back to the entry with its queue."""
        tasks = list(self.waiting)
        for timer in self.waiting.values():
            timer.cancel()
        self.waiting.clear()
        return tasks

    def on_retry_due(self, sender: None, task: Task) -> None:
        """A task's backoff is over: it re-enters routing (unless it ended meanwhile)."""
        del self.waiting[task]
        if task.end >= 0 or task.cancelled:
            self.skipped.append(task.arrival)
            if self.ctx.tracing:
                self.ctx.log(
                    "retry_skip", f"task {task.id}: ended while waiting for its retry", task
                )
            return
        self._reenter(task)

    def _reenter(self, task: Task) -> None:
        self.retries.append((self.ctx.now, task.arrival))
        self.coord.reenter(task)

    def _dead_letter(self, task: Task, why: str, n: int) -> None:
        ctx = self.ctx
        if ctx.tracing:
            ctx.log(
                "dead_letter",
                f"task {task.id}: attempt {n} of {self.max_attempts} {why}; dead letter",
                task,
                ending="dead_letter",
            )
        ctx.abandon(task)
        if task.end >= 0:  # it ended the task (not a copy while another races on)
            self.dead.append(task.arrival)

    def _give_up(self, task: Task, why: str) -> None:
        ctx = self.ctx
        if ctx.tracing:
            ctx.log(
                "give_up",
                f"task {task.id}: attempt {why}, given up: at_most_once never repeats an "
                "attempt that may have run",
                task,
                ending="given_up",
            )
        ctx.abandon(task)
        if task.end >= 0:
            self.gave_up.append(task.arrival)

    def on_done(self, sender: Actor, task: Task) -> None:
        """A task's ending reported: its failure count is no longer needed."""
        if self.failures:
            self.failures.pop(task.id, None)
            self.last_delay.pop(task.id, None)
        if self.durable:
            self.book.sent.pop(task, None)
        self.done(sender, task)

    def _rearm(self, book: RetryBook) -> None:
        """A new coordinator (failover) reads the log of timed sends: each attempt still
        unreported is timed out where its predecessor would have timed it out."""
        ctx = self.ctx
        now = ctx.now
        for task, (index, at) in sorted(book.sent.items(), key=lambda kv: (kv[1][1], kv[0].id)):
            if task.end >= 0 or task.cancelled:
                del book.sent[task]
                continue
            assert self.timeout is not None
            ctx.after(max(0.0, at + self.timeout - now), "attempt_timeout", (task, index, -1))
        if ctx.tracing:
            ctx.log("retry_log", f"{len(book.sent)} timed sends read from the retry log")

    # -- timeouts --------------------------------------------------------------------------
    def timed_send(self, view: Any, task: Task) -> None:
        """Send ``task`` and time its attempt out after ``timeout``."""
        self.send(view, task)
        self.sent = n = self.sent + 1
        self.pending[task] = n
        if self.durable:
            self.book.sent[task] = (view.index, self.ctx.now)
        self.ctx.after(self.timeout, "attempt_timeout", (task, view.index, n))

    def on_attempt_timeout(self, sender: None, news: tuple[Task, int, int]) -> None:
        """No report of the attempt within ``timeout``: it has failed, whatever runs on."""
        task, index, n = news
        coord = self.coord
        view = coord.views[index]
        if n < 0:  # a send of a predecessor, read from the log (durable)
            if self.book.sent.get(task, (-1, 0.0))[0] != index or task.end >= 0:
                return  # reported, failed or sent again since
            del self.book.sent[task]
            if task in view.tasks:
                return  # its agent reported it in the view it rebuilt: it runs there
            if any(task in v.tasks for v in coord.views):
                return  # moved on to another agent (delegation)
        else:
            if self.pending.get(task) != n:
                return  # sent again since: that send has a timer of its own
            del self.pending[task]
            if self.durable:
                self.book.sent.pop(task, None)
            if task not in view.tasks:
                return  # reported in time, or written off already
            coord._forget(view, task)
        agent = coord.agents[index]
        if self.ctx.tracing:
            self.ctx.log(
                "timeout",
                f"task {task.id}: no report from {agent.name} within {self.timeout:g}",
                task,
                agent=agent.name,
            )
        self.attempt_failed(task, "timeout", agent)
        if coord.pull:
            coord.pump()


def peak_rate(times: list[float], window: float) -> float:
    """The most events (at sorted ``times``) inside any window of width ``window``, per unit
    time: a retry storm's height."""
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best / window
