"""The embedded backend: group commit, restarts, ticks only when a timer is due."""

from __future__ import annotations

import asyncio
from pathlib import Path

from omniroute.adapters.gateway.embedded import EmbeddedBackend
from omniroute.engine.events import (
    AgentRegistered,
    AgentStatusChanged,
    Contact,
    ConversationArrived,
    ConversationOffered,
    SlaBreached,
    Tick,
)
from omniroute.engine.policy import parse_policy

from .conftest import logged

_POLICY = parse_policy("""
[queues.default]
sla_s = { whatsapp = 1 }
""")


def _arrival(n: int, now: int) -> list[ConversationArrived]:
    contact = Contact("whatsapp", f"+4477009{n:05d}")
    return [ConversationArrived(tenant="acme", ts=now, id=f"c{n}", conversation_id=f"c{n}",
                                channel="whatsapp", contact=contact)]  # fmt: skip


def test_concurrent_requests_share_frames_and_keep_every_input(tmp_path: Path) -> None:
    async def main() -> None:
        backend = EmbeddedBackend(tmp_path / "g.olog", _POLICY, tick_s=60)
        await backend.start()
        await asyncio.gather(
            *(backend.submit("acme", lambda now, n=n: _arrival(n, now)) for n in range(200))
        )
        await backend.close()

    asyncio.run(main())
    arrived = [e.id for e in logged(tmp_path / "g.olog") if isinstance(e, ConversationArrived)]
    assert sorted(arrived) == sorted(f"c{n}" for n in range(200))


def test_a_restart_resumes_the_state_and_the_desk_feed(tmp_path: Path) -> None:
    async def first() -> None:
        backend = EmbeddedBackend(tmp_path / "g.olog", _POLICY, tick_s=60)
        await backend.start()
        await backend.submit("acme", lambda now: [
            AgentRegistered(tenant="acme", ts=now, agent_id="ann"),
            AgentStatusChanged(tenant="acme", ts=now, agent_id="ann", status="available"),
        ])  # fmt: skip
        await backend.submit("acme", lambda now: _arrival(1, now))
        await backend.close()

    async def second() -> None:
        backend = EmbeddedBackend(tmp_path / "g.olog", _POLICY, tick_s=60)
        await backend.start()
        leg = backend.view.live_leg("acme", Contact("whatsapp", "+447700900001"))
        assert leg is not None and leg.conversation_id == "c1"
        offers = [e for _, e in backend.feed("acme").since(-1, "ann")]
        assert [type(e) for e in offers] == [AgentRegistered, AgentStatusChanged,
                                             ConversationOffered]  # fmt: skip
        await backend.close()

    asyncio.run(first())
    asyncio.run(second())


def test_ticks_are_appended_only_when_a_timer_is_due(tmp_path: Path) -> None:
    async def main() -> None:
        backend = EmbeddedBackend(tmp_path / "g.olog", _POLICY, tick_s=0.05)
        await backend.start()
        await asyncio.sleep(0.3)  # idle: nothing is due, nothing is written
        assert backend.log is not None and backend.log.end() == 0
        await backend.submit("acme", lambda now: _arrival(1, now))
        for _ in range(100):  # the 1 s SLA falls due: a tick fires it
            await asyncio.sleep(0.05)
            if any(isinstance(e, SlaBreached) for _, _, e in backend.feed("acme").entries) or (
                backend.log.end() > 3
            ):
                break
        await backend.close()

    asyncio.run(main())
    events = logged(tmp_path / "g.olog")
    ticks = [e for e in events if isinstance(e, Tick)]
    assert 1 <= len(ticks) <= 2
    assert any(isinstance(e, SlaBreached) for e in events)
