"""``FileLog``: the embedded ``EventLog``, a single local file of checksummed frames.

File format (all integers little-endian)::

    file    = MAGIC frame*
    MAGIC   = b"OMRLOG1\\n"                      (8 bytes)
    frame   = length:u32 crc:u32 payload         (crc = zlib.crc32(payload))
    payload = msgpack array of N >= 1 events, each exactly ``encode_msgpack(event)``

One ``append`` batch is one frame, written with one write call and then (with
``fsync="always"``) ``fdatasync``-ed before ``append`` returns. Opening scans and
verifies every frame and keeps an index of frame offsets (16 bytes per frame).

Recovery on open. A frame that is incomplete, fails its checksum or does not decode
is *the torn tail* when no valid frame follows it: it is what a crash mid-append
leaves, so it is truncated away (``recovered_bytes``/``recovered_frames`` record how
much, and a warning is logged). When a valid frame does follow, the damage is in the
middle of the log: ``CorruptLogError`` names the offset, unless ``repair=True``, which
truncates the log to the good prefix before the damage.

One writer per file (enforced with ``flock``). Other processes may open the file with
``readonly=True``: they never modify it, ignore an incomplete tail and pick up the
writer's new frames with ``refresh()``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import struct
import zlib
from array import array
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import msgspec

from omniroute.engine.events import Event
from omniroute.engine.log import CorruptLogError, EventLog, LogError, encode_frame

__all__ = ["MAGIC", "FileLog"]

_log = logging.getLogger(__name__)

MAGIC = b"OMRLOG1\n"
_HEADER = struct.Struct("<II")
_HEADER_SIZE = _HEADER.size
_MAX_PAYLOAD = 0xFFFF_FFFF
_CHUNK = 1 << 20  # bytes read per pread when scanning or reading many frames

_raw_list_decoder = msgspec.msgpack.Decoder(list[msgspec.Raw])
_event_list_decoder: msgspec.msgpack.Decoder[list[Event]] = msgspec.msgpack.Decoder(list[Event])

# msgpack markers, used only to skip implausible candidates when looking for a valid
# frame after a damaged one (every candidate that passes is then fully verified).
_ARRAY_MARKERS = frozenset(range(0x91, 0xA0)) | {0xDC, 0xDD}
_CONTAINER_MARKERS = frozenset(range(0x80, 0xA0)) | {0xDC, 0xDD, 0xDE, 0xDF}
_PAYLOAD_START = re.compile(  # an array header, then a map or array header
    rb"(?=[\x91-\x9f][\x80-\x9f\xdc-\xdf]|\xdc..[\x80-\x9f\xdc-\xdf]|\xdd....[\x80-\x9f\xdc-\xdf])",
    re.DOTALL,
)


def _sync(fd: int) -> None:
    """Flush the file's data (and its size) to stable storage."""
    if hasattr(os, "fdatasync"):
        os.fdatasync(fd)
    else:  # macOS
        os.fsync(fd)


