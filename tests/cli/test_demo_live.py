"""``omniroute demo --live``: the pacer copies a log step by step (an input with its
decisions) at a chosen speed of its timestamps, ending equal to the source byte for byte;
and the command serves the wallboard over the live log until SIGTERM (exit 0)."""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from omniroute.adapters.cli.live import Pacer, clock_minutes, steps
from omniroute.adapters.filelog import FileLog
from omniroute.engine import Engine
from omniroute.engine.events import Event, is_decision
from omniroute.engine.memorylog import MemoryLog
from tests.support.service import workload

HOUR = 3_600_000


def _steps(n: int = 400, ts0: int = 1_000) -> list[list[Event]]:
    """A small contact centre's steps: each input with the decisions it caused."""
    engine = Engine()
    return [[event, *engine.apply(event)] for event in workload("acme", n, seed=3, ts0=ts0)]


def _source(frames: list[list[Event]], per_batch: int = 64) -> MemoryLog:
    """A log of ``frames`` appended as the simulator does: many steps per batch."""
    log = MemoryLog()
    for i in range(0, len(frames), per_batch):
        log.append([event for frame in frames[i : i + per_batch] for event in frame])
    return log


class FakeClock:
    """A clock that moves only when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


class RecordingLog(MemoryLog):
    """A ``MemoryLog`` that records each append: (clock time, batch)."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self.clock = clock
        self.appends: list[tuple[float, list[Event]]] = []

    def append(self, events: Sequence[Event]) -> list[int]:
        self.appends.append((self.clock(), list(events)))
        return super().append(events)


def test_steps_are_each_input_with_the_decisions_it_caused() -> None:
    frames = _steps()
    assert any(len(frame) > 1 for frame in frames)
    assert list(steps(_source(frames))) == frames
    for step in steps(_source(frames)):
        assert not is_decision(step[0]) and all(is_decision(e) for e in step[1:])
        assert all(e.ts <= step[0].ts for e in step)  # paced by the input's time


