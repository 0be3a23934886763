"""The service rides out cluster errors instead of exiting (issue 18's two known exits), says
so on ``/health``, and refuses replication and retention settings it cannot honour.

- A lease bucket that does not answer (``NoStreamResponseError`` from ``kv.create``, as
  while the bucket's leader is elected) makes the lease check say "not now", not raise.
- A nats-server outage longer than the lease TTL, with a snapshot in memory: the writer
  loses its lease, rebuilds from the snapshot (reading the snapshot's frame is retried
  until the server is back) and writes again; nothing lost or doubled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tomllib
import urllib.request
from pathlib import Path

import pytest

from omniroute.adapters.nats.options import StreamOptions, connect
from omniroute.adapters.nats.server import LocalNatsServer, free_port
from omniroute.adapters.service.config import ConfigError, parse_config
from omniroute.adapters.service.lease import Lease
from omniroute.engine.log import LogError
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    check_log,
    config_toml,
    frames_of,
    publish,
    service_config,
    wait_for,
    wait_until_consumed,
    workload,
)


def test_a_lease_bucket_without_a_stream_answers_no_instead_of_raising(
    nats_server: LocalNatsServer,
) -> None:
    async def go() -> tuple[bool, bool]:
        nc = await connect(options_for(nats_server))
        try:
            js = nc.jetstream(timeout=2)
            bucket = unique("leases")
            kv = await js.create_key_value(bucket=bucket, ttl=5)
            await js.delete_stream(f"KV_{bucket}")  # no stream answers the lease's requests
            lease = Lease(kv, "acme", "router-1", ttl=5)
            return await lease.try_acquire(), lease.held
        finally:
            await nc.close()

    assert asyncio.run(go()) == (False, False)


def _health(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
        report: dict[str, object] = json.loads(reply.read())
        return report


def test_an_outage_longer_than_the_lease_ttl_with_a_snapshot_in_memory_is_ridden_out(
    fresh_nats_server: LocalNatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = fresh_nats_server
    opts = options_for(server)
    stream = StreamOptions(name="OUTAGE", prefix="outage")
    events = workload("acme", 600, seed=21)
    frames = frames_of(events, seed=3)
    port = free_port()
    extra = "lease_ttl_s = 1\nsnapshot_every = 50\ntick_interval_s = 0"
    text = config_toml(server.url, stream, ["acme"], instance="router-1", metrics_port=port,
                       extra_service=extra)  # fmt: skip
    caplog.set_level(logging.INFO)
    svc = InProcessService(service_config(text, tmp_path))
    try:
        half = len(frames) // 2
        seqs = publish(opts, stream, "acme", frames[:half])
        wait_until_consumed(opts, stream, "acme", seqs[-1])
        worker = svc.service.workers["acme"]
        wait_for(lambda: worker._snap is not None, 10, "a snapshot in memory")
        assert _health(port)["status"] == "ok"
        server.kill()
        wait_for(lambda: "nats disconnected" in str(_health(port)["reasons"]), 10, "degraded")
        wait_for(lambda: "rebuilding state (lease lost)" in caplog.text, 10, "the lease to lapse")
        wait_for(lambda: "snapshot frame of acme: " in caplog.text, 15, "a retried read")
        assert svc.running and _health(port)["status"] == "degraded"
        server.start()
        seqs = publish(opts, stream, "acme", frames[half:])
        wait_until_consumed(opts, stream, "acme", seqs[-1], timeout=60)
        wait_for(lambda: _health(port)["status"] == "ok", 20, "health ok again")
        assert svc.running
    finally:
        assert svc.stop() == 0
    check_log(opts, stream, "acme", events)


def _config(stream: str = "", service: str = "") -> dict[str, object]:
    return tomllib.loads(f"[stream]\n{stream}\n[service]\ntenants = ['acme']\n{service}\n")


@pytest.mark.parametrize(
    ("stream", "service", "message"),
    [
        ("replicas = 2", "", "stream.replicas must be 1, 3 or 5"),
        ("", "lease_replicas = 4", "lease_replicas must be 1, 3 or 5"),
        ("max_age_s = 3600", "", "stream.max_age_s = 3600 is too short"),
        ("max_bytes = 1000000", "", "stream.max_bytes = 1000000 is too small"),
        ("max_age_s = 86400", 'snapshots = "off"', 'snapshots = "off" is not allowed'),
        ("max_age_s = 86400", "heartbeat_s = 0", "heartbeat_s must be > 0"),
        ("max_age_s = 86400", "snapshot_interval_s = 86400", "2 x snapshot_interval_s"),
    ],
)
def test_replication_and_retention_settings_are_checked_apart_from_the_service(
    stream: str, service: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config(_config(stream, service))


def test_retention_with_recent_snapshots_and_replicas_are_accepted() -> None:
    config = parse_config(_config("replicas = 3\nmax_age_s = 172800\nmax_bytes = 2147483648",
                                  "snapshot_replicas = 5\ntick_interval_s = 1"))  # fmt: skip
    assert config.replicas() == {"stream.replicas": 3, "service.lease_replicas": 3,
                                 "service.snapshot_replicas": 5}  # fmt: skip


def test_replicas_beyond_a_single_server_are_a_configuration_error(
    nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    stream = StreamOptions(name=unique("S"), prefix=unique("p"), replicas=3)
    svc = InProcessService(service_config(config_toml(nats_server.url, stream, ["acme"]), tmp_path))
    with pytest.raises(LogError, match=r"stream.replicas = 3, but the NATS server .* not part"):
        svc.stop()


def test_a_snapshot_whose_frame_the_stream_dropped_stops_the_service_saying_so(
    nats_server: LocalNatsServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    opts = options_for(nats_server)
    stream = StreamOptions(name=unique("S"), prefix=unique("p"))
    text = config_toml(nats_server.url, stream, ["acme"],
                       extra_service="snapshot_every = 50\ntick_interval_s = 0")  # fmt: skip
    svc = InProcessService(service_config(text, tmp_path))
    seqs = publish(opts, stream, "acme", frames_of(workload("acme", 300, seed=4), seed=4))
    wait_until_consumed(opts, stream, "acme", seqs[-1])
    assert svc.stop() == 0  # a snapshot saved on the way out

    async def drop_everything() -> None:  # as a retention shorter than an outage would
        nc = await connect(opts)
        try:
            js = nc.jetstream()
            last = (await js.stream_info(stream.name)).state.last_seq
            await js.purge_stream(stream.name, seq=last + 1)
        finally:
            await nc.close()

    asyncio.run(drop_everything())
    svc = InProcessService(service_config(text, tmp_path))
    wait_for(lambda: not svc.running, 30, "the service to stop by itself")
    assert svc.stop() == 1
    assert "which stream" in caplog.text and "no longer holds" in caplog.text