class _Window:
    """Buffered random access to a file descriptor via ``pread``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._base = 0
        self._buf = b""

    def view(self, off: int, n: int) -> memoryview:
        """``n`` bytes at ``off`` (the caller has checked they exist); may refill."""
        rel = off - self._base
        if rel < 0 or rel + n > len(self._buf):
            self._buf = os.pread(self._fd, max(n, _CHUNK), off)
            self._base, rel = off, 0
            if len(self._buf) < n:
                raise LogError(f"file shrank while being read (wanted {n} bytes at {off})")
        return memoryview(self._buf)[rel : rel + n]

    def peek(self, off: int, n: int) -> bytes:
        """Up to ``n`` bytes at ``off`` without moving the window."""
        rel = off - self._base
        if rel >= 0 and rel + n <= len(self._buf):
            return self._buf[rel : rel + n]
        return os.pread(self._fd, n, off)


def _check_frame(win: _Window, off: int, size: int) -> tuple[int, int] | str:
    """Verify the frame at ``off``: ``(event count, frame size)``, or why it is bad."""
    if size - off < _HEADER_SIZE:
        return "incomplete frame header"
    length, crc = _HEADER.unpack(win.view(off, _HEADER_SIZE))
    if length == 0:
        return "empty frame"
    if length > size - off - _HEADER_SIZE:
        return f"frame of {length} bytes runs past the end of the file"
    payload = win.view(off + _HEADER_SIZE, length)
    if zlib.crc32(payload) != crc:
        return "checksum mismatch"
    try:
        count = len(_raw_list_decoder.decode(payload))
    except msgspec.DecodeError as exc:
        return f"undecodable payload ({exc})"
    if count == 0:
        return "frame holds no events"
    return count, _HEADER_SIZE + length


def _plausible_header(win: _Window, off: int, size: int) -> int | None:
    """A cheap filter: the frame end if a frame could start at ``off``, else None."""
    head = win.peek(off, _HEADER_SIZE + 6)
    if len(head) < _HEADER_SIZE + 1:
        return None
    length = int.from_bytes(head[:4], "little")
    if length == 0 or length > size - off - _HEADER_SIZE:
        return None
    marker = head[_HEADER_SIZE]
    if marker not in _ARRAY_MARKERS:
        return None
    first = _HEADER_SIZE + (1 if marker < 0xA0 else 3 if marker == 0xDC else 5)
    in_view = first < len(head) and first - _HEADER_SIZE < length
    if in_view and head[first] not in _CONTAINER_MARKERS:
        return None
    return off + _HEADER_SIZE + length


def _find_frame_after(win: _Window, off: int, size: int) -> int | None:
    """The offset of the first valid frame after a bad one at ``off``, if any."""
    q = off + 1 + _HEADER_SIZE  # where the payload of the next candidate would start
    while q < size:
        chunk = win.peek(q, _CHUNK + 5)
        for match in _PAYLOAD_START.finditer(chunk):
            if match.start() >= _CHUNK:
                break
            p = q + match.start() - _HEADER_SIZE
            nxt = _plausible_header(win, p, size)
            if nxt is None or (nxt != size and _plausible_header(win, nxt, size) is None):
                continue
            if not isinstance(_check_frame(win, p, size), str):
                return p
        q += _CHUNK
    return None


class FileLog(EventLog):
    """An ``EventLog`` in one local file; see the module docstring for format and recovery.

    ``fsync="always"`` makes every ``append`` durable before it returns; ``"never"``
    leaves flushing to the OS (a crash may lose recent batches, never part of one).
    """

    recovered_bytes: int
    """Bytes of torn or corrupt data truncated away when the log was opened."""
    recovered_frames: int
    """Frames (whole or partial) truncated away when the log was opened."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fsync: Literal["always", "never"] = "always",
        repair: bool = False,
        *,
        readonly: bool = False,
    ) -> None:
        if fsync not in ("always", "never"):
            raise ValueError(f"fsync must be 'always' or 'never', got {fsync!r}")
        if readonly and repair:
            raise ValueError("a read-only log cannot be repaired")
        self._path = Path(path)
        self._fsync = fsync == "always"
        self._readonly = readonly
        self._frame_offsets = array("q")  # byte offset of each frame
        self._frame_starts = array("q")  # position of each frame's first event
        self._end = 0  # number of events
        self._size = 0  # bytes of verified content (0: header not verified yet)
        self._failed: BaseException | None = None
        self.recovered_bytes = 0
        self.recovered_frames = 0
        flags = os.O_RDONLY if readonly else os.O_RDWR | os.O_CREAT
        self._fd = os.open(self._path, flags | os.O_CLOEXEC, 0o644)
        try:
            if not readonly:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise LogError(f"{self._path} is already open for writing") from None
            self._open(repair)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    @property
    def path(self) -> Path:
        return self._path

    @property
    def closed(self) -> bool:
        return self._fd < 0

    @property
    def _name(self) -> str:
        return str(self._path)

    # --- opening and recovery ---------------------------------------------------------

    def _open(self, repair: bool) -> None:
        stop, size, reason = self._scan()
        if self._readonly:
            if reason is not None:
                self._check_tail(stop, size, reason, repair=False)
            return
        if self._size == 0:  # new file, or a crash while creating it
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, MAGIC, 0)
            _sync(self._fd)
            dir_fd = os.open(self._path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            self._size = len(MAGIC)
        elif reason is not None:
            frames = self._check_tail(stop, size, reason, repair)
            os.ftruncate(self._fd, stop)
            _sync(self._fd)
            self.recovered_bytes = size - stop
            self.recovered_frames = frames
            _log.warning(
                "%s: truncated %d bytes (%d frame(s)) at offset %d: %s",
                self._path, size - stop, frames, stop, reason,
            )  # fmt: skip

    def _scan(self) -> tuple[int, int, str | None]:
        """Index the valid frames after ``self._size``.

        Returns (offset where valid data stops, file size, why it stops or None at EOF).
        """
        size = os.fstat(self._fd).st_size
        if self._size == 0:
            head = os.pread(self._fd, len(MAGIC), 0)
            if not MAGIC.startswith(head):
                raise CorruptLogError(f"{self._path}: not an omniroute log (bad magic header)", 0)
            if len(head) < len(MAGIC):
                return 0, size, None
            self._size = len(MAGIC)
        elif size < self._size:
            raise LogError(f"{self._path} shrank from {self._size} to {size} bytes")
        win = _Window(self._fd)
        off, end = self._size, self._end
        offsets, starts = self._frame_offsets, self._frame_starts
        reason: str | None = None
        while off < size:
            checked = _check_frame(win, off, size)
            if isinstance(checked, str):
                reason = checked
                break
            count, frame_size = checked
            offsets.append(off)
            starts.append(end)
            off += frame_size
            end += count
        self._size, self._end = off, end
        return off, size, reason

    def _check_tail(self, off: int, size: int, reason: str, repair: bool) -> int:
        """Raise unless the bad frame at ``off`` is the tail; return frames to drop."""
        win = _Window(self._fd)
        found = _find_frame_after(win, off, size)
        if found is None:
            return 1
        if not repair:
            raise CorruptLogError(
                f"{self._path}: corrupt frame at byte offset {off} ({reason}) with valid frames "
                f"after it (from offset {found}); open with repair=True to truncate the log to "
                f"the {self._end} events before it",
                off,
            )
        frames = 1
        while not isinstance(checked := _check_frame(win, found, size), str):
            frames += 1
            found += checked[1]
        return frames + int(found < size)

    def refresh(self) -> int:
        """Read-only logs: index frames another process appended since; return ``end()``."""
        self._check_open()
        if self._readonly:
            stop, size, reason = self._scan()
            if reason is not None:
                self._check_tail(stop, size, reason, repair=False)
        return self._end

    # --- the EventLog interface -------------------------------------------------------

    def _append_encoded(self, encoded: list[bytes]) -> int:
        payload = encode_frame(encoded)
        if len(payload) > _MAX_PAYLOAD:
            raise ValueError(f"batch of {len(payload)} bytes is too large for one frame")
        frame = _HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        offset = self._size
        try:
            written = os.pwrite(self._fd, frame, offset)
            while written < len(frame):  # short writes are rare (e.g. disk nearly full)
                written += os.pwrite(self._fd, frame[written:], offset + written)
            if self._fsync:
                _sync(self._fd)
        except OSError as exc:
            self._failed = exc
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, offset)
            raise LogError(f"{self._path}: append failed: {exc}") from exc
        first = self._end
        self._frame_offsets.append(offset)
        self._frame_starts.append(first)
        self._size = offset + len(frame)
        self._end = first + len(encoded)
        return first

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, Event]]:
        self._check_open()
        return self._read(start, self._stop(start, limit))

    def read_events(self, start: int = 0, limit: int | None = None) -> list[Event]:
        """The events ``read`` would yield, without their positions (``start`` on, in
        order): whole frames are decoded at once, for bulk readers such as the projection."""
        self._check_open()
        out: list[Event] = []
        for _, events in self._decoded(start, self._stop(start, limit)):
            out += events
        return out

    def read_raw(self, start: int = 0, limit: int | None = None) -> Iterator[tuple[int, bytes]]:
        self._check_open()
        return self._read_raw(start, self._stop(start, limit))

    def end(self) -> int:
        self._check_open()
        return self._end

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self._end} events"
        return f"FileLog({str(self._path)!r}, {state})"

    # --- reading ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._fd < 0:
            raise LogError(f"{self._path} is closed")

    def _read(self, start: int, stop: int) -> Iterator[tuple[int, Event]]:
        for first, events in self._decoded(start, stop):
            yield from enumerate(events, first)

    def _decoded(self, start: int, stop: int) -> Iterator[tuple[int, list[Event]]]:
        """Yield (position of the first, events) of each frame in range, cut to it."""
        for first, count, payload in self._frames(start, stop):
            try:
                events = _event_list_decoder.decode(payload)
            except msgspec.DecodeError as exc:
                raise CorruptLogError(
                    f"{self._path}: events from position {first} do not decode: {exc}"
                ) from exc
            self._check_count(first, count, len(events))
            lo, hi = max(start - first, 0), min(stop - first, count)
            yield first + lo, events if hi - lo == count else events[lo:hi]

    def _read_raw(self, start: int, stop: int) -> Iterator[tuple[int, bytes]]:
        for first, count, payload in self._frames(start, stop):
            raws = _raw_list_decoder.decode(payload)
            self._check_count(first, count, len(raws))
            for i in range(max(start - first, 0), min(stop - first, count)):
                yield first + i, bytes(raws[i])

    def _check_count(self, first: int, expected: int, got: int) -> None:
        if got != expected:
            raise CorruptLogError(
                f"{self._path}: frame at position {first} holds {got} events, not {expected}"
            )

    def _frames(self, start: int, stop: int) -> Iterator[tuple[int, int, memoryview]]:
        """Yield (first position, event count, payload) of the verified frames in range."""
        if start >= stop:
            return
        offsets, starts = self._frame_offsets, self._frame_starts
        i = bisect_right(starts, start) - 1
        while 0 <= i < len(starts) and starts[i] < stop:
            # Read frames i..j-1 with one pread of about _CHUNK bytes.
            base = offsets[i]
            j = i + 1
            while j < len(starts) and starts[j] < stop and offsets[j] - base < _CHUNK:
                j += 1
            self._check_open()
            limit = offsets[j] if j < len(offsets) else self._size
            buf = os.pread(self._fd, limit - base, base)
            if len(buf) != limit - base:
                raise CorruptLogError(f"{self._path} shrank while being read", base + len(buf))
            view = memoryview(buf)
            for k in range(i, j):
                rel = offsets[k] - base
                frame_end = (offsets[k + 1] if k + 1 < len(offsets) else self._size) - base
                length, crc = _HEADER.unpack_from(buf, rel)
                payload = view[rel + _HEADER_SIZE : frame_end]
                if length != len(payload) or zlib.crc32(payload) != crc:
                    raise CorruptLogError(
                        f"{self._path}: frame at byte offset {offsets[k]} changed after it "
                        "was verified",
                        offsets[k],
                    )
                count = (starts[k + 1] if k + 1 < len(starts) else self._end) - starts[k]
                yield starts[k], count, payload
            i = j
