"""Tables of a report and their rendering: aligned text, CSV, JSON.

A :class:`Table` is what every report returns (:mod:`.report`, :mod:`.compare` use the
same cells); :func:`format_table`, :func:`format_csv` and :func:`format_json` render it.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "Column",
    "Kind",
    "Table",
    "format_cell",
    "format_csv",
    "format_json",
    "format_seconds",
    "format_table",
    "jsonable",
]

Kind = Literal["text", "int", "pct", "secs", "num", "time"]
"""How a column's values are shown."""


@dataclass(frozen=True)
class Column:
    """A column: machine ``name`` (CSV/JSON), display ``label`` and value ``kind``."""

    name: str
    label: str = ""
    kind: Kind = "text"
    brief: bool = True
    """Shown in the readable table (every column is in CSV and JSON)."""

    @property
    def title(self) -> str:
        return self.label or self.name


@dataclass
class Table:
    """Rows of a report; ``notes`` are lines printed under a readable table."""

    title: str
    columns: list[Column]
    rows: list[tuple[Any, ...]]
    notes: list[str] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


# --- formatting ------------------------------------------------------------------------------


def format_seconds(value: float) -> str:
    """Seconds for people: ``4.2s``, ``42s``, ``7m05s``, ``3h20m``."""
    if value < 10:
        return f"{value:.1f}s"
    if value < 60:
        return f"{value:.0f}s"
    minutes, seconds = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_cell(value: Any, kind: Kind) -> str:
    """One value as a table shows it (``-`` for none, ``%`` for a ratio, ...)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if kind == "pct":
        return f"{100 * value:.1f}%"
    if kind == "secs":
        return format_seconds(float(value))
    if kind == "num":
        return f"{value:.2f}"
    if kind == "time" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def format_table(table: Table, *, wide: bool = False) -> list[str]:
    """Readable, aligned lines: title, header, rows (numbers right-aligned), notes.

    Columns that are not ``brief`` are left out unless ``wide``; a ``tenant`` column
    with one value moves into the title.
    """
    title = table.title
    keep = [i for i, c in enumerate(table.columns) if c.brief or wide]
    tenants = {row[i] for row in table.rows for i, c in enumerate(table.columns)
               if c.name == "tenant"}  # fmt: skip
    if len(tenants) == 1 and title:
        keep = [i for i in keep if table.columns[i].name != "tenant"]
        title += f" (tenant {next(iter(tenants))})"
    columns = [table.columns[i] for i in keep]
    cells = [[format_cell(row[i], table.columns[i].kind) for i in keep] for row in table.rows]
    widths = [max([len(c.title)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    right = [c.kind not in ("text", "time") for c in columns]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right, strict=True)
        ]
        return "  ".join(parts).rstrip()

    header = line([c.title for c in columns])
    out = [title, "", header] if title else [header]
    out.append("  ".join("-" * w for w in widths))
    out += [line(r) for r in cells]
    if not cells:
        out.append("(no rows)")
    if table.notes:
        out.append("")
        out += table.notes
    return out


def jsonable(value: Any) -> Any:
    """``value`` with times as ISO 8601 strings and NaN as None, for ``json.dumps``."""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="milliseconds") + ("Z" if value.tzinfo is None else "")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def format_csv(table: Table) -> str:
    """CSV with a header of column names; lists are joined with ``|``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([c.name for c in table.columns])
    for row in table.rows:
        plain = [jsonable(v) for v in row]
        writer.writerow(
            ["" if v is None else "|".join(map(str, v)) if isinstance(v, list) else v
             for v in plain]
        )  # fmt: skip
    return buf.getvalue()


def format_json(table: Table) -> str:
    """A JSON array of objects keyed by column name (times as ISO 8601, UTC)."""
    return json.dumps([{k: jsonable(v) for k, v in r.items()} for r in table.records()])
