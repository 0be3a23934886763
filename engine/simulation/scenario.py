"""The scenario schema: who works, what arrives and how customers behave, with its checks.

A :class:`Scenario` is read from TOML (:mod:`.loading`); every struct here rejects
unknown keys and checks its values, so a typo or an impossible number is a
``ScenarioError`` naming the key, not a silent default. :class:`Dist` and
:class:`SkillPool` also draw from a seeded ``random.Random``.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from typing import Any, Literal, TypeVar

import msgspec

from ..events import Channel
from ..policy import MediaClass

__all__ = [
    "HOUR_MS",
    "AgentGroup",
    "BotPlay",
    "Dist",
    "FollowUp",
    "Scenario",
    "ScenarioError",
    "SkillPool",
    "Switch",
    "Traffic",
]

HOUR_MS = 3_600_000

_Item = TypeVar("_Item", "AgentGroup", "Traffic")


class ScenarioError(ValueError):
    """A scenario file or value is wrong; the message names the key."""


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Scenario structs reject unknown keys, so a typo is an error, not a silent default."""


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
        """Raise ``ScenarioError``, naming ``key``, if a value is impossible."""
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
        """Raise ``ScenarioError``, naming ``key``, if a value is impossible."""
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

    def check(self, key: str) -> None:
        """Raise ``ScenarioError``, naming ``key``, if a value is impossible."""
        if self.count < 0 or not 0 <= self.decline + self.ignore <= 1:
            raise ScenarioError(f"{key}: count >= 0 and decline + ignore in [0, 1]")
        if self.shift is not None and not 0 <= self.shift[0] < self.shift[1]:
            raise ScenarioError(f"{key}.shift: needs 0 <= start_h < end_h")
        if self.random_skills is not None:
            self.random_skills.check(f"{key}.random_skills")


class Switch(_Spec, frozen=True):
    """A known customer who, while their conversation is open, contacts again on channel
    ``to``: the new contact joins the conversation as a second live leg (the email with
    the document during the call, WhatsApp during a chat, a call while chatting), and each
    leg then ends on its own (the call hangs up, the email is answered afterwards).

    ``p`` is the share of the stream's contacts from known customers who do it.
    ``during``: ``"open"`` counts ``after`` from the first contact, whatever stage the
    conversation is at (queued, with a bot, served); ``"service"`` counts it from when a
    human agent answers, and the contact comes while they serve the customer (halfway
    through the answer's work if that is shorter). The new contact comes in on
    ``queue`` with ``priority`` (as a contact on that channel would; by default the
    stream's).
    """

    p: float
    to: Channel
    after: Dist = Dist(dist="uniform", min_s=30.0, max_s=180.0)
    during: Literal["open", "service"] = "open"
    queue: str | None = None
    priority: int | None = None

    def check(self, key: str) -> None:
        """Raise ``ScenarioError``, naming ``key``, if a value is impossible."""
        if not 0 <= self.p <= 1:
            raise ScenarioError(f"{key}.p: must be in [0, 1]")
        self.after.check(f"{key}.after")


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
    queue). ``switch``: a second leg on another channel (:class:`Switch`), or a list of
    them of which each contact makes at most one (their ``p`` add up to at most 1).
    ``messages_every_s``: the mean gap between customer messages in an assigned
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
    switch: Switch | list[Switch] | None = None
    follow_up: FollowUp | None = None
    bot: BotPlay | None = None
    messages_every_s: float | None = None

    def check(self, key: str) -> None:
        """Raise ``ScenarioError``, naming ``key``, if a value is impossible."""
        if self.per_hour < 0 or self.backlog < 0:
            raise ScenarioError(f"{key}: per_hour and backlog must be >= 0")
        transfers = self.transfer_cold + self.transfer_warm
        shares = (self.known, self.callback, self.by_customer, transfers)
        if not all(0 <= p <= 1 for p in shares):
            raise ScenarioError(f"{key}: shares (known, callback, transfers...) in [0, 1]")
        for part, dist in (("handle", self.handle), ("patience", self.patience)):
            if dist is not None:
                dist.check(f"{key}.{part}")
        if self.random_skills is not None:
            self.random_skills.check(f"{key}.random_skills")
        for i, switch in enumerate(self.switches):
            switch.check(f"{key}.switch[{i}]")
            if switch.to == self.channel:
                raise ScenarioError(f"{key}.switch[{i}].to: another channel than {self.channel!r}")
        if sum(switch.p for switch in self.switches) > 1:
            raise ScenarioError(f"{key}.switch: the shares p add up to more than 1")

    @property
    def switches(self) -> tuple[Switch, ...]:
        """The stream's second legs (``switch`` as a tuple)."""
        if self.switch is None:
            return ()
        return (self.switch,) if isinstance(self.switch, Switch) else tuple(self.switch)


def _keyed(items: Sequence[_Item], kind: str, field: str, what: str) -> Iterator[tuple[str, _Item]]:
    """Each item with the key its errors are reported under; a repeated name is an error."""
    seen: set[str] = set()
    for i, item in enumerate(items):
        name = getattr(item, field)
        key = f"{kind}[{i}] ({name})"
        if name in seen:
            raise ScenarioError(f"{key}.{field}: duplicate {what} name")
        seen.add(name)
        yield key, item


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
    of a customer with an open conversation join it). ``reply_s`` is an agent's work on
    one reply in a messaging conversation (the first, and each answer to a customer
    message; an email or a post is answered by its handling time). ``policy`` is an
    inline policy table, or a path relative to the scenario file.
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
    reply_s: Dist = Dist(dist="uniform", min_s=10.0, max_s=40.0)
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
        self.reply_s.check("reply_s")
        for key, group in _keyed(self.agents, "agents", "group", "group"):
            group.check(key)
        for key, stream in _keyed(self.traffic, "traffic", "name", "stream"):
            stream.check(key)

    @property
    def start_ms(self) -> int:
        """When the scenario starts, in milliseconds since the epoch."""
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

    def handling_for(self, media: MediaClass) -> Dist:
        """How long a stretch of work of this media class takes (the scenario's table,
        else the default for the class)."""
        return self.handling.get(media) or _default_handling()[media]

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
