"""Snapshots of a tenant's engine, and where they are kept.

A :class:`Snapshot` is the engine state after the log frame at stream sequence
``out_seq``, with the log position and the last input sequence the log covers. The
writer saves one every ``snapshot_every`` log events and on shutdown, to the JetStream
object store or a folder; on start it is restored when the log still holds the frame it
names and the policy digest matches.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import msgspec
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.object_store import ObjectStore

from omniroute.engine.policy import Policy
from omniroute.engine.state import STATE_VERSION

from ..nats.options import REFUSALS, placement, refused
from .config import ServiceConfig

__all__ = [
    "FileSnapshots",
    "ObjectStoreSnapshots",
    "Snapshot",
    "SnapshotStore",
    "open_snapshot_store",
    "policy_digest",
]


class Snapshot(msgspec.Struct, kw_only=True):
    """Engine state after the log frame at stream sequence ``out_seq`` (position ``out_end``)."""

    version: int = STATE_VERSION
    tenant: str
    out_seq: int
    out_end: int
    in_seq: int
    policy_digest: str
    created_ms: int
    engine: bytes

    @classmethod
    def decode(cls, data: bytes) -> Snapshot:
        """A snapshot from its stored bytes; raises ``msgspec.DecodeError``."""
        return _snapshot_decoder.decode(data)


_snapshot_decoder = msgspec.msgpack.Decoder(Snapshot)


def policy_digest(policy: Policy) -> str:
    """A short digest of a policy: snapshots made under another policy are not restored."""
    return hashlib.sha256(msgspec.json.encode(policy)).hexdigest()[:16]


class SnapshotStore:
    """Where snapshots are kept, one per key; this base keeps none (``snapshots = "off"``)."""

    async def load(self, tenant: str) -> bytes | None:
        return None

    async def save(self, tenant: str, data: bytes) -> None:
        return None


class ObjectStoreSnapshots(SnapshotStore):
    """Snapshots as objects of a JetStream object store bucket.

    A load gives up after ``timeout`` seconds with ``TimeoutError`` (transient: the worker
    tries again): nats-py reads an object's chunks with no deadline of its own, so a
    transfer cut off by a node's loss would otherwise wait for ever.
    """

    def __init__(self, store: ObjectStore, timeout: float = 60.0) -> None:
        self._store = store
        self._timeout = timeout

    async def load(self, tenant: str) -> bytes | None:
        try:
            result = await asyncio.wait_for(self._store.get(tenant), self._timeout)
        except nats.js.errors.ObjectNotFoundError:
            return None
        except nats.js.errors.ObjectDeletedError:
            return None
        return bytes(result.data) if result.data is not None else None

    async def save(self, tenant: str, data: bytes) -> None:
        await self._store.put(tenant, data)


class FileSnapshots(SnapshotStore):
    """Snapshots as files of a folder, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._dir / f"{key}.snapshot"

    async def load(self, tenant: str) -> bytes | None:
        try:
            return self._path(tenant).read_bytes()
        except FileNotFoundError:
            return None

    async def save(self, tenant: str, data: bytes) -> None:
        path = self._path(tenant)
        fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=f".{tenant}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


async def open_snapshot_store(js: JetStreamContext, config: ServiceConfig) -> SnapshotStore:
    """The store ``[service] snapshots`` names; the object store bucket is created if missing."""
    opts = config.service
    if opts.snapshots == "off":
        return SnapshotStore()
    if opts.snapshots == "file":
        assert opts.snapshot_dir is not None
        return FileSnapshots(Path(opts.snapshot_dir))
    try:
        store = await js.object_store(opts.snapshot_bucket)
    except nats.js.errors.BucketNotFoundError:
        replicas = config.snapshot_replicas
        try:
            store = await js.create_object_store(
                opts.snapshot_bucket,
                ObjectStoreConfig(storage=StorageType.FILE, replicas=replicas,
                                  placement=placement(config.stream)),
            )  # fmt: skip
        except (nats.js.errors.BadRequestError, nats.js.errors.ServerError) as exc:
            if exc.err_code in REFUSALS:
                raise refused(exc, "service.snapshot_replicas", replicas) from exc
            raise
    return ObjectStoreSnapshots(store)
