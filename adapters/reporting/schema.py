"""The projection database's schema, as SQL text: tables, views and the inserts.

Tables: ``interactions`` (one row per conversation, a rejoined contact included, with
its legs), ``legs`` (one row per contact: each channel leg of a conversation, its outcome
as :mod:`.conversations` says), ``replies`` (one row per customer message of an
asynchronous contact, the contact itself first: the time to the next agent message,
``outcome`` ``replied``, ``unreplied`` when the leg ended first, ``waiting`` while it is
live), ``segments`` (each station of the journey: ``queue``,
``offer``, ``bot``, ``agent``, ``wrap_up``, and ``scheduled`` for a callback waiting for
its time), ``assignments``, ``agent_states`` (status intervals), ``agents``,
``customers``, ``contacts``; and the writer's own: ``_projection_state`` (the
settings, the events projected and the clock ``as_of``: the latest event time of every
source), ``_sources`` (each log projected: the log of all tenants ``*``, or one tenant's
log, with its position and clock) and ``_state`` (the fold's open records, msgpack).
Views: ``service_level``, ``wait_percentiles``, ``reply_times``, ``abandonment``,
``occupancy``, ``customer_360``, ``channel_volume`` and ``projection_info``. Each
:class:`Insert` takes the fold's row tuples, registered as the numpy columns ``_b``,
into its table; its SQL derives what follows from the row (timestamps, lists, waits,
whether the target was met).

Honest metrics (DESIGN.md §7). The service level, abandonment and wait views count
contacts, that is legs: each under its own channel and in exactly one outcome
(answered, unreplied, abandoned, short_abandoned, bot_resolved, unanswered, open), so
per channel the outcomes sum to the contacts, and contacts = conversations + rejoins. A
contact's wait runs from it to its answer (``answered_at``); a conversation's (and its
first leg's) from the customer's first contact (bot time, transfers, callbacks
included). The answer is the first assignment to a *human* (``served_at``), but for an
asynchronous contact (messaging, email, social: ``asynchronous``) the first human reply
(``replied_at``): one taken on but never replied to is ``unreplied``, not met, its wait
running to its end (a conversation follows its first contact's rule, ``first_reply_at``;
``first_answer_at`` stays its first human assignment); a callback is measured by that
true wait; an abandon after ``short_abandon_s`` counts as not met (shorter ones are
reported as short abandons, outside the rate); a contact still waiting past its target at the
projection's clock (``as_of``, the latest event time) counts as not met; every channel
has its own SLA target (a conversation's from the engine's ``SlaBreached`` when it
breached, else from the policy). A contact resolved by a bot without a human is
reported as ``bot_resolved``, outside the service level. Percentiles are nearest-rank
(``quantile_disc``). Occupancy is busy time (holding a conversation) over staffed time
(available, or busy: work finished after going on a break counts on both sides), so it
never exceeds 100 %.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AGENTS",
    "AGENT_STATES",
    "ASSIGNMENTS",
    "CONTACTS",
    "CUSTOMERS",
    "INTERACTIONS",
    "LEGS",
    "REPLIES",
    "SCHEMA_VERSION",
    "SEGMENTS",
    "TABLES",
    "TABLES_SQL",
    "VIEWS",
    "Insert",
    "views_sql",
]

SCHEMA_VERSION = 4
TABLES = (
    "interactions", "legs", "replies", "segments", "assignments", "agent_states", "agents",
    "customers", "contacts",
)  # fmt: skip
"""The projected tables, in the order they are written."""
VIEWS = (
    "service_level", "wait_percentiles", "reply_times", "abandonment", "occupancy",
    "customer_360", "channel_volume", "projection_info",
)  # fmt: skip
"""The SQL views over the tables."""


@dataclass(frozen=True)
class Insert:
    """How the fold's row tuples go into a table: ``names`` of the tuple's fields, one
    kind letter per field in ``spec`` (``s`` str/None, ``i`` int64, ``f`` float64,
    ``b`` bool), and the ``sql`` that reads them from ``_b``."""

    sql: str
    spec: str
    names: tuple[str, ...]


TABLES_SQL = """
CREATE TABLE IF NOT EXISTS _projection_state (
    id INTEGER PRIMARY KEY, next_position BIGINT NOT NULL, as_of_ms BIGINT NOT NULL,
    short_abandon_s DOUBLE NOT NULL, interval_s INTEGER NOT NULL,
    schema_version INTEGER NOT NULL, addresses VARCHAR NOT NULL, key_check VARCHAR);
