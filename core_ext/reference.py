"""Pure-Python twin of the Cython matching kernel: the test oracle and the fallback.

Same semantics, same floating-point operation order, same tie-breaks as
``_kernel.pyx``, written as plain loops over every agent and every waiting
conversation, without the kernel's bitsets and buckets, so that it reads as the
specification the indexes must agree with.

The agent table is read through :class:`~omniroute.core_ext.tables.AgentArrays`, the
contract both kernels share (names, dtypes and shapes of the struct-of-arrays).

Agent score: ``w[0]*proficiency + w[1]*idle_s + w[2]*spare + w[3]*preferred +
w[4]*offers_since_last``; the best agent has the highest score, ties go to the lowest
``seq``. ``proficiency`` is the agent's mean level on the required skills over 5 (0.0
when none is required); ``idle_s`` the seconds since ``idle_since`` for an agent holding
nothing, 0.0 for one holding any work (so holding work never looks more idle than holding
none); ``spare`` the share of the budget left after every held unit, paused
(interrupted) work included, and the new item's cost (capacity checks leave paused work
out; the score does not).

Conversation urgency: the lowest ``(key, deadline, seq)``. With a preference window,
an agent takes, among the most urgent conversation it may take of each bucket whose key
is within the window of the most urgent one's, that of the bucket it is most proficient
in (ties: the more urgent): its primary skill's work when it is nearly as urgent.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .tables import AgentArrays

__all__ = [
    "LOOKUPS",
    "QueueIndex",
    "agent_eligible",
    "best_agent",
    "committed_units",
    "fits",
    "refresh_room",
    "room_mask",
    "score_agent",
    "write_row",
]

I32 = npt.NDArray[np.int32]
U8 = npt.NDArray[np.uint8]

LOOKUPS = ("auto", "subsets", "scan")
"""How the compiled index finds an agent's candidate buckets (``QueueIndex.lookup``). Every
way finds the same buckets and so the same answers; the twin, which has no index, only
checks the name."""


def committed_units(table: AgentArrays, slot: int, cls: int, extra: int, adding: bool) -> int:
    """Units the agent would be committed to with ``extra`` more units of class ``cls``.

    Every held unit counts, except that a new item (``adding``) of a class that may
    interrupt another class does not count that class: an agent busy only with email can
    take a call. Anything else added while an interrupter is held counts everything, so
    the agent still fits its budget when the interrupting work ends. Returns -1 when a
    new item would be paused at once by a held class (it would only wait behind it).
    """
    p = int(table.profile[slot])
    n_classes = table.units.shape[1]
    cls_bit = 1 << cls
    present = 0
    for d in range(n_classes):
        if table.counts[slot, d] > 0:
            present |= 1 << d
    if adding and (int(table.intr[p, cls]) & present & ~cls_bit):
        return -1
    total = extra
    for d in range(n_classes):
        if not present & (1 << d):
            continue
        if adding and d != cls and int(table.intr[p, d]) & cls_bit:
            continue
        total += int(table.units[slot, d])
    return total


def fits(table: AgentArrays, slot: int, cls: int, extra: int, adding: bool) -> bool:
    """True when ``extra`` more units of ``cls`` (a new item if ``adding``) fit the agent."""
    p = int(table.profile[slot])
    if adding and table.counts[slot, cls] >= table.cmax[p, cls]:
        return False
    total = committed_units(table, slot, cls, extra, adding)
    return 0 <= total <= int(table.budget[p])


def _fits_new(table: AgentArrays, slot: int, cls: int) -> bool:
    return fits(table, slot, cls, int(table.cost[int(table.profile[slot]), cls]), True)


def _check_also(also: int, n_classes: int) -> None:
    if also < 0 or also >> n_classes:
        raise ValueError(f"also={also} names a media class outside 0..{n_classes - 1}")


def _below_max(table: AgentArrays, slot: int, also: int) -> bool:
    """True when the agent holds fewer than its max of every class in ``also``."""
    p = int(table.profile[slot])
    return all(
        table.counts[slot, c] < table.cmax[p, c]
        for c in range(table.counts.shape[1])
        if also & (1 << c)
    )


def room_mask(table: AgentArrays, slot: int) -> int:
    """Bit set of the media classes a new item of which the agent could take now."""
    if not table.routable[slot]:
        return 0
    mask = 0
    for c in range(table.units.shape[1]):
        if _fits_new(table, slot, c):
            mask |= 1 << c
    return mask


def refresh_room(table: AgentArrays, slot: int) -> None:
    """Write the agent's ``room_bits`` (one bit per media class) from its row."""
    mask = room_mask(table, slot)
    word, bit = slot >> 6, np.uint64(1 << (slot & 63))
    for c in range(table.room_bits.shape[0]):
        if mask & (1 << c):
            table.room_bits[c, word] |= bit
        else:
            table.room_bits[c, word] &= ~bit


