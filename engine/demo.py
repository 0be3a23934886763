"""The scripted demo: a small contact centre driven through the engine onto an event log.

One tenant (``demo``), 21 agents (19 humans, 2 bots) with skills ``sales``, ``billing``,
``support``, ``tech`` (levels 1..5), ``backoffice`` and languages, every channel, and a
few hundred conversations over two hours of event time from 2026-01-01T08:00Z. Arrival
times, customers and behaviours come from a seeded ``random.Random``: the same seed gives
the same log, byte for byte.

The driver plays the agents' desktops and the customers. It feeds inputs to the
engine, appends each input and the decisions it caused to the log as one batch, and
reacts to the decisions by scheduling future inputs in a heap keyed by ``(ts, seq)``:
an offer is accepted a few seconds later (sometimes declined, sometimes ignored until
it times out), an assigned conversation ends after a handling time and is wrapped up,
a bot resolves or hands off, a waiting customer abandons or asks for a callback.
Before it sends a scheduled input the driver checks, on the engine's read-only state,
that the input still makes sense (the offer is still pending, the agent still holds the
conversation), as a desktop would; a stale action is dropped, so a correct engine
rejects nothing. A ``Tick`` every second of event time makes the timers fire.

Scripted on top of the random traffic: cross-channel continuity (Messenger then
WhatsApp with ``ContactsLinked``; web chat then a voice call), a billing outage surge
(queueing, SLA breaches, escalations, abandons, callbacks), bot-first support with
hand-offs to humans, cold and warm transfers, an agent who declines and one who ignores
offers, breaks, a shift ending (``offline``), a late joiner, a skills update, a bot
going down for maintenance and an agent leaving the pool.

The domain stays free of I/O: :func:`run_demo` writes to any ``EventLog``;
``omniroute demo`` opens the embedded ``FileLog``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from .engine import Engine
from .events import (
    CHANNELS,
    AgentNotResponding,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
    Channel,
    Contact,
    ContactsLinked,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationEscalated,
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
    SlaBreached,
    Tick,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
    is_decision,
)
from .policy import Policy, PolicyError, parse_policy
from .state import ConversationState

if TYPE_CHECKING:
    from ..adapters.eventlog import EventLog

__all__ = [
    "DEMO_POLICY",
    "EPOCH_MS",
    "REQUIRED_QUEUES",
    "TENANT",
    "DemoRun",
    "DemoSummary",
    "check_demo_policy",
    "demo_policy",
    "format_summary",
    "run_demo",
    "summarize",
]

_log = logging.getLogger(__name__)

TENANT = "demo"
EPOCH_MS = 1_767_254_400_000
"""2026-01-01T08:00:00Z in epoch milliseconds: the demo's first event time."""
DURATION_MS = 2 * 3600 * 1000
"""Conversations arrive during the first two hours of event time."""
DRAIN_MS = 45 * 60 * 1000
"""After that, the demo runs until every conversation is closed, at most this long."""
TICK_MS = 1000
REQUIRED_QUEUES = ("sales", "billing", "support", "tech", "backoffice")

DEMO_POLICY = """\
# The omniroute demo's routing policy (examples/policy.toml documents every key).
preset = "balanced"

[profiles.default]          # a human agent: one budget of 100 units
budget = 100
classes.voice = { cost = 100, max = 1 }
classes.video = { cost = 100, max = 1 }
classes.chat = { cost = 34, max = 3 }
classes.messaging = { cost = 20, max = 5, inactive_after_s = 300, inactive_cost = 5 }
classes.email = { cost = 10, max = 10, interruptible_by = ["voice", "video"] }
classes.social = { cost = 10, max = 10, inactive_after_s = 600, inactive_cost = 2 }
classes.task = { cost = 25, max = 4 }

[profiles.backoffice]       # written channels and back-office tasks only
budget = 100
classes.email = { cost = 10, max = 10 }
classes.social = { cost = 10, max = 10 }
classes.task = { cost = 25, max = 4 }

[profiles.bot]
budget = 1000000
classes.voice = { cost = 1, max = 500 }
classes.video = { cost = 1, max = 100 }
classes.chat = { cost = 1, max = 1000 }
classes.messaging = { cost = 1, max = 1000 }
classes.email = { cost = 1, max = 1000 }
classes.social = { cost = 1, max = 1000 }
classes.task = { cost = 1, max = 1000 }

[queues.sales]
skills = { sales = 2 }
offer_timeout_s = 15
sla_s = { voice = 20, video = 30, webchat = 30 }
rings = [ { after_s = 30, level_drop = 1 }, { after_s = 90, widen = true } ]

[queues.billing]
skills = { billing = 2 }
priority = 1
offer_timeout_s = 15
rings = [ { after_s = 45, level_drop = 1 }, { after_s = 120, widen = true } ]

[queues.support]            # a bot answers first; humans get hand-offs
skills = { support = 1 }
bot_first = true
bot_wait_s = 10
handoff_priority_boost = 2
offer_timeout_s = 15
rings = [ { after_s = 60, drop_optional = true }, { after_s = 180, widen = true } ]

[queues.tech]               # few agents have tech 4: the rings widen the pool
skills = { tech = 4 }
offer_timeout_s = 20
rings = [
    { after_s = 20, level_drop = 1 },
    { after_s = 60, level_drop = 2 },
    { after_s = 150, widen = true },
]

[queues.backoffice]         # email, social posts, tasks: assigned without an offer
skills = { backoffice = 1 }
offer_mode = "auto"
wrap_up_s = 0
aging_s = 1800
sla_s = { email = 7200, social = 1800, task = 3600 }
rings = [ { after_s = 900, widen = true } ]   # nobody speaks the language: anyone
"""


