"""DuckDB projections of an ``EventLog``: the reporting and customer-360 ("CRM") database.

:class:`Projector` folds a log into a DuckDB file, incrementally and idempotently:

- it remembers the log position it has projected up to (``_projection_state``) and
  picks up where it stopped; an event at a position already projected is never folded
  again, so projecting the same log twice changes nothing;
- the partial rows of open conversations and agents are kept in the database too
  (``_state``), written in the same transaction as the position, so a new process
  resumes exactly where the last one committed;
- rows are written in bulk (numpy column arrays registered with DuckDB), one
  transaction per batch of events; there is one writer process, and readers open the
  file read-only (:func:`connect_readonly`).

Tables: ``interactions`` (one row per conversation, a rejoined contact included),
``segments`` (each station of the journey: ``queue``, ``offer``, ``bot``, ``agent``,
``wrap_up``, and ``scheduled`` for a callback waiting for its time), ``assignments``,
``agent_states`` (status intervals), ``agents``, ``customers``, ``contacts``.
Views: ``service_level``, ``wait_percentiles``, ``abandonment``, ``occupancy``,
``customer_360``, ``channel_volume`` and ``projection_info``.

Honest metrics (DESIGN.md §7). A customer's wait is measured from their first contact
to the first assignment to a *human* (bot time, transfers, callbacks included); a
callback is measured by that true wait; an abandon after ``short_abandon_s`` counts as
not met (shorter ones are reported as short abandons, outside the rate); a
conversation still waiting past its target at the projection's clock (``as_of``, the
latest event time) counts as not met; every channel has its own SLA target, from the
engine's ``SlaBreached`` when it breached, else from the policy. A conversation
resolved by a bot without a human is reported as ``bot_resolved``, outside the service
level. Percentiles are nearest-rank (``quantile_disc``). Occupancy is busy time (holding
a conversation) over staffed time (available, or busy: work finished after going on a
break counts on both sides), so it never exceeds 100 %.

How the fold reads the log. The engine appends each input followed by the decisions it
caused: first those of timers that the input's time passed, then its own. The
projector folds decisions as the engine's truth and uses an input only for what no
decision says (a conversation ended, wrapped up, abandoned, an agent's presence, a
callback's time, contacts linked); an input followed by an ``EventRejected`` for it is
skipped, and decisions dated before the input are folded before it. One thing no event
says: when a customer's switch to another media class makes the engine release the
agent (the new class does not fit), the agent's segment ends at the ``channel_switch``
queueing, or at the next assignment during a transfer.
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
import typing
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import msgspec
import numpy as np

from omniroute.engine.events import (
    TAGS,
    AgentNotResponding,
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
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
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    OfferExpired,
    SlaBreached,
    Tick,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
)
from omniroute.engine.log import EventLog
from omniroute.engine.policy import CHANNEL_CLASS, Policy, Queue

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "VIEWS",
    "ProjectionError",
    "ProjectionStats",
    "Projector",
    "connect_readonly",
    "project",
]

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
TABLES = (
    "interactions", "segments", "assignments", "agent_states", "agents", "customers",
    "contacts",
)  # fmt: skip
"""The projected tables, in the order they are written."""
VIEWS = (
    "service_level", "wait_percentiles", "abandonment", "occupancy", "customer_360",
    "channel_volume", "projection_info",
)  # fmt: skip
"""The SQL views over the tables."""

_SEP = "\x1f"  # joins list values (channels, agents) on their way into a VARCHAR[]
_NONE = -1  # "no time yet" in the fold's integer timestamps
_DEFAULT_QUEUE = Queue()
_CACHE_MAX = 1_000_000  # contacts + customers kept in memory between batches
_PENDING_MAX_MS = 3_600_000
_CLASS: dict[str, str] = {str(k): str(v) for k, v in CHANNEL_CLASS.items()}
_SKIPPED_INPUTS = frozenset({Tick, OfferAccepted, MessageReceived})
"""Inputs with nothing to project: the decisions that follow them say what they did."""
_DECISIONS = frozenset(typing.get_args(Decision))


class ProjectionError(Exception):
    """The database cannot take this log or these settings (the message says why)."""


@dataclass(frozen=True)
class ProjectionStats:
    """What one :meth:`Projector.project` call did."""

    events: int
    """Events read from the log and folded."""
    position: int
    """The next log position to project (every event before it is in the database)."""
    batches: int
    """Transactions committed."""
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# --- the fold's state: msgspec structs, persisted as msgpack in ``_state`` -----------------


class _Seg(msgspec.Struct, array_like=True, gc=False):
    tenant: str
    cid: str
    seq: int
    kind: str
    start: int
    agent: str | None
    channel: str
    media_class: str
    queue: str


class _Conv(msgspec.Struct, array_like=True, kw_only=True):
    tenant: str
    cid: str
    customer_id: str
    contact_channel: str
    contact_address: str
    channels: list[str]
    channel: str
    media_class: str
    queue: str
    cur_queue: str
    priority: int = 0
    language: str | None = None
    first_contact: int
    first_offer: int = _NONE
    first_bot: int = _NONE
    first_answer: int = _NONE
    answered_by: str | None = None
    handled_by: list[str] = []
    last_agent: str | None = None
    ended: int = _NONE
    closed: int = _NONE
    ended_by: str | None = None
    abandoned: bool = False
    callback: bool = False
    transfers: int = 0
    handoffs: int = 0
    rejoins: int = 0
    escalations: int = 0
    sla_target_s: float = 0.0
    sla_breached: bool = False
    transfer_wait_ms: int = 0
    handle_ms: int = 0
    stage: str = "queued"
    owner: str | None = None
    owner_bot: bool = False
    offer_agent: str | None = None
    in_queue: bool = False
    transferring: bool = False
    q_seg: _Seg | None = None
    o_seg: _Seg | None = None
    h_seg: _Seg | None = None
    w_seg: _Seg | None = None
    s_seg: _Seg | None = None
    nseg: int = 0
    nassign: int = 0
    aliases: list[str] = []
    stored: bool = False
    dirty: bool = False


class _Agent(msgspec.Struct, array_like=True, kw_only=True):
    tenant: str
    agent_id: str
    kind: str = "human"
    name: str | None = None
    profile: str | None = None
    skills: str = "{}"
    registered: int = _NONE
    removed: int = _NONE
    status: str = "offline"
    responsive: bool = True
    state: str = "offline"
    state_start: int = _NONE
    holding: list[str] = []
    stored: bool = False
    dirty: bool = False


class _Pending(msgspec.Struct, array_like=True, kw_only=True):
    tenant: str
    cid: str
    ts: int
    channel: str
    contact_channel: str
    contact_address: str
    customer_id: str | None = None
    priority: int = 0
    language: str | None = None
    stored: bool = False


class _Contact(msgspec.Struct, kw_only=True):
    tenant: str
    channel: str
    address: str
    customer_id: str
    first_seen: int
    linked: int = _NONE
    stored: bool = False
    dirty: bool = True


class _Customer(msgspec.Struct, kw_only=True):
    tenant: str
    customer_id: str
    source: str
    first_seen: int
    merged_into: str | None = None
    stored: bool = False
    dirty: bool = True


class _Tenant:
    __slots__ = ("agents", "aliases", "convs", "open_by_customer", "pending")

    def __init__(self) -> None:
        self.convs: dict[str, _Conv] = {}
        self.aliases: dict[str, str] = {}
        self.agents: dict[str, _Agent] = {}
        self.pending: dict[str, _Pending] = {}
        self.open_by_customer: dict[str, str] = {}


_conv_codec = msgspec.msgpack.Decoder(_Conv)
_agent_codec = msgspec.msgpack.Decoder(_Agent)
_pending_codec = msgspec.msgpack.Decoder(_Pending)
_encode = msgspec.msgpack.Encoder().encode
_json = msgspec.json.Encoder().encode


# --- schema ----------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS _projection_state (
    id INTEGER PRIMARY KEY, next_position BIGINT NOT NULL, as_of_ms BIGINT NOT NULL,
    log_fingerprint VARCHAR, short_abandon_s DOUBLE NOT NULL, interval_s INTEGER NOT NULL,
    schema_version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS _state (kind VARCHAR, tenant VARCHAR, key VARCHAR, data BLOB);
CREATE TABLE IF NOT EXISTS interactions (
    tenant VARCHAR NOT NULL, conversation_id VARCHAR NOT NULL, customer_id VARCHAR,
    contact_channel VARCHAR, contact_address VARCHAR,
    first_channel VARCHAR, channels VARCHAR[], last_channel VARCHAR,
    queue VARCHAR, last_queue VARCHAR, priority INTEGER, language VARCHAR,
    first_contact_at TIMESTAMP, first_offer_at TIMESTAMP, first_bot_at TIMESTAMP,
    first_answer_at TIMESTAMP, answered_by VARCHAR, handled_by VARCHAR[], last_agent VARCHAR,
    ended_at TIMESTAMP, closed_at TIMESTAMP, ended_by VARCHAR, status VARCHAR, outcome VARCHAR,
    transfers INTEGER, handoffs INTEGER, rejoins INTEGER, escalations INTEGER,
    abandoned BOOLEAN, short_abandon BOOLEAN, callback BOOLEAN,
    sla_target_s DOUBLE, sla_breached BOOLEAN, wait_s DOUBLE, transfer_wait_s DOUBLE,
    handle_s DOUBLE, met BOOLEAN);
CREATE TABLE IF NOT EXISTS segments (
    tenant VARCHAR NOT NULL, conversation_id VARCHAR NOT NULL, seq INTEGER, kind VARCHAR,
    start_at TIMESTAMP, end_at TIMESTAMP, duration_s DOUBLE, agent_id VARCHAR,
    channel VARCHAR, media_class VARCHAR, queue VARCHAR, outcome VARCHAR);
CREATE TABLE IF NOT EXISTS assignments (
    tenant VARCHAR NOT NULL, conversation_id VARCHAR NOT NULL, seq INTEGER,
    agent_id VARCHAR, agent_kind VARCHAR, assigned_at TIMESTAMP, wait_s DOUBLE,
    first_human BOOLEAN, score DOUBLE, why VARCHAR, channel VARCHAR, media_class VARCHAR,
    queue VARCHAR);
CREATE TABLE IF NOT EXISTS agent_states (
    tenant VARCHAR NOT NULL, agent_id VARCHAR NOT NULL, agent_kind VARCHAR, state VARCHAR,
    start_at TIMESTAMP, end_at TIMESTAMP, duration_s DOUBLE);
CREATE TABLE IF NOT EXISTS agents (
    tenant VARCHAR NOT NULL, agent_id VARCHAR NOT NULL, kind VARCHAR, name VARCHAR,
    profile VARCHAR, skills VARCHAR, registered_at TIMESTAMP, removed_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS customers (
    tenant VARCHAR NOT NULL, customer_id VARCHAR NOT NULL, source VARCHAR,
    first_seen_at TIMESTAMP, merged_into VARCHAR);
CREATE TABLE IF NOT EXISTS contacts (
    tenant VARCHAR NOT NULL, channel VARCHAR NOT NULL, address VARCHAR NOT NULL,
    customer_id VARCHAR, first_seen_at TIMESTAMP, linked_at TIMESTAMP);
"""


