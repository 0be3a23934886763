"""The arrays the matching kernel reads: the contract between the engine and ``core_ext``.

The engine's agent table (``omniroute.engine.matching.AgentTable``) is struct-of-arrays,
one row per agent slot, plus the capacity profiles' arrays. Both kernels — the compiled
``_kernel`` and its twin ``reference`` — read exactly these attributes, with exactly these
dtypes and shapes (``S`` agent slots, ``K`` skill columns, ``C`` media classes, ``P``
capacity profiles, ``W = S // 64`` bitset words). Every array is C-contiguous. The
compiled kernel caches typed views of them on the table as ``_kernel_views`` and builds
them anew when ``version`` changes (it changes whenever an array is reallocated).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["AgentArrays"]


class AgentArrays(Protocol):
    """One tenant's agents and capacity profiles as the kernel sees them."""

    version: int
    """Changes whenever an array below is reallocated (cached views are then stale)."""

    alive: npt.NDArray[np.uint8]
    """``[S]`` 1 for a registered agent's slot."""
    routable: npt.NDArray[np.uint8]
    """``[S]`` 1 when available, responsive and with nothing waiting to reactivate."""
    present: npt.NDArray[np.uint8]
    """``[S]`` 1 when available and responsive (may keep work it holds)."""
    kind: npt.NDArray[np.uint8]
    """``[S]`` 1 human, 2 bot."""
    seq: npt.NDArray[np.int64]
    """``[S]`` registration order: the tie-break between equal scores."""
    profile: npt.NDArray[np.int32]
    """``[S]`` row of the agent's capacity profile in ``budget``/``cost``/``cmax``/``intr``."""
    idle_since: npt.NDArray[np.int64]
    """``[S]`` epoch ms when the agent last started or stopped holding work."""
    last_offer: npt.NDArray[np.int64]
    """``[S]`` offer counter at the agent's last offer (round robin)."""
    levels: npt.NDArray[np.uint8]
    """``[S, K]`` skill level 0..5 per skill column."""
    units: npt.NDArray[np.int32]
    """``[S, C]`` capacity units held per media class."""
    counts: npt.NDArray[np.int32]
    """``[S, C]`` items held per media class."""
    budget: npt.NDArray[np.int32]
    """``[P]`` unit budget of each profile."""
    cost: npt.NDArray[np.int32]
    """``[P, C]`` unit cost of one item of a class."""
    cmax: npt.NDArray[np.int32]
    """``[P, C]`` most items of a class at once."""
    intr: npt.NDArray[np.int32]
    """``[P, C]`` bit set of the classes allowed to interrupt each class."""
    skill_bits: npt.NDArray[np.uint64]
    """``[K, W]`` bitset of the slots having each skill (any level)."""
    room_bits: npt.NDArray[np.uint64]
    """``[C, W]`` bitset of the slots with room for one more item of each class."""
    skill_count: npt.NDArray[np.int32]
    """``[K]`` how many agents have each skill (the kernel scans the rarest first)."""