def demo_policy() -> Policy:
    """The policy the demo runs with (``DEMO_POLICY`` parsed)."""
    return parse_policy(DEMO_POLICY)


def check_demo_policy(policy: Policy) -> None:
    """Raise ``PolicyError`` unless ``policy`` has the queues the demo sends work to."""
    missing = [name for name in REQUIRED_QUEUES if name not in policy.queues]
    if missing:
        raise PolicyError(
            f"queues: the demo needs queues {', '.join(REQUIRED_QUEUES)}; missing {missing}"
        )
    for profile in ("backoffice",):
        if profile not in policy.profiles:
            raise PolicyError(f"profiles: the demo needs a capacity profile named {profile!r}")


# --- the cast ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _AgentSpec:
    agent_id: str
    name: str
    skills: dict[str, int]
    languages: tuple[str, ...]
    kind: Literal["human", "bot"] = "human"
    profile: str | None = None
    p_decline: float = 0.04
    p_ignore: float = 0.03


_ROSTER: tuple[_AgentSpec, ...] = (
    _AgentSpec("a01", "Alice", {"sales": 4, "billing": 2, "support": 2, "backoffice": 1},
               ("en", "es")),
    _AgentSpec("a02", "Bruno", {"sales": 3, "support": 3}, ("en", "fr")),
    _AgentSpec("a03", "Chloe", {"billing": 4, "support": 2}, ("en",)),
    _AgentSpec("a04", "Dev", {"tech": 5, "support": 3}, ("en",)),
    _AgentSpec("a05", "Elena", {"sales": 2, "billing": 3, "support": 3, "backoffice": 1},
               ("en", "es")),
    _AgentSpec("a06", "Farid", {"tech": 3, "support": 4}, ("en", "fr")),
    _AgentSpec("a07", "Grace", {"sales": 5, "billing": 1}, ("en",), p_decline=0.25),
    _AgentSpec("a08", "Hiro", {"tech": 4, "support": 2}, ("en", "de")),
    _AgentSpec("a09", "Ines", {"billing": 3, "support": 3}, ("en", "es")),
    _AgentSpec("a10", "Jonas", {"sales": 2, "support": 3, "tech": 2}, ("en", "de")),
    _AgentSpec("a11", "Kofi", {"billing": 2, "support": 4, "backoffice": 1}, ("en",)),
    _AgentSpec("a12", "Lena", {"sales": 3, "billing": 3}, ("en", "de")),
    _AgentSpec("a13", "Marco", {"support": 3, "tech": 3}, ("en", "es"), p_ignore=0.3),
    _AgentSpec("a14", "Nadia", {"sales": 3, "support": 2}, ("en", "fr")),
    _AgentSpec("a15", "Omar", {"billing": 4, "sales": 2}, ("en",)),
    _AgentSpec("a16", "Priya", {"support": 5, "tech": 3, "backoffice": 1}, ("en",)),
    _AgentSpec("a17", "Quinn", {"sales": 2, "billing": 2, "support": 2, "backoffice": 3},
               ("en", "es", "fr"), profile="backoffice"),
    _AgentSpec("a18", "Rosa", {"billing": 2, "support": 3, "backoffice": 2}, ("en", "es")),
    _AgentSpec("bot-eva", "Eva (bot)", {"support": 3}, ("en", "es", "fr", "de"), kind="bot"),
    _AgentSpec("bot-max", "Max (bot)", {"support": 3}, ("en",), kind="bot"),
)  # fmt: skip
_LATE_JOINER = _AgentSpec("a19", "Sam", {"sales": 3, "billing": 2, "support": 3}, ("en",))

# The traffic mix (shared with benchmarks/bench_pipeline.py).
CHANNEL_WEIGHTS: dict[Channel, int] = {
    "voice": 28, "video": 4, "webchat": 16, "whatsapp": 14, "sms": 5, "messenger": 7,
    "telegram": 4, "email": 12, "social": 5, "task": 5,
}  # fmt: skip
TOPICS = ("sales", "billing", "support", "tech")
TOPIC_WEIGHTS = (30, 25, 30, 15)
LANGUAGES = ("en", "es", "fr", "de")
LANGUAGE_WEIGHTS = (72, 14, 9, 5)
WRITTEN: frozenset[Channel] = frozenset({"email", "social", "task"})
MESSAGING: frozenset[Channel] = frozenset({"whatsapp", "sms", "messenger", "telegram"})
PATIENCE_S: dict[Channel, tuple[float, float]] = {
    "voice": (25, 240), "video": (40, 300), "webchat": (60, 420), "whatsapp": (900, 3600),
    "sms": (900, 3600), "messenger": (900, 3600), "telegram": (900, 3600),
}  # fmt: skip
HANDLE_S: dict[Channel, tuple[float, float]] = {
    "voice": (90, 360), "video": (180, 480), "webchat": (180, 600), "whatsapp": (600, 2400),
    "sms": (600, 2400), "messenger": (600, 2400), "telegram": (600, 2400), "email": (60, 300),
    "social": (60, 240), "task": (120, 480),
}  # fmt: skip
COLD_TARGET = {"sales": "billing", "billing": "sales", "support": "tech", "tech": "support"}
_HANDOFF_REASONS = ("asked for a human", "intent not understood", "payment dispute")


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


