"""Routing policy: media classes, capacity profiles, queues, rings and scoring weights.

A policy is plain data (``msgspec`` Structs) loaded from TOML. Every field has a
default, so ``Policy()`` is a working contact centre: one ``default`` queue, the
capacity profiles of DESIGN.md §5 and the ``balanced`` scoring preset. Queues a policy
defines are added to the ``default`` queue (unless ``default_queue = false``), so an
arrival that names no queue is still routed. Every check names the key; times are at
most :data:`MAX_SECONDS`; :meth:`Policy.warnings` lists what is valid but suspicious.

Example::

    preset = "longest_idle"

    [queues.billing]
    skills = { billing = 2 }
    offer_mode = "offer"
    offer_timeout_s = 20
    sla_s = { voice = 20, email = 86400 }
    rings = [ { after_s = 30, level_drop = 1 }, { after_s = 90, widen = true } ]
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from pathlib import Path
from typing import Literal, TypeAlias, TypeVar

import msgspec

from .events import CHANNELS, Channel

__all__ = [
    "CHANNEL_CLASS",
    "MAX_SECONDS",
    "MEDIA_CLASSES",
    "PRESETS",
    "REPLY_CLASSES",
    "CapacityProfile",
    "ClassLimit",
    "Limits",
    "MediaClass",
    "Policy",
    "PolicyError",
    "Queue",
    "Ring",
    "Urgency",
    "Weights",
    "load_policy",
    "parse_policy",
    "policy_toml",
]

MediaClass: TypeAlias = Literal["voice", "video", "chat", "messaging", "email", "social", "task"]
MEDIA_CLASSES: tuple[MediaClass, ...] = (
    "voice", "video", "chat", "messaging", "email", "social", "task",
)  # fmt: skip

CHANNEL_CLASS: dict[Channel, MediaClass] = {
    "voice": "voice",
    "video": "video",
    "webchat": "chat",
    "whatsapp": "messaging",
    "sms": "messaging",
    "messenger": "messaging",
    "telegram": "messaging",
    "email": "email",
    "social": "social",
    "task": "task",
}
assert set(CHANNEL_CLASS) == set(CHANNELS)

REPLY_CLASSES: frozenset[MediaClass] = frozenset({"messaging", "email", "social"})
"""Asynchronous classes: a conversation that starts in one is answered by the agent's first
reply (``MessageReceived`` out), not by its assignment (DESIGN.md §7)."""


class PolicyError(ValueError):
    """A policy file or value is wrong; the message names the key."""


class _Spec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Policy structs reject unknown keys, so a typo is an error, not a silent default."""


class ClassLimit(_Spec, frozen=True):
    """What one conversation of a media class costs an agent, and how many they may hold.

    ``interruptible_by`` names classes that may be offered on top of this one (an agent
    busy only with email can still take a call); while such a class is held, this
    class's units do not count. An asynchronous conversation whose customer has been
    silent for ``inactive_after_s`` costs ``inactive_cost`` instead of ``cost``.
    """

    cost: int
    max: int
    interruptible_by: tuple[MediaClass, ...] = ()
    inactive_after_s: float | None = None
    inactive_cost: int = 0


def _human_classes() -> dict[MediaClass, ClassLimit]:
    return {
        "voice": ClassLimit(cost=100, max=1),
        "video": ClassLimit(cost=100, max=1),
        "chat": ClassLimit(cost=33, max=3),
        "messaging": ClassLimit(cost=20, max=5, inactive_after_s=300, inactive_cost=5),
        "email": ClassLimit(cost=10, max=10, interruptible_by=("voice", "video")),
        "social": ClassLimit(cost=10, max=10, inactive_after_s=600, inactive_cost=2),
        "task": ClassLimit(cost=25, max=4),
    }


def _bot_classes() -> dict[MediaClass, ClassLimit]:
    return {
        "voice": ClassLimit(cost=1, max=500),
        "video": ClassLimit(cost=1, max=100),
        "chat": ClassLimit(cost=1, max=1000),
        "messaging": ClassLimit(cost=1, max=1000),
        "email": ClassLimit(cost=1, max=1000),
        "social": ClassLimit(cost=1, max=1000),
        "task": ClassLimit(cost=1, max=1000),
    }


class CapacityProfile(_Spec, frozen=True):
    """An agent's unit budget and per-media-class limits. Missing classes cannot be held."""

    budget: int = 100
    classes: dict[MediaClass, ClassLimit] = msgspec.field(default_factory=_human_classes)


