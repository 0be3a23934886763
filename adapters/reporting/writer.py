"""The DuckDB writer of the projection: :class:`Projector` folds an ``EventLog`` into a
DuckDB file, incrementally and idempotently.

- It remembers the log position it has projected up to (``_sources``) and picks up
  where it stopped; an event at a position already projected is never folded again, so
  projecting the same log twice changes nothing.
- One database holds one log of any tenants (the embedded ``FileLog``: source ``*``),
  or the logs of several tenants (NATS: one log per tenant, source = the tenant), each
  with its own position and fold; the two kinds do not mix (a tenant would be counted
  twice).
- The fold (:mod:`.fold`) reads no database: before each batch the projector loads the
  contacts and customers the batch names (none while the database held none of the
  log's when this process began: the fold has met every one), and at opening the
  records of open conversations, agents and arrivals (``_state``); after the batch it
  writes the rows, the records and the position in one transaction, so a new process
  resumes exactly where the last one committed.
- A ``FileLog`` is read a frame at a time (``FileLog.read_events``), not event by event.
- Rows are written in bulk (numpy column arrays registered with DuckDB), one
  transaction per batch of events; there is one writer process, and readers open the
  file read-only (:func:`connect_readonly`).

The tables and views are described in :mod:`.schema`.
"""

from __future__ import annotations

import gc
import logging
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb
import numpy as np

from omniroute.adapters.filelog import FileLog
from omniroute.engine.events import Event
from omniroute.engine.log import EventLog
from omniroute.engine.policy import Policy

from .fold import Batch, Fold
from .privacy import PLAIN, SCHEME, AddressHasher
from .schema import (
    AGENT_STATES,
    AGENTS,
    ASSIGNMENTS,
    CONTACTS,
    CUSTOMERS,
    INTERACTIONS,
    LEGS,
    REPLIES,
    SCHEMA_VERSION,
    SEGMENTS,
    TABLES_SQL,
    Insert,
    views_sql,
)

__all__ = [
    "ALL_TENANTS",
    "ProjectionError",
    "ProjectionStats",
    "Projector",
    "connect_readonly",
    "project",
]

_log = logging.getLogger(__name__)


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


def _delete(
    con: duckdb.DuckDBPyConnection,
    table: str,
    names: Sequence[str],
    keys: Sequence[Sequence[str]],
    extra: str = "",
) -> None:
    con.register("_k", _columns("s" * len(names), names, keys))
    match = " AND ".join(f"t.{n} = _k.{n}" for n in names)
    con.execute(f"DELETE FROM {table} t USING _k WHERE {match} {extra}")
    con.unregister("_k")


def _delete_state(
    con: duckdb.DuckDBPyConnection, kind: str, keys: Sequence[tuple[str, str]]
) -> None:
    con.register("_k", _columns("ss", ("tenant", "key"), keys))
    con.execute(
        "DELETE FROM _state t USING _k WHERE t.kind = ? AND t.tenant = _k.tenant "
        "AND t.key = _k.key",
        [kind],
    )
    con.unregister("_k")


def _insert(
    con: duckdb.DuckDBPyConnection,
    insert: Insert,
    rows: Sequence[Sequence[Any]],
    params: dict[str, Any] | None = None,
) -> None:
    if not rows:
        return
    con.register("_b", _columns(insert.spec, insert.names, rows))
    try:
        con.execute(insert.sql, params)
    finally:
        con.unregister("_b")


def _read_events(log: EventLog, start: int, n: int) -> list[Event]:
    """The ``n`` events from position ``start`` on (a ``FileLog`` decodes whole frames)."""
    if isinstance(log, FileLog):
        return log.read_events(start, n)
    return [e for _, e in log.read(start, n)]


# --- the projector ---------------------------------------------------------------------------

ALL_TENANTS = "*"
"""The source name of a log that holds any tenants (the embedded file log)."""


@dataclass
class _Source:
    """One log projected into the database, and how far."""

    key: str  # ALL_TENANTS, or the tenant whose own log it is
    fold: Fold
    durable: int  # every event before this position is in the database
    read: int  # the next position to read (the waiting group may lie before it)
    fingerprint: str | None  # of the log's first event

    @property
    def name(self) -> str:
        return "the log" if self.key == ALL_TENANTS else f"tenant {self.key!r}'s log"