# --- conversation plans ------------------------------------------------------------------


@dataclass
class _Plan:
    """What one customer contact will do; drawn before the run, so it is seed-stable."""

    cid: str
    ts: int
    channel: Channel
    queue: str
    contact: Contact
    customer_id: str | None = None
    language: str = "en"
    skills: dict[str, int] = field(default_factory=dict)
    patience_ms: int | None = None
    on_patience: Literal["abandon", "callback_now", "callback_later"] = "abandon"
    handle_ms: int | None = None
    by_customer: bool = False
    transfer: Literal["cold", "warm"] | None = None
    bot_outcome: Literal["handoff", "resolve"] = "handoff"
    wrap_up: bool = True


@dataclass(frozen=True)
class _Customer:
    customer_id: str
    phone: str
    email: str
    handle: str
    language: str


def _customers(rng: random.Random, n: int) -> list[_Customer]:
    out: list[_Customer] = []
    for i in range(n):
        language = rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0]
        out.append(
            _Customer(
                customer_id=f"crm-{i + 1:04d}",
                phone=f"+44 7700 9{rng.randrange(10**5):05d}",
                email=f"customer{i + 1:04d}@example.com",
                handle=f"user{rng.randrange(10**6):06d}",
                language=language,
            )
        )
    return out


def _address(channel: Channel, customer: _Customer, anonymous: bool, cid: str) -> str:
    if anonymous:
        return f"anon-{cid}"
    if channel in ("voice", "sms", "whatsapp"):
        return customer.phone
    if channel == "email":
        return customer.email
    if channel in ("messenger", "telegram", "social"):
        return f"@{customer.handle}"
    if channel == "task":
        return f"case-{cid}"
    return f"web:{customer.customer_id}"  # webchat and video: a logged-in web session


def _random_plans(rng: random.Random) -> list[_Plan]:
    """The background traffic: Poisson arrivals, heavier mid-morning."""
    customers = _customers(rng, 220)
    channels = list(CHANNEL_WEIGHTS)
    weights = list(CHANNEL_WEIGHTS.values())
    plans: list[_Plan] = []
    t = 0.0
    while True:
        minute = t / 60.0
        rate_per_min = 2.8 if 30 <= minute < 90 else 2.0  # about 270 contacts in two hours
        t += rng.expovariate(rate_per_min / 60.0)
        if t * 1000 >= DURATION_MS - 10 * 60 * 1000:
            break
        cid = f"c{len(plans) + 1:04d}"
        channel: Channel = rng.choices(channels, weights)[0]
        customer = rng.choice(customers)
        anonymous = rng.random() < 0.3
        topic = rng.choices(TOPICS, TOPIC_WEIGHTS)[0]
        if channel == "video" and topic in ("billing", "support"):
            topic = "sales"
        plan = _Plan(
            cid=cid,
            ts=EPOCH_MS + round(t * 1000),
            channel=channel,
            queue="backoffice" if channel in WRITTEN else topic,
            contact=Contact(channel, _address(channel, customer, anonymous, cid)),
            customer_id=None if anonymous else customer.customer_id,
            language=customer.language,
        )
        if channel in WRITTEN:
            plan.skills = {topic: 1}
        elif topic == "tech" and rng.random() < 0.3:
            plan.skills = {"tech": 5}  # an expert question: waits for the rings
        if channel in PATIENCE_S:
            lo, hi = PATIENCE_S[channel]
            plan.patience_ms = _ms(rng.uniform(lo, hi))
        if channel == "voice" and topic in ("sales", "billing") and rng.random() < 0.3:
            plan.on_patience = "callback_now" if rng.random() < 0.5 else "callback_later"
        plan.by_customer = rng.random() < 0.15
        if channel not in WRITTEN:
            roll = rng.random()
            plan.transfer = "cold" if roll < 0.06 else "warm" if roll < 0.10 else None
        plan.bot_outcome = "resolve" if rng.random() < 0.35 else "handoff"
        plan.wrap_up = rng.random() < 0.88
        plans.append(plan)
    return plans


def _surge_plans(rng: random.Random) -> list[_Plan]:
    """08:45-08:55: a billing outage floods the billing line with calls."""
    plans: list[_Plan] = []
    for i in range(24):
        ts = EPOCH_MS + _ms(45 * 60 + rng.uniform(0, 600))
        roll = rng.random()
        on_patience: Literal["abandon", "callback_now", "callback_later"] = (
            "callback_now" if roll < 0.2 else "callback_later" if roll < 0.35 else "abandon"
        )
        plans.append(
            _Plan(
                cid=f"outage-{i + 1:02d}",
                ts=ts,
                channel="voice",
                queue="billing",
                contact=Contact("voice", f"+44 7700 8{rng.randrange(10**5):05d}"),
                language="en",
                patience_ms=_ms(rng.uniform(30, 180)),
                on_patience=on_patience,
                handle_ms=_ms(rng.uniform(120, 300)),
            )
        )
    return plans


