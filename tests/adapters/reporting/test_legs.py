"""Reports that add up (issue 13): a conversation's channel legs in the projection.

Small logs (each input followed by the decisions the engine made on it) projected
through the public :class:`Projector`: scripts run through the real :class:`Engine`
(``test_the_scripts_make_the_decisions_the_figures_assume`` pins what it decided), and
a hand-written log of the engine before legs. Each contact (leg) is in exactly one
outcome under its own channel; a conversation's outcome, SLA and handled-by agree; the
customer view lists the legs; the small simulation's report reconciles with its log.
Times are seconds after T0.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.adapters.reporting import (
    OUTCOMES,
    Projector,
    connect_readonly,
    customer_view,
    format_customer,
    service_report,
)
from omniroute.engine import Engine, parse_policy
from omniroute.engine import events as ev
from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.policy import CHANNEL_CLASS, REPLY_CLASSES

T0 = 1_767_254_400_000
TENANT = "acme"
POLICY = parse_policy(
    """
[queues.sales]
skills = { sales = 1 }
wrap_up_s = 0
sla_s = { voice = 20, webchat = 30, whatsapp = 60, email = 3600 }
"""
)

Step = tuple[float, ev.Event, list[ev.Event]]


def step(seconds: float, cls: type, *decisions: tuple[type, dict[str, Any]], **fields: Any) -> Step:
    """An input at T0 + ``seconds`` and the decisions that follow it (same time)."""
    ts = T0 + round(seconds * 1000)
    return (
        seconds,
        cls(tenant=TENANT, ts=ts, **fields),
        [d(tenant=TENANT, ts=ts, **f) for d, f in decisions],
    )


def arrive(
    seconds: float, cid: str, channel: str, address: str, *decisions: Any, **fields: Any
) -> Step:
    contact = ev.Contact(channel, address)  # type: ignore[arg-type]
    return step(seconds, ev.ConversationArrived, *decisions, conversation_id=cid,
                channel=channel, contact=contact, queue="sales", **fields)  # fmt: skip


def decided(steps: list[Step]) -> list[Step]:
    """The inputs of ``steps`` with the decisions a fresh engine makes on them."""
    engine = Engine(POLICY)
    return [(s, e, list(engine.apply(e))) for s, e, _ in steps]


def d(cls: type, **fields: Any) -> tuple[type, dict[str, Any]]:
    return (cls, fields)


def staff(*agents: str) -> list[Step]:
    out: list[Step] = []
    for a in agents:
        out.append(step(0, ev.AgentRegistered, agent_id=a, skills={"sales": 1}))
        out.append(step(0, ev.AgentStatusChanged, agent_id=a, status="available"))
    return out


def project(tmp_path: Path, steps: list[Step]) -> duckdb.DuckDBPyConnection:
    log = MemoryLog()
    for _, e, decisions in steps:
        log.append([e, *decisions])
    db = tmp_path / "legs.duckdb"
    with Projector(db, POLICY, short_abandon_s=5) as p:
        p.project(log)
    return connect_readonly(db)


def by_channel(con: duckdb.DuckDBPyConnection) -> dict[str, dict[str, Any]]:
    return {r["channel"]: r for r in service_report(con, ("channel",)).records()}


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [c[0] for c in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def assert_outcomes_add_up(con: duckdb.DuckDBPyConnection) -> None:
    for channel, r in by_channel(con).items():
        assert sum(r[o] for o in OUTCOMES) == r["contacts"], (channel, r)


# --- a chat answered, then a call that waits for the agent and is dropped ----------------

ANSWERED_THEN_LEG_ABANDONED = decided([
    *staff("ann"),
    arrive(5, "x1", "webchat", "web:9"),  # another customer's chat: ann has no room for a call
    step(6, ev.OfferAccepted, conversation_id="x1", agent_id="ann"),
    arrive(10, "c1", "whatsapp", "+1001", customer_id="cu1"),
    step(15, ev.OfferAccepted, conversation_id="c1", agent_id="ann"),
    step(15, ev.MessageReceived, conversation_id="c1", direction="out"),  # the first reply
    # the customer calls while the chat goes on: the call waits for ann, then for anyone
    arrive(60, "c2", "voice", "+1001", customer_id="cu1"),
    step(80, ev.Tick),
    # the caller hangs up after 40 s; the chat goes on and ends
    step(100, ev.CustomerAbandoned, conversation_id="c2", leg="c2"),
    step(200, ev.ConversationEnded, conversation_id="c1"),
    step(210, ev.ConversationEnded, conversation_id="x1"),
])  # fmt: skip


def test_a_call_dropped_during_an_answered_chat_counts_once_under_voice(tmp_path: Path) -> None:
    con = project(tmp_path, ANSWERED_THEN_LEG_ABANDONED)
    report = by_channel(con)
    wa, voice, total = report["whatsapp"], report["voice"], report["all"]
    assert (wa["contacts"], wa["answered"], wa["abandoned"], wa["met"]) == (1, 1, 0, 1)
    assert (voice["contacts"], voice["answered"], voice["abandoned"], voice["met"]) == (1, 0, 1, 0)
    assert (total["contacts"], total["rejoins"], total["answered"]) == (3, 1, 2)
    assert_outcomes_add_up(con)
    legs = rows(con, "SELECT * FROM legs WHERE conversation_id = 'c1' ORDER BY started_at")
    assert [(r["leg_id"], r["channel"], r["outcome"], r["wait_s"], r["met"]) for r in legs] == [
        ("c1", "whatsapp", "answered", 5.0, True),
        ("c2", "voice", "abandoned", 40.0, False),
    ]
    assert (legs[0]["served_by"], legs[1]["served_by"], legs[1]["ended_by"]) == (
        "ann", None, "abandoned"
    )  # fmt: skip
    (c1,) = rows(con, "SELECT * FROM interactions WHERE conversation_id = 'c1'")
    assert (c1["outcome"], c1["met"], c1["handled_by"], c1["legs"], c1["leg_ids"]) == (
        "answered", True, ["ann"], 2, ["c1", "c2"]
    )  # fmt: skip


# --- the engine before legs: a switch releases the agent, the customer abandons -------------

ANSWERED_THEN_ABANDONED_AFTER_A_SWITCH = [
    *staff("ann"),
    arrive(10, "c1", "webchat", "web:1",
           d(ev.ConversationQueued, conversation_id="c1", queue="sales"),
           d(ev.ConversationOffered, conversation_id="c1", agent_id="ann", score=1.0,
             why="best", deadline=T0 + 70_000)),
    step(20, ev.OfferAccepted,
         d(ev.ConversationAssigned, conversation_id="c1", agent_id="ann", wait_ms=10_000),
         conversation_id="c1", agent_id="ann"),
    arrive(60, "c2", "voice", "+1002",
           d(ev.ConversationRejoined, conversation_id="c1", new_conversation_id="c2",
             channel="voice", agent_id="ann"),
           d(ev.ConversationQueued, conversation_id="c1", queue="sales",
             reason="channel_switch")),
    step(90, ev.CustomerAbandoned, conversation_id="c1"),
]  # fmt: skip


def test_an_answered_chat_abandoned_after_a_switch_is_answered_once(tmp_path: Path) -> None:
    con = project(tmp_path, ANSWERED_THEN_ABANDONED_AFTER_A_SWITCH)
    report = by_channel(con)
    chat, voice = report["webchat"], report["voice"]
    assert (chat["contacts"], chat["answered"], chat["abandoned"], chat["service_level"]) == (
        1, 1, 0, 1.0
    )  # fmt: skip
    assert (voice["contacts"], voice["answered"], voice["abandoned"]) == (1, 0, 1)
    assert_outcomes_add_up(con)
    (c1,) = rows(con, "SELECT * FROM interactions")
    # one definition: answered by a human, measured at that first answer, whoever left
    assert (c1["outcome"], c1["met"], c1["answered_by"], c1["handled_by"]) == (
        "answered", True, "ann", ["ann"]
    )  # fmt: skip
    assert not c1["abandoned"]


# --- an email during a call: both legs served by the agent, the call ends first -----------

EMAIL_DURING_A_CALL = decided([
    *staff("ann"),
    arrive(10, "c1", "voice", "+1003", customer_id="cu3"),
    step(14, ev.OfferAccepted, conversation_id="c1", agent_id="ann"),
    arrive(30, "m1", "email", "x@example.com", customer_id="cu3"),  # served at once
    step(30, ev.MessageReceived, conversation_id="c1", direction="out", leg="m1"),  # replied
    # a leg end the engine rejects changes nothing
    step(40, ev.ConversationEnded, conversation_id="c1", leg="nope", by="customer"),
    step(60, ev.ConversationEnded, conversation_id="c1", leg="c1", by="customer"),
    step(300, ev.ConversationEnded, conversation_id="m1"),
])  # fmt: skip


def test_the_scripts_make_the_decisions_the_figures_assume() -> None:
    def summary(steps: list[Step]) -> list[tuple[Any, ...]]:
        out: list[tuple[Any, ...]] = []
        for seconds, _, decisions in steps:
            for x in decisions:
                if isinstance(x, ev.ConversationAssigned):
                    out.append((seconds, "assigned", x.conversation_id, x.legs))
                elif isinstance(x, ev.ConversationRejoined):
                    out.append((seconds, "rejoined", x.new_conversation_id, x.agent_id))
                elif isinstance(x, ev.LegJoined | ev.ConversationQueued):
                    leg = x.leg if isinstance(x, ev.LegJoined) else (x.reason, x.leg)
                    out.append((seconds, type(x).__name__, x.conversation_id, leg))
                elif isinstance(x, ev.EventRejected):
                    out.append((seconds, "rejected", x.event_type))
        return out

    assert summary(ANSWERED_THEN_LEG_ABANDONED) == [
        (5, "ConversationQueued", "x1", ("arrived", None)),
        (6, "assigned", "x1", ["x1"]),
        (10, "ConversationQueued", "c1", ("arrived", None)),
        (15, "assigned", "c1", ["c1"]),
        (60, "rejoined", "c2", "ann"),
        (80, "ConversationQueued", "c1", ("leg_waiting", "c2")),  # after sticky_wait_s
    ]
    assert summary(EMAIL_DURING_A_CALL) == [
        (10, "ConversationQueued", "c1", ("arrived", None)),
        (14, "assigned", "c1", ["c1"]),
        (30, "rejoined", "m1", "ann"),
        (30, "LegJoined", "c1", "m1"),
        (40, "rejected", "conversation.ended"),
    ]


def test_an_email_during_a_call_is_a_second_answered_leg(tmp_path: Path) -> None:
    con = project(tmp_path, EMAIL_DURING_A_CALL)
    legs = rows(con, "SELECT * FROM legs ORDER BY started_at")
    assert [(r["leg_id"], r["channel"], r["media_class"], r["outcome"], r["wait_s"],
             r["served_by"], r["ended_by"]) for r in legs] == [
        ("c1", "voice", "voice", "answered", 4.0, "ann", "customer"),
        ("m1", "email", "email", "answered", 0.0, "ann", "agent"),
    ]  # fmt: skip
    assert [r["ended_at"].second for r in legs] == [0, 0]  # 08:01:00 and 08:05:00
    assert legs[0]["ended_at"] < legs[1]["ended_at"]
    report = by_channel(con)
    assert (report["all"]["contacts"], report["all"]["answered"], report["all"]["rejoins"]) == (
        2, 2, 1
    )  # fmt: skip
    assert_outcomes_add_up(con)
    (c1,) = rows(con, "SELECT * FROM interactions")
    assert (c1["outcome"], c1["closed_at"] is not None, c1["legs"]) == ("answered", True, 2)


def test_the_customer_view_lists_the_legs(tmp_path: Path) -> None:
    con = project(tmp_path, EMAIL_DURING_A_CALL)
    view = customer_view(con, "cu3")
    (conv,) = view["conversations"]
    assert [(leg["leg_id"], leg["channel"], leg["served_by"], leg["outcome"])
            for leg in conv["legs"]] == [
        ("c1", "voice", "ann", "answered"), ("m1", "email", "ann", "answered"),
    ]  # fmt: skip
    text = "\n".join(format_customer(view))
    legs = text[text.index("legs (each contact") :].splitlines()
    assert legs[4].split()[:4] == ["c1", "c1", "voice", "2026-01-01"]
    assert legs[5].split()[:4] == ["c1", "m1", "email", "2026-01-01"]
    # the call's wait; the email's first reply (a written contact has no wait of its own)
    assert legs[4].split()[5:7] == ["ann", "4.0s"]
    assert legs[5].split()[5:] == ["ann", "-", "0.0s", "2026-01-01", "08:05", "agent",
                                   "answered"]  # fmt: skip


def test_the_report_says_why_contacts_and_conversations_differ(tmp_path: Path) -> None:
    con = project(tmp_path, ANSWERED_THEN_LEG_ABANDONED)
    notes = " ".join(service_report(con, ("channel",)).notes)
    assert "3 contacts = 2 conversations + 1 rejoins" in notes
    assert "(2 + 0 + 1 + 0 + 0 + 0 + 0)" in notes  # answered + unreplied + ... = contacts


# --- the small simulation: every total reconciles -----------------------------------------


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[duckdb.DuckDBPyConnection, int]:
    from tests.support.simulation import small_in_memory, small_policy

    log, run = small_in_memory(seed=1)
    db = tmp_path_factory.mktemp("small") / "small.duckdb"
    with Projector(db, small_policy()) as p:
        p.project(log)
    return connect_readonly(db), run.interactions


def test_small_per_channel_outcomes_sum_to_contacts(
    small: tuple[duckdb.DuckDBPyConnection, int],
) -> None:
    con, contacts = small
    assert_outcomes_add_up(con)
    total = by_channel(con)["all"]
    assert total["contacts"] == contacts  # the simulator's count: conversations + rejoins
    conversations = con.execute("SELECT count(*) FROM interactions").fetchone()
    assert conversations is not None
    assert total["contacts"] == conversations[0] + total["rejoins"]
    for r in by_channel(con).values():  # measured = answered + abandoned + past target
        assert r["measured"] >= r["answered"] + r["abandoned"], r


def agree(con: duckdb.DuckDBPyConnection) -> None:
    """Each conversation's outcome, SLA and handled-by agree, and it carries its legs."""
    humans = {a for (a,) in con.execute("SELECT agent_id FROM agents WHERE kind = 'human'")
              .fetchall()}  # fmt: skip
    for r in rows(con, "SELECT * FROM interactions"):
        served = [a for a in r["handled_by"] if a in humans]
        answered = r["outcome"] == "answered"
        taken = r["answered_by"] is not None  # taken on by a human
        assert taken == bool(served), r
        # answered: by the human answer, or (a written first contact) the first reply
        assert answered == (r["first_reply_at"] is not None if r["asynchronous"] else taken), r
        if r["outcome"] == "unreplied":
            assert r["asynchronous"] and taken and r["met"] is False, r
        if r["outcome"] == "abandoned":
            assert r["met"] is not True and r["abandoned"], r
        if r["met"] is not None:  # measured: answered, abandoned, or waiting past target
            assert answered or r["outcome"] == "abandoned" or r["met"] is False, r
        if r["outcome"] == "open":
            assert r["met"] is not True and r["closed_at"] is None, r
        assert r["legs"] == 1 + r["rejoins"] == len(r["leg_ids"]), r


