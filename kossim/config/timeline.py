"""The trigger timeline (``scenario.timeline``): scheduled events, part of the scenario.

A timeline is a list of events ``{at: t, kind: K, ...}``, or ``{csv: path}``: a
CSV file (relative to the experiment file) with a header row naming event fields
(``at``, ``kind`` and the kind's own), one event a row, each cell a YAML value
(``[[worker-0, worker-1]]`` for a list). Events are physics of the scenario: the
same for every policy and seed, so comparisons stay paired.

Kinds (``EVENT_MODELS``; the engine's side is :mod:`kossim.sim.timeline`):
``surge`` (the arrival rate times ``factor``), ``inject`` (``n`` tasks of a
``type``), ``kill`` / ``repair`` (agents by name or group, nodes),
``kill_coordinator`` (the leading coordinator), ``slow`` (agents serve ``factor``
times slower), ``partition``
/ ``heal`` (sets of nodes cut apart), ``link`` (a link's latency or loss) and
``set`` (a policy component's parameter). A period ends at ``until`` (or by its
paired end event: ``repair``, ``heal``).

To add a kind: a model here (a ``_Event`` subclass with ``kind: Literal[...]``,
added to ``EVENT_MODELS``), and its apply function registered with
:func:`kossim.sim.timeline.event_kind`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from kossim.config.base import COORDINATOR, Name, Strict
from kossim.config.places import _directory, agent_names, names_to_nodes, partition_sides
from kossim.config.problems import did_you_mean
from kossim.dists import Distribution
from kossim.errors import FieldError

__all__ = [
    "EVENT_MODELS",
    "Event",
    "Heal",
    "Inject",
    "Kill",
    "KillCoordinator",
    "LinkChange",
    "Partition",
    "Repair",
    "SetParam",
    "Slow",
    "Surge",
    "TimelineCsv",
    "check_timeline",
    "check_timeline_policies",
    "timeline_events",
    "with_value",
]


class _Event(Strict):
    at: float = Field(ge=0, description="when the event happens (simulated time)")
    note: str = Field(default="", max_length=200, description="shown in the log and report")
    _row: int | None = PrivateAttr(default=None)  # its row in a CSV timeline

    @property
    def end(self) -> float | None:
        """When the event's period ends (``None``: an instant, or open until the end)."""
        return getattr(self, "until", None)

    @model_validator(mode="after")
    def _until_after_at(self) -> _Event:
        until = getattr(self, "until", None)
        if until is not None and until <= self.at:
            raise FieldError(f"must be after at ({self.at:g})", "until", got=until)
        return self


class Surge(_Event):
    """The arrival rate times ``factor`` from ``at`` to ``until`` (or the end)."""

    kind: Literal["surge"]
    factor: float = Field(gt=0, le=1e6)
    until: float | None = None


class Inject(_Event):
    """``n`` tasks of ``type`` arrive at ``at``."""

    kind: Literal["inject"]
    type: Name
    n: int = Field(default=1, ge=1, le=100_000)


class _Targets(_Event):
    agents: list[Name] = Field(default_factory=list, description="agent names or groups")
    nodes: list[Name] = Field(default_factory=list, description="every agent on these nodes")

    @model_validator(mode="after")
    def _some_target(self) -> _Targets:
        if not self.agents and not self.nodes:
            raise FieldError("name 'agents' (names or groups) or 'nodes'", "agents")
        return self


class Kill(_Targets):
    """The agents named go down at ``at`` (repaired at ``until``, or by a ``repair``)."""

    kind: Literal["kill"]
    until: float | None = None


class Repair(_Targets):
    """The agents named come back up (a kill of the timeline ends)."""

    kind: Literal["repair"]


class KillCoordinator(_Event):
    """The leading coordinator crashes at ``at``, losing its memory, as its failure clock
    would crash it (``failures.coordinator``); its host restarts it at ``until`` (or never).
    Standbys, if the policy keeps any, take over; else dispatch stops until the restart."""

    kind: Literal["kill_coordinator"]
    until: float | None = None


class Slow(_Targets):
    """The agents named serve ``factor`` times slower from ``at`` to ``until`` (or the end),
    a task in service pro-rated at the change (their ``slowdown``, scheduled)."""

    kind: Literal["slow"]
    factor: float = Field(gt=1, le=1e6, description="service time multiplier")
    until: float | None = None


