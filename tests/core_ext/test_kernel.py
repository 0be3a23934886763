"""The compiled kernel and its pure-Python twin agree, decision for decision."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omniroute import core_ext
from omniroute.core_ext import reference
from omniroute.engine import Engine, Policy, matching
from omniroute.engine.events import (
    AgentRegistered,
    AgentStatusChanged,
    Contact,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    OfferAccepted,
    OfferDeclined,
    Tick,
)
from omniroute.engine.matching import CLASS_INDEX, AgentTable, ProfileTable
from omniroute.engine.policy import PRESETS, Queue, Ring
from omniroute.engine.state import AgentState, ConversationState, Leg

compiled = pytest.importorskip("omniroute.core_ext._kernel")
N_CLASSES = 7
SKILLS = ["a", "b", "c", "d"]
# the further classes a conversation counts against: mostly none, else any set of classes
also_masks = st.one_of(st.just(0), st.integers(0, (1 << N_CLASSES) - 1))
# desks of up to 150 agents are slow to draw: half the profile's examples (the long profile
# still runs a thousand)
desk_examples = settings(max_examples=max(settings.default.max_examples // 2, 1))


def test_compiled_kernel_is_in_use() -> None:
    assert core_ext.KERNEL == "compiled"


@st.composite
def tables(draw: st.DrawFn) -> tuple[AgentTable, list[int]]:
    """Agent tables of up to 150 slots (several bitset words), some removed; some agents
    hold their max of one class (an item a unit, so that other classes may still fit),
    some hold nothing (their idle time counts), some only a further leg's count."""
    policy = Policy()
    table = AgentTable(ProfileTable(policy))
    n = draw(st.integers(1, 150))
    slots = []
    for slot in range(n):
        units = [0] * N_CLASSES
        counts = [0] * N_CLASSES
        for c in draw(st.lists(st.integers(0, N_CLASSES - 1), max_size=4)):
            counts[c] += 1
            units[c] += draw(st.sampled_from([2, 5, 10, 20, 25, 33, 100]))
        profile = draw(st.sampled_from(["default", "bot"]))
        full = draw(st.sampled_from([None, None, *CLASS_INDEX]))
        if full is not None:
            counts[CLASS_INDEX[full]] = policy.profiles[profile].classes[full].max
            units[CLASS_INDEX[full]] = counts[CLASS_INDEX[full]]
        for c in draw(st.lists(st.integers(0, N_CLASSES - 1), max_size=1)):
            counts[c] += 1  # a further leg: counted, no units
        agent = AgentState(
            agent_id=f"a{slot}", seq=draw(st.integers(0, 50)), slot=slot,
            kind=draw(st.sampled_from(["human", "bot"])),
            skills=draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5))),
            profile=profile, languages=[],
            status=draw(st.sampled_from(["available", "available", "away"])),
            responsive=draw(st.booleans()), units=units, counts=counts,
            idle_since=draw(st.integers(0, 10_000)), last_offer=draw(st.integers(0, 30)),
        )  # fmt: skip
        table.sync(agent)
        if draw(st.integers(0, 9)) == 0:
            table.clear(slot)
        else:
            slots.append(slot)
    return table, slots or [0]


requests = st.fixed_dictionaries(
    {
        "skills": st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3),
        "cls": st.integers(0, N_CLASSES - 1),
        "kind_mask": st.sampled_from([1, 2, 3]),
        "weights": st.lists(
            st.sampled_from([0.0, 1.0, 1e-6, 1.0 / 600.0, 10.0, 1e9]), min_size=5, max_size=5
        ),
        "now": st.integers(10_000, 20_000),
        "also": also_masks,
    }
)


