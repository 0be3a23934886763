"""A seeded discrete-event simulator of a contact centre, driving the real engine.

The simulator is a client of the engine, like a deployment: it plays the customers,
the agents' desktops and the bots, sends inputs to :class:`~omniroute.engine.Engine`,
appends each input with the decisions it caused to an ``EventLog``, and reacts to
those decisions. Nothing is decided here that the engine decides in production.

What it plays, from a :class:`Scenario` (TOML; ``engine/simulation/scenarios/`` ships examples):

- arrivals per traffic stream (channel, queue, skills): a Poisson process whose rate
  follows an intraday curve (piecewise constant per hour of the day), plus an optional
  backlog waiting at the start;
- handling times per media class (exponential, lognormal, uniform or fixed), customer
  patience (abandons from the queue and from offers; some voice callers ask for a
  callback instead), customers who switch channel mid-conversation, cold and warm
  transfers, bot containment and hand-offs, customers writing in asynchronous
  conversations, outbound follow-up tasks;
- agents in groups with skills (fixed or drawn from a pool), shifts, breaks, offer
  declines and offers left to time out, wrap-up.

Reproducibility: everything about an arrival (time, customer, handling time, patience,
what it will do) is drawn from a random stream of its own traffic stream, before and
independently of routing, so two policies see exactly the same arrivals
(``--compare``). The agents' reactions come from another stream. The same scenario,
seed and policy give the same log, byte for byte; there is no wall clock here.

Time moves by events: a ``Tick`` is sent at each engine timer's deadline
(:meth:`Engine.next_deadline`), before anything else that happens at that time, so
timers fire exactly on time (a service ticking every second fires them up to a second
late) and the desk always reads current state before it acts.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import itertools
import logging
import math
import random
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import msgspec

from ..engine import Engine
from ..events import (
    AgentNotResponding,
    AgentRegistered,
    AgentStatusChanged,
    CallbackRequested,
    Channel,
    Contact,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    Decision,
    Event,
    EventRejected,
    HandoffRequested,
    Input,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    Tick,
    TransferRequested,
    WrapUpCompleted,
)
from ..policy import CHANNEL_CLASS, MediaClass, Policy, PolicyError, load_policy, parse_policy
from ..state import ConversationState

if TYPE_CHECKING:
    from ..log import EventLog

__all__ = [
    "AgentGroup",
    "BotPlay",
    "Dist",
    "FollowUp",
    "Scenario",
    "ScenarioError",
    "SimulationRun",
    "SkillPool",
    "Switch",
    "Traffic",
    "builtin_scenarios",
    "load_scenario",
    "parse_scenario",
    "scenario_policy",
    "simulate",
]

_log = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class ScenarioError(ValueError):
    """A scenario file or value is wrong; the message names the key."""


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Scenario structs reject unknown keys, so a typo is an error, not a silent default."""


# --- the scenario schema ---------------------------------------------------------------


class Dist(_Spec, frozen=True):
    """A duration distribution in seconds: ``exponential``/``lognormal`` by ``mean_s``
    (and ``sd_s``), ``uniform`` on ``[min_s, max_s]``, or ``fixed`` at ``mean_s``."""

    dist: Literal["exponential", "lognormal", "uniform", "fixed"] = "exponential"
    mean_s: float = 0.0
    sd_s: float = 0.0
    min_s: float = 0.0
    max_s: float = 0.0

    def draw_ms(self, rng: random.Random) -> int:
        """One draw, in whole milliseconds (at least 1)."""
        match self.dist:
            case "exponential":
                seconds = rng.expovariate(1.0 / self.mean_s)
            case "lognormal":
                sigma2 = math.log1p((self.sd_s / self.mean_s) ** 2)
                seconds = rng.lognormvariate(math.log(self.mean_s) - sigma2 / 2, sigma2**0.5)
            case "uniform":
                seconds = rng.uniform(self.min_s, self.max_s)
            case "fixed":
                seconds = self.mean_s
        return max(1, round(seconds * 1000))

    def check(self, key: str) -> None:
        if self.dist in ("exponential", "lognormal", "fixed") and self.mean_s <= 0:
            raise ScenarioError(f"{key}.mean_s: must be positive for {self.dist!r}")
        if self.dist == "lognormal" and self.sd_s <= 0:
            raise ScenarioError(f"{key}.sd_s: must be positive for 'lognormal'")
        if self.dist == "uniform" and not 0 <= self.min_s <= self.max_s:
            raise ScenarioError(f"{key}: uniform needs 0 <= min_s <= max_s")


class SkillPool(_Spec, frozen=True):
    """Skills drawn from ``pool`` numbered skills (``prefix`` + number): between ``min``
    and ``max`` distinct ones, at levels in ``levels``; popularity falls off as
    ``rank ** -zipf`` (0: all equally likely). Agents and traffic with the same pool and
    ``zipf`` have supply that follows demand."""

    pool: int
    prefix: str = "skill"
    min: int = 1
    max: int = 1
    levels: tuple[int, int] = (1, 5)
    zipf: float = 0.0

    def draw(self, rng: random.Random) -> dict[str, int]:
        names, cumulative = _popularity(self.pool, self.prefix, self.zipf)
        count = rng.randint(self.min, self.max)
        chosen: dict[str, int] = {}
        while len(chosen) < count:
            name = rng.choices(names, cum_weights=cumulative)[0]
            chosen.setdefault(name, rng.randint(*self.levels))
        return chosen

    def check(self, key: str) -> None:
        if not 1 <= self.min <= self.max <= self.pool:
            raise ScenarioError(f"{key}: needs 1 <= min <= max <= pool")
        if not 1 <= self.levels[0] <= self.levels[1] <= 5:
            raise ScenarioError(f"{key}.levels: needs 1 <= low <= high <= 5")


