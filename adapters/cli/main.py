"""The ``omniroute`` command.

::

    omniroute demo [--dir DIR] [--seed N] [--policy FILE|PRESET]   (a simulated day)
    omniroute simulate SCENARIO [--policy ...] [--plots DIR] [--compare A B]
    omniroute replay LOG [--policy FILE] [--snapshot-at N]
    omniroute validate-policy FILE
    omniroute serve --config FILE            (NATS JetStream; see cli/service.py)
    omniroute send FILE.jsonl [--config FILE]
    omniroute tail [--config FILE] [--tenant T]
    omniroute project | report | sql | export | customer   (DuckDB reporting; cli/report.py)
    omniroute --version

Exit status: 0 success; 1 ``replay`` found a mismatch; 2 bad usage, a bad policy, or a
log that cannot be read. Only this module configures logging (``--log-level``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TextIO

from omniroute.engine.policy import Policy, PolicyError, load_policy

__all__ = ["main", "policy_sidecar"]

_log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_MISMATCH = 1
EXIT_ERROR = 2


def _version() -> str:
    try:
        return metadata.version("omniroute")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare tree
        return "unknown"


def policy_sidecar(log_path: Path) -> Path:
    """Where ``simulate``/``demo`` save the policy a log was decided with: ``LOG.policy.toml``."""
    return log_path.with_name(log_path.name + ".policy.toml")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omniroute",
        description="Event-sourced, deterministic omnichannel contact-centre routing engine.",
    )
    parser.add_argument("--version", action="version", version=f"omniroute {_version()}")
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        type=str.upper,
        help="logging level for diagnostics on stderr (default: WARNING)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    from .simulate import add_parsers as add_simulation_commands

    add_simulation_commands(sub)

    rep = sub.add_parser(
        "replay",
        help="re-decide every input of a log and check the decisions are byte-identical",
        description="Feed every input of LOG to a fresh engine in order and check that the "
        "decisions it makes are exactly those recorded (msgpack bytes). Exit 1 at the "
        "first mismatch.",
    )
    rep.add_argument("log", type=Path, metavar="LOG")
    rep.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="policy TOML the log was written with (default: LOG.policy.toml if it "
        "exists, else the built-in default policy)",
    )
    rep.add_argument(
        "--snapshot-at",
        type=int,
        metavar="N",
        help="after input N, snapshot the engine, restore it into a new one and go on",
    )

    val = sub.add_parser(
        "validate-policy",
        help="check a policy TOML file",
        description="Load a policy file; print a summary and exit 0, or print the error "
        "(naming the key) and exit 2.",
    )
    val.add_argument("file", type=Path, metavar="FILE")

    from .service import add_commands

    add_commands(sub)
    from .report import add_parsers as add_report_commands

    add_report_commands(sub)
    return parser


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: ts, level, logger, message (and exc)."""

    def format(self, record: logging.LogRecord) -> str:
        import json

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
    """Diagnostics on stderr: text lines, or JSON objects (``serve --log-format json`` or
    ``OMNIROUTE_LOG_FORMAT=json``)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[handler])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``omniroute`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    log_format = getattr(args, "log_format", None) or os.environ.get("OMNIROUTE_LOG_FORMAT")
    _configure_logging(args.log_level, log_format or "text")
    out = sys.stdout
    command: str = args.command
    try:
        from .service import COMMANDS, run_command

        if command in COMMANDS:
            return run_command(args, out)
        from . import report as report_cli

        if command in report_cli.COMMANDS:
            return report_cli.run(args, out)
        if command in ("simulate", "demo"):
            from . import simulate as simulate_cli

            return simulate_cli.run(args, out)
        if command == "replay":
            return _replay(args.log, args.policy, args.snapshot_at, out)
        return _validate(args.file, out)
    except BrokenPipeError:  # e.g. `omniroute demo | head`: the reader left, not an error
        with contextlib.suppress(OSError, ValueError):  # (the Python docs' recipe)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _error(message: str) -> int:
    print(f"omniroute: error: {message}", file=sys.stderr)
    return EXIT_ERROR


# --- replay ---------------------------------------------------------------------------------


def _replay(log_path: Path, policy_path: Path | None, snapshot_at: int | None, out: TextIO) -> int:
    from omniroute.engine.log import LogError
    from omniroute.engine.replay import replay

    from ..filelog import FileLog

    policy: Policy | None
    try:
        if policy_path is None and policy_sidecar(log_path).exists():
            policy_path = policy_sidecar(log_path)
            source = f"{policy_path} (found next to the log)"
        else:
            source = str(policy_path) if policy_path is not None else "the default policy"
        policy = load_policy(policy_path) if policy_path is not None else None
    except (OSError, PolicyError) as exc:
        return _error(str(exc))
    if snapshot_at is not None and snapshot_at < 0:
        return _error(f"--snapshot-at must be >= 0, got {snapshot_at}")
    try:
        started = time.perf_counter()
        with FileLog(log_path, readonly=True) as log:
            result = replay(log, policy, snapshot_at=snapshot_at)
        seconds = time.perf_counter() - started
    except (OSError, LogError, ValueError) as exc:
        return _error(str(exc))

    print(f"log: {log_path}", file=out)
    print(f"policy: {source}", file=out)
    print(f"events read: {result.events_read}", file=out)
    print(f"inputs applied: {result.inputs_applied}", file=out)
    print(f"decisions matched: {result.decisions_matched}", file=out)
    if result.snapshot_position is not None:
        print(
            f"snapshot: after input {result.snapshot_at} (log position "
            f"{result.snapshot_position}), {result.snapshot_bytes} bytes, restored into a "
            "new engine",
            file=out,
        )
    if result.mismatch is not None:
        for line in result.mismatch.describe():
            print(line, file=out)
        if policy_path is None:
            print("(was the log written with a different policy? pass --policy FILE)", file=out)
        return EXIT_MISMATCH
    how = " through the snapshot" if result.snapshot_position is not None else ""
    print(
        f"replay OK: {result.decisions_matched} decisions of {result.inputs_applied} inputs "
        f"byte-identical to the log{how} ({seconds:.1f} s)",
        file=out,
    )
    return EXIT_OK


# --- validate-policy ------------------------------------------------------------------------


def _validate(path: Path, out: TextIO) -> int:
    try:
        policy = load_policy(path)
    except (OSError, PolicyError) as exc:
        return _error(str(exc))
    for line in describe_policy(policy):
        print(line, file=out)
    print(f"{path}: OK", file=out)
    return EXIT_OK


def _num(x: float) -> str:
    return f"{x:g}"


def describe_policy(policy: Policy) -> list[str]:
    """A short, readable summary of a policy."""
    w = policy.scoring
    weights = (
        f"skill {_num(w.skill)}, idle {_num(w.idle)}/s, load {_num(w.load)}, "
        f"sticky {_num(w.sticky)}, round_robin {_num(w.round_robin)}"
    )
    scoring = "explicit weights" if policy.weights is not None else f"preset {policy.preset!r}"
    lines = [f"scoring: {scoring} ({weights})", f"profiles ({len(policy.profiles)}):"]
    for name, profile in policy.profiles.items():
        roles = [
            role
            for role, pname in (("humans", policy.human_profile), ("bots", policy.bot_profile))
            if pname == name
        ]
        role = f" [default for {' and '.join(roles)}]" if roles else ""
        classes = ", ".join(
            f"{cls} {limit.cost}/{limit.max}" for cls, limit in profile.classes.items()
        )
        lines.append(f"  {name}: budget {profile.budget}{role}; {classes or 'no classes'}")
    unknown = "rejected" if policy.unknown_queue == "reject" else "routed to 'default'"
    lines.append(f"queues ({len(policy.queues)}; a conversation for another queue is {unknown}):")
    for name, q in policy.queues.items():
        skills = ", ".join(f"{k}>={v}" for k, v in q.skills.items()) or "none"
        parts = [
            f"skills {skills}",
            f"offered, {_num(q.offer_timeout_s)}s to answer"
            if q.offer_mode == "offer"
            else "auto-assigned",
            f"rings {len(q.rings)}",
            f"wrap-up {_num(q.wrap_up_s)}s",
        ]
        if q.priority:
            parts.append(f"priority {q.priority}")
        if q.bot_first:
            parts.append(f"bot first ({_num(q.bot_wait_s)}s)")
        if q.sla_s:
            parts.append("SLA " + ", ".join(f"{c} {_num(s)}s" for c, s in q.sla_s.items()))
        lines.append(f"  {name}: " + "; ".join(parts))
    return lines


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
