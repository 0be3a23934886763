"""``benchmarks/bench_kernel.py`` at a small scale: its figures time real work."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("omniroute.core_ext._kernel")
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernel.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_bench_kernel_small", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_stream_times_decisions_and_the_engine_upkeep(bench: ModuleType) -> None:
    scale = bench.Scale(agents=300, skills=20, queued=2_000, decisions=400, reference_decisions=0,
                        agent_skills=(), passes=1, subsets_skills=0)  # fmt: skip
    timings = bench.run_stream(bench.build(scale, 3), scale.decisions)
    assert len(timings.decisions) >= scale.decisions and timings.matched > 0
    # every kind of upkeep the engine makes, each call counted and timed
    assert set(timings.calls) == {"sync", "enqueue", "dequeue"}
    assert all(n > 0 and ns > 0 for n, ns in timings.calls.values())
    assert timings.upkeep_ns == sum(ns for _, ns in timings.calls.values())


def test_the_many_skills_passes_take_the_same_work_both_ways(bench: ModuleType) -> None:
    scale = bench.Scale(agents=0, skills=0, queued=0, decisions=0, reference_decisions=0,
                        agent_skills=(60, 250), passes=3, subsets_skills=250)  # fmt: skip
    result = bench.many_skills(scale, 5)
    assert result["queued"] == bench.MANY_SKILLS_QUEUED
    for n in ("60", "250"):
        row = result[n]
        assert row["matched"] > 0 and row["most_urgent_calls"] == row["matched"] + 1
        assert row["pass_ms"] > 0 and row["first_call_ms_auto"] > 0
        assert row["first_call_ms_subsets"] > 0 and row["same_decisions"] is True
    assert result["60"]["pass_ms_subsets"] > 0  # the old way's whole pass up to 200 skills
    assert "pass_ms_subsets" not in result["250"]
