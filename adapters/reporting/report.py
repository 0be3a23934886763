"""Reports over a projection database: service level, waits, agents, the customer 360.

Everything here takes a DuckDB connection to a database written by
:class:`~.writer.Projector` (open it with :func:`~.writer.connect_readonly`) and returns
a :class:`~.table.Table` or a plain dict, which :mod:`.table` renders. ``omniroute
report``, ``sql``, ``export`` and ``customer`` are thin wrappers.

The definitions are those of the projection (DESIGN.md §7): waits from first contact to
the first human answer, abandons after the short-abandon threshold and conversations
still waiting past their target count as not met, callbacks by their true wait,
nearest-rank percentiles.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

from omniroute.engine.events import CHANNELS

from .privacy import AddressHasher
from .schema import TABLES
from .table import Column, Kind, Table, format_cell, format_seconds, format_table, jsonable
from .writer import ProjectionError

__all__ = [
    "DIMENSIONS",
    "OUTCOMES",
    "ReportError",
    "agent_report",
    "customer_view",
    "export_parquet",
    "format_customer",
    "projection_info",
    "run_sql",
    "service_report",
]

DIMENSIONS = ("channel", "queue", "interval")
"""What :func:`service_report` can group by (the tenant is always a group)."""


class ReportError(ProjectionError):
    """A report cannot be made (unknown customer, refused statement, bad argument)."""


# --- queries ---------------------------------------------------------------------------------


_INFO = ("events_projected", "as_of", "short_abandon_s", "interval_s", "schema_version",
         "addresses", "sources")  # fmt: skip


def projection_info(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Events projected, the projection clock ``as_of``, short-abandon and interval, the
    schema version, how contact addresses are stored (``plain`` or ``hmac-sha256``) and
    the sources (``*``: one log of all tenants; else the tenants' own logs)."""
    row = con.execute(f"SELECT {', '.join(_INFO)} FROM projection_info").fetchone()
    if row is None:
        raise ReportError("the database holds no projection state")
    return dict(zip(_INFO, row, strict=True))


def _window(since: dt.datetime | None, until: dt.datetime | None, col: str) -> str:
    parts = []
    if since is not None:
        parts.append(f"{col} >= TIMESTAMP '{since.isoformat(sep=' ')}'")
    if until is not None:
        parts.append(f"{col} < TIMESTAMP '{until.isoformat(sep=' ')}'")
    return " AND ".join(parts) if parts else "true"


def _check_window(since: dt.datetime | None, until: dt.datetime | None) -> None:
    for value in (since, until):
        if value is not None and value.tzinfo is not None:
            raise ReportError("since/until must be naive UTC datetimes")
    if since is not None and until is not None and until <= since:
        raise ReportError(f"until ({until}) must be after since ({since})")


OUTCOMES = (
    "answered", "unreplied", "abandoned", "short_abandoned", "bot_resolved", "unanswered",
    "open",
)  # fmt: skip
"""The outcomes of a contact (a leg): each is in exactly one."""
_SERVICE_COLUMNS = [
    Column("contacts", "contacts", "int"),
    Column("answered", "answered", "int"),
    Column("unreplied", "unreplied", "int"),
    Column("abandoned", "abandoned", "int"),
    Column("short_abandoned", "short ab.", "int"),
    Column("bot_resolved", "bot only", "int"),
    Column("unanswered", "unanswered", "int"),
    Column("open", "open", "int"),
    Column("rejoins", "rejoins", "int"),
    Column("met", "in SLA", "int"),
    Column("not_met", "not met", "int"),
    Column("measured", "measured", "int", brief=False),
    Column("service_level", "SL", "pct"),
    Column("abandon_rate", "ab. rate", "pct"),
    Column("callbacks", "callbacks", "int"),
    Column("p50_wait_s", "p50 wait", "secs"),
    Column("p90_wait_s", "p90 wait", "secs"),
    Column("p99_wait_s", "p99 wait", "secs"),
    Column("mean_wait_s", "mean wait", "secs", brief=False),
    Column("max_wait_s", "max wait", "secs", brief=False),
    Column("p50_first_reply_s", "p50 first reply", "secs"),
    Column("p90_first_reply_s", "p90 first reply", "secs"),
    Column("p99_first_reply_s", "p99 first reply", "secs"),
    Column("mean_first_reply_s", "mean first reply", "secs", brief=False),
    Column("max_first_reply_s", "max first reply", "secs", brief=False),
    Column("messages", "messages", "int", brief=False),
    Column("messages_unreplied", "msgs unreplied", "int", brief=False),
    Column("p50_reply_s", "p50 reply", "secs"),
    Column("p90_reply_s", "p90 reply", "secs"),
    Column("p99_reply_s", "p99 reply", "secs"),
    Column("sla_target_s", "target", "secs"),
]
_COUNTS = ("contacts", *OUTCOMES, "rejoins", "met", "not_met", "measured", "service_level",
           "abandon_rate", "callbacks")  # fmt: skip
