"""Connecting with a token, a user and password, TLS and mutual TLS, each to a nats-server
configured for it (real servers, certificates made by the test)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from omniroute.adapters.nats.log import NatsLog
from omniroute.adapters.nats.options import NatsOptions, StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer, find_nats_server
from omniroute.engine import events as ev
from omniroute.engine.log import LogError
from tests.support.nats import TlsFiles, options_for

STREAM = StreamOptions(name="AUTH", prefix="auth")
TICKS = [ev.Tick(tenant="acme", ts=i) for i in range(3)]


def _round_trip(options: NatsOptions) -> None:
    with NatsLog(options, "acme", STREAM) as log:
        log.append(TICKS)
    with NatsLog(options, "acme", STREAM) as log:
        assert [e for _, e in log.read()][-3:] == TICKS


def _refused(options: NatsOptions, match: str | None = None) -> None:
    quick = NatsOptions(**{**{f: getattr(options, f) for f in options.__struct_fields__},
                           "initial_connect_s": 1.5})  # fmt: skip
    with pytest.raises(LogError, match=match):
        NatsLog(quick, "acme", STREAM)


@pytest.fixture
def server_dir(tmp_path: Path) -> Path:
    if find_nats_server() is None:
        pytest.fail("nats-server not found")
    return tmp_path / "nats"


def test_token(server_dir: Path) -> None:
    with LocalNatsServer(server_dir, token="s3cret-token") as server:
        _round_trip(options_for(server, token="s3cret-token"))
        _refused(options_for(server, token="wrong"), "(?i)authorization")
        _refused(options_for(server), "(?i)authorization")


def test_user_and_password(server_dir: Path) -> None:
    with LocalNatsServer(server_dir, user="omniroute", password="pa55 word") as server:
        _round_trip(options_for(server, user="omniroute", password="pa55 word"))
        _refused(options_for(server, user="omniroute", password="nope"), "(?i)authorization")


@pytest.fixture
def tls_server(server_dir: Path, tls_files: TlsFiles) -> Iterator[LocalNatsServer]:
    tls = (tls_files.server_cert, tls_files.server_key, tls_files.ca)
    with LocalNatsServer(server_dir, tls=tls) as server:
        yield server


def test_tls_verifies_the_server_with_the_ca(tls_server: LocalNatsServer,
                                             tls_files: TlsFiles) -> None:  # fmt: skip
    assert tls_server.url.startswith("tls://")
    _round_trip(options_for(tls_server, tls_ca=tls_files.ca))
    _refused(options_for(tls_server))  # the system CAs do not know the test CA


def test_mutual_tls_requires_the_client_certificate(server_dir: Path, tls_files: TlsFiles) -> None:
    tls = (tls_files.server_cert, tls_files.server_key, tls_files.ca)
    with LocalNatsServer(server_dir, tls=tls, verify_clients=True) as server:
        _round_trip(options_for(server, tls_ca=tls_files.ca, tls_cert=tls_files.client_cert,
                                tls_key=tls_files.client_key))  # fmt: skip
        _refused(options_for(server, tls_ca=tls_files.ca))


def test_service_config_carries_the_connection_options(tmp_path: Path, server_dir: Path,
                                                       tls_files: TlsFiles) -> None:  # fmt: skip
    from omniroute.adapters.service.config import load_config

    config = tmp_path / "omniroute.toml"
    config.write_text(
        '[nats]\nservers = ["tls://127.0.0.1:1"]\ntoken = "t"\n'
        f'tls_ca = "{Path(tls_files.ca).name}"\ncreds = "x.creds"\n'
        "[service]\ntenants = ['acme']\n"
    )
    (tmp_path / Path(tls_files.ca).name).write_bytes(Path(tls_files.ca).read_bytes())
    loaded = load_config(config, environ={"NATS_URL": "tls://127.0.0.1:2,tls://127.0.0.1:3"})
    assert loaded.nats.servers == ("tls://127.0.0.1:2", "tls://127.0.0.1:3")
    assert loaded.nats.token == "t"
    assert loaded.nats.tls_ca == str(tmp_path / Path(tls_files.ca).name)
    assert loaded.nats.creds == str(tmp_path / "x.creds")
    assert loaded.nats.ssl_context() is not None
    loaded = load_config(config, environ={"NATS_CREDS": "/etc/omniroute.creds"})
    assert loaded.nats.creds == "/etc/omniroute.creds"
    del server_dir
