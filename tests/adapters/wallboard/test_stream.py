"""The event stream: the whole board first; an agent's change pushed at the next read;
the aggregates at most once a second; a source that fails says so and goes on; the
stream ends when told to."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from collections.abc import AsyncIterator

from omniroute.adapters.reporting.live import AgentNow, LiveState, QueueNow
from omniroute.adapters.wallboard import Filters
from omniroute.adapters.wallboard.reads import Reads
from omniroute.adapters.wallboard.stream import BOARD_MIN_S, event_stream

AS_OF = dt.datetime(2026, 1, 1, 9, tzinfo=dt.UTC)
QUEUE = QueueNow(
    tenant="acme", queue="sales", channel="voice", waiting=3, oldest_wait_s=42.0, offered=0,
    handling=1, sla_target_s=20.0, contacts_today=10, answered_today=6, abandoned_today=1,
    service_level_today=0.5, abandon_rate_today=0.1, service_level_15m=0.4,
    service_level_60m=0.5, abandoned_15m=1, abandoned_60m=1, ewt_s=30.0, sla_state="breach",
)  # fmt: skip
ANN = AgentNow(
    tenant="acme", agent_id="ann", name="Ann", kind="human", status="away", since=AS_OF,
    in_status_s=0.0, not_responding=False, conversations=(), legs=0, units_used=0,
    units_budget=100,
)  # fmt: skip
STATE = LiveState(AS_OF, (QUEUE,), (ANN,), (), ())


class Scripted:
    """A source whose state the test changes; it can be made to fail."""

    def __init__(self) -> None:
        self.state = STATE
        self.failing: Exception | None = None
        self.reads: list[tuple[str | None, str | None, str | None]] = []

    def read(self, tenant: str | None = None, queue: str | None = None,
             channel: str | None = None) -> LiveState:  # fmt: skip
        self.reads.append((tenant, queue, channel))
        if self.failing is not None:
            raise self.failing
        return self.state


async def _next(
    stream: AsyncIterator[bytes], timeout: float = 2.0
) -> list[tuple[str, dict[str, str]]]:
    """The events of the next chunk, as (event, data)."""
    chunk = (await asyncio.wait_for(anext(stream), timeout)).decode()
    events = []
    for block in chunk.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


async def _never() -> bool:
    return False


def test_the_board_then_its_changes() -> None:
    async def run() -> None:
        source, stop = Scripted(), asyncio.Event()
        stream = event_stream(Reads(source, 0.01), Filters("acme"), 0.05, stop, _never)
        assert (await anext(stream)) == b"retry: 2000\n\n"
        first = await _next(stream)
        assert [kind for kind, _ in first] == ["agents", "board"]
        assert 'data-status="away"' in first[0][1]["agents"]
        assert set(first[1][1]) == {"asof", "summary", "queues", "chart", "breaches"}
        assert 'data-field="waiting">3<' in first[1][1]["queues"]
        assert source.reads[0] == ("acme", None, None)  # the filters reach the source
        board_sent = time.monotonic()

        # ann comes back: pushed at the next read, the board (unchanged) is not
        source.state = dataclasses.replace(
            STATE, agents=(dataclasses.replace(ANN, status="available"),)
        )
        changed = time.monotonic()
        agents = await _next(stream)
        assert time.monotonic() - changed < 0.5
        assert [kind for kind, _ in agents] == ["agents"]
        assert 'data-status="available"' in agents[0][1]["agents"]

        # a new call waits: the board goes, but not within a second of the last one
        source.state = dataclasses.replace(
            source.state, queues=(dataclasses.replace(QUEUE, waiting=4),)
        )
        board = await _next(stream)
        assert time.monotonic() - board_sent >= BOARD_MIN_S - 0.01
        assert [kind for kind, _ in board] == ["board"]
        assert 'data-field="waiting">4<' in board[0][1]["queues"]

        # the source fails: said, and the stream goes on; back: the whole board again
        source.failing = OSError("locked")
        problem = await _next(stream)
        assert problem == [("problem", {"error": "OSError: locked"})]
        source.failing = None
        again = await _next(stream, timeout=3)
        assert [kind for kind, _ in again] in (["agents", "board"], ["agents"])

        stop.set()
        rest = [chunk async for chunk in stream]
        assert len(rest) <= 1  # (a board still due may go first)

    asyncio.run(run())


def test_the_stream_ends_when_the_client_goes() -> None:
    async def run() -> None:
        gone = False

        async def disconnected() -> bool:
            return gone

        stream = event_stream(Reads(Scripted(), 0.01), Filters(), 0.02, asyncio.Event(),
                              disconnected)  # fmt: skip
        await anext(stream)
        await _next(stream)
        gone = True
        assert [chunk async for chunk in stream] == []

    asyncio.run(run())


def test_reads_are_shared_between_streams_of_the_same_filters() -> None:
    async def run() -> None:
        source = Scripted()
        reads = Reads(source, fresh_s=10)
        states = await asyncio.gather(*(reads.read(Filters("acme")) for _ in range(5)))
        assert all(s is STATE for s in states) and len(source.reads) == 1
        await reads.read(Filters("beta"))
        assert len(source.reads) == 2

    asyncio.run(run())
