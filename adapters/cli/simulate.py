"""``omniroute simulate`` and ``omniroute demo``: a simulated contact centre, reported.

::

    omniroute simulate SCENARIO [--policy FILE|PRESET] [--seed N] [--log PATH] [--db PATH]
                                [--plots DIR] [--force] [--json]
    omniroute simulate SCENARIO --compare A B [--dir DIR] [--plots DIR] [--seed N] [--json]
    omniroute demo [--dir DIR] [--seed N] [--policy FILE|PRESET] [--no-plots]
    omniroute demo --live [--speed 60] [--from HH:MM] [--host H] [--port P] [--dir DIR]

SCENARIO is a built-in name (``small``, ``demo``, ``telco``, ``day``, ``targets``,
``blend``, ``chain``) or a TOML file. A policy is a TOML file (looked for here, then next to the
scenario) or the name of a scoring preset (the scenario's policy with that preset),
optionally followed by ``KEY=VALUE`` settings changed on it, comma-separated (a TOML
value; a dotted key reaches into tables); settings alone change the scenario's policy.
So the old rule against the scenario's recommended one::

    omniroute simulate targets --compare urgency=arrival targets.policy.toml
    omniroute simulate blend --compare urgency=arrival,max_per_pass=1000 blend.policy.toml
    omniroute simulate chain --compare prefer_window_s=0 chain.policy.toml
    omniroute simulate blend --policy balanced,profiles.default.classes.email.max=10

Each run writes the event log (the embedded ``FileLog``), the policy it was
decided with next to it (``LOG.policy.toml``, so ``omniroute replay`` re-decides it),
and the DuckDB projection, then prints the service-level report read from the
projection, and says how the report's totals reconcile with the contacts simulated
(conversations + rejoins); the demo also shows a customer it read back from the log
with two live legs at once. Without ``--log`` they go to a temporary folder removed
afterwards (``--db`` keeps the database). ``--compare`` runs the same arrivals under two
policies and prints them side by side. A progress bar is drawn on stderr when it is a
terminal. ``demo --live`` plays the simulated day at a chosen speed with the wallboard
(``live``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any, TextIO

import msgspec

from omniroute.engine.policy import Policy, PolicyError, parse_policy, policy_toml
from omniroute.engine.simulation import (
    LiveLegs,
    Scenario,
    ScenarioError,
    SimulationRun,
    builtin_scenarios,
    load_scenario,
    scenario_policy,
    simulate,
    simultaneous_legs,
)

from ..filelog import FileLog
from .common import (
    EXIT_OK,
    CliError,
    Command,
    fresh_outputs,
    policy_or_preset,
    policy_sidecar,
    reported,
)

__all__ = ["COMMANDS"]


def _simulate_arguments(sim: argparse.ArgumentParser) -> None:
    sim.add_argument("scenario", metavar="SCENARIO")
    sim.add_argument(
        "--policy", metavar="FILE|PRESET",
        help="policy TOML file or preset name, and/or KEY=VALUE,... settings changed on it",
    )  # fmt: skip
    sim.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    sim.add_argument(
        "--log", type=Path, metavar="PATH",
        help="event log to write and keep (default: a temporary one, removed afterwards)",
    )  # fmt: skip
    sim.add_argument("--db", type=Path, metavar="PATH", help="DuckDB file (default: LOG.duckdb)")
    sim.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots into DIR")
    sim.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="run the same arrivals under policies A and B (files or preset names, and/or "
        "KEY=VALUE,... settings changed on them or the scenario's policy)",
    )
    sim.add_argument("--dir", type=Path, metavar="DIR", help="--compare: where to write logs")
    sim.add_argument("--force", action="store_true", help="overwrite existing output files")
    sim.add_argument("--json", action="store_true", help="print the figures as JSON")


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--dir", type=Path, metavar="DIR", help="output folder (default: new temp)")
    demo.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    demo.add_argument("--policy", metavar="FILE|PRESET", help="policy TOML file or preset name")
    demo.add_argument("--no-plots", action="store_true", help="do not write the PNG plots")
    demo.add_argument("--force", action="store_true", help="overwrite existing output files")
    live = demo.add_argument_group(
        "live", "--live: play the simulated day at SPEED times real time into DIR/live.olog, "
        "with the supervisors' wallboard over it (the 'wallboard' extra), until Ctrl-C",
    )  # fmt: skip
    live.add_argument("--live", action="store_true", help="play the day live with the wallboard")
    live.add_argument("--speed", type=float, help="simulated seconds per second (default: 60)")
    live.add_argument(
        "--from", dest="from_", type=_clock_minutes, metavar="HH:MM",
        help="start the pace at this time of the simulated day (what comes before: at once)",
    )  # fmt: skip
    live.add_argument("--host", help="the wallboard's address (default: 127.0.0.1)")
    live.add_argument("--port", type=int, help="the wallboard's port (default: 8765; 0: any)")
    live.add_argument(
        "--scenario", metavar="NAME|FILE", help="play another scenario's day (default: demo)"
    )


def _clock_minutes(text: str) -> int:
    from .live import clock_minutes

    try:
        return clock_minutes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# --- pieces ------------------------------------------------------------------------------


def _policy(spec: str | None, scenario: Scenario, base: Path) -> tuple[Policy, str]:
    """The policy named by ``spec``, else the scenario's; and a label. ``spec`` is a
    file (here or next to the scenario) or a preset, and/or comma-separated ``KEY=VALUE``
    settings (a TOML value; a dotted key reaches into tables) changed on that policy or
    on the scenario's."""
    policy = scenario_policy(scenario, base)
    if spec is None:
        return policy, f"{scenario.name}'s policy ({policy.preset})"
    parts = spec.split(",")
    named = [part for part in parts if "=" not in part]
    if len(named) > 1:
        raise PolicyError(f"{spec!r}: name one policy file or preset, then KEY=VALUE settings")
    if named:
        beside = base / named[0]  # a policy file next to the scenario's
        found = not Path(named[0]).exists() and beside.is_file()
        policy = policy_or_preset(str(beside) if found else named[0], policy)
    settings = [part.split("=", 1) for part in parts if "=" in part]
    return (_changed(policy, settings) if settings else policy), spec


