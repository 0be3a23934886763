"""omniroute's pure, deterministic domain: events, policy, state and the Engine.

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