def _ts(col: str) -> str:
    return f"CASE WHEN {col} >= 0 THEN epoch_ms({col}) END"


def _list(col: str) -> str:
    return f"CASE WHEN {col} = '' THEN []::VARCHAR[] ELSE string_split({col}, chr(31)) END"


_INSERT_INTERACTIONS = f"""
INSERT INTO interactions SELECT
    tenant, cid, customer_id, contact_channel, contact_address,
    first_channel, {_list("channels")}, channel, queue, cur_queue, priority, language,
    epoch_ms(first_contact), {_ts("first_offer")}, {_ts("first_bot")}, {_ts("first_answer")},
    answered_by, {_list("handled_by")}, last_agent,
    {_ts("ended")}, {_ts("closed")}, ended_by, status, outcome,
    transfers, handoffs, rejoins, escalations,
    abandoned, abandoned AND closed - first_contact < $short_ms, callback,
    sla_target_s, sla_breached,
    CASE WHEN first_answer >= 0 THEN (first_answer - first_contact) / 1000
         WHEN abandoned THEN (closed - first_contact) / 1000 END,
    transfer_wait_ms / 1000, handle_ms / 1000,
    CASE WHEN first_answer >= 0 THEN first_answer - first_contact <= sla_target_s * 1000
         WHEN abandoned THEN CASE WHEN closed - first_contact >= $short_ms THEN false END
         WHEN closed >= 0 THEN NULL
         WHEN sla_breached AND status <> 'bot' THEN false END
FROM _b
"""
_INSERT_SEGMENTS = f"""
INSERT INTO segments SELECT tenant, cid, seq, kind, epoch_ms(start), {_ts("end_")},
    CASE WHEN end_ >= 0 THEN (end_ - start) / 1000 END, agent, channel, media_class, queue,
    outcome
FROM _b
"""
_INSERT_ASSIGNMENTS = """
INSERT INTO assignments SELECT tenant, cid, seq, agent, kind, epoch_ms(ts), wait_ms / 1000,
    first_human, score, why, channel, media_class, queue
FROM _b
"""
_INSERT_AGENT_STATES = f"""
INSERT INTO agent_states SELECT tenant, agent, kind, state, epoch_ms(start), {_ts("end_")},
    CASE WHEN end_ >= 0 THEN (end_ - start) / 1000 END
FROM _b
"""
_INSERT_AGENTS = f"""
INSERT INTO agents SELECT tenant, agent, kind, name, profile, skills, {_ts("registered")},
    {_ts("removed")}
FROM _b
"""
_INSERT_CUSTOMERS = """
INSERT INTO customers SELECT tenant, customer_id, source, epoch_ms(first_seen), merged_into
FROM _b
"""
_INSERT_CONTACTS = f"""
INSERT INTO contacts SELECT tenant, channel, address, customer_id, epoch_ms(first_seen),
    {_ts("linked")}
FROM _b
"""