class Partition(_Event):
    """``groups`` of nodes are cut apart: each group is a side, the nodes not listed
    (the coordinator's, unless listed) another; healed at ``until`` or by a ``heal``."""

    kind: Literal["partition"]
    groups: list[list[Name]] = Field(min_length=1)
    name: Name | None = None
    until: float | None = None


class Heal(_Event):
    """The partition ``name`` ends (every partition of the timeline, if no name)."""

    kind: Literal["heal"]
    name: Name | None = None


class LinkChange(_Event):
    """Link ``a``-``b`` gets another ``latency`` and/or ``loss`` until ``until``."""

    kind: Literal["link"]
    a: Name
    b: Name
    latency: Distribution | None = None
    loss: float | None = Field(default=None, ge=0, le=1)
    until: float | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> LinkChange:
        if self.latency is None and self.loss is None:
            raise FieldError("give 'latency' or 'loss' (or both)", "latency")
        return self


class SetParam(_Event):
    """Set parameter ``param`` of the policy's ``component`` (a kind: ``routing``,
    ``detector``, ...) to ``value``; ``policy``: only that policy (default: every
    policy whose component has the parameter)."""

    kind: Literal["set"]
    component: str
    param: str
    value: Any
    policy: Name | None = None


EVENT_MODELS: tuple[type[_Event], ...] = (
    Surge,
    Inject,
    Kill,
    Repair,
    KillCoordinator,
    Slow,
    Partition,
    Heal,
    LinkChange,
    SetParam,
)
"""Every timeline kind's model (the ``kind`` field tells them apart)."""

Event = Annotated[
    Surge
    | Inject
    | Kill
    | Repair
    | KillCoordinator
    | Slow
    | Partition
    | Heal
    | LinkChange
    | SetParam,
    Field(discriminator="kind"),
]
_EVENT: TypeAdapter[Any] = TypeAdapter(Event)


class TimelineCsv(Strict):
    """``{csv: path}``: the events of a CSV file, one a row (read at load)."""

    csv: str
    _events: list[Any] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _read(self) -> TimelineCsv:
        self._events = read_events(Path(self.csv))
        return self


