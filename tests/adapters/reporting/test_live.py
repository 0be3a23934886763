"""Live state (adapters/reporting/live*.py): "now" read from the projection must be the
engine's own "now".

- A simulated morning (``small``, seeded) is projected up to several positions; the
  same prefix of the log replayed into an :class:`~omniroute.engine.Engine` must hold
  exactly the waiting, offered and handled legs per tenant x queue x channel, and each
  agent's status, held conversations, legs and capacity units that live_state reads.
- A hand-built voice morning (``tests.support.live.MORNING``) whose service levels,
  abandons, waits, breaches and expected-wait inputs are known.
- Filters narrow every figure without changing it; ``to_json`` survives ``json.dumps``.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import ProjectionError, Projector, connect_readonly, project
from omniroute.adapters.reporting.ewt import QueueLoad, estimate_wait
from omniroute.adapters.reporting.live import LiveState, QueueNow, live_state
from omniroute.adapters.reporting.schema import TABLES_SQL
from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.events import is_decision
from omniroute.engine.memorylog import MemoryLog
from tests.support.live import (
    LAPSE,
    LAPSE_POLICY,
    MORNING,
    MORNING_POLICY,
    engine_agents,
    engine_queues,
)
from tests.support.projection import T0, TENANT, scripted_batches, write_log
from tests.support.simulation import small_in_memory, small_policy

UTC = dt.UTC
AS_OF = dt.datetime(2026, 1, 1, 10, tzinfo=UTC)


@pytest.fixture(scope="module")
def small() -> tuple[MemoryLog, list[ev.Event]]:
    """A seeded ``small`` morning: its log and its events in order."""
    log, _ = small_in_memory(seed=3)
    return log, [e for _, e in log.read()]


def _live(db: Path, **filters: str) -> LiveState:
    con = connect_readonly(db)
    try:
        return live_state(con, small_policy(), **filters)
    finally:
        con.close()


def _queue_figures(state: LiveState) -> dict[tuple[str, str, str, str], int]:
    return {
        (q.tenant, q.queue, q.channel, name): getattr(q, name)
        for q in state.queues
        for name in ("waiting", "offered", "handling")
        if getattr(q, name)
    }


def _agent_figures(state: LiveState) -> dict[tuple[str, str], dict[str, object]]:
    return {
        (a.tenant, a.agent_id): {
            "status": a.status, "not_responding": a.not_responding,
            "conversations": a.conversations, "legs": a.legs, "units_used": a.units_used,
        }
        for a in state.agents
    }  # fmt: skip


# --- the projection agrees with the engine ---------------------------------------------------


def _walk(
    log: MemoryLog, events: list[ev.Event], db: Path, cuts: list[int]
) -> Iterator[tuple[int, LiveState, Engine]]:
    """Project ``log`` to each cut (percent of its events) and replay the same prefix
    into an engine: (cut, live state, engine) at each."""
    policy = small_policy()
    engine = Engine(policy)
    applied = 0
    for cut in sorted(cuts):
        with Projector(db, policy) as projector:  # reopened: it resumes where it stopped
            projector.project(log, limit=len(events) * cut // 100 - projector.position)
            position = projector.position
        for e in events[applied:position]:  # the same prefix: its inputs, re-decided
            if not is_decision(e):
                engine.apply(e)
        applied = position
        yield cut, _live(db), engine


def _assert_agrees(cut: int, state: LiveState, engine: Engine) -> None:
    assert state.as_of == dt.datetime.fromtimestamp(engine.clock / 1000, UTC)
    assert _queue_figures(state) == dict(engine_queues(engine)), f"cut {cut}%"
    assert _agent_figures(state) == engine_agents(engine), f"cut {cut}%"


def test_live_state_is_the_engines_state_along_the_morning(
    small: tuple[MemoryLog, list[ev.Event]], tmp_path: Path
) -> None:
    seen: dict[str, int] = {}
    for cut, state, engine in _walk(*small, tmp_path / "live.duckdb", [15, 35, 50, 65, 80, 97]):
        _assert_agrees(cut, state, engine)
        for name in ("waiting", "offered", "handling"):
            seen[name] = seen.get(name, 0) + sum(getattr(q, name) for q in state.queues)
        seen["several"] = max(seen.get("several", 0), *(len(a.conversations) for a in state.agents))
        seen["units"] = seen.get("units", 0) + sum(a.units_used for a in state.agents)
    # the agreement is not vacuous: legs waited, were offered and served, agents held
    # several conversations at once
    assert all(seen.values()) and seen["several"] >= 3, seen


@settings(max_examples=3)
@given(cuts=st.lists(st.integers(1, 99), min_size=1, max_size=2, unique=True))
def test_live_state_is_the_engines_state_at_any_cut(
    small: tuple[MemoryLog, list[ev.Event]], cuts: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for cut, state, engine in _walk(*small, Path(tmp) / "live.duckdb", cuts):
            _assert_agrees(cut, state, engine)


@pytest.mark.parametrize(("seed", "cut"), [(8, 35), (5, 30)])
def test_live_state_is_the_engines_state_at_the_edges_of_capacity(
    seed: int, cut: int, tmp_path: Path
) -> None:
    # seed 8 at 35 %: a customer's message at as_of itself wakes an inactive
    # conversation; seed 5 at 30 %: a woken conversation stays small behind an older
    # pending hold, a new voice leg that waits for its agent's room
    log, _ = small_in_memory(seed=seed)
    events = [e for _, e in log.read()]
    for at, state, engine in _walk(log, events, tmp_path / "live.duckdb", [cut]):
        _assert_agrees(at, state, engine)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 18))
def test_live_state_is_the_engines_state_on_many_mornings(seed: int, tmp_path: Path) -> None:
    log, _ = small_in_memory(seed=seed)
    events = [e for _, e in log.read()]
    for cut, state, engine in _walk(log, events, tmp_path / "live.duckdb", [*range(5, 100, 5)]):
        _assert_agrees(cut, state, engine)


def test_an_agent_who_lets_an_offer_lapse(tmp_path: Path) -> None:
    engine = Engine(LAPSE_POLICY)
    batches = []
    for seconds, (cls, fields) in LAPSE:
        event = cls(tenant=TENANT, ts=T0 + round(seconds * 1000), **fields)
        batches.append([event, *engine.apply(event)])
    log = write_log(tmp_path / "lapse.olog", batches)
    with FileLog(log, readonly=True) as flog:
        project(flog, tmp_path / "lapse.duckdb", LAPSE_POLICY)
    con = connect_readonly(tmp_path / "lapse.duckdb")
    state = live_state(con, LAPSE_POLICY)
    con.close()
    assert _queue_figures(state) == dict(engine_queues(engine))
    assert _agent_figures(state) == engine_agents(engine)
    bob, cy = state.agents
    assert (bob.status, bob.not_responding, bob.conversations) == ("not_responding", True, ())
    assert bob.since == dt.datetime.fromtimestamp((T0 + 15_000) / 1000, UTC)
    assert (cy.status, cy.conversations, cy.legs, cy.units_used) == ("available", ("d1",), 1, 100)
    (q,) = state.queues
    assert (q.waiting, q.offered, q.handling, q.oldest_wait_s) == (1, 1, 0, 15.0)
    assert q.sla_state == "ok"  # 15 s < 20 s, and nothing measured yet


# --- figures known by hand -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def morning_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The hand-built voice morning, projected (short abandons: under 5 s)."""
    tmp = tmp_path_factory.mktemp("morning")
    batches = scripted_batches(MORNING_POLICY, MORNING)
    assert not [d for b in batches for d in b[1:] if isinstance(d, ev.EventRejected)]
    log = write_log(tmp / "morning.olog", batches)
    db = tmp / "morning.duckdb"
    with FileLog(log, readonly=True) as flog:
        project(flog, db, MORNING_POLICY, short_abandon_s=5)
    return db


