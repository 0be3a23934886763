"""Capacity units of the agents of :func:`.live.live_state`, by the engine's rule
(``engine/capacity.py``), from the rows of :data:`.live_sql.HELD_SQL`: one per agent and
conversation held, with its ``role`` (``offer``, ``owner``, ``wrap_up``), its legs (class,
channel, start, end, ``taken`` on by its holder), the customer's ``messages`` and the
last ``assigned_at``. :mod:`.live`'s docstring says what a hold costs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from omniroute.engine.legs import DEMAND_ORDER
from omniroute.engine.policy import ClassLimit, MediaClass, Policy

__all__ = ["held_legs", "units_used"]

_RANK = {str(cls): i for i, cls in enumerate(DEMAND_ORDER)}
_ClassLimits = Mapping[MediaClass, ClassLimit]
_Leg = Mapping[str, Any]


def units_used(
    policy: Policy, profile: str | None, held: Sequence[Mapping[str, Any]], as_of: dt.datetime
) -> int:
    """The units an agent of ``profile`` holding ``held`` (rows) is charged at ``as_of``."""
    return _fitted(policy, profile, [_hold(policy, profile, h, as_of) for h in held])


def _limit(classes: _ClassLimits, cls: str | None) -> ClassLimit | None:
    """The profile's limit of ``cls`` (None: a class it does not hold)."""
    return None if cls is None else cast("Mapping[str, ClassLimit]", classes).get(cls)


def _lead(classes: Sequence[str]) -> str | None:
    """The most demanding class (engine ``legs.DEMAND_ORDER``)."""
    return min(classes, key=lambda c: _RANK.get(c, len(_RANK)), default=None)


@dataclass(frozen=True)
class _Hold:
    """What one held conversation takes from its agent: ``units`` of ``cls``; ``wake``:
    when the customer woke it from inactive (it grows to ``units`` from ``low`` only if
    the agent has room); ``blocked``: since when a new leg has waited for the agent's
    room (the engine's pending hold that did not fit: those pending after it wait too)."""

    cls: str | None
    units: int
    wake: dt.datetime | None = None
    low: int = 0
    blocked: dt.datetime | None = None


def _cost(
    classes: _ClassLimits, legs: Sequence[_Leg], held: Mapping[str, Any], now: dt.datetime
) -> _Hold:
    """What serving ``legs`` costs at ``now``: their most demanding class's cost, or its
    inactive cost while the customer has been silent long enough (engine ``capacity``)."""
    lead = _lead([leg["cls"] for leg in legs])
    limit = _limit(classes, lead)
    if limit is None:
        return _Hold(lead, 0)
    assigned = held["assigned_at"]
    if limit.inactive_after_s is None or assigned is None:
        return _Hold(lead, int(limit.cost))
    after = dt.timedelta(seconds=limit.inactive_after_s)
    heard = sorted(
        [t for t in held["messages"] if assigned < t <= now]
        + [g["start"] for g in held["legs"] if assigned < g["start"] < now]
    )
    last, wake = assigned, None
    for t in heard:  # the timer fires at last + after, before an event at that time
        if last + after <= t:
            wake = t
        last = t
    if last + after <= now:
        return _Hold(lead, int(limit.inactive_cost))
    return _Hold(lead, int(limit.cost), wake, int(limit.inactive_cost))


def _hold(
    policy: Policy, profile: str | None, held: Mapping[str, Any], as_of: dt.datetime
) -> _Hold:
    """What one held conversation costs the agent (:mod:`.live`'s docstring)."""
    limits = policy.profiles.get(profile or "")
    if limits is None:
        return _Hold(None, 0)
    classes = limits.classes
    legs: list[_Leg] = held["legs"]
    if held["role"] == "offer":  # reserved for every live leg
        lead = _lead([leg["cls"] for leg in legs if leg["end"] is None])
        limit = _limit(classes, lead)
        return _Hold(lead, int(limit.cost) if limit is not None else 0)
    wrap_up = held["role"] == "wrap_up" and held["ended_at"] is not None
    now: dt.datetime = held["ended_at"] if wrap_up else as_of

    def live(leg: _Leg, t: dt.datetime) -> bool:  # in wrap-up: live until the end
        end = leg["end"]
        return bool(leg["start"] <= t and (end is None or end > t or (wrap_up and end == t)))

    mine = [g for g in legs if g["taken"] and g["cls"] in classes]
    waiting = [g for g in legs if not g["taken"] and g["cls"] in classes and live(g, now)]
    if waiting:  # a new leg waits for the holder's room: the hold has not grown since
        since = min(g["start"] for g in waiting)
        before = [g for g in mine if g["start"] < since and live(g, since)]
        frozen = _cost(classes, before, held, since) if before else None
        served = [g for g in mine if live(g, now)]
        if not served:
            return _Hold(frozen.cls, frozen.units, blocked=since) if frozen else _Hold(None, 0)
        full = _cost(classes, served, held, since)
        units = full.units if frozen is None else min(full.units, frozen.units)
        return _Hold(full.cls, units, blocked=since)
    served = [g for g in mine if live(g, now)]
    if not served:  # nothing it can hold is live: the hold stays as the last legs left it
        ended = [g for g in mine if g["end"] is not None]
        last = max((g["end"] for g in ended), default=None)
        served = [g for g in ended if g["end"] == last]
    return _cost(classes, served, held, now)


def _fitted(policy: Policy, profile: str | None, holds: Sequence[_Hold]) -> int:
    """The agent's units: every hold, but the engine's pending ones (oldest first) grow
    only while they fit: one the customer woke grows if it fits beside the others (the
    budget, where a class that may interrupt another does not count it, and never on
    top of a class that would interrupt it); the first that does not, or one whose new
    leg still waits, keeps those after it waiting."""
    limits = policy.profiles.get(profile or "")
    if limits is None:
        return 0
    held = [(h.cls, h.low if h.wake is not None else h.units) for h in holds]
    pending = sorted(
        (k for k, h in enumerate(holds) if h.wake is not None or h.blocked is not None),
        key=lambda k: holds[k].wake or holds[k].blocked or dt.datetime.min,
    )

    def interrupts(cls: str | None, other: str | None) -> bool:
        limit = _limit(limits.classes, other)
        return cls != other and limit is not None and cls in limit.interruptible_by

    for k in pending:
        h = holds[k]
        if h.wake is None:
            break  # its new leg still waits: it did not fit
        others = [(c, u) for j, (c, u) in enumerate(held) if j != k]
        if any(interrupts(c, h.cls) for c, _ in others):
            break  # it would be paused at once by a class it is interruptible by
        if sum(u for c, u in others if not interrupts(h.cls, c)) + h.units > limits.budget:
            break
        held[k] = (h.cls, h.units)
    return sum(u for _, u in held)


def held_legs(held: Mapping[str, Any]) -> int:
    """The live legs of a held conversation: all of an offer's, those its holder took on."""
    if held["role"] == "wrap_up":
        return 0
    offer = held["role"] == "offer"
    return sum(1 for g in held["legs"] if g["end"] is None and (offer or g["taken"]))
