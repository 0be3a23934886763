"""Serve the wallboard under uvicorn until SIGTERM or SIGINT (Ctrl-C).

The socket is bound and listening before uvicorn starts (``port=0`` picks a free one,
and ``ready`` gets the real address). A stop refuses new connections and ends the open
event streams (within a tenth of a second), then :func:`serve` returns, rather than the
process dying of the signal uvicorn re-raises once it has drained.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator

import uvicorn
from starlette.applications import Starlette

__all__ = ["serve"]

_log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@contextlib.contextmanager
def _signals_absorbed() -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it once it has drained, to the handler
    that was there before it: make that one a no-op, for as long as it serves."""
    if threading.current_thread() is not threading.main_thread():
        yield  # (uvicorn leaves the signals alone there too)
        return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def serve(
    app: Starlette, host: str = "127.0.0.1", port: int = 8765, *,
    ready: Callable[[str], None] | None = None,
) -> None:  # fmt: skip
    """Serve ``app`` (:func:`.create_app`) on ``host:port`` until SIGTERM or SIGINT (or,
    off the main thread, until ``app.state.server.should_exit`` is set); ``ready`` gets
    the board's URL once the socket accepts connections."""
    if not _loopback(host):
        _log.warning("wallboard: serving on %s, beyond this machine, with no login", host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.set_inheritable(True)
        bound_host, bound_port = sock.getsockname()[:2]
        server = uvicorn.Server(
            uvicorn.Config(
                app, log_config=None, lifespan="on", access_log=False,
                proxy_headers=False, timeout_graceful_shutdown=2,
            )
        )  # fmt: skip
        app.state.server = server
        app.state.should_exit = lambda: server.should_exit
        shown = f"[{bound_host}]" if family == socket.AF_INET6 else bound_host
        url = f"http://{shown}:{bound_port}/"
        if ready is not None:
            ready(url)  # connections wait in the backlog until the loop accepts them
        with _signals_absorbed():
            server.run(sockets=[sock])
    finally:
        sock.close()