_Q = "[0.5, 0.9, 0.99]"


def _spread_sql(value: str, where: str, name: str) -> str:
    """Nearest-rank p50/p90/p99, mean and max of ``value`` over the rows ``where``."""
    return (
        f"quantile_disc({value}, {_Q}) FILTER ({where}) AS q_{name}, "
        # waits are whole milliseconds: an integer mean does not depend on row order
        f"avg(round({value} * 1000)::BIGINT) FILTER ({where}) / 1000 AS mean_{name}_s, "
        f"max({value}) FILTER ({where}) AS max_{name}_s"
    )


def _grouped(
    con: duckdb.DuckDBPyConnection, source: str, dims: list[str], iv: int, aggregates: str
) -> dict[tuple[Any, ...], dict[str, Any]]:
    """``aggregates`` of ``source`` per tenant and ``dims`` and per tenant (grouping
    sets), keyed by (tenant, the dims' values, whether the row is the tenant's total)."""
    exprs = {
        "channel": "channel",
        "queue": "queue",
        "interval": f"time_bucket(INTERVAL {iv} SECOND, started_at)",
    }
    keys = ["tenant", *(f"d_{d}" for d in dims)]
    group = ", ".join(keys)
    inner = "".join(f", {exprs[d]} AS d_{d}" for d in dims)
    sets = f"GROUPING SETS (({group}), (tenant))" if dims else "tenant"
    cur = con.execute(
        f"SELECT {group}, {aggregates}, grouping({group}) AS g "
        f"FROM (SELECT *{inner} FROM {source}) GROUP BY {sets}"
    )
    names = [d[0] for d in cur.description]
    out = {}
    for row in cur.fetchall():
        r = dict(zip(names, row, strict=True))
        out[(*row[: len(keys)], bool(r["g"]) and bool(dims))] = r
    return out


