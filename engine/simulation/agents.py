"""What agents do at their desktops: answer or decline offers (or let them time out),
handle the conversations they are given (each live leg: the call, then the email the
customer sent during it), transfer some, end them and wrap up.

Written work (``policy.REPLY_CLASSES``) goes on the agent's desk (:mod:`.desks`): one
piece at a time, in the order the conversations were assigned, paused by calls and video.

- An email or a social post: answering it is the work. The agent's reply
  (``MessageReceived`` out, naming the leg) goes out when its handling time of work is
  done; then the leg ends (the conversation, if it was its last live leg).
- A messaging conversation (WhatsApp, SMS...): the first reply takes one ``reply_s`` of
  work from when the agent gets to it; the conversation then goes on for its handling
  time, the customer writing meanwhile, and each customer message is answered by
  another reply (``reply_s`` of work, queued on the desk like the rest). It ends when
  that time is over and every message is answered.

Calls, video and web chats are worked from the moment they are taken; a task from when
the conversation's other legs are done.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Literal

from ..events import (
    Channel,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    Input,
    LegJoined,
    MessageReceived,
    OfferAccepted,
    OfferDeclined,
    TransferRequested,
    WrapUpCompleted,
)
from ..policy import CHANNEL_CLASS, REPLY_CLASSES, MediaClass
from .arrivals import ContactPlan
from .bots import Bots
from .customers import Customers
from .desks import Desks, Piece
from .floor import Action, Floor

__all__ = ["Agents"]

_LIVE = frozenset({"voice", "video", "chat"})
"""Media classes worked while the customer is there; written legs are answered after."""
_REALTIME = frozenset({"voice", "video"})
"""Media classes that pause the agent's written work."""


