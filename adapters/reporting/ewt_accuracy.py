"""The error of the estimated wait time, :func:`.ewt.estimate_wait`, measured against the
waits that followed in a log (``omniroute ewt``, ``benchmarks/bench_ewt.py``).

The measurement (:func:`measure`, :func:`observe`, :func:`accuracy`). A replay of a
simulator's log (inputs and the engine's decisions; an input is taken after the timer
decisions dated before it, as the engine did, and skipped when rejected) keeps per key
the :class:`QueueLoad` inputs, from event times only, as the projection's tables
would give them:

- ``ahead``: legs live, not yet taken on by a human, whose conversation no bot holds,
  of the key's channel, in the queue their conversation is routed in now (its last
  ``ConversationQueued``);
- ``agents``: humans a ``ConversationAssigned`` of the key gave a conversation in the
  last hour (the key: its queue and its most demanding live leg's channel, as the
  ``assignments`` table has them), less those offline or removed now;
- ``mean_handle_s``: human owners' segments (assignment to the end, a cold transfer,
  the next owner, the agent leaving; wrap-up excluded) that ended in the last hour,
  keyed as ``agents`` at the assignment (the ``segments`` table's ``agent`` rows);
- ``departures``: legs of the key (the queue and channel they arrived with, as in the
  ``legs`` table) first taken on by a human, or abandoned unserved.

An estimate is recorded for each contact that begins to wait for a human: a new
conversation queued (``ConversationQueued`` ``arrived``) in a queue that is not
``bot_first``, and a bot's handoff (``handoff``: the caller hears the estimate then,
and the wait counts from it). Rejoins are not estimated (a customer's new contact joins
their open conversation and mostly waits for its own agent) but are in the load.
The actual wait is from then to the first human ``ConversationAssigned`` of the leg
(for every channel: an asynchronous one's first reply is the agent's pace, not the
queue's). Abandoned contacts, callbacks (the customer chose when) and contacts that
ended otherwise unanswered have no actual wait: counted apart.

:class:`EwtAccuracy` gives the count, mean and p50/p90 absolute error, mean actual,
mean estimate and bias (estimate - actual), overall, per channel and per queue, beside
a baseline that knows in hindsight each key's mean actual wait over the whole log (a
harder baseline than one overall mean) and ignores the queue's state.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from omniroute.engine.events import (
    TAGS,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    CallbackRequested,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    Event,
    EventRejected,
    LegJoined,
    OfferAccepted,
    Tick,
    TransferRequested,
    is_decision,
)
from omniroute.engine.legs import DEMAND_ORDER
from omniroute.engine.log import EventLog
from omniroute.engine.policy import CHANNEL_CLASS, Policy

from .ewt import AGENTS_WINDOW_S, HANDLE_WINDOW_S, WINDOW_S, QueueLoad, estimate_wait

__all__ = [
    "ErrorStats",
    "EwtAccuracy",
    "Observation",
    "Origin",
    "Outcome",
    "accuracy",
    "measure",
    "observe",
]

# --- the replay -------------------------------------------------------------------------

Origin = Literal["arrival", "handoff"]
Outcome = Literal["answered", "abandoned", "callback", "unanswered"]
_Key = tuple[str, str, str]  # tenant, queue, channel
_RANK = {str(cls): i for i, cls in enumerate(DEMAND_ORDER)}


@dataclass(frozen=True)
class Observation:
    """One contact that began to wait for a human: what was known then, what happened."""

    tenant: str
    conversation_id: str
    leg: str
    """The leg that waits (its contact's ``conversation_id``)."""
    queue: str
    channel: str
    origin: Origin
    """``arrival``: a new conversation in a queue humans answer first; ``handoff``: a bot
    handed it to humans (its wait counts from the handoff, when the estimate is given)."""
    ts: int
    load: QueueLoad
    outcome: Outcome
    actual_s: float | None
    """Seconds from ``ts`` to the first human answer; None unless ``answered``."""


@dataclass(eq=False)
class _Probe:
    tenant: str
    conversation_id: str
    leg: str
    key: _Key
    origin: Origin
    ts: int
    load: QueueLoad
    outcome: Outcome | None = None
    actual_s: float | None = None


@dataclass(eq=False)
class _Leg:
    conv: _Conv
    leg_id: str
    key: _Key
    served: bool = False
    ended: bool = False
    probe: _Probe | None = None


@dataclass(eq=False)
class _Conv:
    tenant: str
    cid: str
    queue: str
    legs: dict[str, _Leg] = field(default_factory=dict)
    owner: str | None = None
    owner_bot: bool = False
    scheduled: bool = False
    """A callback due later (a rejoin before then voids it and ends its legs)."""
    seg_start: int = -1
    seg_key: _Key | None = None


@dataclass
class _KeyLoad:
    agents: dict[str, int] = field(default_factory=dict)
    handles: deque[tuple[int, int]] = field(default_factory=deque)
    handle_sum: int = 0
    departures: deque[int] = field(default_factory=deque)


class _Replay:
    """The online fold: per key, exactly the :class:`QueueLoad` inputs, from event times."""

    def __init__(self, policy: Policy, window_s: float) -> None:
        self.policy = policy
        self.window_ms = round(window_s * 1000)
        self.window_s = window_s
        self.keys: dict[_Key, _KeyLoad] = {}
        self.convs: dict[tuple[str, str], _Conv] = {}
        self.aliases: dict[tuple[str, str], _Conv] = {}
        self.pending: dict[tuple[str, str], ConversationArrived] = {}
        self.kinds: dict[tuple[str, str], str] = {}
        self.offline: set[tuple[str, str]] = set()
        self.holding: dict[tuple[str, str], set[_Conv]] = {}
        self.probes: list[_Probe] = []
        self.waiting: dict[tuple[str, str], set[_Leg]] = {}
        """Live legs no human has served yet, by tenant and channel."""

    # --- the log, in the engine's order ----------------------------------------------------

    def run(self, events: Iterable[Event]) -> list[_Probe]:
        """Fold ``events``: an input is taken after the timer decisions dated before it,
        which the engine appends after it (and skipped when rejected)."""
        held: Event | None = None
        group: list[Event] = []
        for e in events:
            if is_decision(e) or isinstance(e, (Tick, OfferAccepted)):
                if held is None:
                    self.decision(e)
                else:
                    group.append(e)
                continue
            if held is not None:
                self.group(held, group)
            held, group = e, []
        if held is not None:
            self.group(held, group)
        return self.probes

    def group(self, e: Event, group: list[Event]) -> None:
        tag = TAGS[type(e)]
        rejected = any(type(d) is EventRejected and d.event_type == tag for d in group)
        i = 0
        while i < len(group) and group[i].ts < e.ts:
            self.decision(group[i])
            i += 1
        if not rejected:
            self.input(e)
        for d in group[i:]:
            self.decision(d)

    def decision(self, d: Event) -> None:
        if isinstance(d, ConversationQueued):
            self.queued(d)
        elif isinstance(d, ConversationAssigned):
            self.assigned(d)
        elif isinstance(d, LegJoined):
            c = self.conv(d.tenant, d.conversation_id)
            if c is not None and not self.is_bot(d.tenant, d.agent_id):
                leg = c.legs.get(d.leg)
                if leg is not None:
                    self.serve(leg, d.ts)
        elif isinstance(d, ConversationRejoined):
            self.rejoined(d)

    def input(self, e: Event) -> None:
        if isinstance(e, ConversationArrived):
            self.pending[(e.tenant, e.conversation_id)] = e
        elif isinstance(e, AgentRegistered):
            self.kinds[(e.tenant, e.agent_id)] = e.kind
        elif isinstance(e, AgentStatusChanged):
            if e.status == "offline":
                self.agent_left(e.tenant, e.agent_id, e.ts)
            else:
                self.offline.discard((e.tenant, e.agent_id))
        elif isinstance(e, AgentRemoved):
            self.agent_left(e.tenant, e.agent_id, e.ts)
        elif isinstance(e, CustomerAbandoned):
            self.ended(e.tenant, e.conversation_id, e.leg, e.ts, abandoned=True)
        elif isinstance(e, ConversationEnded):
            self.ended(e.tenant, e.conversation_id, e.leg, e.ts, abandoned=False)
        elif isinstance(e, TransferRequested):
            c = self.conv(e.tenant, e.conversation_id)
            if c is not None and e.mode == "cold" and c.owner == e.agent_id:
                self.release(c, e.ts)
        elif isinstance(e, CallbackRequested):
            c = self.conv(e.tenant, e.conversation_id)
            if c is not None:
                c.scheduled = e.not_before is not None and e.not_before > e.ts
                for leg in c.legs.values():
                    if leg.probe is not None and leg.probe.outcome is None and not leg.ended:
                        leg.probe.outcome = "callback"

    # --- conversations ---------------------------------------------------------------------

    def conv(self, tenant: str, cid: str) -> _Conv | None:
        return self.convs.get((tenant, cid)) or self.aliases.get((tenant, cid))

    def key(self, key: _Key) -> _KeyLoad:
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = _KeyLoad()
        return k

    def is_bot(self, tenant: str, agent_id: str) -> bool:
        return self.kinds.get((tenant, agent_id)) == "bot"

    def new_leg(self, c: _Conv, leg_id: str, key: _Key) -> _Leg:
        leg = _Leg(c, leg_id, key)
        c.legs[leg_id] = leg
        self.waiting.setdefault((c.tenant, key[2]), set()).add(leg)
        return leg

    def queued(self, d: ConversationQueued) -> None:
        tenant = d.tenant
        c = self.conv(tenant, d.conversation_id)
        if d.reason == "arrived" and c is None:
            arrival = self.pending.pop((tenant, d.conversation_id), None)
            channel: str = arrival.channel if arrival is not None else "task"
            key: _Key = (tenant, d.queue, channel)
            c = _Conv(tenant, d.conversation_id, d.queue)
            self.convs[(tenant, c.cid)] = c
            queue = self.policy.queues.get(d.queue)
            probe = None
            if queue is None or not queue.bot_first:
                probe = self.probe(c, c.cid, key, "arrival", d.ts)
            leg = self.new_leg(c, d.conversation_id, key)
            leg.probe = probe
            return
        if c is None:
            return
        c.queue = d.queue
        c.scheduled = False
        if d.reason == "handoff":
            self.release(c, d.ts)
            lead = self.lead(c)
            if lead is not None and lead.probe is None:
                routed = (tenant, c.queue, lead.key[2])
                lead.probe = self.probe(c, lead.leg_id, routed, "handoff", d.ts, lead)

    def lead(self, c: _Conv) -> _Leg | None:
        """The live leg the conversation is routed as: the most demanding (newest of it)."""
        best: _Leg | None = None
        best_rank = len(_RANK) + 1
        for leg in c.legs.values():
            if leg.ended:
                continue
            rank = _RANK.get(CHANNEL_CLASS.get(leg.key[2], "task"), len(_RANK))  # type: ignore[call-overload]
            if rank <= best_rank:
                best, best_rank = leg, rank
        return best

    def rejoined(self, d: ConversationRejoined) -> None:
        c = self.conv(d.tenant, d.conversation_id)
        arrival = self.pending.pop((d.tenant, d.new_conversation_id), None)
        if c is None:
            return
        queue = arrival.queue if arrival is not None else c.queue
        if queue not in self.policy.queues:
            queue = "default" if self.policy.unknown_queue == "default" else c.queue
        self.aliases[(d.tenant, d.new_conversation_id)] = c
        if c.scheduled:  # back before the callback: it is void, its legs end
            for leg in c.legs.values():
                if not leg.ended:
                    self.end_leg(leg, d.ts, abandoned=False)
            c.scheduled = False
        self.new_leg(c, d.new_conversation_id, (d.tenant, queue, d.channel))

    def assigned(self, d: ConversationAssigned) -> None:
        c = self.conv(d.tenant, d.conversation_id)
        if c is None:
            return
        bot = self.is_bot(d.tenant, d.agent_id)
        if c.owner != d.agent_id:
            self.release(c, d.ts)
            c.owner = d.agent_id
            c.owner_bot = bot
            self.holding.setdefault((d.tenant, d.agent_id), set()).add(c)
        if bot:
            return
        routed = self.routed(c)
        self.key(routed).agents[d.agent_id] = d.ts
        if c.seg_start < 0:
            c.seg_start = d.ts
            c.seg_key = routed
        names = set(d.legs) if d.legs else None
        for leg_id, leg in c.legs.items():
            if not leg.ended and (names is None or leg_id in names):
                self.serve(leg, d.ts)

    def routed(self, c: _Conv) -> _Key:
        """The key a conversation is routed as now: its queue, its lead leg's channel."""
        lead = self.lead(c)
        channel = lead.key[2] if lead is not None else next(iter(c.legs.values())).key[2]
        return (c.tenant, c.queue, channel)

    def serve(self, leg: _Leg, ts: int) -> None:
        if leg.served:
            return
        leg.served = True
        self.waiting[(leg.conv.tenant, leg.key[2])].discard(leg)
        self.key(leg.key).departures.append(ts)
        p = leg.probe
        if p is not None and p.outcome is None:
            p.outcome = "answered"
            p.actual_s = (ts - p.ts) / 1000

    def release(self, c: _Conv, ts: int) -> None:
        """The owner lets go: a human's agent segment ends."""
        if c.owner is None:
            return
        held = self.holding.get((c.tenant, c.owner))
        if held is not None:
            held.discard(c)
        if not c.owner_bot and c.seg_key is not None and c.seg_start >= 0:
            k = self.key(c.seg_key)
            k.handles.append((ts, ts - c.seg_start))
            k.handle_sum += ts - c.seg_start
        c.owner, c.owner_bot, c.seg_start, c.seg_key = None, False, -1, None

    def end_leg(self, leg: _Leg, ts: int, abandoned: bool) -> None:
        leg.ended = True
        if leg.served:
            return
        self.waiting[(leg.conv.tenant, leg.key[2])].discard(leg)
        p = leg.probe
        if abandoned and not leg.conv.owner_bot:
            self.key(leg.key).departures.append(ts)
        if p is not None and p.outcome is None:
            p.outcome = "abandoned" if abandoned else "unanswered"

    def ended(self, tenant: str, cid: str, leg_id: str | None, ts: int, *, abandoned: bool) -> None:
        c = self.conv(tenant, cid)
        if c is None:
            return
        live = [leg for leg in c.legs.values() if not leg.ended]
        if leg_id is not None and len(live) > 1:
            leg = c.legs.get(leg_id)
            if leg is not None and not leg.ended:
                self.end_leg(leg, ts, abandoned)
            return
        if abandoned and c.owner is not None:
            return  # the engine rejects it
        if not abandoned and c.owner is None:
            return
        for leg in live:
            self.end_leg(leg, ts, abandoned)
        self.release(c, ts)
        del self.convs[(tenant, c.cid)]
        for alias in c.legs:
            self.aliases.pop((tenant, alias), None)

    def agent_left(self, tenant: str, agent_id: str, ts: int) -> None:
        self.offline.add((tenant, agent_id))
        for c in list(self.holding.pop((tenant, agent_id), ())):
            if c.owner == agent_id:
                self.release(c, ts)

    # --- the load ---------------------------------------------------------------------------

    def probe(
        self, c: _Conv, leg_id: str, key: _Key, origin: Origin, ts: int, own: _Leg | None = None
    ) -> _Probe:
        """Record what the key's load is as leg ``leg_id`` of ``c`` begins to wait."""
        p = _Probe(key[0], c.cid, leg_id, key, origin, ts, self.load(key, ts, own))
        self.probes.append(p)
        return p

    def load(self, key: _Key, now: int, own: _Leg | None = None) -> QueueLoad:
        """The key's load now, as a contact waiting on leg ``own`` sees it."""
        k = self.key(key)
        tenant = key[0]
        queue = key[1]
        ahead = sum(
            1
            for leg in self.waiting.get((tenant, key[2]), ())
            if not leg.conv.owner_bot and leg.conv.queue == queue and leg is not own
        )
        since = now - round(AGENTS_WINDOW_S * 1000)
        stale = [a for a, ts in k.agents.items() if ts < since]
        for a in stale:
            del k.agents[a]
        agents = sum(1 for a in k.agents if (tenant, a) not in self.offline)
        handles = k.handles
        horizon = now - round(HANDLE_WINDOW_S * 1000)
        while handles and handles[0][0] < horizon:
            k.handle_sum -= handles.popleft()[1]
        mean_handle = k.handle_sum / len(handles) / 1000 if handles else None
        departures = k.departures
        while departures and departures[0] < now - self.window_ms:
            departures.popleft()
        return QueueLoad(ahead, agents, mean_handle, len(departures), self.window_s)


def observe(
    log: EventLog | Iterable[Event], policy: Policy, *, window_s: float = WINDOW_S
) -> list[Observation]:
    """Replay a log (inputs and the engine's decisions) and return every contact that
    began to wait for a human, with the :class:`QueueLoad` of its key at that moment."""
    events: Iterable[Event] = (e for _, e in log.read()) if isinstance(log, EventLog) else log
    probes = _Replay(policy, window_s).run(events)
    return [
        Observation(
            tenant=p.tenant, conversation_id=p.conversation_id, leg=p.leg, queue=p.key[1],
            channel=p.key[2], origin=p.origin, ts=p.ts,
            load=p.load, outcome=p.outcome or "unanswered", actual_s=p.actual_s,
        )
        for p in probes
    ]  # fmt: skip


# --- accuracy ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorStats:
    """The error of the estimates of one group of answered contacts (seconds)."""

    count: int
    mae_s: float
    p50_abs_s: float
    p90_abs_s: float
    mean_actual_s: float
    mean_estimate_s: float
    bias_s: float
    """Mean of estimate - actual: positive when the estimate is too long."""
    baseline_mae_s: float
    baseline_p90_abs_s: float


@dataclass(frozen=True)
class EwtAccuracy:
    """How far the estimates were from the waits that followed."""

    overall: ErrorStats
    by_channel: dict[str, ErrorStats]
    by_queue: dict[str, ErrorStats]
    by_origin: dict[str, ErrorStats]
    """``arrival`` and ``handoff`` (see :attr:`Observation.origin`)."""
    contacts: int
    """Contacts that began to wait for a human (every outcome)."""
    answered: int
    no_estimate: int
    """Answered contacts the estimator knew nothing for (None): outside the error."""
    abandoned: int
    callbacks: int
    unanswered: int
    """Ended unanswered otherwise (the leg ended, a bot ended it) or still waiting."""


def _stats(est: np.ndarray, act: np.ndarray, base: np.ndarray) -> ErrorStats:
    if len(act) == 0:
        nan = math.nan
        return ErrorStats(0, nan, nan, nan, nan, nan, nan, nan, nan)
    err = np.abs(est - act)
    berr = np.abs(base - act)
    return ErrorStats(
        count=len(act), mae_s=float(err.mean()), p50_abs_s=float(np.quantile(err, 0.5)),
        p90_abs_s=float(np.quantile(err, 0.9)), mean_actual_s=float(act.mean()),
        mean_estimate_s=float(est.mean()), bias_s=float((est - act).mean()),
        baseline_mae_s=float(berr.mean()), baseline_p90_abs_s=float(np.quantile(berr, 0.9)),
    )  # fmt: skip


def accuracy(
    observations: list[Observation],
    estimator: Callable[[QueueLoad], float | None] = estimate_wait,
) -> EwtAccuracy:
    """The estimator's error on the answered ``observations``, beside the baseline's.

    The baseline knows each tenant x queue x channel's mean actual wait over the whole
    log in advance (hindsight) and ignores the state of the queue.
    """
    answered = [o for o in observations if o.outcome == "answered" and o.actual_s is not None]
    sums: dict[_Key, list[float]] = {}
    for o in answered:
        s = sums.setdefault((o.tenant, o.queue, o.channel), [0.0, 0.0])
        s[0] += o.actual_s or 0.0
        s[1] += 1
    rows: list[tuple[Observation, float, float, float]] = []
    no_estimate = 0
    for o in answered:
        e = estimator(o.load)
        if e is None:
            no_estimate += 1
            continue
        s = sums[(o.tenant, o.queue, o.channel)]
        rows.append((o, e, o.actual_s or 0.0, s[0] / s[1]))

    def of(sel: Iterator[tuple[Observation, float, float, float]]) -> ErrorStats:
        got = list(sel)
        arr = np.array([r[1:] for r in got], dtype=float).reshape(-1, 3)
        return _stats(arr[:, 0], arr[:, 1], arr[:, 2])

    channels = sorted({r[0].channel for r in rows})
    queues = sorted({r[0].queue for r in rows})
    return EwtAccuracy(
        overall=of(iter(rows)),
        by_channel={ch: of(r for r in rows if r[0].channel == ch) for ch in channels},
        by_queue={q: of(r for r in rows if r[0].queue == q) for q in queues},
        by_origin={
            origin: of(r for r in rows if r[0].origin == origin)
            for origin in ("arrival", "handoff")
            if any(r[0].origin == origin for r in rows)
        },
        contacts=len(observations), answered=len(answered), no_estimate=no_estimate,
        abandoned=sum(o.outcome == "abandoned" for o in observations),
        callbacks=sum(o.outcome == "callback" for o in observations),
        unanswered=sum(o.outcome == "unanswered" for o in observations),
    )  # fmt: skip


def measure(log: EventLog, policy: Policy) -> EwtAccuracy:
    """Replay ``log`` decided with ``policy`` and measure :func:`estimate_wait` against the
    waits that followed (see the module docstring)."""
    return accuracy(observe(log, policy))
