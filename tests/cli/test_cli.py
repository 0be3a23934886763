"""The ``omniroute`` command, in process: replay (plain, via a snapshot, tampered) of a
simulated log, validate-policy and --version. ``simulate`` and ``demo``: test_simulate_cli."""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from omniroute.adapters.cli import main
from omniroute.adapters.cli.common import policy_sidecar
from omniroute.adapters.filelog import FileLog
from omniroute.engine import events as ev
from omniroute.engine.policy import policy_toml
from tests.support.simulation import small_policy

T = TypeVar("T")
EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"


def read_events(path: Path) -> list[ev.Event]:
    with FileLog(path, readonly=True) as log:
        return [event for _, event in log.read()]


def batches_by_input(events: Sequence[ev.Event]) -> list[list[ev.Event]]:
    """Regroup a log as [input, *its decisions] batches, as the demo appended it."""
    out: list[list[ev.Event]] = []
    for event in events:
        if ev.is_decision(event):
            out[-1].append(event)
        else:
            out.append([event])
    return out


def write_log(path: Path, batches: Sequence[Sequence[ev.Event]]) -> None:
    with FileLog(path, fsync="never") as log:
        for batch in batches:
            log.append(batch)


@pytest.fixture(scope="module")
def demo_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "small.olog"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["simulate", "small", "--log", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def demo_events(demo_log: Path) -> list[ev.Event]:
    return read_events(demo_log)


def of_type(events: Sequence[ev.Event], event_type: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, event_type)]


# --- replay ---------------------------------------------------------------------------------


def test_replay_of_the_demo_log_passes(
    demo_log: Path, demo_events: list[ev.Event], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(demo_log)]) == 0
    out = capsys.readouterr().out
    n_decisions = sum(1 for e in demo_events if ev.is_decision(e))
    assert f"events read: {len(demo_events)}\n" in out
    assert f"inputs applied: {len(demo_events) - n_decisions}\n" in out
    assert f"decisions matched: {n_decisions}\n" in out
    assert "replay OK:" in out
    assert "found next to the log" in out


@pytest.mark.parametrize("where", ["start", "early", "middle", "late", "end"])
def test_replay_through_a_snapshot_passes(
    demo_log: Path, demo_events: list[ev.Event], where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    n_inputs = sum(1 for e in demo_events if not ev.is_decision(e))
    at = {"start": 0, "early": 317, "middle": n_inputs // 2, "late": n_inputs - 5}.get(
        where, n_inputs
    )
    assert main(["replay", str(demo_log), "--snapshot-at", str(at)]) == 0
    out = capsys.readouterr().out
    assert f"snapshot: after input {at} " in out
    assert "replay OK:" in out and "through the snapshot" in out


def test_replay_snapshot_beyond_the_last_input_is_an_error(
    demo_log: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(demo_log), "--snapshot-at", "10000000"]) == 2
    assert "inputs" in capsys.readouterr().err


def tampered_copy(demo_log: Path, tmp_path: Path, batches: Sequence[Sequence[ev.Event]]) -> Path:
    path = tmp_path / "tampered.olog"
    write_log(path, batches)
    shutil.copy(policy_sidecar(demo_log), policy_sidecar(path))
    return path


def test_replay_detects_an_appended_fake_decision(
    demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "appended.olog"
    shutil.copy(demo_log, path)
    shutil.copy(policy_sidecar(demo_log), policy_sidecar(path))
    with FileLog(path) as log:
        end = log.end()
        fake = ev.ConversationAssigned(
            tenant="small", ts=1_767_700_000_000, conversation_id="c0001", agent_id="a01"
        )
        log.append([fake])
    assert main(["replay", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"replay MISMATCH at log position {end}" in out
    assert "did not make" in out
    assert '"agent_id":"a01"' in out.split("expected:", 1)[1]
    assert "replay OK" not in out


def test_replay_detects_a_decision_given_to_another_agent(
    demo_log: Path, demo_events: list[ev.Event], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    events = list(demo_events)
    i, original = next(
        (i, e) for i, e in enumerate(events)
        if isinstance(e, ev.ConversationAssigned) and e.agent_id.startswith("sales-")
    )  # fmt: skip
    other = "sales-0002" if original.agent_id != "sales-0002" else "sales-0003"
    events[i] = msgspec.structs.replace(original, agent_id=other)
    path = tampered_copy(demo_log, tmp_path, batches_by_input(events))
    assert main(["replay", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"replay MISMATCH at log position {i} " in out
    expected, got = out.split("expected:", 1)[1].split("got:", 1)
    assert f'"agent_id":"{other}"' in expected
    assert f'"agent_id":"{original.agent_id}"' in got


def test_replay_detects_a_missing_decision(
    demo_log: Path, demo_events: list[ev.Event], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    events = list(demo_events)
    i = next(i for i, e in enumerate(events) if isinstance(e, ev.SlaBreached))
    del events[i]
    path = tampered_copy(demo_log, tmp_path, batches_by_input(events))
    assert main(["replay", str(path)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "sla.breached" in out.split("got:", 1)[1]


def test_replay_with_another_policy_fails(
    demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.toml"
    policy = small_policy()
    other.write_text(policy_toml(msgspec.structs.replace(policy, preset="longest_idle")))
    assert main(["replay", str(demo_log), "--policy", str(other)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_replay_of_a_missing_log_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "nope.olog")]) == 2
    assert "nope.olog" in capsys.readouterr().err


# --- validate-policy and --version ------------------------------------------------------------


def test_validate_policy_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate-policy", str(EXAMPLE_POLICY)]) == 0
    out = capsys.readouterr().out
    assert "scoring: preset 'balanced'" in out
    assert "profiles (3):" in out and "queues (6;" in out  # its five and the default one
    assert "support: " in out and "bot first" in out
    assert "warning" not in out
    assert out.rstrip().endswith(f"{EXAMPLE_POLICY}: OK")


def test_validate_policy_prints_a_warning_saying_how_many_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "chatty.toml"
    path.write_text("[profiles.default]\nclasses.chat = { cost = 34, max = 3 }\n[profiles.bot]\n")
    assert main(["validate-policy", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: profiles.default.classes.chat: cost 34 x max 3 = 102 exceeds the budget 100, "
        "so an agent holds at most 2 chat conversation(s), not 3\n"
    ) in out
    assert out.rstrip().endswith(f"{path}: OK (1 warning(s))")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[queues.sales]\noffer_timout_s = 15\n", "offer_timout_s"),
        ('[queues.sales]\noffer_timeout_s = "soon"\n', "offer_timeout_s"),
        ("prest = 'balanced'\n", "prest"),
        ("preset = 'fastest'\n", "preset"),
        ("[queues.sales]\nskills = { sales = 9 }\n", "queues.sales.skills.sales"),
        ("[queues.sales\n", "TOML"),
        ("[queues.sales]\noffer_mode = 'manual'\n", "'manual' is not one of 'auto', 'offer'"),
        ("[queues.sales]\nwrap_up_s = 1e12\n", "wrap_up_s: must be 0 to 2592000 s (30 days)"),
    ],
)
def test_validate_policy_rejects_a_bad_key_and_names_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["validate-policy", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert key in captured.err
    assert str(path) in captured.err


def test_validate_policy_of_a_missing_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate-policy", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("omniroute ")


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err