def service_report(
    con: duckdb.DuckDBPyConnection,
    by: Sequence[str] = ("channel",),
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    interval_s: int | None = None,
) -> Table:
    """Service level, abandonment, waits and reply times per tenant and ``by`` dimensions.

    Rows count contacts (legs: a rejoin is a contact of its own channel), each in
    exactly one of :data:`OUTCOMES`; the notes say how contacts and conversations
    reconcile. Waits (to the human answer) are those of the real-time contacts; first
    replies those of the asynchronous ones (messaging, email, social), which the SLA
    measures at the first reply; reply times are each customer message's time to the
    next agent message on its asynchronous contact. ``by`` is a subset of
    :data:`DIMENSIONS` (``()`` for tenant totals); each tenant also gets an ``all`` row.
    ``since``/``until`` (naive UTC) filter by contact. ``interval_s`` overrides the
    database's reporting interval for ``interval``.
    """
    dims = list(dict.fromkeys(by))
    for d in dims:
        if d not in DIMENSIONS:
            raise ReportError(f"cannot group by {d!r}; choose from {', '.join(DIMENSIONS)}")
    _check_window(since, until)
    if interval_s is not None and interval_s <= 0:
        raise ReportError(f"the interval must be positive, got {interval_s} s")
    info = projection_info(con)
    iv = int(interval_s or info["interval_s"])
    window = _window(since, until, "started_at")
    answered = "answered_at IS NOT NULL"
    facts = _grouped(con, f"_sla_facts WHERE {window}", dims, iv, f"""
        count(*) AS contacts,
        {", ".join(f"count(*) FILTER (outcome = '{o}') AS {o}" for o in OUTCOMES)},
        count(*) FILTER (rejoin) AS rejoins,
        count(*) FILTER (sla_met) AS met,
        count(*) FILTER (NOT sla_met) AS not_met,
        count(sla_met) AS measured,
        count(*) FILTER (sla_met) / nullif(count(sla_met), 0) AS service_level,
        count(*) FILTER (outcome = 'abandoned')
            / nullif(count(*) FILTER (outcome <> 'short_abandoned'), 0) AS abandon_rate,
        count(*) FILTER (callback) AS callbacks,
        {_spread_sql("wait_s", f"{answered} AND NOT asynchronous", "wait")},
        {_spread_sql("wait_s", f"{answered} AND asynchronous", "first_reply")},
        min(sla_target_s) AS target_lo, max(sla_target_s) AS target_hi
    """)  # fmt: skip
    replies = _grouped(con, f"replies WHERE {window}", dims, iv, f"""
        count(*) AS messages,
        count(*) FILTER (outcome = 'unreplied') AS messages_unreplied,
        quantile_disc(reply_s, {_Q}) AS q_reply
    """)  # fmt: skip

    def sort_key(key: tuple[Any, ...]) -> tuple[Any, ...]:
        parts: list[Any] = [key[0], key[-1]]
        for d, value in zip(dims, key[1:-1], strict=True):
            if d == "channel":
                parts.append(CHANNELS.index(value) if value in CHANNELS else len(CHANNELS))
            parts.append((value is None, value))
        return tuple(parts)

    out: list[tuple[Any, ...]] = []
    for key in sorted(facts, key=sort_key):
        r, m = facts[key], replies.get(key, {})
        shown = [key[0], *key[1:-1]]
        if key[-1]:  # the tenant's total row
            shown[1:] = ["all"] + [""] * (len(dims) - 1)
        wait, first, reply = (r["q_wait"] or [None] * 3, r["q_first_reply"] or [None] * 3,
                              m.get("q_reply") or [None] * 3)  # fmt: skip
        target = r["target_lo"] if r["target_lo"] == r["target_hi"] else None
        out.append((
            *shown, *(r[c] for c in _COUNTS), *wait, r["mean_wait_s"], r["max_wait_s"],
            *first, r["mean_first_reply_s"], r["max_first_reply_s"],
            m.get("messages", 0), m.get("messages_unreplied", 0), *reply, target,
        ))  # fmt: skip
    dim_cols = [Column(d, d, "time" if d == "interval" else "text") for d in dims]
    columns = [Column("tenant", "tenant"), *dim_cols, *_SERVICE_COLUMNS]
    short = float(info["short_abandon_s"])
    title = "service level" + (f" by {', '.join(dims)}" if dims else "")
    if "interval" in dims:
        title += f" ({format_seconds(iv)} intervals)"
    totals = [r for k, r in facts.items() if k[-1] or not dims]
    contacts = sum(t["contacts"] for t in totals)
    rejoins = sum(t["rejoins"] for t in totals)
    split = " + ".join(f"{sum(t[o] for t in totals):,}" for o in OUTCOMES)
    notes = [
        f"as of {format_cell(info['as_of'], 'time')}Z ({info['events_projected']} events). "
        f"{contacts:,} contacts = {contacts - rejoins:,} conversations + {rejoins:,} rejoins",
        "(a customer's new contact joining their open conversation: a leg of it, counted "
        "under its own channel).",
        "Each contact is in one outcome: answered + unreplied + abandoned + short ab. (under "
        f"{short:g}s) + bot only + unanswered + open = contacts ({split}).",
        "Wait: contact -> first human answer (the first contact's includes bot time, "
        "transfers and callbacks), for calls, video, chat and tasks.",
        "First reply: contact -> the agent's first reply, for messaging, email and social, "
        "whose SL is measured there:",
        "unreplied = taken on by an agent but ended without a reply (not met). Reply: each "
        "customer message -> the next agent message.",
        f"SL = in SLA / measured; measured = answered + unreplied + abandoned after {short:g}s "
        "+ still waiting past target;",
        "short abandons and bot-only contacts are outside it. target '-': the group mixes "
        "targets; each contact is measured against its own.",
    ]
    return Table(title, columns, out, notes)


