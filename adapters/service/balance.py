"""Which tenants an instance claims and which it hands over, with ``[service] tenants =
["*"]``: pure, so every instance decides alike from what it sees (no NATS here; the
instance's :mod:`.spread` feeds it the tenants, the live instances and its own leases).

Each live instance serves at most its share of the T tenants: the lowest level L at which
the live instances' ``max_tenants`` (0: no cap), each cut to L, add up to T, then its cap
cut to L. Without caps that is ceil(T / N) over N instances; what a capped instance cannot
take, the others share. An instance under its share claims free tenants in order of its
rendezvous score (a hash of tenant x instance: its favourites first); over it (a newcomer
raised N) it hands over the tenants it scores lowest. No instance claims past its share,
and instances favour different tenants, so they do not fight over one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping
from typing import NamedTuple

__all__ = ["Plan", "plan", "score", "shares"]


def score(tenant: str, instance: str) -> int:
    """The rendezvous score of ``tenant`` on ``instance`` (stable across runs and hosts)."""
    digest = hashlib.blake2b(f"{tenant}\0{instance}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shares(tenants: int, caps: Mapping[str, int]) -> dict[str, int]:
    """Each live instance's share of ``tenants``, by its ``max_tenants`` (0: no cap)."""
    if not caps:
        return {}
    level = 0
    while level < tenants:  # the lowest level whose cut caps cover every tenant
        if sum(min(cap or level, level) for cap in caps.values()) >= tenants:
            break
        if all(cap and cap <= level for cap in caps.values()):
            break  # every instance at its cap: some tenants go unserved
        level += 1
    return {name: min(cap or level, level) for name, cap in caps.items()}


class Plan(NamedTuple):
    """One balancing round of one instance."""

    share: int
    """How many tenants it may lead."""
    claim: list[str]
    """Free tenants to try, its favourites first, until it leads ``share``."""
    release: list[str]
    """Tenants to hand over (it leads more than ``share``), its least favourite first."""


def plan(
    tenants: Collection[str], caps: Mapping[str, int], me: str, led: Collection[str],
    busy: Collection[str] = (),
) -> Plan:  # fmt: skip
    """The round of instance ``me`` (one of ``caps``' live instances) leading ``led``.

    ``busy``: tenants it must leave alone this round (being handed over, or ended).
    """
    share = shares(len(set(tenants) | set(led)), caps).get(me, 0)
    mine = sorted(led, key=lambda t: score(t, me))
    release = mine[: max(0, len(mine) - share)]
    taken = set(led) | set(busy)
    free = sorted((t for t in set(tenants) if t not in taken), key=lambda t: -score(t, me))
    return Plan(share, free if len(mine) < share else [], release)
