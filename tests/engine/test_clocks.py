"""Each tenant has its own clock: its time moves only with its own events and ticks, one
tenant's events never fire another tenant's timers, and a ``ts`` too far behind or ahead of
its tenant's clock is rejected with the reason instead of being silently moved."""

from __future__ import annotations

from omniroute.engine import Engine, parse_policy
from omniroute.engine.events import (
    AgentNotResponding,
    CallbackRequested,
    ConversationOffered,
    EventRejected,
    OfferAccepted,
    OfferExpired,
    Tick,
)
from tests.support.desk import Desk, kinds, of_type

OFFER = """
[queues.default]
offer_mode = "offer"
offer_timeout_s = 10
wrap_up_s = 0
"""
HOUR = 3_600


def two_tenants(policy: str = OFFER) -> tuple[Desk, Desk]:
    """Two desks on one engine: tenants acme and globex."""
    acme = Desk(policy, tenant="acme")
    globex = Desk(tenant="globex")
    globex.engine = acme.engine
    return acme, globex


def test_another_tenants_event_an_hour_ahead_fires_none_of_our_timers() -> None:
    acme, globex = two_tenants()
    acme.agent("ann")
    offer = of_type(acme.arrive("v1", "voice"), ConversationOffered)[0]
    globex.at(HOUR).agent("gus")  # globex's producer is an hour ahead
    assert not of_type(globex.log, OfferExpired | AgentNotResponding)
    assert acme.engine.clock == HOUR * 1000  # the latest tenant clock
    accept = acme.at(3).send(OfferAccepted, conversation_id="v1", agent_id=offer.agent_id)
    assert kinds(accept) == ["conversation.assigned"]
    assert acme.engine.clock_of("acme") == 3_000
    assert acme.engine.clock_of("globex") == HOUR * 1000


def test_a_tick_moves_only_its_own_tenants_clock() -> None:
    acme, globex = two_tenants()
    acme.agent("ann")
    acme.arrive("v1", "voice")
    assert globex.tick(HOUR) == []
    assert acme.conv("v1").stage == "offered"
    out = acme.tick(11)  # acme's own time passes the 10 s offer timeout
    assert kinds(out)[:2] == ["offer.expired", "agent.not_responding"]


def test_next_deadline_is_the_earliest_over_all_tenants() -> None:
    acme, globex = two_tenants()
    globex.at(100).agent("gus")
    globex.arrive("g1", "voice")  # globex offer due at 110 s
    acme.agent("ann")
    acme.arrive("v1", "voice")  # acme offer due at 10 s
    assert acme.engine.next_deadline() == 10_000
    acme.tick(10)
    assert acme.engine.next_deadline() == 20_001  # acme's SLA, before globex's 110 s offer


def test_a_late_event_within_the_tolerance_is_applied_at_the_tenants_clock() -> None:
    desk = Desk(OFFER)
    desk.tick(100)
    desk.at(50).arrive("c1")
    assert desk.conv("c1").first_contact_ts == 100_000
    assert desk.engine.clock_of("acme") == 100_000


def test_an_event_further_behind_than_the_tolerance_is_rejected() -> None:
    desk = Desk(OFFER)
    desk.tick(1_000)
    out = desk.at(100).arrive("c1")
    assert kinds(out) == ["event.rejected"]
    reason = out[0].reason
    assert "900 s behind the clock of tenant 'acme'" in reason
    assert "clock_tolerance_s" in reason
    assert desk.conv("c1") is None
    assert desk.engine.clock_of("acme") == 1_000_000


def test_an_event_beyond_the_horizon_is_rejected_and_the_clock_stays() -> None:
    desk = Desk(OFFER)
    desk.agent("ann")
    desk.arrive("v1", "voice")
    before = desk.engine.snapshot()
    out = desk.engine.apply(Tick(tenant="acme", ts=1_800_000_000_000))  # wall time, by mistake
    assert kinds(out) == ["event.rejected"] and "clock_horizon_s" in out[0].reason
    assert desk.engine.snapshot() == before
    assert desk.engine.clock_of("acme") == 0
    assert kinds(desk.at(5).send(OfferAccepted, conversation_id="v1", agent_id="ann")) == [
        "conversation.assigned"
    ]


def test_a_ts_past_the_year_9999_is_rejected_even_for_a_new_tenant() -> None:
    engine = Engine()
    out = engine.apply(Tick(tenant="acme", ts=10**18))
    assert kinds(out) == ["event.rejected"] and out[0].reason.startswith("ts: ")
    assert engine.clock == 0 and engine.tenant("acme") is None


def test_tolerance_and_horizon_come_from_the_policy() -> None:
    desk = Desk(parse_policy("[limits]\nclock_tolerance_s = 0\nclock_horizon_s = 60\n"))
    desk.tick(10)
    assert isinstance(desk.tick(9.999)[0], EventRejected)
    assert isinstance(desk.tick(70.001)[0], EventRejected)
    assert desk.tick(70) == []


def test_snapshot_restore_keeps_each_tenants_clock_and_timers() -> None:
    acme, globex = two_tenants()
    acme.agent("ann")
    acme.arrive("v1", "voice")
    globex.at(HOUR).agent("gus")
    globex.arrive("g1", "webchat")
    copy = Engine.restore(acme.engine.snapshot(), acme.engine.policy)
    assert copy.clock_of("acme") == 0 and copy.clock_of("globex") == HOUR * 1000
    tail = [Tick(tenant="acme", ts=15_000), Tick(tenant="globex", ts=HOUR * 1000 + 40_000)]
    assert [copy.apply(e) for e in tail] == [acme.engine.apply(e) for e in tail]
    assert copy.snapshot() == acme.engine.snapshot()


def test_a_callback_beyond_the_horizon_is_rejected() -> None:
    desk = Desk(OFFER)
    desk.arrive("v1", "voice")
    out = desk.send(CallbackRequested, conversation_id="v1", not_before=40 * 86_400_000)
    assert kinds(out) == ["event.rejected"] and "clock_horizon_s" in out[0].reason
    assert desk.conv("v1").stage == "queued"
