"""Scenarios: the schema refuses what it cannot play, naming the key; files and built-ins."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from omniroute.engine.memorylog import MemoryLog
from omniroute.engine.simulation import (
    Scenario,
    ScenarioError,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    scenario_policy,
    simulate,
)
from tests.support.simulation import one_queue


def test_the_builtin_scenarios_load_with_their_policies() -> None:
    assert builtin_scenarios() == ["blend", "chain", "day", "demo", "small", "targets", "telco"]
    sizes = {}
    for name in builtin_scenarios():
        scenario, path = load_scenario(name)
        policy = scenario_policy(scenario, path.parent)
        for t in scenario.traffic:
            assert t.queue in policy.queues
        sizes[name] = (round(scenario.expected_arrivals()), sum(g.count for g in scenario.agents))
    assert 25_000 <= sizes["demo"][0] <= 35_000 and 180 <= sizes["demo"][1] <= 230
    assert sizes["telco"][1] == 10_000
    assert 1_800_000 <= sizes["day"][0] <= 2_200_000
    assert sizes["blend"][1] == 30 and sizes["chain"][1] == 96


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"traffic": [{"name": "x", "channel": "voice", "per_hour": 1, "queue": "q",
                       "pre_hour": 2}]}, "pre_hour"),
        ({"traffic": [{"name": "x", "channel": "fax"}]}, "channel"),
        ({"hours": 0}, "hours"),
        ({"start": "yesterday"}, "start"),
        ({"curve": [1.0, 2.0]}, "curve"),
        ({"agents": [{"group": "a"}, {"group": "a"}]}, r"agents\[1\] \(a\)\.group: duplicate"),
        ({"traffic": [{"name": "x", "channel": "sms"}, {"name": "x", "channel": "voice"}]},
         r"traffic\[1\] \(x\)\.name: duplicate stream"),
        ({"handling": {"voice": {"dist": "lognormal", "mean_s": 100}}}, "sd_s"),
        ({"agents": [{"group": "a", "shift": [5, 2]}]}, "shift"),
        ({"traffic": [{"name": "x", "channel": "voice", "known": 2}]}, "shares"),
    ],
)  # fmt: skip
def test_a_bad_scenario_is_an_error_naming_the_key(change: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"name": "bad"} | change
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data)


def test_a_scenario_needing_what_the_policy_lacks_is_refused() -> None:
    scenario = parse_scenario(one_queue(transfer_to="nowhere"))
    with pytest.raises(ScenarioError, match="nowhere"):
        simulate(scenario, MemoryLog())
    data = one_queue()
    data["agents"] = [{"group": "a", "profile": "gold"}]
    log = MemoryLog()
    with pytest.raises(ScenarioError, match="gold"):
        simulate(parse_scenario(data), log)
    assert log.end() == 0  # refused before anything was written


def test_scenarios_read_toml_and_name_unknown_ones() -> None:
    text = 'name = "toml"\nhours = 0.5\n[[traffic]]\nname = "c"\nchannel = "sms"\nper_hour = 5\n'
    assert parse_scenario(text) == msgspec.convert(
        {"name": "toml", "hours": 0.5,
         "traffic": [{"name": "c", "channel": "sms", "per_hour": 5}]}, Scenario
    )  # fmt: skip
    with pytest.raises(ScenarioError, match="TOML"):
        parse_scenario("name = ")
    with pytest.raises(ScenarioError, match="small"):
        load_scenario("no-such-scenario")
