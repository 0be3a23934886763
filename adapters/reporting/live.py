"""Live state: what is happening in a contact centre now, read from the projection.

:func:`live_state` reads a projection database (SQL reads only, a handful of queries)
and returns a :class:`LiveState`: one :class:`QueueNow` per tenant x queue x channel,
one :class:`AgentNow` per agent, the SLA breaches of the last hour and today's service
level per channel and interval. "Now" is the projection's clock ``as_of`` (the latest
event time folded, ``_projection_state.as_of_ms``), never the wall clock: a projection
that lags shows the centre as it was at ``as_of``, and says so. "Today" is the UTC day
of ``as_of``. Times are timezone-aware UTC datetimes; :meth:`LiveState.to_json` writes
them as ISO 8601.

The figures follow the projection's honest rules (DESIGN.md §7, :mod:`.schema`):
contacts are legs (each channel contact of a conversation, under its own channel).

Queues (:class:`QueueNow`), one per tenant x queue x channel that had a contact today
or has a live one now. The live figures use the queue the conversation is routed in
now and the leg's channel; today's figures use the queue and channel the contact
arrived on, as the ``service_level`` view does. The queue routed in now is the
projection's ``interactions.last_queue``: the last ``ConversationQueued``'s (a transfer,
a handoff), or, when later, that of a new leg that became the most demanding while no
transfer was under way (a chat joining a messaging conversation): the engine then
routes the conversation as that contact asked, whether or not it queues it again.

- ``waiting``: live legs nobody serves now, of conversations that are not a scheduled
  callback: queued, offered, or a new leg waiting for its agent's room (or for anyone).
  A leg is served when the conversation's holder (the agent of its open ``agent`` or
  ``bot`` segment) has taken it on: a human who answered it, a bot that served it. A
  callback counts from when the engine queues it at its time (while it is
  ``scheduled`` for later it is not waiting); a leg a bot serves is in neither figure.
- ``oldest_wait_s``: ``as_of`` minus the start of the longest wait: a leg never
  answered by a human waits from its contact (the first leg from the customer's first
  contact: bot time and callbacks included); one a human answered before and that
  waits again (a transfer) from the end of its last human segment.
- ``offered``: of the waiting legs, those whose conversation has an open offer.
- ``handling``: live legs a human serves now (a warm transfer's legs stay with the
  agent who holds them until the new agent takes over).
- ``sla_target_s``: the policy's target for the queue and channel.
- ``contacts_today``: legs that started today; ``answered_today`` those a human
  answered (outcome ``answered``: the first reply for written channels);
  ``abandoned_today`` those abandoned after the short-abandon threshold.
- ``service_level_today``: in SLA / measured over today's legs, the ``service_level``
  view's rule (``_sla_facts.sla_met``): answered within target is met; answered late,
  abandoned after the short-abandon threshold, taken on but never replied, or still
  waiting past the target is not met; short abandons, bot-only contacts and legs
  still within their target are not measured. None when nothing is measured.
- ``abandon_rate_today``: abandoned / (contacts - short abandons), the
  ``abandonment`` view's rate.
- ``service_level_15m`` / ``_60m``: the same rule over the legs that started in the
  15 / 60 minutes up to ``as_of``; ``abandoned_15m`` / ``_60m``: legs abandoned (after
  the threshold) in those minutes, by when the customer gave up.
- ``ewt_s``: the expected wait of a new arrival, :func:`.ewt.estimate_wait` of the
  key's :class:`~.ewt.QueueLoad`: ``ahead`` = ``waiting``; ``agents`` = humans assigned
  a conversation of the key (its queue and channel at assignment) in the last hour
  who are not offline or removed now; ``mean_handle_s`` = mean of the key's human
  ``agent`` segments that ended in the last hour; ``departures`` = legs of the key
  that stopped waiting in the last 15 minutes: first taken on by a human, or
  abandoned (short abandons included).
- ``sla_state``: ``breach`` when ``oldest_wait_s`` exceeds the target, or when the
  service level now (``service_level_15m``, else ``service_level_today``) is below
  the goal; ``warn`` when it is less than 5 points above the goal; else ``ok`` (also
  when nothing is measured yet). The policy holds no service-level goal, so
  :func:`live_state` takes one (``goal``, default 80 %).

Agents (:class:`AgentNow`), every registered agent not removed:

- ``status``, ``since``, ``in_status_s``: the agent's open ``agent_states`` row:
  ``available``, ``away``, ``offline`` or ``not_responding`` (available, but given no
  offers since one lapsed, until they say they are available again);
  ``not_responding`` is that last case.
- ``conversations``: the conversations the agent holds: offered to them (an open
  offer), served by them (an open ``agent``/``bot`` segment) or in their wrap-up.
- ``legs``: the live legs of those: all of an offered conversation's, those the agent
  took on of one they serve (a wrap-up has none).
- ``units_used`` / ``units_budget``: capacity units by the engine's rule
  (``engine/capacity.py``), from the agent's profile (``agents.profile``). A
  conversation costs the unit cost of the most demanding class among its live legs:
  for an offer, all of them; for a conversation served, those the agent took on of
  the classes their profile holds (none live: the hold stays as the last of them left
  it); in wrap-up, as it ended. An asynchronous class costs its ``inactive_cost`` once
  the customer has been silent ``inactive_after_s`` since the later of the assignment
  and their last contact or message. A hold grows only when it fits: while a new leg
  waits for the agent's room, the hold is what it was when the leg came (or less,
  if legs ended); a conversation the customer woke from inactive (a message up to
  ``as_of`` included) grows only if it fits beside the others (budget, class
  interruption), oldest first, as the engine settles them, and never while an older
  hold's new leg still waits. The projection cannot see a customer message on a
  non-written leg (it does not restart the inactivity clock here).

Breaches (:class:`Breach`): conversations whose SLA the engine declared breached
(``SlaBreached``) in the 60 minutes up to ``as_of``, newest first; ``at`` is the first
contact plus the target (when the engine's timer fires), ``waited_s`` the wait from
the first contact to the first human answer, to the abandon, or to ``as_of`` while it
goes on; ``queue`` and ``channel`` are those of the first contact.

Levels (:class:`IntervalLevel`): today's service level per tenant, channel and
reporting interval (the projection's ``interval_s``), from the ``service_level`` view.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, is_dataclass
from typing import Any

import duckdb

from omniroute.engine.policy import Policy

from .live_agents import AgentNow, agents_now
from .live_queues import DEFAULT_GOAL, EWT_WINDOW_S, WARN_MARGIN, QueueNow, queues_now
from .live_sql import BREACHES_SQL, LEVELS_SQL, rows, utc
from .writer import ProjectionError

__all__ = [
    "DEFAULT_GOAL",
    "EWT_WINDOW_S",
    "WARN_MARGIN",
    "AgentNow",
    "Breach",
    "IntervalLevel",
    "LiveState",
    "QueueNow",
    "live_state",
]


@dataclass(frozen=True)
class Breach:
    """A conversation whose SLA target passed unanswered in the last hour."""

    tenant: str
    conversation_id: str
    channel: str
    queue: str
    at: dt.datetime
    waited_s: float


@dataclass(frozen=True)
class IntervalLevel:
    """Today's service level of one channel in one reporting interval."""

    tenant: str
    channel: str
    interval_start: dt.datetime
    contacts: int
    service_level: float | None