class Ring(_Spec, frozen=True):
    """An escalation ring, reached ``after_s`` seconds after the conversation was queued.

    ``level_drop`` lowers every required level (never below 1); ``drop_optional`` stops
    requiring the optional skills; ``widen`` keeps only the queue's own skills at level 1.
    """

    after_s: float
    level_drop: int = 0
    drop_optional: bool = False
    widen: bool = False


OfferMode: TypeAlias = Literal["auto", "offer"]
Urgency: TypeAlias = Literal["deadline", "arrival"]


class Queue(_Spec, frozen=True):
    """How conversations of one queue are routed and measured."""

    skills: dict[str, int] = {}
    priority: int = 0
    sla_s: dict[Channel, float] = {}
    default_sla_s: float = 60.0
    rings: tuple[Ring, ...] = ()
    aging_s: float = 300.0
    bot_first: bool = False
    bot_wait_s: float = 10.0
    sticky_window_s: float = 86_400.0
    sticky_wait_s: float = 15.0
    offer_mode: OfferMode = "offer"
    offer_timeout_s: float = 20.0
    wrap_up_s: float = 30.0
    transfer_wait_s: float = 60.0
    handoff_priority_boost: int = 1

    def sla_for(self, channel: Channel) -> float:
        """The SLA target in seconds for a channel of this queue."""
        return self.sla_s.get(channel, _DEFAULT_SLA_S.get(channel, self.default_sla_s))


_DEFAULT_SLA_S: dict[Channel, float] = {
    "voice": 20.0,
    "video": 20.0,
    "webchat": 30.0,
    "whatsapp": 300.0,
    "sms": 300.0,
    "messenger": 300.0,
    "telegram": 300.0,
    "email": 86_400.0,
    "social": 3_600.0,
    "task": 3_600.0,
}


class Weights(_Spec, frozen=True):
    """Agent score = skill*proficiency + idle*idle_s + load*spare + sticky*preferred
    + round_robin*(-offers since the agent's last offer) ... see ``matching``."""

    skill: float = 0.0
    idle: float = 0.0
    load: float = 0.0
    sticky: float = 0.0
    round_robin: float = 0.0


PRESETS: dict[str, Weights] = {
    "longest_idle": Weights(idle=1.0, load=1e-6, sticky=1e9),
    "least_loaded": Weights(load=1.0, idle=1e-6, sticky=1e9),
    "best_skill": Weights(skill=1.0, idle=1e-6, sticky=1e9),
    "round_robin": Weights(round_robin=1.0, sticky=1e9),
    "balanced": Weights(skill=1.0, idle=1.0 / 600.0, load=1.0, sticky=10.0),
}


def _default_profiles() -> dict[str, CapacityProfile]:
    return {
        "default": CapacityProfile(),
        "bot": CapacityProfile(budget=1_000_000, classes=_bot_classes()),
    }


def _default_queues() -> dict[str, Queue]:
    return {"default": Queue()}


class Limits(_Spec, frozen=True):
    """What one input may carry, and how far its ``ts`` may stray from its tenant's clock.

    An event over a limit is rejected with the reason. ``clock_tolerance_s``: an event
    at most this far behind its tenant's clock is applied at the clock (late by a few
    seconds, as producers are); further behind, it is rejected. ``clock_horizon_s``: an
    event further than this ahead of its tenant's clock is rejected (a ``ts`` in
    microseconds, a typo), so one bad event cannot fire every timer and poison the clock.
    """

    max_id_length: int = 256
    """Characters in any id or name (tenant, agents, conversations, queues, skills...)."""
    max_entries: int = 64
    """Entries in one event's skills, languages, contacts or attributes."""
    max_attribute_bytes: int = 1024
    """UTF-8 bytes of one attribute (key and value together)."""
    clock_tolerance_s: float = 60.0
    clock_horizon_s: float = 30 * 86_400.0
    customer_retention_s: float = 86_400.0
    """How long the engine keeps a customer's identity links (``ContactsLinked``, or an
    arrival naming its ``customer_id``) after their last conversation ended or the last
    link (event time). A customer with no open conversation is forgotten once this and
    the longest ``sticky_window_s`` of the queues (from their last human agent) have
    passed; an anonymous customer (known by one contact, never linked) only waits for
    the sticky window. A contact of a forgotten customer arrives as a never-seen contact
    would; the projection keeps the history and the links for good (producers name the
    ``customer_id`` from it). The default, one day like the default sticky window, keeps
    the state to about a day of customers (``benchmarks/bench_memory.py``); 0..10 years."""

    def __post_init__(self) -> None:
        for name in ("max_id_length", "max_entries", "max_attribute_bytes"):
            if not 1 <= getattr(self, name) <= 1_000_000:
                raise PolicyError(f"limits.{name}: must be 1..1000000")
        for name in ("clock_tolerance_s", "clock_horizon_s", "customer_retention_s"):
            if not 0 <= getattr(self, name) <= 10 * 365 * 86_400:
                raise PolicyError(f"limits.{name}: must be 0..315360000 seconds (10 years)")


