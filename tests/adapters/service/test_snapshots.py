"""Snapshots in the JetStream object store: stored and read back whole, and a read that a
stalled server leaves without an answer ends in a transient error instead of waiting for
ever (the worker then tries again)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from nats.js.api import ObjectStoreConfig

from omniroute.adapters.nats.options import TRANSIENT, connect
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.snapshots import ObjectStoreSnapshots
from tests.support.nats import options_for, unique

BIG = os.urandom(24 * 1024 * 1024)  # ~190 chunks of nats-py's 128 KiB


def test_a_snapshot_is_read_back_whole_and_a_missing_one_is_none(
    nats_server: LocalNatsServer,
) -> None:
    async def go() -> None:
        nc = await connect(options_for(nats_server))
        try:
            js = nc.jetstream(timeout=5)
            store = ObjectStoreSnapshots(
                await js.create_object_store(unique("snaps"), ObjectStoreConfig())
            )
            assert await store.load("acme") is None
            await store.save("acme", BIG[:300_000])
            await store.save("acme", BIG[1:300_001])  # replaced, not appended
            assert await store.load("acme") == BIG[1:300_001]
        finally:
            await nc.close()

    asyncio.run(go())


def test_a_read_from_a_stalled_server_ends_in_a_transient_error(
    fresh_nats_server: LocalNatsServer,
) -> None:
    server = fresh_nats_server
    assert server.pid is not None

    async def go() -> None:
        nc = await connect(options_for(server))
        try:
            js = nc.jetstream(timeout=2)
            store = ObjectStoreSnapshots(
                await js.create_object_store("snaps", ObjectStoreConfig()), timeout=3.0
            )
            await store.save("acme", BIG)
            loading = asyncio.create_task(store.load("acme"))
            await asyncio.sleep(0.05)  # asking for the object or reading its chunks
            os.kill(server.pid, signal.SIGSTOP)
            try:
                done, _ = await asyncio.wait({loading}, timeout=15)
            finally:
                os.kill(server.pid, signal.SIGCONT)
            assert loading in done, "the read still waits on a stalled server"
            with pytest.raises(TRANSIENT):
                loading.result()
        finally:
            await nc.close()

    asyncio.run(go())
