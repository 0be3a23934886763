"""Where the wallboard's live state comes from: a projection database, read-only.

- :class:`DatabaseSource`: a database no one is writing; each read opens it read-only
  and closes it (so ``omniroute project`` may re-project it between two reads).
- :class:`FollowingSource`: follows a growing log file, or the tenants' NATS logs of a
  running service, projecting what their writers append every ``every_s`` seconds in a
  background thread, into a database of its own (DuckDB lets no other process open a
  file a writer holds, so the reads share the projector's database instance: one
  cursor per read, under the projection's lock).

Neither writes the log; only the following source's projector writes its database.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

import duckdb

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import Projector, connect_readonly
from omniroute.adapters.reporting.live import LiveState, live_state
from omniroute.engine.policy import Policy

if TYPE_CHECKING:
    from omniroute.adapters.nats.log import NatsLog

__all__ = ["DatabaseSource", "FollowingSource", "StateSource"]

_log = logging.getLogger(__name__)


class StateSource(Protocol):
    """Reads the live state, filtered (``None``: every tenant, queue or channel)."""

    def read(
        self, tenant: str | None = None, queue: str | None = None, channel: str | None = None
    ) -> LiveState: ...


class DatabaseSource:
    """The live state of the projection database at ``db_path``, which no process is
    writing; ``policy`` is the log's (its SLA targets)."""

    def __init__(self, db_path: str | Path, policy: Policy | None = None) -> None:
        self.db_path = Path(db_path)
        self.policy = policy if policy is not None else Policy()
        connect_readonly(self.db_path).close()  # a clear error now if it is not one

    def read(
        self, tenant: str | None = None, queue: str | None = None, channel: str | None = None
    ) -> LiveState:
        with connect_readonly(self.db_path) as con:
            return live_state(con, self.policy, tenant=tenant, queue=queue, channel=channel)

    def __repr__(self) -> str:
        return f"DatabaseSource({str(self.db_path)!r})"


class FollowingSource:
    """The live state of a log while its writer appends to it.

    ``log``: the path of a log file of any tenants (opened and closed here), or each
    tenant's own log by tenant (a running service's ``NatsLog``s, the caller's to close).
    :meth:`start` projects the logs as they are (it may take a while for a long log),
    then a thread projects what is appended every ``every_s`` seconds until :meth:`stop`.
    ``db_path``: the database to project into (it may hold an earlier projection of
    these logs: it goes on from there); ``None``, a temporary file removed at
    :meth:`stop`.
    """

    def __init__(
        self,
        log: str | Path | Mapping[str, NatsLog],
        db_path: str | Path | None,
        policy: Policy | None = None,
        every_s: float = 1.0,
    ) -> None:
        if every_s <= 0:
            raise ValueError(f"every_s must be > 0, got {every_s}")
        self.log_path = Path(log) if isinstance(log, str | Path) else None
        self._tenant_logs = dict(log) if not isinstance(log, str | Path) else {}
        self.policy = policy if policy is not None else Policy()
        self.every_s = float(every_s)
        self._tmp: Path | None = None
        if db_path is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="omniroute-wallboard-"))
            db_path = self._tmp / "live.duckdb"
        self.db_path = Path(db_path).resolve()
        self.error: BaseException | None = None
        """What stopped the projection thread, if anything did."""
        self._lock = threading.Lock()  # one projection or one read at a time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._file: FileLog | None = None  # the log file this source opened
        self._logs: list[tuple[str | None, FileLog | NatsLog]] = []  # (tenant or None: any, log)
        self._projector: Projector | None = None
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def tenants(self) -> list[str]:
        """The tenants whose own logs are followed (none for a log file)."""
        return sorted(self._tenant_logs)

    @property
    def position(self) -> int:
        """The events projected (for one log file: the next position to project)."""
        return self._projector.position if self._projector is not None else 0

    def start(self) -> None:
        """Project the logs as they are, then follow them in a thread."""
        if self._thread is not None:
            raise RuntimeError("the source is already started")
        try:
            if self.log_path is not None:
                self._file = FileLog(self.log_path, readonly=True)
                self._logs = [(None, self._file)]
            else:
                self._logs = list(self._tenant_logs.items())
            self._projector = Projector(self.db_path, self.policy)
            self._project()
            # the same path and settings: DuckDB hands this process the projector's instance
            self._con = duckdb.connect(str(self.db_path))
        except BaseException:
            self._close()
            raise
        self._stop.clear()
        self._thread = threading.Thread(target=self._follow, name="wallboard-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following (after the batch being projected) and close; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._close()

    def read(
        self, tenant: str | None = None, queue: str | None = None, channel: str | None = None
    ) -> LiveState:
        if self._con is None:
            raise RuntimeError("the source is not started")
        with self._lock:
            cur = self._con.cursor()
            try:
                return live_state(cur, self.policy, tenant=tenant, queue=queue, channel=channel)
            finally:
                cur.close()

    def _project(self) -> int:
        """Project what each log holds past the database's position; the events done."""
        assert self._projector is not None
        return sum(self._projector.project(log, tenant=t).events for t, log in self._logs)

    def _follow(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                for _, log in self._logs:
                    log.refresh()
                started = time.perf_counter()
                with self._lock:
                    events = self._project()
            except Exception as exc:  # the page says the state is stale; the log says why
                _log.exception("wallboard: cannot follow %s", self)
                self.error = exc
                return
            if events:
                _log.debug(
                    "wallboard: %d events projected in %.3f s",
                    events, time.perf_counter() - started,
                )  # fmt: skip

    def _close(self) -> None:
        for closing in (self._con, self._projector, self._file):
            if closing is not None:
                closing.close()
        self._con = self._projector = self._file = None
        self._logs = []
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        followed = str(self.log_path) if self.log_path is not None else self.tenants
        return f"FollowingSource({followed!r})"
