"""Reporting: an event log projected into DuckDB, the reports and plots read from it.

How it is built, from the log to the page:

- :mod:`.schema`: the tables and views, as SQL text;
- :mod:`.fold` (with :mod:`.records`, :mod:`.ledger`, :mod:`.conversations`,
  :mod:`.agents`, :mod:`.customers`): the pure fold of events into rows;
- :mod:`.writer`: :class:`Projector`, the DuckDB writer, and :func:`connect_readonly`;
  :mod:`.privacy`: contact addresses stored as a keyed hash;
- :mod:`.report`, :mod:`.table`, :mod:`.compare`: reports, their tables, two policies
  side by side;
- :mod:`.plot_data` and :mod:`.plots`: the figures (matplotlib is imported only when a
  plotting name is first used).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .compare import ChannelLevel, Comparison, Side, Spread, compare, format_comparison, summarize
from .privacy import AddressHasher
from .report import (
    DIMENSIONS,
    OUTCOMES,
    ReportError,
    agent_report,
    customer_view,
    export_parquet,
    format_customer,
    projection_info,
    run_sql,
    service_report,
)
from .schema import SCHEMA_VERSION, TABLES, VIEWS
from .table import (
    Column,
    Table,
    format_cell,
    format_csv,
    format_json,
    format_seconds,
    format_table,
    jsonable,
)
from .writer import (
    ALL_TENANTS,
    ProjectionError,
    ProjectionStats,
    Projector,
    connect_readonly,
    project,
)

if TYPE_CHECKING:
    from .plots import PLOT_FILES, write_plots

__all__ = [
    "ALL_TENANTS",
    "DIMENSIONS",
    "OUTCOMES",
    "PLOT_FILES",
    "SCHEMA_VERSION",
    "TABLES",
    "VIEWS",
    "AddressHasher",
    "ChannelLevel",
    "Column",
    "Comparison",
    "ProjectionError",
    "ProjectionStats",
    "Projector",
    "ReportError",
    "Side",
    "Spread",
    "Table",
    "agent_report",
    "compare",
    "connect_readonly",
    "customer_view",
    "export_parquet",
    "format_cell",
    "format_comparison",
    "format_csv",
    "format_customer",
    "format_json",
    "format_seconds",
    "format_table",
    "jsonable",
    "project",
    "projection_info",
    "run_sql",
    "service_report",
    "summarize",
    "write_plots",
]

_PLOTTING = frozenset({"PLOT_FILES", "write_plots"})


def __getattr__(name: str) -> Any:
    """The plotting names, imported on first use (matplotlib takes a second to load)."""
    if name in _PLOTTING:
        return getattr(importlib.import_module(".plots", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
