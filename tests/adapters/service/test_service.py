"""``omniroute serve`` against a real nats-server: crash-safe restart, server restart,
duplicates, bad input, snapshots. The crash test runs the real command as a subprocess and
kills it with SIGKILL mid-stream (§9: "lost or re-queued-forever state on restart",
"double assignment under races", "agents over capacity")."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import msgspec
import pytest

from omniroute.adapters.nats.frames import HEADER_IN
from omniroute.adapters.nats.options import NatsOptions, StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.inputs import decode_inputs
from omniroute.engine import events as ev
from omniroute.engine.events import encode_json, encode_msgpack, is_decision
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    ServeProcess,
    check_log,
    config_toml,
    frames_of,
    log_events,
    out_tail,
    publish,
    publish_in_thread,
    service_config,
    subject_messages,
    wait_for,
    wait_until_consumed,
    workload,
    writers,
)


def _crash_run(server: LocalNatsServer, tmp_path: Path, n: int, kills: int, seed: int) -> None:
    opts = options_for(server)
    stream = StreamOptions(name="CRASH", prefix="crash")
    tenant = "acme"
    events = workload(tenant, n, seed=seed, ts0=int(time.time() * 1000))
    frames = frames_of(events, seed=seed)
    config = tmp_path / "serve.toml"
    config.write_text(
        config_toml(
            server.url, stream, [tenant], instance="crash-test",
            extra_service="lease_ttl_s = 2\nsnapshot_every = 300\ntick_interval_s = 0.05",
        )
    )  # fmt: skip
    published: list[int] = []
    procs = [ServeProcess(config, tmp_path / "serve-1.log")]
    try:
        procs[0].wait_ready()
        seqs: list[int] = []
        publisher = publish_in_thread(published, seqs, opts, stream, tenant, frames, pause=0.02)
        positions: list[int] = []
        for k in range(kills):  # kill -9 while inputs keep coming
            share = len(frames) * (k + 1) // (kills + 2)
            wait_for(lambda share=share: len(published) > share, 60, "publishing")
            before = positions[-1] if positions else 0
            wait_for(lambda before=before: _position(opts, stream, tenant) > before, 30,
                     "the service to write")  # fmt: skip
            positions.append(_position(opts, stream, tenant))
            procs[-1].kill9()
            assert len(published) < len(frames), "the kill came after the last input"
            procs.append(ServeProcess(config, tmp_path / f"serve-{k + 2}.log"))
            procs[-1].wait_ready()
        publisher.join(120)
        assert len(seqs) == len(frames)
        wait_until_consumed(opts, stream, tenant, seqs[-1])
        assert procs[-1].terminate() == 0
    finally:
        for p in procs:
            p.close()
    assert positions[0] > 0 and positions == sorted(positions)  # kills hit a log being written
    for p in procs[1:]:
        assert "restored snapshot" in p.output()
    final = check_log(opts, stream, tenant, events)
    assert len(final) > positions[-1]
    assert sum(isinstance(e, ev.ConversationAssigned) for e in final) > n // 60


def test_crash_kill9_mid_stream_and_restart_equals_a_clean_replay(
    fresh_nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    _crash_run(fresh_nats_server, tmp_path, 3000, kills=2, seed=11)


@pytest.mark.slow
def test_crash_many_kills_over_a_long_stream(
    fresh_nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    _crash_run(fresh_nats_server, tmp_path, 20_000, kills=8, seed=12)


def _position(opts: object, stream: StreamOptions, tenant: str) -> int:
    tail = out_tail(opts, stream, tenant)  # type: ignore[arg-type]
    return int(tail.get("Omniroute-Pos", "0")) + int(tail.get("Omniroute-Count", "0"))


@pytest.fixture
def stream() -> StreamOptions:
    return StreamOptions(name=unique("S"), prefix=unique("p"))


def _service(server: LocalNatsServer, stream: StreamOptions, tenants: list[str], tmp_path: Path,
             extra: str = "", instance: str | None = None) -> InProcessService:  # fmt: skip
    text = config_toml(server.url, stream, tenants, instance=instance or unique("i"),
                       extra_service=extra)  # fmt: skip
    return InProcessService(service_config(text, tmp_path))


def test_graceful_restart_resumes_from_its_snapshot_deciding_nothing_twice(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    opts = options_for(nats_server)
    events = workload("acme", 800, seed=5)
    frames = frames_of(events, seed=1)
    extra = "lease_ttl_s = 2\nsnapshot_every = 200\ntick_interval_s = 0"
    svc = _service(nats_server, stream, ["acme"], tmp_path, extra, instance="same")
    seqs = publish(opts, stream, "acme", frames[: len(frames) // 2])
    wait_until_consumed(opts, stream, "acme", seqs[-1])
    assert svc.stop() == 0
    before = log_events(opts, stream, "acme")
    svc = _service(nats_server, stream, ["acme"], tmp_path, extra, instance="same")
    seqs = publish(opts, stream, "acme", frames[len(frames) // 2 :])
    wait_until_consumed(opts, stream, "acme", seqs[-1])
    worker = svc.service.workers["acme"]
    assert svc.stop() == 0
    after = check_log(opts, stream, "acme", events)
    assert after[: len(before)] == before
    assert worker._snap is not None and worker._snap.out_end >= len(before)


def test_server_restart_under_a_running_service_resumes(
    fresh_nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    server = fresh_nats_server
    opts = options_for(server)
    stream = StreamOptions(name="RESTART", prefix="restart")
    events = workload("acme", 1200, seed=7)
    frames = frames_of(events, seed=2)
    svc = _service(server, stream, ["acme"], tmp_path, "lease_ttl_s = 3\ntick_interval_s = 0.1")
    half = len(frames) // 2
    seqs = publish(opts, stream, "acme", frames[:half])
    wait_until_consumed(opts, stream, "acme", seqs[-1])
    server.restart()
    seqs = publish(opts, stream, "acme", frames[half:])
    wait_until_consumed(opts, stream, "acme", seqs[-1], timeout=60)
    assert svc.running
    assert svc.stop() == 0
    check_log(opts, stream, "acme", events)


def test_the_same_input_frame_published_twice_changes_nothing(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    opts = options_for(nats_server)
    events = workload("acme", 300, seed=9)
    frames = frames_of(events, seed=4)
    ids = [f"frame-{i}" for i in range(len(frames))]
    svc = _service(nats_server, stream, ["acme"], tmp_path, "tick_interval_s = 0")
    try:
        first = publish(opts, stream, "acme", frames, msg_ids=ids)
        again = publish(opts, stream, "acme", frames, msg_ids=ids)  # within the window
        assert again == first  # the server acknowledged the originals: stored once
        wait_until_consumed(opts, stream, "acme", first[-1])
        before = log_events(opts, stream, "acme")
        # beyond the window (no message id): the events' ids make the engine skip them
        seqs = publish(opts, stream, "acme", frames[:5])
        wait_until_consumed(opts, stream, "acme", seqs[-1])
    finally:
        assert svc.stop() == 0
    after = log_events(opts, stream, "acme")
    assert [e for e in before if not is_decision(e)] == events
    repeated = after[len(before) :]
    assert [e for e in repeated if not is_decision(e)] == [e for f in frames[:5] for e in f]
    assert [e for e in repeated if is_decision(e)] == []  # nothing decided


def _garbage(seed: int, tenant: str) -> tuple[list[bytes], int, list[ev.Event]]:
    """A fuzzed mix of input messages: (payloads, bad events expected, valid events)."""
    import random

    rng = random.Random(seed)
    good = workload(tenant, 200, seed=seed)
    payloads: list[bytes] = []
    bad = 0
    valid: list[ev.Event] = []
    queue = list(good)
    while queue:
        r = rng.random()
        if r < 0.45:
            k = rng.randint(1, 8)
            chunk, queue = queue[:k], queue[k:]
            payloads.append(msgspec.msgpack.encode([msgspec.msgpack.decode(encode_msgpack(e))
                                                    for e in chunk]))  # fmt: skip
            valid += chunk
        elif r < 0.55:
            e, queue = queue[0], queue[1:]
            payloads.append(encode_json(e))  # JSON edge format
            valid.append(e)
        elif r < 0.62:
            payloads.append(rng.randbytes(rng.randint(1, 60)))  # undecodable bytes
            bad += 1
        elif r < 0.68:
            payloads.append(b'{"type": "conversation.arrived", "tenant": "' + tenant.encode()
                            + b'", "ts": "soon"}')  # fmt: skip
            bad += 1
        elif r < 0.74:
            unknown = {"type": "no.such.event", "tenant": tenant, "ts": 1}
            payloads.append(msgspec.msgpack.encode([unknown, {"nonsense": True}, 42]))
            bad += 3
        elif r < 0.80:
            other = ev.AgentRegistered(tenant="globex", ts=5, agent_id="x")
            payloads.append(msgspec.msgpack.encode([msgspec.msgpack.decode(encode_msgpack(other))]))
            bad += 1
        elif r < 0.86:
            fake = ev.ConversationAssigned(tenant=tenant, ts=5, conversation_id="c1", agent_id="a1")
            payloads.append(encode_json(fake))
            bad += 1
        elif r < 0.93:
            invalid = ev.OfferAccepted(tenant=tenant, ts=5, conversation_id=f"nope{rng.random()}",
                                       agent_id="nobody")  # fmt: skip
            payloads.append(encode_json(invalid))  # valid schema, invalid transition
            valid.append(invalid)
            bad += 1
        else:
            payloads.append(b"")
            bad += 1
    return payloads, bad, valid


def test_bad_input_is_rejected_with_a_reason_and_never_stops_the_service(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    opts = options_for(nats_server)
    payloads, bad, valid = _garbage(3, "acme")
    svc = _service(nats_server, stream, ["acme"], tmp_path, "tick_interval_s = 0")

    def answers() -> tuple[list[tuple[dict[str, str], bytes]], list[tuple[dict[str, str], bytes]]]:
        return (subject_messages(opts, stream, f"{stream.prefix}.acme.rejected"),
                subject_messages(opts, stream, f"{stream.prefix}.acme.dead"))  # fmt: skip

    try:
        seqs = publish(opts, stream, "acme", payloads)
        wait_until_consumed(opts, stream, "acme", seqs[-1])
        wait_for(lambda: sum(map(len, answers())) >= bad, 20, "rejections")
        assert svc.running
    finally:
        assert svc.stop() == 0
    log = log_events(opts, stream, "acme")
    assert [e for e in log if not is_decision(e)] == valid  # every valid event applied, once
    rejected, dead = answers()
    assert len(rejected) + len(dead) == bad  # every bad event answered, once
    reasons = [msgspec.json.decode(data)["reason"] for _, data in rejected]
    assert all(reasons)
    assert any("invalid event" in r for r in reasons)
    assert any("tenant 'globex'" in r for r in reasons)
    assert any("decisions are emitted" in r for r in reasons)
    assert any("unknown" in r for r in reasons)  # the engine's own rejections are mirrored
    dead_reasons = [h.get("Omniroute-Reason", "") for h, _ in dead]
    assert all(dead_reasons)
    assert any("empty message" in r for r in dead_reasons)
    assert any("neither a msgpack array" in r for r in dead_reasons)
    assert {data for _, data in dead} <= set(payloads)


@pytest.mark.parametrize(
    ("payload", "stage"),
    [
        (b"", None),
        (b"\xc1\xc1", None),
        (b"[1, 2", None),
        (b"[]", None),
        (b"\x90", None),
        (b"{nope", None),
        (b"[" * 100_000, None),
        (
            b'{"type": "agent.removed", "tenant": "acme", "ts": 1, "agent_id": "a", "x": 1}',
            "schema",
        ),
        (b'{"type": "tick", "tenant": "acme", "ts": 9223372036854775808}', "schema"),
        (b'{"type": "tick", "tenant": "acme", "ts": -1}', "ok"),
        (b'{"type": "tick", "tenant": "acme"}', "schema"),
        (b'[{"type": "tick", "tenant": "other", "ts": 1}]', "tenant"),
        (b'{"type": "event.rejected", "tenant": "acme", "ts": 1, "reason": "x"}', "decision"),
    ],
)
def test_decode_inputs_classifies_each_event(payload: bytes, stage: str | None) -> None:
    items, error = decode_inputs(payload, "acme")
    if stage is None:
        assert error and not items
        return
    assert error is None
    (item,) = items
    if stage == "ok":
        assert isinstance(item, ev.Tick)
    else:
        assert not isinstance(item, ev.Tick)
        assert item.stage == stage  # type: ignore[union-attr]
        assert item.reason  # type: ignore[union-attr]


def test_heartbeat_ticks_are_appended_at_the_configured_cadence(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    opts = options_for(nats_server)  # (when ticks are due: test_ticks.py)
    svc = _service(nats_server, stream, ["acme"], tmp_path,
                   "tick_interval_s = 0.1\nheartbeat_s = 0.1")  # fmt: skip
    try:
        wait_for(lambda: int(out_tail(opts, stream, "acme").get("Omniroute-Pos", "0")) >= 5,
                 10, "ticks")  # fmt: skip
    finally:
        assert svc.stop() == 0
    log = log_events(opts, stream, "acme")
    ticks = [e for e in log if isinstance(e, ev.Tick)]
    assert len(ticks) >= 5
    assert [t.ts for t in ticks] == sorted(t.ts for t in ticks)
    assert out_tail(opts, stream, "acme").get(HEADER_IN)


# --- one writer per tenant: lease, hot standby, failover ---------------------------------------


def _first_frame_by(opts: object, stream: StreamOptions, tenant: str, writer: str) -> bool:
    return writer in writers(opts, stream, tenant)  # type: ignore[arg-type]


def test_failover_standby_takes_over_within_the_lease_ttl_when_the_writer_dies(
    fresh_nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    server = fresh_nats_server
    opts = options_for(server)
    stream = StreamOptions(name="FAILOVER", prefix="failover")
    tenant = "acme"
    ttl = 2.0
    events = workload(tenant, 2500, seed=21, ts0=int(time.time() * 1000))
    frames = frames_of(events, seed=5, max_size=20)
    extra = f"lease_ttl_s = {ttl}\nsnapshot_every = 300\ntick_interval_s = 0.1"
    configs = []
    for name in ("writer", "standby"):
        path = tmp_path / f"{name}.toml"
        path.write_text(config_toml(server.url, stream, [tenant], instance=name,
                                    extra_service=extra))  # fmt: skip
        configs.append(path)
    writer = ServeProcess(configs[0], tmp_path / "writer.log")
    writer.wait_ready()
    standby = ServeProcess(configs[1], tmp_path / "standby.log")
    try:
        standby.wait_ready("lease held by writer")
        published: list[int] = []
        seqs: list[int] = []
        publisher = publish_in_thread(published, seqs, opts, stream, tenant, frames, pause=0.02)
        wait_for(lambda: len(published) > len(frames) // 4, 30, "publishing")
        killed = time.monotonic()
        writer.kill9()
        assert len(published) < len(frames) // 2, "the writer died too late"
        wait_for(lambda: _first_frame_by(opts, stream, tenant, "standby"), 3 * ttl,
                 "the standby to write", every=0.02)  # fmt: skip
        takeover = time.monotonic() - killed
        assert len(published) < len(frames), "the standby took over after the last input"
        publisher.join(60)
        wait_until_consumed(opts, stream, tenant, seqs[-1])
        assert standby.terminate() == 0
    finally:
        writer.close()
        standby.close()
    print(f"\nstandby took over {takeover:.2f} s after the writer was killed (lease TTL {ttl} s)")
    assert takeover < ttl + 1.5  # (the margin is for a loaded test machine; typically < ttl)
    check_log(opts, stream, tenant, events)
    by = writers(opts, stream, tenant)
    switch = by.index("standby")
    assert set(by[:switch]) == {"writer"} and set(by[switch:]) == {"standby"}


def test_graceful_stop_hands_over_at_once_and_a_stale_writer_is_fenced_off(
    fresh_nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    import signal

    server = fresh_nats_server
    opts = options_for(server)
    stream = StreamOptions(name="STALE", prefix="stale")
    tenant = "acme"
    ttl = 1.5
    events = workload(tenant, 1500, seed=23, ts0=int(time.time() * 1000))
    frames = frames_of(events, seed=6)
    extra = f"lease_ttl_s = {ttl}\nsnapshot_every = 200\ntick_interval_s = 0.1"
    paths = {}
    for name in ("a", "b"):
        paths[name] = tmp_path / f"{name}.toml"
        paths[name].write_text(config_toml(server.url, stream, [tenant], instance=name,
                                           extra_service=extra))  # fmt: skip
    a = ServeProcess(paths["a"], tmp_path / "a.log")
    a.wait_ready()
    b = ServeProcess(paths["b"], tmp_path / "b.log")
    procs = [a, b]
    try:
        b.wait_ready("lease held by a")
        published: list[int] = []
        seqs: list[int] = []
        publisher = publish_in_thread(published, seqs, opts, stream, tenant, frames, pause=0.02)
        wait_for(lambda: len(published) > len(frames) // 4, 30, "publishing")
        # 1. a stale writer: freeze the writer past its lease; the standby takes over; the
        #    old writer wakes up believing it still writes, and is fenced off
        a.proc.send_signal(signal.SIGSTOP)
        wait_for(lambda: _first_frame_by(opts, stream, tenant, "b"), 4 * ttl, "b to write")
        a.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: "lease lost" in a.output() or "fenced off" in a.output(), 10,
                 "a to notice it lost the lease")  # fmt: skip
        # 2. a graceful stop releases the lease: the standby takes over at once
        wait_for(lambda: len(published) > len(frames) // 2, 30, "publishing")
        a.wait_ready("lease held by b")
        stopped = time.monotonic()
        assert b.terminate() == 0
        wait_for(lambda: "writing the log" in a.output().split("lease held by b")[-1], 2 * ttl,
                 "a to take over again", every=0.02)  # fmt: skip
        handover = time.monotonic() - stopped
        publisher.join(60)
        wait_until_consumed(opts, stream, tenant, seqs[-1])
        assert a.terminate() == 0
    finally:
        for p in procs:
            p.close()
    print(f"\ngraceful hand-over took {handover:.2f} s")
    assert handover < ttl + 1.0  # typically a few hundred ms
    check_log(opts, stream, tenant, events)


def _tick_until(stop: threading.Event, opts: NatsOptions, stream: StreamOptions) -> None:
    while not stop.is_set():
        tick = ev.Tick(tenant="acme", ts=int(time.time() * 1000))
        publish(opts, stream, "acme", [[tick]])
        time.sleep(0.02)


def _holds(worker: object) -> bool:
    lease = getattr(worker, "lease", None)
    return lease is not None and bool(lease.held)


def test_split_brain_a_writer_that_believes_it_holds_the_lease_is_fenced_off(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    """Even when two instances both believe they are the writer (a lease bug, a clock
    jump), the expected-sequence check keeps the log a single valid history: every append
    of the stale one is refused, it rebuilds from the log, and nothing is decided twice."""
    opts = options_for(nats_server)
    events = workload("acme", 1500, seed=31, ts0=int(time.time() * 1000))
    frames = frames_of(events, seed=8, max_size=10)
    extra = "lease_ttl_s = 1\nsnapshot_every = 200\ntick_interval_s = 0.05"
    a = _service(nats_server, stream, ["acme"], tmp_path, extra, instance="a")
    b: InProcessService | None = None
    try:
        seqs = publish(opts, stream, "acme", frames[:20])
        wait_until_consumed(opts, stream, "acme", seqs[-1])
        lease = a.service.workers["acme"].lease
        assert lease is not None and lease.held
        lease.still_valid = lambda: True  # type: ignore[method-assign]  # a never doubts itself
        a._loop.call_soon_threadsafe(lease._task.cancel)  # type: ignore[union-attr]  # nor renews
        b = _service(nats_server, stream, ["acme"], tmp_path, extra, instance="b")
        service_b = b.service
        wait_for(lambda: _holds(service_b.workers.get("acme")), 20, "b to take the lease")
        # both now believe they are the writer, and both see the rest of the inputs, with
        # Ticks in between (as two writers ticking on a timer sent them): the two then batch
        # differently, and an append that lands second is refused (the same inputs in the
        # same batches would make the same frames, taken for one append)
        ticking = threading.Event()
        ticker = threading.Thread(target=_tick_until, args=(ticking, opts, stream), daemon=True)
        ticker.start()
        try:
            seqs = publish(opts, stream, "acme", frames[20:], pause=0.01)
        finally:
            ticking.set()
            ticker.join(10)
        wait_until_consumed(opts, stream, "acme", seqs[-1])
        conflicts = a.service.metrics.conflicts.labels("acme")._value.get()
        assert conflicts >= 1
        assert "b" in writers(opts, stream, "acme")
    finally:
        assert a.stop() == 0
        if b is not None:
            assert b.stop() == 0
    check_log(opts, stream, "acme", events)


# --- observability ------------------------------------------------------------------------------


def _scrape(port: int) -> dict[str, float]:
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            values[f"{sample.name}{{{labels}}}"] = sample.value
    return values


def test_metrics_endpoint_counts_events_decisions_latency_queues_and_lag(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    from omniroute.adapters.nats.server import free_port

    opts = options_for(nats_server)
    port = free_port()
    text = config_toml(nats_server.url, stream, ["acme"], instance="m", metrics_port=port,
                       extra_service="tick_interval_s = 0")  # fmt: skip
    events = workload("acme", 600, seed=4)
    svc = InProcessService(service_config(text, tmp_path))
    try:
        seqs = publish(opts, stream, "acme", [*frames_of(events, seed=2), b"garbage"])
        # the garbage appends nothing to the log when it is fetched alone: wait for the
        # last valid frame in the log, then for the garbage's dead letter
        wait_until_consumed(opts, stream, "acme", seqs[-2])
        wait_for(
            lambda: len(subject_messages(opts, stream, f"{stream.prefix}.acme.dead")) == 1,
            20, "the dead letter",
        )  # fmt: skip
        time.sleep(0.5)  # gauges are recomputed every interval_s
        m = _scrape(port)
    finally:
        assert svc.stop() == 0
    log = log_events(opts, stream, "acme")
    decisions = [e for e in log if is_decision(e)]
    assert m["omniroute_inputs_total{tenant=acme}"] == len(events)
    assert sum(v for k, v in m.items() if k.startswith("omniroute_decisions_total")) == len(
        decisions
    )
    assert m["omniroute_decisions_total{tenant=acme,type=conversation.queued}"] == sum(
        isinstance(e, ev.ConversationQueued) for e in decisions
    )
    assert m["omniroute_rejected_total{stage=dead,tenant=acme}"] == 1
    assert m["omniroute_decision_latency_seconds_count{tenant=acme}"] == len(seqs)
    assert m["omniroute_writer{tenant=acme}"] == 1
    assert m["omniroute_consumer_lag{tenant=acme}"] == 0
    assert m["omniroute_log_position{tenant=acme}"] == len(log)
    svc_engine = svc.service.workers["acme"].engine
    state = svc_engine.tenant("acme")
    assert state is not None
    queued_voice = sum(
        c.in_queue and c.media_class == "voice" for c in state.conversations.values()
    )
    assert m["omniroute_queue_depth{class=voice,tenant=acme}"] == queued_voice
    for cls in ("voice", "chat", "messaging", "email", "social", "task", "video"):
        assert f"omniroute_agents_available{{class={cls},tenant=acme}}" in m


def test_serve_logs_json_lines_when_asked(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    import json

    config = tmp_path / "serve.toml"
    config.write_text(config_toml(nats_server.url, stream, ["acme"], instance="j",
                                  extra_service="tick_interval_s = 0"))  # fmt: skip
    proc = ServeProcess(config, tmp_path / "serve.log", "--log-format", "json")
    try:
        proc.wait_ready()
        assert proc.terminate() == 0
    finally:
        proc.close()
    lines = [json.loads(line) for line in proc.output().splitlines()]
    assert {"ts", "level", "logger", "message"} <= set(lines[0])
    assert any("writing the log" in line["message"] for line in lines)
    assert any("lease released" in line["message"] for line in lines)