@dataclass(frozen=True)
class LiveState:
    """The contact centre at the projection's clock ``as_of``."""

    as_of: dt.datetime
    queues: tuple[QueueNow, ...]
    agents: tuple[AgentNow, ...]
    breaches: tuple[Breach, ...]
    levels: tuple[IntervalLevel, ...]

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``json.dumps``: datetimes as ISO 8601, tuples as lists."""
        out = _plain(self)
        assert isinstance(out, dict)
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if is_dataclass(value):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def live_state(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    *,
    tenant: str | None = None,
    queue: str | None = None,
    channel: str | None = None,
    goal: float = DEFAULT_GOAL,
) -> LiveState:
    """The contact centre at the projection's clock (see the module docstring).

    ``policy`` is the log's policy (SLA targets, capacity profiles); ``tenant``,
    ``queue`` and ``channel`` narrow every figure (agents: those who could serve that
    queue and channel, or hold a conversation of it); ``goal`` is the service-level
    goal ``sla_state`` compares with. Raises :class:`~.writer.ProjectionError` when the
    database holds no projection state.
    """
    # one snapshot, on a cursor of its own (the caller's transaction is left alone): a
    # writer sharing the database may commit between the queries
    cur = con.cursor()
    try:
        cur.execute("BEGIN TRANSACTION")
        return _read(cur, policy, tenant, queue, channel, goal)
    finally:
        cur.close()


def _read(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    tenant: str | None,
    queue: str | None,
    channel: str | None,
    goal: float,
) -> LiveState:
    row = con.execute("SELECT as_of_ms FROM _projection_state WHERE id = 0").fetchone()
    if row is None:
        raise ProjectionError("the database holds no projection state")
    as_of_utc = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=int(row[0]))
    as_of = as_of_utc.replace(tzinfo=None)  # DuckDB's TIMESTAMPs are naive UTC
    day = dt.datetime(as_of.year, as_of.month, as_of.day)
    params: dict[str, Any] = {
        "as_of": as_of, "day": day, "tenant": tenant, "queue": queue, "channel": channel,
        "window_s": EWT_WINDOW_S,
    }  # fmt: skip

    queues = queues_now(con, policy, params, goal)
    agents = agents_now(con, policy, params)
    breaches = sorted(
        (
            Breach(
                r["tenant"],
                r["conversation_id"],
                r["channel"],
                r["queue"],
                utc(r["breach_at"]),
                float(r["waited_s"]),
            )
            for r in rows(con, BREACHES_SQL, params)
        ),
        key=lambda b: (-b.at.timestamp(), b.tenant, b.conversation_id),
    )
    levels = sorted(
        (
            IntervalLevel(
                r["tenant"],
                r["channel"],
                utc(r["interval_start"]),
                int(r["contacts"]),
                r["service_level"],
            )
            for r in rows(con, LEVELS_SQL, params)
        ),
        key=lambda v: (v.tenant, v.channel, v.interval_start),
    )
    return LiveState(as_of_utc, queues, agents, tuple(breaches), tuple(levels))