@pytest.fixture(scope="module")
def morning_con(morning_db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect_readonly(morning_db)
    yield con
    con.close()


@pytest.fixture(scope="module")
def morning(morning_con: duckdb.DuckDBPyConnection) -> LiveState:
    return live_state(morning_con, MORNING_POLICY)


def test_the_morning_queue_now(morning: LiveState) -> None:
    assert morning.as_of == AS_OF
    (q,) = morning.queues
    assert (q.tenant, q.queue, q.channel, q.sla_target_s) == (TENANT, "q", "voice", 20.0)
    # c7 and c8 wait (c7 for 5 minutes), nobody offered (auto), ann on c6
    assert (q.waiting, q.oldest_wait_s, q.offered, q.handling) == (2, 300.0, 0, 1)
    # today: c1..c8 and c10; answered c1 c3 c4 c6; abandoned c2 c10 (c5 is short)
    assert (q.contacts_today, q.answered_today, q.abandoned_today) == (9, 4, 2)
    assert q.abandon_rate_today == pytest.approx(2 / 8)
    # measured today: c1 c3 c4 c6 met; c2 c10 abandoned, c7 waiting past 20 s: not met
    assert q.service_level_today == pytest.approx(4 / 7)
    # since 09:00: c3 c4 c6 met, c10 c7 not (c5 short, c8 within target)
    assert q.service_level_60m == pytest.approx(3 / 5)
    # since 09:45: c6 met, c10 c7 not
    assert q.service_level_15m == pytest.approx(1 / 3)
    assert (q.abandoned_15m, q.abandoned_60m) == (1, 1)
    assert q.sla_state == "breach"  # c7 waited 300 s > 20 s (and 33 % < 80 %)


def test_the_morning_expected_wait_reads_the_queues_load(morning: LiveState) -> None:
    # 2 ahead; ann (assigned at 09:20 and 09:50, available); handles that ended since
    # 09:00: c3 (60 s) and c4 (300 s); since 09:45: c6 answered, c10 abandoned
    load = QueueLoad(ahead=2, agents=1, mean_handle_s=180.0, departures=2, window_s=900.0)
    assert morning.queues[0].ewt_s == estimate_wait(load)


def test_the_morning_agent_breaches_and_levels(morning: LiveState) -> None:
    (ann,) = morning.agents
    assert (ann.tenant, ann.agent_id, ann.name, ann.kind) == (TENANT, "ann", "Ann", "human")
    assert (ann.status, ann.not_responding) == ("available", False)
    assert ann.since == dt.datetime(2026, 1, 1, 8, tzinfo=UTC)
    assert ann.in_status_s == 7200.0
    assert (ann.conversations, ann.legs, ann.units_used, ann.units_budget) == (
        ("c6",), 1, 100, 100,
    )  # fmt: skip
    # the SLA breaches of the last hour, newest first: c7 (still waiting), c10 (abandoned
    # after 60 s); c2 breached at 08:00:30, long before
    assert [(b.conversation_id, b.at, b.waited_s) for b in morning.breaches] == [
        ("c7", dt.datetime(2026, 1, 1, 9, 55, 20, tzinfo=UTC), 300.0),
        ("c10", dt.datetime(2026, 1, 1, 9, 52, 20, tzinfo=UTC), 60.0),
    ]
    assert {(b.channel, b.queue) for b in morning.breaches} == {("voice", "q")}
    levels = [(v.interval_start.time(), v.contacts, v.service_level) for v in morning.levels]
    assert levels == [
        (dt.time(8, 0), 2, 0.5),
        (dt.time(9, 0), 1, 1.0),
        (dt.time(9, 15), 2, 1.0),
        (dt.time(9, 45), 4, pytest.approx(1 / 3)),
    ]


def test_sla_state_follows_the_goal(morning_con: duckdb.DuckDBPyConnection) -> None:
    # nobody waits (the queue filter on another channel): only the service level speaks
    assert live_state(morning_con, MORNING_POLICY, goal=0.3).queues[0].sla_state == "breach"
    quiet = live_state(morning_con, MORNING_POLICY, channel="email")
    assert quiet.queues == () and quiet.breaches == () and quiet.levels == ()


def test_one_snapshot_and_no_projection(
    morning_con: duckdb.DuckDBPyConnection, morning: LiveState
) -> None:
    morning_con.execute("BEGIN TRANSACTION")  # the caller's transaction is left alone
    try:
        assert live_state(morning_con, MORNING_POLICY) == morning
        assert morning_con.execute("SELECT count(*) FROM legs").fetchone() == (9,)
    finally:
        morning_con.execute("ROLLBACK")
    empty = duckdb.connect()
    empty.execute(TABLES_SQL)
    with pytest.raises(ProjectionError, match="no projection state"):
        live_state(empty, MORNING_POLICY)


# --- filters and JSON ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def midday_db(
    small: tuple[MemoryLog, list[ev.Event]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    log, events = small
    db = tmp_path_factory.mktemp("midday") / "midday.duckdb"
    with Projector(db, small_policy()) as projector:
        projector.project(log, limit=len(events) * 2 // 3)
    return db


def test_filters_narrow_without_changing_a_figure(midday_db: Path) -> None:
    con = connect_readonly(midday_db)
    try:
        policy = small_policy()
        whole = live_state(con, policy)
        keys = {(q.queue, q.channel) for q in whole.queues}
        assert {"sales", "backoffice"} <= {q for q, _ in keys}
        assert {"voice", "email", "whatsapp"} <= {c for _, c in keys}
        assert live_state(con, policy, tenant="small") == whole
        assert live_state(con, policy, tenant="nobody") == LiveState(whole.as_of, (), (), (), ())
        for queue in ("sales", "backoffice"):
            part = live_state(con, policy, queue=queue)
            assert part.queues == tuple(q for q in whole.queues if q.queue == queue)
            assert part.breaches == tuple(b for b in whole.breaches if b.queue == queue)
            assert set(part.agents) < set(whole.agents)
            assert sum(v.contacts for v in part.levels) == sum(
                q.contacts_today for q in part.queues
            )
        for channel in ("voice", "email", "whatsapp"):
            part = live_state(con, policy, channel=channel)
            assert part.queues == tuple(q for q in whole.queues if q.channel == channel)
            assert part.breaches == tuple(b for b in whole.breaches if b.channel == channel)
            assert part.levels == tuple(v for v in whole.levels if v.channel == channel)
        both = live_state(con, policy, queue="sales", channel="voice")
        assert both.queues == tuple(
            q for q in whole.queues if (q.queue, q.channel) == ("sales", "voice")
        )
        # a queue's agents: those who could serve it, and whoever holds its work now
        sales = {a.agent_id for a in live_state(con, policy, queue="sales").agents}
        assert "sales-0001" in sales and "tech-0001" not in sales and "bot-0001" not in sales
        voice = {a.agent_id for a in both.agents}
        assert "sales-0001" in voice and "backoffice-0001" not in voice  # no calls for them
    finally:
        con.close()


def test_everything_is_in_a_stable_order(midday_db: Path) -> None:
    state = _live(midday_db)
    assert list(state.queues) == sorted(state.queues, key=lambda q: (q.tenant, q.queue, q.channel))
    assert list(state.agents) == sorted(state.agents, key=lambda a: (a.tenant, a.agent_id))
    assert [b.at for b in state.breaches] == sorted((b.at for b in state.breaches), reverse=True)
    assert list(state.levels) == sorted(
        state.levels, key=lambda v: (v.tenant, v.channel, v.interval_start)
    )
    assert _live(midday_db) == state


def test_to_json_round_trips_through_json(midday_db: Path, morning: LiveState) -> None:
    for state in (_live(midday_db), morning):
        data = state.to_json()
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert dt.datetime.fromisoformat(data["as_of"]) == state.as_of
        assert [q["queue"] for q in data["queues"]] == [q.queue for q in state.queues]
        assert data["queues"][0].keys() == QueueNow.__dataclass_fields__.keys()
        for a, row in zip(state.agents, data["agents"], strict=True):
            assert row["conversations"] == list(a.conversations)
            assert dt.datetime.fromisoformat(row["since"]) == a.since