class Policy(_Spec, frozen=True):
    """The whole routing policy of a deployment (all tenants share it)."""

    preset: str = "balanced"
    weights: Weights | None = None
    profiles: dict[str, CapacityProfile] = msgspec.field(default_factory=_default_profiles)
    queues: dict[str, Queue] = msgspec.field(default_factory=_default_queues)
    default_queue: bool = True
    """Keep the built-in ``default`` queue (no skills of its own: an arrival that names no
    queue is routed by its own skills) when ``[queues.*]`` define others; ``false``: every
    arrival must name one of the policy's queues."""
    human_profile: str = "default"
    bot_profile: str = "bot"
    unknown_queue: Literal["reject", "default"] = "reject"
    urgency: Urgency = "deadline"
    """How waiting conversations are ordered: ``deadline`` (earliest SLA deadline first,
    each priority level worth the queue's ``aging_s``) or ``arrival`` (aged first contact)."""
    max_per_pass: int = 1
    """New conversations one routing pass gives one agent while another eligible agent
    has room (the rest go to those agents): queued work is spread, not piled."""
    prefer_window_s: float = 0.0
    """A freed agent takes the conversation of its best-matching skills among those within
    this many seconds of urgency of the most urgent one it can take (0: most urgent)."""
    dedup_window: int = 100_000
    limits: Limits = msgspec.field(default_factory=Limits)

    def __post_init__(self) -> None:
        if self.default_queue and "default" not in self.queues:
            msgspec.structs.force_setattr(self, "queues", {**self.queues, **_default_queues()})
        if self.weights is None and self.preset not in PRESETS:
            raise PolicyError(
                f"preset: unknown preset {self.preset!r}; choose one of {sorted(PRESETS)}"
            )
        for name in (self.human_profile, self.bot_profile):
            if name not in self.profiles:
                raise PolicyError(f"profiles: no capacity profile named {name!r}")
        if self.unknown_queue == "default" and "default" not in self.queues:
            raise PolicyError("queues: unknown_queue = 'default' needs the default queue "
                              "(default_queue = true, or a [queues.default])")  # fmt: skip
        _check_int("dedup_window", self.dedup_window, 0, _MAX_DEDUP)
        _check_int("max_per_pass", self.max_per_pass, 1, _MAX_UNITS)
        _check_seconds("prefer_window_s", self.prefer_window_s)
        if self.weights is not None:
            for field in self.weights.__struct_fields__:
                if not math.isfinite(getattr(self.weights, field)):
                    raise PolicyError(f"weights.{field}: must be a finite number")
        for pname, profile in self.profiles.items():
            _check_profile(f"profiles.{pname}", profile)
        for qname, queue in self.queues.items():
            _check_queue(f"queues.{qname}", queue)

    def warnings(self) -> list[str]:
        """What is valid but probably not meant: a class whose ``cost`` x ``max`` exceeds
        its profile's budget (agents hold fewer than ``max``), each naming the key."""
        found = []
        for pname, profile in self.profiles.items():
            for cname, limit in profile.classes.items():
                if limit.cost <= 0 or limit.cost * limit.max <= profile.budget:
                    continue
                fit = profile.budget // limit.cost
                found.append(
                    f"profiles.{pname}.classes.{cname}: cost {limit.cost} x max {limit.max} = "
                    f"{limit.cost * limit.max} exceeds the budget {profile.budget}, so an agent "
                    + (
                        f"holds at most {fit} {cname} conversation(s), not {limit.max}"
                        if fit
                        else f"can never hold a {cname} conversation"
                    )
                )
        return found

    @property
    def scoring(self) -> Weights:
        """The weights in force: explicit ``weights`` or the named preset."""
        return self.weights if self.weights is not None else PRESETS[self.preset]