def _views(interval_s: int) -> str:
    """The views' SQL; ``interval_s`` is the reporting interval length."""
    iv = f"INTERVAL {int(interval_s)} SECOND"
    return f"""
CREATE OR REPLACE VIEW projection_info AS
SELECT next_position AS events_projected, epoch_ms(as_of_ms) AS as_of, short_abandon_s,
       interval_s, schema_version, log_fingerprint
FROM _projection_state;

CREATE OR REPLACE VIEW _sla_facts AS
SELECT i.*, first_channel AS channel, time_bucket({iv}, first_contact_at) AS interval_start,
    coalesce(met, CASE WHEN closed_at IS NULL AND first_answer_at IS NULL AND status <> 'bot'
        AND epoch_ms(first_contact_at) + sla_target_s * 1000 < p.as_of_ms THEN false END)
        AS sla_met,
    closed_at IS NULL AND first_answer_at IS NULL AS waiting
FROM interactions i, _projection_state p;

CREATE OR REPLACE VIEW service_level AS
SELECT tenant, channel, queue, interval_start,
    count(*) AS contacts,
    count(*) FILTER (first_answer_at IS NOT NULL) AS answered,
    count(*) FILTER (sla_met) AS met,
    count(sla_met) AS measured,
    count(*) FILTER (abandoned AND NOT short_abandon) AS abandoned,
    count(*) FILTER (short_abandon) AS short_abandoned,
    count(*) FILTER (callback) AS callbacks,
    count(*) FILTER (callback AND sla_met) AS callbacks_met,
    count(*) FILTER (outcome = 'bot_resolved') AS bot_resolved,
    count(*) FILTER (waiting) AS waiting,
    count(*) FILTER (sla_met) / nullif(count(sla_met), 0) AS service_level,
    min(sla_target_s) AS sla_target_s,
    max(sla_target_s) AS sla_target_max_s
FROM _sla_facts GROUP BY ALL;

CREATE OR REPLACE VIEW wait_percentiles AS
SELECT tenant, channel, queue, interval_start,
    count(wait_s) FILTER (first_answer_at IS NOT NULL) AS answered,
    quantile_disc(wait_s, 0.5) FILTER (first_answer_at IS NOT NULL) AS p50_wait_s,
    quantile_disc(wait_s, 0.9) FILTER (first_answer_at IS NOT NULL) AS p90_wait_s,
    quantile_disc(wait_s, 0.99) FILTER (first_answer_at IS NOT NULL) AS p99_wait_s,
    -- waits are whole milliseconds: an integer mean does not depend on row order
    avg(round(wait_s * 1000)::BIGINT) FILTER (first_answer_at IS NOT NULL) / 1000
        AS mean_wait_s,
    max(wait_s) FILTER (first_answer_at IS NOT NULL) AS max_wait_s
FROM _sla_facts GROUP BY ALL;

CREATE OR REPLACE VIEW abandonment AS
SELECT tenant, channel, queue, interval_start,
    count(*) AS contacts,
    count(*) FILTER (abandoned AND NOT short_abandon) AS abandoned,
    count(*) FILTER (short_abandon) AS short_abandoned,
    count(*) FILTER (abandoned AND NOT short_abandon AND wait_s > sla_target_s)
        AS abandoned_after_target,
    count(*) FILTER (abandoned AND NOT short_abandon)
        / nullif(count(*) FILTER (NOT short_abandon), 0) AS abandon_rate,
    quantile_disc(wait_s, 0.5) FILTER (abandoned AND NOT short_abandon) AS p50_abandon_wait_s,
    quantile_disc(wait_s, 0.9) FILTER (abandoned AND NOT short_abandon) AS p90_abandon_wait_s
FROM _sla_facts GROUP BY ALL;

CREATE OR REPLACE VIEW channel_volume AS
SELECT tenant, channel, time_bucket({iv}, first_contact_at) AS interval_start,
    count(*) AS interactions,
    count(*) FILTER (channel = first_channel) AS first_contacts,
    count(*) FILTER (channel <> first_channel) AS joined_later,
    count(*) FILTER (len(channels) > 1) AS multichannel,
    count(*) FILTER (first_answer_at IS NOT NULL) AS answered,
    count(*) FILTER (abandoned) AS abandoned
FROM (SELECT *, unnest(list_distinct(channels)) AS channel FROM interactions)
GROUP BY ALL;

CREATE OR REPLACE VIEW _busy AS
WITH s AS (
    SELECT tenant, agent_id, media_class, start_at,
        coalesce(end_at, (SELECT epoch_ms(as_of_ms) FROM _projection_state)) AS end_at
    FROM segments WHERE kind IN ('agent', 'bot', 'wrap_up') AND agent_id IS NOT NULL
), c AS (
    SELECT * FROM s UNION ALL SELECT tenant, agent_id, 'all', start_at, end_at FROM s
), m AS (
    SELECT *, max(end_at) OVER (PARTITION BY tenant, agent_id, media_class ORDER BY start_at
        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS prev_end
    FROM c
), g AS (
    SELECT *, sum(CASE WHEN prev_end >= start_at THEN 0 ELSE 1 END) OVER (
        PARTITION BY tenant, agent_id, media_class ORDER BY start_at
        ROWS UNBOUNDED PRECEDING) AS island
    FROM m
)
SELECT tenant, agent_id, media_class, min(start_at) AS start_at, max(end_at) AS end_at,
    count(*) AS items
FROM g GROUP BY tenant, agent_id, media_class, island;

CREATE OR REPLACE VIEW occupancy AS
WITH available AS (
    SELECT tenant, agent_id, start_at,
        coalesce(end_at, (SELECT epoch_ms(as_of_ms) FROM _projection_state)) AS end_at
    FROM agent_states WHERE state IN ('available', 'not_responding')
), busy AS (
    SELECT tenant, agent_id, start_at, end_at FROM _busy WHERE media_class = 'all'
), staffed AS (  -- available or holding work: available + busy - (available and busy)
    SELECT tenant, agent_id, start_at, end_at, 1 AS sign FROM available
    UNION ALL SELECT tenant, agent_id, start_at, end_at, 1 FROM busy
    UNION ALL SELECT a.tenant, a.agent_id, greatest(a.start_at, b.start_at),
        least(a.end_at, b.end_at), -1
    FROM available a JOIN busy b ON a.tenant = b.tenant AND a.agent_id = b.agent_id
        AND b.start_at < a.end_at AND a.start_at < b.end_at
), staffed_iv AS (
    SELECT tenant, agent_id, b AS interval_start,
        sum(sign * (epoch(least(end_at, b + {iv})) - epoch(greatest(start_at, b))))
            AS staffed_s
    FROM (SELECT *, unnest(generate_series(time_bucket({iv}, start_at), end_at, {iv})) AS b
          FROM staffed WHERE end_at > start_at)
    WHERE b < end_at GROUP BY ALL
), busy_iv AS (
    SELECT tenant, agent_id, media_class, b AS interval_start,
        sum(epoch(least(end_at, b + {iv})) - epoch(greatest(start_at, b))) AS busy_s
    FROM (SELECT *, unnest(generate_series(time_bucket({iv}, start_at), end_at, {iv})) AS b
          FROM _busy WHERE end_at > start_at)
    WHERE b < end_at GROUP BY ALL
), handle_iv AS (
    SELECT tenant, agent_id, media_class, b AS interval_start,
        sum(epoch(least(end_at, b + {iv})) - epoch(greatest(start_at, b))) AS handle_s,
        count(*) FILTER (kind IN ('agent', 'bot') AND start_at >= b) AS conversations
    FROM (SELECT *, unnest(generate_series(time_bucket({iv}, start_at), end_at, {iv})) AS b
          FROM (SELECT tenant, agent_id, media_class, kind, start_at,
                    coalesce(end_at, (SELECT epoch_ms(as_of_ms) FROM _projection_state))
                        AS end_at
                FROM segments WHERE kind IN ('agent', 'bot') AND agent_id IS NOT NULL)
          WHERE end_at > start_at)
    WHERE b < end_at GROUP BY ALL
), keys AS (
    SELECT tenant, agent_id, media_class, interval_start FROM busy_iv
    UNION SELECT tenant, agent_id, 'all', interval_start FROM staffed_iv
)
SELECT k.tenant, k.agent_id, a.kind AS agent_kind, k.interval_start, k.media_class,
    coalesce(s.staffed_s, 0) AS staffed_s,
    coalesce(b.busy_s, 0) AS busy_s,
    coalesce(h.handle_s, 0) AS handle_s,
    coalesce(h.conversations, 0) AS conversations,
    coalesce(b.busy_s, 0) / nullif(s.staffed_s, 0) AS occupancy
FROM keys k
LEFT JOIN staffed_iv s USING (tenant, agent_id, interval_start)
LEFT JOIN busy_iv b USING (tenant, agent_id, media_class, interval_start)
LEFT JOIN (SELECT * FROM handle_iv UNION ALL
           SELECT tenant, agent_id, 'all', interval_start, sum(handle_s), sum(conversations)
           FROM handle_iv GROUP BY ALL) h USING (tenant, agent_id, media_class, interval_start)
LEFT JOIN agents a USING (tenant, agent_id);

CREATE OR REPLACE VIEW customer_360 AS
WITH resolved AS (
    SELECT i.*, coalesce(c.merged_into, i.customer_id) AS customer
    FROM interactions i LEFT JOIN customers c USING (tenant, customer_id)
), conv AS (
    SELECT tenant, customer,
        count(*) AS interactions,
        list({{'conversation_id': conversation_id, 'channels': channels,
               'queue': queue, 'first_contact_at': first_contact_at,
               'first_answer_at': first_answer_at, 'closed_at': closed_at,
               'status': status, 'outcome': outcome, 'wait_s': wait_s, 'met': met,
               'answered_by': answered_by, 'handled_by': handled_by}}
             ORDER BY first_contact_at, conversation_id) AS conversations,
        list_sort(list_distinct(flatten(list(handled_by)))) AS agents,
        arg_max(last_agent, first_contact_at) FILTER (last_agent IS NOT NULL) AS last_agent,
        arg_max(conversation_id, first_contact_at) FILTER (closed_at IS NULL)
            AS open_conversation,
        list_sort(list_distinct(flatten(list(channels)))) AS channels,
        sum(coalesce(wait_s, CASE WHEN closed_at IS NULL AND first_answer_at IS NULL THEN
            (p.as_of_ms - epoch_ms(first_contact_at)) / 1000 END, 0)
            + transfer_wait_s) AS total_wait_s,
        count(*) FILTER (met = false OR (met IS NULL AND sla_breached)) AS sla_breaches,
        min(first_contact_at) AS first_contact_at,
        max(first_contact_at) AS last_contact_at
    FROM resolved, _projection_state p GROUP BY tenant, customer
), merged AS (
    SELECT tenant, coalesce(merged_into, customer_id) AS customer,
        list(customer_id ORDER BY customer_id) FILTER (merged_into IS NOT NULL) AS merged_ids
    FROM customers GROUP BY ALL
), cont AS (
    SELECT o.tenant, coalesce(cu.merged_into, o.customer_id) AS customer,
        list({{'channel': o.channel, 'address': o.address}} ORDER BY o.channel, o.address)
            AS contacts
    FROM contacts o LEFT JOIN customers cu USING (tenant, customer_id) GROUP BY ALL
)
SELECT cu.tenant, cu.customer_id, cu.source,
    coalesce(cont.contacts, []) AS contacts,
    coalesce(merged.merged_ids, []) AS merged_ids,
    coalesce(conv.interactions, 0) AS interactions,
    coalesce(conv.channels, []) AS channels,
    coalesce(conv.conversations, []) AS conversations,
    coalesce(conv.agents, []) AS agents,
    conv.last_agent, conv.open_conversation,
    coalesce(conv.total_wait_s, 0) AS total_wait_s,
    coalesce(conv.sla_breaches, 0) AS sla_breaches,
    conv.first_contact_at, conv.last_contact_at
FROM customers cu
LEFT JOIN conv ON conv.tenant = cu.tenant AND conv.customer = cu.customer_id
LEFT JOIN merged ON merged.tenant = cu.tenant AND merged.customer = cu.customer_id
LEFT JOIN cont ON cont.tenant = cu.tenant AND cont.customer = cu.customer_id
WHERE cu.merged_into IS NULL;
"""


# --- column batches --------------------------------------------------------------------------


def _column(values: Sequence[Any], kind: str) -> np.ndarray[Any, Any]:
    if kind == "i":
        return np.fromiter(values, dtype=np.int64, count=len(values))
    if kind == "f":
        return np.fromiter(values, dtype=np.float64, count=len(values))
    if kind == "b":
        return np.fromiter(values, dtype=np.bool_, count=len(values))
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


