"""The NATS subcommands of ``omniroute``: ``serve``, ``send`` and ``tail``.

::

    omniroute serve --config FILE [--instance NAME] [--metrics-port N]
    omniroute send FILE.jsonl [--config FILE] [--frame-events N] [--no-dedup] [--skip-invalid]
    omniroute tail [--config FILE] [--tenant T ...] [--from-start] [--inputs] [--rejected]
                   [--count N] [--idle-exit S]

``send`` validates every line (one JSON event each) as the service does -- unknown fields,
integer ranges, and, with a ``--config`` that lists ``[service] tenants``, only those
tenants -- before publishing anything, groups the events by tenant into frames (msgpack
arrays, several events per NATS message) on ``<prefix>.<tenant>.in`` and waits for every
acknowledgement. Each frame's ``Nats-Msg-Id`` is
a digest of its bytes, so sending the same file again within the stream's duplicate window
changes nothing (``--no-dedup`` turns that off). ``tail`` prints, one JSON object per line,
the decisions appended to the tenants' logs from now on (``--from-start``: from the first),
inputs too with ``--inputs``, or the ``EventRejected`` of ``.rejected`` with ``--rejected``.

Without ``--config``, the connection comes from ``NATS_URL``/``NATS_CREDS`` and the default
stream settings. Exit status: 0 success; 1 the service failed or publishing failed; 2 bad
usage, a bad configuration or no connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import msgspec

from omniroute.engine.events import (
    Event,
    Tick,
    decode_json,
    decode_msgpack,
    encode_msgpack,
    is_decision,
)
from omniroute.engine.log import LogError, encode_frame
from omniroute.engine.policy import PolicyError

from .common import EXIT_FAILED, EXIT_OK, CliError, Command, reported

if TYPE_CHECKING:
    from ..service.config import ServiceConfig

__all__ = ["COMMANDS"]

_log = logging.getLogger(__name__)


def _serve_arguments(srv: argparse.ArgumentParser) -> None:
    srv.add_argument("--config", type=Path, required=True, metavar="FILE", help="TOML file")
    srv.add_argument("--instance", metavar="NAME", help="override [service] instance")
    srv.add_argument("--metrics-port", type=int, metavar="N", help="override [metrics] port")


def _send_arguments(snd: argparse.ArgumentParser) -> None:
    snd.add_argument("file", metavar="FILE.jsonl")
    snd.add_argument("--config", type=Path, metavar="FILE", help="TOML file ([nats], [stream])")
    snd.add_argument(
        "--frame-events", type=int, default=500, metavar="N",
        help="events per NATS message (default: 500)",
    )  # fmt: skip
    snd.add_argument(
        "--no-dedup", action="store_true", help="no Nats-Msg-Id (re-sending sends again)"
    )
    snd.add_argument(
        "--skip-invalid", action="store_true", help="publish the valid lines, report the others"
    )


def _tail_arguments(tail: argparse.ArgumentParser) -> None:
    tail.add_argument("--config", type=Path, metavar="FILE", help="TOML file")
    tail.add_argument(
        "--tenant", action="append", metavar="T",
        help="tenant to follow (repeatable; default: the configured tenants)",
    )  # fmt: skip
    tail.add_argument("--from-start", action="store_true", help="from the start of the log")
    tail.add_argument("--inputs", action="store_true", help="print inputs too")
    tail.add_argument(
        "--rejected", action="store_true", help="print the rejected input events instead"
    )
    tail.add_argument("--count", type=int, metavar="N", help="exit after N lines")
    tail.add_argument(
        "--idle-exit", type=float, metavar="S",
        help="exit after S seconds with nothing new (the service's ticks do not count)",
    )  # fmt: skip


_Run = Callable[["ServiceConfig", argparse.Namespace, TextIO], int]


def _configured(run: _Run) -> Callable[[argparse.Namespace, TextIO], int]:
    """``run`` given the configuration (``--config FILE``, else ``NATS_URL``/``NATS_CREDS``
    and the default stream settings), with a log error reported."""

    def wrapped(args: argparse.Namespace, out: TextIO) -> int:
        from ..nats.options import NatsOptions
        from ..service.config import ConfigError, ServiceConfig, load_config

        with reported(OSError, ConfigError):
            config = (
                ServiceConfig(nats=NatsOptions().with_env())
                if args.config is None
                else load_config(args.config)
            )
        with reported(LogError):
            return run(config, args, out)

    return wrapped


# --- serve -------------------------------------------------------------------------------------


def _serve(config: ServiceConfig, args: argparse.Namespace, out: TextIO) -> int:
    from ..service.service import serve
    from ..service.worker import ServiceError

    instance = args.instance or config.service.instance_name
    config = msgspec.structs.replace(
        config, service=msgspec.structs.replace(config.service, instance=instance)
    )
    if args.metrics_port is not None:
        config = msgspec.structs.replace(
            config, metrics=msgspec.structs.replace(config.metrics, port=args.metrics_port)
        )
    _log.info("%s", _serving(config))
    with reported(ServiceError, PolicyError, OSError):
        code = serve(config)
    _log.info("serve: instance %s stopped (exit %d)", instance, code)
    return code


def _serving(config: ServiceConfig) -> str:
    """The start line: what this instance serves, from where, and how to stop it."""
    svc, stream, metrics = config.service, config.stream, config.metrics
    where = "off" if metrics.port is None else f"http://{metrics.address}:{metrics.port}/metrics"
    return (
        f"serve: instance {svc.instance_name} starting for tenant(s) "
        f"{', '.join(svc.tenants) or '(none)'} on NATS {', '.join(config.nats.servers)}, "
        f"stream {stream.name} ({stream.prefix}.<tenant>.in -> .out), policy "
        f"{svc.policy or 'built in'}, metrics {where}; SIGTERM or Ctrl-C stops it"
    )


# --- send --------------------------------------------------------------------------------------


def _read_events(path: str, tenants: tuple[str, ...] = ()) -> tuple[list[Event], list[str]]:
    """The input events of a JSON-lines file, checked as the service checks them (unknown
    fields, integer ranges; for one of ``tenants`` when given), and the errors by line."""
    from ..nats.options import valid_tenant
    from ..service.strict import check_json

    stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115
    events: list[Event] = []
    errors: list[str] = []
    served = ", ".join(tenants)
    with stream:
        for n, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                event = decode_json(line)
                if not is_decision(event):
                    check_json(line)
            except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
                errors.append(f"line {n}: {exc}")
                continue
            if is_decision(event):
                errors.append(f"line {n}: a decision, not an input")
            elif not valid_tenant(event.tenant):
                errors.append(f"line {n}: tenant {event.tenant!r} is not a valid subject token")
            elif tenants and event.tenant not in tenants:
                errors.append(f"line {n}: tenant {event.tenant!r} is not served by the "
                              f"configuration ([service] tenants: {served})")  # fmt: skip
            else:
                events.append(event)
    return events, errors


def _send(config: ServiceConfig, args: argparse.Namespace, out: TextIO) -> int:
    with reported(OSError):
        events, errors = _read_events(args.file, config.service.named_tenants)
    for message in errors:
        print(f"omniroute send: {message}", file=sys.stderr)
    if errors and not args.skip_invalid:
        raise CliError(
            f"{len(errors)} invalid line(s); nothing sent (--skip-invalid sends the rest)"
        )
    if args.frame_events < 1:
        raise CliError("--frame-events must be >= 1")
    by_tenant: dict[str, list[bytes]] = {}
    for event in events:
        by_tenant.setdefault(event.tenant, []).append(encode_msgpack(event))
    return asyncio.run(_publish(config, args, by_tenant, len(events), out))


async def _publish(
    config: ServiceConfig, args: argparse.Namespace, by_tenant: dict[str, list[bytes]],
    count: int, out: TextIO,
) -> int:  # fmt: skip
    from ..nats.options import Subjects, connect, ensure_stream

    limit = config.stream.max_frame_bytes - 16
    nc = await connect(config.nats)
    started = time.perf_counter()
    try:
        js = nc.jetstream(timeout=config.nats.request_timeout_s)
        await ensure_stream(js, config.stream)
        futures = []
        frames = 0
        for tenant, encoded in by_tenant.items():
            subject = Subjects(config.stream.prefix, tenant).inputs
            frame: list[bytes] = []
            size = 0
            for data in [*encoded, None]:
                if data is None or len(frame) >= args.frame_events or size + len(data) > limit:
                    if frame:
                        payload = encode_frame(frame)
                        headers = None
                        if not args.no_dedup:
                            digest = hashlib.sha256(payload).hexdigest()[:32]
                            headers = {"Nats-Msg-Id": f"send:{tenant}:{digest}"}
                        futures.append(await js.publish_async(subject, payload, headers=headers))
                        frames += 1
                    frame, size = [], 0
                if data is not None:
                    frame.append(data)
                    size += len(data)
        acks = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        await nc.close()
    failed = [a for a in acks if isinstance(a, BaseException)]
    duplicates = sum(1 for a in acks if not isinstance(a, BaseException) and a.duplicate)
    elapsed = time.perf_counter() - started
    print(
        f"sent {count} events in {frames} messages to {len(by_tenant)} tenant(s) "
        f"({duplicates} duplicate message(s) dropped by the server) in {elapsed:.2f} s",
        file=out,
    )
    if failed:
        print(f"omniroute send: {len(failed)} message(s) not acknowledged: {failed[0]!r}",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILED
    return EXIT_OK


# --- tail --------------------------------------------------------------------------------------


def _tail_main(config: ServiceConfig, args: argparse.Namespace, out: TextIO) -> int:
    from ..nats.options import valid_tenant

    tenants = args.tenant or list(config.service.named_tenants)
    if not tenants:
        raise CliError("no tenant: pass --tenant T or configure [service] tenants")
    bad = [t for t in tenants if not valid_tenant(t)]
    if bad:
        raise CliError(f"invalid tenant {bad[0]!r}")

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)  # (main thread only)
        return await _tail(config, tenants, args, out, stop)

    return asyncio.run(main())


async def _tail(
    config: ServiceConfig, tenants: list[str], args: argparse.Namespace, out: TextIO,
    stop: asyncio.Event,
) -> int:  # fmt: skip
    from ..nats.cursor import Cursor
    from ..nats.options import connect

    prefix = config.stream.prefix
    kind = "rejected" if args.rejected else "out"
    subject = f"{prefix}.{tenants[0]}.{kind}" if len(tenants) == 1 else f"{prefix}.*.{kind}"
    wanted = {f"{prefix}.{t}.{kind}" for t in tenants}
    nc = await connect(config.nats)
    printed = 0
    try:
        js = nc.jetstream(timeout=config.nats.request_timeout_s)
        start = 1
        if not args.from_start:
            info = await js.stream_info(config.stream.name)
            start = info.state.last_seq + 1
        cursor = Cursor(nc, config.stream.name, subject, start, batch=256)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                idle_s = time.monotonic() - idle_since
                if args.idle_exit is not None and idle_s > args.idle_exit:
                    break
                msgs = await cursor.fetch(0.25)
                for msg in msgs:
                    if msg.subject not in wanted:
                        continue
                    lines, news = _lines(msg, args)
                    if news:
                        idle_since = time.monotonic()
                    for line in lines:
                        out.write(line + "\n")
                        printed += 1
                        if args.count is not None and printed >= args.count:
                            out.flush()
                            return EXIT_OK
                    if lines:
                        out.flush()
        finally:
            await cursor.close()
    finally:
        await nc.close()
    return EXIT_OK


def _lines(msg: object, args: argparse.Namespace) -> tuple[list[str], bool]:
    """The lines to print of one message, and whether it held news: anything but a lone
    ``Tick`` (the service's ticks alone do not keep ``--idle-exit`` awake)."""
    from nats.aio.msg import Msg

    from ..nats.frames import Frame

    assert isinstance(msg, Msg)
    if args.rejected:
        return [msg.data.decode(errors="replace")], True
    headers = {str(k): str(v) for k, v in (msg.headers or {}).items()}
    frame = Frame.from_msg(0, headers, msg.data)
    lines = []
    news = False
    for raw in frame.events():
        event = decode_msgpack(raw)
        news = news or not isinstance(event, Tick)
        if args.inputs or is_decision(event):
            lines.append(msgspec.json.encode(event).decode())
    return lines, news


COMMANDS: dict[str, Command] = {
    "serve": Command(
        help="run the routing service against NATS JetStream",
        description="Consume <prefix>.<tenant>.in, apply, append inputs and decisions to "
        "<prefix>.<tenant>.out; one writer per tenant (a KV lease), other instances are hot "
        "standbys. SIGTERM/SIGINT drain gracefully.",
        add_arguments=_serve_arguments,
        run=_configured(_serve),
        extra="service",
    ),
    "send": Command(
        help="publish input events from a JSON-lines file",
        description="Validate every line of FILE (one JSON event per line; '-' reads stdin), "
        "then publish them in frames to <prefix>.<tenant>.in and wait for the "
        "acknowledgements.",
        add_arguments=_send_arguments,
        run=_configured(_send),
        extra="service",
    ),
    "tail": Command(
        help="print decisions as they are appended",
        description="Print, one JSON object per line, the decisions appended to the tenants' "
        "logs (<prefix>.<tenant>.out).",
        add_arguments=_tail_arguments,
        run=_configured(_tail_main),
        extra="service",
    ),
}
"""The commands of this module, for ``main``'s table."""