@functools.cache
def _popularity(pool: int, prefix: str, zipf: float) -> tuple[list[str], list[float]]:
    """A skill pool's names and cumulative Zipf weights (drawn from for every contact)."""
    names = [f"{prefix}{i:03d}" for i in range(pool)]
    weights = itertools.accumulate(1.0 / (i + 1) ** zipf for i in range(pool))
    return names, list(weights)


class AgentGroup(_Spec, frozen=True):
    """``count`` agents (``group-0001``...) sharing skills, shift and behaviour.

    ``skills`` maps a skill to a level or a ``[low, high]`` range drawn per agent;
    ``shift`` is ``[start_h, end_h]`` in hours from the scenario start (default: the
    whole run), the i-th agent's shifted by ``stagger_h * i / count`` so a group's
    log-ins follow the day; ``breaks`` periods of ``break_minutes`` are spread over the
    shift. At the end of a shift an agent goes away, finishes what they hold, then logs
    off.
    ``decline`` / ``ignore`` are the chances that an offer is declined / left to time
    out; an accepted offer is answered after ``answer_s`` seconds; ``wrap_up_s``
    (None: leave the policy's wrap-up timer to end it) is how long wrap-up takes.
    """

    group: str
    count: int = 1
    kind: Literal["human", "bot"] = "human"
    skills: dict[str, int | tuple[int, int]] = {}
    random_skills: SkillPool | None = None
    languages: list[str] = []
    profile: str | None = None
    shift: tuple[float, float] | None = None
    stagger_h: float = 0.0
    breaks: int = 0
    break_minutes: float = 15.0
    decline: float = 0.0
    ignore: float = 0.0
    answer_s: tuple[float, float] = (1.0, 5.0)
    wrap_up_s: tuple[float, float] | None = (5.0, 30.0)


class Switch(_Spec, frozen=True):
    """A known customer who, ``after`` their first contact and while the conversation
    is still open, contacts again on channel ``to`` (the engine keeps it one
    conversation). The new contact comes in on ``queue`` with ``priority`` (as a contact
    on that channel would; by default the stream's)."""

    p: float
    to: Channel
    after: Dist = Dist(dist="uniform", min_s=30.0, max_s=180.0)
    queue: str | None = None
    priority: int | None = None


class FollowUp(_Spec, frozen=True):
    """An outbound task created ``after`` a conversation a human ended."""

    p: float
    queue: str
    after: Dist = Dist(dist="uniform", min_s=600.0, max_s=3600.0)


class BotPlay(_Spec, frozen=True):
    """What a bot does with a conversation it is given: resolves ``containment`` of them
    after ``handle``; hands the rest to humans (of ``handoff_queue`` if set). A bot given
    a contact of a stream without a play hands it to humans after 5 seconds."""

    containment: float
    handle: Dist = Dist(dist="uniform", min_s=20.0, max_s=120.0)
    handoff_queue: str | None = None


class Traffic(_Spec, frozen=True):
    """One arrival stream: ``per_hour`` contacts an hour at curve weight 1.0.

    ``handle`` and ``patience`` default to the scenario's per-media-class tables; a class
    missing from ``patience`` waits as long as it takes (the scenario's tables have
    defaults: write ``[patience]`` empty for customers who never give up). ``known`` is the share of
    contacts from identified customers (drawn from the scenario's ``customers``).
    ``callback``: the share of impatient voice callers who ask for a callback (half of
    them for 10 minutes later) instead of hanging up. ``transfer_cold`` /
    ``transfer_warm``: the share transferred (to ``transfer_to``, default the same
    queue). ``messages_every_s``: the mean gap between customer messages in an assigned
    asynchronous conversation (default 150 s on messaging channels).
    ``backlog``: contacts already waiting at the start (spread over its first minute).
    """

    name: str
    channel: Channel
    queue: str = "default"
    per_hour: float = 0.0
    backlog: int = 0
    skills: dict[str, int] = {}
    random_skills: SkillPool | None = None
    optional_skills: dict[str, int] = {}
    priority: int = 0
    languages: dict[str, float] = {}
    handle: Dist | None = None
    patience: Dist | None = None
    known: float = 0.7
    callback: float = 0.0
    by_customer: float = 0.15
    transfer_cold: float = 0.0
    transfer_warm: float = 0.0
    transfer_to: str | None = None
    switch: Switch | None = None
    follow_up: FollowUp | None = None
    bot: BotPlay | None = None
    messages_every_s: float | None = None


def _default_handling() -> dict[MediaClass, Dist]:
    def ln(mean: float, sd: float) -> Dist:
        return Dist(dist="lognormal", mean_s=mean, sd_s=sd)

    return {
        "voice": ln(300, 200), "video": ln(420, 240), "chat": ln(480, 300),
        "messaging": ln(1200, 900), "email": ln(240, 150), "social": ln(180, 120),
        "task": ln(300, 180),
    }  # fmt: skip


def _default_patience() -> dict[MediaClass, Dist]:
    return {
        "voice": Dist(mean_s=180), "video": Dist(mean_s=240), "chat": Dist(mean_s=300),
        "messaging": Dist(mean_s=1800),
    }  # fmt: skip


