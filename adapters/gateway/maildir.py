"""Email read from a mailbox instead of POSTed: a Maildir the gateway watches, or an mbox
file it imports.

``[[source]] provider = "email"`` with ``maildir = PATH``: every message a delivery agent
puts in ``PATH/new`` is read like a POSTed one (:func:`~omniroute.adapters.channels.mail.parse`)
and, once its inputs are durable, moved to ``PATH/cur`` (Maildir's "seen"): a crash before
the move reads it again, and its ``Message-ID`` makes that no second contact. A message
that is not an email is moved to ``cur`` with the ``,F`` (flagged) info so an operator
finds it. With ``mbox = PATH`` the messages of an mbox file are imported once at start
(idempotent by ``Message-ID``; mbox has no per-message "seen").
"""

from __future__ import annotations

import asyncio
import logging
import mailbox
import os
import time
from pathlib import Path

from ..channels import mail
from ..channels.inbound import BadPayload
from .config import Source
from .gateway import Gateway

__all__ = ["MailboxReader"]

_log = logging.getLogger(__name__)


class MailboxReader:
    """Reads one email source's Maildir (polled every ``every_s``) or mbox file."""

    def __init__(self, gw: Gateway, source: Source, every_s: float = 1.0) -> None:
        self.gw = gw
        self.source = source
        self.every_s = every_s
        self.read = 0
        self.failed = 0

    async def run(self) -> None:
        """Import the mbox, then poll the Maildir until cancelled."""
        if self.source.mbox:
            await self.import_mbox(Path(self.source.mbox))
        if self.source.maildir:
            root = Path(self.source.maildir)
            for sub in ("new", "cur", "tmp"):
                (root / sub).mkdir(parents=True, exist_ok=True)
            while True:
                await self.poll(root)
                await asyncio.sleep(self.every_s)

    async def poll(self, root: Path) -> int:
        """Read every message in ``root/new``; the number read."""
        names = sorted(os.listdir(root / "new"))
        for name in names:
            path = root / "new" / name
            try:
                raw = path.read_bytes()
            except FileNotFoundError:  # another reader took it
                continue
            try:
                ok = await self._ingest(raw, name)
            except Exception as exc:
                _log.warning(
                    "mailbox %s: %s not stored (%s); retrying", self.source.name, name, exc
                )
                return 0
            flags = ":2,S" if ok else ":2,F"
            base = name.split(":2,")[0]
            os.replace(path, root / "cur" / (base + flags))
        return len(names)

    async def import_mbox(self, path: Path) -> int:
        """Submit every message of the mbox at ``path``; the number read."""
        box = mailbox.mbox(path, create=False)
        count = 0
        try:
            for key in box.iterkeys():
                await self._ingest(box.get_bytes(key), f"{path.name}#{key}")
                count += 1
        finally:
            box.close()
        return count

    async def _ingest(self, raw: bytes, name: str) -> bool:
        """Submit one message; False if it is not an email (kept aside, never lost)."""
        try:
            items = mail.parse(raw, time.time_ns() // 1_000_000)
        except BadPayload as exc:
            self.failed += 1
            self.gw.metrics.rejects.labels("email", "bad_payload").inc()
            _log.warning("mailbox %s: %s is not an email: %s", self.source.name, name, exc)
            return False
        await self.gw.ingest(self.source, items)
        self.read += 1
        return True
