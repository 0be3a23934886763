"""``omniroute simulate`` and ``omniroute demo``, in process, on real files and DuckDB."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from omniroute.adapters.cli import main
from omniroute.adapters.cli.common import policy_sidecar
from omniroute.adapters.filelog import FileLog
from omniroute.adapters.reporting import PLOT_FILES
from omniroute.engine import events as ev
from omniroute.engine.policy import load_policy

PNG = b"\x89PNG\r\n\x1a\n"


def test_simulate_reports_plots_and_leaves_a_log_that_replays(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log, plots = tmp_path / "small.olog", tmp_path / "plots"
    assert main(["simulate", "small", "--log", str(log), "--plots", str(plots)]) == 0
    out = capsys.readouterr().out
    assert "scenario 'small'" in out and "policy: small's policy (balanced)" in out
    assert " conversations + " in out and "rejected inputs 0" in out
    assert "totals reconcile: the report's " in out and " rejoins, as simulated" in out
    table = out.split("service level by channel", 1)[1]
    for channel in ev.CHANNELS:
        assert f"\n{channel} " in table, channel
    assert f"log: {log}" in out
    assert sorted(p.name for p in plots.iterdir()) == sorted(PLOT_FILES)
    assert all((plots / name).read_bytes().startswith(PNG) for name in PLOT_FILES)
    assert policy_sidecar(log).exists() and log.with_suffix(".duckdb").exists()
    assert main(["replay", str(log)]) == 0
    assert "replay OK" in capsys.readouterr().out


def test_simulate_json_gives_the_run_and_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "s.olog"
    assert main(["simulate", "small", "--log", str(log), "--seed", "4", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    run = figures["run"]
    assert run["seed"] == 4 and run["scenario"] == "small"
    with FileLog(log, readonly=True) as f:
        events = [e for _, e in f.read()]
    assert run["events"] == len(events)
    arrived = sum(isinstance(e, ev.ConversationArrived) for e in events)
    assert run["interactions"] == arrived
    rows = figures["service_level"]
    assert sum(r["contacts"] for r in rows if r["channel"] != "all") > 0


def test_compare_runs_the_same_arrivals_under_two_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["simulate", "small", "--compare", "longest_idle", "balanced", "--dir", str(tmp_path)]
    assert main([*args, "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    a, b = figures["runs"]
    assert a["interactions"] > 1000 and a["seed"] == b["seed"]
    comparison = figures["comparison"]
    assert [comparison[s]["label"] for s in "ab"] == ["longest_idle", "balanced"]
    # the same planned arrivals; follow-up tasks differ with what each policy answered.
    # The report counts every contact (a rejoin too): each side's simulated contacts
    contacts = [comparison[s]["contacts"] for s in "ab"]
    assert abs(contacts[0] - contacts[1]) <= a["follow_ups"] + b["follow_ups"]
    assert contacts == [a["interactions"], b["interactions"]]
    assert comparison["difference"]["service_level"] != 0
    assert main([*args, "--force"]) == 0
    out = capsys.readouterr().out
    assert "under two policies" in out and "longest_idle" in out and "balanced" in out


def test_a_policy_spec_changes_settings_of_a_preset_or_the_scenarios_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = "longest_idle,urgency=arrival,max_per_pass=1000,profiles.default.classes.email.max=3"
    log = tmp_path / "s.olog"
    assert main(["simulate", "blend", "--policy", spec, "--log", str(log), "--json"]) == 0
    capsys.readouterr()
    policy = load_policy(policy_sidecar(log))
    assert (policy.preset, policy.urgency, policy.max_per_pass) == ("longest_idle", "arrival", 1000)
    assert policy.profiles["default"].classes["email"].max == 3
    assert policy.queues["email"].sla_s == {"email": 7200}  # the rest is blend's policy
    # a file named alone is found next to the scenario, and is then used as it is
    args = ["simulate", "targets", "--compare", "urgency=arrival", "targets.policy.toml"]
    assert main([*args, "--dir", str(tmp_path), "--json"]) == 0
    labels = json.loads(capsys.readouterr().out)["comparison"]
    assert [labels[s]["label"] for s in "ab"] == ["urgency=arrival", "targets.policy.toml"]
    sides = [load_policy(policy_sidecar(tmp_path / f"targets-{s}.olog")) for s in "AB"]
    assert [p.urgency for p in sides] == ["arrival", "deadline"]


def test_the_demo_is_a_simulated_day_with_report_customer_360_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    head = out.split("service level by channel", 1)[0]
    contacts = int(head.split(" contacts = ", 1)[0].rsplit(" ", 1)[1].replace(",", ""))
    assert 25_000 <= contacts <= 35_000
    assert "rejected inputs 0" in head
    assert "totals reconcile: the report's " in out and " rejoins, as simulated" in out
    # a customer with two live legs, found in the log: a call and the email sent during it
    section = out.split("a customer with two live legs at once (read back from the log)\n", 1)[1]
    line = section.split("\n", 1)[0]
    customer, legs = line.removeprefix("  customer ").split(": ", 1)
    assert customer.startswith("crm-") and legs.startswith("voice + ")
    assert " live, agent " in legs and "(conversation " in legs
    assert f"\n  customer {customer} " in section  # their customer-360 follows
    assert "customer-360 of customers who switched channel" in out
    section = out.split("customer-360 of customers who switched channel", 1)[1]
    assert section.count("\n  customer crm-") == 3
    assert section.count("(channels: ") == 3
    assert f"plots written to {tmp_path / 'plots'}" in out
    for name in PLOT_FILES:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG)
    assert f"omniroute replay {tmp_path / 'demo.olog'}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "nowhere"], "small"),
        (["simulate", "small", "--policy", "no/such/file.toml"], "file.toml"),
        (["demo", "--policy", "nopreset"], "nopreset"),
        (["simulate", "small", "--policy", "urgency=soon"], "urgency"),
        (["simulate", "small", "--policy", "max_per_pass=0"], "max_per_pass"),
        (["simulate", "small", "--policy", "balanced,longest_idle"], "one policy"),
    ],
)
def test_bad_input_is_an_error_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_a_policy_without_the_scenarios_queues_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.toml"
    bare.write_text('[queues.default]\noffer_mode = "auto"\n')
    assert main(["simulate", "small", "--policy", str(bare), "--log", str(tmp_path / "x")]) == 2
    assert "no queue 'sales'" in capsys.readouterr().err


def test_an_existing_log_is_kept_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "mine.olog"
    log.write_bytes(b"precious")
    assert main(["simulate", "small", "--log", str(log)]) == 2
    assert "--force" in capsys.readouterr().err
    assert log.read_bytes() == b"precious"


def test_simulate_without_log_leaves_no_temporary_folder_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    db = tmp_path / "kept.duckdb"
    assert main(["simulate", "small", "--seed", "2", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "log: not kept (pass --log PATH to keep it" in out
    assert f"reporting database: {db}" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.duckdb"]
    assert main(["simulate", "small", "--seed", "2", "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["log"] is None and figures["db"] is None and figures["service_level"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.duckdb"]
