"""Primary-skill preference: a freed agent takes the conversation of its strongest skill
when it is within ``prefer_window_s`` of the most urgent one it could take."""

from __future__ import annotations

import pytest

from omniroute.engine.events import ConversationAssigned, ConversationEnded
from tests.support.desk import Desk, of_type


def _freed_agent_takes(window_s: float, a_later_s: float) -> str:
    """A chained agent (billing 5, tech 3) ends a call while two chats wait: one needing
    tech, and one needing billing that arrived ``a_later_s`` seconds later."""
    desk = Desk(
        f"""
prefer_window_s = {window_s}
[queues.default]
offer_mode = "auto"
wrap_up_s = 0
"""
    )
    desk.at(0).agent("ann", {"billing": 5, "tech": 3})
    desk.arrive("call", "voice")
    desk.at(1).arrive("tech", "webchat", skills={"tech": 1})
    desk.at(1 + a_later_s).arrive("billing", "webchat", skills={"billing": 1})
    out = desk.at(30).send(ConversationEnded, conversation_id="call")
    assigned = of_type(out, ConversationAssigned)
    assert assigned and assigned[0].agent_id == "ann"
    return str(assigned[0].conversation_id)


@pytest.mark.parametrize(
    ("window_s", "a_later_s", "taken"),
    [
        (0.0, 5, "tech"),  # no window: the most urgent
        (10.0, 5, "billing"),  # within the window: the primary skill
        (10.0, 15, "tech"),  # outside it: the most urgent
        (1.0, 5, "tech"),
    ],
)
def test_freed_agent_takes_its_primary_skill_within_the_window(
    window_s: float, a_later_s: float, taken: str
) -> None:
    assert _freed_agent_takes(window_s, a_later_s) == taken
