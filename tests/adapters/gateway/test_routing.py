"""The routing table: the first rule whose every key matches sets queue, skills, priority."""

from __future__ import annotations

from omniroute.adapters.channels.inbound import CustomerMessage
from omniroute.adapters.gateway.config import RouteRule, Source
from omniroute.adapters.gateway.routing import Route, RoutingTable

WA = Source(provider="whatsapp", name="uk", language="en")
FR = Source(provider="whatsapp", name="fr", language="fr")


def msg(text: str = "", channel: str = "whatsapp", recipient: str = "PNID") -> CustomerMessage:
    return CustomerMessage(provider="whatsapp", channel=channel, message_id="m", sender="+1",  # type: ignore[arg-type]
                           recipient=recipient, ts=0, text=text)  # fmt: skip


TABLE = RoutingTable([
    RouteRule(keywords=("refund", "Invoice"), queue="billing", skills={"billing": 2}, priority=2),
    RouteRule(language="fr", queue="fr", skills={"french": 1}),
    RouteRule(channel="sms", recipient="+15550001", queue="sales"),
    RouteRule(provider="whatsapp", source="uk", queue="uk"),
])  # fmt: skip


def test_keywords_match_whole_words_in_any_case() -> None:
    assert TABLE.route(msg("My INVOICE is wrong!"), WA) == Route(
        queue="billing", skills={"billing": 2}, optional_skills={}, priority=2, language="en"
    )
    assert TABLE.route(msg("refunding"), WA).queue == "uk"  # not the word "refund"


def test_language_recipient_channel_and_source() -> None:
    assert TABLE.route(msg("bonjour"), FR).queue == "fr"
    assert TABLE.route(msg("hi", channel="sms", recipient="+15550001"), WA).queue == "sales"
    other = Source(provider="twilio", name="other")
    assert TABLE.route(msg("hi", channel="sms", recipient="+15550002"), other).queue == "default"
    assert TABLE.route(msg("hi"), WA).queue == "uk"


def test_no_match_goes_to_the_default_queue_in_the_source_language() -> None:
    assert RoutingTable([]).route(msg("hi"), FR) == Route(language="fr")
