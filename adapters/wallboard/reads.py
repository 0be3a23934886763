"""The source's reads, shared: every page and stream showing the same filters within
``fresh_s`` of a read gets that read (a source read is a few queries; many supervisors
watching the same board cost one)."""

from __future__ import annotations

import asyncio
import time

from omniroute.adapters.reporting.live import LiveState

from .filters import Filters
from .sources import StateSource

__all__ = ["Reads"]


class Reads:
    """Reads ``source`` off the event loop (in a worker thread), each filter set at most
    once per ``fresh_s``; the last error is kept for ``/health``."""

    def __init__(self, source: StateSource, fresh_s: float) -> None:
        self.source = source
        self.fresh_s = fresh_s
        self.error: BaseException | None = None
        self._last: dict[Filters, tuple[float, asyncio.Future[LiveState]]] = {}

    async def read(self, filters: Filters) -> LiveState:
        """The state for ``filters``: a read in flight or fresh enough, else a new one."""
        now = time.monotonic()
        last = self._last.get(filters)
        if (
            last is None
            or now - last[0] >= self.fresh_s
            or last[1].cancelled()
            or last[1].get_loop() is not asyncio.get_running_loop()  # (a server restarted)
        ):
            task = asyncio.ensure_future(self._read(filters))
            if len(self._last) > 256:  # forget the filters nobody shows any more
                self._last = {f: v for f, v in self._last.items() if now - v[0] < 60}
            self._last[filters] = last = (now, task)
        return await asyncio.shield(last[1])

    async def _read(self, filters: Filters) -> LiveState:
        try:
            state = await asyncio.to_thread(
                self.source.read, filters.tenant, filters.queue, filters.channel
            )
        except Exception as exc:
            self.error = exc
            self._last.pop(filters, None)  # the next reader tries again
            raise
        self.error = None
        return state
