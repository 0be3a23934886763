"""Comparing two projection databases (adapters/compare.py).

A is the scripted log of ``tests.support.projection`` under its policy. B has the same
arrivals under a policy whose sales web chats must be answered within 10 s instead of
30 s, and ann accepts the first chat (c1) at 27 s instead of 22 s: c1 waits 17 s, over
B's target. Everything else is the same, so the differences are computed by hand below.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import Projector, compare, format_comparison, project
from omniroute.engine import Engine, parse_policy
from omniroute.engine import events as ev
from tests.support.projection import POLICY, POLICY_TOML, SCRIPT, T0, TENANT, write_log

POLICY_B = parse_policy(POLICY_TOML.replace("webchat = 30,", "webchat = 10,"))
SCRIPT_B = [(27 if (s, e[1].get("conversation_id")) == (22, "c1") else s, e) for s, e in SCRIPT]


def _project(path: Path, script: list[tuple[float, tuple[Any, ...]]], policy: Any) -> Path:
    engine = Engine(policy)
    batches = []
    for seconds, (cls, fields) in script:
        event = cls(tenant=TENANT, ts=T0 + round(seconds * 1000), **fields)
        batches.append([event, *engine.apply(event)])
    assert not [d for b in batches for d in b[1:] if isinstance(d, ev.EventRejected)]
    log = write_log(path.with_suffix(".olog"), batches)
    with FileLog(log, readonly=True) as flog:
        project(flog, path, policy, short_abandon_s=5)
    return path


@pytest.fixture(scope="module")
def dbs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("compare")
    return _project(tmp / "a.duckdb", SCRIPT, POLICY), _project(tmp / "b.duckdb", SCRIPT_B,
                                                                 POLICY_B)  # fmt: skip


# ann's busy time: 22-155 s (c1, c4), 230-305 (c5), 405-420 (c6), 445-465 (c9), 610-705 (c7)
# = 338 s in A, 5 s less in B; logged in 0-90,000 s (the projection's clock). bob: 77 s
# busy of 100 s; eve: 100 s of 7,200 s. Nearest-rank percentiles of the three.
ANN_A, ANN_B, BOB, EVE = 338 / 90_000, 333 / 90_000, 77 / 100, 100 / 7_200


def test_each_side_has_the_hand_computed_figures(dbs: tuple[Path, Path]) -> None:
    c = compare(*dbs, labels=("policy A", "policy B"))
    a, b = c.a, c.b
    assert (a.label, b.label, a.tenant, b.tenant) == ("policy A", "policy B", "acme", "acme")
    assert c.notes == ()
    # 10 contacts (9 conversations + c8, Maria's WhatsApp joining c7, served at once by
    # ann); c3 is a short abandon, so 9 measured; A misses c2 (abandoned), c4 (25 s)
    assert (a.contacts, a.answered, a.measured, a.met, a.abandoned) == (10, 8, 9, 7, 1)
    assert (b.contacts, b.answered, b.measured, b.met, b.abandoned) == (10, 8, 9, 6, 1)
    assert (a.service_level, b.service_level) == (7 / 9, 6 / 9)
    assert a.abandon_rate == b.abandon_rate == 1 / 9
    assert (a.not_met, b.not_met) == (2, 3)
    # real-time waits: A 5 (c6), 12 (c1), 25 (c4), 30 (c5); B has 17 for c1's 12
    assert (a.p50_wait_s, a.p90_wait_s, a.p99_wait_s) == (12.0, 30.0, 30.0)
    assert (b.p50_wait_s, b.p90_wait_s, b.p99_wait_s) == (17.0, 30.0, 30.0)
    # first replies (messaging, email): 0 (c8), 5 (c9), 10 (c7), 82000 (c10)
    assert (a.p50_first_reply_s, a.p90_first_reply_s) == (5.0, 82_000.0)
    assert b.p99_first_reply_s == 82_000.0
    occ = a.occupancy
    assert occ.agents == 3
    assert occ.mean == pytest.approx((ANN_A + BOB + EVE) / 3)
    assert (occ.min, occ.p10, occ.p50, occ.p90, occ.max) == pytest.approx(
        (ANN_A, ANN_A, EVE, BOB, BOB)
    )
    assert occ.overall == pytest.approx((338 + 77 + 100) / (90_000 + 100 + 7_200))
    assert b.occupancy.min == pytest.approx(ANN_B)
    assert list(a.channels) == ["voice", "webchat", "whatsapp", "messenger", "email"]
    assert a.channels["voice"].service_level == pytest.approx(1 / 3)
    assert (a.channels["webchat"].service_level, b.channels["webchat"].service_level) == (1, 0.5)
    assert (a.channels["webchat"].not_met, b.channels["webchat"].not_met) == (0, 1)
    assert (a.channels["webchat"].max_wait_s, b.channels["webchat"].max_wait_s) == (30.0, 30.0)
    email = a.channels["email"]
    assert (email.first_reply, email.max_wait_s, email.service_level) == (True, 82_000.0, 1.0)
    assert a.channels["voice"].first_reply is False


def test_the_difference_is_b_minus_a(dbs: tuple[Path, Path]) -> None:
    d = compare(*dbs).difference
    assert (d["contacts"], d["met"], d["abandoned"]) == (0, -1, 0)
    assert d["service_level"] == pytest.approx(-1 / 9)
    assert (d["p50_wait_s"], d["p90_wait_s"], d["p50_first_reply_s"]) == (5.0, 0.0, 0.0)
    assert (d["not_met"], d["channels"]["webchat"]["not_met"]) == (1, 1)
    assert d["channels"]["webchat"]["first_reply"] is None  # not a number
    assert d["occupancy"]["mean"] == pytest.approx((ANN_B - ANN_A) / 3)
    assert d["occupancy"]["min"] == pytest.approx(ANN_B - ANN_A)
    assert d["occupancy"]["agents"] == 0
    assert d["channels"]["webchat"]["service_level"] == pytest.approx(-0.5)
    assert d["channels"]["voice"]["service_level"] == 0.0


def test_the_dict_form_is_json(dbs: tuple[Path, Path]) -> None:
    data = json.loads(json.dumps(compare(*dbs, labels=("A", "B")).to_dict()))
    assert set(data) == {"a", "b", "difference", "notes"}
    assert (data["a"]["label"], data["a"]["service_level"], data["b"]["met"]) == ("A", 7 / 9, 6)
    assert data["a"]["channels"]["webchat"] == {
        "contacts": 2, "measured": 2, "not_met": 0, "service_level": 1, "max_wait_s": 30.0,
        "first_reply": False,
    }  # fmt: skip
    assert data["b"]["channels"]["email"]["first_reply"] is True
    assert data["difference"]["channels"]["webchat"]["not_met"] == 1
    assert data["difference"]["service_level"] == pytest.approx(-1 / 9)


def test_the_table_shows_both_sides_and_the_difference(dbs: tuple[Path, Path]) -> None:
    lines = format_comparison(compare(*dbs, labels=("A", "B")))
    assert lines[2].split() == ["A", "B", "B", "-", "A"]  # the header
    rows = {p[0]: p[1:] for p in (re.split(r"\s{2,}", line.strip()) for line in lines[4:])}
    assert rows["service level"] == ["77.8%", "66.7%", "-11.1 pp"]
    assert rows["p50 wait"] == ["12s", "17s", "+5.0s"]
    assert rows["p90 wait"] == ["30s", "30s", "+0.0s"]
    assert rows["p90 first reply"] == ["22h46m", "22h46m", "+0.0s"]
    assert rows["contacts"] == ["10", "10", "+0"]
    assert rows["in SLA"] == ["7", "6", "-1"]
    assert rows["not met (SLA breaches)"] == ["2", "3", "+1"]
    assert rows["webchat contacts"] == ["2", "2", "+0"]
    assert rows["webchat not met"] == ["0", "1", "+1"]
    assert rows["webchat max wait"] == ["30s", "30s", "+0.0s"]
    assert rows["webchat service level"] == ["100.0%", "50.0%", "-50.0 pp"]
    assert rows["email max first reply"] == ["22h46m", "22h46m", "+0.0s"]
    assert rows["email first-reply SL"] == ["100.0%", "100.0%", "+0.0 pp"]
    assert rows["agents logged in"] == ["3", "3", "+0"]
    assert "occupancy of human agents" in lines


def test_an_empty_database_compares_with_notes(dbs: tuple[Path, Path], tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    with Projector(empty):
        pass
    c = compare(dbs[0], empty)
    assert (c.b.tenant, c.b.contacts, c.b.service_level, c.b.occupancy.agents) == ("", 0, None, 0)
    assert c.difference["contacts"] == -10
    assert c.difference["service_level"] is None
    assert len(c.notes) == 2  # the tenants and the contacts differ
    lines = format_comparison(c)
    assert any(line.startswith("note: the contacts differ (10 and 0)") for line in lines)
    json.dumps(c.to_dict())
