"""The ``locking`` agent: a worker that takes the locks a task type needs before serving it.

For a task of a type with ``locks``, the agent asks each resource's lock
service for its lock (``acquire``), one resource at a time in name order (so
two tasks that need the same resources never wait for each other in a
cycle), and starts the task once it holds them all. While it holds a lease it
renews it every ``renew_every`` (the grant's terms). When the service ends,
the task writes each resource it holds exclusively (``write``, carrying the
lease's fencing token); once every resource accepted, the agent releases the
locks and the task completes. A write refused for a stale token (``fenced``)
fails the attempt: the locks are released, the task starts over and goes back
to the coordinator (``returned``), or is abandoned once out of attempts.

A task holds a slot from its lock request to its last write's answer: the
wait for a lock (``lock_wait_mean``) and the writes cost slot-time (not
counted busy). Plain tasks are served as by ``worker``, in the slots left.

Failures follow the scenario's semantics. Under ``requeue`` a crash loses the
agent's locked tasks with its others (the coordinator reclaims them) and its
locks are never released: a lease service takes them back at expiry. Under
``resume`` and ``restart`` the agent keeps its tasks and locks but sends
nothing while down (no renewals: a lease may expire meanwhile, and its write
is then stale); answers that reach it while down are handled when it is
repaired; a task the repair does not start again (abandoned out of attempts,
or aborted or handed back by an arbiter's ``failed`` decision) releases its locks.
This agent never preempts.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from kossim.policy import Params
from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import QUEUED, RUNNING, Task
from policies.agent import Worker
from policies.backpressure import held, refuse

__all__ = ["Locking", "LockingParams"]


class _Hold:
    """What a task has asked for and holds: its locks' tokens, its pending writes."""

    __slots__ = (
        "asked",
        "fenced",
        "first",
        "needs",
        "next",
        "off",
        "pending",
        "timer",
        "tokens",
    )

    def __init__(self, needs: list[tuple[str, str]], first: int) -> None:
        self.needs = needs
        self.next = 0  # index of the lock being asked for
        self.asked = 0  # the number of the last request sent: a grant of another is stale
        self.first = first  # the number of its first request: older news is another hold's
        self.tokens: dict[str, int] = {}
        self.timer: Timer | None = None
        self.pending = 0  # writes not yet answered
        self.fenced = False
        self.off = True  # holding a slot while off it (asking for locks, or writing)


class LockingParams(Params):
    answer_timeout: float | None = Field(
        default=None,
        gt=0,
        description="on a network that loses messages: a request not granted this long is "
        "sent again, and writes not answered this long fail the attempt. None: wait for ever",
    )


