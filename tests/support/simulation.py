"""Simulated logs for tests: the built-in ``small`` scenario through the real engine."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from omniroute.adapters.cli.main import policy_sidecar
from omniroute.adapters.filelog import FileLog
from omniroute.engine.policy import Policy, policy_toml
from omniroute.engine.simulation import (
    SimulationRun,
    load_scenario,
    scenario_policy,
    simulate,
)


@cache
def small_policy() -> Policy:
    """The policy the ``small`` scenario names."""
    scenario, path = load_scenario("small")
    return scenario_policy(scenario, path.parent)


def simulate_small(path: Path, seed: int | None = None) -> SimulationRun:
    """Simulate ``small`` into a new FileLog at ``path``, its policy saved next to it."""
    scenario, _ = load_scenario("small")
    with FileLog(path, fsync="never") as log:
        run = simulate(scenario, log, policy=small_policy(), seed=seed)
    policy_sidecar(path).write_text(policy_toml(small_policy()))
    return run
