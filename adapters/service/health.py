"""The service's health: ``ok``, or ``degraded`` with the reasons (what is being retried).

Each part of the service that retries through a cluster error names its trouble under a
key while it lasts (:meth:`Health.trouble`) and clears it when the retry succeeds
(:meth:`Health.clear`): the connection ("nats disconnected"), a tenant's lease ("lease
renew failing for tenant acme"), an append or publish ("append retrying for tenant
acme"), a start-up request. ``GET /health`` on the metrics endpoint shows
:meth:`Health.report`; ``omniroute_degraded`` is 1 while any trouble lasts. Read from the
HTTP thread, written from the event loop: the table is guarded by a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..nats.retry import retrying

__all__ = ["Health"]

_T = TypeVar("_T")


class Health:
    """Troubles by key; ``ok`` when there is none."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._troubles: dict[str, str] = {}

    def trouble(self, key: str, reason: str) -> None:
        """``key`` is in trouble for ``reason`` (replacing its earlier reason)."""
        with self._lock:
            self._troubles[key] = reason

    def clear(self, key: str) -> None:
        """``key``'s trouble is over (nothing when it had none)."""
        with self._lock:
            self._troubles.pop(key, None)

    @property
    def degraded(self) -> bool:
        with self._lock:
            return bool(self._troubles)

    def report(self) -> dict[str, object]:
        """``{"status": "ok" | "degraded", "reasons": [...]}``, reasons sorted by key."""
        with self._lock:
            reasons = [self._troubles[k] for k in sorted(self._troubles)]
        return {"status": "degraded" if reasons else "ok", "reasons": reasons}

    async def retrying(
        self, call: Callable[[], Awaitable[_T]], what: str, give_up: Callable[[], bool]
    ) -> _T:
        """:func:`~omniroute.adapters.nats.retry.retrying`, degraded (``what`` retrying)
        from the first transient failure until the call succeeds."""

        def failed(exc: BaseException) -> None:
            self.trouble(what, f"{what} retrying: {str(exc) or type(exc).__name__}")

        try:
            return await retrying(call, what, give_up=give_up, on_failure=failed)
        finally:
            self.clear(what)
