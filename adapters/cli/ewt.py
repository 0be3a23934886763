"""``omniroute ewt``: how far the estimated wait time was from the waits that followed.

::

    omniroute ewt LOG [--policy FILE] [--format table|json]

Replays LOG (a simulator's or the service's: inputs and decisions), estimates each new
contact's wait to a human answer as it began to wait, and compares it with the wait
that followed (``omniroute.adapters.reporting.ewt`` documents the estimator,
``omniroute.adapters.reporting.ewt_accuracy`` the measurement). Exit status 0, or 2
with a message naming the problem.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from omniroute.engine.log import LogError

from ..filelog import FileLog
from .common import EXIT_OK, Command, policy_of_log, reported

if TYPE_CHECKING:
    from ..reporting.ewt_accuracy import ErrorStats, EwtAccuracy
    from ..reporting.table import Table

__all__ = ["COMMANDS", "accuracy_table"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("log", type=Path, metavar="LOG", help="an event log file")
    parser.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="the policy the log was decided with (default: LOG.policy.toml, else the "
        "built-in default policy)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")


def accuracy_table(acc: EwtAccuracy) -> Table:
    """The accuracy as a table: overall, then per channel, queue and origin."""
    from ..reporting.table import Column, Table

    def row(group: str, name: str, s: ErrorStats) -> tuple[object, ...]:
        return (
            group, name, s.count, s.mae_s, s.p50_abs_s, s.p90_abs_s, s.mean_actual_s,
            s.mean_estimate_s, s.bias_s, s.baseline_mae_s, s.baseline_p90_abs_s,
            s.mae_s / s.baseline_mae_s if s.baseline_mae_s > 0 else None,
        )  # fmt: skip

    rows = [row("all", "all", acc.overall)]
    rows += [row("channel", ch, s) for ch, s in acc.by_channel.items()]
    rows += [row("queue", q, s) for q, s in acc.by_queue.items()]
    rows += [row("origin", o, s) for o, s in acc.by_origin.items()]
    return Table(
        title="estimated wait time: its error against the actual waits",
        columns=[
            Column("group"), Column("name"), Column("count", kind="int"),
            Column("mae_s", "MAE", "secs"), Column("p50_abs_s", "p50 err", "secs"),
            Column("p90_abs_s", "p90 err", "secs"),
            Column("mean_actual_s", "mean wait", "secs"),
            Column("mean_estimate_s", "mean est.", "secs"), Column("bias_s", "bias (s)", "num"),
            Column("baseline_mae_s", "baseline MAE", "secs"),
            Column("baseline_p90_abs_s", "baseline p90", "secs"),
            Column("mae_vs_baseline", "MAE/baseline", "pct"),
        ],
        rows=rows,
        notes=[
            f"{acc.contacts} contacts began to wait for a human (new conversations in queues "
            f"humans answer first, bot handoffs); {acc.answered} answered, of which "
            f"{acc.no_estimate} had no estimate; apart: {acc.abandoned} abandoned, "
            f"{acc.callbacks} callbacks, {acc.unanswered} unanswered otherwise or open.",
            "error = |estimate - actual wait to the first human assignment|; bias = mean "
            "(estimate - actual) in seconds; baseline = each queue x channel's mean actual "
            "wait over the whole log, known in hindsight.",
        ],
    )  # fmt: skip


def _run(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting.ewt_accuracy import measure
    from ..reporting.table import format_table, jsonable

    policy = policy_of_log(args.log, args.policy).policy
    with reported(OSError, LogError), FileLog(args.log, readonly=True) as log:
        acc = measure(log, policy)
    if args.format == "json":
        print(json.dumps(jsonable(dataclasses.asdict(acc)), allow_nan=False), file=out)
        return EXIT_OK
    for line in format_table(accuracy_table(acc)):
        print(line, file=out)
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "ewt": Command(
        help="measure the estimated wait time against a log's actual waits",
        description="Replay LOG and, for each contact that began to wait for a human (a new "
        "conversation in a queue humans answer first, or a bot's handoff), compare the "
        "estimated wait time (what callers hear, what a callback offer is based on) with "
        "the wait to its first human answer: count, MAE, p50/p90 absolute error, mean "
        "wait, mean estimate and bias, overall, per channel and per queue, beside a "
        "baseline that knows each queue x channel's mean wait in hindsight. Abandoned "
        "contacts and callbacks have no actual wait and are counted apart.",
        add_arguments=_arguments,
        run=_run,
        extra="reporting",
    ),
}
"""The commands of this module, for ``main``'s table."""
