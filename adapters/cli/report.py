"""The reporting subcommands of ``omniroute``: project, report, sql, export, customer.

::

    omniroute project LOG --db FILE [--policy FILE] [--short-abandon-s S] [--interval-minutes M]
    omniroute report --db FILE [--by channel|queue|interval|agent] [--since T] [--until T]
                     [--format table|csv|json] [--interval-minutes M] [--wide]
    omniroute sql --db FILE "SELECT ..." [--format table|csv|json]
    omniroute export --db FILE --to DIR
    omniroute customer --db FILE ID [--tenant T] [--format table|json]

``cli.py`` registers these with :func:`add_parsers` and dispatches to :func:`run`.
Exit status 0, or 2 with a message
naming the problem (a missing database, a refused write, an unknown customer).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from omniroute.engine.policy import Policy, PolicyError, load_policy

__all__ = ["COMMANDS", "add_parsers", "parse_time", "run"]

COMMANDS = ("project", "report", "sql", "export", "customer")
"""The subcommands this module adds."""

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


def add_parsers(sub: Any) -> None:
    """Add the subcommands to ``omniroute``'s subparsers."""
    db_help = "the projection database (DuckDB file)"

    pro = sub.add_parser(
        "project",
        help="project a log into a DuckDB reporting database (incremental)",
        description="Fold LOG into the DuckDB database --db: tables interactions, segments, "
        "assignments, agent_states, agents, customers, contacts and the reporting views. "
        "Incremental and idempotent: a second run adds only the events appended since.",
    )
    pro.add_argument("log", type=Path, metavar="LOG")
    pro.add_argument("--db", type=Path, required=True, metavar="FILE", help=db_help)
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

    rep = sub.add_parser(
        "report",
        help="service level, abandonment and wait percentiles (or agents) from a database",
        description="Print the honest service-level report: waits from first contact, "
        "abandons after the short-abandon threshold as not met, callbacks by their true "
        "wait, p50/p90/p99. --by agent prints occupancy and handle times per agent.",
    )
    rep.add_argument("--db", type=Path, required=True, metavar="FILE", help=db_help)
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

    sql = sub.add_parser(
        "sql",
        help="run a read-only SQL query on a database",
        description="Run SQL on a read-only connection (no file access): SELECT, EXPLAIN "
        "and PRAGMA only; any write is refused.",
    )
    sql.add_argument("--db", type=Path, required=True, metavar="FILE", help=db_help)
    sql.add_argument("query", metavar="SQL")
    sql.add_argument("--format", choices=_FORMATS, default="table")

    exp = sub.add_parser(
        "export",
        help="export the tables as Parquet, partitioned by tenant and day",
        description="Write every table to DIR/<table>/tenant=<t>/day=<YYYY-MM-DD>/*.parquet.",
    )
    exp.add_argument("--db", type=Path, required=True, metavar="FILE", help=db_help)
    exp.add_argument("--to", type=Path, required=True, metavar="DIR")

    cus = sub.add_parser(
        "customer",
        help="the customer-360 view of one customer",
        description="One customer across every channel: contacts, every conversation in "
        "order, agents, last agent, open conversation, total waiting time, SLA breaches. "
        "ID is a customer id, a merged contact id or a contact address.",
    )
    cus.add_argument("--db", type=Path, required=True, metavar="FILE", help=db_help)
    cus.add_argument("id", metavar="ID")
    cus.add_argument("--tenant", metavar="T", help="the tenant, when ID is in several")
    cus.add_argument("--format", choices=("table", "json"), default="table")


def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run one of :data:`COMMANDS`; returns the exit status."""
    from ..reporting import ProjectionError

    try:
        if args.command == "project":
            return _project(args, out)
        if args.command == "report":
            return _report(args, out)
        if args.command == "sql":
            return _sql(args, out)
        if args.command == "export":
            return _export(args, out)
        return _customer(args, out)
    except ProjectionError as exc:
        return _error(str(exc))


def _error(message: str) -> int:
    print(f"omniroute: error: {message}", file=sys.stderr)
    return 2


def _policy_for(log_path: Path, policy_path: Path | None) -> Policy:
    sidecar = log_path.with_name(log_path.name + ".policy.toml")
    if policy_path is None and sidecar.exists():
        policy_path = sidecar
    return load_policy(policy_path) if policy_path is not None else Policy()


def _project(args: argparse.Namespace, out: TextIO) -> int:
    from omniroute.engine.log import LogError

    from ..filelog import FileLog
    from ..reporting import Projector

    try:
        policy = _policy_for(args.log, args.policy)
    except (OSError, PolicyError) as exc:
        return _error(str(exc))
    if args.short_abandon_s < 0:
        return _error(f"--short-abandon-s must be >= 0, got {args.short_abandon_s}")
    try:
        with FileLog(args.log, readonly=True) as log, Projector(
            args.db, policy, short_abandon_s=args.short_abandon_s,
            interval_s=args.interval_minutes * 60,
        ) as projector:  # fmt: skip
            before = projector.position
            stats = projector.project(log)
    except (OSError, LogError) as exc:
        return _error(str(exc))
    print(
        f"projected {stats.events} events (positions {before}..{stats.position - 1}) into "
        f"{args.db} in {stats.seconds:.2f} s"
        if stats.events
        else f"{args.db} is up to date ({stats.position} events projected)",
        file=out,
    )
    return 0


def _report(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import agent_report, connect_readonly, service_report

    if args.since is not None and args.until is not None and args.until <= args.since:
        return _error("--until must be after --since")
    with connect_readonly(args.db) as con:
        if args.by == ["agent"]:
            table = agent_report(con, since=args.since, until=args.until)
        else:
            interval = args.interval_minutes * 60 if args.interval_minutes else None
            table = service_report(
                con, by=args.by, since=args.since, until=args.until, interval_s=interval
            )
    _print_table(table, args.format, out, wide=args.wide)
    return 0


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
    return 0


def _export(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import connect_readonly, export_parquet

    connect_readonly(args.db).close()  # a clear error if it is not a projection
    for table, rows in export_parquet(args.db, args.to):
        print(f"{table}: {rows} rows", file=out)
    print(f"written under {args.to} as <table>/tenant=<t>/day=<YYYY-MM-DD>/*.parquet", file=out)
    return 0


def _customer(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import connect_readonly, customer_view, format_customer, jsonable

    with connect_readonly(args.db) as con:
        view = customer_view(con, args.id, args.tenant)
    if args.format == "json":
        print(json.dumps(jsonable(view)), file=out)
    else:
        for line in format_customer(view):
            print(line, file=out)
    return 0
