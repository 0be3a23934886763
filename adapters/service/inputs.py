"""Decoding ``P.T.in`` messages into input events, or rejections of the bad ones.

A message is a msgpack array of events (a frame, what ``omniroute send`` writes), a single
msgpack event map, or JSON (one event object or an array of them). Every event is checked
for the subject's tenant and for being an input, not a decision; what fails becomes a
:class:`Rejection`. A message that does not parse at all is a dead letter.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from omniroute.engine.events import TAGS, Event, Input, decode_json, decode_msgpack, is_decision

__all__ = ["Rejection", "decode_inputs"]


class Rejection(NamedTuple):
    """A bad input event, before it becomes an ``EventRejected``."""

    stage: str
    reason: str
    event_type: str | None = None
    event_id: str | None = None


_json_raw_list = msgspec.json.Decoder(list[msgspec.Raw])
_msgpack_raw_list = msgspec.msgpack.Decoder(list[msgspec.Raw])
_msgpack_input_list: msgspec.msgpack.Decoder[list[Input]] = msgspec.msgpack.Decoder(list[Input])
_MAP_MARKERS = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}


def _describe(raw: bytes, json: bool) -> tuple[str | None, str | None]:
    """Best-effort ``type`` and ``id`` of an event that did not validate."""
    try:
        obj = msgspec.json.decode(raw) if json else msgspec.msgpack.decode(raw)
    except msgspec.DecodeError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    etype, eid = obj.get("type"), obj.get("id")
    return (etype if isinstance(etype, str) else None, eid if isinstance(eid, str) else None)


def decode_inputs(data: bytes, tenant: str) -> tuple[list[Event | Rejection], str | None]:
    """The events of one ``.in`` message, each valid for ``tenant`` or a :class:`Rejection`.

    Returns ``([], reason)`` when the message as a whole does not parse (a dead letter).
    """
    stripped = data.lstrip()
    if not stripped:
        return [], "empty message"
    json = stripped[:1] in (b"{", b"[")
    raws: list[bytes]
    if json:
        try:
            raws = [stripped] if stripped[:1] == b"{" else [
                bytes(r) for r in _json_raw_list.decode(stripped)
            ]  # fmt: skip
        except msgspec.DecodeError as exc:
            return [], f"not valid JSON: {exc}"
    elif data[0] in _MAP_MARKERS:
        raws = [data]
    else:
        try:  # the fast path: a frame of valid inputs, decoded in one call
            inputs = _msgpack_input_list.decode(data)
        except msgspec.DecodeError:
            pass  # something in it is not a valid input: classify one by one below
        else:
            if all(e.tenant == tenant for e in inputs):
                return list(inputs), None
        try:
            raws = [bytes(r) for r in _msgpack_raw_list.decode(data)]
        except msgspec.DecodeError as exc:
            return [], f"neither a msgpack array of events nor JSON: {exc}"
    items: list[Event | Rejection] = []
    for raw in raws:
        try:
            event = decode_json(raw) if json else decode_msgpack(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            items.append(Rejection("schema", f"invalid event: {exc}", *_describe(raw, json)))
            continue
        if event.tenant != tenant:
            items.append(
                Rejection(
                    "tenant",
                    f"event for tenant {event.tenant!r} published on the subject of tenant "
                    f"{tenant!r}",
                    TAGS.get(type(event)),
                    event.id,
                )
            )
        elif is_decision(event):
            items.append(
                Rejection(
                    "decision",
                    "decisions are emitted by the engine, not published as input",
                    TAGS.get(type(event)),
                    event.id,
                )
            )
        else:
            items.append(event)
    return items, None
