"""``omniroute project | report | sql | export | customer`` and the demo's closing report,
in process, on the scripted log of ``test_projection``."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import duckdb
import pytest

from omniroute.adapters.cli import main
from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import format_table, service_report
from tests.support.projection import POLICY, POLICY_TOML, T0, TENANT, scripted_batches, write_log


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("cli")
    log = write_log(tmp / "script.olog", scripted_batches())
    (tmp / "policy.toml").write_text(POLICY_TOML)
    path = tmp / "script.duckdb"
    assert main(["project", str(log), "--db", str(path), "--policy", str(tmp / "policy.toml")]) == 0
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_policy_file_is_the_tests_policy(db: Path) -> None:
    from omniroute.engine.policy import load_policy

    assert load_policy(db.with_name("policy.toml")) == POLICY


def test_project_is_incremental(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batches = scripted_batches()
    log = write_log(tmp_path / "a.olog", batches[:20])
    target = tmp_path / "a.duckdb"
    code, out, _ = run(capsys, "project", str(log), "--db", str(target))
    assert code == 0 and "projected" in out and "positions 0.." in out
    code, out, _ = run(capsys, "project", str(log), "--db", str(target))
    assert code == 0 and "up to date" in out
    with FileLog(log, fsync="never") as flog:
        start = flog.end()
        for batch in batches[20:]:
            flog.append(batch)
    code, out, _ = run(capsys, "project", str(log), "--db", str(target))
    assert code == 0 and f"positions {start}.." in out
    code, out, err = run(capsys, "project", str(tmp_path / "missing.olog"), "--db", str(target))
    assert code == 2 and "error" in err


def test_report_prints_an_aligned_table(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "service level by channel (tenant acme)"
    header = next(line for line in lines if line.startswith("channel"))
    for title in ("contacts", "answered", "unreplied", "in SLA", "not met", "SL", "abandoned",
                  "short ab.", "p50 wait", "p90 wait", "p99 wait", "p50 first reply",
                  "p99 first reply", "p50 reply", "p99 reply", "target"):  # fmt: skip
        assert title in header
    dashes = next(i for i, line in enumerate(lines) if line.startswith("---"))
    body = lines[dashes + 1 : lines.index("", dashes)]
    rows = {line.split()[0]: line for line in body}
    assert list(rows) == ["voice", "webchat", "whatsapp", "messenger", "email", "all"]
    voice = rows["voice"].split()
    # contacts = answered + unreplied + abandoned + short + bot only + unanswered + open;
    # rejoins, in SLA, not met, SL, ab. rate, callbacks, p50, p90, p99 wait, first reply
    # and reply (a call has none), target
    assert voice == ["voice", "4", "2", "0", "1", "1", "0", "0", "0", "0", "1", "2", "33.3%",
                     "33.3%", "1", "5.0s", "25s", "25s", *["-"] * 6, "20s"]  # fmt: skip
    # an email: its first reply (the next morning), its wait none
    assert rows["email"].split()[15:22] == ["-", "-", "-", "22h46m", "22h46m", "22h46m", "22h46m"]
    # 10 contacts = 9 conversations + 1 rejoin (c8); in SLA 7 of 9 measured
    assert rows["all"].split()[1:13] == ["10", "8", "0", "1", "1", "0", "0", "0", "1", "7", "2",
                                         "77.8%"]  # fmt: skip
    assert "10 contacts = 9 conversations + 1 rejoins" in out
    assert rows["email"].split()[-1] == "24h00m"
    assert len({len(line) for line in [header, *body]}) == 1  # aligned


def test_report_csv_and_json(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "queue", "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    sales = next(r for r in rows if r["queue"] == "sales")
    assert sales["tenant"] == TENANT and sales["contacts"] == "8"  # c8 joined c7
    assert float(sales["p90_wait_s"]) == 25.0
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "channel,queue",
                       "--format", "json")  # fmt: skip
    assert code == 0
    data = json.loads(out)
    support = next(r for r in data if r["channel"] == "webchat" and r["queue"] == "support")
    assert support["service_level"] == 1.0 and support["sla_target_s"] == 60.0
    assert next(r for r in data if r["channel"] == "all")["measured"] == 9


def test_report_by_interval_since_until(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "interval", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert [r["interval"] for r in data] == ["2026-01-01T08:00:00.000Z", "all"]
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "interval",
                       "--interval-minutes", "5", "--format", "json")  # fmt: skip
    assert [r["interval"][11:16] for r in json.loads(out)[:3]] == ["08:00", "08:05", "08:10"]
    # c10 (the email) is the only contact after 08:12
    code, out, _ = run(capsys, "report", "--db", str(db), "--since", "2026-01-01T08:12Z",
                       "--format", "json")  # fmt: skip
    assert code == 0 and [(r["channel"], r["contacts"]) for r in json.loads(out)] == [
        ("email", 1),
        ("all", 1),
    ]
    code, out, _ = run(capsys, "report", "--db", str(db), "--until", str(T0 + 60_000),
                       "--format", "json")  # fmt: skip
    assert json.loads(out)[-1]["contacts"] == 3  # c1, c2, c3
    code, _, err = run(capsys, "report", "--db", str(db), "--since", "2026-01-02",
                       "--until", "2026-01-01")  # fmt: skip
    assert code == 2 and "--until must be after --since" in err


def test_report_by_agent(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "agent", "--format", "json")
    assert code == 0
    agents = {r["agent_id"]: r for r in json.loads(out)}
    assert set(agents) == {"ann", "bob", "eve", "bot"}
    bob = agents["bob"]
    assert (bob["offers"], bob["assignments"], bob["answered"]) == (1, 1, 0)
    assert (bob["staffed_s"], bob["busy_s"], bob["occupancy"]) == (100.0, 77.0, 0.77)
    assert agents["ann"]["answered"] == 6
    code, out, _ = run(capsys, "report", "--db", str(db), "--by", "agent")
    assert code == 0 and "occupancy" in out and "ann" in out


def test_report_usage_errors(db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "--db", str(db), "--by", "weekday"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        main(["report", "--db", str(db), "--by", "agent,channel"])
    with pytest.raises(SystemExit):
        main(["report", "--db", str(db), "--since", "yesterday"])
    code, _, err = run(capsys, "report", "--db", str(tmp_path / "none.duckdb"))
    assert code == 2 and "no such database" in err


def test_sql_reads(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sql",
        "--db",
        str(db),
        "SELECT conversation_id, wait_s FROM interactions WHERE callback",
    )
    assert code == 0 and out.splitlines()[0].split() == ["conversation_id", "wait_s"]
    assert out.splitlines()[2].split() == ["c4", "25.00"]
    code, out, _ = run(
        capsys,
        "sql",
        "--db",
        str(db),
        "--format",
        "json",
        "SELECT count(*) AS n FROM interactions; SELECT 1 AS one",
    )
    assert code == 0 and out.splitlines() == ['[{"n": 9}]', '[{"one": 1}]']


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO interactions (tenant, conversation_id) VALUES ('x', 'y')",
        "DELETE FROM interactions",
        "UPDATE interactions SET met = true",
        "DROP TABLE segments",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; DELETE FROM interactions",
        "COPY interactions TO 'stolen.csv'",
        "ATTACH 'other.duckdb'",
        "CHECKPOINT",
    ],
)
def test_sql_refuses_writes(
    db: Path, statement: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "sql", "--db", str(db), statement)
    assert code == 2 and out == ""
    assert "refused" in err and "read-only" in err
    assert list(tmp_path.iterdir()) == []
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM interactions").fetchone() == (9,)
        assert con.execute("SELECT count(*) FROM segments").fetchone() == (34,)


def test_sql_errors_are_clear(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "sql", "--db", str(db), "SELECT nope FROM interactions")
    assert code == 2 and "SQL error" in err and "nope" in err
    code, _, err = run(capsys, "sql", "--db", str(db), "SELECT * FROM read_csv('/etc/passwd')")
    assert code == 2 and "error" in err


def test_export_parquet_by_tenant_and_day(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "parquet"
    code, out, _ = run(capsys, "export", "--db", str(db), "--to", str(out_dir))
    assert code == 0 and "interactions: 9 rows" in out
    days = sorted(p.name for p in (out_dir / "interactions" / f"tenant={TENANT}").iterdir())
    assert days == ["day=2026-01-01"]
    seg_days = sorted(p.name for p in (out_dir / "segments" / f"tenant={TENANT}").iterdir())
    assert seg_days == ["day=2026-01-01", "day=2026-01-02"]  # eve answers the email on day 2
    with duckdb.connect() as con:
        n = con.execute(
            "SELECT count(*), count(DISTINCT day) FROM "
            f"read_parquet('{out_dir}/segments/**/*.parquet', hive_partitioning = true)"
        ).fetchone()
        assert n == (34, 2)
    # again: the same files are replaced, not duplicated
    assert main(["export", "--db", str(db), "--to", str(out_dir)]) == 0
    capsys.readouterr()
    with duckdb.connect() as con:
        n = con.execute(
            f"SELECT count(*) FROM read_parquet('{out_dir}/interactions/**/*.parquet')"
        ).fetchone()
        assert n == (9,)


def test_customer_360_command(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "customer", "--db", str(db), "crm-maria")
    assert code == 0
    assert out.splitlines()[0] == "customer crm-maria (tenant acme, crm)"
    assert "contacts: messenger @maria; whatsapp +34 600 111 222" in out
    assert "merged from: contact:messenger:@maria, contact:whatsapp:+34 600 111 222" in out
    assert "last agent: ann" in out and "open conversation: none" in out
    body = out.split("conversations, in order:", 1)[1]
    assert body.index("c9") < body.index("c7")
    assert "messenger,whatsapp" in body
    code, out, _ = run(capsys, "customer", "--db", str(db), "+34 600 111 222", "--format", "json")
    view = json.loads(out)
    assert view["customer_id"] == "crm-maria" and view["interactions"] == 2
    assert view["conversations"][1]["first_contact_at"] == "2026-01-01T08:10:00.000Z"
    code, _, err = run(capsys, "customer", "--db", str(db), "nobody")
    assert code == 2 and "no customer" in err


def test_format_table_keeps_tenants_apart_and_hides_wide_columns(db: Path) -> None:
    from omniroute.adapters.reporting import connect_readonly

    with connect_readonly(db) as con:
        table = service_report(con, by=("channel",))
    lines = format_table(table)
    assert "measured" not in lines[2] and "mean wait" not in lines[2]
    wide = format_table(table, wide=True)
    assert "measured" in wide[2] and "mean wait" in wide[2]
    table.rows.append(("other", "voice", *table.rows[0][2:]))
    assert format_table(table)[2].split()[0] == "tenant"


def test_a_log_of_two_tenants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batches = scripted_batches()
    other = [[type(e)(**{**{f: getattr(e, f) for f in e.__struct_fields__}, "tenant": "zeta"})
              for e in batch] for batch in batches]  # fmt: skip
    merged = [b for pair in zip(batches, other, strict=True) for b in pair]
    log = write_log(tmp_path / "two.olog", merged)
    target = tmp_path / "two.duckdb"
    assert main(["project", str(log), "--db", str(target), "--policy",
                 str(Path(__file__).parent / "no-such.toml")]) == 2  # fmt: skip
    policy = tmp_path / "p.toml"
    policy.write_text(POLICY_TOML)
    assert main(["project", str(log), "--db", str(target), "--policy", str(policy)]) == 0
    capsys.readouterr()
    code, out, _ = run(capsys, "report", "--db", str(target), "--format", "json")
    rows = json.loads(out)
    assert {(r["tenant"], r["channel"]) for r in rows if r["channel"] == "all"} == {
        ("acme", "all"),
        ("zeta", "all"),
    }
    assert all(r["measured"] == 9 for r in rows if r["channel"] == "all")
    code, _, err = run(capsys, "customer", "--db", str(target), "crm-maria")
    assert code == 2 and "several" in err
    code, out, _ = run(capsys, "customer", "--db", str(target), "crm-maria", "--tenant", "zeta")
    assert code == 0 and "tenant zeta" in out
