"""How an agent finds its candidate buckets: every way finds the same ones.

The compiled queue index files a bucket needing at most three distinct skill columns under
that skill set, a larger one under its first column and class. An agent either looks up
every subset (up to three) of its skills (``subsets``: what the index always did, C(skills,
3) look-ups) or tests every skill set present against its skills (``scan``); ``auto`` takes,
size by size, whichever looks at fewer sets. The candidates, and so every answer and every
engine decision, are the same whichever way: checked here against a plain oracle, against
each other and against the pure-Python twin.
"""

from __future__ import annotations

import types
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from omniroute.core_ext import reference
from omniroute.engine import Engine, Policy, matching
from omniroute.engine.matching import CLASS_INDEX, AgentTable, ProfileTable
from omniroute.engine.state import AgentState

from .test_kernel import _drive

compiled = pytest.importorskip("omniroute.core_ext._kernel")
N_CLASSES = 7
ALL_ROOM = (1 << N_CLASSES) - 1
LOOKUPS = ("subsets", "scan", "auto")


def _agent(table: AgentTable, slot: int, skills: dict[str, int], **fields: Any) -> None:
    table.sync(
        AgentState(
            agent_id=f"a{slot}", seq=slot, slot=slot, kind=fields.get("kind", "human"),
            skills=skills, profile="default", languages=[], status="available",
            responsive=True, units=[0] * N_CLASSES, counts=[0] * N_CLASSES,
            idle_since=fields.get("idle_since", 0), last_offer=0,
        )
    )  # fmt: skip


def _expected(table: AgentTable, agent: int, buckets: list[tuple[list[int], int]]) -> list[int]:
    """The oracle: a bucket of at most three distinct columns when the agent has every one
    (at any level), a larger one when it has the first (lowest) column."""
    held = {int(col) for col in np.flatnonzero(table.levels[agent])}
    found = []
    for b, (cols, _cls) in enumerate(buckets):
        distinct = sorted(set(cols))
        if set(distinct if len(distinct) <= 3 else distinct[:1]) <= held:
            found.append(b)
    return found


@st.composite
def desks(draw: st.DrawFn) -> tuple[AgentTable, Any, list[tuple[list[int], int]], int]:
    """A table of agents with 0..all of up to 40 skills (so ``auto`` picks either way at
    each set size) and an index of buckets of 0..5 columns (a few with a repeated one)."""
    n_skills = draw(st.integers(1, 40))
    names = [f"s{i:02d}" for i in range(n_skills)]
    table = AgentTable(ProfileTable(Policy()))
    for name in names:
        table.column(name)
    n_agents = draw(st.integers(1, 6))
    for slot in range(n_agents):
        if draw(st.booleans()):  # many skills: subsets outnumber the sets present
            picked = [n for n in names if draw(st.integers(0, 4))]
        else:
            picked = draw(st.lists(st.sampled_from(names), max_size=4, unique=True))
        _agent(table, slot, {name: draw(st.integers(1, 5)) for name in picked})
    index = compiled.QueueIndex()
    buckets: list[tuple[list[int], int]] = []
    for _ in range(draw(st.integers(0, 80))):
        size = draw(st.sampled_from([0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 5]))
        cols = draw(st.lists(st.integers(0, n_skills - 1), min_size=size, max_size=size))
        if draw(st.integers(0, 9)):  # mostly distinct columns, as the engine's requests
            cols = list(dict.fromkeys(cols))
        cls = draw(st.integers(0, N_CLASSES - 1))
        levels = draw(st.lists(st.integers(1, 5), min_size=len(cols), max_size=len(cols)))
        b = index.bucket_id(
            np.array(cols, np.int32), np.array(levels, np.uint8), cls,
            draw(st.sampled_from([1, 2, 3])), 0,
        )  # fmt: skip
        if b == len(buckets):
            buckets.append((cols, cls))
    return table, index, buckets, n_agents


@given(desks())
def test_every_lookup_finds_the_same_buckets_once(
    desk: tuple[AgentTable, Any, list[tuple[list[int], int]], int],
) -> None:
    table, index, buckets, n_agents = desk
    for agent in range(n_agents):
        expected = _expected(table, agent, buckets)
        for lookup in LOOKUPS:
            assert index.candidate_buckets(table, agent, lookup) == expected, lookup
        assert index.candidate_buckets(table, agent) == expected  # the index's own: auto


