"""Identity links live in the projection for good: after the engine forgot an idle CRM
customer (bounded state), a link a producer or the gateway makes under the contact's
anonymous id (``contact:<channel>:<address>``) still lands on the named customer."""

from __future__ import annotations

from pathlib import Path

from omniroute.adapters.reporting import Projector, connect_readonly, customer_view
from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.events import Contact
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.policy import parse_policy

DAY = 86_400_000
PHONE = Contact("whatsapp", "+33612345678")
BSUID = Contact("whatsapp", "FR.1234567890")


def test_a_link_under_a_forgotten_customers_anonymous_id_keeps_the_named_customer(
    tmp_path: Path,
) -> None:
    policy = parse_policy(b"[limits]\ncustomer_retention_s = 3600\n")
    engine, log = Engine(policy), MemoryLog()
    t = "acme"
    for event in (
        ev.ContactsLinked(tenant=t, ts=1_000, customer_id="crm-1", contacts=[PHONE]),
        ev.ConversationArrived(tenant=t, ts=2_000, conversation_id="c1", channel="whatsapp",
                               contact=PHONE, skills={}),
        ev.ConversationEnded(tenant=t, ts=3_000, conversation_id="c1", by="customer"),
        ev.Tick(tenant=t, ts=2 * DAY),  # past the sticky window and the retention
        ev.ContactsLinked(tenant=t, ts=2 * DAY + 1, customer_id=f"contact:whatsapp:{PHONE.address}",
                          contacts=[PHONE, BSUID]),
    ):  # fmt: skip
        log.append([event, *engine.apply(event)])
    state = engine.tenant(t)
    assert state is not None and "crm-1" not in state.customers  # the engine forgot crm-1
    db = tmp_path / "db.duckdb"
    with Projector(db, policy) as p:
        p.project(log)
    with connect_readonly(db) as con:
        view = customer_view(con, "crm-1")
    assert view["contacts"] == [
        {"channel": "whatsapp", "address": PHONE.address},
        {"channel": "whatsapp", "address": BSUID.address},
    ]
    assert [c["conversation_id"] for c in view["conversations"]] == ["c1"]