@desk_examples
@given(tables(), requests, st.data())
def test_best_agent_is_identical(
    built: tuple[AgentTable, list[int]], req: dict[str, Any], data: st.DataObject
) -> None:
    table, slots = built
    cols, levels = table.request(req["skills"])
    excluded = np.array(data.draw(st.lists(st.sampled_from(slots), max_size=2)), np.int32)
    preferred = data.draw(st.sampled_from([-1, *slots]))
    pinned = data.draw(st.sampled_from([-1, -1, *slots]))
    weights = np.array(req["weights"], np.float64)
    args = (
        table, cols, levels, req["cls"], req["kind_mask"], excluded, preferred, pinned,
        req["now"], 40, weights, req["also"],
    )  # fmt: skip
    assert compiled.best_agent(*args) == reference.best_agent(*args)
    c, also = req["cls"], req["also"]
    for slot in slots:
        score_args = (table, slot, cols, req["cls"], preferred, req["now"], 40, weights)
        assert compiled.score_agent(*score_args) == reference.score_agent(*score_args)
        assert compiled.room_mask(table, slot) == reference.room_mask(table, slot)
        for adding in (True, False):
            assert compiled.fits(table, slot, c, 20, adding) == reference.fits(
                table, slot, c, 20, adding
            )
            assert compiled.committed_units(
                table, slot, c, 20, adding
            ) == reference.committed_units(table, slot, c, 20, adding)
        assert compiled.agent_eligible(
            table, slot, cols, levels, c, req["kind_mask"], also
        ) == reference.agent_eligible(table, slot, cols, levels, c, req["kind_mask"], also)


@desk_examples
@given(tables(), st.data())
def test_most_urgent_conversation_is_identical(
    built: tuple[AgentTable, list[int]], data: st.DataObject
) -> None:
    table, slots = built
    queues = (compiled.QueueIndex(), reference.QueueIndex())
    n_convs = data.draw(st.integers(0, 60))
    for conv in range(n_convs):
        skills = data.draw(st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=2))
        cols, levels = table.request(skills)
        cls = data.draw(st.integers(0, N_CLASSES - 1))
        kind_mask = data.draw(st.sampled_from([1, 2, 3]))
        also = data.draw(also_masks)
        fields = (
            data.draw(st.integers(0, 5)),  # key: ties are common
            data.draw(st.integers(0, 3)),  # deadline
            conv,  # seq
            data.draw(st.sampled_from([-1, -1, *slots])),  # pinned
            data.draw(st.integers(0, 20_000)),  # pin_until
            np.array(data.draw(st.lists(st.sampled_from(slots), max_size=2)), np.int32),
        )
        for queue in queues:
            queue.add(conv, queue.bucket_id(cols, levels, cls, kind_mask, also), *fields)
    for conv in data.draw(st.lists(st.integers(0, max(n_convs - 1, 0)), max_size=20)):
        for queue in queues:
            queue.remove(conv)
    assert queues[0].size == queues[1].size
    now = data.draw(st.integers(0, 20_000))
    # keys are 0..5: windows up to 6 choose among near heads; the last one cannot overflow
    window = data.draw(st.sampled_from([0, 0, 1, 2, 3, 6, -1, 2**63 - 1]))
    for agent in slots:
        assert queues[0].most_urgent(table, agent, now, window) == queues[1].most_urgent(
            table, agent, now, window
        )