_AGENT_COLUMNS = [
    Column("tenant", "tenant"),
    Column("agent_id", "agent"),
    Column("name", "name"),
    Column("kind", "kind"),
    Column("offers", "offers", "int"),
    Column("declined", "declined", "int"),
    Column("missed", "missed", "int"),
    Column("assignments", "assigned", "int"),
    Column("answered", "answered", "int"),
    Column("p50_handle_s", "p50 handle", "secs"),
    Column("p90_handle_s", "p90 handle", "secs"),
    Column("p50_wrap_up_s", "p50 wrap", "secs"),
    Column("staffed_s", "staffed", "secs"),
    Column("busy_s", "busy", "secs"),
    Column("occupancy", "occupancy", "pct"),
]


def agent_report(
    con: duckdb.DuckDBPyConnection,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
) -> Table:
    """Per agent: offers, declines, misses, assignments, handle and wrap-up times,
    staffed and busy time and occupancy (busy / staffed, all media classes)."""
    _check_window(since, until)
    seg = _window(since, until, "start_at")
    sql = f"""
        WITH o AS (
            SELECT tenant, agent_id, count(*) AS offers,
                count(*) FILTER (outcome = 'declined') AS declined,
                count(*) FILTER (outcome = 'timeout') AS missed
            FROM segments WHERE kind = 'offer' AND {seg} GROUP BY ALL
        ), a AS (
            SELECT tenant, agent_id, count(*) AS assignments,
                count(*) FILTER (first_human) AS answered
            FROM assignments WHERE {_window(since, until, "assigned_at")} GROUP BY ALL
        ), h AS (
            SELECT tenant, agent_id, quantile_disc(duration_s, [0.5, 0.9]) AS q
            FROM segments WHERE kind IN ('agent', 'bot') AND end_at IS NOT NULL AND {seg}
            GROUP BY ALL
        ), w AS (
            SELECT tenant, agent_id, quantile_disc(duration_s, 0.5) AS p50
            FROM segments WHERE kind = 'wrap_up' AND end_at IS NOT NULL AND {seg}
            GROUP BY ALL
        ), occ AS (
            SELECT tenant, agent_id, sum(staffed_s) AS staffed_s, sum(busy_s) AS busy_s
            FROM occupancy WHERE media_class = 'all'
                AND {_window(since, until, "interval_start")}
            GROUP BY ALL
        )
        SELECT g.tenant, g.agent_id, g.name, g.kind,
            coalesce(o.offers, 0), coalesce(o.declined, 0), coalesce(o.missed, 0),
            coalesce(a.assignments, 0), coalesce(a.answered, 0), h.q[1], h.q[2], w.p50,
            coalesce(occ.staffed_s, 0), coalesce(occ.busy_s, 0),
            occ.busy_s / nullif(occ.staffed_s, 0)
        FROM agents g
        LEFT JOIN o USING (tenant, agent_id) LEFT JOIN a USING (tenant, agent_id)
        LEFT JOIN h USING (tenant, agent_id) LEFT JOIN w USING (tenant, agent_id)
        LEFT JOIN occ USING (tenant, agent_id)
        ORDER BY g.tenant, g.kind DESC, g.agent_id
    """
    rows = con.execute(sql).fetchall()
    notes = [
        "occupancy = time holding at least one conversation (handling or wrap-up) / time "
        "staffed: available, or holding work (a call finished after going on a break is "
        "worked time); an agent not responding to offers is available but idle."
    ]
    return Table("agents", list(_AGENT_COLUMNS), rows, notes)


