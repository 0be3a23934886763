"""The ``omniroute`` command: one table of subcommands, the parser built from it, dispatch.

::

    omniroute demo [--dir DIR] [--seed N] [--policy FILE|PRESET]   (a simulated day)
    omniroute simulate SCENARIO [--policy ...] [--plots DIR] [--compare A B]
    omniroute replay LOG [--policy FILE] [--snapshot-at N]
    omniroute validate-policy FILE
    omniroute schema [--format json-schema|markdown] [--decisions]
    omniroute serve --config FILE            (NATS JetStream; see cli/service.py)
    omniroute send FILE.jsonl [--config FILE]
    omniroute tail [--config FILE] [--tenant T]
    omniroute gateway --config FILE [--embedded LOG]   (webhooks + desk API; cli/gateway.py)
    omniroute project | report | sql | export | customer   (DuckDB reporting; cli/report.py)
    omniroute ewt LOG                    (the expected wait measured against actual waits)
    omniroute wallboard --db FILE | --follow LOG   (the supervisors' live page; cli/wallboard.py)
    omniroute --version

Each command group module exposes ``COMMANDS: dict[str, Command]`` (``common.Command``);
:data:`COMMANDS` here is their union, in the order ``--help`` lists them. A command whose
install extra is missing says which one to install. Exit status (``common``): 0 success;
1 ``replay`` found a mismatch, the service or a publish failed; 2 bad usage, a bad policy,
a log that cannot be read, a missing extra. Only this module configures logging
(``--log-level``, ``--log-format``: before or after the command).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata

from . import ewt, gateway, replay, report, schema, service, simulate, wallboard
from .common import EXIT_OK, CliError, Command, missing_extra, print_error

__all__ = ["COMMANDS", "JsonFormatter", "build_parser", "main"]

COMMANDS: dict[str, Command] = {
    **simulate.COMMANDS,
    **replay.COMMANDS,
    **schema.COMMANDS,
    **service.COMMANDS,
    **gateway.COMMANDS,
    **report.COMMANDS,
    **ewt.COMMANDS,
    **wallboard.COMMANDS,
}
"""Every ``omniroute`` subcommand by name."""


def _version() -> str:
    try:
        return metadata.version("omniroute")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "unknown"


def _global_options(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--log-level`` and ``--log-format``: on the main parser with their defaults, and on
    every subcommand with no default (``SUPPRESS``), so either place works."""
    parser.add_argument(
        "--log-level",
        default=default or "WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        help="logging level for diagnostics on stderr (default: WARNING)",
    )
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=default,
        help="diagnostics on stderr as text or one JSON object per line (default: text; "
        "or OMNIROUTE_LOG_FORMAT)",
    )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """The ``omniroute`` argument parser: the global options (accepted before or after the
    command) and one subparser per command."""
    parser = argparse.ArgumentParser(
        prog="omniroute",
        allow_abbrev=False,  # (else `simulate --log` is "ambiguous" with --log-level)
        description="Event-sourced, deterministic omnichannel contact-centre routing engine.",
    )
    parser.add_argument("--version", action="version", version=f"omniroute {_version()}")
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        subparser = sub.add_parser(name, help=command.help, description=command.description)
        _global_options(subparser, argparse.SUPPRESS)
        command.add_arguments(subparser)
    return parser


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: ts, level, logger, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _configure_logging(level: str, fmt: str) -> None:
    """Diagnostics on stderr: text lines, or JSON objects (``--log-format json`` or
    ``OMNIROUTE_LOG_FORMAT=json``). The commands' own INFO lines (``serve`` started and
    stopped) show at the default level too."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])
    if getattr(logging, level) <= logging.WARNING:  # the commands' own news: serve started...
        logging.getLogger(__package__).setLevel(min(getattr(logging, level), logging.INFO))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``omniroute`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    log_format = args.log_format or os.environ.get("OMNIROUTE_LOG_FORMAT")
    _configure_logging(args.log_level, log_format or "text")
    name: str = args.command
    command = COMMANDS[name]
    try:
        if command.extra is not None and (missing := missing_extra(command.extra)):
            raise CliError(
                f"{name} needs the {command.extra!r} extra ({', '.join(missing)} not "
                f"installed): pip install 'omniroute[{command.extra}]'"
            )
        return command.run(args, sys.stdout)
    except CliError as exc:
        return print_error(str(exc))
    except BrokenPipeError:  # e.g. `omniroute demo | head`: the reader left, not an error
        with contextlib.suppress(OSError, ValueError):  # (the Python docs' recipe)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
