"""A standby says so when the lease bucket keeps a lease past its TTL (issue 18's take-overs
of 59 s and 82 s with a 5 s TTL): the holder's last renewal (its value's ``ms``) is more
than twice the TTL old and the key is still there. Made here with a bucket whose TTL (30 s)
is longer than the lease's (1 s); a live holder renewing is never reported."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from omniroute.adapters.nats.options import connect
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.lease import Lease
from tests.support.nats import options_for, unique

OVERDUE = "the lease bucket has not expired it"


def test_a_standby_warns_of_a_lease_the_bucket_keeps_past_its_ttl(
    nats_server: LocalNatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="omniroute.adapters.service.lease")

    async def poll(lease: Lease, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if await lease.try_acquire() or OVERDUE in caplog.text:
                return lease.held
            await asyncio.sleep(0.1)
        return lease.held

    async def go() -> None:
        nc = await connect(options_for(nats_server))
        try:
            kv = await nc.jetstream(timeout=2).create_key_value(bucket=unique("leases"), ttl=30)
            holder = Lease(kv, "acme", "router-a", ttl=1)
            standby = Lease(kv, "acme", "router-b", ttl=1)
            assert await holder.try_acquire()
            assert not await poll(standby, 2.5)  # renewed every third of a second
            assert OVERDUE not in caplog.text
            holder.drop()  # killed: renewals stop, the key stays (the bucket's TTL is 30 s)
            assert not await poll(standby, 5)
            assert OVERDUE in caplog.text and "lease of router-a" in caplog.text
        finally:
            await nc.close()

    asyncio.run(go())
