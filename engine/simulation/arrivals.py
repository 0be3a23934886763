"""What arrives: each traffic stream's contacts, and what each will do, drawn in advance.

Everything about a contact (time, customer, handling time, patience, callback, transfer,
switch, follow-up) comes from the random stream of its own traffic stream, before and
independently of routing, so two policies see exactly the same arrivals.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ..events import Channel, Contact
from ..policy import CHANNEL_CLASS
from .scenario import HOUR_MS, Scenario, Switch, Traffic

__all__ = ["ContactPlan", "address", "arrivals", "follow_up_task"]


@dataclass(slots=True)
class ContactPlan:
    """One contact, drawn from its stream's random stream before any routing."""

    cid: str
    ts: int
    stream: Traffic
    contact: Contact
    customer_id: str | None
    skills: dict[str, int]
    language: str | None
    handle_ms: int
    patience_ms: int | None
    callback: Literal["", "now", "later"] = ""
    by_customer: bool = False
    transfer: Literal["", "cold", "warm"] = ""
    bot_resolves: bool = False
    bot_ms: int = 0
    switch: Switch | None = None
    """The second leg this customer opens (of the stream's ``switch``), if any."""
    switch_ms: int | None = None
    follow_up_ms: int | None = None


def address(channel: Channel, customer: int | None, cid: str) -> str:
    """A customer's address on a channel (``anon:`` + the contact for an unknown one)."""
    if customer is None:
        return f"anon:{cid}"
    if channel in ("voice", "sms", "whatsapp"):
        return f"+4477009{customer:05d}"
    if channel == "email":
        return f"customer{customer:05d}@example.com"
    if channel in ("messenger", "telegram", "social"):
        return f"@customer{customer:05d}"
    if channel == "task":
        return f"case:{cid}"
    return f"web:crm-{customer:05d}"


def arrivals(scenario: Scenario, stream: Traffic, seed: int) -> Iterator[ContactPlan]:
    """The stream's contacts in time order (a Poisson process, piecewise-constant rate)."""
    rng = random.Random(f"omniroute-sim:{seed}:arrivals:{stream.name}")
    cls = CHANNEL_CLASS[stream.channel]
    handle = stream.handle or scenario.handling_for(cls)
    patience = stream.patience or scenario.patience.get(cls)
    languages = list(stream.languages)
    weights = list(stream.languages.values())
    start, end = scenario.start_ms, scenario.end_ms
    counter = itertools.count(1)
    switches = stream.switches

    def plan(ts: int) -> ContactPlan:
        n = next(counter)
        cid = f"{stream.name}-{n:07d}"
        known = scenario.customers > 0 and rng.random() < stream.known
        customer = rng.randrange(scenario.customers) if known else None
        skills = dict(stream.skills)
        if stream.random_skills is not None:
            skills.update(stream.random_skills.draw(rng))
        p = ContactPlan(
            cid=cid, ts=ts, stream=stream,
            contact=Contact(stream.channel, address(stream.channel, customer, cid)),
            customer_id=None if customer is None else f"crm-{customer:05d}",
            skills=skills,
            language=rng.choices(languages, weights)[0] if languages else None,
            handle_ms=handle.draw_ms(rng),
            patience_ms=patience.draw_ms(rng) if patience is not None else None,
        )  # fmt: skip
        if stream.channel == "voice" and rng.random() < stream.callback:
            p.callback = "now" if rng.random() < 0.5 else "later"
        p.by_customer = rng.random() < stream.by_customer
        roll = rng.random()
        if roll < stream.transfer_cold:
            p.transfer = "cold"
        elif roll < stream.transfer_cold + stream.transfer_warm:
            p.transfer = "warm"
        if stream.bot is not None:
            p.bot_resolves = rng.random() < stream.bot.containment
            p.bot_ms = stream.bot.handle.draw_ms(rng)
        if switches and customer is not None:
            p.switch = _pick(switches, rng.random())
            if p.switch is not None:
                p.switch_ms = p.switch.after.draw_ms(rng)
        if stream.follow_up is not None and rng.random() < stream.follow_up.p:
            p.follow_up_ms = stream.follow_up.after.draw_ms(rng)
        return p

    for i in range(stream.backlog):
        yield plan(start + i * 60_000 // max(1, stream.backlog))
    if stream.per_hour <= 0:
        return
    t = float(start)
    while t < end:
        hour_end = min(end, (int(t) // HOUR_MS + 1) * HOUR_MS)
        rate = stream.per_hour * scenario.rate_weight(int(t)) / HOUR_MS
        if rate <= 0:
            t = float(hour_end)
            continue
        t += rng.expovariate(rate)
        if t >= hour_end:  # memoryless: restart the draw at the boundary
            t = float(hour_end)
            continue
        yield plan(int(t))


def _pick(switches: tuple[Switch, ...], roll: float) -> Switch | None:
    """The switch a roll in [0, 1) falls on (each takes a share ``p``), or None."""
    for switch in switches:
        if roll < switch.p:
            return switch
        roll -= switch.p
    return None


def follow_up_task(plan: ContactPlan, queue: str, ts: int, handle_ms: int) -> ContactPlan:
    """The outbound task that a follow-up of ``plan`` creates at ``ts`` on ``queue``."""
    cid = f"{plan.cid}-task"
    return ContactPlan(
        cid=cid, ts=ts,
        stream=Traffic(name="follow-up", channel="task", queue=queue, known=1.0),
        contact=Contact("task", f"case:{cid}"), customer_id=plan.customer_id,
        skills=plan.skills, language=plan.language, handle_ms=handle_ms, patience_ms=None,
    )  # fmt: skip