def test_small_outcome_sla_and_handled_by_agree(
    small: tuple[duckdb.DuckDBPyConnection, int],
) -> None:
    agree(small[0])


# --- every report total reconciles with the log ---------------------------------------------


def counts_from_log(events: list[ev.Event], short_s: float) -> dict[str, Counter[str]]:
    """Per channel, straight from the log's events (no projection): contacts, rejoins,
    answered, unreplied, abandoned and short abandons.

    A contact is an arrival the engine queued or joined to an open conversation (a
    rejoin). A human agent takes it on while it is live by an assignment listing it
    (listing none, in a log before legs: every live leg), a ``LegJoined``, or (a log
    before legs) a rejoin that came while a human held the conversation and no
    ``channel_switch`` queueing released them: that answers it, but a written contact
    (messaging, email) is answered by the first agent message while a human holds the
    conversation (naming it, or no leg) and it is live; one taken on that ends
    otherwise is unreplied. It is abandoned when the customer gave up on it unanswered
    (an abandon naming it, or the conversation's); a rejoin before a scheduled callback
    voids the callback and ends its legs. (Who holds a conversation: the last agent
    assigned, until a cold transfer or a hand-off; these logs have no agent leaving.)"""
    humans = {e.agent_id for e in events if isinstance(e, ev.AgentRegistered) and e.kind == "human"}
    wire = any(isinstance(e, ev.ConversationAssigned) and e.legs for e in events)
    groups: list[tuple[ev.Event, list[ev.Event]]] = []
    for e in events:
        if ev.is_decision(e):
            groups[-1][1].append(e)
        else:
            groups.append((e, []))
    channel: dict[str, str] = {}  # arrivals
    start: dict[str, int] = {}
    root: dict[str, str] = {}  # leg -> its conversation
    legs: dict[str, list[str]] = {}  # conversation -> its legs
    live: set[str] = set()
    scheduled: set[str] = set()  # conversations waiting for their callback's time
    answered: set[str] = set()
    taken: set[str] = set()  # written contacts a human took on
    owner: dict[str, str] = {}  # conversation -> the agent who holds it
    out: dict[str, Counter[str]] = {}

    def written(leg: str) -> bool:
        return CHANNEL_CLASS[channel[leg]] in REPLY_CLASSES  # type: ignore[index]

    def count(leg: str, what: str) -> None:
        out.setdefault(channel[leg], Counter())[what] += 1

    def answer(leg: str, reply: bool = False) -> None:
        if leg not in live or leg in answered:
            return
        if written(leg) and not reply:
            taken.add(leg)
            return
        answered.add(leg)
        count(leg, "answered")

    def end(cid: str, leg: str | None, ts: int, abandon: bool) -> None:
        here = [x for x in legs.get(root.get(cid, cid), []) if x in live]
        for x in [leg] if leg is not None and len(here) > 1 else here:
            live.discard(x)
            if abandon and x not in answered:
                count(x, "short_abandoned" if ts - start[x] < short_s * 1000 else "abandoned")
            elif x in taken and x not in answered:
                count(x, "unreplied")

    def decide(d: ev.Event, switch: bool) -> None:
        if isinstance(d, ev.ConversationQueued) and d.reason == "arrived":
            if d.conversation_id not in root:
                root[d.conversation_id] = d.conversation_id
                legs[d.conversation_id] = [d.conversation_id]
                live.add(d.conversation_id)
                count(d.conversation_id, "contacts")
        elif isinstance(d, ev.ConversationQueued) and d.reason == "callback":
            scheduled.discard(d.conversation_id)
        elif isinstance(d, ev.ConversationRejoined):
            new, cid = d.new_conversation_id, root[d.conversation_id]
            if cid in scheduled:
                scheduled.discard(cid)
                live.difference_update(legs[cid])
            root[new] = cid
            legs[cid].append(new)
            live.add(new)
            count(new, "contacts")
            count(new, "rejoins")
            if not wire and d.agent_id in humans and not switch:
                answer(new)
        elif isinstance(d, ev.LegJoined) and d.agent_id in humans:
            answer(d.leg)
        elif isinstance(d, ev.ConversationAssigned):
            owner[root[d.conversation_id]] = d.agent_id
            if d.agent_id in humans:
                for leg in d.legs or legs[root[d.conversation_id]]:
                    answer(leg)

    for e, decisions in groups:
        switch = any(isinstance(d, ev.ConversationQueued) and d.reason == "channel_switch"
                     and d.leg is None for d in decisions)  # fmt: skip
        for d in decisions:  # timer decisions dated before the input come first
            if d.ts < e.ts:
                decide(d, switch)
        if not any(isinstance(d, ev.EventRejected) and d.event_type == ev.TAGS[type(e)]
                   for d in decisions):  # fmt: skip
            if isinstance(e, ev.ConversationArrived):
                channel[e.conversation_id], start[e.conversation_id] = e.channel, e.ts
            elif isinstance(e, ev.CustomerAbandoned):
                end(e.conversation_id, e.leg, e.ts, abandon=True)
            elif isinstance(e, ev.ConversationEnded):
                end(e.conversation_id, e.leg, e.ts, abandon=False)
            elif isinstance(e, ev.CallbackRequested) and (e.not_before or 0) > e.ts:
                scheduled.add(root.get(e.conversation_id, e.conversation_id))
            elif (isinstance(e, ev.TransferRequested) and e.mode == "cold") or isinstance(
                e, ev.HandoffRequested
            ):
                owner.pop(root.get(e.conversation_id, e.conversation_id), None)
            elif isinstance(e, ev.MessageReceived) and e.direction == "out":
                cid = root.get(e.conversation_id, e.conversation_id)
                if owner.get(cid) in humans:
                    for x in legs.get(cid, []):
                        if written(x) and e.leg in (None, x):
                            answer(x, reply=True)
        for d in decisions:
            if d.ts >= e.ts:
                decide(d, switch)
    return out


