"""``omniroute send`` and ``omniroute tail`` against a real nats-server and a running service."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from omniroute.adapters import cli
from omniroute.adapters.nats.options import StreamOptions
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.engine import events as ev
from omniroute.engine.events import encode_json, is_decision
from tests.support.nats import options_for, unique
from tests.support.service import (
    InProcessService,
    config_toml,
    log_events,
    out_tail,
    service_config,
    wait_for,
    wait_until_consumed,
    workload,
)


@pytest.fixture
def setup(nats_server: LocalNatsServer, tmp_path: Path) -> tuple[Path, StreamOptions]:
    stream = StreamOptions(name=unique("S"), prefix=unique("p"))
    config = tmp_path / "omniroute.toml"
    config.write_text(config_toml(nats_server.url, stream, ["acme"], instance=unique("i"),
                                  extra_service="tick_interval_s = 0"))  # fmt: skip
    return config, stream


def _jsonl(path: Path, events: list[ev.Event]) -> Path:
    path.write_bytes(b"".join(encode_json(e) + b"\n" for e in events))
    return path


def _in_seq(nats_server: LocalNatsServer, stream: StreamOptions) -> int:
    import asyncio

    from omniroute.adapters.nats.options import connect

    async def go() -> int:
        nc = await connect(options_for(nats_server))
        try:
            last = await nc.jetstream().get_last_msg(stream.name, f"{stream.prefix}.acme.in")
            return int(last.seq or 0)
        finally:
            await nc.close()

    return asyncio.run(go())


def test_send_publishes_frames_and_sending_again_changes_nothing(
    nats_server: LocalNatsServer, setup: tuple[Path, StreamOptions], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    config, stream = setup
    events = workload("acme", 700, seed=2)
    path = _jsonl(tmp_path / "in.jsonl", events)
    svc = InProcessService(service_config(config.read_text(), tmp_path))
    try:
        assert cli.main(["send", str(path), "--config", str(config), "--frame-events", "100"]) == 0
        assert "sent 700 events in 7 messages" in capsys.readouterr().out
        assert cli.main(["send", str(path), "--config", str(config), "--frame-events", "100"]) == 0
        assert "(7 duplicate message(s) dropped by the server)" in capsys.readouterr().out
        opts = options_for(nats_server)
        wait_until_consumed(opts, stream, "acme", _in_seq(nats_server, stream))
    finally:
        assert svc.stop() == 0
    log = log_events(opts, stream, "acme")
    assert [e for e in log if not is_decision(e)] == events

    assert cli.main(["tail", "--config", str(config), "--from-start", "--idle-exit", "0.5"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    decisions = [json.loads(encode_json(e)) for e in log if is_decision(e)]
    assert printed == decisions
    assert cli.main(["tail", "--config", str(config), "--from-start", "--inputs",
                     "--count", "5"]) == 0  # fmt: skip
    assert len(capsys.readouterr().out.splitlines()) == 5


def test_send_refuses_a_file_with_invalid_lines(
    setup: tuple[Path, StreamOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    path = tmp_path / "bad.jsonl"
    good = encode_json(ev.Tick(tenant="acme", ts=1)).decode()
    decision = encode_json(ev.SlaBreached(tenant="acme", ts=1, conversation_id="c",
                                          target_s=1, waited_ms=1)).decode()  # fmt: skip
    path.write_text(f'{good}\n{{"type": "tick"}}\nnot json\n{decision}\n\n{good}\n')
    assert cli.main(["send", str(path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 2" in err and "line 3" in err and "line 4: a decision" in err
    assert "nothing sent" in err
    assert cli.main(["send", str(path), "--config", str(config), "--skip-invalid"]) == 0
    assert "sent 2 events" in capsys.readouterr().out


def test_send_refuses_unknown_fields_huge_integers_and_tenants_the_service_does_not_serve(
    setup: tuple[Path, StreamOptions], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config, _ = setup
    path = tmp_path / "typos.jsonl"
    lines = [
        '{"type": "agent.registered", "tenant": "acme", "ts": 1, "agent_id": "a", "skils": {}}',
        '{"type": "tick", "tenant": "acme", "ts": ' + str(2**64) + "}",
        encode_json(ev.Tick(tenant="globex", ts=1)).decode(),
        encode_json(ev.Tick(tenant="acme", ts=1)).decode(),
    ]
    path.write_text("\n".join(lines) + "\n")
    assert cli.main(["send", str(path), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "line 1: Object contains unknown field `skils`" in err
    assert "line 2:" in err and "$.ts" in err
    assert "line 3: tenant 'globex' is not served by the configuration" in err
    assert "line 4" not in err and "nothing sent" in err


def test_tail_prints_decisions_as_they_happen(
    setup: tuple[Path, StreamOptions], tmp_path: Path
) -> None:
    config, _ = setup
    svc = InProcessService(service_config(config.read_text(), tmp_path))
    tail = subprocess.Popen(
        [sys.executable, "-m", "omniroute.adapters.cli", "tail", "--config", str(config),
         "--count", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # tail starts at the log's end: only what happens from now on
        events = [
            ev.AgentRegistered(tenant="acme", ts=1, agent_id="ann", skills={"sales": 2}),
            ev.AgentStatusChanged(tenant="acme", ts=2, agent_id="ann", status="available"),
            ev.ConversationArrived(
                tenant="acme", ts=3, conversation_id="c1", channel="webchat",
                contact=ev.Contact("webchat", "s1"), skills={"sales": 1},
            ),
            ev.OfferAccepted(tenant="acme", ts=4, conversation_id="c1", agent_id="ann"),
        ]  # fmt: skip
        path = _jsonl(tmp_path / "live.jsonl", events)
        assert cli.main(["send", str(path), "--config", str(config)]) == 0
        out, err = tail.communicate(timeout=20)
    finally:
        if tail.poll() is None:
            tail.kill()
        assert svc.stop() == 0
    assert tail.returncode == 0, err
    types = [json.loads(line)["type"] for line in out.splitlines()]
    assert types == ["conversation.queued", "conversation.offered", "conversation.assigned"]


@pytest.fixture
def ticking_serve(
    nats_server: LocalNatsServer, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """``omniroute serve`` at the default log level, ticking every 0.1 s (a heartbeat: it
    is idle), until it writes."""
    stream = StreamOptions(name=unique("S"), prefix=unique("p"))
    config = tmp_path / "omniroute.toml"
    instance = unique("router")
    ticks = "tick_interval_s = 0.1\nheartbeat_s = 0.1"
    config.write_text(config_toml(nats_server.url, stream, ["acme"], instance=instance,
                                  extra_service=ticks))  # fmt: skip
    output = tmp_path / "serve.out"
    with output.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "omniroute.adapters.cli", "serve", "--config", str(config)],
            stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip
    try:
        wait_for(lambda: out_tail(options_for(nats_server), stream, "acme") != {}, 30,
                 "the service to append its first tick")  # fmt: skip
        yield proc, config, output
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_serve_says_what_it_serves_and_when_it_stops(
    nats_server: LocalNatsServer, ticking_serve: tuple[subprocess.Popen[str], Path, Path]
) -> None:
    proc, _, output = ticking_serve
    [started] = output.read_text().splitlines()  # at the default log level, nothing else
    assert " INFO omniroute.adapters.cli.service: serve: instance router" in started
    assert "tenant(s) acme" in started and nats_server.url in started
    assert "stream S" in started and "SIGTERM or Ctrl-C stops it" in started
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    lines = output.read_text().splitlines()
    assert len(lines) == 2 and lines[1].endswith("stopped (exit 0)")


def test_tail_idle_exit_is_not_kept_awake_by_the_service_ticks(
    ticking_serve: tuple[subprocess.Popen[str], Path, Path],
) -> None:
    _, config, _ = ticking_serve
    started = time.monotonic()
    tail = subprocess.run(
        [sys.executable, "-m", "omniroute.adapters.cli", "tail", "--config", str(config),
         "--inputs", "--idle-exit", "1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert tail.returncode == 0, tail.stderr
    assert time.monotonic() - started < 15
    assert '"type":"tick"' in tail.stdout  # ticks were printed, and did not keep it awake
