"""The projection's bulk path against its per-event reference, row for row in every table
and view, on logs that hold every event type (the scripted contact centre with a wrap-up
that expires, agents updated and removed and a rejected input, and the simulated
``small`` day).

Bulk: a ``FileLog`` is read a frame at a time (``FileLog.read_events``) into a new
database, so no batch looks contacts or customers up. Reference: the same events from a
log read event by event, projected in small batches by two processes (the second looks
up what the first wrote)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import Projector, fold, project
from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.policy import Policy
from tests.support.projection import POLICY, SCRIPT, arrive, do, scripted_batches, snapshot
from tests.support.projection import write_log as write_batches
from tests.support.simulation import simulate_small, small_policy

Tables = dict[str, list[tuple[Any, ...]]]

EXTRA = [  # after SCRIPT: the event types it does not have
    (90_010, arrive("c11", "voice", "+1011")),
    (90_015, do(ev.OfferAccepted, conversation_id="c11", agent_id="ann")),
    (90_020, do(ev.ConversationEnded, conversation_id="c11")),
    (90_040, do(ev.Tick)),  # c11's wrap-up expires
    (90_050, do(ev.AgentUpdated, agent_id="bob", skills={"sales": 1})),
    (90_060, do(ev.AgentRemoved, agent_id="eve")),
    (90_070, do(ev.AgentRegistered, agent_id="zed", capacity_profile="no-such-profile")),
]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Policy]]:
    tmp = tmp_path_factory.mktemp("bulk")
    scripted = write_batches(tmp / "scripted.olog", scripted_batches(script=SCRIPT + EXTRA))
    simulate_small(tmp / "small.olog", seed=3)
    return {"scripted": (scripted, POLICY), "small": (tmp / "small.olog", small_policy())}


def _events(path: Path) -> list[ev.Event]:
    with FileLog(path, readonly=True) as log:
        return [e for _, e in log.read()]


def test_the_logs_hold_every_event_type(logs: dict[str, tuple[Path, Policy]]) -> None:
    seen = {type(e) for path, _ in logs.values() for e in _events(path)}
    assert seen == set(ev.EVENT_TYPES)


@pytest.fixture(scope="module")
def references(
    tmp_path_factory: pytest.TempPathFactory, logs: dict[str, tuple[Path, Policy]]
) -> dict[str, tuple[int, Tables]]:
    """Each log's end and reference tables: read event by event (the generic ``EventLog`` path),
    projected in batches of 331 by two processes, the second looking up what the first
    wrote."""
    tables: dict[str, tuple[int, Tables]] = {}
    for name, (path, policy) in logs.items():
        reference = MemoryLog()
        reference.append(_events(path))
        ref_db = tmp_path_factory.mktemp("reference") / f"{name}.duckdb"
        with Projector(ref_db, policy) as p:
            p.project(reference, limit=reference.end() // 2, batch_events=331)
        assert snapshot(ref_db)["contacts"]  # the second process looks them up
        with Projector(ref_db, policy) as p:
            p.project(reference, batch_events=331)
        tables[name] = (reference.end(), snapshot(ref_db))
    return tables


@pytest.mark.parametrize(
    "name, batch_events",
    [("scripted", 97), ("scripted", 200_000), ("small", 1_009), ("small", 200_000)],
)
def test_bulk_projection_equals_the_per_event_reference(
    tmp_path: Path, logs: dict[str, tuple[Path, Policy]], references: dict[str, tuple[int, Tables]],
    name: str, batch_events: int,
) -> None:  # fmt: skip
    path, policy = logs[name]
    end, tables = references[name]
    with FileLog(path, readonly=True) as log:
        stats = project(log, tmp_path / "bulk.duckdb", policy, batch_events=batch_events)
    assert stats.position == end
    assert snapshot(tmp_path / "bulk.duckdb") == tables


def test_a_cleared_cache_goes_back_to_looking_up(
    tmp_path: Path, logs: dict[str, tuple[Path, Policy]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, policy = logs["small"]
    with FileLog(path, readonly=True) as log:
        project(log, tmp_path / "whole.duckdb", policy)
        monkeypatch.setattr(fold, "_CACHE_MAX", 50)  # cleared after almost every batch
        project(log, tmp_path / "cleared.duckdb", policy, batch_events=500)
    assert snapshot(tmp_path / "cleared.duckdb") == snapshot(tmp_path / "whole.duckdb")


@pytest.mark.parametrize("start, limit", [(0, None), (0, 1), (5, 40), (37, 1_000), (9, 0)])
def test_read_events_is_read_without_positions(
    logs: dict[str, tuple[Path, Policy]], start: int, limit: int | None
) -> None:
    with FileLog(logs["scripted"][0], readonly=True) as log:  # one frame per input
        assert log.read_events(start, limit) == [e for _, e in log.read(start, limit)]