def _agent(
    table: AgentTable, slot: int, counts: dict[str, int], idle_since: int = 0,
    skills: dict[str, int] | None = None,
) -> None:  # fmt: skip
    """A human agent on the default profile holding ``counts`` items (10 units each)."""
    held = [counts.get(name, 0) for name in CLASS_INDEX]
    table.sync(
        AgentState(
            agent_id=f"a{slot}", seq=slot, slot=slot, kind="human", skills=skills or {},
            profile="default", languages=[], status="available", responsive=True,
            units=[10 * n for n in held], counts=held, idle_since=idle_since, last_offer=0,
        )
    )  # fmt: skip


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
def test_an_agent_at_the_email_max_cannot_take_a_call_with_an_email_leg(kernel: Any) -> None:
    """Emails do not stop a call (voice interrupts email), but a call that also has an
    email leg counts one more email: only the agent below the email max (10) may take it."""
    table = AgentTable(ProfileTable(Policy()))
    _agent(table, 0, {"email": 10})
    _agent(table, 1, {"email": 9})
    cols, levels = table.request({})
    voice, email_bit = CLASS_INDEX["voice"], 1 << CLASS_INDEX["email"]
    for slot in (0, 1):
        assert kernel.agent_eligible(table, slot, cols, levels, voice, 1)
    assert not kernel.agent_eligible(table, 0, cols, levels, voice, 1, email_bit)
    assert kernel.agent_eligible(table, 1, cols, levels, voice, 1, email_bit)
    nobody, weights = np.array([], np.int32), np.array([0, 0, 0, 0, 0], np.float64)
    args = (table, cols, levels, voice, 1, nobody, -1, -1, 0, 0, weights)
    assert kernel.best_agent(*args)[0] == 0  # the tie goes to the lower seq
    assert kernel.best_agent(*args, email_bit)[0] == 1
    queue = kernel.QueueIndex()
    queue.add(0, queue.bucket_id(cols, levels, voice, 1, email_bit), 0, 0, 0, -1, 0, nobody)
    assert queue.most_urgent(table, 0, 0) == -1
    assert queue.most_urgent(table, 1, 0) == 0


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
def test_also_naming_no_media_class_is_an_error(kernel: Any) -> None:
    table = AgentTable(ProfileTable(Policy()))
    _agent(table, 0, {})
    cols, levels = table.request({})
    for also in (-1, 1 << N_CLASSES):
        with pytest.raises(ValueError, match="also"):
            kernel.agent_eligible(table, 0, cols, levels, 0, 1, also)
        with pytest.raises(ValueError, match="also"):
            kernel.QueueIndex().bucket_id(cols, levels, 0, 1, also)


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
def test_a_bucket_needs_one_level_per_column(kernel: Any) -> None:
    index = kernel.QueueIndex()
    cols, levels = np.array([0, 1], np.int32), np.array([2, 3], np.uint8)
    with pytest.raises(ValueError, match="levels"):
        index.bucket_id(cols, levels[:1], 0, 1)
    assert index.bucket_id(cols, levels, 0, 1) == index.bucket_id(cols.copy(), levels, 0, 1) == 0
    assert index.bucket_id(cols, levels, 1, 1) == 1


_RINGS = (Ring(after_s=30, level_drop=1), Ring(after_s=60, drop_optional=True),
          Ring(after_s=90, widen=True))  # fmt: skip
_CACHE_POLICY = Policy(
    queues={"default": Queue(rings=_RINGS), "sales": Queue(skills={"a": 2}, rings=_RINGS)}
)
_LEG = Leg(leg_id="l0", channel="voice", contact=Contact("voice", "+1"), media_class="voice",
           started_ts=0)  # fmt: skip
_EMAIL = Leg(leg_id="l1", channel="email", contact=Contact("email", "x@y"), media_class="email",
             started_ts=0)  # fmt: skip
_skill_maps = st.dictionaries(st.sampled_from(SKILLS), st.integers(1, 5), max_size=3)
_field_changes = st.one_of(
    st.tuples(st.just("queue"), st.sampled_from(["default", "sales"])),
    st.tuples(st.just("ring"), st.integers(0, 3)),
    st.tuples(st.just("skills"), _skill_maps),
    st.tuples(st.just("optional_skills"), _skill_maps),
    st.tuples(st.just("language"), st.sampled_from([None, "en", "fr"])),
    st.tuples(st.just("media_class"), st.sampled_from(["voice", "chat", "email"])),
    st.tuples(st.just("kinds"), st.sampled_from(["any", "human", "bot"])),
    st.tuples(st.just("legs"), st.sampled_from([(_LEG,), (_LEG, _EMAIL)])),
)


@given(st.lists(_field_changes, max_size=20))
def test_an_enqueued_conversation_goes_to_the_bucket_of_what_it_needs_now(
    changes: list[tuple[str, Any]],
) -> None:
    """The matcher's bucket cache gives a conversation re-queued after each change the
    bucket a fresh requirement would."""
    matcher = matching.TenantMatcher(_CACHE_POLICY, ProfileTable(_CACHE_POLICY))
    fresh = core_ext.kernel.QueueIndex()
    conv = ConversationState(
        conversation_id="c", seq=1, channel="voice", media_class="voice", contact=_LEG.contact,
        legs=(_LEG,), customer_id="k", queue="sales", skills={}, optional_skills={},
        language=None, priority=0, first_contact_ts=0,
    )  # fmt: skip
    for field, value in [("ring", 0), *changes]:
        setattr(conv, field, value)
        queue = _CACHE_POLICY.queues[conv.queue]
        matcher.enqueue(conv, [], -1, 0)
        want = fresh.bucket_id(
            *matcher.table.request(matching.requirements(conv, queue)),
            CLASS_INDEX[conv.media_class], matching.KIND_MASK[conv.kinds],
            matching.also_mask(conv),
        )  # fmt: skip
        assert matcher._bucket(conv, queue) == want