class Locking(Worker):
    """A worker that locks the resources a task type needs, renews its leases, writes with
    its fencing tokens and releases."""

    kind = "agent"
    id = "locking"
    description = "take a task type's locks before serving it; renew, write with tokens, release"
    sends: tuple[str, ...] = (*Worker.sends, "acquire", "renew", "write", "release")
    tells_coordinator: ClassVar[tuple[str, ...]] = ("returned",)
    takes_locks: ClassVar[bool] = True
    Params: ClassVar[type[Params]] = LockingParams

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        self.timeout: float | None = getattr(self.params, "answer_timeout", None)
        tasks = ctx.scenario.workload.tasks
        self.needs = {
            i: sorted((n.resource, n.mode) for n in t.locks) for i, t in enumerate(tasks) if t.locks
        }
        names = {r for needs in self.needs.values() for r, _ in needs}
        self.services = {r: ctx.actor_named(f"lock:{r}") for r in sorted(names)}
        self.stores = {r: ctx.actor_named(f"resource:{r}") for r in sorted(names)}
        self.holds: dict[Task, _Hold] = {}
        self.off_slot = 0  # tasks holding a slot while not on it: acquiring or writing
        self.requests = 0
        self.inbox: list[tuple[str, Actor, Any]] = []  # answers that reached it while down

    def held(self) -> list[Task]:
        return [*self.local, *(t for t in self.holds if t not in self.ctx.running)]

    # -- accepting tasks ------------------------------------------------------------------
    def on_task(self, sender: Any, task: Task) -> None:
        ctx = self.ctx
        if not ctx.up:
            Worker.on_task(self, sender, task)  # bounced or queued, as by a worker
        elif len(ctx.running) + self.off_slot < ctx.capacity:
            self._serve(task)
        else:
            task.state = QUEUED
            self.local.push(task)

    def _on_task_bounded(self, sender: Any, task: Task) -> None:
        n = held(self) + self.off_slot
        if n >= self.ctx.queue_limit:
            refuse(self, task, f"holds {n} of limit {self.ctx.queue_limit}")
            self.send(self.coordinator, "done", task)
            return
        self.on_task(sender, task)

    def _serve(self, task: Task) -> None:
        needs = self.needs.get(task.tidx)
        if needs is None:
            self.ctx.start(task)
            return
        stale = self.holds.get(task)
        if stale is not None:  # an attempt handed back before its hold was let go
            self._release(task, stale)
        hold = self.holds[task] = _Hold(needs, self.requests + 1)
        self.off_slot += 1
        task.state = QUEUED
        self._ask(task, hold)

    def _fill(self) -> None:
        local = self.local
        ctx = self.ctx
        running, capacity = ctx.running, ctx.capacity
        self.filling = True
        while local and len(running) + self.off_slot < capacity:
            self._serve(local.pop())
        self.filling = False

    # -- locks ----------------------------------------------------------------------------
    def _ask(self, task: Task, hold: _Hold) -> None:
        resource, mode = hold.needs[hold.next]
        ctx = self.ctx
        if ctx.tracing:
            ctx.log("lock_request", f"task {task.id} asks for {mode} lock on {resource}", task)
        self.requests += 1
        hold.asked = self.requests
        ctx.send(self.services[resource], "acquire", (task, mode, hold.asked))
        if self.timeout is not None:
            ctx.after(self.timeout, "unanswered", (task, hold, hold.asked))

    def _down(self, kind: str, sender: Actor, payload: Any) -> bool:
        """Keep an answer that reached the agent while down, for its repair."""
        if self.ctx.up:
            return False
        self.inbox.append((kind, sender, payload))
        return True

    def on_granted(self, sender: Actor, grant: tuple[Task, int, int, float | None]) -> None:
        if self._down("granted", sender, grant):
            return
        task, req, token, renew_every = grant
        ctx = self.ctx
        hold = self.holds.get(task)
        if hold is None or hold.asked != req:  # the task left meanwhile, or asked again
            ctx.send(sender, "release", token)
            return
        resource = hold.needs[hold.next][0]
        hold.tokens[resource] = token
        hold.asked = 0  # answered
        if hold.timer is None and renew_every is not None:
            hold.timer = ctx.after(renew_every, "renew", (task, hold, renew_every))
        hold.next += 1
        if hold.next < len(hold.needs):
            self._ask(task, hold)
            return
        self.off_slot -= 1
        hold.off = False
        if ctx.tracing:
            ctx.log("locked", f"task {task.id} holds {hold.tokens}", task, tokens=hold.tokens)
        ctx.start(task)

    def on_withdrawn(self, sender: Actor, news: tuple[Task, int, str, str, str]) -> None:
        """A lock service withdrew the task's request (its arbiter decided on contention):
        free the slot and release what the task holds, then end it (``abort``) or send it
        back to the coordinator to be dispatched anew (``reassign``)."""
        if self._down("withdrawn", sender, news):
            return
        task, ask, resource, action, why = news
        ctx = self.ctx
        hold = self.holds.get(task)
        if (
            hold is None
            or not hold.asked
            or ask < hold.first
            or hold.needs[hold.next][0] != resource
        ):
            if ctx.tracing:
                ctx.log(
                    "lock_withdrawn",
                    f"task {task.id}: withdrawal of its request for {resource} ignored: "
                    "no longer waiting for that lock here",
                    task,
                )
            return
        self._release(task, hold)
        if action == "abort" or task.cancelled:
            if ctx.tracing:
                ctx.log(
                    "abandon",
                    f"task {task.id}: its request for {resource} withdrawn, the arbiter "
                    f"decided {action}{why}",
                    task,
                )
            ctx.abandon(task)  # a copy that lost its race has ended already: nothing to do
            self.send(self.coordinator, "done", task)
        else:
            if ctx.tracing:
                ctx.log(
                    "returned",
                    f"task {task.id}: its request for {resource} withdrawn, back to the "
                    f"coordinator to be dispatched anew: the arbiter decided {action}{why}",
                    task,
                )
            self.send(self.coordinator, "returned", task)
        if self.local:
            self._fill()

    def on_renew(self, sender: None, due: tuple[Task, _Hold, float]) -> None:
        task, hold, every = due
        if self.holds.get(task) is not hold:
            return  # released: the renewals stop
        ctx = self.ctx
        if ctx.up:
            for resource, token in hold.tokens.items():
                ctx.send(self.services[resource], "renew", token)
        hold.timer = ctx.after(every, "renew", due)

    def _release(self, task: Task, hold: _Hold) -> None:
        del self.holds[task]
        if hold.off:
            self.off_slot -= 1
            hold.off = False
        if hold.timer is not None:
            hold.timer.cancel()
        for resource, token in hold.tokens.items():
            self.ctx.send(self.services[resource], "release", token)

    # -- the end of a locked task's service: its writes -----------------------------------
    def on_serviced(self, task: Task) -> None:
        """The engine: ``task``'s service ended; it ends when its writes are accepted."""
        hold = self.holds.get(task)
        if hold is None:  # its locks went with a crash (requeue) while it was reclaimed
            self.ctx.complete(task)
            self.send(self.coordinator, "done", task)
            return
        self.off_slot += 1
        hold.off = True
        writes = [r for r, mode in hold.needs if mode == "exclusive"]
        if not writes:
            self._finish(task, hold)
            return
        hold.pending = len(writes)
        task.state = QUEUED  # off its slot until the writes are answered: a copy cancelled
        # meanwhile (its sibling finished) is not taken off a slot, it ends at the answers
        for resource in writes:
            self.ctx.send(self.stores[resource], "write", (task, hold.tokens[resource]))
        if self.timeout is not None:
            self.ctx.after(self.timeout, "unanswered", (task, hold, 0))

    def on_unanswered(self, sender: None, due: tuple[Task, _Hold, int]) -> None:
        """``answer_timeout`` after a request (``asked``) or the writes (0): if still
        unanswered, ask again, or fail the attempt (a write may have been accepted)."""
        task, hold, asked = due
        ctx = self.ctx
        if self.holds.get(task) is not hold or not ctx.up:
            return
        if asked and hold.asked == asked:
            if ctx.tracing:
                ctx.log("lock_retry", f"task {task.id}: no grant after {self.timeout:g}", task)
            self._ask(task, hold)
        elif not asked and hold.pending:
            if ctx.tracing:
                ctx.log("write_timeout", f"task {task.id}: no answer after {self.timeout:g}", task)
            hold.pending = 0
            self._fail(task, hold, "unanswered")

    def on_written(self, sender: Actor, write: tuple[Task, int]) -> None:
        if not self._down("written", sender, write):
            self._answered(write[0], write[1], False)

    def on_fenced(self, sender: Actor, write: tuple[Task, int]) -> None:
        if not self._down("fenced", sender, write):
            self._answered(write[0], write[1], True)

    def _answered(self, task: Task, token: int, fenced: bool) -> None:
        hold = self.holds.get(task)
        if hold is None or token not in hold.tokens.values() or hold.pending == 0:
            return  # the task left this agent meanwhile
        hold.fenced |= fenced
        hold.pending -= 1
        if hold.pending == 0:
            if hold.fenced:
                self._fail(task, hold, "fenced")
            else:
                self._finish(task, hold)

    def _finish(self, task: Task, hold: _Hold) -> None:
        self._release(task, hold)
        ctx = self.ctx
        if not task.cancelled:  # a copy that lost its race ends unrecorded
            task.state = RUNNING  # it completed (how the engine tells a completion)
            ctx.complete(task)
        if self.local:
            self._fill()
        self.send(self.coordinator, "done", task)

    def _fail(self, task: Task, hold: _Hold, why: str) -> None:
        """A write was fenced (or went unanswered): the attempt failed; start over
        elsewhere, or give up."""
        self._release(task, hold)
        ctx = self.ctx
        ctx.restart(task)
        if task.attempts >= ctx.max_attempts or task.cancelled:
            if ctx.tracing:
                ctx.log("abandon", f"task {task.id}: write {why}, out of attempts", task)
            ctx.abandon(task)
            self.send(self.coordinator, "done", task)
        else:
            if ctx.tracing:
                ctx.log(
                    "retry", f"task {task.id}: write {why}, attempt {task.attempts} failed", task
                )
            self.send(self.coordinator, "returned", task)
        if self.local:
            self._fill()

    # -- copies and failures --------------------------------------------------------------
    def on_discard(self, task: Task) -> None:
        hold = self.holds.get(task)
        if hold is not None:
            self._release(task, hold)
        super().on_discard(task)

    def on_crash(self) -> None:
        ctx = self.ctx
        lost = [t for t in self.holds if t not in ctx.running and t.end < 0]
        super().on_crash()
        if not self.requeue:
            return
        for hold in self.holds.values():  # the process is gone: nothing is released
            if hold.timer is not None:
                hold.timer.cancel()
        self.holds.clear()
        self.off_slot = 0
        self.inbox.clear()
        for t in lost:
            ctx.restart(t)
        ctx.orphan(lost)

    def on_repair(self, suspended: list[Task]) -> None:
        holds = self.holds
        before = [(t, holds[t]) for t in suspended if t in holds]
        super().on_repair(suspended)
        running = self.ctx.running
        for task, hold in before:
            if task not in running and holds.get(task) is hold:
                # its attempt did not start again: abandoned (out of attempts, or an
                # arbiter's abort) or handed back (an arbiter's reassign): its locks go too
                self._release(task, hold)
        for task, hold in list(holds.items()):
            if task.end >= 0:  # abandoned on repair, out of attempts
                self._release(task, hold)
        inbox, self.inbox = self.inbox, []
        for kind, sender, payload in inbox:
            getattr(self, "on_" + kind)(sender, payload)
