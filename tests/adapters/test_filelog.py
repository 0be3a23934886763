"""FileLog: the EventLog contract, the file format, crash recovery and corruption."""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from omniroute.adapters import filelog
from omniroute.adapters.filelog import MAGIC, FileLog
from omniroute.engine import events as ev
from omniroute.engine.events import Event, encode_msgpack
from omniroute.engine.log import CorruptLogError, EventLog, LogError
from tests.contracts.eventlog import SAMPLE_EVENTS, EventLogContract


class TestFileLog(EventLogContract):
    def make_log(self, tmp_path: Path) -> EventLog:
        return FileLog(tmp_path / "events.olog")

    def reopen(self, log: EventLog) -> EventLog:
        assert isinstance(log, FileLog)
        return FileLog(log.path)


# --- helpers ------------------------------------------------------------------------------

BATCHES: list[list[Event]] = [SAMPLE_EVENTS[:4], SAMPLE_EVENTS[4:5], SAMPLE_EVENTS[5:8]]


def _ticks(n: int, ts0: int = 0) -> list[Event]:
    return [ev.Tick(tenant="t", ts=ts0 + i) for i in range(n)]


def _frames(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of each frame, parsed independently of FileLog."""
    assert data[: len(MAGIC)] == MAGIC
    out, off = [], len(MAGIC)
    while off < len(data):
        (length,) = struct.unpack_from("<I", data, off)
        out.append((off, 8 + length))
        off += 8 + length
    assert off == len(data)
    return out


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.olog"


@pytest.fixture(params=[None, 13], ids=["default-chunks", "13-byte-chunks"])
def chunks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Also run with tiny read chunks, so frames and scans straddle chunk boundaries."""
    if request.param is not None:
        monkeypatch.setattr(filelog, "_CHUNK", request.param)


@pytest.fixture
def written(path: Path) -> bytes:
    """The bytes of a log holding BATCHES, one frame each."""
    with FileLog(path) as log:
        for batch in BATCHES:
            log.append(batch)
    return path.read_bytes()


def _events(log: FileLog) -> list[Event]:
    return [e for _, e in log.read()]


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes((data[at] ^ 0x5A,)) + data[at + 1 :]


# --- format -------------------------------------------------------------------------------


def test_new_file_holds_only_the_magic_header(path: Path) -> None:
    with FileLog(path) as log:
        assert log.end() == 0
    assert path.read_bytes() == MAGIC


def test_frame_is_length_crc_and_msgpack_array_of_encoded_events(
    path: Path, written: bytes
) -> None:
    frames = _frames(written)
    assert len(frames) == len(BATCHES)
    for (off, size), batch in zip(frames, BATCHES, strict=True):
        length, crc = struct.unpack_from("<II", written, off)
        payload = written[off + 8 : off + size]
        assert length == len(payload)
        assert crc == zlib.crc32(payload)
        raws = msgspec.msgpack.Decoder(list[msgspec.Raw]).decode(payload)
        assert [bytes(r) for r in raws] == [encode_msgpack(e) for e in batch]


def test_partial_magic_header_from_a_crash_at_creation_is_completed(path: Path) -> None:
    path.write_bytes(MAGIC[:3])
    with FileLog(path) as log:
        assert log.end() == 0
        log.append(_ticks(1))
    with FileLog(path) as log:
        assert _events(log) == _ticks(1)


@pytest.mark.parametrize(
    "content",
    [b"OMRLOG2\n", b"XYZ", b"{}\n" * 20, b"OMRLOG1\r\n"],
    ids=["other-version", "short-garbage", "text-file", "crlf"],
)
def test_wrong_magic_raises_corrupt_log_error(path: Path, content: bytes) -> None:
    path.write_bytes(content)
    with pytest.raises(CorruptLogError, match="magic"):
        FileLog(path)
    assert path.read_bytes() == content


def test_invalid_fsync_policy_raises_value_error(path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        FileLog(path, fsync="sometimes")  # type: ignore[arg-type]


# --- durability ---------------------------------------------------------------------------


@pytest.fixture
def sync_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", counting)
    return calls


def test_fsync_always_syncs_every_append(path: Path, sync_calls: list[int]) -> None:
    with FileLog(path, fsync="always") as log:
        sync_calls.clear()
        log.append(_ticks(2))
        log.append(_ticks(1))
        log.append([])
        assert len(sync_calls) == 2


def test_fsync_never_does_not_sync_appends_and_round_trips(
    path: Path, sync_calls: list[int]
) -> None:
    with FileLog(path, fsync="never") as log:
        sync_calls.clear()
        log.append(SAMPLE_EVENTS)
        log.append(_ticks(3))
        assert sync_calls == []
    with FileLog(path, fsync="never") as log:
        assert _events(log) == SAMPLE_EVENTS + _ticks(3)


def test_failed_sync_rolls_back_the_batch_and_refuses_further_appends(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileLog(path) as log:
        log.append(_ticks(2))
        size = path.stat().st_size

        def failing(fd: int) -> None:
            raise OSError(5, "Input/output error")

        monkeypatch.setattr(os, "fdatasync", failing)
        with pytest.raises(LogError, match="append failed"):
            log.append(_ticks(3))
        assert log.end() == 2
        assert path.stat().st_size == size
        monkeypatch.undo()
        with pytest.raises(LogError, match="reopen"):
            log.append(_ticks(1))
        assert _events(log) == _ticks(2)
    with FileLog(path) as log:
        assert log.end() == 2
        assert log.append(_ticks(1)) == [2]


# --- recovery: the torn or corrupt tail ---------------------------------------------------


def _assert_recovered_to_earlier_batches(path: Path, good_size: int, dropped: int) -> None:
    with FileLog(path) as log:
        assert _events(log) == BATCHES[0] + BATCHES[1]
        assert log.recovered_bytes == dropped
        assert log.recovered_frames == (1 if dropped else 0)
        assert path.stat().st_size == good_size
        assert log.append(_ticks(2)) == [5, 6]
    with FileLog(path) as log:
        assert log.recovered_bytes == 0
        assert _events(log) == BATCHES[0] + BATCHES[1] + _ticks(2)


@pytest.mark.usefixtures("chunks")
def test_torn_tail_at_every_offset_is_truncated_to_the_earlier_batches(
    path: Path, written: bytes
) -> None:
    last, _ = _frames(written)[-1]
    for cut in range(last, len(written)):
        path.write_bytes(written[:cut])
        _assert_recovered_to_earlier_batches(path, last, cut - last)


def test_any_damaged_byte_in_the_last_frame_is_truncated(path: Path, written: bytes) -> None:
    last, _ = _frames(written)[-1]
    for at in range(last, len(written)):
        path.write_bytes(_flip(written, at))
        _assert_recovered_to_earlier_batches(path, last, len(written) - last)


@pytest.mark.usefixtures("chunks")
def test_zero_filled_tail_is_truncated(path: Path, written: bytes) -> None:
    path.write_bytes(written + bytes(4096))
    with FileLog(path) as log:
        assert log.end() == sum(map(len, BATCHES))
        assert log.recovered_bytes == 4096
    assert path.read_bytes() == written


def test_tail_recovery_logs_a_warning(
    path: Path, written: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path.write_bytes(written[:-1])
    with caplog.at_level(logging.WARNING, logger="omniroute.adapters.filelog"):
        FileLog(path).close()
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage()
    assert "truncated" in record.getMessage()


def test_clean_open_logs_nothing(
    path: Path, written: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        FileLog(path).close()
    assert caplog.records == []


# --- corruption in the middle -------------------------------------------------------------


@pytest.mark.usefixtures("chunks")
def test_any_damaged_byte_in_a_middle_frame_raises_corrupt_log_error(
    path: Path, written: bytes
) -> None:
    frames = _frames(written)
    for off, size in frames[:-1]:
        for at in range(off, off + size):
            damaged = _flip(written, at)
            path.write_bytes(damaged)
            with pytest.raises(CorruptLogError, match=f"offset {off}") as info:
                FileLog(path)
            assert info.value.offset == off
            assert path.read_bytes() == damaged  # untouched


def test_repair_truncates_a_middle_corruption_to_the_good_prefix(
    path: Path, written: bytes
) -> None:
    (_, _), (off, _), (_, _) = _frames(written)
    path.write_bytes(_flip(written, off + 12))
    with FileLog(path, repair=True) as log:
        assert _events(log) == BATCHES[0]
        assert log.recovered_frames == 2
        assert log.recovered_bytes == len(written) - off
        assert path.stat().st_size == off
        log.append(_ticks(1))
    with FileLog(path) as log:
        assert _events(log) == BATCHES[0] + _ticks(1)


def test_repair_is_a_no_op_on_a_healthy_log(path: Path, written: bytes) -> None:
    with FileLog(path, repair=True) as log:
        assert log.recovered_bytes == 0
        assert _events(log) == [e for b in BATCHES for e in b]
    assert path.read_bytes() == written


def test_corruption_after_open_is_detected_on_read(path: Path, written: bytes) -> None:
    first, _ = _frames(written)[0]
    with FileLog(path) as log:
        with path.open("r+b") as f:
            f.seek(first + 20)
            f.write(b"\xff")
        with pytest.raises(CorruptLogError, match="changed"):
            list(log.read())
        with pytest.raises(CorruptLogError):
            list(log.read_raw())


# --- one writer, concurrent readers -------------------------------------------------------


def test_second_writer_is_refused(path: Path) -> None:
    with FileLog(path), pytest.raises(LogError, match="already open"):
        FileLog(path)
    FileLog(path).close()


def test_readonly_reader_follows_the_writer_with_refresh(path: Path) -> None:
    with FileLog(path) as writer:
        writer.append(_ticks(2))
        with FileLog(path, readonly=True) as reader:
            assert reader.end() == 2
            writer.append(_ticks(3, ts0=2))
            assert reader.end() == 2
            assert reader.refresh() == 5
            assert _events(reader) == _ticks(5)
            with pytest.raises(LogError, match="read-only"):
                reader.append(_ticks(1))


def test_readonly_reader_ignores_an_incomplete_tail_without_truncating(
    path: Path, written: bytes
) -> None:
    path.write_bytes(written[:-3])
    with FileLog(path, readonly=True) as reader:
        assert _events(reader) == BATCHES[0] + BATCHES[1]
        assert reader.recovered_bytes == 0
        path.write_bytes(written)  # the writer finishes its frame
        assert reader.refresh() == sum(map(len, BATCHES))
    assert path.read_bytes() == written


def test_readonly_reader_of_a_file_being_created_sees_an_empty_log(path: Path) -> None:
    path.write_bytes(b"")
    with FileLog(path, readonly=True) as reader:
        assert reader.end() == 0
        path.write_bytes(MAGIC)
        assert reader.refresh() == 0
    assert path.read_bytes() == MAGIC


def test_readonly_reader_does_not_create_a_missing_file(path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        FileLog(path, readonly=True)
    assert not path.exists()


@pytest.fixture
def many_frames(path: Path) -> Iterator[FileLog]:
    with FileLog(path, fsync="never") as log:
        for i in range(3_000):
            log.append(_ticks(1 + i % 3, ts0=i))
        yield log


@pytest.mark.usefixtures("chunks")
def test_reads_spanning_many_frames_and_chunks_are_in_order(many_frames: FileLog) -> None:
    n = many_frames.end()
    assert [p for p, _ in many_frames.read()] == list(range(n))
    assert [p for p, _ in many_frames.read(n - 7, 100)] == list(range(n - 7, n))
    reopened = FileLog(many_frames.path, readonly=True)
    with reopened:
        assert list(reopened.read_raw(1234, 50)) == list(many_frames.read_raw(1234, 50))