def _changed(policy: Policy, settings: list[list[str]]) -> Policy:
    """``policy`` with each ``[key, value]`` setting changed (``urgency``, ``max_per_pass``,
    ``profiles.default.classes.email.max``...); the result is checked as a policy file is."""
    data = msgspec.to_builtins(policy)
    for key, text in settings:
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text  # a bare word: a string
        *path, last = key.strip().split(".")
        node = data
        for part in path:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise PolicyError(f"{key}: {part!r} is not a table")
        node[last] = value
    return parse_policy(data)


class _ProgressBar:
    """A tqdm bar over simulated minutes on stderr, drawn only when it is a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar: Any = None

    def update(self, done_ms: int, total_ms: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_ms // 60_000, unit="sim-min", desc=self.label, leave=False,
                dynamic_ncols=True,
            )  # fmt: skip
        self.bar.update(done_ms // 60_000 - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_one(
    scenario: Scenario, policy: Policy, log_path: Path, db: Path, seed: int | None, label: str
) -> tuple[SimulationRun, float, float]:
    """Simulate onto ``log_path``, save its policy, project into ``db``: run, sim s, proj s."""
    from ..reporting import Projector

    log_path.parent.mkdir(parents=True, exist_ok=True)
    fresh_outputs([log_path, policy_sidecar(log_path), db, db.with_name(db.name + ".wal")], True)
    bar = _ProgressBar(label) if sys.stderr.isatty() else None
    started = time.perf_counter()
    try:
        with FileLog(log_path, fsync="never") as log:
            progress = bar.update if bar is not None else None
            result = simulate(scenario, log, policy=policy, seed=seed, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    simulated = time.perf_counter() - started
    policy_sidecar(log_path).write_text(policy_toml(policy))
    started = time.perf_counter()
    interval_s = scenario.interval_minutes * 60
    with (
        FileLog(log_path, readonly=True) as log,
        Projector(db, policy, interval_s=interval_s) as projector,
    ):
        projector.project(log)
    return result, simulated, time.perf_counter() - started


def _describe(result: SimulationRun, simulated_s: float, projected_s: float) -> list[str]:
    def clock(ts: int) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts / 1000))

    conversations = result.interactions - result.rejoins
    return [
        f"simulated {clock(result.first_ts)} - {clock(result.last_ts)} UTC: "
        f"{result.interactions:,} contacts = {conversations:,} conversations + "
        f"{result.rejoins} rejoins ({result.switches} second legs customers opened on "
        f"another channel, {result.follow_ups} follow-up tasks), {result.abandons:,} "
        f"abandoned, {result.callbacks} callbacks, {result.transfers} transfers, "
        f"{result.handoffs:,} bot hand-offs, {result.bot_resolved:,} resolved by bots",
        f"legs: {result.legs_joined} taken on by the agent serving the conversation, "
        f"{result.legs_waited} waited for room, {result.legs_ended} ended while the "
        f"conversation went on",
        f"{result.events:,} events ({result.inputs:,} inputs incl. {result.ticks:,} ticks, "
        f"{result.decisions:,} decisions) in {simulated_s:.1f} s "
        f"({result.events / max(simulated_s, 1e-9):,.0f} events/s); projected in "
        f"{projected_s:.1f} s; rejected inputs {result.rejected}; open at the end "
        f"{result.open_at_end}",
    ]


def _report(db: Path, out: TextIO | None) -> dict[str, Any]:
    """Print the service-level report by channel (unless ``out`` is None); its rows."""
    from ..reporting import connect_readonly, format_table, jsonable, service_report

    with connect_readonly(db) as con:
        table = service_report(con, by=("channel",))
    if out is not None:
        for line in format_table(table):
            print(line, file=out)
    rows = [{k: jsonable(v) for k, v in r.items()} for r in table.records()]
    return {"service_level": rows}


def _reconcile(result: SimulationRun, rows: list[dict[str, Any]]) -> str:
    """Whether the report's total row adds up to the simulator's contacts (conversations
    + rejoins). A report with a ``rejoins`` column counts every contact; one without
    counts conversations."""
    total = next((r for r in rows if r.get("channel") == "all"), None)
    if total is None:
        return "the report has no total row to reconcile"
    if "rejoins" in total:
        contacts, rejoins = int(total["contacts"]), int(total["rejoins"])
    else:
        contacts, rejoins = int(total["contacts"]) + result.rejoins, result.rejoins
    report = f"{contacts:,} contacts = {contacts - rejoins:,} conversations + {rejoins} rejoins"
    if (contacts, rejoins) == (result.interactions, result.rejoins):
        return f"totals reconcile: the report's {report}, as simulated"
    return (
        f"totals differ: the report's {report}; simulated {result.interactions:,} contacts "
        f"with {result.rejoins} rejoins"
    )


def _two_live_legs(log_path: Path) -> LiveLegs | None:
    """The first known customer the log shows with a call and another channel live with
    one agent (else the first with any two live legs)."""
    first = None
    with FileLog(log_path, readonly=True) as log:
        for moment in simultaneous_legs(e for _, e in log.read()):
            if moment.customer_id is None:
                continue
            if "voice" in moment.channels:
                return moment
            first = first or moment
    return first


def _plots(db: Path, directory: Path, scenario: Scenario, title: str) -> list[Path]:
    from ..reporting import write_plots

    return write_plots(db, directory, goal=scenario.sl_goal, title=title)


def _summary(result: SimulationRun, simulated_s: float) -> dict[str, Any]:
    figures = msgspec.to_builtins(result.__dict__)
    figures.update(events=result.events, simulated_s=round(simulated_s, 3))
    return dict(figures)


# --- commands ----------------------------------------------------------------------------


@reported(ScenarioError, PolicyError)
def _simulate(args: argparse.Namespace, out: TextIO) -> int:
    if args.compare:
        return _compare(args, out)
    if args.log is not None:
        return _simulate_into(args, out, args.log, kept=True)
    with tempfile.TemporaryDirectory(prefix="omniroute-sim-") as scratch:  # gone afterwards
        return _simulate_into(args, out, Path(scratch) / "simulated.olog", kept=False)


def _simulate_into(args: argparse.Namespace, out: TextIO, log_path: Path, kept: bool) -> int:
    """Simulate onto ``log_path``, report; ``kept``: the log stays (else only ``--db``)."""
    scenario, path = load_scenario(args.scenario)
    policy, label = _policy(args.policy, scenario, path.parent)
    db = args.db or log_path.with_suffix(".duckdb")
    if not args.force:
        fresh_outputs([log_path, db], False)
    result, simulated, projected = _run_one(scenario, policy, log_path, db, args.seed, label)
    plots = _plots(db, args.plots, scenario, f"{scenario.name}, {label}") if args.plots else []
    db_kept = kept or args.db is not None
    if args.json:
        figures: dict[str, Any] = {
            "run": _summary(result, simulated),
            "log": str(log_path) if kept else None,
            "db": str(db) if db_kept else None,
        }
        figures.update(_report(db, None))
        figures["plots"] = [str(p) for p in plots]
        print(json.dumps(figures), file=out)
        return EXIT_OK
    print(f"omniroute simulate: scenario {scenario.name!r} ({path}), seed "
          f"{result.seed}, policy: {label}", file=out)  # fmt: skip
    for line in _describe(result, simulated, projected):
        print(line, file=out)
    print("", file=out)
    rows = _report(db, out)["service_level"]
    print(_reconcile(result, rows), file=out)
    print("", file=out)
    if kept:
        print(f"log: {log_path}   (omniroute replay {log_path})", file=out)
    else:
        print("log: not kept (pass --log PATH to keep it, with its database)", file=out)
    if db_kept:
        print(f"reporting database: {db}   (omniroute report --db {db} --by interval)", file=out)
    if plots:
        print(f"plots: {', '.join(str(p) for p in plots)}", file=out)
    return EXIT_OK


def _compare(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import compare, format_comparison

    scenario, path = load_scenario(args.scenario)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="omniroute-compare-"))
    sides: list[tuple[str, Path, SimulationRun, float]] = []
    for i, spec in enumerate(args.compare):
        policy, label = _policy(spec, scenario, path.parent)
        tag = "AB"[i]
        log_path = folder / f"{scenario.name}-{tag}.olog"
        db = log_path.with_suffix(".duckdb")
        if not args.force:
            fresh_outputs([log_path, db], False)
        result, simulated, projected = _run_one(scenario, policy, log_path, db, args.seed, label)
        sides.append((label, db, result, simulated))
        if not args.json:
            print(f"{tag}: {label}", file=out)
            for line in _describe(result, simulated, projected):
                print(f"   {line}", file=out)
        if args.plots:
            _plots(db, args.plots / tag, scenario, f"{scenario.name}, {label}")
    comparison = compare(sides[0][1], sides[1][1], labels=(sides[0][0], sides[1][0]))
    if args.json:
        print(json.dumps({
            "scenario": scenario.name, "seed": sides[0][2].seed,
            "runs": [_summary(s[2], s[3]) for s in sides],
            "comparison": comparison.to_dict(),
        }), file=out)  # fmt: skip
        return EXIT_OK
    print("", file=out)
    print(f"the same {sides[0][2].interactions:,} arrivals of {scenario.name!r} "
          f"(seed {sides[0][2].seed}) under two policies:", file=out)  # fmt: skip
    for line in format_comparison(comparison):
        print(line, file=out)
    print("", file=out)
    print(f"logs and databases: {folder}", file=out)
    if args.plots:
        print(f"plots: {args.plots / 'A'} and {args.plots / 'B'}", file=out)
    return EXIT_OK


def _switchers(db: Path, limit: int = 3) -> list[tuple[str, str]]:
    """(tenant, customer) of customers whose conversation crossed channels: the first
    answered one of each channel sequence, earliest first."""
    from ..reporting import connect_readonly

    with connect_readonly(db) as con:
        rows = con.execute(
            "SELECT tenant, customer_id FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY channels"
            "      ORDER BY first_answer_at IS NULL, first_contact_at, conversation_id) AS n"
            "  FROM interactions"
            "  WHERE customer_id IS NOT NULL AND len(list_distinct(channels)) > 1) "
            "WHERE n = 1 ORDER BY first_contact_at, conversation_id LIMIT ?",
            [limit],
        ).fetchall()
    return [(str(t), str(c)) for t, c in rows]


def _print_two_live_legs(log_path: Path, db: Path, out: TextIO) -> None:
    """A customer the run shows with two live legs at once, and their customer-360."""
    from ..reporting import connect_readonly, customer_view, format_customer

    moment = _two_live_legs(log_path)
    if moment is None or moment.customer_id is None:
        return
    print("", file=out)
    print("a customer with two live legs at once (read back from the log)", file=out)
    at = time.strftime("%H:%M:%S", time.gmtime(moment.ts / 1000))
    legs = " + ".join(moment.channels)
    print(f"  customer {moment.customer_id}: {legs} live, agent {moment.agent_id} "
          f"(conversation {moment.conversation_id}, {at} UTC)", file=out)  # fmt: skip
    with connect_readonly(db) as con:
        for line in format_customer(customer_view(con, moment.customer_id, "demo")):
            print(f"  {line}", file=out)


@reported(ScenarioError, PolicyError)
def _demo(args: argparse.Namespace, out: TextIO) -> int:
    from ..reporting import connect_readonly, customer_view, format_customer

    if args.live:
        return _demo_live(args, out)
    live_only = {"--speed": args.speed, "--from": args.from_, "--host": args.host,
                 "--port": args.port, "--scenario": args.scenario}  # fmt: skip
    if given := [name for name, value in live_only.items() if value is not None]:
        raise CliError(f"{', '.join(given)}: only with --live")
    scenario, path = load_scenario("demo")
    policy, label = _policy(args.policy, scenario, path.parent)
    folder = args.dir or Path(tempfile.mkdtemp(prefix="omniroute-demo-"))
    log_path, db = folder / "demo.olog", folder / "demo.duckdb"
    if not args.force:
        fresh_outputs([log_path, db], False)
    print(f"omniroute demo: {scenario.description}", file=out)
    print(f"seed {args.seed if args.seed is not None else scenario.seed}, policy: {label}; "
          f"writing to {folder}", file=out)  # fmt: skip
    result, simulated, projected = _run_one(scenario, policy, log_path, db, args.seed, label)
    for line in _describe(result, simulated, projected):
        print(line, file=out)
    print("", file=out)
    rows = _report(db, out)["service_level"]
    print(_reconcile(result, rows), file=out)
    _print_two_live_legs(log_path, db, out)
    switchers = _switchers(db)
    if switchers:
        print("", file=out)
        print("customer-360 of customers who switched channel mid-conversation", file=out)
        with connect_readonly(db) as con:
            for tenant, customer in switchers:
                print("", file=out)
                for line in format_customer(customer_view(con, customer, tenant)):
                    print(f"  {line}", file=out)
    print("", file=out)
    if not args.no_plots:
        plots = _plots(db, folder / "plots", scenario, f"demo day, {label}")
        print(f"plots written to {folder / 'plots'}:", file=out)
        for plot in plots:
            print(f"  {plot.name}", file=out)
    print(f"event log: {log_path}   (replay it: omniroute replay {log_path})", file=out)
    print(f"reporting database: {db}", file=out)
    print(f"  omniroute report --db {db} --by queue|interval|agent", file=out)
    print(f'  omniroute sql --db {db} "SELECT * FROM customer_360 LIMIT 5"', file=out)
    return EXIT_OK


def _demo_live(args: argparse.Namespace, out: TextIO) -> int:
    """``demo --live``: the day simulated, then played with the wallboard (``live``)."""
    from .live import run_live

    scenario, path = load_scenario(args.scenario or "demo")
    policy, label = _policy(args.policy, scenario, path.parent)
    return run_live(
        scenario, policy, label, folder=args.dir, seed=args.seed,
        speed=60.0 if args.speed is None else args.speed,
        host=args.host or "127.0.0.1", port=8765 if args.port is None else args.port,
        from_minutes=args.from_, force=args.force, out=out,
    )  # fmt: skip


COMMANDS: dict[str, Command] = {
    "simulate": Command(
        help="simulate a contact centre through the engine; report, plot, compare policies",
        description="Simulate SCENARIO (built-in: " + ", ".join(builtin_scenarios()) + "; or "
        "a TOML file) through the engine onto the embedded log, project it into DuckDB and "
        "print the report.",
        add_arguments=_simulate_arguments,
        run=_simulate,
        extra="reporting",
    ),
    "demo": Command(
        help="a compact simulated day of a contact centre: report, customer-360, plots",
        description="Simulate the built-in 'demo' scenario (about 200 agents incl. bots, "
        "every channel, about 30,000 contacts in a day) onto the embedded log, then print "
        "the service-level report and how its totals reconcile, a customer with two live "
        "legs at once (a call and the email sent during it), the customer-360 of customers "
        "who switched channel, and write the plots. With --live, play the simulated day at "
        "--speed times real time into a live log with the supervisors' wallboard over it "
        "(its URL is printed) until Ctrl-C.",
        add_arguments=_demo_arguments,
        run=_demo,
        extra="reporting",
    ),
}
"""The commands of this module, for ``main``'s table."""
