"""One database, several tenants' logs: each tenant's log (as NATS keeps them) is a source
with its own position and fold; the tenants' rows are exactly those of a database of
their own, and a log of all tenants cannot join per-tenant sources (or the reverse)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from omniroute.adapters.reporting import TABLES, ProjectionError, Projector
from omniroute.engine import Engine
from omniroute.engine.log import EventLog
from omniroute.engine.memorylog import MemoryLog
from tests.support.service import workload


def _log(tenant: str, n: int, seed: int) -> MemoryLog:
    engine, log = Engine(), MemoryLog()
    for event in workload(tenant, n, seed=seed):
        log.append([event, *engine.apply(event)])
    return log


def _rows(db: Path, tenant: str) -> dict[str, list[tuple[object, ...]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t: con.execute(f"SELECT * FROM {t} WHERE tenant = ? ORDER BY ALL", [tenant]).fetchall()
            for t in TABLES
        }


@pytest.fixture(scope="module")
def logs() -> dict[str, MemoryLog]:
    return {"acme": _log("acme", 600, 4), "globex": _log("globex", 400, 5)}


def _project(db: Path, sources: dict[str, EventLog], limit: int | None = None) -> dict[str, int]:
    with Projector(db) as p:
        for tenant, log in sources.items():
            p.project(log, tenant=tenant, limit=limit, batch_events=157)
        return p.positions


def test_two_tenants_logs_in_one_database_give_each_tenant_its_own_rows(
    tmp_path: Path, logs: dict[str, MemoryLog]
) -> None:
    both = tmp_path / "both.duckdb"
    _project(both, dict(logs), limit=300)  # part of each, then a restart
    positions = _project(both, dict(logs))
    assert positions == {t: log.end() for t, log in logs.items()}
    for tenant, log in logs.items():
        alone = tmp_path / f"{tenant}.duckdb"
        _project(alone, {tenant: log})
        assert _rows(both, tenant) == _rows(alone, tenant), tenant
    with duckdb.connect(str(both), read_only=True) as con:
        projected, sources = con.execute(
            "SELECT events_projected, sources FROM projection_info"
        ).fetchone()  # type: ignore[misc]
        tenants = con.execute("SELECT DISTINCT tenant FROM interactions ORDER BY 1").fetchall()
    assert projected == sum(log.end() for log in logs.values())
    assert sources == ["acme", "globex"]
    assert tenants == [("acme",), ("globex",)]


def test_a_log_of_all_tenants_and_tenants_logs_do_not_mix(
    tmp_path: Path, logs: dict[str, MemoryLog]
) -> None:
    tenants_db, file_db = tmp_path / "tenants.duckdb", tmp_path / "file.duckdb"
    _project(tenants_db, {"acme": logs["acme"]})
    with Projector(tenants_db) as p, pytest.raises(ProjectionError, match="counted twice"):
        p.project(logs["globex"])  # no tenant: a log of all tenants
    with Projector(file_db) as p:
        p.project(logs["acme"])
    with Projector(file_db) as p, pytest.raises(ProjectionError, match="counted twice"):
        p.project(logs["globex"], tenant="globex")


def test_another_log_under_a_tenant_already_projected_is_refused(
    tmp_path: Path, logs: dict[str, MemoryLog]
) -> None:
    db = tmp_path / "db.duckdb"
    _project(db, {"acme": logs["globex"]})  # the shorter log, under the wrong name
    with Projector(db) as p, pytest.raises(ProjectionError, match="another log of tenant"):
        p.project(logs["acme"], tenant="acme")