def write_row(
    table: AgentArrays, slot: int, routable: bool, present: bool, kind: int, seq: int,
    profile: int, idle_since: int, last_offer: int, units: list[int], counts: list[int],
) -> None:  # fmt: skip
    """Write one agent's row (``alive`` set; ``units``/``counts``: one int per media class)
    and then its ``room_bits``."""
    n = table.units.shape[1]
    if len(units) != n or len(counts) != n:
        raise ValueError(f"units and counts need {n} items, one per media class")
    table.alive[slot] = 1
    table.routable[slot] = routable
    table.present[slot] = present
    table.kind[slot] = kind
    table.seq[slot] = seq
    table.profile[slot] = profile
    table.idle_since[slot] = idle_since
    table.last_offer[slot] = last_offer
    table.units[slot] = units
    table.counts[slot] = counts
    refresh_room(table, slot)


def _skills_ok(
    table: AgentArrays, slot: int, cols: I32 | list[int], levels: U8 | list[int]
) -> bool:
    return all(table.levels[slot, cols[j]] >= levels[j] for j in range(len(cols)))


def agent_eligible(table: AgentArrays, slot: int, req_cols: I32, req_levels: U8, cls: int,
                   kind_mask: int, also: int = 0) -> bool:  # fmt: skip
    """Can this agent be offered a new item of ``cls`` needing these skills, right now?

    ``also``: bit set of further classes the item counts against (bit ``c`` is media
    class ``c``); the agent must hold fewer than its max of each.
    """
    _check_also(also, table.counts.shape[1])
    if not table.routable[slot] or not (int(table.kind[slot]) & kind_mask):
        return False
    return (
        _skills_ok(table, slot, req_cols, req_levels)
        and _below_max(table, slot, also)
        and _fits_new(table, slot, cls)
    )


def _proficiency(table: AgentArrays, slot: int, cols: I32 | list[int]) -> float:
    """Mean level on the required skill columns over 5 (0.0 when none is required)."""
    n_req = len(cols)
    if n_req == 0:
        return 0.0
    total = 0
    for j in range(n_req):
        total += int(table.levels[slot, cols[j]])
    return total / (5.0 * n_req)


def score_agent(
    table: AgentArrays, slot: int, req_cols: I32, cls: int, preferred: int, now: int,
    offer_counter: int, weights: npt.NDArray[np.float64],
) -> float:  # fmt: skip
    """The score of one agent for a conversation (see the module docstring)."""
    p = int(table.profile[slot])
    budget = int(table.budget[p])
    committed = int(table.units[slot].sum()) + int(table.cost[p, cls])
    holding = bool(table.counts[slot].any())
    proficiency = _proficiency(table, slot, req_cols)
    idle_s = 0.0 if holding else (now - int(table.idle_since[slot])) / 1000.0
    spare = (budget - committed) / float(budget)
    sticky = 1.0 if slot == preferred else 0.0
    rr_gap = float(offer_counter - int(table.last_offer[slot]))
    score = weights[0] * proficiency
    score = score + weights[1] * idle_s
    score = score + weights[2] * spare
    score = score + weights[3] * sticky
    score = score + weights[4] * rr_gap
    return float(score)


