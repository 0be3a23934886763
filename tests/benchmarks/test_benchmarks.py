"""Smoke checks of the benchmark scripts: they run, print one JSON object, and stay honest."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from omniroute import core_ext
from omniroute.engine.simulation import load_scenario

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


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
    # --quick (the day scenario from 08:00), cut to three minutes of arrivals (about 6,000
    # contacts, then their drain) and a small memory sample
    assert bench.main(["--quick", "--json", "--hours", "0.05", "--memory-n", "300"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("events_per_s", "replay_events_per_s", "bytes_per_open_conversation",
                "bytes_per_agent", "events"):  # fmt: skip
        assert result[key] > 0, key
    assert result["events"] == result["inputs"] + result["decisions"]
    assert result["scenario"] == "day" and result["from_h"] == 8.0 and result["hours"] == 0.05
    expected = result["expected_arrivals"]  # the windowed scenario's own expectation
    assert expected > 5_000 and 0.9 * expected < result["interactions"] < 1.15 * expected
    # agents are on shift in the window: most contacts are served, few abandon
    mix = result["event_mix"]
    assert mix["conversation.assigned"] > result["interactions"] // 2
    assert result["abandons"] == mix.get("customer.abandoned", 0) < result["interactions"] // 5
    assert result["deterministic"] is True  # the pipeline re-decided the recorded log
    assert result["replay_state_matches"] is True
    # the simulator only sends inputs that make sense on the state it sees; a timer that
    # fires at the input's own time may still overtake it, very rarely, as on a desktop
    assert result["rejected"] <= result["inputs"] // 1000
    assert result["memory_n"] == 300
    shares = result["stage_share"]
    assert abs(sum(shares.values()) - 1.0) < 0.01


def test_bench_simulate_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load("bench_simulate")
    assert bench.main(["--quick", "--json"]) == 0  # scenario small, twice: about a second
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("simulated_events_per_s", "events_per_cpu_s", "wall_s", "cpu_s", "interactions",
                "events", "inputs", "decisions", "ticks"):  # fmt: skip
        assert result[key] > 0, key
    assert result["scenario"] == "small"
    assert result["events"] == result["inputs"] + result["decisions"]
    assert result["ticks"] < result["inputs"]
    rate = result["events"] / result["wall_s"]  # wall_s is rounded to the millisecond
    assert abs(result["simulated_events_per_s"] / rate - 1) < 0.01
    assert len(result["wall_s_runs"]) == 2 and result["wall_s"] == min(result["wall_s_runs"])
    assert result["deterministic"] is True and result["determinism_checked"] is True
    assert result["rejected"] == 0
    # Poisson arrivals (sd ~ 43 for ~1,800) plus a few switches and follow-up tasks
    expected = load_scenario("small")[0].expected_arrivals()
    assert 0.9 * expected < result["interactions"] < 1.15 * expected
    assert result["abandons"] < result["interactions"] // 4


def test_bench_gateway_json(capsys: pytest.CaptureFixture[str]) -> None:
    """Real webhooks over HTTP to a gateway process, embedded and on its own nats-server:
    rates measured, and the log checked (one arrival per sender, nothing for retries)."""
    bench = _load("bench_gateway")
    assert bench.main(["--json", "--requests", "400", "--concurrency", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for mode in ("embedded", "nats"):
        run = result[mode]
        assert run["errors"] == 0 and run["check"]["ok"], run
        assert run["webhooks_per_s"] > 0 and run["webhooks_per_gateway_cpu_s"] > 0
        assert run["p99_ms"] >= run["p50_ms"] > 0
        assert run["check"]["conversations_arrived"] == result["senders"]


def test_bench_ewt_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The estimators scored on seeded logs: the chosen one beats the hindsight baseline."""
    bench = _load("bench_ewt")
    assert bench.main(["--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip())
    scores = [c["score"] for c in result["candidates"]]
    assert scores == sorted(scores) and len(scores) > 10
    chosen = next(c for c in result["candidates"] if c["name"] == "chosen")
    assert chosen["score"] < 1.0  # MAE below the baseline's, on average over the logs
    assert all(n > 100 for n in result["observations"].values())


def test_bench_memory_quick_json(capsys: pytest.CaptureFixture[str]) -> None:
    bench = _load("bench_memory")
    # --quick, cut to half an hour of arrivals a day, seven days: about 15 s
    assert bench.main(["--quick", "--json", "--hours", "0.5", "--memory-n", "300"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("rss_mb_1d", "rss_mb_7d", "snapshot_bytes_1d", "snapshot_bytes_7d",
                "rss_growth_7d_over_1d", "snapshot_growth_7d_over_1d",
                "bytes_per_open_conversation", "bytes_per_agent"):  # fmt: skip
        assert result[key] > 0, key
    assert result["scenario"] == "small" and result["memory_n"] == 300
    # every day routes as on a fresh engine: nothing is rejected, nothing is left open
    for n in (1, 3, 7):
        assert result[f"rejected_{n}d"] == result[f"before_rejected_{n}d"] == 0
        assert result[f"open_conversations_{n}d"] == 0
        assert result[f"inputs_{n}d"] == result[f"before_inputs_{n}d"]
    # bounded: a week holds about a day of customers; before, every day's stayed
    assert result["customers_7d"] < 1.5 * result["customers_1d"]
    assert result["before_customers_7d"] > 5 * result["before_customers_1d"]
    assert result["snapshot_growth_7d_over_1d"] < 1.5 < result["before_snapshot_growth_7d_over_1d"]
    assert result["forget_entries_7d"] <= result["customers_7d"]
