"""Struct-of-arrays views of each tenant's agents and queue, and the two matching questions.

The engine owns the authoritative state (``state.py``); this module keeps, per tenant,
the numpy arrays the kernel scores (``AgentTable``), the skill index that keeps
candidate sets small, and the set of conversations waiting in the queue. All of it
is derived: ``Engine.restore`` rebuilds it from a snapshot.

1. a conversation became routable -> :meth:`TenantMatcher.best_agent`
2. an agent gained capacity -> :meth:`TenantMatcher.most_urgent`
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..core_ext import kernel
from .policy import MEDIA_CLASSES, Policy, Queue
from .state import AgentState, ConversationState

__all__ = [
    "CLASS_INDEX",
    "KIND_MASK",
    "AgentTable",
    "ProfileTable",
    "TenantMatcher",
    "requirements",
]

CLASS_INDEX = {name: i for i, name in enumerate(MEDIA_CLASSES)}
KIND_BIT = {"human": 1, "bot": 2}
KIND_MASK = {"human": 1, "bot": 2, "any": 3}
LANGUAGE_PREFIX = "lang:"
LANGUAGE_LEVEL = 5


class ProfileTable:
    """Per capacity profile: unit budget, and per media class cost, max and interrupters."""

    def __init__(self, policy: Policy) -> None:
        names = list(policy.profiles)
        self.index = {name: i for i, name in enumerate(names)}
        n, c = len(names), len(MEDIA_CLASSES)
        self.budget = np.zeros(n, np.int32)
        self.cost = np.zeros((n, c), np.int32)
        self.cmax = np.zeros((n, c), np.int32)
        self.intr = np.zeros((n, c), np.int32)
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
    """One row per agent slot of a tenant; the attribute names are the kernel's contract."""

    def __init__(self, profiles: ProfileTable, capacity: int = 16, skills: int = 8) -> None:
        self.budget = profiles.budget
        self.cost = profiles.cost
        self.cmax = profiles.cmax
        self.intr = profiles.intr
        self._profile_index = profiles.index
        n_classes = len(MEDIA_CLASSES)
        self.routable = np.zeros(capacity, np.uint8)
        self.kind = np.zeros(capacity, np.uint8)
        self.seq = np.zeros(capacity, np.int64)
        self.levels = np.zeros((capacity, skills), np.uint8)
        self.units = np.zeros((capacity, n_classes), np.int32)
        self.counts = np.zeros((capacity, n_classes), np.int32)
        self.profile = np.zeros(capacity, np.int32)
        self.idle_since = np.zeros(capacity, np.int64)
        self.last_offer = np.zeros(capacity, np.int64)
        self.skill_cols: dict[str, int] = {}
        self.by_skill: list[set[int]] = []
        self.live: set[int] = set()
        self._skills_of: dict[int, dict[str, int]] = {}

    def _grow_rows(self, need: int) -> None:
        size = self.routable.shape[0]
        if need <= size:
            return
        new = max(need, 2 * size)
        for name in ("routable", "kind", "seq", "profile", "idle_since", "last_offer"):
            old = getattr(self, name)
            arr = np.zeros(new, old.dtype)
            arr[:size] = old
            setattr(self, name, arr)
        for name in ("levels", "units", "counts"):
            old = getattr(self, name)
            arr = np.zeros((new, old.shape[1]), old.dtype)
            arr[:size] = old
            setattr(self, name, arr)

    def column(self, skill: str) -> int:
        """The column of a skill, created on first use (no agent has it yet)."""
        col = self.skill_cols.get(skill)
        if col is None:
            col = len(self.skill_cols)
            self.skill_cols[skill] = col
            self.by_skill.append(set())
            if col >= self.levels.shape[1]:
                old = self.levels
                self.levels = np.zeros((old.shape[0], 2 * old.shape[1]), np.uint8)
                self.levels[:, : old.shape[1]] = old
        return col

    def sync(self, agent: AgentState) -> None:
        """Copy one agent's routing-relevant fields into its row."""
        slot = agent.slot
        self._grow_rows(slot + 1)
        self.live.add(slot)
        self.routable[slot] = agent.routable
        self.kind[slot] = KIND_BIT[agent.kind]
        self.seq[slot] = agent.seq
        self.profile[slot] = self._profile_index[agent.profile]
        self.units[slot] = agent.units
        self.counts[slot] = agent.counts
        self.idle_since[slot] = agent.idle_since
        self.last_offer[slot] = agent.last_offer
        skills = dict(agent.skills)
        for language in agent.languages:
            skills[LANGUAGE_PREFIX + language] = LANGUAGE_LEVEL
        if skills != self._skills_of.get(slot):
            self._set_skills(slot, skills)

    def _set_skills(self, slot: int, skills: dict[str, int]) -> None:
        for name in self._skills_of.get(slot, {}):
            col = self.skill_cols[name]
            self.levels[slot, col] = 0
            self.by_skill[col].discard(slot)
        for name, level in skills.items():
            col = self.column(name)
            self.levels[slot, col] = level
            self.by_skill[col].add(slot)
        self._skills_of[slot] = skills

    def clear(self, slot: int) -> None:
        """Forget a removed agent's row; the slot may be reused."""
        self._set_skills(slot, {})
        del self._skills_of[slot]
        self.live.discard(slot)
        self.routable[slot] = 0
        self.units[slot] = 0
        self.counts[slot] = 0

    def request(
        self, skills: dict[str, int]
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
        """Skill columns and minimum levels of a requirement, in name order."""
        names = sorted(skills)
        cols = np.fromiter((self.column(n) for n in names), np.int32, len(names))
        levels = np.fromiter((skills[n] for n in names), np.uint8, len(names))
        return cols, levels

    def candidates(self, cols: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """Agents holding the rarest required skill (all agents when none is required)."""
        if cols.shape[0] == 0:
            pool: set[int] = self.live
        else:
            pool = min((self.by_skill[int(c)] for c in cols), key=len)
        return np.fromiter(sorted(pool), np.int32, len(pool))


def requirements(conv: ConversationState, queue: Queue) -> dict[str, int]:
    """The skills (name -> minimum level) a conversation needs at its current ring."""
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


class TenantMatcher:
    """A tenant's agent table and queue, answering the two matching questions."""

    def __init__(self, policy: Policy, profiles: ProfileTable) -> None:
        self.policy = policy
        self.table = AgentTable(profiles)
        self.queued: dict[str, None] = {}
        self.agent_at: dict[int, str] = {}
        weights = policy.scoring
        self.weights = np.array(
            [weights.skill, weights.idle, weights.load, weights.sticky, weights.round_robin],
            np.float64,
        )

    def urgency(self, conv: ConversationState, now: int) -> tuple[float, int, int]:
        """Sort key, most urgent first: aged priority, then SLA slack, then arrival order."""
        queue = self.policy.queues[conv.queue]
        priority = float(conv.priority)
        if queue.aging_s > 0:
            priority += (now - conv.first_contact_ts) / (queue.aging_s * 1000.0)
        return (-priority, conv.sla_deadline - now, conv.seq)

    def best_agent(
        self,
        conv: ConversationState,
        cand: npt.NDArray[np.int32] | None,
        excluded: list[int],
        preferred: int,
        now: int,
        offer_counter: int,
    ) -> tuple[int, float]:
        """The best eligible agent slot for a waiting conversation, or ``(-1, 0.0)``.

        ``cand`` restricts the candidates (a pinned agent); ``excluded`` are slots that
        declined or let it time out; ``preferred`` is the sticky agent's slot or -1.
        """
        cols, levels = self.table.request(requirements(conv, self.policy.queues[conv.queue]))
        if cand is None:
            cand = self.table.candidates(cols)
        slot, score = kernel.best_agent(
            self.table, cand, cols, levels, CLASS_INDEX[conv.media_class],
            KIND_MASK[conv.kinds], np.array(excluded, np.int32), preferred, now,
            offer_counter, self.weights,
        )  # fmt: skip
        return int(slot), float(score)

    def can_take(self, slot: int, conv: ConversationState) -> bool:
        """Is this agent slot eligible for the conversation (pins and exclusions aside)?"""
        cols, levels = self.table.request(requirements(conv, self.policy.queues[conv.queue]))
        return bool(
            kernel.agent_eligible(
                self.table, slot, cols, levels, CLASS_INDEX[conv.media_class],
                KIND_MASK[conv.kinds],
            )
        )  # fmt: skip