class Agents:
    """The agents at their desktops (and the bots answering offers) on the floor."""

    def __init__(self, floor: Floor, customers: Customers, bots: Bots) -> None:
        self.floor = floor
        self.customers = customers
        self.bots = bots
        self._offers: dict[str, tuple[str, int]] = {}
        """The offer pending for each conversation: (agent, deadline)."""
        self._served: dict[str, None] = {}
        """Conversations a human has already handled once (later work is a new stretch)."""
        self._work: dict[str, dict[str, int]] = {}
        """When the current holder's work on each live (or task) leg of a conversation ends."""
        self._gen = itertools.count(1)
        self.desks = Desks(floor)

    def offered(self, d: ConversationOffered) -> None:
        """Plan the answer to an offer: a bot accepts at once; a human ignores, declines
        or accepts it at the group's rates, after ``answer_s``."""
        f = self.floor
        cid, agent_id = d.conversation_id, d.agent_id
        key = (agent_id, d.deadline)
        self._offers[cid] = key
        group = f.groups[agent_id]
        if group.kind == "bot":
            decline, delay = False, 200
        else:
            roll = f.rng.random()
            if roll < group.ignore:
                return
            decline = roll < group.ignore + group.decline
            delay = round(f.rng.uniform(*group.answer_s) * 1000)

        def act(ts: int) -> None:
            if self._offers.get(cid) != key:
                f.run.stale_actions += 1
                return
            del self._offers[cid]
            if decline:
                event: Input = OfferDeclined(
                    tenant=f.tenant, ts=ts, conversation_id=cid, agent_id=agent_id,
                    reason="busy with a follow-up",
                )  # fmt: skip
            else:
                event = OfferAccepted(tenant=f.tenant, ts=ts, conversation_id=cid,
                                      agent_id=agent_id)  # fmt: skip
            f.emit(event)

        f.at(d.ts + delay, act)

    def expired(self, cid: str) -> None:
        """The offer of ``cid`` timed out: nobody answers it any more."""
        self._offers.pop(cid, None)

    def assigned(self, d: ConversationAssigned) -> None:
        """Plan the work on a conversation given to an agent (or a bot): the end of each
        live leg, a transfer, the customer's messages meanwhile."""
        f = self.floor
        cid, agent_id = d.conversation_id, d.agent_id
        self._offers.pop(cid, None)
        gen = next(self._gen)
        self.unheld(cid, d.ts)  # a warm transfer's first agent, a conversation handed back
        f.holder[cid] = (agent_id, gen)
        self.customers.served(cid)
        plan = f.plans.get(cid)
        conv = f.conv(cid)
        if plan is None or conv is None:
            return
        if f.groups[agent_id].kind == "bot":
            self.bots.take(plan, agent_id, gen, d.ts)
            return
        first = cid not in self._served
        self._served[cid] = None
        live = f.legs.setdefault(cid, {cid: plan.stream.channel})
        self._work[cid] = {}
        legs = [leg for leg in d.legs if leg in live] or list(live)
        for leg in sorted(legs, key=lambda leg: CHANNEL_CLASS[live[leg]] not in _LIVE):
            if leg == cid and first:
                handle = plan.handle_ms
            else:  # a transfer, a hand-back, a callback, a later leg: a new stretch of work
                cls = "task" if conv.callback else CHANNEL_CLASS[live[leg]]
                handle = f.scenario.handling_for(cls).draw_ms(f.rng)
            self._take_on(plan, leg, live[leg], agent_id, gen, d.ts, handle)
            if leg != cid:
                continue
            if first and not conv.callback:
                self.customers.answered(plan, d.ts, handle)
                if plan.transfer:
                    f.at(d.ts + handle * 2 // 5, self._transfer(plan, agent_id, gen))

    def unheld(self, cid: str, ts: int) -> None:
        """The conversation's current holder no longer works on it."""
        held = self.floor.holder.pop(cid, None)
        if held is not None:
            self.desks.drop(held[0], cid, ts)

    def leg_joined(self, d: LegJoined) -> None:
        """The agent serving the conversation took on the customer's new leg: plan its
        work (a bot's outcome covers every leg)."""
        f = self.floor
        f.run.legs_joined += 1
        cid = d.conversation_id
        held, plan, live = f.holder.get(cid), f.plans.get(cid), f.legs.get(cid)
        if held is None or held[0] != d.agent_id or plan is None or live is None:
            return
        if d.leg not in live or f.groups[d.agent_id].kind == "bot":
            return
        handle = f.scenario.handling_for(CHANNEL_CLASS[d.channel]).draw_ms(f.rng)
        self._take_on(plan, d.leg, d.channel, d.agent_id, held[1], d.ts, handle)

    def _take_on(
        self, plan: ContactPlan, leg: str, channel: Channel, agent_id: str, gen: int,
        ts: int, handle_ms: int,
    ) -> None:  # fmt: skip
        """The agent works on ``leg`` for ``handle_ms``: a live leg (call, video, chat)
        from ``ts``, written work on their desk, a task once the work on the other legs
        is done."""
        f = self.floor
        cls = CHANNEL_CLASS[channel]
        if cls in REPLY_CLASSES:
            self._write(plan, leg, cls, agent_id, gen, ts, handle_ms)
            return
        work = self._work.setdefault(plan.cid, {})
        start = ts if cls in _LIVE else max([ts, *work.values()])
        work[leg] = start + handle_ms
        f.at(work[leg], self._end(plan, leg, agent_id, gen))
        if cls in _REALTIME:
            self.desks.realtime_on(agent_id, plan.cid, leg, ts)
        conv = f.conv(plan.cid)
        if conv is not None:
            self.customers.write("task" if conv.callback else cls, plan, agent_id, gen, start,
                                 handle_ms)  # fmt: skip

    def _write(
        self, plan: ContactPlan, leg: str, cls: MediaClass, agent_id: str, gen: int, ts: int,
        handle_ms: int,
    ) -> None:  # fmt: skip
        """Put the written work on ``leg`` on the agent's desk: the answer to an email or
        a post (then the leg ends), or the first reply of a messaging conversation
        (which then goes on for ``handle_ms``, each customer message answered)."""
        f = self.floor
        desks, cid = self.desks, plan.cid
        end = self._end(plan, leg, agent_id, gen)

        def reply(ts: int) -> bool:
            if f.holder.get(cid) != (agent_id, gen) or leg not in f.legs.get(cid, {}):
                f.run.stale_actions += 1
                return False
            f.emit(MessageReceived(tenant=f.tenant, ts=ts, conversation_id=cid,
                                   direction="out", leg=leg))  # fmt: skip
            return True

        def piece(work_ms: int, done: Callable[[int], object]) -> Piece:
            return Piece(desks.order(gen), cid, leg, work_ms, done)

        def answer(ts: int) -> None:  # a customer message: reply to it
            desks.add(agent_id, piece(f.scenario.reply_s.draw_ms(f.rng), reply), ts)

        def over(ts: int) -> None:  # the conversation's time is up: end once all is answered
            if desks.owes(agent_id, cid, leg):
                desks.add(agent_id, piece(0, end), ts)
            else:
                end(ts)

        def first(ts: int) -> None:
            if reply(ts):
                f.at(ts + handle_ms, over)
                self.customers.write("messaging", plan, agent_id, gen, ts, handle_ms, answer)

        def answered(ts: int) -> None:
            if reply(ts):
                end(ts)

        if cls == "messaging":
            desks.add(agent_id, piece(f.scenario.reply_s.draw_ms(f.rng), first), ts)
            return
        desks.add(agent_id, piece(handle_ms, answered), ts)
        self.customers.write(cls, plan, agent_id, gen, ts, handle_ms)

    def _transfer(self, plan: ContactPlan, agent_id: str, gen: int) -> Action:
        f = self.floor

        def act(ts: int) -> None:
            conv = f.holds(plan.cid, agent_id, gen)
            if conv is None:
                return
            f.run.transfers += 1
            to_queue = plan.stream.transfer_to or conv.queue
            if plan.transfer == "cold":
                self.unheld(plan.cid, ts)
            f.emit(
                TransferRequested(
                    tenant=f.tenant, ts=ts, conversation_id=plan.cid, agent_id=agent_id,
                    to_queue=to_queue, mode="cold" if plan.transfer == "cold" else "warm",
                )
            )  # fmt: skip
            if plan.transfer == "warm":
                f.at(ts + 180_000, self._give_up_warm(plan, agent_id, gen))

        return act

    def _give_up_warm(self, plan: ContactPlan, agent_id: str, gen: int) -> Action:
        f = self.floor

        def act(ts: int) -> None:
            conv = f.conv(plan.cid)
            if f.holder.get(plan.cid) != (agent_id, gen) or conv is None:
                return
            if conv.owner != agent_id or conv.stage != "assigned":
                return
            self._finish(plan, agent_id, ts, "agent")

        return act

    def _end(self, plan: ContactPlan, leg: str, agent_id: str, gen: int) -> Action:
        """The agent's work on ``leg`` is done: that leg ends (a live one by the customer
        hanging up) while others are live; the last one ends the conversation."""
        f = self.floor

        def act(ts: int) -> None:
            live = f.legs.get(plan.cid)
            if f.holder.get(plan.cid) != (agent_id, gen) or live is None or leg not in live:
                f.run.stale_actions += 1
                return
            if len(live) == 1:
                if f.holds(plan.cid, agent_id, gen) is not None:
                    self._finish(plan, agent_id, ts, "customer" if plan.by_customer else "agent")
                return
            f.run.legs_ended += 1
            by: Literal["agent", "customer"] = (
                "customer" if CHANNEL_CLASS[live.pop(leg)] in _LIVE else "agent"
            )
            self._work.get(plan.cid, {}).pop(leg, None)
            self.desks.drop(agent_id, plan.cid, ts, leg)
            f.emit(
                ConversationEnded(tenant=f.tenant, ts=ts, conversation_id=plan.cid, by=by, leg=leg)
            )

        return act

    def _finish(
        self, plan: ContactPlan, agent_id: str, ts: int, by: Literal["agent", "customer"]
    ) -> None:
        f = self.floor
        cid = plan.cid
        self.unheld(cid, ts)
        f.plans.pop(cid, None)
        f.legs.pop(cid, None)
        self._work.pop(cid, None)
        self._served.pop(cid, None)
        f.emit(ConversationEnded(tenant=f.tenant, ts=ts, conversation_id=cid, by=by))
        self.customers.follow_up(plan, ts)
        conv = f.conv(cid)
        wrap = f.groups[agent_id].wrap_up_s
        if conv is None or conv.stage != "wrap_up" or wrap is None:
            return  # closed at once (no wrap-up), or the policy's wrap-up timer ends it

        def done(ts: int) -> None:
            conv = f.conv(cid)
            if conv is None or conv.stage != "wrap_up" or conv.owner != agent_id:
                f.run.stale_actions += 1
                return
            f.emit(WrapUpCompleted(tenant=f.tenant, ts=ts, conversation_id=cid, agent_id=agent_id))

        f.at(ts + round(f.rng.uniform(*wrap) * 1000), done)
