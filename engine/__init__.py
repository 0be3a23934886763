"""omniroute's pure, deterministic domain: events, policy, state and the Engine.

``engine.py`` holds the ``Engine`` (public API and dispatch); its steps are functions
over a shared ``context.Context``: ``validation``, ``capacity``, ``queueing``,
``routing``, ``timers``, and the input handlers in ``agents``, ``arrivals`` and
``conversations``. ``matching`` keeps the arrays the kernel reads and is the only
module that calls ``omniroute.core_ext``.

>>> from omniroute.engine import Engine, Policy
"""

from .engine import Engine
from .events import Event, decode_json, decode_msgpack, encode_json, encode_msgpack
from .policy import Policy, PolicyError, load_policy, parse_policy

__all__ = [
    "Engine",
    "Event",
    "Policy",
    "PolicyError",
    "decode_json",
    "decode_msgpack",
    "encode_json",
    "encode_msgpack",
    "load_policy",
    "parse_policy",
]
