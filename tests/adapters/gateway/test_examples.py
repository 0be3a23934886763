"""The README's gateway walk-through, run as a user would: the example configuration, the
`omniroute gateway` command on an embedded log, `examples/webhooks.sh` (curl + openssl),
then `omniroute project` and `omniroute report`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from omniroute.adapters.nats.server import free_port
from omniroute.engine.events import ConversationArrived, is_decision
from tests.support.service import wait_for

from .conftest import logged

ROOT = Path(__file__).parents[3]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "omniroute.adapters.cli", *args]


def _desk(url: str, path: str, body: object | None = None) -> Any:
    """ann's desk API: POST ``body`` as JSON (GET without one); the JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"Authorization": "Bearer ann-token"}
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


@pytest.mark.skipif(
    not (shutil.which("curl") and shutil.which("openssl")), reason="needs curl and openssl"
)
def test_the_readme_walk_through(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "gateway.olog"
    gateway = subprocess.Popen(
        _cli("gateway", "--config", str(ROOT / "examples" / "gateway.toml"), "--embedded",
             str(log), "--port", str(port)),
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        wait_for(up, 30, "the gateway to answer /health")
        env = {**os.environ, "GATEWAY": url}
        script = [shutil.which("bash") or "bash", str(ROOT / "examples" / "webhooks.sh")]
        first = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
        answers = [line for line in first.stdout.splitlines() if not line.startswith("#")]
        assert len(answers) == 10 and all(a.endswith(" 200") for a in answers), first.stdout
        again = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
        assert '"accepted":1' not in again.stdout  # retries: nothing new
        # ann (registered by the gateway: `register = true`) logs in and gets offers
        assert _desk(url, "/desk/status", {"status": "available"})["id"]
        offered = [c for c in _desk(url, "/desk/me")["conversations"] if c["stage"] == "offered"]
        assert offered, "ann was offered nothing"
    finally:
        gateway.terminate()
        _, err = gateway.communicate(timeout=30)
    assert gateway.returncode == 0, err
    assert "gateway: stopped (exit 0)" in err
    inputs = [e for e in logged(log) if not is_decision(e)]
    assert sum(isinstance(e, ConversationArrived) for e in inputs) == 10
    db = str(tmp_path / "gateway.duckdb")
    subprocess.run(_cli("project", str(log), "--db", db), check=True, capture_output=True)
    report = subprocess.run(_cli("report", "--db", db, "--format", "json"), check=True,
                            capture_output=True, text=True)  # fmt: skip
    rows = {row["channel"]: row for row in json.loads(report.stdout)}
    assert rows["all"]["contacts"] == 10
    assert rows["voice"]["rejoins"] == 1  # the WhatsApp customer who then called
