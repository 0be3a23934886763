"""``omniroute schema``: the event schema, generated from the event Structs.

::

    omniroute schema [--format json-schema|markdown] [--decisions]

Prints the JSON Schema (2020-12) of the input events a producer sends (the ``Input``
union of ``engine/events.py``, tagged by ``type``), or the same as one markdown table per
event type: its tag, fields, types and defaults. ``--decisions`` gives every event the log
holds, decisions included. Both are generated from the Structs, so they cannot drift from
what ``Engine.apply``, ``omniroute send`` and the service decode. Core install only.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

import msgspec

from omniroute.engine.events import Event, Input

from .common import EXIT_OK, Command

__all__ = ["COMMANDS", "event_schema", "schema_markdown"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def event_schema(decisions: bool = False) -> dict[str, Any]:
    """The JSON Schema of the input events (``decisions``: of every event)."""
    schema: dict[str, Any] = msgspec.json.schema(Event if decisions else Input)
    title = "an omniroute event" if decisions else "an omniroute input event"
    return {"$schema": _DIALECT, "title": title, **schema}


def _type(node: dict[str, Any]) -> str:
    """A schema node in words: ``string``, ``{string: integer}``, ``Contact or null``..."""
    if "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    if "enum" in node:
        values = [json.dumps(v) for v in node["enum"]]
        return values[0] if len(values) == 1 else "one of " + ", ".join(values)
    if "anyOf" in node:
        text = " or ".join(_type(member) for member in node["anyOf"])
    elif node.get("type") == "object" and "additionalProperties" in node:
        text = f"{{string: {_type(node['additionalProperties'])}}}"
    elif node.get("type") == "array":
        text = f"[{_type(node.get('items', {}))}]"
    else:
        text = str(node.get("type", "any"))
    limits = [
        f"{word} {node[key]}"
        for key, word in (
            ("minimum", ">="), ("maximum", "<="), ("minLength", "length >="),
            ("maxLength", "length <="), ("maxProperties", "entries <="), ("maxItems", "items <="),
        )
        if key in node
    ]  # fmt: skip
    return f"{text} ({', '.join(limits)})" if limits else text


def schema_markdown(decisions: bool = False) -> list[str]:
    """The event schema as markdown: one table per event type, then the nested types."""
    schema = event_schema(decisions)
    defs: dict[str, dict[str, Any]] = schema["$defs"]
    events = [str(ref["$ref"]).rsplit("/", 1)[-1] for ref in schema["anyOf"]]
    lines = [
        f"# {schema['title'][0].upper()}{schema['title'][1:]}",
        "",
        "One JSON object per event; `type` is its tag. Times (`ts`) are epoch milliseconds.",
    ]
    for name in [*events, *(d for d in defs if d not in events)]:
        body = defs[name]
        tag = body["properties"].get("type", {}).get("enum", [None])[0]
        lines += ["", f"## `{tag}` ({name})" if tag else f"## {name} (nested)", ""]
        description = str(body.get("description", "")).split("\n\n", 1)[0]
        if description:
            lines += [" ".join(description.split()), ""]
        lines += ["| field | type | default |", "| --- | --- | --- |"]
        required = set(body.get("required", ()))
        for field, node in body["properties"].items():
            default = "required" if field in required else json.dumps(node.get("default"))
            lines.append(f"| `{field}` | {_type(node)} | {default} |")
    return lines


def _schema_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=["json-schema", "markdown"], default="json-schema",
        help="a JSON Schema (default) or markdown tables",
    )  # fmt: skip
    parser.add_argument(
        "--decisions", action="store_true", help="every event, the decisions included"
    )


def _schema(args: argparse.Namespace, out: TextIO) -> int:
    if args.format == "markdown":
        print("\n".join(schema_markdown(args.decisions)), file=out)
    else:
        print(json.dumps(event_schema(args.decisions), indent=2), file=out)
    return EXIT_OK


COMMANDS: dict[str, Command] = {
    "schema": Command(
        help="print the event schema (JSON Schema or markdown)",
        description="Print the schema of the input events a producer sends (JSON lines for "
        "`omniroute send`, the service's <prefix>.<tenant>.in, Engine.apply), generated from "
        "the event Structs: a JSON Schema, or one markdown table per event type.",
        add_arguments=_schema_arguments,
        run=_schema,
    ),
}
"""The commands of this module, for ``main``'s table."""
