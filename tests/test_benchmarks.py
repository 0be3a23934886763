"""Smoke checks of the benchmark scripts: they run, print one JSON object, and stay honest."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from omniroute import core_ext

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(core_ext.KERNEL != "compiled", reason="the compiled kernel is not built")
def test_bench_pipeline_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load("bench_pipeline")
    # --quick, cut to six minutes of event time and a small memory sample (a few seconds)
    assert bench.main(["--quick", "--json", "--hours", "0.1", "--memory-n", "300"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("events_per_s", "replay_events_per_s", "bytes_per_open_conversation",
                "bytes_per_agent", "events"):  # fmt: skip
        assert result[key] > 0, key
    assert result["events"] == result["inputs"] + result["decisions"]
    assert result["interactions"] > 100
    assert result["deterministic"] is True  # the pipeline re-decided the recorded log
    assert result["replay_state_matches"] is True
    # the driver only sends inputs that make sense on the state it sees; a timer that fires
    # at the input's own time may still overtake it, very rarely, as on a real desktop
    assert result["rejected"] <= result["inputs"] // 1000
    assert result["memory_n"] == 300
    shares = result["stage_share"]
    assert abs(sum(shares.values()) - 1.0) < 0.01