def customer_view(
    con: duckdb.DuckDBPyConnection,
    customer: str,
    tenant: str | None = None,
    *,
    hasher: AddressHasher | None = None,
) -> dict[str, Any]:
    """The ``customer_360`` row of one customer, as a dict.

    ``customer`` may be a customer id, an id merged into another (a contact's own id,
    ``contact:<channel>:<address>``) or a contact address (in a database that stores
    them hashed, give the ``hasher`` of its key). Raises :class:`ReportError` when
    nothing matches, or when it matches in several tenants and ``tenant`` is None.
    """
    cond = "tenant = $tenant" if tenant is not None else "true"
    ocond = "o.tenant = $tenant" if tenant is not None else "true"
    address = hasher.address(customer) if hasher is not None else customer
    params: dict[str, Any] = {"id": customer, "address": address}
    if tenant is not None:
        params["tenant"] = tenant
    found = con.execute(
        f"""
        SELECT DISTINCT tenant, coalesce(merged_into, customer_id) FROM customers
        WHERE customer_id = $id AND {cond}
        UNION
        SELECT DISTINCT o.tenant, coalesce(u.merged_into, o.customer_id)
        FROM contacts o LEFT JOIN customers u USING (tenant, customer_id)
        WHERE o.address = $address AND {ocond}
        """,
        params,
    ).fetchall()
    if not found:
        raise ReportError(f"no customer, merged id or contact address {customer!r}")
    if len(found) > 1:
        shown = ", ".join(f"{t}/{c}" for t, c in sorted(found))
        raise ReportError(f"{customer!r} matches several customers ({shown}); pass --tenant")
    ((t, c),) = found
    cur = con.execute("SELECT * FROM customer_360 WHERE tenant = ? AND customer_id = ?", [t, c])
    names = [d[0] for d in cur.description]
    row = cur.fetchone()
    if row is None:  # pragma: no cover - customers and customer_360 agree
        raise ReportError(f"customer {c!r} is not in customer_360")
    return dict(zip(names, row, strict=True))


def _wait_or_reply(row: dict[str, Any]) -> tuple[Any, Any]:
    """(wait, first reply) of a conversation or leg: a written one (messaging, email,
    social) is answered by the first reply (none while unreplied), the others by the
    wait."""
    if row["asynchronous"]:
        return None, row["wait_s"] if row["outcome"] == "answered" else None
    return row["wait_s"], None


def format_customer(view: dict[str, Any]) -> list[str]:
    """The customer 360 as readable lines; a written conversation or leg shows the time
    to its first reply where the others show their wait."""
    contacts = "; ".join(f"{c['channel']} {c['address']}" for c in view["contacts"]) or "-"
    lines = [
        f"customer {view['customer_id']} (tenant {view['tenant']}, {view['source']})",
        f"  contacts: {contacts}",
    ]
    if view["merged_ids"]:
        lines.append(f"  merged from: {', '.join(view['merged_ids'])}")
    lines += [
        f"  interactions: {view['interactions']} (channels: "
        f"{', '.join(view['channels']) or '-'}); open conversation: "
        f"{view['open_conversation'] or 'none'}",
        f"  agents: {', '.join(view['agents']) or '-'}; last agent: {view['last_agent'] or '-'}",
        f"  total waiting time: {format_seconds(float(view['total_wait_s']))}; SLA breaches: "
        f"{view['sla_breaches']}",
    ]
    table = Table(
        "  conversations, in order:",
        [Column("first_contact_at", "first contact", "time"),
         Column("conversation_id", "conversation"), Column("channels", "channels"),
         Column("queue", "queue"), Column("status", "status"), Column("outcome", "outcome"),
         Column("wait_s", "wait", "secs"), Column("first_reply_s", "first reply", "secs"),
         Column("sla", "SLA"), Column("handled_by", "handled by")],
        [(c["first_contact_at"], c["conversation_id"], c["channels"], c["queue"], c["status"],
          c["outcome"], *_wait_or_reply(c),
          "met" if c["met"] else "missed" if c["met"] is False else "-", c["handled_by"])
         for c in view["conversations"]],
    )  # fmt: skip
    legs = Table(
        "  legs (each contact of the customer in a conversation), in order:",
        [Column("conversation_id", "conversation"), Column("leg_id", "leg"),
         Column("channel", "channel"), Column("started_at", "started", "time"),
         Column("served_by", "served by"), Column("wait_s", "wait", "secs"),
         Column("first_reply_s", "first reply", "secs"),
         Column("ended_at", "ended", "time"), Column("ended_by", "ended by"),
         Column("outcome", "outcome")],
        [(c["conversation_id"], leg["leg_id"], leg["channel"], leg["started_at"],
          leg["served_by"], *_wait_or_reply(leg), leg["ended_at"], leg["ended_by"],
          leg["outcome"])
         for c in view["conversations"] for leg in c["legs"]],
    )  # fmt: skip
    for t in (table, legs):
        lines.append("")
        lines += [("  " + line).rstrip() for line in format_table(t)]
    return lines


