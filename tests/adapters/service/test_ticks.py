"""Ticks only when due (issue 17, item 2), against a real nats-server: the writer appends a
``Tick`` when a timer of the tenant is due or at the heartbeat, not every interval; an idle
tenant's log stays (nearly) empty; timers still fire on time; the log replays byte for
byte (``check_log``)."""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import pytest

from omniroute.adapters.nats.log import NatsLog
from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.config import ConfigError
from omniroute.adapters.service.writer import tick_due
from omniroute.engine import events as ev
from omniroute.engine.events import Event, is_decision
from omniroute.engine.policy import load_policy
from omniroute.engine.replay import replay
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    check_log,
    config_toml,
    log_events,
    publish,
    service_config,
    wait_for,
    wait_until_consumed,
)

T = "acme"
INTERVAL = 0.1
IDLE_S = 3.0


@pytest.fixture
def stream() -> StreamOptions:
    return StreamOptions(name=unique("S"), prefix=unique("p"))


def _service(server: LocalNatsServer, stream: StreamOptions, tmp_path: Path,
             extra: str) -> InProcessService:  # fmt: skip
    text = config_toml(server.url, stream, [T], instance=unique("i"),
                       extra_service=f"tick_interval_s = {INTERVAL}\n{extra}")  # fmt: skip
    return InProcessService(service_config(text, tmp_path))


def _agents(ts: int, n: int = 3) -> list[Event]:
    out: list[Event] = []
    for i in range(n):
        out.append(ev.AgentRegistered(tenant=T, ts=ts, id=f"r{i}", agent_id=f"a{i}",
                                      skills={"sales": 2}))  # fmt: skip
        out.append(ev.AgentStatusChanged(tenant=T, ts=ts, id=f"s{i}", agent_id=f"a{i}",
                                         status="available"))  # fmt: skip
    return out


def _now() -> int:
    return int(time.time() * 1000)


def _ticks(events: list[Event]) -> list[ev.Tick]:
    return [e for e in events if isinstance(e, ev.Tick)]


def _idle_run(server: LocalNatsServer, stream: StreamOptions, tmp_path: Path,
              extra: str) -> tuple[list[Event], list[ev.Tick]]:  # fmt: skip
    """Register agents, then leave the tenant idle (nothing open) for IDLE_S seconds: the
    log, and the Ticks logged after the registration."""
    opts = options_for(server)
    svc = _service(server, stream, tmp_path, extra)
    agents = _agents(_now())
    try:
        seqs = publish(opts, stream, T, [agents])
        wait_until_consumed(opts, stream, T, seqs[-1])
        time.sleep(IDLE_S)
    finally:
        assert svc.stop() == 0
    log = check_log(opts, stream, T, agents)  # replays byte for byte; inputs as sent
    last = max(i for i, e in enumerate(log) if not is_decision(e) and e in agents)
    return log, _ticks(log[last + 1 :])


# --- when a Tick is due (the writer's decision, as a pure function) -----------------------


@pytest.mark.parametrize(
    ("now", "deadline", "clock", "sent", "heartbeat", "due"),
    [
        (10_000, None, 9_000, 0, 0, False),  # nothing pending, no heartbeat: never
        (10_000, 10_001, 9_000, 0, 0, False),  # the timer is not due yet
        (10_000, 10_000, 9_000, 0, 0, True),  # due now
        (10_000, 9_500, 9_000, 9_600, 0, False),  # a Tick in flight covers it
        (14_599, 9_500, 9_000, 9_600, 0, False),  # ... until the retry
        (14_600, 9_500, 9_000, 9_600, 0, True),  # still due 5 s after: rejected or stuck
        (10_000, 9_700, 9_000, 9_600, 0, True),  # a later timer: not covered
        (10_000, None, 9_000, 0, 1_000, True),  # nothing logged for the heartbeat
        (10_000, None, 9_001, 0, 1_000, False),
        (10_000, None, 8_000, 9_500, 1_000, False),  # a heartbeat in flight
        (1_800_000_000_000, None, 0, 0, 60_000, True),  # a tenant that never logged
        (10_000, 9_000, 9_000, 20_000, 0, True),  # the wall clock went back past `sent`
    ],
)
def test_tick_due(now: int, deadline: int | None, clock: int, sent: int, heartbeat: int,
                  due: bool) -> None:  # fmt: skip
    assert tick_due(now, deadline, clock, sent, heartbeat, 5_000) is due


