"""The protocol between the gateway's handlers and the log: :class:`Backend`.

A handler asks :meth:`Backend.submit` to turn what arrived into inputs *against the
engine's current state* and make them durable; it answers the provider only after that
returns (a crash before it, and the provider's retry covers it). Two implementations:
:class:`~.embedded.EmbeddedBackend` (an engine and a ``FileLog`` in this process: a
laptop, no server) and :class:`~.jetstream.JetStreamBackend` (publish to
``<prefix>.<tenant>.in``, follow ``.out`` with a replica of the engine).
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

from omniroute.engine import Engine
from omniroute.engine.events import Event, EventRejected, Input, is_decision

from .feed import Feed
from .view import LiveView

__all__ = ["Backend", "Maker"]

Maker = Callable[[int], list[Input]]
"""Builds the inputs for a request at time ``now`` (epoch ms) from the current state."""


class Backend(abc.ABC):
    """An engine's state to read, a log to append inputs to, desk feeds to stream."""

    def __init__(self, engine: Engine, history: int) -> None:
        self.engine = engine
        self.view = LiveView(engine)
        self.history = history
        self.feeds: dict[str, Feed] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.healthy = True
        """False while the log cannot be written (the gateway answers 503)."""
        self._verdicts: dict[tuple[str, str], asyncio.Future[EventRejected | None]] = {}

    def feed(self, tenant: str) -> Feed:
        feed = self.feeds.get(tenant)
        if feed is None:
            feed = self.feeds[tenant] = Feed(self.history)
        return feed

    def now(self, tenant: str) -> int:
        """The time to stamp on the tenant's next input: the wall clock, never behind the
        tenant's clock (epoch ms)."""
        return max(time.time_ns() // 1_000_000, self.engine.clock_of(tenant))

    async def submit(self, tenant: str, make: Maker) -> list[Input]:
        """The inputs ``make`` builds now, durably appended (or published) on return.

        ``make`` runs and its inputs are handed to the log in one step per tenant, so
        inputs reach the log in the order their requests saw the state; waiting for
        durability happens outside that step, so concurrent requests share a write.
        """
        lock = self._locks.get(tenant)
        if lock is None:
            lock = self._locks[tenant] = asyncio.Lock()
        async with lock:
            inputs = make(self.now(tenant))
            if not inputs:
                return inputs
            self.view.expect(tenant, inputs)
            try:
                durable = await self._stage(tenant, inputs)
            except BaseException:
                self._forget(tenant, inputs)
                raise
        try:
            await durable
        except BaseException:
            self._forget(tenant, inputs)
            raise
        return inputs

    def _forget(self, tenant: str, inputs: Sequence[Input]) -> None:
        """Not stored: a retry of these inputs must not look like a copy."""
        for event in inputs:
            if event.id is not None:
                self.view.settle(tenant, event.id)
                self._verdicts.pop((tenant, event.id), None)

    @abc.abstractmethod
    async def _stage(self, tenant: str, inputs: Sequence[Input]) -> Awaitable[None]:
        """Hand ``inputs`` to the tenant's log, in order after everything staged before;
        the awaitable completes when they are durable."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the log and catch up with it."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish what is in flight and release the log."""

    async def verdict(self, tenant: str, event_id: str, timeout: float) -> EventRejected | None:
        """The engine's answer to the input ``event_id`` once the log holds it: its
        ``EventRejected``, or None (applied). ``TimeoutError`` if not seen in time."""
        key = (tenant, event_id)
        future = self._verdicts.get(key)
        if future is None:
            future = self._verdicts[key] = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            self._verdicts.pop(key, None)

    def watch(self, tenant: str, event_id: str) -> None:
        """Keep the verdict of ``event_id`` for :meth:`verdict` (call before submitting)."""
        key = (tenant, event_id)
        if key not in self._verdicts:
            self._verdicts[key] = asyncio.get_running_loop().create_future()

    def _record(self, tenant: str, events: Sequence[tuple[int, Event]]) -> None:
        """The log holds ``events`` at their positions (applied to the engine already):
        feed them to the desks and settle what waited for them. An input the engine
        rejected (its ``EventRejected`` follows it) reaches no desk."""
        feed = self.feed(tenant)
        seen: dict[str, EventRejected | None] = {}
        for i, (position, event) in enumerate(events):
            if is_decision(event):
                if not isinstance(event, EventRejected):
                    self._push(feed, tenant, position, event)
                continue
            after = events[i + 1][1] if i + 1 < len(events) else None
            rejected = after if isinstance(after, EventRejected) else None
            if event.id is not None:
                self.view.settle(tenant, event.id)
                seen[event.id] = rejected
            if rejected is None:
                self._push(feed, tenant, position, event)
        if events:
            feed.end = max(feed.end, events[-1][0] + 1)
        if self._verdicts:
            for event_id, rejection in seen.items():
                future = self._verdicts.get((tenant, event_id))
                if future is not None and not future.done():
                    future.set_result(rejection)

    def _push(self, feed: Feed, tenant: str, position: int, event: Event) -> None:
        conv = getattr(event, "conversation_id", None)
        state = self.engine.state.tenants.get(tenant)
        root = state.aliases.get(conv) if state is not None and isinstance(conv, str) else None
        feed.push(position, event, root)
