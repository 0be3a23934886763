"""What bots do with a conversation they are given: resolve it, or hand it to humans."""

from __future__ import annotations

from ..events import ConversationEnded, HandoffRequested
from .arrivals import ContactPlan
from .customers import Customers
from .floor import Action, Floor

__all__ = ["Bots"]


class Bots:
    """The bots on the floor, playing each stream's :class:`~.scenario.BotPlay`."""

    def __init__(self, floor: Floor, customers: Customers) -> None:
        self.floor = floor
        self.customers = customers

    def take(self, plan: ContactPlan, bot_id: str, gen: int, ts: int) -> None:
        """The bot was given the contact at ``ts``: plan its outcome (a stream without a
        bot play: the bot hands off after 5 seconds)."""
        self.floor.at(ts + (plan.bot_ms or 5_000), self._outcome(plan, bot_id, gen))

    def _outcome(self, plan: ContactPlan, bot_id: str, gen: int) -> Action:
        f = self.floor

        def act(ts: int) -> None:
            if f.holds(plan.cid, bot_id, gen) is None:
                return
            f.holder.pop(plan.cid, None)
            bot = plan.stream.bot  # a stream without a bot play: the bot hands off at once
            if bot is not None and plan.bot_resolves:
                f.run.bot_resolved += 1
                f.emit(
                    ConversationEnded(
                        tenant=f.tenant, ts=ts, conversation_id=plan.cid, by="customer"
                    )
                )
                f.plans.pop(plan.cid, None)
                f.legs.pop(plan.cid, None)
                return
            f.run.handoffs += 1
            f.emit(
                HandoffRequested(
                    tenant=f.tenant, ts=ts, conversation_id=plan.cid, agent_id=bot_id,
                    reason="asked for a human", queue=bot.handoff_queue if bot else None,
                )
            )  # fmt: skip
            if plan.patience_ms is not None:
                self.customers.wait(plan, ts, plan.patience_ms)

        return act
