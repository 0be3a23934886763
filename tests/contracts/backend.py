"""The contract every gateway ``Backend`` passes (embedded log; JetStream + the service).

Subclass ``BackendContract`` in a ``Test*`` class and implement ``started()``: an async
context manager giving a started backend for tenant :data:`TENANT`, with the engine
deciding (in process, or ``omniroute serve`` behind NATS). The tests use only the
``Backend`` interface and its view.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec

from omniroute.adapters.gateway.backend import Backend
from omniroute.engine.events import (
    AgentRegistered,
    AgentStatusChanged,
    Contact,
    ConversationArrived,
    ConversationOffered,
    Input,
    MessageReceived,
    OfferAccepted,
)

__all__ = ["TENANT", "BackendContract"]

TENANT = "acme"
_KIM = Contact("whatsapp", "+447700900123")


def _arrival(now: int, n: int = 1) -> list[Input]:
    return [ConversationArrived(tenant=TENANT, ts=now, id=f"c{n}", conversation_id=f"c{n}",
                                channel="whatsapp", contact=_KIM)]  # fmt: skip


def _ann(now: int) -> list[Input]:
    return [
        AgentRegistered(tenant=TENANT, ts=now, id="reg-ann", agent_id="ann"),
        AgentStatusChanged(tenant=TENANT, ts=now, id="on-ann", agent_id="ann", status="available"),
    ]


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


class BackendContract(abc.ABC):
    @abc.abstractmethod
    def started(self) -> contextlib.AbstractAsyncContextManager[Backend]:
        """A started backend for :data:`TENANT` (closed on exit)."""

    def run(self, test: Callable[[Backend], Awaitable[None]]) -> None:
        async def main() -> None:
            async with self.started() as backend:
                await test(backend)

        asyncio.run(main())

    def test_an_arrival_is_a_live_leg_at_once_and_a_follow_up_joins_it(self) -> None:
        async def test(backend: Backend) -> None:
            await backend.submit(TENANT, _arrival)
            leg = backend.view.live_leg(TENANT, _KIM)  # before or after the log shows it
            assert leg is not None and (leg.conversation_id, leg.leg_id) == ("c1", "c1")
            assert backend.view.seen(TENANT, "c1")
            await _until(lambda: not backend.view.pending)  # the log shows it now
            assert backend.view.live_leg(TENANT, _KIM) == leg
            assert backend.view.seen(TENANT, "c1")

        self.run(test)

    def test_verdicts_are_the_engine_s(self) -> None:
        async def test(backend: Backend) -> None:
            backend.watch(TENANT, "bad")
            accept = OfferAccepted(
                tenant=TENANT, ts=0, id="bad", conversation_id="no", agent_id="a"
            )
            await backend.submit(TENANT, lambda now: [msgspec.structs.replace(accept, ts=now)])
            rejected = await backend.verdict(TENANT, "bad", timeout=10)
            assert rejected is not None and rejected.reason
            backend.watch(TENANT, "c1")
            await backend.submit(TENANT, _arrival)
            assert await backend.verdict(TENANT, "c1", timeout=10) is None

        self.run(test)

    def test_an_agent_s_feed_carries_its_offers_in_log_order(self) -> None:
        async def test(backend: Backend) -> None:
            await backend.submit(TENANT, _ann)
            await backend.submit(TENANT, _arrival)
            await backend.submit(TENANT, lambda now: [MessageReceived(
                tenant=TENANT, ts=now, id="m1", conversation_id="c1", leg="c1")])  # fmt: skip
            feed = backend.feed(TENANT)
            await _until(lambda: len(feed.since(-1, "ann")) >= 4)
            events = feed.since(-1, "ann")
            positions = [p for p, _ in events]
            assert positions == sorted(set(positions))
            offered = [p for p, e in events if isinstance(e, ConversationOffered)]
            assert len(offered) == 1
            assert [e.id for _, e in feed.since(offered[0], "ann")] == ["m1"]
            assert feed.since(-1, "bob") == []

        self.run(test)

    def test_a_restarted_backend_knows_the_log_as_soon_as_it_has_started(self) -> None:
        async def main() -> None:
            async with self.started() as backend:
                for n in range(300):
                    contact = Contact("whatsapp", f"+44770090{n:04d}")
                    await backend.submit(TENANT, lambda now, c=contact, n=n: [ConversationArrived(
                        tenant=TENANT, ts=now, id=f"r{n}", conversation_id=f"r{n}",
                        channel="whatsapp", contact=c)])  # fmt: skip
                await _until(lambda: not backend.view.pending)
                end = backend.feed(TENANT).end
            async with self.started() as again:
                assert again.feed(TENANT).end >= end
                leg = again.view.live_leg(TENANT, Contact("whatsapp", "+447700900299"))
                assert leg is not None and leg.conversation_id == "r299"

        asyncio.run(main())


@contextlib.asynccontextmanager
async def closing(backend: Backend) -> AsyncIterator[Backend]:
    await backend.start()
    try:
        yield backend
    finally:
        await backend.close()
