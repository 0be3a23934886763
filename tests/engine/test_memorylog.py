"""``MemoryLog`` passes the ``EventLog`` contract, like every other log."""

from __future__ import annotations

from pathlib import Path

from omniroute.engine.log import EventLog
from omniroute.engine.memorylog import MemoryLog
from tests.contracts.eventlog import EventLogContract


class TestMemoryLog(EventLogContract):
    def make_log(self, tmp_path: Path) -> EventLog:
        return MemoryLog()

    def reopen(self, log: EventLog) -> EventLog:
        assert isinstance(log, MemoryLog)
        return MemoryLog(log.records)
