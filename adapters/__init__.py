"""Adapters around the engine: event logs and channel connectors."""

from omniroute.adapters.eventlog import CorruptLogError, EventLog, LogError, encode_batch
from omniroute.adapters.filelog import FileLog

__all__ = ["CorruptLogError", "EventLog", "FileLog", "LogError", "encode_batch"]
