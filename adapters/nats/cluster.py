"""``LocalNatsCluster``: a JetStream cluster of ``nats-server`` children on loopback, for tests
and benchmarks.

Each node is a :class:`~.server.LocalNatsServer` with its own client port, route port and
JetStream folder, routed to the others; any node can be killed (``kill -9``, as a crash
would) and started again on the same ports and folder, where it catches up from the
others. JetStream reports stream leaders by server name: :meth:`LocalNatsCluster.leader_of`
names the node that leads a stream (a KV bucket ``B`` is the stream ``KV_B``)::

    with LocalNatsCluster(tmp_path) as cluster:
        options = NatsOptions(servers=cluster.urls)
        cluster.node(cluster.leader_of("OMNIROUTE")).kill()

This is not a production deployment tool: it runs on loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import nats
import nats.errors
import nats.js.errors

from .server import LocalNatsServer, conf_string, free_port

__all__ = ["LocalNatsCluster"]


class LocalNatsCluster:
    """``size`` routed ``nats-server -js`` nodes named ``n1``, ``n2``, ... on 127.0.0.1.

    ``tags`` gives each node's ``server_tags`` (placement), by node name.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        size: int = 3,
        *,
        name: str = "omniroute",
        tags: dict[str, tuple[str, ...]] | None = None,
        ready_timeout: float = 30.0,
    ) -> None:
        if size < 1:
            raise ValueError(f"a cluster has at least one node, got {size}")
        self.name = name
        self.ready_timeout = ready_timeout
        routes = [free_port() for _ in range(size)]
        self.nodes: list[LocalNatsServer] = []
        for i in range(size):
            node = f"n{i + 1}"
            others = ", ".join(
                conf_string(f"nats-route://127.0.0.1:{port}") for j, port in enumerate(routes)
                if j != i
            )  # fmt: skip
            lines = [
                "cluster { name: " + conf_string(name)
                + ", listen: " + conf_string(f"127.0.0.1:{routes[i]}")
                + ", routes: [" + others + "] }",
            ]  # fmt: skip
            if tags and tags.get(node):
                lines.append("server_tags: [" + ", ".join(map(conf_string, tags[node])) + "]")
            self.nodes.append(
                LocalNatsServer(Path(directory) / node, name=node, extra_config=lines)
            )

    @property
    def urls(self) -> tuple[str, ...]:
        """Every node's client URL (a client given them all fails over between them)."""
        return tuple(n.url for n in self.nodes)

    def node(self, name: str) -> LocalNatsServer:
        """The node called ``name`` (``n1``, ...)."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node {name!r} in the cluster")

    def start(self) -> Self:
        """Start every node that is not running and wait until JetStream answers on each."""
        for n in self.nodes:
            n.start()
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        """Wait until every running node's JetStream answers (a meta leader is elected)."""
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        for n in self.nodes:
            while n.running and not asyncio.run(_jetstream_answers(n.url)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JetStream of cluster {self.name} not ready on {n.name}")
                time.sleep(0.1)

    def leader_of(self, stream: str, timeout: float = 30.0) -> str:
        """The name of the node leading ``stream`` (waits while an election runs)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.nodes:
                if n.running and (leader := asyncio.run(_leader(n.url, stream))):
                    return leader
            time.sleep(0.1)
        raise RuntimeError(f"stream {stream} has no leader after {timeout} s")

    def wait_current(self, streams: list[str], timeout: float = 60.0) -> None:
        """Wait until each of ``streams`` has a leader and every replica is current (a
        restarted node has caught up), so that losing another node keeps a quorum."""
        deadline = time.monotonic() + timeout
        for stream in streams:
            while not any(n.running and asyncio.run(_all_current(n.url, stream))
                          for n in self.nodes):  # fmt: skip
                if time.monotonic() > deadline:
                    raise RuntimeError(f"stream {stream}: replicas not current after {timeout} s")
                time.sleep(0.1)

    def stop(self) -> None:
        for n in self.nodes:
            with contextlib.suppress(Exception):
                n.stop()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def _jetstream_answers(url: str) -> bool:
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    except Exception:
        return False
    try:
        await nc.jetstream(timeout=1).account_info()
        return True
    except (nats.errors.Error, TimeoutError):
        return False
    finally:
        await nc.close()


async def _leader(url: str, stream: str) -> str | None:
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    except Exception:
        return None
    try:
        info = await nc.jetstream(timeout=1).stream_info(stream)
        return info.cluster.leader if info.cluster is not None else None
    except (nats.errors.Error, TimeoutError):
        return None
    finally:
        await nc.close()


async def _all_current(url: str, stream: str) -> bool:
    try:
        nc = await nats.connect(url, connect_timeout=1, allow_reconnect=False)
    except Exception:
        return False
    try:
        cluster = (await nc.jetstream(timeout=1).stream_info(stream)).cluster
        if cluster is None or not cluster.leader:
            return False
        return all(p.current and not p.offline for p in cluster.replicas or [])
    except (nats.errors.Error, TimeoutError):
        return False
    finally:
        await nc.close()