def read_events(path: Path) -> list[Any]:
    """The events of a CSV timeline; a problem names the file and row."""
    import csv

    from kossim.config.loader import load_yaml_text

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError) as exc:
        raise FieldError(f"timeline file {path}: cannot read ({exc})", "csv") from None
    rows = [(i, r) for i, r in enumerate(lines, start=1) if any(c.strip() for c in r)]
    if not rows:
        raise FieldError(f"timeline file {path}: no header row", "csv")
    header = [c.strip() for c in rows[0][1]]
    events = []
    for line, cells in rows[1:]:
        if len(cells) != len(header):
            raise FieldError(
                f"timeline file {path}: row {line} has {len(cells)} fields, expected "
                f"{len(header)} ({', '.join(header)})",
                "csv",
            )
        data = {}
        for name, cell in zip(header, cells, strict=True):
            if cell.strip():
                data[name] = load_yaml_text(cell.strip(), f"{path}:{line}")[0]
        try:
            event = _EVENT.validate_python(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise FieldError(
                f"timeline file {path}: row {line}: {where}: {err['msg']}", "csv"
            ) from None
        event._row = line
        events.append(event)
    return events


def _timeline_kind(data: Any) -> str:
    return "csv-file" if isinstance(data, dict | TimelineCsv) else "event-list"


Timeline = Annotated[
    Annotated[list[Event], Tag("event-list")] | Annotated[TimelineCsv, Tag("csv-file")],
    Discriminator(_timeline_kind),
]
"""``scenario.timeline``: a list of events or ``{csv: path}``."""


def timeline_events(timeline: Any) -> list[Any]:
    """The events of a timeline, in time order (stable: ties keep their listed order)."""
    if timeline is None:
        return []
    events = timeline._events if isinstance(timeline, TimelineCsv) else timeline
    return sorted(events, key=lambda e: e.at)


def check_timeline(scenario: Any) -> None:
    """Every name an event uses exists (agents, groups, nodes, types, links, partitions)."""
    timeline = scenario.timeline
    if timeline is None:
        return
    csv = isinstance(timeline, TimelineCsv)
    events = timeline._events if csv else timeline
    types = [t.type for t in scenario.workload.tasks]
    names: set[str] = set()
    for index, event in enumerate(events):
        at: tuple[str | int, ...] = ("timeline", "csv") if csv else ("timeline", index)
        try:
            _check_event(scenario, event, at, types, names)
        except FieldError as exc:
            if not csv:
                raise
            raise FieldError(
                f"timeline file {timeline.csv}: row {event._row}: {exc.message}", *at
            ) from None


def _check_event(
    scenario: Any, event: Any, at: tuple[str | int, ...], types: list[str], names: set[str]
) -> None:
    if isinstance(event, Inject) and event.type not in types:
        raise FieldError(
            f"unknown task type {event.type!r}; types: {', '.join(types)}"
            f"{did_you_mean(event.type, types)}",
            *at,
            "type",
        )
    if isinstance(event, _Targets):
        agent_names(scenario, event.agents, (*at, "agents"))
        names_to_nodes(scenario, event.nodes, (*at, "nodes"))
    if isinstance(event, Partition):
        partition_sides(scenario, event.groups, (*at, "groups"))
        if event.name is not None:
            names.add(event.name)
    if isinstance(event, Heal) and event.name is not None and event.name not in names:
        raise FieldError(
            f"no partition named {event.name!r} before this heal; named: "
            f"{', '.join(sorted(names)) or 'none'}{did_you_mean(event.name, sorted(names))}",
            *at,
            "name",
        )
    if isinstance(event, LinkChange):
        for end in ("a", "b"):
            names_to_nodes(scenario, [getattr(event, end)], (*at, end))
        if not _is_link(scenario, event.a, event.b):
            raise FieldError(
                f"no link between {event.a!r} and {event.b!r}: a link is one of "
                "network.links, or the star link between the coordinator and a node",
                *at,
                "b",
            )


def _is_link(scenario: Any, a: str, b: str) -> bool:
    if {a, b} in ({link.a, link.b} for link in scenario.network.links):
        return True
    _, node_of = _directory(scenario)
    nodes = {n.name for n in scenario.nodes} | set(node_of.values())
    return COORDINATOR in (a, b) and ({a, b} - {COORDINATOR}) <= nodes and a != b


def with_value(ref: Any, param: str, value: Any, cls: Any) -> Any:
    """The parameters of component ``ref`` (of class ``cls``) with ``param`` set to ``value``."""
    raw = {} if isinstance(ref, str) else {k: v for k, v in ref.items() if k != "id"}
    return cls.Params(**{**raw, param: value})


def check_timeline_policies(experiment: Any) -> None:
    """A ``set`` event names a parameter some policy's component has, with a valid value."""
    from kossim.registry import resolve

    timeline = experiment.scenario.timeline
    if timeline is None or isinstance(timeline, TimelineCsv):
        events = timeline_events(timeline)
        at0: tuple[str | int, ...] = ("scenario", "timeline", "csv")
    else:
        events = list(timeline)
        at0 = ("scenario", "timeline")
    policies = [p.name for p in experiment.policies]
    for index, event in enumerate(events):
        if not isinstance(event, SetParam):
            continue
        at = at0 if len(at0) == 3 else (*at0, index)
        if event.policy is not None and event.policy not in policies:
            raise FieldError(
                f"unknown policy {event.policy!r}; policies: {', '.join(policies)}"
                f"{did_you_mean(event.policy, policies)}",
                *at,
                "policy",
            )
        takers = 0
        for p in experiment.policies:
            if event.policy is not None and p.name != event.policy:
                continue
            ref = getattr(p, event.component, None)
            if ref is None:
                raise FieldError(
                    f"unknown component kind {event.component!r}; kinds: "
                    f"{', '.join(type(p).model_fields)}",
                    *at,
                    "component",
                )
            spec = resolve(event.component, ref)
            if event.param not in spec.cls.Params.model_fields:
                continue
            try:
                with_value(ref, event.param, event.value, spec.cls)
            except ValidationError as exc:
                raise FieldError(
                    f"policy {p.name!r}: {event.component} {spec.cls.id!r}: "
                    f"{exc.errors()[0]['msg']}",
                    *at,
                    "value",
                    got=event.value,
                ) from None
            takers += 1
        if not takers:
            raise FieldError(
                f"no policy's {event.component} component has a parameter {event.param!r}",
                *at,
                "param",
            )
