"""A small contact centre written to a file log as the simulator writes one (each input
with the decisions it caused), and its projection, for the wallboard's tests.

``acme`` (the policy of ``tests.support.projection``): ann (sales) available, bob (mail)
away; a web chat ann takes, then two calls waiting behind it, the first past its 20 s
target. ``beta``: one call waiting in its default queue, no agents.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import project
from omniroute.engine import Engine
from omniroute.engine import events as ev
from tests.support.projection import POLICY, T0


class Floor:
    """An engine and the file log its inputs and decisions go to (held open for writing)."""

    def __init__(self, path: Path, ts: int = T0) -> None:
        self.engine = Engine(POLICY)
        self.log = FileLog(path, fsync="never")
        self.ts = ts

    def emit(
        self, cls: type[ev.Event], tenant: str = "acme", after_s: float = 0, **fields: Any
    ) -> None:
        """Apply the input ``after_s`` after the last one, and append it with its decisions."""
        self.ts += round(after_s * 1000)
        event = cls(tenant=tenant, ts=self.ts, **fields)
        self.log.append([event, *self.engine.apply(event)])

    def arrive(self, cid: str, channel: str, queue: str = "sales", **kw: Any) -> None:
        contact = ev.Contact(channel, f"{channel}:{cid}")  # type: ignore[arg-type]
        self.emit(ev.ConversationArrived, conversation_id=cid, channel=channel, contact=contact,
                  queue=queue, **kw)  # fmt: skip

    def close(self) -> None:
        self.log.close()


def opening(floor: Floor) -> None:
    """ann and bob registered; ann available, bob away."""
    floor.emit(ev.AgentRegistered, agent_id="ann", skills={"sales": 3}, name="Ann")
    floor.emit(ev.AgentRegistered, agent_id="bob", skills={"mail": 1})
    floor.emit(ev.AgentStatusChanged, agent_id="ann", status="available")
    floor.emit(ev.AgentStatusChanged, agent_id="bob", status="away")


def morning(floor: Floor) -> None:
    """The scene of the module docstring."""
    opening(floor)
    floor.arrive("c1", "webchat", after_s=10)
    floor.emit(ev.OfferAccepted, conversation_id="c1", agent_id="ann", after_s=5)
    floor.arrive("c2", "voice", after_s=5)
    floor.arrive("c3", "voice", after_s=5)
    floor.arrive("b1", "voice", tenant="beta", queue="default", after_s=1)
    floor.emit(ev.Tick, after_s=40)
    floor.emit(ev.Tick, tenant="beta")


@pytest.fixture(scope="module")
def morning_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The projection of :func:`morning`."""
    tmp = tmp_path_factory.mktemp("wallboard")
    floor = Floor(tmp / "morning.olog")
    morning(floor)
    floor.close()
    db = tmp / "morning.duckdb"
    with FileLog(tmp / "morning.olog", readonly=True) as log:
        project(log, db, POLICY)
    return db


_CLI = (
    "import argparse, sys\n"
    "from omniroute.adapters.cli.wallboard import COMMANDS\n"
    "command = COMMANDS['wallboard']\n"
    "parser = argparse.ArgumentParser(prog='omniroute wallboard')\n"
    "command.add_arguments(parser)\n"
    "sys.exit(command.run(parser.parse_args(sys.argv[1:]), sys.stdout))\n"
)


@contextlib.contextmanager
def wallboard(*args: str | os.PathLike[str]) -> Iterator[tuple[subprocess.Popen[str], str, str]]:
    """``omniroute wallboard ARGS --port 0`` in a process of its own: (process, URL, the
    line it printed once it serves). SIGTERM ends it at the end, if the test has not."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _CLI, *map(str, args), "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("wallboard: http://127.0.0.1:"), line
        yield proc, line.split()[1], line
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
