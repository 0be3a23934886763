"""Fuzzing a webhook normaliser: any JSON value, and the only outcomes allowed."""

from __future__ import annotations

from collections.abc import Callable

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