@pytest.mark.parametrize("value", ["-1", "86401", "nan"])
def test_heartbeat_setting_is_checked(tmp_path: Path, value: str) -> None:
    text = config_toml("nats://127.0.0.1:4222", StreamOptions(), [T],
                       extra_service=f"heartbeat_s = {value}")  # fmt: skip
    with pytest.raises(ConfigError, match="heartbeat_s"):
        service_config(text, tmp_path)


# --- against the service -----------------------------------------------------------------


def test_an_idle_tenant_logs_no_tick_without_a_heartbeat(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    log, ticks = _idle_run(nats_server, stream, tmp_path, "heartbeat_s = 0")
    print(f"\nidle {IDLE_S} s, tick_interval_s = {INTERVAL}, no heartbeat: {len(ticks)} ticks")
    assert _ticks(log) == []  # (every 0.1 s before: about 30)


def test_an_idle_tenant_logs_one_tick_per_heartbeat(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    _, ticks = _idle_run(nats_server, stream, tmp_path, "heartbeat_s = 1")
    print(f"\nidle {IDLE_S} s, tick_interval_s = {INTERVAL}, heartbeat_s = 1: {len(ticks)} ticks")
    assert 2 <= len(ticks) <= 4
    gaps = [b.ts - a.ts for a, b in pairwise(ticks)]
    assert all(gap >= 1000 for gap in gaps), gaps


def test_an_offer_expires_through_one_due_tick(
    nats_server: LocalNatsServer, stream: StreamOptions, tmp_path: Path
) -> None:
    """An offer nobody answers expires on time through a Tick, and nearly nothing else is
    ticked: the re-queued conversation's next timer (its SLA) is far off."""
    timeout_s = 1.0
    (tmp_path / "policy.toml").write_text(f"[queues.default]\noffer_timeout_s = {timeout_s}\n")
    opts = options_for(nats_server)
    svc = _service(nats_server, stream, tmp_path, 'heartbeat_s = 0\npolicy = "policy.toml"')
    arrived = _now()
    inputs = [
        *_agents(arrived, 1),
        ev.ConversationArrived(
            tenant=T, ts=arrived, id="c1", conversation_id="c1", channel="webchat",
            contact=ev.Contact("webchat", "v1"), skills={"sales": 1},
        ),
    ]  # fmt: skip
    started = time.monotonic()
    try:
        publish(opts, stream, T, [inputs])
        wait_for(lambda: any(isinstance(e, ev.OfferExpired) for e in log_events(opts, stream, T)),
                 10, "the offer to expire", every=0.02)  # fmt: skip
        waited = time.monotonic() - started
        time.sleep(1.0)  # nothing more is due: no more Ticks
    finally:
        assert svc.stop() == 0
    log = log_events(opts, stream, T)
    assert [e for e in log if not is_decision(e) and not isinstance(e, ev.Tick)] == inputs
    policy = load_policy(tmp_path / "policy.toml")
    for at in (None, len(inputs)):  # byte for byte, and from a snapshot after the inputs
        with NatsLog(opts, T, stream, readonly=True) as nlog:
            result = replay(nlog, policy, snapshot_at=at)
        assert result.ok, result.mismatch and result.mismatch.describe()
    [offered] = [e for e in log if isinstance(e, ev.ConversationOffered)]
    deadline = offered.ts + round(timeout_s * 1000)
    [expired] = [i for i, e in enumerate(log) if isinstance(e, ev.OfferExpired)]
    assert log[expired].ts == deadline
    tick = next(e for e in reversed(log[:expired]) if not is_decision(e))
    assert isinstance(tick, ev.Tick)  # a due Tick fired it
    ticks = _ticks(log)
    late = (tick.ts - deadline) / 1000
    print(f"\noffer timeout {timeout_s} s: expired {waited:.2f} s after the arrival was sent, "
          f"ticked {late:.3f} s after the deadline; {len(ticks)} tick(s) logged")  # fmt: skip
    assert 0 <= late <= 2 * INTERVAL + 0.3  # (a margin for a loaded test machine)
    assert waited <= timeout_s + 2 * INTERVAL + 1.0
    assert 1 <= len(ticks) <= 3
