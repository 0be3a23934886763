"""Struct-of-arrays views of each tenant's agents and queue, and the two matching questions.

The engine owns the authoritative state (``state.py``); this module keeps, per tenant,
what the kernel reads: the agent table (numpy arrays, one row per agent slot, with
per-skill and per-media-class bitsets so that a decision only looks at agents who
hold the rarest required skill and have room) and the queue index (waiting
conversations bucketed by what they need, each bucket ordered by urgency). Both are
updated incrementally as the engine changes state, and both are derived:
``Engine.restore`` rebuilds them from a snapshot.

1. a conversation became routable -> :meth:`TenantMatcher.best_agent`
2. an agent gained capacity -> :meth:`TenantMatcher.most_urgent`

It is the engine's only door to the kernel (``omniroute.core_ext``), so the arrays and
calls the kernel expects stay in one place.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from omniroute.core_ext import kernel

from .events import Skills
from .policy import MEDIA_CLASSES, MediaClass, Policy, Queue, Urgency
from .state import AgentState, ConversationState

__all__ = [
    "CLASS_INDEX",
    "KIND_MASK",
    "AgentTable",
    "ProfileTable",
    "TenantMatcher",
    "also_mask",
    "deadline",
    "requirements",
    "urgency",
]

CLASS_INDEX = {name: i for i, name in enumerate(MEDIA_CLASSES)}
KIND_BIT = {"human": 1, "bot": 2}
KIND_MASK = {"human": 1, "bot": 2, "any": 3}
LANGUAGE_PREFIX = "lang:"
LANGUAGE_LEVEL = 5
STRICT_PRIORITY_MS = 10**13
"""Without aging, one priority level outweighs any wait (over 300 years)."""
_KEY_LIMIT = 2**62
"""Urgency keys are clamped into the kernel's 64-bit range (strict priority x 2**31)."""

_N_CLASSES = len(MEDIA_CLASSES)
_MAX_MEMO = 100_000
_NO_SLOTS = np.zeros(0, np.int32)
Requirement = tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]


class ProfileTable:
    """Per capacity profile: unit budget, and per media class cost, max and interrupters."""

    def __init__(self, policy: Policy) -> None:
        names = list(policy.profiles)
        self.index = {name: i for i, name in enumerate(names)}
        n = len(names)
        self.budget = np.zeros(n, np.int32)
        self.cost = np.zeros((n, _N_CLASSES), np.int32)
        self.cmax = np.zeros((n, _N_CLASSES), np.int32)
        self.intr = np.zeros((n, _N_CLASSES), np.int32)
        for i, name in enumerate(names):
            profile = policy.profiles[name]
            self.budget[i] = profile.budget
            for cname, limit in profile.classes.items():
                d = CLASS_INDEX[cname]
                self.cost[i, d] = limit.cost
                self.cmax[i, d] = limit.max
                for by in limit.interruptible_by:
                    self.intr[i, d] |= 1 << CLASS_INDEX[by]