def _scripted_plans() -> list[_Plan]:
    """Cases the demo always shows, whatever the seed."""

    def at(minute: float) -> int:
        return EPOCH_MS + _ms(minute * 60)

    maria_fb = Contact("messenger", "@maria.garcia")
    maria_wa = Contact("whatsapp", "+34 600 111 222")
    return [
        # continuity, same media class: Messenger, then WhatsApp once the contacts are linked
        _Plan("maria-messenger", at(6), "messenger", "sales", maria_fb, language="es",
              handle_ms=_ms(40 * 60)),
        _Plan("maria-whatsapp", at(12), "whatsapp", "sales", maria_wa, language="es"),
        # continuity across media classes: a web chat, then a phone call from the same customer
        _Plan("tom-webchat", at(20), "webchat", "sales", Contact("webchat", "web:crm-tom"),
              customer_id="crm-tom", handle_ms=_ms(25 * 60)),
        _Plan("tom-voice", at(24), "voice", "sales", Contact("voice", "+44 7700 900123"),
              customer_id="crm-tom"),
        # bot first, then a hand-off to a support human
        _Plan("ava-webchat", at(15), "webchat", "support", Contact("webchat", "web:crm-ava"),
              customer_id="crm-ava", bot_outcome="handoff", patience_ms=_ms(900)),
        # transfers: cold to another queue, warm to a skill
        _Plan("ben-voice", at(16), "voice", "sales", Contact("voice", "+44 7700 900456"),
              transfer="cold", handle_ms=_ms(240)),
        _Plan("cai-video", at(33), "video", "tech", Contact("video", "web:crm-cai"),
              transfer="warm", handle_ms=_ms(300)),
        # a German-speaking expert tech call nobody can take at first: the rings widen the pool
        _Plan("dan-voice", at(47), "voice", "tech", Contact("voice", "+49 151 2345678"),
              skills={"tech": 5}, language="de", patience_ms=_ms(600)),
        # outage callers who need a billing expert (nobody has billing 5 until the first
        # ring) and will not wait: one abandons, two ask to be called back
        _Plan("eve-voice", at(46), "voice", "billing", Contact("voice", "+44 7700 900111"),
              skills={"billing": 5}, patience_ms=_ms(20)),
        _Plan("fay-voice", at(46.5), "voice", "billing", Contact("voice", "+44 7700 900222"),
              skills={"billing": 5}, patience_ms=_ms(35), on_patience="callback_now"),
        _Plan("gus-voice", at(47.5), "voice", "billing", Contact("voice", "+44 7700 900333"),
              skills={"billing": 5}, patience_ms=_ms(40), on_patience="callback_later"),
    ]  # fmt: skip


# --- the driver -----------------------------------------------------------------------------


@dataclass
class DemoRun:
    """What :func:`run_demo` did (the summary itself is read back from the log)."""

    inputs: int = 0
    decisions: int = 0
    batches: int = 0
    stale_actions: int = 0
    """Scheduled inputs dropped because they no longer made sense (the offer was gone...)."""
    last_ts: int = EPOCH_MS
    open_at_end: list[str] = field(default_factory=list)
    """Conversations still open when the demo stopped (at most ``DRAIN_MS`` after arrivals)."""


_Action = Callable[[int], None]


