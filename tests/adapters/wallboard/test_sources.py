"""The sources: a database read as it is, re-read after a re-projection; a log followed
while its writer appends, into a database of its own, never writing the log."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import ProjectionError, project
from omniroute.adapters.reporting.live import LiveState
from omniroute.adapters.wallboard import DatabaseSource, FollowingSource
from omniroute.engine import events as ev
from tests.support.projection import POLICY

from .conftest import Floor, morning, opening


def _eventually(read: Callable[[], LiveState], ok: Callable[[LiveState], bool]) -> LiveState:
    deadline = time.monotonic() + 3
    while True:
        state = read()
        if ok(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.02)


def _waiting(state: LiveState) -> dict[str, int]:
    return {f"{q.tenant}/{q.queue}/{q.channel}": q.waiting for q in state.queues}


def _status(state: LiveState) -> dict[str, str]:
    return {a.agent_id: a.status for a in state.agents}


def test_a_database_source_reads_what_is_projected_now(tmp_path: Path) -> None:
    floor = Floor(tmp_path / "a.olog")
    opening(floor)
    floor.log.close()
    db = tmp_path / "a.duckdb"
    with FileLog(tmp_path / "a.olog", readonly=True) as log:
        project(log, db, POLICY)
    source = DatabaseSource(db, POLICY)
    assert _status(source.read()) == {"ann": "available", "bob": "away"}
    assert source.read(tenant="beta").agents == ()

    floor.log = FileLog(tmp_path / "a.olog", fsync="never")  # the day goes on, re-projected
    floor.arrive("c1", "webchat", after_s=10)
    floor.close()
    with FileLog(tmp_path / "a.olog", readonly=True) as log:
        project(log, db, POLICY)
    assert _waiting(source.read()) == {"acme/sales/webchat": 1}  # offered to ann


def test_a_database_source_refuses_what_is_not_a_projection(tmp_path: Path) -> None:
    with pytest.raises(ProjectionError, match="no such database"):
        DatabaseSource(tmp_path / "missing.duckdb")


def test_a_following_source_shows_what_the_writer_appends(tmp_path: Path) -> None:
    log_path = tmp_path / "live.olog"
    floor = Floor(log_path)
    opening(floor)
    with FollowingSource(log_path, None, POLICY, every_s=0.05) as source:
        db = source.db_path
        assert db.exists() and source.position == floor.log.end()
        assert _status(source.read()) == {"ann": "available", "bob": "away"}

        floor.emit(ev.AgentStatusChanged, agent_id="ann", status="away", after_s=5)
        floor.arrive("c1", "voice", after_s=5)
        state = _eventually(source.read, lambda s: _waiting(s).get("acme/sales/voice") == 1)
        assert _waiting(state) == {"acme/sales/voice": 1}
        assert _status(state)["ann"] == "away"
        assert source.read(channel="webchat").queues == ()
        digest = hashlib.sha256(log_path.read_bytes()).hexdigest()
    assert not db.exists()  # its temporary database is gone
    assert hashlib.sha256(log_path.read_bytes()).hexdigest() == digest  # the log untouched
    assert source.error is None
    floor.close()


def test_a_following_source_goes_on_in_its_database(tmp_path: Path) -> None:
    log_path, db = tmp_path / "live.olog", tmp_path / "live.duckdb"
    floor = Floor(log_path)
    morning(floor)
    with FollowingSource(log_path, db, POLICY, every_s=0.05) as source:
        first = source.read()
    assert db.exists()
    assert DatabaseSource(db, POLICY).read() == first  # what it projected stays
    floor.arrive("c4", "voice", after_s=1)
    with FollowingSource(log_path, db, POLICY, every_s=0.05) as source:
        assert _waiting(source.read())["acme/sales/voice"] == 3
    floor.close()


def test_a_following_source_refuses_a_database_of_another_log(
    tmp_path: Path, morning_db: Path
) -> None:
    floor = Floor(tmp_path / "other.olog")
    opening(floor)
    floor.emit(ev.AgentRegistered, agent_id="zed", tenant="other")
    floor.close()
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(morning_db.read_bytes())
    source = FollowingSource(tmp_path / "other.olog", copy, POLICY)
    with pytest.raises(ProjectionError):
        source.start()
    with pytest.raises(RuntimeError, match="not started"):
        source.read()
