"""Memory over simulated days: does the engine's state stay bounded as history grows?

One engine is fed day after day of the ``small`` scenario's traffic (40 humans and 2 bots,
about 1,800 contacts from 08:00 to 12:00 and their drain), every day with new customers:
each day is simulated on its own (seed ``seed + day``), and its inputs are re-applied to
the one long-lived engine, shifted by whole days, with the day as a prefix of every
conversation id, contact address, customer id and agent id; the agents of a day leave
(``AgentRemoved``) when it is over, the next day's register afresh. So every day routes
as on a fresh engine (``rejected`` counts the inputs that did not apply), and what
the engine keeps across days is only what it remembers of earlier days' customers.

Each figure comes from a fresh child process that applies days 1..N, collects garbage
and reads its resident set size (``VmRSS``, ``rss_mb_Nd``; ``rss_state_mb_Nd`` is that
minus the child's RSS before the first day: interpreter, modules, the engine) and the
snapshot size (``snapshot_bytes_Nd``), for N in 1, 3 and 7; ``customers_Nd`` is the
customers in state. The same is measured with forgetting switched off in the child
(``before_*``: nothing is ever forgotten, as on main before bounded state; the child
replaces ``arrivals._arm`` with a no-op, nothing else changes). ``*_growth_7d_over_1d``
are the 7-day figures over the 1-day ones (target: within 10 %).

``bytes_per_open_conversation`` / ``bytes_per_agent``: in another child, the per-item
figures of ``bench_pipeline.measure_memory`` (``tracemalloc``, RSS and snapshot growth
per queued conversation and per available agent) for ``--memory-n`` items.

    python benchmarks/bench_memory.py [--quick] [--json] [--seed N] [--days 1,3,7]
                                      [--memory-n N] [--retention-s S] [--hours H]
                                      [--no-before]

``--quick``: each day cut to its first two hours of arrivals (about 700 contacts) and a
30-minute drain, 2,000 conversations / agents for the per-item figures: about 30 s.
``--retention-s``: another ``limits.customer_retention_s`` (the policy's by default);
``--no-before``: skip the ``before_*`` children. The RSS figures include the interpreter
(about 34 MB), which a small state barely moves: the snapshot and ``customers_Nd`` are the
sharper measure of what the engine keeps.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from omniroute.engine import Engine, Policy
from omniroute.engine.events import (
    AgentRegistered,
    AgentRemoved,
    Contact,
    ConversationEnded,
    CustomerAbandoned,
    EventRejected,
    Input,
    WrapUpCompleted,
    decode_msgpack,
    encode_msgpack,
    is_decision,
)
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.simulation import Scenario, load_scenario, scenario_policy, simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark scripts
from bench_pipeline import measure_memory

SCENARIO = "small"
DAY_MS = 86_400_000
DAYS = (1, 3, 7)
QUICK_HOURS = 2.0
QUICK_DRAIN_MINUTES = 30.0
MEMORY_N = 10_000
QUICK_MEMORY_N = 2_000
_ID_FIELDS = ("conversation_id", "leg", "new_conversation_id", "agent_id", "to_agent")


def small(
    quick: bool, retention_s: float | None = None, hours: float | None = None
) -> tuple[Scenario, Policy]:
    """The scenario (cut short for ``--quick``, or to ``hours`` of arrivals) and its policy
    (with ``retention_s`` as its ``limits.customer_retention_s``, if given)."""
    scenario, path = load_scenario(SCENARIO)
    policy = scenario_policy(scenario, path.parent)
    if retention_s is not None:
        limits = msgspec.structs.replace(policy.limits, customer_retention_s=retention_s)
        policy = msgspec.structs.replace(policy, limits=limits)
    if quick:
        scenario = msgspec.structs.replace(
            scenario, hours=QUICK_HOURS, drain_minutes=QUICK_DRAIN_MINUTES
        )
    if hours is not None:
        scenario = msgspec.structs.replace(scenario, hours=hours)
    return scenario, policy


# --- the days' inputs ---------------------------------------------------------------------


def _renamed(event: Input, day: int) -> Input:
    """``event`` on day ``day``: ``day`` days later, its ids and contacts of that day."""
    prefix = f"d{day}-"
    changes: dict[str, Any] = {"ts": event.ts + day * DAY_MS}
    not_before = getattr(event, "not_before", None)
    if isinstance(not_before, int):  # a callback's time
        changes["not_before"] = not_before + day * DAY_MS
    for name in _ID_FIELDS:
        value = getattr(event, name, None)
        if isinstance(value, str):
            changes[name] = prefix + value
    contact = getattr(event, "contact", None)
    if isinstance(contact, Contact):
        changes["contact"] = Contact(contact.channel, prefix + contact.address)
    contacts = getattr(event, "contacts", None)
    if isinstance(contacts, list):
        changes["contacts"] = [Contact(c.channel, prefix + c.address) for c in contacts]
    customer_id = getattr(event, "customer_id", None)
    if isinstance(customer_id, str):
        changes["customer_id"] = prefix + customer_id
    return msgspec.structs.replace(event, **changes)


def day_inputs(scenario: Scenario, policy: Policy, seed: int, day: int) -> list[bytes]:
    """Day ``day``'s inputs, encoded: its own simulation, renamed, then its agents leave."""
    log = MemoryLog()
    simulate(scenario, log, policy=policy, seed=seed + day)
    inputs: list[Input] = []
    agents: dict[str, None] = {}
    for raw in log.records:
        event = decode_msgpack(raw)
        if is_decision(event):
            continue
        renamed = _renamed(event, day)  # type: ignore[arg-type]
        inputs.append(renamed)
        if isinstance(renamed, AgentRegistered):
            agents[renamed.agent_id] = None
    last = inputs[-1].ts if inputs else scenario.start_ms + day * DAY_MS
    inputs += _closing(scenario, policy, inputs, last)
    tenant = scenario.tenant
    inputs += [AgentRemoved(tenant=tenant, ts=last, agent_id=a) for a in agents]
    return [encode_msgpack(e) for e in inputs]