class _Desk:
    """The agents' desktops and the customers, reacting to the engine's decisions."""

    def __init__(self, engine: Engine, log: EventLog, seed: int) -> None:
        self.engine = engine
        self.log = log
        self.rng = random.Random(f"omniroute-demo-reactions-{seed}")
        self.heap: list[tuple[int, int, _Action]] = []
        self.seq = itertools.count()
        self.gen = itertools.count(1)
        self.now = EPOCH_MS
        self.run = DemoRun()
        self.plans: dict[str, _Plan] = {}
        self.specs: dict[str, _AgentSpec] = {s.agent_id: s for s in (*_ROSTER, _LATE_JOINER)}
        self.offers: dict[str, tuple[str, int]] = {}
        self.holder: dict[str, tuple[str, int]] = {}
        self.wait_gen: dict[str, int] = {}
        self.transferred: set[str] = set()
        self.rejoined: set[str] = set()
        self.forced: dict[str, Literal["decline", "ignore"]] = {"a07": "decline", "a13": "ignore"}

    # --- plumbing ---------------------------------------------------------------------------

    def at(self, ts: int, action: _Action) -> None:
        heapq.heappush(self.heap, (max(ts, self.now), next(self.seq), action))

    def emit(self, event: Input) -> None:
        decisions = self.engine.apply(event)
        self.log.append([event, *decisions])
        self.run.inputs += 1
        self.run.decisions += len(decisions)
        self.run.batches += 1
        for decision in decisions:
            self.react(decision)

    def conv(self, cid: str) -> ConversationState | None:
        tenant = self.engine.tenant(TENANT)
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
        tenant = self.engine.tenant(TENANT)
        return 0 if tenant is None else len(tenant.conversations)

    # --- the run ----------------------------------------------------------------------------

    def play(self, plans: Sequence[_Plan]) -> DemoRun:
        for spec in _ROSTER:
            self.at(EPOCH_MS, self._register(spec))
        self._script_presence()
        for plan in plans:
            self.plans[plan.cid] = plan
            self.at(plan.ts, self._arrive(plan))
        self.at(EPOCH_MS + _ms(9 * 60), self._link_maria)
        next_tick = EPOCH_MS + TICK_MS
        end, hard_stop = EPOCH_MS + DURATION_MS, EPOCH_MS + DURATION_MS + DRAIN_MS
        while next_tick <= hard_stop:
            if next_tick > end and self.open_conversations() == 0:
                break
            if self.heap and self.heap[0][0] < next_tick:
                ts, _, action = heapq.heappop(self.heap)
                self.now = ts
                action(ts)
                continue
            self.now = next_tick
            self.emit(Tick(tenant=TENANT, ts=next_tick))
            next_tick += TICK_MS
        self.run.last_ts = self.now
        tenant = self.engine.tenant(TENANT)
        self.run.open_at_end = [] if tenant is None else list(tenant.conversations)
        return self.run

    # --- scripted presence ------------------------------------------------------------------

    def _register(self, spec: _AgentSpec) -> _Action:
        def act(ts: int) -> None:
            self.emit(
                AgentRegistered(
                    tenant=TENANT, ts=ts, agent_id=spec.agent_id, kind=spec.kind,
                    skills=dict(spec.skills), capacity_profile=spec.profile,
                    languages=list(spec.languages), name=spec.name,
                )
            )  # fmt: skip
            self.emit(
                AgentStatusChanged(
                    tenant=TENANT, ts=ts, agent_id=spec.agent_id, status="available",
                    reason="logged in",
                )
            )  # fmt: skip

        return act

    def _status(
        self, agent_id: str, status: Literal["available", "away", "offline"], reason: str
    ) -> _Action:
        def act(ts: int) -> None:
            tenant = self.engine.tenant(TENANT)
            if tenant is None or agent_id not in tenant.agents:
                self.run.stale_actions += 1
                return
            self.emit(
                AgentStatusChanged(
                    tenant=TENANT, ts=ts, agent_id=agent_id, status=status, reason=reason
                )
            )

        return act

    def _script_presence(self) -> None:
        def at(minute: float) -> int:
            return EPOCH_MS + _ms(minute * 60)

        self.at(at(25), self._status("a05", "away", "break"))
        self.at(at(40), self._status("a05", "available", "back from break"))
        self.at(at(35), self._register(_LATE_JOINER))
        self.at(at(50), self._status("bot-max", "offline", "maintenance"))
        self.at(at(62), self._status("bot-max", "available", "maintenance done"))
        self.at(at(60), self._status("a09", "offline", "end of shift"))
        self.at(at(61), self._remove("a09"))
        self.at(at(70), self._update_skills("a03", {"billing": 4, "support": 2, "tech": 3}))
        self.at(at(80), self._status("a12", "away", "lunch"))
        self.at(at(110), self._status("a12", "available", "back from lunch"))

    def _remove(self, agent_id: str) -> _Action:
        def act(ts: int) -> None:
            self.emit(AgentRemoved(tenant=TENANT, ts=ts, agent_id=agent_id))

        return act

    def _update_skills(self, agent_id: str, skills: dict[str, int]) -> _Action:
        def act(ts: int) -> None:
            self.emit(AgentUpdated(tenant=TENANT, ts=ts, agent_id=agent_id, skills=skills))

        return act

    def _link_maria(self, ts: int) -> None:
        self.emit(
            ContactsLinked(
                tenant=TENANT, ts=ts, customer_id="crm-maria",
                contacts=[Contact("messenger", "@maria.garcia"),
                          Contact("whatsapp", "+34 600 111 222")],
            )
        )  # fmt: skip

    # --- customers --------------------------------------------------------------------------

    def _arrive(self, plan: _Plan) -> _Action:
        def act(ts: int) -> None:
            self.emit(
                ConversationArrived(
                    tenant=TENANT, ts=ts, conversation_id=plan.cid, channel=plan.channel,
                    contact=plan.contact, customer_id=plan.customer_id, queue=plan.queue,
                    skills=dict(plan.skills), language=plan.language,
                )
            )  # fmt: skip
            if plan.patience_ms is not None and plan.cid not in self.rejoined:
                self.wait_gen[plan.cid] = 0
                self.at(ts + plan.patience_ms, self._patience(plan, 0))

        return act

    def _patience(self, plan: _Plan, gen: int) -> _Action:
        def act(ts: int) -> None:
            conv = self.conv(plan.cid)
            if (
                conv is None
                or plan.cid in self.rejoined
                or self.wait_gen.get(plan.cid) != gen
                or conv.owner is not None
                or conv.callback
                or conv.stage not in ("queued", "offered")
            ):
                return
            if plan.on_patience == "abandon" or conv.channel != "voice":
                self.emit(CustomerAbandoned(tenant=TENANT, ts=ts, conversation_id=plan.cid))
            elif conv.stage == "offered":
                self.at(ts + 3000, act)  # the offer may still be answered; ask again soon
            else:
                later = plan.on_patience == "callback_later"
                self.emit(
                    CallbackRequested(
                        tenant=TENANT, ts=ts, conversation_id=plan.cid,
                        address=plan.contact.address,
                        not_before=ts + _ms(10 * 60) if later else None,
                    )
                )  # fmt: skip

        return act

    # --- reactions to decisions -------------------------------------------------------------

    def react(self, decision: Decision) -> None:
        match decision:
            case ConversationOffered():
                self._offered(decision)
            case ConversationAssigned():
                self._assigned(decision)
            case OfferExpired():
                self.offers.pop(decision.conversation_id, None)
            case AgentNotResponding():
                delay = _ms(self.rng.uniform(20, 90))
                self.at(decision.ts + delay, self._back_at_desk(decision.agent_id))
            case ConversationRejoined():
                self.rejoined.add(decision.new_conversation_id)
            case ConversationQueued() if decision.reason in ("agent_offline", "agent_removed"):
                self.holder.pop(decision.conversation_id, None)
            case EventRejected():
                _log.warning("the engine rejected a demo input: %s", decision.reason)
            case _:
                pass

    def _back_at_desk(self, agent_id: str) -> _Action:
        def act(ts: int) -> None:
            tenant = self.engine.tenant(TENANT)
            agent = tenant.agents.get(agent_id) if tenant is not None else None
            if agent is None or agent.status != "available" or agent.responsive:
                return
            self.emit(
                AgentStatusChanged(
                    tenant=TENANT, ts=ts, agent_id=agent_id, status="available",
                    reason="back at the desk after a missed offer",
                )
            )  # fmt: skip

        return act

    def _offered(self, d: ConversationOffered) -> None:
        cid, agent_id = d.conversation_id, d.agent_id
        key = (agent_id, d.deadline)
        self.offers[cid] = key
        spec = self.specs[agent_id]
        behaviour = self.forced.pop(agent_id, None)
        if behaviour is None:
            roll = self.rng.random()
            behaviour = (
                "ignore" if roll < spec.p_ignore
                else "decline" if roll < spec.p_ignore + spec.p_decline
                else None
            )  # fmt: skip
        if behaviour == "ignore":
            return
        decline = behaviour == "decline"
        delay = _ms(self.rng.uniform(1, 4) if decline else self.rng.uniform(1.5, 8))

        def act(ts: int) -> None:
            if self.offers.get(cid) != key:
                self.run.stale_actions += 1
                return
            if decline:
                del self.offers[cid]
                self.emit(
                    OfferDeclined(
                        tenant=TENANT, ts=ts, conversation_id=cid, agent_id=agent_id,
                        reason="busy with a follow-up",
                    )
                )  # fmt: skip
            else:
                self.emit(
                    OfferAccepted(tenant=TENANT, ts=ts, conversation_id=cid, agent_id=agent_id)
                )

        self.at(d.ts + delay, act)

    def _assigned(self, d: ConversationAssigned) -> None:
        cid, agent_id = d.conversation_id, d.agent_id
        self.offers.pop(cid, None)
        gen = next(self.gen)
        self.holder[cid] = (agent_id, gen)
        conv = self.conv(cid)
        plan = self.plans.get(cid)
        if conv is None or plan is None:
            return
        if self.specs[agent_id].kind == "bot":
            self.at(d.ts + _ms(self.rng.uniform(15, 90)), self._bot_outcome(plan, agent_id, gen))
            return
        first = cid not in self.transferred and plan.handle_ms is not None
        channel: Channel = "task" if conv.callback else conv.channel
        lo, hi = HANDLE_S[channel]
        handle = plan.handle_ms if first and plan.handle_ms else _ms(self.rng.uniform(lo, hi))
        self.at(d.ts + handle, self._end(plan, agent_id, gen))
        if plan.transfer is not None and cid not in self.transferred and not conv.callback:
            self.at(d.ts + handle * 2 // 5, self._transfer(plan, agent_id, gen))
        if channel in MESSAGING:
            t = d.ts
            while True:
                t += _ms(self.rng.expovariate(1 / 150))
                if t >= d.ts + handle:
                    break
                self.at(t, self._message(cid, agent_id, gen))

    def _message(self, cid: str, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            if self.holder.get(cid) == (agent_id, gen) and self.conv(cid) is not None:
                self.emit(MessageReceived(tenant=TENANT, ts=ts, conversation_id=cid))

        return act

    def _bot_outcome(self, plan: _Plan, bot_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            if self.holds(plan.cid, bot_id, gen) is None:
                return
            self.holder.pop(plan.cid, None)
            if plan.bot_outcome == "resolve":
                self.emit(
                    ConversationEnded(tenant=TENANT, ts=ts, conversation_id=plan.cid, by="customer")
                )
                return
            roll = self.rng.random()
            reason = self.rng.choice(_HANDOFF_REASONS)
            if roll < 0.2:
                event = HandoffRequested(
                    tenant=TENANT, ts=ts, conversation_id=plan.cid, agent_id=bot_id,
                    reason=reason, queue="tech",
                )  # fmt: skip
            else:
                level = 3 if roll > 0.8 else 2
                event = HandoffRequested(
                    tenant=TENANT, ts=ts, conversation_id=plan.cid, agent_id=bot_id,
                    reason=reason, skills={"support": level},
                )  # fmt: skip
            self.emit(event)
            if plan.patience_ms is not None:
                gen2 = self.wait_gen.get(plan.cid, 0) + 1
                self.wait_gen[plan.cid] = gen2
                self.at(ts + plan.patience_ms, self._patience(plan, gen2))

        return act

    def _transfer(self, plan: _Plan, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            conv = self.holds(plan.cid, agent_id, gen)
            if conv is None:
                return
            self.transferred.add(plan.cid)
            if plan.transfer == "cold":
                self.holder.pop(plan.cid, None)
                self.emit(
                    TransferRequested(
                        tenant=TENANT, ts=ts, conversation_id=plan.cid, agent_id=agent_id,
                        to_queue=COLD_TARGET.get(conv.queue, "support"), mode="cold",
                    )
                )  # fmt: skip
                return
            self.emit(
                TransferRequested(
                    tenant=TENANT, ts=ts, conversation_id=plan.cid, agent_id=agent_id,
                    skills={"tech": 3, "support": 2}, mode="warm",
                )
            )  # fmt: skip
            self.at(ts + _ms(180), self._give_up_warm(plan, agent_id, gen))

        return act

    def _give_up_warm(self, plan: _Plan, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            conv = self.conv(plan.cid)
            if self.holder.get(plan.cid) != (agent_id, gen) or conv is None:
                return
            if conv.owner != agent_id or conv.stage != "assigned":
                return
            self.holder.pop(plan.cid, None)
            self.emit(ConversationEnded(tenant=TENANT, ts=ts, conversation_id=plan.cid))
            self._after_end(plan.cid, agent_id, ts, plan.wrap_up)

        return act

    def _end(self, plan: _Plan, agent_id: str, gen: int) -> _Action:
        def act(ts: int) -> None:
            if self.holds(plan.cid, agent_id, gen) is None:
                return
            by: Literal["agent", "customer"] = "customer" if plan.by_customer else "agent"
            self.emit(ConversationEnded(tenant=TENANT, ts=ts, conversation_id=plan.cid, by=by))
            self._after_end(plan.cid, agent_id, ts, plan.wrap_up)

        return act

    def _after_end(self, cid: str, agent_id: str, ts: int, wrap_up: bool) -> None:
        conv = self.conv(cid)
        if conv is None or conv.stage != "wrap_up" or not wrap_up:
            return  # closed at once (no wrap-up), or the agent lets the wrap-up time out

        def act(ts: int) -> None:
            conv = self.conv(cid)
            if conv is None or conv.stage != "wrap_up" or conv.owner != agent_id:
                self.run.stale_actions += 1
                return
            self.emit(WrapUpCompleted(tenant=TENANT, ts=ts, conversation_id=cid, agent_id=agent_id))

        self.at(ts + _ms(self.rng.uniform(4, 25)), act)


def run_demo(log: EventLog, *, seed: int = 7, policy: Policy | None = None) -> DemoRun:
    """Play the demo scenario into ``log`` (which should be empty) and return the counts.

    Every input is appended together with the decisions it caused, as one batch.
    Raises ``PolicyError`` if ``policy`` lacks a queue or profile the demo uses.
    """
    policy = policy if policy is not None else demo_policy()
    check_demo_policy(policy)
    plan_rng = random.Random(f"omniroute-demo-plans-{seed}")
    plans = [*_random_plans(plan_rng), *_surge_plans(plan_rng), *_scripted_plans()]
    plans.sort(key=lambda p: (p.ts, p.cid))
    desk = _Desk(Engine(policy), log, seed)
    run = desk.play(plans)
    _log.info(
        "demo: %d inputs, %d decisions, %d stale actions dropped",
        run.inputs, run.decisions, run.stale_actions,
    )  # fmt: skip
    return run


# --- the summary, read back from the log --------------------------------------------------


def _percentile(values: Sequence[int], q: float) -> int | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


@dataclass
class DemoSummary:
    """Counts folded from a demo log (any log of the demo's shape, in fact)."""

    events: int = 0
    inputs: int = 0
    decisions: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    by_type: Counter[str] = field(default_factory=Counter)
    contacts: Counter[str] = field(default_factory=Counter)
    rejoined: Counter[str] = field(default_factory=Counter)
    assigned: Counter[str] = field(default_factory=Counter)
    abandoned: Counter[str] = field(default_factory=Counter)
    breached: Counter[str] = field(default_factory=Counter)
    waits_ms: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    offers: int = 0
    accepted: int = 0
    declined: int = 0
    offer_timeouts: int = 0
    offers_withdrawn: int = 0
    not_responding: int = 0
    escalations: int = 0
    escalated_conversations: int = 0
    """Escalations of conversations that were assigned (or in wrap-up), not waiting."""
    sla_breaches: int = 0
    rejoins: int = 0
    handoffs: int = 0
    bot_resolved: int = 0
    transfers: Counter[str] = field(default_factory=Counter)
    callbacks: int = 0
    abandons: int = 0
    wrapups_completed: int = 0
    wrapups_expired: int = 0
    rejected: int = 0
    agents: dict[str, dict[str, object]] = field(default_factory=dict)
    agent_counts: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


def summarize(events: Iterable[Event]) -> DemoSummary:
    """Fold a log's events into the demo's report figures."""
    s = DemoSummary()
    channel_of: dict[str, str] = {}
    holder: dict[str, str] = {}
    first_human: set[str] = set()
    escalated: set[str] = set()
    kinds: dict[str, str] = {}
    for event in events:
        s.events += 1
        tag = type(event).__struct_config__.tag
        s.by_type[str(tag)] += 1
        if is_decision(event):
            s.decisions += 1
        else:
            s.inputs += 1
            s.first_ts = event.ts if s.first_ts is None else s.first_ts
            s.last_ts = event.ts
        match event:
            case AgentRegistered():
                kinds[event.agent_id] = event.kind
                s.agents[event.agent_id] = {
                    "name": event.name or "", "kind": event.kind, "skills": event.skills,
                }  # fmt: skip
            case ConversationArrived():
                s.contacts[event.channel] += 1
                channel_of.setdefault(event.conversation_id, event.channel)
            case ConversationRejoined():
                s.rejoins += 1
                s.rejoined[event.channel] += 1
            case ConversationOffered():
                s.offers += 1
                s.agent_counts[event.agent_id]["offers"] += 1
            case OfferAccepted():
                s.accepted += 1
            case OfferDeclined():
                s.declined += 1
                s.agent_counts[event.agent_id]["declined"] += 1
            case OfferExpired():
                if event.reason == "timeout":
                    s.offer_timeouts += 1
                    s.agent_counts[event.agent_id]["missed"] += 1
                else:
                    s.offers_withdrawn += 1
            case AgentNotResponding():
                s.not_responding += 1
            case ConversationAssigned():
                holder[event.conversation_id] = event.agent_id
                s.agent_counts[event.agent_id]["assigned"] += 1
                cid = event.conversation_id
                if kinds.get(event.agent_id) == "human" and cid not in first_human:
                    first_human.add(cid)
                    channel = channel_of.get(cid, "?")
                    s.assigned[channel] += 1
                    s.waits_ms[channel].append(event.wait_ms)
            case ConversationEnded():
                if kinds.get(holder.get(event.conversation_id, "")) == "bot":
                    s.bot_resolved += 1
            case ConversationEscalated():
                s.escalations += 1
                escalated.add(event.conversation_id)
            case SlaBreached():
                s.sla_breaches += 1
                s.breached[channel_of.get(event.conversation_id, "?")] += 1
            case HandoffRequested():
                s.handoffs += 1
                s.agent_counts[event.agent_id]["handoffs"] += 1
            case TransferRequested():
                s.transfers[event.mode] += 1
                s.agent_counts[event.agent_id]["transfers"] += 1
            case CallbackRequested():
                s.callbacks += 1
            case CustomerAbandoned():
                s.abandons += 1
                s.abandoned[channel_of.get(event.conversation_id, "?")] += 1
            case WrapUpCompleted():
                s.wrapups_completed += 1
            case WrapUpExpired():
                s.wrapups_expired += 1
            case EventRejected():
                s.rejected += 1
            case _:
                pass
    s.escalated_conversations = len(escalated)
    return s


def _seconds(ms: int | None) -> str:
    return "-" if ms is None else f"{ms / 1000:.0f}s"


def _clock(ts: int | None) -> str:
    if ts is None:
        return "-"
    seconds = (ts // 1000) % 86_400
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


def format_summary(s: DemoSummary) -> list[str]:
    """The readable report of a demo log, as lines."""
    lines = [
        f"events in the log: {s.events} ({s.inputs} inputs, {s.decisions} decisions; "
        f"{s.by_type['tick']} ticks), event time {_clock(s.first_ts)} - {_clock(s.last_ts)}",
        "",
        "conversations by channel (waits: first contact -> first human agent, bot time included)",
        f"  {'channel':<10}{'contacts':>9}{'rejoined':>9}{'assigned':>9}{'abandoned':>10}"
        f"{'sla miss':>9}{'p50 wait':>10}{'p90 wait':>10}",
    ]
    totals = Counter[str]()
    for channel in CHANNELS:
        waits = s.waits_ms.get(channel, [])
        row = {
            "contacts": s.contacts[channel], "rejoined": s.rejoined[channel],
            "assigned": s.assigned[channel], "abandoned": s.abandoned[channel],
            "breached": s.breached[channel],
        }  # fmt: skip
        totals.update(row)
        lines.append(
            f"  {channel:<10}{row['contacts']:>9}{row['rejoined']:>9}{row['assigned']:>9}"
            f"{row['abandoned']:>10}{row['breached']:>9}"
            f"{_seconds(_percentile(waits, 50)):>10}{_seconds(_percentile(waits, 90)):>10}"
        )
    all_waits = [w for waits in s.waits_ms.values() for w in waits]
    lines.append(
        f"  {'all':<10}{totals['contacts']:>9}{totals['rejoined']:>9}{totals['assigned']:>9}"
        f"{totals['abandoned']:>10}{totals['breached']:>9}"
        f"{_seconds(_percentile(all_waits, 50)):>10}{_seconds(_percentile(all_waits, 90)):>10}"
    )
    lines += [
        "",
        "routing",
        f"  offers {s.offers}: accepted {s.accepted}, declined {s.declined}, timed out "
        f"{s.offer_timeouts} ({s.not_responding} agent-not-responding), withdrawn "
        f"{s.offers_withdrawn}",
        f"  escalations {s.escalations} (on {s.escalated_conversations} conversations), "
        f"SLA breaches {s.sla_breaches}",
        f"  rejoins (continuity) {s.rejoins}, bot hand-offs {s.handoffs}, resolved by bots "
        f"{s.bot_resolved}",
        f"  transfers {sum(s.transfers.values())} (cold {s.transfers['cold']}, warm "
        f"{s.transfers['warm']}), callbacks {s.callbacks}, abandoned {s.abandons}",
        f"  wrap-ups completed {s.wrapups_completed}, timed out {s.wrapups_expired}; "
        f"rejected inputs {s.rejected}",
        "",
        "agents",
        f"  {'agent':<9}{'name':<11}{'kind':<6}{'offers':>7}{'declined':>9}{'missed':>7}"
        f"{'assigned':>9}{'handed on':>10}  skills",
    ]
    for agent_id, info in s.agents.items():
        c = s.agent_counts[agent_id]
        skills = info["skills"]
        assert isinstance(skills, dict)
        skill_text = " ".join(f"{k}:{v}" for k, v in sorted(skills.items()))
        lines.append(
            f"  {agent_id:<9}{info['name']!s:<11}{info['kind']!s:<6}{c['offers']:>7}"
            f"{c['declined']:>9}{c['missed']:>7}{c['assigned']:>9}"
            f"{c['transfers'] + c['handoffs']:>10}  {skill_text}"
        )
    return lines
