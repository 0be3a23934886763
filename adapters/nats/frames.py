"""Log frames: several events in one NATS message, described by its headers.

A frame's payload is a msgpack array whose items are exactly ``encode_msgpack(event)``
(:func:`~omniroute.engine.log.encode_frame`, the ``FileLog`` frame payload), so
throughput is not capped by per-message client cost. Headers make every frame
self-describing: ``Omniroute-Pos`` (log position of its first event) and
``Omniroute-Count`` (its events); the service adds ``Omniroute-In`` (the last ``.in``
stream sequence whose events are in the log up to this frame) and ``Omniroute-Writer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from omniroute.engine.log import CorruptLogError

__all__ = [
    "HEADER_COUNT",
    "HEADER_IN",
    "HEADER_POS",
    "HEADER_WRITER",
    "MSG_ID",
    "Frame",
    "decode_frame",
    "plain_headers",
    "split_batch",
]

HEADER_POS = "Omniroute-Pos"
HEADER_COUNT = "Omniroute-Count"
HEADER_IN = "Omniroute-In"
HEADER_WRITER = "Omniroute-Writer"
MSG_ID = "Nats-Msg-Id"
"""JetStream de-duplicates messages with the same id within the stream's window."""

_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])


def decode_frame(payload: bytes | memoryview) -> list[bytes]:
    """The encoded events of a frame payload; raises ``msgspec.DecodeError`` if malformed."""
    return [bytes(r) for r in _raw_list_decoder.decode(payload)]


def split_batch(encoded: Sequence[bytes], max_bytes: int) -> list[Sequence[bytes]]:
    """The batch in parts of at most ``max_bytes`` each (one part when it fits)."""
    if sum(map(len, encoded)) + 5 <= max_bytes:
        return [encoded]
    parts: list[list[bytes]] = [[]]
    size = 5
    for data in encoded:
        if len(data) + 5 > max_bytes:
            raise ValueError(f"an event of {len(data)} bytes is larger than a frame may be")
        if parts[-1] and size + len(data) > max_bytes:
            parts.append([])
            size = 5
        parts[-1].append(data)
        size += len(data)
    return list(parts)


@dataclass(frozen=True)
class Frame:
    """One message of a log subject: stream sequence, first position, its events' bytes."""

    seq: int
    pos: int
    count: int
    headers: Mapping[str, str]
    payload: bytes

    @property
    def end(self) -> int:
        return self.pos + self.count

    def events(self) -> list[bytes]:
        raws = decode_frame(self.payload)
        if len(raws) != self.count:
            raise CorruptLogError(
                f"frame at stream sequence {self.seq} holds {len(raws)} events, its header "
                f"says {self.count}"
            )
        return raws

    @classmethod
    def from_msg(cls, seq: int, headers: Mapping[str, str] | None, data: bytes) -> Frame:
        h = headers or {}
        try:
            pos, count = int(h[HEADER_POS]), int(h[HEADER_COUNT])
        except (KeyError, ValueError):
            raise CorruptLogError(
                f"message at stream sequence {seq} is not an omniroute frame (no "
                f"{HEADER_POS}/{HEADER_COUNT} headers)"
            ) from None
        return cls(seq, pos, count, h, data)


def plain_headers(headers: Mapping[str, Any] | None) -> dict[str, str]:
    """A message's headers as a plain ``str -> str`` dict."""
    return {str(k): str(v) for k, v in (headers or {}).items()}