def test_the_pacer_appends_each_step_when_due_and_the_target_equals_the_source() -> None:
    frames = _steps()
    source, clock = _source(frames), FakeClock()
    target = RecordingLog(clock)
    hours: list[tuple[int, int]] = []
    pacer = Pacer(source, target, 60.0, clock=clock, sleep=clock.sleep,
                  on_hour=lambda ts, n: hours.append((ts, n)))  # fmt: skip
    assert pacer.run(threading.Event()) is True
    assert target.records == source.records  # every event, in order, byte for byte
    assert [batch for _, batch in target.appends] == frames  # one append per step
    ts0 = frames[0][0].ts
    for (at, _), frame in zip(target.appends, frames, strict=True):
        assert at == pytest.approx(100.0 + (frame[0].ts - ts0) / 1000 / 60)
    times = [at for at, _ in target.appends]
    assert times == sorted(times)
    assert sum(clock.slept) == pytest.approx((frames[-1][0].ts - ts0) / 1000 / 60)
    assert (pacer.events, pacer.steps, pacer.ts) == (source.end(), len(frames), frames[-1][0].ts)
    assert hours[0] == (ts0, 0)
    assert [ts // HOUR for ts, _ in hours] == sorted({f[0].ts // HOUR for f in frames})


def test_from_a_time_the_earlier_steps_go_in_at_once() -> None:
    frames = _steps()
    start = frames[len(frames) // 2][0].ts + 1
    source, clock = _source(frames), FakeClock()
    target = RecordingLog(clock)
    pacer = Pacer(source, target, 1000.0, start_ms=start, clock=clock, sleep=clock.sleep)
    assert pacer.run(threading.Event()) is True
    assert target.records == source.records
    before = [(at, b) for at, b in target.appends if b[0].ts < start]
    assert before and all(at == 100.0 for at, _ in before)
    for at, batch in target.appends[len(before) :]:
        assert at == pytest.approx(100.0 + (batch[0].ts - start) / 1000 / 1000)


def test_a_stopped_pacer_leaves_a_prefix_of_whole_steps() -> None:
    frames = _steps()
    source, clock = _source(frames), FakeClock()
    target = RecordingLog(clock)
    stop = threading.Event()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if len(target.appends) >= 10:
            stop.set()

    pacer = Pacer(source, target, 1.0, clock=clock, sleep=sleep)
    assert pacer.run(stop) is False
    done = len(target.appends)
    assert 10 <= done < len(frames)
    assert [batch for _, batch in target.appends] == frames[:done]
    assert target.records == source.records[: pacer.events]


def test_the_default_sleep_is_the_stop_events_wait(tmp_path: Path) -> None:
    frames = _steps(ts0=0)
    last = frames[-2][0].ts + 1_000_000_000  # due in 100 s at 10,000x
    frames[-1] = [msgspec.structs.replace(frames[-1][0], ts=last)]
    source = _source(frames)
    with FileLog(tmp_path / "live.olog", fsync="never") as target:
        stop = threading.Event()
        pacer = Pacer(source, target, 10_000.0)
        player = threading.Thread(target=lambda: pacer.run(stop))
        player.start()
        deadline = time.monotonic() + 5
        while pacer.steps < len(frames) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        stop.set()  # the wait for the last step ends now
        player.join(timeout=2)
        assert not player.is_alive()
        assert pacer.steps == len(frames) - 1 and target.end() == pacer.events


def test_clock_minutes() -> None:
    assert clock_minutes("08:30") == 510
    assert clock_minutes("25:00") == 1500
    for bad in ("8", "08:3", "ab:cd", "08:60", "48:00"):
        with pytest.raises(ValueError):
            clock_minutes(bad)


def test_live_options_need_live() -> None:
    done = subprocess.run(_cli("demo", "--speed", "10"), capture_output=True, text=True)
    assert done.returncode == 2 and "--speed: only with --live" in done.stderr


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "omniroute.adapters.cli", *args]


def test_demo_live_serves_the_wallboard_over_the_replayed_day(tmp_path: Path) -> None:
    """The small scenario (the demo day takes some 25 s to simulate) at 100,000x."""
    command = _cli("demo", "--live", "--scenario", "small", "--speed", "100000", "--port", "0",
                   "--dir", str(tmp_path))  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in proc.stdout or ():
            lines.put(line)

    reader = threading.Thread(target=read)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + 60  # (some 5 s when the machine is not busy)

    def wait_for(pattern: str) -> re.Match[str]:
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=0.1))
                if match := re.search(pattern, seen[-1]):
                    return match
        raise AssertionError(f"no {pattern!r} in {seen}")

    try:
        url = wait_for(r"^wallboard: (http://\S+/)$").group(1)
        last = _last_time(tmp_path / "small.olog")
        wait_for("the day is fully replayed")
        state: dict[str, Any] = {}
        while time.monotonic() < deadline:  # the follower catches up within a second or so
            state = httpx.get(url + "state.json", timeout=5).json()
            if dt.datetime.fromisoformat(state["as_of"]) == last:
                break
            time.sleep(0.2)
        assert dt.datetime.fromisoformat(state["as_of"]) == last, state["as_of"]
        assert len(state["agents"]) > 10
        assert all(isinstance(q["waiting"], int) for q in state["queues"]) and state["queues"]
        assert httpx.get(url, timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)  # (not communicate(): it would race the reader for stdout)
        reader.join()
        err = proc.stderr.read() if proc.stderr is not None else ""
    assert proc.returncode == 0, err
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert re.search(r"live: 0[89]:00 UTC simulated", text), text
    assert re.search(rf"stopped at {last:%H:%M} UTC simulated: ([\d,]+) of \1 events", text), text
    with (
        FileLog(tmp_path / "small.olog", readonly=True) as source,
        FileLog(tmp_path / "live.olog", readonly=True) as live,
    ):
        assert list(live.read_raw()) == list(source.read_raw())
    assert (tmp_path / "live.olog.policy.toml").read_text() == (
        tmp_path / "small.olog.policy.toml"
    ).read_text()


def _last_time(path: Path) -> dt.datetime:
    """The time of the log's last event."""
    with FileLog(path, readonly=True) as log:
        _, event = next(log.read(log.end() - 1))
    return dt.datetime.fromtimestamp(event.ts / 1000, dt.UTC)
