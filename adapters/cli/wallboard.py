"""``omniroute wallboard``: the supervisors' wallboard, a live page over the projection.

::

    omniroute wallboard --db FILE | --follow LOG [--db FILE] [--policy FILE]
                        [--host 127.0.0.1] [--port 8765] [--every S]
    omniroute wallboard --config service.toml [--tenant T ...] [--db FILE] ...

``--db FILE`` alone shows a projection database no process is writing (re-read every
``--every`` seconds, so a re-projection shows). ``--follow LOG`` projects the log as its
writer appends to it, in this process, into ``--db FILE`` (or a temporary file): DuckDB
lets no other process read a database a writer holds; ``--config`` does the same with
every tenant's NATS log of a running service (or ``--tenant T``). The policy gives the
SLA targets: ``--policy FILE``, else ``LOG.policy.toml`` next to a followed log if it
exists, or the service's policy, else the default. It serves until SIGTERM or Ctrl-C;
exit status 0, or 2 with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from omniroute.engine.log import LogError
from omniroute.engine.policy import Policy, PolicyError, load_policy

from .common import EXIT_OK, CliError, Command, open_tenant_logs, policy_of_log, reported

if TYPE_CHECKING:
    from ..nats.log import NatsLog

__all__ = ["COMMANDS"]

_log = logging.getLogger(__name__)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", type=Path, metavar="FILE",
        help="the projection database: shown as it is (no --follow), or the one --follow "
        "projects into (default: a temporary file)",
    )  # fmt: skip
    parser.add_argument(
        "--follow", type=Path, metavar="LOG",
        help="project this log file as its writer appends to it, and show that",
    )  # fmt: skip
    parser.add_argument(
        "--config", type=Path, metavar="FILE",
        help="instead of --follow: a running service's configuration (omniroute serve): "
        "follow every tenant's NATS log",
    )  # fmt: skip
    parser.add_argument(
        "--tenant", action="append", metavar="T",
        help="with --config: only this tenant (repeatable; default: the service's tenants)",
    )  # fmt: skip
    parser.add_argument(
        "--policy", type=Path, metavar="FILE",
        help="the policy TOML the log was written with, for the SLA targets (default: "
        "LOG.policy.toml next to the --follow log if it exists, else the built-in policy)",
    )  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1 (this machine)")
    parser.add_argument("--port", type=int, default=8765, metavar="N", help="default: 8765")
    parser.add_argument(
        "--every", type=_seconds, default=1.0, metavar="S",
        help="read (and with --follow, project) every S seconds (default: 1)",
    )  # fmt: skip


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import ProjectionError
    from ..wallboard import DatabaseSource, FollowingSource, StateSource, create_app, serve

    if args.follow is not None and args.config is not None:
        raise CliError("--follow LOG or --config FILE, not both")
    if args.db is None and args.follow is None and args.config is None:
        raise CliError(
            "give --db FILE (a projection database), --follow LOG (a log file) or "
            "--config FILE (a running service's tenants)"
        )
    if args.tenant and args.config is None:
        raise CliError("--tenant goes with --config")
    with contextlib.ExitStack() as stack:
        source: StateSource
        followed: str | Path | dict[str, NatsLog] | None = args.follow
        if args.follow is not None:
            policy = policy_of_log(args.follow, args.policy).policy
        elif args.config is not None:
            policy, followed = open_tenant_logs(args.config, args.tenant, args.policy, stack)
        else:
            with reported(OSError, PolicyError):
                policy = load_policy(args.policy) if args.policy is not None else Policy()
        with reported(OSError, LogError, ProjectionError):
            if followed is not None:
                following = FollowingSource(followed, args.db, policy, args.every)
                _log.info("wallboard: projecting %r into %s", following, following.db_path)
                following.start()
                stack.callback(following.stop)
                source = following
                what = args.follow or "tenants " + ", ".join(following.tenants)
                where = f"following {what} (projected into {following.db_path})"
            else:
                source = DatabaseSource(args.db, policy)
                where = f"database {args.db}"

        def ready(url: str) -> None:
            print(f"wallboard: {url} ({where}); SIGTERM or Ctrl-C stops it", file=out, flush=True)

        with reported(OSError):
            serve(create_app(source, every_s=args.every), args.host, args.port, ready=ready)
    _log.info("wallboard: stopped")
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "wallboard": Command(
        help="serve the supervisors' live wallboard (queues, agents, service level)",
        description="Serve a live page of the projection: queues (waiting, oldest wait, "
        "service level now and today against the target, abandon rate, expected wait), "
        "agents by status (time in status, load, not responding), today's service level "
        "per channel and interval, recent SLA breaches; pushed by Server-Sent Events "
        "(/events), also /state.json and /health; ?tenant=&queue=&channel= filter them. "
        "Read-only: it never writes the log (nor, without --follow, the database).",
        add_arguments=_arguments,
        run=_run,
        extra="wallboard",
    ),
}
"""The commands of this module, for ``main``'s table."""