def best_agent(
    table: AgentArrays, req_cols: I32, req_levels: U8, cls: int, kind_mask: int, excluded: I32,
    preferred: int, pinned: int, now: int, offer_counter: int,
    weights: npt.NDArray[np.float64], also: int = 0,
) -> tuple[int, float]:  # fmt: skip
    """The best eligible agent for one conversation: ``(slot, score)`` or ``(-1, 0.0)``.

    Every live agent is a candidate, or only ``pinned`` when it is >= 0 (eligibility,
    ``also`` included, as :func:`agent_eligible`).
    """
    _check_also(also, table.counts.shape[1])
    best, best_score, best_seq = -1, 0.0, 0
    slots = [pinned] if pinned >= 0 else range(table.alive.shape[0])
    for slot in slots:
        if not table.alive[slot] or slot in excluded:
            continue
        if not agent_eligible(table, slot, req_cols, req_levels, cls, kind_mask, also):
            continue
        score = score_agent(table, slot, req_cols, cls, preferred, now, offer_counter, weights)
        seq = int(table.seq[slot])
        if best < 0 or score > best_score or (score == best_score and seq < best_seq):
            best, best_score, best_seq = slot, score, seq
    return best, best_score


def _check_lookup(lookup: str) -> None:
    if lookup not in LOOKUPS:
        raise ValueError(f"lookup={lookup!r}: expected one of {LOOKUPS}")


class QueueIndex:
    """Waiting conversations: every one is looked at for every question."""

    def __init__(self, n_classes: int = 7) -> None:
        self._lookup = "auto"
        self.size = 0
        self._n_classes = n_classes
        self._buckets: list[tuple[list[int], list[int], int, int, int]] = []
        self._ids: dict[tuple[bytes, bytes, int, int, int], int] = {}
        self._convs: dict[int, tuple[int, tuple[int, int, int], int, int, list[int]]] = {}

    @property
    def lookup(self) -> str:
        """One of ``LOOKUPS`` (the compiled index's strategy; the same answers either way)."""
        return self._lookup

    @lookup.setter
    def lookup(self, value: str) -> None:
        _check_lookup(value)
        self._lookup = value

    def bucket_id(self, cols: I32, levels: U8, cls: int, kind_mask: int, also: int = 0) -> int:
        """The bucket of this requirement (created on first use).

        ``also``: bit set of further classes a conversation of it counts against.
        """
        _check_also(also, self._n_classes)
        if len(levels) != len(cols):
            raise ValueError(f"{len(cols)} columns but {len(levels)} levels")
        sig = (bytes(cols), bytes(levels), cls, kind_mask, also)
        if sig not in self._ids:
            self._ids[sig] = len(self._buckets)
            self._buckets.append(([int(c) for c in cols], [int(v) for v in levels], cls,
                                  kind_mask, also))  # fmt: skip
        return self._ids[sig]

    def add(
        self, conv: int, bucket: int, key: int, deadline: int, seq: int, pinned: int,
        pin_until: int, excluded: I32,
    ) -> None:  # fmt: skip
        """Put a conversation slot in the queue (replacing any earlier entry of it)."""
        self.remove(conv)
        urgency = (key, deadline, seq)
        self._convs[conv] = (bucket, urgency, pinned, pin_until, [int(a) for a in excluded])
        self.size += 1

    def remove(self, conv: int) -> None:
        """Take a conversation slot out of the queue."""
        if self._convs.pop(conv, None) is not None:
            self.size -= 1

    def most_urgent(self, table: AgentArrays, agent: int, now: int, prefer_window: int = 0) -> int:
        """The most urgent waiting conversation this agent can take now, or -1.

        With ``prefer_window`` > 0 (ms), the preference of the module docstring.
        """
        if not table.routable[agent]:
            return -1
        heads: dict[int, tuple[tuple[int, int, int], int]] = {}
        for conv, (bucket, urgency, pinned, pin_until, excluded) in self._convs.items():
            cols, levels, cls, kind_mask, also = self._buckets[bucket]
            if not (int(table.kind[agent]) & kind_mask) or agent in excluded:
                continue
            if pinned >= 0 and pinned != agent and now < pin_until and table.present[pinned]:
                continue
            if not _skills_ok(table, agent, cols, levels) or not _fits_new(table, agent, cls):
                continue
            if not _below_max(table, agent, also):
                continue
            if bucket not in heads or urgency < heads[bucket][0]:
                heads[bucket] = (urgency, conv)
        if not heads:
            return -1
        best_urgency, best = min(heads.values())
        if prefer_window <= 0:
            return best
        near = [
            (-_proficiency(table, agent, self._buckets[bucket][0]), urgency, conv)
            for bucket, (urgency, conv) in heads.items()
            if urgency[0] <= best_urgency[0] + prefer_window
        ]
        return min(near)[2]
