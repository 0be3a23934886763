"""The engine's agent table honours ``AgentArrays``, the contract both kernels read."""

from __future__ import annotations

import typing

import numpy as np
import pytest

from omniroute.core_ext.tables import AgentArrays
from omniroute.engine import Policy
from omniroute.engine.matching import AgentTable, ProfileTable

# Dimensions of each array, by the letters of the contract's docstrings: S slots, K skills,
# C media classes, P profiles, W bitset words.
SHAPES = {
    "alive": "S", "routable": "S", "present": "S", "kind": "S", "seq": "S", "profile": "S",
    "idle_since": "S", "last_offer": "S", "levels": "SK", "units": "SC", "counts": "SC",
    "budget": "P", "cost": "PC", "cmax": "PC", "intr": "PC", "skill_bits": "KW",
    "room_bits": "CW", "skill_count": "K",
}  # fmt: skip


def _contract_arrays() -> dict[str, np.dtype[typing.Any]]:
    """Attribute -> dtype, read from the Protocol's own annotations."""
    hints = typing.get_type_hints(AgentArrays)
    arrays = {}
    for name, hint in hints.items():
        if name == "version":
            continue
        (scalar,) = typing.get_args(typing.get_args(hint)[1])
        arrays[name] = np.dtype(scalar)
    return arrays


def _table(slots: int) -> AgentTable:
    table = AgentTable(ProfileTable(Policy()), capacity=slots, skills=3)
    for skill in ("billing", "fr", "vip", "de"):  # one more than the room made: it grows
        table.column(skill)
    return table


def test_every_array_the_kernel_reads_is_in_the_contract() -> None:
    assert set(_contract_arrays()) == set(SHAPES)


@pytest.mark.parametrize("slots", [64, 192])
def test_agent_table_has_the_contract_dtypes_shapes_and_layout(slots: int) -> None:
    table = _table(slots)
    dims = {
        "S": slots, "K": table.levels.shape[1], "C": table.units.shape[1],
        "P": table.budget.shape[0], "W": slots // 64,
    }  # fmt: skip
    assert table.alive.shape == (slots,)
    assert table.skill_bits.shape[0] == table.skill_count.shape[0] == dims["K"]
    for name, dtype in _contract_arrays().items():
        array = getattr(table, name)
        assert array.dtype == dtype, name
        assert array.shape == tuple(dims[d] for d in SHAPES[name]), name
        assert array.flags.c_contiguous, name
    assert isinstance(table.version, int)
