"""Request limits: a token bucket per client address, and bodies read up to a size."""

from __future__ import annotations

import time
from collections import OrderedDict

from starlette.requests import Request

__all__ = ["BodyTooLarge", "RateLimiter", "read_body"]

_CLIENTS = 10_000
"""Client addresses remembered (the least recently seen forgotten first)."""


class BodyTooLarge(Exception):
    """The request body is larger than allowed (HTTP 413)."""


class RateLimiter:
    """``rate`` requests per second per key, bursts up to ``burst``; rate 0: no limit."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > _CLIENTS:
            self._buckets.popitem(last=False)
        return allowed


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, exactly as sent; :class:`BodyTooLarge` past ``limit`` bytes (read no
    further than that)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)
