"""The reporting subcommands of ``omniroute``: project, report, sql, export, customer.

::

    omniroute project LOG --db FILE [--policy FILE] [--short-abandon-s S] [--interval-minutes M]
                      [--address-key-env VAR] [--follow [--every S]]
    omniroute project --config service.toml [--tenant T ...] --db FILE [--follow] ...
    omniroute report --db FILE [--by channel|queue|interval|agent] [--since T] [--until T]
                     [--format table|csv|json] [--interval-minutes M] [--wide]
    omniroute sql --db FILE "SELECT ..." [--format table|csv|json]
    omniroute export --db FILE --to DIR        (DIR/manifest.json says how addresses are stored)
    omniroute customer --db FILE ID [--tenant T] [--format table|json] [--address-key-env VAR]

Exit status 0, or 2 with a message naming the problem (a missing database, a refused
write, an unknown customer).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from omniroute.engine.log import LogError

from ..filelog import FileLog
from .common import EXIT_OK, CliError, Command, open_tenant_logs, policy_of_log, reported

if TYPE_CHECKING:
    from ..nats.log import NatsLog
    from ..reporting import Projector
    from ..reporting.writer import ProjectionStats

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

__all__ = ["COMMANDS", "parse_time"]

_FORMATS = ("table", "csv", "json")


def parse_time(text: str) -> dt.datetime:
    """``2026-01-01``, ``2026-01-01T08:30[:00][Z|+hh:mm]`` or epoch milliseconds -> naive UTC."""
    value = text.strip()
    if value.isdigit():
        return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC).replace(tzinfo=None)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use 2026-01-01, 2026-01-01T08:30Z or epoch ms)"
        ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _by(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    allowed = ("channel", "queue", "interval", "agent")
    for p in parts:
        if p not in allowed:
            raise argparse.ArgumentTypeError(f"cannot group by {p!r}; choose from {allowed}")
    if "agent" in parts and len(parts) > 1:
        raise argparse.ArgumentTypeError("--by agent cannot be combined with other groupings")
    return parts


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


_DB_HELP = "the projection database (DuckDB file)"


def _project_arguments(pro: argparse.ArgumentParser) -> None:
    pro.add_argument("log", type=Path, nargs="?", metavar="LOG", help="an embedded file log")
    pro.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="instead of LOG: the service configuration (omniroute serve): project every "
        "tenant's NATS log into the one database",
    )
    pro.add_argument(
        "--tenant",
        action="append",
        metavar="T",
        help="with --config: only this tenant (repeatable; default: the service's tenants)",
    )
    pro.add_argument("--db", type=Path, required=True, metavar="FILE", help=_DB_HELP)
    pro.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="policy TOML the log was written with (default: LOG.policy.toml if it "
        "exists, or the service's policy with --config, else the built-in default policy)",
    )
    pro.add_argument(
        "--short-abandon-s",
        type=float,
        default=5.0,
        metavar="S",
        help="abandons sooner than this are short abandons, outside the service level "
        "(default: 5; fixed when the database is created)",
    )
    pro.add_argument(
        "--interval-minutes",
        type=_positive,
        default=15,
        metavar="M",
        help="reporting interval of the views (default: 15)",
    )
    pro.add_argument(
        "--address-key-env",
        metavar="VAR",
        help="store contact addresses as their keyed hash (HMAC-SHA256), with the key in "
        "the environment variable VAR (at least 16 bytes; fixed when the database is created)",
    )
    pro.add_argument(
        "--follow",
        action="store_true",
        help="keep projecting what is appended to LOG until SIGTERM or Ctrl-C",
    )
    pro.add_argument(
        "--every",
        type=float,
        default=1.0,
        metavar="S",
        help="with --follow: look for new events every S seconds (default: 1)",
    )


def _report_arguments(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("--db", type=Path, required=True, metavar="FILE", help=_DB_HELP)
    rep.add_argument(
        "--by",
        type=_by,
        default=["channel"],
        metavar="channel|queue|interval|agent",
        help="grouping (comma-separated for several, e.g. queue,channel; default: channel)",
    )
    rep.add_argument("--since", type=parse_time, metavar="T", help="first contact at or after T")
    rep.add_argument("--until", type=parse_time, metavar="T", help="first contact before T")
    rep.add_argument("--format", choices=_FORMATS, default="table")
    rep.add_argument(
        "--interval-minutes",
        type=_positive,
        metavar="M",
        help="interval length for --by interval (default: the database's)",
    )
    rep.add_argument("--wide", action="store_true", help="show every column in the table")


def _sql_arguments(sql: argparse.ArgumentParser) -> None:
    sql.add_argument("--db", type=Path, required=True, metavar="FILE", help=_DB_HELP)
    sql.add_argument("query", metavar="SQL")
    sql.add_argument("--format", choices=_FORMATS, default="table")


def _export_arguments(exp: argparse.ArgumentParser) -> None:
    exp.add_argument("--db", type=Path, required=True, metavar="FILE", help=_DB_HELP)
    exp.add_argument("--to", type=Path, required=True, metavar="DIR")


def _customer_arguments(cus: argparse.ArgumentParser) -> None:
    cus.add_argument("--db", type=Path, required=True, metavar="FILE", help=_DB_HELP)
    cus.add_argument("id", metavar="ID")
    cus.add_argument("--tenant", metavar="T", help="the tenant, when ID is in several")
    cus.add_argument("--format", choices=("table", "json"), default="table")
    cus.add_argument(
        "--address-key-env",
        metavar="VAR",
        help="the database stores addresses hashed: find ID as an address with the key in VAR",
    )


_Run = Callable[[argparse.Namespace, TextIO], int]


def _reported(run: _Run) -> _Run:
    """``run``, with a database that is not a projection (``ProjectionError``) reported."""

    @functools.wraps(run)
    def wrapped(args: argparse.Namespace, out: TextIO) -> int:
        from ..reporting import ProjectionError

        with reported(ProjectionError):
            return run(args, out)

    return wrapped


def _project(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import Projector

    if (args.log is None) == (args.config is None):
        raise CliError("give a LOG, or --config FILE for the service's NATS logs (not both)")
    if args.tenant and args.config is None:
        raise CliError("--tenant goes with --config (a file log holds every tenant)")
    if args.short_abandon_s < 0:
        raise CliError(f"--short-abandon-s must be >= 0, got {args.short_abandon_s}")
    if args.every <= 0:
        raise CliError(f"--every must be > 0, got {args.every}")
    with contextlib.ExitStack() as stack:
        stack.enter_context(reported(OSError, LogError))
        if args.log is not None:
            policy = policy_of_log(args.log, args.policy).policy
            sources: list[_Source] = [(None, stack.enter_context(FileLog(args.log, readonly=True)))]
            where = str(args.log)
        else:
            policy, logs = open_tenant_logs(args.config, args.tenant, args.policy, stack)
            sources = list(logs.items())
            where = "tenants " + ", ".join(logs)
        projector = stack.enter_context(
            Projector(
                args.db, policy, short_abandon_s=args.short_abandon_s,
                interval_s=args.interval_minutes * 60, address_key=_address_key(args),
            )
        )  # fmt: skip
        stop = stack.enter_context(_stop_signals()) if args.follow else None
        _project_sources(projector, sources, out, quiet=False)
        if stop is not None:
            _follow(sources, projector, args.every, stop, out)
            print(f"stopped following {where} at {_positions(projector, sources)}", file=out)
    return EXIT_OK


_Source = tuple["str | None", "FileLog | NatsLog"]
"""A log to project, and the tenant whose own log it is (None: a log of any tenants)."""


def _project_sources(
    projector: Projector, sources: list[_Source], out: TextIO, *, quiet: bool
) -> None:
    """Project what each source holds past the database's position; say what was done."""
    from ..reporting import ALL_TENANTS

    for tenant, log in sources:
        before = projector.positions.get(tenant or ALL_TENANTS, 0)
        stats = projector.project(log, tenant=tenant)
        if stats.events or not quiet:
            _projected(projector.path, tenant, before, stats, out)


