"""Adapters around the engine: event logs and channel connectors."""

from .eventlog import CorruptLogError, EventLog, LogError, encode_batch
from .filelog import FileLog

__all__ = ["CorruptLogError", "EventLog", "FileLog", "LogError", "encode_batch"]
