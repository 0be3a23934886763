"""``omniroute project --config service.toml --follow``: two tenants of a running service
(a real nats-server, ``omniroute serve`` as a child process) followed into ONE database,
which then holds, tenant for tenant, what a one-shot projection of each finished log
gives; and the wallboard following the same service."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx

from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.reporting import TABLES
from tests.support.nats import options_for, unique
from tests.support.service import ServeProcess, config_toml, publish, wait_until_consumed, workload

TENANTS = ("acme", "globex")


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "omniroute.adapters.cli", *args]


def _rows(db: Path, tenant: str) -> dict[str, list[tuple[object, ...]]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return {
            t: con.execute(f"SELECT * FROM {t} WHERE tenant = ? ORDER BY ALL", [tenant]).fetchall()
            for t in TABLES
        }


def test_following_two_tenants_of_a_running_service_into_one_database(
    nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = StreamOptions(name=unique("S"), prefix=unique("p"))
    config = tmp_path / "service.toml"
    config.write_text(config_toml(nats_server.url, stream, TENANTS, instance=unique("i"),
                                  extra_service="tick_interval_s = 0"))  # fmt: skip
    options = options_for(nats_server)
    inputs = {t: workload(t, 600, seed=i + 7) for i, t in enumerate(TENANTS)}
    serve = ServeProcess(config, tmp_path / "serve.out")
    live, once = tmp_path / "live.duckdb", tmp_path / "once.duckdb"
    try:
        serve.wait_ready()
        last = {t: publish(options, stream, t, [inputs[t][:300]])[-1] for t in TENANTS}
        for t in TENANTS:
            wait_until_consumed(options, stream, t, last[t])
        follower = subprocess.Popen(
            _cli("project", "--config", str(config), "--db", str(live), "--follow",
                 "--every", "0.1"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert follower.stdout is not None
            for t in TENANTS:  # what each log held when it started: projected at once
                line = follower.stdout.readline()
                assert line.startswith("projected ") and f"of tenant {t} " in line, line
            for start in range(300, 600, 60):  # the service goes on writing meanwhile
                for t in TENANTS:
                    last[t] = publish(options, stream, t, [inputs[t][start : start + 60]])[-1]
                time.sleep(0.15)
            for t in TENANTS:
                wait_until_consumed(options, stream, t, last[t])
            time.sleep(1.0)  # a few rounds of --every: the follower catches up
        finally:
            follower.send_signal(signal.SIGTERM)
            out, err = follower.communicate(timeout=60)
        assert follower.returncode == 0, err
        assert "stopped following tenants acme, globex at positions acme=" in out, out
        assert out.count("projected ") > len(TENANTS)  # as the logs grew, not once
        _wallboard_shows_both_tenants(config)
    finally:
        assert serve.terminate() == 0
        serve.close()
    one_shot = subprocess.run(_cli("project", "--config", str(config), "--db", str(once)),
                              capture_output=True, text=True)  # fmt: skip
    assert one_shot.returncode == 0, one_shot.stderr
    for t in TENANTS:
        followed, whole = _rows(live, t), _rows(once, t)
        assert whole["interactions"] and whole["agents"], t
        for table in TABLES:
            assert followed[table] == whole[table], (t, table)
    with duckdb.connect(str(live), read_only=True) as con:
        sources = con.execute("SELECT source FROM _sources ORDER BY 1").fetchall()
    assert sources == [("acme",), ("globex",)]


def _wallboard_shows_both_tenants(config: Path) -> None:
    """``omniroute wallboard --config``: the running service's tenants on one page."""
    board = subprocess.Popen(
        _cli("wallboard", "--config", str(config), "--port", "0", "--every", "0.2"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert board.stdout is not None
        line = board.stdout.readline()
        assert line.startswith("wallboard: http://127.0.0.1:"), line
        assert "following tenants acme, globex" in line, line
        state = httpx.get(line.split()[1] + "state.json", timeout=10).json()
        assert {a["tenant"] for a in state["agents"]} == set(TENANTS)
    finally:
        board.send_signal(signal.SIGTERM)
        _, err = board.communicate(timeout=30)
    assert board.returncode == 0, err


def test_project_names_what_is_wrong_with_its_sources(tmp_path: Path) -> None:
    log = tmp_path / "x.olog"
    both = subprocess.run(_cli("project", str(log), "--config", str(tmp_path / "c.toml"),
                               "--db", str(tmp_path / "d.duckdb")),
                          capture_output=True, text=True)  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    tenant = subprocess.run(_cli("project", str(log), "--tenant", "acme",
                                 "--db", str(tmp_path / "d.duckdb")),
                            capture_output=True, text=True)  # fmt: skip
    assert tenant.returncode == 2 and "--tenant goes with --config" in tenant.stderr
