"""Pure-Python twin of the Cython matching kernel: the test oracle and the fallback.

Same semantics, same floating-point operation order, same tie-breaks as
``_kernel.pyx``; written as plain loops so that it reads as the specification.

The agent table (see ``omniroute.engine.matching.AgentTable``) is struct-of-arrays,
one row per agent slot:

``routable`` uint8 (available, responsive, nothing waiting to reactivate),
``kind`` uint8 (1 human, 2 bot), ``seq`` int64 (registration order),
``levels`` uint8[slot, skill], ``units``/``counts`` int32[slot, media class],
``profile`` int32, ``idle_since``/``last_offer`` int64; and per capacity profile
``budget`` int32, ``cost``/``cmax``/``intr`` int32[profile, media class], where
``intr[p, d]`` is the bit set of classes allowed to interrupt class ``d``.

Scores: ``w[0]*proficiency + w[1]*idle_s + w[2]*spare + w[3]*preferred + w[4]*rr_gap``.
The best agent has the highest score; equal scores go to the lowest ``seq``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["agent_eligible", "best_agent", "committed_units", "fits"]

N_WEIGHTS = 5


def committed_units(table: Any, slot: int, cls: int, extra: int, adding: bool) -> int:
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


def fits(table: Any, slot: int, cls: int, extra: int, adding: bool) -> bool:
    """True when ``extra`` more units of ``cls`` (a new item if ``adding``) fit the agent."""
    p = int(table.profile[slot])
    if adding and table.counts[slot, cls] >= table.cmax[p, cls]:
        return False
    total = committed_units(table, slot, cls, extra, adding)
    return 0 <= total <= int(table.budget[p])


def _skills_ok(
    table: Any, slot: int, req_cols: npt.NDArray[np.int32], req_levels: npt.NDArray[np.uint8]
) -> bool:
    return all(
        table.levels[slot, req_cols[j]] >= req_levels[j] for j in range(req_cols.shape[0])
    )


def agent_eligible(
    table: Any,
    slot: int,
    req_cols: npt.NDArray[np.int32],
    req_levels: npt.NDArray[np.uint8],
    cls: int,
    kind_mask: int,
) -> bool:
    """Can this agent be offered a new item of ``cls`` needing these skills, right now?"""
    if not table.routable[slot] or not (int(table.kind[slot]) & kind_mask):
        return False
    if not _skills_ok(table, slot, req_cols, req_levels):
        return False
    p = int(table.profile[slot])
    return fits(table, slot, cls, int(table.cost[p, cls]), True)


def best_agent(
    table: Any,
    cand: npt.NDArray[np.int32],
    req_cols: npt.NDArray[np.int32],
    req_levels: npt.NDArray[np.uint8],
    cls: int,
    kind_mask: int,
    excluded: npt.NDArray[np.int32],
    preferred: int,
    now: int,
    offer_counter: int,
    weights: npt.NDArray[np.float64],
) -> tuple[int, float]:
    """The best eligible agent among ``cand`` for one conversation: ``(slot, score)``.

    ``(-1, 0.0)`` when nobody is eligible. Candidate order does not matter.
    """
    n_req = req_cols.shape[0]
    best = -1
    best_score = 0.0
    best_seq = 0
    for i in range(cand.shape[0]):
        slot = int(cand[i])
        if slot in excluded:
            continue
        if not agent_eligible(table, slot, req_cols, req_levels, cls, kind_mask):
            continue
        p = int(table.profile[slot])
        budget = int(table.budget[p])
        active = committed_units(table, slot, cls, int(table.cost[p, cls]), True)
        proficiency = 0.0
        if n_req > 0:
            total = 0
            for j in range(n_req):
                total += int(table.levels[slot, req_cols[j]])
            proficiency = total / (5.0 * n_req)
        idle_s = (now - int(table.idle_since[slot])) / 1000.0
        spare = (budget - active) / float(budget)
        sticky = 1.0 if slot == preferred else 0.0
        rr_gap = float(offer_counter - int(table.last_offer[slot]))
        score = weights[0] * proficiency
        score = score + weights[1] * idle_s
        score = score + weights[2] * spare
        score = score + weights[3] * sticky
        score = score + weights[4] * rr_gap
        score = float(score)
        seq = int(table.seq[slot])
        if best < 0 or score > best_score or (score == best_score and seq < best_seq):
            best, best_score, best_seq = slot, score, seq
    return best, best_score
