"""The ``omniroute`` command, in process: demo, replay (plain, via a snapshot, tampered),
validate-policy and --version. The demo log is also checked event by event."""

from __future__ import annotations

import contextlib
import io
import itertools
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

from omniroute.adapters.eventlog import EventLog
from omniroute.adapters.filelog import FileLog
from omniroute.engine import events as ev
from omniroute.engine.cli import main, policy_sidecar
from omniroute.engine.demo import DEMO_POLICY, demo_policy, run_demo
from omniroute.engine.policy import load_policy, parse_policy
from omniroute.engine.replay import replay

T = TypeVar("T")
EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "examples" / "policy.toml"


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
    path = tmp_path_factory.mktemp("demo") / "demo.olog"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["demo", "--log", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def demo_events(demo_log: Path) -> list[ev.Event]:
    return read_events(demo_log)


def of_type(events: Sequence[ev.Event], event_type: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, event_type)]


# --- demo -------------------------------------------------------------------------------------


def test_demo_writes_a_log_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "run.olog"
    assert main(["demo", "--log", str(path), "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert path.stat().st_size > 0
    assert policy_sidecar(path).read_text() == DEMO_POLICY
    for section in (
        "events in the log:",
        "conversations by channel",
        "p50 wait",
        "p90 wait",
        "routing",
        "offers ",
        "declined",
        "timed out",
        "escalations",
        "SLA breaches",
        "rejoins (continuity)",
        "bot hand-offs",
        "transfers",
        "callbacks",
        "abandoned",
        "agents",
        "bot-eva",
        f"log: {path}",
        f"replay it: omniroute replay {path}",
    ):
        assert section in out, section
    table = out.split("conversations by channel", 1)[1].split("routing", 1)[0]
    for channel in ev.CHANNELS:
        assert f"\n  {channel} " in table, channel
    assert "rejected inputs 0" in out


def test_demo_log_covers_every_channel_and_every_scripted_case(
    demo_events: list[ev.Event],
) -> None:
    events = demo_events
    arrived = of_type(events, ev.ConversationArrived)
    assert {a.channel for a in arrived} == set(ev.CHANNELS)
    assert 250 <= len(arrived) <= 450
    assert len(of_type(events, ev.AgentRegistered)) == 21
    assert {a.kind for a in of_type(events, ev.AgentRegistered)} == {"human", "bot"}
    assert of_type(events, ev.EventRejected) == []

    # continuity: Messenger then WhatsApp, linked contacts; the agent keeps the customer
    linked = of_type(events, ev.ContactsLinked)
    assert [c.customer_id for c in linked] == ["crm-maria"]
    rejoins = {r.new_conversation_id: r for r in of_type(events, ev.ConversationRejoined)}
    maria = rejoins["maria-whatsapp"]
    assert maria.conversation_id == "maria-messenger" and maria.agent_id is not None
    assert rejoins["tom-voice"].conversation_id == "tom-webchat"

    # bot first, then a hand-off to a human who is assigned the conversation
    handoffs = of_type(events, ev.HandoffRequested)
    assert handoffs and all(h.agent_id.startswith("bot-") for h in handoffs)
    assigned = of_type(events, ev.ConversationAssigned)
    handed = {h.conversation_id for h in handoffs}
    assert any(a.conversation_id in handed and not a.agent_id.startswith("bot-") for a in assigned)

    transfers = of_type(events, ev.TransferRequested)
    assert {t.mode for t in transfers} == {"cold", "warm"}
    assert of_type(events, ev.CustomerAbandoned)
    assert of_type(events, ev.ConversationEscalated)
    callbacks = of_type(events, ev.CallbackRequested)
    assert any(c.not_before is not None for c in callbacks)
    assert any(c.not_before is None for c in callbacks)
    queued = of_type(events, ev.ConversationQueued)
    assert any(q.reason == "callback" for q in queued)
    assert of_type(events, ev.SlaBreached)
    timeouts = [e for e in of_type(events, ev.OfferExpired) if e.reason == "timeout"]
    assert timeouts
    assert of_type(events, ev.AgentNotResponding)
    assert of_type(events, ev.OfferDeclined)
    assert of_type(events, ev.WrapUpCompleted)
    assert of_type(events, ev.WrapUpExpired)
    statuses = {s.status for s in of_type(events, ev.AgentStatusChanged)}
    assert statuses == {"available", "away", "offline"}
    assert of_type(events, ev.AgentRemoved)
    assert of_type(events, ev.AgentUpdated)
    assert of_type(events, ev.MessageReceived)

    # event time: starts 2026-01-01T08:00Z, never goes back, ticks every second
    inputs = [e for e in events if not ev.is_decision(e)]
    assert inputs[0].ts == 1_767_254_400_000
    assert all(a <= b for a, b in itertools.pairwise(e.ts for e in inputs))
    ticks = [t.ts for t in of_type(events, ev.Tick)]
    assert all(b - a == 1000 for a, b in itertools.pairwise(ticks))
    assert ticks[-1] - ticks[0] >= 2 * 3600 * 1000 - 1000


class RecordingLog(EventLog):
    """An in-memory EventLog that remembers each append call's batch."""

    def __init__(self) -> None:
        self.batches: list[list[ev.Event]] = []
        self.raw: list[bytes] = []

    def append(self, events: Sequence[ev.Event]) -> list[int]:
        first = len(self.raw)
        self.batches.append(list(events))
        self.raw.extend(ev.encode_msgpack(e) for e in events)
        return list(range(first, len(self.raw)))

    def read_raw(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        stop = self._stop(start, limit)
        return iter([(i, self.raw[i]) for i in range(start, stop)])

    def end(self) -> int:
        return len(self.raw)

    def close(self) -> None:
        pass


def test_every_batch_is_one_input_then_its_decisions() -> None:
    log = RecordingLog()
    run = run_demo(log, seed=5)
    assert len(log.batches) == run.inputs == run.batches
    for batch in log.batches:
        assert not ev.is_decision(batch[0])
        assert all(ev.is_decision(e) for e in batch[1:])
    assert sum(len(b) for b in log.batches) == run.inputs + run.decisions
    assert replay(log, demo_policy()).ok


def test_demo_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    def bytes_for(seed: int) -> list[bytes]:
        log = RecordingLog()
        run_demo(log, seed=seed)
        return log.raw

    first = bytes_for(11)
    assert bytes_for(11) == first
    assert bytes_for(12) != first


def test_demo_refuses_to_overwrite_a_log_without_force(
    demo_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "mine.olog"
    shutil.copy(demo_log, path)
    assert main(["demo", "--log", str(path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert path.read_bytes() == demo_log.read_bytes()


def test_demo_runs_with_the_example_policy_and_rejects_one_without_its_queues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "example.olog"
    assert main(["demo", "--log", str(path), "--policy", str(EXAMPLE_POLICY)]) == 0
    assert policy_sidecar(path).read_text() == EXAMPLE_POLICY.read_text()
    bare = tmp_path / "bare.toml"
    bare.write_text('[queues.default]\noffer_mode = "auto"\n')
    capsys.readouterr()
    assert main(["demo", "--log", str(tmp_path / "x.olog"), "--policy", str(bare)]) == 2
    assert "sales" in capsys.readouterr().err


def test_the_example_policy_is_the_policy_the_demo_runs() -> None:
    assert load_policy(EXAMPLE_POLICY) == parse_policy(DEMO_POLICY)


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
            tenant="demo", ts=1_767_270_000_000, conversation_id="c0001", agent_id="a01"
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
        if isinstance(e, ev.ConversationAssigned) and e.agent_id.startswith("a")
    )  # fmt: skip
    other = "a02" if original.agent_id != "a02" else "a03"
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
    other.write_text(DEMO_POLICY.replace('preset = "balanced"', 'preset = "longest_idle"'))
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
    assert "profiles (3):" in out and "queues (5;" in out
    assert "support: " in out and "bot first" in out
    assert out.rstrip().endswith(f"{EXAMPLE_POLICY}: OK")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[queues.sales]\noffer_timout_s = 15\n", "offer_timout_s"),
        ('[queues.sales]\noffer_timeout_s = "soon"\n', "offer_timeout_s"),
        ("prest = 'balanced'\n", "prest"),
        ("preset = 'fastest'\n", "preset"),
        ("[queues.sales]\nskills = { sales = 9 }\n", "queues.sales.skills.sales"),
        ("[queues.sales\n", "TOML"),
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
