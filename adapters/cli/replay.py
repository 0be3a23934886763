"""``omniroute replay`` and ``omniroute validate-policy``: check a log's decisions, a policy.

::

    omniroute replay LOG [--policy FILE] [--snapshot-at N]
    omniroute validate-policy FILE

``replay`` feeds every input of LOG to a fresh engine and checks that the decisions it
makes are byte-identical to those recorded: exit 0, or 1 at the first mismatch.
``validate-policy`` prints a summary of a policy file and its warnings (valid but probably
not meant: a class whose cost x max exceeds the budget), or the error naming the key (exit 2).
Both need only the core install.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TextIO

from omniroute.engine.log import LogError
from omniroute.engine.policy import Policy, PolicyError, load_policy
from omniroute.engine.replay import replay

from ..filelog import FileLog
from .common import EXIT_FAILED, EXIT_OK, CliError, Command, policy_of_log, reported

__all__ = ["COMMANDS", "describe_policy"]


def _replay_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, metavar="LOG")
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="policy TOML the log was written with (default: LOG.policy.toml if it "
        "exists, else the built-in default policy)",
    )
    parser.add_argument(
        "--snapshot-at",
        type=int,
        metavar="N",
        help="after input N, snapshot the engine, restore it into a new one and go on",
    )


def _replay(args: argparse.Namespace, out: TextIO) -> int:
    log_path: Path = args.log
    chosen = policy_of_log(log_path, args.policy)
    if args.snapshot_at is not None and args.snapshot_at < 0:
        raise CliError(f"--snapshot-at must be >= 0, got {args.snapshot_at}")
    started = time.perf_counter()
    with reported(OSError, LogError, ValueError), FileLog(log_path, readonly=True) as log:
        result = replay(log, chosen.policy, snapshot_at=args.snapshot_at)
    seconds = time.perf_counter() - started

    print(f"log: {log_path}", file=out)
    print(f"policy: {chosen.source}", file=out)
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
        if chosen.path is None:
            print("(was the log written with a different policy? pass --policy FILE)", file=out)
        return EXIT_FAILED
    how = " through the snapshot" if result.snapshot_position is not None else ""
    print(
        f"replay OK: {result.decisions_matched} decisions of {result.inputs_applied} inputs "
        f"byte-identical to the log{how} ({seconds:.1f} s)",
        file=out,
    )
    return EXIT_OK


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, metavar="FILE")


def _validate(args: argparse.Namespace, out: TextIO) -> int:
    with reported(OSError, PolicyError):
        policy = load_policy(args.file)
    for line in describe_policy(policy):
        print(line, file=out)
    warnings = policy.warnings()
    for warning in warnings:
        print(f"warning: {warning}", file=out)
    print(f"{args.file}: OK" + (f" ({len(warnings)} warning(s))" if warnings else ""), file=out)
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


COMMANDS: dict[str, Command] = {
    "replay": Command(
        help="re-decide every input of a log and check the decisions are byte-identical",
        description="Feed every input of LOG to a fresh engine in order and check that the "
        "decisions it makes are exactly those recorded (msgpack bytes). Exit 1 at the "
        "first mismatch.",
        add_arguments=_replay_arguments,
        run=_replay,
    ),
    "validate-policy": Command(
        help="check a policy TOML file",
        description="Load a policy file; print a summary and its warnings and exit 0, or "
        "print the error (naming the key) and exit 2.",
        add_arguments=_validate_arguments,
        run=_validate,
    ),
}
"""The commands of this module, for ``main``'s table."""
