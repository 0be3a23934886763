"""DuckDB projections (adapters/reporting: schema, fold, writer): honest metrics on a
scripted log whose expected figures are computed by hand below; idempotence,
resumption, replay; the customer 360 across linked contacts.

The scripted log (``tests.support.projection.SCRIPT``) goes through the real engine, so the
decisions the figures rest on are the engine's;
``test_the_script_makes_the_decisions_the_figures_assume`` pins them. Times are seconds
after T0 = 2026-01-01T08:00:00Z.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import (
    TABLES,
    VIEWS,
    ProjectionError,
    Projector,
    connect_readonly,
    customer_view,
    project,
    service_report,
)
from omniroute.engine import Engine
from omniroute.engine import events as ev
from tests.support.projection import (
    MARIA_WA,
    POLICY,
    SCRIPT,
    T0,
    TENANT,
    arrive,
    at,
    do,
    scripted_batches,
    snapshot,
    write_log,
)  # fmt: skip
from tests.support.simulation import simulate_small, small_policy


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "demo.olog"
    simulate_small(path, seed=11)
    return path


def one(con: duckdb.DuckDBPyConnection, sql: str, *params: Any) -> dict[str, Any]:
    cur = con.execute(sql, list(params))
    rows = cur.fetchall()
    assert len(rows) == 1, rows
    return dict(zip([d[0] for d in cur.description], rows[0], strict=True))


def interaction(con: duckdb.DuckDBPyConnection, cid: str) -> dict[str, Any]:
    return one(con, "SELECT * FROM interactions WHERE conversation_id = ?", cid)


# --- the script ------------------------------------------------------------------------------


def test_the_script_makes_the_decisions_the_figures_assume() -> None:
    decisions = [d for batch in scripted_batches() for d in batch[1:]]
    assert not [d for d in decisions if isinstance(d, ev.EventRejected)]
    assigned = [
        (d.conversation_id, d.agent_id, (d.ts - T0) / 1000, d.wait_ms / 1000)
        for d in decisions
        if isinstance(d, ev.ConversationAssigned)
    ]
    assert assigned == [
        ("c1", "ann", 22, 12), ("c4", "ann", 95, 25), ("c5", "bot", 200, 0),
        ("c5", "ann", 230, 30), ("c6", "ann", 405, 5), ("c6", "bob", 428, 28),
        ("c9", "ann", 445, 5), ("c7", "ann", 610, 10), ("c10", "eve", 82_800, 82_000),
    ]  # fmt: skip
    rejoined = [d for d in decisions if isinstance(d, ev.ConversationRejoined)]
    assert [(d.conversation_id, d.new_conversation_id) for d in rejoined] == [("c7", "c8")]
    breached = [d.conversation_id for d in decisions if isinstance(d, ev.SlaBreached)]
    assert breached == ["c2", "c4"]


# --- interactions: one row per conversation, measured honestly ---------------------------


def test_one_interaction_per_conversation_a_rejoined_contact_included(
    con: duckdb.DuckDBPyConnection,
) -> None:
    ids = [
        r[0] for r in con.execute("SELECT conversation_id FROM interactions ORDER BY 1").fetchall()
    ]
    assert ids == ["c1", "c10", "c2", "c3", "c4", "c5", "c6", "c7", "c9"]
    c7 = interaction(con, "c7")
    assert c7["first_channel"] == "messenger"
    assert c7["channels"] == ["messenger", "whatsapp"]
    assert c7["last_channel"] == "whatsapp"
    assert c7["rejoins"] == 1
    assert c7["customer_id"] == "crm-maria"  # the CRM link moved the open conversation
    assert (c7["wait_s"], c7["met"], c7["closed_at"]) == (10.0, True, at(705))


def test_an_answered_chat(con: duckdb.DuckDBPyConnection) -> None:
    c1 = interaction(con, "c1")
    assert c1["first_contact_at"] == at(10) and c1["first_offer_at"] == at(10)
    assert c1["first_answer_at"] == at(22) and c1["answered_by"] == "ann"
    assert (c1["wait_s"], c1["sla_target_s"], c1["met"]) == (12.0, 30.0, True)
    assert (c1["ended_at"], c1["closed_at"], c1["outcome"]) == (at(100), at(104), "answered")
    assert c1["handle_s"] == 78.0


def test_abandons_before_and_after_the_short_abandon_threshold(
    con: duckdb.DuckDBPyConnection,
) -> None:
    c3 = interaction(con, "c3")  # 3 s < 5 s: a short abandon, outside the service level
    assert (c3["abandoned"], c3["short_abandon"], c3["wait_s"], c3["met"]) == (
        True, True, 3.0, None
    )  # fmt: skip
    c2 = interaction(con, "c2")  # 30 s: an abandon, counted as not met
    assert (c2["abandoned"], c2["short_abandon"], c2["wait_s"], c2["met"]) == (
        True, False, 30.0, False
    )  # fmt: skip
    assert c2["sla_breached"] and c2["outcome"] == "abandoned"


def test_a_callback_is_measured_by_its_true_wait(con: duckdb.DuckDBPyConnection) -> None:
    c4 = interaction(con, "c4")
    assert c4["callback"] and c4["first_contact_at"] == at(70)
    assert c4["first_answer_at"] == at(95)  # 15 s after the callback request ...
    assert (c4["wait_s"], c4["met"]) == (25.0, False)  # ... but 25 s after first contact
    kinds = con.execute(
        "SELECT kind, start_at, end_at, media_class, outcome FROM segments "
        "WHERE conversation_id = 'c4' ORDER BY seq"
    ).fetchall()
    assert kinds == [
        ("queue", at(70), at(80), "voice", "callback"),
        ("queue", at(80), at(80), "task", "offered"),
        ("offer", at(80), at(95), "task", "accepted"),
        ("agent", at(95), at(150), "task", "ended"),
        ("wrap_up", at(150), at(155), "task", "completed"),
    ]


def test_a_bot_handoff_counts_bot_time_as_waiting(con: duckdb.DuckDBPyConnection) -> None:
    c5 = interaction(con, "c5")
    assert c5["first_bot_at"] == at(200) and c5["first_answer_at"] == at(230)
    assert (c5["handoffs"], c5["wait_s"], c5["sla_target_s"], c5["met"]) == (1, 30.0, 60.0, True)
    assert c5["handled_by"] == ["bot", "ann"]
    stations = con.execute(
        "SELECT kind, agent_id, start_at, end_at, outcome FROM segments "
        "WHERE conversation_id = 'c5' ORDER BY seq"
    ).fetchall()
    assert stations == [
        ("queue", None, at(200), at(200), "assigned"),
        ("bot", "bot", at(200), at(220), "handoff"),
        ("queue", None, at(220), at(220), "offered"),
        ("offer", "ann", at(220), at(230), "accepted"),
        ("agent", "ann", at(230), at(300), "ended"),
        ("wrap_up", "ann", at(300), at(305), "completed"),
    ]


def test_a_transfer(con: duckdb.DuckDBPyConnection) -> None:
    c6 = interaction(con, "c6")
    assert (c6["transfers"], c6["answered_by"], c6["last_agent"]) == (1, "ann", "bob")
    assert c6["handled_by"] == ["ann", "bob"]
    assert (c6["wait_s"], c6["met"]) == (5.0, True)  # the first answer decides the SLA
    assert c6["transfer_wait_s"] == 8.0  # and the wait during the transfer is kept
    stations = con.execute(
        "SELECT kind, agent_id, start_at, end_at, outcome FROM segments "
        "WHERE conversation_id = 'c6' ORDER BY seq"
    ).fetchall()
    assert stations == [
        ("queue", None, at(400), at(400), "offered"),
        ("offer", "ann", at(400), at(405), "accepted"),
        ("agent", "ann", at(405), at(420), "transfer"),
        ("queue", None, at(420), at(420), "offered"),
        ("offer", "bob", at(420), at(428), "accepted"),
        ("agent", "bob", at(428), at(500), "ended"),
        ("wrap_up", "bob", at(500), at(505), "completed"),
    ]
    rows = con.execute(
        "SELECT agent_id, wait_s, first_human FROM assignments WHERE conversation_id = 'c6' "
        "ORDER BY seq"
    ).fetchall()
    assert rows == [("ann", 5.0, True), ("bob", 28.0, False)]


def test_an_email_answered_the_next_day_against_its_own_target(
    con: duckdb.DuckDBPyConnection,
) -> None:
    c10 = interaction(con, "c10")
    assert c10["first_answer_at"] == dt.datetime(2026, 1, 2, 7)
    assert (c10["wait_s"], c10["sla_target_s"], c10["met"]) == (82_000.0, 86_400.0, True)
    assert c10["closed_at"] == dt.datetime(2026, 1, 2, 7, 1, 40)  # no wrap-up in "mail"


# --- views -------------------------------------------------------------------------------------


def test_service_level_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    cur = con.execute("SELECT * FROM service_level")
    names = [d[0] for d in cur.description]
    rows = {(r["channel"], r["queue"]): r for r in (dict(zip(names, row, strict=True))
                                                   for row in cur.fetchall())}  # fmt: skip
    assert set(rows) == {
        ("webchat", "sales"), ("webchat", "support"), ("voice", "sales"),
        ("messenger", "sales"), ("whatsapp", "sales"), ("email", "mail"),
    }  # fmt: skip
    # voice: c2 abandoned after 30 s (not met), c3 a short abandon (left out), c4 the
    # callback answered 25 s after first contact (not met), c6 answered in 5 s (met)
    voice = rows[("voice", "sales")]
    assert (voice["contacts"], voice["answered"], voice["met"], voice["measured"]) == (4, 2, 1, 3)
    assert voice["service_level"] == pytest.approx(1 / 3)
    assert (voice["abandoned"], voice["short_abandoned"], voice["callbacks"]) == (1, 1, 1)
    assert voice["callbacks_met"] == 0
    assert voice["sla_target_s"] == voice["sla_target_max_s"] == 20.0
    # web chat: c1 in 12 s of 30 (sales), c5 (bot, then a human) in 30 s of 60 (support)
    assert rows[("webchat", "sales")]["service_level"] == 1.0
    assert rows[("webchat", "support")]["service_level"] == 1.0
    assert rows[("webchat", "support")]["sla_target_s"] == 60.0
    assert rows[("email", "mail")]["service_level"] == 1.0  # 22.8 h of a 24 h target
    assert rows[("email", "mail")]["sla_target_s"] == 86_400.0
    # every row's interval is the 15 minutes of first contact (the email's too)
    assert {r["interval_start"] for r in rows.values()} == {at(0)}

    by_channel = {r["channel"]: r for r in service_report(con, by=("channel",)).records()}
    webchat = by_channel["webchat"]
    assert (webchat["contacts"], webchat["met"], webchat["measured"]) == (2, 2, 2)
    assert webchat["sla_target_s"] is None  # two targets: each contact against its own
    total = by_channel["all"]
    # contacts: 9 conversations + c8 (Maria's WhatsApp joining c7, served at once: 0 s);
    # measured: c1 c2 c4 c5 c6 c7 c8 c9 c10 (c3 is a short abandon); met: all but c2, c4
    assert (total["contacts"], total["answered"], total["met"], total["measured"]) == (
        10, 8, 7, 9
    )  # fmt: skip
    assert (total["rejoins"], total["open"], total["unanswered"]) == (1, 0, 0)
    assert total["service_level"] == pytest.approx(7 / 9)
    assert (total["abandoned"], total["short_abandoned"], total["callbacks"]) == (1, 1, 1)
    assert total["abandon_rate"] == pytest.approx(1 / 9)
    (tenant_total,) = service_report(con, by=()).records()
    assert tenant_total["service_level"] == pytest.approx(7 / 9)


def test_p90_wait_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    # nearest rank: the ceil(n * q)-th smallest answered wait
    voice = one(con, "SELECT * FROM wait_percentiles WHERE channel = 'voice'")
    assert (voice["answered"], voice["p50_wait_s"], voice["p90_wait_s"]) == (2, 5.0, 25.0)
    assert voice["mean_wait_s"] == 15.0
    report = {r["channel"]: r for r in service_report(con, by=("channel",)).records()}
    # real-time waits: 5 (c6), 12 (c1), 25 (c4), 30 (c5)
    assert report["all"]["p50_wait_s"] == 12.0  # ceil(4 * 0.5) = 2nd
    assert report["all"]["p90_wait_s"] == 30.0  # ceil(4 * 0.9) = 4th
    # first replies (messaging, email): 0 (c8), 5 (c9), 10 (c7), 82000 (c10)
    assert report["all"]["p50_first_reply_s"] == 5.0
    assert report["all"]["p90_first_reply_s"] == 82_000.0
    assert report["webchat"]["p90_wait_s"] == 30.0  # 12, 30: ceil(2 * 0.9) = 2nd
    assert report["voice"]["p99_wait_s"] == 25.0


def test_abandonment_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    voice = one(con, "SELECT * FROM abandonment WHERE channel = 'voice'")
    # 4 calls, 1 short abandon left out of the base: 1 abandon of 3
    assert (voice["contacts"], voice["abandoned"], voice["short_abandoned"]) == (4, 1, 1)
    assert voice["abandon_rate"] == pytest.approx(1 / 3)
    assert voice["abandoned_after_target"] == 1  # c2 waited 30 s for a 20 s target
    assert voice["p90_abandon_wait_s"] == 30.0
    rates = con.execute("SELECT abandon_rate FROM abandonment WHERE channel = 'webchat'")
    assert rates.fetchall() == [(0.0,), (0.0,)]


def test_occupancy_by_hand(con: duckdb.DuckDBPyConnection) -> None:
    def occ(agent: str, media: str, seconds: float = 0) -> dict[str, Any]:
        return one(
            con, "SELECT * FROM occupancy WHERE agent_id = ? AND media_class = ? "
            "AND interval_start = ?", agent, media, at(seconds),
        )  # fmt: skip

    # ann, 08:00-08:15, available all 900 s, holding (handling or wrap-up):
    # c1 22-104 and c4 95-155 (together 22-155: 133 s), c5 230-305 (75 s),
    # c6 405-420 (15 s), c9 445-465 (20 s), c7 610-705 (95 s): 338 s
    ann = occ("ann", "all")
    assert (ann["staffed_s"], ann["busy_s"]) == (900.0, 338.0)
    assert ann["occupancy"] == pytest.approx(338 / 900)
    # by media class: chat c1 82 s + c5 75 s; task (the callback) 60 s; messaging 115 s
    assert occ("ann", "chat")["busy_s"] == 157.0
    assert occ("ann", "task")["busy_s"] == 60.0
    assert occ("ann", "voice")["busy_s"] == 15.0
    assert occ("ann", "messaging")["busy_s"] == 115.0
    assert occ("ann", "chat")["occupancy"] == pytest.approx(157 / 900)
    assert occ("ann", "chat")["handle_s"] == 78.0 + 70.0  # handling only, no wrap-up
    # bob: available 410-510 (100 s), holding c6 428-505 (77 s)
    bob = occ("bob", "all")
    assert (bob["staffed_s"], bob["busy_s"], bob["occupancy"]) == (100.0, 77.0, 0.77)
    # eve: away all day, then available at 07:00 the next morning with the email
    eve = occ("eve", "email", 23 * 3600)
    assert eve["staffed_s"] == 900.0 and eve["busy_s"] == 100.0


def test_work_finished_after_going_away_counts_as_staffed(tmp_path: Path) -> None:
    """Occupancy never exceeds 100 %: an agent finishing a call after they went on a break
    is working, so that time is staffed as well as busy; idle time away is neither."""
    script = [
        (0, do(ev.AgentRegistered, agent_id="ann", skills={"mail": 1})),
        (0, do(ev.AgentStatusChanged, agent_id="ann", status="available")),
        (0, arrive("c1", "voice", "+1", queue="mail")),
        (600, do(ev.AgentStatusChanged, agent_id="ann", status="away")),  # still on c1
        (900, do(ev.ConversationEnded, conversation_id="c1")),
        (1200, do(ev.AgentStatusChanged, agent_id="ann", status="available")),
        (1800, do(ev.Tick)),
    ]
    log = write_log(tmp_path / "away.olog", scripted_batches(script=script))
    with FileLog(log, readonly=True) as flog:
        project(flog, tmp_path / "away.duckdb", POLICY)
    with connect_readonly(tmp_path / "away.duckdb") as c:
        rows = c.execute(
            "SELECT interval_start, staffed_s, busy_s, occupancy FROM occupancy "
            "WHERE media_class = 'all' ORDER BY interval_start"
        ).fetchall()
    assert rows == [(at(0), 900.0, 900.0, 1.0), (at(900), 600.0, 0.0, 0.0)]


def test_agent_states_are_status_intervals(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute(
        "SELECT state, start_at, end_at FROM agent_states WHERE agent_id = 'bob' "
        "AND start_at < end_at OR (agent_id = 'bob' AND end_at IS NULL) ORDER BY start_at"
    ).fetchall()
    assert rows == [
        ("away", at(0), at(410)),
        ("available", at(410), at(510)),
        ("away", at(510), None),  # still away when the log ends
    ]


def test_channel_volume_counts_every_channel_used(con: duckdb.DuckDBPyConnection) -> None:
    rows = dict(
        con.execute("SELECT channel, interactions FROM channel_volume ORDER BY channel").fetchall()
    )
    assert rows == {"email": 1, "messenger": 1, "voice": 4, "webchat": 2, "whatsapp": 2}
    wa = one(con, "SELECT * FROM channel_volume WHERE channel = 'whatsapp'")
    assert (wa["first_contacts"], wa["joined_later"]) == (1, 1)


def test_customer_360_merges_contacts_linked_by_contacts_linked(
    con: duckdb.DuckDBPyConnection,
) -> None:
    view = customer_view(con, "crm-maria")
    assert view["contacts"] == [
        {"channel": "messenger", "address": "@maria"},
        {"channel": "whatsapp", "address": MARIA_WA.address},
    ]
    # c9 came from the WhatsApp number before anyone knew it was Maria's
    assert view["merged_ids"] == [
        "contact:messenger:@maria",
        f"contact:whatsapp:{MARIA_WA.address}",
    ]
    assert [c["conversation_id"] for c in view["conversations"]] == ["c9", "c7"]
    assert [c["channels"] for c in view["conversations"]] == [
        ["whatsapp"],
        ["messenger", "whatsapp"],
    ]
    assert view["interactions"] == 2 and view["channels"] == ["messenger", "whatsapp"]
    assert view["agents"] == ["ann"] and view["last_agent"] == "ann"
    assert view["open_conversation"] is None
    assert (view["total_wait_s"], view["sla_breaches"]) == (15.0, 0)
    # the merged ids and a contact address find the same customer
    assert customer_view(con, f"contact:whatsapp:{MARIA_WA.address}")["customer_id"] == (
        "crm-maria"
    )
    assert customer_view(con, "@maria")["customer_id"] == "crm-maria"
    merged = con.execute(
        "SELECT count(*) FROM customer_360 WHERE customer_id IN (?, ?)",
        ["contact:messenger:@maria", f"contact:whatsapp:{MARIA_WA.address}"],
    ).fetchone()
    assert merged == (0,)  # merged customers have no row of their own
    email = customer_view(con, "maria@example.com")  # never linked: another customer
    assert email["customer_id"] == "contact:email:maria@example.com"


def test_customer_360_of_a_customer_with_an_abandon_and_a_breach(
    con: duckdb.DuckDBPyConnection,
) -> None:
    view = customer_view(con, "contact:voice:+1002")
    assert view["interactions"] == 1 and view["sla_breaches"] == 1
    assert view["total_wait_s"] == 30.0 and view["agents"] == []


def test_every_table_and_view_exists(con: duckdb.DuckDBPyConnection) -> None:
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert set(TABLES) <= names
    views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
    assert set(VIEWS) <= views


# --- open conversations, the projection clock ------------------------------------------------


def _cut_after_c3(tick_decisions: bool) -> list[list[ev.Event]]:
    """SCRIPT up to c3's arrival (35 s; c2 and c3 wait, ann is busy), then a Tick at 100 s,
    with the decisions the engine makes on it, or without them (a log still catching up)."""
    engine = Engine(POLICY)
    batches: list[list[ev.Event]] = []
    for seconds, (cls, fields) in SCRIPT[:12]:
        event = cls(tenant=TENANT, ts=T0 + round(seconds * 1000), **fields)
        batches.append([event, *engine.apply(event)])
    assert getattr(batches[-1][0], "conversation_id", "") == "c3"
    tick = ev.Tick(tenant=TENANT, ts=T0 + 100_000)
    decisions = engine.apply(tick)
    assert [type(d) for d in decisions] == [ev.SlaBreached, ev.SlaBreached]
    return [*batches, [tick, *decisions] if tick_decisions else [tick]]


@pytest.mark.parametrize("tick_decisions", [True, False])
def test_a_conversation_still_waiting_past_its_target_is_not_met(
    tmp_path: Path, tick_decisions: bool
) -> None:
    log = write_log(tmp_path / "open.olog", _cut_after_c3(tick_decisions))
    db = tmp_path / "open.duckdb"
    with FileLog(log, readonly=True) as flog:
        project(flog, db, POLICY)
    with connect_readonly(db) as c:
        c2 = interaction(c, "c2")
        assert (c2["status"], c2["outcome"], c2["wait_s"], c2["closed_at"]) == (
            "queued", "open", None, None
        )  # fmt: skip
        # the engine's SlaBreached decides; without it, the projection's clock does
        assert c2["met"] is (False if tick_decisions else None)
        voice = one(c, "SELECT * FROM service_level WHERE channel = 'voice'")
        assert (voice["open"], voice["measured"], voice["met"]) == (2, 2, 0)
        assert voice["service_level"] == 0.0
        open_segments = c.execute(
            "SELECT conversation_id, kind, end_at FROM segments WHERE end_at IS NULL ORDER BY 1"
        ).fetchall()
        assert open_segments == [("c1", "agent", None), ("c2", "queue", None),
                                 ("c3", "queue", None)]  # fmt: skip
        view = customer_view(c, "contact:voice:+1003")
        assert view["open_conversation"] == "c3" and view["total_wait_s"] == 65.0
        assert view["sla_breaches"] == (1 if tick_decisions else 0)


# --- idempotence, resumption, replay ---------------------------------------------------------


def test_projecting_twice_changes_nothing(tmp_path: Path, demo_log: Path) -> None:
    db = tmp_path / "twice.duckdb"
    with FileLog(demo_log, readonly=True) as log:
        first = project(log, db, small_policy())
        assert first.events == log.end() == first.position
        before = snapshot(db)
        again = project(log, db, small_policy())
    assert (again.events, again.position) == (0, first.position)
    assert snapshot(db) == before
    with Projector(db, small_policy()) as p, FileLog(demo_log, readonly=True) as log:
        assert p.position == log.end()
        assert p.project(log).events == 0
    assert snapshot(db) == before


@pytest.mark.parametrize("cuts", [(1,), (37, 38, 39), (500, 4_000, 9_999), (6_000,)])
def test_project_in_parts_equals_all_at_once(
    tmp_path: Path, demo_log: Path, cuts: tuple[int, ...]
) -> None:
    whole = tmp_path / "whole.duckdb"
    with FileLog(demo_log, readonly=True) as log:
        project(log, whole, small_policy())
        parts = tmp_path / "parts.duckdb"
        done = 0
        for cut in cuts:  # a new process each time: the state comes back from the file
            with Projector(parts, small_policy()) as p:
                p.project(log, limit=cut - done, batch_events=977)
                done = cut
        with Projector(parts, small_policy()) as p:
            assert p.position <= done  # an input waits for its decisions
            p.project(log, batch_events=3_001)
            assert p.position == log.end()
    assert snapshot(parts) == snapshot(whole)


def test_small_batches_in_one_process_equal_one_batch(tmp_path: Path, demo_log: Path) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    with FileLog(demo_log, readonly=True) as log:
        project(log, a, small_policy(), batch_events=1_000_000)
        stats = project(log, b, small_policy(), batch_events=331)
    assert stats.batches > 30
    assert snapshot(a) == snapshot(b)


def test_projection_of_a_replayed_log_equals_the_live_one(tmp_path: Path, demo_log: Path) -> None:
    with FileLog(demo_log, readonly=True) as log:
        live = [e for _, e in log.read()]
    engine = Engine(small_policy())
    replayed: list[ev.Event] = []
    for event in live:
        if not ev.is_decision(event):
            replayed.append(event)
            replayed.extend(engine.apply(event))
    assert [ev.encode_msgpack(e) for e in replayed] == [ev.encode_msgpack(e) for e in live]
    # written back in other batches (inputs only, or thousands of events per append)
    path = tmp_path / "replayed.olog"
    with FileLog(path, fsync="never") as log:
        for i in range(0, len(replayed), 4_096):
            log.append(replayed[i : i + 4_096])
    with FileLog(demo_log, readonly=True) as a, FileLog(path, readonly=True) as b:
        project(a, tmp_path / "live.duckdb", small_policy())
        project(b, tmp_path / "replayed.duckdb", small_policy())
    assert snapshot(tmp_path / "replayed.duckdb") == snapshot(tmp_path / "live.duckdb")


def test_demo_projection_agrees_with_the_engine_decisions(demo_log: Path, tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    with FileLog(demo_log, readonly=True) as log:
        events = [e for _, e in log.read()]
        project(log, db, small_policy())
    kinds = {e.agent_id: e.kind for e in events if isinstance(e, ev.AgentRegistered)}
    first_human: dict[str, ev.ConversationAssigned] = {}
    for e in events:
        if isinstance(e, ev.ConversationAssigned) and kinds[e.agent_id] == "human":
            first_human.setdefault(e.conversation_id, e)
    arrived = [e for e in events if isinstance(e, ev.ConversationArrived)]
    rejoined = [e for e in events if isinstance(e, ev.ConversationRejoined)]
    abandoned = {e.conversation_id for e in events if isinstance(e, ev.CustomerAbandoned)}
    with connect_readonly(db) as c:
        rows = c.execute(
            "SELECT conversation_id, (epoch_ms(first_answer_at) - epoch_ms(first_contact_at)) "
            "/ 1000, answered_by, abandoned, closed_at IS NULL FROM interactions"
        ).fetchall()
    assert len(rows) == len(arrived) - len(rejoined)
    # taken on by a human (a written channel is answered later, by the first reply)
    answered = {cid: (wait, agent) for cid, wait, agent, _, _ in rows if agent is not None}
    assert answered == {cid: (a.wait_ms / 1000, a.agent_id) for cid, a in first_human.items()}
    # abandoned: gave up before any human answered (answered first: the outcome is answered)
    assert {cid for cid, _, _, ab, _ in rows if ab} == abandoned - set(first_human)
    engine = Engine(small_policy())
    for e in events:
        if not ev.is_decision(e):
            engine.apply(e)
    tenant = engine.tenant("small")
    assert tenant is not None
    still_open = {cid for cid, *_, is_open in rows if is_open}
    assert still_open == set(tenant.conversations)  # open at the end of the run, if any


# --- errors --------------------------------------------------------------------------------


def test_another_log_or_a_shorter_log_is_refused(tmp_path: Path, demo_log: Path) -> None:
    db = tmp_path / "x.duckdb"
    with FileLog(demo_log, readonly=True) as log:
        project(log, db, small_policy())
    other = write_log(tmp_path / "other.olog", scripted_batches())
    with FileLog(other, readonly=True) as log, pytest.raises(ProjectionError, match="only"):
        project(log, db, small_policy())
    with FileLog(other, fsync="never") as log:
        log.append([ev.Tick(tenant="t", ts=T0 + 10**9)] * 20_000)
    with FileLog(other, readonly=True) as log, pytest.raises(ProjectionError, match="another"):
        project(log, db, small_policy())


def test_settings_are_checked(tmp_path: Path, demo_log: Path) -> None:
    db = tmp_path / "s.duckdb"
    with FileLog(demo_log, readonly=True) as log:
        project(log, db, small_policy(), short_abandon_s=5)
    with pytest.raises(ProjectionError, match="short_abandon_s=5"):
        Projector(db, small_policy(), short_abandon_s=10)
    with pytest.raises(ValueError):
        Projector(tmp_path / "t.duckdb", short_abandon_s=-1)
    with Projector(db, small_policy(), interval_s=3600) as p:  # views only: allowed
        assert p.interval_s == 3600
    with connect_readonly(db) as c:
        n = c.execute("SELECT count(DISTINCT interval_start) FROM service_level").fetchone()
        assert n is not None and n[0] <= 6  # 4 h of arrivals and the drain, by the hour


def test_readers_see_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ProjectionError, match="no such database"):
        connect_readonly(tmp_path / "missing.duckdb")
    duckdb.connect(str(tmp_path / "plain.duckdb")).close()
    with pytest.raises(ProjectionError, match="not an omniroute projection"):
        connect_readonly(tmp_path / "plain.duckdb")


def test_a_rejected_input_is_not_folded(tmp_path: Path) -> None:
    engine = Engine(POLICY)
    batches = []
    for seconds, (cls, fields) in SCRIPT:
        event = cls(tenant=TENANT, ts=T0 + round(seconds * 1000), **fields)
        batches.append([event, *engine.apply(event)])
    # inputs the engine refuses for reasons the projection cannot see by itself
    bad: list[ev.Event] = [
        ev.AgentRegistered(tenant=TENANT, ts=T0 + 91_000_000, agent_id="zed",
                           capacity_profile="no-such-profile"),
        ev.ContactsLinked(tenant=TENANT, ts=T0 + 91_000_000, customer_id="crm-x",
                          contacts=[ev.Contact("sms", "+1002"), ev.Contact("sms", "")]),
    ]  # fmt: skip
    for event in bad:
        out = engine.apply(event)
        assert [type(d) for d in out] == [ev.EventRejected]
        batches.append([event, *out])
    log = write_log(tmp_path / "r.olog", batches)
    db = tmp_path / "r.duckdb"
    with FileLog(log, readonly=True) as flog:
        project(flog, db, POLICY)
    with connect_readonly(db) as c:
        assert c.execute("SELECT count(*) FROM agents WHERE agent_id = 'zed'").fetchone() == (0,)
        assert c.execute(
            "SELECT count(*) FROM customers WHERE customer_id = 'crm-x'"
        ).fetchone() == (0,)
