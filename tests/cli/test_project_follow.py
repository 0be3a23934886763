"""``omniroute project --follow``: a database kept up to date while the log is written is
the database a one-shot projection of the finished log makes, table for table."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from omniroute.adapters.filelog import FileLog
from omniroute.engine import Engine
from omniroute.engine.events import Event
from tests.support.service import workload

TABLES = ("interactions", "legs", "replies", "segments", "assignments", "agent_states",
          "agents", "customers", "contacts")  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "omniroute.adapters.cli", *args]


def _frames() -> list[list[Event]]:
    """A small contact centre's log: each input with the decisions it caused."""
    engine = Engine()
    return [[event, *engine.apply(event)] for event in workload("acme", 1500, seed=3)]


def _decisions(frames: list[list[Event]]) -> int:
    return sum(len(frame) - 1 for frame in frames)


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in TABLES}


def test_following_a_log_while_it_is_written_gives_the_one_shot_database(tmp_path: Path) -> None:
    log_path, live, once = (
        tmp_path / "live.olog",
        tmp_path / "live.duckdb",
        tmp_path / "once.duckdb",
    )
    frames = _frames()
    with FileLog(log_path) as log:
        log.append(frames[0])
        follower = subprocess.Popen(
            _cli("project", str(log_path), "--db", str(live), "--follow", "--every", "0.05"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert follower.stdout is not None
            first = follower.stdout.readline()  # the log as it was: projected once
            assert first.startswith("projected 1 events"), first
            for start in range(1, len(frames), 100):  # the writer goes on meanwhile
                for frame in frames[start : start + 100]:
                    log.append(frame)
                time.sleep(0.1)
            end = log.end()
            time.sleep(0.5)  # it keeps up: the last batch is in within a few intervals
        finally:
            follower.send_signal(signal.SIGTERM)
            out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert f"stopped following {log_path} at position {end}" in out, out
    assert out.count("projected ") >= 3  # as the log grew, not once at the end
    subprocess.run(_cli("project", str(log_path), "--db", str(once)), check=True,
                   capture_output=True)  # fmt: skip
    followed, one_shot = _rows(live), _rows(once)
    assert all(one_shot[t] for t in ("interactions", "assignments", "agents"))
    for table in TABLES:
        assert followed[table] == one_shot[table], table


def test_a_restarted_follower_goes_on_where_it_stopped(tmp_path: Path) -> None:
    log_path, db = tmp_path / "live.olog", tmp_path / "live.duckdb"
    frames = _frames()
    with FileLog(log_path) as log:
        for frame in frames[:700]:
            log.append(frame)
        first = subprocess.run(_cli("project", str(log_path), "--db", str(db)),
                               capture_output=True, text=True, check=True)  # fmt: skip
        assert "projected" in first.stdout
        for frame in frames[700:]:
            log.append(frame)
        end = log.end()
    follower = subprocess.Popen(
        _cli("project", str(log_path), "--db", str(db), "--follow", "--every", "0.05"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert follower.stdout is not None
    caught_up = follower.stdout.readline()
    assert caught_up.startswith(f"projected {end - 700 - _decisions(frames[:700])} events"), (
        caught_up
    )
    follower.send_signal(signal.SIGTERM)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert f"stopped following {log_path} at position {end}" in out, out
