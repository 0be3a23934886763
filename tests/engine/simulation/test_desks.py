"""Agents' written work: emails answered one at a time in the order given, paused by
calls; messaging conversations answered reply by reply."""

from __future__ import annotations

from typing import Any

from omniroute.engine import events as ev
from tests.support.simulation import START, START_MS, of_type, play


def floor(*traffic: dict[str, Any], **scenario: Any) -> dict[str, Any]:
    """One agent, the default capacity profile (10 emails, a call on top of them), every
    contact auto-assigned, no wrap-up; ``traffic`` streams of backlog only."""
    streams = [{"known": 0.0, "queue": "q", **t} for t in traffic]
    return {
        "name": "desk", "tenant": "t", "start": START, "hours": 0.1, "seed": 1,
        "patience": {},
        "policy": {"queues": {"q": {"offer_mode": "auto", "wrap_up_s": 0}}},
        "agents": [{"group": "a", "count": 1}],
        "traffic": streams, **scenario,
    }  # fmt: skip


def at_s(events: list[ev.Event], kind: type[Any], **where: Any) -> list[float]:
    """Seconds from the start of each event of ``kind`` matching ``where``."""
    return [
        (e.ts - START_MS) / 1000
        for e in of_type(events, kind)
        if all(getattr(e, k) == v for k, v in where.items())
    ]


def test_emails_are_answered_one_at_a_time_in_the_order_given() -> None:
    events = play(floor({"name": "mail", "channel": "email", "backlog": 3,
                         "handle": {"dist": "fixed", "mean_s": 100}}))  # fmt: skip
    assert at_s(events, ev.ConversationAssigned) == [0, 20, 40]  # all held at once
    replies = of_type(events, ev.MessageReceived)
    assert [(r.ts - START_MS) / 1000 for r in replies] == [100, 200, 300]
    assert [r.direction for r in replies] == ["out"] * 3
    assert [r.leg for r in replies] == [a.conversation_id for a in
                                        of_type(events, ev.ConversationAssigned)]  # fmt: skip
    # answering an email is its work: it ends with the reply
    assert at_s(events, ev.ConversationEnded) == [100, 200, 300]


def test_a_call_pauses_the_email_being_answered() -> None:
    events = play(floor(
        {"name": "a-mail", "channel": "email", "backlog": 1,
         "handle": {"dist": "fixed", "mean_s": 100}},
        {"name": "b-call", "channel": "voice", "backlog": 2,
         "handle": {"dist": "fixed", "mean_s": 20}},
    ))  # fmt: skip
    # the first call (the nearer deadline), the email when it ends, the second call on
    # top of the email
    assigned = of_type(events, ev.ConversationAssigned)
    order = [(a.conversation_id[0], (a.ts - START_MS) / 1000) for a in assigned]
    assert order == [("b", 0), ("a", 20), ("b", 30)]
    # 100 s of work on the email: 10 s before the second call, 90 s after it
    assert at_s(events, ev.MessageReceived, direction="out") == [140]


def test_a_messaging_conversation_is_answered_reply_by_reply() -> None:
    events = play(floor(
        {"name": "wa", "channel": "whatsapp", "backlog": 1, "messages_every_s": 60,
         "handle": {"dist": "fixed", "mean_s": 600}},
        reply_s={"dist": "fixed", "mean_s": 10},
    ))  # fmt: skip
    ins = at_s(events, ev.MessageReceived, direction="in")
    outs = at_s(events, ev.MessageReceived, direction="out")
    assert outs[0] == 10  # the first reply, one reply's work after the assignment
    assert len(ins) >= 3 and len(outs) == len(ins) + 1  # every message answered
    for message, answer in zip(ins, outs[1:], strict=True):
        assert round(answer - message, 3) >= 10
    (end,) = at_s(events, ev.ConversationEnded)
    assert end == max(610, outs[-1])  # its time after the first reply, all answered
