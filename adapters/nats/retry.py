"""Retrying JetStream requests through transient cluster errors, with bounded backoff.

A leader election, a node restart or a lost connection makes JetStream requests fail for
a while (:data:`~.options.TRANSIENT`: timeouts, no responders, no stream response,
JetStream unavailable). :func:`retrying` tries a request again after each such failure,
waiting :class:`Backoff` delays: doubling from ``first`` up to ``cap`` seconds, each
scattered by up to a quarter either way so that many callers do not retry in step. The
scatter comes from a generator seeded by the request's name, so a run's delays are the
same from one run to the next. Any other error is not transient and is raised at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .options import TRANSIENT

__all__ = ["Backoff", "retrying"]

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


class Backoff:
    """Delays between attempts: ``first`` doubling to ``cap`` (seconds), each within ±25 %.

    The jitter is drawn from a generator seeded by ``name``: deterministic per name.
    """

    def __init__(self, name: str, first: float = 0.05, cap: float = 2.0) -> None:
        self._rng = random.Random(zlib.crc32(name.encode()))
        self._first = first
        self._cap = cap
        self.attempt = 0
        """Failures since the last :meth:`reset`."""

    def next(self) -> float:
        """The delay before the next attempt (and count this failure)."""
        base = min(self._cap, self._first * 2**self.attempt)
        self.attempt += 1
        return float(base * (0.75 + 0.5 * self._rng.random()))

    def reset(self) -> None:
        self.attempt = 0


async def retrying(
    call: Callable[[], Awaitable[_T]],
    what: str,
    *,
    give_up: Callable[[], bool] = lambda: False,
    on_failure: Callable[[BaseException], None] | None = None,
    backoff: Backoff | None = None,
) -> _T:
    """``await call()`` until it does not fail with a transient error; its result.

    Between attempts waits :class:`Backoff` delays; ``on_failure`` hears of each transient
    failure; ``give_up()`` true after a failure raises it (a stopping service). ``what``
    names the request in the log and seeds the jitter.
    """
    backoff = backoff or Backoff(what)
    while True:
        try:
            return await call()
        except TRANSIENT as exc:
            if give_up():
                raise
            if on_failure is not None:
                on_failure(exc)
            level = logging.WARNING if backoff.attempt == 0 else logging.DEBUG
            _log.log(level, "%s: %s; retrying", what, str(exc) or type(exc).__name__)
            await asyncio.sleep(backoff.next())
