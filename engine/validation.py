"""What makes an event acceptable: the checks and look-ups that reject it before any change.

A handler raises :class:`Rejected` before it changes anything; the engine turns it into
one ``EventRejected`` decision carrying the reason.
"""

from __future__ import annotations

import operator
import typing
from collections.abc import Callable
from typing import Any, TypeAlias

import msgspec

from .events import CHANNELS, TAGS, Contact, Event, EventRejected, Input, is_decision
from .matching import LANGUAGE_LEVEL, LANGUAGE_PREFIX, requirements
from .policy import Limits, Policy, Queue
from .state import AgentState, ConversationState, EngineState, TenantState

__all__ = [
    "MAX_TS",
    "PRIORITY_RANGE",
    "Rejected",
    "agent_of",
    "check_can_take",
    "conversation_of",
    "input_problem",
    "known_tenant",
    "queue_of",
    "rejection",
]

MAX_TS = 253_402_300_799_999
"""The last millisecond of the year 9999 (UTC): the latest ``ts`` an event may carry."""
PRIORITY_RANGE = (-(2**31), 2**31 - 1)
"""A conversation's priority is a 32-bit integer (the queue's own priority is added)."""
SKILL_LEVELS = (1, 5)


class Rejected(Exception):
    """Raised inside a handler, before any change, when the event is invalid."""


# --- the shape of an input: types, ranges and sizes, whatever built the event ----------

_Check = Callable[[object, Limits], "str | None"]
"""A field's value and the policy's limits -> why the value is wrong, or None."""


def _show(value: object) -> str:
    """A short, safe picture of a bad value for a rejection's reason."""
    if type(value) is int and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # an int too long to print, a broken __repr__
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:60]}... ({type(value).__name__})"


def _text_problem(value: object, max_chars: int) -> str | None:
    if type(value) is not str:
        return f"must be a string, got {_show(value)}"
    if len(value) > max_chars:
        return f"must be at most {max_chars} characters, got {len(value)}"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "must be valid Unicode text (it holds a lone surrogate)"
    return None


def _id(value: object, limits: Limits) -> str | None:
    """An id or a name: a non-blank string of at most ``max_id_length`` characters."""
    if (
        type(value) is str
        and 0 < len(value) <= limits.max_id_length
        and value.isascii()
        and not value.isspace()
    ):
        return None  # the common case, decided in a few C calls
    problem = _text_problem(value, limits.max_id_length)
    if problem is None and (not value or str(value).isspace()):
        return "must not be blank"
    return problem


def _free_text(value: object, limits: Limits) -> str | None:
    """A reason or a display name: any string of at most ``max_attribute_bytes`` characters."""
    return _text_problem(value, limits.max_attribute_bytes)


def _int_in(lo: int, hi: int) -> _Check:
    def check(value: object, limits: Limits) -> str | None:
        if type(value) is not int or not lo <= value <= hi:
            return f"must be an integer in {lo}..{hi}, got {_show(value)}"
        return None

    return check


def _one_of(values: tuple[str, ...]) -> _Check:
    def check(value: object, limits: Limits) -> str | None:
        if type(value) is not str or value not in values:
            return f"must be one of {', '.join(values)}; got {_show(value)}"
        return None

    return check


def _too_many(value: dict[Any, Any] | list[Any], limits: Limits) -> str | None:
    if len(value) > limits.max_entries:
        return f"must hold at most {limits.max_entries} entries, got {len(value)}"
    return None


def _skills(value: object, limits: Limits) -> str | None:
    """Skill names and levels: ``{"billing": 3}``, levels 1..5."""
    if type(value) is not dict:
        return f"must be a dict of skill levels, got {_show(value)}"
    problem = _too_many(value, limits)
    if problem is not None:
        return problem
    lo, hi = SKILL_LEVELS
    for name, level in value.items():
        problem = _id(name, limits)
        if problem is not None:
            return f"skill name {problem}"
        if type(level) is not int or not lo <= level <= hi:
            return f"{name}: level must be an integer {lo}..{hi}, got {_show(level)}"
    return None


def _attributes(value: object, limits: Limits) -> str | None:
    if type(value) is not dict:
        return f"must be a dict of strings, got {_show(value)}"
    problem = _too_many(value, limits)
    if problem is not None:
        return problem
    for key, item in value.items():
        problem = _text_problem(key, limits.max_attribute_bytes) or _text_problem(
            item, limits.max_attribute_bytes
        )
        if problem is not None:
            return f"{_show(key)}: {problem}"
        if len(key.encode()) + len(item.encode()) > limits.max_attribute_bytes:
            return f"{_show(key)}: must be at most {limits.max_attribute_bytes} bytes"
    return None


