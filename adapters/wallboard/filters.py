"""The wallboard's filters: a tenant, a queue, a channel, from the query string."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

__all__ = ["Filters"]


@dataclass(frozen=True)
class Filters:
    """What the page and its stream show: ``None`` is every tenant, queue or channel."""

    tenant: str | None = None
    queue: str | None = None
    channel: str | None = None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Filters:
        """The filters of a query string (an empty value is no filter)."""

        def value(name: str) -> str | None:
            return params.get(name, "").strip() or None

        return cls(value("tenant"), value("queue"), value("channel"))

    def query(self) -> str:
        """The query string of these filters (``""`` for none)."""
        return urlencode({k: v for k, v in self.items() if v is not None})

    def items(self) -> list[tuple[str, str | None]]:
        return [("tenant", self.tenant), ("queue", self.queue), ("channel", self.channel)]

    def __bool__(self) -> bool:
        return any(v is not None for _, v in self.items())
