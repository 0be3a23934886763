"""Poison input against a real nats-server: whatever a message on ``P.T.in`` holds, the
service answers it once (routed, on ``P.T.rejected`` with the reason, or on ``P.T.dead``),
moves on and keeps routing the tenant; a restart never crash-loops on what it already read
(issue 12: one 600 KB event or one integer beyond 64 bits stopped ``omniroute serve`` for
good)."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.engine import events as ev
from omniroute.engine.events import encode_msgpack, is_decision
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    ServeProcess,
    answers,
    config_toml,
    log_events,
    publish,
    service_config,
    wait_for,
    wait_until_consumed,
)

TENANT = "acme"
_ARRIVED = (
    '{"type": "conversation.arrived", "tenant": "acme", "ts": 5, "conversation_id": "%s", '
    '"channel": "voice", "contact": {"channel": "voice", "address": "+331"}, %s}'
)
_REGISTERED = '{"type": "agent.registered", "tenant": "acme", "ts": 5, "agent_id": "%s", %s}'
BIG = 2**70

POISON: dict[str, bytes] = {
    "ts beyond 64 bits": b'{"type": "tick", "tenant": "acme", "ts": %d}' % BIG,
    "priority beyond 64 bits": (_ARRIVED % ("p1", f'"priority": {BIG}')).encode(),
    "skill level beyond 64 bits": (_REGISTERED % ("p2", f'"skills": {{"sales": {BIG}}}')).encode(),
    "priority the engine fails on": (_ARRIVED % ("p3", f'"priority": {2**63 - 1}')).encode(),
    "priority -2**63": (_ARRIVED % ("p4", f'"priority": {-(2**63)}')).encode(),
    "600 KB event": (_REGISTERED % ("x" * 600_000, '"kind": "human"')).encode(),
    "800 KB message": b"[" + b" " * 800_000 + b"]",
    "message at the server's limit": b"\xc1" * (1024 * 1024 - 100),
    "empty JSON array": b"[]",
    "empty frame": msgspec.msgpack.encode([]),
    "invalid JSON": b'{"type": "tick", "tenant": "acme", "ts": 1',
    "object of the wrong type": b'{"type": "agent.registered", "tenant": "acme", "ts": "now"}',
    "not an event": b'{"hello": "world"}',
    "unknown field": (_REGISTERED % ("p5", '"skils": {"sales": 3}')).encode(),
    "msgpack garbage": b"\x93\xc1\xff\x00\xde",
    "deep nesting": b"[" * 200_000 + b"]" * 200_000,
    "empty message": b"",
    "id of control characters": msgspec.msgpack.encode(  # its JSON rejection: 6 bytes a char
        {
            "type": "offer.accepted",
            "tenant": "acme",
            "ts": 5,
            "id": "\x01" * 400_000,
            "conversation_id": "nobody",
            "agent_id": "nobody",
        }
    ),
}
"""Each kind of bad message, one event at most each (so one answer each)."""

EXTRA = "tick_interval_s = 0\nmax_message_bytes = 700000"


def conversation(tag: str) -> list[ev.Event]:
    """An agent and a customer who should be put through to them."""
    ts = int(time.time() * 1000)
    agent = f"a-{tag}"
    return [
        ev.AgentRegistered(
            tenant=TENANT, ts=ts, id=f"{tag}-1", agent_id=agent, skills={"sales": 3}
        ),
        ev.AgentStatusChanged(
            tenant=TENANT, ts=ts, id=f"{tag}-2", agent_id=agent, status="available"
        ),
        ev.ConversationArrived(
            tenant=TENANT,
            ts=ts + 1,
            id=f"{tag}-3",
            conversation_id=f"c-{tag}",
            channel="voice",
            contact=ev.Contact("voice", f"+33{tag}"),
            skills={"sales": 1},
        ),
    ]


def _routed(log: list[ev.Event], tag: str) -> bool:
    return any(
        isinstance(e, ev.ConversationOffered | ev.ConversationAssigned)
        and e.conversation_id == f"c-{tag}"
        and e.agent_id == f"a-{tag}"
        for e in log
    )


def _check_answered_once(got: list[object], seqs: dict[str, int]) -> None:
    by_seq = Counter(a.in_seq for a in got)  # type: ignore[attr-defined]
    counts = {kind: by_seq[seq] for kind, seq in seqs.items()}
    assert counts == dict.fromkeys(seqs, 1), counts


@pytest.fixture
def stream() -> StreamOptions:
    return StreamOptions(name=unique("S"), prefix=unique("p"))


def test_each_poison_kind_is_answered_once_and_the_tenant_keeps_routing(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    opts = options_for(nats_server)
    text = config_toml(nats_server.url, stream, [TENANT], instance=unique("i"),
                       extra_service=EXTRA)  # fmt: skip
    svc = InProcessService(service_config(text, tmp_path))
    try:
        seqs = dict(zip(POISON, publish(opts, stream, TENANT, list(POISON.values())), strict=True))
        after = conversation("after")
        last = publish(opts, stream, TENANT, [after])[-1]
        wait_until_consumed(opts, stream, TENANT, last)
        wait_for(lambda: len(answers(opts, stream, TENANT)) >= len(POISON), 20, "answers")
        assert svc.running
    finally:
        assert svc.stop() == 0
    got = answers(opts, stream, TENANT)
    _check_answered_once(got, seqs)
    assert len(got) == len(POISON)
    reason = {kind: next(a.reason for a in got if a.in_seq == seq) for kind, seq in seqs.items()}
    assert "unknown field `skils`" in reason["unknown field"]
    assert "$.priority" in reason["priority beyond 64 bits"]
    assert "$.skills" in reason["skill level beyond 64 bits"]
    assert "larger than the log holds" in reason["600 KB event"]
    assert "max_message_bytes" in reason["800 KB message"]
    assert "no events" in reason["empty JSON array"]
    log = log_events(opts, stream, TENANT)
    inputs = [e for e in log if not is_decision(e)]
    assert inputs[-3:] == after  # no poison logged, but what the engine itself rejected
    assert len(inputs) - 3 == sum(a.stage == "engine" for a in got)
    assert _routed(log, "after")


def test_a_restarted_serve_does_not_crash_on_the_poison_it_already_read(
    fresh_nats_server: LocalNatsServer, tmp_path: Path
) -> None:
    server = fresh_nats_server
    opts = options_for(server)
    stream = StreamOptions(name="POISON", prefix="poison")
    config = tmp_path / "serve.toml"
    config.write_text(config_toml(server.url, stream, [TENANT], instance="poison-test",
                                  extra_service=EXTRA + "\nlease_ttl_s = 2"))  # fmt: skip
    # the poison is waiting before the service starts: every start reads it first
    seqs = dict(zip(POISON, publish(opts, stream, TENANT, list(POISON.values())), strict=True))
    procs = [ServeProcess(config, tmp_path / "serve-1.log")]
    try:
        procs[0].wait_ready()
        wait_for(lambda: len(answers(opts, stream, TENANT)) >= len(POISON), 30, "answers")
        procs[0].kill9()
        for n in (2, 3):  # killed, then stopped gracefully: each restart comes back up
            procs.append(ServeProcess(config, tmp_path / f"serve-{n}.log"))
            procs[-1].wait_ready()
            last = publish(opts, stream, TENANT, [conversation(f"run{n}")])[-1]
            wait_until_consumed(opts, stream, TENANT, last)
            assert procs[-1].proc.poll() is None
            if n == 2:
                assert procs[-1].terminate() == 0
        assert procs[-1].terminate() == 0
    finally:
        for p in procs:
            p.close()
    got = answers(opts, stream, TENANT)
    _check_answered_once(got, seqs)
    log = log_events(opts, stream, TENANT)
    ids = [e.id for e in log if not is_decision(e)]
    expected = [f"run{n}-{k}" for n in (2, 3) for k in (1, 2, 3)]
    assert [i for i in ids if i in expected] == expected
    assert len(ids) - len(expected) == sum(a.stage == "engine" for a in got)
    assert _routed(log, "run2") and _routed(log, "run3")


def test_decoding_refuses_unknown_fields_but_the_log_stays_evolvable() -> None:
    from omniroute.adapters.service.inputs import Rejection, decode_inputs

    typo = (_REGISTERED % ("a1", '"skils": {"sales": 3}')).encode()
    (item,), error = decode_inputs(typo, TENANT)
    assert error is None and isinstance(item, Rejection)
    assert item.stage == "schema" and "skils" in item.reason
    nested = (_ARRIVED % ("c1", '"priority": 1')).replace('"+331"', '"+331", "nmae": "x"')
    (item,), _ = decode_inputs(nested.encode(), TENANT)
    assert isinstance(item, Rejection) and "nmae" in item.reason and "$.contact" in item.reason
    frame = msgspec.msgpack.encode([{**msgspec.msgpack.decode(encode_msgpack(e)), "x": 1}
                                    for e in conversation("f")])  # fmt: skip
    items, _ = decode_inputs(frame, TENANT)
    assert [type(i) for i in items] == [Rejection] * 3
    # a decision written by a newer engine, with a field this one does not know, still reads
    newer = {**msgspec.msgpack.decode(encode_msgpack(ev.Tick(tenant=TENANT, ts=1))), "x": 1}
    assert ev.decode_msgpack(msgspec.msgpack.encode(newer)) == ev.Tick(tenant=TENANT, ts=1)


def test_the_message_size_limit_comes_from_the_config_and_is_checked() -> None:
    from omniroute.adapters.service.config import ConfigError, parse_config

    assert parse_config({}).service.max_message_bytes == 1024 * 1024
    limit = parse_config({"service": {"max_message_bytes": 4096}}).service.max_message_bytes
    assert limit == 4096
    with pytest.raises(ConfigError, match="max_message_bytes must be >= 1024"):
        parse_config({"service": {"max_message_bytes": 10}})


def test_an_input_the_engine_fails_on_is_quarantined_once_also_across_restarts(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Whatever the engine's own checks become, an input it raises on is answered once as
    ``internal``, never logged, and the state it may have half-changed is rebuilt."""
    from omniroute.engine import Engine

    real = Engine.apply

    def failing_on_boom(self: Engine, event: ev.Event) -> list[ev.Event]:
        if event.id and event.id.startswith("boom"):
            real(self, ev.AgentRegistered(tenant=TENANT, ts=event.ts, agent_id="half"))
            raise RuntimeError("simulated engine failure")
        return real(self, event)

    monkeypatch.setattr(Engine, "apply", failing_on_boom)
    opts = options_for(nats_server)
    text = config_toml(nats_server.url, stream, [TENANT], instance=unique("i"),
                       extra_service="tick_interval_s = 0")  # fmt: skip
    ts = int(time.time() * 1000)
    boom = [ev.AgentRegistered(tenant=TENANT, ts=ts, id=f"boom{n}", agent_id=f"b{n}")
            for n in range(2)]  # fmt: skip
    seqs: dict[str, int] = {}
    for run, tag in enumerate(("one", "two")):
        svc = InProcessService(service_config(text, tmp_path))
        try:
            first, *_ = conversation(tag)
            got = publish(opts, stream, TENANT, [[first], [boom[run]], conversation(tag)[1:]])
            seqs[f"boom{run}"] = got[1]
            wait_until_consumed(opts, stream, TENANT, got[-1])
            assert svc.running
        finally:
            assert svc.stop() == 0
    got_answers = answers(opts, stream, TENANT)
    _check_answered_once(got_answers, seqs)
    assert [a.stage for a in got_answers] == ["internal", "internal"]
    log = log_events(opts, stream, TENANT)
    inputs = [e.id for e in log if not is_decision(e)]
    assert inputs == [f"{tag}-{k}" for tag in ("one", "two") for k in (1, 2, 3)]
    assert not any(isinstance(e, ev.AgentRegistered) and e.agent_id == "half" for e in log)
    assert _routed(log, "one") and _routed(log, "two")
