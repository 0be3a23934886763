"""The contract every ``EventLog`` implementation passes.

Subclass ``EventLogContract`` in a ``Test*`` class and implement ``make_log`` and
``reopen``; the tests use only the ``EventLog`` interface. This module's name does not
start with ``test_`` and the base class's name does not start with ``Test``, so pytest
collects the tests only through subclasses.
"""

from __future__ import annotations

import abc
import itertools
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omniroute.engine import events as ev
from omniroute.engine.events import Event, decode_msgpack, encode_msgpack
from omniroute.engine.log import EventLog, LogError

__all__ = ["SAMPLE_EVENTS", "EventLogContract", "batches", "events"]

_C = ev.Contact("whatsapp", "+447700900123")

SAMPLE_EVENTS: list[Event] = [
    ev.AgentRegistered(
        tenant="acme", ts=1, id="e1", agent_id="a1", kind="bot", skills={"en": 3, "billing": 2},
        capacity_profile="chat3", languages=["en", "fr"], name="Ada",
    ),
    ev.AgentUpdated(tenant="acme", ts=2, agent_id="a1", skills={"de": 1}, languages=[]),
    ev.AgentStatusChanged(tenant="acme", ts=3, agent_id="a1", status="away", reason="lunch"),
    ev.AgentRemoved(tenant="acme", ts=4, agent_id="a2"),
    ev.ConversationArrived(
        tenant="acme", ts=5, conversation_id="c1", channel="whatsapp", contact=_C,
        customer_id="cu1", queue="vip", skills={"en": 2}, optional_skills={"billing": 1},
        priority=7, language="en", attributes={"order": "42", "ünï": "cödé ✓"},
    ),
    ev.MessageReceived(tenant="acme", ts=6, conversation_id="c1", direction="out"),
    ev.OfferAccepted(tenant="acme", ts=7, conversation_id="c1", agent_id="a1"),
    ev.OfferDeclined(tenant="acme", ts=8, conversation_id="c1", agent_id="a1", reason="busy"),
    ev.TransferRequested(
        tenant="acme", ts=9, conversation_id="c1", agent_id="a1", to_agent="a3",
        to_queue="sales", skills={"fr": 1}, mode="warm",
    ),
    ev.HandoffRequested(
        tenant="acme", ts=10, conversation_id="c1", agent_id="bot1", reason="asked for human",
        skills={"en": 1}, queue="support",
    ),
    ev.ConversationEnded(tenant="acme", ts=11, conversation_id="c1", by="customer"),
    ev.WrapUpCompleted(tenant="acme", ts=12, conversation_id="c1", agent_id="a1"),
    ev.CustomerAbandoned(tenant="acme", ts=13, conversation_id="c2"),
    ev.CallbackRequested(
        tenant="acme", ts=14, conversation_id="c2", address="+15550100", not_before=99
    ),
    ev.ContactsLinked(
        tenant="acme", ts=15, customer_id="cu1", contacts=[_C, ev.Contact("email", "a@b.c")]
    ),
    ev.Tick(tenant="acme", ts=16),
    ev.ConversationQueued(tenant="acme", ts=17, conversation_id="c3", queue="vip", reason="x"),
    ev.ConversationOffered(
        tenant="acme", ts=18, conversation_id="c3", agent_id="a1", score=0.875, why="skills",
        deadline=20_018,
    ),
    ev.ConversationAssigned(
        tenant="acme", ts=19, conversation_id="c3", agent_id="a1", score=-1.5e-300,
        why="only one", wait_ms=1234,
    ),
    ev.OfferExpired(
        tenant="acme", ts=20, conversation_id="c3", agent_id="a1", reason="agent_unavailable"
    ),
    ev.AgentNotResponding(tenant="acme", ts=21, agent_id="a1"),
    ev.ConversationEscalated(tenant="acme", ts=22, conversation_id="c3", ring=2),
    ev.SlaBreached(tenant="acme", ts=23, conversation_id="c3", target_s=20.5, waited_ms=20_600),
    ev.ConversationRejoined(
        tenant="acme", ts=24, conversation_id="c3", new_conversation_id="c4", channel="sms",
        agent_id="a1",
    ),
    ev.LegJoined(
        tenant="acme", ts=24, conversation_id="c3", leg="c4", agent_id="a1", channel="sms"
    ),
    ev.WrapUpExpired(tenant="acme", ts=25, conversation_id="c3", agent_id="a1"),
    ev.EventRejected(
        tenant="acme", ts=2**63 - 1, id="bad", reason="unknown agent", event_type="offer.accepted",
        event_id="e9",
    ),
]  # fmt: skip