_READ_ONLY = {"SELECT", "EXPLAIN", "PRAGMA"}


def run_sql(con: duckdb.DuckDBPyConnection, sql: str) -> list[Table]:
    """Run read-only statements; one table per statement that returns rows.

    Anything but ``SELECT`` (``WITH``, ``FROM``, ``DESCRIBE``, ``SHOW``,
    ``SUMMARIZE`` included), ``EXPLAIN`` or ``PRAGMA`` is refused before anything runs.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise ReportError(f"SQL error: {exc}") from exc
    if not statements:
        raise ReportError("no SQL statement given")
    for st in statements:
        kind = str(st.type).rsplit(".", 1)[-1]
        if kind not in _READ_ONLY:
            raise ReportError(
                f"refused: {kind} is a write or a side effect; `omniroute sql` runs read-only "
                "queries (SELECT, EXPLAIN, PRAGMA) on a read-only connection"
            )
    tables: list[Table] = []
    for st in statements:
        try:
            cur = con.execute(st.query)
        except duckdb.Error as exc:
            raise ReportError(f"SQL error: {exc}") from exc
        if cur.description is None:
            continue
        columns = [Column(d[0], d[0], _kind_of(str(d[1]))) for d in cur.description]
        tables.append(Table("", columns, cur.fetchall()))
    return tables


def _kind_of(type_name: str) -> Kind:
    t = type_name.upper()
    if t in {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UBIGINT", "UINTEGER"}:
        return "int"
    if t in {"DOUBLE", "FLOAT", "REAL"} or t.startswith("DECIMAL"):
        return "num"
    return "text"


_PARTITION_TIME = {
    "interactions": "first_contact_at",
    "legs": "started_at",
    "replies": "message_at",
    "segments": "start_at",
    "assignments": "assigned_at",
    "agent_states": "start_at",
    "agents": "registered_at",
    "customers": "first_seen_at",
    "contacts": "first_seen_at",
}


EXPORT_MANIFEST = "manifest.json"
"""The file an export writes beside its tables: what the data is (see
:func:`export_parquet`)."""


def export_parquet(db: str | Path, out_dir: str | Path) -> list[tuple[str, int]]:
    """Write every table as Parquet under ``out_dir/<table>/tenant=<t>/day=<YYYY-MM-DD>/``
    and :data:`EXPORT_MANIFEST`: the projection's settings (schema version, clock, how
    contact addresses are stored: ``plain`` or ``hmac-sha256``, sources) and the rows
    of each table.

    Returns ``(table, rows)`` pairs. Existing files of the same partitions are replaced.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as exc:
        raise ReportError(f"{db}: cannot open read-only: {exc}") from exc
    done: list[tuple[str, int]] = []
    try:
        info = projection_info(con)
        for table in TABLES:
            col = _PARTITION_TIME[table]
            target = out / table
            count = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            rows = int(count[0]) if count else 0
            if rows:
                path = str(target).replace("'", "''")
                con.execute(
                    f"COPY (SELECT *, coalesce(CAST({col} AS DATE), DATE '1970-01-01') AS day "
                    f"FROM {table}) TO '{path}' (FORMAT parquet, PARTITION_BY (tenant, day), "
                    "OVERWRITE_OR_IGNORE true)"
                )
            done.append((table, rows))
    except duckdb.Error as exc:
        raise ReportError(f"export failed: {exc}") from exc
    finally:
        con.close()
    manifest = {**jsonable(info), "tables": dict(done),
                "layout": "<table>/tenant=<t>/day=<YYYY-MM-DD>/*.parquet"}  # fmt: skip
    (out / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return done
