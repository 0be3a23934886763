"""Which estimated-wait-time formula is closest to the simulator's actual waits?

Simulates a set of seeded logs in memory, replays each with
``omniroute.adapters.reporting.ewt_accuracy.observe`` (each contact that began to wait
for a human, with its queue's :class:`QueueLoad` then and the wait that followed) and
scores candidate estimators on the answered contacts with ``accuracy``: the MAE and p90
absolute error of each, and their ratio to the hindsight baseline's (each queue x
channel's mean actual wait over the log). ``score`` is the mean over logs of MAE /
baseline MAE: lower is better, 1.0 is the baseline. The chosen ``estimate_wait`` is one
of the candidates (``chosen``); the module docstring of ``ewt`` quotes this benchmark's
figures.

Logs: ``small`` (seeds 1-3), three 6-hour single voice queues at and past saturation,
and (without ``--quick``) the demo day (seeds 7 and 11: about 2 minutes). Candidates:
``ahead / max(a x departures / window, b x agents / handle)`` for a grid of a and b,
the staffing and throughput estimates alone, their average, and ``+ 1`` variants.

Usage::

    python benchmarks/bench_ewt.py [--quick] [--json] [--top N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from omniroute.adapters.reporting.ewt import QueueLoad, estimate_wait
from omniroute.adapters.reporting.ewt_accuracy import Observation, accuracy, observe
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.simulation import load_scenario, parse_scenario, scenario_policy, simulate

Estimator = Callable[[QueueLoad], float | None]


def _one_queue(per_hour: float, agents: int, patience_s: float | None, seed: int) -> dict[str, Any]:
    scenario: dict[str, Any] = {
        "name": f"one-{per_hour:g}-{agents}", "tenant": "t", "start": "2026-01-05T08:00:00Z",
        "hours": 6.0, "seed": seed,
        "policy": {"queues": {"q": {"offer_mode": "auto", "wrap_up_s": 0}}},
        "agents": [{"group": "a", "count": agents}],
        "traffic": [{"name": "calls", "channel": "voice", "queue": "q", "per_hour": per_hour,
                     "known": 0.0}],
    }  # fmt: skip
    if patience_s is not None:
        scenario["patience"] = {"voice": {"mean_s": patience_s}}
    return scenario


def _logs(quick: bool) -> list[tuple[str, list[Observation]]]:
    runs: list[tuple[str, Any, Any, int | None]] = []
    small, small_path = load_scenario("small")
    for seed in (1, 2, 3):
        runs.append((f"small/{seed}", small, scenario_policy(small, small_path.parent), seed))
    for per_hour, agents, patience, seed in (
        (75, 3, None, 5),
        (150, 6, 300.0, 6),
        (50, 3, None, 7),
    ):
        sc = parse_scenario(_one_queue(per_hour, agents, patience, seed))
        runs.append((f"{sc.name}/{seed}", sc, scenario_policy(sc), None))
    if not quick:
        demo, demo_path = load_scenario("demo")
        for seed in (7, 11):
            runs.append((f"demo/{seed}", demo, scenario_policy(demo, demo_path.parent), seed))
    out = []
    for name, scenario, policy, seed in runs:
        log = MemoryLog()
        simulate(scenario, log, policy=policy, seed=seed)
        out.append((name, observe(log, policy)))
    return out


def _max_rate(a: float, b: float, plus: float = 0.0) -> Estimator:
    def est(load: QueueLoad) -> float | None:
        seen = a * load.departures / load.window_s
        h = load.mean_handle_s
        staffed = b * load.agents / h if h else 0.0
        rate = max(seen, staffed)
        return (load.ahead + plus) / rate if rate > 0 else None

    return est


def _staffing(load: QueueLoad) -> float | None:
    h = load.mean_handle_s
    return load.ahead * h / load.agents if h and load.agents else None


def _throughput(load: QueueLoad) -> float | None:
    return load.ahead * load.window_s / load.departures if load.departures else None


def _average(load: QueueLoad) -> float | None:
    s, t = _staffing(load), _throughput(load)
    return t if s is None else s if t is None else (s + t) / 2


def candidates() -> dict[str, Estimator]:
    """Every formula scored, by name."""
    found: dict[str, Estimator] = {
        "chosen": estimate_wait,
        "staffing": _staffing,
        "throughput": _throughput,
        "average": _average,
        "max a=1 b=1 +1": _max_rate(1.0, 1.0, 1.0),
        "max a=1.25 b=1 +0.5": _max_rate(1.25, 1.0, 0.5),
    }
    for a in (0.75, 1.0, 1.25, 1.5, 2.0, 2.5):
        for b in (0.5, 1.0, 1.5, 2.0, 3.0):
            found[f"max a={a:g} b={b:g}"] = _max_rate(a, b)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="no demo days (about 10 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--top", type=int, default=12, help="rows to print (default: 12)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    logs = _logs(args.quick)
    rows = []
    for name, est in candidates().items():
        per_log = {}
        for log_name, obs in logs:
            o = accuracy(obs, est).overall
            per_log[log_name] = {
                "mae_s": o.mae_s, "p90_abs_s": o.p90_abs_s, "bias_s": o.bias_s,
                "vs_baseline": o.mae_s / o.baseline_mae_s, "count": o.count,
            }  # fmt: skip
        score = sum(v["vs_baseline"] for v in per_log.values()) / len(per_log)
        rows.append({"name": name, "score": score, "logs": per_log})
    rows.sort(key=lambda r: r["score"])
    result = {
        "logs": [name for name, _ in logs],
        "observations": {name: len(obs) for name, obs in logs},
        "candidates": rows,
        "chosen_rank": next(i for i, r in enumerate(rows, 1) if r["name"] == "chosen"),
        "seconds": time.perf_counter() - started,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    names = result["logs"]
    print("MAE / baseline MAE per log (lower is better; score = their mean)")
    print(f"{'candidate':22s} {'score':>6s}  " + "  ".join(f"{n:>12s}" for n in names))
    for r in rows[: args.top] + [r for r in rows[args.top :] if r["name"] == "chosen"]:
        cells = "  ".join(f"{r['logs'][n]['vs_baseline']:12.3f}" for n in names)
        print(f"{r['name']:22s} {r['score']:6.3f}  {cells}")
    print(f"chosen: rank {result['chosen_rank']} of {len(rows)}; {result['seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