def _closing(scenario: Scenario, policy: Policy, inputs: list[Input], ts: int) -> list[Input]:
    """What closes the conversations the day left open (its drain was cut short): they
    end, finish wrap-up or are abandoned, so no day hands work on to the next."""
    engine = Engine(policy)
    for sent in inputs:
        engine.apply(sent)
    tenant = engine.tenant(scenario.tenant)
    closing: list[Input] = []
    for _ in range(3):
        if tenant is None or not tenant.conversations:
            break
        for cid, conv in list(tenant.conversations.items()):
            event: Input
            if conv.stage == "wrap_up" and conv.owner is not None:
                event = WrapUpCompleted(tenant=tenant.tenant, ts=ts, conversation_id=cid,
                                        agent_id=conv.owner)  # fmt: skip
            elif conv.owner is not None:
                event = ConversationEnded(tenant=tenant.tenant, ts=ts, conversation_id=cid)
            else:
                event = CustomerAbandoned(tenant=tenant.tenant, ts=ts, conversation_id=cid)
            decisions = engine.apply(event)
            if not any(isinstance(d, EventRejected) for d in decisions):
                closing.append(event)
    return closing


def write_days(directory: Path, scenario: Scenario, policy: Policy, seed: int, days: int) -> float:
    """One file per day of encoded inputs; returns the seconds the simulations took."""
    started = time.perf_counter()
    for day in range(days):
        records = day_inputs(scenario, policy, seed, day)
        (directory / f"day{day}.msgpack").write_bytes(msgspec.msgpack.encode(records))
    return time.perf_counter() - started


# --- measurements (each in a fresh child process) ---------------------------------------------


def _rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")  # pragma: no cover


