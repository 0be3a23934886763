"""The ``omniroute`` command line: one module per command group, one command table."""

from .main import main

__all__ = ["main"]