def _columns(spec: str, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Row tuples -> a dict of numpy columns; ``spec`` has one kind letter per column
    (``s`` str/None, ``i`` int64, ``f`` float64, ``b`` bool)."""
    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return {name: _column(col, k) for name, col, k in zip(names, cols, spec, strict=True)}


# --- the projector ---------------------------------------------------------------------------


class Projector:
    """Projects an ``EventLog`` into the DuckDB database at ``path`` (the only writer).

    ``policy`` must be the policy the log was written with: it gives the SLA target of
    conversations that never breached, whether an ended conversation goes to wrap-up,
    and the default capacity profiles. ``short_abandon_s``: abandons sooner than this
    are short abandons, outside the service level and the abandon rate (fixed when the
    database is created). ``interval_s``: the views' reporting interval (can change).

    Use as a context manager, or call :meth:`close`. While it is open no other
    process can open the file, not even read-only (a DuckDB rule).
    """

    _durable: int  # every event before this position is in the database
    _read: int  # the next position to read (the pending group may lie before it)
    _clock: int  # the latest event time folded
    _fingerprint: str | None
    _tenants: dict[str, _Tenant]
    _group_input: Event | None  # an input waiting for its decisions
    _group: list[Event]
    _group_pos: int
    _group_clock: int  # the engine's clock when it took that input

    def __init__(
        self,
        path: str | Path,
        policy: Policy | None = None,
        *,
        short_abandon_s: float = 5.0,
        interval_s: int = 900,
    ) -> None:
        if short_abandon_s < 0:
            raise ValueError(f"short_abandon_s must be >= 0, got {short_abandon_s}")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.path = Path(path)
        self.policy = policy if policy is not None else Policy()
        self.short_abandon_s = float(short_abandon_s)
        self.interval_s = int(interval_s)
        self._failed: BaseException | None = None
        try:
            self._con = duckdb.connect(str(self.path))
        except duckdb.Error as exc:
            raise ProjectionError(f"{self.path}: cannot open for writing: {exc}") from exc
        try:
            self._open()
        except BaseException:
            self._con.close()
            raise

    # --- public API ----------------------------------------------------------------------

    @property
    def position(self) -> int:
        """The next log position to project: every event before it is in the database."""
        return self._durable

    @property
    def as_of(self) -> int:
        """The projection's clock: the latest event time folded (epoch milliseconds)."""
        return self._clock

    def project(
        self, log: EventLog, *, limit: int | None = None, batch_events: int = 200_000
    ) -> ProjectionStats:
        """Fold the log's events from :attr:`position` on; return what was done.

        ``limit`` caps the events read by this call. One transaction per
        ``batch_events`` events. Raises :class:`ProjectionError` when the database was
        projected from a different log, or further than this log's end.
        """
        if batch_events <= 0:
            raise ValueError(f"batch_events must be positive, got {batch_events}")
        if self._con is None:
            raise ProjectionError(f"{self.path}: the projector is closed")
        if self._failed is not None:
            raise ProjectionError(
                f"{self.path}: an earlier write failed ({self._failed}); open a new Projector"
            )
        started = time.perf_counter()
        end = log.end()
        self._check_log(log, end)
        stop = end if limit is None else min(end, self._read + max(limit, 0))
        read = batches = 0
        gc_was_enabled = gc.isenabled()
        gc.disable()  # the fold allocates millions of small objects and frees few
        # one checkpoint at the end rather than one per 16 MB of write-ahead log
        self._con.execute("SET checkpoint_threshold = '256MB'")
        try:
            while True:
                n = min(batch_events, stop - self._read)
                if n > 0:
                    chunk = list(log.read(self._read, n))
                    self._prefetch(chunk)
                    self._fold(chunk)
                    self._read += len(chunk)
                    read += len(chunk)
                at_end = self._read >= end
                if at_end:
                    self._close_group()
                if n > 0 or (at_end and self._durable < end):
                    self._durable = self._read if self._group_pos < 0 else self._group_pos
                    try:
                        self._write()
                    except BaseException as exc:
                        self._failed = exc  # memory is ahead of the database now
                        raise
                    batches += 1
                    _log.debug("%s: projected up to position %d", self.path, self._durable)
                if n <= 0 or self._read >= stop:
                    break
            if batches:
                self._con.execute("CHECKPOINT")
        finally:
            self._con.execute("RESET checkpoint_threshold")
            if gc_was_enabled:
                gc.enable()
        return ProjectionStats(read, self._durable, batches, time.perf_counter() - started)

    def close(self) -> None:
        """Close the database; idempotent."""
        if self._con is not None:
            self._con.close()
            self._con = None  # type: ignore[assignment]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- opening -------------------------------------------------------------------------

    def _open(self) -> None:
        con = self._con
        con.execute("BEGIN")
        con.execute(_SCHEMA)
        row = con.execute(
            "SELECT next_position, as_of_ms, log_fingerprint, short_abandon_s, interval_s, "
            "schema_version FROM _projection_state WHERE id = 0"
        ).fetchone()
        if row is None:
            con.execute(
                "INSERT INTO _projection_state VALUES (0, 0, 0, NULL, ?, ?, ?)",
                [self.short_abandon_s, self.interval_s, SCHEMA_VERSION],
            )
            row = (0, 0, None, self.short_abandon_s, self.interval_s, SCHEMA_VERSION)
        position, as_of, fingerprint, short_abandon_s, interval_s, version = row
        if version != SCHEMA_VERSION:
            con.execute("ROLLBACK")
            raise ProjectionError(
                f"{self.path}: schema version {version}, this omniroute writes "
                f"{SCHEMA_VERSION}; project the log into a new database"
            )
        if short_abandon_s != self.short_abandon_s:
            if position > 0:
                con.execute("ROLLBACK")
                raise ProjectionError(
                    f"{self.path} was projected with short_abandon_s={short_abandon_s:g}, "
                    f"not {self.short_abandon_s:g}; project the log into a new database"
                )
            con.execute("UPDATE _projection_state SET short_abandon_s = ?", [self.short_abandon_s])
        if interval_s != self.interval_s:
            con.execute("UPDATE _projection_state SET interval_s = ?", [self.interval_s])
        con.execute(_views(self.interval_s))
        con.execute("COMMIT")
        self._fingerprint = fingerprint
        self._durable = int(position)
        self._read = int(position)
        self._clock = int(as_of)
        self._tenants = {}
        self._group_input = None
        self._group = []
        self._group_pos = -1
        self._group_clock = self._clock
        # contacts and customers: looked up per batch, cached (None: not in the database)
        self._contacts: dict[tuple[str, str, str], _Contact | None] = {}
        self._customers: dict[tuple[str, str], _Customer | None] = {}
        self._reset_batch()
        for kind, data in con.execute("SELECT kind, data FROM _state").fetchall():
            if kind == "conv":
                c = _conv_codec.decode(data)
                t = self._tenant(c.tenant)
                t.convs[c.cid] = c
                for alias in c.aliases:
                    t.aliases[alias] = c.cid
                if c.ended < 0:
                    t.open_by_customer[c.customer_id] = c.cid
            elif kind == "agent":
                a = _agent_codec.decode(data)
                self._tenant(a.tenant).agents[a.agent_id] = a
            elif kind == "pending":
                p = _pending_codec.decode(data)
                self._tenant(p.tenant).pending[p.cid] = p
        for t in self._tenants.values():  # who holds what follows from the conversations
            for a in t.agents.values():
                a.holding = []
            for c in sorted(t.convs.values(), key=lambda c: (c.first_contact, c.cid)):
                if c.owner is not None:
                    self._agent(c.tenant, c.owner).holding.append(c.cid)

    def _check_log(self, log: EventLog, end: int) -> None:
        if end < self._durable:
            raise ProjectionError(
                f"{self.path} holds {self._durable} projected events but the log has only "
                f"{end}: is it the same log?"
            )
        if end == 0:
            return
        first = next(iter(log.read_raw(0, 1)))[1]
        fingerprint = f"{zlib.crc32(first):08x}"
        if self._fingerprint is None:
            self._fingerprint = fingerprint
        elif self._fingerprint != fingerprint:
            raise ProjectionError(
                f"{self.path} was projected from another log (its first event differs)"
            )

    def _tenant(self, name: str) -> _Tenant:
        t = self._tenants.get(name)
        if t is None:
            t = self._tenants[name] = _Tenant()
        return t

    def _reset_batch(self) -> None:
        self._dirty_convs: list[_Conv] = []
        self._dirty_agents: list[_Agent] = []
        self._dirty_pending: dict[tuple[str, str], _Pending | None] = {}
        self._deleted_pending: list[tuple[str, str]] = []
        self._seg_rows: list[tuple[Any, ...]] = []
        self._assignments: list[tuple[Any, ...]] = []
        self._agent_states: list[tuple[Any, ...]] = []
        self._contacts_dirty: list[_Contact] = []
        self._customers_dirty: list[_Customer] = []

    # --- customers and contacts: looked up per batch ---------------------------------------

    def _prefetch(self, chunk: Sequence[tuple[int, Event]]) -> None:
        """Load the contacts and customers this batch's events name into the caches.

        A contact's own customer (``contact:<channel>:<address>``) is created with the
        contact and found as its owner, so only contacts, the customer ids events name
        and the owners of known contacts are looked up.
        """
        contact_keys: set[tuple[str, str, str]] = set()
        customer_keys: set[tuple[str, str]] = set()
        for t in self._tenants.values():  # arrivals carried over from an earlier batch
            for p in t.pending.values():
                contact_keys.add((p.tenant, p.contact_channel, p.contact_address))
                if p.customer_id:
                    customer_keys.add((p.tenant, p.customer_id))
        carried = [] if self._group_input is None else [(-1, self._group_input)]
        for _, e in itertools.chain(carried, chunk):
            if type(e) is ConversationArrived:
                contact = e.contact
                contact_keys.add((e.tenant, contact.channel, contact.address))
                if e.customer_id:
                    customer_keys.add((e.tenant, e.customer_id))
            elif type(e) is ContactsLinked:
                customer_keys.add((e.tenant, e.customer_id))
                for c in e.contacts:
                    contact_keys.add((e.tenant, c.channel, c.address))
        contact_keys.difference_update(self._contacts)
        if contact_keys:
            rows = self._lookup(
                "SELECT o.tenant, o.channel, o.address, o.customer_id, "
                "epoch_ms(o.first_seen_at), coalesce(epoch_ms(o.linked_at), -1) "
                "FROM contacts o JOIN _k USING (tenant, channel, address)",
                ("tenant", "channel", "address"), contact_keys,
            )  # fmt: skip
            for tenant, channel, address, customer_id, first_seen, linked in rows:
                self._contacts[(tenant, channel, address)] = _Contact(
                    tenant=tenant, channel=channel, address=address, customer_id=customer_id,
                    first_seen=first_seen, linked=linked, stored=True, dirty=False,
                )  # fmt: skip
                customer_keys.add((tenant, customer_id))
            for contact_key in contact_keys:
                self._contacts.setdefault(contact_key, None)
        customer_keys.difference_update(self._customers)
        if customer_keys:
            rows = self._lookup(
                "SELECT u.tenant, u.customer_id, u.source, epoch_ms(u.first_seen_at), "
                "u.merged_into FROM customers u JOIN _k USING (tenant, customer_id)",
                ("tenant", "customer_id"), customer_keys,
            )  # fmt: skip
            for tenant, customer_id, source, first_seen, merged_into in rows:
                self._customers[(tenant, customer_id)] = _Customer(
                    tenant=tenant, customer_id=customer_id, source=source,
                    first_seen=first_seen, merged_into=merged_into, stored=True, dirty=False,
                )  # fmt: skip
            for customer_key in customer_keys:
                self._customers.setdefault(customer_key, None)

    def _lookup(self, sql: str, names: Sequence[str], keys: Iterable[Sequence[str]]) -> list[Any]:
        cols = _columns("s" * len(names), names, list(keys))
        self._con.register("_k", cols)
        try:
            return self._con.execute(sql).fetchall()
        finally:
            self._con.unregister("_k")

    def _customer(self, tenant: str, customer_id: str, source: str, ts: int) -> _Customer:
        key = (tenant, customer_id)
        cu = self._customers.get(key)
        if cu is None:
            cu = _Customer(tenant=tenant, customer_id=customer_id, source=source, first_seen=ts)
            self._customers[key] = cu
            self._customers_dirty.append(cu)
        return cu

    def _customer_changed(self, cu: _Customer) -> None:
        if not cu.dirty:
            cu.dirty = True
            self._customers_dirty.append(cu)

    def _link_contact(self, tenant: str, channel: str, address: str, owner: str, ts: int,
                      linked: bool) -> str | None:  # fmt: skip
        """Make ``owner`` the contact's customer; return the previous owner, if another."""
        key = (tenant, channel, address)
        contact = self._contacts.get(key)
        if contact is None:
            contact = _Contact(
                tenant=tenant, channel=channel, address=address, customer_id=owner,
                first_seen=ts, linked=ts if linked else _NONE,
            )  # fmt: skip
            self._contacts[key] = contact
            self._contacts_dirty.append(contact)
            return None
        previous = contact.customer_id
        if previous == owner:
            return None
        contact.customer_id = owner
        if linked:
            contact.linked = ts
        if not contact.dirty:
            contact.dirty = True
            self._contacts_dirty.append(contact)
        auto = self._customers.get((tenant, previous))
        if auto is not None and previous == f"contact:{channel}:{address}":
            auto.merged_into = owner  # an anonymous contact's history is the owner's now
            self._customer_changed(auto)
        return previous

    def _resolve_customer(self, p: _Pending, ts: int) -> str:
        """The engine's rule: the given id, else the contact's customer, else the contact."""
        tenant = p.tenant
        contact = self._contacts.get((tenant, p.contact_channel, p.contact_address))
        auto = f"contact:{p.contact_channel}:{p.contact_address}"
        if p.customer_id:
            customer_id, source = p.customer_id, "crm"
        elif contact is not None:
            customer_id, source = contact.customer_id, "crm"
        else:
            customer_id, source = auto, "contact"
        if customer_id == auto:
            source = "contact"
        self._customer(tenant, customer_id, source, ts)
        self._link_contact(tenant, p.contact_channel, p.contact_address, customer_id, ts, False)
        return customer_id

    # --- the fold ------------------------------------------------------------------------

    def _fold(self, chunk: Sequence[tuple[int, Event]]) -> None:
        decisions = _DECISIONS
        skipped = _SKIPPED_INPUTS
        handlers = self._decisions
        group = self._group
        for position, e in chunk:
            cls = type(e)
            if cls in decisions:
                if self._group_input is not None:
                    group.append(e)
                    continue
                if e.ts > self._clock:
                    self._clock = e.ts
                handler = handlers.get(cls)
                if handler is not None:
                    handler(self, e, e.ts)
            elif cls in skipped:
                # Nothing of these is projected, and what the engine decided on them
                # follows in the log; their decisions join the previous group, whose
                # input they come after anyway.
                if e.ts > self._clock:
                    self._clock = e.ts
            else:
                if self._group_input is not None:
                    self._close_group()
                    group = self._group
                self._group_input = e
                self._group_pos = position
                self._group_clock = self._clock

    def _close_group(self) -> None:
        """Fold the pending input and its decisions (timer decisions dated earlier first)."""
        e = self._group_input
        if e is None:
            return
        group = self._group
        self._group_input = None
        self._group = []
        self._group_pos = -1
        # the engine's clock when it took the input: skipped inputs after it do not count
        now = self._group_clock if self._group_clock > e.ts else e.ts
        handlers = self._decisions
        i = 0
        n = len(group)
        rejected = False
        if n:
            tag = TAGS[type(e)]
            for d in group:
                if type(d) is EventRejected and d.event_type == tag:
                    rejected = True
            while i < n and group[i].ts < now:
                d = group[i]
                handler = handlers.get(type(d))
                if handler is not None:
                    handler(self, d, d.ts)
                i += 1
        if now > self._clock:
            self._clock = now
        if not rejected:
            handler = self._inputs.get(type(e))
            if handler is not None:
                handler(self, e, now)
        while i < n:
            d = group[i]
            if d.ts > self._clock:
                self._clock = d.ts
            handler = handlers.get(type(d))
            if handler is not None:
                handler(self, d, d.ts)
            i += 1

    # --- helpers -------------------------------------------------------------------------

    def _touch(self, c: _Conv) -> None:
        if not c.dirty:
            c.dirty = True
            self._dirty_convs.append(c)

    def _touch_agent(self, a: _Agent) -> None:
        if not a.dirty:
            a.dirty = True
            self._dirty_agents.append(a)

    def _conv(self, tenant: str, cid: str) -> _Conv | None:
        t = self._tenants.get(tenant)
        if t is None:
            return None
        c = t.convs.get(cid)
        if c is None:
            root = t.aliases.get(cid)
            if root is not None:
                c = t.convs.get(root)
        return c

    def _agent(self, tenant: str, agent_id: str) -> _Agent:
        t = self._tenant(tenant)
        a = t.agents.get(agent_id)
        if a is None:  # a log that starts after the registration
            a = t.agents[agent_id] = _Agent(tenant=tenant, agent_id=agent_id)
        return a

    def _open_seg(self, c: _Conv, kind: str, ts: int, agent: str | None = None) -> _Seg:
        c.nseg += 1
        return _Seg(c.tenant, c.cid, c.nseg, kind, ts, agent, c.channel, c.media_class,
                    c.cur_queue)  # fmt: skip

    def _end_seg(self, c: _Conv, s: _Seg, ts: int, outcome: str) -> None:
        kind = s.kind
        self._seg_rows.append((s.tenant, s.cid, s.seq, kind, s.start, ts, s.agent, s.channel,
                               s.media_class, s.queue, outcome))  # fmt: skip
        if kind == "agent":
            c.handle_ms += ts - s.start
        elif (kind == "queue" or kind == "offer") and 0 <= c.first_answer <= s.start:
            c.transfer_wait_ms += ts - s.start

    def _release(self, c: _Conv, ts: int, outcome: str) -> None:
        """The holder lets go: end their segment and free them."""
        if c.h_seg is not None:
            self._end_seg(c, c.h_seg, ts, outcome)
            c.h_seg = None
        if c.w_seg is not None:
            self._end_seg(c, c.w_seg, ts, outcome)
            c.w_seg = None
        if c.owner is not None:
            a = self._tenant(c.tenant).agents.get(c.owner)
            if a is not None and c.cid in a.holding:
                a.holding.remove(c.cid)
        c.owner = None
        c.owner_bot = False

    def _close(self, c: _Conv, ts: int, outcome: str) -> None:
        """The conversation leaves: end every open segment, drop it from the state."""
        for attr in ("q_seg", "o_seg", "s_seg"):
            s = getattr(c, attr)
            if s is not None:
                self._end_seg(c, s, ts, outcome)
                setattr(c, attr, None)
        self._release(c, ts, outcome)
        c.closed = ts
        c.stage = "closed"
        c.in_queue = False
        c.offer_agent = None
        t = self._tenant(c.tenant)
        t.convs.pop(c.cid, None)
        for alias in c.aliases:
            t.aliases.pop(alias, None)
        if t.open_by_customer.get(c.customer_id) == c.cid:
            del t.open_by_customer[c.customer_id]
        self._touch(c)

    def _set_state(self, a: _Agent, state: str, ts: int) -> None:
        if a.state == state and a.state_start >= 0:
            return
        if a.state_start >= 0:
            self._agent_states.append((a.tenant, a.agent_id, a.kind, a.state, a.state_start, ts))
        a.state = state
        a.state_start = ts
        self._touch_agent(a)

    # --- decisions -----------------------------------------------------------------------

    def _d_queued(self, d: ConversationQueued, ts: int) -> None:
        t = self._tenant(d.tenant)
        reason = d.reason
        c: _Conv | None
        if reason == "arrived" and d.conversation_id not in t.convs:
            c = self._create(t, d, ts)
        else:
            c = t.convs.get(d.conversation_id)
            if c is None:
                return
        c.cur_queue = d.queue
        if reason == "callback":
            c.callback = True
            if c.s_seg is not None:
                self._end_seg(c, c.s_seg, ts, "due")
                c.s_seg = None
        elif (
            reason == "channel_switch"
            and c.stage == "assigned"
            and c.owner is not None
            and not c.transferring
        ):
            self._release(c, ts, "channel_switch")
        c.transferring = False
        c.in_queue = True
        if c.q_seg is None:
            c.q_seg = self._open_seg(c, "queue", ts)
        if c.owner is None:
            c.stage = "offered" if c.offer_agent is not None else "queued"
        self._touch(c)

    def _create(self, t: _Tenant, d: ConversationQueued, ts: int) -> _Conv:
        p = t.pending.pop(d.conversation_id, None)
        if p is None:  # the log starts after the arrival, or the arrival was lost
            p = _Pending(tenant=d.tenant, cid=d.conversation_id, ts=ts, channel="task",
                         contact_channel="task", contact_address=d.conversation_id)  # fmt: skip
        else:
            self._drop_pending(p)
        customer_id = self._resolve_customer(p, p.ts)
        queue = self.policy.queues.get(d.queue, _DEFAULT_QUEUE)
        c = _Conv(
            tenant=d.tenant, cid=d.conversation_id, customer_id=customer_id,
            contact_channel=p.contact_channel, contact_address=p.contact_address,
            channels=[p.channel], channel=p.channel, media_class=_CLASS.get(p.channel, "task"),
            queue=d.queue, cur_queue=d.queue, priority=p.priority, language=p.language,
            first_contact=p.ts, sla_target_s=queue.sla_for(p.channel),  # type: ignore[arg-type]
        )  # fmt: skip
        t.convs[c.cid] = c
        t.open_by_customer[customer_id] = c.cid
        return c

    def _drop_pending(self, p: _Pending) -> None:
        key = (p.tenant, p.cid)
        if p.stored:
            self._deleted_pending.append(key)
            p.stored = False
        self._dirty_pending.pop(key, None)

    def _d_offered(self, d: ConversationOffered, ts: int) -> None:
        c = self._conv(d.tenant, d.conversation_id)
        if c is None:
            return
        c.in_queue = False
        if c.q_seg is not None:
            self._end_seg(c, c.q_seg, ts, "offered")
            c.q_seg = None
        if c.o_seg is not None:
            self._end_seg(c, c.o_seg, ts, "replaced")
        c.o_seg = self._open_seg(c, "offer", ts, d.agent_id)
        if c.first_offer < 0:
            c.first_offer = ts
        c.offer_agent = d.agent_id
        if c.owner is None:
            c.stage = "offered"
        self._touch(c)

    def _d_assigned(self, d: ConversationAssigned, ts: int) -> None:
        c = self._conv(d.tenant, d.conversation_id)
        if c is None:
            return
        agent_id = d.agent_id
        c.in_queue = False
        if c.q_seg is not None:
            self._end_seg(c, c.q_seg, ts, "assigned")
            c.q_seg = None
        if c.o_seg is not None:
            self._end_seg(c, c.o_seg, ts, "accepted" if c.o_seg.agent == agent_id else "withdrawn")
            c.o_seg = None
        if c.owner is not None and c.owner != agent_id:
            self._release(c, ts, "reopened" if c.stage == "wrap_up" else "transferred")
        a = self._agent(d.tenant, agent_id)
        bot = a.kind == "bot"
        if c.h_seg is None:
            c.h_seg = self._open_seg(c, "bot" if bot else "agent", ts, agent_id)
        c.owner = agent_id
        c.owner_bot = bot
        c.stage = "assigned"
        c.offer_agent = None
        c.transferring = False
        if c.cid not in a.holding:
            a.holding.append(c.cid)
        first_human = False
        if bot:
            if c.first_bot < 0:
                c.first_bot = ts
        else:
            if c.first_answer < 0:
                c.first_answer = ts
                c.answered_by = agent_id
                first_human = True
            c.last_agent = agent_id
        if agent_id not in c.handled_by:
            c.handled_by.append(agent_id)
        c.nassign += 1
        self._assignments.append((
            c.tenant, c.cid, c.nassign, agent_id, a.kind, ts, d.wait_ms, first_human,
            d.score, d.why, c.channel, c.media_class, c.cur_queue,
        ))  # fmt: skip
        self._touch(c)

    def _d_offer_expired(self, d: OfferExpired, ts: int) -> None:
        c = self._conv(d.tenant, d.conversation_id)
        if c is None:
            return
        if c.o_seg is not None and c.o_seg.agent == d.agent_id:
            self._end_seg(c, c.o_seg, ts, d.reason)
            c.o_seg = None
        if c.offer_agent == d.agent_id:
            c.offer_agent = None
            if c.owner is None:
                c.stage = "queued"
        self._touch(c)

    def _d_not_responding(self, d: AgentNotResponding, ts: int) -> None:
        a = self._agent(d.tenant, d.agent_id)
        a.responsive = False
        self._touch_agent(a)
        if a.status == "available":
            self._set_state(a, "not_responding", ts)

    def _d_escalated(self, d: ConversationEscalated, ts: int) -> None:
        c = self._conv(d.tenant, d.conversation_id)
        if c is not None:
            c.escalations += 1
            self._touch(c)

    def _d_breached(self, d: SlaBreached, ts: int) -> None:
        c = self._conv(d.tenant, d.conversation_id)
        if c is not None:
            c.sla_breached = True
            c.sla_target_s = d.target_s
            self._touch(c)

    def _d_rejoined(self, d: ConversationRejoined, ts: int) -> None:
        t = self._tenant(d.tenant)
        c = t.convs.get(d.conversation_id)
        p = t.pending.pop(d.new_conversation_id, None)
        if p is not None:
            self._drop_pending(p)
            self._resolve_customer(p, p.ts)
        if c is None:
            return
        c.rejoins += 1
        c.aliases.append(d.new_conversation_id)
        t.aliases[d.new_conversation_id] = c.cid
        if d.channel not in c.channels:
            c.channels.append(d.channel)
        c.channel = d.channel
        new_class = _CLASS.get(d.channel, "task")
        if new_class != c.media_class:
            c.transferring = c.owner is not None and (c.in_queue or c.offer_agent is not None)
            c.media_class = new_class
            if c.stage == "scheduled":
                if c.s_seg is not None:
                    self._end_seg(c, c.s_seg, ts, "rejoined")
                    c.s_seg = None
                c.stage = "queued"
            elif c.stage == "assigned" and c.h_seg is not None:
                old = c.h_seg
                self._end_seg(c, old, ts, "channel_switch")
                c.h_seg = self._open_seg(c, old.kind, ts, old.agent)
        self._touch(c)

    def _d_wrap_expired(self, d: WrapUpExpired, ts: int) -> None:
        c = self._conv(d.tenant, d.conversation_id)
        if c is not None and c.stage == "wrap_up" and c.owner == d.agent_id:
            self._close(c, ts, "expired")

    # --- inputs --------------------------------------------------------------------------

    def _i_registered(self, e: AgentRegistered, ts: int) -> None:
        t = self._tenant(e.tenant)
        a = t.agents.get(e.agent_id)
        if a is not None and a.removed < 0 and a.registered >= 0:
            return
        if a is None:
            a = t.agents[e.agent_id] = _Agent(tenant=e.tenant, agent_id=e.agent_id)
        default = self.policy.bot_profile if e.kind == "bot" else self.policy.human_profile
        a.kind = e.kind
        a.name = e.name
        a.profile = e.capacity_profile or default
        a.skills = _json(e.skills).decode()
        a.registered = ts
        a.removed = _NONE
        a.status = "offline"
        a.responsive = True
        a.holding = []
        a.state_start = _NONE
        self._set_state(a, "offline", ts)

    def _i_updated(self, e: AgentUpdated, ts: int) -> None:
        a = self._agent(e.tenant, e.agent_id)
        if e.skills is not None:
            a.skills = _json(e.skills).decode()
        if e.capacity_profile is not None:
            a.profile = e.capacity_profile
        self._touch_agent(a)

    def _i_status(self, e: AgentStatusChanged, ts: int) -> None:
        a = self._agent(e.tenant, e.agent_id)
        if a.removed >= 0:
            return
        a.status = e.status
        if e.status == "available":
            a.responsive = True
            self._set_state(a, "available", ts)
            return
        self._set_state(a, e.status, ts)
        if e.status == "offline":
            self._hand_back(a, ts, "agent_offline")

    def _i_removed(self, e: AgentRemoved, ts: int) -> None:
        a = self._agent(e.tenant, e.agent_id)
        if a.removed >= 0:
            return
        self._hand_back(a, ts, "agent_removed")
        if a.state_start >= 0:
            self._agent_states.append((a.tenant, a.agent_id, a.kind, a.state, a.state_start, ts))
        a.state = "removed"
        a.state_start = _NONE
        a.status = "offline"
        a.removed = ts
        self._touch_agent(a)

    def _hand_back(self, a: _Agent, ts: int, reason: str) -> None:
        """The agent leaves: what they hold goes back to the queue (wrap-ups just end)."""
        t = self._tenant(a.tenant)
        for cid in list(a.holding):
            c = t.convs.get(cid)
            if c is None or c.owner != a.agent_id:
                continue
            if c.stage == "wrap_up":
                self._close(c, ts, reason)
                continue
            self._release(c, ts, reason)
            c.stage = "offered" if c.offer_agent is not None else "queued"
            self._touch(c)
        a.holding = []

    def _i_arrived(self, e: ConversationArrived, ts: int) -> None:
        t = self._tenant(e.tenant)
        p = _Pending(
            tenant=e.tenant, cid=e.conversation_id, ts=ts, channel=e.channel,
            contact_channel=e.contact.channel, contact_address=e.contact.address,
            customer_id=e.customer_id, priority=e.priority, language=e.language,
        )  # fmt: skip
        old = t.pending.get(e.conversation_id)
        if old is not None:
            self._drop_pending(old)
        t.pending[e.conversation_id] = p
        self._dirty_pending[(e.tenant, e.conversation_id)] = p

    def _i_declined(self, e: OfferDeclined, ts: int) -> None:
        c = self._conv(e.tenant, e.conversation_id)
        if c is None or c.offer_agent != e.agent_id:
            return
        if c.o_seg is not None:
            self._end_seg(c, c.o_seg, ts, "declined")
            c.o_seg = None
        c.offer_agent = None
        if c.owner is None:
            c.stage = "queued"
        self._touch(c)

    def _held(self, tenant: str, cid: str, agent_id: str) -> _Conv | None:
        c = self._conv(tenant, cid)
        if c is None or c.stage != "assigned" or c.owner != agent_id:
            return None
        if c.in_queue or c.offer_agent is not None:
            return None
        return c

    def _i_transfer(self, e: TransferRequested, ts: int) -> None:
        c = self._held(e.tenant, e.conversation_id, e.agent_id)
        if c is None:
            return
        c.transfers += 1
        if e.mode == "cold":
            self._release(c, ts, "transfer")
            c.stage = "queued"
        self._touch(c)

    def _i_handoff(self, e: HandoffRequested, ts: int) -> None:
        c = self._held(e.tenant, e.conversation_id, e.agent_id)
        if c is None:
            return
        c.handoffs += 1
        self._release(c, ts, "handoff")
        c.stage = "queued"
        self._touch(c)

    def _i_ended(self, e: ConversationEnded, ts: int) -> None:
        c = self._conv(e.tenant, e.conversation_id)
        if c is None or c.stage != "assigned" or c.owner is None:
            return
        c.ended = ts
        c.ended_by = e.by
        t = self._tenant(c.tenant)
        if t.open_by_customer.get(c.customer_id) == c.cid:
            del t.open_by_customer[c.customer_id]
        for attr in ("q_seg", "o_seg"):
            s = getattr(c, attr)
            if s is not None:
                self._end_seg(c, s, ts, "ended")
                setattr(c, attr, None)
        c.in_queue = False
        c.offer_agent = None
        wrap_up_s = self.policy.queues.get(c.cur_queue, _DEFAULT_QUEUE).wrap_up_s
        if not c.owner_bot and wrap_up_s > 0:
            if c.h_seg is not None:
                self._end_seg(c, c.h_seg, ts, "ended")
                c.h_seg = None
            c.w_seg = self._open_seg(c, "wrap_up", ts, c.owner)
            c.stage = "wrap_up"
            self._touch(c)
            return
        self._close(c, ts, "ended")

    def _i_wrapped(self, e: WrapUpCompleted, ts: int) -> None:
        c = self._conv(e.tenant, e.conversation_id)
        if c is not None and c.stage == "wrap_up" and c.owner == e.agent_id:
            self._close(c, ts, "completed")

    def _i_abandoned(self, e: CustomerAbandoned, ts: int) -> None:
        c = self._conv(e.tenant, e.conversation_id)
        if c is None or c.owner is not None:
            return
        c.abandoned = True
        self._close(c, ts, "abandoned")

    def _i_callback(self, e: CallbackRequested, ts: int) -> None:
        c = self._conv(e.tenant, e.conversation_id)
        if c is None or c.stage != "queued" or c.owner is not None:
            return
        c.callback = True
        c.media_class = "task"
        if c.q_seg is not None:
            self._end_seg(c, c.q_seg, ts, "callback")
            c.q_seg = None
        if e.not_before is not None and e.not_before > ts:
            c.stage = "scheduled"
            c.in_queue = False
            c.s_seg = self._open_seg(c, "scheduled", ts)
        self._touch(c)

    def _i_linked(self, e: ContactsLinked, ts: int) -> None:
        if not e.customer_id or not e.contacts:
            return
        tenant = e.tenant
        t = self._tenant(tenant)
        owner = e.customer_id
        cu = self._customer(tenant, owner, "crm", ts)
        if cu.merged_into is not None:  # it names itself: it is a customer of its own again
            cu.merged_into = None
            self._customer_changed(cu)
        for contact in e.contacts:
            previous = self._link_contact(tenant, contact.channel, contact.address, owner, ts, True)
            if previous is None:
                continue
            moving = t.open_by_customer.get(previous)
            if moving is not None and owner not in t.open_by_customer:
                del t.open_by_customer[previous]
                t.open_by_customer[owner] = moving
                c = t.convs.get(moving)
                if c is not None:
                    c.customer_id = owner
                    self._touch(c)

    _decisions: dict[type, Callable[[Projector, Any, int], None]] = {
        ConversationQueued: _d_queued,
        ConversationOffered: _d_offered,
        ConversationAssigned: _d_assigned,
        OfferExpired: _d_offer_expired,
        AgentNotResponding: _d_not_responding,
        ConversationEscalated: _d_escalated,
        SlaBreached: _d_breached,
        ConversationRejoined: _d_rejoined,
        WrapUpExpired: _d_wrap_expired,
    }
    _inputs: dict[type, Callable[[Projector, Any, int], None]] = {
        AgentRegistered: _i_registered,
        AgentUpdated: _i_updated,
        AgentStatusChanged: _i_status,
        AgentRemoved: _i_removed,
        ConversationArrived: _i_arrived,
        OfferDeclined: _i_declined,
        TransferRequested: _i_transfer,
        HandoffRequested: _i_handoff,
        ConversationEnded: _i_ended,
        WrapUpCompleted: _i_wrapped,
        CustomerAbandoned: _i_abandoned,
        CallbackRequested: _i_callback,
        ContactsLinked: _i_linked,
    }

    # --- writing ---------------------------------------------------------------------------

    def _prune_pending(self) -> None:
        """Forget arrivals no decision took up within an hour (the engine dropped them)."""
        horizon = self._clock - _PENDING_MAX_MS
        for t in self._tenants.values():
            for p in [p for p in t.pending.values() if p.ts < horizon]:
                del t.pending[p.cid]
                self._drop_pending(p)

    def _write(self) -> None:
        """One transaction: replace what changed, append what is new, move the position."""
        self._prune_pending()
        con = self._con
        convs = self._dirty_convs
        agents = self._dirty_agents
        open_convs = [c for c in convs if c.closed < 0]
        stale_convs = [(c.tenant, c.cid, c.first_contact) for c in convs if c.stored]
        stale_agents = [(a.tenant, a.agent_id) for a in agents if a.stored]
        contacts = self._contacts_dirty
        customers = self._customers_dirty
        pending = [p for p in self._dirty_pending.values() if p is not None]
        stale_pending = self._deleted_pending + [(p.tenant, p.cid) for p in pending if p.stored]
        segs = self._seg_rows
        for c in open_convs:
            segs.extend(
                (s.tenant, s.cid, s.seq, s.kind, s.start, _NONE, s.agent, s.channel,
                 s.media_class, s.queue, None)
                for s in (c.q_seg, c.o_seg, c.h_seg, c.w_seg, c.s_seg)
                if s is not None
            )  # fmt: skip
        states = self._agent_states
        states.extend(
            (a.tenant, a.agent_id, a.kind, a.state, a.state_start, _NONE)
            for a in agents
            if a.state_start >= 0
        )
        con.execute("BEGIN")
        try:
            if stale_convs:
                first = min(k[2] for k in stale_convs)
                con.register("_k", _columns("ssi", ("tenant", "cid", "first"), stale_convs))
                con.execute(
                    "DELETE FROM interactions t USING _k WHERE t.tenant = _k.tenant "
                    "AND t.conversation_id = _k.cid AND t.first_contact_at = epoch_ms(_k.first) "
                    f"AND t.first_contact_at >= epoch_ms({first})"
                )
                con.execute(
                    "DELETE FROM segments t USING _k WHERE t.tenant = _k.tenant "
                    "AND t.conversation_id = _k.cid AND t.end_at IS NULL "
                    f"AND t.start_at >= epoch_ms({first})"
                )
                con.unregister("_k")
                self._delete_state("conv", [k[:2] for k in stale_convs])
            if stale_agents:
                self._delete("agents", ("tenant", "agent_id"), stale_agents)
                self._delete("agent_states", ("tenant", "agent_id"), stale_agents,
                             "AND t.end_at IS NULL")  # fmt: skip
                self._delete_state("agent", stale_agents)
            if stale_pending:
                self._delete_state("pending", stale_pending)
            stored_contacts = [(c.tenant, c.channel, c.address) for c in contacts if c.stored]
            if stored_contacts:
                self._delete("contacts", ("tenant", "channel", "address"), stored_contacts)
            stored_customers = [(c.tenant, c.customer_id) for c in customers if c.stored]
            if stored_customers:
                self._delete("customers", ("tenant", "customer_id"), stored_customers)
            self._insert_interactions(convs)
            self._insert_segments(segs)
            self._insert(
                _INSERT_ASSIGNMENTS, "ssissiibfssss",
                ("tenant", "cid", "seq", "agent", "kind", "ts", "wait_ms", "first_human",
                 "score", "why", "channel", "media_class", "queue"),
                [(*r[:8], r[8] if r[8] is not None else float("nan"), *r[9:])
                 for r in self._assignments],
            )  # fmt: skip
            self._insert(
                _INSERT_AGENT_STATES, "ssssii",
                ("tenant", "agent", "kind", "state", "start", "end_"), states,
            )  # fmt: skip
            self._insert(
                _INSERT_AGENTS, "ssssssii",
                ("tenant", "agent", "kind", "name", "profile", "skills", "registered",
                 "removed"),
                [(a.tenant, a.agent_id, a.kind, a.name, a.profile, a.skills, a.registered,
                  a.removed) for a in agents],
            )  # fmt: skip
            self._insert(
                _INSERT_CUSTOMERS, "sssis",
                ("tenant", "customer_id", "source", "first_seen", "merged_into"),
                [(c.tenant, c.customer_id, c.source, c.first_seen, c.merged_into)
                 for c in customers],
            )  # fmt: skip
            self._insert(
                _INSERT_CONTACTS, "ssssii",
                ("tenant", "channel", "address", "customer_id", "first_seen", "linked"),
                [(c.tenant, c.channel, c.address, c.customer_id, c.first_seen, c.linked)
                 for c in contacts],
            )  # fmt: skip
            for c in open_convs:
                c.stored = True
                c.dirty = False
            for a in agents:
                a.stored = True
                a.dirty = False
            for p in pending:
                p.stored = True
            for ct in contacts:
                ct.stored = True
                ct.dirty = False
            for cu in customers:
                cu.stored = True
                cu.dirty = False
            state_rows: list[tuple[str, str, str, bytes]] = [
                ("conv", c.tenant, c.cid, _encode(c)) for c in open_convs
            ]
            state_rows += [("agent", a.tenant, a.agent_id, _encode(a)) for a in agents]
            state_rows += [("pending", p.tenant, p.cid, _encode(p)) for p in pending]
            if state_rows:
                self._con.register(
                    "_b", _columns("ssss", ("kind", "tenant", "key", "data"), state_rows)
                )
                con.execute("INSERT INTO _state SELECT kind, tenant, key, data::BLOB FROM _b")
                con.unregister("_b")
            con.execute(
                "UPDATE _projection_state SET next_position = ?, as_of_ms = ?, "
                "log_fingerprint = ? WHERE id = 0",
                [
                    self._durable,
                    self._group_clock if self._group_input is not None else self._clock,
                    self._fingerprint,
                ],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        for c in convs:
            c.dirty = False
        if len(self._contacts) + len(self._customers) > _CACHE_MAX:
            self._contacts.clear()
            self._customers.clear()
        self._reset_batch()

    def _delete(
        self, table: str, names: Sequence[str], keys: Sequence[Sequence[str]], extra: str = ""
    ) -> None:
        self._con.register("_k", _columns("s" * len(names), names, keys))
        match = " AND ".join(f"t.{n} = _k.{n}" for n in names)
        self._con.execute(f"DELETE FROM {table} t USING _k WHERE {match} {extra}")
        self._con.unregister("_k")

    def _delete_state(self, kind: str, keys: Sequence[tuple[str, str]]) -> None:
        self._con.register("_k", _columns("ss", ("tenant", "key"), keys))
        self._con.execute(
            "DELETE FROM _state t USING _k WHERE t.kind = ? AND t.tenant = _k.tenant "
            "AND t.key = _k.key",
            [kind],
        )
        self._con.unregister("_k")

    def _insert(
        self, sql: str, spec: str, names: Sequence[str], rows: Sequence[Sequence[Any]],
        params: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        if not rows:
            return
        self._con.register("_b", _columns(spec, names, rows))
        try:
            self._con.execute(sql, params)
        finally:
            self._con.unregister("_b")

    def _insert_interactions(self, convs: Sequence[_Conv]) -> None:
        if not convs:
            return
        rows = [
            (
                c.tenant, c.cid, c.customer_id, c.contact_channel, c.contact_address,
                c.channels[0], _SEP.join(c.channels), c.channel, c.queue, c.cur_queue,
                c.priority, c.language, c.first_contact, c.first_offer, c.first_bot,
                c.first_answer, c.answered_by, _SEP.join(c.handled_by), c.last_agent,
                c.ended, c.closed, c.ended_by,
                "closed" if c.closed >= 0 else "bot" if c.owner_bot else c.stage,
                (
                    "open" if c.closed < 0 else "abandoned" if c.abandoned
                    else "answered" if c.first_answer >= 0
                    else "bot_resolved" if c.first_bot >= 0 else "unanswered"
                ),
                c.transfers, c.handoffs, c.rejoins, c.escalations, c.abandoned, c.callback,
                c.sla_target_s, c.sla_breached, c.transfer_wait_ms, c.handle_ms,
            )
            for c in convs
        ]  # fmt: skip
        self._insert(
            _INSERT_INTERACTIONS, "ssssssssssisiiiisssiisssiiiibbfbii",
            ("tenant", "cid", "customer_id", "contact_channel", "contact_address",
             "first_channel", "channels", "channel", "queue", "cur_queue", "priority",
             "language", "first_contact", "first_offer", "first_bot", "first_answer",
             "answered_by", "handled_by", "last_agent", "ended", "closed", "ended_by",
             "status", "outcome", "transfers", "handoffs", "rejoins", "escalations",
             "abandoned", "callback", "sla_target_s", "sla_breached", "transfer_wait_ms",
             "handle_ms"),
            rows, {"short_ms": round(self.short_abandon_s * 1000)},
        )  # fmt: skip

    def _insert_segments(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._insert(
            _INSERT_SEGMENTS, "ssisiisssss",
            ("tenant", "cid", "seq", "kind", "start", "end_", "agent", "channel",
             "media_class", "queue", "outcome"),
            rows,
        )  # fmt: skip


def project(
    log: EventLog,
    path: str | Path,
    policy: Policy | None = None,
    *,
    short_abandon_s: float = 5.0,
    interval_s: int = 900,
    batch_events: int = 200_000,
) -> ProjectionStats:
    """Project ``log`` into the database at ``path`` (created if missing), then close it."""
    with Projector(
        path, policy, short_abandon_s=short_abandon_s, interval_s=interval_s
    ) as projector:
        return projector.project(log, batch_events=batch_events)


def connect_readonly(path: str | Path, *, timeout_s: float = 10.0) -> duckdb.DuckDBPyConnection:
    """A read-only connection to a projection database, with no file-system access.

    While the writer has the file open DuckDB refuses other processes; this retries
    until ``timeout_s`` has passed. Raises :class:`ProjectionError` if the file is not
    there, is not a projection, or stays locked.
    """
    p = Path(path)
    if not p.exists():
        raise ProjectionError(f"{p}: no such database (create it with `omniroute project`)")
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            con = duckdb.connect(str(p), read_only=True, config={"enable_external_access": False})
            break
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise ProjectionError(f"{p}: cannot open read-only: {exc}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
        except duckdb.Error as exc:
            raise ProjectionError(f"{p}: cannot open read-only: {exc}") from exc
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "_projection_state" not in tables:
        con.close()
        raise ProjectionError(f"{p}: not an omniroute projection database")
    return con