@pytest.mark.parametrize("seed", [1, 3])
def test_small_report_totals_reconcile_with_the_log(tmp_path: Path, seed: int) -> None:
    from tests.support.simulation import small_in_memory, small_policy

    log, run = small_in_memory(seed=seed)
    events = [e for _, e in log.read(0, log.end())]
    expected = counts_from_log(events, short_s=5)
    db = tmp_path / "small.duckdb"
    with Projector(db, small_policy(), short_abandon_s=5) as p:
        p.project(log)
    report = by_channel(connect_readonly(db))
    assert set(report) - {"all"} == set(expected)
    for ch, want in expected.items():
        for what in ("contacts", "rejoins", "answered", "unreplied", "abandoned",
                     "short_abandoned"):  # fmt: skip
            assert report[ch][what] == want[what], (ch, what, report[ch][what], want[what])
    assert (
        report["all"]["contacts"]
        == run.interactions
        == sum(c["contacts"] for c in expected.values())
    )


# --- any script through the engine: every total reconciles -----------------------------------

_CHANNELS = ("voice", "webchat", "whatsapp", "email")
_action = st.one_of(
    st.tuples(st.just("arrive"), st.integers(0, 2), st.sampled_from(_CHANNELS)),
    st.tuples(st.just("accept"), st.integers(0, 9), st.sampled_from(("ann", "bob"))),
    st.tuples(st.just("abandon"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("end"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("callback"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("reply"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("write"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("tick"), st.just(0), st.just(0)),
)


def _script(actions: list[tuple[str, int, Any]], gaps: list[int]) -> list[ev.Event]:
    """The inputs of ``actions`` (ids refer to the arrivals so far, any leg of theirs)."""
    out: list[ev.Event] = []
    for a in ("ann", "bob"):
        out.append(ev.AgentRegistered(tenant=TENANT, ts=T0, agent_id=a, skills={"sales": 1}))
        out.append(ev.AgentStatusChanged(tenant=TENANT, ts=T0, agent_id=a, status="available"))
    ids: list[str] = []
    ts = T0
    for (kind, n, arg), gap in zip(actions, gaps, strict=False):
        ts += gap * 1000
        cid = ids[n % len(ids)] if ids else "none"
        if kind == "arrive":
            ids.append(f"k{len(ids)}")
            address = f"{arg}:{n}"
            out.append(ev.ConversationArrived(
                tenant=TENANT, ts=ts, conversation_id=ids[-1], channel=arg, queue="sales",
                contact=ev.Contact(arg, address), customer_id=f"cu{n}",
            ))  # fmt: skip
        elif kind == "accept":
            out.append(ev.OfferAccepted(tenant=TENANT, ts=ts, conversation_id=cid, agent_id=arg))
        elif kind == "abandon":
            leg = cid if arg else None
            out.append(ev.CustomerAbandoned(tenant=TENANT, ts=ts, conversation_id=cid, leg=leg))
        elif kind == "end":
            leg = cid if arg else None
            out.append(ev.ConversationEnded(tenant=TENANT, ts=ts, conversation_id=cid, leg=leg,
                                            by="customer"))  # fmt: skip
        elif kind in ("reply", "write"):
            out.append(ev.MessageReceived(tenant=TENANT, ts=ts, conversation_id=cid,
                                          direction="out" if kind == "reply" else "in",
                                          leg=cid if arg else None))  # fmt: skip
        elif kind == "callback":
            later = ts + 30_000 if arg else None
            out.append(ev.CallbackRequested(tenant=TENANT, ts=ts, conversation_id=cid,
                                            not_before=later))  # fmt: skip
        else:
            out.append(ev.Tick(tenant=TENANT, ts=ts))
    return out


@given(
    st.lists(_action, min_size=1, max_size=40),
    st.lists(st.integers(0, 40), min_size=40, max_size=40),
)
def test_any_script_reconciles_every_total_with_the_log(
    actions: list[tuple[str, int, Any]], gaps: list[int]
) -> None:
    engine = Engine(POLICY)
    log = MemoryLog()
    for e in _script(actions, gaps):
        log.append([e, *engine.apply(e)])
    events = [e for _, e in log.read(0, log.end())]
    expected = counts_from_log(events, short_s=5)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "any.duckdb"
        with Projector(db, POLICY, short_abandon_s=5) as p:
            p.project(log)
        with connect_readonly(db) as con:
            report = by_channel(con)
            assert_outcomes_add_up(con)
            agree(con)
            convs = con.execute("SELECT count(*), sum(legs) FROM interactions").fetchone()
    assert set(report) - {"all"} == set(expected)
    for ch, want in expected.items():
        for what in ("contacts", "rejoins", "answered", "unreplied", "abandoned",
                     "short_abandoned"):  # fmt: skip
            assert report[ch][what] == want[what], (ch, what, report[ch][what], want[what])
    if expected:
        assert convs is not None
        total = report["all"]
        assert total["contacts"] == convs[0] + total["rejoins"] == convs[1]
