"""What customers do: arrive, wait with some patience, abandon or ask for a callback,
open a second leg on another channel (while waiting, or while an agent serves them),
write in asynchronous conversations, and get an outbound follow-up task after their
conversation."""

from __future__ import annotations

from ..events import (
    CallbackRequested,
    Channel,
    Contact,
    ConversationArrived,
    CustomerAbandoned,
    MessageReceived,
)
from ..policy import CHANNEL_CLASS, MediaClass
from .arrivals import ContactPlan, address, follow_up_task
from .floor import Action, Floor

__all__ = ["Customers"]


class Customers:
    """The customers of the contacts in play, on the floor they share."""

    def __init__(self, floor: Floor) -> None:
        self.floor = floor
        self._wait_gen: dict[str, int] = {}
        """The current wait of each waiting customer (an older wait's patience is void)."""
        self._rejoined: dict[str, str] = {}
        """New contacts the engine joined to the customer's open conversation."""

    def arrive(self, plan: ContactPlan) -> None:
        """The contact comes in; its customer starts waiting, and may open a second leg
        later."""
        f = self.floor
        f.plans[plan.cid] = plan
        f.run.interactions += 1
        s = plan.stream
        f.emit(
            ConversationArrived(
                tenant=f.tenant, ts=plan.ts, conversation_id=plan.cid, channel=s.channel,
                contact=plan.contact, customer_id=plan.customer_id, queue=s.queue,
                skills=plan.skills, optional_skills=dict(s.optional_skills),
                priority=s.priority, language=plan.language,
            )
        )  # fmt: skip
        if plan.cid in self._rejoined:  # it joined the customer's open conversation
            f.plans.pop(plan.cid, None)
            self.wait_again(self._rejoined.pop(plan.cid), plan.ts)
            return
        f.legs[plan.cid] = {plan.cid: s.channel}
        if plan.patience_ms is not None:
            self.wait(plan, plan.ts, plan.patience_ms)
        if plan.switch is not None and plan.switch_ms is not None and plan.switch.during == "open":
            f.at(plan.ts + plan.switch_ms, self._switch(plan))

    def answered(self, plan: ContactPlan, ts: int, handle_ms: int) -> None:
        """A human answered the contact at ``ts`` for ``handle_ms`` of work: a customer
        who opens a second leg during the service plans it now."""
        if plan.switch is None or plan.switch_ms is None or plan.switch.during != "service":
            return
        self.floor.at(ts + min(plan.switch_ms, handle_ms // 2), self._switch(plan))

    def rejoined(self, new_cid: str, cid: str, channel: Channel) -> None:
        """The engine joined the new contact ``new_cid`` to conversation ``cid`` as a
        new live leg on ``channel``."""
        self._rejoined[new_cid] = cid
        self.floor.run.rejoins += 1
        legs = self.floor.legs.get(cid)
        if legs is not None:
            legs[new_cid] = channel

    def wait(self, plan: ContactPlan, since: int, patience_ms: int) -> None:
        """The customer waits from ``since``, for ``patience_ms`` at most."""
        gen = self._wait_gen.get(plan.cid, 0) + 1
        self._wait_gen[plan.cid] = gen
        self.floor.at(since + patience_ms, self._patience(plan, gen))

    def served(self, cid: str) -> None:
        """An agent or bot took the conversation: the customer no longer waits."""
        self._wait_gen.pop(cid, None)

    def wait_again(self, cid: str, ts: int) -> None:
        """A customer's new contact put their conversation back in the queue (a switch to
        a media class the agent has no room for): they wait with that channel's patience."""
        f = self.floor
        conv = f.conv(cid)
        plan = f.plans.get(cid)
        if plan is None or conv is None or not conv.in_queue or conv.owner is not None:
            return
        patience = f.scenario.patience.get(conv.media_class)
        if patience is not None:
            self.wait(plan, ts, patience.draw_ms(f.rng))

    def write(
        self,
        media_class: MediaClass,
        plan: ContactPlan,
        agent_id: str,
        gen: int,
        since: int,
        handle_ms: int,
        answer: Action | None = None,
    ) -> None:
        """Plan the customer's messages while an agent handles an asynchronous leg of
        their conversation (every ``messages_every_s`` on average on the stream's own
        channel; 150 s on messaging); ``answer`` is called after each message."""
        own = media_class == CHANNEL_CLASS[plan.stream.channel]
        every = plan.stream.messages_every_s if own else None
        if every is None and media_class == "messaging":
            every = 150.0
        if not every:
            return
        f = self.floor
        t = since
        while True:
            t += round(f.rng.expovariate(1 / every) * 1000)
            if t >= since + handle_ms:
                break
            f.at(t, self._message(plan.cid, agent_id, gen, answer))

    def follow_up(self, plan: ContactPlan, ts: int) -> None:
        """The outbound task planned for after the conversation, if there is one."""
        f = self.floor
        follow = plan.stream.follow_up
        if plan.follow_up_ms is None or follow is None:
            return
        handle_ms = f.scenario.handling_for("task").draw_ms(f.rng)
        task = follow_up_task(plan, follow.queue, ts + plan.follow_up_ms, handle_ms)
        f.run.follow_ups += 1
        f.at(task.ts, lambda _ts: self.arrive(task))

    def _patience(self, plan: ContactPlan, gen: int) -> Action:
        f = self.floor

        def act(ts: int) -> None:
            conv = f.conv(plan.cid)
            if (
                conv is None
                or self._wait_gen.get(plan.cid) != gen
                or conv.owner is not None
                or conv.callback
                or conv.stage not in ("queued", "offered")
            ):
                return
            if not plan.callback or conv.channel != "voice":
                f.run.abandons += 1
                f.emit(CustomerAbandoned(tenant=f.tenant, ts=ts, conversation_id=plan.cid))
                f.plans.pop(plan.cid, None)
                f.legs.pop(plan.cid, None)
            elif conv.stage == "offered":
                f.at(ts + 3000, act)  # the offer may still be answered; ask again soon
            else:
                f.run.callbacks += 1
                later = ts + 10 * 60_000 if plan.callback == "later" else None
                f.emit(
                    CallbackRequested(
                        tenant=f.tenant, ts=ts, conversation_id=plan.cid,
                        address=plan.contact.address, not_before=later,
                    )
                )  # fmt: skip

        return act

    def _switch(self, plan: ContactPlan) -> Action:
        f = self.floor
        switch = plan.switch
        assert switch is not None
        to = switch.to
        queue = switch.queue or plan.stream.queue
        priority = plan.stream.priority if switch.priority is None else switch.priority

        def act(ts: int) -> None:
            if plan.cid not in f.plans or f.conv(plan.cid) is None:
                return
            assert plan.customer_id is not None
            f.run.switches += 1
            f.run.interactions += 1
            customer = int(plan.customer_id.removeprefix("crm-"))
            new_cid = f"{plan.cid}-{to}"
            f.emit(
                ConversationArrived(
                    tenant=f.tenant, ts=ts, conversation_id=new_cid, channel=to,
                    contact=Contact(to, address(to, customer, new_cid)),
                    customer_id=plan.customer_id, queue=queue, skills=plan.skills,
                    priority=priority, language=plan.language,
                )
            )  # fmt: skip
            self._rejoined.pop(new_cid, None)
            self.wait_again(plan.cid, ts)

        return act

    def _message(self, cid: str, agent_id: str, gen: int, answer: Action | None) -> Action:
        f = self.floor

        def act(ts: int) -> None:
            if f.holder.get(cid) == (agent_id, gen) and f.conv(cid) is not None:
                f.emit(MessageReceived(tenant=f.tenant, ts=ts, conversation_id=cid))
                if answer is not None:
                    answer(ts)

        return act
