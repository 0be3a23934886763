"""Fixtures shared by the reporting tests: the scripted log of
``tests.support.projection`` projected into DuckDB, and a read-only connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import connect_readonly, project
from tests.support.projection import POLICY, scripted_batches, write_log


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(log, projected database) of SCRIPT."""
    tmp = tmp_path_factory.mktemp("scripted")
    log = write_log(tmp / "script.olog", scripted_batches())
    db = tmp / "script.duckdb"
    with FileLog(log, readonly=True) as flog:
        project(flog, db, POLICY, short_abandon_s=5)
    return log, db


@pytest.fixture(scope="module")
def scripted_db(scripted: tuple[Path, Path]) -> Path:
    """The projected database of SCRIPT."""
    return scripted[1]


@pytest.fixture(scope="module")
def con(scripted_db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to :func:`scripted_db`."""
    c = connect_readonly(scripted_db)
    yield c
    c.close()
