"""Simulated logs for tests: scenarios played through the real engine, in memory or on disk."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from omniroute.adapters.cli.common import policy_sidecar
from omniroute.adapters.filelog import FileLog
from omniroute.engine import events as ev
from omniroute.engine.log import EventLog
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.policy import Policy, policy_toml
from omniroute.engine.simulation import (
    Scenario,
    SimulationRun,
    load_scenario,
    parse_scenario,
    scenario_policy,
    simulate,
)

T = TypeVar("T")
START = "2026-01-05T08:00:00Z"
START_MS = 1_767_600_000_000


@cache
def small_policy() -> Policy:
    """The policy the ``small`` scenario names."""
    scenario, path = load_scenario("small")
    return scenario_policy(scenario, path.parent)


def _small_into(log: EventLog, seed: int | None) -> SimulationRun:
    scenario, _ = load_scenario("small")
    return simulate(scenario, log, policy=small_policy(), seed=seed)


def simulate_small(path: Path, seed: int | None = None) -> SimulationRun:
    """Simulate ``small`` into a new FileLog at ``path``, its policy saved next to it."""
    with FileLog(path, fsync="never") as log:
        run = _small_into(log, seed)
    policy_sidecar(path).write_text(policy_toml(small_policy()))
    return run


def small_in_memory(seed: int | None = None) -> tuple[MemoryLog, SimulationRun]:
    """Simulate ``small`` into a new MemoryLog."""
    log = MemoryLog()
    return log, _small_into(log, seed)


def events_of(log: EventLog) -> list[ev.Event]:
    """Every event of ``log``, in order."""
    return [e for _, e in log.read()]


def play(scenario: Scenario | dict[str, Any], **kw: Any) -> list[ev.Event]:
    """Simulate a scenario (or its dict) into memory; its log's events (``kw``: simulate's)."""
    if isinstance(scenario, dict):
        scenario = parse_scenario(scenario)
    log = MemoryLog()
    simulate(scenario, log, **kw)
    return events_of(log)


def of_type(events: list[ev.Event], kind: type[T]) -> list[T]:
    """The events of one type."""
    return [e for e in events if isinstance(e, kind)]


def one_queue(**traffic: Any) -> dict[str, Any]:
    """One voice queue, auto-assigned, no wrap-up; traffic keys override the stream."""
    stream = {"name": "calls", "channel": "voice", "queue": "q", "per_hour": 60.0, "known": 0.0}
    stream.update(traffic)
    return {
        "name": "t", "tenant": "t", "start": START, "hours": 2.0, "seed": 5,
        "policy": {"queues": {"q": {"offer_mode": "auto", "wrap_up_s": 0}}},
        "agents": [{"group": "a", "count": 3}],
        "traffic": [stream],
    }  # fmt: skip
