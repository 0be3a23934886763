"""A seeded discrete-event contact-centre simulator that drives the real engine.

>>> from omniroute.engine.simulation import load_scenario, simulate
"""

from .simulate import (
    AgentGroup,
    BotPlay,
    Dist,
    FollowUp,
    Scenario,
    ScenarioError,
    SimulationRun,
    SkillPool,
    Switch,
    Traffic,
    builtin_scenarios,
    load_scenario,
    parse_scenario,
    scenario_policy,
    simulate,
)

__all__ = [
    "AgentGroup",
    "BotPlay",
    "Dist",
    "FollowUp",
    "Scenario",
    "ScenarioError",
    "SimulationRun",
    "SkillPool",
    "Switch",
    "Traffic",
    "builtin_scenarios",
    "load_scenario",
    "parse_scenario",
    "scenario_policy",
    "simulate",
]
