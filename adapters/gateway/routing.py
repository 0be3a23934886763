"""The routing table: which queue, skills and priority a new conversation gets.

Rules are tried in the configuration's order; the first whose every given key matches
the customer's first message wins (channel, provider, source, recipient, a keyword in the
text, language); with no match the conversation goes to the ``default`` queue.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..channels.inbound import CustomerMessage
from .config import RouteRule, Source

__all__ = ["Route", "RoutingTable"]


@dataclass(frozen=True)
class Route:
    """What the engine is told about a new conversation."""

    queue: str = "default"
    skills: dict[str, int] | None = None
    optional_skills: dict[str, int] | None = None
    priority: int = 0
    language: str | None = None


_WORD = re.compile(r"\w+", re.UNICODE)


class RoutingTable:
    """``[[route]]`` rules, first match wins."""

    def __init__(self, rules: Sequence[RouteRule]) -> None:
        self.rules = tuple(rules)
        self._keywords = [frozenset(k.casefold() for k in r.keywords) for r in self.rules]

    def route(self, message: CustomerMessage, source: Source) -> Route:
        language = message.sender_ids.get("language") or source.language
        words: frozenset[str] | None = None
        for rule, keywords in zip(self.rules, self._keywords, strict=True):
            if rule.channel is not None and rule.channel != message.channel:
                continue
            if rule.provider is not None and rule.provider != source.provider:
                continue
            if rule.source is not None and rule.source != source.name:
                continue
            if rule.recipient is not None and rule.recipient != message.recipient:
                continue
            if rule.language is not None and rule.language != language:
                continue
            if keywords:
                if words is None:
                    words = frozenset(w.casefold() for w in _WORD.findall(message.text))
                if not keywords & words:
                    continue
            return Route(
                queue=rule.queue, skills=dict(rule.skills),
                optional_skills=dict(rule.optional_skills), priority=rule.priority,
                language=rule.set_language or language,
            )  # fmt: skip
        return Route(language=language)