def _of_each(check: _Check) -> _Check:
    def each(value: object, limits: Limits) -> str | None:
        if type(value) is not list:
            return f"must be a list, got {_show(value)}"
        problem = _too_many(value, limits)
        if problem is not None:
            return problem
        for i, item in enumerate(value):
            problem = check(item, limits)
            if problem is not None:
                return f"[{i}]: {problem}"
        return None

    return each


def _contact(value: object, limits: Limits) -> str | None:
    if type(value) is not Contact:
        return f"must be a Contact(channel, address), got {_show(value)}"
    return _CHANNEL(value.channel, limits) or _id(value.address, limits)


_INT_RANGES = {"ts": (0, MAX_TS), "not_before": (0, MAX_TS), "priority": PRIORITY_RANGE}
_FREE_TEXT = frozenset({"reason", "name"})
_CHANNEL = _one_of(CHANNELS)


def _check_for(name: str, t: msgspec.inspect.Type) -> _Check:
    """The check of one input field, from its declared type (every input field has one)."""
    mi = msgspec.inspect
    if isinstance(t, mi.UnionType):
        (inner,) = (x for x in t.types if not isinstance(x, mi.NoneType))
        return _check_for(name, inner)  # None is let through by input_problem
    if isinstance(t, mi.StrType):
        return _free_text if name in _FREE_TEXT else _id
    if isinstance(t, mi.IntType):
        return _int_in(*_INT_RANGES[name])
    if isinstance(t, mi.LiteralType):
        return _one_of(tuple(str(v) for v in t.values))
    if isinstance(t, mi.DictType) and isinstance(t.value_type, mi.IntType):
        return _skills
    if isinstance(t, mi.DictType) and isinstance(t.value_type, mi.StrType):
        return _attributes
    if isinstance(t, mi.ListType):
        return _of_each(_check_for(name, t.item_type))
    if isinstance(t, mi.StructType) and t.cls is Contact:
        return _contact
    raise TypeError(f"no check for input field {name!r} of type {t!r}")


_Shape: TypeAlias = tuple[
    Callable[[object, Limits], bool],
    Callable[[object], tuple[object, ...]],
    tuple[tuple[str, bool, _Check], ...],
]
"""An input class's fields: all valid? (one call), and, to find why not, the fields read in
one call and each field's (name, may be None, check)."""


def _fails(name: str, t: msgspec.inspect.Type, check: _Check, env: dict[str, object]) -> str:
    """An expression of the value ``v`` (``m``: the id length limit), true when ``check``
    rejects it: inline for ids, integers and literals, else a call of ``check``."""
    mi = msgspec.inspect
    if isinstance(t, mi.UnionType):
        (t,) = (x for x in t.types if not isinstance(x, mi.NoneType))
    if check is _id:
        return "type(v) is not str or not 0 < len(v) <= m or not v.isascii() or v.isspace()"
    if isinstance(t, mi.IntType):
        lo, hi = _INT_RANGES[name]
        return f"type(v) is not int or not {lo} <= v <= {hi}"
    if isinstance(t, mi.LiteralType):
        env[f"values_{name}"] = tuple(str(v) for v in t.values)
        return f"type(v) is not str or v not in values_{name}"
    env[f"check_{name}"] = check
    return f"check_{name}(v, limits) is not None"


def _all_valid(cls: type, info: msgspec.inspect.StructType) -> Callable[[object, Limits], bool]:
    """Straight-line code, made once per input class, true when every field of an event
    passes its check: the common case without a call per field (``input_problem`` then
    checks a failing event field by field for the reason)."""
    env: dict[str, object] = {}
    lines = ["def all_valid(event, limits):", "    m = limits.max_id_length"]
    for f in info.fields:
        nullable = isinstance(f.type, msgspec.inspect.UnionType)
        test = _fails(f.name, f.type, _check_for(f.name, f.type), env)
        lines.append(f"    v = event.{f.name}")
        lines.append(f"    if {'v is not None and (' + test + ')' if nullable else test}:")
        lines.append("        return False")
    lines.append("    return True")
    exec("\n".join(lines), env)  # field names are the Struct's own identifiers
    valid: Callable[[object, Limits], bool] = env["all_valid"]  # type: ignore[assignment]
    valid.__qualname__ = f"all_valid[{cls.__name__}]"
    return valid


