"""Validation once, at ``Engine.apply``: whatever built an event (msgspec decoding it or
Python code constructing it), a wrong type, an integer the kernel cannot store, a value
over the policy's limits or a transfer to an agent who could never take the conversation
becomes exactly one ``EventRejected`` with the reason; nothing bad reaches the state, so a
snapshot always restores."""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.engine import Engine, Policy, parse_policy, validation
from omniroute.engine.events import (
    AgentRegistered,
    Contact,
    ConversationArrived,
    EventRejected,
    Input,
    Tick,
    TransferRequested,
)
from tests.support.desk import Desk, kinds

AUTO = """
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
"""


def arrival(**fields: Any) -> ConversationArrived:
    base: dict[str, Any] = {
        "tenant": "acme", "ts": 0, "conversation_id": "c1", "channel": "voice",
        "contact": Contact("voice", "+331"),
    }  # fmt: skip
    return ConversationArrived(**(base | fields))


def agent(**fields: Any) -> AgentRegistered:
    return AgentRegistered(**({"tenant": "acme", "ts": 0, "agent_id": "ann"} | fields))


def rejected_alone(engine: Engine, event: Any, field: str) -> EventRejected:
    """``event`` gives exactly one EventRejected naming ``field``, and changes nothing."""
    before = engine.snapshot()
    out = engine.apply(event)
    assert len(out) == 1 and isinstance(out[0], EventRejected), out
    assert out[0].reason.startswith(f"{field}: "), out[0].reason
    assert engine.snapshot() == before
    Engine.restore(engine.snapshot(), engine.policy)
    return out[0]


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (arrival(priority=2**64 - 1), "priority"),
        (arrival(priority=-(2**63)), "priority"),
        (arrival(priority=2**31), "priority"),
        (arrival(ts=2**63), "ts"),
        (arrival(ts=10**18), "ts"),
        (arrival(skills={"sales": 10**30}), "skills"),
        (arrival(optional_skills={"sales": -(2**70)}), "optional_skills"),
        (agent(skills={"sales": 2**64}), "skills"),
    ],
    ids=lambda v: "" if not isinstance(v, str) else v,
)
def test_integers_past_what_the_kernel_stores_are_rejected(event: Any, field: str) -> None:
    engine = Engine()
    assert engine.apply(agent(agent_id="bob", skills={"sales": 3})) == []
    reason = rejected_alone(engine, event, field).reason
    assert "bits" in reason or "must be an integer" in reason


def test_a_huge_integer_is_named_by_its_size_not_printed() -> None:
    reason = rejected_alone(Engine(), arrival(priority=10**5000), "priority").reason
    assert "an integer of 16610 bits" in reason and len(reason) < 200


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (agent(agent_id=42), "agent_id"),
        (agent(languages="en"), "languages"),
        (agent(languages=["en", 7]), "languages"),
        (agent(skills=[("sales", 3)]), "skills"),
        (agent(kind="alien"), "kind"),
        (agent(tenant=None), "tenant"),
        (agent(id=5), "id"),
        (agent(ts=1.5), "ts"),
        (agent(ts=True), "ts"),
        (arrival(contact="+33"), "contact"),
        (arrival(contact={"channel": "voice", "address": "+33"}), "contact"),
        (arrival(contact=Contact("fax", "+33")), "contact"),  # type: ignore[arg-type]
        (arrival(contact=Contact("voice", 33)), "contact"),  # type: ignore[arg-type]
        (arrival(attributes={"vip": 1}), "attributes"),
        (arrival(priority="high"), "priority"),
        (arrival(conversation_id="\ud800"), "conversation_id"),  # cannot be encoded
    ],
    ids=lambda v: "" if not isinstance(v, str) else v,
)
def test_wrong_types_from_python_are_rejected_and_snapshots_still_restore(
    event: Any, field: str
) -> None:
    rejected_alone(Engine(), event, field)


def test_something_that_is_no_event_is_rejected() -> None:
    out = Engine().apply({"type": "agent.registered"})  # type: ignore[arg-type]
    assert kinds(out) == ["event.rejected"] and "not an input event: dict" in out[0].reason


@pytest.mark.parametrize(
    ("event", "field", "words"),
    [
        (agent(agent_id="a" * 257), "agent_id", "at most 256 characters"),
        (agent(agent_id="   "), "agent_id", "blank"),
        (agent(tenant="t" * 1_000_000), "tenant", "at most 256 characters"),
        (agent(skills={f"s{i}": 1 for i in range(65)}), "skills", "at most 64 entries"),
        (agent(skills={"": 1}), "skills", "blank"),
        (arrival(attributes={f"k{i}": "v" for i in range(65)}), "attributes", "64 entries"),
        (arrival(attributes={"note": "x" * 2000}), "attributes", "1024"),
    ],
    ids=lambda v: "" if not isinstance(v, str) else v[:20],
)
def test_limits_on_ids_skills_and_attributes(event: Any, field: str, words: str) -> None:
    assert words in rejected_alone(Engine(), event, field).reason


def test_limits_come_from_the_policy() -> None:
    engine = Engine(parse_policy("[limits]\nmax_id_length = 8\nmax_entries = 2\n"))
    rejected_alone(engine, agent(agent_id="a" * 9), "agent_id")
    rejected_alone(engine, agent(skills={"a": 1, "b": 1, "c": 1}), "skills")
    assert engine.apply(agent(agent_id="a" * 8, skills={"a": 1, "b": 1})) == []


