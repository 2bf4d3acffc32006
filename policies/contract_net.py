"""Contract net: the coordinator auctions each task; agents bid from their true state.

For every task (on arrival and whenever it re-enters) the ``contract_net``
coordinator announces it to the eligible agents it believes up and skilled
(all of them, or ``k`` sampled uniformly); each agent answers with a bid, its
own estimate of when it would finish the task (``Worker.on_announce``). The
task is awarded, as an ordinary ``task`` message, to the best bid once every
bid is in or the bid window closes, whichever comes first. An auction without
a bid is announced again after a back-off; a task no eligible agent is
believed up for waits for a ``repaired`` report.

Against a router on the coordinator's stale view this trades information for
time: the bids reflect each agent's true queue, speed and proficiency, but
the announcement and the bid each cross the network before the award does.
Failure handling (``suspect``, ``repaired``, ``bounce``, ``returned``,
``done``, reclaim, ``max_attempts``) is the ``queueing`` coordinator's.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from kossim.dists import Sampler, Uniform
from kossim.policy import Params
from kossim.sim.agent import AgentState
from kossim.sim.kernel import Actor, Timer
from kossim.sim.task import WAITING, Task
from policies.coordinator import Queueing

__all__ = ["ContractNet", "ContractNetParams"]

_INF = float("inf")


class ContractNetParams(Params):
    window: float = Field(
        gt=0,
        description="bid window: the auction closes this long after the announcement "
        "with the bids in by then (sooner when every invited agent has bid)",
    )
    k: int | None = Field(
        default=None,
        ge=1,
        description="agents invited per auction, sampled uniformly among the eligible "
        "ones; None: every eligible agent",
    )
    backoff: float | None = Field(
        default=None,
        gt=0,
        description="wait before announcing again a task whose auction got no bid; "
        "default: the window",
    )
    count_awards: bool = Field(
        default=True,
        description="add to each bid the service time of the tasks awarded to the bidder "
        "since the announcement (its bid cannot count them), spread over its slots; "
        "false: award on the bids alone",
    )


class _Auction:
    """One open call for bids: what the coordinator has heard so far."""

    __slots__ = ("awarded", "bids", "invited", "serial", "task", "timer")

    def __init__(self, serial: int, task: Task, invited: int, awarded: dict[int, float]) -> None:
        self.serial = serial
        self.task = task
        self.invited = invited
        self.awarded = awarded  # each invited agent's awarded work when the call went out
        self.bids: list[tuple[float, int]] = []  # (estimate, agent index), in arrival order
        self.timer: Timer | None = None


class ContractNet(Queueing):
    """Announce each task to the eligible agents (or ``k`` of them); award it to the best bid.

    The best bid is the earliest estimated completion among agents still
    believed up (ties at random); the award is the normal dispatch, so the
    winner's worker serves it. Tasks go to the agents' own queues, as under
    push dispatch: the policy's ``dispatch`` and ``routing`` are not used.
    """

    kind = "coordinator"
    id = "contract_net"
    speculates = False  # dispatch of its own: no backup copies of stragglers
    description = "announce each task, award it to the earliest completion bid"
    Params = ContractNetParams
    #: The protocol's kinds: bids are sent by the agents it calls on, declared here so
    #: that every contract-net run has a ``kind=bid`` row (and no other run does).
    sends: tuple[str, ...] = ("announce", "bid", "task")

    def pulls(self, ctx: Any) -> bool:
        return False  # every task is auctioned as it comes

    def on_start(self, ctx: Any) -> None:
        super().on_start(ctx)
        params: ContractNetParams = self.params
        self.window = params.window
        self.k = params.k
        self.backoff = params.backoff if params.backoff is not None else params.window
        self.auctions: dict[int, _Auction] = {}  # open auctions by serial number
        self.backing_off: dict[int, Task] = {}  # by task id: waiting to be announced again
        self.serial = 0
        # Service time awarded to each agent so far: what was awarded to a bidder after
        # the announcement went out is work its bid could not count.
        self.awarded = [0.0] * len(self.views)
        self.count_awards = params.count_awards
        self._u = Sampler(Uniform(dist="uniform", low=0.0, high=1.0), self.rng)

    def held(self) -> list[Task]:
        """Tasks waiting here, under auction or backing off (for conservation checks)."""
        return [
            *self.queue,
            *(a.task for a in self.auctions.values()),
            *self.backing_off.values(),
        ]

    # -- announcing --------------------------------------------------------------------------
    def route(self, task: Task) -> None:
        """Announce ``task``, or hold it while no eligible agent is believed up."""
        invited = self._invite(task)
        task.state = WAITING
        ctx = self.ctx
        if not invited:
            self.queue.push(task)  # sent on when a ``repaired`` report arrives
            if ctx.tracing:
                ctx.log("hold", f"task {task.id}: no skilled agent believed up", task)
            return
        self.serial = serial = self.serial + 1
        awarded = self.awarded
        since = {v.index: awarded[v.index] for v in invited} if self.count_awards else {}
        auction = self.auctions[serial] = _Auction(serial, task, len(invited), since)
        if ctx.tracing:
            names = [v.name for v in invited]
            ctx.log(
                "announce",
                f"task {task.id} (auction {serial}) to {len(names)}: {', '.join(names)}",
                task,
                to=names,
            )
        call = (serial, task)
        agents = self.agents
        send = self.send
        for view in invited:
            send(agents[view.index], "announce", call)
        if serial in self.auctions:  # not all bids came back at once (instant network)
            auction.timer = ctx.after(self.window, "window", serial)

    def _invite(self, task: Task) -> list[AgentState]:
        """The agents to call on: skilled and believed up; ``k`` of them sampled uniformly.

        Sampling is by rejection over the skilled agents, O(k) while few are
        down: no scan of the fleet beyond the agents invited.
        """
        skilled = self._skilled_for(task.skills)
        k = self.k
        n = len(skilled)
        if k is None or k >= n:
            return [v for v in skilled if v.up] if self.n_down else skilled
        picked: list[AgentState] = []
        tried: set[int] = set()
        u = self._u
        while len(picked) < k and len(tried) < n:
            i = int(u() * n)
            if i not in tried:
                tried.add(i)
                if skilled[i].up:
                    picked.append(skilled[i])
        picked.sort(key=_index)
        return picked

    # -- bids and the award ------------------------------------------------------------------
    def on_bid(self, sender: Actor, bid: tuple[int, float]) -> None:
        """An agent's estimate of when it would finish the auctioned task."""
        serial, estimate = bid
        auction = self.auctions.get(serial)
        if auction is None:
            ctx = self.ctx
            if ctx.tracing:
                ctx.log("late_bid", f"{sender.name} bid {estimate:.4g} after auction {serial}")
            return
        auction.bids.append((estimate, sender.index))
        if len(auction.bids) == auction.invited:
            self._close(auction, complete=True)

    def on_window(self, sender: None, serial: int) -> None:
        """The bid window of auction ``serial`` closes."""
        auction = self.auctions.get(serial)
        if auction is not None:
            self._close(auction, complete=False)

    def _close(self, auction: _Auction, complete: bool) -> None:
        del self.auctions[auction.serial]
        if auction.timer is not None:
            auction.timer.cancel()
        task = auction.task
        views = self.views
        bids = auction.bids
        if self.count_awards:  # the work awarded since the call, spread over the slots
            awarded, since = self.awarded, auction.awarded
            bids = [(e + (awarded[i] - since[i]) / views[i].capacity, i) for e, i in bids]
        valid = [(e, i) for e, i in bids if e < _INF and views[i].up]
        ctx = self.ctx
        if not valid:
            self._no_bid(auction)
            return
        best = min(valid)[0]
        ties = [i for e, i in valid if e == best]
        winner = views[ties[0] if len(ties) == 1 else ties[int(self._u() * len(ties))]]
        if ctx.tracing:
            seen = ", ".join(
                f"{views[i].name} {e:.4g}" + (f" (bid {b:.4g} + awarded since)" if e != b else "")
                for (e, i), (b, _) in zip(bids, auction.bids, strict=True)
            )
            how = (
                f"all {auction.invited} bids in"
                if complete
                else f"window closed with {len(auction.bids)} of {auction.invited} bids"
            )
            ctx.log(
                "award",
                f"task {task.id} -> {winner.name}: bid {best:.4g}, best of [{seen}]; {how}",
                task,
                to=winner.name,
                bids=len(auction.bids),
                invited=auction.invited,
                complete=complete,
            )
        self._send(winner, task)
        self.awarded[winner.index] += task.svc

    def _no_bid(self, auction: _Auction) -> None:
        """No usable bid: announce again after the back-off (or hold the task, see ``route``)."""
        task = auction.task
        ctx = self.ctx
        if ctx.tracing:
            ctx.log(
                "rebid",
                f"task {task.id}: no usable bid ({len(auction.bids)} of {auction.invited} "
                f"invited bid); announce again in {self.backoff:.4g}",
                task,
            )
        self.backing_off[task.id] = task
        ctx.after(self.backoff, "retry", task)

    def on_returned(self, sender: Actor, task: Task) -> None:
        """A task preempted on its agent comes back (pull dispatch): announced afresh.

        Not at once: on an instant network this runs inside the agent's
        preemption, whose slot is free only until the displacing task starts.
        """
        self._forget(self.views[sender.index], task)
        task.state = WAITING
        self.backing_off[task.id] = task
        self.ctx.after(0.0, "retry", task)

    def on_retry(self, sender: None, task: Task) -> None:
        """Announce again: the back-off after an auction without a bid is over, or a
        returned task's turn has come."""
        del self.backing_off[task.id]
        self.route(task)


def _index(v: AgentState) -> int:
    return v.index