class AgentTable:
    """One row per agent slot of a tenant; the attribute names are the kernel's contract.

    ``version`` changes whenever an array is reallocated (the kernel caches typed views).
    """

    _ROW_ARRAYS = ("alive", "routable", "present", "kind", "seq", "profile", "idle_since",
                   "last_offer")  # fmt: skip
    _MATRICES = ("levels", "units", "counts")

    def __init__(self, profiles: ProfileTable, capacity: int = 64, skills: int = 8) -> None:
        self.budget = profiles.budget
        self.cost = profiles.cost
        self.cmax = profiles.cmax
        self.intr = profiles.intr
        self._profile_index = profiles.index
        self.version = 0
        self.alive = np.zeros(capacity, np.uint8)
        self.routable = np.zeros(capacity, np.uint8)
        self.present = np.zeros(capacity, np.uint8)
        self.kind = np.zeros(capacity, np.uint8)
        self.seq = np.zeros(capacity, np.int64)
        self.profile = np.zeros(capacity, np.int32)
        self.idle_since = np.zeros(capacity, np.int64)
        self.last_offer = np.zeros(capacity, np.int64)
        self.levels = np.zeros((capacity, skills), np.uint8)
        self.units = np.zeros((capacity, _N_CLASSES), np.int32)
        self.counts = np.zeros((capacity, _N_CLASSES), np.int32)
        words = capacity // 64
        self.skill_bits = np.zeros((skills, words), np.uint64)
        self.room_bits = np.zeros((_N_CLASSES, words), np.uint64)
        self.skill_count = np.zeros(skills, np.int32)
        self.skill_cols: dict[str, int] = {}
        self._skills_of: dict[int, tuple[Skills, list[str]]] = {}
        """Per slot, the skills and languages its row holds (the agent's own objects: they
        are replaced, never mutated, so an unchanged identity means unchanged skills)."""
        self._requests: dict[tuple[tuple[str, int], ...], Requirement] = {}

    def _grow_rows(self, need: int) -> None:
        size = self.alive.shape[0]
        if need <= size:
            return
        new = max(need, 2 * size)
        new += -new % 64
        for name in self._ROW_ARRAYS:
            old = getattr(self, name)
            arr = np.zeros(new, old.dtype)
            arr[:size] = old
            setattr(self, name, arr)
        for name in self._MATRICES:
            old = getattr(self, name)
            arr = np.zeros((new, old.shape[1]), old.dtype)
            arr[:size] = old
            setattr(self, name, arr)
        for name in ("skill_bits", "room_bits"):
            old = getattr(self, name)
            arr = np.zeros((old.shape[0], new // 64), np.uint64)
            arr[:, : old.shape[1]] = old
            setattr(self, name, arr)
        self.version += 1

    def column(self, skill: str) -> int:
        """The column of a skill, created on first use (no agent has it yet)."""
        col = self.skill_cols.get(skill)
        if col is None:
            col = len(self.skill_cols)
            self.skill_cols[skill] = col
            if col >= self.levels.shape[1]:
                width = 2 * self.levels.shape[1]
                levels = np.zeros((self.levels.shape[0], width), np.uint8)
                levels[:, : self.levels.shape[1]] = self.levels
                bits = np.zeros((width, self.skill_bits.shape[1]), np.uint64)
                bits[: self.skill_bits.shape[0]] = self.skill_bits
                count = np.zeros(width, np.int32)
                count[: self.skill_count.shape[0]] = self.skill_count
                self.levels, self.skill_bits, self.skill_count = levels, bits, count
                self.version += 1
        return col

    def sync(self, agent: AgentState) -> None:
        """Copy one agent's routing-relevant fields into its row and bitsets."""
        slot = agent.slot
        self._grow_rows(slot + 1)
        held = self._skills_of.get(slot)
        if held is None or held[0] is not agent.skills or held[1] is not agent.languages:
            self._set_skills(slot, agent.skills, agent.languages)
        kernel.write_row(
            self, slot, agent.routable, agent.status == "available" and agent.responsive,
            KIND_BIT[agent.kind], agent.seq, self._profile_index[agent.profile],
            agent.idle_since, agent.last_offer, agent.units, agent.counts,
        )  # fmt: skip

    def _set_skills(self, slot: int, skills: Skills, languages: list[str]) -> None:
        word, bit = slot >> 6, np.uint64(1 << (slot & 63))
        held = self._skills_of.pop(slot, None)
        for name in _levels(*held) if held is not None else ():
            col = self.skill_cols[name]
            self.levels[slot, col] = 0
            self.skill_bits[col, word] &= ~bit
            self.skill_count[col] -= 1
        for name, level in _levels(skills, languages).items():
            col = self.column(name)
            self.levels[slot, col] = level
            self.skill_bits[col, word] |= bit
            self.skill_count[col] += 1
        self._skills_of[slot] = (skills, languages)

    def clear(self, slot: int) -> None:
        """Forget a removed agent's row (slots are never reused)."""
        self._set_skills(slot, {}, [])
        del self._skills_of[slot]
        for name in self._ROW_ARRAYS:
            getattr(self, name)[slot] = 0
        kernel.refresh_room(self, slot)
        self.units[slot] = 0
        self.counts[slot] = 0

    def request(self, skills: dict[str, int]) -> Requirement:
        """Skill columns and minimum levels of a requirement, in name order (memoised)."""
        signature = tuple(sorted(skills.items()))
        found = self._requests.get(signature)
        if found is None:
            if len(self._requests) >= _MAX_MEMO:
                self._requests.clear()
            cols = np.array([self.column(name) for name, _ in signature], np.int32)
            levels = np.array([level for _, level in signature], np.uint8)
            found = self._requests[signature] = (cols, levels)
        return found


def _levels(skills: Skills, languages: list[str]) -> Skills:
    """An agent's skill levels, each language a skill of its own."""
    if not languages:
        return skills
    return {**skills, **{LANGUAGE_PREFIX + language: LANGUAGE_LEVEL for language in languages}}


def _slots(slots: list[int]) -> npt.NDArray[np.int32]:
    return np.array(slots, np.int32) if slots else _NO_SLOTS


def requirements(conv: ConversationState, queue: Queue) -> dict[str, int]:
    """The skills (name -> minimum level) a conversation needs at its current ring."""
    if not conv.ring and not queue.skills and not conv.optional_skills and not conv.language:
        return conv.skills
    ring = queue.rings[conv.ring - 1] if conv.ring > 0 else None
    if ring is not None and ring.widen:
        return dict.fromkeys(queue.skills, 1)
    need = dict(queue.skills)
    for name, level in conv.skills.items():
        need[name] = max(need.get(name, 0), level)
    if ring is None or not ring.drop_optional:
        for name, level in conv.optional_skills.items():
            need[name] = max(need.get(name, 0), level)
    if ring is not None and ring.level_drop:
        need = {name: max(1, level - ring.level_drop) for name, level in need.items()}
    if conv.language:
        need[LANGUAGE_PREFIX + conv.language] = 1
    return need


def also_mask(conv: ConversationState) -> int:
    """Bits (``CLASS_INDEX``) of the classes of the live legs besides the one it is routed
    as: an agent needs room below each one's maximum too."""
    mask = 0
    for leg in conv.legs:
        if leg.ended_ts is None and leg.media_class != conv.media_class:
            mask |= 1 << CLASS_INDEX[leg.media_class]
    return mask


def deadline(conv: ConversationState, queue: Queue) -> int:
    """The earliest SLA deadline of the conversation's live legs: its first contact's (set on
    arrival), each later leg's from when it started, by its channel's target. A call that
    joins an open email conversation is as urgent as any call."""
    if len(conv.legs) == 1:
        return conv.sla_deadline
    first, *later = conv.legs
    due = conv.sla_deadline if first.ended_ts is None or not later else None
    for leg in later:
        if leg.ended_ts is None:
            leg_due = leg.started_ts + round(queue.sla_for(leg.channel) * 1000)
            due = leg_due if due is None else min(due, leg_due)
    return conv.sla_deadline if due is None else due


def urgency(conv: ConversationState, queue: Queue, mode: Urgency) -> tuple[int, int, int]:
    """Sort key, most urgent first (static while the conversation waits, so the index stays
    exact): ``deadline``: the earliest SLA deadline of its live legs, then first contact;
    ``arrival``: first contact, then SLA deadline; then arrival order. Each priority level
    moves the first part ``aging_s`` earlier (nothing starves); ``aging_s = 0`` makes
    priority strict.
    """
    if mode == "deadline":
        first = conv.sla_deadline if len(conv.legs) == 1 else deadline(conv, queue)
        second = conv.first_contact_ts
    else:
        first, second = conv.first_contact_ts, conv.sla_deadline
    if conv.priority:
        worth = round(queue.aging_s * 1000) if queue.aging_s > 0 else STRICT_PRIORITY_MS
        first -= conv.priority * worth
    if not -_KEY_LIMIT <= first <= _KEY_LIMIT:
        first = min(max(first, -_KEY_LIMIT), _KEY_LIMIT)
    return (first, second, conv.seq)


class _AgentNames:
    """Which waiting conversations name which agents (by id), both ways: the index holds
    the agents' slots, which change when an agent is removed and registered again."""

    def __init__(self) -> None:
        self._of: dict[str, tuple[str, ...]] = {}
        self._naming: dict[str, dict[str, None]] = {}

    def set(self, conversation_id: str, agent_ids: tuple[str, ...]) -> None:
        self.drop(conversation_id)
        if agent_ids:
            self._of[conversation_id] = agent_ids
            for agent_id in agent_ids:
                self._naming.setdefault(agent_id, {})[conversation_id] = None

    def drop(self, conversation_id: str) -> None:
        for agent_id in self._of.pop(conversation_id, ()):
            naming = self._naming[agent_id]
            del naming[conversation_id]
            if not naming:
                del self._naming[agent_id]

    def naming(self, agent_id: str) -> dict[str, None]:
        """The conversations naming this agent, in the order they named it."""
        return self._naming.get(agent_id, {})


class TenantMatcher:
    """A tenant's agent table and queue index, answering the two matching questions."""

    def __init__(self, policy: Policy, profiles: ProfileTable) -> None:
        self.policy = policy
        self.table = AgentTable(profiles)
        self.index = kernel.QueueIndex()
        self.agent_at: dict[int, str] = {}
        self._conv_slot: dict[str, int] = {}
        self._conv_at: dict[int, str] = {}
        self._free_conv_slots: list[int] = []
        self._next_conv_slot = 0
        self._pins = _AgentNames()
        self._exclusions = _AgentNames()
        self._buckets: dict[tuple[object, ...], int] = {}
        weights = policy.scoring
        self.weights = np.array(
            [weights.skill, weights.idle, weights.load, weights.sticky, weights.round_robin],
            np.float64,
        )

    def __len__(self) -> int:
        return len(self._conv_slot)

    def is_queued(self, conversation_id: str) -> bool:
        return conversation_id in self._conv_slot

    def agents_with_room(self) -> dict[MediaClass, int]:
        """Routable agents with room for one more item, per media class (the kernel's rule)."""
        return {
            cls: sum(int(word).bit_count() for word in self.table.room_bits[i])
            for i, cls in enumerate(MEDIA_CLASSES)
        }

    def pinned_to(self, agent_id: str) -> list[str]:
        """Waiting conversations pinned to this agent."""
        return list(self._pins.naming(agent_id))

    def _requirement(self, conv: ConversationState) -> Requirement:
        return self.table.request(requirements(conv, self.policy.queues[conv.queue]))

    def naming(self, agent_id: str) -> list[str]:
        """Waiting conversations pinned to this agent or excluding it (declined, lapsed).
        The index holds the agent's slot; registered again (removed meanwhile), it has a
        new one, so these must be indexed again."""
        pinned = self._pins.naming(agent_id)
        return [*pinned, *(c for c in self._exclusions.naming(agent_id) if c not in pinned)]

    def enqueue(
        self, conv: ConversationState, excluded: list[int], pinned: int, pin_until: int
    ) -> None:
        """Put (or refresh) a waiting conversation in the index."""
        cid = conv.conversation_id
        slot = self._conv_slot.get(cid)
        if slot is None:
            if self._free_conv_slots:
                slot = self._free_conv_slots.pop()
            else:
                slot = self._next_conv_slot
                self._next_conv_slot += 1
            self._conv_slot[cid] = slot
            self._conv_at[slot] = cid
        self._pins.set(cid, () if conv.pinned is None else (conv.pinned,))
        self._exclusions.set(cid, conv.excluded)
        queue = self.policy.queues[conv.queue]
        key, second, seq = urgency(conv, queue, self.policy.urgency)
        self.index.add(slot, self._bucket(conv, queue), key, second, seq, pinned, pin_until,
                       _slots(excluded))  # fmt: skip

    def _bucket(self, conv: ConversationState, queue: Queue) -> int:
        """The index bucket of what a conversation needs now, cached per everything that
        decides it (queue, ring, skills, optional skills, language, class, kinds, also)."""
        also = also_mask(conv)
        key = (conv.queue, conv.ring, tuple(conv.skills.items()),
               tuple(conv.optional_skills.items()), conv.language, conv.media_class, conv.kinds,
               also)  # fmt: skip
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_MEMO:
                self._buckets.clear()
            cols, levels = self.table.request(requirements(conv, queue))
            bucket = self._buckets[key] = self.index.bucket_id(
                cols, levels, CLASS_INDEX[conv.media_class], KIND_MASK[conv.kinds], also
            )
        return bucket

    def dequeue(self, conversation_id: str) -> None:
        """Take a conversation out of the index."""
        slot = self._conv_slot.pop(conversation_id, None)
        if slot is None:
            return
        self.index.remove(slot)
        del self._conv_at[slot]
        self._free_conv_slots.append(slot)
        self._pins.drop(conversation_id)
        self._exclusions.drop(conversation_id)

    def best_agent(
        self,
        conv: ConversationState,
        excluded: list[int],
        preferred: int,
        pinned: int,
        now: int,
        offer_counter: int,
    ) -> tuple[int, float]:
        """The best eligible agent slot for a waiting conversation, or ``(-1, 0.0)``.

        ``excluded`` are slots that declined it, let it time out or hold it; ``preferred``
        is the sticky agent's slot or -1; ``pinned`` restricts it to one slot (or -1).
        """
        cols, levels = self._requirement(conv)
        slot, score = kernel.best_agent(
            self.table, cols, levels, CLASS_INDEX[conv.media_class], KIND_MASK[conv.kinds],
            _slots(excluded), preferred, pinned, now, offer_counter, self.weights,
            also_mask(conv),
        )  # fmt: skip
        return int(slot), float(score)

    def fits(self, agent_slot: int, cls: MediaClass, units: int, *, adding: bool) -> bool:
        """True when ``units`` more of ``cls`` (one more conversation if ``adding``) fit."""
        return bool(kernel.fits(self.table, agent_slot, CLASS_INDEX[cls], units, adding))

    def most_urgent(self, agent_slot: int, now: int) -> str | None:
        """The most urgent waiting conversation this agent can take now, or one of its
        best-matching skills within the policy's ``prefer_window_s`` of it."""
        window = round(self.policy.prefer_window_s * 1000)
        slot = self.index.most_urgent(self.table, agent_slot, now, window)
        return self._conv_at[slot] if slot >= 0 else None

    def score(
        self, agent_slot: int, conv: ConversationState, preferred: int, now: int,
        offer_counter: int,
    ) -> float:  # fmt: skip
        """The score an agent has for a conversation (reported with the offer)."""
        cols, _ = self._requirement(conv)
        return float(
            kernel.score_agent(
                self.table, agent_slot, cols, CLASS_INDEX[conv.media_class], preferred, now,
                offer_counter, self.weights,
            )
        )  # fmt: skip