CREATE TABLE IF NOT EXISTS _sources (
    source VARCHAR PRIMARY KEY, next_position BIGINT NOT NULL, as_of_ms BIGINT NOT NULL,
    log_fingerprint VARCHAR);
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
    handle_s DOUBLE, met BOOLEAN, legs INTEGER, leg_ids VARCHAR[],
    asynchronous BOOLEAN, first_reply_at TIMESTAMP, replied_by VARCHAR);
CREATE TABLE IF NOT EXISTS legs (
    tenant VARCHAR NOT NULL, conversation_id VARCHAR NOT NULL,
    conversation_started_at TIMESTAMP, seq INTEGER, leg_id VARCHAR, rejoin BOOLEAN,
    channel VARCHAR, media_class VARCHAR, queue VARCHAR, customer_id VARCHAR,
    started_at TIMESTAMP, served_at TIMESTAMP, served_by VARCHAR, bot_served BOOLEAN,
    ended_at TIMESTAMP, ended_by VARCHAR, outcome VARCHAR, callback BOOLEAN,
    sla_target_s DOUBLE, wait_s DOUBLE, met BOOLEAN,
    asynchronous BOOLEAN, replied_at TIMESTAMP, replied_by VARCHAR, answered_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS replies (
    tenant VARCHAR NOT NULL, conversation_id VARCHAR NOT NULL,
    conversation_started_at TIMESTAMP, leg_id VARCHAR, seq INTEGER, channel VARCHAR,
    queue VARCHAR, started_at TIMESTAMP, message_at TIMESTAMP, reply_at TIMESTAMP,
    reply_s DOUBLE, replied_by VARCHAR, outcome VARCHAR);
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
"""The tables, created if missing."""


def _ts(col: str) -> str:
    return f"CASE WHEN {col} >= 0 THEN epoch_ms({col}) END"


def _list(col: str) -> str:
    return f"CASE WHEN {col} = '' THEN []::VARCHAR[] ELSE string_split({col}, chr(31)) END"


_INSERT_INTERACTIONS_SQL = f"""
INSERT INTO interactions SELECT
    tenant, cid, customer_id, contact_channel, contact_address,
    first_channel, {_list("channels")}, channel, queue, cur_queue, priority, language,
    epoch_ms(first_contact), {_ts("first_offer")}, {_ts("first_bot")}, {_ts("first_answer")},
    answered_by, {_list("handled_by")}, last_agent,
    {_ts("ended")}, {_ts("closed")}, ended_by, status, outcome,
    transfers, handoffs, rejoins, escalations,
    abandoned, abandoned AND closed - first_contact < $short_ms, callback,
    sla_target_s, sla_breached,
    CASE WHEN answer >= 0 THEN (answer - first_contact) / 1000
         WHEN abandoned THEN (closed - first_contact) / 1000
         WHEN outcome = 'unreplied' THEN (greatest(ended, closed) - first_contact) / 1000 END,
    transfer_wait_ms / 1000, handle_ms / 1000,
    CASE WHEN answer >= 0 THEN answer - first_contact <= sla_target_s * 1000
         WHEN abandoned THEN CASE WHEN closed - first_contact >= $short_ms THEN false END
         WHEN outcome = 'unreplied' THEN false
         WHEN closed >= 0 THEN NULL
         WHEN sla_breached AND status <> 'bot' THEN false END,
    legs, {_list("leg_ids")}, asynchronous, {_ts("first_reply")}, replied_by
FROM _b
"""
INTERACTIONS = Insert(
    _INSERT_INTERACTIONS_SQL, "ssssssssssisiiiisssiisssiiiibbfbiiisbisi",
    ("tenant", "cid", "customer_id", "contact_channel", "contact_address",
     "first_channel", "channels", "channel", "queue", "cur_queue", "priority",
     "language", "first_contact", "first_offer", "first_bot", "first_answer",
     "answered_by", "handled_by", "last_agent", "ended", "closed", "ended_by",
     "status", "outcome", "transfers", "handoffs", "rejoins", "escalations",
     "abandoned", "callback", "sla_target_s", "sla_breached", "transfer_wait_ms",
     "handle_ms", "legs", "leg_ids", "asynchronous", "first_reply", "replied_by", "answer"),
)  # fmt: skip
_INSERT_LEGS_SQL = f"""
INSERT INTO legs SELECT tenant, cid, epoch_ms(first_contact), seq, leg_id, seq > 1, channel,
    media_class, queue, customer_id, epoch_ms(started), {_ts("served")}, served_by, bot,
    {_ts("ended")}, ended_by,
    CASE WHEN outcome = 'abandoned' AND ended - started < $short_ms THEN 'short_abandoned'
         ELSE outcome END,
    callback, sla_target_s,
    CASE WHEN answer >= 0 THEN (answer - started) / 1000
         WHEN outcome IN ('abandoned', 'unreplied') THEN (ended - started) / 1000 END,
    CASE WHEN answer >= 0 THEN answer - started <= sla_target_s * 1000
         WHEN outcome = 'abandoned' AND ended - started >= $short_ms THEN false
         WHEN outcome = 'unreplied' THEN false END,
    asynchronous, {_ts("replied")}, replied_by, {_ts("answer")}
FROM _b
"""
LEGS = Insert(
    _INSERT_LEGS_SQL, "ssiisssssiisbissbfbisi",
    ("tenant", "cid", "first_contact", "seq", "leg_id", "channel", "media_class", "queue",
     "customer_id", "started", "served", "served_by", "bot", "ended", "ended_by", "outcome",
     "callback", "sla_target_s", "asynchronous", "replied", "replied_by", "answer"),
)  # fmt: skip
_INSERT_REPLIES_SQL = f"""
INSERT INTO replies SELECT tenant, cid, epoch_ms(first_contact), leg_id, seq, channel, queue,
    epoch_ms(started), epoch_ms(message), {_ts("reply")},
    CASE WHEN reply >= 0 THEN (reply - message) / 1000 END, replied_by, outcome
FROM _b
"""
REPLIES = Insert(
    _INSERT_REPLIES_SQL, "ssisissiiiss",
    ("tenant", "cid", "first_contact", "leg_id", "seq", "channel", "queue", "started",
     "message", "reply", "replied_by", "outcome"),
)  # fmt: skip
_INSERT_SEGMENTS_SQL = f"""
INSERT INTO segments SELECT tenant, cid, seq, kind, epoch_ms(start), {_ts("end_")},
    CASE WHEN end_ >= 0 THEN (end_ - start) / 1000 END, agent, channel, media_class, queue,
    outcome
FROM _b
"""
SEGMENTS = Insert(
    _INSERT_SEGMENTS_SQL, "ssisiisssss",
    ("tenant", "cid", "seq", "kind", "start", "end_", "agent", "channel",
     "media_class", "queue", "outcome"),
)  # fmt: skip
_INSERT_ASSIGNMENTS_SQL = """
INSERT INTO assignments SELECT tenant, cid, seq, agent, kind, epoch_ms(ts), wait_ms / 1000,
    first_human, score, why, channel, media_class, queue
FROM _b
"""
ASSIGNMENTS = Insert(
    _INSERT_ASSIGNMENTS_SQL, "ssissiibfssss",
    ("tenant", "cid", "seq", "agent", "kind", "ts", "wait_ms", "first_human",
     "score", "why", "channel", "media_class", "queue"),
)  # fmt: skip
_INSERT_AGENT_STATES_SQL = f"""
INSERT INTO agent_states SELECT tenant, agent, kind, state, epoch_ms(start), {_ts("end_")},
    CASE WHEN end_ >= 0 THEN (end_ - start) / 1000 END
FROM _b
"""
AGENT_STATES = Insert(
    _INSERT_AGENT_STATES_SQL, "ssssii",
    ("tenant", "agent", "kind", "state", "start", "end_"),
)  # fmt: skip
_INSERT_AGENTS_SQL = f"""
INSERT INTO agents SELECT tenant, agent, kind, name, profile, skills, {_ts("registered")},
    {_ts("removed")}
FROM _b
"""
AGENTS = Insert(
    _INSERT_AGENTS_SQL, "ssssssii",
    ("tenant", "agent", "kind", "name", "profile", "skills", "registered",
     "removed"),
)  # fmt: skip
_INSERT_CUSTOMERS_SQL = """
INSERT INTO customers SELECT tenant, customer_id, source, epoch_ms(first_seen), merged_into
FROM _b
"""
CUSTOMERS = Insert(
    _INSERT_CUSTOMERS_SQL, "sssis",
    ("tenant", "customer_id", "source", "first_seen", "merged_into"),
)  # fmt: skip
_INSERT_CONTACTS_SQL = f"""
INSERT INTO contacts SELECT tenant, channel, address, customer_id, epoch_ms(first_seen),
    {_ts("linked")}
FROM _b
"""
CONTACTS = Insert(
    _INSERT_CONTACTS_SQL, "ssssii",
    ("tenant", "channel", "address", "customer_id", "first_seen", "linked"),
)  # fmt: skip


def views_sql(interval_s: int) -> str:
    """The views' SQL; ``interval_s`` is the reporting interval length."""
    iv = f"INTERVAL {int(interval_s)} SECOND"
    return f"""
CREATE OR REPLACE VIEW projection_info AS
SELECT next_position AS events_projected, epoch_ms(as_of_ms) AS as_of, short_abandon_s,
       interval_s, schema_version, addresses,
       (SELECT string_agg(log_fingerprint, ',' ORDER BY source) FROM _sources)
           AS log_fingerprint,
       (SELECT list(source ORDER BY source) FROM _sources) AS sources
FROM _projection_state;

-- one row per contact (leg); a live leg no human serves yet counts as not met once
-- it waited past its target (unless a bot serves it)
CREATE OR REPLACE VIEW _sla_facts AS
SELECT l.*, time_bucket({iv}, started_at) AS interval_start,
    coalesce(met, CASE WHEN outcome = 'open' AND NOT bot_served
        AND epoch_ms(started_at) + sla_target_s * 1000 < p.as_of_ms THEN false END)
        AS sla_met
FROM legs l, _projection_state p;

CREATE OR REPLACE VIEW service_level AS
SELECT tenant, channel, queue, interval_start,
    count(*) AS contacts,
    count(*) FILTER (outcome = 'answered') AS answered,
    count(*) FILTER (outcome = 'unreplied') AS unreplied,
    count(*) FILTER (sla_met) AS met,
    count(*) FILTER (NOT sla_met) AS not_met,
    count(sla_met) AS measured,
    count(*) FILTER (outcome = 'abandoned') AS abandoned,
    count(*) FILTER (outcome = 'short_abandoned') AS short_abandoned,
    count(*) FILTER (outcome = 'bot_resolved') AS bot_resolved,
    count(*) FILTER (outcome = 'unanswered') AS unanswered,
    count(*) FILTER (outcome = 'open') AS open,
    count(*) FILTER (rejoin) AS rejoins,
    count(*) FILTER (callback) AS callbacks,
    count(*) FILTER (callback AND sla_met) AS callbacks_met,
    count(*) FILTER (sla_met) / nullif(count(sla_met), 0) AS service_level,
    min(sla_target_s) AS sla_target_s,
    max(sla_target_s) AS sla_target_max_s
FROM _sla_facts GROUP BY ALL;

-- the wait to the answer: the first reply for an asynchronous channel
CREATE OR REPLACE VIEW wait_percentiles AS
SELECT tenant, channel, queue, interval_start, bool_and(asynchronous) AS first_reply,
    count(wait_s) FILTER (answered_at IS NOT NULL) AS answered,
    quantile_disc(wait_s, 0.5) FILTER (answered_at IS NOT NULL) AS p50_wait_s,
    quantile_disc(wait_s, 0.9) FILTER (answered_at IS NOT NULL) AS p90_wait_s,
    quantile_disc(wait_s, 0.99) FILTER (answered_at IS NOT NULL) AS p99_wait_s,
    -- waits are whole milliseconds: an integer mean does not depend on row order
    avg(round(wait_s * 1000)::BIGINT) FILTER (answered_at IS NOT NULL) / 1000
        AS mean_wait_s,
    max(wait_s) FILTER (answered_at IS NOT NULL) AS max_wait_s
FROM _sla_facts GROUP BY ALL;

-- each customer message of an asynchronous contact: the time to the next agent message
CREATE OR REPLACE VIEW reply_times AS
SELECT tenant, channel, queue, time_bucket({iv}, started_at) AS interval_start,
    count(*) AS messages,
    count(*) FILTER (outcome = 'replied') AS replied,
    count(*) FILTER (outcome = 'unreplied') AS unreplied,
    count(*) FILTER (outcome = 'waiting') AS waiting,
    quantile_disc(reply_s, 0.5) AS p50_reply_s,
    quantile_disc(reply_s, 0.9) AS p90_reply_s,
    quantile_disc(reply_s, 0.99) AS p99_reply_s,
    max(reply_s) AS max_reply_s
FROM replies GROUP BY ALL;

CREATE OR REPLACE VIEW abandonment AS
SELECT tenant, channel, queue, interval_start,
    count(*) AS contacts,
    count(*) FILTER (outcome = 'abandoned') AS abandoned,
    count(*) FILTER (outcome = 'short_abandoned') AS short_abandoned,
    count(*) FILTER (outcome = 'abandoned' AND wait_s > sla_target_s)
        AS abandoned_after_target,
    count(*) FILTER (outcome = 'abandoned')
        / nullif(count(*) FILTER (outcome <> 'short_abandoned'), 0) AS abandon_rate,
    quantile_disc(wait_s, 0.5) FILTER (outcome = 'abandoned') AS p50_abandon_wait_s,
    quantile_disc(wait_s, 0.9) FILTER (outcome = 'abandoned') AS p90_abandon_wait_s
FROM _sla_facts GROUP BY ALL;

CREATE OR REPLACE VIEW channel_volume AS
SELECT tenant, channel, time_bucket({iv}, first_contact_at) AS interval_start,
    count(*) AS interactions,
    count(*) FILTER (channel = first_channel) AS first_contacts,
    count(*) FILTER (channel <> first_channel) AS joined_later,
    count(*) FILTER (len(channels) > 1) AS multichannel,
    count(*) FILTER (outcome = 'answered') AS answered,
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
WITH leg_lists AS (
    SELECT tenant, conversation_id, conversation_started_at,
        list({{'leg_id': leg_id, 'channel': channel, 'started_at': started_at,
               'served_at': served_at, 'served_by': served_by, 'ended_at': ended_at,
               'ended_by': ended_by, 'outcome': outcome, 'wait_s': wait_s, 'met': met,
               'asynchronous': asynchronous, 'replied_at': replied_at}}
             ORDER BY seq) AS legs
    FROM legs GROUP BY ALL
), resolved AS (
    SELECT i.* EXCLUDE (legs), coalesce(g.legs, []) AS legs,
        coalesce(c.merged_into, i.customer_id) AS customer
    FROM interactions i LEFT JOIN customers c USING (tenant, customer_id)
    LEFT JOIN leg_lists g ON g.tenant = i.tenant AND g.conversation_id = i.conversation_id
        AND g.conversation_started_at = i.first_contact_at
), conv AS (
    SELECT tenant, customer,
        count(*) AS interactions,
        list({{'conversation_id': conversation_id, 'channels': channels,
               'queue': queue, 'first_contact_at': first_contact_at,
               'first_answer_at': first_answer_at, 'closed_at': closed_at,
               'status': status, 'outcome': outcome, 'wait_s': wait_s, 'met': met,
               'asynchronous': asynchronous, 'first_reply_at': first_reply_at,
               'answered_by': answered_by, 'handled_by': handled_by, 'legs': legs}}
             ORDER BY first_contact_at, conversation_id) AS conversations,
        list_sort(list_distinct(flatten(list(handled_by)))) AS agents,
        arg_max(last_agent, first_contact_at) FILTER (last_agent IS NOT NULL) AS last_agent,
        arg_max(conversation_id, first_contact_at) FILTER (closed_at IS NULL)
            AS open_conversation,
        list_sort(list_distinct(flatten(list(channels)))) AS channels,
        sum(coalesce(wait_s, CASE WHEN closed_at IS NULL AND outcome = 'open' THEN
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