def _positions(projector: Projector, sources: list[_Source]) -> str:
    from ..reporting import ALL_TENANTS

    positions = projector.positions
    if len(sources) == 1 and sources[0][0] is None:
        return f"position {positions.get(ALL_TENANTS, 0)}"
    return "positions " + ", ".join(f"{t}={positions.get(t or ALL_TENANTS, 0)}" for t, _ in sources)


def _projected(
    db: Path, tenant: str | None, before: int, stats: ProjectionStats, out: TextIO
) -> None:
    of = "" if tenant is None else f" of tenant {tenant}"
    print(
        f"projected {stats.events} events{of} (positions {before}..{stats.position - 1}) "
        f"into {db} in {stats.seconds:.2f} s"
        if stats.events
        else f"{db} is up to date{of} ({stats.position} events projected)",
        file=out,
        flush=True,
    )


@contextlib.contextmanager
def _stop_signals() -> Iterator[threading.Event]:
    """An event SIGTERM and SIGINT set while the block runs (their handlers restored after)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _follow(
    sources: list[_Source], projector: Projector, every: float, stop: threading.Event,
    out: TextIO,
) -> None:  # fmt: skip
    """Project what the logs' writers append, every ``every`` seconds, until ``stop`` is
    set (then the last batch is finished and the database closed)."""
    while not stop.wait(every):
        for _, log in sources:
            log.refresh()
        _project_sources(projector, sources, out, quiet=True)


def _address_key(args: argparse.Namespace) -> bytes | None:
    """The address hashing key named by ``--address-key-env`` (None without it)."""
    if args.address_key_env is None:
        return None
    value = os.environ.get(args.address_key_env, "")
    if len(value.encode()) < 16:
        raise CliError(
            f"--address-key-env: ${args.address_key_env} must hold a key of at least 16 bytes"
        )
    return value.encode()


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import agent_report, connect_readonly, service_report

    if args.since is not None and args.until is not None and args.until <= args.since:
        raise CliError("--until must be after --since")
    with connect_readonly(args.db) as con:
        if args.by == ["agent"]:
            table = agent_report(con, since=args.since, until=args.until)
        else:
            interval = args.interval_minutes * 60 if args.interval_minutes else None
            table = service_report(
                con, by=args.by, since=args.since, until=args.until, interval_s=interval
            )
    _print_table(table, args.format, out, wide=args.wide)
    return EXIT_OK


def _print_table(table: Any, fmt: str, out: TextIO, *, wide: bool = False) -> None:
    from ..reporting import format_csv, format_json, format_table

    if fmt == "csv":
        out.write(format_csv(table))
    elif fmt == "json":
        print(format_json(table), file=out)
    else:
        for line in format_table(table, wide=wide):
            print(line, file=out)


def _sql(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import connect_readonly, run_sql

    with connect_readonly(args.db) as con:
        tables = run_sql(con, args.query)
    for i, table in enumerate(tables):
        if i and args.format == "table":
            print("", file=out)
        _print_table(table, args.format, out, wide=True)
    return EXIT_OK


def _export(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import connect_readonly, export_parquet, projection_info
    from ..reporting.report import EXPORT_MANIFEST

    with connect_readonly(args.db) as con:  # a clear error if it is not a projection
        addresses = projection_info(con)["addresses"]
    for table, rows in export_parquet(args.db, args.to):
        print(f"{table}: {rows} rows", file=out)
    print(f"written under {args.to} as <table>/tenant=<t>/day=<YYYY-MM-DD>/*.parquet, "
          f"described in {args.to / EXPORT_MANIFEST}", file=out)  # fmt: skip
    print(
        "contact addresses: "
        + ("stored as they are" if addresses == "plain" else f"keyed hash ({addresses})"),
        file=out,
    )
    return EXIT_OK


def _customer(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import (
        AddressHasher,
        connect_readonly,
        customer_view,
        format_customer,
        jsonable,
    )

    key = _address_key(args)
    hasher = AddressHasher(key) if key is not None else None
    with connect_readonly(args.db) as con:
        view = customer_view(con, args.id, args.tenant, hasher=hasher)
    if args.format == "json":
        print(json.dumps(jsonable(view)), file=out)
    else:
        for line in format_customer(view):
            print(line, file=out)
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "project": Command(
        help="project a log into a DuckDB reporting database (incremental)",
        description="Fold LOG into the DuckDB database --db: tables interactions, legs, replies, "
        "segments, assignments, agent_states, agents, customers, contacts and the reporting "
        "views. "
        "Incremental and idempotent: a second run adds only the events appended since; "
        "--follow keeps projecting what is appended (until SIGTERM or Ctrl-C).",
        add_arguments=_project_arguments,
        run=_reported(_project),
        extra="reporting",
    ),
    "report": Command(
        help="service level, abandonment and wait percentiles (or agents) from a database",
        description="Print the honest service-level report per contact (a channel leg: a "
        "rejoin is a contact of its own channel), each in one outcome: answered, unreplied, "
        "abandoned, short abandoned, bot only, unanswered, open; contacts = conversations + "
        "rejoins. Waits from contact (the first from first contact) to the human answer; "
        "messaging, email and social are answered by the agent's first reply (first reply "
        "columns; taken on but never replied to: unreplied, not met) and each customer "
        "message's reply time is reported (reply columns). Abandons after the short-abandon "
        "threshold count as not met, callbacks by their true wait, p50/p90/p99. --by agent "
        "prints occupancy and handle times per agent.",
        add_arguments=_report_arguments,
        run=_reported(_report),
        extra="reporting",
    ),
    "sql": Command(
        help="run a read-only SQL query on a database",
        description="Run SQL on a read-only connection (no file access): SELECT, EXPLAIN "
        "and PRAGMA only; any write is refused.",
        add_arguments=_sql_arguments,
        run=_reported(_sql),
        extra="reporting",
    ),
    "export": Command(
        help="export the tables as Parquet, partitioned by tenant and day",
        description="Write every table to DIR/<table>/tenant=<t>/day=<YYYY-MM-DD>/*.parquet.",
        add_arguments=_export_arguments,
        run=_reported(_export),
        extra="reporting",
    ),
    "customer": Command(
        help="the customer-360 view of one customer",
        description="One customer across every channel: contacts, every conversation in "
        "order and its legs (channel, started, served by, ended, outcome), agents, last "
        "agent, open conversation, total waiting time, SLA breaches. "
        "ID is a customer id, a merged contact id or a contact address.",
        add_arguments=_customer_arguments,
        run=_reported(_customer),
        extra="reporting",
    ),
}
"""The commands of this module, for ``main``'s table."""