# --- hypothesis strategies, derived from the schema so new event types are covered -------

_text = st.text(max_size=12)


def _strategy(t: mi.Type) -> st.SearchStrategy[Any]:
    if isinstance(t, mi.StrType):
        return _text
    if isinstance(t, mi.IntType):
        return st.integers(-(2**63), 2**63 - 1)
    if isinstance(t, mi.FloatType):
        return st.floats(allow_nan=False)
    if isinstance(t, mi.BoolType):
        return st.booleans()
    if isinstance(t, mi.NoneType):
        return st.none()
    if isinstance(t, mi.LiteralType):
        return st.sampled_from(t.values)
    if isinstance(t, mi.ListType):
        return st.lists(_strategy(t.item_type), max_size=3)
    if isinstance(t, mi.DictType):
        return st.dictionaries(_strategy(t.key_type), _strategy(t.value_type), max_size=3)
    if isinstance(t, mi.UnionType):
        return st.one_of([_strategy(u) for u in t.types])
    if isinstance(t, mi.StructType):
        fields = {f.name: _strategy(f.type) for f in t.fields if f.required}
        optional = {f.name: _strategy(f.type) for f in t.fields if not f.required}
        return st.fixed_dictionaries(fields, optional=optional).map(lambda kw: t.cls(**kw))
    raise NotImplementedError(f"no strategy for {t!r}; extend tests/contracts/eventlog.py")


events: st.SearchStrategy[Event] = _strategy(mi.type_info(Event))
"""Any valid event of any type in the ``Event`` union."""

batches: st.SearchStrategy[list[list[Event]]] = st.lists(st.lists(events, max_size=12), max_size=6)
"""A sequence of append batches (empty batches included)."""


