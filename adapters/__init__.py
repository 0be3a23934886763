"""Everything that touches the world around the engine: logs, NATS, the service, reporting, CLI.

The embedded log is importable from here; the other adapters live in their subpackages
(``nats``, ``service``, ``reporting``, ``cli``) and need the matching install extra.
"""

from omniroute.engine.log import CorruptLogError, EventLog, LogError, encode_batch

from .filelog import FileLog

__all__ = ["CorruptLogError", "EventLog", "FileLog", "LogError", "encode_batch"]
