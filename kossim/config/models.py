"""Pydantic models of the experiment file (the YAML language).

Every model forbids unknown fields. Policy components are validated against
the registry (id known, parameters valid for that component). The models are
used at the edge only: the engine receives plain data and builds its own
``__slots__`` objects.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from kossim.analysis.expectations import Expectation, check_expectations
from kossim.config.base import COORDINATOR, Name, Strict, unique
from kossim.config.failover import CoordinatorFailure, check_failover
from kossim.config.locks import Pause, Resource, check_locks, check_resources
from kossim.config.netfaults import RandomPartition, check_network_faults
from kossim.config.partners import check_gangs, check_partners, check_speculation
from kossim.config.problems import did_you_mean
from kossim.config.roles import Learning, RoleSpec, check_roles, role_skills
from kossim.config.slowdown import Slowdown
from kossim.config.timeline import Timeline, check_timeline, check_timeline_policies
from kossim.config.workload import Arrivals, Bundle, TaskType, Workload
from kossim.dists import Constant, Distribution
from kossim.errors import FieldError

__all__ = [
    "AgentGroup",
    "Arrivals",
    "Bundle",
    "ComponentRef",
    "Experiment",
    "FailureSpec",
    "Failures",
    "Link",
    "Network",
    "NodeSpec",
    "PolicySpec",
    "Scenario",
    "TaskType",
    "Workload",
]


class AgentGroup(Strict):
    """``count`` identical agents named ``<group>-<i>``."""

    group: Name
    count: int = Field(default=1, ge=1, le=100_000)
    speed: float = Field(default=1.0, gt=0)
    capacity: int = Field(default=1, ge=1, description="concurrent task slots")
    skills: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="skill -> proficiency multiplier"
    )
    trust: float = Field(
        default=1.0, ge=0, le=1, description="prior mean of the agent's learned reputation"
    )
    bad_results: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="hidden true reliability: probability that a completed result is bad",
    )
    node: Name | None = Field(
        default=None, description="host node; default: each agent on a node of its own"
    )
    queue_limit: int | None = Field(
        default=None,
        ge=1,
        description="finite buffer: the most tasks an agent holds, running plus queued "
        "(K of M/M/c/K); a task reaching a full agent is refused. None: unbounded",
    )
    roles: list[Name] = Field(default_factory=list, description="roles its agents hold")
    learning: Learning | None = Field(
        default=None, description="proficiency rises with the tasks of a type completed"
    )
    pause: Pause | None = Field(
        default=None, description="process pauses: the agent stalls now and then, deaf and mute"
    )
    slowdown: Slowdown | None = Field(
        default=None, description="slow agents: a share of the group serves factor x slower"
    )

    @model_validator(mode="after")
    def _limit_holds_slots(self) -> AgentGroup:
        if self.queue_limit is not None and self.queue_limit < self.capacity:
            raise FieldError(
                f"must be at least capacity ({self.capacity}): the limit counts running tasks",
                "queue_limit",
                got=self.queue_limit,
            )
        return self


class NodeSpec(Strict):
    name: Name


class Link(Strict):
    a: Name
    b: Name
    latency: Distribution
    loss: float | None = Field(
        default=None, ge=0, le=1, description="probability a message is lost on this link"
    )


class Network(Strict):
    """Star from the coordinator to every node with ``latency``, plus explicit ``links``.

    A message takes the path of least mean latency; its delay is the sum of
    one draw per link on that path.
    """

    latency: Distribution = Field(default_factory=lambda: Constant(dist="constant", value=0.0))
    links: list[Link] = Field(default_factory=list)
    bandwidth: float | None = Field(
        default=None, gt=0, description="data per unit time on a path (none: transfers free)"
    )
    loss: float = Field(
        default=0.0, ge=0, le=1, description="probability a message is lost on each link"
    )
    jitter: Distribution | None = Field(
        default=None, description="drawn per network message and added to its delay"
    )
    partitions: list[RandomPartition] = Field(
        default_factory=list, description="up/down clocks that cut sets of nodes apart"
    )


class FailureSpec(Strict):
    """An up/down clock per agent (or node); it runs whether the agent is busy or idle."""

    up: Distribution
    down: Distribution
    on_failure: Literal["resume", "restart", "requeue"] = "resume"
    detect: Distribution = Field(
        default_factory=lambda: Constant(dist="constant", value=0.0),
        description="time until the coordinator learns of a failure",
    )
    max_attempts: int = Field(
        default=10,
        ge=1,
        description="restart and requeue: a task is abandoned after this many failed attempts",
    )
    only: list[str] | None = Field(
        default=None, description="agent groups (or nodes) that fail; default all"
    )

    @model_validator(mode="after")
    def _clock_advances(self) -> FailureSpec:
        if self.up.mean_value() == 0 and self.down.mean_value() == 0:
            raise FieldError(
                "up and down times are both always 0, so the failure clock would never let "
                "simulated time advance; give one of them a positive mean",
                "down",
            )
        return self


class Failures(Strict):
    agents: FailureSpec | None = None
    nodes: FailureSpec | None = None
    coordinator: CoordinatorFailure | None = Field(
        default=None, description="the acting coordinator's own up/down clock (failover)"
    )


class Scenario(Strict):
    agents: list[AgentGroup] = Field(min_length=1)
    roles: dict[Name, RoleSpec] = Field(default_factory=dict, description="role -> skills, duties")
    nodes: list[NodeSpec] = Field(default_factory=list)
    network: Network = Field(default_factory=Network)
    workload: Workload
    failures: Failures = Field(default_factory=Failures)
    timeline: Timeline | None = Field(
        default=None, description="scheduled events: a list, or {csv: path}"
    )
    resources: list[Resource] = Field(
        default_factory=list, description="shared resources that task types lock"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        unique([g.group for g in self.agents], "agent group", "group", "agents")
        node_names = [n.name for n in self.nodes]
        unique(node_names, "node", "name", "nodes")
        for index, n in enumerate(self.nodes):
            if n.name == COORDINATOR:
                raise FieldError(
                    f"node name {COORDINATOR!r} is reserved for the coordinator's node; "
                    "choose another name",
                    "nodes",
                    index,
                    "name",
                )
        for index, g in enumerate(self.agents):
            if g.node is not None and g.node not in node_names:
                raise FieldError(
                    f"agent group {g.group!r} is on unknown node {g.node!r} "
                    f"(nodes: {', '.join(node_names) or 'none declared'})",
                    "agents",
                    index,
                    "node",
                )
        offered = [set(g.skills) | role_skills(self.roles, g.roles) for g in self.agents]
        for index, t in enumerate(self.workload.tasks):
            need = set(t.skills)
            if need and not any(need <= have for have in offered):
                raise FieldError(
                    f"task type {t.type!r} needs skills {sorted(need)} that no agent group "
                    f"has together (groups offer {[sorted(h) for h in offered]})",
                    "workload",
                    "tasks",
                    index,
                    "skills",
                )
        check_roles(self)
        check_resources(self, node_names)
        self._check_failure_targets(node_names)
        self._check_links(node_names)
        self._check_failure_semantics()
        check_timeline(self)
        check_network_faults(self)
        return self

    def _check_links(self, node_names: list[str]) -> None:
        """A link joins known nodes: declared ones, the coordinator's, or an agent's own."""
        if not self.network.links:
            return
        own = {f"{g.group}-{i}" for g in self.agents if g.node is None for i in range(g.count)}
        known = {COORDINATOR, *node_names, *own}
        for index, link in enumerate(self.network.links):
            for end in ("a", "b"):
                name = getattr(link, end)
                if name not in known:
                    shown = [COORDINATOR, *node_names]
                    raise FieldError(
                        f"link to unknown node {name!r}; nodes: {', '.join(shown)}, or an "
                        f"agent's own node (its name, when its group has no node)"
                        f"{did_you_mean(name, sorted(known))}",
                        "network",
                        "links",
                        index,
                        end,
                    )

    def _check_failure_semantics(self) -> None:
        """Agent and node failures each run their own clock, with one failure semantics."""
        agents, nodes = self.failures.agents, self.failures.nodes
        if agents is None or nodes is None:
            return
        for field in ("on_failure", "detect", "max_attempts"):
            a, n = getattr(agents, field), getattr(nodes, field)
            if a != n:
                raise FieldError(
                    f"failures.agents and failures.nodes each run their own clock but share "
                    f"one failure semantics: {field} must be the same in both "
                    f"(agents: {_shown(a)}, nodes: {_shown(n)})",
                    "failures",
                    "nodes",
                    field,
                )

    def _check_failure_targets(self, node_names: list[str]) -> None:
        groups = [g.group for g in self.agents]
        for spec, allowed, what, kind in (
            (self.failures.agents, groups, "agent group", "agents"),
            (self.failures.nodes, node_names, "node", "nodes"),
        ):
            for index, name in enumerate((spec.only or []) if spec else []):
                if name not in allowed:
                    raise FieldError(
                        f"unknown {what} {name!r}; allowed: {', '.join(allowed) or 'none'}"
                        f"{did_you_mean(name, allowed)}",
                        "failures",
                        kind,
                        "only",
                        index,
                    )


ComponentRef = str | dict[str, Any]


COMPONENT_FIELDS = (
    "dispatch",
    "routing",
    "queue",
    "coordinator",
    "agent",
    "detector",
    "locks",
    "standby",
    "retry",
    "speculation",
    "arbiter",
)
"""The fields of a policy that name a component (one kind each)."""


class PolicySpec(Strict):
    """A contender: one component per kind, each an id or ``{id: ..., param: value}``.

    ``dispatch``, ``routing`` and ``queue`` are the components the built-in
    ``queueing`` coordinator and ``worker`` agents use; ``coordinator``,
    ``agent`` and ``detector`` name the behaviours of the actors themselves.
    ``retry`` (none by default) decides when a failed attempt is tried again
    (:mod:`policies.retry`).
    """

    name: Name
    dispatch: ComponentRef = "central"
    routing: ComponentRef = "random"
    queue: ComponentRef = "fcfs"
    coordinator: ComponentRef = "queueing"
    agent: ComponentRef = "worker"
    detector: ComponentRef = "oracle"
    locks: ComponentRef = "none"
    standby: ComponentRef = Field(
        default="none", description="standby coordinators: none, hot or cold (failover)"
    )
    retry: ComponentRef | None = None
    speculation: ComponentRef | None = Field(
        default=None, description="straggler detection and backup copies (none: no speculation)"
    )
    arbiter: ComponentRef | None = Field(
        default=None,
        description="decides on high-stakes events (a task failed again, a deadline at "
        "risk, no bids, ...): an id, {id: ..., param: value} or module:function; "
        "None: no arbitration",
    )

    @field_validator(*COMPONENT_FIELDS)
    @classmethod
    def _component_exists(
        cls, ref: ComponentRef | None, info: ValidationInfo
    ) -> ComponentRef | None:
        from kossim.registry import resolve

        assert info.field_name is not None
        if ref is not None:
            resolve(info.field_name, ref)
        return ref

    @model_validator(mode="after")
    def _retry_consulted(self) -> PolicySpec:
        """A ``retry`` component needs a coordinator that consults one (its ``consults``)."""
        if self.retry is None:
            return self
        from kossim.registry import resolve

        coordinator = resolve("coordinator", self.coordinator).cls
        if "retry" not in getattr(coordinator, "consults", ()):
            raise FieldError(
                f"coordinator {coordinator.id!r} never consults a retry component; drop retry "
                "or choose a coordinator of the queueing family (queueing, contract_net, "
                "bundles, trust_gated)",
                "retry",
            )
        return self


SEED_MAX = 2**63 - 1
"""Seeds are stored in a 64-bit integer column."""
Seeds = Annotated[int, Field(ge=1, le=100_000)] | list[Annotated[int, Field(ge=0, le=SEED_MAX)]]


class Experiment(Strict):
    """One experiment file."""

    name: Name
    description: str = ""
    seeds: Seeds = 10
    horizon: float | None = Field(default=None, gt=0, description="arrivals stop here")
    tasks: int | None = Field(
        default=None, ge=1, description="measured arrivals; the run then drains"
    )
    drain_limit: float = Field(
        default=10.0,
        gt=1,
        description="with 'tasks': the run stops at this multiple of the expected arrival "
        "span even if tasks remain (they count as in_flight), so a system that cannot "
        "drain (overload, restarts longer than up-times) still ends",
    )
    warmup: Annotated[float, Field(ge=0)] | Literal["auto"] = Field(
        default=0.0,
        description="arrivals before this time are unmeasured; 'auto': MSER-5 truncation per run",
    )
    warmup_tasks: int = Field(default=0, ge=0, description="first N arrivals are unmeasured")
    scenario: Scenario
    policies: list[PolicySpec] = Field(min_length=1)
    sweep: dict[str, Any] = Field(default_factory=dict)
    expect: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _run_length(self) -> Experiment:
        if (self.horizon is None) == (self.tasks is None):
            raise FieldError(
                "give exactly one of 'horizon' (time) or 'tasks' (count)",
                "tasks" if self.tasks is not None else "horizon",
            )
        if self.horizon is not None and self.fixed_warmup >= self.horizon:
            raise FieldError(f"must be below horizon ({self.horizon:g})", "warmup", got=self.warmup)
        if self.warmup != 0 and self.warmup_tasks:
            raise FieldError(
                "give at most one of 'warmup' (time) or 'warmup_tasks' (count)", "warmup_tasks"
            )
        if isinstance(self.seeds, list):
            if not self.seeds:
                raise FieldError("the list is empty", "seeds")
            for index, seed in enumerate(self.seeds):
                if seed in self.seeds[:index]:
                    raise FieldError("duplicate seed", "seeds", index, got=seed)
        unique([p.name for p in self.policies], "policy name", "name", "policies")
        check_expectations(self.expect, [p.name for p in self.policies])
        check_gangs(self)
        check_partners(self)
        check_locks(self)
        check_failover(self)
        check_speculation(self)
        return self

    @model_validator(mode="after")
    def _timeline_policies(self, info: ValidationInfo) -> Experiment:
        """A timeline's ``set`` events name policies and parameters that exist: checked on
        the whole file, not on one run's config (it holds one policy of the file's)."""
        if not (info.context or {}).get("run"):
            check_timeline_policies(self)
        return self

    @property
    def auto_warmup(self) -> bool:
        return self.warmup == "auto"

    @property
    def fixed_warmup(self) -> float:
        """The warm-up time fixed before the run (0 for ``auto``, decided after it)."""
        return 0.0 if isinstance(self.warmup, str) else float(self.warmup)

    def seed_list(self) -> list[int]:
        """Seeds as an explicit list (an int ``n`` means ``0 .. n-1``)."""
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def policy(self, name: str) -> PolicySpec:
        for p in self.policies:
            if p.name == name:
                return p
        raise KeyError(name)


def _shown(value: Any) -> str:
    if isinstance(value, BaseModel):
        return str(value.model_dump(exclude_none=True))
    return repr(value)