@st.composite
def queues(draw: st.DrawFn) -> tuple[AgentTable, list[int], list[tuple[Any, ...]]]:
    """Agents with many of 12 skills and conversations needing up to five of them."""
    names = [f"s{i:02d}" for i in range(12)]
    table = AgentTable(ProfileTable(Policy()))
    slots = []
    for slot in range(draw(st.integers(1, 8))):
        picked = [n for n in names if draw(st.integers(0, 3))]
        skills = {name: draw(st.integers(1, 5)) for name in picked}
        _agent(table, slot, skills, kind=draw(st.sampled_from(["human", "bot"])),
               idle_since=draw(st.integers(0, 1000)))  # fmt: skip
        slots.append(slot)
    convs = []
    for conv in range(draw(st.integers(0, 60))):
        need = draw(st.dictionaries(st.sampled_from(names), st.integers(1, 5), max_size=5))
        cols, levels = table.request(need)
        convs.append(
            (
                cols, levels, draw(st.integers(0, N_CLASSES - 1)),
                draw(st.sampled_from([1, 2, 3])), draw(st.sampled_from([0, 0, 1, 64])),
                draw(st.integers(0, 5)), draw(st.integers(0, 3)), conv,
                draw(st.sampled_from([-1, -1, *slots])), draw(st.integers(0, 20_000)),
                np.array(draw(st.lists(st.sampled_from(slots), max_size=2)), np.int32),
            )
        )  # fmt: skip
    return table, slots, convs


@given(queues(), st.data())
def test_most_urgent_is_the_same_by_every_lookup_and_the_reference(
    built: tuple[AgentTable, list[int], list[tuple[Any, ...]]], data: st.DataObject
) -> None:
    table, slots, convs = built
    indexes = [compiled.QueueIndex() for _ in LOOKUPS]
    for index, lookup in zip(indexes, LOOKUPS, strict=True):
        index.lookup = lookup
    twin = reference.QueueIndex()
    for queue in (*indexes, twin):
        for conv, (cols, levels, cls, kind_mask, also, *fields) in enumerate(convs):
            queue.add(conv, queue.bucket_id(cols, levels, cls, kind_mask, also), *fields)
    for conv in data.draw(st.lists(st.integers(0, max(len(convs) - 1, 0)), max_size=10)):
        for queue in (*indexes, twin):
            queue.remove(conv)
    now = data.draw(st.integers(0, 20_000))
    window = data.draw(st.sampled_from([0, 0, 1, 2, 6, -1, 2**63 - 1]))
    for agent in slots:
        want = twin.most_urgent(table, agent, now, window)
        for index in indexes:
            assert index.most_urgent(table, agent, now, window) == want, index.lookup


def _kernel_with(lookup: str) -> types.ModuleType:
    """The compiled kernel, its queue indexes finding candidates by ``lookup``."""
    module = types.ModuleType("kernel_with_" + lookup)
    module.__dict__.update(compiled.__dict__)

    def queue_index(n_classes: int = N_CLASSES) -> Any:
        index = compiled.QueueIndex(n_classes)
        index.lookup = lookup
        return index

    module.QueueIndex = queue_index  # type: ignore[attr-defined]
    return module


@pytest.mark.parametrize("seed", range(6))
def test_engine_decisions_are_byte_identical_by_every_lookup(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # odd seeds: freed agents prefer their best-matching skills within 20 s of urgency
    policy = msgspec.convert(
        {"queues": {"default": {"offer_timeout_s": 30}}, "prefer_window_s": 20.0 * (seed % 2)},
        Policy,
    )
    events, with_auto = _drive(seed, Engine(policy))
    for lookup in ("subsets", "scan"):
        monkeypatch.setattr(matching, "kernel", _kernel_with(lookup))
        engine = Engine(policy)
        decided = msgspec.msgpack.encode([engine.apply(e) for e in events])  # type: ignore[arg-type]
        assert decided == with_auto, lookup
    assert with_auto.count(b"conversation.assigned") > 20


def test_an_agent_with_thousands_of_skills_looks_only_at_the_sets_present() -> None:
    """5,000 skills are C(5000, 3) > 2 * 10**10 subsets (hours of look-ups); the index holds
    three skill sets, so the agent tests three sets and takes the most urgent it holds."""
    table = AgentTable(ProfileTable(Policy()))
    names = [f"s{i:04d}" for i in range(5_000)]
    _agent(table, 0, dict.fromkeys(names[:4_999], 3))  # all but the last
    _agent(table, 1, {names[0]: 3})
    index, nobody, chat = compiled.QueueIndex(), np.array([], np.int32), CLASS_INDEX["chat"]
    for conv, (need, key) in enumerate(
        [((names[-1], names[0], names[1]), 10), ((names[7], names[4_000], names[9]), 20),
         ((names[0],), 30)]
    ):  # fmt: skip
        cols, levels = table.request(dict.fromkeys(need, 2))
        index.add(conv, index.bucket_id(cols, levels, chat, 1), key, key, conv, -1, 0, nobody)
    assert index.candidate_buckets(table, 0) == [1, 2]
    assert index.most_urgent(table, 0, 0) == 1  # conv 0 needs the skill it lacks
    assert index.most_urgent(table, 1, 0) == 2


@pytest.mark.parametrize("kernel", [compiled, reference], ids=["compiled", "reference"])
def test_lookup_names_one_of_the_ways(kernel: Any) -> None:
    index = kernel.QueueIndex()
    assert index.lookup == "auto"
    for lookup in kernel.LOOKUPS:
        index.lookup = lookup
        assert index.lookup == lookup
    with pytest.raises(ValueError, match="lookup"):
        index.lookup = "guess"
