"""NatsLog against a real nats-server: the EventLog contract, frames, fencing, de-duplication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from nats.js.api import StorageType

from omniroute.adapters.nats.asynclog import AsyncNatsLog, LogConflictError
from omniroute.adapters.nats.cursor import Cursor
from omniroute.adapters.nats.frames import HEADER_COUNT, HEADER_POS, decode_frame
from omniroute.adapters.nats.log import NatsLog
from omniroute.adapters.nats.options import NatsOptions, StreamOptions, connect, ensure_stream
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.engine import events as ev
from omniroute.engine.events import Event, encode_msgpack
from omniroute.engine.log import EventLog, LogError
from tests.contracts.eventlog import SAMPLE_EVENTS, EventLogContract, batches
from tests.support.nats import options_for, unique

_SHARED_STREAM = StreamOptions(name="CONTRACT", prefix="contract")


class TestNatsLog(EventLogContract):
    @pytest.fixture(autouse=True)
    def _server(self, nats_server: LocalNatsServer) -> None:
        self.server = nats_server

    def make_log(self, tmp_path: Path) -> EventLog:
        return NatsLog(options_for(self.server), unique(), _SHARED_STREAM)

    def reopen(self, log: EventLog) -> EventLog:
        assert isinstance(log, NatsLog)
        return NatsLog(log.options, log.tenant, log.stream)

    # The inherited hypothesis test, re-wrapped so that hypothesis sees one executor per
    # test function when TestFileLog runs in the same session (differing_executors).
    @settings(
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=batches)
    def test_random_batches_read_back_equal(
        self, tmp_path: Path, opened: list[EventLog], data: list[list[Event]]
    ) -> None:
        inner = EventLogContract.test_random_batches_read_back_equal.hypothesis.inner_test  # type: ignore[attr-defined]
        inner(self, tmp_path, opened, data)


def _ticks(n: int, ts0: int = 0, tenant: str = "t") -> list[Event]:
    return [ev.Tick(tenant=tenant, ts=ts0 + i) for i in range(n)]


@pytest.fixture
def opts(nats_server: LocalNatsServer) -> NatsOptions:
    return options_for(nats_server)


@pytest.fixture
def logs() -> Iterator[list[NatsLog]]:
    opened: list[NatsLog] = []
    yield opened
    for log in opened:
        log.close()


def _raw_messages(
    opts: NatsOptions, stream: StreamOptions, subject: str
) -> list[tuple[int, dict[str, str], bytes]]:
    async def go() -> list[tuple[int, dict[str, str], bytes]]:
        nc = await connect(opts)
        try:
            core = AsyncNatsLog(nc, stream, "x", subject=subject)
            return [(f.seq, dict(f.headers), f.payload) async for f in core.frames(1)]
        finally:
            await nc.close()

    return asyncio.run(go())


def test_an_append_is_one_message_of_encoded_events_with_position_headers(
    opts: NatsOptions, stream_options: StreamOptions, logs: list[NatsLog]
) -> None:
    log = NatsLog(opts, "acme", stream_options)
    logs.append(log)
    log.append(SAMPLE_EVENTS[:5])
    log.append(SAMPLE_EVENTS[5:7])
    msgs = _raw_messages(opts, stream_options, f"{stream_options.prefix}.acme.out")
    assert len(msgs) == 2
    (_, h1, p1), (_, h2, _) = msgs
    assert (h1[HEADER_POS], h1[HEADER_COUNT]) == ("0", "5")
    assert (h2[HEADER_POS], h2[HEADER_COUNT]) == ("5", "2")
    assert decode_frame(p1) == [encode_msgpack(e) for e in SAMPLE_EVENTS[:5]]
    assert "Nats-Msg-Id" in h1


def test_stream_is_created_with_explicit_settings(opts: NatsOptions, logs: list[NatsLog]) -> None:
    stream = StreamOptions(
        name=unique("S"), prefix=unique("p"), storage="memory", duplicate_window_s=30,
        max_age_s=3600,
    )  # fmt: skip
    logs.append(NatsLog(opts, "acme", stream))

    async def info() -> object:
        nc = await connect(opts)
        try:
            return (await nc.jetstream().stream_info(stream.name)).config
        finally:
            await nc.close()

    config = asyncio.run(info())
    assert config.subjects == stream.stream_subjects()  # type: ignore[attr-defined]
    assert config.storage == StorageType.MEMORY  # type: ignore[attr-defined]
    assert config.duplicate_window == 30  # type: ignore[attr-defined]
    assert config.max_age == 3600  # type: ignore[attr-defined]
    assert config.allow_atomic  # type: ignore[attr-defined]


def test_existing_stream_with_other_storage_is_refused(opts: NatsOptions) -> None:
    name, prefix = unique("S"), unique("p")
    NatsLog(opts, "acme", StreamOptions(name=name, prefix=prefix, storage="memory")).close()
    with pytest.raises(LogError, match="storage"):
        NatsLog(opts, "acme", StreamOptions(name=name, prefix=prefix, storage="file"))


def test_existing_stream_settings_are_aligned(opts: NatsOptions, logs: list[NatsLog]) -> None:
    name, prefix = unique("S"), unique("p")
    NatsLog(opts, "acme", StreamOptions(name=name, prefix=prefix, max_age_s=60)).close()
    logs.append(NatsLog(opts, "acme", StreamOptions(name=name, prefix=prefix, max_age_s=120)))

    async def max_age() -> float:
        nc = await connect(opts)
        try:
            return float((await nc.jetstream().stream_info(name)).config.max_age or 0)
        finally:
            await nc.close()

    assert asyncio.run(max_age()) == 120


def test_missing_stream_is_an_error_when_creation_is_off(opts: NatsOptions) -> None:
    with pytest.raises(LogError, match="does not exist"):
        NatsLog(opts, "acme", StreamOptions(name=unique("S"), prefix=unique("p"), create=False))


def test_a_batch_larger_than_a_frame_is_one_atomic_batch_of_frames(
    opts: NatsOptions, logs: list[NatsLog]
) -> None:
    stream = StreamOptions(name=unique("S"), prefix=unique("p"), max_frame_bytes=2048)
    log = NatsLog(opts, "acme", stream)
    logs.append(log)
    big = [
        ev.ConversationArrived(
            tenant="acme", ts=i, conversation_id=f"c{i}", channel="email",
            contact=ev.Contact("email", f"{i}@example.com"),
        )
        for i in range(300)
    ]  # fmt: skip
    log.append(_ticks(1))
    assert log.append(big) == list(range(1, 301))
    assert log.append(_ticks(1)) == [301]
    msgs = _raw_messages(opts, stream, f"{stream.prefix}.acme.out")
    assert len(msgs) > 5
    assert all(len(payload) <= 2048 for _, _, payload in msgs)
    assert [e for _, e in log.read()] == _ticks(1) + big + _ticks(1)
    log.close()
    again = NatsLog(opts, "acme", stream)
    logs.append(again)
    assert again.end() == 302
    assert [e for _, e in again.read(1, 300)] == big


def test_a_stale_writer_cannot_append(opts: NatsOptions, stream_options: StreamOptions,
                                      logs: list[NatsLog]) -> None:  # fmt: skip
    first = NatsLog(opts, "acme", stream_options)
    second = NatsLog(opts, "acme", stream_options)
    logs += [first, second]
    first.append(_ticks(2))
    assert second.refresh() == 2
    second.append(_ticks(1, ts0=2))  # second takes over
    with pytest.raises(LogConflictError):
        first.append(_ticks(1, ts0=99))  # first is behind: fenced off
    assert first.refresh() == 3
    assert [e.ts for _, e in first.read()] == [0, 1, 2]
    assert first.append(_ticks(1, ts0=3)) == [3]
    with pytest.raises(LogConflictError):
        second.append(_ticks(1, ts0=99))


def test_both_writers_start_on_an_empty_log_only_one_wins(
    opts: NatsOptions, stream_options: StreamOptions, logs: list[NatsLog]
) -> None:
    a = NatsLog(opts, "acme", stream_options)
    b = NatsLog(opts, "acme", stream_options)
    logs += [a, b]
    a.append(_ticks(1))
    with pytest.raises(LogConflictError):
        b.append(_ticks(1, ts0=5))
    assert b.refresh() == 1


def test_readonly_follower_refreshes_and_refuses_appends(
    opts: NatsOptions, stream_options: StreamOptions, logs: list[NatsLog]
) -> None:
    writer = NatsLog(opts, "acme", stream_options)
    reader = NatsLog(opts, "acme", stream_options, readonly=True)
    logs += [writer, reader]
    writer.append(_ticks(3))
    assert reader.end() == 0
    assert reader.refresh() == 3
    assert [e.ts for _, e in reader.read(1)] == [1, 2]
    with pytest.raises(LogError, match="read-only"):
        reader.append(_ticks(1))


def test_tenants_are_separate_logs(opts: NatsOptions, stream_options: StreamOptions,
                                   logs: list[NatsLog]) -> None:  # fmt: skip
    a = NatsLog(opts, "acme", stream_options)
    b = NatsLog(opts, "globex", stream_options)
    logs += [a, b]
    a.append(_ticks(3, tenant="acme"))
    b.append(_ticks(1, tenant="globex"))
    assert (a.end(), b.end()) == (3, 1)
    assert [e.tenant for _, e in b.read()] == ["globex"]


def test_invalid_tenant_is_refused(opts: NatsOptions) -> None:
    with pytest.raises(ValueError, match="tenant"):
        NatsLog(opts, "a.b", StreamOptions(name=unique("S"), prefix=unique("p")))


def test_unreachable_server_raises_log_error(tmp_path: Path) -> None:
    from omniroute.adapters.nats.server import free_port

    options = NatsOptions(servers=(f"nats://127.0.0.1:{free_port()}",), connect_timeout_s=0.5,
                          initial_connect_s=1.0)  # fmt: skip
    with pytest.raises(LogError, match="cannot connect"):
        NatsLog(options, "acme")


def test_env_overrides_servers_and_creds() -> None:
    base = NatsOptions(servers=("nats://a:1",), creds=None)
    env = {"NATS_URL": "nats://x:4222, nats://y:4222", "NATS_CREDS": "/etc/x.creds"}
    got = base.with_env(env)
    assert got.servers == ("nats://x:4222", "nats://y:4222")
    assert got.creds == "/etc/x.creds"
    assert base.with_env({}) == base


def test_cursor_resumes_after_a_server_restart(fresh_nats_server: LocalNatsServer) -> None:
    server = fresh_nats_server
    stream = StreamOptions(name="R", prefix="r")

    async def go() -> list[int]:
        nc = await connect(NatsOptions(servers=(server.url,), reconnect_wait_s=0.1))
        try:
            js = nc.jetstream()
            await ensure_stream(js, stream)
            for i in range(5):
                await js.publish("r.acme.in", msgspec.msgpack.encode([i]))
            cursor = Cursor(nc, "R", "r.acme.in", 1, heartbeat_s=0.2)
            got = [int(msgspec.msgpack.decode(m.data)[0]) for m in await cursor.fetch(2.0)]
            await asyncio.get_running_loop().run_in_executor(None, server.restart)
            for _ in range(100):
                if nc.is_connected:
                    break
                await asyncio.sleep(0.1)
            for i in range(5, 10):
                for _ in range(50):
                    try:
                        await js.publish("r.acme.in", msgspec.msgpack.encode([i]))
                        break
                    except Exception:
                        await asyncio.sleep(0.1)
            deadline = asyncio.get_running_loop().time() + 15
            while len(got) < 10 and asyncio.get_running_loop().time() < deadline:
                got += [int(msgspec.msgpack.decode(m.data)[0]) for m in await cursor.fetch(0.5)]
            await cursor.close()
            return got
        finally:
            await nc.close()

    assert asyncio.run(go()) == list(range(10))


def test_a_cursor_reads_a_long_subject_with_one_consumer(
    nats_server: LocalNatsServer,
) -> None:
    """A pull request whose batch is delivered in full ends with "409 Batch Completed" (max
    bytes left over): the end of the request, not a reason to re-create the consumer."""
    stream = StreamOptions(name=unique("LONG"), prefix=unique("long"))
    subject = f"{stream.prefix}.acme.out"

    async def go() -> tuple[list[int], int]:
        nc = await connect(options_for(nats_server))
        try:
            js = nc.jetstream()
            await ensure_stream(js, stream)
            for i in range(700):
                await js.publish(subject, msgspec.msgpack.encode([i]))
            cursor = Cursor(nc, stream.name, subject, 1, batch=256)
            got: list[int] = []
            deadline = asyncio.get_running_loop().time() + 20
            while len(got) < 700 and asyncio.get_running_loop().time() < deadline:
                got += [int(msgspec.msgpack.decode(m.data)[0]) for m in await cursor.fetch(1.0)]
            await cursor.close()
            return got, cursor.resets
        finally:
            await nc.close()

    got, resets = asyncio.run(go())
    assert got == list(range(700))
    assert resets == 1  # the consumer created once, kept over three batches


def test_server_restart_keeps_the_log(fresh_nats_server: LocalNatsServer) -> None:
    opts = options_for(fresh_nats_server)
    stream = StreamOptions(name="K", prefix="k")
    with NatsLog(opts, "acme", stream) as log:
        log.append(SAMPLE_EVENTS)
    fresh_nats_server.restart()
    with NatsLog(opts, "acme", stream) as log:
        assert [e for _, e in log.read()] == SAMPLE_EVENTS
