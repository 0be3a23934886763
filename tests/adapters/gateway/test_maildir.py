"""Email from a Maildir the gateway watches and an mbox it imports."""

from __future__ import annotations

import mailbox
import time
from pathlib import Path
from typing import Any

from omniroute.engine.events import ConversationArrived, MessageReceived
from tests.support import webhooks as hooks

from .conftest import CONFIG, logged


def _mail(message_id: str, sender: str, references: str | None = None) -> bytes:
    body, _ = hooks.email(None, message_id, sender, "hello", references=references)
    return body


def _with_mailboxes(**paths: str) -> dict[str, Any]:
    sources = [s for s in CONFIG["source"] if s["provider"] != "email"]
    return {**CONFIG, "source": [*sources, {"provider": "email", "name": "box", **paths}]}


def test_a_maildir_is_read_and_each_message_marked_seen(make_client, tmp_path: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    box.add(_mail("a1@x.example", "kim@x.example"))
    box.add(_mail("a2@x.example", "kim@x.example", references="a1@x.example"))
    box.add(b"this is not an email at all")
    make_client(data=_with_mailboxes(maildir=str(tmp_path / "Maildir")))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list((tmp_path / "Maildir" / "new").iterdir()):
        time.sleep(0.05)
    seen = sorted(p.name.rsplit(",", 1)[1] for p in (tmp_path / "Maildir" / "cur").iterdir())
    assert seen == ["F", "S", "S"]  # the junk flagged, kept for an operator
    kinds = [type(e) for e in logged(tmp_path / "g.olog")
             if isinstance(e, ConversationArrived | MessageReceived)]  # fmt: skip
    assert kinds == [ConversationArrived, MessageReceived]


def test_an_mbox_import_is_idempotent(make_client, tmp_path: Path) -> None:
    box = mailbox.mbox(tmp_path / "support.mbox")
    for n in range(3):
        box.add(_mail(f"m{n}@x.example", f"c{n}@x.example"))
    box.close()
    data = _with_mailboxes(mbox=str(tmp_path / "support.mbox"))

    def arrivals() -> int:
        return sum(isinstance(e, ConversationArrived) for e in logged(tmp_path / "g.olog"))

    client = make_client(data=data)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and arrivals() < 3:
        time.sleep(0.05)
    client.__exit__(None, None, None)
    again = make_client(data=data)  # a restart imports the same file again: nothing new
    duplicates = 'omniroute_gateway_items_total{outcome="duplicate",provider="email"} 3.0'
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and duplicates not in again.get("/metrics").text:
        time.sleep(0.05)
    assert duplicates in again.get("/metrics").text
    assert arrivals() == 3