class EventLogContract(abc.ABC):
    """Behaviour every ``EventLog`` must have; subclass as ``Test<Impl>``."""

    @abc.abstractmethod
    def make_log(self, tmp_path: Path) -> EventLog:
        """A fresh, empty log whose storage lives under (or is keyed by) ``tmp_path``.

        May be called more than once per test, with distinct directories.
        """

    @abc.abstractmethod
    def reopen(self, log: EventLog) -> EventLog:
        """A new log object over the same storage as ``log``, which is already closed."""

    # --- helpers ------------------------------------------------------------------------

    @pytest.fixture
    def opened(self) -> Iterator[list[EventLog]]:
        logs: list[EventLog] = []
        yield logs
        for log in logs:
            log.close()

    @pytest.fixture
    def log(self, tmp_path: Path, opened: list[EventLog]) -> EventLog:
        log = self.make_log(tmp_path)
        opened.append(log)
        return log

    def _reopened(self, log: EventLog, opened: list[EventLog]) -> EventLog:
        log.close()
        new = self.reopen(log)
        opened.append(new)
        return new

    @staticmethod
    def _ticks(n: int, tenant: str = "t", ts0: int = 0) -> list[Event]:
        return [ev.Tick(tenant=tenant, ts=ts0 + i) for i in range(n)]

    # --- the contract -------------------------------------------------------------------

    def test_new_log_is_empty(self, log: EventLog) -> None:
        assert log.end() == 0
        assert list(log.read()) == []
        assert list(log.read_raw()) == []
        assert list(log.read(5, 3)) == []

    def test_sample_events_cover_every_event_type(self) -> None:
        assert {type(e) for e in SAMPLE_EVENTS} == set(typing.get_args(Event))

    def test_every_event_type_round_trips(self, log: EventLog, opened: list[EventLog]) -> None:
        assert log.append(SAMPLE_EVENTS) == list(range(len(SAMPLE_EVENTS)))
        assert [e for _, e in log.read()] == SAMPLE_EVENTS
        log = self._reopened(log, opened)
        assert [e for _, e in log.read()] == SAMPLE_EVENTS
        assert [type(e) for _, e in log.read()] == [type(e) for e in SAMPLE_EVENTS]

    def test_one_event_per_batch_round_trips(self, log: EventLog) -> None:
        for i, event in enumerate(SAMPLE_EVENTS):
            assert log.append([event]) == [i]
        assert list(log.read()) == list(enumerate(SAMPLE_EVENTS))

    def test_positions_are_contiguous_across_batches(self, log: EventLog) -> None:
        assert log.append(self._ticks(3)) == [0, 1, 2]
        assert log.append(self._ticks(1, ts0=3)) == [3]
        assert log.append(self._ticks(4, ts0=4)) == [4, 5, 6, 7]
        assert [p for p, _ in log.read()] == list(range(8))
        assert [e.ts for _, e in log.read()] == list(range(8))

    def test_empty_batch_appends_nothing(self, log: EventLog) -> None:
        assert log.append([]) == []
        assert log.end() == 0
        log.append(self._ticks(2))
        assert log.append([]) == []
        assert log.append(self._ticks(1)) == [2]

    def test_end_is_number_of_events(self, log: EventLog) -> None:
        for n, expected in [(5, 5), (1, 6), (0, 6), (10, 16)]:
            log.append(self._ticks(n))
            assert log.end() == expected

    def test_read_from_start_position(self, log: EventLog) -> None:
        log.append(self._ticks(4))
        log.append(self._ticks(3, ts0=4))
        for start in range(9):
            assert [p for p, _ in log.read(start)] == list(range(start, 7))
            assert [e.ts for _, e in log.read(start)] == list(range(start, 7))
            assert [p for p, _ in log.read_raw(start)] == list(range(start, 7))

    def test_read_with_limit(self, log: EventLog) -> None:
        log.append(self._ticks(4))
        log.append(self._ticks(3, ts0=4))
        for start, limit in itertools.product(range(8), range(9)):
            expected = list(range(start, min(7, start + limit)))
            assert [e.ts for _, e in log.read(start, limit)] == expected
            assert [p for p, _ in log.read_raw(start, limit)] == expected

    def test_read_rejects_negative_start_or_limit(self, log: EventLog) -> None:
        with pytest.raises(ValueError):
            log.read(-1)
        with pytest.raises(ValueError):
            log.read(0, -1)
        with pytest.raises(ValueError):
            log.read_raw(-1)

    def test_read_sees_events_appended_after_open(self, log: EventLog) -> None:
        log.append(self._ticks(2))
        assert [e.ts for _, e in log.read()] == [0, 1]
        log.append(self._ticks(2, ts0=2))
        assert [e.ts for _, e in log.read()] == [0, 1, 2, 3]
        assert [e.ts for _, e in log.read(3)] == [3]

    def test_read_range_is_fixed_when_read_is_called(self, log: EventLog) -> None:
        log.append(self._ticks(3))
        reader = log.read()
        log.append(self._ticks(2, ts0=3))
        seen = []
        for position, _ in reader:
            seen.append(position)
            if position == 0:
                log.append(self._ticks(1, ts0=5))
        assert seen == [0, 1, 2]
        assert log.end() == 6

    def test_large_batch_round_trips(self, log: EventLog, opened: list[EventLog]) -> None:
        big = [
            ev.ConversationArrived(
                tenant="t", ts=i, conversation_id=f"c{i}", channel="webchat",
                contact=ev.Contact("webchat", f"s{i}"), skills={"en": i % 5},
            )
            for i in range(10_000)
        ]  # fmt: skip
        log.append(self._ticks(1))
        assert log.append(big) == list(range(1, 10_001))
        log.append(self._ticks(1, ts0=10_001))
        assert log.end() == 10_002
        assert [e for _, e in log.read(1, 10_000)] == big
        assert [e for _, e in log.read(5_000, 3)] == big[4_999:5_002]
        log = self._reopened(log, opened)
        assert log.end() == 10_002
        assert [e for _, e in log.read(1, 10_000)] == big

    def test_reopen_keeps_everything(self, log: EventLog, opened: list[EventLog]) -> None:
        log.append(SAMPLE_EVENTS[:10])
        log.append(SAMPLE_EVENTS[10:])
        before = list(log.read_raw())
        log = self._reopened(log, opened)
        assert log.end() == len(SAMPLE_EVENTS)
        assert list(log.read_raw()) == before
        assert log.append(self._ticks(2)) == [len(SAMPLE_EVENTS), len(SAMPLE_EVENTS) + 1]
        log = self._reopened(log, opened)
        assert log.end() == len(SAMPLE_EVENTS) + 2
        assert [e for _, e in log.read()] == SAMPLE_EVENTS + self._ticks(2)

    def test_read_raw_is_byte_identical_to_encode_msgpack(self, log: EventLog) -> None:
        log.append(SAMPLE_EVENTS)
        raw = list(log.read_raw())
        assert raw == [(i, encode_msgpack(e)) for i, e in enumerate(SAMPLE_EVENTS)]
        assert all(type(data) is bytes for _, data in raw)
        assert [decode_msgpack(data) for _, data in raw] == SAMPLE_EVENTS

    def test_append_rejects_non_event_and_writes_nothing(self, log: EventLog) -> None:
        log.append(self._ticks(1))
        with pytest.raises(TypeError):
            log.append([ev.Tick(tenant="t", ts=1), ev.Contact("sms", "x")])  # type: ignore[list-item]
        assert log.end() == 1
        assert log.append(self._ticks(1)) == [1]

    def test_append_rejects_invalid_event_and_writes_nothing(self, log: EventLog) -> None:
        invalid = ev.AgentStatusChanged(tenant="t", ts=1, agent_id="a", status="dancing")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            log.append([ev.Tick(tenant="t", ts=0), invalid])
        assert log.end() == 0
        assert list(log.read()) == []

    def test_close_is_idempotent_and_closed_log_raises(self, log: EventLog) -> None:
        log.append(self._ticks(1))
        log.close()
        log.close()
        with pytest.raises(LogError):
            log.append(self._ticks(1))
        with pytest.raises(LogError):
            log.end()
        with pytest.raises(LogError):
            list(log.read())

    def test_context_manager_closes(self, tmp_path: Path, opened: list[EventLog]) -> None:
        with self.make_log(tmp_path) as log:
            opened.append(log)
            log.append(self._ticks(3))
        with pytest.raises(LogError):
            log.end()
        log = self.reopen(log)
        opened.append(log)
        assert log.end() == 3

    @settings(
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.differing_executors,  # one test, run by every log's subclass
        ],
    )
    @given(data=batches)
    def test_random_batches_read_back_equal(
        self, tmp_path: Path, opened: list[EventLog], data: list[list[Event]]
    ) -> None:
        directory = tmp_path / f"h{len(opened)}"
        directory.mkdir()
        log = self.make_log(directory)
        opened.append(log)
        flat: list[Event] = []
        for batch in data:
            assert log.append(batch) == list(range(len(flat), len(flat) + len(batch)))
            flat.extend(batch)
        expected = list(enumerate(flat))
        assert list(log.read()) == expected
        assert list(log.read_raw()) == [(i, encode_msgpack(e)) for i, e in expected]
        log = self._reopened(log, opened)
        assert log.end() == len(flat)
        assert list(log.read()) == expected
        half = len(flat) // 2
        assert list(log.read(half, 3)) == expected[half : half + 3]
        assert msgspec.msgpack.encode([e for _, e in log.read()]) == msgspec.msgpack.encode(flat)
