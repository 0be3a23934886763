"""``omniroute demo --live``: the simulated demo day played at a chosen speed, with the
supervisors' wallboard over it.

::

    omniroute demo --live [--speed 60] [--from HH:MM] [--host 127.0.0.1] [--port 8765]
                          [--dir DIR] [--seed N] [--policy FILE|PRESET] [--force]
                          [--scenario NAME|FILE]

The day is simulated first, exactly as ``omniroute demo`` does (same scenario, seed and
policy: the same log, byte for byte), into ``DIR/demo.olog`` (``--scenario``: another
built-in or file, into ``DIR/NAME.olog``) with its policy next to it; nothing about it
depends on the wall clock. Then a :class:`Pacer` copies that log's events into
``DIR/live.olog``, in order, one step (an input with the decisions it caused) per append,
each when it is due at ``speed`` times real time: the first event at once, or with
``--from HH:MM`` everything before that time of the simulated day at once and the pace
from there. (The simulator appends some 4,096 events per batch, minutes of a busy day:
too coarse to pace, so the steps are recovered from the events, which keeps every
input with its decisions in one append, as the engine's deployments write them.) The
wallboard's ``FollowingSource`` projects ``live.olog`` into ``DIR/live.duckdb`` as it
grows and the page at the printed URL shows it; a line per simulated hour says how far
the day is. Ctrl-C or SIGTERM stops the pacer and the server (exit 0); once the day is
replayed the page goes on being served until then.

The wall clock is used here, in an adapter, to pace a log that was written without it;
``live.olog`` ends up equal to the simulated log, event for event, byte for byte.
"""

from __future__ import annotations

import contextlib
import importlib.util
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from omniroute.engine.events import Event, is_decision
from omniroute.engine.log import EventLog
from omniroute.engine.policy import Policy, policy_toml
from omniroute.engine.simulation import Scenario, SimulationRun, simulate

from ..filelog import FileLog
from .common import EXIT_OK, CliError, fresh_outputs, policy_sidecar

__all__ = ["Pacer", "clock_minutes", "run_live", "steps"]

_HOUR_MS = 3_600_000
_DAY_MS = 86_400_000
_WALLBOARD_MODULES = ("starlette", "uvicorn")


def steps(log: EventLog, start: int = 0) -> Iterator[list[Event]]:
    """The log's events from ``start`` as the engine wrote them: each input with the
    decisions it caused (the decisions that follow it, up to the next input). Decisions
    before the first input (a log read from the middle of a step) come as a step of
    their own."""
    step: list[Event] = []
    for _, event in log.read(start):
        if step and not is_decision(event):
            yield step
            step = []
        step.append(event)
    if step:
        yield step


class Pacer:
    """Copies ``source``'s events into ``target`` at ``speed`` times the pace of their
    timestamps, one step (an input with its decisions: :func:`steps`) per append.

    The first step paced is appended at once; a step whose ``ts`` is ``d`` ms after the
    first's is appended ``d / 1000 / speed`` seconds (of ``clock``) after it. With
    ``start_ms``, every step before it is appended at once and the pace counts from
    ``start_ms``. ``sleep`` waits that many seconds (default: the ``stop`` event's wait,
    so :meth:`run` stops promptly); ``on_hour(ts_ms, events)`` is called at the first
    paced step of each hour of simulated time, with the events appended so far.

    ``target`` should be empty: it receives the source's events, so it ends up equal to
    the source (the same events, encoded the same: byte for byte).
    """

    def __init__(
        self,
        source: EventLog,
        target: EventLog,
        speed: float,
        *,
        start_ms: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        on_hour: Callable[[int, int], None] | None = None,
    ) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.source = source
        self.target = target
        self.speed = float(speed)
        self.start_ms = start_ms
        self.clock = clock
        self.sleep = sleep
        self.on_hour = on_hour
        self.events = 0
        """Events appended to ``target`` so far."""
        self.ts: int | None = None
        """The ``ts`` of the last step appended."""
        self.steps = 0
        """Steps (appends) so far."""
        self._ran = False

    def run(self, stop: threading.Event) -> bool:
        """Copy the source until it is all in the target (True) or ``stop`` is set (False).
        A pacer runs once."""
        if self._ran:
            raise RuntimeError("a pacer runs once")
        self._ran = True

        def wait(seconds: float) -> None:
            if self.sleep is None:
                stop.wait(seconds)
            else:
                self.sleep(seconds)

        base_ms, started, hour = self.start_ms, None, None
        for step in steps(self.source):
            if stop.is_set():
                return False
            ts = step[0].ts
            if base_ms is None:
                base_ms = ts
            if ts >= base_ms:  # paced; earlier steps go in at once
                if started is None:
                    started = self.clock()
                due = started + (ts - base_ms) / 1000 / self.speed
                while (delay := due - self.clock()) > 0:
                    wait(delay)
                    if stop.is_set():
                        return False
                if ts // _HOUR_MS != hour and self.on_hour is not None:
                    self.on_hour(ts, self.events)
                hour = ts // _HOUR_MS
            self.target.append(step)
            self.events += len(step)
            self.steps += 1
            self.ts = ts
        return not stop.is_set()