class Scenario(_Spec, frozen=True):
    """A simulated contact centre: who works, what arrives, under which policy.

    ``start`` is an ISO time (UTC); arrivals come for ``hours``; the run then goes on
    until every conversation is closed, at most ``drain_minutes`` more. ``curve`` gives
    the relative arrival rate for each hour of the day (24 values; empty: flat).
    ``customers`` is the population known customers are drawn from (repeat contacts
    of a customer with an open conversation join it). ``policy`` is an inline policy
    table, or a path relative to the scenario file.
    """

    name: str
    description: str = ""
    tenant: str = "sim"
    start: str = "2026-01-05T08:00:00Z"
    hours: float = 1.0
    drain_minutes: float = 60.0
    seed: int = 1
    interval_minutes: int = 15
    sl_goal: float = 0.8
    curve: list[float] = []
    customers: int = 10_000
    handling: dict[MediaClass, Dist] = msgspec.field(default_factory=_default_handling)
    patience: dict[MediaClass, Dist] = msgspec.field(default_factory=_default_patience)
    policy: dict[str, Any] | str | None = None
    agents: list[AgentGroup] = []
    traffic: list[Traffic] = []

    def __post_init__(self) -> None:
        self.start_ms  # noqa: B018 - parses ``start`` or raises ScenarioError
        if self.hours <= 0 or self.drain_minutes < 0:
            raise ScenarioError("hours must be positive, drain_minutes >= 0")
        if self.curve and (len(self.curve) != 24 or min(self.curve) < 0):
            raise ScenarioError("curve: needs 24 non-negative values (one per hour of day)")
        for name, d in (*self.handling.items(), *self.patience.items()):
            d.check(f"handling/patience.{name}")
        seen: set[str] = set()
        for i, g in enumerate(self.agents):
            key = f"agents[{i}] ({g.group})"
            if g.group in seen:
                raise ScenarioError(f"{key}.group: duplicate group name")
            seen.add(g.group)
            if g.count < 0 or not 0 <= g.decline + g.ignore <= 1:
                raise ScenarioError(f"{key}: count >= 0 and decline + ignore in [0, 1]")
            if g.shift is not None and not 0 <= g.shift[0] < g.shift[1]:
                raise ScenarioError(f"{key}.shift: needs 0 <= start_h < end_h")
            if g.random_skills is not None:
                g.random_skills.check(f"{key}.random_skills")
        streams: set[str] = set()
        for i, t in enumerate(self.traffic):
            key = f"traffic[{i}] ({t.name})"
            if t.name in streams:
                raise ScenarioError(f"{key}.name: duplicate stream name")
            streams.add(t.name)
            if t.per_hour < 0 or t.backlog < 0:
                raise ScenarioError(f"{key}: per_hour and backlog must be >= 0")
            shares = (t.known, t.callback, t.by_customer, t.transfer_cold + t.transfer_warm)
            if not all(0 <= p <= 1 for p in shares):
                raise ScenarioError(f"{key}: shares (known, callback, transfers...) in [0, 1]")
            for part, stream_dist in (("handle", t.handle), ("patience", t.patience)):
                if stream_dist is not None:
                    stream_dist.check(f"{key}.{part}")
            if t.random_skills is not None:
                t.random_skills.check(f"{key}.random_skills")

    @property
    def start_ms(self) -> int:
        try:
            when = dt.datetime.fromisoformat(self.start)
        except ValueError:
            raise ScenarioError(f"start: not an ISO time: {self.start!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        return round(when.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        """When arrivals stop."""
        return self.start_ms + round(self.hours * HOUR_MS)

    def rate_weight(self, ts: int) -> float:
        """The curve's relative arrival rate at event time ``ts``."""
        return self.curve[(ts // HOUR_MS) % 24] if self.curve else 1.0

    def expected_arrivals(self) -> float:
        """The mean number of contacts (backlog included) the scenario produces."""
        total = 0.0
        start, end = self.start_ms, self.end_ms
        t = start
        while t < end:
            piece = min(end, (t // HOUR_MS + 1) * HOUR_MS) - t
            total += self.rate_weight(t) * piece / HOUR_MS * sum(s.per_hour for s in self.traffic)
            t += piece
        return total + sum(s.backlog for s in self.traffic)


def _decode_error(exc: msgspec.ValidationError) -> ScenarioError:
    return ScenarioError(str(exc).replace("$.", "").replace("`", ""))


def parse_scenario(data: bytes | str | dict[str, Any]) -> Scenario:
    """A scenario from TOML text or a dict; raises ``ScenarioError`` naming the key."""
    if isinstance(data, (bytes, str)):
        try:
            raw = tomllib.loads(data.decode() if isinstance(data, bytes) else data)
        except tomllib.TOMLDecodeError as exc:
            raise ScenarioError(f"not valid TOML: {exc}") from None
    else:
        raw = data
    try:
        return msgspec.convert(raw, Scenario)
    except msgspec.ValidationError as exc:
        raise _decode_error(exc) from None


def builtin_scenarios() -> list[str]:
    """The names of the scenarios shipped with omniroute (``small``, ``telco``...)."""
    folder = resources.files(__package__).joinpath("scenarios")
    return sorted(
        p.name.removesuffix(".toml")
        for p in folder.iterdir()
        if p.name.endswith(".toml") and not p.name.endswith(".policy.toml")
    )


def _scenario_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml" or len(path.parts) > 1:
        return path
    builtin = resources.files(__package__).joinpath("scenarios", f"{name_or_path}.toml")
    if builtin.is_file():
        return Path(str(builtin))
    raise ScenarioError(
        f"no scenario {str(name_or_path)!r}: not a file, nor one of {builtin_scenarios()}"
    )


def load_scenario(name_or_path: str | Path) -> tuple[Scenario, Path]:
    """A built-in scenario by name, or a TOML file; returns it and its file's path."""
    path = _scenario_path(name_or_path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    return parse_scenario(text), path


def scenario_policy(scenario: Scenario, base: Path | None = None) -> Policy:
    """The scenario's policy: its inline table, or the file it names (relative to
    ``base``, the scenario file's folder); ``Policy()`` when it names none."""
    try:
        if isinstance(scenario.policy, dict):
            return parse_policy(scenario.policy)
        if isinstance(scenario.policy, str):
            path = Path(scenario.policy)
            return load_policy(base / path if base is not None else path)
    except PolicyError as exc:
        raise ScenarioError(f"policy: {exc}") from None
    return Policy()


def check_scenario_policy(scenario: Scenario, policy: Policy) -> None:
    """Raise ``ScenarioError`` if a stream or agent group names what the policy lacks."""
    for t in scenario.traffic:
        queues = [t.queue, t.transfer_to, t.follow_up and t.follow_up.queue]
        queues.append(t.bot.handoff_queue if t.bot else None)
        queues.append(t.switch.queue if t.switch else None)
        for q in queues:
            if isinstance(q, str) and q not in policy.queues:
                raise ScenarioError(f"traffic {t.name!r}: the policy has no queue {q!r}")
    for g in scenario.agents:
        if g.profile is not None and g.profile not in policy.profiles:
            raise ScenarioError(f"agents {g.group!r}: the policy has no profile {g.profile!r}")


# --- what each contact will do ----------------------------------------------------------


@dataclass(slots=True)
class _Plan:
    """One contact, drawn from its stream's random stream before any routing."""

    cid: str
    ts: int
    stream: Traffic
    contact: Contact
    customer_id: str | None
    skills: dict[str, int]
    language: str | None
    handle_ms: int
    patience_ms: int | None
    callback: Literal["", "now", "later"] = ""
    by_customer: bool = False
    transfer: Literal["", "cold", "warm"] = ""
    bot_resolves: bool = False
    bot_ms: int = 0
    switch_ms: int | None = None
    follow_up_ms: int | None = None


def _address(channel: Channel, customer: int | None, cid: str) -> str:
    if customer is None:
        return f"anon:{cid}"
    if channel in ("voice", "sms", "whatsapp"):
        return f"+4477009{customer:05d}"
    if channel == "email":
        return f"customer{customer:05d}@example.com"
    if channel in ("messenger", "telegram", "social"):
        return f"@customer{customer:05d}"
    if channel == "task":
        return f"case:{cid}"
    return f"web:crm-{customer:05d}"


def _arrivals(scenario: Scenario, stream: Traffic, seed: int) -> Iterator[_Plan]:
    """The stream's contacts in time order (a Poisson process, piecewise-constant rate)."""
    rng = random.Random(f"omniroute-sim:{seed}:arrivals:{stream.name}")
    cls = CHANNEL_CLASS[stream.channel]
    handle = stream.handle or scenario.handling.get(cls) or _default_handling()[cls]
    patience = stream.patience or scenario.patience.get(cls)
    languages = list(stream.languages)
    weights = list(stream.languages.values())
    start, end = scenario.start_ms, scenario.end_ms
    counter = itertools.count(1)

    def plan(ts: int) -> _Plan:
        n = next(counter)
        cid = f"{stream.name}-{n:07d}"
        known = scenario.customers > 0 and rng.random() < stream.known
        customer = rng.randrange(scenario.customers) if known else None
        skills = dict(stream.skills)
        if stream.random_skills is not None:
            skills.update(stream.random_skills.draw(rng))
        p = _Plan(
            cid=cid, ts=ts, stream=stream,
            contact=Contact(stream.channel, _address(stream.channel, customer, cid)),
            customer_id=None if customer is None else f"crm-{customer:05d}",
            skills=skills,
            language=rng.choices(languages, weights)[0] if languages else None,
            handle_ms=handle.draw_ms(rng),
            patience_ms=patience.draw_ms(rng) if patience is not None else None,
        )  # fmt: skip
        if stream.channel == "voice" and rng.random() < stream.callback:
            p.callback = "now" if rng.random() < 0.5 else "later"
        p.by_customer = rng.random() < stream.by_customer
        roll = rng.random()
        if roll < stream.transfer_cold:
            p.transfer = "cold"
        elif roll < stream.transfer_cold + stream.transfer_warm:
            p.transfer = "warm"
        if stream.bot is not None:
            p.bot_resolves = rng.random() < stream.bot.containment
            p.bot_ms = stream.bot.handle.draw_ms(rng)
        if stream.switch is not None and customer is not None and rng.random() < stream.switch.p:
            p.switch_ms = stream.switch.after.draw_ms(rng)
        if stream.follow_up is not None and rng.random() < stream.follow_up.p:
            p.follow_up_ms = stream.follow_up.after.draw_ms(rng)
        return p

    for i in range(stream.backlog):
        yield plan(start + i * 60_000 // max(1, stream.backlog))
    if stream.per_hour <= 0:
        return
    t = float(start)
    while t < end:
        hour_end = min(end, (int(t) // HOUR_MS + 1) * HOUR_MS)
        rate = stream.per_hour * scenario.rate_weight(int(t)) / HOUR_MS
        if rate <= 0:
            t = float(hour_end)
            continue
        t += rng.expovariate(rate)
        if t >= hour_end:  # memoryless: restart the draw at the boundary
            t = float(hour_end)
            continue
        yield plan(int(t))


# --- the run -------------------------------------------------------------------------------


@dataclass
class SimulationRun:
    """What :func:`simulate` did. The figures worth reporting come from the log."""

    scenario: str
    seed: int
    inputs: int = 0
    decisions: int = 0
    ticks: int = 0
    interactions: int = 0
    """Contacts that arrived (backlog, switches and follow-ups included)."""
    switches: int = 0
    follow_ups: int = 0
    abandons: int = 0
    callbacks: int = 0
    transfers: int = 0
    handoffs: int = 0
    bot_resolved: int = 0
    rejected: int = 0
    stale_actions: int = 0
    """Planned inputs dropped because they no longer made sense (the offer was gone...)."""
    first_ts: int = 0
    last_ts: int = 0
    open_at_end: int = 0
    """Conversations still open when the run stopped (``drain_minutes`` after arrivals)."""

    @property
    def events(self) -> int:
        return self.inputs + self.decisions


_Action: TypeAlias = Callable[[int], None]
Progress: TypeAlias = Callable[[int, int], None]
"""Called now and then with (event time simulated so far, total) in milliseconds."""


@dataclass(slots=True)
class _Agent:
    agent_id: str
    group: AgentGroup
    off_shift: bool = False


@dataclass
class _Desk:
    """The customers, the agents' desktops and the bots, reacting to the engine."""

    scenario: Scenario
    engine: Engine
    log: EventLog
    seed: int
    run: SimulationRun
    batch: int = 4096
    rng: random.Random = field(init=False)
    heap: list[tuple[int, int, _Action]] = field(default_factory=list)
    seq: Iterator[int] = field(default_factory=itertools.count)
    gen: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    now: int = 0
    buffer: list[Event] = field(default_factory=list)
    agents: dict[str, _Agent] = field(default_factory=dict)
    plans: dict[str, _Plan] = field(default_factory=dict)
    offers: dict[str, tuple[str, int]] = field(default_factory=dict)
    holder: dict[str, tuple[str, int]] = field(default_factory=dict)
    wait_gen: dict[str, int] = field(default_factory=dict)
    served: dict[str, None] = field(default_factory=dict)
    rejoined: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"omniroute-sim:{self.seed}:desk")
        self.tenant = self.scenario.tenant
        self.now = self.scenario.start_ms

    # --- plumbing ------------------------------------------------------------------------

    def at(self, ts: int, action: _Action) -> None:
        heapq.heappush(self.heap, (max(ts, self.now), next(self.seq), action))

    def emit(self, event: Input) -> None:
        decisions = self.engine.apply(event)
        self.buffer.append(event)
        self.buffer.extend(decisions)
        self.run.inputs += 1
        self.run.decisions += len(decisions)
        if len(self.buffer) >= self.batch:
            self.flush()
        for decision in decisions:
            self.react(decision)

    def flush(self) -> None:
        if self.buffer:
            self.log.append(self.buffer)
            self.buffer = []

    def conv(self, cid: str) -> ConversationState | None:
        tenant = self.engine.tenant(self.tenant)
        if tenant is None:
            return None
        return tenant.conversations.get(tenant.aliases.get(cid, cid))

    def holds(self, cid: str, agent_id: str, gen: int) -> ConversationState | None:
        """The conversation, if this assignment is still the agent's current work."""
        conv = self.conv(cid)
        if (
            self.holder.get(cid) != (agent_id, gen)
            or conv is None
            or conv.owner != agent_id
            or conv.stage != "assigned"
            or conv.in_queue
            or conv.offer_agent is not None
        ):
            self.run.stale_actions += 1
            return None
        return conv

    def open_conversations(self) -> int:
        tenant = self.engine.tenant(self.tenant)
        return 0 if tenant is None else len(tenant.conversations)

    # --- the loop --------------------------------------------------------------------------

    def play(self, progress: Progress | None) -> None:
        sc = self.scenario
        start, end = sc.start_ms, sc.end_ms
        hard_stop = end + round(sc.drain_minutes * 60_000)
        self._roster()
        arrivals = heapq.merge(
            *(_arrivals(sc, stream, self.seed) for stream in sc.traffic),
            key=lambda p: (p.ts, p.cid),
        )
        next_arrival = next(arrivals, None)
        report_every, next_report = max(60_000, (hard_stop - start) // 200), start
        never = hard_stop + 1
        while True:
            due = self.engine.next_deadline()
            tick = never if due is None else due
            action = self.heap[0][0] if self.heap else never
            arrival = next_arrival.ts if next_arrival is not None else never
            ts = min(tick, action, arrival)
            if ts > hard_stop or (
                ts > end and next_arrival is None and self.open_conversations() == 0
            ):
                break
            self.now = ts
            if progress is not None and ts >= next_report:
                progress(ts - start, hard_stop - start)
                next_report = ts + report_every
            if tick <= min(action, arrival):  # timers first, so the desk reads current state
                self.run.ticks += 1
                self.emit(Tick(tenant=self.tenant, ts=ts))
            elif next_arrival is not None and arrival <= action:
                self._arrive(next_arrival)
                next_arrival = next(arrivals, None)
            else:
                heapq.heappop(self.heap)[2](ts)
        self.flush()
        self.run.last_ts = self.now
        self.run.open_at_end = self.open_conversations()

    # --- agents ----------------------------------------------------------------------------

    def _roster(self) -> None:
        sc = self.scenario
        rng = random.Random(f"omniroute-sim:{self.seed}:roster")
        start = sc.start_ms
        for group in sc.agents:
            for i in range(group.count):
                agent_id = f"{group.group}-{i + 1:04d}"
                skills: dict[str, int] = {}
                for name, level in group.skills.items():
                    skills[name] = level if isinstance(level, int) else rng.randint(*level)
                if group.random_skills is not None:
                    for name, level in group.random_skills.draw(rng).items():
                        skills.setdefault(name, level)
                self.agents[agent_id] = _Agent(agent_id, group)
                self.emit(
                    AgentRegistered(
                        tenant=self.tenant, ts=start, agent_id=agent_id, kind=group.kind,
                        skills=skills, capacity_profile=group.profile,
                        languages=list(group.languages),
                    )
                )  # fmt: skip
                on, off = group.shift if group.shift is not None else (0.0, math.inf)
                later = group.stagger_h * i / group.count
                on, off = on + later, off + later
                self.at(start + round(on * HOUR_MS), self._status(agent_id, "available", "shift"))
                if off != math.inf:
                    self.at(start + round(off * HOUR_MS), self._end_shift(agent_id))
                length = (off if off != math.inf else sc.hours) - on
                for b in range(group.breaks):
                    centre = on + length * (b + 1) / (group.breaks + 1)
                    away = start + round((centre + rng.uniform(-0.25, 0.25)) * HOUR_MS)
                    back = away + round(group.break_minutes * 60_000)
                    self.at(away, self._status(agent_id, "away", "break"))
                    self.at(back, self._status(agent_id, "available", "back from break"))

    def _status(self, agent_id: str, status: Literal["available", "away"], why: str) -> _Action:
        def act(ts: int) -> None:
            if self.agents[agent_id].off_shift:
                return
            self.emit(
                AgentStatusChanged(
                    tenant=self.tenant, ts=ts, agent_id=agent_id, status=status, reason=why
                )
            )

        return act

    def _end_shift(self, agent_id: str) -> _Action:
        def act(ts: int) -> None:
            agent = self.agents[agent_id]
            if not agent.off_shift:
                agent.off_shift = True
                self.emit(
                    AgentStatusChanged(
                        tenant=self.tenant, ts=ts, agent_id=agent_id, status="away",
                        reason="end of shift",
                    )
                )  # fmt: skip
            tenant = self.engine.tenant(self.tenant)
            state = tenant.agents.get(agent_id) if tenant is not None else None
            if state is not None and state.holding:
                self.at(ts + 60_000, act)  # finish what they hold first
                return
            self.emit(
                AgentStatusChanged(
                    tenant=self.tenant, ts=ts, agent_id=agent_id, status="offline",
                    reason="end of shift",
                )
            )  # fmt: skip

        return act

    # --- customers -----------------------------------------------------------------------

    def _arrive(self, plan: _Plan) -> None:
        self.plans[plan.cid] = plan
        self.run.interactions += 1
        s = plan.stream
        self.emit(
            ConversationArrived(
                tenant=self.tenant, ts=plan.ts, conversation_id=plan.cid, channel=s.channel,
                contact=plan.contact, customer_id=plan.customer_id, queue=s.queue,
                skills=plan.skills, optional_skills=dict(s.optional_skills),
                priority=s.priority, language=plan.language,
            )
        )  # fmt: skip
        if plan.cid in self.rejoined:  # it joined the customer's open conversation
            self.plans.pop(plan.cid, None)
            self._wait_again(self.rejoined[plan.cid], plan.ts)
            return
        if plan.patience_ms is not None:
            self._wait(plan, plan.ts, plan.patience_ms)
        if plan.switch_ms is not None and s.switch is not None:
            self.at(plan.ts + plan.switch_ms, self._switch(plan, s.switch))

    def _wait(self, plan: _Plan, since: int, patience_ms: int) -> None:
        gen = self.wait_gen.get(plan.cid, 0) + 1
        self.wait_gen[plan.cid] = gen
        self.at(since + patience_ms, self._patience(plan, gen))

    def _wait_again(self, cid: str, ts: int) -> None:
        """A customer's new contact put their conversation back in the queue (a switch to
        a media class the agent has no room for): they wait with that channel's patience."""
        conv = self.conv(cid)
        plan = self.plans.get(cid)
        if plan is None or conv is None or not conv.in_queue or conv.owner is not None:
            return
        patience = self.scenario.patience.get(conv.media_class)
        if patience is not None:
            self._wait(plan, ts, patience.draw_ms(self.rng))

    def _patience(self, plan: _Plan, gen: int) -> _Action:
        def act(ts: int) -> None:
            conv = self.conv(plan.cid)
            if (
                conv is None
                or self.wait_gen.get(plan.cid) != gen
                or conv.owner is not None
                or conv.callback
                or conv.stage not in ("queued", "offered")
            ):
                return
            if not plan.callback or conv.channel != "voice":
                self.run.abandons += 1
                self.emit(CustomerAbandoned(tenant=self.tenant, ts=ts, conversation_id=plan.cid))
                self.plans.pop(plan.cid, None)
            elif conv.stage == "offered":
                self.at(ts + 3000, act)  # the offer may still be answered; ask again soon
            else:
                self.run.callbacks += 1
                later = ts + 10 * 60_000 if plan.callback == "later" else None
                self.emit(
                    CallbackRequested(
                        tenant=self.tenant, ts=ts, conversation_id=plan.cid,
                        address=plan.contact.address, not_before=later,
                    )
                )  # fmt: skip

        return act

    def _switch(self, plan: _Plan, switch: Switch) -> _Action:
        to = switch.to
        queue = switch.queue or plan.stream.queue
        priority = plan.stream.priority if switch.priority is None else switch.priority

        def act(ts: int) -> None:
            if plan.cid not in self.plans or self.conv(plan.cid) is None:
                return
            assert plan.customer_id is not None
            self.run.switches += 1
            self.run.interactions += 1
            customer = int(plan.customer_id.removeprefix("crm-"))
            new_cid = f"{plan.cid}-{to}"
            self.emit(
                ConversationArrived(
                    tenant=self.tenant, ts=ts, conversation_id=new_cid, channel=to,
                    contact=Contact(to, _address(to, customer, new_cid)),
                    customer_id=plan.customer_id, queue=queue, skills=plan.skills,
                    priority=priority, language=plan.language,
                )
            )  # fmt: skip
            self._wait_again(plan.cid, ts)

        return act

    def _follow_up(self, plan: _Plan, ts: int) -> None:
        follow = plan.stream.follow_up
        if plan.follow_up_ms is None or follow is None:
            return
        cid = f"{plan.cid}-task"
        task = _Plan(
            cid=cid, ts=ts + plan.follow_up_ms, stream=Traffic(name="follow-up", channel="task",
            queue=follow.queue, known=1.0), contact=Contact("task", f"case:{cid}"),
            customer_id=plan.customer_id, skills=plan.skills, language=plan.language,
            handle_ms=self.scenario.handling.get("task", _default_handling()["task"]).draw_ms(
                self.rng
            ), patience_ms=None,
        )  # fmt: skip
        self.run.follow_ups += 1
        self.at(task.ts, lambda _ts: self._arrive(task))

    # --- reactions to decisions --------------------------------------------------------

    def react(self, decision: Decision) -> None:
        match decision:
            case ConversationOffered():
                self._offered(decision)
            case ConversationAssigned():
                self._assigned(decision)
            case OfferExpired():
                self.offers.pop(decision.conversation_id, None)
            case AgentNotResponding():
                back = decision.ts + round(self.rng.uniform(20, 90) * 1000)
                self.at(back, self._back_at_desk(decision.agent_id))
            case ConversationRejoined():
                self.rejoined[decision.new_conversation_id] = decision.conversation_id
            case ConversationQueued() if decision.reason in ("agent_offline", "agent_removed"):
                self.holder.pop(decision.conversation_id, None)
            case EventRejected():
                self.run.rejected += 1
                _log.warning("the engine rejected a simulated input: %s", decision.reason)
            case _:
                pass

    def _back_at_desk(self, agent_id: str) -> _Action:
        def act(ts: int) -> None:
            tenant = self.engine.tenant(self.tenant)
            agent = tenant.agents.get(agent_id) if tenant is not None else None
            if agent is None or agent.status != "available" or agent.responsive:
                return
            self.emit(
                AgentStatusChanged(
                    tenant=self.tenant, ts=ts, agent_id=agent_id, status="available",
                    reason="back at the desk after a missed offer",
                )
            )  # fmt: skip

        return act

    def _offered(self, d: ConversationOffered) -> None:
        cid, agent_id = d.conversation_id, d.agent_id
        key = (agent_id, d.deadline)
        self.offers[cid] = key
        group = self.agents[agent_id].group
        if group.kind == "bot":
            decline, delay = False, 200
        else:
            roll = self.rng.random()
            if roll < group.ignore:
                return
            decline = roll < group.ignore + group.decline
            delay = round(self.rng.uniform(*group.answer_s) * 1000)

        def act(ts: int) -> None:
            if self.offers.get(cid) != key:
                self.run.stale_actions += 1
                return
            del self.offers[cid]
            if decline:
                event: Input = OfferDeclined(
                    tenant=self.tenant, ts=ts, conversation_id=cid, agent_id=agent_id,
                    reason="busy with a follow-up",
                )  # fmt: skip
            else:
                event = OfferAccepted(tenant=self.tenant, ts=ts, conversation_id=cid,
                                      agent_id=agent_id)  # fmt: skip
            self.emit(event)

        self.at(d.ts + delay, act)

    def _assigned(self, d: ConversationAssigned) -> None:
        cid, agent_id = d.conversation_id, d.agent_id
        self.offers.pop(cid, None)
        gen = next(self.gen)
        self.holder[cid] = (agent_id, gen)
        self.wait_gen.pop(cid, None)
        plan = self.plans.get(cid)
        conv = self.conv(cid)
        if plan is None or conv is None:
            return
        if self.agents[agent_id].group.kind == "bot":
            self.at(d.ts + (plan.bot_ms or 5_000), self._bot_outcome(plan, agent_id, gen))
            return
        first = cid not in self.served
        self.served[cid] = None
        if first:
            handle = plan.handle_ms
        else:  # a transfer, a hand-back or a callback: a new stretch of work
            cls = "task" if conv.callback else conv.media_class
            handle = self.scenario.handling.get(cls, _default_handling()[cls]).draw_ms(self.rng)
        self.at(d.ts + handle, self._end(plan, agent_id, gen))
        if plan.transfer and first and not conv.callback:
            self.at(d.ts + handle * 2 // 5, self._transfer(plan, agent_id, gen))
        every = plan.stream.messages_every_s
        if every is None and conv.media_class == "messaging":
            every = 150.0
        if every:
            t = d.ts
            while True:
                t += round(self.rng.expovariate(1 / every) * 1000)
                if t >= d.ts + handle:
                    break
                self.at(t, self._message(cid, agent_id, gen))

    def _message(self, cid: str, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            if self.holder.get(cid) == (agent_id, gen) and self.conv(cid) is not None:
                self.emit(MessageReceived(tenant=self.tenant, ts=ts, conversation_id=cid))

        return act

    def _bot_outcome(self, plan: _Plan, bot_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            if self.holds(plan.cid, bot_id, gen) is None:
                return
            self.holder.pop(plan.cid, None)
            bot = plan.stream.bot  # a stream without a bot play: the bot hands off at once
            if bot is not None and plan.bot_resolves:
                self.run.bot_resolved += 1
                self.emit(
                    ConversationEnded(
                        tenant=self.tenant, ts=ts, conversation_id=plan.cid, by="customer"
                    )
                )
                self.plans.pop(plan.cid, None)
                return
            self.run.handoffs += 1
            self.emit(
                HandoffRequested(
                    tenant=self.tenant, ts=ts, conversation_id=plan.cid, agent_id=bot_id,
                    reason="asked for a human", queue=bot.handoff_queue if bot else None,
                )
            )  # fmt: skip
            if plan.patience_ms is not None:
                self._wait(plan, ts, plan.patience_ms)

        return act

    def _transfer(self, plan: _Plan, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            conv = self.holds(plan.cid, agent_id, gen)
            if conv is None:
                return
            self.run.transfers += 1
            to_queue = plan.stream.transfer_to or conv.queue
            if plan.transfer == "cold":
                self.holder.pop(plan.cid, None)
            self.emit(
                TransferRequested(
                    tenant=self.tenant, ts=ts, conversation_id=plan.cid, agent_id=agent_id,
                    to_queue=to_queue, mode="cold" if plan.transfer == "cold" else "warm",
                )
            )  # fmt: skip
            if plan.transfer == "warm":
                self.at(ts + 180_000, self._give_up_warm(plan, agent_id, gen))

        return act

    def _give_up_warm(self, plan: _Plan, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            conv = self.conv(plan.cid)
            if self.holder.get(plan.cid) != (agent_id, gen) or conv is None:
                return
            if conv.owner != agent_id or conv.stage != "assigned":
                return
            self._finish(plan, agent_id, ts, "agent")

        return act

    def _end(self, plan: _Plan, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            if self.holds(plan.cid, agent_id, gen) is None:
                return
            self._finish(plan, agent_id, ts, "customer" if plan.by_customer else "agent")

        return act

    def _finish(
        self, plan: _Plan, agent_id: str, ts: int, by: Literal["agent", "customer"]
    ) -> None:
        self.holder.pop(plan.cid, None)
        self.plans.pop(plan.cid, None)
        self.served.pop(plan.cid, None)
        self.emit(ConversationEnded(tenant=self.tenant, ts=ts, conversation_id=plan.cid, by=by))
        self._follow_up(plan, ts)
        conv = self.conv(plan.cid)
        wrap = self.agents[agent_id].group.wrap_up_s
        if conv is None or conv.stage != "wrap_up" or wrap is None:
            return  # closed at once (no wrap-up), or the policy's wrap-up timer ends it
        cid = plan.cid

        def done(ts: int) -> None:
            conv = self.conv(cid)
            if conv is None or conv.stage != "wrap_up" or conv.owner != agent_id:
                self.run.stale_actions += 1
                return
            self.emit(
                WrapUpCompleted(tenant=self.tenant, ts=ts, conversation_id=cid, agent_id=agent_id)
            )

        self.at(ts + round(self.rng.uniform(*wrap) * 1000), done)


def simulate(
    scenario: Scenario,
    log: EventLog,
    *,
    policy: Policy | None = None,
    seed: int | None = None,
    progress: Progress | None = None,
) -> SimulationRun:
    """Play ``scenario`` through a new engine into ``log`` (which should be empty).

    ``policy`` defaults to the scenario's inline policy (a policy *file* named by the
    scenario is read by :func:`scenario_policy`); ``seed`` to the scenario's.
    Raises ``ScenarioError`` if the scenario needs a queue or profile the policy lacks.
    """
    if policy is None:
        if isinstance(scenario.policy, str):
            raise ScenarioError("policy: the scenario names a file; pass scenario_policy()")
        policy = scenario_policy(scenario)
    check_scenario_policy(scenario, policy)
    seed = scenario.seed if seed is None else seed
    run = SimulationRun(scenario=scenario.name, seed=seed, first_ts=scenario.start_ms)
    desk = _Desk(scenario, Engine(policy), log, seed, run)
    desk.play(progress)
    _log.info(
        "simulated %s: %d interactions, %d events, %d stale actions dropped",
        scenario.name, run.interactions, run.events, run.stale_actions,
    )  # fmt: skip
    return run
