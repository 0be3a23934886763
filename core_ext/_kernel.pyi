from typing import Any

import numpy as np
import numpy.typing as npt

def committed_units(table: Any, slot: int, cls: int, extra: int, adding: bool) -> int: ...
def fits(table: Any, slot: int, cls: int, extra: int, adding: bool) -> bool: ...
def agent_eligible(
    table: Any,
    slot: int,
    req_cols: npt.NDArray[np.int32],
    req_levels: npt.NDArray[np.uint8],
    cls: int,
    kind_mask: int,
) -> bool: ...
def best_agent(
    table: Any,
    cand: npt.NDArray[np.int32],
    req_cols: npt.NDArray[np.int32],
    req_levels: npt.NDArray[np.uint8],
    cls: int,
    kind_mask: int,
    excluded: npt.NDArray[np.int32],
    preferred: int,
    now: int,
    offer_counter: int,
    weights: npt.NDArray[np.float64],
) -> tuple[int, float]: ...
