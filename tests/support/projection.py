"""The scripted contact centre of the projection tests: a log whose figures are computed
by hand in ``test_projection.py``. Times are seconds after T0 = 2026-01-01T08:00:00Z."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import TABLES, VIEWS, connect_readonly
from omniroute.engine import Engine, parse_policy
from omniroute.engine import events as ev

T0 = 1_767_254_400_000
TENANT = "acme"
POLICY_TOML = """
[queues.sales]
skills = { sales = 1 }
offer_timeout_s = 60
wrap_up_s = 10
sla_s = { voice = 20, webchat = 30, messenger = 300, whatsapp = 300 }

[queues.support]            # a bot answers first
skills = { support = 1 }
bot_first = true
bot_wait_s = 30
wrap_up_s = 10
sla_s = { webchat = 60 }

[queues.mail]               # email: auto-assigned, its own 24 h target (the default)
skills = { mail = 1 }
offer_mode = "auto"
wrap_up_s = 0
"""
POLICY = parse_policy(POLICY_TOML)
MARIA_WA = ev.Contact("whatsapp", "+34 600 111 222")
MARIA_FB = ev.Contact("messenger", "@maria")


def arrive(cid: str, channel: str, address: str, queue: str = "sales") -> tuple[Any, ...]:
    return (ev.ConversationArrived, {
        "conversation_id": cid, "channel": channel, "contact": ev.Contact(channel, address),  # type: ignore[arg-type]
        "queue": queue,
    })  # fmt: skip


def do(cls: type, **fields: Any) -> tuple[Any, ...]:
    return (cls, fields)


def reply(cid: str) -> tuple[Any, ...]:
    """The agent who holds ``cid`` writes to the customer."""
    return do(ev.MessageReceived, conversation_id=cid, direction="out")


# (seconds after T0, input). ann and the bot are available from the start; bob and eve
# are away (bob comes for 410-510 s, eve the next morning).
SCRIPT: list[tuple[float, tuple[Any, ...]]] = [
    (0, do(ev.AgentRegistered, agent_id="ann", skills={"sales": 3, "support": 2})),
    (0, do(ev.AgentRegistered, agent_id="bob", skills={"sales": 2, "support": 2})),
    (0, do(ev.AgentRegistered, agent_id="eve", skills={"mail": 1})),
    (0, do(ev.AgentRegistered, agent_id="bot", kind="bot", skills={"support": 3})),
    (0, do(ev.AgentStatusChanged, agent_id="ann", status="available")),
    (0, do(ev.AgentStatusChanged, agent_id="bot", status="available")),
    (0, do(ev.AgentStatusChanged, agent_id="bob", status="away")),
    (0, do(ev.AgentStatusChanged, agent_id="eve", status="away")),
    # c1: a web chat answered after 12 s (target 30 s)
    (10, arrive("c1", "webchat", "web:1")),
    (22, do(ev.OfferAccepted, conversation_id="c1", agent_id="ann")),
    # c2, c3: calls that cannot fit next to ann's chat; c3 hangs up after 3 s (a short
    # abandon), c2 after 30 s (an abandon, past its 20 s target too)
    (30, arrive("c2", "voice", "+1002")),
    (35, arrive("c3", "voice", "+1003")),
    (38, do(ev.CustomerAbandoned, conversation_id="c3")),
    (60, do(ev.CustomerAbandoned, conversation_id="c2")),
    # c4: a call that asks for a callback at 80 s; ann calls back, answered at 95 s:
    # 15 s after the request, but 25 s after the first contact (target 20 s): not met
    (70, arrive("c4", "voice", "+1004")),
    (80, do(ev.CallbackRequested, conversation_id="c4")),
    (95, do(ev.OfferAccepted, conversation_id="c4", agent_id="ann")),
    (100, do(ev.ConversationEnded, conversation_id="c1")),
    (104, do(ev.WrapUpCompleted, conversation_id="c1", agent_id="ann")),
    (150, do(ev.ConversationEnded, conversation_id="c4")),
    (155, do(ev.WrapUpCompleted, conversation_id="c4", agent_id="ann")),
    # c5: bot first, handed off at 220 s, a human answers at 230 s: waited 30 s (60 s)
    (200, arrive("c5", "webchat", "web:5", queue="support")),
    (220, do(ev.HandoffRequested, conversation_id="c5", agent_id="bot")),
    (230, do(ev.OfferAccepted, conversation_id="c5", agent_id="ann")),
    (300, do(ev.ConversationEnded, conversation_id="c5")),
    (305, do(ev.WrapUpCompleted, conversation_id="c5", agent_id="ann")),
    # c6: answered by ann after 5 s, transferred to bob at 420 s, bob answers at 428 s
    (400, arrive("c6", "voice", "+1006")),
    (405, do(ev.OfferAccepted, conversation_id="c6", agent_id="ann")),
    (410, do(ev.AgentStatusChanged, agent_id="bob", status="available")),
    (420, do(ev.TransferRequested, conversation_id="c6", agent_id="ann", to_agent="bob")),
    (428, do(ev.OfferAccepted, conversation_id="c6", agent_id="bob")),
    # c9: Maria on WhatsApp, not yet known (an anonymous contact), answered after 5 s
    (440, arrive("c9", "whatsapp", MARIA_WA.address)),
    (445, do(ev.OfferAccepted, conversation_id="c9", agent_id="ann")),
    (445, reply("c9")),  # written channels are answered by the first reply
    (460, do(ev.ConversationEnded, conversation_id="c9", by="customer")),
    (465, do(ev.WrapUpCompleted, conversation_id="c9", agent_id="ann")),
    (500, do(ev.ConversationEnded, conversation_id="c6")),
    (505, do(ev.WrapUpCompleted, conversation_id="c6", agent_id="bob")),
    (510, do(ev.AgentStatusChanged, agent_id="bob", status="away")),
    # c7 + c8: Maria on Messenger; the CRM links her contacts; she writes on WhatsApp
    # (c8) and joins her open conversation: one interaction, two channels
    (600, arrive("c7", "messenger", MARIA_FB.address)),
    (610, do(ev.OfferAccepted, conversation_id="c7", agent_id="ann")),
    (610, reply("c7")),
    (620, do(ev.ContactsLinked, customer_id="crm-maria", contacts=[MARIA_FB, MARIA_WA])),
    (650, arrive("c8", "whatsapp", MARIA_WA.address)),
    (650, reply("c7")),  # naming no leg: it answers both
    (700, do(ev.ConversationEnded, conversation_id="c8")),  # by its new id
    (705, do(ev.WrapUpCompleted, conversation_id="c7", agent_id="ann")),
    # c10: an email at 08:13:20, answered the next morning at 07:00 (22 h 46 m 40 s):
    # within its own 24 h target
    (800, arrive("c10", "email", "maria@example.com", queue="mail")),
    (82_800, do(ev.AgentStatusChanged, agent_id="eve", status="available")),
    (82_800, reply("c10")),
    (82_900, do(ev.ConversationEnded, conversation_id="c10")),
    (90_000, do(ev.Tick)),
]


def scripted_batches(
    policy: Any = POLICY, script: list[tuple[float, tuple[Any, ...]]] = SCRIPT
) -> list[list[ev.Event]]:
    """Run a script through a fresh engine: one [input, *decisions] batch per input."""
    engine = Engine(policy)
    batches: list[list[ev.Event]] = []
    for seconds, (cls, fields) in script:
        event = cls(tenant=TENANT, ts=T0 + round(seconds * 1000), **fields)
        batches.append([event, *engine.apply(event)])
    return batches


def write_log(path: Path, batches: list[list[ev.Event]]) -> Path:
    with FileLog(path, fsync="never") as log:
        for batch in batches:
            log.append(batch)
    return path


def at(seconds: float) -> dt.datetime:
    """T0 + seconds, as DuckDB returns timestamps (naive UTC)."""
    return dt.datetime(2026, 1, 1, 8) + dt.timedelta(seconds=seconds)


def snapshot(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and view, rows sorted (NaN as None), for equality checks."""

    def clean(v: Any) -> Any:  # means are sums in row order: compare them rounded
        if isinstance(v, float):
            return None if math.isnan(v) else round(v, 6)
        return v

    out: dict[str, list[tuple[Any, ...]]] = {}
    with connect_readonly(db) as c:
        for name in (*TABLES, *VIEWS):
            rows = c.execute(f"SELECT * FROM {name}").fetchall()
            out[name] = sorted((tuple(clean(v) for v in r) for r in rows), key=repr)
    return out
