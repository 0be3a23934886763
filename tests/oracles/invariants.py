"""Routing invariants every omniroute engine state must satisfy, recomputed independently.

``check_invariants(engine)`` raises ``AssertionError`` listing every violation it finds;
``find_violations(engine)`` returns them as strings. The checks read only public state
(``engine.policy``, ``engine.state``, ``engine.clock``) and re-implement the simple rules
of DESIGN.md §5-§6 from the policy: they never call the engine's private methods or the
matching kernel, so a kernel or bookkeeping bug cannot hide itself. The one shared piece
is ``matching.requirements`` (a pure function of the conversation and its queue).

What is checked, per tenant, under a check id (the §9 failure each rules out in brackets):

- ``capacity``: an agent's per-class ``units``/``counts`` equal what the conversations
  naming it add up to (a hold: units and one item in its class, one item in each ``also``
  class, for the owner and for the offered agent);
  ``counts[c] <= max``; the units in use (a class is paused, not counted, while a class in
  its ``interruptible_by`` is held) stay ``<= budget`` now and once any interrupting work
  ends and the paused work resumes [agents over capacity];
- ``holding``: ``agent.holding`` lists exactly the conversations naming the agent as owner
  or offer agent, once each; owner and offer agent together only in a warm transfer or
  while a new leg its owner had no room for waits for anyone, so never a bot and a human
  outside those [double assignment; bot and human both holding];
- ``stage``: every open conversation is in exactly one stage and its fields agree with it
  (queued: in the queue, no owner, no offer; offered: offer, no owner, not in the queue;
  assigned: owner; wrap_up: owner, no offer, not in the queue; scheduled: none of them);
- ``offer``: a pending offer is to an available, responsive agent and has a live timeout
  [work offered to offline or stale agents];
- ``drain``: no conversation waits in the queue while an agent of its tenant is eligible
  (status, responsiveness, pending holds, kind, exclusions, owner, pin, skills at the
  ring's level, languages, capacity, room below the max of every other live leg's class)
  [queues that do not drain when capacity frees];
- ``tenancy``: every agent a conversation names is an agent of that conversation's tenant;
- ``bookkeeping``: aliases and customers' open conversations point at open conversations
  [one customer split across agents by channel];
- ``pending``: an agent blocked on a hold that must grow (a new leg, a reawakened
  conversation) is blocked only while the full hold of its live legs does not fit;
- ``legs``: a conversation's legs are its id and its aliases, each in one conversation; it
  has a live leg until it ends (none in wrap-up); it is routed as its most demanding live
  leg; only the owner's legs are joined and the owner's hold covers every class among the
  joined live legs (at least the lead's cost, or its inactive cost while inactive); an
  offer reserves exactly the full hold of every live leg;
- ``inactive``: a conversation costs its class's ``inactive_cost`` only while its owner's
  profile gives that class an ``inactive_after_s`` and the customer has been silent that
  long since the assignment (or is waiting to be reactivated, or wrote only on a new leg
  the owner did not take on);
- ``bot_window``: a bot-first conversation waits for bots only until ``bot_wait_s`` passed;
- ``timers``: no timer is overdue after ``apply`` (one due at or before its tenant's
  clock would have fired; left pending, it fires late, on some later unrelated event);
  ``tenancy`` also checks that a tenant holds only its own timers (clocks are per tenant).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from typing import Any

from omniroute.engine.matching import requirements
from omniroute.engine.policy import MEDIA_CLASSES, CapacityProfile, Policy
from omniroute.engine.state import AgentState, ConversationState, TenantState

__all__ = [
    "CHECKS",
    "active_units",
    "check_invariants",
    "committed_units",
    "eligibility",
    "expected_load",
    "find_violations",
    "fits_new",
    "worst_units",
]

CHECKS = (
    "capacity", "holding", "stage", "offer", "drain", "tenancy", "bookkeeping",
    "pending", "legs", "inactive", "bot_window", "timers",
)  # fmt: skip
"""Check ids, as used in messages and by ``ignore``."""

CLASS_INDEX = {name: i for i, name in enumerate(MEDIA_CLASSES)}
LANGUAGE_PREFIX = "lang:"
LANGUAGE_LEVEL = 5


def check_invariants(engine: Any, ignore: Collection[str] = ()) -> None:
    """Raise ``AssertionError`` naming every invariant the engine's state violates.

    ``ignore`` names checks (see ``CHECKS``) to skip, e.g. while a known bug is open.
    """
    problems = find_violations(engine, ignore)
    if problems:
        raise AssertionError(
            f"{len(problems)} engine invariant violation(s) at clock={engine.clock}:\n  - "
            + "\n  - ".join(problems)
        )


def find_violations(engine: Any, ignore: Collection[str] = ()) -> list[str]:
    """Every invariant violation in the engine's current state, as readable strings
    ``"<check>: [tenant] what is wrong"``; checks named in ``ignore`` are skipped."""
    unknown = set(ignore) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; choose from {CHECKS}")
    policy: Policy = engine.policy
    problems: list[str] = []
    for name, tenant in engine.state.tenants.items():
        if tenant.tenant != name:
            problems.append(f"tenancy: tenant {name!r} is stored as {tenant.tenant!r}")
        now: int = tenant.clock
        problems.extend(
            f"tenancy: [{name}] holds a timer of tenant {t.tenant!r}"
            for t in tenant.timers
            if t.tenant != name and "tenancy" not in ignore
        )
        if "timers" not in ignore:
            problems.extend(
                f"timers: [{t.tenant}] {t.kind} timer of {t.key!r} due at {t.deadline} is "
                f"still pending at the tenant's clock={now}"
                for t in tenant.timers
                if t.deadline <= now
            )
        timers = {(t.tenant, t.key, t.gen): t.deadline for t in tenant.timers if t.kind == "offer"}
        problems.extend(
            f"{check}: {message}"
            for check, message in _tenant_violations(policy, tenant, now, timers)
            if check not in ignore
        )
    return problems


# --- capacity, re-implemented from DESIGN.md §5 --------------------------------------------


def _held(counts: list[int]) -> set[str]:
    return {c for c in MEDIA_CLASSES if counts[CLASS_INDEX[c]] > 0}


def _interrupters(profile: CapacityProfile, cls: str) -> set[str]:
    limit = profile.classes.get(cls)  # type: ignore[call-overload]
    return set(limit.interruptible_by) if limit is not None else set()


def active_units(profile: CapacityProfile, units: list[int], present: set[str]) -> int:
    """Units in use while the classes ``present`` are held: a class is paused (its units
    do not count) while a class in its ``interruptible_by`` is held too."""
    return sum(
        units[CLASS_INDEX[c]] for c in present if not _interrupters(profile, c) & (present - {c})
    )


def worst_units(profile: CapacityProfile, units: list[int], counts: list[int]) -> tuple[int, str]:
    """The most units the agent will have in use, now or once any of the interrupting work
    it holds ends (paused work resumes): ``(units, what ended)``."""
    present = _held(counts)
    interrupting = sorted(
        c for c in present if any(c in _interrupters(profile, d) for d in present - {c})
    )
    worst, when = active_units(profile, units, present), "now"
    for mask in range(1, 1 << len(interrupting)):
        ended = {c for i, c in enumerate(interrupting) if mask >> i & 1}
        total = active_units(profile, units, present - ended)
        if total > worst:
            worst, when = total, f"once {sorted(ended)} ends"
    return worst, when


def committed_units(
    profile: CapacityProfile, units: list[int], counts: list[int], cls: str, extra: int
) -> int | None:
    """Units a new item of ``cls`` costing ``extra`` commits the agent to (core_ext's
    admission rule, DESIGN.md §5): every held unit counts, except the classes the new item
    may interrupt (an agent busy only with email can take a call), so the agent still fits
    once interrupting work ends. ``None`` when a held class would pause the new item."""
    present = _held(counts)
    if _interrupters(profile, cls) & (present - {cls}):
        return None
    return extra + sum(
        units[CLASS_INDEX[d]] for d in present if d == cls or cls not in _interrupters(profile, d)
    )


def fits_new(profile: CapacityProfile, units: list[int], counts: list[int], cls: str) -> bool:
    """Would one more conversation of ``cls`` fit (class max, budget, not paused at once)?"""
    limit = profile.classes.get(cls)  # type: ignore[call-overload]
    if limit is None or counts[CLASS_INDEX[cls]] >= limit.max:
        return False
    total = committed_units(profile, units, counts, cls, limit.cost)
    return total is not None and total <= profile.budget


def expected_load(tenant: TenantState) -> dict[str, tuple[list[int], list[int], list[str]]]:
    """Per agent id: (units, counts, held conversation ids) implied by the conversations."""
    n = len(MEDIA_CLASSES)
    load: dict[str, tuple[list[int], list[int], list[str]]] = {}
    for cid, conv in tenant.conversations.items():
        holds = (
            (conv.owner, conv.owner_class, conv.owner_units, conv.owner_also),
            (conv.offer_agent, conv.offer_class, conv.offer_units, conv.offer_also),
        )
        for aid, cls, amount, also in holds:
            if aid is None or cls is None:
                continue
            units, counts, held = load.setdefault(aid, ([0] * n, [0] * n, []))
            units[CLASS_INDEX[cls]] += amount
            for c in (cls, *also):
                counts[CLASS_INDEX[c]] += 1
            held.append(cid)
    return load


DEMAND = ("voice", "video", "chat", "task", "messaging", "email", "social")


def live_classes(conv: ConversationState, joined_only: bool = False) -> list[str]:
    """The distinct classes of the live legs (joined ones only), most demanding first."""
    classes = {
        leg.media_class
        for leg in conv.legs
        if leg.ended_ts is None and (leg.joined or not joined_only)
    }
    return sorted(classes, key=DEMAND.index)


def full_hold(profile: CapacityProfile, classes: list[str]) -> tuple[str, int, tuple[str, ...]]:
    """(class, units, also) of a conversation with live legs of ``classes`` (non-empty)."""
    limit = profile.classes.get(classes[0])  # type: ignore[call-overload]
    return classes[0], limit.cost if limit is not None else 0, tuple(classes[1:])


def below_max(profile: CapacityProfile, counts: list[int], classes: list[str]) -> bool:
    """Room for one more item of each of ``classes`` (a class not in the profile has none)."""
    return all(
        (limit := profile.classes.get(c)) is not None  # type: ignore[call-overload]
        and counts[CLASS_INDEX[c]] < limit.max
        for c in classes
    )


# --- eligibility, re-implemented from DESIGN.md §6 -----------------------------------------


def _agent_skills(agent: AgentState) -> dict[str, int]:
    skills = dict(agent.skills)
    for language in agent.languages:
        skills[LANGUAGE_PREFIX + language] = LANGUAGE_LEVEL
    return skills


def active_pin(tenant: TenantState, conv: ConversationState, now: int) -> AgentState | None:
    """The agent the conversation is pinned to, while the pin holds and they can take it."""
    if conv.pinned is None or (conv.pin_until is not None and now >= conv.pin_until):
        return None
    agent = tenant.agents.get(conv.pinned)
    if agent is None or agent.status != "available" or not agent.responsive:
        return None
    return agent


def eligibility(
    policy: Policy, tenant: TenantState, agent: AgentState, conv: ConversationState, now: int
) -> str | None:
    """``None`` when the agent may be offered the conversation now, else why not."""
    if agent.status != "available":
        return f"status {agent.status}"
    if not agent.responsive:
        return "not responding"
    if agent.pending:
        return f"waiting for room to grow {agent.pending}"
    if conv.kinds != "any" and conv.kinds != agent.kind:
        return f"conversation is for {conv.kinds} agents only"
    if agent.agent_id in conv.excluded:
        return "excluded (declined or timed out)"
    if agent.agent_id == conv.owner:
        return "already the owner"
    pin = active_pin(tenant, conv, now)
    if pin is not None and pin is not agent:
        return f"pinned to {pin.agent_id!r} until {conv.pin_until}"
    have = _agent_skills(agent)
    for skill, level in requirements(conv, policy.queues[conv.queue]).items():
        if have.get(skill, 0) < level:
            return f"needs {skill}>={level}, has {have.get(skill, 0)}"
    profile = policy.profiles[agent.profile]
    if not fits_new(profile, agent.units, agent.counts, conv.media_class):
        return f"no room for {conv.media_class}"
    others = [c for c in live_classes(conv) if c != conv.media_class]
    if not below_max(profile, agent.counts, others):
        return f"no room below the max of {others}"
    return None


# --- the checks ------------------------------------------------------------------------------


def _describe(conv: ConversationState) -> str:
    return (
        f"{conv.conversation_id!r} (stage={conv.stage}, owner={conv.owner!r}, "
        f"offer={conv.offer_agent!r}, in_queue={conv.in_queue})"
    )


def _tenant_violations(
    policy: Policy, tenant: TenantState, now: int, offer_timers: dict[tuple[str, str, int], int]
) -> Iterator[tuple[str, str]]:
    t = tenant.tenant
    agents = tenant.agents
    convs = tenant.conversations
    load = expected_load(tenant)
    n = len(MEDIA_CLASSES)

    # tenancy: every agent a conversation names is an agent of this tenant.
    for cid, conv in convs.items():
        if conv.conversation_id != cid:
            yield "tenancy", f"[{t}] conversation {cid!r} calls itself {conv.conversation_id!r}"
        for role, aid in (("owner", conv.owner), ("offer agent", conv.offer_agent)):
            if aid is not None and aid not in agents:
                yield "tenancy", f"[{t}] {role} {aid!r} of {_describe(conv)} is not an agent here"

    for aid, agent in agents.items():
        units, counts, held = load.get(aid, ([0] * n, [0] * n, []))
        # capacity: books agree with the conversations, class maxima, budget.
        if list(agent.units) != units or list(agent.counts) != counts:
            yield (
                "capacity",
                (
                    f"[{t}] agent {aid!r} books units={agent.units} counts={agent.counts}, "
                    f"its conversations add up to units={units} counts={counts}"
                ),
            )
        profile = policy.profiles.get(agent.profile)
        if profile is None:
            yield "capacity", f"[{t}] agent {aid!r} has unknown profile {agent.profile!r}"
            continue
        for cls in MEDIA_CLASSES:
            limit = profile.classes.get(cls)
            cmax = limit.max if limit is not None else 0
            if counts[CLASS_INDEX[cls]] > cmax:
                yield (
                    "capacity",
                    (f"[{t}] agent {aid!r} holds {counts[CLASS_INDEX[cls]]} {cls} (max {cmax})"),
                )
        worst, when = worst_units(profile, units, counts)
        if worst > profile.budget:
            yield (
                "capacity",
                f"[{t}] agent {aid!r} is over capacity {when}: {worst} units in use > budget "
                f"{profile.budget} (units={units}, counts={counts})",
            )

        # holding: exactly the conversations that reference the agent, once each.
        if Counter(agent.holding) != Counter(held):
            yield (
                "holding",
                (
                    f"[{t}] agent {aid!r} holding={agent.holding} but the conversations naming "
                    f"it are {held}"
                ),
            )

        # pending: an agent waiting for a hold to grow stays blocked only while the full
        # hold of the conversation's live legs does not fit in place of the one it has
        # (the oldest is settled first).
        if agent.pending:
            first = convs.get(agent.pending[0])
            if first is None or first.owner != aid or first.owner_class is None:
                yield (
                    "pending",
                    f"[{t}] agent {aid!r} waits to grow {agent.pending}, not conversations it owns",
                )
            elif live_classes(first):
                cls, cost, also = full_hold(profile, live_classes(first))
                old = (first.owner_class, first.owner_units, first.owner_also)
                within = cost <= first.owner_units and {cls, *also} <= {old[0], *old[2]}
                units_without, counts_without = list(units), list(counts)
                units_without[CLASS_INDEX[old[0]]] -= old[1]
                for c in (old[0], *old[2]):
                    counts_without[CLASS_INDEX[c]] -= 1
                fits = fits_new_units(
                    profile, units_without, counts_without, cls, cost
                ) and below_max(profile, counts_without, also)
                if within or fits:
                    yield (
                        "pending",
                        f"[{t}] agent {aid!r} gets no work while {first.conversation_id!r} "
                        f"waits to hold {cls} {cost} + {also} (now {old}), although it fits",
                    )

    for cid, conv in convs.items():
        owner = agents.get(conv.owner) if conv.owner else None
        offered = agents.get(conv.offer_agent) if conv.offer_agent else None
        has_owner = conv.owner is not None
        has_offer = conv.offer_agent is not None
        # owner and offer together: a warm transfer, or a leg the owner had no room for
        # waits for anyone (the owner keeps what they serve until another takes it all)
        warm = conv.stage == "assigned" and (conv.transfers > 0 or conv.leg_wait)

        # holding: one owner, one offer agent; both only during a warm transfer.
        if has_owner and conv.owner == conv.offer_agent:
            yield "holding", f"[{t}] {_describe(conv)} is owned by and offered to one agent"
        if has_owner and has_offer and not warm:
            yield "holding", f"[{t}] {_describe(conv)} has an owner and an offer, no transfer"
        if owner is not None and offered is not None and owner.kind != offered.kind and not warm:
            yield "holding", f"[{t}] {_describe(conv)} is held by a bot and a human at once"

        # stage: exactly one stage, and the fields agree with it.
        stage_ok = {
            "queued": not has_owner and not has_offer and conv.in_queue,
            "offered": has_offer and not has_owner and not conv.in_queue,
            "assigned": has_owner,
            "wrap_up": has_owner and not has_offer and not conv.in_queue,
            "scheduled": not has_owner and not has_offer and not conv.in_queue,
        }.get(conv.stage)
        if stage_ok is None:
            yield "stage", f"[{t}] {_describe(conv)} has unknown stage {conv.stage!r}"
        elif not stage_ok:
            yield "stage", f"[{t}] {_describe(conv)}: fields disagree with stage {conv.stage!r}"
        if conv.in_queue and has_offer:
            yield "stage", f"[{t}] {_describe(conv)} waits in the queue with an offer pending"
        if has_owner != (conv.owner_class is not None):
            yield "stage", f"[{t}] {_describe(conv)} owner_class={conv.owner_class!r}"
        if has_offer != (conv.offer_class is not None):
            yield "stage", f"[{t}] {_describe(conv)} offer_class={conv.offer_class!r}"
        if not has_owner and (conv.owner_units or conv.owner_also):
            yield "stage", f"[{t}] {_describe(conv)} books {conv.owner_units} units, no owner"
        if not has_offer and (conv.offer_units or conv.offer_also):
            yield "stage", f"[{t}] {_describe(conv)} books {conv.offer_units} units, no offer"
        yield from (("legs", f"[{t}] {p}") for p in _leg_violations(policy, agents, conv))
        queue = policy.queues.get(conv.queue)
        if queue is None:
            yield "stage", f"[{t}] {_describe(conv)} is in unknown queue {conv.queue!r}"
            continue

        # offer: to an available, responsive agent, with a live timeout.
        if offered is not None:
            if offered.status != "available" or not offered.responsive:
                yield (
                    "offer",
                    (
                        f"[{t}] {_describe(conv)} is offered to {offered.agent_id!r} who is "
                        f"{offered.status}{'' if offered.responsive else ', not responding'}"
                    ),
                )
            deadline = offer_timers.get((t, cid, conv.offer_seq))
            if deadline is None or deadline <= now:
                yield (
                    "offer",
                    (
                        f"[{t}] the offer of {_describe(conv)} has no live timeout "
                        f"(deadline={deadline}, now={now})"
                    ),
                )

        # inactive: the inactive discount only under a profile with inactivity, and only
        # after the customer has been silent that long (or while waiting to reactivate).
        if conv.inactive and conv.stage == "assigned" and owner is not None:
            owner_profile = policy.profiles.get(owner.profile)
            limit = owner_profile.classes.get(conv.owner_class) if owner_profile else None  # type: ignore[arg-type]
            silent = now - max(conv.last_in_ts, conv.assigned_ts)
            if limit is None or limit.inactive_after_s is None:
                yield (
                    "inactive",
                    f"[{t}] {_describe(conv)} is inactive although {owner.agent_id!r}'s profile "
                    f"{owner.profile!r} has no inactivity for {conv.owner_class}",
                )
            else:
                # a new leg the owner did not take on (it waited for anyone, maybe ended
                # since) leaves their part of the conversation as quiet as it was
                waiting = any(
                    not leg.joined and leg.started_ts >= conv.assigned_ts for leg in conv.legs
                )
                quiet = round(limit.inactive_after_s * 1000)
                if cid not in owner.pending and not waiting and silent < quiet:
                    yield (
                        "inactive",
                        f"[{t}] {_describe(conv)} went inactive after {silent} ms of silence "
                        f"(inactive_after_s={limit.inactive_after_s} for {owner.agent_id!r})",
                    )
                if conv.owner_units != limit.inactive_cost:
                    yield (
                        "inactive",
                        f"[{t}] inactive {_describe(conv)} costs {conv.owner_units}, not "
                        f"inactive_cost={limit.inactive_cost}",
                    )

        # bot_window: a bot-first conversation is for bots only until bot_wait_s passed.
        if conv.kinds == "bot" and conv.in_queue:
            until = conv.first_contact_ts + round(queue.bot_wait_s * 1000)
            if now >= until:
                yield (
                    "bot_window",
                    (
                        f"[{t}] {_describe(conv)} is still for bots only at {now}, its bot "
                        f"window ended at {until}"
                    ),
                )

        # drain: nobody eligible while the conversation waits in the queue.
        if conv.in_queue and not has_offer:
            for aid, agent in agents.items():
                if eligibility(policy, tenant, agent, conv, now) is None:
                    yield (
                        "drain",
                        (
                            f"[{t}] {_describe(conv)} waits in queue {conv.queue!r} "
                            f"({conv.media_class}, kinds={conv.kinds}, needs "
                            f"{requirements(conv, queue)}, ring {conv.ring}) while agent {aid!r} "
                            f"({agent.kind}, skills={_agent_skills(agent)}, units={agent.units}) "
                            "is eligible"
                        ),
                    )

    # bookkeeping: aliases and customers' open conversations point at open conversations.
    for alias, cid in tenant.aliases.items():
        conv = convs.get(cid)
        if conv is None or alias not in conv.aliases:
            yield "bookkeeping", f"[{t}] alias {alias!r} -> {cid!r} is not an open conversation"
    for cid, conv in convs.items():
        for alias in conv.aliases:
            if tenant.aliases.get(alias) != cid:
                yield "bookkeeping", f"[{t}] {_describe(conv)} lists unmapped alias {alias!r}"
        customer = tenant.customers.get(conv.customer_id)
        if customer is None:
            yield "bookkeeping", f"[{t}] {_describe(conv)} has no customer {conv.customer_id!r}"
        elif conv.stage != "wrap_up" and customer.open_conversation != cid:
            yield (
                "bookkeeping",
                (
                    f"[{t}] {_describe(conv)} is open but its customer {conv.customer_id!r} has "
                    f"open_conversation={customer.open_conversation!r} (continuity lost)"
                ),
            )
    for cust_id, customer in tenant.customers.items():
        cid = customer.open_conversation
        if cid is None:
            continue
        conv = convs.get(cid)
        if conv is None or conv.customer_id != cust_id or conv.stage == "wrap_up":
            yield (
                "bookkeeping",
                (
                    f"[{t}] customer {cust_id!r} has open_conversation={cid!r}, which is not an "
                    "open conversation of theirs"
                ),
            )


def fits_new_units(
    profile: CapacityProfile, units: list[int], counts: list[int], cls: str, cost: int
) -> bool:
    """Would one more item of ``cls`` costing ``cost`` fit (class max, budget, not paused)?"""
    limit = profile.classes.get(cls)  # type: ignore[call-overload]
    if limit is None or counts[CLASS_INDEX[cls]] >= limit.max:
        return False
    total = committed_units(profile, units, counts, cls, cost)
    return total is not None and total <= profile.budget


def _leg_violations(
    policy: Policy, agents: dict[str, AgentState], conv: ConversationState
) -> Iterator[str]:
    what = _describe(conv)
    ids = [leg.leg_id for leg in conv.legs]
    if sorted(ids) != sorted([conv.conversation_id, *conv.aliases]) or len(set(ids)) != len(ids):
        yield f"{what} has legs {ids}, aliases {conv.aliases}"
    live = live_classes(conv)
    if conv.stage == "wrap_up":
        if live:
            yield f"{what} is in wrap-up with live legs of {live}"
        return
    if not live:
        yield f"{what} is open without a live leg"
        return
    if conv.media_class != live[0]:
        yield f"{what} is routed as {conv.media_class}, its most demanding live leg is {live[0]}"
    joined = live_classes(conv, joined_only=True)
    owner = agents.get(conv.owner) if conv.owner else None
    if owner is None and joined:
        yield f"{what} has joined legs of {joined} and no owner"
    if owner is not None and conv.owner_class is not None and joined:
        profile = policy.profiles[owner.profile]
        cost = full_hold(profile, joined)[1]
        held = {conv.owner_class, *conv.owner_also}
        if not set(joined) <= held:
            yield f"{what}: {owner.agent_id!r} serves legs of {joined} holding only {sorted(held)}"
        limit = profile.classes.get(conv.owner_class)  # type: ignore[call-overload]
        least = limit.inactive_cost if conv.inactive and limit is not None else cost
        # a hold that must grow (the chat a call leaves costs more than the call, in a
        # profile priced that way) keeps its units until the rest fits: its agent waits
        # with it in ``pending`` and gets no new work meanwhile
        growing = conv.conversation_id in owner.pending
        if conv.owner_units < least and not growing:
            yield f"{what}: {owner.agent_id!r} holds {conv.owner_units} for legs costing {least}"
    offered = agents.get(conv.offer_agent) if conv.offer_agent else None
    if offered is not None:
        profile = policy.profiles[offered.profile]
        want = full_hold(profile, live)
        have = (conv.offer_class, conv.offer_units, conv.offer_also)
        if have != want:
            yield f"{what}: the offer to {offered.agent_id!r} reserves {have}, its legs {want}"
