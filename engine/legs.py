"""A conversation's channel legs: which are live, which is the most demanding, what they cost.

A customer may be on several channels of one conversation at once (a call and an email
with the document). The most demanding live leg leads: the conversation is routed as
its class, and an agent who serves it pays that class's cost in their profile. Every
other class among the legs counts one item towards that class's maximum. Demand order:
real-time first, then synchronous, then the rest (:data:`DEMAND_ORDER`).
"""

from __future__ import annotations

from typing import NamedTuple

from .policy import MediaClass, Policy
from .state import AgentState, ConversationState, Leg

__all__ = [
    "DEMAND_ORDER",
    "Hold",
    "full_hold",
    "leg_of",
    "live_legs",
    "refresh_lead",
]

DEMAND_ORDER: tuple[MediaClass, ...] = (
    "voice", "video", "chat", "task", "messaging", "email", "social",
)  # fmt: skip
_RANK = {cls: i for i, cls in enumerate(DEMAND_ORDER)}


class Hold(NamedTuple):
    """What a conversation takes from one agent: ``units`` of ``cls`` and one item of
    ``cls`` and of each class in ``also``."""

    cls: MediaClass
    units: int
    also: tuple[MediaClass, ...] = ()


def live_legs(conv: ConversationState) -> list[Leg]:
    """The legs that have not ended, in the order they came."""
    return [leg for leg in conv.legs if leg.ended_ts is None]


def leg_of(conv: ConversationState, leg_id: str) -> Leg | None:
    """The leg with this id, or None."""
    for leg in conv.legs:
        if leg.leg_id == leg_id:
            return leg
    return None


def _classes(legs: list[Leg]) -> list[MediaClass]:
    """The distinct classes of ``legs``, most demanding first."""
    return sorted({leg.media_class for leg in legs}, key=_RANK.__getitem__)


def refresh_lead(conv: ConversationState) -> bool:
    """Route the conversation as its most demanding live leg (the newest of that class
    names its channel and contact); True if the class changed."""
    legs = live_legs(conv)
    lead = _classes(legs)[0]
    changed = lead != conv.media_class
    first = next(leg for leg in reversed(legs) if leg.media_class == lead)
    conv.media_class = lead
    conv.channel = first.channel
    conv.contact = first.contact
    return changed


def full_hold(policy: Policy, agent: AgentState, legs: list[Leg]) -> Hold:
    """What serving ``legs`` (live, non-empty) costs ``agent`` while the customer is active."""
    classes = _classes(legs)
    limit = policy.profiles[agent.profile].classes.get(classes[0])
    return Hold(classes[0], limit.cost if limit is not None else 0, tuple(classes[1:]))
