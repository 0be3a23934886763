import numpy as np
import numpy.typing as npt

from .tables import AgentArrays

_I32 = npt.NDArray[np.int32]
_U8 = npt.NDArray[np.uint8]

def committed_units(table: AgentArrays, slot: int, cls: int, extra: int, adding: bool) -> int: ...
def fits(table: AgentArrays, slot: int, cls: int, extra: int, adding: bool) -> bool: ...
def room_mask(table: AgentArrays, slot: int) -> int: ...
def refresh_room(table: AgentArrays, slot: int) -> None: ...
def write_row(
    table: AgentArrays,
    slot: int,
    routable: bool,
    present: bool,
    kind: int,
    seq: int,
    profile: int,
    idle_since: int,
    last_offer: int,
    units: list[int],
    counts: list[int],
) -> None: ...
def agent_eligible(
    table: AgentArrays,
    slot: int,
    req_cols: _I32,
    req_levels: _U8,
    cls: int,
    kind_mask: int,
    also: int = 0,
) -> bool: ...
def score_agent(
    table: AgentArrays,
    slot: int,
    req_cols: _I32,
    cls: int,
    preferred: int,
    now: int,
    offer_counter: int,
    weights: npt.NDArray[np.float64],
) -> float: ...
def best_agent(
    table: AgentArrays,
    req_cols: _I32,
    req_levels: _U8,
    cls: int,
    kind_mask: int,
    excluded: _I32,
    preferred: int,
    pinned: int,
    now: int,
    offer_counter: int,
    weights: npt.NDArray[np.float64],
    also: int = 0,
) -> tuple[int, float]: ...

LOOKUPS: tuple[str, ...]

class QueueIndex:
    size: int
    lookup: str
    def __init__(self, n_classes: int = 7) -> None: ...
    def candidate_buckets(
        self, table: AgentArrays, agent: int, lookup: str | None = None
    ) -> list[int]: ...
    def bucket_id(
        self, cols: _I32, levels: _U8, cls: int, kind_mask: int, also: int = 0
    ) -> int: ...
    def add(
        self,
        conv: int,
        bucket: int,
        key: int,
        deadline: int,
        seq: int,
        pinned: int,
        pin_until: int,
        excluded: _I32,
    ) -> None: ...
    def remove(self, conv: int) -> None: ...
    def most_urgent(
        self, table: AgentArrays, agent: int, now: int, prefer_window: int = 0
    ) -> int: ...
