"""How fast does the simulator play a contact centre through the engine onto the log?

Loads a built-in scenario (``--scenario``; default ``demo``, a simulated day of about
30,000 contacts and 200 agents; ``--quick``: ``small``, about 1,800 contacts in four
hours) and its policy, then times one call of
``omniroute.engine.simulation.simulate(scenario, log, policy=..., seed=...)`` onto a new,
empty ``FileLog(fsync="never")`` in a temporary directory. Only that call is timed:
loading the scenario, parsing its policy and opening / closing the log are outside.
Inside it are the simulator (arrivals drawn per stream, customers, desktops and bots
reacting to the decisions), the engine deciding every input (a ``Tick`` at each timer's
deadline) and the log encoding and appending [input, *decisions] about 4,096 events a
frame; so this is the cost of a simulated run, not of the engine alone (see
``bench_pipeline.py`` for that).

Figures (``--json`` prints them as one object):

- ``simulated_events_per_s``: events written (inputs + decisions) / wall seconds of the
  call (``perf_counter``), the fastest run; ``wall_s`` and ``cpu_s`` (``process_time``,
  which shows whether a shared machine took the core away: then ``cpu_s`` < ``wall_s``)
  are that run's; ``events_per_cpu_s``; ``wall_s_runs`` lists every run;
- what was simulated (from the returned ``SimulationRun``): ``interactions`` (contacts
  that arrived, channel switches and follow-up tasks included; ``expected_arrivals`` is
  the scenario's own expectation of its arrivals), ``events``, ``inputs``,
  ``decisions``, ``ticks``, ``abandons``, ``rejected`` (inputs the engine refused: should
  be 0), ``open_at_end``, ``event_hours`` (event time covered) and ``log_mb``;
- ``deterministic``: a second run with the same seed into another file writes a
  byte-identical log (SHA-256 of the two files; ``log_sha256`` is its first 16 hex
  digits). The second run is timed too (the fastest run is reported). ``--no-check``
  runs once: ``deterministic`` is then null and ``determinism_checked`` false.

Usage::

    python benchmarks/bench_simulate.py [--quick] [--json] [--scenario NAME|FILE]
                                        [--seed N] [--no-check] [--keep DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omniroute.adapters.filelog import FileLog
from omniroute.engine import Policy
from omniroute.engine.simulation import (
    Scenario,
    SimulationRun,
    load_scenario,
    scenario_policy,
    simulate,
)

HOUR_MS = 3_600_000


def _bar(label: str) -> tuple[Any, Callable[[int, int], None] | None]:
    """A tqdm bar over simulated hours on stderr, only when it is a terminal."""
    if not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(
        desc=label, unit="sim-h", leave=False, bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} h"
    )

    def progress(done_ms: int, total_ms: int) -> None:
        bar.total = total_ms / HOUR_MS
        bar.n = done_ms / HOUR_MS
        bar.refresh()

    return bar, progress


def timed_run(
    scenario: Scenario, policy: Policy, seed: int, path: Path, label: str
) -> tuple[SimulationRun, float, float]:
    """``simulate`` onto a new log at ``path``: the run, its wall and CPU seconds."""
    bar, progress = _bar(label)
    with FileLog(path, fsync="never") as log:
        cpu, started = time.process_time(), time.perf_counter()
        run = simulate(scenario, log, policy=policy, seed=seed, progress=progress)
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    if bar is not None:
        bar.close()
    return run, wall, cpu


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="scenario small (a few seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scenario", help="built-in name or TOML file (default: demo)")
    parser.add_argument("--seed", type=int, help="random seed (default: the scenario's)")
    parser.add_argument(
        "--no-check", action="store_true", help="one run, no determinism check (long scenarios)"
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the logs here")
    args = parser.parse_args(argv)
    name = args.scenario or ("small" if args.quick else "demo")
    scenario, path = load_scenario(name)
    policy = scenario_policy(scenario, path.parent)
    seed = scenario.seed if args.seed is None else args.seed

    def say(msg: str) -> None:
        if not args.json:
            print(msg, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="omniroute-bench-sim-"))
    workdir = args.keep or tmp
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        logs = [workdir / f"{scenario.name}-{i}.olog" for i in range(1 if args.no_check else 2)]
        timings: list[tuple[float, float]] = []
        digests: list[str] = []
        for i, log_path in enumerate(logs):
            log_path.unlink(missing_ok=True)
            run, wall, cpu = timed_run(scenario, policy, seed, log_path, f"run {i + 1}")
            timings.append((wall, cpu))
            digests.append(sha256(log_path))
            say(
                f"run {i + 1}: {run.events:,} events for {run.interactions:,} interactions "
                f"in {wall:.2f} s ({cpu:.2f} s CPU): {run.events / wall:,.0f} events/s"
            )
        log_bytes = logs[0].stat().st_size
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)

    wall, cpu = min(timings)
    checked = len(digests) > 1
    result: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": seed,
        "simulated_events_per_s": round(run.events / wall),
        "events_per_cpu_s": round(run.events / cpu),
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "wall_s_runs": [round(w, 3) for w, _ in timings],
        "interactions": run.interactions,
        "expected_arrivals": round(scenario.expected_arrivals(), 1),
        "events": run.events,
        "inputs": run.inputs,
        "decisions": run.decisions,
        "ticks": run.ticks,
        "abandons": run.abandons,
        "rejected": run.rejected,
        "open_at_end": run.open_at_end,
        "event_hours": round((run.last_ts - run.first_ts) / HOUR_MS, 2),
        "log_mb": round(log_bytes / 1e6, 1),
        "log_sha256": digests[0][:16],
        "deterministic": all(d == digests[0] for d in digests) if checked else None,
        "determinism_checked": checked,
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