MAX_SECONDS = 30 * 86_400
"""The longest time a policy may set (30 days): timers stay far inside the kernel's range."""
_MAX_UNITS = 1_000_000_000  # budgets, costs and counts are 32-bit in the kernel
_MAX_PRIORITY = 1_000_000
_MAX_DEDUP = 10_000_000


def _check_int(key: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise PolicyError(f"{key}: must be {low:,} to {high:,}, got {value}")


def _check_seconds(key: str, value: float, *, positive: bool = False) -> None:
    """A duration: finite, at most :data:`MAX_SECONDS`, more than 0 if ``positive``."""
    low_ok = value > 0 if positive else value >= 0  # (False for NaN)
    if not (low_ok and value <= MAX_SECONDS):
        what = "more than 0 and at most" if positive else "0 to"
        raise PolicyError(f"{key}: must be {what} {MAX_SECONDS} s (30 days), got {value:g}")


def _check_profile(key: str, profile: CapacityProfile) -> None:
    _check_int(f"{key}.budget", profile.budget, 1, _MAX_UNITS)
    for cname, limit in profile.classes.items():
        ckey = f"{key}.classes.{cname}"
        for field in ("cost", "max", "inactive_cost"):
            _check_int(f"{ckey}.{field}", getattr(limit, field), 0, _MAX_UNITS)
        if limit.inactive_cost > limit.cost:
            raise PolicyError(f"{ckey}.inactive_cost: must not exceed cost")
        if limit.inactive_after_s is not None:
            _check_seconds(f"{ckey}.inactive_after_s", limit.inactive_after_s, positive=True)


_QUEUE_TIMES: tuple[tuple[str, bool], ...] = (  # (field, must be positive)
    ("default_sla_s", True), ("offer_timeout_s", True), ("aging_s", False),
    ("bot_wait_s", False), ("sticky_window_s", False), ("sticky_wait_s", False),
    ("wrap_up_s", False), ("transfer_wait_s", False),
)  # fmt: skip


def _check_queue(key: str, queue: Queue) -> None:
    for sname, level in queue.skills.items():
        if not 1 <= level <= 5:
            raise PolicyError(f"{key}.skills.{sname}: level must be 1..5")
    for field, positive in _QUEUE_TIMES:
        _check_seconds(f"{key}.{field}", getattr(queue, field), positive=positive)
    for channel, target in queue.sla_s.items():
        _check_seconds(f"{key}.sla_s.{channel}", target, positive=True)
    _check_int(f"{key}.priority", queue.priority, -_MAX_PRIORITY, _MAX_PRIORITY)
    boost = queue.handoff_priority_boost
    _check_int(f"{key}.handoff_priority_boost", boost, -_MAX_PRIORITY, _MAX_PRIORITY)
    for i, ring in enumerate(queue.rings):
        _check_seconds(f"{key}.rings[{i}].after_s", ring.after_s, positive=True)
        if not 0 <= ring.level_drop <= 4:
            raise PolicyError(
                f"{key}.rings[{i}].level_drop: must be 0..4 (skill levels are 1..5), "
                f"got {ring.level_drop}"
            )
    afters = [ring.after_s for ring in queue.rings]
    if afters != sorted(afters):
        raise PolicyError(f"{key}.rings: after_s must be ascending")


_T = TypeVar("_T", bound=msgspec.inspect.Type)
_AT = re.compile(r"(?P<message>.*) - at `(?P<key>key` in `)?\$(?P<path>[^`]*)`")
_STEP = re.compile(r"\.(\w+)|\[(\d+|\.\.\.)\]")
_ENUM = re.compile(r"Invalid enum value (?P<value>.*)")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>.*)`")


def _type_at(info: msgspec.inspect.Type, path: str) -> msgspec.inspect.Type | None:
    """The type at ``path`` (``.field``, ``[0]``, ``[...]`` steps) inside ``info``."""
    for name, index in _STEP.findall(path):
        candidates = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
        found: msgspec.inspect.Type | None = None
        for t in candidates:
            if name and isinstance(t, msgspec.inspect.StructType):
                found = next((f.type for f in t.fields if f.encode_name == name), None)
            elif index == "..." and isinstance(t, msgspec.inspect.DictType):
                found = t.value_type
            elif index and isinstance(t, msgspec.inspect.CollectionType):
                found = t.item_type
            if found is not None:
                break
        if found is None:
            return None
        info = found
    return info


def _member(info: msgspec.inspect.Type | None, kind: type[_T]) -> _T | None:
    """``info`` if it is a ``kind``, else its member of that kind if it is a union."""
    members = info.types if isinstance(info, msgspec.inspect.UnionType) else (info,)
    return next((t for t in members if isinstance(t, kind)), None)


def _explain(message: str, spec: type[_Spec], prefix: str) -> str:
    """A msgspec validation message as ``key: what is wrong``: an enum error lists the
    allowed values, an unknown key suggests the closest known one."""
    at = _AT.fullmatch(message)
    path, what = (at["path"], at["message"]) if at else ("", message)
    key = ".".join(p for p in (prefix, path.lstrip(".")) if p)
    info = _type_at(msgspec.inspect.type_info(spec), path)
    if at and at["key"] and (mapping := _member(info, msgspec.inspect.DictType)):
        info = mapping.key_type
    enum = _ENUM.fullmatch(what)
    if enum and (literal := _member(info, msgspec.inspect.LiteralType)):
        allowed = ", ".join(repr(v) for v in literal.values)
        what = f"{enum['value']} is not one of {allowed}"
    unknown = _UNKNOWN.fullmatch(what)
    if unknown and (struct := _member(info, msgspec.inspect.StructType)):
        known = [f.encode_name for f in struct.fields]
        close = difflib.get_close_matches(unknown["field"], known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(known)}"
        what = f"unknown key {unknown['field']!r}{hint}"
    return f"{key}: {what}" if key else what


def _locate(raw: dict[str, object], exc: msgspec.ValidationError) -> str:
    """Name the queue, profile or class an error is in (msgspec writes dict keys as [...])."""
    sections: tuple[tuple[str, type[_Spec]], ...] = (
        ("queues", Queue),
        ("profiles", CapacityProfile),
    )
    for section, spec in sections:
        entries = raw.get(section)
        if not isinstance(entries, dict):
            continue
        for name, body in entries.items():
            key = f"{section}.{name}"
            classes = body.get("classes") if isinstance(body, dict) else None
            if spec is CapacityProfile and isinstance(classes, dict):
                for cname, limit in classes.items():
                    try:
                        msgspec.convert(limit, ClassLimit)
                    except msgspec.ValidationError as inner:
                        return _explain(str(inner), ClassLimit, f"{key}.classes.{cname}")
            try:
                msgspec.convert(body, spec)
            except msgspec.ValidationError as inner:
                return _explain(str(inner), spec, key)
    return _explain(str(exc), Policy, "")


def parse_policy(data: bytes | str | dict[str, object]) -> Policy:
    """Build a policy from TOML text or a mapping; errors name the offending key."""
    if isinstance(data, dict):
        raw = data
    else:
        try:
            raw = tomllib.loads(data.decode() if isinstance(data, bytes) else data)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise PolicyError(f"not valid TOML: {exc}") from exc
    try:
        return msgspec.convert(raw, Policy)
    except msgspec.ValidationError as exc:
        raise PolicyError(_locate(raw, exc)) from exc


def load_policy(path: str | Path) -> Policy:
    """Load a policy TOML file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from exc
    try:
        return parse_policy(data)
    except PolicyError as exc:
        raise PolicyError(f"{path}: {exc}") from exc


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return msgspec.json.encode(value).decode()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else msgspec.json.encode(key).decode()


def policy_toml(policy: Policy) -> str:
    """``policy`` as TOML text that :func:`parse_policy` reads back to an equal policy
    (every field written out: the record of exactly what a log was decided with)."""
    data = msgspec.to_builtins(policy)
    assert isinstance(data, dict)
    lines = ["# omniroute policy, written out in full"]
    sections = {k: v for k, v in data.items() if k in ("profiles", "queues")}
    lines += [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in data.items()
        if v is not None and k not in sections
    ]
    for section, entries in sections.items():
        for name, body in entries.items():
            lines += ["", f"[{section}.{_toml_key(name)}]"]
            lines += [
                f"{_toml_key(k)} = {_toml_value(v)}" for k, v in body.items() if v is not None
            ]
    return "\n".join(lines) + "\n"
