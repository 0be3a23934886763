"""End-to-end events/s of ``omniroute serve`` through a real nats-server (JetStream, file storage).

What is measured. A seeded closed-loop driver (a local engine tells it who was offered what)
produces the inputs of a small omnichannel contact centre: 300 agents, conversations on
every channel, offers accepted or declined, messages in asynchronous conversations,
conversations ended and wrapped up, customers abandoning, agents going away and back.
The inputs are published first (untimed for the service; ``publish_events_per_s`` is the
producer's rate) to ``bench.<tenant>.in`` in frames of ``--frame-events`` events. Then the
service runs in this process (``Service.run``, the code of ``omniroute serve``) from an
empty log: it consumes the inputs, applies them, appends inputs and decisions to
``bench.<tenant>.out`` and waits for every acknowledgement. The clock runs from the moment
the service holds the lease and starts writing until the log covers the last input.

- ``events_per_s``: events written to the log (inputs + decisions) per second; the
  definition of ``benchmarks/bench_pipeline.py`` (embedded log), so the two compare.
  ``inputs_per_s``: inputs per second.
- ``per_message_baseline_events_per_s``: the same, same run and server, but one event per
  NATS message on both sides: each input published alone, and the service appending each
  input with its decisions as its own log message (``append_messages = 1``) -- what a
  design without frames pays (a round trip per event). It runs on the first
  ``baseline_events`` inputs only, to keep the run short.
- ``engine_only_events_per_s``: the same inputs applied to a bare ``Engine`` in this
  process, no NATS, no encoding: the ceiling. ``transport_share`` = 1 - events_per_s /
  engine_only_events_per_s is what decoding, encoding and JetStream cost on top.
- ``*_per_cpu_s``: the same per CPU second of this process (``time.process_time``): on a
  shared machine (``load_avg_1m``) wall-clock rates drop when the core is taken away, CPU
  rates much less. nats-server runs on the other core(s).
- ``deterministic``: ``omniroute replay`` of the NATS log (via ``NatsLog``) re-decides every
  recorded decision byte for byte (checked after the timed part).

Usage::

    python benchmarks/bench_nats.py [--quick] [--json] [--events N] [--frame-events N]
                                    [--baseline-events N] [--seed N]

``--quick``: 60,000 events and a 5,000-event baseline (about 10 s in all); the default is
300,000 events and a 20,000-event baseline. One JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from omniroute.adapters.nats.log import NatsLog
from omniroute.adapters.nats.options import NatsOptions, StreamOptions, connect, ensure_stream
from omniroute.adapters.nats.server import LocalNatsServer
from omniroute.adapters.service.config import MetricsOptions, ServiceConfig, ServiceOptions
from omniroute.adapters.service.service import Service
from omniroute.engine import Engine
from omniroute.engine import events as ev
from omniroute.engine.events import Event, encode_msgpack, is_decision, tag_of
from omniroute.engine.log import encode_frame
from omniroute.engine.replay import replay

TARGET_EVENTS_PER_S = 100_000
TENANT = "bench"
CHANNELS: tuple[ev.Channel, ...] = (
    "voice", "webchat", "whatsapp", "whatsapp", "sms", "messenger", "email", "social", "task",
    "telegram", "video",
)  # fmt: skip
ASYNC = {"whatsapp", "sms", "messenger", "telegram", "social", "email"}


def workload(n: int, seed: int, agents: int = 300) -> list[Event]:
    """``n`` inputs of a contact centre, valid against the decisions a local engine makes."""
    rng = random.Random(seed)
    engine = Engine()
    out: list[Event] = []
    ts = int(time.time() * 1000) - 86_400_000
    offered: dict[str, str] = {}
    assigned: dict[str, tuple[str, str]] = {}
    wrapping: dict[str, str] = {}
    queued: set[str] = set()
    skills = ["sales", "support", "billing", "tech", "retention"]

    def emit(event: Event) -> None:
        out.append(event)
        for d in engine.apply(event):
            if isinstance(d, ev.ConversationOffered):
                offered[d.conversation_id] = d.agent_id
                queued.discard(d.conversation_id)
            elif isinstance(d, ev.ConversationAssigned):
                offered.pop(d.conversation_id, None)
                queued.discard(d.conversation_id)
                channel = channels.get(d.conversation_id, "voice")
                assigned[d.conversation_id] = (d.agent_id, channel)
            elif isinstance(d, ev.OfferExpired):
                offered.pop(d.conversation_id, None)
                queued.add(d.conversation_id)
            elif isinstance(d, ev.ConversationQueued):
                queued.add(d.conversation_id)

    channels: dict[str, str] = {}
    for a in range(agents):
        emit(ev.AgentRegistered(
            tenant=TENANT, ts=ts, agent_id=f"a{a}",
            skills={s: rng.randint(1, 5) for s in rng.sample(skills, rng.randint(1, 4))},
        ))  # fmt: skip
        emit(ev.AgentStatusChanged(tenant=TENANT, ts=ts, agent_id=f"a{a}", status="available"))
    conv = 0
    next_tick = ts + 1000
    while len(out) < n:
        ts += rng.randint(0, 60)
        if ts >= next_tick:
            emit(ev.Tick(tenant=TENANT, ts=ts))
            next_tick = ts + 1000
            continue
        r = rng.random()
        if r < 0.14 or not (offered or assigned or wrapping or queued):
            conv += 1
            cid = f"c{conv}"
            channel = rng.choice(CHANNELS)
            channels[cid] = channel
            emit(ev.ConversationArrived(
                tenant=TENANT, ts=ts, conversation_id=cid, channel=channel,
                contact=ev.Contact(channel, f"+{rng.randint(10**9, 10**10)}"),
                skills={rng.choice(skills): rng.randint(1, 3)}, priority=rng.randint(0, 2),
            ))  # fmt: skip
        elif r < 0.28 and offered:
            cid = rng.choice(list(offered))
            agent = offered[cid]
            if rng.random() < 0.95:
                emit(ev.OfferAccepted(tenant=TENANT, ts=ts, conversation_id=cid, agent_id=agent))
            else:
                emit(ev.OfferDeclined(tenant=TENANT, ts=ts, conversation_id=cid, agent_id=agent))
        elif r < 0.62 and assigned:
            cid = rng.choice(list(assigned))
            if assigned[cid][1] in ASYNC:  # asynchronous conversations are mostly messages
                emit(ev.MessageReceived(tenant=TENANT, ts=ts, conversation_id=cid,
                                        direction=rng.choice(["in", "out"])))  # fmt: skip
            else:
                emit(ev.MessageReceived(tenant=TENANT, ts=ts, conversation_id=cid, direction="out"))
        elif r < 0.76 and assigned:
            cid = rng.choice(list(assigned))
            agent, _ = assigned.pop(cid)
            emit(ev.ConversationEnded(tenant=TENANT, ts=ts, conversation_id=cid,
                                      by=rng.choice(["agent", "customer"])))  # fmt: skip
            wrapping[cid] = agent
        elif r < 0.88 and wrapping:
            cid = rng.choice(list(wrapping))
            emit(ev.WrapUpCompleted(tenant=TENANT, ts=ts, conversation_id=cid,
                                    agent_id=wrapping.pop(cid)))  # fmt: skip
        elif r < 0.92 and queued:
            cid = rng.choice(sorted(queued))
            queued.discard(cid)
            emit(ev.CustomerAbandoned(tenant=TENANT, ts=ts, conversation_id=cid))
        else:
            status: ev.AgentStatus = rng.choice(["available", "available", "away"])
            emit(ev.AgentStatusChanged(tenant=TENANT, ts=ts, agent_id=f"a{rng.randrange(agents)}",
                                       status=status))  # fmt: skip
    return out[:n]


def engine_only(inputs: list[Event]) -> tuple[float, float, int]:
    """(events/s, events per CPU second, decisions) of a bare engine over the inputs."""
    engine = Engine()
    decisions = 0
    started, cpu = time.perf_counter(), time.process_time()
    for event in inputs:
        decisions += len(engine.apply(event))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return (len(inputs) + decisions) / elapsed, (len(inputs) + decisions) / cpu, decisions


async def publish(options: NatsOptions, stream: StreamOptions, frames: list[bytes]) -> float:
    """Publish input frames (acknowledged, in order); seconds taken."""
    nc = await connect(options)
    try:
        js = nc.jetstream(timeout=30)
        await ensure_stream(js, stream)
        subject = f"{stream.prefix}.{TENANT}.in"
        started = time.perf_counter()
        window: list[asyncio.Future[Any]] = []
        for payload in frames:
            window.append(await js.publish_async(subject, payload))
            if len(window) >= 2000:
                await asyncio.gather(*window)
                window = []
        await asyncio.gather(*window)
        return time.perf_counter() - started
    finally:
        await nc.close()


def serve_until_done(
    options: NatsOptions, stream: StreamOptions, append_messages: int, last_in: int, workdir: Path
) -> tuple[float, float, int]:
    """Run the service until the log covers input ``last_in``.

    Returns (wall seconds writing, CPU seconds of this process meanwhile, log events).
    """
    config = ServiceConfig(
        nats=options,
        stream=stream,
        service=ServiceOptions(
            tenants=(TENANT,), instance="bench", tick_interval_s=0, lease_ttl_s=10,
            snapshots="file", snapshot_dir=str(workdir / f"snapshots-{stream.name}"),
            append_messages=append_messages, fetch_batch=256,
        ),
        metrics=MetricsOptions(),
    )  # fmt: skip

    async def main() -> tuple[float, float, int]:
        service = Service(config)
        started: tuple[float, float] | None = None
        result: list[float] = []

        async def watch() -> None:
            nonlocal started
            while True:
                worker = service.workers.get(TENANT)
                if worker is not None:
                    if started is None and worker.role == "writer":
                        started = time.perf_counter(), time.process_time()
                    if started is not None and worker.in_seq >= last_in:
                        result.append(time.perf_counter() - started[0])
                        result.append(time.process_time() - started[1])
                        result.append(worker.applied_end)
                        service.request_stop()
                        return
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        code = await service.run()
        await watcher
        if code != 0 or len(result) != 3:
            raise RuntimeError(f"the service stopped with {code}")
        return result[0], result[1], int(result[2])

    return asyncio.run(main())


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.events or (60_000 if args.quick else 300_000)
    n_base = args.baseline_events or (5_000 if args.quick else 20_000)
    inputs = workload(n, args.seed)
    mix = Counter(tag_of(e) for e in inputs)
    engine_rate, engine_cpu_rate, _ = engine_only(inputs)
    encoded = [encode_msgpack(e) for e in inputs]
    frame = args.frame_events
    framed = [encode_frame(encoded[i : i + frame]) for i in range(0, len(encoded), frame)]
    single = [encode_frame([data]) for data in encoded[:n_base]]
    with tempfile.TemporaryDirectory(prefix="omniroute-bench-nats-") as tmp:
        workdir = Path(tmp)
        with LocalNatsServer(workdir / "nats") as server:
            options = NatsOptions(servers=(server.url,), request_timeout_s=30)
            framed_stream = StreamOptions(name="BENCH_FRAMES", prefix="bench")
            single_stream = StreamOptions(name="BENCH_SINGLE", prefix="single")
            publish_s = asyncio.run(publish(options, framed_stream, framed))
            seconds, cpu, events = serve_until_done(options, framed_stream, 0, len(framed), workdir)
            asyncio.run(publish(options, single_stream, single))
            base_s, _, base_events = serve_until_done(options, single_stream, 1, len(single),
                                                      workdir)  # fmt: skip
            with NatsLog(options, TENANT, framed_stream, readonly=True) as log:
                verified = replay(log)
                out_frames = len(log._seqs)
                logged = [e for _, e in log.read()]
            version = subprocess.run([server.binary, "--version"], capture_output=True,
                                     text=True).stdout.strip()  # fmt: skip
    decisions = sum(1 for e in logged if is_decision(e))
    result: dict[str, Any] = {
        "benchmark": "nats",
        "events_per_s": round(events / seconds),
        "inputs_per_s": round(n / seconds),
        "per_message_baseline_events_per_s": round(base_events / base_s),
        "frame_events": frame,
        "events_per_cpu_s": round(events / cpu),
        "engine_only_events_per_s": round(engine_rate),
        "engine_only_events_per_cpu_s": round(engine_cpu_rate),
        "transport_share_cpu": round(1 - (events / cpu) / engine_cpu_rate, 3),
        "transport_share": round(1 - (events / seconds) / engine_rate, 3),
        "publish_events_per_s": round(n / publish_s),
        "events": events,
        "inputs": n,
        "decisions": decisions,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "log_frames": out_frames,
        "events_per_log_frame": round(events / max(out_frames, 1), 1),
        "baseline_events": base_events,
        "baseline_inputs": n_base,
        "baseline_seconds": round(base_s, 3),
        "frame_speedup": round((events / seconds) / (base_events / base_s), 1),
        "deterministic": verified.ok and verified.inputs_applied == n,
        "input_mix": dict(mix.most_common()),
        "nats_server": version,
        "python": platform.python_version(),
        "seed": args.seed,
        "targets": {"events_per_s": TARGET_EVENTS_PER_S},
        "meets_targets": {"events_per_s": events / seconds >= TARGET_EVENTS_PER_S},
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60,000 events (about 10 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--events", type=int, help="inputs in the framed run")
    parser.add_argument("--baseline-events", type=int, help="inputs in the per-message run")
    parser.add_argument("--frame-events", type=int, default=1000, help="events per input frame")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["deterministic"] else 1


if __name__ == "__main__":
    sys.exit(main())
