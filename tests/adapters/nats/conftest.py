"""Fixtures of the NATS log tests: a stream of the test's own, TLS files."""

from __future__ import annotations

from pathlib import Path

import pytest

from omniroute.adapters.nats.options import StreamOptions
from tests.support.nats import TlsFiles, make_tls_files, unique


@pytest.fixture
def stream_options() -> StreamOptions:
    """A stream of the test's own (so stream-level settings do not leak between tests)."""
    return StreamOptions(name=unique("S"), prefix=unique("p"))


@pytest.fixture
def tls_files(tmp_path: Path) -> TlsFiles:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_tls_files(tmp_path / "tls")
