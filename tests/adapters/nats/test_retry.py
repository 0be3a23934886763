"""``retrying`` and ``Backoff``: transient cluster errors are retried with bounded, jittered
delays that are the same from run to run; anything else is raised at once."""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
import pytest

from omniroute.adapters.nats.retry import Backoff, retrying


def _series(name: str) -> list[float]:
    backoff = Backoff(name, first=0.1, cap=1.0)
    return [backoff.next() for _ in range(8)]


def test_backoff_doubles_to_its_cap_with_a_jitter_fixed_by_the_name() -> None:
    series = _series("lease acme")
    assert series == _series("lease acme")
    assert series != _series("lease globex")
    for n, delay in enumerate(series):
        base = min(1.0, 0.1 * 2**n)
        assert 0.75 * base <= delay <= 1.25 * base
    backoff = Backoff("lease acme", first=0.1, cap=1.0)
    backoff.next()
    backoff.reset()
    assert backoff.attempt == 0 and backoff.next() <= 0.125


def test_retrying_goes_through_transient_errors_and_raises_the_others() -> None:
    failures: list[BaseException] = []
    errors: list[BaseException] = [
        nats.js.errors.NoStreamResponseError(),
        nats.errors.NoRespondersError(),
        nats.errors.TimeoutError(),
        nats.js.errors.ServiceUnavailableError(),
    ]

    async def flaky() -> str:
        if errors:
            raise errors.pop(0)
        return "done"

    result = asyncio.run(retrying(flaky, "flaky", on_failure=failures.append,
                                  backoff=Backoff("flaky", first=0.001, cap=0.002)))  # fmt: skip
    assert result == "done" and len(failures) == 4

    async def wrong() -> None:
        raise nats.js.errors.BadRequestError(description="no suitable peers for placement")

    with pytest.raises(nats.js.errors.BadRequestError):
        asyncio.run(retrying(wrong, "wrong"))

    async def down() -> None:
        raise nats.errors.TimeoutError

    with pytest.raises(nats.errors.TimeoutError):
        asyncio.run(retrying(down, "down", give_up=lambda: True))
