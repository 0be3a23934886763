"""The matching kernel: compiled (Cython) when built, else its pure-Python twin.

``KERNEL`` says which one is in use: ``"compiled"`` or ``"reference"``. Set
``OMNIROUTE_REQUIRE_COMPILED=1`` to make a missing extension an import error (CI does).
"""

from __future__ import annotations

import os
from types import ModuleType

from . import reference
from .tables import AgentArrays

__all__ = ["KERNEL", "AgentArrays", "kernel", "reference"]

kernel: ModuleType
try:
    from . import _kernel as kernel

    KERNEL = "compiled"
except ImportError:
    if os.environ.get("OMNIROUTE_REQUIRE_COMPILED", "") not in ("", "0"):
        raise
    kernel = reference
    KERNEL = "reference"
