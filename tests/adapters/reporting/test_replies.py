"""Written channels measured at the first reply (issue 14): email, messaging and social.

Small logs whose decisions a fresh :class:`Engine` makes, projected through the public
:class:`Projector` into a real DuckDB file. An email assigned at once is answered by
the agent's first reply (``MessageReceived`` out), not by the assignment: replied after
3 h it misses its 2 h target, after 30 min it meets it, never replied it is
``unreplied`` (not met). Each customer message's time to the next agent message is a
``replies`` row, with nearest-rank percentiles per channel. Times are seconds after T0.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from omniroute.adapters.reporting import (
    OUTCOMES,
    ProjectionError,
    Projector,
    compare,
    connect_readonly,
    customer_view,
    format_comparison,
    format_customer,
    service_report,
)
from omniroute.adapters.reporting.plot_data import waits_data
from omniroute.engine import Engine, parse_policy
from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog

T0 = 1_767_254_400_000
TENANT = "acme"
HOUR = 3600
POLICY = parse_policy(
    """
[queues.mail]
skills = { mail = 1 }
offer_mode = "auto"
wrap_up_s = 0
sla_s = { email = 7200, whatsapp = 300, voice = 20 }
"""
)


def event(seconds: float, cls: type, **fields: Any) -> ev.Event:
    return cls(tenant=TENANT, ts=T0 + round(seconds * 1000), **fields)  # type: ignore[no-any-return]


def arrive(seconds: float, cid: str, channel: str, customer: str = "cu1") -> ev.Event:
    return event(seconds, ev.ConversationArrived, conversation_id=cid, channel=channel,
                 contact=ev.Contact(channel, f"{channel}:{customer}"), queue="mail",  # type: ignore[arg-type]
                 customer_id=customer)  # fmt: skip


def out(seconds: float, cid: str, leg: str | None = None) -> ev.Event:
    """The agent writes to the customer."""
    return event(seconds, ev.MessageReceived, conversation_id=cid, direction="out", leg=leg)


def write(seconds: float, cid: str, leg: str | None = None) -> ev.Event:
    """The customer writes."""
    return event(seconds, ev.MessageReceived, conversation_id=cid, direction="in", leg=leg)


def end(seconds: float, cid: str) -> ev.Event:
    return event(seconds, ev.ConversationEnded, conversation_id=cid)


def staffed(*inputs: ev.Event) -> list[ev.Event]:
    """ann (mail) available at T0, then ``inputs``, then a tick a day later."""
    return [
        event(0, ev.AgentRegistered, agent_id="ann", skills={"mail": 1}),
        event(0, ev.AgentStatusChanged, agent_id="ann", status="available"),
        *inputs,
        event(24 * HOUR, ev.Tick),
    ]


def project(path: Path, inputs: list[ev.Event], batch_events: int = 200_000) -> Path:
    """Each input with the engine's decisions (none rejected), projected into ``path``."""
    engine = Engine(POLICY)
    log = MemoryLog()
    for e in inputs:
        decisions = list(engine.apply(e))
        assert not [d for d in decisions if isinstance(d, ev.EventRejected)], (e, decisions)
        log.append([e, *decisions])
    with Projector(path, POLICY, short_abandon_s=5) as p:
        p.project(log, batch_events=batch_events)
    return path


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def by_channel(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    report = {r["channel"]: r for r in service_report(con, ("channel",)).records()}
    for channel, r in report.items():  # every contact is in exactly one outcome
        assert sum(r[o] for o in OUTCOMES) == r["contacts"], (channel, r)
    return report


def email_replied_after(seconds: float | None) -> list[ev.Event]:
    """An email assigned to ann on arrival, replied ``seconds`` later (None: never),
    ended 1 h after the reply (or 4 h after arrival)."""
    reply = [] if seconds is None else [out(60 + seconds, "e1")]
    done = 60 + (seconds + HOUR if seconds is not None else 4 * HOUR)
    return staffed(arrive(60, "e1", "email"), *reply, end(done, "e1"))


@pytest.fixture(scope="module")
def emails(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Databases of the one email: replied after 30 min, after 3 h, never."""
    tmp = tmp_path_factory.mktemp("emails")
    return {
        name: project(tmp / f"{name}.duckdb", email_replied_after(seconds))
        for name, seconds in (("30min", 30 * 60.0), ("3h", 3.0 * HOUR), ("never", None))
    }


def test_an_email_assigned_at_once_and_replied_after_3h_misses_its_2h_target(
    emails: dict[str, Path],
) -> None:
    with connect_readonly(emails["3h"]) as con:
        email = by_channel(con)["email"]
        (leg,) = rows(con, "SELECT * FROM legs")
        (conv,) = rows(con, "SELECT * FROM interactions")
        (assigned,) = rows(con, "SELECT * FROM assignments")
    assert assigned["wait_s"] == 0.0  # the assignment came at once ...
    # ... but the customer waited 3 h for an answer: answered, not in SLA
    assert (email["contacts"], email["answered"], email["met"], email["not_met"]) == (1, 1, 0, 1)
    assert email["service_level"] == 0.0
    assert (email["p50_first_reply_s"], email["max_first_reply_s"]) == (3.0 * HOUR, 3.0 * HOUR)
    assert email["p50_wait_s"] is None  # a written contact has no wait of its own
    assert (leg["asynchronous"], leg["served_at"] == leg["started_at"]) == (True, True)
    assert (leg["wait_s"], leg["met"], leg["replied_by"], leg["outcome"]) == (
        3.0 * HOUR, False, "ann", "answered"
    )  # fmt: skip
    assert leg["answered_at"] == leg["replied_at"]
    with connect_readonly(emails["3h"]) as con:
        (panel,) = waits_data(con)  # the plot's panel: the first reply, not the assignment
        (view,) = rows(con, "SELECT * FROM service_level")
    assert (panel.channel, panel.first_reply, list(panel.waits_s)) == ("email", True, [3 * HOUR])
    assert (view["answered"], view["unreplied"], view["not_met"]) == (1, 0, 1)
    assert (conv["outcome"], conv["wait_s"], conv["met"], conv["sla_breached"]) == (
        "answered", 3.0 * HOUR, False, True  # the engine's SlaBreached at 2 h agrees
    )  # fmt: skip


def test_an_email_replied_after_30min_meets_it(emails: dict[str, Path]) -> None:
    with connect_readonly(emails["30min"]) as con:
        email = by_channel(con)["email"]
        (conv,) = rows(con, "SELECT * FROM interactions")
        text = format_customer(customer_view(con, "cu1"))
    assert (email["answered"], email["met"], email["not_met"], email["service_level"]) == (
        1, 1, 0, 1.0
    )  # fmt: skip
    assert email["p90_first_reply_s"] == 1800.0
    assert (conv["outcome"], conv["met"], conv["sla_breached"]) == ("answered", True, False)
    # assigned on arrival; answered by the reply half an hour later
    assert conv["first_answer_at"] == conv["first_contact_at"]
    assert conv["first_reply_at"] - conv["first_contact_at"] == dt.timedelta(minutes=30)
    # the customer view shows it as the first reply, not as a wait
    header = next(line for line in text if "first contact" in line)
    row = next(line for line in text if " e1 " in line)
    at = header.index("first reply")
    assert row[at : at + len("first reply")].strip() == "30m00s"
    assert row[header.index("wait") : header.index("wait") + 4].strip() == "-"


def test_an_email_never_replied_is_unreplied_and_not_met(emails: dict[str, Path]) -> None:
    with connect_readonly(emails["never"]) as con:
        email = by_channel(con)["email"]
        (leg,) = rows(con, "SELECT * FROM legs")
        (conv,) = rows(con, "SELECT * FROM interactions")
        (message,) = rows(con, "SELECT * FROM replies")
    assert (email["contacts"], email["answered"], email["unreplied"]) == (1, 0, 1)
    assert (email["measured"], email["met"], email["not_met"]) == (1, 0, 1)
    assert email["p50_first_reply_s"] is None
    # taken on by ann at once, but she never wrote back before it ended 4 h later
    assert (leg["outcome"], leg["met"], leg["served_by"], leg["replied_at"]) == (
        "unreplied", False, "ann", None
    )  # fmt: skip
    assert leg["wait_s"] == 4.0 * HOUR
    assert (conv["outcome"], conv["met"], conv["answered_by"]) == ("unreplied", False, "ann")
    assert (message["outcome"], message["reply_s"]) == ("unreplied", None)


def test_an_email_still_unreplied_past_its_target_is_not_met(tmp_path: Path) -> None:
    db = project(tmp_path / "open.duckdb", staffed(arrive(60, "e1", "email")))
    with connect_readonly(db) as con:
        email = by_channel(con)["email"]
        (message,) = rows(con, "SELECT * FROM replies")
        view = customer_view(con, "cu1")
    assert (email["open"], email["measured"], email["not_met"]) == (1, 1, 1)
    assert message["outcome"] == "waiting"
    # assigned at once, yet the customer has waited for an answer since: until the
    # projection's clock (the tick a day after T0)
    assert (view["total_wait_s"], view["sla_breaches"]) == (24.0 * HOUR - 60, 1)


def test_a_call_is_still_measured_at_the_answer(tmp_path: Path) -> None:
    db = project(tmp_path / "call.duckdb", staffed(arrive(60, "v1", "voice"), end(300, "v1")))
    with connect_readonly(db) as con:
        voice = by_channel(con)["voice"]
        assert rows(con, "SELECT * FROM replies") == []  # a call has no written messages
    assert (voice["answered"], voice["met"], voice["p50_wait_s"]) == (1, 1, 0.0)
    assert voice["p50_first_reply_s"] is None


# --- each customer message's reply time ---------------------------------------------------

CHAT = staffed(
    arrive(0, "w1", "whatsapp"),  # the first customer message: replied after 10 s
    out(10, "w1"),
    write(100, "w1"), out(120, "w1"),  # 20 s
    write(200, "w1"), out(230, "w1"),  # 30 s
    write(300, "w1"), out(340, "w1"),  # 40 s
    write(400, "w1"), write(450, "w1"), out(500, "w1"),  # one reply answers both: 100, 50 s
    out(510, "w1"),  # a second agent message answers nothing
    write(600, "w1"),  # never answered: the conversation ends first
    end(700, "w1"),
)  # fmt: skip


def test_reply_times_per_message_and_their_percentiles(tmp_path: Path) -> None:
    with connect_readonly(project(tmp_path / "chat.duckdb", CHAT)) as con:
        messages = rows(con, "SELECT * FROM replies ORDER BY seq")
        wa = by_channel(con)["whatsapp"]
        (view,) = rows(con, "SELECT * FROM reply_times")
    assert [(m["seq"], m["reply_s"], m["outcome"]) for m in messages] == [
        (1, 10.0, "replied"), (2, 20.0, "replied"), (3, 30.0, "replied"), (4, 40.0, "replied"),
        (5, 100.0, "replied"), (6, 50.0, "replied"), (7, None, "unreplied"),
    ]  # fmt: skip
    assert {m["replied_by"] for m in messages[:6]} == {"ann"}
    # nearest rank over 10, 20, 30, 40, 50, 100: the ceil(6 q)-th
    assert (wa["p50_reply_s"], wa["p90_reply_s"], wa["p99_reply_s"]) == (30.0, 100.0, 100.0)
    assert (wa["messages"], wa["messages_unreplied"]) == (7, 1)
    assert (view["messages"], view["replied"], view["unreplied"], view["p50_reply_s"]) == (
        7, 6, 1, 30.0
    )  # fmt: skip
    # the contact itself: answered by the first reply, 10 s after it
    assert (wa["answered"], wa["p50_first_reply_s"], wa["met"]) == (1, 10.0, 1)


def test_a_reply_naming_a_leg_answers_that_leg_only(tmp_path: Path) -> None:
    inputs = staffed(
        arrive(0, "e1", "email"),
        arrive(60, "w1", "whatsapp"),  # the same customer writes on WhatsApp: a second leg
        out(100, "e1", leg="e1"),  # answers the email only
        out(200, "e1"),  # naming no leg: answers every live written leg (the WhatsApp)
        write(300, "e1"),  # naming no leg: on the newest live written leg (the WhatsApp)
        out(350, "e1", leg="e1"),  # not an answer to it
        out(400, "e1", leg="w1"),  # this is
        end(500, "e1"),
    )
    with connect_readonly(project(tmp_path / "legs.duckdb", inputs)) as con:
        legs = rows(con, "SELECT * FROM legs ORDER BY seq")
        messages = rows(con, "SELECT * FROM replies ORDER BY leg_id, seq")
        report = by_channel(con)
    assert [(leg["leg_id"], leg["outcome"], leg["wait_s"]) for leg in legs] == [
        ("e1", "answered", 100.0), ("w1", "answered", 140.0),
    ]  # fmt: skip
    assert [(m["leg_id"], m["seq"], m["reply_s"]) for m in messages] == [
        ("e1", 1, 100.0), ("w1", 1, 140.0), ("w1", 2, 100.0),
    ]  # fmt: skip
    assert (report["all"]["contacts"], report["all"]["rejoins"]) == (2, 1)


def test_messages_waiting_across_batches_project_as_in_one(tmp_path: Path) -> None:
    def dump(db: Path) -> list[tuple[Any, ...]]:
        with connect_readonly(db) as con:
            return sorted(con.execute("SELECT * FROM replies").fetchall(), key=repr)

    one = project(tmp_path / "one.duckdb", CHAT)
    many = project(tmp_path / "many.duckdb", CHAT, batch_events=1)
    assert dump(many) == dump(one)


# --- two policies side by side ---------------------------------------------------------------


def test_compare_shows_breaches_max_first_reply_and_first_reply_sl(
    emails: dict[str, Path],
) -> None:
    c = compare(emails["30min"], emails["3h"], labels=("A", "B"))
    a, b = c.a.channels["email"], c.b.channels["email"]
    assert (a.first_reply, a.not_met, a.max_wait_s, a.service_level) == (True, 0, 1800.0, 1.0)
    assert (b.not_met, b.max_wait_s, b.service_level) == (1, 3.0 * HOUR, 0.0)
    d = c.to_dict()["difference"]["channels"]["email"]
    assert (d["not_met"], d["max_wait_s"], d["service_level"]) == (1, 3.0 * HOUR - 1800.0, -1.0)
    lines = format_comparison(c)
    cells = {p[0]: p[1:] for p in (re.split(r"\s{2,}", line.strip()) for line in lines[4:])}
    assert cells["email contacts"] == ["1", "1", "+0"]
    assert cells["email not met"] == ["0", "1", "+1"]
    assert cells["email max first reply"] == ["30m00s", "3h00m", "+2h30m"]
    assert cells["email first-reply SL"] == ["100.0%", "0.0%", "-100.0 pp"]
    assert cells["p50 first reply"] == ["30m00s", "3h00m", "+2h30m"]


def test_a_database_of_the_previous_schema_must_be_projected_again(tmp_path: Path) -> None:
    db = project(tmp_path / "old.duckdb", CHAT)
    con = duckdb.connect(str(db))
    con.execute("UPDATE _projection_state SET schema_version = 2")
    con.close()
    with pytest.raises(ProjectionError, match=r"schema version 2.*new database"):
        Projector(db, POLICY)