def _drive(seed: int, engine: Engine) -> tuple[list[object], bytes]:
    """A seeded day: arrivals, ticks, and desktops that answer the offers they get."""
    rng = random.Random(seed)
    channels = ["voice", "webchat", "whatsapp", "email", "sms", "social"]
    events: list[object] = []
    decided: list[object] = []

    def send(event: object) -> None:
        events.append(event)
        out = engine.apply(event)  # type: ignore[arg-type]
        decided.append(out)
        for d in out:
            if isinstance(d, ConversationOffered):
                offers.append(d)
            elif isinstance(d, ConversationAssigned):
                held.append(d.conversation_id)

    offers: list[ConversationOffered] = []
    held: list[str] = []
    for i in range(12):
        skills = {s: rng.randint(1, 5) for s in rng.sample(SKILLS, rng.randint(0, 3))}
        send(AgentRegistered(tenant="t", ts=0, agent_id=f"a{i}", skills=skills))
        send(AgentStatusChanged(tenant="t", ts=0, agent_id=f"a{i}", status="available"))
    ts = 0
    for n in range(400):
        ts += rng.randint(0, 3000)
        roll = rng.random()
        if roll < 0.35:
            skills = {s: rng.randint(1, 3) for s in rng.sample(SKILLS, rng.randint(0, 2))}
            channel = rng.choice(channels)
            send(
                ConversationArrived(
                    tenant="t", ts=ts, conversation_id=f"c{n}", channel=channel,  # type: ignore[arg-type]
                    contact=Contact(channel, f"x{rng.randint(0, 80)}"),  # type: ignore[arg-type]
                    skills=skills, priority=rng.randint(0, 2),
                )
            )  # fmt: skip
        elif roll < 0.6 and offers:
            offer = offers.pop(rng.randrange(max(0, len(offers) - 3), len(offers)))
            answer = OfferAccepted if rng.random() < 0.8 else OfferDeclined
            send(answer(tenant="t", ts=ts, conversation_id=offer.conversation_id,
                        agent_id=offer.agent_id))  # fmt: skip
        elif roll < 0.8 and held:
            cid = held.pop(rng.randrange(len(held)))
            send(ConversationEnded(tenant="t", ts=ts, conversation_id=cid))
        elif roll < 0.9:
            agent = f"a{rng.randint(0, 11)}"
            send(AgentStatusChanged(tenant="t", ts=ts, agent_id=agent, status="available"))
        else:
            send(Tick(tenant="t", ts=ts))
    return events, msgspec.msgpack.encode(decided)


