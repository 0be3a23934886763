"""The SQL text of :func:`.live.live_state`, and :func:`rows` to run it.

Every query reads the projection's tables and views (:mod:`.schema`) and takes named
parameters: ``$as_of`` and ``$day`` (naive UTC TIMESTAMPs: the projection's clock and
the start of its day), ``$window_s`` (the expected-wait departures window, seconds),
``$tenant``, ``$queue`` and ``$channel`` (NULL: any). :func:`rows` passes each query
the parameters it names.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import duckdb

__all__ = [
    "AGENTS_SQL",
    "BREACHES_SQL",
    "HELD_SQL",
    "LEVELS_SQL",
    "LIVE_SQL",
    "LOAD_SQL",
    "TODAY_SQL",
    "rows",
    "utc",
]

# the open conversations, their legs and where each stands (the CTEs both live reads share)
_OPEN = """
open_conv AS (  -- each open conversation and the queue it is routed in now (the fold's)
    SELECT tenant, conversation_id, first_contact_at, ended_at, last_queue AS queue
    FROM interactions WHERE closed_at IS NULL AND ($tenant IS NULL OR tenant = $tenant)
), open_legs AS (
    SELECT l.* FROM legs l JOIN open_conv c ON c.tenant = l.tenant
        AND c.conversation_id = l.conversation_id
        AND c.first_contact_at = l.conversation_started_at
), open_seg AS (  -- where each open conversation stands: its open segments
    SELECT tenant, conversation_id,
        any_value(agent_id) FILTER (kind IN ('agent', 'bot')) AS holder,
        bool_or(kind = 'bot') AS bot_holder,
        bool_or(kind = 'offer') AS offered,
        bool_or(kind = 'scheduled') AS scheduled
    FROM segments WHERE end_at IS NULL AND ($tenant IS NULL OR tenant = $tenant)
    GROUP BY ALL
)"""

LIVE_SQL = f"""
WITH {_OPEN},
live AS (
    SELECT l.tenant, c.queue, l.channel, l.conversation_id, l.started_at, l.served_at,
        c.first_contact_at, s.offered,
        CASE WHEN s.holder IS NOT NULL
                  AND (CASE WHEN s.bot_holder THEN l.bot_served ELSE l.served_at IS NOT NULL END)
             THEN CASE WHEN s.bot_holder THEN 'bot' ELSE 'human' END
             WHEN coalesce(s.scheduled, false) THEN 'scheduled'
             ELSE 'waiting' END AS state
    FROM open_legs l
    JOIN open_conv c ON c.tenant = l.tenant AND c.conversation_id = l.conversation_id
    LEFT JOIN open_seg s ON s.tenant = l.tenant AND s.conversation_id = l.conversation_id
    WHERE l.ended_at IS NULL
        AND ($queue IS NULL OR c.queue = $queue)
        AND ($channel IS NULL OR l.channel = $channel)
), released AS (  -- when a human last let go of a waiting conversation answered before
    SELECT g.tenant, g.conversation_id, max(g.end_at) AS released_at
    FROM segments g
    JOIN (SELECT DISTINCT tenant, conversation_id, first_contact_at FROM live
          WHERE state = 'waiting' AND served_at IS NOT NULL) w
        ON w.tenant = g.tenant AND w.conversation_id = g.conversation_id
        AND g.start_at >= w.first_contact_at
    WHERE g.kind = 'agent' AND g.end_at IS NOT NULL
    GROUP BY ALL
)
SELECT v.tenant, v.queue, v.channel,
    count(*) FILTER (state = 'waiting') AS waiting,
    min(CASE WHEN v.served_at IS NULL THEN v.started_at
             ELSE greatest(v.started_at, coalesce(r.released_at, v.served_at)) END)
        FILTER (state = 'waiting') AS wait_from,
    count(*) FILTER (state = 'waiting' AND offered) AS offered,
    count(*) FILTER (state = 'human') AS handling
FROM live v LEFT JOIN released r USING (tenant, conversation_id)
GROUP BY ALL
"""

TODAY_SQL = """
SELECT tenant, queue, channel,
    count(*) FILTER (today) AS contacts,
    count(*) FILTER (today AND outcome = 'answered') AS answered,
    count(*) FILTER (today AND outcome = 'abandoned') AS abandoned,
    count(*) FILTER (today AND outcome = 'short_abandoned') AS short_abandoned,
    count(*) FILTER (today AND sla_met) AS met,
    count(sla_met) FILTER (today) AS measured,
    count(*) FILTER (started_at > $as_of - INTERVAL 15 MINUTE AND sla_met) AS met_15m,
    count(sla_met) FILTER (started_at > $as_of - INTERVAL 15 MINUTE) AS measured_15m,
    count(*) FILTER (started_at > $as_of - INTERVAL 60 MINUTE AND sla_met) AS met_60m,
    count(sla_met) FILTER (started_at > $as_of - INTERVAL 60 MINUTE) AS measured_60m,
    count(*) FILTER (outcome = 'abandoned' AND ended_at > $as_of - INTERVAL 15 MINUTE)
        AS abandoned_15m,
    count(*) FILTER (outcome = 'abandoned' AND ended_at > $as_of - INTERVAL 60 MINUTE)
        AS abandoned_60m,
    count(*) FILTER (served_at > $as_of - to_seconds($window_s) OR (served_at IS NULL
        AND ended_by = 'abandoned' AND ended_at > $as_of - to_seconds($window_s)))
        AS departures
FROM (SELECT *, started_at >= $day AS today FROM _sla_facts
      WHERE (started_at >= least($day, $as_of - INTERVAL 60 MINUTE)
             OR ended_at > $as_of - INTERVAL 60 MINUTE
             OR served_at > $as_of - to_seconds($window_s))
          AND ($tenant IS NULL OR tenant = $tenant)
          AND ($queue IS NULL OR queue = $queue)
          AND ($channel IS NULL OR channel = $channel))
GROUP BY ALL
"""

LOAD_SQL = """
WITH present AS (
    SELECT s.tenant, s.agent_id FROM agent_states s
    JOIN agents a USING (tenant, agent_id)
    WHERE s.end_at IS NULL AND s.state <> 'offline' AND a.removed_at IS NULL
), staffed AS (
    SELECT a.tenant, a.queue, a.channel, count(DISTINCT a.agent_id) AS agents
    FROM assignments a JOIN present p USING (tenant, agent_id)
    WHERE a.agent_kind = 'human' AND a.assigned_at > $as_of - INTERVAL 1 HOUR
        AND ($tenant IS NULL OR a.tenant = $tenant)
        AND ($queue IS NULL OR a.queue = $queue)
        AND ($channel IS NULL OR a.channel = $channel)
    GROUP BY ALL
), handled AS (
    SELECT tenant, queue, channel, avg(duration_s) AS mean_handle_s
    FROM segments
    WHERE kind = 'agent' AND end_at > $as_of - INTERVAL 1 HOUR
        AND ($tenant IS NULL OR tenant = $tenant)
        AND ($queue IS NULL OR queue = $queue)
        AND ($channel IS NULL OR channel = $channel)
    GROUP BY ALL
)
SELECT tenant, queue, channel, coalesce(s.agents, 0) AS agents, h.mean_handle_s
FROM staffed s FULL JOIN handled h USING (tenant, queue, channel)
"""

AGENTS_SQL = """
SELECT a.tenant, a.agent_id, a.name, a.kind, a.profile, a.skills, s.state, s.start_at
FROM agents a
JOIN agent_states s ON s.tenant = a.tenant AND s.agent_id = a.agent_id AND s.end_at IS NULL
WHERE a.removed_at IS NULL AND ($tenant IS NULL OR a.tenant = $tenant)
"""

# one row per (agent, conversation held): its role, its legs (class, start, end, taken
# on by its holder), the customer's messages, the last assignment
HELD_SQL = f"""
WITH {_OPEN},
held AS (
    SELECT g.tenant, g.agent_id, g.conversation_id, c.first_contact_at, c.ended_at, c.queue,
        CASE g.kind WHEN 'offer' THEN 'offer' WHEN 'wrap_up' THEN 'wrap_up'
             ELSE 'owner' END AS role,
        s.bot_holder AS bot
    FROM segments g
    JOIN open_conv c ON c.tenant = g.tenant AND c.conversation_id = g.conversation_id
    JOIN open_seg s ON s.tenant = g.tenant AND s.conversation_id = g.conversation_id
    WHERE g.end_at IS NULL AND g.kind IN ('offer', 'agent', 'bot', 'wrap_up')
        AND g.agent_id IS NOT NULL
), leg_rows AS (
    SELECT h.tenant, h.agent_id, h.conversation_id, h.role,
        list({{'cls': l.media_class, 'channel': l.channel, 'start': l.started_at,
               'end': l.ended_at,
               'taken': coalesce(CASE WHEN h.bot THEN l.bot_served
                                      ELSE l.served_at IS NOT NULL END, false)}}
             ORDER BY l.seq) AS legs
    FROM held h JOIN open_legs l ON l.tenant = h.tenant
        AND l.conversation_id = h.conversation_id
    GROUP BY ALL
), assigned AS (
    SELECT a.tenant, a.conversation_id, max(a.assigned_at) AS assigned_at,
        any_value(h.first_contact_at) AS first_contact_at
    FROM assignments a JOIN (SELECT DISTINCT tenant, conversation_id, first_contact_at
                             FROM held WHERE role <> 'offer') h
        ON h.tenant = a.tenant AND h.conversation_id = a.conversation_id
        AND a.assigned_at >= h.first_contact_at
    GROUP BY ALL
), messages AS (  -- the customer's messages since the assignment
    SELECT r.tenant, r.conversation_id, list(DISTINCT r.message_at) AS messages
    FROM replies r JOIN assigned h
        ON h.tenant = r.tenant AND h.conversation_id = r.conversation_id
        AND r.conversation_started_at = h.first_contact_at AND r.message_at > h.assigned_at
    GROUP BY ALL
)
SELECT h.tenant, h.agent_id, h.conversation_id, h.role, h.queue, h.ended_at,
    coalesce(g.legs, []) AS legs, coalesce(m.messages, []) AS messages, s.assigned_at
FROM held h
LEFT JOIN leg_rows g USING (tenant, agent_id, conversation_id, role)
LEFT JOIN messages m USING (tenant, conversation_id)
LEFT JOIN assigned s USING (tenant, conversation_id)
"""

BREACHES_SQL = """
SELECT * FROM (
    SELECT tenant, conversation_id, first_channel AS channel, queue,
        first_contact_at + to_milliseconds(round(sla_target_s * 1000)::BIGINT) AS breach_at,
        coalesce(wait_s, (epoch_ms($as_of) - epoch_ms(first_contact_at)) / 1000) AS waited_s
    FROM interactions
    WHERE sla_breached AND ($tenant IS NULL OR tenant = $tenant)
        AND ($queue IS NULL OR queue = $queue)
        AND ($channel IS NULL OR first_channel = $channel))
WHERE breach_at > $as_of - INTERVAL 1 HOUR AND breach_at <= $as_of
"""

LEVELS_SQL = """
SELECT tenant, channel, interval_start, sum(contacts)::BIGINT AS contacts,
    sum(met) / nullif(sum(measured), 0) AS service_level
FROM service_level
WHERE interval_start >= $day AND ($tenant IS NULL OR tenant = $tenant)
    AND ($queue IS NULL OR queue = $queue)
    AND ($channel IS NULL OR channel = $channel)
GROUP BY ALL
"""


_PARAMS = ("as_of", "day", "tenant", "queue", "channel", "window_s")


def rows(
    con: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts, given those of ``params`` it names."""
    names = {name for name in _PARAMS if f"${name}" in sql}
    cur = con.execute(sql, {k: v for k, v in params.items() if k in names})
    cols = [d[0] for d in cur.description or ()]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]


def utc(value: dt.datetime) -> dt.datetime:
    """A naive UTC timestamp from DuckDB as an aware datetime."""
    return value.replace(tzinfo=dt.UTC)
