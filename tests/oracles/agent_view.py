"""What each agent serves, folded only from the inputs sent and the decisions returned.

:class:`AgentView` never reads the engine's state: it learns which channel legs of a
conversation are live from the inputs (``ConversationArrived``, a leg ending or
abandoned, a callback) and ``ConversationRejoined``, and who serves which leg from the
decisions (``ConversationOffered(legs)``, ``ConversationAssigned(legs)``, ``LegJoined``)
and the inputs that take work off an agent (a cold transfer, a handoff, going offline,
leaving). :meth:`AgentView.violations` then states, per agent, what the agent holds
from their own point of view (DESIGN.md §5):

- a conversation costs its agent the cost, in the agent's profile, of the most demanding
  live leg the agent covers (owner: the legs they serve; offered agent: the legs offered),
  and counts one item towards each distinct class among those legs;
- an asynchronous lead may have dropped to its ``inactive_cost`` once the customer has been
  silent ``inactive_after_s`` since the assignment or their last message (counted so from
  then on: a reawakened conversation keeps it until it fits again);
- the units in use follow the kernel's interrupt rule (a class is paused while a class in
  its ``interruptible_by`` is held) and never exceed the budget; no class max is exceeded
  (a class the profile lacks has max 0).

Leg and conversation ids are the wire's: a leg's id is the ``conversation_id`` of the
arrival that opened it, and inputs may name a conversation by any of its legs. A
``CallbackRequested`` makes every live leg a task; a customer back before a scheduled
callback's time voids it (its legs end: the rejoin comes before any ``ConversationQueued``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from omniroute.engine.events import (
    AgentRegistered,
    AgentRemoved,
    AgentStatusChanged,
    AgentUpdated,
    CallbackRequested,
    ConversationArrived,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    ConversationQueued,
    ConversationRejoined,
    CustomerAbandoned,
    Decision,
    Event,
    EventRejected,
    HandoffRequested,
    LegJoined,
    MessageReceived,
    OfferDeclined,
    OfferExpired,
    TransferRequested,
    WrapUpCompleted,
    WrapUpExpired,
)
from omniroute.engine.policy import CHANNEL_CLASS, MEDIA_CLASSES, CapacityProfile, Policy
from tests.oracles.invariants import active_units

__all__ = ["DEMAND", "REAL_TIME", "AgentView", "ConvView", "lead_class"]

DEMAND = ("voice", "video", "chat", "task", "messaging", "email", "social")
"""Media classes, most demanding first: a conversation costs its first live one."""
REAL_TIME = ("voice", "video")
CLASS_INDEX = {name: i for i, name in enumerate(MEDIA_CLASSES)}


def lead_class(classes: set[str]) -> str:
    """The most demanding of these media classes."""
    return min(classes, key=DEMAND.index)


@dataclass
class ConvView:
    """One open conversation as the inputs and decisions describe it."""

    legs: dict[str, str]
    """Live legs: leg id -> media class."""
    owner: str | None = None
    served: set[str] = field(default_factory=set)
    """The live legs the owner serves."""
    offer: str | None = None
    offered: set[str] = field(default_factory=set)
    ended: bool = False
    """Ended (all legs), the owner possibly in wrap-up: it costs nothing any more."""
    quiet_since: int = 0
    quiet: bool = False
    """The customer was silent long enough for the owner's lead to go inactive."""
    scheduled: bool = False
    """A callback waits for its time: a new contact before it voids it (its legs end)."""

    def drop_leg(self, leg: str) -> None:
        self.legs.pop(leg, None)
        self.served.discard(leg)
        self.offered.discard(leg)

    def let_go(self) -> None:
        """The owner stops serving it."""
        self.owner = None
        self.served.clear()


@dataclass
class TenantView:
    profiles: dict[str, str] = field(default_factory=dict)
    """Agent id -> capacity profile name."""
    convs: dict[str, ConvView] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """Every leg id of an open conversation (live or ended) -> the conversation id."""
    clock: int = 0
    """The tenant's time: the latest ``ts`` of an input it accepted."""


