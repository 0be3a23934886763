"""Smoke check of benchmarks/bench_nats.py: it runs against its own server and prints one
honest JSON object with the keys the issue names."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_nats.py"


def test_bench_nats_json_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("_bench_nats", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    argv = ["--json", "--events", "4000", "--baseline-events", "300", "--frame-events", "200"]
    assert module.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("events_per_s", "per_message_baseline_events_per_s", "engine_only_events_per_s"):
        assert result[key] > 0, key
    assert result["frame_events"] == 200
    assert result["inputs"] == 4000
    assert result["events"] == result["inputs"] + result["decisions"]
    assert result["deterministic"] is True
    assert result["events_per_s"] > result["per_message_baseline_events_per_s"]