def _shape_of(cls: type) -> _Shape:
    info = msgspec.inspect.type_info(cls)
    assert isinstance(info, msgspec.inspect.StructType) and len(info.fields) > 1
    fields = tuple(
        (f.name, isinstance(f.type, msgspec.inspect.UnionType), _check_for(f.name, f.type))
        for f in info.fields
    )
    read = operator.attrgetter(*(f.name for f in info.fields))
    return _all_valid(cls, info), read, fields


_SHAPES: dict[type, _Shape] = {cls: _shape_of(cls) for cls in typing.get_args(Input)}


def input_problem(event: object, limits: Limits) -> str | None:
    """Why ``event`` is no input the engine can apply (a decision, a wrong type, a value out
    of range or over a limit), or None. Field values are checked whatever built the event:
    msgspec validates what it decodes, but a Struct built in Python is not validated."""
    shape = _SHAPES.get(type(event))
    if shape is None:
        if is_decision(event):  # type: ignore[arg-type]
            return "decisions are emitted by the engine, not applied"
        return f"not an input event: {type(event).__name__}"
    all_valid, read, fields = shape
    if all_valid(event, limits):
        return None
    for value, (name, nullable, check) in zip(read(event), fields, strict=True):
        if value is None and nullable:
            continue
        problem = check(value, limits)
        if problem is not None:
            return f"{name}: {problem}"
    return None


def rejection(event: Event, clock: int, reason: str, limits: Limits) -> EventRejected:
    """The decision that reports an invalid event (its tenant and id only if they are valid)."""
    tenant = getattr(event, "tenant", "")
    event_id = getattr(event, "id", None)
    return EventRejected(
        tenant=tenant if _id(tenant, limits) is None else "",
        ts=clock,
        reason=reason,
        event_type=TAGS.get(type(event)),
        event_id=event_id if _id(event_id, limits) is None else None,
    )


def known_tenant(state: EngineState, name: str) -> TenantState:
    tenant = state.tenants.get(name)
    if tenant is None:
        raise Rejected(f"unknown tenant {name!r}")
    return tenant


def agent_of(tenant: TenantState, agent_id: str) -> AgentState:
    agent = tenant.agents.get(agent_id)
    if agent is None:
        raise Rejected(f"unknown agent {agent_id!r}")
    return agent


def conversation_of(tenant: TenantState, conversation_id: str) -> ConversationState:
    """An open conversation, by its id or by the id of a contact that rejoined it."""
    cid = tenant.aliases.get(conversation_id, conversation_id)
    conv = tenant.conversations.get(cid)
    if conv is None:
        raise Rejected(f"unknown or closed conversation {conversation_id!r}")
    return conv


def check_can_take(policy: Policy, agent: AgentState, conv: ConversationState) -> None:
    """Reject a transfer to an agent who could never take ``conv``: a bot for a conversation
    only people may have, a capacity profile without a live leg's class, or skills (or the
    language) it needs even at its loosest escalation ring."""
    if conv.kinds == "human" and agent.kind == "bot":
        raise Rejected(f"agent {agent.agent_id!r} is a bot; this conversation goes to people")
    classes = policy.profiles[agent.profile].classes
    for leg in conv.legs:
        if leg.ended_ts is None and leg.media_class not in classes:
            raise Rejected(
                f"agent {agent.agent_id!r} cannot take {leg.media_class} "
                f"(capacity profile {agent.profile!r})"
            )
    queue = policy.queues[conv.queue]
    have = dict(agent.skills)
    have.update((LANGUAGE_PREFIX + lang, LANGUAGE_LEVEL) for lang in agent.languages)
    lacking: list[str] = []
    for ring in range(len(queue.rings) + 1):
        need = requirements(msgspec.structs.replace(conv, ring=ring), queue)
        lacking = [f"{name} {level}" for name, level in need.items() if have.get(name, 0) < level]
        if not lacking:
            return
    raise Rejected(
        f"agent {agent.agent_id!r} lacks {', '.join(lacking)} (needed even at the last ring)"
    )


def queue_of(policy: Policy, name: str) -> Queue:
    queue = policy.queues.get(name)
    if queue is None:
        raise Rejected(f"unknown queue {name!r}")
    return queue
