"""Decoding ``P.T.in`` messages into input events, or rejections of the bad ones.

A message is a msgpack array of events (a frame, what ``omniroute send`` writes), a single
msgpack event map, or JSON (one event object or an array of them). Every event is checked
strictly (:mod:`.strict`: no unknown field, integers the log can hold), for the subject's
tenant and for being an input, not a decision; what fails becomes a :class:`Rejection`.
A message that does not parse at all, or holds no event, is a dead letter.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from omniroute.engine.events import TAGS, Event, Input, decode_json, decode_msgpack, is_decision

from .strict import json_checker, msgpack_checker, msgpack_list_checker

__all__ = ["Rejection", "decode_inputs"]

_ID_CHARS = 200  # an event id quoted in a rejection is cut to this


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
_UNPARSABLE = (msgspec.DecodeError, RecursionError)


def _describe(raw: bytes, json: bool) -> tuple[str | None, str | None]:
    """Best-effort ``type`` and ``id`` of an event that did not validate."""
    try:
        obj = msgspec.json.decode(raw) if json else msgspec.msgpack.decode(raw)
    except _UNPARSABLE:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    etype, eid = obj.get("type"), obj.get("id")
    return (
        etype[:_ID_CHARS] if isinstance(etype, str) else None,
        eid[:_ID_CHARS] if isinstance(eid, str) else None,
    )


def _split(data: bytes, json: bool) -> tuple[list[bytes], list[Event] | None]:
    """The message's events as raw bytes (or, for a frame of valid inputs, decoded).

    Raises ``msgspec.DecodeError`` or ``RecursionError`` when the message does not parse.
    """
    if json:
        if data[:1] == b"{":
            return [data], None
        return [bytes(r) for r in _json_raw_list.decode(data)], None
    if data[0] in _MAP_MARKERS:
        return [data], None
    try:  # the fast path: a frame of valid inputs, checked and decoded in two calls
        msgpack_list_checker.decode(data)
        return [], list(_msgpack_input_list.decode(data))
    except _UNPARSABLE:
        pass  # something in it is not a valid input: classify one by one
    return [bytes(r) for r in _msgpack_raw_list.decode(data)], None


def decode_inputs(data: bytes, tenant: str) -> tuple[list[Event | Rejection], str | None]:
    """The events of one ``.in`` message, each valid for ``tenant`` or a :class:`Rejection`.

    Returns ``([], reason)`` when the message as a whole does not parse or holds no event
    (a dead letter).
    """
    stripped = data.lstrip()
    if not stripped:
        return [], "empty message"
    json = stripped[:1] in (b"{", b"[")
    try:
        raws, events = _split(stripped if json else data, json)
    except _UNPARSABLE as exc:
        what = "JSON" if json else "a msgpack array of events nor JSON"
        return [], f"{'not valid' if json else 'neither'} {what}: {exc}"
    if events:
        if all(e.tenant == tenant for e in events):
            return list[Event | Rejection](events), None
        raws = [bytes(r) for r in _msgpack_raw_list.decode(data)]
    if not raws:
        return [], "the message holds no events"
    checker = json_checker if json else msgpack_checker
    single = stripped[:1] == b"{" if json else data[0] in _MAP_MARKERS
    items: list[Event | Rejection] = []
    for raw in raws:
        try:
            event = decode_json(raw) if json else decode_msgpack(raw)
            if not is_decision(event):
                checker.decode(raw)  # unknown fields, integers beyond the log's
        except msgspec.ValidationError as exc:
            items.append(Rejection("schema", f"invalid event: {exc}", *_describe(raw, json)))
            continue
        except _UNPARSABLE as exc:
            if single:
                return [], f"not a valid event: {exc}"
            items.append(Rejection("schema", f"invalid event: {exc}"))
            continue
        etype, eid = TAGS.get(type(event)), event.id and event.id[:_ID_CHARS]
        if event.tenant != tenant:
            reason = (f"event for tenant {event.tenant[:_ID_CHARS]!r} published on the subject "
                      f"of tenant {tenant!r}")  # fmt: skip
            items.append(Rejection("tenant", reason, etype, eid))
        elif is_decision(event):
            reason = "decisions are emitted by the engine, not published as input"
            items.append(Rejection("decision", reason, etype, eid))
        else:
            items.append(event)
    return items, None
