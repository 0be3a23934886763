"""``omniroute wallboard``: its arguments, and the command serving a followed log until
SIGTERM (exit 0), loopback only unless told otherwise."""

from __future__ import annotations

import argparse
import hashlib
import io
import signal
from pathlib import Path

import httpx
import pytest

from omniroute.adapters.cli.common import CliError
from omniroute.adapters.cli.wallboard import COMMANDS

from .conftest import Floor, morning, wallboard


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    COMMANDS["wallboard"].add_arguments(parser)
    return parser.parse_args(argv)


def test_the_arguments() -> None:
    args = _parse("--db", "x.duckdb")
    assert (args.host, args.port, args.every, args.follow) == ("127.0.0.1", 8765, 1.0, None)
    assert _parse("--follow", "x.olog", "--every", "0.2").every == 0.2
    for bad in ("0", "-1", "soon"):
        with pytest.raises(SystemExit):
            _parse("--db", "x.duckdb", "--every", bad)
    assert COMMANDS["wallboard"].extra == "wallboard"


def test_a_source_is_required(tmp_path: Path) -> None:
    run = COMMANDS["wallboard"].run
    with pytest.raises(CliError, match=r"--db FILE .*, --follow LOG .* or --config FILE"):
        run(_parse(), io.StringIO())
    with pytest.raises(CliError, match="not both"):
        run(_parse("--follow", "x.olog", "--config", "s.toml"), io.StringIO())
    with pytest.raises(CliError, match="--tenant goes with --config"):
        run(_parse("--db", "x.duckdb", "--tenant", "acme"), io.StringIO())
    with pytest.raises(CliError, match="no such database"):
        run(_parse("--db", str(tmp_path / "none.duckdb")), io.StringIO())
    with pytest.raises(CliError, match="No such file"):
        run(_parse("--follow", str(tmp_path / "none.olog")), io.StringIO())


def test_it_serves_a_followed_log_until_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "day.olog"
    floor = Floor(log)
    morning(floor)
    floor.close()
    digest = hashlib.sha256(log.read_bytes()).hexdigest()
    with wallboard("--follow", log, "--every", "0.2") as (proc, url, said):
        db = Path(said.split("projected into ")[1].split(")")[0])
        assert db.exists() and db.parent != tmp_path
        assert httpx.get(f"{url}health").json()["status"] == "ok"
        state = httpx.get(f"{url}state.json", params={"tenant": "beta"}).json()
        assert [(q["queue"], q["waiting"]) for q in state["queues"]] == [("default", 1)]
        with httpx.stream("GET", f"{url}events") as events:  # a stream open at the stop
            assert events.headers["content-type"].startswith("text/event-stream")
            lines = events.iter_lines()
            assert next(lines) == "retry: 2000"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
    assert hashlib.sha256(log.read_bytes()).hexdigest() == digest
    assert not db.parent.exists()  # its temporary database is gone
