"""The reporting subcommands of ``omniroute``: project, report, sql, export, customer.

::

    omniroute project LOG --db FILE [--policy FILE] [--short-abandon-s S] [--interval-minutes M]
    omniroute report --db FILE [--by channel|queue|interval|agent] [--since T] [--until T]
                     [--format table|csv|json] [--interval-minutes M] [--wide]
    omniroute sql --db FILE "SELECT ..." [--format table|csv|json]
    omniroute export --db FILE --to DIR
    omniroute customer --db FILE ID [--tenant T] [--format table|json]

Exit status 0, or 2 with a message naming the problem (a missing database, a refused
write, an unknown customer).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from omniroute.engine.log import LogError

from ..filelog import FileLog
from .common import EXIT_OK, CliError, Command, policy_of_log, reported

if TYPE_CHECKING:
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
    pro.add_argument("log", type=Path, metavar="LOG")
    pro.add_argument("--db", type=Path, required=True, metavar="FILE", help=_DB_HELP)
    pro.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="policy TOML the log was written with (default: LOG.policy.toml if it "
        "exists, else the built-in default policy)",
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

    policy = policy_of_log(args.log, args.policy).policy
    if args.short_abandon_s < 0:
        raise CliError(f"--short-abandon-s must be >= 0, got {args.short_abandon_s}")
    if args.every <= 0:
        raise CliError(f"--every must be > 0, got {args.every}")
    with (
        reported(OSError, LogError),
        FileLog(args.log, readonly=True) as log,
        Projector(
            args.db, policy, short_abandon_s=args.short_abandon_s,
            interval_s=args.interval_minutes * 60,
        ) as projector,
    ):  # fmt: skip
        before = projector.position
        stats = projector.project(log)
        _projected(args.db, before, stats, out)
        if args.follow:
            _follow(log, projector, args.every, out)
    return EXIT_OK


def _projected(db: Path, before: int, stats: ProjectionStats, out: TextIO) -> None:
    print(
        f"projected {stats.events} events (positions {before}..{stats.position - 1}) into "
        f"{db} in {stats.seconds:.2f} s"
        if stats.events
        else f"{db} is up to date ({stats.position} events projected)",
        file=out,
        flush=True,
    )


def _follow(log: FileLog, projector: Projector, every: float, out: TextIO) -> None:
    """Project what the log's writer appends, every ``every`` seconds, until SIGTERM or
    SIGINT (then the last batch is finished and the database closed)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in _STOP_SIGNALS}
    try:
        while not stop.wait(every):
            log.refresh()
            before = projector.position
            stats = projector.project(log)
            if stats.events:
                _projected(projector.path, before, stats, out)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"stopped following {log.path} at position {projector.position}", file=out)


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
    from ..reporting import connect_readonly, export_parquet

    connect_readonly(args.db).close()  # a clear error if it is not a projection
    for table, rows in export_parquet(args.db, args.to):
        print(f"{table}: {rows} rows", file=out)
    print(f"written under {args.to} as <table>/tenant=<t>/day=<YYYY-MM-DD>/*.parquet", file=out)
    return EXIT_OK


def _customer(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import connect_readonly, customer_view, format_customer, jsonable

    with connect_readonly(args.db) as con:
        view = customer_view(con, args.id, args.tenant)
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
