"""The embedded backend: the engine and a ``FileLog`` in the gateway's own process.

Inputs are applied to the engine as they arrive, then appended with their decisions,
many requests to one frame (group commit: one ``fsync`` covers every request waiting),
and each request is answered when its frame is on disk. Opening re-applies the log's
inputs; a timer ticker appends a ``Tick`` for a tenant only when one of its timers is
due. One gateway per file (the ``FileLog`` lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Sequence

from omniroute.engine import Engine
from omniroute.engine.events import Event, Input, Tick, is_decision
from omniroute.engine.policy import Policy

from ..filelog import FileLog
from .backend import Backend, Maker

__all__ = ["EmbeddedBackend"]

_log = logging.getLogger(__name__)


class EmbeddedBackend(Backend):
    """A gateway that is its own contact centre: the engine over a local log file."""

    def __init__(
        self, path: str | os.PathLike[str], policy: Policy, *, history: int = 10_000,
        tick_s: float = 1.0, fsync: bool = True, tenants: Sequence[str] | None = None,
    ) -> None:  # fmt: skip
        super().__init__(Engine(policy), history)
        self.path = path
        self.tick_s = tick_s
        self.fsync = fsync
        self.tenants = None if tenants is None else frozenset(tenants)
        """The tenants this gateway ticks (None: all); a log may hold others (a simulated
        day), whose clocks are not the wall clock."""
        self.log: FileLog | None = None
        self._waiting: list[tuple[str, list[Event], asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False

    async def start(self) -> None:
        log = FileLog(self.path, fsync="always" if self.fsync else "never")
        self.log = log
        for position, event in log.read():
            tenant = event.tenant
            if not is_decision(event):
                self.engine.apply(event)
            self._record(tenant, [(position, event)])
        _log.info("embedded log %s: %d events re-applied", self.path, log.end())
        self._tasks = [asyncio.create_task(self._writer()), asyncio.create_task(self._ticker())]

    async def close(self) -> None:
        """Stop ticking, append what is waiting, close the file."""
        self._closing = True
        writer, ticker = self._tasks or (None, None)
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self._wake.set()
        if writer is not None:
            await writer
        if self.log is not None:
            self.log.close()

    async def _stage(self, tenant: str, inputs: Sequence[Input]) -> Awaitable[None]:
        """Apply ``inputs`` now; the future is done when the writer's frame is on disk."""
        if self.log is None or not self.healthy:
            raise RuntimeError(f"the log {self.path} cannot be written")
        batch: list[Event] = []
        for event in inputs:
            batch.append(event)
            batch.extend(self.engine.apply(event))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((tenant, batch, done))
        self._wake.set()
        return done

    async def _writer(self) -> None:
        """Append what is waiting, one frame at a time, and answer its requests."""
        assert self.log is not None
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            waiting, self._waiting = self._waiting, []
            events = [e for _, batch, _ in waiting for e in batch]
            try:
                positions = await asyncio.to_thread(self.log.append, events)
            except Exception as exc:  # the engine is ahead of the log now: stop writing
                self.healthy = False
                _log.error(
                    "appending to %s failed: %s; the gateway stops accepting", self.path, exc
                )
                for _, _, done in waiting:
                    done.set_exception(exc)
                continue
            first = positions[0] if positions else 0
            for tenant, batch, done in waiting:
                self._record(tenant, list(enumerate(batch, first)))
                first += len(batch)
                done.set_result(None)

    async def _ticker(self) -> None:
        """A ``Tick`` for each tenant whose earliest timer is due (none while idle)."""
        while True:
            await asyncio.sleep(self.tick_s)
            wall = time.time_ns() // 1_000_000
            for name, tenant in list(self.engine.state.tenants.items()):
                if self.tenants is not None and name not in self.tenants:
                    continue
                if tenant.timers and tenant.timers[0].deadline <= wall:
                    try:
                        await self.submit(name, _tick(name))
                    except Exception as exc:
                        _log.warning("tick for %s not appended: %s", name, exc)


def _tick(tenant: str) -> Maker:
    def make(now: int) -> list[Input]:
        return [Tick(tenant=tenant, ts=now)]

    return make