# --- transfers to an agent who could never take the conversation -----------------------

SKILLED = """
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
transfer_wait_s = 60
rings = [ { after_s = 30, level_drop = 1 } ]

[profiles.default]
[profiles.bot]
budget = 1_000_000
[profiles.voice_only]
classes = { voice = { cost = 100, max = 1 } }
"""


def transfer_desk() -> Desk:
    desk = Desk(SKILLED)
    desk.agent("ann", {"billing": 3})
    desk.arrive("v1", "voice", skills={"billing": 3})
    assert desk.conv("v1").owner == "ann"
    return desk


def transfer(desk: Desk, to_agent: str) -> list[Any]:
    return desk.send(TransferRequested, conversation_id="v1", agent_id="ann", to_agent=to_agent)


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ({"skills": {"sales": 5}}, "lacks billing 2"),
        ({"skills": {"billing": 1}}, "lacks billing 2"),
        ({"skills": {"billing": 3}, "kind": "bot"}, "is a bot"),
        ({"skills": {"billing": 3}, "capacity_profile": "voice_only"}, None),
    ],
)
def test_a_transfer_to_an_agent_who_can_never_take_it_is_rejected(
    target: dict[str, Any], words: str | None
) -> None:
    desk = transfer_desk()
    desk.agent("bob", **target)
    if target.get("kind") == "bot":
        desk.conv("v1").kinds = "human"  # as after a bot's handoff: people only
    out = transfer(desk, "bob")
    if words is None:  # a voice-only profile can take this voice call
        assert not any(isinstance(d, EventRejected) for d in out)
        return
    assert kinds(out) == ["event.rejected"] and words in out[0].reason
    assert desk.conv("v1").owner == "ann" and desk.conv("v1").transfers == 0


def test_a_transfer_to_an_agent_whose_profile_lacks_the_media_class_is_rejected() -> None:
    desk = Desk(SKILLED)
    desk.agent("ann", {"billing": 3})
    desk.arrive("w1", "webchat", skills={"billing": 3})
    desk.agent("bob", {"billing": 3}, capacity_profile="voice_only")
    out = desk.send(TransferRequested, conversation_id="w1", agent_id="ann", to_agent="bob")
    assert kinds(out) == ["event.rejected"] and "cannot take chat" in out[0].reason


def test_a_transfer_to_an_agent_with_the_skill_at_the_last_ring_is_accepted() -> None:
    desk = transfer_desk()
    desk.agent("bob", {"billing": 2})  # meets billing 3 after the ring's level drop
    out = transfer(desk, "bob")
    assert "event.rejected" not in kinds(out)


def test_a_transfer_to_a_removed_agent_is_rejected() -> None:
    desk = transfer_desk()
    out = transfer(desk, "ghost")
    assert kinds(out) == ["event.rejected"] and "unknown agent 'ghost'" in out[0].reason


# --- the property: apply never raises, whatever Python built -----------------------------

_INPUTS: tuple[type, ...] = typing.get_args(Input)
_WRONG = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**64 - 1, -(2**63), 2**63, 10**30, 10**18]),
    st.text(max_size=8),
    st.sampled_from(["", "  ", "\ud800", "x" * 300]),
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(-(2**65), 2**65), max_size=3),
    st.builds(Contact, st.sampled_from(["voice", "fax", 3]), st.text(max_size=4)),
)


@st.composite
def python_events(draw: st.DrawFn) -> Any:
    """An input built in Python: well-typed from ``st.from_type``, then some fields
    replaced by deliberately wrong values (wrong types, huge integers, blanks)."""
    cls = draw(st.sampled_from(_INPUTS))
    event = draw(st.from_type(cls))
    fields = msgspec.structs.asdict(event)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        fields[name] = draw(_WRONG)
    if draw(st.booleans()):
        fields["tenant"] = "acme"
        fields["ts"] = draw(st.integers(0, 200_000))
    return cls(**fields)


@given(events=st.lists(python_events(), min_size=1, max_size=12))
def test_apply_returns_decisions_or_one_rejection_and_never_raises(events: list[Any]) -> None:
    engine = transfer_desk().engine
    for event in events:
        out = engine.apply(event)
        rejections = [d for d in out if isinstance(d, EventRejected)]
        assert len(rejections) <= 1 and (not rejections or out[-1] is rejections[0]), out
        restored = Engine.restore(engine.snapshot(), engine.policy)
        assert restored.snapshot() == engine.snapshot()
        tick = Tick(tenant="acme", ts=engine.clock_of("acme") + 30_000)
        assert restored.apply(tick) == Engine.restore(engine.snapshot(), engine.policy).apply(tick)


@given(event=python_events())
def test_the_one_call_check_passes_only_what_every_field_check_passes(event: Any) -> None:
    """``input_problem`` skips the field-by-field checks when the straight-line check of the
    event's class passes: it must never pass a value a field's own check rejects."""
    all_valid, read, fields = validation._SHAPES[type(event)]
    limits = Policy().limits
    problems = [
        check(value, limits)
        for value, (_, nullable, check) in zip(read(event), fields, strict=True)
        if not (value is None and nullable)
    ]
    if all_valid(event, limits):
        assert problems == [None] * len(problems)