class Projector:
    """Projects an ``EventLog`` into the DuckDB database at ``path`` (the only writer).

    ``policy`` must be the policy the log was written with: it gives the SLA target of
    conversations that never breached, whether an ended conversation goes to wrap-up,
    and the default capacity profiles. ``short_abandon_s``: abandons sooner than this
    are short abandons, outside the service level and the abandon rate (fixed when the
    database is created). ``interval_s``: the views' reporting interval (can change).
    ``address_key``: store contact addresses as their keyed hash (:mod:`.privacy`;
    fixed when the database is created: the same key, or none, every time).

    Use as a context manager, or call :meth:`close`. While it is open no other
    process can open the file, not even read-only (a DuckDB rule).
    """

    _sources: dict[str, _Source]  # the sources folded by this process
    _stored: dict[str, tuple[int, int]]  # every source in the database: position, clock

    def __init__(
        self,
        path: str | Path,
        policy: Policy | None = None,
        *,
        short_abandon_s: float = 5.0,
        interval_s: int = 900,
        address_key: bytes | None = None,
    ) -> None:
        if short_abandon_s < 0:
            raise ValueError(f"short_abandon_s must be >= 0, got {short_abandon_s}")
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.path = Path(path)
        self.policy = policy if policy is not None else Policy()
        self.short_abandon_s = float(short_abandon_s)
        self.interval_s = int(interval_s)
        self._hasher = AddressHasher(address_key) if address_key is not None else None
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
        """The events projected, all sources together; for one log, the next position to
        project (every event before it is in the database)."""
        return sum(p for p, _ in self._stored.values())

    @property
    def positions(self) -> dict[str, int]:
        """The next position to project of each source (``*``, or a tenant)."""
        return {source: p for source, (p, _) in sorted(self._stored.items())}

    @property
    def as_of(self) -> int:
        """The projection's clock: the latest event time folded (epoch milliseconds)."""
        return max((clock for _, clock in self._stored.values()), default=0)

    def project(
        self,
        log: EventLog,
        *,
        tenant: str | None = None,
        limit: int | None = None,
        batch_events: int = 200_000,
    ) -> ProjectionStats:
        """Fold the log's events from its source's position on; return what was done.

        ``tenant``: the log is that tenant's own (a NATS tenant log); None: the log
        holds any tenants (a file log), and is the database's only source. ``limit``
        caps the events read by this call. One transaction per ``batch_events`` events.
        Raises :class:`ProjectionError` when the database was projected from a
        different log, or further than this log's end, or mixes the two kinds of source.
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
        src = self._source(ALL_TENANTS if tenant is None else tenant)
        end = log.end()
        self._check_log(src, log, end)
        stop = end if limit is None else min(end, src.read + max(limit, 0))
        fold = src.fold
        read = batches = 0
        gc_was_enabled = gc.isenabled()
        gc.disable()  # the fold allocates millions of small objects and frees few
        # one checkpoint at the end rather than one per 16 MB of write-ahead log
        self._con.execute("SET checkpoint_threshold = '256MB'")
        try:
            while True:
                n = min(batch_events, stop - src.read)
                if n > 0:
                    chunk = _read_events(log, src.read, n)
                    if self._hasher is not None:
                        chunk = [self._hasher.event(e) for e in chunk]
                    self._load_known(fold, chunk)
                    fold.fold(src.read, chunk)
                    src.read += len(chunk)
                    read += len(chunk)
                at_end = src.read >= end
                if at_end:
                    fold.finish()
                if n > 0 or (at_end and src.durable < end):
                    waiting = fold.waiting_position
                    src.durable = src.read if waiting < 0 else waiting
                    try:
                        self._write(src, fold.flush())
                    except BaseException as exc:
                        self._failed = exc  # memory is ahead of the database now
                        raise
                    batches += 1
                    _log.debug(
                        "%s: projected %s up to position %d", self.path, src.key, src.durable
                    )
                if n <= 0 or src.read >= stop:
                    break
            if batches:
                self._con.execute("CHECKPOINT")
        finally:
            self._con.execute("RESET checkpoint_threshold")
            if gc_was_enabled:
                gc.enable()
        return ProjectionStats(read, src.durable, batches, time.perf_counter() - started)

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

    # --- reading ---------------------------------------------------------------------------

    def _open(self) -> None:
        con = self._con
        con.execute("BEGIN")
        con.execute(TABLES_SQL)
        row = con.execute(
            "SELECT next_position, short_abandon_s, interval_s, schema_version FROM "
            "_projection_state WHERE id = 0"
        ).fetchone()
        addresses, key_check = (
            (SCHEME, self._hasher.key_check) if self._hasher is not None else (PLAIN, None)
        )
        if row is None:
            con.execute(
                "INSERT INTO _projection_state VALUES (0, 0, 0, ?, ?, ?, ?, ?)",
                [self.short_abandon_s, self.interval_s, SCHEMA_VERSION, addresses, key_check],
            )
            row = (0, self.short_abandon_s, self.interval_s, SCHEMA_VERSION)
        position, short_abandon_s, interval_s, version = row
        if version != SCHEMA_VERSION:
            con.execute("ROLLBACK")
            raise ProjectionError(
                f"{self.path}: schema version {version}, this omniroute writes "
                f"{SCHEMA_VERSION}; project the log into a new database"
            )
        stored = con.execute(
            "SELECT addresses, key_check FROM _projection_state WHERE id = 0"
        ).fetchone()
        if stored != (addresses, key_check):
            con.execute("ROLLBACK")
            if stored is None or stored[0] == PLAIN:
                held = "plain contact addresses"
            elif key_check is None:
                held = "hashed contact addresses (give their key)"
            else:
                held = "contact addresses hashed with another key"
            raise ProjectionError(
                f"{self.path} holds {held}; project with the same setting, or into a new database"
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
        con.execute(views_sql(self.interval_s))
        con.execute("COMMIT")
        self._sources = {}
        self._stored = {
            str(source): (int(p), int(clock))
            for source, p, clock in con.execute(
                "SELECT source, next_position, as_of_ms FROM _sources"
            ).fetchall()
        }

    def _source(self, key: str) -> _Source:
        """The source ``key`` (``*`` or a tenant): its fold restored from the database
        the first time it is projected by this process."""
        src = self._sources.get(key)
        if src is not None:
            return src
        others = sorted(k for k in self._stored if k != key)
        if others and ALL_TENANTS in (key, *others):
            held = "the log of all tenants" if ALL_TENANTS in others else (
                "the logs of tenants " + ", ".join(others))  # fmt: skip
            wanted = "a log of all tenants" if key == ALL_TENANTS else f"tenant {key!r}'s log"
            raise ProjectionError(
                f"{self.path} holds {held}: {wanted} cannot join it (a tenant would be "
                "counted twice); project it into a database of its own"
            )
        row = self._con.execute(
            "SELECT next_position, as_of_ms, log_fingerprint FROM _sources WHERE source = ?",
            [key],
        ).fetchone()
        position, as_of, fingerprint = row if row is not None else (0, 0, None)
        fold = Fold(self.policy, int(as_of))
        state = "SELECT kind, data FROM _state" + (
            "" if key == ALL_TENANTS else " WHERE tenant = ?"
        )
        fold.restore(self._con.execute(state, [] if key == ALL_TENANTS else [key]).fetchall())
        if not self._holds_identities(key):
            fold.know_all()
        src = _Source(key, fold, int(position), int(position), fingerprint)
        self._sources[key] = src
        self._stored[key] = (src.durable, fold.clock)
        return src

    def _holds_identities(self, key: str) -> bool:
        """Whether the database holds contacts or customers of source ``key``."""
        where, params = ("", []) if key == ALL_TENANTS else (" WHERE tenant = ?", [key, key])
        row = self._con.execute(
            f"SELECT EXISTS (SELECT 1 FROM contacts{where}) OR "
            f"EXISTS (SELECT 1 FROM customers{where})",
            params,
        ).fetchone()
        return bool(row and row[0])

    def _check_log(self, src: _Source, log: EventLog, end: int) -> None:
        if end < src.durable:
            raise ProjectionError(
                f"{self.path} holds {src.durable} projected events of {src.name} but the log "
                f"has only {end}: is it the same log?"
            )
        if end == 0:
            return
        first = next(iter(log.read_raw(0, 1)))[1]
        fingerprint = f"{zlib.crc32(first):08x}"
        if src.fingerprint is None:
            src.fingerprint = fingerprint
        elif src.fingerprint != fingerprint:
            raise ProjectionError(
                f"{self.path} was projected from another log of {src.name} (its first event "
                "differs)"
            )

    def _load_known(self, fold: Fold, chunk: Sequence[Event]) -> None:
        """Hand the fold the contacts and customers this batch names that it does not
        know yet: those in the database, and which are not."""
        contact_keys, customer_keys = fold.unknown_keys(chunk)
        if contact_keys:
            rows = self._lookup(
                "SELECT o.tenant, o.channel, o.address, o.customer_id, "
                "epoch_ms(o.first_seen_at), coalesce(epoch_ms(o.linked_at), -1) "
                "FROM contacts o JOIN _k USING (tenant, channel, address)",
                ("tenant", "channel", "address"), contact_keys,
            )  # fmt: skip
            customer_keys |= fold.know_contacts(contact_keys, rows)
        if customer_keys:
            rows = self._lookup(
                "SELECT u.tenant, u.customer_id, u.source, epoch_ms(u.first_seen_at), "
                "u.merged_into FROM customers u JOIN _k USING (tenant, customer_id)",
                ("tenant", "customer_id"), customer_keys,
            )  # fmt: skip
            fold.know_customers(customer_keys, rows)

    def _lookup(self, sql: str, names: Sequence[str], keys: Iterable[Sequence[str]]) -> list[Any]:
        cols = _columns("s" * len(names), names, list(keys))
        self._con.register("_k", cols)
        try:
            return self._con.execute(sql).fetchall()
        finally:
            self._con.unregister("_k")

    # --- writing ---------------------------------------------------------------------------

    def _write(self, src: _Source, batch: Batch) -> None:
        """One transaction: replace what changed, append what is new, move the position."""
        con = self._con
        con.execute("BEGIN")
        try:
            stale = batch.stale_interactions
            if stale:
                first = min(k[2] for k in stale)
                con.register("_k", _columns("ssi", ("tenant", "cid", "first"), stale))
                con.execute(
                    "DELETE FROM interactions t USING _k WHERE t.tenant = _k.tenant "
                    "AND t.conversation_id = _k.cid AND t.first_contact_at = epoch_ms(_k.first) "
                    f"AND t.first_contact_at >= epoch_ms({first})"
                )
                con.execute(
                    "DELETE FROM legs t USING _k WHERE t.tenant = _k.tenant "
                    "AND t.conversation_id = _k.cid "
                    "AND t.conversation_started_at = epoch_ms(_k.first) "
                    f"AND t.conversation_started_at >= epoch_ms({first})"
                )
                con.execute(
                    "DELETE FROM replies t USING _k WHERE t.tenant = _k.tenant "
                    "AND t.conversation_id = _k.cid "
                    "AND t.conversation_started_at = epoch_ms(_k.first) "
                    f"AND t.outcome = 'waiting' AND t.message_at >= epoch_ms({first})"
                )
                con.execute(
                    "DELETE FROM segments t USING _k WHERE t.tenant = _k.tenant "
                    "AND t.conversation_id = _k.cid AND t.end_at IS NULL "
                    f"AND t.start_at >= epoch_ms({first})"
                )
                con.unregister("_k")
                _delete_state(con, "conv", [k[:2] for k in stale])
            if batch.stale_agents:
                _delete(con, "agents", ("tenant", "agent_id"), batch.stale_agents)
                _delete(con, "agent_states", ("tenant", "agent_id"), batch.stale_agents,
                             "AND t.end_at IS NULL")  # fmt: skip
                _delete_state(con, "agent", batch.stale_agents)
            if batch.stale_pending:
                _delete_state(con, "pending", batch.stale_pending)
            if batch.stale_contacts:
                _delete(con, "contacts", ("tenant", "channel", "address"), batch.stale_contacts)
            if batch.stale_customers:
                _delete(con, "customers", ("tenant", "customer_id"), batch.stale_customers)
            _insert(con, INTERACTIONS, batch.interactions,
                         {"short_ms": round(self.short_abandon_s * 1000)})  # fmt: skip
            _insert(con, LEGS, batch.legs, {"short_ms": round(self.short_abandon_s * 1000)})
            _insert(con, REPLIES, batch.replies)
            _insert(con, SEGMENTS, batch.segments)
            _insert(con, ASSIGNMENTS, batch.assignments)
            _insert(con, AGENT_STATES, batch.agent_states)
            _insert(con, AGENTS, batch.agents)
            _insert(con, CUSTOMERS, batch.customers)
            _insert(con, CONTACTS, batch.contacts)
            if batch.state:
                con.register("_b", _columns("ssss", ("kind", "tenant", "key", "data"), batch.state))
                con.execute("INSERT INTO _state SELECT kind, tenant, key, data::BLOB FROM _b")
                con.unregister("_b")
            con.execute(
                "INSERT OR REPLACE INTO _sources VALUES (?, ?, ?, ?)",
                [src.key, src.durable, batch.as_of, src.fingerprint],
            )
            con.execute(
                "UPDATE _projection_state SET next_position = s.n, as_of_ms = s.t FROM "
                "(SELECT sum(next_position) AS n, max(as_of_ms) AS t FROM _sources) s "
                "WHERE id = 0"
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        self._stored[src.key] = (src.durable, batch.as_of)


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