class AgentView:
    """The agents' side of the contact centre, folded from what went in and came out."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.tenants: dict[str, TenantView] = {}

    def tenant(self, name: str) -> TenantView:
        return self.tenants.setdefault(name, TenantView())

    def resolve(self, tenant: str, name: str) -> str | None:
        return self.tenant(tenant).names.get(name)

    def conv(self, tenant: str, name: str) -> ConvView | None:
        cid = self.resolve(tenant, name)
        return self.tenant(tenant).convs.get(cid) if cid is not None else None

    def forget(self, tenant: str, cid: str) -> None:
        """The conversation left the engine (ended and wrapped up, or abandoned)."""
        view = self.tenant(tenant)
        view.convs.pop(cid, None)
        for name in [n for n, c in view.names.items() if c == cid]:
            del view.names[name]

    # --- the fold ---------------------------------------------------------------------

    def fold(self, event: Event, out: list[Decision]) -> None:
        """One input and the decisions it returned. Timers fire before the input and
        their decisions count even when the input is rejected; the input's own effect
        counts only when it was not. Effects that no decision announces (a leg ending, an
        agent leaving) are applied after the decisions: no decision after them can undo
        them, and decisions before them may still name what they remove."""
        view = self.tenant(event.tenant)
        rejected = any(isinstance(d, EventRejected) for d in out)
        self._note_silence(view, event.ts)
        if not rejected:
            self._before(view, event, out)
        for decision in out:
            self._decision(view, decision)
        if not rejected:
            self._after(view, event)
            view.clock = max(view.clock, event.ts)

    def _note_silence(self, view: TenantView, now: int) -> None:
        for conv in view.convs.values():
            if conv.owner is not None and not conv.quiet:
                after = self._inactive_after(view, conv, conv.owner, conv.served)
                conv.quiet = after is not None and now - conv.quiet_since >= after

    def _before(self, view: TenantView, event: Event, out: list[Decision]) -> None:
        match event:
            case AgentRegistered():
                bot = event.kind == "bot"
                default = self.policy.bot_profile if bot else self.policy.human_profile
                view.profiles[event.agent_id] = event.capacity_profile or default
            case AgentUpdated() if event.capacity_profile is not None:
                view.profiles[event.agent_id] = event.capacity_profile
            case ConversationArrived():
                cid = event.conversation_id
                joined = any(
                    isinstance(d, ConversationRejoined) and d.new_conversation_id == cid
                    for d in out
                )
                if not joined:
                    assert cid not in view.names, f"{cid!r} arrived twice"
                    view.convs[cid] = ConvView(
                        legs={cid: CHANNEL_CLASS[event.channel]}, quiet_since=event.ts
                    )
                    view.names[cid] = cid

    def _decision(self, view: TenantView, d: Decision) -> None:
        match d:
            case ConversationRejoined():
                conv = view.convs.get(d.conversation_id)
                assert conv is not None and not conv.ended, f"{d!r}: not an open conversation"
                assert d.new_conversation_id not in view.names, f"{d!r}: leg id already used"
                assert d.agent_id == conv.owner, (
                    f"{d!r} names {d.agent_id!r}; the conversation's owner is {conv.owner!r}"
                )
                if conv.scheduled:  # back before their callback: the callback is void
                    conv.legs.clear()
                    conv.scheduled = False
                conv.legs[d.new_conversation_id] = CHANNEL_CLASS[d.channel]
                view.names[d.new_conversation_id] = d.conversation_id
            case LegJoined():
                conv = view.convs.get(d.conversation_id)
                assert conv is not None and d.leg in conv.legs, f"{d!r}: not a live leg"
                assert d.agent_id == conv.owner, f"{d!r}: the owner is {conv.owner!r}"
                assert conv.legs[d.leg] == CHANNEL_CLASS[d.channel], f"{d!r}: wrong channel"
                assert d.leg not in conv.served, f"{d!r}: {d.agent_id!r} already serves it"
                conv.served.add(d.leg)
            case ConversationOffered():
                conv = self._live(view, d.conversation_id, d)
                self._check_legs(conv, d.legs, d)
                conv.offer, conv.offered = d.agent_id, set(d.legs)
            case ConversationAssigned():
                conv = self._live(view, d.conversation_id, d)
                self._check_legs(conv, d.legs, d)
                conv.owner, conv.served = d.agent_id, set(d.legs)
                conv.offer, conv.offered = None, set()
                conv.quiet, conv.quiet_since = False, d.ts
            case OfferExpired():
                conv = self._live(view, d.conversation_id, d)
                assert conv.offer == d.agent_id, f"{d!r}: the offer is to {conv.offer!r}"
                conv.offer, conv.offered = None, set()
            case ConversationQueued():  # waiting in the queue, not for a callback's time
                self._live(view, d.conversation_id, d).scheduled = False
            case WrapUpExpired():
                conv = view.convs.get(d.conversation_id)
                assert conv is not None and conv.ended and conv.owner == d.agent_id, d
                self.forget(d.tenant, d.conversation_id)

    @staticmethod
    def _live(view: TenantView, cid: str, d: Decision) -> ConvView:
        conv = view.convs.get(cid)
        assert conv is not None and not conv.ended, f"{d!r}: not an open conversation"
        return conv

    @staticmethod
    def _check_legs(conv: ConvView, legs: list[str], d: Decision) -> None:
        assert legs, f"{d!r} names no legs"
        assert len(set(legs)) == len(legs), f"{d!r} names a leg twice"
        dead = [leg for leg in legs if leg not in conv.legs]
        assert not dead, f"{d!r} names legs {dead} that are not live (live: {list(conv.legs)})"

    def _after(self, view: TenantView, event: Event) -> None:
        t = event.tenant
        match event:
            case ConversationEnded():
                cid, conv = self._named(t, event.conversation_id)
                if event.leg is not None and set(conv.legs) - {event.leg}:
                    conv.drop_leg(event.leg)
                else:
                    conv.legs.clear()
                    conv.served.clear()
                    conv.offer, conv.offered = None, set()
                    conv.ended = True
            case CustomerAbandoned():
                cid, conv = self._named(t, event.conversation_id)
                if event.leg is not None and set(conv.legs) - {event.leg}:
                    conv.drop_leg(event.leg)
                else:
                    self.forget(t, cid)
            case WrapUpCompleted():
                self.forget(t, self._named(t, event.conversation_id)[0])
            case CallbackRequested():
                conv = self._named(t, event.conversation_id)[1]
                conv.legs = dict.fromkeys(conv.legs, "task")
                conv.scheduled = event.not_before is not None and event.not_before > max(
                    view.clock, event.ts
                )
            case MessageReceived() if event.direction == "in":
                self._named(t, event.conversation_id)[1].quiet_since = event.ts
            case OfferDeclined():
                conv = self._named(t, event.conversation_id)[1]
                if conv.offer == event.agent_id:
                    conv.offer, conv.offered = None, set()
            case TransferRequested() if event.mode == "cold":
                conv = self._named(t, event.conversation_id)[1]
                if conv.owner == event.agent_id:
                    conv.let_go()
            case HandoffRequested():
                conv = self._named(t, event.conversation_id)[1]
                if conv.owner == event.agent_id:
                    conv.let_go()
            case AgentStatusChanged() if event.status == "offline":
                self._hand_back(t, event.agent_id)
            case AgentRemoved():
                self._hand_back(t, event.agent_id)
                del view.profiles[event.agent_id]

    def _named(self, tenant: str, name: str) -> tuple[str, ConvView]:
        cid = self.resolve(tenant, name)
        assert cid is not None, f"the engine accepted an input about {name!r}, never opened"
        return cid, self.tenant(tenant).convs[cid]

    def _hand_back(self, tenant: str, agent_id: str) -> None:
        """An agent gone offline or removed keeps nothing: wrap-ups close, work goes back."""
        for cid, conv in list(self.tenant(tenant).convs.items()):
            if conv.owner != agent_id:
                continue
            if conv.ended:
                self.forget(tenant, cid)
            else:
                conv.let_go()

    # --- what it implies -----------------------------------------------------------------

    def _profile(self, view: TenantView, agent_id: str) -> CapacityProfile:
        return self.policy.profiles[view.profiles[agent_id]]

    def _inactive_after(
        self, view: TenantView, conv: ConvView, agent_id: str, legs: set[str]
    ) -> int | None:
        live = {conv.legs[leg] for leg in legs if leg in conv.legs}
        if not live:
            return None
        limit = self._profile(view, agent_id).classes.get(lead_class(live))  # type: ignore[call-overload]
        if limit is None or limit.inactive_after_s is None:
            return None
        return round(limit.inactive_after_s * 1000)

    def holdings(
        self, tenant: str, agent_id: str, now: int
    ) -> list[tuple[str, str, set[str], int]]:
        """What the agent covers: (conversation, "owner"/"offer", live classes, lowest cost)."""
        view = self.tenant(tenant)
        profile = self._profile(view, agent_id)
        held = []
        for cid, conv in view.convs.items():
            roles = (("owner", conv.owner, conv.served), ("offer", conv.offer, conv.offered))
            for role, who, legs in roles:
                classes = {conv.legs[leg] for leg in legs if leg in conv.legs}
                if who != agent_id or not classes:
                    continue
                lead = lead_class(classes)
                limit = profile.classes.get(lead)  # type: ignore[call-overload]
                cost = limit.cost if limit is not None else 0
                after = self._inactive_after(view, conv, agent_id, legs)
                silent = after is not None and (conv.quiet or now - conv.quiet_since >= after)
                if role == "owner" and silent and limit is not None:
                    cost = limit.inactive_cost
                held.append((cid, role, classes, cost))
        return held

    def violations(self, tenant: str, now: int) -> list[str]:
        """Per agent: class maxima and the budget, from the agent's point of view."""
        problems: list[str] = []
        view = self.tenant(tenant)
        for agent_id, profile_name in view.profiles.items():
            profile = self.policy.profiles[profile_name]
            held = self.holdings(tenant, agent_id, now)
            units = [0] * len(MEDIA_CLASSES)
            counts = [0] * len(MEDIA_CLASSES)
            for _, _, classes, cost in held:
                units[CLASS_INDEX[lead_class(classes)]] += cost
                for cls in classes:
                    counts[CLASS_INDEX[cls]] += 1
            what = ", ".join(f"{cid} ({role}: {sorted(c)}, {u})" for cid, role, c, u in held)
            for cls in MEDIA_CLASSES:
                limit = profile.classes.get(cls)
                cmax = limit.max if limit is not None else 0
                if counts[CLASS_INDEX[cls]] > cmax:
                    problems.append(
                        f"[{tenant}] {agent_id!r} ({profile_name}) covers "
                        f"{counts[CLASS_INDEX[cls]]} conversations with a live {cls} leg "
                        f"(max {cmax}): {what}"
                    )
            present = {c for c in MEDIA_CLASSES if counts[CLASS_INDEX[c]]}
            total = active_units(profile, units, present)
            if total > profile.budget:
                problems.append(
                    f"[{tenant}] {agent_id!r} ({profile_name}) holds at least {total} units "
                    f"> budget {profile.budget}: {what}"
                )
        return problems

    def real_time_floor(self, tenant: str, agent_id: str) -> int:
        """The units the agent must hold for the live voice/video legs they serve."""
        view = self.tenant(tenant)
        profile = self._profile(view, agent_id)
        floor = 0
        for conv in view.convs.values():
            if conv.owner != agent_id:
                continue
            costs = [
                profile.classes[conv.legs[leg]].cost  # type: ignore[index]
                for leg in conv.served
                if conv.legs.get(leg) in REAL_TIME and conv.legs[leg] in profile.classes
            ]
            floor += max(costs, default=0)
        return floor