@pytest.mark.parametrize("seed", range(8))
def test_engine_decisions_are_byte_identical_with_either_kernel(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # odd seeds: freed agents prefer their best-matching skills within 20 s of urgency
    policy = msgspec.convert(
        {"queues": {"default": {"offer_timeout_s": 30}}, "prefer_window_s": 20.0 * (seed % 2)},
        Policy,
    )
    events, with_compiled = _drive(seed, Engine(policy))
    monkeypatch.setattr(matching, "kernel", reference)
    engine = Engine(policy)
    with_reference = msgspec.msgpack.encode([engine.apply(e) for e in events])  # type: ignore[arg-type]
    assert with_reference == with_compiled
    assert with_compiled.count(b"conversation.assigned") > 20


def _weights(preset: str) -> npt.NDArray[np.float64]:
    w = PRESETS[preset]
    return np.array([w.skill, w.idle, w.load, w.sticky, w.round_robin], np.float64)


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
@pytest.mark.parametrize("preset", ["longest_idle", "least_loaded", "balanced"])
def test_an_agent_holding_an_email_is_less_free_for_a_call_than_one_holding_nothing(
    kernel: Any, preset: str
) -> None:
    """Ann has held an email since 0 s; Bob has held nothing since 5 s. Ann may take a
    call (voice interrupts email), but she is neither idle nor unloaded: Bob gets it."""
    table = AgentTable(ProfileTable(Policy()))
    _agent(table, 0, {"email": 1}, idle_since=0)
    _agent(table, 1, {}, idle_since=5_000)
    cols, levels = table.request({})
    voice, weights = CLASS_INDEX["voice"], _weights(preset)
    ann, bob = (kernel.score_agent(table, s, cols, voice, -1, 10_000, 0, weights) for s in (0, 1))
    assert ann < bob
    nobody = np.array([], np.int32)
    args = (table, cols, levels, voice, 1, nobody, -1, -1, 10_000, 0, weights)
    assert kernel.best_agent(*args)[0] == 1
    # the capacity rule is unchanged: Ann still has room for the call
    assert kernel.agent_eligible(table, 0, cols, levels, voice, 1)


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
@pytest.mark.parametrize(("window", "taken"), [(0, "b"), (1_000, "b"), (10_000, "a")])
def test_a_chained_agent_prefers_its_primary_skill_within_the_window(
    kernel: Any, window: int, taken: str
) -> None:
    """Skills a:5, b:3; the conversation needing b is 5 s more urgent than the one
    needing a. Within a 10 s window the agent takes its primary skill's (a); within 1 s,
    or without a window, the most urgent (b)."""
    table = AgentTable(ProfileTable(Policy()))
    _agent(table, 0, {}, skills={"a": 5, "b": 3})
    queue, nobody, chat = kernel.QueueIndex(), np.array([], np.int32), CLASS_INDEX["chat"]
    for conv, (skill, key) in enumerate([("b", 30_000), ("a", 35_000)]):
        cols, levels = table.request({skill: 1})
        bucket = queue.bucket_id(cols, levels, chat, 1)
        queue.add(conv, bucket, key, key, conv, -1, 0, nobody)
    assert queue.most_urgent(table, 0, 40_000, window) == ["b", "a"].index(taken)


rows = st.tuples(
    st.integers(0, 130),  # slot (three bitset words)
    st.booleans(),  # routable
    st.booleans(),  # present
    st.sampled_from([1, 2]),  # kind
    st.integers(0, 2**40),  # seq
    st.sampled_from(["default", "bot"]),  # profile
    st.integers(0, 2**45),  # idle_since
    st.integers(0, 2**40),  # last_offer
    st.lists(st.integers(0, 120), min_size=N_CLASSES, max_size=N_CLASSES),  # units
    st.lists(st.integers(0, 12), min_size=N_CLASSES, max_size=N_CLASSES),  # counts
)


@given(st.lists(rows, min_size=1, max_size=40))
def test_write_row_is_identical(written: list[tuple[Any, ...]]) -> None:
    """Agent rows written one after another (a slot again and again) leave the same arrays,
    room bits included, whichever kernel writes them."""
    profiles = ProfileTable(Policy())
    tables = [AgentTable(profiles, capacity=192), AgentTable(profiles, capacity=192)]
    for table, kernel in zip(tables, (compiled, reference), strict=True):
        for slot, routable, present, kind, seq, profile, idle, last, units, counts in written:
            kernel.write_row(
                table, slot, routable, present, kind, seq, profiles.index[profile], idle, last,
                units, counts,
            )  # fmt: skip
    for name in (*AgentTable._ROW_ARRAYS, *AgentTable._MATRICES, "room_bits"):
        assert np.array_equal(getattr(tables[0], name), getattr(tables[1], name)), name


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
def test_write_row_refuses_a_row_of_the_wrong_shape(kernel: Any) -> None:
    table = AgentTable(ProfileTable(Policy()), capacity=64)
    held = [0] * N_CLASSES
    with pytest.raises(ValueError, match="one per media class"):
        kernel.write_row(table, 0, True, True, 1, 0, 0, 0, 0, held[1:], held)
    with pytest.raises(IndexError):
        kernel.write_row(table, 64, True, True, 1, 0, 0, 0, 0, held, held)