def measure_days(
    directory: Path,
    days: int,
    quick: bool,
    keep_customers: bool,
    retention_s: float | None,
    hours: float | None,
) -> dict[str, Any]:
    """Apply days 1..``days`` to one engine; its RSS, snapshot and what it holds."""
    if keep_customers:  # the engine as it was before bounded state: nobody is forgotten
        from omniroute.engine import arrivals

        setattr(arrivals, "_arm", lambda ctx, tenant, customer: None)  # noqa: B010
    scenario, policy = small(quick, retention_s, hours)
    engine = Engine(policy)
    gc.collect()
    rss0 = _rss_bytes()
    decoder = msgspec.msgpack.Decoder(list[bytes])
    inputs = rejected = 0
    started = time.perf_counter()
    for day in range(days):
        records = decoder.decode((directory / f"day{day}.msgpack").read_bytes())
        for raw in records:
            decisions = engine.apply(decode_msgpack(raw))
            inputs += 1
            rejected += sum(1 for d in decisions if isinstance(d, EventRejected))
        del records
    seconds = time.perf_counter() - started
    gc.collect()
    rss1 = _rss_bytes()
    tenant = engine.tenant(scenario.tenant)
    assert tenant is not None
    return {
        "rss_bytes": rss1,
        "rss_state_bytes": rss1 - rss0,
        "snapshot_bytes": len(engine.snapshot()),
        "customers": len(tenant.customers),
        "contacts": len(tenant.contact_customer),
        "open_conversations": len(tenant.conversations),
        "agents": len(tenant.agents),
        "timers": len(tenant.timers),
        "forget_entries": len(getattr(tenant, "forget", [])),
        "inputs": inputs,
        "rejected": rejected,
        "apply_s": round(seconds, 2),
    }


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"measurement {args} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# --- main -------------------------------------------------------------------------------


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two hours a day: about 30 s")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--seed", type=int, help="first day's seed (default: the scenario's)")
    parser.add_argument("--days", default=",".join(map(str, DAYS)), help="days to measure at")
    parser.add_argument("--memory-n", type=int, help="conversations / agents per-item figures")
    parser.add_argument("--no-before", action="store_true", help="skip the before_* figures")
    parser.add_argument(
        "--retention-s", type=float, help="limits.customer_retention_s (default: the policy's)"
    )
    parser.add_argument("--hours", type=float, help="hours of arrivals a day (override)")
    parser.add_argument("--child-days", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-keep", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-items", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scenario, policy = small(args.quick, args.retention_s, args.hours)
    seed = scenario.seed if args.seed is None else args.seed
    if args.child_days is not None:
        assert args.child_dir is not None
        measured = measure_days(
            args.child_dir, args.child_days, args.quick, args.child_keep, args.retention_s,
            args.hours,
        )  # fmt: skip
        print(json.dumps(measured))
        return 0
    if args.child_items is not None:
        print(json.dumps(measure_memory(args.child_items, seed)))
        return 0

    days = sorted({int(d) for d in args.days.split(",")})
    if 1 not in days or 7 not in days:
        parser.error("--days must include 1 and 7")
    memory_n = args.memory_n or (QUICK_MEMORY_N if args.quick else MEMORY_N)
    quick = ["--quick"] if args.quick else []
    if args.retention_s is not None:
        quick += ["--retention-s", str(args.retention_s)]
    if args.hours is not None:
        quick += ["--hours", str(args.hours)]
    started = time.perf_counter()
    result: dict[str, Any] = {
        "scenario": SCENARIO, "quick": args.quick, "seed": seed,
        "hours_a_day": scenario.hours,
        "customer_retention_s": policy.limits.customer_retention_s,
        "sticky_window_s": max(q.sticky_window_s for q in policy.queues.values()),
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        directory = Path(tmp)
        result["simulate_s"] = round(write_days(directory, scenario, policy, seed, max(days)), 2)
        variants = [("", [])] if args.no_before else [("", []), ("before_", ["--child-keep"])]
        for prefix, extra in variants:
            for n in days:
                m = _child([*quick, "--seed", str(seed), "--child-days", str(n),
                            "--child-dir", str(directory), *extra])  # fmt: skip
                result[f"{prefix}rss_mb_{n}d"] = round(m["rss_bytes"] / 2**20, 1)
                result[f"{prefix}rss_state_mb_{n}d"] = round(m["rss_state_bytes"] / 2**20, 2)
                result[f"{prefix}snapshot_bytes_{n}d"] = m["snapshot_bytes"]
                result[f"{prefix}customers_{n}d"] = m["customers"]
                result[f"{prefix}open_conversations_{n}d"] = m["open_conversations"]
                result[f"{prefix}inputs_{n}d"] = m["inputs"]
                result[f"{prefix}rejected_{n}d"] = m["rejected"]
                if prefix == "":
                    result[f"contacts_{n}d"] = m["contacts"]
                    result[f"forget_entries_{n}d"] = m["forget_entries"]
                    result[f"agents_{n}d"] = m["agents"]
                    result[f"timers_{n}d"] = m["timers"]
            last = max(days)
            for what in ("rss", "rss_state", "snapshot"):
                unit = "bytes" if what == "snapshot" else "mb"
                result[f"{prefix}{what}_growth_{last}d_over_1d"] = _ratio(
                    result[f"{prefix}{what}_{unit}_{last}d"], result[f"{prefix}{what}_{unit}_1d"]
                )
    result.update(_child([*quick, "--seed", str(seed), "--child-items", str(memory_n)]))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["targets"] = {"rss_growth_7d_over_1d": 1.1, "snapshot_growth_7d_over_1d": 1.1}
    result["meets_targets"] = {
        key: result.get(key, 0) <= limit for key, limit in result["targets"].items()
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>36}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
