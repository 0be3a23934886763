"""The input union as the service's edge reads it: unknown fields are errors.

The engine's event Structs skip unknown fields, so the log stays evolvable (an older reader
skips a newer field). At the edge, where a producer's typo would otherwise vanish
(``"skils": {...}`` registering an agent with no skills), inputs are checked against
copies of those Structs with ``forbid_unknown_fields=True`` -- built from them, so they
never drift -- and with integers bounded to int64 (what the log and the routing kernel
store). The error names the field: ``Object contains unknown field `skils```.
"""

from __future__ import annotations

import types
import typing
from typing import Annotated, Any, Literal, Union

import msgspec

from omniroute.engine.events import Input

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "check_json",
    "json_checker",
    "msgpack_checker",
    "msgpack_list_checker",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""The integers the edge accepts (int64: what the log and the kernel hold)."""

_LoggableInt = Annotated[int, msgspec.Meta(ge=INT_MIN, le=INT_MAX)]


def _strict(tp: Any, memo: dict[type, type]) -> Any:
    """``tp`` with every Struct replaced by its strict copy and ``int`` bounded."""
    if tp is int:
        return _LoggableInt
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        if tp not in memo:
            memo[tp] = _copy(tp, memo)
        return memo[tp]
    origin = typing.get_origin(tp)
    if origin is None or origin is Literal:
        return tp
    args = typing.get_args(tp)
    if origin is Annotated:
        return Annotated[(_strict(args[0], memo), *tp.__metadata__)]
    if origin in (Union, types.UnionType):
        return Union[tuple(_strict(a, memo) for a in args)]  # noqa: UP007
    return origin[tuple(_strict(a, memo) for a in args)]


def _copy(cls: type[msgspec.Struct], memo: dict[type, type]) -> type:
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(cls):
        tp = _strict(f.type, memo)
        if f.default is not msgspec.NODEFAULT:
            fields.append((f.encode_name, tp, f.default))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.encode_name, tp, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.encode_name, tp))
    config = cls.__struct_config__
    return msgspec.defstruct(
        f"Strict{cls.__name__}", fields, kw_only=True, forbid_unknown_fields=True,
        tag=config.tag, tag_field=config.tag_field,
    )  # fmt: skip


_memo: dict[type, type] = {}
_StrictInput: Any = Union[tuple(_strict(cls, _memo) for cls in typing.get_args(Input))]  # noqa: UP007

json_checker: msgspec.json.Decoder[Any] = msgspec.json.Decoder(_StrictInput)
"""Decodes one input event from JSON, strictly; the result is only for checking."""
msgpack_checker: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(_StrictInput)
"""Decodes one input event from msgpack, strictly; the result is only for checking."""
msgpack_list_checker: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(list[_StrictInput])
"""Checks a frame (a msgpack array of input events) in one call."""


def check_json(data: bytes | str) -> None:
    """Raise ``msgspec.ValidationError`` (naming the field) unless ``data`` is one input
    event as the service accepts it: known type, known fields, loggable integers."""
    json_checker.decode(data)
