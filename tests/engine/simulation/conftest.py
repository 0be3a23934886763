"""Shared fixtures of the simulator's tests: the ``small`` scenario, simulated once."""

from __future__ import annotations

import pytest

from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from tests.support.simulation import events_of, small_in_memory


@pytest.fixture(scope="session")
def small_log() -> MemoryLog:
    """The built-in ``small`` scenario (its own seed) simulated into memory."""
    log, _ = small_in_memory()
    return log


@pytest.fixture(scope="session")
def small_events(small_log: MemoryLog) -> list[ev.Event]:
    """The events of :func:`small_log`."""
    return events_of(small_log)
