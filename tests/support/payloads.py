"""Fuzzing a webhook normaliser: any JSON value, and the only outcomes allowed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from omniroute.adapters.channels import BadPayload, CustomerMessage, Ignored, Item

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def items_or_bad_payload(parse: Callable[[], list[Item]]) -> list[Item] | None:
    """What ``parse()`` returns, all of it items, or None for a :class:`BadPayload`; any
    other exception fails the test."""
    try:
        items = parse()
    except BadPayload:
        return None
    assert isinstance(items, list)
    assert all(isinstance(item, CustomerMessage | Ignored) for item in items)
    return items


def mutate(value: Any, path: list[int], replacement: Any) -> Any:
    """``value`` with the node chosen by ``path`` replaced (or a key dropped)."""
    if not path or not isinstance(value, dict | list) or not value:
        return replacement
    keys = list(value) if isinstance(value, dict) else list(range(len(value)))
    key = keys[path[0] % len(keys)]
    value = copy.copy(value)
    if len(path) == 1 and isinstance(value, dict) and replacement == "<drop>":
        del value[key]
    else:
        value[key] = mutate(value[key], path[1:], replacement)
    return value