# --- the command ------------------------------------------------------------------------


def clock_minutes(text: str) -> int:
    """``HH:MM`` (00:00 to 47:59, for days that run past midnight) as minutes."""
    hours, sep, minutes = text.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"{text!r} is not HH:MM")
    h, m = int(hours), int(minutes)
    if h > 47 or m > 59:
        raise ValueError(f"{text!r} is not a time of the simulated day (00:00 to 47:59)")
    return h * 60 + m


def _hhmm(ts_ms: int) -> str:
    return time.strftime("%H:%M", time.gmtime(ts_ms / 1000))


def _day(ts_ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts_ms / 1000))


def _elapsed(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}h{minutes % 60:02d}m{secs:02d}s"


def _check_port(host: str, port: int) -> None:
    """Fail now, before the simulation, if ``host:port`` cannot be served (0: any port)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        raise CliError(f"cannot serve the wallboard on {host}:{port}: {exc}") from exc


@contextlib.contextmanager
def _interrupted_by_sigterm() -> Iterator[None]:
    """SIGTERM raises ``KeyboardInterrupt`` as SIGINT does (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _simulated(scenario: Scenario, policy: Policy, path: Path, seed: int | None) -> SimulationRun:
    """Simulate ``scenario`` onto ``path`` and save its policy next to it (as ``demo``)."""
    bar: Any = None
    progress = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="sim-min", desc="simulating", leave=False, dynamic_ncols=True)

        def progress(done_ms: int, total_ms: int) -> None:
            bar.total = total_ms // 60_000
            bar.update(done_ms // 60_000 - bar.n)

    try:
        with FileLog(path, fsync="never") as log:
            result = simulate(scenario, log, policy=policy, seed=seed, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    policy_sidecar(path).write_text(policy_toml(policy))
    return result


def run_live(
    scenario: Scenario,
    policy: Policy,
    label: str,
    *,
    folder: Path | None,
    seed: int | None,
    speed: float,
    host: str,
    port: int,
    from_minutes: int | None,
    force: bool,
    out: TextIO,
) -> int:
    """Simulate ``scenario``'s day into ``FOLDER/NAME.olog``, then play it into
    ``FOLDER/live.olog`` at ``speed`` with the wallboard served on ``host:port`` until
    SIGTERM or SIGINT (exit 0, also when stopped while simulating); the exit status."""
    if missing := [m for m in _WALLBOARD_MODULES if importlib.util.find_spec(m) is None]:
        raise CliError(
            f"demo --live needs the 'wallboard' extra ({', '.join(missing)} not installed): "
            "pip install 'omniroute[wallboard]'"
        )
    if not speed > 0:
        raise CliError(f"--speed must be > 0, got {speed}")
    _check_port(host, port)
    folder = folder or Path(tempfile.mkdtemp(prefix="omniroute-demo-"))
    folder.mkdir(parents=True, exist_ok=True)
    source_path = folder / f"{scenario.name}.olog"
    outputs = [source_path, policy_sidecar(source_path)]
    outputs += _live_files(folder / "live.olog", folder / "live.duckdb")
    fresh_outputs(outputs, force)

    def say(line: str) -> None:
        print(line, file=out, flush=True)

    say(f"omniroute demo --live: {scenario.description}")
    say(f"seed {seed if seed is not None else scenario.seed}, policy: {label}; "
        f"writing to {folder}")  # fmt: skip
    started = time.perf_counter()
    try:
        with _interrupted_by_sigterm():
            result = _simulated(scenario, policy, source_path, seed)
            say(f"simulated {_day(result.first_ts)} - {_day(result.last_ts)} UTC in "
                f"{time.perf_counter() - started:.1f} s: {result.interactions:,} contacts, "
                f"{result.events:,} events in {source_path}")  # fmt: skip
            start_ms = None
            if from_minutes is not None:
                start_ms = scenario.start_ms // _DAY_MS * _DAY_MS + from_minutes * 60_000
            return _play(source_path, folder, policy, speed, start_ms, host, port, say)
    except KeyboardInterrupt:
        say("stopped before the day was played")
        return EXIT_OK


def _live_files(live_path: Path, db: Path) -> list[Path]:
    return [live_path, policy_sidecar(live_path), db, db.with_name(db.name + ".wal")]


def _play(
    source_path: Path,
    folder: Path,
    policy: Policy,
    speed: float,
    start_ms: int | None,
    host: str,
    port: int,
    say: Callable[[str], None],
) -> int:
    """Pace ``source_path`` into ``FOLDER/live.olog`` and serve its wallboard until
    SIGTERM or SIGINT."""
    from ..wallboard import FollowingSource, create_app, serve

    live_path, db = folder / "live.olog", folder / "live.duckdb"
    stop = threading.Event()
    failure: list[BaseException] = []
    with FileLog(source_path, readonly=True) as source, FileLog(live_path, fsync="never") as live:
        total = source.end()
        policy_sidecar(live_path).write_text(policy_toml(policy))
        began = [time.monotonic()]

        def on_hour(ts_ms: int, events: int) -> None:
            say(f"live: {_hhmm(ts_ms)} UTC simulated, {events:,} of {total:,} events "
                f"appended, {_elapsed(time.monotonic() - began[0])} wall")  # fmt: skip

        pacer = Pacer(source, live, speed, start_ms=start_ms, on_hour=on_hour)

        def play() -> None:
            began[0] = time.monotonic()
            try:
                done = pacer.run(stop)
            except BaseException as exc:  # stop the server: the command fails
                failure.append(exc)
                signal.raise_signal(signal.SIGTERM)
                return
            if done:
                at = _hhmm(pacer.ts) if pacer.ts is not None else "-"
                say(f"the day is fully replayed ({pacer.events:,} events, up to {at} UTC, "
                    f"in {_elapsed(time.monotonic() - began[0])}); the wallboard stays up "
                    "until Ctrl-C")  # fmt: skip

        player = threading.Thread(target=play, name="demo-live-pacer", daemon=True)

        def ready(url: str) -> None:
            say(f"wallboard: {url}")
            pace = f"{speed:g}x real time"
            if start_ms is not None:
                pace += f" from {_hhmm(start_ms)} (the day before it at once)"
            say(f"playing the day into {live_path} at {pace}; Ctrl-C stops")
            player.start()

        following = FollowingSource(live_path, db, policy, every_s=1.0)
        with following:
            try:
                serve(create_app(following, every_s=1.0), host, port, ready=ready)
            finally:
                stop.set()
                if player.ident is not None:
                    player.join()
        at = f"at {_hhmm(pacer.ts)} UTC simulated" if pacer.ts is not None else "at the start"
        say(f"stopped {at}: {pacer.events:,} of {total:,} events in {live_path}")
    if following.error is not None:
        say(f"(the wallboard's projection had stopped: {following.error})")
    if failure:
        raise CliError(f"replaying the day stopped: {failure[0]}") from failure[0]
    return EXIT_OK
